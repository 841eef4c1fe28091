"""Source summary against the classes of database a verification must call good (a false failure pages someone
at 3 AM): PostgreSQL partitioned, unlogged, foreign tables, materialized views, more tables than the exact limit
with stale estimates, every dump format; MariaDB views only, MEMORY tables, more tables than the limit; tables
emptied or dropped while the backup runs (between the measurement and the dump's snapshot)."""

from __future__ import annotations

import sys

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams  # noqa: E402


def engine_for(server, name):
    return get_engine(name, ConnectionParams(host=server.host, port=server.port, user=server.user,
                                             password=server.password))


def backup(engine, db, dest, **kw):
    opts = BackupOptions(kind='full', dest=str(dest), database=db, **kw)
    result = run_backup(engine, opts, verify=True)
    return result


def verdict(result):
    ver = result['verification']
    return [(v.get('ok', v.get('result')), v.get('error'), v.get('checks', {}).get('source_check')) for v in ver]


def assert_ok(result):
    for v in result['verification']:
        assert 'error' not in v or not v['error'], v
        assert str(v['checks'].get('source_check', '')).startswith('ok'), v


@pytest.mark.parametrize('fmt', ['custom', 'plain', 'directory'])
def test_pg_classes(pg_db, tmp_path, fmt):
    pg_db.sql('CREATE TABLE parted (id int, k int) PARTITION BY RANGE (k);'
              'CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);'
              'INSERT INTO parted VALUES (1, 1);'
              'CREATE UNLOGGED TABLE u (x int); INSERT INTO u VALUES (1);'
              'CREATE MATERIALIZED VIEW mv AS SELECT * FROM u;')
    engine = engine_for(pg_db.server, 'postgresql')
    result = backup(engine, pg_db.name, tmp_path / 'b', format=fmt)
    assert_ok(result)


def test_pg_many_tables_emptied_stale_estimates(pg_db, tmp_path):
    """More tables than the exact limit, all emptied by DELETE (no VACUUM yet: reltuples still says rows)."""
    body = ''.join('CREATE TABLE t%d (x int) WITH (autovacuum_enabled = false); INSERT INTO t%d VALUES (1);'
                   % (i, i) for i in range(510))
    pg_db.sql(body)
    pg_db.sql('ANALYZE')
    pg_db.sql(''.join('DELETE FROM t%d;' % i for i in range(510)))
    engine = engine_for(pg_db.server, 'postgresql')
    result = backup(engine, pg_db.name, tmp_path / 'b', format='plain')
    assert_ok(result)


def _empty_before_dump(engine, sql):
    original = engine.backup

    def backup_after_emptying(opts):
        sql()
        return original(opts)
    engine.backup = backup_after_emptying


@pytest.mark.parametrize('how', ['DELETE FROM queue', 'DROP TABLE queue'])
def test_mariadb_table_emptied_during_backup(maria_db, tmp_path, how):
    maria_db.sql('CREATE TABLE queue (id int primary key); INSERT INTO queue VALUES (1), (2);'
                 'CREATE TABLE settings (k int)')
    engine = engine_for(maria_db.server, 'mariadb')
    _empty_before_dump(engine, lambda: maria_db.sql(how))
    result = backup(engine, maria_db.name, tmp_path / 'b')
    assert_ok(result)


@pytest.mark.parametrize('how', ['DELETE FROM queue', 'DROP TABLE queue'])
def test_pg_plain_table_emptied_during_backup(pg_db, tmp_path, how):
    pg_db.sql('CREATE TABLE queue (id int primary key); INSERT INTO queue VALUES (1), (2);'
              'CREATE TABLE settings (k int)')
    engine = engine_for(pg_db.server, 'postgresql')
    _empty_before_dump(engine, lambda: pg_db.sql(how))
    result = backup(engine, pg_db.name, tmp_path / 'b', format='plain')
    assert_ok(result)


def test_mariadb_classes(maria_db, tmp_path):
    maria_db.sql('CREATE TABLE m (x int) ENGINE=MEMORY; INSERT INTO m VALUES (1);'
                 'CREATE TABLE a (x int) ENGINE=Aria; INSERT INTO a VALUES (1);'
                 'CREATE VIEW v AS SELECT 1 AS one')
    engine = engine_for(maria_db.server, 'mariadb')
    assert_ok(backup(engine, maria_db.name, tmp_path / 'b'))


def test_mariadb_views_only(maria_db, tmp_path):
    maria_db.sql('CREATE VIEW v AS SELECT 1 AS one')
    engine = engine_for(maria_db.server, 'mariadb')
    assert_ok(backup(engine, maria_db.name, tmp_path / 'b'))


def test_mariadb_many_tables_emptied_stale_estimates(maria_db, tmp_path):
    """More tables than the exact limit, rows deleted: information_schema.table_rows may still say rows."""
    maria_db.sql(''.join('CREATE TABLE t%d (x int) STATS_AUTO_RECALC=0; INSERT INTO t%d VALUES (1), (2);'
                         % (i, i) for i in range(510)))
    maria_db.sql('ANALYZE TABLE %s' % ', '.join('t%d' % i for i in range(510)))
    maria_db.sql(''.join('DELETE FROM t%d;' % i for i in range(510)))
    engine = engine_for(maria_db.server, 'mariadb')
    result = backup(engine, maria_db.name, tmp_path / 'b')
    assert_ok(result)
    assert result['manifest']['source'].get('has_rows') is False, result['manifest']['source']


def test_many_tables_lost_data_still_fails(pg_db, tmp_path):
    """The exact 'any row' answer over the limit still catches an artifact without the data."""
    pg_db.sql(''.join('CREATE TABLE t%d (x int);' % i for i in range(505)) + 'INSERT INTO t504 VALUES (1);')
    engine = engine_for(pg_db.server, 'postgresql')
    result = backup(engine, pg_db.name, tmp_path / 'b', format='plain')
    assert_ok(result)
    held = result['manifest']['source']
    assert held['has_rows'] is True and held['non_empty_tables'] is None, held
    from ansible_collections.opsready.operations.plugins.module_utils.backup import source
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError
    with pytest.raises(IntegrityError, match='holds no table data'):
        source.compare(held, {'tables': 505, 'data_tables': 0}, 'The artifact', 'x')


def test_mariadb_system_versioned_tables_are_tables(maria_db, tmp_path):
    """A database of WITH SYSTEM VERSIONING tables: they hold the data (information_schema says 'SYSTEM
    VERSIONED', not 'BASE TABLE'), so a dump without them must not verify."""
    maria_db.sql('CREATE TABLE h (x int) WITH SYSTEM VERSIONING; INSERT INTO h VALUES (1), (2)')
    engine = engine_for(maria_db.server, 'mariadb')
    result = backup(engine, maria_db.name, tmp_path / 'b')
    assert_ok(result)
    held = result['manifest']['source']
    assert held['tables'] == 1 and held['non_empty_tables'] == 1, held
