"""Security review, round 6: the quick manifest checks read a manifest the way the catalog does.

The catalog reads manifests strictly (``manifest.loads_strict``: no member named twice, no NaN/Infinity, not
nested past the decoder, then the shape check). Two places took a shortcut with plain ``json.loads``, which keeps
the last of two equal members: a manifest written to say one thing to the shortcut and another (broken) to the
catalog made them disagree.

- offsite pull: a local manifest whose sha256 appears twice (last one right) counted as "already present", so the
  backup was not fetched, and the local catalog lists it as broken: a pull that reports success and leaves no
  usable copy.
- offsite pull's tamper check: a broken destination manifest naming ``../`` in the first of two ``artifact``
  members passed (the shortcut saw the second), where every other escaping name stops the pull.
- pg_wal_archive (archive_command): a manifest planted in the archive with the segment's plain_sha256 last (and
  a different one first) made the helper answer "already archived" (exit 0: PostgreSQL then recycles the
  segment) while the catalog ignores that manifest: the segment is lost from every restore.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import manifest
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError, OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import wal_archive
from ansible_collections.opsready.operations.plugins.module_utils.files import archive
from ansible_collections.opsready.operations.plugins.module_utils.offsite import copy as offsite_copy
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import Store

SEG = 16 * 1024 * 1024


class DirStore(Store):
    """A destination that is a local directory (the store API a pull drives)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = 'dir://%s' % root

    def list_files(self):
        return {str(p.relative_to(self.root)): p.stat().st_size for p in self.root.rglob('*') if p.is_file()}

    def read_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def chunks(self, name: str):
        yield (self.root / name).read_bytes()


def twice(text: str, member: str, first: str) -> str:
    """The manifest ``text`` with ``member`` also given first, as ``first`` (the original value stays last)."""
    assert text.startswith('{')
    return '{%s: %s, %s' % (json.dumps(member), json.dumps(first), text[1:])


def fileset_catalog(base: Path) -> Path:
    source = base / 'src'
    source.mkdir(parents=True)
    (source / 'app.conf').write_bytes(b'listen 80\n')
    catalog = base / 'catalog'
    archive.prepare_dest(str(catalog), True)
    archive.create_archive([str(source)], str(catalog), 'app', compression='none')
    return catalog


def test_pull_fetches_again_when_the_local_manifest_says_its_sha256_twice(tmp_path):
    remote = fileset_catalog(tmp_path)
    (entry,) = Catalog(str(remote)).entries
    dest = tmp_path / 'pulled'
    archive.prepare_dest(str(dest), True)
    local = dest / (entry.id + manifest.MANIFEST_SUFFIX)
    local.write_text(twice((remote / local.name).read_text(), 'sha256', '0' * 64))
    with pytest.raises(OpsReadyError):
        manifest.read_manifest(str(local))        # what the catalog makes of it
    result = offsite_copy.pull(DirStore(remote), str(dest))
    assert result['downloaded'] == [entry.id], result
    assert [m.id for m in Catalog(str(dest)).entries] == [entry.id]


@pytest.mark.parametrize('member,value', [('artifact', '../../outside.tar'), ('id', '../outside')])
def test_pull_stops_on_a_broken_manifest_whose_first_of_two_names_escapes(tmp_path, member, value):
    remote = fileset_catalog(tmp_path)
    (entry,) = Catalog(str(remote)).entries
    path = remote / ('zz' + manifest.MANIFEST_SUFFIX)
    path.write_text(twice((remote / (entry.id + manifest.MANIFEST_SUFFIX)).read_text(), member, value))
    dest = tmp_path / 'pulled'
    with pytest.raises(IntegrityError) as caught:
        offsite_copy.pull(DirStore(remote), str(dest))
    assert 'outside the download directory' in caught.value.message
    assert not dest.exists() or not any(dest.iterdir())


def _segment(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_bytes(os.urandom(4096) + b'\0' * (1024 * 1024 - 4096))
    return path


@pytest.mark.parametrize('planted', ['plain_sha256 twice', 'nothing but plain_sha256', 'NaN size'])
def test_wal_archive_is_not_fooled_by_a_manifest_the_catalog_ignores(tmp_path, planted, capfd):
    name = '000000010000000000000007'
    seg = _segment(tmp_path, name)
    genuine = tmp_path / 'genuine'
    genuine.mkdir()
    assert wal_archive.archive(str(genuine), str(seg), name, 'none', segment_size=SEG) == 0
    (real,) = genuine.glob('*.manifest.json')
    text = real.read_text()
    dest = tmp_path / 'archive'
    dest.mkdir()
    if planted == 'plain_sha256 twice':
        text = twice(text, 'plain_sha256', '0' * 64)
    elif planted == 'nothing but plain_sha256':
        text = json.dumps({'plain_sha256': json.loads(text)['plain_sha256']})
    else:
        data = json.loads(text)
        text = json.dumps(dict(data, size=float('nan')))
        (dest / data['artifact']).write_bytes((genuine / data['artifact']).read_bytes())
    (dest / real.name).write_text(text)
    with pytest.raises(OpsReadyError):
        manifest.read_manifest(str(dest / real.name))    # the catalog ignores it ...
    assert wal_archive.archive(str(dest), str(seg), name, 'none', segment_size=SEG) == 0
    # ... so the segment must really be archived (PostgreSQL recycles it after exit 0)
    logs = Catalog(str(dest), 'postgresql', '@cluster').logs()
    assert [w.position['start'] for w in logs] == [7], Catalog(str(dest)).broken
    assert 'ignoring' in capfd.readouterr().err


@pytest.mark.parametrize('raw', [b'{"a": 1, "a": 2}', b'{"a": NaN}', b'{"a": -Infinity}', b'[' * 100000 + b']' * 100000,
                                 b'{"a": "\xff"}', b'{"a": {"b": 1, "b": 1}}', b'{"a": 1e999}', b'{"a": [1, 2]} x',
                                 b'{"a": 1}'],
                         ids=['twice', 'nan', 'infinity', 'deep', 'not-utf8', 'nested-twice', 'overflow', 'trailing',
                              'good'])
def test_wal_archive_reads_json_as_the_catalog_does(raw):
    """The WAL helper is standalone (no collection imports): its copy of the strict reader must decide as the
    catalog's does."""
    outcomes = []
    for reader in (manifest.loads_strict, wal_archive.loads_strict):
        try:
            outcomes.append(('ok', reader(raw)))
        except ValueError:
            outcomes.append(('refused', None))
    assert outcomes[0] == outcomes[1]


def test_health_redaction_leaves_numbers_alone_for_a_short_secret():
    """A password ``1`` was replaced in the JSON text of the whole result: every latency and count with a 1 in it
    became ``********`` (or the text stopped being JSON)."""
    from ansible_collections.opsready.operations.plugins.module_utils.health import checks
    result = {'latency_ms': 1.5, 'count': 11, 'ok': True, 'message': 'pw 1 refused', 'list': [1, '1']}
    assert checks.redact_result(result, ['1']) == {'latency_ms': 1.5, 'count': 11, 'ok': True,
                                                   'message': 'pw ******** refused', 'list': [1, '********']}


@pytest.mark.parametrize('url,shown', [
    ('https://h/p?api_key=abc&x=1', 'https://h/p?api_key=********&x=1'),
    ('https://u:pw@h/p', 'https://********@h/p'),
    ('https://h/p?X-Amz-Signature=abc&X-Amz-Credential=def&v=2',
     'https://h/p?X-Amz-Signature=********&X-Amz-Credential=********&v=2'),
    ('https://h/p#access_token=abc', 'https://h/p#access_token=********'),
    ('https://h/p?a%5Fkey=abc', 'https://h/p?a%5Fkey=********'),
    ('http://[::1/x?token=abc', 'http://[::1/x?token=********'),     # urlsplit refuses it; redacted all the same
    ('https://h/p?page=2&sort=name', 'https://h/p?page=2&sort=name'),
])
def test_health_url_redaction(url, shown):
    from ansible_collections.opsready.operations.plugins.module_utils.health import net_check
    assert net_check.redact_url(url) == shown


@pytest.mark.parametrize('url,secrets', [
    ('https://monitor:pw1234@h/', ['monitor:pw1234', 'pw1234']),
    ('https://ghp_t0ken@h/', ['ghp_t0ken']),
    ('https://h/p?token=a%2Bb&page=2', ['a%2Bb', 'a+b']),
])
def test_url_secrets_are_what_must_be_masked(url, secrets):
    """A user name next to a password is not masked (Ansible would star it wherever it occurs)."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.urlsecrets import url_secrets
    assert sorted(url_secrets(url)) == sorted(secrets)
