"""VDM's learned monotone schedule (``Diffusion(learned_schedule=True)``): fixed endpoints, a
bound that does not depend on the interior, and training that lowers the estimator's variance.

The closed-form machinery (Gaussian data, the Bayes-optimal denoiser, the continuous-time loss
by quadrature) is that of test_diffusion_vdm.py.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from test_diffusion_vdm import X0, ExactDenoiser, _schema, continuous_loss

import ppgen
from ppgen.models._diffusion_schedule import LearnedLogSNR
from ppgen.models.diffusion import Diffusion

torch.set_num_threads(1)


def _perturbed(net: LearnedLogSNR, seed: int) -> LearnedLogSNR:
    """A schedule far from log-linear (random weights of the sigmoids)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.raw_weight.copy_(torch.randn(net.raw_weight.shape, generator=g, dtype=torch.float64))
        net.raw_slope.copy_(torch.randn(net.raw_slope.shape, generator=g, dtype=torch.float64))
    return net


def test_schedule_keeps_its_endpoints_decreases_and_has_its_derivative():
    net = _perturbed(LearnedLogSNR(-8.0, 1.0).double(), 0)
    u = torch.linspace(0, 1, 401, dtype=torch.float64)
    lam, dlam = net(u)
    lam, dlam = lam.detach(), dlam.detach()
    assert float(lam[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(lam[-1]) == pytest.approx(-8.0, abs=1e-12)
    assert bool((lam[1:] < lam[:-1]).all()) and bool((dlam < 0).all())
    h = 1e-6
    numeric = (net(u.clamp(h, 1 - h) + h)[0] - net(u.clamp(h, 1 - h) - h)[0]) / (2 * h)
    torch.testing.assert_close(dlam[1:-1], numeric[1:-1], rtol=1e-6, atol=1e-6)


def _model(seed: int | None = None) -> ExactDenoiser:
    model = ExactDenoiser(100, "loglinear", hidden=(4,), time="continuous", learned_schedule=True)
    model = model.build(_schema()).double()
    if seed is not None:
        _perturbed(model.schedule_net, seed)
    return model


def _draws(model: Diffusion, reps: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    y0 = model.embed(X0).repeat(reps, 1)
    u = torch.rand(len(y0), dtype=torch.float64)
    return model.continuous_term(y0, u).reshape(reps, 2)


def test_bound_does_not_depend_on_the_learned_interior():
    # Chain endpoints are the fixed ones, and the continuous loss (its mean over u) is the
    # closed-form integral for any interior.
    model = _model(seed=1)
    ab = model.alpha_bar_table()
    torch.testing.assert_close(ab[[1, -1]], model._alpha_bar[[1, -1]], rtol=1e-12, atol=0)
    with torch.no_grad():
        draws = _draws(model, 20000, 0)
    se = draws.std(0) / math.sqrt(len(draws))
    assert bool(((draws.mean(0) - continuous_loss()).abs() < 3 * se).all())


def test_training_the_schedule_lowers_the_estimators_variance():
    model = _model()
    with torch.no_grad():
        before = _draws(model, 4000, 1)
    opt = torch.optim.Adam(model.schedule_net.parameters(), lr=0.05)
    for step in range(150):
        opt.zero_grad()
        _draws(model, 64, 100 + step).mean().backward()  # the hooks turn it into E[L^2]
        opt.step()
    with torch.no_grad():
        after = _draws(model, 4000, 1)  # the same u and noise as before
    # One third less variance here (295 -> 195 and 350 -> 218 for the two rows).
    assert bool((after.var(0) < 0.75 * before.var(0)).all())
    se = after.std(0) / math.sqrt(len(after))
    assert bool(((after.mean(0) - continuous_loss()).abs() < 3 * se).all())


def test_learned_schedule_fit_persists(tmp_path):
    frame = ppgen.datasets.load("penguins").drop(columns="year").dropna()
    model = Diffusion(20, "loglinear", time="continuous", hidden=(16,), learned_schedule=True)
    fit = ppgen.fit(model, frame, max_epochs=3, progress=False, seed=0)
    assert fit.model.config()["learned_schedule"] is True
    enc = fit.encode(frame.iloc[:30])
    torch.manual_seed(0)
    bound = fit.model.continuous_bound(enc.x, enc.mask)
    fit.save(tmp_path / "s.ppgen")
    loaded = ppgen.load(tmp_path / "s.ppgen")
    torch.manual_seed(0)
    torch.testing.assert_close(loaded.model.continuous_bound(enc.x, enc.mask), bound)
    pd.testing.assert_frame_equal(loaded.sample(10, seed=1), fit.sample(10, seed=1))
    with pytest.raises(ValueError, match="continuous"):
        Diffusion(5, learned_schedule=True)
