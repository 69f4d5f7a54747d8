"""Diffusion: its bound exact when the reverse kernels are the true ones, below the exact marginal
of any linear-Gaussian reverse chain, the random-t estimator unbiased, Pyro's traced weights equal
to the direct ones, and the surfaces (sampling, imputation, persistence, robustness)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.data import Schema
from ppgen.models import weights
from ppgen.models.diffusion import Diffusion, schedule_alpha_bar

torch.set_num_threads(1)

M = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
S = torch.tensor([0.5, 1.5, 1.0], dtype=torch.float64)


def _continuous_schema(d: int = 3) -> Schema:
    rng = np.random.default_rng(0)
    return Schema.infer(pd.DataFrame(rng.normal(size=(20, d)), columns=list("abc")[:d]))


def _rows(n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return M + S * torch.randn(n, 3, dtype=torch.float64, generator=g)


class TrueReverse(Diffusion):
    """Reverse kernels set to the true q(y_{t-1} | y_t) of y_0 ~ N(M, S^2) per column, p(y_T) to
    the true q(y_T) and the decoder to q(x_0 | y_1): the model's joint is q's, so every
    importance weight is log N(x_0; M, S^2) exactly."""

    def _stats(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self._alpha_bar[t]
        return ab.sqrt() * M, ab * S**2 + 1 - ab  # mean and variance of q(y_t)

    def prior(self, like):
        mean, var = self._stats(self.n_steps)
        return mean, var.sqrt()

    def reverse(self, y, t):
        alpha = self._alpha_bar[t] / self._alpha_bar[t - 1]
        (m_prev, v_prev), (m_t, v_t) = self._stats(t - 1), self._stats(t)
        cov = alpha.sqrt() * v_prev
        return m_prev + cov / v_t * (y - m_t), (v_prev - cov**2 / v_t).sqrt().expand_as(y)

    def decoder_out(self, y1):
        m1, v1 = self._stats(1)
        cov = self._alpha_bar[1].sqrt() * S**2
        self.heads.log_scale.data = 0.5 * (S**2 - cov**2 / v1).log()
        return M + cov / v1 * (y1 - m1)


@pytest.mark.parametrize("n_steps", [1, 10, 100])
@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_bound_is_exact_with_the_true_reverse_kernels(n_steps, schedule):
    model = TrueReverse(n_steps, schedule, hidden=(4,)).build(_continuous_schema()).double()
    x = _rows()
    exact = torch.distributions.Normal(M, S).log_prob(x).sum(-1)
    torch.manual_seed(0)
    direct = model.particle_log_weights(x, None, 3)
    torch.testing.assert_close(direct, exact.expand(3, -1), rtol=0, atol=1e-8)
    # Pyro's own weights of the traced model and guide (the generic path of ppgen.evaluate).
    with torch.no_grad():
        traces = weights.trace_particles(model, x, None, 3)
        traced = weights.weigh(model, x, 3, traces)
    torch.testing.assert_close(traced, exact.expand(3, -1), rtol=0, atol=1e-8)


class LinearChain(Diffusion):
    """Any linear-Gaussian reverse chain: y_{t-1} = a_t y_t + b_t + s_t eps, random a, b, s."""

    def setup(self, seed: int) -> LinearChain:
        g = torch.Generator().manual_seed(seed)
        T, D = self.n_steps, self.n_embed

        def draw(low, high):
            return low + (high - low) * torch.rand(T + 1, D, generator=g, dtype=torch.float64)

        self.a, self.b, self.s = draw(0.5, 1.2), draw(-0.3, 0.3), draw(0.05, 0.6)
        self.heads.log_scale.data = draw(-1.0, 0.0)[0]
        return self

    def prior(self, like):
        return self.b[0], self.s[0]

    def reverse(self, y, t):
        return self.a[t] * y + self.b[t], self.s[t].expand_as(y)

    def decoder_out(self, y1):
        return self.a[1] * y1 + self.b[1]

    def marginal(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.b[0], self.s[0] ** 2
        for t in range(self.n_steps, 0, -1):
            mean, var = self.a[t] * mean + self.b[t], self.a[t] ** 2 * var
            var = var + (self.s[t] ** 2 if t > 1 else self.heads.log_scale.exp() ** 2)
        return torch.distributions.Normal(mean, var.sqrt()).log_prob(x).sum(-1)


@pytest.mark.parametrize("n_steps", [1, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bound_is_below_a_linear_gaussian_chains_marginal(n_steps, seed):
    model = LinearChain(n_steps, hidden=(4,)).build(_continuous_schema()).double().setup(seed)
    x = _rows(8)
    torch.manual_seed(seed)
    with torch.no_grad():
        log_w = model.particle_log_weights(x, None, 4000)
    bound, se = log_w.mean(0), log_w.std(0) / math.sqrt(log_w.shape[0])
    with torch.no_grad():
        exact = model.marginal(x)
    assert bool((bound <= exact + 4 * se).all()), (bound - exact, se)
    # Not vacuous: the guide is not this chain's posterior, so there is a real gap somewhere.
    assert float((exact - bound).max()) > 10 * float(se.max())
    # The importance-weighted bound of the same draws is above their mean (Jensen).
    iwae = log_w.logsumexp(0) - math.log(log_w.shape[0])
    assert bool((iwae >= bound - 1e-9).all())


def _mixed_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "count": rng.poisson(3, size=n),
            "flag": rng.integers(0, 2, size=n).astype(bool),
            "colour": pd.Categorical(rng.choice(list("rgb"), size=n)),
        }
    )


def _mixed_model(n_steps: int = 10) -> tuple[Diffusion, torch.Tensor, torch.Tensor]:
    frame = _mixed_frame()
    frame.loc[::5, "x"] = np.nan
    frame.loc[::7, "colour"] = np.nan
    schema = Schema.infer(frame)
    enc = schema.encode(frame, dtype=torch.float64)
    torch.manual_seed(0)
    model = Diffusion(n_steps, hidden=(16,), variance="learned").build(schema).double()
    return model, enc.x, enc.mask


def test_direct_weights_are_pyros_traced_weights_with_missing_cells():
    model, x, mask = _mixed_model(6)
    with torch.no_grad():
        torch.manual_seed(3)
        direct = model.particle_log_weights(x, mask, 5)
        torch.manual_seed(3)
        traced = weights.weigh(model, x, 5, weights.trace_particles(model, x, mask, 5))
        torch.manual_seed(3)
        direct_half = model.particle_log_weights(x, mask, 5, kl_weight=0.5)
        torch.manual_seed(3)
        traces = weights.trace_particles(model, x, mask, 5)
        traced_half = weights.weigh(model, x, 5, traces, kl_weight=0.5)
    torch.testing.assert_close(direct, traced, rtol=0, atol=1e-10)
    torch.testing.assert_close(direct_half, traced_half, rtol=0, atol=1e-10)  # KL warm-up


def test_random_t_estimator_matches_the_full_chain_sum():
    model, x, mask = _mixed_model(10)
    x, mask = x[:12], mask[:12]
    reps = 1000
    xs, ms = x.repeat(reps, 1), mask.repeat(reps, 1)
    torch.manual_seed(0)
    with torch.no_grad():
        random_t = model.elbo_rows(xs, ms).reshape(reps, -1).mean(1)  # a mean over rows
        full = torch.stack([model.bound_terms(x, mask).sum(-1).mean() for _ in range(100)])
        joint = model.particle_log_weights(x, mask, 1000).mean(1)
    se = math.sqrt(random_t.var() / reps + full.var() / len(full))
    assert abs(float(random_t.mean() - full.mean())) < 3 * se
    se_joint = math.sqrt(joint.var() / len(joint) + full.var() / len(full))
    assert abs(float(joint.mean() - full.mean())) < 3 * se_joint
    # Importance sampling of t (a made-up history, far from uniform): still unbiased.
    model.t_sampling = "importance"
    model._kl_square[2:] = torch.linspace(4.0, 0.01, 9, dtype=torch.float64)
    model._kl_seen[:] = 10
    assert model.step_probabilities() is not None
    torch.manual_seed(1)
    importance = model.elbo_rows(xs, ms).detach().reshape(reps, -1).mean(1)
    se = math.sqrt(importance.var() / reps + full.var() / len(full))
    assert abs(float(importance.mean() - full.mean())) < 3 * se


def test_schedules():
    for name in ("cosine", "linear"):
        for T in (1, 10, 1000):
            ab = schedule_alpha_bar(name, T)
            assert ab[0] == 1 and bool((ab[1:] < ab[:-1]).all()) and float(ab[-1]) < 0.01
    with pytest.raises(ValueError, match="schedule"):
        Diffusion(10, "quadratic")
    with pytest.raises(ValueError, match="variance"):
        Diffusion(10, variance="small")
    with pytest.raises(ValueError, match="n_steps"):
        Diffusion(0)
    with pytest.raises(ValueError, match="t_sampling"):
        Diffusion(10, t_sampling="greedy")


@pytest.fixture(scope="module")
def mixed_fit() -> ppgen.Fit:
    frame = ppgen.datasets.load("penguins").drop(columns="year").dropna()
    return ppgen.fit(
        Diffusion(10, hidden=(32,)), frame, max_epochs=10, progress=False, seed=0
    ), frame


def test_fit_samples_bound_and_persistence(mixed_fit, tmp_path):
    fit, frame = mixed_fit
    assert fit.kind == "networks"
    a, b = fit.sample(50, seed=4), fit.sample(50, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == list(frame.columns) and (a.dtypes == frame.dtypes).all()
    bound = ppgen.evaluate.elbo(fit, frame.iloc[:30], num_particles=20, seed=1)
    assert np.isfinite(bound.per_row).all()
    fit.save(tmp_path / "d.ppgen")
    loaded = ppgen.load(tmp_path / "d.ppgen")
    again = ppgen.evaluate.elbo(loaded, frame.iloc[:30], num_particles=20, seed=1)
    np.testing.assert_array_equal(bound.per_row, again.per_row)
    pd.testing.assert_frame_equal(loaded.sample(50, seed=4), a)


def test_imputation_keeps_observed_values(mixed_fit):
    fit, frame = mixed_fit
    holes = frame.iloc[:40].copy()
    holes.iloc[::3, 0] = np.nan  # species
    holes.iloc[1::4, 2] = np.nan  # bill length
    holes.iloc[2::5, 6] = np.nan  # sex
    filled = fit.impute(holes, n_imputations=2, seed=0)
    for one in filled:
        assert not one.isna().any().any()
        observed = holes.notna()
        pd.testing.assert_frame_equal(one.where(observed), holes.where(observed))
    again = fit.impute(holes, n_imputations=2, seed=0)
    for one, two in zip(filled, again, strict=True):
        pd.testing.assert_frame_equal(one, two)


AWKWARD = pytest.mark.parametrize(
    "make",
    [
        lambda rng: pd.DataFrame(
            rng.integers(0, 2, size=(64, 200)).astype(bool), columns=[f"b{j}" for j in range(200)]
        ),
        lambda rng: pd.DataFrame(
            {f"c{j}": pd.Categorical(rng.choice(list("abcde"), size=64)) for j in range(5)}
        ),
        lambda rng: pd.DataFrame({"const": np.ones(64), "x": rng.normal(size=64)}),
    ],
    ids=["200-binary", "categorical-only", "constant-column"],
)


def _no_nan(frame: pd.DataFrame, epochs: int) -> None:
    # 64 rows, 6 held out: 4 steps of 16 rows per epoch; no early stopping.
    fit = ppgen.fit(
        Diffusion(10, hidden=(16,)),
        frame,
        max_epochs=epochs,
        batch_size=16,
        patience=epochs,
        progress=False,
    )
    assert len(fit.losses) == epochs and np.isfinite(fit.losses).all()
    assert not fit.sample(20, seed=0).isna().any().any()


@AWKWARD
def test_no_nan_on_awkward_tables(make):
    _no_nan(make(np.random.default_rng(0)), 25)  # 100 Adam steps


@pytest.mark.slow
@AWKWARD
def test_no_nan_in_500_steps_on_awkward_tables(make):
    _no_nan(make(np.random.default_rng(1)), 125)


@pytest.mark.slow
def test_categorical_bound_reaches_the_entropy():
    rng = np.random.default_rng(0)
    codes = rng.choice(4, size=2000, p=[0.5, 0.25, 0.15, 0.1])
    frame = pd.DataFrame({"c": pd.Categorical(np.array(list("abcd"))[codes])})
    freq = np.bincount(codes) / len(codes)
    entropy = -float((freq * np.log(freq)).sum())
    fit = ppgen.fit(
        Diffusion(20, hidden=(32, 32)),
        frame,
        max_epochs=100,
        validation=0,
        lr=3e-3,
        batch_size=256,
        progress=False,
    )
    x = fit.encode(frame).x
    torch.manual_seed(0)
    with torch.no_grad():
        terms = torch.stack([fit.model.bound_terms(x).sum(-1) for _ in range(20)]).mean(0)
    nll, se = -float(terms.mean()), float(terms.std()) / math.sqrt(len(frame))
    assert nll >= entropy - 1e-3 - 3 * se  # no model beats the empirical entropy
    assert nll <= entropy + 0.05


@pytest.mark.slow
def test_samples_do_not_pile_up_at_the_training_range():
    from scipy.stats import ks_2samp

    # breast_cancer's first 6 columns (569 rows): with wine's 178 rows the KS statistic's own
    # sampling noise (~1.36 / sqrt(n) = 0.10) is as large as the 0.1 allowed.
    frame = ppgen.datasets.load("breast_cancer").iloc[:, :6]
    fit = ppgen.fit(
        Diffusion(50, hidden=(128, 128)), frame, max_epochs=800, patience=200, progress=False
    )
    samples = fit.sample(2000, seed=0)
    for col in frame.columns:
        real, fake = frame[col].to_numpy(), samples[col].to_numpy()
        lo, hi = real.min(), real.max()
        real_share = np.mean((real <= lo) | (real >= hi))
        fake_share = np.mean((fake <= lo) | (fake >= hi))
        assert fake_share <= real_share + 0.01, col
        assert 1 - ks_2samp(real, fake).statistic >= 0.9, col


def test_plot_of_the_per_step_terms(mixed_fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ppgen import plot

    fit, frame = mixed_fit
    ax = plot.diffusion_terms(fit, frame.iloc[:40], seed=2)
    x, y = ax.lines[0].get_data()
    enc = fit.encode(frame.iloc[:40])
    with ppgen._utils.seeded(2):
        terms = fit.model.bound_terms(enc.x, enc.mask).mean(0).numpy()
    np.testing.assert_array_equal(x, np.arange(2, 11))
    np.testing.assert_allclose(y, -terms[1:10], rtol=1e-12)
    plt.close("all")
    with pytest.raises(ValueError, match="Diffusion"):
        vae = ppgen.fit(ppgen.VAE(2, hidden=(4,)), frame, max_epochs=1, progress=False)
        plot.diffusion_terms(vae, frame)


def test_discretized_count_head_is_a_distribution():
    from ppgen.models.diffusion import DiffusionHeads

    frame = pd.DataFrame({"n": np.arange(20) % 7})
    schema = Schema.infer(frame, kinds={"n": "count"})
    heads = DiffusionHeads(schema).double()
    heads.count_log_scale.data.fill_(math.log(0.4))
    loc = torch.tensor([[-1.0], [0.3], [1.7], [4.0]], dtype=torch.float64)
    k = torch.arange(0, 3000, dtype=torch.float64).reshape(-1, 1, 1)
    mass = heads.log_prob(k, None, loc.expand(len(k), -1, -1)).exp()  # (K, 4)
    torch.testing.assert_close(mass.sum(0), torch.ones(4, dtype=torch.float64), atol=1e-9, rtol=0)
    # Against the Normal's CDF on the log1p scale, written out.
    normal = torch.distributions.Normal(loc.squeeze(-1), 0.4)
    edges = torch.log1p(torch.tensor([0.5, 1.5], dtype=torch.float64)).reshape(-1, 1)
    cdf = normal.cdf(edges)
    torch.testing.assert_close(mass[1], cdf[1] - cdf[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(mass[0], cdf[0], atol=1e-12, rtol=0)
    # Draws follow the mass function.
    torch.manual_seed(0)
    draws = heads.sample(loc[2:3].expand(20000, -1))[:, 0].long()
    freq = torch.bincount(draws, minlength=40)[:40].double() / 20000
    assert float((freq - mass[:40, 2]).abs().max()) < 0.015
