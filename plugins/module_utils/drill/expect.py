# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Smoke-query expectations: a drill proves the restored data is usable, not only present.

A query returns rows as a list of dicts (column name to value; numeric text becomes a number). An
expectation is a dict with any of:

* ``rows_at_least`` / ``rows_at_most``: bounds on the number of rows returned;
* ``value_at_least`` / ``value_at_most`` / ``value_equals``: the first column of the first row
  (``SELECT count(*) FROM orders`` with ``value_at_least: 1000``);
* ``jmespath``: an expression evaluated on the rows that must be true (``"[0].n >= `1000`"``,
  ``"length([?status=='paid']) > `0`"``).

A query with no expectation (none of the keys set) must return at least one row (``DEFAULT``): without it,
``SELECT * FROM orders`` passed on a restored copy without a single order.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

KEYS = ('rows_at_least', 'rows_at_most', 'value_at_least', 'value_at_most', 'value_equals', 'jmespath')
DEFAULT: Dict[str, Any] = {'rows_at_least': 1}


def effective(expect: Dict[str, Any]) -> Dict[str, Any]:
    """The expectation a query is judged by: the keys set (``None`` is unset), else ``DEFAULT``."""
    given = {k: v for k, v in (expect or {}).items() if v is not None and v != ''}
    return given or dict(DEFAULT)


def coerce(value: Any) -> Any:
    """Client tools print text: turn '42' into 42 and '4.5' into 4.5, leave anything else."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return value
    if math.isnan(number) or math.isinf(number):
        return value
    return number


def check_expectation(expect: Dict[str, Any]) -> None:
    unknown = sorted(set(expect) - set(KEYS))
    if unknown:
        raise OpsReadyError('Unknown smoke-query expectation %s: use %s.' % (', '.join(unknown), ', '.join(KEYS)))


def _number(value: Any, key: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise OpsReadyError('%s needs a number, got %r.' % (key, value))


def evaluate(rows: List[Dict[str, Any]], expect: Dict[str, Any]) -> Tuple[bool, List[str]]:
    """(passed, the reasons it did not) for ``rows`` against ``expect``."""
    check_expectation(expect)
    reasons: List[str] = []
    count = len(rows)
    if expect.get('rows_at_least') is not None and count < int(expect['rows_at_least']):
        reasons.append('returned %d rows, expected at least %s' % (count, expect['rows_at_least']))
    if expect.get('rows_at_most') is not None and count > int(expect['rows_at_most']):
        reasons.append('returned %d rows, expected at most %s' % (count, expect['rows_at_most']))
    value_keys = [k for k in ('value_at_least', 'value_at_most', 'value_equals') if expect.get(k) is not None]
    if value_keys:
        if not rows or not rows[0]:
            reasons.append('returned no value, expected %s' % ', '.join('%s %s' % (k, expect[k]) for k in value_keys))
        else:
            value = coerce(next(iter(rows[0].values())))
            if expect.get('value_equals') is not None and value != coerce(expect['value_equals']) \
                    and str(value) != str(expect['value_equals']):
                reasons.append('returned %r, expected %r' % (value, expect['value_equals']))
            for key, ok in (('value_at_least', lambda v, b: v >= b), ('value_at_most', lambda v, b: v <= b)):
                if expect.get(key) is None:
                    continue
                bound = _number(expect[key], key)
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    reasons.append('returned %r, not a number to compare with %s %s' % (value, key, expect[key]))
                elif not ok(value, bound):
                    wording = key.replace('_', ' ').replace('value ', '')
                    reasons.append('returned %s, expected %s %s' % (value, wording, expect[key]))
    if expect.get('jmespath'):
        try:
            import jmespath
        except ImportError:
            raise OpsReadyError('The jmespath expectation needs the Python package jmespath on the managed host: '
                                'pip install jmespath (or use rows_at_least/value_at_least).')
        try:
            compiled = jmespath.compile(expect['jmespath'])
        except Exception as exc:  # jmespath.exceptions.ParseError
            raise OpsReadyError('jmespath expression %r is invalid: %s' % (expect['jmespath'], exc))
        try:
            outcome = compiled.search(rows)
        except Exception as exc:  # comparing text with numbers and the like
            reasons.append('jmespath %r could not be evaluated on the rows: %s' % (expect['jmespath'], exc))
        else:
            if not outcome:
                reasons.append('jmespath %r was %r on the rows' % (expect['jmespath'], outcome))
    return not reasons, reasons
