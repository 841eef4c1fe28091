"""DR drills of PostgreSQL 15 and MariaDB through real ansible-playbook runs of playbooks/dr_drill.yml.

Against the harness's throw-away servers: backups with db_backup, restores with db_restore into a scratch
database on the same server, pg_amcheck / mariadb-check, smoke queries, RTO/RPO verdicts, clean-up.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook

SMOKE = [{'name': 'customers', 'sql': 'SELECT count(*) AS n FROM customers', 'expect': {'value_at_least': 1000}},
         {'name': 'paid orders', 'sql': 'SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY status',
          'expect': {'rows_at_least': 3, 'jmespath': "length([?status=='paid' && n > `100`]) == `1`"}}]

SEED = {
    'postgresql': ("CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE NOT NULL);"
                   "INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 2000) g;"
                   "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers(id), status text);"
                   "INSERT INTO orders (customer_id, status) SELECT g % 2000 + 1, (ARRAY['paid','open','shipped'])"
                   "[g % 3 + 1] FROM generate_series(1, 6000) g;"
                   "CREATE INDEX orders_status ON orders(status);"),
    'mariadb': ("CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(64) UNIQUE NOT NULL) ENGINE=InnoDB;"
                "INSERT INTO customers SELECT seq, CONCAT('c', seq, '@example.com') FROM seq_1_to_2000;"
                "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT, status VARCHAR(10),"
                " KEY (status), FOREIGN KEY (customer_id) REFERENCES customers(id)) ENGINE=InnoDB;"
                "INSERT INTO orders (customer_id, status) SELECT seq % 2000 + 1, ELT(seq % 3 + 1, 'paid', 'open',"
                " 'shipped') FROM seq_1_to_6000;"),
}
LEFTOVER_MARK = {'postgresql': "COMMENT ON DATABASE \"%s\" IS 'opsready dr_drill scratch copy of a drill that was cut'",
                 'mariadb': "ALTER DATABASE `%s` COMMENT 'opsready dr_drill scratch copy of a drill that was cut'"}
EXISTS = {'postgresql': "SELECT count(*) FROM pg_database WHERE datname = '%s'",
          'mariadb': "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '%s'"}


@pytest.fixture(params=['postgresql', 'mariadb'])
def engine_db(request):
    fixture = 'pg_db' if request.param == 'postgresql' else 'maria_db'
    db = request.getfixturevalue(fixture)
    db.sql(SEED[request.param])
    return request.param, db


def drill(engine, db, tmp_path, **overrides):
    server = db.server
    database = {'name': db.name, 'engine': engine, 'database': db.name, 'backup_dir': str(tmp_path / 'backups'),
                'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
                'password_var': 'drill_password', 'smoke_queries': SMOKE}
    extravars = {'dr_drill_report_dir': str(tmp_path / 'reports'), 'drill_password': server.password}
    for key in [k for k in overrides if k.startswith('dr_drill_')]:
        extravars[key] = overrides.pop(key)
    database.update(overrides)
    extravars['dr_drill_databases'] = [database]
    return run_playbook('playbooks/dr_drill.yml', extravars=extravars)


def report_of(result):
    out = result.result('Write the drill report')
    return out, json.loads(Path(out['paths']['json']).read_text())


def scratch_exists(engine, db):
    return db.server.sql(EXISTS[engine] % (db.name + '_drill'))[0][0] not in (0, '0')


def history(tmp_path):
    return (tmp_path / 'reports' / 'drills.jsonl').read_text().splitlines()


def test_passing_drill_then_rpo_breach(engine_db, tmp_path):
    engine, db = engine_db
    result = drill(engine, db, tmp_path, dr_drill_backup_first=True)
    assert result.rc == 0, result.stdout[-5000:]
    out, report = report_of(result)
    entry = report['databases'][0]
    steps = {s['name']: s for s in entry['steps']}
    assert report['verdict'] == 'PASSED' and all(s['ok'] for s in entry['steps'])
    tool = 'pg_amcheck --heapallindexed' if engine == 'postgresql' else 'mariadb-check --check'
    assert steps['integrity']['result'].startswith('%s: ok; against the source at backup time: ok' % tool)
    assert steps['smoke']['result'] == '2 smoke queries passed'
    assert entry['rto_verdict'] == 'pass' and entry['rpo_verdict'] == 'pass'
    assert entry['backup']['id'].startswith('%s-%s-full-' % (engine, db.name))
    assert entry['tool_versions'], 'tool versions missing from the report'
    assert not scratch_exists(engine, db), 'the scratch database was left behind'
    assert db.sql('SELECT count(*) FROM orders')[0][0] in (6000, '6000'), 'the source database changed'
    assert len(history(tmp_path)) == 1

    time.sleep(1.5)
    stale = drill(engine, db, tmp_path, rpo_seconds=1)
    assert stale.rc != 0
    dummy, report = report_of(stale)
    entry = report['databases'][0]
    assert entry['rpo_verdict'] == 'fail' and entry['rto_verdict'] == 'pass'
    assert any('exceeds the objective 1.00 s' in r for r in report['reasons'])
    assert not scratch_exists(engine, db)
    assert len(history(tmp_path)) == 2


def test_corrupted_backup_fails_verification_and_drops_leftover_scratch(engine_db, tmp_path):
    engine, db = engine_db
    first = drill(engine, db, tmp_path, dr_drill_backup_first=True)
    assert first.rc == 0, first.stdout[-5000:]
    dummy, report = report_of(first)
    artifact = Path(report['databases'][0]['backup']['path'])
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    # a scratch database left by an interrupted earlier drill (it carries the drill's mark, the comment the drill
    # puts on it right after the restore): the clean-up must drop it. An unmarked one is someone's database and
    # is refused (tests/integration/test_drill_scratch_guard.py).
    db.server.create_database(db.name + '_drill')
    db.server.sql(LEFTOVER_MARK[engine] % (db.name + '_drill'))
    assert scratch_exists(engine, db)
    result = drill(engine, db, tmp_path)
    assert result.rc != 0
    out, report = report_of(result)
    steps = {s['name']: s for s in report['databases'][0]['steps']}
    assert not steps['verify']['ok'] and 'restore' not in steps
    assert artifact.name in steps['verify']['error']
    assert steps['cleanup']['ok'] and steps['cleanup']['result'] == 'removed'
    assert not scratch_exists(engine, db)
    assert report['databases'][0]['rto_verdict'] == 'not_measured' and not out['passed']
    assert len(history(tmp_path)) == 2
