# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup ``Engine`` interface: what every database engine does for db_backup and backup_verify.

An engine turns a ``BackupOptions`` into one or more committed artifacts plus manifests in a backup
directory (``backup``), and checks an artifact with the engine's own tool (``verify``). Every engine
writes artifacts through ``backup/artifacts.py`` (``stream_to_artifact``/``ArtifactWriter``: ``<name>.partial``,
compression and SHA-256 in one pass, fsync, rename) and only then writes the manifest; reading artifacts back,
set locks and leftovers live there too.

Restore, maintenance and DR drill checks are not part of this interface: they live in ``restore/<engine>.py``,
``maintenance/<engine>.py`` and ``drill/checks.py`` and use the engine (its runner, connection options and
server facts) where they need one. ``engines/registry.py`` names the engines and hands each area its
object for an engine name.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import os
import socket
import subprocess  # nosec B404 # argument lists, never a shell
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (
    FULL_KINDS, Manifest, local_origin, write_manifest)
from ansible_collections.opsready.operations.plugins.module_utils.backup.source import SOURCE_KEY
# The file-name part of a set (injective), in backup/set_names.py: the catalog readers use it without the engines.
from ansible_collections.opsready.operations.plugins.module_utils.backup.set_names import (  # noqa: F401
    SET_NAME_MAX, legacy_set_name, set_name)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import (
    OpsReadyError, ToolError)
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import (
    compression_suffix)
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, stamp, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import (  # noqa: F401
    ConnectionParams, connect_failure_reason, runner_for)

ALL_KINDS = ('full', 'diff', 'log', 'base', 'wal')
# Set names used for server-wide artifacts (never valid unquoted database names).
CLUSTER = '@cluster'
GLOBALS = '@globals'
ALL_DATABASES = '@all'


@dataclass
class BackupOptions:
    kind: str
    dest: str
    database: Optional[str] = None
    all_databases: bool = False
    compression: str = 'zstd'
    level: Optional[int] = None
    threads: int = 0
    format: Optional[str] = None          # PostgreSQL: custom | directory | plain
    jobs: int = 1                         # PostgreSQL directory format: pg_dump -j
    include_globals: bool = False         # PostgreSQL: also pg_dumpall --globals-only
    copy_only: bool = False               # SQL Server
    native_compression: bool = False      # SQL Server: WITH COMPRESSION
    wait_timeout: int = 60                # PostgreSQL wal: seconds to wait for the archiver
    recipients: List[str] = field(default_factory=list)  # age public keys: encrypt every artifact to them
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def encrypt(self) -> bool:
        return bool(self.recipients)


def kill_and_reap(proc: subprocess.Popen) -> None:
    """Kill a tool still running (after a failure on our side) and reap it; close its stderr file."""
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    err = getattr(proc, 'stderr_file', None)
    if err is not None:
        try:
            err.close()
        except OSError:
            pass


class Engine:
    """Base class: one subclass per engine (postgresql.py, mysql.py, sqlite.py, sqlserver.py)."""

    name = 'base'
    kinds: Tuple[str, ...] = ()
    default_port: Optional[int] = None
    # What each kind means for this engine, used in error messages.
    kind_help: Dict[str, str] = {}

    # Whether this engine can encrypt its artifacts (it streams them through ArtifactWriter).
    can_encrypt = True
    encrypt_refusal = ''

    def __init__(self, conn: ConnectionParams, runner: Optional[ToolRunner] = None) -> None:
        self.conn = conn
        self._server_facts: Optional[Dict[str, Any]] = None
        self.runner = runner_for(conn, runner)
        # age identities (private keys) for reading encrypted artifacts (verify, restore); never logged.
        self.identities: List[Any] = []
        # Staging in dest (path: why) a backup that succeeded could not remove: the run reports it
        # (leftovers_left and a warning); the next backup of the set tries again under the set's lock.
        self.staging_left: Dict[str, str] = {}
        # Set by run_backup for the dump's duration: what a database held, measured before and after its dump
        # (``backup.source.combine``), asked by ``commit_manifest`` so the manifest is written once, complete.
        self.source_at_commit: Optional[Callable[[str], Optional[Dict[str, Any]]]] = None
        # Set by run_backup when ``start_preflight`` deferred: the set's tidying (leftovers of killed runs), which
        # decides nothing about the run, done once the engine's tool has started (``tool_started``) instead of
        # before it, off the critical path. Called with the names the running tool writes (never leftovers).
        self.while_tool_runs: Optional[Callable[[Sequence[str]], None]] = None

    # -- capabilities ------------------------------------------------------------------------------
    def check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            offered = ', '.join('%s (%s)' % (k, self.kind_help.get(k, k)) for k in self.kinds)
            raise OpsReadyError('kind=%s is not supported by engine %s; it supports: %s.'
                                % (kind, self.name, offered), engine=self.name, kind=kind)

    def check_options(self, opts: BackupOptions) -> None:
        """Reject option combinations before anything is written."""
        self.check_kind(opts.kind)
        if not opts.all_databases and not opts.database and opts.kind not in ('base', 'wal'):
            raise OpsReadyError('database is required for engine %s kind=%s (or set all_databases).'
                                % (self.name, opts.kind))
        if opts.recipients:
            if not self.can_encrypt:
                raise OpsReadyError('encrypt=true is not possible for engine %s: %s'
                                    % (self.name, self.encrypt_refusal))
            # the age code (~700 lines, compiled on every module run) only where a backup encrypts
            from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
            encryption.check_available()
            for recipient in opts.recipients:
                encryption.parse_recipient(recipient)  # a bad key fails before anything is written

    def catalog_database(self, opts: BackupOptions) -> str:
        """The manifest ``database`` for artifacts of this run (server-wide kinds use CLUSTER)."""
        if opts.kind in ('base', 'wal'):
            return CLUSTER
        if opts.all_databases:
            return ALL_DATABASES
        if opts.database is None:
            raise OpsReadyError('database is required for engine %s kind=%s.' % (self.name, opts.kind))
        return opts.database

    def backup_sets(self, opts: BackupOptions) -> List[str]:
        """Every catalog ``database`` this run writes (one set each: locked, cleaned, pruned).

        One for most runs; an engine that writes one artifact per database overrides it (and may ask
        the server: its errors are the connect errors ``preflight`` would raise)."""
        return [self.catalog_database(opts)]

    def server_label(self) -> str:
        if self.conn.unix_socket:
            return '%s:%s' % (socket.gethostname(), self.conn.unix_socket)
        return '%s:%s' % (self.conn.host or 'localhost', self.conn.port or self.default_port or '')

    def origin(self) -> str:
        """The identity of the source server recorded in every manifest as ``origin``: the catalog never chains,
        restores or retains across two origins (docs/architecture.md, "Origins"). What the server says of itself
        when ``server_facts`` asks it (``origin`` there: no extra round trip), else the connection label with a
        loopback host or a socket qualified by this machine's name (``local_origin``)."""
        told = self.ping().get('origin')
        if isinstance(told, str) and told:
            return told
        if self.conn.unix_socket:
            return local_origin(None, self.conn.unix_socket)
        return local_origin(self.conn.host, str(self.conn.port or self.default_port or ''))

    # -- work --------------------------------------------------------------------------------------
    def ping(self) -> Dict[str, Any]:
        """Connect (within connect_timeout) and return {'server_version': ...}: asked of the server once per
        engine, since a run checks reachability first and uses the facts later (each ask starts a client)."""
        if self._server_facts is None:
            self._server_facts = self.server_facts()
        return self._server_facts

    def server_facts(self) -> Dict[str, Any]:
        raise NotImplementedError

    def preflight(self, opts: BackupOptions) -> Dict[str, Any]:
        """Prove the source is reachable before anything is written (also what check mode runs)."""
        return self.ping()

    def start_preflight(self, opts: BackupOptions) -> bool:
        """A real run's preflight, which an engine may finish in ``backup`` once its tool has started (the answer
        then raised there, with nothing of the backup left behind): True when it does. By default the whole
        ``preflight`` now (False)."""
        self.preflight(opts)
        return False

    def tool_started(self, writing: Sequence[str] = ()) -> None:
        """The engine's tool has started writing ``writing`` (names in dest): run ``while_tool_runs`` now, once.
        An engine calls it right after starting its tool, inside the clean-up that stops the tool and removes its
        staging when it raises; before starting a tool the other way (``writing`` empty) when it has not yet."""
        work, self.while_tool_runs = self.while_tool_runs, None
        if work is not None:
            work(writing)

    def backup(self, opts: BackupOptions) -> List[Dict[str, Any]]:
        """Take the backup; returns the manifests written (the main artifact first)."""
        raise NotImplementedError

    def verify(self, manifest: Manifest) -> Dict[str, Any]:
        """The engine's own check of a committed artifact; raises IntegrityError when it fails."""
        raise NotImplementedError

    def source_summary(self, opts: BackupOptions, database: str) -> Optional[Dict[str, Any]]:
        """What ``database`` holds right before its backup (tables, tables with rows, rows or size; see
        ``backup.source``), recorded in the manifest as ``source`` and compared by verification and drills.
        ``None`` when the engine or kind has nothing to measure. An engine that measures inside its own
        snapshot (SQLite) records ``source`` in ``backup`` itself."""
        return None

    # -- helpers for subclasses --------------------------------------------------------------------
    def artifact_path(self, opts: BackupOptions, database: str, kind: str, ext: str,
                      compressed: bool = True, when: Optional[Any] = None) -> str:
        suffix = compression_suffix(opts.compression) if compressed else ''
        if compressed and opts.recipients:
            from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
            suffix += encryption.SUFFIX
        name = '%s-%s-%s-%s%s%s' % (self.name, set_name(database), kind, stamp(when), ext, suffix)
        return os.path.join(opts.dest, name)

    def base_manifest(self, opts: BackupOptions, database: str, kind: str, started: Any,
                      stored: Dict[str, Any]) -> Dict[str, Any]:
        finished = utcnow()
        data: Dict[str, Any] = {
            'engine': self.name,
            'kind': kind,
            'server': self.server_label(),
            'origin': self.origin(),
            'database': database,
            'started': isoformat(started),
            'finished': isoformat(finished),
            'consistent_at': isoformat(finished),
            'size': stored['size'],
            'sha256': stored['sha256'],
            'raw_size': stored.get('raw_size'),
            'compression': stored['compression'],
            'compression_level': stored.get('compression_level'),
            'parent': None,
            'position': {},
        }
        if stored.get('encryption'):
            # format, recipients (public keys) and the plaintext checksum sealed to them: never a secret.
            data['encryption'] = stored['encryption']
        return data

    def commit_manifest(self, artifact: str, data: Dict[str, Any]) -> Dict[str, Any]:
        """Write the manifest of a complete artifact, once: a full kind's carries what its source held
        (``source_at_commit``), measured here, after the dump and before the manifest exists, so that a run
        failing in between leaves no manifest at all (the artifact is a leftover the catalog never trusts),
        never one without the summary and none rewritten after the dump (a second atomic write and fsync)."""
        measure = self.source_at_commit
        if measure is not None and data.get('kind') in FULL_KINDS and data.get(SOURCE_KEY) is None:
            summary = measure(data.get('database') or '')
            if summary is not None:
                data[SOURCE_KEY] = summary
        write_manifest(artifact, data)
        result = dict(data)
        result.setdefault('id', os.path.basename(artifact))
        result.setdefault('artifact', os.path.basename(artifact))
        result['path'] = artifact
        return result


__all__ = ['BackupOptions', 'Engine', 'ToolError', 'set_name', 'legacy_set_name', 'SET_NAME_MAX',
           'connect_failure_reason', 'kill_and_reap', 'CLUSTER', 'GLOBALS', 'ALL_DATABASES']
