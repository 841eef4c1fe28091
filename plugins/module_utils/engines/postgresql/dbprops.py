# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL database-level properties: read at backup time, put back at restore time.

pg_dump keeps the database's owner, ACL, comment, ``ALTER DATABASE ... SET`` and ``ALTER ROLE ... IN
DATABASE ... SET`` only in the entries it writes for ``--create``, which name the database: a restore
under another name (or into the temporary database the restore swaps in) cannot use them. So they are
read from the catalogs when the dump starts, stored in the manifest (``database_properties``) as data,
not SQL, and turned into statements for whatever name the restore targets, quoted by ``pg_quote``.

The same read records the roles the database refers to (owners, grantees, policy roles, from
``pg_shdepend``), so a restore can name the missing ones before it loads anything.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (
    CATALOG_SEARCH_PATH, UTF8_SCRIPT)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.foreign import INLINE_DBLINK_SQL
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    quote_ident, quote_literal)

# The functions called by what the load computes (a CHECK constraint of a table or domain, a default or generated
# column, an index expression or predicate, a materialized view's query) whose body is parsed only when called
# (LANGUAGE sql without BEGIN ATOMIC, plpgsql), that have no SET search_path of their own, and whose body names one of
# the database's own relations (after FROM, JOIN, INTO, UPDATE, TABLE, ONLY, or as a whole string literal: a regclass),
# functions (called) or types (cast to) without a schema and a dot before it (not pg_catalog's, not an extension's
# member: pg_catalog is always searched; extensions are left out to keep the check cheap and quiet). The load runs
# with an empty search_path: such a call fails there, though it works in the source. A JSON array of regprocedure
# texts (schema-qualified: the reading session's search_path is pg_catalog); the regular expressions are
# case-insensitive (unquoted names fold).
UNQUALIFIED_SQL = r"""
SELECT coalesce(json_agg(f.oid::regprocedure::text ORDER BY f.oid::regprocedure::text), '[]'::json)
FROM pg_proc f JOIN pg_language l ON l.oid = f.prolang
WHERE l.lanname IN ('sql', 'plpgsql') AND f.prosqlbody IS NULL
  AND NOT EXISTS (SELECT 1 FROM unnest(f.proconfig) c WHERE c LIKE 'search\_path=%')
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = f.oid
                  AND e.deptype = 'e')
  AND f.oid IN (SELECT dep.refobjid FROM pg_depend dep
                WHERE dep.refclassid = 'pg_proc'::regclass AND dep.deptype = 'n'
                  AND (dep.classid IN ('pg_constraint'::regclass, 'pg_attrdef'::regclass)
                       OR (dep.classid = 'pg_class'::regclass
                           AND (SELECT c.relkind FROM pg_class c WHERE c.oid = dep.objid) IN ('i', 'I'))
                       OR (dep.classid = 'pg_rewrite'::regclass
                           AND (SELECT c.relkind FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class
                                WHERE w.oid = dep.objid) = 'm')))
  AND EXISTS (
    SELECT 1 FROM (
      SELECT c.relname::text AS name, c.relnamespace AS ns, c.oid AS oid, 'pg_class'::regclass AS cls,
             -- after FROM/JOIN/INTO/UPDATE/TABLE/ONLY, or a whole string literal ('name'::regclass, nextval('name'))
             '((from|join|into|update|table|only)\s+"?{name}"?($|[^\w".])|''"?{name}"?'')' AS pat
      FROM pg_class c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      -- called: the name and an opening parenthesis
      UNION ALL SELECT p.proname::text, p.pronamespace, p.oid, 'pg_proc'::regclass, '(^|[^.\w"])"?{name}"?\s*\('
      FROM pg_proc p
      -- cast to: ::name
      UNION ALL SELECT t.typname::text, t.typnamespace, t.oid, 'pg_type'::regclass, '::\s*"?{name}"?($|[^\w".])'
      FROM pg_type t
      WHERE t.typtype IN ('c', 'd', 'e', 'r', 'm') AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c
                                                                        WHERE c.oid = t.typrelid) = 'c')
    ) o JOIN pg_namespace n ON n.oid = o.ns
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = o.cls AND e.objid = o.oid AND e.deptype = 'e')
      AND f.prosrc ~* replace(o.pat, '{name}', regexp_replace(o.name, '(\W)', '\\\1', 'g')))
"""

# Extension members (functions, relations, types) with what a user may have changed after CREATE EXTENSION and
# pg_dump does not carry (it writes CREATE EXTENSION and the members' privileges only): an owner other than the
# extension's, settings (ALTER FUNCTION ... SET), a comment, a relation's column comments (``columns``, with its
# ``relkind``, which says which statement sets them), and a plain function's attributes (``attrs``: the
# ALTER FUNCTION clauses of its volatility, strictness, security, leakproofness, parallel safety, cost and rows,
# always recorded: what the extension script gave them is not known here). The backup records the members with any
# of these (every plain function); the restore reads every member of its copy (``EXTENSION_MEMBERS_ALL_SQL``, with
# ``role``, the member's actual owner), sets them again where it can (``extension_member_statements``) and names
# what did not come back. ``config`` is the settings as one text (compared), ``settings`` the list (set);
# ``extension``, the extension's name (check mode foresees whose the copy's member will be: ``extension_foresight``).
# A JSON array.
_EXTENSION_MEMBERS = r"""
SELECT coalesce(json_agg(json_build_object('object', m.kind || ' ' || m.ident, 'owner',
                                           CASE WHEN m.owner <> e.extowner THEN pg_get_userbyid(m.owner) END,
                                           'role', pg_get_userbyid(m.owner),
                                           'config', m.config, 'settings', m.settings, 'comment', m.comment,
                                           'attrs', m.attrs, 'relkind', m.relkind, 'columns', m.columns,
                                           'extension', e.extname)
                         ORDER BY m.kind, m.ident), '[]'::json)
FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
JOIN (SELECT 'pg_proc'::regclass AS cls, p.oid, 'function' AS kind, p.oid::regprocedure::text AS ident,
             p.proowner AS owner, array_to_string(p.proconfig, ', ') AS config, to_json(p.proconfig) AS settings,
             obj_description(p.oid, 'pg_proc') AS comment,
             CASE WHEN p.prokind = 'f' THEN json_build_array(
               CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END,
               CASE WHEN p.proisstrict THEN 'STRICT' ELSE 'CALLED ON NULL INPUT' END,
               CASE WHEN p.prosecdef THEN 'SECURITY DEFINER' ELSE 'SECURITY INVOKER' END,
               CASE WHEN p.proleakproof THEN 'LEAKPROOF' ELSE 'NOT LEAKPROOF' END,
               'PARALLEL ' || CASE p.proparallel WHEN 's' THEN 'SAFE' WHEN 'r' THEN 'RESTRICTED' ELSE 'UNSAFE' END,
               'COST ' || p.procost::text, CASE WHEN p.proretset THEN 'ROWS ' || p.prorows::text END) END AS attrs,
             NULL::text AS relkind, NULL::json AS columns
      FROM pg_proc p
      UNION ALL SELECT 'pg_class'::regclass, c.oid, 'relation', c.oid::regclass::text, c.relowner, NULL, NULL,
             obj_description(c.oid, 'pg_class'), NULL, c.relkind::text,
             (SELECT json_object_agg(a.attname, col_description(c.oid, a.attnum) ORDER BY a.attnum)
              FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                AND col_description(c.oid, a.attnum) IS NOT NULL)
      FROM pg_class c
      UNION ALL SELECT 'pg_type'::regclass, t.oid, 'type', t.oid::regtype::text, t.typowner, NULL, NULL,
             obj_description(t.oid, 'pg_type'), NULL, NULL, NULL
      FROM pg_type t WHERE t.typrelid = 0 AND t.typelem = 0
      -- a procedural language (plpgsql's, in every database): ALTER LANGUAGE ... OWNER TO, COMMENT ON LANGUAGE
      UNION ALL SELECT 'pg_language'::regclass, l.oid, 'language', quote_ident(l.lanname), l.lanowner, NULL, NULL,
             obj_description(l.oid, 'pg_language'), NULL, NULL, NULL
      FROM pg_language l) m ON m.cls = d.classid AND m.oid = d.objid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
"""
EXTENSION_MEMBERS_SQL = _EXTENSION_MEMBERS.rstrip() + (
    # Every member of an extension of the database's own, also one with nothing set: a comment (or a relation's column
    # comment) the extension script sets and a user removed is the absence of one, which the restore must see recorded
    # to remove the script's again. plpgsql (initdb's, in every database) only when something of a member changed, so
    # that a database without extensions of its own records no member and its restore reads none back.
    # plpgsql's language has a comment of its own from the start (its control file's, which its script sets): it is
    # recorded when a user changed or removed it.
    "\n  AND (e.extname <> 'plpgsql' OR m.owner <> e.extowner OR m.config IS NOT NULL OR m.columns IS NOT NULL\n"  # nosec B608 # constants
    "       OR (m.kind <> 'language' AND m.comment IS NOT NULL)\n"
    "       OR (m.kind = 'language' AND m.comment IS DISTINCT FROM (SELECT a.comment FROM pg_available_extensions a\n"
    "                                                              WHERE a.name = e.extname)))\n")
EXTENSION_MEMBERS_ALL_SQL = _EXTENSION_MEMBERS

# One row, one JSON document, from the database being dumped (current_database()).
_PROPERTIES = """
SELECT json_build_object(
  'name', d.datname,
  'owner', pg_get_userbyid(d.datdba),
  'encoding', pg_encoding_to_char(d.encoding),
  'collate', d.datcollate,
  'ctype', d.datctype,
  'connection_limit', d.datconnlimit,
  'is_template', d.datistemplate,
  'tablespace', (SELECT t.spcname FROM pg_tablespace t WHERE t.oid = d.dattablespace),
  -- the tablespaces tables, indexes and materialized views name themselves (CREATE TABLE ... TABLESPACE x): pg_dump
  -- writes SET default_tablespace = x before them, which fails the load on a server without x
  'object_tablespaces', (SELECT coalesce(json_object_agg(x.spcname, json_build_object(
                             'count', x.n, 'relations', x.rels)), '{}'::json) FROM (
      SELECT t.spcname, count(*) AS n,
             (array_agg(c.oid::regclass::text ORDER BY c.oid::regclass::text))[1:10] AS rels
      FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I') AND t.spcname NOT IN ('pg_default', 'pg_global')
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
      GROUP BY t.spcname) x),
  -- locale provider columns differ by version (15: datlocprovider/daticulocale, 16: daticurules,
  -- 17: datlocale): taken from the row as JSON so one query serves every version.
  'locale_provider', (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(to_jsonb(d)) e
                      WHERE e.key IN ('datlocprovider', 'daticulocale', 'datlocale', 'daticurules')),
  'comment', shobj_description(d.oid, 'pg_database'),
  -- what a session in this database computes with (its ALTER DATABASE ... SET, else the server's): the restore
  -- recomputes materialized views, and must do it under the same
  'session', json_build_object('TimeZone', current_setting('TimeZone'), 'DateStyle', current_setting('DateStyle'),
                               'IntervalStyle', current_setting('IntervalStyle'),
                               'extra_float_digits', current_setting('extra_float_digits'),
                               'default_text_search_config', current_setting('default_text_search_config')),
  -- pg_dump writes CREATE EXTENSION without VERSION: the restore makes those at another version than the default
  -- the comment, and whether it is not its control file's: pg_dump writes none for a built-in one (plpgsql:
  -- BUILT_IN_EXTENSIONS), whose comment a user may have changed or removed
  'extensions', (SELECT coalesce(json_agg(json_build_object(
                   'name', e.extname, 'version', e.extversion, 'schema', n.nspname,
                   'owner', pg_get_userbyid(e.extowner), 'comment', obj_description(e.oid, 'pg_extension'),
                   'comment_changed', obj_description(e.oid, 'pg_extension') IS DISTINCT FROM (
                     SELECT a.comment FROM pg_available_extensions a WHERE a.name = e.extname)) ORDER BY e.oid),
                          '[]'::json)
                 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace),
  -- pg_dump writes nothing for a dropped public schema, and the restore's CREATE DATABASE makes one
  'public_schema', EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public'),
  -- in the ACL's own order (the restore grants in this order, and GRANT appends a new grantee's entry at the end):
  -- the copy's datacl reads the same, entry for entry, whatever OIDs the roles have where it is restored
  'acl', CASE WHEN d.datacl IS NULL THEN NULL ELSE (
      SELECT coalesce(json_agg(json_build_object(
               'grantor', pg_get_userbyid(a.grantor),
               'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
               'privilege', a.privilege_type,
               'grantable', a.is_grantable)
             ORDER BY a.n), '[]'::json)
      FROM aclexplode(d.datacl) WITH ORDINALITY a(grantor, grantee, privilege_type, is_grantable, n)) END,
  'settings', (SELECT coalesce(json_agg(json_build_object(
                 'role', CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END,
                 'config', s.setconfig) ORDER BY s.setrole), '[]'::json)
               FROM pg_db_role_setting s WHERE s.setdatabase = d.oid),
  -- not a property (db_backup takes it out of the manifest's properties): the functions pg_dump's load calls with an
  -- empty search_path (CHECK constraints, defaults and generated columns, index expressions, materialized views)
  -- whose body names one of the database's own objects without its schema (UNQUALIFIED_SQL)
  'unqualified_functions', (@UNQUALIFIED_SQL@),
  'extension_members', (@EXTENSION_MEMBERS_SQL@),
  -- what a restored copy reaches (foreign servers, subscriptions, dblink calls with an inline connection string): the
  -- restore names them from the copy; check mode, which has no copy, from here (foreign.reach_foreseen)
  'reaches', json_build_object(
      'servers', (SELECT coalesce(json_agg(s.srvname ORDER BY s.srvname), '[]'::json) FROM pg_foreign_server s),
      'subscriptions', (SELECT coalesce(json_agg(s.subname ORDER BY s.subname), '[]'::json) FROM pg_subscription s
                        WHERE s.subdbid = d.oid),
      'inline_dblink', CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'dblink') THEN (
          SELECT coalesce(json_agg(x.kind || ' ' || x.name ORDER BY x.name), '[]'::json)
          FROM (@INLINE_DBLINK_SQL@) x(kind, name)) ELSE '[]'::json END),
  -- SQL_ASCII: the comment's and settings' bytes as stored (hex), which the text above cannot carry when they are
  -- not UTF-8 (a legacy LATIN1 0xE9 reads as U+FFFD); read_properties keeps them only then (RAW_KEY)
  'sql_ascii_bytes', CASE WHEN d.encoding = pg_char_to_encoding('SQL_ASCII') THEN json_build_object(
      'comment', encode(convert_to(shobj_description(d.oid, 'pg_database'), 'SQL_ASCII'), 'hex'),
      'settings', (SELECT coalesce(json_agg(json_build_object(
                     'role', CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END,
                     'config', (SELECT json_agg(encode(convert_to(c, 'SQL_ASCII'), 'hex') ORDER BY i)
                                FROM unnest(s.setconfig) WITH ORDINALITY x(c, i))) ORDER BY s.setrole), '[]'::json)
                   FROM pg_db_role_setting s WHERE s.setdatabase = d.oid)) END,
  'roles', (SELECT coalesce(json_object_agg(r.rolname, r.kinds), '{}'::json) FROM (
               SELECT a.rolname, string_agg(DISTINCT sd.deptype::text, '' ORDER BY sd.deptype::text) AS kinds
               FROM pg_shdepend sd JOIN pg_roles a ON a.oid = sd.refobjid
               WHERE sd.dbid = d.oid AND sd.refclassid = 'pg_authid'::regclass
               GROUP BY a.rolname) r)
)
FROM pg_database d WHERE d.datname = current_database()
"""
PROPERTIES_SQL = _PROPERTIES.replace('@UNQUALIFIED_SQL@', UNQUALIFIED_SQL.strip()).replace(  # nosec B608 # constants
    '@EXTENSION_MEMBERS_SQL@', EXTENSION_MEMBERS_SQL.strip()).replace('@INLINE_DBLINK_SQL@', INLINE_DBLINK_SQL.strip())

# pg_shdepend deptypes: o = owner, a = ACL (GRANT), r = policy (CREATE POLICY ... TO), i = initial
# privileges of an extension object (recreated by the extension itself).
NEEDED_WITH_OWNERS = ('o', 'a', 'r')
NEEDED_WITHOUT_OWNERS = ('r',)

# Settings whose value is a list of quoted names; pg_dump splits them the same way (variable_is_guc_list_quote).
LIST_QUOTE = ('local_preload_libraries', 'search_path', 'session_preload_libraries', 'shared_preload_libraries',
              'temp_tablespaces', 'unix_socket_directories')

PRIVILEGES = {'CREATE': 'CREATE', 'TEMPORARY': 'TEMPORARY', 'CONNECT': 'CONNECT'}

# Session settings pg_dump's output depends on that pg_dump itself leaves to the database (it pins DateStyle,
# IntervalStyle, extra_float_digits, search_path, client_encoding...): money is written and read in the session's
# lc_monetary format ("1.234,56 €" under de_DE), so a dump taken under a database's (or server's) own lc_monetary is
# misread or refused by a load under another one. db_backup runs pg_dump with these (PGOPTIONS wins over ALTER
# DATABASE ... SET) and records them in the manifest (``dumped_with``); db_restore loads with the same. 'C' exists on
# every server and keeps every digit of the stored amount.
DUMP_SETTINGS = {'lc_monetary': 'C'}

# Settings that change how the dump's data reads which neither pg_dump's output nor pg_restore pins, set for every
# load whatever the manifest: array_nulls=off (a target server's postgresql.conf) reads an array's NULL element as the
# string 'NULL' (text[]) or refuses it (int[]); pg_dump writes NULL elements unquoted.
LOAD_SETTINGS = {'array_nulls': 'on'}

# Locale settings that change what the load computes (to_char's group/decimal separators, month and day names in a
# materialized view) but not how the dump's data reads. The load uses them only when the database sets them itself
# (ALTER DATABASE ... SET, applied after the load anyway, so the target server must have the locale): a
# server-wide value of the source (postgresql.conf) may name a locale the target lacks.
DATABASE_LOCALE_SETTINGS = ('lc_numeric', 'lc_time')


def read_properties(engine: Any, database: str) -> Dict[str, Any]:
    """The properties of ``database`` as recorded in a manifest (``engine`` is a PostgresEngine)."""
    # In UTF-8 (UTF8_SCRIPT): the comment and setting values are text in the database's encoding.
    rows = engine.client.query_script(UTF8_SCRIPT + CATALOG_SEARCH_PATH + PROPERTIES_SQL + ';\n', database=database)
    if not rows or not rows[0]:
        return {}
    props: Dict[str, Any] = json.loads('\t'.join(rows[0]))
    raw = props.pop('sql_ascii_bytes', None)
    if raw and not all(_utf8(h) for h in [raw.get('comment')] + [c for e in raw.get('settings') or []
                                                                 for c in e.get('config') or []]):
        props[RAW_KEY] = raw
    return props


# The manifest's record of a SQL_ASCII database's comment and settings as bytes (hex), present when some are not
# UTF-8: the text fields then hold U+FFFD where those bytes were (for reading), and the restore writes the bytes.
RAW_KEY = 'sql_ascii_bytes'


def _utf8(hexed: Optional[str]) -> bool:
    if not hexed:
        return True
    try:
        bytes.fromhex(hexed).decode('utf-8')
    except ValueError:   # UnicodeDecodeError is one
        return False
    return True


def _raw_literal(hexed: str) -> str:
    """An SQL expression of text with these bytes, in a SQL_ASCII database (no conversion there, no check but for
    zero bytes); an ASCII statement whatever the bytes."""
    return "convert_from(decode(%s, 'hex'), 'SQL_ASCII')" % quote_literal(hexed)


def _dollar_quoted(body: str) -> str:
    tag = '$opsready$'
    while tag in body:
        tag = tag[:-1] + '_$'
    return tag + body + tag


def raw_statement(template: str, *args: str) -> str:
    """``DO`` running ``format(template, args...)``: a statement that needs a literal (COMMENT, ALTER ... SET) with
    bytes no literal of an ASCII script can hold. Run in the SQL_ASCII database itself (elsewhere convert_from checks
    the bytes against that database's encoding and refuses them)."""
    return 'DO %s' % _dollar_quoted('BEGIN EXECUTE format(%s, %s); END' % (quote_literal(template), ', '.join(args)))


# How a raw (DO) statement and a raw comment start: the restore writes those from a session in the database, and the
# comment apart from the other properties (at the swap).
RAW_PREFIX = 'DO $opsready'
_RAW_COMMENT = re.compile(r"^DO \$opsready_*\$BEGIN EXECUTE format\(E?'COMMENT ON DATABASE ")


def is_comment(sql: str) -> bool:
    """Whether ``sql`` (of ``apply_statements``) sets the database's comment."""
    return sql.startswith('COMMENT ON DATABASE ') or bool(_RAW_COMMENT.match(sql))


def _raw_config(raw: Dict[str, Any], role: Optional[str], index: int, config: str) -> Optional[List[str]]:
    """The recorded bytes (hex) of setting ``index`` of ``role`` when they are not UTF-8 (else None: the text is
    exact): one value, or for a list of names (``LIST_QUOTE``: a schema of search_path whose name holds a legacy
    LATIN1 byte) each name of the list, split as pg_dump splits it."""
    for entry in raw.get('settings') or []:
        if entry.get('role') == role:
            configs = entry.get('config') or []
            if index < len(configs) and not _utf8(configs[index]):
                value = bytes.fromhex(configs[index]).partition(b'=')[2]
                if config.partition('=')[0].lower() in LIST_QUOTE:
                    # latin-1 maps each byte to one character and back: the split sees the bytes as they are
                    return [v.encode('latin-1').hex() for v in split_list_setting(value.decode('latin-1'))]
                return [value.hex()]
    return None


def _raw_set(config: str, values: List[str]) -> Tuple[str, List[str]]:
    """``SET %I TO %L, ...`` and its arguments (for ``raw_statement``): one literal per value of the list."""
    placeholders = ', '.join(['%L'] * len(values)) if values else "''"
    return 'SET %I TO ' + placeholders, [quote_literal(config.partition('=')[0])] + [_raw_literal(v) for v in values]


def referenced_roles(props: Dict[str, Any], no_owner: bool) -> Dict[str, List[str]]:
    """Role -> what needs it, for the roles a restore must find on the target server."""
    needed: Dict[str, List[str]] = {}

    def need(role: Optional[str], why: str) -> None:
        if role:
            needed.setdefault(role, [])
            if why not in needed[role]:
                needed[role].append(why)

    kinds = NEEDED_WITHOUT_OWNERS if no_owner else NEEDED_WITH_OWNERS
    names = {'o': 'owns objects', 'a': 'is granted privileges', 'r': 'is named in a row-level security policy'}
    for role, deptypes in sorted((props.get('roles') or {}).items()):
        for kind in deptypes:
            if kind in kinds:
                need(role, names[kind])
    if not no_owner:
        need(props.get('owner'), 'owns the database')
        for item in props.get('acl') or []:
            need(item.get('grantee'), 'is granted privileges on the database')
            need(item.get('grantor'), 'granted privileges on the database')
    return needed


def split_list_setting(value: str) -> List[str]:
    """``"$user", public, "My Schema"`` -> ['$user', 'public', 'My Schema'] (pg_dump's SplitGUCList)."""
    items: List[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i].isspace():
            i += 1
        if i >= n:
            break
        if value[i] == '"':
            i += 1
            buf = []
            while i < n:
                if value[i] == '"':
                    if i + 1 < n and value[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(value[i])
                i += 1
            items.append(''.join(buf))
            while i < n and value[i] != ',':
                i += 1
        else:
            start = i
            while i < n and value[i] != ',':
                i += 1
            items.append(value[start:i].strip())
        i += 1  # the comma
    return items


def set_clause(config: str) -> str:
    """``name=value`` from pg_db_role_setting -> ``SET "name" TO <value>``, as pg_dump writes it."""
    name, _sep, value = config.partition('=')
    if name.lower() in LIST_QUOTE:
        values = split_list_setting(value)
        rendered = ', '.join(quote_literal(v) for v in values) if values else "''"
    else:
        rendered = quote_literal(value)
    return 'SET %s TO %s' % (quote_ident(name), rendered)


def _database_setting(props: Dict[str, Any], name: str) -> Optional[str]:
    """The value ``ALTER DATABASE ... SET name`` gave the database (for every role), if any."""
    for entry in props.get('settings') or []:
        if entry.get('role') is None:
            for config in entry.get('config') or []:
                key, _sep, value = config.partition('=')
                if key.lower() == name:
                    return value
    return None


LOCALE_SETTINGS = ('lc_messages', 'lc_monetary', 'lc_numeric', 'lc_time')


def locale_settings(props: Dict[str, Any]) -> List[Tuple[str, str]]:
    """(setting, locale) of the database's and its roles' ``... SET lc_*``: the target server must have those
    locales, or ``ALTER DATABASE/ROLE ... SET`` (and a load using them) fails."""
    found: List[Tuple[str, str]] = []
    for entry in props.get('settings') or []:
        for config in entry.get('config') or []:
            key, _sep, value = config.partition('=')
            if key.lower() in LOCALE_SETTINGS and (key.lower(), value) not in found:
                found.append((key.lower(), value))
    return found


def load_options(props: Dict[str, Any], dumped_with: Optional[Dict[str, Any]] = None) -> str:
    """``PGOPTIONS`` for the sessions that load the dump: the output settings a session in the backed-up database had
    (``session``, recorded at backup time). ``REFRESH MATERIALIZED VIEW`` runs during the load and computes with
    them (``date_trunc`` of a timestamptz, a timestamp or interval cast to text): the restore's own database has no
    settings yet, so without these it would use the restoring server's defaults and the view would differ from
    the source's. pg_dump pins what its data needs (search_path, DateStyle of its output...) itself, and the data
    it writes reads the same under any of these. Manifests without ``session``: nothing (as before).

    ``dumped_with`` (the manifest's record of what db_backup pinned for pg_dump, ``DUMP_SETTINGS``): the load reads
    the data under the same. The database's own ``lc_numeric``/``lc_time`` (``DATABASE_LOCALE_SETTINGS``) too, and
    ``LOAD_SETTINGS`` always."""
    settings = dict(props.get('session') or {})
    for name in DATABASE_LOCALE_SETTINGS:
        value = _database_setting(props, name)
        if value is not None:
            settings[name] = value
    settings.update(dumped_with or {})
    settings.update(LOAD_SETTINGS)
    options = []
    for name, value in sorted(settings.items()):
        if value is None:
            continue
        if name == 'default_text_search_config' and not str(value).startswith('pg_catalog.'):
            # A configuration of the database's own does not exist yet when the load connects (the server refuses
            # the connection): only the built-in ones, which every server has.
            continue
        # libpq splits PGOPTIONS at white space; a backslash keeps the next character (a space, a backslash).
        escaped = str(value).replace('\\', '\\\\').replace(' ', '\\ ')
        options.append('-c %s=%s' % (name, escaped))
    return ' '.join(options)


def own_text_search_option(props: Dict[str, Any]) -> str:
    """``-c default_text_search_config=...`` when the backed-up database's default is a configuration of its own
    (``load_options`` leaves it out: the server refuses a connection naming one that does not exist yet); else ''.
    The restore loads such a dump in two passes: the schema (which creates the configuration), then the data and
    what is built from it (generated columns, indexes, materialized views) in sessions given this option."""
    value = (props.get('session') or {}).get('default_text_search_config')
    if not value or str(value).startswith('pg_catalog.'):
        return ''
    return '-c default_text_search_config=%s' % str(value).replace('\\', '\\\\').replace(' ', '\\ ')


def before_load_statements(props: Dict[str, Any]) -> List[str]:
    """SQL run inside the new, still empty database before the dump is loaded: what pg_dump cannot express.

    A database whose public schema was dropped: pg_dump has no statement for an absence, and the restore's
    ``CREATE DATABASE`` (from template0) makes a public schema, where unqualified names would then resolve and
    be created. Dropped before the load: afterwards the database's own event triggers (a guard refusing DROPs often
    goes with this hardening) would fire. Manifests from before this was recorded have no ``public_schema``:
    nothing is done."""
    if props.get('public_schema') is False:
        return ['DROP SCHEMA IF EXISTS public RESTRICT']
    return []


# Extensions every database made from template0 has: never created by the restore.
BUILT_IN_EXTENSIONS = ('plpgsql',)


def extension_names(props: Dict[str, Any]) -> List[str]:
    """The recorded extensions the restore may have to create at their version (none for old manifests)."""
    return [e['name'] for e in props.get('extensions') or [] if e.get('name') not in BUILT_IN_EXTENSIONS]


def extension_statements(props: Dict[str, Any],
                         available: Dict[str, Tuple[str, List[str]]]) -> Tuple[List[str], List[str]]:
    """``CREATE EXTENSION ... VERSION`` for the recorded extensions whose version is not the target server's default,
    to run in the new database before the load, and what could not be kept (why).

    pg_dump writes ``CREATE EXTENSION IF NOT EXISTS x WITH SCHEMA s`` without a version, so a restore makes the
    server's default version: an extension the source kept at an older one (its objects, functions, behaviour)
    would come back upgraded. Created first at the recorded version, the dump's statement finds it and does
    nothing. Only in a schema the new database already has (``public``, unless the backup records it dropped, and
    ``pg_catalog``): any other is created by the dump itself, later. ``available``: name -> (default version,
    installable versions) on the target server."""
    statements: List[str] = []
    skipped: List[str] = []
    existing_schemas = {'pg_catalog'} | ({'public'} if props.get('public_schema') is not False else set())
    for ext in props.get('extensions') or []:
        name, version, schema = ext.get('name'), ext.get('version'), ext.get('schema')
        if not name or not version or name in BUILT_IN_EXTENSIONS:
            continue
        default, versions = available.get(name, (None, []))
        if default is None or version == default:
            continue   # not installed here (the load names it), or what the dump's statement makes anyway
        if version not in versions:
            skipped.append('extension %s version %s (not installable on the target server: it is created at its '
                           'default version %s)' % (name, version, default))
        elif schema not in existing_schemas:
            skipped.append('extension %s version %s (it lives in schema %s, which the dump creates: it is created '
                           'at the default version %s)' % (name, version, schema, default))
        else:
            statements.append('CREATE EXTENSION %s WITH SCHEMA %s VERSION %s'
                              % (quote_ident(name), quote_ident(schema), quote_literal(version)))
    return statements, skipped


def extension_owner_statements(props: Dict[str, Any], available: Dict[str, Tuple[str, List[str]]], database: str,
                               login: str, created: Sequence[str]) -> List[Tuple[str, List[str]]]:
    """(extension, statements) creating, before the load, each recorded extension whose owner is not ``login`` (the
    restoring role) as that owner, the way it was made (a trusted extension a database owner created): pg_dump
    writes CREATE EXTENSION without an owner, and there is no ALTER EXTENSION ... OWNER TO afterwards. The owner is
    given CREATE on the database and the schema for the statement only (a fresh database grants neither; the dump's
    own ACLs come later). Each list is one transaction, which the server refuses when the owner cannot create it (an
    untrusted extension, a role the target lacks): the dump's CREATE EXTENSION makes it then, and the restore names
    the owner. Only at a version the target can install, in a schema the new database has (``public``,
    ``pg_catalog``), and not one ``created`` already (``extension_statements``)."""
    out: List[Tuple[str, List[str]]] = []
    existing_schemas = {'pg_catalog'} | ({'public'} if props.get('public_schema') is not False else set())
    for ext in props.get('extensions') or []:
        name, version, schema, owner = ext.get('name'), ext.get('version'), ext.get('schema'), ext.get('owner')
        if not name or not owner or owner == login or name in created or name in BUILT_IN_EXTENSIONS \
                or schema not in existing_schemas or version not in available.get(name, (None, []))[1]:
            continue
        qo, qs, qdb = quote_ident(owner), quote_ident(schema), quote_ident(database)
        grants = ['DATABASE %s' % qdb] + (['SCHEMA %s' % qs] if schema != 'pg_catalog' else [])
        out.append((name, ['GRANT CREATE ON %s TO %s' % (g, qo) for g in grants]
                    + ['SET LOCAL ROLE %s' % qo,
                       'CREATE EXTENSION %s WITH SCHEMA %s VERSION %s'
                       % (quote_ident(name), qs, quote_literal(version)), 'RESET ROLE']
                    + ['REVOKE CREATE ON %s FROM %s' % (g, qo) for g in grants]))
    return out


def create_options(props: Dict[str, Any]) -> str:
    """``ENCODING ... LC_COLLATE ... LC_CTYPE ...`` (and the ICU/builtin provider) of the backed-up database,
    for the ``CREATE DATABASE`` of the restore: the encoding and collation are the database's too."""
    parts: List[str] = []
    if props.get('encoding'):
        parts.append('ENCODING %s' % quote_literal(props['encoding']))
    if props.get('collate'):
        parts.append('LC_COLLATE %s' % quote_literal(props['collate']))
    if props.get('ctype'):
        parts.append('LC_CTYPE %s' % quote_literal(props['ctype']))
    provider = props.get('locale_provider') or {}
    kind = provider.get('datlocprovider')
    locale = provider.get('datlocale') or provider.get('daticulocale')
    if kind == 'i':
        parts.append('LOCALE_PROVIDER icu')
        if locale:
            parts.append('ICU_LOCALE %s' % quote_literal(locale))
        if provider.get('daticurules'):
            parts.append('ICU_RULES %s' % quote_literal(provider['daticurules']))
    elif kind == 'b':
        parts.append('LOCALE_PROVIDER builtin')
        if locale:
            parts.append('BUILTIN_LOCALE %s' % quote_literal(locale))
    return ' '.join(parts)


def apply_statements(props: Dict[str, Any], target: str, no_owner: bool,
                     existing_roles: Sequence[str]) -> Tuple[List[str], List[str]]:
    """SQL that gives database ``target`` the recorded properties, and what had to be left out (why).

    ``no_owner``: the owner and the roles' ACL entries are not set (like pg_restore --no-owner --no-privileges),
    but PUBLIC's are, as recorded: they name no role, and a fresh database's default ACL gives PUBLIC CONNECT and
    TEMPORARY, so a database the backup had closed to PUBLIC would open to every role of the target server (objects
    inside stay without grants under --no-privileges; the database itself would not). Settings of roles missing on the
    target are left out and reported.
    """
    qdb = quote_ident(target)
    statements: List[str] = []
    skipped: List[str] = []
    existing = set(existing_roles)
    owner = props.get('owner')
    if not no_owner and owner:
        statements.append('ALTER DATABASE %s OWNER TO %s' % (qdb, quote_ident(owner)))
    limit = props.get('connection_limit')
    if limit is not None and int(limit) != -1:
        statements.append('ALTER DATABASE %s CONNECTION LIMIT %d' % (qdb, int(limit)))
    comment = props.get('comment')
    raw = props.get(RAW_KEY) or {}
    if comment is not None and not _utf8(raw.get('comment')):
        statements.append(raw_statement('COMMENT ON DATABASE %I IS %L', quote_literal(target),
                                        _raw_literal(raw['comment'])))
    elif comment is not None:
        statements.append('COMMENT ON DATABASE %s IS %s' % (qdb, quote_literal(comment)))
    for entry in props.get('settings') or []:
        role = entry.get('role')
        if role is not None and role not in existing:
            skipped.append('ALTER ROLE %s IN DATABASE SET %s (role %s does not exist on the target)'
                           % (role, ', '.join(entry.get('config') or []), role))
            continue
        for index, config in enumerate(entry.get('config') or []):
            values = _raw_config(raw, role, index, config) if raw else None
            clause, args = _raw_set(config, values) if values is not None else ('', [])
            if values is not None and role is None:
                statements.append(raw_statement('ALTER DATABASE %I ' + clause, quote_literal(target), *args))
            elif values is not None:
                statements.append(raw_statement('ALTER ROLE %I IN DATABASE %I ' + clause, quote_literal(role),
                                                quote_literal(target), *args))
            elif role is None:
                statements.append('ALTER DATABASE %s %s' % (qdb, set_clause(config)))
            else:
                statements.append('ALTER ROLE %s IN DATABASE %s %s' % (quote_ident(role), qdb, set_clause(config)))
    acl = props.get('acl')
    if no_owner and acl is not None:
        # PUBLIC's part only (no grant option: PUBLIC cannot hold one), granted by the restoring role as the owner
        statements.append('REVOKE ALL ON DATABASE %s FROM PUBLIC' % qdb)
        for item in acl:
            privilege = PRIVILEGES.get(str(item.get('privilege')))
            if item.get('grantee') is None and privilege is not None:
                statements.append('GRANT %s ON DATABASE %s TO PUBLIC' % (privilege, qdb))
    if not no_owner and acl is not None:
        # A recorded ACL replaces the default one (PUBLIC: CONNECT, TEMPORARY; owner: all) entirely.
        statements.append('REVOKE ALL ON DATABASE %s FROM PUBLIC' % qdb)
        if owner:
            statements.append('REVOKE ALL ON DATABASE %s FROM %s' % (qdb, quote_ident(owner)))
        for item in acl:
            privilege = PRIVILEGES.get(str(item.get('privilege')))
            if privilege is None:
                skipped.append('database privilege %s (unknown here)' % item.get('privilege'))
                continue
            grantee = item.get('grantee')
            grant = 'GRANT %s ON DATABASE %s TO %s%s' % (privilege, qdb, 'PUBLIC' if grantee is None
                                                         else quote_ident(grantee),
                                                         ' WITH GRANT OPTION' if item.get('grantable') else '')
            grantor = item.get('grantor')
            if grantor and grantor != owner:
                # Who granted is part of the ACL: grant as that role (pg_dump does the same).
                grant = 'SET ROLE %s; %s; RESET ROLE' % (quote_ident(grantor), grant)
            statements.append(grant)
    return statements, skipped


def unknown_privilege_warnings(props: Dict[str, Any], no_owner: bool) -> List[str]:
    """A warning for each database ACL entry recorded at backup time whose privilege ``apply_statements`` does not
    know (``PRIVILEGES``: a manifest of a newer server, or edited) and so leaves out: the restored database lacks that
    grant, and ``database_properties.skipped`` alone is not where a user reading the run's warnings looks. Under
    ``no_owner`` only PUBLIC's entries (the roles' are not set then)."""
    out = []
    for item in props.get('acl') or []:
        if no_owner and item.get('grantee') is not None:
            continue
        if PRIVILEGES.get(str(item.get('privilege'))) is None:
            grantee = item.get('grantee')
            out.append('Database privilege %s granted to %s by %s was not restored: it is not one this collection '
                       'knows (%s). Grant it again by hand (GRANT ... ON DATABASE) if the server has it'
                       % (item.get('privilege'), 'PUBLIC' if grantee is None else grantee, item.get('grantor'),
                          ', '.join(sorted(PRIVILEGES))))
    return out


def no_owner_grant_warnings(props: Dict[str, Any], no_owner: bool, target: str) -> List[str]:
    """Under ``no_owner`` the roles' entries of the recorded database ACL are not granted (``apply_statements``):
    a role of the target server with the same name need not be the same principal (no_owner is for a server whose
    roles are not the source's: a drill's scratch server, another team's), and granting it CONNECT could open the
    database to whoever holds the name there. But PUBLIC's part is applied, so a role that connected through its own
    grant while PUBLIC was shut out is shut out now, silently but for this warning: one per restore, naming each
    role and what it had."""
    if not no_owner:
        return []
    held: Dict[str, List[str]] = {}
    for item in props.get('acl') or []:
        grantee = item.get('grantee')
        privilege = PRIVILEGES.get(str(item.get('privilege')), str(item.get('privilege')))
        if grantee is not None and privilege not in held.setdefault(grantee, []):
            held[grantee].append(privilege)
    if not held:
        return []
    public = [PRIVILEGES.get(str(i.get('privilege')), str(i.get('privilege')))
              for i in props.get('acl') or [] if i.get('grantee') is None]
    roles = ', '.join('%s (%s)' % (role, ', '.join(privs)) for role, privs in held.items())
    return ['no_owner=true: the database-level grants of %s were not restored (no_owner restores no role\'s grants); '
            'PUBLIC has %s on database %s as backed up. Those roles cannot use the database through these grants '
            'now: grant them again (GRANT ... ON DATABASE %s TO ...) if the roles here are the ones meant, or restore '
            'without no_owner.' % (roles, ', '.join(public) if public else 'no privilege', target, target)]


def setting_role_warnings(props: Dict[str, Any], existing_roles: Sequence[str], where: str) -> List[str]:
    """A warning for each ``ALTER ROLE ... IN DATABASE ... SET`` recorded at backup time whose role ``where`` lacks:
    ``apply_statements`` leaves it out (the restore does not need the role), and ``database_properties.skipped``
    alone is not where a user reading the run's warnings (a drill report, the play's output) looks."""
    existing = set(existing_roles)
    out = []
    for entry in props.get('settings') or []:
        role = entry.get('role')
        if role is None or role in existing:
            continue
        config = [str(c) for c in entry.get('config') or []]
        out.append('ALTER ROLE ... IN DATABASE ... SET %s of role %s was not restored: the role does not exist on %s. '
                   'Create the role (or restore @globals first) and set it again with ALTER ROLE ... IN DATABASE ... '
                   'SET, or restore again' % (', '.join(config), role, where))
    return out


def extension_member_losses(recorded: List[Dict[str, Any]], restored: List[Dict[str, Any]],
                            no_owner: bool) -> List[str]:
    """The extension members whose owner, settings or comment recorded at backup time (``EXTENSION_MEMBERS_SQL``)
    the restored copy (``EXTENSION_MEMBERS_ALL_SQL``) does not have, each with what is missing (pg_dump does not
    carry them). A member's owner is compared with the copy's actual owner (``role``): the members of a trusted
    extension a non-superuser created belong to the superuser that ran its script, in the source as in the copy."""
    now = {m.get('object'): m for m in restored}
    lost = []
    for member in recorded:
        there = now.get(member.get('object')) or {}
        what = []
        owner_there = there.get('role', there.get('owner'))
        if member.get('owner') and not no_owner and owner_there != member['owner']:
            what.append('owner %s' % member['owner'])
        if member.get('config') and there.get('config') != member['config']:
            what.append('SET %s' % member['config'])
        if 'comment' in member and there.get('comment') != member['comment']:
            what.append('comment')
        if member.get('attrs') and there and there.get('attrs') != member['attrs']:
            what.append(', '.join(attribute_changes(member['attrs'], there.get('attrs'))))
        if 'columns' in member and (there.get('columns') or {}) != (member.get('columns') or {}):
            what.append('column comments')
        if what:
            lost.append('%s (%s)' % (member.get('object'), ', '.join(what)))
    return lost


def attribute_changes(wanted: List[str], current: Optional[List[str]]) -> List[str]:
    """The ALTER FUNCTION clauses of ``wanted`` that ``current`` (the same function's, position by position) lacks."""
    current = list(current or [])
    return [c for i, c in enumerate(wanted) if c and (i >= len(current) or current[i] != c)]


# The clauses EXTENSION_MEMBERS_SQL writes into ``attrs``: the manifest's are only ever spliced into SQL when they
# are one of these (a manifest is data, not SQL).
ATTRIBUTE_CLAUSE = re.compile(r'(IMMUTABLE|STABLE|VOLATILE|STRICT|CALLED ON NULL INPUT|SECURITY (DEFINER|INVOKER)'
                              r'|(NOT )?LEAKPROOF|PARALLEL (SAFE|RESTRICTED|UNSAFE)|(COST|ROWS) [0-9]+(\.[0-9]+)?'
                              r'([eE][+-]?[0-9]+)?)\Z')


def extension_member_statements(recorded: List[Dict[str, Any]], restored: List[Dict[str, Any]],
                                no_owner: bool) -> List[Tuple[List[str], str]]:
    """(statements, what they set back) for each extension member whose owner, settings, comment or (a plain
    function's) attributes, or (a relation's) column comments recorded at backup time differ from the restored copy's:
    pg_dump writes CREATE EXTENSION only, so the copy has the extension script's. Functions (``ALTER ROUTINE``/
    ``COMMENT ON ROUTINE``: aggregates and procedures too), types and relations (tables, views, materialized views,
    sequences, foreign tables, composite types: the statement of the copy's relkind); a setting recorded by a backup
    that predates its list and a member the copy lacks (the extension's version's business) are only named
    (``extension_member_losses``). Identities are the server's own regprocedure/regtype/regclass text (quoted where
    they have to be): a recorded object is only acted on when the copy's catalog names it the same, so no text of
    the manifest becomes SQL unquoted (column names are quoted here)."""
    now = {m.get('object'): m for m in restored}
    out = []
    for member in recorded:
        obj = member.get('object') or ''
        there = now.get(obj)
        kind, _sep, ident = obj.partition(' ')
        if not there or kind not in ('function', 'type', 'relation', 'language'):
            continue
        if kind == 'relation':
            noun = RELATION_NOUNS.get(str(there.get('relkind')))
            if noun is None:
                continue
            alter, comment_on = 'ALTER ' + noun, 'COMMENT ON ' + noun
        elif kind == 'language':
            alter, comment_on = 'ALTER LANGUAGE', 'COMMENT ON LANGUAGE'
        elif kind == 'function':
            alter, comment_on = 'ALTER ROUTINE', 'COMMENT ON ROUTINE'
        else:
            alter, comment_on = 'ALTER TYPE', 'COMMENT ON TYPE'
        statements: List[str] = []
        what: List[str] = []
        owner = member.get('owner')
        if owner and not no_owner and there.get('role') != owner:
            statements.append('%s %s OWNER TO %s' % (alter, ident, quote_ident(owner)))
            what.append('owner %s' % owner)
        settings = member.get('settings')
        if kind == 'function' and member.get('config') and there.get('config') != member['config'] \
                and isinstance(settings, list):
            statements.append('%s %s RESET ALL' % (alter, ident))
            statements.extend('%s %s %s' % (alter, ident, set_clause(c)) for c in settings)
            what.append('SET %s' % member['config'])
        # recorded without one (the key is always written): a comment the script sets that a user removed
        if 'comment' in member and there.get('comment') != member['comment']:
            value = 'NULL' if member['comment'] is None else quote_literal(str(member['comment']))
            statements.append('%s %s IS %s' % (comment_on, ident, value))
            what.append('comment' if member['comment'] is not None else 'comment removed')
        wanted = member.get('attrs')
        if kind == 'function' and wanted and there.get('attrs') and there['attrs'] != wanted \
                and all(c is None or (isinstance(c, str) and ATTRIBUTE_CLAUSE.match(c)) for c in wanted):
            statements.append('ALTER FUNCTION %s %s' % (ident, ' '.join(c for c in wanted if c)))
            what.append(', '.join(attribute_changes(wanted, there['attrs'])))
        columns = _column_comment_statements(ident, member, there) if kind == 'relation' else []
        if columns:
            statements.extend(columns)
            what.append('column comments')
        if statements:
            out.append((statements, '%s (%s)' % (obj, ', '.join(what))))
    return out


# The statement noun of each relation kind an extension may own (indexes follow their table): ALTER <noun> ... OWNER
# TO, COMMENT ON <noun>.
RELATION_NOUNS = {'r': 'TABLE', 'p': 'TABLE', 'v': 'VIEW', 'm': 'MATERIALIZED VIEW', 'S': 'SEQUENCE',
                  'f': 'FOREIGN TABLE', 'c': 'TYPE'}


def _column_comment_statements(ident: str, member: Dict[str, Any], there: Dict[str, Any]) -> List[str]:
    """COMMENT ON COLUMN for each column of relation ``ident`` whose comment recorded at backup time (``columns``:
    name -> comment; a backup that predates it records none and nothing is done) the copy lacks or has otherwise,
    and ``IS NULL`` for a comment the copy has (the extension script's) that the source no longer had."""
    if 'columns' not in member:
        return []
    wanted = member.get('columns') or {}
    current = there.get('columns') or {}
    if not isinstance(wanted, dict):
        return []
    out = []
    for column in sorted(set(wanted) | set(current)):
        value = wanted.get(column)
        if current.get(column) != value:
            out.append('COMMENT ON COLUMN %s.%s IS %s' % (ident, quote_ident(str(column)),
                                                          'NULL' if value is None else quote_literal(str(value))))
    return out


# The comment of every extension of the database, as one JSON object (name -> comment or null).
EXTENSION_COMMENTS_SQL = "SELECT json_object_agg(extname, obj_description(oid, 'pg_extension')) FROM pg_extension"


def builtin_extension_comments(props: Dict[str, Any],
                               restored: Dict[str, Optional[str]]) -> List[Tuple[List[str], str]]:
    """(statements, what they set back) for each built-in extension (``BUILT_IN_EXTENSIONS``: plpgsql, in every
    database) whose comment recorded at backup time the restored copy (``restored``: name -> comment) has otherwise:
    pg_dump writes nothing of a built-in extension but its members' privileges, so the copy has the one its control
    file gives. Only those whose comment was not the control file's (``comment_changed``): a backup that predates
    the record is left alone."""
    out = []
    for ext in props.get('extensions') or []:
        name = ext.get('name')
        if name not in BUILT_IN_EXTENSIONS or ext.get('comment_changed') is not True or name not in restored:
            continue
        wanted = ext.get('comment')
        if restored[name] != wanted:
            out.append((['COMMENT ON EXTENSION %s IS %s' % (quote_ident(str(name)), 'NULL' if wanted is None
                                                            else quote_literal(str(wanted)))],
                        'extension %s (%s)' % (name, 'comment' if wanted is not None else 'comment removed')))
    return out


def extension_owner_losses(props: Dict[str, Any], restored: Dict[str, str], no_owner: bool) -> List[str]:
    """The extensions whose owner recorded at backup time the restored copy (``restored``: name -> owner) lacks.
    pg_dump writes CREATE EXTENSION without an owner and PostgreSQL has no ALTER EXTENSION ... OWNER TO: the
    restoring role owns them (the owner of a trusted extension a non-superuser created is lost)."""
    if no_owner:
        return []
    return ['%s (owned by %s, now by %s)' % (e['name'], e['owner'], restored[e['name']])
            for e in props.get('extensions') or []
            if e.get('owner') and e.get('name') in restored and restored[e['name']] != e['owner']]


def describe(props: Dict[str, Any], no_owner: bool) -> Dict[str, Any]:
    """What a restore reports it brought back."""
    acl = props.get('acl')
    if no_owner and acl is not None:
        # PUBLIC's part only, as apply_statements set it: REVOKE ALL ... FROM PUBLIC ran, so an empty list (PUBLIC
        # may do nothing) is what was applied; None is the default ACL (nothing recorded, nothing set)
        acl = [item for item in acl if item.get('grantee') is None]
    return {'owner': None if no_owner else props.get('owner'),
            'acl': acl,
            'comment': props.get('comment'),
            'settings': props.get('settings') or [],
            'connection_limit': props.get('connection_limit')}
