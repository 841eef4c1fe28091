"""db_maintenance on tables and columns whose names need quoting (mixed case, spaces, quotes, backticks, a dot,
non-ASCII) on a real PostgreSQL 15 and a real MariaDB: clean-up deletes exactly the old rows of the named table,
analyze/vacuum/optimize reach every such table, whether named in ``tables`` or found in the catalog. They used
to be refused ("not a plain identifier"), or silently skipped when listed from MariaDB's catalog. A name that
reads like an injection is only a name: it is not found, and nothing else is touched."""

from __future__ import annotations

from tests.integration.test_db_maintenance_mariadb import maint as maria_maint
from tests.integration.test_db_maintenance_mariadb import play
from tests.integration.test_db_maintenance_postgresql import maint as pg_maint

PG_TABLES = ['MixedCase', 'order items', 'it\'s "q"', 'ünï 名前']


def test_postgresql_names_needing_quotes(pg_db, tmp_path):
    db = pg_db
    sql = ['CREATE SCHEMA "Sales Dept"', 'CREATE TABLE "Sales Dept"."v1.2 totals" (id int PRIMARY KEY, v int)',
           'INSERT INTO "Sales Dept"."v1.2 totals" SELECT g, g FROM generate_series(1, 50) g',
           'CREATE TABLE keep (id int PRIMARY KEY)', 'INSERT INTO keep SELECT generate_series(1, 10)']
    for name in PG_TABLES:
        q = '"%s"' % name.replace('"', '""')
        sql += ['CREATE TABLE %s ("Row Id" serial PRIMARY KEY, "Created At" timestamptz NOT NULL)' % q,
                "INSERT INTO %s (\"Created At\") SELECT now() - interval '40 days' FROM generate_series(1, 30)" % q,
                "INSERT INTO %s (\"Created At\") SELECT now() FROM generate_series(1, 20)" % q]
    db.sql(';'.join(sql))
    ev = {'pg_password': db.server.password}
    rules = [{'table': name, 'column': 'Created At', 'older_than_days': 30, 'batch_size': 7} for name in PG_TABLES]
    named = PG_TABLES + ['"Sales Dept"."v1.2 totals"']
    r = play(tmp_path, [pg_maint(db, tasks=['cleanup', 'vacuum', 'analyze'], cleanup=rules, tables=named,
                                 force=True)], ev)
    assert r.rc == 0, r.stdout[-3000:]
    res = r.result('maint')
    assert res['rows_removed'] == {'public.' + n: 30 for n in PG_TABLES}, res['rows_removed']
    done = {(a['task'], a['object']) for a in res['actions'] if a['status'] == 'done'}
    for label in ['public.' + n for n in PG_TABLES] + ['Sales Dept.v1.2 totals']:
        assert ('analyze', label) in done and ('vacuum', label) in done, (label, sorted(done))
    for name in PG_TABLES:
        assert db.sql('SELECT count(*) FROM "%s"' % name.replace('"', '""')) == [('20',)]
    analyzed = db.sql("SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL AND relname <> 'keep'")
    assert analyzed == [(str(len(PG_TABLES) + 1),)]

    # found in the catalog (no tables given): the same tables are reached
    r = play(tmp_path, [pg_maint(db, tasks=['analyze'], force=True)], ev)
    assert r.rc == 0, r.stdout[-3000:]
    objects = {a['object'] for a in r.result('maint')['actions'] if a['status'] == 'done'}
    assert {'public.' + n for n in PG_TABLES} | {'Sales Dept.v1.2 totals'} <= objects

    r = play(tmp_path, [pg_maint(db, tasks=['cleanup'], cleanup=[
        {'table': 'keep"; DROP TABLE keep; --', 'column': 'id', 'older_than_days': 1, 'column_format': 'epoch'}])], ev)
    assert r.rc != 0 and 'does not exist' in r.result('maint')['msg'], r.result('maint')['msg']
    assert db.sql('SELECT count(*) FROM keep') == [('10',)]


MARIA_TABLES = ['MixedCase', 'order items', 'it\'s "q" `bt`', 'ünï 名前']


def test_mariadb_names_needing_quotes(maria_db, tmp_path):
    db = maria_db
    sql = ['CREATE TABLE keep (id INT PRIMARY KEY) ENGINE=InnoDB', 'INSERT INTO keep SELECT seq FROM seq_1_to_10']
    for name in MARIA_TABLES:
        q = '`%s`' % name.replace('`', '``')
        sql += ['CREATE TABLE %s (`Row Id` INT AUTO_INCREMENT, `Created At` DATETIME NOT NULL, '
                'PRIMARY KEY (`Row Id`)) ENGINE=InnoDB' % q,
                'INSERT INTO %s (`Created At`) SELECT NOW() - INTERVAL 40 DAY FROM seq_1_to_30' % q,
                'INSERT INTO %s (`Created At`) SELECT NOW() FROM seq_1_to_20' % q]
    db.sql(';'.join(sql))
    ev = {'maria_password': db.server.password}
    rules = [{'table': n, 'column': 'Created At', 'older_than_days': 30, 'batch_size': 7} for n in MARIA_TABLES]
    r = play(tmp_path, [maria_maint(db, tasks=['cleanup', 'analyze', 'optimize'], cleanup=rules,
                                    tables=MARIA_TABLES, force=True)], ev)
    assert r.rc == 0, r.stdout[-3000:]
    res = r.result('maint')
    assert res['rows_removed'] == {n: 30 for n in MARIA_TABLES}, res['rows_removed']
    done = {(a['task'], a['object']) for a in res['actions'] if a['status'] == 'done'}
    for name in MARIA_TABLES:
        assert ('analyze', name) in done and ('optimize', name) in done, (name, sorted(done))
        assert db.sql('SELECT COUNT(*) FROM `%s`' % name.replace('`', '``')) == [('20',)]

    r = play(tmp_path, [maria_maint(db, tasks=['analyze'], force=True)], ev)
    assert r.rc == 0, r.stdout[-3000:]
    objects = {a['object'] for a in r.result('maint')['actions'] if a['status'] == 'done'}
    assert set(MARIA_TABLES) | {'keep'} <= objects, objects

    r = play(tmp_path, [maria_maint(db, tasks=['cleanup'], cleanup=[
        {'table': 'keep`; DROP TABLE keep; --', 'column': 'id', 'older_than_days': 1, 'column_format': 'epoch'}])],
        ev)
    assert r.rc != 0 and 'does not exist' in r.result('maint')['msg'], r.result('maint')['msg']
    assert db.sql('SELECT COUNT(*) FROM keep') == [('10',)]
