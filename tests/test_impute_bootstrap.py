"""Proper multiple imputation from point fits: ``Imputer(proper="bootstrap")``.

Plugging one EM estimate into every imputation ignores the uncertainty of the parameters, so
Rubin's-rules intervals are too narrow when much is missing. Refitting on bootstrap resamples
(Rubin & Schenker 1986; Little & Rubin 2002, sec. 10.2.3) puts that uncertainty back. Here
x ~ N(0, 1) is missing completely at random in half the rows of n = 60, y = 1 + 0.8 x + noise
is always observed, and the estimand is the mean of x (truth 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ppgen
from ppgen.impute import pool

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _table(rng: np.random.Generator, n: int = 60) -> pd.DataFrame:
    x = rng.normal(size=n)
    y = 1 + 0.8 * x + 0.6 * rng.normal(size=n)
    x[rng.random(n) < 0.5] = np.nan
    return pd.DataFrame({"x": x, "y": y})


def _pooled_mean_of_x(tables):
    estimates = [t["x"].mean() for t in tables]
    variances = [t["x"].var(ddof=1) / len(t) for t in tables]
    return pool(estimates, variances, n_obs=len(tables[0]), k=1)


def mean_coverage(replications: int, **options) -> tuple[float, float]:
    """Share of pooled 95% intervals for the mean of x that cover 0, and their mean width."""
    covered, widths = 0, []
    for r in range(replications):
        df = _table(np.random.default_rng(7000 + r))
        imputer = ppgen.Imputer("gmm", n_imputations=10, seed=r, n_components=1, **options)
        lo, hi = _pooled_mean_of_x(imputer.fit_transform(df)).conf_int()[0]
        covered += lo <= 0 <= hi
        widths.append(hi - lo)
    return covered / replications, float(np.mean(widths))


@pytest.mark.slow  # a 60-replication coverage study (~40 s): statistical studies run with -m slow
def test_bootstrap_refits_widen_the_intervals_to_nominal_coverage():
    improper, width_improper = mean_coverage(60, method="em")
    proper, width_proper = mean_coverage(60, method="em", proper="bootstrap")
    assert width_proper > 1.05 * width_improper
    assert 0.88 <= proper <= 1.0


@pytest.mark.slow
def test_bootstrap_coverage_full_simulation():
    """200 replications (about 40 s): improper EM imputation covers 89.5% here, the bootstrap
    95% (nominal 95%, binomial standard error 1.5%)."""
    improper, _ = mean_coverage(200, method="em")
    proper, _ = mean_coverage(200, method="em", proper="bootstrap")
    assert 0.93 <= proper <= 0.97
    assert improper < proper


def test_bootstrap_imputations_keep_observed_entries_and_are_reproducible():
    df = _table(np.random.default_rng(1))
    imputer = ppgen.Imputer("gmm", n_imputations=4, seed=3, method="em", proper="bootstrap")
    tables = imputer.fit_transform(df)
    observed = df["x"].notna()
    for table in tables:
        pd.testing.assert_series_equal(table.loc[observed, "x"], df.loc[observed, "x"])
        pd.testing.assert_series_equal(table["y"], df["y"])
    # Every table has its own refit, so the refits' parameters differ from each other.
    locs = [f.params["locs"] for f in imputer.bootstrap_fits_]
    assert len(locs) == 4 and not np.allclose(locs[0].numpy(), locs[1].numpy())
    again = ppgen.Imputer("gmm", n_imputations=4, seed=3, method="em", proper="bootstrap")
    for a, b in zip(tables, again.fit_transform(df), strict=True):
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"proper": "laplace", "method": "em"}, "proper must be"), ({"proper": "bootstrap"}, "svi")],
)
def test_bootstrap_option_refuses_what_it_cannot_do(options, message):
    df = _table(np.random.default_rng(2))
    with pytest.raises(ValueError, match=message):
        ppgen.Imputer("gmm", n_imputations=2, **options).fit(df)
