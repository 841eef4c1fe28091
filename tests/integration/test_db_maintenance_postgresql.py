"""db_maintenance against a real PostgreSQL 15: batched clean-up, VACUUM (ANALYZE), ANALYZE, REINDEX CONCURRENTLY
of a bloated index (estimate and pgstattuple agree), lock timeout. Assertions read the server afterwards."""

from __future__ import annotations

import subprocess
import time

from tests.harness.playbook import conn, play


def maint(db, **args) -> dict:
    return {'name': 'maint', 'opsready.operations.db_maintenance': dict(conn(db.server), engine='postgresql',
                                                                        database=db.name, **args)}


def stats(db, table: str) -> tuple:
    row = db.sql("SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL, n_dead_tup FROM pg_stat_user_tables "
                 "WHERE relname = '%s'" % table)[0]
    return row[0] == 't', row[1] == 't', int(row[2])


def fp(db, table: str) -> tuple:
    row = db.sql("SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM %s t" % table)[0]
    return int(row[0]), row[1]


CLEANUP = [{'table': 'events', 'column': 'created_at', 'older_than_days': 30, 'batch_size': 700},
           {'table': 'app.samples', 'column': 'at_ms', 'older_than_days': 7, 'column_format': 'epoch_ms'}]


def seed_cleanup(db) -> None:
    db.sql("CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, payload text) "
           "WITH (autovacuum_enabled = false);"
           "INSERT INTO events (created_at, payload) SELECT now() - interval '31 days' - g * interval '1 minute', "
           "repeat('x', 200) FROM generate_series(1, 3000) g;"
           "INSERT INTO events (created_at, payload) SELECT now() - interval '29 days' + g * interval '1 minute', "
           "'new' || g FROM generate_series(1, 1500) g;"
           "CREATE SCHEMA app; CREATE TABLE app.samples (id serial PRIMARY KEY, at_ms bigint, v int);"
           "INSERT INTO app.samples (at_ms, v) SELECT "
           "(extract(epoch FROM now()) * 1000)::bigint - g * 3600000 + 1800000, g "
           "FROM generate_series(1, 240) g;"
           # Old rows in a table no rule names: must stay.
           "CREATE TABLE keep (id serial PRIMARY KEY, created_at timestamptz, body text) "
           "WITH (autovacuum_enabled = false);"
           "INSERT INTO keep (created_at, body) SELECT now() - interval '400 days', md5(g::text) "
           "FROM generate_series(1, 500) g;")


def test_cleanup_vacuum_analyze_check_mode_and_idempotence(pg_db, tmp_path):
    seed_cleanup(pg_db)
    ev = {'pg_password': pg_db.server.password}
    keep = fp(pg_db, 'keep')
    new_events = pg_db.sql("SELECT id, created_at, payload FROM events WHERE payload LIKE 'new%' ORDER BY id")
    tasks = ['cleanup', 'vacuum', 'analyze']

    r = play(tmp_path, [maint(pg_db, tasks=tasks, cleanup=CLEANUP)], ev, check=True, diff=True)
    assert r.rc == 0, r.stdout[-3000:]
    res = r.result('maint')
    assert res['changed'] is True
    assert res['rows_to_remove'] == {'public.events': 3000, 'app.samples': 240 - 7 * 24}
    assert fp(pg_db, 'events')[0] == 4500 and fp(pg_db, 'app.samples')[0] == 240
    assert all(a['status'] == 'planned' for a in res['actions'])
    assert stats(pg_db, 'events')[:2] == (False, False)
    assert pg_db.server.password not in r.stdout

    r = play(tmp_path, [maint(pg_db, tasks=tasks, cleanup=CLEANUP)], ev)
    assert r.rc == 0, r.stdout[-3000:]
    res = r.result('maint')
    assert res['rows_removed'] == {'public.events': 3000, 'app.samples': 72}
    assert res['cleanup'][0]['batches'] == 5  # 4 x 700, then 200
    assert pg_db.sql("SELECT id, created_at, payload FROM events ORDER BY id") == new_events
    assert pg_db.sql("SELECT count(*), min(v), max(v) FROM app.samples") == [('168', '1', '168')]
    assert fp(pg_db, 'keep') == keep
    done = {(a['task'], a['object']) for a in res['actions'] if a['status'] == 'done'}
    assert ('vacuum', 'public.events') in done
    vacuumed, analyzed, dead = stats(pg_db, 'events')
    assert vacuumed and analyzed and dead == 0
    # keep was never analyzed: the analyze task did it (statistics updated), and changed nothing in it.
    assert ('analyze', 'public.keep') in done and stats(pg_db, 'keep')[1] is True
    assert pg_db.sql("SELECT count(*) FROM pg_stats WHERE tablename = 'keep'")[0][0] != '0'

    time.sleep(1.0)  # let the last backend's statistics reach the shared stats
    r = play(tmp_path, [maint(pg_db, tasks=tasks, cleanup=CLEANUP)], ev)
    res = r.result('maint')
    assert r.rc == 0 and res['changed'] is False, res
    assert res['actions'] == []


def test_reindex_concurrently_rebuilds_bloated_index_only(pg_db, tmp_path):
    ev = {'pg_password': pg_db.server.password}
    pg_db.sql("CREATE TABLE items (id int PRIMARY KEY, code text NOT NULL, qty int);"
              "INSERT INTO items SELECT g, md5(g::text), g % 100 FROM generate_series(1, 200000) g;"
              "CREATE INDEX items_code ON items (code);"
              "CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small SELECT generate_series(1, 100000);"
              "DELETE FROM items WHERE id % 10 <> 0; VACUUM ANALYZE items; ANALYZE small;")
    rows = fp(pg_db, 'items')
    size = {r[0]: int(r[1]) for r in pg_db.sql("SELECT relname, pg_relation_size(oid) FROM pg_class "
                                               "WHERE relname IN ('items_code', 'items_pkey', 'small_pkey')")}
    base = dict(tasks=['reindex'], min_size_mb=1)

    # Without pgstattuple the estimate is used; with it, pgstatindex. Both must see the bloat.
    r = play(tmp_path, [maint(pg_db, bloat_method='estimate', **base)], ev, check=True)
    est = {a['object']: a['before']['bloat_percent'] for a in r.result('maint')['actions']}
    pg_db.sql('CREATE EXTENSION pgstattuple', superuser=True)
    r = play(tmp_path, [maint(pg_db, bloat_method='pgstattuple', **base)], ev, check=True)
    exact = {a['object']: a['before']['bloat_percent'] for a in r.result('maint')['actions']}
    assert set(est) == set(exact) == {'public.items_code', 'public.items_pkey'}
    for name in exact:
        assert exact[name] > 80 and abs(est[name] - exact[name]) < 10, (est, exact)
    not_due = {n['object']: n for n in r.result('maint')['not_due']}
    assert not_due['public.small_pkey']['measured']['bloat_percent'] < 30

    r = play(tmp_path, [maint(pg_db, **base)], ev)
    assert r.rc == 0, r.stdout[-3000:]
    res = r.result('maint')
    assert sorted(a['object'] for a in res['actions']) == ['public.items_code', 'public.items_pkey']
    assert all(a['statement'].startswith('REINDEX INDEX CONCURRENTLY') for a in res['actions'])
    after = {r[0]: int(r[1]) for r in pg_db.sql("SELECT relname, pg_relation_size(oid) FROM pg_class "
                                                "WHERE relname IN ('items_code', 'items_pkey', 'small_pkey')")}
    assert after['items_code'] < size['items_code'] / 4 and after['items_pkey'] < size['items_pkey'] / 4
    assert after['small_pkey'] == size['small_pkey']
    assert pg_db.sql("SELECT count(*) FROM pg_index WHERE NOT indisvalid")[0][0] == '0'
    assert fp(pg_db, 'items') == rows
    # The rebuilt index is used and correct.
    assert pg_db.sql("SET enable_seqscan = off; SELECT id FROM items WHERE code = md5('5000')") == [('5000',)]

    r = play(tmp_path, [maint(pg_db, **base)], ev)
    assert r.result('maint')['changed'] is False


def test_lock_timeout_fails_clearly_and_keeps_committed_batches(pg_db, tmp_path):
    seed_cleanup(pg_db)
    ev = {'pg_password': pg_db.server.password}
    env = pg_db.dsn_env()
    holder = subprocess.Popen([pg_db.server.bin('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1'], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        holder.stdin.write('BEGIN; LOCK TABLE events IN SHARE MODE; SELECT pg_sleep(60);\n')
        holder.stdin.flush()
        for _attempt in range(50):
            if pg_db.sql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                         "WHERE c.relname = 'events' AND l.mode = 'ShareLock' AND l.granted")[0][0] == '1':
                break
            time.sleep(0.1)
        started = time.monotonic()
        r = play(tmp_path, [maint(pg_db, tasks=['cleanup'], lock_timeout=1, cleanup=CLEANUP)], ev)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert r.rc != 0
    res = r.result('maint')
    assert 'lock_timeout=1s' in res['msg'], res['msg']
    assert res['rows_removed'] == {'public.events': 0, 'app.samples': 72}  # the other rule still ran
    assert res['failures'][0]['object'] == 'public.events'
    assert fp(pg_db, 'events')[0] == 4500
    assert elapsed < 55  # gave up after lock_timeout, did not wait for the holder


def test_injection_is_refused(pg_db, tmp_path):
    seed_cleanup(pg_db)
    keep = fp(pg_db, 'keep')
    r = play(tmp_path, [maint(pg_db, tasks=['cleanup'], cleanup=[
        {'table': 'keep"; DROP TABLE events; --', 'column': 'created_at', 'older_than_days': 1}])],
        {'pg_password': pg_db.server.password})
    assert r.rc != 0 and 'does not exist' in r.result('maint')['msg']  # only a name, always quoted
    r = play(tmp_path, [maint(pg_db, tasks=['cleanup'], cleanup=[
        {'table': 'keep', 'column': 'body', 'older_than_days': 1}])], {'pg_password': pg_db.server.password})
    assert r.rc != 0 and 'not a timestamp or date' in r.result('maint')['msg']
    assert fp(pg_db, 'keep') == keep and fp(pg_db, 'events')[0] == 4500


def test_database_search_path_never_runs_a_schema_owners_functions_as_our_login(pg_db, tmp_path):
    """The database lists a schema before pg_catalog in its search_path (ALTER DATABASE ... SET): functions of the
    catalog's names there, written by an ordinary role, would run as db_maintenance's login (a superuser here) for
    every unqualified call of ours. The run must use the catalog's and leave the role as it was."""
    role = 'trap_%s' % pg_db.name[-8:]
    pg_db.sql('CREATE ROLE %s NOSUPERUSER; CREATE SCHEMA trap AUTHORIZATION %s; SET ROLE %s;'
              'CREATE FUNCTION trap.pg_is_in_recovery() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN '
              "IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN "
              "EXECUTE 'ALTER ROLE %s SUPERUSER'; END IF; RETURN false; END $$; RESET ROLE;"
              'ALTER DATABASE %s SET search_path TO trap, pg_catalog, public'
              % (role, role, role, role, pg_db.name))
    seed_cleanup(pg_db)
    try:
        r = play(tmp_path, [maint(pg_db, tasks=['vacuum', 'analyze'])], {'pg_password': pg_db.server.password})
        assert r.rc == 0, r.stdout[-3000:]
        assert pg_db.sql("SELECT rolsuper::text FROM pg_roles WHERE rolname = '%s'" % role) == [('false',)], \
            'db_maintenance ran a function of the schema owner as its superuser login'
        assert stats(pg_db, 'events')[1], 'the run analyzed the tables as before'
    finally:
        pg_db.sql('ALTER DATABASE %s RESET search_path; DROP SCHEMA trap CASCADE; DROP OWNED BY %s; DROP ROLE %s'
                  % (pg_db.name, role, role))
