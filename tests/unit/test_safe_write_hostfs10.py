"""safe_write (new, hostfs10): the write the recovery role's rollback record goes through - every object planted at
the name is replaced by a regular file of this user, never written, read or re-owned through; unchanged when equal;
check mode writes nothing; options checked."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.unit.plugins.modules.test_conformance_round7 import run_module

RECORD = '{\n    "from": "v2",\n    "to": "v1"\n}\n'


def _write(tmp_path: Path, dest: Path, **options) -> dict:
    check = options.pop('check', False)
    options.setdefault('content', RECORD)
    result, _out = run_module(tmp_path, 'safe_write', dict(options, dest=str(dest)), check=check)
    return result


def test_writes_then_is_unchanged_and_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / 'app' / '.record.json'
    dest.parent.mkdir()
    dry = _write(tmp_path, dest, check=True)
    assert (dry.get('failed'), dry['changed'], dest.exists()) == (None, True, False), dry
    first = _write(tmp_path, dest)
    assert first['changed'] and first['replaced'] is None and dest.read_text() == RECORD
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    again = _write(tmp_path, dest)
    assert again['changed'] is False, again
    assert _write(tmp_path, dest, check=True)['changed'] is False
    tighter = _write(tmp_path, dest, mode='0600')
    assert tighter['changed'] and stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert sorted(p.name for p in dest.parent.iterdir()) == ['.record.json']   # no staged file left


@pytest.mark.parametrize('what', ['symlink', 'dangling symlink', 'fifo', 'hardlink'])
def test_what_is_planted_at_the_name_is_replaced_never_followed(tmp_path, what):
    secret = tmp_path / 'root-only'
    secret.write_bytes(RECORD.encode() if what == 'hardlink' else b'S3cret-root-only\n')
    secret.chmod(0o600)
    before = (secret.read_bytes(), os.stat(secret).st_mtime_ns)
    dest = tmp_path / 'app' / '.record.json'
    dest.parent.mkdir()
    if what == 'symlink':
        dest.symlink_to(secret)
    elif what == 'dangling symlink':
        dest.symlink_to(tmp_path / 'would-be-created')
    elif what == 'fifo':
        os.mkfifo(str(dest))
    else:
        os.link(str(secret), str(dest))
    dry = _write(tmp_path, dest, check=True)
    assert dry['changed'] and dry['replaced'], dry
    result = _write(tmp_path, dest)
    assert result.get('failed') is None and result['changed'] and result['replaced'], result
    assert any(str(dest) in str(w) for w in result.get('warnings', [])), sorted(result)
    st = os.lstat(dest)
    assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and dest.read_text() == RECORD
    assert (secret.read_bytes(), os.stat(secret).st_mtime_ns) == before
    assert not (tmp_path / 'would-be-created').exists()
    assert 'S3cret' not in json.dumps(result)


def test_refusals_name_the_path(tmp_path):
    directory = tmp_path / 'adir'
    directory.mkdir()
    refused = _write(tmp_path, directory)
    assert refused['failed'] is True and str(directory) in refused['msg'], refused
    missing = _write(tmp_path, tmp_path / 'nowhere' / 'x.json')
    assert missing['failed'] is True and 'nowhere' in missing['msg'], missing
    bad = _write(tmp_path, tmp_path / 'x.json', mode='rw-r--r--')
    assert bad['failed'] is True and 'mode' in bad['msg'] and not (tmp_path / 'x.json').exists()
    assert RECORD not in json.dumps(_write(tmp_path, tmp_path / 'y.json'))   # content is no_log: never echoed
