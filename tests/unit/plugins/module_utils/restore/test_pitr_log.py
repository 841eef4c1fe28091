"""Reading a failed recovery's server log (issue 15, item 8): the FATAL line and its fix lead, the
``cp: cannot stat`` probes of restore_command are counted and left out of the tail.

data/pitr_not_reached.log is the real log of the failure the issue reports (PostgreSQL 15, stop_at after the last
commit in the archived WAL), captured from the scratch server before the fix; only its paths are shortened.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.pitr import (
    RecoveryFailed, analyse_log, last_transaction)

LOG_NOT_REACHED = (Path(__file__).parent / 'data' / 'pitr_not_reached.log').read_text()

CONTEXT = {'port': 47739, 'rundir': '/srv/restore/d1.run', 'os_user': 'postgres',
           'pg_ctl': '/usr/lib/postgresql/15/bin/pg_ctl'}


def test_fatal_line_leads_and_the_probes_are_left_out():
    analysis = analyse_log(LOG_NOT_REACHED, **CONTEXT)
    assert analysis['fatal'] == 'FATAL: recovery ended before configured recovery target was reached'
    assert analysis['fix'] and 'stop_at' in analysis['fix']
    assert analysis['probes'] == 3
    assert not [line for line in analysis['tail'] if 'cp: cannot stat' in line]
    assert analysis['tail'][-1].endswith('database system is shut down')
    message = RecoveryFailed('the recovered server stopped during recovery', '/srv/restore/d1.run/postgresql.log',
                             analysis).describe('/srv/restore/d1')
    assert message.startswith('FATAL: recovery ended before configured recovery target was reached Fix: ')
    head, tail = message.split('Server log ', 1)
    assert "cp: cannot stat '" not in message
    assert 'failed and was cleaned up (/srv/restore/d1 untouched)' in head
    assert '3 "cp: cannot stat" lines left out' in tail and 'redo done at 0/30073F0' in tail


def test_hint_and_detail_follow_the_fatal_line():
    log = ('2026-12-04 14:00:00.000 UTC [1] LOG:  could not bind IPv4 address "127.0.0.1": Address already in use\n'
           '2026-12-04 14:00:00.000 UTC [1] HINT:  Is another postmaster already running on port 5432? If not, '
           'wait a few seconds and retry.\n'
           '2026-12-04 14:00:00.000 UTC [1] WARNING:  could not create listen socket for "127.0.0.1"\n'
           '2026-12-04 14:00:00.000 UTC [1] FATAL:  could not create any TCP/IP sockets\n'
           '2026-12-04 14:00:00.001 UTC [1] LOG:  database system is shut down\n')
    context = dict(CONTEXT)
    context['port'] = 5432
    analysis = analyse_log(log, **context)
    assert analysis['fatal'] == 'FATAL: could not create any TCP/IP sockets'
    assert analysis['fix'].startswith('port 5432 is taken')


def test_no_fatal_keeps_the_plain_message():
    analysis = analyse_log('cp: cannot stat x\nLOG:  redo starts at 0/2000028\n', **CONTEXT)
    assert analysis['fatal'] is None and analysis['fix'] is None and analysis['probes'] == 1
    message = RecoveryFailed('recovery did not finish within 600s', '/l', analysis).describe('/d')
    assert message.startswith('recovery did not finish within 600s Point-in-time recovery into /d failed')


def test_last_transaction_from_the_log():
    assert last_transaction(LOG_NOT_REACHED) == datetime.datetime(2026, 12, 4, 13, 59, 42, 790322,
                                                                  tzinfo=datetime.timezone.utc)
    assert last_transaction('LOG:  last completed transaction was at log time 2026-12-04 15:59:42+02') == \
        datetime.datetime(2026, 12, 4, 13, 59, 42, tzinfo=datetime.timezone.utc)
    assert last_transaction('nothing') is None
