#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_endpoint
short_description: Repoint a PgBouncer database entry or an HAProxy backend server to a new primary
version_added: 0.2.0
description:
  - After M(opsready.operations.db_failover) promoted a new primary, applications that connect through PgBouncer
    or HAProxy reach it once this module rewrote the entry and reloaded the daemon.
  - "O(kind=pgbouncer): the C(host=) and C(port=) of the O(entries) of the C([databases]) section are set (added
    when absent); every other line stays byte for byte. PgBouncer reloads on SIGHUP and closes the server
    connections of a changed entry, so clients reconnect to the new host."
  - "O(kind=haproxy): the address of the C(server) lines named in O(entries) of O(backend) is set; with
    O(validate_command) (e.g. C([haproxy, -c, -f, '%s'])) the new file is checked before it replaces the old one."
  - The file is replaced atomically (a temporary file renamed over it) with the old file's mode and owner.
  - "DNS records and cloud load balancers: see the hook described in docs/failover.md (a task after this one,
    e.g. community.general.nsupdate or the cloud's target-group module, fed with the db_failover result)."
author: opsready developers (@opsready)
options:
  kind:
    description: The client endpoint.
    type: str
    choices: [pgbouncer, haproxy]
    default: pgbouncer
  path:
    description:
      - The configuration file (C(/etc/pgbouncer/pgbouncer.ini), C(/etc/haproxy/haproxy.cfg)).
      - Refused, check mode too, when an account other than root owns or can write a directory above its
        directory (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
    required: true
  entries:
    description: PgBouncer C([databases]) entry names (C(*) is the fallback entry), or HAProxy server names.
    type: list
    elements: str
    required: true
  backend:
    description: O(kind=haproxy). The C(backend) or C(listen) section holding the servers.
    type: str
  host:
    description: The new primary's host name, IP address or (PgBouncer) socket directory.
    type: str
    required: true
  port:
    description: The new primary's port.
    type: int
    default: 5432
  reload:
    description:
      - V(signal) sends SIGHUP (PgBouncer) or SIGUSR2 (HAProxy master) to the pid in O(pid_file) (PgBouncer
        default, its C(pidfile) setting); V(command) runs O(reload_command); V(none) only rewrites the file.
    type: str
    choices: [signal, command, none]
    default: signal
  pid_file:
    description: Pid file of the daemon to signal.
    type: path
  reload_command:
    description: The reload command for O(reload=command) (e.g. C([systemctl, reload, pgbouncer])).
    type: list
    elements: str
  validate_command:
    description: A command that checks the new file before it is put in place; C(%s) is replaced by its path.
    type: list
    elements: str
extends_documentation_fragment:
  - opsready.operations.check_mode
seealso:
  - module: opsready.operations.db_failover
'''

EXAMPLES = r'''
- name: Send PgBouncer's app entry to the promoted node
  opsready.operations.db_endpoint:
    path: /etc/pgbouncer/pgbouncer.ini
    entries: [app]
    host: "{{ promoted_host }}"
    port: 5432

- name: HAProxy backend
  opsready.operations.db_endpoint:
    kind: haproxy
    path: /etc/haproxy/haproxy.cfg
    backend: pg_primary
    entries: [primary]
    host: 10.0.0.2
    port: 5432
    validate_command: [haproxy, -c, -f, "%s"]
    reload: command
    reload_command: [systemctl, reload, haproxy]
'''

RETURN = r'''
changes:
  description: The entries changed, each with entry, before and after (the whole line).
  returned: always
  type: list
  elements: dict
reload:
  description: How the daemon was reloaded.
  returned: when changed and not in check mode
  type: str
reloaded_pid:
  description: The pid that received the reload signal.
  returned: when reload=signal and changed
  type: int
'''

import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.replication import endpoint  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kind=dict(type='str', default='pgbouncer', choices=list(endpoint.KINDS)),
            path=dict(type='path', required=True),
            entries=dict(type='list', elements='str', required=True),
            backend=dict(type='str'),
            host=dict(type='str', required=True),
            port=dict(type='int', default=5432),
            reload=dict(type='str', default='signal', choices=['signal', 'command', 'none']),
            pid_file=dict(type='path'),
            reload_command=dict(type='list', elements='str'),
            validate_command=dict(type='list', elements='str'),
        ),
        required_if=[('kind', 'haproxy', ['backend']), ('reload', 'command', ['reload_command'])],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    runner = ToolRunner()
    try:
        result = endpoint.repoint(p['kind'], p['path'], p['entries'], p['host'], p['port'], p['reload'],
                                  p['pid_file'], p['reload_command'] or [], p['backend'],
                                  p['validate_command'] or [], module.check_mode, runner)
        if not module._diff:
            result.pop('diff', None)
        module.exit_json(**result)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except Exception as exc:  # noqa: BLE001
        module.fail_json(msg='db_endpoint failed unexpectedly: %s' % exc, exception=traceback.format_exc())


if __name__ == '__main__':
    main()
