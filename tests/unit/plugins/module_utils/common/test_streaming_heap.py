"""ArtifactWriter keeps freed heap memory for reuse (issue 22, docs/bench.md "Module start-up and the encrypted file
backup").

Streaming an artifact allocates and frees megabytes over and over (zstd's 1 MiB output pieces, the sealed blocks,
zstd's job buffers). With glibc's defaults the heap was trimmed and regrown all the time, and the kernel faulted in
and zeroed those pages anew: ~17,000 of the ~40,000 minor faults of a 300 MB encrypted file backup. These tests
hold the writer to asking glibc to keep its heap, and measure the faults it saves in a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import streaming

BUILD = str(Path(os.path.abspath(streaming.__file__)).parents[6])   # the build/ directory, not the worktree it links to


def test_writer_asks_glibc_to_keep_its_heap(tmp_path, monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    import ctypes
    monkeypatch.setattr(ctypes, 'CDLL', lambda name: FakeLibc())
    monkeypatch.setattr(streaming, '_heap_kept', False)
    with streaming.ArtifactWriter(str(tmp_path / 'a.zst')) as writer:
        writer.write(b'x')
        writer.commit()
    with streaming.ArtifactWriter(str(tmp_path / 'b.zst')) as writer:
        writer.commit()
    # once per process: the mmap threshold first (either call stops glibc adjusting both), then the trim threshold
    assert calls == [(-3, streaming.HEAP_MMAP_THRESHOLD), (-1, streaming.HEAP_TRIM_THRESHOLD)]


def test_no_glibc_is_no_error(tmp_path, monkeypatch):
    import ctypes

    def missing(name):
        raise OSError('no C library')
    monkeypatch.setattr(ctypes, 'CDLL', missing)
    monkeypatch.setattr(streaming, '_heap_kept', False)
    with streaming.ArtifactWriter(str(tmp_path / 'a.zst')) as writer:
        writer.write(b'x' * 1000)
        writer.commit()
    assert (tmp_path / 'a.zst').exists()


CHILD = textwrap.dedent('''
    import os, resource, sys
    sys.path.insert(0, %r)
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption, streaming
    if sys.argv[1] == 'off':
        streaming.keep_heap = lambda: None
    recipient = encryption.parse_identities(encryption.generate_identity())[0].recipient
    data = os.urandom(1 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with streaming.ArtifactWriter(sys.argv[2], threads=2, recipients=[recipient]) as writer:
        for index in range(48):
            writer.write(data[index:] + data[:index])   # incompressible: 48 MB through zstd and the age thread
        writer.commit()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
''') % BUILD


@pytest.mark.skipif(not sys.platform.startswith('linux') or not os.path.exists('/lib/x86_64-linux-gnu/libc.so.6')
                    and not os.path.exists('/lib/aarch64-linux-gnu/libc.so.6'), reason='glibc only')
def test_fewer_page_faults_with_the_heap_kept(tmp_path):
    def faults(mode):
        out = subprocess.run([sys.executable, '-c', CHILD, mode, str(tmp_path / ('%s.zst.age' % mode))],
                             check=True, capture_output=True, text=True).stdout
        return int(out.split()[-1])
    off = min(faults('off'), faults('off'))
    on = max(faults('on'), faults('on'))
    # 48 MB stored: ~12,000 pages; with the default trimming a large share of them is faulted in again
    assert on < off * 0.7, (on, off)
