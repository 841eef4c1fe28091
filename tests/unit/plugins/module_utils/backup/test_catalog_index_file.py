"""The persistent catalog index (backup/catalog_index.py, issue 22): derived from the manifests, never
trusted over them. Each "run" is simulated by forgetting the process cache (catalog_index.clear()), so
only the index file carries knowledge from one run to the next."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index, retention
from ansible_collections.opsready.operations.plugins.module_utils.backup import manifest as manifest_mod
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import INDEX_NAME
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import describe, prune

BENCH = Path(__file__).resolve().parents[5] / 'bench'
sys.path.insert(0, str(BENCH))
import catalog_scale  # noqa: E402

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(autouse=True)
def small_index(monkeypatch):
    catalog_index.clear()
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1')
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 0)   # files written here count as settled at once
    yield
    catalog_index.clear()


@pytest.fixture
def parses(monkeypatch):
    """Manifest files parsed (the index file itself is not a manifest)."""
    calls = []
    real = manifest_mod.read_manifest

    def counting(path):
        calls.append(os.path.basename(path))
        return real(path)
    monkeypatch.setattr(manifest_mod, 'read_manifest', counting)
    return calls


def make(directory: Path, count: int = 96, databases: int = 2) -> Path:
    catalog_scale.generate(directory, count, databases=databases, end=NOW)
    return directory


def new_run():
    catalog_index.clear()


def rewrite_in_place(path: Path, change) -> None:
    """Edit a manifest in place, same size, mtime put back: only ctime (and the content) tell."""
    before = path.stat()
    data = json.loads(path.read_text())
    change(data)
    text = json.dumps(data, indent=2, sort_keys=True) + '\n'
    text = text[:-1] + ' ' * (before.st_size - len(text.encode())) + '\n' if len(text.encode()) < before.st_size \
        else text
    with open(path, 'r+') as handle:   # same inode
        handle.write(text)
        handle.truncate()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def newest_full_manifest(directory: Path, database='app01') -> Path:
    return Path(Catalog(str(directory), database=database).latest_full().manifest_path)


def test_index_written_0600_and_a_second_run_parses_nothing(tmp_path, parses):
    make(tmp_path)
    first = describe(str(tmp_path), now=NOW)
    index = tmp_path / INDEX_NAME
    assert stat.S_IMODE(index.lstat().st_mode) == 0o600 and len(parses) == 96
    new_run()
    parses.clear()
    second = describe(str(tmp_path), now=NOW, max_artifacts=0)
    # only what it returns is read from JSON: the newest full of each set
    assert sorted(parses) == sorted(os.path.basename(s['newest_full']['path']) + manifest_mod.MANIFEST_SUFFIX
                                    for s in second['sets']), 'an unchanged catalog is answered from the index'
    for key in ('sets', 'broken_manifests', 'leftovers'):
        assert second[key] == first[key]
    assert second['artifacts'] == [] and second['artifacts_total'] == 96 and second['artifacts_truncated']
    # the artifacts a run returns are read from their manifests (and checked against the index)
    new_run()
    full = describe(str(tmp_path), now=NOW, max_artifacts=-1)
    assert full['artifacts'] == first['artifacts'] and len(first['artifacts']) == 96
    assert catalog_index.INDEX_NAME not in [os.path.basename(p) for p in full['leftovers']]


def test_an_indexed_entry_answers_like_the_manifest(tmp_path):
    make(tmp_path, 48, databases=1)
    parsed = {m.id: m for m in Catalog(str(tmp_path)).entries}
    new_run()
    indexed = Catalog(str(tmp_path)).entries
    assert all(isinstance(m, catalog_index.IndexedManifest) for m in indexed)
    for entry in indexed:
        twin = parsed[entry.id]
        for name in ('id', 'kind', 'engine', 'database', 'parent', 'path', 'manifest_path', 'started', 'finished',
                     'consistent_at', 'covers_from', 'finished_us', 'pos_start', 'pos_end', 'log_start', 'verified',
                     'members', 'member_paths', 'position', 'is_full', 'is_log', 'artifact_name'):
            assert getattr(entry, name) == getattr(twin, name), name
        assert entry.summary() == twin.summary()


def test_an_indexed_entry_whose_manifest_changed_under_the_run_refuses(tmp_path):
    make(tmp_path, 24, databases=1)
    describe(str(tmp_path), now=NOW)
    new_run()
    entry = Catalog(str(tmp_path)).latest_full()
    assert isinstance(entry, catalog_index.IndexedManifest)
    rewrite_in_place(Path(entry.manifest_path), lambda d: d['verification'].update(ok=False))
    with pytest.raises(catalog_index.CatalogError, match='changed while this run was reading the catalog'):
        entry.summary()


def test_max_artifacts_newest_plus_the_chain(tmp_path):
    make(tmp_path, 96, databases=2)
    one = describe(str(tmp_path), database='app01', now=NOW, max_artifacts=3)
    ids = [a['id'] for a in one['artifacts']]
    assert set(one['chain']) <= set(ids) and ids[-3:] == one['chain'][-3:]
    assert one['artifacts_total'] == 48 and one['artifacts_truncated']
    finished = [a['finished'] for a in one['artifacts']]
    assert finished == sorted(finished)
    assert one['sets'][0]['kinds'] == {'full': 2, 'log': 46}


@pytest.mark.parametrize('change', ['edited', 'removed', 'added'])
def test_a_changed_removed_or_added_manifest_is_noticed(tmp_path, parses, change):
    make(tmp_path)
    before = describe(str(tmp_path), database='app01', now=NOW)
    newest = newest_full_manifest(tmp_path)
    new_run()
    if change == 'edited':   # the newest full failed a later verification: never a restore candidate
        rewrite_in_place(newest, lambda d: d['verification'].update(ok=False))
    elif change == 'removed':
        newest.unlink()
    else:
        data = json.loads(newest.read_text())
        data['id'] = data['artifact'] = data['artifact'].replace('full', 'full2')
        data['finished'] = (NOW + datetime.timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
        (tmp_path / (data['artifact'] + manifest_mod.MANIFEST_SUFFIX)).write_text(json.dumps(data))
        (tmp_path / data['artifact']).touch()
    parses.clear()
    after = describe(str(tmp_path), database='app01', now=NOW, max_artifacts=0)
    # read from JSON: the changed manifest, and what the run returns (the chain, the newest fulls)
    returned = {a['id'] + manifest_mod.MANIFEST_SUFFIX for a in after['artifacts']}
    returned |= {after[k]['id'] + manifest_mod.MANIFEST_SUFFIX for k in ('newest_full', 'newest_verified_full')}
    if change != 'removed':
        changed = newest.name if change == 'edited' else data['artifact'] + manifest_mod.MANIFEST_SUFFIX
        assert changed in parses
        returned.add(changed)
    assert set(parses) <= returned and len(parses) == len(set(parses)), parses
    if change == 'added':
        assert after['artifacts_total'] == before['artifacts_total'] + 1
        assert after['sets'][0]['newest'] == data['id']
    else:
        assert after['newest_full']['id'] != before['newest_full']['id']
        assert before['newest_full']['id'] not in after['chain']
    # and the rewritten index says so: a third run agrees without parsing anything
    new_run()
    parses.clear()
    assert describe(str(tmp_path), database='app01', now=NOW, max_artifacts=0)['sets'] == after['sets']
    assert set(parses) <= returned - ({changed} if change != 'removed' else set()) | {
        a['id'] + manifest_mod.MANIFEST_SUFFIX for a in after['artifacts']}


def corrupt_flip(index: Path) -> None:
    raw = bytearray(index.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    index.write_bytes(bytes(raw))


def corrupt_truncate(index: Path) -> None:
    index.write_bytes(index.read_bytes()[:len(index.read_bytes()) // 3])


def reencode(index: Path, change) -> None:
    """Decode the index, ``change(columns)``, encode it again with a matching checksum (owner and mode kept)."""
    dev = os.stat(index.parent).st_dev
    columns, dummy = catalog_index.parse_index(index.read_bytes(), dev)
    change(columns)
    index.write_bytes(catalog_index.encode_index(dev, columns))


def corrupt_types(index: Path) -> None:
    """A checksum that matches a body of the wrong shape (a bug or another version): still refused."""
    def change(columns):
        columns['kind'][0] = 'snapshot'   # not a kind: encoded as a string code all the same
    reencode(index, change)


# Tampering with the binary index (format 3) under a checksum that matches, so that each check behind the
# checksum is what refuses it: a writer of the file (its owner) could do this, and must only get it refused.
def split_index(index: Path):
    raw = index.read_bytes()
    newline = raw.index(b'\n')
    header = json.loads(raw[:newline])
    body = bytearray(raw[newline + 1:])
    sections, at = {}, 0
    for name, length in zip(catalog_index.SECTIONS, header['sections']):
        sections[name] = (at, at + length)
        at += length
    return header, body, sections


def write_index(index: Path, header, body) -> None:
    header['sha256'] = hashlib.sha256(bytes(body)).hexdigest()
    index.write_bytes(json.dumps(header, sort_keys=True).encode() + b'\n' + bytes(body))


def binary_truncated(index: Path) -> None:
    header, body, dummy = split_index(index)
    write_index(index, header, body[:-5])


def binary_section_lengths(index: Path) -> None:
    """Same total, a section boundary moved: every array's length must be rows x its item size."""
    header, body, dummy = split_index(index)
    lengths = header['sections']
    at = catalog_index.SECTIONS.index('ino')
    lengths[at] -= 8
    lengths[at + 1] += 8
    write_index(index, header, body)


def binary_huge_counts(index: Path) -> None:
    header, body, dummy = split_index(index)
    header['rows'], header['strings'] = 10 ** 12, 10 ** 9
    write_index(index, header, body)


def binary_separator_flipped(index: Path) -> None:
    header, body, sections = split_index(index)
    start, end = sections['stem']
    body[body.index(0, start, end)] = ord('x')    # two names run together: one name too few
    write_index(index, header, body)


def binary_code_out_of_range(index: Path) -> None:
    header, body, sections = split_index(index)
    start = sections['engine'][0]
    body[start:start + 4] = (10 ** 6).to_bytes(4, sys.byteorder)
    write_index(index, header, body)


def binary_verified_out_of_range(index: Path) -> None:
    header, body, sections = split_index(index)
    body[sections['verified'][0]] = 7
    write_index(index, header, body)


def binary_stem_with_a_slash(index: Path) -> None:
    header, body, sections = split_index(index)
    start = sections['stem'][0]
    body[start + 3] = ord('/')
    write_index(index, header, body)


def binary_members_not_lists(index: Path) -> None:
    header, body, sections = split_index(index)
    start, end = sections['members']
    members = b'{"__class__": "os.system", "args": ["true"]}'
    body[start:end] = members
    header['sections'][catalog_index.SECTIONS.index('members')] = len(members)
    write_index(index, header, body)


def binary_members_nested(index: Path) -> None:
    """JSON nested deeper than the parser's recursion limit: refused, not a crash."""
    header, body, sections = split_index(index)
    start, end = sections['members']
    members = b'[' * 100_000 + b']' * 100_000
    body[start:end] = members
    header['sections'][catalog_index.SECTIONS.index('members')] = len(members)
    write_index(index, header, body)


def binary_other_machine(index: Path) -> None:
    header, body, dummy = split_index(index)
    header['machine'] = 'big' + header['machine'][header['machine'].index(':'):]
    write_index(index, header, body)


def binary_older_version(index: Path) -> None:
    header, body, dummy = split_index(index)
    header['version'] = 2
    write_index(index, header, body)


def binary_string_not_utf8(index: Path) -> None:
    """A string of the table (a kind, an engine, a database name) that is not UTF-8: the rewrite that follows must
    not take it (it encodes the table strictly); refused when read."""
    header, body, sections = split_index(index)
    start, end = sections['strings']
    at = bytes(body[start:end]).index(b'mariadb')   # an engine name (kinds are checked against the known ones)
    body[start + at] = 0xff
    write_index(index, header, body)


def binary_engine_lies(index: Path) -> None:
    """The same under a matching checksum and a seal that still vouches for the directory, but valid UTF-8: every row
    of one engine names another (what a writer bug or the file's owner could do). The manifests are unchanged
    since their rows were made, so it is the index that is wrong: it must be dropped and rebuilt, not make every
    later run stop with "changed while this run was reading the catalog: run again"."""
    header, body, sections = split_index(index)
    start, end = sections['strings']
    at = bytes(body[start:end]).index(b'mariadb')
    body[start + at] = ord('x')
    write_index(index, header, body)


def foreign_owner(index: Path) -> None:
    os.chown(index, 65534, 65534)


def group_writable(index: Path) -> None:
    os.chmod(index, 0o620)


def hard_linked(index: Path) -> None:
    os.link(index, index.parent / 'elsewhere')


@pytest.mark.parametrize('damage', [corrupt_flip, corrupt_truncate, corrupt_types, foreign_owner, group_writable,
                                    hard_linked, binary_truncated, binary_section_lengths, binary_huge_counts,
                                    binary_separator_flipped, binary_code_out_of_range, binary_verified_out_of_range,
                                    binary_stem_with_a_slash, binary_members_not_lists, binary_members_nested,
                                    binary_other_machine, binary_older_version, binary_string_not_utf8,
                                    binary_engine_lies])
def test_a_corrupt_or_foreign_index_is_ignored_and_rebuilt(tmp_path, parses, damage):
    if damage is foreign_owner and os.geteuid() != 0:
        pytest.skip('chown needs root')
    make(tmp_path)
    expected = describe(str(tmp_path), now=NOW)
    index = tmp_path / INDEX_NAME
    damage(index)
    new_run()
    parses.clear()
    assert describe(str(tmp_path), now=NOW) == expected
    # every manifest parsed: the index was not used (a lie is found by parsing one manifest the sealed scan used)
    assert len(parses) == 96 + (damage is binary_engine_lies), 'the index was used'
    fresh = catalog_index.read_index(str(tmp_path), os.stat(tmp_path).st_dev)
    assert fresh is not None and len(fresh[0]['stem']) == 96, 'rebuilt'
    assert index.stat().st_uid == os.geteuid() and stat.S_IMODE(index.stat().st_mode) == 0o600


def test_a_symlink_at_the_index_name_is_never_read_nor_written_through(tmp_path, parses):
    make(tmp_path)
    describe(str(tmp_path), now=NOW)
    good = (tmp_path / INDEX_NAME).read_bytes()
    target = tmp_path.parent / (tmp_path.name + '-target')
    target.write_bytes(good)    # a valid index of this very directory, reached through a link
    (tmp_path / INDEX_NAME).unlink()
    (tmp_path / INDEX_NAME).symlink_to(target)
    new_run()
    parses.clear()
    describe(str(tmp_path), now=NOW)
    assert len(parses) == 96, 'the linked index was not read'
    assert target.read_bytes() == good, 'nothing was written through the link'
    assert not (tmp_path / INDEX_NAME).is_symlink() and (tmp_path / INDEX_NAME).is_file()


def test_a_racily_clean_manifest_is_never_indexed(tmp_path, monkeypatch):
    make(tmp_path, 24, databases=1)
    monkeypatch.setattr(catalog_index, 'SETTLE_NS', 3600 * 10 ** 9)   # everything was "just written"
    describe(str(tmp_path), now=NOW)
    assert not (tmp_path / INDEX_NAME).exists()


def test_check_mode_writes_no_index(tmp_path):
    make(tmp_path)
    prune(str(tmp_path), retention.Policy(keep_last=1), check_mode=True, now=NOW)
    with catalog_index.read_only():
        describe(str(tmp_path), now=NOW)
    assert not (tmp_path / INDEX_NAME).exists()


def test_below_the_threshold_no_index_file(tmp_path, monkeypatch):
    monkeypatch.setenv('OPSREADY_CATALOG_INDEX_MIN', '1000')
    make(tmp_path)
    describe(str(tmp_path), now=NOW)
    assert not (tmp_path / INDEX_NAME).exists()


def test_a_lying_index_of_our_own_never_makes_prune_delete_the_wrong_backup(tmp_path):
    """An index with a valid checksum and owner that says the newest full of app01 failed verification:
    check mode shows what the index says, but deletions are planned again from the manifests."""
    make(tmp_path, 240, databases=2)
    truth = prune(str(tmp_path), retention.Policy(keep_last=1), check_mode=True, now=NOW)
    index = tmp_path / INDEX_NAME
    describe(str(tmp_path), now=NOW)
    newest = os.path.basename(newest_full_manifest(tmp_path))

    def change(columns):
        columns['verified'][columns['stem'].index(newest[:-len(manifest_mod.MANIFEST_SUFFIX)])] = False
    reencode(index, change)
    os.chmod(index, 0o600)
    new_run()
    lied = prune(str(tmp_path), retention.Policy(keep_last=1), check_mode=True, now=NOW)
    newest_artifact = str(tmp_path / newest[:-len(manifest_mod.MANIFEST_SUFFIX)])
    assert newest_artifact in lied['deleted'], 'the lie reaches check mode (it is only a report)'
    new_run()
    done = prune(str(tmp_path), retention.Policy(keep_last=1), now=NOW)
    assert done['deleted'] == truth['deleted'] and newest_artifact not in done['deleted']
    assert os.path.exists(newest_artifact) and os.path.exists(newest_artifact + manifest_mod.MANIFEST_SUFFIX)
    new_run()
    assert Catalog(str(tmp_path), database='app01').chain_for(None)[0].id == os.path.basename(newest_artifact)


def test_an_unwritable_directory_works_without_an_index(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('runs the reader as another user (needs root)')
    tmp_path = Path(tempfile.mkdtemp(prefix='opsready-catalog-ro-', dir='/tmp'))
    try:
        _unwritable(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _unwritable(tmp_path):
    make(tmp_path / 'backups')
    os.chmod(tmp_path, 0o755)
    expected = describe(str(tmp_path / 'backups'), now=NOW)
    (tmp_path / 'backups' / INDEX_NAME).unlink()
    for path in (tmp_path / 'backups').iterdir():
        os.chmod(path, 0o644)
    os.chmod(tmp_path / 'backups', 0o755)
    code = ('import json, sys, datetime\n'
            'from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe\n'
            'now = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)\n'
            'print(json.dumps(describe(sys.argv[1], now=now)["sets"]))\n')
    # The other user reads a copy of module_utils (the catalog code is stdlib only) with the system interpreter: the
    # checkout and its venv may sit below a directory only root can enter (CI clones into a 0700 mktemp directory).
    from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_jobs
    source = Path(catalog_jobs.__file__).resolve().parents[1]
    pkg = tmp_path / 'pkg'
    copy = pkg / 'ansible_collections' / 'opsready' / 'operations' / 'plugins' / 'module_utils'
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns('__pycache__'))
    for base, _dirs, files in os.walk(pkg):
        os.chmod(base, 0o755)
        for name in files:
            os.chmod(os.path.join(base, name), 0o644)
    env = dict(os.environ, OPSREADY_CATALOG_INDEX_MIN='1', PYTHONPATH=str(pkg), PYTHONDONTWRITEBYTECODE='1')
    run = subprocess.run(['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups',
                          os.path.realpath(sys.executable), '-c', code,
                          str(tmp_path / 'backups')], capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == json.loads(json.dumps(expected['sets']))
    assert not (tmp_path / 'backups' / INDEX_NAME).exists()


def test_a_lying_index_in_a_read_only_run_is_answered_around_and_left_unsealed(tmp_path, parses):
    """backup_info reads under ``read_only()`` (it writes nothing): a lying index found there is not removed, only
    unsealed, and each such run answers from the manifests; the next run that may write drops it."""
    make(tmp_path)
    expected = describe(str(tmp_path), now=NOW)
    index = tmp_path / INDEX_NAME
    binary_engine_lies(index)
    lying = index.read_bytes()
    for dummy in range(2):
        new_run()
        with catalog_index.read_only():
            assert describe(str(tmp_path), now=NOW) == expected
        assert index.exists() and catalog_index.seal_of(index.read_bytes()) is None
        assert index.read_bytes().split(b'\n', 1)[1] == lying.split(b'\n', 1)[1], 'rows left as they were'
    new_run()
    assert describe(str(tmp_path), now=NOW) == expected
    fresh = catalog_index.read_index(str(tmp_path), os.stat(tmp_path).st_dev)
    assert fresh is not None and 'mariadb' in fresh[1] and 'xariadb' not in fresh[1], 'rebuilt from the manifests'


def test_a_sets_logs_in_order_are_answered_without_parsing_their_manifests(tmp_path, parses):
    """db_backup's log run asks Catalog.logs() of its set: the order of two WAL segments with one number (the
    timeline) lives in the manifest's JSON, and reading it for every log parsed the whole set on each run (bench:
    db_backup's catalog work 0.88 -> 1.35 s at 200,000 manifests). Only starts held twice may need it."""
    make(tmp_path, count=240, databases=2)
    Catalog(str(tmp_path), database='app01').logs()      # builds the index
    new_run()
    parses.clear()
    logs = Catalog(str(tmp_path), database='app01').logs()
    assert len(logs) > 100
    assert parses == [], '%d manifests parsed to order the logs' % len(parses)
    starts = [log.pos_start for log in logs]
    assert starts == sorted(starts)
