#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_copy
short_description: Copy backups offsite (S3, Azure Blob, Google Cloud Storage, SSH), prune there, fetch them back
version_added: 0.1.0
description:
  - O(mode=push) copies the artifacts of a local backup directory (the catalog written by
    M(opsready.operations.db_backup) and M(opsready.operations.file_backup)) that the destination does
    not hold yet. Each artifact is hashed as it is sent and must match its manifest; the destination's
    copy is then read back (O(verify=full)) or sized (O(verify=size)); only then is the manifest
    uploaded, last, so a reader never sees an artifact without its manifest.
  - S3 uploads are streamed multipart uploads, O(concurrency) parts of O(part_size_mb) in flight (and in memory),
    each with its CRC32 checksum; a failed part aborts the multipart upload. An interrupted run leaves no manifest,
    and the next run aborts its incomplete multipart uploads and removes objects no manifest vouches for.
  - Azure Blob uploads are streamed block uploads (O(part_size_mb) per block, O(concurrency) in parallel), each
    block with its Content-MD5; Google Cloud Storage uploads are streamed resumable uploads (O(part_size_mb)
    chunks) whose CRC32C is compared with the one GCS computed. Neither holds an artifact in memory.
  - After a push, retention at the destination (O(keep_last), O(keep_days), O(keep_daily),
    O(keep_weekly), O(keep_monthly)) applies the same chain-safe rules as
    M(opsready.operations.backup_prune) to the destination's own manifests - only to the sets and origins O(src)
    holds (what this host pushes). Another host's backups under the same prefix (another set, or the same set name
    written by another server) are never deleted by this host's rules; they are listed in RV(not_retained), and
    their own host's push retains them.
  - O(mode=pull) fetches artifacts and manifests from the destination into the local directory O(src),
    each checked against its manifest before its manifest is written, so
    M(opsready.operations.db_restore), M(opsready.operations.file_restore) and the DR drill can restore
    from the offsite copy.
  - Encrypted artifacts (C(encrypt=true)) are copied as they are; the destination never sees plaintext.
author: opsready developers (@opsready)
options:
  src:
    description:
      - The local backup directory (push reads it; pull writes into it, created C(0700)).
      - For a pull, a directory another account owns or can write, or one below such a directory, is refused before
        anything is fetched (as M(opsready.operations.db_backup) refuses such a C(dest)), since that account could
        swap a checked download for its own file before it is renamed into place.
    type: path
    required: true
  mode:
    description: V(push) copies local backups to the destination; V(pull) fetches them back.
    type: str
    choices: [push, pull]
    default: push
  backend:
    description: Where the copies go.
    type: str
    choices: [s3, ssh, azure, gcs]
    required: true
  bucket:
    description: S3 or GCS bucket (O(backend=s3), O(backend=gcs)).
    type: str
  prefix:
    description:
      - Key prefix inside the bucket or container, e.g. V(db01/postgresql).
      - Spaces, non-ASCII letters, quotes and V(%#?&;) are kept as given. Refused before anything is uploaded (S3,
        Azure and GCS alike), because the store or HTTP would change it - an empty, V(.) or V(..) path segment
        (V(a//b), V(a/../b)), a control character, or a prefix that together with a backup file name exceeds 1024
        bytes of UTF-8 (the services' limit); with O(backend=azure) also a backslash or a segment ending in a dot.
    type: str
    default: ''
  endpoint_url:
    description:
      - S3 endpoint for S3-compatible stores (MinIO, Ceph RGW, Wasabi...); unset means AWS.
      - With O(backend=gcs), another endpoint than C(https://storage.googleapis.com) (a private endpoint or an
        emulator; without O(credentials_file) the client then sends no token).
    type: str
  container:
    description: Azure Blob container (O(backend=azure)); it must exist.
    type: str
  account_url:
    description:
      - Azure Blob endpoint, e.g. V(https://myaccount.blob.core.windows.net) (O(backend=azure)). Defaults to the
        public endpoint of O(account_name).
    type: str
  account_name:
    description: Azure storage account (O(backend=azure)); taken from O(account_url) when unset.
    type: str
  account_key:
    description: Azure storage account key (O(backend=azure)).
    type: str
  sas_token:
    description: Azure shared access signature (O(backend=azure)), with read, write, list and delete on the container.
    type: str
  connection_string:
    description:
      - Azure storage connection string (O(backend=azure)), instead of O(account_url) and a key or SAS.
      - Without O(account_key), O(sas_token) and O(connection_string) a managed or workload identity is used
        (DefaultAzureCredential, needs azure-identity).
    type: str
  credentials_file:
    description:
      - Service-account key file for O(backend=gcs) (on the managed host). Unset uses Application Default
        Credentials (workload identity, the metadata server).
    type: path
  project:
    description: Google Cloud project (O(backend=gcs)); defaults to the credentials' project.
    type: str
  region:
    description: S3 region.
    type: str
  access_key:
    description: S3 access key id. Unset uses the boto3 credential chain (environment, instance profile).
    type: str
  secret_key:
    description: S3 secret access key.
    type: str
  session_token:
    description: S3 session token for temporary credentials.
    type: str
  validate_certs:
    description: Verify the S3 endpoint's TLS certificate.
    type: bool
    default: true
  storage_class:
    description: S3 storage class of uploaded objects, e.g. V(STANDARD_IA) or V(GLACIER_IR).
    type: str
  server_side_encryption:
    description: Ask the store to encrypt objects at rest. Independent of C(encrypt) on the backup modules.
    type: str
    choices: [AES256, 'aws:kms']
  sse_kms_key_id:
    description: KMS key for O(server_side_encryption=aws:kms).
    type: str
  origin_succession:
    description:
      - Retention at the destination (keep_*) treats a set's origins that succeeded each other (one server whose
        identity changed, as after pg_upgrade, a re-initdb or a renamed host) as one timeline, so the old
        server's copies age out, as M(opsready.operations.backup_prune)
        O(opsready.operations.backup_prune#module:origin_succession) does locally. Without it each origin keeps
        its own newest full. Origins that overlap in time are always planned one by one.
    type: bool
    default: false
  object_lock_mode:
    description:
      - O(backend=s3) only. Upload every object (data and manifest) with S3 Object Lock in this mode and a
        retain-until date O(lock_days) after the upload, so neither ransomware nor a stolen credential (nor
        this module's retention) can delete or overwrite it before then. V(GOVERNANCE) can be lifted by a
        principal with C(s3:BypassGovernanceRetention); V(COMPLIANCE) by nobody, the root account included.
      - The bucket must have Object Lock enabled (it is then versioned); the module refuses otherwise, before
        uploading anything.
      - Retention (keep_*) never fails on a locked copy; it keeps it whole, with whatever it needs, and lists
        it in RV(locked) with its retain-until date. Once the lock has passed, retention deletes every version.
    type: str
    choices: [GOVERNANCE, COMPLIANCE]
  lock_days:
    description:
      - Days (fractions allowed) each uploaded object stays locked, counted from its upload.
      - Defaults to O(keep_days), so a copy stays locked at least as long as retention keeps it (retention counts
        from the older backup time). Required with O(object_lock_mode) when O(keep_days) is unset, and may not be
        shorter than O(keep_days).
    type: float
  part_size_mb:
    description:
      - Multipart part (S3), block (Azure) or resumable chunk (GCS, rounded down to a multiple of 256 KiB) size in
        MiB; files smaller than this are sent in one request.
    type: int
    default: 64
  concurrency:
    description:
      - Parts (S3) or blocks (Azure) uploaded in parallel; at most this many parts of O(part_size_mb) are held in
        memory, so an upload holds at most O(concurrency) x O(part_size_mb) MiB of the file (256 MiB with the
        defaults).
      - More parts in flight help over a link with a long round trip; on a host short of memory lower this or
        O(part_size_mb). (boto3's own transfer manager sends 10 parts of 8 MiB at once.)
    type: int
    default: 4
  ssh_host:
    description: Host holding the copies (O(backend=ssh)); reached with ssh and rsync, which must be installed.
    type: str
  ssh_user:
    description: SSH user on O(ssh_host).
    type: str
  ssh_port:
    description: SSH port of O(ssh_host).
    type: int
    default: 22
  ssh_key:
    description:
      - Private key file for SSH (on the managed host).
      - A path with whitespace, quotes, a backslash or C(%) is refused (ssh reads the value as config words and
        tokens); link the file from a plain path.
    type: path
  ssh_known_hosts:
    description:
      - known_hosts file to check O(ssh_host)'s key against; host keys are always checked.
      - The same path rule as O(ssh_key).
    type: path
  remote_path:
    description: Absolute directory on O(ssh_host) holding the copies; created C(0700).
    type: str
  engine:
    description: Copy only artifacts of this engine (V(postgresql), V(mysql), V(sqlite), V(files)...).
    type: str
  database:
    description: Copy only artifacts of this database (or file backup set).
    type: str
  verified_only:
    description:
      - Push only artifacts that M(opsready.operations.backup_verify) marked verified. Artifacts whose
        verification failed are never copied, whatever this option says.
    type: bool
    default: false
  verify:
    description:
      - How the destination's copy is checked before its manifest is uploaded. V(full) reads it back and
        compares its SHA-256 (exact; costs one download). V(size) compares the size only.
    type: str
    choices: [full, size]
    default: full
  scope:
    description:
      - O(mode=pull) only. V(all) fetches every matching artifact; V(latest_chain) only the full (and logs)
        that restore each database to its newest point.
    type: str
    choices: [all, latest_chain]
    default: all
extends_documentation_fragment:
  - opsready.operations.retention
  - opsready.operations.check_mode
notes:
  - Supports C(check_mode); it lists what would be copied, fetched or deleted.
  - Azure immutability policies are not offered; the Azurite emulator this collection is tested against does not
    implement them (see docs/runbooks/offsite.md).
  - One writer per destination prefix is assumed (the host that owns the backups).
  - O(verify=full) doubles the traffic of each new artifact; use V(size) where egress is expensive and
    run a periodic drill from the offsite copy instead.
requirements:
  - boto3 (O(backend=s3))
  - azure-storage-blob (O(backend=azure)); azure-identity for a managed or workload identity
  - google-cloud-storage (O(backend=gcs))
  - ssh and rsync on both hosts (O(backend=ssh))
seealso:
  - module: opsready.operations.backup_prune
  - module: opsready.operations.db_restore
'''

EXAMPLES = r'''
- name: Ship new backups to object storage, keep 30 days there
  opsready.operations.backup_copy:
    src: /var/backups/opsready/postgresql
    backend: s3
    endpoint_url: https://s3.eu-central-1.amazonaws.com
    bucket: acme-db-backups
    prefix: "{{ inventory_hostname }}/postgresql"
    access_key: "{{ vault_s3_access_key }}"
    secret_key: "{{ vault_s3_secret_key }}"
    storage_class: STANDARD_IA
    server_side_encryption: AES256
    keep_days: 30

- name: Second copy on the DR host over SSH
  opsready.operations.backup_copy:
    src: /var/backups/opsready/postgresql
    backend: ssh
    ssh_host: dr1.example.com
    ssh_user: backup
    ssh_key: /root/.ssh/backup_ed25519
    remote_path: /srv/offsite/db01

- name: Copy to an Azure Blob container with a SAS token, keep 14 daily copies there
  opsready.operations.backup_copy:
    src: /var/backups/opsready/postgresql
    backend: azure
    account_url: https://acmebackups.blob.core.windows.net
    container: db-backups
    prefix: "{{ inventory_hostname }}/postgresql"
    sas_token: "{{ vault_azure_sas }}"
    keep_daily: 14

- name: Copy to Google Cloud Storage with a service-account key
  opsready.operations.backup_copy:
    src: /var/backups/opsready/postgresql
    backend: gcs
    bucket: acme-db-backups
    prefix: "{{ inventory_hostname }}/postgresql"
    credentials_file: /etc/opsready/gcs-backup.json

- name: Fetch the newest chain back for a drill or a restore
  opsready.operations.backup_copy:
    mode: pull
    src: /var/tmp/offsite-restore
    backend: s3
    bucket: acme-db-backups
    prefix: db01/postgresql
    database: shop
    scope: latest_chain
'''

RETURN = r'''
removed_scratch:
  description:
    - Work directories (C(opsready-scratch-offsite-*) in the system temporary directory, copies of the
      destination's manifests) that killed runs had left and this run removed. Nothing in check mode.
  returned: always
  type: list
  elements: str
scratch_left:
  description: This run's work directory when it could not be removed (a warning says why); remove it by hand.
  returned: always
  type: list
  elements: str
destination:
  description: Where the copies are (no credentials).
  returned: always
  type: str
  sample: s3://acme-db-backups/db01/postgresql
uploaded:
  description: Artifacts copied (or that would be, in check mode) by a push.
  returned: O(mode=push)
  type: list
  elements: str
  sample: [shop-full-20261129T004512123456Z.dump.zst]
manifests_updated:
  description: Artifacts already at the destination whose manifest changed locally (verified later), re-sent.
  returned: O(mode=push)
  type: list
  elements: str
  sample: []
already_present:
  description: Artifacts the destination (push) or local directory (pull) already held.
  returned: always
  type: int
  sample: 12
deleted:
  description: Artifacts removed from the destination by its retention.
  returned: O(mode=push)
  type: list
  elements: str
  sample: []
not_retained:
  description:
    - The destination's sets (C(engine), C(database), C(origin)) that retention left alone because O(src) holds none
      of their backups - another host's under a shared prefix, or a set this host no longer writes (delete its copies
      with a push of a catalog that holds it, or by hand).
  returned: O(mode=push) with retention
  type: list
  elements: dict
  sample: [{engine: postgresql, database: shop, origin: 'db2.example.com:5432'}]
broken_manifests:
  description:
    - Manifests in O(src) that cannot be read (damaged JSON, a shape this version refuses), with the reason; their
      backups were not copied (a warning names each). Check mode lists the same.
  returned: O(mode=push)
  type: list
  elements: dict
  sample: [{manifest: /var/backups/pg/shop-full-20261101T004512123456Z.dump.zst.manifest.json,
            error: 'invalid JSON: Unterminated string starting at: line 1 column 30'}]
leftovers_removed:
  description: Destination objects no manifest vouched for (interrupted runs), removed.
  returned: O(mode=push)
  type: list
  elements: str
  sample: []
locked:
  description:
    - Copies retention would delete but could not yet, because they (or leftovers of interrupted uploads) are under an
      S3 Object Lock or legal hold, or a locked copy needs them; C(retain_until) is when the lock ends (UTC, null for a
      legal hold or for a copy kept because a locked one needs it). The next run after that date deletes them.
  returned: O(mode=push)
  type: list
  elements: dict
  sample: [{id: shop-full-20261101T004512123456Z.dump.zst, mode: COMPLIANCE, retain_until: '2026-12-01T00:45:30Z',
            reason: locked}]
aborted_uploads:
  description: Incomplete S3 multipart uploads under the prefix that were aborted.
  returned: O(mode=push)
  type: list
  elements: str
  sample: []
downloaded:
  description: Artifacts fetched (or that would be) by a pull.
  returned: O(mode=pull)
  type: list
  elements: str
  sample: [shop-full-20261129T004512123456Z.dump.zst]
bytes:
  description: Bytes of artifact data sent or received.
  returned: always
  type: int
  sample: 73400320
seconds:
  description: Wall time of the copy.
  returned: always
  type: float
  sample: 4.2
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.urlsecrets import url_secrets
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite
from ansible_collections.opsready.operations.plugins.module_utils.offsite import azure, gcs, stores


def lock_days(p):
    """Rule: a copy stays locked at least as long as retention keeps it; lock_days defaults to keep_days."""
    if not p['object_lock_mode']:
        return None
    return p['lock_days'] if p['lock_days'] is not None else p['keep_days']


def build_store(p):
    if p['backend'] == 'azure':
        return azure.AzureBlobStore(p['container'], p['prefix'] or '', account_url=p['account_url'],
                                    account_name=p['account_name'], account_key=p['account_key'],
                                    sas_token=p['sas_token'], connection_string=p['connection_string'],
                                    part_size_mb=p['part_size_mb'], concurrency=p['concurrency'])
    if p['backend'] == 'gcs':
        return gcs.GcsStore(p['bucket'], p['prefix'] or '', project=p['project'],
                            credentials_file=p['credentials_file'], endpoint_url=p['endpoint_url'],
                            part_size_mb=p['part_size_mb'])
    if p['backend'] == 's3':
        return stores.S3Store(p['bucket'], p['prefix'] or '', endpoint_url=p['endpoint_url'], region=p['region'],
                              access_key=p['access_key'], secret_key=p['secret_key'],
                              session_token=p['session_token'], storage_class=p['storage_class'],
                              server_side_encryption=p['server_side_encryption'],
                              sse_kms_key_id=p['sse_kms_key_id'], part_size_mb=p['part_size_mb'],
                              concurrency=p['concurrency'], validate_certs=p['validate_certs'],
                              object_lock_mode=p['object_lock_mode'], lock_days=lock_days(p))
    return stores.SshStore(p['ssh_host'], p['remote_path'], user=p['ssh_user'], port=p['ssh_port'],
                           key_file=p['ssh_key'], known_hosts=p['ssh_known_hosts'])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='path', required=True),
            mode=dict(type='str', choices=['push', 'pull'], default='push'),
            backend=dict(type='str', choices=['s3', 'ssh', 'azure', 'gcs'], required=True),
            bucket=dict(type='str'),
            prefix=dict(type='str', default=''),
            endpoint_url=dict(type='str'),
            region=dict(type='str'),
            container=dict(type='str'),
            account_url=dict(type='str'),
            account_name=dict(type='str'),
            account_key=dict(type='str', no_log=True),
            sas_token=dict(type='str', no_log=True),
            connection_string=dict(type='str', no_log=True),
            credentials_file=dict(type='path'),
            project=dict(type='str'),
            access_key=dict(type='str', no_log=True),
            secret_key=dict(type='str', no_log=True),
            session_token=dict(type='str', no_log=True),
            validate_certs=dict(type='bool', default=True),
            storage_class=dict(type='str'),
            server_side_encryption=dict(type='str', choices=['AES256', 'aws:kms']),
            sse_kms_key_id=dict(type='str', no_log=False),
            object_lock_mode=dict(type='str', choices=['GOVERNANCE', 'COMPLIANCE']),
            lock_days=dict(type='float'),
            part_size_mb=dict(type='int', default=64),
            concurrency=dict(type='int', default=4),
            ssh_host=dict(type='str'),
            ssh_user=dict(type='str'),
            ssh_port=dict(type='int', default=22),
            ssh_key=dict(type='path', no_log=False),
            ssh_known_hosts=dict(type='path'),
            remote_path=dict(type='str'),
            engine=dict(type='str'),
            database=dict(type='str'),
            verified_only=dict(type='bool', default=False),
            verify=dict(type='str', choices=['full', 'size'], default='full'),
            scope=dict(type='str', choices=['all', 'latest_chain'], default='all'),
            origin_succession=dict(type='bool', default=False),
            **retention.argument_spec()
        ),
        required_if=[('backend', 's3', ['bucket']), ('backend', 'ssh', ['ssh_host', 'remote_path']),
                     ('backend', 'azure', ['container']), ('backend', 'gcs', ['bucket']),
                     ('server_side_encryption', 'aws:kms', ['sse_kms_key_id'], True)],
        required_together=[('access_key', 'secret_key')],
        mutually_exclusive=[('account_key', 'sas_token', 'connection_string')],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    # endpoint_url and account_url are not secret options, yet may carry credentials (a MinIO user:password@host,
    # an account SAS URL's sig=): starred in every output of the module, Ansible's invocation included
    for option in ('endpoint_url', 'account_url'):
        if p[option]:
            module.no_log_values.update(s for s in url_secrets(p[option]) if len(s) >= 4)
    if p['backend'] == 's3' and not stores.HAS_BOTO3:
        module.fail_json(msg=missing_required_lib('boto3'), exception=str(stores.BOTO3_IMPORT_ERROR))
    if p['backend'] == 'azure' and not azure.HAS_AZURE:
        module.fail_json(msg=missing_required_lib('azure-storage-blob'), exception=str(azure.AZURE_IMPORT_ERROR))
    if p['backend'] == 'gcs' and not gcs.HAS_GCS:
        module.fail_json(msg=missing_required_lib('google-cloud-storage'), exception=str(gcs.GCS_IMPORT_ERROR))
    if p['backend'] == 'azure' and not (p['account_url'] or p['account_name'] or p['connection_string']):
        module.fail_json(msg='backend=azure needs account_url (https://<account>.blob.core.windows.net), '
                             'account_name or connection_string.')
    if p['object_lock_mode'] or p['lock_days'] is not None:
        if p['backend'] != 's3':
            module.fail_json(msg='object_lock_mode/lock_days are S3 Object Lock options; backend=%s has no '
                                 'immutability support here. Remove them or use backend=s3.' % p['backend'])
        if not p['object_lock_mode']:
            module.fail_json(msg='lock_days needs object_lock_mode (GOVERNANCE or COMPLIANCE).')
        if lock_days(p) is None or lock_days(p) <= 0:
            module.fail_json(msg='object_lock_mode needs lock_days (days each copy stays locked) or keep_days, '
                                 'greater than 0.')
        if p['keep_days'] is not None and lock_days(p) < p['keep_days']:
            module.fail_json(msg='lock_days (%s) is shorter than keep_days (%s): copies retention still counts on '
                                 'would become deletable. Set lock_days to keep_days or more.'
                                 % (p['lock_days'], p['keep_days']))
    if p['part_size_mb'] < 5:
        module.fail_json(msg='part_size_mb must be 5 or more (the S3 minimum part size), not %d.' % p['part_size_mb'])
    if p['concurrency'] < 1:
        module.fail_json(msg='concurrency must be 1 or more.')
    if p['mode'] == 'pull' and any(p[k] is not None for k in retention.KEEP_OPTIONS):
        module.fail_json(msg='Retention options (keep_*) apply to a push; remove them from mode=pull.')
    try:
        try:
            store = build_store(p)
        except ValueError as exc:   # the SDKs' refusal of an endpoint, quoting it: a message, not a traceback
            raise OpsReadyError('backup_copy cannot use the %s destination: %s. Check endpoint_url / account_url.'
                                % (p['backend'], exc))
        if p['mode'] == 'push':
            policy = retention.Policy.from_params(p)
            result = offsite.push(store, p['src'], engine=p['engine'], database=p['database'],
                                  verified_only=p['verified_only'], verify=p['verify'],
                                  check_mode=module.check_mode, policy=policy)
            changed = bool(result['uploaded'] or result['manifests_updated'] or result['deleted']
                           or result['leftovers_removed'] or result['aborted_uploads'])
            before = ''
            after = ''.join('+ %s\n' % i for i in result['uploaded']) + ''.join('- %s\n' % i for i in result['deleted'])
        else:
            result = offsite.pull(store, p['src'], engine=p['engine'], database=p['database'], scope=p['scope'],
                                  check_mode=module.check_mode)
            changed = bool(result['downloaded'])
            before = ''
            after = ''.join('+ %s\n' % i for i in result['downloaded'])
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='backup_copy failed: %s (%s).' % (exc.strerror or exc, getattr(exc, 'filename', '') or ''))
    # the work directory (the destination's manifests) removed checked: one that stayed is named
    if result.get('scratch_warning'):
        module.warn(result.pop('scratch_warning'))
    for warning in result.pop('warnings', []):
        module.warn(warning)
    module.exit_json(changed=changed, diff={'before': before, 'after': after}, **result)


if __name__ == '__main__':
    main()
