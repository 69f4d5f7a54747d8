"""MNAR sensitivity: Imputer(delta=) pattern-mixture adjustment and ppgen.tipping_point.

Closed forms checked: delta = 0 is the MAR imputation itself; the shifted column's imputed values
are the MAR ones plus delta, so a linear analysis of it moves exactly linearly in delta, with the
slope (X'X)^-1 X' 1_missing; the other columns respond through the model's regression on the
shifted column; a binary column's imputed share follows the tilted probability
p e^delta / (1 - p + p e^delta); on Gaussian self-masking MNAR data the MAR imputation is biased
by the location shift gamma sigma^2 and delta = gamma sigma^2 removes it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import optimize, stats

import ppgen
from ppgen.impute import pool_fit

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """x, y correlated (y = 0.8 x + 0.6 e), z independent and complete; x, y 30% missing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 0.8 * x + 0.6 * rng.normal(size=n)
    z = rng.normal(size=n)
    df = pd.DataFrame({"x": x, "y": y, "z": z})
    df.loc[rng.random(n) < 0.3, "x"] = np.nan
    df.loc[rng.random(n) < 0.3, "y"] = np.nan
    return df


def _imputer(df: pd.DataFrame, model: str = "gmm", **options) -> ppgen.Imputer:
    size = {"gmm": {"n_components": 1}, "ppca": {"n_components": 1}}[model]
    kw = {"n_imputations": 5, "method": "em", "seed": 0, **size, **options}
    return ppgen.Imputer(model, **kw).fit(df)


@pytest.mark.parametrize("model", ["gmm", "ppca"])
def test_zero_delta_is_the_mar_imputation(model):
    df = _table()
    imp = _imputer(df, model)
    mar = imp.transform(df)
    imp.set_params(delta={"x": 0.0, "y": 0})
    for a, b in zip(mar, imp.transform(df), strict=True):
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("model", ["gmm", "ppca"])
def test_shift_then_redraw_the_others(model):
    """x's imputed values are the MAR ones + delta exactly; observed entries never change; y,
    missing in the same rows, moves by the model's regression slope times delta."""
    df = _table(n=2000)
    imp = _imputer(df, model, n_imputations=10)
    mar = imp.transform(df)
    imp.set_params(delta={"x": 2.0})
    shifted = imp.transform(df)
    mx, my = df["x"].isna(), df["y"].isna()
    observed = df.notna()
    moves = []
    for a, b in zip(mar, shifted, strict=True):
        np.testing.assert_allclose(b.loc[mx, "x"], a.loc[mx, "x"] + 2.0, rtol=0, atol=1e-12)
        assert (b[observed] == df[observed]).sum().sum() == observed.sum().sum()
        pd.testing.assert_series_equal(b.loc[~mx, "y"], a.loc[~mx, "y"])  # other rows untouched
        moves.append((b.loc[mx & my, "y"] - a.loc[mx & my, "y"]).to_numpy())
    moves = np.concatenate(moves)
    # The fitted model's own regression of y on (x, z), from a large sample of it (PPCA(1)'s
    # isotropic noise makes it flatter than the data's 0.8).
    sample = imp.fit_.sample(200_000, seed=1)
    design = np.column_stack([np.ones(len(sample)), sample["x"], sample["z"]])
    slope = np.linalg.lstsq(design, sample["y"].to_numpy(), rcond=None)[0][1]
    se = moves.std(ddof=1) / np.sqrt(len(moves))
    assert abs(moves.mean() - 2.0 * slope) < 4 * se + 0.01, (moves.mean(), 2 * slope, se)


def test_sd_scale_shifts_by_the_observed_sd():
    df = _table()
    imp = _imputer(df)
    mar = imp.transform(df)
    imp.set_params(delta={"x": -1.5}, delta_scale="sd")
    mx = df["x"].isna()
    sd = df["x"].std()
    for a, b in zip(mar, imp.transform(df), strict=True):
        np.testing.assert_allclose(b.loc[mx, "x"], a.loc[mx, "x"] - 1.5 * sd, atol=1e-12)


def test_pooled_estimate_is_linear_in_delta():
    """OLS of the shifted column on complete regressors: beta(delta) = beta(0) + delta (Z'Z)^-1
    Z' 1_missing, the same in every table, to rounding."""
    df = _table(n=200).drop(columns="y")
    imp = _imputer(df)
    z = np.column_stack([np.ones(len(df)), df["z"]])
    slope = np.linalg.solve(z.T @ z, z.T @ df["x"].isna().to_numpy(float))
    base = pool_fit(imp.transform(df), "x ~ z").estimate
    for delta in (-3.0, -0.5, 1.0, 2.5):
        imp.set_params(delta={"x": delta})
        pooled = pool_fit(imp.transform(df), "x ~ z")
        np.testing.assert_allclose(pooled.estimate, base + delta * slope, rtol=0, atol=1e-10)


def test_binary_log_odds_tilt():
    """b independent of x: its imputed share of level "yes" is p e^d / (1 - p + p e^d)."""
    rng = np.random.default_rng(3)
    n = 1500
    df = pd.DataFrame({"x": rng.normal(size=n), "b": np.where(rng.random(n) < 0.3, "yes", "no")})
    df.loc[rng.random(n) < 0.4, "b"] = None
    imp = _imputer(df, n_imputations=4)
    miss = df["b"].isna()
    p = (df["b"] == "yes").sum() / df["b"].notna().sum()
    mar = imp.transform(df)
    for delta in (1.5, -1.0):
        imp.set_params(delta={"b": delta})
        tables = imp.transform(df)
        share = np.mean([(t.loc[miss, "b"] == "yes").mean() for t in tables])
        want = p * np.exp(delta) / (1 - p + p * np.exp(delta))
        se = np.sqrt(want * (1 - want) / (miss.sum() * len(tables)))
        assert abs(share - want) < 4 * se + 0.01, (delta, share, want)
        for a, t in zip(mar, tables, strict=True):
            pd.testing.assert_series_equal(t.loc[~miss, "b"], a.loc[~miss, "b"])
            pd.testing.assert_series_equal(t["x"], a["x"])  # complete: never redrawn
    imp.set_params(delta={"b": {"no": 0.7, "yes": 0.7}})  # equal shifts: no tilt
    for a, b in zip(mar, imp.transform(df), strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_self_masking_mnar_bias_removed_by_delta():
    """Gaussian self-masking: P(missing | x) = logistic(a + gamma x), i.e. x | missing is x |
    observed shifted by gamma sigma^2. MAR imputation misses that shift in the mean of x by
    share_missing * gamma sigma^2; delta = gamma sigma^2 removes it within Monte Carlo error."""
    rng = np.random.default_rng(11)
    n, sigma, gamma, share = 3000, 1.5, 0.5, 0.4
    shift = gamma * sigma**2
    missing = rng.random(n) < share
    x = rng.normal(size=n) * sigma + shift * missing  # pattern mixture = logistic selection
    df = pd.DataFrame({"x": np.where(missing, np.nan, x), "z": rng.normal(size=n)})
    truth = x.mean()
    imp = _imputer(df, n_imputations=10)
    mar = pool_fit(imp.transform(df), "x ~ 1")
    imp.set_params(delta={"x": shift})
    adjusted = pool_fit(imp.transform(df), "x ~ 1")
    expected_bias = -missing.mean() * shift
    assert abs(mar.estimate[0] - truth - expected_bias) < 3 * mar.std_error[0]
    assert abs(expected_bias) > 8 * mar.std_error[0]  # the bias is real, not noise
    assert abs(adjusted.estimate[0] - truth) < 3 * adjusted.std_error[0]


def test_tipping_point_matches_a_hand_computation():
    """Mean of x on 14 rows (5 missing): every table shifts by f delta, f = 5/14, so the sign
    flips at -Q(0)/f; the significance flip is the root of |Q|/sqrt(T) = t_df, by hand."""
    rng = np.random.default_rng(2)
    n = 14
    df = pd.DataFrame({"x": rng.normal(0.6, 1.0, n), "z": rng.normal(size=n)})
    df.loc[[1, 4, 6, 9, 12], "x"] = np.nan
    imp = _imputer(df)
    mar = imp.transform(df)
    miss = df["x"].isna().to_numpy()
    f = miss.mean()
    m = len(mar)

    def by_hand(delta: float) -> tuple[float, float, float]:
        """Rubin's rules by hand for the mean of x, Rubin's (1987) df (no complete-data n)."""
        values = [t["x"].to_numpy() + delta * miss for t in mar]
        q = np.array([v.mean() for v in values])
        u = np.array([v.var(ddof=1) / n for v in values])
        b = q.var(ddof=1)
        total = u.mean() + (1 + 1 / m) * b
        lam = max((1 + 1 / m) * b / total, 1e-4)
        return q.mean(), np.sqrt(total), (m - 1) / lam**2

    def mean_of_x(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        x = table["x"].to_numpy()
        return np.array([x.mean()]), np.array([x.var(ddof=1) / n])

    q0 = by_hand(0.0)[0]
    grid = np.linspace(-6, 2, 33)  # step 0.25
    result = ppgen.tipping_point(imp, df, mean_of_x, "x", grid)
    assert result.term == "0"
    assert result.sign_flip == pytest.approx(-q0 / f, abs=1e-9)
    for delta in (-2.0, 0.0, 1.0):
        est, se, dof = by_hand(delta)
        row = result.table.loc[np.isclose(result.table["delta"], delta)].iloc[0]
        assert row["estimate"] == pytest.approx(est, abs=1e-10)
        assert row["std.error"] == pytest.approx(se, rel=1e-8)
        assert row["p.value"] == pytest.approx(2 * stats.t.sf(abs(est / se), dof), rel=1e-6)

    def margin(delta):
        est, se, dof = by_hand(delta)
        return abs(est) / se - stats.t.ppf(0.975, dof)

    assert result.table["significant"].iloc[-1]  # significant under MAR and above
    # The grid's last non-significant delta and the next: the interpolated flip, by hand, and
    # the exact root of the hand-computed curve between them.
    low = max(d for d in grid if margin(d) < 0)
    high = low + grid[1] - grid[0]
    flip = low - margin(low) * (high - low) / (margin(high) - margin(low))
    assert result.significance_flip == pytest.approx(flip, abs=1e-6)
    assert result.significance_flip == pytest.approx(optimize.brentq(margin, low, high), abs=0.02)
    # The imputer is not changed by the analysis.
    assert imp.delta is None


def test_tipping_point_plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = _table(n=60).drop(columns="y")
    result = ppgen.tipping_point(_imputer(df), df, "x ~ z", "x", [-4, -2, 0, 2], term="Intercept")
    ax = result.plot()
    assert ax.get_xlabel().startswith("delta")
    assert len(ax.lines) >= 2
    plt.close(ax.figure)


@pytest.mark.parametrize(
    ("delta", "scale", "message"),
    [
        ({"nope": 1.0}, "units", "'nope'"),
        ({"x": "big"}, "units", "must be a number"),
        ({"x": float("nan")}, "units", "finite"),
        ({"x": 1.0}, "percent", "delta_scale"),
        ({"b": {"maybe": 1.0}}, "units", "unknown level"),
        ({"c": 1.0}, "units", "dict level"),
        (["x"], "units", "dict of column"),
    ],
)
def test_bad_delta(delta, scale, message):
    rng = np.random.default_rng(0)
    n = 80
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "b": rng.choice(["no", "yes"], n),
            "c": rng.choice(["p", "q", "r"], n),
        }
    )
    df.loc[:9, ["x", "b", "c"]] = np.nan
    imp = _imputer(df, n_imputations=2)
    imp.set_params(delta=delta, delta_scale=scale)
    with pytest.raises(ValueError, match=message):
        imp.transform(df)


def test_tipping_point_needs_a_term_and_a_grid():
    df = _table(n=60).drop(columns="y")
    imp = _imputer(df, n_imputations=2)
    with pytest.raises(ValueError, match="term="):
        ppgen.tipping_point(imp, df, "x ~ z", "x", [0, 1])
    with pytest.raises(ValueError, match="2 distinct"):
        ppgen.tipping_point(imp, df, "x ~ z", "x", [1, 1], term="z")
    with pytest.raises(ValueError, match="'w' is not among"):
        ppgen.tipping_point(imp, df, "x ~ z", "x", [0, 1], term="w")


def test_delta_under_posterior_draws():
    """A fit with parameter draws (as SVI's; built here from the EM fit by jittering it, which
    costs no SVI run): table j's redraws use table j's parameter draw, the shifted column is the
    MAR one + delta, and the first table's draw is Fit.impute's."""
    import dataclasses

    df = _table(n=150)
    imp = _imputer(df, "ppca", n_imputations=3)
    gen = torch.Generator().manual_seed(0)
    samples = {
        k: v + 0.05 * torch.randn((2, 4, *v.shape), generator=gen, dtype=v.dtype)
        for k, v in imp.fit_.params.items()
    }
    samples["noise"] = samples["noise"].abs()
    imp.fit_ = dataclasses.replace(imp.fit_, samples=samples)
    plain = df[imp.modelled_]
    for j in range(3):
        # Table j of Fit.impute under a fit holding only draw j's parameters, drawn first.
        pick = [0, 4, 7][j]  # linspace(0, 7, 3).round(): draws spread over the 2 x 4
        alone = dataclasses.replace(
            imp.fit_,
            samples={k: v.reshape(8, *v.shape[2:])[pick][None, None] for k, v in samples.items()},
        )
        pd.testing.assert_frame_equal(imp._draw_one(plain, j, 5), alone.impute(plain, 1, seed=5)[0])
    pd.testing.assert_frame_equal(imp._draw_one(plain, 0, 5), imp.fit_.impute(plain, 3, seed=5)[0])
    mar = imp.transform(df)
    imp.set_params(delta={"x": 1.0})
    mx = df["x"].isna()
    for a, b in zip(mar, imp.transform(df), strict=True):
        np.testing.assert_allclose(b.loc[mx, "x"], a.loc[mx, "x"] + 1.0, atol=1e-12)
        assert b.notna().all().all()
