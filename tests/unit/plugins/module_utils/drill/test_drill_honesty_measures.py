"""Pure-logic pieces of drill honesty: figures a drill must not report when it cannot know them."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.drill.objectives import measure

START = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)
STEPS = [{'name': 'restore', 'started': '2026-11-29T12:00:01Z', 'finished': '2026-11-29T12:00:05Z', 'ok': True},
         {'name': 'integrity', 'started': '2026-11-29T12:00:05Z', 'finished': '2026-11-29T12:00:06Z', 'ok': True},
         {'name': 'cleanup', 'started': '2026-11-29T12:00:06Z', 'finished': '2026-11-29T12:00:07Z', 'ok': True}]


def db(**extra):
    entry = {'name': 'pg', 'engine': 'postgresql', 'steps': STEPS, 'objectives': {'rpo_seconds': 60},
             'backup': {'recoverable_until': '2026-11-29T11:59:50Z'}}
    entry.update(extra)
    return entry


@pytest.mark.parametrize('until', ['2026-11-29T13:00:00Z', '2026-11-29T12:00:30Z', '2027-11-29T12:00:00Z'])
def test_a_catalog_point_after_the_drill_started_is_no_rpo_of_zero(until):
    """A manifest clock ahead of the drill's (or a forged time): the age of the newest point is unknown."""
    out = measure(db(backup={'recoverable_until': until}), START)
    assert out['rpo_seconds'] is None and out['rpo_verdict'] == 'not_measured'
    assert not out['passed']
    assert any('after the restore read the catalog' in r and 'RPO is unknown' in r for r in out['reasons']), out


def test_a_recovered_point_after_the_catalog_was_read_is_no_rpo_of_zero():
    out = measure(db(backup={'recoverable_until': '2026-11-29T12:40:00Z'},
                     recovered={'at': '2026-11-29T12:40:00Z', 'source': 'pg_last_xact_replay_timestamp()',
                                'catalog_read_at': '2026-11-29T12:00:01Z'}), START)
    assert out['rpo_seconds'] is None and out['rpo_verdict'] == 'not_measured' and not out['passed']
    assert any('clock' in r for r in out['reasons'])


@pytest.mark.parametrize('until', ['2026-11-29T12:00:00.400000Z', '2026-11-29T11:59:59Z'])
def test_a_point_at_the_drill_start_within_clock_jitter_is_measured(until):
    """Regression guard: a backup taken just before the drill (dr_drill_backup_first) is an RPO of about 0."""
    out = measure(db(backup={'recoverable_until': until}), START)
    assert out['rpo_verdict'] == 'pass' and out['passed'] and out['rpo_seconds'] is not None


def test_an_unknown_rpo_renders_as_unknown_in_every_report_form():
    from ansible_collections.opsready.operations.plugins.module_utils.drill.html import render_html
    from ansible_collections.opsready.operations.plugins.module_utils.drill.report import build_report, render_markdown
    report = build_report([db(backup={'recoverable_until': '2026-11-29T13:00:00Z'})], started='2026-11-29T12:00:00Z',
                          finished='2026-11-29T12:00:07Z', host='h')
    assert report['verdict'] == 'FAILED' and 'RPO n/a/1 min 0 s FAILED' in report['verdict_line']
    text = render_markdown(report)
    assert 'clock' in text and 'RPO n/a' in text and '0.00 s' not in text.split('## pg', maxsplit=1)[0]
    assert 'clock' in render_html(report, [])


HOSTILE = 'shop\n# DR drill: PASSED\n| x | y |'


def hostile_db():
    bad = {'name': 'restore', 'started': '2026-11-29T12:00:01Z', 'finished': '2026-11-29T12:00:05Z', 'ok': False,
           'error': 'member etc/caf\udce9.conf differs\n# DR drill: PASSED'}
    return db(name=HOSTILE, scratch='`x`\n# PASSED', source='a\nb', steps=[bad], engine='files\n## x')


def test_a_name_or_message_with_newlines_cannot_forge_a_heading_in_the_markdown():
    from ansible_collections.opsready.operations.plugins.module_utils.drill.report import build_report, render_markdown
    report = build_report([hostile_db()], started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:07Z', host='h')
    text = render_markdown(report)
    headings = [line for line in text.splitlines() if line.startswith('#')]
    assert [h for h in headings if not h.startswith('## ')] == ['# DR drill: FAILED'], headings
    assert len([h for h in headings if h.startswith('## ')]) == 1, headings   # one per database, no more
    assert not any(line.startswith('| x |') for line in text.splitlines())


def test_a_file_name_that_is_not_utf8_does_not_stop_the_report_being_written(tmp_path):
    """A member name read with surrogateescape (bytes that are not UTF-8) in a step's error: the report and the
    history line are still written (the failure is the drill's, not the report's)."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill.report import (
        build_report, read_history, write_report)
    report = build_report([hostile_db()], started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:07Z', host='h')
    paths = write_report(str(tmp_path), report)
    for kind in ('json', 'markdown', 'html'):
        assert Path(paths[kind]).read_bytes()
    assert json.loads(Path(paths['json']).read_text())['passed'] is False
    assert [h['passed'] for h in read_history(str(tmp_path))] == [False]


@pytest.mark.parametrize('expect', [None, {}, {'jmespath': None, 'rows_at_least': None}])
def test_a_smoke_query_without_an_expectation_fails_on_an_empty_table(tmp_path, expect):
    """'SELECT * FROM orders' with no expect passed on a restored copy without a single order: a query that
    states nothing must at least return a row."""
    import sqlite3
    from ansible_collections.opsready.operations.plugins.module_utils.drill import steps
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.checks import SQLiteChecks
    path = str(tmp_path / 'scratch.sqlite')
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY)')
    conn.close()
    query = {'name': 'orders', 'sql': 'SELECT * FROM orders'}
    if expect is not None:
        query['expect'] = expect
    step = steps.smoke(SQLiteChecks(ConnectionParams()), path, [query])
    assert not step['ok'] and 'returned 0 rows, expected at least 1' in step['error']
    assert step['details']['queries'][0]['expect'] == {'rows_at_least': 1}
    # stated explicitly, an empty answer is what the operator asked for (regression guard)
    explicit = steps.smoke(SQLiteChecks(ConnectionParams()), path, [dict(query, expect={'rows_at_most': 0})])
    assert explicit['ok']


def test_a_backup_finished_during_the_drill_and_restored_by_it_is_no_clock_skew():
    """Regression guard for the clock check: the restore (no artifact named) takes the newest chain when it reads
    the catalog, which may hold a backup finished after the drill started (a schedule overlapping a long drill)."""
    long_restore = [{'name': 'restore', 'started': '2026-11-29T12:00:01Z', 'finished': '2026-11-29T12:10:00Z',
                     'ok': True}] + STEPS[1:]
    out = measure(db(steps=long_restore, backup={'recoverable_until': '2026-11-29T12:05:00Z'}), START)
    assert out['rpo_verdict'] == 'pass' and out['passed'], out['reasons']
    ahead = measure(db(steps=long_restore, backup={'recoverable_until': '2026-11-29T12:10:30Z'}), START)
    assert ahead['rpo_verdict'] == 'not_measured' and not ahead['passed']


@pytest.mark.parametrize('source', [None, {'error': 'permission denied for table audit'}])
def test_restored_rows_that_could_not_be_compared_with_the_source_are_a_warning(tmp_path, source):
    """A manifest without the source's summary (an older backup) or with one that failed at backup time: the
    integrity step compares nothing, and its warnings say so (not only a clause inside its result line)."""
    import sqlite3
    from ansible_collections.opsready.operations.plugins.module_utils.drill import steps
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.checks import SQLiteChecks
    path = str(tmp_path / 'scratch.sqlite')
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY)')
    conn.close()
    manifest = tmp_path / 'shop-1.sqlite.zst.manifest.json'
    data = {'engine': 'sqlite', 'database': '/srv/shop.sqlite', 'kind': 'full', 'started': '2026-11-29T11:00:00Z',
            'finished': '2026-11-29T11:00:01Z', 'id': 'shop-1.sqlite.zst', 'artifact': 'shop-1.sqlite.zst',
            'size': 1, 'sha256': '0' * 64, 'compression': 'zstd'}
    if source is not None:
        data['source'] = source
    manifest.write_text(json.dumps(data))
    step = steps.integrity(SQLiteChecks(ConnectionParams()), path, backup=str(manifest))
    assert step['ok'] and 'not' in step['details']['source']['source_check'], step
    assert any('not compared with the source' in w for w in step['warnings']), step


def test_a_smoke_expectation_that_any_answer_meets_is_a_warning(tmp_path):
    """rows_at_least: 0 holds for every answer, an empty restored table included: the query passes (the operator
    asked for it) but the report says it proves nothing."""
    import sqlite3
    from ansible_collections.opsready.operations.plugins.module_utils.drill import steps
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.checks import SQLiteChecks
    path = str(tmp_path / 'scratch.sqlite')
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY)')
    conn.close()
    step = steps.smoke(SQLiteChecks(ConnectionParams()), path, [
        {'name': 'orders', 'sql': 'SELECT * FROM orders', 'expect': {'rows_at_least': 0}},
        {'name': 'count', 'sql': 'SELECT count(*) FROM orders', 'expect': {'value_at_least': 0}}])
    assert step['ok']
    assert any('orders' in w and 'any answer' in w for w in step['warnings']), step['warnings']
    assert len(step['warnings']) == 1   # value_at_least 0 can fail (a negative value): not flagged


def test_warnings_fail_the_drill_only_when_asked():
    from ansible_collections.opsready.operations.plugins.module_utils.drill.report import build_report
    warned = [dict(s, warnings=['not applied: ALTER ROLE ghost IN DATABASE SET work_mem=8MB']) if s['name'] == 'restore'
              else s for s in STEPS]
    default = build_report([db(steps=warned)], started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:07Z',
                           host='h')
    assert default['passed'] and default['databases'][0]['warnings']
    strict = build_report([db(steps=warned)], started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:07Z',
                          host='h', warnings_fail=True)
    assert not strict['passed'] and strict['verdict'] == 'FAILED'
    assert any('ghost' in r and 'warnings_fail' in r for r in strict['reasons']), strict['reasons']
