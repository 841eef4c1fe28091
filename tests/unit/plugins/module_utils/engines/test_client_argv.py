"""One psql and one mariadb client command line, built by the engine's client; no other place spells them."""

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.backup import MySQLEngine
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import PostgresEngine

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..'))
# Nothing but the engine clients may spell these command lines (drill checks and the health db probe did).
PENDING: set = set()
CLIENTS = os.path.join('plugins', 'module_utils', 'engines')


def _files_with(needle):
    found = set()
    for base, _dirs, files in os.walk(os.path.join(ROOT, 'plugins')):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(base, name)
                with open(path) as handle:
                    if needle in handle.read():
                        found.add(os.path.relpath(path, ROOT))
    return found


@pytest.mark.skipif(not shutil.which('psql') and not os.path.isdir('/usr/lib/postgresql'), reason='no psql here')
def test_psql_argv_is_safe_and_shaped():
    engine = PostgresEngine(ConnectionParams())
    argv = engine.psql_argv('-c', 'SELECT 1', rows=True)
    assert os.path.basename(argv[0]) == 'psql'
    for option in ('-X', '-q', '-w', 'ON_ERROR_STOP=1', '--csv', '-t'):
        assert option in argv
    assert argv[-2:] == ['-c', 'SELECT 1']
    plain = engine.psql_argv('-d', 'app')
    assert '--csv' not in plain and '-t' not in plain and plain[-2:] == ['-d', 'app']


@pytest.mark.skipif(not (shutil.which('mariadb') or shutil.which('mysql')), reason='no mariadb client here')
def test_mariadb_client_argv_puts_the_option_file_first():
    engine = MySQLEngine(ConnectionParams(host='db.example', user='app', password='s3cret'))
    with engine.defaults_file() as head:
        argv = engine.client_argv(head, '-e', 'SELECT 1')
    assert argv[1].startswith('--defaults-extra-file=')
    assert argv[-4:] == ['-N', '-B', '-e', 'SELECT 1']
    assert 's3cret' not in ' '.join(argv)


def test_psql_options_are_spelled_once():
    assert _files_with('ON_ERROR_STOP=1') - PENDING == {os.path.join(CLIENTS, 'postgresql', 'client.py')}
    assert _files_with("'PGPASSWORD'") - PENDING == {os.path.join(CLIENTS, 'postgresql', 'client.py')}


def test_mariadb_query_options_are_spelled_once():
    assert _files_with("['-B']") - PENDING == {os.path.join(CLIENTS, 'mysql', 'client.py')}
    assert _files_with("'--defaults-extra-file=") - PENDING == {os.path.join(CLIENTS, 'mysql', 'client.py')}
