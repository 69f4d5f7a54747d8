"""AIS of the partition function of energy-based models (RBM, EBM).

An energy-based model gives each row its free energy ``F(v)`` exactly (missing entries summed
out), so ``log p(v) = -F(v) - log Z`` and everything hinges on ``log Z``. Annealed importance
sampling (Neal 2001) estimates it along the geometric path

    f_beta(v) = p*_A(v)^(1 - beta) * exp(-beta F(v)),    0 = beta_0 < ... < beta_K = 1,

from a tractable base ``p_A`` with known normalizer ``Z_A`` (for RBMs independent visibles with
the marginals of the rows passed, Salakhutdinov & Murray 2008; for EBMs a Gaussian fitted to
them). ``M`` chains start from exact base draws; each carries

    log w = sum_k [log f_k(v_{k-1}) - log f_{k-1}(v_{k-1})],   v_k ~ T_k(. | v_{k-1}),

with ``T_k`` leaving ``f_k`` invariant (block Gibbs for RBMs, Metropolis-adjusted Langevin for
EBMs), so ``Z_A * mean(w)`` is unbiased for ``Z``; ``log Z`` is its log (biased low: a
stochastic lower bound), with the delta-method standard error ``sd(w) / (mean(w) sqrt(M))``.
Where the model can be sampled exactly (RBMs with at most 16 hidden units) a reverse pass from
exact model draws to the base estimates ``Z_A / Z`` without bias, hence a stochastic *upper*
bound of ``log Z`` (Grosse et al. 2015; Burda et al. 2015): the two sandwich it.

The base is fitted to the rows passed, so its quality, not the estimate's expectation, depends
on them; the per-row estimates share one ``log Z``, and their Monte-Carlo error is its error.

References
----------
Neal, R. M. (2001). Annealed importance sampling. *Statistics and Computing* 11, 125-139.
Salakhutdinov, R. & Murray, I. (2008). On the quantitative analysis of deep belief networks.
*ICML*.
Grosse, R. B., Ghahramani, Z. & Adams, R. P. (2015). Sandwiching the marginal likelihood using
bidirectional Monte Carlo. arXiv:1511.02543.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ppgen._utils import progress_bar, seeded
from ppgen.evaluate.estimate import Estimate, check_count, encode_rows, frozen, jacobian

__all__ = ["PartitionResult", "log_partition", "partition_ais", "partition_schedule"]

SCHEDULES = ("piecewise", "linear")


@dataclass(frozen=True, repr=False)
class PartitionResult(Estimate):
    """AIS estimate of each row's log-likelihood for an energy-based model (nats, data scale).

    Fields shared with :class:`~ppgen.evaluate.bounds.Estimate`: ``per_row``, ``mean``, ``se``
    (over rows), ``mc_se`` (Monte-Carlo standard error of ``mean``: the error of ``log_z``,
    shared by every row). Further:

    Attributes
    ----------
    log_z : float
        The AIS estimate of log Z (encoded scale), a stochastic lower bound; so ``per_row``
        (``-F(v) - log_z``) is a stochastic *upper* bound of log p, the opposite direction to
        AIS over latents. ``-F(v) - log_z_upper`` bounds log p from below.
    log_z_se : float
        Its delta-method standard error, ``sd(w) / (mean(w) sqrt(n_chains))``.
    log_z_upper : float
        The reverse pass's stochastic upper bound of log Z from exact model draws (NaN where
        the model cannot be sampled exactly).
    per_row_mc_se : ndarray
        Monte-Carlo standard error of each row's estimate (``log_z_se`` for every row).
    ess : float
        Effective sample size of the final weights, in ``[1, n_chains]``.
    n_steps, n_chains : int
        Intermediate distributions and chains.
    """

    log_z: float
    log_z_se: float
    log_z_upper: float
    per_row_mc_se: np.ndarray = field(repr=False)
    ess: float
    n_steps: int
    n_chains: int


def partition_schedule(kind: str | np.ndarray, n_steps: int) -> np.ndarray:
    """Inverse temperatures ``0 = beta_0 < ... < beta_K = 1``.

    ``"piecewise"``: Salakhutdinov & Murray's (2008) spacing, uniform in [0, 0.5], [0.5, 0.9] and
    [0.9, 1] with 1/29, 8/29 and 20/29 of the steps (their 500, 4000 and 10000); ``"linear"``:
    ``k / K``; or an increasing array from 0 to 1.
    """
    if not isinstance(kind, str):
        betas = np.asarray(kind, dtype=float)
        ok = betas.ndim == 1 and len(betas) >= 2 and betas[0] == 0.0 and betas[-1] == 1.0
        if not ok or np.any(np.diff(betas) < 0):
            raise ValueError("a schedule array must increase from 0 to 1 (K + 1 values)")
        return betas
    n_steps = check_count(n_steps, "n_steps")
    if kind == "linear":
        return np.linspace(0.0, 1.0, n_steps + 1)
    if kind != "piecewise":
        raise ValueError(f"schedule must be one of {SCHEDULES} or an array, got {kind!r}")
    if n_steps < 3:
        return np.linspace(0.0, 1.0, n_steps + 1)
    a = max(1, round(n_steps / 29))
    b = max(1, round(8 * n_steps / 29))
    c = n_steps - a - b
    return np.concatenate(
        [
            np.linspace(0.0, 0.5, a, endpoint=False),
            np.linspace(0.5, 0.9, b, endpoint=False),
            np.linspace(0.9, 1.0, c + 1),
        ]
    )


def _log_mean_exp(log_w: torch.Tensor) -> tuple[float, float, float]:
    """log mean exp, its delta-method standard error, and the effective sample size."""
    log_w = log_w.double()
    m = len(log_w)
    est = float(torch.logsumexp(log_w, 0) - math.log(m))
    w = torch.exp(log_w - log_w.max())
    rel = w / w.mean()
    se = float(rel.std(unbiased=True) / math.sqrt(m)) if m > 1 else math.nan
    ess = float(w.sum() ** 2 / (w**2).sum())
    return est, se, ess


def log_partition(
    annealer: Any, betas: np.ndarray, n_chains: int, progress: bool | None = None
) -> dict[str, float]:
    """Forward AIS (and the reverse pass where the annealer has exact samples) of log Z along
    ``betas`` with ``n_chains`` chains; uses torch's global RNG (seed it first).

    ``annealer`` has ``log_z_base``, ``init(n)`` (exact base draws), ``log_f(v, beta)`` and
    ``step(v, beta)`` (a transition leaving ``f_beta`` invariant), and optionally
    ``exact_samples(n)`` (exact model draws, or None).
    """
    K = len(betas) - 1
    reverse = getattr(annealer, "exact_samples", None)
    start = reverse(n_chains) if reverse is not None else None
    bar = progress_bar(K * (1 if start is None else 2), "ais log Z", progress)
    with torch.no_grad():
        v = annealer.init(n_chains)
        log_w = torch.zeros(n_chains, dtype=torch.float64, device=v.device)
        prev = annealer.log_f(v, float(betas[0]))
        for k in range(1, K + 1):
            cur = annealer.log_f(v, float(betas[k]))
            log_w += (cur - prev).double()
            if k < K:
                v = annealer.step(v, float(betas[k]))
                prev = annealer.log_f(v, float(betas[k]))
            bar.update()
        log_z, log_z_se, ess = _log_mean_exp(log_w)
        out = {"log_z": annealer.log_z_base + log_z, "log_z_se": log_z_se, "ess": ess}
        out["log_z_upper"] = math.nan
        if start is not None:
            v = start
            log_r = torch.zeros(n_chains, dtype=torch.float64, device=v.device)
            for k in range(K - 1, -1, -1):
                log_r += (
                    annealer.log_f(v, float(betas[k])) - annealer.log_f(v, float(betas[k + 1]))
                ).double()
                if k > 0:
                    v = annealer.step(v, float(betas[k]))
                bar.update()
            ratio, _, _ = _log_mean_exp(log_r)
            out["log_z_upper"] = annealer.log_z_base - ratio
    bar.close()
    return out


def partition_ais(
    fit: Any,
    data: Any,
    *,
    n_steps: int = 10000,
    n_chains: int = 100,
    schedule: str | np.ndarray = "piecewise",
    seed: int = 0,
    progress: bool | None = None,
) -> PartitionResult:
    """AIS estimate of each row's log-likelihood ``-F(v) - log Z`` for an energy-based model.

    Called by :func:`ppgen.evaluate.ais` for models that provide an ``annealer`` (RBM, EBM);
    the parameters are those of :func:`ppgen.evaluate.ais` (``n_chains`` chains estimate the
    one log Z; ``schedule`` is ``"piecewise"``, ``"linear"`` or an array of betas).

    Returns
    -------
    PartitionResult
        Per-row estimates on the data's original scale, log Z with its standard error and, where
        available, the reverse (upper) estimate.
    """
    n_chains = check_count(n_chains, "n_chains")
    betas = partition_schedule(schedule, n_steps)
    enc = encode_rows(fit, data)
    model, params = fit.model, dict(fit.params)
    with torch.no_grad():
        free = model.free_energy(enc.x, enc.mask, params).double().cpu().numpy()
        annealer = model.annealer(enc.x, enc.mask, params)
    with seeded(seed, enc.x.device):
        z = log_partition(annealer, betas, n_chains, progress)
    per_row = -free - z["log_z"] + jacobian(fit, enc.x, enc.mask)
    n = len(per_row)
    return PartitionResult(
        per_row=frozen(per_row),
        mean=float(np.mean(per_row)),
        se=float(np.std(per_row, ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        mc_se=z["log_z_se"],
        log_z=z["log_z"],
        log_z_se=z["log_z_se"],
        log_z_upper=z["log_z_upper"],
        per_row_mc_se=frozen(np.full(n, z["log_z_se"])),
        ess=z["ess"],
        n_steps=len(betas) - 1,
        n_chains=n_chains,
    )
