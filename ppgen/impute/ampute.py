"""Make a complete table incomplete on purpose: MCAR, MAR or MNAR, like mice's ``ampute``.

Used to check an imputation method where the truth is known (:mod:`ppgen.impute.report`), and
offered to users who want the same check on their own complete data.

The design is Schouten, Lugtig & Vink's (2018), as mice's ``ampute`` implements it: every row is
given a missingness *pattern* (which columns it would lose; by default one pattern per column,
losing that column alone, equally frequent). Under MCAR a row loses its pattern's columns with
probability ``prop``. Under MAR (MNAR) a row's *weighted sum score* is the sum of its standardized
values in the pattern's observed (missing) columns; the score, standardized within the pattern,
goes through a logistic curve shifted so that the pattern's rows lose their columns with average
probability ``prop``. ``type`` says which rows are likelier to lose them: high scores
(``"RIGHT"``, the default), low (``"LEFT"``), middle (``"MID"``) or both tails (``"TAIL"``).

References
----------
Schouten, R. M., Lugtig, P. & Vink, G. (2018). Generating missing values for simulation purposes:
a multivariate amputation procedure. *Journal of Statistical Computation and Simulation* 88(15),
2909-2930.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

__all__ = ["ampute"]

_MECHANISMS = ("MCAR", "MAR", "MNAR")
_TYPES = ("RIGHT", "LEFT", "MID", "TAIL")


def ampute(
    data: Any,
    prop: float = 0.5,
    *,
    mechanism: str = "MAR",
    patterns: Sequence[Sequence[str]] | None = None,
    freq: Sequence[float] | None = None,
    type: str = "RIGHT",
    seed: int = 0,
) -> Any:
    """A copy of ``data`` with missing values made by a known mechanism.

    Parameters
    ----------
    data : DataFrame or ndarray
        A complete table (no missing entries).
    prop : float, default 0.5
        The proportion of rows that become incomplete (mice's ``prop``; the proportion of
        missing *cells* is smaller).
    mechanism : {"MCAR", "MAR", "MNAR"}, default "MAR"
        Missing completely at random; at random (depends on the pattern's observed columns);
        not at random (depends on the columns that go missing).
    patterns : sequence of sequences of column names, optional
        The columns each pattern removes (for an ndarray, column numbers). Default: one pattern
        per column, removing that column alone. A pattern may not remove every column, nor none.
    freq : sequence of float, optional
        Relative frequencies of the patterns; default equal.
    type : {"RIGHT", "LEFT", "MID", "TAIL"}, default "RIGHT"
        Which weighted sum scores make a row likelier to lose its pattern's columns (MAR and
        MNAR): high, low, middle or extreme.
    seed : int, default 0

    Returns
    -------
    DataFrame or ndarray
        ``data`` with missing entries (NaN; ``None`` in object columns), same type, index, columns
        and (where it can hold NaN) dtype.
    """
    if mechanism not in _MECHANISMS:
        raise ValueError(f"mechanism must be one of {_MECHANISMS}, got {mechanism!r}")
    if type not in _TYPES:
        raise ValueError(f"type must be one of {_TYPES}, got {type!r}")
    if isinstance(prop, bool) or not isinstance(prop, (int, float)) or not 0 < prop < 1:
        raise ValueError(f"prop must be a number in (0, 1), got {prop!r}")
    is_frame = isinstance(data, pd.DataFrame)
    frame = data if is_frame else pd.DataFrame(np.asarray(data, dtype=float))
    if frame.ndim != 2 or frame.shape[0] < 2 or frame.shape[1] < 2:
        raise ValueError(
            f"data must be a table with at least 2 rows and 2 columns, got {frame.shape}"
        )
    incomplete = [c for c in frame.columns if frame[c].isna().any()]
    if incomplete:
        raise ValueError(f"data must be complete; columns {incomplete} have missing entries")
    columns = list(frame.columns)
    if patterns is None:
        patterns = [[c] for c in columns]
    losing = np.zeros((len(patterns), len(columns)), dtype=bool)
    for p, pattern in enumerate(patterns):
        unknown = [c for c in pattern if c not in columns]
        if unknown:
            raise ValueError(f"pattern {p} names unknown columns {unknown}; columns are {columns}")
        losing[p, [columns.index(c) for c in pattern]] = True
        if not losing[p].any() or losing[p].all():
            raise ValueError(f"pattern {p} must remove some columns but not all, got {pattern!r}")
    freq = np.full(len(patterns), 1.0) if freq is None else np.asarray(freq, dtype=float)
    if freq.shape != (len(patterns),) or (freq < 0).any() or freq.sum() <= 0:
        raise ValueError(f"freq must be {len(patterns)} non-negative numbers, got {freq!r}")

    rng = np.random.default_rng(seed)
    n = len(frame)
    which = rng.choice(len(patterns), size=n, p=freq / freq.sum())
    z = _standardized(frame)
    lose = np.zeros(n, dtype=bool)
    for p in range(len(patterns)):
        rows = np.flatnonzero(which == p)
        if not len(rows):
            continue
        if mechanism == "MCAR":
            chance = np.full(len(rows), float(prop))
        else:
            weights = losing[p] if mechanism == "MNAR" else ~losing[p]
            chance = _chance(z[rows][:, weights].sum(1), float(prop), type)
        lose[rows] = rng.random(len(rows)) < chance
    mask = losing[which] & lose[:, None]  # (n, d): True where the entry goes missing
    out = frame.copy()
    for j, name in enumerate(columns):
        if mask[:, j].any():
            column = out[name]
            if pd.api.types.is_integer_dtype(column.dtype) or pd.api.types.is_bool_dtype(
                column.dtype
            ):
                column = column.astype("float64" if column.dtype.kind in "iu" else object)
            out[name] = column.mask(mask[:, j])
    return out if is_frame else out.to_numpy()


def _standardized(frame: pd.DataFrame) -> np.ndarray:
    """Columns as numbers (categories by their codes), centred and scaled to unit sd."""
    parts = []
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            x = values.to_numpy(dtype=np.float64)
        else:
            x = pd.factorize(values, sort=True)[0].astype(np.float64)
        sd = x.std()
        parts.append((x - x.mean()) / (sd if sd > 0 else 1.0))
    return np.column_stack(parts)


def _chance(score: np.ndarray, prop: float, type: str) -> np.ndarray:
    """Logistic probabilities of the standardized score, shifted to average ``prop``."""
    sd = score.std()
    s = (score - score.mean()) / (sd if sd > 0 else 1.0)
    s = {"RIGHT": s, "LEFT": -s, "MID": -np.abs(s), "TAIL": np.abs(s)}[type]
    if np.ptp(s) == 0:
        return np.full(len(s), prop)
    # The shift b with mean(sigmoid(s + b)) = prop: mean is increasing in b, so a bracketed root.
    b = optimize.brentq(lambda b: special.expit(s + b).mean() - prop, -50.0, 50.0, xtol=1e-12)
    return special.expit(s + b)
