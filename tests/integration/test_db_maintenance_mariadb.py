"""db_maintenance against a real MariaDB: batched clean-up, ANALYZE TABLE (innodb_table_stats.last_update moves),
OPTIMIZE TABLE above the fragmentation threshold only, check mode, idempotence."""

from __future__ import annotations

import time

from tests.harness.playbook import play  # (test_db_maintenance_quoted_names imports it from here)


def maint(db, **args) -> dict:
    server = db.server
    conn = {'login_host': server.host, 'login_port': server.port, 'login_user': server.user,
            'login_password': '{{ maria_password }}'}
    return {'name': 'maint', 'opsready.operations.db_maintenance': dict(conn, engine='mariadb', database=db.name,
                                                                        **args)}


def fp(db, table: str) -> tuple:
    row = db.sql('SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS(\'|\', id, created, body) ORDER BY id '
                 'SEPARATOR \',\')) FROM %s' % table)[0]
    return int(row[0]), row[1]


def last_update(db, table: str) -> str:
    rows = db.sql("SELECT last_update FROM mysql.innodb_table_stats WHERE database_name = '%s' AND table_name = '%s'"
                  % (db.name, table))
    return rows[0][0] if rows else ''


def test_cleanup_and_analyze_check_mode_then_idempotent(maria_db, tmp_path):
    db = maria_db
    ev = {'maria_password': db.server.password}
    db.sql("SET SESSION group_concat_max_len = 100000000;"
           "CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, created DATETIME NOT NULL, body VARCHAR(300)) "
           "ENGINE=InnoDB STATS_AUTO_RECALC=0;"
           "INSERT INTO events (created, body) SELECT NOW() - INTERVAL 31 DAY - INTERVAL seq MINUTE, REPEAT('x', 200) "
           "FROM seq_1_to_4000;"
           "INSERT INTO events (created, body) SELECT NOW() - INTERVAL 29 DAY + INTERVAL seq MINUTE, "
           "CONCAT('new', seq) "
           "FROM seq_1_to_1000;"
           "CREATE TABLE keep (id INT AUTO_INCREMENT PRIMARY KEY, created DATETIME, body TEXT) ENGINE=InnoDB "
           "STATS_AUTO_RECALC=0;"
           "INSERT INTO keep (created, body) SELECT NOW() - INTERVAL 400 DAY, MD5(seq) FROM seq_1_to_300;")
    keep = fp(db, 'keep')
    new_rows = db.sql("SELECT id, created, body FROM events WHERE body LIKE 'new%' ORDER BY id")
    rules = [{'table': 'events', 'column': 'created', 'older_than_days': 30, 'batch_size': 900}]
    stats_before = last_update(db, 'events')
    time.sleep(1.1)  # innodb_table_stats.last_update has one-second resolution

    r = play(tmp_path, [maint(db, tasks=['cleanup', 'analyze'], cleanup=rules)], ev, check=True, diff=True)
    assert r.rc == 0, r.stdout[-3000:]
    res = r.result('maint')
    assert res['changed'] is True and res['rows_to_remove'] == {'events': 4000}
    assert fp(db, 'events')[0] == 5000 and last_update(db, 'events') == stats_before
    assert db.server.password not in r.stdout

    r = play(tmp_path, [maint(db, tasks=['cleanup', 'analyze'], cleanup=rules)], ev)
    assert r.rc == 0, r.stdout[-3000:]
    res = r.result('maint')
    assert res['rows_removed'] == {'events': 4000} and res['cleanup'][0]['batches'] == 5  # 4 x 900 + 400
    assert db.sql("SELECT id, created, body FROM events ORDER BY id") == new_rows
    assert fp(db, 'keep') == keep
    analyzed = {a['object'] for a in res['actions'] if a['task'] == 'analyze' and a['status'] == 'done'}
    assert 'events' in analyzed
    assert last_update(db, 'events') > stats_before

    time.sleep(1.1)
    r = play(tmp_path, [maint(db, tasks=['cleanup', 'analyze'], cleanup=rules)], ev)
    res = r.result('maint')
    assert r.rc == 0 and res['changed'] is False, [a['reason'] for a in res['actions']]


def test_optimize_only_the_fragmented_table(maria_db, tmp_path):
    db = maria_db
    ev = {'maria_password': db.server.password}
    db.sql("CREATE TABLE big (id INT AUTO_INCREMENT PRIMARY KEY, created DATETIME, body VARCHAR(600)) ENGINE=InnoDB;"
           "INSERT INTO big (created, body) SELECT NOW(), REPEAT(MD5(seq), 16) FROM seq_1_to_60000;"
           "CREATE TABLE steady (id INT AUTO_INCREMENT PRIMARY KEY, created DATETIME, body VARCHAR(600)) ENGINE=InnoDB;"
           "INSERT INTO steady (created, body) SELECT NOW(), REPEAT(MD5(seq), 16) FROM seq_1_to_30000;"
           "DELETE FROM big WHERE id <= 54000; ANALYZE TABLE big, steady;")
    big, steady = fp(db, 'big'), fp(db, 'steady')
    info = db.sql("SELECT TABLE_NAME, DATA_LENGTH + INDEX_LENGTH + DATA_FREE FROM information_schema.TABLES "
                  "WHERE TABLE_SCHEMA = '%s'" % db.name)
    before = {r[0]: int(r[1]) for r in info}

    r = play(tmp_path, [maint(db, tasks=['optimize'], min_size_mb=1)], ev)
    assert r.rc == 0, r.stdout[-3000:]
    res = r.result('maint')
    assert [a['object'] for a in res['actions']] == ['big'], res
    assert res['actions'][0]['before']['fragmentation_percent'] > 20
    assert res['actions'][0]['status'] == 'done'
    info = db.sql("SELECT TABLE_NAME, DATA_LENGTH + INDEX_LENGTH + DATA_FREE FROM information_schema.TABLES "
                  "WHERE TABLE_SCHEMA = '%s'" % db.name)
    after = {r[0]: int(r[1]) for r in info}
    assert after['big'] < before['big'] / 3
    assert fp(db, 'big') == big and fp(db, 'steady') == steady

    r = play(tmp_path, [maint(db, tasks=['optimize'], min_size_mb=1)], ev)
    assert r.result('maint')['changed'] is False
