"""The catalog index's journal (issue 22, "catalog at scale"): a run that finds K manifests added, removed or
replaced since the index was sealed appends K rows to the index file (records chained from its body's SHA-256,
after the body) and seals it again, instead of rewriting and re-sealing every row. The trust rules are the sealed
index's: every manifest is still ``stat``ed after a directory change, a torn record (a writer killed mid-append)
is ignored, a record that lies is found when its manifest is used and the file dropped, two writers cannot both
append on the same tail, and every answer is the one a run that parses every manifest gives."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup import manifest as manifest_mod
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import INDEX_NAME
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import prune

BENCH = Path(__file__).resolve().parents[5] / 'bench'
sys.path.insert(0, str(BENCH))
import catalog_scale  # noqa: E402

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)
SUFFIX = manifest_mod.MANIFEST_SUFFIX
POLICY = retention.Policy(keep_last=2)


@pytest.fixture(autouse=True)
def small_index(monkeypatch):
    catalog_index.clear()
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)
    yield
    catalog_index.clear()


@pytest.fixture
def sealed(tmp_path):
    catalog_scale.generate(tmp_path, 240, databases=2, end=NOW)
    describe(str(tmp_path), now=NOW)   # writes (and seals) the index
    catalog_index.clear()
    return tmp_path


@pytest.fixture
def parses(monkeypatch):
    calls = []
    real = manifest_mod.read_manifest

    def counting(path):
        calls.append(os.path.basename(path))
        return real(path)
    monkeypatch.setattr(manifest_mod, 'read_manifest', counting)
    return calls


@contextlib.contextmanager
def no_index():
    old = os.environ['OPSREADY_CATALOG_INDEX_MIN']
    os.environ['OPSREADY_CATALOG_INDEX_MIN'] = str(10 ** 9)
    catalog_index.clear()
    try:
        yield
    finally:
        os.environ['OPSREADY_CATALOG_INDEX_MIN'] = old
        catalog_index.clear()


def questions(directory: Path):
    out = {}
    for database in (None, 'app00', 'app01'):
        catalog_index.clear()
        out['describe', database] = describe(str(directory), database=database, now=NOW, max_artifacts=5)
        catalog_index.clear()
        out['prune', database] = prune(str(directory), POLICY, database=database, check_mode=True, now=NOW)
    catalog_index.clear()
    return out


def assert_same_as_parsing_everything(directory: Path):
    answers = questions(directory)
    with no_index():
        truth = questions(directory)
    for key in truth:
        assert answers[key] == truth[key], key


def add_full(directory: Path, tag: str, minute: int) -> str:
    """A new full backup of app01 as the product writes it (a temporary file renamed into place)."""
    fulls = [m for m in Catalog(str(directory), database='app01').entries if m.kind == 'full' and '-full-' in m.id]
    source = Path(fulls[-1].manifest_path)
    catalog_index.clear()
    data = json.loads(source.read_text())
    data['id'] = data['artifact'] = data['artifact'].replace('-full-', '-full%s-' % tag)
    data['finished'] = '2026-12-04T11:%02d:00.000000Z' % minute
    (directory / data['artifact']).touch()
    temporary = directory / ('.tmp-' + tag)
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
    os.rename(temporary, directory / (data['artifact'] + SUFFIX))
    return data['artifact']


def body_end(raw: bytes) -> int:
    newline = raw.index(b'\n')
    return newline + 1 + sum(json.loads(raw[:newline])['sections'])


def without_seal(raw: bytes) -> bytes:
    at = raw.index(catalog_index.SEAL_KEY) + len(catalog_index.SEAL_KEY)
    return raw[:at] + raw[at + catalog_index.SEAL_WIDTH:]


def stats_of_manifests(monkeypatch):
    stats = []
    real = os.stat

    def counting(path, *args, **kwargs):
        if str(path).endswith(SUFFIX):
            stats.append(path)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(os, 'stat', counting)
    return stats


def test_a_run_after_one_new_manifest_appends_one_row_and_rewrites_nothing(sealed, parses, monkeypatch):
    index = sealed / INDEX_NAME
    before, inode = index.read_bytes(), index.stat().st_ino
    added = add_full(sealed, 'a', 30)
    parses.clear()
    info = describe(str(sealed), database='app01', now=NOW, max_artifacts=0)
    assert info['sets'][0]['newest'] == added
    after = index.read_bytes()
    assert index.stat().st_ino == inode, 'the index file was replaced (rewritten)'
    end = body_end(before)
    assert without_seal(after[:end]) == without_seal(before[:end]), 'the base rows were rewritten'
    assert 0 < len(after) - len(before) < 2048, 'one small record appended'
    changed_run = list(parses)
    # sealed again: the next run stats only what it uses
    catalog_index.clear()
    parses.clear()
    stats = stats_of_manifests(monkeypatch)
    info = describe(str(sealed), database='app01', now=NOW, max_artifacts=0)
    assert info['sets'][0]['newest'] == added
    assert info['chain'] and len(stats) <= 4 * (len(info['chain']) + 2) < 241, len(stats)
    # the run after the change parsed the new manifest (once) and what a sealed run reads (what it reports in
    # detail, the new full among it), not the 240 others
    assert added + SUFFIX in changed_run and sorted(changed_run) == sorted(parses), changed_run


def test_removed_replaced_and_added_manifests_go_to_the_journal(sealed):
    index = sealed / INDEX_NAME
    inode = index.stat().st_ino
    catalog = Catalog(str(sealed), database='app00')
    logs = [Path(m.manifest_path) for m in catalog.entries if m.kind == 'log']
    catalog_index.clear()
    logs[0].unlink()
    data = json.loads(logs[1].read_text())
    data['verification']['ok'] = False
    temporary = sealed / '.tmp-rewrite'
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
    os.rename(temporary, logs[1])   # what record_verification does
    add_full(sealed, 'b', 31)
    describe(str(sealed), now=NOW)
    assert index.stat().st_ino == inode
    assert_same_as_parsing_everything(sealed)
    assert index.stat().st_ino == inode
    assert describe(str(sealed), database='app00', now=NOW)['sets'][0]['failed_verification'] == [data['id']]


def test_several_runs_append_and_a_fresh_process_loads_the_base_and_every_record(sealed):
    index = sealed / INDEX_NAME
    inode = index.stat().st_ino
    for number in range(3):
        add_full(sealed, 'c%d' % number, 32 + number)
        describe(str(sealed), now=NOW)
        catalog_index.clear()
    assert index.stat().st_ino == inode
    columns, dummy = catalog_index.read_index(str(sealed), os.stat(sealed).st_dev)
    assert len(columns['stem']) == 243
    assert list(columns['stem']) == sorted(columns['stem'], key=lambda stem: stem + SUFFIX)
    assert_same_as_parsing_everything(sealed)


def test_a_torn_record_is_ignored_and_cut_by_the_next_append(sealed):
    index = sealed / INDEX_NAME
    add_full(sealed, 'd', 34)
    describe(str(sealed), now=NOW)
    catalog_index.clear()
    good = index.read_bytes()
    add_full(sealed, 'e', 35)
    describe(str(sealed), now=NOW)
    catalog_index.clear()
    full = index.read_bytes()
    assert len(full) > len(good)
    # a writer killed in the middle of its append: half a record after the valid ones, the old seal kept
    torn = full[:len(good)] + full[len(good):len(good) + (len(full) - len(good)) // 2]
    with open(index, 'r+b') as handle:
        handle.write(torn)
        handle.truncate()
    catalog_index._write_seal(str(sealed), json.loads(good[:good.index(b'\n')])['seal'].strip())
    assert_same_as_parsing_everything(sealed)
    add_full(sealed, 'f', 36)
    describe(str(sealed), now=NOW)
    catalog_index.clear()
    columns, dummy = catalog_index.read_index(str(sealed), os.stat(sealed).st_dev)
    assert len(columns['stem']) == 243, 'the torn record was cut, the manifests it missed read again'
    assert_same_as_parsing_everything(sealed)


def lie_in_the_last_record(index: Path) -> None:
    """Rewrite the last journal record so that its row of the new full says "never verified", under a valid chain
    and a seal that vouches for it (what a writer bug or the file's owner could do)."""
    raw = index.read_bytes()
    records = catalog_index.journal_records(raw)
    assert records, 'no journal record'
    offset, payload, previous = records[-1]
    dev = os.stat(index.parent).st_dev
    columns, dummy = catalog_index.parse_index(payload, dev)
    header = json.loads(payload[:payload.index(b'\n')])
    columns['verified'] = [None] * len(columns['verified'])
    lying = catalog_index.encode_record(dev, columns, header.get('drop') or [])
    record = catalog_index.journal_record(previous, lying)
    with open(index, 'r+b') as handle:
        handle.seek(offset)
        handle.write(record)
        handle.truncate()
    seal = json.loads(raw[:raw.index(b'\n')])['seal'].strip().split(':')
    assert len(seal) in (7, 8), seal   # (8: with the leftover candidates)
    seal[5] = str(offset + len(record) - body_end(raw))
    seal[6] = catalog_index.journal_chain(previous, lying).hex()
    catalog_index._write_seal(str(index.parent), ':'.join(seal))


def test_a_record_that_lies_is_found_when_used_and_the_file_dropped(sealed):
    index = sealed / INDEX_NAME
    added = add_full(sealed, 'g', 37)
    describe(str(sealed), now=NOW)
    catalog_index.clear()
    lie_in_the_last_record(index)
    with no_index():
        truth = describe(str(sealed), database='app01', now=NOW)
    catalog_index.clear()
    answer = describe(str(sealed), database='app01', now=NOW)
    assert answer == truth and answer['sets'][0]['newest_verified_full']['id'] == added
    catalog_index.clear()
    assert_same_as_parsing_everything(sealed)


def test_a_second_writer_never_appends_on_a_tail_it_did_not_read(sealed):
    """Two runs read the same index; one appends first. The other finds the tail moved under its lock and writes
    nothing (it still answers from the manifests it stat'ed)."""
    directory = os.path.abspath(str(sealed))
    index = sealed / INDEX_NAME
    Catalog(str(sealed))   # this "process" loads the index
    mine = catalog_index._DIRS[directory]
    add_full(sealed, 'h', 38)
    catalog_index.clear()
    describe(str(sealed), now=NOW)   # the other process appends and seals
    theirs = index.read_bytes()
    catalog_index.clear()
    add_full(sealed, 'i', 39)
    catalog_index._DIRS[directory] = mine
    info = describe(str(sealed), database='app01', now=NOW, max_artifacts=0)
    assert info['sets'][0]['newest'].startswith('mariadb-app01-fulli-')
    assert index.read_bytes()[len(theirs):] == b'' and without_seal(index.read_bytes()) == without_seal(theirs)
    assert_same_as_parsing_everything(sealed)


def test_an_index_locked_by_another_writer_is_left_as_it_is(sealed):
    index = sealed / INDEX_NAME
    add_full(sealed, 'j', 40)
    before = index.read_bytes()
    fd = os.open(index, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        describe(str(sealed), now=NOW)
        assert index.read_bytes() == before
    finally:
        os.close(fd)
    assert_same_as_parsing_everything(sealed)


def test_check_mode_after_a_change_writes_nothing(sealed):
    index = sealed / INDEX_NAME
    add_full(sealed, 'k', 41)
    before = index.read_bytes()
    prune(str(sealed), POLICY, check_mode=True, now=NOW)
    assert index.read_bytes() == before
    assert_same_as_parsing_everything(sealed)


def test_a_long_journal_is_compacted_into_a_new_base(sealed, monkeypatch):
    monkeypatch.setattr(catalog_index, 'JOURNAL_MAX_RECORDS', 2)
    index = sealed / INDEX_NAME
    inode = index.stat().st_ino
    for number in range(3):
        add_full(sealed, 'l%d' % number, 42 + number)
        describe(str(sealed), now=NOW)
        catalog_index.clear()
    raw = index.read_bytes()
    assert index.stat().st_ino != inode and len(raw) == body_end(raw), 'rewritten once, without a journal'
    assert catalog_index.journal_records(raw) == []
    # the fold renamed the file into the directory: the next run stats every manifest and seals it, in place
    describe(str(sealed), now=NOW)
    assert index.read_bytes() != raw and without_seal(index.read_bytes()) == without_seal(raw)
    catalog_index.clear()
    Catalog(str(sealed))
    assert catalog_index._DIRS[os.path.abspath(str(sealed))].seal is not None
    catalog_index.clear()
    assert_same_as_parsing_everything(sealed)


def test_the_record_chain_starts_at_the_body(sealed):
    """A record is chained from the SHA-256 of the body it follows: moved onto another base it is not applied."""
    index = sealed / INDEX_NAME
    add_full(sealed, 'm', 46)
    describe(str(sealed), now=NOW)
    catalog_index.clear()
    raw = index.read_bytes()
    offset, payload, previous = catalog_index.journal_records(raw)[0]
    newline = raw.index(b'\n')
    assert previous == bytes.fromhex(json.loads(raw[:newline])['sha256'])
    assert previous == hashlib.sha256(raw[newline + 1:body_end(raw)]).digest()


@pytest.mark.parametrize('changes', [1, 5, 16, 17, 60])
def test_merge_equals_a_sort_of_the_rows(changes):
    """``_merge`` (in place for a few changes, by slices for more) gives the rows a sort by manifest name gives."""
    import array
    import random
    rng = random.Random(changes)
    stems = sorted({'s%03d%s' % (rng.randrange(400), rng.choice(['', '-x', '.y', 'z'])) for dummy in range(150)},
                   key=lambda stem: stem + SUFFIX)
    rows = {stem: (stem, number, 'k%d' % number) for number, stem in enumerate(stems)}
    columns = [list(stems), array.array('q', range(len(stems))), ['k%d' % n for n in range(len(stems))]]
    change = {}
    for number in range(changes):
        stem = rng.choice(stems) if rng.random() < 0.5 else 's%03d%s' % (rng.randrange(400), rng.choice(['', '-', 'q']))
        change[stem] = None if rng.random() < 0.4 else (stem, 1000 + number, 'n%d' % number)
    for stem, values in change.items():
        if values is None:
            rows.pop(stem, None)
        else:
            rows[stem] = values
    assert catalog_index._merge(columns, change)
    expected = [rows[stem] for stem in sorted(rows, key=lambda stem: stem + SUFFIX)]
    assert list(zip(*columns)) == expected
    assert isinstance(columns[1], array.array)


def test_a_catalog_made_before_a_change_in_the_same_run_keeps_its_rows(sealed):
    """db_backup reads the catalog, writes a backup, then reads it again in the same run (one ``session``): the
    second scan's new rows must not move the rows under the first catalog's references."""
    source = Path(Catalog(str(sealed), database='app01').latest_full().manifest_path)
    catalog_index.clear()
    with catalog_index.session():
        first = Catalog(str(sealed), materialize=False)
        refs = first.set_refs()
        before = {key: [m.id for m in first._scan.build_set(first.directory, value)] for key, value in refs.items()}
        data = json.loads(source.read_text())
        data['id'] = data['artifact'] = data['artifact'].replace('-full-', '-fulln-')
        (sealed / data['artifact']).touch()
        temporary = sealed / '.tmp-n'
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
        os.rename(temporary, sealed / (data['artifact'] + SUFFIX))
        second = Catalog(str(sealed), materialize=False)
        assert sum(len(v) for v in second.set_refs().values()) == 241
        after = {key: [m.id for m in first._scan.build_set(first.directory, value)] for key, value in refs.items()}
    assert after == before


def test_the_previous_format_is_rebuilt_from_the_manifests(sealed, parses):
    """An index of the previous release (format 4: no origin column) is never read: its rows cannot say which server
    each backup came from, so the manifests are parsed again and a format-5 index written, sealed by the run after."""
    index = sealed / INDEX_NAME
    raw = index.read_bytes()
    newline = raw.index(b'\n')
    header = json.loads(raw[:newline])
    header['version'] = 4
    header['seal'] = ' ' * 160
    with open(index, 'r+b') as handle:   # in place, as the previous release left it
        handle.write(json.dumps(header, sort_keys=True).encode() + raw[newline:body_end(raw)])
        handle.truncate()
    with no_index():
        truth = describe(str(sealed), database='app01', now=NOW, max_artifacts=0)
    catalog_index.clear()
    parses.clear()
    assert describe(str(sealed), database='app01', now=NOW, max_artifacts=0) == truth
    assert len(parses) == 240, 'every manifest is parsed again: the old rows have no origin'
    assert json.loads(index.read_bytes()[:index.read_bytes().index(b'\n')])['version'] == catalog_index.INDEX_VERSION
    catalog_index.clear()
    describe(str(sealed), now=NOW)   # seals it
    catalog_index.clear()
    Catalog(str(sealed))
    assert catalog_index._DIRS[os.path.abspath(str(sealed))].seal is not None
    catalog_index.clear()
    assert_same_as_parsing_everything(sealed)
