#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: drill_step
short_description: One timed step of a DR drill on a restored scratch target, or a whole file-set drill
version_added: 0.1.0
description:
  - Used by the role C(opsready.operations.dr_drill) after M(opsready.operations.db_restore) restored the newest
    backup chain into a scratch target. Every step returns its start, end, duration and outcome in the same
    shape, so M(opsready.operations.drill_report) can draw the timeline and measure the RTO.
  - "O(step=integrity) runs the engine's own consistency check on the scratch target: SQLite
    C(PRAGMA integrity_check) and C(PRAGMA foreign_key_check); PostgreSQL C(pg_amcheck --heapallindexed)
    (it installs the C(amcheck) extension in the scratch database), or a full read of every table where
    pg_amcheck or amcheck is unavailable (the result says which); MariaDB/MySQL C(mariadb-check)/C(mysqlcheck)."
  - "O(step=guard) runs before anything is restored: it refuses a scratch target the drill did not create, so
    that the restore (with C(replace)) and the clean-up (C(state=absent)) never overwrite or delete a live
    database or data directory. SQLite - O(database) must not be O(source) (not the same file under another
    path, a symbolic or hard link to it), and must be absent or a copy a drill left (the marker file
    C(<database>.opsready_drill_scratch) beside it): another application's database, any other file or a link
    there is refused. PostgreSQL, MariaDB/MySQL - O(database) must not be O(source) (MariaDB
    with C(lower_case_table_names) 1 or 2 compares names without case), must not contain C(__opsready_) (the
    restore's temporary databases), and must be absent from the server or carry the drill's mark, the comment
    C(opsready dr_drill scratch copy of ...) (MySQL and MariaDB before 10.5 keep no database comment: there an
    existing scratch database is always refused). PostgreSQL point-in-time drills (O(datadir)) - the directory
    must be absent, empty, or hold the drill's marker file C(opsready_drill_scratch); a cluster's data directory
    (C(PG_VERSION), C(global/pg_control), a running server's C(postmaster.pid)) or any other content is
    refused, links resolved. The message says what to do: another scratch name, or drop it yourself. The role
    C(opsready.operations.dr_drill) drops the scratch target afterwards only when the guard passed. Every other
    step checks that O(database) is not O(source) too."
  - "O(step=mark) puts the drill's mark on the scratch target right after the restore (the restored copy carries
    the source's comment): PostgreSQL C(COMMENT ON DATABASE), MariaDB 10.5+ C(ALTER DATABASE ... COMMENT), PITR
    the file C(opsready_drill_scratch) in O(datadir). A drill interrupted after that leaves a marked leftover,
    which the next drill replaces and drops. SQLite - the marker file C(<database>.opsready_drill_scratch) beside
    the scratch path (the role writes it before the restore and removes it in the clean-up). Nothing is done in
    check mode."
  - "O(step=smoke) runs each of O(queries) and checks its O(queries[].expect), so the drill proves the data is
    usable, not only present. Every query runs even when an earlier one failed."
  - "O(step=freshness) runs O(query) on the scratch target and reads the newest committed data the restored copy
    holds from its answer (the first column of the first row, e.g. C(SELECT max(created_at) FROM orders)): a
    timestamp (ISO 8601; a time without a zone is taken as UTC) or Unix epoch seconds. It returns C(newest) in
    RV(details); the role's C(freshness_query) measures the RPO from it instead of the catalog's claim, which a
    backup host's clock ahead, an edited manifest or a log backup holding nothing new makes later than the data.
    No row, a NULL (an empty table) or an answer that is no time fails the step."
  - The scratch target is removed afterwards by M(opsready.operations.db_restore) with C(state=absent).
  - "O(step=fileset) drills a file-backup set (configuration, certificates, keys) in one call: the newest archive
    of O(fileset) in O(backup_dir) is restored into O(scratch_root) (new or empty, 0700), every member the
    manifest lists is compared (type, SHA-256 and size, mode, owner and group when run as root, symlink target),
    every certificate must parse and every private key must match a certificate of the set, then
    O(check_command) runs on the restored tree; O(scratch_root) is removed afterwards whatever happened.
    An archive without a single regular file (directories or links only: the set's paths were empty or missing
    when it was taken) fails the integrity step, since a recovery from it restores nothing.
    What the backup could not archive (its manifest's C(not_archived) - FIFOs, sockets, files that changed while
    they were read) is listed in the integrity step's C(warnings), which the drill report shows.
    RV(steps) holds the timed steps (find_backup, restore, integrity, smoke, cleanup) for
    M(opsready.operations.drill_report)."
  - The task fails when the step failed; the result still carries RV(started), RV(finished) and RV(error).
author: opsready developers (@opsready)
options:
  step:
    description: Which step to run.
    type: str
    required: true
    choices: [guard, mark, integrity, smoke, freshness, fileset]
  engine:
    description:
      - Engine of the scratch target. SQL Server (DBCC CHECKDB) is not implemented yet.
      - Required for O(step=guard), O(step=mark), O(step=integrity), O(step=smoke) and O(step=freshness).
    type: str
    choices: [postgresql, mariadb, mysql, sqlite]
  database:
    description:
      - The scratch database name (SQLite, the path of the restored file).
      - Required for O(step=integrity), O(step=smoke) and O(step=freshness); O(step=guard) and O(step=mark) take it
        or O(datadir).
    type: str
  datadir:
    description:
      - O(step=guard) and O(step=mark) only. The scratch data directory of a PostgreSQL point-in-time drill
        (M(opsready.operations.db_restore) O(opsready.operations.db_restore#module:datadir)).
    type: path
  backup_dir:
    description:
      - O(step=fileset) only. The catalog the set was archived into (M(opsready.operations.file_backup) C(dest)).
    type: path
  fileset:
    description: O(step=fileset) only. The set's name (M(opsready.operations.file_backup) C(name)).
    type: str
  origin:
    description:
      - O(step=fileset) only. Which host's archives when several hosts write the set into one shared
        O(backup_dir) (the manifests' C(origin), a host name); without it such a set fails naming them.
    type: str
  scratch_root:
    description:
      - O(step=fileset) only. Directory the set is restored under (as under C(/)); it must not exist or be empty,
        and is removed after the drill.
      - Every directory above it must be one only root (the task's user) can change; a directory of root's inside
        the sticky C(/var/tmp) is fine. A scratch root below a directory another account owns or can write (for
        example a C(/var/tmp/opsready-drill) that account created first) is refused before anything is created,
        since that account could swap it for a link and have root restore the set into, or chmod, another directory.
    type: path
  check_command:
    description:
      - O(step=fileset) only. A command that checks the restored tree, run without a shell; C({root}) in it is
        replaced by O(scratch_root), e.g. C(haproxy -c -f {root}/etc/haproxy/haproxy.cfg) or
        C(nginx -t -c {root}/etc/nginx/nginx.conf). A string is split like a shell would (quotes), a list is
        taken as the arguments.
      - A non-zero exit fails the drill; its output (the last 8000 characters) is in the step's C(details).
    type: raw
  check_timeout:
    description: O(step=fileset) only. Seconds O(check_command) may run.
    type: int
    default: 300
  identity:
    description: O(step=fileset) only. age identity (private key text) for an encrypted set.
    type: str
  identity_file:
    description:
      - O(step=fileset) only. age identity file (age-keygen output) on the drill target for an encrypted set.
    type: path
  source:
    description:
      - "The production database the backup came from. The step refuses to run when O(database) is this name:
        a drill works on a scratch copy, never on the database it protects. For SQLite the paths are resolved
        (C(.), C(..), symbolic links) and a hard link to the source counts as the source."
    type: str
  backup:
    description:
      - "O(step=integrity) only. The backup artifact (or its manifest) the scratch target was restored from. The
        restored tables and rows are then compared with what the source held when that backup was taken (the
        manifest's C(source) summary). SQLite must match table for table and row for row; PostgreSQL and
        MariaDB/MySQL fail when the restored target has no tables or no rows where the source had them."
      - Leave unset for a chain with logs replayed (the target then holds more, or less, than the full did).
    type: path
  query:
    description:
      - O(step=freshness) only, and required there. A read-only query whose first column of the first row is the
        newest committed time the restored copy holds, e.g. C(SELECT max(created_at) FROM orders). MariaDB/MySQL
        run it in a session whose C(time_zone) is C(+00:00), so a C(TIMESTAMP) prints in UTC whatever the server's
        zone; a C(DATETIME) prints as stored (its zone is O(timezone)). C(UNIX_TIMESTAMP(max(created_at))) is
        exact either way.
    type: str
  timezone:
    description:
      - O(step=freshness) only. The zone (an IANA name such as V(Europe/Berlin), or V(UTC)) of an answer of O(query)
        that carries none (a C(timestamp without time zone) or C(DATETIME) column of local times; not a MariaDB/MySQL
        C(TIMESTAMP), which O(query) returns in UTC). Daylight saving
        time is applied; of the two instants a local time names when the clocks go back, the earlier is taken (the
        larger RPO).
      - Unset, such an answer is read as UTC and RV(drill_warnings) says so - a local time east of UTC read as UTC
        understates the RPO by the offset.
    type: str
    version_added: 0.2.0
  level:
    description:
      - O(step=integrity) only. V(extended) adds C(--parent-check) (PostgreSQL) or C(--extended) (MariaDB), slower.
    type: str
    choices: [standard, extended]
    default: standard
  queries:
    description: O(step=smoke) only. The smoke queries. Required for O(step=smoke).
    type: list
    elements: dict
    suboptions:
      name:
        description: Label shown in the report.
        type: str
      sql:
        description:
          - A read-only query.
          - PostgreSQL runs it under the scratch database's own C(search_path), as the application would (the
            drill's own catalog queries are pinned to C(pg_catalog)). Where others may create objects in a schema
            that path lists before C(pg_catalog), schema-qualify the query or run the drill with a login that is
            no superuser, since their functions of the same names would run as that login (CVE-2018-1058).
        type: str
        required: true
      expect:
        description:
          - "What the result must satisfy: C(rows_at_least), C(rows_at_most) (row count); C(value_at_least),
            C(value_at_most), C(value_equals) (first column of the first row); C(jmespath) (an expression on the
            rows, a list of column-to-value dicts, that must be true)."
          - "Without any of them the query must return at least one row (C(rows_at_least: 1)), so a query that
            states nothing does not pass on an empty restored table; give C(rows_at_most: 0) to expect none.
            C(rows_at_least) 0 alone holds for any answer: the query passes and RV(drill_warnings) says so."
        type: dict
extends_documentation_fragment:
  - opsready.operations.db_connection
  - opsready.operations.check_mode
notes:
  - In check mode the step does nothing (there is no restored target to check) and reports it was skipped.
  - The step never changes data kept after the drill, so C(changed) is false (PostgreSQL may install
    the C(amcheck) extension into the scratch database, which the drill drops); O(step=mark) reports a change
    when it marked the scratch target.
seealso:
  - module: opsready.operations.db_restore
  - module: opsready.operations.drill_report
'''

EXAMPLES = r'''
- name: Refuse a scratch database the drill did not create (before the restore)
  opsready.operations.drill_step:
    step: guard
    engine: postgresql
    database: app_drill
    source: app
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_password }}"

- name: Mark the restored scratch database as the drill's (after the restore)
  opsready.operations.drill_step:
    step: mark
    engine: postgresql
    database: app_drill
    source: app
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_password }}"

- name: Integrity check of the restored scratch database
  opsready.operations.drill_step:
    step: integrity
    engine: postgresql
    database: app_drill
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_password }}"

- name: Smoke queries
  opsready.operations.drill_step:
    step: smoke
    engine: sqlite
    database: /var/tmp/drill/app.sqlite
    queries:
      - name: customers are there
        sql: SELECT count(*) FROM customers
        expect: {value_at_least: 1000}
      - name: yesterday's orders were paid
        sql: SELECT status, count(*) AS n FROM orders GROUP BY status
        expect: {jmespath: "length([?status=='paid']) > `0`"}

- name: Read the newest committed data the restored copy holds (the drill's RPO is measured from it)
  opsready.operations.drill_step:
    step: freshness
    engine: sqlite
    database: /var/tmp/drill/app.sqlite
    query: SELECT max(created_at) FROM orders

- name: Drill the proxy configuration set - restore, prove every file, run haproxy -c on it
  opsready.operations.drill_step:
    step: fileset
    backup_dir: /var/backups/opsready/files
    fileset: haproxy
    scratch_root: /var/tmp/opsready-drill/haproxy
    check_command: haproxy -c -f {root}/etc/haproxy/haproxy.cfg
  register: proxy_drill

- name: Check a restored MariaDB scratch database
  opsready.operations.drill_step:
    step: integrity
    engine: mariadb
    database: shop_drill
    source: shop
    level: extended
    login_unix_socket: /run/mysqld/mysqld.sock
'''

RETURN = r'''
name:
  description: The step (as in O(step)).
  returned: always
  type: str
  sample: integrity
started:
  description: When the step started (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-11-29T10:15:00.123456Z"
finished:
  description: When the step ended (UTC, ISO 8601).
  returned: always
  type: str
seconds:
  description: Duration of the step.
  returned: always
  type: float
  sample: 1.234
ok:
  description: Whether the step passed.
  returned: always
  type: bool
result:
  description: One-line outcome for the report.
  returned: always
  type: str
  sample: "pg_amcheck --heapallindexed: ok"
error:
  description: Why the step failed (null when it passed).
  returned: always
  type: str
details:
  description:
    - Step specifics (integrity tool and problems found; each smoke query with its rows and reasons).
    - O(step=freshness) - C(newest), the newest committed time read from the restored copy (UTC, ISO 8601), and
      C(sql).
  returned: always
  type: dict
steps:
  description:
    - O(step=fileset) only. The timed steps (find_backup, restore, integrity, smoke, cleanup), each with name,
      started, finished, seconds, ok, result, error and details (integrity - members checked, certificates and
      keys found, problems; smoke - argv, exit code, output).
  returned: when O(step=fileset)
  type: list
  elements: dict
backup:
  description: O(step=fileset) only. The archive drilled (id, path, recoverable_until, encrypted).
  returned: when O(step=fileset)
  type: dict
drill_warnings:
  description:
    - "What the step could not check although it passed, e.g. V(pg_amcheck is not installed, so only a full read of
      every table ran: indexes not checked). The role puts them in the drill report as the step's C(warnings)."
  returned: always
  type: list
  elements: str
tool_versions:
  description: Versions of the client tools used.
  returned: always
  type: dict
'''

import time

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.drill import scratch, steps
from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import guard_scratch
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    connection_from_params, db_connection_argument_spec, db_connection_mutually_exclusive)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import (
    DRILL_ENGINES, get_drill_client)


def main():
    argument_spec = db_connection_argument_spec()
    argument_spec.update(
        step=dict(type='str', required=True, choices=['guard', 'mark', 'integrity', 'smoke', 'freshness', 'fileset']),
        engine=dict(type='str', choices=list(DRILL_ENGINES)),
        database=dict(type='str'),
        datadir=dict(type='path'),
        source=dict(type='str'),
        backup=dict(type='path'),
        level=dict(type='str', choices=['standard', 'extended'], default='standard'),
        queries=dict(type='list', elements='dict', options=dict(
            name=dict(type='str'),
            sql=dict(type='str', required=True),
            expect=dict(type='dict'),
        )),
        query=dict(type='str'),
        timezone=dict(type='str'),
        backup_dir=dict(type='path'),
        fileset=dict(type='str'),
        origin=dict(type='str'),
        scratch_root=dict(type='path'),
        check_command=dict(type='raw'),
        check_timeout=dict(type='int', default=300),
        identity=dict(type='str', no_log=True),
        identity_file=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=db_connection_mutually_exclusive(),
                           required_if=[('step', 'smoke', ['queries', 'engine', 'database']),
                                        ('step', 'integrity', ['engine', 'database']),
                                        ('step', 'freshness', ['query', 'engine', 'database']),
                                        ('step', 'guard', ['engine']),
                                        ('step', 'guard', ['database', 'datadir'], True),
                                        ('step', 'mark', ['engine']),
                                        ('step', 'mark', ['database', 'datadir'], True),
                                        ('step', 'fileset', ['backup_dir', 'fileset', 'scratch_root'])],
                           supports_check_mode=True)
    no_path_info(module)
    p = module.params
    now = isoformat(utcnow())
    result = dict(changed=False, name=p['step'], started=now, finished=now, seconds=0.0, ok=False, result=None,
                  error=None, details={}, tool_versions={}, drill_warnings=[])
    if p['step'] == 'fileset':
        fileset_step(module, result)
    try:
        if p['step'] in ('guard', 'mark'):
            ownership_step(module, result)
        guard_scratch(p['database'], p['source'], p['engine'])
        client = get_drill_client(p['engine'], connection_from_params(p))
        result['tool_versions'] = client.versions()
        if module.check_mode:
            result.update(ok=True, result='skipped in check mode (nothing was restored)')
            module.exit_json(**result)
        if p['step'] == 'integrity':
            step = steps.integrity(client, p['database'], p['level'], backup=p['backup'])
        elif p['step'] == 'freshness':
            step = steps.freshness(client, p['database'], p['query'], p['timezone'])
        else:
            step = steps.smoke(client, p['database'], p['queries'])
    except OpsReadyError as exc:
        result['error'] = exc.message
        module.fail_json(msg=exc.message, **{k: v for k, v in result.items() if k != 'msg'})
    # Ansible moves a result's ``warnings`` out of what the role registers: they travel as ``drill_warnings``.
    result['drill_warnings'] = step.pop('warnings', [])
    for warning in result['drill_warnings']:
        module.warn('%s: %s' % (p['step'], warning))
    result.update(step)
    if not step['ok']:
        module.fail_json(msg='DR drill step %s failed on %s: %s' % (p['step'], p['database'], step['error']), **result)
    module.exit_json(**result)


def ownership_step(module, result):
    """guard: may the drill restore into (and later drop) the scratch target; mark: it is the drill's now."""
    p = module.params
    target = p['datadir'] or p['database']
    if p['step'] == 'guard':  # read-only: runs in check mode too
        if p['datadir']:
            result['details'] = scratch.guard_datadir(p['datadir'])
        else:
            guard_scratch(p['database'], p['source'], p['engine'])
            if p['engine'] == 'sqlite':
                result['details'] = scratch.guard_sqlite(p['database'])
            else:
                client = get_drill_client(p['engine'], connection_from_params(p))
                result['details'] = scratch.guard_database(client.scratch_state(p['database']), p['database'],
                                                           p['source'])
        details = result['details']
        result.update(ok=True, result='the scratch target %s is %s' % (
            target, "a leftover of a drill (marked): it is replaced" if details.get('exists') and details.get('marked')
            else 'absent: the drill creates it' if p['engine'] == 'sqlite' and not p['datadir']
            else 'empty: the drill restores into it' if details.get('exists')
            else 'absent: the drill creates it'))
        module.exit_json(**result)
    if module.check_mode:
        result.update(ok=True, result='not marked (check mode)')
        module.exit_json(**result)
    source = p['source'] or ''
    if p['datadir']:
        result['details'] = scratch.mark_datadir(p['datadir'], source)
    elif p['engine'] == 'sqlite':
        guard_scratch(p['database'], p['source'], p['engine'])
        result['details'] = scratch.mark_sqlite(p['database'], source)
    else:
        guard_scratch(p['database'], p['source'], p['engine'])
        client = get_drill_client(p['engine'], connection_from_params(p))
        result['details'] = client.mark_scratch(p['database'], scratch.mark_text(source))
    unmarked = result['details'].get('not_marked')
    if unmarked:
        result['drill_warnings'] = ['the scratch target %s is not marked as the drill\'s: %s; an interrupted '
                                    'drill\'s leftover is then refused by the next drill' % (target, unmarked)]
    result.update(ok=True, changed=not unmarked, result='%s %s as the drill\'s scratch target'
                  % (target, 'not marked' if unmarked else 'marked'))
    module.exit_json(**result)


def fileset_step(module, result):
    """step=fileset: the whole file-set drill (restore, prove, check, clean up); exits the module."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.encryption import load_identities
    from ansible_collections.opsready.operations.plugins.module_utils.drill.fileset import check_argv, drill_fileset
    p = module.params
    if p['check_timeout'] < 1:
        module.fail_json(msg='check_timeout must be 1 or more seconds.', **result)
    result.update(steps=[], backup={})
    try:
        if p['check_command'] is not None:
            if not isinstance(p['check_command'], (str, list)):
                raise OpsReadyError('check_command must be a string or a list of arguments.')
            check_argv(p['check_command'], p['scratch_root'])  # an empty or unparsable command fails before work
        identities = load_identities(p['identity'], p['identity_file'])
    except (OpsReadyError, ValueError) as exc:
        message = getattr(exc, 'message', None) or 'check_command cannot be split: %s.' % exc
        module.fail_json(msg=message, **dict(result, error=message))
    if module.check_mode:
        result.update(ok=True, result='skipped in check mode (nothing was restored)')
        module.exit_json(**result)
    started = time.monotonic()
    drilled = drill_fileset(p['backup_dir'], p['fileset'], p['scratch_root'], p['check_command'], p['check_timeout'],
                            identities, origin=p['origin'])
    result.update(steps=drilled['steps'], backup=drilled['backup'], ok=drilled['ok'], error=drilled['error'],
                  finished=isoformat(utcnow()), seconds=round(time.monotonic() - started, 3),
                  details={'steps': {s['name']: s['details'] for s in drilled['steps']}},
                  result='; '.join('%s: %s' % (s['name'], s['result']) for s in drilled['steps'] if s['ok']))
    if not drilled['ok']:
        module.fail_json(msg='DR drill of file set %s failed: %s' % (p['fileset'], drilled['error']), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
