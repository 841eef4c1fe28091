"""backup_verify, a real ansible-playbook run, on file_backup archives file_restore refuses for what they hold.

Each archive is crafted by hand beside a manifest whose size and SHA-256 match it (whoever can write the backup
directory can write both). backup_verify read each to its end and said ok; file_restore then refused it. Now
backup_verify fails on each, naming the archive, with the message file_restore's check mode gives (less its "Nothing
was written.") - one per refusal class file_restore has - and an archive file_restore restores still verifies ok.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.harness.hostile_archives import (  # noqa: E402
    AMBIGUOUS, HARDLINK_TO_A_SYMLINK, NAME, NAMES, UNDER, crafted, info, tar_bytes)
from tests.harness.playbook import run_playbook, write_playbook  # noqa: E402

CASES = {
    'two things at one path': AMBIGUOUS['symlink then a directory of that name'],
    'one path spelled twice': AMBIGUOUS['a file and a symlink spelled ./e/x'],
    'hard link to a directory': AMBIGUOUS['a hard link to a directory'],
    'hard link before its file': AMBIGUOUS['a hard link before its file'],
    'hard link to nothing': AMBIGUOUS['a hard link to nothing archived'],
    'hard link to itself': AMBIGUOUS['a hard link to itself'],
    'hard link to a symlink': HARDLINK_TO_A_SYMLINK['a hard link to a symlink'],
    'under a non-directory': UNDER['a symlink then a member below it'],
    'escaping the root': [(info('ok', size=2), b'ok'), (info('a/../../x', size=2), b'hi')],
    'uid beyond 32 bits': [(info('ok', size=2), b'ok'), (info('x', size=2, pax={'uid': str(2 ** 40)}), b'hi')],
    'NUL in a name': [(info('ok', size=2), b'ok'), (NAMES['NUL in a name'], b'hi')],
    'a 300-byte name': [(info('ok', size=2), b'ok'), (NAMES['a 300-byte name'], b'hi')],
    'the root as a symlink': [(info('ok', size=2), b'ok'), (NAMES['the root as a symlink'], None)],
}


def test_backup_verify_fails_where_file_restore_refuses_and_passes_what_it_restores(tmp_path):
    tasks = []
    for number, case in enumerate(sorted(CASES)):
        backups = tmp_path / ('b%d' % number)
        crafted(backups, tar_bytes(CASES[case]))
        target = str(tmp_path / ('t%d' % number))
        # file_restore first: once verification failed (recorded), its catalog no longer offers the archive
        tasks.append({'name': 'restore %s' % case, 'ignore_errors': True, 'check_mode': True,
                      'opsready.operations.file_restore': {'src': str(backups), 'dest': target}})
        tasks.append({'name': 'verify %s' % case, 'ignore_errors': True,
                      'opsready.operations.backup_verify': {'path': str(backups)}})
    crafted(tmp_path / 'sound', tar_bytes([(info('d', tarfile.DIRTYPE, mode=0o755), None), (info('d/f', size=2), b'ff'),
                                           (info('d/h', tarfile.LNKTYPE, link='d/f'), None),
                                           (info('d/s', tarfile.SYMTYPE, link='/etc/hosts'), None)]))
    tasks.append({'name': 'verify sound', 'opsready.operations.backup_verify': {'path': str(tmp_path / 'sound')}})
    result = run_playbook(write_playbook(tmp_path, tasks))
    for case in sorted(CASES):
        verified, restored = result.result('verify %s' % case), result.result('restore %s' % case)
        assert restored['_event'] == 'runner_on_failed', (case, json.dumps(restored)[-2000:])
        assert verified['_event'] == 'runner_on_failed', (case, json.dumps(verified)[-2000:])
        errors = [f['error'] for f in verified['failures']]
        assert len(errors) == 1 and NAME in errors[0], (case, verified['msg'])
        # file_restore's words; only file_restore adds that it wrote nothing (a verify writes nothing in any case)
        assert restored['msg'] == errors[0] + ' Nothing was written.', (case, errors[0], restored['msg'])
        assert 'nothing was written' not in errors[0].lower(), (case, errors[0])
        assert errors[0] in verified['msg'], (case, verified['msg'])
        assert verified['changed'] is True   # the failed verification is recorded in the manifest
    sound = result.result('verify sound')
    assert sound['_event'] == 'runner_on_ok' and sound['failures'] == [], json.dumps(sound)[-2000:]
