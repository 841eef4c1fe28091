# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each module_utils file of an Ansible payload compiled once on the target, not twice (issue 22).

A module runs from its AnsiballZ zip: ``zipimport`` imports every module_utils file from source (the payload
holds no ``.pyc``), and CPython's (3.11 here) compiles each of them twice: ``find_spec`` builds the
module's spec with ``spec_from_file_location``, which asks ``get_filename``, which compiles the source only to
learn its path, and ``exec_module`` compiles it again. Compiling is most of what a module's imports cost there
(backup_info: the catalog, ~150 KB of source; ~15 ms of CPU per run of the second compile).

Importing this module (first among the collection's imports of a module file) keeps the code object of the
first compile of each collection file until the second asks for the same file with the same bytes, and hands
it over. A code object is immutable and the same source compiles to the same code, so nothing else changes;
an entry goes with its second use. Only the module's own process is affected (it runs one module and exits).
A Python whose ``zipimport`` has no ``_compile_source(pathname, source)`` is left as it is.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import zipimport
from typing import Any, Callable, Dict, Tuple

_MARK = '_opsready_compile_once'


def install() -> bool:
    """Wrap ``zipimport._compile_source`` (once per process); False when this Python has none to wrap."""
    original = getattr(zipimport, '_compile_source', None)
    if original is None or getattr(original, _MARK, False):
        return original is not None
    code = getattr(original, '__code__', None)
    if code is None or code.co_argcount != 2 or code.co_varnames[:2] != ('pathname', 'source'):
        return False
    pending: Dict[str, Tuple[bytes, Any]] = {}

    def compile_source(pathname: str, source: bytes) -> Any:
        kept = pending.pop(pathname, None)
        if kept is not None and kept[0] == source:
            return kept[1]
        compiled = original(pathname, source)
        if 'ansible_collections' in pathname:   # this collection's files and its siblings: Ansible's own are done
            pending[pathname] = (source, compiled)
        return compiled

    setattr(compile_source, _MARK, True)
    wrapped: Callable[[str, bytes], Any] = compile_source
    zipimport._compile_source = wrapped   # type: ignore[attr-defined]
    return True


install()
