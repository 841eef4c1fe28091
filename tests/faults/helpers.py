"""Small helpers shared by the fault cases (playbooks, databases, artifacts, small disks)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from tests.harness import playbook as harness
from tests.harness.playbook import PlaybookResult


def play(tmp_path: Path, tasks: list, extravars: Optional[dict] = None, fault=None, **kw) -> PlaybookResult:
    """Run one play of ``tasks`` on localhost (tests/harness/playbook.py's ``play``); its output and every task
    result go through fault.scan."""
    result = harness.play(tmp_path, tasks, extravars, **kw)
    if fault is not None:
        fault.scan(result.stdout, where='play output')
        fault.scan(result.task_results(), where='task results')
    return result


def conn(server) -> dict:
    """The login options of tests/harness/playbook.py's ``conn``; the fault cases give the password as ``pw``."""
    return harness.conn(server, 'pw')


def flip_byte(path: Path, where: float = 0.5) -> None:
    with open(path, 'r+b') as handle:
        handle.seek(int(os.path.getsize(path) * where))
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))


def truncate_half(path: Path) -> None:
    os.truncate(path, os.path.getsize(path) // 2)


def artifacts(dest: Path) -> List[Path]:
    """Artifacts of a catalog (everything with a manifest next to it), oldest name first."""
    return sorted(Path(str(m)[:-len('.manifest.json')]) for m in dest.glob('*.manifest.json'))


def manifests(dest: Path) -> List[str]:
    return sorted(p.name for p in dest.glob('*.manifest.json')) if dest.is_dir() else []


def sqlite_db(path: Path, rows: int, blob: int = 1024) -> None:
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE items (id INTEGER PRIMARY KEY, b BLOB)')
    conn.executemany('INSERT INTO items (b) VALUES (?)', [(os.urandom(blob),) for dummy in range(rows)])
    conn.commit()
    conn.close()


def sqlite_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute('SELECT count(*) FROM items').fetchone()[0]
    finally:
        conn.close()


def pg_rows(server, database: str, table: str = 'items') -> int:
    return int(server.sql('SELECT count(*) FROM %s' % table, database=database)[0][0])


def databases(server) -> List[str]:
    if server.kind == 'mariadb':
        return sorted(r[0] for r in server.sql('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA'))
    return sorted(r[0] for r in server.sql('SELECT datname FROM pg_database'))


@contextlib.contextmanager
def small_disk(megabytes: int = 1) -> Iterator[Path]:
    """A tmpfs of ``megabytes`` MB: a disk that fills up (needs root)."""
    mount = tempfile.mkdtemp(prefix='opsready-fault-disk-')
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%dm' % megabytes, 'tmpfs', mount],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        os.rmdir(mount)
        pytest.skip('cannot mount a small tmpfs (needs root): %s' % proc.stderr.decode().strip())
    try:
        yield Path(mount)
    finally:
        subprocess.run(['umount', '-l', mount], check=False)
        os.rmdir(mount)


def children(pid: int) -> List[int]:
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as handle:
            direct = [int(x) for x in handle.read().split()]
    except OSError:
        return []
    found = list(direct)
    for child in direct:
        found += children(child)
    return found


def comm_argv(pid: int) -> List[bytes]:
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return handle.read().split(b'\0')
    except OSError:
        return []


def module_pids(module: str, under: str) -> List[int]:
    """The processes of ``module`` (its AnsiballZ wrapper's name) holding something under ``under`` open: this test's
    run only. Every process of that module on the machine would include a sibling test's on another xdist worker,
    which then dies with rc -9."""
    found = []
    marker = ('AnsiballZ_%s' % module).encode()
    for pid in filter(str.isdigit, os.listdir('/proc')):
        if not any(marker in part for part in comm_argv(int(pid))):
            continue
        try:
            targets = [os.readlink('/proc/%s/fd/%s' % (pid, fd)) for fd in os.listdir('/proc/%s/fd' % pid)]
        except OSError:
            continue
        if any(t == under or t.startswith(under.rstrip('/') + '/') for t in targets):
            found.append(int(pid))
    return found


def parent_of(pid: int) -> int:
    with open('/proc/%d/stat' % pid) as handle:
        return int(handle.read().rsplit(')', 1)[1].split()[1])


def unprivileged_python() -> str:
    """An interpreter a test user can start: the checkout's .venv may sit in a directory only root can enter
    (a fresh clone under a 0700 mktemp directory), so racers run by another user use the system Python (their
    scripts need the standard library only)."""
    import shutil
    import sys
    for candidate in ('/usr/bin/python3', shutil.which('python3') or '', getattr(sys, '_base_executable', '')):
        if candidate and os.access(candidate, os.X_OK) and not candidate.startswith(('/root', '/tmp')):
            return candidate
    return sys.executable
