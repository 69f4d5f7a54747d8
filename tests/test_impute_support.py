"""Imputer keeps each column's support by default (truncated draws), or matches observed donors
(support="pmm"); observed values never change and the imputation stays proper."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ppgen

COLUMNS = ["Ozone", "Solar.R", "Wind", "Temp"]


@pytest.fixture(scope="module")
def airquality() -> pd.DataFrame:
    return ppgen.datasets.load("airquality")[COLUMNS]


@pytest.fixture(scope="module")
def fitted(airquality):
    return ppgen.Imputer("gmm", n_imputations=5, method="map", seed=0).fit(airquality)


def test_default_imputer_imputes_no_negative_ozone_or_radiation(airquality, fitted) -> None:
    assert fitted.support_ == {c: (0.0, np.inf) for c in COLUMNS}
    raw = ppgen.Imputer("gmm", n_imputations=5, method="map", seed=0, support=None)
    raw_tables = raw.fit(airquality).transform(airquality)
    negative = sum(int((t[["Ozone", "Solar.R"]] < 0).to_numpy().sum()) for t in raw_tables)
    assert negative > 0  # the Gaussian mixture's own draws leave the support
    tables = fitted.transform(airquality)
    observed = airquality.notna()
    for table, untruncated in zip(tables, raw_tables, strict=True):
        assert (table[["Ozone", "Solar.R"]] >= 0).all().all()
        assert table.notna().all().all()
        pd.testing.assert_frame_equal(table[observed], airquality[observed])
        # Rows whose draw was inside the support keep that very draw (same seed, same model).
        inside = (untruncated[COLUMNS] >= 0).all(axis=1)
        pd.testing.assert_frame_equal(table[inside], untruncated[inside])
    # Not clipping: no pile-up at 0.
    assert not any((t.loc[airquality["Ozone"].isna(), "Ozone"] == 0).any() for t in tables)


def test_truncation_draws_from_the_truncated_conditional() -> None:
    """One column, a Normal fit: imputations follow Normal(mu, sigma) truncated at 0."""
    rng = np.random.default_rng(3)
    y = rng.normal(0.5, 1.0, 4000)
    y = y[y >= 0]
    df = pd.DataFrame({"y": np.r_[y, [np.nan] * 4000], "x": rng.normal(size=len(y) + 4000)})
    imp = ppgen.Imputer(
        ppgen.GaussianMixture(1, covariance_type="diag"), n_imputations=1, method="map"
    )
    table = imp.fit(df).transform(df)
    fit = imp.fit_
    c = fit.schema.columns[0]
    mu = c.loc + fit.params["locs"][0, 0].item() * c.scale
    sd = fit.params["precision"][0, 0].rsqrt().item() * c.scale
    drawn = table.loc[df["y"].isna(), "y"].to_numpy()
    assert drawn.min() >= 0
    truncated = stats.truncnorm((0 - mu) / sd, np.inf, loc=mu, scale=sd)
    assert stats.kstest(drawn, truncated.cdf).pvalue > 1e-3


def test_pmm_imputes_observed_values(airquality) -> None:
    imp = ppgen.Imputer("gmm", n_imputations=3, method="map", seed=0, support="pmm")
    tables = imp.fit_transform(airquality)
    for table in tables:
        for name in COLUMNS:
            assert set(table[name]) <= set(airquality[name].dropna())
        pd.testing.assert_frame_equal(table[airquality.notna()], airquality[airquality.notna()])
    assert "support='pmm'" in repr(imp)


def test_support_option_is_checked(airquality) -> None:
    with pytest.raises(ValueError, match="support must be one of"):
        ppgen.Imputer(support="clip").fit(airquality)


def test_proper_draws_keep_their_parameter_draw(airquality) -> None:
    """SVI: table j is truncated under posterior draw j (tables differ, all inside)."""
    imp = ppgen.Imputer(
        "gmm", n_imputations=3, seed=0, fit_options={"max_steps": 300, "num_draws": 50}
    )
    tables = imp.fit_transform(airquality)
    assert all((t[["Ozone", "Solar.R"]] >= 0).all().all() for t in tables)
    assert not tables[0].equals(tables[1])


def test_vectorized_truncation_is_the_exact_truncated_joint_conditional() -> None:
    """Two correlated columns truncated to the positive quadrant, rows missing both: the
    truncated imputations have the distribution of the model's own untruncated draws kept only
    inside the quadrant (two-sample KS on each margin, their sum and their difference), with
    the whole missing block redrawn together (correlation kept); rows whose first draw was
    inside keep it."""
    rng = np.random.default_rng(5)
    x = rng.multivariate_normal([0.4, 0.2], [[1.0, 0.7], [0.7, 1.0]], 6000)
    x = x[(x >= 0).all(axis=1)]
    n_missing = 3000
    df = pd.DataFrame(np.r_[x, np.full((n_missing, 2), np.nan)], columns=["a", "b"])
    missing = df["a"].isna().to_numpy()
    imp = ppgen.Imputer("gmm", n_components=1, n_imputations=2, method="em", seed=0).fit(df)
    assert imp.support_ == {"a": (0.0, np.inf), "b": (0.0, np.inf)}
    tables = imp.transform(df)
    raw = imp.set_params(support=None).transform(df, seed=1)
    untruncated = imp.transform(df)  # same seed as the truncated tables
    reference = np.concatenate([t.to_numpy()[missing] for t in raw])
    reference = reference[(reference >= 0).all(axis=1)]
    drawn = np.concatenate([t.to_numpy()[missing] for t in tables])
    assert (drawn >= 0).all() and len(reference) > 1000
    for f in (
        lambda v: v[:, 0],
        lambda v: v[:, 1],
        lambda v: v.sum(1),
        lambda v: v[:, 0] - v[:, 1],
    ):
        assert stats.ks_2samp(f(drawn), f(reference)).pvalue > 1e-3
    for table, first in zip(tables, untruncated, strict=True):
        inside = (first >= 0).all(axis=1)
        assert 0.5 < inside[missing].mean() < 0.95  # hundreds of rows were redrawn
        pd.testing.assert_frame_equal(table[inside], first[inside])
