"""backup/rekey.py's stream costs per block, not per byte: the plaintext crosses from the decrypting child in 1 MiB
blocks, and the new file is sealed, written and hashed in the module's own thread (no writer thread to hand each
block to). Per 200 MB this took the process tree from 0.70-0.75 to 0.62-0.66 CPU seconds (docs/bench.md, key
rotation); the checks of the rotation itself are in test_rekey.py."""

from __future__ import annotations

import hashlib
import os
import threading

from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest, write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow


def key():
    return encryption.parse_identities(encryption.generate_identity())[0]


def test_the_plaintext_crosses_in_large_blocks_and_is_written_in_one_thread(tmp_path, monkeypatch):
    old, new = key(), key()
    payload = os.urandom(6 << 20) + b'tail'
    path = os.path.join(str(tmp_path), 'etc-files-%s.tar.age' % utcnow().strftime('%Y%m%dT%H%M%S%fZ'))
    with ArtifactWriter(path, compression='none', recipients=[old.recipient]) as writer:
        writer.write(payload)
        stored = writer.commit()
    now = isoformat(utcnow())
    write_manifest(path, {'engine': 'files', 'kind': 'files', 'database': 'etc', 'started': now, 'finished': now,
                          'size': stored['size'], 'sha256': stored['sha256'], 'compression': 'none',
                          'encryption': stored['encryption']})
    blocks = []
    real_next = rekey._DecryptingChild.next_block

    def counted(self):
        block = real_next(self)
        if block is not None:
            blocks.append(len(block))
        return block
    monkeypatch.setattr(rekey._DecryptingChild, 'next_block', counted)
    threads = []

    def look(point, artifact_id):
        if point == rekey.STREAM_POINT:
            threads.extend(t.name for t in threading.enumerate() if t is not threading.current_thread())
    done = rekey.rekey(str(tmp_path), [new.recipient], [old], fault=look)
    assert done['rekeyed'] == [os.path.basename(path)] and done['failed'] == [], done
    assert sum(blocks) == len(payload)
    assert len(blocks) <= 7, 'the plaintext crossed in %d blocks of up to %d bytes' % (len(blocks), max(blocks))
    assert [name for name in threads if name != 'opsready-sync'] == [], threads
    data = read_manifest(path + '.manifest.json').data
    assert data['sha256'] == hashlib.sha256(open(path, 'rb').read()).hexdigest()
    assert data['size'] == os.path.getsize(path)
    with open(path, 'rb') as handle:
        assert encryption.DecryptingReader(handle, [new], path).read() == payload
