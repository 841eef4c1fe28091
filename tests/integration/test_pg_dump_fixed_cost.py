"""The fixed cost of a PostgreSQL ``db_backup kind=full`` around pg_dump (issue 22): the source summary (before and
after the dump) is one psql each, not two, and the WAL position, the database's properties and pg_dump's version
are read side by side before pg_dump starts, not one after the other. What the manifest records is unchanged."""

from __future__ import annotations

import sys

from tests.harness.playbook import REPO

sys.path.insert(0, str(REPO / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.backup.jobs import run_backup  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.base import BackupOptions  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.engines.registry import get_engine  # noqa: E402
from tests.integration.test_pg_base_facts_overlap import timeline  # noqa: E402,F401  # pylint: disable=unused-import
from tests.integration.test_pg_base_server_compressed import params  # noqa: E402


def test_programs_before_pg_dump_run_side_by_side(pg_db, tmp_path, timeline):  # noqa: F811
    pg_db.sql('CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept SELECT generate_series(1, 10); '
              'CREATE TABLE empty (id int)')
    result = run_backup(get_engine('postgresql', params(pg_db.server)),
                        BackupOptions(kind='full', dest=str(tmp_path / 'b'), database=pg_db.name), verify=True)
    manifest = result['manifest']
    assert manifest['verification']['ok'] is True, manifest['verification']
    # what the manifest records is what it recorded before
    source = manifest['source']
    assert source['tables'] == 2 and source['non_empty_tables'] == 1 and 'error' not in source, source
    assert manifest['position']['lsn'] and manifest['position']['wal_file'] and manifest['tool']['version']
    assert manifest['database_properties'].get('owner'), manifest['database_properties']
    dump = [r for r in timeline if r[0] == 'pg_dump' and r[1] == ['-F']]
    assert len(dump) == 1, timeline
    before = [r for r in timeline if r[2] < dump[0][2] and r[1] != ['-F']]
    after = [r for r in timeline if r[2] > dump[0][2] and r[0] == 'psql']
    # facts, the summary, position, properties (psql) and pg_dump --version before; the summary after
    assert sorted(r[0] for r in before) == ['pg_dump'] + ['psql'] * 4, timeline
    assert len(after) == 1, timeline
    # the last three before pg_dump overlap (each starts before the others have all ended)
    last = sorted(before, key=lambda r: r[2])[-3:]
    assert max(r[2] for r in last) < min(r[3] for r in last), 'one after the other: %s' % timeline
