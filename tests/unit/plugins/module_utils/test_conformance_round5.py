"""Conformance, round 5: the manifest decoder against JSON (RFC 8259) and against the manifest's own shape.

Whoever can write a backup directory can plant a manifest, and a disk or a copy can corrupt one. The catalog's
contract (catalog.Catalog.broken) is that a manifest it cannot trust is listed as broken, with why, and skipped:
the other backups of the directory stay listed, restorable and prunable. Each case here is one malformed
manifest beside a good full backup, on real files, through the real catalog scan: it must be refused by
``read_manifest`` with an OpsReadyError that names the file, and listed in ``broken``; never a traceback
(AttributeError, TypeError, RecursionError) and never a catalog that fails as a whole.

What JSON itself refuses: NaN and Infinity (not JSON values), duplicate member names (RFC 8259 4: "names
SHOULD be unique"; two ``sha256`` members would mean two checksums), nesting deeper than the decoder recurses.
What the manifest's shape refuses: times that are not ISO 8601 text with a zone, a ``position`` that is not an
object or whose chain positions are not integers, names that are not text, a size that is not a byte count.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog, manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

GOOD = {'id': 'good', 'artifact': 'good', 'engine': 'files', 'database': 'etc', 'kind': 'files',
        'started': '2026-11-29T00:00:00Z', 'finished': '2026-11-29T00:00:01Z', 'size': 1, 'sha256': '0' * 64,
        'compression': 'none', 'origin': 'db1', 'format': 1}
BAD = dict(GOOD, id='bad', artifact='bad', started='2026-11-30T00:00:00Z', finished='2026-11-30T00:00:01Z')
BAD_TEXT = json.dumps(BAD, sort_keys=True)


def swap(old: str, new: str) -> str:
    assert old in BAD_TEXT
    return BAD_TEXT.replace(old, new, 1)


def with_member(name: str, raw: str) -> str:
    return BAD_TEXT[:-1] + ', "%s": %s}' % (name, raw)


# (case id, manifest text, what the error must say)
CASES = [
    ('size NaN', swap('"size": 1', '"size": NaN'), 'NaN'),
    ('size Infinity', swap('"size": 1', '"size": Infinity'), 'Infinity'),
    ('size -Infinity', swap('"size": 1', '"size": -Infinity'), 'Infinity'),
    ('size 1e999', swap('"size": 1', '"size": 1e999'), 'size'),
    ('position start NaN', with_member('position', '{"start": NaN, "end": 2}'), 'NaN'),
    ('duplicate sha256', with_member('sha256', '"%s"' % ('f' * 64)), 'sha256'),
    ('duplicate key inside position', with_member('position', '{"start": 1, "start": 7}'), 'start'),
    ('nesting 100000 deep', with_member('x', '[' * 100000 + ']' * 100000), 'nested'),
    ('finished a number', swap('"finished": "2026-11-30T00:00:01Z"', '"finished": 5'), 'finished'),
    ('finished a list', swap('"finished": "2026-11-30T00:00:01Z"', '"finished": ["2026-11-30T00:00:01Z"]'),
     'finished'),
    ('finished not a time', swap('"finished": "2026-11-30T00:00:01Z"', '"finished": "yesterday"'), 'finished'),
    ('finished without zone', swap('"finished": "2026-11-30T00:00:01Z"', '"finished": "2026-11-30T00:00:01"'),
     'finished'),
    ('started a number', swap('"started": "2026-11-30T00:00:00Z"', '"started": 0'), 'started'),
    ('consistent_at a number', with_member('consistent_at', '17'), 'consistent_at'),
    ('covers_from an object', with_member('covers_from', '{}'), 'covers_from'),
    ('position a list', with_member('position', '[1, 2]'), 'position'),
    ('position start a string', with_member('position', '{"start": "1"}'), 'position'),
    ('position end a float', with_member('position', '{"start": 1, "end": 2.5}'), 'position'),
    ('position log_start true', with_member('position', '{"log_start": true}'), 'position'),
    ('database a list', swap('"database": "etc"', '"database": ["etc"]'), 'database'),
    ('engine a number', swap('"engine": "files"', '"engine": 5'), 'engine'),
    ('parent an object', with_member('parent', '{"id": "good"}'), 'parent'),
    ('origin a number', swap('"origin": "db1"', '"origin": 7'), 'origin'),
    ('size a string', swap('"size": 1', '"size": "1"'), 'size'),
    ('size negative', swap('"size": 1', '"size": -1'), 'size'),
    ('size true', swap('"size": 1', '"size": true'), 'size'),
    ('sha256 a number', swap('"sha256": "%s"' % ('0' * 64), '"sha256": 0'), 'sha256'),
    ('encryption a list', with_member('encryption', '["age"]'), 'encryption'),
    ('verification a string', with_member('verification', '"ok"'), 'verification'),
    ('top level an array', '[%s]' % BAD_TEXT, 'not a JSON object'),
    ('trailing data', BAD_TEXT + ' {}', 'Extra data'),
    ('not UTF-8', BAD_TEXT.replace('etc', 'e\udcfftc', 1), 'UTF-8'),
]


def write(directory, name: str, text: str) -> str:
    (directory / name).write_bytes(b'x')
    path = directory / (name + manifest.MANIFEST_SUFFIX)
    path.write_bytes(text.encode('utf-8', 'surrogateescape'))
    return str(path)


@pytest.fixture()
def directory(tmp_path):
    write(tmp_path, 'good', json.dumps(GOOD))
    return tmp_path


@pytest.mark.parametrize('case,text,says', CASES, ids=[c[0] for c in CASES])
def test_malformed_manifest_is_refused_and_the_catalog_goes_on(directory, case, text, says):
    path = write(directory, 'bad', text)
    with pytest.raises(OpsReadyError) as caught:
        manifest.read_manifest(path)
    message = caught.value.message
    assert path in message and says in message, message
    # The catalog: the bad one listed as broken with the same message, the good one still a usable chain.
    for use_index in (True, False):
        found = catalog.Catalog(str(directory), use_index=use_index)
        assert [b['manifest'] for b in found.broken] == [path], found.broken
        assert [m.id for m in found.entries] == ['good']
        assert [m.id for m in found.chain_for()] == ['good']
        found.window()


def test_the_good_manifest_and_one_written_by_write_manifest_still_read(directory):
    """The checks refuse nothing the collection writes: a manifest through write_manifest reads back."""
    artifact = directory / 'written'
    artifact.write_bytes(b'y')
    data = dict(GOOD, id='written', artifact='written', position={'start': 3, 'end': 4, 'wal_file': 'x'},
                consistent_at=None, parent=None, database=None, raw_size=None, verification={'ok': True},
                encryption=None, members=[{'path': 'a/b', 'size': 1, 'sha256': '1' * 64}])
    manifest.write_manifest(str(artifact), data)
    entry = manifest.read_manifest(str(artifact) + manifest.MANIFEST_SUFFIX)
    assert entry.pos_start == 3 and entry.consistent_at == entry.finished
    assert manifest.read_manifest(str(directory / 'good.manifest.json')).id == 'good'


def test_write_manifest_refuses_what_read_manifest_would(tmp_path):
    """NaN is not JSON: a manifest is never written that its own reader refuses."""
    artifact = tmp_path / 'a'
    artifact.write_bytes(b'z')
    with pytest.raises(OpsReadyError, match='NaN'):
        manifest.write_manifest(str(artifact), dict(GOOD, id='a', artifact='a', ratio=float('nan')))
    assert not os.path.exists(str(artifact) + manifest.MANIFEST_SUFFIX)


def test_a_pull_sets_a_deep_manifest_aside_like_any_broken_one(directory):
    """A pull checks every broken manifest of the destination for names that leave the directory (tampering); one
    nested deeper than json recurses is broken like any other, not a RecursionError that stops the pull."""
    from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy

    write(directory, 'bad', with_member('x', '[' * 100000 + ']' * 100000))
    found = catalog.Catalog(str(directory))
    copy._refuse_escaping_manifests(found, type('Store', (), {'url': 'test://'})())
    with pytest.raises(ValueError):
        copy.manifest_sha256(str(directory / 'bad.manifest.json'))
    assert copy.manifest_sha256(str(directory / 'good.manifest.json')) == '0' * 64


# ODBC connection strings (the health check's ``connection_string``, SQL Server's client): a value in braces runs to
# the ``}`` that is not doubled, ``;`` and ``=`` included. The check names itself by the string's driver, server,
# port and database: read naively (split on ``;``), a password ``{x;Database=S3CRET}`` gave "Database=S3CRET}" -
# part of the password - as a database, in the check's name, its messages, the history and the metrics labels.
HOSTILE_PASSWORDS = ['x;Database=S3CRET', 'S3CRET}};Server=evil', '{S3CRET', ';;Port=S3CRET;', 'a=b;Driver=S3CRET']


@pytest.mark.parametrize('password', HOSTILE_PASSWORDS)
def test_health_db_check_name_never_holds_part_of_a_braced_password(password):
    from ansible_collections.opsready.operations.plugins.module_utils.health import db_check
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.client import odbc_value

    text = 'Driver={PostgreSQL Unicode};Server=db1;Port=5432;Database=app;UID=mon;PWD=%s;' % odbc_value(password)
    shown = db_check.describe_connection_string(text)
    assert shown == 'Driver={PostgreSQL Unicode};Server=db1;Port=5432;Database=app'
    assert dict(db_check.odbc_pairs(text))['PWD'] == odbc_value(password)


@pytest.mark.parametrize('value', HOSTILE_PASSWORDS + ['{}', '}', 'plain'])
def test_sqlserver_connection_string_round_trips_every_value(value):
    """SQL Server's client writes every value braced: read back as the driver manager reads it, each key has exactly
    the value given (a user or password cannot add a key, e.g. Trusted_Connection or a second SERVER)."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlserver.client import SQLServerClient
    from ansible_collections.opsready.operations.plugins.module_utils.health import db_check

    conn = ConnectionParams(host=value, user=value, password=value)
    text = SQLServerClient(conn).connection_string(database=value)
    pairs = db_check.odbc_pairs(text)
    assert [k for k, dummy in pairs] == ['DRIVER', 'SERVER', 'DATABASE', 'Encrypt', 'TrustServerCertificate', 'APP',
                                         'UID', 'PWD']
    unbraced = {k: v[1:-1].replace('}}', '}') for k, v in pairs if v.startswith('{')}
    assert unbraced['UID'] == unbraced['PWD'] == unbraced['DATABASE'] == value
    assert unbraced['SERVER'] == value + (',%d' % conn.port if conn.port else '')


# The drill's Markdown report against CommonMark (markdown-it-py, what GitLab/GitHub-style viewers implement): a name
# or a message - a step's error quotes the server, and the server quotes what the restored backup holds - must stay
# text. Raw HTML (``<img onerror>``, ``<a href>``), a link ``[PASSED](http://...)`` or a code span closed early by
# the value's own backticks would make the report show what the drill did not say.
MARKUP = ['<img src=x onerror=alert(1)>', '<a href="http://evil.example/">PASSED</a>', '[PASSED](http://evil.example/)',
          'x `` <script>alert(1)</script> ``', '![i](http://evil.example/t.png)', '<http://evil.example/>']


def test_drill_markdown_report_keeps_every_value_text():
    from markdown_it import MarkdownIt

    from ansible_collections.opsready.operations.plugins.module_utils.drill.report import build_report, render_markdown

    steps = [{'name': 'restore', 'started': '2026-11-29T12:00:01Z', 'finished': '2026-11-29T12:00:05Z', 'ok': False,
              'error': ' / '.join(MARKUP)}]
    databases = [{'name': value, 'engine': 'postgresql', 'steps': steps, 'objectives': {'rpo_seconds': 60},
                  'source': value, 'scratch': value,
                  'backup': {'recoverable_until': '2026-11-29T11:59:50Z', 'id': value, 'chain': [value]}}
                 for value in MARKUP]
    report = build_report(databases, started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:07Z', host=MARKUP[0],
                          title=MARKUP[2])
    html = MarkdownIt('commonmark').render(render_markdown(report))
    for tag in ('<img', '<a ', '<script', '<a href'):
        assert tag not in html, 'markup from the data rendered: %s' % html[html.index(tag) - 200:html.index(tag) + 200]
    for value in MARKUP:   # and each value is still there to read, as text
        assert value.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;') in html, \
            value


def test_patch_report_markdown_keeps_every_value_text():
    """patch_report's Markdown: a reason quotes apt/dnf (which quote the repositories), a host is an inventory name.
    A line break started a row or heading of its own (``# Patching run ...: all patched``), markup rendered."""
    from markdown_it import MarkdownIt

    from ansible_collections.opsready.operations.plugins.module_utils.patching.report import render_markdown

    hostile = 'E: failed\n# Patching run r1: all patched\n| db9 | patched | - | - | - | - |'
    report = {'run_id': 'r1', 'started': '2026-11-29T12:00:00Z', 'updated': '2026-11-29T12:05:00Z',
              'hosts': {'db1': {'status': 'failed', 'reason': hostile},
                        MARKUP[0]: {'status': 'failed', 'reason': ' / '.join(MARKUP),
                                    'held': [{'name': MARKUP[2], 'new': '1'}]}}}
    text = render_markdown(report)
    assert [line for line in text.splitlines() if line.startswith('#')] == ['# Patching run r1']
    assert not any(line.startswith('| db9') for line in text.splitlines())
    html = MarkdownIt('commonmark').enable('table').render(text)
    for tag in ('<img', '<a ', '<script'):
        assert tag not in html, html
    assert html.count('<tr>') == 3   # the header and one row per host


# JSON-lines histories and state files: a line (or file) nested deeper than Python's json recurses raised
# RecursionError, which none of the readers caught. The histories promise "a torn or foreign line is skipped, never
# fatal" (the drill report directory may be another account's); a state file says what is wrong with it.
DEEP = '[' * 100000 + ']' * 100000


def test_jsonl_histories_skip_a_line_nested_too_deep(tmp_path):
    from ansible_collections.opsready.operations.plugins.module_utils.drill import report
    from ansible_collections.opsready.operations.plugins.module_utils.health import history, incidents
    from ansible_collections.opsready.operations.plugins.module_utils.insights import deltas

    good = json.dumps({'started': '2026-11-29T12:00:00Z', 't': 1.0, 'key': 'k', 'passed': True})
    (tmp_path / 'drills.jsonl').write_text(good + '\n' + DEEP + '\n')
    assert [e['started'] for e in report.read_history(str(tmp_path))] == ['2026-11-29T12:00:00Z']
    (tmp_path / 'health.jsonl').write_text(good + '\n' + DEEP + '\n')
    samples, bad = history.load(str(tmp_path / 'health.jsonl'))
    assert len(samples) == 1 and bad == 1
    (tmp_path / 'insights.jsonl').write_text(DEEP + '\n')
    assert deltas.previous(str(tmp_path / 'insights.jsonl'), 'k') is None
    (tmp_path / 'incidents.jsonl').write_text(DEEP + '\n')
    store = incidents.IncidentStore(str(tmp_path / 'incidents.jsonl'))
    assert store.load() == {}


@pytest.mark.parametrize('which', ['notify ledger', 'log_rotate state', 'patch report'])
def test_state_files_nested_too_deep_are_a_clear_error(tmp_path, which):
    from ansible_collections.opsready.operations.plugins.module_utils.logrotate import triggers
    from ansible_collections.opsready.operations.plugins.module_utils.notify import ledger
    from ansible_collections.opsready.operations.plugins.module_utils.patching import report

    path = tmp_path / 'state.json'
    path.write_text(DEEP)
    opener = {'notify ledger': lambda p: ledger.Ledger(p)._load(),   # the lock is taken first, then it reads
              'log_rotate state': triggers.StateFile, 'patch report': report.load}
    with pytest.raises(OpsReadyError) as caught:
        opener[which](str(path))
    assert str(path) in caught.value.message
