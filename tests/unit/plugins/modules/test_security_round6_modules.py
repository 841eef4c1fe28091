"""Security review, round 6: secrets the earlier rounds did not reach, checked the way Ansible runs a module (its
own process, arguments from a file; everything it prints is read: a traceback is Ansible's ``module_stderr``).

- health_check: an http check's URL is its identity (the default name, the messages), and Ansible echoes module
  arguments as ``invocation``. A token in the query string (``?api_key=...``, ``&access_token=...``) must not
  reach the result, the messages, the history or the metrics textfile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
SECRET = 'T0ken-n0t-in-0utput-7f1'


def run_module(tmp_path: Path, module: str, params: dict) -> tuple:
    """(result, everything printed) of one module run as Ansible runs it."""
    args = tmp_path / ('args-%s.json' % module)
    args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': params}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / 'build'), LC_ALL='C.UTF-8')
    proc = subprocess.run([sys.executable, str(ROOT / 'plugins' / 'modules' / ('%s.py' % module)), str(args)],
                          capture_output=True, text=True, env=env, timeout=120, check=False,
                          stdin=subprocess.DEVNULL)
    text = proc.stdout.strip()
    try:
        result = json.loads(text[text.index('{'):]) if '{' in text else {}
    except ValueError:
        result = {'unparsed': text[-2000:]}
    return result, proc.stdout + proc.stderr


# Module runs for two spellings; every other parameter name is covered where the URL is redacted
# (test_security_round6_manifests.py::test_health_url_redaction).
@pytest.mark.parametrize('query', ['api_key=%s', 'x=1&Access_Token=%s#frag'], ids=['api_key', 'access_token'])
def test_health_check_url_query_token_is_redacted_everywhere(tmp_path, query):
    url = 'http://127.0.0.1:1/health?' + (query % SECRET)
    params = {'checks': [{'type': 'http', 'url': url, 'timeout': 2}], 'metrics': [],
              'history_path': str(tmp_path / 'h.jsonl'), 'textfile_path': str(tmp_path / 'h.prom')}
    result, printed = run_module(tmp_path, 'health_check', params)
    assert result.get('checks'), printed[-2000:]
    assert SECRET not in printed
    assert '127.0.0.1:1/health' in result['checks'][0]['name']    # still tells which endpoint
    for written in ('h.jsonl', 'h.prom'):
        assert SECRET not in (tmp_path / written).read_text()


def test_health_check_refused_url_does_not_quote_its_token(tmp_path):
    result, printed = run_module(tmp_path, 'health_check', {'metrics': [], 'checks': [
        {'type': 'http', 'url': 'ftp://127.0.0.1/x?token=' + SECRET}]})
    assert result.get('failed') is True, printed[-2000:]
    assert SECRET not in printed


@pytest.mark.parametrize('url', ['ftp://127.0.0.1/x?token=%s', 'http://127.0.0.1:99999/x?token=%s',
                                 'http:///x?token=%s', 'https://u:%s@127.0.0.1/'],
                         ids=['scheme', 'port', 'host', 'userinfo'])
def test_health_check_url_refusals_never_quote_the_token(url):
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
    from ansible_collections.opsready.operations.plugins.module_utils.health import checks
    with pytest.raises(OpsReadyError) as caught:
        checks.normalise([{'type': 'http', 'url': url % SECRET}])
    assert SECRET not in caught.value.message


# --- cert_renew: privatekey_passphrase ------------------------------------------------------------------------------
PASSPHRASE = 'Pa55phrase-n0t-in-0utput'


def _encrypted_live_pair(tmp_path: Path) -> dict:
    """A CA, a live pair whose key is encrypted with PASSPHRASE, and a certificate issued for that key."""
    sys.path.insert(0, str(ROOT / 'tests' / 'unit' / 'plugins' / 'module_utils' / 'certs'))
    from cryptography.hazmat.primitives import serialization
    from pki import CA, cert_pem, ec_key
    ca = CA()
    ca_cert, _ca_key = ca.write(tmp_path)
    key = ec_key()
    live, _key = ca.issue('app.test', days_left=2, key=key)
    issued, _key = ca.issue('app.test', days_left=80, key=key)
    (tmp_path / 'app.crt').write_bytes(cert_pem(live))
    (tmp_path / 'app.key').write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    (tmp_path / 'app.key').chmod(0o600)
    (tmp_path / 'issued.crt').write_bytes(cert_pem(issued))
    return {'path': str(tmp_path / 'app.crt'), 'privatekey_path': str(tmp_path / 'app.key'),
            'install': str(tmp_path / 'issued.crt'), 'ca_cert': ca_cert}


def test_cert_renew_install_takes_the_live_key_passphrase_and_never_shows_it(tmp_path):
    params = dict(_encrypted_live_pair(tmp_path), privatekey_passphrase=PASSPHRASE)
    result, printed = run_module(tmp_path, 'cert_renew', params)
    assert result.get('changed') is True and not result.get('failed'), printed[-2000:]
    assert PASSPHRASE not in printed
    assert b'ENCRYPTED' in (tmp_path / 'app.key').read_bytes()


def test_cert_renew_install_without_the_passphrase_names_the_option(tmp_path):
    params = _encrypted_live_pair(tmp_path)
    before = (tmp_path / 'app.crt').read_bytes()
    result, printed = run_module(tmp_path, 'cert_renew', params)
    assert result.get('failed') is True and 'privatekey_passphrase' in result['msg'], printed[-2000:]
    assert (tmp_path / 'app.crt').read_bytes() == before


def test_cert_renew_cipher_auto_needs_the_passphrase(tmp_path):
    params = dict(_encrypted_live_pair(tmp_path), privatekey_cipher='auto')
    result, printed = run_module(tmp_path, 'cert_renew', params)
    assert result.get('failed') is True and 'privatekey_passphrase' in result['msg'], printed[-2000:]


@pytest.mark.parametrize('url', ['http://monitor:%s@127.0.0.1:1', 'http://127.0.0.1:1/prom?api_key=%s'],
                         ids=['userinfo', 'query'])
def test_slo_report_prometheus_url_credentials_are_never_shown(tmp_path, url):
    """prometheus_url goes through Ansible's open_url, which sends a user:password@ as Basic auth: it worked, and
    the password was in every failure message and the invocation (the same for a key in the query)."""
    slo = {'name': 'api-errors', 'service': 'api', 'sli': 'error_rate', 'objective': 99.9,
           'total_query': 'http_requests_total', 'bad_query': 'http_requests_total{code=~"5.."}'}
    result, printed = run_module(tmp_path, 'slo_report', {'slos': [slo], 'prometheus_url': url % SECRET,
                                                          'prometheus_timeout': 2, 'fail_on': 'critical'})
    assert 'msg' in result or 'slos' in result, printed[-2000:]
    assert SECRET not in printed
    assert '127.0.0.1:1' in json.dumps(result)     # still says which server
