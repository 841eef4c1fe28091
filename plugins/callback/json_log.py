# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: json_log
type: notification
short_description: Structured JSON log of every task result, one line each
version_added: 0.1.0
description:
  - Appends one JSON object per task result to a file (JSON lines), for log shippers and audits.
  - Each line has C(timestamp) (UTC ISO 8601), C(level), C(service), C(traceId), C(message) and
    C(context) with C(host), C(play), C(task), C(action), C(status), C(duration_ms) and C(changed).
  - Levels are C(ERROR) for failed or unreachable results, C(INFO) for ok or changed, C(DEBUG) for
    skipped ones.
  - C(traceId) is one random id per playbook run. It is exported to modules running on the control
    node as the environment variable C(OPSREADY_TRACE_ID) and to plays as the variable
    C(opsready_trace_id), so reports written by modules can carry it.
  - Results of tasks with C(no_log) are logged without their message.
requirements:
  - enable in ansible.cfg with C(callbacks_enabled = opsready.operations.json_log)
options:
  path:
    description:
      - File the JSON lines are appended to; its directory is created if missing.
      - The directory is opened once, when the play starts, and each line appended relative to it; a symlink on the
        way is followed only in a directory only root (or the user running the play) can write. Where another
        account could have made it, nothing is logged and a warning says why.
    type: path
    default: ./reports/ansible-tasks.jsonl
    env:
      - name: OPSREADY_JSON_LOG_PATH
    ini:
      - section: callback_json_log
        key: path
  service:
    description: Value of the C(service) field.
    type: str
    default: opsready
    env:
      - name: OPSREADY_JSON_LOG_SERVICE
    ini:
      - section: callback_json_log
        key: service
'''

import json
import os
import stat
import time
import uuid
from datetime import datetime, timezone

from ansible.plugins.callback import CallbackBase

from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

LEVELS = {'failed': 'ERROR', 'unreachable': 'ERROR', 'ok': 'INFO', 'changed': 'INFO', 'skipped': 'DEBUG'}
HIDDEN = 'the output has been hidden due to the fact that no_log: true was specified for this result'


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'opsready.operations.json_log'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self.trace_id = uuid.uuid4().hex
        os.environ['OPSREADY_TRACE_ID'] = self.trace_id
        self._play = None
        self._started = {}
        self._path = None
        self._dir_fd = None

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._path = os.path.abspath(os.path.expanduser(self.get_option('path')))
        self._close_directory()
        directory = os.path.dirname(self._path)
        # The log's directory is opened once, here, and every line appended relative to that descriptor: opening the
        # full path for each line let an account owning a directory above the log (its own directory, where the
        # operator keeps the logs) put a link to a directory of root's at the log's directory, before or during the
        # play, and root then created and appended to a file there (/etc/cron.d reads every file). make_directories
        # walks the path one component at a time and follows a link only where no account but root could have made
        # it; it makes missing directories 0750 (the log is 0640), never with os.makedirs (0777 minus the umask,
        # world-writable under umask 000).
        try:
            self._dir_fd = safeio.make_directories(directory, 0o750, 0o755)
        except safeio.UnsafeFileError as exc:
            self._stop_logging('cannot be opened safely (%s)' % exc.message)
        except OSError as exc:
            self._stop_logging('cannot be created (%s)' % (exc.strerror or exc))

    def _close_directory(self):
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()
        play.vars['opsready_trace_id'] = self.trace_id

    def v2_runner_on_start(self, host, task):
        self._started[(host.get_name(), task._uuid)] = time.monotonic()

    def _emit(self, result, status):
        task = result._task
        host = result._host.get_name()
        res = result._result or {}
        started = self._started.pop((host, task._uuid), None)
        duration_ms = int((time.monotonic() - started) * 1000) if started is not None else None
        changed = bool(res.get('changed', False))
        if status == 'ok' and changed:
            status = 'changed'
        if task.no_log or res.get('_ansible_no_log'):
            message = HIDDEN
        elif status in ('failed', 'unreachable'):
            message = str(res.get('msg') or res.get('stderr') or res.get('reason') or 'task failed')
        else:
            message = '%s %s' % (task.get_name(), status)
        line = {
            'timestamp': datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ'),
            'level': LEVELS[status],
            'service': self.get_option('service'),
            'traceId': self.trace_id,
            'message': message,
            'context': {
                'host': host,
                'play': self._play,
                'task': task.get_name(),
                'action': task.action,
                'status': status,
                'duration_ms': duration_ms,
                'changed': changed,
            },
        }
        # One write with O_APPEND so lines from forked workers never interleave. The final name is never
        # followed (O_NOFOLLOW) and must be a regular file with one link: whoever can write the log's
        # directory could otherwise plant a link and make this process append to any file it can write;
        # O_NONBLOCK keeps a FIFO planted there from blocking the play.
        if self._path is None or self._dir_fd is None:
            return
        try:
            fd = os.open(os.path.basename(self._path), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0), 0o640, dir_fd=self._dir_fd)
        except OSError as exc:
            self._stop_logging('cannot be opened without following a link (%s)' % exc.strerror)
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                self._stop_logging('is not a regular file with one link')
                return
            os.write(fd, (json.dumps(line, sort_keys=True, default=str) + '\n').encode('utf-8'))
        finally:
            os.close(fd)

    def _stop_logging(self, why):
        self._display.warning('opsready json_log: %s %s: nothing more is logged there. Point the path at a '
                              'regular file.' % (self._path, why))
        self._path = None
        self._close_directory()

    def v2_runner_on_ok(self, result):
        self._emit(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._emit(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._emit(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._emit(result, 'unreachable')
