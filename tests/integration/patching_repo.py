"""A real, local apt repository for patching tests, isolated from this machine's apt configuration.

Packages are built with ``dpkg-deb`` (all named ``opsready-testpkg-*``, each installing a VERSION file
under /usr/share/<name> and a small "library" under /usr/lib/<name>), indexed with ``apt-ftparchive``
into two flat archives (``main`` and ``security``, the latter labelled like Debian-Security), and
reached through a ``file:`` source in a sources list of its own. :meth:`AptTestRepo.apt_config` gives
the apt options (``Dir::Etc::sourcelist``, ``Dir::Etc::sourceparts=-``, private lists and cache) that
make apt see only this repository, so an "upgrade everything" touches only the test packages and the
machine's own sources, lists and caches are never used. :meth:`cleanup` purges the packages this
repository built (and any hold on them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

PREFIX = 'opsready-testpkg-'
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


def installed_test_packages() -> List[str]:
    proc = subprocess.run(['dpkg-query', '-W', '-f', '${Package} ${db:Status-Abbrev}\n', PREFIX + '*'],
                          capture_output=True, text=True, check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if ' ii' in line or ' hi' in line]


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

    def cleanup(self) -> None:
        built = {key.split('=')[0] for key in self.debs}
        names = [name for name in installed_test_packages() if name in built]
        if names:
            subprocess.run(['apt-mark', 'unhold'] + names, capture_output=True, check=False)
            subprocess.run(['dpkg', '--purge'] + names, capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def apt_options(config: Dict[str, str]) -> List[str]:
    argv: List[str] = []
    for key, value in config.items():
        argv += ['-o', '%s=%s' % (key, value)]
    return argv
