"""GaussianMixture's screened starts run in lockstep and drop hopeless ones: the winner is the
start the one-by-one screening picks, with the same parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ppgen
from ppgen.models.gmm import _SCREEN_TOL, _hopeless

torch.set_num_threads(1)


def test_hopeless_only_when_far_behind_with_shrinking_gains():
    # Ten gains halving each step (the last 2^-9): about 2^-9 left; 100 x that is ~0.2.
    halving = tuple(0.5**k for k in range(10))
    assert _hopeless(-1000.0, halving, lead=-999.0)
    assert not _hopeless(-1000.0, halving, lead=-999.9)
    assert not _hopeless(-1000.0, halving[:-1] + (1.0,), lead=0.0)  # a gain grew: a saddle?
    assert not _hopeless(-1000.0, halving[:5], lead=0.0)  # too early to tell
    assert not _hopeless(-1000.0, (math.inf,) + halving[1:], lead=0.0)  # the first "gain"


def _one_by_one(model, x, mask, n_init, init_steps):
    """The screening as it was before the lockstep: each start alone, the best kept."""
    best, best_value = None, -math.inf
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for params in model.init_candidates(x, mask, generator, n_init):
            value = -math.inf
            for _ in range(init_steps):
                new, objective = model.em_step(x, mask, params)
                gain, value = float(objective) - value, float(objective)
                if not math.isfinite(value):
                    break
                params = new
                if gain <= _SCREEN_TOL * abs(value):
                    break
            if math.isfinite(value) and value > best_value:
                best, best_value = params, value
    return best


def _separated():
    # Three unit-variance clusters 100 apart in 5 dimensions: two of the ten k-means++ starts
    # merge two clusters and crawl for 100 steps far below the others (they are dropped).
    rng = np.random.default_rng(0)
    centres = np.zeros((3, 5))
    centres[1, 0] = centres[2, 1] = 100.0
    return np.vstack([rng.normal(size=(300, 5)) + c for c in centres])


@pytest.mark.parametrize("name", ["separated", "wine"])
def test_lockstep_screening_keeps_the_one_by_one_winner(name):
    # wine: a case where a looser rule (two gains, no minimum) dropped the winning start.
    x = _separated() if name == "separated" else ppgen.datasets.load("wine", label=False)
    fit = ppgen.fit(ppgen.GaussianMixture(3, "full"), x, progress=False, max_steps=1)
    model, enc = fit.model, fit.encode(x)
    lockstep = model.init_params(enc.x, enc.mask, torch.Generator().manual_seed(0))
    alone = model._proper(enc.x, enc.mask, _one_by_one(model, enc.x, enc.mask, 10, 100))
    for key, value in alone.items():
        torch.testing.assert_close(lockstep[key], value, rtol=0, atol=1e-12)
