"""EBM: MALA samples and AIS of log Z against closed forms and grid integrals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ppgen
from ppgen.evaluate.partition import log_partition, partition_schedule
from ppgen.models.ebm import EBM

torch.set_num_threads(1)
DT = torch.float64


def _ebm(p: int, scale: float, seed: int = 0, **kwargs):
    """A built EBM with random network weights of sd ``scale`` (0: the envelope alone)."""
    model = EBM(hidden=(16,), **kwargs)
    model.dim = p
    g = torch.Generator().manual_seed(seed)
    params = {
        name: scale * torch.randn(shape, generator=g, dtype=DT)
        for name, shape in model._shapes().items()
    }
    return model, params


def _grid(lim: float = 15.0, n: int = 601):
    g = torch.linspace(-lim, lim, n, dtype=DT)
    return torch.cartesian_prod(g, g), float(g[1] - g[0]) ** 2


def test_envelope_alone_is_a_gaussian_sampled_and_normalized_exactly():
    model, params = _ebm(2, 0.0, envelope=1.5, n_sample_steps=300, mala_step=0.3)
    torch.manual_seed(0)
    x = model.sample(4000, params)
    assert torch.allclose(x.mean(0), torch.zeros(2, dtype=DT), atol=4 * 1.5 / math.sqrt(4000))
    assert torch.allclose(x.var(0), torch.full((2,), 2.25, dtype=DT), rtol=0.1)
    data = torch.randn(300, 2, dtype=DT)
    annealer = model.annealer(data, torch.ones_like(data, dtype=torch.bool), params)
    z = log_partition(annealer, partition_schedule("linear", 200), 100)
    exact = math.log(2 * math.pi * 1.5**2)
    assert abs(z["log_z"] - exact) < max(3 * z["log_z_se"], 1e-3), (z, exact)


def test_ais_log_z_and_mala_moments_match_a_grid_for_a_random_network():
    model, params = _ebm(2, 1.0, seed=1, n_sample_steps=200, mala_step=0.1)
    grid, area = _grid()
    with torch.no_grad():
        log_f = -model.energy(grid, params)
    exact = float(torch.logsumexp(log_f, 0) + math.log(area))
    weights = torch.softmax(log_f, 0)
    mean = weights @ grid
    torch.manual_seed(0)
    data = model.sample(200, params)  # rows like the model's, for the base
    annealer = model.annealer(data, torch.ones_like(data, dtype=torch.bool), params)
    torch.manual_seed(1)
    z = log_partition(annealer, partition_schedule("piecewise", 300), 100)
    assert abs(z["log_z"] - exact) < 3 * z["log_z_se"] + 0.02, (z, exact)
    assert abs(z["log_z"] - exact) < 0.1
    torch.manual_seed(2)
    x = model.sample(2000, params)
    se = x.std(0) / math.sqrt(2000)
    assert torch.all((x.mean(0) - mean).abs() < 5 * se), (x.mean(0), mean)


def _mixture(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    first = rng.random(n) < 0.4
    a = rng.normal([-2.0, 0.0], [0.5, 0.5], (n, 2))
    b = rng.normal([1.5, 1.0], [0.7, 0.4], (n, 2))
    return np.where(first[:, None], a, b)


def test_errors_and_contract_pieces():
    X = _mixture(200)
    fit = ppgen.fit(ppgen.EBM(hidden=(8,)), X, seed=0, max_epochs=1, n_chains=50, progress=False)
    assert fit.method == "cd" and fit.kind == "point"
    assert fit.info["persistent"] and fit.info["k"] == 20
    with pytest.raises(NotImplementedError, match=r"ppgen.evaluate.ais\(fit, data\)"):
        fit.log_prob(X)
    Xm = X.copy()
    Xm[3, 1] = np.nan
    with pytest.raises(ValueError, match="missing"):
        ppgen.evaluate.ais(fit, Xm, n_steps=5, n_chains=2)
    with pytest.raises(ValueError, match="missing"):
        ppgen.fit(ppgen.EBM(hidden=(8,)), Xm, max_epochs=1, progress=False)
    with pytest.raises(ValueError, match="hidden"):
        ppgen.EBM(hidden=(0,))
    model = ppgen.EBM(hidden=(8, 4), noise=0.05)
    assert type(model)(**model.config()).config() == model.config()


@pytest.mark.slow
def test_trained_ebm_on_a_mixture_integrates_to_one_and_samples_its_moments():
    X = _mixture(1000)
    fit = ppgen.fit(ppgen.EBM(hidden=(32, 32)), X, seed=0, max_epochs=30, progress=False)
    res = ppgen.evaluate.ais(fit, X, n_steps=1000, n_chains=200, seed=0)
    # The AIS-normalized density on the encoded scale, integrated on a grid.
    g = torch.linspace(-8, 8, 401, dtype=fit.dtype)
    grid = torch.cartesian_prod(g, g)
    with torch.no_grad():
        energy = fit.model.energy(grid, dict(fit.params))
    integral = float(torch.exp(-energy - res.log_z).sum()) * float(g[1] - g[0]) ** 2
    # exp(-log Z_hat) has relative error log_z_se; the grid adds a little.
    assert abs(integral - 1.0) < 3 * res.log_z_se + 0.01, (integral, res.log_z_se)
    # The samples match the mixture's moments (to the fitted model's accuracy).
    S = fit.sample(3000, seed=1)
    np.testing.assert_allclose(S.mean(0), X.mean(0), atol=0.25)
    np.testing.assert_allclose(S.std(0), X.std(0), rtol=0.15)
    np.testing.assert_allclose(np.corrcoef(S.T)[0, 1], np.corrcoef(X.T)[0, 1], atol=0.15)
    # A fair density: not far below a two-component Gaussian mixture fitted to the same rows.
    gmm = ppgen.fit(ppgen.GaussianMixture(2), X, seed=0)
    assert res.mean > gmm.score(X) - 0.5, (res.mean, gmm.score(X))
