"""Drill honesty, round 2: objectives, RTO of retried steps, vacuous file-set drills (failing-first, then fixed)."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.drill import fileset
from ansible_collections.opsready.operations.plugins.module_utils.drill.objectives import measure
from ansible_collections.opsready.operations.plugins.module_utils.drill.report import build_report
from ansible_collections.opsready.operations.plugins.module_utils.files.archive import create_archive

START = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)


def steps(restore_attempts=((1, 5, True),)):
    out = [{'name': 'find_backup', 'started': '2026-11-29T12:00:00Z', 'finished': '2026-11-29T12:00:01Z',
            'ok': True}]
    for begin, end, ok in restore_attempts:
        out.append({'name': 'restore', 'started': '2026-11-29T12:00:%02dZ' % begin,
                    'finished': '2026-11-29T12:00:%02dZ' % end, 'ok': ok, 'error': None if ok else 'timed out'})
    last = restore_attempts[-1][1]
    out += [{'name': 'integrity', 'started': '2026-11-29T12:00:%02dZ' % last,
             'finished': '2026-11-29T12:00:%02dZ' % (last + 1), 'ok': True},
            {'name': 'cleanup', 'started': '2026-11-29T12:00:%02dZ' % (last + 1),
             'finished': '2026-11-29T12:00:%02dZ' % (last + 2), 'ok': True}]
    return out


def db(objectives, backup_age_seconds=10, **extra):
    until = (START - datetime.timedelta(seconds=backup_age_seconds)).strftime('%Y-%m-%dT%H:%M:%SZ')
    entry = {'name': 'app', 'engine': 'sqlite', 'steps': steps(), 'objectives': objectives,
             'backup': {'recoverable_until': until}}
    entry.update(extra)
    return entry


def test_an_objective_of_zero_is_zero_not_the_default():
    """rpo_seconds: 0 (no loss allowed) was read as "unset" and judged against 5 min: a 10 s old backup passed."""
    out = measure(db({'rpo_seconds': 0, 'rto_seconds': 0}), START)
    assert out['objectives'] == {'rto_seconds': 0.0, 'rpo_seconds': 0.0}
    assert out['rpo_verdict'] == 'fail' and out['rto_verdict'] == 'fail' and not out['passed']


@pytest.mark.parametrize('objectives', [{'rpo_seconds': '5m'}, {'rto_seconds': -1}, {'rpo_seconds': 'nan'},
                                        {'rto_seconds': True}, {'rpo_seconds': [300]}])
def test_an_objective_that_is_no_duration_is_refused_naming_it(objectives):
    """A typo ('5m') crashed the report with a bare ValueError; nan made every comparison false (a breach never
    failed); a negative one can never be met. The message names the database and the key."""
    with pytest.raises(OpsReadyError) as caught:
        build_report([db(objectives)], started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:09Z', host='h')
    key = next(iter(objectives))
    assert key in caught.value.message and 'app' in caught.value.message


def test_an_unset_objective_is_the_default_and_the_report_says_so():
    out = measure(db({'rpo_seconds': None}), START)
    assert out['objectives']['rpo_seconds'] == 300.0 and out['objectives']['rto_seconds'] == 3600.0
    assert sorted(out['objectives_defaulted']) == ['rpo_seconds', 'rto_seconds']


def test_a_retried_step_counts_from_its_first_attempt_in_the_rto():
    """A restore that timed out after 20 s and then passed in 4 s: the RTO is from the first attempt (the time a
    real recovery would have spent), not from the retry."""
    out = measure(db({}, steps=steps(restore_attempts=((1, 21, False), (21, 25, True)))), START)
    assert not out['passed']   # the failed attempt is a reason
    retried = steps(restore_attempts=((1, 21, False), (21, 25, True)))
    entry = db({}, steps=[dict(s, ok=True, error=None) for s in retried])
    out = measure(entry, START)
    assert out['rto_seconds'] == 25.0, out['rto_seconds']


@pytest.fixture()
def empty_set(tmp_path):
    (tmp_path / 'src' / 'etc' / 'app').mkdir(parents=True)
    (tmp_path / 'backups').mkdir()
    create_archive([str(tmp_path / 'src' / 'etc' / 'app')], str(tmp_path / 'backups'), 'app', compression='gzip')
    return tmp_path


def test_a_file_set_drill_of_an_archive_without_a_single_file_fails(empty_set):
    """The set's directory was empty when file_backup ran (a mount not mounted, the configuration moved): the
    archive holds one directory and no file, the drill restored "0 file(s)" and PASSED."""
    result = fileset.drill_fileset(str(empty_set / 'backups'), 'app', str(empty_set / 'root'))
    assert not result['ok'], [(s['name'], s['result']) for s in result['steps']]
    integrity = next(s for s in result['steps'] if s['name'] == 'integrity')
    assert not integrity['ok'] and 'no file' in integrity['error'], integrity
    assert not (empty_set / 'root').exists()


def test_zero_objectives_and_defaulted_ones_render_in_every_report_form(tmp_path):
    """A 0 s objective with nothing measured divided by zero in the HTML bars; an objective left unset must be
    visible as the default it was judged by, not pass as if the operator had chosen it."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill.report import write_report
    failed = [dict(s, ok=False, error='restore failed') if s['name'] == 'restore' else s for s in steps()]
    report = build_report([db({'rpo_seconds': 0, 'rto_seconds': 0}, backup_age_seconds=0, name='zero',
                              steps=failed), db({}, name='unset')],
                          started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:09Z', host='h')
    paths = write_report(str(tmp_path), report)
    markdown = open(paths['markdown']).read()
    html = open(paths['html']).read()
    assert 'objectives not set, defaults used: RPO 5 min 0 s, RTO 1 h 0 min' in markdown, markdown
    assert 'objectives not set, defaults used' in html


@pytest.fixture()
def restored(tmp_path):
    import sqlite3
    path = tmp_path / 'copy.sqlite'
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE orders (created_at TEXT, epoch REAL); CREATE TABLE audit (at TEXT);"
                       "INSERT INTO orders VALUES ('2026-11-29 11:58:00', 1795953480.5);")
    conn.commit()
    conn.close()
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.checks import SQLiteChecks
    return SQLiteChecks(ConnectionParams()), str(path)


@pytest.mark.parametrize('sql, newest', [
    ('SELECT max(created_at) FROM orders', '2026-11-29T11:58:00.000000Z'),        # SQLite CURRENT_TIMESTAMP: UTC
    ("SELECT '2026-11-29 12:58:00+01:00'", '2026-11-29T11:58:00.000000Z'),        # psql's text, with its zone
    ("SELECT '2026-11-29T11:58:00Z'", '2026-11-29T11:58:00.000000Z'),
    ('SELECT max(epoch) FROM orders', '2026-11-29T11:58:00.500000Z'),             # UNIX_TIMESTAMP(...)
    ("SELECT '1795953480'", '2026-11-29T11:58:00.000000Z'),                       # epoch as text (client tools)
])
def test_the_freshness_step_reads_the_newest_time_the_copy_holds(restored, sql, newest):
    from ansible_collections.opsready.operations.plugins.module_utils.drill import steps as drill_steps
    step = drill_steps.freshness(restored[0], restored[1], sql)
    assert step['ok'] and step['details']['newest'] == newest, step


@pytest.mark.parametrize('sql, why', [('SELECT max(at) FROM audit', 'empty table'),
                                      ('SELECT at FROM audit', 'empty table'),
                                      ("SELECT 'yesterday'", 'not a time'),
                                      ('SELECT max(at) FROM no_such_table', 'no_such_table')])
def test_a_freshness_query_that_finds_no_time_fails_the_step(restored, sql, why):
    """An empty table (or the wrong one) must not fall back to the catalog's figure: the step fails, saying why."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill import steps as drill_steps
    step = drill_steps.freshness(restored[0], restored[1], sql)
    assert not step['ok'] and why in step['error'], step


def test_a_freshness_point_is_the_rpo_and_one_in_the_future_is_a_clock_ahead():
    recovered = {'at': '2026-11-29T10:00:00Z', 'source': 'freshness_query x', 'catalog_read_at': '2026-11-29T12:00:00Z'}
    out = measure(db({'rpo_seconds': 300}, recovered=recovered), START)
    assert out['rpo_seconds'] == 7200.0 and out['rpo_verdict'] == 'fail' and out['rpo_flag']
    ahead = dict(recovered, at='2026-11-29T14:00:00Z')
    out = measure(db({'rpo_seconds': 300}, recovered=ahead), START)
    assert out['rpo_seconds'] is None and not out['passed']


class _Restored:
    """A server engine's restored copy (PostgreSQL/MariaDB summaries are not exact): its tables and tables with rows."""

    engine = 'postgresql'
    exact_summary = False

    def __init__(self, found):
        self.found = found

    def integrity(self, database, level='standard'):
        return {'tool': 'pg_amcheck --heapallindexed', 'result': 'ok'}

    def summary(self, database):
        return dict(self.found)


def _manifest(tmp_path, source):
    import json
    path = tmp_path / 'postgresql-app-full-1.dump.manifest.json'
    path.write_text(json.dumps({
        'engine': 'postgresql', 'database': 'app', 'kind': 'full', 'started': '2026-11-29T11:00:00Z',
        'finished': '2026-11-29T11:00:01Z', 'id': 'postgresql-app-full-1.dump',
        'artifact': 'postgresql-app-full-1.dump',
        'size': 1, 'sha256': '0' * 64, 'compression': 'none', 'source': source}))
    return str(path)


@pytest.mark.parametrize('found, missing', [({'tables': 7, 'non_empty_tables': 7}, '3 table(s)'),
                                            ({'tables': 10, 'non_empty_tables': 5}, '3 table(s) with rows')])
def test_a_restore_that_left_out_tables_or_their_rows_fails_the_integrity_step(tmp_path, found, missing):
    """The source held 10 tables, 8 with rows, both before and after the dump; a restore that did not create 3 of
    them (an extension or a type missing on the drill server: pg_restore's errors are only warnings) or did not
    load 3 tables' rows PASSED as long as one table with one row came back."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill import steps as drill_steps
    manifest = _manifest(tmp_path, {'engine': 'postgresql', 'tables': 10, 'non_empty_tables': 8,
                                    'rows_estimate': 5000})
    step = drill_steps.integrity(_Restored(found), 'app_drill', backup=manifest)
    assert not step['ok'] and missing in step['error'], step


def test_a_restore_holding_what_the_source_held_or_more_passes(tmp_path):
    """Regression guard (passed before): more tables or rows than at backup time (the lesser of the counts before
    and after the dump) is no loss."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill import steps as drill_steps
    manifest = _manifest(tmp_path, {'engine': 'postgresql', 'tables': 10, 'non_empty_tables': 8})
    step = drill_steps.integrity(_Restored({'tables': 11, 'non_empty_tables': 8}), 'app_drill', backup=manifest)
    assert step['ok'] and not step['warnings'], step


def test_a_pass_with_warnings_is_not_a_plain_green_pass_in_the_reports(tmp_path):
    """Tables the restore skipped (a restore warning) left the HTML banner the green of a clean pass and the Markdown
    heading a plain "PASSED": the warning count hid in the verdict line. Machine-read fields stay as they were
    (``passed`` true, ``verdict`` PASSED: warnings_fail decides), the headings say it."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill import html
    from ansible_collections.opsready.operations.plugins.module_utils.drill.report import write_report
    warned = [dict(s, warnings=['pg_restore: could not create table audit']) if s['name'] == 'restore' else s
              for s in steps()]
    # (a smoke step: a drill without one carries a warning of its own since round 3)
    warned.append({'name': 'smoke', 'started': '2026-11-29T12:00:06Z', 'finished': '2026-11-29T12:00:06Z', 'ok': True})
    report = build_report([db({}, steps=warned)], started='2026-11-29T12:00:00Z', finished='2026-11-29T12:00:09Z',
                          host='h')
    assert report['passed'] and report['verdict'] == 'PASSED'
    paths = write_report(str(tmp_path), report)
    markdown = open(paths['markdown']).read()
    page = open(paths['html']).read()
    assert markdown.startswith('# DR drill: PASSED WITH 1 WARNING\n'), markdown.splitlines()[0]
    assert 'PASSED WITH 1 WARNING</h1>' in page and 'style="background:%s"' % html.AMBER in page
    assert 'style="background:%s"' % html.GREEN not in page.split('</header>')[0]
