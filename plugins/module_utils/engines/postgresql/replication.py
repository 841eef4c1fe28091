# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL streaming replication status, from either end, in one query.

``collect(engine)`` asks the node one SELECT that returns a JSON document (one client start, one snapshot of
the statistics views): recovery state, WAL positions, ``pg_stat_replication`` (the downstream standbys, with
lag in bytes from the LSNs and in seconds from ``replay_lag``), ``pg_stat_wal_receiver`` (the upstream, as a
standby sees it), replication slots with the WAL each one retains, and the settings that matter. It never
reads ``primary_conninfo``'s password: only host, port, user and application_name are kept.

``assess(status, limits)`` turns a status into reasons (see ``status.py``). On a primary: each standby's lag,
standbys that are not streaming, slots whose consumer is gone (a stopped standby: its WAL piles up on the
primary until the disk fills) or whose retained WAL passes the threshold or was lost, fewer streaming standbys
than ``min_replicas``. On a standby: no WAL receiver (``primary_conninfo`` empty or broken, the primary down or
unreachable; the server log says which), replay paused, lag in bytes (``latest_end_lsn`` reported by the
primary minus the replayed LSN) and seconds (``now() - pg_last_xact_replay_timestamp()`` while WAL is waiting
to be replayed, 0 when everything received is replayed; so an idle primary does not read as lag).

The login needs ``pg_monitor`` (or superuser) to see the other sessions' LSNs and lag; without it the lag
columns read as unknown and the reasons say so.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import conninfo as conninfo_parser
from ansible_collections.opsready.operations.plugins.module_utils.replication import (
    status as st)

# ``b.base``: the WAL position replication is measured against, the primary's written WAL or, on a (cascading)
# standby, what it has received. primary_conninfo is read only by a login allowed to (else NULL, not an error).
STATUS_SQL = """
WITH b AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END
           AS base)
SELECT jsonb_build_object(
  'in_recovery', pg_is_in_recovery(),
  'server_version', current_setting('server_version'),
  'server_version_num', current_setting('server_version_num')::int,
  'now', now(),
  'current_lsn', CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
  'receive_lsn', pg_last_wal_receive_lsn()::text,
  'replay_lsn', pg_last_wal_replay_lsn()::text,
  'replay_timestamp', pg_last_xact_replay_timestamp(),
  'replay_paused', CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END,
  'replay_lag_seconds', CASE WHEN NOT pg_is_in_recovery() THEN NULL
      WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
      ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END,
  'timeline', CASE WHEN NOT pg_is_in_recovery()
      THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
      WHEN has_function_privilege('pg_control_checkpoint()', 'EXECUTE')
      THEN (SELECT timeline_id FROM pg_control_checkpoint()) END,
  'system_identifier', CASE WHEN has_function_privilege('pg_control_system()', 'EXECUTE')
      THEN (SELECT system_identifier::text FROM pg_control_system()) END,
  'settings', jsonb_build_object(
      'synchronous_standby_names', current_setting('synchronous_standby_names'),
      'synchronous_commit', current_setting('synchronous_commit'),
      'primary_slot_name', current_setting('primary_slot_name'),
      'wal_keep_size', current_setting('wal_keep_size'),
      'max_slot_wal_keep_size', current_setting('max_slot_wal_keep_size'),
      'hot_standby', current_setting('hot_standby'),
      'default_transaction_read_only', current_setting('default_transaction_read_only'),
      'cluster_name', current_setting('cluster_name'),
      'primary_conninfo', CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
          OR pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')
          THEN current_setting('primary_conninfo') END),
  'replicas', (SELECT coalesce(jsonb_agg(jsonb_build_object(
      'pid', r.pid, 'name', r.application_name, 'user', r.usename, 'client_addr', host(r.client_addr),
      'client_port', r.client_port, 'state', r.state, 'sync_state', r.sync_state,
      'sync_priority', r.sync_priority,
      'sent_lsn', r.sent_lsn::text, 'write_lsn', r.write_lsn::text, 'flush_lsn', r.flush_lsn::text,
      'replay_lsn', r.replay_lsn::text,
      'lag_bytes', pg_wal_lsn_diff((SELECT base FROM b), r.replay_lsn),
      'flush_lag_bytes', pg_wal_lsn_diff((SELECT base FROM b), r.flush_lsn),
      'write_lag_seconds', extract(epoch FROM r.write_lag),
      'flush_lag_seconds', extract(epoch FROM r.flush_lag),
      'lag_seconds', extract(epoch FROM r.replay_lag),
      'reply_age_seconds', extract(epoch FROM now() - r.reply_time),
      'backend_start', r.backend_start,
      'slot_name', s.slot_name) ORDER BY r.application_name, r.pid), '[]'::jsonb)
      FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid),
  'receiver', (SELECT to_jsonb(w) - 'conninfo' || jsonb_build_object(
      'last_msg_age_seconds', extract(epoch FROM now() - w.last_msg_receipt_time),
      'latest_end_age_seconds', extract(epoch FROM now() - w.latest_end_time))
      FROM pg_stat_wal_receiver w),
  'slots', (SELECT coalesce(jsonb_agg(jsonb_build_object(
      'slot_name', slot_name, 'slot_type', slot_type, 'active', active, 'active_pid', active_pid,
      'temporary', temporary, 'database', database, 'plugin', plugin, 'wal_status', wal_status,
      'safe_wal_size', safe_wal_size, 'restart_lsn', restart_lsn::text,
      'confirmed_flush_lsn', confirmed_flush_lsn::text,
      'retained_bytes', pg_wal_lsn_diff((SELECT base FROM b), restart_lsn)) ORDER BY slot_name), '[]'::jsonb)
      FROM pg_replication_slots)
)::text
"""


def lsn_int(text: Optional[str]) -> Optional[int]:
    """``'0/3000148'`` -> bytes; ``None``/empty -> ``None``."""
    if not text:
        return None
    high, sep, low = str(text).strip().partition('/')
    try:
        if not sep:
            raise ValueError(text)
        return (int(high, 16) << 32) + int(low, 16)
    except ValueError:
        raise OpsReadyError('%r is not a PostgreSQL LSN.' % text)


def _num(value: Any) -> Optional[float]:
    if value is None or value == '':
        return None
    return round(float(value), 3)


def _int(value: Any) -> Optional[int]:
    return None if value is None or value == '' else int(float(value))


def conninfo_summary(conninfo: Optional[str]) -> Optional[Dict[str, str]]:
    """The harmless keys of a libpq conninfo (host, hostaddr, port, user, application_name, sslmode, dbname):
    never the password, passfile or anything else."""
    if conninfo is None:
        return None
    keep = ('host', 'hostaddr', 'port', 'user', 'application_name', 'sslmode')
    return {k: v for k, v in conninfo_parser.parse(conninfo, strict=False).items() if k in keep}


def collect(engine: Any, database: Optional[str] = None) -> Dict[str, Any]:
    """The replication status of the node ``engine`` (``get_engine('postgresql', conn, runner)``) reaches,
    connected to ``database`` (default ``postgres``; any database will do, the views are cluster-wide)."""
    rows = engine.query(STATUS_SQL, database)
    if not rows or not rows[0]:
        raise OpsReadyError('PostgreSQL at %s returned no replication status.' % engine.conn.where(5432))
    raw = json.loads(rows[0][0])
    return shape(raw)


def shape(raw: Dict[str, Any]) -> Dict[str, Any]:
    """The status dict (see ``status.py``) from the JSON document of ``STATUS_SQL``."""
    in_recovery = bool(raw.get('in_recovery'))
    settings = dict(raw.get('settings') or {})
    settings['primary_conninfo'] = conninfo_summary(settings.get('primary_conninfo'))
    replicas: List[Dict[str, Any]] = []
    for r in raw.get('replicas') or []:
        replicas.append({
            'name': r.get('name') or '', 'pid': r.get('pid'), 'user': r.get('user'),
            'client_addr': r.get('client_addr'), 'client_port': r.get('client_port'), 'state': r.get('state'),
            'sync_state': r.get('sync_state'), 'sync_priority': r.get('sync_priority'),
            'sent_lsn': r.get('sent_lsn'), 'write_lsn': r.get('write_lsn'), 'flush_lsn': r.get('flush_lsn'),
            'replay_lsn': r.get('replay_lsn'), 'lag_bytes': _int(r.get('lag_bytes')),
            'flush_lag_bytes': _int(r.get('flush_lag_bytes')), 'lag_seconds': _num(r.get('lag_seconds')),
            'write_lag_seconds': _num(r.get('write_lag_seconds')),
            'flush_lag_seconds': _num(r.get('flush_lag_seconds')),
            'reply_age_seconds': _num(r.get('reply_age_seconds')), 'slot_name': r.get('slot_name'),
            'backend_start': r.get('backend_start'),
        })
    slots: List[Dict[str, Any]] = []
    for s in raw.get('slots') or []:
        slot = dict(s)
        slot['retained_bytes'] = _int(s.get('retained_bytes'))
        slot['safe_wal_size'] = _int(s.get('safe_wal_size'))
        slots.append(slot)
    receiver = raw.get('receiver')
    upstream: Optional[Dict[str, Any]] = None
    if receiver is not None:
        # PostgreSQL 13 renamed received_lsn to flushed_lsn (and added written_lsn).
        flushed = receiver.get('flushed_lsn') or receiver.get('received_lsn')
        upstream = {
            'status': receiver.get('status'), 'pid': receiver.get('pid'),
            'sender_host': receiver.get('sender_host'), 'sender_port': receiver.get('sender_port'),
            'slot_name': receiver.get('slot_name'), 'received_tli': receiver.get('received_tli'),
            'written_lsn': receiver.get('written_lsn'), 'flushed_lsn': flushed,
            'latest_end_lsn': receiver.get('latest_end_lsn'),
            'last_msg_age_seconds': _num(receiver.get('last_msg_age_seconds')),
            'latest_end_age_seconds': _num(receiver.get('latest_end_age_seconds')),
        }
    timeline = raw.get('timeline')
    if in_recovery and upstream and upstream.get('received_tli'):
        timeline = upstream['received_tli']
    if in_recovery:
        received = raw.get('receive_lsn') or raw.get('replay_lsn')
        replayed = raw.get('replay_lsn')
        received_int, replayed_int = lsn_int(received), lsn_int(replayed)
        if received_int is not None and replayed_int is not None and replayed_int > received_int:
            received, received_int = replayed, replayed_int  # restored from the archive, not streamed
        ahead = lsn_int(upstream.get('latest_end_lsn')) if upstream else None
        top = max(x for x in (ahead, received_int, replayed_int) if x is not None) \
            if any(x is not None for x in (ahead, received_int, replayed_int)) else None
        lag_bytes = top - replayed_int if top is not None and replayed_int is not None else None
        lag_seconds = _num(raw.get('replay_lag_seconds'))
    else:
        received = replayed = raw.get('current_lsn')
        received_int = replayed_int = lsn_int(received)
        lag_bytes, lag_seconds = None, None
    read_only = settings.get('default_transaction_read_only') == 'on'
    return {
        'engine': 'postgresql',
        'role': 'standby' if in_recovery else 'primary',
        'in_recovery': in_recovery,
        'server_version': raw.get('server_version'),
        'server_version_num': raw.get('server_version_num'),
        'system_identifier': raw.get('system_identifier'),
        'read_only': in_recovery or read_only,
        'timeline': timeline,
        'position': {'kind': 'lsn', 'timeline': timeline, 'received': received_int, 'replayed': replayed_int,
                     'received_lsn': received, 'replayed_lsn': replayed},
        'current_lsn': raw.get('current_lsn'),
        'receive_lsn': raw.get('receive_lsn'),
        'replay_lsn': raw.get('replay_lsn'),
        'replay_timestamp': raw.get('replay_timestamp'),
        'replay_paused': raw.get('replay_paused'),
        'lag_bytes': lag_bytes,
        'lag_seconds': lag_seconds,
        'replicas': replicas,
        'upstream': upstream,
        'slots': slots,
        'settings': settings,
    }


def assess(status: Dict[str, Any], limits: st.Limits) -> List[Dict[str, Any]]:
    """Reasons for ``status`` against ``limits`` (see the module docstring)."""
    role = status['role']
    reasons = st.role_reasons(role, limits, 'This PostgreSQL server')
    if role == 'standby':
        reasons += _standby(status, limits)
    if role == 'primary' and status['settings'].get('default_transaction_read_only') == 'on':
        reasons.append(st.reason(st.WARNING, st.CONFIG, 'The primary has default_transaction_read_only=on: '
                                 'applications are refused writes (fenced?). Turn it off if this is the primary.'))
    reasons += _downstream(status, limits)
    reasons += _slots(status, limits)
    return reasons


def _standby(status: Dict[str, Any], limits: st.Limits) -> List[Dict[str, Any]]:
    reasons: List[Dict[str, Any]] = []
    up = status.get('upstream')
    conninfo = status['settings'].get('primary_conninfo')
    target = ''
    if conninfo:
        target = ' (primary_conninfo host=%s port=%s)' % (conninfo.get('host') or conninfo.get('hostaddr') or '?',
                                                          conninfo.get('port') or '5432')
    if up is not None and up.get('status') is None:
        reasons.append(st.reason(st.WARNING, st.CONFIG, 'A WAL receiver runs, but this login cannot see its state '
                                 'or positions: grant it pg_monitor to judge this standby.', value='unknown'))
    elif up is None:
        if conninfo == {}:
            why = 'primary_conninfo is empty: set it to the primary and reload'
        else:
            why = ('the WAL receiver is not running%s: the primary is down or unreachable, or it refuses the '
                   'login (see this server\'s log for the walreceiver error)' % target)
        reasons.append(st.reason(st.CRITICAL, st.STOPPED, 'This standby does not stream WAL from its primary: '
                                 '%s. It falls further behind with every write.' % why, value='stopped'))
    elif up.get('status') != 'streaming':
        reasons.append(st.reason(st.CRITICAL, st.STOPPED, 'The WAL receiver is %s, not streaming, from %s:%s. '
                                 'See this server\'s log for why.' % (up.get('status'), up.get('sender_host'),
                                                                      up.get('sender_port')),
                                 value=up.get('status')))
    if status.get('replay_paused'):
        reasons.append(st.reason(st.WARNING, st.PAUSED, 'WAL replay is paused (pg_wal_replay_pause): WAL arrives '
                                 'but is not applied. Resume with SELECT pg_wal_replay_resume().', value=True))
    reasons += st.measure(limits.lag_bytes, status.get('lag_bytes'), 'Replay lag behind the primary')
    reasons += st.measure(limits.lag_seconds, status.get('lag_seconds'), 'Replay lag behind the primary')
    return reasons


def _downstream(status: Dict[str, Any], limits: st.Limits) -> List[Dict[str, Any]]:
    reasons: List[Dict[str, Any]] = []
    streaming = 0
    hidden = [r for r in status['replicas'] if r['state'] is None]
    if hidden:
        reasons.append(st.reason(st.WARNING, st.CONFIG, '%d standby(s) are connected, but this login cannot see '
                                 'their state, positions or lag: grant it pg_monitor.' % len(hidden),
                                 value=len(hidden)))
    for r in status['replicas']:
        who = 'Standby %s (%s)' % (r['name'] or '?', r.get('client_addr') or 'local')
        if r['state'] is None:
            streaming += 1  # connected; whether it streams is not visible (counted, reported above)
            continue
        if r['state'] == 'streaming':
            streaming += 1
        else:
            reasons.append(st.reason(st.WARNING, st.STOPPED, '%s is in state %s, not streaming yet.'
                                     % (who, r['state']), value=r['state'], subject=r['name']))
        if r['lag_bytes'] is None and r['state'] == 'streaming':
            reasons.append(st.reason(st.WARNING, st.LAG, '%s: its LSNs are not visible to this login: grant it '
                                     'pg_monitor to measure lag.' % who, subject=r['name']))
        reasons += st.measure(limits.lag_bytes, r['lag_bytes'], '%s replay lag' % who, subject=r['name'])
        reasons += st.measure(limits.lag_seconds, r['lag_seconds'], '%s replay lag' % who, subject=r['name'])
    if status['role'] == 'primary' and limits.min_replicas and streaming < limits.min_replicas:
        reasons.append(st.reason(st.CRITICAL, st.MISSING, '%d standby(s) stream from this server, expected at '
                                 'least %d: a standby is down or cannot reach this server.'
                                 % (streaming, limits.min_replicas), value=streaming,
                                 threshold=limits.min_replicas))
    return reasons


def _slots(status: Dict[str, Any], limits: st.Limits) -> List[Dict[str, Any]]:
    reasons: List[Dict[str, Any]] = []
    for slot in status['slots']:
        name = slot['slot_name']
        if name in limits.ignore_slots or slot.get('temporary'):
            continue
        retained = slot.get('retained_bytes')
        what = 'Replication slot %s' % name
        if slot.get('wal_status') == 'lost':
            reasons.append(st.reason(st.CRITICAL, st.SLOT, '%s lost WAL its consumer still needed '
                                     '(max_slot_wal_keep_size): that standby must be rebuilt from a base '
                                     'backup; drop the slot once it is.' % what, value='lost', subject=name))
        elif slot.get('wal_status') == 'unreserved':
            reasons.append(st.reason(st.CRITICAL, st.SLOT, '%s is past max_slot_wal_keep_size: the WAL it needs '
                                     'is removed at the next checkpoint.' % what, value='unreserved', subject=name))
        if not slot.get('active') and limits.inactive_slot_severity != st.OK:
            reasons.append(st.reason(limits.inactive_slot_severity, st.SLOT,
                                     '%s is inactive: its %s is not connected, and this server keeps every WAL '
                                     'segment since %s for it (%s so far). Bring it back, or drop the slot '
                                     '(SELECT pg_drop_replication_slot(...)) if it is gone for good.'
                                     % (what, 'standby' if slot.get('slot_type') == 'physical' else 'consumer',
                                        slot.get('restart_lsn') or 'its creation',
                                        st.fmt('bytes', retained)),
                                     value=retained, subject=name))
        reasons += st.measure(limits.slot_retained, retained, '%s retained WAL' % what, condition=st.SLOT,
                              subject=name)
    return reasons
