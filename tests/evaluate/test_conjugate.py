"""NUTS and SVI against a posterior known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

import ppgen
from ppgen.testing import NormalMean

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(4).normal(loc=[1.0, -0.5], scale=2.0, size=(30, 2))


def test_nuts_posterior_mean_and_variance_match_the_closed_form(data):
    model = NormalMean(noise_scale=2.0, prior_loc=0.0, prior_scale=1.0)
    fit = ppgen.fit(
        model,
        data,
        method="nuts",
        standardize=False,
        num_samples=500,
        warmup_steps=300,
        num_chains=2,
        seed=1,
    )
    mean, var = fit.model.posterior_mean_var(fit.train.x, fit.train.mask)
    draws = fit.samples["mean"].reshape(-1, 2).numpy()
    ess = fit.summary()["ess_bulk"].to_numpy()
    # Monte-Carlo standard errors of the posterior mean and variance estimates from the ESS
    mcse_mean = np.sqrt(var.numpy() / ess)
    mcse_var = var.numpy() * np.sqrt(2 / ess)
    assert np.all(np.abs(draws.mean(0) - mean.numpy()) < 4 * mcse_mean)
    assert np.all(np.abs(draws.var(0) - var.numpy()) < 4 * mcse_var)
    assert not fit.divergent.any()


def test_map_is_the_posterior_mode(data):
    model = NormalMean(noise_scale=2.0, prior_scale=1.0)
    fit = ppgen.fit(model, data, method="map", standardize=False)
    mean, _ = fit.model.posterior_mean_var(fit.train.x, fit.train.mask)
    assert np.allclose(fit.params["mean"].numpy(), mean.numpy(), atol=1e-6)


def test_svi_full_rank_guide_recovers_the_gaussian_posterior(data):
    model = NormalMean(noise_scale=2.0, prior_scale=1.0)
    fit = ppgen.fit(
        model,
        data,
        method="svi",
        standardize=False,
        guide="mvn",
        lr=0.02,
        max_steps=3000,
        num_particles=8,
        num_draws=4000,
        seed=0,
    )
    mean, var = fit.model.posterior_mean_var(fit.train.x, fit.train.mask)
    draws = fit.samples["mean"].reshape(-1, 2).numpy()
    assert np.allclose(draws.mean(0), mean.numpy(), atol=0.05)
    assert np.allclose(draws.var(0), var.numpy(), rtol=0.2)
