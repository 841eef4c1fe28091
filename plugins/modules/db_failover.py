#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_failover
short_description: Switchover, failover with fencing, and rejoin of a PostgreSQL or MariaDB replication group
version_added: 0.2.0
description:
  - "O(action=switchover): a planned change of primary with zero data loss. Refused (nothing changed) when the
    candidate is unreachable, not streaming, or lags more than O(max_lag) bytes. The old primary is stopped
    cleanly (every session ends, the shutdown checkpoint is streamed to the standbys), the candidate is promoted
    only once it replayed past that checkpoint (else the old primary is started again unchanged), the old
    primary is restarted as a standby of the new one (C(standby.signal) + C(primary_conninfo)), the other
    standbys follow the new primary, and the module waits until the old primary streams from the new one."
  - "O(action=failover): the primary is gone. The most advanced reachable standby (received or replayed WAL)
    is promoted. Before that, the old primary is fenced: stopped if it still runs on this host, and its data
    directory gets C(standby.signal) and C(default_transaction_read_only=on) and a C(opsready_fence.json)
    record, so a restart can never take writes. Without its data directory on this host only the record is
    returned (fence it on its own host). RV(rpo_bytes) is the WAL the old primary had that the new one lacks."
  - "O(action=rejoin): O(node) (a fenced or stopped old primary) becomes a standby of O(primary), with
    C(pg_rewind) when its timeline diverged. Refused, with the fix in the message, when C(pg_rewind) cannot
    repair it (no C(wal_log_hints) or checksums, WAL gone)."
  - "O(action=plan) (or check mode with any action): the decision only - who is promoted, who is fenced, the
    positions and lag of every node. Nothing is changed."
  - Steps on a server's data directory (stop, start, C(pg_rewind), fencing) run on the host the task runs on,
    as the data directory's owner; run the task on the database host (C(delegate_to)) for those nodes. SQL
    steps (status, C(pg_promote()), following a new primary) need only a login with superuser rights.
  - Clients are repointed separately, see M(opsready.operations.db_endpoint).
author: opsready developers (@opsready)
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [switchover, failover, rejoin, plan]
  plan_for:
    description: With O(action=plan), which action to plan.
    type: str
    choices: [switchover, failover, rejoin]
    default: switchover
  engine:
    description:
      - The database engine. PostgreSQL (13 or later) and MariaDB (GTID replication, 10.5 or later) support every
        action.
      - "MariaDB O(action=switchover): C(read_only) + session kill on the primary, C(MASTER_GTID_WAIT) on the
        candidate, C(STOP SLAVE; RESET SLAVE ALL) there, C(CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos) on the old
        primary, which stays C(read_only)."
      - "MariaDB O(action=failover): the replica holding the most GTIDs (received, relay log included) is chosen;
        the old primary, when reachable, is fenced first (C(read_only=ON), C(super_read_only=ON) where the server
        has it, client sessions killed; the record in RV(fence) and in C(<data_dir>/opsready_fence.json) when
        O(nodes[].data_dir) is on this host); the candidate applies its relay log, is promoted, the other replicas
        follow it. RV(rpo_transactions) counts the old primary's transactions the new one lacks (null when the old
        primary cannot be read)."
      - "MariaDB O(action=rejoin): O(node) (running again) becomes a GTID replica of O(primary). Refused when
        O(node) has errant transactions - GTIDs in its C(gtid_binlog_pos) that O(primary) never had, compared per
        domain and server id - with the fix (re-apply what matters, re-clone) in the message."
    type: str
    choices: [postgresql, mariadb]
    default: postgresql
  replication_user:
    description: MariaDB (required there). The replication account replicas use to connect to the new primary.
    type: str
  replication_password:
    description: MariaDB. Its password (sent on the client's standard input, never on a command line).
    type: str
  nodes:
    description:
      - Every server of the replication group (the primary and its standbys). The order is the preference
        among equally advanced failover candidates.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The node's name; followers use it as C(application_name) and replication slot name.
        type: str
        required: true
      login_host:
        description: Host (or IP) to reach the server; also written into the followers' C(primary_conninfo).
        type: str
      login_port:
        description: Port of the server (default 5432 for PostgreSQL, 3306 for MariaDB).
        type: int
      login_unix_socket:
        description: Socket directory instead of O(nodes[].login_host).
        type: path
      login_user:
        description: A superuser (C(pg_promote()), C(ALTER SYSTEM), C(pg_rewind) source).
        type: str
      login_password:
        description: Its password (sent through the environment, never on a command line).
        type: str
      connect_timeout:
        description: Seconds to wait for a connection; an unreachable primary is detected within this time.
        type: int
        default: 5
      data_dir:
        description: The data directory, when it is on the host the task runs on (needed to stop, start, fence
          and rewind this node).
        type: path
      bindir:
        description: Directory of C(pg_ctl), C(pg_rewind), C(pg_controldata), C(pg_waldump) for this server's
          major version (default C(/usr/lib/postgresql/<PG_VERSION>/bin), then PATH).
        type: path
      start_options:
        description: Server options for C(pg_ctl start -o) (e.g. the port and sockets the service passes).
        type: str
      log_file:
        description: C(pg_ctl start -l) log file (default C(<data_dir>/log/opsready-pg_ctl.log)).
        type: path
      os_user:
        description: The server's account for the server-side tools (default the owner of O(nodes[].data_dir)).
        type: str
      start_command:
        description: Start the server with this command instead of C(pg_ctl start) (e.g. C([systemctl, start,
          postgresql@15-main])).
        type: list
        elements: str
      stop_command:
        description: Stop the server with this command instead of C(pg_ctl stop).
        type: list
        elements: str
  primary:
    description:
      - The current (switchover) or lost (failover) primary; for O(action=rejoin) the primary to follow.
    type: str
    required: true
  candidate:
    description:
      - The standby to promote. Required for O(action=switchover). For O(action=failover) the default is the
        most advanced standby; a named candidate that is behind another standby is refused unless
        O(force_candidate=true).
    type: str
  node:
    description: O(action=rejoin) only. The node that becomes a standby of O(primary).
    type: str
  max_lag:
    description:
      - O(action=switchover). The candidate's largest accepted replay lag before writes stop, in bytes
        (PostgreSQL) or transactions (MariaDB).
    type: int
    default: 16777216
  max_loss:
    description:
      - O(action=failover), PostgreSQL. The most bytes of the old primary's WAL the promoted standby may lack. The
        loss (the old primary's WAL end, read from its data directory with C(pg_waldump), minus the candidate's
        position) is judged before anything is fenced or promoted; over O(max_loss), or not measurable (the old
        primary's data directory is not on this host), the failover is refused and nothing changes - check mode
        and O(action=plan) refuse alike. The plan then says the loss (C(loss_bytes)).
      - Unset, any loss is accepted and learnt afterwards (RV(rpo_bytes)). V(0) allows no loss at all.
    type: int
    version_added: 0.2.0
  force_candidate:
    description: O(action=failover). Promote O(candidate) even when another standby has more WAL (that WAL is lost).
    type: bool
    default: false
  rewind:
    description: O(action=rejoin). Run C(pg_rewind) before the node starts as a standby.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each step (shutdown, replay, promotion, start, streaming).
    type: int
    default: 60
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - "The old primary's data directory gets C(standby.signal) by a fence: removing it (and the
    C(default_transaction_read_only) line of C(postgresql.auto.conf)) is the manual way back; O(action=rejoin) is
    the safe one."
  - In a switchover writes pause from the old primary's shutdown until the promotion (about a second when the
    candidate is not lagging); clients reconnect through the repointed endpoint.
seealso:
  - module: opsready.operations.db_endpoint
  - module: opsready.operations.replication_info
'''

EXAMPLES = r'''
- name: Show what a failover would do (no change)
  opsready.operations.db_failover:
    action: plan
    plan_for: failover
    primary: db1
    nodes: "{{ pg_nodes }}"

- name: Planned switchover to db2
  opsready.operations.db_failover:
    action: switchover
    primary: db1
    candidate: db2
    max_lag: 1048576
    nodes:
      - {name: db1, login_host: 10.0.0.1, login_user: postgres, login_password: "{{ vault_pg }}",
         data_dir: /var/lib/postgresql/15/main, start_command: [systemctl, start, postgresql@15-main],
         stop_command: [systemctl, stop, postgresql@15-main]}
      - {name: db2, login_host: 10.0.0.2, login_user: postgres, login_password: "{{ vault_pg }}"}

- name: MariaDB failover - promote the replica with the most GTIDs, fence the old primary if reachable
  opsready.operations.db_failover:
    action: failover
    engine: mariadb
    primary: db1
    replication_user: repl
    replication_password: "{{ vault_repl }}"
    nodes:
      - {name: db1, login_host: 10.0.0.1, login_port: 3306, login_user: admin, login_password: "{{ vault_db }}"}
      - {name: db2, login_host: 10.0.0.2, login_port: 3306, login_user: admin, login_password: "{{ vault_db }}"}
      - {name: db3, login_host: 10.0.0.3, login_port: 3306, login_user: admin, login_password: "{{ vault_db }}"}

- name: Bring the old primary back as a standby
  opsready.operations.db_failover:
    action: rejoin
    node: db1
    primary: db2
    nodes: "{{ pg_nodes }}"
'''

RETURN = r'''
plan:
  description: The decision (who is promoted, fenced, demoted, repointed; positions and lag).
  returned: when a change is planned or made
  type: dict
promoted:
  description: The node promoted (null when none was).
  returned: switchover, failover
  type: str
primary:
  description: The primary after the action.
  returned: failover
  type: str
fence:
  description: The fence record of the old primary (node, new_primary, state stopped/marked/recorded, reason, file).
  returned: failover
  type: dict
candidate_fence:
  description: PostgreSQL. When the promotion failed and the candidate's server is down, the fence record of the
    candidate too (it may have ended recovery before it died; restarted without a fence it would be a second
    primary); null while it still runs.
  returned: failover that failed during the promotion
  type: dict
refused:
  description: PostgreSQL. A node other than O(primary) that is down and whose data directory last ran as a primary
    without standby.signal; the failover is refused until it is named as O(primary) or fenced.
  returned: failover refused
  type: str
rpo_bytes:
  description: PostgreSQL. WAL bytes the old primary had that the promoted node lacks (null when its data directory
    is not here).
  returned: failover
  type: int
rpo_transactions:
  description: MariaDB. Transactions (GTIDs) of the old primary the promoted replica lacks, read behind the fence
    (null when the old primary cannot be reached).
  returned: failover
  type: int
errant:
  description: MariaDB rejoin. The GTIDs O(node) executed that O(primary) lacks (gtid, domain, server_id,
    primary_has, transactions); a non-empty list refuses the rejoin.
  returned: rejoin
  type: list
  elements: dict
lag_bytes:
  description: The candidate's replay lag when the switchover started.
  returned: switchover
  type: int
nodes:
  description: Every node's observed state (role, LSNs, WAL receiver, lag in bytes).
  returned: always
  type: list
  elements: dict
steps:
  description: The steps taken with their node and duration in seconds.
  returned: when changed
  type: list
  elements: dict
'''

import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import FAILOVER_ENGINES  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import (  # noqa: E402
    promote as mysql_promote)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (  # noqa: E402
    promote as pg_promote)
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import (  # noqa: E402
    check_names, find_node, node_argument_spec, node_specs)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type='str', required=True, choices=['switchover', 'failover', 'rejoin', 'plan']),
            plan_for=dict(type='str', default='switchover', choices=['switchover', 'failover', 'rejoin']),
            engine=dict(type='str', default='postgresql', choices=list(FAILOVER_ENGINES)),
            nodes=dict(type='list', elements='dict', required=True, options=node_argument_spec(default_port=None)),
            primary=dict(type='str', required=True),
            candidate=dict(type='str'),
            node=dict(type='str'),
            max_lag=dict(type='int', default=16 * 1024 * 1024),
            force_candidate=dict(type='bool', default=False),
            max_loss=dict(type='int'),
            rewind=dict(type='bool', default=True),
            timeout=dict(type='int', default=60),
            replication_user=dict(type='str'),
            replication_password=dict(type='str', no_log=True),
        ),
        required_if=[('action', 'switchover', ['candidate']), ('action', 'rejoin', ['node'])],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    runner = ToolRunner(secrets=[n.get('login_password') for n in p['nodes']] + [p['replication_password']])
    try:
        specs = node_specs(p['nodes'], default_port=5432 if p['engine'] == 'postgresql' else 3306)
        check_names(specs)
        for option in ('primary', 'candidate', 'node'):
            if p[option] is not None:
                find_node(specs, p[option], option)
        if p['candidate'] is not None and p['candidate'] == p['primary']:
            raise OpsReadyError('candidate and primary are both %r: name a standby as candidate.' % p['primary'])
        action = p['plan_for'] if p['action'] == 'plan' else p['action']
        if p['max_loss'] is not None and (p['max_loss'] < 0 or p['engine'] != 'postgresql'):
            raise OpsReadyError('max_loss is a number of WAL bytes, 0 or more, for engine=postgresql failovers (it '
                                'is %r with engine=%s): give 0 or more, or leave it unset.'
                                % (p['max_loss'], p['engine']))
        dry = module.check_mode or p['action'] == 'plan'
        if p['engine'] != 'postgresql':
            if not p['replication_user']:
                raise OpsReadyError('engine=%s: set replication_user (and replication_password), the account a '
                                    'replica uses to connect to the new primary.' % p['engine'])
            if action == 'switchover':
                if not p['candidate']:
                    raise OpsReadyError('A switchover needs candidate (the replica to promote).')
                result = mysql_promote.switchover(specs, p['primary'], p['candidate'], p['max_lag'],
                                                  p['replication_user'], p['replication_password'], p['timeout'],
                                                  dry, runner, flavor=p['engine'])
            elif action == 'failover':
                result = mysql_promote.failover(specs, p['primary'], p['candidate'], p['force_candidate'],
                                                p['replication_user'], p['replication_password'], p['timeout'], dry,
                                                runner, flavor=p['engine'])
            else:
                if p['node'] is None:
                    raise OpsReadyError('A rejoin needs node (the server that becomes a replica of primary).')
                result = mysql_promote.rejoin(specs, p['node'], p['primary'], p['replication_user'],
                                              p['replication_password'], p['timeout'], dry, runner,
                                              flavor=p['engine'])
            if p['action'] == 'plan':
                result['changed'] = False
            result['action'] = p['action']
            if result.get('plan') and action != 'rejoin':
                result['diff'] = {'before': {'primary': p['primary']},
                                  'after': {'primary': result['plan'].get('promote') or p['primary']}}
            module.exit_json(**result)
        # one psql session per node (observe, then act, over the same connection), ended whatever happens
        with pg_promote.Group(specs, runner, p['timeout']) as group:
            if action == 'switchover':
                if p['candidate'] is None:
                    raise OpsReadyError('A switchover needs candidate (the standby to promote).')
                result = pg_promote.switchover(group, p['primary'], p['candidate'], p['max_lag'], dry)
            elif action == 'failover':
                result = pg_promote.failover(group, p['primary'], p['candidate'], p['force_candidate'], dry,
                                             max_loss=p['max_loss'])
            else:
                if p['node'] is None:
                    raise OpsReadyError('A rejoin needs node (the server that becomes a standby of primary).')
                result = pg_promote.rejoin(group, p['node'], p['primary'], p['rewind'], dry)
        if p['action'] == 'plan':
            result['changed'] = False
        result['action'] = p['action']
        if result.get('plan'):
            result['diff'] = {'before': {'primary': p['primary']},
                              'after': {'primary': result['plan'].get('promote') or p['primary']}}
        module.exit_json(**result)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except Exception as exc:  # noqa: BLE001 - an unexpected error still reaches the operator, redacted
        module.fail_json(msg=runner.redact('db_failover failed unexpectedly: %s' % exc),
                         exception=runner.redact(traceback.format_exc()))


if __name__ == '__main__':
    main()
