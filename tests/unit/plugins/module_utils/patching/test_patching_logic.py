"""Unit tests of the patching logic: apt simulation parsing, plan partition, snapshots, windows, gate, report."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.patching import gate, host, report
from ansible_collections.opsready.operations.plugins.module_utils.patching.apt import parse_simulation
from ansible_collections.opsready.operations.plugins.module_utils.patching.packages import difference, partition

UTC = datetime.timezone.utc

SIMULATION = """\
Reading package lists...
Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64]) []
Inst openssl [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.12/stable [all])
Inst linux-image-6.1.0-40-amd64 (6.1.153-1 Debian-Security:12/stable-security [amd64])
Remv oldpkg [1.0]
Conf libssl3 (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
"""


def test_parse_simulation_reads_versions_origins_and_removals():
    parsed = parse_simulation(SIMULATION)
    names = [(p.name, p.old, p.new, p.arch) for p in parsed['upgrades']]
    assert names == [('libssl3', '3.0.11-1~deb12u1', '3.0.11-1~deb12u2', 'amd64'),
                     ('openssl', '3.0.11-1~deb12u1', '3.0.11-1~deb12u2', 'amd64'),
                     ('tzdata', '2024a-0+deb12u1', '2025b-0+deb12u1', 'all'),
                     ('linux-image-6.1.0-40-amd64', None, '6.1.153-1', 'amd64')]
    assert parsed['upgrades'][0].origin == 'Debian-Security:12/stable-security'
    assert parsed['removals'] == ['oldpkg']


def test_partition_security_hold_and_only():
    items = parse_simulation(SIMULATION)['upgrades']
    plan = partition(items, hold=['openssl'], security_only=True, security_pattern=r'(?i)security', only=[])
    assert [p.name for p in plan.upgrade] == ['libssl3', 'linux-image-6.1.0-40-amd64']
    assert [p.name for p in plan.held] == ['openssl']
    assert [p.name for p in plan.not_security] == ['tzdata']
    only = partition(parse_simulation(SIMULATION)['upgrades'], hold=[], security_only=False,
                     security_pattern='security', only=['linux-image-*'])
    assert [p.name for p in only.upgrade] == ['linux-image-6.1.0-40-amd64']


def test_difference_from_snapshots():
    before = {'a:amd64': '1', 'b:all': '1', 'gone:all': '3'}
    after = {'a:amd64': '2', 'b:all': '1', 'new:all': '1'}
    diff = difference(before, after)
    assert diff['upgraded'] == [{'name': 'a', 'arch': 'amd64', 'old': '1', 'new': '2'}]
    assert diff['installed'] == [{'name': 'new', 'arch': 'all', 'old': None, 'new': '1'}]
    assert diff['removed'] == [{'name': 'gone', 'arch': 'all', 'old': '3', 'new': None}]


def _at(text):
    return datetime.datetime.fromisoformat(text)


@pytest.mark.parametrize('now, inside', [
    ('2026-11-30T09:00:00+00:00', True),    # Monday 10:00 Paris
    ('2026-11-30T18:30:00+00:00', False),   # Monday 19:30 Paris
    ('2026-11-29T09:00:00+00:00', False),   # Sunday
])
def test_weekly_window_with_time_zone(now, inside):
    window = {'name': 'business', 'days': ['mon', 'tue', 'wed', 'thu', 'fri'], 'start': '08:00', 'end': '18:00',
              'timezone': 'Europe/Paris'}
    assert gate.in_window(window, _at(now)) is inside


@pytest.mark.parametrize('now, inside', [
    ('2026-12-04T23:30:00+00:00', True),    # Friday night, window started Friday
    ('2026-12-05T02:00:00+00:00', True),    # Saturday early: still Friday's window
    ('2026-12-05T23:30:00+00:00', False),   # Saturday night: Saturday has no window
    ('2026-12-04T06:00:00+00:00', False),   # Friday 06:00: Thursday's window? Thursday not listed
])
def test_window_crossing_midnight_belongs_to_its_start_day(now, inside):
    window = {'days': ['fri'], 'start': '22:00', 'end': '04:00'}
    assert gate.in_window(window, _at(now)) is inside


def test_one_off_window_and_validation():
    freeze = {'name': 'freeze', 'from': '2026-12-20T00:00:00Z', 'until': '2027-01-04T00:00:00Z'}
    assert gate.in_window(freeze, _at('2026-12-25T12:00:00+00:00'))
    assert not gate.in_window(freeze, _at('2027-01-04T00:00:00+00:00'))
    for bad in ({'start': '08:00'}, {'from': '2026-12-20T00:00:00Z'}, {'start': '8h', 'end': '09:00'},
                {'start': '08:00', 'end': '09:00', 'days': ['funday']}, {'start': '08:00', 'end': '09:00', 'tz': 'x'},
                {'start': '08:00', 'end': '09:00', 'timezone': 'Mars/Olympus'}, {'from': 'x', 'start': '08:00'}):
        with pytest.raises(OpsReadyError):
            gate.validate_window(bad)


def test_gate_reasons():
    now = _at('2026-11-29T12:00:00+00:00')
    sets = [{'engine': 'postgresql', 'database': 'app',
             'newest_verified_full': {'id': 'f1', 'finished': '2026-11-29T11:00:00Z'}},
            {'engine': 'postgresql', 'database': 'old',
             'newest_verified_full': {'id': 'f2', 'finished': '2026-11-27T11:00:00Z'}},
            {'engine': 'sqlite', 'database': 'none', 'newest_verified_full': None}]
    result = gate.evaluate(now=now, windows=[], disk=[{'path': '/', 'min_free_mb': 1}], health_verdict='critical',
                           health_allowed='warning', health_summary='disk full', backup_sets=sets,
                           max_backup_age=86400, backup_required=True)
    assert result['proceed'] is False
    reasons = ' | '.join(result['reasons'])
    assert 'health verdict is critical' in reasons and 'disk full' in reasons
    assert 'postgresql/old newest verified full is 176400 s old' in reasons
    assert 'sqlite/none has no verified full backup' in reasons
    assert 'postgresql/app' not in reasons
    ok = gate.evaluate(now=now, windows=[], disk=[], health_verdict='warning', health_allowed='warning',
                       health_summary=None, backup_sets=None, max_backup_age=None, backup_required=True)
    assert ok['proceed'] is True and ok['reasons'] == []


def test_report_start_record_and_markdown(tmp_path):
    path = str(tmp_path / 'r' / 'patching-x.json')
    report.start(path, 'x', ['a', 'b', 'c'])
    assert report.start(path, 'x', ['a'])['changed'] is False
    report.record(path, 'x', 'a', {'status': 'patched', 'upgraded': [{'name': 'p', 'old': '1', 'new': '2'}],
                                   'reboot': {'required': True, 'performed': False, 'skipped_reason': 'container'}})
    report.record(path, 'x', 'b', {'status': 'failed', 'reason': 'Post-check: api down | 503'})
    data = json.loads(open(path).read())
    assert data['hosts']['c'] == {'status': 'not_reached'}
    assert data['summary']['hosts']['patched'] == 1 and data['summary']['packages_upgraded'] == 1
    md = open(path[:-5] + '.md').read()
    assert '| a | patched | - | p 1 -> 2 | - | required, skipped: container |' in md
    assert 'api down / 503' in md        # a | in a reason does not break the table
    with pytest.raises(OpsReadyError):
        report.record(path, 'x', 'a', {'status': 'great'})


def test_stale_process_detected_after_its_file_is_replaced(tmp_path):
    lib = tmp_path / 'usr' / 'lib' / 'libfake.so'
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b'x' * 8192)
    proc = subprocess.Popen([sys.executable, '-c', (
        'import mmap, sys, time\nf = open(sys.argv[1], "rb")\nm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n'
        'print("ready", flush=True)\ntime.sleep(60)\n'), str(lib)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'ready'
        assert proc.pid not in [p['pid'] for p in host.stale_processes(prefixes=[str(tmp_path)], ignored=['/memfd:'])]
        os.rename(str(lib), str(lib) + '.old')     # what dpkg does: the new file replaces the old inode
        lib.write_bytes(b'y' * 8192)
        os.unlink(str(lib) + '.old')
        time.sleep(0.1)
        found = [p for p in host.stale_processes(prefixes=[str(tmp_path)], ignored=['/memfd:']) if p['pid'] == proc.pid]
        assert found and found[0]['files'] == [str(lib) + '.old']
    finally:
        proc.kill()
        proc.wait()
