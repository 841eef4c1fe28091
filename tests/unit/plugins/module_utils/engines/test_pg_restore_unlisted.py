"""A serial pg_restore of a streamed custom dump moves the dump's event triggers to the end with a ``-L`` list made
from ``pg_restore --list`` of the artifact's head (``_head_listing``, ``serial_list``). When that listing failed the
load silently kept pg_restore's order (event triggers before the grants and REFRESH MATERIALIZED VIEW, where one set
ENABLE REPLICA or ENABLE ALWAYS fires): the load now says so in a warning, where a trigger could have fired."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (  # noqa: E402
    restore as pg_restore)

LISTING = ''';
; Archive created at 2026-12-01 00:00:00 UTC
;
215; 1259 16385 TABLE public t app
3120; 0 16385 TABLE DATA public t app
3121; 3466 16390 EVENT TRIGGER - guard postgres
3122; 0 0 ACL - SCHEMA public postgres
'''


class Runner:
    """``popen`` of ``pg_restore --list``: fails to start (the listing fails) or is never reached."""

    def __init__(self, fails: bool) -> None:
        self.fails = fails

    def popen(self, argv, **kwargs):
        if self.fails:
            raise OSError(24, 'Too many open files')
        raise AssertionError('listing stubbed')


def _engine(fails: bool, quiet=()) -> SimpleNamespace:
    return SimpleNamespace(env=lambda database: {}, tool=lambda name: '/usr/bin/' + name, runner=Runner(fails),
                           identities=[], client=SimpleNamespace(quiet_databases=set(quiet)))


MANIFEST = SimpleNamespace(id='postgresql-app-full-20261201T000000000000Z', kind='full', database='app', members=None,
                           path='/b/postgresql-app-full-20261201T000000000000Z.dump.zst',
                           data={'format': 'custom', 'compression': 'zstd', 'sha256': 'ab' * 32})
REQUEST = SimpleNamespace(no_owner=False, jobs=1, tmpdir=None)


@pytest.fixture
def loads(monkeypatch):
    fed = []
    monkeypatch.setattr(pg_restore, 'pipe_artifact_into', lambda runner, manifest, argv, what, **kw: fed.append(argv))
    return fed


def test_a_failed_listing_is_a_warning_of_the_kept_order(loads):
    """pg_restore --list failed to start: the dump is loaded (pg_restore's order, no -L) and the result warns that
    its event triggers were not moved last, naming the backup and what to do."""
    result = pg_restore._load(_engine(fails=True), REQUEST, MANIFEST, 'app_copy', None, quiet_event_triggers=True)
    assert len(loads) == 1 and '-L' not in loads[0]
    assert result['method'] == 'pg_restore (stdin stream)'
    [warning] = result['warnings']
    assert MANIFEST.id in warning and 'event triggers' in warning and 'not moved' in warning
    assert 'pg_restore --list' in warning and 'restore it again' in warning


def test_no_warning_where_no_trigger_could_fire(loads):
    """PostgreSQL 17+ (the copy's sessions start with event triggers off: ``quiet_databases``), or a load by a role
    that is no superuser (none but a superuser creates event triggers): the order cannot matter, no warning."""
    quiet = pg_restore._load(_engine(fails=True, quiet=['app_copy']), REQUEST, MANIFEST, 'app_copy', None,
                             quiet_event_triggers=True)
    plain = pg_restore._load(_engine(fails=True), REQUEST, MANIFEST, 'app_copy', None, quiet_event_triggers=False)
    assert 'warnings' not in quiet and 'warnings' not in plain and len(loads) == 2


def test_a_listing_read_moves_the_event_triggers_last_without_a_warning(loads, monkeypatch):
    monkeypatch.setattr(pg_restore, '_head_listing', lambda engine, manifest: LISTING)
    monkeypatch.setattr(pg_restore, 'secret_file', _listed_file)
    result = pg_restore._load(_engine(fails=False), REQUEST, MANIFEST, 'app_copy', None, quiet_event_triggers=True)
    assert 'warnings' not in result and result['method'] == 'pg_restore (stdin stream, the event triggers last)'
    assert loads[0][-2:] == ['-L', '/tmp/listed'] and _listed_file.written[-1].splitlines()[-1] == '3121;'


def _listed_file(text, **kwargs):
    import contextlib
    _listed_file.written.append(text)
    return contextlib.nullcontext('/tmp/listed')   # nosec B108 - a name only, never written


_listed_file.written = []
