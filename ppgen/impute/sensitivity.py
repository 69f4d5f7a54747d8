"""Tipping-point analysis: how far from missing at random must the data be to change a conclusion?

For each ``delta`` of a grid, the incomplete table is imputed with the column's imputed values
shifted by ``delta`` (:class:`ppgen.Imputer`'s pattern-mixture ``delta``, see
:mod:`ppgen.impute.delta`), the analysis is fitted to every completed table and pooled by Rubin's
rules. The *tipping point* is the delta at which the pooled conclusion changes: the estimate's
sign, or its significance at level ``alpha``. If that delta is implausibly large the MAR
conclusion is robust; if a plausible departure from MAR overturns it, it is not.

References
----------
van Buuren, S. (2018). *Flexible Imputation of Missing Data*, 2nd ed., sec. 9.2 (the
delta-adjustment sensitivity analysis). CRC Press.
Rubin, D. B. (1977). Formalizing subjective notions about the effect of nonrespondents in sample
surveys. *JASA* 72(359), 538-543.
Liublinska, V. & Rubin, D. B. (2014). Sensitivity analysis for a partially missing binary outcome
in a two-arm randomized clinical trial. *Statistics in Medicine* 33(24), 4170-4185.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ppgen.impute.pooling import pool_fit

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["TippingPoint", "tipping_point"]


@dataclass(frozen=True)
class TippingPoint:
    """The pooled analysis along a grid of deltas, and where its conclusion changes.

    Attributes
    ----------
    table : DataFrame
        One row per delta (sorted): ``delta``, ``estimate``, ``std.error``, ``df``,
        ``statistic``, ``p.value``, the confidence limits ``lower`` and ``upper`` at level
        ``1 - alpha``, and ``significant`` (``p.value < alpha``).
    column, term : str
        The shifted column and the pooled estimand.
    alpha : float
        The significance level.
    sign_flip : float or None
        The delta at which the pooled estimate crosses 0, by linear interpolation between the two
        grid deltas around the sign change nearest ``delta = 0`` (``None``: no change on the grid).
        Exact when the estimate is linear in delta (a linear analysis of the shifted column).
    significance_flip : float or None
        The delta at which ``|statistic| - t_{df, 1 - alpha/2}`` crosses 0 (significance at
        ``alpha`` changes), interpolated the same way; ``None`` when it does not change.
    """

    table: pd.DataFrame
    column: str
    term: str
    alpha: float
    sign_flip: float | None
    significance_flip: float | None

    def plot(self, ax: Axes | None = None) -> Axes:
        """The pooled estimate and its confidence band against delta, with 0 and the tipping
        points marked."""
        from ppgen.plot import _axes

        ax = _axes(ax)
        t = self.table
        ax.fill_between(t["delta"], t["lower"], t["upper"], alpha=0.25, color="C0",
                        label=f"{100 * (1 - self.alpha):g}% interval")  # fmt: skip
        ax.plot(t["delta"], t["estimate"], "o-", color="C0", label="pooled estimate")
        ax.axhline(0.0, color="0.4", lw=0.8)
        if self.sign_flip is not None:
            ax.axvline(
                self.sign_flip, color="C3", ls="--", label=f"sign flips: {self.sign_flip:.3g}"
            )
        if self.significance_flip is not None:
            ax.axvline(self.significance_flip, color="C1", ls=":",
                       label=f"significance flips: {self.significance_flip:.3g}")  # fmt: skip
        ax.set_xlabel(f"delta (shift of the imputed {self.column!r})")
        ax.set_ylabel(self.term)
        ax.set_title("tipping-point analysis")
        ax.legend(fontsize="small")
        return ax


def tipping_point(
    imputer: Any,
    data: Any,
    analysis: Callable[[Any], Any] | str,
    column: str,
    deltas: Sequence[float],
    *,
    term: str | None = None,
    alpha: float = 0.05,
    delta_scale: str = "units",
    seed: int | None = None,
) -> TippingPoint:
    """Pool ``analysis`` of tables imputed under each delta and find where its conclusion flips.

    Parameters
    ----------
    imputer : Imputer
        The imputer (fitted to ``data`` if it is not fitted yet; the fit does not depend on
        delta, so every delta reuses it). It is not changed: each delta imputes with a copy.
    data : DataFrame
        The incomplete table.
    analysis : callable or str
        As :func:`ppgen.impute.pool_fit`'s ``fn``: an R-style formula (OLS) or a function of a
        completed table.
    column : str
        The column whose imputed values are shifted (continuous: in its units, or its standard
        deviations with ``delta_scale="sd"``; binary: the log-odds of its second level).
    deltas : sequence of float
        The grid; include 0 to have the MAR analysis in the table.
    term : str, optional
        The pooled estimand to follow; needed when the analysis has several.
    alpha : float, default 0.05
        Significance level.
    delta_scale : {"units", "sd"}, default "units"
    seed : int, optional
        Seed of the imputations (default the imputer's): every delta uses the same one, so the
        MAR draws behind the shifts are the same across the grid.

    Returns
    -------
    TippingPoint
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    grid = np.unique(np.asarray(deltas, dtype=float))
    if grid.size < 2 or not np.isfinite(grid).all():
        raise ValueError(f"deltas must hold at least 2 distinct finite numbers, got {deltas!r}")
    if not hasattr(imputer, "fit_"):
        imputer = copy.copy(imputer).fit(data)
    rows = []
    for delta in grid:
        shifted = copy.copy(imputer)
        shifted.delta, shifted.delta_scale = {column: float(delta)}, delta_scale
        tables = shifted.transform(data, seed=seed)
        pooled = pool_fit(tables if isinstance(tables, list) else [tables], analysis)
        if term is None:
            if len(pooled.names) != 1:
                raise ValueError(
                    f"the analysis has {len(pooled.names)} estimands {pooled.names}: name one "
                    "with term="
                )
            term = pooled.names[0]
        if term not in pooled.names:
            raise ValueError(f"term {term!r} is not among the estimands {pooled.names}")
        i = pooled.names.index(term)
        low, high = pooled.conf_int(alpha)[i]
        rows.append(
            {
                "delta": delta,
                "estimate": pooled.estimate[i],
                "std.error": pooled.std_error[i],
                "df": pooled.df[i],
                "statistic": pooled.statistic[i],
                "p.value": pooled.p_value[i],
                "lower": low,
                "upper": high,
            }
        )
    table = pd.DataFrame(rows)
    table["significant"] = table["p.value"] < alpha
    margin = table["statistic"].abs() - stats.t.ppf(1 - alpha / 2, table["df"])
    return TippingPoint(
        table=table,
        column=column,
        term=str(term),
        alpha=alpha,
        sign_flip=_crossing(grid, table["estimate"].to_numpy()),
        significance_flip=_crossing(grid, margin.to_numpy()),
    )


def _crossing(x: np.ndarray, y: np.ndarray) -> float | None:
    """The root of the piecewise-linear interpolant of ``y`` nearest ``x = 0``, if any."""
    roots = [float(x[i]) for i in np.flatnonzero(y == 0)]
    for i in np.flatnonzero(np.sign(y[:-1]) * np.sign(y[1:]) < 0):
        roots.append(float(x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i])))
    return min(roots, key=abs) if roots else None
