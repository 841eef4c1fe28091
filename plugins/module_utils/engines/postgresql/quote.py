# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL quoting: the one place where names and values become SQL text.

* ``quote_ident``: always double-quoted (``"a""b"``), so case, spaces, keywords and non-ASCII survive.
* ``quote_literal``: an ``E'...'`` string with ``'`` and ``\\`` doubled. The escape-string syntax means the
  same whatever ``standard_conforming_strings`` is set to (with it off, a plain ``'a\\'`` would end early
  and let the rest be read as SQL).
* NUL cannot be stored in PostgreSQL text at all: refused rather than silently cut.
* ``check_name``: a name (database, role, schema, table) longer than 63 bytes is refused. The server would
  cut it to 63 bytes without an error (identifiers in SQL, and the database and user of a connection),
  so a long name would act on whatever object the first 63 bytes name.
* ``conninfo_value``: a value for a libpq connection string (``dbname='...'``). A database name given to a
  tool's ``-d``/``--dbname`` or as its DBNAME argument is read as a whole connection string when it holds
  ``=`` (``dbname=prod`` would connect to prod), and as an option when it starts with ``-``; inside
  ``--dbname=dbname='...'`` it is only ever the name.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Iterable

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


NAME_BYTES = 63  # NAMEDATALEN - 1


def check_name(name: str, what: str = 'PostgreSQL name') -> str:
    """``name`` unchanged when PostgreSQL can hold it exactly; otherwise a clear error (nothing is cut)."""
    if not isinstance(name, str) or name == '':
        raise OpsReadyError('A %s must be a non-empty string, not %r.' % (what, name))
    if '\x00' in name:
        raise OpsReadyError('The %s %r contains a NUL byte, which PostgreSQL cannot store.' % (what, name))
    size = len(name.encode('utf-8'))
    if size > NAME_BYTES:
        raise OpsReadyError('The %s %r is %d bytes long: PostgreSQL names hold at most %d bytes and the server '
                            'would silently cut it (and act on the object the first %d bytes name). Use a '
                            'shorter name.' % (what, name, size, NAME_BYTES, NAME_BYTES))
    return name


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier, always quoted (at most 63 bytes, see ``check_name``)."""
    check_name(name, 'PostgreSQL identifier')
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """``value`` as a string constant that reads the same with ``standard_conforming_strings`` on or off."""
    if '\x00' in value:
        raise OpsReadyError('PostgreSQL strings cannot contain NUL bytes: %r.' % value)
    return "E'" + value.replace('\\', '\\\\').replace("'", "''") + "'"


def conf_literal(value: str) -> str:
    """``value`` as a quoted string of a configuration file (postgresql.conf, postgresql.auto.conf).

    The server reads such a string only to the end of its line, with backslash escapes (GUC_scanstr in
    guc-file.l): ``''`` and ``\\`` for the quote and the backslash, ``\\n``/``\\r``/``\\t``, three-digit octal for
    any other control character. A raw line break (a password or a path holding one) ended the value: the server
    then refused to start on the file."""
    if '\x00' in value:
        raise OpsReadyError('PostgreSQL configuration values cannot contain NUL bytes: %r.' % value)
    out = []
    for char in value.replace('\\', '\\\\').replace("'", "''"):
        if char == '\n':
            out.append('\\n')
        elif char == '\r':
            out.append('\\r')
        elif char == '\t':
            out.append('\\t')
        elif char < ' ' or char == '\x7f':
            out.append('\\%03o' % ord(char))
        else:
            out.append(char)
    return "'" + ''.join(out) + "'"


def conninfo_value(value: str) -> str:
    """``value`` as a libpq connection-string value: single-quoted, ``\\`` and ``'`` backslash-escaped."""
    if '\x00' in value:
        raise OpsReadyError('Connection parameters cannot contain NUL bytes: %r.' % value)
    return "'" + value.replace('\\', '\\\\').replace("'", "\\'") + "'"


def dbname_arg(database: str) -> str:
    """``--dbname=dbname='...'``: the database for a libpq tool's argv, never an option or a connection string."""
    return '--dbname=dbname=%s' % conninfo_value(check_name(database, 'database name'))


def quote_literal_or_null(value: object) -> str:
    return 'NULL' if value is None else quote_literal(str(value))


def ident_list(names: Iterable[str]) -> str:
    return ', '.join(quote_ident(n) for n in names)
