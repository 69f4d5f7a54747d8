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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ppgen._utils import progress_bar

__all__ = ["Imputer", "PooledEstimate", "pool", "pool_fit"]

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


# -- the Imputer --------------------------------------------------------------------------------

#: Model names accepted by :class:`Imputer` (short names in ppgen.models.MODELS), and the
#: default options of each beyond the model's own: a function of the number of columns.
_MODEL_DEFAULTS: dict[str, Callable[[int], dict[str, Any]]] = {
    "gmm": lambda d: {"n_components": 2},
    "ppca": lambda d: {"n_components": max(1, min(2, d - 1))},
    "vae": lambda d: {},
}
_MODEL_NAMES = tuple(_MODEL_DEFAULTS)
_FORMATS = ("wide", "long")


class Imputer:
    """Multiple imputation with a generative model, as a scikit-learn style transformer.

    ``fit`` fits the model once to a table with missing values; ``transform`` returns ``m``
    completed copies of a table, each drawn from the model's conditional distribution of the
    missing entries given the observed ones (:meth:`ppgen.Fit.impute`). Observed entries, column
    order, the row index and column dtypes are those of the input, exactly.

    Parameters
    ----------
    model : {"gmm", "ppca", "vae"} or GenerativeModel, default "gmm"
        ``"gmm"`` is :class:`ppgen.GaussianMixture`, ``"ppca"`` is :class:`ppgen.PPCA`,
        ``"vae"`` is :class:`ppgen.VAE` (fitted by minibatch SVI of its networks on MIWAE's
        importance-weighted bound, ``objective="iwae"`` with ``num_particles=20`` unless
        ``fit_options`` say otherwise; its tables are MIWAE draws given the fitted networks, so
        they carry the uncertainty of the missing values but not that of the networks), built
        with ``**model_options``; or an unfitted model instance (then ``model_options`` must
        be empty).
    n_imputations : int, default 20
        Number ``m`` of completed tables. With ``n_imputations=1`` :meth:`transform` returns one
        table of the input's type, so the imputer drops into a scikit-learn ``Pipeline``.
    seed : int, default 0
        Seed of the fit and of the imputations: ``transform`` of the same data gives the same
        tables.
    method : {"svi", "nuts", "map", "em"}, default "svi"
        How :func:`ppgen.fit` fits the model. The default ``"svi"`` with a full-rank Gaussian
        guide (``guide="mvn"``) gives posterior draws of the parameters, so every completed
        table uses its own parameter value and Rubin's rules give honest intervals: *proper*
        multiple imputation, in seconds on tables of a few hundred rows. ``"nuts"`` is proper
        too and exact in the limit but ten to a hundred times slower; ``"map"`` and ``"em"``
        plug one estimate into every table (*improper*: pooled intervals somewhat too narrow),
        fine for single imputation or a quick look -- or proper with ``proper="bootstrap"``.
    proper : {None, "bootstrap"}, default None
        ``"bootstrap"`` (with ``method="map"`` or ``"em"``) makes point fits proper: table
        ``j`` is drawn under the parameters refitted to a bootstrap resample of the rows (drawn
        with replacement, missing entries and all), each refit started from the fit to the
        whole table. The spread of the m refits stands in for the posterior of the parameters
        (Rubin & Schenker 1986's approximate Bayesian bootstrap, in its parametric form; Little
        & Rubin 2002, sec. 10.2.3). Costs m extra fits, usually a few EM steps each.
    kinds : dict of str to str, optional
        Override inferred column kinds (see :meth:`ppgen.Schema.infer`), e.g.
        ``{"Month": "continuous"}`` for an integer column a Gaussian model should treat as
        continuous; its dtype is still restored in the output. Kinds that keep the support
        (``"positive"``, ``"bounded:0:100"``, ``"binomial:16"``, ``"ordinal"``) change the model
        itself (see :mod:`ppgen.data`).
    support : {"truncate", "pmm", None}, default "truncate"
        How imputations keep a column's support. A column modelled as continuous whose
        observed values are all >= 0 has support ``[0, inf)`` (declared positive, bounded,
        count and binomial columns keep theirs by their model). ``"truncate"`` draws such a
        column's missing entries from the model's conditional distribution truncated to the
        support, by rejection: a row whose draw leaves the support is drawn again, under the
        same parameter draw, until it is inside (an exact draw from the truncated conditional
        of the row's missing block -- not clipping, not the observed min-max; after 200 rounds
        the few remaining cells take the nearest observed value, with a warning). ``"pmm"``:
        predictive mean matching in its draw-matching form -- every imputed value of a
        continuous column is replaced by one of the 5 observed values closest to it, picked at
        random (imputations are always observed values, as with mice's default). ``None``: the
        model's draws as they are, as :meth:`ppgen.Fit.impute` gives them. Every table keeps its
        own parameter draw, so the imputation stays proper.
    fit_options : dict, optional
        Further options of :func:`ppgen.fit` (``max_steps``, ``num_samples``, ``guide``, ...).
        ``progress`` (default None: only when stderr is a terminal, as :func:`ppgen.fit`)
        shows the fit's bar and, with ``proper="bootstrap"``, one bar over the m refits.
    **model_options
        Options of the model, e.g. ``n_components`` (default 2 for ``"gmm"``, and
        ``min(2, d - 1)`` for ``"ppca"`` on ``d`` columns) or ``covariance_type``.

    Attributes
    ----------
    fit_ : Fit
        The fitted model (after :meth:`fit`).
    bootstrap_fits_ : list of Fit
        With ``proper="bootstrap"``, the m refits to bootstrap resamples (else empty).
    columns_ : list of str
        The columns seen by :meth:`fit`, in order.
    constant_ : dict
        Columns left out of the model because they have a single distinct observed value, and
        that value (see Notes).
    support_ : dict
        Column name -> ``(low, high)``: the support that ``support="truncate"`` keeps.

    Notes
    -----
    Bad input raises a ``ValueError`` that names the column: an all-missing column, text in a
    column that otherwise holds numbers (convert such entries to NaN first, e.g. with
    ``pd.to_numeric(errors="coerce")``), a category at ``transform`` that ``fit`` never saw, or
    columns that differ from the fitted ones. Columns of a kind the model does not handle get
    the model's own error. A column whose observed values are all equal -- in particular one
    with a single observed value -- carries no information on its spread or its relation to
    the other columns: it is left out of the model with a ``UserWarning``, and its missing
    entries are imputed with that value.

    Examples
    --------
    >>> import ppgen
    >>> df = ppgen.datasets.load("airquality")[["Ozone", "Solar.R", "Wind", "Temp"]]
    >>> imp = ppgen.Imputer("gmm", n_imputations=5, method="map", seed=0).fit(df)
    >>> tables = imp.transform(df)                   # 5 completed DataFrames
    >>> long = imp.transform(df, format="long")      # one DataFrame with .imp and .id, as mice
    >>> pooled = pool_fit(tables, "Ozone ~ Wind + Temp")
    """

    def __init__(
        self,
        model: Any = "gmm",
        n_imputations: int = 20,
        seed: int = 0,
        method: str = "svi",
        kinds: dict[str, str] | None = None,
        fit_options: dict[str, Any] | None = None,
        proper: str | None = None,
        support: str | None = "truncate",
        **model_options: Any,
    ) -> None:
        self.model = model
        self.n_imputations = n_imputations
        self.seed = seed
        self.method = method
        self.proper = proper
        self.support = support
        self.kinds = kinds
        self.fit_options = fit_options
        self.model_options = dict(model_options)

    # -- scikit-learn protocol ------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this imputer, model options included (scikit-learn's protocol)."""
        params = {
            "model": self.model,
            "n_imputations": self.n_imputations,
            "seed": self.seed,
            "method": self.method,
            "kinds": self.kinds,
            "fit_options": self.fit_options,
            "proper": self.proper,
            "support": self.support,
        }
        params.update(self.model_options)
        return params

    def set_params(self, **params: Any) -> Imputer:
        """Set parameters (model options included); returns ``self``."""
        fixed = (
            "model", "n_imputations", "seed", "method", "kinds", "fit_options", "proper",
            "support",
        )  # fmt: skip
        for name, value in params.items():
            if name in fixed:
                setattr(self, name, value)
            else:
                self.model_options[name] = value
        return self

    def __repr__(self) -> str:
        defaults = Imputer().get_params()
        shown = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if k not in defaults or v is not defaults[k] and v != defaults[k]
        ]
        return f"Imputer({', '.join(shown)})"

    # -- fitting --------------------------------------------------------------------------------
    def _build_model(self, n_columns: int) -> Any:
        from ppgen.models import MODELS, GenerativeModel

        if isinstance(self.model, GenerativeModel):
            if self.model_options:
                raise ValueError(
                    "model options "
                    f"{sorted(self.model_options)} apply to a model name, not to a model instance"
                )
            return self.model
        if self.model not in _MODEL_NAMES:
            raise ValueError(
                f"model must be one of {_MODEL_NAMES} or a GenerativeModel, got {self.model!r}"
            )
        options = {**_MODEL_DEFAULTS[self.model](n_columns), **self.model_options}
        return MODELS.lookup(self.model)(**options)

    def fit(self, X: Any, y: Any = None) -> Imputer:
        """Fit the model to ``X`` (missing entries as NaN); ``y`` is ignored.

        Parameters
        ----------
        X : DataFrame, ndarray or Tensor
            Rows are observations.
        y : ignored

        Returns
        -------
        Imputer
            ``self``.
        """
        import warnings

        from ppgen.infer import engine, fit

        m = self.n_imputations
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"n_imputations must be a positive integer, got {m!r}")
        if self.proper not in (None, "bootstrap"):
            raise ValueError(f"proper must be None or 'bootstrap', got {self.proper!r}")
        if self.support not in _SUPPORTS:
            raise ValueError(f"support must be one of {_SUPPORTS}, got {self.support!r}")
        if self.proper == "bootstrap" and engine.get(self.method).kind != "point":
            raise ValueError(
                f"proper='bootstrap' refits point estimates (method='map' or 'em'); "
                f"method={self.method!r} already draws parameters from its posterior"
            )
        frame, _ = _as_frame(X)
        if frame.shape[0] == 0 or frame.shape[1] == 0:
            raise ValueError(f"X is empty (shape {frame.shape})")
        constant: dict[str, Any] = {}
        for name in frame.columns:
            values = frame[name]
            _check_text_in_numbers(name, values)
            observed = values.dropna()
            if observed.empty:
                raise ValueError(
                    f"column {name!r} is entirely missing: there is nothing to impute it from; "
                    "drop it"
                )
            if observed.nunique() == 1:
                value = observed.iloc[0]
                warnings.warn(
                    f"column {name!r} has a single distinct observed value ({value!r}, "
                    f"{len(observed)} of {len(values)} rows observed): it is left out of the "
                    "model and its missing entries are imputed with that value",
                    UserWarning,
                    stacklevel=2,
                )
                constant[name] = value
        modelled = [c for c in frame.columns if c not in constant]
        if not modelled:
            raise ValueError("every column is constant: there is nothing to model")
        self.columns_ = list(frame.columns)
        self.dtypes_ = frame.dtypes.to_dict()
        self.constant_ = constant
        self.modelled_ = modelled
        self.categories_ = {
            c: set(frame[c].dropna().unique())
            for c in frame.columns
            if not pd.api.types.is_numeric_dtype(frame[c].dtype)
        }
        options = dict(self.fit_options or {})
        # Amortized models (VAE) train their networks and have no guide over global sites.
        spec = self._build_model(len(modelled))  # fit() copies it: reusable for the refits
        if engine.resolve(self.method, spec).kind == "draws":
            # A full-rank Gaussian over the global sites (the default guide is mean-field).
            options.setdefault("guide", "mvn")
        if self.model == "vae" and options.setdefault("objective", "iwae") == "iwae":
            # MIWAE's objective imputes better than the ELBO: on breast_cancer with 20% MCAR,
            # held-out RMSE 0.48-0.52 against 0.51-0.56 over three seeds (tests/models/test_vae.py).
            options.setdefault("num_particles", 20)
        progress = options.pop("progress", None)  # as ppgen.fit: a bar on a terminal only
        kinds = {k: v for k, v in (self.kinds or {}).items() if k in modelled} or None
        self.fit_ = fit(
            spec,
            frame[modelled],
            method=self.method,
            seed=int(self.seed),
            kinds=kinds,
            progress=progress,
            **options,
        )
        self.support_, self.donors_ = _supports(self.fit_.schema, frame[modelled])
        self.bootstrap_fits_ = []
        if self.proper == "bootstrap":
            table = frame[modelled].reset_index(drop=True)
            rng = np.random.default_rng(int(self.seed))
            # The refits' own bars stay quiet: one bar over the m refits says how far along.
            bar = progress_bar(m, "bootstrap refits", progress)
            for j in range(m):
                rows = rng.integers(0, len(table), size=len(table))
                self.bootstrap_fits_.append(
                    fit(
                        spec,
                        table.iloc[rows],
                        method=self.method,
                        seed=int(self.seed) + 1 + j,
                        schema=self.fit_.schema,
                        progress=False,
                        **{**options, "init_values": self.fit_.params},
                    )
                )
                bar.update()
            bar.close()
        return self

    # -- imputing -------------------------------------------------------------------------------
    def transform(self, X: Any, *, format: str = "wide", seed: int | None = None) -> Any:
        """Completed copies of ``X``.

        Parameters
        ----------
        X : DataFrame, ndarray or Tensor
            A table with the fitted columns (a DataFrame's in any order).
        format : {"wide", "long"}, default "wide"
            ``"wide"``: a list of ``n_imputations`` tables of the input's type -- or, when
            ``n_imputations == 1``, that one table itself (the scikit-learn transformer
            contract). ``"long"``: one DataFrame stacking the input (``.imp`` = 0, missing
            entries still NaN) and the ``m`` completed tables (``.imp`` = 1, ..., m), with
            ``.id`` the row label of the input (its index for a DataFrame, else the row
            number) -- mice's ``complete(imp, "long", include = TRUE)``.
        seed : int, optional
            Seed of the imputations; default the imputer's ``seed``.

        Returns
        -------
        list of tables, one table, or DataFrame
        """
        if format not in _FORMATS:
            raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
        if not hasattr(self, "fit_"):
            raise ValueError("this Imputer is not fitted yet: call fit(X) first")
        frame, kind = _as_frame(X)
        frame = self._conform(frame)
        m = int(self.n_imputations)
        seed = int(self.seed if seed is None else seed)
        modelled = frame[self.modelled_]
        if modelled.isna().to_numpy().any():
            plain = _plain_floats(modelled)
            completed = self._draw(plain, seed)
            if self.support == "truncate":
                completed = self._truncate(plain, completed, seed)
            elif self.support == "pmm":
                completed = self._match(plain, completed, seed, list(self.donors_))
        else:
            completed = [modelled] * m
        tables = [self._assemble(frame, part) for part in completed]
        if format == "long":
            ids = frame.index if kind == "dataframe" else pd.RangeIndex(len(frame))
            parts = []
            for j, table in enumerate([frame, *tables]):
                part = table.reset_index(drop=True)
                part.insert(0, ".id", np.asarray(ids))
                part.insert(0, ".imp", j)
                parts.append(part)
            return pd.concat(parts, ignore_index=True)
        tables = [_as_input_type(t, kind, X) for t in tables]
        return tables[0] if m == 1 else tables

    def _draw(self, plain: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
        """The m tables drawn by the model, table j under parameter draw (or refit) j."""
        if self.bootstrap_fits_:
            return [
                f.impute(plain, 1, seed=seed + j)[0] for j, f in enumerate(self.bootstrap_fits_)
            ]
        return self.fit_.impute(plain, int(self.n_imputations), seed=seed)

    def _truncate(
        self, plain: pd.DataFrame, completed: list[pd.DataFrame], seed: int
    ) -> list[pd.DataFrame]:
        """Redraw, under the same parameter draw, every row whose draw leaves the support."""
        names = [n for n in self.support_ if plain[n].isna().any()]
        if not names:
            return completed
        missing = plain[names].isna().to_numpy()
        low = np.array([self.support_[n][0] for n in names])
        high = np.array([self.support_[n][1] for n in names])
        tables = [t.reset_index(drop=True).copy() for t in completed]

        def outside(table: pd.DataFrame) -> np.ndarray:
            values = table[names].to_numpy(dtype=np.float64)
            return (missing & ((values < low) | (values > high))).any(axis=1)

        bad = [outside(t) for t in tables]
        for attempt in range(1, _MAX_ROUNDS + 1):
            rows = np.flatnonzero(np.any(bad, axis=0))
            if not len(rows):
                break
            redrawn = self._draw(plain.iloc[rows], seed + 7919 * attempt)
            for j, table in enumerate(tables):
                take = bad[j][rows]
                if not take.any():
                    continue
                fresh = redrawn[j].reset_index(drop=True)
                for name in table.columns:
                    column = table[name].copy()
                    column.iloc[rows[take]] = fresh[name].iloc[np.flatnonzero(take)].to_numpy()
                    table[name] = column
                bad[j] = outside(table)
        left = [
            n for n in names if any(_outside_column(t, plain, n, self.support_) for t in tables)
        ]
        if left:
            import warnings

            warnings.warn(
                f"imputations of {', '.join(map(repr, left))} stayed outside their support "
                f"after {_MAX_ROUNDS} draws for some rows (the model puts little mass there); "
                "those cells take the nearest observed value",
                UserWarning,
                stacklevel=3,
            )
            tables = self._match(plain, tables, seed, left, nearest=True)
        return [t.set_axis(c.index) for t, c in zip(tables, completed, strict=True)]

    def _match(
        self,
        plain: pd.DataFrame,
        completed: list[pd.DataFrame],
        seed: int,
        names: list[str],
        nearest: bool = False,
    ) -> list[pd.DataFrame]:
        """Replace imputed values by observed donors: one of the k closest, picked at random
        (``nearest``: only out-of-support cells, by the closest donor inside the support)."""
        out = []
        for j, table in enumerate(completed):
            rng = np.random.default_rng([int(seed), j, 0x9E3779B9])
            table = table.copy()
            for name in names:
                donors = self.donors_[name]
                miss = plain[name].isna().to_numpy()
                values = table[name].to_numpy(dtype=np.float64).copy()
                if nearest:
                    low, high = self.support_[name]
                    miss = miss & ((values < low) | (values > high))
                if not miss.any():
                    continue
                wanted = values[miss]
                k = 1 if nearest else min(_PMM_DONORS, len(donors))
                # The k donors closest to each draw: a window of the sorted donors.
                at = np.searchsorted(donors, wanted)
                start = np.clip(at - k, 0, len(donors) - k)
                window = start[:, None] + np.arange(2 * k)[None, :]
                window = np.clip(window, 0, len(donors) - 1)
                distance = np.abs(donors[window] - wanted[:, None])
                closest = np.take_along_axis(window, np.argsort(distance, axis=1)[:, :k], axis=1)
                pick = closest[np.arange(len(wanted)), rng.integers(0, k, len(wanted))]
                values[miss] = donors[pick]
                table[name] = pd.Series(values, index=table.index).astype(table[name].dtype)
            out.append(table)
        return out

    def fit_transform(self, X: Any, y: Any = None, **kwargs: Any) -> Any:
        """``fit(X)`` then ``transform(X, **kwargs)``."""
        return self.fit(X, y).transform(X, **kwargs)

    def _conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        if set(frame.columns) != set(self.columns_) or len(frame.columns) != len(self.columns_):
            missing = [c for c in self.columns_ if c not in frame.columns]
            extra = [c for c in frame.columns if c not in self.columns_]
            raise ValueError(
                "X has other columns than the fitted ones: "
                f"missing {missing}, unexpected {extra}; fitted columns {self.columns_}"
            )
        frame = frame[self.columns_]
        for name in self.columns_:
            _check_text_in_numbers(name, frame[name])
            if name in self.categories_:
                unseen = set(frame[name].dropna().unique()) - self.categories_[name]
                if unseen:
                    raise ValueError(
                        f"unseen categor{'y' if len(unseen) == 1 else 'ies'} "
                        f"{', '.join(map(repr, sorted(map(str, unseen))))} in column {name!r}; "
                        f"fit saw {', '.join(map(repr, sorted(map(str, self.categories_[name]))))}"
                    )
        return frame

    def _assemble(self, frame: pd.DataFrame, part: pd.DataFrame) -> pd.DataFrame:
        """The input with its modelled columns from ``part`` and constants filled in."""
        out = frame.copy()
        for name in self.columns_:
            original = frame[name]
            if not original.isna().any():
                continue  # fully observed: the input's column, dtype and all
            if name in self.constant_:
                filled = original.fillna(self.constant_[name])
            else:
                filled = part[name].set_axis(frame.index)
            out[name] = _restore_dtype(filled, original.dtype)
        return out


_SUPPORTS = ("truncate", "pmm", None)
#: Rounds of redrawing before ``support="truncate"`` gives up on a cell.
_MAX_ROUNDS = 200
#: Donors per imputed value in predictive mean matching (mice's default).
_PMM_DONORS = 5


def _supports(schema: Any, frame: pd.DataFrame) -> tuple[dict, dict]:
    """Support ``[0, inf)`` of continuous columns observed >= 0, and every continuous column's
    sorted observed values (the donors of predictive mean matching)."""
    support, donors = {}, {}
    for column in schema.columns:
        if column.kind != "continuous" or column.transform is not None:
            continue  # other kinds keep their support by their model and decoding
        observed = pd.to_numeric(frame[column.name], errors="coerce").dropna()
        values = np.sort(observed.to_numpy(dtype=np.float64))
        donors[column.name] = values
        if values[0] >= 0:
            support[column.name] = (0.0, math.inf)
    return support, donors


def _outside_column(table: pd.DataFrame, plain: pd.DataFrame, name: str, support: dict) -> bool:
    """Whether an imputed entry of column ``name`` lies outside its support."""
    low, high = support[name]
    values = table[name].to_numpy(dtype=np.float64)
    return bool((plain[name].isna().to_numpy() & ((values < low) | (values > high))).any())


def _as_frame(X: Any) -> tuple[pd.DataFrame, str]:
    """Any table as a DataFrame, and the input's type."""
    if isinstance(X, pd.DataFrame):
        return X, "dataframe"
    kind = "ndarray"
    try:
        import torch

        if isinstance(X, torch.Tensor):
            X, kind = X.detach().cpu().numpy(), "tensor"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"X must be a 2-D table, got shape {array.shape}")
    return pd.DataFrame(array, columns=[f"x{j}" for j in range(array.shape[1])]), kind


def _as_input_type(table: pd.DataFrame, kind: str, like: Any) -> Any:
    if kind == "dataframe":
        return table
    array = table.to_numpy(dtype=np.result_type(np.asarray(like).dtype, np.float64))
    if kind == "tensor":
        import torch

        return torch.as_tensor(array, dtype=like.dtype if like.is_floating_point() else None).to(
            like.device
        )
    return array


def _check_text_in_numbers(name: Any, values: pd.Series) -> None:
    """Object columns that hold numbers and a little text are a data-entry problem."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    ):
        return
    observed = values.dropna()
    numeric = pd.to_numeric(observed, errors="coerce")
    bad = observed[numeric.isna()]
    if numeric.notna().any() and len(bad):
        shown = ", ".join(map(repr, list(dict.fromkeys(map(str, bad)))[:5]))
        raise ValueError(
            f"column {name!r} holds numbers and text ({shown}); convert such entries to "
            "missing values first, e.g. with pd.to_numeric(errors='coerce') or read_csv's "
            "na_values"
        )


def _plain_floats(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable numeric columns (Int64, Float64) with missing entries as float64 with NaN.

    The completed values are cast back by :func:`_restore_dtype`; until then a nullable integer
    column cannot hold the draws of a column modelled as continuous.
    """
    nullable = [
        c
        for c in frame.columns
        if isinstance(frame[c].dtype, pd.api.extensions.ExtensionDtype)
        and pd.api.types.is_numeric_dtype(frame[c].dtype)
        and not pd.api.types.is_bool_dtype(frame[c].dtype)
        and frame[c].isna().any()
    ]
    if not nullable:
        return frame
    return frame.astype(dict.fromkeys(nullable, "float64"))


def _restore_dtype(values: pd.Series, dtype: Any) -> pd.Series:
    """Cast imputed values back to the input column's dtype (integers are rounded)."""
    if values.dtype == dtype:
        return values
    if pd.api.types.is_integer_dtype(dtype) and pd.api.types.is_float_dtype(values.dtype):
        values = values.round()
    try:
        return values.astype(dtype)
    except (TypeError, ValueError):
        return values
