"""The @globals script is pg_dumpall's output in the server's encoding: on a SQL_ASCII cluster a role name or
comment may hold bytes that are not UTF-8. The restore must say so, not die on a UnicodeDecodeError traceback.
(pg_dumpall itself refuses such a name when its connection's database is UTF-8; the artifact is stubbed here.)"""

from __future__ import annotations

import contextlib
import io
import types

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import restore


@pytest.mark.parametrize('script, ok', [(b'CREATE ROLE "fid_r\xc3\xa9le";\n', True),
                                        (b'CREATE ROLE "fid_r\xe9le";\n', False)])
def test_globals_that_are_not_utf8_fail_clearly(monkeypatch, script, ok):
    monkeypatch.setattr(restore, 'open_artifact', lambda manifest, identities: contextlib.nullcontext(
        io.BytesIO(script)))
    engine = types.SimpleNamespace(identities=[])
    manifest = types.SimpleNamespace(id='pg-@globals-full-20261206T000000Z')
    if ok:
        assert restore._read_globals(engine, manifest) == script.decode('utf-8')
        return
    with pytest.raises(OpsReadyError, match=r'not UTF-8 text \(byte 18.*Nothing was restored'):
        restore._read_globals(engine, manifest)
