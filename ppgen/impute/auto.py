"""Choose an imputation model by how well it predicts observed entries it did not see.

``Imputer(model="auto")`` hides a seeded fraction of the observed cells, fits every candidate of
a small grid (Gaussian mixtures and PPCA of several sizes, by EM) to the rest, and scores each
by the held-out cells' conditional log density given the other observed entries of their row,

    sum over rows i with held-out cells H_i of  log p(x_{i,H_i} | x_{i,O_i minus H_i}),

computed as ``log p(x_{i,O_i}) - log p(x_{i,O_i minus H_i})`` from the fit's exact marginal
likelihood of partially observed rows. This is the quantity imputation draws from (the
conditional of missing given observed entries), judged out of sample, so it needs no penalty:
the BIC of the observed entries ranks models by their joint fit and picks worse imputers on
real tables (issue 21: K = 2 on breast_cancer, q = 25 where q = 15 imputes better). The best
candidate is then refitted to the whole table with the Imputer's method. Candidates are fitted
by at most 100 EM steps each.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["default_grid", "heldout_scores"]

#: Share of the observed cells held out.
HOLDOUT = 0.1
#: EM steps per candidate: ranking needs a good fit, not the last decimal (PPCA's EM and large
#: mixtures can crawl for hundreds of steps near a flat optimum).
MAX_STEPS = 100


def default_grid(n_columns: int, numeric_only: bool) -> list[tuple[str, dict[str, Any]]]:
    """Gaussian mixtures with K = 1-4 and 6 full-covariance components; on all-numeric tables
    also PPCA with q about d/8, d/4, d/2 and 3d/4 (at least 1, at most d - 1)."""
    grid: list[tuple[str, dict[str, Any]]] = [("gmm", {"n_components": k}) for k in (1, 2, 3, 4, 6)]
    if numeric_only and n_columns > 2:
        sizes = sorted(
            {max(1, min(n_columns - 1, round(n_columns * f))) for f in (1 / 8, 1 / 4, 1 / 2, 3 / 4)}
        )
        grid += [("ppca", {"n_components": q}) for q in sizes]
    return grid


def _hide(frame: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """A seeded (n, d) mask of observed cells to hide; every row and column keeps one observed."""
    observed = frame.notna().to_numpy()
    rng = np.random.default_rng([int(seed), 0x5E1EC7])
    hide = observed & (rng.random(observed.shape) < share)
    for i in np.flatnonzero((observed & ~hide).sum(1) == 0):
        cells = np.flatnonzero(hide[i])
        if len(cells):
            hide[i, rng.choice(cells)] = False
    for j in np.flatnonzero((observed & ~hide).sum(0) < 2):
        hide[:, j] = False
    return hide


def heldout_scores(
    frame: pd.DataFrame,
    grid: list[tuple[str, dict[str, Any]]],
    *,
    seed: int = 0,
    kinds: dict[str, str] | None = None,
    share: float = HOLDOUT,
) -> pd.DataFrame:
    """Held-out conditional log density of every candidate (see the module's notes).

    Returns a DataFrame with one row per candidate: ``model``, ``options``, ``heldout`` (mean
    log density per held-out cell, nats; higher is better; NaN when the candidate cannot model
    the table or its fit failed) and ``error``.
    """
    from ppgen.infer import fit
    from ppgen.models import MODELS

    hide = _hide(frame, share, seed)
    if not hide.any():
        raise ValueError("too few observed cells to hold any out: model='auto' needs more data")
    masked = frame.mask(hide)
    rows = np.flatnonzero(hide.any(1))
    rows_full, rows_masked = frame.iloc[rows], masked.iloc[rows]
    out = []
    for name, options in grid:
        score, error = math.nan, ""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = fit(
                    MODELS.lookup(name)(**options),
                    masked,
                    method="em",
                    seed=seed,
                    kinds=kinds,
                    max_steps=MAX_STEPS,
                )
            gain = fitted.log_prob(rows_full) - fitted.log_prob(rows_masked)
            score = float(np.sum(gain) / hide.sum())
            if not math.isfinite(score):
                score, error = math.nan, "non-finite log density"
        except (ValueError, NotImplementedError, RuntimeError) as exc:
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        out.append({"model": name, "options": dict(options), "heldout": score, "error": error})
    table = pd.DataFrame(out)
    if table["heldout"].isna().all():
        raise ValueError(
            "model='auto': no candidate could be fitted to this table: "
            + "; ".join(f"{r.model} {r.options}: {r.error}" for r in table.itertuples())
        )
    return table
