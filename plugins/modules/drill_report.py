#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: drill_report
short_description: Judge a DR drill against its RTO/RPO objectives and write JSON, Markdown and HTML reports
version_added: 0.1.0
description:
  - Takes the steps a DR drill ran for each database (as the role C(opsready.operations.dr_drill) collects them),
    measures the RTO (start of verification to the end of the integrity check and smoke queries) and the RPO
    (drill start minus the newest point the restored chain reaches), and judges both against the objectives.
  - "A newest point more than 5 s after the restore could have read the catalog (its C(catalog_read_at), else the
    end of the restore step, else the drill start) means a clock is ahead (backup host, database server or
    controller) or a time was written by hand: the RPO is then unknown (V(not_measured), C(rpo_seconds) null) and
    the drill fails saying so, instead of an RPO of 0 s."
  - "Writes atomically into O(report_dir): C(drill-<timestamp>.json) (every step with start, end and result; RTO,
    RPO, objectives, verdicts, backup used, tool versions), C(drill-<timestamp>.md) (a Markdown summary) and
    C(drill-<timestamp>.html), a self-contained page (no scripts, no external assets) with the verdict banner,
    RTO and RPO bars against their objectives, a timeline of the steps and the trend over earlier drills, then
    appends one line to the history C(drills.jsonl)."
  - The module does not fail when the drill failed; it returns RV(passed) and RV(reasons) so the play can write
    the report first and fail afterwards (the role does).
author: opsready developers (@opsready)
options:
  report_dir:
    description:
      - Directory for the reports and the history file; created if missing.
      - Refused, before anything is written, when an account other than root owns or can write a directory above
        it (or a link on the way lives in one) - it could link the name to a directory of root's.
    type: path
    required: true
  started:
    description: When the drill started (ISO 8601 with a zone); the RPO is measured from it.
    type: str
    required: true
  finished:
    description: When the drill ended. Defaults to now.
    type: str
  title:
    description: Title of the report.
    type: str
    default: DR drill
  databases:
    description:
      - One entry per database (or file set) drilled.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Label of the database in the report.
        type: str
        required: true
      engine:
        description: Engine (V(postgresql), V(mariadb), V(sqlite), V(files), ...).
        type: str
        required: true
      source:
        description: The source database (server and name, or path).
        type: str
      scratch:
        description: The scratch target the backup was restored into.
        type: str
      backup:
        description:
          - "The backup used: C(id), C(started), C(finished), C(recoverable_until) (required for the RPO),
            C(chain) (artifact ids), C(size), C(path)."
        type: dict
        default: {}
      steps:
        description:
          - "The steps in order, each with C(name) (V(find_backup), V(verify), V(restore), V(integrity), V(smoke),
            V(cleanup)), C(started), C(finished), C(ok), and C(result) or C(error)."
          - "A step may carry C(dropped_stale) (databases) and C(removed_scratch) (directories), what a killed
            earlier run had left and the step removed; they are listed in RV(leftovers_removed) and the reports."
          - "A step may carry C(warnings), a list of what it could not do completely (a restore that could not
            apply a database property or load an object the source held). They do not fail the drill; they are
            listed in the C(warnings) of the database's entry in RV(databases), counted in RV(verdict_line) and
            shown in the Markdown and HTML reports under the verdict."
        type: list
        elements: dict
        default: []
      objectives:
        description:
          - "C(rto_seconds) (default 3600) and C(rpo_seconds) (default 300), in seconds. 0 is an objective (no
            downtime, no loss allowed), not unset; an unset (absent or null) one is the default and the reports say
            so. Anything else than a finite number of seconds, 0 or more, fails the module naming the database."
        type: dict
        default: {}
      drilled:
        description:
          - "What was drilled and against which objectives (the dr_drill role - C(kind), C(name), C(engine),
            C(backup_dir), C(database), C(origin), C(pitr), C(stop_at), C(from_offsite), C(rto_seconds),
            C(rpo_seconds)), kept as given in the JSON report. C(dr_drill_min_interval) lets a recent passing drill
            stand in for a database only when this matches exactly."
        type: dict
      tool_versions:
        description: Versions of the tools the drill used.
        type: dict
        default: {}
      measured:
        description:
          - "Figures observed by the drill itself (M(opsready.operations.failover_drill)): C(rto_seconds),
            C(rpo_seconds), C(lost_commits), C(acknowledged). When set, they are judged instead of the backup and
            step based figures; C(objectives.lost_commits) also bounds the lost commits (a switchover drill: 0)."
        type: dict
      recovered:
        description:
          - "The instant the restored copy was read back to hold, as C(db_restore) returned it in C(recovered_point):
            C(at) (ISO 8601) and C(source) (how it was read). When set, the RPO is measured from it instead of
            C(backup.recoverable_until); both figures are reported and a difference over 1 s is flagged."
        type: dict
        default: {}
      stop_at:
        description:
          - The instant a drill of a chosen past point asked for. The RPO is then measured from it, and the drill
            fails when C(recovered.at) is later.
        type: str
  history_limit:
    description: How many drills (including this one) the trend charts show.
    type: int
    default: 30
  warnings_fail:
    description:
      - Fail a database's drill for each of its steps' C(warnings) (what the drill could not prove or the restore
        could not apply), each becoming one of RV(reasons). By default they are listed beside a passing verdict.
    type: bool
    default: false
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - In check mode the verdict is computed and returned, nothing is written.
seealso:
  - module: opsready.operations.drill_step
  - module: opsready.operations.db_restore
'''

EXAMPLES = r'''
- name: Write the drill report
  opsready.operations.drill_report:
    report_dir: /var/lib/opsready/reports
    started: "{{ drill_started }}"
    databases:
      - name: app
        engine: postgresql
        source: db1:5432/app
        scratch: app_drill
        backup:
          id: postgresql-app-full-20261129T004512123456Z.dump.zst
          recoverable_until: "2026-11-29T00:45:12.123456Z"
        objectives: {rto_seconds: 3600, rpo_seconds: 300}
        steps:
          - {name: verify, started: "2026-11-29T01:00:00Z", finished: "2026-11-29T01:00:04Z", ok: true}
          - {name: restore, started: "2026-11-29T01:00:04Z", finished: "2026-11-29T01:01:10Z", ok: true}
          - {name: integrity, started: "2026-11-29T01:01:10Z", finished: "2026-11-29T01:01:30Z", ok: true}
          - {name: smoke, started: "2026-11-29T01:01:30Z", finished: "2026-11-29T01:01:31Z", ok: true}
  register: report

- name: Fail the job when an objective was breached
  ansible.builtin.fail:
    msg: "{{ report.verdict_line }}: {{ report.reasons | join('; ') }}"
  when: not report.passed
'''

RETURN = r'''
passed:
  description: Whether every database met both objectives and every step passed.
  returned: success
  type: bool
verdict:
  description: V(PASSED) or V(FAILED).
  returned: success
  type: str
verdict_line:
  description: One line for logs and chat.
  returned: success
  type: str
  sample: "DR drill PASSED: 1/1 passed; demo RTO 0.41 s/1 h 0 min RPO 2.10 s/5 min 0 s"
reasons:
  description: Why the drill failed, one entry per problem, prefixed with the database.
  returned: success
  type: list
  elements: str
leftovers_removed:
  description:
    - What killed earlier runs had left and the drill's steps removed, prefixed with the database - the databases a
      step's C(dropped_stale) names (a killed db_restore's temporary copy or aside database, full copies of the
      data) and the scratch directories its C(removed_scratch) names (decrypted, decompressed copies).
    - Also in each database's entry of RV(databases), the Markdown and the HTML report.
  returned: success
  type: list
  elements: str
paths:
  description: The files written (C(json), C(markdown), C(html), C(history)); in check mode, the files that would be.
  returned: success
  type: dict
databases:
  description:
    - Per database, what C(Test-DbaLastBackup) reports (C(source_server), C(test_target), C(restore_result),
      C(integrity_result), C(restore_start)/C(restore_end)/C(restore_elapsed), C(integrity_start)/C(integrity_end)/
      C(integrity_elapsed), C(backup_dates), C(backup_files), C(file_exists), C(size)) plus C(rto_seconds),
      C(rpo_seconds), C(rto_verdict), C(rpo_verdict) (V(pass), V(fail), V(not_measured)), C(objectives), C(passed).
    - C(recovered_point) (the instant read back from the restored data, or null), C(rpo_claimed_seconds) (the RPO
      by the catalog's C(recoverable_until)) and C(rpo_flag) (why the two differ by more than 1 s, or null).
    - C(objectives_defaulted), the objectives (V(rpo_seconds), V(rto_seconds)) that were not set and were judged at
      their default.
    - C(warnings), what the steps could not do completely (prefixed with the step), an empty list when nothing -
      also what a passing drill did not prove - no smoke query ran (C(smoke:)), the restored tables and rows were
      not compared with the source because logs were replayed or a point in time restored (C(integrity:)), and a
      C(find_backup) that took more than a tenth of the RTO objective (C(find_backup:)).
    - C(rto_from), the step the RTO is measured from (C(find_backup), reading the catalog, is not part of the RTO),
      and C(find_backup_seconds), the time it took (null without one); both are in the Markdown and HTML reports.
  returned: success
  type: list
  elements: dict
report:
  description: The full machine-readable report (the content of the JSON file).
  returned: success
  type: dict
'''

import os

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.files import safeio
from ansible_collections.opsready.operations.plugins.module_utils.drill import report as drill


def main():
    module = AnsibleModule(
        argument_spec=dict(
            report_dir=dict(type='path', required=True),
            started=dict(type='str', required=True),
            finished=dict(type='str'),
            title=dict(type='str', default='DR drill'),
            databases=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                engine=dict(type='str', required=True),
                source=dict(type='str'),
                scratch=dict(type='str'),
                backup=dict(type='dict', default={}),
                steps=dict(type='list', elements='dict', default=[]),
                objectives=dict(type='dict', default={}),
                tool_versions=dict(type='dict', default={}),
                measured=dict(type='dict'),
                recovered=dict(type='dict', default={}),
                stop_at=dict(type='str'),
                drilled=dict(type='dict'),
            )),
            history_limit=dict(type='int', default=30),
            warnings_fail=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    p = module.params
    if p['history_limit'] < 1:
        module.fail_json(msg='history_limit must be 1 or more, not %d.' % p['history_limit'])
    try:
        report = drill.build_report(p['databases'], p['started'], p['finished'], title=p['title'],
                                    warnings_fail=p['warnings_fail'])
        if module.check_mode:
            safeio.check_parents(os.path.abspath(p['report_dir']), 'write drill reports into', 'report_dir')
            paths = drill.report_paths(p['report_dir'], report)
        else:
            paths = drill.write_report(p['report_dir'], report, history_limit=p['history_limit'])
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    module.exit_json(changed=True, passed=report['passed'], verdict=report['verdict'],
                     verdict_line=report['verdict_line'], reasons=report['reasons'], paths=paths,
                     leftovers_removed=report['leftovers_removed'],
                     databases=[drill.test_summary(db) for db in report['databases']], report=report)


if __name__ == '__main__':
    main()
