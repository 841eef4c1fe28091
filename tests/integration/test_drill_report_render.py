"""drill_report through a real playbook run, then the HTML rendered by headless Chromium.

The page must show the verdict and the RTO/RPO figures in the DOM Chromium built, and the screenshot
must not be blank: it holds the verdict banner's colour (green for a pass, red for a failure).
"""

from __future__ import annotations

import datetime
import json
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook, write_playbook

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
GREEN = (0x1a, 0x7f, 0x37)
RED = (0xcf, 0x22, 0x2e)
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason='Debian chromium is not installed')


def iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def steps(start, restore_seconds=3.0, fail=None):
    out, t = [], start
    for name, secs in (('find_backup', 0.2), ('verify', 0.8), ('restore', restore_seconds), ('integrity', 1.5),
                       ('smoke', 0.4), ('cleanup', 0.3)):
        ok = name != fail
        out.append({'name': name, 'started': iso(t), 'finished': iso(t + datetime.timedelta(seconds=secs)),
                    'ok': ok, 'error': None if ok else 'integrity_check: row 12 missing from index'})
        t += datetime.timedelta(seconds=secs)
    return out


def chromium(args, html, workdir):
    profile = tempfile.mkdtemp(prefix='opsready-chromium-')
    try:
        argv = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--user-data-dir=%s' % profile] + args + ['file://%s' % html]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=workdir, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def png_pixels(path):
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of RGB tuples."""
    data = Path(path).read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat, width = 8, b'', 0
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            width, height, depth, ctype = struct.unpack('>IIBB', body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b'IDAT':
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xff
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xff
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xff
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xff
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return rows


def report_play(tmp_path, reports, databases, started):
    task = {'name': 'report', 'register': 'out', 'opsready.operations.drill_report': {
        'report_dir': str(reports), 'started': iso(started), 'databases': databases}}
    return run_playbook(write_playbook(tmp_path, [task]))


@pytest.mark.parametrize('outcome', ['pass', 'fail'])
def test_report_renders_verdict_bars_and_figures_in_chromium(tmp_path, outcome):
    reports = tmp_path / 'reports'
    now = datetime.datetime.now(datetime.timezone.utc)
    # an earlier drill first, so the trend chart has two points
    for i, when in enumerate((now - datetime.timedelta(days=30), now)):
        fail = 'integrity' if outcome == 'fail' and i == 1 else None
        db = {'name': 'orders', 'engine': 'postgresql', 'source': 'db1:5432/orders', 'scratch': 'orders_drill',
              'backup': {'id': 'postgresql-orders-full-1', 'recoverable_until': iso(when - datetime.timedelta(
                  seconds=42)), 'chain': ['postgresql-orders-full-1']},
              'objectives': {'rto_seconds': 900, 'rpo_seconds': 300}, 'steps': steps(when, fail=fail)}
        result = report_play(tmp_path, reports, [db], when)
        assert result.rc == 0, result.stdout[-3000:]
    out = result.result('report')
    html = Path(out['paths']['html'])
    assert out['passed'] is (outcome == 'pass')
    assert len(Path(out['paths']['history']).read_text().splitlines()) == 2
    assert json.loads(Path(out['paths']['json']).read_text())['verdict'] == out['verdict']

    dom = chromium(['--dump-dom'], html, tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    verdict = 'PASSED' if outcome == 'pass' else 'FAILED'
    assert 'DR drill %s' % verdict in dom.stdout
    assert 'RPO 42.0 s' in dom.stdout and 'objective 5 min 0 s' in dom.stdout
    if outcome == 'pass':
        assert 'RTO 5.70 s (objective 15 min 0 s)' in dom.stdout
    else:
        assert 'RTO n/a' in dom.stdout and 'step integrity failed: integrity_check: row 12 missing' in dom.stdout
    # two drills on each of the RTO and RPO trends; an unmeasured RTO is drawn as a red x, not a point
    assert dom.stdout.count('class="point"') == (4 if outcome == 'pass' else 3) and 'last 2 drills' in dom.stdout

    shot = tmp_path / 'shot.png'
    render = chromium(['--screenshot=%s' % shot, '--window-size=1200,1400', '--hide-scrollbars'], html, tmp_path)
    assert render.returncode == 0 and shot.exists(), render.stderr[-2000:]
    pixels = png_pixels(shot)
    colours = {}
    for row in pixels[::4]:
        for px in row[::4]:
            colours[px] = colours.get(px, 0) + 1
    assert len(colours) > 20, 'screenshot looks blank: %d colours' % len(colours)
    banner = GREEN if outcome == 'pass' else RED
    top = [px for row in pixels[20:120] for px in row[100:1000]]
    assert top.count(banner) > len(top) * 0.5, 'the verdict banner colour %s is not at the top of the page' % (banner,)
    # the bars and the timeline are drawn further down in the verdict colours
    body = [px for row in pixels[200:] for px in row]
    assert body.count(GREEN) > 500
