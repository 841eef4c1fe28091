"""dr_drill_min_interval reuses a recent pass only of the same backup set and objectives, and a drill without smoke
queries says it passed on integrity alone (drill red team, round 3; real ansible-playbook runs against SQLite)."""

from __future__ import annotations

import shutil

from tests.harness.playbook import run_playbook
from tests.integration.test_drill_honesty import SMOKE, backup, drill, report_of, shop  # noqa: F401  # pylint: disable=unused-import


def _again(shop, **overrides):  # noqa: F811
    database = {'name': 'shop', 'engine': 'sqlite', 'database': str(shop['db']), 'backup_dir': str(shop['backups']),
                'scratch': str(shop['scratch']), 'smoke_queries': SMOKE}
    database.update(overrides)
    return run_playbook('playbooks/dr_drill.yml', extravars={
        'dr_drill_report_dir': str(shop['reports']), 'dr_drill_min_interval': 3600, 'dr_drill_databases': [database]})


def test_a_recent_pass_stands_in_only_for_the_same_backup_set_and_objectives(shop):  # noqa: F811
    backup(shop)
    first = drill(shop)
    assert first.rc == 0, first.stdout[-3000:]
    # (the same database, set and objectives within the interval are skipped: test_drill_honesty.py)
    # another RTO objective than the pass was judged by: drilled again
    stricter = _again(shop, rto_seconds=1800)
    assert stricter.rc == 0 and 'not drilling again' not in stricter.stdout, stricter.stdout[-3000:]
    out, report = report_of(stricter)
    assert report['databases'][0]['objectives']['rto_seconds'] == 1800.0
    assert len(list(shop['reports'].glob('drill-*.json'))) == 2
    # another backup_dir (the pass proved the old one), the same objectives: drilled again, from that directory
    other = shop['tmp'] / 'other-backups'
    shutil.copytree(shop['backups'], other)
    moved = _again(shop, rto_seconds=1800, backup_dir=str(other))
    assert moved.rc == 0 and 'not drilling again' not in moved.stdout, moved.stdout[-3000:]
    out, report = report_of(moved)
    assert report['databases'][0]['drilled']['backup_dir'] == str(other)


def test_a_drill_without_smoke_queries_warns_that_it_passed_on_integrity_alone(shop):  # noqa: F811
    backup(shop)
    result = drill(shop, smoke_queries=[])
    assert result.rc == 0, result.stdout[-3000:]
    out, report = report_of(result)
    db = report['databases'][0]
    assert db['passed'] and any('integrity check alone' in w for w in db['warnings']), db['warnings']
