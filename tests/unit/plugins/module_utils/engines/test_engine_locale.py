"""Engine errors are classified from the tools' English messages: a translated host must not change them.

Runs the real psql (libpq ships a German catalogue on Debian) against a closed port, with the host's
environment asking for German messages; the classification must still be "cannot connect"."""

from __future__ import annotations

import glob
import socket

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import PostgresEngine

pytestmark = pytest.mark.skipif(not glob.glob('/usr/share/locale/de/LC_MESSAGES/libpq5-*.mo'),
                                reason="libpq's German catalogue is not installed (it comes with libpq5)")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_a_refused_connection_is_classified_on_a_german_host(monkeypatch):
    monkeypatch.setenv('LANG', 'de_DE.UTF-8')
    monkeypatch.setenv('LC_ALL', 'C.UTF-8')  # a locale every Debian has, so gettext's LANGUAGE applies
    monkeypatch.setenv('LANGUAGE', 'de')
    engine = PostgresEngine(ConnectionParams(host='127.0.0.1', port=closed_port(), user='u', connect_timeout=2),
                            ToolRunner())
    with pytest.raises(OpsReadyError) as info:
        engine.query('SELECT 1')
    assert 'Cannot connect to PostgreSQL' in info.value.message
    assert 'Connection refused' in info.value.message
