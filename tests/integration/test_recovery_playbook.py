"""playbooks/recovery.yml on localhost: a broken config, a rolled-forward release and a damaged database are put
back, services restarted, and the service answers its health URL afterwards (real files, a real HTTP service,
real SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.harness.playbook import VENV_PYTHON, run_playbook

SERVER = r'''
import http.server, pathlib, sys
release = pathlib.Path(__file__).resolve().parent.name
port, config = int(sys.argv[1]), pathlib.Path(sys.argv[2])

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        healthy = 'healthy = yes' in config.read_text() and release != 'v2'
        body = ('%s %s' % ('ok' if healthy else 'broken', release)).encode()
        self.send_response(200 if healthy else 500)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer(('127.0.0.1', port), Health).serve_forever()
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def probe(url: str) -> tuple:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_up(url: str) -> tuple:
    deadline = time.monotonic() + 20
    while True:
        try:
            return probe(url)
        except OSError:
            assert time.monotonic() < deadline, 'service did not come up at %s' % url
            time.sleep(0.1)


@pytest.fixture
def app(tmp_path):
    root = tmp_path / 'srv' / 'myapp'
    for release in ('v1', 'v2'):
        (root / 'releases' / release).mkdir(parents=True)
        (root / 'releases' / release / 'server.py').write_text(SERVER)
    (root / 'current').symlink_to('releases/v1')
    etc = tmp_path / 'etc' / 'myapp'
    etc.mkdir(parents=True)
    (etc / 'app.conf').write_text('healthy = yes\nworkers = 4\n')
    (etc / 'tls.crt').write_text('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
    port = free_port()
    pidfile = tmp_path / 'myapp.pid'
    restart = ('if [ -f {pid} ]; then kill $(cat {pid}) 2>/dev/null; sleep 0.3; fi; '
               'setsid {py} {root}/current/server.py {port} {etc}/app.conf >{log} 2>&1 < /dev/null & '
               'echo $! > {pid}').format(pid=pidfile, py=VENV_PYTHON, root=root, port=port, etc=etc,
                                         log=tmp_path / 'myapp.log')
    info = {'root': root, 'etc': etc, 'port': port, 'url': 'http://127.0.0.1:%d/health' % port,
            'restart': restart, 'pidfile': pidfile}
    yield info
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


def test_recovery_playbook_puts_back_config_release_and_database(app, postgres_server, tmp_path):
    # known-good state: backups of the configuration and of the database
    db = tmp_path / 'app.db'
    conn = sqlite3.connect(str(db))
    conn.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)')
    conn.executemany('INSERT INTO orders VALUES (?, ?)', [(i, 'item %d' % i) for i in range(50)])
    conn.commit()
    conn.close()
    backups = tmp_path / 'backups'
    setup = tmp_path / 'setup.yml'
    setup.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'config backup', 'opsready.operations.file_backup': {
            'paths': [str(app['etc'])], 'dest': str(backups / 'config'), 'name': 'myapp-config'}},
        {'name': 'db backup', 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(db), 'dest': str(backups / 'db')}}]}]))
    assert run_playbook(str(setup)).rc == 0

    # the incident: release v2 rolled forward, config broken, rows lost; the service runs broken
    (app['root'] / 'current').unlink()
    (app['root'] / 'current').symlink_to('releases/v2')
    (app['etc'] / 'app.conf').write_text('healthy = no\n')
    conn = sqlite3.connect(str(db))
    conn.execute('DELETE FROM orders WHERE id >= 10')
    conn.commit()
    conn.close()
    subprocess.run(['bash', '-c', app['restart']], check=True)
    assert wait_up(app['url'])[0] == 500

    extravars = {
        'recovery_databases': [{'engine': 'sqlite', 'src': str(backups / 'db'), 'database': str(db),
                                'replace': True}],
        'recovery_app': {'path': str(app['root'])},
        'recovery_file_restores': [{'src': str(backups / 'config'), 'name': 'myapp-config', 'dest': '/'}],
        'recovery_services': [
            {'name': 'myapp', 'restart_command': app['restart'], 'health_url': app['url'], 'health_body': 'ok v1'},
            {'name': 'database', 'restart_command': 'true', 'db': {
                'engine': 'postgresql', 'host': postgres_server.host, 'port': postgres_server.port,
                'user': postgres_server.user, 'password': postgres_server.password, 'database': 'postgres'}}],
        'recovery_health_delay': 1,
    }

    # check mode shows the plan and changes nothing
    plan = run_playbook('playbooks/recovery.yml', extravars=extravars, check=True, diff=True)
    assert plan.rc == 0, plan.stdout[-4000:]
    assert plan.result('Application release')['msg'].endswith('myapp: v2 -> v1')
    assert plan.result('Restore configuration and certificate archives')['results'][0]['restored'] == [
        str(app['etc'] / 'app.conf')]
    assert 'plan only' in plan.result('Databases restored')['results'][0]['msg']
    assert os.readlink(app['root'] / 'current') == 'releases/v2'
    assert 'healthy = no' in (app['etc'] / 'app.conf').read_text()
    assert sqlite3.connect(str(db)).execute('SELECT count(*) FROM orders').fetchone()[0] == 10

    # the recovery
    run = run_playbook('playbooks/recovery.yml', extravars=extravars)
    assert run.rc == 0, run.stdout[-4000:]
    assert os.readlink(app['root'] / 'current') == 'releases/v1'
    assert (app['etc'] / 'app.conf').read_text() == 'healthy = yes\nworkers = 4\n'
    assert sqlite3.connect(str(db)).execute('SELECT count(*) FROM orders').fetchone()[0] == 50
    assert probe(app['url']) == (200, 'ok v1')
    assert postgres_server.password not in run.stdout
    restored = run.result('Restore databases')
    assert restored['results'][0]['changed'] is True

    # run again: no further rollback, files unchanged
    again = run_playbook('playbooks/recovery.yml', extravars=dict(extravars, recovery_databases=[]))
    assert again.rc == 0, again.stdout[-4000:]
    assert os.readlink(app['root'] / 'current') == 'releases/v1'
    assert again.result('Switch the current link to the target release')['changed'] is False
    assert again.result('Restore configuration and certificate archives')['changed'] is False

    # a recovery that does not leave the service healthy fails loudly
    bad = run_playbook('playbooks/recovery.yml', extravars=dict(
        extravars, recovery_databases=[], recovery_app={'path': str(app['root']), 'release': 'v2'},
        recovery_health_retries=2))
    assert bad.rc != 0
    assert 'RECOVERY FAILED VERIFICATION' in bad.stdout and 'myapp' in bad.stdout
