"""Prometheus' own linter on every textfile the tests see.

``promtool check metrics`` (Debian's ``prometheus`` package, bindep.txt [test]) is what a Prometheus
operator runs on an exporter's output: counters end in ``_total`` and nothing else does, units are base
units (seconds, bytes). On top of it the conventions promtool does not check: fractions are 0-1
``*_ratio`` (never ``*_percent``), points in time are ``*_timestamp_seconds``.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from typing import Union

from prometheus_client.parser import text_string_to_metric_families

HINT = 'promtool is missing: install Debian\'s prometheus package (bindep.txt [test], `make setup-test`)'


def promtool() -> str:
    path = shutil.which('promtool')
    if path is None:
        raise AssertionError(HINT)
    return path


def check_metrics(text: str, what: str = 'textfile') -> None:
    """AssertionError naming every problem promtool or the conventions find in ``text``."""
    run = subprocess.run([promtool(), 'check', 'metrics'], input=text, capture_output=True, text=True,
                         timeout=60, check=False)
    problems = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    if run.returncode != 0 or problems:
        raise AssertionError('promtool check metrics on %s (exit %d):\n  %s\n--- text ---\n%s'
                             % (what, run.returncode, '\n  '.join(problems), text))
    for family in text_string_to_metric_families(text):
        if family.name.endswith('_percent'):
            raise AssertionError('%s: %s is a percent; expose a 0-1 *_ratio instead' % (what, family.name))
        for sample in family.samples:
            if family.name.endswith('_ratio') and not (math.isnan(sample.value) or 0 <= sample.value <= 1):
                raise AssertionError('%s: %s = %r is not a 0-1 ratio' % (what, family.name, sample.value))
            if family.name.endswith('_timestamp_seconds') and not sample.value > 1e9:
                raise AssertionError('%s: %s = %r is not a Unix time' % (what, family.name, sample.value))


def check_textfile(path: Union[str, Path]) -> str:
    """Check a written ``.prom`` file; returns its text for the test's own assertions."""
    text = Path(path).read_text(encoding='utf-8')
    check_metrics(text, str(path))
    return text
