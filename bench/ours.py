"""The "ours" side of the benchmarks: what a module executes (its module_utils), without Ansible's
start-up, as one child process so bench/common.py measures it like the raw tool.

    .venv/bin/python bench/ours.py OPERATION '<json options>'

The password (when any) comes from the environment variable OPSREADY_BENCH_PASSWORD, never argv.
Operations: db_backup, file_backup, db_restore, drill, log_rotate, rekey. Prints a JSON summary on stdout.

OPSREADY_BENCH_TRACE=1 prints on stderr, in seconds since OPSREADY_BENCH_T0 (the parent's ``time.time()``
before it started this process; else since this process's first line): imports done, every child program's
start and exit, every query of a kept psql session, the operation's end (bench/pg_fixed.py --trace).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

T0 = float(os.environ.get('OPSREADY_BENCH_T0') or time.time())
TRACE = os.environ.get('OPSREADY_BENCH_TRACE') == '1'


def mark(text: str) -> None:
    if TRACE:
        sys.stderr.write('%8.3f  %s\n' % (time.time() - T0, text))


mark('python started')
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'build'))


def conn(opts: dict) -> Any:
    # imported here: file_backup (and log_rotate, rekey) never connect, and engines/connection.py with the tool runner
    # it imports (subprocess, dataclasses: ~18 ms compiled from source) is not what those modules import (issue 22)
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    return ConnectionParams(host=opts.get('host'), port=opts.get('port'), user=opts.get('user'),
                            password=os.environ.get('OPSREADY_BENCH_PASSWORD'))


def db_backup(opts: dict) -> dict:
    from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
    from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
    from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
    mark('imports done')
    options = BackupOptions(kind=opts.get('kind', 'full'), dest=opts['dest'], database=opts.get('database'),
                            compression=opts.get('compression', 'zstd'), threads=opts.get('threads', 2),
                            recipients=opts.get('recipients') or [], format=opts.get('format'))
    result = run_backup(get_engine(opts['engine'], conn(opts)), options, verify=False)
    return {'size': result['manifest']['size'], 'path': result['manifest']['path']}


def file_backup(opts: dict) -> dict:
    from ansible_collections.opsready.operations.plugins.module_utils.files import archive
    archive.check_sources(opts['paths'])
    fingerprint, count, secret = archive.tree_fingerprint(opts['paths'])
    archive.prepare_dest(opts['dest'], secret)
    manifest = archive.create_archive(opts['paths'], opts['dest'], opts.get('name', 'files'),
                                      compression=opts.get('compression', 'zstd'), level=opts.get('level'),
                                      threads=opts.get('threads', 0), fingerprint=fingerprint, file_count=count,
                                      recipients=opts.get('recipients'))
    return {'size': manifest['size'], 'files': count}


def db_restore(opts: dict) -> dict:
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
    from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore
    mark('imports done')
    request = RestoreRequest(engine=opts['engine'], src=opts['src'], database=opts['database'],
                             source_database=opts.get('source_database'), jobs=opts.get('jobs', 2),
                             tmpdir=opts.get('tmpdir'), replace=opts.get('replace', False))
    result = run_restore(request, conn(opts))
    return {'phases': result.get('phases')}


def drill(opts: dict) -> dict:
    """The dr_drill role's work for one database up to the RTO stop: restore the newest backup to a scratch
    database (the restore's checksums are the one verification), integrity check (pg_amcheck --heapallindexed),
    one smoke query. Clean-up (drop scratch) is outside the RTO, as in the role. ``verify_pass: true`` adds the
    backup_verify pass (checksum + the engine's own check) the role ran before issue 18."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
    from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import verify_one
    from ansible_collections.opsready.operations.plugins.module_utils.drill import steps
    from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import (
        get_drill_client, get_engine)
    from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
    from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore
    started = time.monotonic()
    params = conn(opts)
    entry = Catalog(opts['src'], engine=opts['engine'], database=opts['source_database']).latest_full()
    if entry is None:
        raise SystemExit('no full backup of %s in %s' % (opts['source_database'], opts['src']))
    if opts.get('verify_pass'):
        outcome = verify_one(entry, engine=get_engine(opts['engine'], params), conn=params, record=False)
        if not outcome['ok']:
            raise SystemExit('verification failed: %s' % outcome['error'])
    run_restore(RestoreRequest(engine=opts['engine'], src=opts['src'], database=opts['scratch'],
                               source_database=opts['source_database'], jobs=opts.get('jobs', 2),
                               tmpdir=opts.get('tmpdir'), replace=True), params)
    client = get_drill_client(opts['engine'], params)
    check = steps.integrity(client, opts['scratch'])
    smoke = steps.smoke(client, opts['scratch'], [{'sql': opts['smoke'], 'expect': {'value_at_least': 1}}])
    if not (check['ok'] and smoke['ok']):
        raise SystemExit('drill failed: %s %s' % (check, smoke))
    return {'rto_seconds': time.monotonic() - started}


def log_rotate(opts: dict) -> dict:
    from ansible_collections.opsready.operations.plugins.module_utils.logrotate.plan import Policy
    from ansible_collections.opsready.operations.plugins.module_utils.logrotate.rotate import Rotation
    policy = Policy(force=True, rotate=opts.get('rotate', 5), compression=opts.get('compression', 'zstd'))
    result = Rotation([opts['glob']], policy, opts['state']).run()
    if len(result['compressed']) != len(result['rotated']):
        raise SystemExit('not every rotated file was compressed: %s' % result['warnings'][:3])
    return {'rotated': len(result['rotated'])}


def rekey(opts: dict) -> dict:
    """backup_rekey's work: the identity comes from a key file named in the options, never the key itself."""
    from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey as rotation
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    identities = encryption.load_identities(identity_file=opts['identity_file'])
    done = rotation.rekey(opts['src'], opts['recipients'], identities)
    if not done['rekeyed'] or done['failed']:
        raise SystemExit('rekey did not re-encrypt: %s' % done)
    return {'rekeyed': len(done['rekeyed']), 'bytes': done['bytes']}


OPERATIONS = {'db_backup': db_backup, 'file_backup': file_backup, 'db_restore': db_restore, 'drill': drill,
              'log_rotate': log_rotate, 'rekey': rekey}


def trace_children() -> None:
    """Child programs' start and exit, and kept psql sessions' queries, as ``mark`` lines (trace mode only)."""
    import subprocess

    def name(args) -> str:
        argv = [args] if isinstance(args, str) else list(args)
        return ' '.join(os.path.basename(str(a)) if n == 0 else str(a) for n, a in enumerate(argv[:4]))[:90]

    init, handle = subprocess.Popen.__init__, subprocess.Popen._handle_exitstatus

    def traced_init(self, args, *a, **kw):
        mark('start %s' % name(args))
        self._bench_name = name(args)
        init(self, args, *a, **kw)

    def traced_exit(self, *a, **kw):
        result = handle(self, *a, **kw)
        mark('exit  %s (rc %s)' % (getattr(self, '_bench_name', '?'), self.returncode))
        return result

    subprocess.Popen.__init__ = traced_init
    subprocess.Popen._handle_exitstatus = traced_exit
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import client
    query = client.PsqlSession.query

    def traced_query(self, sql, *a, **kw):
        mark('session query: %s' % ' '.join(sql.split())[:70])
        try:
            return query(self, sql, *a, **kw)
        finally:
            mark('session answer')

    client.PsqlSession.query = traced_query


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in OPERATIONS:
        sys.exit('usage: ours.py {%s} JSON' % ','.join(OPERATIONS))
    if TRACE:
        trace_children()
    mark('operation starts')
    print(json.dumps(OPERATIONS[sys.argv[1]](json.loads(sys.argv[2]))))
    mark('operation done')


if __name__ == '__main__':
    main()
