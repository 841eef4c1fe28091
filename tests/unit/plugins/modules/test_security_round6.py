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


@pytest.mark.parametrize('query', ['api_key=%s', 'x=1&access_token=%s', 'Signature=%s&v=2', 'PASSWORD=%s',
                                   'sig=%s', 'client_secret=%s#frag'],
                         ids=['api_key', 'access_token', 'signature', 'password', 'sig', 'client_secret'])
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


@pytest.mark.parametrize('url', ['ftp://127.0.0.1/x?token=%s', 'http://127.0.0.1:99999/x?token=%s',
                                 'http:///x?token=%s'], ids=['scheme', 'port', 'host'])
def test_health_check_refused_url_does_not_quote_its_token(tmp_path, url):
    result, printed = run_module(tmp_path, 'health_check', {'checks': [{'type': 'http', 'url': url % SECRET}],
                                                            'metrics': []})
    assert result.get('failed') is True, printed[-2000:]
    assert SECRET not in printed
