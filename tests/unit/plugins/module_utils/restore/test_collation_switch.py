"""mariadb-dump's collation switch lines around a routine, trigger or event name the dumped database; they are
pointed at the database the script is loaded into, whatever the chunk boundaries, and nothing else changes."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (
    CollationSwitchRewriter)

DUMP = (b"ALTER DATABASE `c``s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci ;\n"
        b"CREATE PROCEDURE p() SELECT 'ALTER DATABASE `c``s` CHARACTER SET x COLLATE y ;'\n"
        b"ALTER DATABASE `other` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;\n"
        b"ALTER DATABASE `c``s` CHARACTER SET latin1 COLLATE latin1_german1_ci ;;\n")
WANT = DUMP.replace(b"ALTER DATABASE `c``s` CHARACTER SET utf8mb4", b"ALTER DATABASE `t``mp` CHARACTER SET utf8mb4") \
    .replace(b"ALTER DATABASE `c``s` CHARACTER SET latin1", b"ALTER DATABASE `t``mp` CHARACTER SET latin1")


def test_every_chunking():
    for size in (1, 7, 50, len(DUMP)):
        rewriter = CollationSwitchRewriter('c`s', 't`mp')
        out = b''.join(rewriter.feed(DUMP[i:i + size]) for i in range(0, len(DUMP), size)) + rewriter.flush()
        assert out == WANT and rewriter.renamed == 2
