"""The scan before a point-in-time replay reads a statement's names as the server read them, in the client character
set the statement was sent in (mariadb-binlog prints ``/*!\\C gbk */`` before it). In gbk, big5, sjis, cp932 and
gb18030 a character's second byte may be 0x5c (a backslash read byte by byte) or 0x60 (a backtick): ``'\\xbf\\x5c'``
is a whole string in gbk, but read byte by byte its "backslash" escaped the closing quote, the string ran on to the
next quote and what stood between (a call of a routine, a foreign table, a qualifier naming another database) was
hidden from the name readers: the replay ran it. Each reader now reads the statement's characters whole where the
character set is known (``StreamMode.reading``), and every way they may be read where it is not (refuse more, never
less). Earlier: ``test_replay_name_modes.py``, ``test_replay_literal_modes.py``."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    StreamMode, calls_database_function, check_statements, named_databases, reached_objects, refuse_foreign_reach,
    server_text, write_targets)
from tests.unit.plugins.module_utils.restore.test_replay_name_modes import MARIADB_10_11, _Stream

END = b'/*!*/;\n'
# a character of each set whose second byte is a backslash
MB = {b'gbk': b'\xbf\x5c', b'big5': b'\xa5\x5c', b'sjis': b'\x95\x5c', b'cp932': b'\x95\x5c', b'gb18030': b'\xbf\x5c'}
FOREIGN = {'tables': {b'audited': 'trigger tr'}, 'routines': {b'leak': 'function leak'}, 'read': {}}


def reading_of(charset: bytes, sql_mode: int = 0):
    """``StreamMode.reading`` after the stream switched to ``charset``."""
    mode = StreamMode()
    mode.see(b'SET @@session.sql_mode=%d\n' % sql_mode)
    mode.see(b'/*!\\C ' + charset + b' */\n')
    return mode.reading()


def hiding(charset: bytes, code: bytes) -> bytes:
    """A statement whose ``code`` stands between two strings, the first ending in ``MB[charset]``: read byte by byte,
    one string from the first quote to the third."""
    return b"INSERT INTO t VALUES ('" + MB[charset] + b"', 'x', " + code + b", 'y')"


@pytest.mark.parametrize('charset', sorted(MB))
def test_a_qualifier_after_a_multibyte_character_ending_in_a_backslash_byte_is_read(charset):
    """Failed before: ``other.f()`` after '\\xbf\\x5c' was read as inside a string (named_databases found nothing)."""
    statement = hiding(charset, b'other.f()')
    assert named_databases(statement, ['other'], reading_of(charset)) == ['other']
    assert named_databases(statement, ['other']) == ['other']   # the charset not known: every reading


@pytest.mark.parametrize('charset', sorted(MB))
def test_a_routine_call_or_database_call_after_such_a_character_is_reached(charset):
    """Failed before: the call of leak() (a function whose body writes another live database) and DATABASE() were
    hidden in the misread string: the replay ran them."""
    assert reached_objects(hiding(charset, b'leak(1)'), FOREIGN, reading_of(charset)) == ['function leak']
    assert reached_objects(hiding(charset, b'leak(1)'), FOREIGN) == ['function leak']
    assert calls_database_function(hiding(charset, b'DATABASE()'), reading_of(charset))
    assert calls_database_function(hiding(charset, b'DATABASE()'))


def test_a_name_holding_such_a_character_keeps_its_bytes():
    """Guard: the names read are the statement's own bytes (the characters are read whole, not replaced)."""
    statement = b"UPDATE `t\xbf\x5c`, audited SET a = '\xbf\x5c' WHERE 1"
    assert write_targets(statement, reading_of(b'gbk')) == [b't\xbf\x5c', b'audited']


def test_server_text_finds_a_skipped_comment_after_such_a_character():
    """Failed before: a versioned comment the server skips, after '\\xbf\\x5c', was read as inside the string: its
    text (code for the mariadb client) was kept as code by server_text."""
    statement = b"INSERT INTO t VALUES ('\xbf\x5c', 'x' /*!999999 , other.f() */, 'y')"
    read = server_text(statement, MARIADB_10_11, reading_of(b'gbk'))
    assert read is not None and b'/* 999999' in read
    assert named_databases(read, ['other'], reading_of(b'gbk')) == []


def charset_stream(tmp_path, use: bytes, charset: bytes, statement: bytes):
    path = tmp_path / 'stream'
    path.write_bytes(b'DELIMITER /*!*/;\n' + (b'use `%s`/*!*/;\n' % use if use else b'') + b'SET TIMESTAMP=1' + END
                     + b'SET @@session.sql_mode=0' + END + b'/*!\\C ' + charset + b' */' + END + statement + b'\n'
                     + END)
    return _Stream(path)


def test_the_scan_refuses_a_write_to_another_database_after_such_a_character(tmp_path):
    """Failed before: sent with USE pr in gbk, the INSERT's ``mysql.user`` was read as inside a string: the replay
    would have run it against the live mysql database."""
    engine = charset_stream(tmp_path, b'pr', b'gbk', b"INSERT INTO t SELECT '\xbf\x5c', 'x', mysql.f(), 'y'")
    with pytest.raises(OpsReadyError, match='names database mysql'):
        check_statements(engine, ['mariadb-binlog'], ['f'], 'pr', server=MARIADB_10_11)


def test_the_foreign_reach_scan_refuses_a_call_after_such_a_character(tmp_path):
    """Failed before: the call of leak() was hidden: the replay ran its body again against the live database."""
    engine = charset_stream(tmp_path, b'pr', b'gbk', hiding(b'gbk', b'leak(1)'))
    with pytest.raises(OpsReadyError, match='function leak'):
        refuse_foreign_reach(engine, ['mariadb-binlog'], ['f'], 'pr', FOREIGN, MARIADB_10_11)
