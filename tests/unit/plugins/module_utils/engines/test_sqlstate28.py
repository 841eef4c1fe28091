"""Server errors are told apart whatever the server's language (round 28): PostgreSQL by SQLSTATE (psql with
VERBOSITY=verbose) or by the form of a refused connection, MariaDB/MySQL by error number. German, Spanish and French
samples as the servers print them."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    ConnectionParams, SessionLimits)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.client import MySQLClient
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import restore
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (
    VERBOSE, PostgresClient, sqlstate)

CONN = ConnectionParams(host='127.0.0.1', port=5432, user='app', password='x')
CONNECT = 'psql: error: connection to server at "127.0.0.1", port 5432 failed: '


def failure(stderr: str) -> ToolError:
    return ToolError('psql failed with exit code 2: %s' % stderr.strip().splitlines()[-1], rc=2, stderr=stderr)


@pytest.mark.parametrize('stderr, state', [
    ('FEHLER:  55006: Datenbank »shop« wird von anderen Benutzern verwendet\nDETAIL:  1 andere Sitzung verwendet die '
     'Datenbank.\nORT:  RenameDatabase, dbcommands.c:1234\n', '55006'),
    ('ERROR:  55P03: no se pudo obtener bloqueo en la relación «t»\n', '55P03'),
    ('psql:<stdin>:3: ERREUR:  57014: annulation de la requête à cause du délai écoulé pour l\'exécution de '
     'l\'instruction\n', '57014'),
    ('ERROR:  42501: must be owner of database shop\nLOCATION:  aclcheck_error, aclchk.c:3650\n', '42501'),
    ('ERROR:  relation "t" does not exist\n', None),          # default verbosity: no SQLSTATE
    ('pg_restore: error: could not execute query\n', None),
])
def test_sqlstate_is_read_in_any_language(stderr, state):
    assert sqlstate(stderr) == state


def test_verbose_psql_argv_only_when_asked_or_under_limits(monkeypatch):
    monkeypatch.setattr(PostgresClient, 'tool', lambda self, name: '/usr/bin/psql')
    plain = PostgresClient(CONN)
    assert ' '.join(VERBOSE) not in ' '.join(plain.psql_argv('-c', 'SELECT 1'))
    assert ' '.join(VERBOSE) in ' '.join(plain.psql_argv('-c', 'SELECT 1', verbose=True))


@pytest.mark.parametrize('reason', [
    'FATAL:  Passwort-Authentifizierung f?r Benutzer >>app<< fehlgeschlagen',
    'FATAL:  la autentificación password falló para el usuario «app»',
    'FATAL:  authentification par mot de passe échouée pour l\'utilisateur « app »',
    'FATAL:  Datenbank >>shop<< existiert nicht',
    'FATAL:  keine pg_hba.conf-Eintrag für Host »10.0.0.1«, Benutzer »app«, Datenbank »shop«, keine Verschlüsselung',
])
def test_a_refused_connection_in_another_language_is_a_refusal(reason):
    got = PostgresClient(CONN).classify(failure(CONNECT + reason + '\n'))
    assert not isinstance(got, ToolError) and 'refused the connection of app' in got.message, got.message
    assert reason.split(':  ', 1)[1] in got.message and 'pg_hba.conf' in got.message


def test_english_refusals_keep_their_own_classification():
    got = PostgresClient(CONN).classify(failure(CONNECT + 'FATAL:  password authentication failed for user "app"\n'))
    assert 'refused the login of app' in got.message
    got = PostgresClient(CONN).classify(failure(CONNECT + 'FATAL:  database "shop" does not exist\n'))
    assert 'has no such database' in got.message
    got = PostgresClient(CONN).classify(failure(CONNECT + 'Connection refused\n\tIs the server running on that host '
                                                          'and accepting TCP/IP connections?\n'))
    assert got.message.startswith('Cannot connect to PostgreSQL')


@pytest.mark.parametrize('stderr, start', [
    ('FEHLER:  55P03: storniere Anfrage wegen Zeitüberschreitung einer Sperre\nORT:  ProcessInterrupts, postgres.c:1\n',
     'Gave up waiting for a lock after lock_timeout=3s (FEHLER:  55P03: storniere'),
    ('ERREUR:  57014: annulation de la requête à cause du délai écoulé pour l\'exécution de l\'instruction\n',
     'Statement cancelled (ERREUR:  57014: annulation'),
    # a NOTICE first (DROP ... IF EXISTS): its 00000 is not the error's code, nor its line the error's
    ('HINWEIS:  00000: Tabelle »nope« existiert nicht, wird übersprungen\nORT:  DropErrorMsgNonExistent\n'
     'FEHLER:  55P03: storniere Anfrage wegen Zeitüberschreitung einer Sperre\n',
     'Gave up waiting for a lock after lock_timeout=3s (FEHLER:  55P03: storniere'),
    ('WARNUNG:  01000: etwas\nFEHLER:  57014: storniere Anfrage wegen Benutzeraufforderung\n',
     'Statement cancelled (FEHLER:  57014: storniere Anfrage wegen Benutzeraufforderung): statement_timeout=9s '
     'ended it, or a cancel request did'),
])
def test_session_limit_failures_are_told_by_sqlstate(stderr, start):
    client = PostgresClient(CONN, limits=SessionLimits(lock_timeout=3, statement_timeout=9))
    got = client.classify(ToolError('psql failed with exit code 1', rc=1, stderr=stderr))
    assert got.message.startswith(start), got.message


def test_the_restore_names_the_servers_error_lines_by_sqlstate():
    exc = ToolError('psql failed with exit code 3', rc=3,
                    stderr='psql:<stdin>:9: WARNUNG:  01007: keine Privilegien wurden gewährt für »t«\n'
                           'psql:<stdin>:12: FEHLER:  42P07: Relation »t« existiert bereits\n'
                           'ORT:  heap_create_with_catalog, heap.c:1145\n')
    said = restore._server_error(exc)
    assert 'Relation »t« existiert bereits' in said and '01007' not in said, said


@pytest.mark.parametrize('stderr, start', [
    ('ERROR 1205 (HY000) at line 1: Sperr-Timeout überschritten; versuchen Sie, die Transaktion neu zu starten\n',
     'Gave up waiting for a lock'),
    ('mariadb-dump: Couldn\'t execute \'SELECT\': Tiempo de espera de bloqueo excedido (1205)\n',
     'Gave up waiting for a lock'),
    ('ERROR 1969 (70100) at line 1: L\'exécution de la requête a été interrompue (dépassement de max_statement_time)\n',
     'Statement stopped after statement_timeout'),
    ('ERROR 1969 (70100) at line 1: Abfrage-Ausführung wurde unterbrochen (Zeitlimit überschritten)\n',
     'Statement stopped after statement_timeout'),
])
def test_mariadb_session_limit_failures_are_told_by_number(stderr, start):
    client = MySQLClient(CONN, limits=SessionLimits(lock_timeout=3, statement_timeout=9))
    got = client.classify(ToolError('mariadb failed with exit code 1', rc=1, stderr=stderr))
    assert got.message.startswith(start), got.message


def test_an_unknown_failure_stays_as_it_is():
    exc = ToolError('psql failed with exit code 1', rc=1, stderr='FEHLER:  42P01: Relation »t« existiert nicht\n')
    assert PostgresClient(CONN, limits=SessionLimits()).classify(exc) is exc
    assert isinstance(exc, OpsReadyError)


class _Client:
    """A client whose every query the server refuses with ``stderr`` (verbose: with its SQLSTATE)."""

    def __init__(self, stderr: str) -> None:
        self.stderr = stderr
        self.asked = []

    def query(self, sql, database=None, timeout=None, verbose=False):
        self.asked.append((sql, verbose))
        raise ToolError('psql failed with exit code 1', rc=1, stderr=self.stderr)


class _Engine:
    def __init__(self, stderr: str) -> None:
        self.client = _Client(stderr)


def test_a_missing_locale_is_told_by_sqlstate_in_a_language_without_the_word_locale():
    # Japanese: no "locale", "encoding", "collation" nor LC_C in the server's words
    engine = _Engine('ERROR:  22023: パラメータ"lc_monetary"の値が無効です: "xx_NO.UTF-8"\n')
    assert restore._locale_missing(engine, {'collate': 'xx_NO.UTF-8', 'ctype': 'xx_NO.UTF-8'})
    assert engine.client.asked[0][1] is True     # asked with VERBOSITY=verbose
    other = _Engine('ERROR:  42501: 権限がありません\n')
    assert not restore._locale_missing(other, {'collate': 'xx_NO.UTF-8', 'ctype': 'xx_NO.UTF-8'})
    assert not restore._locale_missing(_Engine(''), {})


@pytest.mark.parametrize('said', [
    'FEHLER:  Berechtigung nur für Mitglied von Rolle »fid "other" 19«',
    'ERROR:  debe ser miembro del rol «fid "other" 19»',     # Spanish keeps the word ERROR: no English text
])
def test_the_owner_hint_reads_pg_restores_own_command_line(said):
    stderr = ('pg_restore: error: could not execute query: %s\nCommand was: ALTER TABLE public.theirs OWNER TO '
              '"fid ""other"" 19";\n' % said)
    hint = restore._server_error(ToolError('pg_restore failed with exit code 1', rc=1, stderr=stderr))
    assert said in hint, hint
    if 'ERROR:' not in said:
        assert 'cannot give objects to role "fid "other" 19"' in hint, hint
