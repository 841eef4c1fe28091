"""Self-test of the catalog-at-scale benchmark (bench/catalog_scale.py) and of bench/common.py's spread.

No timing here (speed is shown by benchmarks, never by timed assertions): the generator must write what
the product writes, and the catalog must read it as a healthy, restorable catalog.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / 'bench'
sys.path.insert(0, str(BENCH))

import catalog_scale  # noqa: E402
import common  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.catalog import Catalog  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import (  # noqa: E402
    read_manifest, write_manifest)

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)


def test_generated_manifest_bytes_are_what_write_manifest_writes(tmp_path):
    generated = tmp_path / 'generated'
    catalog_scale.generate(generated, 50, databases=2, end=NOW)
    product = tmp_path / 'product'
    product.mkdir()
    names = sorted(p.name for p in generated.iterdir() if p.name.endswith('.manifest.json'))
    assert len(names) == 50
    for name in names:
        data = json.loads((generated / name).read_text())
        artifact = str(product / data['artifact'])
        write_manifest(artifact, data)
        assert (product / name).read_bytes() == (generated / name).read_bytes()
        assert oct((generated / name).stat().st_mode & 0o777) == oct((product / name).stat().st_mode & 0o777)


def test_generated_catalog_is_healthy_and_restorable(tmp_path):
    counts = catalog_scale.generate(tmp_path, 200, databases=4, end=NOW)
    assert counts == {'full': 12, 'log': 188}
    catalog = Catalog(str(tmp_path))
    assert catalog.broken == [] and catalog.leftovers() == []
    assert len(catalog.entries) == 200
    one = Catalog(str(tmp_path), engine='mariadb', database='app01')
    chain = one.chain_for(None)
    # the newest full, then every hourly log after it, contiguous
    assert chain[0].id == one.latest_full(verified_only=True).id
    assert [m.kind for m in chain[1:]] == ['log'] * (len(chain) - 1) and len(chain) > 1
    assert one.gap_after(one.log_sequence_from(chain[0])) is None
    assert read_manifest(chain[0].manifest_path).data == chain[0].data


@pytest.mark.parametrize('operation', sorted(catalog_scale.OPERATIONS))
def test_every_operation_runs_on_a_small_catalog(tmp_path, operation):
    catalog_scale.generate(tmp_path, 120, databases=3)
    result = catalog_scale.OPERATIONS[operation](str(tmp_path))
    assert json.dumps(result)
    if operation == 'drill_find_backup':
        assert result['chain'] >= 2 and result['recoverable_until']
    if operation == 'backup_info':
        assert result == {'artifacts': 120, 'listed': 100, 'sets': 3}


def test_measure_op_and_tables(tmp_path):
    catalog_scale.generate(tmp_path / 'c', 40, databases=2)
    result = catalog_scale.measure_op('floor_stat', tmp_path / 'c', runs=1, max_rounds=1, timeout=120,
                                      log=lambda text: None)
    assert result['rounds'] == 1 and not result['timed_out'] and len(result['load']) == 2
    result.update(n=40, met=True)
    assert 'floor_stat' in catalog_scale.format_table([result])
    assert catalog_scale.markdown_table([result]).count('\n') == 2


def test_median_interval_and_spread():
    assert common.median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)      # n < 5: min..max
    assert common.median_interval([float(i) for i in range(1, 11)]) == (2.0, 9.0)
    assert common.relative_spread([1.0]) is None
    assert common.relative_spread([1.0, 1.0, 1.0]) == 0.0
    # more rounds of the same noise narrow the interval (the reason rounds are added)
    noisy = [1.0, 1.3, 0.8, 1.1, 0.9, 1.2, 1.0, 1.05, 0.95, 1.1, 0.9, 1.0, 1.02, 0.98, 1.01, 0.99]
    assert common.relative_spread(noisy) < common.relative_spread(noisy[:5])
    assert common.paired_ratios([2.0, 3.0], [1.0, 0.0]) == [2.0]


def test_compare_adds_rounds_until_the_spread_is_small():
    ours = common.Side(label='ours', command=['true'])
    raw = common.Side(label='raw', command=['true'])
    rows = common.compare('noop', ours, [raw], [common.Target(100.0)], runs=3, max_rounds=4, log=lambda t: None)
    row = rows[0]
    assert 3 <= row.runs <= 4 and len(row.ours_walls) == row.runs == len(row.raw_walls)
    assert row.load is not None and len(row.load) == 2 and row.spread is not None
    assert 'spread' in common.format_table(rows) and 'load' in common.markdown_table(rows)
