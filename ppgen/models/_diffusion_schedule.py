"""VDM's learned monotone noise schedule for :class:`ppgen.models.diffusion.Diffusion`.

The continuous-time bound depends on the schedule only through its endpoints (Kingma et al.
2021, eq. 11): with the log SNR ``lambda(u)`` fixed at ``u = 0`` (the decoder's level) and
``u = 1`` (the prior's), any monotone interior gives the same bound and only changes the
variance of its Monte-Carlo estimate over ``u``. VDM therefore learns the interior by
minimizing that variance, ``E[L^2]`` of the per-row diffusion loss ``L``, with the gradient
``2 L dL/d(eta)`` on the schedule's parameters ``eta`` (the network's parameters keep the
gradient of ``E[L]``).

References
----------
Kingma, D. P., Salimans, T., Poole, B. & Ho, J. (2021). Variational diffusion models.
*NeurIPS*.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LearnedLogSNR", "variance_gradient"]


class LearnedLogSNR(nn.Module):
    """``lambda(u) = hi + (lo - hi) g(u)``, ``g`` increasing from ``g(0) = 0`` to ``g(1) = 1``.

    ``g(u) = (phi(u) - phi(0)) / (phi(1) - phi(0))`` with the monotone
    ``phi(u) = a u + sum_j w_j sigmoid(c_j (u - b_j))``, ``a, w_j, c_j > 0`` (softplus of free
    parameters): a sum of increasing functions, so ``lambda`` decreases strictly, and its
    endpoints are exactly ``hi`` and ``lo`` whatever the parameters. It starts near the
    log-linear schedule (small ``w_j``). The derivative ``dlambda/du`` is analytic.
    """

    def __init__(self, lo: float, hi: float, units: int = 16) -> None:
        super().__init__()
        self.lo, self.hi = float(lo), float(hi)
        self.raw_linear = nn.Parameter(torch.tensor(0.5413))  # softplus -> 1
        self.raw_weight = nn.Parameter(torch.full((units,), -4.0))  # softplus -> 0.018
        self.raw_slope = nn.Parameter(torch.full((units,), 2.0))  # c = 5 softplus -> 10.6
        self.centre = nn.Parameter(torch.linspace(0.0, 1.0, units))

    def _phi(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``phi(u)`` and ``phi'(u)`` for ``u`` of any shape."""
        a = nn.functional.softplus(self.raw_linear).to(u.dtype)
        w = nn.functional.softplus(self.raw_weight).to(u.dtype)
        c = 5 * nn.functional.softplus(self.raw_slope).to(u.dtype)
        s = torch.sigmoid(c * (u.unsqueeze(-1) - self.centre.to(u.dtype)))
        return a * u + (w * s).sum(-1), a + (w * c * s * (1 - s)).sum(-1)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``lambda(u)`` and ``dlambda/du`` (negative), each of ``u``'s shape."""
        phi, dphi = self._phi(u)
        ends = self._phi(u.new_tensor([0.0, 1.0]))[0]
        span = ends[1] - ends[0]
        g, dg = (phi - ends[0]) / span, dphi / span
        return self.hi + (self.lo - self.hi) * g, (self.lo - self.hi) * dg


def variance_gradient(loss: torch.Tensor, *schedule_outputs: torch.Tensor) -> None:
    """Make the gradient reaching the schedule's parameters through ``schedule_outputs`` that of
    ``loss^2`` instead of ``loss`` (per row): a hook multiplies the gradient of each output by
    ``2 loss`` (detached; the outputs have the loss's shape). Only the schedule's parameters
    sit behind these outputs, so the network's gradient is untouched. A no-op when gradients
    are not recorded."""
    if not torch.is_grad_enabled():
        return
    factor = 2 * loss.detach()
    for out in schedule_outputs:
        if out.requires_grad:
            out.register_hook(lambda grad, f=factor: grad * f)
