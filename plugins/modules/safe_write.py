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
  - Makes O(dest) a regular file of the user the task runs as, holding O(content) with O(mode), replaced atomically
    (an exclusive staged file beside it, fsynced, renamed over the name).
  - Unlike M(ansible.builtin.copy), whatever is at O(dest) - a symlink, a hard link to another file, a FIFO - is
    replaced, never written, read or checksummed through, and the new file never takes the owner of what was there.
    M(ansible.builtin.copy) removes a link at O(dest) and then creates the file by name, so a link put back in
    between is followed. Use it when root writes into a directory another account can write (an application's
    directory, its deploy account's).
  - The directory of O(dest) is opened once, one component at a time; a symlink on the way is followed only in a
    directory only root (or the user the task runs as) can write.
  - Nothing is written when O(dest) already is a regular file of this user, with one name, O(content) and O(mode).
author: opsready developers (@opsready)
options:
  dest:
    description: The file to write. Its directory must exist.
    type: path
    required: true
  content:
    description: The text written (UTF-8).
    type: str
    required: true
  mode:
    description: The file's permissions, in octal (V(0644)).
    type: str
    default: '0644'
attributes:
  check_mode:
    description: Reports whether the file would be written; writes nothing.
    support: full
  diff_mode:
    description: No diff is shown (the content may be private).
    support: none
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
      file of another user, a FIFO); null when it was a regular file of this user or nothing.
  returned: success
  type: str
  sample: a symlink
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='path', required=True),
            content=dict(type='str', required=True, no_log=True),
            mode=dict(type='str', default='0644'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        mode = int(p['mode'], 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        module.fail_json(msg='mode must be octal permissions such as 0644, not %r.' % p['mode'])
    try:
        changed, replaced = safeio.replace_nofollow(p['dest'], p['content'].encode('utf-8'), mode, module.check_mode)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='Cannot write %s: %s.' % (p['dest'], exc.strerror or exc), dest=p['dest'])
    if replaced:
        module.warn('%s was %s: it was replaced by a regular file, never written through.' % (p['dest'], replaced))
    module.exit_json(changed=changed, dest=p['dest'], replaced=replaced)


if __name__ == '__main__':
    main()
