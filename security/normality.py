"""The Shapiro–Wilk W statistic, fast enough to run on every model call.

scipy.stats.shapiro answers in about 500 µs for 256 values, most of it fixed overhead; the
extraction monitor tests its distances once per request, so W is computed here with Royston's
(1992) approximation of the coefficients (the one scipy's swilk uses for n > 11), cached per
sample size: a sort and a dot product per test. tests/security/test_normality.py holds it to
scipy's W. Only the statistic is computed, not its p-value: the monitor compares W with a
threshold, as PRADA does.
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np

MIN_SIZE = 12  # below this Royston's coefficients need other corrections; the monitor waits
# Royston's polynomials in u = 1/sqrt(n) for the two outermost coefficients.
_LAST = (0.221157, -0.147981, -2.071190, 4.434685, -2.706056)
_SECOND_LAST = (0.042981, -0.293762, -1.752461, 5.682633, -3.582633)


@functools.lru_cache(maxsize=64)
def coefficients(n: int) -> np.ndarray:
    """The n Shapiro–Wilk coefficients a_i (ascending order statistics), read-only."""
    if n < MIN_SIZE:
        raise ValueError(f"Shapiro-Wilk needs at least {MIN_SIZE} values, got {n}")
    normal = NormalDist()
    m = np.array([normal.inv_cdf((i - 0.375) / (n + 0.25)) for i in range(1, n + 1)])
    c = m / math.sqrt(float(m @ m))
    u = 1 / math.sqrt(n)
    last = c[-1] + sum(k * u ** (p + 1) for p, k in enumerate(_LAST))
    second = c[-2] + sum(k * u ** (p + 1) for p, k in enumerate(_SECOND_LAST))
    phi = (m @ m - 2 * m[-1] ** 2 - 2 * m[-2] ** 2) / (1 - 2 * last ** 2 - 2 * second ** 2)
    a = m / math.sqrt(phi)
    a[-1], a[-2], a[0], a[1] = last, second, -last, -second
    a.setflags(write=False)
    return a


def shapiro_w(values: np.ndarray) -> float:
    """W in (0, 1]: near 1 for a normal sample; 1.0 for a constant one (nothing to test)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    centred = x - x.mean()
    spread = float(centred @ centred)
    if spread <= 0.0:
        return 1.0
    return min(1.0, float(coefficients(len(x)) @ x) ** 2 / spread)
