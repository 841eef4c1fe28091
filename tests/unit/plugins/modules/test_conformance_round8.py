"""Check mode, then the real run on the same input (checkmode red team, round 8), for the modules round 7 did not
cover: backup_rekey, incident, drill_report, patch_report. Run the way Ansible runs a module (its own process,
check mode through ``_ansible_check_mode``, ``--diff``): check mode must report what the real run then does
(``changed``, the reported lists, the diff) and leave the disk as it was."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.unit.plugins.modules.test_conformance_round7 import _sqlite_source, run_module, snapshot


STAMP = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$')
DURATION = re.compile(r'^time_to_\w+_minutes$')   # from a past event to now
NEW_ID = re.compile(r'^INC-\d{8}T\d{6}-[0-9a-f]+$')   # a new incident's id: its time and a random part


def timeless(value):
    """``value`` with every timestamp (and new incident id) made equal: check mode and the real run run a moment
    apart."""
    if isinstance(value, dict):
        # time_to_resolve_minutes and its kind count from the incident's opening to now: a loaded machine puts the
        # check run and the real run a tenth of a minute apart
        return {k: '<duration>' if DURATION.match(k) else timeless(v) for k, v in value.items()}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    if isinstance(value, str) and NEW_ID.match(value):
        return '<new id>'
    return '<time>' if isinstance(value, str) and STAMP.match(value) else value


def _same_disk(before: dict, after: dict) -> bool:
    return {k: v for k, v in before.items() if not k.startswith('args-')} == \
        {k: v for k, v in after.items() if not k.startswith('args-')}


def _keygen(path: Path) -> tuple:
    subprocess.run(['age-keygen', '-o', str(path)], check=True, capture_output=True)
    secret = [line for line in path.read_text().splitlines() if line.startswith('AGE-SECRET-KEY-')][0]
    public = subprocess.run(['age-keygen', '-y', str(path)], check=True, capture_output=True, text=True).stdout.strip()
    return secret, public


def _case_backup_rekey(tmp_path: Path) -> tuple:
    old, new = _keygen(tmp_path / 'old.key'), _keygen(tmp_path / 'new.key')
    source = _sqlite_source(tmp_path)
    dest = tmp_path / 'backups'
    for dummy in range(2):
        result, printed = run_module(tmp_path, 'db_backup', {'engine': 'sqlite', 'database': source, 'dest': str(dest),
                                                             'encrypt': True, 'recipients': [old[1]]})
        assert result.get('changed') is True, printed[-2000:]
    params = {'src': str(dest), 'recipients': [new[1]], 'identity': old[0]}
    # not ``bytes``: "bytes of re-encrypted artifacts written", 0 in check mode as documented
    return params, dest, ('rekeyed', 'already', 'settled', 'failed_artifacts', 'readable_by', 'recipients')


def _case_incident_open(tmp_path: Path) -> tuple:
    store = tmp_path / 'incidents'
    store.mkdir()
    params = {'store': str(store / 'incidents.jsonl'), 'key': 'health:db1', 'title': 'db1 is critical', 'severity': 2,
              'components': ['disk'], 'actor': 'health'}
    return params, store, ('created', 'incident', 'event', 'results')


def _case_incident_changes(tmp_path: Path) -> tuple:
    store = tmp_path / 'incidents'
    store.mkdir()
    path = str(store / 'incidents.jsonl')
    for key in ('health:web1', 'health:web2'):
        result, printed = run_module(tmp_path, 'incident', {'store': path, 'key': key, 'title': key, 'severity': 3})
        assert result.get('changed') is True, printed[-2000:]
    params = {'store': path, 'actor': 'health', 'changes': [
        {'key': 'health:db1', 'title': 'db1 is critical', 'severity': 2},
        {'key': 'health:web1', 'state': 'resolved', 'note': 'verdict ok'},
        {'key': 'health:web2', 'state': 'investigating', 'note': 'restarted'},
        {'key': 'health:none', 'state': 'resolved', 'note': 'nothing open'}]}
    return params, store, ('created', 'incident', 'event', 'results')


def _drill(started: str) -> dict:
    return {'name': 'app', 'engine': 'postgresql', 'source': 'db1:5432/app', 'scratch': 'app_drill',
            'backup': {'id': 'postgresql-app-full-20261129T004512123456Z.dump.zst',
                       'recoverable_until': '2026-11-29T00:45:12.123456Z'},
            'objectives': {'rto_seconds': 3600, 'rpo_seconds': 300},
            'steps': [{'name': 'verify', 'started': started, 'finished': '2026-11-29T01:00:04Z', 'ok': True},
                      {'name': 'restore', 'started': '2026-11-29T01:00:04Z', 'finished': '2026-11-29T01:01:10Z',
                       'ok': True}]}


def _case_drill_report(tmp_path: Path) -> tuple:
    reports = tmp_path / 'reports'
    reports.mkdir()
    params = {'report_dir': str(reports), 'started': '2026-11-29T01:00:00Z', 'finished': '2026-11-29T01:02:00Z',
              'databases': [_drill('2026-11-29T01:00:00Z')]}
    return params, reports, ('passed', 'verdict', 'verdict_line', 'reasons', 'leftovers_removed', 'databases')


def _case_patch_report_started(tmp_path: Path) -> tuple:
    reports = tmp_path / 'reports'
    reports.mkdir()
    params = {'path': str(reports / 'patching.json'), 'run_id': 'r8', 'state': 'started', 'hosts': ['web1', 'web2'],
              'settings': {'serial': 1}}
    return params, reports, ('markdown_path', 'report')


def _case_patch_report_recorded(tmp_path: Path) -> tuple:
    reports = tmp_path / 'reports'
    reports.mkdir()
    path = str(reports / 'patching.json')
    result, printed = run_module(tmp_path, 'patch_report', {'path': path, 'run_id': 'r8', 'state': 'started',
                                                            'hosts': ['web1', 'web2']})
    assert result.get('changed') is True, printed[-2000:]
    params = {'path': path, 'run_id': 'r8', 'state': 'recorded', 'host': 'web1',
              'entry': {'status': 'patched', 'upgraded': [{'name': 'openssl', 'old': '3.0.1', 'new': '3.0.2'}],
                        'reboot': {'required': True, 'performed': True}}}
    return params, reports, ('markdown_path', 'report')


CASES = [_case_backup_rekey, _case_incident_open, _case_incident_changes, _case_drill_report,
         _case_patch_report_started, _case_patch_report_recorded]


@pytest.mark.parametrize('case', CASES, ids=[c.__name__[len('_case_'):] for c in CASES])
def test_check_mode_matches_the_real_run_and_changes_nothing(tmp_path, case):
    """incident (a new store) and patch_report made their lock file (and patch_report its directory) in check mode,
    and patch_report's check mode returned the report with the summary of before the change (``patched: 0`` for the
    host it records). backup_rekey, incident with ``changes`` on an existing store and drill_report: regression
    guards (they passed on the code before)."""
    params, watched, keys = case(tmp_path)
    module = next(m for m in ('backup_rekey', 'incident', 'drill_report', 'patch_report')
                  if case.__name__[len('_case_'):].startswith(m))
    before = snapshot(watched)
    checked, printed = run_module(tmp_path, module, params, check=True, diff=True)
    assert not checked.get('failed') and 'unparsed' not in checked, printed[-3000:]
    assert _same_disk(before, snapshot(watched)), 'check mode changed the disk'
    real, printed = run_module(tmp_path, module, params, diff=True)
    assert not real.get('failed') and 'unparsed' not in real, printed[-3000:]
    assert checked['changed'] == real['changed'], (checked, real)
    for key in keys:
        assert timeless(checked.get(key)) == timeless(real.get(key)), (key, checked.get(key), real.get(key))
    assert timeless(checked.get('diff')) == timeless(real.get('diff')), (checked.get('diff'), real.get('diff'))


@pytest.mark.parametrize('entry', [
    {'status': 'patched', 'upgraded': ['openssl', 'curl']},
    {'status': 'patched', 'upgraded': 'openssl', 'held': ['kernel'], 'reboot': 'yes'},
], ids=['names', 'scalars'])
def test_patch_report_records_an_entry_of_another_shape(tmp_path, entry):
    """An ``entry`` whose ``upgraded`` lists package names (not os_patch's name/old/new) passed check mode and then
    crashed the real run with a Python traceback (AttributeError in the Markdown rendering), leaving the host out of
    the report. It is recorded as given, each item shown as it is."""
    path = tmp_path / 'reports' / 'patching.json'
    params = {'path': str(path), 'run_id': 'r8', 'state': 'recorded', 'host': 'web1', 'entry': entry}
    checked, printed = run_module(tmp_path, 'patch_report', params, check=True)
    assert checked.get('changed') is True, printed[-3000:]
    real, printed = run_module(tmp_path, 'patch_report', params)
    assert real.get('changed') is True and 'Traceback' not in printed, printed[-3000:]
    assert timeless(checked['report']) == timeless(real['report'])
    markdown = (tmp_path / 'reports' / 'patching.md').read_text()
    assert 'openssl' in markdown and '| web1 |' in markdown, markdown
