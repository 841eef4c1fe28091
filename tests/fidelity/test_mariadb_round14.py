"""Fidelity, MariaDB, round 14: the replay's scan reads a statement's names in its client character set, and reads
the stored bodies as the server prints them.

- A statement sent in gbk (binlog_format=STATEMENT) holding ``'\\xbf\\x5c'`` (one gbk character, its second byte a
  backslash) was read byte by byte: the backslash escaped the quote, and the call of ``pr_live.bump()`` after it was
  read as inside a string. The replay ran it, and the live pr_live.audit got its row a second time. Now refused.
- A trigger whose body holds ``'x\\\\'`` (MariaDB prints it ``'x\\'`` in information_schema) and then the string
  ``'mysql.user'`` was read every way: under the reading with backslash escapes ``mysql.user`` was code, and every
  statement-logged INSERT into its table refused the restore. Now read as the server prints it: restored.
- Check mode read the source's view over its own table as foreign (VIEW_DEFINITION qualifies it with the view's own
  database), where the real run, which renames those in the copy, restored. Now both restore.

Earlier rounds: ``test_mariadb*.py``."""

from __future__ import annotations

import datetime
import subprocess  # nosec B404
import time
from typing import Any, Dict, Iterator

import pytest

from tests.fidelity.test_mariadb_gaps import backup, restore
from tests.harness.servers import MariaDBServer

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

BEFORE = ("CREATE DATABASE pr; CREATE DATABASE pr_live; CREATE TABLE pr_live.audit (id INT); "
          "CREATE TABLE pr.t (id INT, a VARCHAR(20), b VARCHAR(20)) DEFAULT CHARSET utf8mb4; "
          "CREATE TABLE pr.n (id INT, note TEXT, b TEXT); CREATE VIEW pr.v AS SELECT id FROM pr.n; "
          "CREATE TRIGGER pr.tn BEFORE INSERT ON pr.n FOR EACH ROW SET NEW.note = 'x\\\\', NEW.b = 'mysql.user';\n"
          "DELIMITER //\nCREATE FUNCTION pr_live.bump(x INT) RETURNS INT DETERMINISTIC MODIFIES SQL DATA "
          "BEGIN INSERT INTO pr_live.audit VALUES (x); RETURN x; END//\nDELIMITER ;")
# sent in gbk with USE pr: read byte by byte, pr_live.bump(7) is inside the string from the first quote to the third
GBK = (b"SET binlog_format=STATEMENT; USE pr; "
       b"INSERT INTO t VALUES (1, '\xbf\x5c', 'x'), (pr_live.bump(7), 'y', 'z');\n")
# statement-logged writes through the trigger and the view of pr (nothing in them reaches another database)
QUIET = "SET binlog_format=STATEMENT; USE pr; INSERT INTO n (id) VALUES (1); INSERT INTO v (id) VALUES (2)"


def as_gbk_superuser(server, sql: bytes) -> None:
    argv = [server.bin('mariadb'), '--defaults-file=%s' % server.option_file(superuser=True),
            '--default-character-set=gbk']
    subprocess.run(argv, input=sql, env=server._client_env(), capture_output=True, check=True)


@pytest.fixture(scope='module')
def replayed(tmp_path_factory) -> Iterator[Dict[str, Any]]:
    tmp = tmp_path_factory.mktemp('round14')
    server = MariaDBServer()
    try:
        server.start()
        server.sql(BEFORE, superuser=True)
        out: Dict[str, Any] = {'server': server}
        stops: Dict[str, datetime.datetime] = {}
        for name in ('gbk', 'quiet'):
            backup(server, 'pr', tmp / name)
            time.sleep(1.1)
            if name == 'gbk':
                as_gbk_superuser(server, GBK)
            else:
                server.sql(QUIET, superuser=True)
            time.sleep(1.1)
            stops[name] = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.1)
        server.sql('CREATE TABLE pr_live.later (id INT)', superuser=True)   # the logs go on past the last stop_at
        for name in stops:
            backup(server, 'pr', tmp / name, kind='log')
        out['bodies'] = server.sql("SELECT ACTION_STATEMENT FROM information_schema.TRIGGERS "
                                   "WHERE TRIGGER_SCHEMA = 'pr'")
        for name, stop in stops.items():
            out[name + '_audit_before'] = server.sql('SELECT id FROM pr_live.audit ORDER BY id')
            try:
                out[name + '_check'] = restore(server, tmp / name, 'pr', 'pr_' + name, stop_at=stop, check_mode=True)
            except Exception as exc:
                out[name + '_check'] = exc
            try:
                out[name] = restore(server, tmp / name, 'pr', 'pr_' + name, stop_at=stop)
                out[name + '_rows'] = server.sql('SELECT id, note, b FROM pr_%s.n ORDER BY id' % name)
            except Exception as exc:   # each test names the failure
                out[name] = exc
            out[name + '_audit'] = server.sql('SELECT id FROM pr_live.audit ORDER BY id')
            out[name + '_left'] = server.sql("SHOW DATABASES LIKE 'pr\\_%s%%'" % name)
        yield out
    finally:
        server.cleanup()


def test_the_server_prints_a_trigger_string_with_its_backslash_as_itself(replayed):
    """Guard (what ``body_reading`` relies on): 'x\\\\' is printed 'x\\' in information_schema."""
    assert replayed['bodies'] == [("SET NEW.note = 'x\\', NEW.b = 'mysql.user'",)]


def test_a_gbk_statement_calling_another_database_after_a_character_ending_in_0x5c_is_refused(replayed):
    """Failed before: the restore succeeded and the replay ran pr_live.bump(7) again (pr_live.audit got 7 twice)."""
    refused = replayed['gbk']
    assert replayed['gbk_audit'] == replayed['gbk_audit_before'] == [('7',)]
    assert isinstance(refused, OpsReadyError), (refused, replayed.get('gbk_rows'))
    assert 'names database pr_live' in str(refused) and 'Nothing was restored' in str(refused)
    assert replayed['gbk_left'] == []
    foreseen = replayed['gbk_check']
    assert isinstance(foreseen, OpsReadyError) and str(foreseen) == str(refused), foreseen


def test_a_trigger_with_a_string_naming_mysql_user_does_not_refuse_and_check_mode_agrees(replayed):
    """Failed before: the real run refused ('trigger tn' reaches another database: mysql.user read as code under the
    escapes reading), and check mode refused the view v too (its definition names pr, the source). Both restore."""
    assert not isinstance(replayed['quiet_check'], Exception), replayed['quiet_check']
    assert not isinstance(replayed['quiet'], Exception), replayed['quiet']
    assert replayed['quiet_rows'] == [('1', 'x\\', 'mysql.user'), ('2', 'x\\', 'mysql.user')]
    assert replayed['quiet_audit'] == replayed['quiet_audit_before']
