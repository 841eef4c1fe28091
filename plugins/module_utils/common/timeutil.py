# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""UTC timestamps in one format everywhere (manifests, reports, file names).

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import datetime
from typing import Optional

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

UTC = datetime.timezone.utc


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def isoformat(moment: datetime.datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z: sortable as text, exact as a time."""
    return moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def stamp(moment: Optional[datetime.datetime] = None) -> str:
    """Compact UTC timestamp for file names (sortable): 20261129T004512Z."""
    return (moment or utcnow()).astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')


def parse_time(text: str, what: str = 'time') -> datetime.datetime:
    """Parse ISO 8601; a time without a zone is refused because it is ambiguous across hosts."""
    value = text.strip()
    if value.endswith('Z') or value.endswith('z'):
        value = value[:-1] + '+00:00'
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise OpsReadyError('%s %r is not an ISO 8601 time (e.g. 2026-11-29T10:15:00+00:00).' % (what, text))
    if moment.tzinfo is None:
        raise OpsReadyError('%s %r has no time zone: add one (Z or +HH:MM), it is ambiguous without.' % (what, text))
    return moment.astimezone(UTC)
