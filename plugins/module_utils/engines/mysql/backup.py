# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB / MySQL: logical dumps with the binary log coordinates, and closed binary logs as ``log``
artifacts positioned by binlog file index.

``full`` runs ``mariadb-dump`` (``mysqldump`` for MySQL) with ``--single-transaction --routines --events
--triggers --master-data=2``; the binlog file and position are read from the ``CHANGE MASTER`` comment
in the dump itself, so they belong to the dump's snapshot. ``log`` flushes the binary log and fetches
every closed binlog not yet in the catalog with ``mariadb-binlog --read-from-remote-server --raw``.

Secrets: credentials go to the tools in a temporary 0600 ``--defaults-extra-file``, never argv.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import struct
import zlib
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest, local_origin
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import PARTIAL_SUFFIX
from ansible_collections.opsready.operations.plugins.module_utils.common.cleanup import remove_staging, told_staging
from ansible_collections.opsready.operations.plugins.module_utils.common.scratch import scratch
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    IntegrityError, OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import (
    ALL_DATABASES, BackupOptions, Engine)
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import (
    disk_error, open_artifact, stream_file_to_artifact, stream_to_artifact)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.grants import (
    database_named, kept_database, read_grants)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.quote import (
    check_identifier, qualified, quote_identifier, quote_literal)
# The client's names, imported from here by older code (and other branches): one definition.
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.client import (  # noqa: F401  # pylint: disable=unused-import
    CONNECT_ERRORS, MAX_PACKET, TOOLS, MySQLClient)

CHANGE_MASTER = re.compile(rb"CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^']+)',\s*"
                           rb"(?:MASTER|SOURCE)_LOG_POS=(\d+)")
GTID = re.compile(rb"gtid_slave_pos='([^']*)'")
BINLOG_MAGIC = b'\xfebin'
EVENT_HEADER = struct.Struct('<IBIII')  # timestamp, type, server_id, event_length, next_position (+2 flags)
INSERT_HEAD = re.compile(rb'INSERT INTO `((?:[^`]|``)+)`')


class LongestInsert:
    """The longest ``INSERT`` statement of a dump stream and its table: the client sends each statement in one
    packet, and a server whose max_allowed_packet is shorter refuses it (one row's INSERT: a BLOB is written as hex,
    twice its size; mariadb-dump starts a new INSERT every net_buffer_length bytes, so only a long row makes a long
    statement). A statement ends with ``;`` and a line break: inside a value the dump writes a line break escaped
    (``\\n``). Statements are counted, not lines (mariadb-dump writes a row a line: a loop per line cost seconds per
    million rows)."""

    def __init__(self) -> None:
        self.length = 0        # of the current statement so far (from the end of the last one)
        self.head = b''        # its first bytes: comment lines, then the statement
        self.semicolon = False   # the last chunk ended with ';'
        self.longest = 0
        self.table: Optional[str] = None

    def _add(self, part: bytes) -> None:
        if len(self.head) < 512:
            self.head += part[:512 - len(self.head)]
        self.length += len(part)

    def _ended(self) -> None:
        at = self.head.find(b'INSERT INTO `')
        if at >= 0 and (at == 0 or self.head[at - 1:at] == b'\n') and self.length - at > self.longest:
            match = INSERT_HEAD.match(self.head, at)
            if match:
                self.longest = self.length - at
                self.table = match.group(1).replace(b'``', b'`').decode('utf-8', 'replace')
        self.length, self.head = 0, b''

    def feed(self, data: bytes) -> None:
        pos = 0
        if self.semicolon and data[:1] == b'\n':
            self._ended()
            pos = 1
        while True:
            end = data.find(b';\n', pos)
            if end < 0:
                self._add(data[pos:])
                break
            self._add(data[pos:end + 1])
            self._ended()
            pos = end + 2
        self.semicolon = data[-1:] == b';'


def stored_as(expression: str, data_type: str, column_type: str, length: str, precision: str,
              charset: str = '') -> Optional[str]:
    """``expression`` converted as storing it in a column of that type converts it, where CAST can say so; None
    where it cannot (ENUM, SET, BINARY, YEAR, BIT, BLOB, JSON, INET6, spatial types...: their stored value differs
    from the raw expression, 'b,a' is the SET 'a,b', and the caller stores the expression to compare it)."""
    data_type, column_type = data_type.lower(), column_type.lower()
    numbers = re.findall(r'\d+', column_type)
    if data_type in ('tinyint', 'smallint', 'mediumint', 'int', 'bigint'):
        kind = 'UNSIGNED' if 'unsigned' in column_type else 'SIGNED'
    elif data_type == 'decimal' and len(numbers) >= 2:
        kind = 'DECIMAL(%s,%s)' % (numbers[0], numbers[1])
    elif (data_type in ('char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext') and length.isdigit()
          and re.match(r'^\w+$', charset or 'utf8mb4')):
        # in the column's character set: a character it cannot hold is stored as '?'
        kind = 'CHAR(%s) CHARACTER SET %s' % (length, charset or 'utf8mb4')
    elif data_type in ('double', 'float'):
        kind = data_type.upper()
    elif data_type == 'date':
        kind = 'DATE'
    elif data_type in ('datetime', 'timestamp', 'time') and precision.isdigit():
        kind = '%s(%s)' % ('TIME' if data_type == 'time' else 'DATETIME', precision)
    else:
        return None
    if data_type == 'char':   # read back without its trailing spaces (unequal to the expression's under NO PAD)
        return "TRIM(TRAILING ' ' FROM CAST((%s) AS %s))" % (expression, kind)
    return 'CAST((%s) AS %s)' % (expression, kind)


def generated_unchecked_text(unchecked: Dict[str, str]) -> str:
    """What a backup (and every restore of its dump) says of the tables whose STORED generated values could not be
    compared with what a load computes (``MySQLEngine.generated_recomputed``)."""
    denied = any('denied' in why.lower() for why in unchecked.values())
    what = ('grant the backup login CREATE TEMPORARY TABLES on the database and back up again, or compare those '
            'columns after a restore' if denied else 'compare those columns after a restore')
    return ('the STORED generated values of table(s) %s were not checked against what a load computes (the check '
            'copies them into a temporary table, which failed: %s), so values a restore computes differently would '
            'not be named: %s' % (', '.join(sorted(unchecked)),
                                  '; '.join('%s: %s' % kv for kv in sorted(unchecked.items())), what))


def binlog_index(name: str) -> int:
    match = re.search(r'\.(\d+)$', name)
    if not match:
        raise OpsReadyError('%r is not a binary log file name (expected <base>.<number>).' % name)
    return int(match.group(1))


FORMAT_DESCRIPTION_EVENT = 15
CRC32_ALG = 1   # binlog_checksum=CRC32: the Format_description_event's byte before its own 4-byte checksum


def scan_binlog(path: str) -> Dict[str, Any]:
    """Walk the events of a raw binlog: event count, first/last event time; raises on damage.

    A log written with ``binlog_checksum=CRC32`` (the default) carries the CRC32 of every event in its last 4 bytes;
    each is checked. Before, only the headers were walked: a byte changed inside an event (on the server's disk,
    before the copy) was backed up, verified and replayed by ``mariadb-binlog`` (which checks no CRC by default) as
    a wrong value, without a word."""
    events, first, last = 0, None, None
    crc = False
    for offset, header, body in walk_binlog(path):
        timestamp, kind = EVENT_HEADER.unpack_from(header)[:2]
        if events == 0 and kind == FORMAT_DESCRIPTION_EVENT and len(body) >= 5 and body[-5] == CRC32_ALG:
            # the first event says whether the log has checksums; only believed when its own one matches (a
            # server older than checksums ends this event with a length table, whose byte may be 1 too)
            crc = zlib.crc32(header + body[:-4]) == int.from_bytes(body[-4:], 'little')
        elif crc and (len(body) < 4 or zlib.crc32(header + body[:-4]) != int.from_bytes(body[-4:], 'little')):
            raise IntegrityError(
                '%s: the event at byte %d (type %d) fails its CRC32 checksum: the binary log is damaged (on the '
                'server\'s disk, or in this copy), and replaying it would write wrong data. Events before byte %d '
                'are intact: restore to a point before it, and take a new full backup so that the recoverable '
                'window starts after it (mariadb-binlog --verify-binlog-checksum shows the event).'
                % (path, offset, kind, offset), path=path, offset=offset)
        events += 1
        if timestamp:
            first = timestamp if first is None else min(first, timestamp)
            last = timestamp if last is None else max(last, timestamp)
    return {'events': events, 'first_event': first, 'last_event': last}


def walk_binlog(path: str) -> Iterator[Tuple[int, bytes, bytes]]:
    """``(offset, header, body)`` of each event of a raw binary log, in order; raises ``IntegrityError`` where the
    file does not hold whole events (the header's ``EVENT_HEADER`` fields: timestamp, type, server id, length)."""
    size = os.path.getsize(path)
    with open(path, 'rb') as handle:
        if handle.read(4) != BINLOG_MAGIC:
            raise IntegrityError('%s does not start with the binary log magic number.' % path, path=path)
        offset = 4
        while offset < size:
            header = handle.read(19)
            if len(header) < 19:
                raise IntegrityError('%s ends inside an event header at byte %d: it is truncated.' % (path, offset),
                                     path=path)
            length = EVENT_HEADER.unpack_from(header)[3]
            if length < 19 or offset + length > size:
                raise IntegrityError('%s has a damaged event at byte %d (length %d): truncated or corrupt.'
                                     % (path, offset, length), path=path)
            yield offset, header, handle.read(length - 19)
            offset += length


def _schemas_where(database: Optional[str]) -> str:
    """The information_schema condition for ``database``'s tables, or every user database's (None)."""
    if database is None:
        return "TABLE_SCHEMA NOT IN (%s)" % ', '.join("'%s'" % name for name in SYSTEM_SCHEMAS)
    return 'TABLE_SCHEMA = %s' % quote_literal(database)


def _routines_of(database: str, flavor: str) -> str:
    """The information_schema.ROUTINES condition for ``database``'s routines: ``ROUTINE_SCHEMA = 'İx'`` finds none of
    those of the ``ix`` a server with lower_case_table_names=1 keeps (10.11), the others' lookups do."""
    return database_named('ROUTINE_SCHEMA', database, flavor)


class MySQLEngine(Engine):
    name = 'mariadb'
    kinds = ('full', 'log')
    default_port = 3306
    kind_help = {'full': 'mariadb-dump/mysqldump with the binlog position',
                 'log': 'copies of closed binary logs'}

    def __init__(self, conn: Any, runner: Any = None, flavor: str = 'mariadb') -> None:
        super().__init__(conn, runner)
        self.name = flavor
        self.flavor = flavor
        # Programs, option file, queries and error classes: the engine's client (shared with restore,
        # maintenance and drill checks); the methods below stay for code written against the engine.
        self.client = MySQLClient(self.conn, self.runner, flavor=flavor)

    # -- the client, as the engine offers it ---------------------------------------------------------
    def tool(self, role: str) -> str:
        return self.client.tool(role)

    def tool_version(self, role: str) -> str:
        return self.client.tool_version(role)

    def defaults_file(self) -> ContextManager[List[str]]:
        return self.client.defaults_file()

    def _connect_error(self, exc: ToolError) -> OpsReadyError:
        return self.client.classify(exc)

    def client_argv(self, head: List[str], *args: str) -> List[str]:
        return self.client.client_argv(head, *args)

    def query(self, sql: str) -> List[List[str]]:
        return self.client.query(sql)

    def database_defaults(self, database: str) -> Dict[str, str]:
        """Default character set and collation of ``database`` (refuses a database that does not exist)."""
        rows = self.query(
            'SELECT DEFAULT_CHARACTER_SET_NAME, '  # nosec B608 # quoted: mysql_quote.quote_literal (hex)
            'DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE '
            + database_named('SCHEMA_NAME', database, self.flavor))
        if not rows or len(rows[0]) < 2:
            raise OpsReadyError('Database %r does not exist on %s.' % (database, self.conn.where(self.default_port)))
        return {'character_set': rows[0][0], 'collation': rows[0][1]}

    def database_comment(self, database: str) -> Optional[str]:
        """The database's COMMENT (MariaDB 10.5+; None where SCHEMATA has no SCHEMA_COMMENT, as on MySQL)."""
        rows = self.client.query_dicts(
            'SELECT * FROM information_schema.SCHEMATA WHERE '  # nosec B608 # quoted: mysql_quote.quote_literal (hex)
            + database_named('SCHEMA_NAME', database, self.flavor))
        return rows[0].get('SCHEMA_COMMENT') if rows else None

    def versioned_tables(self, database: Optional[str]) -> Dict[str, List[str]]:
        """System-versioned tables of ``database`` (None: every user schema), split by how their history is
        stamped: 'timestamp' (ROW START is a TIMESTAMP: mariadb-dump --dump-history can save it) or
        'transaction' (transaction-precise, BIGINT: it cannot)."""
        where = _schemas_where(database)
        # Implicit ROW START columns are not in COLUMNS; transaction-precise ones are always explicit (BIGINT).
        rows = self.query("SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), "  # nosec B608 # quote_literal
                          "(SELECT MAX(c.DATA_TYPE) FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = "
                          "t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.GENERATION_EXPRESSION = 'ROW START') "
                          "FROM information_schema.TABLES t WHERE TABLE_TYPE = 'SYSTEM VERSIONED' AND " + where)
        found: Dict[str, List[str]] = {'timestamp': [], 'transaction': []}
        for row in rows:
            if len(row) == 2:
                found['transaction' if row[1].lower() == 'bigint' else 'timestamp'].append(row[0])
        return found

    def _count_per_column(self, by_table: Dict[Tuple[str, str], List[Any]], test: Callable[[Any], str],
                          session: str = '', skip_failed: Optional[Dict[str, str]] = None,
                          source: Optional[str] = None) -> Dict[str, int]:
        """``{'db.table.column': rows}``: for each table of ``by_table`` (its columns, a name or a tuple whose first
        item is the name), one scan counting the rows where ``test(column)`` (an SQL condition) holds; columns
        with no such row are left out. ``session``: statements run first, in the same connection;
        ``skip_failed``: a table whose scan fails is left out (the backup goes on) instead of raising, and recorded
        there (``{'db.table': the server's error}``: the caller says which tables went unchecked);
        ``source``: the (quoted) table read instead of the table itself, which ``session`` fills."""
        found: Dict[str, int] = {}
        for (schema, table), columns in sorted(by_table.items()):
            tests = ', '.join('IFNULL(SUM(%s), 0)' % test(c) for c in columns)
            try:
                counts = self.query('%sSELECT %s FROM %s'  # nosec B608 # identifiers quoted, tests built above
                                    % (session, tests, source or qualified(schema, table)))
            except ToolError as exc:
                if skip_failed is None:
                    raise
                said = (exc.stderr or '').strip().splitlines() or [exc.message]
                skip_failed['%s.%s' % (schema, table)] = said[-1][:300]
                continue
            for column, count in zip(columns, counts[0] if counts else []):
                if count not in ('0', '', None):
                    name = column[0] if isinstance(column, tuple) else column
                    found['%s.%s.%s' % (schema, table, name)] = int(count)
        return found

    def enum_error_values(self, database: Optional[str]) -> Dict[str, int]:
        """``{'db.table.column': rows}``: ENUM columns with a '' member whose rows hold the error value (index 0,
        stored for an invalid value under a non-strict sql_mode). The dump writes both as '' and they load as the
        member. Only tables with such a column are read (one scan each)."""
        where = _schemas_where(database)
        rows = self.query("SELECT TABLE_SCHEMA, TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE "  # nosec B608 # quoted
                          "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
                          "USING (TABLE_SCHEMA, TABLE_NAME) WHERE t.TABLE_TYPE <> 'VIEW' AND c.DATA_TYPE = 'enum' "
                          "AND c.COLUMN_TYPE LIKE '%%''''%%' AND c.IS_GENERATED = 'NEVER' AND %s "
                          "ORDER BY 1, 2, c.ORDINAL_POSITION" % where)
        by_table: Dict[Tuple[str, str], List[str]] = {}
        for row in rows:
            if len(row) == 4 and '' in re.findall(r"'((?:[^']|'')*)'", row[3]):
                by_table.setdefault((row[0], row[1]), []).append(row[2])
        return self._count_per_column(
            by_table, lambda c: '%s + 0 = 0' % quote_identifier(c, 'column name'))

    def lossy_text(self, database: Optional[str]) -> Dict[str, int]:
        """``{'db.table.column': rows}``: values of text columns in a character set that does not map to Unicode and
        back byte for byte (sjis: 0x5C and 0x815F both read as U+005C, which is written back as 0x815F), which the
        dump (written in utf8mb4, as mariadb-dump/mysqldump write every text column) cannot hold unchanged. Only
        tables with a column in such a character set are read (one scan each)."""
        where = _schemas_where(database)
        rows = self.query("SELECT TABLE_SCHEMA, TABLE_NAME, c.COLUMN_NAME, c.CHARACTER_SET_NAME "  # nosec B608 # quoted
                          "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
                          "USING (TABLE_SCHEMA, TABLE_NAME) WHERE t.TABLE_TYPE <> 'VIEW' AND "
                          "c.CHARACTER_SET_NAME IN (%s) AND %s ORDER BY 1, 2, c.ORDINAL_POSITION"
                          % (', '.join("'%s'" % c for c in LOSSY_CHARSETS), where))
        by_table: Dict[Tuple[str, str], List[Tuple[str, str]]] = {}
        for row in rows:
            if len(row) == 4 and row[3] in LOSSY_CHARSETS:
                by_table.setdefault((row[0], row[1]), []).append((row[2], row[3]))
        # charset names: from LOSSY_CHARSETS only (checked above), never the server's text
        return self._count_per_column(by_table, lambda c: (
            'CAST(CONVERT(CONVERT({c} USING utf8mb4) USING {cs}) AS BINARY) <> CAST({c} AS BINARY)'.format(
                c=quote_identifier(c[0], 'column name'), cs=c[1])))

    def float_precision(self, database: Optional[str]) -> Dict[str, int]:
        """``{'db.table.column': rows}``: FLOAT (single precision) values the dump cannot hold: the server prints a
        FLOAT with 6 significant digits (16777215 as 16777200, 3.1415927 as 3.14159), and the dump holds that text.
        A value is named when its text read back as a FLOAT is another number. Only tables with a FLOAT column are
        read (one scan each); DOUBLE prints with 17 digits and round-trips."""
        where = _schemas_where(database)
        rows = self.query("SELECT TABLE_SCHEMA, TABLE_NAME, c.COLUMN_NAME "  # nosec B608 # quoted
                          "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
                          "USING (TABLE_SCHEMA, TABLE_NAME) WHERE t.TABLE_TYPE <> 'VIEW' AND c.DATA_TYPE = 'float' "
                          "AND c.IS_GENERATED = 'NEVER' AND %s ORDER BY 1, 2, c.ORDINAL_POSITION" % where)
        by_table: Dict[Tuple[str, str], List[str]] = {}
        for row in rows:
            if len(row) == 3:
                by_table.setdefault((row[0], row[1]), []).append(row[2])
        return self._count_per_column(by_table, lambda c: '{c} <> CAST(CAST({c} AS CHAR) AS FLOAT)'.format(
            c=quote_identifier(c, 'column name')))

    def generated_recomputed(self, database: Optional[str],
                             unchecked: Optional[Dict[str, str]] = None) -> Dict[str, int]:
        """``{'db.table.column': rows}``: STORED generated values the load will compute differently. The dump holds
        no generated value: the load computes each again under its own session (time zone +00:00: mariadb-dump sets
        it; the division scale of the session that opens the table first), so a value the source computed under
        other settings (CAST(ts AS CHAR) under +05:00, a / 3 stored with 18 decimals) comes back changed. Each
        expression is computed here under the load's settings, converted to the column's type (a CAST where one
        says it; else stored in a temporary table of that type: ``_stored_differ``), and compared; a table whose
        check fails is left out (the backup goes on) and named in ``unchecked`` with the server's error (a login
        without CREATE TEMPORARY TABLES cannot make the copy ``_stored_differ`` needs). Only tables with such a
        column are read."""
        unchecked = {} if unchecked is None else unchecked
        where = _schemas_where(database)
        rows = self.query("SELECT TABLE_SCHEMA, TABLE_NAME, c.COLUMN_NAME, c.GENERATION_EXPRESSION, "  # nosec B608
                          "c.DATA_TYPE, c.COLUMN_TYPE, IFNULL(c.CHARACTER_MAXIMUM_LENGTH, ''), "
                          "IFNULL(c.DATETIME_PRECISION, ''), IFNULL(c.CHARACTER_SET_NAME, ''), "
                          "IFNULL(c.COLLATION_NAME, '') FROM information_schema.COLUMNS c "
                          "JOIN information_schema.TABLES t USING (TABLE_SCHEMA, TABLE_NAME) "
                          "WHERE t.TABLE_TYPE <> 'VIEW' AND c.IS_GENERATED = 'ALWAYS' AND c.EXTRA LIKE 'STORED%%' "
                          "AND c.GENERATION_EXPRESSION NOT IN ('ROW START', 'ROW END') AND %s "
                          "ORDER BY 1, 2, c.ORDINAL_POSITION" % where)
        # per table, its columns: (name, expression, definition, the expression CAST to the type or None)
        by_table: Dict[Tuple[str, str], List[Tuple[str, str, str, Optional[str]]]] = {}
        for row in rows:
            if len(row) == 10:
                definition = row[5] + (' CHARACTER SET %s COLLATE %s' % (row[8], row[9])
                                       if re.match(r'^\w+$', row[8]) and re.match(r'^\w+$', row[9]) else '')
                by_table.setdefault((row[0], row[1]), []).append(
                    (row[2], row[3], definition, stored_as(row[3], row[4], row[5], row[6], row[7], row[8])))
        # the expressions are the tables' own text (information_schema), run as the server itself runs them
        session = "SET SESSION time_zone = '+00:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES'; "
        found: Dict[str, int] = {}
        for key, columns in sorted(by_table.items()):
            cast = [c for c in columns if c[3] is not None]
            stored = [c for c in columns if c[3] is None]
            if cast:
                try:
                    found.update(self._count_per_column(
                        {key: cast}, lambda c: 'NOT (%s <=> %s)' % (quote_identifier(c[0], 'column name'), c[3]),
                        session=session))
                except ToolError:   # (a mix of collations the CAST cannot compare...): stored, as the others
                    stored = columns
            if stored:
                found.update(self._stored_differ(key, stored, session, unchecked))
        return found

    def _stored_differ(self, key: Tuple[str, str], columns: List[Tuple[str, str, str, Optional[str]]],
                       session: str, unchecked: Dict[str, str]) -> Dict[str, int]:
        """``generated_recomputed`` for the ``columns`` (name, expression, definition) of table ``key`` whose type
        CAST cannot express: each value and its expression are stored, under the load's ``session``, in a temporary
        table with the column's own definition (the load's conversion, exactly), then compared. This copies those
        columns of the table (and needs CREATE TEMPORARY TABLES); a table whose copy fails is left out and named in
        ``unchecked``."""
        schema, table = key
        scratch_table = qualified(schema, '#opsready_generated_check')
        return self._count_per_column(
            {key: [(c[0], i) for i, c in enumerate(columns)]},
            lambda c: 'NOT (s%d <=> e%d)' % (c[1], c[1]), skip_failed=unchecked, source=scratch_table,
            session=session + 'CREATE TEMPORARY TABLE %s (%s); INSERT INTO %s SELECT %s FROM %s; ' % (  # nosec B608
                scratch_table, ', '.join('s%d %s, e%d %s' % (i, c[2], i, c[2]) for i, c in enumerate(columns)),
                scratch_table, ', '.join('%s, (%s)' % (quote_identifier(c[0], 'column name'), c[1])
                                         for c in columns), qualified(schema, table)))

    def database_objects(self, database: str) -> Dict[str, Any]:
        """How many views, routines, triggers and events ``database`` holds, and their definers: the
        restore proves it may create them (definers included) before it loads anything."""
        lit = quote_literal(database)
        rows = self.query(
            "SELECT 'views', DEFINER "  # nosec B608 # quoted: mysql_quote.quote_literal (a hex literal)
            "FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s "
            "UNION ALL SELECT 'routines', DEFINER FROM information_schema.ROUTINES WHERE %s "
            "UNION ALL SELECT 'triggers', DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
            "UNION ALL SELECT 'events', DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s"
            % (lit, _routines_of(database, self.flavor), lit, lit))
        found: Dict[str, Any] = {'views': 0, 'routines': 0, 'triggers': 0, 'events': 0}
        definers: Dict[str, List[str]] = {}
        for row in rows:
            if len(row) == 2 and row[0] in found:
                found[row[0]] += 1
                kinds = definers.setdefault(row[1], [])
                if row[0] not in kinds:
                    kinds.append(row[0])
        found['definers'] = definers
        return found

    def server_facts(self) -> Dict[str, Any]:
        # the server's own name and port are the origin (the same whatever address reached it); in the same query
        # (and whether it compares database names without case: the replay's scan reads them so)
        row = self.query('SELECT VERSION(), @@log_bin, @@hostname, @@port, @@lower_case_table_names')[0]
        facts = {'server_version': row[0], 'log_bin': row[1] in ('1', 'ON')}
        if len(row) >= 4 and row[2] and row[3]:
            facts['origin'] = local_origin(row[2], row[3])
        if len(row) >= 5 and str(row[4] or '').isdigit():
            facts['lower_case_table_names'] = int(row[4])
        return facts

    def check_options(self, opts: BackupOptions) -> None:
        super().check_options(opts)
        if opts.kind == 'log' and opts.all_databases:
            pass  # binlogs are server-wide; they are catalogued with the all-databases set

    def backup(self, opts: BackupOptions) -> List[Dict[str, Any]]:
        info = self.ping()
        if opts.kind == 'full':
            return [self._dump(opts, info)]
        return self._logs(opts, info)

    def _dump(self, opts: BackupOptions, info: Dict[str, Any]) -> Dict[str, Any]:
        database = self.catalog_database(opts)
        started = utcnow()
        artifact = self.artifact_path(opts, database, 'full', '.sql',
                                      when=started)
        head = bytearray()
        tail = bytearray()

        inserts = LongestInsert()

        def observe(data: bytes) -> None:
            inserts.feed(data)
            if len(head) < 65536:
                head.extend(data[:65536 - len(head)])
            tail.extend(data[-4096:])
            del tail[:-4096]

        with self.defaults_file() as defaults:
            argv = [self.tool('dump')] + defaults + ['--single-transaction', '--routines', '--events', '--triggers',
                                                     '--hex-blob', '--default-character-set=utf8mb4', MAX_PACKET]
            if info['log_bin']:
                argv.append('--master-data=2')
            db_defaults: Dict[str, str] = {}
            db_comment: Optional[str] = None
            db_grants: Optional[Dict[str, Any]] = None
            warnings: List[str] = []
            kept = database
            if not opts.all_databases:
                check_identifier(database, 'database')
                db_defaults = self.database_defaults(database)
                db_comment = self.database_comment(database)
                # the dump and the object counts by the name the server keeps (lower_case_table_names=1: İx is ix;
                # mariadb-dump fails on the views of İx, information_schema.ROUTINES finds none of its routines)
                kept = kept_database(self, database) or database
                db_objects = self.database_objects(kept)
                try:
                    db_grants = read_grants(self.client, database)
                except ToolError as exc:   # no SELECT on the mysql schema: the backup goes on, and says so
                    db_grants = None
                    warnings.append('the grants naming %s were not recorded (%s): a restore will not give them to '
                                    'the restored database; grant the backup user SELECT ON mysql.*'
                                    % (database, exc.message))
                if set(database) & set('\'"\\'):
                    # mariadb-dump --events fails to select such a database ("Unknown database"); its other
                    # options do not. Without events it is dumped with --skip-events (the manifest says 0 events).
                    if db_objects['events']:
                        raise OpsReadyError('Database %r holds %d event(s) and cannot be dumped with them: its name '
                                            'contains \' " or \\, and %s-dump --events fails to select such a '
                                            'database. Rename it (RENAME TABLE into a plainer name) to back it up.'
                                            % (database, db_objects['events'], self.flavor))
                    argv[argv.index('--events')] = '--skip-events'
            if self.flavor == 'mariadb':
                # Without --dump-history a system-versioned table is dumped as its current rows only: its history
                # (what FOR SYSTEM_TIME reads) was lost and ROW START became the restore's time. The option fails
                # on a transaction-precise table; those keep current rows only, and the manifest says so.
                versioned = self.versioned_tables(None if opts.all_databases else database)
                if versioned['transaction']:
                    warnings.append('system-versioned table(s) %s keep transaction-precise history, which %s-dump '
                                    'cannot save: only their current rows are in this dump'
                                    % (', '.join(versioned['transaction']), self.flavor))
                elif versioned['timestamp']:
                    argv.append('--dump-history')
            # Text the dump's utf8mb4 cannot carry unchanged: found before the dump (a scan of the tables holding such
            # columns), recorded in the manifest and repeated by every restore of this dump.
            lossy = self.lossy_text(None if opts.all_databases else database)
            if lossy:
                warnings.append('%d value(s) in column(s) %s are in a character set with no byte-exact Unicode round '
                                'trip and come back changed from this dump (%s-dump writes text as utf8mb4): back up '
                                'those tables another way (SELECT ... INTO OUTFILE with CHARACTER SET binary, or a '
                                'physical backup), or convert the columns to utf8mb4'
                                % (sum(lossy.values()), ', '.join('%s (%d)' % kv for kv in sorted(lossy.items())),
                                   self.flavor))
            enum_errors = self.enum_error_values(None if opts.all_databases else database)
            if enum_errors:
                warnings.append("%d row(s) of ENUM column(s) %s hold the error value (index 0, stored for an invalid "
                                "value under a non-strict sql_mode) in a column that also has a '' member: the dump "
                                "writes both as '' and a restore gives those rows the '' member. Find them with "
                                "WHERE <column> + 0 = 0" % (sum(enum_errors.values()), ', '.join(
                                    '%s (%d)' % kv for kv in sorted(enum_errors.items()))))
            unchecked: Dict[str, str] = {}
            recomputed = self.generated_recomputed(None if opts.all_databases else database, unchecked)
            if unchecked:
                warnings.append(generated_unchecked_text(unchecked))
            if recomputed:
                warnings.append('%d value(s) of STORED generated column(s) %s differ from what a load computes '
                                '(time_zone +00:00, the default division scale): the dump holds no generated value, '
                                'the load computes each again, so those come back different; make the expression '
                                'independent of the session (CONVERT_TZ, ROUND)'
                                % (sum(recomputed.values()), ', '.join('%s (%d)' % kv
                                                                       for kv in sorted(recomputed.items()))))
            floats: Dict[str, int] = {}
            if self.flavor == 'mariadb':   # CAST(... AS FLOAT): MariaDB 10.4.5+; MySQL is not checked
                floats = self.float_precision(None if opts.all_databases else database)
            if floats:
                warnings.append('%d FLOAT value(s) in column(s) %s need more than the 6 significant digits %s-dump '
                                'writes a FLOAT with (16777215 is written 16777200) and come back rounded from this '
                                'dump: convert the columns to DOUBLE (ALTER TABLE ... MODIFY ... DOUBLE keeps every '
                                'value exactly), or back up those tables another way (a physical backup)'
                                % (sum(floats.values()), ', '.join('%s (%d)' % kv for kv in sorted(floats.items())),
                                   self.flavor))
            # "--" ends the options: a database named "-x" is a name, not an option.
            # An all-databases dump carries the accounts and grants as rows of the mysql schema's tables: loaded,
            # they take effect only after FLUSH PRIVILEGES (or a restart), which the dump then ends with.
            argv += ['--all-databases', '--flush-privileges'] if opts.all_databases else ['--', kept]
            try:
                stored, _err = stream_to_artifact(self.runner, argv, artifact, opts, what='%s-dump' % self.flavor,
                                                  observe=observe)
            except ToolError as exc:
                raise self._connect_error(exc)
        if b'-- Dump completed' not in bytes(tail):
            os.unlink(artifact)
            raise OpsReadyError('%s-dump exited 0 but its output has no "Dump completed" trailer; the artifact was '
                                'removed and no manifest written.' % self.flavor)
        position: Dict[str, Any] = {}
        match = CHANGE_MASTER.search(bytes(head))
        if match:
            name = match.group(1).decode()
            position = {'binlog_file': name, 'binlog_pos': int(match.group(2)), 'log_start': binlog_index(name)}
            gtid = GTID.search(bytes(head))
            if gtid:
                position['gtid'] = gtid.group(1).decode()
        data = self.base_manifest(opts, database, 'full', started, stored)
        if not opts.all_databases:
            # A single-database dump holds no CREATE DATABASE: the restore recreates the defaults from here.
            data['database_defaults'] = db_defaults
            data['database_objects'] = db_objects
            if db_grants is not None:
                data['database_grants'] = db_grants   # GRANT ... ON db.*, its tables, columns, routines
            if db_comment is not None:
                data['database_comment'] = db_comment  # CREATE/ALTER DATABASE ... COMMENT on restore
        if lossy:
            data['lossy_text'] = lossy   # restores repeat it as a warning
        if enum_errors:
            data['enum_error_values'] = enum_errors   # so do they
        if floats:
            data['float_precision'] = floats   # and this
        if recomputed:
            data['generated_recomputed'] = recomputed   # and this
        if unchecked:
            data['generated_unchecked'] = unchecked   # and this
        if inserts.table is not None:
            # the restore refuses, before loading, a server whose max_allowed_packet is shorter
            data['longest_insert'] = {'bytes': inserts.longest, 'table': inserts.table}
            limit = self.query('SELECT @@global.max_allowed_packet')[0][0]
            if limit.isdigit() and inserts.longest > int(limit):
                warnings.append('the INSERT of a row of %s.%s is %d bytes long (a BLOB is written as hex, twice its '
                                'size), longer than this server\'s max_allowed_packet (%s): a restore onto a server '
                                'with that setting fails; raise it (SET GLOBAL max_allowed_packet = 1073741824, and in '
                                'the configuration) where this dump is to be restored'
                                % (database, inserts.table, inserts.longest, limit))
        data.update(consistent_at=isoformat(started), format='sql', position=position,
                    tool={'name': os.path.basename(self.tool('dump')), 'version': self.tool_version('dump')},
                    server_version=info['server_version'])
        if not info['log_bin']:
            warnings.append('binary logging is off on the server: no point-in-time recovery past this dump')
        if warnings:
            data['warning'] = '; '.join(warnings)
        return self.commit_manifest(artifact, data)

    def _logs(self, opts: BackupOptions, info: Dict[str, Any]) -> List[Dict[str, Any]]:
        database = self.catalog_database(opts)
        if not info['log_bin']:
            raise OpsReadyError('Binary logging is off on the %s server (log_bin): enable it (log_bin=ON, '
                                'binlog_format=ROW) to take log backups.' % self.flavor)
        # the catalog code only when a catalog is read (every import of an AnsiballZ payload is compiled on each run)
        from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
        # this server's fulls and logs only: binlog numbers are per server, another's would leave a silent hole
        catalog = (Catalog(opts.dest, engine=self.name, database=database, origin=self.origin(), own=True)
                   if os.path.isdir(opts.dest) else None)
        # the positions the catalog index holds: no manifest JSON read per full and per log of the set
        starts = [m.log_start for m in (catalog.fulls() if catalog else []) if m.log_start is not None]
        if not starts:
            raise OpsReadyError('No full backup of %s with a binlog position in %s: take kind=full first, log '
                                'backups continue from it.' % (database, opts.dest))
        have = {m.pos_start for m in catalog.logs() if m.pos_start is not None} if catalog else set()
        self.query('FLUSH BINARY LOGS')
        names = [row[0] for row in self.query('SHOW BINARY LOGS') if row and row[0]]
        closed = names[:-1]
        wanted = [n for n in closed if binlog_index(n) >= min(starts) and binlog_index(n) not in have]
        present = {binlog_index(n) for n in names}
        missing = [i for i in range(min(starts), binlog_index(names[-1])) if i not in present and i not in have]
        if missing:
            raise OpsReadyError('Binary logs %s needed after the oldest full are gone from the server (purged) and '
                                'not in the catalog: the log chain is broken; take a new full backup.'
                                % ', '.join(str(i) for i in missing))
        results = []
        # The raw binary logs (the rows in plaintext) are staged in dest under the set's name and a .partial
        # suffix: never an artifact (no manifest), a leftover of this set that the next backup of it removes under
        # the set's lock when a SIGKILL left it (catalog.leftovers, remove_leftovers).
        staging = self.artifact_path(opts, database, 'log', '.binlogs', compressed=False) + PARTIAL_SUFFIX
        os.mkdir(staging, 0o700)
        left: Dict[str, str] = {}
        try:
            for name in wanted:
                results.append(self._copy_binlog(opts, database, name, staging))
        except BaseException as exc:
            remove_staging(staging, left)
            raise told_staging(exc, left)
        remove_staging(staging, left)
        self.staging_left.update(left)
        return results

    def _copy_binlog(self, opts: BackupOptions, database: str, name: str, staging: str) -> Dict[str, Any]:
        started = utcnow()
        with self.defaults_file() as defaults:
            argv = [self.tool('binlog')] + defaults + ['--read-from-remote-server', '--raw',
                                                       '--result-file=%s/' % staging, name]
            try:
                self.runner.run(argv, what='%s-binlog %s' % (self.flavor, name))
            except ToolError as exc:
                raise self._connect_error(exc)
        raw = os.path.join(staging, name)
        scan = scan_binlog(raw)
        artifact = self.artifact_path(opts, database, 'log', '.' + name, when=started)
        try:
            with open(raw, 'rb') as handle:
                stored = stream_file_to_artifact(handle, artifact, opts)
        except OSError as exc:
            raise disk_error(exc, artifact)
        finally:
            os.unlink(raw)
        index = binlog_index(name)
        data = self.base_manifest(opts, database, 'log', started, stored)

        def when(ts: Optional[int]) -> Optional[str]:
            return isoformat(datetime.datetime.fromtimestamp(ts, UTC)) if ts else None

        data.update(position={'start': index, 'end': index + 1, 'binlog_file': name},
                    covers_from=when(scan['first_event']), consistent_at=when(scan['last_event']) or data['finished'],
                    format='binlog', events=scan['events'],
                    tool={'name': os.path.basename(self.tool('binlog')), 'version': self.tool_version('binlog')})
        return self.commit_manifest(artifact, data)

    # -- verification -------------------------------------------------------------------------------
    def verify(self, manifest: Manifest) -> Dict[str, Any]:
        if manifest.kind == 'log':
            return self._verify_binlog(manifest)
        from ansible_collections.opsready.operations.plugins.module_utils.backup.source import scan_stream
        with open_artifact(manifest, self.identities) as source:
            head, tail, counts = scan_stream(source, DUMP_NEEDLES)  # tables and INSERTs counted on the way
        if b'-- MariaDB dump' not in head and b'-- MySQL dump' not in head:
            raise IntegrityError('%s does not start like a mariadb-dump/mysqldump file.' % manifest.path,
                                 path=manifest.path)
        if b'-- Dump completed' not in tail:
            raise IntegrityError('%s has no "Dump completed" trailer: the dump is truncated.' % manifest.path,
                                 path=manifest.path)
        return {'engine_check': 'dump header and "Dump completed" trailer', 'result': 'ok',
                'artifact': {'tables': counts[0], 'insert_statements': counts[1]}}

    def _verify_binlog(self, manifest: Manifest) -> Dict[str, Any]:
        left: Dict[str, Any] = {}
        # The log decrypted and decompressed: plaintext, in a private scratch directory (common/scratch.py).
        with scratch('binlog-verify', left, module='backup_verify') as workdir:
            with open_artifact(manifest, self.identities) as source, os.fdopen(workdir.create('binlog'), 'wb') as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            scan = scan_binlog(workdir.file('binlog'))
        expected = manifest.data.get('events')
        if expected is not None and scan['events'] != expected:
            raise IntegrityError('%s holds %d events, its manifest says %d.' % (manifest.path, scan['events'],
                                                                                expected), path=manifest.path)
        return dict({'engine_check': 'binlog event headers walked to the end', 'events': scan['events']}, **left)

    # -- what the source held (compared by backup_verify and DR drills) ------------------------------
    def source_summary(self, opts: BackupOptions, database: str) -> Optional[Dict[str, Any]]:
        """Base tables, tables holding rows (asked exactly, one row read each, up to a limit), the
        information_schema row estimates and size, taken just before the dump starts."""
        if opts.kind != 'full':
            return None
        from ansible_collections.opsready.operations.plugins.module_utils.backup.source import EXISTS_TABLE_LIMIT
        where = mysql_tables_where(None if database == ALL_DATABASES else database)
        try:
            rows = [r for r in self.query('SELECT HEX(table_schema), HEX(table_name), '  # nosec B608 # hex-encoded name
                                          'COALESCE(table_rows, 0), '
                                          'COALESCE(data_length, 0) + COALESCE(index_length, 0) '
                                          'FROM information_schema.tables WHERE ' + where) if len(r) == 4]
            summary: Dict[str, Any] = {
                'engine': self.flavor, 'tables': len(rows), 'rows_estimate': sum(int(r[2]) for r in rows),
                'size_bytes': sum(int(r[3]) for r in rows), 'non_empty_tables': None,
                'measured_at': isoformat(utcnow()),
                'method': 'information_schema estimates; tables with rows asked exactly'}
            names = [(bytes.fromhex(r[0]).decode('utf-8'), bytes.fromhex(r[1]).decode('utf-8'))
                     for r in sorted(rows, key=lambda r: -int(r[2]))]
            if rows and len(rows) <= EXISTS_TABLE_LIMIT:
                summary['non_empty_tables'] = int(self.query(mysql_non_empty_sql(names))[0][0])
            elif rows:  # table_rows is an estimate (InnoDB keeps it after a DELETE): any row, asked exactly
                summary['has_rows'] = any(int(self.query(mysql_non_empty_sql(names[start:start + 200]))[0][0])
                                          for start in range(0, len(names), 200))
            elif not rows:
                summary['non_empty_tables'] = 0
        except (OpsReadyError, ValueError, IndexError) as exc:  # never fails the backup itself
            return {'engine': self.flavor, 'error': getattr(exc, 'message', None) or 'unexpected answer: %s' % exc}
        return summary


SYSTEM_SCHEMAS = ('mysql', 'information_schema', 'performance_schema', 'sys')
# Character sets whose conversion to Unicode and back changes some byte sequences on MariaDB 10.11 (every 1- and
# 2-byte sequence tried): what the dump writes as utf8mb4 does not load back as it was.
LOSSY_CHARSETS = ('armscii8', 'big5', 'cp932', 'eucjpms', 'sjis', 'tis620', 'ujis')
DUMP_NEEDLES = (b'\nCREATE TABLE ', b'\nINSERT INTO ')


# Tables whose rows a dump holds: MariaDB lists a WITH SYSTEM VERSIONING table as 'SYSTEM VERSIONED', not
# 'BASE TABLE' (left out, a database of such tables recorded 0 tables and a dump without them verified).
TABLE_TYPES = "table_type IN ('BASE TABLE', 'SYSTEM VERSIONED')"


def mysql_tables_where(database: Optional[str]) -> str:
    """Base tables of ``database`` (or of every user schema): the name travels as hex, never as a literal."""
    if database is None:
        return TABLE_TYPES + " AND table_schema NOT IN (%s)" % ', '.join("'%s'" % s for s in SYSTEM_SCHEMAS)
    return (TABLE_TYPES + " AND table_schema = CONVERT(UNHEX('%s') USING utf8mb4)"
            % database.encode('utf-8').hex())


def mysql_non_empty_sql(names: List[Tuple[str, str]]) -> str:
    return 'SELECT ' + ' + '.join('EXISTS (SELECT 1 FROM %s)' % qualified(a, b)  # nosec B608 # mysql_quote
                                  for a, b in names)
