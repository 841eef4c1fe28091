"""The stale-copy markers the PostgreSQL and MariaDB restores share (restore/stale.py). The texts are on servers
already (a killed run's copy carries the one its version wrote): they must stay byte for byte what they were, or
the next run would no longer know those copies as its own."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import restore as mysql_restore
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import restore as pg_restore
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import temporary_name
from ansible_collections.opsready.operations.plugins.module_utils.restore.stale import (
    copy_shape, drop_stale_copies, stem_of)

RESTORE = ('opsready db_restore: temporary copy of database %s while a restore into it runs; the next db_restore '
           'into that database drops it if the run was killed')


def test_marker_texts_are_the_ones_shipped():
    assert pg_restore.copy_marker('shop') == RESTORE % '"shop"'
    assert mysql_restore.copy_marker('shop') == RESTORE % '`shop`'
    assert pg_restore.copy_marker('a"b', 'old') == (
        'opsready db_restore: the previous contents of database "a""b", renamed aside by a restore\'s swap; the next '
        'db_restore into that database drops it if the run was killed')
    assert mysql_restore.copy_marker('a`b', 'old') == (
        'opsready db_restore: the old tables of database `a``b`, moved aside by a restore\'s swap; the next '
        'db_restore into that database drops it if the run was killed')
    assert sorted(pg_restore.MARKERS) == sorted(mysql_restore.MARKERS) == ['old', 'restore']


def test_copy_shape_takes_only_a_run_s_names():
    for target in ('shop', 'x' * 80, 'é' * 40):
        for what in ('restore', 'old'):
            name = temporary_name(target, what)
            shape = copy_shape(stem_of(name, what), what)
            assert shape.match(name)
            assert not shape.match(name + 'x') and not shape.match(name[:-1] + 'g')
            assert not shape.match('other' + name)


def test_drop_stale_copies_keeps_reports_and_goes_on():
    dropped = []

    def drop(name):
        if name == 'b':
            return 'permission denied'
        dropped.append(name)
        return None

    result = drop_stale_copies([('a', 'restore'), ('b', 'restore'), ('c', 'old'), ('d', 'restore')], 'shop', drop,
                               lambda name: 'DROP DATABASE %s' % name,
                               lambda name, what: 'kept %s' % name if what == 'old' else None)
    assert result == {'dropped_stale': ['a', 'd'], 'kept_stale': ['c'],
                      'warnings': ['database b, left by a killed db_restore into shop, could not be dropped '
                                   '(permission denied): drop it by hand, DROP DATABASE b', 'kept c']}
    assert dropped == ['a', 'd']
