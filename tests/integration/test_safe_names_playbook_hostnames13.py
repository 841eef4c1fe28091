"""safe_dir, safe_write and safe_unlink in real ansible-playbook runs with every kind of legal file name (hostnames13;
the module_utils side is tests/unit/test_safe_names_hostnames13.py).

The names reach the tasks as data, never as templates: from a vars file as ``!unsafe`` strings (a variable Ansible
trusts is templated before any module sees it: ``{{ 6*7 }}`` in an extra var is ``42``, by Ansible's design) and, for
safe_unlink, from what ansible.builtin.find lists (a module's result is never templated). Each run in check mode
(with --diff) changes nothing and reports every item changed; the real run makes, writes and removes exactly those
names, nothing else, no staged file left; a second run changes nothing.

Failed on the old code: the 250-byte name (safe_write: ENAMETOOLONG on the staged name), ``$HOME`` (expanded: the
modules wrote and deleted ``.../root``, then crashed in exit_json), and safe_dir reported a directory it had just made
as unchanged."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from tests.harness.playbook import run_playbook

# Several hostile bytes to a name: each name is a module run per task and per playbook run.
NAMES = ['new\nline\rreturn\ttab', 'per%cent%s {{ 6*7 }}{% if 1 %}x{% endif %}', 'back\\slash quote\'s "double"',
         '-leading-dash', ' spaced café emoji🙂 ', '$HOME', 'b' * 250]
CONTENT = 'line one\n'


def _playbook(base: Path) -> str:
    names = '\n'.join('  - !unsafe %s' % json.dumps(name, ensure_ascii=False) for name in NAMES)
    (base / 'names.yml').write_text('names:\n%s\n' % names, encoding='utf-8')
    book = base / 'play.yml'
    book.write_text('''\
- hosts: localhost
  gather_facts: false
  vars_files: [names.yml]
  tasks:
    - name: dirs
      opsready.operations.safe_dir:
        path: "{{ base }}/dirs/{{ item }}"
        mode: "0750"
      loop: "{{ names }}"
      register: dirs
    - name: files
      opsready.operations.safe_write:
        dest: "{{ base }}/files/{{ item }}"
        content: "%s"
        mode: "0640"
        validate: /usr/bin/test -f %%s
      loop: "{{ names }}"
      register: files
    - name: find
      ansible.builtin.find:
        paths: "{{ base }}/old"
        hidden: true
      register: old
    - name: unlink
      opsready.operations.safe_unlink:
        path: "{{ item.path }}"
        within: "{{ base }}/old"
      loop: "{{ old.files }}"
      register: removed
''' % CONTENT.replace('\n', '\\n'), encoding='utf-8')
    return str(book)


def _tree(base: Path) -> dict:
    found = {}
    for root, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            body = Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else None
            found[os.path.relpath(path, base)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), body)
    return found


def _items(result, task: str) -> list:
    return result.task_results(task, events=('runner_item_on_ok', 'runner_item_on_failed'))


@pytest.mark.skipif(not os.path.exists('/usr/bin/test'), reason='validate runs /usr/bin/test')
def test_every_legal_name_through_real_playbook_runs(tmp_path):
    base = tmp_path / 'arena'
    for sub in ('dirs', 'files', 'old'):
        (base / sub).mkdir(parents=True)
    for name in NAMES:
        (base / 'old' / name).write_bytes(b'old\n')
    (base / 'old' / 'keep.d').mkdir()
    book = _playbook(tmp_path)
    before = _tree(base)

    dry = run_playbook(book, extravars={'base': str(base)}, check=True, diff=True, timeout=300)
    assert dry.rc == 0, dry.stdout[-4000:]
    assert _tree(base) == before, 'check mode changed the disk'
    for task, count in (('dirs', len(NAMES)), ('files', len(NAMES)), ('unlink', len(NAMES))):
        items = _items(dry, task)
        assert len(items) == count and all(i.get('changed') is True for i in items), (task, items)
    diffs = [i['diff'] for i in _items(dry, 'files')]
    assert all(d['after'] == CONTENT and d['before'] == '' for d in diffs), diffs

    done = run_playbook(book, extravars={'base': str(base)}, diff=True, timeout=300)
    assert done.rc == 0, done.stdout[-4000:]
    assert sorted(os.listdir(base / 'dirs')) == sorted(NAMES)
    assert all(stat.S_IMODE(os.lstat(base / 'dirs' / n).st_mode) == 0o750 for n in NAMES)
    assert sorted(os.listdir(base / 'files')) == sorted(NAMES), 'a staged file left, or another name written'
    for name in NAMES:
        st = os.lstat(base / 'files' / name)
        assert (stat.S_ISREG(st.st_mode), stat.S_IMODE(st.st_mode)) == (True, 0o640), name
        assert (base / 'files' / name).read_text() == CONTENT
    assert os.listdir(base / 'old') == ['keep.d']
    assert sorted(i['item'] for i in _items(done, 'files')) == sorted(NAMES)
    assert sorted(i['dest'] for i in _items(done, 'files')) == sorted(str(base / 'files' / n) for n in NAMES)
    assert sorted(i['path'] for i in _items(done, 'unlink')) == sorted(str(base / 'old' / n) for n in NAMES)
    assert all(i['removed'] == 'a regular file' for i in _items(done, 'unlink'))
    for task in ('dirs', 'files', 'unlink'):
        assert all(i.get('changed') is True for i in _items(done, task)), task

    after = _tree(base)
    again = run_playbook(book, extravars={'base': str(base)}, timeout=300)
    assert again.rc == 0 and re.search(r'changed=0\b', again.stdout), again.stdout[-3000:]
    assert _tree(base) == after
