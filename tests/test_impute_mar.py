"""Rubin's-rules coverage under missing at random (MAR): missingness in x depends on y.

The MCAR counterpart is in ``tests/test_impute.py`` (``_slope_coverage``). Here x is missing
with probability logistic(a + b y), y always observed: the complete cases are a biased sample
(they over-represent low y), but the bivariate normal model is correctly specified and the
mechanism is ignorable, so imputing x from its conditional given y and pooling with Rubin's
rules must still give intervals for the slope of y ~ x that cover the truth at nominal rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ppgen
from ppgen.impute import pool_fit

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SLOPE = 0.5
MAR_A, MAR_B = -2.5, 1.5  # P(x missing | y) = logistic(-2.5 + 1.5 y): about 30% missing


def _mar_table(rng: np.random.Generator, n: int = 200) -> pd.DataFrame:
    """x ~ N(0, 1), y = 1 + 0.5 x + N(0, 1); x missing with probability logistic(a + b y)."""
    x = rng.normal(size=n)
    y = 1 + SLOPE * x + rng.normal(size=n)
    p_missing = 1.0 / (1.0 + np.exp(-(MAR_A + MAR_B * y)))
    x[rng.random(n) < p_missing] = np.nan
    return pd.DataFrame({"x": x, "y": y})


def _ols(table: pd.DataFrame):
    import statsmodels.api as sm

    return sm.OLS(table["y"].to_numpy(), sm.add_constant(table["x"].to_numpy())).fit()


def mar_slope_coverage(replications: int, method: str, **options) -> dict[str, float]:
    """Share of pooled 95% intervals for the slope (truth 0.5) that cover it, under MAR.

    n = 200, m = 10, PPCA(1) on (x, y) (the saturated bivariate normal). Also returns the
    complete-case coverage (listwise deletion) for contrast, and the mean share missing.
    """
    covered = covered_cc = 0
    missing = []
    for r in range(replications):
        rng = np.random.default_rng(5000 + r)
        df = _mar_table(rng)
        missing.append(float(df["x"].isna().mean()))
        fit = ppgen.fit(ppgen.PPCA(1), df, method=method, seed=r, **options)
        pooled = pool_fit(fit.impute(df, n_imputations=10, seed=r), _ols)
        lo, hi = pooled.conf_int()[1]
        covered += lo <= SLOPE <= hi
        lo_cc, hi_cc = _ols(df.dropna()).conf_int()[1]
        covered_cc += lo_cc <= SLOPE <= hi_cc
    return {
        "coverage": covered / replications,
        "complete_case_coverage": covered_cc / replications,
        "share_missing": float(np.mean(missing)),
    }


def test_mar_mechanism_is_informative():
    """The mechanism really is MAR and not MCAR: x is missing more often where y is high."""
    rng = np.random.default_rng(0)
    df = _mar_table(rng, n=20_000)
    miss = df["x"].isna()
    assert 0.25 < miss.mean() < 0.40
    assert df.loc[miss, "y"].mean() > df.loc[~miss, "y"].mean() + 0.8


def test_pooled_interval_coverage_mar_map_imputation():
    """Improper MI (MAP plug-in) under MAR: slightly narrow intervals, but close to nominal."""
    result = mar_slope_coverage(40, "map")
    assert result["coverage"] >= 0.85


@pytest.mark.slow
def test_pooled_interval_coverage_mar_proper_mi_svi():
    """Proper MI (one SVI posterior draw per imputation) under MAR: nominal 95% coverage."""
    result = mar_slope_coverage(200, "svi", guide="mvn", num_draws=100)
    print(f"MAR proper MI (SVI): {result}")  # shown with pytest -s
    assert 0.93 <= result["coverage"] <= 0.97, result
