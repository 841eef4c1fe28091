"""Round 10: the drill counts an unreadable manifest only when it is this set's (``set_files.attribute``'s ``set``),
and reports every other one as a warning (another set's broken manifest in a shared directory was not reported at
all; one of another set whose name began alike failed this drill). The playbook runs:
tests/integration/test_drill_round10.py."""

from __future__ import annotations

from tests.unit.plugins.module_utils.drill.test_drill_passed_over_round9 import NEWER, broken, judged

OLDEST = 'postgresql-shop-dump-20261129T100000000000Z.dump.zst'


def test_only_this_sets_newer_broken_manifest_fails_the_drill():
    mine = dict(broken(NEWER), set='this')
    result = judged(broken_manifests=[mine])
    assert not result['passed'] and [p['id'] for p in result['backup']['passed_over']] == [NEWER]
    assert not any(NEWER in w for w in result['warnings'])   # named in the reasons, not twice


def test_another_sets_or_an_unknown_broken_manifest_is_a_warning_not_a_failure():
    other = dict(broken(NEWER), set='other', engine='postgresql', database='shop ')
    unknown = dict(broken(NEWER.replace('115000', '115500')), set='unknown', may_be_of=['shop', 'shop?'])
    older = dict(broken(OLDEST), set='this')
    result = judged(broken_manifests=[other, unknown, older])
    assert result['passed'], result['reasons']
    assert result['backup']['passed_over'] == []
    texts = '\n'.join(result['warnings'])
    assert 'another backup set (of postgresql/shop )' in texts and 'shared by the sets shop, shop?' in texts
    assert 'a backup of this set that the drill did not restore' in texts and OLDEST in texts
    assert len(result['warnings']) == 3, result['warnings']
