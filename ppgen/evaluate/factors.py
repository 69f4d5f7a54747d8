"""Factor-analysis reports as psych gives them: fit indices, loadings tables, factor scores, and
the number-of-factors criteria (Horn's parallel analysis, Velicer's MAP).

Nothing here trains a :class:`ppgen.Fit`: :func:`factor_report` and :func:`factor_scores` read
a fitted :class:`ppgen.FactorAnalysis`; :func:`parallel_analysis` and :func:`velicer_map` work
on correlation matrices with the closed-form fits of :mod:`ppgen.models.fa`.

References
----------
Horn, J. L. (1965). A rationale and test for the number of factors in factor analysis.
*Psychometrika* 30, 179-185.
Revelle, W. & Rocklin, T. (1979). Very simple structure: an alternative procedure for
estimating the optimal number of interpretable factors. *Multivar. Behav. Res.* 14, 403-414.
Velicer, W. F. (1976). Determining the number of components from the matrix of partial
correlations. *Psychometrika* 41, 321-327.
Tucker, L. R. & Lewis, C. (1973). A reliability coefficient for maximum likelihood factor
analysis. *Psychometrika* 38, 1-10.
Revelle, W. (2022). psych 2.2.9: ``fa``, ``factor.stats``, ``fa.parallel``, ``VSS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ppgen.models.fa import FactorSolution, fit_correlation, pairwise_moments
from ppgen.models.rotations import rotate

__all__ = [
    "FactorReport",
    "FitIndices",
    "ParallelAnalysis",
    "VelicerMAP",
    "VerySimpleStructure",
    "factor_criteria",
    "factor_report",
    "factor_scores",
    "fit_indices",
    "parallel_analysis",
    "velicer_map",
    "very_simple_structure",
]


@dataclass(frozen=True)
class FitIndices:
    """psych's ``factor.stats`` fit indices of a k-factor solution.

    Attributes
    ----------
    objective : float
        ML discrepancy ``tr(M^-1 R) - log det(M^-1 R) - p`` of the model correlation matrix
        ``M`` (``P Phi P^T`` with unit diagonal) from the sample's ``R``.
    chi2 : float
        Bartlett-corrected chi-square ``objective * (n - 1 - (2p + 5)/6 - 2k/3)``.
    dof : int
        ``p(p - 1)/2 - p k + k(k - 1)/2``.
    bic : float
        psych's BIC, chi-square based: ``chi2 - dof log n`` (lower is better; it compares the
        model with the saturated one, so it is not ``Fit.bic``, which is ``-2 loglik + n_par
        log n`` of the data).
    tli : float
        Tucker-Lewis index against the independence model.
    rmsea : float
        ``sqrt(max(chi2 / (dof n) - 1 / (n - 1), 0))``, psych's formula.
    null_chi2, null_dof : float, int
        The independence model's chi-square (``-log det R`` times the same Bartlett factor,
        as psych computes it) and degrees of freedom.
    n : int
        Number of observations used.
    """

    objective: float
    chi2: float
    dof: int
    bic: float
    tli: float
    rmsea: float
    null_chi2: float
    null_dof: int
    n: int


def fit_indices(R: np.ndarray, loadings: np.ndarray, phi: np.ndarray | None, n: int) -> FitIndices:
    """Fit indices of a factor solution of the correlation matrix ``R`` from ``n`` rows, by
    psych's ``factor.stats`` formulas (RMSEA: ``sqrt(max(chi2 / (dof n) - 1 / (n - 1), 0))``;
    TLI: ``(chi0/df0 - chi2/dof) / (chi0/df0 - 1)``), which reproduce psych 2.2.9's printed
    chi-square, BIC, TLI and RMSEA of BFI to their printed digits."""
    R = np.asarray(R, dtype=float)
    L = np.asarray(loadings, dtype=float)
    p, k = L.shape
    phi = np.eye(k) if phi is None else np.asarray(phi, dtype=float)
    model = L @ phi @ L.T
    np.fill_diagonal(model, np.diag(R))
    m_inv_r = np.linalg.solve(model, R)
    objective = float(np.trace(m_inv_r) - np.linalg.slogdet(m_inv_r)[1] - p)
    dof = p * (p - 1) // 2 - p * k + k * (k - 1) // 2
    # Bartlett's correction; psych applies the k-factor one to the null model too.
    bartlett = (n - 1) - (2 * p + 5) / 6 - 2 * k / 3
    chi2 = objective * bartlett
    null_dof = p * (p - 1) // 2
    null_chi2 = float(np.trace(R) - np.linalg.slogdet(R)[1] - p) * bartlett
    ratio0 = null_chi2 / null_dof
    tli = (ratio0 - chi2 / dof) / (ratio0 - 1) if dof > 0 else math.nan
    rmsea = math.sqrt(max(chi2 / (dof * n) - 1 / (n - 1), 0.0)) if dof > 0 else math.nan
    return FitIndices(
        objective=objective,
        chi2=chi2,
        dof=dof,
        bic=chi2 - dof * math.log(n),
        tli=tli,
        rmsea=rmsea,
        null_chi2=null_chi2,
        null_dof=null_dof,
        n=int(n),
    )


@dataclass(frozen=True)
class FactorReport:
    """A fitted factor analysis reported as psych's ``fa`` prints it.

    Attributes
    ----------
    solution : FactorSolution
        Rotated standardized loadings, factor correlations, communalities, uniquenesses.
    indices : FitIndices
        Against the data's pairwise-complete correlation matrix and its number of rows.
    loadings : DataFrame
        Pattern loadings, items by factors (``F1 ... Fq`` in psych's order).
    """

    solution: FactorSolution
    indices: FitIndices
    loadings: pd.DataFrame

    @property
    def phi(self) -> pd.DataFrame:
        """Factor correlations."""
        cols = self.loadings.columns
        return pd.DataFrame(self.solution.phi, index=cols, columns=cols)

    @property
    def structure(self) -> pd.DataFrame:
        """Structure loadings (item-factor correlations)."""
        return pd.DataFrame(
            self.solution.structure, index=self.loadings.index, columns=self.loadings.columns
        )

    def table(self) -> pd.DataFrame:
        """Loadings with communalities ``h2`` and uniquenesses ``u2``, as psych prints them."""
        return self.loadings.assign(h2=self.solution.communalities, u2=self.solution.uniquenesses)


def _check_fa(fit: Any) -> None:
    from ppgen.models.fa import FactorAnalysis

    if not isinstance(fit.model, FactorAnalysis) or fit.kind != "point":
        raise ValueError("needs a point fit of ppgen.FactorAnalysis (method 'em' or 'map')")


def factor_report(fit: Any, data: Any, rotation: str | None | bool = True) -> FactorReport:
    """The rotated solution of a fitted :class:`ppgen.FactorAnalysis` and its fit indices.

    The indices compare the model with the pairwise-complete correlation matrix of ``data``
    and its number of rows, as psych's ``fa`` does on raw data with missing entries.

    Parameters
    ----------
    fit : Fit
        A point fit of ``FactorAnalysis``.
    data : DataFrame or array
        The data (usually the training data).
    rotation : str, None or True
        True: the model's rotation; a name or None for another.
    """
    _check_fa(fit)
    enc = fit.encode(data)
    x = enc.x.detach().double().cpu().numpy()
    _, _, R = pairwise_moments(x, enc.mask.cpu().numpy())
    sol = fit.model.solution(fit.params, rotation)
    names = [f"F{i + 1}" for i in range(sol.loadings.shape[1])]
    loadings = pd.DataFrame(sol.loadings, index=list(fit.schema.names), columns=names)
    indices = fit_indices(R, sol.loadings, sol.phi, x.shape[0])
    return FactorReport(solution=sol, indices=indices, loadings=loadings)


def factor_scores(fit: Any, data: Any, method: str = "regression") -> pd.DataFrame:
    """Scores of the rotated factors for each row (``F1 ... Fq``, psych's order), from each
    row's observed entries: ``"regression"`` (Thurstone; the posterior mean under the model) or
    ``"bartlett"`` (:meth:`ppgen.FactorAnalysis.scores`)."""
    _check_fa(fit)
    enc = fit.encode(data)
    s = fit.model.scores(enc.x, enc.mask, fit.params, method).detach().cpu().numpy()
    index = data.index if isinstance(data, pd.DataFrame) else None
    return pd.DataFrame(s, columns=[f"F{i + 1}" for i in range(s.shape[1])], index=index)


def _correlation(data: Any) -> tuple[np.ndarray, int]:
    x = np.asarray(data.to_numpy(dtype=float) if isinstance(data, pd.DataFrame) else data, float)
    if x.ndim != 2 or x.shape[1] < 3:
        raise ValueError(f"need a table of at least 3 numeric columns, got shape {x.shape}")
    return pairwise_moments(x)[2], x.shape[0]


def _fa_values(R: np.ndarray, fm: str) -> np.ndarray:
    """Eigenvalues of the reduced correlation matrix ``R - diag(u2)`` of a one-factor fit
    (psych's ``fa(R)$values``, the "principal factor" eigenvalues of ``fa.parallel``)."""
    L, _, _ = fit_correlation(R, 1, fm)
    return np.linalg.eigvalsh(R - np.diag(1 - (L**2).sum(1)))[::-1]


@dataclass(frozen=True)
class ParallelAnalysis:
    """Horn's parallel analysis on factor eigenvalues.

    Attributes
    ----------
    n_factors : int
        Leading observed eigenvalues above the simulated reference before the first that is not.
    observed, simulated : ndarray (p,)
        Observed eigenvalues and the reference (the ``quantile`` of the simulated ones).
    simulated_mean : ndarray (p,)
    """

    n_factors: int
    observed: np.ndarray
    simulated: np.ndarray
    simulated_mean: np.ndarray


def parallel_analysis(
    data: Any,
    *,
    fm: str = "minres",
    n_iter: int = 20,
    quantile: float = 0.95,
    seed: int = 0,
) -> ParallelAnalysis:
    """Horn's parallel analysis as psych's ``fa.parallel(fa="fa")``.

    The eigenvalues of the reduced correlation matrix of a one-factor ``fm`` fit of the data
    (pairwise-complete correlations) are compared with the ``quantile`` of the same eigenvalues
    of ``n_iter`` standard normal tables of the data's shape; the number of factors is the count
    of leading observed values above them. Seeded (psych's differs by its random draws).
    """
    R, n = _correlation(data)
    p = R.shape[0]
    rng = np.random.default_rng(seed)
    observed = _fa_values(R, fm)
    sims = np.empty((n_iter, p))
    for i in range(n_iter):
        z = rng.standard_normal((n, p))
        sims[i] = _fa_values(np.corrcoef(z, rowvar=False), fm)
    ref = np.quantile(sims, quantile, axis=0)
    above = observed > ref
    n_factors = int(p if above.all() else np.argmin(above))
    return ParallelAnalysis(n_factors, observed, ref, sims.mean(0))


@dataclass(frozen=True)
class VelicerMAP:
    """Velicer's minimum average partial.

    Attributes
    ----------
    n_factors : int
        The number of components with the smallest average squared partial correlation.
    values : ndarray (max_factors,)
        The average squared partial correlation after removing 1, 2, ... components.
    """

    n_factors: int
    values: np.ndarray


def velicer_map(data: Any, max_factors: int = 8) -> VelicerMAP:
    """Velicer's MAP as psych's ``VSS``: for m = 1..max_factors, partial out the first m
    principal components of the (pairwise-complete) correlation matrix and average the squared
    off-diagonal partial correlations; the minimum picks the number of factors."""
    R, _ = _correlation(data)
    p = R.shape[0]
    if not 1 <= max_factors < p:
        raise ValueError(f"max_factors must be in 1..{p - 1}, got {max_factors}")
    w, V = np.linalg.eigh(R)
    w, V = w[::-1], V[:, ::-1]
    values = np.empty(max_factors)
    for m in range(1, max_factors + 1):
        A = V[:, :m] * np.sqrt(w[:m])
        C = R - A @ A.T
        d = 1 / np.sqrt(np.diag(C))
        partial = C * np.outer(d, d)
        np.fill_diagonal(partial, 0)
        values[m - 1] = (partial**2).sum() / (p * (p - 1))
    return VelicerMAP(int(np.argmin(values)) + 1, values)


@dataclass(frozen=True)
class VerySimpleStructure:
    """Revelle & Rocklin's very simple structure.

    Attributes
    ----------
    n_factors : dict
        Complexity (1, 2) -> the number of factors with the highest fit.
    values : ndarray (max_factors, 2)
        Fit of the complexity-1 and complexity-2 simplified loadings for 1..max_factors
        factors (complexity 2 with one factor is nan; psych prints 0).
    """

    n_factors: dict[int, int]
    values: np.ndarray


def very_simple_structure(
    data: Any, max_factors: int = 8, *, rotation: str = "oblimin", fm: str = "minres"
) -> VerySimpleStructure:
    """Very simple structure as psych's ``VSS`` (default ``diagonal=FALSE``): for k factors
    (``fm`` fit of the pairwise-complete correlations, rotated), keep each item's ``c`` largest
    loadings, and measure ``1 - ||R - S S^T||^2 / ||R||^2`` (psych's VSS ignores the factor
    correlations here: ``S S^T``, as its printed values show)."""
    R, _ = _correlation(data)
    p = R.shape[0]
    if not 1 <= max_factors < p:
        raise ValueError(f"max_factors must be in 1..{p - 1}, got {max_factors}")
    total = float((R**2).sum())
    values = np.full((max_factors, 2), np.nan)
    rows = np.arange(p)[:, None]
    for k in range(1, max_factors + 1):
        L = fit_correlation(R, k, fm)[0]
        P = rotate(L, rotation if k > 1 else None).loadings
        for c in (1, 2):
            if c > k:
                continue
            keep = np.argsort(-np.abs(P), axis=1)[:, :c]
            S = np.zeros_like(P)
            S[rows, keep] = P[rows, keep]
            values[k - 1, c - 1] = 1 - float(((R - S @ S.T) ** 2).sum()) / total
    best = {c: int(np.nanargmax(values[:, c - 1])) + 1 for c in (1, 2)}
    return VerySimpleStructure(best, values)


def factor_criteria(
    data: Any,
    max_factors: int = 8,
    *,
    fm: str = "minres",
    rotation: str = "oblimin",
    n_iter: int = 20,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Every number-of-factors criterion psych reports, for 1..max_factors factors.

    Returns
    -------
    table : DataFrame indexed by the number of factors
        ``map`` (Velicer), ``vss1``/``vss2`` (very simple structure), ``dof``, ``chi2``,
        ``bic`` (psych's chi-square BIC, ``chi2 - dof log n``: lower is better), ``rmsea``,
        ``tli`` of the unrotated ``fm`` fit of the pairwise-complete correlations (``n`` = rows),
        and the parallel-analysis eigenvalues ``fa_eigen`` / ``fa_eigen_simulated``.
    picks : dict
        The number of factors each criterion picks (``parallel``, ``map``, ``vss1``, ``vss2``,
        ``bic``); they often disagree (BFI: 6, 5, 4, 4, 8).
    """
    R, n = _correlation(data)
    velicer = velicer_map(data, max_factors)
    vss = very_simple_structure(data, max_factors, rotation=rotation, fm=fm)
    pa = parallel_analysis(data, fm=fm, n_iter=n_iter, seed=seed)
    rows = []
    for k in range(1, max_factors + 1):
        L = fit_correlation(R, k, fm)[0]
        ind = fit_indices(R, L, None, n)
        rows.append({"dof": ind.dof, "chi2": ind.chi2, "bic": ind.bic, "rmsea": ind.rmsea,
                     "tli": ind.tli})  # fmt: skip
    table = pd.DataFrame(rows, index=pd.RangeIndex(1, max_factors + 1, name="factors"))
    table.insert(0, "vss2", vss.values[:, 1])
    table.insert(0, "vss1", vss.values[:, 0])
    table.insert(0, "map", velicer.values)
    table["fa_eigen"] = pa.observed[:max_factors]
    table["fa_eigen_simulated"] = pa.simulated[:max_factors]
    picks = {
        "parallel": pa.n_factors,
        "map": velicer.n_factors,
        "vss1": vss.n_factors[1],
        "vss2": vss.n_factors[2],
        "bic": int(table["bic"].idxmin()),
    }
    return table, picks
