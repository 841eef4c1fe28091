#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_maintenance
short_description: Statistics, vacuum, index rebuilds and batched row clean-up (PostgreSQL, MariaDB, SQLite, SQL Server)
version_added: 0.1.0
description:
  - Runs the maintenance tasks listed in O(tasks), always in the order V(cleanup), V(vacuum), V(analyze),
    V(reindex), V(optimize), each planned against the state the previous one left. Every task measures each
    table or index first and only acts on those that are due, so a second run with nothing due reports
    C(changed=false); O(force) acts on every selected object.
  - "V(cleanup): delete rows older than O(cleanup[].older_than_days) days from named tables, in batches of
    O(cleanup[].batch_size) rows, each batch its own short transaction with O(lock_timeout), so locks stay
    bounded and other writers keep going. The cut-off is computed once by the database server at the start.
    Check mode counts the rows that would be removed and deletes nothing."
  - "V(vacuum): PostgreSQL C(VACUUM (ANALYZE)) of tables whose dead tuples exceed O(vacuum_threshold) percent;
    SQLite C(VACUUM) when free pages exceed it (refused when the file system has no room for the copy)."
  - "V(analyze): statistics where stale. PostgreSQL C(ANALYZE) (never analyzed, or C(n_mod_since_analyze) above
    O(analyze_threshold) percent of the live rows); MariaDB/MySQL C(ANALYZE TABLE) (InnoDB: no persistent
    statistics yet, or modified since their C(last_update)); SQLite C(ANALYZE) (no C(sqlite_stat1) rows, or
    the row count moved more than O(analyze_threshold) percent from the recorded one); SQL Server
    C(UPDATE STATISTICS ... WITH FULLSCAN) (modifications since the last update)."
  - "V(reindex): PostgreSQL C(REINDEX INDEX CONCURRENTLY) of B-tree indexes whose bloat exceeds
    O(bloat_threshold) percent (measured with C(pgstatindex()) when the pgstattuple extension is installed in
    the database, otherwise estimated from C(pg_class) and C(pg_stats), see O(bloat_method)); an invalid
    C(_ccnew) index left by a failed rebuild is dropped before the failure is reported. SQL Server
    C(ALTER INDEX ... REBUILD) at O(rebuild_threshold) percent fragmentation or more, C(REORGANIZE) at
    O(reorganize_threshold) or more, from C(sys.dm_db_index_physical_stats)."
  - "V(optimize): MariaDB/MySQL C(OPTIMIZE TABLE) (InnoDB: online rebuild) when
    C(DATA_FREE/(DATA_LENGTH+INDEX_LENGTH+DATA_FREE)) exceeds O(fragmentation_threshold) percent; SQLite
    C(PRAGMA optimize) when its dry run lists something to do."
  - "SQL Server goes through pyodbc and is B(not run against a live server): its statements and decisions are
    tested against a recording fake only."
  - Table and column names are used as written, case kept (C(Order Items), C(MixedCase), non-ASCII, quotes);
    they are checked against the catalog and always quoted by the engine's quoting helper, never interpolated
    raw. A part holding a dot is written in double quotes, an embedded double quote doubled, as in
    C(sales."v1.2 totals"). A name the server would cut (PostgreSQL over 63 bytes) is refused.
author: opsready developers (@opsready)
options:
  engine:
    description: The database engine. V(mariadb) and V(mysql) share one implementation (the name picks the client).
    type: str
    required: true
    choices: [postgresql, mariadb, mysql, sqlite, sqlserver]
  database:
    description: The database to maintain; for SQLite the path of the database file.
    type: str
    required: true
  tasks:
    description:
      - What to do. They run in the fixed order V(cleanup), V(vacuum), V(analyze), V(reindex), V(optimize)
        whatever the order given.
      - "Per engine: PostgreSQL V(cleanup), V(vacuum), V(analyze), V(reindex); MariaDB/MySQL V(cleanup),
        V(analyze), V(optimize); SQLite V(cleanup), V(vacuum), V(analyze), V(optimize); SQL Server V(cleanup),
        V(analyze), V(reindex). A task the engine does not have fails the module before anything runs."
    type: list
    elements: str
    choices: [cleanup, vacuum, analyze, reindex, optimize]
    default: [analyze]
  tables:
    description:
      - Tables the V(vacuum), V(analyze), V(reindex) and V(optimize) tasks work on (C(table) or
        C(schema.table); the schema defaults to C(public) for PostgreSQL and C(dbo) for SQL Server). Unset
        means every user table. A name that does not exist fails the module before anything runs.
    type: list
    elements: str
    default: []
  exclude_tables:
    description: Tables left out of O(tables) (or of all tables).
    type: list
    elements: str
    default: []
  force:
    description: Act on every selected table/index, due or not (thresholds are still measured and reported).
    type: bool
    default: false
  vacuum_threshold:
    description: Percent of dead tuples (PostgreSQL) or free pages (SQLite) above which V(vacuum) runs.
    type: float
    default: 10
  analyze_threshold:
    description:
      - Percent of rows modified since the last statistics update above which V(analyze) runs (PostgreSQL,
        SQLite row-count drift, SQL Server). The default 0 means any modification. MariaDB compares times
        instead (see the description).
    type: float
    default: 0
  bloat_threshold:
    description: Percent of bloat above which a PostgreSQL index is rebuilt by V(reindex).
    type: float
    default: 30
  bloat_method:
    description:
      - How PostgreSQL index bloat is measured. V(pgstattuple) reads every index page with C(pgstatindex())
        (exact, needs the extension installed in the database, fails otherwise). V(estimate) compares the
        index size with what a fresh B-tree of C(reltuples) keys of C(pg_stats.avg_width) bytes needs
        (cheap, needs fresh statistics, cannot measure expression indexes, and deduplicated indexes read as
        less bloated). V(auto) uses pgstattuple when installed, else the estimate.
    type: str
    choices: [auto, pgstattuple, estimate]
    default: auto
  min_size_mb:
    description: Indexes (PostgreSQL, SQL Server) and tables (MariaDB V(optimize)) smaller than this are never rebuilt.
    type: float
    default: 8
  fragmentation_threshold:
    description: MariaDB/MySQL percent of free space above which V(optimize) runs C(OPTIMIZE TABLE).
    type: float
    default: 20
  reorganize_threshold:
    description: SQL Server fragmentation percent from which an index is reorganized.
    type: float
    default: 5
  rebuild_threshold:
    description: SQL Server fragmentation percent from which an index is rebuilt instead of reorganized.
    type: float
    default: 30
  online_rebuild:
    description: SQL Server C(REBUILD WITH (ONLINE = ON)) (Enterprise/Developer, Azure SQL; refused on other editions).
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds any statement waits for a lock before that object is given up (PostgreSQL C(lock_timeout),
        MariaDB C(lock_wait_timeout)/C(innodb_lock_wait_timeout), SQLite busy timeout, SQL Server
        C(SET LOCK_TIMEOUT)). A timed-out object is reported in RV(failures), the rest still runs, and the
        task fails at the end.
    type: int
    default: 10
  statement_timeout:
    description: Seconds a single statement may run (0, no limit). PostgreSQL, MariaDB and SQL Server.
    type: int
    default: 0
  cleanup:
    description: The clean-up rules for the V(cleanup) task (required when it is listed, refused otherwise).
    type: list
    elements: dict
    default: []
    suboptions:
      table:
        description: Table to delete from (C(table) or C(schema.table)).
        type: str
        required: true
      column:
        description: The column holding each row's time.
        type: str
        required: true
      older_than_days:
        description: Rows whose O(cleanup[].column) is more than this many days before the server's now are deleted.
        type: int
        required: true
      column_format:
        description:
          - V(timestamp) for date/time columns (SQLite text as understood by C(datetime()), in UTC; values
            it cannot parse are never deleted), V(epoch) for Unix seconds, V(epoch_ms) for milliseconds.
        type: str
        choices: [timestamp, epoch, epoch_ms]
        default: timestamp
      batch_size:
        description: Rows per batch (one transaction each). Keep it under 5000 on SQL Server (lock escalation).
        type: int
        default: 1000
      max_batches:
        description: Stop after this many batches (0, no limit); RV(cleanup[].rows_left) then tells what remains.
        type: int
        default: 0
      pause:
        description: Seconds to sleep between batches (gives replicas and other writers room).
        type: float
        default: 0
extends_documentation_fragment:
  - opsready.operations.db_connection
notes:
  - Supports check mode (the plan, with the measurements, and the row counts clean-up would remove) and diff
    (the statements that ran or would run, and the clean-up counts).
  - Connection options are ignored for SQLite.
requirements:
  - PostgreSQL C(psql), the MariaDB/MySQL client, or pyodbc with the Microsoft ODBC driver for SQL Server, on
    the managed host.
seealso:
  - module: opsready.operations.db_backup
'''

EXAMPLES = r'''
- name: Nightly PostgreSQL maintenance - purge old events, vacuum, statistics, rebuild bloated indexes
  opsready.operations.db_maintenance:
    engine: postgresql
    database: shop
    login_host: db1.example.com
    login_user: maintenance
    login_password: "{{ vault_pg_password }}"
    tasks: [cleanup, vacuum, analyze, reindex]
    cleanup:
      - table: public.events
        column: created_at
        older_than_days: 90
        batch_size: 5000
        pause: 0.2
    bloat_threshold: 40

- name: MariaDB statistics and OPTIMIZE of fragmented tables
  opsready.operations.db_maintenance:
    engine: mariadb
    database: shop
    login_unix_socket: /run/mysqld/mysqld.sock
    tasks: [analyze, optimize]
    fragmentation_threshold: 25

- name: SQLite ANALYZE, VACUUM and PRAGMA optimize
  opsready.operations.db_maintenance:
    engine: sqlite
    database: /var/lib/app/app.db
    tasks: [vacuum, analyze, optimize]

- name: How many rows would the purge remove? (changes nothing)
  opsready.operations.db_maintenance:
    engine: postgresql
    database: shop
    tasks: [cleanup]
    cleanup:
      - {table: audit_log, column: ts, older_than_days: 365}
  check_mode: true
  register: purge_plan
'''

RETURN = r'''
engine:
  description: The engine.
  type: str
  returned: always
database:
  description: The database (SQLite, the absolute path).
  type: str
  returned: always
server_version:
  description: The server's version (SQLite library version).
  type: str
  returned: always
tasks:
  description: The tasks in the order they ran.
  type: list
  elements: str
  returned: always
actions:
  description:
    - One entry per object a task acted on (or, in check mode, would act on), in order.
    - C(status) is V(done), V(unchanged) (the server said there was nothing to do), V(failed) or V(planned).
  type: list
  elements: dict
  returned: always
  sample:
    - task: reindex
      object: public.orders_customer_idx
      reason: bloat 71.2% (pgstattuple, threshold 30.0%)
      statement: REINDEX INDEX CONCURRENTLY "public"."orders_customer_idx"
      before: {size: 22487040, bloat_percent: 71.2, bloat_method: pgstattuple}
      after: {size: 6479872, bloat_percent: 0.0, bloat_method: pgstattuple}
      status: done
      duration_seconds: 1.93
not_due:
  description: Objects a task measured and left alone, with the reason and the measurement.
  type: list
  elements: dict
  returned: always
cleanup:
  description: One entry per clean-up rule.
  type: list
  elements: dict
  returned: always
  contains:
    table:
      description: The table.
      type: str
    cutoff:
      description: The server time rows older than which were deleted (or epoch number).
      type: str
    rows_removed:
      description: Rows deleted (0 in check mode).
      type: int
    rows_to_remove:
      description: Check mode only, the rows that would be deleted.
      type: int
    batches:
      description: Batches (transactions) used.
      type: int
    rows_left:
      description: When O(cleanup[].max_batches) stopped the rule, the rows older than the cut-off still there.
      type: int
    error:
      description: Why the rule stopped early (the batches before were committed).
      type: str
rows_removed:
  description: Rows deleted per table.
  type: dict
  returned: always
  sample: {public.events: 120000}
rows_to_remove:
  description: Check mode, rows that would be deleted per table.
  type: dict
  returned: always
failures:
  description: Objects whose step failed (lock timeout, server error); the module fails when this is not empty.
  type: list
  elements: dict
  returned: always
'''

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    connection_from_params, db_connection_argument_spec, db_connection_mutually_exclusive)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import ENGINES, get_maintenance
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import (
    COLUMN_FORMATS, TASK_ORDER, CleanupSpec, MaintenanceOptions, diff_for, run_maintenance)

CLEANUP_SPEC = dict(
    table=dict(type='str', required=True),
    column=dict(type='str', required=True),
    older_than_days=dict(type='int', required=True),
    column_format=dict(type='str', choices=list(COLUMN_FORMATS), default='timestamp'),
    batch_size=dict(type='int', default=1000),
    max_batches=dict(type='int', default=0),
    pause=dict(type='float', default=0),
)


def main():
    argument_spec = db_connection_argument_spec()
    argument_spec.update(
        engine=dict(type='str', required=True, choices=list(ENGINES)),
        database=dict(type='str', required=True),
        tasks=dict(type='list', elements='str', choices=list(TASK_ORDER), default=['analyze']),
        tables=dict(type='list', elements='str', default=[]),
        exclude_tables=dict(type='list', elements='str', default=[]),
        force=dict(type='bool', default=False),
        vacuum_threshold=dict(type='float', default=10),
        analyze_threshold=dict(type='float', default=0),
        bloat_threshold=dict(type='float', default=30),
        bloat_method=dict(type='str', choices=['auto', 'pgstattuple', 'estimate'], default='auto'),
        min_size_mb=dict(type='float', default=8),
        fragmentation_threshold=dict(type='float', default=20),
        reorganize_threshold=dict(type='float', default=5),
        rebuild_threshold=dict(type='float', default=30),
        online_rebuild=dict(type='bool', default=False),
        lock_timeout=dict(type='int', default=10),
        statement_timeout=dict(type='int', default=0),
        cleanup=dict(type='list', elements='dict', options=CLEANUP_SPEC, default=[]),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=db_connection_mutually_exclusive(),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    for option in ('vacuum_threshold', 'analyze_threshold', 'bloat_threshold', 'min_size_mb',
                   'fragmentation_threshold', 'reorganize_threshold', 'rebuild_threshold', 'statement_timeout'):
        if p[option] < 0:
            module.fail_json(msg='%s must be 0 or more, not %s.' % (option, p[option]))
    if p['lock_timeout'] < 1:
        module.fail_json(msg='lock_timeout must be 1 second or more, not %d.' % p['lock_timeout'])
    if p['reorganize_threshold'] > p['rebuild_threshold']:
        module.fail_json(msg='reorganize_threshold (%s) must not exceed rebuild_threshold (%s).'
                         % (p['reorganize_threshold'], p['rebuild_threshold']))
    try:
        default_schema = {'postgresql': 'public', 'sqlserver': 'dbo'}.get(p['engine'])
        opts = MaintenanceOptions(
            tasks=p['tasks'], tables=p['tables'], exclude_tables=p['exclude_tables'], force=p['force'],
            vacuum_threshold=p['vacuum_threshold'], analyze_threshold=p['analyze_threshold'],
            bloat_threshold=p['bloat_threshold'], bloat_method=p['bloat_method'], min_size_mb=p['min_size_mb'],
            fragmentation_threshold=p['fragmentation_threshold'], reorganize_threshold=p['reorganize_threshold'],
            rebuild_threshold=p['rebuild_threshold'], online_rebuild=p['online_rebuild'],
            lock_timeout=p['lock_timeout'], statement_timeout=p['statement_timeout'],
            cleanup=[CleanupSpec.from_dict(item, default_schema) for item in p['cleanup']],
        )
        if p['engine'] == 'sqlserver':
            from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.maintenance import (
                HAS_PYODBC, PYODBC_IMPORT_ERROR)
            if not HAS_PYODBC:
                from ansible.module_utils.basic import missing_required_lib
                module.fail_json(msg=missing_required_lib('pyodbc'), exception=PYODBC_IMPORT_ERROR)
        backend = get_maintenance(p['engine'], p['database'], opts, connection_from_params(p))
        result = run_maintenance(backend, opts, check_mode=module.check_mode)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    if module._diff and result['changed']:
        result['diff'] = diff_for(result)
    if result['failures']:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
