"""Shapiro–Wilk W (security.normality) against scipy's, which the monitor does not call."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import shapiro

from security.normality import MIN_SIZE, coefficients, shapiro_w


@pytest.mark.parametrize("n", [MIN_SIZE, 13, 50, 100, 256, 512, 2000])
@pytest.mark.parametrize("draw", ["normal", "exponential", "uniform", "integers"])
def test_w_is_scipys_w(n, draw):
    rng = np.random.default_rng(n)
    values = rng.integers(0, 5, n) if draw == "integers" else getattr(rng, draw)(size=n)
    assert shapiro_w(values) == pytest.approx(shapiro(values).statistic, abs=1e-6)


def test_a_normal_sample_scores_higher_than_a_skewed_one():
    rng = np.random.default_rng(7)
    assert shapiro_w(rng.normal(size=256)) > 0.98 > 0.9 > shapiro_w(rng.exponential(size=256))


def test_a_constant_sample_has_nothing_to_test():
    assert shapiro_w(np.full(40, 3.0)) == 1.0


def test_too_few_values_are_refused():
    with pytest.raises(ValueError, match="at least 12"):
        coefficients(MIN_SIZE - 1)
