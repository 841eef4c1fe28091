"""Backup freshness: the Prometheus textfile parses with prometheus_client and says what the catalog says;
the health_check ``backup`` check goes ok -> warning -> critical as manifests age."""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import write_manifest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, stamp  # noqa: E402
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402
from tests.harness.promtool import check_textfile  # noqa: E402


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def artifact(directory: Path, database: str, kind: str, at: datetime.datetime, position=None, verified=True,
             engine='postgresql', seconds=42):
    path = str(directory / ('%s-%s-%s.bin.zst' % (database, kind, stamp(at))))
    with ArtifactWriter(path) as writer:
        writer.write(os.urandom(3000))
        stored = writer.commit()
    data = {'engine': engine, 'kind': kind, 'database': database,
            'started': isoformat(at - datetime.timedelta(seconds=seconds)), 'finished': isoformat(at),
            'size': stored['size'], 'sha256': stored['sha256'], 'compression': 'zstd', 'position': position or {}}
    if verified is not None:
        data['verification'] = {'ok': verified, 'checks': {}, 'verified_at': isoformat(at)}
    write_manifest(path, data)
    return path


def catalog(directory: Path, full_age: datetime.timedelta, log_age: datetime.timedelta):
    """shop (PostgreSQL): a verified full, then WAL every minute until ``log_age`` ago."""
    directory.mkdir(parents=True, exist_ok=True)
    full_at = now() - full_age
    artifact(directory, 'shop', 'full', full_at, {'log_start': 10})
    position = 10
    at = full_at
    while at < now() - log_age - datetime.timedelta(minutes=1):
        at += datetime.timedelta(minutes=1)
        artifact(directory, 'shop', 'wal', at, {'start': position, 'end': position + 1}, verified=None)
        position += 1
    if at < now() - log_age:
        artifact(directory, 'shop', 'wal', now() - log_age, {'start': position, 'end': position + 1}, verified=None)


def health(tmp_path, backup_dir, **check):
    spec = dict({'type': 'backup', 'name': 'backups', 'backup_dir': str(backup_dir)}, **check)
    book = write_playbook(tmp_path, [{'name': 'health', 'opsready.operations.health_check': {
        'checks': [spec], 'metrics': [], 'fail_on': 'never'}}])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-3000:]
    return result.result('health')


@pytest.mark.parametrize('full_hours, log_minutes, verdict, conditions', [
    (2, 1, 'ok', []),
    (2, 4.5, 'warning', ['warning:recoverable']),
    (2, 12, 'critical', ['critical:recoverable']),
    (22, 1, 'warning', ['warning:verified full']),
    (30, 1, 'critical', ['critical:verified full']),
])
def test_backup_check_through_ok_warning_critical(tmp_path, full_hours, log_minutes, verdict, conditions):
    backups = tmp_path / 'backups'
    catalog(backups, datetime.timedelta(hours=full_hours), datetime.timedelta(minutes=log_minutes))
    res = health(tmp_path, backups, rpo_minutes=5, full_max_age_hours=24)
    assert res['verdict'] == verdict, res['findings']
    got = sorted('%s:%s' % (f['severity'], 'recoverable' if 'recoverable' in f['message'] else 'verified full')
                 for f in res['findings'])
    assert got == sorted(conditions), res['findings']
    for item in res['findings']:
        # The WAL stopped arriving as long ago as the recoverable point: a stopped archiver (issue 18).
        stopped = 'recoverable' in item['message']
        assert item['database'] == 'shop' and item['condition'] == ('archive_stale' if stopped else 'backup_stale')
        assert ('is archiving stopped?' in item['message']) is stopped


def test_unverified_or_failed_full_does_not_count_and_missing_backups_are_critical(tmp_path):
    backups = tmp_path / 'backups'
    backups.mkdir()
    artifact(backups, 'crm', 'full', now() - datetime.timedelta(hours=30), engine='sqlite')
    artifact(backups, 'crm', 'full', now() - datetime.timedelta(hours=1), engine='sqlite', verified=False)
    res = health(tmp_path, backups, full_max_age_hours=24)
    assert res['verdict'] == 'critical'
    assert [f['database'] for f in res['findings']] == ['crm']
    assert re.search(r'30\.[0-9] h old', res['findings'][0]['message']), 'the failed newer full must not count'
    empty = tmp_path / 'empty'
    empty.mkdir()
    res = health(tmp_path, empty)
    assert res['verdict'] == 'critical' and res['findings'][0]['condition'] == 'backup_missing'
    # a log chain with a gap stops the recoverable point at the gap
    gap = tmp_path / 'gap'
    gap.mkdir()
    artifact(gap, 'shop', 'full', now() - datetime.timedelta(hours=1), {'log_start': 1})
    artifact(gap, 'shop', 'wal', now() - datetime.timedelta(minutes=50), {'start': 1, 'end': 2}, verified=None)
    artifact(gap, 'shop', 'wal', now() - datetime.timedelta(minutes=1), {'start': 3, 'end': 4}, verified=None)
    res = health(tmp_path, gap, rpo_minutes=5)
    assert res['verdict'] == 'critical', res['findings']
    age = float(re.search(r'recoverable point .* is ([0-9.]+) min old', res['findings'][0]['message']).group(1))
    assert 50 <= age < 58, 'the point must stop at the gap (50 min ago), not at the newest log (1 min ago)'


def parse(path: Path):
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.type == 'gauge' and family.documentation
        for sample in family.samples:
            samples[(sample.name, sample.labels['engine'], sample.labels['database'])] = sample.value
    return samples


def test_textfile_after_a_real_encrypted_backup_parses_with_prometheus_client(tmp_path):
    backups = tmp_path / 'backups'
    catalog(backups, datetime.timedelta(hours=3), datetime.timedelta(minutes=2))
    src = tmp_path / 'etc' / 'app'
    src.mkdir(parents=True)
    (src / 'app.conf').write_text('x = 1\n')
    recipient = encryption.parse_identities(encryption.generate_identity())[0].recipient
    textdir = tmp_path / 'textfile_collector'
    textdir.mkdir()
    prom = textdir / 'opsready_backup.prom'
    metrics = {'name': 'metrics', 'opsready.operations.backup_metrics': {'backup_dir': str(backups),
                                                                         'textfile': str(prom)}}
    book = write_playbook(tmp_path, [
        {'name': 'backup', 'opsready.operations.file_backup': {'paths': [str(src)], 'dest': str(backups),
                                                               'name': 'app', 'encrypt': True,
                                                               'recipients': [recipient]}},
        metrics])
    result = run_playbook(book)
    assert result.rc == 0, result.stdout[-3000:]
    assert result.result('metrics')['changed'] is True
    assert oct(prom.stat().st_mode & 0o777) == '0o644'
    assert not [p for p in textdir.iterdir() if p.name != prom.name], 'temporary file left beside the textfile'
    check_textfile(prom)
    samples = parse(prom)
    shop_full = json.loads(next(backups.glob('shop-full-*.manifest.json')).read_text())
    finished = datetime.datetime.fromisoformat(shop_full['finished'].replace('Z', '+00:00')).timestamp()
    assert samples[('opsready_backup_last_full_success_timestamp_seconds', 'postgresql', 'shop')] == \
        pytest.approx(finished, abs=0.01)
    assert samples[('opsready_backup_last_full_duration_seconds', 'postgresql', 'shop')] == pytest.approx(42, abs=0.01)
    assert samples[('opsready_backup_last_full_verified', 'postgresql', 'shop')] == 1
    count = len(list(backups.glob('shop-*.manifest.json')))
    assert samples[('opsready_backup_artifacts', 'postgresql', 'shop')] == count
    until = samples[('opsready_backup_recoverable_until_timestamp_seconds', 'postgresql', 'shop')]
    newest_wal = max(json.loads(p.read_text())['finished'] for p in backups.glob('shop-wal-*.manifest.json'))
    assert until == pytest.approx(datetime.datetime.fromisoformat(newest_wal.replace('Z', '+00:00')).timestamp(),
                                  abs=0.01)
    app_manifest = json.loads(next(backups.glob('app-*.manifest.json')).read_text())
    assert samples[('opsready_backup_last_full_encrypted', 'files', 'app')] == 1
    assert samples[('opsready_backup_last_full_verified', 'files', 'app')] == -1
    assert samples[('opsready_backup_last_full_size_bytes', 'files', 'app')] == app_manifest['size']
    assert samples[('opsready_backup_catalog_size_bytes', 'files', 'app')] == app_manifest['size']
    # nothing new: no rewrite, changed=false; check mode never writes
    again = run_playbook(write_playbook(tmp_path, [metrics]))
    assert again.rc == 0 and again.result('metrics')['changed'] is False
    artifact(backups, 'shop', 'wal', now(), {'start': 1000, 'end': 1001}, verified=None)
    before = prom.read_text()
    checked = run_playbook(write_playbook(tmp_path, [metrics]), check=True)
    assert checked.rc == 0 and checked.result('metrics')['changed'] is True and prom.read_text() == before
