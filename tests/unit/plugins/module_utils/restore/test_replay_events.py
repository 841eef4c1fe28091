"""ReplayEventRewriter: every event statement of a binlog replay loads DISABLE and the status it gives the event is
recorded (following RENAME TO), whatever the chunking, the comments, strings and names; nothing else changes."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    STATEMENT_CARRY, ReplayEventRewriter)

END = b'/*!*/;\n'


def stream(*statements: bytes) -> bytes:
    return b''.join(b'# at 4\n#261206  0:10:00 server id 1  end_log_pos 9 \tQuery\n' + s + b'\n' + END
                    for s in statements)


BEFORE = [
    b"SET TIMESTAMP=1796515578/*!*/;\nINSERT INTO t VALUES ('CREATE EVENT x ON SCHEDULE EVERY 1 SECOND DO SET @a=1')",
    b"CREATE DEFINER=`o`@`%` EVENT made_on ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE DO CALL note('x')",
    b"CREATE DEFINER=`o`@`%` EVENT `made ENABLE` ON SCHEDULE EVERY 1 SECOND /* DISABLE */ ENABLE\n"
    b"  COMMENT 'DISABLE' DO CALL note('made ENABLE')",
    b'create event if not exists `was_on` on schedule every (1 + 1) second starts now() enable do set @e = 1',
    b'CREATE OR REPLACE EVENT `\xc3\xa9t\xc3\xa9` ON SCHEDULE AT CURRENT_TIMESTAMP + INTERVAL 1 DAY COMMENT \'c\' '
    b'DO set @x = 1',
    b'CREATE EVENT off ON SCHEDULE EVERY 1 SECOND DISABLE -- ENABLE\n DO SET @y = "ENABLE"',
    b'CREATE EVENT sl ON SCHEDULE EVERY 1 SECOND DISABLE ON SLAVE DO SET @y = 1',
    b'ALTER EVENT WAS_OFF ENABLE',
    b'ALTER EVENT was_on DISABLE',
    b'ALTER DEFINER=CURRENT_USER EVENT renamed RENAME TO `renamed 2`',
    b'ALTER EVENT sl ON SCHEDULE EVERY 2 SECOND',
    b'ALTER TABLE t ADD COLUMN event INT, RENAME TO x',
    b'CREATE PROCEDURE p() BEGIN CREATE EVENT y ON SCHEDULE EVERY 1 SECOND DO SET @a = 1; END',
]
AFTER = [
    BEFORE[0],
    BEFORE[1].replace(b'DO CALL', b'DISABLE DO CALL'),
    BEFORE[2].replace(b'*/ ENABLE', b'*/ DISABLE'),
    BEFORE[3].replace(b'now() enable', b'now() DISABLE'),
    BEFORE[4].replace(b"DAY COMMENT", b"DAY DISABLE COMMENT"),
    BEFORE[5],
    BEFORE[6].replace(b'DISABLE ON SLAVE', b'DISABLE'),
    BEFORE[7].replace(b'ENABLE', b'DISABLE'),
    BEFORE[8],
    BEFORE[9],
    BEFORE[10],
    BEFORE[11],
    BEFORE[12],
]
DUMPED = {'was_on': 'ENABLED', 'was_off': 'DISABLED', 'renamed': 'ENABLED'}
STATUSES = {'made_on': 'ENABLED', 'made ENABLE': 'ENABLED', 'was_on': 'DISABLED', '\u00e9t\u00e9': 'ENABLED',
            'off': 'DISABLED', 'sl': 'SLAVESIDE_DISABLED', 'was_off': 'ENABLED', 'renamed 2': 'ENABLED'}


def run(data: bytes, size: int) -> ReplayEventRewriter:
    rewriter = ReplayEventRewriter(DUMPED)
    out = b''.join(rewriter.feed(data[i:i + size]) for i in range(0, len(data), size)) + rewriter.flush()
    rewriter.out = out  # type: ignore[attr-defined]
    return rewriter


def test_every_chunking_gives_the_same_stream_and_statuses():
    data, want = stream(*BEFORE), stream(*AFTER)
    for size in (1, 2, 3, 7, 64, 4096, len(data)):
        rewriter = run(data, size)
        assert rewriter.out == want, size
        assert rewriter.statuses == STATUSES, size


def test_long_statements_pass_on_and_a_long_event_body_is_still_rewritten():
    big = b"INSERT INTO t VALUES ('" + b'x' * (3 * STATEMENT_CARRY) + b"')"
    body = b'CREATE EVENT long_body ON SCHEDULE EVERY 1 SECOND DO SET @x = \'' + b'y' * (2 * STATEMENT_CARRY) + b"'"
    data = stream(big, body, BEFORE[1])
    want = stream(big, body.replace(b'SECOND DO', b'SECOND DISABLE DO'), AFTER[1])
    for size in (4096, 65536, len(data)):
        rewriter = run(data, size)
        assert rewriter.out == want, size
        assert rewriter.statuses['long_body'] == 'ENABLED' and rewriter.statuses['made_on'] == 'ENABLED'
