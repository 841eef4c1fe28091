# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where MariaDB / MySQL SQL text is built from names and values.

* ``quote_identifier``: backticks, an embedded backtick doubled. Names the server cannot hold are refused
  with a message saying why (empty, NUL, more than 64 characters, a trailing space, characters outside
  the Basic Multilingual Plane), so a hostile name fails here, never half-way through a restore.
* ``quote_literal``: a hexadecimal literal with a character set introducer (``_utf8mb4 X'61'``). Its
  meaning does not depend on ``sql_mode``: with ``NO_BACKSLASH_ESCAPES`` off (the default) a backslash
  inside '...' is an escape character, with it on it is not; doubling quotes alone is injectable in the
  first mode (``app\\'; DROP DATABASE prod; --``) and escaping backslashes corrupts the value in the
  second. A hex literal holds no quote and no backslash at all.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Iterable

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

MAX_IDENTIFIER = 64  # characters (NAME_CHAR_LEN)


def check_identifier(name: str, what: str = 'name') -> str:
    """``name`` unchanged if MariaDB can hold it as a database, table or routine name; else a clear error."""
    if not isinstance(name, str) or not name:
        raise OpsReadyError('The %s must be a non-empty string, not %r.' % (what, name))
    problem = None
    if '\x00' in name:
        problem = 'it contains a NUL character'
    elif len(name) > MAX_IDENTIFIER:
        problem = 'it is %d characters long; MariaDB/MySQL names hold at most %d' % (len(name), MAX_IDENTIFIER)
    elif name.endswith(' '):
        problem = 'it ends with a space, which MariaDB/MySQL names cannot'
    elif any(ord(c) > 0xFFFF for c in name):
        problem = 'it holds characters outside the Basic Multilingual Plane (e.g. emoji), which names cannot'
    elif any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        problem = 'it is not valid Unicode (lone surrogate)'
    if problem:
        raise OpsReadyError('The %s %r cannot be used: %s. Choose another name.' % (what, name[:100], problem))
    return name


def quote_identifier(name: str, what: str = 'name') -> str:
    """```name``` with embedded backticks doubled, after ``check_identifier``."""
    return '`' + check_identifier(name, what).replace('`', '``') + '`'


def qualified(*parts: str) -> str:
    """```db`.`table``` from its parts."""
    return '.'.join(quote_identifier(p) for p in parts)


def quote_literal(value: str) -> str:
    """A string literal whose meaning is the same under every ``sql_mode`` (see the module docstring)."""
    if not isinstance(value, str):
        raise OpsReadyError('Internal error: SQL literal of %r, not a string.' % (value,))
    try:
        data = value.encode('utf-8')
    except UnicodeEncodeError:
        raise OpsReadyError('The value %r is not valid Unicode and cannot be sent to the server.' % value[:100])
    return "_utf8mb4 X'%s'" % data.hex().upper()


def literal_list(values: Iterable[str]) -> str:
    return ', '.join(quote_literal(v) for v in values)


def unescape_batch(value: str) -> str:
    """A value of ``mariadb --batch`` output as the server sent it (tab, newline, NUL, backslash escaped)."""
    if '\\' not in value:
        return value
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == '\\' and i + 1 < len(value):
            out.append({'t': '\t', 'n': '\n', '0': '\x00', '\\': '\\'}.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return ''.join(out)
