"""Fidelity, PostgreSQL, round 8 (red team): what round 7 left, and object kinds it did not hold.

* a role named only in ``ALTER ROLE ... IN DATABASE ... SET`` that the target lacks: the setting is left out, and
  that is now a warning (``restore_warnings``), in check mode too, not only an entry of
  ``database_properties.skipped``;
* an extension-owned relation's column comment the extension script sets and a user REMOVED (nothing else of the
  relation changed): the restore brought the script's comment back;
* point-in-time recovery to a time on the old timeline after a fork (an earlier recovery created timeline 2 from a
  point before it);
* object kinds a DBA uses that rounds 1-7 did not hold (KINDS8), restored under an odd name and over the original.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.fidelity.test_postgresql import (
    FORMATS, assert_same, backup, leftovers, play, qi, ql, restore, snapshot)
from tests.fidelity.test_postgresql import conn as pg_conn
from tests.fidelity.test_postgresql_round4 import drop_databases
from tests.fidelity.conftest import check_restore
from tests.harness.servers import PostgresServer


# -- a per-database setting of a role the target lacks ---------------------------------------------------------
def test_setting_of_a_missing_role_is_a_warning(pg, tmp_path):
    """ALTER ROLE ... IN DATABASE ... SET of a role the target lacks was only listed in
    ``database_properties.skipped``: a user reading the warnings (the drill report, a play's output) never learnt the
    setting was dropped. It is a warning naming the role and the setting, in check mode too."""
    role = 'fid8 gone "r" %s' % uuid.uuid4().hex[:4]
    name = 'fid_set8_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE ROLE %s' % qi(role))
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql("CREATE TABLE t (v int); ALTER ROLE %s IN DATABASE %s SET work_mem TO '7MB'" % (qi(role), qi(name)),
               database=name)
        dest = backup(tmp_path, pg, name)
        pg.sql('DROP ROLE %s' % qi(role))

        def named(res: dict) -> list:
            return [w for w in res.get('restore_warnings') or [] if role in w and 'work_mem' in w]

        check = check_restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert check.rc == 0, check.stdout[-3000:]
        assert len(named(check.result('restore'))) == 1, check.result('restore').get('restore_warnings')
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-3000:]
        res = result.result('restore')
        assert len(named(res)) == 1, res.get('restore_warnings')
        assert any(role in s for s in res['database_properties']['skipped']), res['database_properties']
    finally:
        drop_databases(pg, name, copy)


# -- extension-owned relations: a column comment removed ---------------------------------------------------------
EXT8_SQL = """
CREATE TABLE ext8_t (id int PRIMARY KEY, note text);
COMMENT ON COLUMN ext8_t.id IS 'script id';
COMMENT ON COLUMN ext8_t.note IS 'script note';
COMMENT ON TABLE ext8_t IS 'script table';
CREATE VIEW ext8_v AS SELECT 1 AS one;
COMMENT ON COLUMN ext8_v.one IS 'script view column';
CREATE FUNCTION ext8_f() RETURNS int LANGUAGE sql AS 'SELECT 8';
COMMENT ON FUNCTION ext8_f() IS 'script function';
CREATE TYPE ext8_e AS ENUM ('a');
COMMENT ON TYPE ext8_e IS 'script type';
"""


@pytest.fixture(scope='module')
def ext8(pg: PostgresServer) -> Iterator[str]:
    name = 'fid_ext8_%s' % uuid.uuid4().hex[:6]
    sharedir = subprocess.run([pg.bin('pg_config'), '--sharedir'], check=True, capture_output=True,
                              text=True).stdout.strip()
    control = Path(sharedir, 'extension', name + '.control')
    script = Path(sharedir, 'extension', name + '--1.0.sql')
    try:
        script.write_text(EXT8_SQL)
        control.write_text("default_version = '1.0'\nrelocatable = true\nsuperuser = true\n")
        yield name
    finally:
        for path in (control, script):
            path.unlink(missing_ok=True)


EXT8_STATE = ("SELECT coalesce(col_description('ext8_t'::regclass, 1), '-'), "
              "coalesce(col_description('ext8_t'::regclass, 2), '-'), "
              "coalesce(obj_description('ext8_t'::regclass, 'pg_class'), '-'), "
              "coalesce(col_description('ext8_v'::regclass, 1), '-'), "
              "coalesce(obj_description('ext8_f()'::regprocedure, 'pg_proc'), '-'), "
              "coalesce(obj_description('ext8_e'::regtype, 'pg_type'), '-')")


def test_extension_comments_a_user_removed_stay_removed(pg, ext8, tmp_path):
    """A column comment, a table comment, a view column's, a function's and a type's comment the extension script sets
    and a user removed (COMMENT ... IS NULL), nothing else of them changed: the backup did not record the member, so
    the restored copy had the script's comments back. Recorded and removed again; a comment the user kept is kept."""
    name = 'fid_extrm8_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql('CREATE EXTENSION %s; COMMENT ON COLUMN ext8_t.id IS NULL; COMMENT ON TABLE ext8_t IS NULL; '
               'COMMENT ON COLUMN ext8_v.one IS NULL; COMMENT ON FUNCTION ext8_f() IS NULL; '
               'COMMENT ON TYPE ext8_e IS NULL' % qi(ext8), database=name)
        expected = pg.sql(EXT8_STATE, database=name)
        assert expected == [('-', 'script note', '-', '-', '-', '-')], expected
        dest = backup(tmp_path, pg, name)
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-4000:]
        assert pg.sql(EXT8_STATE, database=copy) == expected
        warnings = result.result('restore')['restore_warnings']
        assert not [w for w in warnings if 'did not come back' in w], warnings
    finally:
        drop_databases(pg, name, copy)


# -- point-in-time recovery to the old timeline after a fork -------------------------------------------------------
def _fork(server: PostgresServer, cold: Path, point: str) -> None:
    """What an earlier point-in-time recovery of the cluster does: the cold copy taken before (the base) recovers from
    the archive to ``point`` and is promoted, on timeline 2, archiving into the same archive."""
    import shutil
    import time
    server.stop()
    shutil.rmtree(server.datadir)
    subprocess.run(['cp', '-a', str(cold), str(server.datadir)], check=True)
    auto = server.datadir / 'postgresql.auto.conf'
    auto.write_text(auto.read_text() + "\nrestore_command = 'cp %s/%%f \"%%p\"'\nrecovery_target_time = '%s'\n"
                    "recovery_target_action = 'promote'\n" % (server.wal_archive_dir, point))
    (server.datadir / 'recovery.signal').write_text('')
    subprocess.run(['chown', '--reference=%s' % cold, str(auto), str(server.datadir / 'recovery.signal')], check=True)
    server.start()
    deadline = time.monotonic() + 60
    while server.sql('SELECT pg_is_in_recovery()')[0][0] != 'f':
        assert time.monotonic() < deadline, 'the copy was not promoted'
        time.sleep(0.2)


def test_pitr_to_the_old_timeline_after_a_fork(tmp_path):
    """Timeline 1 has WAL past the point an earlier recovery forked timeline 2 from (the transactions after that
    point, which the recovery threw away on purpose): a user asking for a time between the fork and the end of
    timeline 1 got a recovery that followed timeline 2 (recovery_target_timeline = 'latest') and stopped at the fork,
    without those transactions. ``target_timeline`` chooses the timeline (as pgBackRest's --target-timeline does);
    left unset, such a time is refused, naming the option, in check mode too. Along timeline 1 the recovered cluster
    is promoted onto timeline 3 (it took 2 when only timeline 1's history was staged, the number the archive's other
    branch already is)."""
    import datetime
    import os
    import shutil
    import tempfile
    import time
    from tests.integration.test_db_restore_pitr import catalog_wal, labels, switch_and_wait
    server = PostgresServer()
    scratch = Path(tempfile.mkdtemp(prefix='opsready-pitr-fork-'))
    os.chmod(scratch, 0o711)
    try:
        server.start()
        server.create_database('app')
        server.sql("CREATE TABLE events (id serial PRIMARY KEY, label text NOT NULL); INSERT INTO events (label) "
                   "VALUES ('a')", database='app')
        dest = tmp_path / 'backups'
        result = play(tmp_path, [{'name': 'base', 'opsready.operations.db_backup': dict(
            pg_conn(server), engine='postgresql', kind='base', dest=str(dest), owner='postgres')}], server)
        assert result.rc == 0, result.stdout[-3000:]
        server.stop()
        cold = scratch / 'cold'
        subprocess.run(['cp', '-a', str(server.datadir), str(cold)], check=True)
        server.start()
        server.sql("INSERT INTO events (label) VALUES ('b')", database='app')
        time.sleep(1.0)
        fork_point = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.0)
        server.sql("INSERT INTO events (label) VALUES ('c')", database='app')
        time.sleep(1.0)
        old_point = datetime.datetime.now(datetime.timezone.utc)   # on timeline 1 only
        time.sleep(1.0)
        server.sql("INSERT INTO events (label) VALUES ('d')", database='app')
        switch_and_wait(server)
        _fork(server, cold, fork_point.isoformat())
        assert server.sql('SELECT timeline_id FROM pg_control_checkpoint()')[0][0] == '2'
        server.sql("INSERT INTO events (label) VALUES ('e2')", database='app')
        switch_and_wait(server)
        deadline = time.monotonic() + 30
        while not (server.wal_archive_dir / '00000002.history').exists():
            assert time.monotonic() < deadline, '00000002.history was not archived'
            time.sleep(0.1)
        catalog_wal(server, dest)
        (dest / 'pg_wal_extra').mkdir(mode=0o700)
        shutil.copy(server.wal_archive_dir / '00000002.history', dest / 'pg_wal_extra' / '00000002.history')

        restore_to = dict(pg_conn(server), engine='postgresql', src=str(dest))
        tasks = [
            {'name': 'latest', 'opsready.operations.db_restore': dict(restore_to, datadir=str(scratch / 'latest'))},
            {'name': 'newest timeline', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
                restore_to, datadir=str(scratch / 'refused'), stop_at=old_point.isoformat())},
            {'name': 'check', 'check_mode': True, 'ignore_errors': True, 'opsready.operations.db_restore': dict(
                restore_to, datadir=str(scratch / 'refused'), stop_at=old_point.isoformat())},
            {'name': 'old timeline', 'opsready.operations.db_restore': dict(
                restore_to, datadir=str(scratch / 'old'), stop_at=old_point.isoformat(), target_timeline='1')},
        ]
        result = play(tmp_path, tasks, server)
        try:
            latest = result.result('latest')
            assert latest['_event'] == 'runner_on_ok', latest.get('msg')
            assert labels(server, latest['target']['port'], server.password, 'app') == ['a', 'b', 'e2']
            for name in ('newest timeline', 'check'):
                refused = result.result(name)
                assert refused['_event'] == 'runner_on_failed', refused
                assert 'target_timeline' in refused['msg'] and 'timeline 1' in refused['msg'], refused['msg']
            assert not (scratch / 'refused').exists()
            old = result.result('old timeline')
            assert old['_event'] == 'runner_on_ok', old.get('msg')
            assert labels(server, old['target']['port'], server.password, 'app') == ['a', 'b', 'c']
            # promoted onto a timeline of its own: not 2, which the archive's other branch already is
            timeline = subprocess.run(
                [server.bin('psql'), '-X', '-A', '-t', '-c', 'SELECT timeline_id FROM pg_control_checkpoint()'],
                env=dict(os.environ, PGHOST='127.0.0.1', PGPORT=str(old['target']['port']), PGUSER=server.user,
                         PGPASSWORD=server.password, PGDATABASE='app'),
                check=True, capture_output=True, text=True).stdout.strip()
            assert timeline == '3', timeline
        finally:
            play(tmp_path, [{'name': 'drop-%s' % name, 'ignore_errors': True,
                             'opsready.operations.db_restore': dict(restore_to, datadir=str(scratch / name),
                                                                    state='absent')}
                            for name in ('latest', 'refused', 'old')], server)
    finally:
        server.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)


# -- object kinds a DBA uses that rounds 1-7 did not hold -----------------------------------------------------------
KINDS8 = r'''
CREATE SCHEMA "k8 Sch-x=y";
SET search_path = "k8 Sch-x=y", public;
-- domains with constraints, one NOT VALID (rows that break it stay), a domain over a domain, a domain's default
CREATE DOMAIN pos AS int CONSTRAINT pos_gt0 CHECK (VALUE > 0) DEFAULT 1;
CREATE DOMAIN small_pos AS pos CONSTRAINT small CHECK (VALUE < 1000) NOT NULL;
CREATE TABLE dom_t (p pos, note text);
INSERT INTO dom_t VALUES (5, 'valid'), (NULL, 'null');
CREATE DOMAIN later AS text;
CREATE TABLE later_t (v later);
INSERT INTO later_t VALUES ('short'), ('a rather long value');
ALTER DOMAIN later ADD CONSTRAINT short_only CHECK (length(VALUE) < 10) NOT VALID;
COMMENT ON CONSTRAINT short_only ON DOMAIN later IS 'not valid on purpose';
-- an enum with values added before, after and at the end (the sort order is not the OID order)
CREATE TYPE mood AS ENUM ('sad', 'happy');
ALTER TYPE mood ADD VALUE 'ok' BEFORE 'happy';
ALTER TYPE mood ADD VALUE 'ecstatic' AFTER 'happy';
ALTER TYPE mood ADD VALUE 'awful' BEFORE 'sad';
ALTER TYPE mood RENAME VALUE 'ok' TO 'o''k "x"';
CREATE TABLE moods (m mood PRIMARY KEY);
INSERT INTO moods SELECT unnest(enum_range(NULL::mood));
-- a range type with its own multirange name, subtype diff and collation; a table of ranges with an exclusion
CREATE FUNCTION f8_diff(float8, float8) RETURNS float8 LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1 - $2';
CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = f8_diff, multirange_type_name = "float Multi");
CREATE TYPE textrange_c AS RANGE (subtype = text, collation = "C");
CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public;
CREATE TABLE booking (room int, during tstzrange, r floatrange, m "float Multi",
  EXCLUDE USING gist (room WITH =, during WITH &&));
INSERT INTO booking VALUES (1, '[2024-01-01 10:00+00, 2024-01-01 11:00+00)', '[1.5, 2.5)', '{[1,2), [3,4]}');
-- collations: ICU, nondeterministic (case-insensitive), libc; a column and an index using them
CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE COLLATION "de Phone" (provider = icu, locale = 'de-u-co-phonebk');
CREATE COLLATION posix_c FROM "C";
CREATE TABLE coll_t (id int, name text COLLATE ci, de text COLLATE "de Phone");
CREATE UNIQUE INDEX coll_t_name ON coll_t (name);
INSERT INTO coll_t VALUES (1, 'Alpha', 'Müller'), (2, 'beta', 'Mueller');
COMMENT ON COLLATION ci IS 'case-insensitive';
-- casts, operators, an operator class and family, a text search configuration with its own dictionary
CREATE TYPE pair AS (a int, b int);
CREATE FUNCTION pair_to_int(pair) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1.a + $1.b';
CREATE CAST (pair AS int) WITH FUNCTION pair_to_int(pair) AS ASSIGNMENT;
CREATE FUNCTION pair_eq(pair, pair) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1.a = $2.a AND $1.b = $2.b';
CREATE OPERATOR === (LEFTARG = pair, RIGHTARG = pair, FUNCTION = pair_eq, COMMUTATOR = ===);
CREATE FUNCTION abs_lt(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1) < abs($2)';
CREATE FUNCTION abs_le(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1) <= abs($2)';
CREATE FUNCTION abs_eq(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1) = abs($2)';
CREATE FUNCTION abs_ge(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1) >= abs($2)';
CREATE FUNCTION abs_gt(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT abs($1) > abs($2)';
CREATE FUNCTION abs_cmp(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT sign(abs($1) - abs($2))::int';
CREATE OPERATOR <# (LEFTARG = int, RIGHTARG = int, FUNCTION = abs_lt);
CREATE OPERATOR <=# (LEFTARG = int, RIGHTARG = int, FUNCTION = abs_le);
CREATE OPERATOR =# (LEFTARG = int, RIGHTARG = int, FUNCTION = abs_eq);
CREATE OPERATOR >=# (LEFTARG = int, RIGHTARG = int, FUNCTION = abs_ge);
CREATE OPERATOR ># (LEFTARG = int, RIGHTARG = int, FUNCTION = abs_gt);
CREATE OPERATOR FAMILY abs_fam USING btree;
CREATE OPERATOR CLASS abs_ops FOR TYPE int USING btree FAMILY abs_fam AS
  OPERATOR 1 <#, OPERATOR 2 <=#, OPERATOR 3 =#, OPERATOR 4 >=#, OPERATOR 5 >#, FUNCTION 1 abs_cmp(int, int);
CREATE TABLE abs_t (v int);
INSERT INTO abs_t VALUES (-3), (2), (-1);
CREATE INDEX abs_t_v ON abs_t (v abs_ops);
CREATE TEXT SEARCH DICTIONARY simple_nostop (TEMPLATE = simple, STOPWORDS = english, ACCEPT = false);
CREATE TEXT SEARCH CONFIGURATION "my Search" (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION "my Search" ALTER MAPPING FOR asciiword WITH simple_nostop, simple;
ALTER TEXT SEARCH CONFIGURATION "my Search" DROP MAPPING FOR email;
CREATE TABLE docs (id int, body text, tsv tsvector GENERATED ALWAYS AS (to_tsvector('"k8 Sch-x=y"."my Search"',
  body)) STORED);
INSERT INTO docs (id, body) VALUES (1, 'the quick brown foxes');
-- event triggers (one disabled, one with a tag filter)
CREATE FUNCTION evt_f() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN NULL; END$$;
CREATE EVENT TRIGGER "evt Odd" ON ddl_command_start WHEN TAG IN ('CREATE TABLE', 'DROP TABLE') EXECUTE FUNCTION
  evt_f();
CREATE EVENT TRIGGER evt_off ON sql_drop EXECUTE FUNCTION evt_f();
ALTER EVENT TRIGGER evt_off DISABLE;
ALTER EVENT TRIGGER "evt Odd" ENABLE ALWAYS;
-- a foreign data wrapper with options, a server with options, user mappings for a role and for PUBLIC
CREATE FOREIGN DATA WRAPPER fdw8 OPTIONS (debug 'true', "odd Key" 'v''q');
CREATE SERVER "srv 8" TYPE 'x' VERSION '1.0' FOREIGN DATA WRAPPER fdw8 OPTIONS (host 'db.invalid', dbname 'd''q');
CREATE USER MAPPING FOR fid_reader SERVER "srv 8" OPTIONS (user 'reader');
CREATE USER MAPPING FOR PUBLIC SERVER "srv 8";
GRANT USAGE ON FOREIGN SERVER "srv 8" TO fid_owner;
-- large objects with owner, ACL and comment
SELECT lo_from_bytea(808080, 'lo with a comment');
ALTER LARGE OBJECT 808080 OWNER TO fid_owner;
GRANT SELECT, UPDATE ON LARGE OBJECT 808080 TO fid_reader;
COMMENT ON LARGE OBJECT 808080 IS 'lo comment';
-- extended statistics with kinds and a statistics target, on an expression too
CREATE TABLE st (a int, b int, c text);
INSERT INTO st SELECT g % 10, g % 5, 'x' || (g % 3) FROM generate_series(1, 200) g;
CREATE STATISTICS st_ab (ndistinct, dependencies) ON a, b FROM st;
CREATE STATISTICS st_expr ON (a + b), lower(c) FROM st;
ALTER STATISTICS st_ab SET STATISTICS 500;
COMMENT ON STATISTICS st_ab IS 'stats';
-- identity columns with sequence options, generated columns, storage, compression, statistics targets, replica
-- identity (index, full, nothing), an unlogged table, NOT VALID check and foreign key, deferrable constraints,
-- an index with INCLUDE and NULLS NOT DISTINCT
CREATE TABLE ident (id bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 100 INCREMENT BY 7 MINVALUE 50
  MAXVALUE 100000 CACHE 3 CYCLE), id2 int GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME "ident Seq"),
  v text, v_len int GENERATED ALWAYS AS (length(v)) STORED);
INSERT INTO ident (v) VALUES ('a'), ('bb');
ALTER TABLE ident ALTER COLUMN id RESTART WITH 500;
ALTER TABLE ident ALTER COLUMN v SET STORAGE EXTERNAL;
ALTER TABLE ident ALTER COLUMN v SET COMPRESSION lz4;
ALTER TABLE ident ALTER COLUMN v SET STATISTICS 42;
CREATE UNIQUE INDEX ident_id2 ON ident (id2) INCLUDE (v) NULLS NOT DISTINCT;
ALTER TABLE ident REPLICA IDENTITY USING INDEX ident_id2;
CREATE TABLE rfull (a int);
ALTER TABLE rfull REPLICA IDENTITY FULL;
CREATE TABLE rnothing (a int PRIMARY KEY);
ALTER TABLE rnothing REPLICA IDENTITY NOTHING;
CREATE UNLOGGED TABLE scratch_u (a int);
INSERT INTO scratch_u VALUES (1);
CREATE TABLE parent8 (id int PRIMARY KEY);
CREATE TABLE child8 (pid int, CONSTRAINT d8 UNIQUE (pid) DEFERRABLE INITIALLY DEFERRED);
INSERT INTO child8 VALUES (-1), (7);
ALTER TABLE child8 ADD CONSTRAINT child8_fk FOREIGN KEY (pid) REFERENCES parent8 NOT VALID;
ALTER TABLE child8 ADD CONSTRAINT child8_pos CHECK (pid > 0) NOT VALID;
-- row security on a partitioned table and on one partition only
CREATE TABLE rls_p (id int, tenant text) PARTITION BY LIST (tenant);
CREATE TABLE rls_a PARTITION OF rls_p FOR VALUES IN ('a');
CREATE TABLE rls_b PARTITION OF rls_p FOR VALUES IN ('b');
ALTER TABLE rls_p ENABLE ROW LEVEL SECURITY;
ALTER TABLE rls_b ENABLE ROW LEVEL SECURITY;
ALTER TABLE rls_b FORCE ROW LEVEL SECURITY;
CREATE POLICY p_parent ON rls_p USING (tenant = current_user);
CREATE POLICY "p b only" ON rls_b AS RESTRICTIVE FOR SELECT TO fid_reader USING (id > 0);
INSERT INTO rls_p VALUES (1, 'a'), (2, 'b');
-- a subscription left disabled, without a slot
CREATE SUBSCRIPTION "sub 8" CONNECTION 'host=127.0.0.1 port=1 dbname=nowhere' PUBLICATION p1, "p 2"
  WITH (connect = false, enabled = false, slot_name = NONE, binary = true, streaming = on);
-- a transform (its functions any internal ones: plpgsql never calls them) with a comment; a cast WITH INOUT
CREATE FUNCTION tf_from(internal) RETURNS internal LANGUAGE internal IMMUTABLE STRICT AS 'int4recv';
CREATE FUNCTION tf_to(internal) RETURNS int LANGUAGE internal IMMUTABLE STRICT AS 'int4recv';
CREATE TRANSFORM FOR int LANGUAGE plpgsql (FROM SQL WITH FUNCTION tf_from(internal), TO SQL WITH FUNCTION
  tf_to(internal));
COMMENT ON TRANSFORM FOR int LANGUAGE plpgsql IS 'transform';
CREATE CAST (pair AS text) WITH INOUT AS IMPLICIT;
RESET search_path;
'''


def kinds8_extra(server: PostgresServer, db: str) -> list:
    """What a DBA checks in the catalog beyond pg_dump's text (orders, flags pg_dump writes only implicitly). A
    foreign server's options are compared as a set: pg_dump writes them sorted by name, whatever their order."""
    return server.sql(
        "SET search_path = \"k8 Sch-x=y\", public; "
        "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = 'mood'::regtype "
        "UNION ALL SELECT string_agg(m::text, ',' ORDER BY m) FROM moods "
        "UNION ALL SELECT string_agg(conname || ':' || convalidated::text, ',' ORDER BY conname) FROM pg_constraint "
        "WHERE connamespace = '\"k8 Sch-x=y\"'::regnamespace "
        "UNION ALL SELECT string_agg(evtname || ':' || evtenabled::text || ':' || coalesce(array_to_string(evttags, "
        "';'), '-'), ',' ORDER BY evtname) FROM pg_event_trigger "
        "UNION ALL SELECT string_agg(attname || ':' || attstorage::text || ':' || attcompression::text || ':' || "
        "attstattarget::text || ':' || attidentity::text || ':' || attgenerated::text, ',' ORDER BY attnum) "
        "FROM pg_attribute WHERE attrelid = 'ident'::regclass AND attnum > 0 "
        "UNION ALL SELECT string_agg(relname || ':' || relreplident::text || ':' || relpersistence::text || ':' || "
        "relrowsecurity::text || ':' || relforcerowsecurity::text, ',' ORDER BY relname) FROM pg_class WHERE "
        "relnamespace = '\"k8 Sch-x=y\"'::regnamespace AND relkind IN ('r', 'p') "
        "UNION ALL SELECT string_agg(s.seqrelid::regclass::text || ':' || seqstart || ':' || seqincrement || ':' || "
        "seqmin || ':' || seqmax || ':' || seqcache || ':' || seqcycle::text || ':' || pg_sequence_last_value("
        "s.seqrelid)::text, ',' ORDER BY 1) FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid WHERE "
        "c.relnamespace = '\"k8 Sch-x=y\"'::regnamespace "
        "UNION ALL SELECT string_agg(stxname || ':' || array_to_string(stxkind, ';') || ':' || stxstattarget::text, "
        "',' ORDER BY stxname) FROM pg_statistic_ext "
        "UNION ALL SELECT string_agg(subname || ':' || subenabled::text || ':' || coalesce(subslotname, '-') || ':' "
        "|| subbinary::text || ':' || substream::text, ',') FROM pg_subscription WHERE subdbid = (SELECT oid FROM "
        "pg_database WHERE datname = current_database()) "
        "UNION ALL SELECT string_agg(collname || ':' || collprovider::text || ':' || collisdeterministic::text, ',' "
        "ORDER BY collname) FROM pg_collation WHERE collnamespace = '\"k8 Sch-x=y\"'::regnamespace "
        "UNION ALL SELECT (SELECT count(*) FROM coll_t WHERE name = 'ALPHA')::text || '/' || (SELECT "
        "string_agg(v::text, ',' ORDER BY v USING <#) FROM abs_t) || '/' || (SELECT tsv::text FROM docs) "
        "UNION ALL SELECT coalesce(array_to_string(fdwoptions, ';'), '-') || '/' || (SELECT string_agg(o, ';' "
        "ORDER BY o) FROM pg_foreign_server, unnest(srvoptions) o WHERE srvname = 'srv 8') || '/' || "
        "(SELECT string_agg(usename || "
        "'=' || coalesce(array_to_string(umoptions, ';'), '-'), ',' ORDER BY usename) FROM pg_user_mappings WHERE "
        "srvname = 'srv 8') FROM pg_foreign_data_wrapper WHERE fdwname = 'fdw8'", database=db)


def drop_with_subscriptions(server: PostgresServer, *names: str) -> None:
    """DROP DATABASE refuses a database with a subscription: its subscriptions go first (slot_name NONE: there is no
    publisher)."""
    for db in names:
        if server.sql('SELECT count(*) FROM pg_database WHERE datname = %s' % ql(db)) != [('0',)]:
            server.sql('ALTER SUBSCRIPTION "sub 8" SET (slot_name = NONE); DROP SUBSCRIPTION IF EXISTS "sub 8"',
                       database=db)
    drop_databases(server, *names)


def test_round8_kinds(pg, tmp_path):
    """See KINDS8 (domains with NOT VALID constraints, enum values added out of order and renamed, range types with
    their own multirange name, ICU and nondeterministic collations, casts, a transform, operators, an operator class and
    family, a text search configuration with its own dictionary feeding a generated column, event triggers disabled
    and filtered, a foreign data wrapper, server and user mappings with options, a large object's owner, ACL and
    comment, extended statistics, identity columns with sequence options, storage, compression, statistics targets,
    replica identities, NOT VALID and deferrable constraints, INCLUDE and NULLS NOT DISTINCT, row security on a
    partitioned table and on one partition, a disabled subscription without a slot): the same after a restore of
    each format under an odd database name and over the original. Over a target holding a subscription (which DROP
    DATABASE cannot remove) the run refuses before changing anything, and check mode foresees it. Regression guard
    (passed on the code before this round)."""
    name = 'fid_kinds8 -x=y \'q\' %s' % uuid.uuid4().hex[:6]
    copy = 'Fid8 Copy\t"ü" %s' % uuid.uuid4().hex[:6]   # (pg_dump refuses a name with a newline)
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql(KINDS8, database=name)
        expected, extra = snapshot(pg, name), kinds8_extra(pg, name)
        assert extra[0] == ('awful,sad,o\'k "x",happy,ecstatic',), extra
        for fmt in FORMATS:
            work = tmp_path / fmt
            work.mkdir()
            dest = backup(work, pg, name, format=fmt)
            drop_with_subscriptions(pg, copy)
            check = check_restore(work, pg, dest, source_database=name, database=copy)
            assert check.rc == 0, check.stdout[-3000:]
            result = restore(work, pg, dest, source_database=name, database=copy,
                             jobs=2 if fmt == 'directory' else 1)
            assert result.rc == 0, result.stdout[-4000:]
            assert_same(expected, snapshot(pg, copy), 'restore of the %s backup under another name' % fmt)
            assert kinds8_extra(pg, copy) == extra, fmt
        dest = tmp_path / 'custom' / 'backups'
        check = check_restore(tmp_path, pg, dest, source_database=name, database=name, replace=True)
        refused = restore(tmp_path, pg, dest, source_database=name, database=name, replace=True)
        for res in (check, refused):
            assert res.rc != 0 and 'sub 8' in res.result('restore')['msg'], res.stdout[-3000:]
            assert 'Nothing was changed' in res.result('restore')['msg']
        pg.sql('ALTER SUBSCRIPTION "sub 8" SET (slot_name = NONE); DROP SUBSCRIPTION "sub 8"', database=name)
        result = restore(tmp_path, pg, dest, source_database=name, database=name, replace=True)
        assert result.rc == 0, result.stdout[-4000:]
        assert_same(expected, snapshot(pg, name), 'restore over the original')
        assert kinds8_extra(pg, name) == extra
        assert leftovers(pg) == []
    finally:
        drop_with_subscriptions(pg, name, copy)
        pg.sql('DROP EVENT TRIGGER IF EXISTS "evt Odd"; DROP EVENT TRIGGER IF EXISTS evt_off')


# -- what a run leaves out or refuses, foreseen by check mode and said in the warnings -------------------------------
def test_tablespace_the_target_lacks_foreseen_and_warned(pg, tmp_path):
    """Objects in a tablespace the target server lacks: check mode said nothing (``changed``, no warning) while the
    real run refused a plain backup before anything was created; a custom backup's objects moved into the default
    tablespace were named only in ``database_properties.skipped``, never in the warnings. Check mode now refuses the
    plain one as the run does and warns of the move, and the run's warnings name it."""
    space = 'fid_ts8_%s' % uuid.uuid4().hex[:6]
    name = 'fid_tsobj8_%s' % uuid.uuid4().hex[:6]
    pg.sql("CREATE TABLESPACE %s LOCATION %s" % (qi(space), ql(str(pg.service_dir(space)))))
    try:
        pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
        pg.sql("CREATE TABLE placed (id int) TABLESPACE %s; INSERT INTO placed VALUES (1)" % qi(space), database=name)
        (tmp_path / 'c').mkdir()
        (tmp_path / 'p').mkdir()
        custom = backup(tmp_path / 'c', pg, name)
        plain = backup(tmp_path / 'p', pg, name, format='plain')
        drop_databases(pg, name)
        pg.sql('DROP TABLESPACE %s' % qi(space))
        check = check_restore(tmp_path / 'p', pg, plain, source_database=name, database=name)
        assert check.rc != 0, check.stdout[-3000:]
        msg = check.result('restore')['msg']
        assert space in msg and 'public.placed' in msg and 'Nothing was restored' in msg, msg

        def moved(res: dict) -> list:
            return [w for w in res.get('restore_warnings') or [] if space in w and 'public.placed' in w]

        check = check_restore(tmp_path / 'c', pg, custom, source_database=name, database=name)
        assert check.rc == 0, check.stdout[-3000:]
        assert len(moved(check.result('restore'))) == 1, check.result('restore').get('restore_warnings')
        result = restore(tmp_path / 'c', pg, custom, source_database=name, database=name)
        assert result.rc == 0, result.stdout[-3000:]
        assert len(moved(result.result('restore'))) == 1, result.result('restore').get('restore_warnings')
        assert pg.sql('SELECT count(*) FROM placed', database=name) == [('1',)]
    finally:
        drop_databases(pg, name)
        pg.sql('DROP TABLESPACE IF EXISTS %s' % qi(space))
