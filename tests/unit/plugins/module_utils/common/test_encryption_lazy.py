# -*- coding: utf-8 -*-
"""An unencrypted backup never loads cryptography's OpenSSL binding (~7 MB of RSS per backup process: the
logical-backup rows of docs/bench.md have a 100 MB own-RSS target), and an encrypted one still works."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BUILD = os.path.abspath(os.path.join(os.path.dirname(__file__), *(['..'] * 5), 'build'))

PROBE = '''
import sys
sys.path.insert(0, BUILD_DIR)
from ansible_collections.opsready.operations.plugins.module_utils.backup import jobs  # noqa: F401
from ansible_collections.opsready.operations.plugins.module_utils.engines import registry
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter
import importlib
for family in registry.IMPLEMENTATIONS:
    for area in ('backup', 'restore'):
        try:
            importlib.import_module('ansible_collections.opsready.operations.plugins.module_utils.engines.%s.%s'
                                    % (family, area))
        except ModuleNotFoundError:
            pass
path = sys.argv[1]
with ArtifactWriter(path, compression='zstd') as writer:
    writer.write(b'plain backup bytes' * 1000)
    writer.commit()
print(','.join(sorted(m for m in sys.modules if m.startswith('cryptography.hazmat'))))
'''


def test_an_unencrypted_backup_does_not_load_cryptography(tmp_path):
    probe = PROBE.replace('BUILD_DIR', repr(BUILD))
    out = subprocess.run([sys.executable, '-c', probe, str(tmp_path / 'a.zst')], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == '', 'loaded without encrypting: %s' % out


def test_the_primitives_load_on_first_use(tmp_path):
    pytest.importorskip('cryptography')
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter
    identity = encryption.parse_identities(encryption.generate_identity())[0]
    path = str(tmp_path / 'a.zst.age')
    with ArtifactWriter(path, compression='zstd', recipients=[identity.recipient]) as writer:
        writer.write(b'secret bytes' * 1000)
        writer.commit()
    with open(path, 'rb') as handle:
        reader = encryption.DecryptingReader(handle, [identity], path)
        data = reader.read()
    assert data.startswith(b'\x28\xb5\x2f\xfd')  # the zstd frame, decrypted
