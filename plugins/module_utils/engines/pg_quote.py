# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL quoting: the one place where names and values become SQL text.

* ``quote_ident``: always double-quoted (``"a""b"``), so case, spaces, keywords and non-ASCII survive.
* ``quote_literal``: an ``E'...'`` string with ``'`` and ``\\`` doubled. The escape-string syntax means the
  same whatever ``standard_conforming_strings`` is set to (with it off, a plain ``'a\\'`` would end early
  and let the rest be read as SQL).
* NUL cannot be stored in PostgreSQL text at all: refused rather than silently cut.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Iterable

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier, always quoted."""
    if not isinstance(name, str) or name == '':
        raise OpsReadyError('A PostgreSQL identifier must be a non-empty string, not %r.' % (name,))
    if '\x00' in name:
        raise OpsReadyError('PostgreSQL identifiers cannot contain NUL bytes: %r.' % name)
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """``value`` as a string constant that reads the same with ``standard_conforming_strings`` on or off."""
    if '\x00' in value:
        raise OpsReadyError('PostgreSQL strings cannot contain NUL bytes: %r.' % value)
    return "E'" + value.replace('\\', '\\\\').replace("'", "''") + "'"


def quote_literal_or_null(value: object) -> str:
    return 'NULL' if value is None else quote_literal(str(value))


def ident_list(names: Iterable[str]) -> str:
    return ', '.join(quote_ident(n) for n in names)
