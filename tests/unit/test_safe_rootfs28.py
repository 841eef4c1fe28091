"""Root-safe modules against a hostile filesystem (rootfs28, an outside review with fixtures the authors never saw).

safe_slurp followed a symlink in any directory above ``src`` (only the final name was O_NOFOLLOW): an account owning
the application's directory could link a component of the path to a directory of root's and have root read (and print)
root's file of that name. It also expanded ``$NAME`` in ``src`` (``type: path``) and took a ``..`` or a relative path.
safe_dir without ``mode`` reported ``changed=false`` in check mode for a directory the real run tightens to 0700, and
``changed=true`` for a regular file in the way that the real run refuses. The race cases (a name swapped between the
check and the use, simulated by wrapping ``os`` functions) held: they stay as a compact regression of the read path.
"""

from __future__ import annotations

import base64
import errno
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from tests.unit.plugins.modules.test_conformance_round7 import run_module

NOBODY = pwd.getpwnam('nobody')
SECRET = b'S3cret-root-only\n'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='another account\'s directory needs root to make')


def _slurp(tmp_path: Path, src, check: bool = False, **options) -> dict:
    result, _out = run_module(tmp_path, 'safe_slurp', dict(options, src=str(src)), check=check)
    return result


def _layout(tmp_path: Path) -> tuple:
    """(root's private directory holding record.json = SECRET, the application's directory owned by nobody)."""
    tmp_path.chmod(0o755)
    private = tmp_path / 'private'
    private.mkdir(mode=0o700)
    (private / 'record.json').write_bytes(SECRET)
    (private / 'record.json').chmod(0o600)
    app = tmp_path / 'app'
    app.mkdir(mode=0o755)
    os.chown(app, NOBODY.pw_uid, NOBODY.pw_gid)
    return private, app


# --- safe_slurp: a symlink in any component -------------------------------------------------------------------------

@pytest.mark.parametrize('target', ['absolute', 'relative', 'two hops'])
def test_safe_slurp_never_follows_a_link_above_src_that_another_account_controls(tmp_path, target):
    private, app = _layout(tmp_path)
    link = app / 'current'
    if target == 'absolute':
        link.symlink_to(private)
    elif target == 'relative':
        link.symlink_to('../private')
    else:
        (app / 'hop').symlink_to(private)
        link.symlink_to('hop')
    os.lchown(link, NOBODY.pw_uid, NOBODY.pw_gid)
    for check, missing_ok in ((False, False), (True, True)):
        result = _slurp(tmp_path, link / 'record.json', check=check, missing_ok=missing_ok)
        assert result.get('failed') is True, result
        assert 'content' not in result and SECRET.decode() not in str(result)
        assert str(link) in result['msg'] and 'point the path at a real directory' in result['msg'], result


def test_safe_slurp_follows_a_link_above_src_only_root_could_have_made(tmp_path):
    """The operator's own layout (a ``current`` link in a directory of root's) still reads, with a relative target."""
    private, _app = _layout(tmp_path)
    mine = tmp_path / 'mine'
    mine.mkdir(mode=0o755)
    (mine / 'current').symlink_to('../private')
    result = _slurp(tmp_path, mine / 'current' / 'record.json')
    assert result.get('failed') is None and base64.b64decode(result['content']) == SECRET, result
    # a directory of the application's on the way (no link) is read from: that is what the module is for
    (_app / 'sub').mkdir()
    (_app / 'sub' / 'r').write_bytes(b'ok')
    assert base64.b64decode(_slurp(tmp_path, _app / 'sub' / 'r')['content']) == b'ok'


def test_safe_slurp_missing_ok_with_a_missing_directory_and_a_dangling_link_on_the_way(tmp_path):
    _private, app = _layout(tmp_path)
    gone = _slurp(tmp_path, app / 'no-such-dir' / 'record.json', missing_ok=True)
    assert (gone.get('failed'), gone['exists']) == (None, False), gone
    refused = _slurp(tmp_path, app / 'no-such-dir' / 'record.json')
    assert refused['failed'] is True and 'fix the path' in refused['msg'], refused
    (app / 'dangling').symlink_to(tmp_path / 'nothing')
    os.lchown(app / 'dangling', NOBODY.pw_uid, NOBODY.pw_gid)
    dangling = _slurp(tmp_path, app / 'dangling' / 'record.json', missing_ok=True)
    assert dangling['failed'] is True, dangling


@pytest.mark.parametrize('src, says', [
    ('{app}/sub/../../private/record.json', '".."'),
    ('{app}/record.json/', 'ends in "/"'),
    ('record.json', 'absolute'),
    ('', 'absolute'),
    ('{app}/' + 'n' * 256, 'File name too long'),
    ('{app}/' + 'n' * 250 + '/' + 'n' * 256 + '/r', 'File name too long'),
])
def test_safe_slurp_refuses_paths_a_clean_up_would_change(tmp_path, src, says):
    private, app = _layout(tmp_path)
    (app / 'sub').mkdir()
    (app / ('n' * 250)).mkdir()
    (app / 'record.json').write_bytes(b'{}')
    result = _slurp(tmp_path, src.format(app=app))
    assert result.get('failed') is True and says in result['msg'] and SECRET.decode() not in str(result), result


def test_safe_slurp_takes_a_dollar_name_as_written(tmp_path):
    """``type: path`` expanded ``$HOME`` in src: a file named ``$HOME`` was read as root's home directory."""
    tmp_path.chmod(0o755)
    (tmp_path / '$HOME').mkdir()
    (tmp_path / '$HOME' / '.profile').write_bytes(b'the application\'s own')
    result = _slurp(tmp_path, '%s/$HOME/.profile' % tmp_path)
    assert result.get('failed') is None and base64.b64decode(result['content']) == b'the application\'s own', result


# --- safe_slurp: a name swapped between the check and the read (deterministic race through a wrapped os.stat) -------

@pytest.mark.parametrize('swap', ['symlink', 'fifo', 'hardlink', 'big file', 'directory'])
def test_read_below_a_name_swapped_after_its_stat_is_refused_on_the_descriptor(tmp_path, monkeypatch, swap):
    private, app = _layout(tmp_path)
    src = app / 'record.json'
    src.write_bytes(b'{}')
    real_stat = os.stat

    def racing_stat(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        if path == 'record.json' and not src.is_symlink() and src.is_file() and src.stat().st_size == 2:
            src.unlink()
            if swap == 'symlink':
                src.symlink_to(private / 'record.json')
            elif swap == 'fifo':
                os.mkfifo(src)
            elif swap == 'hardlink':
                os.link(private / 'record.json', src)
            elif swap == 'big file':
                src.write_bytes(b'x' * 100)
            else:
                src.mkdir()
        return st

    monkeypatch.setattr(os, 'stat', racing_stat)
    with pytest.raises(safeio.UnsafeFileError) as caught:
        safeio.read_below_nofollow(str(src), 10)
    monkeypatch.undo()
    assert str(src) in caught.value.message and SECRET.decode() not in caught.value.message


# --- safe_dir without mode: check mode says what the real run does --------------------------------------------------

def _dir(tmp_path: Path, path, check: bool = False) -> dict:
    result, _out = run_module(tmp_path, 'safe_dir', {'path': str(path)}, check=check)
    return result


@pytest.mark.parametrize('mode', [0o2750, 0o1700])
def test_safe_dir_check_mode_reports_the_tightening_the_real_run_makes(tmp_path, mode):
    tmp_path.chmod(0o755)
    backups = tmp_path / 'backups'
    backups.mkdir()
    backups.chmod(mode)
    dry = _dir(tmp_path, backups, check=True)
    assert dry.get('failed') is None and stat.S_IMODE(backups.stat().st_mode) == mode, dry
    real = _dir(tmp_path, backups)
    assert real.get('failed') is None, real
    assert dry['changed'] == real['changed'] == bool(mode & 0o077), (dry, real)
    assert not stat.S_IMODE(backups.stat().st_mode) & 0o077
    assert _dir(tmp_path, backups)['changed'] is False and _dir(tmp_path, backups, check=True)['changed'] is False


@pytest.mark.parametrize('what', ['fifo', 'file on the way', 'dangling link'])
def test_safe_dir_check_mode_refuses_what_is_in_the_way_as_the_real_run_does(tmp_path, what):
    tmp_path.chmod(0o755)
    path = tmp_path / 'backups'
    if what == 'file':
        path.write_bytes(b'')
    elif what == 'fifo':
        os.mkfifo(path)
    elif what == 'file on the way':
        path.write_bytes(b'')
        path = path / 'daily'
    else:
        path.symlink_to(tmp_path / 'nothing')
    dry = _dir(tmp_path, path, check=True)
    real = _dir(tmp_path, path)
    assert real['failed'] is True, real
    assert dry.get('failed') is True and dry['msg'] == real['msg'], (dry, real)
    assert 'point' in real['msg'].lower() or 'remove' in real['msg'].lower(), real


def test_safe_dir_with_mode_check_mode_refuses_a_file_on_the_way_too(tmp_path):
    tmp_path.chmod(0o755)
    (tmp_path / 'f').write_bytes(b'')
    params = {'path': str(tmp_path / 'f' / 'd'), 'mode': '0755'}
    dry, _out = run_module(tmp_path, 'safe_dir', params, check=True)
    real, _out = run_module(tmp_path, 'safe_dir', params)
    assert real['failed'] is True and dry.get('failed') is True, (dry, real)


# --- safe_write: the refusal of a missing directory says what to do -------------------------------------------------

def test_safe_write_into_a_missing_directory_says_what_to_do(tmp_path):
    tmp_path.chmod(0o755)
    for check in (False, True):
        result, _out = run_module(tmp_path, 'safe_write', {'dest': str(tmp_path / 'none' / 'f'), 'content': 'x'},
                                  check=check)
        assert result['failed'] is True and 'safe_dir' in result['msg'], result
    assert not (tmp_path / 'none').exists()


def test_unlink_below_a_directory_swapped_in_after_the_stat_deletes_nothing(tmp_path, monkeypatch):
    _private, app = _layout(tmp_path)
    victim = app / 'old.log'
    victim.write_bytes(b'')
    real_stat = os.stat

    def racing_stat(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        if path == 'old.log' and victim.is_file():
            victim.unlink()
            victim.mkdir()
            (victim / 'keep').write_bytes(b'k')
        return st

    monkeypatch.setattr(os, 'stat', racing_stat)
    with pytest.raises(OSError) as caught:
        safeio.unlink_below(str(app), str(victim))
    monkeypatch.undo()
    assert caught.value.errno in (errno.EISDIR, errno.EPERM) and (victim / 'keep').exists()


# --- safe_unlink: each refusal says what to do ----------------------------------------------------------------------

@pytest.mark.parametrize('case', ['not below', 'within itself', 'directory', 'relative'])
def test_safe_unlink_refusals_say_what_to_do(tmp_path, case):
    _private, app = _layout(tmp_path)
    (app / 'logs').mkdir()
    within, path = str(app / 'logs'), str(app / 'logs' / 'old.log')
    if case == 'not below':
        path = str(tmp_path / 'private' / 'record.json')
    elif case == 'within itself':
        path = within
    elif case == 'directory':
        (app / 'logs' / 'old.log').mkdir()
    else:
        path = 'logs/old.log'
    for check in (True, False):
        result, _out = run_module(tmp_path, 'safe_unlink', {'path': path, 'within': within}, check=check)
        assert result.get('failed') is True, result
        assert any(word in result['msg'] for word in ('Give', 'give', 'Point', 'point')), result
    assert (tmp_path / 'private' / 'record.json').exists() and (app / 'logs').is_dir()


@pytest.mark.parametrize('swap', ['directory renamed, link planted', 'final name linked after its lstat'])
def test_write_nofollow_a_swap_after_the_check_writes_where_it_checked(tmp_path, monkeypatch, swap):
    """The directory is held by descriptor and the new file renamed over the name: a link planted at the directory's
    path or at the name between the look and the write is never written through (root's file keeps its bytes)."""
    private, app = _layout(tmp_path)
    (app / 'conf').mkdir()
    dest = app / 'conf' / 'record.json'
    dest.write_bytes(b'old')
    real_open_directory, real_stat = safeio.open_directory, os.stat

    def open_then_swap(path, *args, **kwargs):
        fd = real_open_directory(path, *args, **kwargs)
        if swap.startswith('directory'):
            (app / 'conf').rename(app / 'conf.moved')
            (app / 'conf').symlink_to(private)
        return fd

    def stat_then_swap(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        if path == 'record.json' and not swap.startswith('directory') and not dest.is_symlink():
            dest.unlink()
            dest.symlink_to(private / 'record.json')
        return st

    monkeypatch.setattr(safeio, 'open_directory', open_then_swap)
    monkeypatch.setattr(os, 'stat', stat_then_swap)
    written = safeio.write_nofollow(str(dest), b'new', 0o644)
    monkeypatch.undo()
    assert written.changed and (private / 'record.json').read_bytes() == SECRET
    landed = app / ('conf.moved' if swap.startswith('directory') else 'conf') / 'record.json'
    assert not landed.is_symlink() and landed.read_bytes() == b'new'


def _as_nobody(action) -> int:
    """``action()`` in a child that became nobody: 0 when it returned, 1 when it raised."""
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            action()
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.fixture
def searchable_base():
    """A directory under /tmp nobody can reach (pytest's own tmp_path sits below root's 0700 pytest-of-root)."""
    base = Path(tempfile.mkdtemp(prefix='opsready-rootfs28-'))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base)


def test_a_user_the_task_becomes_reads_below_directories_it_may_only_search(searchable_base):
    """A 0711 home (search, no read) on the way: a lookup by name passes it, so must the walk (review28: every
    directory was opened O_RDONLY, which needs read permission, and the read failed with Permission denied)."""
    home = searchable_base / 'home'
    inner = home / 'inner'
    inner.mkdir(parents=True)
    (inner / 'f').write_bytes(b'mine\n')
    os.chown(inner / 'f', NOBODY.pw_uid, NOBODY.pw_gid)
    home.chmod(0o711)
    inner.chmod(0o711)

    def read() -> None:
        data = safeio.read_below_nofollow(str(inner / 'f'), 1024)
        assert data == b'mine\n', data
    assert _as_nobody(read) == 0
    assert _as_nobody(lambda: os.listdir(inner)) == 1, 'the layout must really deny nobody a listing'


def test_open_directory_ending_on_a_links_dot_is_a_real_directory_descriptor(tmp_path):
    """A walk that ends on a directory it opened on the way (a link whose target ends in ".") still returns a
    descriptor it can list, fchmod and fsync (the callers' uses), not an O_PATH one."""
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / 'x').write_text('x')
    (tmp_path / 'd' / 'here').symlink_to('.')
    fd = safeio.open_directory(str(tmp_path / 'd' / 'here'))
    try:
        assert 'x' in os.listdir(fd)
        os.fsync(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize('check_mode', [True, False])
def test_a_backup_directory_the_user_cannot_write_is_refused_in_check_mode_too(searchable_base, check_mode):
    """review28: check mode returned before the real run's access check (safe_dir without become on root's 0755
    directory passed in check mode and failed for real)."""
    dest = searchable_base / 'backups'
    dest.mkdir(mode=0o755)

    def prepare() -> None:
        try:
            safeio.prepare_backup_dir(str(dest), check_mode=check_mode)
        except safeio.OpsReadyError as exc:
            assert 'is not writable by this user' in exc.message, exc.message
            return
        raise AssertionError('not refused')
    assert _as_nobody(prepare) == 0
