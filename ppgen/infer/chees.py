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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ppgen import _arviz
from ppgen._utils import check_number, check_positive_int, progress_bar, seeded
from ppgen.infer import hmc
from ppgen.infer.potential import Potential

__all__ = ["MCMCResult", "mcmc", "run_chees"]

#: Kernels of :func:`mcmc`.
KERNELS = ("chees",)


@dataclass(frozen=True)
class MCMCResult:
    """Draws of :func:`ppgen.mcmc`.

    Attributes
    ----------
    samples : dict of str to ndarray
        Each latent site's draws on its own support, shaped ``(chain, draw, *site_shape)``.
    sample_stats : dict of str to ndarray
        Per ``(chain, draw)``: ``diverging`` (bool), ``energy`` (the Hamiltonian),
        ``acceptance_rate`` and ``n_steps`` (leapfrog steps), ArviZ's names.
    kernel : str
    step_size, trajectory_length : float
        The adapted values used for every draw.
    inv_mass : ndarray, shape (dim,)
        Adapted diagonal inverse mass matrix (unconstrained space, sites in ``samples`` order).
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
    kernel : {"chees"}
        ChEES-HMC (see :mod:`ppgen.infer.chees`). The masked NUTS kernel of issue 19 is not
        built yet.
    seed : int
        Same seed, same draws.
    init : dict, optional
        Starting values of sites (on their support); chains start at
        ``init + Uniform(-init_radius, init_radius)`` in unconstrained space (Stan's default
        without ``init``: around zero, radius 2).
    target_accept_prob : float
        Mean acceptance probability the step size is tuned to.
    max_leapfrog : int
        Cap on leapfrog steps per transition.
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
        hint = " (batched NUTS is not available yet: use Pyro's NUTS)" if kernel == "nuts" else ""
        raise ValueError(f"kernel must be one of {list(KERNELS)}, got {kernel!r}{hint}")
    check_positive_int(num_chains, "num_chains")
    check_positive_int(num_samples, "num_samples")
    check_positive_int(max_leapfrog, "max_leapfrog")
    if isinstance(num_warmup, bool) or not isinstance(num_warmup, int) or num_warmup < 0:
        raise ValueError(f"num_warmup must be a non-negative integer, got {num_warmup!r}")
    check_number(init_radius, "init_radius", positive=False)
    if not 0 < float(target_accept_prob) < 1:
        raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob!r}")
    with seeded(seed):
        potential = Potential(model_fn, args, kwargs, vectorize=vectorize)
        center = potential.unconstrain(init) if init is not None else None
        return run_chees(
            potential,
            num_chains=num_chains,
            num_warmup=num_warmup,
            num_samples=num_samples,
            center=center,
            init_radius=init_radius,
            target_accept_prob=target_accept_prob,
            max_leapfrog=max_leapfrog,
            progress=progress,
            seed=seed,
        )


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
) -> MCMCResult:
    """Warm up and run ChEES-HMC on ``potential``; randomness from torch's global generator
    (the caller seeds it). ``center`` (dim,) is the unconstrained start the chains scatter
    around (zeros by default)."""
    started = time.perf_counter()
    state = _start(potential, num_chains, center, init_radius)
    dtype, device = state.u.dtype, state.u.device
    inv_mass = torch.ones(potential.dim, dtype=dtype, device=device)
    bar = progress_bar(num_warmup + num_samples, "chees warmup", progress)
    try:
        warm = _Warmup(num_warmup, target_accept_prob, max_leapfrog, learning_rate)
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
    samples = {k: v.detach().cpu().numpy() for k, v in potential.constrain(draws).items()}
    sample_stats = {k: v.cpu().numpy() for k, v in stats.items()}
    sample_stats["n_steps"] = sample_stats["n_steps"].astype(np.int64)
    sample_stats["diverging"] = diverging.cpu().numpy()
    return MCMCResult(
        samples=samples,
        sample_stats=sample_stats,
        kernel="chees",
        step_size=float(eps),
        trajectory_length=float(length),
        inv_mass=inv_mass.cpu().numpy(),
        info={
            "vectorized": bool(potential.vectorized),
            "num_warmup": num_warmup,
            "warmup_divergences": warmup_divergences,
            "seconds": time.perf_counter() - started,
            "seed": seed,
        },
    )


def _start(
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


def _windows(num_warmup: int) -> tuple[int, list[int]]:
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


class _Warmup:
    """Step size by dual averaging (Hoffman & Gelman 2014, section 3.2; Stan's constants) and
    the pooled-variance diagonal mass matrix in Stan's windows."""

    def __init__(self, num_warmup: int, target: float, max_leapfrog: int, lr: float) -> None:
        self.target, self.max_leapfrog = float(target), max_leapfrog
        self.first, self.ends = _windows(num_warmup)
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
        if self._sum is None:
            self._sum, self._sumsq, self._count = x.sum(0), (x * x).sum(0), x.shape[0]
        else:
            self._sum, self._sumsq = self._sum + x.sum(0), self._sumsq + (x * x).sum(0)
            self._count += x.shape[0]
        if i + 1 != self.ends[0]:
            return None
        self.ends.pop(0)
        n = self._count
        mean = self._sum / n
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
        # and the rate at which the proposal moves away from it.
        new = prop.u - prop.u.mean(0)
        old = u_prev - u_prev.mean(0)
        d_new = (new * new / inv_mass).sum(-1)
        d_old = (old * old / inv_mass).sum(-1)
        rate = (new * prop.velocity / inv_mass).sum(-1)
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
