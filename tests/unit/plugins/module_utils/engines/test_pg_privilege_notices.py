"""A restore by a role that is not a superuser (the database's owner, as on a managed service) lost the privilege
statements PostgreSQL applies only in part or not at all for a role without the grant option (aclchk.c: ``WARNING:
no privileges could be revoked for "plpgsql"``), and reported success: the load's stderr is read for those warnings
(``privilege_notices``) and the run warns (``privilege_warning``). The names are the server's, quoted as given:
a double quote, a newline, a line that looks like another warning inside a name must not cut it in two or make two
warnings of it."""

from __future__ import annotations

import sys

import pytest

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (  # noqa: E402
    restore as pg_restore)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import ToolError  # noqa: E402

# pg_restore --verbose of a dump restored by its owner (PostgreSQL 15, as printed): a function named
# 'f"x\nWARNING:  no privileges were granted for "y' (its progress lines carry it), a column "c\nol" of table 't"\nq'
VERBOSE = (
    'pg_restore: connecting to database for restore\n'
    'pg_restore: creating FUNCTION "s.f"x\n'
    'WARNING:  no privileges were granted for "y()"\n'
    'pg_restore: creating ACL "LANGUAGE plpgsql"\n'
    'pg_restore: WARNING:  no privileges could be revoked for "plpgsql"\n'
    'pg_restore: creating ACL "pg_catalog.FUNCTION pg_sleep(double precision)"\n'
    'pg_restore: WARNING:  no privileges could be revoked for "pg_sleep"\n'
    'pg_restore: creating ACL "s.COLUMN "t""\n'
    'q"."c\n'
    'ol""\n'
    'pg_restore: executing ACL LARGE OBJECT 4242\n')


def objects(stderr: str, tool: str = 'pg_restore') -> list:
    return [(n['object'], n['message']) for n in pg_restore.privilege_notices(stderr, tool)]


def test_pg_restore_verbose_output():
    """The two real warnings; not the progress line of a function whose name holds a whole warning line (pg_restore
    prints a notice after its own name, which the name's next line lacks)."""
    assert objects(VERBOSE) == [('plpgsql', 'no privileges could be revoked'),
                                ('pg_sleep', 'no privileges could be revoked')]
    assert objects('pg_restore: creating TABLE "public.t"\n') == []
    assert objects('') == []


@pytest.mark.parametrize('name', [
    'plain', 'with "quotes" inside', 'a"\nb', 'two\nlines', 'a"\n"b"', 'ends with quote"',
    'x"\nnot a WARNING:  not all privileges were granted for "y',   # a message inside the name, not a line
    'Rôle "ü" ÿ', 'tab\there', '"', 'column "c" of relation "r',
])
@pytest.mark.parametrize('prefix, tool', [
    ('pg_restore: ', 'pg_restore'), ('', 'psql'), ('psql:/tmp/dump.sql:12: ', 'psql'),
    ('pg_restore:pg_restore: ', 'pg_restore')])
def test_a_hostile_name_is_one_object_of_one_warning(name, prefix, tool):
    """Any name, after any of the tools' prefixes, followed by another message, the end, or a progress line."""
    others = ('pg_restore: creating ACL "x"\n', 'pg_restore: error: could not execute query: ERROR:  boom\n') \
        if tool == 'pg_restore' else ('ERROR:  boom\n', 'NOTICE:  x\n', 'psql:/tmp/dump.sql:13: ERROR:  boom\n')
    for after in ('', prefix + 'WARNING:  no privileges were granted for "next"\n') + others:
        stderr = '%sWARNING:  not all privileges could be revoked for "%s"\n%s' % (prefix, name, after)
        found = objects(stderr, tool)
        assert found[0] == (name, 'not all privileges could be revoked'), (stderr, found)
        assert found[1:] == ([('next', 'no privileges were granted')] if 'next' in after else []), found


def test_a_name_holding_a_whole_warning_line():
    """pg_restore: a line of a name without pg_restore's own prefix is no message of it (one warning); psql's
    output cannot tell it from two warnings: read as two (a name crafted so adds an entry, it never hides one)."""
    name = 'x"\nWARNING:  not all privileges were granted for "y'
    assert objects('pg_restore: WARNING:  no privileges could be revoked for "%s"\n' % name) == [
        (name, 'no privileges could be revoked')]
    assert objects('WARNING:  no privileges could be revoked for "%s"\n' % name, 'psql') == [
        ('x', 'no privileges could be revoked'), ('y', 'not all privileges were granted')]


def test_column_form_and_large_objects_and_a_cut_output():
    stderr = ('WARNING:  no privileges were granted for column "c\nol" of relation "t"\nq"\n'
              'WARNING:  not all privileges were granted for "large object 4242"\n'
              'WARNING:  no privileges could be revoked for "cut sh')
    assert objects(stderr, 'psql') == [('column "c\nol" of relation "t"\nq"', 'no privileges were granted'),
                                       ('large object 4242', 'not all privileges were granted'),
                                       ('"cut sh', 'no privileges could be revoked')]


def test_other_messages_are_not_privilege_notices():
    stderr = ('NOTICE:  no privileges could be revoked for "x"\n'      # not a WARNING
              'pg_restore: warning: errors ignored on restore: 1\n'
              'WARNING:  no privileges could be revoked for x\n'          # no quote: not the message
              '  WARNING:  no privileges were granted for "indented"\n')
    assert objects(stderr, 'psql') == [] and objects(stderr) == []
    assert objects('WARNING:  no privileges could be revoked for "p"\n') == []   # pg_restore's own name first


def test_the_warning_counts_names_caps_and_says_what_to_do():
    assert pg_restore.privilege_warning([]) == []
    notices = [{'object': 'plpgsql', 'message': 'no privileges could be revoked'},
               {'object': 'a\nb', 'message': 'no privileges were granted'},
               {'object': 'column "c" of relation "t"', 'message': 'not all privileges were granted'}]
    [text] = pg_restore.privilege_warning(notices)
    assert text.startswith('3 privilege statements of the backup (GRANT/REVOKE) were not applied')
    assert '"plpgsql" (no privileges could be revoked)' in text and '"a\\nb"' in text and '\n' not in text
    assert 'column "c" of relation "t" (not all' in text
    assert 'not a superuser' in text and 'more open' in text and 'Restore as a superuser' in text
    assert 'privileges_not_restored' in text
    many = [{'object': 'f%d' % i, 'message': 'no privileges could be revoked'} for i in range(25)]
    [text] = pg_restore.privilege_warning(many)
    assert text.startswith('25 privilege statements') and '"f19"' in text and '"f20"' not in text
    assert 'and 5 more' in text
    [one] = pg_restore.privilege_warning(many[:1])
    assert one.startswith('1 privilege statement of the backup (GRANT/REVOKE) was not applied')


def test_a_failure_reports_no_progress_lines():
    stderr = ('pg_restore: connecting to database for restore\n'
              'pg_restore: creating TABLE "public.t\nerror: forged"\n'
              'pg_restore: WARNING:  no privileges could be revoked for "plpgsql"\n'
              'pg_restore:pg_restore: launching item 3 TABLE DATA t\n'
              'pg_restore: error: could not execute query: ERROR:  boom\n'
              'Command was: CREATE TABLE public.u ();\n'
              'pg_restore: warning: errors ignored on restore: 1\n')
    assert pg_restore._without_progress(stderr) == (
        'pg_restore: WARNING:  no privileges could be revoked for "plpgsql"\n'
        'pg_restore: error: could not execute query: ERROR:  boom\n'
        'Command was: CREATE TABLE public.u ();\n'
        'pg_restore: warning: errors ignored on restore: 1\n')


class _Runner:
    def __init__(self, rc, err):
        self.rc, self.err = rc, err

    def run(self, argv, **kwargs):
        assert kwargs['check'] is False
        return self.rc, '', self.err

    def failure(self, argv, rc, stderr, what=None):
        return ToolError('%s failed with exit code %d' % (what, rc), rc=rc, stderr=stderr, cmd=list(argv))


def test_load_run_returns_stderr_and_fails_without_progress():
    class Engine:
        runner = _Runner(0, 'pg_restore: creating ACL "x"\n')
    assert pg_restore._load_run(Engine(), ['pg_restore'], {}, 'pg_restore') == 'pg_restore: creating ACL "x"\n'
    Engine.runner = _Runner(1, 'pg_restore: creating TABLE "t"\npg_restore: error: boom\n')
    with pytest.raises(ToolError) as caught:
        pg_restore._load_run(Engine(), ['pg_restore'], {}, 'pg_restore')
    assert caught.value.stderr == 'pg_restore: error: boom\n' and caught.value.rc == 1
    with pytest.raises(ToolError) as caught, pg_restore._quiet_progress(Engine(), ['pg_restore'], 'pg_restore'):
        raise ToolError('x', rc=1, stderr='pg_restore: processing item 1\npg_restore: error: boom\n')
    assert caught.value.stderr == 'pg_restore: error: boom\n'


# The same restore with lc_messages = 'de_DE.UTF-8' for the restoring role (PostgreSQL 15, as printed): jobs=1, and
# the ACL entries of jobs=2 (restore_in_parallel runs them one at a time; a -j run's lines, for the parser).
GERMAN = (
    'pg_restore: creating TABLE "public.t"\n'
    'pg_restore: HINWEIS:  a notice of a table, not of a privilege\n'
    'pg_restore: processing data for table "public.t"\n'
    'pg_restore: creating ACL "LANGUAGE plpgsql"\n'
    'pg_restore: WARNUNG:  es konnten keine Privilegien für »plpgsql« entzogen werden\n'
    'pg_restore: creating ACL "pg_catalog.FUNCTION pg_sleep(double precision)"\n'
    'pg_restore: WARNUNG:  es konnten keine Privilegien für »pg_sleep« entzogen werden\n'
    'pg_restore: creating ACL "public.TABLE t"\n'
    'pg_restore: executing ACL LARGE OBJECT 4242\n'
    'pg_restore: WARNING:  no se pudo revocar ningún privilegio para «objeto grande 4242»\n'
    'pg_restore: creating MATERIALIZED VIEW DATA "public.m"\n'
    'pg_restore: WARNUNG:  a warning of the materialized view\n')
PARALLEL = (
    'pg_restore: entering main parallel loop\n'
    'pg_restore: launching item 3353 ACL LANGUAGE plpgsql\n'
    'pg_restore: creating ACL "LANGUAGE plpgsql"\n'
    'pg_restore: WARNUNG:  es konnten keine Privilegien für »plpgsql« entzogen werden\n'
    'pg_restore: finished item 3353 ACL LANGUAGE plpgsql\n'
    'pg_restore: finished main parallel loop\n')


def test_pg_restore_in_another_language_names_the_acl_entry():
    """Any server message while an ACL entry runs (any severity word, Spanish keeps WARNING) is reported with the
    entry's tag; messages of other entries are not."""
    assert objects(GERMAN) == [
        ('LANGUAGE plpgsql', 'WARNUNG:  es konnten keine Privilegien für »plpgsql« entzogen werden'),
        ('pg_catalog.FUNCTION pg_sleep(double precision)',
         'WARNUNG:  es konnten keine Privilegien für »pg_sleep« entzogen werden'),
        ('LARGE OBJECT 4242', 'WARNING:  no se pudo revocar ningún privilegio para «objeto grande 4242»')]
    assert objects(PARALLEL) == [
        ('LANGUAGE plpgsql', 'WARNUNG:  es konnten keine Privilegien für »plpgsql« entzogen werden')]


def test_english_warnings_of_acl_entries_are_counted_once():
    """The English text names the object itself: the ACL entry's reading does not add it a second time."""
    assert objects(VERBOSE) == objects(VERBOSE + 'pg_restore: creating MATERIALIZED VIEW DATA "m"\n')
    assert len(objects(VERBOSE)) == 2


def test_psql_verbose_in_another_language_by_sqlstate():
    """psql with VERBOSITY=verbose: 01006/01007 in any language, the one quoted name as the object; English texts
    with the SQLSTATE as without it; other warnings not."""
    said = ('WARNUNG:  01006: es konnten keine Privilegien für »plpgsql« entzogen werden\n'
            'LOCATION:  restrict_and_check_grant, aclchk.c:340\n'
            'ATTENTION:  01007: aucun droit n\'a été accordé pour « t »\n'
            '警告:  01006: "%s"に対して取り消せた権限はありません\n'
            'WARNING:  01006: no privileges could be revoked for "pg_sleep"\n'
            'WARNUNG:  01000: etwas anderes »x«\n'
            'WARNUNG:  01006: Spalte »c« von Relation »r«\n')
    assert objects(said, 'psql') == [
        ('plpgsql', 'WARNUNG:  01006: es konnten keine Privilegien für »plpgsql« entzogen werden'),
        ('t', 'ATTENTION:  01007: aucun droit n\'a été accordé pour « t »'),
        ('%s', '警告:  01006: "%s"に対して取り消せた権限はありません'),
        ('pg_sleep', 'no privileges could be revoked'),
        ('Spalte »c« von Relation »r«', 'WARNUNG:  01006: Spalte »c« von Relation »r«')]


@pytest.mark.parametrize('value, english', [
    ('C', True), ('POSIX', True), ('C.UTF-8', True), ('en_US.UTF-8', True), ('de_DE.UTF-8', False), ('', False),
    ('es_ES.utf8', False), ('ja_JP.UTF-8', False)])
def test_english_messages(value, english):
    assert pg_restore.english_messages(value) is english
