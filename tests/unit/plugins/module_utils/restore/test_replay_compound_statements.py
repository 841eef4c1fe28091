"""A statement that runs statements of its own (a ``BEGIN NOT ATOMIC`` block, a top-level IF/CASE/LOOP/WHILE/REPEAT/
FOR, a labelled one, CALL, EXECUTE, PREPARE) is never replayed: MariaDB logs the statements such a block runs one by
one (``tests/fidelity/test_mariadb_round13.py`` shows it on a real server), so a stream holding one was not written as
the server ran it, and what it would run (an account statement, dynamic SQL, a procedure's body) cannot be read from
it. The replay refuses it, naming it and saying what to do."""

from __future__ import annotations

import subprocess  # nosec B404

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    STATEMENT_CARRY, ReplayEventRewriter, check_statements, statement_kind)

END = b'/*!*/;\n'
HEADER = b'# at 4\n#261206  0:10:00 server id 1  end_log_pos 9 \tQuery\tthread_id=5\n'

COMPOUND = [
    b"BEGIN NOT ATOMIC INSERT INTO t VALUES (1); GRANT ALL ON *.* TO w; END",
    b"begin /* c */ not atomic create user u; end",
    b"/*!100000 BEGIN NOT ATOMIC */ DROP USER u; END",
    b"IF 1 THEN GRANT SELECT ON t TO w; END IF",
    b"CASE WHEN 1 THEN SET PASSWORD FOR w = ''; END CASE",
    b"lbl: LOOP CREATE ROLE r; LEAVE lbl; END LOOP",
    b"lbl : BEGIN NOT ATOMIC REVOKE ALL ON *.* FROM w; END",
    b"WHILE 0 DO ALTER USER w IDENTIFIED BY 'pw'; END WHILE",
    b"REPEAT RENAME USER a TO b; UNTIL 1 END REPEAT",
    b"FOR i IN 1..2 DO DROP ROLE r; END FOR",
    b"CALL p()", b"call db.p(1)",
    b"EXECUTE IMMEDIATE CONCAT('GR', 'ANT ALL ON *.* TO w')",
    b"PREPARE s FROM 'CREATE USER u'", b"EXECUTE s",
    b"SET STATEMENT max_statement_time=1 FOR CALL p()",
]


@pytest.mark.parametrize('statement', COMPOUND)
def test_a_statement_that_runs_statements_is_refused_by_the_replay(statement):
    """Failed before: the block (or CALL, EXECUTE) was 'other' and replayed as written: the account statements it ran
    (or a procedure's, or a string's) changed this server's live accounts."""
    assert statement_kind(statement) == 'compound'
    data = HEADER + b'SELECT 1\n' + END + HEADER + statement + b'\n' + END
    for size in (5, 4096, len(data)):
        rewriter = ReplayEventRewriter({})
        with pytest.raises(OpsReadyError, match='stop_at') as refused:
            for i in range(0, len(data), size):
                rewriter.feed(data[i:i + size])
            rewriter.flush()
        assert 'runs statements of its own' in str(refused.value)
        assert b'pw' not in statement or 'pw' not in str(refused.value)


def test_a_long_one_is_refused_too():
    """Failed before: passed on as it came."""
    data = HEADER + b'BEGIN NOT ATOMIC GRANT ALL ON *.* TO w; /* ' + b'c' * 2 * STATEMENT_CARRY + b' */ END\n' + END
    rewriter = ReplayEventRewriter({})
    with pytest.raises(OpsReadyError, match='runs statements of its own'):
        for i in range(0, len(data), 4096):
            rewriter.feed(data[i:i + 4096])
        rewriter.flush()


@pytest.mark.parametrize('statement', [
    b'BEGIN', b'BEGIN WORK', b"SELECT REPEAT('x', 3)", b'SELECT IF(1, 2, 3)',
    b'INSERT INTO t SELECT CASE WHEN 1 THEN 2 END',
    b"INSERT INTO t VALUES ('BEGIN NOT ATOMIC')", b'CREATE PROCEDURE p() BEGIN GRANT SELECT ON t TO w; END',
    b'CREATE TABLE call_log (id INT)', b'SELECT 1 FOR UPDATE', b'LOCK TABLES t WRITE'])
def test_other_statements_are_not(statement):
    """Guard: a transaction's BEGIN, functions named like the blocks' words, and a procedure's definition (it runs
    nothing when created; MariaDB logs what a CALL of it runs, one by one) are not blocks."""
    assert statement_kind(statement) == 'other'


class _Stream:
    """An engine whose mariadb-binlog prints ``path`` (a real process: ``cat``), for ``check_statements``."""

    def __init__(self, path):
        self.path = path
        self.runner = self

    @staticmethod
    def query(_sql):
        return [('pr',), ('mysql',)]

    def popen(self, _argv, env=None):
        return subprocess.Popen(['cat', str(self.path)], stdout=subprocess.PIPE, env=env)

    @staticmethod
    def finish(proc, _argv, what=None):
        proc.wait()
        return ''


@pytest.mark.parametrize('statement', [COMPOUND[0], COMPOUND[10], COMPOUND[12]])
def test_the_scan_refuses_it_before_anything_is_made(tmp_path, statement):
    """Failed before: the scan before the replay let it through."""
    path = tmp_path / 'stream'
    path.write_bytes(b'DELIMITER /*!*/;\nuse `pr`/*!*/;\nSET TIMESTAMP=1/*!*/;\n' + statement + b'\n' + END)
    with pytest.raises(OpsReadyError, match='Nothing was restored') as refused:
        check_statements(_Stream(path), ['mariadb-binlog'], [], 'pr')
    assert 'runs statements of its own' in str(refused.value) and 'stop_at' in str(refused.value)
