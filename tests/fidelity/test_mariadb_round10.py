"""Fidelity, MariaDB, round 10: what a point-in-time restore does with what the binary logs say after the dump.
A DEFINER the logs make after the dump whose privileges this login cannot lend is refused by the real run before
anything is loaded (as check mode refuses it), the target left as it was; a partial REVOKE in the logs withholds
what it revoked, not every privilege of the account; a GRANT in the logs is given when the replay reaches it.
Earlier rounds: ``test_mariadb*.py``."""

from __future__ import annotations

import re
import time

import pytest

from tests.fidelity.test_mariadb_gaps import backup, restore
from tests.fidelity.test_mariadb_round8 import LOGIN_PASSWORD, opsready_rows, restore_as

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


def refusal(server, user, src, source, target, check_mode, **kw):
    with pytest.raises(OpsReadyError) as failed:
        restore_as(server, user, src, source, target, check_mode=check_mode, **kw)
    return failed.value.message


def compared(message):
    """``message`` without the server's own words (naming the copy, whose name is random; check mode's statements
    are dry runs)."""
    return re.sub(r'\(([^()]*: )?(mariadb failed|ERROR|this login).*?\)\. ', '(...). ', message)


def test_late_definer_a_login_may_not_lend_to_is_refused_before_the_load(mariadb_factory, tmp_path):
    """binlog_format=MIXED. After the dump an account is created, granted the database, and made the DEFINER of a
    trigger a statement-logged INSERT fires. Restored over an existing target (replace) by a login holding every
    privilege but GRANT OPTION: check mode refused up front, but the real run loaded the whole dump into its copy,
    then failed in the replay (ERROR 1142 and a hint). It now reads the logs' DEFINERs first and refuses before
    loading anything, in check mode's words; the target keeps its rows and the server no privilege row of a copy."""
    server = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    server.sql("CREATE DATABASE ld; USE ld; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (7, 70)")
    backup(server, 'ld', tmp_path / 'b')
    time.sleep(1.1)
    server.sql("CREATE USER 'late'@'%'; GRANT SELECT, INSERT, UPDATE, TRIGGER ON ld.* TO 'late'@'%'; USE ld; "
               "CREATE DEFINER = 'late'@'%' TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.id * 10; "
               "INSERT INTO t (id) VALUES (1)")
    time.sleep(1.1)
    backup(server, 'ld', tmp_path / 'b', kind='log')
    server.sql("CREATE DATABASE ld_r; USE ld_r; CREATE TABLE keep (id INT PRIMARY KEY); INSERT INTO keep VALUES (42); "
               "CREATE USER 'ng'@'%%' IDENTIFIED BY '%s'; GRANT ALL PRIVILEGES ON *.* TO 'ng'@'%%'" % LOGIN_PASSWORD)
    foreseen = refusal(server, 'ng', tmp_path / 'b', 'ld', 'ld_r', True, replace=True)
    done = refusal(server, 'ng', tmp_path / 'b', 'ld', 'ld_r', False, replace=True)
    assert 'late@%' in done and 'GRANT OPTION' in done and 'before loading anything' in done, done
    assert 'TRIGGER' in done, done
    assert compared(done) == compared(foreseen), (foreseen, done)
    assert server.sql('SELECT id FROM ld_r.keep') == [('42',)]
    assert server.sql("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'ld_r'") == [('keep',)]
    assert server.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'ld%'") == [('2',)]
    assert opsready_rows(server) == [('0',)]


ACCOUNTS = ('p', 'q', 'c', 'r', 'g', 'n')


def grants_on(server, database):
    """SHOW GRANTS of the test accounts, the lines naming ``database`` only, its name written as ``pr``."""
    quoted = {'`%s`' % database, '`%s`' % database.replace('_', '\\_')}
    lines = []
    for user in ACCOUNTS:
        for (line,) in server.sql("SHOW GRANTS FOR '%s'@'%%'" % user):
            lines += [line.replace(name + '.', '`pr`.') for name in quoted if name + '.' in line]
    return sorted(lines)


def partial_revokes_fixture(server, tmp_path):
    """pr, recorded by the dump with privileges of every kind; after the dump (from a session without a default
    database, as an administrator runs them) part of each is revoked, and more granted."""
    server.sql("CREATE USER 'p'@'%'; CREATE USER 'q'@'%'; CREATE USER 'c'@'%'; CREATE USER 'r'@'%'; "
               "CREATE USER 'g'@'%'; "
               "CREATE DATABASE pr; USE pr; CREATE TABLE t (id INT, a INT, b INT); CREATE TABLE t2 (id INT); "
               "CREATE PROCEDURE p() SELECT 1; "
               "GRANT SELECT, INSERT ON pr.* TO 'p'@'%'; GRANT SELECT, INSERT, UPDATE ON pr.t TO 'q'@'%'; "
               "GRANT SELECT (a, b), UPDATE (a) ON pr.t TO 'c'@'%'; "
               "GRANT EXECUTE, ALTER ROUTINE ON PROCEDURE pr.p TO 'r'@'%' WITH GRANT OPTION; "
               "GRANT SELECT ON pr.* TO 'g'@'%' WITH GRANT OPTION")
    backup(server, 'pr', tmp_path / 'b')
    time.sleep(1.1)
    server.sql("REVOKE INSERT ON pr.* FROM 'p'@'%'; REVOKE UPDATE ON `pr`.`t` FROM q; "
               "REVOKE SELECT (a) ON pr.t FROM 'c'@'%'; REVOKE UPDATE ON pr.t FROM 'c'@'%'; "
               "REVOKE ALTER ROUTINE ON PROCEDURE pr.p FROM 'r'@'%'; "
               "REVOKE GRANT OPTION ON pr.* FROM 'g'@'%'; GRANT DELETE ON pr.* TO 'p'@'%'; "
               "CREATE USER 'n'@'%'; GRANT SELECT ON pr.t2 TO 'n'@'%'; USE pr; INSERT INTO t VALUES (1, 2, 3)")
    time.sleep(1.1)
    backup(server, 'pr', tmp_path / 'b', kind='log')


def test_a_partial_revoke_withholds_what_it_revoked_and_a_grant_is_given(mariadb_factory, tmp_path):
    """A point-in-time restore past a partial REVOKE (INSERT of SELECT, INSERT; UPDATE of a table's; one column's
    SELECT, and a table's UPDATE the server takes from its column; ALTER ROUTINE of a procedure's; the GRANT
    OPTION) withheld every privilege the dump recorded for the
    account on the database (so ``p`` lost its SELECT), and a GRANT after the dump was named, not given. The
    restored copy now holds exactly the privileges the source holds at the point reached (SHOW GRANTS compared),
    the warnings (check mode's too) naming what was revoked and nothing else; restored over the original, the
    privileges are those it had."""
    server = mariadb_factory()
    partial_revokes_fixture(server, tmp_path)
    live = grants_on(server, 'pr')
    foreseen = restore(server, tmp_path / 'b', 'pr', 'pr_copy', check_mode=True)
    result = restore(server, tmp_path / 'b', 'pr', 'pr_copy')
    assert server.sql('SELECT id FROM pr_copy.t') == [('1',)]
    assert grants_on(server, 'pr_copy') == live, result
    for told in (foreseen, result):
        said = [w for w in told.get('warnings', []) if 'REVOKE' in w]
        assert said, told
        for taken in ('INSERT on the database for p@%', 'UPDATE on table t for q@%', 'SELECT on column t.a for c@%',
                      'UPDATE on column t.a for c@%',
                      'ALTER ROUTINE on procedure p for r@%', 'GRANT OPTION on the database for g@%'):
            assert taken in said[0], (taken, said[0])
        assert 'SELECT on the database for p@%' not in said[0] and 'EXECUTE' not in said[0], said[0]
        assert not [w for w in told.get('warnings', []) if 'grant privileges on pr after the dump' in w], told
    replaced = restore(server, tmp_path / 'b', 'pr', 'pr', replace=True)
    assert grants_on(server, 'pr') == live, replaced


def test_privileges_this_login_cannot_give_are_named_with_their_object(mariadb_factory, tmp_path):
    """Restored by a login without GRANT OPTION: a GRANT of the logs the server refuses is named in the warnings
    (not only in ``grants.skipped``), with its privilege, object and account; restored over the original, the
    privileges on the routines the restore put back that it cannot grant again are named with the routine and the
    privilege (the server revoked them as it dropped the routines): that part is a regression guard (it passed
    before)."""
    server = mariadb_factory()
    partial_revokes_fixture(server, tmp_path)
    server.sql("CREATE USER 'ng'@'%%' IDENTIFIED BY '%s'; GRANT ALL PRIVILEGES ON *.* TO 'ng'@'%%'" % LOGIN_PASSWORD)
    result = restore_as(server, 'ng', tmp_path / 'b', 'pr', 'pr_copy')
    said = [w for w in result.get('warnings', []) if 'grant privileges on pr after the dump' in w]
    assert said and 'pr_copy' in said[0], result
    assert 'DELETE on the database for p@%' in said[0] and 'SELECT on table t2 for n@%' in said[0], said[0]
    replaced = restore_as(server, 'ng', tmp_path / 'b', 'pr', 'pr', replace=True)
    said = [w for w in replaced.get('warnings', []) if 'routines of pr' in w]
    assert said and 'EXECUTE on procedure p for r@%' in said[0], replaced
