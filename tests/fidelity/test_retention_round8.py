"""Fidelity of retention, round 8: check mode of a backup run with retention against the real run, where the run's
new backup changes how the set's older manifests group by origin.

Manifests written before origins were recorded (no ``origin``) join their set's only origin, else they are a group of
their own (``unknown``). A backup run that brings an origin into the set therefore regroups them:

* the set holds host A's backups and older ones without an origin (with A's group); host B's first backup makes two
  origins, and the old manifests become a group of their own, whose newest full is kept;
* the set holds only manifests without an origin (written before the upgrade); this host's first backup after it is
  the set's only origin, and they join its group, where the new full takes the ``keep_last`` place.

The real run plans after its backup is written and regroups; check mode planned the catalog as it was, so it listed
other deletions than the run then made. These run real SQLite backups (``run_backup``) and real prunes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, catalog_jobs, retention  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402

HOST_A = 'app-a.example'
OWN = object()   # ``history``: the manifest as this host wrote it


def make_db(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
    db.executemany('INSERT INTO t (v) VALUES (?)', [('row %d' % i,) for i in range(20)])
    db.commit()
    db.close()


def backup(db: Path, dest: Path, policy=None, check_mode=False):
    engine = get_engine('sqlite', ConnectionParams())
    return run_backup(engine, BackupOptions(kind='full', dest=str(dest), database=str(db), compression='gzip'),
                      policy=policy, check_mode=check_mode)


def set_origin(manifest: dict, origin) -> None:
    """What a shared directory holds: the manifest of another host (``origin``) or of a version that recorded none
    (None). The artifact is real."""
    path = Path(manifest['path'] + '.manifest.json')
    data = json.loads(path.read_text())
    if origin is None:
        data.pop('origin', None)
    else:
        data['origin'] = origin
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')


def listing(dest: Path) -> list:
    return sorted(os.listdir(dest))


@pytest.fixture(params=['per-set', 'whole-catalog', 'sealed-index'])
def planner(request, monkeypatch):
    """How retention plans: set by set, over the whole catalog, or set by set on a sealed catalog index's columns
    (``RowView``; ``seal`` writes and seals it as a real earlier run would)."""
    monkeypatch.setattr(catalog_jobs, 'PER_SET', request.param != 'whole-catalog')
    if request.param == 'sealed-index':
        monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
        monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)   # files written just now are indexed
    catalog_index.clear()
    yield request.param
    catalog_index.clear()


def seal(dest: Path) -> None:
    for dummy in range(2):
        catalog_jobs.describe(str(dest))
        catalog_index.clear()
    assert (dest / catalog_index.INDEX_NAME).exists()


def history(tmp_path: Path, origins: list):
    """Real backups of one SQLite database, one a second apart, their manifests given ``origins`` in turn."""
    db, dest = tmp_path / 'app.db', tmp_path / 'backups'
    make_db(db)
    written = []
    for origin in origins:
        manifest = backup(db, dest)['manifest']
        if origin is not OWN:
            set_origin(manifest, origin)
        written.append(manifest['path'])
        time.sleep(1.05)
    catalog_index.clear()
    return db, dest, written


@pytest.mark.parametrize('case', ['second-server', 'first-origin'])
@pytest.mark.parametrize('succession', [False, True])
def test_check_mode_foresees_the_regrouping_by_the_runs_own_backup(tmp_path, planner, case, succession):
    """``second-server``: two backups without an origin, then two of host A, then this host's first backup with
    ``keep_last: 1``: the real run keeps the newest of the old manifests (a group of their own once there are two
    origins) and deletes the older one and A's older one; check mode counted the old manifests as A's and listed
    both. ``first-origin``: two backups without an origin, then this host's first backup: they join its group and
    both go; check mode planned them as a group without the new backup and kept the newest. With
    ``origin_succession`` the one-timeline plan must agree too. Check mode changes nothing."""
    origins = [None, None, HOST_A, HOST_A] if case == 'second-server' else [None, None]
    db, dest, written = history(tmp_path, origins)
    if planner == 'sealed-index':
        seal(dest)
    policy = retention.Policy(keep_last=1, origin_succession=succession)
    before = listing(dest)
    checked = backup(db, dest, retention.Policy(keep_last=1, origin_succession=succession), check_mode=True)
    if planner == 'sealed-index':
        assert catalog_index._DIRS[str(dest)].seal is not None
    assert listing(dest) == before
    catalog_index.clear()
    real = backup(db, dest, policy)
    assert sorted(checked['deleted']) == sorted(real['deleted']), (checked['deleted'], real['deleted'])
    for path in real['deleted']:
        assert not os.path.exists(path), path
    if case == 'second-server' and not succession:
        # per origin: the old manifests' newest (L2) and A's newest stay
        assert sorted(real['deleted']) == sorted([written[0], written[2]]), real['deleted']
    if case == 'first-origin':
        assert sorted(real['deleted']) == sorted(written), real['deleted']


@pytest.mark.parametrize('case', ['second-host', 'first-origin', 'other-host-only'])
def test_file_backup_check_mode_foresees_the_regrouping(tmp_path, case):
    """file_backup (the module, as Ansible runs it) with ``keep_count: 1`` in a dest another host shares:
    ``second-host`` and ``first-origin`` as above; ``other-host-only``: the set holds host A's archives only, and
    check mode counted this host's pending archive in A's group (no origin was given to the plan), so it listed A's
    newest archive as deleted, which the real run keeps (every host keeps its newest). ``first-origin`` passed before
    (a guard: without an origin the pending archive counted in every group, the old manifests' too)."""
    from tests.unit.plugins.modules.test_conformance_round7 import run_module   # noqa: E402 (a module runner)
    src, dest = tmp_path / 'etc', tmp_path / 'backups'
    src.mkdir()
    (src / 'app.conf').write_text('x\n')
    params = {'paths': [str(src)], 'dest': str(dest), 'name': 'cfg', 'keep_count': 1, 'keep_days': 0,
              'compression': 'gzip'}
    origins = {'second-host': [None, None, HOST_A, HOST_A], 'first-origin': [None, None],
               'other-host-only': [HOST_A, HOST_A]}[case]
    written = []
    for origin in origins:
        done, printed = run_module(tmp_path, 'file_backup', dict(params, keep_count=None))
        assert done.get('changed') is True, printed[-3000:]
        set_origin(done['manifest'], origin)
        written.append(done['archive'])
        time.sleep(1.05)
    before = listing(dest)
    checked, printed = run_module(tmp_path, 'file_backup', params, check=True)
    assert not checked.get('failed'), printed[-3000:]
    assert listing(dest) == before
    real, printed = run_module(tmp_path, 'file_backup', params)
    assert not real.get('failed'), printed[-3000:]
    assert sorted(checked['deleted']) == sorted(real['deleted']), (checked['deleted'], real['deleted'])
    expected = {'second-host': written[0:3:2], 'first-origin': written, 'other-host-only': written[:1]}[case]
    assert sorted(real['deleted']) == sorted(expected), real['deleted']


def test_verify_content_reads_a_full_whose_stat_is_unchanged(tmp_path):
    """A passed verification is trusted while the artifact's inode, size, mtime and ctime are unchanged: bytes that
    rot on the disk under that stat were not read by backup_prune, which let the older good fulls go for a damaged
    newest one (the documented trade-off; the first half is its guard). ``verify_content: true`` reads it whatever its
    stat says: the damaged full is counted by no rule and goes, the older one is kept in its place - in check mode as
    in the real run. Bit rot is simulated by damaging the bytes, then recording the new stat in the manifest's
    verification, as if the disk had changed them under it."""
    from tests.unit.plugins.modules.test_conformance_round7 import run_module   # noqa: E402 (a module runner)
    db, dest, written = history(tmp_path, [OWN, OWN])
    newest = written[-1]
    with open(newest, 'r+b') as handle:
        handle.seek(20)
        byte = handle.read(1)
        handle.seek(20)
        handle.write(bytes([byte[0] ^ 0xFF]))
    stat_now = retention.artifact_signature(type('E', (), {'members': None, 'path': newest})())
    manifest = Path(newest + '.manifest.json')
    data = json.loads(manifest.read_text())
    assert data['verification']['ok'] is True
    data['verification']['artifact_stat'] = stat_now
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
    params = {'path': str(dest), 'keep_last': 1}
    trusted, printed = run_module(tmp_path, 'backup_prune', params, check=True)
    assert trusted.get('deleted') == [written[0]], printed[-3000:]
    assert trusted['content_checked'][newest].startswith('not read'), trusted['content_checked']
    outcomes = {}
    for check in (True, False):
        done, printed = run_module(tmp_path, 'backup_prune', dict(params, verify_content=True), check=check)
        assert not done.get('failed'), printed[-3000:]
        outcomes[check] = done
        assert done['deleted'] == [newest], (check, done['deleted'])
        assert 'DAMAGED' in done['content_checked'][newest], done['content_checked']
        assert written[0] in done['kept'], done['kept']
    assert outcomes[True]['content_checked'] == outcomes[False]['content_checked']
    assert not os.path.exists(newest) and os.path.exists(written[0])
