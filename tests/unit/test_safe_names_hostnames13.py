"""The root-safe writers and removers (safe_write, safe_dir, safe_unlink: safeio.write_nofollow, prepare_directory,
unlink_below) and every legal file name (hostnames13).

Their earlier tests planted links but gave plain names. Every name a file system holds must be written, made or
removed exactly (that name, nothing else touched, no staged file left behind, check mode and ``changed`` right), and
a path the kernel and a lexical clean-up would read as different files (a ``..`` component, a trailing ``/`` or
``/.`` on a file, a ``$VAR`` the module expanded) must be refused before anything is done - never normalised into
another file's name.

Failed on the old code: a component longer than 237 bytes (the staged ``.<name>.<12 hex>.tmp`` passed the 255-byte
limit: ENAMETOOLONG for a legal name); ``dir/missing/../x``, ``file/`` and ``dir/new/.`` written, removed or made as
``dir/x``, ``file`` and ``dir/new``; ``$HOME`` in a name expanded by the modules (``type: path``), so root wrote or
deleted ``.../root``; a relative dest written into the module's working directory; a NUL a traceback; a directory
prepare_directory had just made reported unchanged (``changed: false``) whenever the umask left its mode as asked;
the modules' results described (owner, mode, size) the file a planted link led to (ansible-core's add_path_info)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from tests.unit.plugins.modules.test_conformance_round7 import run_module

# Every kind of byte a name may hold that a shell, a format string, a template, a JSON or a log line treats specially.
LEGAL = ['new\nline', 'carriage\rreturn', 'tab\there', 'per%cent%s%%', '{{ jinja }}', '{% raw %}x{% endraw %}',
         'back\\slash', 'quote\'s "double"', '-leading-dash', '--', ' spaced ', 'trailing space ', 'café', 'emoji🙂',
         '$HOME', '${HOME}', '~tilde', '*?[glob]', '#hash', 'a' * 255, 'é' * 127 + 'x', '.hidden', '...']
# What the module API cannot carry (ansible-core's own argument logging refuses a lone surrogate): module_utils only.
NOT_UTF8 = 'caf\udce9'


def _entries(directory: Path) -> list:
    return sorted(os.listdir(directory))


def _dir(tmp_path: Path, name: str = 'd') -> Path:
    path = tmp_path / name
    path.mkdir(mode=0o755)
    return path


@pytest.mark.parametrize('name', LEGAL + [NOT_UTF8], ids=lambda n: ascii(n)[:40])
def test_write_then_unlink_every_legal_name_exactly(tmp_path, name):
    directory = _dir(tmp_path)
    (directory / 'neighbour').write_bytes(b'keep\n')
    path = os.path.join(str(directory), name)
    dry = safeio.write_nofollow(path, b'one\n', 0o640, check_mode=True)
    assert dry.changed and _entries(directory) == ['neighbour']
    first = safeio.write_nofollow(path, b'one\n', 0o640)
    assert first.changed and first.changes == ['content']
    # that name and nothing else: no staged file left, the neighbour untouched
    assert _entries(directory) == sorted(['neighbour', name])
    st = os.lstat(path)
    assert (stat.S_ISREG(st.st_mode), stat.S_IMODE(st.st_mode), st.st_nlink) == (True, 0o640, 1)
    with open(path, 'rb') as handle:
        assert handle.read() == b'one\n'
    assert safeio.write_nofollow(path, b'one\n', 0o640).changed is False
    assert safeio.write_nofollow(path, b'two\n', 0o640, check_mode=True).changed is True
    with open(path, 'rb') as handle:
        assert handle.read() == b'one\n'
    assert safeio.write_nofollow(path, b'two\n', 0o640).changes == ['content']
    assert _entries(directory) == sorted(['neighbour', name])
    assert safeio.unlink_below(str(directory), path, check_mode=True) == 'a regular file'
    assert os.path.lexists(path)
    assert safeio.unlink_below(str(directory), path) == 'a regular file'
    assert _entries(directory) == ['neighbour'] and (directory / 'neighbour').read_bytes() == b'keep\n'
    assert safeio.unlink_below(str(directory), path) is None


@pytest.mark.parametrize('name', LEGAL + [NOT_UTF8], ids=lambda n: ascii(n)[:40])
def test_prepare_directory_every_legal_name_exactly(tmp_path, name):
    base = _dir(tmp_path)
    path = os.path.join(str(base), name, name)
    assert safeio.prepare_directory(path, 0o750, 'files', check_mode=True) is True
    assert _entries(base) == []
    assert safeio.prepare_directory(path, 0o750, 'files') is True
    assert _entries(base) == [name] and os.listdir(os.path.join(str(base), name)) == [name]
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o750
    assert safeio.prepare_directory(path, 0o750, 'files') is False
    assert safeio.prepare_directory(path, 0o700, 'files') is True and stat.S_IMODE(os.lstat(path).st_mode) == 0o700


def test_a_link_at_a_hostile_name_is_replaced_or_removed_never_followed(tmp_path):
    """With hostile names too, a symlink at the name is replaced by the write and removed (itself) by the unlink; what
    it leads to is untouched. (On the old code it failed only at the 255-byte name: ENAMETOOLONG.)"""
    directory = _dir(tmp_path)
    victim = tmp_path / 'victim'
    victim.write_bytes(b'root file\n')
    for name in LEGAL:
        path = os.path.join(str(directory), name)
        os.symlink(victim, path)
        written = safeio.write_nofollow(path, b'new\n', 0o600)
        assert written.replaced == 'a symlink' and not os.path.islink(path), name
        os.unlink(path)
        os.symlink(victim, path)
        assert safeio.unlink_below(str(directory), path) == 'a symlink' and not os.path.lexists(path), name
    assert victim.read_bytes() == b'root file\n' and _entries(directory) == []


@pytest.mark.parametrize('how', ['dotdot', 'dotdot through a link', 'trailing slash', 'trailing dot', 'nul'])
def test_a_name_that_normalises_to_another_is_refused_before_anything(tmp_path, how):
    directory = _dir(tmp_path)
    (directory / 'x').write_bytes(b'keep\n')
    (directory / 'sub').mkdir()
    elsewhere = _dir(tmp_path, 'elsewhere')
    os.symlink(elsewhere, directory / 'link')
    base = str(directory)
    file_path, dir_path = {
        'dotdot': (base + '/missing/../x', base + '/missing/../new'),
        # the kernel reads link/.. as elsewhere's parent (tmp_path), a lexical clean-up as directory itself
        'dotdot through a link': (base + '/link/../x', base + '/link/../new'),
        'trailing slash': (base + '/x/', None),
        'trailing dot': (base + '/new/.', None),
        'nul': (base + '/x\0y', base + '/new\0dir'),
    }[how]
    before = {p: os.lstat(os.path.join(base, p)) for p in _entries(directory)}
    calls = [lambda: safeio.write_nofollow(file_path, b'new\n', 0o644),
             lambda: safeio.write_nofollow(file_path, b'new\n', 0o644, check_mode=True),
             lambda: safeio.unlink_below(base, file_path),
             lambda: safeio.unlink_below(base, file_path, check_mode=True)]
    if dir_path:
        calls += [lambda: safeio.prepare_directory(dir_path, 0o755, 'files'),
                  lambda: safeio.prepare_directory(dir_path, 0o755, 'files', check_mode=True)]
    for call in calls:
        with pytest.raises(safeio.UnsafeFileError) as refused:
            call()
        assert 'Nothing was done' in refused.value.message, refused.value.message
    assert {p: os.lstat(os.path.join(base, p)) for p in _entries(directory)} == before
    assert (directory / 'x').read_bytes() == b'keep\n'
    assert _entries(tmp_path) == ['d', 'elsewhere'] and _entries(elsewhere) == []


def test_unlink_within_given_with_dotdot_is_refused(tmp_path):
    directory = _dir(tmp_path)
    (directory / 'x').write_bytes(b'keep\n')
    with pytest.raises(safeio.UnsafeFileError):
        safeio.unlink_below(str(directory) + '/sub/..', str(directory / 'x'))
    assert (directory / 'x').exists()


def test_deep_paths_near_path_max(tmp_path):
    """A file whose path is 4095 bytes (PATH_MAX less the NUL) is written and removed, a directory as deep is made;
    every component is opened relative to the one above. (Failed on the old code: prepare_directory reported a
    directory it had just made as unchanged whenever the umask left its mode as asked.)"""
    base = _dir(tmp_path)
    deep = str(base)
    while len(deep) < 3800:
        deep = os.path.join(deep, 'p' * 200)
    leaf = os.path.join(deep, 'q' * (4095 - len(deep) - 1))
    assert len(os.fsencode(leaf)) == 4095
    assert safeio.prepare_directory(deep, 0o755, 'files') is True
    assert safeio.write_nofollow(leaf, b'deep\n', 0o644).changed
    assert sorted(os.listdir(deep)) == [os.path.basename(leaf)]
    assert safeio.unlink_below(str(base), leaf) == 'a regular file' and os.listdir(deep) == []


# --- the modules: names taken literally, relative paths and NULs refused with a message ----------------------------
def test_modules_take_dollar_and_tilde_names_literally(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    directory = _dir(tmp_path)
    for name in ('$HOME', '${HOME}', 'a$HOME', '~tilde'):
        dest = os.path.join(str(directory), name)
        written, _out = run_module(tmp_path, 'safe_write', {'dest': dest, 'content': 'x\n',
                                                            'validate': '/usr/bin/test -f %s'})
        assert written.get('changed') is True and written['dest'] == dest, written
        assert _entries(directory) == [name], name
        made, _out = run_module(tmp_path, 'safe_dir', {'path': dest + '.d', 'mode': '0750'})
        assert made.get('changed') is True and made['path'] == dest + '.d', made
        assert os.path.isdir(dest + '.d') and not os.path.exists(tmp_path / 'home')
        os.rmdir(dest + '.d')
        removed, _out = run_module(tmp_path, 'safe_unlink', {'path': dest, 'within': str(directory)})
        assert removed.get('removed') == 'a regular file', removed
        assert _entries(directory) == []


def test_modules_refuse_relative_paths_and_nul_with_a_message(tmp_path, monkeypatch):
    directory = _dir(tmp_path)
    cwd = _dir(tmp_path, 'cwd')
    monkeypatch.chdir(cwd)   # where the old safe_write wrote a relative dest
    for module, params in (('safe_write', {'dest': 'relative-file', 'content': 'x\n'}),
                           ('safe_write', {'dest': str(directory / 'a\0b'), 'content': 'x\n'}),
                           ('safe_dir', {'path': str(directory / 'a\0b'), 'mode': '0750'}),
                           ('safe_unlink', {'path': 'relative-file', 'within': str(directory)}),
                           ('safe_unlink', {'path': str(directory / 'a\0b'), 'within': str(directory)})):
        result, out = run_module(tmp_path, module, params)
        assert result.get('failed') is True and result.get('msg'), (module, params, out[-2000:])
        assert 'Traceback' not in out, out[-2000:]
    assert _entries(directory) == [] and _entries(cwd) == []


def test_results_never_describe_what_a_planted_link_leads_to(tmp_path):
    """ansible-core's exit_json/fail_json add the owner, mode, size and kind of the result's ``path``/``dest``, found by
    name and through links (and with ``$NAME`` expanded: the crash above). A refusal of a path through a planted link
    reported the size and mode of the root file the link leads to; now the results hold what the modules say only."""
    logs = _dir(tmp_path, 'logs')
    outside = _dir(tmp_path, 'outside')
    (outside / 'a.gz').write_bytes(b's' * 12345)
    os.chmod(outside / 'a.gz', 0o600)
    os.symlink(outside, logs / 'swapped')
    params = {'path': str(logs / 'swapped' / 'a.gz'), 'within': str(logs)}
    refused, _out = run_module(tmp_path, 'safe_unlink', params)
    assert refused.get('failed') and 'symlink' in refused['msg'], refused
    assert not {'size', 'mode', 'owner', 'state'} & set(refused), refused
    os.symlink(outside / 'a.gz', logs / 'link.gz')
    removed, _out = run_module(tmp_path, 'safe_unlink', {'path': str(logs / 'link.gz'), 'within': str(logs)})
    assert removed['removed'] == 'a symlink' and not {'size', 'mode', 'owner', 'state'} & set(removed), removed
    written, _out = run_module(tmp_path, 'safe_write', {'dest': str(logs / 'new'), 'content': 'x\n'})
    assert written['changed'] and not {'size', 'mode', 'owner', 'state'} & set(written), written
    assert (outside / 'a.gz').read_bytes() == b's' * 12345


def test_atomic_write_takes_a_255_byte_name(tmp_path):
    """common/atomic (the reports', histories' and catalogs' writer) staged ``.<name>.<8 random>.tmp`` with mkstemp:
    a name over 241 bytes failed with ENAMETOOLONG. Failed on the old code."""
    from ansible_collections.opsready.operations.plugins.module_utils.common.atomic import atomic_write_bytes
    directory = _dir(tmp_path)
    for name in ('a' * 255, 'é' * 127 + 'x', 'new\nline'):
        atomic_write_bytes(str(directory / name), b'data\n', mode=0o640)
        assert (directory / name).read_bytes() == b'data\n'
    assert _entries(directory) == sorted(['a' * 255, 'é' * 127 + 'x', 'new\nline'])


def test_unicode_normal_forms_are_different_names(tmp_path):
    """Guard (passed on the old code): names are bytes; the NFD spelling of a name written in NFC is another file,
    never removed or rewritten in its place."""
    directory = _dir(tmp_path)
    nfc, nfd = 'caf\u00e9', 'cafe\u0301'
    safeio.write_nofollow(str(directory / nfc), b'nfc\n', 0o644)
    assert safeio.unlink_below(str(directory), str(directory / nfd)) is None
    assert safeio.write_nofollow(str(directory / nfd), b'nfd\n', 0o644).changed
    assert (directory / nfc).read_bytes() == b'nfc\n' and _entries(directory) == sorted([nfc, nfd])
