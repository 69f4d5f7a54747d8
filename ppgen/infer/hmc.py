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
from typing import Any, NamedTuple

import torch

__all__ = [
    "Densities",
    "HMCState",
    "Point",
    "Proposal",
    "evaluate",
    "leapfrog",
    "point",
    "step",
    "transition",
    "velocity",
]

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

    def gradient(u: torch.Tensor, last: bool) -> tuple[HMCState, torch.Tensor]:
        # Only the last position needs both gradients (it may become the state).
        s = evaluate(u, densities, beta=None if last else beta)
        return s, (s.grad_base + beta * s.grad_ratio if last else s.grad_base)

    (u, base, ll, gb, gl), p = leapfrog(u0, p, gb0 + beta * gl0, eps, n_leapfrog, gradient)
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


def leapfrog(
    u: torch.Tensor,
    p: torch.Tensor,
    g: torch.Tensor,
    eps: torch.Tensor | float,
    n_leapfrog: int,
    gradient: Callable[[torch.Tensor, bool], tuple[Any, torch.Tensor]],
    inv_mass: torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[Any, torch.Tensor]:
    """``n_leapfrog`` leapfrog steps from position ``u`` and momentum ``p`` (Neal 2011).

    ``g`` is the log density's gradient at ``u``; ``gradient(u, last)`` returns what the caller
    keeps of a position (its state) and the gradient there (``last`` marks the final position,
    the only one that may become the chain's state). ``inv_mass`` is a diagonal inverse mass
    (broadcast against ``p``: shared or per chain), a function ``p -> M^-1 p`` (a dense one),
    or None (unit mass). Returns the final position's state and momentum. The one integrator of
    both kernels: the tempered transition of AIS and the plain transitions of
    :func:`ppgen.mcmc`.
    """
    if n_leapfrog < 1:
        raise ValueError(f"n_leapfrog must be a positive integer, got {n_leapfrog!r}")
    p = p + 0.5 * eps * g
    for i in range(n_leapfrog):
        if inv_mass is None:
            u = u + eps * p
        else:
            u = u + eps * (inv_mass(p) if callable(inv_mass) else inv_mass * p)
        last = i == n_leapfrog - 1
        out, g = gradient(u, last)
        p = p + (0.5 * eps if last else eps) * g
    return out, p


# -- plain targets: one log density per chain, for MCMC ------------------------------------------
#: ``u (chains, dim) -> log density (chains,)``, differentiable.
LogDensity = Callable[[torch.Tensor], torch.Tensor]


class Point(NamedTuple):
    """A chain's position on a plain target, its log density and gradient; every field detached.

    Attributes
    ----------
    u : Tensor, shape (chains, dim)
    log_density : Tensor, shape (chains,)
    grad : Tensor, shape (chains, dim)
    """

    u: torch.Tensor
    log_density: torch.Tensor
    grad: torch.Tensor


class Proposal(NamedTuple):
    """What one transition of :func:`step` reports, per chain (shape (chains,) unless said).

    Attributes
    ----------
    u, velocity : Tensor, shape (chains, dim)
        The proposed position and its velocity ``inv_mass * p`` (what trajectory-length
        adaptation such as ChEES needs), before the Metropolis correction.
    accept_prob : Tensor
        Metropolis acceptance probability (0 for non-finite energies).
    energy : Tensor
        Hamiltonian of the state the chain holds after the transition.
    divergent : Tensor (bool)
        The proposal's energy error exceeded ``max_energy_error`` or was not finite.
    """

    u: torch.Tensor
    velocity: torch.Tensor
    accept_prob: torch.Tensor
    energy: torch.Tensor
    divergent: torch.Tensor


def velocity(inv_mass: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``M^-1 p`` for momenta ``p (chains, dim)``: a diagonal inverse mass ``(dim,)`` or a dense
    symmetric one ``(dim, dim)``."""
    return inv_mass * p if inv_mass.dim() < 2 else p @ inv_mass


def point(u: torch.Tensor, log_density: LogDensity) -> Point:
    """The :class:`Point` at ``u`` (chains, dim): one batched evaluation and backward pass, or
    the log density's own ``value_and_grad(u) -> (log density, gradient)`` when it has one
    (:class:`~ppgen.infer.potential.Potential`'s compiled function)."""
    value_and_grad = getattr(log_density, "value_and_grad", None)
    if value_and_grad is not None:
        lp, g = value_and_grad(u)
        return Point(u.detach(), lp, g)
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        lp = log_density(u)
        (g,) = torch.autograd.grad(lp.sum(), u)
    return Point(u.detach(), lp.detach(), g)


def step(
    state: Point,
    log_density: LogDensity,
    step_size: torch.Tensor | float,
    n_leapfrog: int,
    inv_mass: torch.Tensor,
    *,
    max_energy_error: float = 1000.0,
) -> tuple[Point, Proposal]:
    """One HMC transition of every chain on a plain target, diagonal or dense mass matrix.

    Every chain takes ``n_leapfrog`` steps of size ``step_size`` (shared: the chains advance in
    lockstep, one batched gradient per step), with momentum ``p ~ N(0, M)`` (``inv_mass`` is
    ``M^-1``: ``(dim,)`` diagonal or ``(dim, dim)`` dense), then a Metropolis correction, so
    each transition leaves the target exactly invariant. Randomness comes from torch's global
    generator.
    """
    u0, lp0, g0 = state
    if inv_mass.dim() < 2:
        sd = inv_mass.rsqrt()
        p0 = torch.randn_like(u0) * sd
        kinetic0 = 0.5 * (inv_mass * p0 * p0).sum(-1)
    else:
        # M^-1 = L L^T: p = L^-T z has covariance L^-T L^-1 = M.
        chol = torch.linalg.cholesky(inv_mass)
        z = torch.randn_like(u0)
        p0 = torch.linalg.solve_triangular(chol.mT, z.unsqueeze(-1), upper=True).squeeze(-1)
        kinetic0 = 0.5 * (velocity(inv_mass, p0) * p0).sum(-1)
    h0 = -lp0 + kinetic0

    def gradient(u: torch.Tensor, last: bool) -> tuple[Point, torch.Tensor]:
        s = point(u, log_density)
        return s, s.grad

    metric = inv_mass if inv_mass.dim() < 2 else (lambda p: velocity(inv_mass, p))
    new, p = leapfrog(u0, p0, g0, step_size, n_leapfrog, gradient, metric)
    v = velocity(inv_mass, p)
    h1 = -new.log_density + 0.5 * (v * p).sum(-1)
    delta = h1 - h0
    divergent = ~(delta <= max_energy_error)  # NaN counts as divergent
    log_acc = torch.nan_to_num(-delta, nan=-math.inf).clamp(max=0.0)
    accept = torch.rand_like(log_acc).log() < log_acc
    a2 = accept.unsqueeze(-1)
    kept = Point(
        torch.where(a2, new.u, u0),
        torch.where(accept, new.log_density, lp0),
        torch.where(a2, new.grad, g0),
    )
    energy = torch.where(accept, h1, h0)
    return kept, Proposal(new.u, v, log_acc.exp(), energy, divergent)


def _two_grads(
    base: torch.Tensor, ratio: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of both terms in ``u``; zeros for a term that does not depend on ``u``."""
    g_base = torch.autograd.grad(base.sum(), u, retain_graph=True, allow_unused=True)[0]
    g_ratio = torch.autograd.grad(ratio.sum(), u, allow_unused=True)[0]
    zero = torch.zeros_like(u)
    return (zero if g_base is None else g_base), (zero if g_ratio is None else g_ratio)
