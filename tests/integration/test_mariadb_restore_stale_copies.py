"""MariaDB: a db_restore killed while it loads the dump (SIGKILL of its process group) leaves its temporary
database ``<target>__opsready_restore_<id>``. It carries a COMMENT naming its target from its creation on; the
next run into that target (a restore, or ``state: absent``), under the target's lock, drops it and names it in
``dropped_stale``; a look-alike without the marker, or with another target's, survives; the restored target gets
the dump's comment, not the marker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: E402
    ConnectionParams)
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import (  # noqa: E402
    copy_marker)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402

RUNNER = '''
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore
host, port, user, password, src, source, target = sys.argv[2:9]
run_restore(RestoreRequest(engine='mariadb', src=src, source_database=source, database=target, replace=True),
            ConnectionParams(host=host, port=int(port), user=user, password=password))
'''


def params(server):
    return ConnectionParams(host=server.host, port=server.port, user=server.user, password=server.password)


def restore(server, src, source, target, **kw):
    return run_restore(RestoreRequest(engine='mariadb', src=str(src), source_database=source, database=target,
                                      **kw), params(server))


def names(server) -> list:
    return sorted(r[0] for r in server.sql('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA'))


def comment(server, name: str) -> str:
    return server.sql("SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '%s'" % name)[0][0]


def killed_mid_load(server, tmp_path, source: str, target: str) -> str:
    script = tmp_path / 'run.py'
    script.write_text(RUNNER)
    before = set(names(server))
    proc = subprocess.Popen([sys.executable, str(script), str(REPO / 'build'), server.host, str(server.port),
                             server.user, server.password, str(tmp_path / 'b'), source, target],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        copies: list = []
        while not copies:
            assert proc.poll() is None, 'the restore ended before it could be killed: %s' % proc.stderr.read()
            assert time.monotonic() < deadline, 'no temporary copy appeared'
            copies = [n for n in set(names(server)) - before if n.startswith(target + '__opsready_restore_')]
            time.sleep(0.02)
        time.sleep(0.3)   # into the load
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()
    assert copies[0] in names(server), 'the killed run left no copy: nothing to prove'
    return copies[0]


def test_a_killed_restore_copy_is_dropped_by_the_next_run_and_look_alikes_survive(maria_db, tmp_path):
    server = maria_db.server
    maria_db.sql("CREATE TABLE items (id INT PRIMARY KEY, v TEXT); "
                 "ALTER DATABASE `%s` COMMENT 'the shop''s data'" % maria_db.name)
    for start in range(0, 300000, 50000):
        maria_db.sql('INSERT INTO items SELECT seq, REPEAT(MD5(seq), 4) FROM seq_%d_to_%d' % (start + 1, start + 50000))
    run_backup(get_engine('mariadb', params(server)),
               BackupOptions(kind='full', dest=str(tmp_path / 'b'), database=maria_db.name), verify=False)
    scratch = 'drill_%s' % os.urandom(4).hex()
    look_alikes = {scratch + '__opsready_restore_deadbeef': None,
                   scratch + '__opsready_restore_0badc0de': copy_marker('other')}
    try:
        for name, text in look_alikes.items():
            server.sql('CREATE DATABASE `%s`' % name)
            if text is not None:
                server.sql("ALTER DATABASE `%s` COMMENT '%s'" % (name, text.replace("'", "''")))
        # what a swap killed half-way moved aside (maybe the only old tables): reported, never dropped
        left = killed_mid_load(server, tmp_path, maria_db.name, scratch)
        assert comment(server, left) == copy_marker(scratch)
        aside = scratch + '__opsready_old_12345678'
        server.sql('CREATE DATABASE `%s`' % aside)
        server.sql("ALTER DATABASE `%s` COMMENT '%s'" % (aside, copy_marker(scratch, 'old').replace("'", "''")))
        result = restore(server, tmp_path / 'b', maria_db.name, scratch, replace=True)
        assert result['dropped_stale'] == [left] and result['kept_stale'] == [aside]
        assert [w for w in result['warnings'] if aside in w and 'check' in w]
        present = names(server)
        assert left not in present and all(n in present for n in look_alikes) and aside in present
        assert server.sql('SELECT count(*) FROM `%s`.items' % scratch)[0][0] == '300000'
        assert comment(server, scratch) == "the shop's data"

        left = killed_mid_load(server, tmp_path, maria_db.name, scratch)
        dropped = restore(server, tmp_path / 'b', maria_db.name, scratch, state='absent')
        assert dropped['dropped_stale'] == [left] and dropped['changed'] is True and dropped['kept_stale'] == [aside]
        present = names(server)
        assert scratch not in present and left not in present and all(n in present for n in look_alikes)
    finally:
        for name in names(server):
            if name.startswith(scratch):
                server.sql('DROP DATABASE IF EXISTS `%s`' % name)
