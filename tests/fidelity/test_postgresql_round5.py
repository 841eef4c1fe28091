"""Fidelity, PostgreSQL, round 5: what else a restored copy reaches, and list settings of a SQL_ASCII database.

* logical replication subscriptions: pg_dump writes them disabled but with the publisher's connection string (its
  password in clear) and the publisher's replication slot: ``ALTER SUBSCRIPTION ... ENABLE`` in a restored copy (a
  drill's scratch copy) streams from production's slot, taking the changes the real subscriber waits for. The
  result names them; ``foreign_servers: disable`` points them nowhere, drops the password and the slot name;
* dblink calls with an inline connection string in function bodies and views: no ALTER SERVER reaches them; the
  restore names those objects (a warning), whatever ``foreign_servers`` says;
* wrappers that are not libpq-based: the options where such a server keeps its remote's address are pointed
  nowhere under ``disable``;
* a SQL_ASCII database's list settings (``search_path``, ``temp_tablespaces``) with bytes that are not UTF-8 come
  back byte for byte (round 4 did the scalar ones).
"""

from __future__ import annotations

import json
import uuid
from typing import Iterator

import pytest

from tests.fidelity.test_postgresql import backup, leftovers, qi, ql, restore
from tests.fidelity.test_postgresql_round4 import drop_databases, raw_properties
from tests.harness.servers import PostgresServer


PG_EXTRA_CONF = {'wal_level': 'logical'}   # the publisher's slot (the shared pg fixture reads it)


def drop_subscriptions(server: PostgresServer, name: str) -> None:
    if not server.sql('SELECT 1 FROM pg_database WHERE datname = %s' % ql(name)):
        return
    for (sub,) in server.sql('SELECT subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid '
                             'WHERE d.datname = current_database()', database=name):
        server.sql('ALTER SUBSCRIPTION %s DISABLE; ALTER SUBSCRIPTION %s SET (slot_name = NONE); '
                   'DROP SUBSCRIPTION %s' % (qi(sub), qi(sub), qi(sub)), database=name)


# -- what a restored copy reaches: subscriptions, inline dblink connection strings, other wrappers -------------------
@pytest.fixture(scope='module')
def reach(pg: PostgresServer) -> Iterator[dict]:
    """A "production" publisher (its slot made, reached over TCP with a password), and a source database that
    subscribes to it, calls dblink with inline connection strings and has a server of a wrapper that is not
    libpq-based."""
    tag = uuid.uuid4().hex[:6]
    publisher, source, login = 'fid_pub5_%s' % tag, 'fid_reach5_%s' % tag, 'fid_repl5_%s' % tag
    slot = 'fid_slot5_%s' % tag
    secret = 'Sub-S3cret-%s' % uuid.uuid4().hex
    pg.sql("CREATE ROLE %s LOGIN REPLICATION PASSWORD %s" % (qi(login), ql(secret)))
    try:
        for db in (publisher, source):
            pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(db))
        pg.sql("CREATE TABLE orders (id int PRIMARY KEY, v text); INSERT INTO orders VALUES (1, 'prod'); "
               "GRANT SELECT ON orders TO %s; CREATE PUBLICATION prod_pub FOR TABLE orders; "
               "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')" % (qi(login), ql(slot)),
               database=publisher)
        conninfo = "host=127.0.0.1 port=%d dbname=%s user=%s password=%s" % (pg.port, publisher, login, secret)
        uri = 'postgresql://%s:%s@127.0.0.1:%d/%s' % (login, secret, pg.port, publisher)
        pg.sql("CREATE TABLE orders (id int PRIMARY KEY, v text); "
               "CREATE SUBSCRIPTION \"Prod Sub\" CONNECTION %s PUBLICATION prod_pub "
               "WITH (connect = false, slot_name = %s); "
               "CREATE EXTENSION dblink; "
               "CREATE FUNCTION remote_count() RETURNS bigint LANGUAGE sql AS $f$SELECT n FROM dblink(%s, "
               "'SELECT count(*) FROM orders') AS t(n bigint)$f$; "
               "CREATE FUNCTION \"Odd Wipe\"() RETURNS text LANGUAGE plpgsql AS $f$BEGIN "
               "PERFORM dblink_connect('prod', %s); RETURN dblink_exec('prod', 'DELETE FROM orders'); END$f$; "
               "CREATE VIEW remote_orders AS SELECT * FROM dblink(%s, 'SELECT id, v FROM orders') "
               "AS t(id int, v text); "
               "CREATE FUNCTION local_only() RETURNS int LANGUAGE sql AS 'SELECT 1'; "
               "CREATE FUNCTION named_only() RETURNS text LANGUAGE sql "
               "AS $f$SELECT dblink_exec('side', 'SELECT 1')$f$; "
               "CREATE FOREIGN DATA WRAPPER fid_mysqlish; "
               "CREATE SERVER legacy FOREIGN DATA WRAPPER fid_mysqlish OPTIONS (host '10.9.8.7', port '3306', "
               "address 'db.prod.example', secure_auth 'true'); "
               "CREATE SERVER nothing_to_change FOREIGN DATA WRAPPER fid_mysqlish OPTIONS (fetch_size '100')"
               % (ql(conninfo), ql(slot), ql(conninfo), ql(uri), ql(conninfo)), database=source)
        # the source itself reaches the publisher (else the test proves nothing)
        assert pg.sql('SELECT remote_count()', database=source) == [('1',)]
        yield {'publisher': publisher, 'source': source, 'login': login, 'secret': secret, 'slot': slot}
    finally:
        for db in [r[0] for r in pg.sql("SELECT datname FROM pg_database WHERE datname LIKE %s"
                                        % ql(source + '%'))] + leftovers(pg):
            drop_subscriptions(pg, db)
            drop_databases(pg, db)
        pg.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s"
               % ql(slot))
        drop_databases(pg, publisher)
        pg.sql('DROP ROLE IF EXISTS %s' % qi(login))


def subscription_row(pg: PostgresServer, database: str) -> tuple:
    return pg.sql("SELECT subname, subenabled::text, coalesce(subslotname::text, '<none>'), subconninfo "
                  "FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                  "WHERE d.datname = current_database()", database=database)[0]


def test_restored_copy_names_what_reaches_the_remote_when_kept(pg, reach, tmp_path):
    """foreign_servers=keep: the subscription comes back as pg_dump writes it (disabled, the publisher's slot and
    password), and the result says so; the dblink functions and view with inline connection strings are named."""
    dest = backup(tmp_path, pg, reach['source'])
    copy = reach['source'] + '_kept'
    result = restore(tmp_path, pg, dest, source_database=reach['source'], database=copy)
    assert result.rc == 0, result.stdout[-4000:]
    out = result.result('restore')
    assert reach['secret'] not in result.stdout and reach['secret'] not in json.dumps(out)
    subs = {s['name']: s for s in out.get('subscriptions') or []}
    assert set(subs) == {'Prod Sub'}, out.get('subscriptions')
    assert subs['Prod Sub']['slot_name'] == reach['slot'] and subs['Prod Sub']['action'].startswith('kept'), subs
    assert subs['Prod Sub']['connection'] == {'host': '127.0.0.1', 'port': str(pg.port),
                                              'dbname': reach['publisher'], 'user': reach['login']}, subs
    warnings = out['restore_warnings']
    assert any('Prod Sub' in w and reach['slot'] in w and 'ENABLE' in w for w in warnings), warnings
    dblink = [w for w in warnings if 'inline connection string' in w]
    assert len(dblink) == 1, warnings
    for name in ('public.remote_count()', 'public."Odd Wipe"()', 'public.remote_orders'):
        assert name in dblink[0], dblink
    for name in ('local_only', 'named_only'):
        assert name not in dblink[0], dblink
    assert subscription_row(pg, copy)[1:3] == ('false', reach['slot'])


def test_disable_points_subscriptions_and_other_wrappers_nowhere(pg, reach, tmp_path):
    """foreign_servers=disable: the subscription cannot connect nor take the publisher's slot (ENABLE is refused:
    no slot), no password is left in the copy; a server of another wrapper has its address options pointed nowhere;
    functions with inline dblink connection strings cannot be rewritten: the warning names them."""
    dest = backup(tmp_path, pg, reach['source'])
    copy = reach['source'] + '_off'
    result = restore(tmp_path, pg, dest, source_database=reach['source'], database=copy, foreign_servers='disable')
    assert result.rc == 0, result.stdout[-4000:]
    out = result.result('restore')
    assert reach['secret'] not in result.stdout and reach['secret'] not in json.dumps(out)
    subs = {s['name']: s for s in out.get('subscriptions') or []}
    assert subs['Prod Sub']['action'].startswith('disabled'), subs
    name, enabled, slot, conninfo = subscription_row(pg, copy)
    assert (enabled, slot) == ('false', '<none>'), (enabled, slot)
    assert reach['secret'] not in conninfo and '127.0.0.1' not in conninfo and 'opsready-disabled' in conninfo
    with pytest.raises(Exception, match='slot'):
        pg.sql('ALTER SUBSCRIPTION %s ENABLE' % qi(name), database=copy)
    # the publisher's slot is untouched: the real subscriber's changes wait there
    assert pg.sql("SELECT active::text FROM pg_replication_slots WHERE slot_name = %s" % ql(reach['slot'])) == \
        [('false',)]
    servers = {s['name']: s for s in out['foreign_servers']}
    assert 'host, address' in servers['legacy']['action'], servers['legacy']
    options = dict(o.split('=', 1) for o in pg.sql(
        "SELECT array_to_string(srvoptions, E'\\n') FROM pg_foreign_server WHERE srvname = 'legacy'",
        database=copy)[0][0].split('\n'))
    assert options['port'] == '3306' and options['secure_auth'] == 'true', options
    assert '10.9.8.7' not in options.values() and 'db.prod.example' not in options.values(), options
    assert servers['nothing_to_change']['action'].startswith('left as it was'), servers
    warnings = out['restore_warnings']
    assert any('inline connection string' in w and 'public.remote_count()' in w and 'not disabled' in w
               for w in warnings), warnings
    # the source is untouched
    assert subscription_row(pg, reach['source'])[2] == reach['slot']


# -- a SQL_ASCII database's list settings ---------------------------------------------------------------------------
def test_sql_ascii_list_settings_come_back_byte_for_byte(pg, tmp_path):
    """``ALTER DATABASE ... SET search_path`` naming a schema whose name holds a LATIN1 byte (0xE9), and a role's:
    the list came back as U+FFFD (EF BF BD), the schema no longer found by the applications' unqualified names.
    Custom only: the database-level properties are applied the same whatever the format (round 4 ran both)."""
    name = 'fid_ascii5_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql("CREATE DATABASE %s TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'" % qi(name))
    try:
        db = qi(name)
        pg.sql("SET client_min_messages = warning; CREATE TABLE t (v text); "
               "DO $$BEGIN EXECUTE format('CREATE SCHEMA %%I', convert_from('\\x636166e9'::bytea, 'SQL_ASCII')); "
               "EXECUTE format('CREATE TABLE %%I.only_here (v int)', convert_from('\\x636166e9'::bytea, "
               "'SQL_ASCII')); "
               "EXECUTE format('ALTER DATABASE %s SET search_path TO %%I, public, %%L', "
               "convert_from('\\x636166e9'::bytea, 'SQL_ASCII'), convert_from('\\x2224757365722220c3a9'::bytea, "
               "'SQL_ASCII')); "
               "EXECUTE format('ALTER DATABASE %s SET temp_tablespaces TO %%L', "
               "convert_from('\\x74e9'::bytea, 'SQL_ASCII')); "
               "EXECUTE format('ALTER ROLE fid_reader IN DATABASE %s SET search_path TO %%L, %%L', "
               "convert_from('\\x6361662c20e9'::bytea, 'SQL_ASCII'), '$user'); END$$"
               % (ql(db)[1:-1], ql(db)[1:-1], ql(db)[1:-1]), database=name)
        expected = raw_properties(pg, name)
        assert 'e9' in expected['settings'] and 'efbfbd' not in expected['settings'], expected
        # the database's own search_path finds the schema
        assert pg.sql('SELECT count(*) FROM only_here', database=name) == [('0',)]
        dest = backup(tmp_path, pg, name)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['database_properties']['skipped'] == []
        assert raw_properties(pg, copy) == expected
        assert pg.sql('SELECT count(*) FROM only_here', database=copy) == [('0',)]
        result = restore(tmp_path, pg, dest, source_database=name, database=name, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert raw_properties(pg, name) == expected
        assert leftovers(pg) == []
    finally:
        drop_databases(pg, name, copy)


# -- tables and indexes in a tablespace the target server lacks --------------------------------------------------
def test_objects_in_a_tablespace_the_target_lacks(pg, tmp_path):
    """A table, a partition and an index placed in a tablespace of their own (the database in the default one): onto
    a server without it (a new server, @globals not restored) the load failed at pg_dump's SET default_tablespace,
    after loading what came before. A custom or directory backup now comes back in the default tablespace, the result
    naming what moved; a plain one is refused before anything is created."""
    space = 'fid_ts5_%s' % uuid.uuid4().hex[:6]
    name = 'fid_tsobj5_%s' % uuid.uuid4().hex[:6]
    pg.sql("CREATE TABLESPACE %s LOCATION %s" % (qi(space), ql(str(pg.service_dir(space)))))
    try:
        pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
        pg.sql("CREATE TABLE placed (id int, v text) TABLESPACE %s; CREATE INDEX placed_v ON placed (v) TABLESPACE %s; "
               "CREATE TABLE parts (id int) PARTITION BY RANGE (id); "
               "CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100) TABLESPACE %s; "
               "CREATE TABLE plain_t (id int); INSERT INTO placed SELECT g, 'v' || g FROM generate_series(1, 50) g; "
               "INSERT INTO parts SELECT generate_series(0, 99); INSERT INTO plain_t VALUES (1)"
               % (qi(space), qi(space), qi(space)), database=name)
        (tmp_path / 'c').mkdir()
        (tmp_path / 'p').mkdir()
        custom = backup(tmp_path / 'c', pg, name)
        plain = backup(tmp_path / 'p', pg, name, format='plain')
        # the server "without it": the source goes, and the tablespace with it
        drop_databases(pg, name)
        pg.sql('DROP TABLESPACE %s' % qi(space))
        result = restore(tmp_path / 'p', pg, plain, source_database=name, database=name)
        assert result.rc != 0
        msg = result.result('restore')['msg']
        assert space in msg and 'public.placed' in msg and 'Nothing was restored' in msg, msg
        assert not pg.sql('SELECT 1 FROM pg_database WHERE datname = %s' % ql(name)) and leftovers(pg) == []
        result = restore(tmp_path / 'c', pg, custom, source_database=name, database=name)
        assert result.rc == 0, result.stdout[-4000:]
        skipped = result.result('restore')['database_properties']['skipped']
        assert any(space in s and 'public.placed_v' in s and 'public.parts_1' in s for s in skipped), skipped
        assert pg.sql('SELECT (SELECT count(*) FROM placed), (SELECT count(*) FROM parts), '
                      '(SELECT count(*) FROM plain_t)', database=name) == [('50', '100', '1')]
        assert pg.sql("SELECT count(*) FROM pg_class WHERE reltablespace <> 0 AND relname IN ('placed', 'placed_v', "
                      "'parts_1')", database=name) == [('0',)]
    finally:
        drop_databases(pg, name)
        pg.sql('DROP TABLESPACE IF EXISTS %s' % qi(space))


# -- extension members changed by a user ---------------------------------------------------------------------------
def test_extension_members_changed_by_a_user_are_named(pg, tmp_path):
    """pg_dump writes CREATE EXTENSION and the members' privileges only: an owner, ALTER FUNCTION ... SET or a
    comment a user gave a member were silently lost. The restore names each (the extension script's own comments,
    which come back, are not named); privileges still come back. Since round 6 it also sets them again."""
    name = 'fid_extm5_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql("CREATE EXTENSION hstore; CREATE EXTENSION pg_trgm; CREATE EXTENSION cube; "
               "COMMENT ON FUNCTION hstore(text, text) IS 'ours'; "
               "ALTER FUNCTION hstore(text, text) SET work_mem = '7MB'; "
               "ALTER FUNCTION similarity(text, text) OWNER TO fid_owner; "
               "REVOKE EXECUTE ON FUNCTION show_trgm(text) FROM PUBLIC; "
               "GRANT EXECUTE ON FUNCTION show_trgm(text) TO fid_reader", database=name)
        dest = backup(tmp_path, pg, name)   # what pg_dump writes of extensions is the same in every format
        copy = name + '_copy'
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        warnings = [w for w in result.result('restore')['restore_warnings'] if 'Extension members' in w]
        assert len(warnings) == 1, result.result('restore')['restore_warnings']
        assert "function public.hstore(text,text) (SET work_mem=7MB, comment)" in warnings[0], warnings
        assert 'function public.similarity(text,text) (owner fid_owner)' in warnings[0], warnings
        assert 'cube' not in warnings[0] and 'show_trgm' not in warnings[0], warnings
        assert 'were set again after the load' in warnings[0], warnings
        assert pg.sql("SELECT obj_description('hstore(text,text)'::regprocedure, 'pg_proc'), "
                      "array_to_string(p.proconfig, ','), pg_get_userbyid(q.proowner) FROM pg_proc p, pg_proc q "
                      "WHERE p.oid = 'hstore(text,text)'::regprocedure "
                      "AND q.oid = 'similarity(text,text)'::regprocedure", database=copy) == \
            [('ours', 'work_mem=7MB', 'fid_owner')]
        assert pg.sql("SELECT has_function_privilege('fid_reader', 'show_trgm(text)', 'EXECUTE')::text, "
                      "has_function_privilege('fid_login', 'show_trgm(text)', 'EXECUTE')::text", database=copy) == \
            [('true', 'false')]
    finally:
        drop_databases(pg, name, name + '_copy')
