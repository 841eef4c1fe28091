"""Security and Ansible-conformance sweep, round 7, run the way Ansible runs a module (its own process, arguments
from a file, check mode through ``_ansible_check_mode``; everything it prints is read).

- db_backup / redis_backup with ``retention``: check mode must report the artifacts the real run then deletes (the
  real run prunes after writing its new, verified backup), and delete nothing; the retention step of a run must not
  remove other sets' files behind the run's back (leftovers of another set, maybe still being written).
- cert_info: one passphrase per encrypted key (``privatekey_passphrases``), never shown.
- backup_rekey: the decrypting child's report is read with the catalog's strict JSON reader, with a size cap.
"""

from __future__ import annotations

import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]


def run_module(tmp_path: Path, module: str, params: dict, check: bool = False, diff: bool = False) -> tuple:
    """(result, everything printed) of one module run as Ansible runs it."""
    args = tmp_path / ('args-%s.json' % module)
    params = dict(params, _ansible_check_mode=check, _ansible_diff=diff)
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


def snapshot(directory: Path) -> dict:
    """Every file under ``directory`` with its size and mtime: what "changed nothing on disk" compares."""
    found = {}
    for path in sorted(directory.rglob('*')):
        st = os.lstat(path)
        found[str(path.relative_to(directory))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


# --- db_backup: check mode predicts retention ----------------------------------------------------------------------

def _sqlite_source(tmp_path: Path) -> str:
    db = tmp_path / 'shop.sqlite'
    with sqlite3.connect(str(db)) as conn:
        conn.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')
        conn.executemany('INSERT INTO t (v) VALUES (?)', [('row %d' % i,) for i in range(50)])
    conn.close()
    return str(db)


def _backups(tmp_path: Path, count: int, verify: bool = True) -> dict:
    source = _sqlite_source(tmp_path)
    dest = tmp_path / 'backups'
    params = {'engine': 'sqlite', 'database': source, 'dest': str(dest), 'verify': verify}
    for dummy in range(count):
        result, printed = run_module(tmp_path, 'db_backup', params)
        assert result.get('changed') is True and not result.get('failed'), printed[-2000:]
        time.sleep(1.1)   # distinct timestamps in the artifact names
    return params


@pytest.mark.parametrize('retention', [{'keep_last': 1}, {'keep_last': 2}, {'keep_last': 4}, {'keep_days': 0}],
                         ids=['keep_last=1', 'keep_last=2', 'keep_last=4', 'keep_days=0'])
def test_db_backup_check_mode_reports_what_the_real_run_deletes(tmp_path, retention):
    """Check mode said ``deleted: []`` while the real run on the same input pruned; keep_last=1 also needs the new
    backup to be the newest VERIFIED full (verify is on): the old newest verified one then goes."""
    params = dict(_backups(tmp_path, 3), retention=retention)
    dest = tmp_path / 'backups'
    before = snapshot(dest)
    checked, printed = run_module(tmp_path, 'db_backup', params, check=True)
    assert checked.get('changed') is True and not checked.get('failed'), printed[-2000:]
    assert snapshot(dest) == before, 'check mode changed the backup directory'
    real, printed = run_module(tmp_path, 'db_backup', params)
    assert real.get('changed') is True and not real.get('failed'), printed[-2000:]
    assert checked['deleted'] == real['deleted']
    for path in real['deleted']:
        assert not os.path.exists(path)


def test_db_backup_check_mode_without_verify_keeps_the_verified_full(tmp_path):
    """verify=false: the new backup is not verified, so the real run keeps the newest verified one; check mode must
    say the same (regression guard for the verified/unverified split of the prediction)."""
    params = dict(_backups(tmp_path, 3), retention={'keep_last': 1}, verify=False)
    checked, printed = run_module(tmp_path, 'db_backup', params, check=True)
    assert not checked.get('failed'), printed[-2000:]
    real, printed = run_module(tmp_path, 'db_backup', params)
    assert not real.get('failed'), printed[-2000:]
    assert checked['deleted'] == real['deleted'] and len(real['deleted']) == 2


def test_db_backup_retention_leaves_other_sets_leftovers_alone(tmp_path):
    """The retention step removed every unvouched file of the directory older than an hour (another database's
    staging, perhaps still being written by a long run) without listing it anywhere; check mode listed nothing.
    The run's own set's leftovers are removed under its lock (and reported); other sets' are theirs."""
    params = dict(_backups(tmp_path, 1), retention={'keep_last': 5})
    dest = tmp_path / 'backups'
    other = dest / 'sqlite-other-full-20261201T000000Z.sqlite.partial'
    other.write_bytes(b'another run is writing this')
    old = time.time() - 7200
    os.utime(other, (old, old))
    checked, printed = run_module(tmp_path, 'db_backup', params, check=True)
    assert not checked.get('failed'), printed[-2000:]
    real, printed = run_module(tmp_path, 'db_backup', params)
    assert not real.get('failed'), printed[-2000:]
    assert other.exists(), 'the retention step of another set removed it'
    assert checked['leftovers_removed'] == real['leftovers_removed'] == []


@pytest.fixture
def redis_server():
    from tests.harness.redis import RedisServer
    server = RedisServer().start()
    try:
        server.fill(50)
        yield server
    finally:
        server.stop()


def test_redis_backup_check_mode_reports_what_the_real_run_deletes(tmp_path, redis_server):
    """As for db_backup: redis_backup shares the run (``jobs.run_backup``) and said ``deleted: []`` in check mode."""
    dest = tmp_path / 'backups'
    params = {'host': '127.0.0.1', 'port': redis_server.port, 'password': redis_server.password, 'dest': str(dest)}
    for dummy in range(2):
        result, printed = run_module(tmp_path, 'redis_backup', params)
        assert result.get('changed') is True and not result.get('failed'), printed[-2000:]
        time.sleep(1.1)
    params['retention'] = {'keep_last': 1}
    before = snapshot(dest)
    checked, printed = run_module(tmp_path, 'redis_backup', params, check=True)
    assert not checked.get('failed'), printed[-2000:]
    assert snapshot(dest) == before
    real, printed = run_module(tmp_path, 'redis_backup', params)
    assert not real.get('failed'), printed[-2000:]
    assert checked['deleted'] == real['deleted'] and len(real['deleted']) == 2
    assert redis_server.password not in printed


# --- backup_rekey: the child's report ------------------------------------------------------------------------------

def _child_with_report(raw: bytes):
    from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey
    child = object.__new__(rekey._DecryptingChild)
    child.name = '/srv/backups/app.sqlite.zst.age'
    child.received = 5
    child.pid = None
    read_end, write_end = os.pipe()
    child._fds = [read_end]
    child._status = read_end
    pid = os.fork()
    if pid == 0:   # a writer, so a large report does not block on the pipe buffer
        try:
            os.close(read_end)
            view = memoryview(raw)
            while view:
                view = view[os.write(write_end, view):]
        finally:
            os._exit(0)
    os.close(write_end)
    return child, pid


@pytest.mark.parametrize('raw,why', [
    (b'{"ok": false, "message": "chunk 3 failed authentication", "ok": true, "size": 5, "sha256": "00"}', 'twice'),
    (b'{"ok": true, "size": NaN, "sha256": "00"}', 'NaN'),
    (b'[{"ok": true, "size": 5}]', 'not a JSON object'),
    (b'{"ok": true, "size": 5, "sha256": "' + b'0' * (2 * 1024 * 1024) + b'"}', 'bytes'),
], ids=['duplicate', 'nan', 'array', 'huge'])
def test_rekey_child_report_is_read_strictly(raw, why):
    """The report decided whether a re-encrypted file replaced the old one: a duplicated ``ok`` was read as its last
    value (a failed authentication then reported as success), NaN taken, a report of any size read whole."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
    child, writer = _child_with_report(raw)
    try:
        with pytest.raises(OpsReadyError) as caught:
            child.result()
    finally:
        os.waitpid(writer, 0)
        child._close_fds()
    message = caught.value.message
    assert why in message and 'old file was kept' in message, message
    assert len(message) < 2000


def test_rekey_child_sound_report_is_taken():
    """Regression guard: a well-formed report still passes."""
    child, writer = _child_with_report(b'{"ok": true, "size": 5, "sha256": "ab"}')
    try:
        assert child.result()['sha256'] == 'ab'
    finally:
        os.waitpid(writer, 0)
        child._close_fds()


# --- cert_info: a passphrase per key ---------------------------------------------------------------------------------

def _encrypted_pairs(tmp_path: Path, passphrases: list) -> list:
    sys.path.insert(0, str(ROOT / 'tests' / 'unit' / 'plugins' / 'module_utils' / 'certs'))
    from cryptography.hazmat.primitives import serialization
    from pki import CA, cert_pem, ec_key
    ca = CA()
    pairs = []
    for index, passphrase in enumerate(passphrases):
        key = ec_key()
        cert, dummy = ca.issue('app%d.test' % index, days_left=60, key=key)
        crt, pem = tmp_path / ('app%d.crt' % index), tmp_path / ('app%d.key' % index)
        crt.write_bytes(cert_pem(cert))
        pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(passphrase.encode())))
        pem.chmod(0o600)
        pairs.append((str(crt), str(pem), passphrase))
    return pairs


def test_cert_info_takes_one_passphrase_per_key_and_never_shows_them(tmp_path):
    """Two encrypted keys with different passphrases (what the certificates role inventories): one
    ``privatekey_passphrase`` could not open both."""
    pairs = _encrypted_pairs(tmp_path, ['Fir5t-pass-n0t-shown', 'Sec0nd-pass-n0t-shown'])
    params = {'paths': [c for c, k, p in pairs], 'privatekey_paths': {c: k for c, k, p in pairs},
              'privatekey_passphrases': {c: p for c, k, p in pairs}, 'on_error': 'report'}
    result, printed = run_module(tmp_path, 'cert_info', params)
    assert not result.get('failed') and result['errors'] == [], printed[-2000:]
    assert [c['key_matches'] for c in result['certificates']] == [True, True]
    for dummy, dummy, passphrase in pairs:
        assert passphrase not in printed


def test_cert_info_passphrases_override_the_shared_one(tmp_path):
    """privatekey_passphrase stays the default for keys without an entry of their own."""
    pairs = _encrypted_pairs(tmp_path, ['Shared-pass-n0t-shown', 'Own-pass-n0t-shown'])
    params = {'paths': [c for c, k, p in pairs], 'privatekey_paths': {c: k for c, k, p in pairs},
              'privatekey_passphrase': pairs[0][2], 'privatekey_passphrases': {pairs[1][0]: pairs[1][2]}}
    result, printed = run_module(tmp_path, 'cert_info', params)
    assert not result.get('failed'), printed[-2000:]
    assert [c['key_matches'] for c in result['certificates']] == [True, True]
    assert pairs[0][2] not in printed and pairs[1][2] not in printed


def test_cert_info_wrong_passphrase_is_reported_without_it(tmp_path):
    pairs = _encrypted_pairs(tmp_path, ['Right-pass-n0t-shown'])
    crt, key, dummy = pairs[0]
    wrong = 'Wr0ng-pass-n0t-shown'
    result, printed = run_module(tmp_path, 'cert_info', {'paths': [crt], 'privatekey_paths': {crt: key},
                                                         'privatekey_passphrases': {crt: wrong}})
    assert result.get('failed') is True and key in result['msg'], printed[-2000:]
    assert wrong not in printed


# --- credentials inside URL options that are not no_log ------------------------------------------------------------
URL_SECRET = 'Url-s3cret-n0t-in-0utput'


@pytest.fixture(scope='module')
def forbidding_endpoint():
    """An endpoint that answers every request at once with 403: the cloud libraries retry a refused connection
    (google-cloud-storage for 120 s), never a 403, so each case fails in a second, as a wrong credential does."""
    class Forbid(http.server.BaseHTTPRequestHandler):
        def _forbid(self):
            self.send_response(403)
            self.send_header('Content-Length', '0')
            self.end_headers()
        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forbid

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Forbid)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield '127.0.0.1:%d' % server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize('options', [
    {'backend': 's3', 'bucket': 'b', 'region': 'us-east-1', 'access_key': 'AKIDEXAMPLE', 'secret_key': 'x' * 20,
     'endpoint_url': 'http://minio:%s@{endpoint}' % URL_SECRET},
    {'backend': 's3', 'bucket': 'b', 'region': 'us-east-1', 'access_key': 'AKIDEXAMPLE', 'secret_key': 'x' * 20,
     'endpoint_url': 'http://{endpoint}/?X-Amz-Signature=%s' % URL_SECRET},
    {'backend': 'azure', 'container': 'c', 'account_url': 'http://{endpoint}/acct?sv=2022-11-02&sig=%s' % URL_SECRET},
    {'backend': 'gcs', 'bucket': 'b', 'project': 'p', 'endpoint_url': 'http://gcs:%s@{endpoint}' % URL_SECRET},
], ids=['s3-userinfo', 's3-signature', 'azure-sas-url', 'gcs-userinfo'])
def test_backup_copy_url_credentials_are_never_shown(tmp_path, options, forbidding_endpoint):
    """endpoint_url and account_url are not secret options, but an operator may write credentials into them (a
    MinIO user:password@host, an Azure account SAS URL): Ansible echoed them as ``invocation`` and the store's name
    carried them into every message."""
    src = tmp_path / 'src'
    src.mkdir()
    options = {key: value.replace('{endpoint}', forbidding_endpoint) for key, value in options.items()}
    result, printed = run_module(tmp_path, 'backup_copy', dict(options, src=str(src)))
    assert 'unparsed' not in result, printed[-2000:]
    assert result.get('failed'), printed[-2000:]
    assert URL_SECRET not in printed


@pytest.mark.parametrize('url', ['http://acme:%s@127.0.0.1:1/directory', 'http://127.0.0.1:1/directory?token=%s'],
                         ids=['userinfo', 'token'])
def test_cert_renew_acme_directory_url_credentials_are_never_shown(tmp_path, url):
    sys.path.insert(0, str(ROOT / 'tests' / 'unit' / 'plugins' / 'module_utils' / 'certs'))
    from pki import CA
    crt, key, dummy = CA().write_leaf(tmp_path, 'due.test', days_left=2)
    account = tmp_path / 'account.key'
    account.write_bytes(Path(key).read_bytes())
    account.chmod(0o600)
    params = {'path': crt, 'privatekey_path': key,
              'acme': {'directory_url': url % URL_SECRET, 'account_key_path': str(account), 'agree_tos': True,
                       'challenge': 'http-01', 'webroot': str(tmp_path)}}
    result, printed = run_module(tmp_path, 'cert_renew', params)
    assert result.get('failed') is True, printed[-2000:]
    assert URL_SECRET not in printed


# --- check mode, then the real run on the same input: same verdict, nothing changed by check mode ------------------

def _case_log_rotate(tmp_path: Path) -> tuple:
    logs = tmp_path / 'logs'
    logs.mkdir()
    for name in ('app.log', 'small.log'):
        (logs / name).write_text('line\n' * (400 if name == 'app.log' else 1))
    for index in (1, 2, 3):
        (logs / ('app.log.%d' % index)).write_text('old %d\n' % index)
    params = {'paths': [str(logs / '*.log')], 'size': '1k', 'rotate': 2, 'compress': False,
              'state_file': str(tmp_path / 'logs-state' / 'state.json')}
    return params, tmp_path, ('rotated', 'deleted', 'not_rotated', 'missing', 'compressed')


def _case_file_backup(tmp_path: Path) -> tuple:
    tree = tmp_path / 'etc'
    tree.mkdir()
    (tree / 'app.conf').write_text('a = 1\n')
    dest = tmp_path / 'archives'
    for dummy in range(3):
        result, printed = run_module(tmp_path, 'file_backup', {'paths': [str(tree)], 'dest': str(dest), 'name': 'etc'})
        assert result.get('changed'), printed[-2000:]
        time.sleep(1.1)
    return {'paths': [str(tree)], 'dest': str(dest), 'name': 'etc', 'keep_count': 1, 'keep_days': 0}, dest, \
        ('deleted', 'leftovers_removed', 'file_count', 'not_archived')


def _case_backup_prune(tmp_path: Path) -> tuple:
    params = _backups(tmp_path, 3)
    return {'path': params['dest'], 'keep_last': 1}, tmp_path / 'backups', \
        ('deleted', 'kept', 'leftovers_removed', 'deleted_count', 'kept_count', 'lists_truncated')


def _case_backup_metrics(tmp_path: Path) -> tuple:
    params = _backups(tmp_path, 1)
    (tmp_path / 'prom').mkdir()
    return {'backup_dir': params['dest'], 'textfile': str(tmp_path / 'prom' / 'backups.prom')}, tmp_path, \
        ('breached',)


def _case_prometheus_rules(tmp_path: Path) -> tuple:
    (tmp_path / 'rules').mkdir()
    return {'dest': str(tmp_path / 'rules' / 'opsready.yml'), 'validate': 'never'}, tmp_path, ('rules', 'groups')


def _case_file_restore(tmp_path: Path) -> tuple:
    tree = tmp_path / 'etc'
    (tree / 'sub').mkdir(parents=True)
    (tree / 'app.conf').write_text('a = 1\n')
    (tree / 'sub' / 'b.conf').write_text('b = 2\n')
    archives = tmp_path / 'archives'
    result, printed = run_module(tmp_path, 'file_backup', {'paths': [str(tree)], 'dest': str(archives), 'name': 'etc'})
    assert result.get('changed'), printed[-2000:]
    target = tmp_path / 'restore'
    target.mkdir()
    (target / 'keep.txt').write_text('already here\n')
    return {'src': str(archives), 'name': 'etc', 'dest': str(target)}, target, \
        ('restored', 'directories', 'unchanged', 'not_restored')


@pytest.mark.parametrize('module,params', [
    ('backup_metrics', {'backup_dir': '{tmp}', 'textfile': '{tmp}/missing/backups.prom'}),
    ('health_check', {'metrics': ['load'], 'checks': [], 'textfile_path': '{tmp}/missing/health.prom'}),
], ids=['backup_metrics', 'health_check'])
def test_check_mode_meets_the_textfile_refusal_of_the_real_run(tmp_path, module, params):
    """A textfile in a directory that does not exist: the real run fails, backup_metrics' check mode said ``changed``
    and ok (health_check: regression guard, it already refused; db_insights and slo_report share the fix)."""
    params = {k: v.replace('{tmp}', str(tmp_path)) if isinstance(v, str) else v for k, v in params.items()}
    real, printed = run_module(tmp_path, module, params)
    assert real.get('failed') is True and 'does not exist' in real['msg'], printed[-2000:]
    checked, printed = run_module(tmp_path, module, params, check=True)
    assert checked.get('failed') is True and checked['msg'] == real['msg'], printed[-2000:]


@pytest.mark.parametrize('case', [_case_log_rotate, _case_file_backup, _case_backup_prune, _case_backup_metrics,
                                  _case_prometheus_rules, _case_file_restore],
                         ids=['log_rotate', 'file_backup', 'backup_prune', 'backup_metrics', 'prometheus_rules',
                              'file_restore'])
def test_check_mode_matches_the_real_run_and_changes_nothing(tmp_path, case):
    """Regression guard for the class of fault 1 across the modules that change local files: check mode reports
    what the real run then does (``changed``, the lists), leaves the disk as it was, and a second real run is
    idempotent where the module's state says so."""
    params, watched, keys = case(tmp_path)
    module = case.__name__[len('_case_'):]
    before = snapshot(watched)
    checked, printed = run_module(tmp_path, module, params, check=True, diff=True)
    assert not checked.get('failed') and 'unparsed' not in checked, printed[-3000:]
    after = {k: v for k, v in snapshot(watched).items() if not k.startswith('args-')}
    assert after == {k: v for k, v in before.items() if not k.startswith('args-')}, 'check mode changed the disk'
    real, printed = run_module(tmp_path, module, params, diff=True)
    assert not real.get('failed') and 'unparsed' not in real, printed[-3000:]
    assert checked['changed'] == real['changed']
    for key in keys:
        assert checked.get(key) == real.get(key), key


# --- argument specs: every secret-named option is no_log ---------------------------------------------------------
MODULES = sorted(p.stem for p in (ROOT / 'plugins' / 'modules').glob('*.py') if p.stem != '__init__')
SECRET_NAME = r'password|passphrase|secret|token|hmac_key|sas|connection_string|_key$|key_content|eab_kid|headers|^url$'
# an http check's URL is its identity (names, messages): its credentials are starred instead (urlsecrets)
NOT_SECRET = {('health_check', 'checks.url')}


class _Spec(Exception):
    pass


def _argument_spec(name: str, monkeypatch) -> dict:
    import importlib
    module = importlib.import_module('ansible_collections.opsready.operations.plugins.modules.%s' % name)
    captured = {}

    def fake(*args, **kwargs):
        captured.update(kwargs.get('argument_spec') or (args[0] if args else {}))
        raise _Spec()
    monkeypatch.setattr(module, 'AnsibleModule', fake)
    with pytest.raises(_Spec):
        module.main()
    return captured


def _walk(spec: dict, prefix: str = ''):
    for option, definition in spec.items():
        yield prefix + option, definition
        yield from _walk(definition.get('options') or {}, prefix + option + '.')


@pytest.mark.parametrize('name', MODULES)
def test_secret_named_options_are_no_log(name, monkeypatch):
    """Regression guard over all modules: an option named like a secret is no_log (a path to a key file, typed
    path, is not a secret and says no_log=False)."""
    import re
    spec = _argument_spec(name, monkeypatch)
    assert spec
    missing = [option for option, definition in _walk(spec)
               if re.search(SECRET_NAME, option.rsplit('.', 1)[-1]) and definition.get('type') != 'path'
               and 'no_log' not in definition and (name, option) not in NOT_SECRET]
    assert missing == []
