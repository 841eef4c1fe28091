# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""System metrics with psutil: CPU, load, memory, swap, filesystems, network, TCP connections.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import fnmatch
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.health import deadline
from ansible_collections.opsready.operations.plugins.module_utils.health.thresholds import (
    CRITICAL, Threshold, finding, measure)

try:
    import psutil
    HAS_PSUTIL = True
except ImportError:  # pragma: no cover - exercised only where psutil is missing
    psutil = None
    HAS_PSUTIL = False

# Kernel and virtual filesystems whose "use" means nothing to an operator (or is always 100 %).
PSEUDO_FSTYPES = frozenset([
    'autofs', 'binfmt_misc', 'bpf', 'cgroup', 'cgroup2', 'configfs', 'debugfs', 'devpts', 'devtmpfs',
    'efivarfs', 'fusectl', 'hugetlbfs', 'mqueue', 'nsfs', 'proc', 'pstore', 'ramfs', 'rpc_pipefs',
    'securityfs', 'selinuxfs', 'squashfs', 'sysfs', 'tracefs', 'iso9660', 'udf', 'fuse.gvfsd-fuse',
    'fuse.lxcfs', 'fuse.portal', 'nfsd', 'overlay_internal',
])
PSEUDO_PREFIXES = ('/proc', '/sys', '/run/user/', '/run/credentials', '/snap/', '/var/lib/docker/')
METRIC_GROUPS = ('cpu', 'load', 'memory', 'filesystems', 'network', 'connections')


def require_psutil() -> None:
    if not HAS_PSUTIL:
        raise OpsReadyError('System metrics need the Python package psutil on the managed host '
                            '(apt install python3-psutil, or pip install psutil), or set metrics: [].')


def _under(path: str, prefix: str) -> bool:
    return path == prefix.rstrip('/') or path.startswith(prefix if prefix.endswith('/') else prefix + '/')


def mountpoints(exclude: Sequence[str] = ()) -> List[Dict[str, str]]:
    """Real filesystems (tmpfs included: a full /run or /dev/shm breaks hosts), each mountpoint once."""
    seen = set()
    result = []
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint
        if part.fstype in PSEUDO_FSTYPES or mount in seen:
            continue
        if any(_under(mount, p) for p in PSEUDO_PREFIXES):
            continue
        if any(fnmatch.fnmatchcase(mount, pattern) for pattern in exclude):
            continue
        seen.add(mount)
        result.append({'mountpoint': mount, 'device': part.device, 'fstype': part.fstype})
    return result


def statvfs_usage(mount: str) -> Dict[str, Any]:
    st = os.statvfs(mount)
    total = st.f_blocks * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    # As df computes it: used / (used + available to unprivileged users).
    denom = used + avail
    percent = round(100.0 * used / denom, 2) if denom > 0 else 0.0
    inodes_total = st.f_files
    inodes_free = st.f_favail if st.f_favail else st.f_ffree
    inode_percent = None
    if inodes_total:
        inode_percent = round(100.0 * (inodes_total - st.f_ffree) / inodes_total, 2)
    return {
        'total_bytes': total, 'used_bytes': used, 'free_bytes': avail, 'percent': percent,
        'inodes_total': inodes_total, 'inodes_free': inodes_free, 'inode_percent': inode_percent,
    }


def filesystem_probes(exclude: Sequence[str], timeout: float) -> List[Any]:
    """(key, func, timeout) probes, one per mount: a hung network mount costs its timeout only."""
    probes = []
    for mount in mountpoints(exclude):
        probes.append(('fs:' + mount['mountpoint'], (lambda m=mount: dict(m, **statvfs_usage(m['mountpoint']))),
                       timeout))
    return probes


def filesystem_results(outcomes: Dict[str, deadline.Outcome]) -> List[Dict[str, Any]]:
    result = []
    for key, outcome in outcomes.items():
        if not key.startswith('fs:'):
            continue
        mount = key[3:]
        if outcome.timed_out:
            result.append({'mountpoint': mount, 'error': 'statvfs did not answer within %.1fs' % outcome.elapsed})
        elif outcome.error is not None:
            result.append({'mountpoint': mount, 'error': str(outcome.error)})
        else:
            result.append(outcome.value)
    return sorted(result, key=lambda f: f['mountpoint'])


def sample_window(interval: float, cpu: bool = True, network: bool = True) -> Dict[str, Any]:
    """CPU percent and network throughput over the same ``interval`` (two samples, one sleep)."""
    out: Dict[str, Any] = {}
    if cpu:
        psutil.cpu_percent(interval=None)
    before = psutil.net_io_counters(pernic=True) if network else {}
    start = time.monotonic()
    time.sleep(interval)
    elapsed = max(time.monotonic() - start, 1e-6)
    if cpu:
        out['cpu'] = {'percent': psutil.cpu_percent(interval=None), 'count': psutil.cpu_count() or 1,
                      'interval': round(elapsed, 3)}
    if network:
        after = psutil.net_io_counters(pernic=True)
        stats = psutil.net_if_stats()
        interfaces = []
        for nic, now in sorted(after.items()):
            then = before.get(nic)
            if then is None:
                continue
            rx = max(0, now.bytes_recv - then.bytes_recv) / elapsed
            tx = max(0, now.bytes_sent - then.bytes_sent) / elapsed
            st = stats.get(nic)
            speed = st.speed if st is not None else 0
            percent = None
            if speed and speed > 0:
                percent = round(100.0 * max(rx, tx) * 8 / (speed * 1000000.0), 2)
            interfaces.append({
                'interface': nic, 'rx_bytes_per_second': round(rx, 1), 'tx_bytes_per_second': round(tx, 1),
                'speed_mbps': speed or None, 'percent': percent, 'up': bool(st.isup) if st is not None else None,
                'errors': (now.errin - then.errin) + (now.errout - then.errout),
            })
        out['network'] = interfaces
    return out


def memory() -> Dict[str, Any]:
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    return {
        'total_bytes': vm.total, 'available_bytes': vm.available, 'percent': round(vm.percent, 2),
        'swap_total_bytes': sw.total, 'swap_percent': round(sw.percent, 2) if sw.total else 0.0,
    }


def load() -> Dict[str, Any]:
    cores = psutil.cpu_count() or 1
    one, five, fifteen = os.getloadavg()
    return {'load1': round(one, 2), 'load5': round(five, 2), 'load15': round(fifteen, 2), 'cores': cores,
            'per_core1': round(one / cores, 3), 'per_core5': round(five / cores, 3),
            'per_core15': round(fifteen / cores, 3)}


def tcp_established() -> Optional[int]:
    try:
        return sum(1 for c in psutil.net_connections(kind='tcp') if c.status == psutil.CONN_ESTABLISHED)
    except (psutil.AccessDenied, OSError):
        return None


def collect(groups: Sequence[str], interval: float, exclude: Sequence[str], fs_timeout: float,
            run_probes: Callable[[List[Any], Callable[[], Any]], Dict[str, deadline.Outcome]]) -> Dict[str, Any]:
    """Collect ``groups``; ``run_probes(probes, meanwhile)`` runs the filesystem probes (and the
    caller's checks) while the CPU/network window is sampled in this thread."""
    metrics: Dict[str, Any] = {}
    wants = set(groups)
    probes = filesystem_probes(exclude, fs_timeout) if 'filesystems' in wants else []
    window: Dict[str, Any] = {}

    def meanwhile() -> None:
        if 'cpu' in wants or 'network' in wants:
            window.update(sample_window(interval, cpu='cpu' in wants, network='network' in wants))

    outcomes = run_probes(probes, meanwhile)
    metrics.update(window)
    if 'load' in wants:
        metrics['load'] = load()
    if 'memory' in wants:
        metrics['memory'] = memory()
    if 'filesystems' in wants:
        metrics['filesystems'] = filesystem_results(outcomes)
    if 'connections' in wants:
        metrics['tcp_established'] = tcp_established()
    return metrics


def evaluate(metrics: Dict[str, Any], th: Dict[str, Threshold]) -> List[Dict[str, Any]]:
    """Findings for system metrics; each names the recovery ``condition`` it maps to."""
    found: List[Dict[str, Any]] = []
    if 'cpu' in metrics:
        found += measure('cpu', 'high_cpu', metrics['cpu']['percent'], th['cpu_percent'], 'CPU use')
    if 'load' in metrics:
        found += measure('load', 'high_cpu', metrics['load']['per_core5'], th['load_per_core'],
                         '5-minute load per core')
    if 'memory' in metrics:
        found += measure('memory', 'high_memory', metrics['memory']['percent'], th['memory_percent'], 'Memory use')
        if metrics['memory']['swap_total_bytes']:
            found += measure('swap', 'high_memory', metrics['memory']['swap_percent'], th['swap_percent'],
                             'Swap use')
    for fs in metrics.get('filesystems', []):
        mount = fs['mountpoint']
        if 'error' in fs:
            found.append(finding('filesystem:' + mount, 'filesystem_unresponsive', None, None, CRITICAL,
                                 'Filesystem %s cannot be measured: %s. Check the mount (a hung network '
                                 'filesystem?).' % (mount, fs['error']), mountpoint=mount))
            continue
        found += measure('filesystem:' + mount, 'disk_full', fs['percent'], th['disk_percent'],
                         'Filesystem %s space use' % mount, mountpoint=mount)
        if fs.get('inode_percent') is not None:
            found += measure('filesystem:' + mount, 'disk_full', fs['inode_percent'], th['inode_percent'],
                             'Filesystem %s inode use' % mount, mountpoint=mount, inodes=True)
    for nic in metrics.get('network', []):
        if nic.get('percent') is not None:
            found += measure('network:' + nic['interface'], 'network_saturated', nic['percent'],
                             th['network_percent'], 'Interface %s throughput (of %s Mbit/s)'
                             % (nic['interface'], nic['speed_mbps']), interface=nic['interface'])
    return found
