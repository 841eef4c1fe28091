"""Every module turns ansible-core's ``add_path_info`` off (pathinfo15; the playbook runs are
tests/integration/test_path_info_pathinfo15.py).

ansible-core's ``exit_json``/``fail_json`` describe a result's ``path`` (else ``dest``) by looking the name up as
root: through every link on the way, and with ``$NAME``/``~`` expanded in part of the lookup. Nearly every refusal of
the collection carries ``path=``/``dest=`` (an ``OpsReadyError``'s details), so each module calls
``common.errors.no_path_info`` on its ``AnsibleModule`` before anything else can end the run; a new module that
forgets it fails here.

Failed on the old code: the source check for all 37 modules (34 never called it, the 3 safe_* ones a copy in safeio)
and nothing else (the behaviour test pins what ansible-core does, and that the function stops it)."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info

MODULES = Path(__file__).resolve().parents[2] / 'plugins' / 'modules'
ADDED = ('uid', 'gid', 'owner', 'group', 'mode', 'state', 'size', 'secontext')


def _constructions(tree: ast.AST) -> list:
    """(the statement right after, the name assigned) of each ``X = AnsibleModule(...)`` statement."""
    found = []
    for node in ast.walk(tree):
        for field in ('body', 'orelse', 'finalbody'):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for index, statement in enumerate(block):
                if (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)
                        and getattr(statement.value.func, 'id', None) == 'AnsibleModule'):
                    following = block[index + 1] if index + 1 < len(block) else None
                    found.append((following, ast.unparse(statement.targets[0])))
    return found


def _is_no_path_info(statement, name: str) -> bool:
    if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)):
        return False
    call = statement.value
    called = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, 'attr', None)
    return called == 'no_path_info' and [ast.unparse(a) for a in call.args] == [name]


@pytest.mark.parametrize('path', sorted(MODULES.glob('*.py')), ids=lambda p: p.name)
def test_every_module_turns_path_info_off_right_after_making_its_module(path):
    source = path.read_text(encoding='utf-8')
    tree = ast.parse(source)
    made = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', None) == 'AnsibleModule']
    constructions = _constructions(tree)
    # every AnsibleModule(...) is a plain assignment (one the check below can follow), and the very next statement
    # turns the lookup off: nothing in between may end the run with a path in its result
    assert made and len(constructions) == len(made), '%s: make the AnsibleModule in a plain assignment' % path.name
    for following, name in constructions:
        assert _is_no_path_info(following, name), (
            '%s: call no_path_info(%s) (module_utils.common.errors) right after making the AnsibleModule: '
            'ansible-core would look up a result\'s path/dest as root, through links and with $NAME expanded'
            % (path.name, name))
    # the collection's one, not a look-alike
    assert 'from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info' \
        in source, path.name


def _module(monkeypatch, params: dict) -> AnsibleModule:
    monkeypatch.setattr(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': params}).encode('utf-8'))
    monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy')
    return AnsibleModule(argument_spec=dict(path=dict(type='str')))


def _returned(capsys, method, **kwargs) -> dict:
    with pytest.raises(SystemExit):
        method(**kwargs)
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize('key', ['path', 'dest'])
def test_no_path_info_leaves_the_result_as_the_module_made_it(tmp_path, monkeypatch, capsys, key):
    # the real ansible-core: what it would add (so a rename of its hook upstream fails here, not in production)
    private = tmp_path / 'private'
    private.mkdir(mode=0o700)
    (private / 'secret').write_bytes(b'x' * 1234)
    os.symlink(str(private), str(tmp_path / 'link'))
    through = str(tmp_path / 'link' / 'secret')
    monkeypatch.setenv('HOME', str(tmp_path / 'elsewhere'))
    dollar = tmp_path / 'd$HOME'
    dollar.mkdir()

    plain = _module(monkeypatch, {})
    described = _returned(capsys, plain.exit_json, **{key: through})
    assert (described['size'], described['mode'], described['state']) == (1234, '0%03o' % (
        os.stat(through).st_mode & 0o777), 'file'), 'ansible-core no longer describes a path: revisit no_path_info'
    with pytest.raises(FileNotFoundError):   # d$HOME exists; its lstat as .../d/<HOME> does not
        _module(monkeypatch, {}).fail_json(msg='refused', **{key: str(dollar)})

    for method in ('exit_json', 'fail_json'):
        module = _module(monkeypatch, {})
        no_path_info(module)
        kwargs = {key: through, 'msg': 'refused'} if method == 'fail_json' else {key: through}
        result = _returned(capsys, getattr(module, method), **kwargs)
        assert result[key] == through and not [k for k in ADDED if k in result], result
        module = _module(monkeypatch, {})
        no_path_info(module)
        result = _returned(capsys, getattr(module, method), **dict(kwargs, **{key: str(dollar)}))
        assert result[key] == str(dollar) and not [k for k in ADDED if k in result], result


def test_safe_modules_and_the_rest_use_the_same_function():
    # one mechanism: safeio no longer has a copy of its own that could drift
    from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
    assert not hasattr(safeio, 'no_path_info')
