"""The catalog answered from the index (rows kept as columns, objects built only for the asked set, one
listing shared with the leftover scan) says exactly what parsing every manifest says (issue 22), on a
catalog with every kind of entry: fulls, diffs, logs with a gap, failed and unverified artifacts, several
engines and sets, members, an artifact named apart from its manifest, broken manifests and leftovers.

Also: the temporary file of an index write killed half-way is removed once it is stale, and only then.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import remove_leftovers
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import INDEX_NAME
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import UTC, isoformat

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
START = NOW - datetime.timedelta(days=20)


def stamp(moment):
    return moment.strftime('%Y%m%dT%H%M%SZ')


def put(directory: Path, engine, database, kind, moment, position=None, parent=None, verified=True, members=None,
        artifact=None, manifest_name=None):
    name = artifact or '%s-%s-%s-%s' % (engine, database or 'all', kind, stamp(moment))
    body = name.encode()
    (directory / name).write_bytes(body)
    data = {'id': name, 'artifact': name, 'format': 1, 'engine': engine, 'database': database, 'kind': kind,
            'started': isoformat(moment - datetime.timedelta(seconds=30)), 'finished': isoformat(moment),
            'consistent_at': isoformat(moment), 'size': len(body), 'sha256': hashlib.sha256(body).hexdigest(),
            'compression': 'none', 'position': position or {}, 'parent': parent}
    if verified is not None:
        data['verification'] = {'ok': verified, 'checks': {}, 'verified_at': isoformat(moment)}
    if kind in ('log', 'wal'):
        data['covers_from'] = isoformat(moment - datetime.timedelta(hours=6))
    if members:
        data['members'] = [{'path': m, 'size': 1, 'sha256': '0' * 64} for m in members]
        for member in members:
            (directory / member).parent.mkdir(parents=True, exist_ok=True)
            (directory / member).write_bytes(b'm')
    (directory / (manifest_name or name + '.manifest.json')).write_text(json.dumps(data, indent=2, sort_keys=True))
    return name


def mixed_catalog(directory: Path) -> Path:
    # MariaDB, two sets: daily fulls and 6-hourly binlogs; one full failed verification, one unverified,
    # and set "crm" misses one binlog (a gap): its window has a hole.
    for database, gap in (('shop', None), ('crm', 37)):
        position = 1
        for day in range(20):
            moment = START + datetime.timedelta(days=day)
            verified = False if (database == 'shop' and day == 17) else None if day == 15 else True
            put(directory, 'mariadb', database, 'full', moment, {'log_start': position, 'binlog_pos': 4},
                verified=verified)
            for hour in (6, 12, 18, 24):
                if position != gap:
                    put(directory, 'mariadb', database, 'log', moment + datetime.timedelta(hours=hour, minutes=-1),
                        {'start': position, 'end': position + 1})
                position += 1
    # PostgreSQL: weekly base, daily diffs (one failed), WAL every 12 h
    segment = 100
    for day in range(20):
        moment = START + datetime.timedelta(days=day, minutes=5)
        if day % 7 == 0:
            base = put(directory, 'postgresql', None, 'base', moment, {'log_start': segment})
        else:
            put(directory, 'postgresql', None, 'diff', moment, {'log_start': segment}, parent=base,
                verified=False if day == 9 else True)
        for hour in (12, 24):
            put(directory, 'postgresql', None, 'wal', moment + datetime.timedelta(hours=hour, minutes=-2),
                {'start': segment, 'end': segment + 2})
            segment += 2
    # SQLite: dumps with members in a subdirectory and at the top; one artifact named apart from its manifest
    for day in range(0, 20, 3):
        moment = START + datetime.timedelta(days=day, minutes=9)
        put(directory, 'sqlite', 'notes', 'dump', moment,
            members=['sqlite-notes-%s.d/part1' % stamp(moment), 'sqlite-notes-%s.wal' % stamp(moment)])
    put(directory, 'sqlite', 'notes', 'dump', NOW - datetime.timedelta(hours=3), artifact='odd-name.db',
        manifest_name='sqlite-notes-dump-%s.manifest.json' % stamp(NOW - datetime.timedelta(hours=3)))
    # files backups (no database)
    for day in (1, 8, 15):
        put(directory, 'files', None, 'files', START + datetime.timedelta(days=day, minutes=11))
    # broken manifests, leftovers (artifact-stamped without a manifest, partial, an interrupted atomic write)
    (directory / ('mariadb-shop-full-%s.manifest.json' % stamp(NOW - datetime.timedelta(minutes=1)))).write_text('{')
    (directory / 'mariadb-shop-full-20261101T000000Z').write_bytes(b'x')
    (directory / 'mariadb-shop-full-20261102T000000Z.partial').write_bytes(b'x')
    (directory / '.mariadb-shop-full-20261103T000000Z.manifest.json.abcd1234.tmp').write_bytes(b'x')
    (directory / 'README').write_text('not ours')
    return directory


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    catalog_index.clear()
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


POLICIES = [retention.Policy(keep_last=2), retention.Policy(keep_daily=5, keep_weekly=2),
            retention.Policy(keep_days=3.5), retention.Policy()]
SETS = [(None, None), ('mariadb', 'shop'), ('mariadb', 'crm'), ('postgresql', None), ('sqlite', 'notes'),
        ('files', None), ('mariadb', None), (None, 'shop')]


def answers(directory: str):
    """Everything the catalog's users ask, each from a fresh run (a new process: only files carry over)."""
    out = {}
    for engine, database in SETS:
        for max_artifacts in (-1, 3):
            catalog_index.clear()
            out['describe', engine, database, max_artifacts] = describe(directory, engine=engine, database=database,
                                                                        now=NOW, max_artifacts=max_artifacts)
        for number, policy in enumerate(POLICIES):
            catalog_index.clear()
            out['prune', engine, database, number] = prune(directory, policy, engine=engine, database=database,
                                                           check_mode=True, now=NOW)
        catalog_index.clear()
        catalog = Catalog(directory, engine=engine, database=database)
        out['entries', engine, database] = [m.summary() for m in catalog.entries]
        out['all', engine, database] = sorted(m.id for m in catalog.all_entries)
        out['leftovers', engine, database] = catalog.leftovers()
        out['broken', engine, database] = catalog.broken
        if engine and database:
            for point in (None, START + datetime.timedelta(days=9, hours=8), START + datetime.timedelta(days=3)):
                try:
                    out['chain', engine, database, point] = [m.id for m in catalog.chain_for(point)]
                except catalog_index.CatalogError as exc:
                    out['chain', engine, database, point] = exc.message
            out['window', engine, database] = catalog.window()
            out['deps', engine, database] = [[d.id for d in catalog.dependents(m.id)] for m in catalog.entries]
    catalog_index.clear()
    out['remove_leftovers'] = remove_leftovers(directory, check_mode=True)
    out['remove_leftovers_set'] = remove_leftovers(directory, ['mariadb-shop-full-'], check_mode=True)
    return out


@pytest.mark.parametrize('first_run', [False, True])
def test_the_index_answers_exactly_what_parsing_every_manifest_answers(tmp_path, monkeypatch, first_run):
    """``first_run``: every run is the first on a large directory (no index file yet: check mode writes none),
    which keeps what it parsed and does not return as index rows (``ROWS_MIN``)."""
    directory = str(mixed_catalog(tmp_path))
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000000')
    parsed = answers(directory)
    assert not (tmp_path / INDEX_NAME).exists()
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    if first_run:
        monkeypatch.setattr(catalog_index, 'ROWS_MIN', 1)
        with catalog_index.read_only():
            indexed = answers(directory)
        assert not (tmp_path / INDEX_NAME).exists()
    else:
        describe(directory, now=NOW)
        assert (tmp_path / INDEX_NAME).exists()
        indexed = answers(directory)
    assert indexed.keys() == parsed.keys()
    for key in parsed:
        assert indexed[key] == parsed[key], key
    # the catalog is what it should be: not an empty answer compared with an empty answer
    assert len(parsed['all', None, None]) == 270 and parsed['leftovers', None, None] and parsed['broken', None, None]
    assert any(parsed['prune', None, None, n]['deleted'] for n in range(3))
    crm = parsed['describe', 'mariadb', 'crm', -1]
    assert len(crm['window']['spans']) > 1 and crm['sets'][0]['failed_verification'] == []
    assert parsed['describe', 'mariadb', 'shop', -1]['sets'][0]['failed_verification']


def test_one_set_builds_objects_for_that_set_only(tmp_path, monkeypatch):
    directory = str(mixed_catalog(tmp_path))
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    describe(directory, now=NOW)
    catalog_index.clear()
    built = []
    real = catalog_index.materialize

    def counting(directory, stem, row):
        built.append(stem)
        return real(directory, stem, row)
    monkeypatch.setattr(catalog_index, 'materialize', counting)
    catalog = Catalog(directory, engine='mariadb', database='crm')
    assert len(built) == len(catalog.entries) == 99
    assert catalog.leftovers() == Catalog(directory, use_index=False).leftovers()
    built.clear()
    Catalog(directory, materialize=False).leftovers()
    assert built == []


def test_a_first_run_keeps_rows_not_parsed_manifests_for_what_it_does_not_return(tmp_path, monkeypatch):
    """The first run on a large directory parses every manifest (no index yet); what it does not return is held
    as an index row, not as parsed JSON (~6 KB each: 1.5 GB at 200,000 manifests)."""
    directory = str(mixed_catalog(tmp_path))
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    monkeypatch.setattr(catalog_index, 'ROWS_MIN', 1)

    def parsed_held():
        return sorted(hit[1].id for hit in catalog_index._DIRS[directory].entries.values()
                      if len(hit) == 2 and not isinstance(hit[1], catalog_index.IndexedManifest))
    with catalog_index.read_only():
        catalog = Catalog(directory, engine='mariadb', database='crm')
        assert parsed_held() == sorted(m.id for m in catalog.entries) and len(catalog.entries) == 99
        catalog_index.clear()
        assert Catalog(directory, materialize=False).leftovers() and parsed_held() == []
        catalog_index.clear()
        assert describe(directory, now=NOW, max_artifacts=0)['artifacts_total'] == 270 and parsed_held() == []


def test_every_set_builds_no_object_for_a_log_it_does_not_return(tmp_path, monkeypatch):
    """With a sealed index, describe() of every set builds objects for the fulls and diffs and for what it returns
    or proves (chains, newest listed), never for the other logs (23 of 24 manifests at a year of hourly logs)."""
    directory = str(without_broken(mixed_catalog(tmp_path)))
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    describe(directory, now=NOW)
    catalog_index.clear()
    assert Catalog(directory, materialize=False)._scan.columns is not None, 'sealed'
    catalog_index.clear()
    everything = Catalog(directory, use_index=False).all_entries
    logs = {m.id for m in everything if m.is_log}
    catalog_index.clear()
    built = []
    real = catalog_index.materialize

    def counting(directory, stem, row):
        entry = real(directory, stem, row)
        built.append(entry.id)
        return entry
    monkeypatch.setattr(catalog_index, 'materialize', counting)
    answer = describe(directory, now=NOW, max_artifacts=3)
    returned = {a['id'] for a in answer['artifacts']} | {i for s in answer['sets'] for i in s['chain']}
    assert len(logs) > 150 and set(built) & logs <= returned, 'logs built that were not returned'
    assert len(built) == len(set(built))
    # backup_prune (check mode) of every set: objects for the fulls and diffs and for what it would delete
    for policy in POLICIES:
        catalog_index.clear()
        built.clear()
        answer = prune(directory, policy, check_mode=True, now=NOW)
        assert set(built) & logs <= set(answer['deleted_ids']), 'logs built that prune does not delete'
        assert len(answer['kept']) + len(answer['deleted']) == len(everything)


def test_a_session_reuses_a_sealed_listing_without_holding_its_names(tmp_path, monkeypatch):
    """Within one module run (``session``) a listing that matched the seal keeps the index's stems, not 200,000
    names; later catalogs of the run (other sets, a set parsed for deletion, the leftover scan) answer the same."""
    directory = str(without_broken(mixed_catalog(tmp_path)))
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    describe(directory, now=NOW)

    def run(check):
        out = {}
        catalog_index.clear()
        with catalog_index.session():
            for database in ('crm', 'shop', 'crm'):
                out[database] = [m.summary() for m in Catalog(directory, engine='mariadb', database=database).entries]
                check()
            out['parsed'] = [m.summary() for m in Catalog(directory, engine='mariadb',
                                                          parse_sets={('mariadb', 'crm')}).entries]
            out['leftovers'] = Catalog(directory, materialize=False).leftovers()
            out['all'] = sorted(m.id for m in Catalog(directory).entries)
        return out

    def names_dropped():
        known = catalog_index._DIRS[directory]
        assert len(known.sealed_stems) == 270
        # no listing held at all (the seal's names used: test_catalog_index_unlisted), or one holding the stems
        assert (known.listing is None and known.seal_others is not None) or known.listing[2] is known.sealed_stems
    sealed = run(names_dropped)
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000000')
    assert sealed == run(lambda: None)


def stale(path: Path, age_s: float) -> None:
    moment = path.lstat().st_mtime - age_s
    os.utime(path, (moment, moment), follow_symlinks=False)


def test_a_killed_index_write_leaves_no_temporary_for_ever(tmp_path, monkeypatch):
    """A run killed between mkstemp and rename leaves '.<index>.XXXX.tmp': the next run that writes the index
    removes it once it is older than TMP_STALE_S; a fresh one (a writer at work), a link, a directory, a file
    with two links, and names that are not ours are left alone."""
    directory = mixed_catalog(tmp_path)
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    prefix = '.' + INDEX_NAME + '.'
    old = directory / (prefix + 'killed01.tmp')
    old.write_bytes(b'{"half": ')
    fresh = directory / (prefix + 'writing1.tmp')
    fresh.write_bytes(b'{')
    target = tmp_path / 'elsewhere'
    target.write_bytes(b'keep')
    link = directory / (prefix + 'link0001.tmp')
    link.symlink_to(target)
    folder = directory / (prefix + 'folder01.tmp')
    folder.mkdir()
    linked = directory / (prefix + 'hardlnk1.tmp')
    linked.write_bytes(b'{')
    os.link(linked, tmp_path / 'second-link')
    other = directory / '.something-else.tmp'
    other.write_bytes(b'x')
    for path in (old, link, folder, linked, other):
        stale(path, catalog_index.TMP_STALE_S + 60)
    # ctime cannot be put back: the age test is on mtime and ctime, so pretend the clock moved on
    later = catalog_index.time.time() + catalog_index.TMP_STALE_S + 60
    monkeypatch.setattr(catalog_index, 'TMP_STALE_S', catalog_index.TMP_STALE_S)
    real_time = catalog_index.time.time

    class Clock:
        time_ns = staticmethod(catalog_index.time.time_ns)
        sleep = staticmethod(catalog_index.time.sleep)

        @staticmethod
        def time():
            return later
    monkeypatch.setattr(catalog_index, 'time', Clock)
    fresh_moment = later - 10
    os.utime(fresh, (fresh_moment, fresh_moment))
    with catalog_index.read_only():      # check mode removes nothing, not even a stale temporary
        describe(str(directory), now=NOW)
    assert old.exists()
    catalog_index.clear()
    describe(str(directory), now=NOW)
    assert not old.exists(), 'the stale temporary is removed'
    assert fresh.exists() and link.is_symlink() and target.read_bytes() == b'keep' and folder.is_dir()
    assert linked.exists() and other.exists()
    assert (directory / INDEX_NAME).is_file()
    assert real_time() < later


def without_broken(directory: Path) -> Path:
    """``mixed_catalog`` without its broken manifest: a listing the index holds exactly, so the index is sealed and
    answered from its columns (``catalog.RowView``)."""
    for path in directory.glob('*.manifest.json'):
        if path.read_text() == '{':
            path.unlink()
    return directory


@pytest.mark.parametrize('index', [False, True, 'sealed'])
def test_set_by_set_answers_exactly_what_the_whole_catalog_answers(tmp_path, monkeypatch, index):
    """describe and prune (check mode) answer set after set holding one set's objects at a time (issue 22: the
    whole catalog's objects were the peak memory); same results, in the same order (compared as JSON text).
    ``sealed``: a catalog whose index is sealed, answered from the columns (``RowView``)."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_jobs
    directory = str(mixed_catalog(tmp_path))
    if index == 'sealed':
        without_broken(tmp_path)
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1' if index else '1000000')
    describe(directory, now=NOW)
    assert (tmp_path / INDEX_NAME).exists() == bool(index)
    catalog_index.clear()
    # with an index, rows are answered from its columns; sealed only when the listing is exactly its rows (no broken
    # manifest): otherwise every manifest is stat'ed (catalog_index._incremental)
    assert (Catalog(directory, materialize=False)._scan.columns is not None) == bool(index)
    assert (catalog_index._DIRS[os.path.abspath(directory)].seal is not None) == (index == 'sealed')
    results = {}
    for per_set in (False, True):
        monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
        out = results[per_set] = {}
        for engine, database in SETS + [('nosuch', None)]:
            for max_artifacts in (-1, 0, 1, 3, 130, 269, 270, 271):
                catalog_index.clear()
                out['describe', engine, database, max_artifacts] = describe(
                    directory, engine=engine, database=database, now=NOW, max_artifacts=max_artifacts)
            for point in (START + datetime.timedelta(days=9, hours=8), START + datetime.timedelta(days=3), START):
                catalog_index.clear()
                out['describe', engine, database, point] = describe(
                    directory, engine=engine, database=database, now=NOW, max_artifacts=3, point=point)
            for number, policy in enumerate(POLICIES):
                for min_age in (3600, None, 0):
                    catalog_index.clear()
                    out['prune', engine, database, number, min_age] = prune(
                        directory, policy, engine=engine, database=database, check_mode=True, now=NOW,
                        leftover_min_age=min_age)
    for key, whole in results[False].items():
        assert json.dumps(results[True][key], default=str) == json.dumps(whole, default=str), key
    assert len(results[True]['describe', None, None, 3]['sets']) == 5
    assert results[True]['prune', None, None, 1, 3600]['deleted']


def test_set_by_set_refuses_what_the_whole_catalog_refuses(tmp_path, monkeypatch):
    """A plan that would break a kept chain is refused the same way (the per-set dependency check)."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_jobs
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
    directory = str(mixed_catalog(tmp_path))
    real = retention._plan_group

    def broken(entries, catalog, policy, now):   # a planning bug: every log doomed, the fulls kept
        keep, delete = real(entries, catalog, policy, now)
        for entry in entries:
            if entry.is_log and entry.id in keep:
                delete[entry.id] = keep.pop(entry.id)
        return keep, delete
    monkeypatch.setattr(retention, '_plan_group', broken)
    messages = []
    for per_set in (False, True):
        monkeypatch.setattr(catalog_jobs, 'PER_SET', per_set)
        catalog_index.clear()
        with pytest.raises(OpsReadyError) as caught:
            prune(directory, retention.Policy(keep_last=2), check_mode=True, now=NOW)
        messages.append(caught.value.message)
    assert messages[0] == messages[1] and 'a log a kept backup replays' in messages[0]


def test_a_file_named_as_a_manifest_whose_artifact_is_named_apart_is_a_leftover(tmp_path, monkeypatch):
    """The leftover scan subtracts the manifests' stems from the listing (most artifacts are named so); a
    manifest naming another artifact does not vouch for a file named as its stem, index or not."""
    directory = mixed_catalog(tmp_path)
    moment = NOW - datetime.timedelta(hours=3)
    stray = directory / ('sqlite-notes-dump-%s' % stamp(moment))
    stray.write_bytes(b'not the artifact')
    answers = []
    for minimum in ('1000000', '1'):
        monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', minimum)
        catalog_index.clear()
        describe(str(directory), now=NOW)
        catalog_index.clear()
        answers.append(Catalog(str(directory)).leftovers())
        assert (directory / INDEX_NAME).exists() == (minimum == '1')
    assert answers[0] == answers[1] and str(stray) in answers[1]
    assert str(directory / 'mariadb-shop-full-20261101T000000Z') in answers[1]
    assert not any('odd-name' in path or '.d' in os.path.basename(path) for path in answers[1])


def test_an_index_read_before_the_listing_is_dropped_for_a_directory_below_the_minimum(tmp_path, monkeypatch):
    """The index is decoded before the listing (the run's memory peak then holds no listing); a directory
    that has fewer manifests than the minimum is still scanned without it, and answers the same."""
    directory = str(mixed_catalog(tmp_path))
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    with_index = describe(directory, now=NOW)
    assert (tmp_path / INDEX_NAME).exists()
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000000')
    catalog_index.clear()
    assert describe(directory, now=NOW) == with_index
    known = catalog_index._DIRS[directory]
    assert not known.index_current and known.seal is None and known.columns is None
    assert catalog_index._SIZE[0] == len(known.entries) == 270


def test_integer_columns_are_packed_only_when_every_value_fits():
    """The always-integer columns are held as 64-bit arrays; inode numbers may use all 64 bits (unsigned),
    times may be negative; a column with both stays a list. Every value reads back the same."""
    for column, typecode in (([5, -3, 2 ** 63 - 1], 'q'), ([2 ** 64 - 1, 7], 'Q'), ([-1, 2 ** 64 - 1], None),
                             ([2 ** 70], None), ([], 'q')):
        packed = catalog_index._packed(list(column))
        assert list(packed) == column
        assert (packed.typecode if typecode else type(packed)) == (typecode or list)
