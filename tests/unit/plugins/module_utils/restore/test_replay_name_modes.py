"""The scan before a point-in-time replay reads the names a statement writes as the server ran it, under the
statement's ``sql_mode`` (mariadb-binlog prints ``SET @@session.sql_mode=N`` before the statements it applies to):
with ANSI_QUOTES ``"src"."t"`` is a qualified name (not two strings), with NO_BACKSLASH_ESCAPES ``'a\\'`` is a whole
string (a backslash is itself), so what follows it is code. Read with the default mode, ``UPDATE "src"."t"`` sent
without USE src was not seen to name the source (the replay skipped it: the copy silently missed it), and ``INSERT
INTO "other"."t"`` sent with USE src was not seen to name another database (the replay ran it against that live
database). Where the mode is not known (a stored body), a statement is read every way it may be read: the scan
refuses more, never less."""

from __future__ import annotations

import subprocess  # nosec B404

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    ReplayEventRewriter, check_statements, named_databases, names_database, privilege_change, reached_objects,
    refuse_foreign_reach, server_text, write_targets)

END = b'/*!*/;\n'
NO_BACKSLASH_ESCAPES, ANSI_QUOTES = 1 << 20, 1 << 2
MARIADB_10_11 = (101106, True)
ANSI, NBE, DEFAULT = (True, True), (False, False), (True, False)   # (backslash escapes, ANSI_QUOTES)


class _Stream:
    """An engine whose mariadb-binlog prints ``path`` (a real process: ``cat``): databases pr and mysql."""

    def __init__(self, path):
        self.path, self.flavor = path, 'mariadb'
        self.runner = self

    @staticmethod
    def ping():
        return {'server_version': '10.11.6-MariaDB-log'}

    @staticmethod
    def query(_sql):
        return [('pr',), ('mysql',)]

    def popen(self, _argv, env=None):
        return subprocess.Popen(['cat', str(self.path)], stdout=subprocess.PIPE, env=env)

    @staticmethod
    def finish(proc, _argv, what=None):
        proc.wait()
        return ''


def stream(tmp_path, use: bytes, statement: bytes, sql_mode: int):
    path = tmp_path / 'stream'
    path.write_bytes(b'DELIMITER /*!*/;\n' + (b'use `%s`/*!*/;\n' % use if use else b'') + b'SET TIMESTAMP=1/*!*/;\n'
                     + b'SET @@session.sql_mode=%d' % sql_mode + END + statement + b'\n' + END)
    return _Stream(path)


# sent without USE pr (the replay skips it: the copy would miss it), each naming pr as the server read it
SOURCE_NAMED = [
    (b'UPDATE "pr"."t" SET id = 2', ANSI_QUOTES),
    (b'UPDATE "pr".t SET id = 2', ANSI_QUOTES),
    (b'INSERT INTO "pr".`t` VALUES (1)', ANSI_QUOTES | NO_BACKSLASH_ESCAPES),
    (b'DROP TABLE IF EXISTS "pr"."gone"', ANSI_QUOTES),
    (b'CREATE DATABASE IF NOT EXISTS "pr"', ANSI_QUOTES),
    (b"UPDATE mysql.x SET a = 'a\\', b = (SELECT MAX(id) FROM pr.t), c = 'z'", NO_BACKSLASH_ESCAPES),
    (b'UPDATE mysql.x SET a = "a\\", b = (SELECT MAX(id) FROM pr.t), c = "z"', NO_BACKSLASH_ESCAPES),
    (b'UPDATE "mysql"."x\\" SET a = (SELECT MAX(id) FROM pr.t) WHERE "b" = "c"', ANSI_QUOTES),
]


@pytest.mark.parametrize('statement, sql_mode', SOURCE_NAMED)
def test_a_statement_naming_the_source_under_its_sql_mode_is_refused(tmp_path, statement, sql_mode):
    """Failed before: read with the default sql_mode ("pr" a string; 'a\\' escaping its quote, hiding what follows)
    the statement named no database; sent without USE pr, the replay skipped it and the copy silently missed it."""
    with pytest.raises(OpsReadyError, match='names database pr explicitly') as refused:
        check_statements(stream(tmp_path, b'mysql', statement, sql_mode), ['mariadb-binlog'], [], 'pr')
    assert 'Nothing was restored' in str(refused.value) and 'stop_at' in str(refused.value)


# sent with USE pr (the replay runs it, in the copy), each writing or reading another live database
OTHER_NAMED = [
    (b'INSERT INTO "mysql"."t" VALUES (1)', ANSI_QUOTES),
    (b'INSERT INTO "mysql".t VALUES (1)', ANSI_QUOTES),
    (b'UPDATE t SET a = "mysql".x.y', ANSI_QUOTES),
    (b"INSERT INTO t VALUES ('a\\'), ((SELECT COUNT(*) FROM mysql.user)), ('b')", NO_BACKSLASH_ESCAPES),
    (b'DROP DATABASE "mysql"', ANSI_QUOTES),
]


@pytest.mark.parametrize('statement, sql_mode', OTHER_NAMED)
def test_a_statement_run_with_use_naming_another_database_under_its_sql_mode_is_refused(
        tmp_path, statement, sql_mode):
    """Failed before: the replay would have run it as written against the live database mysql."""
    with pytest.raises(OpsReadyError, match='names database mysql') as refused:
        check_statements(stream(tmp_path, b'pr', statement, sql_mode), ['mariadb-binlog'], [], 'pr')
    assert 'changed the live mysql' in str(refused.value)


@pytest.mark.parametrize('statement, sql_mode', [
    (b'INSERT INTO t VALUES ("mysql.t", \'pr.t\')', 0),
    (b'INSERT INTO t VALUES ("mysql"), (\'x\')', 0),
    (b"INSERT INTO t VALUES ('\"mysql\".x', '\"pr\".t')", ANSI_QUOTES),
    (b'INSERT INTO t VALUES ("mysql.t")', ANSI_QUOTES),   # one quoted name: a column mysql.t
    (b"INSERT INTO t VALUES ('a\\' mysql.x ')", 0),
    (b"INSERT INTO t VALUES ('a\\\\', 'mysql.x')", NO_BACKSLASH_ESCAPES),
    (b'DELETE FROM "p""r"."t"', ANSI_QUOTES),
])
def test_a_name_in_a_string_under_its_sql_mode_is_not_refused(tmp_path, statement, sql_mode):
    """Guard: a name inside a string, as the statement's sql_mode reads strings, names nothing (with USE pr, run in
    the copy: replayed)."""
    assert check_statements(stream(tmp_path, b'pr', statement, sql_mode), ['mariadb-binlog'], [], 'pr') == []


@pytest.mark.parametrize('statement, mode, expected', [
    (b'UPDATE "src"."t" SET a = 1', ANSI, ['src']),
    (b'UPDATE "src".t SET a = 1', ANSI, ['src']),
    (b'UPDATE "src".t SET a = 1', DEFAULT, []),     # not valid SQL so: never logged
    (b'UPDATE "src".t SET a = 1', None, ['src']),   # the mode not known: read every way
    (b'ALTER DATABASE "src" COMMENT \'x\'', ANSI, ['src']),
    (b'ALTER DATABASE "s""rc" COMMENT \'x\'', ANSI, ['s"rc']),
    (b"SELECT 'a\\', src.t, 'b'", NBE, ['src']),
    (b"SELECT 'a\\', src.t, 'b'", DEFAULT, []),
    (b"SELECT 'a\\', src.t, 'b'", None, ['src']),
    (b'SELECT "a\\", src.t, "b"', ANSI, ['src']),
    (b'SELECT "src.t"', ANSI, []),
    (b'SELECT "src.t"', None, []),
])
def test_named_databases_reads_as_the_mode_says(statement, mode, expected):
    """Failed before: named_databases read every statement with the default sql_mode."""
    assert named_databases(statement, ['src', 's"rc'], mode) == expected


def test_a_stored_body_naming_the_source_in_ansi_quotes_is_found():
    """Failed before: a body (its sql_mode not read) naming "src"."t" was not found (``bodies_naming``,
    ``foreign_objects``): read every way it may be."""
    assert names_database(b'BEGIN INSERT INTO "src"."log" VALUES (1); END', 'src')


FOREIGN = {'tables': {b'orders': 'trigger tr'}, 'routines': {b'logit': 'function logIt'}, 'read': {}}


@pytest.mark.parametrize('statement, mode, expected', [
    (b'INSERT INTO "orders" VALUES (1)', ANSI, ['trigger tr']),
    (b'INSERT INTO "src"."orders" VALUES (1)', ANSI, ['trigger tr']),
    (b"UPDATE t SET a = '\\', b = logit(), c = 'x'", NBE, ['function logIt']),
    (b"UPDATE t SET a = '\\', b = logit(), c = 'x'", None, ['function logIt']),
    (b'UPDATE t SET a = "\\", b = logit(), c = "x"', ANSI, ['function logIt']),
    (b"INSERT INTO t VALUES ('\\\\'), ('orders'), ('logit()')", NBE, []),
    (b"UPDATE t SET a = 'it\\'s logit()'", DEFAULT, []),
])
def test_reached_objects_reads_as_the_mode_says(statement, mode, expected):
    """Failed before: under NO_BACKSLASH_ESCAPES the call after 'x\\' was read inside a string, so the function
    (whose body writes another database) was not seen to run."""
    assert reached_objects(statement, FOREIGN, mode) == expected


@pytest.mark.parametrize('statement, mode, expected', [
    (b'INSERT INTO "src"."orders" VALUES (1)', ANSI, [b'src', b'orders']),
    (b'UPDATE "a""b", c SET x = 1', ANSI, [b'a"b', b'c']),
    (b"UPDATE t, u SET a = 'x\\'", NBE, [b't', b'u']),
])
def test_write_targets_reads_as_the_mode_says(statement, mode, expected):
    assert write_targets(statement, mode) == expected


def test_the_foreign_reach_scan_follows_the_streams_sql_mode(tmp_path):
    """Failed before: sent with USE pr under NO_BACKSLASH_ESCAPES, a call of a function whose body writes another
    database was read inside a string; the replay would have run it again against that live database."""
    statement = b"UPDATE t SET a = '\\', b = logit(), c = 'x'"
    engine = stream(tmp_path, b'pr', statement, NO_BACKSLASH_ESCAPES)
    with pytest.raises(OpsReadyError, match='function logIt'):
        refuse_foreign_reach(engine, ['mariadb-binlog'], [], 'pr', FOREIGN, MARIADB_10_11)


@pytest.mark.parametrize('statement, mode', [
    (b"SELECT 'a\\' /*!999999 , 'x */ , 1", NBE),
    (b'SELECT "a\\" /*!999999 , "x */ , 1', ANSI),
])
def test_server_text_walks_strings_as_the_mode_says(statement, mode):
    """Failed before: reading 'a\\' as an escape, the walk to the next versioned comment went on inside the string and
    missed the comment the server skips, whose text leaves a quote open: the statement was passed as read."""
    assert server_text(statement, MARIADB_10_11, mode) is None


def test_server_text_under_the_default_mode_is_unchanged():
    """Guard: a backslash escape read as one; the versioned comment after the string made a plain comment."""
    statement = b"SELECT 'a\\'' /*!999999 , 2 */"
    assert server_text(statement, MARIADB_10_11, DEFAULT) == statement.replace(b'/*!', b'/* ')


def test_the_replay_refuses_a_skipped_comment_hidden_by_the_mode(tmp_path):
    """Failed before: the replay's own reading (``ReplayEventRewriter``) of a statement under NO_BACKSLASH_ESCAPES
    missed the skipped versioned comment behind 'a\\'."""
    header = b'# at 4\n#261206  0:10:00 server id 1  end_log_pos 9 \tQuery\tthread_id=5\n'
    data = (header + b'SET @@session.sql_mode=%d' % NO_BACKSLASH_ESCAPES + END
            + header + b"INSERT INTO t VALUES ('a\\') /*!999999 , ('x */ /* ' */\n" + END)
    rewriter = ReplayEventRewriter({}, MARIADB_10_11)
    with pytest.raises(OpsReadyError, match='versioned comment'):
        rewriter.feed(data)
        rewriter.flush()


@pytest.mark.parametrize('statement', [b'GRANT SELECT ON "pr".* TO w', b'GRANT SELECT ON "pr"."t" TO "w"@"%"'])
def test_a_grant_on_the_source_in_ansi_quotes_is_not_read_as_another_databases(statement):
    """Failed before: ``GRANT ... ON "pr".*`` (ANSI_QUOTES; no valid statement otherwise) was read as naming no
    database of pr (False): the ledger left the privileges it gave out."""
    change = privilege_change(statement, 'pr')
    assert change is None or change['db'] == 'pr'


def test_a_grant_on_an_unqualified_ansi_quoted_table_of_the_default_database_is_read():
    """Failed before: ``ON "t"`` (ANSI_QUOTES) was not read as the table t of the statement's default database."""
    change = privilege_change(b'GRANT SELECT ON "t" TO w', 'pr', 'pr')
    assert change and change['kind'] == 'tables' and change['object'] == 't'


def _events(data: bytes, statuses):
    rewriter = ReplayEventRewriter(statuses)
    return rewriter.feed(data) + rewriter.flush(), rewriter.statuses


@pytest.mark.parametrize('statement, expected', [
    (b'CREATE DEFINER="root"@"localhost" EVENT "e" ON SCHEDULE EVERY 1 HOUR DO INSERT INTO t VALUES (1)',
     b'EVERY 1 HOUR DISABLE DO'),
    (b'ALTER EVENT "e" ENABLE', b'ALTER EVENT "e" DISABLE'),
    (b'ALTER EVENT "e" RENAME TO "f""g" ENABLE', b'"f""g" DISABLE'),
])
def test_an_event_named_in_ansi_quotes_loads_disabled(statement, expected):
    """Failed before: under ANSI_QUOTES the event's name "e" was read as a string, the statement as no event's, and
    it was replayed as written: the event enabled in the copy (its body running there, as its definer)."""
    header = b'# at 4\n#261206  0:10:00 server id 1  end_log_pos 9 \tQuery\tthread_id=5\n'
    data = header + b'SET @@session.sql_mode=%d' % ANSI_QUOTES + END + header + statement + b'\n' + END
    out, statuses = _events(data, {'e': 'DISABLED'})
    assert expected in out
    assert statuses.get('f"g' if b'RENAME' in statement else 'e') == 'ENABLED'
