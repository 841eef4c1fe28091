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

import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.backup import MySQLEngine
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.replication import status as repl_status
from ansible_collections.opsready.operations.plugins.module_utils.files.safeio import ClusterDir
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import (
    FENCE_FILE, NodeSpec, fence_record, write_fence_file)


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


# -- failover and rejoin --------------------------------------------------------------------------------------
def _triples(text: Optional[str]) -> List[Tuple[int, int, int]]:
    """Every GTID of a MariaDB list (``gtid_binlog_state`` has one per domain *and* server id)."""
    out = []
    for part in (text or '').replace('\n', ',').split(','):
        part = part.strip()
        if part:
            bits = part.split('-')
            if len(bits) != 3 or not all(b.isdigit() for b in bits):
                raise OpsReadyError('%r is not a MariaDB GTID (domain-server-sequence).' % part)
            out.append((int(bits[0]), int(bits[1]), int(bits[2])))
    return out


def errant_gtids(node_binlog_pos: str, primary_binlog_state: str, primary_current_pos: str) -> List[Dict[str, Any]]:
    """The GTIDs a node wrote that the (new) primary never had: for each domain, the node's last binlogged GTID
    ``d-s-n`` is errant unless the primary logged server ``s``'s transactions in domain ``d`` up to ``n`` or past
    it (``gtid_binlog_state`` keeps the last sequence per domain and server) or replayed up to there
    (``gtid_current_pos``: a primary without log_slave_updates). Compared per domain *and* server id: a new
    primary that went on writing has higher sequence numbers in the domain than the transactions of the old one
    it never received, so comparing sequence numbers alone would miss exactly the data a failover lost.
    ``transactions``: how many of the node's own transactions are missing (None when the primary has none of
    that server's in that domain)."""
    logged: Dict[Tuple[int, int], int] = {}
    for d, s, n in _triples(primary_binlog_state):
        logged[(d, s)] = max(n, logged.get((d, s), 0))
    current = {d: (s, n) for d, s, n in _triples(primary_current_pos)}
    out = []
    for d, s, n in _triples(node_binlog_pos):
        have = logged.get((d, s))
        cur = current.get(d)
        if cur is not None and cur[0] == s:
            have = max(have or 0, cur[1])
        if have is not None and have >= n:
            continue
        out.append({'gtid': '%d-%d-%d' % (d, s, n), 'domain': d, 'server_id': s,
                    'primary_has': None if have is None else '%d-%d-%d' % (d, s, have),
                    'transactions': None if have is None else n - have})
    return out


def _errant_text(errant: Sequence[Dict[str, Any]]) -> str:
    known = [e['transactions'] for e in errant if e['transactions'] is not None]
    count = ('%d transaction(s)' % sum(known)) if len(known) == len(errant) else 'transactions'
    return '%s up to %s' % (count, ', '.join(e['gtid'] for e in errant))


def _fence(node: MariaNode, st: Dict[str, Any], new_primary: str, check_mode: bool) -> Dict[str, Any]:
    """Make a reachable old primary refuse writes: ``read_only=ON`` (and ``super_read_only`` where the server has
    it: MySQL), every client session killed (an open transaction cannot commit through the fence afterwards).
    Writes nothing to its binlog (a write there would be an errant transaction). The record goes to
    ``<data_dir>/opsready_fence.json`` when ``data_dir`` is on this host, and always into the result."""
    if st.get('reachable') is False:
        record = fence_record(node.name, new_primary, 'unreachable', 'the old primary could not be reached: it is '
                              'NOT fenced. Keep it from starting writable (read_only=ON in its configuration) and '
                              'bring it back with action=rejoin.')
        record['fenced'] = False
        return record
    settings = st.get('settings') or {}
    sets = ['read_only'] + (['super_read_only'] if 'super_read_only' in settings else [])
    record = fence_record(node.name, new_primary, 'read_only', 'SET GLOBAL %s; client sessions killed'
                          % ', '.join('%s = ON' % v for v in sets))
    record['fenced'] = True
    record['variables'] = sets
    if check_mode:
        return record
    node.query('SET GLOBAL %s' % ', '.join('%s = ON' % v for v in sets))
    _kill_clients(node)
    if node.spec.data_dir and os.path.isdir(node.spec.data_dir):
        info = os.stat(node.spec.data_dir)
        record['file'] = write_fence_file(node.spec.data_dir, record, info.st_uid, info.st_gid)
    return record


def _clear_fence(node: MariaNode) -> None:
    """Remove the fence record of a node that replicates again, through a descriptor of its data directory.

    The directory above a data directory may be the server account's (/srv/mysql): it could rename the data
    directory away and put a link to another one (another cluster's, fenced) at its name, and an unlink by path would
    remove that cluster's record. ``ClusterDir`` opens the directory without following a link at its name, judges it
    (owned by the account that owns it as ``_fence`` wrote the record, writable by nobody else) and removes the name
    in it, never through a link."""
    data_dir = node.spec.data_dir
    if not data_dir or not os.path.lexists(data_dir):
        return
    info = os.lstat(data_dir)
    with ClusterDir(data_dir, (info.st_uid, info.st_gid), what='data_dir of %s' % node.name) as cluster:
        cluster.remove(FENCE_FILE)


def _kill_clients(node: MariaNode) -> None:
    for row in node.query("SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND COMMAND "
                          "NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', 'Slave_SQL')"):
        try:
            node.query('KILL CONNECTION %d' % int(row[0]))
        except OpsReadyError:
            pass   # the session ended by itself


def _change_master_sql(primary: MariaNode, repl_user: str, repl_password: Optional[str]) -> str:
    host = primary.spec.conn.host or '127.0.0.1'
    return ("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, "
            "MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos;\n"
            % (quote_literal(host), primary.spec.conn.port or 3306, quote_literal(repl_user),
               quote_literal(repl_password or '')))


def _follows(st: Dict[str, Any], primary: MariaNode) -> bool:
    """Both threads run and the connection points at ``primary``'s host and port (as the play names them: a
    different spelling of the same host only means the CHANGE MASTER is done again)."""
    port = primary.spec.conn.port or 3306
    host = primary.spec.conn.host or '127.0.0.1'
    return _threads_running(st) and any(u.get('upstream_port') == port and u.get('upstream_host') == host
                                        for u in st.get('upstreams') or [])


def failover(specs: Sequence[NodeSpec], primary: str, candidate: Optional[str], force_candidate: bool,
             repl_user: str, repl_password: Optional[str], timeout: int, check_mode: bool, runner: ToolRunner,
             flavor: str = 'mariadb') -> Dict[str, Any]:
    """The primary is gone: fence it where reachable, promote the replica holding the most GTIDs (received: the
    relay log is applied before it opens), repoint the other replicas. RPO: the old primary's GTIDs the new one
    lacks, when the old primary can still be read; otherwise unknown (rejoin counts them later)."""
    nodes = {s.name: MariaNode(s, runner, flavor) for s in specs}
    runner.add_secret(repl_password)
    states = {n: node.status() for n, node in nodes.items()}
    old, so = nodes[primary], states[primary]
    summary = [_summary(n, states[n]) for n in nodes]
    writable = [n for n, s in states.items() if n != primary and s.get('role') == 'primary' and not s.get('read_only')]
    if writable:
        # A re-run after a done failover: the old primary may be back (MariaDB starts writable): fence it again.
        record = None
        if so.get('reachable') is not False and not so.get('read_only'):
            record = _fence(old, so, writable[0], check_mode)
        done = '' if record is None else '; %s %s fenced' % (primary, 'would be' if check_mode else 'was')
        return {'changed': record is not None, 'promoted': None, 'primary': writable[0], 'fence': record,
                'nodes': summary, 'msg': '%s is already the primary; nothing to promote%s.' % (writable[0], done)}
    replicas = {n: s for n, s in states.items() if n != primary and s.get('role') == 'standby'}
    if so.get('role') == 'primary' and any(_threads_running(s) for s in replicas.values()):
        raise OpsReadyError('Failover refused: %s is up and its replicas replicate from it. For a planned change run '
                            'action=switchover; if it must go, stop it first.' % primary)
    if not replicas:
        raise OpsReadyError('Failover impossible: no reachable replica (%s).' % '; '.join(
            '%s: %s' % (n, s.get('error') or s.get('role')) for n, s in states.items() if n != primary))
    ranking = repl_status.most_advanced(replicas, 'received')
    best = [n for n in nodes if n in ranking['best']]   # the play's order among equals
    if not best:
        raise OpsReadyError('Failover refused: the replicas\' GTID positions diverged (%s): none holds everything '
                            'the others hold, so any promotion loses transactions another replica has. Compare '
                            'them (replication_info) and name candidate with force_candidate=true.'
                            % ', '.join('%s: %s' % (n, (s.get('position') or {}).get('received'))
                                        for n, s in replicas.items()))
    chosen = best[0]
    if candidate is not None and candidate != chosen:
        if candidate not in replicas:
            raise OpsReadyError('Failover refused: the candidate %s is not a reachable replica (%s).'
                                % (candidate, states[candidate].get('error') or states[candidate].get('role')))
        short = repl_status.behind(replicas[chosen], replicas[candidate], 'received')
        if candidate not in best and not force_candidate:
            raise OpsReadyError('Failover refused: the candidate %s has received %s, but %s has %s (%s transactions '
                                'more, which would be lost). Promote %s (leave candidate unset), or set '
                                'force_candidate=true to accept the loss.'
                                % (candidate, replicas[candidate]['position']['received'], chosen,
                                   replicas[chosen]['position']['received'],
                                   (short or {}).get('transactions', 'unknown'), chosen))
        chosen = candidate
    new, sn = nodes[chosen], replicas[chosen]
    others = [n for n in replicas if n != chosen]
    positions = {n: (s.get('position') or {}).get('received') for n, s in replicas.items()}
    lacks = {n: (repl_status.behind(sn, s, 'received') or {}).get('transactions') for n, s in replicas.items()
             if n != chosen}
    rpo: Optional[int] = None
    old_pos = None
    if so.get('reachable') is not False:
        old_pos = (so.get('position') or {}).get('gtid_binlog_pos')
        rpo = (repl_status.behind(so, sn, 'received') or {}).get('transactions')
    plan = {'action': 'failover', 'engine': flavor, 'promote': chosen, 'fence': primary, 'repoint': others,
            'positions': positions, 'candidate_position': positions[chosen], 'others_behind': lacks,
            'old_primary_reachable': so.get('reachable') is not False, 'old_primary_gtid_binlog_pos': old_pos,
            'ranking': {'best': best, 'incomparable': ranking['incomparable']}}
    result: Dict[str, Any] = {'plan': plan, 'nodes': summary, 'rpo_transactions': rpo}
    if check_mode:
        result.update(changed=True, fence=_fence(old, so, chosen, True),
                      msg='Would fence %s and promote %s (GTIDs %s); RPO %s transactions.'
                      % (primary, chosen, positions[chosen], 'unknown' if rpo is None else rpo))
        return result
    steps: List[Dict[str, Any]] = []

    def step(what: str, node: str, started: float) -> None:
        steps.append({'step': what, 'node': node, 'seconds': round(time.monotonic() - started, 3)})

    # Fence first: once the candidate is writable, a reachable old primary would be a second primary.
    t = time.monotonic()
    record = _fence(old, so, chosen, False)
    step('fence (%s)' % record['state'], primary, t)
    if record.get('fenced'):
        # Read again behind the fence: commits that were in flight when it was observed count too.
        old_pos = old.value('SELECT @@GLOBAL.gtid_binlog_pos')
        rpo = repl_status.missing('mariadb_gtid', positions[chosen] or '', old_pos)
        plan['old_primary_gtid_binlog_pos'] = old_pos
    t = time.monotonic()
    # The relay log holds what the IO thread received: apply all of it before opening for writes (the ranking
    # counted it), with the IO thread stopped so nothing arrives from a half-alive old primary meanwhile.
    new.query('STOP SLAVE IO_THREAD')
    received = positions[chosen] or ''
    waited = new.value('SELECT MASTER_GTID_WAIT(%s, %d)' % (quote_literal(received), timeout)) if received else '0'
    step('apply the relay log up to %s' % received, chosen, t)
    if waited != '0':
        raise OpsReadyError('Failover stopped: %s did not apply its relay log up to %s within %ss (SQL thread '
                            'error? see replication_info). %s is fenced; nothing was promoted.'
                            % (chosen, received, timeout, primary), steps=steps, fence=record)
    t = time.monotonic()
    new.query('STOP SLAVE')
    new.query('RESET SLAVE ALL')
    new.query('SET GLOBAL read_only = OFF')
    step('promote (STOP SLAVE, RESET SLAVE ALL, read_only=OFF)', chosen, t)
    sql = _change_master_sql(new, repl_user, repl_password)
    repointed = []
    for name in others:
        t = time.monotonic()
        nodes[name].run_stdin('STOP SLAVE;\n' + sql + 'START SLAVE;\n')
        step('replicate from %s' % chosen, name, t)
        repointed.append(name)
    after = [_summary(n, nodes[n].status()) for n in nodes]
    result.update(changed=True, promoted=chosen, primary=chosen, fence=record, repointed=repointed, steps=steps,
                  nodes=after, rpo_transactions=rpo,
                  msg='Fenced %s (%s) and promoted %s; %s transactions of %s were not replicated.'
                  % (primary, record['state'], chosen, 'unknown' if rpo is None else rpo, primary))
    if rpo is None:
        result['rpo_note'] = ('the old primary could not be read: its GTID position (and the RPO) is unknown; '
                              'action=rejoin reports its transactions the new primary lacks')
    return result


def rejoin(specs: Sequence[NodeSpec], node_name: str, primary: str, repl_user: str, repl_password: Optional[str],
           timeout: int, check_mode: bool, runner: ToolRunner, flavor: str = 'mariadb') -> Dict[str, Any]:
    """``node_name`` (an old primary, started again) becomes a GTID replica of ``primary``. Refused when it holds
    errant transactions (GTIDs the new primary lacks): replicating on top of them would keep rows no other server
    has, and with gtid_strict_mode the IO thread stops anyway."""
    nodes = {s.name: MariaNode(s, runner, flavor) for s in specs}
    runner.add_secret(repl_password)
    node, new = nodes[node_name], nodes[primary]
    st, sp = node.status(), new.status()
    summary = [_summary(node_name, st), _summary(primary, sp)]
    if sp.get('reachable') is False or sp.get('role') != 'primary':
        raise OpsReadyError('Rejoin refused: %s is not a reachable primary (%s).'
                            % (primary, sp.get('error') or sp.get('role')))
    if st.get('reachable') is False:
        raise OpsReadyError('Rejoin refused: %s cannot be reached (%s). Start it (with read_only=ON in its '
                            'configuration, so it takes no writes), then run rejoin again.'
                            % (node_name, st.get('error')))
    if _follows(st, new):
        return {'changed': False, 'msg': '%s already replicates from %s.' % (node_name, primary), 'nodes': summary,
                'errant': []}
    state_row = new.query('SELECT @@GLOBAL.gtid_binlog_state, @@GLOBAL.gtid_current_pos')
    primary_state, primary_current = (state_row[0] + ['', ''])[:2] if state_row else ('', '')
    node_pos = (st.get('position') or {}).get('gtid_binlog_pos') or ''
    errant = errant_gtids(node_pos, primary_state, primary_current)
    plan = {'action': 'rejoin', 'engine': flavor, 'node': node_name, 'primary': primary,
            'node_gtid_binlog_pos': node_pos, 'primary_gtid_binlog_state': primary_state, 'errant': errant}
    if errant:
        raise OpsReadyError(
            'Rejoin refused: %s executed %s that %s does not have (errant transactions: written on the old primary '
            'after %s was promoted, or written to a replica directly). Replicating on top of them would keep rows '
            'no other server has. Fix: read them (mariadb-binlog --start-position=<the last GTID %s has of that '
            'server> on %s\'s binlogs), re-apply on %s what must be kept, then re-clone %s from %s (mariadb-backup, '
            'or restore a fresh backup) and run rejoin. %s was left as it is%s.'
            % (node_name, _errant_text(errant), primary, primary, primary, node_name, primary, node_name, primary,
               node_name, '' if st.get('read_only') else ' (it is writable: SET GLOBAL read_only=ON there)'),
            errant=errant, plan=plan)
    if check_mode:
        return {'changed': True, 'plan': plan, 'nodes': summary, 'errant': [],
                'msg': 'Would fence %s (read_only) and make it a GTID replica of %s (CHANGE MASTER ... '
                'MASTER_USE_GTID=slave_pos from %s).' % (node_name, primary, node_pos or 'the start')}
    steps: List[Dict[str, Any]] = []
    t = time.monotonic()
    if not st.get('read_only') or st.get('role') == 'primary':
        _fence(node, st, primary, False)
    # Where it stands: its binlog (no errant GTIDs, so all of it is in the new primary's history) or what it
    # replicated earlier, whichever is further per domain (a replica without log_slave_updates binlogs nothing
    # it replicated). Set explicitly, then MASTER_USE_GTID=slave_pos.
    start = repl_status.merge_mariadb_gtids(node_pos, (st.get('position') or {}).get('gtid_slave_pos'))
    plan['start_position'] = start
    node.run_stdin('STOP SLAVE;\nSET GLOBAL gtid_slave_pos = %s;\n' % quote_literal(start)
                   + _change_master_sql(new, repl_user, repl_password) + 'START SLAVE;\n')
    steps.append({'step': 'replicate from %s (CHANGE MASTER ... MASTER_USE_GTID=slave_pos)' % primary,
                  'node': node_name, 'seconds': round(time.monotonic() - t, 3)})
    t = time.monotonic()
    pos = new.value('SELECT @@GLOBAL.gtid_binlog_pos')
    deadline = time.monotonic() + timeout
    while True:
        now = node.status()
        if _threads_running(now) and node.value('SELECT MASTER_GTID_WAIT(%s, 0.2)' % quote_literal(pos)) == '0':
            break
        ups = now.get('upstreams') or [{}]
        errors = '; '.join(str(u.get(k)) for u in ups for k in ('last_io_error', 'last_sql_error') if u.get(k))
        if time.monotonic() > deadline or (errors and not _threads_running(now)
                                           and time.monotonic() - t > min(5.0, timeout)):
            waited = round(time.monotonic() - t)
            why = errors or 'threads not running'
            raise OpsReadyError('Rejoin: %s does not replicate from %s after %ss (%s). It stays read_only; see '
                                'SHOW SLAVE STATUS there.' % (node_name, primary, waited, why), steps=steps)
        time.sleep(0.1)
    steps.append({'step': 'caught up with %s' % pos, 'node': node_name, 'seconds': round(time.monotonic() - t, 3)})
    _clear_fence(node)   # a replica now: the fence did its job
    after = [_summary(node_name, node.status()), _summary(primary, new.status())]
    return {'changed': True, 'plan': plan, 'steps': steps, 'nodes': after, 'rejoined': node_name, 'errant': [],
            'msg': '%s replicates from %s with GTID and stays read_only.' % (node_name, primary)}
