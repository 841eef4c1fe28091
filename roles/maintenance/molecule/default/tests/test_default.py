"""Verify the maintenance role on SQLite: old rows gone, recent and unrelated rows kept, file vacuumed,
statistics recorded, database intact (the idempotence step already proved a second run changes nothing)."""

DB = '/tmp/molecule-maintenance/app.db'
PY = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute(sys.argv[2]).fetchall())"


def sql(host, query):
    out = host.run('python3 -c "%s" %s "%s"' % (PY, DB, query))
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def test_old_rows_removed_and_others_kept(host):
    assert sql(host, 'SELECT count(*) FROM events') == '[(500,)]'
    assert sql(host, "SELECT count(*) FROM events WHERE body = 'new'") == '[(500,)]'
    assert sql(host, 'SELECT count(*) FROM keep') == '[(100,)]'


def test_vacuumed_analyzed_intact(host):
    assert sql(host, 'PRAGMA freelist_count') == '[(0,)]'
    assert "('events', 'events_ts', '500" in sql(host, 'SELECT * FROM sqlite_stat1')
    assert sql(host, 'PRAGMA integrity_check') == "[('ok',)]"
