"""ChEES-HMC over many chains (ppgen.mcmc): exact targets, one-transition invariance, agreement
with long NumPyro NUTS runs, seeding, the vmap fallback and bad input.

The exact targets are Gaussians whose moments are known in closed form; the agreement runs
(marked slow) compare with numbers computed once by ``benchmarks/mcmc_reference.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import stats

import ppgen
from ppgen import _arviz
from ppgen._utils import seeded
from ppgen.evaluate.nested import nested_rhat
from ppgen.infer import hmc
from ppgen.infer.batched import windows as _windows
from ppgen.infer.chees import _van_der_corput, mcmc
from ppgen.infer.potential import Potential, VectorizationWarning
from ppgen.testing.posteriors import breast_cancer, eight_schools
from ppgen.testing.posteriors import logistic as _logistic
from ppgen.testing.posteriors import schools as _schools

torch.set_num_threads(1)

SIGMA, Y = eight_schools()


def _gaussian(dim: int = 50, rho: float = 0.8):
    """Mean and covariance of a correlated Gaussian: AR(1) correlations rho^|i-j|, sds from 0.5
    to 2."""
    i = torch.arange(dim, dtype=torch.float64)
    sd = torch.logspace(math.log10(0.5), math.log10(2.0), dim, dtype=torch.float64)
    cov = sd[:, None] * sd[None, :] * rho ** (i[:, None] - i[None, :]).abs()
    mean = torch.linspace(-3.0, 3.0, dim, dtype=torch.float64)
    return mean, cov


def _mvn_model(mean, cov):
    scale_tril = torch.linalg.cholesky(cov)

    def model():
        pyro.sample("x", dist.MultivariateNormal(mean, scale_tril=scale_tril))

    return model


def test_correlated_gaussian_50d_moments_and_marginals():
    mean, cov = _gaussian()
    result = mcmc(_mvn_model(mean, cov), num_chains=64, num_warmup=250, num_samples=200, seed=1)
    x = result.samples["x"]
    assert x.shape == (64, 200, 50)
    table = result.summary()
    sd = cov.diagonal().sqrt().numpy()
    z_mean = (table["mean"].to_numpy() - mean.numpy()) / table["mcse_mean"].to_numpy()
    z_sd = (table["sd"].to_numpy() - sd) / table["mcse_sd"].to_numpy()
    assert np.abs(z_mean).max() < 4, z_mean
    assert np.abs(z_sd).max() < 4, z_sd
    assert table["r_hat"].max() < 1.01 and table["ess_bulk"].min() > 400
    # KS against the exact marginals on draws thinned to about one per effective draw (the
    # test assumes independent draws).
    thin = math.ceil(x.shape[0] * x.shape[1] / table["ess_bulk"].min())
    flat = x[:, ::thin].reshape(-1, 50)
    p = [stats.kstest(flat[:, j], "norm", args=(float(mean[j]), sd[j])).pvalue for j in range(50)]
    assert min(p) > 0.001, min(p)
    assert result.divergences == 0
    assert result.info["vectorized"]
    # Nested R-hat over 8 superchains of 8 chains: the chains forgot their starting points.
    assert np.nanmax(nested_rhat(x, 8)) < 1.01


def _rank_chi2(after: np.ndarray, fresh: np.ndarray, bins: int) -> float:
    """p-value of the chi-square test that ranks of ``after`` (reps,) among ``fresh``
    (reps, bins - 1) are uniform on 0 .. bins - 1."""
    ranks = (fresh < after[:, None]).sum(1)
    counts = np.bincount(ranks, minlength=bins)
    return float(stats.chisquare(counts).pvalue)


def _invariance(potential, draw, inv_mass, step_size, n_leapfrog, reps=500, bins=20):
    """Start ``reps`` chains at exact draws, apply one transition, return the rank-test p-value
    per coordinate and the mean acceptance."""
    with seeded(0):
        u0 = draw(reps)
        state = hmc.point(u0, potential)
        new, prop = hmc.step(state, potential, step_size, n_leapfrog, inv_mass)
        fresh = draw(reps * (bins - 1)).reshape(reps, bins - 1, -1)
    after, fresh = new.u.numpy(), fresh.numpy()
    p = [_rank_chi2(after[:, j], fresh[:, :, j], bins) for j in range(after.shape[1])]
    return np.array(p), float(prop.accept_prob.mean())


def test_one_transition_leaves_correlated_gaussian_invariant():
    mean, cov = _gaussian(dim=10)
    potential = Potential(_mvn_model(mean, cov))
    exact = torch.distributions.MultivariateNormal(mean, cov)
    # A large step with a mass matrix that is not the identity: many rejections, and any error
    # in the Metropolis correction, the momentum's law or the integrator shows in the ranks.
    inv_mass = cov.diagonal() * 1.5
    p, acc = _invariance(potential, lambda n: exact.sample((n,)), inv_mass, 0.5, 7)
    assert 0.2 < acc < 0.95
    assert p.min() > 0.01 / len(p), p


def test_one_transition_leaves_eight_schools_with_tau_fixed_invariant():
    tau = 4.0

    def model(sigma, y):
        mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=y.dtype), 5.0))
        with pyro.plate("school", len(sigma)):
            theta = pyro.sample("theta", dist.Normal(mu, tau))
            pyro.sample("y", dist.Normal(theta, sigma), obs=y)

    # The posterior of (mu, theta) is Gaussian: prior N(0, C) with C = 25 11^T + tau^2 I on
    # (theta) and mu's column; data y ~ N(theta, diag sigma^2).
    prior_cov = torch.zeros(9, 9, dtype=torch.float64)
    prior_cov[:, :] = 25.0
    prior_cov[1:, 1:] += tau**2 * torch.eye(8, dtype=torch.float64)
    H = torch.zeros(8, 9, dtype=torch.float64)
    H[:, 1:] = torch.eye(8, dtype=torch.float64)
    prec = torch.linalg.inv(prior_cov) + H.T @ torch.diag(SIGMA**-2) @ H
    post_cov = torch.linalg.inv(prec)
    post_mean = post_cov @ (H.T @ (Y / SIGMA**2))
    exact = torch.distributions.MultivariateNormal(post_mean, post_cov)
    potential = Potential(model, (SIGMA, Y))
    assert potential.names == ["mu", "theta"] and potential.dim == 9
    p, acc = _invariance(potential, lambda n: exact.sample((n,)), post_cov.diagonal(), 0.3, 5)
    assert 0.2 < acc < 0.95
    assert p.min() > 0.01 / len(p), p


# Long NumPyro NUTS runs (benchmarks/mcmc_reference.py: 4 chains x 25,000 draws after 2,000
# warm-up, target acceptance 0.9): per scalar (mean, sd, MCSE of the mean, MCSE of the sd).
LOGISTIC_REFERENCE = {
    "alpha": (0.20544, 0.41085, 0.00116, 0.00123),
    "beta[0]": (-0.47342, 0.8936, 0.0023, 0.00296),
    "beta[1]": (-0.47394, 0.55144, 0.00171, 0.00158),
    "beta[2]": (-0.45748, 0.89846, 0.00228, 0.00299),
    "beta[3]": (-0.54681, 0.90598, 0.00224, 0.00313),
    "beta[4]": (-0.23866, 0.61691, 0.00177, 0.00189),
    "beta[5]": (0.5836, 0.79655, 0.00221, 0.00248),
    "beta[6]": (-0.96025, 0.82846, 0.00217, 0.00257),
    "beta[7]": (-1.0696, 0.82929, 0.00212, 0.00267),
    "beta[8]": (0.10921, 0.51122, 0.00141, 0.00159),
    "beta[9]": (0.45054, 0.68037, 0.00189, 0.00207),
    "beta[10]": (-1.4382, 0.78505, 0.00226, 0.00244),
    "beta[11]": (0.32183, 0.4987, 0.00149, 0.00148),
    "beta[12]": (-0.77948, 0.78835, 0.0022, 0.00247),
    "beta[13]": (-1.1783, 0.92503, 0.00247, 0.00306),
    "beta[14]": (-0.43296, 0.46395, 0.00143, 0.00135),
    "beta[15]": (0.73033, 0.66397, 0.00194, 0.002),
    "beta[16]": (0.3163, 0.62024, 0.00192, 0.00185),
    "beta[17]": (-0.33585, 0.66944, 0.002, 0.00201),
    "beta[18]": (0.3006, 0.52769, 0.00162, 0.00149),
    "beta[19]": (0.81786, 0.69812, 0.00197, 0.00213),
    "beta[20]": (-1.1334, 0.91806, 0.00231, 0.00315),
    "beta[21]": (-1.4919, 0.64286, 0.00219, 0.00181),
    "beta[22]": (-0.91034, 0.91709, 0.00218, 0.00317),
    "beta[23]": (-1.1185, 0.93499, 0.00231, 0.00312),
    "beta[24]": (-0.72386, 0.61684, 0.00189, 0.00174),
    "beta[25]": (-0.022146, 0.77511, 0.00222, 0.00238),
    "beta[26]": (-0.98454, 0.76066, 0.00221, 0.00226),
    "beta[27]": (-1.0288, 0.78717, 0.00212, 0.00243),
    "beta[28]": (-1.0558, 0.55261, 0.00179, 0.00157),
    "beta[29]": (-0.5308, 0.71144, 0.00206, 0.00221),
}
SCHOOLS_REFERENCE = {
    "mu": (4.3882, 3.3073, 0.00965, 0.0113),
    "tau": (3.6223, 3.2584, 0.0116, 0.0171),
    "theta_tilde[0]": (0.32113, 0.98829, 0.00285, 0.00332),
    "theta_tilde[1]": (0.096243, 0.9373, 0.00255, 0.00322),
    "theta_tilde[2]": (-0.088117, 0.96112, 0.00259, 0.00335),
    "theta_tilde[3]": (0.061623, 0.9384, 0.00255, 0.00329),
    "theta_tilde[4]": (-0.16522, 0.93499, 0.00259, 0.00321),
    "theta_tilde[5]": (-0.075236, 0.94219, 0.00257, 0.00329),
    "theta_tilde[6]": (0.36076, 0.96071, 0.00272, 0.00321),
    "theta_tilde[7]": (0.073139, 0.97445, 0.00261, 0.00336),
    # log tau: the sd of tau itself is a poor check, its sample sd being skewed by the right tail.
    "log_tau": (0.80735, 1.1712, 0.0053, 0.00713),
}


def _agrees(samples, reference, sd_skip=()):
    """Means and sds within 3 combined MCSEs of the reference; R-hat < 1.01, bulk ESS > 400."""
    table = _arviz.summary(samples)
    assert list(table.index) == list(reference)
    ref = np.array(list(reference.values()))
    z_mean = (table["mean"] - ref[:, 0]) / np.hypot(table["mcse_mean"], ref[:, 2])
    z_sd = ((table["sd"] - ref[:, 1]) / np.hypot(table["mcse_sd"], ref[:, 3])).drop(list(sd_skip))
    assert np.abs(z_mean).max() < 3, z_mean.sort_values()
    assert np.abs(z_sd).max() < 3, z_sd.sort_values()
    assert table["r_hat"].max() < 1.01 and table["ess_bulk"].min() > 400


@pytest.mark.slow
def test_logistic_regression_agrees_with_a_long_nuts_run():
    X, y = breast_cancer()
    result = mcmc(_logistic, X, y, num_chains=64, num_warmup=400, num_samples=300, seed=0)
    _agrees(result.samples, LOGISTIC_REFERENCE)


@pytest.mark.slow
def test_noncentred_eight_schools_agrees_with_a_long_nuts_run_without_divergences():
    result = mcmc(
        _schools,
        SIGMA,
        Y,
        num_chains=64,
        num_warmup=400,
        num_samples=300,
        seed=0,
        target_accept_prob=0.95,
    )
    samples = {**result.samples, "log_tau": np.log(result.samples["tau"])}
    _agrees(samples, SCHOOLS_REFERENCE, sd_skip=["tau"])
    assert result.divergences == 0


def test_same_seed_same_draws_and_a_different_seed_differs():
    run = lambda seed: mcmc(  # noqa: E731
        _schools, SIGMA, Y, num_chains=4, num_warmup=30, num_samples=5, seed=seed
    )
    a, b, c = run(3), run(3), run(4)
    for k in a.samples:
        np.testing.assert_array_equal(a.samples[k], b.samples[k])
    assert not np.array_equal(a.samples["mu"], c.samples["mu"])
    assert a.samples["theta_tilde"].shape == (4, 5, 8)
    assert (a.samples["tau"] > 0).all()
    assert set(a.sample_stats) == {"diverging", "energy", "acceptance_rate", "n_steps"}
    idata = a.to_arviz()
    assert idata.posterior["theta_tilde"].shape == (4, 5, 8)
    assert "diverging" in idata.sample_stats


def test_a_model_vmap_cannot_run_falls_back_to_a_loop_with_a_warning():
    def branchy(y):
        mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=y.dtype), 10.0))
        scale = 1.0 if float(mu.detach()) > 0 else 2.0  # data-dependent Python branch: vmap cannot
        pyro.sample("y", dist.Normal(mu, scale).expand([len(y)]).to_event(1), obs=y)

    y = torch.tensor([0.5, 1.5, 1.0], dtype=torch.float64)
    with pytest.warns(VectorizationWarning, match="one chain at a time"):
        result = mcmc(branchy, y, num_chains=3, num_warmup=10, num_samples=4, seed=0)
    assert result.samples["mu"].shape == (3, 4)
    assert not result.info["vectorized"]
    # The loop computes the same density vmap would have where vmap can run.
    pot = Potential(_schools, (SIGMA, Y))
    u = torch.randn(5, pot.dim, dtype=torch.float64)
    looped = Potential(_schools, (SIGMA, Y), vectorize=False)
    torch.testing.assert_close(pot(u), looped(u), rtol=1e-12, atol=1e-12)


def test_potential_is_pyros_log_joint_with_the_jacobian():
    pot = Potential(_schools, (SIGMA, Y))
    u = torch.randn(3, pot.dim, dtype=torch.float64)
    got = pot(u)
    for c in range(3):
        values = pot.constrain(u[c])
        tr = pyro.poutine.trace(pyro.poutine.condition(_schools, values)).get_trace(SIGMA, Y)
        # tau = exp(u_tau): log|d tau / d u| = u_tau.
        want = tr.log_prob_sum() + pot.unflatten(u[c])["tau"]
        assert abs(float(got[c] - want)) < 1e-10


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("kernel", "hmc", "kernel must be one of"),
        ("num_chains", 0, "num_chains"),
        ("num_warmup", -1, "num_warmup"),
        ("target_accept_prob", 1.0, "target_accept_prob"),
        ("init", {"nope": 1.0}, "unknown sites"),
    ],
)
def test_bad_options_raise_value_errors_naming_them(option, value, match):
    options = {"num_chains": 2, "num_warmup": 2, "num_samples": 2, option: value}
    with pytest.raises(ValueError, match=match):
        mcmc(_schools, SIGMA, Y, **options)


def test_discrete_latents_without_finite_support_are_refused_with_a_clear_error():
    def model():
        rate = pyro.sample("rate", dist.Gamma(torch.tensor(2.0, dtype=torch.float64), 1.0))
        pyro.sample("k", dist.Poisson(rate))

    with pytest.raises(ValueError, match=r"discrete without a finite support"):
        mcmc(model, num_chains=2, num_warmup=2, num_samples=2)


def _mixture(x):
    """Two Gaussian components, assignments k a finite discrete latent (summed out)."""
    w = pyro.sample("w", dist.Dirichlet(torch.ones(2, dtype=x.dtype)))
    with pyro.plate("components", 2):
        loc = pyro.sample("loc", dist.Normal(torch.zeros((), dtype=x.dtype), 3.0))
    with pyro.plate("data", len(x)):
        k = pyro.sample("k", dist.Categorical(w))
        pyro.sample("x", dist.Normal(loc[k], 1.0), obs=x)


def test_finite_discrete_latents_are_summed_out_in_the_batched_potential():
    x = torch.tensor([-2.1, -1.7, 0.2, 1.9, 2.4], dtype=torch.float64)
    pot = Potential(_mixture, (x,))
    assert pot.enumerated and pot.names == ["w", "loc"] and pot.dim == 3  # a 2-simplex: 1 value
    u = torch.randn(4, 3, dtype=torch.float64)
    got = pot(u)
    assert pot.vectorized
    for c in range(4):
        v = pot.constrain(u[c])
        w, loc = v["w"], v["loc"]
        log_lik = torch.logsumexp(w.log() + dist.Normal(loc, 1.0).log_prob(x[:, None]), -1).sum()
        log_prior = dist.Dirichlet(torch.ones(2, dtype=x.dtype)).log_prob(w)
        log_prior = log_prior + dist.Normal(0.0, 3.0).log_prob(loc).sum()
        t = pot.transforms["w"]
        u_w = pot.unflatten(u[c])["w"]
        log_jac = t.log_abs_det_jacobian(u_w, w)
        want = log_lik + log_prior + log_jac
        # Pyro's Categorical works from clamped, renormalized probabilities: ~1e-9 relative.
        assert abs(float(got[c] - want)) < 1e-6


def test_schedule_helpers():
    assert [_van_der_corput(i) for i in range(1, 5)] == [0.5, 0.25, 0.75, 0.125]
    assert _windows(500) == (75, [100, 150, 250, 450])
    assert _windows(10) == (10, [])


def test_nested_rhat_matches_its_closed_form_and_flags_disagreeing_superchains():
    rng = np.random.default_rng(0)
    iid = rng.normal(size=(64, 20))
    assert abs(float(nested_rhat(iid, 8)) - 1) < 0.01
    # One chain per superchain: sqrt(1 + B / W) with the classic B (variance of chain means)
    # and W (mean within-chain variance).
    x = rng.normal(size=(4, 30)) + np.array([0.0, 0.1, 0.2, 0.3])[:, None]
    b = x.mean(1).var(ddof=1)
    w = x.var(1, ddof=1).mean()
    assert abs(float(nested_rhat(x, 4)) - math.sqrt(1 + b / w)) < 1e-12
    shifted = iid + np.repeat(np.arange(8.0), 8)[:, None]
    assert float(nested_rhat(shifted, 8)) > 2
    assert set(nested_rhat({"a": iid, "b": iid}, 8)) == {"a", "b"}
    with pytest.raises(ValueError, match="divide"):
        nested_rhat(iid, 7)


def test_public_name():
    assert ppgen.mcmc is mcmc
