"""A DR drill must never say PASSED when a real recovery from that backup would not give what the report claims.

Real ansible-playbook runs of playbooks/dr_drill.yml (and drill_report) against real SQLite files and real
backups: each test feeds one way a drill could lie (a scratch target that is the live database under another
spelling, a catalog clock ahead of the drill, a restore that skipped objects, ...) and asserts on the report an
operator reads and on the state of the host afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sqlite3
import time
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook

SMOKE = [{'name': 'customers', 'sql': 'SELECT count(*) AS n FROM customers', 'expect': {'value_at_least': 100}}]


@pytest.fixture
def shop(tmp_path):
    db = tmp_path / 'app' / 'shop.sqlite'
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.executescript('CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL);')
    conn.executemany('INSERT INTO customers (email) VALUES (?)', [('c%d@example.com' % i,) for i in range(200)])
    conn.commit()
    conn.close()
    return {'db': db, 'backups': tmp_path / 'backups', 'reports': tmp_path / 'reports',
            'scratch': tmp_path / 'scratch' / 'shop-drill.sqlite', 'tmp': tmp_path}


def backup(shop):
    book = write_playbook(shop['tmp'], [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'sqlite', 'database': str(shop['db']), 'dest': str(shop['backups'])}}])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-3000:]
    return Path(result.result('backup')['manifest']['path'])


def drill(shop, **overrides):
    database = {'name': 'shop', 'engine': 'sqlite', 'database': str(shop['db']), 'backup_dir': str(shop['backups']),
                'scratch': str(shop['scratch']), 'smoke_queries': SMOKE}
    database.update(overrides)
    return run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(shop['reports']), 'dr_drill_databases': [database]})


def report_of(result):
    out = result.result('Write the drill report')
    return out, json.loads(Path(out['paths']['json']).read_text())


def customers(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute('SELECT count(*) FROM customers').fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize('alias', ['dot', 'dotdot', 'symlink', 'hardlink'])
def test_a_scratch_path_that_is_the_source_under_another_spelling_is_refused_before_anything_is_written(shop, alias):
    backup(shop)
    conn = sqlite3.connect(shop['db'])
    conn.execute("INSERT INTO customers (email) VALUES ('written-after-the-backup@example.com')")
    conn.commit()
    conn.close()
    app = shop['db'].parent
    if alias == 'dot':
        scratch = '%s/./shop.sqlite' % app
    elif alias == 'dotdot':
        scratch = '%s/../app/shop.sqlite' % app
    elif alias == 'symlink':
        os.symlink(shop['db'], shop['tmp'] / 'link.sqlite')
        scratch = str(shop['tmp'] / 'link.sqlite')
    else:
        os.link(shop['db'], shop['tmp'] / 'hard.sqlite')
        scratch = str(shop['tmp'] / 'hard.sqlite')
    result = drill(shop, scratch=scratch)
    assert shop['db'].exists(), 'the drill removed the live database'
    assert customers(shop['db']) == 201, 'the drill overwrote the live database with the backup'
    assert result.rc != 0 and 'PASSED' not in result.stdout
    out, report = report_of(result)
    db = report['databases'][0]
    assert not out['passed'] and any('is the source database itself' in r for r in db['reasons'])
    steps = {s['name']: s for s in db['steps']}
    assert 'restore' not in steps, 'nothing may be restored into a scratch target that is the source'
    assert steps['cleanup']['result'].startswith('not run')
    assert os.path.lexists(scratch), 'the clean-up removed the path that names the live database'


def pg_drill(db, tmp_path, **overrides):
    server = db.server
    database = {'name': db.name, 'engine': 'postgresql', 'database': db.name, 'backup_dir': str(tmp_path / 'backups'),
                'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
                'password_var': 'drill_password', 'smoke_queries': SMOKE}
    database.update(overrides)
    return run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(tmp_path / 'reports'), 'drill_password': server.password,
        'dr_drill_databases': [database]})


def pg_backup(db, tmp_path):
    server = db.server
    book = write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'postgresql', 'database': db.name, 'dest': str(tmp_path / 'backups'), 'login_host': server.host,
        'login_port': server.port, 'login_user': server.user, 'login_password': server.password}}])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-3000:]


def test_what_the_restore_could_not_apply_is_in_the_drill_report(pg_db, tmp_path):
    """A restore that skipped something the backup holds (here: a role's setting in the database, the role gone
    from the server) must say so in the report the operator reads, not only on the console of the job."""
    role = 'ghost_%s' % pg_db.name[-12:]
    pg_db.sql("CREATE TABLE customers (id int PRIMARY KEY, email text);"
              "INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 200) g;")
    pg_db.server.sql('CREATE ROLE %s' % role)
    pg_db.server.sql("ALTER ROLE %s IN DATABASE %s SET work_mem = '8MB'" % (role, pg_db.name))
    pg_backup(pg_db, tmp_path)
    pg_db.server.sql('DROP ROLE %s' % role)
    result = pg_drill(pg_db, tmp_path)
    out, report = report_of(result)
    db = report['databases'][0]
    restore = next(s for s in db['steps'] if s['name'] == 'restore')
    assert any(role in w for w in restore.get('warnings') or []), restore
    assert any(role in w for w in db.get('warnings') or []), db
    markdown = Path(out['paths']['markdown']).read_text()
    assert 'Warnings' in markdown and role in markdown
    assert role in Path(out['paths']['html']).read_text()
    assert 'warning' in report['verdict_line']


def test_cleaned_up_means_nothing_of_the_scratch_copy_is_left(shop):
    """A source in WAL mode restores into a WAL-mode scratch copy; opening it for the checks creates -wal/-shm
    beside it. 'scratch target cleaned up: yes' must mean no file of the copy (which holds the data) is left."""
    conn = sqlite3.connect(shop['db'])
    conn.execute('PRAGMA journal_mode=WAL')
    conn.close()
    backup(shop)
    result = drill(shop)
    assert result.rc == 0, result.stdout[-3000:]
    out, report = report_of(result)
    assert report['databases'][0]['cleaned_up'] is True
    assert sorted(os.listdir(shop['scratch'].parent)) == []


def test_an_integrity_check_that_could_not_run_says_what_was_not_checked(pg_db, tmp_path):
    """pg_amcheck cannot run for a drill login that may not install amcheck: the drill falls back to reading every
    row, which proves the heap readable but not one index. The report must say so (result and warnings), not
    only 'full read ...: ok'."""
    login = 'drill_%s' % pg_db.name[-12:]
    password = 'pw-%s' % pg_db.name[-8:]
    pg_db.sql("CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE);"
              "INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 200) g;")
    pg_db.server.sql("CREATE ROLE %s LOGIN CREATEDB PASSWORD '%s'" % (login, password))
    try:
        pg_backup(pg_db, tmp_path)
        server = pg_db.server
        database = {'name': pg_db.name, 'engine': 'postgresql', 'database': pg_db.name,
                    'backup_dir': str(tmp_path / 'backups'), 'login_host': server.host, 'login_port': server.port,
                    'login_user': login, 'password_var': 'drill_password', 'no_owner': True, 'smoke_queries': SMOKE}
        result = run_playbook('playbooks/dr_drill.yml', extravars={
            'dr_drill_report_dir': str(tmp_path / 'reports'), 'drill_password': password,
            'dr_drill_databases': [database]})
        out, report = report_of(result)
        db = report['databases'][0]
        integrity = next(s for s in db['steps'] if s['name'] == 'integrity')
        assert integrity['ok'] and 'full read' in integrity['result'], integrity
        assert 'indexes not checked' in integrity['result'] and 'pg_amcheck' in integrity['result'], integrity
        assert any('indexes not checked' in w for w in db['warnings']), db['warnings']
    finally:
        pg_db.server.sql('DROP DATABASE IF EXISTS "%s_drill"' % pg_db.name)
        pg_db.server.sql('DROP ROLE IF EXISTS %s' % login)


def test_what_the_file_backup_left_out_is_in_the_drill_report(tmp_path):
    """file_backup records what it did not archive (a socket, a file that changed while it was read) in the manifest's
    not_archived. The restored tree matches the manifest's member list, so the drill passed without a word: a
    recovery from that archive would lack those paths, and the report must name them."""
    etc = tmp_path / 'src' / 'etc' / 'app'
    etc.mkdir(parents=True)
    (etc / 'app.conf').write_text('listen 8080\n')
    os.mkfifo(etc / 'control.fifo')   # archived (and restored by the drill) as a FIFO
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(etc / 'control.sock'))   # a socket cannot be archived
    backups, reports = tmp_path / 'files', tmp_path / 'reports'
    book = write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.file_backup': {
        'name': 'app', 'paths': [str(tmp_path / 'src' / 'etc')], 'dest': str(backups)}}])
    try:
        made = run_playbook(book)
    finally:
        server.close()
    assert made.rc == 0, made.stdout[-3000:]
    result = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(reports), 'dr_drill_scratch_dir': str(tmp_path / 'scratch'),
        'dr_drill_databases': [], 'dr_drill_filesets': [{'name': 'app', 'backup_dir': str(backups)}]})
    out, report = report_of(result)
    db = report['databases'][0]
    assert any('control.sock' in w for w in db['warnings']), db
    assert not any('control.fifo' in w for w in db['warnings']), db
    assert 'control.sock' in Path(out['paths']['markdown']).read_text()
    assert not (tmp_path / 'scratch' / 'fileset-app').exists()


def test_a_recent_passing_drill_of_other_databases_does_not_skip_this_one(shop):
    """dr_drill_min_interval skips a drill while a passing report is younger: only when that report drilled
    (and passed) every database and file set of this run. A drill of shop alone must not stand in for a second
    database that has never been drilled (here it has no backup at all, so its drill fails)."""
    backup(shop)
    first = drill(shop)
    assert first.rc == 0, first.stdout[-3000:]
    # the same set within the interval after a passing drill of exactly it: skipped (regression guard)
    same = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(shop['reports']), 'dr_drill_min_interval': 3600, 'dr_drill_databases': [
            {'name': 'shop', 'engine': 'sqlite', 'database': str(shop['db']), 'backup_dir': str(shop['backups']),
             'scratch': str(shop['scratch']), 'smoke_queries': SMOKE}]})
    assert same.rc == 0 and 'not drilling again' in same.stdout
    assert len(list(shop['reports'].glob('drill-*.json'))) == 1
    other = shop['tmp'] / 'other.sqlite'
    sqlite3.connect(other).close()
    both = [{'name': 'shop', 'engine': 'sqlite', 'database': str(shop['db']), 'backup_dir': str(shop['backups']),
             'scratch': str(shop['scratch']), 'smoke_queries': SMOKE},
            {'name': 'other', 'engine': 'sqlite', 'database': str(other), 'backup_dir': str(shop['tmp'] / 'none'),
             'scratch': str(shop['tmp'] / 'scratch' / 'other-drill.sqlite')}]
    result = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(shop['reports']), 'dr_drill_databases': both, 'dr_drill_min_interval': 3600})
    assert result.rc != 0, 'the drill of shop alone stood in for other, which was never drilled'
    out, report = report_of(result)
    assert [db['name'] for db in report['databases']] == ['shop', 'other'] and not report['passed']


def test_a_redis_key_count_that_was_never_recorded_is_a_warning_not_a_silent_pass(tmp_path):
    """A Redis manifest without the snapshot's key count (taken before it was recorded): the integrity step passed
    with 'not recorded in the manifest', proving nothing about the keys. The report must say it was not checked."""
    from tests.harness.redis import RedisServer
    server = RedisServer().start()
    try:
        server.cli('SET', 'canary', 'alive')
        backups = tmp_path / 'backups'
        book = write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.redis_backup': {
            'host': server.host, 'port': server.port, 'password': server.password, 'database': 'cache',
            'dest': str(backups)}}])
        made = run_playbook(book)
        assert made.rc == 0, made.stdout[-3000:]
        [manifest] = backups.glob('*.manifest.json')
        data = json.loads(manifest.read_text())
        data['details'].pop('keys')
        manifest.write_text(json.dumps(data))
        result = run_playbook('playbooks/dr_drill.yml', extravars={
            'dr_drill_report_dir': str(tmp_path / 'reports'), 'dr_drill_scratch_dir': str(tmp_path / 'scratch'),
            'dr_drill_databases': [{'name': 'sessions', 'engine': 'redis', 'database': 'cache',
                                    'backup_dir': str(backups), 'expect_keys': ['canary']}]})
        out, report = report_of(result)
        db = report['databases'][0]
        integrity = next(s for s in db['steps'] if s['name'] == 'integrity')
        assert integrity['ok'] and 'not checked' in integrity['result'], integrity
        assert any('key count' in w and 'not checked' in w for w in db['warnings']), db['warnings']
        # The decrypted RDB went where dr_drill_scratch_dir says (it went to the system temp directory before).
        cleanup = result.result('Drill the Redis backup on a scratch redis-server')['cleanup']
        assert os.path.dirname(cleanup['path']) == str(tmp_path / 'scratch') and cleanup['cleaned_up'], cleanup
    finally:
        server.stop()


def test_a_vacuous_smoke_query_reaches_the_report_as_a_warning(shop):
    backup(shop)
    result = drill(shop, smoke_queries=[{'name': 'any orders', 'sql': 'SELECT * FROM customers WHERE id < 0',
                                         'expect': {'rows_at_least': 0}}])
    assert result.rc == 0, result.stdout[-3000:]
    out, report = report_of(result)
    db = report['databases'][0]
    assert db['passed'] and any('any orders' in w and 'any answer' in w for w in db['warnings']), db['warnings']
    assert '(1 warning)' in report['verdict_line']
    assert 'any answer' in Path(out['paths']['html']).read_text()
    # dr_drill_fail_on_warnings: the same drill fails, the warning as its reason
    strict = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(shop['reports']), 'dr_drill_fail_on_warnings': True, 'dr_drill_databases': [
            {'name': 'shop', 'engine': 'sqlite', 'database': str(shop['db']), 'backup_dir': str(shop['backups']),
             'scratch': str(shop['scratch']),
             'smoke_queries': [{'name': 'any orders', 'sql': 'SELECT 1 WHERE 0', 'expect': {'rows_at_least': 0}}]}]})
    assert strict.rc != 0
    out, report = report_of(strict)
    assert not report['passed'] and any('any answer' in r for r in report['reasons'])


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('chattr'), reason='needs root and chattr')
def test_an_offsite_copy_that_cannot_be_removed_still_gives_a_failed_report(shop):
    """The fetched offsite copy is removed in the drill's always: section. When that removal failed the host
    aborted there: no report, no history line, and the newest report (perhaps a PASSED one) stood. The drill must
    end in a FAILED report whose clean-up says the copy was left behind."""
    stuck = shop['tmp'] / 'scratch' / 'offsite-shop' / 'stuck'
    stuck.parent.mkdir(parents=True)
    stuck.write_bytes(b'a piece of an earlier fetch')
    subprocess.run(['chattr', '+i', str(stuck)], check=True)
    try:
        result = run_playbook('playbooks/dr_drill.yml', extravars={
            'dr_drill_report_dir': str(shop['reports']), 'dr_drill_scratch_dir': str(shop['tmp'] / 'scratch'),
            'dr_drill_offsite': {'backend': 's3', 'bucket': 'nowhere'},
            'dr_drill_databases': [{'name': 'shop', 'engine': 'sqlite', 'database': str(shop['db']),
                                    'backup_dir': str(shop['backups']), 'from_offsite': True,
                                    'smoke_queries': SMOKE}]})
        assert result.rc != 0
        out, report = report_of(result)
        db = report['databases'][0]
        assert not report['passed'] and not db['cleaned_up']
        cleanup = next(s for s in db['steps'] if s['name'] == 'cleanup')
        assert not cleanup['ok'] and 'offsite-shop' in cleanup['error'], cleanup
        assert [h['passed'] for h in map(json.loads, (shop['reports'] / 'drills.jsonl').read_text().splitlines())] \
            == [False]
    finally:
        subprocess.run(['chattr', '-i', str(stuck)], check=False)


def test_objects_a_mariadb_restore_could_not_create_are_in_the_drill_report(maria_db, tmp_path):
    """A one-time event whose time has passed (ON COMPLETION NOT PRESERVE; the source keeps it while the scheduler
    has not run it) is dropped by the server as the dump creates it: the restored copy lacks an object the source
    held. db_restore says so as an Ansible warning, which the registered result loses: the report must list it."""
    maria_db.sql("CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(64));"
                 "INSERT INTO customers SELECT seq, CONCAT('c', seq) FROM seq_1_to_200;")
    if maria_db.server.sql('SELECT @@event_scheduler', superuser=True)[0][0] not in ('OFF', 'DISABLED'):
        pytest.skip('the event scheduler runs on the test server')
    maria_db.sql('CREATE EVENT overdue ON SCHEDULE AT CURRENT_TIMESTAMP + INTERVAL 2 SECOND '
                 'ON COMPLETION NOT PRESERVE DO DELETE FROM customers WHERE id < 0')
    time.sleep(3)
    server = maria_db.server
    book = write_playbook(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
        'engine': 'mariadb', 'database': maria_db.name, 'dest': str(tmp_path / 'backups'), 'login_host': server.host,
        'login_port': server.port, 'login_user': server.user, 'login_password': server.password}}])
    made = run_playbook(book)
    assert made.rc == 0, made.stdout[-3000:]
    result = run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(tmp_path / 'reports'), 'drill_password': server.password,
        'dr_drill_databases': [{'name': maria_db.name, 'engine': 'mariadb', 'database': maria_db.name,
                                'backup_dir': str(tmp_path / 'backups'), 'login_host': server.host,
                                'login_port': server.port, 'login_user': server.user,
                                'password_var': 'drill_password', 'smoke_queries': SMOKE}]})
    out, report = report_of(result)
    db = report['databases'][0]
    assert any('The source held 1 events' in w for w in db['warnings']), (db['warnings'], result.stdout[-3000:])
