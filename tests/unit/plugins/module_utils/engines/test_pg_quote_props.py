"""PostgreSQL quoting, database-level properties as SQL, and the globals script lexer (no server)."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import dbprops as pg_dbprops
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import globals as pg_globals
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    check_name, conf_literal, conninfo_value, dbname_arg, quote_ident, quote_literal)


def test_quote_ident_and_literal():
    assert quote_ident('a"b c') == '"a""b c"'
    assert quote_literal("it's \\ ü") == "E'it''s \\\\ ü'"
    for bad in ('a\x00b',):
        with pytest.raises(OpsReadyError):
            quote_ident(bad)
        with pytest.raises(OpsReadyError):
            quote_literal(bad)
    with pytest.raises(OpsReadyError):
        quote_ident('')


def test_names_over_63_bytes_are_refused_not_cut():
    assert check_name('é' * 31 + 'x') == 'é' * 31 + 'x'  # 63 bytes
    for long_name in ('a' * 64, 'é' * 32):
        with pytest.raises(OpsReadyError, match='64 bytes long.*at most 63 bytes'):
            quote_ident(long_name)
        with pytest.raises(OpsReadyError, match='63 bytes'):
            dbname_arg(long_name)


@pytest.mark.parametrize('name, expected', [
    ("a'b", "--dbname=dbname='a\\'b'"),
    ("a\\'b", "--dbname=dbname='a\\\\\\'b'"),
    ('dbname=prod host=x', "--dbname=dbname='dbname=prod host=x'"),
    ('-dash', "--dbname=dbname='-dash'"),
    ('new\nline', "--dbname=dbname='new\nline'"),
])
def test_dbname_arg_is_never_an_option_or_a_connection_string(name, expected):
    assert dbname_arg(name) == expected
    assert conninfo_value(name) == expected[len('--dbname=dbname='):]


@pytest.mark.parametrize('value, items', [
    ('"$user", public', ['$user', 'public']),
    ('app, "Odd Schéma ""x""", public', ['app', 'Odd Schéma "x"', 'public']),
    ('"a,b"', ['a,b']),
    ('', []),
])
def test_split_list_setting(value, items):
    assert pg_dbprops.split_list_setting(value) == items


def test_apply_statements_quotes_everything_and_reports_missing_roles():
    props = {'owner': 'own"er', 'comment': "c'\\", 'connection_limit': 5,
             'acl': [{'grantor': 'own"er', 'grantee': None, 'privilege': 'TEMPORARY', 'grantable': False},
                     {'grantor': 'other', 'grantee': 'r', 'privilege': 'CONNECT', 'grantable': True}],
             'settings': [{'role': None, 'config': ['search_path="$user", app', 'work_mem=8MB']},
                          {'role': 'gone', 'config': ['work_mem=1MB']}]}
    sql, skipped = pg_dbprops.apply_statements(props, 'db "x"', False, ['own"er', 'r', 'other'])
    assert sql[0] == 'ALTER DATABASE "db ""x""" OWNER TO "own""er"'
    assert 'COMMENT ON DATABASE "db ""x""" IS E\'c\'\'\\\\\'' in sql
    assert 'ALTER DATABASE "db ""x""" SET "search_path" TO E\'$user\', E\'app\'' in sql
    assert 'ALTER DATABASE "db ""x""" CONNECTION LIMIT 5' in sql
    assert 'REVOKE ALL ON DATABASE "db ""x""" FROM PUBLIC' in sql
    assert 'GRANT TEMPORARY ON DATABASE "db ""x""" TO PUBLIC' in sql
    assert ('SET ROLE "other"; GRANT CONNECT ON DATABASE "db ""x""" TO "r" WITH GRANT OPTION; RESET ROLE'
            in sql)
    assert len(skipped) == 1 and 'gone' in skipped[0]
    sql, _skipped = pg_dbprops.apply_statements(props, 'db', True, ['own"er', 'r', 'other', 'gone'])
    # no_owner: no owner and no role's grant; PUBLIC's part of the ACL as recorded (round 11: a database closed to
    # PUBLIC came back open to every role, a fresh database's default)
    assert not any('OWNER' in s or '"r"' in s or 'SET ROLE' in s for s in sql)
    acl_sql = [s for s in sql if 'GRANT' in s or 'REVOKE' in s]
    assert acl_sql == ['REVOKE ALL ON DATABASE "db" FROM PUBLIC', 'GRANT TEMPORARY ON DATABASE "db" TO PUBLIC']
    props['acl'] = None   # the default ACL (datacl NULL): left as CREATE DATABASE makes it
    sql, _skipped = pg_dbprops.apply_statements(props, 'db', True, [])
    assert not any('GRANT' in s or 'REVOKE' in s for s in sql)


def test_referenced_roles():
    props = {'owner': 'o', 'acl': [{'grantee': 'g', 'grantor': 'o'}, {'grantee': None, 'grantor': 'h'}],
             'roles': {'a': 'o', 'b': 'a', 'p': 'r', 'x': 'i'}}
    assert sorted(pg_dbprops.referenced_roles(props, False)) == ['a', 'b', 'g', 'h', 'o', 'p']
    assert sorted(pg_dbprops.referenced_roles(props, True)) == ['p']


def test_globals_script_split_and_classified():
    script = (
        "--\n-- PostgreSQL database cluster dump\n--\n\\restrict abc\n"
        "SET standard_conforming_strings = on;\n"
        "CREATE ROLE app;\nALTER ROLE app WITH LOGIN PASSWORD 'SCRAM;x''y';\n"
        'CREATE ROLE "Odd ""R"" ü";\n'
        "COMMENT ON ROLE app IS E'semi; colon \\' still';\n"
        "GRANT app TO \"Odd \"\"R\"\" ü\" GRANTED BY postgres;\n"
        "CREATE TABLESPACE ts OWNER app LOCATION '/srv/ts';\n"
        "ALTER ROLE app SET search_path TO $$a;b$$;\n"
        "\\unrestrict abc\n")
    parsed = pg_globals.parse(script)
    kinds = [(s.kind, s.subject) for s in parsed]
    assert kinds == [('other', None), ('create_role', 'app'), ('role', 'app'), ('create_role', 'Odd "R" ü'),
                     ('role', 'app'), ('membership', 'app'), ('create_tablespace', 'ts'), ('role', 'app')]
    assert parsed[5].member == 'Odd "R" ü'
    assert parsed[2].sql.endswith("'SCRAM;x''y'")


def test_load_options_escape_for_pgoptions_and_skip_database_own_text_search_config():
    props = {'session': {'TimeZone': 'America/St_Johns', 'DateStyle': 'SQL, DMY', 'x': 'a\\b',
                         'default_text_search_config': 'public.mine'}}
    assert (pg_dbprops.load_options(props)
            == '-c DateStyle=SQL,\\ DMY -c TimeZone=America/St_Johns -c array_nulls=on -c x=a\\\\b')
    props['session']['default_text_search_config'] = 'pg_catalog.simple'
    assert '-c default_text_search_config=pg_catalog.simple' in pg_dbprops.load_options(props)
    assert pg_dbprops.load_options({}) == '-c array_nulls=on'   # a manifest from before: what every load pins


def test_before_load_statements_only_when_the_public_schema_was_recorded_absent():
    assert pg_dbprops.before_load_statements({'public_schema': False}) == ['DROP SCHEMA IF EXISTS public RESTRICT']
    assert pg_dbprops.before_load_statements({'public_schema': True}) == []
    assert pg_dbprops.before_load_statements({}) == []


def test_load_options_read_with_what_the_dump_pinned_and_the_database_own_locale_settings():
    props = {'session': {'TimeZone': 'UTC'},
             'settings': [{'role': None, 'config': ['lc_numeric=de_DE.UTF-8', 'work_mem=8MB']},
                          {'role': 'app', 'config': ['lc_time=fr_FR.UTF-8']}]}
    options = pg_dbprops.load_options(props, {'lc_monetary': 'C'})
    # the database's own lc_numeric (not a role's lc_time), and the dump's lc_monetary
    assert options == '-c TimeZone=UTC -c array_nulls=on -c lc_monetary=C -c lc_numeric=de_DE.UTF-8'
    assert pg_dbprops.load_options({'session': {'TimeZone': 'UTC'}}) == '-c TimeZone=UTC -c array_nulls=on'


def test_own_text_search_option_only_for_a_configuration_of_the_database():
    assert pg_dbprops.own_text_search_option({'session': {'default_text_search_config': 'pg_catalog.english'}}) == ''
    assert pg_dbprops.own_text_search_option({}) == ''
    assert (pg_dbprops.own_text_search_option({'session': {'default_text_search_config': '"Tsx ü"."My Cfg"'}})
            == '-c default_text_search_config="Tsx\\ ü"."My\\ Cfg"')


def test_extension_statements_keep_recorded_versions_where_the_schema_exists_before_the_load():
    available = {'hstore': ('1.8', ['1.4', '1.5', '1.8']), 'cube': ('1.5', ['1.5']), 'citext': ('1.6', ['1.6'])}
    props = {'extensions': [{'name': 'plpgsql', 'version': '1.0', 'schema': 'pg_catalog'},
                            {'name': 'hstore', 'version': '1.4', 'schema': 'public'},
                            {'name': 'citext', 'version': '1.6', 'schema': 'public'},        # the default: nothing
                            {'name': 'cube', 'version': '1.2', 'schema': 'public'},          # not installable here
                            {'name': 'Odd "x"', 'version': '1', 'schema': 'public'}]}        # not on the server
    statements, skipped = pg_dbprops.extension_statements(props, available)
    assert statements == ['CREATE EXTENSION "hstore" WITH SCHEMA "public" VERSION E\'1.4\'']
    assert len(skipped) == 1 and 'cube version 1.2' in skipped[0] and 'default version 1.5' in skipped[0]
    props['extensions'][1]['schema'] = 'ext'     # a schema the dump creates
    statements, skipped = pg_dbprops.extension_statements(props, available)
    assert statements == [] and any('schema ext' in note for note in skipped)
    props['extensions'][1]['schema'] = 'public'
    props['public_schema'] = False               # dropped before the load
    assert pg_dbprops.extension_statements(props, available)[0] == []
    assert pg_dbprops.extension_names(props) == ['hstore', 'citext', 'cube', 'Odd "x"']
    assert pg_dbprops.extension_statements({}, {}) == ([], [])   # a manifest from before


def _guc_scanstr(literal: str) -> str:
    """PostgreSQL's reading of a quoted configuration-file value (guc-file.l: GUC_scanstr; the lexer takes a
    quoted string only up to the end of its line)."""
    assert literal[0] == literal[-1] == "'" and '\n' not in literal and '\r' not in literal
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c == "'" and body[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        elif c == '\\' and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in 'bfnrt':
                out.append({'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}[nxt])
                i += 2
            elif nxt in '01234567':
                j = i + 1
                while j < len(body) and j < i + 4 and body[j] in '01234567':
                    j += 1
                out.append(chr(int(body[i + 1:j], 8)))
                i = j
            else:
                out.append(nxt)
                i += 2
        else:
            out.append(c)
            i += 1
    return ''.join(out)


@pytest.mark.parametrize('value', ["host=a password='x\ny'", 'tab\there', 'cr\rlf\r\n', "q'uote \\ back",
                                   'bell\x07 del\x7f esc\x1b', 'ünï 数据', '\\n literally', ''])
def test_configuration_file_values_stay_on_their_line_and_read_back_the_same(value):
    """postgresql.auto.conf / recovery settings written by PITR and failover: a line break in a value (a password
    in primary_conninfo, a path) ended the quoted string, and the server refused to start on the file."""
    literal = conf_literal(value)
    assert not any(ord(c) < 0x20 or c == '\x7f' for c in literal), literal
    assert _guc_scanstr(literal) == value


def test_configuration_file_values_refuse_nul():
    with pytest.raises(OpsReadyError):
        conf_literal('a\x00b')


# -- extension members' function attributes and extension owners (round 6) ----------------------------------------
def test_extension_member_statements_set_back_what_differs():
    statements_for = pg_dbprops.extension_member_statements
    losses = pg_dbprops.extension_member_losses
    script = ['IMMUTABLE', 'STRICT', 'SECURITY INVOKER', 'NOT LEAKPROOF', 'PARALLEL SAFE', 'COST 1', None]
    user = ['STABLE', 'STRICT', 'SECURITY INVOKER', 'NOT LEAKPROOF', 'PARALLEL SAFE', 'COST 7', None]
    recorded = [{'object': 'function public."Odd"(text)', 'attrs': user, 'owner': 'app',
                 'config': 'search_path="My S", public, work_mem=7MB',
                 'settings': ['search_path="My S", public', 'work_mem=7MB'], 'comment': "it's"},
                {'object': 'function public.same(text)', 'attrs': script},
                {'object': 'function public.gone(text)', 'attrs': user},
                {'object': 'function public.old(text)', 'config': 'work_mem=1MB'},   # a backup without the list
                {'object': 'type public.t', 'owner': 'app', 'comment': 'c'},
                {'object': 'relation public.r', 'comment': 'c'}]
    restored = [{'object': 'function public."Odd"(text)', 'attrs': script, 'role': 'postgres', 'comment': 'x'},
                {'object': 'function public.same(text)', 'attrs': script, 'role': 'postgres'},
                {'object': 'function public.old(text)', 'role': 'postgres'},
                {'object': 'type public.t', 'role': 'postgres'},
                {'object': 'relation public.r', 'role': 'postgres'}]
    assert statements_for(recorded, restored, False) == [
        (['ALTER ROUTINE public."Odd"(text) OWNER TO "app"', 'ALTER ROUTINE public."Odd"(text) RESET ALL',
          'ALTER ROUTINE public."Odd"(text) SET "search_path" TO E\'My S\', E\'public\'',
          'ALTER ROUTINE public."Odd"(text) SET "work_mem" TO E\'7MB\'',
          "COMMENT ON ROUTINE public.\"Odd\"(text) IS E'it''s'",
          'ALTER FUNCTION public."Odd"(text) STABLE STRICT SECURITY INVOKER NOT LEAKPROOF PARALLEL SAFE COST 7'],
         'function public."Odd"(text) (owner app, SET search_path="My S", public, work_mem=7MB, comment, STABLE, '
         'COST 7)'),
        (['ALTER TYPE public.t OWNER TO "app"', "COMMENT ON TYPE public.t IS E'c'"],
         'type public.t (owner app, comment)')]
    no_owner = [s for s, _named in statements_for(recorded, restored, True)]
    assert no_owner[0][0].startswith('ALTER ROUTINE public."Odd"(text) RESET ALL')
    # what was not set back is named; a member the copy lacks is not
    assert losses(recorded, restored, False) == [
        'function public."Odd"(text) (owner app, SET search_path="My S", public, work_mem=7MB, comment, STABLE, '
        'COST 7)', 'function public.old(text) (SET work_mem=1MB)', 'type public.t (owner app, comment)',
        'relation public.r (comment)']


def test_extension_member_relations_set_back_by_their_kind():
    """Round 7: a relation member's owner, comment and column comments are set again with the statement of the copy's
    relkind; a relkind without one (or a backup without column comments) makes none, and column names are quoted."""
    statements_for = pg_dbprops.extension_member_statements
    losses = pg_dbprops.extension_member_losses
    recorded = [{'object': 'relation public.t', 'owner': 'app', 'comment': 'tbl',
                 'columns': {'a"b': "it's", 'kept': 'same'}},
                {'object': 'relation public.v', 'comment': 'view', 'columns': {}},
                {'object': 'relation public.s', 'owner': 'app'},
                {'object': 'relation public.i', 'comment': 'index'}]
    restored = [{'object': 'relation public.t', 'role': 'postgres', 'relkind': 'r',
                 'columns': {'kept': 'same', 'gone': 'script'}},
                {'object': 'relation public.v', 'role': 'postgres', 'relkind': 'v'},
                {'object': 'relation public.s', 'role': 'postgres', 'relkind': 'S'},
                {'object': 'relation public.i', 'role': 'postgres', 'relkind': 'i'}]
    assert statements_for(recorded, restored, False) == [
        (['ALTER TABLE public.t OWNER TO "app"', "COMMENT ON TABLE public.t IS E'tbl'",
          'COMMENT ON COLUMN public.t."a""b" IS E\'it\'\'s\'', 'COMMENT ON COLUMN public.t."gone" IS NULL'],
         'relation public.t (owner app, comment, column comments)'),
        (["COMMENT ON VIEW public.v IS E'view'"], 'relation public.v (comment)'),
        (['ALTER SEQUENCE public.s OWNER TO "app"'], 'relation public.s (owner app)')]
    assert losses(recorded, restored, False) == [
        'relation public.t (owner app, comment, column comments)', 'relation public.v (comment)',
        'relation public.s (owner app)', 'relation public.i (comment)']
    assert statements_for(recorded, restored, True)[0][0][0] == "COMMENT ON TABLE public.t IS E'tbl'"


def test_extension_owner_losses():
    extension_owner_losses = pg_dbprops.extension_owner_losses
    props = {'extensions': [{'name': 'cube', 'owner': 'app'}, {'name': 'hstore', 'owner': 'postgres'},
                            {'name': 'old'}, {'name': 'absent', 'owner': 'app'}]}
    now = {'cube': 'postgres', 'hstore': 'postgres', 'old': 'postgres'}
    assert extension_owner_losses(props, now, False) == ['cube (owned by app, now by postgres)']
    assert extension_owner_losses(props, now, True) == []


def test_extension_member_statements_never_splice_manifest_text():
    """A manifest is data: attributes that are not the clauses the backup writes, or an object the copy's catalog does
    not name the same, make no statement (they are named as lost instead)."""
    script = ['IMMUTABLE', 'STRICT', 'SECURITY INVOKER', 'NOT LEAKPROOF', 'PARALLEL SAFE', 'COST 1', None]
    evil = ['STABLE; DROP DATABASE x; --'] + script[1:]
    recorded = [{'object': 'function public.f(text)', 'attrs': evil},
                {'object': 'function public.f(text); DROP DATABASE x', 'attrs': script, 'comment': 'c'}]
    restored = [{'object': 'function public.f(text)', 'attrs': script, 'role': 'postgres'}]
    assert pg_dbprops.extension_member_statements(recorded, restored, False) == []
    assert pg_dbprops.extension_member_losses(recorded, restored, False)[0].startswith('function public.f(text) (')


def test_extension_owner_statements():
    props = {'extensions': [{'name': 'cube', 'version': '1.5', 'schema': 'public', 'owner': 'app "x"'},
                            {'name': 'mine', 'version': '1.0', 'schema': 'public', 'owner': 'restorer'},
                            {'name': 'older', 'version': '1.0', 'schema': 'public', 'owner': 'app'},
                            {'name': 'elsewhere', 'version': '1.0', 'schema': 'ext', 'owner': 'app'},
                            {'name': 'absent', 'version': '1.0', 'schema': 'public', 'owner': 'app'},
                            {'name': 'legacy', 'version': '1.0', 'schema': 'public'}]}
    available = {'cube': ('1.5', ['1.4', '1.5']), 'mine': ('1.0', ['1.0']), 'older': ('1.1', ['1.0', '1.1']),
                 'elsewhere': ('1.0', ['1.0']), 'legacy': ('1.0', ['1.0'])}
    assert pg_dbprops.extension_owner_statements(props, available, 'db', 'restorer', ['older']) == [
        ('cube', ['GRANT CREATE ON DATABASE "db" TO "app ""x"""', 'GRANT CREATE ON SCHEMA "public" TO "app ""x"""',
                  'SET LOCAL ROLE "app ""x"""', 'CREATE EXTENSION "cube" WITH SCHEMA "public" VERSION E\'1.5\'',
                  'RESET ROLE', 'REVOKE CREATE ON DATABASE "db" FROM "app ""x"""',
                  'REVOKE CREATE ON SCHEMA "public" FROM "app ""x"""'])]


def test_globals_parameter_grants_are_classified():
    """Round 7: GRANT ... ON PARAMETER belongs to its grantee (PUBLIC: None), with the privileges
    has_parameter_privilege takes; a REVOKE or an unknown privilege word gives none."""
    parsed = pg_globals.parse('GRANT SET,ALTER SYSTEM ON PARAMETER log_statement TO "App ""x""" WITH GRANT OPTION;\n'
                              'GRANT ALL ON PARAMETER "my.opt" TO PUBLIC;\n'
                              'REVOKE SET ON PARAMETER work_mem FROM app;\n'
                              'GRANT SET ON ROLE x TO y;\n')
    assert [(s.kind, s.subject, s.member) for s in parsed] == [
        ('parameter', 'App "x"', 'log_statement'), ('parameter', None, 'my.opt'), ('parameter', 'app', 'work_mem'),
        ('other', None, None)]
    privileges = [pg_globals.parameter_privileges(s) for s in parsed]
    assert privileges == [['SET WITH GRANT OPTION', 'ALTER SYSTEM WITH GRANT OPTION'], ['SET', 'ALTER SYSTEM'],
                          None, None]
