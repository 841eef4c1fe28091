"""The catalog index (issue 22) through real ansible-playbook runs of backup_info and backup_prune: the
index file is written 0600, never in check mode; a manifest replaced, removed or added, and a damaged
index, are all noticed; max_artifacts bounds the result. The catalog is what MariaDB backups leave (the
bench's generator writes the product's own manifest bytes); OPSREADY_CATALOG_INDEX_MIN=1 makes this
small directory indexed (the default threshold is 1,000 manifests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.harness.playbook import run_playbook, write_playbook

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'bench'))
import catalog_scale  # noqa: E402

INDEX = '.opsready-catalog-index.json'
ENV = {'OPSREADY_CATALOG_INDEX_MIN': '1'}


def info(name, path, **options):
    return {'name': name, 'opsready.operations.backup_info': dict(path=str(path), **options)}


def test_index_follows_the_manifests_through_ansible(tmp_path):
    catalog = tmp_path / 'catalog'
    catalog_scale.generate(catalog, 72, databases=1)   # 3 days: 3 fulls, 69 hourly logs of app00
    fulls = sorted(p for p in catalog.iterdir() if '-full-' in p.name and p.name.endswith('.manifest.json'))
    newest, middle = fulls[-1], fulls[-2]
    # a replacement of the newest full's manifest: its verification failed since
    failed = json.loads(newest.read_text())
    failed['verification']['ok'] = False
    (tmp_path / 'failed.json').write_text(json.dumps(failed, indent=2, sort_keys=True) + '\n')
    fresh = tmp_path / 'fresh'
    catalog_scale.generate(fresh, 24, databases=1)
    index = str(catalog / INDEX)
    book = write_playbook(tmp_path, [
        {'name': 'settle', 'ansible.builtin.pause': {'seconds': 2}},   # no manifest "just written" any more
        info('check mode', fresh, max_artifacts=-1) | {'check_mode': True},
        {'name': 'no index in check mode', 'ansible.builtin.stat': {'path': str(fresh / INDEX)}, 'register': 'nix'},
        info('first', catalog, engine='mariadb', database='app00', max_artifacts=5),
        {'name': 'index', 'ansible.builtin.stat': {'path': index}},
        {'name': 'replace the newest full manifest', 'ansible.builtin.copy': {
            'src': str(tmp_path / 'failed.json'), 'dest': str(newest), 'mode': '0600'}},
        info('after replace', catalog, engine='mariadb', database='app00'),
        {'name': 'remove the middle full manifest', 'ansible.builtin.file': {'path': str(middle), 'state': 'absent'}},
        info('after remove', catalog, max_artifacts=-1),
        {'name': 'damage the index', 'ansible.builtin.copy': {'content': '{"format": "opsready-catalog-index"}\n[]',
                                                              'dest': index, 'mode': '0600'}},
        info('after damage', catalog, max_artifacts=-1),
        {'name': 'index again', 'ansible.builtin.stat': {'path': index, 'get_checksum': True}},
        {'name': 'prune check', 'check_mode': True,
         'opsready.operations.backup_prune': {'path': str(catalog), 'keep_last': 1}},
    ])
    book_text = json.loads(Path(book).read_text())
    book_text[0]['environment'] = ENV
    Path(book).write_text(json.dumps(book_text))
    run = run_playbook(book)
    assert run.rc == 0, run.stdout[-4000:]

    check = run.result('check mode')
    assert check['changed'] is False and check['artifacts_total'] == 24 and len(check['artifacts']) == 24
    assert run.result('no index in check mode')['stat']['exists'] is False

    first = run.result('first')
    assert first['artifacts_total'] == 72 and first['artifacts_truncated'] is True
    listed = [a['id'] for a in first['artifacts']]
    assert set(first['chain']) <= set(listed) and len(listed) == len(set(first['chain']) | set(listed[-5:]))
    assert first['sets'][0]['kinds'] == {'full': 3, 'log': 69}
    assert first['newest_full']['id'] + '.manifest.json' == newest.name
    st = run.result('index')['stat']
    assert st['exists'] and st['mode'] == '0600' and st['isreg']

    replaced = run.result('after replace')
    assert replaced['newest_full']['id'] + '.manifest.json' == middle.name, 'the failed full is no candidate'
    assert replaced['newest_verified_full']['id'] == replaced['newest_full']['id']
    assert replaced['chain'][0] + '.manifest.json' == middle.name
    assert replaced['sets'][0]['failed_verification'] == [failed['id']]

    removed = run.result('after remove')
    assert removed['artifacts_total'] == 71 and removed['artifacts_truncated'] is False
    assert middle.name[:-len('.manifest.json')] not in [a['id'] for a in removed['artifacts']]
    # the middle full's artifact is now a leftover: no manifest vouches for it
    assert removed['leftovers'] == [str(middle)[:-len('.manifest.json')]]

    damaged = run.result('after damage')
    for key in ('artifacts', 'leftovers', 'broken_manifests'):
        assert damaged[key] == removed[key], key
    timeless = [{k: v for k, v in s.items() if k != 'rpo_seconds'} for s in removed['sets']]
    assert [{k: v for k, v in s.items() if k != 'rpo_seconds'} for s in damaged['sets']] == timeless
    again = run.result('index again')['stat']
    assert again['size'] > 1000 and again['mode'] == '0600', 'the damaged index was rebuilt'

    # keep_last=1 keeps the only usable full left (the oldest) and every log it replays; the failed
    # newest full goes (in check mode: only reported)
    pruned = run.result('prune check')
    failed_artifact = str(catalog / failed['artifact'])
    assert pruned['changed'] is True and pruned['deleted'] == [failed_artifact]
    assert Path(failed_artifact).exists() and newest.exists(), 'check mode deleted nothing'


def test_prune_result_is_cut_to_max_listed_through_ansible(tmp_path):
    """backup_prune at scale (issue 22) through ansible-playbook: the registered result lists at most max_listed
    entries per list, counts every one, and check mode lists and counts what the real run then deletes; a task
    reading the counts works whatever the cut."""
    catalog = tmp_path / 'catalog'
    catalog_scale.generate(catalog, 480, databases=2)   # 10 days of 2 databases: 20 fulls, 460 logs
    prune = {'path': str(catalog), 'keep_last': 2, 'max_listed': 25}
    book = write_playbook(tmp_path, [
        {'name': 'settle', 'ansible.builtin.pause': {'seconds': 2}},
        {'name': 'whole', 'check_mode': True, 'opsready.operations.backup_prune': dict(prune, max_listed=-1)},
        {'name': 'check', 'check_mode': True, 'opsready.operations.backup_prune': prune, 'register': 'plan'},
        {'name': 'say', 'ansible.builtin.debug': {
            'msg': '{{ plan.deleted_count }} to delete, {{ plan.kept_count }} kept, cut {{ plan.lists_truncated }}'}},
        {'name': 'real', 'opsready.operations.backup_prune': prune},
    ])
    run = run_playbook(book)
    assert run.rc == 0, run.stdout[-4000:]
    whole, check, real = run.result('whole'), run.result('check'), run.result('real')
    assert whole['lists_truncated'] is False and len(whole['deleted']) == whole['deleted_count'] > 25
    assert check['lists_truncated'] is True and 'max_listed: -1' in check['lists_note']
    for key in ('deleted', 'deleted_ids', 'reasons', 'kept', 'leftovers_removed'):
        assert len(check[key]) <= 25, key
        assert check[key] == real[key], key
    assert check['deleted'] == whole['deleted'][:25]
    for key in ('deleted_count', 'kept_count', 'leftovers_removed_count'):
        assert check[key] == real[key] == whole[key], key
    said = '%d to delete, %d kept, cut True' % (whole['deleted_count'], whole['kept_count'])
    assert run.result('say')['msg'] == said
    assert not any(Path(p).exists() for p in whole['deleted']), 'every planned deletion is done, listed or not'
    assert all(Path(p).exists() for p in whole['kept'])
