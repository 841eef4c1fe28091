# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_info runs exactly as Ansible's ``normal`` action runs it (check mode, async, module_defaults), with the
worker's cyclic garbage collector paused while Ansible builds and runs the module: see plugin_utils/worker_gc.py
(issue 22, module start-up)."""

from __future__ import annotations

from ansible.plugins.action.normal import ActionModule as _NormalAction

from ansible_collections.opsready.operations.plugins.plugin_utils.worker_gc import collector_paused


class ActionModule(_NormalAction):

    def run(self, tmp=None, task_vars=None):
        with collector_paused():
            return super().run(tmp, task_vars)
