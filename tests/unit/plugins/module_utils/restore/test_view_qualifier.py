"""ViewQualifierRewriter / requalify_view: in a dump's view statements the qualifiers naming the dumped database are
renamed to the database the dump is loaded into; nothing else changes (other databases, literals, comments, other
identifiers), whatever the chunking; a statement that cannot be tokenized is never changed, and fails the load when it
names the dumped database."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    LINE_CARRY, TriggerQualifierStripper, ViewQualifierRewriter, _Chained, requalify_view, view_tokens)

OWN = 'a`b.c\'"\\ é'           # backtick, dot, quotes, backslash, space, non-ASCII
INTO = 'new`db é'
Q_OWN = '`a``b.c\'"\\ é`'.encode()
Q_INTO = '`new``db é`'.encode()


def fill(text: bytes) -> bytes:
    # {L} / {D}: the quoted name inside a '...' / "..." literal, escaped as the server prints it
    return (text.replace(b'{O}', Q_OWN).replace(b'{I}', Q_INTO)
            .replace(b'{L}', Q_OWN.replace(b'\\', b'\\\\').replace(b"'", b"\\'"))
            .replace(b'{D}', Q_OWN.replace(b'\\', b'\\\\').replace(b'"', b'\\"')))


def line(body: bytes) -> bytes:
    return b'VIEW `v` AS ' + body + b' */;'


@pytest.mark.parametrize('body, expected', [
    (b'select {O}.`t`.`x` AS `x` from `t`', b'select {I}.`t`.`x` AS `x` from `t`'),
    (b'select `o`.`t`.`x` AS `ox` from ({O}.`t` join `o`.`t` on({O}.`t`.`x` = `o`.`t`.`x`))',
     b'select `o`.`t`.`x` AS `ox` from ({I}.`t` join `o`.`t` on({I}.`t`.`x` = `o`.`t`.`x`))'),
    (b'select {O} . `t` . {O} AS {O} from `t`', b'select {I} . `t` . {O} AS {O} from `t`'),
    (b'select {O}.{O}.{O} AS `c` from {O}.{O}', b'select {I}.{O}.{O} AS `c` from {I}.{O}'),
    (b'select {O}.t.x AS `x` from t', b'select {I}.t.x AS `x` from t'),
])
def test_own_qualifiers_renamed_only(body, expected):
    new, count = requalify_view(line(fill(body)), OWN.encode(), INTO.encode())
    assert new == line(fill(expected))
    assert count == fill(expected).count(Q_INTO)


@pytest.mark.parametrize('body', [
    b"select '{L}.`t`.x' AS `s` from `t`",                     # a literal naming the database
    b"select 'it''s {L}.t', 'a\\' {L}.t', \"{D}.t\" AS `s` from `t`",  # '' and \\' inside literals
    b"select 'x\\\\' AS `s`, `t`.`x` AS {O} from `t`",            # a literal ending in a backslash, an alias
    b'select `o`.{O}.`x` AS `x` from `o`.{O}',                # a table of another database named like it
    b'select `a``b.c\'"\\ \xc3\xa9x`.`t`.`x` AS `x` from `t`',      # a longer name holding it
    b'select `A``B.C\'"\\ \xc3\x89`.`t`.`x` AS `x` from `t`',       # another case: another database on Linux
    b'select /* {O}.`t` */ 1 AS `x`',                          # a comment
    b'select {O} AS `x` from `t`',                             # no dot after it
])
def test_nothing_else_changes(body):
    text = line(fill(body))
    assert requalify_view(text, OWN.encode(), INTO.encode()) == (text, 0)


@pytest.mark.parametrize('text', [
    fill(line(b"select 'unterminated {O}.`t`.`x` AS `x` from `t`")),
    line(b'select `unterminated AS `x`'),
    line(b'select "x AS `x`'),
    line(b'select /* open AS `x`'),
    line(b'select `t`.`x` AS `x` from `t`') + b' extra',
    b'VIEW `v` AS select 1 AS `x` -- */;',
    b'VIEW `v` AS select 1 AS `x` # */;',
    fill(b'VIEW `v` AS select {O}.`t`.`x` AS `x` from `t`'),  # no end on the line
    b'VIEW `v` AS select 1 AS `x` /*!50001 */ */;',
])
def test_untokenizable_left_unchanged(text):
    assert view_tokens(text) is None
    assert requalify_view(text, OWN.encode(), INTO.encode()) == (None, 0)


def test_tokens_cover_the_line():
    text = line(b"select 'a\\'b' AS `x``y`, \"q\"\"r\" AS `z` from `t` where 1 /* c */ -1")
    assert b''.join(t for _k, t in view_tokens(text)) == text


HEAD = (b"/*!50001 CREATE ALGORITHM=UNDEFINED */\n"
        b"/*!50013 DEFINER=`gh``o st`@`%` SQL SECURITY DEFINER */\n"
        b"/*!50001 VIEW ")
DUMP_T = (
    b"INSERT INTO `t` VALUES (1,'/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50001 VIEW `v` AS select {L}.x');\n"
    b"/*!50001 CREATE VIEW `v` AS SELECT\n 1 AS `x` */;\n"
    + HEAD + b"`v` AS select {O}.`t`.`x` AS `x`,'{L}.' AS `s` from `t` */;\n"
    b"/*!50001 SET character_set_client      = @saved_cs_client */;\n"
    b"/*!50001 CREATE ALGORITHM=MERGE */\n"
    b"/*!50001 VIEW `w` AS select `o`.{O}.`x` AS `x` from ({O}.`t` join `o`.{O}) */;\n"
    b"/*!50001 VIEW `not_after_a_header` AS select {O}.`t`.`x` AS `x` from `t` */;\n"
    + HEAD + b"`u` AS select `t`.`x` AS `x` from `t` */;\n")
DUMP = fill(DUMP_T)
EXPECTED = fill(
    DUMP_T.replace(b"select {O}.`t`.`x` AS `x`,'", b"select {I}.`t`.`x` AS `x`,'")
    .replace(b'from ({O}.`t`', b'from ({I}.`t`'))


def run(data: bytes, size: int, own: str = OWN, into: str = INTO, renamed: int = 0) -> bytes:
    rewriter = ViewQualifierRewriter(own, into)
    out = b''.join(rewriter.feed(data[i:i + size]) for i in range(0, len(data), size)) + rewriter.flush()
    assert rewriter.renamed == renamed
    return out


def test_every_chunking():
    assert EXPECTED != DUMP
    for size in (1, 2, 7, 64, 100, len(DUMP)):
        assert run(DUMP, size, renamed=2) == EXPECTED, size


def test_same_database_and_other_database_unchanged():
    assert run(DUMP, 7, OWN, OWN) == DUMP
    assert run(DUMP, 7, 'other', INTO) == DUMP


def test_chained_with_the_trigger_stripper():
    trigger = b"/*!50003 CREATE*/ /*!50003 TRIGGER {O}.`tr` BEFORE INSERT ON {O}.`t` FOR EACH ROW SET @a = 1 */;;\n"
    data = DUMP + fill(trigger)
    for size in (3, 50, len(data)):
        chain = _Chained(TriggerQualifierStripper(), ViewQualifierRewriter(OWN, INTO))
        out = b''.join(chain.feed(data[i:i + size]) for i in range(0, len(data), size)) + chain.flush()
        assert out == EXPECTED + trigger.replace(b'{O}.', b'')


@pytest.mark.parametrize('size', [5, 4096])
def test_untokenizable_view_naming_the_database_fails_the_load(size):
    """Never a silently altered view, nor one left reading the source: the load stops."""
    bad = HEAD + fill(b"`v` AS select {O}.`t`.`x` AS `x`,'open from `t` */;\n")
    rewriter = ViewQualifierRewriter(OWN, INTO)
    with pytest.raises(OpsReadyError, match='view `v`.*cannot be read'):
        for i in range(0, len(bad), size):
            rewriter.feed(bad[i:i + size])
        rewriter.flush()


def test_untokenizable_view_not_naming_it_passes_unchanged():
    odd = HEAD + b"`v` AS select 'open from `t` */;\n"
    assert run(odd, 3) == odd


def test_long_line_not_held():
    rewriter = ViewQualifierRewriter(OWN, INTO)
    out = rewriter.feed(b'INSERT INTO `t` VALUES ' + b'(1),' * LINE_CARRY)
    assert len(out) > 3 * LINE_CARRY and not rewriter.carry
    assert rewriter.feed(b'(2);\n' + DUMP) + rewriter.flush() == b'(2);\n' + EXPECTED


def test_long_view_line_is_held_whole():
    body = HEAD + b'`v` AS select ' + b"'x'," * LINE_CARRY + fill(b'{O}.`t`.`x` AS `x` from `t` */;\n')
    out = run(body, 100000, renamed=1)
    assert out == body.replace(Q_OWN, Q_INTO)


# Lines mariadb-dump 10.11 wrote for views of database `src` (o: another database; the ones with an alias, a table
# or a CTE named src print `src`.`x` for that thing's column, which must stay).
@pytest.mark.parametrize('dumped, loaded', [
    (b'select `src`.`x` AS `x` from `t` `src`', None),                                    # alias named src
    (b'select `src`.`x` AS `x` from `src`', None),                                        # table named src
    (b'with src as (select 1 AS `x`)select `src`.`x` AS `x` from `src`', None),           # CTE named src
    (b'select `src`.`src`.`x` AS `x`,`o`.`t`.`x` AS `ox` from (`src`.`src` join `o`.`t`)',
     b'select `NEW`.`src`.`x` AS `x`,`o`.`t`.`x` AS `ox` from (`NEW`.`src` join `o`.`t`)'),
    (b'select `src`.`x` AS `x` from (`src`.`t` `src` join `o`.`t`)',
     b'select `src`.`x` AS `x` from (`NEW`.`t` `src` join `o`.`t`)'),
    (b'select nextval(`src`.`sq`) AS `n`,`f`(1) AS `y`,`src`.`f`(2) AS `z` from `o`.`t`',
     b'select nextval(`NEW`.`sq`) AS `n`,`f`(1) AS `y`,`NEW`.`f`(2) AS `z` from `o`.`t`'),
    (b'select nextval(`src`.`sq`) AS `n`,`src`.`f`(`src`.`x`) AS `z` from `t` `src`',  # alias, and a sequence
     b'select nextval(`NEW`.`sq`) AS `n`,`NEW`.`f`(`src`.`x`) AS `z` from `t` `src`'),
    (b"select `f`(`src`.`t`.`x`) AS `y`,'a\\nb\\\\n*/c `src`.' AS `s`,`src`.`t`.`x` AS `src` from `t` where "
     b'`src`.`t`.`x` in (select `src`.`t`.`x` from `t`)',
     b"select `f`(`NEW`.`t`.`x`) AS `y`,'a\\nb\\\\n*/c `src`.' AS `s`,`NEW`.`t`.`x` AS `src` from `t` where "
     b'`NEW`.`t`.`x` in (select `NEW`.`t`.`x` from `t`)'),
])
def test_real_server_lines(dumped, loaded):
    new, count = requalify_view(line(dumped), b'src', b'NEW')
    assert new == line(loaded or dumped)
    assert count == (loaded or b'').count(b'`NEW`')


# mariadb-dump 10.11 writes a view whose DEFINER is a role on one line (no header block), its columns qualified.
ROLE_T = (b"/*!50001 DROP VIEW IF EXISTS `v`*/;\n"
          b"/*!50001 CREATE ALGORITHM=UNDEFINED DEFINER=`r``o.l e` SQL SECURITY DEFINER VIEW `v` AS select "
          b"{O}.`t`.`id` AS `id` from `t` */;\n"
          b"/*!50001 CREATE ALGORITHM=MERGE DEFINER=`r` SQL SECURITY INVOKER VIEW `w` AS select `o`.{O}.`x` AS `x` "
          b"from ({O}.`t` join `o`.{O}) */;\n"
          b"/*!50001 CREATE ALGORITHM=UNDEFINED DEFINER=`r` SQL SECURITY DEFINER TABLE `x` AS select {O}.`t` */;\n")


def test_one_line_view_of_a_role_definer_is_requalified():
    """Both one-line views get the target's name (a statement that is no view does not)."""
    data = fill(ROLE_T)
    expected = fill(ROLE_T.replace(b'select {O}.`t`.`id`', b'select {I}.`t`.`id`')
                    .replace(b'from ({O}.`t`', b'from ({I}.`t`'))
    for size in (1, 5, 64, len(data)):
        assert run(data, size, renamed=2) == expected, size
