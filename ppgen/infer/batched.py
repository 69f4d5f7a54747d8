"""What the batched MCMC kernels of :func:`ppgen.mcmc` share: their result, the chains' starting
points and the warm-up's adaptation.

Both kernels (ChEES-HMC in :mod:`ppgen.infer.chees`, masked NUTS in
:mod:`ppgen.infer.nuts_batched`) advance every chain as one row of a ``(chains, dim)`` tensor and
adapt, pooled over chains: a shared step size by dual averaging of the chains' mean acceptance
statistic (Hoffman & Gelman 2014) and a diagonal mass matrix from the variance of the draws in
Stan's expanding windows, the step size being found again after each update.

References
----------
Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn sampler. *JMLR* 15, 1593-1623.
Stan Development Team. Stan Reference Manual, "HMC algorithm parameters" (adaptation windows).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ppgen import _arviz
from ppgen.infer import hmc
from ppgen.infer.potential import Potential

__all__ = ["MCMCResult", "Warmup", "make_result", "start_chains", "windows"]


@dataclass(frozen=True)
class MCMCResult:
    """Draws of :func:`ppgen.mcmc`.

    Attributes
    ----------
    samples : dict of str to ndarray
        Each latent site's draws on its own support, shaped ``(chain, draw, *site_shape)``.
    sample_stats : dict of str to ndarray
        Per ``(chain, draw)``: ``diverging`` (bool), ``energy`` (the Hamiltonian),
        ``acceptance_rate`` and ``n_steps`` (leapfrog steps), and for NUTS ``tree_depth``,
        ArviZ's names.
    kernel : str
        ``"chees"`` or ``"nuts"``.
    step_size, trajectory_length : float
        The adapted values used for every draw (NUTS has no fixed trajectory length: NaN).
    inv_mass : ndarray, shape (dim,) or (dim, dim)
        Adapted inverse mass matrix, diagonal or dense (``dense_mass=True``), in unconstrained
        space, sites in ``samples`` order.
    info : dict
        ``vectorized`` (whether vmap served the chains), ``num_warmup``, ``warmup_divergences``,
        ``seconds`` (wall time of warm-up and sampling), ``seed``.
    """

    samples: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    kernel: str
    step_size: float
    trajectory_length: float
    inv_mass: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_chains(self) -> int:
        return int(next(iter(self.samples.values())).shape[0])

    @property
    def num_samples(self) -> int:
        """Draws per chain."""
        return int(next(iter(self.samples.values())).shape[1])

    @property
    def divergences(self) -> int:
        """Divergent transitions after warm-up, over all chains."""
        return int(self.sample_stats["diverging"].sum())

    def to_arviz(self) -> Any:
        """ArviZ InferenceData with the posterior and the sampler's statistics."""
        return _arviz.inference_data(
            self.samples,
            sample_stats=self.sample_stats,
            attrs={"kernel": self.kernel, "step_size": self.step_size},
        )

    def summary(self) -> Any:
        """ArviZ's summary: mean, sd, HDI, MCSE, bulk/tail ESS and R-hat per scalar."""
        return _arviz.summary(self.samples)

    def __repr__(self) -> str:
        return (
            f"MCMCResult(kernel={self.kernel!r}, sites={list(self.samples)}, "
            f"num_chains={self.num_chains}, num_samples={self.num_samples}, "
            f"divergences={self.divergences})"
        )


def make_result(
    potential: Potential,
    draws: torch.Tensor,
    stats: dict[str, torch.Tensor],
    *,
    kernel: str,
    step_size: float,
    trajectory_length: float,
    inv_mass: torch.Tensor,
    started: float,
    **info: Any,
) -> MCMCResult:
    """The :class:`MCMCResult` of unconstrained ``draws`` (chains, draws, dim) and per-draw
    ``stats``; ``started`` is the run's ``time.perf_counter()`` at its start, ``info`` the
    kernel's settings (``num_warmup``, ``warmup_divergences``, ``seed``, ...)."""
    samples = {k: v.detach().cpu().numpy() for k, v in potential.constrain(draws).items()}
    return MCMCResult(
        samples=samples,
        sample_stats={k: v.cpu().numpy() for k, v in stats.items()},
        kernel=kernel,
        step_size=float(step_size),
        trajectory_length=float(trajectory_length),
        inv_mass=inv_mass.cpu().numpy(),
        info={
            "vectorized": bool(potential.vectorized),
            **info,
            "seconds": time.perf_counter() - started,
        },
    )


def start_chains(
    potential: Potential, chains: int, center: torch.Tensor | None, radius: float
) -> hmc.Point:
    """Chains scattered uniformly around ``center``; chains with a non-finite log density or
    gradient are drawn again (up to 100 times)."""
    dim, dtype, device = potential.dim, potential.dtype, potential.device
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    center = torch.zeros(dim, dtype=dtype, device=device) if center is None else center
    u = center + radius * (2 * torch.rand(chains, dim, dtype=dtype, device=device) - 1)
    state = hmc.point(u, potential)
    for _ in range(100):
        bad = ~(state.log_density.isfinite() & state.grad.isfinite().all(-1))
        if not bad.any():
            return state
        fresh = center + radius * (2 * torch.rand(chains, dim, dtype=dtype, device=device) - 1)
        state = hmc.point(torch.where(bad.unsqueeze(-1), fresh, state.u), potential)
    raise ValueError(
        f"no starting point with a finite log density found for {int(bad.sum())} chain(s) in "
        f"100 tries (uniform within {radius} of the start in unconstrained space); give init "
        "values inside the model's support"
    )


def windows(num_warmup: int) -> tuple[int, list[int]]:
    """Stan's adaptation schedule: the first iteration of the mass windows and each window's
    end (exclusive); none for very short warm-ups."""
    if num_warmup < 20:
        return num_warmup, []
    init, term = int(0.15 * num_warmup), int(0.1 * num_warmup)
    last = num_warmup - term
    ends, start, size = [], init, 25
    while start < last:
        end = start + size
        if end + 2 * size > last:
            end = last
        ends.append(end)
        start, size = end, 2 * size
    return init, ends


class Warmup:
    """Step size by dual averaging (Hoffman & Gelman 2014, section 3.2; Stan's constants) and
    the pooled-variance diagonal mass matrix in Stan's windows (``dense``: the pooled
    covariance, regularized towards the identity as Stan's dense metric)."""

    def __init__(
        self, num_warmup: int, target: float, max_leapfrog: int, lr: float, dense: bool = False
    ) -> None:
        self.target, self.max_leapfrog, self.dense = float(target), max_leapfrog, dense
        self.first, self.ends = windows(num_warmup)
        self.gamma, self.t0, self.kappa = 0.05, 10.0, 0.75
        self._sum = self._sumsq = None
        self._count = 0

    def restart(self, eps: float) -> None:
        self.mu, self.t, self.h_bar = math.log(10 * eps), 0, 0.0
        self.log_eps, self.log_eps_bar = math.log(eps), 0.0

    def adapt_step_size(self, accept_prob: torch.Tensor) -> float:
        self.t += 1
        stat = float(torch.nan_to_num(accept_prob, nan=0.0).mean())
        eta = 1.0 / (self.t + self.t0)
        self.h_bar = (1 - eta) * self.h_bar + eta * (self.target - stat)
        self.log_eps = self.mu - math.sqrt(self.t) / self.gamma * self.h_bar
        w = self.t**-self.kappa
        self.log_eps_bar = w * self.log_eps + (1 - w) * self.log_eps_bar
        return math.exp(self.log_eps)

    def final_step_size(self) -> float:
        return math.exp(self.log_eps_bar)

    def accumulate(self, i: int, u: torch.Tensor) -> torch.Tensor | None:
        """Pool iteration ``i``'s draws; at a window's end, the new inverse mass."""
        if not self.ends or i < self.first:
            return None
        x = u.detach().to(torch.float64)
        sq = x.T @ x if self.dense else (x * x).sum(0)
        if self._sum is None:
            self._sum, self._sumsq, self._count = x.sum(0), sq, x.shape[0]
        else:
            self._sum, self._sumsq = self._sum + x.sum(0), self._sumsq + sq
            self._count += x.shape[0]
        if i + 1 != self.ends[0]:
            return None
        self.ends.pop(0)
        n = self._count
        mean = self._sum / n
        if self.dense:
            cov = (self._sumsq - n * torch.outer(mean, mean)) / max(n - 1, 1)
            eye = torch.eye(len(mean), dtype=cov.dtype, device=cov.device)
            cov = (n / (n + 5.0)) * cov + 1e-3 * (5.0 / (n + 5.0)) * eye  # Stan's regularization
            self._sum = self._sumsq = None
            return (0.5 * (cov + cov.T)).to(u.dtype)
        var = ((self._sumsq - n * mean * mean) / max(n - 1, 1)).clamp_min(0.0)
        var = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))  # Stan's regularization
        self._sum = self._sumsq = None
        return var.to(u.dtype)

    def find_step_size(
        self, state: hmc.Point, potential: Potential, inv_mass: torch.Tensor, eps: float
    ) -> tuple[hmc.Point, float]:
        """Double or halve ``eps`` until one leapfrog step's mean acceptance crosses 1/2
        (Hoffman & Gelman 2014, Algorithm 4, over all chains at once); the trial transitions
        are valid HMC moves, kept. Restarts the dual averaging at the result."""
        state, prop = hmc.step(state, potential, eps, 1, inv_mass)
        direction = 1.0 if float(prop.accept_prob.mean()) > 0.5 else -1.0
        for _ in range(100):
            trial = eps * 2.0**direction
            state, prop = hmc.step(state, potential, trial, 1, inv_mass)
            crossed = (float(prop.accept_prob.mean()) > 0.5) != (direction > 0)
            if crossed:
                break
            eps = trial
        self.restart(eps)
        return state, eps
