"""Round 10: a MariaDB drill's freshness read from a TIMESTAMP column on a server whose time zone is not UTC.

MariaDB prints a TIMESTAMP in the session's time zone, without the zone: the drill read it as UTC, so on a server
east of UTC (global time_zone +05:00) the newest row looked 5 h younger than it was and an RPO breach passed."""

from __future__ import annotations

import datetime

from tests.harness.playbook import run_playbook, write_playbook


def _freshness(tmp_path, db, **extra):
    server = db.server
    book = write_playbook(tmp_path, [{'name': 'fresh', 'opsready.operations.drill_step': dict({
        'step': 'freshness', 'engine': 'mariadb', 'database': db.name,
        'query': 'SELECT max(created_at) FROM events',
        'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
        'login_password': server.password}, **extra)}])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-2000:]
    return result.result('fresh')


def test_a_timestamp_freshness_is_right_whatever_the_server_time_zone(tmp_path, maria_db):
    """The newest row was written 3 h ago (a TIMESTAMP column). The server's global time_zone is +05:00: the client
    session printed the time 5 h ahead and the drill read 2 h in the future. The drill's session now runs in UTC."""
    three_hours_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=3)
    maria_db.sql("CREATE TABLE events (id INT PRIMARY KEY, created_at TIMESTAMP NULL)")
    maria_db.sql("SET time_zone = '+00:00'; INSERT INTO events VALUES (1, '%s')"
                 % three_hours_ago.strftime('%Y-%m-%d %H:%M:%S'))
    maria_db.sql("SET GLOBAL time_zone = '+05:00'", superuser=True)
    try:
        out = _freshness(tmp_path, maria_db)
    finally:
        maria_db.sql("SET GLOBAL time_zone = 'SYSTEM'", superuser=True)
    newest = datetime.datetime.fromisoformat(out['details']['newest'].replace('Z', '+00:00'))
    assert abs((newest - three_hours_ago).total_seconds()) < 5, (out['details'], three_hours_ago)
