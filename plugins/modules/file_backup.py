#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: file_backup
short_description: Archive file trees (configuration, certificates, keys) into verified, compressed backups
version_added: 0.1.0
description:
  - Archives one or more files or directory trees into a single tar stream that is compressed and
    hashed (SHA-256) in one pass and written atomically (C(<name>.partial), fsync, rename).
  - A JSON manifest (checksum, size, file count, sources, compression) is written next to the archive
    only after the archive is durable; an archive without a manifest is never trusted and is removed
    as the leftover of an interrupted run.
  - What a restore gives back is what C(rsync -aH) compares - content, type, mode (setuid, setgid and sticky
    included), owner and group (by number; names are recorded too), mtimes to the nanosecond (pax header, as GNU tar
    C(--format=posix) writes them), symlinks as links (never followed) and hard links as links (a file also linked
    from a name outside O(paths) is archived as a file, and listed in RV(hardlinks_outside) with a warning) - with any
    file name (newlines, backslashes, bytes that are not UTF-8, shown escaped in results), paths longer than 4096
    bytes, and sparse files as sparse files (only their data extents are read, found with C(SEEK_DATA)/C(SEEK_HOLE),
    and archived as GNU sparse members, format 1.0, which GNU tar lists and extracts with holes; the restore leaves
    the holes as holes; the manifest records a digest of their content that skips zeros, C(chunk_digest), instead of
    the SHA-256 of every byte), extended attributes C(user.*) and C(trusted.*), POSIX ACLs (access and default) and
    file capabilities (C(security.capability)) of files and directories, C(trusted.*) of symlinks (pax
    C(SCHILY.xattr.*) records, which C(tar --xattrs) reads too), and the file flags of files and directories
    (C(chattr) +d, +A, +S, +D, +c, +C, +i, +a; pax C(SCHILY.fflags) as bsdtar writes it, which GNU tar ignores with a
    warning). M(opsready.operations.file_restore) sets the flags again except immutable and append-only, which it
    lists in its RV(opsready.operations.file_restore#module:not_restored) with a warning. Not kept - SELinux labels
    (the restoring host's policy sets them) and access times - not recorded (pax C(atime) is not written), as a
    restore does not give them back (GNU tar sets them only with C(--incremental)) - a restored file's access time is
    its mtime, and the backup itself reads with C(O_NOATIME) so the source's stay as they were. FIFOs and device nodes
    are archived as entries (as tar does; never opened); sockets cannot be archived and are listed in RV(not_archived)
    with a warning.
  - Archives are always written C(0600); when the trees hold private keys the backup directory is made C(0700).
  - With O(encrypt=true) the compressed stream is encrypted in the same pass to the age public keys in
    O(recipients) (the age v1 format; Debian's C(age -d) decrypts it). Only public keys are needed on
    the backup host; the private key is needed where restores run. The manifest records the format and
    recipients, the checksum of the encrypted bytes (so M(opsready.operations.backup_verify) checks
    integrity without the key) and the size of the compressed stream; the zstd frame carries its content
    checksum (with gzip the manifest holds a SHA-256 of the compressed stream, encrypted to the recipients).
  - After a successful run, retention deletes archives of the same set older than O(keep_days) and
    beyond O(keep_count); the newest archive is never deleted.
author: opsready developers (@opsready)
options:
  paths:
    description:
      - Files and directory trees to archive. Symlinks are archived as links, not followed. A path inside
        another directory listed (or listed twice) is archived once.
      - A path that is itself a symlink is archived as the link alone (as tar does) and raises a warning naming
        what it points to, unless that is listed too - C(/var/lib/app) moved to C(/data/app) and linked back
        would otherwise give an archive without the data.
      - Every directory is entered through a descriptor and every file opened without following a symlink,
        so a user who swaps a file of the tree for a link while root backs it up cannot get another file
        into the archive. A FIFO, socket or device named here is an error (its content is not what would be
        archived); inside a tree FIFOs and device nodes are archived as entries, sockets listed in
        RV(not_archived).
    type: list
    elements: path
    required: true
  dest:
    description:
      - The backup directory; created C(0700) if missing.
      - It must be one that no other account can use against root - owned by root or by the module's user, not
        writable by group or others (a directory of root's that only its group can write is tightened to C(0700)
        when the trees hold private keys), and below no directory another account can write (a directory of
        root's inside the sticky C(/tmp) is fine). Otherwise the run is refused before anything is written, check
        mode included - that account could swap archives and manifests or plant symlinks where root writes.
    type: path
    required: true
  name:
    description: Name of the backup set; archives are C(<name>-<UTC timestamp>.tar.zst).
    type: str
    default: files
  keep_days:
    description: Delete archives of this set older than this many days after a successful run. V(0) disables.
    type: int
    default: 30
  keep_count:
    description: Keep at most this many archives of this set (the newest). Unset keeps any number.
    type: int
  max_listed:
    description:
      - How many entries RV(deleted) lists - the first ones in deletion order (oldest first). RV(deleted_count) always
        counts every one and RV(lists_truncated) says whether the list was cut (with RV(lists_note)), as
        M(opsready.operations.backup_prune) O(opsready.operations.backup_prune#module:max_listed) does. Every archive
        retention deletes is deleted, listed or not; check mode lists what the real run then lists.
      - V(-1) lists every entry (the first clean-up of a large set then returns a large result, which Ansible copies
        and encodes, and AWX stores with the job's events).
    type: int
    default: 1000
  encrypt:
    description:
      - Encrypt archives to O(recipients) (age format, X25519). Archives are then named C(.tar.zst.age).
    type: bool
    default: false
  recipients:
    description:
      - age public keys (C(age1...), as printed by C(age-keygen)) to encrypt to. Any one matching
        private key decrypts. Give two (an online key and an offline escrow key) so losing one key does
        not lose the backups.
      - Required when O(encrypt=true).
    type: list
    elements: str
  skip_unchanged:
    description:
      - Do not write a new archive when nothing (names, sizes, modes, owners, mtimes, and the ctimes that reveal an
        edit whose mtime was put back) changed since
        the newest archive of this set (and the encryption settings are the same); the module then
        reports C(changed=false).
    type: bool
    default: false
extends_documentation_fragment:
  - opsready.operations.compression
  - opsready.operations.check_mode
notes:
  - Supports C(check_mode); it reports what would be archived and which archives retention would delete.
seealso:
  - module: opsready.operations.file_restore
  - module: opsready.operations.backup_verify
'''

EXAMPLES = r'''
- name: Back up application configuration and TLS material
  opsready.operations.file_backup:
    paths:
      - /etc/myapp
      - /etc/ssl/private
    dest: /var/backups/opsready/config
    name: myapp-config
    keep_days: 30

- name: Nightly, but only when something changed
  opsready.operations.file_backup:
    paths: [/etc/nginx]
    dest: /var/backups/opsready/nginx
    name: nginx
    skip_unchanged: true

- name: Encrypted backup of private keys (only the public key lives on this host)
  opsready.operations.file_backup:
    paths: [/etc/ssl/private]
    dest: /var/backups/opsready/keys
    name: tls-keys
    encrypt: true
    recipients:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
      - "{{ escrow_age_recipient }}"
'''

RETURN = r'''
archive:
  description: Path of the archive written (or that would be written in check mode).
  returned: success
  type: str
  sample: /var/backups/opsready/config/myapp-config-20261129T004512123456Z.tar.zst
manifest:
  description: The manifest written next to the archive (or of the newest archive when unchanged).
  returned: success
  type: dict
  sample:
    engine: files
    kind: files
    sha256: 9f86d0...
    size: 10240
    file_count: 12
    encryption:
      format: age
      recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
file_count:
  description: Number of regular files in the trees.
  returned: success
  type: int
  sample: 12
not_archived:
  description:
    - Entries of the trees that were not archived, each also raising a warning - sockets (they cannot be
      archived; their server makes them again), files swapped for something else while they were read (never
      followed), directories replaced by something else while the backup entered them, and files and directories
      removed while the backup ran (reason C(removed while the backup ran)); a directory's content is then not in
      the archive. FIFOs and device nodes are archived as entries (as tar does), never opened.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/myapp/run/control.sock", "reason": "a socket"}]
changed_while_read:
  description:
    - Files that were written to, grew or shrank while they were read. They are archived (as GNU tar does), but
      their copy may mix old and new content (a file that shrank is padded with zeros to its announced size), so
      each also raises a warning; the list is recorded in the manifest (C(changed_while_read)) too.
  returned: always
  type: list
  elements: dict
  sample:
    - path: /etc/myapp/app.log
      reason: "changed while it was read (written to): the archived copy may mix old and new content"
hardlinks_outside:
  description:
    - Archived files that have hard links outside the backed-up paths (C(links) names in all, C(archived) of them
      in the set; C(path) is the first archived), each set also raising one warning. A restore cannot link to a name
      the archive does not hold, so such a file comes back as a file of its own, its outside names no longer sharing
      its content (GNU tar archives them the same way, silently). Add the other names' directories to O(paths) when
      the link matters. Recorded in the manifest too.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/myapp/tls.key", "links": 2, "archived": 1}]
skipped_unchanged:
  description: Whether no archive was written because nothing changed (O(skip_unchanged)).
  returned: success
  type: bool
  sample: false
deleted:
  description:
    - Archives removed by retention (or that would be removed in check mode), oldest first - the first
      O(max_listed) of them; RV(deleted_count) counts every one.
  returned: success
  type: list
  elements: str
  sample: [/var/backups/opsready/config/myapp-config-20261001T000000000000Z.tar.zst]
deleted_count:
  description: How many archives retention removed (or would remove, in check mode), whatever RV(deleted) lists.
  returned: success
  type: int
lists_truncated:
  description:
    - True when RV(deleted) lists fewer archives than were removed (more than O(max_listed)); RV(lists_note) then
      says how to list every one (O(max_listed=-1)).
  returned: success
  type: bool
lists_note:
  description: What the cut RV(deleted) holds and how to list every entry.
  returned: when RV(lists_truncated)
  type: str
broken_manifests:
  description:
    - What the run's retention could not read - manifests in O(dest) that cannot be read (truncated or edited JSON, a
      shape this version refuses), each with the reason. Their backups are kept - no rule counts them and none
      deletes them - and a warning names each (as M(opsready.operations.backup_prune) does). Every unreadable
      manifest of the directory is listed, whatever set it belongs to.
  returned: when retention ran (also in check mode when O(dest) exists)
  type: list
  elements: dict
  sample: [{manifest: /var/backups/pg/shop-full-20261101T004512123456Z.dump.zst.manifest.json,
            error: 'invalid JSON: Unterminated string starting at: line 1 column 30'}]
origin_sets:
  description:
    - The run's sets holding backups of several servers (a shared O(dest)), as M(opsready.operations.backup_prune)
      reports them - each server's backups are retained apart (every server keeps its newest good backup).
  returned: when retention ran (also in check mode when O(dest) exists)
  type: list
  elements: dict
leftovers_removed:
  description: Files of interrupted runs (no manifest) that were removed.
  returned: success
  type: list
  elements: str
  sample: []
leftovers_left:
  description: Files of interrupted runs that could not be removed (each with a warning saying why); the backup itself
    succeeded. Remove them by hand.
  returned: when a removal failed
  type: list
  elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
# Retention (retention, catalog_prune, prune_result: with the catalog ~200 KB of source) is imported in prune(), after
# the archive and its manifest; the set's lock and leftovers come from leftovers.py, not
# artifacts.py (the engine interface, the tool runner, the artifact readers). The host compiles every imported file
# from the AnsiballZ zip on every run, and all that was serial start-up before the archive's first byte (issue 22).
# Retention goes through catalog_prune, not backup/jobs.py (the engine registry and every engine).
from ansible_collections.opsready.operations.plugins.module_utils.backup.listed import (
    DEFAULT_MAX_LISTED, list_deleted_at_most, max_listed_error)
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    check_compression, compression_argument_spec)
from ansible_collections.opsready.operations.plugins.module_utils.backup.leftovers import remove_leftovers, set_lock
from ansible_collections.opsready.operations.plugins.module_utils.common.cleanup import leftover_warning
from ansible_collections.opsready.operations.plugins.module_utils.files import archive, safeio


def take_retention(result, answer):
    from ansible_collections.opsready.operations.plugins.module_utils.backup.prune_result import take_retention as take
    take(result, answer)


def prune(dest, name, keep_days, keep_count, check_mode):
    """Retention of this set only; the shared job refuses a plan that breaks a dependency."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune as prune_set
    from ansible_collections.opsready.operations.plugins.module_utils.backup.prune_result import merge_pruned
    # check mode: the real run prunes after writing its new archive, which takes a keep_count slot
    policy = retention.Policy(keep_last=keep_count or None, keep_days=keep_days or None)
    policy.pending_full = check_mode
    if check_mode:
        # the new archive is this host's (its manifest's origin): another host's archives in a shared dest are
        # planned without it, and the set grouped by origin as the real run finds it (catalog.resolve_origins)
        policy.pending_origin = archive.local_origin()
    # leftover_min_age=None: leftovers are this set's business, removed under its lock (other sets' runs
    # in the same dest may be writing theirs right now)
    answer = {'deleted': [], 'broken_manifests': [], 'origin_sets': [], 'warnings': [], 'ran': True}
    merge_pruned(answer, prune_set(dest, policy, engine=archive.ENGINE, database=name, check_mode=check_mode,
                                   leftover_min_age=None))
    return answer


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type='list', elements='path', required=True),
            dest=dict(type='path', required=True),
            name=dict(type='str', default='files'),
            keep_days=dict(type='int', default=30),
            keep_count=dict(type='int'),
            max_listed=dict(type='int', default=DEFAULT_MAX_LISTED),
            skip_unchanged=dict(type='bool', default=False),
            encrypt=dict(type='bool', default=False),
            recipients=dict(type='list', elements='str'),
            **compression_argument_spec()
        ),
        required_if=[('encrypt', True, ['recipients'])],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    if p['encrypt']:
        crypto_guard.require(module, crypto_guard.ENCRYPTION_MINIMUM, 'encrypted archives')
    try:
        recipients = encryption.recipients_option(p['encrypt'], p['recipients'], 'archives') or None
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    if max_listed_error(p['max_listed']):
        module.fail_json(msg=max_listed_error(p['max_listed']))
    if '/' in p['name'] or not p['name']:
        module.fail_json(msg='name %r must be a plain set name without "/".' % p['name'])
    for option in ('keep_days', 'keep_count', 'threads'):
        if p[option] is not None and p[option] < 0:
            module.fail_json(msg='%s must be 0 or more, not %d.' % (option, p[option]))
    result = dict(changed=False, archive=None, manifest={}, deleted=[], leftovers_removed=[],
                  skipped_unchanged=False, file_count=0, not_archived=[], changed_while_read=[],
                  hardlinks_outside=[])
    try:
        check_compression(p['compression'])
        archive.check_sources(p['paths'])
        fingerprint, count, secret = archive.tree_fingerprint(p['paths'])
        result['file_count'] = count
        # the newest archive matters only to skip_unchanged: reading the catalog (and compiling its code) for it
        # delayed every other run's first byte; retention reads the catalog after the archive
        previous = archive.latest_archive(p['dest'], p['name']) if p['skip_unchanged'] else None
        previous_recipients = (previous.data.get('encryption') or {}).get('recipients') if previous else None
        same_encryption = sorted(previous_recipients or []) == sorted(recipients or [])
        if p['skip_unchanged'] and previous is not None and previous.data.get('fingerprint') == fingerprint \
                and same_encryption:
            result.update(skipped_unchanged=True, archive=previous.path, manifest=previous.summary())
            module.exit_json(**safeio.displayable(list_deleted_at_most(result, p['max_listed'])))
        if module.check_mode:
            safeio.check_backup_dir(p['dest'], secret, what='archives')   # the refusal a real run would meet
            result['changed'] = True
            result['archive'] = os.path.join(p['dest'], '%s-<timestamp>.tar' % p['name'])
            result['diff'] = {'before': '', 'after': result['archive'] + '\n'}
            if os.path.isdir(p['dest']):
                take_retention(result, prune(p['dest'], p['name'], p['keep_days'], p['keep_count'], True))
                result['leftovers_removed'] = remove_leftovers(p['dest'], p['name'] + '-', check_mode=True)
            module.exit_json(**safeio.displayable(list_deleted_at_most(result, p['max_listed'])))
        archive.prepare_dest(p['dest'], secret)
        # One run of a set at a time; only this set's leftovers are its own to remove (another set's
        # .partial in the same dest may be a run in progress).
        with set_lock(p['dest'], p['name']):
            left = {}
            result['leftovers_removed'] = remove_leftovers(p['dest'], p['name'] + '-', left=left)
            if left:
                result['leftovers_left'] = sorted(left)
                for path, reason in sorted(left.items()):
                    module.warn(safeio.displayable(leftover_warning(path, reason)))
            manifest = archive.create_archive(p['paths'], p['dest'], p['name'], compression=p['compression'],
                                              level=p['compression_level'], threads=p['threads'],
                                              fingerprint=fingerprint, file_count=count, recipients=recipients)
            result.update(changed=True, archive=manifest['path'], manifest=manifest,
                          not_archived=manifest.get('not_archived', []),
                          changed_while_read=manifest.get('changed_while_read', []),
                          hardlinks_outside=manifest.get('hardlinks_outside', []))
            outside = result['hardlinks_outside']
            if outside:
                module.warn(safeio.displayable(
                    '%d archived file%s other hard links outside paths (listed in hardlinks_outside): %s. A restore '
                    'gives back each as a file of its own, no longer linked to those names; add their directories '
                    'to paths if the link matters.' % (
                        len(outside), ' has' if len(outside) == 1 else 's have',
                        ', '.join('%s (%d of %d names archived)' % (e['path'], e['archived'], e['links'])
                                  for e in outside[:5]) + (' ...' if len(outside) > 5 else ''))))
            for entry in result['changed_while_read']:
                module.warn(safeio.displayable('%s %s. Back it up again when it is quiet (or stop its writer).'
                                               % (entry['path'], entry['reason'])))
            removed = [e['path'] for e in result['not_archived'] if archive.REMOVED in e['reason']]
            if removed:
                module.warn(safeio.displayable('%d entr%s %s, not in the archive (listed in not_archived): %s.'
                                               % (len(removed), 'y was' if len(removed) == 1 else 'ies were',
                                                  archive.REMOVED, ', '.join(removed[:5])
                                                  + (' ...' if len(removed) > 5 else ''))))
            # sockets, directories replaced while the walk entered them, files swapped while read: a restore of
            # this archive lacks them, which an operator has to hear about, not find out after the restore
            left_out = [e for e in result['not_archived'] if archive.REMOVED not in e['reason']]
            if left_out:
                module.warn(safeio.displayable('%d entr%s not archived (listed in not_archived): %s.%s' % (
                    len(left_out), 'y was' if len(left_out) == 1 else 'ies were',
                    '; '.join('%s (%s)' % (e['path'], e['reason']) for e in left_out[:5])
                    + (' ...' if len(left_out) > 5 else ''),
                    ' A socket is made again by its server when it starts.'
                    if any(e['reason'] == 'a socket' for e in left_out) else '')))
            for link, points_to in archive.link_sources(p['paths']):
                module.warn(safeio.displayable('%s is a symlink to %s: only the link was archived, not %s. Name %s in '
                                               'paths to back it up.' % (link, points_to, 'the files under it' if
                                                                         os.path.isdir(points_to) else 'its content',
                                                                         points_to)))
            take_retention(result, prune(p['dest'], p['name'], p['keep_days'], p['keep_count'], False))
    except OpsReadyError as exc:
        module.fail_json(**safeio.displayable(exc.as_fail_kwargs()))
    except OSError as exc:
        module.fail_json(msg=safeio.displayable('File backup failed: %s (%s). No manifest was written for a partial '
                                                'archive.' % (exc.strerror or exc,
                                                              getattr(exc, 'filename', '') or p['dest'])))
    # file names that are not UTF-8 are shown escaped (ansible-core refuses lone surrogates in a result); the count
    # stays exact, the list is cut (the first clean-up of a large set deletes every archive beyond the rules)
    module.exit_json(**safeio.displayable(list_deleted_at_most(result, p['max_listed'])))


if __name__ == '__main__':
    main()
