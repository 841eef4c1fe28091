"""The stored bodies the replay's scan reads (``foreign_objects``, ``database_function_objects``, ``bodies_naming``)
are read as MariaDB prints them in information_schema, not every way a statement may be read. A trigger's, routine's
or event's body (TRIGGERS.ACTION_STATEMENT, ROUTINES.ROUTINE_DEFINITION, EVENTS.EVENT_DEFINITION) is the server's
utf8 copy of its text, each string re-quoted with its quote doubled and a backslash written as itself (10.11: the
default-mode ``'x\\\\'`` is printed ``'x\\'``, ``'it\\'s'`` is printed ``'it''s'``): it is read with no backslash
escapes and with ANSI_QUOTES when its own SQL_MODE has it. A view's VIEW_DEFINITION is the server's normalized text
(names in backticks, strings with backslash escapes: ``'q\\'r'``): it is read with the default reading. Read every way,
a body holding ``'x\\', NEW.b = 'mysql.user'`` exposed ``mysql.user`` under the escapes reading, and every
statement-logged INSERT into its table refused the restore."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    bodies_naming, database_function_objects, foreign_objects)

DEFAULT_MODE = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION'


class _Bodies:
    """A MariaDB engine with databases src and other; ``rows``: (kind, name, key, body, sql_mode) of src."""
    flavor = 'mariadb'

    def __init__(self, rows, version='10.11.6-MariaDB-log'):
        self.rows, self.version = rows, version

    def ping(self):
        return {'server_version': self.version}

    def query(self, sql):
        if sql == 'SHOW DATABASES':
            return [('src',), ('other',), ('mysql',)]
        moded = 'SQL_MODE' in sql
        if 'EVENT_DEFINITION' in sql:   # bodies_naming: (kind, name, body[, sql_mode])
            return [(r[0], r[1], r[3], r[4]) if moded else (r[0], r[1], r[3]) for r in self.rows]
        return [r if moded else r[:4] for r in self.rows]


# each as MariaDB 10.11 prints it (``test_mariadb_round14.py`` reads them off a real server)
QUIET = [
    ('trigger', 'tr', 'orders', "SET NEW.note = 'x\\', NEW.b = 'mysql.user'", DEFAULT_MODE),   # 'x\\\\' written
    ('trigger', 'tr2', 'orders', "SET NEW.note = 'can''t change mysql.user rows'", DEFAULT_MODE),
    ('procedure', 'p', 'p', "SELECT 'y\\', 'other.t'", 'NO_BACKSLASH_ESCAPES'),
    ('function', 'f', 'f', 'RETURN "k\\" + "other.t"', DEFAULT_MODE),
    ('view', 'v', 'v', "select 'q\\'r other.t' AS `x` from `src`.`orders`", None),
]
LOUD = [
    ('trigger', 'tr', 'orders', "SET NEW.note = 'x\\', NEW.b = other.f(1), NEW.c = 'y'", DEFAULT_MODE),
    ('procedure', 'p', 'p', 'SELECT "other"."t".a FROM "other"."t"', 'PIPES_AS_CONCAT,ANSI_QUOTES'),
    ('view', 'v', 'v', "select 'a\\\\' AS `x`,`other`.`t`.`id` AS `id` from `other`.`t`", None),
]


@pytest.mark.parametrize('row', QUIET, ids=[r[1] for r in QUIET])
def test_a_body_naming_another_database_only_in_a_string_is_not_foreign(row):
    """Failed before (tr, p, f, v; tr2, the 'can\\'t' of the report, passed: the server prints it 'can''t'): read
    every way, the string's text was read as code under one reading, and every statement firing or calling the
    object refused the restore."""
    assert foreign_objects(_Bodies([row]), 'src') == {'tables': {}, 'routines': {}, 'read': {}}
    assert bodies_naming(_Bodies([row]), 'src', 'other') == []


@pytest.mark.parametrize('row', LOUD, ids=[r[1] for r in LOUD])
def test_a_body_naming_another_database_in_its_code_stays_foreign(row):
    """Guard: the name in the code is found under the body's own reading."""
    found = foreign_objects(_Bodies([row]), 'src')
    assert '%s %s' % (row[0], row[1]) in list(found['tables'].values()) + list(found['routines'].values())
    assert bodies_naming(_Bodies([row]), 'src', 'other') == ['%s %s' % (row[0], row[1])]


def test_a_body_calling_database_is_read_in_its_own_reading():
    """Failed before: DATABASE() inside the printed string 'x\\', ... DATABASE() ...' was read as a call."""
    quiet = ('trigger', 'tr', 'orders', "SET NEW.note = 'x\\', NEW.b = 'DATABASE()'", DEFAULT_MODE)
    loud = ('trigger', 'tr', 'orders', "SET NEW.note = 'x\\', NEW.b = DATABASE(), NEW.c = 'y'", DEFAULT_MODE)
    assert database_function_objects(_Bodies([quiet]), 'src')['tables'] == {}
    assert database_function_objects(_Bodies([loud]), 'src')['tables'] == {b'orders': 'trigger tr'}


def test_a_server_not_known_to_print_so_reads_every_way():
    """Guard: on MySQL (whose information_schema text is not known to be printed so) a body is still read every way
    (refuse more, never less)."""
    mysql = _Bodies([QUIET[0]], version='8.0.36')
    mysql.flavor = 'mysql'
    assert foreign_objects(mysql, 'src')['tables'] == {b'orders': 'trigger tr'}


def test_check_mode_reads_a_source_view_over_its_own_tables_as_the_real_run_reads_the_copy():
    """Failed before: check mode reads the source's objects for the copy (``also=[source]``: the source's name is
    another database's for the copy), but a view's VIEW_DEFINITION qualifies every name with the view's own database
    and the real run renames those in the copy (``requalify_view``): every source view over a source table looked
    foreign in check mode only, which refused where the real run restored. A trigger or routine body naming the
    source keeps it in the copy (the dump keeps the text): foreign in both."""
    view = ('view', 'v', 'v', 'select `src`.`orders`.`id` AS `id`,`src`.`f`(1) AS `g` from `src`.`orders`', None)
    trigger = ('trigger', 'tr', 'orders', 'INSERT INTO src.log VALUES (NEW.id)', DEFAULT_MODE)
    assert foreign_objects(_Bodies([view]), 'src', also=['src']) == {'tables': {}, 'routines': {}, 'read': {}}
    # (writing through the view fires the trigger: the view counts through it, in both)
    assert foreign_objects(_Bodies([view, trigger]), 'src', also=['src'])['tables'] == {
        b'orders': 'trigger tr', b'v': 'view v'}
    other = ('view', 'v', 'v', 'select `other`.`t`.`id` AS `id` from `other`.`t`', None)
    assert foreign_objects(_Bodies([other]), 'src', also=['src'])['tables'] == {b'v': 'view v'}
