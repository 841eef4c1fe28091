#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: db_restore
short_description: Restore a database from the backup catalog, to the newest backup or to a point in time
version_added: 0.1.0
description:
  - Picks the chain to restore from the catalog written by M(opsready.operations.db_backup) in O(src),
    either the newest chain, a named O(artifact) (with the full backup a differential depends on), or the
    chain that reaches O(stop_at) (full, then logs / WAL).
  - Before the target is touched, the size and SHA-256 of every piece of the chain are checked against
    their manifests; a missing or corrupt piece stops the restore and is named in the message.
  - The restore runs under a temporary name and is swapped in only when it completed, so a failed restore
    leaves the target as it was (or absent), never half-restored under its real name.
  - An existing target that holds data is refused unless O(replace=true).
  - "PostgreSQL, logical: C(pg_restore -j) O(jobs) into C(<database>__opsready_restore_<id>), then the old
    database (if any) is renamed aside and the restored one (analyzed, C(ANALYZE)) renamed to O(database) in
    one transaction, then the old one dropped. Directory-format dumps are read in place; custom-format dumps
    are decompressed into O(tmpdir) for O(jobs) above 1 or streamed into C(pg_restore) for O(jobs=1). When
    the module reads the artifact itself (stream or decompressed copy) it compares the SHA-256 in that same
    read, and the copy is used, or the temporary database swapped in, only after it matched; a mismatch
    drops them and fails with the verify phase (size is still checked before anything is created)."
  - "PostgreSQL, logical, the database itself: the temporary database is created with the encoding and locale
    of the backed-up one (and in its tablespace when this server has one of that name; else in the default
    one, listed in RV(database_properties) C(skipped)), and before the swap it gets the owner, ACL (for
    example C(REVOKE CONNECT ... FROM PUBLIC)), comment, connection limit, C(ALTER DATABASE ... SET) and
    C(ALTER ROLE ... IN DATABASE ... SET) recorded in the manifest when the backup was taken (backups taken
    before this was recorded restore without them, and RV(database_properties) says so); a dropped
    C(public) schema stays dropped, and a template database (C(IS_TEMPLATE)) is a template again once it has
    its name."
  - "PostgreSQL, logical, what the load computes and reads: the dump is loaded with the session settings the
    backed-up database had (C(TimeZone), C(DateStyle), C(IntervalStyle), C(extra_float_digits), its own
    C(ALTER DATABASE ... SET lc_numeric/lc_time)), so materialized views, generated columns and expression
    indexes come out as at the source. Money values are dumped with C(lc_monetary=C) by
    M(opsready.operations.db_backup) and read back with it, whatever C(lc_monetary) the source database or
    either server has (backups taken before this was recorded were dumped in the source session's monetary
    format and load only under the same one). A database whose C(default_text_search_config) is a
    configuration of its own is loaded in two passes from custom and directory dumps (the schema, which creates
    it, then the data and post-data with it in effect; a compressed custom dump is decompressed into O(tmpdir)
    for it); a plain dump cannot be, and RV(database_properties) C(skipped) says so. Every load runs with
    C(array_nulls=on) (a target server set to V(off) read an array's C(NULL) element as the string C('NULL')).
    The locales the database's and its roles' C(lc_*) settings name are tried on the target server first: a
    missing one stops the restore before anything is created. Extensions the source kept at a version other than
    this server's default are created at it before the load (C(pg_dump) writes C(CREATE EXTENSION) without a
    version) when their schema exists then (V(public), V(pg_catalog)); otherwise RV(database_properties)
    C(skipped) names them."
  - "PostgreSQL, logical: when the load fails after the dump created logical replication subscriptions in the
    temporary database, their copies are dropped (C(slot_name = NONE): the replication slot on the publisher
    is the backed-up database's and is left alone) so that the temporary database can be dropped too."
  - "PostgreSQL, logical, the database's own event triggers: a superuser's load runs with
    C(session_replication_role=replica), so an event trigger the dump creates (a DDL freeze, a DDL audit log) neither
    refuses nor logs the load's later statements (C(REFRESH MATERIALIZED VIEW)); they stay disabled while the restore
    sets what pg_dump does not carry in the copy, and get their own state back (C(ENABLE), C(ENABLE REPLICA),
    C(ENABLE ALWAYS)) before the swap. On PostgreSQL 17 and later every session of a superuser's restore in the copy
    and the target starts with C(event_triggers=off): no event trigger of any mode fires on them, login triggers
    included. Before PostgreSQL 17 no setting silences one set to C(ENABLE REPLICA) or C(ENABLE ALWAYS) (a logical
    subscriber's DDL guard): a custom or directory format backup is loaded with the event triggers created after
    everything else (after C(REFRESH MATERIALIZED VIEW), which pg_dump puts after C(CREATE EVENT TRIGGER)), any
    O(jobs); a plain format backup is one psql script run in pg_dump's order, so such a trigger fires at its
    C(REFRESH MATERIALIZED VIEW) (a guard that refuses DDL fails the restore with its message and what to do,
    nothing changed; an audit trigger logs the refresh, and the result warns so): back up in custom or directory
    format, set it C(ENABLE) or disable it in the source before the backup, or restore on PostgreSQL 17+."
  - "PostgreSQL, logical, a restore by a role that is not a superuser (the database's owner with C(CREATEDB), as on a
    managed service): a C(GRANT) or C(REVOKE) of the backup on an object that role neither owns nor holds the grant
    option of (a language, a function in C(pg_catalog), a schema, a large object, a foreign data wrapper, ...) is
    applied by PostgreSQL in part or not at all, with a warning and no error (C(no privileges could be revoked for
    \"plpgsql\")). The load goes on; the run collects those warnings from C(pg_restore) (run with C(--verbose) for
    it) and C(psql), lists them in RV(privileges_not_restored) and warns once, with how many, the objects (the first
    20) and what to do - restore as a superuser or as the objects' owner, or apply the source's C(GRANT)/C(REVOKE)
    by hand. A lost C(REVOKE) leaves the object more open in the restored database than in the source. Check mode
    cannot foresee them (the server decides statement by statement during the load). In any language of the
    server's messages (C(lc_messages) set for the server, the database or the role): a role that may set
    C(lc_messages) (a superuser, or C(GRANT SET ON PARAMETER lc_messages) on PostgreSQL 15+) loads with
    C(lc_messages=C); otherwise C(pg_restore)'s output is read for any server message while an ACL entry of the
    backup runs (the entry names the object), and a plain dump's C(psql) runs with C(VERBOSITY=verbose), whose
    SQLSTATE (C(01006), C(01007)) tells such a warning in every language."
  - "PostgreSQL, logical: the roles the backup refers to (owners, grantees, roles of row-level security
    policies) are looked up on the target server first; missing ones stop the restore before anything is
    created, naming them."
  - "PostgreSQL, O(source_database=@globals): the C(pg_dumpall --globals-only) backup is applied to the server
    itself, not to a database. Roles and tablespaces missing on the server are created (with their
    attributes, passwords, memberships and privileges on parameters); roles that exist are left exactly as
    they are, and a privilege on a parameter (C(GRANT SET ON PARAMETER)) the backup gives one of them that the
    server lacks is named in RV(restore_warnings). The result lists C(target.roles_created) and
    C(target.roles_existing). O(database) is the database to connect to (for example V(postgres))."
  - "PostgreSQL, physical (point-in-time recovery, when O(datadir) is set): the base backup is extracted
    into a staging directory next to O(datadir), the archived WAL segments the chain needs are staged for
    C(restore_command), C(recovery_target_time) is set to O(stop_at), and a temporary server is started on
    O(port) (a free one when unset), recovers, is promoted, and is left running or stopped as
    O(server_state) says. A backup without C(pg_hba.conf) gets a minimal one - local C(peer) and password
    logins on 127.0.0.1, the only address the server listens on."
  - "A restore to the newest point (no O(artifact), no O(stop_at)) fails on a gap in the WAL or binary logs,
    naming the missing file, instead of stopping before it. A refusal before the target was touched (a missing
    or corrupt piece, a key that does not open it) carries C(phase=verify)."
  - "MariaDB/MySQL: the dump is loaded into a temporary database created with the source's default
    character set and collation, the binary logs of the chain are replayed into it with
    C(mariadb-binlog --rewrite-db --stop-datetime) up to O(stop_at) (with new GTIDs of this server, never
    the source's), then its tables are moved into O(database) with one atomic C(RENAME TABLE) and its
    views, routines, triggers and events are recreated there from C(mariadb-dump) of the copy (definers
    and C(sql_mode) kept), and it gets the source's database COMMENT; a failure at any swap step undoes the
    earlier ones. Before the replay, the statements of the log range are read (C(mariadb-binlog --short-form));
    one that names the source database as a qualifier (C(ALTER TABLE src.t ...), C(DROP DATABASE src)), or that
    runs with C(USE src) and names another database, fails the restore before anything is swapped: the replay
    keeps and renames statements only by their default database, so it would have skipped it or run it against
    a live database. Maintenance (C(ANALYZE)/C(OPTIMIZE TABLE)) and grants sent without C(USE src) pass.
    Restore to a point before it or from a later full."
  - "MariaDB/MySQL, the grants naming the database (C(GRANT ... ON src.*), on its tables, columns and routines;
    kept by the server, not in the dump): the backup records them and, once the restored database has its name,
    the same accounts get the same privileges on it, one C(GRANT) at a time (GRANT adds: an account's other
    privileges on an existing target stay). Under another name the database-level grant names that database
    exactly (C(_) and C(%) escaped); under the source's own name it is the source's row. Accounts and roles
    missing on the target server are not created: RV(grants) C(skipped) names them. Grants on patterns that
    match other databases too (C(src%.*)) are not the database's and are left out. O(state=absent) drops the
    database and then revokes every privilege naming it exactly (the server keeps them past C(DROP DATABASE), and
    a database created later under the name would be open to the accounts they name): RV(revoked) lists them,
    patterns that only match the name are left alone. A point-in-time restore whose replayed logs take
    privileges on the source away after the dump (C(REVOKE ... ON src...), C(REVOKE ALL PRIVILEGES, GRANT OPTION),
    C(DROP USER), C(CREATE OR REPLACE USER)) withholds what they took (a C(REVOKE INSERT) leaves C(SELECT) granted,
    of C(ALL) too; a privilege revoked on a table goes from its columns too; every privilege of an account a
    statement names whose privileges cannot be read): RV(grants) C(withheld) and a warning name them. A
    C(RENAME USER) gives the privileges to the new name. A C(GRANT ... ON src...) in the logs is given to the
    restored database when the replay reaches it (RV(grants) C(from_binlogs)); one the server refuses, whose account
    is missing, or that cannot be read is named in a warning. A C(GRANT)/C(REVOKE) naming no database (C(ON t),
    C(ON *)) is read as the database it was sent with (its C(USE)). Account statements (C(GRANT), C(REVOKE),
    C(CREATE)/C(ALTER)/C(DROP)/C(RENAME USER) or C(ROLE), C(SET PASSWORD), C(SET DEFAULT ROLE)) are never run by
    the replay, even sent with C(USE src): accounts are the server's, not the database's; no password they hold
    appears in a result or warning. A restore over an existing
    database grants the privileges its accounts held on its routines again on the routines of the same kind and
    name it puts back (the server revokes them as it drops each routine); those on routines the backup does not
    hold are named in a warning."
  - "MariaDB/MySQL, a column whose default draws from a sequence (C(DEFAULT NEXT VALUE FOR seq)): the dump names the
    source database in it (C(nextval(`src`.`seq`))); the restored table's default names the restored database's
    own sequence (it drew from the source's), and the dump's C(LOCK TABLES) around the data, which made such a
    table's rows fail to load (C(Table 'seq' was not locked with LOCK TABLES)), are left out of the load."
  - "SQLite: the backup is decompressed into a private directory in O(tmpdir), C(PRAGMA integrity_check) run on
    it there, copied next to O(database) and renamed into place (the old file and its C(-wal)/C(-shm) removed),
    all relative to a descriptor of the database's directory (a link another account planted on the way to it is
    refused). The target itself is looked at there too, in check mode as in the run: a symlink at its name is refused
    (name the file itself), so is anything but a regular file, and a directory this user cannot write (read-only
    mount, immutable). O(tmpdir) needs room for one copy of the database. Stop the application first: a target another
    process has open (an SQLite lock on it, or an open descriptor this user may see) is refused, as its writes
    would go on into the old, removed file and be lost. The
    restored file gets the mode and owner of the file it replaces or, where there is none (the file was lost),
    those the source file had when it was backed up (recorded in the manifest; backups taken before this was
    recorded restore such a file as C(0600), owned by the module's user)."
  - "SQL Server (through pyodbc; NOT YET RUN AGAINST A LIVE SERVER, tested against a recording fake, see
    docs/sqlserver.md): C(RESTORE VERIFYONLY WITH CHECKSUM) of every piece, C(RESTORE FILELISTONLY) for the
    logical file names, then C(RESTORE DATABASE) of the full (and differential) C(WITH NORECOVERY, MOVE) into
    C(<database>__opsready_restore_<id>) with the files in the instance's default data/log directories,
    C(RESTORE LOG WITH NORECOVERY) for each log (C(STOPAT) on the last, in the server's local time),
    C(WITH RECOVERY), then C(ALTER DATABASE ... MODIFY NAME) into O(database) (an existing one is set
    C(SINGLE_USER WITH ROLLBACK IMMEDIATE), renamed aside and dropped). The server reads the backup files
    itself, so O(src) must be a path the server can read."
  - O(state=absent) removes a restored scratch target (database, SQLite file, or PITR data directory after
    stopping its server), which is how DR drills clean up.
  - PostgreSQL logical and MariaDB restores - a run killed on the way (no clean-up runs) leaves its temporary
    database C(<database>__opsready_restore_<id>), a full copy of the data (or, killed between the swap and the
    end, the old contents renamed aside, C(<database>__opsready_old_<id>)). Both carry a COMMENT naming their
    target from their creation on; the next run into that target (a restore or O(state=absent)), holding the
    target's lock so that no other run into it is live, drops them and lists them in C(dropped_stale) (MariaDB -
    an aside database, which a swap killed half-way may have left holding the only old tables, is reported in
    C(kept_stale) with a warning instead). A database
    with such a name but without that marker is never dropped (MySQL, without database comments, marks nothing).
  - Encrypted backups (M(opsready.operations.db_backup) O(opsready.operations.db_backup#module:encrypt=true))
    are decrypted on the fly with O(identity) or O(identity_file). The key is tried on every piece of the
    chain before the target is created, so a missing or wrong key fails naming the artifact and writes
    nothing; every piece is authenticated to its last byte while it is restored (a tampered piece fails and
    the temporary target is dropped).
author: opsready developers (@opsready)
options:
  engine:
    description: The database engine of the backups.
    type: str
    required: true
    choices: [postgresql, mariadb, mysql, sqlite, sqlserver]
  src:
    description: The backup directory (the O(opsready.operations.db_backup#module:dest) of the backups).
    type: path
    required: true
  database:
    description:
      - The target database name (SQLite, the path of the target file). It may differ from the backed-up
        database, and the server may be another one (set the login options accordingly).
      - Required unless O(datadir) is set.
    type: str
  source_database:
    description:
      - Which backup set of the catalog to restore (the database name recorded in the manifests; SQLite, the
        path of the backed-up file). Defaults to O(database).
    type: str
  origin:
    description:
      - Which source server's backups to restore when the backup set holds backups of several servers (two hosts
        backing up a database of the same name into one shared O(src)). The value is the manifests' C(origin)
        (M(opsready.operations.backup_info) lists each set's C(origins)); C(unknown) names the backups written
        before origins were recorded when several servers write the set.
      - Without it such a restore fails and names the origins (a chain never mixes two servers, and which
        server's data is meant is never guessed). A set written by one server needs no O(origin).
      - V(newest) (reserved) declares the set's origins B(successive) - one server whose identity changed - a
        PostgreSQL cluster upgraded with pg_upgrade or re-created with initdb (new system identifier), a renamed
        MariaDB, SQLite or file host. The newest point is then the newest origin's; a O(stop_at) or O(artifact)
        of an older origin's time restores from that origin (a chain never crosses two). A warning names the
        predecessors and when the identity changed. While the newest origin has no full backup yet the restore
        fails (its logs restore nothing without one), naming the predecessor to choose knowingly.
      - V(newest) is refused, naming the origins and their times, when their backups overlap in time (every backup
        of an older origin must be older, by C(consistent_at), than the first of the next) - that is two live
        servers writing one set, not a succession, and which one is meant stays your choice.
    type: str
  artifact:
    description: Restore this artifact (its id, the file name in O(src)) instead of the newest chain.
    type: str
  stop_at:
    description:
      - Point in time to recover to, ISO 8601 with a time zone (V(2026-11-29T10:15:00Z),
        V(2026-11-29T11:15:00+01:00)); a time without a zone is refused.
      - Outside the recoverable window (RV(opsready.operations.backup_info#module:window)) the task fails before any
        work and the message gives the window; every instant inside it restores, both ends included.
      - PostgreSQL replays every transaction committed at or before O(stop_at); when none committed after it
        in the archived WAL, the whole archive is replayed (RV(recovery_target) V(end_of_archive)).
      - MariaDB binary log events carry whole seconds; events in the second of O(stop_at) are not replayed.
    type: str
  replace:
    description:
      - Allow replacing an existing target that holds data (a non-empty file).
      - PostgreSQL, a database holding anything created in it (tables, views, sequences, schemas, functions,
        types, large objects, operators, collations, text search objects, casts, event triggers, publications,
        foreign servers, default privileges, access methods, languages, transforms) or configured by a DBA (the
        V(public) schema's owner, grants or comment changed from what a new database of the server gets, database
        settings C(ALTER DATABASE ... SET) or C(ALTER ROLE ... IN DATABASE ... SET), a database comment or security
        label); extensions alone (and their members) do not count, so a database prepared with C(CREATE EXTENSION)
        (or created with an owner) is filled without O(replace).
    type: bool
    default: false
  jobs:
    description: PostgreSQL logical restores, parallel C(pg_restore) jobs (C(-j)).
    type: int
    default: 1
  no_owner:
    description:
      - PostgreSQL logical restores, C(--no-owner --no-privileges) (restore into a server that lacks the roles).
        The database's owner and the roles' entries of its ACL are not set either; what PUBLIC may do on it
        (C(CONNECT), C(TEMPORARY)) is set as backed up, so a database closed to PUBLIC stays closed, and
        RV(restore_warnings) names each role whose database grants were left out (a role that connected through its
        own C(CONNECT) grant cannot connect to the restored database until it is granted again; a role of that name
        on this server need not be the one meant, so no_owner does not grant it). Roles named by
        row-level security policies must still exist; when they do not, the restore stops before loading and names
        them.
      - A plain-format (SQL script) backup cannot be restored without its owners and grants (psql runs the script
        as it is), so O(no_owner=true) with one is refused before anything is created.
    type: bool
    default: false
  events:
    description:
      - MariaDB/MySQL - the status the restored database's events get. V(source) - the status each had when it was
        backed up (an enabled event runs on the target's schedule once the restore is done). V(disabled) - every
        event disabled, for scratch copies such as a DR drill's (the role sets it) - an event's body may name other
        databases on the same server, the production one among them, and a copy must not run the source's jobs.
      - Other engines ignore it.
    type: str
    choices: [source, disabled]
    default: source
  foreign_servers:
    description:
      - PostgreSQL logical restores - what becomes of the foreign servers (C(postgres_fdw), C(dblink_fdw), other
        wrappers) and user mappings the restored database holds. A dump carries them as they were - host, database
        and the user mappings' passwords of the backed-up database's remote, often a production server - so a
        restored copy's foreign tables read and write that remote. Either way the result lists them
        (RV(foreign_servers)) and a warning names them.
      - V(keep) - as they were (a restore that replaces the database in place).
      - V(disable) - before the copy takes the target's name, each libpq-based server (C(postgres_fdw),
        C(dblink_fdw)) gets C(host) set to a Unix socket directory that does not exist (C(hostaddr) and C(service)
        dropped), so a connection fails at once, and the passwords of its user mappings are removed; a server of
        another wrapper loses its user mappings and gets its address options (C(host), C(hostaddr), C(address),
        C(server), C(servername), C(dbserver), C(dsn), C(url), C(uri)) set to that directory too (its other options
        are left, and the result says so). Each logical replication subscription (which the dump writes disabled
        but with the source's connection string, password included, and the publisher's replication slot) gets a
        connection string to that directory (port, dbname and user kept, no password) and C(slot_name = NONE), so
        C(ALTER SUBSCRIPTION ... ENABLE) in the copy is refused instead of streaming from the slot the source's
        subscriber uses. For scratch and test copies such as a DR drill's (the C(dr_drill) role sets it).
      - Either way the restored subscriptions are listed (RV(subscriptions)), and a warning names the functions and
        views that call dblink with an inline connection string (C(dblink('host=... dbname=...', ...))) - no
        server stands between them and their remote, so V(disable) cannot reach them.
      - A materialized view over a foreign table is refreshed by the load itself, before the servers are disabled.
      - Other engines ignore it.
    type: str
    choices: [keep, disable]
    default: keep
  tmpdir:
    description:
      - Scratch space for decompressed copies (PostgreSQL custom-format dumps with O(jobs) above 1, MariaDB binary
        logs, the SQLite file checked before it is copied into place). Defaults to the system temporary directory.
      - A copy is plaintext (an encrypted backup decrypted), so it is written in a 0700 directory
        C(opsready-scratch-<kind>-*) as a 0600 file, removed on every exit path (a removal that fails is a warning and
        C(scratch_left)); one a killed run left is removed by the next run (C(removed_scratch)).
      - A private 0700 directory is made in it; a O(tmpdir) that another account owns or can write (unless sticky,
        as C(/tmp) is), or one below such a directory, is refused before anything is made, since that account could
        rename the private directory and put a link at its name, and root would write the decompressed data there.
    type: path
  datadir:
    description:
      - PostgreSQL only. Restore the cluster physically (base backup + WAL) into this data directory, which
        must not exist or be empty (or O(replace=true) with no server running on it).
    type: path
  target_timeline:
    description:
      - PostgreSQL physical restores, the timeline to recover along after a promotion or an earlier point-in-time
        recovery forked a new one (C(recovery_target_timeline), as pgBackRest's C(--target-timeline)) - V(latest)
        (the newest timeline the catalog holds), V(current) (the base backup's) or a timeline number (V(1)).
        The chain then holds only the WAL segments on that timeline's path (its history file in
        C(<src>/pg_wal_extra/) says where each earlier timeline ended).
      - Unset, the newest timeline is followed, and an O(stop_at) on an older timeline after its fork and before
        the end of its archived WAL (transactions the newest timeline does not hold) is refused, in check mode
        too, naming both choices.
    type: str
  port:
    description: PostgreSQL physical restores, port of the temporary server (a free one when unset).
    type: int
  server_state:
    description: PostgreSQL physical restores, leave the recovered server V(started) or V(stopped).
    type: str
    choices: [started, stopped]
    default: started
  state:
    description:
      - V(present) restores. V(absent) removes the target (drops the database, deletes the SQLite file, or stops
        the server of O(datadir) and deletes it), for scratch restores of DR drills.
      - PostgreSQL, V(absent) of a restored subscriber database - its subscriptions came back disabled - drops
        them first (C(slot_name = NONE), leaving the publisher's slot, which belongs to the backed-up database);
        an enabled subscription is refused before anything is dropped.
    type: str
    choices: [present, absent]
    default: present
  identity:
    description:
      - The age private key (C(AGE-SECRET-KEY-1...)) that decrypts encrypted backups; keep it in Ansible
        Vault. Needed only for backups written with C(encrypt=true).
    type: str
  identity_file:
    description:
      - A file on the managed host holding age private keys (the output of C(age-keygen)); used together
        with O(identity) if both are given.
    type: path
extends_documentation_fragment:
  - opsready.operations.db_connection
  - opsready.operations.check_mode
notes:
  - Check mode plans the chain, verifies every checksum, checks the target (connection, refusal without
    O(replace)) and writes nothing.
  - MariaDB/MySQL - one restore (or O(state=absent)) at a time per target database and server, whichever host
    runs it - a run holds a server user lock (C(GET_LOCK)) named after the target until it ends; a second run
    fails at once, changing nothing, and names the connection holding the lock.
  - PostgreSQL - the same rule for a database restore (or O(state=absent)), with a session-level advisory lock
    (C(pg_try_advisory_lock)) keyed on the target's name, held in the maintenance database C(postgres) by a session
    of its own; it ends with that session, so a run that crashed cannot leave it held. The error names the
    backend pid holding it; that session turns C(idle_session_timeout) off for itself.
  - PostgreSQL point-in-time recovery (O(datadir)) and SQLite - one restore (or O(state=absent)) at a time per
    O(datadir) or target file, on its host - a run holds an exclusive C(flock) on a hidden C(.<name>.opsready-lock)
    file beside the target (never followed through a symlink), removed when the run ends; a second run fails at
    once, changing nothing. The kernel releases the lock of a run that crashed.
  - A restore always reports C(changed=true); O(state=absent) reports a change only when something was removed,
    and a PostgreSQL C(@globals) restore only when it created a role, membership or tablespace.
seealso:
  - module: opsready.operations.db_backup
  - module: opsready.operations.backup_info
  - module: opsready.operations.backup_verify
'''

EXAMPLES = r'''
- name: Restore the newest dump of app into app_restored on the same server
  opsready.operations.db_restore:
    engine: postgresql
    src: /var/backups/opsready/pg
    source_database: app
    database: app_restored
    jobs: 4
    login_host: db1.example.com
    login_user: postgres
    login_password: "{{ vault_pg_password }}"

- name: Put app back as it was at 10:15 UTC (MariaDB dump + binlogs), over the damaged database
  opsready.operations.db_restore:
    engine: mariadb
    src: /var/backups/opsready/mariadb
    database: shop
    stop_at: "2026-11-29T10:15:00Z"
    replace: true
    login_option_file: /root/.my-restore.cnf

- name: Point-in-time recovery of the cluster into a scratch server on port 55432
  opsready.operations.db_restore:
    engine: postgresql
    src: /var/backups/opsready/pg
    datadir: /srv/pitr/data
    port: 55432
    stop_at: "2026-11-29T10:15:00+00:00"

- name: On a new server, create the roles first (missing ones only; existing roles are not changed)
  opsready.operations.db_restore:
    engine: postgresql
    src: /var/backups/opsready/pg
    source_database: "@globals"
    database: postgres
    login_host: db2.example.com
    login_user: postgres

- name: Drop the scratch copy afterwards
  opsready.operations.db_restore:
    engine: postgresql
    src: /var/backups/opsready/pg
    database: app_restored
    state: absent

- name: SQLite file back from its newest backup
  opsready.operations.db_restore:
    engine: sqlite
    src: /var/backups/opsready/sqlite
    database: /srv/app/app.db
    replace: true

- name: Restore an encrypted dump with the restore key from Vault
  opsready.operations.db_restore:
    engine: postgresql
    src: /var/backups/opsready/pg
    source_database: app
    database: app_restored
    identity: "{{ vault_backup_age_identity }}"
'''

RETURN = r'''
target:
  description: What was restored (or removed) - database name, server, and for PITR the data directory, port and pid.
  returned: always
  type: dict
  sample: {database: app_restored, server: "db1.example.com:5432", host: db1.example.com, port: 5432, objects: 12}
chain:
  description: The artifacts restored, in order, each with id, kind, path, consistent_at, size, sha256, position.
  returned: always
  type: list
  elements: dict
chain_ids:
  description: The ids of RV(chain), in order.
  returned: when state=present
  type: list
  elements: str
verification:
  description: Checksum result of every piece of the chain (verified before the target was touched).
  returned: when state=present
  type: list
  elements: dict
point_reached:
  description:
    - The point in time (UTC, ISO 8601) the restored data reflects.
    - PostgreSQL PITR - the last transaction replayed (its commit time).
    - MariaDB/MySQL with O(stop_at) - the second of O(stop_at) (every event stamped before it was replayed), or the
      end of the logs when they end before it. Where the replay stopped at an event stamped at or after O(stop_at)
      that transactions of the database stamped before it follow (a session's SET TIMESTAMP, a replica's applier),
      those were not replayed and this is RV(recovered_point) (the last event replayed), with a warning.
    - MariaDB/MySQL without O(stop_at) - the end of the logs; where an event is stamped after the logs were backed
      up (a session's SET TIMESTAMP ahead), RV(recovered_point) (no later than the log backup), with a warning.
  returned: when state=present
  type: str
  sample: "2026-11-29T10:15:00.000000Z"
recovery_target:
  description:
    - PostgreSQL PITR - V(time) when recovery stopped at O(stop_at), V(end_of_archive) when it replayed all
      archived WAL of the chain (no O(stop_at), or no transaction committed after it).
  returned: PostgreSQL PITR
  type: str
stop_at_after_last_transaction:
  description: PostgreSQL PITR - O(stop_at) was at or after the last transaction in the archived WAL.
  returned: PostgreSQL PITR
  type: bool
recovered_point:
  description:
    - The instant the restored data provably reaches, read back from the restore itself (not the catalog) -
      C(at) (UTC, ISO 8601) and C(source) (how it was read). DR drills measure the RPO from it.
    - PostgreSQL PITR - C(pg_last_xact_replay_timestamp()) of the recovered cluster (the end of the last
      transaction replayed), or the end of the base backup when none was replayed after it.
    - MariaDB/MySQL with binary logs - the time stamp of the last binary log event of the database replayed, or
      the dump's consistent point when none followed it.
  returned: PostgreSQL PITR and MariaDB/MySQL restores
  type: dict
  sample: {at: "2026-11-29T10:14:58.123456Z", source: "pg_last_xact_replay_timestamp() of the recovered cluster"}
catalog_read_at:
  description: When the catalog was read to choose the chain (UTC, ISO 8601); DR drills measure the RPO from it.
  returned: when state=present
  type: str
last_transaction_replayed:
  description: PostgreSQL PITR - commit time of the last transaction replayed.
  returned: PostgreSQL PITR, when a transaction was replayed
  type: str
raised_settings:
  description:
    - PostgreSQL PITR - settings the WAL says the source ran with higher than the backed-up postgresql.conf
      (max_connections, max_worker_processes, ...), raised to the source's values on the recovered copy so
      recovery could go on.
  returned: PostgreSQL PITR, when any was raised
  type: dict
  sample: {max_connections: 200}
timeline_history:
  description:
    - PostgreSQL PITR - the timeline history files (from C(<src>/pg_wal_extra/), where the WAL archive helper keeps
      them) staged for the recovery so it follows a promotion onto the newer timeline.
  returned: PostgreSQL PITR, when the chain's WAL crosses a timeline switch (in check mode, inside RV(target))
  type: list
  elements: str
  sample: ["00000002.history"]
stop_at:
  description: O(stop_at) normalised to UTC, or null.
  returned: always
  type: str
method:
  description: V(logical) or V(physical) (PostgreSQL base backup + WAL).
  returned: always
  type: str
replaced:
  description:
    - Whether an existing target holding data was replaced.
    - In check mode (MariaDB/MySQL), whether a real run would replace one; C(target.existing) counts its tables
      and views, routines, triggers and events (null when the target database does not exist).
  returned: always
  type: bool
wall_seconds:
  description: Wall time of the whole task, in seconds.
  returned: always
  type: float
restore_seconds:
  description: Seconds spent restoring (after planning and checksum verification).
  returned: when a restore ran
  type: float
phases:
  description: Seconds per phase (plan, verify_checksums, pg_restore, replay, swap, ...).
  returned: always
  type: dict
database_properties:
  description:
    - PostgreSQL logical restores of a database, the database-level properties that were applied (owner, acl,
      comment, settings, connection_limit), C(restored) (false with a C(reason) for backups that predate their
      recording) and C(skipped) (settings of roles missing on the target, a tablespace or an extension version
      that could not be kept, a text search configuration a plain dump could not load with); each of these is also
      a warning (RV(restore_warnings)), and check mode warns of those it can foresee.
  returned: PostgreSQL logical restores of a database
  type: dict
grants:
  description:
    - MariaDB/MySQL restores, the privileges naming the database that were given to the restored one -
      C(applied) (what, for whom), C(skipped) (accounts missing on the target, grants the server refused),
      C(withheld) (recorded privileges not given, as the replayed binary logs took them on the source after the
      dump), C(from_binlogs) (privileges the replayed binary logs granted on the source after the dump, given too),
      and C(restored) (false with a C(reason) for backups that predate their
      recording).
  returned: MariaDB/MySQL restores
  type: dict
dropped_stale:
  description:
    - PostgreSQL logical and MariaDB restores and O(state=absent) of a database - the databases a killed run into
      this target had left (its marked temporary copy, or the old contents renamed aside) that this run dropped.
      One that could not be dropped is a warning naming it.
  returned: PostgreSQL logical and MariaDB/MySQL database restores and O(state=absent)
  type: list
  elements: str
kept_stale:
  description:
    - MariaDB restores and O(state=absent) - the aside databases (the old tables) that a run killed during its swap
      left, found by their marker and only reported, with a warning each - the swap is several steps, so check the
      target before dropping them by hand.
  returned: MariaDB/MySQL database restores and O(state=absent)
  type: list
  elements: str
revoked:
  description:
    - MariaDB/MySQL O(state=absent) - the privileges naming the dropped database exactly that were revoked (in check
      mode, that would be), as C(privileges on table t for app@%). One the server refused is a warning naming it.
  returned: MariaDB/MySQL O(state=absent)
  type: list
  elements: str
  sample: ["privileges on the database for app@%"]
removed_scratch:
  description:
    - The scratch directories (C(opsready-scratch-pg-restore-*), C(opsready-scratch-binlog-restore-*) in O(tmpdir)) a
      killed db_restore had left - a decrypted, decompressed copy of a dump or binary log - that this run removed.
      Only directories of this user with the owner file whose lock proves their run ended are removed; one that
      could not be is a warning naming it.
    - PostgreSQL point-in-time recovery and SQLite - also the staging a killed run into the same O(datadir) or
      target file left beside it (C(<datadir>.opsready-restore-*), C(.opsready-wal-*), C(.opsready-old-*);
      C(<file>.opsready-restore-*)), removed under the target's lock. A SQLite file a swap had moved aside
      (C(<file>.opsready-old-*)) is kept with a warning; so is a PITR staging directory a server still runs on.
  returned: when not in check mode
  type: list
  elements: str
scratch_left:
  description:
    - The scratch directories of this run (a decrypted, decompressed copy of the dump) that could not be removed,
      with a warning each naming what is left and why. Remove them by hand.
  returned: when a removal failed
  type: list
  elements: str
foreign_servers:
  description:
    - PostgreSQL logical restores - the foreign servers of the restored database, each with C(name), C(wrapper),
      C(options) (where it points - C(host), C(hostaddr), C(port), C(dbname), C(service) only), C(user_mappings)
      (the roles, C(PUBLIC) for the public mapping; passwords are never read) and C(action) (C(kept), or what
      O(foreign_servers=disable) did).
  returned: when the restored database has foreign servers
  type: list
  elements: dict
subscriptions:
  description:
    - PostgreSQL logical restores - the logical replication subscriptions of the restored database, each with
      C(name), C(connection) (where it points - C(host), C(hostaddr), C(port), C(dbname), C(user), C(service) of
      its connection string as backed up; never the password; null when the login may not read it), C(slot_name)
      (the publisher's slot as backed up), C(enabled) and C(action) (C(kept ...), or what
      O(foreign_servers=disable) did).
  returned: when the restored database has subscriptions
  type: list
  elements: dict
privileges_not_restored:
  description:
    - PostgreSQL logical restores of a database - the privilege statements of the backup (C(GRANT), C(REVOKE)) that
      PostgreSQL applied only in part or not at all because the restoring role is not a superuser and neither owns
      the object nor holds the grant option on it, in the load's order, each with C(object) (the name as the
      server's message gives it, for example V(plpgsql), V(large object 16384), or C(column \"c\" of relation
      \"t\")) and C(message) (V(no privileges were granted), V(not all privileges were granted), V(no privileges
      could be revoked), V(not all privileges could be revoked)). Empty when everything was applied. A warning
      names them too. Not in check mode, which cannot foresee them.
    - When the server's messages are in another language and the restoring role may not set C(lc_messages) -
      from C(pg_restore), C(object) is the backup's ACL entry (V(LANGUAGE plpgsql),
      V(pg_catalog.FUNCTION pg_sleep(double precision))) and C(message) the server's message as it came
      (in German, starting with V(WARNUNG:) and the translated text); from a plain dump's C(psql),
      C(object) is the one quoted name of the message (or the whole message) and C(message) the message with its
      SQLSTATE.
  returned: PostgreSQL logical restores of a database
  type: list
  elements: dict
  sample: [{"object": "plpgsql", "message": "no privileges could be revoked"}]
restore_warnings:
  description:
    - What the restore could not give the target that the backup holds (MariaDB/MySQL - objects the source held that
      the dump did not load, a dump without the database character set), the same text as the task's warnings.
      Ansible moves a module's C(warnings) out of the registered result, so the C(dr_drill) role reads them here
      and puts them in the drill report.
  returned: always
  type: list
  elements: str
encrypted:
  description: The ids of the chain pieces that were encrypted (and decrypted with the identity given).
  returned: when state=present
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import parse_time
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (
    connection_from_params, db_connection_argument_spec, db_connection_mutually_exclusive)
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import ENGINES
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import run_restore


def main():
    argument_spec = db_connection_argument_spec()
    argument_spec.update(
        engine=dict(type='str', required=True, choices=list(ENGINES)),
        src=dict(type='path', required=True),
        database=dict(type='str'),
        source_database=dict(type='str'),
        origin=dict(type='str'),
        artifact=dict(type='str'),
        stop_at=dict(type='str'),
        replace=dict(type='bool', default=False),
        jobs=dict(type='int', default=1),
        no_owner=dict(type='bool', default=False),
        events=dict(type='str', choices=['source', 'disabled'], default='source'),
        foreign_servers=dict(type='str', choices=['keep', 'disable'], default='keep'),
        tmpdir=dict(type='path'),
        datadir=dict(type='path'),
        target_timeline=dict(type='str'),
        port=dict(type='int'),
        server_state=dict(type='str', choices=['started', 'stopped'], default='started'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        identity=dict(type='str', no_log=True),
        identity_file=dict(type='path'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=db_connection_mutually_exclusive() + [['artifact', 'stop_at']],
        required_one_of=[['database', 'datadir']],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    try:
        stop_at = parse_time(p['stop_at'], 'stop_at') if p['stop_at'] else None
        identities = []
        if p['identity'] or p['identity_file']:
            crypto_guard.require(module, crypto_guard.ENCRYPTION_MINIMUM, 'restoring encrypted backups')
            identities = encryption.load_identities(p['identity'], p['identity_file'])
        request = RestoreRequest(
            engine=p['engine'], src=p['src'], database=p['database'], source_database=p['source_database'],
            origin=p['origin'], artifact=p['artifact'], stop_at=stop_at, replace=p['replace'], jobs=p['jobs'],
            no_owner=p['no_owner'],
            tmpdir=p['tmpdir'], datadir=p['datadir'], port=p['port'], server_state=p['server_state'],
            state=p['state'], check_mode=module.check_mode, identities=identities, events=p['events'],
            foreign_servers=p['foreign_servers'], target_timeline=p['target_timeline'])
        result = run_restore(request, connection_from_params(p))
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    # Ansible takes ``warnings`` out of a registered result: a copy under our own key reaches the drill report.
    result['restore_warnings'] = list(result.get('warnings') or [])
    for text in result.pop('warnings', None) or []:   # exit_json(warnings=...) is deprecated
        module.warn(text)
    if result['changed'] and module._diff:
        target = result.get('target') or {}
        name = target.get('datadir') or target.get('database') or ''
        if p['state'] == 'absent':
            result['diff'] = {'before': '%s\n' % name, 'after': ''}
        else:
            result['diff'] = {'before': '', 'after': '%s <- %s (point %s)\n'
                              % (name, ', '.join(result.get('chain_ids', [])), result.get('point_reached'))}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
