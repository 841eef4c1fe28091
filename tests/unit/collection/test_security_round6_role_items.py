"""Security review, round 6: roles take no secret inside a loop item.

Ansible copies a loop item into every result of the loop (job events in AWX, ``-v`` output, registered results):
a role whose list items hold a password, passphrase or token shows it there, whatever the module's no_log says.
The roles name a variable instead (``password_var``, ``privatekey_passphrase_var``); an item option with a secret's
name is allowed only when the role refuses it with a message pointing at the variable form (``REFUSED``).
Regression guard for the rule (it held before this round except for the option this round added first).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SECRET = re.compile(r'pass|token|secret|hmac|credential|(^|_)key($|_)|auth')
NOT_A_SECRET = re.compile(r'_var$|^key_(type|size)$')
# (role, list option, item option): declared only so that the role can refuse them by name.
REFUSED = {('dr_drill', 'dr_drill_databases', 'login_password'),
           ('certificates', 'certificates_list', 'privatekey_passphrase')}


def item_options(options: dict, trail: List[str], in_item: bool) -> Iterator[Tuple[List[str], dict]]:
    for name, spec in (options or {}).items():
        if in_item:
            yield trail + [name], spec
        yield from item_options(spec.get('options'), trail + [name], in_item or spec.get('type') == 'list')


def secret_item_options() -> List[Tuple[str, str, str, dict]]:
    found = []
    for path in sorted(ROOT.glob('roles/*/meta/argument_specs.yml')):
        role = path.parent.parent.name
        for entry in yaml.safe_load(path.read_text())['argument_specs'].values():
            for trail, spec in item_options(entry.get('options'), [], False):
                name = trail[-1]
                if SECRET.search(name) and not NOT_A_SECRET.search(name) and spec.get('type') != 'path':
                    found.append((role, trail[0], name, spec))
    return found


@pytest.mark.parametrize('role,option,name,spec', secret_item_options(),
                         ids=lambda v: v if isinstance(v, str) else '')
def test_a_secret_in_a_loop_item_is_refused_by_its_role(role, option, name, spec):
    assert (role, option, name) in REFUSED, (
        '%s: %s[].%s holds a secret in a loop item; name a variable instead (%s_var)' % (role, option, name, name))
    assert spec.get('no_log') is True
    tasks = ' '.join(p.read_text() for p in (ROOT / 'roles' / role / 'tasks').glob('*.yml'))
    assert "selectattr('%s', 'defined')" % name in tasks, 'the role must refuse %s in its items' % name
