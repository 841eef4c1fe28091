# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB and MySQL replication status (GTID replicas), from either end.

``collect(engine)`` (``get_engine('mariadb'|'mysql', conn, runner)``) asks three things, each through the
engine's client:

* the server variables that matter, with ``SHOW GLOBAL VARIABLES WHERE Variable_name IN (...)`` (a variable
  the server does not have is simply absent: one query for MariaDB and MySQL of any version);
* the replica status by column name: MariaDB ``SHOW ALL SLAVES STATUS`` (every replication connection of a
  multi-source replica), MySQL ``SHOW REPLICA STATUS`` (8.0.22+) or ``SHOW SLAVE STATUS``. MySQL 8.0.22 renamed
  the columns (``Replica_IO_Running``, ``Seconds_Behind_Source``, ``Source_Host``...): both spellings map to
  one set of keys (``COLUMNS``);
* the replicas connected to this server (binlog dump threads in ``information_schema.PROCESSLIST``).

Positions: MariaDB ``received`` is the furthest of ``gtid_current_pos`` and the IO thread's ``Gtid_IO_Pos``
(what is in the relay log), ``replayed`` is ``gtid_current_pos``; MySQL ``received`` is ``gtid_executed`` plus
``Retrieved_Gtid_Set``, ``replayed`` is ``gtid_executed``. ``status.compare`` orders them.

The login needs ``REPLICATION CLIENT``/``SLAVE MONITOR`` (MariaDB 10.5+: ``REPLICA MONITOR``) for the
replica status and ``PROCESS`` to see the connected replicas.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.quote import unescape_batch
from ansible_collections.opsready.operations.plugins.module_utils.replication import status as st

VARIABLES = ('version', 'version_comment', 'server_id', 'server_uuid', 'read_only', 'super_read_only', 'log_bin',
             'log_slave_updates', 'log_replica_updates', 'gtid_current_pos', 'gtid_binlog_pos', 'gtid_slave_pos',
             'gtid_strict_mode', 'gtid_domain_id', 'gtid_mode', 'gtid_executed', 'gtid_purged',
             'enforce_gtid_consistency')

# Our key -> the column names of the servers that have it (MariaDB / MySQL before 8.0.22 first, then 8.0.22+).
COLUMNS: Dict[str, tuple] = {
    'connection_name': ('Connection_name', 'Channel_Name', 'Channel_name'),
    'io_state': ('Slave_IO_State', 'Replica_IO_State'),
    'upstream_host': ('Master_Host', 'Source_Host'),
    'upstream_port': ('Master_Port', 'Source_Port'),
    'upstream_user': ('Master_User', 'Source_User'),
    'upstream_server_id': ('Master_Server_Id', 'Source_Server_Id'),
    'upstream_uuid': ('Master_UUID', 'Source_UUID'),
    'connect_retry': ('Connect_Retry',),
    'io_running': ('Slave_IO_Running', 'Replica_IO_Running'),
    'sql_running': ('Slave_SQL_Running', 'Replica_SQL_Running'),
    'sql_state': ('Slave_SQL_Running_State', 'Replica_SQL_Running_State'),
    'seconds_behind': ('Seconds_Behind_Master', 'Seconds_Behind_Source'),
    'sql_delay': ('SQL_Delay',),
    'sql_remaining_delay': ('SQL_Remaining_Delay',),
    'last_io_errno': ('Last_IO_Errno',),
    'last_io_error': ('Last_IO_Error',),
    'last_io_error_timestamp': ('Last_IO_Error_Timestamp',),
    'last_sql_errno': ('Last_SQL_Errno',),
    'last_sql_error': ('Last_SQL_Error',),
    'last_sql_error_timestamp': ('Last_SQL_Error_Timestamp',),
    'upstream_log_file': ('Master_Log_File', 'Source_Log_File'),
    'read_log_pos': ('Read_Master_Log_Pos', 'Read_Source_Log_Pos'),
    'exec_log_file': ('Relay_Master_Log_File', 'Relay_Source_Log_File'),
    'exec_log_pos': ('Exec_Master_Log_Pos', 'Exec_Source_Log_Pos'),
    'using_gtid': ('Using_Gtid',),                        # MariaDB: No, Slave_Pos, Current_Pos
    'gtid_io_pos': ('Gtid_IO_Pos',),                      # MariaDB
    'gtid_slave_pos': ('Gtid_Slave_Pos',),                # MariaDB, SHOW ALL SLAVES STATUS
    'auto_position': ('Auto_Position',),                  # MySQL: 1 with GTID auto-positioning
    'retrieved_gtid_set': ('Retrieved_Gtid_Set',),        # MySQL
    'executed_gtid_set': ('Executed_Gtid_Set',),          # MySQL
}
_INT_KEYS = ('upstream_port', 'upstream_server_id', 'seconds_behind', 'sql_delay', 'sql_remaining_delay',
             'last_io_errno', 'last_sql_errno', 'read_log_pos', 'exec_log_pos', 'connect_retry')


def _rows_named(engine: Any, sql: str) -> List[Dict[str, Optional[str]]]:
    """Rows of ``sql`` as {column: value} through the engine's client (``--column-names`` after its ``-N``:
    the client applies options in order). NULL reads as ``None``."""
    with engine.defaults_file() as head:
        argv = engine.client_argv(head, '--column-names', '-e', sql)
        try:
            _rc, out, _err = engine.runner.run(argv, timeout=engine.conn.connect_timeout + 60, what=engine.flavor)
        except ToolError as exc:
            raise _connect_error(engine, exc)
    lines = out.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    if not lines:
        return []
    names = lines[0].split('\t')
    rows = []
    for line in lines[1:]:
        values = line.split('\t')
        rows.append({n: (None if v == 'NULL' else unescape_batch(v)) for n, v in zip(names, values)})
    return rows


def _connect_error(engine: Any, exc: ToolError) -> OpsReadyError:
    mapped = engine._connect_error(exc)
    if mapped is not exc:
        return mapped
    if 'ERROR 1227' in exc.stderr or 'ERROR 1045' in exc.stderr or 'ERROR 1142' in exc.stderr:
        # the client echoes the statement around its error: keep the ERROR line only
        errors = [line.strip() for line in exc.stderr.splitlines() if line.startswith('ERROR')]
        return OpsReadyError('%s at %s refused the replication status query to %s: %s. Grant the login '
                             'REPLICATION CLIENT (MariaDB 10.5+: SLAVE MONITOR) and PROCESS.'
                             % (engine.flavor, engine.conn.where(3306), engine.conn.user or 'the default user',
                                (errors[-1] if errors else exc.stderr.strip())[:300].rstrip('.')))
    return exc


def _query(engine: Any, sql: str) -> List[List[str]]:
    try:
        return engine.query(sql)
    except ToolError as exc:
        raise _connect_error(engine, exc)


def replica_rows(engine: Any) -> List[Dict[str, Optional[str]]]:
    if engine.flavor == 'mariadb':
        return _rows_named(engine, 'SHOW ALL SLAVES STATUS')
    try:
        return _rows_named(engine, 'SHOW REPLICA STATUS')
    except ToolError as exc:
        if 'ERROR 1064' not in exc.stderr:  # a syntax error: MySQL before 8.0.22
            raise
    return _rows_named(engine, 'SHOW SLAVE STATUS')


def normalise_row(row: Dict[str, Optional[str]]) -> Dict[str, Any]:
    """One replication connection with our keys, whichever spelling the server used."""
    out: Dict[str, Any] = {}
    for key, names in COLUMNS.items():
        value: Any = None
        for name in names:
            if name in row:
                value = row[name]
                break
        if key in _INT_KEYS and value not in (None, '') and str(value).lstrip('-').isdigit():
            value = int(value)
        out[key] = value
    for key in ('io_running', 'sql_running'):
        out[key + '_ok'] = out[key] == 'Yes'
    return out


def collect(engine: Any, database: Optional[str] = None) -> Dict[str, Any]:
    """The replication status of the node ``engine`` reaches (see the module docstring)."""
    names = ', '.join("'%s'" % v for v in VARIABLES)  # constants: no user input reaches this SQL
    variables = {row[0].lower(): row[1] for row in _query(
        engine, 'SHOW GLOBAL VARIABLES WHERE Variable_name IN (%s)' % names) if len(row) >= 2}
    if not variables:
        raise OpsReadyError('%s at %s returned no server variables.' % (engine.flavor, engine.conn.where(3306)))
    upstreams = [normalise_row(r) for r in replica_rows(engine)]
    try:
        dump = _query(engine, "SELECT ID, USER, HOST, TIME, STATE FROM information_schema.PROCESSLIST "
                              "WHERE COMMAND IN ('Binlog Dump', 'Binlog Dump GTID') ORDER BY ID")
    except OpsReadyError:
        dump = []
    return shape(engine.flavor, variables, upstreams, dump)


def _on(value: Optional[str]) -> bool:
    return str(value or '').upper() in ('1', 'ON', 'YES', 'TRUE')


def shape(flavor: str, variables: Dict[str, str], upstreams: List[Dict[str, Any]],
          dump: List[List[str]]) -> Dict[str, Any]:
    """The status dict (see ``status.py``) from the variables, the normalised replica rows and the dump threads."""
    mariadb = 'gtid_current_pos' in variables or flavor == 'mariadb'
    role = 'standby' if upstreams else 'primary'
    replicas = []
    for row in dump:
        if len(row) >= 5:
            host = row[2]
            replicas.append({'name': host, 'id': int(row[0]) if row[0].isdigit() else row[0], 'user': row[1],
                             'client_addr': host.rsplit(':', 1)[0] if host else host, 'state': row[4],
                             'connected_seconds': int(row[3]) if row[3].isdigit() else None})
    if mariadb:
        current = variables.get('gtid_current_pos') or ''
        received = st.merge_mariadb_gtids(current, *[u.get('gtid_io_pos') for u in upstreams])
        position = {'kind': 'mariadb_gtid', 'received': received, 'replayed': current,
                    'gtid_current_pos': current, 'gtid_binlog_pos': variables.get('gtid_binlog_pos') or '',
                    'gtid_slave_pos': variables.get('gtid_slave_pos') or ''}
        for u in upstreams:
            # GTIDs received (relay log) but not applied yet, per connection
            u['transactions_behind'] = st.missing('mariadb_gtid', current, st.merge_mariadb_gtids(
                current, u.get('gtid_io_pos'))) if u.get('gtid_io_pos') else None
    else:
        executed = variables.get('gtid_executed') or ''
        received = st.union_mysql_gtid_sets(executed, *[u.get('retrieved_gtid_set') for u in upstreams])
        position = {'kind': 'mysql_gtid', 'received': received, 'replayed': st.union_mysql_gtid_sets(executed),
                    'gtid_executed': executed, 'gtid_purged': variables.get('gtid_purged') or ''}
        for u in upstreams:
            u['transactions_behind'] = st.missing('mysql_gtid', executed, st.union_mysql_gtid_sets(
                executed, u.get('retrieved_gtid_set'))) if u.get('retrieved_gtid_set') else None
    lags = [u['seconds_behind'] for u in upstreams if isinstance(u.get('seconds_behind'), int)]
    stopped = any(not (u['io_running_ok'] and u['sql_running_ok']) for u in upstreams)
    read_only = _on(variables.get('read_only')) or _on(variables.get('super_read_only'))
    return {
        'engine': flavor,
        'role': role,
        'server_version': variables.get('version'),
        'server_id': int(variables['server_id']) if str(variables.get('server_id', '')).isdigit() else None,
        'server_uuid': variables.get('server_uuid'),
        'read_only': read_only,
        'log_bin': _on(variables.get('log_bin')),
        'log_replica_updates': _on(variables.get('log_slave_updates') or variables.get('log_replica_updates')),
        'gtid_strict_mode': _on(variables.get('gtid_strict_mode')) if mariadb else None,
        'gtid_mode': None if mariadb else variables.get('gtid_mode'),
        'position': position,
        'lag_bytes': None,
        # Seconds_Behind_Master is NULL while a thread is stopped: unknown, not 0.
        'lag_seconds': float(max(lags)) if lags and not stopped else None,
        'replicas': replicas,
        'upstream': upstreams[0] if upstreams else None,
        'upstreams': upstreams,
        'slots': [],
        'settings': {k: variables.get(k) for k in VARIABLES if k in variables and k not in ('gtid_executed',)},
    }


def assess(status: Dict[str, Any], limits: st.Limits) -> List[Dict[str, Any]]:
    """Reasons for ``status`` against ``limits``: stopped IO/SQL threads with their last errors, lag in
    seconds, a replica without GTID or writable, fewer connected replicas than ``min_replicas``."""
    flavor = 'MariaDB' if status['engine'] == 'mariadb' else 'MySQL'
    reasons = st.role_reasons(status['role'], limits, 'This %s server' % flavor)
    for u in status['upstreams']:
        name = u.get('connection_name') or None
        src = '%s:%s' % (u.get('upstream_host'), u.get('upstream_port'))
        label = 'Replication%s from %s' % (" connection '%s'" % name if name else '', src)
        if not u['io_running_ok']:
            err = u.get('last_io_error') or 'no error recorded'
            reasons.append(st.reason(
                st.CRITICAL, st.STOPPED, '%s: the IO thread is %s (error %s: %s). Fix the cause (the source down, '
                'network, or the replication login: CHANGE MASTER TO MASTER_PASSWORD=...), then START SLAVE.'
                % (label, u.get('io_running') or 'not running', u.get('last_io_errno') or 0, err),
                value=u.get('io_running'), subject=name))
        if not u['sql_running_ok']:
            err = u.get('last_sql_error') or 'no error recorded (stopped by STOP SLAVE?)'
            reasons.append(st.reason(
                st.CRITICAL, st.STOPPED, '%s: the SQL thread is %s (error %s: %s). Nothing received is applied; '
                'fix the failing statement\'s cause, then START SLAVE SQL_THREAD.'
                % (label, u.get('sql_running') or 'not running', u.get('last_sql_errno') or 0, err),
                value=u.get('sql_running'), subject=name))
        seconds = u.get('seconds_behind')
        if isinstance(seconds, int):
            reasons += st.measure(limits.lag_seconds, float(seconds), '%s: Seconds_Behind_Master' % label,
                                  subject=name)
        gtid = (u.get('using_gtid') or 'No') != 'No' if status['engine'] == 'mariadb' \
            else str(u.get('auto_position') or '0') == '1'
        if not gtid:
            reasons.append(st.reason(st.WARNING, st.CONFIG, '%s does not use GTID (%s): positions cannot be '
                                     'compared for failover. Use CHANGE MASTER TO MASTER_USE_GTID=slave_pos '
                                     '(MySQL: SOURCE_AUTO_POSITION=1).'
                                     % (label, 'Using_Gtid=No' if status['engine'] == 'mariadb'
                                        else 'Auto_Position=0'), subject=name))
    if status['role'] == 'standby' and not status['read_only']:
        reasons.append(st.reason(st.WARNING, st.CONFIG, 'This replica is writable (read_only=OFF): a write here '
                                 'diverges it from the primary and breaks failover. SET GLOBAL read_only=ON.'))
    if status['role'] == 'primary' and status['read_only']:
        reasons.append(st.reason(st.WARNING, st.CONFIG, 'The primary is read_only: applications are refused '
                                 'writes (fenced?). SET GLOBAL read_only=OFF if this is the primary.'))
    connected = len(status['replicas'])
    if status['role'] == 'primary' and limits.min_replicas and connected < limits.min_replicas:
        reasons.append(st.reason(st.CRITICAL, st.MISSING, '%d replica(s) are connected to this server, expected at '
                                 'least %d: a replica is down, cannot reach this server, or its IO thread stopped.'
                                 % (connected, limits.min_replicas), value=connected, threshold=limits.min_replicas))
    return reasons
