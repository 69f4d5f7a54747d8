"""EM's screened starts (``screen_steps``, HMM's default): the winner is resumed exactly, and
screening long enough to converge changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ppgen


def _sequences():
    """6 sequences (no corner starts: S >= 2K) of 60 steps from a sticky 2-state HMM."""
    rng = np.random.default_rng(3)
    out = []
    for _ in range(6):
        z = np.zeros(60, dtype=int)
        for t in range(1, 60):
            z[t] = z[t - 1] if rng.random() < 0.9 else 1 - z[t - 1]
        out.append(np.c_[rng.normal(2.0 * z, 1.0), rng.normal(-z, 0.7)])
    return out


def _fit(data, **options):
    # Plain EM (accelerate=False; HMM's default is SQUAREM since the speed branch): the
    # exactness claims below are about screening plain EM runs, whose state is their
    # parameters; an accelerated run's extrapolations depend on where it started.
    options = {"accelerate": False, **options}
    return ppgen.fit(ppgen.HMM(2, covariance_type="diag"), data, progress=False, **options)


def test_screened_winner_is_an_unscreened_run_and_long_screens_change_nothing():
    torch.set_num_threads(1)
    data = _sequences()
    screened = _fit(data, seed=5, n_init=4, screen_steps=2)
    assert len(screened.losses) > 2  # the winner was resumed after screening
    # The winner's log joints are exactly those of one start run alone to convergence.
    alone = [_fit(data, seed=5 + r, n_init=1).losses for r in range(4)]
    assert any(
        len(a) == len(screened.losses) and np.allclose(a, screened.losses, rtol=0, atol=1e-10)
        for a in alone
    )
    # Screening past convergence keeps every start: the unscreened result, to 1e-10.
    full = _fit(data, seed=5, n_init=4, screen_steps=1000)
    plain = _fit(data, seed=5, n_init=4, screen_steps=0)
    np.testing.assert_allclose(full.losses, plain.losses, rtol=0, atol=1e-10)
    best = max(-a[-1] for a in alone)
    assert -plain.losses[-1] == pytest.approx(best, abs=1e-10)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_screen_steps_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError, match="screen_steps"):
        _fit(_sequences(), screen_steps=bad)
