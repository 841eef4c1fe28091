"""Encrypted WAL archiving end to end (issue 18): a real PostgreSQL 15 archiving through pg_wal_archive.py with
``--recipient`` under a running writer, then point-in-time recovery with the identity (db_restore, as a drill
runs it). A wrong key fails at verify and at the restore's key check before anything exists on the target; a
tampered segment (stored checksum fixed up, as anyone who can write the catalog could) fails authentication
naming the segment, and the scratch directory is left empty."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from tests.harness.age_key import Key  # noqa: E402
from tests.harness.playbook import conn as login, play  # noqa: E402
from tests.harness.wal_catalog import wal_catalog  # noqa: E402


@pytest.fixture
def wal_dest():
    """A catalog the postgres service user can write, the helper it runs, and a scratch directory it can reach."""
    with wal_catalog('opsready-walcrypt-', scratch=True) as catalog:
        yield Path(catalog.dest), catalog.helper, Path(catalog.scratch)


def wal_manifests(dest: Path) -> list:
    found = [(json.loads(p.read_text()), p) for p in dest.glob('postgresql-cluster-wal-*.manifest.json')]
    return sorted(found, key=lambda pair: pair[0]['position']['start'])


def test_encrypted_wal_pitr_with_the_identity_wrong_key_and_tampering(postgres_factory, wal_dest, tmp_path):
    dest, helper, scratch = wal_dest
    key, other = Key(tmp_path, 'restore-key'), Key(tmp_path, 'other-key')
    server = postgres_factory(archive_command='/usr/bin/python3 %s %s %%p %%f --compression gzip --recipient %s'
                              % (helper, dest, key.recipient))
    server.create_database('app')
    server.sql('CREATE TABLE events (id serial PRIMARY KEY, label text NOT NULL)', database='app')
    extravars = {'pw': server.password}
    conn = login(server, 'pw')
    run = play(tmp_path, [{'name': 'base', 'opsready.operations.db_backup': dict(
        conn, engine='postgresql', kind='base', dest=str(dest),
        owner='postgres', encrypt=True, recipients=[key.recipient])}],
        extravars)
    assert run.rc == 0, run.stdout[-3000:]

    # A writer runs while segments are switched and archived (encrypted by the helper, as PostgreSQL runs it).
    stop = threading.Event()
    errors: list = []

    def writer() -> None:
        try:
            while not stop.is_set():
                server.sql("INSERT INTO events (label) SELECT md5(g::text) || repeat('x', 100) "
                           "FROM generate_series(1, 200) g", database='app')
        except Exception as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _switch in range(3):
            run = play(tmp_path, [{'name': 'wal', 'opsready.operations.db_backup': dict(
                conn, engine='postgresql', kind='wal', dest=str(dest),
                owner='postgres', encrypt=True, recipients=[key.recipient])}],
                extravars)
            assert run.rc == 0, run.stdout[-3000:]
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    rows = server.sql('SELECT count(*), md5(string_agg(id::text || label, \',\' ORDER BY id)) FROM events',
                      database='app')[0]
    run = play(tmp_path, [
        {'name': 'wal', 'opsready.operations.db_backup': dict(
            conn, engine='postgresql', kind='wal', dest=str(dest),
            owner='postgres', encrypt=True, recipients=[key.recipient])},
        # encrypt=true with a recipient the helper's command line lacks: the play must not believe it.
        {'name': 'wal other', 'ignore_errors': True, 'opsready.operations.db_backup': dict(
            conn, engine='postgresql', kind='wal', dest=str(dest),
            owner='postgres', encrypt=True, recipients=[other.recipient])}],
        extravars)
    assert run.rc == 0, run.stdout[-3000:]
    refused = run.result('wal other')
    assert refused['_event'] == 'runner_on_failed' and '--recipient %s' % other.recipient in refused['msg'], refused

    manifests = wal_manifests(dest)
    assert len(manifests) >= 4, [p.name for _m, p in manifests]
    for manifest, _path in manifests:
        assert manifest['encryption']['recipients'] == [key.recipient], manifest
        artifact = dest / manifest['artifact']
        assert artifact.name.endswith('.gz.age') and artifact.read_bytes().startswith(b'age-encryption.org/v1\n')
    # Debian's age (not our code) opens what the helper wrote.
    artifact = dest / manifests[0][0]['artifact']
    plain = subprocess.run(['age', '-d', '-i', str(key.file), str(artifact)], capture_output=True, check=True).stdout
    assert hashlib.sha256(subprocess.run(['gzip', '-dc'], input=plain, capture_output=True, check=True).stdout
                          ).hexdigest() == manifests[0][0]['plain_sha256']

    psql = [server.bin('psql'), '-X', '-A', '-t', '-F', ' ', '-h', '127.0.0.1', '-U', server.user, '-d', 'app', '-c',
            'SELECT count(*), md5(string_agg(id::text || label, \',\' ORDER BY id)) FROM events']
    restore = dict(conn, engine='postgresql', src=str(dest), datadir=str(scratch / 'data'))
    run = play(tmp_path, [
        # Wrong key: verify (the drill's first step) and the restore's key check both refuse, naming the artifact.
        {'name': 'verify wrong key', 'ignore_errors': True, 'opsready.operations.backup_verify': {
            'path': str(dest), 'database': '@cluster', 'deep': True, 'identity_file': str(other.file)}},
        {'name': 'restore wrong key', 'ignore_errors': True,
         'opsready.operations.db_restore': dict(restore, identity_file=str(other.file))},
        {'name': 'leftovers after wrong key', 'ansible.builtin.find': {'paths': str(scratch), 'file_type': 'any'}},
        {'name': 'verify', 'opsready.operations.backup_verify': {
            'path': str(dest), 'database': '@cluster', 'deep': True, 'identity_file': str(key.file)}},
        {'name': 'restore', 'register': 'restored',
         'opsready.operations.db_restore': dict(restore, identity_file=str(key.file))},
        {'name': 'rows', 'ansible.builtin.command': {'argv': psql + ['-p', '{{ restored.target.port }}']},
         'environment': {'PGPASSWORD': '{{ pw }}'}, 'changed_when': False},
        {'name': 'drop', 'opsready.operations.db_restore': dict(restore, state='absent')},
    ], extravars)
    assert run.rc == 0, run.stdout[-4000:]
    for task in ('verify wrong key', 'restore wrong key'):
        res = run.result(task)
        assert res['_event'] == 'runner_on_failed', res
        assert 'cannot be decrypted with the identity' in json.dumps(res), (task, res.get('msg'))
    assert run.result('leftovers after wrong key')['files'] == []
    assert run.result('rows')['stdout'].strip() == '%s %s' % tuple(rows)
    assert len(run.result('restore')['wal_segments']) >= 4

    # Tamper with one archived segment (a flipped bit) and fix its stored checksum: authentication must catch it.
    manifest, manifest_path = manifests[len(manifests) // 2]
    artifact = dest / manifest['artifact']
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    manifest['sha256'] = hashlib.sha256(bytes(data)).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    run = play(tmp_path, [
        {'name': 'restore tampered', 'ignore_errors': True,
         'opsready.operations.db_restore': dict(restore, identity_file=str(key.file))},
        {'name': 'leftovers after tampering', 'ansible.builtin.find': {'paths': str(scratch), 'file_type': 'any'}},
    ], extravars)
    res = run.result('restore tampered')
    assert res['_event'] == 'runner_on_failed', res
    assert 'fails authentication' in res['msg'] and manifest['position']['wal_file'] in res['msg'], res['msg']
    assert run.result('leftovers after tampering')['files'] == []
