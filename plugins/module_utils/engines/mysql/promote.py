# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB GTID switchover (planned, zero loss) through the registry's MariaDB engine.

Steps: the candidate must be a replica with both threads running and at most ``max_lag`` transactions behind
(replication/status.py); writes stop on the primary (``read_only=ON``, every client session but the replication
dump threads killed); the candidate waits with ``MASTER_GTID_WAIT`` for the primary's ``gtid_binlog_pos``; it is
promoted (``STOP SLAVE; RESET SLAVE ALL; read_only=OFF``); the old primary, still ``read_only``, becomes its
replica (``gtid_slave_pos`` = its own ``gtid_binlog_pos``, ``CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos``);
the module waits until both replica threads run. If the candidate does not catch up, the old primary's
``read_only`` is lifted again and nothing else changed. ``read_only`` set here is not persistent: keep
``read_only=ON`` in the replicas' configuration files.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, cast

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.backup import MySQLEngine
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.replication import status as repl_status
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import NodeSpec


def quote_literal(value: str) -> str:
    """A plain string literal: CHANGE MASTER TO and MASTER_GTID_WAIT take no charset introducer or hex literal
    (what mysql_quote.quote_literal makes). Backslash and quote escaped; NUL and newlines refused."""
    if any(c in value for c in '\x00\n\r'):
        raise OpsReadyError('A replication host, user or password cannot contain NUL or line breaks.')
    return "'" + value.replace('\\', '\\\\').replace("'", "\\'") + "'"


class MariaNode:
    def __init__(self, spec: NodeSpec, runner: ToolRunner, flavor: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.runner = runner
        runner.add_secret(spec.conn.password)
        self.engine = cast(MySQLEngine, get_engine(flavor, spec.conn, runner))

    def query(self, sql: str) -> List[List[str]]:
        return self.engine.query(sql)

    def run_stdin(self, sql: str) -> None:
        """SQL on stdin (CHANGE MASTER carries the replication password: never on a command line)."""
        with self.engine.defaults_file() as head:
            self.runner.run(self.engine.client_argv(head), data=sql.encode('utf-8'),
                            timeout=self.spec.conn.connect_timeout + 60, what='mariadb')

    def status(self) -> Dict[str, Any]:
        try:
            return repl_status.gather(self.engine)
        except OpsReadyError as exc:
            return {'reachable': False, 'error': exc.message}

    def value(self, sql: str) -> str:
        rows = self.query(sql)
        return rows[0][0] if rows and rows[0] else ''


def _summary(name: str, st: Dict[str, Any]) -> Dict[str, Any]:
    if st.get('reachable') is False:
        return {'name': name, 'role': 'unreachable', 'error': st.get('error')}
    pos = st.get('position') or {}
    return {'name': name, 'role': st.get('role'), 'read_only': st.get('read_only'), 'verdict': st.get('verdict'),
            'received': pos.get('received'), 'replayed': pos.get('replayed'), 'lag_seconds': st.get('lag_seconds')}


def _threads_running(st: Dict[str, Any]) -> bool:
    ups = st.get('upstreams') or []
    return bool(ups) and all(u.get('io_running_ok') and u.get('sql_running_ok') for u in ups)


def switchover(specs: Sequence[NodeSpec], primary: str, candidate: str, max_lag: int, repl_user: str,
               repl_password: Optional[str], timeout: int, check_mode: bool, runner: ToolRunner,
               flavor: str = 'mariadb') -> Dict[str, Any]:
    nodes = {s.name: MariaNode(s, runner, flavor) for s in specs}
    runner.add_secret(repl_password)
    old, new = nodes[primary], nodes[candidate]
    so, sn = old.status(), new.status()
    summary = [_summary(n, nodes[n].status() if n not in (primary, candidate) else (so if n == primary else sn))
               for n in nodes]
    if sn.get('role') == 'primary' and so.get('role') == 'standby' and _threads_running(so):
        return {'changed': False, 'msg': '%s is already the primary and %s replicates from it.' % (candidate, primary),
                'nodes': summary}
    if so.get('reachable') is False or so.get('role') != 'primary':
        raise OpsReadyError('Switchover refused: %s is not a reachable primary (%s).'
                            % (primary, so.get('error') or so.get('role')))
    if sn.get('reachable') is False or sn.get('role') != 'standby':
        raise OpsReadyError('Switchover refused: the candidate %s is not a reachable replica (%s). Nothing was changed.'
                            % (candidate, sn.get('error') or sn.get('role')))
    if not _threads_running(sn):
        raise OpsReadyError('Switchover refused: the candidate %s does not replicate (IO or SQL thread stopped). '
                            'Nothing was changed; see replication_info.' % candidate)
    behind = repl_status.behind(so, sn, 'replayed') or {}
    lag = behind.get('transactions')
    if lag is None:
        raise OpsReadyError('Switchover refused: the GTID positions of %s and %s are not comparable (diverged).'
                            % (primary, candidate))
    if lag > max_lag:
        raise OpsReadyError('Switchover refused: the candidate %s lags %d transactions behind %s, more than '
                            'max_lag=%d. Nothing was changed.' % (candidate, lag, primary, max_lag), lag=lag)
    plan = {'action': 'switchover', 'engine': flavor, 'promote': candidate, 'demote': primary,
            'candidate_lag_transactions': lag}
    if check_mode:
        return {'changed': True, 'plan': plan, 'nodes': summary,
                'msg': 'Would promote %s and make %s its GTID replica (lag %d transactions).'
                % (candidate, primary, lag)}
    steps: List[Dict[str, Any]] = []

    def step(what: str, node: str, started: float) -> None:
        steps.append({'step': what, 'node': node, 'seconds': round(time.monotonic() - started, 3)})

    t = time.monotonic()
    old.query('SET GLOBAL read_only = ON')
    for row in old.query("SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND COMMAND "
                         "NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', 'Slave_SQL')"):
        try:
            old.query('KILL CONNECTION %d' % int(row[0]))
        except OpsReadyError:
            pass   # the session ended by itself
    step('stop writes (read_only, sessions killed)', primary, t)
    pos = old.value('SELECT @@GLOBAL.gtid_binlog_pos')
    t = time.monotonic()
    waited = new.value('SELECT MASTER_GTID_WAIT(%s, %d)' % (quote_literal(pos), timeout))
    step('MASTER_GTID_WAIT %s' % pos, candidate, t)
    if waited != '0':
        old.query('SET GLOBAL read_only = OFF')
        raise OpsReadyError('Switchover rolled back: %s did not apply %s within %ss; %s takes writes again.'
                            % (candidate, pos, timeout, primary), steps=steps)
    t = time.monotonic()
    new.query('STOP SLAVE')
    new.query('RESET SLAVE ALL')
    new.query('SET GLOBAL read_only = OFF')
    step('promote (STOP SLAVE, RESET SLAVE ALL, read_only=OFF)', candidate, t)
    t = time.monotonic()
    host = new.spec.conn.host or '127.0.0.1'
    sql = ("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos;\n"
           "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, "
           "MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos;\nSTART SLAVE;\n"
           % (quote_literal(host), new.spec.conn.port or 3306, quote_literal(repl_user),
              quote_literal(repl_password or '')))
    old.run_stdin(sql)
    step('replicate from %s (CHANGE MASTER ... MASTER_USE_GTID=slave_pos)' % candidate, primary, t)
    for name, node in nodes.items():
        if name in (primary, candidate):
            continue
        if node.status().get('role') == 'standby':
            node.run_stdin('STOP SLAVE;\n' + sql.split('\n', 1)[1].replace(
                'START SLAVE;\n', 'START SLAVE;\n'))
    deadline = time.monotonic() + timeout
    while not _threads_running(old.status()):
        if time.monotonic() > deadline:
            raise OpsReadyError('Switchover done, but %s does not replicate from %s after %ss (SHOW SLAVE STATUS '
                                'there).' % (primary, candidate, timeout), steps=steps)
        time.sleep(0.1)
    after = [_summary(n, nodes[n].status()) for n in nodes]
    return {'changed': True, 'plan': plan, 'promoted': candidate, 'demoted': primary, 'steps': steps, 'nodes': after,
            'msg': 'Promoted %s; %s replicates from it with GTID and stays read_only.' % (candidate, primary)}
