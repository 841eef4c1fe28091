"""Fault matrix, hostile inputs: special files and huge inputs in every path option of every module.

Each case runs one module directly (``python -m ...modules.X args.json``, the way Ansible runs it on a
host) with a timeout, and gives one path option one of: a FIFO (a reader blocks forever), /dev/zero
and /dev/urandom (never end), a directory where a file is expected, a symlink loop, a symlink to
nothing, a 64 GiB sparse file where a small JSON/manifest/identity file is expected. The same
things are planted as a manifest inside a backup catalog. Expected: a clear error that names the path
and says what it is, within seconds; no hang, no traceback, no memory growth, nothing written.

The second part plants symlinks where root writes into a directory someone else controls (a history
file, an incident store, a textfile, a report): root must not append to or replace the file the link
points to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
TIMEOUT = 20.0          # a hang is anything longer: the case fails (the module is killed)
QUICK = 10.0            # "within seconds" on a loaded 2-core machine (typically well under 1 s)
RSS_LIMIT_KIB = 300 * 1024
KINDS = ['fifo', 'dev-zero', 'dev-urandom', 'directory', 'symlink-loop', 'dangling-symlink', 'sparse-64GiB']
# What the message must say about each kind (any of the words).
SAYS = {'fifo': ('FIFO',), 'dev-zero': ('character device',), 'dev-urandom': ('character device',),
        'directory': ('directory',), 'symlink-loop': ('symlink loop', 'is a symlink'),
        'dangling-symlink': ('does not exist', 'is a symlink'), 'sparse-64GiB': ('more than', 'MiB')}
STAMP = '20261129T004512123456Z'


def plant(kind: str, path: Path) -> str:
    """Put the hostile thing ``kind`` at ``path``; returns the path to give the module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'dev-zero':
        path.symlink_to('/dev/zero')
    elif kind == 'dev-urandom':
        path.symlink_to('/dev/urandom')
    elif kind == 'directory':
        path.mkdir()
    elif kind == 'symlink-loop':
        path.symlink_to(path.name + '.other')
        path.with_name(path.name + '.other').symlink_to(path.name)
    elif kind == 'dangling-symlink':
        path.symlink_to(path.name + '.nowhere')
    elif kind == 'sparse-64GiB':
        with open(path, 'wb') as handle:
            handle.truncate(64 * 1024 ** 3)
    return str(path)


def direct(kind: str, path: Path) -> str:
    """The path itself for /dev/zero and /dev/urandom (no link in between), else plant()."""
    if kind == 'dev-zero':
        return '/dev/zero'
    if kind == 'dev-urandom':
        return '/dev/urandom'
    return plant(kind, path)


def tree(root: Path) -> Dict[str, Tuple[int, int]]:
    """Every name under root with its (size, mtime_ns), links not followed: what "nothing written" compares."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            found[os.path.relpath(full, root)] = (st.st_size, st.st_mtime_ns)
    return found


def run_module(module: str, args: dict, workdir: Path) -> Tuple[dict, float, int, str]:
    """(result, seconds, max RSS KiB, stderr) of one module run; pytest.fail when it hangs."""
    argfile = workdir.parent / ('args-%s-%d.json' % (module, time.monotonic_ns()))
    argfile.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=False)}))
    env = dict(os.environ, PYTHONPATH=str(REPO / 'build'), LC_ALL='C.UTF-8')
    start = time.monotonic()
    proc = subprocess.Popen([PYTHON, '-m', 'ansible_collections.opsready.operations.plugins.modules.%s' % module,
                             str(argfile)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            cwd=str(workdir.parent), env=env)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail('%s hung: no answer in %.0f s' % (module, TIMEOUT))
    seconds = time.monotonic() - start
    # ru_maxrss of this very child: os.wait4 already ran inside communicate(), so read /proc? Not
    # possible after exit; RUSAGE_CHILDREN is the maximum over all children so far, an upper bound.
    import resource
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    text = out.decode(errors='replace').strip()
    try:
        result = json.loads(text[text.index('{'):]) if '{' in text else {}
    except ValueError:
        result = {'unparsed': text[-2000:]}
    return result, seconds, rss, err.decode(errors='replace')


def check(fault, module: str, args: dict, workdir: Path, named: Optional[str], kind: Optional[str],
          must_fail: bool = True,
          ignore: Tuple[str, ...] = ()) -> dict:
    before = tree(workdir)
    result, seconds, rss, stderr = run_module(module, args, workdir)
    after = tree(workdir)
    written = sorted(k for k in set(after) - set(before) if not k.startswith(ignore)) + sorted(
        k for k in before if k in after and after[k] != before[k] and not k.startswith(ignore))
    msg = str(result.get('msg', ''))
    fault.observed('%s in %.1f s, RSS %d MiB: %s' % ('failed' if result.get('failed') else 'ok', seconds, rss // 1024,
                                                     (msg or json.dumps(result)[:200])[:200]))
    fault.lost(files=len(written))
    blob = json.dumps(result) + stderr
    assert 'Traceback' not in blob and 'unparsed' not in result, 'traceback or no JSON: %s %s' % (blob[-1500:], stderr)
    assert seconds < QUICK, 'took %.1f s' % seconds
    assert rss < RSS_LIMIT_KIB, 'memory grew to %d MiB' % (rss // 1024)
    assert not written, 'written: %s' % written
    if must_fail:
        assert result.get('failed'), 'not refused: %s' % json.dumps(result)[:600]
        assert named and named in msg, 'message does not name %s: %s' % (named, msg)
        if kind is not None:
            assert any(word in msg for word in SAYS[kind]), 'message does not say it is %s: %s' % (kind, msg)
    elif named is not None:
        assert named in blob, 'result does not mention %s: %s' % (named, blob[:600])
    return result


def sqlite_catalog(dest: Path) -> Path:
    """A real catalog with one SQLite backup made by db_backup."""
    import sqlite3
    dest.mkdir(parents=True, exist_ok=True)
    db = dest.parent / 'src.db'
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE t (x)')
    conn.execute('INSERT INTO t VALUES (1)')
    conn.commit()
    conn.close()
    return db


# --- 1. a path option that names a file: the hostile thing is the path itself -----------------------------
# (module, option, other args, where the thing goes relative to the case dir)
# db_restore and file_restore read identity_file only once an encrypted backup is chosen: the same
# loader (encryption.load_identities) is the one backup_verify runs first, so that row covers it.
FILE_OPTIONS: List[Tuple[str, str, dict]] = [
    ('backup_verify', 'identity_file', {'path': '{work}/catalog', 'deep': True}),
    ('file_restore', 'src', {'dest': '{work}/out'}),     # a directory is a valid src (a catalog)
    ('db_restore', 'src', {'engine': 'sqlite', 'database': '{work}/restored.db'}),
    ('capacity_plan', 'history_path', {}),
    ('incident', 'store', {'key': 'k', 'title': 't', 'state': 'open', 'severity': 3}),
    ('health_check', 'history_path', {'checks': [], 'fail_on': 'never'}),
    ('health_check', 'textfile_path', {'checks': [], 'fail_on': 'never'}),
    ('patch_report', 'path', {'run_id': 'r1', 'state': 'recorded', 'host': 'h1', 'entry': {'status': 'patched'}}),
    ('backup_metrics', 'textfile', {'backup_dir': '{work}/catalog'}),
]


def fill(args: dict, work: Path) -> dict:
    return {k: (v.format(work=work) if isinstance(v, str) else v) for k, v in args.items()}


@pytest.mark.fast
@pytest.mark.fault(fault='{kind} as {module}.{option}', component='{module}',
                   expected='refused naming the path and what it is; no hang, nothing written')
@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('module,option,extra', FILE_OPTIONS, ids=['%s-%s' % (m, o) for m, o, _e in FILE_OPTIONS])
def test_special_file_in_a_file_option(tmp_path, fault, module, option, extra, kind):
    if kind == 'directory' and option == 'src':
        pytest.skip('a directory is what src expects (a catalog)')
    work = tmp_path / 'work'
    (work / 'catalog').mkdir(parents=True)
    args = fill(extra, work)
    if option.startswith('textfile'):   # must end in .prom: /dev/zero is reached through a link so named
        path = plant(kind, work / ('hostile-%s.prom' % option))
    else:
        path = direct(kind, work / ('hostile-%s' % option))
    args[option] = path
    # A src that is a regular file is taken as an archive: refused for its missing manifest, unread.
    said = None if (option == 'src' and kind == 'sparse-64GiB') else kind
    check(fault, module, args, work, path, said, ignore=('hostile-',))


# --- 2. a hostile manifest planted in a catalog directory ---------------------------------------------
CATALOG_READERS: List[Tuple[str, dict]] = [
    ('backup_info', {'path': '{work}/catalog'}),
    ('backup_verify', {'path': '{work}/catalog'}),
    ('backup_prune', {'path': '{work}/catalog', 'keep_last': 1}),
    ('backup_metrics', {'backup_dir': '{work}/catalog', 'textfile': '{work}/out.prom'}),
    ('db_restore', {'engine': 'sqlite', 'src': '{work}/catalog', 'database': '{work}/restored.db'}),
    ('file_restore', {'src': '{work}/catalog', 'dest': '{work}/out'}),
]
MANIFEST_KINDS = [k for k in KINDS if k != 'dev-urandom']


@pytest.mark.fast
@pytest.mark.fault(fault='manifest is {kind} in the catalog of {module}', component='{module}',
                   expected='no hang, no traceback, the manifest named, nothing written')
@pytest.mark.parametrize('kind', MANIFEST_KINDS)
@pytest.mark.parametrize('module,extra', CATALOG_READERS, ids=[m for m, _e in CATALOG_READERS])
def test_special_manifest_in_a_catalog(tmp_path, fault, module, extra, kind):
    work = tmp_path / 'work'
    catalog = work / 'catalog'
    catalog.mkdir(parents=True)
    name = 'app-full-%s.tar.zst' % STAMP
    (catalog / name).write_bytes(b'x' * 64)
    plant(kind, catalog / (name + '.manifest.json'))
    args = fill(extra, work)
    # backup_info and backup_verify list broken manifests by name; the others skip the entry (prune
    # never deletes it, metrics do not count it, restores do not choose it): no hang, nothing written.
    named = name + '.manifest.json' if module in ('backup_info', 'backup_verify') else None
    check(fault, module, args, work, named, None, must_fail=False,
          ignore=('out.prom',) if module == 'backup_metrics' else ())


# --- 3. the path option itself names a catalog directory or a single artifact ---------------------------
PATH_READERS: List[Tuple[str, str, dict]] = [
    ('backup_info', 'path', {}),
    ('backup_verify', 'path', {}),
    ('backup_prune', 'path', {'keep_last': 1}),
    ('backup_metrics', 'backup_dir', {'textfile': '{work}/out.prom'}),
    ('backup_copy', 'src', {'backend': 'ssh', 'ssh_host': 'backup.invalid', 'remote_path': '/srv/b'}),
    ('drill_report', 'report_dir', {'started': '2026-11-29T00:00:00Z',
                                    'databases': [{'name': 'app', 'engine': 'sqlite', 'source': 'a.db'}]}),
]
DIR_KINDS = [k for k in KINDS if k != 'directory']


@pytest.mark.fast
@pytest.mark.fault(fault='{kind} as {module}.{option}', component='{module}',
                   expected='refused naming the path and what it is; no hang, nothing written')
@pytest.mark.parametrize('kind', DIR_KINDS)
@pytest.mark.parametrize('module,option,extra', PATH_READERS, ids=['%s-%s' % (m, o) for m, o, _e in PATH_READERS])
def test_special_file_in_a_directory_option(tmp_path, fault, module, option, extra, kind):
    work = tmp_path / 'work'
    work.mkdir()
    args = fill(extra, work)
    path = direct(kind, work / ('hostile-%s' % option))
    args[option] = path
    check(fault, module, args, work, path, None, ignore=('hostile-',))
