"""ChEES-HMC: many Markov chains as one tensor, for any Pyro model (:func:`ppgen.mcmc`).

Every chain is a row of one ``(chains, dim)`` tensor of unconstrained values; all chains take
the same number of leapfrog steps of the same size, so one batched log density and gradient
(:class:`~ppgen.infer.potential.Potential`, ``torch.func.vmap`` over the user's unchanged
program) advances every chain at once. What adapts during warm-up, pooled over chains:

* the **step size**, shared, by dual averaging (Hoffman & Gelman 2014) of the chains' mean
  acceptance probability towards ``target_accept_prob``;
* the **trajectory length** ``T`` by the ChEES criterion (Hoffman, Radul & Sountsov 2021): Adam
  (beta1 = 0) ascends the change in the chains' squared distance from their centre, in the
  preconditioned space, along a stochastic gradient built from the proposals' positions and
  velocities weighted by acceptance; each transition runs ``ceil(h T / eps)`` steps with ``h``
  from the van der Corput sequence (jittered lengths break periodicities; the paper's choice);
* a **diagonal mass matrix**, the variance of the draws pooled over chains in Stan's expanding
  windows (15% initial buffer, windows of 25, 50, 100, ... and a 10% final buffer; Stan's
  regularization), the step size being found again after each update.

After warm-up everything is fixed, so each transition is an exact HMC step (Metropolis
corrected) and the chains are valid Markov chains of the posterior.

References
----------
Hoffman, M. D., Radul, A. & Sountsov, P. (2021). An adaptive-MCMC scheme for setting trajectory
lengths in Hamiltonian Monte Carlo. *AISTATS*, PMLR 130, 3907-3915.
Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn sampler. *JMLR* 15, 1593-1623.
Stan Development Team. Stan Reference Manual, "HMC algorithm parameters" (adaptation windows).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from ppgen._utils import check_number, check_positive_int, progress_bar, seeded
from ppgen.infer import hmc
from ppgen.infer.batched import MCMCResult, Warmup, make_result, start_chains
from ppgen.infer.nuts_batched import run_nuts_batched
from ppgen.infer.potential import Potential

__all__ = ["MCMCResult", "mcmc", "run_chees"]

#: Kernels of :func:`mcmc`.
KERNELS = ("chees", "nuts")


def mcmc(
    model_fn: Callable,
    *args: Any,
    num_chains: int = 64,
    num_warmup: int = 500,
    num_samples: int = 250,
    kernel: str = "chees",
    seed: int = 0,
    init: dict[str, Any] | None = None,
    init_radius: float = 2.0,
    target_accept_prob: float = 0.8,
    max_leapfrog: int = 1000,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    vectorize: bool = True,
    progress: bool | None = None,
    **kwargs: Any,
) -> MCMCResult:
    """Sample the posterior of any Pyro model with many chains at once.

    Parameters
    ----------
    model_fn : callable
        A Pyro program, ``model_fn(*args, **kwargs)``; its ``obs=`` sites are the data and its
        other (continuous) sample sites are sampled.
    num_chains : int
        Chains, advanced together as one tensor (32-64 on a CPU; hundreds on a GPU cost little
        more than a few).
    num_warmup, num_samples : int
        Adaptation iterations and kept draws, per chain.
    kernel : {"chees", "nuts"}
        ChEES-HMC (see :mod:`ppgen.infer.chees`: every chain takes the same number of leapfrog
        steps) or masked iterative NUTS (:mod:`ppgen.infer.nuts_batched`: each chain's own
        No-U-Turn tree, built in lockstep with the others).
    seed : int
        Same seed, same draws.
    init : dict, optional
        Starting values of sites (on their support); chains start at
        ``init + Uniform(-init_radius, init_radius)`` in unconstrained space (Stan's default
        without ``init``: around zero, radius 2).
    target_accept_prob : float
        Mean acceptance probability the step size is tuned to.
    max_leapfrog : int
        Cap on leapfrog steps per transition (ChEES).
    max_tree_depth : int
        Cap on NUTS's doublings: at most ``2^max_tree_depth - 1`` leapfrog steps (NUTS).
    dense_mass : bool
        Adapt a dense mass matrix, the pooled covariance of the warm-up draws (ChEES; for
        strongly correlated posteriors), instead of a diagonal one.
    vectorize : bool
        Vectorize the model over chains with ``torch.func.vmap`` (a model it cannot run falls
        back to a loop over chains, with a :class:`~ppgen.infer.potential.VectorizationWarning`).
    progress : bool, optional
        Progress bar over iterations (default: when stderr is a terminal).
    **kwargs
        Keyword arguments of ``model_fn``.

    Returns
    -------
    MCMCResult
        ``.samples`` (chain, draw, ...), ``.sample_stats``, ``.to_arviz()``, ``.summary()``.

    Examples
    --------
    >>> def model(X, y):
    ...     beta = pyro.sample("beta", dist.Normal(torch.zeros(X.shape[1]), 1.0).to_event(1))
    ...     pyro.sample("y", dist.Bernoulli(logits=X @ beta).to_event(1), obs=y)
    >>> result = ppgen.mcmc(model, X, y, num_chains=64)  # doctest: +SKIP
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {list(KERNELS)}, got {kernel!r}")
    check_positive_int(num_chains, "num_chains")
    check_positive_int(num_samples, "num_samples")
    check_positive_int(max_leapfrog, "max_leapfrog")
    check_positive_int(max_tree_depth, "max_tree_depth")
    if isinstance(num_warmup, bool) or not isinstance(num_warmup, int) or num_warmup < 0:
        raise ValueError(f"num_warmup must be a non-negative integer, got {num_warmup!r}")
    check_number(init_radius, "init_radius", positive=False)
    if dense_mass and kernel != "chees":
        raise ValueError(f"dense_mass=True is available for kernel='chees', not {kernel!r}")
    if not 0 < float(target_accept_prob) < 1:
        raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob!r}")
    with seeded(seed):
        potential = Potential(model_fn, args, kwargs, vectorize=vectorize)
        center = potential.unconstrain(init) if init is not None else None
        common = {
            "num_chains": num_chains,
            "num_warmup": num_warmup,
            "num_samples": num_samples,
            "center": center,
            "init_radius": init_radius,
            "target_accept_prob": target_accept_prob,
            "progress": progress,
            "seed": seed,
        }
        if kernel == "nuts":
            return run_nuts_batched(potential, max_tree_depth=max_tree_depth, **common)
        return run_chees(potential, max_leapfrog=max_leapfrog, dense_mass=dense_mass, **common)


def run_chees(
    potential: Potential,
    *,
    num_chains: int,
    num_warmup: int,
    num_samples: int,
    center: torch.Tensor | None = None,
    init_radius: float = 2.0,
    target_accept_prob: float = 0.8,
    max_leapfrog: int = 1000,
    progress: bool | None = None,
    seed: int = 0,
    learning_rate: float = 0.05,
    dense_mass: bool = False,
) -> MCMCResult:
    """Warm up and run ChEES-HMC on ``potential``; randomness from torch's global generator
    (the caller seeds it). ``center`` (dim,) is the unconstrained start the chains scatter
    around (zeros by default); ``dense_mass`` adapts a dense mass matrix."""
    started = time.perf_counter()
    state = start_chains(potential, num_chains, center, init_radius)
    dtype, device = state.u.dtype, state.u.device
    inv_mass = torch.ones(potential.dim, dtype=dtype, device=device)
    if dense_mass:
        inv_mass = torch.diag(inv_mass)
    bar = progress_bar(num_warmup + num_samples, "chees warmup", progress)
    try:
        warm = Warmup(num_warmup, target_accept_prob, max_leapfrog, learning_rate, dense_mass)
        state, eps = warm.find_step_size(state, potential, inv_mass, 1.0)
        traj = _TrajectoryLength(eps, learning_rate)
        warmup_divergences = 0
        for i in range(num_warmup):
            h = _van_der_corput(i + 1)
            n = _n_steps(h * traj.length, eps, max_leapfrog)
            prev = state
            state, prop = hmc.step(state, potential, eps, n, inv_mass)
            warmup_divergences += int(prop.divergent.sum())
            traj.update(prev.u, prop, n * eps, max_leapfrog * eps, inv_mass)
            eps = warm.adapt_step_size(prop.accept_prob)
            inv_mass_new = warm.accumulate(i, state.u)
            if inv_mass_new is not None:
                inv_mass = inv_mass_new
                state, eps = warm.find_step_size(state, potential, inv_mass, eps)
                traj.restart(eps)
            bar.set_postfix(step_size=f"{eps:.3g}", steps=n, refresh=False)
            bar.update()
        if num_warmup:
            eps = warm.final_step_size()
            length = traj.final()
        else:
            length = traj.length
        bar.set_description("chees sampling")
        chains, dim = state.u.shape
        draws = torch.empty(chains, num_samples, dim, dtype=dtype, device=device)
        stats = {
            k: torch.empty(chains, num_samples, dtype=dtype, device=device)
            for k in ("energy", "acceptance_rate", "n_steps")
        }
        diverging = torch.empty(chains, num_samples, dtype=torch.bool, device=device)
        for i in range(num_samples):
            h = _van_der_corput(num_warmup + i + 1)
            n = _n_steps(h * length, eps, max_leapfrog)
            state, prop = hmc.step(state, potential, eps, n, inv_mass)
            draws[:, i] = state.u
            stats["energy"][:, i] = prop.energy
            stats["acceptance_rate"][:, i] = prop.accept_prob
            stats["n_steps"][:, i] = n
            diverging[:, i] = prop.divergent
            bar.set_postfix(step_size=f"{eps:.3g}", steps=n, refresh=False)
            bar.update()
    finally:
        bar.close()
    stats["n_steps"] = stats["n_steps"].to(torch.int64)
    stats["diverging"] = diverging
    return make_result(
        potential,
        draws,
        stats,
        kernel="chees",
        step_size=eps,
        trajectory_length=length,
        inv_mass=inv_mass,
        started=started,
        num_warmup=num_warmup,
        warmup_divergences=warmup_divergences,
        seed=seed,
    )


def _van_der_corput(i: int) -> float:
    """The i-th element (i >= 1) of the base-2 van der Corput sequence, in (0, 1)."""
    out, f = 0.0, 0.5
    while i:
        out += f * (i & 1)
        i >>= 1
        f *= 0.5
    return out


def _n_steps(length: float, eps: float, cap: int) -> int:
    return int(min(max(math.ceil(length / eps), 1), cap))


class _TrajectoryLength:
    """Trajectory length by the ChEES criterion (Hoffman, Radul & Sountsov 2021, Algorithm 1):
    Adam with beta1 = 0 on log T, averaged over the second half of each adaptation stretch."""

    def __init__(self, eps: float, lr: float, beta2: float = 0.95) -> None:
        self.lr, self.beta2 = lr, beta2
        self.log_t, self.v, self.k = math.log(eps), 0.0, 0
        self.history: list[float] = []

    @property
    def length(self) -> float:
        return math.exp(self.log_t)

    def restart(self, eps: float) -> None:
        """After a mass-matrix update: keep T (at least one step), start a fresh average."""
        self.log_t = max(self.log_t, math.log(eps))
        self.history = []

    def update(
        self,
        u_prev: torch.Tensor,
        prop: hmc.Proposal,
        t: float,
        cap: float,
        inv_mass: torch.Tensor,
    ) -> None:
        """One Adam step along the acceptance-weighted ChEES gradient of this transition,
        whose trajectory had length ``t``; ``T`` stays below ``cap``."""
        acc = torch.nan_to_num(prop.accept_prob, nan=0.0)
        if float(acc.sum()) <= 0 or u_prev.shape[0] < 2:
            self.history.append(self.log_t)
            return
        # In the preconditioned space z = u / sd (sd^2 = inv_mass), with velocity
        # dz/dt = inv_mass p / sd: squared distances from the chains' centre before and after,
        # and the rate at which the proposal moves away from it. Dense: z = L^-1 u with
        # inv_mass = L L^T, so |z|^2 = u^T inv_mass^-1 u and z . dz/dt = u^T inv_mass^-1 v.
        new = prop.u - prop.u.mean(0)
        old = u_prev - u_prev.mean(0)
        if inv_mass.dim() < 2:
            d_new = (new * new / inv_mass).sum(-1)
            d_old = (old * old / inv_mass).sum(-1)
            rate = (new * prop.velocity / inv_mass).sum(-1)
        else:
            prec = torch.linalg.inv(inv_mass)
            d_new = ((new @ prec) * new).sum(-1)
            d_old = ((old @ prec) * old).sum(-1)
            rate = ((new @ prec) * prop.velocity).sum(-1)
        g = t * (d_new - d_old) * rate
        g = torch.where(g.isfinite(), g, torch.zeros_like(g))
        grad = float((acc * g).sum() / acc.sum())
        self.k += 1
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        v_hat = self.v / (1 - self.beta2**self.k)
        self.log_t = min(self.log_t + self.lr * grad / (math.sqrt(v_hat) + 1e-8), math.log(cap))
        self.history.append(self.log_t)

    def final(self) -> float:
        kept = self.history[len(self.history) // 2 :] or [self.log_t]
        return math.exp(sum(kept) / len(kept))
