"""Hostile database, schema, table and role names through every PostgreSQL module that takes a name.

A real PostgreSQL 15 with ``standard_conforming_strings`` on (the default) and off (where ``'a\\'b'`` ends
a plain literal early): db_backup, backup_verify, db_restore (under another name, then with replace),
db_maintenance (vacuum, analyze, reindex, cleanup), drill_step (integrity, smoke) and health_check's db
check, driven through ansible-playbook. A ``prod`` database must survive everything, every operation must
act on exactly the named object (the smoke query asks the server which database it is in), and a name
PostgreSQL cannot hold (more than 63 bytes) must be refused before anything is done, never truncated.
"""

from __future__ import annotations

import json

import pytest

from tests.harness.playbook import conn, play

LONG63 = 'é' * 31 + 'x'  # 63 bytes (PostgreSQL's NAMEDATALEN - 1), 32 characters
assert len(LONG63.encode('utf-8')) == 63

NAMES = {
    'quote': "a'b",
    'backslash_quote': "a\\'b",
    'injection': "x'; DROP DATABASE prod; --",
    'double_quote': 'a"b',
    'newline': 'new\nline',
    'tab': 'tab\tname',
    'unicode': 'Ünïcødé_数据',
    'long63': LONG63,
    'dash': '-dash',
}


def fit(prefix: str, name: str) -> str:
    """``prefix + name`` cut to 63 bytes (on a character boundary)."""
    out = prefix + name
    while len(out.encode('utf-8')) > 63:
        out = out[:-1]
    return out


def qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ql(value: str) -> str:
    return "E'" + value.replace('\\', '\\\\').replace("'", "''") + "'"


def task(name: str, module: str, args: dict, **extra) -> dict:
    return dict({'name': name, 'opsready.operations.' + module: args, 'ignore_errors': True}, **extra)


def failed(res: dict) -> bool:
    return bool(res.get('failed')) or res.get('_event') == 'runner_on_failed'


def databases(server) -> set:
    return {r[0] for r in server.sql('SELECT datname FROM pg_database', superuser=True)}


def seed(server, name: str) -> None:
    """Role, database owned by it, a schema and a table named ``name`` (with an index), and a decoy table."""
    server.sql('CREATE ROLE %s LOGIN; CREATE DATABASE %s OWNER %s; GRANT %s TO %s; '
               'COMMENT ON DATABASE %s IS %s'
               % (qi(name), qi(name), qi(name), qi(name), qi(server.user), qi(name), ql('db ' + name)),
               superuser=True)
    server.sql('CREATE SCHEMA %(s)s AUTHORIZATION %(o)s; '
               'CREATE TABLE %(s)s.%(s)s (id int PRIMARY KEY, at timestamptz NOT NULL, v text) '
               'WITH (autovacuum_enabled = false); CREATE INDEX %(i)s ON %(s)s.%(s)s (v); '
               'INSERT INTO %(s)s.%(s)s SELECT g, now() - g * interval \'1 day\', %(l)s FROM generate_series(1, 60) g; '
               'ALTER TABLE %(s)s.%(s)s OWNER TO %(o)s; '
               'CREATE TABLE public.events (id int PRIMARY KEY, at timestamptz NOT NULL); '
               'INSERT INTO public.events SELECT g, now() - g * interval \'1 day\' FROM generate_series(1, 50) g; '
               'DELETE FROM %(s)s.%(s)s WHERE id %% 3 = 0'
               % {'s': qi(name), 'i': qi(fit('i', name)), 'o': qi(server.user), 'l': ql(name)},
               database=name, superuser=True)


@pytest.fixture(params=['on', 'off'], ids=['scs_on', 'scs_off'])
def pg(request, postgres_factory):
    server = postgres_factory(extra_conf={'standard_conforming_strings': request.param,
                                          'escape_string_warning': 'off'})
    assert server.sql('SHOW standard_conforming_strings')[0][0] == request.param
    server.sql('CREATE DATABASE prod; ', superuser=True)
    server.sql('CREATE TABLE keep (id int); INSERT INTO keep VALUES (1), (2), (3)', database='prod', superuser=True)
    return server


def test_hostile_names_through_every_module(pg, tmp_path):
    backups = tmp_path / 'backups'
    backups.mkdir()
    c = conn(pg)
    tasks = []
    for key, name in NAMES.items():
        seed(pg, name)
        copy = fit('copy ', name)
        tasks += [
            task('backup %s' % key, 'db_backup', dict(c, engine='postgresql', database=name, dest=str(backups))),
            task('verify %s' % key, 'backup_verify', {'path': str(backups), 'engine': 'postgresql',
                                                      'database': name}),
            task('restore copy %s' % key, 'db_restore', dict(c, engine='postgresql', src=str(backups),
                                                             source_database=name, database=copy)),
            task('restore replace %s' % key, 'db_restore', dict(c, engine='postgresql', src=str(backups),
                                                                source_database=name, database=name,
                                                                replace=True)),
            task('maintain %s' % key, 'db_maintenance', dict(
                c, engine='postgresql', database=name, tasks=['cleanup', 'vacuum', 'analyze', 'reindex'],
                force=True, min_size_mb=0,
                cleanup=[{'table': 'events', 'column': 'at', 'older_than_days': 30, 'batch_size': 7}])),
            task('integrity %s' % key, 'drill_step', dict(c, step='integrity', engine='postgresql', database=copy,
                                                          source=name)),
            task('smoke %s' % key, 'drill_step', dict(
                c, step='smoke', engine='postgresql', database=copy, source=name,
                queries=[{'name': 'where', 'sql': 'SELECT current_database() AS db, count(*) AS n FROM %s.%s'
                          % (qi(name), qi(name)), 'expect': {'value_equals': copy}}])),
            {'name': 'health %s' % key, 'opsready.operations.health_check': {
                'checks': [{'type': 'db', 'name': 'db', 'engine': 'postgresql', 'host': pg.host, 'port': pg.port,
                            'user': pg.user, 'password': '{{ pg_password }}', 'database': name, 'timeout': 10}],
                'metrics': [], 'fail_on': 'never',
                'thresholds': {'cpu_percent': {'warning': None, 'critical': None},
                               'load_per_core': {'warning': None, 'critical': None},
                               'latency_ms': {'warning': None, 'critical': None}}}, 'ignore_errors': True},
        ]
    result = play(tmp_path, tasks, {'pg_password': pg.password})
    problems = []
    present = databases(pg)
    assert 'prod' in present, 'prod was dropped'
    assert pg.sql('SELECT count(*) FROM keep', database='prod', superuser=True) == [('3',)]
    for key, name in NAMES.items():
        copy = fit('copy ', name)
        for step in ('backup', 'verify', 'restore copy', 'restore replace', 'maintain', 'integrity', 'smoke'):
            res = result.result('%s %s' % (step, key))
            if failed(res):
                problems.append('%s %r: %s' % (step, name, str(res.get('msg'))[:300]))
        backup = result.result('backup %s' % key)
        if not failed(backup):
            manifests = [json.loads(p.read_text()) for p in backups.glob('*.json')]
            mine = [m for m in manifests if m.get('database') == name]
            if len(mine) != 1 or mine[0].get('database_properties', {}).get('name') != name:
                problems.append('backup %r: manifests %r' % (name, [m.get('database') for m in manifests]))
        if name not in present or copy not in present:
            problems.append('%r: database or its copy missing (%r, %r)' % (name, name in present, copy in present))
            continue
        # The restored copy and the replaced original hold the hostile table, owner and comment.
        for db in (name, copy):
            rows = pg.sql('SELECT count(*), min(v), max(v) FROM %s.%s' % (qi(name), qi(name)), database=db,
                          superuser=True)
            if rows != [('40', name, name)]:
                problems.append('%r: table in %r holds %r' % (name, db, rows))
            owner = pg.sql('SELECT pg_get_userbyid(datdba), shobj_description(oid, \'pg_database\') FROM pg_database '
                           'WHERE datname = %s' % ql(db), superuser=True)
            if owner != [(name, 'db ' + name)]:
                problems.append('%r: owner/comment of %r is %r' % (name, db, owner))
        maint = result.result('maintain %s' % key)
        if not failed(maint):
            objects = {(a['task'], a['object']) for a in maint.get('actions', []) if a.get('status') == 'done'}
            label = '%s.%s' % (name, name)
            for wanted in (('vacuum', label), ('analyze', label), ('reindex', '%s.%s' % (name, fit('i', name)))):
                if wanted not in objects:
                    problems.append('maintain %r: %r not done (%r)' % (name, wanted, sorted(objects)))
            left = pg.sql('SELECT count(*) FROM public.events', database=name, superuser=True)
            if left != [('29',)]:
                problems.append('maintain %r: cleanup left %r rows of 50 (29 expected)' % (name, left))
            vacuumed = pg.sql('SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE schemaname = %s '
                              'AND relname = %s' % (ql(name), ql(name)), database=name, superuser=True)
            if vacuumed != [('t',)]:
                problems.append('maintain %r: the hostile table was not vacuumed (%r)' % (name, vacuumed))
        health = result.result('health %s' % key)
        checks = health.get('checks') or [{}]
        if not checks[0].get('ok'):
            problems.append('health %r: %r' % (name, checks[0].get('message')))
    assert not problems, '\n'.join(problems)


TOO_LONG = 'é' * 32  # 64 bytes: PostgreSQL would cut it to the first 63 bytes ("é" * 31 + half a character)


def test_names_longer_than_63_bytes_are_refused_before_anything_happens(pg, tmp_path):
    """The server truncates a long name to 63 bytes: the truncated name must never be acted on instead."""
    # A database whose name is what the server would truncate a longer one to (cut on a character boundary).
    prefix = 'a' * 63
    long_name = prefix + 'b'
    pg.sql('CREATE DATABASE %s OWNER %s' % (qi(prefix), qi(pg.user)), superuser=True)
    backups = tmp_path / 'backups'
    backups.mkdir()
    c = conn(pg)
    tasks = []
    for too_long in (long_name, TOO_LONG):
        tasks += [
            task('backup', 'db_backup', dict(c, engine='postgresql', database=too_long, dest=str(backups))),
            task('restore', 'db_restore', dict(c, engine='postgresql', src=str(backups), source_database='prod',
                                               database=too_long)),
            task('maintain', 'db_maintenance', dict(c, engine='postgresql', database=too_long, tasks=['vacuum'])),
            task('integrity', 'drill_step', dict(c, step='integrity', engine='postgresql', database=too_long,
                                                 source='prod')),
            task('smoke', 'drill_step', dict(c, step='smoke', engine='postgresql', database=too_long, source='prod',
                                             queries=[{'name': 'q', 'sql': 'SELECT 1'}])),
            {'name': 'health', 'opsready.operations.health_check': {
                'checks': [{'type': 'db', 'name': 'db', 'engine': 'postgresql', 'host': pg.host, 'port': pg.port,
                            'user': pg.user, 'password': '{{ pg_password }}', 'database': too_long}],
                'metrics': [], 'fail_on': 'never'}, 'ignore_errors': True},
        ]
    tasks.insert(0, task('backup prod', 'db_backup', dict(c, engine='postgresql', database='prod',
                                                          dest=str(backups))))
    result = play(tmp_path, tasks, {'pg_password': pg.password})
    assert not failed(result.result('backup prod')), result.result('backup prod')
    for step in ('backup', 'restore', 'maintain', 'integrity', 'smoke'):
        for res in result.task_results(step):
            assert failed(res), (step, res)
            assert '63 bytes' in res['msg'], (step, res['msg'])
    for res in result.task_results('health'):
        check = res['checks'][0]
        assert not check['ok'] and '63 bytes' in check['message'], check
    # Nothing was dumped, restored or created under the truncated name.
    assert [p.name for p in backups.glob('*.json') if 'prod' not in p.name] == []
    assert databases(pg) & {prefix, 'prod'} == {prefix, 'prod'}
    assert not [d for d in databases(pg) if d.startswith('éé') or d.startswith(prefix + '_')]


def test_hostile_table_names_in_maintenance_options_are_refused_clearly(pg, tmp_path):
    name = "x'; DROP TABLE keep; --"
    c = conn(pg)
    maintain = task('maintain', 'db_maintenance', dict(
        c, engine='postgresql', database='prod', tasks=['cleanup'],
        cleanup=[{'table': name, 'column': 'id', 'older_than_days': 1, 'column_format': 'epoch'}]))
    result = play(tmp_path, [maintain], {'pg_password': pg.password})
    res = result.result('maintain')
    assert failed(res) and 'does not exist' in res['msg'], res  # only a name (always quoted): not found
    assert pg.sql('SELECT count(*) FROM keep', database='prod', superuser=True) == [('3',)]


def test_a_name_that_reads_like_a_connection_string_is_only_a_name(pg, tmp_path):
    """``psql -d 'dbname=prod'`` connects to prod: every module must act on the database named ``dbname=prod``."""
    name = 'dbname=prod'
    pg.sql('CREATE DATABASE %s OWNER %s' % (qi(name), qi(pg.user)), superuser=True)
    pg.sql('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)', database=name)
    backups = tmp_path / 'backups'
    backups.mkdir()
    c = conn(pg)
    tasks = [
        task('backup', 'db_backup', dict(c, engine='postgresql', database=name, dest=str(backups))),
        task('maintain', 'db_maintenance', dict(c, engine='postgresql', database=name, tasks=['vacuum'],
                                                force=True)),
        task('integrity', 'drill_step', dict(c, step='integrity', engine='postgresql', database=name,
                                             source='prod')),
        task('smoke', 'drill_step', dict(c, step='smoke', engine='postgresql', database=name, source='prod',
                                         queries=[{'name': 'where', 'sql': 'SELECT current_database() AS db',
                                                   'expect': {'value_equals': name}}])),
        # restored under a name that reads like a connection string too: pg_restore must load into it
        task('restore', 'db_restore', dict(c, engine='postgresql', src=str(backups), source_database=name,
                                           database='dbname=copy')),
        {'name': 'health', 'opsready.operations.health_check': {
            'checks': [{'type': 'db', 'name': 'db', 'engine': 'postgresql', 'host': pg.host, 'port': pg.port,
                        'user': pg.user, 'password': '{{ pg_password }}', 'database': 'dbname=nosuchdb'}],
            'metrics': [], 'fail_on': 'never'}, 'ignore_errors': True},
    ]
    result = play(tmp_path, tasks, {'pg_password': pg.password})
    for step in ('backup', 'maintain', 'integrity', 'smoke', 'restore'):
        assert not failed(result.result(step)), (step, result.result(step).get('msg'))
    assert pg.sql('SELECT id FROM t', database='dbname=copy', superuser=True) == [('1',)]
    assert [a['object'] for a in result.result('maintain')['actions']] == ['public.t']
    manifest = [json.loads(p.read_text()) for p in backups.glob('*.json')]
    assert [m['database_properties']['name'] for m in manifest] == [name]
    # The database "dbname=nosuchdb" does not exist: the check must say so, not connect to a database named
    # nosuchdb (or anything else) through the expanded connection string.
    check = result.result('health')['checks'][0]
    assert not check['ok'] and 'database "dbname=nosuchdb" does not exist' in check['message'], check
