#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: health_check
short_description: Measure a host's health against thresholds and return a verdict with findings
version_added: 0.1.0
description:
  - Samples system metrics with psutil (CPU over an interval, load per core, memory and swap, space
    and inodes of every real filesystem, network throughput as a percent of link speed, established
    TCP connections) and runs named checks (C(process), C(service), C(tcp), C(http), C(db), C(command), C(backup),
    C(replication), C(insights), C(redis)).
  - An C(insights) check reads a database server's insights (connections against C(max_connections), lock waits
    and their blockers, deadlocks since the previous run, long and idle transactions, replication slots, cache
    hit ratio, table bloat, top statements), as M(opsready.operations.db_insights) does, and adds its findings.
  - A C(redis) check reads a Redis server's C(INFO) as M(opsready.operations.redis_insights) does (memory against
    C(maxmemory) and the eviction policy, evictions, hit ratio, clients, rejected connections, replication, RDB and
    AOF status). With O(history_path) its counters are kept between runs, so evictions, rejected connections,
    refused writes and the hit ratio are judged over the interval since the previous run (a restart of Redis
    counts from zero, never a negative rate); the first run judges them since Redis started.
  - Each metric and check is compared with warning and critical thresholds; every crossing is a
    finding (check, condition, value, threshold, severity, message). The verdict is the worst
    severity, V(ok), V(warning) or V(critical).
  - Checks and filesystem probes run concurrently while CPU and network are sampled, each bounded by
    its own timeout, so a hung endpoint or network mount costs its timeout and nothing more.
  - All options are validated before anything is measured (unknown check type, an option that does
    not apply to a check, warning above critical, a percentage over 100, an unparsable URL).
  - Optionally writes the result in Prometheus exposition format for node_exporter's textfile
    collector (atomically) and appends a compact sample to a bounded JSON-lines history used by
    M(opsready.operations.capacity_plan).
author: opsready developers (@opsready)
requirements:
  - psutil on the managed host (unless O(metrics=[]))
  - pyodbc and an ODBC driver for C(db) checks with O(checks[].connection_string)
  - jmespath for O(checks[].json_query)
options:
  checks:
    description:
      - Named checks to run. Each has a O(checks[].type) and the options of that type; an option of
        another type is an error.
    type: list
    elements: dict
    default: []
    suboptions:
      type:
        description: The check type.
        type: str
        required: true
        choices: [backup, command, db, http, insights, process, redis, replication, service, tcp]
      name:
        description: Name of the check in findings and metrics. Defaults to the type and target (C(tcp:db1:5432)).
        type: str
      timeout:
        description:
          - Seconds before the check is abandoned and reported as timed out (per request for C(http)).
        type: float
        default: 5.0
      severity:
        description: Severity of the finding when the check fails.
        type: str
        choices: [warning, critical]
        default: critical
      unit:
        description:
          - For C(service) the systemd unit to check. For other types, the unit that provides the
            checked thing; it is copied into findings so M(opsready.operations.incident) and the
            C(auto_recovery) role know what to restart.
        type: str
      thresholds:
        description: Per-check overrides of O(thresholds) (C(latency_ms), C(error_rate_percent), C(tls_days)).
        type: dict
      host:
        description:
          - C(tcp) host; C(db) and C(insights) host for O(checks[].engine) checks; C(replication) host.
          - C(redis) host (default V(127.0.0.1)).
        type: str
      port:
        description:
          - C(tcp) port; C(db) and C(insights) port for O(checks[].engine) checks; C(replication) port.
          - C(redis) port (default V(6379)).
        type: int
      url:
        description:
          - C(http) URL, V(http://) or V(https://). It names the check by default (C(http:<url>)), so it is shown in
            results, findings, history and metrics labels.
          - Do not put credentials in it. A user or password (V(https://user:pw@host/)) is refused. The value of a
            query or fragment parameter whose name says it is a secret (containing C(token), C(secret), C(passw),
            C(pwd), C(key), C(sig), C(auth), C(credential), C(session), C(cookie), any case) is sent, but shown as
            C(********) in the name, messages, history, metrics and Ansible's C(invocation); other parameters are
            shown as written.
          - Pass a token in O(checks[].headers) instead (an C(Authorization) header with V(Bearer <token>), or the
            API's key header such as C(X-API-Key)); header values are never logged or shown.
        type: str
      method:
        description: C(http) method. Default V(GET).
        type: str
        choices: [GET, HEAD]
      expect_status:
        description: C(http) acceptable status codes. Default any 2xx.
        type: list
        elements: int
      body_contains:
        description: C(http) text the body must contain.
        type: str
      body_regex:
        description: C(http) regular expression the body must match.
        type: str
      json_query:
        description:
          - C(http) JMESPath expression evaluated on the JSON body; without O(checks[].json_expect)
            its value must be truthy.
        type: str
      json_expect:
        description: C(http) value O(checks[].json_query) must equal.
        type: raw
      validate_certs:
        description: C(http) verify the server certificate and host name. Default V(true).
        type: bool
      ca_path:
        description: C(http) CA bundle to verify the server with; C(redis) CA bundle with O(checks[].tls).
        type: path
      headers:
        description:
          - C(http) request headers. Their values are treated as secrets (Ansible's no_log, and starred wherever
            they would appear in results), so this is the place for a bearer token, an API key or Basic
            credentials, rather than the URL.
        type: dict
      requests:
        description:
          - C(http) number of sequential requests; with more than one, the p95 latency and the error
            rate are compared with C(latency_ms) and C(error_rate_percent). Default V(1).
        type: int
      connection_string:
        description:
          - C(db) ODBC connection string for pyodbc (the check connects and runs C(SELECT 1)).
          - For psqlODBC, C(CommLog=0;Debug=0) is appended unless present (Debian's odbcinst.ini
            enables a communication log in /tmp otherwise).
          - For psqlODBC without a C(pqopt=) of its own,
            C(pqopt={connect_timeout=N options=-csearch_path=pg_catalog,pg_temp}) is appended, so that the driver's
            own catalog queries at connect never run functions or operators of a schema that the database's
            C(search_path) lists before C(pg_catalog) (CVE-2018-1058). PgBouncer refuses the C(options) startup
            parameter unless its C(ignore_startup_parameters) lists it; against PgBouncer use
            O(checks[].engine=postgresql) (C(SELECT 1) through C(psql), no startup options) or a C(pqopt) of your
            own.
        type: str
      password:
        description:
          - C(db) and C(insights) password; appended to O(checks[].connection_string), or passed to the native client
            through the environment or a 0600 option file (never argv).
          - C(replication) password, passed the same way.
          - C(redis) password, passed to C(redis-cli) only through C(REDISCLI_AUTH).
        type: str
      engine:
        description:
          - C(db) check through the engine's native client (C(psql), or C(mariadb)/C(mysql)) instead of ODBC
            (V(postgresql), V(mariadb) or V(mysql)).
          - V(mariadb) and V(mysql) both use the MariaDB/MySQL client (V(mysql) prefers the C(mysql) program).
          - Without O(checks[].database), PostgreSQL connects to the V(postgres) database.
          - C(insights) the server's engine (V(postgresql), V(mariadb), V(mysql) or V(sqlserver)); required.
        type: str
        choices: [postgresql, mariadb, mysql, sqlserver]
      user:
        description: C(db) and C(insights) user for O(checks[].engine) checks; C(replication) user; C(redis) ACL user.
        type: str
      database:
        description:
          - C(db) database for O(checks[].engine) checks.
          - C(insights) the database whose per-database views are read (PostgreSQL bloat and C(pg_stat_statements)).
          - C(backup) only this database (or file backup set) of O(checks[].backup_dir).
          - C(replication) PostgreSQL database to connect to (default C(postgres)).
        type: str
      top_statements:
        description: C(insights) statements listed by total and by mean time. Default V(5).
        type: int
      insights_thresholds:
        description:
          - C(insights) levels, as O(opsready.operations.db_insights#module:thresholds) takes them
            (C(connections_percent), C(lock_wait_seconds), C(deadlocks), ...).
        type: dict
      backup_dir:
        description:
          - C(backup) backup directory (catalog) to check. Every database in it is checked; findings name
            the database. C(backup_missing) when it has no backup.
        type: path
      backup_engine:
        description: C(backup) only artifacts of this engine (V(postgresql), V(mysql), V(sqlite), V(files)...).
        type: str
      rpo_minutes:
        description:
          - C(backup) recovery point objective; critical when the newest recoverable point (the newest
            verified full extended by its contiguous logs/WAL/binlogs) is older than this.
          - "When the newest archived WAL segment or binlog is as old as that point, the finding's condition is
            C(archive_stale): continuous archiving stopped (archive_command failing, archiving off), which is
            otherwise silent until the next drill; a gap in the chain stays C(backup_stale)."
          - Unset checks only the age of the full backup.
        type: float
      full_max_age_hours:
        description: C(backup) critical when the newest verified full backup is older than this. Default V(26).
        type: float
      warning_percent:
        description:
          - C(backup) warning at this percentage of O(checks[].rpo_minutes) and O(checks[].full_max_age_hours).
            Default V(80).
        type: float
      verified_only:
        description:
          - C(backup) count only full backups that M(opsready.operations.backup_verify) marked verified.
            Backups whose verification failed never count. Default V(true).
        type: bool
      origin_succession:
        description:
          - C(backup) one server whose identity changed (a PostgreSQL cluster upgraded with pg_upgrade or re-created
            with initdb, a renamed host) leaves a set with two origins. Without this each origin is checked, and the
            old one fails the RPO until retention deletes its backups. With it, a set whose origins succeeded each
            other (no overlap in time) is checked once, as the newest origin. Origins whose backups overlap in time
            (two live servers) are still checked one by one. Default V(false).
        type: bool
      process:
        description:
          - C(process) name (process name or basename of argv[0]); with O(checks[].pidfile), the name the
            pid must have.
        type: str
      pidfile:
        description: C(process) pid file whose pid must be running.
        type: path
      min_count:
        description: C(process) minimum number of processes named O(checks[].process). Default V(1).
        type: int
      argv:
        description: C(command) argument vector (no shell).
        type: list
        elements: str
      cmd:
        description: C(command) command line, split like a shell would (no shell features).
        type: str
      expect_rc:
        description: C(command) exit codes meaning healthy. Default V([0]).
        type: list
        elements: int
      replication_engine:
        description:
          - C(replication) check of a database node's replication (the assessment of
            M(opsready.operations.replication_info)); each reason is a finding. Connects with O(checks[].host),
            O(checks[].port) (or O(checks[].unix_socket)), O(checks[].user), O(checks[].password) (or
            O(checks[].option_file)) and, for PostgreSQL, O(checks[].database).
        type: str
        choices: [postgresql, mariadb, mysql]
      unix_socket:
        description:
          - C(replication) local socket (PostgreSQL socket directory, MariaDB/MySQL socket file).
          - C(redis) socket file, instead of O(checks[].host).
        type: path
      tls:
        description: C(redis) connect with TLS (C(redis-cli --tls)).
        type: bool
      redis_thresholds:
        description:
          - C(redis) overrides of the thresholds, as O(opsready.operations.redis_insights#module:thresholds) takes them
            (C(memory_warning), C(evictions_warning), C(hit_ratio_warning), C(rejected_connections_warning), ...).
          - C(evictions_warning), C(rejected_connections_warning) and C(hit_ratio_min_lookups) count since the
            previous run when O(history_path) holds one, else since Redis started.
        type: dict
      option_file:
        description:
          - C(replication) credentials file instead of O(checks[].password) (C(.pgpass), or a MariaDB/MySQL
            option file).
        type: path
      max_lag_bytes:
        description:
          - 'C(replication) PostgreSQL replay lag in bytes, C({warning: W, critical: C}) or a bare number
            (critical). Default 16 MiB/256 MiB.'
        type: raw
      max_lag_seconds:
        description:
          - 'C(replication) replay lag in seconds, C({warning: W, critical: C}) or a bare number (critical).
            Default 30/300.'
        type: raw
      max_slot_retained_bytes:
        description:
          - 'C(replication) PostgreSQL WAL retained by a slot, C({warning: W, critical: C}) or a number
            (critical). Default 1 GiB/4 GiB.'
        type: raw
      inactive_slot_severity:
        description: C(replication) severity of a PostgreSQL slot nobody is connected to. Default V(critical).
        type: str
        choices: [ok, warning, critical]
      ignore_slots:
        description: C(replication) PostgreSQL slots left out of the verdict.
        type: list
        elements: str
      expected_role:
        description: C(replication) the role the node should have; the other one is critical. Default V(any).
        type: str
        choices: [any, primary, standby]
      min_replicas:
        description:
          - C(replication) on a primary, the least number of streaming standbys / connected replicas. Default V(0).
        type: int
  thresholds:
    description:
      - 'Warning and critical levels, each C({warning: W, critical: C}) (either V(null) to disable) or a
        bare number meaning the critical level.'
      - Keys and defaults (warning/critical) C(cpu_percent) 70/80, C(memory_percent) 75/85,
        C(swap_percent) 80/-, C(disk_percent) 80/90, C(inode_percent) 80/90, C(network_percent) 70/80,
        C(load_per_core) 1.5/2 (5-minute average), C(latency_ms) 250/500, C(error_rate_percent) 0.5/1,
        C(tls_days) 30/7 (lower is worse).
    type: dict
    default: {}
  fail_on:
    description: Fail the task when the verdict is at least this severe; V(never) only reports.
    type: str
    choices: [critical, warning, never]
    default: critical
  metrics:
    description: System metric groups to sample; V([]) runs only the checks (and does not need psutil).
    type: list
    elements: str
    choices: [cpu, load, memory, filesystems, network, connections]
    default: [cpu, load, memory, filesystems, network, connections]
  interval:
    description: Seconds over which CPU use and network throughput are sampled (two samples).
    type: float
    default: 0.5
  filesystems_exclude:
    description: Mountpoint glob patterns not to measure (pseudo filesystems are always skipped).
    type: list
    elements: str
    default: []
  filesystem_timeout:
    description: Seconds a filesystem may take to answer C(statvfs) before it is reported unresponsive.
    type: float
    default: 5.0
  parallel:
    description: Run checks concurrently (each still bounded by its timeout).
    type: bool
    default: true
  textfile_path:
    description:
      - Write the metrics, check results and verdict in Prometheus exposition format to this C(.prom)
        file (atomically), for node_exporter's C(--collector.textfile.directory).
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
  history_path:
    description:
      - Append a compact sample to this JSON-lines history (for M(opsready.operations.capacity_plan)).
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
  history_max_entries:
    description: Keep at most this many samples (plus 10 % slack) in O(history_path); 10000 is 34 days at 5 minutes.
    type: int
    default: 10000
  host_label:
    description: Host name recorded in the history and results. Defaults to the host's node name.
    type: str
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - Measuring changes nothing on the host. O(textfile_path) and O(history_path) are monitoring output,
    written in normal runs and not in check mode. The task is C(changed) when one of them changed (the
    textfile's content differs from what it held, which is rewritten only then; a history sample was
    appended), and in check mode when a run would change one. With O(history_path) set every run records
    a sample, so every run is C(changed); the P(opsready.operations.health#role) role lets a scheduled
    run report only its own state changes (C(health_changed_on_record=false)).
  - Run as root, a directory of O(textfile_path) or O(history_path) that others (or a non-root group) can
    write without the sticky bit is refused before anything is measured or written; one owned by another
    non-root user is written and reported as a V(warning) finding with condition V(insecure_directory). A
    C(backup) check whose O(checks[].backup_dir) anyone can write without the sticky bit gets a V(critical)
    V(insecure_directory) finding.
  - Findings carry a C(condition) (V(high_cpu), V(high_memory), V(disk_full), V(service_down),
    V(database_connection), V(api_timeout), V(api_error), V(slow_response), V(network_saturated),
    V(certificate_expiry), V(command_failed), V(filesystem_unresponsive), V(check_error)) used by the
    C(auto_recovery) role to pick a remediation. C(replication) checks add V(replication_stopped),
    V(replication_lag), V(replication_slot), V(replication_role), V(replica_missing), V(replication_config)
    and V(replication_paused) (docs/replication.md). C(redis) checks add V(redis_connection), V(redis_memory),
    V(redis_evictions), V(redis_hit_ratio), V(redis_clients), V(redis_rejected_connections),
    V(redis_blocked_clients), V(redis_persistence) and the replication check's V(replication_lag) and
    V(replication_stopped) (docs/redis.md).
  - C(service) checks need systemd running on the host; elsewhere they report a V(check_error)
    finding and a C(process) check with O(checks[].pidfile) is the alternative.
seealso:
  - module: opsready.operations.capacity_plan
  - module: opsready.operations.incident
'''

EXAMPLES = r'''
- name: Health of a database server, failing the play on a critical verdict
  opsready.operations.health_check:
    checks:
      - type: service
        unit: postgresql
      - type: tcp
        host: 127.0.0.1
        port: 5432
      - type: db
        name: app-db
        connection_string: "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=app;Uid=monitor;"
        password: "{{ vault_monitor_password }}"
        unit: postgresql
      - type: http
        url: https://api.example.com/health
        # the token goes in a header, never in the URL (which names the check in results and metrics)
        headers:
          Authorization: "Bearer {{ vault_health_api_token }}"
        json_query: status
        json_expect: ok
        requests: 20
        timeout: 2
        unit: myapp
    thresholds:
      disk_percent: {warning: 85, critical: 95}
      latency_ms: 500
    textfile_path: /var/lib/node_exporter/textfile/opsready_health.prom
    history_path: /var/lib/opsready/health-history.jsonl
  register: health

- name: Cache health, evictions and hit ratio judged since the previous run
  opsready.operations.health_check:
    metrics: []
    checks:
      - type: redis
        name: sessions-cache
        host: 127.0.0.1
        port: 6379
        password: "{{ vault_redis_password }}"
        unit: redis-server
        redis_thresholds:
          hit_ratio_warning: 0.9
    history_path: /var/lib/opsready/health-history.jsonl
    textfile_path: /var/lib/node_exporter/textfile/opsready_cache.prom

- name: Report only
  opsready.operations.health_check:
    fail_on: never
  register: health
'''

RETURN = r'''
verdict:
  description: Worst severity of all findings.
  returned: always
  type: str
  sample: warning
findings:
  description: Threshold crossings and failed checks, worst first.
  returned: always
  type: list
  elements: dict
  sample:
    - check: filesystem:/var
      condition: disk_full
      value: 93.4
      threshold: 90.0
      severity: critical
      message: Filesystem /var space use is 93.4 % (critical > 90 %).
      mountpoint: /var
conditions:
  description: The distinct conditions of the findings.
  returned: always
  type: list
  elements: str
  sample: [disk_full]
metrics:
  description: The sampled system metrics (cpu, load, memory, filesystems, network, tcp_established).
  returned: always
  type: dict
  sample: {"cpu": {"percent": 12.5, "count": 2, "interval": 0.5}, "memory": {"percent": 41.2}}
checks:
  description: One result per check (name, type, ok, latency_ms, message and type-specific values).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "tcp:127.0.0.1:5432", "type": "tcp", "ok": true, "latency_ms": 0.3}]
summary:
  description: Counts of critical and warning findings and of failed checks.
  returned: always
  type: dict
  sample: {"critical": 0, "warning": 1, "checks_failed": 0, "checks_total": 3}
thresholds:
  description: The effective global thresholds.
  returned: always
  type: dict
  sample: {"cpu_percent": {"warning": 70.0, "critical": 80.0}}
host:
  description: The host label recorded.
  returned: always
  type: str
  sample: db1
duration_seconds:
  description: Wall time of the measurement.
  returned: always
  type: float
  sample: 0.62
written:
  description:
    - What was written (C(textfile), C(textfile_changed), C(history), C(history_entries)); empty in check mode.
    - C(textfile_changed) is false when the textfile already held exactly the new content (it was left alone).
  returned: always
  type: dict
  sample: {"textfile": "/var/lib/node_exporter/textfile/opsready_health.prom"}
'''

import copy

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import assess, checks, metrics
from ansible_collections.opsready.operations.plugins.module_utils.health import insights_check, replication_check
from ansible_collections.opsready.operations.plugins.module_utils.common.urlsecrets import redact_url, url_secrets
from ansible_collections.opsready.operations.plugins.module_utils.engines.redis import health as redis_check

# Check types in files of their own register themselves when imported (Ansible ships what is imported here).
EXTRA_CHECK_TYPES = (replication_check.ReplicationCheck, insights_check.InsightsCheck, redis_check.RedisCheck)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type='list', elements='dict', default=[], options=checks.suboptions()),
            thresholds=dict(type='dict', default={}),
            fail_on=dict(type='str', choices=list(assess.FAIL_ON), default='critical'),
            metrics=dict(type='list', elements='str', choices=list(metrics.METRIC_GROUPS),
                         default=list(metrics.METRIC_GROUPS)),
            interval=dict(type='float', default=0.5),
            filesystems_exclude=dict(type='list', elements='str', default=[]),
            filesystem_timeout=dict(type='float', default=5.0),
            parallel=dict(type='bool', default=True),
            textfile_path=dict(type='path'),
            history_path=dict(type='path'),
            history_max_entries=dict(type='int', default=10000),
            host_label=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    # An http check's URL may carry a token (?api_key=...): Ansible echoes the arguments as the result's
    # invocation, so the URLs there are shown redacted, and the tokens join the values Ansible masks everywhere
    # (not the very short ones: Ansible masks a value wherever it occurs, and every "1" would go).
    checks_given = copy.deepcopy(p['checks'])
    for spec in p['checks']:
        if spec.get('url'):
            module.no_log_values.update(s for s in url_secrets(spec['url']) if len(s) >= 4)
            spec['url'] = redact_url(spec['url'])
    try:
        plan = assess.Plan(checks=checks_given, thresholds=p['thresholds'], metrics=p['metrics'],
                           fail_on=p['fail_on'], interval=p['interval'],
                           filesystems_exclude=p['filesystems_exclude'], fs_timeout=p['filesystem_timeout'],
                           parallel=p['parallel'], textfile_path=p['textfile_path'],
                           history_path=p['history_path'], history_max_entries=p['history_max_entries'],
                           host_label=p['host_label'] or '')
        result = assess.run(plan)
        written, changed, diffs = assess.record_changes(plan, result, check_mode=module.check_mode)
        result['written'] = written
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(msg='Health check could not write its output: %s (%s).'
                         % (exc.strerror or exc, getattr(exc, 'filename', '') or ''))
    # Changed: a file changed (the textfile's content differs, a history sample was appended), or would in check
    # mode. Measuring alone changes nothing; see notes.
    result['changed'] = changed
    if module._diff and diffs:
        result['diff'] = diffs
    if assess.should_fail(plan, result['verdict']):
        worst = result['findings'][0]['message'] if result['findings'] else ''
        module.fail_json(msg='Health verdict is %s (fail_on=%s): %d critical, %d warning finding(s); worst: %s'
                         % (result['verdict'], plan.fail_on, result['summary']['critical'],
                            result['summary']['warning'], worst), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
