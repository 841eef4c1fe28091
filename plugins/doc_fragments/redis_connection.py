# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The connection options of the Redis modules (module_utils/engines/redis/client.py connection_argument_spec).
    DOCUMENTATION = r'''
options:
  host:
    description: Redis host name or address.
    type: str
    default: 127.0.0.1
  port:
    description: Redis TCP port.
    type: int
    default: 6379
  unix_socket:
    description: Path of the Redis Unix socket (used instead of O(host) and O(port)).
    type: path
  username:
    description: ACL user name (Redis 6+); without it the C(default) user.
    type: str
  password:
    description:
      - The password (C(requirepass) or the ACL user's). It reaches C(redis-cli) in the C(REDISCLI_AUTH)
        environment variable, never on its command line.
    type: str
  tls:
    description: Connect with TLS (C(redis-cli --tls)).
    type: bool
    default: false
  cacert:
    description: CA certificate file for O(tls).
    type: path
  connect_timeout:
    description: Seconds to wait for Redis to answer a command.
    type: int
    default: 10
requirements:
  - C(redis-cli) on the managed host (Debian C(redis-tools), RPM C(redis)).
'''
