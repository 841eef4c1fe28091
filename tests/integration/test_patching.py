"""Patching on a real apt: a local repository built in the test, real dpkg, the real playbook.

Every package is an ``opsready-testpkg-*`` installing one VERSION file and a small "library"; apt sees
only the test repository (dedicated sources list, lists and cache), and every test package is purged
afterwards. Tests that touch the dpkg database take a lock so parallel workers never interleave.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.playbook import REPO, run_playbook
from tests.integration.patching_repo import PREFIX, AptTestRepo, apt_test_lock, installed_version

PLAYBOOK = 'playbooks/patching.yml'


@pytest.fixture
def apt_repo():
    with apt_test_lock():
        repo = AptTestRepo()
        try:
            yield repo
        finally:
            repo.cleanup()


def _vars(repo: AptTestRepo, report_dir: Path, **extra):
    data = {
        'patching_apt_config': repo.apt_config(),
        'patching_report_dir': str(report_dir),
        # The shared 2-core test machine runs other suites (CPU, load, their own nearly full test
        # filesystems): judge memory only, so the verdict is about this test.
        'patching_health_metrics': ['memory'],
        'patching_disk_min_free': [{'path': '/', 'min_free_mb': 100}],
        'patching_reboot_required_file': str(report_dir / 'reboot-required'),
    }
    data.update(extra)
    return data


def _report(report_dir: Path):
    files = sorted(report_dir.glob('patching-*.json'))
    assert len(files) == 1, files
    return json.loads(files[0].read_text()), files[0].with_suffix('.md').read_text()


def test_upgrade_reports_versions_keeps_held_package_and_skips_reboot(apt_repo, tmp_path):
    for short in ('alpha', 'bravo'):
        apt_repo.package(short, '1.0')
        apt_repo.package(short, '2.0')
    apt_repo.publish()
    apt_repo.install('alpha', '1.0')
    apt_repo.install('bravo', '1.0')
    # The update will ask for a reboot (as a kernel or libc update does on Debian).
    (tmp_path / 'reboot-required').write_text('*** System restart required ***\n')
    (tmp_path / 'reboot-required.pkgs').write_text(PREFIX + 'alpha\n')
    # A long-running process using the "library" the update replaces.
    holder = subprocess.Popen([sys.executable, '-c', (
        'import mmap, sys, time\n'
        'f = open(sys.argv[1], "rb"); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n'
        'print("ready", flush=True); time.sleep(300)\n'), '/usr/lib/%salpha/libopsready-test.so' % PREFIX],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'ready'
        run = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path, patching_hold=[PREFIX + 'bravo']), diff=True)
        assert run.rc == 0, run.stdout[-4000:]
        patch = run.result('Apply OS updates')
    finally:
        holder.kill()
        holder.wait()

    # On the host: alpha upgraded for real, bravo untouched and not left held. (Once, in CI only, alpha stayed at
    # 1.0 with the module reporting ok and nothing more known: the message keeps what the module planned.)
    assert installed_version(PREFIX + 'alpha') == '2.0', json.dumps(
        {key: patch.get(key) for key in ('plan', 'held', 'upgraded', 'released_holds', 'changed')}, default=str)
    assert Path('/usr/share/%salpha/VERSION' % PREFIX).read_text() == '2.0\n'
    assert installed_version(PREFIX + 'bravo') == '1.0'
    holds = subprocess.run(['apt-mark', 'showhold'], capture_output=True, text=True, check=False).stdout.split()
    assert PREFIX + 'bravo' not in holds

    # The module's result.
    assert patch['changed'] is True
    assert [(u['name'], u['old'], u['new']) for u in patch['upgraded']] == [(PREFIX + 'alpha', '1.0', '2.0')]
    assert [(h['name'], h['old'], h['new']) for h in patch['held']] == [(PREFIX + 'bravo', '1.0', '2.0')]
    assert patch['reboot_required'] is True and patch['reboot_required_by'] == [PREFIX + 'alpha']
    assert patch['reboot_possible'] is False
    assert any('container' in b or 'machine running Ansible' in b for b in patch['reboot_blockers'])
    assert holder.pid in [p['pid'] for p in patch['processes_using_old_files']]
    assert 'A reboot is required' in run.stdout
    assert '%salpha:all 1.0' % PREFIX in run.stdout and '%salpha:all 2.0' % PREFIX in run.stdout   # --diff

    # The report a user reads.
    report, markdown = _report(tmp_path)
    entry = report['hosts']['localhost']
    assert entry['status'] == 'patched'
    assert [(u['name'], u['old'], u['new']) for u in entry['upgraded']] == [(PREFIX + 'alpha', '1.0', '2.0')]
    assert entry['held'][0]['name'] == PREFIX + 'bravo'
    assert entry['reboot']['required'] is True and entry['reboot']['performed'] is False
    assert entry['reboot']['skipped_reason']
    assert entry['post_check'] in ('ok', 'warning')
    assert report['summary']['packages_upgraded'] == 1
    assert '%salpha 1.0 -> 2.0' % PREFIX in markdown
    assert '%sbravo (2.0 available)' % PREFIX in markdown
    assert 'required, skipped:' in markdown

    # A second run has nothing to do: not changed, reported unchanged, bravo still held back.
    again = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path, patching_hold=[PREFIX + 'bravo'],
                                                   patching_run_id='second'))
    assert again.rc == 0
    second = again.result('Apply OS updates')
    assert second['changed'] is False and second['upgraded'] == []
    assert installed_version(PREFIX + 'bravo') == '1.0'
    assert json.loads((tmp_path / 'patching-second.json').read_text())['hosts']['localhost']['status'] == 'unchanged'


def test_check_mode_plans_without_changing_anything(apt_repo, tmp_path):
    apt_repo.package('alpha', '1.0')
    apt_repo.package('alpha', '2.0')
    apt_repo.publish()
    apt_repo.install('alpha', '1.0')
    # check mode does not refresh package lists: the lists must exist, as after the last real update.
    subprocess.run(['apt-get', '-q'] + [a for k, v in apt_repo.apt_config().items() for a in ('-o', '%s=%s' % (k, v))]
                   + ['update'], check=True, capture_output=True)
    run = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path), check=True, diff=True)
    assert run.rc == 0, run.stdout[-3000:]
    patch = run.result('Apply OS updates')
    assert patch['changed'] is True
    assert [(u['name'], u['old'], u['new']) for u in patch['upgraded']] == [(PREFIX + 'alpha', '1.0', '2.0')]
    assert installed_version(PREFIX + 'alpha') == '1.0'
    report, _markdown = _report(tmp_path)
    assert report['hosts']['localhost']['status'] == 'planned'
    assert report['settings']['check_mode'] is True


def test_security_only_upgrades_only_security_archive(apt_repo, tmp_path):
    apt_repo.package('sec', '1.0')
    apt_repo.package('sec', '1.1', archive='security')
    apt_repo.package('reg', '1.0')
    apt_repo.package('reg', '1.1')
    apt_repo.publish()
    apt_repo.install('sec', '1.0')
    apt_repo.install('reg', '1.0')
    run = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path, patching_security_only=True))
    assert run.rc == 0, run.stdout[-3000:]
    assert installed_version(PREFIX + 'sec') == '1.1'
    assert installed_version(PREFIX + 'reg') == '1.0'
    patch = run.result('Apply OS updates')
    assert [u['name'] for u in patch['upgraded']] == [PREFIX + 'sec']
    assert [p['name'] for p in patch['plan']['not_security']] == [PREFIX + 'reg']
    # Installed by hand here, so "manual" before and after; an auto package would stay auto.
    report, _markdown = _report(tmp_path)
    assert [p['name'] for p in report['hosts']['localhost']['not_security']] == [PREFIX + 'reg']


def test_autoremove_and_dependency_marks(apt_repo, tmp_path):
    # alpha 1.0 depends on libdep; alpha 2.0 no longer does: autoremove takes libdep away.
    apt_repo.package('libdep', '1.0')
    apt_repo.package('alpha', '1.0', depends=PREFIX + 'libdep')
    apt_repo.package('alpha', '2.0')
    apt_repo.publish()
    apt_repo.install('libdep', '1.0')
    apt_repo.install('alpha', '1.0')
    subprocess.run(['apt-mark', 'auto', PREFIX + 'libdep'], check=True, capture_output=True)
    config = apt_repo.apt_config()
    simulate = subprocess.run(['apt-get', '-s'] + [a for k, v in config.items() for a in ('-o', '%s=%s' % (k, v))]
                              + ['autoremove'], capture_output=True, text=True, check=True).stdout
    others = [line.split()[1] for line in simulate.splitlines() if line.startswith('Remv ')]
    if others:
        pytest.skip('this machine already has packages apt would autoremove (%s); not touching them' % others[:5])
    run = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path, patching_autoremove=True))
    assert run.rc == 0, run.stdout[-3000:]
    patch = run.result('Apply OS updates')
    assert installed_version(PREFIX + 'alpha') == '2.0'
    assert installed_version(PREFIX + 'libdep') is None
    assert [r['name'] for r in patch['removed']] == [PREFIX + 'libdep']


@pytest.mark.parametrize('case', ['blackout', 'backup', 'disk'])
def test_failed_precheck_skips_host_with_reason(apt_repo, tmp_path, case):
    apt_repo.package('alpha', '1.0')
    apt_repo.package('alpha', '2.0')
    apt_repo.publish()
    apt_repo.install('alpha', '1.0')
    extra = {
        'blackout': {'patching_blackout_windows': [{'name': 'change freeze', 'from': '2000-01-01T00:00:00Z',
                                                    'until': '2999-01-01T00:00:00Z'}]},
        'backup': {'patching_backup_path': str(tmp_path / 'empty-catalog')},
        'disk': {'patching_disk_min_free': [{'path': '/', 'min_free_percent': 100}]},
    }[case]
    expected = {'blackout': 'inside blackout window change freeze', 'backup': 'no backups found',
                'disk': 'needs 100%'}[case]
    (tmp_path / 'empty-catalog').mkdir()
    run = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path, **extra))
    assert run.rc == 0, run.stdout[-3000:]
    assert installed_version(PREFIX + 'alpha') == '1.0'
    assert not run.task_results('Apply OS updates', events=('runner_on_ok',))
    report, markdown = _report(tmp_path)
    entry = report['hosts']['localhost']
    assert entry['status'] == 'skipped'
    assert expected in entry['reason'], entry['reason']
    assert expected in markdown


def test_failed_precheck_can_fail_the_host(apt_repo, tmp_path):
    apt_repo.package('alpha', '1.0')
    apt_repo.publish()
    run = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path, patching_precheck_failure='fail',
                                                 patching_disk_min_free=[{'path': '/', 'min_free_percent': 100}]))
    assert run.rc != 0
    report, _markdown = _report(tmp_path)
    assert report['hosts']['localhost']['status'] == 'skipped'
    assert 'needs 100%' in report['hosts']['localhost']['reason']


KILLED_RUN = '''
import os, sys
from ansible_collections.opsready.operations.plugins.module_utils.patching import apt, run

def killed(self, *args):
    os._exit(137)       # as SIGKILL does (a job timeout, the OOM killer): no finally block runs

apt.AptBackend.upgrade_all = killed
run.patch(run.Options(backend='apt', hold=sys.argv[1:2], apt_config=dict(a.split('=', 1) for a in sys.argv[3:]),
                      reboot_required_file=sys.argv[2] + '/reboot-required',
                      hold_state_file=sys.argv[2] + '/holds.json'), False)
'''


def test_a_run_killed_mid_upgrade_leaves_no_hold_for_ever(apt_repo, tmp_path):
    """A run killed between setting its temporary holds and releasing them left those packages held: every later
    run took them for the operator's own holds and never patched them again, without a word."""
    for short in ('alpha', 'bravo'):
        apt_repo.package(short, '1.0')
        apt_repo.package(short, '2.0')
    apt_repo.publish()
    apt_repo.install('alpha', '1.0')
    apt_repo.install('bravo', '1.0')
    subprocess.run(['apt-get', '-q'] + [a for k, v in apt_repo.apt_config().items() for a in ('-o', '%s=%s' % (k, v))]
                   + ['update'], check=True, capture_output=True)
    killed = subprocess.run([sys.executable, '-c', KILLED_RUN, PREFIX + 'bravo', str(tmp_path)]
                            + ['%s=%s' % item for item in apt_repo.apt_config().items()],
                            env=dict(os.environ, PYTHONPATH=str(REPO / 'build')), capture_output=True, text=True,
                            check=False)
    assert killed.returncode == 137, killed.stderr[-3000:]
    holds = subprocess.run(['apt-mark', 'showhold'], capture_output=True, text=True, check=False).stdout.split()
    assert PREFIX + 'bravo' in holds      # what the kill left behind

    # Check mode already plans bravo's upgrade and says the hold will go.
    state = str(tmp_path / 'holds.json')
    plan = run_playbook(PLAYBOOK, check=True,
                        extravars=_vars(apt_repo, tmp_path, patching_run_id='plan', patching_hold_state_file=state))
    assert plan.rc == 0, plan.stdout[-3000:]
    planned = plan.result('Apply OS updates')
    assert planned['released_holds'] == [PREFIX + 'bravo']
    assert sorted(u['name'] for u in planned['upgraded']) == [PREFIX + 'alpha', PREFIX + 'bravo']

    again = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path, patching_run_id='again',
                                                   patching_hold_state_file=str(tmp_path / 'holds.json')))
    assert again.rc == 0, again.stdout[-3000:]
    result = again.result('Apply OS updates')
    assert result['released_holds'] == [PREFIX + 'bravo']
    assert 'interrupted' in again.stdout            # the warning an operator reads
    assert installed_version(PREFIX + 'bravo') == '2.0'
    assert installed_version(PREFIX + 'alpha') == '2.0'
    holds = subprocess.run(['apt-mark', 'showhold'], capture_output=True, text=True, check=False).stdout.split()
    assert PREFIX + 'bravo' not in holds
    assert not (tmp_path / 'holds.json').exists()


def test_an_operators_own_hold_survives_a_killed_run(apt_repo, tmp_path):
    """The next run releases only the holds the killed run set, never one the operator had before it."""
    for short in ('alpha', 'bravo', 'charlie'):
        apt_repo.package(short, '1.0')
        apt_repo.package(short, '2.0')
    apt_repo.publish()
    for short in ('alpha', 'bravo', 'charlie'):
        apt_repo.install(short, '1.0')
    subprocess.run(['apt-mark', 'hold', PREFIX + 'alpha'], check=True, capture_output=True)
    killed = subprocess.run([sys.executable, '-c', KILLED_RUN, PREFIX + 'bravo', str(tmp_path)]
                            + ['%s=%s' % item for item in apt_repo.apt_config().items()],
                            env=dict(os.environ, PYTHONPATH=str(REPO / 'build')), capture_output=True, text=True,
                            check=False)
    assert killed.returncode == 137, killed.stderr[-3000:]
    again = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path,
                                                   patching_hold_state_file=str(tmp_path / 'holds.json')))
    assert again.rc == 0, again.stdout[-3000:]
    assert again.result('Apply OS updates')['released_holds'] == [PREFIX + 'bravo']
    assert installed_version(PREFIX + 'alpha') == '1.0'
    assert installed_version(PREFIX + 'bravo') == '2.0'
    assert installed_version(PREFIX + 'charlie') == '2.0'
    holds = subprocess.run(['apt-mark', 'showhold'], capture_output=True, text=True, check=False).stdout.split()
    assert PREFIX + 'alpha' in holds


def test_a_failed_upgrade_reports_what_it_changed_before_failing(apt_repo, tmp_path):
    """A package whose configuration fails mid-upgrade failed the task with apt's message only: the report said
    nothing was upgraded while dpkg had already replaced packages, and did not name the broken one."""
    apt_repo.package('alpha', '1.0')
    apt_repo.package('alpha', '2.0')
    apt_repo.package('bravo', '1.0')
    apt_repo.package('bravo', '2.0', postinst='echo "bravo refuses to configure" >&2; exit 1')
    apt_repo.publish()
    apt_repo.install('alpha', '1.0')
    apt_repo.install('bravo', '1.0')
    try:
        run = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path))
        assert run.rc != 0
        failed = run.task_results('Apply OS updates', events=('runner_on_failed',))[0]
        upgraded = {u['name']: (u['old'], u['new']) for u in failed['upgraded']}
        # the report matches the host, package by package
        for short in ('alpha', 'bravo'):
            now = installed_version(PREFIX + short)
            if now == '2.0':
                assert upgraded[PREFIX + short] == ('1.0', '2.0')
            else:
                assert PREFIX + short not in upgraded
        assert upgraded, 'dpkg replaced packages before the failure: the result must name them'
        assert failed['broken_packages'] == [PREFIX + 'bravo']
        assert 'dpkg --configure -a' in failed['msg']
        report, markdown = _report(tmp_path)
        entry = report['hosts']['localhost']
        assert entry['status'] == 'failed'
        assert {u['name'] for u in entry['upgraded']} == set(upgraded)
    finally:
        subprocess.run(['dpkg', '--remove', '--force-remove-reinstreq', PREFIX + 'bravo'], capture_output=True,
                       check=False)


@pytest.fixture
def left_by_an_interrupted_test():
    """What an apt test killed before its teardown leaves on the machine (a session stopped mid-run, a SIGKILLed
    pytest): one of its packages still installed at 1.0 and held, as test_an_operators_own_hold_survives_a_killed_run
    leaves alpha. Made under the lock, with a name no other test builds."""
    with apt_test_lock():
        stale = AptTestRepo()
        stale.package('leftover', '1.0')
        stale.publish()
        stale.install('leftover', '1.0')
        subprocess.run(['apt-mark', 'hold', PREFIX + 'leftover'], check=True, capture_output=True)
        shutil.rmtree(stale.root)       # its repository went with its temporary directory; its teardown never ran
    yield
    with apt_test_lock():               # (purges it, should this test fail before its own fixture does)
        pass


def test_a_package_left_held_by_an_interrupted_test_is_upgraded_by_the_next(left_by_an_interrupted_test, apt_repo,
                                                                            tmp_path):
    """CI once saw the first patching test find alpha still at 1.0 after the playbook, the module saying ok: a test
    interrupted in an earlier run (before its teardown) had left alpha installed at 1.0 and held, the next test's
    install of 1.0 was a no-op, and the module rightly kept what it took for the operator's hold. Every apt test now
    starts from no installed or held test package."""
    apt_repo.package('leftover', '1.0')
    apt_repo.package('leftover', '2.0')
    apt_repo.publish()
    apt_repo.install('leftover', '1.0')
    run = run_playbook(PLAYBOOK, extravars=_vars(apt_repo, tmp_path))
    assert run.rc == 0, run.stdout[-3000:]
    patch = run.result('Apply OS updates')
    assert installed_version(PREFIX + 'leftover') == '2.0', json.dumps(
        {key: patch.get(key) for key in ('plan', 'held', 'upgraded', 'changed')}, default=str)
    assert patch['changed'] is True and patch['held'] == []
    holds = subprocess.run(['apt-mark', 'showhold'], capture_output=True, text=True, check=False).stdout.split()
    assert PREFIX + 'leftover' not in holds
