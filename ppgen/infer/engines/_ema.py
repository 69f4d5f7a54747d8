"""Exponential moving average of a network's weights (Polyak averaging), for the minibatch
engine's ``ema`` option.

Diffusion models are evaluated with an EMA of their weights (Ho et al. 2020 use decay 0.9999;
Song & Ermon 2020 show the averaged weights give far better and steadier samples): the average
smooths the noise of the last Adam steps, which on small data sets is a large share of the
held-out loss's epoch-to-epoch spread.

References
----------
Polyak, B. T. & Juditsky, A. B. (1992). Acceleration of stochastic approximation by averaging.
*SIAM J. Control Optim.* 30(4).
Song, Y. & Ermon, S. (2020). Improved techniques for training score-based generative models.
*NeurIPS*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running average ``a <- a + (1 - d_k) (w - a)`` of ``params`` after each step k.

    ``d_k = min(decay, (1 + k) / (10 + k))`` (k = 0, 1, ... counts updates): the usual warm-up,
    so that the first steps' random initialization does not linger in the average for
    ``1 / (1 - decay)`` steps. The update is ``torch.lerp``, which returns ``w`` exactly when
    ``1 - d_k = 1`` (decay 0: the raw weights) and ``a`` exactly when ``w = a`` (constant
    weights are their own average), with no rounding in either case.
    """

    def __init__(self, params: Sequence[torch.Tensor], decay: float) -> None:
        decay = float(decay)
        if not 0 <= decay < 1:
            raise ValueError(f"ema must be a decay in [0, 1), got {decay!r}")
        self.params = list(params)
        self.decay = decay
        self.updates = 0
        self.average = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights into the average (after an optimizer step)."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for a, p in zip(self.average, self.params, strict=True):
            a.lerp_(p.detach(), 1.0 - decay)
        self.updates += 1

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the weights and the average in place (twice: back as they were)."""
        for a, p in zip(self.average, self.params, strict=True):
            tmp = p.detach().clone()
            p.copy_(a)
            a.copy_(tmp)
