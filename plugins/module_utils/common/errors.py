# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions that modules turn into ``fail_json`` messages, and what ansible-core may not add to those results
(``no_path_info``: here, the one module_utils file every module already ships).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, Optional


class OpsReadyError(Exception):
    """An error whose message is fit to show an operator: it says what failed and what to do."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: Dict[str, Any] = details

    def as_fail_kwargs(self) -> Dict[str, Any]:
        result = dict(self.details)
        result['msg'] = self.message
        return result


class ToolError(OpsReadyError):
    """An external tool failed; ``stderr`` is already redacted."""

    def __init__(self, message: str, rc: Optional[int] = None, stderr: str = '', cmd: Optional[list] = None) -> None:
        super().__init__(message, rc=rc, stderr=stderr, cmd=cmd or [])
        self.rc = rc
        self.stderr = stderr


class IntegrityError(OpsReadyError):
    """An artifact does not match its manifest (checksum, size, engine check)."""


class CatalogError(OpsReadyError):
    """The catalog cannot answer: missing chain piece, no full backup, point outside the window."""


def _as_given(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    return kwargs


def no_path_info(module: Any) -> None:
    """Stop ansible-core's ``exit_json``/``fail_json`` from describing the result's ``path`` (else ``dest``): its
    ``AnsibleModule.add_path_info`` looks that name up, as root, and adds ``uid``/``gid``/``owner``/``group`` (of the
    name with ``$NAME`` and ``~`` expanded), ``mode``/``size``/``state`` (of the name as given) and ``secontext``.

    Every module calls it right after making its ``AnsibleModule`` (tests/unit/test_path_info_pathinfo15.py checks
    each one), since nearly every refusal here carries ``path=``/``dest=`` - the very file refused:

    - the lookup goes by name through every link on the way: a refusal of a directory reached through a link another
      account planted described the directory of root's it leads to (owner root, mode 0700, its size), in the task's
      output;
    - the ``$NAME`` expansion names another file than the one refused: a file named ``d$HOME`` from an archive (no
      option expanded it) made it ``lstat`` ``.../d/root``, and the ``FileNotFoundError`` replaced our message with
      a MODULE FAILURE traceback.

    A module says what it found in its own keys (from the descriptor it opened, never by name again)."""
    module.add_path_info = _as_given
