"""Number-of-factors criteria against psych 2.2.9 on BFI (../shared/reference/fa.out): they
disagree there (parallel analysis 6, Velicer's MAP 5, very simple structure 4), as psych's do."""

from __future__ import annotations

import numpy as np
import pytest

import ppgen
from ppgen.evaluate import parallel_analysis, velicer_map, very_simple_structure


@pytest.fixture(scope="module")
def bfi():
    return ppgen.datasets.load("bfi").iloc[:, :25]


def test_velicer_map_matches_psych(bfi):
    # psych VSS(bfi, n=8): map 0.024 0.018 0.017 0.015 0.015 0.016 0.019 0.022, minimum at 5.
    result = velicer_map(bfi, max_factors=8)
    assert result.n_factors == 5
    printed = [0.024, 0.018, 0.017, 0.015, 0.015, 0.016, 0.019, 0.022]
    np.testing.assert_allclose(result.values, printed, atol=5e-4 + 1e-12)


def test_parallel_analysis_matches_psych(bfi):
    # psych fa.parallel(bfi, fm="minres", fa="fa"): 6 factors (set.seed(1); ours is seeded).
    result = parallel_analysis(bfi, n_iter=20, seed=0)
    assert result.n_factors == 6
    assert result.observed[5] > result.simulated[5] and result.observed[6] <= result.simulated[6]
    # The eigenvalues of uncorrelated normal data of BFI's shape are small and decreasing.
    assert np.all(np.diff(result.simulated_mean) < 0) and result.simulated_mean[0] < 0.5
    assert parallel_analysis(bfi, n_iter=3, seed=1).n_factors == 6


def test_very_simple_structure_matches_psych(bfi):
    # psych VSS(bfi, n=8, rotate="oblimin", fm="minres"): complexity 1 peaks at 4 factors
    # (0.58), complexity 2 at 4 (0.69); the printed columns vss1, vss2:
    result = very_simple_structure(bfi, 8)
    assert result.n_factors == {1: 4, 2: 4}
    vss1 = [0.49, 0.54, 0.56, 0.58, 0.52, 0.51, 0.45, 0.44]
    vss2 = [0.61, 0.65, 0.69, 0.67, 0.63, 0.60, 0.57]  # factors 2..8
    np.testing.assert_allclose(result.values[:, 0], vss1, atol=0.005 + 1e-12)
    np.testing.assert_allclose(result.values[1:, 1], vss2, atol=0.005 + 1e-12)
    assert np.isnan(result.values[0, 1])


def test_criteria_name_bad_input():
    with pytest.raises(ValueError, match="max_factors"):
        velicer_map(np.random.default_rng(0).normal(size=(50, 4)), max_factors=4)
    with pytest.raises(ValueError, match="3 numeric columns"):
        parallel_analysis(np.zeros((10, 2)))
