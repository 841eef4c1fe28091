"""The server's messages in German, for the fidelity tests that check nothing depends on their language (round 20's
set-up, shared): ``german_role`` sets ``lc_messages`` for one role (``ALTER ROLE ... SET``, as on a managed service,
with or without ``GRANT SET ON PARAMETER``), ``german_server`` for the whole server (``ALTER SYSTEM``, reloaded: a
refused connection's message comes in that language too). Both put everything back. setup.sh generates the locale."""

from __future__ import annotations

import contextlib
from typing import Iterator

GERMAN = 'de_DE.UTF-8'


@contextlib.contextmanager
def german_role(pg, role: str, granted: bool = False) -> Iterator[None]:
    """``role``'s sessions get German messages; ``granted``: it may set lc_messages itself (PostgreSQL 15+)."""
    try:
        pg.sql("ALTER ROLE %s SET lc_messages = '%s'" % (role, GERMAN))
        grant = ('GRANT', 'TO', role) if granted else ('REVOKE', 'FROM', role)
        pg.sql('%s SET ON PARAMETER lc_messages %s %s' % grant)
        said = pg.sql("SELECT array_to_string(setconfig, ','), "
                      "has_parameter_privilege('%s', 'lc_messages', 'SET')::text FROM pg_db_role_setting "
                      "WHERE setrole = '%s'::regrole AND setdatabase = 0" % (role, role))
        assert said == [('lc_messages=' + GERMAN, str(granted).lower())], said   # the premise
        yield
    finally:
        pg.sql('ALTER ROLE %s RESET lc_messages; REVOKE SET ON PARAMETER lc_messages FROM %s' % (role, role))


@contextlib.contextmanager
def german_server(pg, maintenance: str = '') -> Iterator[None]:
    """Every session (and every refused connection) of the server gets German messages; ``maintenance``: another
    lc_messages for the maintenance database's sessions ('C': where a restore asks which language its sessions get)."""
    try:
        pg.sql("ALTER SYSTEM SET lc_messages = '%s'; SELECT pg_reload_conf()" % GERMAN)
        if maintenance:
            pg.sql("ALTER DATABASE postgres SET lc_messages = '%s'" % maintenance)
        yield
    finally:
        if maintenance:
            pg.sql('ALTER DATABASE postgres RESET lc_messages')
        pg.sql('ALTER SYSTEM RESET lc_messages; SELECT pg_reload_conf()')
