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
import resource
import subprocess
import sys
import threading
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


def _limit_memory() -> None:
    """Child side: at most 2 GiB of address space, so code that reads /dev/zero into memory fails
    (MemoryError, a traceback the case reports) instead of taking the shared test host down."""
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024 ** 3, 2 * 1024 ** 3))


def run_module(module: str, args: dict, workdir: Path) -> Tuple[dict, float, int, str]:
    """(result, seconds, max RSS KiB, stderr) of one module run; pytest.fail when it hangs."""
    argfile = workdir.parent / ('args-%s-%d.json' % (module, time.monotonic_ns()))
    argfile.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=False)}))
    env = dict(os.environ, PYTHONPATH=str(REPO / 'build'), LC_ALL='C.UTF-8')
    start = time.monotonic()
    proc = subprocess.Popen([PYTHON, '-m', 'ansible_collections.opsready.operations.plugins.modules.%s' % module,
                             str(argfile)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            cwd=str(workdir.parent), env=env, preexec_fn=_limit_memory)
    # Reaped with wait4 (not communicate) to read this child's own peak RSS; pipes drained by threads.
    streams: Dict[str, bytes] = {}
    drains = [threading.Thread(target=lambda n, s: streams.__setitem__(n, s.read()), args=(n, s), daemon=True)
              for n, s in (('out', proc.stdout), ('err', proc.stderr))]
    for thread in drains:
        thread.start()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - start > TIMEOUT:
            proc.kill()
            os.wait4(proc.pid, 0)
            pytest.fail('%s hung: no answer in %.0f s' % (module, TIMEOUT))
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    for thread in drains:
        thread.join(10)
    rss = usage.ru_maxrss
    out, err = streams.get('out', b''), streams.get('err', b'')
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
    ('db_backup', 'dest', {'engine': 'sqlite', 'database': '{work}/src.db'}),
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
    if module == 'db_backup':
        sqlite_catalog(work / 'unused')   # writes work/src.db
    args = fill(extra, work)
    path = direct(kind, work / ('hostile-%s' % option))
    args[option] = path
    check(fault, module, args, work, path, None, ignore=('hostile-',))


# --- 4. root writes into a directory someone else controls: a link planted at the final name -----------
# (module, option, other args, file name the option points at, or None for drill_report's history)
WRITERS: List[Tuple[str, str, dict, str]] = [
    ('health_check', 'history_path', {'checks': [], 'fail_on': 'never'}, 'health.jsonl'),
    ('incident', 'store', {'key': 'k', 'title': 't', 'state': 'open', 'severity': 3}, 'incidents.jsonl'),
    ('health_check', 'textfile_path', {'checks': [], 'fail_on': 'never'}, 'health.prom'),
    ('backup_metrics', 'textfile', {'backup_dir': '{work}/catalog'}, 'backup.prom'),
    ('patch_report', 'path', {'run_id': 'r1', 'state': 'recorded', 'host': 'h1', 'entry': {'status': 'patched'}},
     'patching.json'),
    ('drill_report', 'report_dir', {'started': '2026-11-29T00:00:00Z',
                                    'databases': [{'name': 'app', 'engine': 'sqlite', 'source': 'a.db'}]},
     'drills.jsonl'),
]


@pytest.mark.fast
@pytest.mark.fault(fault='{link} planted at {module}.{option}', component='{module}',
                   expected='the file the link points to is untouched (refused, or the link replaced)')
@pytest.mark.parametrize('link', ['symlink', 'hardlink'])
@pytest.mark.parametrize('module,option,extra,name', WRITERS, ids=['%s-%s' % (m, o) for m, o, _e, _n in WRITERS])
def test_planted_link_at_a_written_path(tmp_path, fault, module, option, extra, name, link):
    work = tmp_path / 'work'
    (work / 'catalog').mkdir(parents=True)
    outside = tmp_path / 'outside'
    outside.mkdir()
    victim = outside / 'victim'
    victim.write_bytes(b'{"t": 1}\n' if name.endswith('jsonl') else b'root-owned content\n')
    os.chmod(victim, 0o600)
    before = (victim.read_bytes(), os.stat(victim).st_mode, os.stat(victim).st_mtime_ns, os.stat(victim).st_nlink)
    target = work / name
    if link == 'symlink':
        target.symlink_to(victim)
    else:
        os.link(victim, target)
    args = fill(extra, work)
    args[option] = str(work) if option == 'report_dir' else str(target)
    result, seconds, rss, stderr = run_module(module, args, work)
    st = os.stat(victim)
    after = (victim.read_bytes(), st.st_mode, st.st_mtime_ns)
    fault.observed('%s in %.1f s: %s' % ('refused' if result.get('failed') else 'done', seconds,
                                         str(result.get('msg', 'link replaced' if os.path.lexists(target) and not
                                                        os.path.islink(target) else ''))[:160]))
    fault.lost(files=int(after != before[:3]))
    assert 'Traceback' not in json.dumps(result) + stderr, stderr[-1500:]
    assert after == before[:3], 'root changed %s through the %s at %s' % (victim, link, target)
    if result.get('failed'):
        assert str(target) in result['msg'], result['msg']


@pytest.mark.fast
@pytest.mark.fault(fault='{what} planted at the json_log callback path', component='json_log callback',
                   expected='the play runs; nothing is appended through it; one warning names the path')
@pytest.mark.parametrize('what', ['symlink', 'hardlink', 'fifo'])
def test_json_log_does_not_follow_a_planted_link(tmp_path, fault, what):
    from tests.faults.helpers import play
    outside = tmp_path / 'outside'
    outside.mkdir()
    victim = outside / 'victim'
    victim.write_bytes(b'root-owned content\n')
    before = (victim.read_bytes(), os.stat(victim).st_mtime_ns)
    logdir = tmp_path / 'logs'
    logdir.mkdir()
    target = logdir / 'tasks.jsonl'
    if what == 'symlink':
        target.symlink_to(victim)
    elif what == 'hardlink':
        os.link(victim, target)
    else:
        os.mkfifo(target)
    start = time.monotonic()
    result = play(tmp_path, [{'name': 'one task', 'ansible.builtin.debug': {'msg': 'hi'}}], timeout=120, envvars={
        'ANSIBLE_CALLBACKS_ENABLED': 'opsready.operations.json_log', 'OPSREADY_JSON_LOG_PATH': str(target)})
    seconds = time.monotonic() - start
    fault.observed('play rc %d in %.1f s; warning: %s' % (result.rc, seconds, 'json_log' in result.stdout))
    fault.lost(files=int((victim.read_bytes(), os.stat(victim).st_mtime_ns) != before))
    assert result.rc == 0, result.stdout[-2000:]
    assert (victim.read_bytes(), os.stat(victim).st_mtime_ns) == before, 'appended through the %s' % what
    assert str(target) in result.stdout and 'nothing more is logged' in result.stdout, result.stdout[-2000:]
