"""Verify the file_backup role left exactly one verified, private archive with its manifest."""

import json

BACKUPS = '/tmp/molecule-file-backup/backups/app-config'


def _manifests(host):
    listing = host.run('ls %s' % BACKUPS).stdout.split()
    return [name for name in listing if name.endswith('.manifest.json')]


def test_one_archive_after_converge_and_idempotence(host):
    # converge wrote one archive; the idempotence run skipped it because nothing changed.
    assert len(_manifests(host)) == 1


def test_archive_is_private_and_matches_manifest(host):
    name = _manifests(host)[0]
    manifest = json.loads(host.file('%s/%s' % (BACKUPS, name)).content_string)
    archive = host.file('%s/%s' % (BACKUPS, manifest['artifact']))
    assert archive.mode == 0o600
    assert host.file(BACKUPS).mode == 0o700
    assert archive.size == manifest['size']
    assert archive.sha256sum == manifest['sha256']
    assert manifest['file_count'] == 2


def test_archive_holds_the_tree(host):
    name = _manifests(host)[0].replace('.manifest.json', '')
    listing = host.run('zstd -dc %s/%s | tar -tvf -' % (BACKUPS, name))
    assert listing.rc == 0, listing.stderr
    assert 'tmp/molecule-file-backup/etc/app/app.conf' in listing.stdout
    assert '-rw------- ' in [line[:11] for line in listing.stdout.splitlines() if line.endswith('app.key')][0]
