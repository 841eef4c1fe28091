# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engine-neutral parts of switchover, failover and rejoin: the node description, the choice of the
candidate, the lag rules and the fence record.

The engine files (``pg_promote.py``) observe the servers and act; everything that decides (who is promoted,
who is fenced, whether a candidate is fit) lives here as plain functions over observed ``NodeState`` values,
so check mode and ``action=plan`` run exactly the decision code a real run runs, and unit tests drive it
without servers.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

ACTIONS = ('switchover', 'failover', 'rejoin', 'plan')
PLAN_OF = ('switchover', 'failover', 'rejoin')
FENCE_FILE = 'opsready_fence.json'
FENCE_LIMIT = 1024 * 1024   # a fence record is a few hundred bytes


@dataclass
class NodeSpec:
    """One database server of the replication group, as the play describes it."""

    name: str
    conn: ConnectionParams
    data_dir: Optional[str] = None        # server-side steps (stop, start, rewind, fence) need it on this host
    bindir: Optional[str] = None          # pg_ctl, pg_rewind, pg_controldata of the server's major version
    start_options: Optional[str] = None   # pg_ctl -o (the server's command-line settings)
    log_file: Optional[str] = None        # pg_ctl -l
    os_user: Optional[str] = None         # the server's account (default: owner of data_dir)
    start_command: List[str] = field(default_factory=list)
    stop_command: List[str] = field(default_factory=list)


@dataclass
class NodeState:
    """What one observation of a node found. LSNs are byte positions (PostgreSQL) as integers."""

    name: str
    reachable: bool
    error: str = ''
    in_recovery: Optional[bool] = None
    current_lsn: Optional[int] = None     # primary: pg_current_wal_lsn()
    receive_lsn: Optional[int] = None     # standby: pg_last_wal_receive_lsn()
    replay_lsn: Optional[int] = None      # standby: pg_last_wal_replay_lsn()
    receiver: str = ''                    # standby: pg_stat_wal_receiver.status ('' = no WAL receiver)
    sender: str = ''                      # standby: host:port it streams from
    replay_delay: Optional[float] = None  # seconds since the last replayed transaction committed
    read_only: Optional[bool] = None      # default_transaction_read_only
    timeline: Optional[int] = None
    verdict: str = ''                     # replication/status.py's verdict and reasons for this node
    reasons: List[str] = field(default_factory=list)
    status: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_primary(self) -> bool:
        return self.reachable and self.in_recovery is False

    @property
    def is_standby(self) -> bool:
        return self.reachable and self.in_recovery is True

    @property
    def position(self) -> int:
        """How far this node's WAL reaches: a standby's received or replayed WAL (whichever is further: a promoted
        standby replays all it received first), a primary's current WAL."""
        values = [v for v in (self.current_lsn, self.receive_lsn, self.replay_lsn) if v is not None]
        return max(values) if values else -1

    def as_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != 'status'}


def node_argument_spec(default_port: Optional[int] = 5432) -> Dict[str, Any]:
    """The ``nodes`` suboptions of db_failover and failover_drill. ``default_port=None``: the engine's port is
    filled in by ``node_specs`` (db_failover serves PostgreSQL and MariaDB)."""
    return dict(
        name=dict(type='str', required=True),
        login_host=dict(type='str'),
        login_port=dict(type='int', default=default_port),
        login_unix_socket=dict(type='path'),
        login_user=dict(type='str'),
        login_password=dict(type='str', no_log=True),
        connect_timeout=dict(type='int', default=5),
        data_dir=dict(type='path'),
        bindir=dict(type='path'),
        start_options=dict(type='str'),
        log_file=dict(type='path'),
        os_user=dict(type='str'),
        start_command=dict(type='list', elements='str'),
        stop_command=dict(type='list', elements='str'),
    )


def node_specs(items: Sequence[Dict[str, Any]], default_port: Optional[int] = None) -> List[NodeSpec]:
    specs = []
    for item in items:
        conn = ConnectionParams(host=item.get('login_host'), port=item.get('login_port') or default_port,
                                unix_socket=item.get('login_unix_socket'), user=item.get('login_user'),
                                password=item.get('login_password'), connect_timeout=item.get('connect_timeout') or 5)
        specs.append(NodeSpec(name=item['name'], conn=conn, data_dir=item.get('data_dir'), bindir=item.get('bindir'),
                              start_options=item.get('start_options'), log_file=item.get('log_file'),
                              os_user=item.get('os_user'), start_command=item.get('start_command') or [],
                              stop_command=item.get('stop_command') or []))
    return specs


def lsn_text(value: Optional[int]) -> Optional[str]:
    """An integer WAL position in PostgreSQL's X/X notation."""
    if value is None or value < 0:
        return None
    return '%X/%X' % (value >> 32, value & 0xFFFFFFFF)


def find_node(nodes: Sequence[NodeSpec], name: Optional[str], option: str) -> NodeSpec:
    for node in nodes:
        if node.name == name:
            return node
    raise OpsReadyError('%s=%r names no entry of nodes (nodes are: %s).'
                        % (option, name, ', '.join(n.name for n in nodes)))


def check_names(nodes: Sequence[NodeSpec]) -> None:
    seen = set()
    for node in nodes:
        if node.name in seen:
            raise OpsReadyError('nodes has two entries named %r: every node needs its own name.' % node.name)
        seen.add(node.name)
    if len(nodes) < 2:
        raise OpsReadyError('nodes lists %d server(s): a switchover or failover needs the primary and at least '
                            'one standby.' % len(nodes))


def standby_lag(primary: NodeState, standby: NodeState) -> Optional[int]:
    """Bytes of WAL the standby has not replayed yet (None when either position is unknown)."""
    if primary.current_lsn is None or standby.replay_lsn is None:
        return None
    return max(0, primary.current_lsn - standby.replay_lsn)


def check_switchover_candidate(primary: NodeState, candidate: NodeState, max_lag: int) -> int:
    """Refuse a candidate that cannot take over without losing data; returns its lag in bytes."""
    if not primary.is_primary:
        raise OpsReadyError('Switchover refused: %s is not a running primary (%s). For a primary that is gone, '
                            'run action=failover.' % (primary.name, primary.error or (
                                'it is in recovery' if primary.in_recovery else 'state unknown')))
    if not candidate.reachable:
        raise OpsReadyError('Switchover refused: the candidate %s is unreachable (%s). Nothing was changed; bring it '
                            'back or pick another candidate.' % (candidate.name, candidate.error))
    if not candidate.in_recovery:
        raise OpsReadyError('Switchover refused: the candidate %s is not a standby (it is a primary itself). Two '
                            'primaries must never exist: fence one of them first.' % candidate.name)
    if candidate.receiver != 'streaming':
        raise OpsReadyError('Switchover refused: the candidate %s does not stream WAL from %s (WAL receiver: %s). '
                            'Nothing was changed; fix its primary_conninfo and replication first (see '
                            'replication_info).' % (candidate.name, primary.name, candidate.receiver or 'none'))
    lag = standby_lag(primary, candidate)
    if lag is None:
        raise OpsReadyError('Switchover refused: the replay position of %s is unknown.' % candidate.name)
    if lag > max_lag:
        raise OpsReadyError('Switchover refused: the candidate %s lags %d bytes behind %s, more than max_lag=%d. '
                            'Nothing was changed; wait until it catches up (or raise max_lag: writes are paused '
                            'while it replays the rest).' % (candidate.name, lag, primary.name, max_lag),
                            lag_bytes=lag)
    return lag


def choose_failover_candidate(states: Sequence[NodeState], wanted: Optional[str], force: bool) -> NodeState:
    """The most advanced reachable standby (received or replayed WAL); ``wanted`` only when it is that far too
    (or ``force``). Ties go to the first listed: the play's order is the operator's preference."""
    standbys = [s for s in states if s.is_standby]
    if not standbys:
        raise OpsReadyError('Failover impossible: no reachable standby (%s).'
                            % '; '.join('%s: %s' % (s.name, s.error or ('primary' if s.is_primary else 'unknown'))
                                        for s in states))
    best = standbys[0]
    for state in standbys[1:]:
        if state.position > best.position:
            best = state
    if wanted is None or wanted == best.name:
        return best
    chosen = [s for s in states if s.name == wanted]
    if not chosen or not chosen[0].is_standby:
        raise OpsReadyError('Failover refused: the candidate %s is not a reachable standby (%s).'
                            % (wanted, chosen[0].error if chosen else 'unknown'))
    if chosen[0].position < best.position and not force:
        raise OpsReadyError('Failover refused: the candidate %s has received WAL up to %s, but %s has %s (%d bytes '
                            'more, which would be lost). Promote %s (leave candidate unset), or set '
                            'force_candidate=true to accept the loss.'
                            % (wanted, lsn_text(chosen[0].position), best.name, lsn_text(best.position),
                               best.position - chosen[0].position, best.name))
    return chosen[0]


def fence_record(node: str, new_primary: str, state: str, reason: str) -> Dict[str, Any]:
    """What a fence leaves behind: who was fenced, in favour of whom, when, how."""
    return {'node': node, 'new_primary': new_primary, 'state': state, 'reason': reason,
            'fenced_at': isoformat(utcnow())}


def write_fence_file(data_dir: str, record: Dict[str, Any], uid: int, gid: int) -> str:
    """The fence record in the data directory (an operator reading the directory sees why it is a standby), written
    through a descriptor of it (``safeio.ClusterDir``: the directory must be the server account's, ``uid``)."""
    with safeio.ClusterDir(data_dir, (uid, gid), what='data_dir') as cluster:
        cluster.write_atomic(FENCE_FILE, (json.dumps(record, indent=2, sort_keys=True) + '\n').encode('utf-8'), 0o600)
    return os.path.join(data_dir, FENCE_FILE)


def read_fence_file(data_dir: str) -> Optional[Dict[str, Any]]:
    """The fence record, or None. Never read through a link at its name nor a second hard link: the server's account
    can plant one to a JSON file of root's, which would end up in the module's result."""
    path = os.path.join(data_dir, FENCE_FILE)
    try:
        raw = safeio.read_regular(path, FENCE_LIMIT, what='Fence record', follow=False, single_link=True)
        data = json.loads(raw.decode('utf-8'))
    except (OpsReadyError, OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
