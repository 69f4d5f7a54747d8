"""EM with partially observed rows (Ghahramani & Jordan 1994): the E-step against the textbook
per-row conditional moments, the shared factorizations of the E- and M-steps, monotonicity, the
fixed point against the Pyro model and L-BFGS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ppgen
from ppgen.data import Schema
from ppgen.models.distributions import condition_on_precision
from ppgen.models.likelihoods import Normal, gaussian_m_step
from ppgen.testing.stationary import pyro_log_joint_and_gradient

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PRIOR = {"loc_scale": 10.0, "covariance_prior": 0.1}


def _table(rng, n=150, d=4, missing=0.2):
    """Correlated Gaussian rows, two clusters, MCAR entries removed (no row entirely)."""
    a = rng.normal(size=(d, d))
    x = rng.normal(size=(n, d)) @ a.T
    x[: n // 3] += 3.0
    miss = rng.random((n, d)) < missing
    miss[miss.all(1), 0] = False
    xm = x.copy()
    xm[miss] = np.nan
    return x, xm, ~miss


def _reference_m_step(x, obs, resp, locs, precision):
    """The missing-data ECM step one row at a time with covariance-form textbook formulas:
    x_m | x_o ~ N(mu_m + S_mo S_oo^-1 (x_o - mu_o), S_mm - S_mo S_oo^-1 S_om)."""
    n, d = x.shape
    K = resp.shape[1]
    new_locs, new_prec = np.zeros((K, d)), np.zeros((K, d, d))
    for k in range(K):
        S = np.linalg.inv(precision[k])
        xhat, C = np.zeros((n, d)), np.zeros((n, d, d))
        for i in range(n):
            o, m = obs[i], ~obs[i]
            if not o.any():
                continue
            xhat[i] = np.where(o, x[i], 0.0)
            if m.any():
                gain = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])
                xhat[i, m] = locs[k, m] + gain @ (x[i, o] - locs[k, o])
                C[i][np.ix_(m, m)] = S[np.ix_(m, m)] - gain @ S[np.ix_(o, m)]
        r = resp[:, k] * obs.any(1)
        n_k = r.sum()
        lhs = n_k * precision[k] + np.eye(d) / PRIOR["loc_scale"] ** 2
        mu = np.linalg.solve(lhs, precision[k] @ (r @ xhat))
        dev = xhat - mu
        scatter = (dev * r[:, None]).T @ dev + np.einsum("i,ijk->jk", r, C)
        cov = (PRIOR["covariance_prior"] * np.eye(d) + scatter) / (n_k + 1.0)
        new_locs[k], new_prec[k] = mu, np.linalg.inv(cov)
    return new_locs, new_prec


def test_e_step_and_m_step_equal_the_per_row_textbook_formulas(rng):
    _, xm, obs = _table(rng, n=40, d=5, missing=0.3)
    obs[3] = False  # a row with nothing observed adds nothing to the Gaussian block
    K = 2
    resp = rng.dirichlet(np.ones(K), size=len(xm))
    locs = rng.normal(size=(K, 5))
    a = rng.normal(size=(K, 5, 5))
    precision = np.linalg.inv(a @ a.transpose(0, 2, 1) + np.eye(5))
    want_locs, want_prec = _reference_m_step(np.nan_to_num(xm), obs, resp, locs, precision)
    t = torch.tensor
    params = {"locs": t(locs), "precision": t(precision)}
    got = gaussian_m_step(
        t(xm), t(obs), t(resp), params, covariance_type="full", **PRIOR
    )  # NaN at missing entries must not leak
    np.testing.assert_allclose(got["locs"].numpy(), want_locs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got["precision"].numpy(), want_prec, rtol=1e-9, atol=1e-9)
    # The per-column likelihood of HMM emissions shares the same step.
    schema = Schema.infer(xm, standardize=False)
    lik = Normal(schema, schema.positions("continuous"), K, "full", **PRIOR)
    same = lik.m_step(t(np.nan_to_num(xm)), t(obs), t(resp), params)
    np.testing.assert_allclose(same["precision"].numpy(), want_prec, rtol=1e-9, atol=1e-9)


def test_gaussian_conditional_blocks_equal_the_textbook_covariance_form(rng):
    """Each row's r x r factor of Lambda_mm, padded and placed back at its columns, gives the
    covariance-form conditional S_mm - S_mo S_oo^-1 S_om; the weighted sum over rows and the
    draws' covariance (noise of unit vectors) are the same matrices. Rows miss 0 to d entries."""
    n, d = 12, 5
    miss = rng.random((n, d)) < 0.4
    miss[0], miss[1] = False, True
    a = rng.normal(size=(2, d, d))
    S = a @ a.transpose(0, 2, 1) + np.eye(d)
    locs = rng.normal(size=(2, 1, d))
    x = rng.normal(size=(n, d))
    cond = condition_on_precision(
        torch.tensor(x),
        torch.tensor(miss),
        torch.tensor(locs),
        torch.tensor(np.linalg.inv(S))[:, None],
    )  # batch (2, n)
    cov = cond.covariance().numpy()
    weights = rng.random((2, n))
    want_sum = np.zeros((2, d, d))
    for k in range(2):
        for i in range(n):
            m, o = miss[i], ~miss[i]
            want = np.zeros((d, d))
            gain = S[k][np.ix_(m, o)] @ np.linalg.inv(S[k][np.ix_(o, o)])
            want[np.ix_(m, m)] = S[k][np.ix_(m, m)] - gain @ S[k][np.ix_(o, m)]
            np.testing.assert_allclose(cov[k, i], want, rtol=1e-10, atol=1e-10)
            mean = np.where(m, 0.0, x[i])
            mean[m] = locs[k, 0, m] + gain @ (x[i, o] - locs[k, 0, o])
            np.testing.assert_allclose(cond.mean[k, i].numpy(), mean, rtol=1e-10, atol=1e-10)
            want_sum[k] += weights[k, i] * want
    got_sum = cond.covariance_sum(torch.tensor(weights)).numpy()
    np.testing.assert_allclose(got_sum, want_sum, rtol=1e-10, atol=1e-10)
    noise = torch.stack([cond.noise(e) for e in torch.eye(d, dtype=torch.float64)], -1)
    np.testing.assert_allclose((noise @ noise.mT).numpy(), cov, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("K", [1, 3])
def test_em_step_equals_the_separate_e_and_m_steps(rng, K):
    """GaussianMixture.em_step shares the E-step's factorizations with the M-step: the same
    update as m_step after predict_proba, the log joint at the old parameters, and the textbook
    step."""
    _, xm, obs = _table(rng, n=40, d=5, missing=0.3)
    obs[3] = False
    schema = Schema.infer(xm, standardize=False)
    model = ppgen.GaussianMixture(K, "full", prior="default").build(schema)
    a = rng.normal(size=(K, 5, 5))
    precision = np.linalg.inv(a @ a.transpose(0, 2, 1) + np.eye(5))
    params = {
        "weights": torch.tensor(rng.dirichlet(np.ones(K))),
        "locs": torch.tensor(rng.normal(size=(K, 5))),
        "precision": torch.tensor(precision),
    }
    x, mask = torch.tensor(np.nan_to_num(xm)), torch.tensor(obs)
    new, log_joint = model.em_step(x, mask, params)
    resp = model.predict_proba(x, mask, params)
    separate = model.m_step(x, mask, resp, params)
    assert float(log_joint) == pytest.approx(float(model.log_joint(x, mask, params)), rel=1e-12)
    for site in separate:
        torch.testing.assert_close(new[site], separate[site], rtol=1e-10, atol=1e-10)
    want_locs, want_prec = _reference_m_step(
        x.numpy(), obs, resp.numpy(), params["locs"].numpy(), precision
    )
    np.testing.assert_allclose(new["locs"].numpy(), want_locs, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(new["precision"].numpy(), want_prec, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_complete_rows_give_the_complete_data_step_exactly(rng, cov_type):
    """An all-True mask, and rows with nothing observed, leave the complete-data step as it was."""
    x, _, _ = _table(rng, n=60, d=3)
    x = torch.tensor(x)
    resp = torch.tensor(rng.dirichlet(np.ones(2), size=60))
    options = {"covariance_type": cov_type, **PRIOR}
    start = gaussian_m_step(x, None, resp, None, **options)
    base = gaussian_m_step(x, None, resp, start, **options)
    full_mask = gaussian_m_step(x, torch.ones_like(x, dtype=torch.bool), resp, start, **options)
    for site in base:
        assert torch.equal(base[site], full_mask[site])
    # Appending rows with no entry observed changes nothing in the Gaussian block.
    xx = torch.cat([x, torch.full((5, 3), float("nan"), dtype=x.dtype)])
    mm = torch.cat([torch.ones_like(x, dtype=torch.bool), torch.zeros(5, 3, dtype=torch.bool)])
    rr = torch.cat([resp, resp[:5]])
    padded = gaussian_m_step(xx, mm, rr, start, **options)
    for site in base:
        torch.testing.assert_close(padded[site], base[site], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_em_with_missing_entries_is_monotone_and_stationary_for_the_pyro_model(rng, K, cov_type):
    _, xm, _ = _table(rng)
    model = ppgen.GaussianMixture(K, cov_type, prior="default")  # EM of the MAP objective
    fit = ppgen.fit(model, xm, method="em", tol=1e-11, max_steps=5000, progress=False)
    assert len(fit.losses) > 5  # missing entries: EM takes more than a few steps
    assert np.all(np.diff(-fit.losses) >= -1e-9 * np.abs(fit.losses[:-1]))
    log_joint, gradient = pyro_log_joint_and_gradient(fit)
    assert float(log_joint) == pytest.approx(-fit.losses[-1], rel=1e-9)
    assert gradient < 1e-4 * fit.train.x.shape[0]


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_em_fixed_point_equals_the_lbfgs_map_fit(rng, cov_type):
    _, xm, _ = _table(rng)
    model = ppgen.GaussianMixture(1, cov_type, prior="default")  # EM and L-BFGS of one objective
    em = ppgen.fit(model, xm, method="em", tol=1e-12, max_steps=5000, progress=False)
    lbfgs = ppgen.fit(model, xm, method="map", max_steps=500, tol=1e-12, progress=False)
    assert em.losses[-1] == pytest.approx(lbfgs.losses[-1], rel=1e-8)
    for site in ("locs", "precision"):
        np.testing.assert_allclose(em.params[site], lbfgs.params[site], rtol=1e-4, atol=1e-5)
