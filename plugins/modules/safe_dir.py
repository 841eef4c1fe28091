#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: safe_dir
short_description: Make a directory root writes into, refusing one another account could swap
version_added: 0.1.0
description:
  - Creates O(path) C(0700) (missing parents C(0755)) when it is missing, and tightens a directory of root's that its
    group can write to C(0700).
  - Refuses, before anything is created, a directory that another account owns or can write, or one below such a
    directory, as M(opsready.operations.db_backup) refuses such a C(dest). That account could put a symlink where root
    then creates a directory or copies a file by name (with M(ansible.builtin.file) or M(ansible.builtin.copy)), and
    root would change the mode of, or write into, the directory the link leads to (V(/etc) made C(0700), a backup
    copied into it).
  - Run it before M(ansible.builtin.file) / M(ansible.builtin.copy) tasks that write as root below O(path); once it
    passes, only root can create names there.
  - With O(mode), for a directory that is not a backup copy's (a helper root installs, scratch, configuration or log
    files), it is made with O(mode) when missing (missing parents C(0755)), or set to O(mode) when it exists - only
    when it is root's (or the task user's) and below directories no other account can write; otherwise refused
    before anything is made or changed. The last component is made relative to the one above and opened without
    following a link, so a link put at its name meanwhile is refused, never chmodded.
author: opsready developers (@opsready)
options:
  path:
    description:
      - The directory root writes into. Must be absolute.
      - Taken as written, whatever bytes its name holds; a C(~) at its start is the home directory, but no C($NAME) is
        expanded. A C(..) component is refused rather than cleaned up into the name of another directory.
    type: str
    required: true
  mode:
    description:
      - The directory's permissions, in octal (V(0755)), set whatever the umask. Unset, a backup directory (see
        above, C(0700)). A mode that lets group or others write is refused (they could plant links).
    type: str
  purpose:
    description: What root keeps in the directory, named in a refusal (V(the WAL archive helper)). Only with O(mode).
    type: str
    default: files
attributes:
  check_mode:
    description: Refuses as a real run would; creates and tightens nothing.
    support: full
  diff_mode:
    description: No diff is shown.
    support: none
seealso:
  - module: opsready.operations.safe_write
'''

EXAMPLES = r'''
- name: Check (and create) the second location before copying backups into it as root
  opsready.operations.safe_dir:
    path: /mnt/second-disk/opsready

- name: Make the directory of a helper postgres runs
  opsready.operations.safe_dir:
    path: /usr/local/lib/opsready
    mode: "0755"
    purpose: the WAL archive helper
'''

RETURN = r'''
path:
  description: O(path) as checked.
  returned: success
  type: str
  sample: /mnt/second-disk/opsready
'''

import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type='str', required=True), mode=dict(type='str'),
                                              purpose=dict(type='str', default='files')),
                           supports_check_mode=True)
    no_path_info(module)
    path = module.params['path'] = safeio.path_option(module.params['path'])
    if not os.path.isabs(path):
        module.fail_json(msg='path must be absolute, not %r: a relative one would name a directory below whatever '
                         'directory the module runs in. Give the full path.' % path)
    mode = None
    if module.params['mode'] is not None:
        try:
            mode = int(module.params['mode'], 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o7777:
            module.fail_json(msg='mode must be octal permissions such as 0755, not %r.' % module.params['mode'])
    changed = False
    try:
        safeio.literal_path(path, 'path', directory=True)
        if mode is not None:
            changed = safeio.prepare_directory(path, mode, module.params['purpose'], module.check_mode)
        else:
            # check mode refuses as a real run would and predicts its tightening to 0700 too
            changed = safeio.prepare_backup_dir(path, secret=True, what='backup copies', check_mode=module.check_mode)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='Cannot check %s: %s.' % (path, exc.strerror or exc), path=path)
    module.exit_json(changed=changed, path=path)


if __name__ == '__main__':
    main()
