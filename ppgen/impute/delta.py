"""Delta adjustment of imputations: pattern-mixture sensitivity to data missing not at random.

Under missingness at random (MAR) a missing entry is drawn from the model's conditional
distribution given the row's observed entries. A pattern-mixture model for missingness not at
random says the rows where a column is missing differ from the observed ones by a known
amount: their values of that column are shifted by ``delta`` (continuous columns), or the
log-odds of its categories are (binary and categorical columns). ``delta`` cannot be estimated
from the data; a sensitivity analysis imputes under a range of deltas and sees where the
conclusion changes (:func:`ppgen.tipping_point`).

How the adjustment enters a joint model's draws. Table ``j`` is first drawn under MAR (parameter
draw ``j``, the support rule applied). Then, for each adjusted column in the order of
``delta``:

* continuous column ``c``: its imputed values are shifted, ``x_c + delta``, and the row's other
  missing entries are drawn again from the model's conditional given the observed entries *and
  the shifted value* (same parameter draw). The other columns so respond to the shift exactly as
  mice's chained equations make them respond (each later conditional sees the shifted value;
  van Buuren 2018, sec. 3.8.6): the draw is ``x_c ~ p(x_c | x_obs)`` shifted, then
  ``x_rest ~ p(x_rest | x_obs, x_c + delta)``. Shifting ``x_c`` alone would leave the other
  imputed entries tied to the unshifted value; conditioning on the shifted value is the
  pattern-mixture model "missing rows are the MAR rows moved by delta along ``c``" with every
  other relation kept.
* binary or categorical column ``c``: the conditional probabilities of its levels are tilted,
  ``p_delta(k) proportional to p(k | x_obs) exp(delta_k)``, by rejection: a whole row drawn from
  the MAR conditional is accepted with probability ``exp(delta_k - max delta)``, where ``k`` is its
  level of ``c``. An accepted row is an exact draw from the tilted joint conditional, so the other
  missing entries already follow ``p(x_rest | x_obs, c = k)``.

An adjusted column is then held fixed while later columns are adjusted. A zero delta is no
adjustment at all, so ``delta={"x": 0}`` reproduces the MAR tables exactly. Deltas are applied
after the support rule (:class:`ppgen.Imputer`'s ``support``), so a shifted value may leave the
observed range; redrawn columns keep the rule.

References
----------
Little, R. J. A. (1993). Pattern-mixture models for multivariate incomplete data. *JASA* 88(421),
125-134.
van Buuren, S. (2018). *Flexible Imputation of Missing Data*, 2nd ed., sec. 3.8 and 9.2. CRC
Press.
Carpenter, J. R. & Kenward, M. G. (2013). *Multiple Imputation and its Application*, ch. 10.
Wiley.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__: list[str] = []

_SCALES = ("units", "sd")
#: Kinds whose imputed values a delta shifts, and kinds whose log-odds it shifts.
_SHIFTED = ("continuous",)
_TILTED = ("binary", "categorical")
#: Rounds of rejection before the log-odds tilt gives up on a row.
_MAX_TILT_ROUNDS = 2000


@dataclass(frozen=True)
class _Step:
    name: str
    shift: float | None  # continuous: the shift in the column's units
    weights: dict[Any, float] | None  # categorical: acceptance probability per level


def _delta_plan(imputer: Any, plain: pd.DataFrame) -> list[_Step]:
    """The adjustments ``imputer.delta`` asks for, validated; empty when every delta is 0."""
    delta = imputer.delta
    if delta is None:
        return []
    if not isinstance(delta, dict):
        raise ValueError(f"delta must be a dict of column -> shift, got {type(delta).__name__}")
    if imputer.delta_scale not in _SCALES:
        raise ValueError(f"delta_scale must be one of {_SCALES}, got {imputer.delta_scale!r}")
    kinds = {c.name: c for c in imputer.fit_.schema.columns}
    steps = []
    for name, value in delta.items():
        if name not in imputer.columns_:
            raise ValueError(
                f"delta names column {name!r}, which is not among the fitted columns "
                f"{imputer.columns_}"
            )
        if name in imputer.constant_:
            raise ValueError(
                f"delta names column {name!r}, which has a single observed value and is left "
                "out of the model: there is no conditional distribution to shift"
            )
        column = kinds[name]
        if column.kind in _TILTED:
            steps.append(_tilt_step(column, value))
        elif column.kind in _SHIFTED:
            shift = _number(name, value)
            if imputer.delta_scale == "sd":
                shift *= imputer.scale_[name]
            steps.append(_Step(name, shift, None))
        else:
            raise ValueError(
                f"delta for column {name!r} of kind {column.kind!r}: deltas shift continuous "
                "columns and the log-odds of binary and categorical ones"
            )
    # A zero delta is the identity: skipping it keeps delta=0 exactly the MAR imputation.
    return [s for s in steps if (s.shift != 0 if s.weights is None else s.weights)]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"delta for column {name!r} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"delta for column {name!r} must be finite, got {value!r}")
    return float(value)


def _tilt_step(column: Any, value: Any) -> _Step:
    """Acceptance probabilities exp(delta_k - max delta) per level; None when all deltas are 0."""
    levels = list(column.categories)
    if isinstance(value, dict):
        unknown = [k for k in value if k not in levels]
        if unknown:
            raise ValueError(
                f"delta for column {column.name!r} names unknown level(s) {unknown}; its levels "
                f"are {levels}"
            )
        shifts = {k: _number(column.name, value.get(k, 0.0)) for k in levels}
    elif len(levels) == 2:
        # A number shifts the log-odds of the second level against the first.
        shifts = {k: 0.0 for k in levels}
        shifts[levels[-1]] = _number(column.name, value)
    else:
        raise ValueError(
            f"delta for column {column.name!r} with {len(levels)} levels must be a dict level -> "
            "log-odds "
            f"shift (levels {levels}), got {value!r}"
        )
    top = max(shifts.values())
    if all(v == top for v in shifts.values()):
        return _Step(column.name, None, {})  # equal shifts leave the probabilities unchanged
    return _Step(column.name, None, {k: math.exp(v - top) for k, v in shifts.items()})


def _adjust(
    imputer: Any, plain: pd.DataFrame, table: pd.DataFrame, j: int, seed: int, steps: list[_Step]
) -> pd.DataFrame:
    """Table ``j`` (a MAR draw) adjusted by every step, in order (see the module's notes)."""
    table = table.copy()
    fixed = plain.copy()  # what the next redraw conditions on: observed and adjusted entries
    for number, step in enumerate(steps):
        miss = plain[step.name].isna().to_numpy()
        if not miss.any():
            continue
        step_seed = int(seed) + 104_729 * (number + 1) + 15_485_863 * j
        if step.weights is not None:
            table = _tilt(imputer, fixed, table, j, step, miss, step_seed)
        else:
            column = table[step.name].to_numpy(dtype=np.float64).copy()
            column[miss] += step.shift
            fixed[step.name] = fixed[step.name].astype(np.float64).where(~miss, column)
            table[step.name] = pd.Series(column, index=table.index)
            rows = np.flatnonzero(miss & fixed.isna().to_numpy().any(axis=1))
            if len(rows):
                redrawn = _redraw(imputer, fixed.iloc[rows], j, step_seed)
                _put(table, rows, redrawn)
        fixed[step.name] = table[step.name].where(miss, fixed[step.name])
    return table


def _put(table: pd.DataFrame, rows: np.ndarray, part: pd.DataFrame) -> None:
    """Write ``part``'s rows into ``table`` at positions ``rows``, column by column."""
    for name in table.columns:
        column = table[name].copy()
        column.iloc[rows] = part[name].to_numpy()
        table[name] = column


def _redraw(imputer: Any, rows: pd.DataFrame, j: int, seed: int) -> pd.DataFrame:
    """The missing entries of ``rows`` drawn under parameter draw ``j``, the support rule kept."""
    draw = imputer._draw_one(rows, j, seed)
    if imputer.support == "truncate":
        (draw,) = imputer._truncate(rows, [draw], seed, draws=[j])
    elif imputer.support == "pmm":
        (draw,) = imputer._match(rows, [draw], seed, list(imputer.donors_))
    return draw


def _tilt(
    imputer: Any,
    fixed: pd.DataFrame,
    table: pd.DataFrame,
    j: int,
    step: _Step,
    miss: np.ndarray,
    seed: int,
) -> pd.DataFrame:
    """Rejection sampling from the MAR conditional tilted by exp(delta_k) on level k."""
    rng = np.random.default_rng([seed, j])
    weights = table[step.name].map(step.weights)
    # The MAR draw itself is the first proposal.
    pending = np.flatnonzero(miss & (rng.random(len(table)) >= weights.to_numpy(dtype=float)))
    for attempt in range(1, _MAX_TILT_ROUNDS + 1):
        if not len(pending):
            return table
        proposal = _redraw(imputer, fixed.iloc[pending], j, seed + 7 * attempt)
        accept = rng.random(len(pending)) < proposal[step.name].map(step.weights).to_numpy(float)
        if accept.any():
            _put(table, pending[accept], proposal.iloc[np.flatnonzero(accept)])
        pending = pending[~accept]
    warnings.warn(
        f"the log-odds shift of column {step.name!r} accepted no draw for {len(pending)} rows "
        f"in {_MAX_TILT_ROUNDS} rounds (the model gives the favoured levels almost no "
        "probability there); those rows keep their MAR draw",
        UserWarning,
        stacklevel=4,
    )
    return table
