#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_info
short_description: Describe a backup catalog - artifacts, newest full, restore chain, recoverable window and RPO
version_added: 0.1.0
description:
  - "Reads the manifests of a backup directory and answers, per backup set (engine + database): the newest
    full and newest verified full, the chain of artifacts needed to reach O(point_in_time) (or the latest
    reachable point), C(recoverable_until) and the RPO in seconds right now, gaps in the log chain,
    artifacts never verified or failed, broken manifests and leftovers of interrupted runs."
  - "At scale (a year of hourly log backups is ~200,000 manifests) RV(artifacts) lists the newest
    O(max_artifacts) manifests and the artifacts of RV(chain), while RV(sets) summarises every set; ask for
    more with O(max_artifacts)."
  - "Read-only for backups; in a directory of 1,000 manifests or more it keeps a derived index file,
    C(.opsready-catalog-index.json) (mode 0600; the manifests added, removed or changed since it was written
    are appended to it as a journal and folded into a rewritten index now and then; ignored when it is not the
    reading user's own or is damaged), so that later runs do not parse every manifest again. It is not
    written in check mode or where the directory is read-only.
    While the directory is unchanged since the index was sealed, only the manifests a run returns or reports
    in detail are checked one by one; see docs/architecture.md for what that proves."
author: opsready developers (@opsready)
options:
  path:
    description: The backup directory.
    type: path
    required: true
  engine:
    description: Only this engine's artifacts.
    type: str
    choices: [postgresql, mariadb, mysql, sqlite, sqlserver, redis, files]
  database:
    description: Only this database's artifacts (PostgreSQL base backups and WAL use V(@cluster)).
    type: str
  origin:
    description:
      - Only the backups of this source server (the manifests' C(origin); RV(sets) lists each set's C(origins)).
      - A set in a shared directory can hold backups of several servers (two hosts backing up a database of the
        same name). A chain, a restore or retention never mixes them. With O(database) given and several origins
        in its set, the module fails naming them unless O(origin) chooses one; without O(database) every origin is
        described as its own item of RV(sets) and a warning names each set with several.
      - V(unknown) names the backups written before origins were recorded, when several servers write the set;
        with one server they belong to it.
      - V(newest) (reserved) declares the set's origins B(successive) - one server whose identity changed - a
        PostgreSQL cluster upgraded with pg_upgrade or re-created with initdb (new system identifier), a renamed
        MariaDB, SQLite or file host. The set is then described from the newest origin, or from the older origin
        whose time holds O(point_in_time); a chain never crosses two origins, and a warning names the predecessors
        and when the identity changed. Refused, naming the origins and their times, when their backups overlap in
        time (every backup of an older origin must be older, by C(consistent_at), than the first of the next) -
        that is two live servers writing one set, not a succession.
    type: str
  point_in_time:
    description: ISO 8601 time with a zone; RV(chain) is then the chain reaching that point.
    type: str
  max_rpo_seconds:
    description: Fail when the RPO of any set is larger than this (or unknown), naming the set.
    type: int
  max_artifacts:
    description:
      - How many manifests RV(artifacts) lists - the newest ones, plus every artifact of RV(chain).
      - V(-1) lists every manifest (about 1 KB of result per manifest).
    type: int
    default: 100
extends_documentation_fragment:
  - opsready.operations.check_mode
seealso:
  - module: opsready.operations.db_backup
  - module: opsready.operations.backup_prune
'''

EXAMPLES = r'''
- name: Every manifest of one database, not only the newest 100
  opsready.operations.backup_info:
    path: /var/backups/opsready/mariadb
    engine: mariadb
    database: shop
    max_artifacts: -1
  register: everything

- name: What can we restore, and how old is it?
  opsready.operations.backup_info:
    path: /var/backups/opsready/pg
    database: "@cluster"
  register: catalog

- name: Alert when the RPO exceeds five minutes
  opsready.operations.backup_info:
    path: /var/backups/opsready/mariadb
    max_rpo_seconds: 300
'''

RETURN = r'''
artifacts:
  description:
    - The newest O(max_artifacts) manifests (with their path) and those of RV(chain), oldest first.
    - Every manifest when there are no more than O(max_artifacts) of them, or with O(max_artifacts=-1).
  returned: success
  type: list
  elements: dict
artifacts_total:
  description: How many manifests the selection holds (RV(artifacts) may list fewer).
  returned: success
  type: int
artifacts_truncated:
  description: True when RV(artifacts) does not list every manifest of the selection.
  returned: success
  type: bool
sets:
  description:
    - Per engine/database and source server - artifacts (count), kinds (count per kind), oldest and newest
      (artifact ids), newest_full, newest_verified_full, unverified, failed_verification, chain, chain_error,
      recoverable_until, rpo_seconds, window, log_gap, origin (the server these answers are of) and origins
      (every origin of the set; more than one when several servers write it into this directory).
    - origins_relation - C(single) (one origin), C(successive) (the origins' backups do not overlap in time, by
      C(consistent_at) - one server whose identity changed, for which O(origin=newest) and backup_prune
      O(opsready.operations.backup_prune#module:origin_succession) are accepted) or C(overlapping) (several live
      servers). origin_spans - each origin's C(origin), C(from), C(until) (its first and last C(consistent_at))
      and C(artifacts), oldest first. origin_succession - with O(origin=newest) on a succession, the warning naming
      the predecessors.
  returned: success
  type: list
  elements: dict
mixed_origins:
  description:
    - The sets that hold backups of more than one server (C(engine), C(database), C(origins),
      C(origins_relation)); not a succession that O(origin=newest) chose from.
  returned: success
  type: list
  elements: dict
newest_full:
  description: Newest usable full of the only set (null when several sets match).
  returned: success
  type: dict
chain:
  description: Artifact ids to restore in order (only set), for O(point_in_time) or the latest point.
  returned: success
  type: list
  elements: str
recoverable_until:
  description:
    - Latest point in time a restore can reach (only set); a C(stop_at) equal to it restores.
    - PostgreSQL - the last write of the newest archived WAL segment of the chain, which is after its last
      commit; a C(stop_at) between that commit and this instant recovers the whole archived WAL.
    - MariaDB/MySQL - the second of the newest binary log's last event (binary log times are whole seconds).
  returned: success
  type: str
  sample: "2026-11-29T10:14:58.000000Z"
window:
  description:
    - The instants db_restore O(point_in_time) / C(stop_at) can reach (only set). C(from) is the oldest
      usable full's consistent point, C(until) is RV(recoverable_until), C(spans) lists where restores reach
      between them, oldest first - one span unless a missing log piece leaves a hole before a newer full.
    - Every instant inside a span restores; a C(stop_at) outside every span is refused before any work, with
      the spans in the message.
  returned: success
  type: dict
  sample:
    from: "2026-11-29T00:00:12.000000Z"
    until: "2026-11-29T10:14:58.000000Z"
    spans: [{from: "2026-11-29T00:00:12.000000Z", until: "2026-11-29T10:14:58.000000Z"}]
rpo_seconds:
  description: Seconds between now and RV(recoverable_until) (only set).
  returned: success
  type: float
leftovers:
  description: Files without a manifest (interrupted runs).
  returned: success
  type: list
  elements: str
broken_manifests:
  description:
    - Manifests of O(path) that cannot be read (C(manifest), C(error)), whatever set they belong to.
    - With O(engine) and O(database), each also says whose it is - C(set) V(this) (of that set), V(other) or
      V(unknown) (its name is also another set's, as names of catalogs written before 0.10 may be; C(may_be_of)
      lists the candidates) - and the C(engine) and C(database) its torn text still holds. A manifest's own fields
      decide; its file name only where no other set's names can be the same.
  returned: success
  type: list
  elements: dict
'''

import contextlib

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_index import read_only
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog_jobs import describe
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import parse_time
from ansible_collections.opsready.operations.plugins.module_utils.engines.names import CATALOG_ENGINES


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            engine=dict(type='str', choices=list(CATALOG_ENGINES)),
            database=dict(type='str'),
            origin=dict(type='str'),
            point_in_time=dict(type='str'),
            max_rpo_seconds=dict(type='int'),
            max_artifacts=dict(type='int', default=100),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    if p['max_artifacts'] < -1:
        module.fail_json(msg='max_artifacts must be -1 (every manifest), 0 or more, not %d.' % p['max_artifacts'])
    try:
        point = parse_time(p['point_in_time'], 'point_in_time') if p['point_in_time'] else None
        # check mode writes nothing, not even the derived catalog index
        with (read_only() if module.check_mode else contextlib.nullcontext()):
            info = describe(p['path'], engine=p['engine'], database=p['database'], point=point,
                            max_artifacts=p['max_artifacts'], origin=p['origin'])
        if p['engine'] and p['database'] and info.get('broken_manifests'):
            # whose each unreadable manifest is (this set's, another's, unknown): by what its text still says, by
            # its name only where names cannot be another set's; a drill fails only on this set's (imported here:
            # the payload's imports are compiled on every run, and a catalog without broken manifests needs none)
            from ansible_collections.opsready.operations.plugins.module_utils.backup import set_files
            info['broken_manifests'] = set_files.attribute(info['broken_manifests'], p['engine'], p['database'],
                                                           set_files.directory_sets(p['path']))
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    for mixed in info['mixed_origins']:
        text = ('Backup set %s/%s in %s holds backups of %d servers (origins: %s): each is described apart, and a '
                'restore or drill of it must choose one (origin).')
        if mixed.get('origins_relation') == 'successive':
            text += (' Their backups do not overlap in time: if they are one server whose identity changed '
                     '(pg_upgrade, re-initdb, renamed host), origin: newest restores the newest (dr_drill: '
                     'dr_drill_origin: newest) and backup_prune origin_succession: true ages the old one out.')
        module.warn(text % (mixed['engine'], mixed['database'], info['directory'], len(mixed['origins']),
                            ', '.join(mixed['origins'])))
    for text in sorted({s['origin_succession'] for s in info['sets'] if s.get('origin_succession')}):
        module.warn(text)
    if p['max_rpo_seconds'] is not None:
        late = [s for s in info['sets'] if s['engine'] != 'files' and
                (s['rpo_seconds'] is None or s['rpo_seconds'] > p['max_rpo_seconds'])]
        if late:
            names = ', '.join('%s/%s%s %s' % (s['engine'], s['database'],
                                              ' (origin %s)' % s['origin'] if len(s['origins']) > 1 else '',
                                              'no restorable backup' if s['rpo_seconds'] is None
                                              else '%.0fs' % s['rpo_seconds']) for s in late)
            module.fail_json(msg='RPO above %ds: %s. Take a backup (or fix log shipping) now.' % (
                p['max_rpo_seconds'], names), changed=False, **info)
    module.exit_json(changed=False, **info)


if __name__ == '__main__':
    main()
