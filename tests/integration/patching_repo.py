"""A real, local apt repository for patching tests, isolated from this machine's apt configuration.

Packages are built with ``dpkg-deb`` (all named ``opsready-testpkg-*``, each installing a VERSION file
under /usr/share/<name> and a small "library" under /usr/lib/<name>), indexed with ``apt-ftparchive``
into two flat archives (``main`` and ``security``, the latter labelled like Debian-Security), and
reached through a ``file:`` source in a sources list of its own. :meth:`AptTestRepo.apt_config` gives
the apt options (``Dir::Etc::sourcelist``, ``Dir::Etc::sourceparts=-``, private lists and cache) that
make apt see only this repository, so an "upgrade everything" touches only the test packages and the
machine's own sources, lists and caches are never used. :meth:`cleanup` purges the packages this
repository built (and any hold on them).

The dpkg database is the machine's, shared by every apt test, every xdist worker and every checkout on the machine:
a test holds :func:`apt_test_lock` for its whole life, and taking it first purges whatever test package an earlier,
interrupted test left installed or held (its teardown never ran: a session stopped mid-run, a SIGKILL). Without that,
a leftover ``hold`` on alpha 1.0 made the next test's install of alpha 1.0 a no-op and the patching run keep alpha
as an operator's hold: "alpha still at 1.0, module ok", seen once in CI.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

PREFIX = 'opsready-testpkg-'
LOCK = '/run/lock/opsready-apt-tests.lock'
ARCHIVES = {
    'main': {'Origin': 'OpsReady', 'Label': 'OpsReady', 'Suite': 'stable'},
    'security': {'Origin': 'OpsReady', 'Label': 'OpsReady-Security', 'Suite': 'stable-security'},
}


def _run(argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kwargs)


def installed_version(name: str) -> Optional[str]:
    proc = subprocess.run(['dpkg-query', '-W', '-f', '${db:Status-Abbrev} ${Version}', name],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or proc.stdout[:2] not in ('ii', 'hi'):     # installed, held or not
        return None
    return proc.stdout.split()[-1]


def test_package_records() -> Dict[str, str]:
    """Every test package dpkg has a record of, whatever its state: name -> ``db:Status-Abbrev`` (``hi``: held and
    installed, ``iF``: half-configured, ``rc``: config files left...)."""
    proc = subprocess.run(['dpkg-query', '-W', '-f', '${Package}\t${db:Status-Abbrev}\n', PREFIX + '*'],
                          capture_output=True, text=True, check=False)
    return dict(line.split('\t', 1) for line in proc.stdout.splitlines() if '\t' in line)


def _dpkg(argv: Sequence[str], data: str = '') -> subprocess.CompletedProcess:
    """dpkg does not wait for its lock (a dpkg run outside the test lock: an apt-get install by hand): wait here."""
    deadline = time.monotonic() + 300
    while True:
        proc = subprocess.run(list(argv), input=data, capture_output=True, text=True, check=False)
        if proc.returncode == 0 or 'lock' not in proc.stderr or time.monotonic() > deadline:
            return proc
        time.sleep(1)


def purge_test_packages(names: Optional[Sequence[str]] = None) -> None:
    """Release the holds on, and purge, these test packages (all of them by default), whatever state they are in;
    raises when one is still installed or held afterwards, so no later test starts from it."""
    targets = sorted(n for n in test_package_records() if names is None or n in names)
    if not targets:
        return
    # selection "purge" first: it is what releases a hold, and what makes dpkg drop the record once removed
    _dpkg(['dpkg', '--set-selections'], ''.join('%s purge\n' % name for name in targets))
    _dpkg(['dpkg', '--purge', '--force-remove-reinstreq', '--force-hold'] + targets)
    left = {name: status for name, status in test_package_records().items()
            if name in targets and (status[:1] == 'h' or status[1:2] != 'n')}
    if left:
        raise RuntimeError('test packages still installed or held after purging them: %s; run "apt-mark unhold" and '
                           '"dpkg --purge" on them by hand' % left)


@contextlib.contextmanager
def apt_test_lock() -> Iterator[None]:
    """Hold the machine's apt test lock for a test's whole life, starting from no test package installed or held."""
    with open(LOCK, 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            purge_test_packages()
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class AptTestRepo:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix='opsready-apt-'))
        os.chmod(self.root, 0o755)   # apt downloads as the _apt user
        self.build = self.root / 'build'
        self.debs: Dict[str, Path] = {}
        for archive in ARCHIVES:
            (self.root / archive).mkdir(mode=0o755)
        for sub in ('lists/partial', 'cache/archives/partial', 'etc/preferences.d'):
            (self.root / sub).mkdir(parents=True, mode=0o755)
        self.sources = self.root / 'etc' / 'sources.list'

    def package(self, short: str, version: str, archive: str = 'main', depends: str = '',
                postinst: str = '') -> Path:
        """Build ``opsready-testpkg-<short>`` at ``version`` into ``archive``; returns the .deb. ``postinst``: a
        maintainer script body (``exit 1`` makes the package fail to configure, as a broken upgrade does)."""
        name = PREFIX + short
        tree = self.build / ('%s_%s' % (name, version))
        (tree / 'DEBIAN').mkdir(parents=True)
        control = ['Package: %s' % name, 'Version: %s' % version, 'Architecture: all',
                   'Maintainer: opsready tests <tests@opsready.invalid>', 'Section: misc', 'Priority: optional',
                   'Description: opsready.operations patching test package (harmless, one file)']
        if depends:
            control.insert(3, 'Depends: %s' % depends)
        (tree / 'DEBIAN' / 'control').write_text('\n'.join(control) + '\n')
        if postinst:
            script = tree / 'DEBIAN' / 'postinst'
            script.write_text('#!/bin/sh\n' + postinst + '\n')
            script.chmod(0o755)
        share = tree / 'usr' / 'share' / name
        share.mkdir(parents=True)
        (share / 'VERSION').write_text(version + '\n')
        lib = tree / 'usr' / 'lib' / name
        lib.mkdir(parents=True)
        (lib / 'libopsready-test.so').write_bytes((b'%s %s\n' % (name.encode(), version.encode())) * 512)
        deb = self.root / archive / ('%s_%s_all.deb' % (name, version))
        _run(['dpkg-deb', '--root-owner-group', '-Zgzip', '-b', str(tree), str(deb)])
        self.debs['%s=%s' % (name, version)] = deb
        return deb

    def publish(self) -> None:
        """Index every archive (Packages, Release) and write the dedicated sources list."""
        lines = []
        for archive, fields in ARCHIVES.items():
            directory = self.root / archive
            packages = _run(['apt-ftparchive', 'packages', '.'], cwd=directory).stdout
            (directory / 'Packages').write_text(packages)
            options = []
            for key, value in fields.items():
                options += ['-o', 'APT::FTPArchive::Release::%s=%s' % (key, value)]
            release = _run(['apt-ftparchive'] + options + ['release', '.'], cwd=directory).stdout
            (directory / 'Release').write_text(release)
            lines.append('deb [trusted=yes] file:%s ./' % directory)
        self.sources.write_text('\n'.join(lines) + '\n')
        for path in self.root.rglob('*'):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)

    def apt_config(self) -> Dict[str, str]:
        return {
            'Dir::Etc::sourcelist': str(self.sources),
            'Dir::Etc::sourceparts': '-',
            'Dir::Etc::preferencesparts': str(self.root / 'etc' / 'preferences.d'),
            'Dir::State::Lists': str(self.root / 'lists'),
            'Dir::Cache': str(self.root / 'cache'),
            'APT::Get::List-Cleanup': '0',
        }

    def install(self, short: str, version: str) -> None:
        """Install one built version (apt-get on the .deb waits for the dpkg lock other suites may hold)."""
        deb = self.debs['%s%s=%s' % (PREFIX, short, version)]
        proc = subprocess.run(['apt-get', '-q', '-y', '-o', 'DPkg::Lock::Timeout=300'] + apt_options(self.apt_config())
                              + ['install', '--allow-downgrades', str(deb)],
                              capture_output=True, text=True, env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'),
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError('installing %s failed: %s' % (deb.name, proc.stderr[-2000:] or proc.stdout[-2000:]))
        status = test_package_records().get(PREFIX + short, '')
        if status[:2] != 'ii' or installed_version(PREFIX + short) != version:
            # e.g. held at this version already: apt-get said "already the newest version" and left the hold
            raise RuntimeError('after installing %s, dpkg has %s %s (status %r), not %s installed and unheld'
                               % (deb.name, PREFIX + short, installed_version(PREFIX + short), status, version))

    def cleanup(self) -> None:
        try:
            purge_test_packages(sorted({key.split('=')[0] for key in self.debs}))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def apt_options(config: Dict[str, str]) -> List[str]:
    argv: List[str] = []
    for key, value in config.items():
        argv += ['-o', '%s=%s' % (key, value)]
    return argv
