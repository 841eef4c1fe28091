"""LongestInsert: the longest INSERT statement of a dump stream (mariadb-dump's one row a line, mysqldump's one
statement a line) and its table, whatever the chunking."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.backup import LongestInsert

DUMP = (b'CREATE TABLE `x` (\n  `id` int(11) NOT NULL\n);\n'
        b'INSERT INTO `a` VALUES\n(1,0x' + b'41' * 500 + b'),\n(2,NULL);\n'
        b'INSERT INTO `we``ird` VALUES\n(1,\'' + b'b' * 2000 + b'\');\n'
        b'/*!40000 ALTER TABLE `b` ENABLE KEYS */;\n'
        b'INSERT INTO `one line` VALUES (1,\'' + b'c' * 1500 + b'\'),(2,\'d\');\n'
        b'-- ' + b'e' * 5000 + b'\n')


def test_longest_insert_whatever_the_chunking():
    for size in (1, 3, 100, 4096, len(DUMP)):
        meter = LongestInsert()
        for i in range(0, len(DUMP), size):
            meter.feed(DUMP[i:i + size])
        assert (meter.table, meter.longest) == ('we`ird', len(b'INSERT INTO `we``ird` VALUES\n(1,\'') + 2000 + 3), size
