"""The ssh key and known-hosts files reach ssh as option values (``-i``, ``-o UserKnownHostsFile=``), where ssh
splits on whitespace (several known-hosts files), reads quotes, and expands ``%`` tokens and a leading ``~``."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import SshStore


@pytest.mark.parametrize('path', ['/etc/ssh/known hosts', '/k/a\tb', '/k/"q"', "/k/it's", '/k/back\\slash',
                                  '/k/%h_hosts', '/k/line\nbreak', '~/.ssh/known_hosts'])
@pytest.mark.parametrize('option', ['key_file', 'known_hosts'])
def test_a_file_path_ssh_would_read_otherwise_is_refused_before_anything_runs(option, path):
    with pytest.raises(OpsReadyError, match='ssh_key' if option == 'key_file' else 'ssh_known_hosts'):
        SshStore('backup.example.com', '/srv/offsite', **{option: path})


def test_plain_paths_reach_ssh_unchanged():
    store = SshStore('backup.example.com', '/srv/offsite', key_file='/root/.ssh/id_ed25519-offsite',
                     known_hosts='/etc/opsready/known_hosts.d/offsite_1.pub')
    assert store.ssh_opts[store.ssh_opts.index('-i') + 1] == '/root/.ssh/id_ed25519-offsite'
    assert 'UserKnownHostsFile=/etc/opsready/known_hosts.d/offsite_1.pub' in store.ssh_opts
