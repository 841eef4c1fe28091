"""Fidelity, SQLite: a rich database backed up, verified, restored under another name and over the original,
drill-checked and maintained, at every legal path class, through the real modules (ansible-playbook).

The measure of a restore is the engine's own view, object by object: ``sqlite_master`` (every table, index,
view and trigger with its SQL and root page) and the ``sqlite3`` shell's ``.schema``, a checksum of every
table (every row in rowid or key order, each value with its storage class), and the database-level
properties (user_version, application_id, page size, encoding, auto_vacuum, journal mode, page and free
page counts). Any difference fails the test with a unified diff of the two measures.

Path classes: spaces, ``#``, ``?``, ``%``, non-ASCII, a leading ``-``, quotes, backslashes, newlines and a
name that looks like a URI itself (``/srv/app/a#b.db`` used to be
backed up as an empty database, verified "ok", with a stray empty file ``a`` created next to it).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.harness.playbook import play

PATH_CLASSES = {
    'space': 'my app/data base.db',
    'hash': 'a#b/a#b.db',
    'question': 'q?x/what?mode=rw.db',
    'percent': 'p%41/100%25.db',
    'non-ascii': 'données/Ünïcødé-数据库.db',
    'leading-dash': '-dash/-app.db',
    'quote-backslash-newline': "it's \\ a\nline/o'k\\\n.db",
    'uri-lookalike': 'file:x/file:db?vfs=unix-none&mode=memory.db',
}

RICH_SCHEMA = r'''
PRAGMA page_size = 8192;
PRAGMA auto_vacuum = INCREMENTAL;
PRAGMA journal_mode = WAL;
PRAGMA user_version = 4242;
PRAGMA application_id = 262410733;
CREATE TABLE "odd ""name"" ü" ("select" INTEGER PRIMARY KEY AUTOINCREMENT, "co l" TEXT COLLATE NOCASE NOT NULL
    DEFAULT 'x', data BLOB, r REAL CHECK (r IS NULL OR r > -1e308));
CREATE UNIQUE INDEX "idx ü ""q""" ON "odd ""name"" ü" ("co l" DESC);
CREATE TABLE kv (k TEXT PRIMARY KEY, v ANY) STRICT, WITHOUT ROWID;
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id) ON DELETE CASCADE,
    total NUMERIC, name_copy TEXT, shout TEXT GENERATED ALWAYS AS (upper(name_copy)) VIRTUAL);
CREATE INDEX child_parent ON child (parent_id);
CREATE INDEX child_expr ON child (lower(name_copy)) WHERE total > 0;
CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT NOT NULL);
CREATE TRIGGER child_audit AFTER INSERT ON child BEGIN INSERT INTO audit (what) VALUES ('child ' || new.id); END;
CREATE VIEW v_totals AS SELECT p.name, sum(c.total) AS total FROM parent p JOIN child c ON c.parent_id = p.id
    GROUP BY p.name;
CREATE TABLE empty_table (a, b);
CREATE TABLE rowid_gaps (x TEXT);
'''


def build_rich(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.executescript(RICH_SCHEMA)
    conn.execute('BEGIN')
    odd = [('näme %d \U0001F600 \u05e9\u05dc\u05d5\u05dd' % i, os.urandom(i % 97), i * 1.5 if i % 3 else None)
           for i in range(600)]
    conn.executemany('INSERT INTO "odd ""name"" ü" ("co l", data, r) VALUES (?, ?, ?)', odd)
    conn.execute('INSERT INTO "odd ""name"" ü" ("co l", data, r) VALUES (?, ?, ?)',
                 ("quote ' \" \\ newline\n tab\t nul-free", b'', 1e-300))
    conn.executemany('INSERT INTO kv VALUES (?, ?)', [
        ('int', 2 ** 63 - 1), ('neg', -2 ** 63), ('real', 3.141592653589793), ('text', 'ünï\u2028code'),
        ('blob', b'\x00\x01\xff' * 50), ('null', None), ('big', 'x' * 100000)])
    conn.executemany('INSERT INTO parent (name) VALUES (?)', [('parent %d' % i,) for i in range(50)])
    conn.executemany('INSERT INTO child (parent_id, total, name_copy) VALUES (?, ?, ?)',
                     [(i % 50 + 1, (i * 7) % 13 - 3, 'Child %d' % i) for i in range(3000)])
    conn.executemany('INSERT INTO rowid_gaps (rowid, x) VALUES (?, ?)', [(i * 1000 + 7, 'g%d' % i) for i in range(40)])
    conn.execute('DELETE FROM rowid_gaps WHERE rowid % 3000 = 7')
    conn.execute('COMMIT')
    conn.close()


def _checksum(conn: sqlite3.Connection, table: str) -> Dict[str, Any]:
    quoted = '"%s"' % table.replace('"', '""')
    try:
        cursor = conn.execute('SELECT rowid, * FROM %s ORDER BY rowid' % quoted)
    except sqlite3.OperationalError:  # WITHOUT ROWID: every column, in order
        width = len(conn.execute('SELECT * FROM %s LIMIT 0' % quoted).description)
        cursor = conn.execute('SELECT * FROM %s ORDER BY %s' % (quoted, ', '.join(str(i + 1) for i in range(width))))
    digest = hashlib.sha256()
    count = 0
    for row in cursor:
        count += 1
        digest.update(repr([(type(v).__name__, v) for v in row]).encode('utf-8'))
    return {'rows': count, 'sha256': digest.hexdigest()}


def measure(path: Path) -> Dict[str, Any]:
    """The engine's own view of a database file (read-only; the file must exist)."""
    assert path.is_file(), '%s does not exist' % path
    conn = sqlite3.connect('file:%s?mode=ro' % _quote(path), uri=True)
    try:
        def one(sql: str) -> Any:
            return conn.execute(sql).fetchone()[0]

        master = [list(r) for r in conn.execute('SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master '
                                                'ORDER BY type, name')]
        tables = [r[1] for r in master if r[0] == 'table']
        result = {
            'sqlite_master': master,
            'tables': {name: _checksum(conn, name) for name in tables},
            'pragmas': {name: one('PRAGMA %s' % name) for name in (
                'user_version', 'application_id', 'page_size', 'encoding', 'auto_vacuum', 'journal_mode',
                'page_count', 'freelist_count')},
            'integrity_check': [r[0] for r in conn.execute('PRAGMA integrity_check')],
            'foreign_key_check': [list(r) for r in conn.execute('PRAGMA foreign_key_check')],
        }
    finally:
        conn.close()
    shell = subprocess.run(['sqlite3', '-readonly', str(path.resolve()), '.schema'], capture_output=True, text=True,
                           check=True)
    result['shell_schema'] = shell.stdout.splitlines()
    return result


def _quote(path: Path) -> str:
    from urllib.parse import quote
    return quote(str(path.resolve()))


def assert_same(expected: Dict[str, Any], found: Dict[str, Any], what: str) -> None:
    if expected == found:
        return
    a = json.dumps(expected, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    b = json.dumps(found, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    diff = '\n'.join(difflib.unified_diff(a, b, 'source', what, lineterm='', n=2))
    pytest.fail('%s differs from the source:\n%s' % (what, diff[:20000]))


def tree(root: Path) -> List[str]:
    # -wal/-shm come and go with connections; a stray file is anything else.
    return sorted(str(p.relative_to(root)) for p in root.rglob('*')
                  if 'backups' not in p.parts and not p.name.endswith(('-wal', '-shm')))


def test_rich_database_round_trips_at_every_path_class(tmp_path):
    root = tmp_path / 'srv'
    cases = {}
    for label, rel in PATH_CLASSES.items():
        db = root / rel
        build_rich(db)
        cases[label] = {'db': db, 'dest': root / 'backups' / label, 'other': db.parent / ('restored ' + db.name),
                        'before': measure(db)}
        assert cases[label]['before']['pragmas']['journal_mode'] == 'wal'
    files_before = tree(root)

    tasks: List[Dict[str, Any]] = []
    for label, case in cases.items():
        db, dest = str(case['db']), str(case['dest'])
        tasks += [
            {'name': 'backup %s' % label, 'opsready.operations.db_backup': {
                'engine': 'sqlite', 'database': db, 'dest': dest}},
            {'name': 'verify %s' % label, 'opsready.operations.backup_verify': {'path': dest}},
            {'name': 'restore elsewhere %s' % label, 'opsready.operations.db_restore': {
                'engine': 'sqlite', 'src': dest, 'source_database': db, 'database': str(case['other'])}},
            {'name': 'drill check %s' % label, 'opsready.operations.drill_step': {
                'step': 'integrity', 'engine': 'sqlite', 'database': str(case['other']), 'source': db,
                'backup': '{{ backup_%d.manifest.path }}' % list(cases).index(label)}},
        ]
        tasks[-4]['register'] = 'backup_%d' % list(cases).index(label)
    result = play(tmp_path, tasks)
    assert result.rc == 0, result.stdout[-6000:]

    for label, case in cases.items():
        backup = result.result('backup %s' % label)
        held = backup['manifest']['source']
        assert held['tables'] == len([t for t in case['before']['tables'] if not t.startswith('sqlite_')])
        assert held['rows_total'] > 3000 and held['journal_mode'] == 'wal', held
        verify = result.result('verify %s' % label)['results'][0]['checks']
        assert verify['source_check'] == 'ok (tables and rows match exactly)', verify
        restored = result.result('restore elsewhere %s' % label)
        assert restored['target']['journal_mode'] == 'wal' and restored['source_check'].startswith('ok')
        drill = result.result('drill check %s' % label)
        assert drill['ok'] is True and 'tables and rows match exactly' in drill['result'], drill
        assert_same(case['before'], measure(case['other']), 'the copy restored elsewhere (%s)' % label)

    # Nothing stray next to any source (the '#' bug left an empty file "a" behind): only the restored copies.
    expected_new = sorted(str(c['other'].relative_to(root)) for c in cases.values())
    assert sorted(set(tree(root)) - set(files_before)) == expected_new

    # Damage every original (rows gone, a table dropped, an extra table), then restore over it.
    for case in cases.values():
        conn = sqlite3.connect(str(case['db']))
        conn.executescript('DELETE FROM child WHERE id > 10; DROP TABLE kv; CREATE TABLE intruder (x);')
        conn.close()
    tasks = [{'name': 'restore over %s' % label, 'opsready.operations.db_restore': {
        'engine': 'sqlite', 'src': str(case['dest']), 'database': str(case['db']), 'replace': True}}
        for label, case in cases.items()]
    tasks += [{'name': 'maintain %s' % label, 'opsready.operations.db_maintenance': {
        'engine': 'sqlite', 'database': str(case['db']), 'tasks': ['vacuum', 'analyze', 'optimize'], 'force': True}}
        for label, case in cases.items()]
    # Measured between the restore and the maintenance by a second play below: the restore alone first.
    result = play(tmp_path, tasks[:len(cases)])
    assert result.rc == 0, result.stdout[-6000:]
    for label, case in cases.items():
        assert result.result('restore over %s' % label)['replaced'] is True
        assert_same(case['before'], measure(case['db']), 'the original restored in place (%s)' % label)

    result = play(tmp_path, tasks[len(cases):])
    assert result.rc == 0, result.stdout[-6000:]
    for label, case in cases.items():
        res = result.result('maintain %s' % label)
        assert res['changed'] is True, res
        after = measure(case['db'])
        assert 'sqlite_stat1' in after['tables'], 'ANALYZE ran on another file than %s' % case['db']
        assert after['integrity_check'] == ['ok']
        # VACUUM may renumber the rowids of a table without an INTEGER PRIMARY KEY (documented SQLite
        # behaviour): rowid_gaps keeps its rows, not their rowids.
        kept = {k: v for k, v in after['tables'].items() if k not in ('sqlite_stat1', 'rowid_gaps')}
        assert kept == {k: v for k, v in case['before']['tables'].items() if k != 'rowid_gaps'}
        assert after['tables']['rowid_gaps']['rows'] == case['before']['tables']['rowid_gaps']['rows']
    assert sorted(set(tree(root)) - set(files_before)) == expected_new


def test_a_missing_file_at_a_hostile_path_is_never_created(tmp_path):
    """Backup, maintenance and drill checks of a path that does not exist fail and create nothing."""
    missing = tmp_path / 'gone#x' / 'a?b%c.db'
    missing.parent.mkdir()
    result = play(tmp_path, [
        {'name': 'backup', 'ignore_errors': True, 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(missing), 'dest': str(tmp_path / 'b')}},
        {'name': 'maintain', 'opsready.operations.db_maintenance': {'engine': 'sqlite', 'database': str(missing)},
         'ignore_errors': True},
        {'name': 'drill', 'ignore_errors': True, 'opsready.operations.drill_step': {
            'step': 'integrity', 'engine': 'sqlite', 'database': str(missing)}},
    ])
    for task in ('backup', 'maintain', 'drill'):
        assert result.result(task)['_event'] == 'runner_on_failed', task
        assert 'does not exist' in result.result(task)['msg'], result.result(task)['msg']
    assert list(missing.parent.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith('play-')) == ['gone#x']


WRITER = r'''
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
log = open(sys.argv[3], 'w', buffering=1)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    rowid = conn.execute("INSERT INTO ticks (at, pad) VALUES (0, randomblob(64))").lastrowid
    log.write('%d %.6f\n' % (rowid, time.time()))  # autocommit: committed when execute returned
'''


def test_consistent_at_is_the_snapshot_instant_not_the_end_of_the_copy(tmp_path):
    """Every commit before consistent_at is in the copy, even while a writer commits during a long copy."""
    db = tmp_path / 'ticks.db'
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE ticks (id INTEGER PRIMARY KEY, at REAL NOT NULL, pad BLOB)')
    conn.execute('CREATE TABLE ballast (b BLOB)')
    conn.execute('BEGIN')
    # ~60 MB: a copy that takes a while
    conn.executemany('INSERT INTO ballast VALUES (randomblob(?))', [(4096,)] * 15000)
    conn.execute('COMMIT')
    conn.close()
    dest = tmp_path / 'b'
    log = tmp_path / 'commits.log'
    writer = subprocess.Popen([sys.executable, '-c', WRITER, str(db), '600', str(log)])
    try:
        time.sleep(0.5)
        result = play(tmp_path, [{'name': 'backup', 'opsready.operations.db_backup': {
            'engine': 'sqlite', 'database': str(db), 'dest': str(dest), 'compression': 'none'}}])
        assert writer.poll() is None
    finally:
        writer.terminate()
        writer.wait()
    assert result.rc == 0, result.stdout[-4000:]
    manifest = result.result('backup')['manifest']
    from datetime import datetime
    consistent = datetime.fromisoformat(manifest['consistent_at'].replace('Z', '+00:00')).timestamp()
    finished = datetime.fromisoformat(manifest['finished'].replace('Z', '+00:00')).timestamp()
    copy = sqlite3.connect('file:%s?mode=ro' % _quote(Path(manifest['path'])), uri=True)
    newest_in_copy = copy.execute('SELECT max(id) FROM ticks').fetchone()[0]
    copy.close()
    commits = [(int(a), float(b)) for a, b in (line.split() for line in log.read_text().splitlines() if ' ' in line)]
    missing_before = len([1 for rowid, at in commits if rowid > newest_in_copy and at < consistent])
    committed_during_copy = len([1 for rowid, at in commits if rowid > newest_in_copy and at < finished])
    assert committed_during_copy > 0, 'the writer must have committed while the copy ran'
    assert missing_before == 0, ('%d commits made before consistent_at=%s are not in the copy: consistent_at is '
                                 'not the snapshot instant' % (missing_before, manifest['consistent_at']))
    assert manifest['consistent_at'] == manifest['source']['measured_at']
