# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions that modules turn into ``fail_json`` messages.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Any, Dict, Optional


class OpsReadyError(Exception):
    """An error whose message is fit to show an operator: it says what failed and what to do."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: Dict[str, Any] = details

    def as_fail_kwargs(self) -> Dict[str, Any]:
        result = dict(self.details)
        result['msg'] = self.message
        return result


class ToolError(OpsReadyError):
    """An external tool failed; ``stderr`` is already redacted."""

    def __init__(self, message: str, rc: Optional[int] = None, stderr: str = '', cmd: Optional[list] = None) -> None:
        super().__init__(message, rc=rc, stderr=stderr, cmd=cmd or [])
        self.rc = rc
        self.stderr = stderr


class IntegrityError(OpsReadyError):
    """An artifact does not match its manifest (checksum, size, engine check)."""


class CatalogError(OpsReadyError):
    """The catalog cannot answer: missing chain piece, no full backup, point outside the window."""
