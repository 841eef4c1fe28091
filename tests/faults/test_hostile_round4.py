"""Fault matrix, hostile filesystems round 4: what root reads from and writes into directories another account
controls, for the paths round 3 did not attack (harness: test_hostile_round3, an unprivileged account made and
removed by test_hostile_files, its moves run as that account with setpriv, at a moment a hook chooses).

- Stored artifacts read from a catalog another account can write (postgres owns the WAL catalog's entries, by
  design): a symlink at an artifact's name must not make root copy the file it points to (PITR stages WAL segments
  into a directory then given to postgres; the chain is verified first, so the link is swapped in after the
  verification), a FIFO there must not hang a restore or a drill.
- cert_renew's pair: the certificate's directory is root's, but one above it is another account's, which renames
  it away and links its name to a directory of root's: root must not write the key there.
- pg_wal_archive (archive_command): a FIFO or a link to /dev/zero planted at a manifest or a kept extra file's name
  in the archive must not hang PostgreSQL's archiver or grow it without bound.
- MariaDB: the old definitions kept when a swap and its undo both fail go into a private directory (0700), never
  straight into a tmpdir another account can rename entries in.
- ACME http-01: the webroot is the web server account's; a link it plants at (or swaps in for) the challenge
  directories must never carry root's token write, chmod or rmdir elsewhere.
- drill_report: drills.jsonl in a report directory another account owns, linked to a root-only history.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.faults import test_hostile_files as hostile
from tests.faults import test_hostile_round3 as round3

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.artifacts import open_artifact  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import read_manifest  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.certs import renewal  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common import streaming  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import pitr  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio  # noqa: E402

racer_user = hostile.racer_user
arena = hostile.arena
snapshot = hostile.snapshot
touched = hostile.touched
as_user = round3.as_user
user_dir = round3.user_dir
root_secret = round3.root_secret
state_of = round3.state_of

WAL = '000000010000000000000003'


def wal_set(catalog: Path, user, content: bytes = b'W' * 4096) -> Path:
    """One WAL segment stored uncompressed, as pg_wal_archive (running as ``user``) writes it; its manifest path."""
    name = 'postgresql-cluster-wal-20261205T000000000000Z-%s' % WAL
    (catalog / name).write_bytes(content)
    manifest = catalog / (name + '.manifest.json')
    manifest.write_text(json.dumps({
        'format': 1, 'id': name, 'artifact': name, 'engine': 'postgresql', 'kind': 'wal', 'database': '@cluster',
        'server': 'db1', 'started': '2026-12-05T00:00:00.000000Z', 'finished': '2026-12-05T00:00:01.000000Z',
        'consistent_at': '2026-12-05T00:00:01.000000Z', 'size': len(content),
        'sha256': hashlib.sha256(content).hexdigest(), 'compression': 'none',
        'position': {'start': 3, 'end': 4, 'timeline': 1, 'wal_file': WAL, 'wal_segment_size': len(content)}}))
    for path in (catalog / name, manifest):
        os.chown(path, user.pw_uid, user.pw_gid)
    return manifest


def catalog_of(base: Path, user) -> Path:
    """A WAL catalog as the backup role makes it: root's directory, written by postgres (here the test account)
    through its group."""
    catalog = base / 'wal'
    catalog.mkdir()
    os.chown(catalog, 0, user.pw_gid)
    os.chmod(catalog, 0o770)
    return catalog


# --- artifacts read from a catalog another account writes --------------------------------------------------------
@pytest.mark.fast
@pytest.mark.fault(fault='postgres swaps a verified WAL artifact for a link to a root-only file before it is staged',
                   component='db_restore (PostgreSQL PITR: _stage_wal), common/streaming',
                   expected='the segment is refused as a symlink; no byte of the root file reaches the WAL '
                            'directory that is then given to postgres')
def test_pitr_stages_no_wal_through_a_planted_link(racer_user, arena, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    catalog = catalog_of(base, user)
    manifest = read_manifest(str(wal_set(catalog, user)))
    streaming.verify_file(manifest.path, manifest.data['sha256'], manifest.data['size'])   # verify_chain's check
    shadow = outside / 'shadow'
    before = root_secret(shadow)
    # verified; now postgres swaps the name (it writes the catalog through its group)
    name = manifest.id
    as_user(user, 'cd %s && ln -s %s %s.lnk && mv -f %s.lnk %s' % (catalog, shadow, name, name, name))
    waldir = base / 'staged-wal'
    error = None
    try:
        pitr._stage_wal([manifest], str(waldir))
    except OpsReadyError as exc:
        error = exc
    staged = waldir / WAL
    leaked = staged.exists() and before[0] in staged.read_bytes()
    fault.observed('staged: %s; root file copied: %s; error: %s' % (staged.exists(), leaked, error))
    fault.lost(secrets=int(leaked))
    assert not leaked
    assert state_of(shadow)[:6] == before[:6]
    assert isinstance(error, safeio.UnsafeFileError) and manifest.path in str(error) and 'symlink' in str(error), error


def _read_with_deadline(target, seconds: float = 10.0):
    """``target()`` in a thread: (result or exception, seconds it took, whether it was still blocked)."""
    box: dict = {}

    def run() -> None:
        try:
            box['value'] = target()
        except Exception as exc:   # noqa: BLE001 - the caller asserts on what came back
            box['value'] = exc
    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return box.get('value'), time.monotonic() - started, thread.is_alive()


@pytest.mark.fast
@pytest.mark.parametrize('kind', ['fifo', 'symlink-dev-zero', 'directory'])
@pytest.mark.parametrize('reader', ['open_artifact', 'verify_file', 'verify_size', 'offsite_upload'])
@pytest.mark.fault(fault='{kind} at a WAL artifact\'s name in a catalog postgres writes', component='{reader} '
                   '(db_restore, drill_step, backup_verify: common/streaming; backup_copy push)',
                   expected='refused at once naming the artifact and what it is; no hang, no endless read')
def test_special_file_at_an_artifact_name(racer_user, arena, kind, reader, fault):
    user, base = racer_user, arena['base']
    catalog = catalog_of(base, user)
    manifest = read_manifest(str(wal_set(catalog, user)))
    os.unlink(manifest.path)
    if kind == 'fifo':
        as_user(user, 'mkfifo %s' % manifest.path)
    elif kind == 'symlink-dev-zero':
        as_user(user, 'ln -s /dev/zero %s' % manifest.path)
    else:
        as_user(user, 'mkdir %s' % manifest.path)

    def read() -> int:
        if reader == 'verify_file':
            streaming.verify_file(manifest.path, manifest.data['sha256'], manifest.data['size'])
            return 0
        if reader == 'verify_size':
            streaming.verify_size(manifest.path, manifest.data['size'])
            return 0
        if reader == 'offsite_upload':   # backup_copy push: what every store uploads a local artifact through
            from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import HashingReader
            return len(HashingReader(manifest.path).read(64 * 1024 * 1024))
        with open_artifact(manifest) as source:
            return len(source.read(64 * 1024 * 1024))
    outcome, seconds, blocked = _read_with_deadline(read)
    if blocked and kind == 'fifo':   # let the reader go: open a writer and close it
        os.close(os.open(manifest.path, os.O_WRONLY | os.O_NONBLOCK))
    fault.observed('%s in %.1f s: %s' % ('still blocked' if blocked else 'returned', seconds, outcome))
    fault.lost(files=0)
    assert not blocked
    assert isinstance(outcome, OpsReadyError), outcome
    assert manifest.path in str(outcome), outcome


@pytest.mark.fast
@pytest.mark.fault(fault='a WAL catalog written by postgres, no planted file', component='common/streaming',
                   expected='the artifact is read, verified and staged as before')
def test_artifacts_of_a_shared_catalog_still_read(racer_user, arena, fault):
    user, base = racer_user, arena['base']
    catalog = catalog_of(base, user)
    manifest = read_manifest(str(wal_set(catalog, user)))
    streaming.verify_file(manifest.path, manifest.data['sha256'], manifest.data['size'])
    with open_artifact(manifest, verify=True) as source:
        content = source.read()
    names = pitr._stage_wal([manifest], str(base / 'staged'))
    fault.observed('read %d bytes; staged %s' % (len(content), names))
    fault.lost(files=0)
    assert content == b'W' * 4096 and names == [WAL]
    assert (base / 'staged' / WAL).read_bytes() == content


# --- cert_renew: the pair's directory below a directory another account owns ------------------------------------
@pytest.mark.fast
@pytest.mark.parametrize('where', ['cert-dir', 'backup_dir'])
@pytest.mark.fault(fault='the {where} of a cert_renew pair is root\'s, in a directory the app account owns; the '
                   'account renames it away and links its name to a directory of root\'s',
                   component='cert_renew (certs/swap.Pair, files/safeio.SafeDir)',
                   expected='refused naming the directory the account controls; no key, certificate or backup '
                            'written into root\'s directory, nothing there replaced')
def test_cert_pair_directory_swapped_by_the_account_above(racer_user, arena, where, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    app = user_dir(base / 'app', user)
    tls = app / 'tls'
    tls.mkdir(mode=0o755)          # root's, but in the account's directory: it can rename it
    victim_dir = outside / 'etc'   # root's; another service's key of the same name lives there
    (victim_dir / 'svc.key').write_bytes(b'-----BEGIN PRIVATE KEY-----\nanother service\n')
    os.chmod(victim_dir / 'svc.key', 0o600)
    before = snapshot(outside)
    if where == 'cert-dir':
        opts = hostile.cert_opts(tls, user, owner=None)
        as_user(user, 'cd %s && mv tls tls.old && ln -s %s tls' % (app, victim_dir))
    else:
        # the pair itself in a directory of root's; backups into <app>/tls/kept, below the account's directory
        pair_dir = base / 'pair'
        pair_dir.mkdir(mode=0o755)
        renewal.renew(hostile.cert_opts(pair_dir, user, owner=None), check_mode=False)
        before = snapshot(outside)
        opts = hostile.cert_opts(pair_dir, user, owner=None, backup_dir=str(tls / 'kept'))
        (victim_dir / 'kept').mkdir(mode=0o700)
        before = snapshot(outside)
        as_user(user, 'cd %s && mv tls tls.old && ln -s %s tls' % (app, victim_dir))
    error = None
    try:
        renewal.renew(opts, check_mode=False)
    except OpsReadyError as exc:
        error = exc
    after = snapshot(outside)
    outside_touched = touched(before, after)
    fault.observed('files outside touched: %d; renew: %s' % (outside_touched, error or 'completed'))
    fault.lost(outside_touched=outside_touched)
    assert outside_touched == 0, sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert isinstance(error, safeio.UnsafeFileError) and str(app) in str(error), error


@pytest.mark.fast
@pytest.mark.parametrize('owner', [False, True])
@pytest.mark.fault(fault='cert_renew pair in root\'s directory below the sticky /tmp; or in the app account\'s own '
                   'directory with owner naming it', component='cert_renew (files/safeio.SafeDir)',
                   expected='renewed as before: key 0600 (the account\'s when owner names it)')
def test_cert_pair_in_safe_directories_still_renews(racer_user, arena, owner, fault):
    user, base = racer_user, arena['base']
    tree = user_dir(base / 'app', user) if owner else base / 'pair'
    if not owner:
        tree.mkdir(mode=0o755)
    result = renewal.renew(hostile.cert_opts(tree, user, owner=user.pw_name if owner else None), check_mode=False)
    key = os.stat(tree / 'svc.key')
    fault.observed('changed: %s; key mode %04o, owner uid %d' % (result['changed'], stat.S_IMODE(key.st_mode),
                                                                 key.st_uid))
    fault.lost(files=0)
    assert result['changed'] and stat.S_IMODE(key.st_mode) == 0o600
    assert key.st_uid == (user.pw_uid if owner else 0)


# --- pg_wal_archive (archive_command): special files in the archive or in pg_wal ---------------------------------
WAL_ARCHIVE = Path(__file__).resolve().parents[2] / 'plugins' / 'module_utils' / 'engines' / 'postgresql' / \
    'wal_archive.py'


def _memory_cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1024 ** 3, 1024 ** 3))   # /dev/zero read into memory fails, not the host


def archive_command(dest: Path, source: Path, name: str) -> tuple:
    """(exit status or None when it hung, seconds, stderr) of one archive_command run, as PostgreSQL starts it."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(WAL_ARCHIVE), '--compression', 'none', str(dest), str(source), name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=_memory_cap)
    try:
        _out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        return None, time.monotonic() - started, err.decode(errors='replace')
    return proc.returncode, time.monotonic() - started, err.decode(errors='replace')


ARCHIVE_KINDS = ['fifo', 'symlink-dev-zero', 'symlink-root-file']


def _plant(kind: str, path: Path, secret: Path) -> None:
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'symlink-dev-zero':
        os.symlink('/dev/zero', path)
    else:
        os.symlink(secret, path)


@pytest.mark.fast
@pytest.mark.parametrize('kind', ARCHIVE_KINDS)
@pytest.mark.parametrize('where', ['segment-manifest', 'extra-file', 'source-segment', 'source-history'])
@pytest.mark.fault(fault='{kind} at the {where} pg_wal_archive reads', component='pg_wal_archive (archive_command)',
                   expected='a source that is no file: exit 1 naming it (PostgreSQL retries); a planted manifest '
                            'or kept copy: ignored or replaced, said in the log; no hang, no endless read, nothing '
                            'stored from what a link points to')
def test_wal_archive_special_files(tmp_path, where, kind, fault):
    dest = tmp_path / 'archive'
    dest.mkdir(mode=0o700)
    pg_wal = tmp_path / 'pg_wal'
    pg_wal.mkdir(mode=0o700)
    secret = tmp_path / 'shadow'
    secret.write_bytes(b'root:$6$hash:19000:0:99999:7:::\n')
    os.chmod(secret, 0o600)
    name = WAL if where in ('segment-manifest', 'source-segment') else '00000002.history'
    source = pg_wal / name
    if where == 'source-segment' or where == 'source-history':
        _plant(kind, source, secret)
    else:
        source.write_bytes(b'W' * 8192 if name == WAL else b'1\t0/3000000\tno recovery target specified\n')
    if where == 'segment-manifest':
        # an earlier copy of this segment, as a re-archive after a crash finds it
        _plant(kind, dest / ('postgresql-cluster-wal-20261205T000000000000Z-%s.manifest.json' % WAL), secret)
    elif where == 'extra-file':
        (dest / 'pg_wal_extra').mkdir(mode=0o700)
        _plant(kind, dest / 'pg_wal_extra' / name, secret)
    rc, seconds, err = archive_command(dest, source, name)
    stored = [p for p in dest.rglob('*') if p.is_file() and not p.is_symlink() and b'root:$6$' in p.read_bytes()]
    fault.observed('exit %s in %.1f s: %s; root file stored: %d' % (rc, seconds, err.strip()[-200:], len(stored)))
    fault.lost(secrets=len(stored))
    assert rc is not None, 'archive_command hung'
    assert stored == []
    if where in ('segment-manifest', 'extra-file'):
        # Not a copy of this file: said in the server's log and archived anyway (failing would make PostgreSQL retry
        # forever while pg_wal fills up). An extra file's planted entry is replaced by a rename, never written through.
        assert rc == 0 and ('ignoring' in err or 'replacing' in err) and name in err, err
        assert secret.read_bytes().startswith(b'root:$6$') and stat.S_IMODE(os.stat(secret).st_mode) == 0o600
        if where == 'extra-file':
            kept = dest / 'pg_wal_extra' / name
            assert not kept.is_symlink() and kept.read_bytes() == source.read_bytes()
    else:
        assert rc == 1 and ('FIFO' in err or 'symlink' in err or 'character device' in err), err


# --- MariaDB: the old definitions kept when the swap and its undo both fail ---------------------------------------
class _ServerGone:
    """The server went away mid-swap: every statement of the undo fails. (A swap and its undo failing one after the
    other cannot be staged on a live server at a chosen point; only the file handling is under test here.)"""

    def query(self, sql: str) -> None:
        raise OpsReadyError('Lost connection to server during query')


@pytest.mark.fast
@pytest.mark.parametrize('tmpdir', ['account-dir', 'default'])
@pytest.mark.fault(fault='swap and undo both fail; tmpdir is {tmpdir}; the account then replaces the kept '
                   'definitions with its own SQL', component='db_restore (MariaDB: engines/mysql/restore._undo)',
                   expected='the definitions are kept 0600 in a private 0700 directory of root\'s, which the account '
                            'cannot rename or replace entries in; the message names that file')
def test_mariadb_kept_definitions_are_private(racer_user, arena, tmpdir, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import restore as mysql_restore
    user, base = racer_user, arena['base']
    shared = user_dir(base / 'tmp', user) if tmpdir == 'account-dir' else None
    script = b'CREATE DEFINER=`root`@`localhost` VIEW `v` AS SELECT 1;\n'
    before = {'exists': True, 'tables': ['t'], 'defaults': None, 'comment': '', 'objects': {'events': []},
              'inbound': []}
    with pytest.raises(OpsReadyError) as raised:
        mysql_restore._undo(_ServerGone(), 'shop', 'shop_copy', ['t'], before, 'shop_old', ['renamed'], script,
                            str(shared) if shared else None, OpsReadyError('Deadlock found'))
    saved = raised.value.details['definitions']
    assert saved and saved in raised.value.message
    folder = os.path.dirname(saved)
    forged = None
    try:
        as_user(user, 'printf "CREATE USER evil;" > %s.new && mv -f %s.new %s' % (saved, saved, saved))
        forged = 'replaced'
    except subprocess.CalledProcessError as exc:
        forged = 'refused: %s' % exc.stderr.decode(errors='replace').strip()[:80]
    try:
        kept = Path(saved).read_bytes()
        st, dst = os.lstat(saved), os.lstat(folder)
        fault.observed('kept in %s (dir %04o uid %d, file %04o); the account\'s replacement: %s'
                       % (saved, stat.S_IMODE(dst.st_mode), dst.st_uid, stat.S_IMODE(st.st_mode), forged))
        fault.lost(files=int(kept != script))
        assert kept == script
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
        assert stat.S_IMODE(dst.st_mode) == 0o700 and dst.st_uid == 0 and folder != str(shared)
        assert safeio.path_risk(saved) is None
    finally:
        for leftover in (saved, saved + '.new'):
            if os.path.lexists(leftover) and os.path.dirname(leftover) != str(shared):
                os.unlink(leftover)
        if folder != str(shared) and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)


# --- ACME http-01: the webroot belongs to the web server's account ------------------------------------------------
TOKEN = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA'


@pytest.mark.fast
@pytest.mark.parametrize('when', ['planted-well-known', 'planted-challenge-dir', 'planted-token',
                                  'after-mkdir-well-known', 'after-mkdir-challenge-dir'])
@pytest.mark.fault(fault='webroot owned by the web account; it puts a link to a root directory at the challenge '
                   'path ({when})', component='cert_renew (acme http-01 webroot: certs/acme_challenges.Webroot)',
                   expected='no token written (or directory made, chmodded, removed) in root\'s directory; a refusal '
                            'names the link; cleanup leaves the account\'s files alone')
def test_acme_webroot_links_planted_by_the_web_account(racer_user, arena, monkeypatch, when, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.certs import acme_challenges
    user, outside, base = racer_user, arena['outside'], arena['base']
    webroot = user_dir(base / 'www', user)
    victim_dir = outside / 'etc'
    before = snapshot(outside)
    swaps = []
    if when == 'planted-well-known':
        as_user(user, 'ln -s %s %s/.well-known' % (victim_dir, webroot))
    elif when == 'planted-challenge-dir':
        as_user(user, 'mkdir %s/.well-known && ln -s %s %s/.well-known/acme-challenge' % (webroot, victim_dir, webroot))
    elif when == 'planted-token':
        as_user(user, 'mkdir -p %s/.well-known/acme-challenge && ln -s %s/passwd %s/.well-known/acme-challenge/%s'
                % (webroot, victim_dir, webroot, TOKEN))
    else:
        wanted = '.well-known' if when == 'after-mkdir-well-known' else 'acme-challenge'
        if wanted == 'acme-challenge':
            as_user(user, 'mkdir %s/.well-known' % webroot)
        real_mkdir = os.mkdir

        def mkdir_hook(path, mode=0o777, *, dir_fd=None):
            real_mkdir(path, mode, dir_fd=dir_fd)
            if path == wanted and not swaps:
                holder = webroot if wanted == '.well-known' else webroot / '.well-known'
                as_user(user, 'cd %s && mv %s stolen && ln -s %s %s' % (holder, wanted, victim_dir, wanted))
                swaps.append(wanted)
        monkeypatch.setattr(acme_challenges.os, 'mkdir', mkdir_hook)
    responder = acme_challenges.Webroot(str(webroot))
    error = None
    try:
        responder.deploy(TOKEN, TOKEN + '.thumbprint')
    except Exception as exc:   # noqa: BLE001 - judged below: a refusal must be one the module reports
        error = exc
    finally:
        monkeypatch.undo()
        errors = responder.cleanup()
    after = snapshot(outside)
    outside_touched = touched(before, after)
    fault.observed('swaps: %d; files outside touched: %d; deploy: %s; cleanup errors: %s'
                   % (len(swaps), outside_touched, error or 'token written', errors))
    fault.lost(outside_touched=outside_touched)
    assert outside_touched == 0, sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if when == 'planted-token':
        assert error is None   # the account's link is replaced by the token file (removed again by cleanup)
    else:
        assert isinstance(error, acme_challenges.ChallengeError) and 'symlink' in str(error), repr(error)


# --- drill_report: the history (drills.jsonl) in a report directory another account owns -------------------------
@pytest.mark.fast
@pytest.mark.fault(fault='the account owning report_dir links drills.jsonl to a root-only drill history',
                   component='drill_report (drill/report.read_history)',
                   expected='refused naming drills.jsonl before anything is written; no entry of the root-only '
                            'history reaches a report the account can read')
def test_drill_history_link_planted_in_the_report_dir(racer_user, arena, tmp_path, fault):
    from tests.faults import test_hostile_inputs_sweep as sweep
    user, outside, base = racer_user, arena['outside'], arena['base']
    reports = user_dir(base / 'reports', user)
    private = outside / 'drills.jsonl'   # another team's history, root-only
    # a drill of the same database on another host: its RTO would be charted in the report the account can read
    private.write_text(json.dumps({'started': '2026-11-01T00:00:00Z', 'id': 'drill-private', 'passed': True,
                                   'databases': [{'name': 'app', 'engine': 'sqlite', 'passed': True,
                                                  'rto_seconds': 4242, 'rpo_seconds': 1}]}) + '\n')
    os.chmod(private, 0o600)
    as_user(user, 'ln -s %s %s/drills.jsonl' % (private, reports))
    work = tmp_path / 'work'
    work.mkdir()
    result, seconds, _rss, _err = sweep.run_module('drill_report', {
        'report_dir': str(reports), 'started': '2026-11-29T00:00:00Z',
        'databases': [{'name': 'app', 'engine': 'sqlite', 'source': 'a.db'}]}, work)
    written = sorted(p.name for p in reports.iterdir() if not p.is_symlink())
    leaked = [name for name in written if b'last 2 drills' in (reports / name).read_bytes()]
    fault.observed('%s in %.1f s: %s; written: %s; charting the root-only history: %s'
                   % ('failed' if result.get('failed') else 'done', seconds, str(result.get('msg'))[:140], written,
                      leaked))
    fault.lost(secrets=len(leaked))
    assert leaked == [] and written == []
    assert result.get('failed') and 'drills.jsonl' in result['msg'] and 'symlink' in result['msg'], result


# --- PITR: files root reads back from directories handed to postgres for the recovery ----------------------------
@pytest.mark.fast
@pytest.mark.parametrize('kind', ['symlink-root-file', 'fifo', 'symlink-dev-zero'])
@pytest.mark.parametrize('what', ['server-log', 'timeline-history', 'drill-postmaster-pid', 'failover-pg-version'])
@pytest.mark.fault(fault='postgres puts a {kind} at the {what} root reads in a directory postgres owns',
                   component='db_restore / dr_drill (PostgreSQL PITR: ScratchServer.log_text, _end_of_recovery; '
                             'drill/scratch._running_pid), db_failover (PgNode.tool: PG_VERSION)',
                   expected='no hang; no byte of the root file in what root returns (the log tail is shown in the '
                            'failure message); the file is named as what it is, or treated as absent')
def test_pitr_reads_back_from_postgres_directories(racer_user, arena, what, kind, fault):
    from ansible_collections.opsready.operations.plugins.module_utils.drill import scratch as drill_scratch
    user, outside, base = racer_user, arena['outside'], arena['base']
    shadow = outside / 'shadow'
    # a line a log parser or an LSN parser would take: root's file must not reach the result
    before = root_secret(shadow, b'1\t0/3000000\troot:$6$secret-hash:19000\n')
    owned = user_dir(base / 'data.run', user)            # rundir, staging and datadir are postgres's then
    if what == 'server-log':
        name = 'postgresql.log'
    elif what == 'timeline-history':
        owned = user_dir(owned / 'pg_wal', user).parent    # <staging>/pg_wal/00000002.history
        name = 'pg_wal/00000002.history'
    elif what == 'failover-pg-version':
        name = 'PG_VERSION'
    else:
        name = 'postmaster.pid'
    target = owned / name
    if kind == 'fifo':
        as_user(user, 'mkfifo %s' % target)
    else:
        as_user(user, 'ln -s %s %s' % ('/dev/zero' if kind == 'symlink-dev-zero' else shadow, target))

    def read():
        if what == 'server-log':
            server = pitr.ScratchServer(None, str(base / 'data'), str(owned), 5432, None)
            return server.log_text()
        if what == 'timeline-history':
            return pitr._end_of_recovery(str(owned))
        if what == 'failover-pg-version':
            from types import SimpleNamespace
            from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import promote
            node = object.__new__(promote.PgNode)   # only what tool() reads: no server behind it
            node.name, node.spec = 'db1', SimpleNamespace(bindir=None, data_dir=str(owned))
            node.runner = SimpleNamespace(env={'PATH': os.environ.get('PATH', '')})
            return node.tool('pg_ctl')
        return drill_scratch._running_pid(str(owned))
    outcome, seconds, blocked = _read_with_deadline(read)
    if blocked and kind == 'fifo':
        os.close(os.open(target, os.O_WRONLY | os.O_NONBLOCK))
    leaked = isinstance(outcome, str) and 'secret-hash' in outcome or outcome == 0x3000000
    fault.observed('%s in %.1f s: %r' % ('still blocked' if blocked else 'returned', seconds, str(outcome)[:160]))
    fault.lost(secrets=int(leaked))
    assert not blocked
    assert not leaked
    assert not isinstance(outcome, Exception) or isinstance(outcome, OpsReadyError), repr(outcome)
    assert state_of(shadow)[:6] == before[:6]


@pytest.mark.fast
@pytest.mark.parametrize('name', ['svc.key', 'svc.crt'])
@pytest.mark.fault(fault='hard link to a root-only file at {name} in the app account\'s certificate directory '
                   '(owner names the account)', component='cert_renew (certs/swap: the previous pair kept as a backup)',
                   expected='refused naming the file and its links; no copy of the root file in a backup the account '
                            'owns; the root file keeps content, mode, owner')
def test_cert_pair_hard_link_to_a_root_file(racer_user, arena, name, fault):
    user, outside, base = racer_user, arena['outside'], arena['base']
    tree = user_dir(base / 'app', user)
    renewal.renew(hostile.cert_opts(tree, user), check_mode=False)   # a pair of the account's
    shadow = outside / 'shadow'
    before = root_secret(shadow)
    # fs.protected_hardlinks keeps the account from linking a file of root's; where it is off the link is its to
    # make (see test_hostile_round3): made here as root for the account.
    os.unlink(tree / name)
    os.link(shadow, tree / name)
    error = None
    try:
        renewal.renew(hostile.cert_opts(tree, user), check_mode=False)
    except OpsReadyError as exc:
        error = exc
    copies = [p.name for p in tree.iterdir() if p.is_file() and p.stat().st_ino != before[6]
              and before[0] in p.read_bytes()]
    fault.observed('copies of the root file in the account\'s directory: %s; renew: %s' % (copies, error or 'done'))
    fault.lost(secrets=len(copies))
    assert copies == []
    assert state_of(shadow)[:6] == before[:6] or state_of(shadow)[:4] == before[:4]   # link count may drop
    assert isinstance(error, safeio.UnsafeFileError) and name in str(error) and 'hard link' in str(error), error
