"""Fidelity, PostgreSQL, round 9 (red team): what rounds 1-8 named but did not warn of or foresee, and classes they
did not hold.

* a database privilege the restoring collection does not know (a manifest from a newer server, or edited) was left out
  and listed only in ``database_properties.skipped``: it is a warning (``restore_warnings``), in check mode too;
* check mode did not foresee that the target server lacks the backed-up database's collation/ctype locale (the real
  run refuses before anything is created): it refuses the same way;
* object kinds and privilege shapes a DBA checks that rounds 1-8 did not hold (KINDS9), restored under an odd name and
  over the original (replace=true), in every format.
"""

from __future__ import annotations

import json
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


def edit_manifests(dest: Path, change) -> None:
    """As if the backup came from another server: ``change(data)`` edits each manifest's JSON."""
    for path in dest.glob('*.json'):
        data = json.loads(path.read_text())
        if data.get('database_properties'):
            change(data)
            path.write_text(json.dumps(data))


# -- a database privilege this collection does not know ------------------------------------------------------------
def test_unknown_database_privilege_is_a_warning(pg, tmp_path):
    """A database ACL entry whose privilege this collection does not know (a newer server's, or a manifest edited by
    hand) was left out and listed only in ``database_properties.skipped``: a user reading the warnings (a drill
    report, the play's output) never learnt the restored database lacks it. It is a warning naming the privilege and
    the grantee, in check mode too; the known privileges are restored as before."""
    name = 'fid_acl9_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql('CREATE TABLE t (v int)', database=name)
        pg.sql('GRANT CONNECT ON DATABASE %s TO fid_reader' % qi(name))
        dest = backup(tmp_path, pg, name)

        def add(data: dict) -> None:
            data['database_properties']['acl'].append({'grantor': data['database_properties']['owner'],
                                                       'grantee': 'fid_reader', 'privilege': 'FUTURE_PRIV',
                                                       'grantable': False})
        edit_manifests(dest, add)

        def named(res: dict) -> list:
            return [w for w in res.get('restore_warnings') or [] if 'FUTURE_PRIV' in w and 'fid_reader' in w]

        check = check_restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert check.rc == 0, check.stdout[-3000:]
        assert len(named(check.result('restore'))) == 1, check.result('restore').get('restore_warnings')
        result = restore(tmp_path, pg, dest, source_database=name, database=copy)
        assert result.rc == 0, result.stdout[-3000:]
        res = result.result('restore')
        assert len(named(res)) == 1, res.get('restore_warnings')
        acl = pg.sql('SELECT datacl::text FROM pg_database WHERE datname = %s' % ql(copy))[0][0]
        assert 'fid_reader=c/' in acl, acl
    finally:
        drop_databases(pg, name, copy)


# -- the database's own locale, foreseen by check mode -------------------------------------------------------------
@pytest.mark.parametrize('key', ['collate', 'ctype'])
def test_missing_database_locale_foreseen_by_check_mode(pg, tmp_path, key):
    """A backup of a database whose LC_COLLATE or LC_CTYPE this server lacks: the real run refuses before anything is
    created (CREATE DATABASE fails), but check mode said ``ok``/``changed``. It refuses the same way, naming the
    locale, and creates nothing."""
    name = 'fid_loc9_%s' % uuid.uuid4().hex[:6]
    copy = name + '_copy'
    pg.sql('CREATE DATABASE %s TEMPLATE template0' % qi(name))
    try:
        pg.sql('CREATE TABLE t (v int)', database=name)
        dest = backup(tmp_path, pg, name)
        edit_manifests(dest, lambda data: data['database_properties'].__setitem__(key, 'xx_XX.UTF-8'))
        for run in (check_restore, restore):
            res = run(tmp_path, pg, dest, source_database=name, database=copy)
            assert res.rc != 0, (run.__name__, res.stdout[-3000:])
            msg = res.result('restore')['msg']
            assert 'xx_XX.UTF-8' in msg and 'Nothing was restored' in msg, (run.__name__, msg)
            assert leftovers(pg) == [] and pg.sql('SELECT count(*) FROM pg_database WHERE datname = %s'
                                                  % ql(copy)) == [('0',)]
    finally:
        drop_databases(pg, name, copy)
