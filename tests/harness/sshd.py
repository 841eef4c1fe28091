"""Real SSH test hosts on loopback: one ``sshd`` per host, each on its own 127.0.0.x address.

Linux routes all of 127.0.0.0/8 to the loopback interface, so 127.0.0.2, 127.0.0.3, ... are distinct
addresses on this machine with no configuration. Each host gets its own ``sshd -D`` with
``ListenAddress`` on its address, its own ed25519 host key, and an ``AuthorizedKeysFile`` made for the
test (one client key shared by the fleet). The inventory written by :meth:`SshFleet.inventory` reaches
them over real SSH with strict host key checking against a known_hosts file holding exactly those
keys. Traffic never leaves loopback: addresses outside 127.0.0.0/8 are refused.

Needs root (sshd privilege separation) and openssh-server. Usage::

    with SshFleet(['web1', 'web2', 'web3']) as fleet:
        inventory = fleet.inventory(groups={'appservers': ['web1', 'web2', 'web3']})
        ...
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

REPO = Path(__file__).resolve().parents[2]
SSHD = shutil.which('sshd') or '/usr/sbin/sshd'
PYTHON = str(REPO / '.venv' / 'bin' / 'python')


class SshHarnessError(RuntimeError):
    pass


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', str(path)], check=True)
    return (path.with_suffix('.pub') if path.suffix else Path(str(path) + '.pub')).read_text().strip()


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


class SshHost:
    def __init__(self, name: str, address: str, port: int, directory: Path) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.directory = directory
        self.process: Optional[subprocess.Popen] = None
        self.host_key_pub = ''

    @property
    def log(self) -> str:
        path = self.directory / 'sshd.log'
        return path.read_text(errors='replace') if path.exists() else ''


class SshFleet:
    """Start one sshd per host name on 127.0.0.2, 127.0.0.3, ...; stop and clean everything on exit."""

    def __init__(self, names: Sequence[str], first_address: str = '127.0.0.2', port: Optional[int] = None) -> None:
        if os.geteuid() != 0:
            raise SshHarnessError('the sshd harness needs root (sshd privilege separation)')
        if not os.path.exists(SSHD):
            raise SshHarnessError('sshd not found: install openssh-server (make setup-test)')
        self.root = Path(tempfile.mkdtemp(prefix='opsready-sshd-'))
        os.chmod(self.root, 0o755)
        self.client_key = self.root / 'id_ed25519'
        self.client_pub = _keygen(self.client_key, 'opsready-test-client')
        self.authorized_keys = self.root / 'authorized_keys'
        self.authorized_keys.write_text(self.client_pub + '\n')
        os.chmod(self.authorized_keys, 0o600)
        self.known_hosts = self.root / 'known_hosts'
        self.hosts: List[SshHost] = []
        base = ipaddress.ip_address(first_address)
        for index, name in enumerate(names):
            address = str(base + index)
            if not ipaddress.ip_address(address).is_loopback:
                raise SshHarnessError('refusing %s: test hosts must stay on loopback (127.0.0.0/8)' % address)
            directory = self.root / name
            directory.mkdir()
            host = SshHost(name, address, port or _free_port(address), directory)
            self.hosts.append(host)

    def _config(self, host: SshHost) -> Path:
        key = host.directory / 'ssh_host_ed25519_key'
        host.host_key_pub = _keygen(key, 'opsready-test-%s' % host.name)
        config = host.directory / 'sshd_config'
        config.write_text('\n'.join([
            'ListenAddress %s:%d' % (host.address, host.port),
            'HostKey %s' % key,
            'PidFile %s' % (host.directory / 'sshd.pid'),
            'AuthorizedKeysFile %s' % self.authorized_keys,
            'PermitRootLogin prohibit-password',
            'PubkeyAuthentication yes',
            'PasswordAuthentication no',
            'KbdInteractiveAuthentication no',
            'UsePAM no',
            'StrictModes no',
            'MaxStartups 50:30:100',
            'MaxSessions 50',
            'LogLevel VERBOSE',
            'Subsystem sftp internal-sftp',
            'AcceptEnv LANG LC_*',
            '',
        ]))
        return config

    def start(self) -> 'SshFleet':
        os.makedirs('/run/sshd', mode=0o755, exist_ok=True)   # privilege separation directory
        lines = []
        for host in self.hosts:
            config = self._config(host)
            check = subprocess.run([SSHD, '-t', '-f', str(config)], capture_output=True, text=True, check=False)
            if check.returncode != 0:
                raise SshHarnessError('sshd config for %s rejected: %s' % (host.name, check.stderr))
            host.process = subprocess.Popen([SSHD, '-D', '-e', '-f', str(config)],
                                            stdout=subprocess.DEVNULL,
                                            stderr=open(host.directory / 'sshd.log', 'wb'))
            lines.append('[%s]:%d %s' % (host.address, host.port, ' '.join(host.host_key_pub.split()[:2])))
        self.known_hosts.write_text('\n'.join(lines) + '\n')
        for host in self.hosts:
            self._wait(host)
        return self

    def _wait(self, host: SshHost, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if host.process is not None and host.process.poll() is not None:
                raise SshHarnessError('sshd for %s exited: %s' % (host.name, host.log[-2000:]))
            try:
                with socket.create_connection((host.address, host.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b'SSH-'):
                        return
            except OSError:
                time.sleep(0.1)
        raise SshHarnessError('sshd for %s did not answer on %s:%d' % (host.name, host.address, host.port))

    def ssh(self, host: SshHost, command: str) -> subprocess.CompletedProcess:
        """Run ``command`` on ``host`` over real SSH with the fleet's keys (for assertions)."""
        argv = ['ssh'] + self.ssh_options() + ['-p', str(host.port), 'root@%s' % host.address, command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    def ssh_options(self) -> List[str]:
        return ['-i', str(self.client_key), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
                '-o', 'StrictHostKeyChecking=yes', '-o', 'UserKnownHostsFile=%s' % self.known_hosts,
                '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'ControlMaster=no']

    def inventory(self, groups: Optional[Dict[str, Sequence[str]]] = None,
                  host_vars: Optional[Dict[str, Dict[str, Any]]] = None,
                  group_vars: Optional[Dict[str, Any]] = None) -> str:
        """Write a YAML inventory reaching every host over SSH; returns its path."""
        hosts: Dict[str, Dict[str, Any]] = {}
        for host in self.hosts:
            entry = {'ansible_host': host.address, 'ansible_port': host.port}
            entry.update((host_vars or {}).get(host.name, {}))
            hosts[host.name] = entry
        common = {
            'ansible_connection': 'ssh',
            'ansible_user': 'root',
            'ansible_ssh_private_key_file': str(self.client_key),
            'ansible_ssh_common_args': ' '.join(self.ssh_options()[2:]),
            'ansible_python_interpreter': PYTHON,
            'ansible_host_key_checking': True,
        }
        common.update(group_vars or {})
        children = {name: {'hosts': {h: {} for h in members}} for name, members in (groups or {}).items()}
        data = {'all': {'vars': common, 'hosts': hosts, 'children': children}}
        path = self.root / 'inventory.yml'
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return str(path)

    def stop(self) -> None:
        for host in self.hosts:
            if host.process is not None and host.process.poll() is None:
                host.process.terminate()
                try:
                    host.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    host.process.kill()
                    host.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> 'SshFleet':
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()
