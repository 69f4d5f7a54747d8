"""Per-row lower bounds on the log-likelihood: the ELBO and the importance-weighted bound (IWAE).

Both use the model's own Pyro programs at the fit's point estimate of the global parameters: the
model conditioned on ``fit.params`` and the model's guide for the *local* latents. For each row
``i`` and particle ``j`` the log importance weight is

    log w_ij = log p(x_i, z_ij | params) - log q(z_ij | x_i),    z_ij ~ q(. | x_i),

summed over the row's own sites only (the observation ``"x"`` and the local latents; the global
sites are fixed and their prior does not enter). Then

    ELBO_i = mean_j log w_ij <= IWAE_i(k) = logsumexp_j log w_ij - log k <= log p(x_i)

in expectation, with IWAE non-decreasing in k (Burda, Grosse & Salakhutdinov 2016).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppgen._utils import seeded
from ppgen.data.schema import Encoded

__all__ = ["Estimate", "elbo", "iwae"]

#: Upper bound on particles x rows x columns held at once; rows are processed in chunks.
_MAX_ELEMENTS = 2**21


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo estimate of a per-row quantity (nats), on the data's original scale.

    Attributes
    ----------
    per_row : ndarray
        The estimate for each row, shape (n,).
    mean : float
        Mean over rows: the number to compare models by (like :meth:`ppgen.Fit.score`).
    se : float
        Standard error of ``mean`` over rows (sampling variability of the data).
    mc_se : float
        Monte-Carlo standard error of ``mean`` (variability of the particles); 0 when the
        estimate is exact, NaN when it cannot be estimated (a single particle).
    """

    per_row: np.ndarray = field(repr=False)
    mean: float
    se: float
    mc_se: float

    def __float__(self) -> float:
        return float(self.mean)


def _estimate(per_row: np.ndarray, mc_var_per_row: np.ndarray) -> Estimate:
    per_row = np.asarray(per_row, dtype=float)
    per_row.setflags(write=False)
    n = len(per_row)
    se = float(np.std(per_row, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    mc_se = float(math.sqrt(np.sum(mc_var_per_row)) / n)
    return Estimate(per_row=per_row, mean=float(np.mean(per_row)), se=se, mc_se=mc_se)


def elbo(
    fit: Any, data: Any, *, num_particles: int = 100, seed: int = 0, batch_size: int | None = None
) -> Estimate:
    """Evidence lower bound of each row, ``E_q[log p(x_i, z_i) - log q(z_i | x_i)]``.

    Parameters
    ----------
    fit : ppgen.Fit
        A fitted model. The model is evaluated at ``fit.params`` (the point estimate; for SVI
        and NUTS fits, the posterior median or mean), with its fitted local guide.
    data : DataFrame, ndarray or Tensor
        Rows to evaluate, in the form the model was fitted on; missing entries are allowed.
    num_particles : int
        Draws from the guide per row; the estimate is their mean.
    seed : int
        Seed of the draws.
    batch_size : int, optional
        Rows evaluated at once (all particles of a row together); by default as many as keep
        about two million particle-row-column values in memory.

    Returns
    -------
    Estimate
        Per-row ELBO on the data's original scale (the log-Jacobian of the standardization is
        added, as in :meth:`ppgen.Fit.log_prob`), its mean, the standard error over rows and the
        Monte-Carlo standard error ``sqrt(sum_i Var_j(log w_ij) / num_particles) / n``.

    Notes
    -----
    Models without continuous local latents (GaussianMixture: its discrete assignment is summed
    out exactly) have no gap to bound: the ELBO is then the exact log-likelihood at
    ``fit.params``, which is :meth:`ppgen.Fit.log_prob` for MAP and EM fits, with ``mc_se = 0``.
    The gap to the exact log-likelihood is the KL divergence from the guide to the posterior.
    """
    enc = _encode_rows(fit, data)
    log_w = _log_weights(fit, enc, _check_count(num_particles, "num_particles"), seed, batch_size)
    if log_w is None:
        return _exact(fit, enc)
    per_row, k = log_w.mean(0), log_w.shape[0]
    mc_var = log_w.var(0, ddof=1) / k if k > 1 else np.full(log_w.shape[1], math.nan)
    return _estimate(per_row + _jacobian(fit, enc), mc_var)


def iwae(
    fit: Any, data: Any, *, k: int = 100, seed: int = 0, batch_size: int | None = None
) -> Estimate:
    """Importance-weighted lower bound of each row, ``log (1/k) sum_j w_ij`` (Burda et al. 2016).

    Parameters
    ----------
    fit : ppgen.Fit
        A fitted model, evaluated at ``fit.params`` with its fitted local guide as proposal.
    data : DataFrame, ndarray or Tensor
        Rows to evaluate, in the form the model was fitted on; missing entries are allowed.
    k : int
        Importance samples per row. The bound tightens as k grows (non-decreasing in
        expectation) and tends to the exact log-likelihood; ``k=1`` is a one-particle ELBO.
    seed : int
        Seed of the draws.
    batch_size : int, optional
        Rows evaluated at once, as in :func:`elbo`.

    Returns
    -------
    Estimate
        Per-row bound on the data's original scale, its mean, the standard error over rows and
        the Monte-Carlo standard error of the mean by the delta method,
        ``Var_i ~ Var_j(w_ij) / (k mean_j(w_ij)^2)`` (NaN for ``k=1``). The delta method is
        optimistic when the weights are heavy-tailed (a poor guide).

    Notes
    -----
    Models without continuous local latents (GaussianMixture: its discrete assignment is summed
    out exactly) return the exact log-likelihood at ``fit.params``, which is
    :meth:`ppgen.Fit.log_prob` for MAP and EM fits, with ``mc_se = 0``.

    References
    ----------
    Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance weighted autoencoders. *ICLR*.
    """
    enc = _encode_rows(fit, data)
    log_w = _log_weights(fit, enc, _check_count(k, "k"), seed, batch_size)
    if log_w is None:
        return _exact(fit, enc)
    kk = log_w.shape[0]
    lw = torch.from_numpy(log_w)
    per_row = (lw.logsumexp(0) - math.log(kk)).numpy()
    if kk > 1:
        rel = (kk * lw.softmax(0)).numpy()  # w_ij / mean_j w_ij
        mc_var = rel.var(0, ddof=1) / kk
    else:
        mc_var = np.full(log_w.shape[1], math.nan)
    return _estimate(per_row + _jacobian(fit, enc), mc_var)


# -- internals ------------------------------------------------------------------------------------
def _encode_rows(fit: Any, data: Any) -> Encoded:
    """Encode ``data`` for a model of independent rows; sequence models are refused."""
    if getattr(fit.model, "sequential", False):
        raise ValueError(
            f"{type(fit.model).__name__} scores whole sequences and its likelihood is exact: "
            "use fit.log_prob; per-row bounds and AIS are for models of independent rows"
        )
    return fit._encode(data)


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _jacobian(fit: Any, enc: Encoded) -> np.ndarray:
    return fit.schema.log_abs_det_jacobian(enc.mask).cpu().numpy()


def _exact(fit: Any, enc: Encoded) -> Estimate:
    with torch.no_grad():
        lp = fit.model.log_prob(enc.x, enc.mask, dict(fit.params))
    per_row = lp.double().cpu().numpy() + _jacobian(fit, enc)
    return _estimate(per_row, np.zeros(len(per_row)))


def _log_weights(
    fit: Any, enc: Encoded, k: int, seed: int, batch_size: int | None
) -> np.ndarray | None:
    """Log importance weights, shape (k, n), on the encoded scale; None without local latents."""
    x, mask = enc.x, enc.mask
    model = fit.model
    n, d = x.shape
    particle_dim = -(model.max_plate_nesting + 1)
    conditioned = poutine.condition(model.model, data=dict(fit.params))
    if batch_size is None:
        chunk = max(1, _MAX_ELEMENTS // (k * max(d, 1)))
    else:
        chunk = _check_count(batch_size, "batch_size")
    out = []
    # A private param store: PyroModule parameters must not be read from, or leak into, the
    # caller's global store (another fit may hold parameters of the same name).
    with pyro.get_param_store().scope(), seeded(seed, x.device), torch.no_grad():
        for start in range(0, n, chunk):
            xb, mb = x[start : start + chunk], mask[start : start + chunk]
            lw = _chunk_log_weights(model, conditioned, xb, mb, k, particle_dim)
            if lw is None:
                if start == 0:
                    return None
                raise RuntimeError("the guide sampled local latents for some rows only")
            out.append(lw)
    return torch.cat(out, dim=-1).double().cpu().numpy()


def _chunk_log_weights(
    model: Any,
    model_fn: Callable,
    x: torch.Tensor,
    mask: torch.Tensor,
    k: int,
    particle_dim: int,
) -> torch.Tensor | None:
    n, global_sites = x.shape[0], model.global_sites
    with pyro.plate("particles", k, dim=particle_dim):
        guide_trace = poutine.trace(model.guide).get_trace(x, mask)
        if not any(_is_sample(s) for s in guide_trace.nodes.values()):
            return None
        if model.enumerated:
            raise NotImplementedError(
                f"{type(model).__name__} has both enumerated discrete and continuous local "
                "latents; ppgen.evaluate.elbo/iwae do not sum out the discrete ones yet"
            )
        replayed = poutine.replay(model_fn, trace=guide_trace)
        model_trace = poutine.trace(replayed).get_trace(x, mask)

    def local(name: str, site: dict) -> bool:
        return name not in global_sites and not site_is_subsample(site)

    model_trace.compute_log_prob(site_filter=local)
    guide_trace.compute_log_prob(site_filter=local)
    log_w = x.new_zeros(k, n)
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        for name, site in trace.nodes.items():
            if not _is_sample(site) or name in global_sites:
                continue
            if trace is model_trace and not site["is_observed"] and name not in guide_trace:
                raise NotImplementedError(
                    f"latent site {name!r} is not in the guide; elbo/iwae need a guide for every "
                    "local latent"
                )
            log_w = log_w + sign * _per_row(site, name, particle_dim, k, n)
    return log_w


def _is_sample(site: dict) -> bool:
    return site["type"] == "sample" and not site_is_subsample(site)


def _per_row(site: dict, name: str, particle_dim: int, k: int, n: int) -> torch.Tensor:
    """A site's log density summed to one value per (particle, row): shape (k, n)."""
    lp = site["log_prob"]
    nd = -particle_dim
    if lp.dim() > nd:
        raise ValueError(f"site {name!r} has more batch dimensions than its plates")
    lp = lp.reshape((1,) * (nd - lp.dim()) + tuple(lp.shape))
    data_dims = [f.dim for f in site["cond_indep_stack"] if f.name == "data"]
    if not data_dims:
        raise ValueError(
            f"site {name!r} is neither global nor inside the 'data' plate; it cannot be "
            "attributed to rows"
        )
    row_axis = nd + data_dims[0]
    others = [a for a in range(1, nd) if a != row_axis]
    if others:
        lp = lp.sum(others, keepdim=True)
    return lp.reshape(lp.shape[0], lp.shape[row_axis]).expand(k, n)
