"""db_endpoint: PgBouncer repointed after a switchover, a writer through it loses nothing and lands on the new
primary; check mode and a second run change nothing."""

from __future__ import annotations

import base64

import pytest

from tests.harness.pg_writer import PgWriter
from tests.harness.pgbouncer import Bouncer
from tests.harness.playbook import run_playbook, write_playbook
from tests.harness.reaper import start_reaper
from tests.integration import conftest_replication
from tests.integration.test_db_failover import node_vars, recovery

start_reaper()
pg_cluster_factory = conftest_replication.pg_cluster_factory


@pytest.fixture
def bounced(pg_cluster_factory):
    cluster = pg_cluster_factory(standbys=1)
    bouncer = Bouncer(cluster.primary).start()
    yield cluster, bouncer
    bouncer.stop()


def endpoint_task(bouncer, node, **extra):
    args = {'path': str(bouncer.ini), 'entries': ['app'], 'host': node.host, 'port': node.port}
    args.update(extra)
    return {'name': 'repoint', 'opsready.operations.db_endpoint': args, 'register': 'ep'}


def test_switchover_then_pgbouncer_repointed_under_a_writer(bounced, tmp_path):
    c, bouncer = bounced
    new = c.standbys[0]
    before = bouncer.ini.read_text()
    book = write_playbook(tmp_path, [endpoint_task(bouncer, new)])
    checked = run_playbook(book, check=True, diff=True).result('repoint')
    assert checked['changed'] is True and bouncer.ini.read_text() == before
    assert 'port=%d' % new.port in checked['changes'][0]['after']

    writer = PgWriter(c.primary.bin('psql'), bouncer.conninfo(), bouncer.password)
    writer.create_table()
    writer.start()
    try:
        writer.wait_acks(30)
        fo = {'name': 'failover', 'register': 'out', 'opsready.operations.db_failover': {
            'action': 'switchover', 'primary': 'primary', 'candidate': 'standby1', 'timeout': 30,
            'nodes': [node_vars(n) for n in c.nodes]}}
        run = run_playbook(write_playbook(tmp_path, [fo, endpoint_task(bouncer, new)]))
        assert run.result('failover')['_event'] == 'runner_on_ok', run.result('failover').get('msg')
        ep = run.result('repoint')
        assert ep['_event'] == 'runner_on_ok' and ep['changed'] is True and ep['reload'] == 'signal'
        writer.wait_acks(30)
    finally:
        writer.stop()
    assert not recovery(new) and recovery(c.primary)
    on_new = {int(r[0]) for r in new.sql('SELECT n FROM fo_writer')}
    assert sorted(set(writer.acked) - on_new) == []
    # rows written after the repointing went to the new primary through PgBouncer
    assert max(writer.acked) in on_new
    assert bouncer.ini.read_text().replace('port=%d' % new.port, 'port=%d' % c.primary.port) == before
    again = run_playbook(write_playbook(tmp_path, [endpoint_task(bouncer, new)])).result('repoint')
    assert again['changed'] is False


def test_missing_entry_and_hostile_host_are_refused(tmp_path):
    ini = tmp_path / 'pgbouncer.ini'
    before = '[databases]\napp = host=10.0.0.1 port=5432 dbname=app\n[pgbouncer]\nlisten_port = 6432\n'
    ini.write_text(before)
    hostile = ['127.0.0.1 dbname=evil', "x'y", 'a\nb', '']
    refused = {'name': 'refused', 'ignore_errors': True, 'loop': [{'entries': ['nope'], 'host': '10.0.0.2'}]
               + [{'entries': ['app'], 'host': h} for h in hostile],
               'opsready.operations.db_endpoint': {'path': str(ini), 'entries': '{{ item.entries }}',
                                                   'host': '{{ item.host }}', 'port': 5432}}
    nopid = {'name': 'nopid', 'ignore_errors': True,
             'opsready.operations.db_endpoint': {'path': str(ini), 'entries': ['app'], 'host': '10.0.0.2'}}
    between = {'name': 'between', 'ansible.builtin.slurp': {'src': str(ini)}}
    run = run_playbook(write_playbook(tmp_path, [refused, between, nopid]))
    items = run.task_results('refused', events=('runner_item_on_ok', 'runner_item_on_failed'))
    assert [r['_event'] for r in items] == ['runner_item_on_failed'] * 5
    assert 'no entry' in items[0]['msg']
    assert all('not a host name' in r['msg'] for r in items[1:]), [r['msg'] for r in items]
    assert base64.b64decode(run.result('between')['content']).decode() == before
    res = run.result('nopid')
    assert res['_event'] == 'runner_on_failed' and 'no pid file' in res['msg']
    assert 'host=10.0.0.2' in ini.read_text()    # rewritten; only the reload could not happen
