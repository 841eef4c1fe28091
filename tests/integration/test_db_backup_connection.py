"""db_backup connection options no other test exercises: ``login_option_file`` (PostgreSQL ``.pgpass`` through
PGPASSFILE, MariaDB client option file) and ``login_unix_socket`` (PostgreSQL socket directory, MariaDB socket
file), each against the real harness servers and each artifact restored by hand into a scratch database."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.harness.playbook import play

ZSTD = '/usr/bin/zstd'


def everything_printed(result) -> str:
    """All a user (or AWX) can see of a run: the output and every job event's data."""
    return result.stdout + json.dumps([e.get('event_data', {}) for e in result.events], default=str)


def secret_file(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    return path


def zstd_bytes(path: str) -> bytes:
    return subprocess.run([ZSTD, '-dc', path], check=True, capture_output=True).stdout


# -- PostgreSQL ----------------------------------------------------------------------------------------

def pg_seed(db, rows: int) -> None:
    db.sql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);"
           "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, %d) g;" % rows)


def pg_restore_count(server, artifact: str, target: str) -> str:
    """Load a zstd custom-format dump into a new database with pg_restore; the items row count there."""
    server.create_database(target)
    try:
        subprocess.run([server.bin('pg_restore'), '--exit-on-error', '--no-owner', '-d', target],
                       input=zstd_bytes(artifact), env=server.dsn_env(database=target), check=True,
                       capture_output=True)
        return server.sql('SELECT count(*) FROM items', database=target)[0][0]
    finally:
        server.drop_database(target)


def test_postgresql_pgpass_option_file_instead_of_password(pg_db, tmp_path):
    server = pg_db.server
    pg_seed(pg_db, 1234)
    entry = '%s:%d:*:%s:%s\n' % (server.host, server.port, server.user, server.password)
    pgpass = secret_file(tmp_path / 'pgpass', entry)
    dest = tmp_path / 'backups'
    tcp = {'login_host': server.host, 'login_port': server.port, 'login_user': server.user}
    # No login_password and no extra vars anywhere: the password exists only in the 0600 .pgpass file.
    result = play(tmp_path, [
        {'name': 'without the file', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
            tcp, engine='postgresql', database=pg_db.name, dest=str(tmp_path / 'nofile'))},
        {'name': 'backup', 'opsready.operations.db_backup': dict(
            tcp, engine='postgresql', database=pg_db.name, dest=str(dest), login_option_file=str(pgpass))},
    ])
    assert result.rc == 0, result.stdout[-4000:]
    # The server needs a password over TCP (scram): the file, not some ambient credential, let the backup in.
    assert result.result('without the file')['_event'] == 'runner_on_failed'
    assert not (tmp_path / 'nofile').exists() or not any(
        n.endswith('.manifest.json') for n in os.listdir(tmp_path / 'nofile'))
    backup = result.result('backup')
    manifest = backup['manifest']
    assert backup['changed'] is True and manifest['verification']['ok'] is True
    assert manifest['format'] == 'custom' and manifest['server'] == '%s:%d' % (server.host, server.port)
    assert manifest['path'].endswith('.dump.zst') and os.path.getsize(manifest['path']) == manifest['size']
    listing = subprocess.run([server.bin('pg_restore'), '--list'], input=zstd_bytes(manifest['path']),
                             check=True, capture_output=True).stdout.decode()
    assert 'TABLE DATA public items' in listing
    assert pg_restore_count(server, manifest['path'], pg_db.name + '_r') == '1234'
    assert server.password not in everything_printed(result)
    assert pgpass.read_text().endswith(server.password + '\n')  # the user's file is left as it was


def test_postgresql_unix_socket_full_and_base_without_password(pg_db, tmp_path):
    server = pg_db.server
    pg_seed(pg_db, 321)
    dest = tmp_path / 'backups'
    # pg_hba: local (socket) connections are trusted, TCP ones need scram; the port names the socket file.
    sock = {'login_unix_socket': str(server.socket_dir), 'login_port': server.port, 'login_user': server.user}
    result = play(tmp_path, [
        {'name': 'full', 'opsready.operations.db_backup': dict(
            sock, engine='postgresql', database=pg_db.name, dest=str(dest))},
        {'name': 'base', 'opsready.operations.db_backup': dict(
            sock, engine='postgresql', kind='base', dest=str(dest / 'base'))},
        {'name': 'host and socket', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
            sock, login_host=server.host, engine='postgresql', database=pg_db.name, dest=str(dest))},
    ])
    assert result.rc == 0, result.stdout[-4000:]
    label = '%s:%s' % (socket.gethostname(), server.socket_dir)
    full = result.result('full')['manifest']
    assert full['verification']['ok'] is True and full['server'] == label
    assert pg_restore_count(server, full['path'], pg_db.name + '_s') == '321'
    base = result.result('base')['manifest']
    assert base['kind'] == 'base' and base['verification']['ok'] is True and base['server'] == label
    assert base['position']['start_lsn'] and base['position']['end_lsn']
    both = result.result('host and socket')
    assert both['_event'] == 'runner_on_failed'
    assert 'mutually exclusive' in both['msg'] and 'login_unix_socket' in both['msg']


# -- MariaDB -------------------------------------------------------------------------------------------

def maria_seed(db, rows: int) -> None:
    db.sql("CREATE TABLE items (id int PRIMARY KEY, name varchar(64) NOT NULL) ENGINE=InnoDB;"
           "INSERT INTO items SELECT seq, md5(seq) FROM seq_1_to_%d;" % rows)


def maria_restore_count(server, artifact: str, target: str) -> str:
    server.create_database(target)
    try:
        subprocess.run([server.bin('mariadb'), '--defaults-file=%s' % server.option_file(), target],
                       input=zstd_bytes(artifact), check=True, capture_output=True)
        return server.sql('SELECT count(*) FROM items', database=target)[0][0]
    finally:
        server.drop_database(target)


def test_mariadb_client_option_file_instead_of_password(maria_db, tmp_path):
    server = maria_db.server
    maria_seed(maria_db, 777)
    cnf = secret_file(tmp_path / 'backup.cnf', '[client]\nuser=%s\npassword="%s"\nhost=%s\nport=%d\n'
                      % (server.user, server.password, server.host, server.port))
    dest = tmp_path / 'backups'
    # Nothing but the option file says where the server is or who to log in as.
    result = play(tmp_path, [
        {'name': 'full', 'opsready.operations.db_backup': dict(
            engine='mariadb', database=maria_db.name, dest=str(dest), login_option_file=str(cnf))},
        {'name': 'with password too', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
            engine='mariadb', database=maria_db.name, dest=str(dest), login_option_file=str(cnf),
            login_password='not-used-1234')},
    ])
    assert result.rc == 0, result.stdout[-4000:]
    backup = result.result('full')
    manifest = backup['manifest']
    assert backup['changed'] is True and manifest['verification']['ok'] is True
    assert manifest['path'].endswith('.sql.zst') and manifest['position']['binlog_file'].startswith('mariadb-bin.')
    assert b'-- Dump completed' in zstd_bytes(manifest['path'])[-4096:]
    assert maria_restore_count(server, manifest['path'], maria_db.name + '_r') == '777'
    both = result.result('with password too')
    assert both['_event'] == 'runner_on_failed' and 'mutually exclusive' in both['msg']
    assert server.password not in everything_printed(result)
    assert stat.S_IMODE(os.stat(cnf).st_mode) == 0o600 and server.password in cnf.read_text()


def test_mariadb_unix_socket_without_host(maria_db, tmp_path):
    server = maria_db.server
    maria_seed(maria_db, 55)
    dest = tmp_path / 'backups'
    # The superuser authenticates by unix_socket (OS user) only: this backup cannot have gone over TCP.
    result = play(tmp_path, [
        {'name': 'full', 'opsready.operations.db_backup': dict(
            engine='mariadb', database=maria_db.name, dest=str(dest), login_unix_socket=str(server.socket),
            login_user=server.superuser)},
    ])
    assert result.rc == 0, result.stdout[-4000:]
    manifest = result.result('full')['manifest']
    assert manifest['verification']['ok'] is True
    assert manifest['server'] == '%s:%s' % (socket.gethostname(), server.socket)
    assert maria_restore_count(server, manifest['path'], maria_db.name + '_s') == '55'


# -- misconfigured option files: what the user is told ---------------------------------------------------

@pytest.mark.parametrize('engine', ['postgresql', 'mariadb'])
def test_missing_option_file_is_named_in_the_failure(engine, request, tmp_path):
    db = request.getfixturevalue('pg_db' if engine == 'postgresql' else 'maria_db')
    server = db.server
    missing = tmp_path / 'no-such-credentials.cnf'
    args = dict(engine=engine, database=db.name, dest=str(tmp_path / 'backups'), login_option_file=str(missing))
    if engine == 'postgresql':
        args.update(login_host=server.host, login_port=server.port, login_user=server.user)
    result = play(tmp_path, [{'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': args}])
    res = result.result('backup')
    assert res['_event'] == 'runner_on_failed'
    assert not (tmp_path / 'backups').exists() or not os.listdir(tmp_path / 'backups')
    assert str(missing) in res['msg'], res['msg']


def test_postgresql_wrong_password_in_pgpass_is_not_reported_as_unreachable_server(pg_db, tmp_path):
    server = pg_db.server
    entry = '%s:%d:*:%s:wrong-password-123\n' % (server.host, server.port, server.user)
    pgpass = secret_file(tmp_path / 'pgpass', entry)
    result = play(tmp_path, [{'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
        engine='postgresql', database=pg_db.name, dest=str(tmp_path / 'backups'), login_host=server.host,
        login_port=server.port, login_user=server.user, login_option_file=str(pgpass))}])
    res = result.result('backup')
    assert res['_event'] == 'runner_on_failed'
    assert 'password authentication failed' in res['msg']
    assert 'Check that the server is running' not in res['msg'] and 'Cannot connect' not in res['msg'], res['msg']


def test_postgresql_pgpass_without_a_matching_entry_is_a_refused_login(pg_db, tmp_path):
    """libpq's own refusal ("fe_sendauth: no password supplied", no FATAL from the server) when the .pgpass
    has no line for this server: reported as a login problem, not as a server that is down."""
    server = pg_db.server
    pgpass = secret_file(tmp_path / 'pgpass', 'elsewhere.example.com:5432:*:%s:irrelevant\n' % server.user)
    result = play(tmp_path, [{'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
        engine='postgresql', database=pg_db.name, dest=str(tmp_path / 'backups'), login_host=server.host,
        login_port=server.port, login_user=server.user, login_option_file=str(pgpass))}])
    res = result.result('backup')
    assert res['_event'] == 'runner_on_failed'
    assert 'refused the login' in res['msg'] and 'no password supplied' in res['msg'], res['msg']


def test_postgresql_missing_database_is_named_as_such(pg_db, tmp_path):
    server = pg_db.server
    result = play(tmp_path, [{'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
        engine='postgresql', database='no_such_db', dest=str(tmp_path / 'backups'), login_host=server.host,
        login_port=server.port, login_user=server.user, login_password='{{ pw }}')}], {'pw': server.password})
    res = result.result('backup')
    assert res['_event'] == 'runner_on_failed'
    assert 'no such database' in res['msg'] and 'no_such_db' in res['msg'], res['msg']
    assert 'refused the login' not in res['msg'] and 'Cannot connect' not in res['msg']
