# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When a certificate is due for renewal.

Default rule (certbot's): renew when less than one third of the lifetime remains. With
``renew_before_days`` set: renew when fewer than that many days remain. ``force`` always renews.
An expired or not-yet-valid certificate is always due.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
from typing import Optional, Tuple

try:
    from cryptography import x509
except ImportError:  # crypto_guard.require() in the module reports it
    pass

from ansible_collections.opsready.operations.plugins.module_utils.certs.inspection import lifetime_left
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

DEFAULT_FRACTION = 1.0 / 3.0


def renewal_due(cert: x509.Certificate, now: datetime.datetime, renew_before_days: Optional[float] = None,
                force: bool = False) -> Tuple[bool, str]:
    """(due, reason) in words an operator can read in a report."""
    if renew_before_days is not None and renew_before_days < 0:
        raise OpsReadyError('renew_before_days must be 0 or more, not %s.' % renew_before_days)
    days, fraction = lifetime_left(cert, now)
    if force:
        return True, 'forced (%.1f days remaining)' % days
    if now >= cert.not_valid_after_utc:
        return True, 'expired %.1f days ago' % -days
    if now < cert.not_valid_before_utc:
        return True, 'not valid before %s (clock or issuance problem)' % cert.not_valid_before_utc.isoformat()
    if renew_before_days is not None:
        if days < renew_before_days:
            return True, '%.1f days remaining, fewer than renew_before_days=%s' % (days, renew_before_days)
        return False, '%.1f days remaining, renew_before_days=%s' % (days, renew_before_days)
    if fraction < DEFAULT_FRACTION:
        return True, '%.1f days remaining, %.0f%% of the lifetime (renews below one third)' % (days, fraction * 100)
    return False, '%.1f days remaining, %.0f%% of the lifetime (renews below one third)' % (days, fraction * 100)
