"""ppgen.Flow: change of variables against brute-force integrals, invertibility, dequantization."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import ppgen
from ppgen.models.flow import FLOW_KINDS, Flow

torch.set_num_threads(1)


def built(model: Flow, data: pd.DataFrame, kinds=None, seed: int = 0, jitter: float = 0.2):
    """The model built on ``data``'s schema in float64, its weights moved off their init so the
    flow is far from the identity."""
    schema = ppgen.Schema.infer(data, kinds=kinds)
    torch.manual_seed(seed)
    model = model.build(schema).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(jitter * torch.randn_like(p))
    return model, schema


def grid(lo: float, hi: float, n: int) -> tuple[torch.Tensor, float]:
    """Midpoints of ``n`` cells of [lo, hi] and the cell width."""
    h = (hi - lo) / n
    return torch.linspace(lo + h / 2, hi - h / 2, n, dtype=torch.float64), h


@pytest.mark.parametrize("kind", ["nsf", "maf"])
def test_one_dimensional_density_integrates_to_the_pushed_forward_cdf(kind):
    data = pd.DataFrame({"a": np.linspace(-2, 2, 50)})
    model, _ = built(Flow(kind, transforms=3, hidden=(8,)), data)
    t = model.flow().transform
    a, b = -3.0, 1.5
    x, h = grid(a, b, 20000)
    with torch.no_grad():
        integral = float(model.log_prob(x[:, None], None, {}).exp().sum() * h)
        ends = t(torch.tensor([[a], [b]], dtype=torch.float64))[:, 0].numpy()
    exact = abs(stats.norm.cdf(ends[1]) - stats.norm.cdf(ends[0]))
    assert exact > 0.05  # a real test: a good share of the mass
    assert abs(integral - exact) < 1e-4, (integral, exact)


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_two_dimensional_density_integrates_to_one(kind):
    data = pd.DataFrame({"a": np.linspace(-2, 2, 50), "b": np.sin(np.linspace(0, 6, 50))})
    model, _ = built(Flow(kind, transforms=2, hidden=(8,)), data, jitter=0.1)
    u, h = grid(-10, 10, 400)
    xy = torch.cartesian_prod(u, u)
    with torch.no_grad():
        total = float(model.log_prob(xy, None, {}).exp().sum() * h * h)
    assert abs(total - 1) < 1e-4, total


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_invertible(kind):
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(30, 4)), columns=list("abcd"))
    model, _ = built(Flow(kind, transforms=3, hidden=(16,)), data)
    t = model.flow().transform
    y = torch.randn(200, 4, dtype=torch.float64) * 2
    with torch.no_grad():
        back = t.inv(t(y))
        forth = t(t.inv(y))
    assert float((back - y).abs().max()) < 1e-6
    assert float((forth - y).abs().max()) < 1e-6


def test_fitted_density_on_the_data_scale_integrates_to_one():
    # The standardization's Jacobian is part of Fit.log_prob: integrate on the raw scale.
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"a": 100 + 30 * rng.normal(size=200), "b": 0.01 * rng.normal(size=200)})
    fit = ppgen.fit(
        Flow("maf", transforms=2, hidden=(8,)),
        data,
        dtype=torch.float64,
        seed=0,
        progress=False,
        max_epochs=3,
    )
    ua, ha = grid(100 - 400, 100 + 400, 500)
    ub, hb = grid(-0.15, 0.15, 500)
    xy = torch.cartesian_prod(ua, ub).numpy()
    total = np.exp(fit.log_prob(pd.DataFrame(xy, columns=["a", "b"]))).sum() * ha * hb
    assert abs(total - 1) < 1e-3, total


def fit_dequantized(data: pd.DataFrame, epochs: int, kinds=None) -> ppgen.Fit:
    """A small MAF fitted to discrete data in float64 (Adam, no validation split)."""
    return ppgen.fit(
        Flow("maf", transforms=2, hidden=(16,), dequantize_particles=64),
        data,
        kinds=kinds,
        dtype=torch.float64,
        seed=0,
        progress=False,
        max_epochs=epochs,
        lr=1e-2,
        validation=0,
    )


def expected_bound(model: Flow, x: torch.Tensor, repeats: int = 200):
    """Mean and standard error, over independent repetitions, of the reported bound (its
    ``dequantize_particles`` draws per row): the quantity that is below log P(x)."""
    with torch.no_grad():
        torch.manual_seed(1)
        draws = torch.stack(
            [model.log_prob_rows(x, None, model.dequantize_particles) for _ in range(repeats)]
        ).numpy()
    return draws.mean(0), draws.std(0) / np.sqrt(repeats)


def cell_log_probs_2d(model: Flow, values: np.ndarray, m: int = 60) -> np.ndarray:
    """log of the flow's mass on each count pair's cell [i, i+1) x [j, j+1) (midpoint rule)."""
    u, h = grid(0, 1, m)
    offsets = torch.cartesian_prod(u, u)
    out = []
    with torch.no_grad():
        for row in values:
            y = torch.as_tensor(row, dtype=torch.float64) + offsets
            out.append(float(torch.logsumexp(model.flow().log_prob(y), 0) + 2 * np.log(h)))
    return np.array(out)


@pytest.mark.slow
def test_dequantized_counts_bound_the_discrete_likelihood_from_below():
    rng = np.random.default_rng(0)
    n = 300
    a = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    b = np.minimum(a + rng.choice(2, size=n), 2)
    data = pd.DataFrame({"a": a, "b": b})
    kinds = {"a": "count", "b": "count"}
    fit = fit_dequantized(data, 60, kinds)
    pairs = np.unique(data.to_numpy(), axis=0)
    reported = fit.log_prob(pd.DataFrame(pairs, columns=["a", "b"]))
    mean, se = expected_bound(fit.model, torch.as_tensor(pairs, dtype=torch.float64))
    exact = cell_log_probs_2d(fit.model, pairs)
    assert np.all(mean < exact + 3 * se + 1e-3), (mean, se, exact)
    assert np.all(np.abs(reported - mean) < 6 * se * np.sqrt(200) + 1e-3)  # one of those draws
    # ... and the discrete model is a distribution below the empirical one on its own rows.
    counts = pd.Series(list(map(tuple, data.to_numpy()))).value_counts(normalize=True)
    empirical = float(np.mean([np.log(counts[tuple(r)]) for r in data.to_numpy()]))
    assert fit.score(data) < empirical


@pytest.mark.slow
def test_argmax_dequantized_category_bounds_its_probability():
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"c": pd.Categorical(rng.choice(["x", "y", "z"], 200, p=[0.6, 0.3, 0.1]))})
    fit = fit_dequantized(data, 150)
    # The model's probability of each category by simulation: the share of its draws y that
    # fall in the category's cell {y in [0, 1)^3 : argmax y = c} (independent of log_prob).
    n = 400_000
    with torch.no_grad():
        torch.manual_seed(5)
        y = fit.model.flow().sample((n,))
    inside = ((y >= 0) & (y < 1)).all(-1)
    share = np.array([float((inside & (y.argmax(-1) == c)).double().mean()) for c in range(3)])
    exact, exact_se = np.log(share), np.sqrt((1 - share) / (n * share))
    mean, se = expected_bound(fit.model, torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64))
    assert np.all(mean < exact + 3 * (se + exact_se)), (mean, se, exact)
    assert exact[0] > np.log(0.4)  # trained: the frequent category has most of the mass
    assert np.exp(exact).sum() <= 1 + 1e-3  # disjoint cells: at most the total mass
    draws = fit.sample(50, seed=0)
    assert set(draws["c"]) <= {"x", "y", "z"}


def test_missing_entries_are_refused_with_a_clear_error():
    data = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0] * 5, "b": np.arange(20.0)})
    with pytest.raises(ValueError, match=r"missing entries \(columns \['a'\]\).*Impute first"):
        ppgen.fit(Flow("maf", hidden=(4,)), data, progress=False, max_epochs=1)
    fit = ppgen.fit(Flow("maf", hidden=(4,)), data.dropna(), progress=False, max_epochs=1)
    with pytest.raises(ValueError, match="Impute first"):
        fit.log_prob(data)


def test_bad_options():
    with pytest.raises(ValueError, match="kind must be one of"):
        Flow("glow")
    with pytest.raises(ValueError, match="transforms"):
        Flow(transforms=0)


def test_sample_save_load(tmp_path):
    data = ppgen.datasets.load("wine").iloc[::3, [0, 1, 13]].reset_index(drop=True)
    fit = ppgen.fit(Flow("realnvp", hidden=(8,)), data, seed=0, progress=False, max_epochs=2)
    draws = fit.sample(11, seed=2)
    assert list(draws.columns) == list(data.columns) and len(draws) == 11
    pd.testing.assert_frame_equal(draws, fit.sample(11, seed=2))
    fit.save(str(tmp_path / "f.ppgen"))
    np.testing.assert_array_equal(
        ppgen.load(str(tmp_path / "f.ppgen")).log_prob(data), fit.log_prob(data)
    )


@pytest.mark.slow
def test_two_moons_density_integrates_to_one():
    from sklearn.datasets import make_moons

    x, _ = make_moons(2000, noise=0.08, random_state=0)
    data = pd.DataFrame(x, columns=["a", "b"])
    fit = ppgen.fit(
        Flow("nsf", transforms=3, hidden=(32, 32)),
        data,
        seed=0,
        progress=False,
        max_epochs=150,
        batch_size=256,
        lr=3e-3,
    )
    ua, ha = grid(-4, 5, 450)
    ub, hb = grid(-3.5, 4, 375)
    xy = torch.cartesian_prod(ua, ub).numpy()
    density = np.exp(fit.log_prob(pd.DataFrame(xy, columns=["a", "b"])))
    total = density.sum() * ha * hb
    assert abs(total - 1) < 0.01, total
    # and it learned the moons: well above a Gaussian's fit
    gauss = stats.multivariate_normal(x.mean(0), np.cov(x.T)).logpdf(x).mean()
    assert fit.score(data) > gauss + 0.5, (fit.score(data), gauss)


@pytest.mark.parametrize("family", ["flow", "ar"])
def test_constant_column_is_a_clear_error_not_an_unbounded_density(family):
    """A constant continuous column has no finite maximum-likelihood density: refused by name
    (issue 17: no NaN, a clear error), also when its values are 0.1, whose float std is 1e-17."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=40), "flat": np.full(40, 0.1)})
    model = ppgen.Flow("realnvp", hidden=(4,)) if family == "flow" else ppgen.Autoregressive()
    with pytest.raises(ValueError, match=r"columns \['flat'\] are constant"):
        ppgen.fit(model, df, max_epochs=1, progress=False)
