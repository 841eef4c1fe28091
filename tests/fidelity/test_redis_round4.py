"""Fidelity, Redis, round 4: what an RDB holds besides keys, through redis_backup -> redis_restore (target=file) ->
a new redis-server loading that RDB.

- Functions libraries (FUNCTION LOAD, Redis 7.0+) travel in the RDB: the restored server lists the same libraries
  with the same code and FCALL answers as before, also from a server that holds libraries and no key at all.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.fidelity.test_redis_round3 import Resp  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402

LIBRARY = b'''#!lua name=opsready_lib
redis.register_function('bump', function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)
redis.register_function{function_name='ro_get', callback=function(keys) return redis.call('GET', keys[1]) end,
                        flags={'no-writes'}}
'''
SECOND = b"#!lua name=second\nredis.register_function('hello', function() return 'hi \\255' end)\n"


def functions(client: Resp):
    """Each library as a dict, its functions sorted (the server lists them in hash-table order)."""
    found = []
    for item in client('FUNCTION', 'LIST', 'WITHCODE'):
        library = dict(zip(item[::2], item[1::2]))
        library[b'functions'] = sorted(repr(f) for f in library[b'functions'])
        found.append(repr(sorted(library.items())))
    return sorted(found)


@pytest.fixture
def source():
    server = RedisServer().start()
    try:
        client = Resp(server)
        try:
            version = client('INFO', 'server')
        finally:
            client.close()
        if b'redis_version:6.' in version or b'redis_version:5.' in version:
            pytest.skip('Functions need Redis 7.0')
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize('with_keys', [True, False])
def test_functions_libraries_round_trip(source, tmp_path, with_keys):
    """Regression guard (passed on the old code)."""
    client = Resp(source)
    try:
        client('FUNCTION', 'LOAD', LIBRARY)
        client('FUNCTION', 'LOAD', SECOND)
        if with_keys:
            client('SET', b'counter', 40)
            client('FCALL', 'bump', 1, b'counter', 2)
        before = functions(client)
    finally:
        client.close()
    dest = tmp_path / 'backups'
    dump = tmp_path / 'restored' / 'dump.rdb'
    dump.parent.mkdir()
    result = run_playbook(write_playbook(tmp_path, [
        {'name': 'backup', 'register': 'b', 'opsready.operations.redis_backup': {
            'host': source.host, 'port': source.port, 'password': source.password, 'dest': str(dest)}},
        {'name': 'restore', 'opsready.operations.redis_restore': {
            'path': '{{ b.manifest.path }}', 'target': 'file', 'dest': str(dump)}},
    ]))
    assert result.rc == 0, result.stdout[-4000:]
    restored = RedisServer(config={'dbfilename': 'dump.rdb'})
    os.rename(str(dump), os.path.join(restored.dir, 'dump.rdb'))
    restored.start()
    try:
        client = Resp(restored)
        try:
            assert functions(client) == before
            assert client('FCALL', 'hello', 0) == b'hi \xff'
            if with_keys:
                assert client('FCALL_RO', 'ro_get', 1, b'counter') == b'42'
                assert client('FCALL', 'bump', 1, b'counter', 1) == 43
            else:
                assert client('DBSIZE') == 0
        finally:
            client.close()
    finally:
        restored.stop()
