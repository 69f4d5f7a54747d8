"""EM's ``accelerate=True`` (SQUAREM, ppgen.infer.engines._squarem): the fixed point of plain
EM in fewer EM steps, a non-decreasing objective, extrapolations kept inside the support."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import constraints

import ppgen
from ppgen.infer.engines._squarem import squarem

torch.set_num_threads(1)


def _linear_map(rate: float):
    """A linear EM-like map theta -> b + rate * R (theta - b) (rotation R, contraction rate),
    with the objective -|theta - b|^2, which each step increases; fixed point b."""
    b = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0),
                                    dtype=torch.float64))[0]  # fmt: skip
    a = q @ torch.diag(torch.tensor([rate, 0.5 * rate, 0.2], dtype=torch.float64)) @ q.T

    def step(p):
        theta = p["theta"]
        return {"theta": b + a @ (theta - b)}, -float(((theta - b) ** 2).sum())

    return step, b


def test_squarem_reaches_the_fixed_point_of_a_slow_map_in_far_fewer_steps():
    step, b = _linear_map(0.99)
    start = {"theta": torch.zeros(3, dtype=torch.float64)}
    plain, n_plain = dict(start), 0
    for _ in range(100_000):  # plain iteration, with the same stopping rule
        new, value = step(plain)
        _, next_value = step(new)
        n_plain += 1
        plain = new
        if next_value - value <= 1e-14:
            break
    params, objective, done = squarem(step, start, {}, tol=1e-14, max_steps=10_000)
    assert done
    assert torch.allclose(params["theta"], b, atol=1e-6)
    assert torch.allclose(plain["theta"], b, atol=1e-6)
    assert len(objective) < n_plain / 10  # measured 51 vs 1,370 here
    assert np.all(np.diff(objective) >= 0)  # monotone, as EM


def test_extrapolations_outside_the_support_are_pulled_back():
    # theta on the positive half-line, a map whose extrapolation overshoots below 0.
    def step(p):
        theta = p["theta"]
        return {"theta": 0.995 * theta}, -float(theta.sum())

    start = {"theta": torch.tensor([1.0], dtype=torch.float64)}
    seen = []

    def watched(p):
        seen.append(float(p["theta"]))
        return step(p)

    params, objective, _ = squarem(watched, start, {"theta": constraints.positive}, tol=1e-12,
                                   max_steps=400)  # fmt: skip
    assert min(seen) > 0 and float(params["theta"]) > 0
    assert np.all(np.diff(objective) >= 0)


@pytest.fixture(scope="module")
def faithful():
    return ppgen.datasets.load("faithful")


@pytest.mark.parametrize(("structure", "K"), [("EEE", 3), ("VVE", 2), ("full", 3)])
def test_accelerated_em_ends_at_plain_ems_optimum_in_fewer_steps(faithful, structure, K):
    def fit(**options):
        model = ppgen.GaussianMixture(K, structure, init="hc", n_init=1)
        return ppgen.fit(model, faithful, seed=0, progress=False, **options)

    plain, fast = fit(), fit(accelerate=True)
    gap = float(fast.log_prob(faithful).sum() - plain.log_prob(faithful).sum())
    # Both stop when an EM step gains < 1e-8 nats per row: the same optimum to about that.
    assert abs(gap) < 272 * 1e-6, gap
    # A cycle is two plain steps and an extrapolated one: one more step at most when EM is
    # already fast (VVE,2: 5 steps), several times fewer when it is slow (EEE,3: 77).
    assert len(fast.losses) <= max(len(plain.losses) + 1, len(plain.losses) / 2)
    assert np.all(np.diff(fast.losses) <= 1e-9)  # the loss never increases
    assert fast.converged


def test_accelerated_hmm_keeps_held_sites_and_reaches_plain_ems_optimum():
    rng = np.random.default_rng(1)
    z = np.repeat([0, 1, 0, 1], 50)
    data = [np.c_[rng.normal(3.0 * z, 1.0)] for _ in range(3)]
    transition = np.array([[0.9, 0.1], [0.0, 1.0]])  # a structural zero

    def fit(**options):
        return ppgen.fit(ppgen.HMM(2), data, seed=0, progress=False,
                         fixed={"transition": transition}, **options)  # fmt: skip

    plain, fast = fit(), fit(accelerate=True)
    np.testing.assert_array_equal(fast.params["transition"].numpy(), transition)
    assert math.isclose(-fast.losses[-1], -plain.losses[-1], abs_tol=600 * 1e-6)


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_accelerate_must_be_a_bool(faithful, bad):
    with pytest.raises(ValueError, match="accelerate"):
        ppgen.fit(ppgen.GaussianMixture(2), faithful, progress=False, accelerate=bad)
