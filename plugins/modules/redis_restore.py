#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: redis_restore
short_description: Restore a Redis RDB artifact to a file, or drill it on a scratch redis-server
version_added: 0.1.0
description:
  - Reads an RDB artifact of M(opsready.operations.redis_backup) (decrypting and decompressing it, its SHA-256
    checked first) and either writes it to O(dest) (O(target=file)) for a stopped Redis to load as its
    C(dbfilename), or loads it into a throw-away redis-server on 127.0.0.1 on a free port (O(target=scratch)),
    compares its key count with the snapshot's (a manifest that records none passes with the step's C(warnings)
    saying the key count was not checked), reads O(expect_keys), and stops and removes the scratch
    server whatever happens. The removal of its directory (which holds the decrypted RDB, 0600 in a 0700 directory)
    is checked - a directory left behind fails the drill's C(cleanup) step with its path and the reason.
    O(target=scratch) is the DR drill of a Redis backup; its result carries the same steps, RTO and RPO verdicts
    as the C(dr_drill) role's databases.
  - The scratch directory is C(opsready-scratch-redis-*) in O(scratch_dir), with an owner file the drill holds a
    lock on. A drill killed with SIGKILL (an OOM kill, a host reboot) leaves it, the decrypted RDB in it; the next
    drill with the same O(scratch_dir) removes it (C(removed_scratch)) once that lock proves the killed drill gone.
    A directory of another user, without the owner file or whose lock is held is never touched. The proof relies on
    C(flock) on O(scratch_dir), so on a network filesystem (NFS, CIFS) nothing is removed and a warning says so.
  - A live Redis cannot take an RDB in place; see docs/redis.md for the stop, replace, start procedure.
author: opsready developers (@opsready)
options:
  path:
    description: The artifact (or its C(.manifest.json)). Either this or O(backup_dir).
    type: path
  backup_dir:
    description:
      - Use the newest backup of O(database) in this catalog whose verification did not fail, verified or not (what a
        recovery takes, so what a drill proves); its SHA-256 is checked before it is loaded or written.
      - A newer backup whose verification failed, or whose manifest cannot be read, is passed over; the drill fails
        naming it (C(backup.passed_over) of RV(drill)).
    type: path
  database:
    description: The catalog set name (O(backup_dir) only); default C(@all).
    type: str
  origin:
    description:
      - O(backup_dir) only. Which server's snapshots when several Redis servers write this set into one shared
        O(backup_dir) (the manifests' C(origin); M(opsready.operations.backup_info) lists each set's C(origins)).
      - Without it such a set fails and names its origins (which server's data is meant is never guessed). A set
        written by one server needs no O(origin).
      - V(newest) - the set's origins are one server whose identity changed (a renamed host), so the newest one's
        backups are used; refused while the origins' backups overlap in time.
    type: str
  target:
    description: Where to restore.
    type: str
    choices: [file, scratch]
    default: scratch
  dest:
    description:
      - The RDB file to write for O(target=file) (mode 0600, written to C(<dest>.partial), synced and renamed).
      - A C(dest) that already holds exactly this snapshot is left alone (C(changed=false)); one that holds
        anything else is a database and is replaced only with O(replace=true).
      - Never the C(dbfilename) of a running redis-server (or valkey-server) in its C(dir), whatever that name is,
        because the server rewrites it on its next save and at shutdown and the restore would be lost without a
        word. Such a server is found by its working directory (C(/proc/<pid>/cwd), the same directory as dest's
        whatever path names it); its C(dbfilename) is asked through O(server). Without an answer, a file in its
        directory is refused unless O(allow_running_server=true) (never C(dump.rdb), the default name). Stop it
        first (docs/redis.md).
      - Every check of dest goes through its directory opened without following a link another account planted,
        the directory the file is then written in; a dest that is not a file (a directory) or in a directory this
        user cannot write is refused, in check mode too.
    type: path
  server:
    description:
      - The connection of the redis-server running in dest's directory, if one does (O(target=file) only). It is
        asked its pid (C(INFO server)) and C(CONFIG GET dbfilename) - dest is refused when it is that file, and
        written without a warning when it is not.
      - Not needed when no redis-server runs in dest's directory.
    type: dict
    suboptions:
      host:
        description: Redis host name or address.
        type: str
        default: 127.0.0.1
      port:
        description: Redis TCP port.
        type: int
        default: 6379
      unix_socket:
        description: Path of the Redis Unix socket (used instead of O(server.host) and O(server.port)).
        type: path
      username:
        description: ACL user name (Redis 6+); without it the C(default) user.
        type: str
      password:
        description: The password; it reaches C(redis-cli) in C(REDISCLI_AUTH), never on its command line.
        type: str
      tls:
        description: Connect with TLS.
        type: bool
        default: false
      cacert:
        description: CA certificate file for O(server.tls).
        type: path
      connect_timeout:
        description: Seconds to wait for Redis to answer.
        type: int
        default: 10
  allow_running_server:
    description:
      - O(target=file) only. Write dest in the directory of a running redis-server whose C(dbfilename) could not be
        asked (no O(server), or it refused C(CONFIG)), because dest is not that file (docs/redis.md writes
        C(restore.rdb) beside the server's C(dump.rdb), to be moved in while the server is stopped). A warning names
        the server. A dest the server says is its C(dbfilename), or named C(dump.rdb), is refused anyway.
    type: bool
    default: false
  replace:
    description: O(target=file) only. Replace an existing O(dest) that holds something else than this snapshot.
    type: bool
    default: false
  identity:
    description: age private key text to decrypt an encrypted artifact.
    type: str
  identity_file:
    description: age identity file to decrypt an encrypted artifact.
    type: path
  expect_keys:
    description:
      - O(target=scratch) smoke check; keys that must exist in the restored data (EXISTS).
      - None given - the smoke step carries a warning that no key of the application was looked up.
    type: list
    elements: str
    default: []
  rto_seconds:
    description: Recovery time objective for the drill verdict.
    type: float
    default: 3600
  rpo_seconds:
    description: Recovery point objective for the drill verdict (drill start minus the snapshot's instant).
    type: float
    default: 86400
  scratch_dir:
    description:
      - Parent directory of the scratch server's private directory (default the system temp dir).
      - A O(scratch_dir) that another account owns or can write (unless sticky, as C(/tmp) is), or one below such a
        directory, is refused before anything is made, since that account could rename the private directory and
        put a link at its name, and root would write the decrypted RDB and the server's files there.
    type: path
  load_timeout:
    description: Seconds the scratch server may take to load the RDB.
    type: int
    default: 300
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - O(target=scratch) needs C(redis-server) on the host; it changes nothing lasting, so C(changed) is false.
'''

EXAMPLES = r'''
- name: Drill the newest Redis backup
  opsready.operations.redis_restore:
    backup_dir: /var/backups/opsready
    database: sessions
    expect_keys: [healthcheck:canary]
    rto_seconds: 600
    rpo_seconds: 90000
  register: drill

- name: Put the RDB in place for a stopped Redis
  opsready.operations.redis_restore:
    path: /var/backups/opsready/redis-sessions-full-20261204T020000Z.rdb.zst
    target: file
    dest: /var/lib/redis/dump.rdb
'''

RETURN = r'''
artifact:
  description: The artifact restored.
  returned: success
  type: str
keys:
  description: Keys in the restored scratch server.
  returned: O(target=scratch)
  type: int
snapshot_keys:
  description: Keys the snapshot held (redis-check-rdb at backup time).
  returned: O(target=scratch)
  type: int
backup:
  description:
    - The backup drilled (id, chain, path, started, finished, size, recoverable_until), as dr_drill records it.
    - With O(backup_dir), failed_verification (manifest summaries of the set's backups whose verification failed)
      and broken_manifests (the directory's unreadable manifests) - a newer one of the set, passed over, fails the
      drill and is named in RV(drill) (C(backup.passed_over)).
  returned: O(target=scratch)
  type: dict
drill:
  description: The drill's steps (find_backup to cleanup) with times, RTO/RPO figures and verdicts, C(passed).
  returned: O(target=scratch)
  type: dict
cleanup:
  description:
    - The scratch directory's removal, checked - C(cleaned_up), C(path); when something was left, C(cleaned_up=false)
      with C(left) (what is still there), C(reason) and C(error), and the drill fails at its C(cleanup) step.
  returned: O(target=scratch), once the backup was verified
  type: dict
removed_scratch:
  description:
    - Scratch directories (C(opsready-scratch-redis-*) in O(scratch_dir), each holding a decrypted RDB) that killed
      drills had left and this run removed; also in the C(restore) step of C(drill.steps).
  returned: O(target=scratch)
  type: list
  elements: str
scratch_left:
  description: This drill's scratch directory when it could not be removed (C(cleanup) says why); remove it by hand.
  returned: O(target=scratch)
  type: list
  elements: str
size:
  description: Bytes written to O(dest).
  returned: O(target=file), when it was written
  type: int
dest:
  description: The absolute path of O(dest).
  returned: O(target=file)
  type: str
'''


import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import (
    check_decryptable, verify_checksums)
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import of_origin
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    manifest_path_for, read_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.drill import objectives
from ansible_collections.opsready.operations.plugins.module_utils.drill.passed_over import damage_of
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import dest as dest_checks
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import restore


def find(module, p, damage=None):
    """The backup to restore; with backup_dir, ``damage`` (a dict) receives the newer backups the catalog passes over
    (failed verification, torn manifest: drill/passed_over.py), which a drill names and fails on."""
    if p['path']:
        path = p['path']
        manifest = read_manifest(path if path.endswith('.manifest.json') else manifest_path_for(path))
    else:
        notes = []
        catalog = of_origin(p['backup_dir'], 'redis', p['database'] or '@all', p['origin'], warnings=notes)
        if damage is not None:
            damage.update(damage_of(catalog, 'redis', p['database'] or '@all'))
        # The newest usable snapshot (never one whose verification failed), verified or not: what a recovery takes,
        # and what a drill must prove, as db_restore and the database and file-set drills do. Its SHA-256 is
        # checked before anything is loaded or written (the drill's verify step; target=file before the write).
        manifest = catalog.latest_full()
        for note in notes:
            module.warn(note)
        if manifest is None:
            raise OpsReadyError('No usable Redis backup of %s in %s (none, or every one failed its verification): '
                                'run redis_backup first.' % (p['database'] or '@all', p['backup_dir']))
    if manifest.engine != 'redis':
        raise OpsReadyError('%s is a %s artifact, not a Redis one.' % (manifest.path, manifest.engine))
    return manifest


def to_file(module, p, manifest, identities):
    """target=file: the RDB at dest, unless dest already holds it; never over another database without replace, nor
    over a file a running server saves to (engines/redis/dest.py)."""
    dest = os.path.abspath(p['dest'])
    result = {'artifact': manifest.path, 'dest': dest, 'changed': False}
    server = dest_checks.connection_from_params(p['server']) if p['server'] else None
    with dest_checks.held_directory(dest) as dir_fd:
        checked = dest_checks.check_dest(dir_fd, dest, manifest, identities, replace=p['replace'],
                                         allow_running=p['allow_running_server'], server=server)
        for warning in checked['warnings']:
            module.warn(warning)
        if checked['holds_snapshot']:
            result['msg'] = '%s already holds this snapshot' % dest
            return result
        result['changed'] = True
        if module._diff:
            result['diff'] = {'before': '%s (%s)\n' % (dest, 'replaced' if checked['exists'] else 'absent'),
                              'after': '%s <- %s\n' % (dest, manifest.path)}
        if not module.check_mode:
            if not checked['exists']:
                verify_checksums(manifest)
            result['size'] = restore.restore_file(manifest, dest, identities, dir_fd=dir_fd)
    return result


def drill(module, p, manifest, identities, found):
    started = found['started']
    steps = [{'name': 'find_backup', 'started': isoformat(found['started']), 'finished': isoformat(found['finished']),
              'ok': True, 'result': 'newest %s: %s' % ('usable full' if p['backup_dir'] else 'given', manifest.id)}]
    result = {'artifact': manifest.path}

    def step(name, func):
        entry = {'name': name, 'started': isoformat(utcnow()), 'warnings': []}
        try:
            entry['result'] = func()
            if isinstance(entry['result'], tuple):   # (result, warnings): passed, with what it could not check
                entry['result'], entry['warnings'] = entry['result']
            entry['ok'] = True
        except OpsReadyError as exc:
            entry.update(ok=False, error=exc.message)
        entry['finished'] = isoformat(utcnow())
        steps.append(entry)
        return entry['ok']

    def verify():
        verify_checksums(manifest)
        check_decryptable(manifest, identities)
        return 'sha256 matches the manifest'

    # What killed drills left in scratch_dir (their decrypted RDBs) goes before this one makes its own.
    swept = restore.sweep_scratch(p['scratch_dir'])
    for warning in swept['warnings']:
        module.warn(warning)
    for path in swept['removed_scratch']:
        module.warn('removed the scratch directory %s (a decrypted RDB) that a killed drill had left' % path)
    result.update(removed_scratch=swept['removed_scratch'], scratch_left=[])
    if step('verify', verify):
        cleanup = {}
        try:
            with restore.scratch_instance(manifest, identities, workdir=p['scratch_dir'],
                                          timeout=p['load_timeout'], cleanup=cleanup) as scratch:
                steps.append({'name': 'restore', 'started': steps[-1]['finished'], 'finished': isoformat(utcnow()),
                              'ok': True, 'result': 'loaded into a scratch redis-server on port %d' % scratch.port,
                              'removed_scratch': swept['removed_scratch']})

                def integrity():
                    counted = restore.compare_keys(manifest, scratch.keys())
                    result.update(keys=counted['keys'], snapshot_keys=counted.get('snapshot_keys'))
                    return counted['key_check'], [counted['warning']] if counted.get('warning') else []

                def smoke():
                    missing = [k for k in p['expect_keys'] if scratch.client.command('EXISTS', k).strip() != '1']
                    if missing:
                        raise OpsReadyError('Keys missing after the restore: %s' % ', '.join(missing[:20]))
                    if not p['expect_keys']:
                        # nothing asked: the drill would pass on the key count alone, say so (as drill_report does
                        # for a database drill without smoke queries)
                        return 'no expected key given', ['no expect_keys given, so no key of the application was '
                                                         'looked up: the drill passed on the key count alone']
                    return '%d expected key(s) present' % len(p['expect_keys'])

                if step('integrity', integrity):
                    step('smoke', smoke)
        except OpsReadyError as exc:
            steps.append({'name': 'restore', 'started': steps[-1]['finished'], 'finished': isoformat(utcnow()),
                          'ok': False, 'error': exc.message, 'removed_scratch': swept['removed_scratch']})
        # The removal was checked (remove_scratch): a directory left behind (the decrypted RDB in it, maybe) is a
        # failed clean-up step with its path and reason, which fails the drill as a scratch database not dropped does.
        entry = {'name': 'cleanup', 'started': isoformat(utcnow()), 'finished': isoformat(utcnow()),
                 'ok': bool(cleanup.get('cleaned_up'))}
        if entry['ok']:
            entry['result'] = 'scratch redis-server stopped and its directory %s removed' % cleanup.get('path')
        else:
            entry['error'] = cleanup.get('error') or 'the scratch directory was not removed'
            result['scratch_left'] = [cleanup['path']] if cleanup.get('path') else []
        steps.append(entry)
        result['cleanup'] = cleanup
    database = {'name': manifest.database, 'engine': 'redis', 'steps': steps,
                'backup': dict({'id': manifest.id, 'chain': [manifest.id],
                                'recoverable_until': manifest.data.get('consistent_at')}, **found.get('damage', {})),
                'objectives': {'rto_seconds': p['rto_seconds'], 'rpo_seconds': p['rpo_seconds']}}
    result['drill'] = objectives.measure(database, started)
    # What the dr_drill role reports of the backup drilled (its find_backup step's record).
    result['backup'] = {'id': manifest.id, 'chain': [manifest.id], 'path': manifest.path,
                        'started': manifest.data.get('started'), 'finished': manifest.data.get('finished'),
                        'size': manifest.data.get('size'), 'recoverable_until': manifest.data.get('consistent_at'),
                        'offsite': '', **found.get('damage', {})}
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path'),
            backup_dir=dict(type='path'),
            database=dict(type='str'),
            origin=dict(type='str'),
            target=dict(type='str', choices=['file', 'scratch'], default='scratch'),
            dest=dict(type='path'),
            replace=dict(type='bool', default=False),
            server=dict(type='dict', options=dest_checks.connection_argument_spec(), no_log=False),
            allow_running_server=dict(type='bool', default=False),
            identity=dict(type='str', no_log=True),
            identity_file=dict(type='path'),
            expect_keys=dict(type='list', elements='str', default=[], no_log=False),
            rto_seconds=dict(type='float', default=3600),
            rpo_seconds=dict(type='float', default=86400),
            scratch_dir=dict(type='path'),
            load_timeout=dict(type='int', default=300),
        ),
        required_one_of=[('path', 'backup_dir')],
        mutually_exclusive=[('path', 'backup_dir')],
        required_by={'origin': 'backup_dir'},
        required_if=[('target', 'file', ['dest'])],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    try:
        identities = encryption.load_identities(p['identity'], p['identity_file'])
        found = {'started': utcnow(), 'damage': {}}
        manifest = find(module, p, found['damage'])
        found['finished'] = utcnow()
        if p['target'] == 'file':
            module.exit_json(**to_file(module, p, manifest, identities))
        if module.check_mode:
            module.exit_json(changed=False, artifact=manifest.path, msg='check mode: the drill was not run')
        result = drill(module, p, manifest, identities, found)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    if not result['drill']['passed']:
        module.fail_json(msg='Redis drill of %s failed: %s' % (manifest.path, '; '.join(result['drill']['reasons'])),
                         changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
