# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The self-contained HTML drill report: no scripts, no external assets, inline CSS and SVG.

What an operator sees at a glance: a green or red verdict banner; per database, RTO and RPO bars
against their objectives, a timeline of the steps, and the trend of RTO/RPO over earlier drills.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from html import escape
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import parse_time
from ansible_collections.opsready.operations.plugins.module_utils.drill.objectives import (
    defaulted_line, human, rto_line)

GREEN = '#1a7f37'
RED = '#cf222e'
GREY = '#8c959f'
AMBER = '#bf8700'
CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f6f8fa;color:#1f2328}
main{max-width:1100px;margin:0 auto;padding:16px}
.banner{color:#fff;padding:22px 28px;border-radius:8px;margin-bottom:18px}
.banner h1{margin:0;font-size:34px}
.banner p{margin:6px 0 0;font-size:15px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;margin-bottom:18px}
.card h2{margin:0 0 4px;font-size:22px}
.badge{display:inline-block;color:#fff;border-radius:12px;padding:2px 10px;font-size:13px;margin-left:8px}
.meta{color:#59636e;font-size:13px;margin:0 0 12px}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:8px}
th,td{border-bottom:1px solid #d0d7de;text-align:left;padding:4px 6px;vertical-align:top}
h3{font-size:15px;margin:16px 0 4px}
.reasons li{color:#cf222e}
code{font-size:12px}
footer{color:#59636e;font-size:12px;padding:8px 0 24px}
"""


def _color(verdict: str) -> str:
    return {'pass': GREEN, 'fail': RED}.get(verdict, AMBER)


def objective_bar(label: str, value: Optional[float], objective: float, verdict: str, width: int = 1000) -> str:
    """A bar for the measured figure on a scale where the objective sits at 80 % of the width."""
    left, bar_h = 70, 26
    usable = width - left - 20
    # or 1.0: an objective of 0 s (no loss allowed) with nothing measured, or measured 0 s
    scale_max = max(objective * 1.25, value or 0) or 1.0
    obj_x = left + usable * objective / scale_max
    color = _color(verdict)
    if value is None:
        figure_svg = ('<rect x="%d" y="8" width="%d" height="%d" fill="none" stroke="%s" stroke-dasharray="6 4"/>'
                      '<text x="%d" y="26" font-size="13" fill="%s">not measured</text>'
                      % (left, usable, bar_h, AMBER, left + 8, AMBER))
        figure = 'n/a'
    else:
        w = max(3.0, usable * value / scale_max)
        figure_svg = ('<rect class="bar" x="%d" y="8" width="%.1f" height="%d" rx="3" fill="%s"/>'
                      % (left, w, bar_h, color))
        figure = human(value)
    pct = '' if value is None or not objective else ' (%.1f %% of objective)' % (100.0 * value / objective)
    return (
        '<svg class="objective" role="img" aria-label="%(label)s %(figure)s against objective %(obj)s" '
        'viewBox="0 0 %(width)d 64" width="100%%" height="64" xmlns="http://www.w3.org/2000/svg">'
        '<rect x="%(left)d" y="8" width="%(usable)d" height="%(h)d" fill="#eaeef2" rx="3"/>%(figure_svg)s'
        '<line x1="%(ox).1f" y1="2" x2="%(ox).1f" y2="40" stroke="#1f2328" stroke-width="2" stroke-dasharray="4 3"/>'
        '<text x="0" y="27" font-size="15" font-weight="bold" fill="#1f2328">%(label)s</text>'
        '<text x="%(ox).1f" y="56" font-size="12" text-anchor="middle" fill="#1f2328">objective %(obj)s</text>'
        '<text x="%(left)d" y="56" font-size="13" fill="%(color)s" font-weight="bold">%(figure)s%(pct)s</text>'
        '</svg>' % dict(label=escape(label), figure=escape(figure), obj=escape(human(objective)), width=width,
                        left=left, usable=usable, h=bar_h, figure_svg=figure_svg, ox=obj_x, color=color,
                        pct=escape(pct)))


def timeline(steps: List[Dict[str, Any]], width: int = 1000) -> str:
    """Gantt chart of the steps on one time axis (from the first start to the last end)."""
    if not steps:
        return '<p>No steps were recorded.</p>'
    starts = [parse_time(str(s['started']), 'started') for s in steps]
    ends = [parse_time(str(s['finished']), 'finished') if s.get('finished') else st for s, st in zip(steps, starts)]
    t0, t1 = min(starts), max(ends)
    total = max((t1 - t0).total_seconds(), 0.001)
    left, row = 110, 26
    usable = width - left - 150
    parts = []
    for i, (step, st, en) in enumerate(zip(steps, starts, ends)):
        y = 8 + i * row
        x = left + usable * (st - t0).total_seconds() / total
        w = max(3.0, usable * (en - st).total_seconds() / total)
        color = GREEN if step['ok'] else RED
        secs = step.get('seconds')
        text = ('%s' % human(secs) if secs is not None else 'unfinished') + ('' if step['ok'] else ' FAILED')
        parts.append('<text x="0" y="%d" font-size="13" fill="#1f2328">%s</text>' % (y + 14, escape(step['name'])))
        parts.append('<rect class="step" x="%.1f" y="%d" width="%.1f" height="18" rx="2" fill="%s">'
                     '<title>%s</title></rect>' % (x, y, w, color, escape('%s %s' % (step['name'], text))))
        parts.append('<text x="%.1f" y="%d" font-size="12" fill="%s">%s</text>'
                     % (x + w + 6, y + 14, color if not step['ok'] else '#59636e', escape(text)))
    height = 8 + len(steps) * row + 22
    axis_y = height - 14
    parts.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#8c959f"/>' % (left, axis_y, left + usable, axis_y))
    parts.append('<text x="%d" y="%d" font-size="11" fill="#59636e">0 s</text>' % (left, axis_y + 12))
    parts.append('<text x="%d" y="%d" font-size="11" fill="#59636e" text-anchor="end">%s</text>'
                 % (left + usable, axis_y + 12, escape(human(total))))
    return ('<svg class="timeline" role="img" aria-label="timeline of the drill steps" viewBox="0 0 %d %d" '
            'width="100%%" height="%d" xmlns="http://www.w3.org/2000/svg">%s</svg>'
            % (width, height, height, ''.join(parts)))


def trend_chart(label: str, points: List[Optional[float]], objective: float, passed: List[bool],
                width: int = 480, height: int = 150) -> str:
    """Line chart of one figure over the drills (oldest left), with the objective as a dashed line."""
    left, top, bottom, right = 48, 14, 24, 10
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [p for p in points if p is not None]
    vmax = (max(values + [objective]) * 1.1 if values else objective * 1.1) or 1.0  # all 0: objective 0 s
    n = len(points)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / vmax

    parts = ['<rect x="%d" y="%d" width="%d" height="%d" fill="#f6f8fa"/>' % (left, top, plot_w, plot_h),
             '<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="5 4"/>'
             % (left, y(objective), left + plot_w, y(objective), RED),
             '<text x="%d" y="%.1f" font-size="11" fill="%s" text-anchor="end">%s</text>'
             % (left + plot_w, y(objective) - 3, RED, escape('objective ' + human(objective))),
             '<text x="2" y="%d" font-size="11" fill="#59636e">%s</text>' % (top + 10, escape(human(vmax))),
             '<text x="2" y="%d" font-size="11" fill="#59636e">0</text>' % (top + plot_h),
             '<text x="%d" y="%d" font-size="12" fill="#1f2328">%s</text>'
             % (left, height - 6, escape('%s, last %d drills' % (label, n)))]
    path: List[str] = []
    for i, v in enumerate(points):
        if v is None:
            continue
        path.append('%s%.1f %.1f' % ('M' if not path else 'L', x(i), y(v)))
    if len(path) > 1:
        parts.append('<path d="%s" fill="none" stroke="#0969da" stroke-width="2"/>' % ' '.join(path))
    for i, v in enumerate(points):
        ok = passed[i] if i < len(passed) else True
        if v is None:
            parts.append('<text x="%.1f" y="%d" font-size="12" fill="%s" text-anchor="middle">x</text>'
                         % (x(i), top + plot_h - 2, RED))
            continue
        parts.append('<circle class="point" cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s</title></circle>'
                     % (x(i), y(v), GREEN if ok else RED, escape(human(v))))
    return ('<svg class="trend" role="img" aria-label="%s trend" viewBox="0 0 %d %d" width="%d" height="%d" '
            'xmlns="http://www.w3.org/2000/svg">%s</svg>' % (escape(label), width, height, width, height,
                                                             ''.join(parts)))


def _trend_for(name: Any, engine: Any, history: List[Dict[str, Any]]) -> Dict[str, List[Any]]:
    rto: List[Optional[float]] = []
    rpo: List[Optional[float]] = []
    ok: List[bool] = []
    for entry in history:
        for db in entry.get('databases') or []:
            if db.get('name') == name and db.get('engine') == engine:
                rto.append(db.get('rto_seconds'))
                rpo.append(db.get('rpo_seconds'))
                ok.append(bool(db.get('passed')))
    return {'rto': rto, 'rpo': rpo, 'passed': ok}


def _database_card(db: Dict[str, Any], history: List[Dict[str, Any]]) -> str:
    passed = db['passed']
    backup = db.get('backup') or {}
    obj = db['objectives']
    trend = _trend_for(db.get('name'), db.get('engine'), history)
    rows = []
    for step in db['steps']:
        result = 'ok' if step['ok'] else 'FAILED: %s' % (step.get('error') or '')
        if step['ok'] and step.get('result'):
            result = 'ok: %s' % step['result']
        rows.append('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
            escape(step['name']), escape(str(step['started'])), escape(str(step.get('finished') or '')),
            '' if step['seconds'] is None else '%.3f' % step['seconds'], escape(str(result))))
    reasons = ''
    if db['reasons']:
        reasons = '<h3>Why it failed</h3><ul class="reasons">%s</ul>' % ''.join(
            '<li>%s</li>' % escape(r) for r in db['reasons'])
    recovered = db.get('recovered') or {}
    if db.get('warnings'):
        reasons += ('<h3>Warnings: what a recovery from this backup would not give back</h3><ul class="reasons">%s'
                    '</ul>' % ''.join('<li>%s</li>' % escape(w) for w in db['warnings']))
    if db.get('objectives_defaulted'):
        reasons += '<p class="meta">%s</p>' % escape(defaulted_line(db))
    if db.get('rpo_flag'):
        reasons += '<h3>RPO: catalog and restored data differ</h3><ul class="reasons"><li>%s</li></ul>' % escape(
            db['rpo_flag'])
    facts = [('source', db.get('source')), ('scratch target', db.get('scratch')),
             ('stop_at', db.get('stop_at') or None),
             ('recovered point (read from the restored data)', recovered.get('at')),
             ('recovered point measured by', recovered.get('source')),
             ('RPO by the catalog', None if db.get('rpo_claimed_seconds') is None
              else human(db['rpo_claimed_seconds'])),
             ('RPO measured from', db.get('rpo_basis')),
             ('RTO counts', rto_line(db) or None),
             ('scratch cleaned up', 'yes' if db.get('cleaned_up') else 'NO'),
             ('left by a killed earlier run, removed', '; '.join(db.get('leftovers_removed') or []) or None),
             ('backup used', backup.get('id')), ('backup started', backup.get('started')),
             ('backup finished', backup.get('finished')), ('recoverable until', backup.get('recoverable_until')),
             ('chain', ', '.join(backup.get('chain') or []) or None), ('backup size (bytes)', backup.get('size'))]
    fact_rows = ''.join('<tr><th>%s</th><td><code>%s</code></td></tr>' % (escape(k), escape(str(v)))
                        for k, v in facts if v is not None)
    return (
        '<section class="card" id="db-%(anchor)s"><h2>%(name)s <span class="badge" style="background:%(color)s">'
        '%(verdict)s</span></h2><p class="meta">%(engine)s &middot; RTO %(rto)s (objective %(rto_obj)s) &middot; '
        'RPO %(rpo)s (objective %(rpo_obj)s)</p>%(rto_bar)s%(rpo_bar)s%(reasons)s'
        '<h3>Timeline</h3>%(timeline)s<h3>Trend over drills</h3>%(trend_rto)s %(trend_rpo)s'
        '<h3>Steps</h3><table><tr><th>step</th><th>started</th><th>finished</th><th>seconds</th><th>result</th></tr>'
        '%(rows)s</table><h3>Backup</h3><table>%(facts)s</table></section>' % dict(
            anchor=escape(str(db.get('name')).replace(' ', '-')), name=escape(str(db.get('name'))),
            color=GREEN if passed else RED, verdict='PASSED' if passed else 'FAILED',
            engine=escape(str(db.get('engine'))), rto=escape(human(db['rto_seconds'])),
            rto_obj=escape(human(obj['rto_seconds'])), rpo=escape(human(db['rpo_seconds'])),
            rpo_obj=escape(human(obj['rpo_seconds'])),
            rto_bar=objective_bar('RTO', db['rto_seconds'], obj['rto_seconds'], db['rto_verdict']),
            rpo_bar=objective_bar('RPO', db['rpo_seconds'], obj['rpo_seconds'], db['rpo_verdict']),
            reasons=reasons, timeline=timeline(db['steps']),
            trend_rto=trend_chart('RTO', trend['rto'] or [db['rto_seconds']], obj['rto_seconds'], trend['passed']),
            trend_rpo=trend_chart('RPO', trend['rpo'] or [db['rpo_seconds']], obj['rpo_seconds'], trend['passed']),
            rows=''.join(rows), facts=fact_rows))


def render_html(report: Dict[str, Any], history: List[Dict[str, Any]]) -> str:
    """``history`` is the trend to chart, oldest first, including this drill's own entry."""
    from ansible_collections.opsready.operations.plugins.module_utils.drill.report import headline
    passed = report['passed']
    mark = headline(report)
    cards = ''.join(_database_card(db, history) for db in report['databases'])
    versions = ', '.join('%s: %s' % (escape(k), escape(str(v))) for k, v in sorted(report['tool_versions'].items()))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>%(title)s %(verdict)s - %(started)s</title><style>%(css)s</style></head><body><main>'
        '<header class="banner" id="verdict" data-verdict="%(verdict)s" style="background:%(color)s">'
        '<h1>%(mark)s %(title)s %(headline)s</h1><p>%(line)s</p>'
        '<p>started %(started)s &middot; finished %(finished)s &middot; %(seconds)s &middot; host %(host)s</p>'
        '</header>%(cards)s<footer>Report %(id)s &middot; tool versions: %(versions)s &middot; '
        'generated by opsready.operations.drill_report</footer></main></body></html>\n' % dict(
            title=escape(report['title']), verdict=report['verdict'], started=escape(report['started']),
            finished=escape(report['finished']), seconds=escape(human(report['seconds'])), css=CSS,
            color=RED if not passed else GREEN if mark == 'PASSED' else AMBER, headline=mark,
            mark='&#10004;' if passed else '&#10008;',
            line=escape(report['verdict_line']), host=escape(report['host']), cards=cards,
            id=escape(report['id']), versions=versions or 'n/a'))
