#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: log_rotate
short_description: Rotate, compress and expire log files without losing a line
version_added: 0.1.0
description:
  - Rotates log files named by paths or globs when a trigger fires (O(size), O(interval) with
    O(minsize), O(force)), keeps O(rotate) copies and removes copies older than O(maxage) days,
    and compresses the copies (zstd by default, or gzip) atomically (C(.partial), fsync, rename).
  - "Two modes with different guarantees. V(create) (default): the log is hard-linked to its rotated
    name and a new empty file, created beforehand with the right owner, group and mode, is renamed
    over it, so the log path exists at every instant and no log is renamed without its new file. The
    writer is then told to reopen (O(signal) to the process in O(pidfile), or the O(postrotate)
    command, run once per invocation); the rotated copy is compressed or deleted only once no process
    holds it open for writing (checked in C(/proc/*/fd)), so no line is lost and no deleted file stays
    open. V(copytruncate): for writers that cannot reopen their file; the log is copied, caught up to
    its end and truncated in place. Lines written between the last read and the truncate are lost
    (a window of microseconds; the integration test counts them). Prefer V(create). V(copy): the log
    is copied and left as it is (logrotate's C(copy)), for a snapshot while another tool truncates."
  - "Hostile directories: every file operation is relative to the log directory opened once
    (C(openat), C(O_NOFOLLOW), C(fstat) checks of the device and inode that were planned), so a user
    who can write the directory cannot redirect the rotation to another file by swapping names for
    symlinks or hard links; such a log is refused, special files (FIFOs, devices) are never opened.
    Run as root, a directory that another user can write (owned by a user other than root, writable
    by others or by a group other than root, or below such a directory without the sticky bit) is
    refused as logrotate does, unless O(su) names the user to act as."
  - Names follow logrotate, so existing archives keep working. C(app.log.1), C(app.log.2.zst), ...
    or, with O(dateext), C(app.log-20261129.zst).
  - Interval triggers are remembered in O(state_file). A log seen for the first time is recorded
    there and not rotated by interval, as logrotate does.
author: opsready developers (@opsready)
options:
  paths:
    description:
      - Absolute paths or globs of the logs. A glob never matches rotated copies (C(*.1), C(*.zst),
        C(*.gz), dated names) and never follows symlinks.
      - A path or glob matching nothing is an error unless O(missingok).
    type: list
    elements: str
    required: true
  mode:
    description: How to rotate; see the description for the trade-off.
    type: str
    choices: [create, copytruncate, copy]
    default: create
  su:
    description:
      - The user (and group) the file operations run as, like logrotate's C(su user group). Discovery,
        renaming, copying, truncating, compressing and deleting run with that user's effective uid, gid
        and no other group, so the kernel refuses what that user could not do by hand; the state
        file, O(pidfile), O(signal) and O(postrotate) stay root's (logrotate also runs its scripts as
        root). Needs root (C(become=true)).
      - Required, as root, for log directories that another user can write; usually that user.
    type: dict
    suboptions:
      user:
        description: User name or uid.
        type: str
        required: true
      group:
        description: Group name or gid. Defaults to the user's primary group.
        type: str
  rotate:
    description: Number of rotated copies to keep. V(0) deletes the copy once the writer has reopened.
    type: int
    default: 7
  size:
    description:
      - Rotate when the log is at least this big, whatever O(interval) says. Bytes, or a number with
        C(k), C(M) or C(G) (powers of 1024).
    type: str
  minsize:
    description: With O(interval), rotate only when the log is also at least this big.
    type: str
  interval:
    description: Rotate when the local calendar day, ISO week, month or year changed since the last rotation.
    type: str
    choices: [daily, weekly, monthly, yearly]
  force:
    description: Rotate every matched log now, whatever the triggers say (empty logs still follow O(notifempty)).
    type: bool
    default: false
  maxage:
    description: Delete rotated copies whose modification time is older than this many days (checked when rotating).
    type: int
  missingok:
    description: Do not fail when a path or glob matches no file.
    type: bool
    default: false
  notifempty:
    description: Never rotate an empty log. Unlike logrotate's default (V(ifempty)), this is on by default.
    type: bool
    default: true
  dateext:
    description: Name rotated copies with a date (O(dateformat)) instead of a number.
    type: bool
    default: false
  dateformat:
    description:
      - strftime suffix appended to the log name with O(dateext), in local time. Supported directives
        C(%Y %m %d %H %M %S %j %y %s %V %u). When the name already exists (two rotations in one period)
        the log is not rotated and a warning says so; add C(%H%M%S) to rotate more often.
      - Copies are ordered (for O(rotate)) by the instant their name stands for in local time. When the clock goes
        back (the end of daylight saving time) an hour of names repeats; with a format finer than an hour, a name in
        that hour is taken as the second pass's when the copy's modification time (its log's last write) is later
        than the first pass's period allows, so retention never deletes a copy newer than one it keeps.
    type: str
    default: "-%Y%m%d"
  compress:
    description: Compress rotated copies.
    type: bool
    default: true
  compression:
    description: Compressor for rotated copies. zstd is faster and smaller; gzip for tools that only read C(.gz).
    type: str
    choices: [zstd, gzip]
    default: zstd
  compression_level:
    description: Compression level (zstd 1-19, default 3; gzip 1-9, default 6).
    type: int
  delaycompress:
    description:
      - Leave the newest rotated copy uncompressed until the next rotation (for writers that may
        still append to it for a while after rotation).
    type: bool
    default: false
  create_mode:
    description:
      - Mode of the new log file (V(create) mode), as a quoted octal string such as V("0640"). An
        integer is taken as the numeric mode, as the file module does (YAML reads unquoted 0640 as octal).
      - Defaults to the mode of the rotated log.
    type: raw
  create_owner:
    description: Owner (name or uid) of the new log file. Defaults to the owner of the rotated log.
    type: str
  create_group:
    description: Group (name or gid) of the new log file. Defaults to the group of the rotated log.
    type: str
  pidfile:
    description:
      - File holding the pid of the writer to signal after rotating. It must name a live process,
        checked before anything is renamed.
    type: path
  signal:
    description: Signal sent to the process in O(pidfile) so it reopens its log.
    type: str
    default: HUP
  postrotate:
    description:
      - Shell command run once per invocation after at least one log was rotated (for example
        C(systemctl kill -s USR1 nginx)). A non-zero exit fails the task; the rotated copies are kept
        uncompressed.
    type: str
  reopen_timeout:
    description:
      - Seconds to wait, after O(signal) or O(postrotate), for writers to release the rotated copies
        before compressing or deleting them. A copy still open afterwards is left as it is, with a warning.
    type: float
    default: 10
  state_file:
    description:
      - JSON file remembering when each log was last rotated (for O(interval)).
      - Refused, before any log is rotated, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
      - Runs with the same O(state_file) take turns, as logrotate's runs do with its state file, through a lock on
        C(<state_file>.lock) that stays there. A run waits up to 120 seconds for another to finish, then plans on what
        it finds. Two runs on one log at once could each copy it before either truncated it (O(mode=copytruncate))
        and so keep every line twice. Check mode waits too, but creates no lock file.
      - Runs on the same log with different O(state_file)s take turns too, through a lock per log (keyed on its
        directory's device and inode and its name) in C(/run/opsready/log-locks) (root's, outside the world-writable
        C(/run/lock) where another account could make it first; another user's runs use
        C(/run/lock/opsready-log-locks-<uid>), or the same name in the temporary directory where they may not write in
        C(/run/lock)), taken before the log is planned on, in one order. That directory is made 0700 and refused when
        it is a link, not a directory, another account's, or writable by others.
    type: path
    default: /var/lib/opsready/log_rotate.json
  threads:
    description: Copies compressed in parallel; V(0) uses every CPU the process may run on.
    type: int
    default: 0
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - Supports C(check_mode) (the plan is returned in RV(plan), nothing is written) and C(diff_mode)
    (the file names of each rotated log before and after).
  - Reading C(/proc/*/fd) of other users' processes needs root; without it a writer of another user
    is not seen and its copy may be compressed too early. Run with C(become=true).
seealso:
  - name: logrotate(8)
    description: The classic tool whose naming and trigger semantics this module follows.
    link: https://man7.org/linux/man-pages/man8/logrotate.8.html
'''

EXAMPLES = r'''
- name: Rotate application logs daily, keep 14 days, reopen through the pid file
  opsready.operations.log_rotate:
    paths:
      - /var/log/myapp/*.log
    interval: daily
    rotate: 14
    maxage: 30
    pidfile: /run/myapp.pid
    signal: HUP

- name: Rotate nginx logs above 100M with dated names and tell nginx to reopen
  opsready.operations.log_rotate:
    paths: [/var/log/nginx/access.log, /var/log/nginx/error.log]
    size: 100M
    dateext: true
    dateformat: "-%Y%m%d-%H%M%S"
    delaycompress: true
    create_mode: "0640"
    create_owner: www-data
    create_group: adm
    postrotate: "[ -s /run/nginx.pid ] && kill -USR1 $(cat /run/nginx.pid)"

- name: Logs in a directory the application user owns, rotated with that user's rights only
  opsready.operations.log_rotate:
    paths: [/srv/app/logs/*.log]
    interval: daily
    su:
      user: app
      group: app
    pidfile: /run/app.pid

- name: A writer that cannot reopen its file (loses the lines of a microsecond window)
  opsready.operations.log_rotate:
    paths: [/opt/legacy/output.log]
    size: 50M
    mode: copytruncate
    compression: gzip
    missingok: true
'''

RETURN = r'''
rotated:
  description:
    - Logs rotated, with the name of their rotated copy, size and the trigger that fired.
    - In check mode, the ones that would be (size as the log is now).
  returned: success
  type: list
  elements: dict
  sample: [{"log": "/var/log/myapp/app.log", "rotated_to": "/var/log/myapp/app.log.1", "size": 1048576,
            "reason": "size 1048576 >= 1048576", "mode": "create"}]
compressed:
  description:
    - Rotated copies compressed (plain name, compressed name, sizes).
    - Empty in check mode (the sizes are not known before); RV(plan) lists what would be compressed.
  returned: success
  type: list
  elements: dict
  sample: [{"path": "/var/log/myapp/app.log.1", "compressed": "/var/log/myapp/app.log.1.zst",
            "size": 1048576, "compressed_size": 81234}]
deleted:
  description:
    - Rotated copies removed (beyond O(rotate), older than O(maxage)).
    - In check mode, the ones that would be.
  returned: success
  type: list
  elements: str
  sample: [/var/log/myapp/app.log.8.zst]
not_rotated:
  description: Logs not rotated and why (trigger not due, empty, name taken, held by a writer).
  returned: success
  type: list
  elements: dict
  sample: [{"log": "/var/log/myapp/worker.log", "reason": "daily not due (last rotated 2026-11-29T00:05:00.000000Z)"}]
held_open:
  description: Copies left uncompressed/undeleted because a process still holds them open for writing.
  returned: success
  type: list
  elements: dict
  sample: [{"path": "/var/log/myapp/app.log.1", "pids": [1234]}]
missing:
  description: Paths or globs that matched nothing (with O(missingok)).
  returned: success
  type: list
  elements: str
signalled:
  description: Pids sent O(signal).
  returned: success
  type: list
  elements: int
postrotate:
  description: Result of the O(postrotate) command (rc, stdout, stderr), or null when it did not run.
  returned: success
  type: dict
plan:
  description: What is (or in check mode would be) done per log, in order.
  returned: success
  type: list
  elements: dict
  sample: [{"log": "/var/log/myapp/app.log", "rotated_to": "/var/log/myapp/app.log.1",
            "shifts": [["/var/log/myapp/app.log.1.zst", "/var/log/myapp/app.log.2.zst"]],
            "delete": [], "compress": ["/var/log/myapp/app.log.1"], "leftovers": [], "reason": "force", "size": 10}]
state_written:
  description: Whether the state file was updated.
  returned: success
  type: bool
'''

import grp
import pwd

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files.safeio import displayable
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import Rotation
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.triggers import parse_size


def _uid(value):
    if value is None:
        return None
    if str(value).isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise OpsReadyError('create_owner %r is not a user on this host: create it or give a uid.' % value)


def _gid(value):
    if value is None:
        return None
    if str(value).isdigit():
        return int(value)
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise OpsReadyError('create_group %r is not a group on this host: create it or give a gid.' % value)


def _mode(value):
    if value is None:
        return None
    if isinstance(value, int):
        mode = value  # as ansible.builtin.file: unquoted YAML 0640 is already the octal number
    else:
        try:
            mode = int(str(value).strip(), 8)
        except ValueError:
            raise OpsReadyError('create_mode %r is not an octal mode: quote it, e.g. "0640".' % value)
    if not 0 <= mode <= 0o7777:
        raise OpsReadyError('create_mode %r is out of range: use an octal mode such as "0640".' % value)
    return mode


def _su(value):
    if not value:
        return None, None
    user = value['user']
    try:
        entry = pwd.getpwuid(int(user)) if str(user).isdigit() else pwd.getpwnam(user)
    except KeyError:
        if str(user).isdigit():
            uid, gid = int(user), None
        else:
            raise OpsReadyError('su user %r is not a user on this host: create it or give a uid.' % user)
    else:
        uid, gid = entry.pw_uid, entry.pw_gid
    if value.get('group') is not None:
        group = value['group']
        if str(group).isdigit():
            gid = int(group)
        else:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise OpsReadyError('su group %r is not a group on this host: create it or give a gid.' % group)
    if gid is None:
        raise OpsReadyError('su user %s has no entry in the user database: give su.group as well.' % user)
    return uid, gid


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type='list', elements='str', required=True),
            mode=dict(type='str', choices=['create', 'copytruncate', 'copy'], default='create'),
            su=dict(type='dict', options=dict(user=dict(type='str', required=True), group=dict(type='str'))),
            rotate=dict(type='int', default=7),
            size=dict(type='str'),
            minsize=dict(type='str'),
            interval=dict(type='str', choices=['daily', 'weekly', 'monthly', 'yearly']),
            force=dict(type='bool', default=False),
            maxage=dict(type='int'),
            missingok=dict(type='bool', default=False),
            notifempty=dict(type='bool', default=True),
            dateext=dict(type='bool', default=False),
            dateformat=dict(type='str', default='-%Y%m%d'),
            compress=dict(type='bool', default=True),
            compression=dict(type='str', choices=['zstd', 'gzip'], default='zstd'),
            compression_level=dict(type='int'),
            delaycompress=dict(type='bool', default=False),
            create_mode=dict(type='raw'),
            create_owner=dict(type='str'),
            create_group=dict(type='str'),
            pidfile=dict(type='path'),
            signal=dict(type='str', default='HUP'),
            postrotate=dict(type='str'),
            reopen_timeout=dict(type='float', default=10.0),
            state_file=dict(type='path', default='/var/lib/opsready/log_rotate.json'),
            threads=dict(type='int', default=0),
        ),
        required_by=dict(minsize=('interval',)),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    if p['mode'] != 'create':
        for option in ('create_mode', 'create_owner', 'create_group'):
            if p[option] is not None:
                module.fail_json(msg='%s applies to mode=create only: %s keeps the same file.' % (option, p['mode']))
    if p['threads'] < 0:
        module.fail_json(msg='threads must be 0 (all CPUs) or more, not %d.' % p['threads'])
    try:
        su_uid, su_gid = _su(p['su'])
        policy = Policy(
            mode=p['mode'], rotate=p['rotate'], size=parse_size(p['size'], 'size'),
            minsize=parse_size(p['minsize'], 'minsize'), interval=p['interval'], force=p['force'],
            maxage=p['maxage'], missingok=p['missingok'], notifempty=p['notifempty'], dateext=p['dateext'],
            dateformat=p['dateformat'], compress=p['compress'], compression=p['compression'],
            compression_level=p['compression_level'], delaycompress=p['delaycompress'],
            create_mode=_mode(p['create_mode']), create_uid=_uid(p['create_owner']),
            create_gid=_gid(p['create_group']), reopen_timeout=p['reopen_timeout'])
        rotation = Rotation(p['paths'], policy, p['state_file'], signal=p['signal'], pidfile=p['pidfile'],
                            postrotate=p['postrotate'], threads=p['threads'], su_uid=su_uid, su_gid=su_gid)
        result = rotation.run(check_mode=module.check_mode)
    except OpsReadyError as exc:
        module.fail_json(**displayable(exc.as_fail_kwargs()))
    except OSError as exc:
        module.fail_json(msg=displayable('Log rotation failed: %s (%s).'
                                         % (exc.strerror or exc, getattr(exc, 'filename', ''))))
    # Log names that are not UTF-8 are shown escaped (\\xff): ansible-core refuses lone surrogates in a result,
    # and the task read as failed although every log was rotated.
    result = displayable(result)
    diff = result.pop('diff')
    for warning in result.pop('warnings'):
        module.warn(warning)
    if module._diff and result['plan']:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
