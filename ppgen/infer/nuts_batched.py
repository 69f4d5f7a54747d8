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
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from ppgen._utils import progress_bar
from ppgen.infer import hmc
from ppgen.infer.batched import MCMCResult, Warmup, make_result, start_chains
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


class _Trees:
    """Every chain's NUTS transition as a state machine advanced one leaf at a time.

    Each chain is somewhere in its own transition (doubling ``j``, leaf ``n`` of the subtree
    being built); :meth:`leaf` takes one leapfrog step for every chain that is building (one
    batched gradient over those rows only) and returns the chains whose transition ended.
    Chains either wait for the others (:func:`transition`: every tree built in lockstep) or
    start their next transition at once (:func:`sample`: after warm-up, when nothing adapts,
    so no chain idles while another finishes a deeper tree). Vectors are packed (a leaf's
    position, momentum and gradient in one ``(chains, 3, dim)`` tensor) so that each masked
    update is one operation: the Python work per leaf is what batching does not amortize.
    """

    def __init__(
        self,
        state: hmc.Point,
        log_density: hmc.LogDensity,
        step_size: float,
        inv_mass: torch.Tensor,
        max_tree_depth: int,
        max_energy_error: float,
    ) -> None:
        u = state.u
        chains, dim = u.shape
        # The step size and inverse mass a transition starts with stay its own (the driver
        # may change ``eps`` and ``inv_mass`` between leaves during warm-up).
        self.log_density, self.inv_mass, self.eps = log_density, inv_mass, float(step_size)
        self.max_depth, self.max_error = max_tree_depth, max_energy_error
        self.eps_c = u.new_full((chains, 1), float(step_size))
        self.im = inv_mass.expand(chains, dim).clone()
        self.state = state
        device = u.device
        # Bit counts of leaf indices: the checkpoint slot an even leaf writes, and the slots
        # [lo, hi] an odd leaf checks (see _subtree_checks).
        leaves = 2 ** max(max_tree_depth - 1, 0)
        self.slot = torch.tensor([bin(n).count("1") for n in range(leaves)], device=device)
        checks = [_subtree_checks(n) for n in range(leaves)]
        self.lo = torch.tensor([c.start if c else 1 for c in checks], device=device)
        self.hi = torch.tensor([c.stop - 1 if c else 0 for c in checks], device=device)
        self.slots = torch.arange(max_tree_depth, device=device)
        # Per chain: the transition's initial energy, log summed weights, doubling j, leaf n,
        # directions, statistics, the ends (left/right x u/p/g), the proposal (u/g and
        # log density/H), the momentum sum; the subtree's leaf (u/p/g), log weight, momentum
        # sum, validity, proposal and checkpoints.
        zeros = torch.zeros_like(state.log_density)
        ints = torch.zeros(chains, dtype=torch.int64, device=device)
        self.h0, self.log_w, self.s_log_w, self.sum_acc = (zeros.clone() for _ in range(4))
        self.j, self.n, self.depth, self.n_steps = (ints.clone() for _ in range(4))
        self.divergent = torch.zeros(chains, dtype=torch.bool, device=device)
        self.s_ok = self.divergent.clone()
        self.dirs = torch.zeros(chains, max_tree_depth, dtype=torch.bool, device=device)
        self.ends = u.new_zeros(chains, 2, 3, dim)
        self.cur = u.new_zeros(chains, 3, dim)
        self.pv, self.s_pv = u.new_zeros(chains, 2, dim), u.new_zeros(chains, 2, dim)
        self.ps, self.s_ps = u.new_zeros(chains, 2), u.new_zeros(chains, 2)
        self.rho, self.s_rho = torch.zeros_like(u), torch.zeros_like(u)
        self.ckpt_p = u.new_zeros(chains, max_tree_depth, dim)
        self.ckpt_r = torch.zeros_like(self.ckpt_p)

    def begin(
        self,
        mask: torch.Tensor,
        momentum: torch.Tensor | None = None,
        directions: torch.Tensor | None = None,
    ) -> None:
        """Start a transition of the chains in ``mask`` from their current state."""
        u, lp, g = self.state
        if momentum is None:
            momentum = torch.randn_like(u) * self.inv_mass.rsqrt()
        if directions is None:
            directions = torch.rand(self.dirs.shape, dtype=u.dtype, device=u.device) < 0.5
        m2, m3 = mask[:, None], mask[:, None, None]
        self.eps_c = torch.where(m2, self.eps, self.eps_c)
        self.im = torch.where(m2, self.inv_mass, self.im)
        h0 = -lp + 0.5 * (self.im * momentum * momentum).sum(-1)
        self.h0 = torch.where(mask, h0, self.h0)
        self.dirs = torch.where(m2, directions, self.dirs)
        start = torch.stack([u, momentum, g], 1)
        self.ends = torch.where(mask[:, None, None, None], start.unsqueeze(1), self.ends)
        self.pv = torch.where(m3, torch.stack([u, g], 1), self.pv)
        self.ps = torch.where(m2, torch.stack([lp, h0], 1), self.ps)
        self.rho = torch.where(m2, momentum, self.rho)
        self.log_w = torch.where(mask, 0.0, self.log_w)
        self.sum_acc = torch.where(mask, 0.0, self.sum_acc)
        self.j = torch.where(mask, 0, self.j)
        self.depth = torch.where(mask, 0, self.depth)
        self.n_steps = torch.where(mask, 0, self.n_steps)
        self.divergent = self.divergent & ~mask
        self._subtree(mask)

    def _forward(self) -> torch.Tensor:
        """Each chain's direction at its current doubling, (chains, 1) bool."""
        return self.dirs.gather(1, self.j.clamp(max=self.max_depth - 1).unsqueeze(-1))

    def _subtree(self, mask: torch.Tensor) -> None:
        """Start doubling ``j`` of the chains in ``mask``, from the end their direction
        points to."""
        side = self._forward().long()[:, :, None, None].expand(-1, 1, 3, self.cur.shape[-1])
        start = self.ends.gather(1, side).squeeze(1)
        self.cur = torch.where(mask[:, None, None], start, self.cur)
        self.n = torch.where(mask, 0, self.n)
        self.s_log_w = torch.where(mask, -math.inf, self.s_log_w)
        self.s_rho = torch.where(mask[:, None], 0.0, self.s_rho)
        self.s_ok = self.s_ok | mask

    def leaf(self, building: torch.Tensor) -> torch.Tensor:
        """One leapfrog step of every chain in ``building`` (each in a valid subtree); returns
        the chains whose transition ended with it."""
        idx = building.nonzero().squeeze(-1)
        fwd = self._forward()
        eps = torch.where(fwd, self.eps_c, -self.eps_c)
        leaf = self.cur.clone()
        lp = torch.zeros_like(self.h0)
        if idx.numel():
            # Only the rows of chains still building are evaluated (a masked chain costs
            # nothing in the model); the others keep their values.
            c = self.cur[idx]
            new, p_new = hmc.leapfrog(
                c[:, 0], c[:, 1], c[:, 2], eps[idx], 1, self._gradient, self.im[idx]
            )
            leaf[idx] = torch.stack([new.u, p_new, new.grad], 1)
            lp[idx] = new.log_density
        p = leaf[:, 1]
        b2 = building[:, None]
        h = -lp + 0.5 * (self.im * p * p).sum(-1)
        delta = h - self.h0
        div = building & ~(delta <= self.max_error)  # NaN counts as divergent
        log_w_leaf = torch.nan_to_num(-delta, nan=-math.inf)
        self.sum_acc = self.sum_acc + torch.where(building, log_w_leaf.clamp(max=0.0).exp(), 0.0)
        self.n_steps = self.n_steps + building
        # Progressive uniform sampling inside the subtree: leaf n with probability w_n / W.
        grown = torch.logaddexp(self.s_log_w, log_w_leaf)
        take = building & (torch.rand_like(h) < (log_w_leaf - grown).exp())
        self.s_log_w = torch.where(building, grown, self.s_log_w)
        self.s_pv = torch.where(take[:, None, None], leaf[:, 0::2], self.s_pv)
        self.s_ps = torch.where(take[:, None], torch.stack([lp, h], 1), self.s_ps)
        self.s_rho = self.s_rho + torch.where(b2, p, 0.0)
        # Even leaves open subtrees: keep their momentum and the momentum sum before them.
        # Odd leaves close the subtrees whose first leaves sit in slots lo..hi.
        n = self.n.clamp(max=len(self.slot) - 1)
        rows = (building & (self.n % 2 == 0)).nonzero().squeeze(-1)
        if rows.numel():
            slot = self.slot[n[rows]]
            self.ckpt_p[rows, slot] = p[rows]
            self.ckpt_r[rows, slot] = self.s_rho[rows] - p[rows]
        checked = (self.slots >= self.lo[n, None]) & (self.slots <= self.hi[n, None])
        rho_sub = self.s_rho.unsqueeze(1) - self.ckpt_r
        im = self.im.unsqueeze(1)
        v_first = (im * self.ckpt_p * rho_sub).sum(-1)
        v_last = (im * p.unsqueeze(1) * rho_sub).sum(-1)
        turned = (checked & ~((v_first > 0) & (v_last > 0))).any(-1) & building
        self.divergent = self.divergent | div
        self.s_ok = self.s_ok & ~div & ~turned
        self.cur = leaf
        self.n = self.n + building
        # A finished subtree is merged if valid (biased progressive sampling of the proposal),
        # then the whole trajectory is checked.
        finished = building & (~self.s_ok | (self.n == 2**self.j))
        merge = finished & self.s_ok
        m2 = merge[:, None]
        side = torch.cat([~fwd, fwd], 1) & m2  # (chains, 2): which end the subtree replaces
        self.ends = torch.where(side[:, :, None, None], leaf.unsqueeze(1), self.ends)
        ratio = (self.s_log_w - self.log_w).clamp(max=0.0).exp()
        moved = merge & (torch.rand_like(h) < ratio)
        self.pv = torch.where(moved[:, None, None], self.s_pv, self.pv)
        self.ps = torch.where(moved[:, None], self.s_ps, self.ps)
        self.log_w = torch.where(merge, torch.logaddexp(self.log_w, self.s_log_w), self.log_w)
        self.rho = torch.where(m2, self.rho + self.s_rho, self.rho)
        self.depth = self.depth + merge
        turning = _turning(self.ends[:, 0, 1], self.ends[:, 1, 1], self.rho, self.im)
        ended = finished & (~self.s_ok | turning | (self.j + 1 >= self.max_depth))
        grow = finished & ~ended
        if bool(grow.any()):
            self.j = self.j + grow
            self._subtree(grow)
        return ended

    def _gradient(self, u: torch.Tensor, last: bool) -> tuple[hmc.Point, torch.Tensor]:
        s = hmc.point(u, self.log_density)
        return s, s.grad

    def proposal(self) -> hmc.Point:
        return hmc.Point(self.pv[:, 0], self.ps[:, 0], self.pv[:, 1])

    def tree(self) -> Tree:
        accept = self.sum_acc / self.n_steps.clamp(min=1).to(self.sum_acc.dtype)
        return Tree(
            accept,
            self.ps[:, 1],
            self.divergent,
            self.depth,
            self.n_steps,
            self.ends[:, 0, 0],
            self.ends[:, 1, 0],
        )


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
    trees = _Trees(state, log_density, step_size, inv_mass, max_tree_depth, max_energy_error)
    building = torch.ones_like(state.log_density, dtype=torch.bool)
    trees.begin(building, momentum, directions)
    while bool(building.any()):
        building = building & ~trees.leaf(building)
    return trees.proposal(), trees.tree()


def sample(
    state: hmc.Point,
    log_density: hmc.LogDensity,
    step_size: float,
    inv_mass: torch.Tensor,
    num_samples: int,
    *,
    max_tree_depth: int = 10,
    max_energy_error: float = 1000.0,
    on_draw: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``num_samples`` NUTS transitions of every chain, each chain starting its next
    transition as soon as its tree is built (nothing adapts, so the chains need not wait for
    each other: the gradient evaluations per draw are the chains' mean tree size, not the
    deepest tree's). Returns the draws ``(chains, num_samples, dim)`` and the statistics of
    :class:`Tree` per ``(chain, draw)``; ``on_draw(k)`` is called when ``k`` draws (over all
    chains) were added."""
    trees = _Trees(state, log_density, step_size, inv_mass, max_tree_depth, max_energy_error)
    chains, dim = state.u.shape
    rows = torch.arange(chains, device=state.u.device)
    draws = state.u.new_empty(chains, num_samples, dim)
    stats = {
        "acceptance_rate": state.u.new_empty(chains, num_samples),
        "energy": state.u.new_empty(chains, num_samples),
        "diverging": torch.empty(chains, num_samples, dtype=torch.bool, device=rows.device),
        "tree_depth": torch.empty(chains, num_samples, dtype=torch.int64, device=rows.device),
        "n_steps": torch.empty(chains, num_samples, dtype=torch.int64, device=rows.device),
    }
    count = torch.zeros(chains, dtype=torch.int64, device=rows.device)
    building = torch.ones(chains, dtype=torch.bool, device=rows.device)
    trees.begin(building)
    while bool(building.any()):
        ended = trees.leaf(building)
        if not bool(ended.any()):
            continue
        r = rows[ended]
        k = count[r]
        tree = trees.tree()
        draws[r, k] = trees.pv[r, 0]
        for name, value in zip(
            ("acceptance_rate", "energy", "diverging", "tree_depth", "n_steps"),
            (tree.accept_prob, tree.energy, tree.divergent, tree.tree_depth, tree.n_steps),
            strict=True,
        ):
            stats[name][r, k] = value[r]
        count = count + ended
        new, old = trees.proposal(), trees.state
        trees.state = hmc.Point(
            torch.where(ended[:, None], new.u, old.u),
            torch.where(ended, new.log_density, old.log_density),
            torch.where(ended[:, None], new.grad, old.grad),
        )
        building = count < num_samples
        again = ended & building
        if bool(again.any()):
            trees.begin(again)
        if on_draw is not None:
            on_draw(int(ended.sum()))
    return draws, stats


def _warm_up(
    state: hmc.Point,
    log_density: hmc.LogDensity,
    warm: Warmup,
    eps: float,
    inv_mass: torch.Tensor,
    num_warmup: int,
    max_tree_depth: int,
    bar: Any,
) -> tuple[hmc.Point, float, torch.Tensor, int]:
    """Warm-up with chains that do not wait for each other: each chain starts its next tree
    when its last one is built, with the step size and mass matrix current at that moment.
    Adaptation advances in rounds of ``chains`` finished transitions (whichever chains
    finished them): one dual-averaging update from their mean acceptance statistic, their
    draws pooled into Stan's mass-matrix windows (after a window the step size is searched
    again and the dual averaging restarts there), so ``num_warmup`` rounds cost as many
    transitions as ``num_warmup`` lockstep iterations, without the lockstep's wait for the
    deepest tree.
    Returns the state (the chains' last draws), the final step size and inverse mass, and
    the warm-up's divergences."""
    if num_warmup == 0:
        return state, eps, inv_mass, 0
    chains = state.u.shape[0]
    trees = _Trees(state, log_density, eps, inv_mass, max_tree_depth, 1000.0)
    building = torch.ones(chains, dtype=torch.bool, device=state.u.device)
    trees.begin(building)
    acc: list[torch.Tensor] = []
    draws: list[torch.Tensor] = []
    rounds = divergences = 0
    while bool(building.any()):
        ended = trees.leaf(building)
        if not bool(ended.any()):
            continue
        tree = trees.tree()
        new, old = trees.proposal(), trees.state
        trees.state = hmc.Point(
            torch.where(ended[:, None], new.u, old.u),
            torch.where(ended, new.log_density, old.log_density),
            torch.where(ended[:, None], new.grad, old.grad),
        )
        building = building & ~ended
        if rounds >= num_warmup:  # the last transitions finish; nothing adapts any more
            continue
        acc.append(tree.accept_prob[ended])
        draws.append(new.u[ended])
        divergences += int(tree.divergent[ended].sum())
        if sum(len(a) for a in acc) >= chains:
            trees.eps = warm.adapt_step_size(torch.cat(acc))
            updated = warm.accumulate(rounds, torch.cat(draws))
            if updated is not None:
                # Stan's step-size search again under the new metric, from the chains' last
                # draws (its trial moves are discarded: chains mid-tree keep their own start).
                trees.inv_mass = updated
                _, trees.eps = warm.find_step_size(trees.state, log_density, updated, trees.eps)
            acc, draws = [], []
            rounds += 1
            bar.set_postfix(step_size=f"{trees.eps:.3g}", refresh=False)
            bar.update()
        if rounds < num_warmup:
            trees.begin(ended)
            building = building | ended
    final = warm.final_step_size() if num_warmup else eps
    return trees.state, final, trees.inv_mass, divergences


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
        state, eps, inv_mass, warmup_divergences = _warm_up(
            state, potential, warm, eps, inv_mass, num_warmup, max_tree_depth, bar
        )
        bar.set_description("nuts sampling")
        bar.set_postfix(step_size=f"{eps:.3g}", refresh=False)
        added = [0, 0]  # draws over all chains, bar steps shown

        def on_draw(k: int) -> None:
            added[0] += k
            steps = added[0] // num_chains - added[1]
            if steps > 0:
                bar.update(steps)
                added[1] += steps

        draws, stats = sample(
            state, potential, eps, inv_mass, num_samples, on_draw=on_draw, **options
        )
    finally:
        bar.close()
    return make_result(
        potential,
        draws,
        stats,
        kernel="nuts",
        step_size=eps,
        trajectory_length=math.nan,
        inv_mass=inv_mass,
        started=started,
        num_warmup=num_warmup,
        warmup_divergences=warmup_divergences,
        seed=seed,
        max_tree_depth=max_tree_depth,
    )
