"""Point-in-time recovery at instants chosen inside the window backup_info reports, both ends included.

For each engine: a full (PostgreSQL: base backup; MariaDB: dump), rows inserted one transaction at a
time with a pause between, their commit times recorded, logs shipped, the window read from
``backup_info``. Then ``db_restore`` to its two ends, to exact commit instants (and just before them),
to the span between the last commit and ``recoverable_until`` (issue 15, item 5), and to random
instants between; the rows restored must be exactly those whose commit time the instant covers.
An instant just outside the window is refused before any work, with the window in the message.

PostgreSQL runs with ``track_commit_timestamp=on`` so a row's commit time is the one its WAL commit
record carries (``pg_xact_commit_timestamp(xmin)``), not a clock read near it.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import os
import random
import time
from pathlib import Path

import pytest

from tests.harness.playbook import conn as login, play
from tests.harness.wal_catalog import wal_catalog

US = datetime.timedelta(microseconds=1)
UTC = datetime.timezone.utc


def parse_z(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace('Z', '+00:00')).astimezone(UTC)


def iso(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def pick_instants(start: datetime.datetime, until: datetime.datetime, commits: list, seed: int) -> dict:
    """Named instants: both ends, an exact commit and the microsecond before it (the last commit and
    one in the middle), the middle of the span after the last commit, and two random ones."""
    rng = random.Random(seed)
    last = commits[-1][1]
    middle = commits[len(commits) // 2][1]
    span = (until - start).total_seconds()
    chosen = {
        'window start': start,
        'recoverable_until': until,
        'last commit': last,
        'just before last commit': last - US,
        'middle commit': middle,
        'just before middle commit': middle - US,
        'between last commit and recoverable_until': last + (until - last) / 2,
    }
    for i in range(2):
        chosen['random %d' % i] = start + datetime.timedelta(seconds=rng.uniform(0, span))
    return {name: moment for name, moment in chosen.items() if start <= moment <= until}


# -- PostgreSQL ---------------------------------------------------------------------------------------

@pytest.fixture
def wal_dest():
    """A backup directory the postgres service user can write, the archive helper it runs, a scratch directory."""
    with wal_catalog('opsready-pitrwin-', scratch=True) as catalog:
        yield Path(catalog.dest), catalog.helper, Path(catalog.scratch)


COMMIT_TIME = ("SELECT id, to_char(pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC', "
               "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM events ORDER BY id")


def pg_history(server, rows: int) -> list:
    """Insert ``rows`` rows, one transaction each with a pause between; (id, commit time) of each."""
    for _row in range(rows):
        server.sql('INSERT INTO events (label) VALUES (md5(random()::text))', database='app')
        time.sleep(0.3)
    return [(int(i), parse_z(t)) for i, t in server.sql(COMMIT_TIME, database='app')]


def test_postgresql_every_instant_of_the_window_restores(postgres_factory, wal_dest, tmp_path):
    dest, helper, scratch = wal_dest
    server = postgres_factory(archive_command='/usr/bin/python3 %s %s %%p %%f --compression gzip' % (helper, dest),
                              extra_conf={'track_commit_timestamp': True})
    server.create_database('app')
    server.sql('CREATE TABLE events (id serial PRIMARY KEY, label text NOT NULL)', database='app')
    server.sql("INSERT INTO events (label) VALUES ('before base')", database='app')
    extravars = {'pw': server.password}
    conn = login(server, 'pw')
    run = play(tmp_path, [{'name': 'base', 'opsready.operations.db_backup': dict(
        conn, engine='postgresql', kind='base', dest=str(dest), owner='postgres')}], extravars)
    assert run.rc == 0, run.stdout[-3000:]
    commits = pg_history(server, 5)
    time.sleep(0.5)  # idle time before the segment switch: recoverable_until lies after the last commit
    run = play(tmp_path, [
        {'name': 'wal', 'opsready.operations.db_backup': dict(conn, engine='postgresql', kind='wal',
                                                              dest=str(dest), owner='postgres')},
        {'name': 'info', 'opsready.operations.backup_info': {'path': str(dest), 'database': '@cluster'}}],
        extravars)
    assert run.rc == 0, run.stdout[-3000:]
    info = run.result('info')
    start, until = parse_z(info['window']['from']), parse_z(info['window']['until'])
    assert parse_z(info['recoverable_until']) == until
    after_base = [c for c in commits if c[1] > start]
    assert len(after_base) == 5 and until > commits[-1][1], (info['window'], commits)
    instants = pick_instants(start, until, after_base, seed=int(start.timestamp()))
    print('window %s .. %s; commits %s; instants %s' % (iso(start), iso(until), [(i, iso(t)) for i, t in commits],
                                                        {k: iso(v) for k, v in instants.items()}))

    psql = [server.bin('psql'), '-X', '-A', '-t', '-h', '127.0.0.1', '-U', server.user, '-d', 'app',
            '-c', 'SELECT coalesce(string_agg(id::text, \',\' ORDER BY id), \'\') FROM events']
    tasks = []
    for n, (name, moment) in enumerate(instants.items()):
        restore = dict(conn, engine='postgresql', src=str(dest), datadir=str(scratch / ('d%d' % n)))
        tasks += [
            {'name': 'restore %s' % name, 'ignore_errors': True,
             'opsready.operations.db_restore': dict(restore, stop_at=iso(moment))},
            {'name': 'rows %s' % name, 'ignore_errors': True, 'ansible.builtin.command': {'argv': psql + [
                '-p', '{{ (restored.target | default({})).port | default(0) }}']},
             'environment': {'PGPASSWORD': '{{ pw }}'}, 'changed_when': False},
            {'name': 'drop %s' % name, 'opsready.operations.db_restore': dict(restore, state='absent')},
        ]
        tasks[-3]['register'] = 'restored'
    run = play(tmp_path, tasks, extravars)
    assert run.rc == 0, run.stdout[-4000:]
    failures = []
    for name, moment in instants.items():
        expected = [i for i, t in commits if t <= moment]
        res = run.result('restore %s' % name)
        if res['_event'] != 'runner_on_ok':
            failures.append('%s (%s): restore failed: %s' % (name, iso(moment), res.get('msg', '')[:600]))
            continue
        got = [int(i) for i in run.result('rows %s' % name)['stdout'].strip().split(',') if i]
        if got != expected:
            failures.append('%s (%s): rows %s, expected %s' % (name, iso(moment), got, expected))
        # point_reached is the last transaction replayed; past the last commit, the end of the archive.
        replayed = [t for i, t in after_base if t <= moment]
        if replayed and res['point_reached'] != iso(replayed[-1]):
            failures.append('%s: point_reached %s, last commit covered %s'
                            % (name, res['point_reached'], iso(replayed[-1])))
        past = moment >= commits[-1][1]
        if res['stop_at_after_last_transaction'] is not past or res['recovery_target'] != (
                'end_of_archive' if past else 'time'):
            failures.append('%s: recovery_target %s, stop_at_after_last_transaction %s' % (
                name, res['recovery_target'], res['stop_at_after_last_transaction']))
    assert not failures, '\n'.join(failures)

    # Just outside the window: refused before anything is extracted, the message states the window.
    outside = {'before': start - US, 'after': until + US}
    run = play(tmp_path, [
        {'name': 'outside %s' % name, 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            conn, engine='postgresql', src=str(dest), datadir=str(scratch / ('out-%s' % name)), stop_at=iso(moment))}
        for name, moment in outside.items()], extravars)
    for name in outside:
        res = run.result('outside %s' % name)
        assert res['_event'] == 'runner_on_failed', res
        assert info['window']['from'] in res['msg'] and info['window']['until'] in res['msg'], res['msg']
    assert sorted(os.listdir(scratch)) == [], os.listdir(scratch)


def test_postgresql_failed_recovery_leads_with_the_fatal_line(postgres_factory, wal_dest, tmp_path):
    """Issue 15, item 8: the message starts with the server's FATAL line and the fix, the log tail after."""
    dest, helper, scratch = wal_dest
    server = postgres_factory(archive_command='/usr/bin/python3 %s %s %%p %%f --compression gzip' % (helper, dest))
    server.create_database('app')
    extravars = {'pw': server.password}
    conn = login(server, 'pw')
    run = play(tmp_path, [
        {'name': 'base', 'opsready.operations.db_backup': dict(conn, engine='postgresql', kind='base', dest=str(dest),
                                                               owner='postgres')},
        {'name': 'wal', 'opsready.operations.db_backup': dict(conn, engine='postgresql', kind='wal', dest=str(dest),
                                                              owner='postgres')}],
        extravars)
    assert run.rc == 0, run.stdout[-3000:]
    datadir = scratch / 'data'
    # The port of the running source server: the recovered server cannot listen there.
    run = play(tmp_path, [{'name': 'restore', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
        conn, engine='postgresql', src=str(dest), datadir=str(datadir), port=server.port)}], extravars)
    res = run.result('restore')
    assert res['_event'] == 'runner_on_failed', res
    msg = res['msg']
    assert msg.startswith('FATAL: could not create any TCP/IP sockets'), msg
    fix = 'Fix: port %d is taken: give another port, or leave port unset so a free one is chosen.' % server.port
    assert fix in msg and msg.index(fix) < msg.index('Server log '), msg
    assert 'failed and was cleaned up (%s untouched)' % datadir in msg
    assert res['fatal'] == 'FATAL: could not create any TCP/IP sockets' and res['log_tail'], res
    assert res['log'] == str(scratch / 'data.run' / 'postgresql.log') and os.path.exists(res['log'])
    assert sorted(os.listdir(scratch)) == ['data.run'], os.listdir(scratch)  # staging and WAL copies removed


# -- MariaDB ------------------------------------------------------------------------------------------

def whole_second(moment: datetime.datetime) -> datetime.datetime:
    return moment.replace(microsecond=0)


def test_mariadb_every_instant_of_the_window_restores(maria_db, tmp_path):
    """Binary log events carry whole seconds (the statement's start, the second of its NOW(6)), and the
    restore replays every event before the second of stop_at (engines/mysql/restore.py): the state reached is the
    one at that second, and ``point_reached`` says so."""
    server = maria_db.server
    maria_db.sql('CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL) ENGINE=InnoDB;'
                 'INSERT INTO events (at) VALUES (UTC_TIMESTAMP(6))')
    time.sleep(1.1)  # no commit in the second the dump starts: the dump holds exactly the rows before it
    dest = tmp_path / 'backups'
    backup = dict(login(server, 'pw'), engine='mariadb', database=maria_db.name, dest=str(dest))
    extravars = {'pw': server.password}
    run = play(tmp_path, [{'name': 'full', 'opsready.operations.db_backup': backup}], extravars)
    assert run.rc == 0, run.stdout[-3000:]
    for _row in range(6):
        maria_db.sql('INSERT INTO events (at) VALUES (UTC_TIMESTAMP(6))')
        time.sleep(0.4)
    time.sleep(1.1)
    run = play(tmp_path, [
        {'name': 'logs', 'opsready.operations.db_backup': dict(backup, kind='log')},
        {'name': 'info', 'opsready.operations.backup_info': {'path': str(dest), 'engine': 'mariadb',
                                                             'database': maria_db.name}}], extravars)
    assert run.rc == 0, run.stdout[-3000:]
    commits = [(int(i), parse_z(t.replace(' ', 'T') + 'Z'))
               for i, t in maria_db.sql('SELECT id, at FROM events ORDER BY id')]
    info = run.result('info')
    start, until = parse_z(info['window']['from']), parse_z(info['window']['until'])
    assert parse_z(info['recoverable_until']) == until
    in_dump = [c for c in commits if c[1] < start]
    after = [c for c in commits if c[1] >= start]
    assert len(in_dump) == 1 and len(after) == 6 and until >= whole_second(after[-1][1]), (info['window'], commits)
    instants = pick_instants(start, until, after, seed=int(start.timestamp()))
    print('window %s .. %s; commits %s; instants %s' % (iso(start), iso(until), [(i, iso(t)) for i, t in commits],
                                                        {k: iso(v) for k, v in instants.items()}))
    targets = {name: '%s_w%d' % (maria_db.name, n) for n, name in enumerate(instants)}
    restore = dict(login(server, 'pw'), engine='mariadb', src=str(dest), source_database=maria_db.name)
    try:
        run = play(tmp_path, [{'name': 'restore %s' % name, 'ignore_errors': True,
                               'opsready.operations.db_restore': dict(restore, database=targets[name],
                                                                      stop_at=iso(moment))}
                              for name, moment in instants.items()], extravars)
        failures = []
        for name, moment in instants.items():
            reached = whole_second(moment)
            expected = [c[0] for c in in_dump] + [i for i, t in after if whole_second(t) < reached]
            res = run.result('restore %s' % name)
            if res['_event'] != 'runner_on_ok':
                failures.append('%s (%s): restore failed: %s' % (name, iso(moment), res.get('msg', '')[:600]))
                continue
            got = [int(r[0]) for r in server.sql('SELECT id FROM events ORDER BY id', database=targets[name])]
            if got != expected:
                failures.append('%s (%s): rows %s, expected %s' % (name, iso(moment), got, expected))
            if res['point_reached'] != iso(reached):
                failures.append('%s: point_reached %s, expected %s' % (name, res['point_reached'], iso(reached)))
        assert not failures, '\n'.join(failures)

        outside = {'before': start - US, 'after': until + US}
        run = play(tmp_path, [{'name': 'outside %s' % name, 'ignore_errors': True,
                               'opsready.operations.db_restore': dict(restore, database=maria_db.name + '_out',
                                                                      stop_at=iso(moment))}
                              for name, moment in outside.items()], extravars)
        for name in outside:
            res = run.result('outside %s' % name)
            assert res['_event'] == 'runner_on_failed', res
            assert info['window']['from'] in res['msg'] and info['window']['until'] in res['msg'], res['msg']
        assert not server.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s"
                              % ("'%s\\_out%%'" % maria_db.name))
    finally:
        for name in targets.values():
            server.drop_database(name)


def test_postgresql_damaged_segment_never_cuts_a_restore_short(postgres_factory, wal_dest, tmp_path):
    """A WAL segment archived damaged (its checksums match its manifest, its content is zeros) ends recovery
    early. Without a time target PostgreSQL then promotes there without a word, and a stop_at past the last
    commit now resumes without one: both must be refused naming the segment, never restore less."""
    dest, helper, scratch = wal_dest
    server = postgres_factory(archive_command='/usr/bin/python3 %s %s %%p %%f --compression gzip' % (helper, dest))
    server.create_database('app')
    server.sql('CREATE TABLE events (id serial PRIMARY KEY)', database='app')
    extravars = {'pw': server.password}
    conn = login(server, 'pw')
    tasks = [{'name': 'base', 'opsready.operations.db_backup': dict(conn, engine='postgresql', kind='base',
                                                                    dest=str(dest), owner='postgres')}]
    run = play(tmp_path, tasks, extravars)
    assert run.rc == 0, run.stdout[-3000:]
    for _segment in range(3):
        server.sql('INSERT INTO events DEFAULT VALUES', database='app')
        run = play(tmp_path, [{'name': 'wal', 'opsready.operations.db_backup': dict(
            conn, engine='postgresql', kind='wal', dest=str(dest), owner='postgres')}], extravars)
        assert run.rc == 0, run.stdout[-3000:]
    manifests = sorted((json.loads(p.read_text()) for p in dest.glob('*-wal-*.manifest.json')),
                       key=lambda m: m['position']['start'])
    assert len(manifests) >= 3
    damaged = manifests[-2]
    path = dest / damaged['artifact']
    plain = bytes(damaged['position']['wal_segment_size'])
    path.write_bytes(gzip.compress(plain))
    stored = path.read_bytes()
    damaged.update(size=len(stored), sha256=hashlib.sha256(stored).hexdigest(),
                   plain_sha256=hashlib.sha256(plain).hexdigest())
    (dest / (damaged['artifact'] + '.manifest.json')).write_text(json.dumps(damaged))
    info = play(tmp_path, [{'name': 'info', 'opsready.operations.backup_info': {
        'path': str(dest), 'database': '@cluster'}}], extravars).result('info')
    restore = dict(conn, engine='postgresql', src=str(dest))
    run = play(tmp_path, [
        {'name': 'latest', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            restore, datadir=str(scratch / 'latest'))},
        {'name': 'until', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            restore, datadir=str(scratch / 'until'), stop_at=info['recoverable_until'])},
        {'name': 'drop', 'opsready.operations.db_restore': dict(restore, datadir=str(scratch / 'latest'),
                                                                state='absent')},
        {'name': 'drop until', 'opsready.operations.db_restore': dict(restore, datadir=str(scratch / 'until'),
                                                                      state='absent')}], extravars)
    for name in ('latest', 'until'):
        res = run.result(name)
        assert res['_event'] == 'runner_on_failed', (name, res.get('point_reached'), res.get('msg'))
        expected = 'in WAL %s, before the last archived segment %s' % (
            damaged['position']['wal_file'], manifests[-1]['position']['wal_file'])
        assert expected in res['msg'], res['msg']
        assert res['damaged'] == damaged['position']['wal_file']
    assert [p for p in os.listdir(scratch) if not p.endswith('.run')] == []


def test_postgresql_source_setting_raised_after_the_base_backup(postgres_factory, wal_dest, tmp_path):
    """max_connections raised on the source after the base backup: PostgreSQL pauses the recovery of a copy
    whose postgresql.conf has less (before: db_restore waited its whole timeout, then failed). The scratch
    copy gets the source's value and the recovery completes."""
    dest, helper, scratch = wal_dest
    server = postgres_factory(archive_command='/usr/bin/python3 %s %s %%p %%f --compression gzip' % (helper, dest))
    server.create_database('app')
    server.sql('CREATE TABLE events (id serial PRIMARY KEY)', database='app')
    extravars = {'pw': server.password}
    conn = login(server, 'pw')
    run = play(tmp_path, [{'name': 'base', 'opsready.operations.db_backup': dict(
        conn, engine='postgresql', kind='base', dest=str(dest), owner='postgres')}], extravars)
    assert run.rc == 0, run.stdout[-3000:]
    before = int(server.sql('SHOW max_connections')[0][0])
    server.sql('ALTER SYSTEM SET max_connections = %d' % (before + 20), superuser=True)
    server.stop()
    server.start()
    server.sql('INSERT INTO events DEFAULT VALUES', database='app')
    restore = dict(conn, engine='postgresql', src=str(dest), datadir=str(scratch / 'data'))
    started = time.monotonic()
    run = play(tmp_path, [
        {'name': 'wal', 'opsready.operations.db_backup': dict(conn, engine='postgresql', kind='wal', dest=str(dest),
                                                              owner='postgres')},
        {'name': 'restore', 'opsready.operations.db_restore': restore, 'register': 'restored'},
        {'name': 'rows', 'ansible.builtin.command': {'argv': [
            server.bin('psql'), '-X', '-A', '-t', '-h', '127.0.0.1', '-U', server.user, '-d', 'app', '-p',
            '{{ restored.target.port }}', '-c', 'SELECT count(*) FROM events']},
         'environment': {'PGPASSWORD': '{{ pw }}'}, 'changed_when': False},
        {'name': 'drop', 'opsready.operations.db_restore': dict(restore, state='absent')}],
        extravars, timeout=300)
    assert run.rc == 0, run.stdout[-4000:]
    res = run.result('restore')
    assert res['raised_settings'] == {'max_connections': before + 20}, res
    assert run.result('rows')['stdout'].strip() == '1'
    assert time.monotonic() - started < 120
