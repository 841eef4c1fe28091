#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_rekey
short_description: Re-encrypt the kept encrypted backups of a catalog to a new set of age recipients (key rotation)
version_added: 0.1.0
description:
  - Adds or retires an age key for the backups already taken. Every encrypted artifact of the backup directory O(src)
    (written by M(opsready.operations.db_backup) or M(opsready.operations.file_backup) with C(encrypt=true)) that
    is not encrypted to exactly O(recipients) is decrypted with O(identity) / O(identity_file) and encrypted to
    O(recipients) in one streaming pass, written next to it as C(<artifact>.partial).
  - The new file is checked before it replaces the old one; the plaintext that went in must hash to the checksum
    sealed in the manifest and have its size (for an artifact without a sealed checksum, as an encrypted zstd
    stream, the old file as read must hash to the manifest's checksum), the file on disk must hash to what was written,
    and when an identity given is among the new recipients the new file is decrypted end to end with it (as it is
    written, in the same pass) and its plaintext compared again.
  - The manifest first records the new file as pending (by inode), then the new file is renamed over the old one,
    then the manifest describes the new file only; each step is atomic. At every moment the artifact is readable by
    the old keys or by the new ones and its manifest matches it; an interrupted run is completed or undone by the
    next one.
  - One rotation of a directory at a time (a second one fails at once). Each artifact named with a time stamp is
    swapped under the lock of its backup set, C(.<prefix>.lock), the lock M(opsready.operations.file_backup) of that
    set name and M(opsready.operations.db_backup) of that engine, database and kind take; an artifact whose set is
    being backed up is left unchanged and reported in RV(failed_artifacts), for the next run. That lock excludes
    those runs only - M(opsready.operations.db_backup) runs of another kind into the same directory take their own,
    M(opsready.operations.backup_verify) and M(opsready.operations.backup_prune) take none, and artifacts without a
    time stamp in their name (PostgreSQL WAL segments) have no set lock - so run those at another time than a
    rotation. Whatever runs meanwhile, each artifact's manifest is read again right before it is swapped.
  - Artifacts already encrypted to exactly O(recipients) are skipped, so a second run changes nothing. A key named
    twice in O(recipients) is one recipient.
  - An artifact whose manifest records no encryption but that begins with the age header is reported in
    RV(failed_artifacts) and the run fails (nothing tells which keys open it, so a retired key may still open it),
    with what to do; so is a multi-file artifact whose manifest records encryption.
  - A manifest of the directory that cannot be read (torn, not JSON, a symlink) hides its artifact from the catalog;
    it is reported in RV(failed_artifacts) (whatever O(engine)/O(database) select) and the run fails, rather than
    reporting the rotation done while the old key still opens that artifact.
  - An artifact that cannot be re-encrypted (a wrong key, a corrupt or missing file, a name in the way) fails alone,
    unchanged, with what to do; the others are re-encrypted.
  - Update C(recipients) of the backup tasks too, or the next backups are still encrypted to the old keys.
author: opsready developers (@opsready)
options:
  src:
    description:
      - The backup directory (catalog) whose encrypted artifacts are re-encrypted.
      - When the module runs as root, O(src) - and every directory above it - must be one that no other account
        can write (owned by root or by the module's user, not writable by group or others; a directory of root's
        inside the sticky C(/tmp) is fine), as the C(dest) of M(opsready.operations.db_backup) and
        M(opsready.operations.file_backup). Otherwise the run is refused before anything is written, check mode
        included; the rotation writes C(<artifact>.partial) files, renames them over the artifacts, rewrites
        manifests and makes lock files there, names that account could swap for symlinks to make root overwrite any
        file. Fix the directory, run the task as the account that owns it (C(become_user)), or name that account
        in O(owner).
    type: path
    required: true
  owner:
    description:
      - An account other than root that owns O(src), or writes it through its group, and that you trust as
        much as root - typically C(postgres) for a catalog that PostgreSQL's C(archive_command) writes WAL into
        (a root-owned C(0770) directory of group C(postgres), or one owned by C(postgres)); the C(owner) of
        M(opsready.operations.db_backup), with the same meaning.
      - This is an explicit acknowledgement, not a change of user - the module still runs as the task's user, and
        that account could still redirect what it writes there. Prefer a O(src) only root can write, or
        C(become_user) with that account, where the setup allows it.
      - A O(src) writable by others, or below a directory another (unnamed) account can write, is always refused.
    type: str
  recipients:
    description:
      - The complete new recipient set (age X25519 public keys, C(age1...)). A key left out is retired; give an
        escrow key here too.
    type: list
    elements: str
    required: true
  identity:
    description: An age identity (C(AGE-SECRET-KEY-1...)) that opens the artifacts now; several lines allowed.
    type: str
  identity_file:
    description: An C(age-keygen) identity file on the managed host, instead of or besides O(identity).
    type: path
  engine:
    description: Only artifacts of this engine (V(postgresql), V(sqlite), V(files)...).
    type: str
  database:
    description: Only artifacts of this database or file backup set.
    type: str
notes:
  - Supports C(check_mode) (lists what would be re-encrypted and what an interrupted run left that would be
    settled, and the key report as it would be; the identities are tried on each artifact's header, so a key that
    opens nothing fails there as in the real run; a O(src) the real run refuses is refused) and C(diff) (each
    artifact re-encrypted, with the recipients it was encrypted to and the new ones).
  - Offsite copies are separate objects; run M(opsready.operations.backup_copy) afterwards to ship the re-encrypted
    artifacts (their checksums changed, so they are sent again). Copies under an S3 Object Lock keep their old
    encryption until their lock ends.
  - Multi-file (directory format) artifacts are not encrypted by this collection and are not re-encrypted.
requirements:
  - cryptography 41 or later
seealso:
  - module: opsready.operations.db_backup
  - module: opsready.operations.file_backup
'''

EXAMPLES = r'''
- name: Retire the old backup key, keep the escrow key, add the new one
  opsready.operations.backup_rekey:
    src: /var/backups/opsready/postgresql
    recipients:
      - age1newkey...
      - age1escrowkey...
    identity: "{{ vault_backup_age_identity_old }}"
'''

RETURN = r'''
rekeyed:
  description: Artifacts re-encrypted to O(recipients) (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [shop-full-20261129T004512123456Z.db.zst.age]
already:
  description: Encrypted artifacts already encrypted to exactly O(recipients), left alone.
  returned: always
  type: list
  elements: str
  sample: []
settled:
  description: What an interrupted earlier run left and this run completed or removed.
  returned: always
  type: list
  elements: dict
  sample: [{id: shop-full-20261129T004512123456Z.db.zst.age, what: manifest completed}]
not_encrypted:
  description: Artifacts of the catalog that are not encrypted, left alone.
  returned: always
  type: list
  elements: str
  sample: []
failed_artifacts:
  description:
    - When the run fails, the artifacts (or unreadable manifests) it could not re-encrypt (wrong key, corrupt, a name
      in the way, their set's backup running), each with a message; they are unchanged. Not returned by a run that
      succeeds.
  returned: failure
  type: list
  elements: dict
  sample: [{id: shop-full-20261129T004512123456Z.db.zst.age, msg: "... run backup_rekey again."}]
readable_by:
  description: For each recipient (public key), the encrypted artifacts it opens after the run.
  returned: always
  type: dict
  sample: {age1newkey...: [shop-full-20261129T004512123456Z.db.zst.age]}
previous_recipients:
  description: For each artifact in RV(rekeyed), the recipients (public keys) it was encrypted to before.
  returned: always
  type: dict
  sample: {shop-full-20261129T004512123456Z.db.zst.age: [age1escrowkey..., age1oldkey...]}
recipients:
  description: The new recipient set, normalised.
  returned: always
  type: list
  elements: str
bytes:
  description: Bytes of re-encrypted artifacts written.
  returned: always
  type: int
'''

import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey
from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard, encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


def fault_hook():
    """OPSREADY_REKEY_FAULT=<point>:<n> raises at that point of the n-th artifact (fault-injection tests only)."""
    spec = os.environ.get('OPSREADY_REKEY_FAULT')
    if not spec:
        return None
    point, dummy, count = spec.partition(':')
    seen = []

    def hook(where, artifact_id):
        if where == point:
            seen.append(artifact_id)
            if len(seen) == int(count or 1):
                raise RuntimeError('injected fault at %s of %s' % (where, artifact_id))
    return hook


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='path', required=True),
            recipients=dict(type='list', elements='str', required=True),
            identity=dict(type='str', no_log=True),
            identity_file=dict(type='path'),
            engine=dict(type='str'),
            database=dict(type='str'),
            owner=dict(type='str'),
        ),
        required_one_of=[('identity', 'identity_file')],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    crypto_guard.require(module, crypto_guard.ENCRYPTION_MINIMUM, 're-encrypting backups')
    try:
        owner = safeio.resolve_user(p['owner'])
        identities = encryption.load_identities(p['identity'], p['identity_file'])
        result = rekey.rekey(p['src'], p['recipients'], identities, check_mode=module.check_mode,
                             engine=p['engine'], database=p['database'], fault=fault_hook(), owner=owner)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='backup_rekey failed: %s (%s). Every manifest still describes the file that is there; '
                             'fix that and run backup_rekey again.'
                             % (exc.strerror or exc, getattr(exc, 'filename', '') or ''))
    changed = bool(result['rekeyed'] or result['settled'])
    was = result['previous_recipients']   # public keys, no secret: named rather than "the old recipients"
    unnamed = ['keys its manifest does not name']
    diff = {'before': ''.join('%s: encrypted to %s\n' % (i, ', '.join(was.get(i) or unnamed))
                              for i in result['rekeyed']),
            'after': ''.join('%s: encrypted to %s\n' % (i, ', '.join(result['recipients'])) for i in result['rekeyed'])}
    if result['failed']:
        shown = '; '.join('%s: %s' % (f['id'], f['msg']) for f in result['failed'][:5])
        module.fail_json(msg='%d artifact(s) could not be re-encrypted and keep their old encryption: %s'
                             % (len(result['failed']), shown),
                         changed=changed, **dict((k, v) for k, v in result.items() if k != 'failed'),
                         failed_artifacts=result['failed'])
    # ``failed`` is Ansible's verdict, not a key of ours: an empty list there is left out (failures: failed_artifacts)
    module.exit_json(changed=changed, diff=diff, **dict((k, v) for k, v in result.items() if k != 'failed'))


if __name__ == '__main__':
    main()
