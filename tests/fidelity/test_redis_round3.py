"""Fidelity, Redis, round 3: every kind of value through redis_backup -> redis_restore (target=file) -> a new
redis-server loading that RDB, compared key by key with the server's own view (DUMP, PTTL, TYPE, OBJECT ENCODING),
in several logical databases, with binary key names, and with no module loaded.

- string, list, set, zset, hash, stream (with consumer groups and pending entries), HyperLogLog, bitmap, geo;
- TTLs: a key's expiry is an absolute time in the RDB, so the restored key expires at the same moment (its PTTL
  is the source's less the time between the backup and the check), never a fresh full TTL;
- binary key names (0x00, 0xff, CR LF, a 1 KiB name) and keys in db 0, 3 and 15.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.redis import RedisServer  # noqa: E402


class Resp:
    """A minimal RESP2 client: binary-safe arguments and replies (redis-cli mangles binary key names)."""

    def __init__(self, server: RedisServer) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=30)
        self.file = self.sock.makefile('rb')
        if server.password:
            self('AUTH', server.password)

    def __call__(self, *args: Any) -> Any:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.sock.sendall(b'*%d\r\n' % len(parts) + b''.join(b'$%d\r\n%s\r\n' % (len(p), p) for p in parts))
        return self._reply()

    def _reply(self) -> Any:
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b'+':
            return rest
        if kind == b'-':
            raise RuntimeError(rest.decode())
        if kind == b':':
            return int(rest)
        if kind == b'$':
            if int(rest) < 0:
                return None
            data = self.file.read(int(rest) + 2)
            return data[:-2]
        if kind == b'*':
            return None if int(rest) < 0 else [self._reply() for _item in range(int(rest))]
        raise RuntimeError('unexpected reply %r' % line)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


DBS = (0, 3, 15)
BINARY_NAMES = [b'\x00nul', b'\xff\xfe-not-utf8', b'cr\r\nlf', b'k' * 1024, 'ключ'.encode()]


def populate(client: Resp, db: int) -> None:
    client('SELECT', db)
    p = b'db%d:' % db
    client('SET', p + b'string', b'\x00\x01binary\xff' * 10)
    client('SET', p + b'int', 12345)
    client('RPUSH', p + b'list', *[b'item%d' % i for i in range(300)])          # past listpack limits: quicklist
    client('RPUSH', p + b'small-list', b'a', b'b')
    client('SADD', p + b'set', *[b'm%d' % i for i in range(50)])
    client('SADD', p + b'intset', 1, 2, 3, 1 << 40)
    client('ZADD', p + b'zset', *sum(([i * 1.5, b'z%d' % i] for i in range(200)), []))
    client('ZADD', p + b'small-zset', '-inf', b'low', 'inf', b'high', 0.1, b'mid')
    client('HSET', p + b'hash', *sum(([b'f%d' % i, b'v%d' % i] for i in range(600)), []))
    client('HSET', p + b'small-hash', b'a', b'1')
    stream = p + b'stream'
    for i in range(30):
        client('XADD', stream, '%d-%d' % (1700000000000 + i, i % 3), b'field', b'value%d' % i)
    client('XGROUP', 'CREATE', stream, b'workers', '0')
    client('XGROUP', 'CREATE', stream, b'late', '$')
    client('XREADGROUP', 'GROUP', b'workers', b'alice', 'COUNT', 5, 'STREAMS', stream, '>')   # 5 pending
    client('XREADGROUP', 'GROUP', b'workers', b'bob', 'COUNT', 3, 'STREAMS', stream, '>')
    client('XACK', stream, b'workers', '1700000000000-0')
    client('XDEL', stream, '1700000000029-2')
    client('PFADD', p + b'hll', *[b'visitor%d' % i for i in range(1000)])
    client('SETBIT', p + b'bitmap', 100000, 1)
    client('SETBIT', p + b'bitmap', 7, 1)
    client('GEOADD', p + b'geo', 13.361389, 38.115556, b'Palermo', 15.087269, 37.502669, b'Catania')
    for name in BINARY_NAMES:
        client('SET', p + name, name)
    client('SET', p + b'ttl-ms', b'x', 'PX', 3_600_000)
    client('SET', p + b'ttl-abs', b'x', 'PXAT', int(time.time() * 1000) + 86_400_000)
    client('HSET', p + b'hash-ttl', b'a', b'1')
    client('PEXPIRE', p + b'hash-ttl', 7_200_000)


def snapshot(client: Resp) -> Tuple[Dict[Tuple[int, bytes], Tuple[Any, ...]], Dict[Tuple[int, bytes], int]]:
    """(key -> (type, encoding, DUMP payload less its version/CRC trailer - the sorted members of a set or hash -,
    stream groups), key -> absolute expiry in ms or -1) of every key in every database."""
    values: Dict[Tuple[int, bytes], Tuple[Any, ...]] = {}
    expiry: Dict[Tuple[int, bytes], int] = {}
    for db in range(16):
        client('SELECT', db)
        cursor = b'0'
        keys: List[bytes] = []
        while True:
            cursor, batch = client('SCAN', cursor, 'COUNT', 1000)
            keys += batch
            if cursor == b'0':
                break
        for key in keys:
            kind = client('TYPE', key)
            groups = None
            if kind == b'stream':
                groups = [sorted(map(tuple, _pairs(g))) for g in client('XINFO', 'GROUPS', key)]
                groups.append(client('XPENDING', key, b'workers', '-', '+', 100) or [])
                groups = [_strip_idle(g) for g in groups]
            if kind in (b'set', b'hash'):
                # a hash table's DUMP lists its members in table order, which a reload reshuffles: the members
                body = sorted(client('SMEMBERS', key)) if kind == b'set' else sorted(_pairs(client('HGETALL', key)))
            else:
                body = client('DUMP', key)[:-10]
            values[(db, key)] = (kind, client('OBJECT', 'ENCODING', key), body, groups)
            expiry[(db, key)] = client('PEXPIRETIME', key)
    return values, expiry


def _pairs(flat: List[Any]) -> List[Tuple[Any, Any]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def _strip_idle(item: Any) -> Any:
    """Idle times and delivery times move with the clock: the rest is compared."""
    if isinstance(item, list) and item and isinstance(item[0], tuple):
        return [pair for pair in item if pair[0] not in (b'lag', b'entries-read')]
    if isinstance(item, list):
        return [[entry[0], entry[1], entry[3]] if isinstance(entry, list) and len(entry) == 4 else entry
                for entry in item]
    return item


@pytest.fixture
def source():
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_every_value_kind_ttl_binary_names_and_databases_round_trip(source, tmp_path):
    client = Resp(source)
    try:
        if client('MODULE', 'LIST'):
            pytest.skip('modules are loaded in this redis-server')
        for db in DBS:
            populate(client, db)
        before, before_expiry = snapshot(client)
    finally:
        client.close()
    assert len(before) == len(DBS) * (17 + len(BINARY_NAMES)), len(before)
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
    assert result.result('backup')['manifest']['details']['keys'] == len(before), result.result('backup')
    restored = RedisServer(config={'dbfilename': 'dump.rdb'})
    os.rename(str(dump), os.path.join(restored.dir, 'dump.rdb'))
    restored.start()
    try:
        client = Resp(restored)
        try:
            after, after_expiry = snapshot(client)
        finally:
            client.close()
    finally:
        restored.stop()
    assert set(after) == set(before), sorted(set(before) ^ set(after))[:10]
    differ = [key for key in before if before[key] != after[key]]
    assert not differ, [(k, before[k], after[k]) for k in differ[:3]]
    # absolute expiry times: the same moment (to the millisecond), not a TTL started again at the restore
    assert after_expiry == before_expiry
    assert all(before_expiry[(db, b'db%d:ttl-abs' % db)] > 0 for db in DBS)
