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


def test_encrypted_set_is_age_and_decrypts_to_the_rows(host):
    manifests = _manifests(host, BACKUPS + '/sqlite-encrypted')
    assert len(manifests) == 1  # idempotence: the second converge took no new backup
    m = manifests[0]
    assert m['artifact'].endswith('.sqlite.zst.age')
    assert m['encryption']['format'] == 'age' and len(m['encryption']['recipients']) == 1
    assert m['verification']['ok'] is True and m['verification']['checks']['deep'] is False
    artifact = '%s/sqlite-encrypted/%s' % (BACKUPS, m['artifact'])
    assert host.file(artifact).content[:21] == b'age-encryption.org/v1'
    out = host.run('age -d -i /tmp/molecule-backup/age-key.txt %s | zstd -dc > /tmp/molecule-backup/enc.db && '
                   'sqlite3 /tmp/molecule-backup/enc.db "PRAGMA integrity_check; SELECT count(*) FROM t;"' % artifact)
    assert out.rc == 0, out.stderr
    assert out.stdout.split() == ['ok', '500']


def test_freshness_metrics_per_set(host):
    for name, directory in (('opsready_backup_sqlite_app_db.prom', 'sqlite'),
                            ('opsready_backup_sqlite_app_encrypted.prom', 'sqlite-encrypted')):
        prom = host.file('/tmp/molecule-backup/metrics/' + name)
        assert prom.exists and prom.mode == 0o644
        text = prom.content_string
        m = _manifests(host, BACKUPS + '/' + directory)[0]
        assert 'opsready_backup_last_full_success_timestamp_seconds{' in text
        lint = host.run('promtool check metrics < %s' % prom.path)
        assert lint.rc == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr
        assert m['database'] in text
