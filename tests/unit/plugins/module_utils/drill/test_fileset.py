"""File-set drill checks (issue 18) on real files: the restored tree against the manifest's member records,
certificates against their keys, the check command's argv (no shell; ``{root}`` substituted after splitting)."""

from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.drill import fileset
from ansible_collections.opsready.operations.plugins.module_utils.files.archive import create_archive


def pem_pair(name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()), cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture()
def drilled(tmp_path):
    """A set archived with file_backup's writer, restored by the drill into a kept scratch copy."""
    tree = tmp_path / 'src' / 'etc' / 'app'
    tree.mkdir(parents=True)
    (tree / 'app.conf').write_text('listen = 8080\n')
    key, cert = pem_pair('app')
    (tree / 'app.key').write_bytes(key)
    (tree / 'app.key').chmod(0o600)
    (tree / 'app.crt').write_bytes(cert)
    (tmp_path / 'backups').mkdir()
    manifest = create_archive([str(tree)], str(tmp_path / 'backups'), 'app', compression='gzip')
    root = tmp_path / 'root'
    result = fileset.drill_fileset(str(tmp_path / 'backups'), 'app', str(root), check_command=['true'])
    assert result['ok'], result
    assert not root.exists()  # cleanup removed it
    records = manifest['files']
    from ansible_collections.opsready.operations.plugins.module_utils.files.extract import find_archive, restore_archive
    os.mkdir(str(root), 0o700)
    restore_archive(find_archive(str(tmp_path / 'backups'), 'app'), str(root))
    return root, records, tree.relative_to('/')


def test_a_changed_file_mode_or_missing_member_is_named(drilled):
    root, records, rel = drilled
    assert fileset.compare_tree(str(root), records, owners=os.geteuid() == 0) == []
    (root / rel / 'app.conf').write_text('listen = 8081\n')
    (root / rel / 'app.key').chmod(0o644)
    (root / rel / 'app.crt').unlink()
    problems = fileset.compare_tree(str(root), records, owners=False)
    assert any('app.conf: content differs' in p for p in problems), problems
    assert any('app.key: mode 0644, the backup had 0600' in p for p in problems), problems
    assert any('app.crt: missing' in p for p in problems), problems


def test_a_key_without_its_certificate_fails(drilled):
    root, records, rel = drilled
    found, problems = fileset.check_certificates(str(root), records)
    matches = [f.get('matches') for f in found if f['kind'] == 'private key']
    assert problems == [] and matches == [[str(rel / 'app.crt')]]
    other_key, _cert = pem_pair('other')
    (root / rel / 'app.key').write_bytes(other_key)
    _found, problems = fileset.check_certificates(str(root), records)
    assert len(problems) == 1 and 'matches no certificate' in problems[0], problems
    (root / rel / 'app.crt').write_bytes(b'-----BEGIN CERTIFICATE-----\nMIIB\n')
    _found, problems = fileset.check_certificates(str(root), records)
    assert any('app.crt' in p and 'truncated' in p for p in problems), problems


def test_check_command_argv_never_sees_a_shell(tmp_path):
    root = str(tmp_path / "it's a root; $(touch x)")
    assert fileset.check_argv('nginx -t -c "{root}/etc/nginx/nginx.conf"', root) == [
        'nginx', '-t', '-c', root + '/etc/nginx/nginx.conf']
    assert fileset.check_argv(['sh', '-c', 'exit 3'], root) == ['sh', '-c', 'exit 3']
    with pytest.raises(OpsReadyError, match='empty'):
        fileset.check_argv('', root)
    with pytest.raises(OpsReadyError, match='exit 3'):
        fileset.run_check(['sh', '-c', 'echo broken config >&2; exit 3'], str(tmp_path), 10)
    with pytest.raises(OpsReadyError, match='broken config'):
        fileset.run_check(['sh', '-c', 'echo broken config >&2; exit 3'], str(tmp_path), 10)
    with pytest.raises(OpsReadyError, match='not installed'):
        fileset.run_check(['/nonexistent/checker'], str(tmp_path), 10)


def test_a_scratch_root_that_holds_files_is_refused_and_left_alone(tmp_path):
    tree = tmp_path / 'src'
    tree.mkdir()
    (tree / 'a.conf').write_text('a\n')
    (tmp_path / 'backups').mkdir()
    create_archive([str(tree)], str(tmp_path / 'backups'), 'a', compression='gzip')
    busy = tmp_path / 'busy'
    busy.mkdir()
    (busy / 'keep.txt').write_text('mine\n')
    result = fileset.drill_fileset(str(tmp_path / 'backups'), 'a', str(busy))
    assert not result['ok'] and 'not an empty directory' in result['error']
    assert (busy / 'keep.txt').read_text() == 'mine\n'
