"""TriggerQualifierStripper: the source database's name goes from a dump's trigger headers, whatever the chunking;
nothing else in the stream changes; a long line that is no trigger header is never held back."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    LINE_CARRY, TriggerQualifierStripper)

DUMP = (b"INSERT INTO `t` VALUES (1,'/*!50003 CREATE*/ /*!50003 TRIGGER `db`.x BEFORE INSERT ON `db`.t');\n"
        b"DELIMITER ;;\n"
        b"/*!50003 CREATE*/ /*!50017 DEFINER=`gh``o st`@`%`*/ /*!50003 TRIGGER `my db%`.`tr` BEFORE INSERT ON "
        b"`my db%`.`t` FOR EACH ROW SET NEW.x = '`my db%`.' */;;\n"
        b"/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 trigger plain_db . tr2 after update on "
        b"t FOR EACH ROW SET @a = 1 */;;\n"
        b"/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER tr3 AFTER DELETE ON t FOR EACH "
        b"ROW SET @b = 1 */;;\n"
        b"/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER \xc3\xa9.tr4 BEFORE DELETE ON "
        b"\xc3\xa9.t FOR EACH ROW SET @c = 1 */;;\n"
        b"DELIMITER ;\n")
EXPECTED = (DUMP.replace(b'TRIGGER `my db%`.`tr` BEFORE INSERT ON `my db%`.`t`', b'TRIGGER `tr` BEFORE INSERT ON `t`')
            .replace(b'trigger plain_db . tr2', b'trigger tr2')
            .replace(b'TRIGGER \xc3\xa9.tr4 BEFORE DELETE ON \xc3\xa9.t', b'TRIGGER tr4 BEFORE DELETE ON t'))


def run(data: bytes, size: int) -> bytes:
    stripper = TriggerQualifierStripper()
    out = b''.join(stripper.feed(data[i:i + size]) for i in range(0, len(data), size)) + stripper.flush()
    assert stripper.stripped == 3
    return out


def test_every_chunking():
    for size in (1, 2, 7, 64, 100, len(DUMP)):
        assert run(DUMP, size) == EXPECTED, size


def test_long_line_not_held():
    stripper = TriggerQualifierStripper()
    out = stripper.feed(b'INSERT INTO `t` VALUES ' + b'(1),' * LINE_CARRY)
    assert len(out) > 4 * LINE_CARRY - LINE_CARRY and not stripper.carry
    assert stripper.feed(b'(2);\n') == b'(2);\n'


def test_rest_of_a_long_line_is_not_a_line_start():
    """A long INSERT whose literal holds a trigger header right where a chunk starts is never rewritten."""
    fake = b'/*!50003 CREATE*/ /*!50003 TRIGGER `db`.x BEFORE INSERT ON `db`.t FOR EACH ROW SET @a = 1'
    line = b"INSERT INTO `t` VALUES ('" + b'a' * (LINE_CARRY + 10) + fake + b"');\n"
    first = len(line) - len(fake) - 4  # the next chunk starts with the fake header
    stripper = TriggerQualifierStripper()
    out = stripper.feed(line[:first]) + stripper.feed(line[first:]) + stripper.feed(DUMP) + stripper.flush()
    assert out == line + EXPECTED
