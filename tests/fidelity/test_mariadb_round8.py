"""Fidelity, MariaDB, round 8: check mode predicts what the real restore does (the privileges a point-in-time
restore lends its temporary copy and the objects it probes, whatever form the login's privileges take; the point
a point-in-time restore reaches), a DEFINER created in the binary logs after the dump, and kinds and names a DBA
uses, compared as a DBA would (SHOW CREATE, information_schema, mysql.global_priv)."""

from __future__ import annotations

import datetime
import re
import time

import pytest

from tests.fidelity.test_mariadb_gaps import backup, restore

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore

LOGIN_PASSWORD = 'r8-pw!'   # a test account's password on a private test server


def login(server, user):
    if user == server.user:   # the harness login
        return ConnectionParams(host=server.host, port=server.port, user=user, password=server.password)
    return ConnectionParams(host=server.host, port=server.port, user=user, password=LOGIN_PASSWORD)


def restore_as(server, user, src, source, target, **kw):
    return run_restore(RestoreRequest(engine='mariadb', src=str(src), source_database=source, database=target, **kw),
                       login(server, user))


def verdict(server, user, src, source, target, check_mode):
    """'ok', or the refusal's message, of a restore (or its check mode) as ``user``: the server's own words (naming
    the copy, whose name is random) left out."""
    try:
        restore_as(server, user, src, source, target, check_mode=check_mode)
    except OpsReadyError as exc:
        return 'refused: ' + re.sub(r'\(([^()]*: )?(mariadb failed|ERROR|this login).*\)', '(...)', exc.message)
    return 'ok'


def q(name):
    return '`' + name.replace('`', '``') + '`'


def opsready_rows(server):
    return server.sql("SELECT (SELECT COUNT(*) FROM mysql.db WHERE Db LIKE '%opsready%') + (SELECT COUNT(*) FROM "
                      "mysql.tables_priv WHERE Db LIKE '%opsready%') + (SELECT COUNT(*) FROM mysql.procs_priv "
                      "WHERE Db LIKE '%opsready%')")


# The forms a restore login's GRANT OPTION takes. Every one holds every privilege but GRANT OPTION globally (the load
# and the replay need them); the grant option comes from (or is missing in) the form named.
LOGIN_FORMS = {
    'global': "GRANT ALL PRIVILEGES ON *.* TO {l} WITH GRANT OPTION",
    'none': "",
    'wildcard database': "GRANT ALL PRIVILEGES ON `lr\\_%`.* TO {l} WITH GRANT OPTION",
    'percent pattern': "GRANT USAGE ON `%`.* TO {l} WITH GRANT OPTION",
    'other database only': "GRANT ALL PRIVILEGES ON `other`.* TO {l} WITH GRANT OPTION",
    'default role': "CREATE ROLE r8a; GRANT ALL PRIVILEGES ON *.* TO r8a WITH GRANT OPTION; GRANT r8a TO {l}; "
                    "SET DEFAULT ROLE r8a FOR {l}",
    'nested role': "CREATE ROLE r8b; CREATE ROLE r8c; GRANT ALL PRIVILEGES ON `lr%`.* TO r8c WITH GRANT OPTION; "
                   "GRANT r8c TO r8b; GRANT r8b TO {l}; SET DEFAULT ROLE r8b FOR {l}",
    'role not enabled': "CREATE ROLE r8d; GRANT ALL PRIVILEGES ON *.* TO r8d WITH GRANT OPTION; GRANT r8d TO {l}",
}


def test_check_mode_lends_as_the_real_restore_whatever_form_the_grant_option_takes(mariadb_factory, tmp_path):
    """binlog_format=MIXED, a trigger whose definer holds privileges on the source database only (the replay lends
    them to the temporary copy). Check mode counted only the login's global and current role's grantable privileges:
    a login whose GRANT OPTION comes from a wildcard database grant (``lr\\_%``, ``%``) or a role its default role
    holds was refused in check mode while the real restore ran. For every form, check mode's verdict is now the
    real run's (run right after it), and neither leaves a privilege row behind."""
    server = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    server.sql("CREATE USER 'app'@'%'; CREATE DATABASE lr; USE lr; CREATE TABLE t (id INT PRIMARY KEY, v INT); "
               "GRANT SELECT, INSERT, UPDATE, TRIGGER ON lr.* TO 'app'@'%'; "
               "CREATE DEFINER = 'app'@'%' TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.id * 10")
    backup(server, 'lr', tmp_path / 'b')
    time.sleep(1.1)
    server.sql('USE lr; INSERT INTO t (id) VALUES (1)')
    time.sleep(1.1)
    backup(server, 'lr', tmp_path / 'b', kind='log')
    seen = {}
    for n, (form, extra) in enumerate(LOGIN_FORMS.items()):
        user = 'rl%d' % n
        account = "'%s'@'%%'" % user
        server.sql("CREATE USER %s IDENTIFIED BY '%s'; GRANT ALL PRIVILEGES ON *.* TO %s; %s"
                   % (account, LOGIN_PASSWORD, account, extra.format(l=account)))
        target = 'lr_%d' % n
        foreseen = verdict(server, user, tmp_path / 'b', 'lr', target, True)
        done = verdict(server, user, tmp_path / 'b', 'lr', target, False)
        seen[form] = (foreseen[:9], done[:9])
        assert foreseen == done, (form, foreseen, done)
        if done == 'ok':
            assert server.sql('SELECT id, v FROM %s.t' % target) == [('1', '10')], form
        assert opsready_rows(server) == [('0',)], form
    # the forms that lend the copy the privileges, and those that do not
    assert seen == {'global': ('ok', 'ok'), 'none': ('refused: ', 'refused: '),
                    'wildcard database': ('ok', 'ok'), 'percent pattern': ('ok', 'ok'),
                    'other database only': ('refused: ', 'refused: '), 'default role': ('ok', 'ok'),
                    'nested role': ('ok', 'ok'), 'role not enabled': ('refused: ', 'refused: ')}, seen


def test_definer_holding_table_column_and_routine_privileges_is_lent_them(mariadb_factory, tmp_path):
    """A trigger's definer holding privileges on a table, columns and a routine of the source (not the database):
    the probe lent them on the EMPTY copy, where no table or routine exists yet, took the server's "Table ... doesn't
    exist" (ERROR 1146) and "PROCEDURE ... does not exist" (ERROR 1305) for a refusal and refused every such
    point-in-time restore for want of GRANT OPTION, to a login holding every privilege WITH GRANT OPTION. They are
    lent after the load, as before; the probe counts only the server's refusal. A login whose GRANT OPTION comes
    from a wildcard database grant (its privileges global) lends them too, in check mode as in the real run."""
    server = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    server.sql("CREATE USER 'app'@'%'; CREATE DATABASE lt; USE lt; CREATE TABLE t (id INT PRIMARY KEY, v INT); "
               "CREATE TABLE log (id INT); CREATE PROCEDURE p(x INT) MODIFIES SQL DATA INSERT INTO log VALUES (x); "
               "GRANT SELECT, INSERT, UPDATE, TRIGGER ON lt.t TO 'app'@'%'; "
               "GRANT SELECT (id), INSERT (id) ON lt.log TO 'app'@'%'; GRANT EXECUTE ON PROCEDURE lt.p TO 'app'@'%'; "
               "CREATE DEFINER = 'app'@'%' TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.id * 10; "
               "CREATE DEFINER = 'app'@'%' TRIGGER tr2 AFTER INSERT ON t FOR EACH ROW CALL p(NEW.id)")
    for user, extra in (('rg', "GRANT ALL PRIVILEGES ON *.* TO 'rg'@'%' WITH GRANT OPTION"),
                        ('rw', "GRANT ALL PRIVILEGES ON *.* TO 'rw'@'%'; "
                               "GRANT ALL PRIVILEGES ON `lt%`.* TO 'rw'@'%' WITH GRANT OPTION")):
        server.sql("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'; %s" % (user, LOGIN_PASSWORD, extra))
    backup(server, 'lt', tmp_path / 'b')
    time.sleep(1.1)
    server.sql('USE lt; INSERT INTO t (id) VALUES (1)')
    time.sleep(1.1)
    backup(server, 'lt', tmp_path / 'b', kind='log')
    assert verdict(server, 'rg', tmp_path / 'b', 'lt', 'lt_g', True) == 'ok'
    result = restore_as(server, 'rg', tmp_path / 'b', 'lt', 'lt_g')
    assert server.sql('SELECT id, v FROM lt_g.t') == [('1', '10')]
    assert server.sql('SELECT id FROM lt_g.log') == [('1',)]
    assert sorted(result['grants']['applied']) == [
        'EXECUTE on procedure p for app@%', 'SELECT, INSERT, UPDATE, TRIGGER on table t for app@%',
        'column privileges on table log for app@%'], result['grants']
    foreseen = verdict(server, 'rw', tmp_path / 'b', 'lt', 'lt_w', True)
    done = verdict(server, 'rw', tmp_path / 'b', 'lt', 'lt_w', False)
    assert foreseen == done == 'ok', (foreseen, done)
    assert server.sql('SELECT id, v FROM lt_w.t') == [('1', '10')]
    assert opsready_rows(server) == [('0',)]


# Logins that lack (or hold in another form) what creating each kind of object with another account's DEFINER in the
# temporary copy takes: SET USER or SUPER for the definer, CREATE VIEW, CREATE ROUTINE, TRIGGER (and SUPER while
# the binary log is on), EVENT.
PROBE_FORMS = {
    'global': "",
    'no SET USER nor SUPER': "REVOKE SET USER, SUPER ON *.* FROM {l}",
    'no SUPER': "REVOKE SUPER ON *.* FROM {l}",
    'no CREATE VIEW': "REVOKE CREATE VIEW ON *.* FROM {l}",
    'CREATE VIEW on a wildcard': "REVOKE CREATE VIEW ON *.* FROM {l}; GRANT CREATE VIEW ON `pv\\_%`.* TO {l}",
    'no EVENT': "REVOKE EVENT ON *.* FROM {l}",
    'no TRIGGER': "REVOKE TRIGGER ON *.* FROM {l}",
    'no CREATE ROUTINE': "REVOKE CREATE ROUTINE ON *.* FROM {l}",
    'SET USER from the default role': "REVOKE SET USER, SUPER ON *.* FROM {l}; CREATE ROLE r8p; "
                                      "GRANT SET USER, SUPER ON *.* TO r8p; GRANT r8p TO {l}; "
                                      "SET DEFAULT ROLE r8p FOR {l}",
    'no CREATE': "REVOKE CREATE ON *.* FROM {l}",
}


def test_check_mode_probes_the_definers_objects_as_the_real_restore(mariadb_factory, tmp_path):
    """Before loading, the restore creates (and drops) one object of every kind the backup holds with each of its
    definers in the empty copy (``probe_privileges``). Check mode did nothing of the kind: a login without SET USER,
    CREATE VIEW, TRIGGER, EVENT or CREATE ROUTINE was told the restore would run, and the real run refused. Check
    mode now sends the same statements against a copy's name that does not exist (the server checks the
    privileges, then answers "Unknown database") and for a view's or trigger's definer, whose check the server
    makes after opening the tables, the routine's or event's: its verdict, the server's words included, is the real
    run's for every form. A login without CREATE met the bare ERROR 1044 of the copy's CREATE DATABASE in the real
    run (check mode: nothing): both now say what is missing."""
    server = mariadb_factory()
    server.sql("CREATE USER 'app'@'%'; CREATE DATABASE pv; USE pv; CREATE TABLE t (id INT PRIMARY KEY); "
               "CREATE DEFINER = 'app'@'%' VIEW v AS SELECT id FROM t; "
               "CREATE DEFINER = 'app'@'%' PROCEDURE p() SELECT 1; "
               "CREATE DEFINER = 'app'@'%' TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @x = 1; "
               "CREATE DEFINER = 'app'@'%' EVENT e ON SCHEDULE EVERY 1 DAY STARTS '2036-01-01' DISABLE DO SELECT 1")
    backup(server, 'pv', tmp_path / 'b')
    seen = {}
    for n, (form, extra) in enumerate(PROBE_FORMS.items()):
        user = 'rp%d' % n
        account = "'%s'@'%%'" % user
        server.sql("CREATE USER %s IDENTIFIED BY '%s'; GRANT ALL PRIVILEGES ON *.* TO %s; %s"
                   % (account, LOGIN_PASSWORD, account, extra.format(l=account)))
        target = 'pv_%d' % n
        foreseen, done = (re.sub(r'__opsready_restore_[0-9a-f]{8}', '__opsready_restore_X', verdict(
            server, user, tmp_path / 'b', 'pv', target, check_mode)) for check_mode in (True, False))
        seen[form] = (foreseen[:9], done[:9])
        assert foreseen == done, (form, foreseen, done)
    assert seen == {'global': ('ok', 'ok'), 'no SET USER nor SUPER': ('refused: ', 'refused: '),
                    'no SUPER': ('refused: ', 'refused: '), 'no CREATE VIEW': ('refused: ', 'refused: '),
                    'CREATE VIEW on a wildcard': ('ok', 'ok'), 'no EVENT': ('refused: ', 'refused: '),
                    'no TRIGGER': ('refused: ', 'refused: '), 'no CREATE ROUTINE': ('refused: ', 'refused: '),
                    'SET USER from the default role': ('ok', 'ok'), 'no CREATE': ('refused: ', 'refused: ')}, seen


def told(result):
    """What a user reads of the point a point-in-time restore reaches: point_reached and the warnings about it."""
    return result['point_reached'], [w for w in result.get('warnings', []) if 'SET TIMESTAMP' in w]


def test_check_mode_reports_the_point_the_replay_reaches(mariadb_factory, tmp_path):
    """Binary log stamps need not grow (SET TIMESTAMP). With stop_at, the real restore reads where
    ``--stop-datetime`` ends the replay from the events' headers and, when transactions stamped before stop_at
    follow the event that stopped it, reports the point the copy reaches and says why; check mode reported the
    catalog's point (stop_at) and no warning. Without stop_at, the real run took the last replayed event from the
    tool's text (any transaction it printed, of any database) and check mode from the headers (the source's
    only): after the database's last change another database's transaction made them differ. Both now come from
    one reading of the headers (``replay_point``): check mode says what the real run says."""
    server = mariadb_factory()
    server.sql('CREATE DATABASE pr; USE pr; CREATE TABLE t (id INT PRIMARY KEY); CREATE DATABASE other; '
               'CREATE TABLE other.o (id INT)')
    try:
        backup(server, 'pr', tmp_path / 'b')
        time.sleep(1.1)
        server.sql('USE pr; INSERT INTO t VALUES (1)')
        time.sleep(1.1)
        server.sql('USE pr; SET timestamp = UNIX_TIMESTAMP() + 86400; INSERT INTO t VALUES (2); '
                   'SET timestamp = DEFAULT; INSERT INTO t VALUES (3)')
        time.sleep(1.1)
        stop = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.1)
        server.sql('USE other; INSERT INTO o VALUES (1)')
        time.sleep(1.1)
        backup(server, 'pr', tmp_path / 'b', kind='log')
        for n, stop_at in enumerate((stop, None)):
            target = 'pr_%d' % n
            foreseen = restore(server, tmp_path / 'b', 'pr', target, stop_at=stop_at, check_mode=True)
            done = restore(server, tmp_path / 'b', 'pr', target, stop_at=stop_at)
            assert told(foreseen) == told(done), (stop_at, foreseen, done)
            assert told(done)[1], done
            assert done['point_reached'] == done['recovered_point']['at'], done
    finally:
        server.sql('DROP DATABASE IF EXISTS pr; DROP DATABASE IF EXISTS other; DROP DATABASE IF EXISTS pr_0; '
                   'DROP DATABASE IF EXISTS pr_1')


def test_definer_created_in_the_logs_after_the_dump(mariadb_factory, tmp_path):
    """binlog_format=MIXED. After the dump an administrator creates an account, grants it the database (from a
    session without a default database, as usual: the replay skips both statements) and creates a trigger it is
    the DEFINER of; a statement-logged INSERT fires it. On the same server the replay failed with the bare ERROR
    1142 (TRIGGER command denied): the account's privileges on the source were granted after the dump, so the
    backup had not recorded them and they were not lent to the copy. The privileges the source database's accounts
    hold on this server now are lent too (they hold them on the source's data already): the restore runs, and
    says that the account's privileges on the source were not given to the copy's name. On a server without the
    account the replay cannot run the trigger (ERROR 1449): the restore now says which account the logs made the
    definer after the dump and what to do (create it first), nothing changed; check mode warns of it."""
    server = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    server.sql("CREATE DATABASE nd; USE nd; CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    backup(server, 'nd', tmp_path / 'b')
    time.sleep(1.1)
    server.sql("CREATE USER 'late'@'%'; GRANT SELECT, INSERT, UPDATE, TRIGGER ON nd.* TO 'late'@'%'; USE nd; "
               "CREATE DEFINER = 'late'@'%' TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.id * 10; "
               "INSERT INTO t (id) VALUES (1)")
    time.sleep(1.1)
    backup(server, 'nd', tmp_path / 'b', kind='log')
    result = restore(server, tmp_path / 'b', 'nd', 'nd_r')
    assert server.sql('SELECT id, v FROM nd_r.t') == [('1', '10')]
    said = [w for w in result.get('warnings', []) if 'late@%' in w]
    assert said and 'nd_r' in said[0], result
    assert opsready_rows(server) == [('0',)]
    other = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    # check mode cannot know whether a statement will run the trigger: it says what the real run may meet
    foreseen = restore(other, tmp_path / 'b', 'nd', 'nd', check_mode=True)
    said = [w for w in foreseen.get('warnings', []) if 'late@%' in w and 'after the dump' in w]
    assert said and 'CREATE USER' in said[0], foreseen
    with pytest.raises(OpsReadyError) as failed:
        restore(other, tmp_path / 'b', 'nd', 'nd')
    message = failed.value.message
    assert 'late@%' in message and 'CREATE USER' in message and 'after the dump' in message, message
    assert other.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'nd%'") == [('0',)]
    # with the account created as told, the restore runs
    other.sql("CREATE USER 'late'@'%'; GRANT SELECT, INSERT, UPDATE, TRIGGER ON nd.* TO 'late'@'%'")
    restore(other, tmp_path / 'b', 'nd', 'nd')
    assert other.sql('SELECT id, v FROM nd.t') == [('1', '10')]


def test_check_mode_refuses_a_statement_naming_the_source_as_the_real_run(mariadb_factory, tmp_path):
    """A statement after the dump that names the source database (``INSERT INTO qs.t``, run without USE qs): the
    replay cannot rename it into the copy, and the real restore refuses before replaying anything. Check mode did
    not read the statements and said the restore would run (binlog_format=MIXED: the statement is logged)."""
    server = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    server.sql('CREATE DATABASE qs; USE qs; CREATE TABLE t (id INT PRIMARY KEY)')
    backup(server, 'qs', tmp_path / 'b')
    time.sleep(1.1)
    server.sql('INSERT INTO qs.t VALUES (1)')
    time.sleep(1.1)
    backup(server, 'qs', tmp_path / 'b', kind='log')
    foreseen, done = (verdict(server, server.user, tmp_path / 'b', 'qs', 'qs_r', check_mode) for check_mode in
                      (True, False))
    assert foreseen == done and 'names database qs explicitly' in done, (foreseen, done)


# Accounts as a DBA keeps them: two authentication methods, a password lifetime, resource limits, a locked account,
# a role given as a default role; odd names among them. None of them is in a single-database dump: the restore must
# leave every account as it is (mysql.global_priv byte for byte) while it lends and gives the copy privileges.
ACCOUNTS8 = r"""
CREATE USER 'ä`u"th'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('x1') OR unix_socket
  PASSWORD EXPIRE INTERVAL 90 DAY;
CREATE USER 'lim''it'@'10.%' IDENTIFIED BY 'x2' WITH MAX_QUERIES_PER_HOUR 100 MAX_USER_CONNECTIONS 3 ACCOUNT LOCK;
CREATE ROLE `rô le`;
GRANT `rô le` TO 'lim''it'@'10.%';
SET DEFAULT ROLE `rô le` FOR 'lim''it'@'10.%';
"""

# Kinds a DBA creates, before the dump and in the logs after it (replayed from statements: binlog_format=MIXED).
KINDS8 = r"""
SET NAMES utf8mb4;
CREATE TABLE `t``q"ü` (id INT PRIMARY KEY, v INT, h INT INVISIBLE DEFAULT 5, CONSTRAINT `c'1` CHECK (v >= 0));
CREATE TABLE vers (id INT PRIMARY KEY, x INT) WITH SYSTEM VERSIONING;
CREATE SEQUENCE s1 START WITH 10 INCREMENT BY 5 NOCACHE;
GRANT SELECT, INSERT, UPDATE, TRIGGER ON {db}.* TO 'ä`u"th'@'%';
GRANT SELECT ON {db}.* TO `rô le`;
GRANT UPDATE (v) ON {db}.`t``q"ü` TO 'lim''it'@'10.%';
CREATE DEFINER = 'ä`u"th'@'%' TRIGGER tr1 BEFORE INSERT ON `t``q"ü` FOR EACH ROW SET NEW.v = COALESCE(NEW.v, 0) + 1;
CREATE ALGORITHM = TEMPTABLE DEFINER = `rô le` SQL SECURITY INVOKER VIEW `v w` AS SELECT id, v FROM `t``q"ü`;
CREATE DEFINER = 'lim''it'@'10.%' EVENT ev1 ON SCHEDULE EVERY 1 HOUR STARTS '2036-01-01' ON COMPLETION PRESERVE
  DISABLE ON SLAVE COMMENT 'dis' DO DELETE FROM vers WHERE id < 0;
INSERT INTO `t``q"ü` (id, v) VALUES (1, 1);
INSERT INTO vers VALUES (1, 1);
"""

AFTER8 = r"""
SET NAMES utf8mb4;
CREATE DEFINER = 'ä`u"th'@'%' TRIGGER tr0 BEFORE INSERT ON `t``q"ü` FOR EACH ROW PRECEDES tr1 SET NEW.v = NEW.v * 2;
CREATE DEFINER = 'ä`u"th'@'%' TRIGGER tr2 BEFORE INSERT ON `t``q"ü` FOR EACH ROW FOLLOWS tr1 SET NEW.h = NEW.v;
CREATE ALGORITHM = MERGE SQL SECURITY DEFINER VIEW `v2` AS SELECT id FROM `t``q"ü` WHERE v > 0
  WITH CASCADED CHECK OPTION;
CREATE EVENT ev2 ON SCHEDULE AT '2036-06-01 00:00:00' ON COMPLETION PRESERVE DISABLE DO SELECT 1;
ALTER EVENT ev1 ENABLE;
CREATE SEQUENCE s2 START WITH 1 MAXVALUE 1000 CYCLE CACHE 2;
DO NEXTVAL(s1); DO NEXTVAL(s2);
ALTER TABLE `t``q"ü` ADD COLUMN w INT INVISIBLE DEFAULT 9, ADD CONSTRAINT c2 CHECK (w < 100);
INSERT INTO `t``q"ü` (id, v) VALUES (2, 3);
UPDATE vers SET x = 2 WHERE id = 1;
CREATE TABLE vers2 (id INT) WITH SYSTEM VERSIONING;
INSERT INTO vers2 VALUES (7);
"""


def test_dba_kinds_and_accounts_point_in_time_into_a_64_character_name(mariadb_factory, tmp_path):
    """binlog_format=MIXED. Before the dump and in the logs after it: triggers placed with PRECEDES/FOLLOWS, views
    ALGORITHM=TEMPTABLE/MERGE with SQL SECURITY INVOKER/DEFINER and a CHECK OPTION, events ON COMPLETION PRESERVE
    disabled, DISABLE ON SLAVE and enabled later, sequences (NOCACHE, CYCLE), invisible columns and CHECK
    constraints added, system-versioned tables; definers that are accounts with two authentication methods, a
    password lifetime, resource limits, a lock, and a role given as default role, odd names among them. Restored
    at a point in time into a 64-character non-ASCII name: objects, rows, trigger order, privileges and the
    history's current rows as the source has them, and no account changed (mysql.global_priv). Regression guard."""
    from tests.fidelity.test_mariadb import assert_same, snapshot
    from tests.fidelity.test_mariadb_gaps import extra

    server = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    src, target = 'kä 8', 'ü' * 40 + '-x' + 'y' * 22
    assert len(target) == 64
    server.sql(ACCOUNTS8 + 'CREATE DATABASE %s; USE %s;' % (q(src), q(src)) + KINDS8.format(db=q(src)))
    try:
        backup(server, src, tmp_path / 'b')
        time.sleep(1.1)
        server.sql('USE %s;' % q(src) + AFTER8)
        time.sleep(1.1)
        stop = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.1)
        backup(server, src, tmp_path / 'b', kind='log')
        accounts = server.sql('SELECT User, Host, Priv FROM mysql.global_priv ORDER BY 1, 2')

        def described(db):
            lit = "'%s'" % db.replace("'", "''")
            return {'snapshot': snapshot(server, db), 'extra': extra(server, db),
                    'rows': server.sql('SELECT id, v, h, w FROM %s.`t``q"ü` ORDER BY id' % q(db)),
                    'current': [server.sql('SELECT * FROM %s.%s ORDER BY 1' % (q(db), t)) for t in ('vers', 'vers2')],
                    'sequences': server.sql('SELECT * FROM %s.s1' % q(db)) + server.sql('SELECT * FROM %s.s2' % q(db)),
                    'order': server.sql('SELECT TRIGGER_NAME, ACTION_ORDER FROM information_schema.TRIGGERS '
                                        'WHERE TRIGGER_SCHEMA = %s ORDER BY 2' % lit),
                    'grants': [server.sql('SELECT User, Host, Select_priv, Trigger_priv FROM mysql.db WHERE Db = %s '
                                          'ORDER BY 1' % lit),
                               server.sql('SELECT User, Host, Table_name, Column_name, Column_priv FROM '
                                          'mysql.columns_priv WHERE Db = %s' % lit)]}

        source = described(src)
        assert [r[0] for r in source['order']] == ['tr0', 'tr1', 'tr2'], source['order']
        foreseen = restore(server, tmp_path / 'b', src, target, stop_at=stop, check_mode=True)
        result = restore(server, tmp_path / 'b', src, target, stop_at=stop)
        assert_same(source, described(target), 'point in time into %s' % target)
        assert server.sql('SELECT User, Host, Priv FROM mysql.global_priv ORDER BY 1, 2') == accounts
        assert opsready_rows(server) == [('0',)], result
        assert foreseen.get('warnings') == result.get('warnings'), (foreseen, result)
    finally:
        server.sql("DROP DATABASE IF EXISTS %s; DROP DATABASE IF EXISTS %s; DROP USER IF EXISTS 'ä`u\"th'@'%%'; "
                   "DROP USER IF EXISTS 'lim''it'@'10.%%'; DROP ROLE IF EXISTS `rô le`" % (q(src), q(target)))


def test_check_mode_refuses_what_the_real_run_refuses_before_loading(mariadb_factory, tmp_path):
    """The real restore refuses before loading a dump whose longest INSERT this server's max_allowed_packet refuses
    (the backup records it), and binary logs into a source name mariadb-binlog --rewrite-db cannot express. Check
    mode ran neither check and said the restore would run."""
    server = mariadb_factory()
    server.sql("CREATE DATABASE pk; USE pk; CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB); "
               "INSERT INTO t VALUES (1, REPEAT('x', 3000000)); CREATE DATABASE `a->b`; CREATE TABLE `a->b`.t (id INT)")
    try:
        backup(server, 'pk', tmp_path / 'p')
        backup(server, 'a->b', tmp_path / 'r')
        time.sleep(1.1)
        server.sql('INSERT INTO `a->b`.t VALUES (1)')
        time.sleep(1.1)
        backup(server, 'a->b', tmp_path / 'r', kind='log')
        server.sql('SET GLOBAL max_allowed_packet = 2097152')
        for src, source in ((tmp_path / 'p', 'pk'), (tmp_path / 'r', 'a->b')):
            foreseen, done = (verdict(server, server.user, src, source, 'pk_r', check_mode) for check_mode in
                              (True, False))
            assert foreseen == done and done.startswith('refused: '), (foreseen, done)
    finally:
        server.sql('SET GLOBAL max_allowed_packet = DEFAULT; DROP DATABASE IF EXISTS pk; DROP DATABASE IF EXISTS '
                   '`a->b`')


def absent_said(result):
    return [w for w in result.get('warnings', []) if 'no account of this server' in w and w.startswith('Objects')]


def test_check_mode_names_the_definers_absent_from_the_server_restored_to(mariadb_factory, tmp_path):
    """A restore onto another server (a DR drill's) whose accounts do not include the definers of the dump's objects,
    nor one the logs create a view of after the dump: the real run warns that those objects fail on use and names
    the accounts to create; check mode said nothing. It now says the same."""
    server = mariadb_factory()
    server.sql("CREATE USER 'gone'@'%'; CREATE USER 'late v'@'%'; CREATE DATABASE ad; USE ad; "
               "CREATE TABLE t (id INT); CREATE DEFINER = 'gone'@'%' VIEW v AS SELECT id FROM t; "
               "CREATE DEFINER = 'gone'@'%' PROCEDURE p() SELECT 1")
    backup(server, 'ad', tmp_path / 'b')
    time.sleep(1.1)
    server.sql("USE ad; CREATE DEFINER = 'late v'@'%' SQL SECURITY INVOKER VIEW w AS SELECT id FROM t")
    time.sleep(1.1)
    backup(server, 'ad', tmp_path / 'b', kind='log')
    other = mariadb_factory()
    foreseen = restore(other, tmp_path / 'b', 'ad', 'ad', check_mode=True)
    done = restore(other, tmp_path / 'b', 'ad', 'ad')
    assert absent_said(done) and 'late v@%' in absent_said(done)[0], done
    assert absent_said(foreseen) == absent_said(done), (foreseen, done)
