"""Changelog fragments as antsibull-changelog and the production lint profile want them.

antsibull-changelog lists new modules, plugins, roles and playbooks itself (from the collection's
contents at release time), so a fragment line announcing one shows it twice; ansible-lint's yaml rule
limits lines to 160 characters; a release needs a ``release_summary``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
FRAGMENTS = sorted((REPO / 'changelogs' / 'fragments').glob('*.y*ml'))
CONFIG = yaml.safe_load((REPO / 'changelogs' / 'config.yaml').read_text())
SECTIONS = {name for name, _title in CONFIG['sections']} | {CONFIG['prelude_section_name'], 'trivial'}
# "db_backup - new module ...", "log_rotation - new role and playbook ...", "json_log - new callback ..."
# and "backup role and playbooks/backup.yml - ..." (a role and playbook announced by name).
NEW_CONTENT = re.compile(r'^[\w.\-]+(?: (?:role|playbook|module|plugin|callback|filter))? - new '
                         r'(?:module|role|plugin|playbook|callback|filter|lookup|inventory|test)s?\b'
                         r'|^[\w.\-]+ role and playbooks?/', re.I)


def _ids(paths):
    return [p.name for p in paths]


@pytest.mark.parametrize('path', FRAGMENTS, ids=_ids(FRAGMENTS))
def test_fragment_lines_fit_the_lint_limit(path):
    long = [n for n, line in enumerate(path.read_text().splitlines(), 1) if len(line) > 160]
    assert not long, '%s: lines over 160 characters (wrap them, YAML folds them back): %s' % (path.name, long)


@pytest.mark.parametrize('path', FRAGMENTS, ids=_ids(FRAGMENTS))
def test_fragment_sections_and_entries(path):
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data, '%s is not a mapping of sections' % path.name
    for section, entries in data.items():
        assert section in SECTIONS, '%s: unknown section %r (changelogs/config.yaml)' % (path.name, section)
        if section == CONFIG['prelude_section_name']:
            assert isinstance(entries, str) and entries.strip(), '%s: release_summary must be one text' % path.name
            continue
        assert isinstance(entries, list) and entries, '%s: %s must be a list' % (path.name, section)
        for entry in entries:
            assert isinstance(entry, str), '%s: %s entry is not text: %r' % (path.name, section, entry)
            assert not NEW_CONTENT.search(entry), (
                '%s: %r announces new content; antsibull-changelog lists new modules, plugins, roles and '
                'playbooks itself: drop the line' % (path.name, entry[:80]))


def test_pending_changes_have_a_release_summary():
    if not FRAGMENTS:
        pytest.skip('no unreleased fragments')
    summaries = [p.name for p in FRAGMENTS if CONFIG['prelude_section_name'] in (yaml.safe_load(p.read_text()) or {})]
    assert len(summaries) == 1, 'exactly one fragment must carry the release_summary, found: %s' % summaries
