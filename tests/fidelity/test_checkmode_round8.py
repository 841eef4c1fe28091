"""Fidelity, check mode against the real run (checkmode red team, round 8): db_restore in check mode must foresee
what the real run reports and refuses, on real servers, changing nothing.

* PostgreSQL ``@globals`` onto a server whose roles exist: the real run names the privileges on parameters it left
  out (``parameter_warnings``); check mode said nothing of them.
* MariaDB point in time whose replay needs privileges lent to the temporary copy: the real run refuses a login
  without GRANT OPTION before loading anything (``probe_lending``); check mode said the restore would succeed.
* MariaDB without stop_at: ``point_reached`` was a future event stamp from the catalog.
* backup_copy to a real SSH host (push with retention there, then pull): check mode against the real run.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore  # noqa: E402
from tests.harness.sshd import SshFleet  # noqa: E402
from tests.integration.test_backup_copy import synthetic_catalog  # noqa: E402
from tests.unit.plugins.modules.test_conformance_round7 import run_module, snapshot  # noqa: E402

LOGIN_PASSWORD = 'r8-pw!xyz'   # a test account's password on a private test server


def conn(server, user=None, password=None):
    return ConnectionParams(host=server.host, port=server.port, user=user or server.user,
                            password=password or server.password)


def roles(server):
    return sorted(r[0] for r in server.sql('SELECT rolname FROM pg_roles'))


def test_globals_check_mode_names_the_parameter_privileges_the_run_names(postgres_server, tmp_path):
    pg = postgres_server
    role = 'cm8_param_%s' % uuid.uuid4().hex[:6]
    pg.sql('CREATE ROLE %s; GRANT SET ON PARAMETER log_statement TO %s' % (role, role))
    try:
        engine = get_engine('postgresql', conn(pg))
        run_backup(engine, BackupOptions(kind='full', dest=str(tmp_path / 'b'), database='postgres',
                                         include_globals=True))
        pg.sql('REVOKE SET ON PARAMETER log_statement FROM %s' % role)
        before = roles(pg)

        def restore(check_mode):
            return run_restore(RestoreRequest(engine='postgresql', src=str(tmp_path / 'b'), source_database='@globals',
                                              database='postgres', check_mode=check_mode), conn(pg))

        checked = restore(True)
        assert roles(pg) == before
        real = restore(False)
        said = [w for w in real.get('warnings') or [] if 'PARAMETER' in w]
        assert len(said) == 1 and role in said[0], real.get('warnings')
        assert [w for w in checked.get('warnings') or [] if 'PARAMETER' in w] == said, checked
        assert checked['changed'] == real['changed']
        for key in ('roles_created', 'roles_existing', 'memberships_granted', 'tablespaces_created'):
            assert checked['target'][key] == real['target'][key], key
    finally:
        pg.sql('REVOKE ALL ON PARAMETER log_statement FROM %s; DROP ROLE IF EXISTS %s' % (role, role))


def schemas(server):
    return sorted(r[0] for r in server.sql('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA'))


def grant_rows(server):
    return server.sql('SELECT * FROM mysql.db ORDER BY Host, Db, User')


def test_pitr_check_mode_foresees_the_lending_refusal_without_grant_option(mariadb_factory, tmp_path):
    """Check mode of a point-in-time restore whose replay needs privileges lent to the temporary copy (a trigger's
    definer holds privileges on the source database only), as a login with every privilege but GRANT OPTION: the
    real run refuses before loading anything (probe_lending); check mode said the restore would go through. It now
    refuses the same way, naming GRANT OPTION and the definer, without writing anything; with GRANT OPTION both
    go through."""
    server = mariadb_factory(extra_conf={'binlog_format': 'MIXED'})
    server.sql("CREATE USER 'rs'@'%%' IDENTIFIED BY '%s'; GRANT ALL PRIVILEGES ON *.* TO 'rs'@'%%'; "
               "CREATE USER 'app'@'%%'; CREATE DATABASE lg; USE lg; CREATE TABLE t (id INT PRIMARY KEY, v INT); "
               "GRANT SELECT, INSERT, UPDATE, TRIGGER ON lg.* TO 'app'@'%%'; "
               "CREATE DEFINER = 'app'@'%%' TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.id * 10"
               % LOGIN_PASSWORD)
    engine = get_engine('mariadb', conn(server))
    run_backup(engine, BackupOptions(kind='full', dest=str(tmp_path / 'b'), database='lg'))
    time.sleep(1.1)
    server.sql('USE lg; INSERT INTO t (id) VALUES (1)')
    time.sleep(1.1)
    run_backup(engine, BackupOptions(kind='log', dest=str(tmp_path / 'b'), database='lg'))

    def restore(check_mode):
        return run_restore(RestoreRequest(engine='mariadb', src=str(tmp_path / 'b'), source_database='lg',
                                          database='lg_r', check_mode=check_mode),
                           conn(server, 'rs', LOGIN_PASSWORD))

    before = (schemas(server), grant_rows(server))
    outcomes = {}
    for check_mode in (True, False):
        with pytest.raises(OpsReadyError) as failed:
            restore(check_mode)
        outcomes[check_mode] = failed.value
        assert (schemas(server), grant_rows(server)) == before, check_mode
    for refusal in outcomes.values():
        assert 'GRANT OPTION' in refusal.message and 'app@%' in refusal.message, refusal.message
        assert refusal.details.get('missing_privilege') == 'GRANT OPTION', refusal.details
        assert refusal.details.get('accounts') == ['app@%'], refusal.details
    server.sql("GRANT ALL PRIVILEGES ON *.* TO 'rs'@'%' WITH GRANT OPTION")
    checked = restore(True)
    assert schemas(server) == before[0]
    real = restore(False)
    assert server.sql('SELECT * FROM lg_r.t') == [('1', '10')]
    assert checked['changed'] == real['changed'] and checked['chain_ids'] == real['chain_ids']


def test_point_reached_without_stop_at_is_not_a_future_stamp(mariadb_factory, tmp_path):
    """A session that set its own clock (SET TIMESTAMP a day ahead) wrote a binary log event stamped tomorrow; the
    catalog's window ends at the largest stamp. A restore without ``stop_at`` replays everything and reported that
    stamp (tomorrow) as ``point_reached``: a drill measured an RPO below zero. It now reports the point the replay
    reached (``recovered_point``, no later than the log backup), and says why; check mode reports the same."""
    server = mariadb_factory()
    server.sql('CREATE DATABASE pf; USE pf; CREATE TABLE t (id INT PRIMARY KEY)')
    engine = get_engine('mariadb', conn(server))
    run_backup(engine, BackupOptions(kind='full', dest=str(tmp_path / 'b'), database='pf'))
    time.sleep(1.1)
    server.sql('USE pf; INSERT INTO t VALUES (1); SET timestamp = UNIX_TIMESTAMP() + 86400; INSERT INTO t VALUES (2); '
               'SET timestamp = DEFAULT; INSERT INTO t VALUES (3)')
    time.sleep(1.1)
    log = run_backup(engine, BackupOptions(kind='log', dest=str(tmp_path / 'b'), database='pf'))['manifest']

    def restore(check_mode):
        return run_restore(RestoreRequest(engine='mariadb', src=str(tmp_path / 'b'), source_database='pf',
                                          database='pf_r', check_mode=check_mode), conn(server))

    checked = restore(True)
    real = restore(False)
    assert server.sql('SELECT id FROM pf_r.t ORDER BY id') == [('1',), ('2',), ('3',)]
    assert real['point_reached'] <= log['finished'], (real['point_reached'], log)
    assert real['point_reached'] == real['recovered_point']['at'], real
    assert any('SET TIMESTAMP' in w for w in real.get('warnings', [])), real.get('warnings')
    assert checked['point_reached'] == real['point_reached'], (checked['point_reached'], real['point_reached'])
    stamped = [w for w in real['warnings'] if 'SET TIMESTAMP' in w]
    assert [w for w in checked.get('warnings', []) if 'SET TIMESTAMP' in w] == stamped


def test_backup_copy_over_ssh_check_mode_matches_the_real_run(tmp_path):
    """Push with retention at the destination (keep_last=1: the older chains go there), onto a host that already
    holds part of the catalog, then pull into an empty directory: check mode reports the uploads, deletions and
    downloads the real run then does, and changes nothing on either side. Regression guard (passed before)."""
    local = tmp_path / 'backups'
    ids = synthetic_catalog(local, [20, 10])
    remote = tmp_path / 'offsite-disk' / 'db01'
    with SshFleet(['offsite']) as fleet:
        host = fleet.hosts[0]
        ssh = {'backend': 'ssh', 'ssh_host': host.address, 'ssh_port': host.port, 'ssh_user': 'root',
               'ssh_key': str(fleet.client_key), 'ssh_known_hosts': str(fleet.known_hosts),
               'remote_path': str(remote), 'src': str(local)}
        first, printed = run_module(tmp_path, 'backup_copy', ssh)
        assert first.get('changed') is True and sorted(first['uploaded']) == sorted(ids), printed[-3000:]
        ids += synthetic_catalog(local, [1])
        keys = ('uploaded', 'already_present', 'deleted', 'manifests_updated', 'downloaded')
        for params, watched in ((dict(ssh, keep_last=1), tmp_path),
                                (dict(ssh, mode='pull', src=str(tmp_path / 'fetched')), tmp_path)):
            before = {k: v for k, v in snapshot(watched).items() if 'args-' not in k}
            checked, printed = run_module(tmp_path, 'backup_copy', params, check=True, diff=True)
            assert not checked.get('failed'), printed[-3000:]
            assert {k: v for k, v in snapshot(watched).items() if 'args-' not in k} == before, \
                'check mode changed the disk (%s)' % params.get('mode', 'push')
            real, printed = run_module(tmp_path, 'backup_copy', params, diff=True)
            assert not real.get('failed'), printed[-3000:]
            assert checked['changed'] == real['changed'], (checked, real)
            for key in keys:
                assert checked.get(key) == real.get(key), (key, checked, real)
            assert checked.get('diff') == real.get('diff')
        assert real['downloaded'] and (tmp_path / 'fetched' / real['downloaded'][0]).exists(), real
