"""PPCA: the Tipping-Bishop closed form, the exact posterior, and its Pyro model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from scipy import stats

import ppgen
from ppgen.data import Schema
from ppgen.testing.stationary import pyro_log_joint_and_gradient


def _standardized_wine() -> np.ndarray:
    X = ppgen.datasets.load("wine", label=False).to_numpy()
    return (X - X.mean(0)) / X.std(0)


def tipping_bishop_loglik(X: np.ndarray, q: int) -> float:
    """Maximum mean log-likelihood per row of PPCA (Tipping & Bishop 1999, eq. 4, 7, 8)."""
    n, d = X.shape
    S = np.cov(X, rowvar=False, bias=True)
    evals = np.sort(np.linalg.eigvalsh(S))[::-1]
    noise = evals[q:].mean()
    # log|C| = sum of the q leading eigenvalues' logs + (d - q) log noise; tr(C^-1 S) = d.
    logdet = np.log(evals[:q]).sum() + (d - q) * np.log(noise)
    return -0.5 * (d * np.log(2 * np.pi) + logdet + d)


@pytest.mark.parametrize("q", [2, 5])
def test_map_reaches_the_closed_form_mle_on_wine(q):
    X = _standardized_wine()
    fit = ppgen.fit(ppgen.PPCA(q), X, standardize=False)
    assert fit.score(X) == pytest.approx(tipping_bishop_loglik(X, q), abs=1e-3)


def test_map_from_a_random_start_reaches_the_closed_form_mle():
    X = _standardized_wine()
    rng = np.random.default_rng(1)
    init = {"W": rng.normal(scale=0.1, size=(13, 2)), "loc": np.zeros(13), "noise": 2.0}
    fit = ppgen.fit(ppgen.PPCA(2), X, standardize=False, init_values=init)
    assert fit.score(X) == pytest.approx(tipping_bishop_loglik(X, 2), abs=1e-3)


def test_log_prob_is_the_gaussian_marginal_of_observed_entries(rng):
    X = _standardized_wine()
    fit = ppgen.fit(ppgen.PPCA(3), X, standardize=False)
    W, loc, noise = (fit.params[k].numpy() for k in ("W", "loc", "noise"))
    cov = W @ W.T + noise * np.eye(13)
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.2] = np.nan
    got = fit.log_prob(Xm)
    for i in range(0, len(X), 7):
        o = ~np.isnan(Xm[i])
        want = stats.multivariate_normal(loc[o], cov[np.ix_(o, o)]).logpdf(Xm[i, o])
        assert got[i] == pytest.approx(want, abs=1e-6)


def test_elbo_with_the_exact_posterior_guide_equals_the_log_likelihood():
    X = _standardized_wine()
    # prior="default": log_prior is the density of the priors the Pyro program conditions on.
    fit = ppgen.fit(ppgen.PPCA(2, prior="default"), X, standardize=False)
    model, x = fit.model, fit.train.x
    model.set_exact_guide(dict(fit.params))
    conditioned = poutine.condition(model.model, data=dict(fit.params))
    # log p(x, z) - log q(z | x) is constant in z for the exact posterior: one particle is exact.
    # The conditioned global sites add their log prior to both sides.
    log_prior = model.log_prior(dict(fit.params)).item()
    elbo = -Trace_ELBO(num_particles=1).loss(conditioned, model.guide, x, None) - log_prior
    exact = fit.log_prob(X).sum()
    assert elbo == pytest.approx(exact, abs=1e-6)
    # and a perturbed guide gives a strict lower bound
    with torch.no_grad():
        model.guide_loc = model.guide_loc + 0.3
    perturbed = -Trace_ELBO(num_particles=200).loss(conditioned, model.guide, x, None) - log_prior
    assert perturbed < exact - 1


def test_posterior_matches_the_closed_form_and_transform():
    X = _standardized_wine()
    fit = ppgen.fit(ppgen.PPCA(2), X, standardize=False)
    W, loc, noise = (fit.params[k].numpy() for k in ("W", "loc", "noise"))
    M = W.T @ W + noise * np.eye(2)
    mean = (X - loc) @ W @ np.linalg.inv(M).T
    assert np.allclose(fit.transform(X), mean, atol=1e-8)
    _, cov = fit.model.posterior(fit.train.x, fit.train.mask, dict(fit.params))
    assert np.allclose(cov[0].numpy(), noise * np.linalg.inv(M), atol=1e-10)


def test_sample_has_the_model_covariance():
    X = _standardized_wine()
    fit = ppgen.fit(ppgen.PPCA(2), X, standardize=False)
    W, noise = fit.params["W"].numpy(), fit.params["noise"].item()
    draws = fit.sample(100_000, seed=0)
    assert np.allclose(np.cov(draws, rowvar=False), W @ W.T + noise * np.eye(13), atol=0.03)


def test_ppca_refuses_non_continuous_columns_and_too_many_components():
    penguins = ppgen.datasets.load("penguins").dropna()
    with pytest.raises(ValueError, match="species"):
        ppgen.fit(ppgen.PPCA(2), penguins)
    with pytest.raises(ValueError, match="n_components"):
        ppgen.fit(ppgen.PPCA(13), _standardized_wine())


def test_bic_parameter_count():
    model = ppgen.PPCA(2).build(Schema.infer(np.zeros((3, 5))))
    # 5*2 loadings less 1 rotation, 5 means, 1 noise variance
    assert model.n_parameters() == 10 - 1 + 5 + 1


# -- EM with missing entries ---------------------------------------------------------------------
def _wine_with_holes(fraction=0.15, seed=3) -> np.ndarray:
    X = _standardized_wine()[:, :8]
    holes = np.random.default_rng(seed).random(X.shape) < fraction
    holes[holes.all(1), 0] = False
    X = X.copy()
    X[holes] = np.nan
    return X


def test_em_reaches_the_closed_form_mle_on_complete_data():
    X = _standardized_wine()
    fit = ppgen.fit(ppgen.PPCA(3), X, standardize=False, method="em", tol=1e-9, max_steps=20000)
    assert fit.score(X) == pytest.approx(tipping_bishop_loglik(X, 3), abs=1e-3)


def test_em_with_missing_entries_is_monotone_and_stationary_for_the_pyro_model():
    X = _wine_with_holes()
    model = ppgen.PPCA(2, prior="default")  # EM of the Pyro program's MAP objective
    fit = ppgen.fit(model, X, standardize=False, method="em", tol=1e-10, max_steps=20000)
    assert len(fit.losses) > 10
    assert np.all(np.diff(-fit.losses) >= -1e-9 * np.abs(fit.losses[:-1]))
    log_joint, gradient = pyro_log_joint_and_gradient(fit, fit.model.collapsed)
    assert log_joint == pytest.approx(-fit.losses[-1], rel=1e-9)
    assert gradient < 1e-3 * X.shape[0]


def test_em_with_missing_entries_reaches_the_lbfgs_map_fit():
    X = _wine_with_holes()
    model = ppgen.PPCA(2, prior="default")  # EM and L-BFGS of the same MAP objective
    em = ppgen.fit(model, X, standardize=False, method="em", tol=1e-11, max_steps=20000)
    lbfgs = ppgen.fit(model, X, standardize=False, method="map", tol=1e-12)
    x, mask = em.train.x, em.train.mask
    assert float(em.model.log_joint(x, mask, em.params)) == pytest.approx(
        float(lbfgs.model.log_joint(x, mask, lbfgs.params)), abs=1e-5
    )
    # W is identified up to rotation: compare W W^T, the mean and the noise variance.
    gram = [f.params["W"] @ f.params["W"].mT for f in (em, lbfgs)]
    torch.testing.assert_close(gram[0], gram[1], rtol=1e-4, atol=1e-4)
    for site in ("loc", "noise"):
        torch.testing.assert_close(em.params[site], lbfgs.params[site], rtol=1e-4, atol=1e-4)
