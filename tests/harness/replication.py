"""Throw-away replication clusters for tests and benchmarks: PostgreSQL streaming, MariaDB GTID.

Builds on :mod:`tests.harness.servers` (every node *is* a ``PostgresServer`` / ``MariaDBServer``, with the
whole server API: ``sql()``, ``dsn_env()``, ``start()``, ``stop(mode)``, ``kill()``, ``log_tail()``,
``port``, ``user``/``password``...).  Plain Python, no pytest import; the pytest fixtures live in
``tests/integration/conftest_replication.py``.  Everything listens on 127.0.0.1 free ports and runs
with ``fsync=off`` / small buffers, so a primary + 2 standbys is up in a few seconds.

PostgreSQL 15
-------------
::

    from tests.harness.replication import PgCluster

    with PgCluster(standbys=2, slots=True) as c:   # start() ... cleanup()
        c.primary.sql("CREATE TABLE t (id int)")
        c.wait_replayed()                           # every running standby replayed the primary's LSN
        c.standbys[0].sql("SELECT count(*) FROM t") # [("0",)]

``PgCluster(standbys=2, slots=False, sync=False, primary_conf=None, standby_conf=None, tmp_root=None)``

* ``primary``: a ``PostgresServer`` (wal_level replica, hot_standby, max_wal_senders 10,
  ``wal_keep_size=64MB``, ``wal_receiver_status_interval=1s``, WAL archive of its own).
* ``standbys``: list of ``PgStandby`` (a ``PostgresServer`` subclass) made with
  ``pg_basebackup -R -X stream`` from the primary, same login (``user``/``password``) as the primary,
  ``application_name`` = ``name`` (``standby1``, ``standby2``, ...), ``primary_slot_name`` = ``name``
  when ``slots=True`` (the physical slot is created on the upstream by ``pg_basebackup -C -S``).
  ``sync=True`` lists all standbys in the primary's ``synchronous_standby_names`` (``ANY 1 (...)``).
* ``nodes``: ``[primary, *standbys]``; ``node(name)``: by name (``"primary"``, ``"standby1"``...).
* ``add_standby(name=None, upstream=None, slot=None) -> PgStandby``: one more standby (of
  ``upstream``, default the primary; cascading works), started and streaming.
* ``start()`` / ``cleanup()`` (context manager); per node ``start()``/``stop(mode)``/``kill()``
  (``kill()`` = SIGKILL of the postmaster and children, a crash).
* ``promote(standby, timeout=30)``: ``pg_promote(wait => true)``; returns the new timeline.
  The cluster's ``primary`` attribute is *not* changed (tests decide who the primary is);
  ``current_primaries()`` lists running nodes that are not in recovery.
* ``in_recovery(node) -> bool``; ``timeline(node) -> int`` (``pg_control_checkpoint``; after a
  promotion use ``CHECKPOINT`` first or read ``timeline_id`` from the status functions).
* Positions (ints, bytes): ``current_lsn(node=None)`` (``pg_current_wal_insert_lsn``: with
  ``synchronous_commit=off`` the last commit may not be written yet; on a standby the replay LSN),
  ``receive_lsn(standby)``, ``replay_lsn(standby)``; ``lsn_int(text)``.
* Lag: ``lag_bytes(standby)`` (primary's current LSN - standby's replay LSN, both asked now),
  ``wait_replayed(standbys=None, timeout=30, lsn=None)`` (poll until each replayed ``lsn``, default
  the primary's current LSN; raises ``HarnessError`` with the lag on timeout),
  ``pause_replay(standby)`` / ``resume_replay(standby)`` (``pg_wal_replay_pause``: WAL still
  arrives, replay stops: lag in bytes and seconds grows under a writer),
  ``generate_wal(nbytes=1<<20, node=None)`` (a committed write of about ``nbytes`` of WAL in table
  ``harness_wal``; returns the LSN after it), ``switch_wal(node=None)``.
* Breaking the link:
  ``stop_walreceiver(standby)``: ``primary_conninfo = ''`` + reload, waits until the walreceiver
  is gone (the standby stays up, in recovery, and no longer streams: the "cut network" case);
  ``break_conninfo(standby, how="password"|"port")``: a wrong password (auth failure, retried by the
  startup process) or a closed port in ``primary_conninfo``;
  ``restore_walreceiver(standby)``: the original ``primary_conninfo`` back, waits until streaming.
  ``walreceiver_pid(standby)`` (or ``None``); ``kill_walreceiver(standby)`` (SIGKILL it; the startup
  process restarts it after ``wal_retrieve_retry_interval``, set to 1s here).
* ``conninfo(node, application_name=None) -> str``: libpq conninfo (with password) of a node.

MariaDB (GTID)
--------------
::

    from tests.harness.replication import MariaDBCluster

    with MariaDBCluster(replicas=1) as m:
        m.primary.sql("CREATE DATABASE d; CREATE TABLE d.t (id int primary key)")
        m.wait_replayed()                           # MASTER_GTID_WAIT on every running replica
        m.gtid_positions(m.replicas[0])             # {'gtid_slave_pos': '0-1-5', ...}

``MariaDBCluster(replicas=1, replica_read_only=True, gtid_strict_mode=True, primary_conf=None,
replica_conf=None, tmp_root=None)``

* ``primary`` (``server_id=1``) and ``replicas`` (``server_id=2..``): ``MariaDBServer`` with binlog,
  ``log_slave_updates=ON`` (a promoted replica's binlog has the whole history) and the same login
  (``user``/``password``) on every node.  Replication user ``repl_user`` / ``repl_password``
  (``REPLICATION SLAVE``, created on the primary and replicated).  Each replica runs
  ``CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos`` + ``START SLAVE`` from the primary's first GTID.
* ``nodes``, ``node(name)`` (``"primary"``, ``"replica1"``...), ``start()``/``cleanup()``; node
  ``start()``/``stop()``/``kill()`` as in servers.py.
* ``gtid_positions(node) -> dict`` with ``gtid_current_pos``, ``gtid_binlog_pos``,
  ``gtid_slave_pos``; ``slave_status(replica) -> dict`` (``SHOW SLAVE STATUS`` by column name).
* ``wait_replayed(replicas=None, timeout=30)``: ``MASTER_GTID_WAIT(<primary gtid_binlog_pos>)``.
* ``break_io_thread(replica, how="password"|"port")``: the IO thread reconnects with a wrong
  password (``Last_IO_Errno`` 1045) or to a closed port (2003); waits until the error shows.
  ``restore_io_thread(replica)``: the right master settings back, waits until ``Slave_IO_Running``
  is ``Yes``.
* ``stop_slave(replica, thread=None)`` / ``start_slave(replica, thread=None)``
  (``thread`` = ``"IO_THREAD"`` / ``"SQL_THREAD"``); ``set_delay(replica, seconds)``
  (``MASTER_DELAY``: ``Seconds_Behind_Master`` grows).
* ``promote(replica)``: ``STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=OFF`` (no fencing).
* ``point_to(replica, upstream)``: ``CHANGE MASTER`` to another node with ``MASTER_USE_GTID=slave_pos``.

Both cluster classes: ``HarnessError`` on failures (messages include the relevant log tail); the nodes
are registered with servers.py's atexit cleanup, so a crashed test leaves nothing running.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.harness.servers import (
    ConfValue,
    HarnessError,
    MariaDBServer,
    PostgresServer,
    _pg_conf_value,
)

__all__ = ["MariaDBCluster", "PgCluster", "PgStandby", "lsn_int", "poll"]

_T = TypeVar("_T")
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")

# Small and quick: the replication tests run on a loaded 2-core machine.
PG_FAST_CONF: dict[str, ConfValue] = {
    "shared_buffers": "16MB",
    "max_connections": 30,
    "wal_keep_size": "64MB",
    "wal_receiver_status_interval": "1s",
    "wal_retrieve_retry_interval": "1s",
    "hot_standby_feedback": False,
    "checkpoint_timeout": "5min",
    "max_wal_size": "256MB",
}


def lsn_int(text: str | None) -> int | None:
    """``'0/3000148'`` -> int (bytes); ``None``/empty -> ``None``."""
    if not text:
        return None
    m = _LSN.match(text.strip())
    if not m:
        raise HarnessError(f"not an LSN: {text!r}")
    return (int(m.group(1), 16) << 32) + int(m.group(2), 16)


def poll(pred: Callable[[], _T], timeout: float, what: str, interval: float = 0.05) -> _T:
    """Call ``pred`` until it returns a truthy value (returned); ``HarnessError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = pred()
            if value:
                return value
            last_exc = None
        except HarnessError as exc:  # e.g. a node still starting
            last_exc = exc
        if time.monotonic() > deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


def _sql_lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _pg_lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


class PgStandby(PostgresServer):
    """A PostgreSQL standby: a ``PostgresServer`` whose data dir comes from ``pg_basebackup -R``."""

    def __init__(self, *, name: str, upstream: PostgresServer, slot: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.upstream = upstream
        self.slot = slot
        self.primary_conninfo = ""

    def _initialize(self) -> None:
        raise HarnessError(f"{self.name}: standby data dir is empty; PgCluster.add_standby() builds it")


class PgCluster:
    """PostgreSQL 15 primary + N streaming standbys on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        standbys: int = 2,
        *,
        slots: bool = False,
        sync: bool = False,
        primary_conf: Mapping[str, ConfValue] | None = None,
        standby_conf: Mapping[str, ConfValue] | None = None,
        tmp_root: str | Path | None = None,
    ) -> None:
        self.n_standbys = standbys
        self.slots = slots
        self.sync = sync
        self.tmp_root = tmp_root
        self.standby_conf = dict(standby_conf or {})
        conf = dict(PG_FAST_CONF)
        if sync:
            names = ", ".join(f"standby{i + 1}" for i in range(standbys))
            conf["synchronous_standby_names"] = f"ANY 1 ({names})"
            conf["synchronous_commit"] = "on"
        conf.update(primary_conf or {})
        self.primary = PostgresServer(extra_conf=conf, tmp_root=tmp_root)
        self.primary.name = "primary"  # type: ignore[attr-defined]
        self.standbys: list[PgStandby] = []
        self._n = 0

    # -- lifecycle -------------------------------------------------------
    @property
    def nodes(self) -> list[PostgresServer]:
        return [self.primary, *self.standbys]

    def node(self, name: str) -> PostgresServer:
        for n in self.nodes:
            if getattr(n, "name", None) == name:
                return n
        raise HarnessError(f"no node named {name!r}")

    def start(self) -> PgCluster:
        try:
            if not self.primary.is_running():
                self.primary.start()
            while len(self.standbys) < self.n_standbys:
                self.add_standby()
        except BaseException:
            self.cleanup()
            raise
        return self

    def cleanup(self) -> None:
        for node in reversed(self.nodes):
            node.cleanup()

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def conninfo(self, node: PostgresServer, application_name: str | None = None) -> str:
        parts = {
            "host": node.host,
            "port": str(node._require_port()),
            "user": node.user,
            "password": node.password,
            "sslmode": "disable",
            "connect_timeout": "5",
        }
        if application_name:
            parts["application_name"] = application_name
        return " ".join(f"{k}={_conninfo_value(v)}" for k, v in parts.items())

    def add_standby(
        self, name: str | None = None, upstream: PostgresServer | None = None, slot: str | bool | None = None
    ) -> PgStandby:
        """pg_basebackup a new standby from ``upstream`` (default: the primary), start it, wait until it streams."""
        upstream = upstream or self.primary
        self._n += 1
        name = name or f"standby{self._n}"
        if slot is None:
            slot = self.slots
        slot_name = (name if slot is True else slot) or None
        sb = PgStandby(
            name=name,
            upstream=upstream,
            slot=slot_name,
            user=self.primary.user,
            password=self.primary.password,
            extra_conf={**PG_FAST_CONF, **self.standby_conf},
            tmp_root=self.tmp_root,
        )
        self.standbys.append(sb)
        # pg_basebackup writes the data dir as the server's OS user; its login comes via PGPASSWORD.
        argv = [
            upstream.bin("pg_basebackup"),
            "-D",
            str(sb.datadir),
            "-X",
            "stream",
            "-R",
            "-c",
            "fast",
            "--no-sync",
            "-w",
            "-d",
            f"host={upstream.host} port={upstream._require_port()} application_name={name} sslmode=disable",
        ]
        if slot_name:
            argv += ["-C", "-S", slot_name]
        sb._guard_argv(argv)
        env = sb._service_env()
        env.update(PGUSER=upstream.user, PGPASSWORD=upstream.password)
        res = subprocess.run(
            argv,
            cwd=sb.tmpdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **sb._service_kwargs(),
        )
        if res.returncode != 0:
            raise HarnessError(f"pg_basebackup for {name} failed (rc={res.returncode}): {res.stderr.strip()}")
        # Our own settings last (last one wins): the standby archives into its own dir once promoted, and
        # primary_conninfo names it (application_name) and carries the password.
        sb.primary_conninfo = self.conninfo(upstream, application_name=name)
        block = ["", "# --- opsready replication harness ---"]
        block += [f"{k} = {_pg_conf_value(v)}" for k, v in sb.conf_settings().items()]
        block.append("synchronous_standby_names = ''")
        with open(sb.datadir / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\n".join(block) + "\n")
        auto = [f"primary_conninfo = {_pg_lit(sb.primary_conninfo)}"]
        if slot_name:
            auto.append(f"primary_slot_name = {_pg_lit(slot_name)}")
        with open(sb.datadir / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
            fh.write("\n".join(auto) + "\n")
        sb.fix_permissions()
        sb.start()
        self.wait_streaming(sb)
        return sb

    # -- roles -------------------------------------------------------------
    def _one(self, node: PostgresServer, sql: str) -> str | None:
        rows = node.sql(sql, superuser=True, timeout=30)
        return rows[0][0] if rows else None

    def in_recovery(self, node: PostgresServer) -> bool:
        return self._one(node, "SELECT pg_is_in_recovery()") == "t"

    def current_primaries(self) -> list[PostgresServer]:
        return [n for n in self.nodes if n.is_running() and not self.in_recovery(n)]

    def timeline(self, node: PostgresServer) -> int:
        return int(self._one(node, "SELECT timeline_id FROM pg_control_checkpoint()") or 0)

    def promote(self, standby: PostgresServer, timeout: int = 30) -> int:
        """Promote ``standby`` (``pg_promote(wait => true)``); returns its new timeline."""
        ok = self._one(standby, f"SELECT pg_promote(true, {int(timeout)})")
        if ok != "t":
            raise HarnessError(f"pg_promote on {getattr(standby, 'name', standby)} failed; log:\n{standby.log_tail()}")
        standby.sql("CHECKPOINT", superuser=True)
        return self.timeline(standby)

    # -- positions and lag -----------------------------------------------------
    def current_lsn(self, node: PostgresServer | None = None) -> int:
        node = node or self.primary
        text = self._one(
            node,
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END",
        )
        return lsn_int(text) or 0

    def receive_lsn(self, standby: PostgresServer) -> int | None:
        return lsn_int(self._one(standby, "SELECT pg_last_wal_receive_lsn()"))

    def replay_lsn(self, standby: PostgresServer) -> int | None:
        return lsn_int(self._one(standby, "SELECT pg_last_wal_replay_lsn()"))

    def lag_bytes(self, standby: PostgresServer) -> int:
        return self.current_lsn() - (self.replay_lsn(standby) or 0)

    def wait_replayed(
        self, standbys: Sequence[PostgresServer] | None = None, timeout: float = 30, lsn: int | None = None
    ) -> None:
        target = self.current_lsn() if lsn is None else lsn
        for sb in standbys if standbys is not None else [s for s in self.standbys if s.is_running()]:
            try:
                poll(lambda sb=sb: (self.replay_lsn(sb) or 0) >= target, timeout, f"{sb.name} to replay")
            except HarnessError as exc:
                raise HarnessError(
                    f"{exc}: target {target}, replayed {self.replay_lsn(sb)}; log:\n{sb.log_tail(15)}"
                ) from None

    def wait_streaming(self, standby: PgStandby, timeout: float = 30) -> None:
        poll(
            lambda: self._one(standby, "SELECT status FROM pg_stat_wal_receiver") == "streaming",
            timeout,
            f"{standby.name} to stream",
        )

    def pause_replay(self, standby: PostgresServer) -> None:
        standby.sql("SELECT pg_wal_replay_pause()", superuser=True)
        poll(lambda: self._one(standby, "SELECT pg_get_wal_replay_pause_state()") == "paused", 10, "replay pause")

    def resume_replay(self, standby: PostgresServer) -> None:
        standby.sql("SELECT pg_wal_replay_resume()", superuser=True)

    def generate_wal(self, nbytes: int = 1 << 20, node: PostgresServer | None = None) -> int:
        """Commit a write of about ``nbytes`` of WAL (rows of 1 kB, text of random digits); returns the LSN."""
        node = node or self.primary
        rows = max(1, nbytes // 1100)
        node.sql(
            "CREATE TABLE IF NOT EXISTS harness_wal (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), "
            "pad text);\n"
            f"INSERT INTO harness_wal (pad) SELECT repeat(md5(random()::text), 32) FROM generate_series(1, {rows});",
            superuser=True,
        )
        return self.current_lsn(node)

    def switch_wal(self, node: PostgresServer | None = None) -> None:
        (node or self.primary).sql("SELECT pg_switch_wal()", superuser=True)

    # -- breaking the link ------------------------------------------------------
    def walreceiver_pid(self, standby: PostgresServer) -> int | None:
        text = self._one(standby, "SELECT pid FROM pg_stat_wal_receiver")
        return int(text) if text else None

    def _set_conninfo(self, standby: PgStandby, conninfo: str) -> None:
        standby.sql(f"ALTER SYSTEM SET primary_conninfo = {_pg_lit(conninfo)}", superuser=True)
        standby.sql("SELECT pg_reload_conf()", superuser=True)

    def stop_walreceiver(self, standby: PgStandby, timeout: float = 20) -> None:
        self._set_conninfo(standby, "")
        poll(lambda: self.walreceiver_pid(standby) is None, timeout, f"{standby.name}'s walreceiver to stop")

    def break_conninfo(self, standby: PgStandby, how: str = "password", timeout: float = 20) -> None:
        """Keep the walreceiver trying with a wrong password (``how="password"``) or a closed port."""
        upstream = standby.upstream
        if how == "password":
            wrong = _conninfo_value("wrong-" + secrets.token_hex(4))
            info = self.conninfo(upstream, application_name=standby.name).replace(
                f"password={_conninfo_value(upstream.password)}", f"password={wrong}"
            )
        elif how == "port":
            from tests.harness.servers import _free_port

            info = self.conninfo(upstream, application_name=standby.name).replace(
                f"port='{upstream.port}'", f"port='{_free_port()}'"
            )
        else:
            raise HarnessError(f"unknown break {how!r}")
        self._set_conninfo(standby, info)
        poll(
            lambda: self._one(standby, "SELECT status FROM pg_stat_wal_receiver") != "streaming",
            timeout,
            f"{standby.name} to stop streaming",
        )

    def restore_walreceiver(self, standby: PgStandby, timeout: float = 30) -> None:
        standby.primary_conninfo = self.conninfo(standby.upstream, application_name=standby.name)
        self._set_conninfo(standby, standby.primary_conninfo)
        self.wait_streaming(standby, timeout)

    def kill_walreceiver(self, standby: PostgresServer) -> None:
        pid = self.walreceiver_pid(standby)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------


class MariaDBCluster:
    """MariaDB primary + N GTID replicas on 127.0.0.1 (see the module docstring)."""

    repl_user = "repl"

    def __init__(
        self,
        replicas: int = 1,
        *,
        replica_read_only: bool = True,
        gtid_strict_mode: bool = True,
        primary_conf: Mapping[str, ConfValue] | None = None,
        replica_conf: Mapping[str, ConfValue] | None = None,
        tmp_root: str | Path | None = None,
    ) -> None:
        self.n_replicas = replicas
        self.replica_read_only = replica_read_only
        self.repl_password = "R3pl-" + secrets.token_hex(10)
        self.tmp_root = tmp_root
        common: dict[str, ConfValue] = {
            "log-slave-updates": True,
            "innodb-buffer-pool-size": "16M",
            "innodb-log-file-size": "16M",
            "performance-schema": False,
        }
        self.primary = MariaDBServer(
            extra_conf={**common, **dict(primary_conf or {})},
            gtid_strict_mode=gtid_strict_mode,
            tmp_root=tmp_root,
        )
        self.primary.name = "primary"  # type: ignore[attr-defined]
        self.replicas: list[MariaDBServer] = []
        for i in range(replicas):
            conf = {**common, "server-id": i + 2, **dict(replica_conf or {})}
            if replica_read_only:
                conf["read-only"] = True
            r = MariaDBServer(
                extra_conf=conf,
                gtid_strict_mode=gtid_strict_mode,
                user=self.primary.user,
                password=self.primary.password,
                tmp_root=tmp_root,
            )
            r.name = f"replica{i + 1}"  # type: ignore[attr-defined]
            r.upstream = self.primary  # type: ignore[attr-defined]
            self.replicas.append(r)

    @property
    def nodes(self) -> list[MariaDBServer]:
        return [self.primary, *self.replicas]

    def node(self, name: str) -> MariaDBServer:
        for n in self.nodes:
            if getattr(n, "name", None) == name:
                return n
        raise HarnessError(f"no node named {name!r}")

    def start(self) -> MariaDBCluster:
        try:
            self._start_all()
        except BaseException:
            self.cleanup()
            raise
        return self

    def _start_all(self) -> None:
        # Start every node (install-db runs in parallel with the primary's start on a quiet machine).
        for n in self.nodes:
            n.start(wait=False)
        for n in self.nodes:
            n.wait_ready()
        # Each node's bootstrap wrote its own binlog; replicas forget theirs so the only history is the
        # primary's (GTID 0-1-*), which they replay from the start.
        self.primary.sql(
            f"CREATE USER IF NOT EXISTS '{self.repl_user}'@'%' IDENTIFIED BY {_sql_lit(self.repl_password)};\n"
            f"GRANT REPLICATION SLAVE, SLAVE MONITOR ON *.* TO '{self.repl_user}'@'%';",
            superuser=True,
        )
        for r in self.replicas:
            r.sql("RESET MASTER; SET GLOBAL gtid_slave_pos = '';", superuser=True)
            self.point_to(r, self.primary)
        self.wait_replayed()

    def cleanup(self) -> None:
        for n in reversed(self.nodes):
            n.cleanup()

    def __enter__(self) -> MariaDBCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- replication control ------------------------------------------------------
    def _change_master(self, replica: MariaDBServer, upstream: MariaDBServer, password: str, port: int) -> str:
        return (
            f"CHANGE MASTER TO MASTER_HOST={_sql_lit(upstream.host)}, MASTER_PORT={int(port)}, "
            f"MASTER_USER={_sql_lit(self.repl_user)}, MASTER_PASSWORD={_sql_lit(password)}, "
            "MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos"
        )

    def point_to(self, replica: MariaDBServer, upstream: MariaDBServer, timeout: float = 30) -> None:
        """(Re)point ``replica`` at ``upstream`` with GTID and wait until both threads run."""
        replica.sql(
            "STOP SLAVE;\n"
            + self._change_master(replica, upstream, self.repl_password, upstream._require_port())
            + ";\nSTART SLAVE;",
            superuser=True,
        )
        replica.upstream = upstream  # type: ignore[attr-defined]
        self._wait_threads(replica, timeout)

    def _wait_threads(self, replica: MariaDBServer, timeout: float) -> None:
        def running() -> bool:
            st = self.slave_status(replica)
            if st.get("Last_SQL_Errno", "0") != "0":
                raise HarnessError(f"{replica.name}: SQL thread error: {st.get('Last_SQL_Error')}")  # type: ignore[attr-defined]
            return st.get("Slave_IO_Running") == "Yes" and st.get("Slave_SQL_Running") == "Yes"

        poll(running, timeout, f"{getattr(replica, 'name', replica)}'s slave threads")

    def slave_status(self, replica: MariaDBServer) -> dict[str, str | None]:
        """``SHOW SLAVE STATUS`` as {column: value} (empty when not a replica)."""
        argv = [
            replica.bin("mariadb"),
            f"--defaults-file={replica.option_file(superuser=True)}",
            "--batch",
            "-e",
            "SHOW SLAVE STATUS",
        ]
        res = replica._run_client(argv, env=replica._client_env(), input_text=None, timeout=30)
        lines = res.stdout.split("\n")
        if len(lines) < 2 or not lines[1]:
            return {}
        cols, vals = lines[0].split("\t"), lines[1].split("\t")
        return {c: (None if v == "NULL" else v) for c, v in zip(cols, vals)}

    def gtid_positions(self, node: MariaDBServer) -> dict[str, str]:
        row = node.sql("SELECT @@gtid_current_pos, @@gtid_binlog_pos, @@gtid_slave_pos", superuser=True)[0]
        return {"gtid_current_pos": row[0] or "", "gtid_binlog_pos": row[1] or "", "gtid_slave_pos": row[2] or ""}

    def wait_replayed(self, replicas: Sequence[MariaDBServer] | None = None, timeout: float = 30) -> None:
        pos = self.gtid_positions(self.primary)["gtid_binlog_pos"]
        for r in replicas if replicas is not None else [r for r in self.replicas if r.is_running()]:
            rows = r.sql(f"SELECT MASTER_GTID_WAIT({_sql_lit(pos)}, {float(timeout)})", superuser=True,
                         timeout=timeout + 10)
            if rows[0][0] != "0":
                st = self.slave_status(r)
                raise HarnessError(
                    f"{r.name} did not reach GTID {pos} in {timeout}s: "  # type: ignore[attr-defined]
                    f"IO={st.get('Slave_IO_Running')} SQL={st.get('Slave_SQL_Running')} "
                    f"io_error={st.get('Last_IO_Error')!r} sql_error={st.get('Last_SQL_Error')!r}"
                )

    def stop_slave(self, replica: MariaDBServer, thread: str | None = None) -> None:
        replica.sql(f"STOP SLAVE {self._thread(thread)}", superuser=True)

    def start_slave(self, replica: MariaDBServer, thread: str | None = None) -> None:
        replica.sql(f"START SLAVE {self._thread(thread)}", superuser=True)

    @staticmethod
    def _thread(thread: str | None) -> str:
        if thread not in (None, "IO_THREAD", "SQL_THREAD"):
            raise HarnessError(f"thread must be IO_THREAD or SQL_THREAD, not {thread!r}")
        return thread or ""

    def set_delay(self, replica: MariaDBServer, seconds: int) -> None:
        replica.sql(f"STOP SLAVE; CHANGE MASTER TO MASTER_DELAY={int(seconds)}; START SLAVE;", superuser=True)

    def break_io_thread(self, replica: MariaDBServer, how: str = "password", timeout: float = 30) -> None:
        """Restart the IO thread with a wrong password (errno 1045) or to a closed port (2003)."""
        upstream: MariaDBServer = replica.upstream  # type: ignore[attr-defined]
        port = upstream._require_port()
        password = self.repl_password
        if how == "password":
            password = "wrong-" + secrets.token_hex(6)
        elif how == "port":
            from tests.harness.servers import _free_port

            port = _free_port()
        else:
            raise HarnessError(f"unknown break {how!r}")
        replica.sql(
            "STOP SLAVE;\n" + self._change_master(replica, upstream, password, port) + ";\nSTART SLAVE;",
            superuser=True,
        )
        poll(lambda: self.slave_status(replica).get("Last_IO_Errno", "0") not in ("0", None), timeout,
             "the IO thread error")

    def restore_io_thread(self, replica: MariaDBServer, timeout: float = 30) -> None:
        self.point_to(replica, replica.upstream, timeout)  # type: ignore[attr-defined]

    def promote(self, replica: MariaDBServer) -> None:
        replica.sql("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF;", superuser=True)
        replica.upstream = None  # type: ignore[attr-defined]
