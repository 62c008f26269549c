"""The one percentile definition the project uses: freshness reports, `streams freshness` and the bench.

Nearest rank: the p-th percentile is the smallest observed value with at least p of the values at
or below it. Every figure is a value some event really had (a p99 freshness is the freshness of a
real change, never a blend of two), and it is never below the true share it claims, which is what
a freshness promise needs. Interpolated percentiles (the bench used them before) read up to one
rank lower on small samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (any order) at `fraction` (0..1)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"a percentile is a fraction within 0..1, not {fraction}")
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]
