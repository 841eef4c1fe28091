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
