"""Left-over faults of the last review round (leftfix9b).

- cert_renew: a run killed after staging the new key (``.<key>.<12 hex>.tmp``, the NEW private key) left it beside
  the key for good; the next run removes such stale staged files of its own names (check mode names them);
- cert_renew check mode gave no warning that the key's mode would be tightened, the run did;
- backup_prune: an unreadable manifest kept its backup with no word about it;
- logrotate dateext: dated copies sorted by naive local time went backwards across a DST fall-back.
"""

from __future__ import annotations

import datetime
import os
import stat
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / 'plugins' / 'module_utils' / 'certs'))
from pki import CA, cert_pem, key_pem  # noqa: E402

from ansible_collections.opsready.operations.plugins.module_utils.backup import (  # noqa: E402
    catalog_index, catalog_jobs, retention)
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.certs import loading, renewal, swap  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import (  # noqa: E402
    Policy, list_rotated, plan_log)

from tests.unit.plugins.module_utils.backup.test_catalog_index_equivalence import NOW, mixed_catalog  # noqa: E402


def opts(cert, key, **extra):
    base = dict(path=str(cert), privatekey_path=str(key), ca_cert=None, ca_key=None, ca_key_passphrase=None,
                self_signed=False, renew_before_days=None, force=False, key_type=None, key_size=None, curve=None,
                common_name=None, subject_alt_names=None, valid_days=None, include_chain=False, backup_dir=None,
                keep_backups=5, csr_only=False, csr_path=None, install=None, rollback=False, owner=None)
    base.update(extra)
    return base


@pytest.fixture
def pki(tmp_path):
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    live = tmp_path / 'live'
    live.mkdir()
    return ca, ca_cert, ca_key, live


def _stage_killed(cert_path, key_path):
    """What a run killed right after staging both files leaves: the two staged files (the key's holds a key)."""
    with swap.Pair(str(cert_path), str(key_path)) as pair:
        key_tmp = pair.key_dir.stage(pair.key_name, b'-----BEGIN PRIVATE KEY-----\nnew\n', mode=0o600)
        cert_tmp = pair.cert_dir.stage(pair.cert_name, b'-----BEGIN CERTIFICATE-----\nnew\n', mode=0o644)
    return os.path.join(os.path.dirname(key_path), key_tmp), os.path.join(os.path.dirname(cert_path), cert_tmp)


def _later(minutes):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)


@pytest.mark.parametrize('due', [False, True])
def test_staged_key_left_by_a_killed_run_is_removed_by_the_next_run(pki, due):
    """A run killed between staging and renaming left ``.<key>.<hex>.tmp`` (the new private key, 0600) beside the key
    and nothing ever removed it. The next run, due or not, removes it (check mode only names it)."""
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'staged.test', days_left=5 if due else 80, lifetime=90)
    key_tmp, cert_tmp = _stage_killed(cert_path, key_path)
    options = opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key)

    check = renewal.renew(options, check_mode=True, now=_later(20))
    assert check['removed_staged_files'] == sorted([key_tmp, cert_tmp])
    assert any('would be removed' in w and key_tmp in w for w in check['warnings'])
    assert os.path.exists(key_tmp) and os.path.exists(cert_tmp)

    result = renewal.renew(options, check_mode=False, now=_later(20))
    assert result['removed_staged_files'] == sorted([key_tmp, cert_tmp])
    assert any('were removed' in w and key_tmp in w for w in result['warnings'])
    assert not os.path.exists(key_tmp) and not os.path.exists(cert_tmp)
    assert result['changed'] == due
    again = renewal.renew(options, check_mode=False, now=_later(21))
    assert again['removed_staged_files'] == [] and not again.get('warnings')


def test_rollback_removes_staged_files_too(pki):
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'rb.test', days_left=5, lifetime=90)
    renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False)
    key_tmp, cert_tmp = _stage_killed(cert_path, key_path)
    result = renewal.rollback(opts(cert_path, key_path, rollback=True), check_mode=False, now=_later(20))
    assert result['rolled_back'] and result['removed_staged_files'] == sorted([key_tmp, cert_tmp])
    assert not os.path.exists(key_tmp)


def test_staged_files_that_may_not_be_a_dead_runs_are_left(pki, tmp_path):
    """The files kept are guards (the old code removed nothing; only the new report failed on it): a young
    staged file (a run still going), a link at such a name (never followed nor removed), a file with a second name,
    another pair's staged file, a name without 12 hex digits and a file of another user are all left in place."""
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'keep.test', days_left=80, lifetime=90)
    key_name = os.path.basename(key_path)
    young, _cert_tmp = _stage_killed(cert_path, key_path)
    target = tmp_path / 'target'
    target.write_bytes(b'secret')
    link = live / ('.%s.%s.tmp' % (key_name, 'a' * 12))
    link.symlink_to(target)
    linked = live / ('.%s.%s.tmp' % (key_name, 'b' * 12))
    linked.write_bytes(b'x')
    os.link(linked, tmp_path / 'second-name')
    other_pair = live / ('.other.key.%s.tmp' % ('c' * 12))
    other_pair.write_bytes(b'x')
    not_hex = live / ('.%s.%s.tmp' % (key_name, 'z' * 12))
    not_hex.write_bytes(b'x')
    others = live / ('.%s.%s.tmp' % (key_name, 'd' * 12))
    others.write_bytes(b'x')
    if os.geteuid() == 0:
        os.chown(others, 65534, 65534)
    old = time.time() - 3600
    for path in (linked, other_pair, not_hex, others):
        os.utime(path, (old, old))
    result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False, now=_later(5))
    assert young not in result['removed_staged_files']
    for path in (link, linked, other_pair, not_hex) + ((others,) if os.geteuid() == 0 else ()):
        assert os.path.lexists(path), path
        assert str(path) not in result['removed_staged_files']
    assert os.path.exists(young) and target.read_bytes() == b'secret'
    assert result['removed_staged_files'] == ([] if os.geteuid() == 0 else [str(others)])


def test_sweep_is_relative_to_the_opened_directory(tmp_path):
    """``SafeDir.stale_staged``: only names matching, only regular files of ours; listed without removal first."""
    (tmp_path / '.a.crt.0123456789ab.tmp').write_bytes(b'x')
    with safeio.SafeDir(str(tmp_path)) as directory:
        later = time.time() + 3600
        assert directory.stale_staged(r'a\.crt', remove=False, now=later) == [str(tmp_path / '.a.crt.0123456789ab.tmp')]
        assert directory.stale_staged(r'b\.crt', remove=True, now=later) == []
        assert directory.stale_staged(r'a\.crt', remove=True, now=time.time()) == []
        assert directory.stale_staged(r'a\.crt', remove=True, now=later)
    assert not (tmp_path / '.a.crt.0123456789ab.tmp').exists()
    assert stat.S_ISDIR(os.stat(tmp_path).st_mode)


# --- check mode foresees the key mode tightening -------------------------------------------------------------

def _mode_warnings(result):
    return sorted(w for w in result.get('warnings', []) if 'readable by others' in w)


@pytest.mark.parametrize('combined', [False, True])
def test_check_mode_warns_of_the_key_mode_tightening_as_the_run_does(tmp_path, combined):
    """A key (or a combined certificate+key file) readable by others is replaced 0600 with a warning; check mode
    said nothing of it, so a dry run did not show the operator what the run would do to the service's access."""
    ca = CA()
    ca_cert, ca_key = ca.write(tmp_path)
    cert, key = ca.issue('mode.test', days_left=2)
    cert_path, key_path = tmp_path / 'app.pem', tmp_path / 'app.key'
    cert_path.write_bytes(cert_pem(cert) + (key_pem(key) if combined else b''))
    key_path.write_bytes(key_pem(key))
    os.chmod(key_path, 0o644)
    os.chmod(cert_path, 0o644)
    options = opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key)
    check = renewal.renew(options, check_mode=True)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o644
    result = renewal.renew(options, check_mode=False)
    assert len(_mode_warnings(result)) == (2 if combined else 1)
    assert _mode_warnings(check) == _mode_warnings(result)


def test_check_mode_of_install_and_rollback_warns_of_the_key_mode_tightening(pki):
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path, _old = ca.write_leaf(live, 'inst.test', days_left=5, lifetime=90)
    renewal.csr_only(opts(cert_path, key_path, csr_only=True), check_mode=False)
    pending = loading.load_private_key(key_path + '.pending')
    issued = live / 'issued.pem'
    issued.write_bytes(cert_pem(ca.issue('inst.test', days_left=80, key=pending)[0]))
    os.chmod(key_path, 0o604)
    install = opts(cert_path, key_path, ca_cert=ca_cert, install=str(issued))
    check = renewal.install(install, check_mode=True)
    result = renewal.install(install, check_mode=False)
    assert len(_mode_warnings(result)) == 1 and _mode_warnings(check) == _mode_warnings(result)

    os.chmod(key_path, 0o644)
    check = renewal.rollback(opts(cert_path, key_path, rollback=True), check_mode=True)
    result = renewal.rollback(opts(cert_path, key_path, rollback=True), check_mode=False)
    assert result['rolled_back'] and len(_mode_warnings(result)) == 1
    assert _mode_warnings(check) == _mode_warnings(result)


# --- backup_prune names the manifests it cannot read --------------------------------------------------------

@pytest.mark.parametrize('per_set', [True, False])
@pytest.mark.parametrize('check_mode', [True, False])
def test_prune_names_an_unreadable_manifest_whose_backup_it_keeps(tmp_path, monkeypatch, per_set, check_mode):
    """An unreadable manifest (truncated, edited) keeps its backup out of retention - kept, rightly - but the prune
    said nothing: the operator never learnt that a backup is neither counted nor ever aged out. It is returned in
    ``broken_manifests`` (as backup_copy does) with a warning naming it, check mode alike."""
    directory = tmp_path / 'backups'
    directory.mkdir()
    mixed_catalog(directory)
    monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
    catalog_index.clear()
    catalog = Catalog(str(directory))
    already = {b['manifest'] for b in catalog.broken}   # the catalog has one unreadable manifest of its own
    oldest = sorted((e for e in catalog.entries if e.engine == 'sqlite'), key=lambda e: e.finished)[0]
    damaged = Path(oldest.manifest_path)
    damaged.write_bytes(damaged.read_bytes()[:40])
    catalog_index.clear()
    try:
        result = prune(str(directory), retention.Policy(keep_last=1), now=NOW, leftover_min_age=0,
                       check_mode=check_mode)
    finally:
        catalog_index.clear()
    assert {b['manifest'] for b in result['broken_manifests']} == already | {str(damaged)}
    assert all(b['error'] for b in result['broken_manifests'])
    for manifest in already | {str(damaged)}:
        assert any(manifest in w and 'kept' in w for w in result['warnings']), result['warnings']
    assert os.path.exists(oldest.path) and oldest.path not in result['deleted']
    assert oldest.path not in result['leftovers_removed']


# --- logrotate dateext across a DST fall-back -----------------------------------------------------------------

@pytest.fixture
def berlin(monkeypatch):
    monkeypatch.setenv('TZ', 'Europe/Berlin')
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _berlin_copy(directory, log, when, fold):
    """A copy rotated at ``when`` (Berlin wall clock; ``fold`` 1: the second 02:xx of 2026-10-25), named as the
    rotation names it, its mtime the log's last write ten seconds before."""
    moment = when.replace(fold=fold)
    path = directory / (log.name + moment.strftime('-%Y%m%d%H%M'))
    path.write_bytes(b'x')
    os.utime(path, (moment.timestamp() - 10, moment.timestamp() - 10))
    return str(path)


def test_dateext_retention_keeps_the_newer_copy_across_the_dst_fall_back(tmp_path, berlin):
    """On 2026-10-25 Berlin's clock goes from 03:00 CEST back to 02:00 CET. With a sub-hourly dateformat, a copy made
    at 02:10 CET (the second pass) is named ...0210, older-looking than one made at 02:30 CEST (the first pass) an
    hour before it: sorted by the name's naive time, retention deleted the newer copy and kept the older one."""
    log = tmp_path / 'app.log'
    log.write_bytes(b'now')
    day = datetime.datetime(2026, 10, 25)
    oldest = _berlin_copy(tmp_path, log, day.replace(hour=1, minute=50), 0)
    first_pass = _berlin_copy(tmp_path, log, day.replace(hour=2, minute=30), 0)    # 02:30 CEST
    second_pass = _berlin_copy(tmp_path, log, day.replace(hour=2, minute=10), 1)   # 02:10 CET, an hour later
    newest = _berlin_copy(tmp_path, log, day.replace(hour=2, minute=40), 1)        # 02:40 CET
    policy = Policy(force=True, rotate=3, dateext=True, dateformat='-%Y%m%d%H%M', compress=False)
    found, _leftovers = list_rotated(str(log), policy)
    assert [r.path for r in found] == [newest, second_pass, first_pass, oldest]
    now = day.replace(hour=2, minute=50, fold=1).astimezone(datetime.timezone.utc)
    plan, why = plan_log(str(log), 3, 'force', policy, now)
    assert why is None and plan is not None
    assert sorted(plan.delete) == sorted([first_pass, oldest])
    assert plan.rotated_to == str(log) + '-202610250250'


def test_dateext_epoch_and_daily_names_sort_as_before(tmp_path, berlin):
    """Regression guard (passed on the old code): epoch (%s) and daily names sort newest first by their time."""
    log = tmp_path / 'app.log'
    for stamp in (1792800000, 1792803600, 1792807200):
        (tmp_path / ('app.log-%d' % stamp)).write_bytes(b'x')
    policy = Policy(force=True, dateext=True, dateformat='-%s')
    assert [os.path.basename(r.path) for r in list_rotated(str(log), policy)[0]] == [
        'app.log-1792807200', 'app.log-1792803600', 'app.log-1792800000']
    for day in ('20261024', '20261025', '20261026'):
        (tmp_path / ('app.log-' + day)).write_bytes(b'x')
    policy = Policy(force=True, dateext=True)
    assert [os.path.basename(r.path) for r in list_rotated(str(log), policy)[0]] == [
        'app.log-20261026', 'app.log-20261025', 'app.log-20261024']
