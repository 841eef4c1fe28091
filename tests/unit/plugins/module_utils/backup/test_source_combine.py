"""source.combine: what the source held both before and after the dump; has_rows over the exact limit."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup import source
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import IntegrityError


def test_combine_takes_the_lesser_counts():
    before = {'tables': 3, 'non_empty_tables': 2, 'rows_estimate': 10, 'measured_at': 'a'}
    after = {'tables': 2, 'non_empty_tables': 0, 'rows_estimate': 0, 'measured_at': 'b'}
    merged = source.combine(before, after)
    assert merged['tables'] == 2 and merged['non_empty_tables'] == 0 and merged['rows_estimate'] == 0
    assert merged['measured_at'] == 'a' and merged['measured_after'] == 'b'
    # Emptied while the dump ran: an artifact without data is what the source held, not a loss.
    assert source.compare(merged, {'tables': 2, 'insert_statements': 0}, 'x', 'x')['source_check'] == 'ok'


def test_combine_unknown_or_failed_side():
    before = {'tables': 600, 'non_empty_tables': None, 'has_rows': True, 'rows_estimate': 5}
    assert source.combine(before, {'tables': 600, 'non_empty_tables': 3})['non_empty_tables'] is None
    assert 'has_rows' not in source.combine(before, {'tables': 600, 'non_empty_tables': 3})
    assert source.combine(before, {'error': 'gone'}) == before
    assert source.combine({'error': 'down'}, before) == {'error': 'down'}
    assert source.combine(None, None) is None


def test_has_rows_decides_over_estimates():
    stale = {'tables': 600, 'non_empty_tables': None, 'has_rows': False, 'rows_estimate': 600}
    assert source.compare(stale, {'tables': 600, 'data_tables': 0}, 'x', 'x')['source_check'] == 'ok'
    with pytest.raises(IntegrityError):
        source.compare(dict(stale, has_rows=True), {'tables': 600, 'data_tables': 0}, 'x', 'x')
