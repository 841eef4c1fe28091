"""Encrypted database backups end to end: real playbook runs of db_backup (encrypt/recipients), backup_verify
(stored checksum without a key, deep with the key), db_restore (identity/identity_file) and the DR drill,
against real SQLite files, PostgreSQL 15 and MariaDB servers. Debian's ``age`` decrypts what we store; a
wrong or missing key fails naming the artifact and nothing is created on the target."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from tests.harness.age_key import Key  # noqa: E402
from tests.harness.playbook import conn, play, run_playbook  # noqa: E402

AGE_MAGIC = b'age-encryption.org/v1\n'


@pytest.fixture()
def keys(tmp_path):
    return Key(tmp_path, 'restore-key'), Key(tmp_path, 'other-key')


def age_decrypt(key: Key, path: str) -> bytes:
    """What Debian's age (not our code) makes of the stored file."""
    return subprocess.run(['age', '-d', '-i', str(key.file), path], capture_output=True, check=True).stdout


def zstd_d(data: bytes) -> bytes:
    return subprocess.run(['zstd', '-dc'], input=data, capture_output=True, check=True).stdout


def assert_encrypted_artifact(manifest: dict, key: Key, secrets: tuple = ()) -> bytes:
    """Stored bytes are age to our recipient, checksum of the stored bytes, no secret in the manifest;
    returns the plaintext (decompressed) as Debian's age + zstd see it."""
    path = manifest['path']
    assert path.endswith('.zst.age'), path
    stored = Path(path).read_bytes()
    assert stored.startswith(AGE_MAGIC)
    assert manifest['sha256'] == hashlib.sha256(stored).hexdigest() and manifest['size'] == len(stored)
    enc = manifest['encryption']
    assert enc['format'] == 'age' and enc['recipients'] == [key.recipient]
    manifest_text = Path(path + '.manifest.json').read_text()
    for secret in (key.secret,) + secrets:
        assert secret not in manifest_text
    compressed = age_decrypt(key, path)
    assert len(compressed) == enc['plaintext_size']
    if 'plaintext_sha256_sealed' in enc:  # a stream the tool compressed (pg_basebackup --compress=client-zstd)
        sealed = encryption.open_sealed(enc['plaintext_sha256_sealed'], encryption.parse_identities(key.secret), 't')
        assert sealed == hashlib.sha256(compressed).hexdigest()
    else:  # compressed by us: zstd's content checksum in the frame instead (docs/encryption.md); zstd -d checks it
        assert compressed[4] & 0x04, 'zstd frame header: content checksum flag'
    return zstd_d(compressed)


def failed_with(res: dict, *words: str) -> bool:
    """The task failed and its message holds every one of ``words``."""
    return res['_event'] == 'runner_on_failed' and all(w in res['msg'] for w in words)


def verify_tasks(path: str, key: Key, other: Key) -> list:
    return [
        {'name': 'shallow', 'opsready.operations.backup_verify': {'path': path}},
        {'name': 'deep wrong key', 'opsready.operations.backup_verify': {
            'path': path, 'deep': True, 'identity_file': str(other.file)}, 'ignore_errors': True},
        {'name': 'deep no key', 'opsready.operations.backup_verify': {'path': path, 'deep': True},
         'ignore_errors': True},
        {'name': 'deep', 'opsready.operations.backup_verify': {
            'path': path, 'deep': True, 'identity': '{{ backup_identity }}'}},
        {'name': 'deep again', 'opsready.operations.backup_verify': {
            'path': path, 'deep': True, 'identity_file': str(key.file)}},
    ]


def check_verify_results(result, manifest: dict, key: Key) -> dict:
    """backup_verify: no key needed for the stored checksum; deep decrypts; a bad key fails by name and is
    not recorded against the artifact. Returns the deep result's checks."""
    assert result.rc == 0, result.stdout[-4000:]
    artifact = os.path.basename(manifest['path'])
    shallow = result.result('shallow')
    assert shallow['checked'] == 1 and shallow['failures'] == []
    checks = shallow['results'][0]['checks']
    assert checks['checksum'] == 'ok' and checks['deep'] is False and 'deep=true' in checks['engine_check']
    for name, words in (('deep wrong key', 'cannot be decrypted with the identity'),
                        ('deep no key', 'give identity or identity_file')):
        failed = result.result(name)
        assert failed_with(failed, artifact, words), failed['msg']
    deep = result.result('deep')
    assert deep['failures'] == [] and deep['changed'] is True  # first deep check is recorded
    deep_checks = deep['results'][0]['checks']
    assert deep_checks['deep'] is True and deep_checks['decrypted'].startswith('ok')
    assert result.result('deep again')['changed'] is False  # idempotent
    recorded = json.loads(Path(manifest['path'] + '.manifest.json').read_text())['verification']
    assert recorded['ok'] is True and recorded['checks']['deep'] is True
    assert key.secret not in result.stdout and key.secret[20:40] not in result.stdout
    return deep_checks


# -- SQLite ----------------------------------------------------------------------------------------------------

def make_sqlite(path: Path, count: int = 3000) -> list:
    conn = sqlite3.connect(str(path))
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)')
    conn.executemany('INSERT INTO notes VALUES (?, ?)', [(i, 'secret note %d' % i * 5) for i in range(count)])
    conn.commit()
    conn.close()
    return sqlite_rows(path)


def sqlite_rows(path) -> list:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute('SELECT id, body FROM notes ORDER BY id').fetchall()
    finally:
        conn.close()


def test_sqlite_encrypted_backup_verify_restore(tmp_path, keys):
    key, other = keys
    db = tmp_path / 'app.db'
    expected = make_sqlite(db)
    dest = tmp_path / 'backups'
    result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(dest), 'encrypt': True,
        'recipients': [key.recipient]}}])
    assert result.rc == 0, result.stdout[-3000:]
    manifest = result.result('backup')['manifest']
    assert manifest['verification']['ok'] is True and manifest['verification']['checks']['deep'] is False
    plain = assert_encrypted_artifact(manifest, key)
    assert b'secret note' not in Path(manifest['path']).read_bytes()
    by_hand = tmp_path / 'by-hand.db'
    by_hand.write_bytes(plain)
    assert sqlite_rows(by_hand) == expected

    result = play(tmp_path, verify_tasks(str(dest), key, other), {'backup_identity': key.secret}, verbosity=2)
    deep = check_verify_results(result, manifest, key)
    assert deep['engine_check'] == 'PRAGMA integrity_check' and deep['result'] == 'ok'

    # restore: a wrong key and no key fail naming the artifact and create nothing; the right one restores
    target = tmp_path / 'restored' / 'app.db'
    target.parent.mkdir()
    restore = {'engine': 'sqlite', 'src': str(dest), 'source_database': str(db), 'database': str(target)}
    result = play(tmp_path, [
        {'name': 'wrong', 'opsready.operations.db_restore': dict(restore, identity_file=str(other.file)),
         'ignore_errors': True},
        {'name': 'missing', 'opsready.operations.db_restore': restore, 'ignore_errors': True},
        {'name': 'check', 'opsready.operations.db_restore': dict(restore, identity_file=str(other.file)),
         'check_mode': True, 'ignore_errors': True},
    ])
    assert result.rc == 0, result.stdout[-3000:]
    name = os.path.basename(manifest['path'])
    for task, words in (('wrong', 'cannot be decrypted'), ('missing', 'give identity or identity_file'),
                        ('check', 'cannot be decrypted')):
        failed = result.result(task)
        assert failed_with(failed, name, words), failed['msg']
    assert os.listdir(target.parent) == []  # not even a staging file

    result = play(tmp_path, [{'name': 'restore', 'opsready.operations.db_restore': dict(
        restore, identity='{{ backup_identity }}')}], {'backup_identity': key.secret}, verbosity=2)
    assert result.rc == 0, result.stdout[-3000:]
    res = result.result('restore')
    assert res['encrypted'] == [name] and res['integrity_check'] == 'ok'
    assert sqlite_rows(target) == expected
    assert key.secret not in result.stdout


def test_sqlite_tampered_payload_fails_deep_verify_and_restore(tmp_path, keys):
    """A ciphertext whose manifest checksum was forged to match (an attacker with write access) still fails:
    age authentication catches it, and the restore leaves nothing behind."""
    key, other = keys
    db = tmp_path / 'app.db'
    make_sqlite(db)
    dest = tmp_path / 'backups'
    result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(dest), 'encrypt': True, 'recipients': [key.recipient],
        'compression': 'none'}}])
    assert result.rc == 0, result.stdout[-3000:]
    manifest = result.result('backup')['manifest']
    path = Path(manifest['path'])
    assert path.name.endswith('.sqlite.age')
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    mpath = Path(str(path) + '.manifest.json')
    forged = json.loads(mpath.read_text())
    forged['sha256'] = hashlib.sha256(bytes(data)).hexdigest()
    mpath.write_text(json.dumps(forged))
    target = tmp_path / 'restored.db'
    result = play(tmp_path, [
        {'name': 'deep', 'opsready.operations.backup_verify': {'path': str(dest), 'deep': True, 'record': False,
                                                               'identity_file': str(key.file)},
         'ignore_errors': True},
        {'name': 'restore', 'opsready.operations.db_restore': {
            'engine': 'sqlite', 'src': str(dest), 'source_database': str(db), 'database': str(target),
            'identity_file': str(key.file)}, 'ignore_errors': True}])
    assert result.rc == 0, result.stdout[-3000:]
    for task in ('deep', 'restore'):
        failed = result.result(task)
        assert failed_with(failed, 'fails authentication', path.name), failed['msg']
    assert not target.exists() and [p for p in tmp_path.iterdir() if 'opsready-restore' in p.name] == []


def test_encrypt_refused_where_the_stream_does_not_pass(tmp_path, keys):
    key, other = keys
    db = tmp_path / 'app.db'
    make_sqlite(db, 10)
    dest = tmp_path / 'backups'
    result = play(tmp_path, [
        {'name': 'no recipients', 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(db), 'dest': str(dest), 'encrypt': True}, 'ignore_errors': True},
        {'name': 'secret as recipient', 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(db), 'dest': str(dest), 'encrypt': True,
            'recipients': ['{{ backup_identity }}']}, 'ignore_errors': True},
        {'name': 'directory', 'opsready.operations.db_backup': {
            'engine': 'postgresql', 'database': 'app', 'format': 'directory', 'dest': str(dest), 'encrypt': True,
            'recipients': [key.recipient], 'login_host': '127.0.0.1', 'login_port': 1}, 'ignore_errors': True},
        {'name': 'sqlserver', 'opsready.operations.db_backup': {
            'engine': 'sqlserver', 'database': 'app', 'dest': str(dest), 'encrypt': True,
            'recipients': [key.recipient], 'login_host': '127.0.0.1', 'login_port': 1}, 'ignore_errors': True},
        {'name': 'key without deep', 'opsready.operations.backup_verify': {
            'path': str(tmp_path), 'identity_file': str(key.file)}, 'ignore_errors': True},
    ], {'backup_identity': key.secret})
    assert result.rc == 0, result.stdout[-3000:]
    expect = {'no recipients': 'recipients', 'secret as recipient': 'identity (private key), not a public key',
              'directory': 'format=directory', 'sqlserver': 'SQL Server writes the backup file',
              'key without deep': 'deep=true'}
    for task, words in expect.items():
        failed = result.result(task)
        assert failed_with(failed, words), (task, failed['msg'])
    assert not dest.exists()  # nothing written by any refused run
    assert key.secret not in result.stdout


# -- PostgreSQL ------------------------------------------------------------------------------------------------

def pg_fingerprint(server, database: str) -> tuple:
    return server.sql("SELECT count(*), md5(string_agg(id::text || name || price::text, ',' ORDER BY id)) "
                      "FROM items", database=database)[0]


def pg_databases(server, like: str) -> list:
    return [r[0] for r in server.sql("SELECT datname FROM pg_database WHERE datname LIKE '%s'" % like)]


def test_postgresql_encrypted_custom_dump(pg_db, tmp_path, keys):
    key, other = keys
    server = pg_db.server
    pg_db.sql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));"
              "INSERT INTO items SELECT g, 'confidential-' || md5(g::text), g * 1.5 FROM generate_series(1, 20000) g;"
              "CREATE VIEW cheap AS SELECT * FROM items WHERE price < 100;"
              # a DDL freeze that fires under the load's session_replication_role=replica (before PostgreSQL 17):
              # jobs=1 reads the decrypted head's listing to create it after the matview's REFRESH
              "CREATE MATERIALIZED VIEW dear AS SELECT count(*) AS n FROM items WHERE price >= 100;"
              "CREATE FUNCTION no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS "
              "$$ BEGIN RAISE EXCEPTION 'DDL is frozen (%)', tg_tag; END $$;"
              "CREATE EVENT TRIGGER enc_no_ddl ON ddl_command_start EXECUTE FUNCTION no_ddl();"
              "ALTER EVENT TRIGGER enc_no_ddl ENABLE ALWAYS;")
    expected = pg_fingerprint(server, pg_db.name)
    dest = tmp_path / 'backups'
    extravars = {'pg_password': server.password, 'backup_identity': key.secret}
    result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': dict(
        conn(server), engine='postgresql', database=pg_db.name, dest=str(dest), encrypt=True,
        recipients=[key.recipient], include_globals=True)}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    manifests = result.result('backup')['manifests']
    dump = manifests[0]
    assert dump['path'].endswith('.dump.zst.age') and manifests[1]['path'].endswith('.sql.zst.age')
    plain = assert_encrypted_artifact(dump, key, (server.password,))
    assert b'confidential-' not in Path(dump['path']).read_bytes()
    # Debian's age + zstd give a custom-format dump pg_restore reads
    assert plain.startswith(b'PGDMP')
    listing = subprocess.run([server.bin('pg_restore'), '--list'], input=plain, capture_output=True, check=True)
    assert b'TABLE public items' in listing.stdout
    globals_sql = assert_encrypted_artifact(manifests[1], key, (server.password,))
    # the globals dump holds the roles themselves (the test login is a role of this server), not just a header
    assert b'PostgreSQL database cluster dump' in globals_sql
    assert re.search(rb'CREATE ROLE "?%s"?;' % re.escape(server.user.encode()), globals_sql), globals_sql[:2000]

    result = play(tmp_path, verify_tasks(dump['path'], key, other), extravars)
    deep = check_verify_results(result, dump, key)
    assert deep['toc_entries'] >= 3

    copy = pg_db.name + '_enc'
    restore = dict(conn(server), engine='postgresql', src=str(dest), source_database=pg_db.name, database=copy)
    try:
        result = play(tmp_path, [
            {'name': 'wrong', 'opsready.operations.db_restore': dict(restore, identity_file=str(other.file)),
             'ignore_errors': True},
            {'name': 'missing', 'opsready.operations.db_restore': restore, 'ignore_errors': True},
        ], extravars)
        assert result.rc == 0, result.stdout[-3000:]
        for task in ('wrong', 'missing'):
            failed = result.result(task)
            assert failed_with(failed, os.path.basename(dump['path'])), failed['msg']
        assert pg_databases(server, copy + '%') == []  # neither the target nor a temporary database

        # jobs=1 streams into pg_restore, jobs=2 decrypts into a copy for pg_restore -j
        for jobs in (1, 2):
            result = play(tmp_path, [{'name': 'restore', 'opsready.operations.db_restore': dict(
                restore, identity='{{ backup_identity }}', jobs=jobs, replace=True)}], extravars, verbosity=2)
            assert result.rc == 0, result.stdout[-3000:]
            res = result.result('restore')
            assert res['encrypted'] == [dump['id']] and res['jobs'] == jobs
            assert jobs == 2 or 'the event triggers last' in res['method_detail'], res['method_detail']
            assert server.sql("SELECT evtenabled FROM pg_event_trigger", database=copy) == [('A',)]
            assert pg_fingerprint(server, copy) == expected
            assert key.secret not in result.stdout and server.password not in result.stdout
        assert pg_databases(server, '%opsready%') == []
    finally:
        server.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % copy)
        pg_db.sql('DROP EVENT TRIGGER IF EXISTS enc_no_ddl')


def test_postgresql_encrypted_base_backup_compressed_by_pg_basebackup(pg_db, tmp_path, keys):
    """kind=base: pg_basebackup compresses (client-zstd) and the module only encrypts and hashes; Debian's age
    + zstd give a tar holding backup_manifest, and deep verify runs pg_verifybackup on the decrypted copy."""
    key, other = keys
    server = pg_db.server
    pg_db.sql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));"
              "INSERT INTO items SELECT g, 'confidential-' || md5(g::text), g FROM generate_series(1, 5000) g;")
    dest = tmp_path / 'backups'
    extravars = {'pg_password': server.password, 'backup_identity': key.secret}
    result = play(tmp_path, [{'name': 'base', 'opsready.operations.db_backup': dict(
        conn(server), engine='postgresql', kind='base', dest=str(dest), encrypt=True,
        recipients=[key.recipient], threads=2)}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    base = result.result('base')['manifest']
    # raw_size unknown: pg_basebackup compressed, the module saw only compressed bytes
    assert base['path'].endswith('.tar.zst.age') and base['raw_size'] is None
    plain_tar = assert_encrypted_artifact(base, key, (server.password,))
    names = subprocess.run(['tar', '-t'], input=plain_tar, capture_output=True, check=True).stdout.split()
    assert b'backup_manifest' in names and b'PG_VERSION' in names
    result = play(tmp_path, verify_tasks(base['path'], key, other), extravars)
    deep = check_verify_results(result, base, key)
    assert 'pg_verifybackup' in json.dumps(deep)


# -- MariaDB ---------------------------------------------------------------------------------------------------

def test_mariadb_encrypted_dump_and_binlogs(maria_db, tmp_path, keys):
    key, other = keys
    server = maria_db.server
    maria_db.sql("CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, card VARCHAR(40) NOT NULL) ENGINE=InnoDB;"
                 "INSERT INTO orders (card) SELECT CONCAT('card-', seq) FROM seq_1_to_5000")
    dest = tmp_path / 'backups'
    extravars = {'db_password': server.password, 'backup_identity': key.secret}
    backup = dict(conn(server, 'db_password'), engine='mariadb', database=maria_db.name, dest=str(dest), encrypt=True,
                  recipients=[key.recipient])
    result = play(tmp_path, [{'name': 'full', 'opsready.operations.db_backup': backup}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    full = result.result('full')['manifest']
    plain = assert_encrypted_artifact(full, key, (server.password,))
    assert b'-- MariaDB dump' in plain[:200] and b'-- Dump completed' in plain[-200:]
    assert b'card-4999' in plain and b'card-4999' not in Path(full['path']).read_bytes()

    # rows after the dump reach the restore only through the (encrypted) binary log copies
    maria_db.sql("INSERT INTO orders (card) VALUES ('after-dump-1'), ('after-dump-2')")
    result = play(tmp_path, [{'name': 'logs', 'opsready.operations.db_backup': dict(backup, kind='log')}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    logs = result.result('logs')['manifests']
    assert logs and all(m['path'].endswith('.zst.age') and m['encryption']['recipients'] == [key.recipient]
                        for m in logs)
    assert zstd_d(age_decrypt(key, logs[0]['path'])).startswith(b'\xfebin')

    result = play(tmp_path, verify_tasks(full['path'], key, other), extravars)
    check_verify_results(result, full, key)
    result = play(tmp_path, [{'name': 'deep logs', 'opsready.operations.backup_verify': {
        'path': str(dest), 'deep': True, 'identity_file': str(key.file)}}], extravars)
    assert result.rc == 0, result.stdout[-3000:]
    assert all(r['checks']['deep'] is True for r in result.result('deep logs')['results'])

    target = maria_db.name + '_enc'
    restore = dict(conn(server, 'db_password'), engine='mariadb', src=str(dest), source_database=maria_db.name,
                   database=target)
    try:
        result = play(tmp_path, [
            {'name': 'wrong', 'opsready.operations.db_restore': dict(restore, identity_file=str(other.file)),
             'ignore_errors': True},
            {'name': 'missing', 'opsready.operations.db_restore': restore, 'ignore_errors': True},
        ], extravars)
        assert result.rc == 0, result.stdout[-3000:]
        for task in ('wrong', 'missing'):
            failed = result.result(task)
            assert failed_with(failed, os.path.basename(full['path'])), failed['msg']
        assert server.sql("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '%s%%'"
                          % target) == []

        result = play(tmp_path, [{'name': 'restore', 'opsready.operations.db_restore': dict(
            restore, identity_file=str(key.file))}], extravars)
        assert result.rc == 0, result.stdout[-3000:]
        res = result.result('restore')
        assert res['encrypted'][0] == full['id'] and len(res['encrypted']) == 1 + len(logs)
        assert int(server.sql('SELECT count(*) FROM orders', database=target)[0][0]) == 5002
        assert [r[0] for r in server.sql("SELECT card FROM orders WHERE card LIKE 'after%' ORDER BY id",
                                         database=target)] == ['after-dump-1', 'after-dump-2']
        assert server.password not in result.stdout
    finally:
        server.sql('DROP DATABASE IF EXISTS `%s`' % target, superuser=True)


# -- DR drill --------------------------------------------------------------------------------------------------

def test_encrypted_dr_drill_sqlite(tmp_path, keys):
    key, other = keys
    db = tmp_path / 'app' / 'shop.sqlite'
    db.parent.mkdir()
    make_sqlite(db, 800)
    backups = tmp_path / 'backups'
    result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(db), 'dest': str(backups), 'encrypt': True,
        'recipients': [key.recipient]}}])
    assert result.rc == 0, result.stdout[-3000:]
    reports = tmp_path / 'reports'
    database = {'name': 'shop', 'engine': 'sqlite', 'database': str(db), 'backup_dir': str(backups),
                'scratch': str(tmp_path / 'scratch' / 'shop-drill.sqlite'),
                'smoke_queries': [{'name': 'notes', 'sql': 'SELECT count(*) AS n FROM notes',
                                   'expect': {'value_at_least': 800}}]}

    def drill(**extra):
        return run_playbook('playbooks/dr_drill.yml', extravars=dict(
            {'dr_drill_report_dir': str(reports), 'dr_drill_databases': [database]}, **extra))

    def last_report():
        return json.loads(sorted(reports.glob('drill-*.json'))[-1].read_text())

    result = drill(dr_drill_identity_file=str(key.file))
    assert result.rc == 0, result.stdout[-4000:]
    report = last_report()
    steps = {s['name']: s for s in report['databases'][0]['steps']}
    assert all(s['ok'] for s in steps.values()), steps
    # one verification per artifact: the restore's checksum and key check are the proof, no separate verify pass
    assert {'restore', 'integrity', 'smoke', 'cleanup'} <= set(steps) and 'verify' not in steps
    assert not (tmp_path / 'scratch' / 'shop-drill.sqlite').exists()

    # the wrong key (per-database identity_file overrides the global one): the drill fails at verify
    database['identity_file'] = str(other.file)
    result = drill(dr_drill_identity_file=str(key.file))
    assert result.rc != 0
    failed = [s for s in last_report()['databases'][0]['steps'] if not s['ok']]
    assert failed and failed[0]['name'] == 'verify' and 'cannot be decrypted' in failed[0]['error']
    assert json.loads(next(backups.glob('*.manifest.json')).read_text())['verification']['ok'] is True
    assert not (tmp_path / 'scratch' / 'shop-drill.sqlite').exists()
