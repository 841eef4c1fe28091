#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_insights
short_description: Database insights (connections, lock waits, deadlocks, slow statements) with verdicts and metrics
version_added: 0.2.0
description:
  - Reads what a database server says about its load and contention and judges it against thresholds, like
    M(opsready.operations.health_check) does for a host. Read-only on the server.
  - "PostgreSQL: connections against C(max_connections) (per database, user and state); sessions waiting for a
    lock with the sessions blocking them (pid, user, state, statement, transaction age); deadlocks since the
    previous run; the oldest transaction and the longest idle in transaction; WAL retained by replication
    slots; the buffer cache hit ratio; an estimate of the bloat of the largest tables; the top statements by
    total and by mean time from C(pg_stat_statements) when it is loaded (otherwise the result says how to
    enable it)."
  - "MariaDB/MySQL: C(Threads_connected) against C(max_connections); InnoDB row lock waits with the blocking
    transaction; deadlocks (C(Innodb_deadlocks)) with the latest one from C(SHOW ENGINE INNODB STATUS); the
    buffer pool hit ratio; top statements from C(performance_schema) digests; a slow query log summary
    (C(mysql.slow_log), or the log file when it is readable on the managed host)."
  - "SQL Server: top statements from C(sys.dm_exec_query_stats) (by mean time, as the operations document's
    slow-query query, and by total time), blocking from C(sys.dm_exec_requests), C(sys.dm_os_wait_stats),
    sessions against C(@@MAX_CONNECTIONS), deadlocks and the buffer cache hit ratio from the performance
    counters. B(Not verified against a live SQL Server): tested against a recording fake of pyodbc only."
  - Server counters only grow; with O(history_path) each run records them in the host's health history and the
    next run reports what they did in between (deadlocks since the previous run, the interval's cache hit ratio,
    per-second rates).
author: opsready developers (@opsready)
options:
  engine:
    description: The database engine. V(mariadb) and V(mysql) share one implementation (the name picks the sources).
    type: str
    required: true
    choices: [postgresql, mariadb, mysql, sqlserver]
  database:
    description:
      - The database to connect to. PostgreSQL reads table bloat of this database, and C(pg_stat_statements)
        through it (the extension must be created there). Default C(postgres) for PostgreSQL.
    type: str
  top:
    description: Statements listed by total and by mean time (and slow log entries).
    type: int
    default: 10
  bloat_tables:
    description: PostgreSQL. The largest tables whose bloat is estimated.
    type: int
    default: 10
  thresholds:
    description:
      - 'Warning and critical levels, each C({warning: W, critical: C}) (either V(null) to switch it off) or a
        bare number meaning the critical level. A level is reached at or above it (at or below it for
        C(cache_hit_percent)).'
      - Keys and defaults (warning/critical) C(connections_percent) 80/90, C(lock_wait_seconds) 10/120,
        C(deadlocks) 1/- (since the previous run), C(transaction_seconds) 600/3600, C(idle_in_transaction_seconds)
        60/600, C(replication_slot_retained_mb) 1024/10240, C(cache_hit_percent) 95/90 (judged past 10000 block
        accesses), C(bloat_percent) 50/- (tables of 16 MiB or more), C(statement_mean_ms) -/-,
        C(slow_queries_per_minute) -/-.
    type: dict
    default: {}
  fail_on:
    description: Fail the task when the verdict is at least this severe; V(never) only reports.
    type: str
    choices: [critical, warning, never]
    default: never
  history_path:
    description:
      - The host's health history (JSON lines, as M(opsready.operations.health_check) writes it). The previous
        sample of this server is read from it and this run's counters are appended (not in check mode).
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
  history_max_entries:
    description: Keep at most this many lines (plus 10 %) in O(history_path).
    type: int
    default: 10000
  host_label:
    description: Host name recorded in the history. Defaults to the host's node name.
    type: str
  textfile_path:
    description:
      - Write the insights as Prometheus metrics (C(opsready_db_*), see docs/metrics.md) to this C(.prom) file,
        atomically, for node_exporter's textfile collector (not in check mode).
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
extends_documentation_fragment:
  - opsready.operations.db_connection
  - opsready.operations.check_mode
notes:
  - Read-only on the database server. O(history_path) and O(textfile_path) are monitoring output, written in
    normal runs and not in check mode. As with M(opsready.operations.health_check), the task is C(changed) when
    one of them changes (a history line is appended on every run; the textfile when its content differs), and
    check mode predicts it; with C(--diff) the appended line and the textfile's old and new text are shown.
    Without either option the task is never C(changed).
  - The monitoring login needs to see other sessions. PostgreSQL, the C(pg_monitor) role (or superuser);
    MariaDB/MySQL, C(PROCESS) (C(SHOW ENGINE INNODB STATUS), other sessions' threads) and C(SELECT) on
    C(performance_schema) and C(mysql.slow_log); SQL Server, C(VIEW SERVER STATE).
  - Statement text appears in the result (the first 300 characters, as the server normalised it where it does)
    and never in metric labels.
seealso:
  - module: opsready.operations.health_check
'''

EXAMPLES = r'''
- name: PostgreSQL insights with the counters kept in the health history
  opsready.operations.db_insights:
    engine: postgresql
    login_host: 127.0.0.1
    login_user: monitor
    login_password: "{{ vault_monitor_password }}"
    database: app
    history_path: /var/lib/opsready/health-history.jsonl
    textfile_path: /var/lib/node_exporter/textfile/opsready_db.prom
    thresholds:
      connections_percent: {warning: 70, critical: 90}
      lock_wait_seconds: 30
  register: insights

- name: Fail the play when MariaDB is critical
  opsready.operations.db_insights:
    engine: mariadb
    login_unix_socket: /run/mysqld/mysqld.sock
    login_user: monitor
    login_option_file: /etc/opsready/monitor.cnf
    fail_on: critical
'''

RETURN = r'''
verdict:
  description: Worst severity of the findings, V(ok), V(warning) or V(critical).
  returned: always
  type: str
  sample: warning
findings:
  description: Threshold crossings, worst first (check, condition, value, threshold, severity, message).
  returned: always
  type: list
  elements: dict
  sample:
    - check: db_insights
      condition: lock_contention
      value: 42.5
      threshold: 10.0
      severity: warning
      message: "Longest lock wait is 42.5 s (warning at >= 10 s): 1 session(s) waiting; pid 4242 waits on ..."
insights:
  description:
    - The snapshot. C(connections), C(lock_waits) (each with its C(blockers)), C(deadlocks) (C(total),
      C(since_last_sample)), C(transactions), C(replication_slots), C(cache), C(bloat), C(statements)
      (C(enabled), C(how_to_enable), C(by_total_time), C(by_mean_time)), C(slow_log) (MariaDB/MySQL),
      C(waits) (SQL Server), C(counters) and C(since_previous) (deltas and rates).
  returned: always
  type: dict
  sample: {"connections": {"used": 18, "max": 20, "percent": 90.0}, "deadlocks": {"total": 3, "since_last_sample": 1}}
written:
  description: What was written (C(history), C(history_entries), C(textfile)); empty in check mode.
  returned: always
  type: dict
  sample: {"history": "/var/lib/opsready/health-history.jsonl", "history_entries": 120}
'''

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    connection_from_params, db_connection_argument_spec, db_connection_mutually_exclusive)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import (
    INSIGHTS_ENGINES, get_insights)
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.health import history, prometheus
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import RANK
from ansible_collections.opsready.operations.plugins.module_utils.insights import core, exposition, verdicts

FAIL_ON = ('critical', 'warning', 'never')


def main():
    argument_spec = db_connection_argument_spec()
    argument_spec.update(
        engine=dict(type='str', required=True, choices=list(INSIGHTS_ENGINES)),
        database=dict(type='str'),
        top=dict(type='int', default=10),
        bloat_tables=dict(type='int', default=10),
        thresholds=dict(type='dict', default={}),
        fail_on=dict(type='str', choices=list(FAIL_ON), default='never'),
        history_path=dict(type='path'),
        history_max_entries=dict(type='int', default=10000),
        host_label=dict(type='str'),
        textfile_path=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=db_connection_mutually_exclusive(),
                           supports_check_mode=True)
    no_path_info(module)
    p = module.params
    try:
        levels = verdicts.parse(p['thresholds'])
        options = core.Options(database=p['database'], top=p['top'], bloat_tables=p['bloat_tables'])
        options.validate()
        if p['history_max_entries'] < 2:
            raise OpsReadyError('history_max_entries must be 2 or more.')
        for option in ('history_path', 'textfile_path'):
            if p[option] and not os.path.isdir(os.path.dirname(os.path.abspath(p[option]))):
                raise OpsReadyError('%s: directory %s does not exist; create it first.'
                                    % (option, os.path.dirname(os.path.abspath(p[option]))))
            if p[option]:
                # Check mode too, before connecting: an account owning a directory above could link the
                # directory's name to a directory of root's, where root would create and replace the file.
                safeio.check_parents(os.path.dirname(os.path.abspath(p[option])), 'write monitoring output into',
                                     'The directory of %s' % option)
        if p['textfile_path'] and not p['textfile_path'].endswith('.prom'):
            raise OpsReadyError('textfile_path %s must end in .prom: node_exporter\'s textfile collector reads only '
                                '*.prom files.' % p['textfile_path'])
        collector = get_insights(p['engine'], connection_from_params(p))
        snap = core.run(collector, options, levels, 'db_insights', history_path=p['history_path'])
        # As health_check: changed when a file changes (a history line appended, the textfile's content differs),
        # predicted in check mode (nothing written), with the appended line and the textfile as the diff.
        written, changed, diffs = {}, False, []
        if p['textfile_path']:
            text = exposition.build([snap], time.time())
            before = prometheus.current(p['textfile_path'])
            if before != text:
                changed = True
                diffs.append({'before_header': p['textfile_path'], 'after_header': p['textfile_path'],
                              'before': before or '', 'after': text})
            if module.check_mode:
                prometheus.check_target(p['textfile_path'])   # the refusal the real run meets
            else:
                prometheus.write(p['textfile_path'], text)
                written['textfile'] = p['textfile_path']
        if p['history_path']:
            line = {'t': snap['timestamp'], 'host': p['host_label'] or os.uname()[1], 'verdict': snap['verdict'],
                    'db': core.history_counters([snap])}
            changed = True
            diffs.append({'before_header': p['history_path'], 'after_header': '%s (appended)' % p['history_path'],
                          'before': '', 'after': json.dumps(line, sort_keys=True) + '\n'})
            if not module.check_mode:
                written['history_entries'] = history.append(p['history_path'], line, p['history_max_entries'])
                written['history'] = p['history_path']
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='db_insights could not write its output: %s (%s).'
                         % (exc.strerror or exc, getattr(exc, 'filename', '') or ''))
    findings = snap.pop('findings')
    result = dict(changed=changed, verdict=snap['verdict'], findings=findings, insights=snap, written=written)
    if module._diff and diffs:
        result['diff'] = diffs
    if p['fail_on'] != 'never' and RANK[snap['verdict']] >= RANK[p['fail_on']]:
        worst = findings[0]['message'] if findings else ''
        module.fail_json(msg='Database insights verdict is %s (fail_on=%s): %s'
                         % (snap['verdict'], p['fail_on'], worst), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
