"""A DR drill names what killed earlier runs had left and its steps removed: the restore into the scratch target
and the clean-up (``state: absent``) each drop a killed db_restore's marked temporary copy of that target
(``dropped_stale``), and the drill report (JSON, Markdown, HTML, the module's ``leftovers_removed``) and the console
say which, per step, instead of the clean-up step's plain "removed".

Real ansible-playbook runs of playbooks/dr_drill.yml against the harness's PostgreSQL server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.harness.playbook import REPO
from tests.integration.test_dr_drill_engines import SEED, drill, report_of

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.restore import (  # noqa: E402
    copy_marker)
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import temporary_name  # noqa: E402


def plant(db, scratch: str) -> str:
    """What a db_restore into ``scratch`` killed mid-load leaves: its temporary copy, bearing the marker."""
    name = temporary_name(scratch)[:-8] + '0badc0de'   # cut to 63 bytes as a run cuts it
    db.server.sql('CREATE DATABASE "%s"' % name, database='postgres')
    db.server.sql("COMMENT ON DATABASE \"%s\" IS '%s'" % (name, copy_marker(scratch).replace("'", "''")),
                  database='postgres')
    return name


def console(result) -> str:
    """The playbook's output with its line wrapping undone (the yaml callback folds long lines)."""
    return ' '.join(result.stdout.split())


def names(db) -> list:
    return [r[0] for r in db.server.sql('SELECT datname FROM pg_database', database='postgres')]


def test_the_report_and_console_name_the_stale_copies_the_restore_and_the_cleanup_dropped(pg_db, tmp_path):
    pg_db.sql(SEED['postgresql'])
    scratch = pg_db.name + '_drill'
    planted = []
    try:
        planted.append(plant(pg_db, scratch))
        result = drill('postgresql', pg_db, tmp_path, dr_drill_backup_first=True)
        assert result.rc == 0, result.stdout[-5000:]
        out, report = report_of(result)
        steps = {s['name']: s for s in report['databases'][0]['steps']}
        assert steps['restore']['dropped_stale'] == [planted[0]], steps['restore']
        line = 'restore step dropped database %s, left by a killed earlier db_restore' % planted[0]
        assert report['databases'][0]['leftovers_removed'] == [line]
        assert out['leftovers_removed'] == ['%s: %s' % (pg_db.name, line)]
        assert line in Path(out['paths']['markdown']).read_text()
        assert line in Path(out['paths']['html']).read_text()
        assert line in console(result) and 'left by a killed earlier run, removed' in console(result)
        assert planted[0] not in names(pg_db)

        # A restore that fails once it holds the target's lock (the artifact's checksum, compared while it loads):
        # the copy it dropped is named by its failed step.
        planted.append(plant(pg_db, scratch))
        artifacts = [p for p in (tmp_path / 'backups').rglob('*') if p.is_file() and '.dump' in p.name
                     and not p.name.endswith('.json')]
        assert len(artifacts) == 1, artifacts
        data = bytearray(artifacts[0].read_bytes())
        data[len(data) // 2] ^= 0x5A
        artifacts[0].write_bytes(bytes(data))
        result = drill('postgresql', pg_db, tmp_path)
        assert result.rc != 0
        out, report = report_of(result)
        failed = [s for s in report['databases'][0]['steps'] if not s['ok']]
        assert len(failed) == 1 and failed[0]['dropped_stale'] == [planted[1]], json.dumps(failed)
        line = '%s step dropped database %s, left by a killed earlier db_restore' % (failed[0]['name'], planted[1])
        assert report['databases'][0]['leftovers_removed'] == [line]
        assert line in Path(out['paths']['markdown']).read_text() and line in console(result)
        assert planted[1] not in names(pg_db)

        # A restore refused before it takes the lock (the artifact cut short: its size is checked up front): the
        # clean-up (state=absent of the scratch target) drops the copy, and its step says so.
        planted.append(plant(pg_db, scratch))
        artifacts[0].write_bytes(bytes(data[:len(data) // 2]))
        result = drill('postgresql', pg_db, tmp_path)
        assert result.rc != 0
        out, report = report_of(result)
        steps = {s['name']: s for s in report['databases'][0]['steps']}
        assert steps['cleanup']['ok'] and steps['cleanup']['dropped_stale'] == [planted[2]], json.dumps(steps)
        line = 'cleanup step dropped database %s, left by a killed earlier db_restore' % planted[2]
        assert report['databases'][0]['leftovers_removed'] == [line]
        assert line in Path(out['paths']['markdown']).read_text() and line in console(result)
        assert planted[2] not in names(pg_db)
    finally:
        for name in planted + [scratch]:
            pg_db.server.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name, database='postgres')
