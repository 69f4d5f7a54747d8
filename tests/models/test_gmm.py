"""GaussianMixture: closed forms against SciPy and scikit-learn, and against its own Pyro model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from scipy import stats
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import ppgen
from ppgen.data import Schema
from ppgen.testing.stationary import pyro_log_joint_and_gradient

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _built(K, cov_type, x):
    model = ppgen.GaussianMixture(K, cov_type, prior="default")
    model = model.build(Schema.infer(x, standardize=False))
    return model.to(dtype=torch.float64)


def _random_params(K, d, cov_type, rng):
    w = rng.dirichlet(np.ones(K))
    locs = rng.normal(size=(K, d)) * 2
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
    params = {"weights": w, "locs": locs, "precision": prec}
    return {k: torch.tensor(v) for k, v in params.items()}, covs


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_log_prob_equals_scipy_logsumexp(cov_type, rng):
    K, d, n = 3, 4, 50
    x = rng.normal(size=(n, d)) * 2
    mask = rng.random((n, d)) > 0.2
    model = _built(K, cov_type, x)
    params, covs = _random_params(K, d, cov_type, rng)
    got = model.log_prob(torch.tensor(x), torch.tensor(mask), params).numpy()
    for i in range(n):
        o = mask[i]
        terms = [
            np.log(params["weights"][k].item())
            + (
                stats.multivariate_normal(
                    params["locs"][k].numpy()[o], covs[k][np.ix_(o, o)]
                ).logpdf(x[i, o])
                if o.any()
                else 0.0
            )
            for k in range(K)
        ]
        assert got[i] == pytest.approx(logsumexp(terms), abs=1e-6)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_pyro_model_log_joint_equals_closed_form(cov_type, rng):
    """The enumerated Pyro model and the closed-form MAP objective are the same function."""
    K, d, n = 2, 3, 40
    x = torch.tensor(rng.normal(size=(n, d)))
    mask = torch.tensor(rng.random((n, d)) > 0.1)
    model = _built(K, cov_type, x.numpy())
    params, _ = _random_params(K, d, cov_type, rng)
    conditioned = poutine.condition(model.model, data=params)
    pyro_log_joint = -TraceEnum_ELBO(max_plate_nesting=1).loss(
        conditioned, lambda *a, **k: None, x, mask
    )
    assert pyro_log_joint == pytest.approx(model.log_joint(x, mask, params).item(), abs=1e-8)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_em_is_monotone_and_stops_at_a_stationary_point_of_the_pyro_objective(cov_type):
    df = ppgen.datasets.load("faithful")
    model = ppgen.GaussianMixture(3, cov_type, prior="default")  # EM of the MAP objective
    fit = ppgen.fit(model, df, method="em", tol=1e-10, max_steps=3000)
    assert np.all(np.diff(-fit.losses) >= -1e-9 * np.abs(fit.losses[:-1]))
    # At the EM fixed point the Pyro model's log joint has zero gradient (unconstrained space).
    log_joint, gradient = pyro_log_joint_and_gradient(fit)
    assert gradient < 1e-3 * fit.train.x.shape[0]
    assert float(log_joint) == pytest.approx(-fit.losses[-1], rel=1e-9)


def _sklearn_best(X, K, cov_type, n_init=10):
    return max(
        SkGaussianMixture(K, covariance_type=cov_type, random_state=s).fit(X).score(X)
        for s in range(n_init)
    )


@pytest.mark.parametrize("method", ["em", "map"])
def test_faithful_matches_best_of_ten_sklearn_restarts(method):
    df = ppgen.datasets.load("faithful")
    fit = ppgen.fit(ppgen.GaussianMixture(2, "full"), df, method=method)
    assert fit.score(df) >= _sklearn_best(df.to_numpy(), 2, "full") - 0.01


@pytest.mark.parametrize("method", ["em", "map"])
def test_standardized_wine_diag_matches_best_of_ten_sklearn_restarts(method):
    X = ppgen.datasets.load("wine", label=False).to_numpy()
    X = (X - X.mean(0)) / X.std(0)
    fit = ppgen.fit(ppgen.GaussianMixture(3, "diag"), X, method=method, n_init=3)
    assert fit.score(X) >= _sklearn_best(X, 3, "diag") - 0.01


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_bic_counts_parameters_like_sklearn(cov_type):
    df = ppgen.datasets.load("faithful")
    X = df.to_numpy()
    fit = ppgen.fit(ppgen.GaussianMixture(3, cov_type), df, method="em")
    described = {k: v.numpy() for k, v in fit.model.describe(dict(fit.params), fit.schema).items()}
    sk = SkGaussianMixture(3, covariance_type=cov_type).fit(X)
    sk.weights_ = described["weights"]
    sk.means_ = described["means"]
    sk.covariances_ = described["covariances" if cov_type == "full" else "variances"]
    if cov_type == "full":
        sk.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(sk.covariances_))
    else:
        sk.precisions_cholesky_ = 1 / np.sqrt(sk.covariances_)
    assert sk._n_parameters() == fit.model.n_parameters()
    assert fit.bic(df) == pytest.approx(sk.bic(X), rel=1e-9)
    assert fit.aic(df) == pytest.approx(sk.aic(X), rel=1e-9)
    assert fit.log_prob(df) == pytest.approx(sk.score_samples(X), abs=1e-8)


def test_memberships_are_probabilities_and_match_sklearn_labels():
    df = ppgen.datasets.load("faithful")
    fit = ppgen.fit(ppgen.GaussianMixture(2), df, method="em")
    proba = fit.predict_proba(df)
    assert proba.shape == (len(df), 2)
    assert np.allclose(proba.sum(1), 1)
    sk = SkGaussianMixture(2, random_state=0).fit(df.to_numpy()).predict(df.to_numpy())
    agree = np.mean(fit.predict(df) == sk)
    assert max(agree, 1 - agree) > 0.99


def test_sample_reproduces_the_fitted_moments():
    df = ppgen.datasets.load("faithful")
    fit = ppgen.fit(ppgen.GaussianMixture(2), df, method="em")
    draws = fit.sample(40_000, seed=3)
    assert list(draws.columns) == list(df.columns)
    d = {k: v.numpy() for k, v in fit.model.describe(dict(fit.params), fit.schema).items()}
    mean = d["weights"] @ d["means"]
    assert np.allclose(draws.mean().to_numpy(), mean, rtol=0.01)
    assert fit.sample(5, seed=1).equals(fit.sample(5, seed=1))
    assert not fit.sample(5, seed=1).equals(fit.sample(5, seed=2))


def test_map_never_collapses_onto_a_point():
    """A component started on a single point stays a proper density (the Wishart floor)."""
    x = np.r_[np.random.default_rng(0).normal(size=(60, 2)), [[5.0, 5.0]]]
    init = {"locs": np.array([[0.0, 0.0], [5.0, 5.0]])}
    fit = ppgen.fit(ppgen.GaussianMixture(2), x, method="map", init_values=init, standardize=False)
    cov = fit.model.describe(dict(fit.params), fit.schema)["covariances"]
    assert torch.linalg.eigvalsh(cov).min() > 1e-3
    assert np.isfinite(fit.score(x))
