"""Round 9b of the DR drill audit. A newer backup that failed verification fails the drill even when the catalog
listing the drill read (backup_info's newest ``max_artifacts``) no longer holds its summary - more than 100 newer
artifacts (hourly logs) came after it: the drill passes the set's complete list of failed ids and an id alone is
judged by the time stamp in its name. A torn manifest is this set's only when its name's set part is exactly this
set's. The playbook run: tests/integration/test_drill_round9b.py."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.drill.passed_over import passed_over

OLDER = 'postgresql-app-full-20261129T110000000000Z.dump.zst'
NEWER = 'postgresql-app-full-20261129T115000000000Z.dump.zst'


def backup(**extra):
    entry = {'id': OLDER, 'chain': [OLDER], 'recoverable_until': '2026-11-29T11:00:00Z', 'failed_verification': [],
             'broken_manifests': []}
    entry.update(extra)
    return entry


def broken(name):
    return {'manifest': '/b/%s.manifest.json' % name, 'error': 'Cannot read manifest: Unterminated string'}


def test_a_failed_id_without_its_summary_is_still_passed_over():
    """The listing's newest 100 did not hold the failed full: only its id (the set's failed_verification) is known."""
    found = passed_over(backup(failed_verification=[{'id': NEWER}]))
    assert [f['id'] for f in found] == [NEWER]
    assert found[0]['at'].startswith('2026-11-29T11:50:00') and 'verification failed' in found[0]['why']


def test_a_failed_id_string_is_accepted_and_an_older_one_is_not_passed_over():
    assert [f['id'] for f in passed_over(backup(failed_verification=[NEWER]))] == [NEWER]
    older = 'postgresql-app-full-20261129T100000000000Z.dump.zst'
    assert passed_over(backup(failed_verification=[{'id': older}, older, {'id': 'notes.txt'}])) == []


def test_another_sets_torn_manifest_is_not_claimed_by_prefix():
    """Guard (passes on the old code too): ``app`` does not claim the torn manifests of ``app-2``, ``app_full``,
    ``app.old`` or ``app-full`` (whose names begin like ``app``'s), nor another engine's ``app``."""
    others = ['postgresql-app-2-full-20261129T115000000000Z.dump.zst',
              'postgresql-app_full-full-20261129T115000000000Z.dump.zst',
              'postgresql-app.old-full-20261129T115000000000Z.dump.zst',
              'postgresql-app-full-full-20261129T115000000000Z.dump.zst',
              'mariadb-app-full-20261129T115000000000Z.sql.zst']
    assert passed_over(backup(broken_manifests=[broken(n) for n in others])) == []
    assert [f['id'] for f in passed_over(backup(broken_manifests=[broken(NEWER)]))] == [NEWER]


def test_a_file_sets_torn_newer_archive_manifest_is_its_own_and_not_a_neighbours():
    """File-set archives are named <set>-<stamp>.tar...: without engine and kind no torn manifest matched, so a file
    set's drill never saw its own; ``proxy`` must not claim ``proxy-bad``'s, nor ``proxy-bad`` ``proxy``'s."""
    old, new = 'proxy-20261129T110000000000Z.tar.zst', 'proxy-20261129T115000000000Z.tar.zst'
    bad_old, bad_new = 'proxy-bad-20261129T110000000000Z.tar.zst', 'proxy-bad-20261129T115000000000Z.tar.zst'
    files = {'kind': 'files', 'recoverable_until': '2026-11-29T11:00:00Z'}
    assert [f['id'] for f in passed_over(dict(files, id=old, broken_manifests=[broken(new)]))] == [new]
    assert passed_over(dict(files, id=old, broken_manifests=[broken(bad_new)])) == []
    assert passed_over(dict(files, id=bad_old, broken_manifests=[broken(new)])) == []
    assert [f['id'] for f in passed_over(dict(files, id=bad_old, broken_manifests=[broken(bad_new)]))] == [bad_new]
    assert [f['id'] for f in passed_over(dict(files, id=old, failed_verification=[new, bad_new]))] == [new]
