"""Factor rotations by gradient projection, and promax.

Every rotation takes unrotated loadings ``A`` (p x k) and returns a :class:`Rotation`: the
pattern loadings ``L``, the factor correlations ``Phi`` and the rotation matrix ``T``, with
``L @ Phi @ L.T == A @ A.T`` (the common variance is unchanged).

* Orthogonal criteria (``varimax``, ``quartimax``) minimize ``Q(A T)`` over orthogonal ``T``
  (Jennrich 2001); ``Phi`` is the identity.
* Oblique criteria (``oblimin``, ``geomin``) minimize ``Q(A inv(T).T)`` over ``T`` with unit
  columns (Jennrich 2002), ``Phi = T.T @ T``.

Both use the gradient-projection algorithm with the step halving of Bernaards & Jennrich (2005),
started at the identity, as GPArotation's ``GPForth`` / ``GPFoblq`` do, so that the criteria and
tolerances are those psych's ``fa`` reaches through GPArotation. ``promax`` is psych's
``Promax``: Kaiser-normalized varimax, then a least-squares (Procrustes) fit to the loadings
raised to the power 4 with their signs kept (Hendrickson & White 1964).

References
----------
Jennrich, R. I. (2001). A simple general procedure for orthogonal rotation. *Psychometrika* 66,
289-306.
Jennrich, R. I. (2002). A simple general method for oblique rotation. *Psychometrika* 67, 7-19.
Bernaards, C. A. & Jennrich, R. I. (2005). Gradient projection algorithms and software for
arbitrary rotation criteria in factor analysis. *Educ. Psychol. Meas.* 65, 676-696.
Hendrickson, A. E. & White, P. O. (1964). Promax: a quick method for rotation to oblique simple
structure. *Brit. J. Stat. Psychol.* 17, 65-70.
Kaiser, H. F. (1958). The varimax criterion for analytic rotation in factor analysis.
*Psychometrika* 23, 187-200.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "CRITERIA",
    "ROTATIONS",
    "Rotation",
    "criterion",
    "projected_gradient",
    "rotate",
]

Criterion = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _varimax(L: np.ndarray) -> tuple[float, np.ndarray]:
    # Q = -1/4 sum_j ||L_j^2 - mean(L_j^2)||^2 (GPArotation's vgQ.varimax).
    QL = L**2 - (L**2).mean(axis=0)
    return -float((QL**2).sum()) / 4, -L * QL


def _quartimax(L: np.ndarray) -> tuple[float, np.ndarray]:
    return -float((L**4).sum()) / 4, -(L**3)


def _oblimin(L: np.ndarray, gamma: float = 0.0) -> tuple[float, np.ndarray]:
    # Q = 1/4 sum of L_ir^2 L_is^2 over pairs r != s (gamma = 0: quartimin).
    k = L.shape[1]
    X = L**2 @ (1.0 - np.eye(k))
    if gamma:
        p = L.shape[0]
        X = (np.eye(p) - gamma / p) @ X
    return float((L**2 * X).sum()) / 4, L * X


def _geomin(L: np.ndarray, delta: float = 0.01) -> tuple[float, np.ndarray]:
    # Q = sum_i (prod_r (L_ir^2 + delta))^(1/k) (Yates 1987; GPArotation's vgQ.geomin).
    k = L.shape[1]
    L2 = L**2 + delta
    pro = np.exp(np.log(L2).sum(axis=1) / k)
    return float(pro.sum()), (2.0 / k) * (L / L2) * pro[:, None]


#: Criterion and whether the rotation is oblique, by name.
CRITERIA: dict[str, tuple[Criterion, bool]] = {
    "varimax": (_varimax, False),
    "quartimax": (_quartimax, False),
    "oblimin": (_oblimin, True),
    "geomin": (_geomin, True),
}
#: Every rotation :func:`rotate` accepts (``None`` leaves the loadings as they are).
ROTATIONS: tuple[str, ...] = ("varimax", "quartimax", "oblimin", "geomin", "promax")


@dataclass(frozen=True)
class Rotation:
    """A rotated solution.

    Attributes
    ----------
    loadings : ndarray (p, k)
        Pattern loadings (for orthogonal rotations also the structure).
    phi : ndarray (k, k)
        Factor correlations (identity for orthogonal rotations).
    rotmat : ndarray (k, k)
        ``T``: ``loadings = A @ T`` (orthogonal, and promax as psych reports it) or
        ``A @ inv(T).T`` (gradient-projection oblique rotations).
    oblique : bool
    criterion : float
        The rotation criterion at the solution (nan for promax and no rotation).
    n_iter : int
    converged : bool
    """

    loadings: np.ndarray
    phi: np.ndarray
    rotmat: np.ndarray
    oblique: bool
    criterion: float
    n_iter: int
    converged: bool

    @property
    def structure(self) -> np.ndarray:
        """Structure loadings: correlations of the items with the factors, ``L @ Phi``."""
        return self.loadings @ self.phi


def criterion(name: str) -> Criterion:
    """The criterion function ``L -> (Q(L), dQ/dL)`` of a gradient-projection rotation."""
    if name not in CRITERIA:
        raise ValueError(f"rotation {name!r} has no criterion; one of {', '.join(CRITERIA)}")
    return CRITERIA[name][0]


def projected_gradient(A: np.ndarray, T: np.ndarray, name: str) -> np.ndarray:
    """The gradient of the criterion with respect to ``T`` projected on the constraint set's
    tangent space at ``T`` (orthogonal matrices, or matrices with unit columns): zero at a
    stationary point of the rotation."""
    vgq, oblique = CRITERIA[name]
    if oblique:
        Ti = np.linalg.inv(T)
        L = A @ Ti.T
        G = -(L.T @ vgq(L)[1] @ Ti).T
        return G - T * (T * G).sum(axis=0)
    G = A.T @ vgq(A @ T)[1]
    M = T.T @ G
    return G - T @ (M + M.T) / 2


def _gpa(
    A: np.ndarray, vgq: Criterion, oblique: bool, eps: float, max_iter: int
) -> tuple[np.ndarray, float, int, bool]:
    """Gradient projection from T = I (Bernaards & Jennrich 2005, GPForth / GPFoblq)."""
    k = A.shape[1]
    T = np.eye(k)

    def value_and_gradient(T: np.ndarray) -> tuple[float, np.ndarray]:
        if oblique:
            Ti = np.linalg.inv(T)
            L = A @ Ti.T
            f, Gq = vgq(L)
            return f, -(L.T @ Gq @ Ti).T
        f, Gq = vgq(A @ T)
        return f, A.T @ Gq

    f, G = value_and_gradient(T)
    alpha = 1.0
    for it in range(max_iter + 1):
        if oblique:
            Gp = G - T * (T * G).sum(axis=0)
        else:
            M = T.T @ G
            Gp = G - T @ (M + M.T) / 2
        s = float(np.linalg.norm(Gp))
        if s < eps:
            return T, f, it, True
        if it == max_iter:
            break
        alpha *= 2
        for _ in range(11):  # halve the step until the criterion drops enough (Armijo)
            X = T - alpha * Gp
            if oblique:
                Tt = X / np.sqrt((X**2).sum(axis=0))
            else:
                U, _, Vt = np.linalg.svd(X)
                Tt = U @ Vt
            ft, Gt = value_and_gradient(Tt)
            if ft < f - 0.5 * s**2 * alpha:
                break
            alpha /= 2
        T, f, G = Tt, ft, Gt
    return T, f, max_iter, False


def _kaiser_varimax(
    A: np.ndarray, eps: float, max_iter: int
) -> tuple[np.ndarray, float, int, bool]:
    """Kaiser's varimax iteration as R's ``stats::varimax`` runs it (the one psych's ``fa``
    calls): T = U V^T from the SVD of the criterion's gradient, until the sum of its singular
    values grows by less than the relative ``eps``. At psych's 1e-5 this stops short of the
    stationary point by up to ~1e-3 in the loadings, so it is what psych parity needs."""
    p, k = A.shape
    T, d = np.eye(k), 0.0
    for it in range(1, max_iter + 1):
        z = A @ T
        B = A.T @ (z**3 - z * (z**2).sum(axis=0) / p)
        U, s, Vt = np.linalg.svd(B)
        T = U @ Vt
        d_past, d = d, float(s.sum())
        if d < d_past * (1 + eps):
            return T, _varimax(A @ T)[0], it, True
    return T, _varimax(A @ T)[0], max_iter, False


def rotate(
    loadings: np.ndarray,
    method: str | None,
    *,
    normalize: bool | None = None,
    eps: float = 1e-5,
    max_iter: int = 1000,
    power: int = 4,
    algorithm: str = "psych",
) -> Rotation:
    """Rotate unrotated loadings ``A`` (p x k).

    Parameters
    ----------
    loadings : array (p, k)
    method : {"varimax", "quartimax", "oblimin", "geomin", "promax"} or None
        ``oblimin`` is direct quartimin (gamma 0), ``geomin`` the oblique geomin with delta
        0.01 (GPArotation's ``geominQ``), ``promax`` psych's (Kaiser-normalized varimax, then
        the Procrustes fit to the power ``power``).
    normalize : bool, optional
        Kaiser normalization (rows scaled to unit length while rotating). The default follows
        psych: True for varimax and promax, False for the others (GPArotation's defaults).
    eps : float
        Convergence tolerance: the projected gradient's Frobenius norm for gradient projection
        (GPArotation's 1e-5); for ``algorithm="psych"`` varimax, the relative gain of Kaiser's
        iteration (``stats::varimax``'s 1e-5).
    max_iter : int
    power : int
        Promax's power.
    algorithm : {"psych", "gpa"}
        ``"psych"`` (default): varimax (alone or inside promax) by ``stats::varimax``'s
        iteration, for parity with psych; every other criterion by gradient projection.
        ``"gpa"``: gradient projection for varimax too (converges to the stationary point).

    Returns
    -------
    Rotation
    """
    A = np.asarray(loadings, dtype=float)
    p, k = A.shape
    if method is not None and method not in ROTATIONS:
        raise ValueError(f"unknown rotation {method!r}; one of {', '.join(ROTATIONS)} or None")
    if algorithm not in ("psych", "gpa"):
        raise ValueError(f"algorithm must be 'psych' or 'gpa', got {algorithm!r}")
    if method is None or k < 2:
        eye = np.eye(k)
        return Rotation(A.copy(), eye, eye, False, float("nan"), 0, True)
    if normalize is None:
        normalize = method in ("varimax", "promax")
    scale = np.sqrt((A**2).sum(axis=1))[:, None] if normalize else np.ones((p, 1))
    An = A / np.where(scale > 0, scale, 1.0)
    if method == "promax":
        rot = _promax(An, power, eps, max_iter, algorithm)
        return replace(rot, loadings=rot.loadings * scale)
    vgq, oblique = CRITERIA[method]
    if method == "varimax" and algorithm == "psych":
        T, f, it, ok = _kaiser_varimax(An, eps, max_iter)
    else:
        T, f, it, ok = _gpa(An, vgq, oblique, eps, max_iter)
    if oblique:
        L = An @ np.linalg.inv(T).T
        phi = T.T @ T
    else:
        L, phi = An @ T, np.eye(k)
    return Rotation(L * scale, phi, T, oblique, f, it, ok)


def _promax(A: np.ndarray, power: int, eps: float, max_iter: int, algorithm: str) -> Rotation:
    """``stats::promax`` on (already normalized) loadings: varimax, then the least-squares fit
    ``A T U ~ Q`` to the target ``Q = L |L|^(power - 1)``, columns of U scaled so the factors
    have unit variance."""
    vm = rotate(A, "varimax", normalize=True, eps=eps, max_iter=max_iter, algorithm=algorithm)
    x = vm.loadings
    Q = x * np.abs(x) ** (power - 1)
    U = np.linalg.lstsq(x, Q, rcond=None)[0]
    U = U * np.sqrt(np.diag(np.linalg.inv(U.T @ U)))
    z = x @ U
    U = vm.rotmat @ U
    Ui = np.linalg.inv(U)
    return Rotation(z, Ui @ Ui.T, U, True, float("nan"), vm.n_iter, vm.converged)
