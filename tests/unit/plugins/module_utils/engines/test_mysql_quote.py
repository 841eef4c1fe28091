"""MariaDB quoting helper, the GTID stripper of binlog replays and the view creation order."""

from __future__ import annotations

import time

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.quote import (
    check_identifier, quote_identifier, quote_literal, unescape_batch)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    GtidStripper, charset_clause, check_rewritable, definer_clause, dependency_order)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    quote_literal as pg_literal)

HOSTILE = ["app\\'; DROP DATABASE prod; -- ", "a'b", 'a"b', 'a`b', 'a\\', "x\n\ty", 'ünï ✓', 'semi;colon', '#hash',
           '?q%p', 'x' * 64]


@pytest.mark.parametrize('value', HOSTILE + ['', 'a\x00b', '😀'])
def test_literal_is_hex_only(value):
    lit = quote_literal(value)
    assert lit.startswith("_utf8mb4 X'") and lit.endswith("'")
    body = lit[len("_utf8mb4 X'"):-1]
    assert all(c in '0123456789ABCDEF' for c in body)
    assert bytes.fromhex(body).decode('utf-8') == value


@pytest.mark.parametrize('name', [h.rstrip(' ') for h in HOSTILE])
def test_identifier_doubles_backticks(name):
    quoted = quote_identifier(name)
    assert quoted[0] == quoted[-1] == '`'
    assert quoted[1:-1].replace('``', '').count('`') == 0
    assert quoted[1:-1].replace('``', '`') == name


@pytest.mark.parametrize('name, why', [('', 'non-empty'), ('a\x00', 'NUL'), ('x' * 65, '65 characters'),
                                       ('trailing ', 'ends with a space'), ('emoji😀', 'Basic Multilingual')])
def test_identifier_refuses_what_the_server_cannot_hold(name, why):
    with pytest.raises(OpsReadyError, match=why):
        check_identifier(name)


def test_batch_unescape():
    assert unescape_batch('a\\tb\\nc\\\\d\\0') == 'a\tb\nc\\d\x00'


def test_postgresql_literal_is_safe_in_both_modes():
    assert pg_literal("it's") == "E'it''s'"
    assert pg_literal("a\\'; DROP") == "E'a\\\\''; DROP'"


def test_rewrite_db_refuses_names_it_cannot_express():
    for bad in ('a->b', ' lead', 'nl\nx'):
        with pytest.raises(OpsReadyError, match='rewrite-db'):
            check_rewritable(bad, 'source database name')
    check_rewritable("ok'\\`; ñ", 'x')


def test_manifest_charset_is_checked():
    assert charset_clause({'character_set': 'latin1', 'collation': 'latin1_swedish_ci'}) == \
        ' CHARACTER SET latin1 COLLATE latin1_swedish_ci'
    assert charset_clause(None) == ''
    with pytest.raises(OpsReadyError, match='damaged'):
        charset_clause({'character_set': 'latin1; DROP DATABASE x', 'collation': 'x'})


def test_definer_clause():
    assert definer_clause('fid`x@local@host') == 'DEFINER = `fid``x@local`@`host`'


STREAM = [
    b'# at 330\n',
    b'#261204 13:51:10 server id 1  end_log_pos 372 CRC32 0xc2c93ee4 \tGTID 0-1-1 ddl\n',
    b'/*M!100101 SET @@session.skip_parallel_replication=0*//*!*/;\n',
    b'/*M!100001 SET @@session.gtid_domain_id=0*//*!*/;\n',
    b'/*M!100001 SET @@session.server_id=1*//*!*/;\n',
    b'/*M!100001 SET @@session.gtid_seq_no=1*//*!*/;\n',
    b'# at 372\n',
    b"INSERT INTO t VALUES ('\n",
    b'/*M!100001 SET @@session.gtid_seq_no=9*//*!*/;\n',  # inside a literal: not after a GTID header
    b"')\n",
    b'# at 500\n',
    b'#261204 13:51:11 server id 7  end_log_pos 560 CRC32 0x1 \tGTID 3-7-44 trans\n',
    b'/*!100001 SET @@session.gtid_seq_no=44*//*!*/;\n',
    b'START TRANSACTION\n',
    b"BINLOG '\n" + (b'A' * 76 + b'\n') * 200 + b"'/*!*/;\n",
]
EXPECTED = b''.join(STREAM[:3] + STREAM[6:12] + STREAM[13:])


@pytest.mark.parametrize('size', [1, 7, 64, 333, 4096, 1 << 20])
def test_gtid_stripper_removes_only_the_gtid_assignments(size):
    data = b''.join(STREAM) * 3
    stripper = GtidStripper()
    out = b''.join(stripper.feed(data[i:i + size]) for i in range(0, len(data), size)) + stripper.flush()
    assert out == EXPECTED * 3
    assert stripper.removed == 12


def test_gtid_stripper_carry_stays_small():
    stripper = GtidStripper()
    for dummy in range(50):
        stripper.feed(b'# at 1\n' + b'x' * 100000 + b'\n')
    assert len(stripper.carry) < 10


@pytest.mark.parametrize('size', [1000, 1 << 20])
def test_gtid_stripper_big_statement_line(size):
    """A statement on one long line (a big literal, MIXED/STATEMENT logging) between GTID groups: the groups
    around it are still stripped, the line passes unchanged, in linear time."""
    big = b"INSERT INTO t VALUES ('" + b'\n# at 1'.replace(b'\n', b' ') * 10 + b'a' * (3 << 20) + b"')\n"
    data = b''.join(STREAM) + big + b''.join(STREAM)
    stripper = GtidStripper()
    out = b''.join(stripper.feed(data[i:i + size]) for i in range(0, len(data), size)) + stripper.flush()
    assert out == EXPECTED + big + EXPECTED and stripper.removed == 8


def test_gtid_stripper_linear_on_a_long_line():
    line = b"INSERT INTO t VALUES ('" + b'a' * (64 << 20) + b"')\n"
    stripper = GtidStripper()
    started = time.monotonic()
    total = sum(len(stripper.feed(line[i:i + (1 << 20)])) for i in range(0, len(line), 1 << 20))
    assert total + len(stripper.flush()) == len(line)
    assert time.monotonic() - started < 5.0  # about 1 s; before: 11 s (every chunk copied and searched the whole line)


def test_views_come_after_the_views_they_read():
    defs = {'a': 'select `db`.`z`.`id` from `db`.`z`', 'z': 'select `db`.`t`.`id` from `db`.`t`',
            'm': 'select `db`.`a`.`id` from `db`.`a`'}
    assert dependency_order(defs, 'db') == ['z', 'a', 'm']
    assert sorted(dependency_order({'x': '`db`.`y`', 'y': '`db`.`x`'}, 'db')) == ['x', 'y']  # cycle: kept
