"""A PostgreSQL db_restore killed while it loads (SIGKILL of its process group: no finally, no clean-up) leaves
its temporary copy ``<target>__opsready_restore_<id>``, a full copy of the data. The copy carries a COMMENT
naming its target from its creation on; the next run into that target (a restore, or the ``state: absent`` a
drill's clean-up runs), under the target's lock, drops every such copy and names it in ``dropped_stale``. A
database that merely looks like one (the name without the marker, or the marker of another target) survives,
and the restored target ends with the comment recorded at backup time, never the marker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.restore import (  # noqa: E402
    copy_marker)
from tests.integration.test_pg_restore_streamed_checksum import backup, restore  # noqa: E402

RUNNER = '''
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore
host, port, user, password, src, source, target = sys.argv[2:9]
run_restore(RestoreRequest(engine='postgresql', src=src, source_database=source, database=target, replace=True),
            ConnectionParams(host=host, port=int(port), user=user, password=password))
'''


def qi(name: str) -> str:
    return '"%s"' % name.replace('"', '""')


def ql(text: str) -> str:
    return "'%s'" % text.replace("'", "''")


def names(server) -> list:
    return sorted(r[0] for r in server.sql('SELECT datname FROM pg_database', database='postgres'))


def comment(server, name: str) -> str:
    return server.sql("SELECT coalesce(shobj_description(oid, 'pg_database'), '<none>') FROM pg_database "
                      "WHERE datname = %s" % ql(name), database='postgres')[0][0]


def killed_mid_load(server, tmp_path, source: str, target: str) -> str:
    """Start a restore into ``target`` in a process group of its own, SIGKILL the group once its temporary copy
    exists (pg_restore loading), and return the copy's name, left behind."""
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


def test_a_killed_restore_copy_is_dropped_by_the_next_run_and_look_alikes_survive(pg_db, tmp_path):
    server = pg_db.server
    pg_db.sql("CREATE TABLE items (id int PRIMARY KEY, v text); "
              "INSERT INTO items SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 400000) g; "
              "COMMENT ON DATABASE %s IS 'the shop''s data'" % qi(pg_db.name))
    backup(server, pg_db.name, tmp_path / 'b')
    scratch = 'drill_%s' % os.urandom(4).hex()    # short: the copies' names keep the whole of it
    look_alikes = {scratch + '__opsready_restore_deadbeef': None,                    # the name, no marker
                   scratch + '__opsready_restore_0badc0de': copy_marker('other'),   # another target's marker
                   scratch + '__opsready_old_0badc0de': 'kept by hand'}
    try:
        for name, text in look_alikes.items():
            server.sql('CREATE DATABASE %s' % qi(name), database='postgres')
            if text is not None:
                server.sql('COMMENT ON DATABASE %s IS %s' % (qi(name), ql(text)), database='postgres')
        # a database named otherwise that bears the marker is not a copy either
        server.sql('CREATE DATABASE %s' % qi(scratch + '_copy'), database='postgres')
        server.sql('COMMENT ON DATABASE %s IS %s' % (qi(scratch + '_copy'), ql(copy_marker(scratch))),
                   database='postgres')

        left = killed_mid_load(server, tmp_path, pg_db.name, scratch)
        assert comment(server, left) == copy_marker(scratch)
        # the old contents a swap renamed aside (one transaction: the run only had the drop left) go too
        aside = scratch + '__opsready_old_12345678'
        server.sql('CREATE DATABASE %s' % qi(aside), database='postgres')
        server.sql('COMMENT ON DATABASE %s IS %s' % (qi(aside), ql(copy_marker(scratch, 'old'))), database='postgres')
        result = restore(server, tmp_path / 'b', pg_db.name, scratch, replace=True)
        assert sorted(result['dropped_stale']) == sorted([left, aside]), result.get('warnings')
        present = names(server)
        assert left not in present and aside not in present
        assert all(n in present for n in look_alikes) and scratch + '_copy' in present
        assert server.sql('SELECT count(*) FROM items', database=scratch)[0][0] == '400000'
        assert comment(server, scratch) == "the shop's data"     # the recorded comment, not the marker
        # a database without a comment restores without one (the marker does not stay), over an existing one too
        pg_db.sql('COMMENT ON DATABASE %s IS NULL; TRUNCATE items' % qi(pg_db.name))
        backup(server, pg_db.name, tmp_path / 'b2')
        for _run in range(2):
            restore(server, tmp_path / 'b2', pg_db.name, scratch + '_plain', replace=True)
            assert comment(server, scratch + '_plain') == '<none>'

        # The drill's clean-up (state=absent of its scratch database) drops a killed run's copy too.
        left = killed_mid_load(server, tmp_path, pg_db.name, scratch)
        dropped = restore(server, tmp_path / 'b', pg_db.name, scratch, state='absent')
        assert dropped['dropped_stale'] == [left] and dropped['changed'] is True
        present = names(server)
        assert scratch not in present and left not in present
        assert all(n in present for n in look_alikes) and scratch + '_copy' in present
        assert not [n for n in present if n.startswith(scratch + '__opsready') and n not in look_alikes]
    finally:
        for name in list(look_alikes) + [scratch + '_copy', scratch, scratch + '_plain']:
            server.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name), database='postgres')
        for name in names(server):
            if name.startswith(scratch + '__opsready'):
                server.sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % qi(name), database='postgres')
