# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""safe_unlink: Ansible's normal action, the task worker's garbage collector paused (plugin_utils/worker_gc.py)."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.plugin_utils.worker_gc import CollectorPausedAction


class ActionModule(CollectorPausedAction):
    pass
