"""Fault matrix, hostile filesystems round 5: what round 4 left open, and writers it did not attack (harness:
test_hostile_round3/4, an unprivileged account made and removed by test_hostile_files, its moves run as that account
with setpriv, or by a racing thread running as that account).

- An account named in ``owner`` is trusted with its own files, not with where root writes: a link it makes in its
  own directory (its certificate directory linked to /etc/ssl/private) must not carry root's writes, chmods or
  chowns into a directory of root's.
- A manifest in a catalog is never read through a symlink: one planted in a catalog another account writes (the WAL
  catalog postgres writes through its group) linked to a root-only manifest made backup_info list that backup's
  database, size and checksum as this catalog's. Every catalog reader treats it the same way: a catalog listed
  (backup_info, backup_verify, backup_prune, backup_metrics, backup_copy, db_restore and file_restore choosing a
  backup) skips it as a broken manifest, named, with what is wrong and what to do; a manifest named directly (src or
  path of db_restore, file_restore, redis_restore) is refused.
- Directories root creates, replaces or deletes files in by name, below a directory another account owns or can
  write (or through a link it made): drill_report's report_dir, patch_report's report, backup_prune's catalog,
  backup_metrics' textfile, log_rotate's state_file. That account links the name to a directory of root's (/etc,
  another catalog): each is refused before anything is written or deleted (safeio.check_parents).
- The ACME account key reached through a symlink in root's directory is judged by the key it names.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_inputs_sweep as sweep
from tests.faults import test_hostile_round3 as round3

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.certs import renewal  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio  # noqa: E402

racer_user = hostile.racer_user
arena = hostile.arena
snapshot = hostile.snapshot
touched = hostile.touched
as_user = round3.as_user
user_dir = round3.user_dir


def _changed(before: dict, after: dict) -> list:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


# --- owner: trusted with its files, not with where root writes ---------------------------------------------------
@pytest.mark.fast
@pytest.mark.parametrize('where', ['cert-dir', 'dir-above', 'backup_dir'])
@pytest.mark.fault(fault='the account named in owner links its own {where} to a directory of root\'s',
                   component='cert_renew (files/safeio.path_risk, SafeDir)',
                   expected='refused naming the link and the account; nothing in root\'s directory written, '
                            'chmodded or chowned')
def test_owner_links_its_directory_to_roots(racer_user, arena, where, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    app = user_dir(base / 'app', user)
    private = outside / 'private'    # /etc/ssl/private: root's, with another service's key of the same name
    private.mkdir(mode=0o700)
    (private / 'svc.key').write_bytes(b'-----BEGIN PRIVATE KEY-----\nanother service\n')
    os.chmod(private / 'svc.key', 0o600)
    if where == 'cert-dir':
        as_user(user, 'ln -s %s %s/tls' % (private, app))
        opts = hostile.cert_opts(app / 'tls', user)
    elif where == 'dir-above':
        as_user(user, 'ln -s %s %s/ssl' % (outside, app))
        opts = hostile.cert_opts(app / 'ssl' / 'private', user)
    else:
        as_user(user, 'mkdir %s/tls && ln -s %s %s/kept' % (app, private, app))
        renewal.renew(hostile.cert_opts(app / 'tls', user), check_mode=False)
        opts = hostile.cert_opts(app / 'tls', user, backup_dir=str(app / 'kept'))
    before = snapshot(outside)
    error = None
    try:
        renewal.renew(opts, check_mode=False)
    except OpsReadyError as exc:
        error = exc
    after = snapshot(outside)
    fault.observed('files in root\'s directory touched: %d; renew: %s' % (touched(before, after), error or 'completed'))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    assert isinstance(error, safeio.UnsafeFileError) and 'symlink' in str(error) and user.pw_name in str(error), error


SWAPPER = r'''
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
deadline, swaps = time.time() + float(sys.argv[2]), 0
while time.time() < deadline:   # the directory and a link to root's, exchanged atomically (never missing)
    if libc.renameat2(-100, b'tls', -100, b'tls.lnk', 2) == 0:
        swaps += 1
print(swaps)
'''


@pytest.mark.fast
@pytest.mark.parametrize('how', ['after-check', 'racing'])
@pytest.mark.fault(fault='the account named in owner swaps its real certificate directory for a link to root\'s '
                   '({how})', component='cert_renew (files/safeio.SafeDir, open_directory)',
                   expected='each run renews in the account\'s directory or is refused naming the link; nothing '
                            'in root\'s directory written')
def test_owner_swaps_its_directory_after_the_check(racer_user, arena, monkeypatch, how, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    app = user_dir(base / 'app', user)
    private = outside / 'private'
    private.mkdir(mode=0o700)
    (private / 'svc.key').write_bytes(b'-----BEGIN PRIVATE KEY-----\nanother service\n')
    os.chmod(private / 'svc.key', 0o600)
    as_user(user, 'mkdir %s/tls && ln -s %s %s/tls.lnk' % (app, private, app))
    before = snapshot(outside)
    outcomes = {'renewed': 0, 'refused': 0}
    if how == 'after-check':
        real = safeio.path_risk

        def check_then_swap(path, owner_uid=None):
            risk = real(path, owner_uid)
            as_user(user, 'cd %s && mv tls tls.real && mv tls.lnk tls' % app)
            monkeypatch.setattr(safeio, 'path_risk', real)
            return risk
        monkeypatch.setattr(safeio, 'path_risk', check_then_swap)
        runs = 1
    else:
        import subprocess
        swapper = subprocess.Popen([hostile.unprivileged_python(), '-c', SWAPPER, str(app), '1.5'],
                                   user=user.pw_uid, group=user.pw_gid, extra_groups=[], stdout=subprocess.PIPE)
        runs = 0
    error = None
    while True:
        try:
            renewal.renew(hostile.cert_opts(app / 'tls', user), check_mode=False)
            outcomes['renewed'] += 1
        except OpsReadyError as exc:
            outcomes['refused'] += 1
            error = exc
        except OSError:
            outcomes['refused'] += 1   # the directory exchanged mid-run: a file root opened is gone
        runs += -1 if how == 'after-check' else 1
        if how == 'after-check' or swapper.poll() is not None:
            break
    swaps = int(swapper.communicate()[0]) if how == 'racing' else 1
    after = snapshot(outside)
    fault.observed('%d swaps; %s; files in root\'s directory touched: %d' % (swaps, outcomes, touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    if how == 'after-check':
        assert isinstance(error, safeio.UnsafeFileError) and 'symlink' in str(error), error
    else:
        assert swaps > 100 and outcomes['renewed'] + outcomes['refused'] > 5


# --- manifests read through a symlink ------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def root_catalog(tmp_path_factory):
    """A catalog of root's (0700) with one SQLite backup of a database whose name is a secret of root's."""
    base = tmp_path_factory.mktemp('root-catalog')
    import sqlite3
    db = base / 'SECRETNAME.db'
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE t (x)')
    conn.commit()
    conn.close()
    result, _s, _r, err = sweep.run_module('db_backup', {'engine': 'sqlite', 'database': str(db),
                                                         'dest': str(base / 'catalog')}, base / 'work')
    assert result.get('changed'), (result, err)
    return Path(result['manifest_path']) if 'manifest_path' in result else next((base / 'catalog').glob('*.json'))


LINK_READERS = [
    ('backup_info', {'path': '{catalog}'}),
    ('backup_verify', {'path': '{catalog}'}),
    ('backup_prune', {'path': '{catalog}', 'keep_last': 1}),
    ('backup_metrics', {'backup_dir': '{catalog}', 'textfile': '{work}/out.prom'}),
    ('backup_copy', {'src': '{catalog}', 'backend': 'ssh', 'ssh_host': 'backup.invalid', 'remote_path': '/srv/b'}),
    ('db_restore', {'engine': 'sqlite', 'src': '{catalog}', 'database': '{work}/restored.db'}),
    ('file_restore', {'src': '{catalog}', 'dest': '{work}/out'}),
    ('file_restore', {'src': '{link}', 'dest': '{work}/out'}),
    ('redis_restore', {'path': '{link}'}),
    ('redis_restore', {'backup_dir': '{catalog}'}),
]


@pytest.mark.fast
@pytest.mark.parametrize('module,extra', LINK_READERS,
                         ids=['%s-%s' % (m, 'named' if '{link}' in str(e) else 'listed') for m, e in LINK_READERS])
@pytest.mark.fault(fault='a manifest in the catalog of {module} is a symlink to a root-only manifest elsewhere',
                   component='{module} (backup/manifest.read_manifest, catalog_index scan)',
                   expected='the link is named as a manifest never read through a symlink (skipped when the catalog '
                            'is listed, refused when named); nothing of the linked manifest in the result')
def test_linked_manifest_is_never_read(root_catalog, tmp_path, module, extra, fault):
    work = tmp_path / 'work'
    catalog = work / 'catalog'
    catalog.mkdir(parents=True)
    link = catalog / 'sqlite-app.db-full-20261205T000000000000Z.sqlite.zst.manifest.json'
    os.symlink(root_catalog, link)
    args = {k: v.format(catalog=catalog, work=work, link=link) if isinstance(v, str) else v for k, v in extra.items()}
    result, seconds, _rss, stderr = sweep.run_module(module, args, work)
    blob = json.dumps(result)
    fault.observed('%s in %.1f s: %s' % ('failed' if result.get('failed') else 'ok', seconds,
                                         (result.get('msg') or json.dumps(result.get('warnings', '')))[:200]))
    fault.lost(secrets=int('SECRETNAME' in blob))
    assert 'Traceback' not in stderr and 'unparsed' not in result, stderr[-1500:]
    assert 'SECRETNAME' not in blob, blob[:1500]
    assert os.path.islink(link)
    assert str(link) in blob and 'is a symlink, and a manifest is never read through one' in blob, blob[:1500]


# --- report directories below a directory another account owns -----------------------------------------------------
REPORT_WRITERS = [
    ('drill_report', {'report_dir': '{reports}', 'started': '2026-11-29T00:00:00Z',
                      'databases': [{'name': 'app', 'engine': 'sqlite', 'source': 'a.db'}]}),
    ('patch_report', {'path': '{reports}/patching-r1.json', 'run_id': 'r1', 'state': 'started', 'hosts': ['db1']}),
]


@pytest.mark.fast
@pytest.mark.parametrize('how', ['renamed', 'linked'])
@pytest.mark.parametrize('module,extra', REPORT_WRITERS, ids=[m for m, _e in REPORT_WRITERS])
@pytest.mark.fault(fault='the report directory of {module} is in a directory another account owns; it is {how} to '
                   'a directory of root\'s', component='{module} (drill/report, patching/report: safeio.check_parents)',
                   expected='refused before anything is written, naming the directory and the account; nothing '
                            'created or replaced in root\'s directory')
def test_report_dir_below_another_accounts_directory(racer_user, arena, tmp_path, module, extra, how, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    app = user_dir(base / 'app', user)
    victim = outside / 'etc'
    if how == 'renamed':
        (app / 'reports').mkdir(mode=0o755)   # root's, but in the account's directory
        as_user(user, 'cd %s && mv reports reports.old && ln -s %s reports' % (app, victim))
    else:
        as_user(user, 'ln -s %s %s/reports' % (victim, app))
    before = snapshot(outside)
    work = tmp_path / 'work'
    work.mkdir()
    args = {k: v.format(reports=app / 'reports') if isinstance(v, str) else v for k, v in extra.items()}
    result, seconds, _rss, stderr = sweep.run_module(module, args, work)
    after = snapshot(outside)
    fault.observed('%s in %.1f s: %s; files in root\'s directory touched: %d' % (
        'failed' if result.get('failed') else 'done', seconds, str(result.get('msg'))[:160], touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    assert result.get('failed') and str(app) in result['msg'] and user.pw_name in result['msg'], (result, stderr)


@pytest.mark.fast
@pytest.mark.fault(fault='a manifest backup_copy listed is swapped for a link to a root-only manifest before it is '
                   'uploaded', component='backup_copy (offsite/copy._manifest_bytes)',
                   expected='refused as a symlink; the linked manifest is not read')
def test_copy_reads_no_manifest_swapped_for_a_link(root_catalog, tmp_path, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest
    from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite
    catalog = tmp_path / 'catalog'
    catalog.mkdir()
    mine = catalog / root_catalog.name
    mine.write_bytes(root_catalog.read_bytes().replace(b'SECRETNAME', b'app'))
    entry = read_manifest(str(mine))           # listed ...
    mine.unlink()
    os.symlink(root_catalog, mine)            # ... then swapped
    outcome = None
    try:
        outcome = offsite._manifest_bytes(entry)
    except OpsReadyError as exc:
        outcome = exc
    fault.observed(repr(outcome)[:200])
    fault.lost(secrets=int(isinstance(outcome, bytes) and b'SECRETNAME' in outcome))
    assert isinstance(outcome, safeio.UnsafeFileError) and 'symlink' in str(outcome), outcome


# --- the ACME account key behind a symlink ---------------------------------------------------------------------------
@pytest.mark.fast
@pytest.mark.parametrize('target_mode', [0o600, 0o644])
@pytest.mark.fault(fault='account_key_path is a symlink (mode 0777 on the link) in a directory of root\'s, to a key of '
                   'mode {target_mode:o}', component='cert_renew acme (certs/acme_renewal._account_key)',
                   expected='judged by the key the link names, as the cert modules follow links in root\'s '
                            'directories: a 0600 key is used, a 0644 one is refused naming its mode and the link')
def test_acme_account_key_behind_a_symlink(tmp_path, target_mode, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.certs import acme_renewal, keys, swap
    pair_dir, key_dir = tmp_path / 'pair', tmp_path / 'acme'
    pair_dir.mkdir(mode=0o755)
    key_dir.mkdir(mode=0o700)
    real = key_dir / 'account-2026.key'
    real.write_bytes(keys.private_key_pem(keys.generate_private_key('ec', 4096, 'secp256r1')))
    os.chmod(real, target_mode)
    link = key_dir / 'account.key'
    os.symlink(real.name, link)
    pair = swap.Pair(str(pair_dir / 'svc.crt'), str(pair_dir / 'svc.key'))
    outcome = None
    try:
        outcome = acme_renewal._account_key(pair, {}, str(link), False)
    except OpsReadyError as exc:
        outcome = exc
    finally:
        pair.close()
    fault.observed(repr(outcome)[:200])
    fault.lost(files=0)
    if target_mode == 0o600:
        assert isinstance(outcome, tuple) and outcome[1] is False, outcome
    else:
        assert isinstance(outcome, OpsReadyError) and 'mode 644' in str(outcome) and str(real) in str(outcome), \
            outcome


# --- backup_prune: the catalog below a directory another account owns --------------------------------------------
def _sqlite_backups(catalog: Path, work: Path, count: int) -> None:
    import sqlite3
    db = work / 'app.db'
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE IF NOT EXISTS t (x)')
    conn.commit()
    conn.close()
    for _index in range(count):
        result, _s, _r, err = sweep.run_module('db_backup', {'engine': 'sqlite', 'database': str(db),
                                                             'dest': str(catalog)}, work)
        assert result.get('changed'), (result, err)


@pytest.mark.fast
@pytest.mark.parametrize('how', ['renamed', 'linked'])
@pytest.mark.fault(fault='backup_prune\'s catalog is in a directory another account owns; it is {how} to another '
                   'catalog of root\'s', component='backup_prune (backup/catalog_prune: safeio.check_parents)',
                   expected='refused before anything is deleted, naming the account; the other catalog untouched')
def test_prune_catalog_below_another_accounts_directory(racer_user, arena, tmp_path, how, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    work = tmp_path / 'work'
    work.mkdir()
    other = outside / 'catalog'           # another set's catalog of root's, with a longer retention
    _sqlite_backups(other, work, 2)
    app = user_dir(base / 'app', user)
    if how == 'renamed':
        (app / 'catalog').mkdir(mode=0o700)
        as_user(user, 'cd %s && mv catalog catalog.old && ln -s %s catalog' % (app, other))
    else:
        as_user(user, 'ln -s %s %s/catalog' % (other, app))
    before = snapshot(outside)
    result, seconds, _rss, stderr = sweep.run_module('backup_prune', {'path': str(app / 'catalog'), 'keep_last': 1},
                                                     work)
    after = snapshot(outside)
    fault.observed('%s in %.1f s: %s; files in root\'s catalog touched: %d' % (
        'failed' if result.get('failed') else 'done', seconds, str(result.get('msg'))[:160], touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    assert result.get('failed') and str(app) in result['msg'] and user.pw_name in result['msg'], (result, stderr)


# --- state files and textfiles below a directory another account owns -------------------------------------------
STATE_WRITERS = [
    ('backup_metrics', {'backup_dir': '{work}/catalog', 'textfile': '{dir}/backup.prom'}),
    ('log_rotate', {'paths': ['{work}/app.log'], 'state_file': '{dir}/log_rotate.json', 'interval': 'daily'}),
]


@pytest.mark.fast
@pytest.mark.parametrize('module,extra', STATE_WRITERS, ids=[m for m, _e in STATE_WRITERS])
@pytest.mark.fault(fault='the file {module} writes is in a directory the account links to a directory of root\'s',
                   component='{module} (health/backup_freshness, logrotate/rotate: safeio.check_parents)',
                   expected='refused before anything is written, naming the account; nothing created in root\'s '
                            'directory')
def test_state_file_below_another_accounts_directory(racer_user, arena, tmp_path, module, extra, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    app = user_dir(base / 'app', user)
    as_user(user, 'ln -s %s %s/state' % (outside / 'etc', app))
    work = tmp_path / 'work'
    (work / 'catalog').mkdir(parents=True)
    (work / 'app.log').write_bytes(b'line\n')
    args = {k: (v.format(work=work, dir=app / 'state') if isinstance(v, str)
                else [x.format(work=work) for x in v] if isinstance(v, list) else v) for k, v in extra.items()}
    before = snapshot(outside)
    result, seconds, _rss, stderr = sweep.run_module(module, args, work)
    after = snapshot(outside)
    fault.observed('%s in %.1f s: %s; files in root\'s directory touched: %d' % (
        'failed' if result.get('failed') else 'done', seconds, str(result.get('msg'))[:160], touched(before, after)))
    fault.lost(outside_touched=touched(before, after))
    assert touched(before, after) == 0, _changed(before, after)
    assert result.get('failed') and str(app) in result['msg'] and user.pw_name in result['msg'], (result, stderr)
