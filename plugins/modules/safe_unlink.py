#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: safe_unlink
short_description: Delete a file below a directory without following a link swapped in on the way
version_added: 0.1.0
description:
  - Removes the name O(path), which must be below the directory O(within), as M(ansible.builtin.file) with
    C(state=absent) would - but never through a symlink below O(within).
  - For root deleting files found (by M(ansible.builtin.find)) in a directory another account can write (an
    application's log directory). Between the listing and the delete, that account can rename a directory on the way
    and put a link to V(/etc) at its name; M(ansible.builtin.file) follows it and deletes root's file there.
  - O(within) is opened once (a symlink on its own path is followed only in a directory only root can write); every
    directory below it is opened relative to the one above without following a link, and the last name is removed
    relative to its directory. A link in between fails the task, naming it; nothing is deleted there.
  - A symlink at O(path) itself is removed, not what it leads to. A directory at O(path) is refused.
author: opsready developers (@opsready)
options:
  path:
    description:
      - The file to delete, an absolute path. Nothing is done (V(changed=false)) when nothing is there.
      - Taken as written, whatever bytes its name holds (as M(ansible.builtin.find) returns it); a C(~) at its start is
        the home directory, but unlike a C(type=path) option no C($NAME) is expanded (a file named C($HOME) is that
        file, never C(.../root)). A C(..) component, or a trailing C(/) or C(/.), is refused rather than cleaned up
        into the name of another file.
    type: str
    required: true
  within:
    description:
      - The directory O(path) must be below (the configured clean-up path). Must be absolute, without a C(..)
        component; taken as written, as O(path).
    type: str
    required: true
attributes:
  check_mode:
    description: Reports whether the file would be deleted; deletes nothing.
    support: full
  diff_mode:
    description: No diff is shown.
    support: none
seealso:
  - module: ansible.builtin.file
  - module: opsready.operations.safe_write
'''

EXAMPLES = r'''
- name: Delete old logs found in the application's log directory (as root)
  opsready.operations.safe_unlink:
    path: "{{ item.path }}"
    within: /var/log/app
  loop: "{{ old_logs.files }}"
'''

RETURN = r'''
path:
  description: O(path) as given.
  returned: success
  type: str
  sample: /var/log/app/old/app.1.gz
removed:
  description: What was (or in check mode would be) removed; null when nothing was there.
  returned: success
  type: str
  sample: a regular file
'''

import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type='str', required=True),
                                              within=dict(type='str', required=True)),
                           supports_check_mode=True)
    no_path_info(module)
    path = module.params['path'] = safeio.path_option(module.params['path'])
    within = module.params['within'] = safeio.path_option(module.params['within'])
    for option, value in (('within', within), ('path', path)):
        if not os.path.isabs(value):
            module.fail_json(msg='%s must be an absolute path, not %r: a relative one would name a file in whatever '
                             'directory the module runs in. Give the full path.' % (option, value))
    try:
        removed = safeio.unlink_below(within, path, module.check_mode)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='Cannot delete %s: %s.' % (path, exc.strerror or exc), path=path)
    module.exit_json(changed=removed is not None, path=path, removed=removed)


if __name__ == '__main__':
    main()
