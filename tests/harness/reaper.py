"""Reap orphaned server processes in tests (this container's PID 1 does not).

``pg_ctl start`` (what db_failover runs) detaches the postmaster; when it is killed (``kill -9``, the failover
drills) it stays a zombie unless some ancestor reaps it, and PostgreSQL then refuses to start again in that
data directory ("lock file postmaster.pid already exists": a zombie's pid passes ``kill(pid, 0)``). On a real
host systemd or init reaps it. ``start_reaper()`` makes this process a child subreaper (orphans of every
descendant, ansible-playbook's modules included, become our children) and reaps zombie postgres/pgbouncer
children in a daemon thread. Only those programs: the harness's own Popen children are left to Popen.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
_NAMES = (b'postgres', b'pgbouncer', b'mariadbd', b'mysqld')
_started = False
_lock = threading.Lock()


def _reap_once() -> None:
    me = os.getpid()
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat', 'rb') as fh:
                stat = fh.read()
        except OSError:
            continue
        lpar, rpar = stat.find(b'('), stat.rfind(b')')
        fields = stat[rpar + 2:].split()
        if len(fields) < 2 or fields[0] != b'Z' or int(fields[1]) != me:
            continue
        if stat[lpar + 1:rpar] not in _NAMES:
            continue
        try:
            os.waitpid(int(entry), os.WNOHANG)
        except ChildProcessError:
            pass


def start_reaper() -> None:
    global _started
    with _lock:
        if _started:
            return
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

        def loop() -> None:
            while True:
                _reap_once()
                time.sleep(0.05)
        threading.Thread(target=loop, name='zombie-reaper', daemon=True).start()
        _started = True
