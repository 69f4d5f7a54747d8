"""Annealed importance sampling (AIS) and bidirectional Monte Carlo (BDMC) for the log-likelihood.

For each row ``x_i`` AIS anneals ``n_chains`` chains over the row's continuous local latents
``z_i`` along the geometric path

    f_beta(z) = log b(z) + beta * [log p(x_i, z | params) - log b(z)],   0 = beta_0 < ... < 1

from the base ``b`` (the prior ``p(z)``, or the model's guide ``q(z | x_i)``) to the posterior
``p(z | x_i)`` (Neal 2001). Each chain carries the log weight

    log w = sum_t (beta_t - beta_{t-1}) * [log p(x_i, z_{t-1}) - log b(z_{t-1})],

and ``log (1/C) sum_c w_c`` is an unbiased estimate of ``p(x_i)`` on the log scale, hence a
stochastic lower bound of ``log p(x_i)``. Transitions are Hamiltonian Monte Carlo (leapfrog,
unit mass, step size jittered by +-50% per transition; :func:`ppgen.infer.hmc.transition`) on an
unconstrained parametrization of the latents. A separate, short annealing pass tunes a step
size per row at a few points of the path (towards 80% mean acceptance) and, for the default
``"adaptive"`` schedule, measures how fast the path moves; both are then frozen, so that every
transition of the main pass leaves its intermediate distribution exactly invariant and the
weights stay valid. Rows and chains form one batch (chains along a plate left of the data
plate): every step is a handful of tensor operations on the data's device.

Choices, measured on PPCA (latent dim 10, data dim 50, noise 0.1; benchmarks/ais_accuracy.py):
the adaptive schedule (equal steps of thermodynamic length) beats the sigmoid one severalfold
at equal T; an 80% acceptance target and a wide step-size jitter mix better per gradient than
65% and a narrow jitter; 10 leapfrog steps beat 5 and are on par with 20 per gradient.

The log densities come from the model's own Pyro program, conditioned on the fit's global
parameters and on the latent values, so any model whose local latents are continuous works.
Discrete local latents that the model enumerates (GaussianMixture) need no annealing: their sum
is exact, and :func:`ais` returns the exact log-likelihood.

References
----------
Neal, R. M. (2001). Annealed importance sampling. *Statistics and Computing* 11, 125-139.
Grosse, R. B., Ghahramani, Z. & Adams, R. P. (2015). Sandwiching the marginal likelihood using
bidirectional Monte Carlo. arXiv:1511.02543.
Wu, Y., Burda, Y., Salakhutdinov, R. & Grosse, R. (2017). On the quantitative analysis of
decoder-based generative models. *ICLR*.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to

from ppgen._utils import progress_bar, seeded
from ppgen.evaluate import estimate, partition
from ppgen.evaluate.estimate import Estimate, frozen, jacobian
from ppgen.infer import distributed as dist
from ppgen.infer import hmc
from ppgen.infer.weights import block_seed
from ppgen.models.weights import sum_site_rows

__all__ = ["AISResult", "BDMCResult", "ais", "bdmc", "schedule"]

SCHEDULES = ("adaptive", "sigmoid", "geometric", "linear")
#: Target of the step-size tuning: the mean Metropolis acceptance probability.
TARGET_ACCEPT = 0.8
#: Leapfrog steps per HMC transition.
DEFAULT_LEAPFROG = 10
#: Upper bound on chains x rows x dimensions held at once; rows are processed in chunks.
_MAX_ELEMENTS = 2**22
#: Rows per seeded block of a distributed AIS (``ais(..., distributed=True)``).
BLOCK_ROWS = 128
#: The notes of exact blocks, by code (0: not exact), as distributed AIS gathers them.
_NOTES = ("", estimate.EXACT_GUIDE, estimate.NO_LOCAL_LATENTS)


@dataclass(frozen=True, repr=False)  # Estimate's repr: the fields and the note
class AISResult(Estimate):
    """AIS estimate of each row's log-likelihood (nats, data's original scale).

    Fields shared with :class:`ppgen.evaluate.bounds.Estimate`: ``per_row``, ``mean``, ``se``
    (standard error of ``mean`` over rows) and ``mc_se`` (Monte-Carlo standard error of
    ``mean``, from the chains' weights). Further:

    Attributes
    ----------
    per_row_mc_se : ndarray
        Monte-Carlo standard error of each row's estimate, by the delta method on the final
        weights: ``sd_c(w_c / mean w) / sqrt(C)``. Optimistic when the weights are degenerate
        (look at ``ess``).
    ess : ndarray
        Effective sample size of each row's normalized final weights, in ``[1, n_chains]``.
    acceptance : float
        Mean Metropolis acceptance probability of the HMC transitions (NaN when exact).
    step_size : ndarray
        The frozen leapfrog step size per row, at the path's end (beta = 1), shape (n,).
    n_steps, n_chains : int
        Annealing steps and chains per row.
    exact : bool
        True when the model has no continuous local latent, or every chain of a row carries the
        same weight (the base is the exact posterior: ``init="guide"`` with an exact guide):
        ``per_row`` is then the exact log-likelihood (``mc_se = 0``); ``note`` says which.
    """

    per_row_mc_se: np.ndarray = field(repr=False)
    ess: np.ndarray = field(repr=False)
    acceptance: float
    step_size: np.ndarray = field(repr=False)
    n_steps: int
    n_chains: int


@dataclass(frozen=True)
class BDMCResult:
    """Bidirectional Monte Carlo on rows simulated from the fitted model.

    Attributes
    ----------
    lower : AISResult
        Forward AIS (base -> posterior): a stochastic lower bound of each row's log p(x).
    upper : AISResult
        Reverse AIS (exact latents -> base): a stochastic upper bound of each row's log p(x).
    gap : float
        ``upper.mean - lower.mean`` (nats per row). The true mean log-likelihood of the
        simulated rows lies in between (in expectation); a small gap certifies both.
    exact : float or None
        The exact mean log-likelihood of the simulated rows when the model has a closed form.
    data : object
        The simulated rows, decoded to the fitted data's form.
    """

    lower: AISResult
    upper: AISResult
    gap: float
    exact: float | None
    data: Any = field(repr=False)


# -- public functions -----------------------------------------------------------------------------
def ais(
    fit: Any,
    data: Any,
    *,
    n_steps: int = 1000,
    n_chains: int = 16,
    schedule: str | np.ndarray = "adaptive",
    init: str = "prior",
    n_leapfrog: int = DEFAULT_LEAPFROG,
    n_tune: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
    batch_size: int | None = None,
    distributed: bool | str = False,
) -> AISResult:
    """Annealed importance sampling estimate of each row's log-likelihood.

    Parameters
    ----------
    fit : ppgen.Fit
        A fitted model, evaluated at ``fit.params`` (the point estimate; for SVI and NUTS fits
        the posterior median or mean, so the result is the plug-in likelihood, not the
        posterior predictive density of :meth:`ppgen.Fit.log_prob`).
    data : DataFrame, ndarray or Tensor
        Rows to evaluate, in the form the model was fitted on; missing entries are allowed.
    n_steps : int
        Number of intermediate distributions T. The bias (an underestimate) shrinks as T grows.
    n_chains : int
        Chains per row; the estimate is ``log`` of their mean weight.
    schedule : {"adaptive", "sigmoid", "geometric", "linear"} or array
        Inverse temperatures ``beta_0 = 0 < ... < beta_T = 1``. ``"adaptive"`` spaces them at
        equal thermodynamic length ``int sd_beta(log p(x|z)) dbeta``, from the spread of the
        chains' log-likelihoods measured by the tuning pass (near-optimal for the variance of
        the weights); the others are fixed shapes (see :func:`schedule`); or pass your own
        increasing array of T + 1 values from 0 to 1.
    init : {"prior", "guide"}
        Base distribution the chains start from: the prior of the local latents, or the
        model's guide ``q(z | x)`` (better when the guide is good: the path is shorter).
    n_leapfrog : int
        Leapfrog steps per HMC transition.
    n_tune : int, optional
        HMC transitions of the tuning pass (spread over 16 points of the path, 10 for a fixed
        schedule); default ``max(64, n_steps // 10)``.
    seed : int
        Seed of every random draw.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    batch_size : int, optional
        Rows per block of a distributed evaluation (default :data:`BLOCK_ROWS`); unused
        otherwise.
    distributed : {False, True, "auto"}
        Share the rows among the ranks of a ``torchrun`` launch (every rank passes the same
        table and receives the whole result, rows in their original order). The rows are cut
        into fixed blocks of ``batch_size`` rows, each an independent AIS run (its own tuning
        pass and schedule) seeded by ``(seed, block)``, each rank running a contiguous share
        of the blocks: the result is the same for any number of ranks, including one process
        with ``distributed=True`` (it differs from the serial run, whose tuning and random
        stream run over all rows together). ``"auto"``: only under a launcher. Energy-based
        models (one estimate of log Z) run the serial computation on every rank.

    Returns
    -------
    AISResult
        Per-row estimates on the data's original scale (the standardization's log-Jacobian is
        added, as in :meth:`ppgen.Fit.log_prob`), their Monte-Carlo standard errors, the
        effective sample size of the final weights and the acceptance rate.

    Notes
    -----
    The per-row estimate is unbiased for ``p(x_i)``; its log is biased downwards, by roughly
    ``Var(log w) / (2 n_chains)`` when the weights are well behaved, a bias and a spread that
    shrink as ``n_steps`` grows (about as 1 / n_steps). Models without continuous local latents
    (GaussianMixture) return the exact log-likelihood with ``mc_se = 0`` and ``exact=True``.
    Models with both discrete and continuous local latents are not supported yet.

    Each gradient costs one trace of the Pyro model (and of the guide with ``init="guide"``)
    on all rows x chains at once, so the time per row falls as more rows are passed together,
    until the arithmetic dominates; rows are processed in chunks of at most 2^22 elements.

    Examples
    --------
    >>> fit = ppgen.fit(ppgen.PPCA(2), X)                            # doctest: +SKIP
    >>> res = ppgen.evaluate.ais.ais(fit, X, n_steps=1000, seed=0)  # doctest: +SKIP
    >>> res.mean, res.mc_se, res.acceptance                          # doctest: +SKIP
    """
    if type(fit.model).implements("annealer"):
        # Energy-based models (RBM, EBM): AIS of log Z, not over local latents; one estimate
        # over the whole path, run alike on every rank (the option is only checked).
        dist.resolve(distributed, fit.device)
        path = "piecewise" if isinstance(schedule, str) and schedule == "adaptive" else schedule
        return partition.partition_ais(
            fit,
            data,
            n_steps=n_steps,
            n_chains=n_chains,
            schedule=path,
            seed=seed,
            progress=progress,
        )
    run, spec, n_steps = _setup(
        fit, n_steps, n_chains, schedule, init, n_leapfrog, n_tune, seed, progress
    )
    enc = estimate.encode_rows(fit, data)
    ctx = dist.resolve(distributed, enc.x.device)
    with run.scope():
        if ctx is not None:
            return run.sharded_forward(enc.x, enc.mask, spec, n_steps, ctx, batch_size)
        return run.forward(enc.x, enc.mask, spec, n_steps)


def bdmc(
    fit: Any,
    *,
    n_rows: int = 100,
    n_steps: int = 1000,
    n_chains: int = 16,
    schedule: str | np.ndarray = "adaptive",
    init: str = "prior",
    n_leapfrog: int = DEFAULT_LEAPFROG,
    n_tune: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> BDMCResult:
    """Bidirectional Monte Carlo (Grosse et al. 2015): sandwich log p(x) on simulated rows.

    ``n_rows`` rows and their local latents are simulated from the fitted model (at
    ``fit.params``). Forward AIS gives a stochastic lower bound of each row's log-likelihood;
    reverse AIS, started at the exact latents that generated the row and annealed from the
    posterior back to the base, gives a stochastic upper bound. The gap between the two bounds
    the error of either, so it tells how many steps AIS needs on data like the model's own.

    Parameters are those of :func:`ais`; ``n_rows`` is the number of rows to simulate. The
    reverse pass reuses the forward pass's tuning (step sizes and, for ``"adaptive"``, the
    schedule), run backwards. Rows and latents are simulated by the model's own Pyro program
    (``poutine.uncondition`` on the observed sites, globals conditioned on ``fit.params``).

    Returns
    -------
    BDMCResult
        Both bounds (each an :class:`AISResult`), their gap in nats per row, the exact mean
        log-likelihood when the model has one, and the simulated rows.
    """
    if type(fit.model).implements("annealer"):
        raise ValueError(
            f"{type(fit.model).__name__} is an energy-based model: ppgen.evaluate.ais(fit, data) "
            "reports both a forward (lower) and, where exact samples exist, a reverse (upper) "
            "estimate of log Z (log_z, log_z_upper)"
        )
    if fit.model.sequential:
        estimate.encode_rows(fit, None)  # raises the same clear error as ais() for sequence models
    n_rows = estimate.check_count(n_rows, "n_rows")
    run, spec, n_steps = _setup(
        fit, n_steps, n_chains, schedule, init, n_leapfrog, n_tune, seed, progress
    )
    with run.scope():  # one random stream: the simulation, the forward and the reverse pass
        x, latents = run.simulate(n_rows)
        mask = torch.ones_like(x, dtype=torch.bool)
        lower = run.forward(x, mask, spec, n_steps)
        upper = run.reverse(x, mask, spec, n_steps, latents)
    exact = estimate.exact_per_row(fit, x, mask)
    return BDMCResult(
        lower=lower,
        upper=upper,
        gap=float(upper.mean - lower.mean),
        exact=None if exact is None else float(np.mean(exact)),
        data=fit.schema.decode(x),
    )


def schedule(kind: str, n_steps: int, *, delta: float = 4.0, start: float = 1e-4) -> np.ndarray:
    """Inverse temperatures ``beta_0 = 0 < beta_1 < ... < beta_T = 1``, shape (T + 1,).

    * ``"sigmoid"`` (Grosse et al. 2015): ``sigmoid(delta * (2 t / T - 1))`` rescaled to
      [0, 1]; dense near both ends.
    * ``"geometric"``: ``beta_t = start^(1 - t / T)`` (``beta_0 = 0``): equal steps in log beta,
      which is near-optimal when the likelihood dominates the prior (Gaussian posteriors).
    * ``"linear"``: ``t / T``.
    """
    n_steps = estimate.check_count(n_steps, "n_steps")
    t = np.linspace(0.0, 1.0, n_steps + 1)
    if kind == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-delta * (2.0 * t - 1.0)))
        betas = (s - s[0]) / (s[-1] - s[0])
    elif kind == "geometric":
        betas = start ** (1.0 - t)
        betas[0] = 0.0
    elif kind == "linear":
        betas = t
    else:
        raise ValueError(
            f"schedule must be one of {SCHEDULES[1:]} or an array, got {kind!r} "
            "('adaptive' is resolved by ais itself)"
        )
    betas[0], betas[-1] = 0.0, 1.0
    return betas


# -- internals ------------------------------------------------------------------------------------
def _setup(fit, n_steps, n_chains, schedule, init, n_leapfrog, n_tune, seed, progress):
    """The options of :func:`ais` and :func:`bdmc` checked: the run, the schedule spec and T."""
    check_count = estimate.check_count
    n_steps = check_count(n_steps, "n_steps")
    n_chains = check_count(n_chains, "n_chains")
    n_leapfrog = check_count(n_leapfrog, "n_leapfrog")
    if init not in ("prior", "guide"):
        raise ValueError(f"init must be 'prior' or 'guide', got {init!r}")
    spec, n_steps = schedule_spec(schedule, n_steps)
    n_tune = default_tune(n_steps) if n_tune is None else check_count(n_tune, "n_tune")
    return AnnealingRun(fit, init, n_chains, n_leapfrog, n_tune, seed, progress), spec, n_steps


def default_tune(n_steps: int) -> int:
    return max(64, n_steps // 10)


def schedule_spec(kind: str | np.ndarray, n_steps: int) -> tuple[str | np.ndarray, int]:
    """``"adaptive"`` (resolved by the tuning pass) or a fixed array of T + 1 betas; and T."""
    if isinstance(kind, str):
        if kind == "adaptive":
            return kind, n_steps
        return schedule(kind, n_steps), n_steps
    betas = np.asarray(kind, dtype=float)
    ok = betas.ndim == 1 and len(betas) >= 2 and betas[0] == 0.0 and betas[-1] == 1.0
    if not ok or np.any(np.diff(betas) < 0):
        raise ValueError("a schedule array must increase from 0 to 1 (T + 1 values)")
    return betas, len(betas) - 1


@dataclass
class LatentSite:
    """A continuous local latent site and its unconstrained parametrization."""

    name: str
    transform: Any  # torch Transform from unconstrained to the support
    shape: tuple[int, ...]  # unconstrained value shape (chains, rows, ...)
    size: int  # flattened size per (chain, row)


class AnnealingRun:
    """One configuration of AIS on one fit: finds the sites, tunes, anneals (subclassed by
    :mod:`ppgen.evaluate.decoder_ais` for its own target)."""

    def __init__(self, fit, init, n_chains, n_leapfrog, n_tune, seed, progress) -> None:
        self.fit = fit
        self.model = fit.model
        self.params = dict(fit.params)
        self.pdim = -(self.model.max_plate_nesting + 1)
        self._options(init, n_chains, n_leapfrog, n_tune, seed, progress, fit.device)

    def _options(self, init, n_chains, n_leapfrog, n_tune, seed, progress, device) -> None:
        """What every run holds whatever its target (the decoder runs of
        :mod:`ppgen.evaluate.decoder_ais` reuse this class with their own densities)."""
        self.init = init
        self.C = n_chains
        self.L = n_leapfrog
        self.n_tune = n_tune
        self.seed = seed
        self.progress = progress
        self.device = device
        self.sites: list[LatentSite] = []
        self._tuned: dict = {}
        self.betas: np.ndarray | None = None

    # -- Pyro programs -----------------------------------------------------------------------
    def _plate(self):
        return pyro.plate("chains", self.C, dim=self.pdim)

    def _local(self, name: str, site: dict) -> bool:
        return (
            site["type"] == "sample"
            and not site_is_subsample(site)
            and name not in self.model.global_sites
        )

    def _discover(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """Trace the model once: find the local latents; returns a prior draw of them."""
        conditioned = poutine.condition(self.model.model, data=self.params)
        with self._plate():
            trace = poutine.trace(conditioned).get_trace(x, mask)
        continuous, discrete = {}, []
        for name, site in trace.nodes.items():
            if not self._local(name, site) or site["is_observed"]:
                continue
            fn = site["fn"]
            if fn.has_enumerate_support or site["infer"].get("enumerate"):
                discrete.append(name)
            else:
                continuous[name] = site
        if not continuous:
            return None
        if discrete:
            raise ValueError(
                f"{type(self.model).__name__} has both discrete local latents {discrete} and "
                f"continuous ones {sorted(continuous)}; ais does not sum out the discrete ones yet"
            )
        self.sites = []
        values = {}
        for name, site in continuous.items():
            transform = biject_to(site["fn"].support)
            value = site["value"]
            if value.dim() < 2 or value.shape[0] != self.C:
                raise ValueError(
                    f"site {name!r} must be batched over chains and rows; got shape "
                    f"{tuple(value.shape)}"
                )
            u = transform.inv(value)
            self.sites.append(LatentSite(name, transform, tuple(u.shape), int(u[0, 0].numel())))
            values[name] = value
        return values

    def _flatten(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Constrained site values -> unconstrained (chains, rows, D)."""
        parts = []
        for s in self.sites:
            u = s.transform.inv(values[s.name].expand(s.shape[:2] + values[s.name].shape[2:]))
            parts.append(u.reshape(s.shape[0], s.shape[1], s.size))
        return torch.cat(parts, -1)

    def _unflatten(self, u: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Unconstrained (chains, rows, D) -> constrained values and the log-Jacobian."""
        values, log_jac, start = {}, 0.0, 0
        for s in self.sites:
            us = u[..., start : start + s.size].reshape(s.shape)
            start += s.size
            z = s.transform(us)
            values[s.name] = z
            lj = s.transform.log_abs_det_jacobian(us, z)
            log_jac = log_jac + lj.reshape(s.shape[0], s.shape[1], -1).sum(-1)
        return values, log_jac

    def _densities(self, u, x, mask) -> tuple[torch.Tensor, torch.Tensor]:
        """log b(z) (with the Jacobian) and log p(x, z) - log b(z), each (chains, rows)."""
        values, log_jac = self._unflatten(u)
        C, n = u.shape[:2]
        conditioned = poutine.condition(self.model.model, data={**self.params, **values})
        with self._plate():
            trace = poutine.trace(conditioned).get_trace(x, mask)
            if self.init == "guide":
                guide = poutine.condition(self.model.guide, data=values)
                guide_trace = poutine.trace(guide).get_trace(x, mask)
        trace.compute_log_prob(site_filter=self._local)
        latent = {s.name for s in self.sites}

        def is_latent(name: str, site: dict) -> bool:
            return self._local(name, site) and name in latent

        def is_observed(name: str, site: dict) -> bool:
            return self._local(name, site) and name not in latent

        log_prior = sum_site_rows(trace, is_latent, self.pdim, C, n)
        log_lik = sum_site_rows(trace, is_observed, self.pdim, C, n)
        if self.init == "prior":
            return log_prior + log_jac, log_lik
        guide_trace.compute_log_prob(site_filter=self._local)
        log_q = sum_site_rows(guide_trace, is_latent, self.pdim, C, n)
        return log_q + log_jac, log_prior + log_lik - log_q

    def _guide_draw(self, x, mask) -> dict[str, torch.Tensor]:
        with self._plate():
            trace = poutine.trace(self.model.guide).get_trace(x, mask)
        missing = [s.name for s in self.sites if s.name not in trace.nodes]
        if missing:
            raise ValueError(
                f"init='guide' needs a guide for every local latent; {missing} lack one"
            )
        return {s.name: trace.nodes[s.name]["value"].detach() for s in self.sites}

    def _prior_draw(self, x, mask) -> dict[str, torch.Tensor]:
        conditioned = poutine.condition(self.model.model, data=self.params)
        with self._plate():
            trace = poutine.trace(conditioned).get_trace(x, mask)
        return {s.name: trace.nodes[s.name]["value"].detach() for s in self.sites}

    def simulate(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """Rows (n, d) from the model at ``fit.params`` and their local latents (Pyro program)."""
        # Amortized models hold no global parameters: the fit knows the dtype and device.
        dummy = torch.zeros(
            n, self.model._check_built(), dtype=self.fit.dtype, device=self.fit.device
        )
        program = poutine.condition(poutine.uncondition(self.model.model), data=self.params)
        with torch.no_grad():
            trace = poutine.trace(program).get_trace(dummy, None)
        x = trace.nodes["x"]["value"].detach()
        latents = {
            name: site["value"].detach()
            for name, site in trace.nodes.items()
            if self._local(name, site) and not site["infer"].get("was_observed")
        }
        return x, latents

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Seeded randomness, a private param store and Pyro's validation off.

        PyroModule parameters must not be read from, or leak into, the caller's param store
        (another fit may hold parameters of the same name); validation would only cost time.
        """
        with (
            pyro.get_param_store().scope(),
            seeded(self.seed, self.device),
            pyro.validation_enabled(False),
        ):
            yield

    # -- runs --------------------------------------------------------------------------------
    def forward(self, x, mask, spec, T) -> AISResult:
        return self._run(x, mask, spec, T, latents=None)

    def sharded_forward(self, x, mask, spec, T, ctx, batch_size=None) -> AISResult:
        """:meth:`forward` of a distributed evaluation: fixed blocks of rows, each an
        independent run seeded by ``(seed, block)`` (:func:`ppgen.infer.weights.block_seed`),
        a contiguous share of the blocks per rank, the per-row results gathered in order
        (every rank receives all of them)."""
        rows = estimate.check_count(batch_size, "batch_size") if batch_size else BLOCK_ROWS
        parts = []
        for b in dist.block_share(x.shape[0], rows, ctx):
            sl = slice(b * rows, (b + 1) * rows)
            self._tuned = {}  # a block's tuning is its own (the serial run shares none either)
            with seeded(block_seed(self.seed, b), self.device):
                res = self.forward(x[sl], mask[sl], spec, T)
            kind = _NOTES.index(res.note) if res.note in _NOTES else 0
            same = np.ones(len(res.per_row))  # the block's acceptance and note, per row
            columns = (res.per_row, res.per_row_mc_se**2, res.ess, res.step_size)
            block = np.stack([*columns, res.acceptance * same, kind * same])
            parts.append(torch.from_numpy(block))
        local = torch.cat(parts, 1) if parts else torch.zeros(6, 0, dtype=torch.float64)
        got = dist.gather_rows(local.to(dist.comm_device(ctx)), ctx, dim=1).cpu().numpy()
        per_row, mc_var, ess, step, acc, kinds = got
        kinds = set(kinds.astype(int).tolist())
        note = _NOTES[kinds.pop()] if len(kinds) == 1 else ""
        acceptance = float(np.mean(acc)) if len(acc) else math.nan
        return _make_result(per_row, mc_var, ess, acceptance, step, T, self.C, note)

    def reverse(self, x, mask, spec, T, latents) -> AISResult:
        return self._run(x, mask, spec, T, latents=latents)

    def _run(self, x, mask, spec, T, latents) -> AISResult:
        reverse = latents is not None
        n = x.shape[0]
        with torch.no_grad():
            found = self._discover(x[:1], mask[:1])
        if found is None:
            return self._exact(x, mask, T)
        dim = max(x.shape[1], sum(s.size for s in self.sites), 1)
        chunk = max(1, _MAX_ELEMENTS // (self.C * dim))
        n_chunks = math.ceil(n / chunk)
        desc = "AIS (reverse)" if reverse else "AIS"
        bar = progress_bar(n_chunks * (T + self.n_tune), desc, self.progress)
        outs = []
        try:
            for start in range(0, n, chunk):
                sl = slice(start, start + chunk)
                lat = None if latents is None else {k: v[sl] for k, v in latents.items()}
                outs.append(self._chunk(x[sl], mask[sl], spec, T, lat, bar))
        finally:
            bar.close()
        log_w = torch.cat([o[0] for o in outs], 1)  # (chains, rows)
        acc = sum(o[1] * o[0].shape[1] for o in outs) / n
        step = torch.cat([o[2] for o in outs]).cpu().numpy()
        self.betas = outs[0][3]
        return self._result(log_w, x, mask, acc, step, T, reverse)

    def _chunk(self, x, mask, spec, T, latents, bar):
        """AIS on one chunk of rows: log weights (C, n), acceptance, final step size, betas."""
        n = x.shape[0]
        reverse = latents is not None
        with torch.no_grad():
            self._discover(x, mask)  # site shapes for this chunk's rows
        key = (x.data_ptr(), n)  # bdmc's reverse pass reuses the forward pass's tuning
        if key not in self._tuned:
            self._tuned[key] = self._tune(x, mask, spec, T, bar)
        else:
            bar.update(self.n_tune)
        betas, log_anchors, log_eps_anchors = self._tuned[key]
        betas_t = torch.as_tensor(betas, dtype=x.dtype, device=x.device)
        # Step size per (step, row): piecewise-linear in log beta between the tuned anchors.
        log_eps_t = _interp(betas_t.clamp_min(1e-300).log(), log_anchors, log_eps_anchors)
        if reverse:
            betas_t, log_eps_t = betas_t.flip(0), log_eps_t.flip(0)
            start = {k: v.unsqueeze(0).expand((self.C,) + v.shape) for k, v in latents.items()}
            u = self._flatten(start)
        else:
            u = self._flatten(self._initial(x, mask))
        state = self._evaluate(u, x, mask)
        log_w = x.new_zeros(self.C, n)
        acc_sum, acc_n = 0.0, 0
        for t in range(1, T + 1):
            log_w = log_w + (betas_t[t] - betas_t[t - 1]) * state[2]
            if t < T:
                state, acc = self._hmc(state, betas_t[t], log_eps_t[t], x, mask)
                acc_sum, acc_n = acc_sum + float(acc.mean()), acc_n + 1
            bar.update()
        acceptance = acc_sum / acc_n if acc_n else math.nan
        final = log_eps_anchors[-1].exp().detach()
        return log_w.detach(), acceptance, final, betas

    def _initial(self, x, mask):
        with torch.no_grad():
            return self._guide_draw(x, mask) if self.init == "guide" else self._prior_draw(x, mask)

    def _evaluate(self, u, x, mask) -> hmc.HMCState:
        """State at ``u`` (:func:`ppgen.infer.hmc.evaluate`): log base, log-likelihood ratio and
        both gradients, to be recombined at the next beta."""
        return hmc.evaluate(u, lambda v: self._densities(v, x, mask))

    def _hmc(self, state, beta, log_eps, x, mask):
        """One HMC transition targeting f_beta, per-row step sizes ``exp(log_eps)`` (n,)."""
        densities = lambda v: self._densities(v, x, mask)  # noqa: E731
        return hmc.transition(state, densities, beta, log_eps, self.L)

    def _tune(self, x, mask, spec, T, bar):
        """Step sizes (and, for ``"adaptive"``, the schedule) from a separate annealing pass.

        Fresh chains are annealed through a few anchor points of the path (16 log-spaced
        inverse temperatures from 1e-6 to 1 for the adaptive schedule, 10 points of a fixed
        schedule otherwise). At each, the step size of every row moves multiplicatively towards
        TARGET_ACCEPT (mean acceptance probability over the row's chains) and is averaged over
        the second half of the iterations; the spread of the log-likelihood ratio over the
        chains is recorded too. Returns the schedule (T + 1,), the anchors' log beta (K,) and
        log step sizes (K, n).
        """
        n = x.shape[0]
        adaptive = isinstance(spec, str)
        if adaptive:
            anchors = np.logspace(-6.0, 0.0, 16)
        else:
            idx = np.round(np.linspace(1, max(T - 1, 1), min(10, max(T - 1, 1)))).astype(int)
            anchors = np.unique(spec[idx])
            anchors = anchors[anchors > 0] if np.any(anchors > 0) else np.array([1.0])
        K = len(anchors)
        per = max(2, self.n_tune // K)
        state = self._evaluate(self._flatten(self._initial(x, mask)), x, mask)
        log_eps = x.new_full((n,), math.log(0.5))
        out, spread = [], []
        for k, beta in enumerate(anchors):
            kept, sds = [], []
            for i in range(per):
                state, acc = self._hmc(state, float(beta), log_eps, x, mask)
                gain = 2.0 if i < per // 2 or k == 0 else 1.0
                log_eps = log_eps + gain * (acc.mean(0) - TARGET_ACCEPT)
                if i >= per // 2:
                    kept.append(log_eps)
                    if self.C > 1:
                        sds.append(state[2].std(0))
                bar.update()
            log_eps = torch.stack(kept).mean(0)
            out.append(log_eps)
            spread.append(float(torch.stack(sds).mean()) if sds else math.nan)
        bar.update(max(0, self.n_tune - K * per))
        betas = _thermodynamic(anchors, np.array(spread), T) if adaptive else spec
        log_anchors = torch.as_tensor(np.log(anchors), dtype=x.dtype, device=x.device)
        return betas, log_anchors, torch.stack(out)

    def _exact(self, x, mask, T) -> AISResult:
        per_row = estimate.exact_per_row(self.fit, x, mask)
        if per_row is None:
            raise ValueError(
                f"{type(self.model).__name__} has no continuous local latents and no log_prob"
            )
        est = estimate.make_estimate(per_row, np.zeros(len(per_row)), estimate.NO_LOCAL_LATENTS)
        return AISResult(
            per_row=est.per_row,
            mean=est.mean,
            se=est.se,
            mc_se=0.0,
            per_row_mc_se=frozen(np.zeros(len(per_row))),
            ess=frozen(np.full(len(per_row), float(self.C))),
            acceptance=math.nan,
            step_size=frozen(np.full(len(per_row), math.nan)),
            n_steps=T,
            n_chains=self.C,
            exact=True,
            note=est.note,
        )

    def _jacobian(self, x, mask) -> np.ndarray:
        """Log-Jacobian of each row's encoding, added to put estimates on the data's scale."""
        return jacobian(self.fit, x, mask)

    def _result(self, log_w, x, mask, acceptance, step, T, reverse) -> AISResult:
        C = log_w.shape[0]
        lw = log_w.double()
        jac = torch.from_numpy(self._jacobian(x, mask)).to(lw.device)
        lse = lw.logsumexp(0) - math.log(C)
        # Reverse weights estimate 1 / p(x): minus the log of their mean bounds log p(x) above.
        per_row = ((-lse if reverse else lse) + jac).cpu().numpy()
        w = lw.softmax(0)  # normalized weights, (C, n)
        ess = (1.0 / (w * w).sum(0)).cpu().numpy()
        if C > 1:
            mc_var = (C * w).var(0, unbiased=True).cpu().numpy() / C
        else:
            mc_var = np.full(lw.shape[1], math.nan)
        note = estimate.EXACT_GUIDE if estimate.equal_weights(lw.cpu().numpy(), log_w.dtype) else ""
        return _make_result(per_row, mc_var, ess, float(acceptance), step, T, C, note)


def _make_result(per_row, mc_var, ess, acceptance, step, T, C, note) -> AISResult:
    """An :class:`AISResult` from per-row estimates, their Monte-Carlo variances, ESS and
    step sizes (exact, with ``note`` as the reason, when ``note`` is given)."""
    est = estimate.make_estimate(per_row, mc_var, note)
    return AISResult(
        per_row=est.per_row,
        mean=est.mean,
        se=est.se,
        mc_se=est.mc_se,
        per_row_mc_se=frozen(np.sqrt(mc_var)),
        ess=frozen(ess),
        acceptance=acceptance,
        step_size=frozen(step),
        n_steps=T,
        n_chains=C,
        exact=est.exact,
        note=note,
    )


def _thermodynamic(anchors: np.ndarray, spread: np.ndarray, T: int) -> np.ndarray:
    """Schedule with equal steps of thermodynamic length ``int sd_beta(log-lik ratio) dbeta``.

    ``spread`` is the sd at the ``anchors`` (log-log interpolated between them, constant below
    the first). Under perfect transitions the variance of the log weight is about
    ``sum_t (dbeta_t)^2 sd^2``, which this spacing minimizes (Gelman & Meng 1998). Falls back
    to the geometric schedule when the spread is unusable (one chain, zero, NaN).
    """
    ok = np.all(np.isfinite(spread)) and np.all(spread > 0)
    if not ok:
        return schedule("geometric", T)
    grid = np.linspace(np.log(anchors[0]), 0.0, 4000)
    sd = np.exp(np.interp(grid, np.log(anchors), np.log(spread)))
    beta = np.exp(grid)
    first = beta[0] * sd[0]  # below the first anchor the spread is about constant
    length = np.concatenate(
        [[0.0, first], first + np.cumsum(0.5 * (sd[1:] + sd[:-1]) * np.diff(beta))]
    )
    beta = np.concatenate([[0.0], beta])
    betas = np.interp(np.linspace(0.0, length[-1], T + 1), length, beta)
    betas[0], betas[-1] = 0.0, 1.0
    return np.maximum.accumulate(betas)


def _interp(t: torch.Tensor, knots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``values`` (K, n) at knots (K,), constant outside."""
    if len(knots) == 1:
        return values.expand(len(t), -1)
    idx = torch.searchsorted(knots, t).clamp(1, len(knots) - 1)
    lo, hi = knots[idx - 1], knots[idx]
    frac = ((t - lo) / (hi - lo)).clamp(0.0, 1.0).unsqueeze(-1)
    return values[idx - 1] * (1 - frac) + values[idx] * frac
