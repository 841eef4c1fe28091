"""PostgreSQL 17+ login event triggers: every session of a restore in its target starts with event triggers off
(``quiet_databases``: ``-c event_triggers=off``), or a login trigger of the target's fires on the restore's own
connection. ``check_target`` looks inside an existing target (``target_contents``: a login of its own) and ran before
the target was made quiet, so the target's login triggers fired on that inspection. These tests record every
connection the run makes before its load and the quiet set each one had; there is no PostgreSQL 17 here."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (  # noqa: E402
    restore as pg_restore)

TARGET = 'shop'


class Stop(Exception):
    """Raised by the first step after the target's inspection: what follows is not under test."""


class Recorder:
    """An engine whose every connection (``query``'s own login in ``database``, or a statement on the locked session
    in the maintenance database) is recorded with whether ``TARGET`` was quiet then."""

    def __init__(self, version: str = '170004', superuser: str = 'on') -> None:
        self.seen = []
        self.answer = [superuser, version]
        self.client = SimpleNamespace(quiet_databases=set())
        self.conn = SimpleNamespace(where=lambda port: 'db1:5432')
        self.server_label = lambda: 'db1:5432'

    def connections(self):
        """(database, whether the target was quiet) of each connection, in order (None: the maintenance database)."""
        return [(database, quiet) for database, quiet, _sql in self.seen]

    def _note(self, database, sql):
        self.seen.append((database, TARGET in self.client.quiet_databases, sql))

    def query(self, sql, database=None, **kwargs):
        self._note(database, sql)
        if 'is_superuser' in sql:
            return [list(self.answer)]
        if database == TARGET:   # target_contents: every kind counted 0, then the public schema's state
            return [['0'] * 40]
        return [['false', 'true', 'x', '0', '0']] if 'datistemplate' in sql else []

    def session(self):
        return SimpleNamespace(query=self.query, alive=True)


def _stop(*args, **kwargs):
    raise Stop()


def _request():
    return SimpleNamespace(database=TARGET, replace=True, no_owner=False, jobs=1, tmpdir=None)


def test_the_target_is_quiet_before_its_inspection_connects(monkeypatch):
    """The real run: the target (and the copy) are quiet before check_target's login into the existing target."""
    monkeypatch.setattr(pg_restore, 'check_roles', _stop)
    engine = Recorder()
    with pytest.raises(Stop):
        pg_restore._restore_locked(engine, _request(), SimpleNamespace(), TARGET, None, engine.session(), None, {})
    inside = [quiet for database, quiet, _sql in engine.seen if database == TARGET]
    assert inside, 'the inspection never looked inside the existing target: %r' % engine.connections()
    assert all(inside), 'a connection into the target before it was quiet: %r' % engine.connections()
    copies = engine.client.quiet_databases - {TARGET}
    assert len(copies) == 1 and copies.pop().startswith(pg_restore.temporary_name(TARGET)[:len(TARGET) + 2])


def test_check_mode_inspects_a_quiet_target(monkeypatch):
    """Check mode inspects the target the same way (and runs nothing in it)."""
    monkeypatch.setattr(pg_restore, 'check_roles', _stop)
    engine = Recorder()
    engine.ping = lambda: None
    with pytest.raises(Stop):
        pg_restore.check(engine, _request(), [SimpleNamespace(database=TARGET, data={'format': 'custom'})])
    inside = [quiet for database, quiet, _sql in engine.seen if database == TARGET]
    assert inside and all(inside), engine.connections()


@pytest.mark.parametrize('version, superuser', [('160004', 'on'), ('170004', 'off')])
def test_nothing_is_quiet_where_the_setting_cannot_be_used(monkeypatch, version, superuser):
    """Before 17 there is no event_triggers setting, and only a superuser may set it: nothing is made quiet."""
    monkeypatch.setattr(pg_restore, 'check_roles', _stop)
    engine = Recorder(version, superuser)
    with pytest.raises(Stop):
        pg_restore._restore_locked(engine, _request(), SimpleNamespace(), TARGET, None, engine.session(), None, {})
    assert engine.client.quiet_databases == set()
    assert any(database == TARGET for database, _quiet, _sql in engine.seen)
