"""Unit tests (round 9) of the database properties a PostgreSQL restore warns of or sets again: an unknown database
privilege is named, never spliced into SQL; a built-in extension's comment and its language's are quoted whatever
they hold."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import dbprops
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    quote_ident, quote_literal)


def props(**extra):
    base = {'owner': 'own"er', 'acl': [
        {'grantor': 'own"er', 'grantee': None, 'privilege': 'CONNECT', 'grantable': False},
        {'grantor': 'g', 'grantee': 'r\'x', 'privilege': 'DROP; SELECT 1', 'grantable': True}]}
    base.update(extra)
    return base


def test_unknown_privilege_is_warned_and_left_out_of_sql():
    statements, skipped = dbprops.apply_statements(props(), 'db', False, ['own"er', 'g', "r'x"])
    assert not any('DROP; SELECT 1' in s for s in statements)
    assert skipped == ['database privilege DROP; SELECT 1 (unknown here)']
    warnings = dbprops.unknown_privilege_warnings(props(), no_owner=False)
    assert len(warnings) == 1 and 'DROP; SELECT 1' in warnings[0] and "r'x" in warnings[0] and 'by g' in warnings[0]
    assert dbprops.unknown_privilege_warnings(props(), no_owner=True) == []
    assert dbprops.unknown_privilege_warnings({'acl': None}, no_owner=False) == []


def test_builtin_extension_comment_is_quoted_and_only_when_changed():
    recorded = {'extensions': [
        {'name': 'plpgsql', 'comment': "it's\nours", 'comment_changed': True},
        {'name': 'hstore', 'comment': 'x', 'comment_changed': True}]}
    out = dbprops.builtin_extension_comments(recorded, {'plpgsql': 'PL/pgSQL procedural language', 'hstore': 'y'})
    wanted = 'COMMENT ON EXTENSION %s IS %s' % (quote_ident('plpgsql'), quote_literal("it's\nours"))
    assert out == [([wanted], 'extension plpgsql (comment)')]
    assert dbprops.builtin_extension_comments(recorded, {'plpgsql': "it's\nours"}) == []
    removed = {'extensions': [{'name': 'plpgsql', 'comment': None, 'comment_changed': True}]}
    assert dbprops.builtin_extension_comments(removed, {'plpgsql': 'PL/pgSQL procedural language'}) == [
        (['COMMENT ON EXTENSION %s IS NULL' % quote_ident('plpgsql')], 'extension plpgsql (comment removed)')]
    old = {'extensions': [{'name': 'plpgsql', 'owner': 'postgres'}]}   # a manifest from before the record
    assert dbprops.builtin_extension_comments(old, {'plpgsql': 'PL/pgSQL procedural language'}) == []


def test_language_member_statements():
    recorded = [{'object': 'language plpgsql', 'owner': 'Odd "r"', 'comment': 'ours'}]
    restored = [{'object': 'language plpgsql', 'role': 'postgres', 'comment': 'PL/pgSQL procedural language'}]
    out = dbprops.extension_member_statements(recorded, restored, no_owner=False)
    assert out == [(['ALTER LANGUAGE plpgsql OWNER TO "Odd ""r"""', 'COMMENT ON LANGUAGE plpgsql IS ' + quote_literal(
        'ours')], 'language plpgsql (owner Odd "r", comment)')]
