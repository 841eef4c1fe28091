"""Fidelity, MariaDB, round 11: every privilege statement form the binary logs carry after the dump, replayed by a
point-in-time restore into a copy. For each account, the copy's privileges (SHOW GRANTS, the lines naming the
database) must be the source's at the point reached: RENAME USER carries the grants to the new name; a GRANT or
REVOKE naming no database (``ON t``, ``ON *``) takes the database of the session that ran it (the event's USE); a
column-level GRANT ... WITH GRANT OPTION; a partial REVOKE of privileges granted as ALL; routines, roles, PROXY,
global privileges, CREATE/ALTER/DROP USER, quoted names with backticks, hosts with wildcards. A password given in
the logs (IDENTIFIED BY) appears nowhere in the result. Earlier rounds: ``test_mariadb*.py``."""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator

import pytest

from tests.fidelity.test_mariadb_gaps import backup, restore
from tests.harness.servers import MariaDBServer

SECRET = 'Secr3t-pw-r11'

# each form of privilege statement the logs carry after the dump -> the accounts whose privileges it changes
# (user, host; a role's host is '')
FORMS = {
    'RENAME USER (two pairs, a bare name, a new name with a space)': [('ren', '%'), ('ren2', '%'), ('rx', '%'),
                                                                      ('rx 2', '%')],
    'partial REVOKE of ALL granted before the dump (database, table, procedure)': [('al', '%')],
    'column-level GRANT ... WITH GRANT OPTION': [('col', '%')],
    'GRANT on a PROCEDURE, on a FUNCTION WITH GRANT OPTION': [('rt', '%')],
    'backticked user with a backtick and a space, wildcard host, table name with a backtick': [('o`d d', '10.0.0.%')],
    'CREATE ROLE, GRANT on the role, GRANT role TO user, SET DEFAULT ROLE, GRANT PROXY, a global GRANT': [
        ('rl', ''), ('uq', '%')],
    'CREATE USER / ALTER USER IDENTIFIED BY, GRANT ... IDENTIFIED BY': [('nu', 'localhost')],
    'CREATE USER, GRANT ON t, ALTER USER, all sent with USE of the database': [('cu', '%')],
    'DROP USER (of an account granted before the dump; of one granted after)': [('dr', '%'), ('dr2', '%')],
    'GRANT ON t, GRANT ON *, REVOKE ON t sent with USE of the database (and with USE of another)': [('un', '%')],
    'GRANT ON `db`.t sent with USE of the database': [('ua', '%')],
    'GRANT ALL ON t WITH GRANT OPTION then a partial REVOKE, with USE of the database': [('gc', '%')],
    'REVOKE ON * sent with USE of the database': [('rv', '%')],
    'CREATE OR REPLACE USER ... IDENTIFIED BY of an account granted before the dump': [('cr', '%')],
}

BEFORE = (
    "CREATE DATABASE pr; CREATE DATABASE oth; USE oth; CREATE TABLE t (id INT); USE pr; "
    "CREATE TABLE t (id INT, a INT, b INT); CREATE TABLE t2 (id INT); CREATE TABLE `we``ird t` (id INT); "
    "CREATE PROCEDURE p() SELECT 1; CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1; USE mysql; "
    "CREATE USER 'ren'@'%'; CREATE USER 'rx'@'%'; CREATE USER 'al'@'%'; CREATE USER 'col'@'%'; CREATE USER 'rt'@'%'; "
    "CREATE USER 'o`d d'@'10.0.0.%'; CREATE USER 'uq'@'%'; CREATE USER 'dr'@'%'; CREATE USER 'un'@'%'; "
    "CREATE USER 'ua'@'%'; CREATE USER 'gc'@'%'; CREATE USER 'rv'@'%'; CREATE USER 'cr'@'%'; "
    "GRANT SELECT ON pr.t TO 'cr'@'%'; "
    "GRANT SELECT, INSERT ON pr.t TO 'ren'@'%'; GRANT UPDATE ON pr.* TO 'ren'@'%' WITH GRANT OPTION; "
    "GRANT SELECT (a) ON pr.t TO 'ren'@'%'; GRANT EXECUTE ON PROCEDURE pr.p TO 'ren'@'%'; "
    "GRANT DELETE ON pr.t2 TO 'rx'@'%'; "
    "GRANT ALL PRIVILEGES ON pr.* TO 'al'@'%'; GRANT ALL ON pr.t2 TO 'al'@'%'; "
    "GRANT ALL ON PROCEDURE pr.p TO 'al'@'%'; "
    "GRANT SELECT ON pr.* TO 'dr'@'%'; GRANT SELECT, INSERT, DELETE ON pr.t TO 'un'@'%'; "
    "GRANT SELECT ON pr.* TO 'rv'@'%'")

# after the dump; one session, its default database changing as an administrator's would (GRANT PROXY needs a
# PROXY grant of its own: run as the superuser)
AFTER = (
    "USE mysql; "
    "RENAME USER 'ren'@'%' TO 'ren2'@'%', rx TO `rx 2`@'%'; "
    "REVOKE INSERT ON pr.* FROM 'al'@'%'; REVOKE SELECT ON pr.t2 FROM 'al'@'%'; "
    "REVOKE ALTER ROUTINE ON PROCEDURE pr.p FROM 'al'@'%'; "
    "GRANT SELECT (a), INSERT (b) ON pr.t TO 'col'@'%' WITH GRANT OPTION; "
    "GRANT EXECUTE ON PROCEDURE pr.p TO 'rt'@'%'; GRANT EXECUTE ON FUNCTION pr.f TO 'rt'@'%' WITH GRANT OPTION; "
    "GRANT SELECT ON `pr`.`we``ird t` TO `o``d d`@`10.0.0.%`; "
    "CREATE ROLE rl; GRANT SELECT ON pr.t TO rl; GRANT rl TO 'uq'@'%'; SET DEFAULT ROLE rl FOR 'uq'@'%'; "
    "GRANT PROXY ON 'al'@'%' TO 'uq'@'%'; GRANT RELOAD ON *.* TO 'uq'@'%'; "
    "CREATE USER 'nu'@'localhost' IDENTIFIED BY '" + SECRET + "'; GRANT SELECT ON pr.t2 TO 'nu'@'localhost'; "
    "ALTER USER 'nu'@'localhost' IDENTIFIED BY '" + SECRET + "2'; "
    "GRANT INSERT ON pr.t2 TO 'nu'@'localhost' IDENTIFIED BY '" + SECRET + "3'; "
    "CREATE OR REPLACE USER 'cr'@'%' IDENTIFIED BY '" + SECRET + "8'; "
    "DROP USER 'dr'@'%'; CREATE USER 'dr2'@'%'; GRANT SELECT ON pr.* TO 'dr2'@'%'; DROP USER 'dr2'@'%'; "
    "USE pr; "
    "CREATE USER 'cu'@'%' IDENTIFIED BY '" + SECRET + "4'; GRANT SELECT ON t TO 'cu'@'%'; "
    "ALTER USER 'cu'@'%' IDENTIFIED BY '" + SECRET + "5'; SET PASSWORD FOR 'cu'@'%' = PASSWORD('" + SECRET + "6'); "
    "GRANT rl TO 'cu'@'%'; SET DEFAULT ROLE rl FOR 'cu'@'%'; "
    "GRANT SELECT ON t2 TO 'un'@'%'; GRANT INSERT ON * TO 'un'@'%'; REVOKE DELETE ON t FROM 'un'@'%'; "
    "GRANT SELECT ON `pr`.t2 TO 'ua'@'%'; "
    "GRANT ALL ON t2 TO 'gc'@'%' WITH GRANT OPTION; REVOKE INSERT ON t2 FROM 'gc'@'%'; "
    "REVOKE SELECT ON * FROM 'rv'@'%'; "
    "INSERT INTO t VALUES (1, 2, 3); "
    "USE oth; GRANT SELECT ON t TO 'un'@'%'; GRANT SELECT ON * TO 'ua'@'%'; "
    "USE mysql; ALTER USER 'cu'@'%' IDENTIFIED BY '" + SECRET + "7'; SET DEFAULT ROLE NONE FOR 'cu'@'%'")
ACCOUNT_STATE = 'SELECT User, Host, authentication_string, default_role FROM mysql.user ORDER BY User, Host'


def account_grants(server, database):
    """SHOW GRANTS of every account of ``FORMS`` that exists, the lines naming ``database`` only, its name written as
    ``pr``; None for an account that does not exist."""
    quoted = {'`%s`' % database, '`%s`' % database.replace('_', '\\_')}
    present = {tuple(row) for row in server.sql('SELECT User, Host FROM mysql.user')}
    lines: Dict[Any, Any] = {}
    for user, host in (a for accounts in FORMS.values() for a in accounts):
        if (user, host) not in present:
            lines[user, host] = None
            continue
        who = '`%s`' % user.replace('`', '``') + ('' if host == '' else '@`%s`' % host)
        shown = server.sql('SHOW GRANTS FOR %s' % who)
        lines[user, host] = sorted(line.replace(name + '.', '`pr`.') for (line,) in shown
                                   for name in quoted if name + '.' in line)
    return lines


@pytest.fixture(scope='module')
def replayed(tmp_path_factory) -> Iterator[Dict[str, Any]]:
    """One full backup, every form after it, one log backup; the source's privileges then, and a point-in-time
    restore's into ``pr_copy`` (check mode's result too)."""
    tmp = tmp_path_factory.mktemp('round11')
    server = MariaDBServer()
    try:
        server.start()
        server.sql(BEFORE)
        backup(server, 'pr', tmp / 'b')
        time.sleep(1.1)
        server.sql(AFTER, superuser=True)
        time.sleep(1.1)
        backup(server, 'pr', tmp / 'b', kind='log')
        live = account_grants(server, 'pr')
        out: Dict[str, Any] = {'server': server, 'live': live, 'accounts': server.sql(ACCOUNT_STATE)}
        try:
            out['foreseen'] = restore(server, tmp / 'b', 'pr', 'pr_copy', check_mode=True)
            out['result'] = restore(server, tmp / 'b', 'pr', 'pr_copy')
            out['copied'] = account_grants(server, 'pr_copy')
            out['rows'] = server.sql('SELECT id FROM pr_copy.t')
            out['accounts_after'] = server.sql(ACCOUNT_STATE)
        except Exception as exc:   # each form's test names the refusal
            out['failed'] = exc
        yield out
    finally:
        server.cleanup()


@pytest.mark.parametrize('form', list(FORMS))
def test_the_copy_holds_the_source_privileges_at_the_point_reached(replayed, form):
    """Per form: the accounts it changes hold on the copy (SHOW GRANTS, the lines naming the database) what they
    hold on the source at the point reached."""
    assert 'failed' not in replayed, replayed.get('failed')
    assert replayed['rows'] == [('1',)]
    for account in FORMS[form]:
        assert replayed['copied'][account] == replayed['live'][account], (account, replayed['result'])


def test_no_password_of_the_logs_in_the_result_and_nothing_left_over(replayed):
    """No password given in the logs (CREATE/ALTER USER, GRANT ... IDENTIFIED BY) appears in the result or check
    mode's; no privilege row names a temporary copy afterwards (check mode's probe included: a table-level GRANT
    holding CREATE is taken on a table that does not exist, and left a row behind)."""
    assert 'failed' not in replayed, replayed.get('failed')
    for told in (replayed['foreseen'], replayed['result']):
        assert SECRET not in repr(told), told
    left = replayed['server'].sql("SELECT User, Host, Db, Table_name, Table_priv FROM mysql.tables_priv "
                                  "WHERE Db LIKE '%opsready%'")
    assert not left, left


def test_the_restore_changes_no_account(replayed):
    """The accounts of the server (password hash, default role) are as they were before the restore: SET PASSWORD
    and SET DEFAULT ROLE sent with USE of the database were replayed (against the live accounts: a password changed
    since was set back), as CREATE USER / REVOKE sent so were (failing the restore: ERROR 1396, 1141)."""
    assert 'failed' not in replayed, replayed.get('failed')
    assert replayed['accounts_after'] == replayed['accounts']
