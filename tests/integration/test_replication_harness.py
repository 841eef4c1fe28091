"""The replication harness itself: clusters come up streaming, and every break/restore helper does what it says."""

from __future__ import annotations

pytest_plugins = ['tests.integration.conftest_replication']


def test_pg_cluster_streams_breaks_and_restores(pg_cluster):
    c = pg_cluster
    rows = c.primary.sql("SELECT application_name, state FROM pg_stat_replication ORDER BY 1", superuser=True)
    assert rows == [('standby1', 'streaming'), ('standby2', 'streaming')]
    slots = c.primary.sql("SELECT slot_name, active FROM pg_replication_slots ORDER BY 1", superuser=True)
    assert slots == [('standby1', 't'), ('standby2', 't')]
    c.generate_wal(256 << 10)
    c.wait_replayed()
    assert c.lag_bytes(c.standbys[0]) <= 0 or c.lag_bytes(c.standbys[0]) < 8192
    assert c.standbys[1].sql("SELECT count(*) > 0 FROM harness_wal") == [('t',)]
    sb = c.standbys[0]
    c.pause_replay(sb)
    c.generate_wal(512 << 10)
    assert c.lag_bytes(sb) > 0
    c.resume_replay(sb)
    c.wait_replayed([sb])
    c.stop_walreceiver(sb)
    assert c.walreceiver_pid(sb) is None and c.in_recovery(sb)
    c.restore_walreceiver(sb)
    c.break_conninfo(sb, 'password')
    c.restore_walreceiver(sb)
    assert c.walreceiver_pid(sb) is not None
    assert [n.name for n in c.current_primaries()] == ['primary']


def test_pg_promote_after_kill(pg_cluster_factory):
    c = pg_cluster_factory(standbys=1)
    c.primary.sql("CREATE TABLE k (id int); INSERT INTO k VALUES (1)", superuser=True)
    c.wait_replayed()
    c.primary.kill()
    assert c.promote(c.standbys[0]) == 2
    assert [n.name for n in c.current_primaries()] == ['standby1']
    c.standbys[0].sql("INSERT INTO k VALUES (2)", superuser=True)


def test_maria_cluster_gtid_and_broken_io_thread(maria_cluster):
    m = maria_cluster
    r = m.replicas[0]
    m.primary.sql("CREATE DATABASE IF NOT EXISTS h; CREATE TABLE h.t (id int primary key); INSERT INTO h.t VALUES (1)")
    m.wait_replayed()
    pos = m.gtid_positions(r)
    assert pos['gtid_slave_pos'] == m.gtid_positions(m.primary)['gtid_binlog_pos'] != ''
    assert r.sql("SELECT id FROM h.t") == [('1',)]
    st = m.slave_status(r)
    assert st['Using_Gtid'] == 'Slave_Pos' and st['Slave_IO_Running'] == 'Yes'
    m.break_io_thread(r, 'password')
    st = m.slave_status(r)
    assert st['Last_IO_Errno'] == '1045' and 'Access denied' in st['Last_IO_Error']
    m.restore_io_thread(r)
    m.primary.sql("INSERT INTO h.t VALUES (2)")
    m.wait_replayed()
    assert r.sql("SELECT count(*) FROM h.t") == [('2',)]
