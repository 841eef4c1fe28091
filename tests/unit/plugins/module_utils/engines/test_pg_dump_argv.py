"""PostgreSQL engine against a RECORDING ToolRunner: the argv and environment each tool gets.

The recorder is the real ``ToolRunner`` (so its refusal to put a secret on a command line stays in force)
with ``run``/``popen`` answering like psql, pg_dump, pg_dumpall and pg_basebackup would. The stub
executables on its PATH exit 99, so nothing real ever runs. Proves: ``jobs`` reaches ``pg_dump -j``;
``threads``/``compression_level`` reach ``pg_basebackup --compress=server-zstd:level=N,workers=T`` (client-zstd
from a server older than 15) and the tool-compressed output is stored as is; the password travels in
``PGPASSWORD`` only, never in argv."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest
import zstandard

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.runner import ToolRunner
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import PostgresEngine

PASSWORD = 'Pg-s3cret.Pa55/word'
TOOLS = ('psql', 'pg_dump', 'pg_dumpall', 'pg_basebackup', 'pg_restore', 'pg_verifybackup')
WAL_POINTS = ('pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1\n'
              'pg_basebackup: write-ahead log end point: 0/2000100\n')
EMIT = ('import sys\n'
        'sys.stdout.buffer.write(open(sys.argv[1], "rb").read())\n'
        'sys.stderr.write(open(sys.argv[2]).read())\n')
MANIFEST = b'{"PostgreSQL-Backup-Manifest-Version": 1, "Files": []}'


def base_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        for name, data in (('PG_VERSION', b'15\n'), ('backup_manifest', b'{"PostgreSQL-Backup-Manifest-Version": 1}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class RecordingRunner(ToolRunner):
    """Records (argv, env) of every command; answers as the PostgreSQL tools would."""

    def __init__(self, bindir: Path, scratch: Path) -> None:
        super().__init__(env={'PATH': str(bindir)})  # no secrets given: the engine must add the password
        self.scratch = scratch
        self.calls: List[Dict[str, Any]] = []
        self.base_stream = zstandard.ZstdCompressor(level=5).compress(base_tar())

    def _record(self, argv: Sequence[str], env: Optional[Dict[str, str]]) -> str:
        self._check_argv(argv)  # the real refusal, before anything is recorded
        self.calls.append({'argv': list(argv), 'env': dict(env or {})})
        return os.path.basename(argv[0])

    client_version = '15.99'
    server_version = '15.99'

    def run(self, argv, env=None, data=None, timeout=None, check=True, cwd=None, what=None):
        name = self._record(argv, env)
        if '--version' in argv:
            return 0, '%s (PostgreSQL) %s (Debian %s-1)\n' % (name, self.client_version, self.client_version), ''
        if name == 'psql':
            # one statement as -c, or a script on stdin (the properties read sets its encoding first)
            sql = argv[argv.index('-c') + 1] if '-c' in argv else data.decode('utf-8')
            assert '--csv' in argv  # psql --csv -t: a name holding a tab or a newline stays one value
            if 'server_version' in sql:
                return 0, '%s,false,16MB,7300000000000000001\n' % self.server_version, ''
            if 'pg_current_wal_lsn' in sql:
                return 0, '0/3000060,000000010000000000000003\n', ''
            if 'json_build_object' in sql:  # database-level properties, recorded in the manifest
                return 0, ('"{""name"": ""app"", ""owner"": ""app"", ""acl"": null, ""settings"": [], '
                           '""roles"": {}}"\n'), ''
            if 'pg_database' in sql:
                return 0, 'app\nshop\n', ''
        if name == 'pg_dump' and '-f' in argv:  # directory format: pg_dump writes the members itself
            staging = Path(argv[argv.index('-f') + 1])
            staging.mkdir()
            (staging / 'toc.dat').write_bytes(b'PGDMP toc')
            (staging / '3001.dat.gz').write_bytes(b'\x1f\x8b member')
            return 0, '', ''
        raise AssertionError('unexpected command %r' % (argv,))

    def popen(self, argv, env=None, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, cwd=None):
        name = self._record(argv, env)
        err = ''
        if name == 'pg_dump' and argv[argv.index('-F') + 1] == 'c':
            out = b'PGDMP\x01\x0e\x00' + b'\x00' * 64
        elif name == 'pg_dump':
            out = b'--\n-- PostgreSQL database dump\n--\nSELECT 1;\n-- PostgreSQL database dump complete\n'
        elif name == 'pg_dumpall':
            out = b'--\n-- PostgreSQL database cluster dump\n--\n'
        elif name == 'pg_basebackup' and argv[argv.index('-D') + 1] != '-':
            # server-compressed into a directory: base.tar.zst (no manifest inside) + backup_manifest
            staging = Path(argv[argv.index('-D') + 1])
            staging.mkdir()
            (staging / 'base.tar.zst').write_bytes(self.base_stream)
            (staging / 'backup_manifest').write_bytes(MANIFEST)
            out, err = b'', WAL_POINTS
        elif name == 'pg_basebackup':
            compressed = any(a.startswith('--compress') for a in argv)
            out, err = (self.base_stream if compressed else base_tar()), WAL_POINTS
        else:
            raise AssertionError('unexpected stream %r' % (argv,))
        n = len(self.calls)
        (self.scratch / ('out%d' % n)).write_bytes(out)
        (self.scratch / ('err%d' % n)).write_text(err)
        fake = [sys.executable, '-c', EMIT, str(self.scratch / ('out%d' % n)), str(self.scratch / ('err%d' % n))]
        return super().popen(fake, env=env, stdin=stdin, stdout=stdout, cwd=cwd)

    def work(self, tool: str) -> List[Dict[str, Any]]:
        """The calls of ``tool`` that do work (not ``--version``)."""
        return [c for c in self.calls if os.path.basename(c['argv'][0]) == tool and '--version' not in c['argv']]

    def argvs(self, tool: str) -> List[List[str]]:
        return [c['argv'] for c in self.work(tool)]

    def envs(self, tool: str) -> List[Dict[str, str]]:
        return [c['env'] for c in self.work(tool)]


@pytest.fixture
def runner(tmp_path):
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    for tool in TOOLS:
        stub = bindir / tool
        stub.write_text('#!/bin/sh\nexit 99\n')
        stub.chmod(0o755)
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    return RecordingRunner(bindir, scratch)


def engine(runner: RecordingRunner, **conn: Any) -> PostgresEngine:
    params = dict(host='db1.example.com', port=5433, user='backup', password=PASSWORD)
    params.update(conn)
    return PostgresEngine(ConnectionParams(**params), runner)


def jobs_of(argv: List[str]) -> Optional[int]:
    for i, arg in enumerate(argv):
        if arg in ('-j', '--jobs'):
            return int(argv[i + 1])
        if arg.startswith('--jobs='):
            return int(arg.split('=', 1)[1])
        if arg.startswith('-j') and arg[2:].isdigit():
            return int(arg[2:])
    return None


def assert_no_password_in_any_argv(runner: RecordingRunner) -> None:
    assert runner.calls
    for call in runner.calls:
        assert not any(PASSWORD in arg for arg in call['argv']), call['argv']


def test_directory_format_with_jobs_2_runs_pg_dump_with_two_workers(runner, tmp_path):
    dest = tmp_path / 'backups'
    result = run_backup(engine(runner), BackupOptions(kind='full', dest=str(dest), database='app',
                                                      format='directory', jobs=2, compression='gzip', level=1),
                        verify=False)
    (dump,) = runner.argvs('pg_dump')
    assert jobs_of(dump) == 2, dump
    assert dump[dump.index('-F') + 1] == 'd' and dump[dump.index('-Z') + 1] == '1'
    manifest = result['manifest']
    assert manifest['format'] == 'directory' and manifest['tool']['jobs'] == 2
    assert sorted(os.path.basename(m['path']) for m in manifest['members']) == ['3001.dat.gz', 'toc.dat']
    assert os.path.isdir(manifest['path']) and not os.path.exists(manifest['path'] + '.partial')
    # pg_dump authenticates through the environment, with the right database and endpoint
    (env,) = runner.envs('pg_dump')
    assert env['PGPASSWORD'] == PASSWORD and env['PGDATABASE'] == 'app'
    assert env['PGHOST'] == 'db1.example.com' and env['PGPORT'] == '5433' and env['PGUSER'] == 'backup'
    assert_no_password_in_any_argv(runner)


def test_jobs_without_directory_format_is_refused_before_pg_dump_runs(runner, tmp_path):
    with pytest.raises(OpsReadyError, match='jobs=2 needs format=directory'):
        run_backup(engine(runner), BackupOptions(kind='full', dest=str(tmp_path / 'b'), database='app', jobs=2),
                   verify=False)
    assert runner.argvs('pg_dump') == [] and not (tmp_path / 'b').exists()


@pytest.mark.parametrize('case', [
    dict(kind='full', database='app', format='custom'),
    dict(kind='full', database='app', format='plain', include_globals=True),
    dict(kind='full', all_databases=True, format='custom'),
    dict(kind='full', database='app', format='directory', jobs=3),
    dict(kind='base', compression='zstd', threads=2),
    dict(kind='base', compression='gzip'),
], ids=['custom', 'plain+globals', 'all_databases', 'directory', 'base-zstd', 'base-gzip'])
def test_password_never_in_argv_of_any_tool(runner, tmp_path, case):
    opts = dict(compression='zstd')
    opts.update(case)
    result = run_backup(engine(runner), BackupOptions(dest=str(tmp_path / 'b'), **opts), verify=False)
    assert result['changed'] is True and result['manifests']
    assert PASSWORD in runner.secrets  # the engine registered it, so the runner would refuse it on argv
    assert_no_password_in_any_argv(runner)
    tools = {os.path.basename(c['argv'][0]) for c in runner.calls}
    assert tools - {'psql'}, 'a backup tool ran'
    for call in runner.calls:  # every connecting tool got the password, through the environment
        if '--version' not in call['argv']:
            assert call['env'].get('PGPASSWORD') == PASSWORD, call['argv']
    for argv in runner.argvs('pg_dump') + runner.argvs('pg_dumpall') + runner.argvs('pg_basebackup'):
        assert '-w' in argv, 'never prompt for a password: %r' % argv


def test_the_runner_refuses_a_password_on_the_command_line(runner, tmp_path):
    engine(runner)  # registers the password with the runner
    marker = tmp_path / 'ran'
    argv = ['/bin/sh', '-c', 'touch %s' % marker, 'sh', '--password=%s' % PASSWORD]
    for call in (lambda: runner.run(argv), lambda: runner.popen(argv),
                 lambda: ToolRunner(secrets=[PASSWORD]).run(argv), lambda: ToolRunner(secrets=[PASSWORD]).popen(argv)):
        with pytest.raises(OpsReadyError) as info:
            call()
        assert 'refusing to pass a secret on the command line' in str(info.value)
        assert PASSWORD not in str(info.value)
    assert runner.calls == [] and not marker.exists()


def test_unix_socket_goes_to_pghost_and_names_the_server(runner, tmp_path):
    eng = engine(runner, host=None, unix_socket='/run/postgresql', password=None)
    result = run_backup(eng, BackupOptions(kind='full', dest=str(tmp_path / 'b'), database='app'), verify=False)
    for env in runner.envs('pg_dump') + runner.envs('psql'):
        assert env['PGHOST'] == '/run/postgresql' and 'PGPASSWORD' not in env
    assert result['manifest']['server'].endswith(':/run/postgresql')


def test_option_file_goes_to_pgpassfile(runner, tmp_path):
    pgpass = tmp_path / 'pgpass'
    run_backup(engine(runner, password=None, option_file=str(pgpass)),
               BackupOptions(kind='full', dest=str(tmp_path / 'b'), database='app'), verify=False)
    (env,) = runner.envs('pg_dump')
    assert env['PGPASSFILE'] == str(pgpass) and 'PGPASSWORD' not in env


# -- pg_basebackup compresses its own stream (threads -> zstd workers) ----------------------------------

def compress_args(argv: List[str]) -> List[str]:
    return [a for a in argv if a.startswith('--compress') or a == '-Z' or a.startswith('-Z')]


@pytest.mark.parametrize('threads,level,expected', [
    (3, 5, '--compress=server-zstd:level=5,workers=3'),
    (1, None, '--compress=server-zstd:level=3'),
], ids=['threads=3', 'threads=1'])
def test_base_backup_is_compressed_by_the_server_with_threads_as_workers(
        runner, tmp_path, threads, level, expected):
    result = run_backup(engine(runner), BackupOptions(kind='base', dest=str(tmp_path / 'b'), compression='zstd',
                                                      level=level, threads=threads), verify=False)
    (argv,) = runner.argvs('pg_basebackup')
    assert compress_args(argv) == [expected], argv
    assert argv[argv.index('-D') + 1].endswith('.tar.zst.partial')
    manifest = result['manifest']
    assert manifest['compression'] == 'zstd' and manifest['path'].endswith('.tar.zst')
    assert manifest['compression_level'] == (3 if level is None else level)
    # the server's base.tar.zst as written, then backup_manifest in a skippable frame; one checksum over both
    stored = Path(manifest['path']).read_bytes()
    frame = struct.pack('<II', 0x184D2A5E, len(MANIFEST)) + MANIFEST
    assert stored == runner.base_stream + frame and len(stored) == manifest['size']
    assert manifest['sha256'] == hashlib.sha256(stored).hexdigest()
    assert manifest['backup_manifest']['offset'] == len(runner.base_stream)
    assert manifest['tool']['compression'] == 'server'
    assert not os.path.exists(manifest['path'] + '.partial')
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(stored), read_across_frames=True) as plain:
        with tarfile.open(fileobj=plain, mode='r|') as tar:
            assert sorted(m.name for m in tar) == ['PG_VERSION', 'backup_manifest']
    assert manifest['position']['start_lsn'] == '0/2000028' and manifest['position']['end_lsn'] == '0/2000100'


@pytest.mark.parametrize('threads,level,expected', [
    (3, 5, '--compress=client-zstd:level=5,workers=3'),
    (1, None, '--compress=client-zstd:level=3'),
], ids=['threads=3', 'threads=1'])
def test_base_backup_from_a_server_older_than_15_is_compressed_by_pg_basebackup(
        runner, tmp_path, threads, level, expected):
    runner.server_version = '14.12'
    result = run_backup(engine(runner), BackupOptions(kind='base', dest=str(tmp_path / 'b'), compression='zstd',
                                                      level=level, threads=threads), verify=False)
    # started server-compressed while the facts were read (issue 22), stopped when they said 14, then streamed
    tried, argv = runner.argvs('pg_basebackup')
    assert compress_args(tried)[0].startswith('--compress=server-zstd'), tried
    assert not [n for n in os.listdir(tmp_path / 'b') if n.endswith('.partial')]
    assert compress_args(argv) == [expected], argv
    manifest = result['manifest']
    assert manifest['compression'] == 'zstd' and manifest['path'].endswith('.tar.zst')
    assert manifest['compression_level'] == (3 if level is None else level)
    # pg_basebackup already compressed the stream: stored as is (one zstd layer around the tar), not twice.
    stored = Path(manifest['path']).read_bytes()
    assert stored == runner.base_stream and len(stored) == manifest['size']
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(stored)) as plain:
        with tarfile.open(fileobj=plain, mode='r|') as tar:
            assert sorted(m.name for m in tar) == ['PG_VERSION', 'backup_manifest']
    assert manifest['position']['start_lsn'] == '0/2000028' and manifest['position']['end_lsn'] == '0/2000100'


def test_base_backup_uncompressed_leaves_compression_to_nobody(runner, tmp_path):
    result = run_backup(engine(runner), BackupOptions(kind='base', dest=str(tmp_path / 'b'), compression='none',
                                                      threads=4), verify=False)
    (argv,) = runner.argvs('pg_basebackup')
    assert compress_args(argv) == [], argv
    assert result['manifest']['compression'] == 'none' and result['manifest']['path'].endswith('.tar')


def test_newest_packaged_client_is_chosen_by_version_not_by_name(tmp_path):
    """Debian's /usr/bin/pg_dump is pg_wrapper (Perl, ~60 ms a call): the engine goes to the newest major's
    binary itself, and "9.6" must not sort above "15" as a string would."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import (
        newest_packaged_tool)
    for major, tools in (('9.6', ['pg_dump', 'psql']), ('15', ['pg_dump', 'psql']), ('16', ['psql'])):
        bindir = tmp_path / major / 'bin'
        bindir.mkdir(parents=True)
        for tool in tools:
            (bindir / tool).write_text('#!/bin/sh\n')
            (bindir / tool).chmod(0o755)
    assert newest_packaged_tool('pg_dump', str(tmp_path)) == str(tmp_path / '15' / 'bin' / 'pg_dump')
    assert newest_packaged_tool('psql', str(tmp_path)) == str(tmp_path / '16' / 'bin' / 'psql')
    assert newest_packaged_tool('pg_restore', str(tmp_path)) is None


def test_base_backup_gzip_is_compressed_by_pg_basebackup_at_the_asked_level(runner, tmp_path):
    result = run_backup(engine(runner), BackupOptions(kind='base', dest=str(tmp_path / 'b'), compression='gzip',
                                                      level=4), verify=False)
    (argv,) = runner.argvs('pg_basebackup')
    assert compress_args(argv) == ['--compress=client-gzip:level=4'], argv
    assert result['manifest']['compression'] == 'gzip' and result['manifest']['compression_level'] == 4
    # stored byte for byte as the tool wrote it (the recorder answers with its zstd stream for any --compress)
    assert Path(result['manifest']['path']).read_bytes() == runner.base_stream
    with pytest.raises(OpsReadyError, match='gzip levels 1-9'):
        run_backup(engine(runner), BackupOptions(kind='base', dest=str(tmp_path / 'c'), compression='gzip', level=0),
                   verify=False)


def test_base_backup_with_a_client_older_than_15_is_compressed_by_the_module(runner, tmp_path):
    """--compress=client-zstd arrived in pg_basebackup 15: an older client gets no --compress, and the module
    compresses the plain tar stream itself (as before)."""
    runner.client_version = '14.11'
    result = run_backup(engine(runner), BackupOptions(kind='base', dest=str(tmp_path / 'b'), compression='zstd',
                                                      threads=2), verify=False)
    # started server-compressed while its version was read (issue 22), stopped when it said 14, then streamed
    tried, argv = runner.argvs('pg_basebackup')
    assert compress_args(tried)[0].startswith('--compress=server-zstd'), tried
    assert compress_args(argv) == [], argv
    manifest = result['manifest']
    assert manifest['compression'] == 'zstd' and manifest['raw_size'] == len(base_tar())
    with zstandard.ZstdDecompressor().stream_reader(open(manifest['path'], 'rb')) as plain:
        assert plain.read() == base_tar()


def test_debian_pg_wrapper_on_path_is_skipped_for_the_real_client(tmp_path):
    from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import find_client_tool
    share = tmp_path / 'share'
    share.mkdir()
    (share / 'pg_wrapper').write_text('#!/usr/bin/perl\n')
    (share / 'pg_wrapper').chmod(0o755)
    usr_bin = tmp_path / 'usr-bin'
    usr_bin.mkdir()
    (usr_bin / 'pg_dump').symlink_to(share / 'pg_wrapper')
    (usr_bin / 'pg_amcheck').write_text('#!/bin/sh\n')  # a real program on PATH is used as it is
    (usr_bin / 'pg_amcheck').chmod(0o755)
    root = tmp_path / 'lib'
    (root / '15' / 'bin').mkdir(parents=True)
    for tool in ('pg_dump', 'pg_amcheck'):
        (root / '15' / 'bin' / tool).write_text('#!/bin/sh\n')
        (root / '15' / 'bin' / tool).chmod(0o755)
    assert find_client_tool('pg_dump', str(usr_bin), str(root)) == str(root / '15' / 'bin' / 'pg_dump')
    assert find_client_tool('pg_amcheck', str(usr_bin), str(root)) == str(usr_bin / 'pg_amcheck')
    assert find_client_tool('pg_restore', str(usr_bin), str(root)) is None
