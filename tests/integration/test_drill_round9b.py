"""Round 9b of the DR drill audit (SQLite, the embedded default; real ansible-playbook runs of playbooks/dr_drill.yml).

* The check for newer backups the catalog passed over saw only backup_info's listing (the newest 100 artifacts and
  the chain): a failed backup older than the newest 100 was left out of the report. The drill now passes every
  failed id of the set; the summaries it lacks are judged by the names' stamps.
The passed_over logic: tests/unit/plugins/module_utils/drill/test_drill_passed_over_round9b.py."""

from __future__ import annotations

import datetime
import json
import shutil
import time
from pathlib import Path

from tests.integration.test_drill_round9 import add_rows, backup, drill, report_of, shop  # noqa: F401  (fixture)
from tests.harness.playbook import run_playbook, write_playbook

STAMP = '%Y%m%dT%H%M%S%fZ'


def _clone(artifact: Path, seconds: int) -> Path:
    """A copy of a backup (artifact + manifest) ``seconds`` later, as the next run of the same failing job left it."""
    manifest = json.loads(Path(str(artifact) + '.manifest.json').read_text())
    stamp = artifact.name.split('-')[-1].split('.')[0]
    moment = datetime.datetime.strptime(stamp, STAMP) + datetime.timedelta(seconds=seconds)
    name = artifact.name.replace(stamp, moment.strftime(STAMP))
    shutil.copyfile(artifact, artifact.parent / name)
    manifest['artifact'] = manifest['id'] = name
    for key in ('started', 'finished', 'consistent_at', 'covers_from'):
        if manifest.get(key):
            value = datetime.datetime.fromisoformat(manifest[key].replace('Z', '+00:00'))
            manifest[key] = (value + datetime.timedelta(seconds=seconds)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    (artifact.parent / (name + '.manifest.json')).write_text(json.dumps(manifest))
    return artifact.parent / name


def test_a_failed_backup_older_than_the_newest_100_is_still_named(shop):  # noqa: F811
    """An older full restores; the next full failed verification, and so did the 100 runs after it (a job writing a
    corrupt copy every hour for four days). The drill failed, but its report named only the newest 100 failed
    backups: the first failed one - where the loss begins - was missing (backup_info listed the newest 100)."""
    older = backup(shop)
    time.sleep(1.1)
    add_rows(shop, 5)
    first_failed = backup(shop)
    data = first_failed.read_bytes()
    first_failed.write_bytes(data[:100] + bytes([data[100] ^ 0xff]) + data[101:])
    book = write_playbook(shop['tmp'], [{'name': 'verify', 'ignore_errors': True,
                                         'opsready.operations.backup_verify': {'path': str(shop['backups'])}}])
    run_playbook(book)
    assert json.loads(Path(str(first_failed) + '.manifest.json').read_text())['verification']['ok'] is False
    later = [_clone(first_failed, 3600 * i).name for i in range(1, 101)]
    result = drill(shop)
    out, report = report_of(result)
    db = report['databases'][0]
    assert db['backup']['id'] == older.name, db
    assert result.rc != 0 and not db['passed'], out
    named = [p['id'] for p in db['backup']['passed_over']]
    assert named[0] == later[-1] and first_failed.name in named and len(named) == 101, named[-3:]
