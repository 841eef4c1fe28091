# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""safe_write: Ansible's normal action, the task worker's garbage collector paused (plugin_utils/worker_gc.py), and
the new content put into the diff here, on the controller.

The module's ``content`` is no_log, as ansible.builtin.copy's is: a secret written with it never reaches the
module's output, a verbose run's invocation or the target's syslog. The module returns the old content only (read
where it could not be a planted link's target) and ``after_is_content``; the new content is the task's own argument,
already in the controller's hands, as builtin copy's action plugin builds its diff there too."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.plugin_utils.worker_gc import CollectorPausedAction


class ActionModule(CollectorPausedAction):

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        diff = result.get('diff')
        if isinstance(diff, dict) and diff.pop('after_is_content', False):
            diff['after'] = self._task.args.get('content', '')
        return result
