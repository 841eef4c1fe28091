#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_prune
short_description: Apply retention to a backup catalog without ever breaking a chain that is kept
version_added: 0.1.0
description:
  - Selects the full backups to keep per backup set (engine + database) with O(keep_last), O(keep_days),
    O(keep_daily), O(keep_weekly) and O(keep_monthly) (a full is kept when any rule selects it);
    differentials live and die with their full; log and WAL artifacts are kept from the first position any
    kept full or differential needs.
  - The newest verified full and the newest usable full always survive, whatever the rules. The plan is
    checked before anything is deleted; a plan that would break a kept chain is refused.
  - A full whose artifact on disk is not the one its manifest describes (missing, left C(.partial), another
    size, a multi-file artifact missing a member) is counted by no rule and goes, its reason saying why; the
    next older sound full is kept in its place. A full dated more than five minutes after now (a clock that
    was ahead) is kept and counted by no rule, so it never pushes out the real newest backups.
  - Before a set loses a full, the newest full kept in its place (the one that supersedes them) is proved by its
    bytes - its SHA-256 is computed (streamed) unless a passed verification, or an earlier run's hash, recorded the
    artifact's inode, size, mtime and ctime and they are unchanged. A full whose bytes are damaged is counted by no
    rule and goes, like a damaged one; RV(content_checked) says what was read and what was trusted. A real run
    records a good hash in the manifest, so the next run trusts the unchanged artifact without reading it.
  - That trust is a trade-off - a stat says nothing of bytes that rot on the disk under an unchanged inode, size,
    mtime and ctime (a failing disk, a silent controller error); only reading finds them, which
    M(opsready.operations.backup_verify) does (schedule it) and O(verify_content) makes this run do for the full it
    keeps in place of others.
  - Deletes the manifest first (the artifact is then an untrusted leftover), then the data. Also removes
    leftovers of interrupted runs older than O(leftover_min_age) seconds.
  - "In a directory of 1,000 manifests or more the plan is made from the derived catalog index
    (C(.opsready-catalog-index.json), see M(opsready.operations.backup_info)); what is deleted is planned
    again from the manifests themselves of the sets that lose artifacts, never from the index alone.
    Check mode writes nothing, not even the index."
author: opsready developers (@opsready)
options:
  path:
    description:
      - The backup directory.
      - Refused, check mode too, when an account other than root owns or can write a directory above it (or a link
        on the way lives in one) - it could link the name to another catalog of root's, whose backups would be
        deleted.
    type: path
    required: true
  engine:
    description: Only prune this engine's sets.
    type: str
    choices: [postgresql, mariadb, mysql, sqlite, sqlserver, redis, files]
  database:
    description: Only prune this database's set.
    type: str
  leftover_min_age:
    description:
      - Remove files without a manifest only when older than this many seconds (a younger one may be a
        backup in progress).
    type: int
    default: 3600
  origin_succession:
    description:
      - A set holding the backups of several servers (origins, see M(opsready.operations.backup_info)) is planned
        per origin by default - the newest good backup of every server is kept, so a server whose identity changed
        (a PostgreSQL cluster upgraded with pg_upgrade or re-created with initdb, a renamed MariaDB, SQLite or file
        host) keeps its old origin's last full and its logs for ever.
      - V(true) declares such origins B(successive) (the counterpart of O(opsready.operations.db_restore#module:origin)
        V(newest)) - when a set's origins do not overlap in time (every backup of an older origin is older, by
        C(consistent_at), than the first of the next), they are one timeline for the rules - an older origin's fulls
        are older fulls that O(keep_last) counts and O(keep_days) ages out. Chains stay per origin - a kept full keeps
        its own origin's logs from its position, and an older origin none of whose fulls is kept loses its logs. The
        newest usable full is the newest origin's, or, while the newest origin has none yet, its predecessor's (kept
        with its chain).
      - A set whose origins overlap in time (two live servers sharing the directory) keeps its per-origin plan, with
        a warning; the run does not fail, so that one shared set does not stop the retention of every other set of
        a scheduled job (the per-origin plan keeps more, never less). RV(origin_sets) says which plan each set got.
    type: bool
    default: false
  verify_content:
    description:
      - Hash the bytes of the full that supersedes the ones a set loses (SHA-256, streamed) even when a passed
        verification or an earlier run's hash recorded its artifact's inode, size, mtime and ctime and they are
        unchanged. A full found damaged is counted by no rule and goes, and the next older sound full is kept in its
        place, as when its stat had changed.
      - V(false) trusts an unchanged stat (a prune of an unchanged catalog reads nothing). V(true) costs one read of
        one full per set that loses a full, per run - for a catalog on a disk not trusted, or before a large
        clean-up; M(opsready.operations.backup_verify) reads every artifact (and runs the engine's own check).
    type: bool
    default: false
  recipients:
    description:
      - The age public keys (C(age1...)) backups are encrypted to now. When given, a full encrypted only to other
        keys (retired ones, see M(opsready.operations.backup_rekey)) is never counted as the newest usable or verified
        full - the newest full a current key opens is kept as well (the rules may still keep the other one).
      - Unset - which keys are current is not known, every full counts.
    type: list
    elements: str
  max_listed:
    description:
      - How many entries each of RV(deleted), RV(deleted_ids), RV(reasons), RV(kept) and RV(leftovers_removed) lists -
        the oldest deletions (in deletion order), the first kept artifacts and leftovers by path. RV(deleted_count),
        RV(kept_count) and RV(leftovers_removed_count) always count every one, and RV(lists_truncated) says whether a
        list was cut. Check mode counts what the real run then deletes; at the cut, artifacts finished at the same
        instant may be listed in another order. Every artifact the plan deletes is deleted, listed or not.
      - V(-1) lists every entry (at a year of hourly backups, ~200,000 manifests, about 46 MB of result, which
        Ansible copies and encodes, and AWX stores with the job's events).
      - Warnings, RV(broken_manifests), RV(content_checked) and RV(leftovers_left) are never cut.
      - Check mode checks the manifest of each listed deletion against the catalog index; the others are counted from
        the index. A real run reads every manifest of a set again before it deletes from it.
    type: int
    default: 1000
extends_documentation_fragment:
  - opsready.operations.retention
  - opsready.operations.check_mode
notes:
  - With no keep rule at all nothing is deleted.
  - Check mode lists what would be deleted; with C(--diff) the diff shows the artifact list before and after, cut
    like the lists (O(max_listed)), with a last line saying how many artifacts it leaves out.
seealso:
  - module: opsready.operations.db_backup
  - module: opsready.operations.backup_info
'''

EXAMPLES = r'''
- name: Two weeks of dailies, 8 weeklies, 12 monthlies
  opsready.operations.backup_prune:
    path: /var/backups/opsready/pg
    keep_daily: 14
    keep_weekly: 8
    keep_monthly: 12

- name: The database server was upgraded with pg_upgrade (a new origin) - its old backups age out like older ones
  opsready.operations.backup_prune:
    path: /var/backups/opsready/pg
    keep_last: 7
    origin_succession: true

- name: What would go?
  opsready.operations.backup_prune:
    path: /var/backups/opsready/pg
    keep_last: 3
  check_mode: true
  diff: true

- name: Every path a large clean-up would delete, not only the oldest 1000 (a large result)
  opsready.operations.backup_prune:
    path: /var/backups/opsready/mariadb
    keep_daily: 14
    max_listed: -1
  check_mode: true
  register: plan

- name: How many would go
  ansible.builtin.debug:
    msg: "{{ plan.deleted_count }} to delete, {{ plan.kept_count }} kept"
'''

RETURN = r'''
deleted:
  description:
    - Artifacts deleted (or that would be, in check mode), in deletion order (oldest first) - the first O(max_listed)
      of them; RV(deleted_count) counts every one.
  returned: success
  type: list
  elements: str
deleted_ids:
  description: The ids of the artifacts of RV(deleted), in the same order.
  returned: success
  type: list
  elements: str
deleted_count:
  description: How many artifacts were deleted (or would be), whatever RV(deleted) lists.
  returned: success
  type: int
kept_count:
  description: How many artifacts are kept, whatever RV(kept) lists.
  returned: success
  type: int
leftovers_removed_count:
  description: How many leftovers were removed (or would be), whatever RV(leftovers_removed) lists.
  returned: success
  type: int
lists_truncated:
  description:
    - True when RV(deleted), RV(deleted_ids), RV(reasons), RV(kept) or RV(leftovers_removed) lists fewer entries
      than there are (more than O(max_listed)); RV(lists_note) then says how to get every one (O(max_listed=-1)).
  returned: success
  type: bool
lists_note:
  description: What the cut lists hold and how to list every entry.
  returned: when RV(lists_truncated)
  type: str
origin_sets:
  description:
    - The sets holding several origins - C(engine), C(database), C(origins_relation) (C(successive) or
      C(overlapping)), C(origin_spans) (each origin's C(origin), C(from), C(until), C(artifacts), oldest first) and
      C(planned) (C(one timeline) with O(origin_succession) on a succession, else C(per origin)).
  returned: success
  type: list
  elements: dict
kept:
  description:
    - Artifacts kept, with the rule that keeps each - the first O(max_listed) by path; RV(kept_count) counts every one.
  returned: success
  type: dict
reasons:
  description: Why each artifact of RV(deleted) goes.
  returned: success
  type: dict
content_checked:
  description:
    - The fulls whose bytes were proved before older artifacts were let go (artifact path - how - C(hashed (SHA-256))
      or C(not read) with the verification or earlier hash that still holds; always C(hashed) with
      O(verify_content)). Empty when no set lost a full.
  returned: success
  type: dict
broken_manifests:
  description:
    - Manifests in O(path) that cannot be read (truncated or edited JSON, a shape this version refuses), with the
      reason. Their backups are kept - no rule counts them and none deletes them - and a warning names each. Every
      unreadable manifest of the directory is listed, whatever O(engine) and O(database) say (which set it belongs
      to cannot be read either). Check mode lists the same.
  returned: success
  type: list
  elements: dict
  sample: [{manifest: /var/backups/pg/shop-full-20261101T004512123456Z.dump.zst.manifest.json,
            error: 'invalid JSON: Unterminated string starting at: line 1 column 30'}]
leftovers_removed:
  description:
    - Files without a manifest older than O(leftover_min_age) that were removed (or would be) - the first
      O(max_listed) by path; RV(leftovers_removed_count) counts every one.
  returned: success
  type: list
  elements: str
leftovers_left:
  description: Files of interrupted runs that could not be removed (each with a warning saying why); the run itself
    succeeded. Remove them by hand.
  returned: when a removal failed
  type: list
  elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.backup import retention
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_prune import (
    DEFAULT_MAX_LISTED, prune)
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.names import CATALOG_ENGINES


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            engine=dict(type='str', choices=list(CATALOG_ENGINES)),
            database=dict(type='str'),
            leftover_min_age=dict(type='int', default=3600),
            origin_succession=dict(type='bool', default=False),
            recipients=dict(type='list', elements='str'),
            verify_content=dict(type='bool', default=False),
            max_listed=dict(type='int', default=DEFAULT_MAX_LISTED),
            **retention.argument_spec()
        ),
        required_one_of=[list(retention.KEEP_OPTIONS)],
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    if p['max_listed'] < -1:
        module.fail_json(msg='max_listed must be -1 (every entry), 0 or more, not %d.' % p['max_listed'])
    try:
        policy = retention.Policy.from_params(p)
        policy.recipients = p['recipients']
        policy.verify_content = p['verify_content']
        # the lists come cut to max_listed, with exact counts (check mode proves the deletions it lists)
        result = prune(p['path'], policy, engine=p['engine'], database=p['database'], check_mode=module.check_mode,
                       leftover_min_age=p['leftover_min_age'], succession=p['origin_succession'],
                       max_listed=p['max_listed'])
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    for text in result.pop('warnings', None) or []:   # exit_json(warnings=...) is deprecated
        module.warn(text)
    if result['changed'] and module._diff:
        result['diff'] = listing_diff(result, p['path'], p['max_listed'])
    module.exit_json(**result)


def listing_diff(result, path, max_listed):
    """The directory's artifacts before and after, as the cut lists name them: uncut, every artifact (~200,000
    lines at a year of hourly backups); cut, the listed ones and a last line saying how many are left out."""
    gone = set(result['deleted']) | set(result['leftovers_removed'])
    before = ['\n'.join(os.path.basename(x) for x in sorted(set(result['kept']) | gone))]
    after = ['\n'.join(os.path.basename(x) for x in sorted(result['kept']))]
    if result['lists_truncated']:
        kept = result['kept_count'] - len(result['kept'])
        hidden = (result['deleted_count'] - len(result['deleted']) + kept
                  + result['leftovers_removed_count'] - len(result['leftovers_removed']))
        before.append('(and %d more artifacts not listed: max_listed is %d; deleted_count, kept_count and '
                      'leftovers_removed_count count every one, max_listed -1 lists every artifact)'
                      % (hidden, max_listed))
        after.append('(and %d more kept artifacts not listed: max_listed is %d)' % (kept, max_listed))
    return {'before': '\n'.join(line for line in before if line) + '\n',
            'after': '\n'.join(line for line in after if line) + '\n', 'before_header': path, 'after_header': path}


if __name__ == '__main__':
    main()
