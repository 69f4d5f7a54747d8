"""BayesianPCA: ARD switches off the components the data do not support (Bishop 1999)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ppgen
from ppgen.models.bpca import BayesianPCA


def simulate(q: int, rng: np.random.Generator, n: int = 500, d: int = 10) -> np.ndarray:
    W = rng.normal(size=(d, q)) * 2
    return rng.normal(size=(n, q)) @ W.T + rng.normal(size=(n, d)) + 5.0


@pytest.fixture(scope="module")
def fitted():
    x = simulate(3, np.random.default_rng(0))
    return x, ppgen.fit(BayesianPCA(), x)


def test_ard_finds_the_dimension_and_climbs(fitted):
    x, fit = fitted
    assert fit.model.n_components == 9 and fit.model.config()["n_components"] is None
    assert fit.model.effective_dimension(fit.params) == 3
    objective = -fit.losses
    assert np.all(np.diff(objective) >= -1e-8 * len(x))
    # The six unsupported components are off: alpha at its largest value, loadings ~ 0.
    alpha, W = fit.params["alpha"], fit.params["W"]
    off = alpha > 100 * alpha.min()
    assert int(off.sum()) == 6
    assert float((W[:, off] ** 2).sum()) < 1e-6 * float((W[:, ~off] ** 2).sum())
    assert fit.model.describe(fit.params, fit.schema)["effective_dimension"] == 3


def test_the_estimate_is_a_fixed_point_of_the_closed_form_updates(fitted):
    x, fit = fitted
    enc = fit.encode(x)
    new, _ = fit.model.em_step(enc.x, enc.mask, fit.params)
    for name in ("W", "noise", "loc", "alpha"):
        torch.testing.assert_close(new[name], fit.params[name], atol=1e-4, rtol=1e-4)
    d = x.shape[1]
    rate = fit.model.b * fit.model.unit**2
    want = (d / 2 + fit.model.a - 1) / ((new["W"] ** 2).sum(0) / 2 + rate)
    torch.testing.assert_close(new["alpha"], want)


def test_ard_loses_little_likelihood_against_ppca_of_the_right_size(fitted):
    x, fit = fitted
    ml = ppgen.fit(ppgen.PPCA(3), x)
    # The ARD prior shrinks the three active columns slightly: a fraction of a nat in total.
    assert fit.log_prob(x).sum() == pytest.approx(ml.log_prob(x).sum(), abs=0.5)
    assert fit.log_prob(x).sum() <= ml.log_prob(x).sum() + 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("q", [2, 4])
def test_effective_dimension_recovery(q):
    """50 replications: the effective dimension is within 1 of the truth in >= 90%."""
    rng = np.random.default_rng(q)
    hits = 0
    for _ in range(50):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ppgen.ConvergenceWarning)
            fit = ppgen.fit(BayesianPCA(), simulate(q, rng))
        hits += abs(fit.model.effective_dimension(fit.params) - q) <= 1
    assert hits >= 45, hits
