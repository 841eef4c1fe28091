# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL switchover, failover, fencing and rejoin (streaming replication, PostgreSQL 13 and later).

SQL goes through the engine registry's PostgreSQL engine (its psql argv, environment and error classes); the
server-side steps (pg_ctl stop/start, pg_controldata, pg_rewind, pg_waldump, the files in the data directory)
run on the host that holds the data directory, as the data directory's owner.

Safety rules every path keeps (the tests prove each):
- never two primaries: the old primary is stopped (switchover) or fenced (failover) BEFORE the candidate is
  promoted, and a fenced data directory holds ``standby.signal`` (a restart comes up read-only in recovery);
- a switchover loses nothing: the old primary's clean shutdown writes a shutdown checkpoint, and the candidate
  is promoted only once it replayed past that checkpoint; otherwise the old primary is started again unchanged;
- a candidate that dies during promotion leaves the old primary stopped and fenced, never restarted as primary.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import pwd
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import (
    conf_literal, conninfo_value, quote_literal)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import conninfo as conninfo_parser
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import (
    PostgresEngine, find_client_tool, lsn_to_int)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import (
    PostgresClient, PsqlSession)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.postmaster import postmaster_pid
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_client, get_engine
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.replication import status as repl_status
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import (
    FENCE_FILE, NodeSpec, NodeState, check_switchover_candidate, choose_failover_candidate, fence_record, lsn_text,
    read_fence_file, standby_lag, write_fence_file)

CONF_LIMIT = 16 * 1024 * 1024   # postgresql.auto.conf read back by fence/rejoin


# -- connection strings ------------------------------------------------------------------------------------
def parse_conninfo(text: str) -> Dict[str, str]:
    """A libpq connection string (``key=value ...`` or a URI) as a dict (``conninfo.parse``): an error names where
    it cannot be read, never the string (it holds the replication password)."""
    return conninfo_parser.parse(text.strip())


def build_conninfo(values: Dict[str, str]) -> str:
    return ' '.join('%s=%s' % (k, conninfo_value(str(v))) for k, v in values.items() if v is not None)


def slot_name(node: str) -> str:
    """A physical slot name for a follower (lower-case letters, digits and underscores, at most 63)."""
    return (re.sub(r'[^a-z0-9_]', '_', node.lower()) or 'standby')[:63]


def follow_conninfo(template: str, primary: NodeSpec, application_name: str) -> str:
    """``primary_conninfo`` for a standby of ``primary``: the template's credentials and TLS settings (it is a
    current standby's own primary_conninfo) with host and port of the new primary."""
    values = parse_conninfo(template) if template else {}
    conn = primary.conn
    if conn.unix_socket:
        values['host'] = conn.unix_socket
    else:
        values['host'] = conn.host or 'localhost'
    values['port'] = str(conn.port or 5432)
    if not values.get('user') and conn.user:
        values['user'] = conn.user
    if not values.get('password') and not values.get('passfile') and conn.password:
        values['password'] = conn.password
    values.pop('dbname', None)
    values['application_name'] = application_name
    return build_conninfo(values)


# -- one node ----------------------------------------------------------------------------------------------
class PgNode:
    """One PostgreSQL server: SQL through the registry's engine, server-side tools as the data dir's owner."""

    def __init__(self, spec: NodeSpec, runner: ToolRunner) -> None:
        self.spec = spec
        self.name = spec.name
        self.runner = runner
        runner.add_secret(spec.conn.password)
        self.engine = cast(PostgresEngine, get_engine('postgresql', spec.conn, runner))
        # primary_conninfo holds the replication password: read through a runner that does not redact it (the
        # value goes into the followers' configuration, never into a result or message).
        raw_runner = ToolRunner(env=runner.env)
        self._raw_engine = cast(PostgresEngine, get_engine('postgresql', spec.conn, raw_runner))
        raw_runner.secrets.clear()   # the engine registered the password; argv never holds it (the environment does)
        # One psql session per node, kept open: a failover observes every node and then promotes one inside the
        # downtime, and each psql start, connection and login costs more there than the query itself.
        self.client = cast(PostgresClient, get_client('postgresql', spec.conn, runner))
        self.client.app = 'opsready-failover'
        self._session: Optional[PsqlSession] = None

    # SQL -------------------------------------------------------------------------------------------------
    def session(self) -> PsqlSession:
        """The node's open session (a new one when there is none or the last one ended)."""
        if self._session is None or not self._session.alive:
            if self._session is not None:
                self._session.close()
            self._session = self.client.session()
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def query(self, sql: str, timeout: Optional[float] = None) -> List[List[str]]:
        """Rows of ``sql`` over the node's session. For reads and idempotent statements only: when a session that
        had answered before was lost (a restarted server, a terminated backend), the query is sent once more on a
        new one. A server that cannot be reached at all fails at once (no second connection attempt)."""
        session = self.session()
        kwargs: Dict[str, Any] = {} if timeout is None else {'timeout': timeout}
        try:
            return session.query(sql, **kwargs)
        except OpsReadyError:
            if not session.lost:
                raise
        return self.session().query(sql, **kwargs)

    def observe(self) -> NodeState:
        """The node's replication status (replication/status.py, the same one query replication_info runs)."""
        try:
            status = repl_status.gather(_SessionSql(self))
        except OpsReadyError as exc:
            return NodeState(self.name, reachable=False, error=exc.message)

        def lsn(text: Optional[str]) -> Optional[int]:
            return lsn_to_int(text) if text else None

        upstream = status.get('upstream') or {}
        sender = '%s:%s' % (upstream.get('sender_host'), upstream.get('sender_port')) if upstream else ''
        return NodeState(self.name, reachable=True, in_recovery=bool(status['in_recovery']),
                         current_lsn=lsn(status.get('current_lsn')), receive_lsn=lsn(status.get('receive_lsn')),
                         replay_lsn=lsn(status.get('replay_lsn')), receiver=upstream.get('status') or '',
                         sender=sender, replay_delay=status.get('lag_seconds'),
                         read_only=(status.get('settings') or {}).get('default_transaction_read_only') == 'on',
                         timeline=status.get('timeline'), verdict=status.get('verdict', ''),
                         reasons=[r.get('message', '') for r in status.get('reasons') or []], status=status)

    def follow_template(self) -> Tuple[str, bool]:
        """This standby's primary_conninfo and whether it streams through a replication slot: the model for
        every node that will follow a new primary."""
        rows = self._raw_engine.query("SELECT current_setting('primary_conninfo'), "
                                      "current_setting('primary_slot_name')")
        return (rows[0][0], bool(rows[0][1])) if rows else ('', False)

    def ensure_slot(self, slot: str) -> None:
        """A physical slot for a follower on this (new) primary: without it, a follower with primary_slot_name
        is refused, and the WAL it still needs could be recycled."""
        lit = quote_literal(slot)
        self.query('SELECT pg_create_physical_replication_slot(%s) WHERE NOT EXISTS (SELECT 1 FROM '  # nosec B608 # values through quote_literal
                   'pg_replication_slots WHERE slot_name = %s)' % (lit, lit))

    # Each poll sleeps 10 ms in the server first (FROM pg_sleep: the scan runs before the target list), and that
    # sleep ends the backend when the postmaster is gone (WL_EXIT_ON_PM_DEATH): an answer proves the postmaster was
    # alive just before recovery was seen to have ended. A bare pg_is_in_recovery() does not: a backend answers it
    # after its postmaster was killed, and the startup process may still finish the promotion (a dead server was
    # once reported promoted that way). ALIVE_SQL, sent after the end of recovery was seen, proves it then.
    POLL_SQL = 'SELECT pg_is_in_recovery()::text FROM pg_sleep(0.01)'
    ALIVE_SQL = 'SELECT 1 FROM pg_sleep(0.001)'

    def promote(self, timeout: int) -> None:
        """Promote this standby; return once it left recovery with its postmaster alive after that.

        Over the session that observed the node (no second psql start and login inside the downtime):
        pg_promote(false), then POLL_SQL until recovery has ended, then ALIVE_SQL. pg_promote(true) (and the raw
        ``pg_ctl promote``) look only every 100 ms: up to 100 ms of downtime spent waiting for nothing."""
        wait = max(1, timeout)
        deadline = time.monotonic() + wait
        limit = wait + self.spec.conn.connect_timeout + 30
        session = self.session()
        try:
            rows = session.query('SELECT pg_promote(false)::text', timeout=limit)
            if not rows or rows[0][0] != 'true':
                raise OpsReadyError('%s did not accept the promotion: pg_promote() could not signal its postmaster '
                                    '(see its log).' % self.name)
            while session.query(self.POLL_SQL, timeout=limit)[0][0] != 'false':
                if time.monotonic() > deadline:
                    raise OpsReadyError('%s did not finish its promotion within %ss.' % (self.name, timeout))
            session.query(self.ALIVE_SQL, timeout=limit)
        except OpsReadyError:
            if not session.lost:
                raise
            # The session died under a query (psql or its backend gone; a killed postmaster takes its backends
            # with it). Ask on a new connection, which needs a live postmaster: promote if still in recovery
            # (pg_promote(true) waits for it), else it is done; then prove the postmaster alive after that.
            retry = self.session()
            rows = retry.query('SELECT CASE WHEN pg_is_in_recovery() THEN pg_promote(true, %d) ELSE true END::text'
                               % wait, timeout=limit)
            if not rows or rows[0][0] != 'true':
                raise OpsReadyError('%s did not finish its promotion within %ss.' % (self.name, timeout))
            retry.query(self.ALIVE_SQL, timeout=limit)

    def follow_live(self, conninfo: str, slot: str) -> None:
        """A running standby follows another primary (primary_conninfo and primary_slot_name are reloadable
        since PostgreSQL 13: the WAL receiver restarts with them)."""
        # On stdin, not psql -c: the conninfo may hold the replication password (argv is world-readable).
        sql = ('ALTER SYSTEM SET primary_conninfo = %s;\nALTER SYSTEM SET primary_slot_name = %s;\n'
               'SELECT pg_reload_conf();\n' % (quote_literal(conninfo), quote_literal(slot)))
        self.runner.run(self.engine.psql_argv(rows=True), env=self.engine.env(), data=sql.encode('utf-8'),
                        timeout=self.spec.conn.connect_timeout + 60, what='psql')

    # server side -----------------------------------------------------------------------------------------
    def _data_dir(self, step: str) -> str:
        data_dir = self.spec.data_dir
        if not data_dir:
            raise OpsReadyError('%s: %s needs the data directory of %s on this host; set nodes[].data_dir (and run '
                                'the task on that host, or delegate_to it).' % (self.name, step, self.name))
        if not os.path.isfile(os.path.join(data_dir, 'PG_VERSION')):
            raise OpsReadyError('%s: %s is not a PostgreSQL data directory on this host (no PG_VERSION); the task '
                                'must run on the host of %s (delegate_to).' % (self.name, data_dir, self.name))
        return data_dir

    def remove_standby_signal(self) -> bool:
        """Remove standby.signal from the data directory; True when it was there.

        Through a descriptor of the data directory (``safeio.ClusterDir``): the account owning the directory above it
        (/var/lib/postgresql/16 is postgres's) could swap the data directory for a link to another standby's, and an
        unlink by path would take that standby's fence off (it would start as a second primary)."""
        data_dir = self._data_dir('rejoin')
        uid, gid, _user = self.owner()
        with safeio.ClusterDir(data_dir, (uid, gid), what='data_dir of %s' % self.name, marker='PG_VERSION') as cluster:
            return cluster.remove('standby.signal')

    def has_data_dir(self) -> bool:
        return bool(self.spec.data_dir) and os.path.isfile(os.path.join(self.spec.data_dir or '', 'PG_VERSION'))

    def owner(self) -> Tuple[int, int, str]:
        data_dir = self._data_dir('this step')
        if self.spec.os_user:
            entry = pwd.getpwnam(self.spec.os_user)
            return entry.pw_uid, entry.pw_gid, entry.pw_name
        st = os.stat(data_dir)
        return st.st_uid, st.st_gid, pwd.getpwuid(st.st_uid).pw_name

    def tool(self, name: str) -> str:
        """A server-side tool of the data directory's major version (pg_ctl of 16 would refuse a 15 cluster)."""
        if self.spec.bindir:
            return os.path.join(self.spec.bindir, name)
        try:
            with open(os.path.join(self._data_dir(name), 'PG_VERSION'), encoding='ascii') as handle:
                major = handle.read().strip()
        except OSError:
            major = ''
        packaged = os.path.join('/usr/lib/postgresql', major, 'bin', name)
        if major and os.access(packaged, os.X_OK):
            return packaged
        found = find_client_tool(name, self.runner.env.get('PATH'))
        if not found:
            raise OpsReadyError('%s was not found on the host of %s: install the PostgreSQL server package or set '
                                'nodes[].bindir.' % (name, self.name))
        return found

    def run_as_owner(self, argv: List[str], env: Optional[Dict[str, str]] = None, timeout: float = 120,
                     check: bool = True, what: Optional[str] = None) -> Tuple[int, str, str]:
        """pg_ctl and pg_rewind refuse to run as root: drop to the data directory's owner (setpriv execs, no PAM
        session, keeps the environment the tool needs, the login included)."""
        uid, _gid, user = self.owner()
        if os.geteuid() == 0 and uid != 0:
            argv = ['setpriv', '--reuid=%s' % user, '--regid=%s' % user, '--init-groups', '--'] + argv
        elif os.geteuid() not in (0, uid):
            raise OpsReadyError('%s: the data directory belongs to %s; run the task as that user (become_user) or '
                                'as root.' % (self.name, user))
        return self.runner.run(argv, env=env, timeout=timeout, check=check, cwd=self._data_dir('this step'),
                               what=what or os.path.basename(argv[0]))

    def is_running(self) -> bool:
        """The postmaster of postmaster.pid is alive. Read from /proc rather than asked of pg_ctl status: a killed
        postmaster that nobody reaped yet (a zombie) passes pg_ctl's kill(pid, 0) test but will never serve."""
        if not self.has_data_dir():
            return self.observe().reachable
        pid = postmaster_pid(self.spec.data_dir or '')
        if pid is None:
            return False
        try:
            with open('/proc/%d/stat' % pid, 'rb') as handle:
                stat = handle.read()
        except (OSError, ValueError):
            return False
        state = stat[stat.rfind(b')') + 2:stat.rfind(b')') + 3]
        return state not in (b'Z', b'X', b'')

    def stop(self, mode: str, timeout: int) -> None:
        if self.spec.stop_command:
            self.runner.run(self.spec.stop_command, timeout=timeout + 30, what='stop_command')
            return
        data_dir = self._data_dir('stopping the server')
        if not self.is_running():
            return
        rc, _out, err = self.run_as_owner([self.tool('pg_ctl'), 'stop', '-D', data_dir, '-m', mode, '-w',
                                           '-t', str(timeout)], check=False, timeout=timeout + 30)
        if rc != 0 and 'is the server running' not in err:
            raise OpsReadyError('%s: pg_ctl stop -m %s failed: %s' % (self.name, mode, err.strip()[-500:]))

    def start(self, timeout: int) -> None:
        if self.spec.start_command:
            self.runner.run(self.spec.start_command, timeout=timeout + 30, what='start_command')
            return
        data_dir = self._data_dir('starting the server')
        uid, gid, _user = self.owner()
        log_file = self.spec.log_file
        if not log_file:
            # pg_ctl without -l leaves the server on our stdout pipe and the run would never end.
            log_dir = os.path.join(data_dir, 'log')
            # Made relative to a descriptor of the data directory (``ClusterDir``: never through a link at its name,
            # owned by the cluster's account), then opened without following and chowned by descriptor: the account
            # above could swap the data directory, and the data directory's own account the new name, for a link.
            with safeio.ClusterDir(data_dir, (uid, gid), what='data_dir of %s' % self.name,
                                   marker='PG_VERSION') as cluster:
                if cluster.lstat('log') is None:
                    os.mkdir('log', 0o700, dir_fd=cluster.fd)
                    fd = os.open('log', os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cluster.fd)
                    try:
                        os.fchown(fd, uid, gid)
                    finally:
                        os.close(fd)
            log_file = os.path.join(log_dir, 'opsready-pg_ctl.log')
        argv = [self.tool('pg_ctl'), 'start', '-D', data_dir, '-w', '-t', str(timeout), '-l', log_file]
        if self.spec.start_options:
            argv += ['-o', self.spec.start_options]
        rc, out, err = self.run_as_owner(argv, check=False, timeout=timeout + 30)
        if rc != 0:
            raise OpsReadyError('%s: pg_ctl start failed (%s); see %s.'
                                % (self.name, (err or out).strip()[-500:], log_file), log_file=log_file)

    def controldata(self) -> Dict[str, str]:
        _rc, out, _err = self.run_as_owner([self.tool('pg_controldata'), '-D', self._data_dir('pg_controldata')])
        values = {}
        for line in out.splitlines():
            key, sep, value = line.partition(':')
            if sep:
                values[key.strip()] = value.strip()
        return values

    def wal_end(self) -> Optional[int]:
        """Where this (stopped) server's valid WAL ends: pg_waldump from the last checkpoint's redo point reads
        until the first invalid record. None when it cannot tell."""
        try:
            control = self.controldata()
            redo = control["Latest checkpoint's REDO location"]
            tli = control["Latest checkpoint's TimeLineID"]
            _rc, _out, err = self.run_as_owner(
                [self.tool('pg_waldump'), '--quiet', '-p', os.path.join(self._data_dir('pg_waldump'), 'pg_wal'),
                 '-t', tli, '-s', redo], check=False, timeout=300)
        except (OpsReadyError, KeyError):
            return None
        # "error in WAL record at X: invalid ... at Y": X is the *start* of the last valid record. Its end is
        # where the WAL ends: read that one record (-n 1) for its total length. Taking X itself would under-report
        # the RPO by the last record - often the very commit the standby did not get.
        found = re.search(r'error in WAL record at ([0-9A-F]+/[0-9A-F]+)', err)
        if not found:
            found = re.search(r'at ([0-9A-F]+/[0-9A-F]+)', err)
            return lsn_to_int(found.group(1)) if found else None
        last = found.group(1)
        try:
            _rc, out, _err = self.run_as_owner(
                [self.tool('pg_waldump'), '-p', os.path.join(self._data_dir('pg_waldump'), 'pg_wal'), '-t', tli,
                 '-s', last, '-n', '1'], check=False, timeout=60)
        except OpsReadyError:
            return lsn_to_int(last)
        total = re.search(r'len \(rec/tot\):\s*\d+/\s*(\d+)', out)
        if not total:
            return lsn_to_int(last)
        return lsn_to_int(last) + ((int(total.group(1)) + 7) & ~7)   # records are MAXALIGNed (8 bytes)

    def _signal_path(self) -> str:
        return os.path.join(self._data_dir('the standby signal'), 'standby.signal')

    def write_standby_config(self, conninfo: str, read_only: bool = False, slot: str = '') -> None:
        """standby.signal + primary_conninfo (+ default_transaction_read_only) in postgresql.auto.conf, written
        atomically while the server is down: the next start is a standby of the new primary."""
        data_dir = self._data_dir('writing the standby configuration')
        uid, gid, _user = self.owner()
        # The data directory is the server account's, and so are the directories above it: through one descriptor
        # of it (safeio.ClusterDir), a link that account put at a name here (to /etc/shadow, a root key) is neither
        # read by root nor written through, and a data directory swapped for a link after the PG_VERSION check is
        # refused instead of root creating the account's files in a directory of root's.
        with safeio.ClusterDir(data_dir, (uid, gid), what='data_dir of %s' % self.name, marker='PG_VERSION') as cluster:
            text = cluster.read('postgresql.auto.conf', CONF_LIMIT, what='postgresql.auto.conf')
            if text is None:
                lines = ['# Do not edit this file manually!', '# It will be overwritten by the ALTER SYSTEM command.']
            else:
                lines = text.decode('utf-8').splitlines()
            drop = ('primary_conninfo', 'default_transaction_read_only', 'primary_slot_name')
            kept = [line for line in lines if line.split('=', 1)[0].strip() not in drop]
            kept.append('primary_conninfo = %s' % conf_literal(conninfo))
            if slot:
                kept.append('primary_slot_name = %s' % conf_literal(slot))
            if read_only:
                kept.append("default_transaction_read_only = 'on'")
            cluster.write_atomic('postgresql.auto.conf', ('\n'.join(kept) + '\n').encode('utf-8'), 0o600)
            cluster.write_atomic('standby.signal', b'', 0o600)

    def has_standby_signal(self) -> bool:
        return self.has_data_dir() and os.path.exists(self._signal_path())


class _SessionSql:
    """What ``replication/status.gather`` asks of an engine (its name, connection and ``query``), answered over
    the node's session."""

    name = 'postgresql'

    def __init__(self, node: PgNode) -> None:
        self.node = node
        self.conn = node.spec.conn

    def query(self, sql: str, database: Optional[str] = None) -> List[List[str]]:
        return self.node.query(sql)


# -- the group ---------------------------------------------------------------------------------------------
class Group:
    """The replication group of one action: the nodes, their observed states and the steps taken."""

    def __init__(self, specs: Sequence[NodeSpec], runner: ToolRunner, timeout: int,
                 log: Optional[Callable[[str], None]] = None) -> None:
        self.nodes = {spec.name: PgNode(spec, runner) for spec in specs}
        self.order = [spec.name for spec in specs]
        self.timeout = timeout
        self.steps: List[Dict[str, Any]] = []
        self.log = log or (lambda _msg: None)

    def close(self) -> None:
        """End every node's session."""
        for node in self.nodes.values():
            node.close()

    def __enter__(self) -> 'Group':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def observe(self) -> Dict[str, NodeState]:
        """Every node at once (one psql each, in threads): during a failover this is downtime, and a dead
        primary costs a connect timeout that must not add to the others' time."""
        found: Dict[str, NodeState] = {}

        def one(name: str) -> None:
            found[name] = self.nodes[name].observe()
        threads = [threading.Thread(target=one, args=(name,)) for name in self.order]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {name: found[name] for name in self.order}

    def step(self, what: str, node: str, func: Callable[[], Any]) -> Any:
        started = time.monotonic()
        self.log('%s %s' % (what, node))
        try:
            return func()
        finally:
            self.steps.append({'step': what, 'node': node, 'seconds': round(time.monotonic() - started, 3)})

    def wait(self, what: str, pred: Callable[[], bool], timeout: Optional[float] = None) -> bool:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        delay = 0.02
        while True:
            if pred():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(0.25, delay * 1.5)

    def verify_follows(self, standby: str, primary: str) -> bool:
        """The standby is in recovery with a streaming WAL receiver, and the primary lists it as a sender."""
        node = self.nodes[standby]

        def streaming() -> bool:
            state = node.observe()
            if not (state.is_standby and state.receiver == 'streaming'):
                return False
            try:
                sql = ("SELECT count(*) FROM pg_stat_replication WHERE application_name = "  # nosec B608 # quote_literal
                       "%s AND state = 'streaming'" % quote_literal(standby))
                rows = self.nodes[primary].query(sql)
            except OpsReadyError:
                return False
            return bool(rows) and rows[0][0] != '0'
        return self.wait('replication %s -> %s' % (primary, standby), streaming)


def state_summary(states: Dict[str, NodeState], primary: Optional[NodeState] = None) -> List[Dict[str, Any]]:
    out = []
    for state in states.values():
        item = state.as_dict()
        for key in ('current_lsn', 'receive_lsn', 'replay_lsn'):
            item[key] = lsn_text(item[key])
        item['role'] = 'primary' if state.is_primary else 'standby' if state.is_standby else 'unreachable'
        item['lag_bytes'] = standby_lag(primary, state) if primary is not None and state.is_standby else None
        out.append(item)
    return out


# -- switchover --------------------------------------------------------------------------------------------
def switchover(group: Group, primary: str, candidate: str, max_lag: int, check_mode: bool) -> Dict[str, Any]:
    states = group.observe()
    old, new = states[primary], states[candidate]
    if new.is_primary and old.is_standby and old.receiver == 'streaming':
        return {'changed': False, 'msg': '%s is already the primary and %s streams from it.' % (candidate, primary),
                'promoted': None, 'demoted': None, 'nodes': state_summary(states, new)}
    lag = check_switchover_candidate(old, new, max_lag)
    others = [n for n in group.order if n not in (primary, candidate)]
    plan = {'action': 'switchover', 'promote': candidate, 'demote': primary, 'repoint': others,
            'candidate_lag_bytes': lag, 'fence': '%s is stopped (clean shutdown), then restarted as a standby of %s'
            % (primary, candidate)}
    result: Dict[str, Any] = {'plan': plan, 'nodes': state_summary(states, old), 'lag_bytes': lag}
    old_node = group.nodes[primary]
    old_node._data_dir('switchover (the old primary is stopped and restarted as a standby)')
    if check_mode:
        result.update(changed=True, msg='Would promote %s and turn %s into its standby (candidate lag %d bytes).'
                      % (candidate, primary, lag))
        return result
    new_node = group.nodes[candidate]
    template, use_slots = new_node.follow_template()

    # 1. stop writes: a clean (fast) shutdown ends every session, writes the shutdown checkpoint and
    #    sends the WAL up to it to the connected standbys before it exits.
    group.step('stop writes (pg_ctl stop -m fast)', primary, lambda: old_node.stop('fast', group.timeout))
    control = old_node.controldata()
    if control.get('Database cluster state') != 'shut down':
        raise OpsReadyError('Switchover stopped: %s did not shut down cleanly (state %r); it stays stopped. Start it '
                            'again and retry, or run action=failover.'
                            % (primary, control.get('Database cluster state')))
    checkpoint = lsn_to_int(control['Latest checkpoint location'])

    # 2. zero loss: the candidate must have replayed past the shutdown checkpoint.
    def caught_up() -> bool:
        state = new_node.observe()
        return state.replay_lsn is not None and state.replay_lsn > checkpoint
    waited = group.step('wait for replay past %s' % lsn_text(checkpoint), candidate,
                        lambda: group.wait('replay', caught_up))
    if not waited:
        # Roll back: nothing was promoted, the old primary takes writes again.
        group.step('restart old primary (rollback)', primary, lambda: old_node.start(group.timeout))
        raise OpsReadyError('Switchover rolled back: %s did not replay up to the shutdown checkpoint %s of %s within '
                            '%ss; %s was started again as the primary and nothing else changed. Check its WAL '
                            'receiver (replication_info) and retry.'
                            % (candidate, lsn_text(checkpoint), primary, group.timeout, primary),
                            steps=group.steps)

    # 3. promote.
    try:
        group.step('promote (pg_promote)', candidate, lambda: new_node.promote(group.timeout))
    except OpsReadyError as exc:
        # Once pg_promote() was sent the candidate may finish promoting at any later moment (its promote.signal
        # stays until it does), even if it looked like a standby just now: restarting the old primary could make
        # two. Keep the old primary down and fenced; the operator decides with both servers in view.
        conninfo = follow_conninfo(template, new_node.spec, primary)
        old_node.write_standby_config(conninfo, read_only=True)
        uid, gid, _user = old_node.owner()
        record = fence_record(primary, candidate, 'stopped', 'candidate %s failed during promotion: %s'
                              % (candidate, exc.message))
        write_fence_file(old_node.spec.data_dir or '', record, uid, gid)
        raise OpsReadyError('Switchover stopped safely: %s failed during promotion (%s) and its state is unknown. '
                            '%s is stopped and fenced (standby.signal, %s), so there cannot be two primaries. If %s '
                            'comes back as a primary, run action=rejoin for %s; if it does not, remove standby.signal '
                            'and default_transaction_read_only from %s and start it to restore service.'
                            % (candidate, exc.message, primary, 'opsready_fence.json', candidate, primary, primary),
                            fence=record, steps=group.steps)

    # 4. the old primary becomes a standby of the new one (no rewind: it stopped at a WAL position the new
    #    primary replayed before forking its new timeline).
    conninfo = follow_conninfo(template, new_node.spec, primary)
    slot = slot_name(primary) if use_slots else ''
    if slot:
        new_node.ensure_slot(slot)
    old_node.write_standby_config(conninfo, slot=slot)
    group.step('start as standby', primary, lambda: old_node.start(group.timeout))
    repointed = repoint_standbys(group, others, new_node, template, use_slots)
    # 5. prove it: the old primary streams from the new one.
    ok = group.step('verify replication', primary, lambda: group.verify_follows(primary, candidate))
    after = group.observe()
    result.update(changed=True, promoted=candidate, demoted=primary, repointed=repointed, steps=group.steps,
                  nodes=state_summary(after, after[candidate]))
    if not ok:
        raise OpsReadyError('Switchover done, but %s does not stream from %s after %ss: look at its log and '
                            'primary_conninfo. %s is the primary and takes writes.'
                            % (primary, candidate, group.timeout, candidate), **result)
    result['msg'] = 'Promoted %s; %s streams from it.' % (candidate, primary)
    return result


def repoint_standbys(group: Group, names: Sequence[str], new_primary: PgNode, template: str,
                     use_slots: bool) -> List[str]:
    done = []
    for name in names:
        node = group.nodes[name]
        state = node.observe()
        if not state.is_standby:
            continue
        conninfo = follow_conninfo(template or node.follow_template()[0], new_primary.spec, name)
        slot = slot_name(name) if use_slots else ''
        if slot:
            new_primary.ensure_slot(slot)

        def follow(n: PgNode = node, c: str = conninfo, s: str = slot) -> None:
            n.follow_live(c, s)
        group.step('follow new primary (primary_conninfo + reload)', name, follow)
        done.append(name)
    return done


# -- failover ----------------------------------------------------------------------------------------------
def fence(group: Group, name: str, new_primary: str, template: str, check_mode: bool) -> Dict[str, Any]:
    """Make sure ``name`` can never take writes again: stop it if it runs here, then standby.signal +
    default_transaction_read_only + the fence record in its data directory. Without its data directory on this
    host, only the record (in the result) remains: the play must fence that host itself."""
    node = group.nodes[name]
    if not node.has_data_dir():
        return fence_record(name, new_primary, 'recorded', 'data directory not on this host: stop the server and '
                            'disable its service on its own host before it can come back')
    if check_mode:
        return fence_record(name, new_primary, 'would fence', 'stop if running, standby.signal, read only')
    running = node.is_running()
    if running:
        group.step('fence: stop (pg_ctl stop -m immediate)', name, lambda: node.stop('immediate', group.timeout))
    conninfo = follow_conninfo(template, group.nodes[new_primary].spec, name)
    node.write_standby_config(conninfo, read_only=True)
    record = fence_record(name, new_primary, 'stopped' if running else 'marked',
                          'standby.signal and default_transaction_read_only=on written; a restart is a read-only '
                          'standby')
    uid, gid, _user = node.owner()
    record['file'] = write_fence_file(node.spec.data_dir or '', record, uid, gid)
    return record


# pg_controldata states of a data directory that last ran as a primary (a standby's say "... in recovery" or
# "in archive recovery")
PRIMARY_STATES = ('in production', 'shut down', 'shutting down', 'in crash recovery')


def refuse_unfenced_former_primary(group: Group, states: Dict[str, NodeState], primary: str, chosen: str) -> None:
    """Refuse a failover while another node that is down could restart as a primary.

    A node promoted earlier (by a failover whose run died after the promotion, or by hand) and down now is not
    ``primary`` and not a reachable standby, so the candidate choice does not see it; its data directory has no
    standby.signal any more, so restarting it after this failover would make two primaries. Only a local data
    directory can be read: a remote one is the play's to fence."""
    for name, state in states.items():
        node = group.nodes[name]
        if name in (primary, chosen) or state.reachable or not node.has_data_dir() or node.has_standby_signal():
            continue
        control = node.controldata()
        cluster_state = control.get('Database cluster state', '')
        if cluster_state not in PRIMARY_STATES:
            continue
        raise OpsReadyError(
            'Failover refused: %s is down and its data directory says it last ran as a primary (cluster state %r, '
            'timeline %s) without standby.signal: it may be the current primary (promoted earlier), and promoting %s '
            'would make two primaries once it restarts. If %s is the primary that failed, run action=failover with '
            'primary=%s. If it must not come back as a primary, fence it (create standby.signal in %s) and re-run; '
            'then rejoin it with action=rejoin.'
            % (name, cluster_state, control.get("Latest checkpoint's TimeLineID", '?'), chosen, name, name,
               node.spec.data_dir), refused=name, cluster_state=cluster_state, steps=group.steps)


def failed_promotion(group: Group, primary: str, candidate: str, old_fence: Dict[str, Any],
                     exc: OpsReadyError) -> OpsReadyError:
    """The error of a failover whose promotion failed, after fencing the candidate if its postmaster is gone.

    The candidate's startup process may have ended recovery (and removed standby.signal) before its postmaster
    died: restarted, it would be a primary beside the one a re-run promotes. A candidate still running (a
    promotion that is only slow) is left alone: it finishes by itself (promote.signal stays) and a re-run then
    finds it as the primary."""
    node = group.nodes[candidate]
    fenced: Optional[Dict[str, Any]] = None
    if not node.is_running():
        try:
            fenced = group.step('fence failed candidate', candidate,
                                lambda: fence(group, candidate, primary, '', False))
        except OpsReadyError as fence_exc:
            fenced = fence_record(candidate, primary, 'not fenced', fence_exc.message)
    if fenced is None:
        after = 'it still runs and may finish its promotion: a re-run reports it as the primary once it has'
    elif fenced['state'] == 'recorded':
        after = ('its data directory is not on this host: fence it there (standby.signal) before it can restart, '
                 'then re-run to promote another standby')
    elif fenced['state'] == 'not fenced':
        after = ('fencing it failed (%s): create standby.signal in its data directory before it can restart, then '
                 're-run' % fenced['reason'])
    else:
        after = ('it was fenced too (standby.signal, read only): a re-run promotes another standby, and %s comes back '
                 'only as a read-only standby until action=rejoin' % candidate)
    return OpsReadyError('Failover stopped: promoting %s failed (%s). %s stays fenced; %s.'
                         % (candidate, exc.message, primary, after),
                         fence=old_fence, candidate_fence=fenced, steps=group.steps)


def judge_loss(group: Group, primary: str, chosen: NodeState, max_loss: int) -> Tuple[int, int]:
    """(the old primary's WAL end, the bytes of it ``chosen`` lacks), or a refusal when that is over ``max_loss`` or
    cannot be known (the old primary's data directory is not on this host, or pg_waldump cannot read it). Judged
    before anything is fenced or promoted: learnt only after the promotion (as ``rpo_bytes`` is without
    ``max_loss``), the loss could no longer be refused."""
    node = group.nodes[primary]
    wal_end = node.wal_end() if node.has_data_dir() else None
    if wal_end is None or chosen.position < 0:
        raise OpsReadyError(
            'Failover refused: max_loss is %d bytes, but how much of %s\'s WAL %s lacks cannot be measured (%s). '
            'Run the failover on the host of %s\'s data directory, or leave max_loss unset to accept any loss.'
            % (max_loss, primary, chosen.name, 'its data directory is not on this host' if not node.has_data_dir()
               else 'pg_waldump could not read where its WAL ends' if wal_end is None
               else 'the candidate\'s position is unknown', primary), candidate=chosen.name, steps=group.steps)
    loss = max(0, wal_end - chosen.position)
    if loss > max_loss:
        raise OpsReadyError(
            'Failover refused: %d bytes of %s\'s WAL (up to %s) would be lost - the most advanced standby %s has WAL '
            'up to %s - and max_loss allows %d. Nothing was changed. Bring %s back (its committed data is in its '
            'data directory), or accept the loss with a larger max_loss.'
            % (loss, primary, lsn_text(wal_end), chosen.name, lsn_text(chosen.position), max_loss, primary),
            loss_bytes=loss, old_primary_wal_end=lsn_text(wal_end), candidate=chosen.name,
            candidate_position=lsn_text(chosen.position), steps=group.steps)
    return wal_end, loss


def failover(group: Group, primary: str, candidate: Optional[str], force_candidate: bool,
             check_mode: bool, on_promoted: Optional[Callable[[PgNode], Any]] = None,
             max_loss: Optional[int] = None) -> Dict[str, Any]:
    """``on_promoted(new_primary)`` runs right after the promotion (repointing the clients), before the rest
    (other standbys, the RPO from pg_waldump, the final observation): the application's downtime ends there.
    ``max_loss``: the bytes of the old primary's WAL the promoted standby may lack (``judge_loss``)."""
    states = group.observe()
    old = states[primary]
    if old.is_primary:
        raise OpsReadyError('Failover refused: %s is up and is a primary. For a planned change run action=switchover; '
                            'if it must go, stop it first.' % primary)
    current = [s for s in states.values() if s.is_primary]
    if current:
        # A re-run after a done failover: say so, and make sure the old primary stays fenced.
        new = current[0]
        record = fence(group, primary, new.name, '', check_mode) if not group.nodes[primary].has_standby_signal() \
            and group.nodes[primary].has_data_dir() and not old.reachable else None
        return {'changed': bool(record) and not check_mode, 'promoted': None, 'primary': new.name, 'fence': record,
                'msg': '%s is already the primary; nothing to promote.' % new.name,
                'nodes': state_summary(states, new)}
    chosen = choose_failover_candidate([s for n, s in states.items() if n != primary], candidate, force_candidate)
    refuse_unfenced_former_primary(group, states, primary, chosen.name)
    # replication/status.py's ranking (timelines included) goes into the plan for the operator. It does not
    # decide: a standby without a running WAL receiver reports the timeline of its last restartpoint, which
    # lags behind a promotion, so "incomparable" there is often only "not known yet".
    ranking = repl_status.most_advanced({s.name: s.status for s in states.values() if s.is_standby})
    others = [n for n in group.order if n not in (primary, chosen.name)]
    positions = {s.name: lsn_text(s.position) for s in states.values() if s.is_standby}
    plan: Dict[str, Any] = {
        'action': 'failover', 'promote': chosen.name, 'fence': primary, 'repoint': others,
        'positions': positions, 'candidate_position': lsn_text(chosen.position),
        'ranking': {'best': ranking.get('best'), 'incomparable': ranking.get('incomparable')}}
    judged: Optional[int] = None
    if max_loss is not None:
        judged, plan['loss_bytes'] = judge_loss(group, primary, chosen, max_loss)
    result: Dict[str, Any] = {'plan': plan, 'nodes': state_summary(states)}
    if check_mode:
        result.update(changed=True, fence=fence(group, primary, chosen.name, '', True),
                      msg='Would fence %s and promote %s (WAL up to %s).'
                      % (primary, chosen.name, lsn_text(chosen.position)))
        return result
    new_node = group.nodes[chosen.name]
    # Fence first: once the candidate is promoted, a returning old primary would be a second one. Its
    # primary_conninfo is built from the login alone here (rejoin rewrites it): reading the candidate's template
    # first would add a round trip to the downtime.
    record = group.step('fence', primary, lambda: fence(group, primary, chosen.name, '', False))
    try:
        group.step('promote (pg_promote)', chosen.name, lambda: new_node.promote(group.timeout))
    except OpsReadyError as exc:
        raise failed_promotion(group, primary, chosen.name, record, exc)
    hook = group.step('repoint clients', chosen.name, lambda: on_promoted(new_node)) if on_promoted else None
    template, use_slots = new_node.follow_template()
    repointed = repoint_standbys(group, others, new_node, template, use_slots)
    wal_end = judged if judged is not None else \
        group.nodes[primary].wal_end() if group.nodes[primary].has_data_dir() else None
    # The primary is dead, so the candidate's WAL stopped growing when it was observed: that is what it promoted.
    promoted_at = chosen.position
    rpo = max(0, wal_end - promoted_at) if wal_end is not None and promoted_at >= 0 else None
    after = group.observe()
    result.update(changed=True, promoted=chosen.name, primary=chosen.name, fence=record, repointed=repointed,
                  steps=group.steps, nodes=state_summary(after, after[chosen.name]),
                  rpo_bytes=rpo, old_primary_wal_end=lsn_text(wal_end), promoted_at=lsn_text(promoted_at),
                  on_promoted=hook,
                  msg='Fenced %s (%s) and promoted %s; %s WAL bytes of %s were not replicated.'
                  % (primary, record['state'], chosen.name, 'unknown' if rpo is None else rpo, primary))
    if rpo is None:
        result['rpo_note'] = ('the old primary\'s data directory is not on this host: its WAL end (and the RPO in '
                              'bytes) is unknown')
    return result


# -- rejoin ------------------------------------------------------------------------------------------------
REWIND_CANNOT = (
    ('needs to use either data checksums or "wal_log_hints = on"', 'the server had neither data checksums nor '
     'wal_log_hints=on'),
    ('could not find previous WAL record', 'the WAL needed to find the divergence point was already removed'),
    ('could not open file', 'a WAL file pg_rewind needs is gone'),
    ('could not find common ancestor', 'the two servers share no timeline history'),
)


def rejoin(group: Group, node_name: str, primary: str, rewind: bool, check_mode: bool) -> Dict[str, Any]:
    node, new_node = group.nodes[node_name], group.nodes[primary]
    states = group.observe()
    target, source = states[node_name], states[primary]
    if not source.is_primary:
        raise OpsReadyError('Rejoin refused: %s is not a running primary (%s).'
                            % (primary, source.error or 'in recovery'))
    port = ':%s' % (new_node.spec.conn.port or 5432)
    if target.is_standby and target.receiver == 'streaming' and target.sender.endswith(port):
        return {'changed': False, 'msg': '%s already streams from %s.' % (node_name, primary),
                'nodes': state_summary(states, source)}
    if target.is_primary:
        raise OpsReadyError('Rejoin refused: %s is running as a primary. Two primaries exist: stop %s (it holds the '
                            'writes made since the failover only if clients still reached it), then rejoin.'
                            % (node_name, node_name))
    data_dir = node._data_dir('rejoin')
    plan = {'action': 'rejoin', 'node': node_name, 'primary': primary, 'rewind': rewind}
    result: Dict[str, Any] = {'plan': plan, 'nodes': state_summary(states, source)}
    if check_mode:
        result.update(changed=True, msg='Would rewind %s from %s and start it as its standby.' % (node_name, primary))
        return result
    template, use_slots = '', False
    for name, state in states.items():
        if state.is_standby and name != node_name:
            template, use_slots = group.nodes[name].follow_template()
            break
    if target.reachable or node.is_running():
        group.step('stop (pg_ctl stop -m fast)', node_name, lambda: node.stop('fast', group.timeout))
    rewound = False
    if rewind:
        src = new_node.spec.conn
        source_info = build_conninfo({'host': src.unix_socket or src.host or 'localhost', 'port': str(src.port or 5432),
                                      'user': src.user or 'postgres', 'dbname': 'postgres'})
        # the login (password or passfile) from the engine client's environment, never in argv
        env = new_node.engine.env()
        # pg_rewind first runs crash recovery in single-user mode, which refuses a standby.signal: take the fence
        # off for that run only; the server is stopped and we put it back whatever happens.
        had_signal = node.remove_standby_signal()
        try:
            rc, out, err = group.step('pg_rewind', node_name, lambda: node.run_as_owner(
                [node.tool('pg_rewind'), '--target-pgdata', data_dir, '--source-server', source_info, '--progress'],
                env=env, check=False, timeout=3600))
        finally:
            if had_signal:
                uid, gid, _user = node.owner()
                with safeio.ClusterDir(data_dir, (uid, gid), what='data_dir of %s' % node_name,
                                       marker='PG_VERSION') as cluster:
                    cluster.write_atomic('standby.signal', b'', 0o600)
        if rc != 0:
            text = (err or out).strip()
            why = next((reason for needle, reason in REWIND_CANNOT if needle in text), 'pg_rewind failed')
            raise OpsReadyError('Rejoin refused: pg_rewind cannot bring %s back (%s: %s). %s is left stopped and '
                                'fenced. Fix: re-clone it from %s: move %s aside, then pg_basebackup -R -X stream -D '
                                '%s from %s, and start it.' % (node_name, why, text.splitlines()[-1] if text else '',
                                                               node_name, primary, data_dir, data_dir, primary),
                                steps=group.steps)
        rewound = 'no rewind required' not in (out + err)
    conninfo = follow_conninfo(template, new_node.spec, node_name)
    slot = slot_name(node_name) if use_slots else ''
    if slot:
        new_node.ensure_slot(slot)
    node.write_standby_config(conninfo, slot=slot)
    group.step('start as standby', node_name, lambda: node.start(group.timeout))
    ok = group.step('verify replication', node_name, lambda: group.verify_follows(node_name, primary))
    if not ok:
        raise OpsReadyError('Rejoin: %s started but does not stream from %s within %ss (look at its log: a timeline '
                            'that is not a child of the new primary\'s needs rewind=true).'
                            % (node_name, primary, group.timeout), steps=group.steps)
    fence_before = read_fence_file(data_dir)
    uid, gid, _user = node.owner()
    with safeio.ClusterDir(data_dir, (uid, gid), what='data_dir of %s' % node_name, marker='PG_VERSION') as cluster:
        cluster.remove(FENCE_FILE)   # by its descriptor: never a name in a directory swapped in meanwhile
    after = group.observe()
    result.update(changed=True, rewound=rewound, steps=group.steps, cleared_fence=fence_before,
                  nodes=state_summary(after, after[primary]), msg='%s streams from %s%s.'
                  % (node_name, primary, ' after pg_rewind' if rewound else ''))
    return result


def plan(group: Group, of: str, primary: str, candidate: Optional[str], max_lag: int, force_candidate: bool,
         node: Optional[str]) -> Dict[str, Any]:
    """The decision of ``of`` without any change (action=plan runs the real decision code in check mode)."""
    if of == 'switchover':
        if candidate is None:
            raise OpsReadyError('A switchover plan needs candidate (the standby to promote).')
        return switchover(group, primary, candidate, max_lag, check_mode=True)
    if of == 'failover':
        return failover(group, primary, candidate, force_candidate, check_mode=True)
    return rejoin(group, node or primary, primary if node else (candidate or ''), True, check_mode=True)
