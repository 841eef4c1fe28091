"""backup/rekey.py on real files: a rotation, idempotence, and the manifest roll-forward after a crash
between the swap and the manifest rewrite."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import rekey
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest, write_manifest
from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.streaming import ArtifactWriter
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow


def key():
    secret = encryption.generate_identity()
    return encryption.parse_identities(secret)[0]


def encrypted_artifact(directory, recipients, payload=b'x' * 200_000):
    path = os.path.join(str(directory), 'etc-files-%s.tar.age' % utcnow().strftime('%Y%m%dT%H%M%S%fZ'))
    with ArtifactWriter(path, compression='none', recipients=recipients) as writer:
        writer.write(payload)
        stored = writer.commit()
    now = isoformat(utcnow())
    write_manifest(path, {'engine': 'files', 'kind': 'files', 'database': 'etc', 'started': now, 'finished': now,
                          'size': stored['size'], 'sha256': stored['sha256'], 'compression': 'none',
                          'encryption': stored['encryption']})
    return path


def test_rotation_then_nothing_to_do(tmp_path):
    old, new = key(), key()
    path = encrypted_artifact(tmp_path, [old.recipient])
    planned = rekey.rekey(str(tmp_path), [new.recipient], [old], check_mode=True)
    assert planned['rekeyed'] == [os.path.basename(path)] and planned['readable_by'] == {
        new.recipient: [os.path.basename(path)]}
    assert read_manifest(path + '.manifest.json').data['encryption']['recipients'] == [old.recipient]
    done = rekey.rekey(str(tmp_path), [new.recipient], [old, new])
    assert done['rekeyed'] == [os.path.basename(path)] and done['failed'] == []
    again = rekey.rekey(str(tmp_path), [new.recipient], [new])
    assert again['rekeyed'] == [] and again['already'] == [os.path.basename(path)]


def test_a_wrong_key_fails_that_artifact_and_keeps_it(tmp_path):
    owner, stranger, new = key(), key(), key()
    path = encrypted_artifact(tmp_path, [owner.recipient])
    before = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    result = rekey.rekey(str(tmp_path), [new.recipient], [stranger])
    assert result['rekeyed'] == [] and 'cannot be decrypted' in result['failed'][0]['msg']
    assert hashlib.sha256(open(path, 'rb').read()).hexdigest() == before
    assert not os.path.exists(path + '.partial')


@pytest.mark.parametrize('swapped', [True, False])
def test_a_manifest_with_a_pending_rekey_describes_the_file_that_is_there(tmp_path, swapped):
    old, new = key(), key()
    path = encrypted_artifact(tmp_path, [old.recipient])

    def crash(point, artifact_id):
        if point == ('after_swap' if swapped else 'after_pending'):
            raise RuntimeError('crash')

    with pytest.raises(RuntimeError):
        rekey.rekey(str(tmp_path), [new.recipient], [old], fault=crash)
    entry = Catalog(str(tmp_path)).entries[0]
    assert entry.data['sha256'] == hashlib.sha256(open(path, 'rb').read()).hexdigest()
    assert entry.data['encryption']['recipients'] == [new.recipient if swapped else old.recipient]


# -- the decrypting child process: every failure fails that artifact only, keeps it, and leaves nothing behind --
def own_fds():
    return sorted(os.listdir('/proc/self/fd'))


def children():
    import psutil
    return psutil.Process().children(recursive=True)


def snapshot(directory):
    return {name: hashlib.sha256(open(os.path.join(str(directory), name), 'rb').read()).hexdigest()
            for name in sorted(os.listdir(str(directory)))}


def assert_kept(directory, before, fds):
    """The catalog is byte for byte what it was, no .partial, no child process (zombie or not), no new fd."""
    assert snapshot(directory) == before
    assert not [n for n in os.listdir(str(directory)) if n.endswith('.partial')]
    assert children() == []
    assert own_fds() == fds


BIG = os.urandom(1 << 20) * 6   # 6 MiB: more than the pipe and a block, so the child is mid-stream when hit


def test_ciphertext_tampered_mid_stream_fails_that_artifact_only(tmp_path):
    old, new = key(), key()
    bad = encrypted_artifact(tmp_path, [old.recipient], payload=BIG)
    good = encrypted_artifact(tmp_path, [old.recipient], payload=BIG[:300_000])
    with open(bad, 'r+b') as handle:   # one bit in a chunk near the middle, header and first chunks intact
        handle.seek(len(BIG) // 2)
        byte = handle.read(1)
        handle.seek(len(BIG) // 2)
        handle.write(bytes([byte[0] ^ 1]))
    write_manifest(bad, dict(read_manifest(bad + '.manifest.json').data,
                             sha256=hashlib.sha256(open(bad, 'rb').read()).hexdigest()))
    fds, before = own_fds(), snapshot(tmp_path)
    result = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert result['rekeyed'] == [os.path.basename(good)], result
    assert [f['id'] for f in result['failed']] == [os.path.basename(bad)]
    assert 'fails authentication at chunk' in result['failed'][0]['msg']
    after = snapshot(tmp_path)
    for name in (bad, bad + '.manifest.json'):
        assert after[os.path.basename(name)] == before[os.path.basename(name)], 'the tampered artifact was changed'
    assert read_manifest(good + '.manifest.json').data['encryption']['recipients'] == [new.recipient]
    assert not [n for n in after if n.endswith('.partial')]
    assert children() == [] and own_fds() == fds


@pytest.mark.parametrize('same_size', [True, False], ids=['same_size', 'other_size'])
def test_an_artifact_replaced_by_another_valid_age_file_is_not_rekeyed(tmp_path, same_size):
    """Every chunk authenticates (the AEAD proves a holder of the file key wrote it, and anyone with the public key
    can write a new file): only the plaintext checksum sealed in the manifest tells that this is not the backup.
    The plaintext is hashed as it is encrypted, after the pipe; a mismatch keeps the old file and its manifest."""
    old, new = key(), key()
    victim = encrypted_artifact(tmp_path, [old.recipient], payload=BIG)
    good = encrypted_artifact(tmp_path, [old.recipient], payload=BIG[:300_000])
    other = BIG[:-1] + bytes([BIG[-1] ^ 1]) if same_size else BIG + b'!'
    impostor = str(tmp_path / 'impostor')
    with ArtifactWriter(impostor, compression='none', recipients=[old.recipient]) as writer:
        writer.write(other)
        writer.commit()
    os.replace(impostor, victim)
    write_manifest(victim, dict(read_manifest(victim + '.manifest.json').data,   # the file's own size and checksum
                                size=os.path.getsize(victim),
                                sha256=hashlib.sha256(open(victim, 'rb').read()).hexdigest()))
    fds, before = own_fds(), snapshot(tmp_path)
    result = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert result['rekeyed'] == [os.path.basename(good)], result
    assert [f['id'] for f in result['failed']] == [os.path.basename(victim)]
    message = result['failed'][0]['msg']
    assert 'differs' in message or (not same_size and 'plaintext bytes' in message), message
    after = snapshot(tmp_path)
    for name in (victim, victim + '.manifest.json'):
        assert after[os.path.basename(name)] == before[os.path.basename(name)], 'the replaced artifact was changed'
    assert not [n for n in after if n.endswith('.partial')]
    assert children() == [] and own_fds() == fds


def test_a_wrong_identity_leaves_no_process_and_no_fd(tmp_path):
    owner, stranger, new = key(), key(), key()
    encrypted_artifact(tmp_path, [owner.recipient], payload=BIG)
    fds, before = own_fds(), snapshot(tmp_path)
    result = rekey.rekey(str(tmp_path), [new.recipient], [stranger])
    assert 'cannot be decrypted with the identity given' in result['failed'][0]['msg']
    assert_kept(tmp_path, before, fds)


def test_the_decrypting_child_killed_mid_stream_fails_the_artifact(tmp_path):
    import signal
    secret = encryption.generate_identity()
    old, new = encryption.parse_identities(secret)[0], key()
    encrypted_artifact(tmp_path, [old.recipient], payload=BIG)
    fds, before = own_fds(), snapshot(tmp_path)
    seen = []

    def kill_child(point, artifact_id):
        if point != rekey.STREAM_POINT:
            return
        found = children()
        assert len(found) == 1, 'decryption does not run in its own process'
        child = found[0]
        # the child is a fork: no key in its command line or environment
        for place in ('cmdline', 'environ'):
            with open('/proc/%d/%s' % (child.pid, place), 'rb') as handle:
                text = handle.read()
            assert secret.encode() not in text and secret.lower().encode() not in text
        seen.append(child.pid)
        os.kill(child.pid, signal.SIGKILL)

    result = rekey.rekey(str(tmp_path), [new.recipient], [old], fault=kill_child)
    assert seen and result['rekeyed'] == []
    assert 'killed by signal %d' % signal.SIGKILL in result['failed'][0]['msg']
    assert 'old file was kept' in result['failed'][0]['msg']
    assert_kept(tmp_path, before, fds)


def test_a_write_error_mid_stream_fails_the_artifact_and_keeps_it(tmp_path):
    """A real EFBIG from the kernel (RLIMIT_FSIZE): what a full disk does to the .partial, without root."""
    import resource
    import signal
    old, new = key(), key()
    encrypted_artifact(tmp_path, [old.recipient], payload=BIG)
    fds, before = own_fds(), snapshot(tmp_path)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, limits[1]))
    try:
        result = rekey.rekey(str(tmp_path), [new.recipient], [old])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert result['rekeyed'] == [] and len(result['failed']) == 1, result
    msg = result['failed'][0]['msg']
    assert 'File too large' in msg and 'old file was kept' in msg and '.partial' in msg
    assert_kept(tmp_path, before, fds)


def test_the_new_file_is_written_back_while_it_grows(tmp_path, monkeypatch):
    """The fsync before the swap must not write a whole new artifact after the stream ended (1 GB: ~1 s here):
    the rewritten file is fdatasynced in the background as it grows, and that thread ends with the rotation."""
    import threading
    from ansible_collections.opsready.operations.plugins.module_utils.common import streaming
    synced = []
    real = os.fdatasync
    monkeypatch.setattr(streaming, 'SYNC_EVERY', 1024 * 1024)
    monkeypatch.setattr(streaming.os, 'fdatasync', lambda fd: (synced.append(os.readlink('/proc/self/fd/%d' % fd)),
                                                               real(fd)))
    old, new = key(), key()
    payload = os.urandom(5 << 20)
    path = encrypted_artifact(tmp_path, [old.recipient], payload=payload)
    synced.clear()   # the original artifact's own writer synced too
    done = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert done['rekeyed'] == [os.path.basename(path)] and done['failed'] == []
    assert [name for name in synced if name.endswith('.partial')], synced
    assert not [t for t in threading.enumerate() if t.name == 'opsready-sync'], 'the sync thread outlived the rekey'
    with open(path, 'rb') as handle:
        reader = encryption.DecryptingReader(handle, [new], path)
        assert reader.read() == payload


@pytest.mark.parametrize('how', ['child_skips_its_check', 'child_reports_another_digest'])
def test_the_parent_compares_the_childs_plaintext_digest_itself(tmp_path, monkeypatch, how):
    """The plaintext is hashed in the decrypting child, which reports its digest at the end; the parent compares
    that digest with the checksum sealed in the manifest before anything is swapped, and does not take the
    child's own verdict for it. An authentic artifact whose plaintext is not the backup's (every chunk opens, the
    sealed checksum differs), with the child's comparison disabled, or a child that reports a digest other than
    the sealed one: the rekey of that artifact fails and the old file and manifest stay as they were."""
    old, new = key(), key()
    victim = encrypted_artifact(tmp_path, [old.recipient], payload=BIG)
    if how == 'child_skips_its_check':
        impostor = str(tmp_path / 'impostor')
        with ArtifactWriter(impostor, compression='none', recipients=[old.recipient]) as writer:
            writer.write(BIG[:-1] + bytes([BIG[-1] ^ 1]))
            writer.commit()
        os.replace(impostor, victim)
        write_manifest(victim, dict(read_manifest(victim + '.manifest.json').data, size=os.path.getsize(victim),
                                    sha256=hashlib.sha256(open(victim, 'rb').read()).hexdigest()))
        real_init = encryption.DecryptingReader.__init__

        def unchecked(self, *args, **kwargs):   # the reader forked into the child compares nothing itself
            kwargs['expected_sha256'] = None
            real_init(self, *args, **kwargs)
        monkeypatch.setattr(encryption.DecryptingReader, '__init__', unchecked)
    else:
        real_result = rekey._DecryptingChild.result

        def another_digest(self):
            report = real_result(self)
            return dict(report, sha256=hashlib.sha256(b'not the plaintext').hexdigest())
        monkeypatch.setattr(rekey._DecryptingChild, 'result', another_digest)
    fds, before = own_fds(), snapshot(tmp_path)
    result = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert result['rekeyed'] == [] and [f['id'] for f in result['failed']] == [os.path.basename(victim)], result
    message = result['failed'][0]['msg']
    assert 'differs from the manifest' in message and 'old file was kept' in message, message
    assert_kept(tmp_path, before, fds)


@pytest.mark.parametrize('same_size', [True, False], ids=['same_size', 'other_size'])
def test_an_encrypted_zstd_artifact_replaced_by_another_valid_age_file_is_not_rekeyed(tmp_path, same_size):
    """What file_backup and db_backup write when they encrypt: zstd with its content checksum inside the age stream and
    no sealed plaintext checksum in the manifest. The manifest's SHA-256 of the stored bytes is then what says the file
    is the backup's: an age file anyone with the public key wrote in its place (every chunk authenticates) must not be
    re-encrypted and described by a new manifest as if it were the backup; the old file and manifest stay."""
    old, new = key(), key()
    payload = os.urandom(3 << 20)
    victim = os.path.join(str(tmp_path), 'etc-files-%s.tar.zst.age' % utcnow().strftime('%Y%m%dT%H%M%S%fZ'))
    with ArtifactWriter(victim, compression='zstd', recipients=[old.recipient]) as writer:
        writer.write(payload)
        stored = writer.commit()
    assert 'plaintext_sha256_sealed' not in stored['encryption']
    now = isoformat(utcnow())
    write_manifest(victim, {'engine': 'files', 'kind': 'files', 'database': 'etc', 'started': now, 'finished': now,
                            'size': stored['size'], 'sha256': stored['sha256'], 'compression': 'zstd',
                            'encryption': stored['encryption']})
    good = encrypted_artifact(tmp_path, [old.recipient], payload=BIG[:300_000])
    impostor = str(tmp_path / 'impostor')
    with ArtifactWriter(impostor, compression='zstd', recipients=[old.recipient]) as writer:
        writer.write(payload[:-1] + bytes([payload[-1] ^ 1]) if same_size else payload + b'!')
        writer.commit()
    os.replace(impostor, victim)
    fds, before = own_fds(), snapshot(tmp_path)
    result = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert result['rekeyed'] == [os.path.basename(good)], result
    assert [f['id'] for f in result['failed']] == [os.path.basename(victim)], result
    message = result['failed'][0]['msg']
    assert 'checksum' in message or (not same_size and ('plaintext bytes' in message or 'manifest says' in message))
    assert 'old file was kept' in message, message
    after = snapshot(tmp_path)
    for name in (victim, victim + '.manifest.json'):
        assert after[os.path.basename(name)] == before[os.path.basename(name)], 'the replaced artifact was changed'
    assert not [n for n in after if n.endswith('.partial')]
    assert children() == [] and own_fds() == fds


def test_an_encrypted_zstd_artifact_is_rekeyed_and_still_restores(tmp_path):
    """The same kind of artifact, untouched: re-encrypted, its new manifest describes the new file, and it decompresses
    to the original bytes with the new key."""
    from ansible_collections.opsready.operations.plugins.module_utils.common import streaming
    old, new = key(), key()
    payload = os.urandom(1 << 20) + b'a' * (3 << 20)
    path = os.path.join(str(tmp_path), 'etc-files-%s.tar.zst.age' % utcnow().strftime('%Y%m%dT%H%M%S%fZ'))
    with ArtifactWriter(path, compression='zstd', recipients=[old.recipient]) as writer:
        writer.write(payload)
        stored = writer.commit()
    now = isoformat(utcnow())
    write_manifest(path, {'engine': 'files', 'kind': 'files', 'database': 'etc', 'started': now, 'finished': now,
                          'size': stored['size'], 'sha256': stored['sha256'], 'compression': 'zstd',
                          'encryption': stored['encryption']})
    done = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert done['rekeyed'] == [os.path.basename(path)] and done['failed'] == [], done
    data = read_manifest(path + '.manifest.json').data
    assert data['sha256'] == hashlib.sha256(open(path, 'rb').read()).hexdigest()
    assert data['size'] == os.path.getsize(path)
    with streaming.open_decompressed(path, 'zstd', data['encryption'], [new]) as stream:
        assert stream.read() == payload


@pytest.mark.parametrize('age', [0, 3600], ids=['just_written', 'an_hour_old'])
def test_the_old_files_cache_is_dropped_behind_the_read_unless_it_was_just_written(tmp_path, monkeypatch, age):
    """The old artifact is read once and replaced: the decrypting child asks the kernel to drop its pages as it goes
    (the swap then has less to free), but not for a file changed in the last two minutes, whose pages may still be
    dirty (the advice would write out a file about to be deleted). The advice is recorded from the forked child
    through a file."""
    log = tmp_path.parent / ('fadvise-%s.log' % age)

    def record(fd, offset, length, advice):
        with open(str(log), 'a') as handle:
            handle.write('%s %d %d %d\n' % (os.readlink('/proc/self/fd/%d' % fd), offset, length, advice))
    monkeypatch.setattr(rekey, 'DROP_EVERY', 1 << 20)
    monkeypatch.setattr(rekey.os, 'posix_fadvise', record)
    old, new = key(), key()
    path = encrypted_artifact(tmp_path, [old.recipient], payload=BIG)
    os.utime(path, (os.path.getmtime(path) - age,) * 2)
    done = rekey.rekey(str(tmp_path), [new.recipient], [old])
    assert done['rekeyed'] == [os.path.basename(path)] and done['failed'] == [], done
    calls = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    if not age:
        assert calls == []
        return
    assert calls and all(c[0] == path and int(c[3]) == os.POSIX_FADV_DONTNEED for c in calls), calls
    spans = sorted((int(c[1]), int(c[2])) for c in calls)
    assert spans[0][0] == 0 and all(a + n == b for (a, n), (b, dummy) in zip(spans, spans[1:]))  # contiguous, from 0
    assert spans[-1][0] + spans[-1][1] >= len(BIG) - (2 << 20)
    with open(path, 'rb') as handle:
        assert encryption.DecryptingReader(handle, [new], path).read() == BIG


def verify_threads():
    import threading
    return [t for t in threading.enumerate() if t.name == 'opsready-rekey-verify']


@pytest.mark.parametrize('how', ['chunk_flipped', 'final_chunk_lost', 'plaintext_altered'])
def test_a_bad_new_file_is_caught_before_the_swap_when_the_new_key_is_given(tmp_path, monkeypatch, how):
    """With one of the new identities given, the new file must decrypt with it to the plaintext that went in before
    it replaces the old one: a sealed chunk with a flipped bit (what was written does not authenticate), a stream whose
    final chunk never reached the file (cut short, yet the size on disk is what was written), or a block altered
    between the decrypting child, which hashed it, and the encryption (every chunk of the new file authenticates, its
    plaintext is not the backup's). The rekey of that artifact fails, the old file and manifest stay, no .partial, no
    thread or process is left, and the message says the old file was kept. The old code's read-back verification
    refused these too, but its message named the removed .partial and said "do not restore from it. Nothing was
    written." (fails on the old code on that message only); the new code decrypts the stream as it is written."""
    old, new = key(), key()
    victim = encrypted_artifact(tmp_path, [old.recipient], payload=BIG)
    if how == 'chunk_flipped':
        real_seal = encryption.EncryptingWriter._seal

        def flipped(self, chunk, target):
            real_seal(self, chunk, target)
            if self._counter == 40:   # a middle chunk: header and first chunks intact
                target[7] ^= 1
        monkeypatch.setattr(encryption.EncryptingWriter, '_seal', flipped)
    elif how == 'final_chunk_lost':
        def no_final_chunk(self):
            self.closed = True
        monkeypatch.setattr(encryption.EncryptingWriter, 'close', no_final_chunk)
    else:
        real_next = rekey._DecryptingChild.next_block

        def altered(self):
            block = real_next(self)
            if block is not None and self.received > len(BIG) // 2 and not getattr(self, 'hit', False):
                self.hit = True
                block[100] ^= 1   # the shared ring, after the child hashed it
            return block
        monkeypatch.setattr(rekey._DecryptingChild, 'next_block', altered)
    fds, before = own_fds(), snapshot(tmp_path)
    result = rekey.rekey(str(tmp_path), [new.recipient], [old, new])
    assert result['rekeyed'] == [] and [f['id'] for f in result['failed']] == [os.path.basename(victim)], result
    assert 'old file was kept' in result['failed'][0]['msg'], result
    assert_kept(tmp_path, before, fds)
    assert verify_threads() == []


def test_the_new_file_is_verified_as_it_is_written_not_read_back(tmp_path, monkeypatch):
    """With the new identity given, the new file is decrypted (and its plaintext hashed) from the bytes as they are
    written, in the same pass, not read back from the file after the stream ended (a second pass over the whole
    artifact that only read the page cache). Fails on the old code, which opened the .partial again to read it."""
    import builtins
    old, new = key(), key()
    path = encrypted_artifact(tmp_path, [old.recipient], payload=BIG)
    opened = []
    real_open = builtins.open

    def recording(file, mode='r', *args, **kwargs):
        if str(file).endswith('.partial') and 'r' in mode:
            opened.append(str(file))
        return real_open(file, mode, *args, **kwargs)
    monkeypatch.setattr(builtins, 'open', recording)
    verified = []
    real_stop = rekey._StreamVerifier.stop if hasattr(rekey, '_StreamVerifier') else None

    def stop(self):
        real_stop(self)
        verified.append((self.verified, self.size))
    if real_stop is not None:
        monkeypatch.setattr(rekey._StreamVerifier, 'stop', stop)
    result = rekey.rekey(str(tmp_path), [new.recipient], [old, new])
    monkeypatch.undo()
    assert result['rekeyed'] == [os.path.basename(path)] and result['failed'] == [], result
    assert opened == [], 'the new file was read back after it was written'
    assert verified == [(True, len(BIG))]
    assert verify_threads() == []
    with open(path, 'rb') as handle:
        assert encryption.DecryptingReader(handle, [new], path).read() == BIG


def test_the_replaced_file_is_released_in_a_thread_and_before_the_run_returns(tmp_path, monkeypatch):
    """Freeing the old file's blocks is work the kernel does when its last reference goes (on a file system mounted
    with discard, as here, ~0.3 s per GB of waiting): the old file is held open across the rename and closed in a
    thread, so that work overlaps the manifest writes and the next artifact's stream instead of stalling the rename.
    Every such thread has ended and every descriptor is closed when rekey() returns. Fails on the old code (the rename
    dropped the last reference itself)."""
    import threading
    old, new = key(), key()
    paths = [encrypted_artifact(tmp_path, [old.recipient], payload=BIG[:(2 << 20) + 77]) for dummy in range(2)]
    inodes = {os.stat(p).st_ino for p in paths}
    released = []
    real_close = os.close

    def recording(fd):
        try:
            info = os.fstat(fd)
        except OSError:
            info = None
        # st_size: the set's lock file, made and removed by the run, can take a freed artifact's inode number
        if info is not None and info.st_ino in inodes and info.st_nlink == 0 and info.st_size > 0:
            released.append((info.st_ino, threading.current_thread().name))
        return real_close(fd)
    monkeypatch.setattr(os, 'close', recording)
    fds = own_fds()
    result = rekey.rekey(str(tmp_path), [new.recipient], [old, new])
    monkeypatch.undo()
    assert sorted(result['rekeyed']) == sorted(os.path.basename(p) for p in paths) and result['failed'] == [], result
    assert sorted(released) == sorted((i, 'opsready-rekey-release') for i in inodes), released
    assert not [t for t in threading.enumerate() if t.name == 'opsready-rekey-release']
    assert own_fds() == fds and children() == []
    for path in paths:
        with open(path, 'rb') as handle:
            assert encryption.DecryptingReader(handle, [new], path).read() == BIG[:(2 << 20) + 77]
