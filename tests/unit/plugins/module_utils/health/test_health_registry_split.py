"""health/checks.py is the registry's front door: the built-in types live in their own files (issue 23), and a
type added in a new file with ``@register`` (replication, insights ...) reaches the module's options and
validation like a built-in one."""

from __future__ import annotations

import ast
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import checks

HEALTH = os.path.dirname(checks.__file__)


def test_every_built_in_type_is_registered_by_importing_checks():
    assert {'tcp', 'http', 'db', 'process', 'service', 'command', 'backup'} <= set(checks.REGISTRY)


def test_checks_py_defines_no_check_type_itself():
    with open(os.path.join(HEALTH, 'checks.py')) as handle:
        tree = ast.parse(handle.read())
    assert [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))] == []


def test_a_type_registered_from_another_file_reaches_options_and_validation():
    @checks.register
    class LagCheck(checks.CheckType):
        type_name = 'test_lag'
        options = {'max_lag': {'type': 'float', 'default': 30.0}}

        def validate(self, spec):
            if spec['max_lag'] <= 0:
                raise OpsReadyError('max_lag must be more than 0.')

        def run(self, spec):
            return {'ok': True, 'latency_ms': None, 'message': 'fine'}

    try:
        options = checks.suboptions()
        assert 'test_lag' in options['type']['choices'] and 'max_lag' in options
        spec = checks.normalise([{'type': 'test_lag'}])[0]
        assert spec['max_lag'] == 30.0 and spec['name'] == 'test_lag'
        with pytest.raises(OpsReadyError, match='max_lag must be more than 0'):
            checks.normalise([{'type': 'test_lag', 'max_lag': -1}])
        key, call, _timeout = checks.run_spec(spec)
        assert key == 'check:test_lag' and call()['ok']
    finally:
        checks.REGISTRY.pop('test_lag', None)


def test_db_probe_engines_come_from_the_engine_registry():
    from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import PROBE_ENGINES
    assert tuple(checks.REGISTRY['db'].options['engine']['choices']) == PROBE_ENGINES


def test_record_changes_reports_only_what_changed(tmp_path):
    """The textfile is rewritten (and changed) only when its content differs; a history sample is a change;
    check mode writes nothing and predicts both."""
    from ansible_collections.opsready.operations.plugins.module_utils.health import assess
    textfile = tmp_path / 'h.prom'
    plan = assess.Plan(checks=[], metrics=['memory'], textfile_path=str(textfile))
    result = assess.run(plan)
    written, changed, diffs = assess.record_changes(plan, result, timestamp=1000.0, check_mode=True)
    assert (written, changed) == ({}, True) and not textfile.exists() and diffs[0]['before'] == ''
    written, changed, diffs = assess.record_changes(plan, result, timestamp=1000.0)
    assert changed and written['textfile_changed'] and textfile.exists()
    first = textfile.stat().st_ino
    written, changed, diffs = assess.record_changes(plan, result, timestamp=1000.0)
    assert not changed and written == {'textfile': str(textfile), 'textfile_changed': False} and diffs == []
    assert textfile.stat().st_ino == first  # left alone, not rewritten with the same bytes
    history = tmp_path / 'h.jsonl'
    plan = assess.Plan(checks=[], metrics=['memory'], history_path=str(history))
    written, changed, diffs = assess.record_changes(plan, result, timestamp=1000.0)
    assert changed and written['history_entries'] == 1 and len(history.read_text().splitlines()) == 1
    assert diffs[-1]['after'].startswith('{')
