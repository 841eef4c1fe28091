"""Security and conformance review, round 9 (unit layer): age key spelling, the age header grammar, held to Debian's
``age`` (the reference implementation) with fixtures of our own.

age keys are Bech32 strings with a fixed case: a recipient is ``age1...`` in lower case, an identity
``AGE-SECRET-KEY-1...`` in upper case (age's ``ParseX25519Recipient`` compares the type with "age", its
``ParseX25519Identity`` with "AGE-SECRET-KEY-"), and neither is trimmed: age refuses ``AGE1...``,
``age-secret-key-1...``, a key with a space around it and an indented comment in an identity file. Ours accepted
all of them (it lower-cased and stripped), so a key file or a recipient list that age itself refuses worked here,
and a backup's recipients were not the strings the operator would hand to ``age -r``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import wal_archive


@pytest.fixture(scope='module')
def key(tmp_path_factory) -> Dict[str, str]:
    if not shutil.which('age') or not shutil.which('age-keygen'):
        pytest.skip("needs Debian's age (the reference implementation)")
    path = tmp_path_factory.mktemp('agekey') / 'key.txt'
    subprocess.run(['age-keygen', '-o', str(path)], check=True, capture_output=True)
    secret = [line for line in path.read_text().splitlines() if line.startswith('AGE-SECRET-KEY-1')][0]
    recipient = subprocess.run(['age-keygen', '-y', str(path)], check=True, capture_output=True,
                               text=True).stdout.strip()
    return {'secret': secret, 'recipient': recipient, 'dir': str(path.parent)}


def _age_takes_recipient(recipient: str, workdir: str) -> bool:
    proc = subprocess.run(['age', '-r', recipient, '-o', os.devnull], input=b'x', capture_output=True, check=False,
                          cwd=workdir)
    return proc.returncode == 0


def _we_take_recipient(recipient: str) -> bool:
    try:
        encryption.parse_recipient(recipient)
    except OpsReadyError:
        return False
    return True


def _wal_takes_recipient(recipient: str) -> bool:
    try:
        wal_archive.parse_recipient(recipient)
    except wal_archive.RecipientError:
        return False
    return True


def _recipient_spellings(good: str) -> Dict[str, str]:
    return {
        'canonical': good,
        'upper case': good.upper(),
        'leading space': ' ' + good,
        'trailing space': good + ' ',
        'trailing newline': good + '\n',
        'trailing CR': good + '\r',
        'tab before': '\t' + good,
        'mixed case': good[:10] + good[10:20].upper() + good[20:],
        'upper hrp only': 'AGE' + good[3:],
    }


@pytest.mark.parametrize('label', list(_recipient_spellings('age1x')))
def test_recipient_spelling_is_accepted_exactly_when_age_accepts_it(key, label):
    """Every spelling of a recipient is taken exactly when ``age -r`` takes it, by the modules' parser and by the WAL
    archive helper's own copy: upper case and surrounding white space were accepted here, refused by age."""
    spelled = _recipient_spellings(key['recipient'])[label]
    expected = _age_takes_recipient(spelled, key['dir'])
    assert (_we_take_recipient(spelled), _wal_takes_recipient(spelled)) == (expected, expected), label


def test_recipients_option_refuses_what_age_refuses_and_says_how_to_fix_it(key):
    """The modules' ``recipients`` option: an upper-case recipient is refused with the spelling age-keygen prints."""
    with pytest.raises(OpsReadyError, match='lower case') as caught:
        encryption.recipients_option(True, [key['recipient'].upper()], 'the backup')
    assert 'age-keygen -y' in caught.value.message
    with pytest.raises(OpsReadyError, match='white space'):
        encryption.recipients_option(True, [' ' + key['recipient']], 'the backup')
    assert encryption.recipients_option(True, [key['recipient']], 'the backup') == [key['recipient']]


def _age_takes_identity_file(text: str, key: Dict[str, str], tmp_path: Path) -> bool:
    ident = tmp_path / 'ident.txt'
    ident.write_bytes(text.encode('utf-8'))
    sealed = tmp_path / 'sealed.age'
    subprocess.run(['age', '-r', key['recipient'], '-o', str(sealed)], input=b'x', check=True, capture_output=True)
    proc = subprocess.run(['age', '-d', '-i', str(ident), str(sealed)], capture_output=True, check=False)
    return proc.returncode == 0 and proc.stdout == b'x'


def _identity_texts(secret: str) -> Dict[str, str]:
    return {
        'canonical': secret + '\n',
        'no final newline': secret,
        'CRLF': secret + '\r\n',
        'comments and blank lines': '# created by age-keygen\n\n' + secret + '\n\n# end\n',
        'lower case': secret.lower() + '\n',
        'mixed case': secret[:20] + secret[20:30].lower() + secret[30:] + '\n',
        'leading space': ' ' + secret + '\n',
        'trailing space': secret + ' \n',
        'trailing tab': secret + '\t\n',
        'indented comment': '  # note\n' + secret + '\n',
        'blank line of spaces': '   \n' + secret + '\n',
        'vertical tab separator': '# c\x0b' + secret + '\n',
        'form feed line': '\x0c\n' + secret + '\n',
        'unicode line separator': '# c\u2028' + secret + '\n',
        'NEL separator': '# c\x85' + secret + '\n',
    }


@pytest.mark.parametrize('label', list(_identity_texts('AGE-SECRET-KEY-1X')))
def test_identity_file_is_accepted_exactly_when_age_accepts_it(key, tmp_path, label):
    """An identity file (the ``identity`` text or ``identity_file``) is taken exactly when ``age -d -i`` takes it: a
    lower-case key, a key with white space around it and lines split at characters other than LF (``splitlines``
    also splits at VT, FF, NEL, U+2028: a ``# comment`` line then hid a key from age but not from us) were
    accepted here."""
    text = _identity_texts(key['secret'])[label]
    expected = _age_takes_identity_file(text, key, tmp_path)
    try:
        found = encryption.parse_identities(text)
    except OpsReadyError as exc:
        assert key['secret'] not in exc.message and key['secret'].lower() not in exc.message
        ours = False
    else:
        ours = [i.recipient for i in found] == [key['recipient']]
    assert ours == expected, label


def test_identity_errors_say_what_is_wrong_without_showing_the_key(key):
    with pytest.raises(OpsReadyError, match='upper case') as caught:
        encryption.parse_identities(key['secret'].lower())
    assert key['secret'].lower() not in caught.value.message
    with pytest.raises(OpsReadyError, match='white space') as caught:
        encryption.parse_identities(key['secret'] + ' ')
    assert key['secret'] not in caught.value.message


def test_wal_archive_recipients_file_follows_age_rules(key, tmp_path):
    """The WAL helper's ``--recipients-file``: age's rules for a recipients file (comment only at the start of a
    line, no white space around a key; CRLF allowed)."""
    good = tmp_path / 'good.txt'
    good.write_text('# ops\n\n%s\r\n' % key['recipient'])
    assert len(wal_archive.read_recipients(None, str(good))) == 1
    for text in (' %s\n' % key['recipient'], '  # ops\n%s\n' % key['recipient'], key['recipient'].upper() + '\n'):
        bad = tmp_path / 'bad.txt'
        bad.write_text(text)
        with pytest.raises(wal_archive.RecipientError):
            wal_archive.read_recipients(None, str(bad))
        proc = subprocess.run(['age', '-R', str(bad), '-o', os.devnull], input=b'x', capture_output=True,
                              check=False)
        assert proc.returncode != 0, text


# --- the header grammar, against age with headers of our own -------------------------------------------------------
FILE_KEY = bytes(range(16))


def _stanza_lines(recipient: str) -> List[bytes]:
    header = encryption._header(FILE_KEY, [encryption.parse_recipient(recipient)])
    return header.split(b'\n')[1:3]   # "-> X25519 share" and the body


def _file(lines: List[bytes], mac_line: Optional[Callable[[bytes], bytes]] = None) -> bytes:
    """An age file whose header is ``lines`` (after the version line), with a correct MAC over them, and a payload
    of b'ok' under FILE_KEY."""
    head = b'\n'.join([encryption.VERSION_LINE] + lines) + b'\n---'
    mac = hmac.new(encryption._hkdf(FILE_KEY, b'', b'header'), head, hashlib.sha256).digest()
    line = b' ' + encryption._b64(mac)
    if mac_line is not None:
        line = mac_line(mac)
    nonce = bytes(16)
    aead = encryption._c().ChaCha20Poly1305(encryption._hkdf(FILE_KEY, nonce, b'payload'))
    return head + line + b'\n' + nonce + aead.encrypt(bytes(11) + b'\x01', b'ok', None)


def _header_cases(recipient: str) -> Dict[str, bytes]:
    arg, body = _stanza_lines(recipient)
    share = arg.split(b' ')[2]
    raw_share = encryption._unb64(share)
    body64 = b'A' * 64
    padded = base64.b64encode(encryption._unb64(body))
    noncanonical = body[:-1] + bytes([body[-1] + 1])   # 43 columns: the last character carries 2 spare bits
    return {
        'canonical': _file([arg, body]),
        'unknown stanza first': _file([b'-> ssh-foo bar', b'', arg, body]),
        'unknown stanza with 64-column body and empty final line': _file([b'-> grease x', body64, b'', arg, body]),
        'unknown stanza with 64-column body and no final line': _file([b'-> grease x', body64, arg, body]),
        'unknown stanza with 3 args': _file([b'-> grease a b c', b'', arg, body]),
        'trailing space after the share': _file([arg + b' ', body]),
        'two spaces between args': _file([arg.replace(b'X25519 ', b'X25519  '), body]),
        'empty stanza': _file([b'-> ', b'', arg, body]),
        'arrow without space': _file([b'->', b'', arg, body]),
        'non-ASCII argument': _file([b'-> grease \xc3\xa9', b'', arg, body]),
        'X25519 with an extra argument': _file([arg + b' extra', body]),
        'X25519 share padded': _file([b'-> X25519 ' + base64.b64encode(raw_share), body]),
        'body padded': _file([arg, padded]),
        'body with non-canonical last bits': _file([arg, noncanonical]),
        'CRLF stanza line': _file([arg + b'\r', body]),
        'MAC line without space': _file([arg, body], encryption._b64),
        'MAC line with two spaces': _file([arg, body], lambda mac: b'  ' + encryption._b64(mac)),
        'MAC padded': _file([arg, body], lambda mac: b' ' + base64.b64encode(mac)),
        'MAC with trailing space': _file([arg, body], lambda mac: b' ' + encryption._b64(mac) + b' '),
        'no stanza': _file([]),
    }


HEADER_CASES = [
    'canonical',
    'unknown stanza first',
    'unknown stanza with 64-column body and empty final line',
    'unknown stanza with 64-column body and no final line',
    'unknown stanza with 3 args',
    'trailing space after the share',
    'two spaces between args',
    'empty stanza',
    'arrow without space',
    'non-ASCII argument',
    'X25519 with an extra argument',
    'X25519 share padded',
    'body padded',
    'body with non-canonical last bits',
    'CRLF stanza line',
    'MAC line without space',
    'MAC line with two spaces',
    'MAC padded',
    'MAC with trailing space',
    'no stanza',
]


@pytest.mark.parametrize('label', HEADER_CASES)
def test_header_grammar_agrees_with_age(key, tmp_path, label):
    """Regression guard (passed on the old code): every header edge case of the spec's grammar (trailing and double
    spaces, empty stanzas, padded and non-canonical base64, a 64-column body line, the MAC line's shape, unknown
    stanzas beside X25519) is accepted by our decoder exactly when ``age -d`` accepts it."""
    data = _header_cases(key['recipient'])[label]
    sealed = tmp_path / 'case.age'
    sealed.write_bytes(data)
    ident = tmp_path / 'ident.txt'
    ident.write_text(key['secret'] + '\n')
    proc = subprocess.run(['age', '-d', '-i', str(ident), str(sealed)], capture_output=True, check=False)
    age_ok = proc.returncode == 0 and proc.stdout == b'ok'
    try:
        with encryption.DecryptingReader(io.BytesIO(data), encryption.parse_identities(key['secret']), 'case') as rd:
            ours = rd.read() == b'ok'
    except OpsReadyError:
        ours = False
    assert ours == age_ok, (label, proc.stderr[-300:])


# --- safe_slurp: the no-follow read the recovery role's rollback record goes through ------------------------------
def _slurp(tmp_path: Path, src: Path, **options) -> dict:
    from tests.unit.plugins.modules.test_conformance_round7 import run_module
    check = options.pop('check', False)
    result, _out = run_module(tmp_path, 'safe_slurp', dict(options, src=str(src)), check=check)
    return result


def test_safe_slurp_reads_a_small_regular_file_in_check_mode_too(tmp_path):
    record = tmp_path / 'record.json'
    record.write_bytes(b'{"from": "v2", "to": "v1"}\n')
    for check in (False, True):
        result = _slurp(tmp_path, record, check=check)
        assert result.get('failed') is not True, result
        assert (result['changed'], result['exists'], result['size']) == (False, True, record.stat().st_size)
        assert base64.b64decode(result['content']) == record.read_bytes() and result['encoding'] == 'base64'
    missing = _slurp(tmp_path, tmp_path / 'none.json', missing_ok=True)
    assert (missing.get('failed'), missing['exists'], missing['content'], missing['size']) == (None, False, '', 0)
    refused = _slurp(tmp_path, tmp_path / 'none.json')
    assert refused['failed'] is True and str(tmp_path / 'none.json') in refused['msg'], refused


@pytest.mark.parametrize('what', ['symlink', 'dangling symlink', 'fifo', 'hardlink', 'directory', 'too big'])
def test_safe_slurp_refuses_what_root_must_not_read_in_another_accounts_directory(tmp_path, what):
    """Each planted object is refused with a message naming the path, with missing_ok too; a FIFO never blocks."""
    secret = tmp_path / 'root-only'
    secret.write_bytes(b'S3cret-root-only\n')
    secret.chmod(0o600)
    src = tmp_path / 'app' / '.record.json'
    src.parent.mkdir()
    if what == 'symlink':
        src.symlink_to(secret)
    elif what == 'dangling symlink':
        src.symlink_to(tmp_path / 'nothing')
    elif what == 'fifo':
        os.mkfifo(str(src))
    elif what == 'hardlink':
        os.link(str(secret), str(src))
    elif what == 'directory':
        src.mkdir()
    else:
        src.write_bytes(b'x' * 70000)
    result = _slurp(tmp_path, src, missing_ok=True)
    assert result.get('failed') is True and str(src) in result['msg'], result
    assert 'S3cret' not in json.dumps(result)
    assert 'content' not in result


def test_safe_slurp_options_are_checked(tmp_path):
    record = tmp_path / 'r'
    record.write_bytes(b'abc')
    assert _slurp(tmp_path, record, max_size=2)['failed'] is True
    assert base64.b64decode(_slurp(tmp_path, record, max_size=3)['content']) == b'abc'
    bad = _slurp(tmp_path, record, max_size=-1)
    assert bad['failed'] is True and 'max_size' in bad['msg']


# --- MariaDB/MySQL option file: a value with a line break wrote options of its own ----------------------------------
ODD_VALUES = {
    'newline then host': 'pw\nhost=evil.example',
    'newline then plugin-dir': 'pw\nplugin-dir=/tmp/evil\ndefault-auth=evil',
    'CR LF then include': 'pw\r\n!include /etc/shadow',
    'tab, quote and backslash': 'p\tw"\\q\'',
    'spaces around': '  pw  ',
    'escape-like text': 'a\\nb\\s\\t',
    'non-ASCII': 'pässwörd-€',
}


@pytest.mark.skipif(not shutil.which('my_print_defaults'), reason='needs my_print_defaults (mariadb-client)')
@pytest.mark.parametrize('label', list(ODD_VALUES))
def test_mysql_option_file_holds_each_value_as_one_option(label):
    """The password (and user, host, socket) reach the client through a 0600 ``--defaults-extra-file``: a line break
    in a value ended its line and what followed was read as more options (here ``host=`` sends the login elsewhere,
    ``plugin-dir``/``default-auth`` load a library into a client run as root). Each value now reads back, through
    the client library's own parser (``my_print_defaults``), as exactly itself and nothing else."""
    from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.client import MySQLClient
    value = ODD_VALUES[label]
    for field in ('password', 'user', 'host'):
        conn = ConnectionParams(**{field: value, 'port': 3306})
        with MySQLClient(conn).defaults_file() as head:
            path = head[0].split('=', 1)[1]
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            proc = subprocess.run(['my_print_defaults', '--defaults-file=%s' % path, 'client'], capture_output=True,
                                  check=True)
        options = proc.stdout.decode('utf-8').split('\n--')
        options[0] = options[0][2:]
        options[-1] = options[-1][:-1]
        assert options.count('%s=%s' % (field, value)) == 1, (field, options)
        assert {o.split('=', 1)[0] for o in options if not o.startswith(field + '=')} <= {'port', 'protocol'}, options
