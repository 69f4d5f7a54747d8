"""The 14 parsimonious covariance structures of Gaussian mixtures (Celeux & Govaert 1995), under
mclust's names: the eigen-decomposition ``Sigma_k = lambda_k D_k A_k D_k^T`` (volume
``lambda_k = |Sigma_k|^(1/d)``, shape ``A_k`` diagonal with ``|A_k| = 1``, orientation ``D_k``
orthogonal), each of the three Equal across components, Variable, or the Identity::

    EII  lambda I               VII  lambda_k I
    EEI  lambda A               VEI  lambda_k A           EVI  lambda A_k      VVI  lambda_k A_k
    EEE  lambda D A D^T         VEE  lambda_k D A D^T     EVE  lambda D A_k D^T
    VVE  lambda_k D A_k D^T     EEV  lambda D_k A D_k^T   VEV  lambda_k D_k A D_k^T
    EVV  lambda D_k A_k D_k^T   VVV  lambda_k D_k A_k D_k^T

What is here is the algebra only: :func:`m_step` maps the weighted scatter matrices of the
components (``W_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T``) and their expected counts to the
covariances that maximize the expected complete-data log-likelihood
``-1/2 sum_k [n_k log|Sigma_k| + tr(W_k Sigma_k^-1)]`` within the structure; and
:func:`n_covariance_parameters` counts free parameters as mclust's ``nMclustParams``.
:class:`~ppgen.models.gmm.GaussianMixture` makes the scatter matrices (exact expected ones with
missing entries) and keeps the mixture.

Closed forms (Celeux & Govaert 1995, table 1): EII, VII, EEI, EVI, VVI, EEE, EEV, EVV, VVV.
Iterative ones, each a monotone alternation run until the relative change of the objective is
below :data:`INNER_TOL` (mclust's ``emControl()$tol[2]``, sqrt of double epsilon) or
:data:`INNER_MAX` iterations: VEI, VEE, VEV alternate volumes and the shared shape /
shape-and-orientation (Celeux & Govaert 1995, sec. 3); EVE and VVE alternate the shapes (and
volumes) given the common orientation ``D`` with two majorization-minimization steps on ``D``
(Browne & McNicholas 2014), each of which solves an orthogonal Procrustes problem.

Inside EM (:class:`~ppgen.models.gmm.GaussianMixture`) the iterative M-steps start from the
previous covariances and run at most :data:`INNER_EM` iterations: a generalized EM step, which
never decreases the likelihood and has the same fixed points.

The structures with an identity or a common orientation and unequal shapes (EII, VII, EVE,
VVE, EEV, VEV) are not invariant to rescaling columns, so the mixture hands the scatter
matrices over in the data's own units, where mclust fits them.

References
----------
Celeux, G. & Govaert, G. (1995). Gaussian parsimonious clustering models. *Pattern
Recognition* 28(5), 781-793.
Browne, R. P. & McNicholas, P. D. (2014). Estimating common principal components in high
dimensions. *Advances in Data Analysis and Classification* 8(2), 217-226.
Scrucca, L., Fop, M., Murphy, T. B. & Raftery, A. E. (2016). mclust 5: clustering,
classification and density estimation using Gaussian finite mixture models. *The R Journal*
8(1), 289-317.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "ALIASES",
    "DIAGONAL",
    "INNER_EM",
    "INNER_MAX",
    "INNER_TOL",
    "STRUCTURES",
    "canonical",
    "m_step",
    "n_covariance_parameters",
    "reciprocal_condition",
]

#: mclust's model names, in mclust's order.
STRUCTURES: tuple[str, ...] = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI",
    "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip
#: The names of scikit-learn / earlier ppgen versions.
ALIASES: dict[str, str] = {"full": "VVV", "diag": "VVI"}
#: Structures whose covariances are diagonal (stored as variances).
DIAGONAL: frozenset[str] = frozenset({"EII", "VII", "EEI", "VEI", "EVI", "VVI"})
#: Relative tolerance of the iterative M-steps (mclust's inner ``tol``: sqrt(double eps)).
INNER_TOL: float = math.sqrt(2.220446049250313e-16)
#: Most iterations of an iterative M-step.
INNER_MAX: int = 500
#: Most iterations of an iterative M-step inside EM, started from the previous estimates: a
#: generalized EM step (the likelihood still never decreases, and EM's fixed point is the
#: same); on wine VVE,3 it halves the time and ends 3e-6 nats higher than :data:`INNER_MAX`.
INNER_EM: int = 10


def canonical(covariance_type: str) -> str:
    """mclust's name of ``covariance_type`` ("full" -> "VVV", "diag" -> "VVI"); ValueError
    naming the option otherwise."""
    name = ALIASES.get(covariance_type, covariance_type)
    if name not in STRUCTURES:
        raise ValueError(
            f"covariance_type must be 'full' or 'diag' or one of mclust's structures "
            f"{', '.join(STRUCTURES)}, got {covariance_type!r}"
        )
    return name


def n_covariance_parameters(structure: str, d: int, K: int) -> int:
    """Free covariance parameters of ``K`` components in ``d`` dimensions (mclust's
    ``nMclustParams`` without the means and weights)."""
    rot = d * (d - 1) // 2  # an orientation
    counts = {
        "EII": 1,
        "VII": K,
        "EEI": d,
        "VEI": K + d - 1,
        "EVI": 1 + K * (d - 1),
        "VVI": K * d,
        "EEE": d * (d + 1) // 2,
        "VEE": K + d * (d + 1) // 2 - 1,
        "EVE": 1 + K * (d - 1) + rot,
        "VVE": K + K * (d - 1) + rot,
        "EEV": 1 + (d - 1) + K * rot,
        "VEV": K + (d - 1) + K * rot,
        "EVV": 1 + K * (d * (d + 1) // 2 - 1),
        "VVV": K * d * (d + 1) // 2,
    }
    return counts[canonical(structure)]


def reciprocal_condition(cov: torch.Tensor) -> torch.Tensor:
    """Smallest over largest eigenvalue of each covariance, (K,) from (K, d, d) or from
    variances (K, d): the quantity whose smallness makes a fit singular."""
    eig = cov if cov.dim() == 2 else torch.linalg.eigvalsh(cov)
    return eig.min(-1).values / eig.max(-1).values.clamp_min(torch.finfo(cov.dtype).tiny)


def _geomean(v: np.ndarray) -> np.ndarray:
    """Geometric mean over the last axis (the volume of a diagonal matrix's entries)."""
    return np.exp(np.log(v).mean(-1))


def _converged(old: float, new: float, tol: float) -> bool:
    return abs(old - new) <= tol * (1.0 + abs(new))


def _polar(m: np.ndarray) -> np.ndarray:
    """The orthogonal matrix nearest ``m`` (``U V^T`` of its SVD): maximizes ``tr(D^T m)``."""
    u, _, vh = np.linalg.svd(m)
    return u @ vh


def _slogdet(a: np.ndarray) -> np.ndarray:
    return np.linalg.slogdet(a)[1]


def m_step(
    structure: str,
    scatter: torch.Tensor | np.ndarray,
    n_k: torch.Tensor | np.ndarray,
    *,
    start: torch.Tensor | np.ndarray | None = None,
    tol: float = INNER_TOL,
    max_iter: int = INNER_MAX,
) -> torch.Tensor | np.ndarray:
    """Covariances (K, d, d) maximizing ``-1/2 sum_k [n_k log|S_k| + tr(W_k S_k^-1)]`` within
    ``structure``.

    The algebra runs in float64 numpy on the host whatever the inputs: K matrices of d x d
    with sequential inner iterations, whose every step would otherwise be a device round trip
    (their convergence tests read a number); tensors in, a tensor of their device and dtype
    out; arrays in, an array out.

    Parameters
    ----------
    structure : str
        One of :data:`STRUCTURES` (or an alias).
    scatter : Tensor or array, shape (K, d, d)
        Weighted scatter matrices ``W_k`` around the components' means (positive definite:
        the caller adds its ridge).
    n_k : Tensor or array, shape (K,)
        Expected counts (positive).
    start : Tensor or array, shape (K, d, d), optional
        The previous covariances: the iterative structures start from their volumes (VEI, VEE,
        VEV) or common orientation (EVE, VVE), so that even a capped iteration never decreases
        the objective below theirs; else from the scatter's traces and pooled eigenvectors.
    tol, max_iter
        Relative tolerance and iteration cap of the iterative structures.
    """
    if not isinstance(scatter, torch.Tensor):
        return _m_step(canonical(structure), scatter, n_k, start, tol, max_iter)

    def host(t: torch.Tensor | None) -> np.ndarray | None:
        return None if t is None else t.detach().to("cpu", torch.float64).numpy()

    out = _m_step(canonical(structure), host(scatter), host(n_k), host(start), tol, max_iter)
    return torch.as_tensor(out, dtype=scatter.dtype, device=scatter.device)


def _m_step(
    structure: str,
    scatter: np.ndarray,
    n_k: np.ndarray,
    start: np.ndarray | None,
    tol: float,
    max_iter: int,
) -> np.ndarray:
    """:func:`m_step` on float64 arrays, ``structure`` canonical."""
    K, d = scatter.shape[0], scatter.shape[-1]
    n = n_k.sum()
    nk = n_k[:, None]
    if structure == "VVV":
        return scatter / nk[..., None]
    if structure == "EEE":
        return np.broadcast_to(scatter.sum(0) / n, (K, d, d)).copy()
    if structure == "EVV":
        # Sigma_k = lambda C_k, |C_k| = 1: C_k = W_k / |W_k|^(1/d), lambda = sum |W_k|^(1/d) / n.
        vol = np.exp(_slogdet(scatter) / d)
        return scatter / vol[:, None, None] * (vol.sum() / n)
    lam = None if start is None else np.exp(_slogdet(start) / d)
    if structure in DIAGONAL:
        w = np.diagonal(scatter, axis1=-2, axis2=-1)
        return _diagonal(structure, w, n_k, tol, max_iter, lam)[..., None] * np.eye(d)
    if structure == "VEE":
        return _vee(scatter, n_k, tol, max_iter, lam)
    if structure in ("EEV", "VEV"):
        omega, vecs = np.linalg.eigh(scatter)  # ascending in every component: aligned shapes
        if structure == "EEV":
            total = omega.sum(0)
            shape_vals = np.broadcast_to(total / _geomean(total), (K, d)) * (_geomean(total) / n)
        else:
            shape_vals = _vei(omega, n_k, tol, max_iter, lam)
        return (vecs * shape_vals[:, None, :]) @ vecs.swapaxes(-1, -2)
    return _common_orientation(structure, scatter, n_k, start, tol, max_iter)


def _diagonal(
    structure: str,
    w: np.ndarray,
    n_k: np.ndarray,
    tol: float,
    max_iter: int,
    lam: np.ndarray | None,
) -> np.ndarray:
    """Variances (K, d) of the diagonal structures from the scatter's diagonals ``w`` (K, d)."""
    K, d = w.shape
    n, nk = n_k.sum(), n_k[:, None]
    if structure == "VVI":
        return w / nk
    if structure == "EEI":
        return np.broadcast_to(w.sum(0) / n, (K, d)).copy()
    if structure == "EII":
        return np.full((K, d), w.sum() / (n * d))
    if structure == "VII":
        return np.broadcast_to(w.sum(-1, keepdims=True) / (nk * d), (K, d)).copy()
    if structure == "EVI":
        vol = _geomean(w)  # |diag W_k|^(1/d)
        return w / vol[:, None] * (vol.sum() / n)
    return _vei(w, n_k, tol, max_iter, lam)  # VEI


def _vei(
    w: np.ndarray, n_k: np.ndarray, tol: float, max_iter: int, lam: np.ndarray | None
) -> np.ndarray:
    """``lambda_k A`` (K, d) maximizing the expected log-likelihood given per-component
    diagonal scatter ``w`` (K, d) (VEI; VEV in each component's eigenbasis): alternately the
    shape ``A ~ sum_k w_k / lambda_k`` (|A| = 1) and the volumes ``lambda_k = tr(w_k A^-1) /
    (n_k d)`` (Celeux & Govaert 1995), each the exact maximizer given the other; from the
    volumes ``lam`` when given."""
    d = w.shape[-1]
    if lam is None:
        lam = w.sum(-1) / (n_k * d)
    value = math.inf
    for _ in range(max_iter):
        shape = (w / lam[:, None]).sum(0)
        shape = shape / _geomean(shape)
        lam = (w / shape).sum(-1) / (n_k * d)
        new = float((n_k * d * np.log(lam)).sum() + (w / shape / lam[:, None]).sum())
        if _converged(value, new, tol):
            break
        value = new
    return lam[:, None] * shape


def _vee(
    scatter: np.ndarray, n_k: np.ndarray, tol: float, max_iter: int, lam: np.ndarray | None
) -> np.ndarray:
    """VEE, ``lambda_k C`` with |C| = 1: alternately ``C ~ sum_k W_k / lambda_k`` and
    ``lambda_k = tr(W_k C^-1) / (n_k d)`` (from the volumes ``lam`` when given)."""
    d = scatter.shape[-1]
    if lam is None:
        lam = np.trace(scatter, axis1=-2, axis2=-1) / (n_k * d)
    value = math.inf
    for _ in range(max_iter):
        c = (scatter / lam[:, None, None]).sum(0)
        c = c / np.exp(_slogdet(c) / d)
        tr = np.trace(np.linalg.solve(c, scatter), axis1=-2, axis2=-1)  # tr(C^-1 W_k)
        lam = tr / (n_k * d)
        new = float((n_k * d * np.log(lam)).sum() + (tr / lam).sum())
        if _converged(value, new, tol):
            break
        value = new
    return lam[:, None, None] * c


def _common_orientation(
    structure: str,
    scatter: np.ndarray,
    n_k: np.ndarray,
    start: np.ndarray | None,
    tol: float,
    max_iter: int,
) -> np.ndarray:
    """EVE (``lambda D A_k D^T``) and VVE (``lambda_k D A_k D^T``).

    Given the orientation ``D`` the eigenvalues ``Lambda_k`` follow in closed form from
    ``diag(D^T W_k D)`` (as EVI / VVI in the rotated coordinates). Given them, ``D`` minimizes
    ``f(D) = sum_k tr(W_k D M_k D^T)``, ``M_k = Lambda_k^-1``, over orthogonal matrices;
    Browne & McNicholas (2014) majorize this quadratic by bounding ``W_k <= a_k I``
    (``a_k`` its largest eigenvalue) or ``M_k <= b_k I``, whose minimizers over orthogonal D
    are the Procrustes solutions ``D = polar(-G)`` with ``G = sum_k (W_k D M_k - a_k D M_k)``
    and ``G = sum_k (W_k D M_k - b_k W_k D)``; both steps never increase f, and the objective
    ``sum_k [n_k log|Lambda_k| + tr(D^T W_k D M_k)]`` is monotone over the alternation.
    """
    K = scatter.shape[0]
    n = n_k.sum()
    if start is not None:
        # A generic combination of the previous covariances: diagonal in their common
        # orientation with (generically) distinct eigenvalues, so eigh recovers it.
        mix = np.arange(1, K + 1, dtype=start.dtype)
        norm = np.trace(start, axis1=-2, axis2=-1)
        orient = np.linalg.eigh((start * (mix / norm)[:, None, None]).sum(0))[1]
    else:
        orient = np.linalg.eigh(scatter.sum(0))[1]
    top = np.linalg.eigvalsh(scatter)[:, -1]  # a_k

    def eigenvalues(omega: np.ndarray) -> np.ndarray:
        """Lambda_k from omega_k = diag(D^T W_k D), (K, d)."""
        if structure == "VVE":
            return omega / n_k[:, None]
        vol = _geomean(omega)
        return omega / vol[:, None] * (vol.sum() / n)

    # W_k D for the current D, computed once per new D (each is used up to three times).
    rotated = scatter @ orient
    value = math.inf
    for _ in range(max_iter):
        lam = eigenvalues((rotated * orient).sum(-2))
        inv = 1.0 / lam  # M_k, (K, d)
        wdm = rotated * inv[:, None, :]  # W_k D M_k
        orient = _polar(-(wdm - top[:, None, None] * orient * inv[:, None, :]).sum(0))
        rotated = scatter @ orient
        wdm = rotated * inv[:, None, :]
        best = inv.max(-1)  # b_k
        orient = _polar(-(wdm - best[:, None, None] * rotated).sum(0))
        rotated = scatter @ orient
        omega = (rotated * orient).sum(-2)
        new = float((n_k * np.log(lam).sum(-1)).sum() + (omega * inv).sum())
        if _converged(value, new, tol):
            break
        value = new
    lam = eigenvalues((rotated * orient).sum(-2))
    return (orient * lam[:, None, :]) @ orient.swapaxes(-1, -2)
