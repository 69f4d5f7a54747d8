"""ppgen.GAN's conditional sampling (``Fit.sample(n, conditions={...})``) and its
``decode_sample`` hook (BDMC through a GAN fit) (issue 16).

Fast: a tiny GAN on a two-group table whose continuous column is far apart between the groups
(every conditional row holds its condition, the other column follows its group), the errors,
and ``decode_sample`` against ``decode_log_likelihood`` (label frequencies and the continuous
column's mean given one latent) and through ``decoder_bdmc``. Slow: penguins, Gentoo body mass
against Adelie's under a GAN trained with the engine's defaults.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.evaluate import decoder_bdmc
from ppgen.models.gan import GAN

torch.set_num_threads(1)


def _groups(n: int = 400) -> pd.DataFrame:
    """Group "a" (1/4 of the rows) around x = -3, group "b" around x = +3 (sd 0.5)."""
    rng = np.random.default_rng(0)
    g = np.where(rng.random(n) < 0.25, "a", "b")
    x = np.where(g == "a", -3.0, 3.0) + 0.5 * rng.standard_normal(n)
    return pd.DataFrame({"g": pd.Categorical(g), "x": x})


@pytest.fixture(scope="module")
def fitted():
    gan = GAN(4, hidden=(32,), critic_hidden=(32,), pac=5, max_modes=3)
    return ppgen.fit(
        gan, _groups(), seed=0, progress=False, max_steps=300, validation=0,
        dtype=torch.float32,
    )  # fmt: skip


def test_conditional_rows_hold_the_condition_and_follow_their_group(fitted):
    a = fitted.sample(300, seed=0, conditions={"g": "a"})
    b = fitted.sample(300, seed=0, conditions={"g": "b"})
    assert len(a) == 300 and (a["g"] == "a").all()
    assert len(b) == 300 and (b["g"] == "b").all()
    assert list(a.columns) == ["g", "x"] and a["g"].dtype == "category"
    # The groups are 6 sd apart; the conditional draws sit on their own side.
    assert a["x"].mean() < -1.5 and b["x"].mean() > 1.5
    # Seeded, and without conditions the draws are what they were.
    assert fitted.sample(50, seed=3, conditions={"g": "a"}).equals(
        fitted.sample(50, seed=3, conditions={"g": "a"})
    )
    plain = fitted.sample(400, seed=1)
    assert set(plain["g"]) == {"a", "b"}


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ({"h": "a"}, "no column 'h'"),
        ({"x": 1.0}, "column 'x' is continuous"),
        ({"g": "c"}, "column 'g' has no level 'c'"),
        (["g"], "conditions must be a mapping"),
    ],
)
def test_bad_conditions_name_the_column_or_level(fitted, conditions, message):
    with pytest.raises(ValueError, match=message):
        fitted.sample(10, seed=0, conditions=conditions)


def test_models_that_cannot_condition_say_so():
    fit = ppgen.fit(ppgen.GaussianMixture(1), _groups(60)[["x"]], seed=0, progress=False)
    with pytest.raises(ValueError, match="conditions"):
        fit.sample(10, seed=0, conditions={"x": 1.0})


def test_decode_sample_draws_from_the_noise_model(fitted):
    """Many draws at one latent: the label's frequencies and the continuous column's mean
    agree with ``decode_log_likelihood`` at that latent (the label marginal, and the mean of
    the density integrated on a grid)."""
    model, sigma, n = fitted.model, 0.4, 20000
    z = torch.randn(1, 4, generator=torch.Generator().manual_seed(0)).expand(n, 4)
    torch.manual_seed(1)
    with torch.no_grad():
        x = model.decode_sample({}, z, sigma)
    assert x.shape == (n, 2)
    z1 = z[:1]
    only_label = torch.tensor([[True, False]])
    for code in (0, 1):
        row = torch.tensor([[float(code), 0.0]], dtype=z.dtype)
        with torch.no_grad():
            p = float(model.decode_log_likelihood({}, z1, row, only_label, sigma).exp())
        freq = float((x[:, 0] == code).to(torch.float64).mean())
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-9
    grid = torch.linspace(-8.0, 8.0, 4001, dtype=z.dtype)
    rows = torch.stack([torch.zeros_like(grid), grid], -1)
    only_x = torch.tensor([False, True]).expand(len(grid), 2)
    with torch.no_grad():
        density = model.decode_log_likelihood({}, z1.expand(len(grid), 4), rows, only_x, sigma)
    density = density.exp().double()
    step = float(grid[1] - grid[0])
    assert abs(float(density.sum()) * step - 1.0) < 1e-3
    mean = float((density * grid.double()).sum() * step)
    sd = math.sqrt(float((density * (grid.double() - mean) ** 2).sum() * step))
    assert abs(float(x[:, 1].double().mean()) - mean) < 4 * sd / math.sqrt(n)


def test_decoder_bdmc_runs_through_a_gan_fit(fitted):
    b = decoder_bdmc(
        fitted, sigma=0.3, n_rows=8, n_steps=30, n_chains=2, n_leapfrog=2, n_tune=4, seed=0
    )
    assert isinstance(b.data, pd.DataFrame) and list(b.data.columns) == ["g", "x"]
    assert set(b.data["g"]) <= {"a", "b"}
    se = math.hypot(b.lower.mc_se, b.upper.mc_se)
    assert math.isfinite(b.gap) and b.lower.mean <= b.upper.mean + 3 * se
    assert b.method.startswith("BDMC T=30, Gaussian noise sigma=0.3")


@pytest.mark.slow
def test_penguins_conditional_body_mass():
    """Penguins with the engine's defaults: Gentoo rows drawn under the condition weigh
    about what real Gentoo do (5,076 g), clearly more than Adelie (3,701 g)."""
    data = ppgen.datasets.load("penguins")
    fit = ppgen.fit(GAN(), data, seed=0, progress=False, dtype=torch.float32)
    gentoo = fit.sample(500, seed=0, conditions={"species": "Gentoo"})
    adelie = fit.sample(500, seed=0, conditions={"species": "Adelie"})
    assert (gentoo["species"] == "Gentoo").all() and (adelie["species"] == "Adelie").all()
    real = data.groupby("species", observed=True)["body_mass_g"].mean()
    assert gentoo["body_mass_g"].mean() - adelie["body_mass_g"].mean() > 800
    assert abs(gentoo["body_mass_g"].mean() - real["Gentoo"]) < 400
    assert abs(adelie["body_mass_g"].mean() - real["Adelie"]) < 400


def test_networks_train_in_float32_and_come_back_in_the_data_dtype():
    table = _groups(60)
    tiny = {"max_steps": 4, "validation": 0}
    for train_dtype in ("float32", "data"):
        gan = GAN(2, hidden=(8,), critic_hidden=(8,), pac=2, max_modes=2)
        fit = ppgen.fit(gan, table, seed=0, progress=False, train_dtype=train_dtype, **tiny)
        assert {p.dtype for p in fit.model.state_dict().values() if p.is_floating_point()} == {
            torch.float64
        }
        assert fit.sample(5, seed=0)["x"].dtype == np.float64
    with pytest.raises(ValueError, match="train_dtype must be one of"):
        ppgen.fit(GAN(2), table, seed=0, progress=False, train_dtype="half", **tiny)
