#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: safe_write
short_description: Write a small file without following a link planted at its name
version_added: 0.1.0
description:
  - Makes O(dest) a regular file of O(owner) (the user the task runs as by default), holding O(content) with O(mode),
    replaced atomically (an exclusive staged file beside it, owner, group and mode set on its descriptor, fsynced,
    renamed over the name).
  - Unlike M(ansible.builtin.copy), whatever is at O(dest) - a symlink, a hard link to another file, a FIFO, a file of
    another account - is replaced, never written, read or checksummed through, and the new file never takes the owner
    of what was there. M(ansible.builtin.copy) removes a link at O(dest) and then creates the file by name, so a link
    put back in between is followed, and it gives the new file the owner of a hard link found at the name. Use it when
    root writes into a directory another account can write (an application's directory, its deploy account's), or
    into a directory whose path the operator chooses.
  - The directory of O(dest) is opened once, one component at a time; a symlink on the way is followed only in a
    directory only root (or the user the task runs as) can write.
  - Nothing is written (V(changed=false)) when O(dest) already is a regular file with one name holding O(content),
    with O(mode), O(owner) and O(group).
author: opsready developers (@opsready)
options:
  dest:
    description:
      - The file to write, an absolute path. Its directory must exist.
      - Taken as written, whatever bytes its name holds (newlines, quotes, C(%), C($), non-ASCII); a C(~) at its start
        is the home directory, but unlike a C(type=path) option no C($NAME) is expanded (a file named C($HOME) is
        that file). A C(..) component, or a trailing C(/) or C(/.), is refused rather than cleaned up into the name
        of another file.
    type: str
    required: true
  content:
    description:
      - The text written (UTF-8).
      - Hidden from the module's output and logs (C(no_log)), as M(ansible.builtin.copy)'s O(content) is. Diff mode
        (C(--diff)) still shows it, added to the diff by the action plugin on the controller from the task's own
        arguments. Set C(no_log) on a task whose content is a secret, which hides its diff too.
    type: str
    required: true
  mode:
    description: The file's permissions, in octal (V(0644)).
    type: str
    default: '0644'
  owner:
    description:
      - The user (name or numeric id) the file belongs to; the user the task runs as when unset.
      - Set on the staged file's descriptor before it is renamed into place, never by name. Only root can give a file
        to another user.
    type: str
  group:
    description:
      - The group (name or numeric id) of the file; left as the new file's when unset (an existing file of the right
        owner, content and mode is then unchanged whatever its group).
    type: str
  validate:
    description:
      - A command run on a copy of the new content before it replaces O(dest), as M(ansible.builtin.copy)'s
        C(validate) - V(%s) is the copy's path, e.g. V(/usr/sbin/logrotate -d %s) or V(/usr/sbin/visudo -cf %s).
      - The copy is in a private temporary directory with the base name of O(dest), not in O(dest)'s directory (an
        account that can write there could swap it between the check and the rename). Run without a shell.
      - Only run when the file would change, and not in check mode. A non-zero exit fails the task and leaves O(dest)
        as it was.
    type: str
attributes:
  check_mode:
    description: Reports whether the file would be written (and the diff); writes nothing and runs no O(validate).
    support: full
  diff_mode:
    description:
      - Shows the old and the new content when the file changes. The old content is read only from a regular file of
        the wanted owner (or of the user the task runs as) with one name and at most 1 MiB; what a planted link leads
        to is never read, its diff shows it as empty.
    support: full
seealso:
  - module: ansible.builtin.copy
  - module: opsready.operations.safe_slurp
'''

EXAMPLES = r'''
- name: Record the rollback in the application's directory (as root)
  opsready.operations.safe_write:
    dest: /srv/app/.opsready-rollback.json
    content: "{{ {'from': 'v2', 'to': 'v1'} | to_nice_json }}\n"
    mode: "0644"

- name: Install a logrotate policy, checked by logrotate before it replaces the installed one
  opsready.operations.safe_write:
    dest: /etc/logrotate.d/app
    content: "{{ lookup('ansible.builtin.template', 'logrotate.conf.j2') }}"
    owner: root
    group: root
    mode: "0644"
    validate: /usr/sbin/logrotate -d %s

- name: A file holding a password, for the application's account (no diff, no content in the log)
  opsready.operations.safe_write:
    dest: /srv/app/db.conf
    content: "password={{ app_db_password }}\n"
    owner: app
    group: app
    mode: "0600"
  no_log: true
'''

RETURN = r'''
dest:
  description: O(dest) as written.
  returned: success
  type: str
  sample: /srv/app/.opsready-rollback.json
replaced:
  description:
    - What was at O(dest) and was replaced rather than written through (a symlink, a file with several hard links, a
      file of another user, a FIFO); null when it was a regular file of the wanted owner (or of this user) or nothing.
  returned: success
  type: str
  sample: a symlink
changes:
  description: What differed and was (or in check mode would be) set - V(content), V(mode), V(owner), V(group); empty
    when unchanged. A new or replaced file lists V(content).
  returned: success
  type: list
  elements: str
  sample: [content, mode]
'''

import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

DIFF_LIMIT = 1024 * 1024


def _validator(module, command):
    # why a private directory: a staged file in dest's directory can be swapped by whoever writes that directory
    def validate(data, name):
        workdir = tempfile.mkdtemp(prefix='safe_write-', dir=module.tmpdir)
        try:
            candidate = os.path.join(workdir, name)
            with open(candidate, 'wb') as handle:
                handle.write(data)
            rc, out, err = module.run_command(safeio.validate_argv(command, candidate), expand_user_and_vars=False)
            if rc != 0:
                module.fail_json(msg='validate refused the new content of %s (exit %d): %s. %s was left as it was.'
                                 % (module.params['dest'], rc, (err or out).strip().replace(candidate, '%s'),
                                    module.params['dest']), rc=rc, dest=module.params['dest'])
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return validate


def _diff(dest, before, content, changes):
    if 'content' not in changes:
        return {'before_header': dest, 'after_header': dest, 'before': '', 'after': ''}
    text = before.decode('utf-8', 'replace') if before is not None else ''
    if len(content) > DIFF_LIMIT:
        return {'before_header': dest, 'after_header': dest, 'before': '', 'after': '(more than 1 MiB, not shown)\n'}
    # ``after`` is the content, which no_log would print as asterisks: plugins/action/safe_write.py puts the
    # task's own argument there on the controller (the module's output never holds it).
    return {'before_header': dest, 'after_header': dest, 'before': text, 'after_is_content': True}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='str', required=True),
            content=dict(type='str', required=True, no_log=True),
            mode=dict(type='str', default='0644'),
            owner=dict(type='str'),
            group=dict(type='str'),
            validate=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    p['dest'] = safeio.path_option(p['dest'])
    if not os.path.isabs(p['dest']):
        module.fail_json(msg='dest must be an absolute path, not %r: a relative one would name a file in whatever '
                         'directory the module runs in.' % p['dest'])
    try:
        mode = int(p['mode'], 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        module.fail_json(msg='mode must be octal permissions such as 0644, not %r.' % p['mode'])
    if p['validate'] is not None and '%s' not in p['validate']:
        module.fail_json(msg='validate must contain %%s where the path of the file to check goes, not %r.'
                         % p['validate'])
    try:
        owner = safeio.resolve_user(p['owner'])
        gid = safeio.resolve_group(p['group'])
        written = safeio.write_nofollow(
            p['dest'], p['content'].encode('utf-8'), mode, module.check_mode, uid=owner[0] if owner else None,
            gid=gid, validate=_validator(module, p['validate']) if p['validate'] else None,
            before_limit=DIFF_LIMIT if module._diff else 0)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='Cannot write %s: %s.' % (p['dest'], exc.strerror or exc), dest=p['dest'])
    if written.replaced:
        module.warn('%s was %s: it was replaced by a regular file, never written through.'
                    % (p['dest'], written.replaced))
    result = dict(changed=written.changed, dest=p['dest'], replaced=written.replaced, changes=written.changes)
    if module._diff and written.changed:
        result['diff'] = _diff(p['dest'], written.before, p['content'], written.changes)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
