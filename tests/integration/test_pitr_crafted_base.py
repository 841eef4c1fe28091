"""db_restore, PostgreSQL PITR, from a base backup whose tar stream stops parsing midway - its manifest rewritten to
match it (size, SHA-256), as whoever can write the backup directory, or a compromised database host, can do.

The base backup's reader was ``tarfile`` alone, which takes a block that is not a header, found after the first
member, for the end of the archive: the PITR extracted the members before it, found PG_VERSION among them, and
started the server on the partial data directory. It now reads through ``tarsafe.read_stream`` (file_restore's
framing checks): the run fails naming the artifact, no server is started, nothing is left beside datadir.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.integration.pitr_helpers import app_with_base_backup, catalog_wal, conn, play, switch_and_wait  # noqa: E402


def _cut_into(raw: bytes) -> bytes:
    """``raw`` (a tar) with 512 bytes of garbage inserted before the header of a member past the middle."""
    offsets = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode='r|') as tar:
        for member in tar:
            offsets.append((member.offset, member.name))
    assert len(offsets) > 20, offsets
    offset, _name = offsets[len(offsets) * 2 // 3]
    return raw[:offset] + b'\x7f' * 512 + raw[offset:]


def _rewrite(manifest_path: Path) -> str:
    data = json.loads(manifest_path.read_text())
    artifact = manifest_path.parent / data['artifact'] if 'artifact' in data else Path(str(manifest_path)[
        :-len('.manifest.json')])
    stored = artifact.read_bytes()
    assert data['compression'] == 'zstd', data['compression']
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(stored), read_across_frames=True).read()
    crafted = zstandard.ZstdCompressor(level=3).compress(_cut_into(raw))
    artifact.write_bytes(crafted)
    data.update(size=len(crafted), sha256=hashlib.sha256(crafted).hexdigest())
    data.pop('backup_manifest', None)   # its frame is gone with the recompression
    for key in ('plain_sha256', 'raw_size'):
        data.pop(key, None)
    manifest_path.write_text(json.dumps(data))
    return str(artifact)


def test_pitr_refuses_a_base_backup_that_stops_parsing_midway(postgres_factory, tmp_path):
    app = app_with_base_backup(postgres_factory, tmp_path)
    server, dest, extravars, base = app.server, app.dest, app.extravars, app.base
    server.sql("INSERT INTO events (label) VALUES ('t2')", database='app')
    switch_and_wait(server)
    assert catalog_wal(server, dest)
    manifests = [p for p in dest.glob('*.manifest.json') if json.loads(p.read_text())['id'] == base['id']]
    assert len(manifests) == 1, list(dest.iterdir())
    artifact = _rewrite(manifests[0])

    scratch = Path(tempfile.mkdtemp(prefix='opsready-pitr-crafted-'))
    os.chmod(scratch, 0o711)
    datadir = scratch / 'data'
    try:
        refused = play(tmp_path, [{'name': 'pitr', 'ignore_errors': True, 'opsready.operations.db_restore': dict(
            conn(server), engine='postgresql', src=str(dest), datadir=str(datadir))}], extravars)
        out = refused.result('pitr')
        assert out['_event'] == 'runner_on_failed', json.dumps(out)[-3000:]
        assert artifact in out['msg'] and 'cannot be read as a tar archive' in out['msg'], out['msg']
        assert 'No server was started' in out['msg'], out['msg']
        assert sorted(p.name for p in scratch.iterdir()) in ([], ['.data.opsready-lock']), list(scratch.iterdir())
        running = subprocess.run(['pgrep', '-f', str(scratch)], capture_output=True, text=True, check=False)
        assert running.stdout.strip() == '', 'a server runs on the partial data directory: %s' % running.stdout
        # backup_verify ran pg_verifybackup on the members before the cut (the code before)
        verified = play(tmp_path, [{'name': 'verify', 'ignore_errors': True, 'opsready.operations.backup_verify': dict(
            conn(server), path=artifact, record=False)}], extravars)
        said = json.dumps(verified.result('verify'))
        assert 'cannot be read as a tar archive' in said and 'pg_verifybackup was not run' in said, said[-3000:]
    finally:
        if (datadir / 'postmaster.pid').exists():   # the code before: a server started on what was extracted
            subprocess.run(['runuser', '-u', 'postgres', '--', server.bin('pg_ctl'), '-D', str(datadir), '-m',
                            'immediate', 'stop'], check=False, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
