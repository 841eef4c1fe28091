#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: safe_slurp
short_description: Read a small regular file without following a link planted at its name
version_added: 0.1.0
description:
  - Returns the content of O(src), base64-encoded like M(ansible.builtin.slurp), only when it is a regular file of
    at most O(max_size) bytes with a single name.
  - Unlike M(ansible.builtin.slurp), a symlink at O(src) is refused, never followed, and the file is checked on the
    descriptor it is read from (C(O_NOFOLLOW), then C(fstat)) - there is no window between a check and the read
    in which the name can be swapped. The directory of O(src) is opened one component at a time, so a symlink
    another account made on the way is refused too, never followed. Use it when root reads a file in a directory
    another account can write (an application's state file, a record left by an earlier run).
  - A FIFO, device, socket or directory at O(src) is refused without being opened for reading data; so is a file
    with more than one hard link (another name could be a root-only file linked there).
author: opsready developers (@opsready)
options:
  src:
    description:
      - The file to read, an absolute path. A symlink at its final name is never followed; a symlink in a
        directory above it is followed only where no account but root (or the user the task runs as) could have made
        it or could change it (a directory only root can write, or root's own link in the sticky V(/tmp)). A link
        that the application's account controls (its V(current) release link) is refused; read through the real
        directory instead.
      - Taken as written, whatever bytes its name holds; a C(~) at its start is the home directory, but unlike a
        C(type=path) option no C($NAME) is expanded (a file named C($HOME) is that file). A C(..) component, or a
        trailing C(/) or C(/.), is refused rather than cleaned up into the name of another file.
    type: str
    required: true
  max_size:
    description: The largest file read, in bytes; a larger one is refused.
    type: int
    default: 65536
  missing_ok:
    description:
      - When nothing is at O(src), return RV(exists=false) instead of failing. A dangling or any other symlink is
        still refused.
    type: bool
    default: false
attributes:
  check_mode:
    description: Reads only; runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing is changed, so there is no diff.
    support: none
notes:
  - The read is never a change (RV(ignore:changed=false)).
seealso:
  - module: ansible.builtin.slurp
'''

EXAMPLES = r'''
- name: Read the record of an earlier rollback in the application's directory (as root)
  opsready.operations.safe_slurp:
    src: /srv/app/.opsready-rollback.json
    missing_ok: true
  register: record

- name: Use it
  ansible.builtin.debug:
    msg: "{{ record.content | b64decode | from_json if record.exists else {} }}"
'''

RETURN = r'''
exists:
  description: Whether a file was at O(src) (always true when O(missing_ok=false) and the module succeeded).
  returned: success
  type: bool
  sample: true
content:
  description: The file's content, base64-encoded. Empty when RV(exists=false).
  returned: success
  type: str
  sample: eyJmcm9tIjogInYyIn0K
encoding:
  description: The encoding of RV(content), always V(base64).
  returned: success
  type: str
  sample: base64
size:
  description: The file's size in bytes (0 when RV(exists=false)).
  returned: success
  type: int
  sample: 18
source:
  description: O(src) as read.
  returned: success
  type: str
  sample: /srv/app/.opsready-rollback.json
'''

import base64

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='str', required=True),
            max_size=dict(type='int', default=65536),
            missing_ok=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    p['src'] = safeio.path_option(p['src'])
    if p['max_size'] < 0:
        module.fail_json(msg='max_size must be 0 or more (bytes): got %d.' % p['max_size'])
    try:
        data = safeio.read_below_nofollow(p['src'], p['max_size'], p['missing_ok'])
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:   # anything the reader did not word itself: a failure, never a traceback
        module.fail_json(msg='Cannot read %s: %s. Check the path.' % (p['src'], exc.strerror or exc), src=p['src'])
    module.exit_json(changed=False, exists=data is not None, content=base64.b64encode(data or b'').decode('ascii'),
                     encoding='base64', size=len(data or b''), source=p['src'])


if __name__ == '__main__':
    main()
