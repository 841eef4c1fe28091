"""db_endpoint's rewriting: only host/port of the named entries change, every other byte stays."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.replication.endpoint import (
    check_target, pgbouncer_pidfile, rewrite_haproxy, rewrite_pgbouncer)

PGB = ('; comment = host=keep\n[databases]\n'
       'app = host=10.0.0.1 port=5432 dbname=app pool_size=5\r\n'
       '"other" = host=10.0.0.1 dbname=o\n'
       '# app = host=commented\n'
       'report = dbname=r\n'
       '[pgbouncer]\npidfile = /run/pgb.pid\nlisten_port = 6432\n')


def test_pgbouncer_only_named_entries_change():
    text, changes = rewrite_pgbouncer(PGB, ['app', 'report'], '10.0.0.2', 5433)
    assert text == PGB.replace('host=10.0.0.1 port=5432 dbname=app', 'host=10.0.0.2 port=5433 dbname=app') \
        .replace('report = dbname=r', 'report = dbname=r host=10.0.0.2 port=5433')
    assert [c['entry'] for c in changes] == ['app', 'report']
    again, none = rewrite_pgbouncer(text, ['app', 'report'], '10.0.0.2', 5433)
    assert again == text and none == []
    assert pgbouncer_pidfile(PGB) == '/run/pgb.pid'
    with pytest.raises(OpsReadyError, match="no entry 'x'"):
        rewrite_pgbouncer(PGB, ['x'], 'h', 1)


HAP = ('global\n  daemon\nbackend pg_primary\n  option pgsql-check user haproxy\n'
       '  server primary 10.0.0.1:5432 check inter 1s\n  server spare 10.0.0.3:5432 check backup\n'
       'backend other\n  server primary 10.0.0.9:5432\n')


def test_haproxy_server_of_one_backend():
    text, changes = rewrite_haproxy(HAP, 'pg_primary', ['primary'], '10.0.0.2', 5433)
    assert text == HAP.replace('server primary 10.0.0.1:5432', 'server primary 10.0.0.2:5433')
    assert len(changes) == 1
    six, _changes = rewrite_haproxy(HAP, 'pg_primary', ['primary'], 'fd00::2', 5432)
    assert 'server primary [fd00::2]:5432 check' in six
    with pytest.raises(OpsReadyError, match='no server'):
        rewrite_haproxy(HAP, 'pg_primary', ['nope'], 'h', 1)


@pytest.mark.parametrize('host', ['a b', "h'", 'h\n', 'h;x', '', 'h=1'])
def test_hostile_hosts_refused(host):
    with pytest.raises(OpsReadyError):
        check_target(host, 5432)
