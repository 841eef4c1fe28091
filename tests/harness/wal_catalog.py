"""A WAL catalog as the backup role sets it up for PostgreSQL's archive_command, for tests that archive real WAL.

The postgres service user (the server's archive_command runs as it) must write the catalog and read the helper;
the test (root) owns both. ``wal_catalog`` makes them in a directory of their own and removes it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from typing import Iterator, NamedTuple, Optional

from tests.harness.playbook import REPO

HELPER = REPO / 'plugins' / 'module_utils' / 'engines' / 'postgresql' / 'wal_archive.py'


class WalCatalog(NamedTuple):
    dest: str       # the catalog: postgres's group may write it (root owns it)
    helper: str     # a copy of the archive helper postgres can read (archive_command runs it)
    scratch: Optional[str]  # with scratch=True: a directory recovered servers (run as postgres) can reach


@contextlib.contextmanager
def wal_catalog(prefix: str, scratch: bool = False) -> Iterator[WalCatalog]:
    """A catalog, the helper and (``scratch``) a scratch directory under a new temporary directory named
    ``prefix``...; all removed on exit."""
    top = tempfile.mkdtemp(prefix=prefix)
    try:
        os.chmod(top, 0o711)
        dest = os.path.join(top, 'catalog')
        os.mkdir(dest)
        os.chmod(dest, 0o770)
        helper = os.path.join(top, 'pg_wal_archive.py')
        shutil.copy(HELPER, helper)
        os.chmod(helper, 0o644)
        if os.geteuid() == 0:
            os.chown(dest, -1, int(subprocess.check_output(['id', '-g', 'postgres']).strip()))
        scratch_dir = None
        if scratch:
            scratch_dir = os.path.join(top, 'scratch')
            os.mkdir(scratch_dir)
            os.chmod(scratch_dir, 0o711)  # the recovered servers run as postgres: it must reach their directories
        yield WalCatalog(dest, helper, scratch_dir)
    finally:
        shutil.rmtree(top, ignore_errors=True)
