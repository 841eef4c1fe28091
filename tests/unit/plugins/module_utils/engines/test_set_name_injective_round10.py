"""Round 10: the file-name part of a backup set is injective (distinct sets never share artifact names).

``app x`` and ``app_x``, SQLite ``/a/app.db`` and ``/b/app.db``, the database ``cluster`` and the server-wide set
``@cluster`` gave one file-name part: one set's torn manifest then failed the other's drill (drill/passed_over.py
matched it by name), and their runs shared a set lock."""

from __future__ import annotations

import itertools

from ansible_collections.opsready.operations.plugins.module_utils.engines.base import (
    ALL_DATABASES, CLUSTER, GLOBALS, SET_NAME_MAX, legacy_set_name, set_name)

COLLAPSING = ['app x', 'app_x', 'app/x', 'app\nx', 'app_x_', '.app_x', '/a/app.db', '/b/app.db', 'app.db',
              'cluster', CLUSTER, 'globals', GLOBALS, 'all', ALL_DATABASES, 'db', '', '..', 'ü', 'é',
              'l' * 300 + 'a', 'l' * 300 + 'b', 'l' * SET_NAME_MAX, 'l' * (SET_NAME_MAX - 13) + '_0123456789ab']


def test_distinct_set_names_never_share_a_file_name_part():
    parts = {name: set_name(name) for name in COLLAPSING}
    for a, b in itertools.combinations(COLLAPSING, 2):
        assert parts[a] != parts[b], (a, b, parts[a])
    for part in parts.values():
        assert part and len(part) <= SET_NAME_MAX and '/' not in part and part not in ('.', '..')
        assert all(c.isascii() and (c.isalnum() or c in '_.-') for c in part), part


def test_names_sanitising_kept_and_the_server_wide_sets_keep_their_names():
    """A name the file-name rules keep is its own part (existing catalogs and by-hand scripts keep their names); the
    server-wide sets keep theirs (restore_command scripts read postgresql-cluster-wal-*)."""
    for name in ('shop', 'app-2', 'App_1.prod', 'x' * SET_NAME_MAX):
        assert set_name(name) == name == legacy_set_name(name)
    assert (set_name(CLUSTER), set_name(GLOBALS), set_name(ALL_DATABASES)) == ('cluster', 'globals', 'all')
    assert set_name('l' * 300 + 'a') == legacy_set_name('l' * 300 + 'a')   # long names were hashed already
