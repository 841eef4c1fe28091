"""Throw-away PostgreSQL 15 and MariaDB servers for tests and benchmarks.

Each server lives in its own temporary directory, listens on 127.0.0.1 on a
free port picked at :meth:`start`, and never touches a system service (no
``/etc`` config, no ``/run`` socket, no systemd).  The module is plain Python
(no pytest import) so benchmark scripts can use it directly::

    from tests.harness.servers import PostgresServer, MariaDBServer

    with PostgresServer() as pg:            # start() ... cleanup()
        pg.create_database("app")
        pg.sql("CREATE TABLE t (id int)", database="app")
        print(pg.sql("SELECT count(*) FROM t", database="app"))  # [("0",)]

Common API (both classes):

* ``start(timeout=None, wait=True) -> self``; ``wait_ready(timeout)``
* ``stop(mode="fast"|"immediate", timeout=60)``; ``kill()`` (SIGKILL, crash)
* ``is_running() -> bool``; ``cleanup()`` (stop + remove the temp dir)
* ``sql(sql, database=None, superuser=False) -> list[tuple[str | None, ...]]``
  runs the native client (psql / mariadb), SQL on stdin, values as text,
  SQL NULL as ``None``.  ``PostgresServer.psql`` is an alias.
* ``dsn_env(superuser=False, database=None, inherit=True) -> dict``:
  environment for client tools.  Never put a password in argv: PostgreSQL
  gets ``PGPASSWORD``; MariaDB gets ``MYSQL_HOME``/``MARIADB_HOME`` pointing
  at a directory whose ``my.cnf`` (mode 0600) holds the credentials, and
  ``OPSREADY_MYSQL_DEFAULTS_FILE`` with that file's path (for
  ``--defaults-file=``, see :meth:`MariaDBServer.option_file`).
* ``odbc_connection_string(database=None)``, ``odbc_connect(...)`` (pyodbc)
* ``create_database(name) -> str``, ``drop_database(name)``
* ``bin(tool) -> str``: absolute path of a server/client tool.
* ``service_dir(name) -> Path``: a directory in the temp tree that the
  server's OS user owns (e.g. a restore source for ``restore_command``).
* ``log_tail(lines=40) -> str``; attribute ``startup_seconds``.

Attributes: ``host`` ("127.0.0.1"), ``port`` (``None`` until the first
start, then kept across restarts), ``user``/``password`` (test login, allowed
over TCP with a password, has superuser-level privileges), ``superuser``
(``postgres`` / ``root``: local-socket only, no password), ``basedir``,
``datadir``, ``socket_dir``, ``log_file``, ``os_user`` (service account the
server runs as: ``postgres``/``mysql`` when we are root, else ``None``).

When running as root, server processes run as the unprivileged ``postgres`` /
``mysql`` account (``subprocess`` ``user=``/``group=``); the data, socket,
log and archive directories are owned by that account, the temp base
directory is root-owned ``0711`` and the client option files live in a
root-only ``0700`` directory.  Servers are started with ``PR_SET_PDEATHSIG``
so they die if the Python process that started them dies (disable with
``die_with_parent=False`` if you start servers from a short-lived thread), and
an ``atexit`` hook cleans up anything left.  Set ``OPSREADY_TEST_KEEP=1`` to
keep temp dirs (servers are still stopped) for post-mortem debugging.

Temp dirs go under :func:`default_tmp_root` (``$OPSREADY_TEST_TMPDIR``, else
``/dev/shm`` if it has >= 2 GiB free, else ``/tmp``); pass ``tmp_root=`` for
benchmarks that need real disk I/O or lots of space.
"""

from __future__ import annotations

import atexit
import csv
import ctypes
import getpass
import io
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional, Tuple, TypeVar, Union

__all__ = [
    "Database",
    "DatabaseServer",
    "HarnessError",
    "HarnessUnavailable",
    "MariaDBServer",
    "PostgresServer",
    "ServerStartError",
]

SETUP_HINT = "run `make setup-test` to install the test database servers"
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PASSWORD_RE = re.compile(r"^[A-Za-z0-9_.~+/!@#%^*()-]{8,}$")
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
ConfValue = Union[str, int, float, bool]
Row = Tuple[Optional[str], ...]
_S = TypeVar("_S", bound="DatabaseServer")


class HarnessError(RuntimeError):
    """Any harness failure (bad usage, client error, ...)."""


class HarnessUnavailable(HarnessError):
    """A required server/client binary is not installed."""


class ServerStartError(HarnessError):
    """The server did not become ready; the message includes the log tail."""


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

_LIVE: "set[DatabaseServer]" = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _cleanup_all() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for srv in servers:
        try:
            srv.cleanup()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_tmp_root() -> Path:
    """Where server temp dirs go: ``$OPSREADY_TEST_TMPDIR``, else ``/dev/shm`` when
    it is a writable tmpfs with >= 2 GiB free (much faster initdb/install-db on a
    busy disk), else :func:`tempfile.gettempdir`."""
    env = os.environ.get("OPSREADY_TEST_TMPDIR")
    if env:
        return Path(env)
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= 2 << 30:
            return shm
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def _find_binary(name: str | Sequence[str], dirs: Sequence[str | Path] = ()) -> str | None:
    names = [name] if isinstance(name, str) else list(name)
    for n in names:
        for d in dirs:
            cand = Path(d) / n
            if cand.is_file() and os.access(cand, os.X_OK):
                return str(cand)
        path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
        found = shutil.which(n, path=path)
        if found:
            return found
    return None


def _pid_alive(pid: int, comm: str | None = None) -> bool:
    """True if *pid* exists, is not a zombie and (if given) is named *comm*."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    lpar, rpar = stat.find(b"("), stat.rfind(b")")
    if comm is not None and stat[lpar + 1 : rpar].decode("utf-8", "replace") != comm[:15]:
        return False  # pid was recycled by another program
    state = stat[rpar + 2 : rpar + 3]
    return state not in (b"Z", b"X", b"")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int) -> str:
    try:
        data = path.read_bytes()[-65536:]
    except OSError as exc:
        return f"<no log: {exc}>"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _odbc_quote(value: str) -> str:
    # Only brace values that need it: psqlODBC keeps the braces of e.g. Uid={x}.
    if re.search(r"[;{}=]|^\s|\s$", value):
        return "{" + value.replace("}", "}}") + "}"
    return value


def _check_ident(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise HarnessError(f"invalid database name {name!r} (use [A-Za-z_][A-Za-z0-9_]*)")
    return name


@dataclass(frozen=True)
class Database:
    """A database on a harness server (what ``pg_db``/``maria_db`` yield)."""

    server: DatabaseServer
    name: str

    def sql(self, sql: str, *, superuser: bool = False, **kw: Any) -> list[Row]:
        return self.server.sql(sql, database=self.name, superuser=superuser, **kw)

    def odbc_connection_string(self) -> str:
        return self.server.odbc_connection_string(self.name)

    def odbc_connect(self, **kw: Any) -> Any:
        return self.server.odbc_connect(self.name, **kw)

    def dsn_env(self, **kw: Any) -> dict[str, str]:
        return self.server.dsn_env(database=self.name, **kw)

    def __str__(self) -> str:
        return self.name


# --------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------


class DatabaseServer:
    """Common base of :class:`PostgresServer` and :class:`MariaDBServer`."""

    kind: ClassVar[str] = "db"
    process_name: ClassVar[str | None] = None
    default_os_user: ClassVar[str] = ""
    odbc_driver_env: ClassVar[str] = ""
    odbc_driver_default: ClassVar[str] = ""
    host: str = "127.0.0.1"

    def __init__(
        self,
        *,
        port: int | None = None,
        user: str = "opsready",
        password: str | None = None,
        fast: bool = True,
        extra_conf: Mapping[str, ConfValue] | None = None,
        tmp_root: str | Path | None = None,
        os_user: str | None = None,
        start_timeout: float = 60.0,
        die_with_parent: bool = True,
    ) -> None:
        _check_ident(user)
        if password is not None and not _PASSWORD_RE.match(password):
            raise HarnessError("password must be 8+ chars of [A-Za-z0-9_.~+/!@#%^*()-]")
        self.port: int | None = port
        self._port_fixed = port is not None
        self.user = user
        self.password = password or secrets.token_urlsafe(24)
        self.fast = fast
        self.extra_conf: dict[str, ConfValue] = dict(extra_conf or {})
        self.start_timeout = start_timeout
        self.die_with_parent = die_with_parent
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: io.BufferedWriter | None = None
        self._cleaned = False
        self._bootstrapped = False

        self.is_root = os.geteuid() == 0
        self.os_user: str | None = os_user or (self.default_os_user if self.is_root else None)
        if self.os_user:
            try:
                pw = pwd.getpwnam(self.os_user)
            except KeyError as exc:
                raise HarnessUnavailable(f"OS user {self.os_user!r} does not exist; {SETUP_HINT}") from exc
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
        else:
            self._uid, self._gid = os.getuid(), os.getgid()

        root = Path(tmp_root) if tmp_root else default_tmp_root()
        self.basedir = Path(tempfile.mkdtemp(prefix=f"opsready-{self.kind}-", dir=root))
        with _LIVE_LOCK:
            _LIVE.add(self)
        os.chmod(self.basedir, 0o711)  # service user may traverse, not list
        self.client_dir = self.basedir / "client"  # ours only: option files
        self.client_dir.mkdir(mode=0o700)
        self.datadir = self.service_dir("data")
        self.socket_dir = self.service_dir("run")
        self.tmpdir = self.service_dir("tmp")
        self.log_file = self.service_dir("log") / f"{self.kind}.log"

    # -- filesystem ------------------------------------------------------
    def service_dir(self, name: str) -> Path:
        """Create (if needed) ``basedir/name`` owned by the server's OS user, mode 0700."""
        path = self.basedir / name
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.os_user:
            os.chown(path, self._uid, self._gid)
        return path

    def fix_permissions(self, path: str | Path | None = None) -> None:
        """chown -R *path* (default: datadir) to the server's OS user.

        Not done automatically on start: restore code under test must get
        ownership right itself; use this only to prepare fixtures.
        """
        if not self.os_user:
            return
        top = Path(path or self.datadir)
        os.chown(top, self._uid, self._gid)
        for dirpath, dirnames, filenames in os.walk(top):
            for n in dirnames + filenames:
                os.lchown(os.path.join(dirpath, n), self._uid, self._gid)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_file, lines)

    # -- process helpers -------------------------------------------------
    def _secrets(self) -> list[str]:
        return [self.password]

    def _guard_argv(self, argv: Sequence[str]) -> None:
        for secret in self._secrets():
            if any(secret in a for a in argv):
                raise HarnessError("refusing to run a command with a password in argv")

    def _service_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"umask": 0o077}
        if self.os_user and self.is_root:
            kw.update(user=self._uid, group=self._gid, extra_groups=[])
        return kw

    def _service_env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.tmpdir),
            "LC_ALL": "C",
            "LANG": "C",
            "TMPDIR": str(self.tmpdir),
        }

    def _run_service(self, argv: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a server-side tool (initdb, install-db) as the service user."""
        self._guard_argv(argv)
        res = subprocess.run(
            list(argv),
            cwd=self.tmpdir,
            env=self._service_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **self._service_kwargs(),
        )
        if res.returncode != 0:
            raise ServerStartError(f"{Path(argv[0]).name} failed (rc={res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def _spawn_server(self, argv: Sequence[str]) -> None:
        self._guard_argv(argv)
        self._close_log()
        self._log_fh = open(self.log_file, "ab")  # noqa: SIM115 - closed in _close_log
        self._proc = subprocess.Popen(
            list(argv),
            cwd=self.tmpdir,
            env=self._service_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
            **self._service_kwargs(),
        )

    def _close_log(self) -> None:
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return _pid_alive(pid, self.process_name)

    def _wait_gone(self, pids: Sequence[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(self._alive(p) for p in pids):
                return True
            time.sleep(0.02)
        return not any(self._alive(p) for p in pids)

    def _run_client(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        input_text: str | None,
        timeout: float,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        self._guard_argv(argv)
        res = subprocess.run(
            list(argv),
            env=dict(env),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and res.returncode != 0:
            raise HarnessError(f"{Path(argv[0]).name} failed (rc={res.returncode}): {res.stderr.strip()}")
        return res

    def _wait_until(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self._server_process_alive():
                raise ServerStartError(f"{self.kind} exited while waiting for {what}; log tail:\n{self.log_tail()}")
            if pred():
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.kind} not ready ({what}) after {timeout:.0f}s; log tail:\n{self.log_tail()}"
                )
            time.sleep(0.03)

    def _server_process_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle (template) --------------------------------------------
    def _is_initialized(self) -> bool:
        raise NotImplementedError

    def _initialize(self) -> None:
        raise NotImplementedError

    def _launch(self) -> None:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _bootstrap(self) -> None:
        raise NotImplementedError

    def _bind_failed(self, log_since: str) -> bool:
        raise NotImplementedError

    def pid(self) -> int | None:
        raise NotImplementedError

    def is_running(self) -> bool:
        pid = self.pid()
        return pid is not None and self._alive(pid)

    def start(self: _S, timeout: float | None = None, wait: bool = True) -> _S:
        """Initialise the data dir if empty, then start the server.

        The port is picked on the first start and kept for restarts.  With
        ``wait=False`` returns right after spawning (use :meth:`wait_ready`).
        """
        if self._cleaned:
            raise HarnessError("server was cleaned up; create a new one")
        if self.is_running():
            return self
        t0 = time.monotonic()
        if not self._is_initialized():
            self._initialize()
            self._bootstrapped = False
        else:
            self._bootstrapped = True  # existing/restored data dir: leave roles alone
        for attempt in range(3):
            if self.port is None:
                self.port = _free_port(self.host)
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            self._launch()
            if not wait:
                return self
            try:
                self.wait_ready(timeout)
                break
            except ServerStartError:
                new_log = self.log_file.read_bytes()[log_offset:].decode("utf-8", "replace")
                if not self._port_fixed and attempt < 2 and self._bind_failed(new_log):
                    self._reap()
                    self.port = None  # raced for the port: pick another one
                    continue
                self.kill()
                raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        self._wait_until(self._ready, timeout or self.start_timeout, "readiness")
        if not self._bootstrapped:
            self._bootstrap()
            self._bootstrapped = True

    def _reap(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self._close_log()

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL the server (and its children) - simulates a crash."""
        pid = self.pid()
        if pid is None and self._proc is not None:
            pid = self._proc.pid
        if pid is not None and self._alive(pid):
            pids = [pid, *_children(pid)]
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._wait_gone(pids, 30)
        self._reap()

    def cleanup(self) -> None:
        """Stop the server (immediate, else SIGKILL) and delete the temp tree. Idempotent."""
        if self._cleaned:
            return
        try:
            if self.is_running():
                try:
                    self.stop("immediate", timeout=30)
                except Exception:  # noqa: BLE001
                    self.kill()
            self.kill()  # reap / no-op if already stopped
            self._after_kill_cleanup()
        finally:
            self._close_log()
            self._cleaned = True
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if os.environ.get("OPSREADY_TEST_KEEP") == "1":
                print(f"[harness] keeping {self.basedir}")
            else:
                shutil.rmtree(self.basedir, ignore_errors=True)

    def _after_kill_cleanup(self) -> None:
        pass

    def __enter__(self: _S) -> _S:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if not self._cleaned and self.is_running() else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} {self.basedir}>"

    # -- client helpers --------------------------------------------------
    def _require_port(self) -> int:
        if self.port is None:
            raise HarnessError(f"{type(self).__name__} has no port yet: call start() first")
        return self.port

    def bin(self, tool: str) -> str:
        raise NotImplementedError

    def sql(
        self,
        sql: str,
        *,
        database: str | None = None,
        superuser: bool = False,
        timeout: float = 120,
        check: bool = True,
    ) -> list[Row]:
        raise NotImplementedError

    def dsn_env(self, *, superuser: bool = False, database: str | None = None, inherit: bool = True) -> dict[str, str]:
        raise NotImplementedError

    def odbc_driver(self) -> str:
        return os.environ.get(self.odbc_driver_env) or self.odbc_driver_default

    def odbc_connection_string(self, database: str | None = None) -> str:
        raise NotImplementedError

    def odbc_connect(self, database: str | None = None, *, autocommit: bool = True, timeout: int = 10) -> Any:
        """Open a pyodbc connection as the test user (pyodbc imported lazily)."""
        import pyodbc  # noqa: PLC0415 - optional dependency

        return pyodbc.connect(self.odbc_connection_string(database), autocommit=autocommit, timeout=timeout)

    def create_database(self, name: str) -> str:
        raise NotImplementedError

    def drop_database(self, name: str) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


def _pg_conf_value(value: ConfValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


class PostgresServer(DatabaseServer):
    """Throw-away PostgreSQL cluster (default: version 15 from Debian paths).

    ``PostgresServer(port=None, user="opsready", password=None, fast=True,
    extra_conf=None, archive_command=None, bindir=None, tmp_root=None,
    os_user=None, start_timeout=60, die_with_parent=True)``

    * WAL archiving on: ``archive_command`` defaults to
      ``test ! -f <wal_archive_dir>/%f && cp %p <wal_archive_dir>/%f``.
    * ``wal_level=replica``, ``max_wal_senders=10``, replication slots,
      ``wal_log_hints=on`` (pg_rewind works), ``dynamic_shared_memory_type=mmap``
      (no /dev/shm leaks on kill).
    * pg_hba: local socket ``trust`` (superuser ``postgres``), TCP 127.0.0.1
      ``scram-sha-256`` for normal and replication connections.
    * ``fast=True``: ``fsync=off``, ``synchronous_commit=off``, initdb --no-sync.
    * ``extra_conf``: extra postgresql.conf settings (override defaults).
    * port / listen_addresses / unix_socket_directories are passed on the
      command line, so a base backup restored into ``datadir`` (possibly from
      another instance) starts on *this* instance's port and socket.
    """

    kind = "postgres"
    process_name = "postgres"
    default_os_user = "postgres"
    odbc_driver_env = "OPSREADY_PG_ODBC_DRIVER"
    odbc_driver_default = "PostgreSQL Unicode"
    default_bindirs: ClassVar[tuple[str, ...]] = ("/usr/lib/postgresql/15/bin", "/usr/pgsql-15/bin")

    def __init__(
        self,
        *,
        archive_command: str | None = None,
        bindir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        dirs = [str(bindir)] if bindir else []
        if os.environ.get("OPSREADY_PG_BINDIR"):
            dirs.insert(0, os.environ["OPSREADY_PG_BINDIR"])
        dirs += list(self.default_bindirs)
        postgres = _find_binary("postgres", dirs)
        # All tools come from the postgres binary's real directory, so a PATH
        # symlink or Debian's pg_wrapper never mixes major versions.
        real_bindir = Path(os.path.realpath(postgres)).parent if postgres else None
        self._bins: dict[str, str] = {}
        missing = []
        for tool in ("postgres", "initdb", "pg_ctl", "psql"):
            path = real_bindir / tool if real_bindir else None
            if path is None or not os.access(path, os.X_OK):
                missing.append(tool)
            else:
                self._bins[tool] = str(path)
        if missing:
            raise HarnessUnavailable(
                f"PostgreSQL binaries not found: {', '.join(missing)} (searched "
                f"{', '.join(dirs)} and PATH); {SETUP_HINT}"
            )
        self.bindir = Path(self._bins["postgres"]).parent
        self.superuser = "postgres"
        super().__init__(**kwargs)
        self.wal_archive_dir = self.service_dir("wal_archive")
        if archive_command is None:
            dest = shlex.quote(str(self.wal_archive_dir)) + "/%f"
            archive_command = f"test ! -f {dest} && cp %p {dest}"
        self.archive_command = archive_command

    # -- tools -----------------------------------------------------------
    def bin(self, tool: str) -> str:
        if tool in self._bins:
            return self._bins[tool]
        path = self.bindir / tool
        if not path.exists():
            found = _find_binary(tool)
            if found is None:
                raise HarnessUnavailable(f"{tool} not found in {self.bindir}; {SETUP_HINT}")
            return found
        return str(path)

    @property
    def pid_file(self) -> Path:
        return self.datadir / "postmaster.pid"

    def _pidfile_lines(self) -> list[str]:
        try:
            return self.pid_file.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return []

    def pid(self) -> int | None:
        lines = self._pidfile_lines()
        if lines and lines[0].strip().isdigit():
            return int(lines[0])
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    # -- lifecycle -------------------------------------------------------
    def _is_initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def conf_settings(self) -> dict[str, ConfValue]:
        """The postgresql.conf settings the harness writes (before extra_conf)."""
        conf: dict[str, ConfValue] = {
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": self.archive_command,
            "max_wal_senders": 10,
            "max_replication_slots": 10,
            "wal_log_hints": True,
            "hot_standby": True,
            "max_connections": 50,
            "shared_buffers": "64MB",
            "dynamic_shared_memory_type": "mmap",
            "password_encryption": "scram-sha-256",
            "logging_collector": False,
            "log_line_prefix": "%m [%p] %q%u@%d ",
            "log_min_messages": "warning",
            "log_checkpoints": False,
            "timezone": "UTC",
            "log_timezone": "UTC",
        }
        if self.fast:
            conf.update(fsync=False, synchronous_commit=False)
        conf.update(self.extra_conf)
        return conf

    def _initialize(self) -> None:
        argv = [
            self.bin("initdb"),
            "-D",
            str(self.datadir),
            "-U",
            self.superuser,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        if self.fast:
            argv.append("--no-sync")
        self._run_service(argv)
        block = ["", "# --- opsready test harness ---"]
        block += [f"{k} = {_pg_conf_value(v)}" for k, v in self.conf_settings().items()]
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\n".join(block) + "\n")
        (self.datadir / "pg_hba.conf").write_text(
            "# opsready test harness\n"
            "local   all          all                    trust\n"
            "local   replication  all                    trust\n"
            "host    all          all   127.0.0.1/32     scram-sha-256\n"
            "host    replication  all   127.0.0.1/32     scram-sha-256\n",
            encoding="utf-8",
        )

    def _launch(self) -> None:
        assert self.port is not None
        self._spawn_server(
            [
                self.bin("postgres"),
                "-D",
                str(self.datadir),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                f"unix_socket_directories={self.socket_dir}",
            ]
        )

    def _server_process_alive(self) -> bool:
        if super()._server_process_alive():
            return True
        pid = self.pid()
        return pid is not None and self._alive(pid)

    def _ready(self) -> bool:
        lines = self._pidfile_lines()
        if len(lines) < 8 or not lines[0].strip().isdigit():
            return False
        if self._proc is not None and int(lines[0]) != self._proc.pid:
            return False  # stale pid file from a killed instance
        return lines[7].strip() in ("ready", "standby")

    def _bind_failed(self, log_since: str) -> bool:
        return "could not bind" in log_since or "could not create any TCP/IP sockets" in log_since

    def _bootstrap(self) -> None:
        # SQL goes via stdin, so the password never appears in argv.
        self.sql(
            f"CREATE ROLE {self.user} LOGIN SUPERUSER REPLICATION CREATEDB CREATEROLE "
            f"PASSWORD {_sql_literal(self.password)};",
            superuser=True,
        )
        self.sql("SELECT 1")  # proves TCP + scram login works

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server: ``fast`` (SIGINT, clean checkpoint), ``immediate``
        (SIGQUIT, crash-recovery at next start) or ``smart`` (SIGTERM)."""
        sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT, "smart": signal.SIGTERM}.get(mode)
        if sig is None:
            raise HarnessError(f"unknown stop mode {mode!r}")
        pid = self.pid()
        if pid is None or not self._alive(pid):
            self._reap()
            return
        os.kill(pid, sig)
        if not self._wait_gone([pid], timeout):
            raise HarnessError(f"postgres did not stop ({mode}) in {timeout}s; log:\n{self.log_tail()}")
        self._reap()

    def _after_kill_cleanup(self) -> None:
        # A SIGKILLed postmaster leaves its small SysV segment behind.
        lines = self._pidfile_lines()
        if len(lines) >= 7 and self.pid() is not None and not _pid_alive(self.pid() or 0):
            parts = lines[6].split()
            if len(parts) == 2 and parts[1].isdigit() and shutil.which("ipcrm"):
                subprocess.run(["ipcrm", "-m", parts[1]], capture_output=True, check=False)

    # -- clients ---------------------------------------------------------
    def dsn_env(self, *, superuser: bool = False, database: str | None = None, inherit: bool = True) -> dict[str, str]:
        """libpq environment. Test user: TCP + ``PGPASSWORD``; superuser: socket, trust."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} if inherit else {}
        env.update(
            PGPORT=str(self._require_port()),
            PGDATABASE=database or "postgres",
            PGSSLMODE="disable",
            PGCONNECT_TIMEOUT="10",
        )
        if superuser:
            env.update(PGHOST=str(self.socket_dir), PGUSER=self.superuser)
        else:
            env.update(PGHOST=self.host, PGUSER=self.user, PGPASSWORD=self.password)
        return env

    def sql(
        self,
        sql: str,
        *,
        database: str | None = None,
        superuser: bool = False,
        timeout: float = 120,
        check: bool = True,
    ) -> list[Row]:
        """Run *sql* through ``psql`` (stdin, ON_ERROR_STOP) and return all rows
        of all statements as text tuples (NULL -> None)."""
        argv = [self.bin("psql"), "-X", "-q", "--csv", "-t", "-v", "ON_ERROR_STOP=1", "-P", "null=\x1d"]
        res = self._run_client(
            argv, env=self.dsn_env(superuser=superuser, database=database), input_text=sql, timeout=timeout, check=check
        )
        return [tuple(None if v == "\x1d" else v for v in row) for row in csv.reader(io.StringIO(res.stdout)) if row]

    psql = sql

    def odbc_connection_string(self, database: str | None = None) -> str:
        """psqlODBC connection string (TCP, scram).  ``CommLog=0;Debug=0`` override
        Debian's odbcinst.ini ``CommLog=1``, which would log traffic to /tmp."""
        parts = {
            "Driver": "{" + self.odbc_driver() + "}",
            "Server": self.host,
            "Port": str(self._require_port()),
            "Database": _odbc_quote(database or "postgres"),
            "Uid": _odbc_quote(self.user),
            "Pwd": _odbc_quote(self.password),
            "SSLmode": "disable",
            "CommLog": "0",
            "Debug": "0",
        }
        return ";".join(f"{k}={v}" for k, v in parts.items()) + ";"

    def create_database(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{_check_ident(name)}" OWNER "{self.user}"', superuser=True)
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{_check_ident(name)}" WITH (FORCE)', superuser=True)


# --------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------


class MariaDBServer(DatabaseServer):
    """Throw-away MariaDB server (mariadbd run directly, ``--no-defaults``).

    ``MariaDBServer(port=None, user="opsready", password=None, fast=True,
    extra_conf=None, tmp_root=None, os_user=None, start_timeout=60,
    die_with_parent=True)``

    * binary log on: ``binlog_dir/mariadb-bin.*`` (outside the datadir so PITR
      tests can wipe/restore the datadir), ``binlog_format=ROW``, ``server_id=1``.
    * ``--bind-address=127.0.0.1 --skip-name-resolve``, socket in ``socket_dir``,
      utf8mb4 server charset.
    * test user ``'<user>'@'%'`` with a password and ``ALL PRIVILEGES ... WITH
      GRANT OPTION``; ``root`` (``superuser``) via unix_socket auth on our socket
      (when not run as root, superuser is the current OS user).
    * ``fast=True``: ``innodb_flush_log_at_trx_commit=2``, ``sync_binlog=0``,
      ``innodb_doublewrite=0``.
    * ``extra_conf``: extra server options, passed as ``--key=value``.
    * ``gtid_strict_mode=True`` (opt-in): ``--gtid-strict-mode=ON``; ``gtid_domain_id=N``: the server's
      GTID domain.
    """

    kind = "mariadb"
    process_name = "mariadbd"
    default_os_user = "mysql"
    odbc_driver_env = "OPSREADY_MARIADB_ODBC_DRIVER"
    odbc_driver_default = "MariaDB Unicode"

    def __init__(self, *, gtid_strict_mode: bool = False, gtid_domain_id: int | None = None, **kwargs: Any) -> None:
        # Opt-in: ``gtid_strict_mode=True`` refuses any binlogged GTID out of order (a replay that
        # writes the source's GTIDs back fails); ``gtid_domain_id`` sets the server's GTID domain.
        self.gtid_strict_mode = gtid_strict_mode
        self.gtid_domain_id = gtid_domain_id
        self._bins = {}
        missing = []
        for key, names in {
            "mariadbd": ("mariadbd", "mysqld"),
            "mariadb-install-db": ("mariadb-install-db", "mysql_install_db"),
            "mariadb": ("mariadb", "mysql"),
        }.items():
            found = _find_binary(names, ["/usr/sbin", "/usr/libexec", "/usr/bin"])
            if found is None:
                missing.append(key)
            else:
                self._bins[key] = found
        if missing:
            raise HarnessUnavailable(f"MariaDB binaries not found: {', '.join(missing)}; {SETUP_HINT}")
        super().__init__(**kwargs)
        self.superuser = "root" if self.is_root else getpass.getuser()
        self.binlog_dir = self.service_dir("binlog")
        self.socket = self.socket_dir / "mariadb.sock"
        self.pid_file = self.socket_dir / "mariadb.pid"

    def bin(self, tool: str) -> str:
        if tool in self._bins:
            return self._bins[tool]
        found = _find_binary(tool, ["/usr/bin", "/usr/sbin"])
        if found is None:
            raise HarnessUnavailable(f"{tool} not found; {SETUP_HINT}")
        return found

    def pid(self) -> int | None:
        try:
            text = self.pid_file.read_text().strip()
        except OSError:
            text = ""
        if text.isdigit():
            return int(text)
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    def _is_initialized(self) -> bool:
        return (self.datadir / "mysql").is_dir()

    def _initialize(self) -> None:
        argv = [
            self.bin("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            "--skip-name-resolve",
            f"--tmpdir={self.tmpdir}",
        ]
        if self.is_root:
            # install-db must run as root to chown; it drops to --user itself.
            argv[2:2] = [f"--user={self.os_user}"]
            res = subprocess.run(
                argv,
                cwd=self.tmpdir,
                env=self._service_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            if res.returncode != 0:
                raise ServerStartError(f"mariadb-install-db failed:\n{res.stdout}\n{res.stderr}")
        else:
            argv.append(f"--auth-root-socket-user={self.superuser}")
            self._run_service(argv, timeout=180)

    def server_args(self) -> list[str]:
        """mariadbd command line (without the binary)."""
        args = [
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.socket}",
            f"--pid-file={self.pid_file}",
            f"--tmpdir={self.tmpdir}",
            f"--log-bin={self.binlog_dir / 'mariadb-bin'}",
            f"--log-bin-index={self.binlog_dir / 'mariadb-bin.index'}",
            "--binlog-format=ROW",
            "--server-id=1",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--innodb-buffer-pool-size=64M",
            "--max-connections=100",
        ]
        if self.fast:
            args += ["--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--innodb-doublewrite=0"]
        if self.gtid_strict_mode:
            args.append("--gtid-strict-mode=ON")
        if self.gtid_domain_id is not None:
            args.append(f"--gtid-domain-id={int(self.gtid_domain_id)}")
        for key, value in self.extra_conf.items():
            if isinstance(value, bool):
                value = "ON" if value else "OFF"
            args.append(f"--{key}={value}")
        return args

    def _launch(self) -> None:
        self._spawn_server([self.bin("mariadbd"), *self.server_args()])

    def _ready(self) -> bool:
        if not self.socket.exists():
            return False
        res = self._run_client(
            [
                self.bin("mariadb"),
                f"--defaults-file={self.option_file(superuser=True)}",
                "--connect-timeout=2",
                "-e",
                "SELECT 1",
            ],
            env=self._client_env(),
            input_text=None,
            timeout=10,
            check=False,
        )
        return res.returncode == 0

    def _bind_failed(self, log_since: str) -> bool:
        return "Address already in use" in log_since or "Can't start server: Bind" in log_since

    def _bootstrap(self) -> None:
        self.sql(
            f"CREATE USER IF NOT EXISTS '{self.user}'@'%' IDENTIFIED BY {_sql_literal(self.password)};\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'%' WITH GRANT OPTION;\n",
            superuser=True,
        )
        self.sql("SELECT 1")  # proves TCP + password login works

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server with SIGTERM.  ``fast``: clean InnoDB shutdown;
        ``immediate``: ``innodb_fast_shutdown=2`` first (crash recovery at next
        start, like PostgreSQL's immediate mode)."""
        if mode not in ("fast", "immediate"):
            raise HarnessError(f"unknown stop mode {mode!r}")
        pid = self.pid()
        if pid is None or not self._alive(pid):
            self._reap()
            return
        if mode == "immediate":
            self.sql("SET GLOBAL innodb_fast_shutdown = 2", superuser=True, check=False, timeout=10)
        os.kill(pid, signal.SIGTERM)
        if not self._wait_gone([pid], timeout):
            raise HarnessError(f"mariadbd did not stop in {timeout}s; log:\n{self.log_tail()}")
        self._reap()

    # -- clients ---------------------------------------------------------
    def option_file(self, *, superuser: bool = False, database: str | None = None) -> Path:
        """Path of a 0600 client option file (``[client]`` group) for the test
        user (TCP) or the superuser (socket).  Use as ``--defaults-file=`` (must
        be the first option) or via :meth:`dsn_env`.  ``database`` goes into the
        ``[mysql]``/``[mariadb-client]`` groups only (other tools reject it)."""
        name = ("root" if superuser else "user") + (f"-{_check_ident(database)}" if database else "")
        d = self.client_dir / name
        d.mkdir(mode=0o700, exist_ok=True)
        if superuser:
            lines = ["[client]", f"user={self.superuser}", f"socket={self.socket}", "protocol=SOCKET"]
        else:
            lines = [
                "[client]",
                f"host={self.host}",
                f"port={self._require_port()}",
                f"user={self.user}",
                f'password="{self.password}"',
                "protocol=TCP",
            ]
        # the client's charset follows the locale (latin1 under LC_ALL=C): non-ASCII names need utf8mb4
        lines += ["[mysql]", "default-character-set=utf8mb4"]
        if database:
            lines += ["[mysql]", f"database={database}", "[mariadb-client]", f"database={database}"]
        path = d / "my.cnf"
        content = "\n".join(lines) + "\n"
        try:
            if path.read_text(encoding="utf-8") == content:
                return path
        except OSError:
            pass
        # atomic replace: a concurrent client never sees a half-written file
        tmp = d / f".my.cnf.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.replace(tmp, path)
        return path

    def _client_env(self) -> dict[str, str]:
        drop = ("MYSQL_", "MARIADB_")
        return {k: v for k, v in os.environ.items() if not k.startswith(drop)}

    def dsn_env(self, *, superuser: bool = False, database: str | None = None, inherit: bool = True) -> dict[str, str]:
        """Client environment: ``MYSQL_HOME``/``MARIADB_HOME`` -> dir with a 0600
        ``my.cnf`` (read after /etc/mysql, so it wins), plus
        ``OPSREADY_MYSQL_DEFAULTS_FILE`` (its path).  No password in env/argv."""
        path = self.option_file(superuser=superuser, database=database)
        env = self._client_env() if inherit else {}
        env.update(MYSQL_HOME=str(path.parent), MARIADB_HOME=str(path.parent), OPSREADY_MYSQL_DEFAULTS_FILE=str(path))
        return env

    def sql(
        self,
        sql: str,
        *,
        database: str | None = None,
        superuser: bool = False,
        timeout: float = 120,
        check: bool = True,
    ) -> list[Row]:
        """Run *sql* through the ``mariadb`` client (stdin) and return all rows
        of all result sets as text tuples (NULL -> None; parsed from --xml)."""
        argv = [self.bin("mariadb"), f"--defaults-file={self.option_file(superuser=superuser)}", "--xml", "--batch"]
        if database:
            argv.append(_check_ident(database))
        res = self._run_client(argv, env=self._client_env(), input_text=sql, timeout=timeout, check=check)
        rows: list[Row] = []
        for doc in res.stdout.split('<?xml version="1.0"?>'):
            if not doc.strip():
                continue
            for row in ET.fromstring(doc.strip()).iter("row"):
                rows.append(tuple(None if f.get(_XSI_NIL) == "true" else (f.text or "") for f in row.iter("field")))
        return rows

    def odbc_connection_string(self, database: str | None = None) -> str:
        """MariaDB Connector/ODBC connection string (TCP, password auth)."""
        parts = {
            "DRIVER": "{" + self.odbc_driver() + "}",
            "SERVER": self.host,
            "PORT": str(self._require_port()),
            "UID": _odbc_quote(self.user),
            "PWD": _odbc_quote(self.password),
        }
        if database:
            parts["DATABASE"] = _odbc_quote(database)
        return ";".join(f"{k}={v}" for k, v in parts.items()) + ";"

    def create_database(self, name: str) -> str:
        self.sql(f"CREATE DATABASE `{_check_ident(name)}` CHARACTER SET utf8mb4", superuser=True)
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS `{_check_ident(name)}`", superuser=True)
