"""Catalog at scale (issue 22): the catalog work of backup_info, backup_prune (check mode), db_backup
and the DR drill's find_backup on a backup directory of N generated manifests, at growing N.

    .venv/bin/python bench/catalog_scale.py [--sizes 20000,100000,200000] [--databases 20]
                                            [--runs 3] [--max-rounds 8] [--timeout 120] [--tmp-root /var/tmp]
    .venv/bin/python bench/catalog_scale.py --profile backup_info --sizes 20000     # where the time goes
    .venv/bin/python bench/catalog_scale.py run OPERATION DIRECTORY                # one measured child

The directory is what a MariaDB server with ``--databases`` databases leaves after months of the backup
role: a daily ``full`` (mariadb-dump with its binlog position) and 23 hourly ``log`` backups (one binlog
each, contiguous binlog indexes) per database, every backup verified. The manifests are the JSON the
product writes: built field by field like ``MySQLEngine._dump``/``_copy_binlog`` (``Engine.base_manifest``,
``write_manifest``'s defaults, ``Manifest.record_verification``) and serialised like ``atomic_write_json``
(tests/unit/bench_catalog_scale_test.py checks the bytes against ``write_manifest`` itself); only the
fsync per file is skipped, so that 200,000 of them generate in a minute. Each artifact exists as an empty
file (the catalog lists the directory; it never opens an artifact for these operations).

Each operation runs in its own child process (``run``), measured by bench/common.measure (wall, peak RSS
of the process); it is repeated until the spread of its wall times is under 10 % or ``--max-rounds``,
and the machine's load is printed with every row. Growth: wall(N) / wall(previous N) and the same for
peak RSS, next to the growth of N (linear growth matches it). Targets (issue 22): every operation under
1 s and 200 MB at 200,000 manifests, growing no faster than linearly. An operation that exceeds
``--timeout`` is killed and reported as "> timeout".

The catalog index (backup/catalog_index.py) is built by the first operation that reads a directory and
used by every later one: ``backup_info_cold`` removes it before each round (the one-off cost of the first
run); ``backup_info_changed`` adds one manifest by rename first (the first read after each backup: the index's
seal no longer matches, every manifest is stat'ed, the new one parsed and appended to the index's journal, the
index sealed again in place); every other row is the
steady state (a sealed index of an unchanged directory). ``backup_info`` is describe() alone; ``backup_info_output``
adds the module's JSON result (the newest 100 artifacts and the chain by default, ``max_artifacts``).
``backup_prune_check`` is prune() alone, called as the module calls it (its lists cut to the default ``max_listed``:
check mode then ``stat``s the manifests of the deletions it lists, not of the ~140,000 it counts);
``backup_prune_check_output`` adds the module's result path (``exit_json``'s ``remove_values`` and JSON).
Two reference rows are not product operations: ``floor_stat`` (list the directory and stat every
manifest: what any catalog that trusts no cache must do) and ``read_all`` (parse every manifest once).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO / 'build')]

from common import PYTHON, TimedOut, load_average, measure, relative_spread  # noqa: E402

UTC = datetime.timezone.utc
ENGINE = 'mariadb'
LOGS_PER_DAY = 23          # hourly binlog backups between two daily fulls
SERVER = 'db1.example.net:3306'
TOOL_DUMP = {'name': 'mariadb-dump', 'version': '10.11.6'}
TOOL_BINLOG = {'name': 'mariadb-binlog', 'version': '10.11.6'}
POLICY = {'keep_daily': 14, 'keep_weekly': 8, 'keep_monthly': 6}
TARGET_WALL_S = 1.0
INDEX_FILE = '.opsready-catalog-index.json'   # catalog_index.INDEX_NAME
TARGET_RSS_MB = 200.0


# ------------------------------------------------------------------------------------------- generator
def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def _stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')


def _verification(when: datetime.datetime, check: str) -> Dict[str, Any]:
    return {'ok': True, 'checks': {'checksum': 'ok', 'engine_check': check, 'error': None},
            'verified_at': _iso(when)}


def full_manifest(database: str, started: datetime.datetime, log_start: int, size: int) -> Dict[str, Any]:
    """What MySQLEngine._dump commits (then backup verification records), for a dump at ``started``."""
    finished = started + datetime.timedelta(seconds=40)
    name = 'mariadb-bin.%06d' % log_start
    artifact = '%s-%s-full-%s.sql.zst' % (ENGINE, database, _stamp(started))
    return {
        'engine': ENGINE, 'kind': 'full', 'server': SERVER, 'database': database,
        'started': _iso(started), 'finished': _iso(finished), 'consistent_at': _iso(started),
        'size': size, 'sha256': hashlib.sha256(artifact.encode()).hexdigest(), 'raw_size': size * 4,
        'compression': 'zstd', 'compression_level': 3, 'parent': None,
        'position': {'binlog_file': name, 'binlog_pos': 342, 'log_start': log_start,
                     'gtid': '0-1-%d' % (log_start * 1000)},
        'format': 'sql', 'tool': TOOL_DUMP, 'server_version': '10.11.6-MariaDB-0+deb12u1',
        'id': artifact, 'artifact': artifact,
        'verification': _verification(finished + datetime.timedelta(seconds=5), 'mariadb dump trailer ok'),
    }


def log_manifest(database: str, started: datetime.datetime, index: int, size: int) -> Dict[str, Any]:
    """What MySQLEngine._copy_binlog commits for binlog ``index``, copied at ``started``."""
    finished = started + datetime.timedelta(seconds=2)
    name = 'mariadb-bin.%06d' % index
    artifact = '%s-%s-log-%s.%s.zst' % (ENGINE, database, _stamp(started), name)
    return {
        'engine': ENGINE, 'kind': 'log', 'server': SERVER, 'database': database,
        'started': _iso(started), 'finished': _iso(finished), 'consistent_at': _iso(started - datetime.timedelta(
            seconds=1)),
        'size': size, 'sha256': hashlib.sha256(artifact.encode()).hexdigest(), 'raw_size': size * 3,
        'compression': 'zstd', 'compression_level': 3, 'parent': None,
        'position': {'start': index, 'end': index + 1, 'binlog_file': name},
        'covers_from': _iso(started - datetime.timedelta(hours=1)),
        'format': 'binlog', 'events': 1200 + index % 700, 'tool': TOOL_BINLOG,
        'id': artifact, 'artifact': artifact,
        'verification': _verification(finished + datetime.timedelta(seconds=1), 'binlog events read to the end'),
    }


def serialise(data: Dict[str, Any]) -> str:
    """The bytes atomic_write_json writes (write_manifest adds 'format' only when absent: ours has one)."""
    return json.dumps(data, indent=2, sort_keys=True) + '\n'


def generate(directory: Path, count: int, databases: int = 20,
             end: Optional[datetime.datetime] = None) -> Dict[str, int]:
    """``count`` manifests (and their empty artifacts) in ``directory``: per database a daily full
    and LOGS_PER_DAY hourly logs, the newest ending about an hour before ``end`` (default: now)."""
    directory.mkdir(parents=True, exist_ok=True)
    end = (end or datetime.datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    per_day = 1 + LOGS_PER_DAY
    written = {'full': 0, 'log': 0}
    for number in range(databases):
        database = 'app%02d' % number
        share = count // databases + (1 if number < count % databases else 0)
        days = -(-share // per_day)
        start = end - datetime.timedelta(days=days)
        index = 1
        made = 0
        for day in range(days):
            base = start + datetime.timedelta(days=day, seconds=17 * number)
            for slot in range(per_day):
                if made == share:
                    break
                moment = base + datetime.timedelta(hours=slot)
                if slot == 0:
                    data = full_manifest(database, moment, index, 50_000_000 + 1000 * day)
                else:
                    data = log_manifest(database, moment, index, 2_000_000 + 10 * slot)
                    index += 1
                written[data['kind']] += 1
                made += 1
                artifact = directory / data['artifact']
                with open(artifact, 'wb') as handle:
                    if data['kind'] == 'full':
                        # a full's artifact has its manifest's size (a sparse file: no block written): retention
                        # counts no full whose artifact is missing or of another size (retention.artifact_damage)
                        handle.truncate(data['size'])
                if data['kind'] == 'full':
                    # what backup verification records of a passed artifact (retention.artifact_signature): prune
                    # trusts the newest full without reading it again while the file is unchanged
                    info = os.lstat(artifact)
                    data['verification']['artifact_stat'] = [[info.st_ino, info.st_size, info.st_mtime_ns,
                                                              info.st_ctime_ns]]
                manifest = directory / (data['artifact'] + '.manifest.json')
                fd = os.open(manifest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, 'w') as handle:
                    handle.write(serialise(data))
    return written


# ------------------------------------------------------------------------------------------- operations
def _policy():
    from ansible_collections.opsready.operations.plugins.module_utils.backup.retention import Policy
    return Policy(**POLICY)


def op_backup_info(directory: str) -> Any:
    """backup_info path=DIR (every set of the directory)."""
    # as backup_info
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
    info = describe(directory)
    return {'artifacts': info['artifacts_total'], 'listed': len(info['artifacts']), 'sets': len(info['sets'])}


def op_backup_info_cold(directory: str) -> Any:
    """backup_info on a directory without an index file (the first run, or after an upgrade): parses every
    manifest and writes the index."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import index_path
    try:
        os.unlink(index_path(directory))
    except FileNotFoundError:
        pass
    return op_backup_info(directory)


def op_backup_info_changed(directory: str) -> Any:
    """backup_info right after a backup added a manifest (by rename, as the product writes): the directory no
    longer matches the index's seal, so every manifest is stat'ed, the new one parsed and its row appended to the
    index's journal, and the index sealed again (what the first catalog read after each backup pays)."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup import catalog_index
    # as backup_info
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
    # a real backup's manifest is minutes old by the next read: count this one as settled at once (no sleep)
    catalog_index.SETTLE_NS = 0
    now = datetime.datetime.now(UTC) - datetime.timedelta(days=400)   # far from the real ones: no set changes much
    data = log_manifest('app19', now, 10 ** 6 + int(time.time() * 1000) % 10 ** 6, 1000)
    Path(directory, data['artifact']).touch()
    tmp = Path(directory, '.bench-%d.tmp' % os.getpid())
    tmp.write_text(serialise(data))
    os.utime(tmp, (time.time() - 10, time.time() - 10))
    os.replace(tmp, Path(directory, data['artifact'] + '.manifest.json'))
    info = describe(directory)
    return {'artifacts': info['artifacts_total']}


def op_backup_info_output(directory: str) -> Any:
    """backup_info as the module returns it: describe() and its JSON result (``exit_json`` serialises
    every artifact's manifest: the result grows with the catalog)."""
    # as backup_info
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
    text = json.dumps(describe(directory), default=str)
    return {'result_mb': round(len(text) / 1e6, 1)}


def op_backup_prune_check(directory: str) -> Any:
    """backup_prune path=DIR keep_daily/weekly/monthly, check mode (every set): prune() as the module calls it, its
    lists cut to the default ``max_listed`` (check mode proves the deletions it lists, not every one it counts)."""
    # as backup_prune
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import (
        DEFAULT_MAX_LISTED, prune)
    result = prune(directory, _policy(), check_mode=True, max_listed=DEFAULT_MAX_LISTED)
    return {'delete': result['deleted_count'], 'keep': result['kept_count']}


def op_backup_prune_check_output(directory: str) -> Any:
    """backup_prune check mode as the module returns it: prune() with the lists cut to the default ``max_listed``
    (``list_at_most``; the counts exact) and AnsibleModule's result path (``exit_json``: ``remove_values`` walks and
    copies the whole result, with the module's no_log values (none here), then the JSON the controller reads).
    Uncut, the result named every artifact it would delete and keep, with a reason each, and every deleted id:
    ~46 MB of JSON at 200,000 manifests, more work than prune() itself."""
    from ansible.module_utils.common.parameters import remove_values
    # as backup_prune
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import (
        DEFAULT_MAX_LISTED, prune)
    result = prune(directory, _policy(), check_mode=True, max_listed=DEFAULT_MAX_LISTED)
    text = json.dumps(remove_values(result, set()))
    return {'delete': result['deleted_count'], 'result_mb': round(len(text) / 1e6, 1)}


def op_db_backup_catalog(directory: str) -> Any:
    """db_backup's own catalog work for one hourly log run of one database with a retention policy,
    without the server: min_interval check, leftover scan, the log run's catalog read (which fulls and
    logs exist), and the set's prune (check mode, so that every round sees the same directory)."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
    from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import (
        fresh_backup, prune, set_prefix)
    from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import remove_leftovers
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
    from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import session
    with session():   # what run_backup does: one module run
        return _db_backup_catalog(directory, get_engine(ENGINE, ConnectionParams()), BackupOptions, Catalog,
                                  fresh_backup, prune, set_prefix, remove_leftovers)


def _db_backup_catalog(directory, engine, BackupOptions, Catalog, fresh_backup, prune, set_prefix,
                       remove_leftovers) -> Any:
    opts = BackupOptions(kind='log', dest=directory, database='app00')
    fresh = fresh_backup(engine, opts, 1800)
    leftovers = remove_leftovers(directory, [set_prefix(engine, opts)], check_mode=True)
    catalog = Catalog(directory, engine=ENGINE, database='app00')      # MySQLEngine._logs
    starts = [m.log_start for m in catalog.fulls() if m.log_start is not None]
    have = {m.pos_start for m in catalog.logs() if m.pos_start is not None}
    pruned = prune(directory, _policy(), engine=ENGINE, database='app00', check_mode=True)
    return {'fresh': bool(fresh), 'leftovers': len(leftovers), 'fulls': len(starts), 'logs': len(have),
            'delete': len(pruned['deleted'])}


def op_drill_find_backup(directory: str) -> Any:
    """The dr_drill role's find_backup step: backup_info path=DIR engine=mariadb database=app00."""
    # as backup_info
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
    info = describe(directory, engine=ENGINE, database='app00')
    return {'chain': len(info['chain'] or []), 'recoverable_until': info['recoverable_until']}


def op_floor_stat(directory: str) -> Any:
    """Reference: list the directory and stat every manifest (no parsing)."""
    count = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith('.manifest.json'):
                entry.stat()
                count += 1
    return {'manifests': count}


def op_read_all(directory: str) -> Any:
    """Reference: parse every manifest once (what one Catalog() did before the index file)."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
    return {'manifests': len(Catalog(directory, use_index=False).all_entries)}


OPERATIONS: Dict[str, Callable[[str], Any]] = {
    'backup_info_cold': op_backup_info_cold,
    'backup_info': op_backup_info,
    'backup_info_output': op_backup_info_output,
    'backup_info_changed': op_backup_info_changed,
    'backup_prune_check': op_backup_prune_check,
    'backup_prune_check_output': op_backup_prune_check_output,
    'db_backup_catalog': op_db_backup_catalog,
    'drill_find_backup': op_drill_find_backup,
    'floor_stat': op_floor_stat,
    'read_all': op_read_all,
}
PRODUCT = ('backup_info', 'backup_info_output', 'backup_prune_check', 'backup_prune_check_output',
           'db_backup_catalog', 'drill_find_backup')
# Not held to the 1 s target: the one-off run that builds the index (printed so its cost is known).
ONE_OFF = ('backup_info_cold', 'backup_info_changed')


# ------------------------------------------------------------------------------------------- measuring
def measure_op(operation: str, directory: Path, runs: int, max_rounds: int, timeout: float,
               log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run ``operation`` in a child until its wall spread is under 10 % (or max_rounds, or a timeout)."""
    walls: List[float] = []
    rss: List[float] = []
    load = [load_average()]
    timed_out = False
    while len(walls) < max(runs, 1) or (len(walls) < max_rounds and (relative_spread(walls) or 1.0) >= 0.10):
        try:
            wall, tree, dummy = measure([PYTHON, str(BENCH / 'catalog_scale.py'), 'run', operation, str(directory)],
                                        timeout=timeout)
        except TimedOut as exc:
            walls.append(exc.wall)
            rss.append(exc.rss / 1e6)
            timed_out = True
            break
        walls.append(wall)
        rss.append(tree / 1e6)
    load.append(load_average())
    result = {'operation': operation, 'wall_s': statistics.median(walls), 'walls': [round(w, 4) for w in walls],
              'peak_rss_mb': max(rss), 'spread': relative_spread(walls), 'rounds': len(walls), 'load': load,
              'timed_out': timed_out}
    log('    %-20s %9s s  spread %5s  %6.1f MB RSS  %d rounds  load %.1f-%.1f' % (
        operation, ('> %.0f' % result['wall_s']) if timed_out else '%.3f' % result['wall_s'],
        '-' if result['spread'] is None else '%.0f%%' % (result['spread'] * 100), result['peak_rss_mb'],
        result['rounds'], min(load), max(load)))
    return result


def run_sizes(sizes: List[int], work: Path, databases: int = 20, runs: int = 3, max_rounds: int = 8,
              timeout: float = 120.0, operations: Optional[List[str]] = None,
              log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Measure every operation at every size (each size generated fresh); adds growth to each result."""
    results: List[Dict[str, Any]] = []
    previous: Dict[str, Dict[str, Any]] = {}
    previous_n = None
    for size in sizes:
        directory = work / ('catalog-%d' % size)
        started = time.monotonic()
        made = generate(directory, size, databases)
        time.sleep(2.5)  # real manifests are hours old: none is "just written" (catalog_index.SETTLE_NS)
        log('  N=%d manifests (%d fulls, %d logs, %d databases) generated in %.0f s, load %.2f' % (
            size, made['full'], made['log'], databases, time.monotonic() - started, load_average()))
        for operation in operations or list(OPERATIONS):
            if operation not in ONE_OFF and not os.path.exists(directory / INDEX_FILE):
                # every other row is the steady state: the index is built first, untimed
                measure([PYTHON, str(BENCH / 'catalog_scale.py'), 'run', 'backup_info', str(directory)], timeout=None)
            result = measure_op(operation, directory, runs, max_rounds, timeout, log)
            result['n'] = size
            before = previous.get(operation)
            if before and previous_n and not before['timed_out']:
                result['growth'] = result['wall_s'] / max(before['wall_s'], 1e-9)
                result['rss_growth'] = result['peak_rss_mb'] / max(before['peak_rss_mb'], 1e-9)
                result['n_growth'] = size / previous_n
            result['met'] = (operation not in PRODUCT or (
                not result['timed_out'] and result['wall_s'] < TARGET_WALL_S and result['peak_rss_mb'] < TARGET_RSS_MB))
            previous[operation] = result
            results.append(result)
        previous_n = size
        shutil.rmtree(directory, ignore_errors=True)
    return results


def _row_text(r: Dict[str, Any]) -> tuple:
    wall = ('> %.0f' % r['wall_s']) if r['timed_out'] else '%.3f' % r['wall_s']
    growth = ('%.1fx / %.1fx RSS / %.0fx N' % (r['growth'], r.get('rss_growth', 0), r['n_growth'])
              if r.get('growth') else '-')
    spread = '-' if r['spread'] is None else '%.0f%%' % (r['spread'] * 100)
    met = ('(one-off)' if r['operation'] in ONE_OFF else '(reference)' if r['operation'] not in PRODUCT
           else ('yes' if r['met'] else 'NO'))
    return (r['operation'], '{:,}'.format(r['n']), wall, '%.1f' % r['peak_rss_mb'], growth, spread, r['rounds'],
            '%.1f-%.1f' % (min(r['load']), max(r['load'])), met)


def format_table(results: List[Dict[str, Any]]) -> str:
    head = '%-20s | %8s | %9s | %8s | %-26s | %6s | %6s | %9s | %s' % (
        'operation', 'N', 'wall s', 'RSS MB', 'growth', 'spread', 'rounds', 'load', 'met (<1 s, <200 MB)')
    lines = [head, '-' * len(head)]
    for r in results:
        lines.append('%-20s | %8s | %9s | %8s | %-26s | %6s | %6d | %9s | %s' % _row_text(r))
    return '\n'.join(lines)


def markdown_table(results: List[Dict[str, Any]]) -> str:
    lines = ['| operation | manifests | wall s | peak RSS MB | growth (wall / RSS / N) | spread | rounds | load | '
             'met (< 1 s, < 200 MB) |', '|---|---:|---:|---:|---|---:|---:|---:|---|']
    for r in results:
        lines.append('| %s | %s | %s | %s | %s | %s | %d | %s | %s |' % _row_text(r))
    return '\n'.join(lines)


def profile(operation: str, sizes: List[int], databases: int, work: Path, top: int = 30) -> None:
    import cProfile
    import pstats
    directory = work / 'profile'
    generate(directory, sizes[-1], databases)
    time.sleep(2.5)
    profiler = cProfile.Profile()
    profiler.enable()
    OPERATIONS[operation](str(directory))
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats('cumulative').print_stats(top)
    stats.sort_stats('tottime').print_stats(top)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == 'run':
        print(json.dumps(OPERATIONS[sys.argv[2]](sys.argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--sizes', default='20000,100000,200000')
    parser.add_argument('--databases', type=int, default=20)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--max-rounds', type=int, default=8)
    parser.add_argument('--timeout', type=float, default=120.0, help='seconds per run of one operation')
    parser.add_argument('--only', default='', help='comma-separated operations (default: all)')
    parser.add_argument('--tmp-root', default='/var/tmp')
    parser.add_argument('--profile', choices=sorted(OPERATIONS), help='cProfile one operation at the last size')
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args()
    sizes = [int(s.replace('_', '')) for s in args.sizes.split(',') if s.strip()]
    work = Path(tempfile.mkdtemp(prefix='opsready-bench-catalog-', dir=args.tmp_root))
    try:
        if args.profile:
            profile(args.profile, sizes, args.databases, work)
            return 0
        operations = [o for o in args.only.split(',') if o] or None
        results = run_sizes(sizes, work, args.databases, args.runs, args.max_rounds, args.timeout, operations)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print('\n' + format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
