"""Round 10: whose an unreadable manifest of a shared backup directory is (backup/set_files.py).

The drill claimed every torn manifest whose name began like its chain's newest artifact: names were not injective
(``app x``/``app_x``, ``/a/app.db``/``/b/app.db``), so another set's torn manifest failed this set's drill."""

from __future__ import annotations

import json

from ansible_collections.opsready.operations.plugins.module_utils.backup import set_files
from ansible_collections.opsready.operations.plugins.module_utils.backup.set_names import set_name

STAMP = '20261129T115000000000Z'


def _torn(tmp_path, name, data, cut):
    path = tmp_path / (name + '.manifest.json')
    text = json.dumps(data, indent=2, sort_keys=True)
    path.write_text(text[:text.index(cut)] if cut else text[:30])
    return {'manifest': str(path), 'error': 'invalid JSON'}


def _whose(tmp_path, broken, engine, database, sets=()):
    return set_files.attribute([broken], engine, database, lambda: list(sets))[0]


def test_a_torn_manifest_is_attributed_by_what_its_text_still_holds(tmp_path):
    data = {'engine': 'postgresql', 'database': 'app x', 'kind': 'full', 'id': 'x'}
    name = 'postgresql-app_x-full-%s.dump.zst' % STAMP   # a name both app x and app_x had before 0.10
    late = _torn(tmp_path, name, data, '"id"')          # database and engine both there
    assert _whose(tmp_path, late, 'postgresql', 'app_x')['set'] == 'other'
    assert _whose(tmp_path, late, 'postgresql', 'app x')['set'] == 'this'
    between = _torn(tmp_path, name + '2', data, '"engine"')   # database only (keys are sorted)
    assert _whose(tmp_path, between, 'postgresql', 'app_x')['set'] == 'other'
    assert _whose(tmp_path, between, 'postgresql', 'app x')['set'] == 'this'
    assert _whose(tmp_path, between, 'mariadb', 'app x')['set'] == 'other'   # not a name mariadb writes


def test_a_name_alone_is_this_sets_only_where_no_other_set_shares_it(tmp_path):
    early = _torn(tmp_path, 'postgresql-app_x-full-%s.dump.zst' % STAMP, {}, None)
    assert _whose(tmp_path, early, 'postgresql', 'app_x')['set'] == 'this'
    shared = _whose(tmp_path, early, 'postgresql', 'app_x', sets=[('postgresql', 'app x'), ('postgresql', 'app_x')])
    assert shared['set'] == 'unknown' and shared['may_be_of'] == ['app x', 'app_x']
    new = _torn(tmp_path, 'postgresql-%s-full-%s.dump.zst' % (set_name('app x'), STAMP), {}, None)
    assert _whose(tmp_path, new, 'postgresql', 'app_x', sets=[('postgresql', 'app x')])['set'] == 'other'
    assert _whose(tmp_path, new, 'postgresql', 'app x', sets=[('postgresql', 'app_x')])['set'] == 'this'
    # a file set's archive: its name is the set's own
    archive = _torn(tmp_path, 'app-2-%s.tar.zst' % STAMP, {}, None)
    assert _whose(tmp_path, archive, 'files', 'app')['set'] == 'other'
    assert _whose(tmp_path, archive, 'files', 'app-2')['set'] == 'this'


def test_a_link_or_a_directory_is_never_read(tmp_path):
    target = tmp_path / 'secret.json'
    target.write_text('{\n  "database": "app",\n  "engine": "postgresql"')
    link = tmp_path / ('postgresql-other-full-%s.dump.zst.manifest.json' % STAMP)
    link.symlink_to(target)
    assert set_files.salvage(str(link)) == {}
    assert set_files.salvage(str(tmp_path)) == {}
