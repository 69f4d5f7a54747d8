"""ELBO and IWAE per row, checked against the exact likelihoods of PPCA and the GMM."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyro
import pytest
import torch

import ppgen
from ppgen.evaluate import Estimate, elbo, iwae


@pytest.fixture(scope="module")
def ppca_data() -> np.ndarray:
    """n=300 rows from a PPCA with d=5, q=2 and noise standard deviation 0.1 (float64)."""
    rng = np.random.default_rng(2024)
    n, d, q = 300, 5, 2
    W = rng.normal(size=(d, q))
    z = rng.normal(size=(n, q))
    return z @ W.T + rng.normal(size=d) + 0.1 * rng.normal(size=(n, d))


@pytest.fixture(scope="module")
def ppca_missing(ppca_data) -> np.ndarray:
    rng = np.random.default_rng(7)
    x = ppca_data.copy()
    x[rng.random(x.shape) < 0.2] = np.nan
    x[np.isnan(x).all(1), 0] = ppca_data[np.isnan(x).all(1), 0]  # no all-missing rows
    return x


def _ppca_fit(data: np.ndarray, *, perturb: float = 0.0, widen: float = 1.0) -> ppgen.Fit:
    """A MAP fit, whose local guide fit() sets to the exact posterior, then perturbed.

    ``widen`` multiplies the guide's noise standard deviation, which widens its posterior
    about as much.
    """
    fit = ppgen.fit(ppgen.PPCA(2), data)
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        weight = fit.model.guide_weight
        noise = torch.randn(weight.shape, generator=g, dtype=weight.dtype)
        fit.model.guide_weight = weight + perturb * noise
        fit.model.guide_noise = fit.model.guide_noise * widen**2
    return fit


def test_exact_guide_gives_the_exact_log_likelihood_per_row(ppca_data):
    fit = _ppca_fit(ppca_data)
    exact = fit.log_prob(ppca_data)
    lower = elbo(fit, ppca_data, num_particles=10)
    iw = iwae(fit, ppca_data, k=10)
    # With the exact posterior as guide every weight equals p(x_i): no gap, no MC noise.
    np.testing.assert_allclose(lower.per_row, exact, rtol=0, atol=1e-6)
    np.testing.assert_allclose(iw.per_row, exact, rtol=0, atol=1e-6)
    assert lower.mc_se < 1e-8 and iw.mc_se < 1e-8


def test_imperfect_guide_orders_the_bounds_and_iwae_tightens_with_k(ppca_data):
    fit = _ppca_fit(ppca_data, perturb=0.05, widen=2.0)
    exact = float(np.mean(fit.log_prob(ppca_data)))
    m = 1000
    lower = elbo(fit, ppca_data, num_particles=m)
    bounds = {k: iwae(fit, ppca_data, k=k, seed=k) for k in (1, 10, 100, 1000)}
    # The ELBO gap (the mean KL from guide to posterior) is strictly positive.
    assert exact - lower.mean > max(0.5, 3 * lower.mc_se)
    # IWAE with one particle is a one-particle ELBO: same expectation, MC sd sqrt(m) * mc_se.
    assert math.isnan(bounds[1].mc_se)
    sd_one = lower.mc_se * math.sqrt(m)
    assert abs(bounds[1].mean - lower.mean) < 3 * sd_one
    mc = {1: sd_one, **{k: b.mc_se for k, b in bounds.items() if k > 1}}
    ks = sorted(bounds)
    for a, b in zip(ks[:-1], ks[1:], strict=True):
        assert bounds[a].mean <= bounds[b].mean + 3 * math.hypot(mc[a], mc[b])
    for k in ks[1:]:
        assert lower.mean <= bounds[k].mean + 3 * math.hypot(lower.mc_se, mc[k])
    for k in ks:
        assert bounds[k].mean <= exact + 3 * mc[k]
    assert lower.mean <= exact + 3 * lower.mc_se
    # The gap closes: still visible at k=10, gone within MC error at k=1000.
    assert bounds[10].mean < exact - 3 * mc[10]
    assert abs(bounds[1000].mean - exact) < 3 * mc[1000]


def test_missing_entries_are_masked_in_the_bounds(ppca_missing):
    # The guide is PPCA's posterior given each row's observed entries: exact on every row.
    assert np.isnan(ppca_missing).any(1).mean() > 0.3
    fit = _ppca_fit(ppca_missing)
    exact = fit.log_prob(ppca_missing)
    np.testing.assert_allclose(elbo(fit, ppca_missing, num_particles=5).per_row, exact, atol=1e-6)
    np.testing.assert_allclose(iwae(fit, ppca_missing, k=5).per_row, exact, atol=1e-6)


def test_iwae_reaches_the_masked_likelihood_on_incomplete_rows(ppca_missing):
    # A widened posterior is a proposal that covers the posterior of rows with one missing
    # entry: IWAE with k=1000 then matches their exact likelihood within Monte-Carlo error,
    # while the ELBO stays well below.
    rows = np.isnan(ppca_missing).sum(1) == 1
    assert rows.sum() > 50
    fit = _ppca_fit(ppca_missing, widen=10.0)
    target = float(np.mean(fit.log_prob(ppca_missing[rows])))
    iw = iwae(fit, ppca_missing[rows], k=1000)
    assert iw.mean <= target + 3 * iw.mc_se
    assert abs(iw.mean - target) < 3 * iw.mc_se
    assert elbo(fit, ppca_missing[rows]).mean < target - 1.0


def test_gmm_without_continuous_local_latents_is_exact():
    df = ppgen.datasets.load("faithful")
    fit = ppgen.fit(ppgen.GaussianMixture(2), df, method="em")
    exact = fit.log_prob(df)
    for est in (elbo(fit, df, num_particles=3, seed=1), iwae(fit, df, k=5, seed=2)):
        np.testing.assert_allclose(est.per_row, exact, rtol=0, atol=1e-12)
        assert est.mc_se == 0.0
        assert est.mean == pytest.approx(fit.score(df), abs=1e-12)


def test_estimate_fields(ppca_data):
    fit = _ppca_fit(ppca_data, perturb=0.05)
    est = elbo(fit, ppca_data, num_particles=20)
    assert isinstance(est, Estimate)
    assert est.per_row.shape == (300,)
    assert float(est) == est.mean == pytest.approx(est.per_row.mean())
    assert est.se == pytest.approx(est.per_row.std(ddof=1) / math.sqrt(300))
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.mean = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        est.per_row[0] = 0.0


def test_seeds_chunks_and_isolation(ppca_data):
    fit = _ppca_fit(ppca_data, perturb=0.05, widen=2.0)
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    a = iwae(fit, ppca_data, k=50, seed=3)
    assert torch.equal(torch.rand(1), expected)  # the caller's RNG is untouched
    assert len(pyro.get_param_store()) == 0  # nothing leaks into Pyro's global store
    assert np.array_equal(a.per_row, iwae(fit, ppca_data, k=50, seed=3).per_row)
    assert not np.array_equal(a.per_row, iwae(fit, ppca_data, k=50, seed=4).per_row)
    # Rows are processed in chunks; the chunk size changes the draws but not the estimand.
    chunked = iwae(fit, ppca_data, k=50, seed=3, batch_size=7)
    assert not np.array_equal(a.per_row, chunked.per_row)
    assert abs(chunked.mean - a.mean) < 3 * math.hypot(a.mc_se, chunked.mc_se)
    # A stale parameter of the same name in Pyro's global store is neither read nor changed.
    with pyro.get_param_store().scope():
        stale = pyro.param("guide_weight", torch.full((2, 5), 9.0, dtype=torch.float64))
        assert np.array_equal(iwae(fit, ppca_data, k=50, seed=3).per_row, a.per_row)
        assert torch.equal(pyro.param("guide_weight"), stale)
    assert len(pyro.get_param_store()) == 0
    with pytest.raises(ValueError, match="k must be a positive integer"):
        iwae(fit, ppca_data, k=0)
    with pytest.raises(ValueError, match="num_particles"):
        elbo(fit, ppca_data, num_particles=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        elbo(fit, ppca_data, batch_size=0)


def test_sequence_models_are_refused_with_a_clear_error():
    from ppgen.evaluate import ais, bdmc

    geyser = ppgen.datasets.load("geyser")
    fit = ppgen.fit(ppgen.HMM(2, covariance_type="diag"), geyser, method="em", n_init=1)
    for call in (
        lambda: elbo(fit, geyser),
        lambda: iwae(fit, geyser),
        lambda: ais(fit, geyser, n_steps=5),
        lambda: bdmc(fit, n_rows=5, n_steps=5, n_chains=2),
    ):
        with pytest.raises(ValueError, match="whole sequences"):
            call()
