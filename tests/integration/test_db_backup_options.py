"""Every db_backup/backup_prune option a user can set does what it says (the lowlydba lesson)."""

from __future__ import annotations

import os
import sqlite3
import subprocess

from tests.harness.playbook import play


def test_sqlite_compression_none_threads_verify_false_retention_and_prune_check_diff(tmp_path):
    db = tmp_path / 'app.db'
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    conn.executemany('INSERT INTO t (v) VALUES (?)', [('row %d' % i,) for i in range(1000)])
    conn.commit()
    conn.close()
    dest = tmp_path / 'b'
    base = {'engine': 'sqlite', 'database': str(db), 'dest': str(dest)}
    first = play(tmp_path, [
        {'name': 'plain', 'opsready.operations.db_backup': dict(base, compression='none', verify=False)}])
    plain = first.result('plain')['manifest']
    assert plain['compression'] == 'none' and plain['path'].endswith('.sqlite') and 'verification' not in plain
    assert first.result('plain')['verification'] == []
    assert sqlite3.connect(plain['path']).execute('SELECT count(*) FROM t').fetchone()[0] == 1000
    result = play(tmp_path, [
        {'name': 'threads', 'opsready.operations.db_backup': dict(base, threads=2, compression_level=19)},
        {'name': 'third', 'opsready.operations.db_backup': dict(base, compression='gzip')},
        {'name': 'prune check', 'check_mode': True, 'diff': True,
         'opsready.operations.backup_prune': {'path': str(dest), 'keep_last': 1}},
    ])
    assert result.rc == 0, result.stdout[-4000:]
    check = result.result('prune check')
    assert check['changed'] is True and len(check['deleted']) == 2
    assert os.path.exists(check['deleted'][0]), 'check mode must not delete'
    assert os.path.basename(check['deleted'][0]) in check['diff']['before']
    assert os.path.basename(check['deleted'][0]) not in check['diff']['after']
    assert result.result('threads')['manifest']['compression_level'] == 19
    assert result.result('third')['manifest']['path'].endswith('.sqlite.gz')
    result = play(tmp_path, [
        {'name': 'with retention', 'opsready.operations.db_backup': dict(base, retention={'keep_last': 2})},
        {'name': 'prune again', 'opsready.operations.backup_prune': {'path': str(dest), 'keep_last': 2}},
    ])
    assert result.rc == 0, result.stdout[-4000:]
    retained = result.result('with retention')
    assert len(retained['deleted']) == 2 and plain['path'] in retained['deleted']
    assert retained['deleted_count'] == 2 and retained['lists_truncated'] is False
    assert not os.path.exists(plain['path'])
    again = result.result('prune again')
    assert again['changed'] is False and again['deleted'] == []
    newest = result.result('with retention')['manifest']
    # The unverified plain backup went first; the newest verified full survives.
    assert os.path.exists(newest['path'])


def test_sqlite_retention_lists_at_most_max_listed(tmp_path):
    """retention.max_listed cuts deleted as backup_prune's max_listed cuts its lists (issue 22); the count is exact."""
    db = tmp_path / 'app.db'
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY)')
    conn.commit()
    conn.close()
    base = {'engine': 'sqlite', 'database': str(db), 'dest': str(tmp_path / 'b')}
    first = play(tmp_path, [{'name': 'b%d' % n, 'opsready.operations.db_backup': base} for n in range(3)])
    assert first.rc == 0, first.stdout[-4000:]
    paths = [first.result('b%d' % n)['manifest']['path'] for n in range(3)]
    task = {'name': 'cut', 'opsready.operations.db_backup': dict(base, retention={'keep_last': 1, 'max_listed': 1})}
    checked = play(tmp_path, [dict(task, check_mode=True)]).result('cut')
    real = play(tmp_path, [task]).result('cut')
    for result in (checked, real):
        assert result['deleted'] == paths[:1] and result['deleted_count'] == 3, result
        assert result['lists_truncated'] is True and 'max_listed: -1' in result['lists_note']
    assert not any(os.path.exists(path) for path in paths)


def test_postgresql_all_databases_dumps_each_plus_globals(postgres_factory, tmp_path):
    server = postgres_factory()
    for name in ('alpha', 'beta'):
        server.create_database(name)
        server.sql('CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g', database=name)
    server.sql("CREATE ROLE reporting NOLOGIN")
    result = play(tmp_path, [{'name': 'all', 'opsready.operations.db_backup': {
        'engine': 'postgresql', 'all_databases': True, 'dest': str(tmp_path / 'b'), 'login_host': server.host,
        'login_port': server.port, 'login_user': server.user, 'login_password': '{{ pw }}'}}], {'pw': server.password})
    assert result.rc == 0, result.stdout[-4000:]
    manifests = result.result('all')['manifests']
    assert {'alpha', 'beta', 'postgres', '@globals'} <= {m['database'] for m in manifests}
    assert all(m['verification']['ok'] for m in manifests)
    globals_sql = subprocess.run(['zstd', '-dc', [m for m in manifests if m['database'] == '@globals'][0]['path']],
                                 capture_output=True, check=True).stdout
    assert b'CREATE ROLE reporting' in globals_sql
    # A killed earlier run left a partial dump of one database; the next all_databases run removes it,
    # and retention prunes every set it wrote (each database and @globals), not an '@all' set that
    # no manifest carries.
    dest = tmp_path / 'b'
    leftover = dest / ('postgresql-alpha-full-%s.dump.zst.partial' % '20260101T000000000000Z')
    leftover.write_bytes(b'PGDMP half')
    again = play(tmp_path, [{'name': 'again', 'opsready.operations.db_backup': {
        'engine': 'postgresql', 'all_databases': True, 'dest': str(dest), 'login_host': server.host,
        'login_port': server.port, 'login_user': server.user, 'login_password': '{{ pw }}',
        'retention': {'keep_last': 1}}}], {'pw': server.password})
    assert again.rc == 0, again.stdout[-4000:]
    res = again.result('again')
    assert str(leftover) in res['leftovers_removed'] and not leftover.exists()
    first_paths = {m['path'] for m in manifests}
    assert set(res['deleted']) == first_paths, (res['deleted'], first_paths)
    assert not any(os.path.exists(p) for p in first_paths)
    assert all(os.path.exists(m['path']) for m in res['manifests'])
    fresh = play(tmp_path, [{'name': 'fresh', 'opsready.operations.db_backup': {
        'engine': 'postgresql', 'all_databases': True, 'dest': str(dest), 'login_host': server.host,
        'login_port': server.port, 'login_user': server.user, 'login_password': '{{ pw }}',
        'min_interval': 3600}}], {'pw': server.password})
    skipped = fresh.result('fresh')
    assert skipped['skipped_fresh'] is True and skipped['changed'] is False
    assert {m['path'] for m in skipped['manifests']} == {m['path'] for m in res['manifests']}
