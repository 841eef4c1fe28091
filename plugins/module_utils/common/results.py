# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ansible-core adds to a module's result on its own, turned off for every module of the collection.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict


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
      output, and a refused FIFO or automount point was looked up all the same;
    - the ``$NAME`` expansion names another file than the one refused: a file named ``d$HOME`` from an archive (no
      option expanded it) made it ``lstat`` ``.../d/root``, and the ``FileNotFoundError`` replaced our message with
      a MODULE FAILURE traceback.

    A module says what it found in its own keys (from the descriptor it opened, never by name again)."""
    module.add_path_info = _as_given
