"""Shared timing for the benchmarks: alternating runs, median wall time, peak RSS of the process tree,
output size, ratio against the raw tool, target met or not.

Every measured side is a command run as a child process (ours: a small Python entry point running the
collection's module_utils, see bench/ours.py; raw: the tool or shell pipeline an operator would type),
so both sides are measured the same way:

* wall: time.monotonic() around the child, start to exit;
* peak RSS: the largest *sum* of RSS over the child and all its descendants, sampled every 20 ms with
  psutil (wait4's ru_maxrss is not used: a forked child inherits the high-water mark of the parent
  Python process, which would put a floor of the benchmark driver's own size under every figure);
* output: bytes of what the side produced (a file, a directory tree, a database size), measured
  after the run by a callable.

``compare()`` runs the sides alternately (A B A B ..., the order rotated each round so that caches
favour neither side), at least ``runs`` times each, and returns a :class:`Row` with medians and the verdict.

Noise versus result: every round gives a *paired* ratio (ours / raw of the same round, so a load spike
that hits both sides cancels). After ``runs`` rounds, ``compare()`` keeps adding rounds until the spread
of the paired ratios is under ``SPREAD_GOAL`` (10 %) or ``max_rounds`` is reached. The spread is the width
of a distribution-free confidence interval of the median paired ratio (order statistics, >= 90 % coverage
once there are 5 rounds; min..max before that), divided by that median: it shrinks as rounds are added
when the noise is random, and stays wide when the two sides really vary. Every row also records the
machine's load average at its start and end (this VM is shared: a row measured at load 9 is weaker
evidence than one at load 1).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import psutil

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / '.venv' / 'bin' / 'python')

# argv list, a bash pipeline string, or a Python callable timed in this process (its RSS is not sampled)
Command = Union[str, Sequence[str], Callable[[], Any]]
SPREAD_GOAL = 0.10      # stop adding rounds when the paired ratio is known to within 10 %
MAX_ROUNDS = 8          # ... or after this many rounds (the spread is then reported as it is)


@dataclass
class Sample:
    wall: float
    rss_mb: Optional[float]
    out_mb: Optional[float]
    own_rss_mb: Optional[float] = None   # the first process alone (ours: the module's Python process)


@dataclass
class Side:
    """One side of a comparison: a command, and how to prepare for / measure / clean up after a run."""

    label: str
    command: Command                       # argv list, a bash pipeline string (run with pipefail), or a callable
    env: Optional[Dict[str, str]] = None
    before: Optional[Callable[[], None]] = None      # called before every run (not timed)
    output: Optional[Callable[[], float]] = None     # bytes produced, called after every run (not timed)
    after: Optional[Callable[[], None]] = None       # clean-up after every run (not timed)
    cwd: Optional[str] = None
    samples: List[Sample] = field(default_factory=list)


@dataclass
class Target:
    """The promise: ours/raw wall ratio at most ``max_wall``, output ratio at most ``max_out``, and the
    peak RSS of our own process (not its children: pg_dump, the server) at most ``max_own_rss_mb``."""

    max_wall: float
    max_out: Optional[float] = None
    max_own_rss_mb: Optional[float] = None

    def text(self) -> str:
        text = 'wall <= %.2fx' % self.max_wall
        if self.max_out is not None:
            text += ', out <= %.2fx' % self.max_out
        if self.max_own_rss_mb is not None:
            text += ', own RSS <= %.0f MB' % self.max_own_rss_mb
        return text


@dataclass
class Row:
    operation: str
    ours_label: str
    raw_label: str
    ours: Dict[str, Optional[float]]
    raw: Dict[str, Optional[float]]
    runs: int
    ratio_wall: float
    ratio_out: Optional[float]
    target: str
    met: bool
    note: str = ''
    ours_walls: List[float] = field(default_factory=list)
    raw_walls: List[float] = field(default_factory=list)
    spread: Optional[float] = None            # relative width of the median paired ratio's interval
    ratio_interval: Optional[List[float]] = None   # [low, high] of that interval
    load: Optional[List[float]] = None        # 1-minute load average at the row's start and end
    section: str = ''                         # run_all.py section that produced the row (for --merge)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def median_interval(values: Sequence[float], coverage: float = 0.90) -> tuple:
    """(low, high): a distribution-free confidence interval of the median of ``values``.

    The interval between the k-th smallest and k-th largest value holds the median with probability
    1 - 2 * P(Binomial(n, 1/2) < k); the largest k reaching ``coverage`` is used (k = 1, min..max, when
    even that does not reach it: fewer than 5 values at 90 %).
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return (float('nan'), float('nan'))
    best = 1
    for k in range(1, (n + 1) // 2 + 1):
        below = sum(math.comb(n, i) for i in range(k)) / 2 ** n
        if 1 - 2 * below >= coverage:
            best = k
        else:
            break
    return (ordered[best - 1], ordered[n - best])


def relative_spread(values: Sequence[float]) -> Optional[float]:
    """Width of ``median_interval(values)`` over the median (None for fewer than 2 values)."""
    if len(values) < 2:
        return None
    low, high = median_interval(values)
    middle = statistics.median(values)
    return (high - low) / middle if middle else None


def paired_ratios(ours: Sequence[float], raw: Sequence[float]) -> List[float]:
    """ours_i / raw_i per round (the two sides of one round ran back to back, under the same load)."""
    return [a / b for a, b in zip(ours, raw) if b > 0]


def judge_spread(row: 'Row') -> None:
    """Set ``row.spread`` and ``row.ratio_interval`` from its per-round walls."""
    ratios = paired_ratios(row.ours_walls, row.raw_walls)
    row.spread = relative_spread(ratios)
    if len(ratios) >= 2:
        row.ratio_interval = [round(x, 4) for x in median_interval(ratios)]


def path_size(path: Union[str, Path]) -> float:
    """Bytes of a file, or of every file under a directory (0 when absent)."""
    path = Path(path)
    if path.is_file():
        return float(path.stat().st_size)
    if not path.is_dir():
        return 0.0
    total = 0
    for root, dummy, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return float(total)


def clear(path: Union[str, Path]) -> None:
    """Remove a file or directory tree if present."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _tree_rss(proc: psutil.Process) -> tuple:
    """(RSS of the process and its descendants, RSS of the process alone) in bytes."""
    total = own = 0
    try:
        members = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0, 0
    for member in members:
        try:
            rss = member.memory_info().rss
        except psutil.Error:
            continue
        total += rss
        if member is proc:
            own = rss
    return total, own


class TimedOut(RuntimeError):
    """The command ran longer than its ``timeout`` and was killed (its figures are lower bounds)."""

    def __init__(self, command: Any, wall: float, rss: int, own: int) -> None:
        super().__init__('timed out after %.0f s: %s' % (wall, command))
        self.wall, self.rss, self.own = wall, rss, own


def measure(command: Command, env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
            quiet: bool = True, timeout: Optional[float] = None) -> tuple:
    """Run ``command`` once: (wall seconds, peak RSS bytes of the tree, peak RSS bytes of the first
    process alone). Raises on a non-zero exit; raises :class:`TimedOut` (after killing the process
    group) when ``timeout`` seconds pass."""
    shell = isinstance(command, str)
    argv: Any = 'set -o pipefail; ' + command if shell else list(command)
    out = subprocess.DEVNULL if quiet else None
    started = time.monotonic()
    proc = subprocess.Popen(argv, shell=shell, executable='/bin/bash' if shell else None, env=env, cwd=cwd,
                            stdout=out, stderr=subprocess.PIPE, start_new_session=timeout is not None)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not done.is_set():
            tree, own = _tree_rss(root)
            peak[0], peak[1] = max(peak[0], tree), max(peak[1], own)
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timer = None
    expired = threading.Event()
    if timeout is not None:
        def kill() -> None:
            expired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        timer = threading.Timer(timeout, kill)
        timer.start()
    stderr = proc.stderr.read() if proc.stderr else b''
    dummy_pid, status, dummy_usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if timer is not None:
        timer.cancel()
    done.set()
    sampler.join()
    if expired.is_set():
        raise TimedOut(command if shell else ' '.join(argv), wall, peak[0], peak[1])
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError('benchmark command failed (exit %d): %s\n%s' % (
            proc.returncode, command if shell else ' '.join(argv), stderr.decode(errors='replace')[-3000:]))
    return wall, peak[0], peak[1]


def run_side(side: Side) -> Sample:
    if side.before:
        side.before()
    if callable(side.command):
        # in-process (library code next to an SDK call): wall time only, the process's RSS is the driver's too
        started = time.monotonic()
        side.command()
        wall, rss_mb, own_mb = time.monotonic() - started, None, None
    else:
        wall, rss, own = measure(side.command, env=side.env, cwd=side.cwd)
        rss_mb, own_mb = rss / 1e6, own / 1e6
    out = side.output() if side.output else None
    if side.after:
        side.after()
    sample = Sample(wall=wall, rss_mb=rss_mb, out_mb=None if out is None else out / 1e6, own_rss_mb=own_mb)
    side.samples.append(sample)
    return sample


def _median(values: List[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summary(side: Side, start: int = 0) -> Dict[str, Optional[float]]:
    """Medians of the side's samples from index ``start`` on (the rounds of one comparison)."""
    samples = side.samples[start:]
    return {'wall_s': _median([s.wall for s in samples]),
            'peak_rss_mb': _median([s.rss_mb for s in samples]),
            'own_peak_rss_mb': _median([s.own_rss_mb for s in samples]),
            'output_mb': _median([s.out_mb for s in samples])}


def compare(operation: str, ours: Side, raws: Sequence[Side], targets: Sequence[Target], runs: int = 3,
            notes: Sequence[str] = (), log: Callable[[str], None] = print,
            max_rounds: Optional[int] = None, spread_goal: float = SPREAD_GOAL) -> List[Row]:
    """Alternate ``ours`` with every raw side, at least ``runs`` rounds; one Row per raw side.

    The order rotates each round (ours first, then raw first, ...) so neither side always runs on a
    warm cache. Ours is run once per round and compared with each raw side. After ``runs`` rounds, more
    are added until every paired ratio's spread is under ``spread_goal`` or ``max_rounds`` (default
    ``max(runs, MAX_ROUNDS)``) is reached.
    """
    sides = [ours] + list(raws)
    first = {id(side): len(side.samples) for side in sides}   # a Side may be reused by several rows
    limit = max(runs, MAX_ROUNDS if max_rounds is None else max_rounds)
    load_start = load_average()
    log('  %s: load average %.2f at start' % (operation, load_start))

    def walls(side: Side) -> List[float]:
        return [s.wall for s in side.samples[first[id(side)]:]]

    def spreads() -> List[Optional[float]]:
        return [relative_spread(paired_ratios(walls(ours), walls(raw))) for raw in raws]

    round_ = 0
    while round_ < limit:
        if round_ >= runs:
            current = spreads()
            if all(value is not None and value < spread_goal for value in current):
                break
            shown = ', '.join('-' if v is None else '%.0f %%' % (v * 100) for v in current)
            log('    spread %s >= %.0f %%: round %d' % (shown, spread_goal * 100, round_ + 1))
        order = sides[round_ % len(sides):] + sides[:round_ % len(sides)]
        for side in order:
            sample = run_side(side)
            log('    %-40s run %d: %7.2f s  %8s MB RSS  %s  (load %.2f)' % (
                side.label[:40], round_ + 1, sample.wall, _num(sample.rss_mb),
                '-' if sample.out_mb is None else '%.1f MB out' % sample.out_mb, load_average()))
        round_ += 1
    load = [load_start, load_average()]
    rows = []
    mine = summary(ours, first[id(ours)])
    for index, raw in enumerate(raws):
        theirs = summary(raw, first[id(raw)])
        target = targets[index]
        ratio_wall = (mine['wall_s'] or 0.0) / max(theirs['wall_s'] or 0.0, 1e-9)
        ratio_out = None
        if mine['output_mb'] is not None and theirs['output_mb']:
            ratio_out = mine['output_mb'] / theirs['output_mb']
        met = ratio_wall <= target.max_wall
        if target.max_out is not None:
            # to the table's precision: a few bytes of zstd framing are not "bigger"
            met = met and ratio_out is not None and round(ratio_out, 3) <= target.max_out
        if target.max_own_rss_mb is not None:
            met = met and mine['own_peak_rss_mb'] is not None and mine['own_peak_rss_mb'] <= target.max_own_rss_mb
        row = Row(operation=operation, ours_label=ours.label, raw_label=raw.label, ours=mine, raw=theirs,
                  runs=round_, ratio_wall=ratio_wall, ratio_out=ratio_out, target=target.text(), met=met,
                  note=notes[index] if index < len(notes) else '',
                  ours_walls=walls(ours), raw_walls=walls(raw), load=load)
        judge_spread(row)
        log('  %s vs %s: ratio %.2fx, spread %s over %d rounds, load %.2f -> %.2f' % (
            operation, raw.label[:40], ratio_wall, '-' if row.spread is None else '%.0f %%' % (row.spread * 100),
            round_, load[0], load[1]))
        rows.append(row)
    return rows


def _num(value: Optional[float], digits: int = 1) -> str:
    return '-' if value is None else '%.*f' % (digits, value)


def _spread(row: Row) -> str:
    return '-' if row.spread is None else '%.0f%%' % (row.spread * 100)


def _load(row: Row) -> str:
    return '-' if not row.load else '%.1f-%.1f' % (min(row.load), max(row.load))


def format_table(rows: List[Row]) -> str:
    head = '%-44s | %8s %8s %8s | %8s %8s %8s | %6s %6s | %6s %6s %9s | %-24s | %s' % (
        'operation (ours vs raw)', 'wall s', 'RSS MB', 'out MB', 'wall s', 'RSS MB', 'out MB', 'wall', 'out',
        'spread', 'rounds', 'load', 'target', 'met')
    lines = [head, '-' * len(head)]
    for row in rows:
        lines.append('%-44s | %8s %8s %8s | %8s %8s %8s | %5.2fx %6s | %6s %6d %9s | %-24s | %s' % (
            row.operation[:44], _num(row.ours['wall_s'], 2), _num(row.ours['peak_rss_mb']),
            _num(row.ours['output_mb']), _num(row.raw['wall_s'], 2), _num(row.raw['peak_rss_mb']),
            _num(row.raw['output_mb']), row.ratio_wall,
            '-' if row.ratio_out is None else '%.2fx' % row.ratio_out, _spread(row), row.runs, _load(row),
            row.target, 'yes' if row.met else 'NO'))
    return '\n'.join(lines)


def markdown_table(rows: List[Row]) -> str:
    lines = ['| operation | ours | raw tool | ours wall s | ours peak RSS MB (tree / own) | ours out MB | raw wall s | '
             'raw peak RSS MB | raw out MB | ratio wall | ratio out | spread (rounds) | load | target | met |',
             '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|']
    for row in rows:
        lines.append('| %s | %s | %s | %s | %s / %s | %s | %s | %s | %s | %.2fx | %s | %s (%d) | %s | %s | %s |' % (
            row.operation, row.ours_label.replace('|', '\\|'), row.raw_label.replace('|', '\\|'),
            _num(row.ours['wall_s'], 2), _num(row.ours['peak_rss_mb']), _num(row.ours.get('own_peak_rss_mb')),
            _num(row.ours['output_mb']),
            _num(row.raw['wall_s'], 2), _num(row.raw['peak_rss_mb']), _num(row.raw['output_mb']),
            row.ratio_wall, '-' if row.ratio_out is None else '%.2fx' % row.ratio_out, _spread(row), row.runs,
            _load(row), row.target, 'yes' if row.met else '**no**'))
    return '\n'.join(lines)


def write_json(path: Union[str, Path], rows: List[Row], meta: Dict[str, Any]) -> None:
    data = {'meta': meta, 'rows': [asdict(row) for row in rows]}
    tmp = str(path) + '.tmp'
    with open(tmp, 'w') as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write('\n')
    os.replace(tmp, path)


def machine() -> Dict[str, Any]:
    return {'cpus': os.cpu_count(), 'memory_gb': round(psutil.virtual_memory().total / 2 ** 30, 1),
            'load_at_start': [round(x, 2) for x in os.getloadavg()], 'kernel': os.uname().release}
