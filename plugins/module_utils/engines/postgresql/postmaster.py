# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The postmaster PID a data directory records.

The data directory belongs to the postgres account and these readers often run as root: a FIFO planted at
``postmaster.pid`` made a plain ``open()`` hang the run, and a symlink made root read whatever it named. The file
is read only when it is a regular file, without following a link, and without blocking.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
from typing import Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files.safeio import read_regular


def postmaster_pid(datadir: str) -> Optional[int]:
    """The PID on the first line of ``<datadir>/postmaster.pid``; None when there is no such file or it is not a
    regular file holding a number (a server that is not running, or a name someone planted)."""
    try:
        text = read_regular(os.path.join(datadir, 'postmaster.pid'), 64 * 1024, what='postmaster.pid', follow=False)
        return int(text.split(b'\n', 1)[0].strip())
    except (OSError, OpsReadyError, ValueError):
        return None
