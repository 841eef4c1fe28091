"""Drill honesty, round 2, through real ansible-playbook runs of playbooks/dr_drill.yml (SQLite: the fastest)."""

from __future__ import annotations

import datetime
import sqlite3

from tests.integration.test_dr_drill_sqlite import backup, drill, report_of, shop  # noqa: F401  (shop: a fixture)


def test_the_rpo_is_measured_from_the_newest_data_in_the_restored_copy(shop):  # noqa: F811
    """The catalog said the copy reaches the backup's instant (seconds ago), but the newest order it holds was
    written 2 h before: a backup host's clock ahead, a manifest edited, a writer that stopped reaching this database.
    With freshness_query the RPO is measured from the data the copy holds, and the drill fails (without it, the
    drill PASSED with an RPO of a few seconds). What the query may answer: tests/unit/.../test_drill_honesty_round2."""
    two_hours_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    conn = sqlite3.connect(shop['db'])
    conn.executescript('CREATE TABLE events (id INTEGER PRIMARY KEY, created_at TEXT);')
    conn.execute('INSERT INTO events (created_at) VALUES (?)', (two_hours_ago.strftime('%Y-%m-%d %H:%M:%S'),))
    conn.commit()
    conn.close()
    backup(shop)
    result = drill(shop, rpo_seconds=600, freshness_query='SELECT max(created_at) FROM events')
    assert result.rc != 0
    out, report = report_of(result)
    db = report['databases'][0]
    assert db['rpo_verdict'] == 'fail' and 7100 < db['rpo_seconds'] < 7300, db
    assert db['rpo_claimed_seconds'] < 60 and db['rpo_flag']
    assert db['recovered']['source'].startswith('freshness_query')
    assert any('RPO 2 h 0 min exceeds the objective 10 min 0 s' in r for r in report['reasons']), report['reasons']
    assert not shop['scratch'].exists()
