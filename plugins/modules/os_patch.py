#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: os_patch
short_description: Apply OS package updates (apt, or dnf/yum) and report every package's old and new version
version_added: 0.1.0
description:
  - Refreshes the package lists, plans the update with the package manager's own simulation, protects
    the packages in O(hold) (and those already held), applies the update and reports what changed by
    comparing the package database before and after, so RV(upgraded) is exactly what is installed now.
  - O(security_only) upgrades only packages whose candidate comes from an archive matching
    O(security_pattern) (Debian-Security, Ubuntu C(*-security)); the others are listed in
    RV(plan.not_security).
  - After the update it reports whether a reboot is required (C(/var/run/reboot-required) on Debian,
    C(needs-restarting -r) on RHEL), whether a reboot is possible (not in a container, not the
    machine running Ansible), and which processes and systemd services still use files the update
    replaced (C(deleted) mappings in C(/proc/PID/maps)). It never reboots and never restarts anything
    itself; the C(opsready.operations.patching) role does, behind its own switches.
  - Refuses to run when C(dpkg --audit) reports an interrupted package operation.
  - The dnf/yum backend is written to the same contract but is B(not tested) by this collection's
    test suite (the test machine is Debian); O(hold) becomes C(--exclude), O(security_only) needs
    updateinfo metadata as on RHEL.
author: opsready developers (@opsready)
options:
  backend:
    description: Package manager; V(auto) picks apt-get, then dnf, then yum.
    type: str
    choices: [auto, apt, dnf]
    default: auto
  mode:
    description:
      - V(safe) is C(apt-get upgrade --with-new-pkgs) (installs new dependencies, never removes a
        package); V(full) is C(apt-get dist-upgrade) (may remove packages; they are listed in
        RV(plan.remove) in check mode and in RV(removed)).
    type: str
    choices: [safe, full]
    default: safe
  security_only:
    description: Upgrade only packages whose candidate version comes from a security archive.
    type: bool
    default: false
  security_pattern:
    description:
      - Regular expression matched against the archive label/suite of a candidate (apt) or the
        advisory type (dnf).
    type: str
    default: (?i)security
  hold:
    description:
      - Package name glob patterns that must not be upgraded in this run. They are held with
        C(apt-mark hold) during the run and released afterwards (holds that existed before are kept).
    type: list
    elements: str
    default: []
  only:
    description: Upgrade only packages matching these glob patterns (with their dependencies).
    type: list
    elements: str
    default: []
  autoremove:
    description: Remove packages that were installed as dependencies and are no longer needed.
    type: bool
    default: false
  update_cache:
    description: Refresh the package lists first (C(apt-get update)); skipped in check mode.
    type: bool
    default: true
  apt_config:
    description:
      - Extra apt configuration as C(-o KEY=VALUE) pairs, for example a proxy
        (C(Acquire::http::Proxy)) or a dedicated sources list (C(Dir::Etc::sourcelist)).
    type: dict
    default: {}
  lock_timeout:
    description: Seconds to wait for another apt/dpkg run to release its lock.
    type: int
    default: 120
  timeout:
    description: Seconds any single package-manager command may take before it is abandoned.
    type: int
  reboot_required_file:
    description: Debian's reboot flag file (with C(.pkgs) beside it naming the packages that set it).
    type: path
    default: /var/run/reboot-required
  controller_machine_id:
    description:
      - C(/etc/machine-id) of the machine running Ansible; when the host has the same id,
        RV(reboot_possible) is false (rebooting it would kill the run).
    type: str
  allow_container_reboot:
    description: Consider a reboot possible even inside a container.
    type: bool
    default: false
  restart_exclude:
    description: systemd unit glob patterns left out of RV(services_to_restart).
    type: list
    elements: str
    default: [ssh.service, sshd.service, dbus.service, "systemd-*", "user@*", "getty@*"]
  hold_state_file:
    description:
      - Where the run records the packages it holds for its own duration (O(hold) on apt hosts), before it holds
        them; the record is removed once they are released.
      - A run killed in between (job timeout, OOM killer) cannot release them. The next run releases the holds
        that record names (only those still held, never a hold that existed before the killed run) and reports
        them in RV(released_holds) with a warning. Without the record they would look like the operator's own
        holds and the packages would never be patched again.
      - The directory is created 0700; it must not be one another account can write or swap. The run also locks
        C(<hold_state_file>.lock), so two patching runs on one host wait for each other (up to O(lock_timeout)).
    type: path
    default: /var/lib/opsready/patching/temporary-holds.json
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - In check mode the plan comes from the simulation against the current package lists (they are not
    refreshed) and packages in O(hold) are left out of it.
seealso:
  - module: opsready.operations.patch_gate
  - module: opsready.operations.patch_report
  - module: ansible.builtin.apt
'''

EXAMPLES = r'''
- name: Security updates only, never the database server packages
  opsready.operations.os_patch:
    security_only: true
    hold: ["postgresql-*", "mariadb-*"]
  register: patch

- name: What would be upgraded?
  opsready.operations.os_patch:
  check_mode: true
  register: plan

- name: Full upgrade through a proxy, removing orphans
  opsready.operations.os_patch:
    mode: full
    autoremove: true
    apt_config:
      Acquire::http::Proxy: http://proxy.example.com:3128
'''

RETURN = r'''
backend:
  description: Package manager used.
  returned: always
  type: str
  sample: apt
upgraded:
  description: Packages whose version changed (planned ones in check mode; on failure, those changed before it).
  returned: always
  type: list
  elements: dict
  sample: [{name: openssl, arch: amd64, old: 3.0.11-1~deb12u1, new: 3.0.11-1~deb12u2}]
installed:
  description: Packages newly installed (new dependencies).
  returned: always
  type: list
  elements: dict
removed:
  description: Packages removed (full mode, autoremove).
  returned: always
  type: list
  elements: dict
released_holds:
  description:
    - Holds an earlier, interrupted run set and never released, released by this run (check mode - that it would
      release). Their packages are part of this run's plan again.
  returned: always
  type: list
  elements: str
broken_packages:
  description:
    - On failure only - packages dpkg left unpacked or half-configured. RV(upgraded), RV(installed) and
      RV(removed) then list what the failed run had already changed.
  returned: failure
  type: list
  elements: str
held:
  description:
    - Packages with an available upgrade that were held back (O(hold) or existing holds), with the
      version left uninstalled.
  returned: always
  type: list
  elements: dict
plan:
  description: The simulation of the update.
  returned: always
  type: dict
  contains:
    upgrade:
      description: Packages this run upgrades (name, old, new, arch, origin, security).
      type: list
      elements: dict
    held:
      description: Packages left out by O(hold) or an existing hold.
      type: list
      elements: dict
    not_security:
      description: Packages left out by O(security_only).
      type: list
      elements: dict
    remove:
      description: Packages the update (full mode) or O(autoremove) would remove.
      type: list
      elements: str
reboot_required:
  description: Whether the host needs a reboot to run the updated kernel or libraries.
  returned: always
  type: bool
reboot_required_by:
  description: Packages that asked for the reboot (Debian).
  returned: always
  type: list
  elements: str
reboot_possible:
  description: False when the host must not be rebooted by Ansible; RV(reboot_blockers) says why.
  returned: always
  type: bool
reboot_blockers:
  description: Reasons a reboot is not possible (container, the controller itself, no init system).
  returned: always
  type: list
  elements: str
processes_using_old_files:
  description: Processes still mapping replaced files - pid, name, systemd unit (or null) and files.
  returned: always
  type: list
  elements: dict
services_needing_restart:
  description: systemd units of RV(processes_using_old_files).
  returned: always
  type: list
  elements: str
services_to_restart:
  description: RV(services_needing_restart) without those matching O(restart_exclude).
  returned: always
  type: list
  elements: str
duration_seconds:
  description: Wall time of the run.
  returned: always
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.patching.run import Options, patch


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backend=dict(type='str', choices=['auto', 'apt', 'dnf'], default='auto'),
            mode=dict(type='str', choices=['safe', 'full'], default='safe'),
            security_only=dict(type='bool', default=False),
            security_pattern=dict(type='str', default=r'(?i)security'),
            hold=dict(type='list', elements='str', default=[]),
            only=dict(type='list', elements='str', default=[]),
            autoremove=dict(type='bool', default=False),
            update_cache=dict(type='bool', default=True),
            apt_config=dict(type='dict', default={}),
            lock_timeout=dict(type='int', default=120),
            timeout=dict(type='int'),
            reboot_required_file=dict(type='path', default='/var/run/reboot-required'),
            controller_machine_id=dict(type='str'),
            allow_container_reboot=dict(type='bool', default=False),
            restart_exclude=dict(type='list', elements='str',
                                 default=['ssh.service', 'sshd.service', 'dbus.service', 'systemd-*', 'user@*',
                                          'getty@*']),
            hold_state_file=dict(type='path', default='/var/lib/opsready/patching/temporary-holds.json'),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    opts = Options(backend=p['backend'], mode=p['mode'], security_only=p['security_only'],
                   security_pattern=p['security_pattern'], hold=p['hold'], only=p['only'],
                   autoremove=p['autoremove'], update_cache=p['update_cache'],
                   apt_config={str(k): str(v) for k, v in p['apt_config'].items()},
                   reboot_required_file=p['reboot_required_file'], lock_timeout=p['lock_timeout'],
                   timeout=p['timeout'], controller_machine_id=p['controller_machine_id'],
                   allow_container_reboot=p['allow_container_reboot'], restart_exclude=p['restart_exclude'],
                   hold_state_file=p['hold_state_file'])
    try:
        result = patch(opts, module.check_mode)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    if not module._diff:
        result.pop('diff', None)
    if result['released_holds']:
        module.warn('An earlier patching run was interrupted before it released its temporary holds on %s; this run %s '
                    'them (recorded in %s), so they are patched again.'
                    % (', '.join(result['released_holds']), 'would release' if module.check_mode else 'released',
                       p['hold_state_file']))
    if result.get('reboot_required') and not result.get('reboot_possible'):
        by = ', '.join(result.get('reboot_required_by') or [])
        module.warn('A reboot is required%s but Ansible must not reboot this host: %s. Reboot it another way.'
                    % ((' (by %s)' % by) if by else '', '; '.join(result['reboot_blockers'])))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
