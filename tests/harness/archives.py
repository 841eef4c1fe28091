"""Hostile file-backup archives for the refusal tests (integration and fault matrix)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path


def write_escaping_file_backup(dest: Path, name: str = 'cfg') -> Path:
    """A file backup of set ``name`` in ``dest`` whose tar holds ``../../evil.conf``, with a valid manifest.

    The checksum is right, so only the member check can stop the restore.
    """
    dest.mkdir(parents=True, exist_ok=True)
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode='w') as tar:
        for member in ('etc/ok.conf', '../../evil.conf'):
            info = tarfile.TarInfo(member)
            info.size = 4
            tar.addfile(info, io.BytesIO(b'evil'))
    archive = dest / ('%s-20261129T000000000000Z.tar' % name)
    archive.write_bytes(payload.getvalue())
    manifest = {'id': archive.name, 'artifact': archive.name, 'engine': 'files', 'kind': 'files', 'database': name,
                'started': '2026-11-29T00:00:00Z', 'finished': '2026-11-29T00:00:01Z',
                'size': archive.stat().st_size, 'sha256': hashlib.sha256(payload.getvalue()).hexdigest(),
                'compression': 'none'}
    (dest / (archive.name + '.manifest.json')).write_text(json.dumps(manifest))
    return archive
