# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DR drill reports: JSON, Markdown and a self-contained HTML page, plus the drills.jsonl history.

``build_report`` measures every database (``objectives.measure``) and produces the report dict;
``write_report`` writes ``drill-<stamp>.json``, ``.md`` and ``.html`` atomically into the report
directory, then appends one line per drill to ``drills.jsonl`` (the trend the HTML charts).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import (
    append_line_durable, atomic_write_text)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import (
    isoformat, parse_time, stamp, utcnow)
from ansible_collections.opsready.operations.plugins.module_utils.drill.objectives import (
    defaulted_line, human, measure, rto_line)
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

FORMAT_VERSION = 1
HISTORY_FILE = 'drills.jsonl'


def build_report(databases: List[Dict[str, Any]], started: str, finished: Optional[str] = None,
                 title: str = 'DR drill', host: Optional[str] = None,
                 tool_versions: Optional[Dict[str, Any]] = None, warnings_fail: bool = False) -> Dict[str, Any]:
    if not databases:
        raise OpsReadyError('The drill has no databases to report: set dr_drill_databases (or file sets).')
    drill_started = parse_time(started, 'started')
    # A file name that is not UTF-8 (lone surrogates from os) in a step's error would stop the report being
    # written (and ansible-core refuses it in a result): escaped like file_backup's results, \xe9 style.
    databases, title = safeio.displayable(databases), safeio.displayable(title)
    measured = [measure(db, drill_started, warnings_fail) for db in databases]
    for db in measured:
        db['leftovers_removed'] = leftovers_removed(db['steps'])
    end = parse_time(finished, 'finished') if finished else utcnow()
    passed = all(db['passed'] for db in measured)
    reasons = ['%s: %s' % (db.get('name'), reason) for db in measured for reason in db['reasons']]
    versions: Dict[str, Any] = dict(tool_versions or {})
    for db in measured:
        versions.update(db.get('tool_versions') or {})
    report = {
        'format': FORMAT_VERSION,
        'id': 'drill-%s' % stamp(drill_started),
        'title': title,
        'host': host or socket.gethostname(),
        'started': isoformat(drill_started),
        'finished': isoformat(end),
        'seconds': round((end - drill_started).total_seconds(), 3),
        'passed': passed,
        'verdict': 'PASSED' if passed else 'FAILED',
        'databases': measured,
        'reasons': reasons,
        'leftovers_removed': ['%s: %s' % (db.get('name'), line) for db in measured for line in db['leftovers_removed']],
        'tool_versions': versions,
    }
    report['verdict_line'] = verdict_line(report)
    return report


def leftovers_removed(steps: List[Dict[str, Any]]) -> List[str]:
    """What killed earlier runs had left and the drill's steps removed, one line each: a step's ``dropped_stale``
    (databases: a killed db_restore's temporary copy, or the old contents its swap put aside, both full copies of
    the data) and ``removed_scratch`` (scratch directories holding a decrypted, decompressed copy)."""
    lines = []
    for step in steps:
        for name in step.get('dropped_stale') or []:
            lines.append('%s step dropped database %s, left by a killed earlier db_restore' % (step['name'], name))
        for path in step.get('removed_scratch') or []:
            lines.append('%s step removed scratch directory %s (a decrypted, decompressed copy), left by a killed '
                         'earlier run' % (step['name'], path))
    return lines


def verdict_line(report: Dict[str, Any]) -> str:
    dbs = report['databases']
    good = sum(1 for db in dbs if db['passed'])
    parts = []
    for db in dbs:
        warned = len(db.get('warnings') or [])
        parts.append('%s RTO %s/%s RPO %s/%s%s%s' % (
            db.get('name'), human(db['rto_seconds']), human(db['objectives']['rto_seconds']),
            human(db['rpo_seconds']), human(db['objectives']['rpo_seconds']), '' if db['passed'] else ' FAILED',
            ' (%d warning%s)' % (warned, '' if warned == 1 else 's') if warned else ''))
    return 'DR drill %s: %d/%d passed; %s' % (report['verdict'], good, len(dbs), '; '.join(parts))


def history_entry(report: Dict[str, Any], paths: Dict[str, str]) -> Dict[str, Any]:
    return {
        'id': report['id'],
        'started': report['started'],
        'finished': report['finished'],
        'passed': report['passed'],
        'report': paths.get('json'),
        'databases': [{
            'name': db.get('name'), 'engine': db.get('engine'), 'passed': db['passed'],
            'rto_seconds': db['rto_seconds'], 'rpo_seconds': db['rpo_seconds'], 'objectives': db['objectives'],
            'rto_verdict': db['rto_verdict'], 'rpo_verdict': db['rpo_verdict'],
            'warnings': len(db.get('warnings') or []),
        } for db in report['databases']],
    }


def read_history(report_dir: str) -> List[Dict[str, Any]]:
    """Earlier drills, oldest first; a torn or foreign line is skipped, never fatal. A symlink at the history's
    name is refused, not followed: the report directory may be another account's, and root would chart (in reports
    written there) a history of root's the link names; the append would refuse it anyway, after the reports."""
    path = os.path.join(report_dir, HISTORY_FILE)
    entries: List[Dict[str, Any]] = []
    handle = safeio.open_regular_stream(path, what='Drill history', missing_ok=True, follow=False)
    if handle is None:
        return []
    with handle:
        for line in safeio.iter_lines(handle):
            if line is None:   # over the per-line cap
                continue
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):   # RecursionError: nested deeper than json recurses
                continue
            if isinstance(entry, dict) and 'started' in entry:
                entries.append(entry)
    return sorted(entries, key=lambda e: str(e['started']))


def _ends_torn(path: str) -> bool:
    try:
        handle = safeio.open_regular_stream(path, what='Drill history', missing_ok=True, follow=False)
        if handle is None:
            return False
        with handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b'\n'
    except FileNotFoundError:
        return False


def report_paths(report_dir: str, report: Dict[str, Any]) -> Dict[str, str]:
    base = os.path.join(os.path.abspath(report_dir), report['id'])
    return {'json': base + '.json', 'markdown': base + '.md', 'html': base + '.html',
            'history': os.path.join(os.path.abspath(report_dir), HISTORY_FILE)}


def write_report(report_dir: str, report: Dict[str, Any], history_limit: int = 30) -> Dict[str, str]:
    """Write JSON, Markdown, HTML atomically, then append the history line. Returns the paths."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill.html import render_html
    # Before anything is made: an account owning a directory above could link report_dir's name to /etc.
    safeio.check_parents(os.path.abspath(report_dir), 'write drill reports into', 'report_dir')
    try:
        safeio.makedirs(report_dir, 0o755)
    except OSError as exc:
        raise OpsReadyError('Cannot create the report directory %s: %s.' % (report_dir, exc.strerror),
                            path=report_dir)
    paths = report_paths(report_dir, report)
    history = read_history(report_dir)
    entry = history_entry(report, paths)
    trend = [h for h in history if h.get('id') != report['id']][-(history_limit - 1):] + [entry]
    try:
        atomic_write_text(paths['json'], json.dumps(report, indent=2, sort_keys=True, default=str) + '\n')
        atomic_write_text(paths['markdown'], render_markdown(report))
        atomic_write_text(paths['html'], render_html(report, trend))
        line = json.dumps(entry, sort_keys=True, default=str)
        if _ends_torn(paths['history']):
            line = '\n' + line  # an interrupted earlier append must not swallow this entry
        append_line_durable(paths['history'], line)
    except OSError as exc:
        raise OpsReadyError('Writing the drill report into %s failed: %s.' % (report_dir, exc.strerror or exc),
                            path=report_dir)
    return paths


def _one_line(value: Any) -> str:
    """A line break in a name or message (any of them: \\r, \\u2028, ...) must not start a line of its own, where it
    could forge a heading (``# DR drill: PASSED``), a list item or a table row."""
    return ' '.join(str(value).splitlines())


# What makes CommonMark read text as markup other than emphasis: raw HTML and autolinks (opened by '<'), links and
# images ([ ] !), code spans (`) and the escape itself. Backslash-escaped, each renders as itself.
_MARKUP = str.maketrans({c: '\\' + c for c in '\\`<[]!'})


def _line(value: Any) -> str:
    """Text on one Markdown line, rendered as the text it is: names and messages (a step's error quotes the server,
    which quotes what the restored backup holds) must not become HTML, a link or a code span in a report viewer."""
    return _one_line(value).translate(_MARKUP)


def _code(value: Any) -> str:
    """A code span that a backtick in the value cannot close early: the fence is longer than any run of backticks
    in it (CommonMark 6.1); nothing inside a code span is markup."""
    text = _one_line(value)
    longest = run = 0
    for char in text:
        run = run + 1 if char == '`' else 0
        longest = max(longest, run)
    fence = '`' * (longest + 1)
    return '%s %s %s' % (fence, text, fence) if longest or text.startswith(' ') else '`%s`' % text


def _cell(value: Any) -> str:
    return _line('' if value is None else value).replace('|', '\\|')


def headline(report: Dict[str, Any]) -> str:
    """The verdict as the reports' headings show it: a pass with warnings (what a recovery from these backups would
    not give back, or what the drill could not prove) is no plain PASSED, whatever warnings_fail decided."""
    if not report['passed']:
        return 'FAILED'
    warned = sum(len(db.get('warnings') or []) for db in report['databases'])
    return 'PASSED WITH %d WARNING%s' % (warned, '' if warned == 1 else 'S') if warned else 'PASSED'


def render_markdown(report: Dict[str, Any]) -> str:
    mark = headline(report)
    lines = ['# %s: %s' % (_line(report['title']), mark), '',
             _code(report['verdict_line']), '',
             '- started: %s, finished: %s (%s), host: %s'
             % (report['started'], report['finished'], human(report['seconds']), _line(report['host'])), '',
             '| database | engine | RTO | RTO objective | RPO | RPO objective | verdict |',
             '|---|---|---|---|---|---|---|']
    for db in report['databases']:
        lines.append('| %s | %s | %s (%s) | %s | %s (%s) | %s | %s |' % (
            _cell(db.get('name')), _cell(db.get('engine')), human(db['rto_seconds']), db['rto_verdict'],
            human(db['objectives']['rto_seconds']), human(db['rpo_seconds']), db['rpo_verdict'],
            human(db['objectives']['rpo_seconds']), 'PASSED' if db['passed'] else 'FAILED'))
    for db in report['databases']:
        backup = db.get('backup') or {}
        measured = db.get('measured')
        if measured:
            # A failover drill: the figures the writer measured replace the backup lines.
            details = [
                '- promoted: %s (old primary %s fenced: %s)'
                % (_code(measured.get('promoted')), _code(db.get('source')), measured.get('fenced')),
                '- acknowledged commits: %s, lost: %s, in doubt: %s, writer reconnects: %s'
                % (measured.get('acknowledged'), measured.get('lost_commits'), measured.get('in_doubt'),
                   measured.get('reconnects')),
                '- WAL the promoted node lacked: %s bytes' % measured.get('rpo_bytes')]
        else:
            details = [
                '- backup used: %s (finished %s), recoverable until %s' % (
                    _code(backup.get('id')), _line(backup.get('finished')), _line(backup.get('recoverable_until'))),
                '- chain: %s' % (', '.join(_code(c) for c in backup.get('chain') or []) or 'none'),
                rpo_line(db)]
        lines += ['', '## %s (%s)' % (_line(db.get('name')), _line(db.get('engine'))), '',
                  '- source: %s, scratch target: %s' % (_code(db.get('source')), _code(db.get('scratch')))]
        lines += details
        lines += ['- scratch target cleaned up: %s' % ('yes' if db.get('cleaned_up') else 'NO')]
        if rto_line(db):
            lines += ['- %s' % _line(rto_line(db))]
        if db.get('objectives_defaulted'):
            lines += ['- %s' % _line(defaulted_line(db))]
        lines += ['- left by a killed earlier run, removed: %s' % _line(line)
                  for line in db.get('leftovers_removed') or []]
        lines += ['',
                  '| step | started | seconds | result |', '|---|---|---|---|']
        for step in db['steps']:
            result = 'ok' if step['ok'] else 'FAILED: %s' % (step.get('error') or '')
            if step['ok'] and step.get('result'):
                result = 'ok: %s' % step['result']
            lines.append('| %s | %s | %s | %s |' % (_cell(step['name']), _cell(step['started']),
                                                    '' if step['seconds'] is None else step['seconds'], _cell(result)))
        if db['reasons']:
            lines += ['', '**Why it failed:**', ''] + ['- %s' % _line(r) for r in db['reasons']]
        if db.get('warnings'):
            lines += ['', '**Warnings (what a recovery from this backup would not give back):**', '']
            lines += ['- %s' % _line(w) for w in db['warnings']]
    if report['tool_versions']:
        versions = sorted(report['tool_versions'].items())
        lines += ['', '## Tool versions', ''] + ['- %s: %s' % (_line(k), _line(v)) for k, v in versions]
    return '\n'.join(lines) + '\n'


def rpo_line(db: Dict[str, Any]) -> str:
    """Both RPO figures: measured from the restored data (when the restore read a point) and the catalog's."""
    recovered = db.get('recovered') or {}
    line = '- RPO %s%s, by the catalog %s' % (
        human(db.get('rpo_seconds')), ' (stop_at %s)' % _line(db['stop_at']) if db.get('stop_at') else '',
        human(db.get('rpo_claimed_seconds')))
    if recovered.get('at'):
        line += '; restored data reaches %s (%s)' % (_line(recovered['at']),
                                                     _line(recovered.get('source') or 'measured'))
    else:
        line += '; no point read from the restored data (measured from the catalog)'
    if db.get('rpo_flag'):
        line += '\n- **RPO flag:** %s' % _line(db['rpo_flag'])
    return line


def test_summary(db: Dict[str, Any]) -> Dict[str, Any]:
    """The fields dbatools' Test-DbaLastBackup returns, plus the RTO/RPO verdicts."""
    steps = {s['name']: s for s in db['steps']}
    backup = db.get('backup') or {}
    restore = steps.get('restore') or {}
    integrity = steps.get('integrity') or {}

    def outcome(step: Dict[str, Any]) -> str:
        if not step:
            return 'Skipped'
        return 'Success' if step['ok'] else 'Failed: %s' % (step.get('error') or 'no detail')

    return {
        'name': db.get('name'), 'engine': db.get('engine'),
        'source_server': db.get('source'), 'test_target': db.get('scratch'), 'database': db.get('name'),
        'file_exists': bool(backup.get('id')), 'size': backup.get('size'),
        'restore_result': outcome(restore), 'integrity_result': outcome(integrity),
        'smoke_result': outcome(steps.get('smoke') or {}),
        'restore_start': restore.get('started'), 'restore_end': restore.get('finished'),
        'restore_elapsed': restore.get('seconds'),
        'integrity_start': integrity.get('started'), 'integrity_end': integrity.get('finished'),
        'integrity_elapsed': integrity.get('seconds'),
        'backup_dates': [backup.get('started'), backup.get('finished')],
        'backup_files': backup.get('chain') or ([backup['id']] if backup.get('id') else []),
        'recoverable_until': backup.get('recoverable_until'),
        'recovered_point': (db.get('recovered') or {}).get('at'), 'rpo_claimed_seconds': db.get('rpo_claimed_seconds'),
        'rpo_flag': db.get('rpo_flag'),
        'rto_seconds': db['rto_seconds'], 'rpo_seconds': db['rpo_seconds'],
        'rto_verdict': db['rto_verdict'], 'rpo_verdict': db['rpo_verdict'],
        'rto_from': db.get('rto_from'), 'find_backup_seconds': db.get('find_backup_seconds'),
        'objectives': db['objectives'], 'objectives_defaulted': db.get('objectives_defaulted') or [],
        'cleaned_up': db['cleaned_up'], 'passed': db['passed'],
        'reasons': db['reasons'], 'warnings': db.get('warnings') or [],
        'leftovers_removed': db.get('leftovers_removed') or [],
    }
