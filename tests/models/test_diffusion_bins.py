"""Diffusion's discretized decoder (``bins``): a proper density on the dequantized data's range,
flat within bins, whose chain diffuses the bin centres (issue 15)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.models.diffusion import Diffusion

torch.set_num_threads(1)
LEVELS = 5


def _levels_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Two columns of dequantized levels on [0, 1): ``(count + u) / LEVELS``."""
    rng = np.random.default_rng(seed)
    counts = np.stack([rng.binomial(LEVELS - 1, 0.3, n), rng.integers(0, LEVELS, n)], 1)
    y = (counts + rng.uniform(size=counts.shape)) / LEVELS
    return pd.DataFrame(y, columns=["a", "b"])


def _model(frame: pd.DataFrame, **kw) -> tuple[Diffusion, ppgen.Schema]:
    schema = ppgen.Schema.infer(frame)
    torch.manual_seed(0)
    model = Diffusion(10, "loglinear", hidden=(16,), bins=LEVELS, **kw).build(schema)
    return model.double(), schema


def _data_log_density(model: Diffusion, schema: ppgen.Schema, y: torch.Tensor, out) -> torch.Tensor:
    """Per-entry log density on the data scale: the standardized one minus log(column scale)."""
    scale = torch.tensor([c.scale for c in schema.columns], dtype=torch.float64)
    loc = torch.tensor([c.loc for c in schema.columns], dtype=torch.float64)
    return model.heads.bin_log_prob((y - loc) / scale, out) - scale.log()


def test_bin_probabilities_sum_to_one_and_density_integrates_to_one():
    model, schema = _model(_levels_frame())
    torch.manual_seed(1)
    out = 2 * torch.randn(7, 2, dtype=torch.float64)  # any decoder locations
    with torch.no_grad():
        model.heads.log_scale.copy_(torch.tensor([-1.5, 0.3]))
        # The 17-level (here LEVELS) probabilities: density times width at each bin centre.
        centres = (torch.arange(LEVELS, dtype=torch.float64) + 0.5) / LEVELS
        probs = torch.stack(
            [_data_log_density(model, schema, c.expand(7, 2), out).exp() / LEVELS for c in centres]
        )
        torch.testing.assert_close(probs.sum(0), torch.ones(7, 2, dtype=torch.float64))
        # Midpoint quadrature over [0, 1] (exact for a density flat within bins).
        m = 40 * LEVELS
        grid = (torch.arange(m, dtype=torch.float64) + 0.5) / m
        dens = _data_log_density(model, schema, grid[:, None, None].expand(m, 7, 2), out).exp()
        torch.testing.assert_close(dens.mean(0), torch.ones(7, 2, dtype=torch.float64))
        # Flat within each bin, zero outside the range.
        assert torch.allclose(dens[:40], dens[:1].expand(40, 7, 2))
        outside = torch.tensor([[-0.01, 1.01]], dtype=torch.float64).expand(7, 2)
        assert bool(torch.isneginf(_data_log_density(model, schema, outside, out)).all())


def test_chain_diffuses_bin_centres_and_samples_stay_in_bins():
    frame = _levels_frame()
    model, schema = _model(frame)
    enc = schema.encode(frame, dtype=torch.float64)
    y0 = model.embed(enc.x)
    # The embedding is each value's bin centre (standardized): a function of the level only.
    counts = np.floor(frame.to_numpy() * LEVELS)
    centre = (counts + 0.5) / LEVELS
    loc = np.array([c.loc for c in schema.columns])
    scale = np.array([c.scale for c in schema.columns])
    np.testing.assert_allclose(y0.numpy(), (centre - loc) / scale, atol=1e-12)
    torch.manual_seed(3)
    draws = model.sample(300, None).numpy() * scale + loc
    assert ((draws >= 0) & (draws <= 1)).all()
    # Uniform within the bin: every level's fractional parts spread over (0, 1).
    frac = draws * LEVELS - np.floor(draws * LEVELS)
    assert frac.min() < 0.1 and frac.max() > 0.9


def test_bins_bound_is_a_bound_on_the_levels_and_persists(tmp_path):
    frame = _levels_frame(300)
    fit = ppgen.fit(
        Diffusion(10, "loglinear", time="continuous", hidden=(16,), bins=LEVELS),
        frame,
        max_epochs=5,
        progress=False,
        seed=0,
    )
    enc = fit.encode(frame)
    torch.manual_seed(0)
    bound = fit.model.continuous_bound(enc.x, enc.mask)
    # On the data scale the density is P(level) * LEVELS <= LEVELS per column, so the bound of
    # a row is at most 2 log(LEVELS) there (ELBO <= log p).
    jac = -sum(math.log(c.scale) for c in fit.schema.columns)
    assert bool(torch.isfinite(bound).all()) and float((bound + jac).max()) <= 2 * math.log(LEVELS)
    elbo = ppgen.evaluate.elbo(fit, frame.iloc[:50], num_particles=2, seed=0)
    assert np.isfinite(elbo.mean)
    fit.save(tmp_path / "b.ppgen")
    loaded = ppgen.load(tmp_path / "b.ppgen")
    assert loaded.model.bins == LEVELS
    torch.manual_seed(0)
    torch.testing.assert_close(loaded.model.continuous_bound(enc.x, enc.mask), bound)
    pd.testing.assert_frame_equal(loaded.sample(20, seed=1), fit.sample(20, seed=1))


def test_missing_cells_are_drawn_inside_the_bins_range():
    frame = _levels_frame()
    frame.iloc[::4, 0] = np.nan
    model, schema = _model(frame.dropna())
    enc = schema.encode(frame, dtype=torch.float64)
    torch.manual_seed(0)
    rows = model.elbo_rows(enc.x, enc.mask)
    assert bool(torch.isfinite(rows).all())
    imputed = model.impute(enc.x, enc.mask, None)
    assert bool(torch.equal(imputed[enc.mask], enc.x[enc.mask]))


def test_bins_options_are_checked():
    with pytest.raises(ValueError, match="bins"):
        Diffusion(5, bins=1)
    with pytest.raises(ValueError, match="bin_range"):
        Diffusion(5, bins=4, bin_range=(1.0, 0.0))
    schema = ppgen.Schema.infer(
        pd.DataFrame({"v": np.linspace(1.0, 2.0, 20)}), kinds={"v": "positive"}
    )
    with pytest.raises(ValueError, match="untransformed"):
        Diffusion(5, bins=4).build(schema)


def test_trained_bound_of_known_levels_is_below_and_near_the_true_log_density():
    # One column of 5 levels with known probabilities, uniformly dequantized: the true density
    # is p_k * 5. The held-out bound may not exceed it (beyond Monte-Carlo noise) and should
    # come close (the decoder carries the levels).
    probs = np.array([0.5, 0.25, 0.15, 0.07, 0.03])

    def draw(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        rng = np.random.default_rng(seed)
        k = rng.choice(LEVELS, size=n, p=probs)
        return pd.DataFrame({"v": (k + rng.uniform(size=n)) / LEVELS}), k

    (train, _), (test, k) = draw(1500, 0), draw(1500, 1)
    model = Diffusion(10, "loglinear", time="continuous", hidden=(32, 32), bins=LEVELS,
                      log_snr_range=(-8, 1))  # fmt: skip
    fit = ppgen.fit(model, train, max_epochs=40, patience=10, seed=0, progress=False)
    enc = fit.encode(test)
    torch.manual_seed(0)
    bound = torch.stack([fit.model.continuous_bound(enc.x, enc.mask) for _ in range(4)])
    bound = bound.double().mean(0).numpy() - math.log(fit.schema.columns[0].scale)
    gap = np.log(probs[k] * LEVELS) - bound  # log p(y) - bound, per row
    se = gap.std(ddof=1) / math.sqrt(len(gap))
    assert gap.mean() > -3 * se
    assert gap.mean() < 0.05
