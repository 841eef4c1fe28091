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
    'db_failover': registry.FAILOVER_ENGINES,
    'db_backup': registry.ENGINES,
    'db_maintenance': registry.ENGINES,
    'db_restore': registry.ENGINES,
    'backup_info': registry.CATALOG_ENGINES,
    'backup_prune': registry.CATALOG_ENGINES,
    'backup_verify': registry.CATALOG_ENGINES,
    'drill_step': registry.DRILL_ENGINES,
    'replication_info': registry.REPLICATION_ENGINES,
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
    assert registry.__name__.rsplit('.', 1)[-1] in source or 'engines.names import' in source


def test_engines_are_defined_once():
    """No other module_utils file spells an engine list (``ENGINES = ...`` or a literal list of the names)."""
    literal = re.compile(r"""['"]postgresql['"],\s*['"]mariadb['"],\s*['"]mysql['"]""")
    offenders = []
    for base, _dirs, files in os.walk(os.path.join(ROOT, 'plugins')):
        for name in files:
            path = os.path.join(base, name)
            if not name.endswith('.py') or path.endswith((os.path.join('engines', 'registry.py'),
                                                          os.path.join('engines', 'names.py'))):
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


@pytest.mark.parametrize('name', registry.ENGINES)
def test_every_engine_has_one_client(name):
    """get_client hands every engine's client; the backup engine, maintenance and drill checks hold that same
    class (composition), each with its own session settings."""
    conn = ConnectionParams(host='db.example', user='u', password='pw', connect_timeout=3)
    client = registry.get_client(name, conn)
    assert client.conn is conn and client.engine == name
    engine = registry.get_engine(name, conn)
    assert type(engine.client) is type(client)
    if name in ('postgresql', 'mariadb', 'mysql'):
        backend = registry.get_maintenance(name, 'app', MaintenanceOptions(lock_timeout=7), conn)
        held = backend.client
        assert type(held) is type(client) and held.limits.lock_timeout == 7
        assert held.timeout is None  # no cap on maintenance without statement_timeout
        assert type(registry.get_drill_client(name, conn).client) is type(client)
        assert client.timeout == 63  # a short query: connect_timeout + a minute


def test_no_area_subclasses_an_engine_or_client_class():
    """Areas compose the engine's client; a subclass of the backup engine or of a client outside engines/ is
    the coupling issue 23 removed (maintenance's _Psql(PostgresEngine), _Client(MySQLEngine))."""
    engine_classes = {'Engine', 'PostgresEngine', 'MySQLEngine', 'SQLiteEngine', 'SQLServerEngine',
                      'PostgresClient', 'MySQLClient', 'SQLiteClient', 'SQLServerClient'}
    offenders = []
    for base, _dirs, files in os.walk(MODULE_UTILS):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(base, name)
            # In an engine's folder the backup engine subclasses Engine and the client is defined; nothing else
            # there (maintenance, checks, restore ...) may derive from them.
            if os.path.relpath(path, MODULE_UTILS).startswith('engines' + os.sep) and name in (
                    'base.py', 'backup.py', 'verify.py', 'client.py'):
                continue
            with open(path) as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    bases = {getattr(b, 'id', getattr(b, 'attr', '')) for b in node.bases}
                    if bases & engine_classes:
                        offenders.append('%s: class %s(%s)' % (os.path.relpath(path, ROOT), node.name,
                                                               ', '.join(sorted(bases))))
    assert offenders == []


def test_postgres_client_classifies_session_limits_only_when_set():
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import ToolError
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import SessionLimits
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import PostgresClient
    stderr = 'ERROR:  canceling statement due to lock timeout\n'
    exc = ToolError('psql failed', stderr=stderr)
    assert PostgresClient(ConnectionParams()).classify(exc) is exc
    limited = PostgresClient(ConnectionParams(), limits=SessionLimits(lock_timeout=4))
    assert 'lock_timeout=4s' in limited.classify(exc).message
    assert limited.env('app')['PGOPTIONS'] == '-c search_path=pg_catalog,pg_temp -c role=none -c lock_timeout=4s'


def test_postgres_sessions_pin_search_path_unless_opted_out():
    """Every session of the client pins search_path in the startup packet (CVE-2018-1058's class, client.py);
    catalog_only=False (an operator's smoke queries, the drill's application writer) leaves the database's."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.client import PostgresClient
    pinned = PostgresClient(ConnectionParams()).env('app')
    # and as the login, whatever the database's SET role
    assert pinned['PGOPTIONS'] == '-c search_path=pg_catalog,pg_temp -c role=none'
    assert 'PGOPTIONS' not in PostgresClient(ConnectionParams(), catalog_only=False).env('app')
    assert registry.get_client('postgresql', ConnectionParams()).env()['PGOPTIONS'].startswith('-c search_path=')
    assert registry.get_engine('postgresql', ConnectionParams()).env()['PGOPTIONS'].startswith('-c search_path=')


@pytest.mark.parametrize('name', registry.ENGINES)
def test_every_engine_has_a_restore(name):
    """db_restore reaches every engine through get_restore (restore/run.py names no engine)."""
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import Restorer
    restorer = registry.get_restore(name, ConnectionParams())
    assert isinstance(restorer, Restorer) and restorer.name == name
    kind = type(restorer)
    assert kind.check is not Restorer.check, name
    assert kind.restore is not Restorer.restore or callable(kind.restore_with), name
    assert kind.drop is not Restorer.drop or callable(kind.drop_with), name
    if name in registry.PHYSICAL_RESTORE_ENGINES:
        assert type(registry.get_restore(name, ConnectionParams(), physical=True)) is not type(restorer)
    else:
        with pytest.raises(OpsReadyError, match='datadir applies to physical recovery'):
            registry.get_restore(name, ConnectionParams(), physical=True)


def test_area_dispatchers_name_no_engine():
    """The area-generic files choose nothing by engine name: restore/run.py, drill steps, maintenance core."""
    pattern = re.compile(r"""(engine|family)\s*[!=]=\s*['"](postgresql|mariadb|mysql|sqlite|sqlserver)['"]""")
    for rel in (('restore', 'run.py'), ('maintenance', 'core.py'), ('drill', 'steps.py'), ('backup', 'jobs.py')):
        with open(os.path.join(MODULE_UTILS, *rel)) as handle:
            found = pattern.findall(handle.read())
        assert found == [], (rel, found)


def test_insights_collectors_come_from_the_registry():
    conn = ConnectionParams(host='db1')
    for name in registry.INSIGHTS_ENGINES:
        collector = registry.get_insights(name, conn)
        assert collector.engine_name == name
    with pytest.raises(OpsReadyError, match='sqlite'):
        registry.get_insights('sqlite', conn)


FAMILY_DIRS = sorted(set(registry.FAMILIES.values()))


@pytest.mark.parametrize('family', FAMILY_DIRS)
def test_each_engine_lives_in_one_folder(family):
    """Issue 23: "how does this engine do X" has one place to look. The family's folder holds its client and
    ``areas.py``; every area the registry hands out for it is a function of that file."""
    folder = os.path.join(MODULE_UTILS, 'engines', family)
    assert os.path.isfile(os.path.join(folder, 'client.py')) and os.path.isfile(os.path.join(folder, 'areas.py'))
    areas = registry.IMPLEMENTATIONS[family]
    assert areas.__name__.endswith('.engines.%s.areas' % family)
    for area in ('client', 'backup', 'restore', 'maintenance'):
        assert callable(getattr(areas, area)), '%s offers no %s' % (family, area)


def test_no_engine_file_outside_the_engine_folders():
    """A file named after an engine outside ``engines/<family>/`` is engine code in the wrong place (before the
    seam: engines/postgresql_client.py, restore/mysql.py, maintenance/sqlite.py, insights/sqlserver.py,
    replication/pg_promote.py ...)."""
    engine_words = re.compile(r'^(postgresql|pg|mysql|mariadb|sqlite|sqlserver|mssql|redis)(_|\.py$)')
    offenders = []
    for base, _dirs, files in os.walk(MODULE_UTILS):
        rel = os.path.relpath(base, MODULE_UTILS).split(os.sep)
        if rel[:1] == ['engines'] and len(rel) == 2:
            continue
        offenders += [os.path.join(*rel, name) for name in files if engine_words.match(name)]
        offenders += [os.path.join(*rel, d) for d in _dirs if engine_words.match(d + '.py') and rel != ['engines']]
    assert offenders == []


def test_capabilities_follow_the_engine_folders():
    """The capability lists are read from the folders' areas.py files, so an engine gains drills or insights by
    adding the area function, not by editing a list elsewhere."""
    for capability, area in ((registry.DRILL_ENGINES, 'drill_checks'), (registry.INSIGHTS_ENGINES, 'insights'),
                             (registry.REPLICATION_ENGINES, 'replication'),
                             (registry.PHYSICAL_RESTORE_ENGINES, 'physical_restore')):
        assert capability == tuple(e for e in registry.ENGINES
                                   if hasattr(registry.IMPLEMENTATIONS[registry.FAMILIES[e]], area))
    assert 'sqlserver' not in registry.DRILL_ENGINES and 'sqlite' not in registry.INSIGHTS_ENGINES
    with pytest.raises(OpsReadyError, match='not available'):
        registry.get_drill_client('sqlserver', ConnectionParams())
