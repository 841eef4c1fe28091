# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The catalog directory of the modules whose engines' tools write into it by name as root
    # (safeio.check_backup_dir / prepare_backup_dir), and the explicit trust of another account that owns it.
    DOCUMENTATION = r'''
options:
  dest:
    description:
      - The backup directory (the catalog); created C(0700) when missing.
      - When the module runs as root, O(dest) - and every directory above it - must be one that no other account
        can write (owned by root or by the module's user, not writable by group or others; a directory of root's
        inside the sticky C(/tmp) is fine). Otherwise the run is refused before anything is written, check mode
        included; the engines' tools write through staging names there, which that account could swap for
        symlinks to make root overwrite any file. Fix the directory, run the task as the account that owns it
        (C(become_user)), or name that account in O(owner).
    type: path
    required: true
  owner:
    description:
      - An account other than root that owns O(dest), or writes it through its group, and that you trust as
        much as root - typically C(postgres) for a catalog that PostgreSQL's C(archive_command) writes WAL into
        (a root-owned C(0770) directory of group C(postgres), or one owned by C(postgres)).
      - This is an explicit acknowledgement, not a change of user - the module and its tools still run as the
        task's user, and that account could still redirect what they write there. Prefer a O(dest) only root can
        write, or C(become_user) with that account, where the setup allows it.
      - A O(dest) writable by others, or below a directory another (unnamed) account can write, is always refused.
    type: str
'''
