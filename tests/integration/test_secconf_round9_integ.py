"""Security and conformance review, round 9 (integration layer): real ansible-playbook runs.

- json_log callback: the log's missing directories were made with ``os.makedirs`` (0777 minus the umask): under
  umask 000 (a service with UMask=0000, an operator's shell) every account could write there, rename the log away
  or plant a link at its name.
- recovery role: the rollback record was checked with ``stat`` (no follow) and then read with ``slurp`` (which
  follows links): the application's account could swap a link in between and root's file became the record.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.harness.playbook import run_playbook, write_playbook


@pytest.fixture
def umask_000():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_json_log_directories_are_not_world_writable_under_umask_000(tmp_path, umask_000):
    """The directories the callback makes for its log are never writable by other accounts, whatever the umask."""
    top = tmp_path / 'logs'
    log = top / 'ops' / 'run' / 'tasks.jsonl'
    tasks = [{'name': 'one step', 'ansible.builtin.debug': {'msg': 'x'}}]
    result = run_playbook(write_playbook(tmp_path, tasks), envvars={
        'ANSIBLE_CALLBACKS_ENABLED': 'opsready.operations.json_log', 'OPSREADY_JSON_LOG_PATH': str(log)})
    assert result.rc == 0, result.stdout[-2000:]
    assert json.loads(log.read_text().splitlines()[0])['context']['task'] == 'one step'
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.lstat().st_mode) for p in [top, top / 'ops', log.parent, log]}
    assert {name: '%o' % mode for name, mode in modes.items() if mode & 0o022} == {}


# A callback of the test's own: when the role starts the task that reads the rollback record, the application's account
# (here the test) swaps the record it had checked for a link to a root-only file. Callbacks run in the controller
# before the task is sent to the host, so the window between the role's check and its read is hit every time.
SWAPPER = '''
import os
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'swap_record'
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        if task.get_name().endswith('Read the record of an earlier rollback'):
            record = os.environ['SWAP_RECORD']
            os.unlink(record)
            os.symlink(os.environ['SWAP_TARGET'], record)
            open(os.environ['SWAP_DONE'], 'w').close()
'''


def test_recovery_rollback_record_swapped_for_a_link_after_the_check_is_not_read(tmp_path):
    """The record was checked with ``stat`` (no follow) and then read with ``slurp``, which follows links: a link
    swapped in between made root read its own 0600 file as the record (the rollback was skipped, and the secret
    was written into the new 0644 record). The read is now one no-follow open, checked on its descriptor."""
    root = tmp_path / 'srv' / 'myapp'
    for release in ('v1', 'v2'):
        (root / 'releases' / release).mkdir(parents=True)
    (root / 'current').symlink_to('releases/v2')
    record = root / '.opsready-rollback.json'
    record.write_text('{"from": "v3", "to": "v1"}\n')
    secret = tmp_path / 'root-only.json'
    secret.write_text('{"from": "S3cret-from-root-only-file", "to": "v2"}\n')
    secret.chmod(0o600)
    play = tmp_path / 'play'
    (play / 'callback_plugins').mkdir(parents=True)   # ansible-runner sets ANSIBLE_CALLBACK_PLUGINS: use the play's
    (play / 'callback_plugins' / 'swap_record.py').write_text(SWAPPER)
    (play / 'recovery.yml').write_text(json.dumps([{'name': 'recovery', 'hosts': 'localhost', 'gather_facts': False,
                                                    'roles': [{'role': 'opsready.operations.recovery'}]}]))
    swapped = tmp_path / 'swapped'
    result = run_playbook(str(play / 'recovery.yml'), extravars={
        'recovery_app': {'path': str(root)}, 'recovery_databases': [], 'recovery_file_restores': [],
        'recovery_services': []}, envvars={
        'ANSIBLE_CALLBACKS_ENABLED': 'swap_record', 'SWAP_RECORD': str(record), 'SWAP_TARGET': str(secret),
        'SWAP_DONE': str(swapped)})
    assert swapped.exists(), 'the callback did not run: the test proves nothing'
    assert 'S3cret-from-root-only-file' not in result.stdout
    written = '' if record.is_symlink() else record.read_text()
    assert 'S3cret' not in written, 'root-only content copied into the 0644 record: ' + written
    assert result.rc != 0 and 'symlink' in result.stdout and '.opsready-rollback.json' in result.stdout, \
        result.stdout[-3000:]
    assert os.readlink(root / 'current') == 'releases/v2'   # nothing done on a record it would not read
    assert secret.read_text() == '{"from": "S3cret-from-root-only-file", "to": "v2"}\n'


# MariaDB logins: the password reaches the client through a 0600 option file, where a raw line break ended its value
# and started options of its own. A password with odd characters must log in, and appear in no output.
ODD_PASSWORD = 'Pw9\'"\\ #;$(id)%s\nhost=evil.invalid\r\n!include /etc/shadow\t€ '


def test_mariadb_password_with_odd_characters_logs_in_and_is_never_shown(maria_db, tmp_path):
    """A password with a quote, backslash, ``#``, ``$()``, ``%s``, a line break followed by option lines, a tab and
    non-ASCII: before, the option file the client read held ``password="Pw9...`` cut at the line break and then
    ``host=evil.invalid`` (the login went to another host) and ``!include /etc/shadow``. Now the backup logs in, and
    the password is in no job event, stdout, json_log line or file written."""
    server = maria_db.server
    maria_db.sql('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);')
    literal = ODD_PASSWORD.replace('\\', '\\\\').replace("'", "\\'").replace('\n', '\\n').replace('\r', '\\r')
    server.sql("CREATE USER odd9@'%%' IDENTIFIED BY '%s'; GRANT ALL ON `%s`.* TO odd9@'%%'; "
               "GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO odd9@'%%';" % (literal, maria_db.name), superuser=True)
    try:
        dest = tmp_path / 'backups'
        log = tmp_path / 'logs' / 'tasks.jsonl'
        vault = tmp_path / 'vault.json'
        vault.write_text(json.dumps({'odd_password': ODD_PASSWORD}))
        book = tmp_path / 'play.yml'
        book.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'vars_files': [str(vault)], 'tasks': [
            {'name': 'backup', 'opsready.operations.db_backup': {
                'engine': 'mariadb', 'database': maria_db.name, 'dest': str(dest), 'login_host': server.host,
                'login_port': server.port, 'login_user': 'odd9', 'login_password': '{{ odd_password }}'}},
            {'name': 'verify', 'opsready.operations.backup_verify': {
                'path': str(dest)}},
        ]}]))
        result = run_playbook(str(book), verbosity=3, envvars={
            'ANSIBLE_CALLBACKS_ENABLED': 'opsready.operations.json_log', 'OPSREADY_JSON_LOG_PATH': str(log)})
        assert result.rc == 0, result.stdout[-3000:]
        assert result.result('backup')['manifest']['verification']['ok'] is True
        pieces = [ODD_PASSWORD, ODD_PASSWORD.strip(), 'Pw9\'"\\ #;$(id)%s', json.dumps(ODD_PASSWORD)[1:-1]]
        shown = [json.dumps(result.events), result.stdout, log.read_text()]
        shown += [p.read_bytes().decode('utf-8', 'replace') for p in dest.rglob('*') if p.is_file()]
        for text in shown:
            assert not [p for p in pieces if p in text]
    finally:
        server.sql("DROP USER IF EXISTS odd9@'%'", superuser=True)
