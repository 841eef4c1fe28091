"""The decision code of db_failover (who is promoted, which candidate is refused) and the conninfo handling."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.replication.failover import (
    NodeSpec, NodeState, check_names, check_switchover_candidate, choose_failover_candidate, lsn_text)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.promote import (
    build_conninfo, follow_conninfo, parse_conninfo, slot_name)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.quote import conf_literal


def primary(lsn=1000):
    return NodeState('p', reachable=True, in_recovery=False, current_lsn=lsn)


def standby(name, replay, receive=None, receiver='streaming'):
    return NodeState(name, reachable=True, in_recovery=True, replay_lsn=replay,
                     receive_lsn=receive if receive is not None else replay, receiver=receiver)


def test_switchover_candidate_rules():
    assert check_switchover_candidate(primary(1000), standby('s', 990), max_lag=100) == 10
    with pytest.raises(OpsReadyError, match='lags 500 bytes'):
        check_switchover_candidate(primary(1000), standby('s', 500), max_lag=100)
    with pytest.raises(OpsReadyError, match='does not stream'):
        check_switchover_candidate(primary(), standby('s', 1000, receiver=''), max_lag=100)
    with pytest.raises(OpsReadyError, match='not a standby'):
        check_switchover_candidate(primary(), primary(), max_lag=100)
    with pytest.raises(OpsReadyError, match='unreachable'):
        check_switchover_candidate(primary(), NodeState('s', reachable=False, error='refused'), max_lag=100)
    with pytest.raises(OpsReadyError, match='not a running primary'):
        check_switchover_candidate(NodeState('p', reachable=False, error='gone'), standby('s', 1), max_lag=100)


def test_failover_picks_most_advanced_received_or_replayed():
    states = [NodeState('p', reachable=False, error='gone'), standby('a', 100, 150), standby('b', 140, 140),
              standby('c', 120, 160)]
    assert choose_failover_candidate(states, None, False).name == 'c'
    # ties: the listed order wins
    assert choose_failover_candidate([standby('x', 5), standby('y', 5)], None, False).name == 'x'
    with pytest.raises(OpsReadyError, match='10 bytes'):
        choose_failover_candidate(states, 'a', False)
    assert choose_failover_candidate(states, 'a', True).name == 'a'
    with pytest.raises(OpsReadyError, match='no reachable standby'):
        choose_failover_candidate([NodeState('p', reachable=False, error='gone')], None, False)


def test_names_and_lsn_text():
    conn = ConnectionParams()
    with pytest.raises(OpsReadyError, match='two entries'):
        check_names([NodeSpec('a', conn), NodeSpec('a', conn)])
    with pytest.raises(OpsReadyError, match='at least'):
        check_names([NodeSpec('a', conn)])
    assert lsn_text(0x1_0000_0028) == '1/28'
    assert lsn_text(None) is None


@pytest.mark.parametrize('value', ["pa'ss", 'back\\slash', 'sp ace', '#?%', 'ünï', "'"])
def test_conninfo_round_trip_of_hostile_values(value):
    text = build_conninfo({'user': 'u', 'password': value})
    assert parse_conninfo(text) == {'user': 'u', 'password': value}


def test_follow_conninfo_keeps_credentials_and_changes_the_target():
    template = "user=repl password='s3cr''et' host=old port=1 sslmode=require application_name=x dbname=z"
    new = NodeSpec('n2', ConnectionParams(host='10.0.0.2', port=5433, user='admin', password='pw'))
    values = parse_conninfo(follow_conninfo(template.replace("''", "\\'"), new, 'n1'))
    assert values == {'user': 'repl', 'password': "s3cr'et", 'host': '10.0.0.2', 'port': '5433',
                      'sslmode': 'require', 'application_name': 'n1'}
    # no template (a standby whose WAL receiver was switched off): the node's login is used
    assert parse_conninfo(follow_conninfo('', new, 'n1'))['password'] == 'pw'


def test_conf_quote_and_slot_name():
    assert conf_literal("a'b\\c") == "'a''b\\\\c'"
    assert slot_name('DB-1.example') == 'db_1_example'
    assert len(slot_name('x' * 100)) == 63
