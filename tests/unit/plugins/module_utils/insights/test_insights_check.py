"""The health_check ``insights`` type: options merged with the db type's, each type held to its own engines."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines import registry
from ansible_collections.opsready.operations.plugins.module_utils.health import assess, checks
from ansible_collections.opsready.operations.plugins.module_utils.health import insights_check


def test_engine_option_offers_the_union_and_each_type_its_own():
    assert checks.REGISTRY['insights'].__class__ is insights_check.InsightsCheck
    merged = checks.suboptions()
    assert set(merged['engine']['choices']) == {'postgresql', 'mysql'} | set(registry.INSIGHTS_ENGINES)
    assert 'insights' in merged['type']['choices']
    spec = checks.normalise([{'type': 'insights', 'engine': 'sqlserver', 'host': 'sql1'}])[0]
    assert spec['name'] == 'insights:sqlserver@sql1:' and spec['top_statements'] == 5
    with pytest.raises(OpsReadyError, match='engine=sqlserver is not available for db checks'):
        checks.normalise([{'type': 'db', 'engine': 'sqlserver'}])


def test_insights_thresholds_are_validated_before_anything_runs():
    with pytest.raises(OpsReadyError, match='Unknown insights threshold'):
        checks.normalise([{'type': 'insights', 'engine': 'postgresql', 'insights_thresholds': {'cpu': 1}}])
    with pytest.raises(OpsReadyError, match='needs engine'):
        checks.normalise([{'type': 'insights'}])


def test_the_health_run_hands_its_history_to_insights_checks(tmp_path):
    path = str(tmp_path / 'h.jsonl')
    plan = assess.Plan(checks=[{'type': 'insights', 'engine': 'postgresql'}, {'type': 'tcp', 'host': 'x', 'port': 1}],
                       metrics=[], history_path=path)
    assert plan.checks[0]['_history_path'] == path
    assert '_history_path' not in plan.checks[1]


def test_an_unreachable_server_is_a_database_connection_finding():
    plan = assess.Plan(checks=[{'type': 'insights', 'engine': 'postgresql', 'host': '127.0.0.1', 'port': 1,
                                'user': 'x', 'password': 'pw-secret-1', 'timeout': 2}], metrics=[])
    result = assess.run(plan)
    assert result['verdict'] == 'critical'
    assert result['findings'][0]['condition'] == 'database_connection'
    assert 'Cannot connect to PostgreSQL' in result['findings'][0]['message']
    assert 'pw-secret-1' not in repr(result)
