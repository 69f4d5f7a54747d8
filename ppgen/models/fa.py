"""Factor analysis: maximum likelihood (EM, missing entries exact) and minres, with rotations."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from scipy.optimize import minimize

from ppgen._utils import check_int, check_number
from ppgen.data.schema import Schema
from ppgen.models.base import GenerativeModel, Params
from ppgen.models.distributions import MaskedMultivariateNormal
from ppgen.models.ppca import sample_linear_gaussian
from ppgen.models.rotations import ROTATIONS, Rotation, rotate

__all__ = [
    "FactorAnalysis",
    "FactorSolution",
    "fit_correlation",
    "pairwise_moments",
    "psych_order",
]

#: Bounds of the uniquenesses (on the correlation scale) in the direct fits: psych's and
#: factanal's lower bound 0.005 keeps Heywood cases finite.
_PSI_BOUNDS = (0.005, 1.0)
FMS = ("ml", "minres")


class FactorAnalysis(GenerativeModel):
    r"""Factor analysis with diagonal noise and rotations (psych's ``fa`` in Python).

    Generative story (d columns, q factors, n rows)::

        loadings     ~ Normal(0, weight_scale^2)                 # (d, q): Lambda
        mean         ~ Normal(0, loc_scale^2)                    # (d,):   mu
        uniquenesses ~ InverseGamma(1, noise_prior)              # (d,):   diag of Psi
        for i in 1..n:
            z[i] ~ Normal(0, I_q)
            x[i] ~ Normal(Lambda z[i] + mu, Psi)

    so x[i] ~ N(mu, Lambda Lambda^T + Psi) with z integrated out (:meth:`collapsed`): the exact
    :meth:`log_prob`, where a row with missing entries scores the marginal of its observed
    coordinates. The priors are used only by the Pyro programs (``method="map"``, ``"svi"``,
    ``"nuts"``); they are weak and in units of the data's root mean column variance.

    *Estimators* (``fm``; ``ppgen.fit``'s default ``method="em"``):

    * ``"ml"`` (default): maximum likelihood. :meth:`init_params` starts from the direct
      maximization over the uniquenesses of the (pairwise-complete) correlation matrix
      (Joreskog 1967; R's ``factanal``, psych's ``fm="ml"``), rescaled to the data's units;
      :meth:`em_step` (Rubin & Thayer 1982) then maximizes the exact likelihood of the observed
      entries, so missing entries are marginalized, not filled in. On complete data the start
      is already the maximum and EM only confirms it.
    * ``"minres"``: psych's minimum residual (unweighted least squares) solution of the
      pairwise-complete correlation matrix, rescaled to the data's units; it is not a
      likelihood estimate, so :meth:`em_step` keeps it unchanged and ``log_prob`` scores it.

    ML is scale-free: the loadings of the data as given, divided by the model's standard
    deviations, are those of the correlation matrix. :meth:`solution` reports everything on
    that standardized scale, as psych does: rotated pattern and structure loadings, factor
    correlations, communalities, uniquenesses, psych's factor order and signs.

    Parameters
    ----------
    n_components : int
        Number of factors q.
    rotation : {"oblimin", "varimax", "quartimax", "geomin", "promax"} or None
        Rotation of the reported loadings (:mod:`ppgen.models.rotations`); the likelihood does
        not depend on it.
    fm : {"ml", "minres"}
        Estimator (see above).
    standardize : bool
        Model the columns scaled to unit variance instead of as given (the default, as psych
        and mclust fit the data on its own scale). The reported loadings are standardized
        either way.
    weight_scale, loc_scale, noise_prior : float
        Prior scales of the Pyro programs (see the generative story).

    References
    ----------
    Joreskog, K. G. (1967). Some contributions to maximum likelihood factor analysis.
    *Psychometrika* 32, 443-482.
    Rubin, D. B. & Thayer, D. T. (1982). EM algorithms for ML factor analysis. *Psychometrika*
    47, 69-76.
    Harman, H. H. & Jones, W. H. (1966). Factor analysis by minimizing residuals (minres).
    *Psychometrika* 31, 351-368.
    Revelle, W. (2022). psych: Procedures for psychological, psychometric, and personality
    research. R package 2.2.9 (``fa``, ``factor.stats``).
    """

    global_sites: ClassVar[tuple[str, ...]] = ("loadings", "mean", "uniquenesses")
    kinds_hint: ClassVar[str] = (
        "Factor analysis models continuous columns; code ordinal items as numbers (Likert "
        "scores are treated as continuous, as psych's fa on Pearson correlations does)."
    )
    label_arguments: ClassVar[int] = 2

    def __init__(
        self,
        n_components: int,
        *,
        rotation: str | None = "oblimin",
        fm: str = "ml",
        standardize: bool = False,
        weight_scale: float = 10.0,
        loc_scale: float = 10.0,
        noise_prior: float = 1e-3,
    ) -> None:
        super().__init__()
        self.n_components = check_int(n_components, "n_components")
        if rotation is not None and rotation not in ROTATIONS:
            raise ValueError(
                f"rotation must be one of {', '.join(ROTATIONS)} or None, got {rotation!r}"
            )
        if fm not in FMS:
            raise ValueError(f"fm must be one of {', '.join(FMS)}, got {fm!r}")
        self.rotation = rotation
        self.fm = fm
        self.standardize = bool(standardize)
        self.weight_scale = check_number(weight_scale, "weight_scale")
        self.loc_scale = check_number(loc_scale, "loc_scale")
        self.noise_prior = check_number(noise_prior, "noise_prior")
        #: The data's root mean column variance: the unit of the priors.
        self.unit = 1.0

    def config(self) -> dict[str, Any]:
        return {
            "n_components": self.n_components,
            "rotation": self.rotation,
            "fm": self.fm,
            "standardize": self.standardize,
            "weight_scale": self.weight_scale,
            "loc_scale": self.loc_scale,
            "noise_prior": self.noise_prior,
        }

    def build(self, schema: Schema) -> FactorAnalysis:
        super().build(schema)
        d, q = len(schema), self.n_components
        if q >= d:
            raise ValueError(
                f"FactorAnalysis needs n_components < number of columns ({d}), got {q}"
            )
        return self

    # -- Pyro programs --------------------------------------------------------------------------
    def priors(self, like: torch.Tensor) -> dict[str, dist.Distribution]:
        d, q = self._check_built(), self.n_components
        u = self.unit
        return {
            "loadings": dist.Normal(like.new_zeros(d, q), self.weight_scale * u).to_event(2),
            "mean": dist.Normal(like.new_zeros(d), self.loc_scale * u).to_event(1),
            "uniquenesses": dist.InverseGamma(
                like.new_ones(d), like.new_full((d,), self.noise_prior * u**2)
            ).to_event(1),
        }

    def _globals(self, like: torch.Tensor) -> Params:
        priors = self.priors(like)
        return {name: pyro.sample(name, priors[name]) for name in self.global_sites}

    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        g = self._globals(x)
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            z = pyro.sample(
                "z", dist.Normal(x.new_zeros(len(ind), self.n_components), 1.0).to_event(1)
            )
            like = dist.Normal(z @ g["loadings"].mT + g["mean"], g["uniquenesses"].sqrt())
            if mask is not None:
                like = like.mask(mask[ind])
            pyro.sample("x", like.to_event(1), obs=x[ind])

    def collapsed(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None):
        g = self._globals(x)
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            mb = None if mask is None else mask[ind]
            pyro.sample("x", self._marginal(g, mb), obs=x[ind])

    # -- closed forms -----------------------------------------------------------------------------
    @staticmethod
    def precision(params: Params) -> torch.Tensor:
        """(Lambda Lambda^T + Psi)^-1 by Woodbury: Psi^-1 - Psi^-1 Lambda M^-1 Lambda^T Psi^-1
        with M = I + Lambda^T Psi^-1 Lambda, a q x q solve."""
        L, psi = params["loadings"], params["uniquenesses"]
        Lp = L / psi.unsqueeze(-1)  # Psi^-1 Lambda
        M = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device) + L.mT @ Lp
        return torch.diag_embed(1 / psi) - Lp @ torch.linalg.solve(M, Lp.mT)

    def _marginal(self, params: Params, mask: torch.Tensor | None) -> MaskedMultivariateNormal:
        return MaskedMultivariateNormal(params["mean"], self.precision(params), mask)

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        return self._marginal(params, mask).log_prob(x)

    def posterior(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (n, q) and covariance (n, q, q) of p(z | observed entries of x), unrotated
        factors: ``S_i = (I + L_o^T Psi_o^-1 L_o)^-1``,
        ``m_i = S_i L_o^T Psi_o^-1 (x_o - mu_o)``."""
        L, mu, psi = params["loadings"], params["mean"], params["uniquenesses"]
        obs = x.new_ones(x.shape) if mask is None else mask.to(x.dtype)
        w = obs / psi  # Psi^-1 on observed entries, 0 on missing ones: (n, d)
        eye = torch.eye(self.n_components, dtype=x.dtype, device=x.device)
        M = eye + torch.einsum("jq,nj,jr->nqr", L, w, L)
        resid = torch.where(obs > 0, x - mu, x.new_zeros(()))
        rhs = ((resid * w) @ L).unsqueeze(-1)
        cov = torch.linalg.inv(M)
        return (cov @ rhs).squeeze(-1), cov

    def impute(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """One draw of the missing entries from p(x_missing | x_observed): z from its
        posterior, then ``Lambda z + mu + e`` (torch's global RNG; seed it first)."""
        if mask is None:
            return x.clone()
        m, S = self.posterior(x, mask, params)
        z = m + (torch.linalg.cholesky(S) @ torch.randn_like(m).unsqueeze(-1)).squeeze(-1)
        draw = z @ params["loadings"].mT + params["mean"]
        draw = draw + params["uniquenesses"].sqrt() * torch.randn_like(x)
        return torch.where(mask, x, draw)

    def em_step(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[Params, torch.Tensor]:
        """One EM iteration of maximum likelihood (``fm="ml"``), missing entries exact.

        E-step: each row's latent posterior given its observed entries (:meth:`posterior`).
        M-step (Rubin & Thayer 1982, with the mean estimated jointly and each column from the
        rows where it is observed): with ``zt = (z, 1)``, ``(Lambda_j, mu_j) = (sum_i x_ij
        E[zt])^T (sum_i E[zt zt^T])^-1`` and ``psi_j = mean_i E[(x_ij - Lambda_j z - mu_j)^2]``,
        sums over the rows i where column j is observed: the exact joint maximizer of the
        expected complete log-likelihood, so the log-likelihood never decreases.

        With ``fm="minres"`` the estimate is :meth:`init_params`'s and is returned unchanged.

        Returns
        -------
        params : dict
        log_likelihood : Tensor
            At the ``params`` given (before the step).
        """
        return self.em_update(self.em_statistics(x, mask, params), params)

    def em_statistics(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> dict[str, torch.Tensor]:
        """:meth:`em_step`'s E-step at ``params`` as sums over the rows (those of disjoint row
        sets add up: distributed and streamed EM): per column j over the rows where it is
        observed, the count ``n``, ``A = sum E[zt zt^T]``, ``b = sum x_ij E[zt]`` and
        ``sxx = sum x_ij^2``; and the log-likelihood ``log_lik``."""
        obs = x.new_ones(x.shape) if mask is None else mask.to(x.dtype)
        x0 = torch.where(obs > 0, x, x.new_zeros(()))
        stats = {"log_lik": self.log_prob(x0, mask, params).sum()}
        if self.fm != "ml":
            return stats
        m, S = self.posterior(x0, mask, params)
        n, q = m.shape
        mt = torch.cat([m, m.new_ones(n, 1)], dim=1)  # E[(z, 1)]
        second = mt.unsqueeze(-1) * mt.unsqueeze(-2)
        second[:, :q, :q] += S  # E[(z, 1)(z, 1)^T]
        stats["A"] = (obs.mT @ second.reshape(n, -1)).reshape(-1, q + 1, q + 1)  # (d, q+1, q+1)
        stats["b"] = (x0 * obs).mT @ mt  # (d, q+1)
        stats["sxx"] = (x0**2 * obs).sum(0)
        stats["n"] = obs.sum(0)
        return stats

    def em_update(
        self, stats: dict[str, torch.Tensor], params: Params
    ) -> tuple[Params, torch.Tensor]:
        """The M-step of :meth:`em_step` from :meth:`em_statistics` (summed over all rows), and
        the log-likelihood at ``params``."""
        log_lik = stats["log_lik"]
        if self.fm != "ml":
            return dict(params), log_lik
        A, b = stats["A"], stats["b"]
        q = A.shape[-1] - 1
        coef = torch.linalg.solve(A, b.unsqueeze(-1)).squeeze(-1)
        n_j = stats["n"].clamp_min(1)
        # E[(x - c zt)^2] summed = sum x^2 - 2 c.b + c A c; at the optimum c A = b^T.
        psi = (stats["sxx"] - (coef * b).sum(-1)) / n_j
        floor = 1e-6 * torch.clamp(stats["sxx"] / n_j, min=1e-12)
        new = {"loadings": coef[:, :q], "mean": coef[:, q], "uniquenesses": psi.clamp_min(floor)}
        return new, log_lik

    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        """The direct solution (``fm``) of the pairwise-complete correlation matrix, in the
        data's units: loadings ``D Lambda_R``, uniquenesses ``D^2 psi_R`` with D the columns'
        standard deviations (over their observed entries); means over the observed entries."""
        mean, sd, R = pairwise_moments(x.detach().double().cpu().numpy(), mask.cpu().numpy())
        unit = float(np.sqrt(np.mean(sd**2)))
        self.unit = unit if math.isfinite(unit) and unit > 0 else 1.0
        L, psi, _ = fit_correlation(R, self.n_components, self.fm)
        to = {"dtype": x.dtype, "device": x.device}
        return {
            "loadings": torch.as_tensor(L * sd[:, None], **to),
            "mean": torch.as_tensor(mean, **to),
            "uniquenesses": torch.as_tensor(psi * sd**2, **to),
        }

    def sample(self, n: int, params: Params) -> torch.Tensor:
        return sample_linear_gaussian(n, params["loadings"], params["mean"], params["uniquenesses"])

    def n_parameters(self) -> int:
        d, q = self._check_built(), self.n_components
        # Loadings up to rotation, uniquenesses and means (psych's dof + the d means).
        return d * q - q * (q - 1) // 2 + 2 * d

    def solution(self, params: Params, rotation: str | None | bool = True) -> FactorSolution:
        """The standardized, rotated solution as psych reports it.

        Loadings are divided by the model's standard deviations ``sqrt(diag(Lambda Lambda^T +
        Psi))`` (the correlation scale), rotated (``rotation=True``: the model's own; a name or
        None to choose another), and put in psych's order and signs (:func:`psych_order`).
        """
        rot_name = self.rotation if rotation is True else rotation
        L = params["loadings"].detach().double().cpu().numpy()
        psi = params["uniquenesses"].detach().double().cpu().numpy()
        sd = np.sqrt((L**2).sum(1) + psi)
        A = L / sd[:, None]
        rot = psych_order(rotate(A, rot_name))
        h2 = (rot.loadings @ rot.phi * rot.loadings).sum(1)
        # f = F z: the rotated factors as a map of the unrotated ones (P = A F^-1, Phi = F F^T)
        F_inv = np.linalg.lstsq(A, rot.loadings, rcond=None)[0]
        return FactorSolution(
            loadings=rot.loadings,
            phi=rot.phi,
            communalities=h2,
            uniquenesses=psi / sd**2,
            rotation=rot_name,
            oblique=rot.oblique,
            factor_map=np.linalg.inv(F_inv),
            sd=sd,
            converged=rot.converged,
        )

    def heywood(self, params: Params, threshold: float = 0.01) -> list[int]:
        """Columns whose standardized uniqueness is below ``threshold`` (a Heywood case: the
        factors explain a column entirely, ML at the boundary of the parameter space; psych
        warns, and a model selection should report the candidate as such)."""
        L, psi = params["loadings"], params["uniquenesses"]
        u2 = psi / ((L**2).sum(-1) + psi)
        return [int(j) for j in torch.nonzero(u2 < threshold).flatten()]

    def scores(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params, method: str = "regression"
    ) -> torch.Tensor:
        """Factor scores (n, q) of the rotated factors, each row from its observed entries.

        ``"regression"`` (Thurstone): the posterior mean E[f | x_o] under the model (for
        complete rows ``x Sigma^-1 S`` with S the structure loadings); ``"bartlett"``: the
        weighted least-squares ``(P^T Psi^-1 P)^-1 P^T Psi^-1 (x - mu)`` on the observed
        entries, P the pattern loadings in the data's units.
        """
        sol = self.solution(params)
        F = torch.as_tensor(sol.factor_map, dtype=x.dtype, device=x.device)
        if method == "regression":
            return self.posterior(x, mask, params)[0] @ F.mT
        if method != "bartlett":
            raise ValueError(f"method must be 'regression' or 'bartlett', got {method!r}")
        obs = x.new_ones(x.shape) if mask is None else mask.to(x.dtype)
        P = params["loadings"] @ torch.linalg.inv(F)  # pattern loadings in the data's units
        w = obs / params["uniquenesses"]
        M = torch.einsum("jq,nj,jr->nqr", P, w, P)
        resid = torch.where(obs > 0, x - params["mean"], x.new_zeros(()))
        return torch.linalg.solve(M, ((resid * w) @ P).unsqueeze(-1)).squeeze(-1)

    def describe_coords(self, schema: Schema) -> dict[str, tuple[tuple, ...]]:
        cols, q = tuple(schema.names), tuple(range(self.n_components))
        return {
            "loadings": (cols, q),
            "mean": (cols,),
            "uniquenesses": (cols,),
            "communalities": (cols,),
            "phi": (q, q),
        }

    def describe(self, params: Params, schema: Schema) -> Params:
        """Rotated standardized pattern loadings, factor correlations, communalities and
        uniquenesses (:meth:`solution`), and the mean on the encoded scale."""
        sol = self.solution(params)
        like = params["loadings"]
        as_t = lambda a: torch.as_tensor(a, dtype=like.dtype, device=like.device)  # noqa: E731
        return {
            "loadings": as_t(sol.loadings),
            "mean": params["mean"],
            "uniquenesses": as_t(sol.uniquenesses),
            "communalities": as_t(sol.communalities),
            "phi": as_t(sol.phi),
        }


@dataclass(frozen=True)
class FactorSolution:
    """A rotated factor solution on the correlation scale (psych's ``fa`` output).

    Attributes
    ----------
    loadings : ndarray (d, q)
        Pattern loadings.
    phi : ndarray (q, q)
        Factor correlations (identity for orthogonal rotations).
    communalities, uniquenesses : ndarray (d,)
        ``h2 = diag(P Phi P^T)`` and ``u2 = psi / sd^2`` (sum to 1 up to the fit's error).
    rotation : str or None
    oblique : bool
    factor_map : ndarray (q, q)
        ``F`` with rotated factors ``f = F z`` of the model's unrotated ones.
    sd : ndarray (d,)
        The model's standard deviations the loadings were divided by.
    converged : bool
        Whether the rotation converged.
    """

    loadings: np.ndarray
    phi: np.ndarray
    communalities: np.ndarray
    uniquenesses: np.ndarray
    rotation: str | None
    oblique: bool
    factor_map: np.ndarray
    sd: np.ndarray
    converged: bool

    @property
    def structure(self) -> np.ndarray:
        """Structure loadings ``P Phi``: correlations of the items with the factors."""
        return self.loadings @ self.phi

    @property
    def ss_loadings(self) -> np.ndarray:
        """Variance accounted for by each factor, ``diag(Phi P^T P)`` (psych's SS loadings)."""
        return np.diag(self.phi @ self.loadings.T @ self.loadings)


def psych_order(rot: Rotation) -> Rotation:
    """psych's ``fa`` order and signs: factors by decreasing ``diag(Phi L^T L)``, then each
    column's sign made positive in its sum (``Phi`` permuted and signed alike)."""
    L, phi = rot.loadings, rot.phi
    order = np.argsort(-np.diag(phi @ L.T @ L), kind="stable")
    L, phi = L[:, order], phi[np.ix_(order, order)]
    sign = np.sign(L.sum(0))
    sign[sign == 0] = 1
    return replace(rot, loadings=L * sign, phi=phi * np.outer(sign, sign))


def pairwise_moments(
    x: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means and standard deviations over each column's observed entries (divisor n_j),
    and the pairwise-complete correlation matrix (R's ``cor(use="pairwise")``: each pair's
    correlation from the rows where both are observed, with that pair's own means)."""
    o = np.isfinite(x) if mask is None else np.asarray(mask, dtype=bool) & np.isfinite(x)
    x0 = np.where(o, x, 0.0)
    of = o.astype(float)
    n_j = of.sum(0)
    if (n_j < 2).any():
        bad = np.flatnonzero(n_j < 2).tolist()
        raise ValueError(f"columns {bad} have fewer than 2 observed entries")
    mean = x0.sum(0) / n_j
    sd = np.sqrt((((x0 - mean) * of) ** 2).sum(0) / n_j)
    N = of.T @ of
    with np.errstate(invalid="ignore", divide="ignore"):
        s1 = x0.T @ of  # s1[j, k]: sum of x_j over rows where j and k are observed
        s2 = (x0**2).T @ of
        m_jk = s1 / N
        cov = x0.T @ x0 / N - m_jk * m_jk.T
        var = s2 / N - m_jk**2
        R = cov / np.sqrt(var * var.T)
    if not np.isfinite(R).all():
        raise ValueError("some pairs of columns have no rows observed together, or constant")
    np.fill_diagonal(R, 1.0)
    return mean, sd, R


def _smooth(R: np.ndarray) -> np.ndarray:
    """A positive definite correlation matrix near R (psych's ``cor.smooth``): eigenvalues
    below 1e-12 raised to it and the matrix rescaled to unit diagonal."""
    w, V = np.linalg.eigh(R)
    if w[0] > 1e-12:
        return R
    w = np.maximum(w, 1e-12)
    w = w * len(w) / w.sum()
    S = (V * w) @ V.T
    d = np.sqrt(np.diag(S))
    return S / np.outer(d, d)


def _top(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    w, V = np.linalg.eigh(S)
    return w[::-1], V[:, ::-1][:, :k]


def _minres(psi: np.ndarray, R: np.ndarray, k: int) -> tuple[float, np.ndarray, np.ndarray]:
    # ||R - Psi - L L^T||^2 with L the best rank-k fit of R - Psi; its gradient in psi.
    S = R - np.diag(psi)
    w, V = _top(S, k)
    L = V * np.sqrt(np.maximum(w[:k], 0))
    res = S - L @ L.T
    return float((res**2).sum()), -2 * np.diag(res), L


def _ml(psi: np.ndarray, R: np.ndarray, k: int) -> tuple[float, np.ndarray, np.ndarray]:
    # factanal's objective: sum over the smallest eigenvalues e of Psi^-1/2 R Psi^-1/2 of
    # e - log e - 1, and its gradient diag(L L^T + Psi - R) / psi^2.
    s = np.sqrt(psi)
    w, V = _top(R / np.outer(s, s), k)
    e = w[k:]
    f = float((e - np.log(e)).sum()) - (len(psi) - k)
    L = s[:, None] * V * np.sqrt(np.maximum(w[:k] - 1, 0))
    g = np.diag(L @ L.T + np.diag(psi) - R) / psi**2
    return f, g, L


def fit_correlation(R: np.ndarray, k: int, fm: str = "ml") -> tuple[np.ndarray, np.ndarray, Any]:
    """Direct factor analysis of a correlation matrix over the uniquenesses, as psych's ``fa``.

    ``fm="ml"`` minimizes the ML discrepancy ``tr(Sigma^-1 R) - log det(Sigma^-1 R) - p``
    (factanal's profile form); ``fm="minres"`` the squared residuals ``||R - Lambda
    Lambda^T||^2`` off the diagonal (unweighted least squares). Both by L-BFGS-B on the
    uniquenesses within [0.005, 1] to a tight tolerance, from psych's start
    ``(1 - k / 2p) / diag(R^-1)``; the loadings follow from the eigendecomposition of the
    reduced matrix.

    Returns
    -------
    loadings : ndarray (p, k)
        Unrotated.
    uniquenesses : ndarray (p,)
        ``1 - h2`` for minres (psych's ``u2``), the ML estimate for ml (which equals it unless
        a bound is active).
    result : scipy OptimizeResult
    """
    if fm not in FMS:
        raise ValueError(f"fm must be one of {', '.join(FMS)}, got {fm!r}")
    R = _smooth(np.asarray(R, dtype=float)) if fm == "ml" else np.asarray(R, dtype=float)
    p = R.shape[0]
    objective = _ml if fm == "ml" else _minres
    try:
        start = (1 - 0.5 * k / p) / np.diag(np.linalg.inv(R))
    except np.linalg.LinAlgError:
        start = np.full(p, 0.5)
    start = np.clip(start, *_PSI_BOUNDS)
    res = minimize(
        lambda v: objective(v, R, k)[:2],
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[_PSI_BOUNDS] * p,
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000},
    )
    if not res.success and "ABNORMAL" not in str(res.message):
        warnings.warn(f"factor analysis ({fm}) did not converge: {res.message}", stacklevel=2)
    L = objective(res.x, R, k)[2]
    psi = res.x if fm == "ml" else np.clip(1 - (L**2).sum(1), _PSI_BOUNDS[0], None)
    return L, psi, res
