#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: redis_backup
short_description: Back up Redis (an RDB snapshot) into the verified backup catalog
version_added: 0.1.0
description:
  - Takes a consistent RDB snapshot of every Redis database over the replication protocol (C(redis-cli --rdb)
    - the server forks and sends the instant's snapshot, writers never block), counts its keys with
    C(redis-check-rdb), and streams it through compression, SHA-256 and optional age encryption into the
    catalog in O(dest) (C(<name>.partial), fsync, rename, then the JSON manifest), exactly like
    M(opsready.operations.db_backup) artifacts. M(opsready.operations.backup_verify),
    M(opsready.operations.backup_info), M(opsready.operations.backup_prune) and
    M(opsready.operations.backup_metrics) take C(engine=redis) for them.
  - Verification (O(verify=true), the default) reads the artifact back through decryption and
    decompression, checks it with C(redis-check-rdb) and compares its key count with the snapshot's.
  - The login needs the right to run C(SYNC)/C(REPLCONF) (ACL C(+sync +replconf) or C(+@admin)).
  - "The RDB holds every logical database's keys with their absolute expiry times and the Functions libraries
    (C(FUNCTION LOAD), Redis 7); ACL users (C(aclfile) or C(user) lines of redis.conf) and the configuration are
    not in it: keep them with the server's configuration files."
author: opsready developers (@opsready)
options:
  database:
    description: The catalog's name for this Redis (one RDB holds all its databases); default C(@all).
    type: str
  verify:
    description: Verify the artifact after writing it (redis-check-rdb and the key count).
    type: bool
    default: true
  min_interval:
    description: Skip the run (C(changed=false)) when a usable backup of this set is younger than this many seconds.
    type: int
    default: 0
  encrypt:
    description: Encrypt the artifact to O(recipients) (age format); the name ends in C(.age).
    type: bool
    default: false
  recipients:
    description: age public keys (C(age1...)) to encrypt to; required when O(encrypt=true).
    type: list
    elements: str
extends_documentation_fragment:
  - opsready.operations.retention_after_backup
  - opsready.operations.backup_dest
  - opsready.operations.redis_connection
  - opsready.operations.compression
  - opsready.operations.check_mode
notes:
  - Check mode connects to Redis (proving host, port and password) and writes nothing.
  - The RDB is staged as a 0600 C(.partial) file in O(dest) while C(redis-check-rdb) counts it, so O(dest)
    needs room for the uncompressed RDB once.
'''

EXAMPLES = r'''
- name: Nightly Redis snapshot, kept 14 days
  opsready.operations.redis_backup:
    host: 127.0.0.1
    password: "{{ vault_redis_password }}"
    dest: /var/backups/opsready
    database: sessions
    retention:
      keep_days: 14
'''

RETURN = r'''
manifest:
  description: The manifest of the artifact written (C(details.keys) is the snapshot's key count).
  returned: success
  type: dict
manifests:
  description: Every manifest written (one).
  returned: success
  type: list
  elements: dict
verification:
  description: The verification outcome.
  returned: when O(verify=true)
  type: list
  elements: dict
deleted:
  description:
    - Artifacts removed by O(retention), after the new backup was written (and verified), in deletion order (oldest
      first, set after set) - the first O(retention.max_listed) of them; RV(deleted_count) counts every one.
    - In check mode, the ones the real run would remove (its new backup counted as if it were there).
  returned: success
  type: list
  elements: str
deleted_count:
  description: How many artifacts O(retention) removed (or would remove, in check mode), whatever RV(deleted) lists.
  returned: success
  type: int
lists_truncated:
  description:
    - True when RV(deleted) lists fewer artifacts than were removed (more than O(retention.max_listed)); RV(lists_note)
      then says how to list every one (O(retention.max_listed=-1)).
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
  returned: when retention ran (O(retention) set)
  type: list
  elements: dict
  sample: [{manifest: /var/backups/pg/shop-full-20261101T004512123456Z.dump.zst.manifest.json,
            error: 'invalid JSON: Unterminated string starting at: line 1 column 30'}]
origin_sets:
  description:
    - The run's sets holding backups of several servers (a shared O(dest)), as M(opsready.operations.backup_prune)
      reports them - each server's backups are retained apart (every server keeps its newest good backup).
  returned: when retention ran (O(retention) set)
  type: list
  elements: dict
skipped_fresh:
  description: True when O(min_interval) skipped the run.
  returned: success
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.backup import retention_spec
from ansible_collections.opsready.operations.plugins.module_utils.backup.listed import (
    DEFAULT_MAX_LISTED, list_deleted_at_most, max_listed_error)
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard, encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    check_compression, compression_argument_spec)
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.verify import RedisEngine
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis.client import (
    RedisClient, connection_argument_spec, connection_from_params)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(compression_argument_spec())
    argument_spec.update(
        dest=dict(type='path', required=True),
        owner=dict(type='str'),
        database=dict(type='str'),
        verify=dict(type='bool', default=True),
        min_interval=dict(type='int', default=0),
        retention=dict(type='dict', options=retention_spec.retention_options()),
        encrypt=dict(type='bool', default=False),
        recipients=dict(type='list', elements='str'),
    )
    module = AnsibleModule(argument_spec=argument_spec, required_if=[('encrypt', True, ['recipients'])],
                           supports_check_mode=True)
    no_path_info(module)
    p = module.params
    max_listed = (p['retention'] or {}).get('max_listed', DEFAULT_MAX_LISTED)
    if max_listed_error(max_listed):
        module.fail_json(msg=max_listed_error(max_listed))
    for option in ('threads', 'min_interval', 'connect_timeout'):
        if p[option] is not None and p[option] < 0:
            module.fail_json(msg='%s must be 0 or more, not %d.' % (option, p[option]))
    if p['encrypt']:
        crypto_guard.require(module, crypto_guard.ENCRYPTION_MINIMUM, 'encrypted backups')
    try:
        recipients = encryption.recipients_option(p['encrypt'], p['recipients'], 'the backup')
        check_compression(p['compression'])
        policy = None
        if p['retention']:
            # retention.py (and the catalog code it imports) only when a policy is applied, as db_backup does: every
            # import of an AnsiballZ payload is compiled on every run, before the dump can start
            from ansible_collections.opsready.operations.plugins.module_utils.backup import retention as retention_utils
            policy = retention_utils.Policy.from_params(p['retention'])
            if recipients:
                policy.recipients = list(recipients)   # a full only a retired key opens is not the newest usable one
        rconn = connection_from_params(p)
        engine = RedisEngine(ConnectionParams(host=rconn.host, port=rconn.port, unix_socket=rconn.unix_socket,
                                              user=rconn.username, password=rconn.password,
                                              connect_timeout=rconn.connect_timeout))
        engine.client = RedisClient(rconn, engine.runner)  # with TLS options, which ConnectionParams lacks
        opts = BackupOptions(kind='full', dest=p['dest'], database=p['database'], compression=p['compression'],
                             level=p['compression_level'], threads=p['threads'], recipients=recipients)
        result = run_backup(engine, opts, verify=p['verify'], policy=policy, min_interval=p['min_interval'],
                            check_mode=module.check_mode, owner=safeio.resolve_user(p['owner']))
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    if result['changed'] and module._diff:
        result['diff'] = {'before': '', 'after': '\n'.join(m.get('artifact', '') for m in result['manifests']) + '\n'}
    # the count stays exact; the list is cut (the first clean-up of a large catalog deletes ~200,000 artifacts)
    module.exit_json(**list_deleted_at_most(result, max_listed))


if __name__ == '__main__':
    main()
