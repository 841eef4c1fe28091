"""The engine registry is the one place that names the engines: module choices and every area's factory read it."""

from __future__ import annotations

import ast
import os
import re

import pytest
import yaml

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines import registry
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.maintenance.core import MaintenanceOptions

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..'))
MODULES = os.path.join(ROOT, 'plugins', 'modules')
MODULE_UTILS = os.path.join(ROOT, 'plugins', 'module_utils')

# Which registry list each module's ``engine`` option offers.
EXPECTED = {
    'db_backup': registry.ENGINES,
    'db_maintenance': registry.ENGINES,
    'db_restore': registry.ENGINES,
    'backup_info': registry.CATALOG_ENGINES,
    'backup_prune': registry.CATALOG_ENGINES,
    'backup_verify': registry.CATALOG_ENGINES,
    'drill_step': registry.DRILL_ENGINES,
    'db_insights': registry.INSIGHTS_ENGINES,
}


def _module_sources():
    for name in sorted(os.listdir(MODULES)):
        if name.endswith('.py') and not name.startswith('_'):
            with open(os.path.join(MODULES, name)) as handle:
                yield name[:-3], handle.read()


def _doc_engine_choices(source):
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'DOCUMENTATION' for t in node.targets):
            doc = yaml.safe_load(node.value.value)
            return (doc.get('options') or {}).get('engine', {}).get('choices')
    return None


def _argspec_engine_choices(source):
    """The ``choices=`` expression of ``engine=dict(...)`` in the module's argument spec (an AST node)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == 'engine' and isinstance(node.value, ast.Call):
            for kw in node.value.keywords:
                if kw.arg == 'choices':
                    return kw.value
    return None


@pytest.mark.parametrize('name,source', list(_module_sources()))
def test_module_engine_choices_come_from_the_registry(name, source):
    documented = _doc_engine_choices(source)
    spec = _argspec_engine_choices(source)
    if documented is None and spec is None:
        return  # no engine choices (free-form engine filter or no engine option)
    assert name in EXPECTED, '%s offers engine choices: add it to EXPECTED with its registry list' % name
    assert tuple(documented) == EXPECTED[name], '%s DOCUMENTATION engine choices differ from the registry' % name
    # The argument spec must read the registry, never spell the list again.
    assert spec is not None and not isinstance(spec, (ast.List, ast.Tuple)), (
        '%s hard-codes its engine choices: use list(<registry list>)' % name)
    assert registry.__name__.rsplit('.', 1)[-1] in source


def test_engines_are_defined_once():
    """No other module_utils file spells an engine list (``ENGINES = ...`` or a literal list of the names)."""
    literal = re.compile(r"""['"]postgresql['"],\s*['"]mariadb['"],\s*['"]mysql['"]""")
    offenders = []
    for base, _dirs, files in os.walk(os.path.join(ROOT, 'plugins')):
        for name in files:
            path = os.path.join(base, name)
            if not name.endswith('.py') or path.endswith(os.path.join('engines', 'registry.py')):
                continue
            with open(path) as handle:
                text = handle.read()
            if re.search(r'^\s*[A-Z_]*ENGINES\s*=', text, re.M) or literal.search(text):
                offenders.append(os.path.relpath(path, ROOT))
    assert offenders == []


def test_every_engine_has_a_family():
    assert set(registry.FAMILIES) == set(registry.ENGINES)
    assert set(registry.DRILL_ENGINES) <= set(registry.ENGINES)
    assert registry.CATALOG_ENGINES[:len(registry.ENGINES)] == registry.ENGINES


@pytest.mark.parametrize('name', registry.ENGINES)
def test_every_area_has_a_backend_for_every_engine(name, tmp_path):
    conn = ConnectionParams()
    assert registry.get_engine(name, conn).name == name
    database = str(tmp_path / 'db') if name == 'sqlite' else 'app'
    backend = registry.get_maintenance(name, database, MaintenanceOptions(), conn)
    assert backend.name == name
    if name in registry.DRILL_ENGINES:
        assert registry.get_drill_client(name, conn).engine == name
    else:
        with pytest.raises(OpsReadyError, match='not available here'):
            registry.get_drill_client(name, conn)


@pytest.mark.parametrize('factory', ['get_engine', 'get_drill_client'])
def test_unknown_engine_is_refused_with_the_choices(factory):
    with pytest.raises(OpsReadyError) as info:
        getattr(registry, factory)('oracle', ConnectionParams())
    assert 'oracle' in str(info.value) and 'sqlite' in str(info.value)


def test_unknown_engine_for_maintenance():
    with pytest.raises(OpsReadyError, match=r"Unknown engine 'oracle' for db_maintenance: use one of postgresql"):
        registry.get_maintenance('oracle', 'db', MaintenanceOptions(), ConnectionParams())


def _stub_methods(cls):
    """Methods of ``cls`` whose body only raises NotImplementedError (an interface every engine must fill)."""
    import inspect
    import textwrap
    stubs = []
    for name, member in vars(cls).items():
        if not inspect.isfunction(member):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(member))).body[0].body
        body = [n for n in body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        if len(body) == 1 and isinstance(body[0], ast.Raise) and 'NotImplementedError' in ast.dump(body[0]):
            stubs.append(name)
    return stubs


def test_no_stub_of_the_interface_is_dead():
    """A stub no engine implements is dead interface (restore, prepare_target, drop_target, smoke_query and
    integrity_check were: restore and drill code live in their own areas). Every NotImplementedError method of
    Engine is implemented by at least one engine; backup and verify by every engine."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import Engine
    stubs = _stub_methods(Engine)
    classes = [type(registry.get_engine(name, ConnectionParams())) for name in registry.ENGINES]
    assert {'backup', 'verify'} <= set(stubs)
    dead = [stub for stub in stubs if all(getattr(cls, stub) is getattr(Engine, stub) for cls in classes)]
    assert dead == []
    for cls in classes:
        assert cls.backup is not Engine.backup and cls.verify is not Engine.verify, cls.__name__


def test_insights_collectors_come_from_the_registry():
    conn = ConnectionParams(host='db1')
    for name in registry.INSIGHTS_ENGINES:
        collector = registry.get_insights(name, conn)
        assert collector.engine_name == name
    with pytest.raises(OpsReadyError, match='sqlite'):
        registry.get_insights('sqlite', conn)
