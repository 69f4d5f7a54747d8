"""Number-of-factors criteria against psych 2.2.9 on BFI (../shared/reference/fa.out): they
disagree there (parallel analysis 6, Velicer's MAP 5, very simple structure 4), as psych's do."""

from __future__ import annotations

import numpy as np
import pytest

import ppgen
from ppgen.evaluate import (
    factor_criteria,
    parallel_analysis,
    velicer_map,
    very_simple_structure,
)


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


def test_factor_criteria_table_matches_psych_vss_and_says_they_disagree(bfi):
    table, picks = factor_criteria(bfi, 8)
    # psych VSS's "Statistics by number of factors" (minres, pairwise, n = 2800).
    np.testing.assert_array_equal(table["dof"], [275, 251, 228, 206, 185, 165, 146, 128])
    chi2 = [11863, 7362, 5096, 3422, 1809, 1032, 708, 503]
    np.testing.assert_allclose(table["chi2"], chi2, atol=0.5 + 1e-9)
    bic = [9680, 5370, 3286, 1787, 341, -277, -451, -513]
    np.testing.assert_allclose(table["bic"], bic, atol=0.5 + 1e-9)
    rmsea = [0.123, 0.101, 0.087, 0.075, 0.056, 0.043, 0.037, 0.032]
    np.testing.assert_allclose(table["rmsea"], rmsea, atol=5e-4 + 1e-12)
    assert picks == {"parallel": 6, "map": 5, "vss1": 4, "vss2": 4, "bic": 8}
    assert len(set(picks.values())) > 1


def test_criteria_name_bad_input():
    with pytest.raises(ValueError, match="max_factors"):
        velicer_map(np.random.default_rng(0).normal(size=(50, 4)), max_factors=4)
    with pytest.raises(ValueError, match="3 numeric columns"):
        parallel_analysis(np.zeros((10, 2)))
