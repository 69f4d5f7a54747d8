"""AIS and BDMC against PPCA's exact marginal likelihood, and GMM's exact enumeration."""

from __future__ import annotations

import numpy as np
import pytest

import ppgen
from ppgen.evaluate.ais import AISResult, ais, bdmc, schedule


def _simulate_ppca(n: int, d: int, q: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, q))
    loc = rng.normal(size=d)
    z = rng.normal(size=(n, q))
    return z @ W.T + loc + np.sqrt(noise) * rng.normal(size=(n, d))


@pytest.fixture(scope="module")
def small():
    """PPCA with latent dim 2, data dim 5 and unit noise variance, fitted on 300 rows (float64)."""
    X = _simulate_ppca(300, 5, 2, 1.0, seed=0)
    fit = ppgen.fit(ppgen.PPCA(2), X, standardize=False)
    return fit, X[:40]


@pytest.fixture(scope="module")
def small_result(small):
    fit, X = small
    return ais(fit, X, n_steps=200, n_chains=16, seed=0)


@pytest.fixture(scope="module")
def large():
    """PPCA with latent dim 10, data dim 50 and noise variance 0.1."""
    X = _simulate_ppca(200, 50, 10, 0.1, seed=1)
    fit = ppgen.fit(ppgen.PPCA(10), X, standardize=False)
    return fit, X


def test_ais_matches_exact_ppca_loglik_small(small, small_result):
    fit, X = small
    exact = fit.log_prob(X)
    err = small_result.per_row - exact
    assert np.abs(err).mean() <= 0.05
    assert isinstance(small_result, AISResult)
    assert small_result.per_row.shape == (len(X),)
    assert small_result.mean == pytest.approx(small_result.per_row.mean())
    assert not small_result.exact
    # The reported Monte-Carlo error is of the right size: most rows within 4 of their SEs.
    assert np.mean(np.abs(err) <= 4 * small_result.per_row_mc_se + 1e-3) >= 0.9


def test_acceptance_after_tuning_is_near_target(small_result):
    assert 0.4 <= small_result.acceptance <= 0.9
    assert np.all(small_result.step_size > 0)
    assert np.all((small_result.ess >= 1 - 1e-9) & (small_result.ess <= 16 + 1e-9))


def test_same_seed_same_result_other_seed_differs(small):
    fit, X = small
    a = ais(fit, X[:5], n_steps=10, n_chains=4, n_leapfrog=3, n_tune=8, seed=3)
    b = ais(fit, X[:5], n_steps=10, n_chains=4, n_leapfrog=3, n_tune=8, seed=3)
    c = ais(fit, X[:5], n_steps=10, n_chains=4, n_leapfrog=3, n_tune=8, seed=4)
    np.testing.assert_array_equal(a.per_row, b.per_row)
    assert a.acceptance == b.acceptance
    assert not np.array_equal(a.per_row, c.per_row)


def test_jacobian_of_standardization_and_missing_entries(rng):
    X = _simulate_ppca(200, 5, 2, 1.0, seed=2) * np.array([1.0, 10.0, 0.1, 3.0, 1.0]) + 5.0
    fit = ppgen.fit(ppgen.PPCA(2), X, standardize=True)
    Xm = X[:30].copy()
    Xm[rng.random(Xm.shape) < 0.2] = np.nan
    res = ais(fit, Xm, n_steps=100, n_chains=16, seed=0)
    # On the data's original scale, like Fit.log_prob (the log-Jacobian here is several nats
    # per row); missing entries are marginalized.
    assert np.abs(fit.schema.log_abs_det_jacobian(fit.encode(Xm).mask).numpy()).mean() > 2
    assert np.abs(res.per_row - fit.log_prob(Xm)).mean() <= 0.1


def test_exact_guide_as_base_gives_exact_weights(small):
    fit, X = small
    fit.model.set_exact_guide(dict(fit.params))  # a private copy: the test's own fit
    res = ais(fit, X[:10], n_steps=5, n_chains=4, init="guide", n_tune=4, seed=0)
    # q(z | x) is the posterior: log p(x, z) - log q(z | x) = log p(x) for every z.
    np.testing.assert_allclose(res.per_row, fit.log_prob(X[:10]), atol=1e-8)
    np.testing.assert_allclose(res.ess, 4.0)


def test_gmm_returns_the_exact_log_prob():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-3, 1, size=(60, 2)), rng.normal(3, 1, size=(60, 2))])
    fit = ppgen.fit(ppgen.GaussianMixture(2), X, method="em")
    res = ais(fit, X[:20], n_steps=50, seed=0)
    assert res.exact
    np.testing.assert_allclose(res.per_row, fit.log_prob(X[:20]), rtol=0, atol=1e-10)
    assert res.mc_se == 0.0
    assert np.all(res.per_row_mc_se == 0.0)
    sandwich = bdmc(fit, n_rows=10, n_steps=10, seed=0)
    assert sandwich.gap == 0.0
    assert sandwich.lower.mean == pytest.approx(sandwich.exact)


# A convergence study (18 s): the small-PPCA test above keeps AIS's exactness in the default run.
@pytest.mark.slow
def test_large_ppca_within_half_a_nat_and_error_shrinks(large):
    # About 15 s on one idle core (20 rows x 16 chains, 11,000 gradient evaluations).
    fit, X = large
    rows = X[:20]
    exact = fit.log_prob(rows)
    coarse = ais(fit, rows, n_steps=100, n_chains=16, seed=0)
    fine = ais(fit, rows, n_steps=1000, n_chains=16, seed=0)
    assert abs(fine.mean - exact.mean()) <= 0.5
    assert np.abs(fine.per_row - exact).mean() < np.abs(coarse.per_row - exact).mean()


def test_bdmc_brackets_the_exact_loglik():
    # Few steps on a sharp posterior (noise 0.1): both bounds are loose by clearly more than
    # their Monte-Carlo error, so the bracket is a real check; the gap stays under 0.5 nats.
    X = _simulate_ppca(300, 10, 3, 0.1, seed=0)
    fit = ppgen.fit(ppgen.PPCA(3), X, standardize=False)
    res = bdmc(fit, n_rows=40, n_steps=60, n_chains=16, seed=0)
    assert res.exact is not None
    assert res.lower.mean <= res.exact <= res.upper.mean
    assert 0 <= res.gap <= 0.5
    assert res.gap == pytest.approx(res.upper.mean - res.lower.mean)
    assert np.shape(res.data) == (40, 10)
    # The exact value of the simulated rows, recomputed from them, is the reported one.
    assert np.mean(fit.log_prob(res.data)) == pytest.approx(res.exact)


def test_schedules_and_bad_arguments(small):
    with pytest.raises(ValueError, match="resolved by ais"):
        schedule("adaptive", 50)
    for kind in ("sigmoid", "geometric", "linear"):
        b = schedule(kind, 50)
        assert b.shape == (51,) and b[0] == 0.0 and b[-1] == 1.0
        assert np.all(np.diff(b) > 0)
    fit, X = small
    with pytest.raises(ValueError, match="init"):
        ais(fit, X, init="posterior")
    with pytest.raises(ValueError, match="schedule"):
        ais(fit, X, schedule="cosine")
    with pytest.raises(ValueError, match="increase"):
        ais(fit, X, schedule=np.array([0.0, 0.7, 0.5, 1.0]))
    with pytest.raises(ValueError, match="n_chains"):
        ais(fit, X, n_chains=0)
