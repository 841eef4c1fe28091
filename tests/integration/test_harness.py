"""Proves the database test harness (tests/harness/servers.py) works.

Connects to the throw-away PostgreSQL and MariaDB servers via pyodbc and the
native clients, round-trips rows, checks password auth is enforced, that no
password ever shows up in a process argv, that WAL archiving / binlogs (PITR
prerequisites) work, and that stop/kill/restart behave for fault tests.
"""

from __future__ import annotations

import glob
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pyodbc
import pytest

from tests.harness.servers import (
    Database,
    DatabaseServer,
    MariaDBServer,
    PostgresServer,
)

ROWS = [(1, "alpha"), (2, "beta, with comma"), (3, "gamma\nmultiline"), (4, None)]


def _odbc_roundtrip(db: Database, ddl: str) -> None:
    conn = db.odbc_connect()
    try:
        cur = conn.cursor()
        cur.execute(ddl)
        cur.executemany("INSERT INTO items (id, label) VALUES (?, ?)", ROWS)
        got = [tuple(r) for r in cur.execute("SELECT id, label FROM items ORDER BY id").fetchall()]
    finally:
        conn.close()
    assert got == ROWS
    # ... and the native client sees the same rows (NULL -> None, text values)
    assert db.sql("SELECT id, label FROM items ORDER BY id") == [(str(i), v) for i, v in ROWS]


def _psqlodbc_logs() -> set[str]:
    return set(glob.glob("/tmp/psqlodbc_*.log")) | set(glob.glob(os.path.expanduser("~/psqlodbc_*.log")))


def test_postgres_via_pyodbc(pg_db: Database) -> None:
    server = pg_db.server
    conn_str = pg_db.odbc_connection_string()
    assert "Driver={PostgreSQL Unicode}" in conn_str
    assert "CommLog=0" in conn_str
    before = _psqlodbc_logs()
    _odbc_roundtrip(pg_db, "CREATE TABLE items (id int PRIMARY KEY, label text)")
    # Debian's odbcinst.ini has CommLog=1: the driver still creates a per-process
    # stub log in /tmp, but with CommLog=0 it must not contain the credentials.
    for path in _psqlodbc_logs() - before:
        text = Path(path).read_text(errors="replace")
        assert server.password not in text, f"password leaked into {path}"
        if path.endswith(f"{os.getpid()}.log"):
            os.unlink(path)


def test_mariadb_via_pyodbc(maria_db: Database) -> None:
    assert "DRIVER={MariaDB Unicode}" in maria_db.odbc_connection_string()
    _odbc_roundtrip(maria_db, "CREATE TABLE items (id int PRIMARY KEY, label text) ENGINE=InnoDB")


def test_postgres_native_client(pg_db: Database) -> None:
    pg = pg_db.server
    assert isinstance(pg, PostgresServer)
    pg_db.sql(
        "CREATE TABLE items (id int PRIMARY KEY, label text);INSERT INTO items VALUES (1, 'alpha'), (2, NULL), (3, '');"
    )
    assert pg.psql("SELECT id, label FROM items ORDER BY id", database=pg_db.name) == [
        ("1", "alpha"),
        ("2", None),
        ("3", ""),
    ]
    # plain psql, connection entirely from dsn_env() (TCP + PGPASSWORD)
    out = subprocess.run(
        [pg.bin("psql"), "-X", "-At", "-c", "SELECT current_user, count(*) FROM items"],
        env=pg_db.dsn_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == f"{pg.user}|3"
    assert pg.sql("SELECT current_user", superuser=True) == [("postgres",)]
    assert pg.sql("SHOW wal_level") == [("replica",)]


def test_mariadb_native_client(maria_db: Database) -> None:
    m = maria_db.server
    assert isinstance(m, MariaDBServer)
    maria_db.sql(
        "CREATE TABLE items (id int PRIMARY KEY, label text);INSERT INTO items VALUES (1, 'alpha'), (2, NULL), (3, '');"
    )
    assert maria_db.sql("SELECT id, label FROM items ORDER BY id") == [
        ("1", "alpha"),
        ("2", None),
        ("3", ""),
    ]
    # plain mariadb client, credentials from the 0600 option file via MYSQL_HOME
    env = maria_db.dsn_env()
    opt = Path(env["OPSREADY_MYSQL_DEFAULTS_FILE"])
    assert stat.S_IMODE(opt.stat().st_mode) == 0o600
    out = subprocess.run(
        [m.bin("mariadb"), "-N", "-B", "-e", "SELECT current_user(), count(*) FROM items"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == f"{m.user}@%\t3"
    assert m.sql("SELECT current_user()", superuser=True) == [(f"{m.superuser}@localhost",)]


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_wrong_password_is_rejected(engine: str, request: pytest.FixtureRequest) -> None:
    server: DatabaseServer = request.getfixturevalue(f"{engine}_server")
    bad = server.odbc_connection_string().replace(server.password, "not-the-password")
    with pytest.raises(pyodbc.Error):
        pyodbc.connect(bad, timeout=5).close()


def _argv_snapshot() -> list[bytes]:
    out = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as fh:
                out.append(fh.read())
        except OSError:
            continue
    return out


def test_passwords_never_in_argv(pg_db: Database, maria_db: Database) -> None:
    pg, m = pg_db.server, maria_db.server
    secrets = [pg.password.encode(), m.password.encode()]
    clients = [
        subprocess.Popen(
            [pg.bin("psql"), "-X", "-c", "SELECT pg_sleep(1.5)"], env=pg_db.dsn_env(), stdout=subprocess.DEVNULL
        ),
        subprocess.Popen(
            [m.bin("mariadb"), "-e", "SELECT SLEEP(1.5)"], env=maria_db.dsn_env(), stdout=subprocess.DEVNULL
        ),
    ]
    helpers = [
        threading.Thread(target=pg_db.sql, args=("SELECT pg_sleep(1.5)",)),
        threading.Thread(target=maria_db.sql, args=("SELECT SLEEP(1.5)",)),
        threading.Thread(target=lambda: pg_db.odbc_connect().execute("SELECT pg_sleep(1)").close()),
        threading.Thread(target=lambda: maria_db.odbc_connect().execute("SELECT SLEEP(1)").close()),
    ]
    for t in helpers:
        t.start()
    seen_psql = seen_mariadb = 0
    deadline = time.monotonic() + 10
    while any(c.poll() is None for c in clients) and time.monotonic() < deadline:
        for argv in _argv_snapshot():
            for secret in secrets:
                assert secret not in argv, f"password visible in argv: {argv[:60]!r}..."
            prog = os.path.basename(argv.split(b"\0", 1)[0])
            seen_psql += prog == b"psql"
            seen_mariadb += prog in (b"mariadb", b"mysql")
        time.sleep(0.05)
    for t in helpers:
        t.join(timeout=30)
    assert [c.wait(timeout=30) for c in clients] == [0, 0]
    assert seen_psql and seen_mariadb, "scanner never saw the client processes"


def test_postgres_wal_archiving(pg_db: Database) -> None:
    pg = pg_db.server
    assert isinstance(pg, PostgresServer)
    pg_db.sql("CREATE TABLE w AS SELECT g FROM generate_series(1, 1000) g")
    (walfile,) = pg.sql("SELECT pg_walfile_name(pg_switch_wal())")[0]
    deadline = time.monotonic() + 30
    while not (pg.wal_archive_dir / str(walfile)).exists():
        assert time.monotonic() < deadline, f"{walfile} never archived:\n{pg.log_tail()}"
        time.sleep(0.1)


def test_mariadb_binlog_enabled(maria_db: Database) -> None:
    m = maria_db.server
    assert isinstance(m, MariaDBServer)
    assert m.sql("SELECT @@log_bin, @@binlog_format, @@server_id") == [("1", "ROW", "1")]
    maria_db.sql("CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b VALUES (1)")
    logs = [str(r[0]) for r in m.sql("SHOW BINARY LOGS")]
    assert logs and all((m.binlog_dir / name).exists() for name in logs)


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_lifecycle_stop_kill_restart(engine: str, request: pytest.FixtureRequest) -> None:
    server: DatabaseServer = request.getfixturevalue(f"{engine}_factory")()
    if os.geteuid() == 0:
        assert server.datadir.stat().st_uid != 0  # runs as postgres / mysql
    port = server.port
    db = server.create_database("life")
    server.sql("CREATE TABLE t (a int); INSERT INTO t VALUES (42)", database=db)
    for how in ("fast", "immediate", "kill"):
        if how == "kill":
            server.kill()
        else:
            server.stop(mode=how)
        assert not server.is_running()
        server.start()
        assert server.is_running() and server.port == port
        assert server.sql("SELECT a FROM t", database=db) == [("42",)], how
    basedir = server.basedir
    server.kill()
    server.cleanup()
    assert not basedir.exists()
