"""A side whose time is the one it measures itself, for bench/common.compare.

compare() times each run of a side from start to exit. Some benchmarks promise another figure: the RTO a
drill report measured (clean-up excluded), the seconds ``run_backup`` took inside its process (Python's
start-up excluded), the restore without the database's creation. ``reported(side)`` gives the side a
list to put that figure in, once per run (in the command or its ``after`` hook); compare() then sees that
figure as the run's wall time, in its rounds, ratios, spread and table. A run that reports nothing keeps
the measured wall.
"""

from __future__ import annotations

from typing import List

from common import Sample, Side


class ReportedWalls(list):
    """The side's sample list: every appended sample takes the next reported time as its wall."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: List[float] = []

    def append(self, sample: Sample) -> None:  # type: ignore[override]
        if self.pending:
            sample.wall = self.pending.pop(0)
        super().append(sample)


def reported(side: Side) -> List[float]:
    """Make ``side`` use reported times; returns the list to append each run's time to."""
    samples = ReportedWalls()
    samples.extend(side.samples)
    side.samples = samples
    return samples.pending
