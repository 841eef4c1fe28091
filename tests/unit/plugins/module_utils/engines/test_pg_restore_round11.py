# -*- coding: utf-8 -*-
"""Round 11: the restore's event-trigger handling, what makes an existing target "not empty", and PUBLIC's part of
the database ACL under no_owner.

* ``hold_event_triggers`` disables the copy's enabled event triggers (names of any shape, read hex-encoded) in one
  transaction and ``release_event_triggers`` gives each its own state back (ENABLE / ENABLE REPLICA / ENABLE ALWAYS);
  a database without any runs nothing more than the read;
* ``TARGET_CONTENTS`` counts default privileges, access methods, languages, text search parsers/templates and
  transforms (a target holding only those was dropped by the swap without replace=true)."""

from __future__ import annotations

from typing import List

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import restore


class FakeEngine:
    def __init__(self, rows: List[List[str]]) -> None:
        self.rows = rows
        self.sent: List[tuple] = []

    def query(self, sql: str, database: str = None) -> List[List[str]]:
        self.sent.append((sql, database))
        return self.rows if 'pg_event_trigger' in sql else []


def test_held_event_triggers_get_their_own_state_back():
    odd = 'Log "DDL",\nx'
    engine = FakeEngine([[odd.encode('utf-8').hex(), 'O'], ['616c77', 'A'], ['726570', 'R']])
    held = restore.hold_event_triggers(engine, 'db__opsready_restore_1')
    assert held == [(odd, 'O'), ('alw', 'A'), ('rep', 'R')]
    assert engine.sent[1] == ('BEGIN; ALTER EVENT TRIGGER "Log ""DDL"",\nx" DISABLE; '
                              'ALTER EVENT TRIGGER "alw" DISABLE; ALTER EVENT TRIGGER "rep" DISABLE; COMMIT',
                              'db__opsready_restore_1')
    restore.release_event_triggers(engine, 'db__opsready_restore_1', held)
    assert engine.sent[2][0] == ('BEGIN; ALTER EVENT TRIGGER "Log ""DDL"",\nx" ENABLE; ALTER EVENT TRIGGER "alw" '
                                 'ENABLE ALWAYS; ALTER EVENT TRIGGER "rep" ENABLE REPLICA; COMMIT')


def test_no_event_triggers_nothing_but_the_read():
    engine = FakeEngine([])
    assert restore.hold_event_triggers(engine, 'db') == []
    restore.release_event_triggers(engine, 'db', [])
    assert len(engine.sent) == 1 and "evtenabled <> 'D'" in engine.sent[0][0]


def test_target_contents_count_what_a_user_made_without_a_table():
    sql = ' '.join(query for _kind, query in restore.TARGET_CONTENTS)
    for catalog in ('pg_default_acl', 'pg_am', 'pg_language', 'pg_ts_parser', 'pg_ts_template', 'pg_transform'):
        assert "FROM %s x WHERE x.oid >= 16384" % catalog in sql, catalog
    assert any('default privileges' in kind for kind, _query in restore.TARGET_CONTENTS)


def test_no_owner_warns_of_publics_unknown_privileges_only():
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import dbprops
    props = {'owner': 'o', 'acl': [{'grantor': 'o', 'grantee': None, 'privilege': 'FUTURE', 'grantable': False},
                                   {'grantor': 'o', 'grantee': 'r', 'privilege': 'FUTURE', 'grantable': False},
                                   {'grantor': 'o', 'grantee': None, 'privilege': 'CONNECT', 'grantable': False}]}
    assert len(dbprops.unknown_privilege_warnings(props, False)) == 2
    warned = dbprops.unknown_privilege_warnings(props, True)
    assert len(warned) == 1 and 'to PUBLIC' in warned[0]
    assert dbprops.describe(props, True)['acl'] == [props['acl'][0], props['acl'][2]]
    assert dbprops.describe(dict(props, acl=None), True)['acl'] is None
