"""ChEES-HMC with a dense mass matrix (``ppgen.mcmc(..., dense_mass=True)``): one transition with
a dense metric leaves a correlated Gaussian exactly invariant, and the adapted metric is the
target's covariance, whose moments the chains then reproduce."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from test_chees import _gaussian, _mvn_model  # tests/infer is on sys.path (prepend import mode)

from ppgen._utils import seeded
from ppgen.infer import hmc
from ppgen.infer.chees import mcmc
from ppgen.infer.potential import Potential

torch.set_num_threads(1)


def test_one_transition_with_a_dense_metric_leaves_a_correlated_gaussian_invariant():
    mean, cov = _gaussian(8, 0.9)
    exact = torch.distributions.MultivariateNormal(mean, cov)
    potential = Potential(_mvn_model(mean, cov))
    # A dense metric that is not the covariance (a wrong correlation), a large step: any error
    # in the momentum's law, the kinetic energy or the integrator shows in the ranks.
    _, other = _gaussian(8, 0.5)
    reps, bins = 500, 20
    with seeded(0):
        state = hmc.point(exact.sample((reps,)), potential)
        new, prop = hmc.step(state, potential, 0.6, 6, 1.3 * other)
        fresh = exact.sample((reps * (bins - 1),)).reshape(reps, bins - 1, -1)
    assert 0.2 < float(prop.accept_prob.mean()) < 0.95
    for j in range(8):
        ranks = (fresh[:, :, j] < new.u[:, j, None]).sum(1).numpy()
        p = stats.chisquare(np.bincount(ranks, minlength=bins)).pvalue
        assert p > 0.01 / 8, (j, p)


def test_the_dense_metric_is_the_pooled_covariance_and_the_moments_are_exact():
    mean, cov = _gaussian(10, 0.95)
    result = mcmc(
        _mvn_model(mean, cov), num_chains=32, num_warmup=200, num_samples=100, dense_mass=True
    )
    assert result.inv_mass.shape == (10, 10)
    err = np.linalg.norm(result.inv_mass - cov.numpy()) / np.linalg.norm(cov.numpy())
    assert err < 0.25, err
    table = result.summary()
    sd = cov.diagonal().sqrt().numpy()
    z_mean = (table["mean"].to_numpy() - mean.numpy()) / table["mcse_mean"].to_numpy()
    z_sd = (table["sd"].to_numpy() - sd) / table["mcse_sd"].to_numpy()
    assert np.abs(z_mean).max() < 4 and np.abs(z_sd).max() < 4, (z_mean, z_sd)
    assert result.divergences == 0 and table["ess_bulk"].min() > 400


def test_dense_mass_is_for_chees():
    mean, cov = _gaussian(2, 0.5)
    with pytest.raises(ValueError, match="dense_mass"):
        mcmc(_mvn_model(mean, cov), num_chains=2, num_samples=2, kernel="nuts", dense_mass=True)
