"""Verify the backup role: one verified SQLite backup (idempotence skipped a second one), a file archive,
and a second copy whose checksums match the manifests."""

import json

BACKUPS = '/tmp/molecule-backup/backups'
COPY = '/tmp/molecule-backup/copy'


def _manifests(host, directory):
    listing = host.run('ls %s' % directory).stdout.split()
    return [json.loads(host.file('%s/%s' % (directory, n)).content_string)
            for n in listing if n.endswith('.manifest.json')]


def test_one_verified_sqlite_backup(host):
    manifests = _manifests(host, BACKUPS + '/sqlite')
    assert len(manifests) == 1
    m = manifests[0]
    assert m['verification']['ok'] is True and m['kind'] == 'full'
    artifact = host.file('%s/sqlite/%s' % (BACKUPS, m['artifact']))
    assert artifact.sha256sum == m['sha256'] and artifact.mode == 0o600


def test_backup_restores_with_the_rows(host):
    m = _manifests(host, BACKUPS + '/sqlite')[0]
    out = host.run('zstd -dc %s/sqlite/%s > /tmp/molecule-backup/restored.db && '
                   'sqlite3 /tmp/molecule-backup/restored.db "PRAGMA integrity_check; SELECT count(*) FROM t;"'
                   % (BACKUPS, m['artifact']))
    assert out.rc == 0, out.stderr
    assert out.stdout.split() == ['ok', '500']


def test_file_archive_and_second_copy(host):
    assert len(_manifests(host, BACKUPS + '/files')) == 1
    for m in _manifests(host, COPY + '/sqlite'):
        assert host.file('%s/sqlite/%s' % (COPY, m['artifact'])).sha256sum == m['sha256']
