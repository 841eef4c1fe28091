#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: file_restore
short_description: Restore a file-tree archive made by file_backup, verified first
version_added: 0.1.0
description:
  - Restores the newest archive of a set (or a named one) from a backup directory, or one archive
    file, to its original place (O(dest=/)) or under another root.
  - The archive's SHA-256 and size are checked against its manifest before anything is written; a
    corrupt archive, or one without a manifest, is refused with a clear message.
  - A file that had hard links outside the backed-up paths comes back as a file of its own (file_backup listed it
    in its C(hardlinks_outside), with a warning, and the manifest keeps that list).
  - Members with absolute paths, C(..) components or links escaping the root are refused before extraction, and so is
    (check mode too) an archive file_backup cannot have written - a tar stream that stops parsing before its end
    (which tar would take as the end), one path archived as two different things, a hard link to a directory, a
    symlink or a file not archived before it, header values no file can have. Repeats of one entry (archives of
    overlapping paths) restore the first.
  - FIFOs and device nodes are made again; only root can make a device node, so another user's restore leaves them
    out and lists them in RV(not_restored) with a warning. Such a restore cannot give files their archived owners
    either (it counts and lists them in RV(owners_not_restored), with a warning), so it clears the setuid (setgid)
    bit of a file whose archived owner (group) it could not set, as GNU tar does, and lists the file in
    RV(not_restored).
  - Archives written with C(encrypt=true) are decrypted on the fly with O(identity) or O(identity_file);
    the whole archive is decrypted and authenticated (and its plaintext checksum compared) before
    anything is extracted, so a wrong or missing key, or a tampered archive, writes nothing.
  - Files are extracted into a staging directory under O(dest) and moved into place only after the
    whole archive was read; files identical to the archived ones (content or link target, mode, owner and
    mtime to the nanosecond) are left alone, so a second run reports C(changed=false). A file with the
    archived content but another mtime, owner or mode is put back too. Directories get their archived mode,
    owner and mtime after their content is in place; hard links are restored as links. Access times are not in the
    archive; each restored entry's is set to its mtime (as Python's tarfile does; GNU tar leaves the time of the
    extraction). A restore reads nothing, so no earlier access time is invented.
  - Existing files that differ from the archive are replaced without asking (restoring to V(/) is the
    point); files in O(dest) that are not in the archive are left alone. Restore to another root and
    compare first when in doubt (check mode lists what would change). A name the archive has as a directory and
    the target as something else (or the other way round) is refused before anything moves; nothing is deleted.
  - Each file is moved in from the staging directory with one rename, which cannot cross file systems, so a restore
    that would have to change a file behind a mount point inside O(dest) (a separate C(/var) under O(dest=/), a
    tmpfs) is refused before anything moves, naming those files (check mode too). Files there already as archived
    do not stop it. Restore them into a directory on that file system (another O(dest)) and move them in, or leave
    them out with O(only).
  - A symlink in the target where the archive has a directory is followed only when it is root's own, in a
    directory only root can write (C(/var/run -> /run)), and leads to a place under O(dest); otherwise the restore
    is refused before anything moves - a restore into an inspection directory never writes into the live tree
    through a link such as C(etc -> /etc).
  - O(dest) may belong to a user (a restore into C(/home/alice) as root). The staging directory (root's, C(0700))
    is used only through its descriptor - extraction through C(/proc/self/fd), renames relative to directory
    descriptors - so that user renaming it and putting a symlink at its name changes nothing outside O(dest);
    C(/proc) must be mounted.
  - The staging directory (C(.opsready-restore-*) in O(dest)) holds the archive's files in plaintext until they are
    moved into place. Its removal is checked (C(scratch_left) and a warning naming it). A restore killed with
    SIGKILL leaves it; the next restore into the same O(dest) removes it (C(removed_scratch)) when the name, the
    owner (the user the module runs as, C(0700), not a link) and the run's lock on it, which can be taken, prove that
    run gone. One a running restore holds, or another account's, is never touched. On a network filesystem (NFS,
    CIFS), where that lock may not be seen by another host, nothing is removed and a warning names them.
author: opsready developers (@opsready)
options:
  src:
    description: A backup directory written by M(opsready.operations.file_backup), or one archive in it.
    type: path
    required: true
  dest:
    description: The root to restore under. V(/) puts files back where they were backed up from.
    type: path
    required: true
  name:
    description: The backup set to pick the newest archive from when O(src) is a directory.
    type: str
  artifact:
    description: File name of a specific archive in O(src) (instead of the newest).
    type: str
  origin:
    description:
      - Which host's archives to use when several hosts write this set into one shared O(src) (the manifests'
        C(origin), the host's name; M(opsready.operations.backup_info) lists each set's C(origins)).
      - Without it such a set fails and names its origins (which host's data is meant is never guessed). A set
        written by one host needs no O(origin).
      - V(newest) - the set's origins are one host whose identity changed (a renamed host), so the newest one's
        backups are used; refused while the origins' backups overlap in time.
    type: str
  only:
    description:
      - Restore only these archived paths (as they were backed up, e.g. V(/etc/myapp/app.conf))
        and what is below them. V(/) is everything; a trailing or doubled slash changes nothing.
      - Each must name something in the archive, else the restore fails naming it and restores nothing (a typo
        used to end C(ok) with nothing restored).
      - A hard link named without the file it links to is restored as a file with that file's content (left alone
        when it already holds it), not linked to a name the restore was not asked to touch.
      - The names of a hard link group that O(only) does not select are not touched, as with tar - restoring only
        C(/etc/app.key) leaves C(/srv/keys/app.key), another name of that file in the archive, with what it holds in
        the target (an older copy, or a file no longer linked to the name restored). When a restore puts some names
        of a group in place and leaves others, RV(hardlinks_left) names them, with a warning (check mode too).
    type: list
    elements: str
  identity:
    description:
      - The age private key (C(AGE-SECRET-KEY-1...)) that decrypts encrypted archives; keep it in Ansible
        Vault. Needed only for archives written with C(encrypt=true).
    type: str
  identity_file:
    description:
      - A file on the managed host holding age private keys (the output of C(age-keygen)); used
        together with O(identity) if both are given.
    type: path
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - In check mode the archive is verified and listed, and the files that would change are returned in RV(restored)
    and the diff. Check mode makes the restore's own comparison, against the archive's headers instead of a staged
    copy; a file that agrees in type, mode, owner, mtime, size, extended attributes and file flags has its content
    compared too (read from the archive a second time, for those files only), so a file changed in place with its
    size and mtime put back is listed; a sparse member's data extents only are read. Directories missing or
    differing in mode, owner, mtime, extended attributes or flags are returned in RV(directories). Run by another
    user than root, it also returns what that run will report in RV(not_restored) (setuid/setgid bits cleared,
    device nodes not made) and RV(owners_not_restored). Where the real run would refuse before moving anything (a
    file to change that is immutable or append-only, or in such a directory; one behind a mount point), check mode
    fails with the same message. Nothing is extracted or written.
seealso:
  - module: opsready.operations.file_backup
'''

EXAMPLES = r'''
- name: Put the newest configuration backup back in place
  opsready.operations.file_restore:
    src: /var/backups/opsready/config
    name: myapp-config
    dest: /

- name: Inspect an archive by restoring it elsewhere
  opsready.operations.file_restore:
    src: /var/backups/opsready/config/myapp-config-20261129T004512123456Z.tar.zst
    dest: /tmp/inspect

- name: Restore an encrypted archive of private keys
  opsready.operations.file_restore:
    src: /var/backups/opsready/keys
    name: tls-keys
    dest: /
    identity: "{{ vault_backup_age_identity }}"
'''

RETURN = r'''
archive:
  description: The archive restored from.
  returned: success
  type: str
  sample: /var/backups/opsready/config/myapp-config-20261129T004512123456Z.tar.zst
restored:
  description: Files written (or that would be written in check mode).
  returned: success
  type: list
  elements: str
  sample: [/etc/myapp/app.conf]
directories:
  description:
    - Directories made, or given back their archived mode, owner, mtime, extended attributes or file flags (or that
      would be, in check mode), before any file was moved into them - a file restored into a directory changes its
      mtime, which the restore then sets back without listing it. They count for C(changed) and the diff.
  returned: success
  type: list
  elements: str
  sample: [/etc/myapp/conf.d]
unchanged:
  description: Number of archived files already identical on disk.
  returned: success
  type: int
  sample: 11
sha256:
  description: Checksum of the archive, verified against its manifest before restoring.
  returned: success
  type: str
  sample: af43b0bca098e082b20f389a5676573a9cb9b5ba72c6712c3142069358bce315
not_restored:
  description:
    - Attributes that could not be put back, each with a warning - an extended attribute or ACL the target file
      system or user does not take (C(user.*) on a file system without them, C(trusted.*) as another user than
      root), device nodes a restore by another user than root cannot make, and file flags not set again - immutable
      and append-only (C(chattr +i), C(+a)) never are (the restored file would refuse the next restore), others when
      the file system refuses them. The files themselves were restored. Check mode lists what the real run will
      report of these where the archive's headers tell (device nodes, setuid/setgid bits cleared).
  returned: success
  type: list
  elements: dict
  sample: [{"path": "etc/myapp/run.sh", "reason": "extended attribute trusted.x not restored: Operation not permitted"}]
owners_not_restored:
  description:
    - A restore by another user than root cannot give entries their archived owner and group (only root can; they
      become the restoring user's, as with GNU tar). C(count) is how many entries of the archive (files,
      directories, links, nodes) did not get them, C(entries) the first 20 with the owner and group they were
      archived with; a warning says it too. Reported on every such run (the tree still differs from the archive), in
      check mode as the real run will report it. Always C(count=0) for root.
  returned: success
  type: dict
  sample: {"count": 1, "entries": [{"path": "etc/shadow", "uid": 0, "gid": 42, "owner": "root", "group": "shadow"}]}
hardlinks_outside:
  description:
    - Restored files that had hard links outside the backed-up paths when they were archived (as file_backup
      recorded them in the manifest - C(path), C(links), C(archived)), with a warning. Each comes back as a file of
      its own; the link to those outside names is not made again. Empty for archives written before file_backup
      recorded them.
  returned: success
  type: list
  elements: dict
  sample: [{"path": "/etc/myapp/tls.key", "links": 2, "archived": 1}]
hardlinks_left:
  description:
    - Hard link groups of the archive (a file and the links to it) that O(only) selected in part, of which this run
      put some names in place (or would, in check mode) - C(restored) - while the names not selected - C(left) -
      keep what they hold in the target, with a warning. Paths as backed up. Add those to O(only) to restore the
      group whole.
  returned: success
  type: list
  elements: dict
  sample: [{"restored": ["/etc/myapp/tls.key"], "left": ["/srv/keys/tls.key"]}]
removed_scratch:
  description:
    - Staging directories (C(.opsready-restore-*) in O(dest), files extracted in plaintext) that killed restores had
      left and this run removed. Nothing in check mode.
  returned: success
  type: list
  elements: str
  sample: [/.opsready-restore-5f1c2a9b0e7d]
scratch_left:
  description: This run's staging directory when it could not be removed (a warning says why); remove it by hand.
  returned: success
  type: list
  elements: str
  sample: []
encrypted:
  description: Whether the archive was encrypted (and was decrypted with the identity given).
  returned: success
  type: bool
  sample: false
'''

import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import extract, safeio


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='path', required=True),
            dest=dict(type='path', required=True),
            name=dict(type='str'),
            artifact=dict(type='str'),
            origin=dict(type='str'),
            only=dict(type='list', elements='str'),
            identity=dict(type='str', no_log=True),
            identity_file=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    if p['artifact'] and os.path.isfile(p['src']):
        module.fail_json(msg='artifact names an archive inside a backup directory; src is already an archive.')
    try:
        notes = []
        manifest = extract.find_archive(p['src'], p['name'], p['artifact'], p['origin'], warnings=notes)
        for note in notes:
            module.warn(note)
        encrypted = bool(manifest.data.get('encryption'))
        identities = []
        if encrypted or p['identity'] or p['identity_file']:
            crypto_guard.require(module, crypto_guard.ENCRYPTION_MINIMUM, 'restoring encrypted archives')
            identities = encryption.load_identities(p['identity'], p['identity_file'])
        outcome = extract.restore_archive(manifest, p['dest'], only=p['only'], check_mode=module.check_mode,
                                          identities=identities)
    except OpsReadyError as exc:
        module.fail_json(**safeio.displayable(exc.as_fail_kwargs()))
    except OSError as exc:
        module.fail_json(msg=safeio.displayable('Restore to %s failed: %s (%s).' % (
            p['dest'], exc.strerror or exc, getattr(exc, 'filename', ''))))
    restored = outcome['restored']
    directories = outcome.get('directories') or []
    if module.check_mode:
        restored = [os.path.join(p['dest'], name) for name in restored]
        directories = [os.path.join(p['dest'], name) for name in directories]
    for problem in outcome.get('not_restored') or []:
        module.warn(safeio.displayable('%s: %s.' % (problem['path'], problem['reason'])))
    outside = outcome.get('hardlinks_outside') or []
    if outside:
        module.warn(safeio.displayable(
            '%d restored file%s hard links outside the backed-up paths when archived (hardlinks_outside): %s. Each '
            'is restored as a file of its own, not linked to those names again; link them by hand if needed.' % (
                len(outside), ' had' if len(outside) == 1 else 's had',
                ', '.join(e['path'] for e in outside[:5]) + (' ...' if len(outside) > 5 else ''))))
    owners = outcome.get('owners_not_restored') or {'count': 0, 'entries': []}
    if owners['count']:
        shown = owners['entries'][:5]
        module.warn(safeio.displayable(
            '%d entr%s not given the owner or group archived (only root can; they are uid %d\'s): %s%s. Restore '
            'as root (become) to give them back; owners_not_restored lists %s.' % (
                owners['count'], 'y was' if owners['count'] == 1 else 'ies were', os.geteuid(),
                ', '.join('%s (%s:%s)' % (e['path'], e['owner'] or e['uid'], e['group'] or e['gid']) for e in shown),
                ' ...' if owners['count'] > len(shown) else '',
                'them' if owners['count'] <= len(owners['entries']) else 'the first %d' % len(owners['entries']))))
    for warning in outcome.get('warnings') or []:
        module.warn(safeio.displayable(warning))
    for path in outcome.get('removed_scratch') or []:
        module.warn(safeio.displayable('removed the staging directory %s (files extracted in plaintext) that a '
                                       'killed restore had left' % path))
    # file names that are not UTF-8 are shown escaped (ansible-core refuses lone surrogates in a result)
    restored = safeio.displayable(restored)
    directories = safeio.displayable(directories)
    listed = restored + [d.rstrip('/') + '/' for d in directories]
    module.exit_json(changed=bool(listed), archive=manifest.path, restored=restored, directories=directories,
                     encrypted=encrypted,
                     unchanged=outcome['unchanged'], sha256=manifest.data['sha256'],
                     not_restored=safeio.displayable(outcome.get('not_restored') or []),
                     owners_not_restored=safeio.displayable(owners),
                     hardlinks_outside=safeio.displayable(outside),
                     hardlinks_left=safeio.displayable(outcome.get('hardlinks_left') or []),
                     removed_scratch=safeio.displayable(outcome.get('removed_scratch') or []),
                     scratch_left=safeio.displayable(outcome.get('scratch_left') or []),
                     diff={'before': '', 'after': '\n'.join(listed) + ('\n' if listed else '')})


if __name__ == '__main__':
    main()
