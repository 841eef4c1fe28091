# -*- coding: utf-8 -*-
"""Round 12: event triggers of every enable mode, the roles' database grants under no_owner, and what a DBA set on an
existing target without creating anything in it.

* PostgreSQL 17+: a client's sessions in a "quiet" database start with ``event_triggers=off`` (every mode, login
  triggers too); others do not; ``_version_num`` reads the first question's row;
* ``no_owner_grant_warnings`` names each role whose database grants were left out, with its privileges, once;
  ``describe`` reports PUBLIC's part as applied (an empty list when PUBLIC was shut out, not None);
* ``inspect_target`` counts database-level settings, a database comment or security label (maintenance database's
  answer) and sends the maintenance database's public schema as the reference for the target's."""

from __future__ import annotations

from typing import List

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import dbprops, restore
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import PostgresClient
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams


def test_quiet_databases_start_with_event_triggers_off():
    client = PostgresClient(ConnectionParams(host='h', user='u'))
    client.quiet_databases.add('db__opsready_restore_1')
    assert '-c event_triggers=off' in client.env('db__opsready_restore_1')['PGOPTIONS']
    assert 'event_triggers' not in client.env('other').get('PGOPTIONS', '')
    assert 'event_triggers' not in client.env().get('PGOPTIONS', '')


def test_version_num_of_the_first_question():
    assert restore._version_num([['on', '170002']]) == 170002
    assert restore._version_num([['on', '150018']]) < restore.EVENT_TRIGGERS_OFF_SINCE
    assert restore._version_num([['on']]) == 0 and restore._version_num([]) == 0


ACL = [{'grantor': 'o', 'grantee': 'app', 'privilege': 'CONNECT', 'grantable': False},
       {'grantor': 'o', 'grantee': 'app', 'privilege': 'TEMPORARY', 'grantable': False},
       {'grantor': 'o', 'grantee': 'Odd "r"', 'privilege': 'CONNECT', 'grantable': True},
       {'grantor': 'o', 'grantee': 'o', 'privilege': 'CREATE', 'grantable': False}]


def test_no_owner_names_the_roles_whose_grants_were_left_out():
    props = {'owner': 'o', 'acl': ACL}
    assert dbprops.no_owner_grant_warnings(props, False, 'db') == []
    (warning,) = dbprops.no_owner_grant_warnings(props, True, 'db')
    assert 'app (CONNECT, TEMPORARY)' in warning and 'Odd "r" (CONNECT)' in warning and 'o (CREATE)' in warning
    assert 'PUBLIC has no privilege on database db' in warning
    opened = dict(props, acl=ACL + [{'grantor': 'o', 'grantee': None, 'privilege': 'CONNECT', 'grantable': False}])
    assert 'PUBLIC has CONNECT on database db' in dbprops.no_owner_grant_warnings(opened, True, 'db')[0]
    assert dbprops.no_owner_grant_warnings({'acl': None}, True, 'db') == []


def test_describe_reports_publics_part_as_applied():
    assert dbprops.describe({'owner': 'o', 'acl': ACL}, True)['acl'] == []   # REVOKE ALL ... FROM PUBLIC ran
    assert dbprops.describe({'owner': 'o', 'acl': None}, True)['acl'] is None   # nothing recorded, nothing set
    assert dbprops.describe({'owner': 'o', 'acl': ACL}, False)['acl'] == ACL


class FakeEngine:
    def __init__(self, maintenance: List[str], inside: List[str], template1: str = 'initial') -> None:
        self.maintenance, self.inside, self.template1 = maintenance, inside, template1
        self.sent: List[tuple] = []

    def query(self, sql: str, database: str = None) -> List[List[str]]:
        self.sent.append((sql, database))
        if database == 'template1':
            return [[self.template1]]
        return [self.inside] if database else [self.maintenance]


def test_inspect_target_counts_what_a_dba_set_outside_and_on_public():
    inside = ['0'] * len(restore.TARGET_CONTENTS) + ['1', 'changed']
    engine = FakeEngine(['false', 'true', 'abc123', '2', '1'], inside)
    state = restore.inspect_target(engine, 'db')
    assert state['objects'] == 4
    assert state['contents'] == {restore.PUBLIC_SCHEMA_KIND: 1,
                                 'database-level settings (ALTER DATABASE/ROLE ... SET)': 2,
                                 'database comment or security labels': 1}
    assert "'abc123'" in engine.sent[1][0] and engine.sent[1][1] == 'db'
    engine = FakeEngine(['false', 'true', 'abc123', '0', '0'], ['0'] * (len(restore.TARGET_CONTENTS) + 1) + ['x'])
    assert restore.inspect_target(engine, 'db')['objects'] == 0
    assert [db for _sql, db in engine.sent] == [None, 'db']   # the first references matched: no template1 login


def test_public_schema_as_template1_has_it_is_not_counted():
    """A DBA changed template1's public schema alone (every new database copies it): a target whose public schema
    differs from initdb's and the maintenance database's but is template1's is empty; read only on that path."""
    inside = ['0'] * len(restore.TARGET_CONTENTS) + ['1', 'revoked']
    engine = FakeEngine(['false', 'true', 'abc123', '0', '0'], inside, template1='revoked')
    assert restore.inspect_target(engine, 'db')['objects'] == 0
    assert [db for _sql, db in engine.sent] == [None, 'db', 'template1']


def test_security_label_counted_only_when_not_template1s_or_the_maintenance_databases():
    sql = dict(restore.DATABASE_LEVEL_CONTENTS)['database comment or security labels']
    assert "t.datname IN ('template1', current_database())" in sql and 'r.label = l.label' in sql


def test_template1_unreadable_keeps_the_public_schema_counted():
    """template1 closed to connections: what the target's public schema is relative to it is unknown, so refused."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

    class Closed(FakeEngine):
        def query(self, sql: str, database: str = None) -> List[List[str]]:
            if database == 'template1':
                raise OpsReadyError('database "template1" is not currently accepting connections')
            return super().query(sql, database)

    engine = Closed(['false', 'true', 'abc123', '0', '0'], ['0'] * len(restore.TARGET_CONTENTS) + ['1', 'revoked'])
    assert restore.inspect_target(engine, 'db')['contents'] == {restore.PUBLIC_SCHEMA_KIND: 1}
