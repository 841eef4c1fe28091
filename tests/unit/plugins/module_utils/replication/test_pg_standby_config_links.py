"""Fencing and rejoin rewrite postgresql.auto.conf in a data directory the server's account owns (as root). A
link that account put there must be refused, never read (its target's content would be written back as a file the
account owns: /etc/shadow, a root key) and never written through."""

from __future__ import annotations

import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.promote import PgNode
from ansible_collections.opsready.operations.plugins.module_utils.files.safeio import UnsafeFileError
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import NodeSpec


def node(data_dir):
    return PgNode(NodeSpec(name='n1', conn=ConnectionParams(host='127.0.0.1'), data_dir=str(data_dir)), ToolRunner())


def test_a_linked_auto_conf_is_neither_read_nor_written_through(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'PG_VERSION').write_text('15\n')
    secret = tmp_path / 'secret'
    secret.write_text('root:$6$hash\n')
    os.symlink(str(secret), str(data / 'postgresql.auto.conf'))
    with pytest.raises(UnsafeFileError, match='symlink'):
        node(data).write_standby_config("host=10.0.0.1 user=rep", read_only=True)
    assert secret.read_text() == 'root:$6$hash\n'
    assert os.path.islink(data / 'postgresql.auto.conf') and not (data / 'standby.signal').exists()


def test_a_regular_or_missing_auto_conf_is_rewritten(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'PG_VERSION').write_text('15\n')
    node(data).write_standby_config("host=10.0.0.1 user=rep")
    text = (data / 'postgresql.auto.conf').read_text()
    assert "primary_conninfo = 'host=10.0.0.1 user=rep'" in text and (data / 'standby.signal').exists()
    (data / 'postgresql.auto.conf').write_text("work_mem = '8MB'\nprimary_conninfo = 'old'\n")
    node(data).write_standby_config("host=10.0.0.2 user=rep", read_only=True)
    text = (data / 'postgresql.auto.conf').read_text()
    assert "work_mem = '8MB'" in text and 'old' not in text and "default_transaction_read_only = 'on'" in text
