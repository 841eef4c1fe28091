"""files.safeio.staged_name_re: the sweep's expression matches every name staged_name gives, cut or not."""

from __future__ import annotations

import re

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

STAMP = ['[0-9]'] * 8 + ['T'] + ['[0-9]'] * 12 + ['Z']


@pytest.mark.parametrize('name', ['a.key', 'x' * 237, 'x' * 238, 'x' * 255, 'é' * 118 + 'x', 'x' * 236 + 'é' * 9,
                                  'k' * 200, 'k' * 230])
def test_every_staged_name_is_found_and_no_other(name):
    concrete = name + '20261201T000000000000Z'
    pattern = re.compile(safeio.STAGED_RE % safeio.staged_name_re(name, STAMP))
    staged = safeio.staged_name(concrete)
    assert len(staged.encode('utf-8')) <= 255
    assert pattern.match(staged), (staged, pattern.pattern)
    assert not pattern.match('.' + name[:-1] + 'Q' + staged[len(name) + 1:])   # another name of that length
    assert not pattern.match(safeio.staged_name('b' + name[1:] + '20261201T000000000000Z'))
