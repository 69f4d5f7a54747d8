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
from typing import Any

import numpy as np
import torch

from ppgen.evaluate.estimate import (
    EXACT_GUIDE,
    NO_LOCAL_LATENTS,
    Estimate,
    check_count,
    encode_rows,
    equal_weights,
    exact_per_row,
    jacobian,
    make_estimate,
)
from ppgen.infer import distributed as dist
from ppgen.infer.weights import importance_log_weights, iwae_rows, sharded_log_weights

__all__ = ["Estimate", "elbo", "iwae"]


def elbo(
    fit: Any,
    data: Any,
    *,
    num_particles: int = 100,
    seed: int = 0,
    batch_size: int | None = None,
    distributed: bool | str = False,
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
    distributed : {False, True, "auto"}
        Share the rows among the ranks of a ``torchrun`` launch (every rank passes the same
        table and receives the whole result, rows in their original order); see
        :func:`ppgen.infer.weights.sharded_log_weights` for the seeding, which makes the
        result the same for any number of ranks. ``"auto"``: only under a launcher.

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
    enc = encode_rows(fit, data)
    k = check_count(num_particles, "num_particles")
    log_w = _log_weights(fit, enc, k, seed, batch_size, distributed)
    if log_w is None:
        return _exact(fit, enc)
    per_row, k = log_w.mean(0), log_w.shape[0]
    mc_var = log_w.var(0, ddof=1) / k if k > 1 else np.full(log_w.shape[1], math.nan)
    return make_estimate(per_row + jacobian(fit, enc.x, enc.mask), mc_var, _note(fit, log_w))


def iwae(
    fit: Any,
    data: Any,
    *,
    k: int = 100,
    seed: int = 0,
    batch_size: int | None = None,
    distributed: bool | str = False,
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
    distributed : {False, True, "auto"}
        Rows shared among ranks, as in :func:`elbo`.

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
    enc = encode_rows(fit, data)
    log_w = _log_weights(fit, enc, check_count(k, "k"), seed, batch_size, distributed)
    if log_w is None:
        return _exact(fit, enc)
    kk = log_w.shape[0]
    if kk > 1:
        rel = (kk * torch.from_numpy(log_w).softmax(0)).numpy()  # w_ij / mean_j w_ij
        mc_var = rel.var(0, ddof=1) / kk
    else:
        mc_var = np.full(log_w.shape[1], math.nan)
    return make_estimate(
        iwae_rows(log_w) + jacobian(fit, enc.x, enc.mask), mc_var, _note(fit, log_w)
    )


# -- internals ------------------------------------------------------------------------------------
def _log_weights(
    fit: Any, enc: Any, k: int, seed: int, batch_size: int | None, distributed: Any = False
) -> np.ndarray | None:
    """Log importance weights, shape (k, n), on the encoded scale; None without local latents."""
    if fit.model.unnormalized:
        # Energy-based models: the program's density lacks log Z, so no bound of log p exists.
        raise ValueError(
            f"{type(fit.model).__name__} is an energy-based model whose partition function is "
            "unknown: estimate log p with ppgen.evaluate.ais(fit, data)"
        )
    ctx = dist.resolve(distributed, enc.x.device)
    if ctx is not None:
        return sharded_log_weights(
            fit.model, enc.x, enc.mask, k, ctx, params=fit.params, seed=seed, batch_size=batch_size
        )
    return importance_log_weights(
        fit.model, enc.x, enc.mask, k, params=fit.params, seed=seed, batch_size=batch_size
    )


def _note(fit: Any, log_w: np.ndarray) -> str:
    """Why the estimate is exact ("" when it is not)."""
    return EXACT_GUIDE if equal_weights(log_w, fit.dtype) else ""


def _exact(fit: Any, enc: Any) -> Estimate:
    per_row = exact_per_row(fit, enc.x, enc.mask)
    if per_row is None:
        raise ValueError(
            f"{type(fit.model).__name__} has no continuous local latents and no log_prob"
        )
    return make_estimate(per_row, np.zeros(len(per_row)), NO_LOCAL_LATENTS)
