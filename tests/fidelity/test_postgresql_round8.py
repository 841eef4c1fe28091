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
    FORMATS, assert_same, backup, create_roles, leftovers, play, qi, ql, restore, snapshot)
from tests.fidelity.test_postgresql import conn as pg_conn
from tests.fidelity.test_postgresql_round4 import drop_databases
from tests.harness.servers import PostgresServer


@pytest.fixture(scope='module')
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        create_roles(server)
        yield server
    finally:
        server.cleanup()


def check_restore(tmp_path: Path, server: PostgresServer, dest: Path, **options):
    return play(tmp_path, [{'name': 'restore', 'check_mode': True, 'opsready.operations.db_restore': dict(
        pg_conn(server), engine='postgresql', src=str(dest), **options)}], server)


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
    left at the newest, such a time is refused, naming the option."""
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
        finally:
            play(tmp_path, [{'name': 'drop-%s' % name, 'ignore_errors': True,
                             'opsready.operations.db_restore': dict(restore_to, datadir=str(scratch / name),
                                                                    state='absent')}
                            for name in ('latest', 'refused', 'old')], server)
    finally:
        server.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
