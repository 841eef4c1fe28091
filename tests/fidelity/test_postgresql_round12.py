"""Fidelity, PostgreSQL, round 12: what round 11's answers left open.

* a database whose event trigger is set ``ENABLE REPLICA`` or ``ENABLE ALWAYS`` (a logical subscriber's DDL guard):
  the load runs as a replication apply worker's session (``session_replication_role=replica``, so ordinary event
  triggers keep still), which is exactly when those fire: the dump's REFRESH MATERIALIZED VIEW after the CREATE EVENT
  TRIGGER failed the load (a guard) or logged itself (an audit);
* ``no_owner=true`` applies PUBLIC's part of the database ACL but not the roles' grants: a role that connected
  through its own CONNECT grant is shut out, which the result must say (and it must report the ACL it applied);
* an existing target that a DBA configured without creating anything in it (the ``public`` schema's owner, grants or
  comment changed, database-level settings, a database comment or security label) counted as empty and was dropped
  by the swap without ``replace=true``.
"""

from __future__ import annotations

import uuid

import pytest

from tests.fidelity.conftest import check_restore
from tests.fidelity.test_postgresql import assert_same, backup, leftovers, qi, restore, snapshot
from tests.fidelity.test_postgresql_round11 import EVENT_BASE, drop


# -- event triggers whose enable mode fires under session_replication_role=replica ------------------------------------
GUARD = r'''
CREATE TABLE app.ddl_log (id bigserial PRIMARY KEY, tag text);
CREATE FUNCTION app.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO app.ddl_log (tag) VALUES (tg_tag); END $$;
CREATE FUNCTION app.no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('app.allow_ddl', true), '') <> 'on' THEN
    RAISE EXCEPTION 'DDL is frozen in this database (%)', tg_tag;
  END IF;
END $$;
CREATE EVENT TRIGGER no_ddl ON ddl_command_start EXECUTE FUNCTION app.no_ddl();
ALTER EVENT TRIGGER no_ddl ENABLE {mode};
CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION app.log_ddl();
ALTER EVENT TRIGGER log_ddl ENABLE {mode};
'''
GUARD_COMMENTS = '''
COMMENT ON EVENT TRIGGER no_ddl IS 'set app.allow_ddl = on to deploy';
COMMENT ON EVENT TRIGGER log_ddl IS 'the DDL audit';
'''
EVENT_STATES = "SELECT evtname, evtenabled, obj_description(oid, 'pg_event_trigger') FROM pg_event_trigger ORDER BY 1"


@pytest.mark.parametrize('fmt', ('custom', 'directory', 'plain'))
@pytest.mark.parametrize('mode', ('REPLICA', 'ALWAYS'))
def test_event_triggers_enabled_replica_or_always_stay_still(pg, tmp_path, mode, fmt):
    """A DDL guard and an audit trigger set ENABLE REPLICA (or ALWAYS), with a materialized view the dump refreshes
    after creating them. The restore loads it with jobs 1 (custom: from the compressed stream; directory: from the
    files) and 2 (the guard refused the REFRESH before), the audit table gains no row of the load, and both triggers
    come back in their mode, with their comment. PostgreSQL 17+: the restore's sessions start with
    event_triggers=off. Before 17 (no setting silences them) pg_restore creates the event triggers after everything
    else of the load; a plain dump (one psql script, in pg_dump's order) cannot be reordered: the guard refuses the
    load's REFRESH, and the run fails with its message and what to do, rolled back, the target never created."""
    name = 'fid_evt12_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(EVENT_BASE + GUARD.format(mode=mode) + GUARD_COMMENTS, database=name)
        expected = snapshot(pg, name)
        states = pg.sql(EVENT_STATES, database=name)
        assert [s[1] for s in states] == [mode[0]] * 2 and states[1][2] == 'set app.allow_ddl = on to deploy', states
        dest = backup(tmp_path, pg, name, format=fmt)
        if fmt == 'plain' and int(pg.sql('SHOW server_version_num')[0][0]) < 170000:
            result = restore(tmp_path, pg, dest, source_database=name, database=copy)
            assert result.rc != 0
            msg = result.result('restore')['msg']
            assert 'DDL is frozen in this database (REFRESH MATERIALIZED VIEW)' in msg and 'rolled back' in msg, msg
            assert 'ENABLE %s' % mode in msg and 'no_ddl' in msg and 'custom or directory format' in msg, msg
            assert pg.sql("SELECT count(*)::text FROM pg_database WHERE datname = '%s'" % copy) == [('0',)]
            assert leftovers(pg) == []
            return
        for jobs in ((1, 2) if fmt != 'plain' else (1,)):
            result = restore(tmp_path, pg, dest, source_database=name, database=copy, jobs=jobs, replace=True)
            assert result.rc == 0, result.stdout[-4000:]
            if fmt == 'custom' and jobs == 1:   # the compressed dump read as a stream, with a -L list
                assert 'the event triggers last' in result.result('restore')['method_detail'], result.result('restore')
            assert_same(expected, snapshot(pg, copy), 'restore under another name (jobs=%d)' % jobs)
            assert pg.sql(EVENT_STATES, database=copy) == states
            assert pg.sql('SELECT count(*)::text FROM app.ddl_log', database=copy) == \
                pg.sql('SELECT count(*)::text FROM app.ddl_log', database=name)
        assert leftovers(pg) == []
    finally:
        drop(pg, name, copy)


def test_a_plain_dump_whose_audit_trigger_fired_on_the_refresh_says_so(pg, tmp_path):
    """A plain dump (one psql script in pg_dump's order) with a DDL audit trigger set ENABLE REPLICA and no guard:
    before PostgreSQL 17 it fires on the script's REFRESH MATERIALIZED VIEW (the copy's audit table holds a row of
    the load), and the run warns naming it and what to do; 17+ (event_triggers=off) restores it as it was."""
    name = 'fid_evp12_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        audit_only = GUARD.split('CREATE EVENT TRIGGER no_ddl', maxsplit=1)[0] + 'CREATE EVENT TRIGGER log_ddl' + \
            GUARD.split('CREATE EVENT TRIGGER log_ddl', maxsplit=1)[1]
        pg.sql(EVENT_BASE + audit_only.format(mode='REPLICA'), database=name)
        dest = backup(tmp_path, pg, name, format='plain')
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        warned = [w for w in result.result('restore').get('warnings') or [] if 'REFRESH MATERIALIZED VIEW' in w]
        logged = pg.sql('SELECT tag FROM app.ddl_log ORDER BY id', database=copy)
        if int(pg.sql('SHOW server_version_num')[0][0]) < 170000:
            assert len(warned) == 1 and '"log_ddl" (ENABLE REPLICA)' in warned[0], warned
            assert 'custom or directory format' in warned[0], warned
            assert logged == [('REFRESH MATERIALIZED VIEW',)], logged
        else:
            assert warned == [] and logged == [], (warned, logged)
    finally:
        drop(pg, name, copy)


# -- a target a DBA configured without creating anything in it ---------------------------------------------------------
# {db}: the target's quoted name. Each leaves a database that a DBA prepared (the application's schema rights, its
# settings, a note of what it is for): the swap's DROP DATABASE would take that work with it.
TARGET_KINDS12 = {
    'public schema owner': 'ALTER SCHEMA public OWNER TO fid_owner',
    'public schema grants': 'GRANT CREATE ON SCHEMA public TO fid_reader',
    'public schema closed': 'REVOKE ALL ON SCHEMA public FROM PUBLIC',
    'public schema dropped': 'DROP SCHEMA public',
    'public schema comment': "COMMENT ON SCHEMA public IS 'the application''s schema'",
    'database setting': 'ALTER DATABASE {db} SET work_mem = 12345',
    'role setting in the database': 'ALTER ROLE fid_reader IN DATABASE {db} SET search_path = app',
    'database comment': "COMMENT ON DATABASE {db} IS 'reserved for the billing service'",
}


@pytest.mark.parametrize('what', sorted(TARGET_KINDS12))
def test_target_a_dba_configured_is_not_replaced_unasked(pg, tmp_path, what):
    """Check mode and the run refuse without replace=true ("exists and is not empty (...)"); the target keeps what the
    DBA set; with replace=true it is replaced."""
    name = 'fid_src12_%s' % uuid.uuid4().hex[:6]
    target = 'fid_tgt12_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s; CREATE DATABASE %s' % (qi(name), qi(target)))
    try:
        pg.sql('CREATE TABLE t (v int); INSERT INTO t VALUES (1)', database=name)
        pg.sql(TARGET_KINDS12[what].format(db=qi(target)), database=target)
        dest = backup(tmp_path, pg, name)
        check = check_restore(tmp_path, pg, dest, source_database=name, database=target)
        assert check.rc != 0, 'check mode would replace a target with its %s changed without replace=true' % what
        assert 'exists and is not empty' in check.result('restore')['msg'], check.result('restore')['msg']
        before = snapshot(pg, target)
        result = restore(tmp_path, pg, dest, source_database=name, database=target)
        assert result.rc != 0, 'a target with its %s changed was replaced without replace=true' % what
        msg = result.result('restore')['msg']
        assert 'exists and is not empty' in msg and 'replace=true' in msg, msg
        assert_same(before, snapshot(pg, target), 'the refused target')
        result = restore(tmp_path, pg, dest, source_database=name, database=target, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['replaced'] is True
        assert leftovers(pg) == []
    finally:
        drop(pg, name, target)


def test_fresh_target_with_cluster_defaults_is_still_empty(pg, tmp_path):
    """What CREATE DATABASE gives (the public schema as template1 has it, no setting, no comment) is empty: restored
    into without replace=true, as before."""
    name = 'fid_src12_%s' % uuid.uuid4().hex[:6]
    target = 'fid_tgt12_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE DATABASE %s; CREATE DATABASE %s OWNER fid_owner' % (qi(name), qi(target)))
    try:
        pg.sql('CREATE TABLE t (v int); INSERT INTO t VALUES (1)', database=name)
        dest = backup(tmp_path, pg, name)
        assert check_restore(tmp_path, pg, dest, source_database=name, database=target).rc == 0
        result = restore(tmp_path, pg, dest, source_database=name, database=target)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['replaced'] is False
    finally:
        drop(pg, name, target)


# What a DBA changed in template1 only (so that every new database gets it: the CVE-2018-1058 advice, an owner) is the
# cluster's usual public schema: a database CREATE DATABASE copies from it is empty. (change, undo)
TEMPLATE1_CHANGES = {
    'grants': ('GRANT CREATE ON SCHEMA public TO fid_reader', 'REVOKE CREATE ON SCHEMA public FROM fid_reader'),
    'closed': ('REVOKE ALL ON SCHEMA public FROM PUBLIC', 'GRANT USAGE ON SCHEMA public TO PUBLIC'),
    'owner': ('ALTER SCHEMA public OWNER TO fid_owner', 'ALTER SCHEMA public OWNER TO pg_database_owner'),
}
PUBLIC_STATE = ("SELECT pg_get_userbyid(nspowner) || ' ' || coalesce(nspacl::text, '-') || ' ' || "
                "coalesce(obj_description(oid, 'pg_namespace'), '-') FROM pg_namespace WHERE nspname = 'public'")


@pytest.mark.parametrize('what', sorted(TEMPLATE1_CHANGES))
def test_fresh_target_from_a_changed_template1_is_empty(pg, tmp_path, what):
    """template1's public schema changed (not the maintenance database's): a database CREATE DATABASE just made from
    it is restored into without replace=true (check mode alike); one changed beyond template1 is still refused."""
    change, undo = TEMPLATE1_CHANGES[what]
    name = 'fid_src12_%s' % uuid.uuid4().hex[:6]
    target = 'fid_tgt12_%s' % uuid.uuid4().hex[:6]
    other = 'fid_oth12_%s' % uuid.uuid4().hex[:6]
    before = pg.sql(PUBLIC_STATE, database='template1')
    pg.sql('CREATE DATABASE %s' % qi(name))
    try:
        pg.sql('CREATE TABLE t (v int); INSERT INTO t VALUES (1)', database=name)
        pg.sql(change, database='template1')
        pg.sql('CREATE DATABASE %s; CREATE DATABASE %s' % (qi(target), qi(other)))
        pg.sql("COMMENT ON SCHEMA public IS 'the application''s schema'", database=other)
        dest = backup(tmp_path, pg, name)
        check = check_restore(tmp_path, pg, dest, source_database=name, database=target)
        assert check.rc == 0, check.stdout[-4000:]
        result = restore(tmp_path, pg, dest, source_database=name, database=target)
        assert result.rc == 0, result.stdout[-4000:]
        assert result.result('restore')['replaced'] is False
        check = check_restore(tmp_path, pg, dest, source_database=name, database=other)
        assert check.rc != 0 and 'exists and is not empty' in check.result('restore')['msg'], check.stdout[-4000:]
        assert leftovers(pg) == []
    finally:
        pg.sql(undo, database='template1')
        drop(pg, name, target, other)
    assert pg.sql(PUBLIC_STATE, database='template1') == before


# -- no_owner: the roles' database grants are left out, and said so ----------------------------------------------------
def test_no_owner_names_the_roles_whose_database_grants_were_left_out(pg, tmp_path):
    """A database closed to PUBLIC (REVOKE ALL) that its application role reached through its own CONNECT grant,
    restored with no_owner=true: PUBLIC stays shut out, the role's grant is not given (no_owner restores no role's
    grants: the target server's role of that name need not be the same principal), and the run warns naming the role
    and its privileges; the result's database_properties.acl is what was applied (PUBLIC: nothing), not None."""
    name = 'fid_pub12_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s OWNER fid_owner TEMPLATE template0' % qi(name))
    try:
        pg.sql('REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE %s TO fid_login; '
               'GRANT CONNECT ON DATABASE %s TO fid_reader' % (qi(name), qi(name), qi(name)))
        dest = backup(tmp_path, pg, name)
        for check_mode in (True, False):
            run = check_restore if check_mode else restore
            result = run(tmp_path, pg, dest, source_database=name, database=copy, no_owner=True)
            assert result.rc == 0, result.stdout[-4000:]
            out = result.result('restore')
            warnings = [w for w in out.get('warnings') or [] if 'fid_login' in w]
            assert warnings, (check_mode, out.get('warnings'))
            assert 'fid_reader' in warnings[0] and 'CONNECT' in warnings[0], warnings
        assert pg.sql("SELECT has_database_privilege('fid_login', '%s', 'CONNECT')::text" % copy) == [('false',)]
        props = out['database_properties']
        assert props['acl'] == [], props
        assert leftovers(pg) == []
    finally:
        drop(pg, name, copy)
