#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_verify
short_description: Prove backups are intact - checksums against the manifest plus the engine's own check
version_added: 0.1.0
description:
  - For every artifact under O(path) (a backup directory, one artifact or its manifest) checks size and
    SHA-256 against the manifest (each member of a multi-file artifact too), then runs the engine's own
    check.
  - "Engine checks: PostgreSQL custom dumps are read completely by C(pg_restore) (C(--list) then every data
    block to C(/dev/null)); directory dumps the same; plain dumps and MariaDB/MySQL dumps are parsed for
    their header and the trailer that only a complete dump has; base backups are extracted to a temporary
    directory and checked by C(pg_verifybackup); WAL segments and binary logs are decompressed and their
    size/digest or event headers checked; SQLite artifacts are restored to a temporary copy and
    C(PRAGMA integrity_check) must answer C(ok); SQL Server runs C(RESTORE VERIFYONLY ... WITH CHECKSUM)
    (needs the connection options); file_backup archives are read to the end and their member list is checked
    as M(opsready.operations.file_restore) checks it (the same check): an archive it would refuse (a path
    archived as two things, a hard link it cannot make, a member escaping the target or under a non-directory,
    a name no file can have) fails with its message."
  - "A full backup is then compared with what its source held when it was taken (the manifest's C(source)
    summary written by M(opsready.operations.db_backup)). An SQLite copy must hold the same tables and rows
    exactly; a PostgreSQL archive or script and a MariaDB/MySQL dump must hold tables and table data when the
    source had them. An empty backup of a non-empty database fails. Manifests without C(source) (older
    versions) skip this comparison."
  - The outcome is recorded in each manifest (C(verification)); an artifact that failed is never chosen for
    a restore. Fails naming every bad artifact. Files without a manifest are reported as RV(leftovers), never trusted.
  - "Encrypted artifacts (C(encrypt=true)): by default only the size and SHA-256 of the stored (encrypted)
    bytes are checked, which needs no key, so any host holding a copy can run it. With O(deep=true) and
    O(identity) or O(identity_file) each one is decrypted (authenticated to its last chunk, its size and
    checksums compared with the manifest and the stream) and the engine check runs on the plaintext. A
    missing or wrong key fails naming the artifact but is not recorded as a failed verification (the
    artifact is not damaged)."
author: opsready developers (@opsready)
options:
  path:
    description: A backup directory (every manifest in it), one artifact, or one manifest file.
    type: path
    required: true
  engine:
    description: Only artifacts of this engine (when O(path) is a directory).
    type: str
    choices: [postgresql, mariadb, mysql, sqlite, sqlserver, redis, files]
  database:
    description: Only artifacts of this database (when O(path) is a directory).
    type: str
  newest_only:
    description: Only the newest artifact matching the filters.
    type: bool
    default: false
  record:
    description: Record the outcome in the manifests (C(verification)). V(false) only reports.
    type: bool
    default: true
  deep:
    description:
      - Decrypt encrypted artifacts and run the engine check on them (needs O(identity) or O(identity_file)).
        V(false) checks only their stored checksum. Artifacts that are not encrypted get the engine check
        unless O(checksum_only=true). Cannot be combined with O(checksum_only=true).
    type: bool
    default: false
  checksum_only:
    description:
      - Check only the size and SHA-256 of every artifact against its manifest, not the engine's own check.
      - For a copy in a second location (another directory, the control node) where the engine's tools or a
        connection may be missing; the engine check already ran where the backup was taken.
      - A mismatch is recorded as a failed verification (with O(record=true)); a match is never recorded.
    type: bool
    default: false
  identity:
    description:
      - The age private key (C(AGE-SECRET-KEY-1...)) for O(deep=true); keep it in Ansible Vault.
    type: str
  identity_file:
    description:
      - A file on the managed host holding age private keys (the output of C(age-keygen)) for O(deep=true);
        used together with O(identity) if both are given.
    type: path
extends_documentation_fragment:
  - opsready.operations.db_connection
  - opsready.operations.check_mode
notes:
  - In check mode the checks run (they only read) but nothing is recorded.
  - C(changed) is true only when a recorded verification state changed (never verified to verified, or
    verified to failed), or a passed artifact's inode, size, mtime and ctime were not recorded yet (a manifest
    verified by an older release, once) or changed since - so repeated runs on intact backups report no change.
    M(opsready.operations.backup_prune) trusts a passed verification without reading the artifact only while these
    are unchanged.
seealso:
  - module: opsready.operations.db_backup
  - module: opsready.operations.backup_info
'''

EXAMPLES = r'''
- name: Verify every backup in the directory
  opsready.operations.backup_verify:
    path: /var/backups/opsready/pg

- name: Decrypt every encrypted backup and run the engine checks (on the host holding the restore key)
  opsready.operations.backup_verify:
    path: /var/backups/opsready/pg
    deep: true
    identity_file: /root/.config/opsready/backup-age-key.txt

- name: Re-check the checksums of a copy on the control node (no database tools needed there)
  opsready.operations.backup_verify:
    path: /srv/backup-copies/db1/postgresql
    checksum_only: true
    record: false
  delegate_to: localhost

- name: Verify one SQL Server backup with RESTORE VERIFYONLY
  opsready.operations.backup_verify:
    path: /mnt/sqlbackup/sqlserver-app-full-20261129T004512123456Z.bak
    login_host: sql1.example.com
    login_user: backup
    login_password: "{{ vault_sql_password }}"
'''

RETURN = r'''
results:
  description: One entry per artifact checked.
  returned: success
  type: list
  elements: dict
  sample: [{id: postgresql-app-full-20261129T004512123456Z.dump.zst, ok: true, checks: {checksum: ok, toc_entries: 12}}]
failures:
  description: The artifacts (and unreadable manifests) that failed, with the reason.
  returned: always
  type: list
  elements: dict
checked:
  description: Number of artifacts checked.
  returned: success
  type: int
leftovers:
  description: Files in the directory no manifest vouches for (interrupted runs); never trusted.
  returned: success
  type: list
  elements: str
removed_scratch:
  description:
    - The verification scratch directories (C(opsready-scratch-pg-verify-*), C(-sqlite-verify-), C(-redis-verify-),
      C(-binlog-verify-) in the system temporary directory), each holding a decrypted, decompressed artifact, that
      a killed run had left and this run removed. Only directories of this user whose owner file's lock proves
      their run ended are removed. Nothing in check mode.
  returned: success
  type: list
  elements: str
scratch_left:
  description:
    - The scratch directories of this run (a decrypted, decompressed artifact) that could not be removed, each
      with a warning naming what is left and why. Remove them by hand.
  returned: success
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import verify_path
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    connection_from_params, db_connection_argument_spec, db_connection_mutually_exclusive)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import CATALOG_ENGINES


def main():
    argument_spec = db_connection_argument_spec()
    argument_spec.update(
        path=dict(type='path', required=True),
        engine=dict(type='str', choices=list(CATALOG_ENGINES)),
        database=dict(type='str'),
        newest_only=dict(type='bool', default=False),
        record=dict(type='bool', default=True),
        deep=dict(type='bool', default=False),
        checksum_only=dict(type='bool', default=False),
        identity=dict(type='str', no_log=True),
        identity_file=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=db_connection_mutually_exclusive(),
                           supports_check_mode=True)
    no_path_info(module)
    p = module.params
    if p['deep'] and p['checksum_only']:
        module.fail_json(msg='deep=true and checksum_only=true contradict each other: deep runs the engine check on '
                             'decrypted artifacts, checksum_only skips the engine check. Set one of them.')
    if (p['identity'] or p['identity_file']) and not p['deep']:
        module.fail_json(msg='identity/identity_file are used only with deep=true (decrypt and run the engine '
                             'check): set deep=true, or drop the key to check stored checksums only.')
    try:
        identities = []
        if p['deep'] and (p['identity'] or p['identity_file']):
            crypto_guard.require(module, crypto_guard.ENCRYPTION_MINIMUM, 'deep verification of encrypted artifacts')
            identities = encryption.load_identities(p['identity'], p['identity_file'])
        outcome = verify_path(p['path'], conn=connection_from_params(p), engine=p['engine'], database=p['database'],
                              record=p['record'] and not module.check_mode, newest_only=p['newest_only'],
                              identities=identities, deep=p['deep'], checksum_only=p['checksum_only'],
                              sweep=not module.check_mode)
    except OpsReadyError as exc:
        module.fail_json(failures=[{'path': p['path'], 'error': exc.message}], **exc.as_fail_kwargs())
    result = dict(changed=outcome['changed'], results=outcome['results'], failures=outcome['failed'],
                  checked=outcome['checked'], leftovers=outcome['leftovers'],
                  removed_scratch=outcome['removed_scratch'], scratch_left=outcome['scratch_left'])
    for warning in outcome['warnings']:
        module.warn(warning)
    if outcome['failed']:
        names = '; '.join('%s: %s' % (f['id'], f['error']) for f in outcome['failed'])
        module.fail_json(msg='%d artifact(s) failed verification - do not restore from them: %s'
                         % (len(outcome['failed']), names), **result)
    if outcome['checked'] == 0:
        module.fail_json(msg='No backup manifest found under %s (with the given filters): nothing was verified. '
                         'Check path, engine and database.' % p['path'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
