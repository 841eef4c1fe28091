"""What a restored PostgreSQL copy reaches (no server): subscription connection strings parsed and pointed nowhere,
address options of other wrappers, and a SQL_ASCII database's list settings written from their bytes."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import dbprops, foreign
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import quote_literal


@pytest.mark.parametrize('conninfo, expected', [
    ("host=10.0.0.5 port=5433 dbname='my db' user=rep password='it\\'s'",
     {'host': '10.0.0.5', 'port': '5433', 'dbname': 'my db', 'user': 'rep', 'password': "it's"}),
    ('host = h  dbname = d', {'host': 'h', 'dbname': 'd'}),
    ('postgresql://r%40x:secret@[::1]:5434/db%20x?sslmode=require',
     {'user': 'r@x', 'password': 'secret', 'host': '::1', 'port': '5434', 'dbname': 'db x', 'sslmode': 'require'}),
    ('postgres://prod.example/app', {'host': 'prod.example', 'dbname': 'app'}),
    ('not a connection string', {}),
])
def test_parse_conninfo(conninfo, expected):
    assert foreign.parse_conninfo(conninfo) == expected


def test_disabled_conninfo_keeps_where_not_how():
    parsed = foreign.parse_conninfo("host=prod hostaddr=10.1.1.1 service=s port=5 dbname='it\\'s' user=u password=pw")
    disabled = foreign.disabled_conninfo(parsed)
    assert disabled.startswith("host='%s' " % foreign.DISABLED_HOST)
    assert 'pw' not in disabled and 'prod' not in disabled and '10.1.1.1' not in disabled and 'service' not in disabled
    assert foreign.parse_conninfo(disabled) == {'host': foreign.DISABLED_HOST, 'port': '5', 'dbname': "it's",
                                                'user': 'u'}


def test_subscription_statements():
    sub = {'name': 'Prod "Sub"', 'enabled': True, 'slot_name': 'slot', 'parsed': {'host': 'h', 'password': 'x'}}
    statements = foreign._subscription_statements(sub)   # pylint: disable=protected-access
    assert statements[0] == 'ALTER SUBSCRIPTION "Prod ""Sub""" DISABLE'
    assert statements[-1] == 'ALTER SUBSCRIPTION "Prod ""Sub""" SET (slot_name = NONE)'
    assert 'x' not in statements[1].split('CONNECTION', 1)[1].replace('nonexistent', '')
    # a login that may not read the connection string: no CONNECTION, the slot still goes
    unread = dict(sub, enabled=False, parsed=None)
    assert foreign._subscription_statements(unread) == [   # pylint: disable=protected-access
        'ALTER SUBSCRIPTION "Prod ""Sub""" SET (slot_name = NONE)']


def test_address_options_of_other_wrappers():
    server = {'name': 'legacy', 'libpq': False, 'options': {'host': 'a', 'port': '1', 'address': 'b', 'x': 'y'}}
    nowhere = quote_literal(foreign.DISABLED_HOST)
    assert foreign._address_statement(server) == (   # pylint: disable=protected-access
        'ALTER SERVER "legacy" OPTIONS (SET "host" %s, SET "address" %s)' % (nowhere, nowhere))
    assert foreign._address_statement(dict(server, libpq=True)) is None   # pylint: disable=protected-access
    assert foreign._address_statement(dict(server, options={'x': 'y'})) is None   # pylint: disable=protected-access


def test_sql_ascii_list_setting_is_written_from_its_bytes():
    """search_path naming a schema whose name holds 0xE9 (not UTF-8): one literal per name, from the bytes."""
    raw_value = b'search_path="caf\xe9", public, "a, \xe9"'
    props = {'settings': [{'role': None, 'config': [raw_value.decode('latin-1')]}],
             dbprops.RAW_KEY: {'settings': [{'role': None, 'config': [raw_value.hex()]}]}}
    statements, skipped = dbprops.apply_statements(props, 'db', False, [])
    assert skipped == [] and len(statements) == 1
    sql = statements[0]
    assert sql.startswith(dbprops.RAW_PREFIX) and sql.isascii()
    assert "ALTER DATABASE %I SET %I TO %L, %L, %L" in sql
    for name in (b'caf\xe9', b'public', b'a, \xe9'):
        assert 'decode(%s, ' % quote_literal(name.hex()) in sql
