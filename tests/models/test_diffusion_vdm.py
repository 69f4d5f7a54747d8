"""Diffusion in continuous time (VDM) and the DDIM sampler.

With y_0 ~ N(M, S^2) per column and the Bayes-optimal denoiser x0hat(y_t) = E[y_0 | y_t] (closed
form), the T-step chain's diffusion loss (posterior-variance kernels) and the continuous-time one
have closed forms in one dimension: the former a sum over steps, the latter an integral computed
by Gauss-Legendre quadrature to ~1e-13. The model's estimators must match them, and the discrete
bound must rise to the continuous one as T grows (Kingma et al. 2021, section 4.2).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.data import Schema
from ppgen.models.diffusion import Diffusion

torch.set_num_threads(1)

M = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
S = torch.tensor([0.5, 1.5, 1.0], dtype=torch.float64)
X0 = torch.tensor([[0.1, 0.5, 2.5], [1.2, -3.0, 1.0]], dtype=torch.float64)  # two rows


def _schema() -> Schema:
    rng = np.random.default_rng(0)
    return Schema.infer(pd.DataFrame(rng.normal(size=(20, 3)), columns=list("abc")))


def _gain(ab: torch.Tensor) -> torch.Tensor:
    """k(ab): E[y_0 | y_t] = M + k (y_t - sqrt(ab) M) for y_0 ~ N(M, S^2)."""
    return ab.sqrt() * S**2 / (ab * S**2 + 1 - ab)


class ExactDenoiser(Diffusion):
    """The network replaced by E[y_0 | y_t] (and the decoder by q(x_0 | y_1))."""

    def denoise_at(self, y, ab, s):
        x0hat = M + _gain(ab) * (y - ab.sqrt() * M)
        ab1 = self._alpha_bar[1]
        self.heads.log_scale.data = 0.5 * (S**2 * (1 - ab1) / (ab1 * S**2 + 1 - ab1)).log()
        return x0hat, x0hat, None


def _model(n_steps: int, **options) -> ExactDenoiser:
    return ExactDenoiser(n_steps, "loglinear", hidden=(4,), **options).build(_schema()).double()


def _squared_error(ab: torch.Tensor) -> torch.Tensor:
    """E_eps ||y_0 - x0hat(y_t)||^2 for the rows X0 at signal level ab, ``(..., 2)``."""
    ab = ab.unsqueeze(-1).unsqueeze(-1)
    k = _gain(ab)
    return ((X0 - M) ** 2 * (1 - k * ab.sqrt()) ** 2 + k**2 * (1 - ab)).sum(-1)


def discrete_loss(n_steps: int) -> torch.Tensor:
    """The T-step chain's diffusion loss, sum_t KL_t = sum_t (SNR_{t-1} - SNR_t)/2 E||.||^2."""
    ab = _model(n_steps)._alpha_bar[1:]
    snr = ab / (1 - ab)
    return (0.5 * (snr[:-1] - snr[1:]).unsqueeze(-1) * _squared_error(ab[1:])).sum(0)


def continuous_loss(nodes: int = 200) -> torch.Tensor:
    """int_0^1 -SNR'(u)/2 E||.||^2 du by Gauss-Legendre quadrature."""
    lo, hi = _model(2).log_snr_range
    z, w = np.polynomial.legendre.leggauss(nodes)
    u, w = torch.tensor((z + 1) / 2), torch.tensor(w / 2)
    lam = hi + (lo - hi) * u
    integrand = 0.5 * (hi - lo) * lam.exp().unsqueeze(-1) * _squared_error(torch.sigmoid(lam))
    return (w.unsqueeze(-1) * integrand).sum(0)


def test_quadrature_is_converged():
    torch.testing.assert_close(continuous_loss(100), continuous_loss(200), rtol=1e-12, atol=0)


def test_discrete_bound_rises_to_the_continuous_bound():
    limit = continuous_loss()
    gaps = [discrete_loss(T) - limit for T in (10, 100, 1000)]
    for gap in gaps:  # the T-step loss is above the limit (its bound below the continuous one)
        assert bool((gap > 0).all())
    # ... and converges at rate 1/T: T times the gap settles (about 100 nats here; the
    # gap is 21-25 nats at T = 10, 1.1-1.3 at 100, 0.10-0.12 at 1000, of a loss of 14-16).
    scaled = [10 * gaps[0], 100 * gaps[1], 1000 * gaps[2]]
    assert bool((scaled[0] > scaled[1]).all())
    torch.testing.assert_close(scaled[2], scaled[1], rtol=0.1, atol=0)
    assert float(gaps[2].max()) < 0.15


@pytest.mark.parametrize("n_steps", [10, 100, 1000])
def test_chain_terms_match_the_closed_form(n_steps):
    """The model's per-step terms (what the benchmark and ppgen.evaluate sum) have mean -KL_t."""
    model = _model(n_steps, variance="posterior")
    reps = 4000 if n_steps < 1000 else 500
    torch.manual_seed(n_steps)
    terms = model.bound_terms(X0.repeat(reps, 1))[:, 1:n_steps].sum(-1).reshape(reps, 2)
    se = terms.std(0) / math.sqrt(reps)
    assert bool(((-terms.mean(0) - discrete_loss(n_steps)).abs() < 3 * se).all())


def test_continuous_estimators_match_the_integral():
    model = _model(100, time="continuous")
    assert model.variance == "posterior"
    reps = 20000
    torch.manual_seed(0)
    y0 = model.embed(X0).repeat(reps, 1)
    u = torch.rand(len(y0), dtype=torch.float64)
    draws = model.continuous_term(y0, u).reshape(reps, 2)
    se = draws.std(0) / math.sqrt(reps)
    assert bool(((draws.mean(0) - continuous_loss()).abs() < 3 * se).all())
    # elbo_rows (one u) and continuous_bound (stratified u) estimate the same bound; the
    # stratified one with far less variance.
    with torch.no_grad():
        one = model.elbo_rows(X0.repeat(2000, 1), None).reshape(2000, 2)
        strat = model.continuous_bound(X0.repeat(200, 1), points=32).reshape(200, 2)
    se = (one.var(0) / 2000 + strat.var(0) / 200).sqrt()
    assert bool(((one.mean(0) - strat.mean(0)).abs() < 3 * se).all())
    assert bool((strat.std(0) < one.std(0) / 3).all())


def test_continuous_options_are_checked():
    with pytest.raises(ValueError, match="loglinear"):
        Diffusion(10, time="continuous")
    with pytest.raises(ValueError, match="posterior"):
        Diffusion(10, "loglinear", time="continuous", variance="learned")
    with pytest.raises(ValueError, match="t_sampling"):
        Diffusion(10, "loglinear", time="continuous", t_sampling="importance")
    with pytest.raises(ValueError, match="time"):
        Diffusion(10, time="forever")
    with pytest.raises(ValueError, match="log_snr_range"):
        Diffusion(10, "loglinear", log_snr_range=(3.0, -3.0))
    with pytest.raises(ValueError, match="continuous_bound"):
        Diffusion(10).build(_schema()).continuous_bound(X0)


# -- DDIM ------------------------------------------------------------------------------------------
def test_ddim_with_eta_one_and_every_step_is_the_ancestral_chain():
    model = ExactDenoiser(20, hidden=(4,), variance="posterior").build(_schema()).double()
    torch.manual_seed(3)
    ancestral = model.sample(50, None)
    torch.manual_seed(3)
    ddim = model.sample(50, None, sampler="ddim", eta=1.0)
    torch.testing.assert_close(ddim, ancestral, rtol=0, atol=1e-10)


def test_ddim_moments_on_a_gaussian_target():
    """Deterministic DDIM (eta = 0) with the exact denoiser (T = 100): the samples' mean is the
    target's; DDIM is a first-order discretization of the probability-flow ODE, so with few
    steps the samples are under-dispersed (sd 12% low at 10 steps, 6% at 20) and the error
    shrinks as steps grow (under 2.5% with all 99)."""
    model = ExactDenoiser(100, hidden=(4,)).build(_schema()).double()
    n = 20000
    errors = []
    for steps in (10, 20, 99):
        torch.manual_seed(0)
        x = model.sample(n, None, sampler="ddim", steps=steps)
        assert bool(((x.mean(0) - M).abs() < 4 * S / math.sqrt(n)).all()), x.mean(0) - M
        errors.append((x.std(0) / S - 1).abs())
    assert bool((errors[0] > errors[1]).all() and (errors[1] > errors[2]).all()), errors
    assert float(errors[2].max()) < 0.025
    assert model.ddim_times(20)[0] == 100 and model.ddim_times(20)[-1] == 1
    assert len(model.ddim_times(20)) == 21
    with pytest.raises(ValueError, match="steps"):
        model.sample(5, None, sampler="ddim", steps=100)
    with pytest.raises(ValueError, match="eta"):
        model.sample(5, None, sampler="ddim", eta=-1)
    with pytest.raises(ValueError, match="sampler"):
        model.sample(5, None, sampler="euler")
    with pytest.raises(ValueError, match="ddim"):
        model.sample(5, None, steps=3)


@pytest.fixture(scope="module")
def continuous_fit() -> tuple[ppgen.Fit, pd.DataFrame]:
    frame = ppgen.datasets.load("penguins").drop(columns="year").dropna()
    model = Diffusion(20, "loglinear", time="continuous", hidden=(32,))
    return ppgen.fit(model, frame, max_epochs=5, progress=False, seed=0), frame


def test_continuous_time_fit_samples_and_persistence(continuous_fit, tmp_path):
    fit, frame = continuous_fit
    assert fit.model.time == "continuous"
    a = fit.sample(40, seed=2, sampler="ddim", steps=5)
    pd.testing.assert_frame_equal(a, fit.sample(40, seed=2, sampler="ddim", steps=5))
    assert list(a.columns) == list(frame.columns) and (a.dtypes == frame.dtypes).all()
    assert not a.equals(fit.sample(40, seed=3, sampler="ddim", steps=5))
    with pytest.raises(ValueError, match="takes no option"):
        fit.sample(5, seed=0, steps=3, fancy=True)
    enc = fit.encode(frame.iloc[:30])
    torch.manual_seed(0)
    bound = fit.model.continuous_bound(enc.x, enc.mask)
    assert bool(torch.isfinite(bound).all())
    fit.save(tmp_path / "v.ppgen")
    loaded = ppgen.load(tmp_path / "v.ppgen")
    assert loaded.model.time == "continuous"
    torch.manual_seed(0)
    torch.testing.assert_close(loaded.model.continuous_bound(enc.x, enc.mask), bound)
    pd.testing.assert_frame_equal(loaded.sample(40, seed=2, sampler="ddim", steps=5), a)


def test_dropout_acts_in_training_steps_only():
    plain = Diffusion(5, hidden=(8, 8)).build(_schema())
    dropped = Diffusion(5, hidden=(8, 8), dropout=0.5).build(_schema())
    # Without dropout the network and its saved names are unchanged.
    assert [k for k in plain.state_dict() if "denoiser" in k] == [
        "denoiser.body.0.weight", "denoiser.body.0.bias", "denoiser.body.2.weight",
        "denoiser.body.2.bias", "denoiser.body.4.weight", "denoiser.body.4.bias",
    ]  # fmt: skip
    x = X0.float()
    with torch.no_grad():
        torch.manual_seed(0)
        a = dropped.elbo_rows(x, None)
        torch.manual_seed(0)
        b = dropped.elbo_rows(x, None)
        y = torch.randn(2, 3)
        out = dropped.denoise(y, 3)[0]
    torch.testing.assert_close(a, b)  # no dropout draws under no_grad
    torch.manual_seed(1)  # with gradients recorded, units are dropped
    assert not torch.equal(dropped.denoise(y, 3)[0].detach(), out)
    with pytest.raises(ValueError, match="dropout"):
        Diffusion(5, dropout=1.0)


@pytest.mark.slow
def test_continuous_time_training_reaches_a_gaussians_likelihood():
    """Trained in continuous time on 2-D Gaussian data, the held-out continuous bound comes
    within 0.1 nats per row of the exact log-likelihood, and not above it by more than the
    test sample's noise (0.05): the VDM estimator trains, and its bound is a bound."""
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    data = pd.DataFrame(rng.multivariate_normal([1.0, -2.0], cov, size=3000), columns=["a", "b"])
    train, test = data.iloc[:2500], data.iloc[2500:]
    model = Diffusion(50, "loglinear", time="continuous", hidden=(64, 64))
    fit = ppgen.fit(model, train, max_epochs=300, patience=50, progress=False, seed=0)
    enc = fit.encode(test)
    torch.manual_seed(0)
    draws = torch.stack([fit.model.continuous_bound(enc.x, enc.mask) for _ in range(20)])
    jac = fit.schema.log_abs_det_jacobian(enc.mask, dtype=enc.x.dtype, x=enc.x)
    bound = (draws.mean(0) + jac).double()
    exact = torch.distributions.MultivariateNormal(
        torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor(cov)
    ).log_prob(torch.tensor(test.to_numpy()))
    gap = float((exact - bound).mean())
    assert -0.05 < gap < 0.1, gap
