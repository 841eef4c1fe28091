# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DR drill of a file-backup set (configuration, certificates, keys): restore, prove, check, clean up.

1. ``find_backup``: the newest usable archive of the set in the catalog (``file_backup`` dest).
2. ``restore``: into a new scratch root (0700), through ``file_restore``'s path (stored checksum, every
   chunk authenticated when encrypted, hostile members refused, owners kept when run as root).
3. ``integrity``: every member the manifest lists (type, SHA-256 and size, mode, owner and group when run
   as root, symlink target) compared with the restored tree; every PEM/DER certificate parses and every
   private key matches a certificate of the set (a key whose certificate is missing, or a certificate
   and key that do not belong together, fails). What file_backup could not archive (the manifest's
   ``not_archived``: FIFOs, sockets, files that changed while read) becomes the step's ``warnings``.
4. ``smoke``: the user's check command (``nginx -t -c {root}/etc/nginx/nginx.conf``, ``haproxy -c -f
   {root}/etc/haproxy/haproxy.cfg``) run on the restored tree without a shell; ``{root}`` is the scratch
   root. A non-zero exit fails the drill with its output in the report.
5. ``cleanup``: the scratch root is removed, whatever happened before.

Every step has the shape ``drill_report`` reads (name, started, finished, seconds, ok, result, error,
details), so a file set is one more entry of the drill report, its RTO measured from restore to check.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import stat
import subprocess  # nosec B404 # argument lists, never a shell
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import isoformat, utcnow
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.files.archive import FILE_LIST_LIMIT
from ansible_collections.opsready.operations.plugins.module_utils.files.extract import find_archive, restore_archive

OUTPUT_LIMIT = 8000          # characters of the check command's output kept in the report
SHOWN = 20                   # mismatches listed one by one; the rest are counted
CERT_SUFFIXES = ('.pem', '.crt', '.cer', '.cert', '.key', '.der')
CERT_FILE_LIMIT = 1024 * 1024


class StepFailed(OpsReadyError):
    """A drill step that ran and found a problem (its details go to the report)."""


class _Steps:
    def __init__(self) -> None:
        self.steps: List[Dict[str, Any]] = []

    def run(self, name: str, work: Callable[[], Tuple[str, Dict[str, Any]]]) -> bool:
        started = utcnow()
        clock = time.monotonic()
        step: Dict[str, Any] = {'name': name, 'started': isoformat(started), 'ok': False, 'result': None,
                                'error': None, 'details': {}, 'warnings': []}
        try:
            step['result'], step['details'] = work()
            step['warnings'] = step['details'].pop('warnings', [])
            step['ok'] = True
        except OpsReadyError as exc:
            step['error'] = exc.message
            step['details'] = exc.details.get('drill_details') or {}
        step['finished'] = isoformat(utcnow())
        step['seconds'] = round(time.monotonic() - clock, 3)
        self.steps.append(step)
        return bool(step['ok'])


# -- integrity: the restored tree against the manifest ---------------------------------------------------
def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b''):
            digest.update(block)
    return digest.hexdigest()


TYPES = {'file': stat.S_ISREG, 'hardlink': stat.S_ISREG, 'dir': stat.S_ISDIR, 'symlink': stat.S_ISLNK,
         'fifo': stat.S_ISFIFO, 'chardev': stat.S_ISCHR, 'blockdev': stat.S_ISBLK}


def compare_tree(root: str, records: Sequence[Dict[str, Any]], owners: bool) -> List[str]:
    """Every difference between the restored tree under ``root`` and the manifest's member records."""
    problems = []
    for record in records:
        rel = record['path']
        path = os.path.join(root, rel)
        try:
            st = os.lstat(path)
        except OSError:
            problems.append('%s: missing from the restored tree' % rel)
            continue
        kind = record.get('type', 'file')
        if kind in TYPES and not TYPES[kind](st.st_mode):
            problems.append('%s: restored as something else than a %s' % (rel, kind))
            continue
        if kind == 'symlink':
            if os.readlink(path) != record.get('target'):
                problems.append('%s: symlink to %s, the backup had %s' % (rel, os.readlink(path), record.get('target')))
            continue  # a symlink's own mode and owner are not what anything reads
        if kind in ('chardev', 'blockdev') and [os.major(st.st_rdev), os.minor(st.st_rdev)] != record.get('device'):
            problems.append('%s: device %d,%d, the backup had %s'
                            % (rel, os.major(st.st_rdev), os.minor(st.st_rdev), record.get('device')))
        if kind == 'file' and record.get('chunk_digest'):   # a sparse file (file_backup: safeio.ChunkDigest)
            if st.st_size != record.get('size') or safeio.digest_of(path) != record['chunk_digest']:
                problems.append('%s: content differs from the backup (chunk digest or size)' % rel)
        if kind in ('file', 'hardlink') and record.get('sha256'):
            if st.st_size != record.get('size') or _sha256(path) != record['sha256']:
                problems.append('%s: content differs from the backup (SHA-256 or size)' % rel)
        if '%04o' % stat.S_IMODE(st.st_mode) != record.get('mode'):
            problems.append('%s: mode %04o, the backup had %s' % (rel, stat.S_IMODE(st.st_mode), record.get('mode')))
        if owners and (st.st_uid, st.st_gid) != (record.get('uid'), record.get('gid')):
            problems.append('%s: owner %d:%d, the backup had %s:%s' % (rel, st.st_uid, st.st_gid, record.get('uid'),
                                                                       record.get('gid')))
    return problems


def manifest_files(data: Dict[str, Any], identities: Sequence[Any], name: str) -> Optional[List[Dict[str, Any]]]:
    """The member records of a file-backup manifest (opened with the identity when sealed)."""
    if data.get('files_sealed'):
        if not identities:
            raise StepFailed('%s lists its files sealed to the backup recipients: give identity or identity_file.'
                             % name)
        return json.loads(encryption.open_sealed(data['files_sealed'], identities, name))  # type: ignore[no-any-return]
    return data.get('files')


# -- certificates and keys ---------------------------------------------------------------------------------
def _looks_like_cert_material(path: str, head: bytes) -> bool:
    return path.lower().endswith(CERT_SUFFIXES) or b'-----BEGIN ' in head


def check_certificates(root: str, records: Sequence[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(what was found, problems): every certificate parses; every private key matches a certificate of the set."""
    from ansible_collections.opsready.operations.plugins.module_utils.certs.inspection import (
        fingerprint_sha256, key_matches)
    from ansible_collections.opsready.operations.plugins.module_utils.certs.loading import (
        PEM_KEY_RE, CertificateLoadError, parse_certificates, parse_private_key)
    certs: List[Tuple[str, Any]] = []
    keys: List[Tuple[str, Any]] = []
    found: List[Dict[str, Any]] = []
    problems: List[str] = []
    for record in records:
        if record.get('type') not in ('file', 'hardlink'):
            continue
        rel = record['path']
        path = os.path.join(root, rel)
        try:
            with open(path, 'rb') as handle:
                data = handle.read(CERT_FILE_LIMIT + 1)
        except OSError:
            continue  # reported by compare_tree
        if len(data) > CERT_FILE_LIMIT or not _looks_like_cert_material(rel, data[:4096]):
            continue
        has_key = bool(PEM_KEY_RE.search(data))
        has_cert = b'CERTIFICATE-----' in data
        if b'-----BEGIN OPENSSH PRIVATE KEY-----' in data or b'ENCRYPTED PRIVATE KEY' in data \
                or b'Proc-Type: 4,ENCRYPTED' in data:
            found.append({'path': rel, 'kind': 'key', 'note': 'not an X.509 key, or encrypted: not matched'})
            continue
        if has_key:
            try:
                keys.append((rel, parse_private_key(data, rel)))
                found.append({'path': rel, 'kind': 'private key'})
            except CertificateLoadError as exc:
                problems.append('%s: %s' % (rel, exc.message))
        if has_cert or (not has_key and rel.lower().endswith(('.crt', '.cer', '.cert', '.der'))):
            try:
                parsed, _fmt = parse_certificates(data, rel)
                for cert in parsed:
                    certs.append((rel, cert))
                found.append({'path': rel, 'kind': 'certificate', 'count': len(parsed),
                              'subject': parsed[0].subject.rfc4514_string() if parsed else None,
                              'sha256': fingerprint_sha256(parsed[0]) if parsed else None})
            except CertificateLoadError as exc:
                problems.append('%s: %s' % (rel, exc.message))
    for rel, key in keys:
        partners = [cert_rel for cert_rel, cert in certs if key_matches(cert, key)]
        if not partners:
            problems.append('%s: this private key matches no certificate of the set (the certificate is missing, or '
                            'certificate and key do not belong together)' % rel)
        else:
            for item in found:
                if item['path'] == rel and item['kind'] == 'private key':
                    item['matches'] = sorted(set(partners))
    return found, problems


# -- the check command ----------------------------------------------------------------------------------------
def check_argv(command: Any, root: str) -> List[str]:
    """The command as an argument list, ``{root}`` replaced in each argument (after splitting, so a root with
    spaces or quotes stays one argument; no shell ever sees it)."""
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    if not words:
        raise OpsReadyError('check_command is empty: give the command that checks the restored tree, e.g. '
                            '"haproxy -c -f {root}/etc/haproxy/haproxy.cfg".')
    return [w.replace('{root}', root) for w in words]


def run_check(command: Any, root: str, timeout: int) -> Tuple[str, Dict[str, Any]]:
    argv = check_argv(command, root)
    env = dict(os.environ, LC_ALL='C', LANGUAGE='C')
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False,
                              cwd=root, env=env)  # nosec B603 # an argument list, no shell
    except FileNotFoundError:
        raise StepFailed('check command %s: %s is not installed on the drill target (or not on PATH).'
                         % (shlex.join(argv), argv[0]))
    except subprocess.TimeoutExpired as exc:
        output = (exc.output or b'').decode('utf-8', 'replace')[-OUTPUT_LIMIT:]
        raise StepFailed('check command %s did not finish within %d s.' % (shlex.join(argv), timeout),
                         drill_details={'argv': argv, 'output': output})
    output = proc.stdout.decode('utf-8', 'replace')[-OUTPUT_LIMIT:]
    details = {'argv': argv, 'rc': proc.returncode, 'output': output}
    if proc.returncode != 0:
        raise StepFailed('check command %s failed on the restored tree (exit %d): %s'
                         % (shlex.join(argv), proc.returncode, output.strip()[-2000:] or 'no output'),
                         drill_details=details)
    return '%s: exit 0' % shlex.join(argv), details


# -- the drill ------------------------------------------------------------------------------------------------
def _prepare_root(scratch_root: str) -> None:
    """Create (or take, when empty) the scratch root, 0700, refusing one another account could swap.

    The drill restores, as root, decrypted files (keys among them) into it, chmods it and removes it: a scratch root
    below a directory another account can write (a predictable /var/tmp/opsready-drill made by that account first)
    could be swapped for a link to /etc between the checks and the work, and root would chmod /etc 0700 and restore
    into it. So every directory on the way must be one only root can change (``safeio.path_risk``: a directory of
    root's inside the sticky /var/tmp passes), and the directory is checked and chmodded through one descriptor
    opened without following a link.
    """
    risk = safeio.path_risk(scratch_root)
    if risk:
        raise OpsReadyError('scratch_root %s is not safe for a drill run as %s: %s, so that account could swap the '
                            'scratch directory for a link and have root restore the set (keys included) into, or '
                            'chmod, another directory. Nothing was created. Use a scratch_root below directories '
                            'only root can write (a directory of root\'s inside the sticky /var/tmp is fine, e.g. '
                            '/var/tmp/opsready-drill/<set>, created when missing).'
                            % (scratch_root, safeio.uid_name(os.geteuid()), risk), path=scratch_root)
    if not os.path.lexists(scratch_root):
        safeio.makedirs(scratch_root, 0o700)
        risk = safeio.path_risk(scratch_root)   # a directory on the way planted meanwhile
        if risk:
            raise OpsReadyError('scratch_root %s became unsafe while it was created: %s. Choose another path.'
                                % (scratch_root, risk), path=scratch_root)
    not_empty = ('scratch_root %s exists and is not an empty directory: a drill restores into a new or empty '
                 'directory (and removes it afterwards). Choose another path.' % scratch_root)
    try:
        fd = os.open(scratch_root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0))
    except OSError:
        raise OpsReadyError(not_empty, path=scratch_root)
    try:
        st = os.fstat(fd)
        if os.listdir(fd):
            raise OpsReadyError(not_empty, path=scratch_root)
        if st.st_uid not in (0, os.geteuid()):
            raise OpsReadyError('scratch_root %s belongs to %s: a drill run as %s restores only into a directory of '
                                'its own. Remove it or choose another path.'
                                % (scratch_root, safeio.uid_name(st.st_uid), safeio.uid_name(os.geteuid())),
                                path=scratch_root)
        os.fchmod(fd, 0o700)  # restored keys must not be readable by others while the drill runs
    finally:
        os.close(fd)


def drill_fileset(backup_dir: str, set_name: str, scratch_root: str, check_command: Any = None,
                  check_timeout: int = 300, identities: Sequence[Any] = (), origin: Optional[str] = None
                  ) -> Dict[str, Any]:
    """Run the file-set drill (of ``origin``'s archives when several hosts write the set); returns {ok, steps,
    backup, error}. Never raises for a failing step."""
    scratch_root = os.path.abspath(scratch_root)
    steps = _Steps()
    state: Dict[str, Any] = {}
    backup: Dict[str, Any] = {}

    def find() -> Tuple[str, Dict[str, Any]]:
        damage: Dict[str, Any] = {}
        manifest = find_archive(backup_dir, set_name, origin=origin, damage=damage)
        state['manifest'] = manifest
        # the newer archives the catalog passed over (verification failed, manifest torn) go with the record: the
        # report names them and the drill fails (drill/passed_over.py), never a PASSED of an older archive alone
        backup.update({'id': manifest.id, 'chain': [manifest.id], 'path': manifest.path, 'kind': manifest.kind,
                       'recoverable_until': isoformat(manifest.consistent_at),
                       'encrypted': bool(manifest.data.get('encryption')), **damage})
        return manifest.id, {}

    def restore() -> Tuple[str, Dict[str, Any]]:
        _prepare_root(scratch_root)
        state['created'] = True  # only then is the scratch root ours to remove
        done = restore_archive(state['manifest'], scratch_root, identities=list(identities))
        count = len(done['restored'])
        return '%d file(s) restored into %s' % (count, scratch_root), {'restored': count}

    def integrity() -> Tuple[str, Dict[str, Any]]:
        manifest = state['manifest']
        records = manifest_files(manifest.data, identities, manifest.path)
        if records is None:
            raise StepFailed('%s lists no per-file checksums (taken before this version, or more than %d members): '
                             'take a new file_backup of the set so a drill can prove every file.'
                             % (manifest.id, FILE_LIST_LIMIT))
        if not any(r.get('type') == 'file' for r in records):
            # Every member matched, so the drill passed, but a recovery from this archive gives back no file at all:
            # the set's paths were empty or missing when file_backup ran (a mount not mounted, a path moved).
            raise StepFailed('%s holds no file (%d member(s): directories or links only): a recovery from it restores '
                             'nothing; check that the set\'s paths held their files when file_backup ran, and take a '
                             'new backup of the set.' % (manifest.id, len(records)))
        owners = os.geteuid() == 0
        problems = compare_tree(scratch_root, records, owners)
        certificates, cert_problems = check_certificates(scratch_root, records)
        details = {'members': len(records), 'files': sum(1 for r in records if r.get('type') == 'file'),
                   'owners_checked': owners, 'certificates': certificates,
                   'problems': (problems + cert_problems)[:SHOWN],
                   'problem_count': len(problems) + len(cert_problems)}
        # What file_backup could not archive (a FIFO or socket, a file that changed while it was read) is in no
        # member list, so the tree above matches: a recovery from this archive lacks those paths all the same.
        left_out = manifest.data.get('not_archived') or []
        warnings = ['not in the archive: %s (%s)' % (safeio.displayable(str(item.get('path'))), item.get('reason'))
                    for item in left_out[:SHOWN]]
        if len(left_out) > SHOWN:
            warnings.append('and %d more path(s) not in the archive (the manifest\'s not_archived)'
                            % (len(left_out) - SHOWN))
        details['warnings'] = warnings
        if problems or cert_problems:
            shown = (problems + cert_problems)[:SHOWN]
            more = len(problems) + len(cert_problems) - len(shown)
            raise StepFailed('%d problem(s) in the restored set: %s%s' % (
                len(problems) + len(cert_problems), '; '.join(shown), ' (and %d more)' % more if more else ''),
                drill_details=details)
        return ('%d member(s) match the manifest (SHA-256, mode%s); %d certificate file(s) parse, %d key(s) match'
                % (len(records), ', owner' if owners else '',
                   sum(1 for c in certificates if c['kind'] == 'certificate'),
                   sum(1 for c in certificates if c.get('matches')))), details

    def cleanup() -> Tuple[str, Dict[str, Any]]:
        if not state.get('created') or not os.path.lexists(scratch_root):
            return 'nothing to remove', {}
        shutil.rmtree(scratch_root)
        return 'removed %s' % scratch_root, {}

    try:
        if steps.run('find_backup', find) and steps.run('restore', restore) and steps.run('integrity', integrity) \
                and check_command:
            steps.run('smoke', lambda: run_check(check_command, scratch_root, check_timeout))
    finally:
        steps.run('cleanup', cleanup)
    failed = [s for s in steps.steps if not s['ok']]
    return {'ok': not failed, 'steps': steps.steps, 'backup': backup,
            'error': '; '.join('%s: %s' % (s['name'], s['error']) for s in failed) or None}
