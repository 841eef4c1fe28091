# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by db_backup, backup_verify (SQL Server VERIFYONLY) and db_restore.
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or address of the server. Unset uses the client's default (PostgreSQL and MariaDB local
        socket, SQL Server C(localhost)). Ignored for SQLite.
    type: str
  login_port:
    description: TCP port. Unset uses the engine's default (5432, 3306, 1433).
    type: int
  login_unix_socket:
    description:
      - Local socket (PostgreSQL socket directory, MariaDB/MySQL socket file). Mutually exclusive with
        O(login_host).
    type: path
  login_user:
    description: User to connect as. Unset uses the client's default (the OS user for PostgreSQL/MariaDB).
    type: str
  login_password:
    description:
      - Password of O(login_user). It reaches tools only through the environment (C(PGPASSWORD)) or a
        temporary C(0600) option file (MariaDB/MySQL C(--defaults-extra-file)), or the ODBC connection
        string for SQL Server, never through the command line, and never appears in results.
      - Mutually exclusive with O(login_option_file).
    type: str
  login_option_file:
    description:
      - A credentials file the user maintains instead of O(login_password). PostgreSQL, a C(.pgpass)
        file (C(PGPASSFILE)); MariaDB/MySQL, an option file included (C(!include)) by the module's own
        temporary C(--defaults-extra-file), so its C([client]) user, password, host and port apply.
      - It must exist and be readable by the user the module runs as, or the task fails naming it (the
        clients would otherwise skip it silently and log in with other credentials).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for a connection before failing with a message naming host and port.
    type: int
    default: 10
  odbc_driver:
    description: SQL Server only. Name of the ODBC driver in odbcinst.ini.
    type: str
    default: ODBC Driver 18 for SQL Server
  trust_server_certificate:
    description: SQL Server only. Accept the server's certificate without validation (C(TrustServerCertificate=yes)).
    type: bool
    default: false
'''
