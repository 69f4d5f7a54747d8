"""Every ArviZ call in ppgen lives here, so that a new ArviZ API is supported in one place.

ArviZ 0.x (InferenceData) is what Python 3.11 resolves to; ArviZ 1.x (DataTree) can be added here.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # annotations only: ArviZ is imported on use
    import arviz as az

__all__ = ["inference_data", "loo", "summary", "waic"]


def inference_data(
    posterior: dict[str, np.ndarray],
    *,
    sample_stats: dict[str, np.ndarray] | None = None,
    log_likelihood: dict[str, np.ndarray] | None = None,
    posterior_predictive: dict[str, np.ndarray] | None = None,
    observed_data: dict[str, np.ndarray] | None = None,
    dims: dict[str, list[str]] | None = None,
    coords: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
) -> az.InferenceData:
    """Build InferenceData from arrays whose leading dimensions are (chain, draw)."""
    import arviz as az  # imported on use: it takes seconds and most runs never need it

    return az.from_dict(
        posterior=posterior,
        sample_stats=sample_stats,
        log_likelihood=log_likelihood,
        posterior_predictive=posterior_predictive,
        observed_data=observed_data,
        dims=dims,
        coords=coords,
        attrs=attrs,
    )


def summary(
    posterior: dict[str, np.ndarray], *, diagnostics: bool = True, hdi_prob: float = 0.94
) -> pd.DataFrame:
    """ArviZ's summary table: mean, sd and HDI; with ``diagnostics`` also MCSE, bulk/tail ESS
    and rank-normalized R-hat."""
    import arviz as az

    idata = az.from_dict(posterior=posterior)
    kind = "all" if diagnostics else "stats"
    # Unrounded: ArviZ rounds to 2 decimals by default, which turns an R-hat of 1.005 into 1.01.
    return az.summary(idata, kind=kind, hdi_prob=hdi_prob, round_to="none")


def loo(idata: az.InferenceData, *, quiet: bool = False) -> az.ELPDData:
    """PSIS-LOO with pointwise values (``loo_i``, ``pareto_k``); ``quiet`` drops ArviZ's
    warnings (for callers that emit their own)."""
    import arviz as az

    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", UserWarning)
        return az.loo(idata, pointwise=True)


def waic(idata: az.InferenceData, *, quiet: bool = False) -> az.ELPDData:
    """WAIC with pointwise values (``waic_i``); ``quiet`` drops ArviZ's warnings."""
    import arviz as az

    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", UserWarning)
        return az.waic(idata, pointwise=True)
