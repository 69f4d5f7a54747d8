"""One maximum-likelihood EM iteration of a Gaussian mixture on a complete continuous table,
fused in float64 numpy: the E-step, the sufficient statistics and the M-step of
:class:`~ppgen.models.gmm.GaussianMixture` in a few dozen array operations.

On the small tables model selection runs (272 x 2, 178 x 13, a grid of 126 candidates of a
few hundred EM iterations each), an EM iteration through the general path (masks, column kinds,
held sites, missing entries, streamed statistics; one torch dispatch per small operation) costs
about a millisecond, most of it per-operation overhead; this kernel does the same arithmetic
on the same parametrization (weights; means and precisions on the encoded scale; the
structures' M-step in the data's units through :func:`ppgen.models.covariances.m_step`) in a
fraction of it. :meth:`GaussianMixture.em_step` uses it only where the general path would do
exactly this: maximum likelihood, continuous columns only, every entry observed, nothing held,
float64 tensors on the CPU; elsewhere (missing entries, other kinds, priors, GPUs) the general
path runs. The two agree to rounding (tests/models/test_gmm_kernel.py).

An iteration is :func:`statistics` (the E-step as sums over the rows: log-likelihood, expected
counts, weighted sums, second moments about the current means) then :func:`update` (the
M-step from them). Under the same conditions :meth:`GaussianMixture.em_statistics` returns the
kernel's :func:`statistics` in the general path's form, so distributed EM (each rank's share,
all-reduced) and streamed EM (each chunk, summed) run the kernel's E-step too, and then the
general path's torch M-step on the summed statistics (a few small matrices): a rank or chunk
with missing entries takes the general path and adds up with the others alike
(tests/infer/test_em_distributed.py, tests/infer/test_stream.py). On 10^6 x 8 the E-step and
statistics are nearly all of an iteration's time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ppgen.models import covariances

__all__ = ["Constants", "em_step", "log_joint", "m_step", "moments", "statistics", "update"]

_LOG_2PI = math.log(2 * math.pi)
_TINY = float(np.finfo(np.float64).tiny)


@dataclass(frozen=True)
class Constants:
    """What one model's iterations share.

    Attributes
    ----------
    structure : str
        mclust's name of the covariance structure.
    diagonal : bool
        Whether the precisions are stored as variances' reciprocals (K, d), not matrices.
    ridge : array (d,)
        ``reg_covar`` on the encoded scale (``reg_covar / scale_j^2``).
    scale : array (d,)
        The columns' scales (encoded -> data units), for the structures' M-step.
    reg_covar : float
    empty : float
        A component whose expected count is at most this fraction of the rows is empty.
    iterative : bool
        Whether the structure's M-step iterates from the previous covariances.
    inner : int
        Most inner iterations of an iterative M-step.
    """

    structure: str
    diagonal: bool
    ridge: np.ndarray
    scale: np.ndarray
    reg_covar: float
    empty: float
    iterative: bool
    inner: int

    def __post_init__(self) -> None:
        # Arrays every iteration uses, made once.
        d = len(self.scale)
        object.__setattr__(self, "eye", np.eye(d))
        object.__setattr__(self, "ridge_matrix", np.diag(self.ridge))
        object.__setattr__(self, "outer", self.scale[:, None] * self.scale)
        object.__setattr__(self, "ones", np.ones(max(d, 64)))


def _ones(c: Constants, m: int) -> np.ndarray:
    return c.ones[:m] if m <= len(c.ones) else np.ones(m)


def _inverse_spd(a: np.ndarray) -> np.ndarray:
    """Inverses of symmetric positive definite matrices through their Cholesky factors
    (``torch.cholesky_inverse(torch.linalg.cholesky(a))``); exactly symmetric."""
    inv = np.linalg.inv(np.linalg.cholesky(a))
    return inv.swapaxes(-1, -2) @ inv


def em_step(
    x: np.ndarray, weights: np.ndarray, locs: np.ndarray, precision: np.ndarray, c: Constants
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:
    """The next ``(weights, locs, precision)`` and the log-likelihood at the given ones, from
    rows ``x`` (n, d) on the encoded scale: :meth:`GaussianMixture.em_step` under maximum
    likelihood (``reg_covar`` ridge, floored weights, empty components kept); the
    :func:`update` of the rows' :func:`statistics`."""
    log_lik, moments = statistics(x, weights, locs, precision, c)
    return update(x.shape[0], moments, c, locs, precision), log_lik


def statistics(
    x: np.ndarray, weights: np.ndarray, locs: np.ndarray, precision: np.ndarray, c: Constants
) -> tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The E-step at ``(weights, locs, precision)`` as sums over the rows ``x`` (n, d), so that
    those of disjoint row sets add up (distributed and streamed EM): the log-likelihood and
    the :func:`moments` of the memberships."""
    joint, diff = log_joint(x, weights, locs, precision, c)
    top = joint.max(-1, keepdims=True)
    if not np.isfinite(top).all():
        top = np.where(np.isfinite(top), top, 0.0)
    scaled = np.exp(joint - top)
    total = scaled @ _ones(c, weights.shape[0])[:, None]
    log_lik = np.log(total) + top
    resp = scaled / total
    return float(log_lik.sum()), moments(x, resp, c, locs, diff)


def log_joint(
    x: np.ndarray, weights: np.ndarray, locs: np.ndarray, precision: np.ndarray, c: Constants
) -> tuple[np.ndarray, np.ndarray]:
    """``log w_k + log N(x_i | locs_k, precision_k^-1)`` (n, K)
    (:meth:`GaussianMixture.component_log_prob`), and the rows' differences from the means
    (K, n, d)."""
    n, d = x.shape
    diff = x[None] - locs[:, None]  # (K, n, d), about the current means
    # Sums over short last axes as matrix-vector products: numpy's reduction over a short
    # contiguous axis costs several times more.
    if c.diagonal:
        maha = ((diff * diff) @ precision[:, :, None])[..., 0]
        lp = 0.5 * (np.log(precision).sum(-1)[:, None] - maha - d * _LOG_2PI)
    else:
        tril = np.linalg.cholesky(precision)
        white = diff @ tril
        maha = (white * white) @ _ones(c, d)
        logdet = np.log(np.diagonal(tril, axis1=-2, axis2=-1)).sum(-1)
        lp = logdet[:, None] - 0.5 * maha - 0.5 * d * _LOG_2PI
    return lp.T + np.log(weights), diff


def m_step(
    x: np.ndarray,
    resp: np.ndarray,
    c: Constants,
    locs: np.ndarray | None = None,
    precision: np.ndarray | None = None,
    diff: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(weights, locs, precision)`` maximizing the expected log-likelihood given memberships
    ``resp`` (n, K): :meth:`GaussianMixture.m_step` under maximum likelihood. ``locs`` and
    ``precision``, the current values (None for a first M-step from a partition), centre the
    second moments, start the iterative structures and stay with a component that lost every
    row; ``diff`` is ``x - locs`` per component when the E-step has it."""
    return update(x.shape[0], moments(x, resp, c, locs, diff), c, locs, precision)


def moments(
    x: np.ndarray,
    resp: np.ndarray,
    c: Constants,
    locs: np.ndarray | None = None,
    diff: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sufficient statistics of :func:`update` given memberships ``resp`` (n, K): the
    expected counts ``n_k`` (K,), the weighted sums ``s`` (K, d) and, for VVI, the weighted
    sums of squares per column ``q`` (K, d), else the second moments about ``locs`` (zero
    when None) (K, d, d): those of :func:`ppgen.models.likelihoods.gaussian_statistics` on a
    complete table. ``diff`` is ``x - locs`` per component when the E-step has it."""
    n_k = np.ones(x.shape[0]) @ resp
    s = resp.T @ x
    if c.structure == "VVI":
        return n_k, s, resp.T @ (x * x)
    if diff is None:
        diff = x[None] - (0.0 if locs is None else locs[:, None])
    return n_k, s, (diff * resp.T[:, :, None]).swapaxes(-1, -2) @ diff


def update(
    n: float,
    stats: tuple[np.ndarray, np.ndarray, np.ndarray],
    c: Constants,
    locs: np.ndarray | None = None,
    precision: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(weights, locs, precision)`` from :func:`moments` summed over ``n`` rows (any split of
    them), made about the current ``locs`` with the current ``precision`` (None for a first
    M-step from a partition): :func:`m_step`."""
    n_k, s, second = stats
    floored = np.maximum(n_k, c.empty * n_k.sum())
    new_weights = floored / floored.sum()
    if c.structure == "VVI":
        # Per-column sums of squares, as the general path's diagonal statistics.
        n_safe = np.maximum(n_k, _TINY)[:, None]
        new_locs = s / n_safe
        sq = second - 2 * new_locs * s + n_k[:, None] * new_locs**2
        new_precision = 1.0 / (np.maximum(sq, 0.0) / n_safe + c.ridge)
    else:
        # Second moments about the current means (no digits lost to cancellation), moved to
        # the new ones (ppgen.models.likelihoods.scatter_about).
        n_safe = np.maximum(n_k, _TINY if c.structure == "VVV" else c.empty * n)
        new_locs = s / n_safe[:, None]
        # scatter_about's ss - t e^T - e t^T + n e e^T with t = n_k e (the new means are the
        # weighted averages; n_safe differs from n_k only for an empty component, whose
        # parameters are kept below): ss - n_k e e^T.
        shift = new_locs if locs is None else new_locs - locs
        scatter = second - (n_k[:, None] * shift)[:, :, None] * shift[:, None, :]
        if c.structure == "VVV":
            cov = scatter / n_safe[:, None, None] + c.ridge_matrix
            new_precision = _inverse_spd(cov)
        else:
            outer = c.outer
            scatter = scatter * outer + (n_safe * c.reg_covar)[:, None, None] * c.eye
            start = None
            if c.iterative and precision is not None:
                start = (
                    (1.0 / precision)[..., None] * c.eye if c.diagonal
                    else _inverse_spd(precision)
                ) * outer  # fmt: skip
            cov = covariances.m_step(c.structure, scatter, n_safe, start=start,
                                     max_iter=c.inner) / outer  # fmt: skip
            if c.diagonal:
                new_precision = 1.0 / np.diagonal(cov, axis1=-2, axis2=-1)
            else:
                new_precision = _inverse_spd(cov)
    empty = n_k <= c.empty * n
    if locs is not None and empty.any():  # a component that lost every row keeps its parameters
        new_locs = np.where(empty[:, None], locs, new_locs)
        keep = empty.reshape((-1,) + (1,) * (precision.ndim - 1))
        new_precision = np.where(keep, precision, new_precision)
    return new_weights, new_locs, new_precision
