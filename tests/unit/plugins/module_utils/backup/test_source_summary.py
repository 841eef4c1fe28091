"""A backup proves what it holds: the manifest records what the source held, verification compares.

Simulates the one failure this product exists to catch, a backup that lost the data: a manifest that says
the source had tables with rows, next to an artifact without them (an empty SQLite copy, a pg_dump script
or a mariadb-dump file with no table data). Each must fail verification with a message naming it; an
artifact that holds the data, and an old manifest without a summary, still verify.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import source
from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup, verify_path
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine
from ansible_collections.opsready.operations.plugins.module_utils.engines.connection import ConnectionParams
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import pg_toc_summary

SOURCE_WITH_ROWS = {'engine': 'x', 'tables': 3, 'non_empty_tables': 2, 'rows_estimate': 1200, 'size_bytes': 1 << 20}

PG_HEAD = b'--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n'
PG_TAIL = b'\n--\n-- PostgreSQL database dump complete\n--\n\n'
MARIA_HEAD = b'-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n'
MARIA_TAIL = b'\n-- Dump completed on 2026-12-04 13:00:00\n'


def store(tmp_path, name: str, payload: bytes, engine: str, fmt: str, held=None) -> str:
    dest = tmp_path / 'b'
    dest.mkdir(exist_ok=True)
    artifact = dest / name
    artifact.write_bytes(payload)
    data = {'engine': engine, 'kind': 'full', 'database': 'app', 'started': '2026-12-04T13:00:00Z',
            'finished': '2026-12-04T13:00:01Z', 'size': len(payload), 'sha256': hashlib.sha256(payload).hexdigest(),
            'compression': 'none', 'format': fmt}
    if held is not None:
        data['source'] = held
    write_manifest(str(artifact), data)
    return str(artifact)


def pg_plain(tables: int, rows_per_table: int) -> bytes:
    body = b''
    for i in range(tables):
        body += b'\nCREATE TABLE public.t%d (\n    id integer\n);\n' % i
    for i in range(tables):
        body += b'\nCOPY public.t%d (id) FROM stdin;\n' % i
        body += b''.join(b'%d\n' % n for n in range(rows_per_table))
        body += b'\\.\n'
    return PG_HEAD + body + PG_TAIL


def maria(tables: int, rows: bool) -> bytes:
    body = b''
    for i in range(tables):
        body += b'\nCREATE TABLE `t%d` (\n  `id` int(11) NOT NULL\n) ENGINE=InnoDB;\n' % i
        if rows:
            body += b'\nINSERT INTO `t%d` VALUES (1),(2),(3);\n' % i
    return MARIA_HEAD + body + MARIA_TAIL


def verify(tmp_path):
    return verify_path(str(tmp_path / 'b'), conn=ConnectionParams(), record=True)


@pytest.mark.parametrize('payload, engine, fmt', [
    (pg_plain(3, 0), 'postgresql', 'plain'),
    (PG_HEAD + PG_TAIL, 'postgresql', 'plain'),
    (maria(3, False), 'mariadb', 'sql'),
    (MARIA_HEAD + MARIA_TAIL, 'mariadb', 'sql'),
], ids=['pg-schema-only', 'pg-nothing', 'maria-schema-only', 'maria-nothing'])
def test_a_dump_without_the_data_of_a_source_with_rows_never_verifies(tmp_path, payload, engine, fmt):
    artifact = store(tmp_path, 'dump.sql', payload, engine, fmt, SOURCE_WITH_ROWS)
    outcome = verify(tmp_path)
    assert len(outcome['failed']) == 1, outcome['results']
    error = outcome['failed'][0]['error']
    assert 'the backup lost the data' in error and artifact in error
    assert '3 table(s), 2 of them with rows' in error
    recorded = json.loads(open(artifact + '.manifest.json').read())['verification']
    assert recorded['ok'] is False


@pytest.mark.parametrize('payload, engine, fmt', [
    (pg_plain(3, 400), 'postgresql', 'plain'),
    (maria(3, True), 'mariadb', 'sql'),
], ids=['pg', 'maria'])
def test_a_dump_holding_the_data_verifies_and_reports_what_it_holds(tmp_path, payload, engine, fmt):
    store(tmp_path, 'dump.sql', payload, engine, fmt, SOURCE_WITH_ROWS)
    outcome = verify(tmp_path)
    assert outcome['failed'] == []
    checks = outcome['results'][0]['checks']
    assert checks['source_check'] == 'ok' and checks['source_tables'] == 3 and checks['found_tables'] == 3
    assert checks['artifact']['tables'] == 3


def test_plain_dump_counts_only_copy_blocks_with_rows(tmp_path):
    payload = pg_plain(2, 5) + pg_plain(1, 0)  # two tables with rows, one empty block
    store(tmp_path, 'dump.sql', payload, 'postgresql', 'plain', SOURCE_WITH_ROWS)
    checks = verify(tmp_path)['results'][0]['checks']
    assert checks['artifact'] == {'tables': 3, 'data_tables': 2}


def test_an_old_manifest_without_a_summary_still_verifies(tmp_path):
    store(tmp_path, 'dump.sql', PG_HEAD + PG_TAIL, 'postgresql', 'plain', held=None)
    outcome = verify(tmp_path)
    assert outcome['failed'] == []
    assert outcome['results'][0]['checks']['source_check'].startswith('not recorded')


def test_an_empty_source_with_an_empty_dump_verifies(tmp_path):
    store(tmp_path, 'dump.sql', PG_HEAD + PG_TAIL, 'postgresql', 'plain',
          {'tables': 0, 'non_empty_tables': 0, 'rows_estimate': 0})
    assert verify(tmp_path)['failed'] == []


def test_pg_restore_listing_counts_tables_and_data_entries():
    listing = '\n'.join([
        ';',
        '; Archive created at 2026-12-04 13:00:00 UTC',
        '215; 1259 16390 TABLE public t1 postgres',
        '216; 1259 16395 TABLE public parted postgres',
        '217; 1259 16398 TABLE public parted_1 postgres',
        '3300; 0 0 TABLE ATTACH public parted_1 postgres',
        '218; 1259 16401 SEQUENCE public t1_id_seq postgres',
        '3301; 0 16390 TABLE DATA public t1 postgres',
        '3302; 0 16398 TABLE DATA public parted_1 postgres',
        '3303; 0 0 SEQUENCE SET public t1_id_seq postgres',
    ])
    assert pg_toc_summary(listing) == {'tables': 3, 'data_entries': 2}


def test_needle_counter_finds_matches_across_chunk_boundaries():
    stream = b'CREATE TABLE a\n' + b'x' * 10 + b'\nCREATE TABLE b\n\nINSERT INTO c\n'
    for size in range(1, len(stream) + 1):
        counter = source.NeedleCounter([b'\nCREATE TABLE ', b'\nINSERT INTO '])
        for i in range(0, len(stream), size):
            counter.feed(stream[i:i + size])
        assert counter.counts == [2, 1], size


# -- SQLite: the snapshot's own counts, compared exactly -------------------------------------------------

def sqlite_backup(tmp_path, name: str = 'app.db'):
    db = tmp_path / name
    conn = sqlite3.connect(db)
    conn.executescript('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE e (x);'
                       'CREATE VIEW v AS SELECT * FROM t;')
    conn.executemany('INSERT INTO t (v) VALUES (?)', [('row %d' % i,) for i in range(300)])
    conn.commit()
    conn.close()
    dest = tmp_path / 'b'
    options = BackupOptions(kind='full', dest=str(dest), database=str(db))
    result = run_backup(get_engine('sqlite', ConnectionParams()), options, verify=False)
    return db, result['manifest']


def test_sqlite_manifest_records_what_the_snapshot_held(tmp_path):
    _db, manifest = sqlite_backup(tmp_path)
    held = json.loads(open(manifest['path'] + '.manifest.json').read())['source']
    assert held['tables'] == 2 and held['non_empty_tables'] == 1 and held['rows'] == {'t': 300, 'e': 0}
    assert held['objects'] == {'table': 2, 'index': 0, 'view': 1, 'trigger': 0}
    assert held['exact'] is True and held['page_count'] >= 2 and held['journal_mode'] == 'delete'
    assert manifest['consistent_at'] == held['measured_at'] <= manifest['finished']


def replace_artifact(path: str, db_file: str) -> None:
    """Swap the artifact for another SQLite file (zstd, as written), fixing size and checksum in the
    manifest: the checksums pass, only the comparison with the source can catch it."""
    import zstandard
    payload = zstandard.ZstdCompressor().compress(open(db_file, 'rb').read())
    open(path, 'wb').write(payload)
    manifest = path + '.manifest.json'
    data = json.loads(open(manifest).read())
    data.update(size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    open(manifest, 'w').write(json.dumps(data))


def test_sqlite_an_empty_copy_of_a_full_source_never_verifies(tmp_path):
    _db, manifest = sqlite_backup(tmp_path)
    empty = tmp_path / 'empty.db'
    sqlite3.connect(empty).execute('PRAGMA user_version = 0').fetchall()
    sqlite3.connect(empty).close()
    replace_artifact(manifest['path'], str(empty))
    outcome = verify(tmp_path)
    assert len(outcome['failed']) == 1
    assert 'holds no tables, but the source held 2 table(s), 1 of them with rows, 300 rows' in \
        outcome['failed'][0]['error']


def test_sqlite_a_copy_missing_rows_never_verifies(tmp_path):
    db, manifest = sqlite_backup(tmp_path)
    fewer = tmp_path / 'fewer.db'
    conn = sqlite3.connect(db)
    conn.execute('DELETE FROM t WHERE id > 299')
    conn.commit()
    conn.execute("VACUUM INTO ?", (str(fewer),))
    conn.close()
    replace_artifact(manifest['path'], str(fewer))
    outcome = verify(tmp_path)
    assert len(outcome['failed']) == 1
    assert "table 't': 299 rows, expected 300" in outcome['failed'][0]['error']


def test_sqlite_intact_backup_verifies_exactly(tmp_path):
    sqlite_backup(tmp_path)
    outcome = verify(tmp_path)
    assert outcome['failed'] == []
    assert outcome['results'][0]['checks']['source_check'] == 'ok (tables and rows match exactly)'


def test_compare_without_summary_or_with_a_measuring_error_reports_it():
    assert source.compare(None, {'tables': 0}, 'x', 'p')['source_check'].startswith('not recorded')
    assert source.compare({'error': 'denied'}, {'tables': 0}, 'x', 'p')['source_check'] == \
        'not measured at backup time: denied'


def test_sqlite_uri_escapes_every_uri_character():
    from ansible_collections.opsready.operations.plugins.module_utils.engines.sqlite.backup import sqlite_uri
    assert sqlite_uri('/srv/a#b?c%d e\u00fc.db', 'ro') == 'file:/srv/a%23b%3Fc%25d%20e%C3%BC.db?mode=ro'
    from urllib.parse import quote
    assert sqlite_uri('-lead.db', 'rw') == 'file:%s?mode=rw' % quote(os.path.join(os.getcwd(), '-lead.db'))
    assert sqlite_uri('file:x?mode=memory', 'ro').endswith('/file%3Ax%3Fmode%3Dmemory?mode=ro')
