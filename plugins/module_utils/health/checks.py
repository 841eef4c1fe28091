# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named health checks (process, service, tcp, http, db, command, backup): the registry and every built-in type.

The registry and the validation of a run's checks are ``registry.py``; each built-in type lives with its
transport (``net_check.py``: tcp, http; ``db_check.py``: db; ``host_check.py``: process, service, command;
``backup_check.py``: backup). Importing this module registers them all. A new type is a new file with an
``@register`` class (``from ...health.checks import CheckType, register`` keeps working), imported by
``plugins/modules/health_check.py`` after this module.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

# The built-in types register themselves on import (plain ``from ... import`` statements: Ansible ships the
# module_utils a module needs by reading them).
from ansible_collections.opsready.operations.plugins.module_utils.health.backup_check import BackupCheck  # noqa: F401
from ansible_collections.opsready.operations.plugins.module_utils.health.db_check import (  # noqa: F401
    DbCheck, connection_secrets, describe_connection_string, odbc_string)
from ansible_collections.opsready.operations.plugins.module_utils.health.host_check import (  # noqa: F401
    CommandCheck, ProcessCheck, ServiceCheck, systemd_running)
from ansible_collections.opsready.operations.plugins.module_utils.health.net_check import (  # noqa: F401
    HttpCheck, TcpCheck, percentile)
from ansible_collections.opsready.operations.plugins.module_utils.health.registry import (  # noqa: F401
    COMMON_OPTIONS, MAX_BODY, REGISTRY, CheckType, check_thresholds, ms, normalise, redact_result, register,
    run_spec, suboptions)
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import CRITICAL  # noqa: F401

__all__ = ['REGISTRY', 'register', 'CheckType', 'normalise', 'suboptions', 'run_spec', 'check_thresholds',
           'connection_secrets', 'redact_result', 'CRITICAL', 'COMMON_OPTIONS', 'MAX_BODY', 'ms',
           'BackupCheck', 'DbCheck', 'describe_connection_string', 'odbc_string', 'CommandCheck', 'ProcessCheck',
           'ServiceCheck', 'systemd_running', 'HttpCheck', 'TcpCheck', 'percentile']
