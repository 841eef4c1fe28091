# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB/MySQL privileges that name a database: read at backup time, given to the restored database.

A database's grants (``GRANT ... ON db.*``, on its tables, their columns, its routines) are rows of the server's
privilege tables (``mysql.db``, ``tables_priv``, ``columns_priv``, ``procs_priv``), keyed by the database's
name; the dump holds none of them. A restore under another name (or onto another server) would give the restored
database to the administrators only. So the backup records them as data (``database_grants`` in the manifest) and
the restore grants the same privileges on the restored database to the same accounts, where they exist.

Database-level rows are taken when their ``Db`` is the database's name itself or its escaped form (``app\\_db``:
``_`` and ``%`` are wildcards there); patterns matching other databases too (``app%``) are not the database's
and are left out. The restore's database-level GRANT escapes the target's name, so it names that database only.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.quote import (
    quote_identifier, quote_literal)

# mysql.db column -> privilege, where the name is not the column's own words
DB_PRIVILEGE_NAMES = {'Create_tmp_table_priv': 'CREATE TEMPORARY TABLES'}
# tables_priv / procs_priv SET values -> privilege, where the name differs
SET_PRIVILEGE_NAMES = {'Delete versioning rows': 'DELETE HISTORY'}
ROUTINE_TYPES = ('FUNCTION', 'PROCEDURE', 'PACKAGE', 'PACKAGE BODY')
# GRANT ... ON PACKAGE [BODY] parses only under sql_mode=ORACLE before MariaDB 11.4 (backticks still quote there)
ORACLE_MODE = "SET SESSION sql_mode = 'ORACLE'; "


def escape_pattern(name: str) -> str:
    """``name`` as a database-level GRANT reads it exactly: ``\\``, ``_`` and ``%`` escaped by a backslash."""
    return name.replace('\\', '\\\\').replace('_', '\\_').replace('%', '\\%')


NAME_LIMIT = 64   # characters of a database name, as a GRANT writes it (escapes included) and mysql.db keeps it


def escape_within(name: str) -> str:
    """``name`` escaped as ``escape_pattern`` does, left to right, as far as ``NAME_LIMIT`` allows: the ``_`` and
    ``%`` after that stay wildcards (for the restore's own temporary copy, whose name is [A-Za-z0-9_] and ends in a
    random suffix, each ``_`` left matches one character, and only a name shaped like it)."""
    out = ''
    for n, char in enumerate(name):
        escaped = '\\' + char if char in '\\_%' else char
        if len(out) + len(escaped) + len(name) - n - 1 > NAME_LIMIT:
            return out + name[n:]
        out += escaped
    return out


def _set_values(value: Optional[str]) -> List[str]:
    return [v for v in (value or '').split(',') if v]


def stored_name(literal: str, flavor: str = 'mariadb') -> str:
    """SQL for the name ``literal`` (a quoted literal) as the server keeps it in its privilege tables, compared byte
    for byte (their names are utf8mb3_bin): with lower_case_table_names 1 or 2 the server folds a GRANT's database
    (and table) name by its own case table (``files_charset_info``: utf8mb3_general_ci), which is not Python's
    (U+0130 is i there, U+1E9E stays): asked of the server in the query itself, no extra round trip. (MariaDB's
    collation named: a character_set_collations setting may make another the default; MySQL's is general_ci.)"""
    text = 'CONVERT(%s USING utf8mb3)%s' % (literal, ' COLLATE utf8mb3_general_ci' if flavor == 'mariadb' else '')
    return 'CAST(IF(@@lower_case_table_names, LOWER(%s), %s) AS BINARY)' % (text, text)


def database_named(column: str, database: str, flavor: str = 'mariadb') -> str:
    """SQL condition: ``column`` (a database's name as the server keeps it, e.g. SCHEMATA.SCHEMA_NAME) is the database
    the server means by ``database``, whatever lower_case_table_names is: 0, byte for byte (MyApp is not myapp); 1,
    the name kept is the folded one (``stored_name``); 2, both folded (kept as written, compared without case).
    ``SCHEMA_NAME = 'İx'`` is not it: 10.11 folds that lookup otherwise and finds nothing though it keeps ``ix``."""
    if any(ord(c) > 0xFFFF for c in database):
        return 'FALSE'   # no database is named so (utf8mb3 names), and CONVERT would make it '?': another name
    kept = 'CONVERT(%s USING utf8mb3)%s' % (column, ' COLLATE utf8mb3_general_ci' if flavor == 'mariadb' else '')
    return 'CAST(IF(@@lower_case_table_names = 2, LOWER(%s), %s) AS BINARY) = %s' % (
        kept, kept, stored_name(quote_literal(database), flavor))


def kept_database(client: Any, database: str) -> Optional[str]:
    """The name the server keeps the database it means by ``database`` under (``client``: anything with ``query``;
    with lower_case_table_names=1 ``İx`` is kept as ``ix``), None where there is none. The tools want that name:
    mariadb-dump of ``İx`` fails on its views (10.11: 'Got error: 0 ... SHOW CREATE TABLE in ds_view'), and
    information_schema qualifies a view's tables with it."""
    rows = client.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE '  # nosec B608 # quote_literal
                        + database_named('SCHEMA_NAME', database, getattr(client, 'flavor', 'mariadb')))
    return rows[0][0] if rows and rows[0] and rows[0][0] else None


def read_grants(client: Any, database: str) -> Dict[str, Any]:
    """The privileges naming ``database`` (``client``: a MySQLClient), as recorded in a manifest: looked up by the
    name the server keeps (``stored_name``: a backup of MyApp on lower_case_table_names=1 finds mysql.db's myapp)."""
    flavor = getattr(client, 'flavor', 'mariadb')
    names = ', '.join(stored_name(quote_literal(n), flavor)
                      for n in sorted({database, escape_pattern(database), escape_within(database)}))
    lit = stored_name(quote_literal(database), flavor)
    grants: Dict[str, Any] = {'database': [], 'tables': [], 'columns': [], 'routines': []}
    for row in client.query_dicts('SELECT * FROM mysql.db WHERE Db IN (%s)' % names):  # nosec B608 # quote_literal
        privileges = [DB_PRIVILEGE_NAMES.get(col, col[:-len('_priv')].replace('_', ' ').upper())
                      for col, value in sorted(row.items())
                      if col.endswith('_priv') and col != 'Grant_priv' and value == 'Y']
        grants['database'].append({'user': row['User'], 'host': row['Host'], 'privileges': privileges,
                                   'grantable': row.get('Grant_priv') == 'Y', 'db': row['Db']})
    for row in client.query_dicts('SELECT User, Host, Table_name, Table_priv FROM mysql.tables_priv '  # nosec B608
                                  'WHERE Db = %s' % lit):
        values = _set_values(row['Table_priv'])
        privileges = [SET_PRIVILEGE_NAMES.get(v, v.upper()) for v in values if v != 'Grant']
        if privileges or 'Grant' in values:
            grants['tables'].append({'user': row['User'], 'host': row['Host'], 'table': row['Table_name'],
                                     'privileges': privileges, 'grantable': 'Grant' in values})
    for row in client.query_dicts('SELECT User, Host, Table_name, Column_name, Column_priv '  # nosec B608
                                  'FROM mysql.columns_priv WHERE Db = %s' % lit):
        grants['columns'].append({'user': row['User'], 'host': row['Host'], 'table': row['Table_name'],
                                  'column': row['Column_name'],
                                  'privileges': [v.upper() for v in _set_values(row['Column_priv'])]})
    for row in client.query_dicts('SELECT User, Host, Routine_name, Routine_type, Proc_priv '  # nosec B608
                                  'FROM mysql.procs_priv WHERE Db = %s' % lit):
        values = _set_values(row['Proc_priv'])
        grants['routines'].append({'user': row['User'], 'host': row['Host'], 'routine': row['Routine_name'],
                                   'type': row['Routine_type'],
                                   'privileges': [v.upper() for v in values if v != 'Grant'],
                                   'grantable': 'Grant' in values})
    return grants


def _backticked(name: str) -> str:
    """An account part in backticks (its meaning is the same under every sql_mode; user names hold up to 128
    characters and host names 255, more than ``quote_identifier`` takes for databases and tables)."""
    if '\x00' in name:
        raise OpsReadyError('The account name %r holds a NUL character.' % name[:100])
    return '`' + name.replace('`', '``') + '`'


def _account(user: str, host: str, roles: List[str]) -> str:
    """The grantee: a role by its name, a user as `user`@`host`."""
    if host == '' and user in roles:
        return _backticked(user)
    return '%s@%s' % (_backticked(user), _backticked(host) if host else "''")


def column_privileges(grants: Dict[str, Any]) -> List[Tuple[Tuple[str, str, str], List[str]]]:
    """The recorded column privileges per (user, host, table), each as ``PRIVILEGE (`col`, ...)``: the form GRANT
    and REVOKE both take."""
    by_table: Dict[Tuple[str, str, str], Dict[str, List[str]]] = {}
    for item in grants.get('columns') or []:
        per = by_table.setdefault((item['user'], item['host'], item['table']), {})
        for privilege in item['privileges']:
            per.setdefault(privilege, []).append(item['column'])
    return [(key, ['%s (%s)' % (p, ', '.join(quote_identifier(c, 'column name') for c in cols))
                   for p, cols in sorted(per.items())]) for key, per in sorted(by_table.items())]


def grant_statements(grants: Dict[str, Any], target: str, accounts: List[Tuple[str, str]],
                     roles: List[str], source: Optional[str] = None,
                     grantees: Optional[List[str]] = None,
                     loose: bool = False, dry: bool = False) -> Tuple[List[Tuple[str, str]], List[str]]:
    """(what, GRANT statement) for the recorded privileges on database ``target``, and what was left out (why).
    ``accounts``: (user, host) of the target server's accounts; ``roles``: its roles. Restored under the source's
    own name (``source``), a database-level grant names it as the source's did (escaped or not): the same row, so
    a restore over the original changes nothing; under another name, the name escaped (that database only).
    ``grantees``, when given, gets each statement's grantee as information_schema writes a DEFINER (``user@host``,
    a role by its name), in the order of the statements. A name whose escaped form is longer than 64 characters
    cannot be granted that way (the server refuses the name): its database-level grants are left out and named, or,
    ``loose`` (the restore's temporary copy), escaped as far as it fits (``escape_within``). ``dry`` (check mode,
    ``target`` a name no database or privilege row has): statements the server checks as it checks the GRANTs and
    then refuses without changing anything (``DRY_PASSED``): a database-level grant as its REVOKE (MariaDB checks
    the same privileges and GRANT OPTION; no row names the database: ERROR 1141), the others as they are (the
    table or routine does not exist: ERROR 1146, 1305)."""
    existing = set(accounts)
    statements: List[Tuple[str, str]] = []
    skipped: List[str] = []
    qdb = quote_identifier(target, 'database name')

    def add(user: str, host: str, privileges: str, on: str, grantable: bool, what: str,
            database_level: bool = False) -> None:
        who = user if host == '' and user in roles else '%s@%s' % (user, host or "''")
        if (user, host) not in existing:
            skipped.append('%s for %s (no such account on the target server)' % (what, who))
            return
        try:
            grantee = _account(user, host, roles)
        except OpsReadyError as exc:
            skipped.append('%s for %s (%s)' % (what, who, exc.message))
            return
        if dry and database_level:
            statements.append((what + ' for ' + who, 'REVOKE %s%s ON %s FROM %s' % (
                privileges, ', GRANT OPTION' if grantable else '', on, grantee)))
        else:
            statements.append((what + ' for ' + who, 'GRANT %s ON %s TO %s%s' % (
                privileges, on, grantee, ' WITH GRANT OPTION' if grantable else '')))
        if grantees is not None:
            grantees.append(user if host == '' and user in roles else '%s@%s' % (user, host))

    for item in grants.get('database') or []:
        if item['privileges'] or item['grantable']:
            privileges = ', '.join(item['privileges']) or 'USAGE'
            named = item.get('db') if target == source and item.get('db') else escape_pattern(target)
            if len(named) > NAME_LIMIT and loose:
                named = escape_within(target)
            elif len(named) > NAME_LIMIT:
                skipped.append('%s on the database for %s (not granted: the name with its _ and %% escaped, as a '
                               'database-level GRANT needs to name this database only, is longer than 64 characters; '
                               'grant it by hand: GRANT ... ON %s.* would match other databases too)'
                               % (privileges, item['user'] if item['host'] == '' and item['user'] in roles
                                  else '%s@%s' % (item['user'], item['host'] or "''"), qdb))
                continue
            add(item['user'], item['host'], privileges, quote_identifier(named, 'database name') + '.*',
                item['grantable'], '%s on the database' % privileges, database_level=True)
    for item in grants.get('tables') or []:
        privileges = ', '.join(item['privileges']) or 'USAGE'
        add(item['user'], item['host'], privileges, '%s.%s' % (qdb, quote_identifier(item['table'], 'table name')),
            item['grantable'], '%s on table %s' % (privileges, item['table']))
    for (user, host, table), per in column_privileges(grants):
        privileges = ', '.join(per)
        add(user, host, privileges, '%s.%s' % (qdb, quote_identifier(table, 'table name')), False,
            'column privileges on table %s' % table)
    for item in grants.get('routines') or []:
        if item['type'] not in ROUTINE_TYPES:
            skipped.append('privileges on %s %s (not restored)' % (item['type'], item['routine']))
            continue
        privileges = ', '.join(item['privileges']) or 'USAGE'
        add(item['user'], item['host'], privileges, '%s %s.%s' % (item['type'], qdb, quote_identifier(
            item['routine'], 'routine name')), item['grantable'], '%s on %s %s' % (
                privileges, item['type'].lower(), item['routine']))
        if item['type'].startswith('PACKAGE') and statements and statements[-1][1].startswith('GRANT '):
            statements[-1] = (statements[-1][0], ORACLE_MODE + statements[-1][1])
    return statements, skipped


# What a ``dry`` statement of ``grant_statements`` ends with when the server's privilege check let it through: no
# such grant (the database-level REVOKE), no such table, no such routine. Any other error is the check's refusal.
DRY_PASSED = re.compile(r'ERROR (?:1141|1146|1305) ')


def server_roles(client: Any) -> List[str]:
    """The server's roles (a role is granted to and revoked from by its name alone)."""
    try:
        return [r[0] for r in client.query("SELECT User FROM mysql.user WHERE Host = '' AND is_role = 'Y'") if r]
    except ToolError:   # MySQL: roles are accounts with a host, no is_role column
        return []


def all_privileges(client: Any) -> Dict[str, List[str]]:
    """What ALL PRIVILEGES is on this server at the database, table and routine levels, as ``read_grants`` names
    each privilege (the privilege tables' columns and SET values, GRANT OPTION apart); empty where unreadable."""
    try:
        rows = client.query("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                            "WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME IN ('db', 'tables_priv', 'procs_priv') "
                            "ORDER BY ORDINAL_POSITION")
    except ToolError:
        return {}
    found: Dict[str, List[str]] = {}
    for table, column, column_type in (r for r in rows if len(r) == 3):
        if table == 'db' and column.endswith('_priv') and column != 'Grant_priv':
            found.setdefault('database', []).append(
                DB_PRIVILEGE_NAMES.get(column, column[:-len('_priv')].replace('_', ' ').upper()))
        elif (table, column) in (('tables_priv', 'Table_priv'), ('procs_priv', 'Proc_priv')):
            values = re.findall(r"'((?:[^']|'')*)'", column_type)
            found['tables' if table == 'tables_priv' else 'routines'] = [
                SET_PRIVILEGE_NAMES.get(v, v.upper()) for v in values if v != 'Grant']
    return found


def apply_grants(client: Any, grants: Optional[Dict[str, Any]], target: str,
                 source: Optional[str] = None, loose: bool = False) -> Dict[str, Any]:
    """Give the restored database ``target`` the recorded privileges: one GRANT at a time (GRANT adds to what an
    account has, so running one again changes nothing); one the server refuses is reported, not fatal (the data
    is in place by then). ``refused``: each refused one as ``{'account', 'what', 'error'}`` (``account`` as
    information_schema writes a DEFINER)."""
    if grants is None:
        return {'restored': False, 'reason': 'the backup predates the recording of the grants naming the database'}
    if not any(grants.get(kind) for kind in ('database', 'tables', 'columns', 'routines')):
        return {'restored': True, 'applied': [], 'skipped': []}
    try:
        accounts = [(r[0], r[1]) for r in client.query('SELECT User, Host FROM mysql.user') if len(r) == 2]
    except ToolError as exc:   # the restore's login may not read the privilege tables: the data is in place
        return {'restored': False, 'reason': 'the accounts of the target server could not be read (%s): grant the '
                                             'restore user SELECT ON mysql.* and GRANT OPTION to restore the '
                                             'grants naming the database' % exc.message,
                'applied': [], 'skipped': []}
    grantees: List[str] = []
    statements, skipped = grant_statements(grants, target, accounts, server_roles(client), source, grantees, loose)
    applied: List[str] = []
    refused: List[Dict[str, str]] = []
    for (what, sql), grantee in zip(statements, grantees):
        try:
            client.query(sql)
            applied.append(what)
        except ToolError as exc:
            skipped.append('%s (the server refused it: %s)' % (what, exc.message))
            refused.append({'account': grantee, 'what': what, 'error': exc.message})
    result: Dict[str, Any] = {'restored': True, 'applied': applied, 'skipped': skipped}
    if refused:
        result['refused'] = refused
    return result


def revoke_statements(grants: Dict[str, Any], database: str, roles: List[str]) -> List[Tuple[str, str]]:
    """(what, REVOKE statement) taking back every privilege ``read_grants`` found naming ``database``, each one
    named (MariaDB has no ``REVOKE ALL ... ON`` an object that also takes GRANT OPTION); database-level rows as
    they are stored (escaped or not)."""
    qdb = quote_identifier(database, 'database name')
    statements: List[Tuple[str, str]] = []

    def add(user: str, host: str, privileges: List[str], grantable: bool, on: str, what: str) -> None:
        named = privileges + (['GRANT OPTION'] if grantable else [])
        if named:
            who = user if host == '' and user in roles else '%s@%s' % (user, host or "''")
            statements.append(('%s for %s' % (what, who), 'REVOKE %s ON %s FROM %s' % (
                ', '.join(named), on, _account(user, host, roles))))

    for item in grants.get('database') or []:
        add(item['user'], item['host'], item['privileges'], item['grantable'],
            quote_identifier(item['db'], 'database name') + '.*', 'privileges on the database')
    # columns before their tables: a privilege revoked on a table is taken from its columns too, and the column's
    # own REVOKE after it would be refused (ERROR 1147, no such grant)
    for (user, host, table), per in column_privileges(grants):
        add(user, host, per, False,
            '%s.%s' % (qdb, quote_identifier(table, 'table name')), 'column privileges on table %s' % table)
    for item in grants.get('tables') or []:
        add(item['user'], item['host'], item['privileges'], item['grantable'],
            '%s.%s' % (qdb, quote_identifier(item['table'], 'table name')), 'privileges on table %s' % item['table'])
    for item in grants.get('routines') or []:
        if item['type'] in ROUTINE_TYPES:
            add(item['user'], item['host'], item['privileges'], item['grantable'], '%s %s.%s' % (
                item['type'], qdb, quote_identifier(item['routine'], 'routine name')),
                'privileges on %s %s' % (item['type'].lower(), item['routine']))
    return statements


def revoke_grants(client: Any, database: str, check_mode: bool = False) -> Dict[str, Any]:
    """Take back the privileges naming ``database`` exactly (not patterns that merely match it: ``app%``), for
    ``state: absent``: DROP DATABASE leaves them in the privilege tables, and a database created later under the
    name would be open to every account they name. ``{'revoked': [...], 'warnings': [...]}``."""
    try:
        grants = read_grants(client, database)
    except ToolError as exc:
        return {'revoked': [], 'warnings': ['The privileges naming database %s could not be read (%s): revoke them '
                                            'by hand, or grant the login SELECT ON mysql.*.'
                                            % (database, exc.message)]}
    if not any(grants.get(kind) for kind in ('database', 'tables', 'columns', 'routines')):
        return {'revoked': [], 'warnings': []}
    statements = revoke_statements(grants, database, server_roles(client))
    revoked: List[str] = []
    warnings: List[str] = []
    for what, sql in statements:
        if check_mode:
            revoked.append(what)
            continue
        try:
            client.query(sql)
            revoked.append(what)
        except ToolError as exc:
            warnings.append('%s on the dropped database %s stayed (the server refused to revoke it: %s); revoke it '
                            'by hand.' % (what, database, exc.message))
    if not check_mode and not warnings:
        # what no statement covers (privileges on an Oracle-mode PACKAGE) must not pass for revoked
        left = read_grants(client, database)
        count = sum(len(left.get(kind) or []) for kind in ('database', 'tables', 'columns', 'routines'))
        if count:
            warnings.append('%d privilege row(s) naming the dropped database %s stayed after the revokes (see '
                            'mysql.db, tables_priv, columns_priv, procs_priv): revoke them by hand.'
                            % (count, database))
    return {'revoked': revoked, 'warnings': warnings}
