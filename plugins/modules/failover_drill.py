#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: failover_drill
short_description: Kill the PostgreSQL primary under a writer, fail over, and measure the RTO and RPO
version_added: 0.2.0
description:
  - "A writer commits numbered rows through the client endpoint (O(writer), e.g. PgBouncer). With O(mode=failover)
    the primary's postmaster is killed (SIGKILL), M(opsready.operations.db_failover)'s failover runs (fence,
    promote the most advanced standby), the endpoint is repointed (O(endpoint)) and the writer reconnects. With
    O(mode=switchover) a planned switchover runs instead, which must lose nothing."
  - "Measured, not estimated: C(measured.rto_seconds) is the time from the kill to the first write acknowledged
    after it (failover), or the longest pause between two acknowledged writes (switchover);
    C(measured.lost_commits) counts the acknowledged commits missing on the new primary and
    C(measured.rpo_seconds) is the time from the first lost commit's acknowledgement to the kill."
  - The result's RV(database) entry is what M(opsready.operations.drill_report) takes (steps, measured figures,
    objectives), so the drill gets the same JSON, Markdown and HTML report and history as the backup drills.
  - This is a destructive drill. Run it on a drill cluster, or on production only in a maintenance window.
  - The task runs on the primary's host (its data directory is needed for the kill and the fence).
author: opsready developers (@opsready)
options:
  mode:
    description: Kill the primary and fail over, or run a planned switchover.
    type: str
    choices: [failover, switchover]
    default: failover
  nodes:
    description: The replication group, as O(opsready.operations.db_failover#module:nodes).
    type: list
    elements: dict
    required: true
    suboptions:
      name: {description: Node name., type: str, required: true}
      login_host: {description: Host., type: str}
      login_port: {description: Port., type: int, default: 5432}
      login_unix_socket: {description: Socket directory., type: path}
      login_user: {description: A superuser., type: str}
      login_password: {description: Its password., type: str}
      connect_timeout: {description: Connection timeout in seconds., type: int, default: 5}
      data_dir: {description: Data directory on this host., type: path}
      bindir: {description: Directory of the server tools., type: path}
      start_options: {description: pg_ctl -o options., type: str}
      log_file: {description: pg_ctl -l log file., type: path}
      os_user: {description: The server's account., type: str}
      start_command: {description: Start command instead of pg_ctl start., type: list, elements: str}
      stop_command: {description: Stop command instead of pg_ctl stop., type: list, elements: str}
  primary:
    description: The primary to kill (failover) or to switch away from.
    type: str
    required: true
  candidate:
    description: The standby to promote (switchover, required; failover, default the most advanced).
    type: str
  writer:
    description: Where the writer connects (the client endpoint) and what it writes.
    type: dict
    required: true
    suboptions:
      host: {description: Endpoint host., type: str, required: true}
      port: {description: Endpoint port., type: int, required: true}
      database: {description: Database (PgBouncer entry) name., type: str, required: true}
      user: {description: Login., type: str, required: true}
      password: {description: Password., type: str}
      table: {description: The table the numbered rows go to (created when missing)., type: str,
              default: opsready_drill_writes}
      warmup: {description: Acknowledged writes before the primary is killed., type: int, default: 200}
      after: {description: Acknowledged writes required after the failover., type: int, default: 50}
      database_on_node:
        description: The database on the servers when the endpoint's name differs (a PgBouncer entry C(app) for
          C(dbname=appdb)); default O(writer.database).
        type: str
  endpoint:
    description:
      - The client endpoint to repoint to the promoted node, as M(opsready.operations.db_endpoint) options
        C(kind), C(path), C(entries), C(backend), C(reload), C(pid_file), C(reload_command). Omit when clients
        find the primary themselves (libpq C(target_session_attrs=read-write)).
      - Its C(path) is refused before the drill starts, check mode too, when an account other than root owns or
        can write a directory above its directory - it could link the name to a directory of root's.
    type: dict
  objectives:
    description: C(rto_seconds) (default 3600), C(rpo_seconds) (default 300), C(lost_commits) (switchover default 0).
    type: dict
    default: {}
  timeout:
    description: Seconds per step and for the writer to come back.
    type: int
    default: 60
notes:
  - Check mode is not supported in a meaningful way - the module then only reports what it would do.
extends_documentation_fragment:
  - opsready.operations.check_mode
seealso:
  - module: opsready.operations.db_failover
  - module: opsready.operations.drill_report
'''

EXAMPLES = r'''
- name: Failover drill through PgBouncer
  opsready.operations.failover_drill:
    mode: failover
    primary: db1
    nodes: "{{ pg_nodes }}"
    writer: {host: 127.0.0.1, port: 6432, database: app, user: app, password: "{{ vault_app }}"}
    endpoint: {path: /etc/pgbouncer/pgbouncer.ini, entries: [app]}
    objectives: {rto_seconds: 60, rpo_seconds: 5}
  register: drill

- name: Report it with the other drills
  opsready.operations.drill_report:
    report_dir: /var/lib/opsready/drills
    title: Failover drill
    started: "{{ drill.started }}"
    databases: ["{{ drill.database }}"]
'''

RETURN = r'''
measured:
  description: rto_seconds, rpo_seconds, lost_commits, lost (their numbers, up to 1000), acknowledged,
    max_acknowledged, in_doubt, reconnects, rpo_bytes (WAL the promoted node lacked), promoted.
  returned: success
  type: dict
database:
  description: The drill_report databases entry (name, engine, steps, measured, objectives).
  returned: success
  type: dict
started:
  description: When the drill started (ISO 8601).
  returned: success
  type: str
'''

import time  # noqa: E402
import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (  # noqa: E402
    promote as pg_promote)
from ansible_collections.opsready.operations.plugins.module_utils.replication import drill, endpoint  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import (  # noqa: E402
    check_names, find_node, node_argument_spec, node_specs)


def run_drill(module, p, runner):
    specs = node_specs(p['nodes'])
    check_names(specs)
    old = find_node(specs, p['primary'], 'primary')
    mode = p['mode']
    if mode == 'switchover' and not p['candidate']:
        raise OpsReadyError('mode=switchover needs candidate.')
    if mode == 'failover' and not old.data_dir:
        raise OpsReadyError('mode=failover kills the primary: nodes[].data_dir of %s is needed on this host.'
                            % old.name)
    w = p['writer']
    objectives = dict(p['objectives'] or {})
    if mode == 'switchover':
        objectives.setdefault('lost_commits', 0)
    if p['endpoint'] and p['endpoint'].get('path'):
        # Before anything is changed (check mode too), not when the endpoint is repointed after the promotion.
        endpoint.check_parents(p['endpoint']['path'], 'endpoint.path')
    clock = drill.Clock()
    steps = []
    if module.check_mode:
        return {'changed': False, 'msg': 'Would run a %s drill on %s under a writer through %s:%s.'
                % (mode, old.name, w['host'], w['port'])}
    writer = drill.Writer(ConnectionParams(host=w['host'], port=w['port'], user=w['user'], password=w['password'],
                                           connect_timeout=2), w['database'], w['table'], runner)
    writer.prepare()
    t = clock.mono0
    group = None
    writer.start()
    try:
        writer.wait(lambda: len(writer.acked) >= w['warmup'], p['timeout'], 'the writer did not commit %d rows'
                    % w['warmup'])
        steps.append({'name': 'writer', 'started': clock.iso(t), 'finished': clock.iso(_now()), 'ok': True,
                      'result': '%d commits acknowledged before the event' % len(writer.acked)})
        group = pg_promote.Group(specs, runner, p['timeout'])
        repointed = []

        def repoint(node):
            # Right after the promotion (failover: inside it, before the RPO and the other standbys).
            if not p['endpoint']:
                return None
            e = p['endpoint']
            started = _now()
            ep = endpoint.repoint(e.get('kind') or 'pgbouncer', e['path'], e['entries'], node.conn.host or '',
                                  node.conn.port or 5432, e.get('reload') or 'signal', e.get('pid_file'),
                                  e.get('reload_command') or [], e.get('backend'), [], False, runner,
                                  option='endpoint.path')
            repointed.append({'name': 'repoint', 'started': clock.iso(started), 'finished': clock.iso(_now()),
                              'ok': True, 'result': '%d entries changed' % len(ep['changes'])})
            return ep['changes']

        t_event = _now()
        if mode == 'failover':
            pid = drill.kill_postmaster(old.data_dir)
            t_event = _now()   # every process of the server got SIGKILL: no acknowledgement after this is its
            steps.append({'name': 'kill', 'started': clock.iso(t_event), 'finished': clock.iso(_now()), 'ok': True,
                          'result': 'SIGKILL to postmaster %d of %s' % (pid, old.name)})
            t = _now()
            result = pg_promote.failover(group, old.name, p['candidate'], False, False,
                                         on_promoted=lambda node: repoint(node.spec))
        else:
            t = t_event
            result = pg_promote.switchover(group, old.name, p['candidate'], 16 * 1024 * 1024, False)
            if p['endpoint']:
                repoint(find_node(specs, result.get('promoted'), 'promoted'))
        steps.append({'name': mode, 'started': clock.iso(t), 'finished': clock.iso(_now()), 'ok': True,
                      'result': result.get('msg')})
        promoted = result.get('promoted')
        target = find_node(specs, promoted, 'promoted')
        if repointed:
            steps.append(repointed[0])
        # failover: the first write after the kill (the old primary is dead, so it was on the new one);
        # switchover: the first write after the switchover returned (the new primary took it).
        since = t_event if mode == 'failover' else _now()
        writer.wait(lambda: writer.first_after(since) is not None, p['timeout'],
                    'no write was acknowledged after the %s' % mode)
        first = writer.first_after(since)
        steps.append({'name': 'first_write', 'started': clock.iso(t_event), 'finished': clock.iso(first), 'ok': True,
                      'result': 'first acknowledged write on %s' % promoted})
        count = len(writer.acked)
        writer.wait(lambda: len(writer.acked) >= count + w['after'], p['timeout'], 'the writer did not keep writing')
        t_end = _now()
    finally:
        writer.stop()
        if group is not None:
            group.close()
    rows = _present(target, w, writer.qualified, runner)
    measured = drill.measure(mode, writer.acked, rows, t_event, t_end,
                             first_after=first if mode == 'failover' else None)
    measured.update(in_doubt=len(writer.in_doubt), reconnects=writer.reconnects, rpo_bytes=result.get('rpo_bytes'),
                    promoted=promoted, fenced=(result.get('fence') or {}).get('state'))
    database = {'name': '%s drill %s' % (mode, old.name), 'engine': 'postgresql', 'source': old.name,
                'scratch': promoted, 'steps': steps, 'measured': measured, 'objectives': objectives}
    return {'changed': True, 'measured': measured, 'database': database, 'started': clock.iso(clock.mono0),
            'failover': {k: result.get(k) for k in ('promoted', 'fence', 'rpo_bytes', 'steps', 'msg')},
            'msg': '%s drill: RTO %ss, %d acknowledged commits lost (of %d), promoted %s.'
            % (mode, measured['rto_seconds'], measured['lost_commits'], measured['acknowledged'], promoted)}


def _now():
    return time.monotonic()


def _present(target, w, table, runner):
    """The row numbers the new primary holds, read from the node itself (not through the endpoint), with the nodes'
    login in a session pinned to pg_catalog: ``table`` is the writer's table schema-qualified (``Writer.qualified``),
    so the application database's search_path decides nothing here."""
    eng = get_engine('postgresql', target.conn, runner)
    database = w.get('database_on_node') or w['database']
    return [int(r[0]) for r in eng.query('SELECT n FROM %s' % table, database)]  # nosec B608 # format('%I.%I') by the server


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mode=dict(type='str', default='failover', choices=['failover', 'switchover']),
            nodes=dict(type='list', elements='dict', required=True, options=node_argument_spec()),
            primary=dict(type='str', required=True),
            candidate=dict(type='str'),
            writer=dict(type='dict', required=True, options=dict(
                host=dict(type='str', required=True), port=dict(type='int', required=True),
                database=dict(type='str', required=True), user=dict(type='str', required=True),
                password=dict(type='str', no_log=True), table=dict(type='str', default='opsready_drill_writes'),
                warmup=dict(type='int', default=200), after=dict(type='int', default=50),
                database_on_node=dict(type='str'))),
            endpoint=dict(type='dict'),
            objectives=dict(type='dict', default={}),
            timeout=dict(type='int', default=60),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    runner = ToolRunner(secrets=[n.get('login_password') for n in p['nodes']] + [p['writer'].get('password')])
    try:
        module.exit_json(**run_drill(module, p, runner))
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except Exception as exc:  # noqa: BLE001
        module.fail_json(msg=runner.redact('failover_drill failed unexpectedly: %s' % exc),
                         exception=runner.redact(traceback.format_exc()))


if __name__ == '__main__':
    main()
