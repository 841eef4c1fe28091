"""backup_prune's result stays small at scale (issue 22): ``max_listed`` caps what ``deleted``, ``deleted_ids``,
``reasons``, ``kept`` and ``leftovers_removed`` list, the counts stay exact, and check mode lists what the real run
then lists. Run the way Ansible runs the module (its own process, arguments from a file); the catalog is the bench's
generated MariaDB catalog (the product's own manifest bytes).

At 200,000 manifests the uncut result was ~46 MB of JSON, which ``exit_json`` copied (``remove_values``) and encoded:
more time and memory than the prune itself, and a job event AWX stores in its database.
"""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

import pytest

from tests.unit.plugins.modules.test_conformance_round7 import run_module

BENCH = Path(__file__).resolve().parents[4] / 'bench'
sys.path.insert(0, str(BENCH))
import catalog_scale  # noqa: E402

LISTED = ('deleted', 'deleted_ids', 'reasons', 'kept', 'leftovers_removed')


def _catalog(tmp_path: Path, count: int = 600, databases: int = 2) -> Path:
    """``count`` manifests over ``databases`` MariaDB sets (a daily full and 23 hourly logs each), ending an hour ago
    (each full's verification recorded its artifact's stat: prune trusts it without reading it)."""
    catalog = tmp_path / 'catalog'
    catalog_scale.generate(catalog, count, databases=databases,
                           end=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1))
    return catalog


def _run(tmp_path: Path, params: dict, check: bool = True) -> dict:
    result, printed = run_module(tmp_path, 'backup_prune', params, check=check)
    assert not result.get('failed') and 'unparsed' not in result, printed[-3000:]
    return result


def test_result_lists_at_most_max_listed_with_exact_counts(tmp_path):
    """Each list carries at most ``max_listed`` entries: the oldest deletions (in deletion order, their ids and
    reasons alike), the first kept paths in path order; the counts are every entry's."""
    catalog = _catalog(tmp_path)
    params = {'path': str(catalog), 'keep_last': 3}
    everything = _run(tmp_path, dict(params, max_listed=-1))
    assert len(everything['deleted']) > 100 and len(everything['kept']) > 100, 'the catalog must exceed the cap'
    assert everything['lists_truncated'] is False
    cut = _run(tmp_path, dict(params, max_listed=50))
    assert cut['changed'] is True and cut['lists_truncated'] is True
    assert cut['deleted'] == everything['deleted'][:50]
    assert cut['deleted_ids'] == everything['deleted_ids'][:50]
    assert cut['reasons'] == {p: everything['reasons'][p] for p in cut['deleted']}
    assert list(cut['kept']) == sorted(everything['kept'])[:50]
    assert cut['kept'] == {p: everything['kept'][p] for p in cut['kept']}
    assert cut['deleted_count'] == everything['deleted_count'] == len(everything['deleted'])
    assert cut['kept_count'] == everything['kept_count'] == len(everything['kept'])
    assert cut['leftovers_removed_count'] == 0
    assert 'max_listed' in cut['lists_note'] and '-1' in cut['lists_note']
    assert 'lists_note' not in everything


def test_default_caps_at_1000_and_a_small_catalog_is_listed_whole(tmp_path):
    catalog = _catalog(tmp_path, count=1300, databases=1)
    big = _run(tmp_path, {'path': str(catalog), 'keep_last': 1})
    assert big['deleted_count'] > 1000 and len(big['deleted']) == 1000 and len(big['reasons']) == 1000
    assert len(big['deleted_ids']) == 1000 and big['lists_truncated'] is True
    assert big['kept_count'] == len(big['kept']) < 1000
    small = _run(tmp_path, {'path': str(catalog), 'keep_last': 30})   # ~720 kept, ~580 deleted
    assert small['lists_truncated'] is False and 'lists_note' not in small
    assert small['deleted_count'] == len(small['deleted']) > 0 and small['kept_count'] == len(small['kept']) > 0


def test_check_mode_lists_what_the_real_run_lists(tmp_path):
    catalog = _catalog(tmp_path)
    params = {'path': str(catalog), 'keep_last': 3, 'max_listed': 40}
    checked = _run(tmp_path, params, check=True)
    assert all(os.path.exists(p) for p in checked['deleted']), 'check mode deleted nothing'
    real = _run(tmp_path, params, check=False)
    for key in LISTED + ('deleted_count', 'kept_count', 'leftovers_removed_count', 'lists_truncated', 'changed'):
        assert checked[key] == real[key], key
    assert not any(os.path.exists(p) for p in real['deleted'])
    again = _run(tmp_path, params, check=False)
    assert again['changed'] is False and again['deleted_count'] == 0 and again['kept_count'] == real['kept_count']


def test_leftovers_removed_are_cut_and_counted(tmp_path):
    """Artifacts whose manifests are gone are leftovers: every one is removed, the first ``max_listed`` (by path) are
    listed, the count is exact."""
    catalog = _catalog(tmp_path, count=48, databases=1)
    manifests = sorted(p for p in catalog.iterdir() if '-log-' in p.name and p.name.endswith('.manifest.json'))
    orphans = sorted(str(p)[:-len('.manifest.json')] for p in manifests[-5:])
    for manifest in manifests[-5:]:
        manifest.unlink()
    params = {'path': str(catalog), 'keep_last': 5, 'leftover_min_age': 0, 'max_listed': 2}
    checked = _run(tmp_path, params, check=True)
    real = _run(tmp_path, params, check=False)
    for result in (checked, real):
        assert result['leftovers_removed'] == orphans[:2] and result['leftovers_removed_count'] == 5
        assert result['lists_truncated'] is True
    assert not any(os.path.exists(p) for p in orphans), 'every leftover is removed, listed or not'


@pytest.mark.parametrize('value', [-2, -100])
def test_max_listed_below_minus_one_is_refused(tmp_path, value):
    result, printed = run_module(tmp_path, 'backup_prune', {'path': str(tmp_path), 'keep_last': 1,
                                                            'max_listed': value}, check=True)
    assert result.get('failed') is True and 'max_listed' in result['msg'] and '-1' in result['msg'], printed[-2000:]


def _lines(text: str) -> list:
    assert text.endswith('\n')
    return text[:-1].split('\n')


def test_diff_is_cut_like_the_lists_and_says_so(tmp_path):
    """``--diff`` named every artifact before and after (~200,000 lines at a year of hourly backups, whatever
    ``max_listed`` said): now it names what the cut lists name, with a last line that says what it leaves out."""
    catalog = _catalog(tmp_path)
    params = {'path': str(catalog), 'keep_last': 3}
    whole, printed = run_module(tmp_path, 'backup_prune', dict(params, max_listed=-1), check=True, diff=True)
    assert not whole.get('failed'), printed[-3000:]
    names = sorted(os.path.basename(p) for p in list(whole['kept']) + whole['deleted'])
    assert _lines(whole['diff']['before']) == names, 'max_listed -1: every artifact, as before'
    assert _lines(whole['diff']['after']) == sorted(os.path.basename(p) for p in whole['kept'])
    cut, printed = run_module(tmp_path, 'backup_prune', dict(params, max_listed=50), check=True, diff=True)
    assert not cut.get('failed') and cut['lists_truncated'] is True, printed[-3000:]
    before, after = _lines(cut['diff']['before']), _lines(cut['diff']['after'])
    listed_kept = sorted(os.path.basename(p) for p in cut['kept'])
    assert before[:-1] == sorted(listed_kept + [os.path.basename(p) for p in cut['deleted']])
    assert after[:-1] == listed_kept
    # the diff's removed lines are the listed deletions, its last lines say what is left out and how to see it
    assert set(before[:-1]) - set(after[:-1]) == {os.path.basename(p) for p in cut['deleted']}
    hidden = cut['deleted_count'] - 50 + cut['kept_count'] - 50
    assert str(hidden) in before[-1] and 'max_listed' in before[-1] and '-1' in before[-1], before[-1]
    assert str(cut['kept_count'] - 50) in after[-1] and 'max_listed' in after[-1], after[-1]
    assert cut['diff']['before_header'] == cut['diff']['after_header'] == str(catalog)
    assert len(cut['diff']['before']) < len(whole['diff']['before']) / 3
