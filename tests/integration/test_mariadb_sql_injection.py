"""Hostile database names against a real MariaDB, with NO_BACKSLASH_ESCAPES off (the default) and on.

The issue's payload ``app\\'; DROP DATABASE prod; -- `` dropped ``prod`` through db_restore when literals
only doubled quotes. Every literal now goes out as a hex literal and every name through one helper.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.harness.playbook import REPO, run_playbook

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.backup import MySQLEngine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.quote import (  # noqa: E402
    quote_identifier, quote_literal)

HOSTILE = ["app\\'; DROP DATABASE prod; -- x", "a'b", 'a"b', 'a`b', 'tr\\', 'x\n\ty', 'ünï ✓ 中', 'semi;colon',
           '#hash -- x', '?q%p', 'n' * 64]


@pytest.mark.parametrize('mode', ['', 'NO_BACKSLASH_ESCAPES'])
def test_hostile_names_round_trip_and_drop_nothing_else(mariadb_server, tmp_path, mode):
    server = mariadb_server
    server.sql("SET GLOBAL sql_mode = '%s'" % mode, superuser=True)
    try:
        server.sql('CREATE DATABASE IF NOT EXISTS prod')
        engine = MySQLEngine(ConnectionParams(host=server.host, port=server.port, user=server.user,
                                              password=server.password))
        assert engine.query('SELECT @@sql_mode')[0][0] == mode
        for value in HOSTILE + ["app\\'; DROP DATABASE prod; -- "]:
            assert engine.query('SELECT %s' % quote_literal(value)) == [[value]]
        for name in HOSTILE:
            engine.query('CREATE DATABASE %s' % quote_identifier(name))
            found = engine.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s'
                                 % quote_literal(name))
            assert found == [[name]]
        book = tmp_path / 'drop.yml'
        book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
            {'name': 'drop %d' % i, 'opsready.operations.db_restore': {
                'engine': 'mariadb', 'src': str(tmp_path), 'database': name, 'state': 'absent',
                'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
                'login_password': '{{ pw }}'}} for i, name in enumerate(HOSTILE + ['app'])]}]))
        result = run_playbook(str(book), extravars={'pw': server.password})
        assert result.rc == 0, result.stdout[-3000:]
        assert all(result.result('drop %d' % i)['changed'] for i in range(len(HOSTILE)))
        assert result.result('drop %d' % len(HOSTILE))['changed'] is False
        left = [r[0] for r in server.sql('SHOW DATABASES')]
        assert 'prod' in left and not set(HOSTILE) & set(left)
    finally:
        server.sql("SET GLOBAL sql_mode = DEFAULT", superuser=True)
        server.sql('DROP DATABASE IF EXISTS prod')


def test_health_db_check_reads_a_dash_name_as_a_database(mariadb_server):
    """A database value starting with "-" was a client option (--init-command runs SQL)."""
    from ansible_collections.opsready.operations.plugins.module_utils.health.checks import DbCheck
    server = mariadb_server
    spec = {'engine': 'mysql', 'host': server.host, 'port': server.port, 'user': server.user,
            'password': server.password, 'database': '--init-command=CREATE DATABASE pwned', 'timeout': 10,
            'name': 'db'}
    outcome = DbCheck().run(spec)
    assert not outcome['ok'] and 'Unknown database' in outcome['message']
    assert server.sql("SHOW DATABASES LIKE 'pwned'") == []
    server.sql('CREATE DATABASE IF NOT EXISTS `-dash`')
    try:
        assert DbCheck().run(dict(spec, database='-dash'))['ok']
    finally:
        server.sql('DROP DATABASE IF EXISTS `-dash`')
