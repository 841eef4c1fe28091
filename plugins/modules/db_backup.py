#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_backup
short_description: Back up a database (PostgreSQL, MariaDB/MySQL, SQLite, SQL Server) into a verified catalog
version_added: 0.1.0
description:
  - Runs the engine's backup tool and streams its output through compression (zstd, gzip or none) and
    SHA-256 in one pass into C(<name>.partial), fsyncs it and renames it into place; only then writes a
    JSON manifest next to it. A file without a manifest is never trusted and is removed by the next run.
  - "PostgreSQL: V(full) is C(pg_dump) (O(format=custom) by default, V(directory) with O(jobs) parallel
    workers, or V(plain)); O(all_databases) dumps every database plus C(pg_dumpall --globals-only).
    C(pg_dump) runs with C(lc_monetary=C) (money values written in one format whatever the database's or the
    server's own; the manifest records it as C(dumped_with) and M(opsready.operations.db_restore) reads them back
    with it).
    V(base) is C(pg_basebackup) (tar stream with the WAL it needs, C(--checkpoint=fast)), with its WAL
    start/end LSNs and segment numbers in the manifest. With zstd (not encrypted, client and server 15 or
    later) the server compresses (C(--compress=server-zstd:level=N,workers=T) into a staging directory), the
    module hashes C(base.tar.zst) while it is written and keeps C(backup_manifest) in a zstd skippable frame
    at its end (C(zstd -d) gives the plain tar; pg_verifybackup gets the manifest back): one file, one
    checksum. Otherwise C(pg_basebackup) compresses its tar stream (C(client-zstd) or C(client-gzip)) and the
    module hashes (and encrypts) it. V(wal) forces a WAL switch and waits until the C(archive_command) helper
    installed by the role C(opsready.operations.backup) has stored the segment."
  - "MariaDB/MySQL: V(full) is C(mariadb-dump)/C(mysqldump) C(--single-transaction --routines --events
    --triggers) with the binary log file and position read from the dump itself; the manifest records the
    database's character set, collation and COMMENT (a single-database dump holds no CREATE DATABASE) and the
    grants naming it (C(database_grants), from the C(mysql) privilege tables; without C(SELECT) on them the
    backup goes on and its C(warning) says they were not recorded). MariaDB:
    system-versioned tables are dumped with their history (C(--dump-history)); transaction-precise history
    cannot be, so such tables keep their current rows only and the manifest's C(warning) names them. V(log)
    flushes the binary log and copies every closed binary log not yet in the catalog (C(mariadb-binlog
    --read-from-remote-server --raw)) as C(log) artifacts positioned by binlog index."
  - "SQLite: V(full) uses the online backup API (a consistent copy while the application writes, WAL mode
    included); O(database) is the path of the file. A copy that fails C(PRAGMA integrity_check) (a corrupt source,
    an index that no longer matches its table included) is refused before an artifact is written; above 1 GiB only
    C(PRAGMA quick_check) runs on it (integrity_check costs a look-up per row and index) and the backup warns that
    index content was not checked (C(backup_verify) checks it)."
  - "SQL Server (through pyodbc; B(not run against a live server), see docs/sqlserver.md): V(full)
    C(BACKUP DATABASE ... WITH CHECKSUM), V(diff) adds C(DIFFERENTIAL), V(log) is C(BACKUP LOG); LSNs from
    C(msdb.dbo.backupset). SQL Server writes the file itself, so O(dest) must be a path the server can write
    and this host can read; O(compression) does not apply (use O(sqlserver_compression))."
  - With O(verify=true) (default) every new artifact is checked right away (checksum plus the engine's own
    check, as M(opsready.operations.backup_verify) does) and the result recorded in its manifest; a failed
    check fails the task and marks the artifact so it is never used for a restore.
  - With O(encrypt=true) every artifact is encrypted to the age public keys in O(recipients) in the same
    pass as compression and hashing (age v1, X25519; Debian's C(age -d) decrypts it) and named C(.age).
    Only public keys are needed on the database host. The manifest records the format, the recipients, the
    checksum of the stored (encrypted) bytes and the size of the compressed stream (zstd frames carry their
    content checksum; other streams get a SHA-256 sealed to the recipients), never a secret. O(verify) then
    checks the stored checksum only (the engine check needs the private key, so run
    M(opsready.operations.backup_verify) with O(opsready.operations.backup_verify#module:deep=true) where
    the key is). Refused for PostgreSQL O(format=directory) and V(wal), and for SQL Server, whose files
    never pass through the stream (see docs/encryption.md).
author: opsready developers (@opsready)
options:
  engine:
    description:
      - The database engine. V(mariadb) and V(mysql) share one implementation (the name picks the tools).
    type: str
    required: true
    choices: [postgresql, mariadb, mysql, sqlite, sqlserver]
  database:
    description:
      - Database to back up (SQLite, the path of the database file). Required unless O(all_databases) is
        set or O(kind) is V(base)/V(wal) (whole PostgreSQL cluster).
    type: str
  all_databases:
    description: Back up every database of the server (PostgreSQL, one dump each plus globals; MariaDB, one dump).
    type: bool
    default: false
  kind:
    description:
      - What to take. Not every engine offers every kind; an unsupported one fails with the list it supports.
      - V(full) (all engines), V(diff) (SQL Server), V(log) (MariaDB/MySQL binlogs, SQL Server log),
        V(base) and V(wal) (PostgreSQL).
    type: str
    choices: [full, diff, log, base, wal]
    default: full
  format:
    description: PostgreSQL V(full) only. pg_dump output format.
    type: str
    choices: [custom, directory, plain]
    default: custom
  jobs:
    description: PostgreSQL O(format=directory) only. Parallel pg_dump workers (C(-j)).
    type: int
    default: 1
  include_globals:
    description:
      - PostgreSQL V(full) only. Also dump roles and tablespaces (C(pg_dumpall --globals-only)) as a
        separate artifact.
    type: bool
    default: false
  copy_only:
    description: SQL Server only. C(COPY_ONLY) backup that does not disturb the differential base or log chain.
    type: bool
    default: false
  sqlserver_compression:
    description: SQL Server only. C(WITH COMPRESSION) (server-side backup compression).
    type: bool
    default: false
  wait_timeout:
    description: PostgreSQL V(wal) only. Seconds to wait for the archiver to store the switched segment.
    type: int
    default: 60
  verify:
    description:
      - Verify every new artifact right after writing it (checksum + engine check; checksum only when
        O(encrypt=true)).
    type: bool
    default: true
  encrypt:
    description:
      - Encrypt every artifact of this run to O(recipients) (age format, X25519); names end in C(.age).
      - Not possible with PostgreSQL O(format=directory), nor for SQL Server; the task fails before anything
        is written.
      - "PostgreSQL O(kind=wal): the segments are stored by the C(archive_command) helper, which encrypts when it
        is run with C(--recipient age1...); the task then fails when the segment it waited for is not encrypted to
        every one of O(recipients) (the helper's command line lacks one)."
    type: bool
    default: false
  recipients:
    description:
      - age public keys (C(age1...), as printed by C(age-keygen -y)) to encrypt to; any one matching
        private key decrypts. Give two (an online restore key and an offline escrow key).
      - Required when O(encrypt=true).
    type: list
    elements: str
  min_interval:
    description:
      - Do not take a new backup when a usable one of the same database and kind finished less than this
        many seconds ago; the task then reports C(changed=false) and returns that backup's manifest.
        Makes schedules and plays idempotent. V(0) always backs up.
      - When a run writes several sets (PostgreSQL O(all_databases) or O(include_globals), that is each database
        and C(@globals)), it is skipped only when every one of them has such a backup.
    type: int
    default: 0
extends_documentation_fragment:
  - opsready.operations.retention_after_backup
  - opsready.operations.backup_dest
  - opsready.operations.compression
  - opsready.operations.db_connection
  - opsready.operations.check_mode
notes:
  - For PostgreSQL O(format=directory) pg_dump compresses each member with gzip itself (level 1 for
    O(compression=zstd)).
  - Check mode connects to the server (proving host, port and credentials) and writes nothing.
  - PostgreSQL V(base) streams one tar to the module (C(pg_basebackup -D -)), which C(pg_basebackup) allows
    only for a cluster without additional tablespaces; with tablespaces it fails ("can only write single
    tablespace to stdout") and nothing is kept. Back such clusters up with V(full) dumps.
  - Needs the Python package C(zstandard) for zstd, and the engine's client tools on the managed host
    (C(pg_dump)/C(pg_basebackup)/C(psql), C(mariadb-dump)/C(mariadb)/C(mariadb-binlog)); SQL Server needs C(pyodbc).
seealso:
  - module: opsready.operations.backup_verify
  - module: opsready.operations.backup_info
  - module: opsready.operations.backup_prune
'''

EXAMPLES = r'''
- name: Nightly pg_dump of the application database, kept 14 days
  opsready.operations.db_backup:
    engine: postgresql
    database: app
    login_host: db1.example.com
    login_user: backup
    login_password: "{{ vault_pg_backup_password }}"
    dest: /var/backups/opsready/pg
    retention:
      keep_days: 14

- name: Base backup of the cluster (PITR with the WAL archive)
  opsready.operations.db_backup:
    engine: postgresql
    kind: base
    login_unix_socket: /var/run/postgresql
    login_user: postgres
    dest: /var/backups/opsready/pg
    # archive_command (running as postgres) writes WAL into this catalog (root:postgres 0770): trusted explicitly
    owner: postgres

- name: Parallel directory-format dump
  opsready.operations.db_backup:
    engine: postgresql
    database: app
    format: directory
    jobs: 4
    dest: /var/backups/opsready/pg

- name: MariaDB dump, then hourly binlog copies
  opsready.operations.db_backup:
    engine: mariadb
    database: shop
    login_option_file: /root/.my-backup.cnf
    dest: /var/backups/opsready/mariadb
    kind: "{{ item }}"
  loop: [full, log]

- name: SQLite file, at most one backup an hour
  opsready.operations.db_backup:
    engine: sqlite
    database: /srv/app/app.db
    dest: /var/backups/opsready/sqlite
    min_interval: 3600

- name: Encrypted pg_dump (only the public keys live on the database host)
  opsready.operations.db_backup:
    engine: postgresql
    database: app
    dest: /var/backups/opsready/pg
    encrypt: true
    recipients:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p   # restore key
      - age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg   # offline escrow key
'''

RETURN = r'''
manifest:
  description: The manifest of the main artifact written (or of the fresh one found with O(min_interval)).
  returned: success
  type: dict
  sample:
    engine: postgresql
    kind: full
    database: app
    artifact: postgresql-app-full-20261129T004512123456Z.dump.zst
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    size: 338000000
    compression: zstd
    consistent_at: "2026-11-29T00:45:12.123456Z"
    position: {lsn: 0/3000060, wal_file: 000000010000000000000003}
    verification: {ok: true}
    encryption:
      format: age
      recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
      plaintext_size: 1210000000
manifests:
  description: Every manifest written by this run (several for O(all_databases) or MariaDB binlog copies).
  returned: success
  type: list
  elements: dict
verification:
  description: Per-artifact verification outcome (checks run, seconds, error).
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
leftovers_removed:
  description: Files of interrupted runs of this backup set (no manifest) removed (or that would be, in check mode).
  returned: success
  type: list
  elements: str
leftovers_left:
  description: Files of interrupted runs, or this run's own staging in O(dest), that could not be removed (each
    with a warning saying why); the run itself succeeded. Remove them by hand. A failed run names what it left in
    its message and in C(leftovers_left) too.
  returned: when a removal failed
  type: list
  elements: str
skipped_fresh:
  description: Whether no backup was taken because of O(min_interval).
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
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    check_compression, compression_argument_spec)
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    connection_from_params, db_connection_argument_spec, db_connection_mutually_exclusive)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import ENGINES, get_engine


def main():
    argument_spec = db_connection_argument_spec()
    argument_spec.update(compression_argument_spec())
    argument_spec.update(
        engine=dict(type='str', required=True, choices=list(ENGINES)),
        database=dict(type='str'),
        all_databases=dict(type='bool', default=False),
        kind=dict(type='str', choices=['full', 'diff', 'log', 'base', 'wal'], default='full'),
        dest=dict(type='path', required=True),
        owner=dict(type='str'),
        format=dict(type='str', choices=['custom', 'directory', 'plain'], default='custom'),
        jobs=dict(type='int', default=1),
        include_globals=dict(type='bool', default=False),
        copy_only=dict(type='bool', default=False),
        sqlserver_compression=dict(type='bool', default=False),
        wait_timeout=dict(type='int', default=60),
        verify=dict(type='bool', default=True),
        min_interval=dict(type='int', default=0),
        retention=dict(type='dict', options=retention_spec.retention_options()),
        encrypt=dict(type='bool', default=False),
        recipients=dict(type='list', elements='str'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=db_connection_mutually_exclusive() + [['database', 'all_databases']],
        required_if=[('encrypt', True, ['recipients'])],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    max_listed = (p['retention'] or {}).get('max_listed', DEFAULT_MAX_LISTED)
    if max_listed_error(max_listed):
        module.fail_json(msg=max_listed_error(max_listed))
    for option in ('threads', 'min_interval', 'wait_timeout', 'connect_timeout'):
        if p[option] is not None and p[option] < 0:
            module.fail_json(msg='%s must be 0 or more, not %d.' % (option, p[option]))
    if p['jobs'] < 1:
        module.fail_json(msg='jobs must be 1 or more, not %d.' % p['jobs'])
    if p['encrypt']:
        crypto_guard.require(module, crypto_guard.ENCRYPTION_MINIMUM, 'encrypted backups')
    try:
        recipients = encryption.recipients_option(p['encrypt'], p['recipients'], 'the backup')
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    if p['engine'] == 'sqlserver' and p['compression'] != 'none':
        # SQL Server writes the file itself: the stream never passes through this host.
        p['compression'] = 'none'
    opts = BackupOptions(
        kind=p['kind'], dest=p['dest'], database=p['database'], all_databases=p['all_databases'],
        compression=p['compression'], level=p['compression_level'], threads=p['threads'],
        format=p['format'] if p['engine'] == 'postgresql' else None, jobs=p['jobs'],
        include_globals=p['include_globals'], copy_only=p['copy_only'],
        native_compression=p['sqlserver_compression'], wait_timeout=p['wait_timeout'],
        recipients=recipients,
    )
    try:
        check_compression(p['compression'])
        policy = None
        if p['retention']:
            # retention.py (and the catalog code it imports) only when a policy is applied: every import of an
            # AnsiballZ payload is compiled on every run, before the dump can start
            from ansible_collections.opsready.operations.plugins.module_utils.backup import retention as retention_utils
            policy = retention_utils.Policy.from_params(p['retention'])
            if recipients:
                # a full readable only by keys no longer given is never the newest usable full retention keeps
                policy.recipients = list(recipients)
        engine = get_engine(p['engine'], connection_from_params(p))
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
