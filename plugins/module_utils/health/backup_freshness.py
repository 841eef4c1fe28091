# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup freshness: what the catalog says about each database's newest backups, as numbers.

Used by the ``backup`` health check (age against the RPO objective) and by ``backup_metrics``
(Prometheus textfile for node_exporter's textfile collector, written atomically).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import NEWEST_ORIGIN, Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_text
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio

PREFIX = 'opsready_backup'


def _ts(value: Optional[datetime.datetime]) -> Optional[float]:
    return value.timestamp() if value is not None else None


def _duration(entry: Manifest) -> float:
    return max(0.0, (entry.finished - entry.started).total_seconds())


OriginKey = Tuple[str, str, Optional[str], List[str], str, List[str]]


def _origin_keys(directory: str, keys: List[Tuple[str, str]], succession: bool = False) -> List[OriginKey]:
    """(engine, database, origin, the set's origins, their relation, predecessors) per set and per source server: a
    set that several servers write into a shared directory has one record (and RPO) per server, never one for
    whichever wrote last. ``succession``: a set whose origins succeeded each other (declared: one server whose
    identity changed) has one record, the newest origin's; overlapping origins keep one each."""
    result: List[OriginKey] = []
    for key_engine, key_db in keys:
        if succession:
            newest = Catalog(directory, engine=key_engine, database=key_db or None, origin=NEWEST_ORIGIN)
            spans = newest.succession.get((key_engine, key_db or None))
            if spans:
                names = [span.origin for span in spans]
                result.append((key_engine, key_db, names[-1], sorted(names), 'successive', names[:-1]))
                continue
        origins = Catalog(directory, engine=key_engine, database=key_db or None).origins
        if len(origins) > 1:
            result.extend((key_engine, key_db, origin, origins, 'overlapping' if succession else 'mixed', [])
                          for origin in origins)
        else:
            result.append((key_engine, key_db, None, origins, 'single', []))
    return result


def assess(directory: str, engine: Optional[str] = None, database: Optional[str] = None,
           now: Optional[datetime.datetime] = None, verified_only: bool = True,
           rpo_objective: Optional[float] = None, origin_succession: bool = False) -> List[Dict[str, Any]]:
    """One record per (engine, database) in the backup directory (per origin where several servers write a set;
    ``origin_succession``: one, the newest origin's, where they succeeded each other - ``_origin_keys``).

    ``rpo_objective`` (seconds): each record then says whether the continuous RPO (what a restore now would
    lose: now minus the recoverable point) and the age of the newest archived WAL segment / binlog exceed it.
    """
    if not os.path.isdir(directory):
        raise OpsReadyError('Backup directory %s does not exist: no backup was ever taken here, or the path is '
                            'wrong.' % directory, path=directory)
    now = now or utcnow()
    everything = Catalog(directory, engine=engine, database=database)
    keys = sorted({(m.engine, m.database or '') for m in everything.entries})
    records = []
    for key in _origin_keys(directory, keys, origin_succession):
        key_engine, key_db, origin, origins, relation, predecessors = key
        catalog = Catalog(directory, engine=key_engine, database=key_db or None, origin=origin)
        fulls = [f for f in catalog.fulls() if catalog.usable(f)]
        verified = [f for f in fulls if f.verified is True]
        candidates = verified if verified_only else fulls
        newest_full = candidates[-1] if candidates else None
        logs = [m for m in catalog.logs() if catalog.usable(m)]
        newest = catalog.entries[-1]
        # The RPO anchor: the latest point a restore reaches (full + contiguous logs; a gap in the log
        # chain stops it there). Artifacts whose verification failed never count.
        until = catalog.recoverable_until() if candidates else None
        rpo: Optional[float] = max(0.0, (now - until).total_seconds()) if until else None
        log_age: Optional[float] = (now - logs[-1].consistent_at).total_seconds() if logs else None
        records.append({
            'engine': key_engine,
            'database': key_db,
            'origin': origin,
            'origins': origins,
            'origins_relation': relation,
            'predecessors': predecessors,
            'artifacts': len(catalog.entries),
            'fulls': len(fulls),
            'logs': len(logs),
            'newest_full': newest_full.id if newest_full else None,
            'newest_full_at': isoformat(newest_full.consistent_at) if newest_full else None,
            'full_age_seconds': (now - newest_full.consistent_at).total_seconds() if newest_full else None,
            'newest_log_at': isoformat(logs[-1].consistent_at) if logs else None,
            'newest_log_ts': _ts(logs[-1].consistent_at) if logs else None,
            'log_age_seconds': log_age,
            'recoverable_until': isoformat(until) if until else None,
            'recoverable_until_ts': _ts(until),
            'rpo_seconds': rpo,
            'last_success_timestamp': _ts(newest.finished),
            'last_full_success_timestamp': _ts(fulls[-1].finished) if fulls else None,
            'last_duration_seconds': _duration(fulls[-1]) if fulls else None,
            'last_size_bytes': fulls[-1].data.get('size') if fulls else None,
            'last_verified': (None if not fulls or fulls[-1].verified is None else bool(fulls[-1].verified)),
            'last_encrypted': bool(fulls[-1].data.get('encryption')) if fulls else False,
            'size_bytes_total': sum(int(m.data.get('size') or 0) for m in catalog.entries),
        })
        if rpo_objective is not None:
            record = records[-1]
            record['rpo_objective_seconds'] = float(rpo_objective)
            # No recoverable point at all is a breach too: nothing could be restored.
            record['rpo_breached'] = rpo is None or rpo > rpo_objective
            record['log_stale'] = log_age is not None and log_age > rpo_objective
    return records


def _escape(value: str) -> str:
    return value.replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


METRICS = (
    ('last_success_timestamp_seconds', 'gauge', 'Finish time of the newest backup artifact (any kind).',
     'last_success_timestamp'),
    ('last_full_success_timestamp_seconds', 'gauge', 'Finish time of the newest full backup.',
     'last_full_success_timestamp'),
    ('last_full_duration_seconds', 'gauge', 'Wall time of the newest full backup.', 'last_duration_seconds'),
    ('last_full_size_bytes', 'gauge', 'Stored size of the newest full backup.', 'last_size_bytes'),
    ('last_full_verified', 'gauge', 'Verification of the newest full: 1 ok, 0 failed, -1 never verified.',
     'last_verified'),
    ('last_full_encrypted', 'gauge', '1 when the newest full backup is encrypted.', 'last_encrypted'),
    ('artifacts', 'gauge', 'Artifacts with a manifest in the catalog.', 'artifacts'),
    # a gauge (it shrinks when retention prunes), so no _total suffix: that is for counters
    ('catalog_size_bytes', 'gauge', 'Stored bytes of every artifact in the catalog.', 'size_bytes_total'),
    ('recoverable_until_timestamp_seconds', 'gauge', 'Latest point a restore can reach (the RPO anchor).',
     'recoverable_until_ts'),
    # Continuous archiving (PostgreSQL WAL, MariaDB binlogs): a stopped archiver freezes this while the
    # database keeps changing. time() - this is the age of the newest archived segment.
    ('last_log_timestamp_seconds', 'gauge', 'Consistent point of the newest archived WAL segment or binlog.',
     'newest_log_ts'),
    ('rpo_objective_seconds', 'gauge', 'The RPO objective backup_metrics judged against (rpo_seconds).',
     'rpo_objective_seconds'),
    ('rpo_breached', 'gauge', '1 when the continuous RPO (now - recoverable point) exceeded the objective '
     'at the last run.', 'rpo_breached'),
)


def prometheus_text(records: List[Dict[str, Any]], directory: str) -> str:
    """The node_exporter textfile: HELP/TYPE once per metric, one sample per database."""
    lines = []
    for name, kind, help_text, key in METRICS:
        samples = []
        for record in records:
            value = record.get(key)
            if key == 'last_verified':
                value = -1 if value is None else int(value)
            elif isinstance(value, bool):
                value = int(value)
            if value is None:
                continue
            labels = 'engine="%s",database="%s",directory="%s"' % (
                _escape(record['engine']), _escape(record['database']), _escape(directory))
            if record.get('origin'):   # a set several servers write: one series per server
                labels += ',origin="%s"' % _escape(record['origin'])
            samples.append('%s_%s{%s} %s' % (PREFIX, name, labels, repr(float(value))))
        if samples:
            lines.append('# HELP %s_%s %s' % (PREFIX, name, help_text))
            lines.append('# TYPE %s_%s %s' % (PREFIX, name, kind))
            lines.extend(samples)
    return '\n'.join(lines) + '\n'


def write_textfile(path: str, text: str, check_mode: bool = False) -> bool:
    """Atomically replace the textfile (node_exporter must never read half a file); True if it changed."""
    # An account owning a directory above could link the textfile's directory to a directory of root's: refused
    # before the file there is read or replaced (check mode too).
    safeio.check_parents(os.path.dirname(os.path.abspath(path)), 'write the metrics textfile into',
                         'The directory of textfile')
    # The file now at ``path``: a regular file of sane size, or nothing (a FIFO there would block the
    # read forever, a device never ends): anything else is refused before a byte is written.
    if safeio.read_regular_or_none(path, 16 * 1024 * 1024, what='Textfile') == text.encode('utf-8'):
        return False
    # the refusal a real run meets, met in check mode too (check mode said "changed" and the run then failed)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OpsReadyError('Textfile directory %s does not exist: create it or point node_exporter\'s '
                            '--collector.textfile.directory at an existing one.' % directory, path=directory)
    if not check_mode:
        atomic_write_text(path, text, mode=0o644)
    return True
