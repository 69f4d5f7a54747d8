"""A vectorized Hamiltonian Monte Carlo transition over chains x rows.

Many independent targets are sampled at once: position ``u`` has shape ``(chains, rows, dim)``,
every log density is ``(chains, rows)``, and each row has its own leapfrog step size. One
transition is a handful of tensor operations on the data's device, whatever the number of
chains and rows, so it serves both annealed importance sampling (:func:`ppgen.evaluate.ais`:
one posterior per row, annealed) and batched MCMC.

The target is tempered: ``log f_beta(u) = log_base(u) + beta * log_ratio(u)``. For a plain
target pass ``densities`` returning ``(log_density, zeros)`` and ``beta=1``. A state carries the
gradients of both terms separately, so that a new ``beta`` (the next step of an annealing path)
reuses them without another gradient evaluation.

Transitions use unit mass, ``n_leapfrog`` leapfrog steps and a step size jittered by a factor
``1 +- jitter`` drawn per chain and transition (breaks periodic trajectories); the Metropolis
correction makes every transition leave ``f_beta`` exactly invariant. Non-finite energies are
rejected. Randomness comes from torch's global generator (seed it, e.g. ``ppgen._utils.seeded``).

References
----------
Neal, R. M. (2011). MCMC using Hamiltonian dynamics. In *Handbook of Markov Chain Monte Carlo*.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = ["Densities", "HMCState", "evaluate", "transition"]

#: ``u (chains, rows, dim) -> (log_base, log_ratio)``, each ``(chains, rows)``, differentiable.
Densities = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class HMCState(NamedTuple):
    """Position and the target's terms at it; every field detached.

    Attributes
    ----------
    u : Tensor, shape (chains, rows, dim)
        Unconstrained position.
    log_base, log_ratio : Tensor, shape (chains, rows)
        The two terms of the tempered target ``log_base + beta * log_ratio``.
    grad_base, grad_ratio : Tensor, shape (chains, rows, dim)
        Their gradients in ``u``. Inside a leapfrog trajectory (see :func:`evaluate` with
        ``beta``) ``grad_base`` holds the whole target's gradient and ``grad_ratio`` is None.
    """

    u: torch.Tensor
    log_base: torch.Tensor
    log_ratio: torch.Tensor
    grad_base: torch.Tensor
    grad_ratio: torch.Tensor | None


def evaluate(u: torch.Tensor, densities: Densities, beta: float | None = None) -> HMCState:
    """The state at ``u``.

    Without ``beta``, the gradients of both terms (to be recombined at any beta); with it, the
    gradient of ``log_base + beta * log_ratio`` alone, in ``grad_base`` (one backward pass,
    for the inner steps of a trajectory).
    """
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        base, ratio = densities(u)
        if beta is None:
            g_base, g_ratio = _two_grads(base, ratio, u)
        else:
            (g_base,) = torch.autograd.grad((base + beta * ratio).sum(), u)
            g_ratio = None
    return HMCState(u.detach(), base.detach(), ratio.detach(), g_base, g_ratio)


def transition(
    state: HMCState,
    densities: Densities,
    beta: float | torch.Tensor,
    log_step_size: torch.Tensor,
    n_leapfrog: int,
    *,
    jitter: float = 0.5,
) -> tuple[HMCState, torch.Tensor]:
    """One HMC transition of every chain and row, targeting ``log_base + beta * log_ratio``.

    Parameters
    ----------
    state : HMCState
        The current state, from :func:`evaluate` without ``beta`` (both gradients).
    densities : callable
        ``u -> (log_base, log_ratio)``, each ``(chains, rows)`` (:data:`Densities`).
    beta : float or scalar Tensor
        Inverse temperature of the target.
    log_step_size : Tensor, shape (rows,)
        Log leapfrog step size of each row, before the per-chain jitter.
    n_leapfrog : int
        Leapfrog steps of the trajectory.
    jitter : float
        The step size is multiplied by a uniform factor in ``[1 - jitter, 1 + jitter]`` drawn
        per chain.

    Returns
    -------
    (HMCState, Tensor)
        The new state (both gradients) and the Metropolis acceptance probability of each
        (chain, row), shape ``(chains, rows)``.
    """
    u0, base0, ll0, gb0, gl0 = state
    chains = u0.shape[0]
    jit = 1.0 + jitter * (2.0 * torch.rand(chains, 1, 1, dtype=u0.dtype, device=u0.device) - 1)
    eps = log_step_size.exp().reshape(1, -1, 1) * jit
    p = torch.randn_like(u0)
    h0 = -(base0 + beta * ll0) + 0.5 * (p * p).sum(-1)
    u, gb, gl = u0, gb0, gl0
    p = p + 0.5 * eps * (gb + beta * gl)
    for step in range(n_leapfrog):
        u = u + eps * p
        last = step == n_leapfrog - 1
        # Only the last position needs both gradients (it may become the state).
        u, base, ll, gb, gl = evaluate(u, densities, beta=None if last else beta)
        g = gb + beta * gl if last else gb
        p = p + (0.5 * eps if last else eps) * g
    h1 = -(base + beta * ll) + 0.5 * (p * p).sum(-1)
    log_acc = torch.nan_to_num(h0 - h1, nan=-math.inf).clamp(max=0.0)
    accept = torch.rand_like(log_acc).log() < log_acc
    a3 = accept.unsqueeze(-1)
    new = HMCState(
        torch.where(a3, u, u0),
        torch.where(accept, base, base0),
        torch.where(accept, ll, ll0),
        torch.where(a3, gb, gb0),
        torch.where(a3, gl, gl0),
    )
    return new, log_acc.exp()


def _two_grads(
    base: torch.Tensor, ratio: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of both terms in ``u``; zeros for a term that does not depend on ``u``."""
    g_base = torch.autograd.grad(base.sum(), u, retain_graph=True, allow_unused=True)[0]
    g_ratio = torch.autograd.grad(ratio.sum(), u, allow_unused=True)[0]
    zero = torch.zeros_like(u)
    return (zero if g_base is None else g_base), (zero if g_ratio is None else g_ratio)
