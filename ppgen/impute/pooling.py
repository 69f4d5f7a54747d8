"""Multiple imputation: pool analyses of completed tables with Rubin's rules.

Impute ``m`` completed tables with :meth:`ppgen.Fit.impute`, analyse each one as if it were
complete, then pool the ``m`` estimates and their variances::

    tables = fit.impute(df, n_imputations=20, seed=1)
    pooled = pool_fit(tables, "y ~ x1 + x2")     # statsmodels OLS on each table
    pooled.summary()                             # like mice's summary(pool(fit))

References
----------
Rubin, D. B. (1987). *Multiple Imputation for Nonresponse in Surveys*. Wiley.
Barnard, J. & Rubin, D. B. (1999). Small-sample degrees of freedom with multiple imputation.
*Biometrika* 86(4), 948-955.
van Buuren, S. (2018). *Flexible Imputation of Missing Data*, 2nd ed., sec. 2.3-2.4 and 5.2.
CRC Press.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["PooledEstimate", "pool", "pool_fit"]

#: mice's floor on lambda before computing degrees of freedom: keeps them finite when B = 0.
_LAMBDA_FLOOR = 1e-4


@dataclass(frozen=True, eq=False)
class PooledEstimate:
    """Rubin's rules applied to ``m`` analyses of multiply imputed data.

    Every attribute but ``m``, ``n_obs``, ``k`` and the ``*_cov`` matrices has shape (p,), one
    entry per estimand (p = 1 for a scalar estimand), following mice's ``pool()``.

    Attributes
    ----------
    names : list of str
        Estimand names (``params.index`` of the analyses, or ``"0"``, ``"1"``, ...).
    m : int
        Number of imputations.
    estimate : ndarray
        Pooled estimate Q-bar, the mean of the m estimates.
    within : ndarray
        Within-imputation variance U-bar, the mean of the m variances.
    between : ndarray
        Between-imputation variance B, the sample variance (ddof=1) of the m estimates.
    total : ndarray
        Total variance T = U-bar + (1 + 1/m) B.
    riv : ndarray
        Relative increase in variance due to nonresponse, r = (1 + 1/m) B / U-bar.
    lambda_ : ndarray
        Proportion of the total variance due to missingness, (1 + 1/m) B / T.
    df : ndarray
        Degrees of freedom: Barnard & Rubin (1999) when ``n_obs`` is given, else Rubin (1987).
    fmi : ndarray
        Fraction of missing information as mice reports it, (r + 2 / (df + 3)) / (r + 1).
    n_obs, k : int or None
        Complete-data sample size and number of parameters; the complete-data degrees of
        freedom are ``n_obs - k``.
    within_cov, between_cov, total_cov : ndarray
        The (p, p) matrices behind ``within``, ``between`` and ``total`` (``within_cov`` is
        diagonal when only variances were pooled).
    """

    names: list[str]
    m: int
    estimate: np.ndarray
    within: np.ndarray
    between: np.ndarray
    total: np.ndarray
    riv: np.ndarray
    lambda_: np.ndarray
    df: np.ndarray
    fmi: np.ndarray
    n_obs: int | None
    k: int | None
    within_cov: np.ndarray
    between_cov: np.ndarray
    total_cov: np.ndarray

    @property
    def std_error(self) -> np.ndarray:
        """sqrt(T)."""
        return np.sqrt(self.total)

    @property
    def statistic(self) -> np.ndarray:
        """Q-bar / sqrt(T), t-distributed with ``df`` degrees of freedom under Q = 0."""
        return self.estimate / self.std_error

    @property
    def p_value(self) -> np.ndarray:
        """Two-sided p-value of Q = 0 from the t distribution with ``df`` degrees of freedom."""
        return 2 * stats.t.sf(np.abs(self.statistic), self.df)

    @property
    def df_complete(self) -> float:
        """Complete-data degrees of freedom, ``n_obs - k`` (infinite when unknown)."""
        return _df_complete(self.n_obs, self.k)

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Confidence intervals Q-bar -/+ t_{df, 1 - alpha/2} sqrt(T), shape (p, 2)."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        half = stats.t.ppf(1 - alpha / 2, self.df) * self.std_error
        return np.column_stack([self.estimate - half, self.estimate + half])

    def summary(self, alpha: float | None = None) -> pd.DataFrame:
        """One row per estimand, the columns of mice's ``summary(pool(fit))`` plus fmi, lambda.

        With ``alpha``, adds the confidence limits (as mice's ``conf.int = TRUE``).
        """
        table = pd.DataFrame(
            {
                "estimate": self.estimate,
                "std.error": self.std_error,
                "statistic": self.statistic,
                "df": self.df,
                "p.value": self.p_value,
                "fmi": self.fmi,
                "lambda": self.lambda_,
            },
            index=pd.Index(self.names, name="term"),
        )
        if alpha is not None:
            ci = self.conf_int(alpha)
            table[f"{100 * alpha / 2:g} %"] = ci[:, 0]
            table[f"{100 * (1 - alpha / 2):g} %"] = ci[:, 1]
        return table


def _df_complete(n_obs: int | None, k: int | None) -> float:
    if n_obs is None:
        return np.inf
    return float(n_obs - (k or 0))


def pool(
    estimates: Any,
    variances: Any,
    *,
    n_obs: int | None = None,
    k: int | None = None,
    names: Sequence[str] | None = None,
) -> PooledEstimate:
    """Combine ``m`` estimates and their variances by Rubin's rules.

    Parameters
    ----------
    estimates : array-like, shape (m,) or (m, p)
        The estimate of a scalar (m,) or of p estimands (m, p) from each completed table.
    variances : array-like, shape (m,), (m, p) or (m, p, p)
        Their squared standard errors, or full covariance matrices.
    n_obs : int, optional
        Complete-data sample size. When given, the degrees of freedom are Barnard & Rubin's
        (1999) small-sample ones with complete-data degrees of freedom ``n_obs - k``; otherwise
        Rubin's (1987) ``(m - 1) / lambda^2``.
    k : int, optional
        Number of parameters of the complete-data analysis; default p.
    names : sequence of str, optional
        Estimand names.

    Returns
    -------
    PooledEstimate

    Notes
    -----
    As in mice, lambda is floored at 1e-4 when computing degrees of freedom, so they stay
    finite when the imputations agree (B = 0); ``lambda_`` itself is reported unfloored.
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    if q.ndim == 1:
        q = q[:, None]
        if u.ndim == 1:
            u = u[:, None]
    if q.ndim != 2:
        raise ValueError(f"estimates must have shape (m,) or (m, p), got {q.shape}")
    m, p = q.shape
    if m < 2:
        raise ValueError(f"pooling needs at least 2 imputations, got {m}")
    if u.shape == (m, p):
        u_cov = np.stack([np.diag(row) for row in u])
    elif u.shape == (m, p, p):
        u_cov = u
    else:
        raise ValueError(
            f"variances must have shape {(m, p)} (variances) or {(m, p, p)} (covariances) to "
            f"match estimates of shape {q.shape}; got {u.shape}"
        )
    if not (np.isfinite(q).all() and np.isfinite(u_cov).all()):
        raise ValueError("estimates and variances must be finite")
    within = np.diagonal(u_cov, axis1=1, axis2=2)
    if (within < 0).any():
        raise ValueError("variances must be non-negative")
    if names is None:
        names = [str(i) for i in range(p)]
    names = [str(n) for n in names]
    if len(names) != p:
        raise ValueError(f"got {len(names)} names for {p} estimands")
    if k is None:
        k = p
    if n_obs is not None and n_obs - k <= 0:
        raise ValueError(f"n_obs - k must be positive, got n_obs={n_obs}, k={k}")

    f = 1 + 1 / m
    estimate = q.mean(0)
    within_cov = u_cov.mean(0)
    between_cov = np.atleast_2d(np.cov(q, rowvar=False, ddof=1))
    total_cov = within_cov + f * between_cov
    ubar, b = np.diag(within_cov).copy(), np.diag(between_cov).copy()
    t = ubar + f * b
    with np.errstate(divide="ignore", invalid="ignore"):
        riv = f * b / ubar
        lam = f * b / t
    df = _barnard_rubin(m, np.maximum(lam, _LAMBDA_FLOOR), _df_complete(n_obs, k))
    fmi = (riv + 2 / (df + 3)) / (riv + 1)
    return PooledEstimate(
        names=names,
        m=m,
        estimate=estimate,
        within=ubar,
        between=b,
        total=t,
        riv=riv,
        lambda_=lam,
        df=df,
        fmi=fmi,
        n_obs=n_obs,
        k=k,
        within_cov=within_cov,
        between_cov=between_cov,
        total_cov=total_cov,
    )


def _barnard_rubin(m: int, lam: np.ndarray, df_com: float) -> np.ndarray:
    """Rubin's (m - 1) / lambda^2, combined with the observed-data df when df_com is finite."""
    df_old = (m - 1) / lam**2
    if not np.isfinite(df_com):
        return df_old
    df_obs = (df_com + 1) / (df_com + 3) * df_com * (1 - lam)
    return df_old * df_obs / (df_old + df_obs)


def pool_fit(
    imputations: Sequence[Any],
    fn: Callable[[Any], Any] | str,
    *,
    n_obs: int | None = None,
    k: int | None = None,
) -> PooledEstimate:
    """Fit an analysis to every completed table and pool the results by Rubin's rules.

    Parameters
    ----------
    imputations : sequence of tables
        The completed tables, e.g. from :meth:`ppgen.Fit.impute`.
    fn : callable or str
        ``fn(table)`` returns ``(params, cov)`` (estimates (p,) and their covariance (p, p) or
        variances (p,)) or a fitted statsmodels results object (its ``params`` and
        ``cov_params()``, or ``bse ** 2``). A string is an R-style formula fitted by ordinary
        least squares, ``statsmodels.formula.api.ols(fn, table).fit()``.
    n_obs, k : int, optional
        Complete-data sample size and number of parameters for Barnard-Rubin degrees of freedom.
        For statsmodels results the default ``n_obs`` is ``nobs`` and ``k`` is ``nobs - df_resid``
        (the residual degrees of freedom, as mice uses), when the results have them.

    Returns
    -------
    PooledEstimate
    """
    if isinstance(fn, str):
        formula = fn

        def fn(table: Any) -> Any:
            import statsmodels.formula.api as smf

            return smf.ols(formula, data=table).fit()

    if len(imputations) < 2:
        raise ValueError(f"pooling needs at least 2 imputations, got {len(imputations)}")
    estimates, covs, names = [], [], None
    for table in imputations:
        params, cov, info = _extract(fn(table))
        if names is None:
            names = info.pop("names")
            n_obs = info.get("n_obs") if n_obs is None else n_obs
            k = info.get("k") if k is None else k
        estimates.append(params)
        covs.append(cov)
    return pool(np.stack(estimates), np.stack(covs), n_obs=n_obs, k=k, names=names)


def _extract(result: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Estimates, their (co)variances, names and sizes from an analysis result."""
    info: dict[str, Any] = {}
    if isinstance(result, tuple) and len(result) == 2:
        params, cov = result
    elif hasattr(result, "params"):
        params = result.params
        if hasattr(result, "cov_params"):
            cov = result.cov_params()
        elif hasattr(result, "bse"):
            cov = np.asarray(result.bse, dtype=float) ** 2
        else:
            raise TypeError("the analysis result has params but neither cov_params() nor bse")
        nobs = getattr(result, "nobs", None)
        df_resid = getattr(result, "df_resid", None)
        if nobs is not None:
            info["n_obs"] = int(round(float(nobs)))
            if df_resid is not None and np.isfinite(df_resid):
                info["k"] = int(round(float(nobs) - float(df_resid)))
    else:
        raise TypeError(
            "fn must return (params, cov) or a fitted statsmodels results object; "
            f"got {type(result).__name__}"
        )
    info["names"] = [str(n) for n in params.index] if isinstance(params, pd.Series) else None
    params = np.atleast_1d(np.asarray(params, dtype=float))
    cov = np.asarray(cov, dtype=float)
    if cov.ndim == 0:
        cov = cov.reshape(1)
    return params, cov, info
