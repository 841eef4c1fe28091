"""The fault matrix's recorder: one row per case, one table at the end, docs/faults.md on a full run.

Every case is a test marked ``@pytest.mark.fault(fault=..., component=..., expected=...)`` that uses
the ``fault`` fixture to note what it observed and what was lost. The fixture also watches for
secrets: while a case runs, a thread reads every process's argv in /proc every 20 ms and looks for
each registered secret (``fault.secret(value)``: database passwords, age identities), and
``fault.scan(obj)`` looks for them in a result, a message, a log or a file. A secret seen anywhere
fails the case.

Verdict: "as expected" when the case's assertions held (the collection did what the row says),
"WRONG" otherwise; any WRONG verdict makes pytest (and ``make faults``) exit non-zero.
The fast subset (``-m fast``) is what ``make test`` runs.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / 'docs' / 'faults.md'
if str(REPO / 'build') not in sys.path:  # the collection as installed (ansible_collections.opsready.operations)
    sys.path.insert(0, str(REPO / 'build'))
ROWS: Dict[str, Dict[str, Any]] = {}  # this process's cases, filled in as they run
# Every case's final row as its reports arrive: in the process that prints the table. Under pytest-xdist the
# cases run in workers, and a row reaches the controller only inside a report (``user_properties``).
REPORTED: Dict[str, Dict[str, Any]] = {}
KEEP_MARK = '<!-- hand-written sections below: kept when this file is regenerated -->'


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line('markers', 'fault(fault, component, expected): a row of the fault matrix')
    config.addinivalue_line('markers', 'fast: in the fast subset that make test runs')


class SecretWatch:
    """Scans /proc/*/cmdline for the registered secrets while a case runs."""

    def __init__(self) -> None:
        self.secrets: List[bytes] = []
        self.hits: List[str] = []
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            secrets = list(self.secrets)
            if secrets:
                for pid in os.listdir('/proc'):
                    if not pid.isdigit() or int(pid) == me:
                        continue
                    try:
                        with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                            argv = handle.read()
                    except OSError:
                        continue
                    for secret in secrets:
                        if secret in argv:
                            name = argv.split(b'\0')[0].decode(errors='replace')
                            self.hits.append('argv of pid %s: %s' % (pid, name))
                self.scans += 1
            self._stop.wait(0.02)


class Fault:
    """What a case observed; filled in by the test."""

    def __init__(self, nodeid: str, fault: str, component: str, expected: str, fast: bool) -> None:
        self.row: Dict[str, Any] = {'case': nodeid, 'fault': fault, 'component': component, 'expected': expected,
                                    'observed': '(not reached)', 'lost': '-', 'secrets': 0, 'verdict': '?',
                                    'fast': fast}
        self.watch = SecretWatch()
        self.texts_scanned = 0

    def secret(self, value: Optional[str]) -> None:
        if value:
            self.watch.secrets.append(value.encode())

    def observed(self, text: str) -> None:
        self.row['observed'] = text

    def lost(self, **amounts: int) -> None:
        """Data lost, e.g. lost(rows=0) / lost(lines=12, of_lines=80000) / lost(files=0)."""
        parts = []
        for key, value in amounts.items():
            if key.startswith('of_'):
                continue
            total = amounts.get('of_' + key)
            parts.append('%d %s' % (value, key) + (' of %d' % total if total is not None else ''))
        self.row['lost'] = ', '.join(parts)
        self.row['lost_amounts'] = amounts

    def scan(self, obj: Any, where: str = 'result') -> None:
        """Look for every registered secret in a result dict, text, bytes or a file/tree path."""
        if isinstance(obj, Path):
            paths = [obj] if obj.is_file() else [p for p in obj.rglob('*') if p.is_file()] if obj.is_dir() else []
            for path in paths:
                self.scan(path.read_bytes(), where='file %s' % path)
            return
        if isinstance(obj, bytes):
            data = obj
        elif isinstance(obj, str):
            data = obj.encode()
        else:
            data = json.dumps(obj, default=str).encode()
        self.texts_scanned += 1
        for secret in self.watch.secrets:
            if secret in data:
                self.watch.hits.append('%s' % where)


def _marker(item: pytest.Item) -> Optional[pytest.Mark]:
    return item.get_closest_marker('fault')


@pytest.fixture
def fault(request: pytest.FixtureRequest):
    mark = _marker(request.node)
    assert mark is not None, 'a fault case needs @pytest.mark.fault(fault=..., component=..., expected=...)'
    kwargs = dict(mark.kwargs)
    params = getattr(request.node, 'callspec', None)
    if params is not None:  # parametrised rows: {name} placeholders from the parameters
        kwargs = {k: v.format(**params.params) for k, v in kwargs.items()}
    rec = Fault(request.node.nodeid, kwargs['fault'], kwargs['component'], kwargs['expected'],
                request.node.get_closest_marker('fast') is not None)
    rec.row['order'] = request.session.items.index(request.node)  # every worker collects the same list
    ROWS[request.node.nodeid] = rec.row
    rec.watch.start()
    yield rec
    rec.watch.stop()
    rec.row['secrets'] = len(rec.watch.hits)
    rec.row['secret_scans'] = rec.watch.scans + rec.texts_scanned
    assert not rec.watch.hits, 'secret seen: %s' % sorted(set(rec.watch.hits))[:5]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    row = ROWS.get(item.nodeid)
    if row is None:
        return
    if report.failed:
        row['verdict'] = 'WRONG'
        message = str(report.longrepr.reprcrash.message if hasattr(report.longrepr, 'reprcrash')
                      else report.longrepr).splitlines()[0][:200]
        row['observed'] = '%s [%s]' % (row['observed'], message) if row['observed'] != '(not reached)' else message
    elif report.when == 'call' and report.skipped:
        row['verdict'] = 'skipped'
    elif report.when == 'teardown' and row['verdict'] == '?':
        row['verdict'] = 'as expected'
    report.user_properties = list(report.user_properties) + [('fault_row', dict(row))]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == 'fault_row':
            REPORTED[value['case']] = value


def _cell(value: Any) -> str:
    return str(value).replace('|', '\\|').replace('\n', ' ')


def table(rows: List[Dict[str, Any]]) -> str:
    lines = ['| fault | component | expected outcome | observed | data lost | secrets seen | verdict |',
             '|---|---|---|---|---|---:|---|']
    for row in rows:
        keys = ('fault', 'component', 'expected', 'observed', 'lost', 'secrets', 'verdict')
        lines.append('| %s |' % ' | '.join(_cell(row[k]) for k in keys))
    return '\n'.join(lines)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, 'workerinput'):  # an xdist worker: the controller prints the table
        return
    rows = sorted(REPORTED.values(), key=lambda row: row['order'])
    if not rows:
        return
    wrong = [r for r in rows if r['verdict'] == 'WRONG']
    terminalreporter.write_sep('=', 'fault matrix: %d cases, %d WRONG' % (len(rows), len(wrong)))
    width = {'fault': 44, 'component': 14, 'observed': 60, 'lost': 22}
    head = '%-44s %-14s %-60s %-22s %7s %s' % ('fault', 'component', 'observed', 'data lost', 'secrets', 'verdict')
    terminalreporter.write_line(head)
    for row in rows:
        terminalreporter.write_line('%-44s %-14s %-60s %-22s %7s %s' % tuple(
            [str(row[k])[:width[k]] for k in ('fault', 'component', 'observed', 'lost')]
            + [row['secrets'], row['verdict']]))
    full = not config.getoption('markexpr') and not config.getoption('keyword') and all(
        Path(str(arg)).is_dir() for arg in config.args)
    if full:
        write_doc(rows)
        terminalreporter.write_line('wrote %s' % DOC.relative_to(REPO))


def write_doc(rows: List[Dict[str, Any]]) -> None:
    import datetime
    wrong = sum(r['verdict'] == 'WRONG' for r in rows)
    scans = sum(r.get('secret_scans', 0) for r in rows)
    text = ['# Fault matrix: what happens when things break', '',
            'Generated by `make faults` (`pytest tests/faults`) on %s: %d cases against real PostgreSQL 15 and '
            'MariaDB servers, real files, real TLS and real processes; %d verdicts wrong.'
            % (datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'), len(rows), wrong), '',
            '"Secrets seen" counts every sighting of a password or an age identity in any process\'s argv (read from '
            '/proc every 20 ms while the case ran) and in every module result, message, play output and report the '
            'case produced (%d scans in all). Verdict "as expected" means every assertion of the case held; the '
            'cases marked fast also run in `make test`.' % scans, '', table(rows), '']
    text += hostile_section(rows)
    text += ['Cases: `tests/faults/test_*.py`; the recorder and the secret watch: `tests/faults/conftest.py`.', '']
    # Sections written by hand below the marker (per-area notes and counts) survive regeneration.
    old = DOC.read_text() if DOC.exists() else ''
    kept = old[old.index(KEEP_MARK):] if KEEP_MARK in old else ''
    DOC.write_text('\n'.join(text) + ('\n' + kept if kept else ''))


def hostile_section(rows: List[Dict[str, Any]]) -> List[str]:
    """The hostile-filesystem cases' own counts (rows that set ``races_tried``)."""
    hostile = [r for r in rows if 'races_tried' in r]
    if not hostile:
        return []
    lines = ['## Hostile filesystem', '',
             'An unprivileged user, created and removed by the test, races symlinks and renames against root in a '
             'directory that user owns (`tests/faults/test_hostile_files.py`). "Files outside the tree touched" '
             'compares every file outside the user\'s tree (content, mode, owner, mtime) before and after: it must '
             'be 0.', '', '| case | component | races tried | files outside the tree touched | verdict |',
             '|---|---|---:|---:|---|']
    for row in hostile:
        cells = (_cell(row['fault']), _cell(row['component']), row['races_tried'], row['outside_touched'],
                 row['verdict'])
        lines.append('| %s | %s | %d | %d | %s |' % cells)
    lines.append('')
    lines.append('Total: %d races tried, %d files outside the tree touched.' % (
        sum(r['races_tried'] for r in hostile), sum(r['outside_touched'] for r in hostile)))
    return lines + ['']
