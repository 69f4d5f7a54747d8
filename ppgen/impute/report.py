"""Judge imputation methods the way statisticians do: bias and coverage of pooled estimates.

"Imputation is not prediction" (van Buuren 2018, sec. 2.6): a method is good when the analysis
of its multiply imputed tables, pooled by Rubin's rules, estimates the quantity of interest
without bias and with intervals that cover it at their nominal rate. :func:`imputation_report`
runs van Buuren's simulation design (sec. 2.5.2):

1. a complete table is the *population*; the analysis fitted to it gives the true values;
2. each replication draws ``n`` rows from it (with replacement by default: iid draws from the
   population's distribution, so the complete-data analysis is the benchmark, without a finite
   population correction);
3. :func:`ppgen.ampute` makes the sample incomplete (MCAR, MAR or MNAR);
4. every method imputes it ``m`` times, the analysis is fitted to every table and pooled;
5. over the replications: raw bias, percent bias, coverage of the ``1 - alpha`` interval, its
   average width and the RMSE of the pooled estimate; and, per column, how the imputed values
   compare with the deleted ones (RMSE of their mean, energy distance and Wasserstein distance
   between the imputed and the true values: "is the distribution right", beside "is the point
   right").

Two reference rows come free: ``"complete data"`` (the analysis of the sample before amputation:
what no method can beat) and ``"complete cases"`` (listwise deletion).

References
----------
van Buuren, S. (2018). *Flexible Imputation of Missing Data*, 2nd ed., sec. 2.5-2.6. CRC Press.
Schouten, R. M., Lugtig, P. & Vink, G. (2018). Generating missing values for simulation
purposes: a multivariate amputation procedure. *J. Stat. Comput. Simul.* 88(15), 2909-2930.
MacKinnon, J. G. & White, H. (1985). Some heteroskedasticity-consistent covariance matrix
estimators with improved finite sample properties. *J. Econometrics* 29(3), 305-325.
Szekely, G. J. & Rizzo, M. L. (2013). Energy statistics: a class of statistics based on
distances. *J. Stat. Plan. Inference* 143(8), 1249-1272.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ppgen._utils import progress_bar
from ppgen.impute.ampute import ampute
from ppgen.impute.imputer import Imputer
from ppgen.impute.pooling import _extract, pool_fit

__all__ = ["ImputationReport", "imputation_report", "true_delta"]

#: Names of the two reference rows.
COMPLETE_DATA, COMPLETE_CASES = "complete data", "complete cases"
#: Standard errors a formula analysis may use (statsmodels' OLS ``cov_type`` without options).
_COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3")


@dataclass(frozen=True)
class ImputationReport:
    """What :func:`imputation_report` found.

    Attributes
    ----------
    estimates : DataFrame
        One row per (method, term): ``true`` (the population value), ``estimate`` (mean pooled
        estimate), ``bias``, ``percent_bias`` (100 bias / true), ``coverage`` (share of
        intervals covering the true value) and its Monte Carlo ``coverage_se``, ``width``
        (mean interval width), ``rmse`` (of the pooled estimate around the true value).
    distributions : DataFrame
        One row per (method, column) with deleted entries: ``rmse`` (of the imputed values'
        mean over the m tables against the deleted values), ``energy`` (energy distance) and
        ``wasserstein`` (1-Wasserstein distance) between the imputed and the deleted values,
        averaged over tables and replications; numeric columns only.
    replications : DataFrame
        One row per (replication, method, term): ``estimate``, ``lower``, ``upper``.
    settings : dict
        ``n``, ``replications``, ``prop``, ``mechanism``, ``alpha``, ``seed``.
    """

    estimates: pd.DataFrame
    distributions: pd.DataFrame
    replications: pd.DataFrame
    settings: dict[str, Any]


def imputation_report(
    population: pd.DataFrame,
    analysis: Callable[[Any], Any] | str,
    methods: Mapping[str, Any],
    *,
    n: int = 200,
    replications: int = 100,
    prop: float = 0.3,
    mechanism: str = "MAR",
    patterns: Sequence[Sequence[str]] | None = None,
    alpha: float = 0.05,
    replace: bool = True,
    seed: int = 0,
    progress: bool | None = None,
    cov_type: str = "nonrobust",
) -> ImputationReport:
    """Simulate, impute, analyse, pool: bias and coverage of each method's pooled estimates.

    Parameters
    ----------
    population : DataFrame
        A complete table.
    analysis : callable or str
        As :func:`ppgen.impute.pool_fit`'s ``fn`` (an R-style formula is fitted by OLS); fitted
        to the population it gives the true values.
    methods : mapping of name to Imputer or callable
        An :class:`ppgen.Imputer` (copied and refitted to every replication with seed
        ``seed + replication``; ``n_imputations >= 2``), or ``f(table, seed)`` returning the
        list of completed tables (e.g. MICE from statsmodels).
    n : int, default 200
        Rows per replication.
    replications : int, default 100
    prop, mechanism, patterns
        Passed to :func:`ppgen.ampute`: the share of rows made incomplete, ``"MCAR"``, ``"MAR"``
        or ``"MNAR"``, and which columns go missing together (default: each column alone).
    alpha : float, default 0.05
        Intervals are at level ``1 - alpha``.
    replace : bool, default True
        Draw the rows with replacement (iid from the population) or without.
    seed : int, default 0
    progress : bool, optional
        A bar over the replications (default: when stderr is a terminal).
    cov_type : str, default "nonrobust"
        With a formula ``analysis``: the standard errors of the OLS fit (statsmodels'
        ``cov_type``), e.g. ``"HC3"`` (MacKinnon & White's heteroscedasticity-consistent
        sandwich) when the population's residuals are heteroscedastic, where the model-based
        standard errors of the complete-data analysis are themselves off (Rubin's rules take any
        consistent within-imputation variance). Ignored for a function ``analysis``.

    Returns
    -------
    ImputationReport
    """
    if not isinstance(population, pd.DataFrame):
        raise ValueError(f"population must be a DataFrame, got {type(population).__name__}")
    if population.isna().any().any():
        raise ValueError("population must be complete (no missing entries)")
    if not methods:
        raise ValueError("methods is empty: give at least one imputer")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if cov_type not in _COV_TYPES:
        raise ValueError(f"cov_type must be one of {_COV_TYPES}, got {cov_type!r}")
    if int(replications) < 1 or int(n) < 2:
        raise ValueError(f"need replications >= 1 and n >= 2, got {replications}, {n}")
    if not replace and n > len(population):
        raise ValueError(f"n = {n} rows without replacement from a population of {len(population)}")
    fn = _as_function(analysis, cov_type)
    truth, _, info = _extract(fn(population))
    names = info["names"] or [str(i) for i in range(len(truth))]
    rng = np.random.default_rng(seed)
    records, spreads = [], []
    bar = progress_bar(int(replications), "replications", progress)
    for r in range(int(replications)):
        rows = rng.choice(len(population), size=int(n), replace=replace)
        sample = population.iloc[rows].reset_index(drop=True)
        amputed = ampute(sample, prop, mechanism=mechanism, patterns=patterns, seed=seed + r)
        deleted = amputed.isna() & sample.notna()
        results = {
            COMPLETE_DATA: _interval(fn(sample), alpha),
            COMPLETE_CASES: _interval(fn(amputed.dropna()), alpha),
        }
        for name, method in methods.items():
            tables = _impute(method, amputed, seed + r)
            results[name] = _pooled_interval(pool_fit(tables, fn), alpha)
            spreads.extend(_spread(name, r, sample, tables, deleted))
        for name, (estimate, lower, upper) in results.items():
            for t, term in enumerate(names):
                records.append((r, name, term, estimate[t], lower[t], upper[t]))
        bar.update()
    bar.close()
    raw = pd.DataFrame(
        records, columns=["replication", "method", "term", "estimate", "lower", "upper"]
    )
    return ImputationReport(
        estimates=_summarize(raw, dict(zip(names, truth, strict=True))),
        distributions=_distributions(spreads),
        replications=raw,
        settings={
            "n": int(n),
            "replications": int(replications),
            "prop": prop,
            "mechanism": mechanism,
            "alpha": alpha,
            "seed": seed,
        },
    )


def true_delta(
    population: pd.DataFrame,
    imputer: Imputer | None = None,
    *,
    prop: float = 0.3,
    mechanism: str = "MNAR",
    patterns: Sequence[Sequence[str]] | None = None,
    rows: int = 20_000,
    repeats: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """The delta adjustment that is right for a known amputation, per column (for studies).

    Under MNAR the delta of :class:`ppgen.Imputer` is a sensitivity parameter an analyst must
    argue for; in a simulation the mechanism is known, so its value can be measured: on
    ``repeats`` samples of ``rows`` rows drawn from ``population`` (with replacement), ampute as
    the study does (``prop``, ``mechanism``, ``patterns``, as :func:`ppgen.ampute`), impute under
    MAR with ``imputer`` (default: a Gaussian, ``Imputer("gmm", n_components=1,
    n_imputations=5, method="em")``) and take the mean of the deleted values minus the mean of
    their imputations. With patterns that remove one column per row, shifting a column's
    imputations by this amount moves their mean onto the deleted values' (a location shift: the
    mean, not the whole distribution, of the deleted values is matched).

    Returns
    -------
    dict
        Column -> delta in the column's units, for every column that went missing.
    """
    imputer = imputer or Imputer("gmm", n_components=1, n_imputations=5, method="em")
    shifts: dict[str, list[float]] = {}
    for r in range(int(repeats)):
        rng = np.random.default_rng(seed + 1000 + r)
        sample = population.iloc[rng.integers(0, len(population), int(rows))]
        sample = sample.reset_index(drop=True)
        amputed = ampute(sample, prop, mechanism=mechanism, patterns=patterns, seed=seed + r)
        tables = _impute(imputer, amputed, seed + r)
        for c in population.columns:
            gone = amputed[c].isna().to_numpy()
            if gone.any():
                imputed = np.mean([t[c].to_numpy()[gone].mean() for t in tables])
                shifts.setdefault(c, []).append(sample[c].to_numpy()[gone].mean() - imputed)
    return {c: float(np.mean(v)) for c, v in shifts.items()}


def _as_function(
    analysis: Callable[[Any], Any] | str, cov_type: str = "nonrobust"
) -> Callable[[Any], Any]:
    if not isinstance(analysis, str):
        return analysis
    formula = analysis

    def fn(table: Any) -> Any:
        import statsmodels.formula.api as smf

        return smf.ols(formula, data=table).fit(cov_type=cov_type)

    return fn


def _impute(method: Any, table: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
    if isinstance(method, Imputer):
        imputer = copy.deepcopy(method)
        imputer.seed = seed
        tables = imputer.fit_transform(table)
    elif callable(method):
        tables = method(table, seed)
    else:
        raise ValueError(
            f"a method must be an Imputer or a function (table, seed) -> tables, got {method!r}"
        )
    if not isinstance(tables, list) or len(tables) < 2:
        raise ValueError("each method must return a list of at least 2 completed tables")
    return tables


def _interval(result: Any, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate and t (or normal) interval of one complete-data analysis."""
    params, cov, info = _extract(result)
    se = np.sqrt(np.diag(cov) if cov.ndim == 2 else cov)
    df = info["n_obs"] - info.get("k", len(params)) if "n_obs" in info else np.inf
    half = stats.t.ppf(1 - alpha / 2, df) * se
    return params, params - half, params + half


def _pooled_interval(pooled: Any, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ci = pooled.conf_int(alpha)
    return pooled.estimate, ci[:, 0], ci[:, 1]


def _spread(
    method: str, r: int, sample: pd.DataFrame, tables: list[pd.DataFrame], deleted: pd.DataFrame
) -> list[tuple]:
    """Per numeric column: RMSE of the imputations' mean, energy and Wasserstein distances."""
    out = []
    for name in sample.columns:
        cells = deleted[name].to_numpy()
        if not cells.any() or not pd.api.types.is_numeric_dtype(sample[name].dtype):
            continue
        true = sample[name].to_numpy(dtype=np.float64)[cells]
        imputed = np.stack([t[name].to_numpy(dtype=np.float64)[cells] for t in tables])
        rmse = float(np.sqrt(np.mean((imputed.mean(0) - true) ** 2)))
        energy = np.mean([stats.energy_distance(v, true) for v in imputed])
        wasserstein = np.mean([stats.wasserstein_distance(v, true) for v in imputed])
        out.append((method, name, r, rmse, energy, wasserstein))
    return out


def _summarize(raw: pd.DataFrame, truth: dict[str, float]) -> pd.DataFrame:
    raw = raw.assign(true=raw["term"].map(truth))
    raw["covered"] = (raw["lower"] <= raw["true"]) & (raw["true"] <= raw["upper"])
    raw["width"] = raw["upper"] - raw["lower"]
    raw["error2"] = (raw["estimate"] - raw["true"]) ** 2
    groups = raw.groupby(["method", "term"], sort=False)
    table = groups.agg(
        true=("true", "first"),
        estimate=("estimate", "mean"),
        coverage=("covered", "mean"),
        width=("width", "mean"),
        mse=("error2", "mean"),
        count=("covered", "size"),
    )
    table.insert(2, "bias", table["estimate"] - table["true"])
    with np.errstate(divide="ignore", invalid="ignore"):
        table.insert(3, "percent_bias", 100 * table["bias"] / table["true"].abs())
    table.insert(
        5, "coverage_se", np.sqrt(table["coverage"] * (1 - table["coverage"]) / table["count"])
    )
    table["rmse"] = np.sqrt(table.pop("mse"))
    return table.drop(columns="count")


def _distributions(spreads: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        spreads, columns=["method", "column", "replication", "rmse", "energy", "wasserstein"]
    )
    return frame.groupby(["method", "column"], sort=False)[["rmse", "energy", "wasserstein"]].mean()
