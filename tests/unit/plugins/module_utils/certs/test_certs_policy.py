"""The renewal window: certbot's one-third rule, renew_before_days, force, expired."""

from __future__ import annotations

import pytest
from pki import CA, now

from ansible_collections.opsready.operations.plugins.module_utils.certs.policy import renewal_due
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


@pytest.fixture(scope='module')
def ca():
    return CA()


@pytest.mark.parametrize('days_left, lifetime, before, force, due', [
    (5, 90, None, False, True),       # 5/90 < 1/3
    (29, 90, None, False, True),      # just under a third
    (31, 90, None, False, False),     # just over a third
    (200, 365, None, False, False),
    (-1, 90, None, False, True),      # expired
    (200, 365, 30, False, False),
    (20, 365, 30, False, True),
    (60, 90, 30, False, False),       # renew_before_days replaces the one-third rule
    (200, 365, None, True, True),
])
def test_window(ca, days_left, lifetime, before, force, due):
    cert, _key = ca.issue('x.test', days_left, lifetime)
    got, reason = renewal_due(cert, now(), before, force)
    assert got is due, reason


def test_negative_renew_before_days_is_refused(ca):
    cert, _key = ca.issue('x.test', 10)
    with pytest.raises(OpsReadyError, match='renew_before_days'):
        renewal_due(cert, now(), -1)
