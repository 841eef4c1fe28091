"""RTO/RPO measurement and verdicts, Markdown/HTML/JSON reports and the history file."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import parse_time
from ansible_collections.opsready.operations.plugins.module_utils.drill import expect, objectives, report, steps
from ansible_collections.opsready.operations.plugins.module_utils.drill.checks import guard_scratch
from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.checks import (
    SQLiteChecks as SQLiteClient)
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams

START = '2026-11-29T10:00:00.000000Z'


def at(seconds: float) -> str:
    moment = parse_time(START)
    import datetime
    return (moment + datetime.timedelta(seconds=seconds)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def database(rpo_age=60.0, failed=None, restore_secs=40.0, objectives_=None, name='app'):
    names = ['find_backup', 'verify', 'restore', 'integrity', 'smoke', 'cleanup']
    durations = {'find_backup': 0.5, 'verify': 2.0, 'restore': restore_secs, 'integrity': 5.0, 'smoke': 1.0,
                 'cleanup': 1.0}
    t, result = 0.0, []
    for step in names:
        ok = step != failed
        result.append({'name': step, 'started': at(t), 'finished': at(t + durations[step]), 'ok': ok,
                       'error': None if ok else 'boom in %s' % step})
        t += durations[step]
    return {'name': name, 'engine': 'sqlite', 'source': '/srv/app.db', 'scratch': '/tmp/app-drill.db',
            'backup': {'id': 'sqlite-app-full-x', 'recoverable_until': at(-rpo_age), 'chain': ['sqlite-app-full-x']},
            'steps': result, 'objectives': objectives_ or {}}


def test_passing_drill_measures_rto_from_verify_to_smoke_and_rpo_from_start():
    measured = objectives.measure(database(), parse_time(START))
    assert measured['rpo_seconds'] == 60.0
    assert measured['rto_seconds'] == 48.0  # verify 2 + restore 40 + integrity 5 + smoke 1
    assert measured['rto_verdict'] == measured['rpo_verdict'] == 'pass'
    assert measured['objectives'] == {'rto_seconds': 3600.0, 'rpo_seconds': 300.0}
    assert measured['passed'] and measured['cleaned_up'] and not measured['reasons']


def test_old_backup_breaches_rpo_with_the_reason():
    measured = objectives.measure(database(rpo_age=301), parse_time(START))
    assert measured['rpo_verdict'] == 'fail' and not measured['passed']
    assert measured['rto_verdict'] == 'pass'
    assert any('RPO 5 min 1 s exceeds the objective 5 min 0 s' in r for r in measured['reasons'])


def test_slow_restore_breaches_per_database_rto_objective():
    measured = objectives.measure(database(restore_secs=100, objectives_={'rto_seconds': 60}), parse_time(START))
    assert measured['rto_seconds'] == 108.0 and measured['rto_verdict'] == 'fail'
    assert any('RTO 1 min 48 s exceeds the objective 1 min 0 s' in r for r in measured['reasons'])


@pytest.mark.parametrize('failed', ['verify', 'restore', 'integrity', 'smoke'])
def test_failed_recovery_step_leaves_rto_unmeasured_and_fails(failed):
    measured = objectives.measure(database(failed=failed), parse_time(START))
    assert measured['rto_seconds'] is None and measured['rto_verdict'] == 'not_measured'
    assert not measured['passed']
    assert measured['reasons'][0] == 'step %s failed: boom in %s' % (failed, failed)


def test_failed_cleanup_fails_the_drill_even_within_objectives():
    measured = objectives.measure(database(failed='cleanup'), parse_time(START))
    assert measured['rto_verdict'] == 'pass' and not measured['cleaned_up'] and not measured['passed']


def test_no_backup_at_all_is_unbounded_rpo():
    db = database()
    db['backup'] = {}
    db['steps'] = [s for s in db['steps'] if s['name'] in ('find_backup', 'cleanup')]
    db['steps'][0].update(ok=False, error='No usable full backup')
    measured = objectives.measure(db, parse_time(START))
    assert measured['rpo_verdict'] == 'not_measured' and not measured['passed']
    assert any('RPO is unbounded' in r for r in measured['reasons'])


def test_step_finishing_before_it_started_is_refused():
    db = database()
    db['steps'][1]['finished'] = at(-5)
    with pytest.raises(OpsReadyError, match='finished .* before it started'):
        objectives.measure(db, parse_time(START))


def test_human_durations():
    assert objectives.human(0.123) == '0.12 s'
    assert objectives.human(3600) == '1 h 0 min'
    assert objectives.human(None) == 'n/a'


# -- expectations ----------------------------------------------------------------------------------------

ROWS = [{'status': 'paid', 'n': 40}, {'status': 'open', 'n': 2}]


@pytest.mark.parametrize('spec,ok', [
    ({'rows_at_least': 2}, True), ({'rows_at_least': 3}, False), ({'rows_at_most': 1}, False),
    ({'value_equals': 'paid'}, True), ({'value_equals': 'open'}, False),
    ({'jmespath': "length([?status=='paid']) > `0`"}, True), ({'jmespath': "[?n > `100`]"}, False),
])
def test_expectations(spec, ok):
    assert expect.evaluate(ROWS, spec)[0] is ok


def test_value_bounds_compare_numbers_from_text():
    assert expect.evaluate([{'count': '1000'}], {'value_at_least': 1000})[0]
    passed, reasons = expect.evaluate([{'count': '999'}], {'value_at_least': 1000})
    assert not passed and reasons == ['returned 999, expected at least 1000']
    assert not expect.evaluate([], {'value_at_least': 1})[0]


def test_jmespath_that_cannot_evaluate_fails_the_query_with_the_reason():
    passed, reasons = expect.evaluate([{'n': 'x'}], {'jmespath': '[?n > `1`]'})
    assert not passed and 'could not be evaluated' in reasons[0]


def test_unknown_expectation_is_refused():
    with pytest.raises(OpsReadyError, match='Unknown smoke-query expectation rows_min'):
        expect.evaluate(ROWS, {'rows_min': 1})


# -- SQLite client on real files -----------------------------------------------------------------------

def make_db(path):
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)')
    conn.executemany('INSERT INTO customers (name) VALUES (?)', [('c%d' % i,) for i in range(2000)])
    conn.execute('CREATE INDEX customers_name ON customers(name)')
    conn.commit()
    conn.close()


def test_sqlite_steps_on_a_real_file(tmp_path):
    path = str(tmp_path / 'scratch.sqlite')
    make_db(path)
    client = SQLiteClient(ConnectionParams())
    step = steps.integrity(client, path)
    assert step['ok'] and step['details']['tables'] == 1 and step['seconds'] is not None
    smoke = steps.smoke(client, path, [{'name': 'customers', 'sql': 'SELECT count(*) AS n FROM customers',
                                        'expect': {'value_at_least': 2000}},
                                       {'sql': 'SELECT * FROM nope', 'expect': {}}])
    assert not smoke['ok']
    assert smoke['details']['queries'][0]['ok'] and smoke['details']['queries'][0]['rows'] == [{'n': 2000}]
    assert 'query 2: Smoke query failed' in smoke['error'] and 'no such table' in smoke['error']


def test_sqlite_integrity_detects_a_corrupted_index(tmp_path):
    path = str(tmp_path / 'scratch.sqlite')
    make_db(path)
    conn = sqlite3.connect(path)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='customers_name'").fetchone()[0]
    page_size = conn.execute('PRAGMA page_size').fetchone()[0]
    conn.close()
    with open(path, 'r+b') as handle:  # scribble over the index's root page, header included
        handle.seek((root - 1) * page_size)
        handle.write(b'\x07' * page_size)
    step = steps.integrity(SQLiteClient(ConnectionParams()), path)
    assert not step['ok'] and 'integrity_check' in step['error']


def test_scratch_equal_to_source_is_refused(tmp_path):
    with pytest.raises(OpsReadyError, match='is the source database itself'):
        guard_scratch(str(tmp_path / 'a.db'), str(tmp_path / '.' / 'a.db'))
    with pytest.raises(OpsReadyError):
        guard_scratch('app', 'app')
    guard_scratch('app_drill', 'app')


# -- reports ---------------------------------------------------------------------------------------------

def test_report_files_history_and_trend(tmp_path):
    reports = str(tmp_path / 'reports')
    first = report.build_report([database()], START, at(60))
    paths = report.write_report(reports, first)
    data = json.loads(open(paths['json']).read())
    assert data['passed'] and data['verdict'] == 'PASSED'
    assert [s['name'] for s in data['databases'][0]['steps']][:2] == ['find_backup', 'verify']
    md = open(paths['markdown']).read()
    assert md.startswith('# DR drill: PASSED') and '| app | sqlite | 48.0 s (pass) | 1 h 0 min |' in md
    html = open(paths['html']).read()
    assert 'src=' not in html and 'href=' not in html and '<script' not in html  # self-contained
    assert 'DR drill PASSED' in html and 'class="timeline"' in html and 'class="trend"' in html
    second = report.build_report([database(name='app', rpo_age=900)], at(3600), at(3660))
    paths2 = report.write_report(reports, second)
    history = [json.loads(line) for line in open(paths2['history'])]
    assert [h['passed'] for h in history] == [True, False]
    html2 = open(paths2['html']).read()
    assert 'DR drill FAILED' in html2 and 'last 2 drills' in html2 and html2.count('class="point"') == 4
    assert 'RPO 1 h 15 min exceeds the objective' in html2
    summary = report.test_summary(second['databases'][0])
    assert summary['restore_result'] == 'Success' and summary['rpo_verdict'] == 'fail'
    assert summary['backup_files'] == ['sqlite-app-full-x'] and summary['restore_elapsed'] == 40.0


def test_html_escapes_user_text(tmp_path):
    db = database(name='<img src=x onerror=alert(1)>')
    page = open(report.write_report(str(tmp_path), report.build_report([db], START))['html']).read()
    assert '<img src=x' not in page and '&lt;img src=x' in page


def test_torn_history_line_is_skipped(tmp_path):
    (tmp_path / 'drills.jsonl').write_text('{"started": "2026-01-01T00:00:00Z", "databases": []}\n{"torn')
    assert len(report.read_history(str(tmp_path))) == 1
    report.write_report(str(tmp_path), report.build_report([database()], START))
    assert len(report.read_history(str(tmp_path))) == 2
