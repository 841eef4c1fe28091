# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication status, engine-neutral: thresholds, reasons, the verdict, and positions compared across nodes.

One node's status is a dict built by ``postgresql.collect`` or ``mysql.collect`` (through ``gather`` here):

* ``engine``, ``role`` (``primary`` or ``standby``; a MariaDB/MySQL replica is a ``standby``),
  ``server_version``, ``read_only``;
* ``position``: what the node holds, comparable across the nodes of one cluster with ``compare``,
  ``most_advanced`` and ``behind`` below. ``kind`` is ``lsn`` (PostgreSQL: ``timeline``, ``received`` and
  ``replayed`` as byte offsets, ``received_lsn``/``replayed_lsn`` as text), ``mariadb_gtid`` or
  ``mysql_gtid`` (``received``/``replayed`` as GTID lists/sets). On a primary received = replayed = its
  current WAL position / executed GTIDs. ``received`` is what a promotion would bring up (a standby replays
  what it received before it opens), so it is what failover compares;
* ``lag_bytes``, ``lag_seconds``: how far this node trails its upstream (standby), ``None`` when unknown
  (a primary; a stopped SQL thread);
* ``replicas``: what a primary (or cascading standby) sees of its downstream nodes, each with ``name``,
  ``state``, ``lag_bytes``, ``lag_seconds``;
* ``upstream``: what a standby sees of its upstream (PostgreSQL: the WAL receiver; MariaDB/MySQL: one entry
  per replication connection in ``upstreams``);
* ``slots`` (PostgreSQL): every replication slot with ``retained_bytes``;
* ``verdict`` (``ok``/``warning``/``critical``) and ``reasons`` (``severity``, ``condition``, ``message``,
  ``value``, ``threshold``, ``subject``), worst first, from ``assess``.

API (for modules, the health check and failover code):

* ``node_status(engine_name, conn, limits=None, runner=None, database=None)`` / ``gather(engine, limits)``:
  one node's assessed status (raises ``OpsReadyError`` when the node cannot be reached or read);
* ``Limits(max_lag_bytes, max_lag_seconds, max_slot_retained_bytes, expected_role, min_replicas,
  ignore_slots, inactive_slot_severity)`` / ``Limits.from_params(params)``;
* ``compare(a, b, which)``, ``behind(ahead, other, which)``, ``most_advanced({name: status}, which)``:
  positions across nodes (``which`` = ``received`` or ``replayed``); ``missing(kind, have, want)``;
* GTID helpers: ``parse_mariadb_gtids``, ``merge_mariadb_gtids``, ``parse_mysql_gtid_set``,
  ``union_mysql_gtid_sets``; LSN text to bytes: ``postgresql.lsn_int``.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

OK = 'ok'
WARNING = 'warning'
CRITICAL = 'critical'
RANK = {OK: 0, WARNING: 1, CRITICAL: 2}
ROLES = ('primary', 'standby')
EXPECTED_ROLES = ('any', 'primary', 'standby')

# Conditions of the reasons (and of health_check findings; auto_recovery and incidents key on them).
STOPPED = 'replication_stopped'      # no WAL receiver / IO or SQL thread not running
LAG = 'replication_lag'              # bytes or seconds behind past a threshold
SLOT = 'replication_slot'            # a slot retains too much WAL, lost it, or has no consumer
ROLE = 'replication_role'            # the node is not in the expected role
MISSING = 'replica_missing'          # fewer connected replicas than min_replicas
CONFIG = 'replication_config'        # works, but not as failover needs (no GTID, writable replica)
PAUSED = 'replication_paused'        # replay paused on purpose or by mistake

MIB = 1024 * 1024
GIB = 1024 * MIB
# (warning, critical). Lag seconds: the RPO objective is 5 minutes.
DEFAULT_LEVELS: Dict[str, Tuple[Optional[float], Optional[float]]] = {
    'max_lag_bytes': (16.0 * MIB, 256.0 * MIB),
    'max_lag_seconds': (30.0, 300.0),
    'max_slot_retained_bytes': (1.0 * GIB, 4.0 * GIB),
}


class Level:
    """A warning/critical pair for a value where more is worse; ``None`` switches a level off."""

    def __init__(self, name: str, warning: Optional[float], critical: Optional[float]) -> None:
        self.name = name
        self.warning = warning
        self.critical = critical

    def evaluate(self, value: Optional[float]) -> str:
        if value is None:
            return OK
        if self.critical is not None and value > self.critical:
            return CRITICAL
        if self.warning is not None and value > self.warning:
            return WARNING
        return OK

    def level(self, severity: str) -> Optional[float]:
        return self.critical if severity == CRITICAL else self.warning

    def as_dict(self) -> Dict[str, Optional[float]]:
        return {'warning': self.warning, 'critical': self.critical}


def _number(name: str, which: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool):
        raise OpsReadyError('%s.%s must be a number or null, not %r.' % (name, which, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OpsReadyError('%s.%s must be a number or null, not %r.' % (name, which, value))
    if number < 0:
        raise OpsReadyError('%s.%s must not be negative (got %r).' % (name, which, value))
    return number


def parse_level(name: str, value: Any) -> Level:
    """``{warning: W, critical: C}`` (either null = off), or a bare number meaning the critical level (the
    warning level then stays at its default, lowered to the critical level when above it); ``None`` = defaults."""
    warning, critical = DEFAULT_LEVELS[name]
    if value is None:
        return Level(name, warning, critical)
    if isinstance(value, dict):
        unknown = sorted(set(value) - {'warning', 'critical'})
        if unknown:
            raise OpsReadyError('%s accepts only warning and critical, not %s.' % (name, ', '.join(unknown)))
        if 'warning' in value:
            warning = _number(name, 'warning', value['warning'])
        if 'critical' in value:
            critical = _number(name, 'critical', value['critical'])
        if warning is not None and critical is not None and warning > critical:
            raise OpsReadyError('%s: warning (%s) must not be above critical (%s).' % (name, warning, critical))
    else:
        critical = _number(name, 'critical', value)
        if warning is not None and critical is not None and warning > critical:
            warning = critical
    return Level(name, warning, critical)


class Limits:
    """What a healthy node looks like: thresholds plus the expected role and replica count."""

    def __init__(self, max_lag_bytes: Any = None, max_lag_seconds: Any = None, max_slot_retained_bytes: Any = None,
                 expected_role: str = 'any', min_replicas: int = 0, ignore_slots: Sequence[str] = (),
                 inactive_slot_severity: str = CRITICAL) -> None:
        self.lag_bytes = parse_level('max_lag_bytes', max_lag_bytes)
        self.lag_seconds = parse_level('max_lag_seconds', max_lag_seconds)
        self.slot_retained = parse_level('max_slot_retained_bytes', max_slot_retained_bytes)
        if expected_role not in EXPECTED_ROLES:
            raise OpsReadyError('expected_role must be one of %s, not %r.' % (', '.join(EXPECTED_ROLES), expected_role))
        if min_replicas is None or min_replicas < 0:
            raise OpsReadyError('min_replicas must be 0 or more.')
        if inactive_slot_severity not in (OK, WARNING, CRITICAL):
            raise OpsReadyError('inactive_slot_severity must be ok, warning or critical.')
        self.expected_role = expected_role
        self.min_replicas = int(min_replicas)
        self.ignore_slots = list(ignore_slots or [])
        self.inactive_slot_severity = inactive_slot_severity

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> 'Limits':
        """From module (or health check spec) options of the same names; missing ones take the defaults."""
        return cls(max_lag_bytes=params.get('max_lag_bytes'), max_lag_seconds=params.get('max_lag_seconds'),
                   max_slot_retained_bytes=params.get('max_slot_retained_bytes'),
                   expected_role=params.get('expected_role') or 'any',
                   min_replicas=params.get('min_replicas') or 0, ignore_slots=params.get('ignore_slots') or (),
                   inactive_slot_severity=params.get('inactive_slot_severity') or CRITICAL)

    def as_dict(self) -> Dict[str, Any]:
        return {'max_lag_bytes': self.lag_bytes.as_dict(), 'max_lag_seconds': self.lag_seconds.as_dict(),
                'max_slot_retained_bytes': self.slot_retained.as_dict(), 'expected_role': self.expected_role,
                'min_replicas': self.min_replicas, 'ignore_slots': list(self.ignore_slots),
                'inactive_slot_severity': self.inactive_slot_severity}


# -- reasons and the verdict ---------------------------------------------------------------------------------
def reason(severity: str, condition: str, message: str, value: Any = None, threshold: Any = None,
           subject: Optional[str] = None) -> Dict[str, Any]:
    return {'severity': severity, 'condition': condition, 'message': message, 'value': value,
            'threshold': threshold, 'subject': subject}


def _fmt_bytes(value: float) -> str:
    for unit, size in (('GiB', GIB), ('MiB', MIB), ('KiB', 1024)):
        if abs(value) >= size:
            return '%.1f %s' % (value / size, unit)
    return '%d bytes' % value


def fmt(name: str, value: Optional[float]) -> str:
    if value is None:
        return 'unknown'
    if name.endswith('seconds'):
        return '%.1f s' % value
    return _fmt_bytes(value)


def measure(level: Level, value: Optional[float], what: str, condition: str = LAG,
            subject: Optional[str] = None) -> List[Dict[str, Any]]:
    """A reason (as a one-item list) when ``value`` crosses ``level``, else nothing."""
    severity = level.evaluate(value)
    if severity == OK:
        return []
    limit = level.level(severity)
    text = '%s is %s (%s above %s).' % (what, fmt(level.name, value), severity, fmt(level.name, limit))
    return [reason(severity, condition, text, value=value, threshold=limit, subject=subject)]


def role_reasons(role: str, limits: Limits, where: str) -> List[Dict[str, Any]]:
    if limits.expected_role == 'any' or limits.expected_role == role:
        return []
    if role == 'primary':
        text = ('%s is a primary, expected a standby: it was promoted (a failover?) or never configured as a '
                'replica. Two writable primaries split the data: fence one before anything else.' % where)
    else:
        text = ('%s is a standby, expected the primary: writes are refused here. Point clients at the current '
                'primary, or promote this node if the primary is gone.' % where)
    return [reason(CRITICAL, ROLE, text, value=role, threshold=limits.expected_role)]


def finish(status: Dict[str, Any], reasons: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Attach ``reasons`` (worst first) and the ``verdict`` to ``status``; returns it."""
    ordered = sorted(reasons, key=lambda r: -RANK[r['severity']])
    status['reasons'] = ordered
    status['verdict'] = worst([r['severity'] for r in ordered])
    return status


def worst(severities: Sequence[str]) -> str:
    result = OK
    for severity in severities:
        if RANK.get(severity, 0) > RANK[result]:
            result = severity
    return result


# -- gathering -----------------------------------------------------------------------------------------------
def gather(engine: Any, limits: Optional[Limits] = None, database: Optional[str] = None) -> Dict[str, Any]:
    """The status of the node ``engine`` (from ``engines.registry.get_engine``) is connected to, assessed
    against ``limits`` (defaults when ``None``): ``status['verdict']`` and ``status['reasons']`` included.
    Connection failures raise ``OpsReadyError`` with the engine's message (what to check). ``database``:
    the PostgreSQL database to connect to (default ``postgres``)."""
    limits = limits or Limits()
    from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import replication_status
    family = getattr(engine, 'name', '')
    engine_status = replication_status(family)
    status = engine_status.collect(engine, database)
    return finish(status, engine_status.assess(status, limits))


def node_status(engine_name: str, conn: Any, limits: Optional[Limits] = None, runner: Any = None,
                database: Optional[str] = None) -> Dict[str, Any]:
    """``gather`` for an engine name and ``engines.connection.ConnectionParams``: the engine object comes from
    the registry (``get_engine``). For failover code that has a node's connection options and wants its role,
    position and lag."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import (
        REPLICATION_ENGINES, check_engine, get_engine)
    check_engine(engine_name, REPLICATION_ENGINES, area='replication status')
    return gather(get_engine(engine_name, conn, runner), limits, database=database)


# -- positions -----------------------------------------------------------------------------------------------
_MARIADB_GTID = re.compile(r'^(\d+)-(\d+)-(\d+)$')
_UUID = re.compile(r'^[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}'
                   r'(?::[A-Za-z0-9_]+)?$')


def parse_mariadb_gtids(text: Optional[str]) -> Dict[int, Tuple[int, int]]:
    """``'0-1-100,1-2-7'`` -> ``{domain: (server_id, seq_no)}`` (one GTID per domain, as MariaDB lists them)."""
    result: Dict[int, Tuple[int, int]] = {}
    for part in (text or '').replace('\n', ',').split(','):
        part = part.strip()
        if not part:
            continue
        m = _MARIADB_GTID.match(part)
        if not m:
            raise OpsReadyError('%r is not a MariaDB GTID (domain-server-sequence).' % part)
        domain, server, seq = (int(g) for g in m.groups())
        if domain not in result or seq > result[domain][1]:
            result[domain] = (server, seq)
    return result


def format_mariadb_gtids(gtids: Dict[int, Tuple[int, int]]) -> str:
    return ','.join('%d-%d-%d' % (d, s, n) for d, (s, n) in sorted(gtids.items()))


def merge_mariadb_gtids(*texts: Optional[str]) -> str:
    """The furthest GTID per domain of several lists (e.g. executed and received)."""
    merged: Dict[int, Tuple[int, int]] = {}
    for text in texts:
        for domain, (server, seq) in parse_mariadb_gtids(text).items():
            if domain not in merged or seq > merged[domain][1]:
                merged[domain] = (server, seq)
    return format_mariadb_gtids(merged)


Intervals = List[Tuple[int, int]]


def parse_mysql_gtid_set(text: Optional[str]) -> Dict[str, Intervals]:
    """``'uuid:1-5:7,uuid2:1-3'`` -> ``{uuid: [(1, 5), (7, 7)]}`` (lower-case uuid, merged intervals)."""
    result: Dict[str, Intervals] = {}
    for part in (text or '').replace('\n', '').split(','):
        part = part.strip()
        if not part:
            continue
        pieces = part.split(':')
        # MySQL 8.3+ tagged GTIDs: uuid:tag:1-5; the tag belongs to the source name.
        head = [pieces.pop(0)]
        while pieces and not pieces[0][:1].isdigit():
            head.append(pieces.pop(0))
        source = ':'.join(head).lower()
        if not _UUID.match(source):
            raise OpsReadyError('%r is not a MySQL GTID set member (uuid:interval[:interval...]).' % part)
        spans = result.setdefault(source, [])
        for piece in pieces:
            lo, _sep, hi = piece.partition('-')
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise OpsReadyError('%r is not a MySQL GTID interval.' % piece)
            spans.append((int(lo), int(hi or lo)))
    return {k: _merge(v) for k, v in result.items()}


def _merge(spans: Intervals) -> Intervals:
    out: Intervals = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def format_mysql_gtid_set(gtids: Dict[str, Intervals]) -> str:
    return ','.join('%s:%s' % (k, ':'.join('%d' % lo if lo == hi else '%d-%d' % (lo, hi) for lo, hi in v))
                    for k, v in sorted(gtids.items()) if v)


def union_mysql_gtid_sets(*texts: Optional[str]) -> str:
    merged: Dict[str, Intervals] = {}
    for text in texts:
        for source, spans in parse_mysql_gtid_set(text).items():
            merged.setdefault(source, []).extend(spans)
    return format_mysql_gtid_set({k: _merge(v) for k, v in merged.items()})


def _count(spans: Intervals) -> int:
    return sum(hi - lo + 1 for lo, hi in spans)


def _missing_mysql(have: Dict[str, Intervals], want: Dict[str, Intervals]) -> int:
    """How many transactions of ``want`` are not in ``have``."""
    missing = 0
    for source, spans in want.items():
        for lo, hi in spans:
            covered = 0
            for hlo, hhi in have.get(source, []):
                a, b = max(lo, hlo), min(hi, hhi)
                if a <= b:
                    covered += b - a + 1
            missing += (hi - lo + 1) - covered
    return missing


def _missing_mariadb(have: Dict[int, Tuple[int, int]], want: Dict[int, Tuple[int, int]]) -> int:
    return sum(max(0, seq - have.get(domain, (0, 0))[1]) for domain, (_s, seq) in want.items())


def missing(kind: str, have: Any, want: Any) -> Optional[int]:
    """Units (bytes or transactions) of ``want`` not in ``have``; ``None`` when not comparable."""
    if kind == 'lsn':
        return max(0, int(want) - int(have))
    if kind == 'mariadb_gtid':
        return _missing_mariadb(parse_mariadb_gtids(have), parse_mariadb_gtids(want))
    if kind == 'mysql_gtid':
        return _missing_mysql(parse_mysql_gtid_set(have), parse_mysql_gtid_set(want))
    return None


def _point(position: Dict[str, Any], which: str) -> Any:
    if which not in ('received', 'replayed'):
        raise OpsReadyError('which must be received or replayed, not %r.' % which)
    return position.get(which)


def compare(a: Dict[str, Any], b: Dict[str, Any], which: str = 'received') -> Optional[int]:
    """Compare two nodes' positions (their status dicts, or their ``position`` dicts): 1 when ``a`` holds
    everything ``b`` holds and more, -1 the other way round, 0 when equal, ``None`` when neither holds the
    other (GTID sets diverged, different PostgreSQL timelines) or the kinds differ or a position is unknown."""
    pa, pb = a.get('position', a), b.get('position', b)
    if not pa or not pb or pa.get('kind') != pb.get('kind'):
        return None
    kind = pa['kind']
    xa, xb = _point(pa, which), _point(pb, which)
    if xa is None or xb is None:
        return None
    if kind == 'lsn' and pa.get('timeline') is not None and pb.get('timeline') is not None \
            and pa['timeline'] != pb['timeline']:
        return None
    a_lacks, b_lacks = missing(kind, xa, xb), missing(kind, xb, xa)
    if a_lacks is None or b_lacks is None:
        return None
    if a_lacks == 0 and b_lacks == 0:
        return 0
    if a_lacks == 0:
        return 1
    if b_lacks == 0:
        return -1
    return None


def behind(ahead: Dict[str, Any], other: Dict[str, Any], which: str = 'received') -> Optional[Dict[str, Any]]:
    """What ``other`` lacks of ``ahead``: ``{'bytes': n}`` (PostgreSQL) or ``{'transactions': n}`` (GTID);
    ``None`` when the positions are not comparable. The RPO of promoting ``other`` instead of ``ahead``."""
    pa, po = ahead.get('position', ahead), other.get('position', other)
    if compare(pa, po, which) is None:
        return None
    lacks = missing(pa['kind'], _point(po, which), _point(pa, which))
    return {'bytes': lacks} if pa['kind'] == 'lsn' else {'transactions': lacks}


def most_advanced(candidates: Dict[str, Dict[str, Any]], which: str = 'received') -> Dict[str, Any]:
    """Which of ``candidates`` (name -> status) holds the most: ``{'best': [names holding everything every
    other comparable candidate holds], 'behind': {name: behind(best, name)}, 'incomparable': [names]}``.
    ``best`` has several names on a tie and is empty when the positions diverged (never promote then without a
    human). Candidates without a position (unreachable) are listed in ``incomparable``."""
    names = sorted(n for n in candidates if (candidates[n] or {}).get('position'))
    best: List[str] = []
    incomparable = sorted(n for n in candidates if n not in names)
    for name in names:
        results = [compare(candidates[name], candidates[other], which) for other in names if other != name]
        if any(r is None for r in results):
            incomparable.append(name)
        elif all(r is not None and r >= 0 for r in results):
            best.append(name)
    lagging: Dict[str, Any] = {}
    if best:
        for name in names:
            if name not in best:
                lagging[name] = behind(candidates[best[0]], candidates[name], which)
    return {'best': best, 'behind': lagging, 'incomparable': incomparable}
