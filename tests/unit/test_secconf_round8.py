"""Security red team, round 8 (unit layer): what the modules create under a permissive umask, run the way Ansible
runs a module (its own process; the umask is inherited, as from an operator's shell or a service with UMask=0000).

``os.makedirs(path, mode)`` applies ``mode`` to the last directory only: every missing directory above it was made
0777 minus the umask, i.e. world-writable under umask 000. db_backup and file_backup then refused the very directories
they had just made ("writable by others") and left them behind; the other modules wrote their state, reports and
holds below directories any account could rename or fill with links.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.unit.plugins.modules.test_conformance_round7 import _sqlite_source, run_module


@pytest.fixture
def umask_000():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _open_to_others(top: Path) -> list:
    """Every directory or file under ``top`` that accounts other than its owner can write."""
    return sorted('%s %o' % (p.relative_to(top), stat.S_IMODE(p.lstat().st_mode)) for p in top.rglob('*')
                  if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o022)


def _keygen(path: Path) -> str:
    subprocess.run(['age-keygen', '-o', str(path)], check=True, capture_output=True)
    return subprocess.run(['age-keygen', '-y', str(path)], check=True, capture_output=True, text=True).stdout.strip()


def test_missing_directories_are_never_made_world_writable(tmp_path, umask_000):
    out = tmp_path / 'out'
    out.mkdir()
    out.chmod(0o755)
    source = _sqlite_source(tmp_path)
    tree = tmp_path / 'etc-src'
    tree.mkdir()
    (tree / 'app.conf').write_text('a = 1\n')
    logs = tmp_path / 'logs'
    logs.mkdir()
    logs.chmod(0o755)
    (logs / 'app.log').write_text('x' * 100)
    public = _keygen(tmp_path / 'age.key')
    cases = [
        ('db_backup', {'engine': 'sqlite', 'database': source, 'dest': str(out / 'db' / 'set' / 'backups'),
                       'encrypt': True, 'recipients': [public]}),
        ('file_backup', {'paths': [str(tree)], 'dest': str(out / 'files' / 'set' / 'archives'), 'name': 'etc'}),
        ('log_rotate', {'paths': [str(logs / '*.log')], 'size': '1', 'rotate': 2, 'compress': False,
                        'state_file': str(out / 'lr' / 'state' / 'state.json')}),
    ]
    for module, params in cases:
        result, printed = run_module(tmp_path, module, params)
        assert not result.get('failed') and result.get('changed'), (module, printed[-2000:])
    assert _open_to_others(out) == []
    # the backup directories themselves stay the owner's alone
    for leaf in (out / 'db' / 'set' / 'backups', out / 'files' / 'set' / 'archives'):
        assert stat.S_IMODE(leaf.stat().st_mode) == 0o700
    # and the directories above keep the usual 0755 (others may traverse, as with the default umask)
    assert stat.S_IMODE((out / 'db').stat().st_mode) == 0o755


# --- age: every CCTV vector fails for the reason it names ------------------------------------------------------------
AGE_FAILURE_CLASSES = (
    # (class named by the vector's ``expect:``, what our message says for it)
    ('no match', ('cannot be decrypted with the identity',)),
    ('HMAC failure', ('fails its MAC',)),
    ('header failure', ('malformed age header', 'truncated age header', 'not an age v1 file')),
    ('payload failure', ('fails authentication at chunk',)),
)


def _age_failure_class(error) -> str:
    if error is None:
        return 'success'
    text = str(error)
    for name, markers in AGE_FAILURE_CLASSES:
        if any(marker in text for marker in markers):
            return name
    return 'unclassified: %s' % text


def test_every_age_vector_fails_for_the_reason_it_names():
    """test_encryption_vectors checks that a vector that must fail fails; here each fails as the class its
    ``expect:`` names (an operator reads "corrupt header" and "payload tampered" differently). stream_no_nonce and
    stream_short_nonce (the 16-byte payload nonce missing or cut: a header failure for age) were reported as a
    truncated payload."""
    from tests.unit.plugins.module_utils.common import test_encryption_vectors as vectors
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption

    wrong = {}
    ran = 0
    for name in vectors.NAMES:
        fields, body = vectors.load(name)
        identities, reason = vectors.classify(fields)
        if reason:
            continue
        ran += 1
        parsed = [encryption.parse_identities(i)[0] for i in identities]
        dummy, error = vectors.run(body, parsed, None)
        got = _age_failure_class(error)
        if got != fields['expect'][0]:
            wrong[name] = (fields['expect'][0], got)
    assert ran == 69
    assert wrong == {}


# --- age recipients: every malformed spelling refused (regression guard: passed on the old code) ---------------------
def _recipient_variants():
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption

    good = encryption.bech32_encode('age', bytes(range(32)))
    flipped = good[:-1] + ('q' if good[-1] != 'q' else 'p')
    mixed = good[:10] + good[10:20].upper() + good[20:]
    return good, {
        'mixed case': mixed,
        'wrong hrp': encryption.bech32_encode('agf', bytes(range(32))),
        'bad checksum': flipped,
        'trailing data': good + 'qq',
        'inner space': good[:20] + ' ' + good[20:],
        'short key': encryption.bech32_encode('age', bytes(range(31))),
        'long key': encryption.bech32_encode('age', bytes(range(33))),
        'identity': encryption.bech32_encode('age-secret-key-', bytes(range(32))).upper(),
        'no separator': good.replace('1', '', 1),
        'not charset': good[:-8] + 'b' + good[-7:],
        'ssh': 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN',
        'empty': '',
    }


@pytest.mark.parametrize('case', sorted(_recipient_variants()[1]))
def test_malformed_age_recipients_are_refused_unshown_as_keys(case):
    """Regression guard (passed on the old code): each malformed recipient is refused with an OpsReadyError, and a
    secret key given as a recipient is never echoed."""
    from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

    good, variants = _recipient_variants()
    assert encryption.parse_recipient(good) == bytes(range(32))
    with pytest.raises(OpsReadyError) as caught:
        encryption.recipients_option(True, [variants[case]], 'the backup')
    if case == 'identity':
        assert variants[case] not in str(caught.value)
    if shutil.which('age') and variants[case] and case != 'ssh':
        # the reference tool refuses it too (an SSH key it takes: a recipient type the collection does not offer)
        proc = subprocess.run(['age', '-r', variants[case]], input=b'x', capture_output=True, check=False)
        assert proc.returncode != 0
