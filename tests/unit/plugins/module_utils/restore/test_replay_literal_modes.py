"""The replay's statement-end check (a statement end of the ``mariadb-binlog`` stream inside a string, a quoted name or
a comment refuses the replay) holds on every path that decides on a statement: a statement longer than the
rewriter's 64 KiB window (passed on, or dropped as an account statement, as it comes), and under the ``sql_mode`` the
stream gives each statement (NO_BACKSLASH_ESCAPES, ANSI_QUOTES: the mariadb client then reads a backslash in a string
as itself, and the old check, reading it as an escape, saw a string closed where the client saw it open)."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    STATEMENT_CARRY, ReplayEventRewriter, splits_a_literal)

END = b'/*!*/;\n'
BIG = 3 * STATEMENT_CARRY
NO_BACKSLASH_ESCAPES, ANSI_QUOTES = 1 << 20, 1 << 2
HEADER = b'# at 4\n#261206  0:10:00 server id 1  end_log_pos 9 \tQuery\tthread_id=5\n'


def stream(*statements: bytes, sql_mode: int = 0) -> bytes:
    mode = HEADER + b'SET TIMESTAMP=1/*!*/;\nSET @@session.sql_mode=%d' % sql_mode + END
    return mode + b''.join(HEADER + s + b'\n' + END for s in statements)


def replayed(data: bytes, size: int) -> bytes:
    rewriter = ReplayEventRewriter({})
    return b''.join(rewriter.feed(data[i:i + size]) for i in range(0, len(data), size)) + rewriter.flush()


SIZES = (4096, 65536, 65537, 100003)

# each long statement holds, in a string, the stream's statement end, then an account statement and a line comment:
# cut there, the piece after the end (GRANT ...; -- ') was made DO 0, its closing quote with it, and the mariadb
# client read on in the string up to a later quote and ran what followed it
LONG_SPLIT = {
    'a long INSERT (passed on as it comes)':
        b"INSERT INTO t VALUES ('" + b'x' * BIG + END + b"GRANT ALL ON *.* TO w; -- ')",
    'a long INSERT, the end after 64 KiB of code':
        b'INSERT INTO t VALUES ' + b'(1),' * (BIG // 4) + b"('" + END + b"GRANT ALL ON *.* TO w; -- ')",
    'a long account statement (dropped as it comes)':
        b"CREATE USER u IDENTIFIED BY 'p' /* " + b'c' * BIG + b" */ COMMENT '" + END + b"DROP TABLE t; -- '",
    'a long statement, the end in a comment':
        b"INSERT INTO t VALUES (1) /* " + b'c' * BIG + END + b"GRANT ALL ON *.* TO w; -- */",
    'a long statement, the end in a quoted name':
        b"INSERT INTO t (`" + b'c' * BIG + END + b"GRANT ALL ON *.* TO w; -- `) VALUES (1)",
}


@pytest.mark.parametrize('name', sorted(LONG_SPLIT))
def test_a_long_statement_holding_a_statement_end_in_a_string_is_refused(name):
    """Failed before: a statement longer than 64 KiB was passed on (or dropped) up to the first statement end found,
    unchecked: the rest of it was replayed as statements of their own."""
    data = stream(b'SELECT 1', LONG_SPLIT[name], b"INSERT INTO t VALUES ('a')")
    for size in SIZES + (len(data),):
        with pytest.raises(OpsReadyError, match='inside a string'):
            replayed(data, size)


LONG_FINE = [
    b"INSERT INTO t VALUES ('" + b'it\\\'s ' * (BIG // 6) + b"', \"a\\\"b\", `c``d`) -- it's\n",
    b"INSERT INTO t VALUES ('" + b'x' * BIG + b"\\\\') /* a */ # it's",
    b"CREATE USER u IDENTIFIED BY 'p' /* " + b'*' * BIG + b" */ COMMENT 'a\\'b'",
    b'SELECT 1 /*!100000 ' + b' ' * BIG + b'*/ -' + b'-' * 5 + b' /',
]


@pytest.mark.parametrize('n', range(len(LONG_FINE)))
def test_a_long_statement_whose_strings_close_is_replayed(n):
    """Guard (passed on the old code): long statements whose strings, names and comments all close pass on
    unchanged (an account statement: DO 0), whatever the chunking (an escape, a comment's opener or closer cut
    between two chunks)."""
    data = stream(LONG_FINE[n], b'SELECT 2')
    out = {replayed(data, size) for size in (4096, 65537, 7919, len(data))}
    assert len(out) == 1
    if b'CREATE USER' in LONG_FINE[n]:
        assert b'CREATE USER' not in out.pop()
    else:
        assert out.pop() == data


# under NO_BACKSLASH_ESCAPES the server (and the mariadb client) read 'a\' as a whole string: the second string then
# holds the statement end; read with escapes, the first string ran on to it, and the GRANT after it was made DO 0
MODE_SPLIT = b"CREATE VIEW v1 AS SELECT 'a\\' AS x, '" + END + b"GRANT SELECT ON t TO w; -- ' AS y"
ANSI_SPLIT = b'CREATE VIEW v1 AS SELECT "a\\", \'"\', \'' + END + b"GRANT SELECT ON t TO w; -- ' AS y"


@pytest.mark.parametrize('statement,mode', [(MODE_SPLIT, NO_BACKSLASH_ESCAPES), (MODE_SPLIT, 1411383296 | (1 << 20)),
                                            (ANSI_SPLIT, ANSI_QUOTES)])
def test_a_statement_end_inside_a_string_under_the_statements_sql_mode_is_refused(statement, mode):
    """Failed before: the check read a backslash in a string as an escape whatever the statement's sql_mode."""
    data = stream(b'SELECT 1', statement, b"CREATE VIEW v2 AS SELECT ' AS s; GRANT ALL ON *.* TO w; -- ' AS s",
                  sql_mode=mode)
    for size in (7, 4096, len(data)):
        with pytest.raises(OpsReadyError, match='inside a string'):
            replayed(data, size)


def test_a_backslash_escape_is_read_as_one_under_the_default_sql_mode():
    """Guard (passed on the old code): with backslash escapes (the default), 'it\\'s' is one string."""
    data = stream(b"INSERT INTO t VALUES ('it\\'s', \"a\\\"b\")", b'GRANT SELECT ON t TO w', sql_mode=1411383296)
    assert replayed(data, 4096) == data.replace(b'GRANT SELECT ON t TO w\n', b'DO 0\n')


@pytest.mark.parametrize('piece,escapes,ansi,split', [
    (b"SELECT 'a\\'", True, False, True), (b"SELECT 'a\\'", False, False, False),
    (b"SELECT 'a\\' AS x, '", False, False, True), (b"SELECT 'it\\'s'", False, False, True),
    (b'SELECT "a\\"', True, True, False), (b'SELECT "a\\"', True, False, True),
    (b"SELECT 'a''b'", False, False, False), (b'SELECT "a""b"', False, True, False)])
def test_splits_a_literal_reads_as_the_sql_mode_says(piece, escapes, ansi, split):
    assert splits_a_literal(piece, escapes=escapes, ansi_quotes=ansi) == split


def charset_stream(charset: bytes, *statements: bytes) -> bytes:
    return (HEADER + b'SET TIMESTAMP=1' + END + b'/*!\\C ' + charset + b' */' + END
            + b''.join(HEADER + s + b'\n' + END for s in statements))


# in gbk, big5, sjis, cp932 and gb18030 a character's second byte may be a backslash (0xbf 0x5c is one gbk character):
# the mariadb client, switched to the charset by the stream (/*!\C gbk */), reads 'X\' as a whole string; read byte
# by byte, the backslash escaped the quote and the second string (holding the statement end) looked closed
MB_SPLIT = {b'gbk': b'\xbf\x5c', b'big5': b'\xa5\x5c', b'sjis': b'\x95\x5c', b'cp932': b'\x95\x5c',
            b'gb18030': b'\xbf\x5c'}


@pytest.mark.parametrize('charset', sorted(MB_SPLIT))
def test_a_statement_end_inside_a_string_in_a_multibyte_charset_is_refused(charset):
    """Failed before: the check read a multibyte character's second byte 0x5c as a backslash escaping the quote."""
    split = (b"CREATE VIEW v1 AS SELECT '" + MB_SPLIT[charset] + b"' AS x, '" + END
             + b"GRANT SELECT ON t TO w; -- ' AS y")
    data = charset_stream(charset, b'SELECT 1', split, b"CREATE VIEW v2 AS SELECT ' AS s; GRANT ALL ON *.* TO w; -- '")
    for size in (7, 4096, len(data)):
        with pytest.raises(OpsReadyError, match='inside a string'):
            replayed(data, size)


@pytest.mark.parametrize('charset', sorted(MB_SPLIT))
def test_a_multibyte_character_ending_in_0x5c_is_read_as_the_client_reads_it(charset):
    """Guard: 'X' where X's second byte is 0x5c is a closed string in its charset (and an account statement after it is
    still DO 0); in utf8mb4 no second byte is ASCII."""
    data = charset_stream(charset, b"INSERT INTO t VALUES ('" + MB_SPLIT[charset] + b"')", b'GRANT SELECT ON t TO w')
    assert replayed(data, 4096) == data.replace(b'GRANT SELECT ON t TO w\n', b'DO 0\n')
    with pytest.raises(OpsReadyError, match='inside a string'):
        replayed(charset_stream(b'utf8mb4', b"INSERT INTO t VALUES ('\xc3\x5c')", b'SELECT 1'), 4096)


@pytest.mark.parametrize('charset', sorted(MB_SPLIT))
def test_a_long_statement_in_a_multibyte_charset_holding_such_a_character_is_refused(charset):
    """A statement longer than 64 KiB is read as it comes, byte by byte: one holding a character whose second byte
    is a backslash or a backtick is refused (what to do is said); one without is replayed."""
    long = b"INSERT INTO t VALUES ('" + b'x' * BIG + MB_SPLIT[charset] + b"')"
    with pytest.raises(OpsReadyError, match='stop_at'):
        replayed(charset_stream(charset, long, b'SELECT 1'), 4096)
    fine = charset_stream(charset, b"INSERT INTO t VALUES ('" + b'\xbf\xa1' * BIG + b"')", b'SELECT 1')
    assert replayed(fine, 4096) == fine
