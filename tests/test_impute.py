"""Multiple imputation: conditionals against textbook Gaussian algebra, Rubin's rules by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

import ppgen
from ppgen.data import Schema
from ppgen.impute import PooledEstimate, pool, pool_fit

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# -- helpers ----------------------------------------------------------------------------------
def _gmm(K, cov_type, x):
    model = ppgen.GaussianMixture(K, cov_type).build(Schema.infer(x, standardize=False))
    return model.to(dtype=torch.float64)


def _ppca(q, x):
    return ppgen.PPCA(q).build(Schema.infer(x, standardize=False)).to(dtype=torch.float64)


def _random_gmm_params(K, d, cov_type, rng):
    covs = []
    for _ in range(K):
        a = rng.normal(size=(d, d))
        covs.append(a @ a.T + np.eye(d))
    covs = np.array(covs)
    if cov_type == "diag":
        covs = np.array([np.diag(np.diag(c)) for c in covs])
        prec = 1 / np.diagonal(covs, axis1=1, axis2=2)
    else:
        prec = np.linalg.inv(covs)
    params = {"weights": rng.dirichlet(np.ones(K)), "locs": rng.normal(size=(K, d)) * 2}
    params["precision"] = prec
    return {k: torch.tensor(v) for k, v in params.items()}, covs


def _random_ppca_params(d, q, rng):
    params = {"W": rng.normal(size=(d, q)), "loc": rng.normal(size=d), "noise": np.array(0.3)}
    params = {k: torch.tensor(v) for k, v in params.items()}
    cov = params["W"].numpy() @ params["W"].numpy().T + 0.3 * np.eye(d)
    return params, cov


def _textbook_conditional(x, o, mu, cov):
    """mu_m + S_mo S_oo^-1 (x_o - mu_o) and S_mm - S_mo S_oo^-1 S_om, embedded in d x d."""
    m = ~o
    mean, out = x.copy(), np.zeros((len(x), len(x)))
    if not m.any():
        return mean, out
    if o.any():
        gain = cov[np.ix_(m, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
        mean[m] = mu[m] + gain @ (x[o] - mu[o])
        out[np.ix_(m, m)] = cov[np.ix_(m, m)] - gain @ cov[np.ix_(o, m)]
    else:
        mean[m] = mu[m]
        out[np.ix_(m, m)] = cov[np.ix_(m, m)]
    return mean, out


def _mask(rng, n, d, p=0.4):
    mask = rng.random((n, d)) > p
    mask[0] = True  # a complete row
    mask[1] = False  # an empty row
    return mask


# -- model conditionals -----------------------------------------------------------------------
@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_gmm_conditional_equals_textbook(cov_type, rng):
    K, d, n = 3, 4, 40
    x = rng.normal(size=(n, d)) * 2
    mask = _mask(rng, n, d)
    model = _gmm(K, cov_type, x)
    params, covs = _random_gmm_params(K, d, cov_type, rng)
    log_resp, mean, cov = model.conditional(torch.tensor(x), torch.tensor(mask), params)
    log_resp, mean, cov = log_resp.numpy(), mean.numpy(), cov.numpy()
    w, locs = params["weights"].numpy(), params["locs"].numpy()
    for i in range(n):
        o = mask[i]
        terms = np.array(
            [
                np.log(w[k])
                + (
                    stats.multivariate_normal(locs[k][o], covs[k][np.ix_(o, o)]).logpdf(x[i, o])
                    if o.any()
                    else 0.0
                )
                for k in range(K)
            ]
        )
        np.testing.assert_allclose(log_resp[i], terms - logsumexp(terms), atol=1e-6)
        for k in range(K):
            ref_mean, ref_cov = _textbook_conditional(x[i], o, locs[k], covs[k])
            np.testing.assert_allclose(mean[i, k], ref_mean, atol=1e-6)
            np.testing.assert_allclose(cov[i, k], ref_cov, atol=1e-6)
            assert (mean[i, k][o] == x[i, o]).all()


def test_ppca_conditional_equals_textbook(rng):
    d, q, n = 5, 2, 40
    x = rng.normal(size=(n, d)) * 2
    mask = _mask(rng, n, d)
    model = _ppca(q, x)
    params, full_cov = _random_ppca_params(d, q, rng)
    mean, cov = model.conditional(torch.tensor(x), torch.tensor(mask), params)
    loc = params["loc"].numpy()
    for i in range(n):
        ref_mean, ref_cov = _textbook_conditional(x[i], mask[i], loc, full_cov)
        np.testing.assert_allclose(mean[i].numpy(), ref_mean, atol=1e-6)
        np.testing.assert_allclose(cov[i].numpy(), ref_cov, atol=1e-6)


# -- imputation draws -------------------------------------------------------------------------
def _assert_moments(draws, mean, cov):
    """Empirical mean and covariance of draws (N, r) within 5 Monte-Carlo standard errors."""
    N = len(draws)
    se_mean = np.sqrt(np.diag(cov) / N)
    assert (np.abs(draws.mean(0) - mean) < 5 * se_mean).all()
    centred = draws - mean
    products = centred[:, :, None] * centred[:, None, :]
    se_cov = products.std(0) / np.sqrt(N)
    assert (np.abs(products.mean(0) - cov) < 5 * se_cov).all()


def _one_row_repeated(rng):
    d = 5
    x = rng.normal(size=(1, d))
    mask = np.array([[True, False, True, False, False]])
    return d, np.repeat(x, 20_000, 0), np.repeat(mask, 20_000, 0)


def test_ppca_imputation_draws_match_conditional(rng):
    d, x, mask = _one_row_repeated(rng)
    model = _ppca(2, x[:1])
    params, full_cov = _random_ppca_params(d, 2, rng)
    ref_mean, ref_cov = _textbook_conditional(x[0], mask[0], params["loc"].numpy(), full_cov)
    with ppgen._utils.seeded(3):
        draws = model.impute(torch.tensor(x), torch.tensor(mask), params).numpy()
    assert (draws[:, mask[0]] == x[:, mask[0]]).all()
    m = ~mask[0]
    _assert_moments(draws[:, m], ref_mean[m], ref_cov[np.ix_(m, m)])


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_gmm_imputation_draws_match_mixture_conditional(cov_type, rng):
    d, x, mask = _one_row_repeated(rng)
    x[0] = x[0] * 0.5  # keep both components plausible
    x[:] = x[0]
    model = _gmm(2, cov_type, x[:1])
    params, covs = _random_gmm_params(2, d, cov_type, rng)
    log_resp, mean, cov = model.conditional(torch.tensor(x[:1]), torch.tensor(mask[:1]), params)
    r, mean, cov = log_resp.exp().numpy()[0], mean.numpy()[0], cov.numpy()[0]
    mix_mean = r @ mean
    second = np.einsum("k,kij->ij", r, cov + mean[:, :, None] * mean[:, None, :])
    mix_cov = second - np.outer(mix_mean, mix_mean)
    with ppgen._utils.seeded(4):
        draws = model.impute(torch.tensor(x), torch.tensor(mask), params).numpy()
    assert (draws[:, mask[0]] == x[:, mask[0]]).all()
    m = ~mask[0]
    _assert_moments(draws[:, m], mix_mean[m], mix_cov[np.ix_(m, m)])


# -- Fit.impute -------------------------------------------------------------------------------
PENGUIN_COLS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    df = ppgen.datasets.load("penguins")[PENGUIN_COLS]
    assert df.isna().any(axis=None)  # the real missing values
    return df


@pytest.fixture(scope="module")
def penguin_fit(penguins) -> ppgen.Fit:
    return ppgen.fit(ppgen.PPCA(2), penguins, method="map", seed=0)


def _assert_completes(df, tables):
    observed = df.notna().to_numpy()
    for table in tables:
        assert isinstance(table, pd.DataFrame)
        assert table.index.equals(df.index)
        assert list(table.columns) == list(df.columns)
        assert (table.dtypes == df.dtypes).all()
        assert not table.isna().any(axis=None)
        # Bit-for-bit equality where observed (no tolerance: imputation never changes data).
        assert (table.to_numpy()[observed] == df.to_numpy()[observed]).all()


def test_fit_impute_keeps_observed_values_exactly(penguins, penguin_fit):
    df = penguins.copy()
    df.index = df.index * 3 + 7  # a non-default index comes back unchanged
    # Holes that the data don't have: a few more, so every column and pattern is exercised.
    holes = np.random.default_rng(0).random(df.shape) < 0.1
    df = df.mask(holes)
    tables = penguin_fit.impute(df, n_imputations=4, seed=1)
    assert len(tables) == 4
    _assert_completes(df, tables)
    missing = df.isna().to_numpy()
    values = [t.to_numpy()[missing] for t in tables]
    for a in range(4):
        for b in range(a + 1, 4):
            assert (values[a] != values[b]).all()  # different j, different imputed values
    # Imputed values are plausible for the column (within its observed range, padded).
    imputed = tables[0].where(df.isna())
    spread = df.max() - df.min()
    assert ((imputed.min() > df.min() - spread) & (imputed.max() < df.max() + spread)).all()


def test_fit_impute_real_missing_values_and_seeds(penguins, penguin_fit):
    tables = penguin_fit.impute(penguins, n_imputations=3, seed=5)
    _assert_completes(penguins, tables)
    again = penguin_fit.impute(penguins, n_imputations=3, seed=5)
    for a, b in zip(tables, again, strict=True):
        pd.testing.assert_frame_equal(a, b)
    other = penguin_fit.impute(penguins, n_imputations=3, seed=6)
    missing = penguins.isna().to_numpy()
    assert (other[0].to_numpy()[missing] != tables[0].to_numpy()[missing]).all()


def test_fit_impute_ndarray_and_gmm(rng):
    x = rng.normal(size=(60, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    x[rng.random(x.shape) < 0.2] = np.nan
    fit = ppgen.fit(ppgen.GaussianMixture(2, "diag"), x, method="em", seed=0)
    tables = fit.impute(x, n_imputations=2, seed=0)
    observed = ~np.isnan(x)
    for table in tables:
        assert isinstance(table, np.ndarray) and table.dtype == x.dtype
        assert not np.isnan(table).any()
        assert (table[observed] == x[observed]).all()


def test_fit_impute_tensor(rng):
    x = torch.tensor(rng.normal(size=(50, 3)))
    x[torch.tensor(rng.random((50, 3)) < 0.2)] = float("nan")
    fit = ppgen.fit(ppgen.PPCA(1), x, method="map", seed=0)
    (table,) = fit.impute(x, n_imputations=1, seed=0)
    observed = ~x.isnan()
    assert isinstance(table, torch.Tensor) and table.dtype == x.dtype
    assert not table.isnan().any()
    assert torch.equal(table[observed], x[observed])


def test_fit_impute_uses_one_posterior_draw_per_imputation(penguins, monkeypatch):
    fit = ppgen.fit(ppgen.PPCA(1), penguins, method="svi", seed=0, max_steps=50, num_draws=20)
    seen = []
    original = fit.model.impute

    def recording(x, mask, params):
        seen.append(params["noise"].item())
        return original(x, mask, params)

    monkeypatch.setattr(fit.model, "impute", recording)
    fit.impute(penguins, n_imputations=5, seed=0)
    assert len(set(seen)) == 5  # five different parameter draws
    assert set(seen) <= set(fit.samples["noise"].flatten().tolist())


def test_fit_impute_rejects_bad_counts(penguin_fit, penguins):
    with pytest.raises(ValueError, match="n_imputations"):
        penguin_fit.impute(penguins, n_imputations=0)


# -- Rubin's rules ------------------------------------------------------------------------------
def test_pool_scalar_by_hand():
    # m = 3, Q = 1, 2, 3, U = 0.5: Q-bar = 2, U-bar = 0.5, B = 1, T = 0.5 + 4/3 = 11/6.
    pooled = pool([1.0, 2.0, 3.0], [0.5, 0.5, 0.5])
    assert isinstance(pooled, PooledEstimate)
    assert pooled.estimate[0] == pytest.approx(2.0)
    assert pooled.within[0] == pytest.approx(0.5)
    assert pooled.between[0] == pytest.approx(1.0)
    assert pooled.total[0] == pytest.approx(11 / 6)
    assert pooled.riv[0] == pytest.approx(8 / 3)
    assert pooled.lambda_[0] == pytest.approx(8 / 11)
    assert pooled.df[0] == pytest.approx(121 / 32)  # (m - 1) / lambda^2
    assert pooled.fmi[0] == pytest.approx((8 / 3 + 2 / (121 / 32 + 3)) / (11 / 3))
    t = stats.t.ppf(0.975, 121 / 32)
    np.testing.assert_allclose(
        pooled.conf_int()[0], [2 - t * np.sqrt(11 / 6), 2 + t * np.sqrt(11 / 6)]
    )
    # Barnard-Rubin with n_obs = 10, k = 1: df_com = 9, df_obs = 10/12 * 9 * 3/11 = 22.5/11.
    br = pool([1.0, 2.0, 3.0], [0.5, 0.5, 0.5], n_obs=10, k=1)
    df_old, df_obs = 121 / 32, 22.5 / 11
    assert br.df[0] == pytest.approx(df_old * df_obs / (df_old + df_obs))
    assert br.total[0] == pooled.total[0]


def test_pool_vector_equals_textbook_formulas(rng):
    m, p, n_obs = 7, 3, 50
    q = rng.normal(size=(m, p)) * 0.3 + [1.0, -2.0, 0.5]
    a = rng.normal(size=(m, p, p))
    u = a @ np.swapaxes(a, 1, 2) * 0.05 + 0.01 * np.eye(p)
    pooled = pool(q, u, n_obs=n_obs, names=["a", "b", "c"])
    for j in range(p):
        qbar = sum(q[i, j] for i in range(m)) / m
        ubar = sum(u[i, j, j] for i in range(m)) / m
        b = sum((q[i, j] - qbar) ** 2 for i in range(m)) / (m - 1)
        t = ubar + (1 + 1 / m) * b
        r = (1 + 1 / m) * b / ubar
        lam = (1 + 1 / m) * b / t
        nu_old = (m - 1) / lam**2
        nu_com = n_obs - p
        nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lam)
        nu = nu_old * nu_obs / (nu_old + nu_obs)
        fmi = (r + 2 / (nu + 3)) / (r + 1)
        got = [pooled.estimate, pooled.within, pooled.between, pooled.total, pooled.riv]
        np.testing.assert_allclose([g[j] for g in got], [qbar, ubar, b, t, r], rtol=1e-12)
        np.testing.assert_allclose(
            [pooled.lambda_[j], pooled.df[j], pooled.fmi[j]], [lam, nu, fmi], rtol=1e-12
        )
        half = stats.t.ppf(0.95, nu) * np.sqrt(t)
        np.testing.assert_allclose(pooled.conf_int(0.1)[j], [qbar - half, qbar + half])
    # Variances alone give the same per-estimand results.
    diag = pool(q, np.diagonal(u, axis1=1, axis2=2), n_obs=n_obs)
    np.testing.assert_allclose(diag.df, pooled.df)
    np.testing.assert_allclose(pooled.total_cov, u.mean(0) + (1 + 1 / m) * np.cov(q.T))
    table = pooled.summary(alpha=0.05)
    assert list(table.index) == ["a", "b", "c"]
    assert list(table.columns[:7]) == [
        "estimate",
        "std.error",
        "statistic",
        "df",
        "p.value",
        "fmi",
        "lambda",
    ]
    np.testing.assert_allclose(table["std.error"], np.sqrt(pooled.total))
    t_stat = pooled.estimate / np.sqrt(pooled.total)
    np.testing.assert_allclose(table["p.value"], 2 * stats.t.sf(np.abs(t_stat), pooled.df))
    assert (table["2.5 %"] < table["estimate"]).all() and (
        table["estimate"] < table["97.5 %"]
    ).all()


def test_pool_fit_matches_statsmodels_mice_combine(rng):
    """statsmodels' MICE.combine pools OLS fits the same way (its frac_miss_info is lambda)."""
    import statsmodels.api as sm
    from statsmodels.imputation.mice import MICE

    n, m = 80, 6
    tables = []
    for _ in range(m):
        x1, x2 = rng.normal(size=n), rng.normal(size=n)
        y = 1 + 0.5 * x1 - 0.3 * x2 + rng.normal(size=n)
        tables.append(pd.DataFrame({"y": y, "x1": x1, "x2": x2}))
    pooled = pool_fit(tables, "y ~ x1 + x2")
    results = [sm.OLS(t["y"], sm.add_constant(t[["x1", "x2"]])).fit() for t in tables]

    class _Done:  # the state MICE.combine reads after MICE.fit
        results_list = results
        exog_names = ["const", "x1", "x2"]
        endog_names = "y"
        model_class = sm.OLS

    combined = MICE.combine(_Done())
    np.testing.assert_allclose(pooled.estimate, combined.params, rtol=1e-10)
    np.testing.assert_allclose(pooled.total_cov, combined.cov_params(), rtol=1e-10)
    np.testing.assert_allclose(pooled.lambda_, combined.frac_miss_info, rtol=1e-10)
    assert pooled.names == ["Intercept", "x1", "x2"]
    assert (pooled.n_obs, pooled.k) == (n, 3)  # Barnard-Rubin with df_com = n - 3

    # The same through a callable returning results, (params, cov), or a bse-only object.
    def ols(t):
        return sm.OLS(t["y"], sm.add_constant(t[["x1", "x2"]])).fit()

    by_results = pool_fit(tables, ols)
    np.testing.assert_allclose(by_results.df, pooled.df, rtol=1e-10)
    by_tuple = pool_fit(tables, lambda t: (ols(t).params, ols(t).cov_params()))
    assert by_tuple.n_obs is None
    np.testing.assert_allclose(by_tuple.total, pooled.total, rtol=1e-10)

    class _BseOnly:
        def __init__(self, res):
            self.params, self.bse = res.params, res.bse

    by_bse = pool_fit(tables, lambda t: _BseOnly(sm.OLS(t["y"], sm.add_constant(t[["x1"]])).fit()))
    assert by_bse.names == ["const", "x1"]


def test_pool_degrees_of_freedom_limits(rng):
    m, p = 5, 3
    q = rng.normal(size=(m, p))
    u = rng.random((m, p)) + 0.5
    classic = pool(q, u)
    for n_obs in (10, 30, 100, 1000):
        br = pool(q, u, n_obs=n_obs, k=p)
        assert (br.df <= n_obs - p).all()  # never more than the complete data have
        assert (br.df <= classic.df).all()
    far = pool(q, u, n_obs=10**9, k=p)
    np.testing.assert_allclose(far.df, classic.df, rtol=1e-6)


def test_pool_without_between_variance():
    q = np.tile([1.0, 2.0], (4, 1))
    u = np.tile([0.2, 0.3], (4, 1))
    for n_obs in (None, 40):
        pooled = pool(q, u, n_obs=n_obs)
        assert (pooled.between == 0).all() and (pooled.lambda_ == 0).all()
        np.testing.assert_array_equal(pooled.total, pooled.within)
        # mice's FMI, (r + 2 / (df + 3)) / (r + 1), is 2 / (df + 3) when r = 0.
        np.testing.assert_allclose(pooled.fmi, 2 / (pooled.df + 3))
        if n_obs is None:
            assert (pooled.df > 1e8).all()  # mice floors lambda at 1e-4: (m - 1) / 1e-8
            assert (pooled.fmi < 1e-8).all()
        else:
            # Barnard-Rubin df tends to df_obs, so the FMI stays near 2 / (df_com + 3) = 0.05.
            np.testing.assert_allclose(pooled.df, 39 / 41 * 38 * (1 - 1e-4), rtol=1e-6)


def test_pool_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        pool([1.0], [1.0])
    with pytest.raises(ValueError, match="shape"):
        pool(np.zeros((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        pool([1.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        pool([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="n_obs - k"):
        pool([1.0, 2.0], [1.0, 1.0], n_obs=1, k=1)
    with pytest.raises(TypeError, match="statsmodels"):
        pool_fit([1, 2], lambda t: "nonsense")


# -- coverage of pooled intervals -------------------------------------------------------------
def _slope_coverage(replications: int, method: str, **options) -> float:
    """Share of pooled 95% intervals for the slope of y ~ x (truth 0.5) that cover it.

    n = 200 rows of x ~ N(0, 1), y = 1 + 0.5 x + N(0, 1); x missing completely at random in
    30% of rows; PPCA(1) on (x, y) is the saturated bivariate normal; m = 10 imputations.
    """
    import statsmodels.api as sm

    def ols(table: pd.DataFrame):
        return sm.OLS(table["y"].to_numpy(), sm.add_constant(table["x"].to_numpy())).fit()

    covered = 0
    for r in range(replications):
        rng = np.random.default_rng(1000 + r)
        n = 200
        x = rng.normal(size=n)
        y = 1 + 0.5 * x + rng.normal(size=n)
        x[rng.random(n) < 0.3] = np.nan
        df = pd.DataFrame({"x": x, "y": y})
        fit = ppgen.fit(ppgen.PPCA(1), df, method=method, seed=r, **options)
        pooled = pool_fit(fit.impute(df, n_imputations=10, seed=r), ols)
        lo, hi = pooled.conf_int()[1]
        covered += lo <= 0.5 <= hi
    return covered / replications


def test_pooled_interval_coverage_map_imputation():
    """Improper MI (MAP plug-in): slightly narrow intervals, but close to nominal."""
    assert _slope_coverage(40, "map") >= 0.85


@pytest.mark.slow
def test_pooled_interval_coverage_proper_mi_svi():
    """Proper MI (one SVI posterior draw per imputation): nominal 95% coverage."""
    coverage = _slope_coverage(200, "svi", guide="mvn", num_draws=100)
    assert 0.93 <= coverage <= 0.97


def test_complete_rows_and_small_inputs(rng):
    x = torch.tensor(rng.normal(size=(6, 3)))
    gmm, ppca = _gmm(2, "full", x.numpy()), _ppca(1, x.numpy())
    gmm_params, _ = _random_gmm_params(2, 3, "full", rng)
    ppca_params, _ = _random_ppca_params(3, 1, rng)
    assert torch.equal(gmm.impute(x, None, gmm_params), x)
    assert torch.equal(ppca.impute(x, None, ppca_params), x)
    _, mean, cov = gmm.conditional(x, None, gmm_params)
    assert torch.equal(mean, x.unsqueeze(1).expand(-1, 2, -1)) and not cov.any()
    mean, cov = ppca.conditional(x, None, ppca_params)
    assert torch.equal(mean, x) and not cov.any()
    # Scalar estimands with scalar variances from a callable; names default to positions.
    pooled = pool_fit([1.0, 2.0, 4.0], lambda v: (v, v / 10))
    assert pooled.names == ["0"] and pooled.df_complete == np.inf
    assert pooled.estimate[0] == pytest.approx(7 / 3)
    assert pool([1.0, 2.0], [1.0, 1.0], n_obs=20, k=2).df_complete == 18
    with pytest.raises(ValueError, match="alpha"):
        pooled.conf_int(alpha=1.5)
    with pytest.raises(ValueError, match="names"):
        pool([1.0, 2.0], [1.0, 1.0], names=["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        pool(np.zeros((2, 2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        pool_fit([1.0], lambda v: (v, 1.0))


def test_impute_keeps_observed_values_of_a_nullable_integer_column_modelled_as_continuous():
    df = pd.DataFrame(
        {
            "a": pd.array([1, 5, None, 7, 3, 9, 2, 4], dtype="Int64"),
            "b": [1.0, 2.5, 3.1, np.nan, 0.2, 1.1, 2.2, 0.7],
        }
    )
    fit = ppgen.fit(ppgen.GaussianMixture(1, "diag"), df, kinds={"a": "continuous"}, method="em")
    completed = fit.impute(df, 2, seed=0)[0]
    observed = df["a"].notna().to_numpy()
    assert np.array_equal(completed["a"].to_numpy()[observed], df["a"].to_numpy()[observed])
    assert completed.notna().all().all()
