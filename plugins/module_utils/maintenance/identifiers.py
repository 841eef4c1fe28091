# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Table and column names: checked, then quoted by the engine's own quoting helper; never interpolated raw.

A name is ``table`` or ``schema.table`` (PostgreSQL/SQL Server schema; ignored for SQLite/MariaDB, where the
database is the schema). Any name the engine can hold works as written, case kept: ``Order Items``,
``MixedCase``, ``ünïcødé``, ``it's``. A part holding a dot or starting with a double quote is written in double
quotes with an embedded ``"`` doubled, as in SQL: ``sales."v1.2 totals"``, ``"say ""hi"" now"``. Names are always
quoted (PostgreSQL through engines/postgresql/quote.py, MariaDB through engines/mysql/quote.py, which refuse
what the server would cut or mangle), so a name can never end the identifier early.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import quote as mysql_quote
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import quote as pg_quote

# The longest name any supported engine holds (SQL Server: 128); each engine's helper checks its own limit.
MAX_NAME = 128

# A name that needs no quoting anywhere. SQL Server maintenance still lists only such names from its catalog
# (no real SQL Server runs in the tests here to prove quoting of the others against).
IDENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_$]{0,62}$')

# (open, close) quote characters of the dialects without a quoting module of their own.
QUOTES = {'sqlite': ('"', '"'), 'sqlserver': ('[', ']')}


def check_ident(value: str, what: str = 'identifier') -> str:
    """``value`` unchanged when it can be a name at all: a non-empty string without NUL, at most 128 characters."""
    if not isinstance(value, str) or not value:
        raise OpsReadyError('%s must be a non-empty string, not %r.' % (what, value))
    if '\x00' in value:
        raise OpsReadyError('%s %r contains a NUL character, which no database name can hold.' % (what, value))
    if len(value) > MAX_NAME:
        raise OpsReadyError('%s %r... is %d characters long: database names hold at most %d.'
                            % (what, value[:60], len(value), MAX_NAME))
    return value


def quote_ident(value: str, dialect: str, strict: bool = True) -> str:
    """``value`` quoted for ``dialect`` by that engine's quoting helper (``strict`` is kept for callers; every
    name is quoted the same way now)."""
    check_ident(value, 'name')
    if dialect == 'postgresql':
        return pg_quote.quote_ident(value)
    if dialect in ('mariadb', 'mysql'):
        return mysql_quote.quote_identifier(value)
    opening, closing = QUOTES[dialect]
    return opening + value.replace(closing, closing + closing) + closing


def split_name(text: str) -> List[str]:
    """``a.b`` -> [a, b]; a part in double quotes may hold dots and (doubled) double quotes."""
    parts: List[str] = []
    i = 0
    while True:
        if text.startswith('"', i):
            j = i + 1
            chunk = []
            while True:
                k = text.find('"', j)
                if k < 0:
                    raise OpsReadyError('Table name %r has an unterminated double quote (write a " inside a quoted '
                                        'part as "").' % text)
                chunk.append(text[j:k])
                if text.startswith('"', k + 1):
                    chunk.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            parts.append(''.join(chunk))
            if i == len(text):
                return parts
            if text[i] != '.':
                raise OpsReadyError('Table name %r: a quoted part must be followed by a dot or end the name.' % text)
            i += 1
        else:
            k = text.find('.', i)
            parts.append(text[i:] if k < 0 else text[i:k])
            if k < 0:
                return parts
            i = k + 1


@dataclass(frozen=True)
class TableRef:
    """A validated table name; ``schema`` is None where the engine has no schemas in play."""

    name: str
    schema: Optional[str] = None

    @classmethod
    def parse(cls, text: str, default_schema: Optional[str] = None) -> 'TableRef':
        if not isinstance(text, str) or not text:
            raise OpsReadyError('A table name must be a non-empty string, not %r.' % (text,))
        parts = split_name(text)
        if len(parts) == 1:
            return cls(check_ident(parts[0], 'table name'), default_schema)
        if len(parts) == 2:
            return cls(check_ident(parts[1], 'table name'), check_ident(parts[0], 'schema name'))
        raise OpsReadyError('Table name %r has more than one dot: use table or schema.table (put a name holding a '
                            'dot in double quotes: schema."a.b").' % text)

    @property
    def label(self) -> str:
        return '%s.%s' % (self.schema, self.name) if self.schema else self.name

    def quoted(self, dialect: str, database: Optional[str] = None) -> str:
        """Qualified and quoted: schema.table (PostgreSQL/SQL Server), database.table (MariaDB)."""
        if dialect in ('mariadb', 'mysql'):
            prefix = database
        else:
            prefix = self.schema
        if prefix:
            return '%s.%s' % (quote_ident(prefix, dialect), quote_ident(self.name, dialect))
        return quote_ident(self.name, dialect)
