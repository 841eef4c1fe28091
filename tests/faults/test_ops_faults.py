"""Fault matrix, operations: a live writer during 50 log rotations, bad certificates, a TLS service that does
not take its renewed certificate (rollback), a hung HTTP endpoint."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.faults.helpers import play
from tests.harness.playbook import run_playbook
from tests.integration.health_servers import TcpListener
from tests.integration.test_log_rotate_no_loss import (ROTATIONS, count_numbers, deleted_files_held_open, read_all,
                                                       rotation_book, start_writer, stop_writer)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'unit' / 'plugins' / 'module_utils' / 'certs'))
from pki import CA, ec_key, key_pem, serial_hex  # noqa: E402

from tests.integration.test_cert_renewal import TLSServer, load, read  # noqa: E402

PLAYBOOK = 'playbooks/cert_renewal.yml'


# Not in the fast subset: make test already runs both modes with the same writer and book in the integration
# layer (test_log_rotate_no_loss.py); `make faults` keeps them as rows of the matrix.
@pytest.mark.parametrize('mode', ['create', 'copytruncate'])
@pytest.mark.fault(fault='concurrent writer during 50 log rotations ({mode})', component='log_rotate',
                   expected='create: no line lost or duplicated; copytruncate: only the documented copy/truncate '
                            'window (< 1 %), nothing duplicated or torn; no deleted file held open')
def test_writer_during_rotations(mode, tmp_path, fault):
    logdir = tmp_path / 'log'
    logdir.mkdir()
    proc, pidfile, count_file = start_writer(tmp_path, logdir / 'app.log')
    try:
        extra = {'pidfile': str(pidfile), 'signal': 'HUP'} if mode == 'create' else {'mode': 'copytruncate'}
        result = run_playbook(rotation_book(tmp_path, logdir, **extra))
        fault.scan(result.stdout, where='play output')
        assert result.rc == 0, result.stdout[-2000:]
        items = result.task_results('rotate', events=('runner_item_on_ok',))
        assert len(items) == ROTATIONS and all(len(item['rotated']) == 1 for item in items)
        held = deleted_files_held_open(logdir)
    finally:
        total = stop_writer(proc, count_file)
    missing, duplicated, malformed = count_numbers(read_all(logdir), total)
    fault.lost(lines=missing, of_lines=total)
    assert total > ROTATIONS * 100, 'the writer hardly wrote: the case would prove nothing'
    assert held == [] and duplicated == 0 and malformed == 0
    if mode == 'create':
        assert missing == 0
    else:
        assert missing < total / 100
    fault.observed('%d rotations, %d lines written, %d lost, %d duplicated, %d torn' % (
        ROTATIONS, total, missing, duplicated, malformed))


def _renewal(tmp_path, items, **extra):
    extravars = dict(certificates_list=items, certificates_probe_retries=3, certificates_probe_delay=1)
    extravars.update(extra)
    return run_playbook(PLAYBOOK, extravars=extravars)


@pytest.fixture
def tls_servers():
    started = []
    yield lambda *a, **kw: started.append(TLSServer(*a, **kw)) or started[-1]
    for server in started:
        server.stop()


@pytest.mark.fault(fault='expired certificate behind a live TLS service', component='certificates role',
                   expected='renewed, reloaded, new serial served; previous pair kept')
def test_expired_certificate(tmp_path, tls_servers, fault):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    crt, key, old = ca.write_leaf(tmp_path, 'svc.test', days_left=-2, lifetime=30)
    server = tls_servers(tmp_path, crt, key)
    run = _renewal(tmp_path, [dict(name='svc', path=crt, privatekey_path=key, ca_cert=ca_cert, ca_key=ca_key,
                                   key_type='ec', reload_command=['kill', '-HUP', str(server.proc.pid)],
                                   endpoint=dict(host='127.0.0.1', port=server.port))], certificates_ca_bundle=ca_cert)
    fault.scan(run.stdout, where='play output')
    assert run.rc == 0, run.stdout[-3000:]
    new = load(crt)
    assert new.serial_number != old.serial_number and server.served().serial_number == new.serial_number
    kept = [p for p in tmp_path.iterdir() if p.name.startswith('svc.') and p.name.endswith('.bak')]
    assert len(kept) == 2
    fault.lost(files=0)
    fault.observed('renewed %s -> %s, served after reload, old pair kept' % (serial_hex(old)[:8], serial_hex(new)[:8]))


@pytest.mark.fast
@pytest.mark.fault(fault='certificate with a mismatched private key', component='cert_info',
                   expected='reported key_matches=false (the pair would not load in a server)')
def test_mismatched_key(tmp_path, fault):
    ca = CA()
    crt, key, dummy = ca.write_leaf(tmp_path, 'odd.test', days_left=300, lifetime=365)
    Path(key).write_bytes(key_pem(ec_key()))
    result = play(tmp_path, [{'name': 'info', 'opsready.operations.cert_info': {
        'paths': [crt], 'privatekey_paths': {crt: key}}}], fault=fault)
    assert result.rc == 0, result.stdout[-2000:]
    cert = result.result('info')['certificates'][0]
    assert cert['key_matches'] is False, cert
    fault.lost(files=0)
    fault.observed('key_matches=false for %s' % os.path.basename(crt))


@pytest.mark.fast
@pytest.mark.fault(fault='garbage where a certificate should be', component='certificates role, cert_info',
                   expected='clear error naming the file; nothing written next to it')
def test_garbage_certificate(tmp_path, fault):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    live = tmp_path / 'live'
    live.mkdir()
    garbage = live / 'garbage.crt'
    garbage.write_bytes(b'this is not a certificate\n')
    run = _renewal(tmp_path, [dict(name='garbage', path=str(garbage), privatekey_path=str(live / 'garbage.key'),
                                   ca_cert=ca_cert, ca_key=ca_key, key_type='ec')])
    fault.scan(run.stdout, where='play output')
    assert run.rc != 0
    final = run.result('Fail with the reason of every certificate that could not be renewed')['msg']
    assert str(garbage) in final and 'neither a PEM nor a DER certificate' in final
    assert sorted(p.name for p in live.iterdir()) == ['garbage.crt']
    info = play(tmp_path, [{'name': 'info', 'ignore_errors': True, 'opsready.operations.cert_info': {
        'paths': [str(garbage)]}}], fault=fault).result('info')
    assert info['_event'] == 'runner_on_failed' and str(garbage) in info['msg']
    fault.lost(files=0)
    fault.observed('failed: %s' % final[final.find(str(garbage)):][:100])


@pytest.mark.fault(fault='TLS endpoint does not serve the renewed certificate', component='certificates role',
                   expected='probe fails, rollback to the old pair, old serial served, play fails saying so')
def test_tls_endpoint_fails_after_renewal(tmp_path, tls_servers, fault):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    crt, key, old = ca.write_leaf(tmp_path, 'stuck.test', days_left=3, lifetime=90)
    before = (read(crt), read(key))
    stuck = tls_servers(tmp_path, crt, key)   # its reload command does nothing: it keeps serving the old one
    run = _renewal(tmp_path, [dict(name='stuck', path=crt, privatekey_path=key, ca_cert=ca_cert, ca_key=ca_key,
                                   key_type='ec', reload_command=['true'],
                                   endpoint=dict(host='127.0.0.1', port=stuck.port))], certificates_ca_bundle=ca_cert)
    fault.scan(run.stdout, where='play output')
    assert run.rc != 0
    final = run.result('Fail with the reason of every certificate that could not be renewed')['msg']
    assert 'rolled back to serial %s' % serial_hex(old) in final
    assert (read(crt), read(key)) == before
    assert stuck.served().serial_number == old.serial_number
    fault.lost(files=0)
    fault.observed('rolled back to serial %s, old certificate still served' % serial_hex(old)[:8])


@pytest.mark.fast
@pytest.mark.fault(fault='hung HTTP endpoint (accepts, never answers)', component='health_check',
                   expected='check fails as api_timeout after its 2 s timeout, not after the hang; verdict critical')
def test_hung_http_endpoint(tmp_path, fault):
    listener = TcpListener()
    try:
        started = time.monotonic()
        result = play(tmp_path, [{'name': 'health', 'opsready.operations.health_check': {
            'checks': [{'type': 'http', 'name': 'hung', 'url': 'http://127.0.0.1:%d/' % listener.port, 'timeout': 2}],
            'fail_on': 'never',
            'thresholds': {'cpu_percent': {'warning': None, 'critical': None},
                           'load_per_core': {'warning': None, 'critical': None}}}}], fault=fault)
        wall = time.monotonic() - started
    finally:
        listener.close()
    assert result.rc == 0, result.stdout[-2000:]
    res = result.result('health')
    check = {c['name']: c for c in res['checks']}['hung']
    assert not check['ok'] and check['condition'] == 'api_timeout', check
    assert check['duration_seconds'] < 4, check['duration_seconds']
    assert res['verdict'] == 'critical'
    fault.lost(files=0)
    fault.observed('api_timeout after %.1f s (play %.0f s)' % (check['duration_seconds'], wall))
