"""_names_in: the triggers' tables, views and routines whose body calls DATABASE() that a replayed statement names
(quoted or not, routines only where called), never inside a string or a comment."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import _names_in

TABLES = {b't': 'trigger tr', b'my view': 'view my view'}
ROUTINES = {b'whereami': 'function whereAmI', b'p': 'procedure p'}


def test_named_where_used():
    assert _names_in(b'INSERT INTO t VALUES (1)', TABLES, ROUTINES) == ['trigger tr']
    assert _names_in(b'INSERT INTO `t` VALUES (1)', TABLES, ROUTINES) == ['trigger tr']
    assert _names_in(b'SELECT * FROM `my view` JOIN t', TABLES, ROUTINES) == ['view my view', 'trigger tr']
    assert _names_in(b'INSERT INTO a VALUES (WhereAmI ())', TABLES, ROUTINES) == ['function whereAmI']
    assert _names_in(b'CALL p', TABLES, ROUTINES) == ['procedure p']


def test_not_in_strings_comments_or_uncalled():
    assert _names_in(b"INSERT INTO a VALUES ('t', \"whereami()\") /* t */ -- t\n", TABLES, ROUTINES) == []
    assert _names_in(b'SELECT whereami FROM a', TABLES, ROUTINES) == []
    assert _names_in(b'INSERT INTO tt VALUES (1)', TABLES, ROUTINES) == []
