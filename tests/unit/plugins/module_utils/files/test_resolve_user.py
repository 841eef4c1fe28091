"""safeio.resolve_user (the ``owner`` option of db_backup/redis_backup, cert_renew's owner): every name that is not
an account of this host is the same clear refusal, never a traceback."""

from __future__ import annotations

import os
import pwd

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.files import safeio


@pytest.mark.parametrize('name', ['no-such-user-opsready', "o'brien", 'a"b', 'back\\slash', 'hash#tag', 'q?x',
                                  'pct%20', 'new\nline', 'nul\0byte', 'jürgen', '99999999999999999999999999'])
def test_a_name_that_is_no_account_is_refused_clearly(name):
    with pytest.raises(safeio.UnsafeFileError) as refused:
        safeio.resolve_user(name)
    assert 'does not exist on this host' in refused.value.message


def test_an_account_by_name_or_id():
    me = pwd.getpwuid(os.geteuid())
    assert safeio.resolve_user(me.pw_name) == (me.pw_uid, me.pw_gid)
    assert safeio.resolve_user(str(me.pw_uid)) == (me.pw_uid, me.pw_gid)
    assert safeio.resolve_user(None) is None and safeio.resolve_user('') is None
