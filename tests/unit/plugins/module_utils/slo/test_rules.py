"""The rules generator's expressions and refusals (promtool runs on the generated files in
tests/integration/test_prometheus_rules.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.slo import definitions, exposition, rules
from tests.harness.promtool import check_metrics


def _slo(**kw):
    spec = {'name': 'api', 'sli': 'availability', 'objective': 99.95, 'check': 'api "v2"'}
    spec.update(kw)
    return definitions.parse([spec])[0]


def test_error_ratio_per_source_and_sli():
    assert rules.error_ratio_expr(_slo(), '1h') == \
        '1 - avg_over_time(opsready_health_check_up{check="api \\"v2\\""}[1h])'
    assert rules.error_ratio_expr(_slo(sli='error_rate', objective=99.9), '5m') == \
        'avg_over_time(opsready_health_check_error_ratio{check="api \\"v2\\""}[5m])'
    prom = dict(check=None, source='prometheus', total_query='req_total{job="a"}')
    assert rules.error_ratio_expr(_slo(bad_query='req_total{job="a",code=~"5.."}', **prom), '6h') == \
        'sum(rate(req_total{job="a",code=~"5.."}[6h])) / sum(rate(req_total{job="a"}[6h]))'
    assert rules.error_ratio_expr(_slo(good_query='ok_total', **prom), '5m') == \
        '1 - (sum(rate(ok_total[5m])) / sum(rate(req_total{job="a"}[5m])))'
    lat = _slo(check=None, source='prometheus', sli='latency', objective=95, threshold_ms=200, bucket_query='d_bucket')
    assert rules.error_ratio_expr(lat, '30m') == \
        '1 - (sum(rate(d_bucket{le="0.2"}[30m])) / sum(rate(d_bucket{le="+Inf"}[30m])))'
    assert rules.with_matcher('x{ }', 'le', '1') == 'x{le="1"}'
    assert rules._le_text(_slo(check=None, source='prometheus', sli='latency', objective=95, threshold_ms=1000,
                               bucket_query='d_bucket')) == '1'


def test_slo_group_has_a_ratio_per_window_and_the_workbook_alerts():
    group = rules.slo_group(_slo(sli='latency', objective=95, threshold_ms=200), 50)
    records = [r['record'] for r in group['rules'] if 'record' in r]
    assert records[0] == rules.LATENCY_OVER
    assert [r.rsplit('rate', 1)[1] for r in records[1:]] == ['5m', '30m', '1h', '6h', '3d', '30d']
    alerts = [r for r in group['rules'] if 'alert' in r]
    assert [(a['labels']['severity'], a['labels']['long_window'], a['labels']['short_window'])
            for a in alerts[:3]] == [('page', '1h', '5m'), ('ticket', '6h', '30m'), ('ticket', '3d', '6h')]
    assert ' > (14.4 * 0.05) and ' in alerts[0]['expr']
    assert alerts[3]['alert'] == 'OpsreadySloErrorBudgetSpent' and alerts[3]['expr'].endswith('>= (0.5 * 0.05)')


def test_refusals_name_the_problem():
    with pytest.raises(OpsReadyError, match='not a metric selector'):
        rules.build([_slo(check=None, source='prometheus', total_query='sum(x)', bad_query='y')])
    with pytest.raises(OpsReadyError, match='unknown key'):
        rules.thresholds({'disk': 1})
    with pytest.raises(OpsReadyError, match='more than 0'):
        rules.thresholds({'rpo_minutes': 0})
    with pytest.raises(OpsReadyError, match='exactly one of alert or record'):
        rules.build([], extra=[{'expr': 'up == 0'}])
    with pytest.raises(OpsReadyError, match='unknown key'):
        rules.build([], extra=[{'alert': 'A', 'expr': 'up == 0', 'severity': 'x'}])


def test_rpo_rule_only_when_an_rpo_is_set_and_insight_rows_render(monkeypatch):
    names = [r.get('alert') for r in rules.backup_group(rules.thresholds({}))['rules']]
    assert 'OpsreadyRpoBreached' not in names
    names = [r.get('alert') for r in rules.backup_group(rules.thresholds({'rpo_minutes': 15}))['rules']]
    assert 'OpsreadyRpoBreached' in names
    assert [g['name'] for g in rules.build([])['groups']] == ['opsready-host', 'opsready-backup']
    monkeypatch.setattr(rules, 'INSIGHT_RULES', [
        {'alert': 'OpsreadyX', 'expr': 'opsready_x > 1', 'for': '5m', 'summary': 's'},
        {'record': 'opsready:x:rate5m', 'expr': 'rate(opsready_x_total[5m])'}])
    group = rules.build([], host=False, backup=False)['groups'][0]
    assert group['name'] == 'opsready-insights'
    assert group['rules'][0] == {'alert': 'OpsreadyX', 'expr': 'opsready_x > 1', 'for': '5m',
                                 'labels': {'severity': 'warning'}, 'annotations': {'summary': 's', 'description': 's'}}


def test_slo_textfile_passes_promtool_check_metrics_with_every_family():
    text = exposition.sample_text(1764000000.0)
    check_metrics(text, 'slo_report textfile')
    source = Path(exposition.__file__).read_text()
    in_code = {'opsready_slo_' + name for name in re.findall(r"exp\.add\('(\w+)'", source)}
    assert {f.name for f in text_string_to_metric_families(text)} == in_code
