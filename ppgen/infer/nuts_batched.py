"""Masked iterative NUTS: every chain's No-U-Turn tree built in lockstep, as one tensor.

Each chain is a row of a ``(chains, dim)`` tensor. A transition draws the momentum
``p ~ N(0, M)`` and then doubles every chain's trajectory at the same time: at doubling ``j``
each chain still building extends its trajectory by ``2^j`` leapfrog steps, forwards or
backwards (its own fair coin), one leaf at a time, so one batched log density and gradient
(:class:`~ppgen.infer.potential.Potential`) advances every chain. A chain whose trajectory has
stopped (a U-turn, a divergence, or the maximum depth) is masked: its state no longer changes
and its rows are left out of the gradient evaluations; the transition ends when no chain is
building. The integrator is :func:`ppgen.infer.hmc.leapfrog` (the one of ChEES-HMC and AIS).

The tree is the one of Stan's NUTS (Hoffman & Gelman 2014, with Betancourt 2017's
refinements), written iteratively rather than recursively:

* **Multinomial sampling**: each leaf weighs ``exp(-H)``; inside a new subtree the proposal is
  updated leaf by leaf with probability ``w_leaf / W_subtree`` (progressive uniform sampling,
  the same law as Stan's recursive merges), and a valid subtree's proposal replaces the
  chain's with probability ``min(1, W_subtree / W_old)`` (biased progressive sampling).
* **Generalized U-turn criterion**: a (sub)trajectory stops when ``rho . M^-1 p_end <= 0`` at
  either end, ``rho`` the sum of its momenta. Every subtree of ``2^k`` leaves (k >= 1) is
  checked when its last leaf is computed; the momentum at its first leaf and the momentum sum
  before it are kept in ``max_tree_depth`` checkpoints, found by bit counts of the leaf's index
  (the iterative formulation of NumPyro and TFP). A subtree that turns or diverges is discarded
  whole; after each merge the whole trajectory is checked.
* **Divergence**: a leaf whose energy exceeds the initial one by more than
  ``max_energy_error`` (or is NaN) ends the chain's trajectory and flags the transition.

Stan's additional checks across the two halves of merged subtrees (Stan 2.26) are not made.
Warm-up (pooled over chains, :class:`~ppgen.infer.batched.Warmup`): a shared step size by
dual averaging of the chains' mean acceptance statistic (the mean over each trajectory's leaves
of ``min(1, exp(H0 - H))``), and a diagonal mass matrix from the pooled variance of the draws in
Stan's windows.

References
----------
Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn sampler. *JMLR* 15, 1593-1623.
Betancourt, M. (2017). A conceptual introduction to Hamiltonian Monte Carlo. arXiv:1701.02434
(appendix A: multinomial sampling, the generalized no-U-turn criterion).
Phan, D., Pradhan, N. & Jankowiak, M. (2019). Composable effects for flexible and accelerated
probabilistic programming in NumPyro. arXiv:1912.11554 (the iterative NUTS).
Lao, J. et al. (2020). tfp.mcmc: modern Markov chain Monte Carlo tools built for modern
hardware. arXiv:2002.01184 (NUTS over many chains in lockstep).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import torch

from ppgen._utils import progress_bar
from ppgen.infer import hmc
from ppgen.infer.batched import MCMCResult, Warmup, start_chains
from ppgen.infer.potential import Potential

__all__ = ["Tree", "run_nuts_batched", "transition"]


class Tree(NamedTuple):
    """What one NUTS transition reports, per chain (shape (chains,) unless said).

    Attributes
    ----------
    accept_prob : Tensor
        Mean over the trajectory's leaves (those of a discarded last subtree included) of
        ``min(1, exp(H0 - H))``: Stan's acceptance statistic, which the step size is tuned on.
    energy : Tensor
        Hamiltonian of the state the chain holds after the transition.
    divergent : Tensor (bool)
        A leaf's energy error exceeded ``max_energy_error`` or was not finite.
    tree_depth : Tensor (int64)
        Doublings merged into the trajectory (Stan's ``treedepth__``).
    n_steps : Tensor (int64)
        Leapfrog steps taken (a discarded subtree's included).
    left, right : Tensor, shape (chains, dim)
        The positions at the trajectory's two ends (backward and forward in time).
    """

    accept_prob: torch.Tensor
    energy: torch.Tensor
    divergent: torch.Tensor
    tree_depth: torch.Tensor
    n_steps: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor


def _turning(
    p_a: torch.Tensor, p_b: torch.Tensor, rho: torch.Tensor, inv_mass: torch.Tensor
) -> torch.Tensor:
    """The generalized U-turn criterion (Betancourt 2017, A.4.2; Stan's form): a trajectory
    with end momenta ``p_a``, ``p_b`` and momentum sum ``rho`` turns unless both
    ``rho . M^-1 p_end > 0``. Symmetric in the ends, so it does not matter which end is first
    in time."""
    return ~(((inv_mass * p_a * rho).sum(-1) > 0) & ((inv_mass * p_b * rho).sum(-1) > 0))


def _subtree_checks(n: int) -> range:
    """Checkpoint slots of the subtrees (2 leaves or more) whose last leaf is leaf ``n`` of a
    subtree being built: none for even ``n``; for odd ``n`` with ``t`` trailing one bits, the
    ``t`` subtrees of 2, 4, ..., 2^t leaves, whose first leaves were stored in slots
    ``popcount(n) - t`` to ``popcount(n) - 1``."""
    if n % 2 == 0:
        return range(0)
    t = ((n ^ (n + 1)) + 1).bit_length() - 2  # trailing one bits of n
    top = bin(n).count("1") - 1
    return range(top - t + 1, top + 1)


def transition(
    state: hmc.Point,
    log_density: hmc.LogDensity,
    step_size: float,
    inv_mass: torch.Tensor,
    *,
    max_tree_depth: int = 10,
    max_energy_error: float = 1000.0,
    momentum: torch.Tensor | None = None,
    directions: torch.Tensor | None = None,
) -> tuple[hmc.Point, Tree]:
    """One NUTS transition of every chain, trees built in lockstep.

    Parameters
    ----------
    state : Point
        Every chain's position, log density and gradient, ``(chains, dim)``.
    log_density : callable
        ``u (chains, dim) -> (chains,)``, differentiable (a chain's rows are evaluated only
        while its trajectory grows).
    step_size : float
        Leapfrog step size, shared by the chains.
    inv_mass : Tensor, shape (dim,)
        Diagonal inverse mass matrix.
    max_tree_depth : int
        At most ``2^max_tree_depth - 1`` leapfrog steps per transition.
    max_energy_error : float
        Energy error that flags a divergence (Stan's 1000).
    momentum, directions : Tensor, optional
        The initial momentum ``(chains, dim)`` and each doubling's direction
        ``(chains, max_tree_depth)`` (True: forwards in time); drawn from torch's global
        generator when not given (given, for tests that replay a trajectory).

    Returns
    -------
    (Point, Tree)
        The new state and the transition's statistics.
    """
    u0, lp0, g0 = state
    chains, dim = u0.shape
    if momentum is None:
        momentum = torch.randn_like(u0) * inv_mass.rsqrt()
    if directions is None:
        directions = torch.rand(chains, max_tree_depth, dtype=u0.dtype, device=u0.device) < 0.5
    h0 = -lp0 + 0.5 * (inv_mass * momentum * momentum).sum(-1)
    zero_i = torch.zeros(chains, dtype=torch.int64, device=u0.device)
    # The trajectory: its two ends (position, momentum, gradient), its proposal, the log of
    # its summed weights exp(H0 - H) and the sum of its momenta.
    left = [u0, momentum, g0]
    right = [u0, momentum, g0]
    proposal = [u0, lp0, g0, h0]
    log_w = torch.zeros_like(lp0)
    rho = momentum.clone()
    active = torch.ones(chains, dtype=torch.bool, device=u0.device)
    depth, n_steps = zero_i.clone(), zero_i.clone()
    sum_acc = torch.zeros_like(lp0)
    divergent = torch.zeros_like(active)
    # Checkpoints of the subtree being built: first momenta and momentum sums before them (a
    # slot is always written before it is read within a subtree, so it is never cleared).
    ckpt_p = torch.zeros(chains, max_tree_depth, dim, dtype=u0.dtype, device=u0.device)
    ckpt_r = torch.zeros_like(ckpt_p)

    def gradient(u: torch.Tensor, last: bool) -> tuple[hmc.Point, torch.Tensor]:
        s = hmc.point(u, log_density)
        return s, s.grad

    for j in range(max_tree_depth):
        if not bool(active.any()):
            break
        forward = directions[:, j]
        f2 = forward.unsqueeze(-1)
        # (a tensor of the data's dtype first: torch.where on two floats would round to float32)
        eps = torch.full_like(lp0, float(step_size)).unsqueeze(-1)
        signed_eps = torch.where(f2, eps, -eps)
        # The new subtree grows from the end the chain's direction points to.
        cur = [torch.where(f2, r, l) for r, l in zip(right, left, strict=True)]
        sub_ok = active.clone()
        sub_log_w = torch.full_like(lp0, -math.inf)
        sub_rho = torch.zeros_like(u0)
        sub_prop = [t.clone() for t in proposal]
        for n in range(2**j):
            idx = sub_ok.nonzero().squeeze(-1)
            if idx.numel() == 0:
                break
            # One leapfrog step of the chains still building (rows gathered, so a masked
            # chain costs nothing in the model), scattered back; masked rows keep their values.
            new, p_new = hmc.leapfrog(
                cur[0][idx], cur[1][idx], cur[2][idx], signed_eps[idx], 1, gradient, inv_mass
            )
            u, p, g = cur[0].clone(), cur[1].clone(), cur[2].clone()
            lp = torch.zeros_like(lp0)
            u[idx], p[idx], g[idx], lp[idx] = new.u, p_new, new.grad, new.log_density
            h = -lp + 0.5 * (inv_mass * p * p).sum(-1)
            delta = h - h0
            div = sub_ok & ~(delta <= max_energy_error)  # NaN counts as divergent
            log_w_leaf = torch.nan_to_num(-delta, nan=-math.inf)
            sum_acc = sum_acc + torch.where(sub_ok, log_w_leaf.clamp(max=0.0).exp(), 0.0)
            n_steps = n_steps + sub_ok
            # Progressive uniform sampling inside the subtree: leaf n with prob w_n / W.
            grown = torch.logaddexp(sub_log_w, log_w_leaf)
            take = sub_ok & (torch.rand_like(lp0) < (log_w_leaf - grown).exp())
            sub_log_w = torch.where(sub_ok, grown, sub_log_w)
            t2 = take.unsqueeze(-1)
            sub_prop = [
                torch.where(t2, u, sub_prop[0]),
                torch.where(take, lp, sub_prop[1]),
                torch.where(t2, g, sub_prop[2]),
                torch.where(take, h, sub_prop[3]),
            ]
            sub_rho = sub_rho + torch.where(sub_ok.unsqueeze(-1), p, 0.0)
            turned = torch.zeros_like(sub_ok)
            if n % 2 == 0:  # leaf n may open subtrees: keep its momentum and the sum before it
                k = bin(n).count("1")
                ckpt_p[:, k] = p
                ckpt_r[:, k] = sub_rho - p
            for k in _subtree_checks(n):
                turned |= _turning(ckpt_p[:, k], p, sub_rho - ckpt_r[:, k], inv_mass)
            divergent |= div
            sub_ok = sub_ok & ~div & ~turned
            cur = [u, p, g]
        # Merge the valid subtrees; biased progressive sampling of the proposal.
        merge = sub_ok
        m2 = merge.unsqueeze(-1)
        right = [torch.where(m2 & f2, c, r) for c, r in zip(cur, right, strict=True)]
        left = [torch.where(m2 & ~f2, c, l) for c, l in zip(cur, left, strict=True)]
        take = merge & (torch.rand_like(lp0) < (sub_log_w - log_w).clamp(max=0.0).exp())
        t2 = take.unsqueeze(-1)
        proposal = [
            torch.where(t2 if t.dim() == 2 else take, s, t)
            for s, t in zip(sub_prop, proposal, strict=True)
        ]
        log_w = torch.where(merge, torch.logaddexp(log_w, sub_log_w), log_w)
        rho = torch.where(m2, rho + sub_rho, rho)
        depth = depth + merge
        active = merge & ~_turning(left[1], right[1], rho, inv_mass)
    new_state = hmc.Point(proposal[0], proposal[1], proposal[2])
    accept = sum_acc / n_steps.clamp(min=1).to(sum_acc.dtype)
    return new_state, Tree(accept, proposal[3], divergent, depth, n_steps, left[0], right[0])


def run_nuts_batched(
    potential: Potential,
    *,
    num_chains: int,
    num_warmup: int,
    num_samples: int,
    center: torch.Tensor | None = None,
    init_radius: float = 2.0,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    progress: bool | None = None,
    seed: int = 0,
) -> MCMCResult:
    """Warm up and run masked NUTS on ``potential``; randomness from torch's global generator
    (the caller seeds it). ``center`` (dim,) is the unconstrained start the chains scatter
    around (zeros by default)."""
    started = time.perf_counter()
    state = start_chains(potential, num_chains, center, init_radius)
    dtype, device = state.u.dtype, state.u.device
    inv_mass = torch.ones(potential.dim, dtype=dtype, device=device)
    bar = progress_bar(num_warmup + num_samples, "nuts warmup", progress)
    options = {"max_tree_depth": max_tree_depth}
    try:
        warm = Warmup(num_warmup, target_accept_prob, 2**max_tree_depth, 0.0)
        state, eps = warm.find_step_size(state, potential, inv_mass, 1.0)
        warmup_divergences = 0
        for i in range(num_warmup):
            state, tree = transition(state, potential, eps, inv_mass, **options)
            warmup_divergences += int(tree.divergent.sum())
            eps = warm.adapt_step_size(tree.accept_prob)
            inv_mass_new = warm.accumulate(i, state.u)
            if inv_mass_new is not None:
                inv_mass = inv_mass_new
                state, eps = warm.find_step_size(state, potential, inv_mass, eps)
            bar.set_postfix(step_size=f"{eps:.3g}", depth=int(tree.tree_depth.max()), refresh=False)
            bar.update()
        if num_warmup:
            eps = warm.final_step_size()
        bar.set_description("nuts sampling")
        chains, dim = state.u.shape
        draws = torch.empty(chains, num_samples, dim, dtype=dtype, device=device)
        stats = {
            k: torch.empty(chains, num_samples, dtype=dtype, device=device)
            for k in ("energy", "acceptance_rate")
        }
        ints = {
            k: torch.empty(chains, num_samples, dtype=torch.int64, device=device)
            for k in ("n_steps", "tree_depth")
        }
        diverging = torch.empty(chains, num_samples, dtype=torch.bool, device=device)
        for i in range(num_samples):
            state, tree = transition(state, potential, eps, inv_mass, **options)
            draws[:, i] = state.u
            stats["energy"][:, i] = tree.energy
            stats["acceptance_rate"][:, i] = tree.accept_prob
            ints["n_steps"][:, i] = tree.n_steps
            ints["tree_depth"][:, i] = tree.tree_depth
            diverging[:, i] = tree.divergent
            bar.set_postfix(step_size=f"{eps:.3g}", depth=int(tree.tree_depth.max()), refresh=False)
            bar.update()
    finally:
        bar.close()
    samples = {k: v.detach().cpu().numpy() for k, v in potential.constrain(draws).items()}
    sample_stats = {k: v.cpu().numpy() for k, v in {**stats, **ints}.items()}
    sample_stats["diverging"] = diverging.cpu().numpy()
    return MCMCResult(
        samples=samples,
        sample_stats=sample_stats,
        kernel="nuts",
        step_size=float(eps),
        trajectory_length=math.nan,
        inv_mass=inv_mass.cpu().numpy(),
        info={
            "vectorized": bool(potential.vectorized),
            "num_warmup": num_warmup,
            "warmup_divergences": warmup_divergences,
            "seconds": time.perf_counter() - started,
            "seed": seed,
            "max_tree_depth": max_tree_depth,
        },
    )
