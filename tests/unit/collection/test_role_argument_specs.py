"""Each role's meta/argument_specs.yml shows the defaults defaults/main.yml really has.

``ansible-doc -t role`` and Galaxy show the spec's ``default``; Ansible itself uses defaults/main.yml.
When a default is derived from another variable (``"{{ backup_dir }}/files"``) the spec shows that
expression, not one value it happens to take.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROLES = sorted(p.parent.parent for p in (REPO / 'roles').glob('*/meta/argument_specs.yml'))


def _load(path: Path):
    return yaml.safe_load(path.read_text()) if path.exists() else None


@pytest.mark.parametrize('role', ROLES, ids=[r.name for r in ROLES])
def test_argument_spec_defaults_match_role_defaults(role):
    defaults = _load(role / 'defaults' / 'main.yml') or {}
    specs = _load(role / 'meta' / 'argument_specs.yml')['argument_specs']
    wrong = []
    for entry_point, spec in specs.items():
        options = spec.get('options') or {}
        for name, option in options.items():
            if name in defaults:
                if defaults[name] is None:
                    # no default shown and none set are the same thing
                    if option.get('default') is not None:
                        wrong.append('%s.%s: spec default %r, defaults/main.yml none' % (entry_point, name,
                                                                                         option['default']))
                elif 'default' not in option:
                    wrong.append('%s.%s: spec shows no default, defaults/main.yml has %r'
                                 % (entry_point, name, defaults[name]))
                elif option['default'] != defaults[name]:
                    wrong.append('%s.%s: spec default %r, defaults/main.yml %r'
                                 % (entry_point, name, option['default'], defaults[name]))
            elif option.get('default') is not None and entry_point == 'main':
                wrong.append('%s.%s: spec default %r but defaults/main.yml does not set it'
                             % (entry_point, name, option['default']))
    assert not wrong, '%s:\n  %s' % (role.name, '\n  '.join(wrong))


@pytest.mark.parametrize('role', ROLES, ids=[r.name for r in ROLES])
def test_every_role_default_is_in_the_main_spec(role):
    defaults = _load(role / 'defaults' / 'main.yml') or {}
    options = _load(role / 'meta' / 'argument_specs.yml')['argument_specs']['main'].get('options') or {}
    missing = sorted(set(defaults) - set(options))
    assert not missing, '%s: defaults/main.yml variables missing from meta/argument_specs.yml: %s' % (
        role.name, missing)
