"""Secrets hygiene of the roles that loop over databases: recovery, maintenance, dr_drill (and backup).

Each role runs through ansible-runner, the way AWX runs it, against the harness's real PostgreSQL with a
password login. The password comes from a vars file (as a vault file would), and the role items only name
it (``password_var``). Every test asserts the password string appears in no job event (``json.dumps`` of
all of them, what AWX stores), not in stdout, and in no file the role wrote (backups, manifests, reports).
An item that carries ``login_password`` is refused, and the refusal does not leak it either. A control run
with the old pattern (the password in the loop item) shows the scan does find a leak.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

from tests.harness.playbook import run_playbook

SECRET_VAR = 'vault_db_password'


def write_vault(tmp_path: Path, password: str) -> Path:
    vault = tmp_path / 'vault.yml'
    vault.write_text(json.dumps({SECRET_VAR: password}))
    vault.chmod(0o600)
    return vault


def run_role(tmp_path: Path, role: str, role_vars: Dict[str, Any], password: str, **kw: Any):
    """A play loading the password from a vars file (like a vault file) and running the role."""
    vault = write_vault(tmp_path, password)
    book = tmp_path / ('play-%s-%d.yml' % (role, len(list(tmp_path.glob('play-*.yml')))))
    book.write_text(json.dumps([{'name': 'run %s' % role, 'hosts': 'localhost', 'gather_facts': False,
                                 'vars_files': [str(vault)], 'vars': role_vars,
                                 'roles': [{'role': 'opsready.operations.%s' % role}]}]))
    return run_playbook(str(book), **kw)


def files_under(*dirs: Path) -> List[Path]:
    found = []
    for directory in dirs:
        for root, dummy, names in os.walk(directory):
            found += [Path(root) / n for n in names]
    return found


def assert_no_leak(result, password: str, *dirs: Path) -> None:
    events = json.dumps(result.events)
    assert len(result.events) > 5, 'the scan must see the job'
    assert password not in events, 'the password is in a job event'
    assert password not in result.stdout, 'the password is in stdout'
    scanned = files_under(*dirs)
    for path in scanned:
        assert password.encode() not in path.read_bytes(), 'the password is in %s' % path


def conn(server) -> Dict[str, Any]:
    return {'login_host': server.host, 'login_port': server.port, 'login_user': server.user}


def seed(db, rows: int = 500) -> None:
    db.sql("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL);"
           "INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, %d) g;" % rows)


def take_backup(tmp_path: Path, db) -> Path:
    """The backup role (already on password_var) takes the full the other roles use."""
    backups = tmp_path / 'backups'
    result = run_role(tmp_path, 'backup', {
        'backup_dir': str(backups), 'backup_retention': {},
        'backup_databases': [dict(conn(db.server), engine='postgresql', database=db.name, password_var=SECRET_VAR)],
    }, db.server.password)
    assert result.rc == 0, result.stdout[-4000:]
    assert_no_leak(result, db.server.password, backups)
    return backups / 'postgresql'


def test_the_scan_finds_a_password_in_a_loop_item(pg_db, tmp_path):
    """Control: the old pattern (password in the loop item) leaks into job events and stdout, even though
    db_restore marks login_password no_log - so the assertions below can fail."""
    password = pg_db.server.password
    vault = write_vault(tmp_path, password)
    book = tmp_path / 'old-pattern.yml'
    book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'vars_files': [str(vault)], 'tasks': [
        {'name': 'restore (old pattern)', 'opsready.operations.db_restore': {
            'engine': 'postgresql', 'src': '{{ item.src }}', 'database': '{{ item.database }}',
            'login_password': '{{ item.login_password }}'},
         'loop': [{'src': str(tmp_path / 'missing'), 'database': 'nothing',
                   'login_password': '{{ %s }}' % SECRET_VAR}],
         'ignore_errors': True}]}]))
    result = run_playbook(str(book))
    assert password in json.dumps(result.events)
    assert password in result.stdout


def test_recovery_role_keeps_the_password_out_of_events_output_and_files(pg_db, tmp_path):
    server, password = pg_db.server, pg_db.server.password
    seed(pg_db)
    src = take_backup(tmp_path, pg_db)
    restored = pg_db.name + '_rec'
    item = dict(conn(server), engine='postgresql', src=str(src), source_database=pg_db.name, database=restored,
                password_var=SECRET_VAR)
    role_vars = {
        'recovery_databases': [item],
        'recovery_services': [{'name': 'orders-db', 'restart_command': 'true',
                               'db': {'engine': 'postgresql', 'host': server.host, 'port': server.port,
                                      'user': server.user, 'password_var': SECRET_VAR, 'database': restored}}],
        'recovery_health_delay': 1,
    }
    try:
        plan = run_role(tmp_path, 'recovery', role_vars, password, check=True, diff=True)
        assert plan.rc == 0, plan.stdout[-4000:]
        assert_no_leak(plan, password, tmp_path / 'backups')

        run = run_role(tmp_path, 'recovery', role_vars, password, diff=True)
        assert run.rc == 0, run.stdout[-4000:]
        assert server.sql('SELECT count(*) FROM orders', database=restored)[0][0] == '500'
        restore = run.result('Restore databases')['results'][0]
        assert restore['changed'] is True and restore['item']['password_var'] == SECRET_VAR
        assert 'login_password' not in restore['item']
        assert_no_leak(run, password, tmp_path / 'backups')

        # a password written into the item is refused before anything runs, without printing it
        server.drop_database(restored)
        refused = run_role(tmp_path, 'recovery', dict(role_vars, recovery_databases=[
            dict({k: v for k, v in item.items() if k != 'password_var'}, login_password='{{ %s }}' % SECRET_VAR)]),
            password)
        assert refused.rc != 0
        assert 'set login_password' in refused.stdout and 'password_var' in refused.stdout
        assert_no_leak(refused, password, tmp_path / 'backups')
        assert not server.sql("SELECT 1 FROM pg_database WHERE datname = '%s'" % restored)

        # a password_var naming nothing is refused naming the variable
        missing = run_role(tmp_path, 'recovery', dict(role_vars, recovery_databases=[
            dict(item, password_var='vault_no_such_password')]), password)
        assert missing.rc != 0 and 'password_var vault_no_such_password names no defined variable' in missing.stdout
    finally:
        server.drop_database(restored)


def test_maintenance_role_keeps_the_password_out_of_events_and_output(pg_db, tmp_path):
    password = pg_db.server.password
    seed(pg_db)
    # force: autovacuum may have analyzed the fresh table already, and the point here is that ANALYZE runs
    entry = dict(conn(pg_db.server), engine='postgresql', database=pg_db.name, tasks=['analyze'], force=True,
                 password_var=SECRET_VAR)
    run = run_role(tmp_path, 'maintenance', {'maintenance_databases': [entry]}, password, diff=True)
    assert run.rc == 0, run.stdout[-4000:]
    done = run.result('Run database maintenance')['results'][0]
    assert [a['object'] for a in done['actions'] if a['status'] == 'done'] == ['public.orders'], done['actions']
    assert_no_leak(run, password)

    refused = run_role(tmp_path, 'maintenance', {'maintenance_databases': [
        dict({k: v for k, v in entry.items() if k != 'password_var'}, login_password='{{ %s }}' % SECRET_VAR)]},
        password)
    assert refused.rc != 0 and 'set login_password' in refused.stdout
    assert_no_leak(refused, password)


def test_dr_drill_role_keeps_the_password_out_of_events_output_and_reports(pg_db, tmp_path):
    password = pg_db.server.password
    seed(pg_db)
    reports, backups = tmp_path / 'reports', tmp_path / 'drill-backups'
    database = dict(conn(pg_db.server), name='orders', engine='postgresql', database=pg_db.name,
                    backup_dir=str(backups), password_var=SECRET_VAR,
                    smoke_queries=[{'name': 'orders', 'sql': 'SELECT count(*) AS n FROM orders',
                                    'expect': {'value_equals': 500}}])
    role_vars = {'dr_drill_report_dir': str(reports), 'dr_drill_backup_first': True, 'dr_drill_databases': [database]}
    run = run_role(tmp_path, 'dr_drill', role_vars, password)
    assert run.rc == 0, run.stdout[-4000:]
    report = run.result('Write the drill report')
    assert report['passed'] is True
    assert {p.suffix for p in files_under(reports)} >= {'.json', '.md', '.html', '.jsonl'}
    assert_no_leak(run, password, reports, backups)

    refused = run_role(tmp_path, 'dr_drill', dict(role_vars, dr_drill_databases=[
        dict({k: v for k, v in database.items() if k != 'password_var'}, login_password='{{ %s }}' % SECRET_VAR)]),
        password)
    assert refused.rc != 0 and 'set login_password' in refused.stdout and 'password_var' in refused.stdout
    assert_no_leak(refused, password, reports, backups)
