#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: replication_info
short_description: Replication status of a PostgreSQL, MariaDB or MySQL node, with a verdict against thresholds
version_added: 0.1.0
description:
  - Connects to one database server and reports its replication role (V(primary) or V(standby); a MariaDB/MySQL
    replica is a V(standby)), its position (comparable across the nodes of a cluster, for failover), how far
    it trails its upstream, and what it sees of its downstream replicas, then judges it against thresholds
    and returns a verdict (V(ok), V(warning), V(critical)) with the reasons.
  - "PostgreSQL (streaming replication), from both ends in one query: C(pg_stat_replication) (each standby's
    state, sync state, sent/write/flush/replay LSNs, lag in bytes and seconds), C(pg_stat_wal_receiver)
    (the standby's WAL receiver: status, sender, latest LSN reported by the primary), replay lag in bytes
    and seconds, replay paused, replication slots with the WAL each retains and its C(wal_status), the
    timeline, the current/received/replayed LSNs. The login needs C(pg_monitor) (or superuser)."
  - "MariaDB and MySQL (GTID replicas): every replication connection's IO and SQL thread state,
    C(Seconds_Behind_Master), last IO and SQL errors, C(Using_Gtid) and C(Gtid_IO_Pos) (MariaDB) or
    C(Retrieved_Gtid_Set)/C(Auto_Position) (MySQL), the server's C(gtid_current_pos), C(gtid_binlog_pos) and
    C(gtid_slave_pos) (MariaDB) or C(gtid_executed) (MySQL), C(read_only), and the replicas connected to
    it. MySQL 8.0.22+ column names (C(Replica_IO_Running), C(Seconds_Behind_Source)...) are read as well.
    The login needs C(REPLICATION CLIENT) (MariaDB 10.5+ C(SLAVE MONITOR)) and C(PROCESS)."
  - Read-only; never reports C(changed). Runs the same in check mode.
author: opsready developers (@opsready)
options:
  engine:
    description: The database engine. V(mariadb) and V(mysql) share one implementation.
    type: str
    required: true
    choices: [postgresql, mariadb, mysql]
  database:
    description: PostgreSQL only. Database to connect to (the replication views are cluster-wide).
    type: str
    default: postgres
  max_lag_bytes:
    description:
      - 'PostgreSQL replay lag in bytes: C({warning: W, critical: C}) (either V(null) to switch it off) or a bare
        number meaning the critical level. Default warning 16 MiB, critical 256 MiB.'
      - On a standby, the WAL the primary reported that is not replayed here; on a primary, each standby's
        distance from the current WAL position.
    type: raw
  max_lag_seconds:
    description:
      - 'Replay lag in seconds: C({warning: W, critical: C}) or a bare number (critical). Default warning 30,
        critical 300 (an RPO of 5 minutes).'
      - PostgreSQL standby, C(now() - pg_last_xact_replay_timestamp()) while received WAL waits to be replayed
        (0 when all of it is replayed); primary, each standby's C(replay_lag). MariaDB/MySQL,
        C(Seconds_Behind_Master).
    type: raw
  max_slot_retained_bytes:
    description:
      - 'PostgreSQL WAL a replication slot holds back: C({warning: W, critical: C}) or a bare number (critical).
        Default warning 1 GiB, critical 4 GiB. A slot whose C(wal_status) is C(lost) or C(unreserved) is
        critical whatever its size.'
    type: raw
  inactive_slot_severity:
    description:
      - PostgreSQL severity of a replication slot nobody is connected to (its standby is down or cut off, and
        the server keeps all WAL for it). V(ok) ignores inactive slots (their size still counts).
    type: str
    choices: [ok, warning, critical]
    default: critical
  ignore_slots:
    description: PostgreSQL slots to leave out of the verdict (for example one used by a periodic archiver).
    type: list
    elements: str
    default: []
  expected_role:
    description:
      - The role this node should have. A primary expected to be a standby (promoted behind your back) or a
        standby expected to be the primary is critical. V(any) accepts both.
    type: str
    choices: [any, primary, standby]
    default: any
  min_replicas:
    description:
      - On a primary, the least number of streaming standbys (PostgreSQL) or connected replicas (MariaDB/MySQL
        binlog dump threads); fewer is critical. V(0) does not count them.
    type: int
    default: 0
  fail_on:
    description: Fail the task when the verdict is at least this severe; V(never) only reports.
    type: str
    choices: [critical, warning, never]
    default: never
extends_documentation_fragment:
  - opsready.operations.db_connection
  - opsready.operations.check_mode
attributes:
  diff_mode:
    support: none
notes:
  - "MariaDB keeps a replica's binlog dump thread on the primary until it next writes to it (an event or a
    heartbeat, C(MASTER_HEARTBEAT_PERIOD)): a replica that just lost its connection may still count towards
    O(min_replicas) for that long. The replica's own status shows the stopped IO thread at once."
  - Positions in RV(position) compare across the nodes of one cluster; the failover role promotes the most
    advanced (docs/replication.md).
seealso:
  - module: opsready.operations.health_check
    description: The C(replication) check type runs the same assessment with the host checks.
'''

EXAMPLES = r'''
- name: Replication status of the primary, critical when a standby is missing
  opsready.operations.replication_info:
    engine: postgresql
    login_host: db1.example.com
    login_user: monitor
    login_password: "{{ vault_monitor_password }}"
    expected_role: primary
    min_replicas: 2
    max_lag_bytes: {warning: 16777216, critical: 268435456}
    max_lag_seconds: 60
  register: repl

- name: A MariaDB replica; fail the play when it is critical
  opsready.operations.replication_info:
    engine: mariadb
    login_unix_socket: /run/mysqld/mysqld.sock
    expected_role: standby
    fail_on: critical
  register: replica

- name: Show the GTID position
  ansible.builtin.debug:
    msg: "GTID {{ replica.position.gtid_current_pos }}, IO thread {{ replica.upstream.io_running }}"
'''

RETURN = r'''
verdict:
  description: Worst severity of the reasons.
  returned: always
  type: str
  sample: critical
reasons:
  description: What makes the verdict, worst first. C(condition) is one of C(replication_stopped),
    C(replication_lag), C(replication_slot), C(replication_role), C(replica_missing), C(replication_config),
    C(replication_paused).
  returned: always
  type: list
  elements: dict
  sample:
    - severity: critical
      condition: replication_stopped
      message: "Replication from 10.0.0.5:3306: the IO thread is Connecting (error 1045: ... Access denied ...)."
      value: Connecting
      threshold: null
      subject: null
engine:
  description: The engine name.
  returned: always
  type: str
  sample: postgresql
role:
  description:
    - V(primary) or V(standby) (a PostgreSQL server in recovery; a MariaDB/MySQL server with replication
      configured).
  returned: always
  type: str
  sample: standby
read_only:
  description: Whether the node refuses writes (in recovery, C(default_transaction_read_only), C(read_only)).
  returned: always
  type: bool
  sample: true
server_version:
  description: The server's version.
  returned: always
  type: str
  sample: "15.8"
timeline:
  description: PostgreSQL timeline (the primary's current one; a standby's received one).
  returned: when engine is postgresql
  type: int
  sample: 1
position:
  description:
    - What the node holds. C(kind) is C(lsn), C(mariadb_gtid) or C(mysql_gtid); C(received) (what a promotion
      would bring up) and C(replayed) are byte offsets (PostgreSQL, with C(received_lsn)/C(replayed_lsn) as
      text and C(timeline)) or GTID lists/sets. MariaDB adds C(gtid_current_pos), C(gtid_binlog_pos),
      C(gtid_slave_pos); MySQL C(gtid_executed), C(gtid_purged).
  returned: always
  type: dict
  sample: {"kind": "mariadb_gtid", "received": "0-1-1042", "replayed": "0-1-1040", "gtid_current_pos": "0-1-1040"}
lag_bytes:
  description: PostgreSQL standby, bytes of WAL not replayed yet; null on a primary or when unknown.
  returned: always
  type: int
  sample: 0
lag_seconds:
  description: Standby replay lag in seconds; null on a primary, or while a MariaDB/MySQL thread is stopped.
  returned: always
  type: float
  sample: 0.0
replicas:
  description:
    - The downstream nodes this server sees. PostgreSQL, one per C(pg_stat_replication) row (C(name) is the
      standby's C(application_name); C(state), C(sync_state), LSNs, C(lag_bytes), C(lag_seconds),
      C(slot_name)); MariaDB/MySQL, one per binlog dump thread (C(client_addr), C(state)).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "standby1", "state": "streaming", "sync_state": "async", "lag_bytes": 0, "lag_seconds": 0.001}]
upstream:
  description:
    - What a standby sees of its upstream; null on a primary. PostgreSQL, the WAL receiver (C(status),
      C(sender_host), C(sender_port), C(slot_name), C(latest_end_lsn)...). MariaDB/MySQL, the first replication
      connection (C(io_running), C(sql_running), C(seconds_behind), C(last_io_errno), C(last_io_error),
      C(last_sql_errno), C(last_sql_error), C(using_gtid), C(gtid_io_pos), C(retrieved_gtid_set),
      C(transactions_behind)...), whichever column spelling the server uses.
  returned: always
  type: dict
upstreams:
  description: MariaDB/MySQL, every replication connection (multi-source), each shaped like RV(upstream).
  returned: when engine is mariadb or mysql
  type: list
  elements: dict
slots:
  description: PostgreSQL replication slots (C(slot_name), C(slot_type), C(active), C(wal_status),
    C(restart_lsn), C(retained_bytes), C(safe_wal_size)).
  returned: always
  type: list
  elements: dict
settings:
  description: The settings that matter for replication (PostgreSQL C(primary_conninfo) reduced to host, port,
    user, application_name and sslmode, never the password; MariaDB/MySQL GTID variables).
  returned: always
  type: dict
limits:
  description: The effective thresholds and expectations.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    connection_from_params, db_connection_argument_spec, db_connection_mutually_exclusive)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import (
    REPLICATION_ENGINES, get_engine)
from ansible_collections.opsready.operations.plugins.module_utils.replication import status as repl

FAIL_ON = {'critical': 2, 'warning': 1, 'never': 99}


def main():
    argument_spec = db_connection_argument_spec()
    argument_spec.update(
        engine=dict(type='str', required=True, choices=list(REPLICATION_ENGINES)),
        database=dict(type='str', default='postgres'),
        max_lag_bytes=dict(type='raw'),
        max_lag_seconds=dict(type='raw'),
        max_slot_retained_bytes=dict(type='raw'),
        inactive_slot_severity=dict(type='str', choices=['ok', 'warning', 'critical'], default='critical'),
        ignore_slots=dict(type='list', elements='str', default=[]),
        expected_role=dict(type='str', choices=list(repl.EXPECTED_ROLES), default='any'),
        min_replicas=dict(type='int', default=0),
        fail_on=dict(type='str', choices=list(FAIL_ON), default='never'),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=db_connection_mutually_exclusive(),
                           supports_check_mode=True)
    no_path_info(module)
    p = module.params
    try:
        limits = repl.Limits.from_params(p)
        conn = connection_from_params(p)
        engine = get_engine(p['engine'], conn)
        status = repl.gather(engine, limits, database=p['database'] if p['engine'] == 'postgresql' else None)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    status['limits'] = limits.as_dict()
    if repl.RANK[status['verdict']] >= FAIL_ON[p['fail_on']]:
        worst = status['reasons'][0]['message'] if status['reasons'] else ''
        module.fail_json(msg='Replication verdict is %s (fail_on=%s): %s' % (status['verdict'], p['fail_on'], worst),
                         changed=False, **status)
    module.exit_json(changed=False, **status)


if __name__ == '__main__':
    main()
