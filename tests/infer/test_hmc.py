"""The vectorized HMC transition over chains x rows (ppgen.infer.hmc), on Gaussian targets whose
moments are known in closed form."""

from __future__ import annotations

import math

import torch

from ppgen._utils import seeded
from ppgen.infer import hmc


def _targets(mu: torch.Tensor, prec: torch.Tensor):
    """Tempered Gaussian target per row: base N(0, I), ratio -prec/2 |u - mu|^2 (unnormalized).

    f_beta is Gaussian with precision 1 + beta prec and mean beta prec mu / (1 + beta prec)."""

    def densities(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        base = -0.5 * (u * u).sum(-1)
        ratio = -0.5 * prec * ((u - mu.unsqueeze(-1)) ** 2).sum(-1)
        return base, ratio

    return densities


def test_transitions_leave_each_rows_tempered_gaussian_invariant():
    chains, dim = 4000, 2
    mu = torch.tensor([-1.0, 0.0, 3.0], dtype=torch.float64)
    prec = torch.tensor([0.5, 4.0, 25.0], dtype=torch.float64)
    densities = _targets(mu, prec)
    for beta in (0.3, 1.0):
        p = 1 + beta * prec
        mean, sd = beta * prec * mu / p, 1 / p.sqrt()
        with seeded(0):
            # Start at exact draws: an invariant kernel keeps the moments.
            u = mean.reshape(1, -1, 1) + sd.reshape(1, -1, 1) * torch.randn(
                chains, 3, dim, dtype=torch.float64
            )
            state = hmc.evaluate(u, densities)
            log_eps = (0.9 * sd).log()  # one step size per row, near the scale of its target
            accepted = []
            for _ in range(15):
                state, acc = hmc.transition(state, densities, beta, log_eps, 5)
                accepted.append(acc)
        z = state.u
        assert z.shape == (chains, 3, dim)
        se = sd / math.sqrt(chains * dim)
        assert torch.all((z.mean((0, 2)) - mean).abs() < 5 * se)
        assert torch.all((z.std((0, 2)) / sd - 1).abs() < 0.06)
        acc = torch.stack(accepted)
        assert acc.shape == (15, chains, 3) and float(acc.mean()) > 0.6


def test_state_holds_both_gradients_and_is_seeded():
    mu = torch.tensor([1.0, 2.0], dtype=torch.float64)
    prec = torch.tensor([2.0, 3.0], dtype=torch.float64)
    densities = _targets(mu, prec)
    u = torch.zeros(3, 2, 1, dtype=torch.float64)
    state = hmc.evaluate(u, densities)
    torch.testing.assert_close(state.grad_base, -u)
    torch.testing.assert_close(state.grad_ratio, (prec * mu).reshape(1, 2, 1).expand(3, 2, 1))
    inner = hmc.evaluate(u, densities, beta=0.5)
    assert inner.grad_ratio is None
    torch.testing.assert_close(inner.grad_base, state.grad_base + 0.5 * state.grad_ratio)
    runs = []
    for _ in range(2):
        with seeded(7):
            runs.append(hmc.transition(state, densities, 1.0, torch.zeros(2) - 1, 3)[0].u)
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
