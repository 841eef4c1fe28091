"""Certificates, round 11: the stale-staged sweep of cert_renew and long names.

A file is staged as ``.<name>.<12 hex>.tmp``, ``<name>`` cut to its first characters where the whole would pass the
255 bytes of a name (``safeio.staged_name``: a certificate or key name longer than ~237 bytes). ``sweep_staged``
looked only for the whole name: a run killed between staging and the swap left the new private key staged under
the cut name, and no later run removed it. The run is killed here as the code would leave it: a file at the name
``staged_name`` gives, an hour old.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.unit.test_cert_round9_unit import opts, pki  # noqa: E402,F401  # pylint: disable=unused-import

from ansible_collections.opsready.operations.plugins.module_utils.certs import renewal  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio  # noqa: E402

# 250 bytes: a legal name (at most 255), over the ~237 that leave room for ".<name>.<12 hex>.tmp"
LONG = 'long-' + 'é' * 60 + 'x' * 121


def _later(minutes):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)


def _left_staged(path: str, age: float = 3600) -> str:
    """A file staged for ``path`` as the code names it (``safeio.staged_name``), left by a killed run."""
    staged = os.path.join(os.path.dirname(path), safeio.staged_name(os.path.basename(path)))
    Path(staged).write_bytes(b'-----BEGIN PRIVATE KEY-----\nleft by a killed run\n')
    os.chmod(staged, 0o600)
    old = time.time() - age
    os.utime(staged, (old, old))
    return staged


def _long_pair(ca, live):
    cert_path, key_path, _old = ca.write_leaf(live, 'long.test', days_left=80, lifetime=90)
    long_cert, long_key = os.path.join(live, LONG + '.crt'), os.path.join(live, LONG + '.key')
    assert len(os.fsencode(LONG + '.key')) == 250
    os.rename(cert_path, long_cert)
    os.rename(key_path, long_key)
    return long_cert, long_key


def test_staged_files_of_long_names_are_swept_and_nothing_else(pki, tmp_path):  # noqa: F811
    ca, ca_cert, ca_key, live = pki
    cert_path, key_path = _long_pair(ca, live)
    key_tmp, cert_tmp = _left_staged(key_path), _left_staged(cert_path)
    assert os.path.basename(LONG) not in os.path.basename(key_tmp)   # cut: the whole name does not fit
    # a kept pair's staged copies (their names are longer still) and a staged pending key
    stamp = '20261201T000000000000Z'
    kept_key_tmp = _left_staged(key_path + '.%s.key.bak' % stamp)
    kept_cert_tmp = _left_staged(cert_path + '.%s.cert.rejected' % stamp)
    pending_tmp = _left_staged(key_path + '.pending')
    # not this pair's, or not a killed run's: kept
    other = _left_staged(os.path.join(live, 'other.test.key'))
    young = _left_staged(key_path, age=-20 * 60 + 60)   # a minute old at the run's time (now + 20 minutes)
    unrelated = os.path.join(live, '.' + LONG[:200] + '.notes')
    Path(unrelated).write_text('mine\n')
    old = time.time() - 3600
    os.utime(unrelated, (old, old))
    before = {p: Path(p).read_bytes() for p in (cert_path, key_path)}

    ours = sorted([key_tmp, cert_tmp, kept_key_tmp, kept_cert_tmp, pending_tmp])
    checked = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=True,
                            now=_later(20))
    assert checked['removed_staged_files'] == ours
    assert all(os.path.exists(p) for p in ours)
    result = renewal.renew(opts(cert_path, key_path, ca_cert=ca_cert, ca_key=ca_key), check_mode=False,
                           now=_later(20))
    assert result['removed_staged_files'] == ours
    assert not any(os.path.lexists(p) for p in ours)
    for kept in (other, young, unrelated):
        assert os.path.exists(kept), kept
    assert {p: Path(p).read_bytes() for p in (cert_path, key_path)} == before   # nothing to renew yet: unchanged
