"""EventStatusRewriter: every event statement of a dump loads DISABLE and its status is recorded, whatever the
chunking, whatever the name, comment and body hold; nothing else in the stream changes."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    LINE_CARRY, EventStatusRewriter)

FRAME = b"/*!50003 SET time_zone             = 'SYSTEM' */ ;;\n"
HEAD = b'/*!50106 CREATE*/ /*!50117 DEFINER=`opsready`@`%`*/ /*!50106 EVENT '


def event(name: bytes, rest: bytes, zone: bytes = FRAME) -> bytes:
    return (b'DELIMITER ;;\n' + zone + HEAD + name + b' ON SCHEDULE EVERY 1 SECOND STARTS \'2026-12-05 20:37:12\' '
            + rest)


DUMP = (b"INSERT INTO `t` VALUES (1,'ON COMPLETION PRESERVE ENABLE');\n"
        + event(b'`tick`', b'ON COMPLETION PRESERVE ENABLE DO INSERT INTO t VALUES (1) \n*/ ;;\n')
        + event(b'`we``ird ON COMPLETION PRESERVE DISABLE`', b"ON COMPLETION NOT PRESERVE ENABLE COMMENT "
                b"'ENABLE DO x\\n''*/' DO INSERT INTO t VALUES ('DISABLE') \n*/ ;;\n")
        + event(b'`sl\nave`', b'ON COMPLETION PRESERVE DISABLE ON SLAVE DO BEGIN\n  SET @x = 1; -- ENABLE\n'
                b'END \n*/ ;;\n',
                b"/*!50003 SET time_zone             = 'Europe/Paris' */ ;;\n")
        + event(b'`off`', b"ON COMPLETION PRESERVE DISABLE COMMENT 'c' DO SET @y = 'ON COMPLETION PRESERVE ENABLE' \n"
                b"*/ ;;\n")
        + event(b'`\xc3\xa9t\xc3\xa9`', b'ON COMPLETION PRESERVE ENABLE DO SET @z = 1 \n*/ ;;\n')
        # a routine whose body holds an event statement without the dump's time zone line before it: untouched
        + b'DELIMITER ;;\nCREATE PROCEDURE p()\nBEGIN\n' + HEAD + b'`inner` ON SCHEDULE EVERY 1 SECOND ON COMPLETION '
        b'PRESERVE ENABLE DO SET @a = 1 */;\nEND ;;\nDELIMITER ;\n')
EXPECTED = (DUMP.replace(b'`tick` ON SCHEDULE EVERY 1 SECOND STARTS \'2026-12-05 20:37:12\' ON COMPLETION PRESERVE '
                         b'ENABLE', b'`tick` ON SCHEDULE EVERY 1 SECOND STARTS \'2026-12-05 20:37:12\' ON COMPLETION '
                         b'PRESERVE DISABLE')
            .replace(b'NOT PRESERVE ENABLE COMMENT', b'NOT PRESERVE DISABLE COMMENT')
            .replace(b'DISABLE ON SLAVE DO', b'DISABLE DO')
            .replace(b'`\xc3\xa9t\xc3\xa9` ON SCHEDULE EVERY 1 SECOND STARTS \'2026-12-05 20:37:12\' ON COMPLETION '
                     b'PRESERVE ENABLE', b'`\xc3\xa9t\xc3\xa9` ON SCHEDULE EVERY 1 SECOND STARTS '
                     b'\'2026-12-05 20:37:12\' ON COMPLETION PRESERVE DISABLE'))
STATUSES = {'tick': 'ENABLED', 'we`ird ON COMPLETION PRESERVE DISABLE': 'ENABLED', 'sl\nave': 'SLAVESIDE_DISABLED',
            'off': 'DISABLED', '\u00e9t\u00e9': 'ENABLED'}


def run(data: bytes, size: int) -> EventStatusRewriter:
    rewriter = EventStatusRewriter()
    out = b''.join(rewriter.feed(data[i:i + size]) for i in range(0, len(data), size)) + rewriter.flush()
    assert out == EXPECTED, size
    return rewriter


def test_every_chunking():
    assert DUMP.count(b'ENABLE') - EXPECTED.count(b'ENABLE') == 3
    for size in list(range(1, 80)) + [100, 1000, len(DUMP)]:
        rewriter = run(DUMP, size)
        assert rewriter.statuses == STATUSES and rewriter.unread == 0, size


def test_long_lines_pass_on():
    rewriter = EventStatusRewriter()
    out = rewriter.feed(b'INSERT INTO `t` VALUES ' + b'(1),' * LINE_CARRY)
    assert len(out) > 3 * LINE_CARRY and not rewriter.carry
    # an event whose body is one line longer than any carry: its header is rewritten, the body passes on
    body = b"SET @x = '" + b'x' * (4 * LINE_CARRY) + b"' \n*/ ;;\nDELIMITER ;\n"
    data = event(b'`big`', b'ON COMPLETION PRESERVE ENABLE DO ' + body)
    rewriter = EventStatusRewriter()
    out = b''.join(rewriter.feed(data[i:i + 4096]) for i in range(0, len(data), 4096)) + rewriter.flush()
    assert out == data.replace(b'PRESERVE ENABLE DO', b'PRESERVE DISABLE DO')
    assert rewriter.statuses == {'big': 'ENABLED'}


def test_unreadable_statement_loads_as_it_is():
    data = event(b'`odd`', b'ON COMPLETION PRESERVE SOMETIMES DO SET @a = 1 \n*/ ;;\n')
    rewriter = EventStatusRewriter()
    assert rewriter.feed(data) + rewriter.flush() == data
    assert rewriter.unread == 1 and rewriter.statuses == {}
