# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Table and column names: validated, then quoted for the engine's dialect; never interpolated raw.

A name is ``table`` or ``schema.table`` (PostgreSQL/SQL Server schema; ignored for SQLite/MariaDB,
where the database is the schema). Each part must match ``[A-Za-z_][A-Za-z0-9_$]{0,62}``: names that
need other characters are refused rather than guessed at. Validated parts are still quoted (doubling
the quote character), so a name is never able to end the identifier early.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

IDENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_$]{0,62}$')

# (open, close) quote characters per dialect.
QUOTES = {'postgresql': ('"', '"'), 'sqlite': ('"', '"'), 'mariadb': ('`', '`'), 'mysql': ('`', '`'),
          'sqlserver': ('[', ']')}


def check_ident(value: str, what: str = 'identifier') -> str:
    if not isinstance(value, str) or not IDENT.match(value):
        raise OpsReadyError('%s %r is not a plain identifier: use letters, digits, _ and $ (not starting with a '
                            'digit, at most 63 characters). Names needing quotes are not supported.'
                            % (what, value))
    return value


def quote_ident(value: str, dialect: str, strict: bool = True) -> str:
    """Quote ``value``; ``strict=False`` (database names only) accepts any name without NUL, <= 64 chars."""
    if strict:
        check_ident(value)
    elif not value or '\x00' in value or len(value) > 64:
        raise OpsReadyError('Database name %r is empty, too long or contains NUL.' % value)
    opening, closing = QUOTES[dialect]
    return opening + value.replace(closing, closing + closing) + closing


@dataclass(frozen=True)
class TableRef:
    """A validated table name; ``schema`` is None where the engine has no schemas in play."""

    name: str
    schema: Optional[str] = None

    @classmethod
    def parse(cls, text: str, default_schema: Optional[str] = None) -> 'TableRef':
        if not isinstance(text, str) or not text:
            raise OpsReadyError('A table name must be a non-empty string, not %r.' % (text,))
        parts = text.split('.')
        if len(parts) == 1:
            return cls(check_ident(parts[0], 'table name'), default_schema)
        if len(parts) == 2:
            return cls(check_ident(parts[1], 'table name'), check_ident(parts[0], 'schema name'))
        raise OpsReadyError('Table name %r has more than one dot: use table or schema.table.' % text)

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
            return '%s.%s' % (quote_ident(prefix, dialect, strict=prefix == self.schema),
                              quote_ident(self.name, dialect))
        return quote_ident(self.name, dialect)
