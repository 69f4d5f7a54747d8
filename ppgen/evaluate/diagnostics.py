"""MCMC convergence diagnostics and predictive accuracy (PSIS-LOO, WAIC), via ArviZ.

Thresholds follow Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021): rank-normalized split
R-hat below 1.01 and bulk and tail effective sample sizes above 400; and Vehtari, Simpson,
Gelman, Yao & Gabry (2024) for the Pareto k diagnostic of PSIS-LOO.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ppgen import _arviz  # loo and waic
from ppgen._utils import ConvergenceWarning  # one class: fits and MCMC diagnostics warn alike

__all__ = ["ConvergenceWarning", "diagnostics", "loo", "waic"]

#: Largest acceptable rank-normalized split R-hat (Vehtari et al. 2021).
RHAT_MAX = 1.01
#: Smallest acceptable bulk and tail effective sample size, over all chains (Vehtari et al. 2021).
ESS_MIN = 400
#: Largest Pareto k for which PSIS-LOO is trusted, at any number of draws.
PARETO_K_MAX = 0.7
#: Posterior variance of a row's log-likelihood above which WAIC is unreliable (ArviZ's rule).
WAIC_VAR_MAX = 0.4


#: What a fit of each kind holds, for the error messages.
_HOLDS = {
    "point": "a point estimate",
    "draws": "independent draws from a fitted guide",
    "mcmc": "no draws",
    "networks": "trained networks",
}


def diagnostics(fit: Any) -> pd.DataFrame:
    """Convergence diagnostics of an MCMC fit, one row per scalar parameter.

    Columns are ArviZ's summary: posterior ``mean``, ``sd``, 94% HDI, Monte-Carlo standard
    errors (``mcse_mean``, ``mcse_sd``), bulk and tail effective sample sizes (``ess_bulk``,
    ``ess_tail``) and the rank-normalized split ``r_hat`` (Vehtari et al. 2021), for the
    parameters exactly as :meth:`ppgen.Fit.summary` names and reports them: on the data's
    original scale, labelled by column name (``means[0, waiting]``, not the standardized sampled
    site ``locs[0, 1]``). The number of divergent
    transitions after warmup is in ``table.attrs["divergences"]`` (also ``"num_chains"`` and
    ``"num_draws"``, draws per chain).

    A :class:`ConvergenceWarning` is emitted when any R-hat exceeds 1.01 (the chains disagree:
    not converged or not mixed), when any bulk or tail ESS is below 400 (too few effectively
    independent draws for reliable means and quantiles), or when there are divergent transitions
    (the sampler missed part of the posterior, so estimates may be biased).

    Raises
    ------
    ValueError
        For fits that are not MCMC (MAP, EM, SVI): their draws are not Markov chains, so R-hat
        and ESS do not apply.

    References
    ----------
    Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. & Bürkner, P.-C. (2021).
    Rank-normalization, folding, and localization: an improved R-hat for assessing convergence
    of MCMC. *Bayesian Analysis* 16(2), 667-718.
    """
    if fit.kind != "mcmc" or fit.samples is None:
        raise ValueError(
            f"diagnostics are for MCMC fits (method 'nuts'); this fit (method={fit.method!r}) "
            f"holds {_HOLDS[fit.kind]}, not Markov chains, so R-hat and effective sample size "
            "do not apply"
        )
    chains, draws = next(iter(fit.samples.values())).shape[:2]
    # The parameters as the summary names them, on the data's scale (one naming everywhere);
    # R-hat and ESS are computed on these derived quantities, the ones a reader reports.
    table = fit.summary()
    divergences = 0 if fit.divergent is None else int(np.asarray(fit.divergent).sum())
    table.attrs.update({"divergences": divergences, "num_chains": chains, "num_draws": draws})
    _warn_rhat(table, chains)
    _warn_ess(table, chains * draws)
    if divergences:
        warnings.warn(
            f"{divergences} divergent transition(s) after warmup out of {chains * draws}: "
            "the sampler could not follow the posterior's curvature somewhere, so estimates "
            "may be biased. Raise target_accept_prob (e.g. 0.95) or reparametrize the model.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return table


def _worst(values: pd.Series, largest: bool) -> str:
    finite = values.dropna()
    if finite.empty:
        return "could not be computed (constant draws)"
    name = finite.idxmax() if largest else finite.idxmin()
    return f"{finite[name]:.3g} for {name}"


def _warn_rhat(table: pd.DataFrame, chains: int) -> None:
    r_hat = table["r_hat"]
    bad = ~(r_hat <= RHAT_MAX)  # NaN (constant draws) counts as bad
    if not bad.any():
        return
    hint = "" if chains > 1 else " With a single chain R-hat only compares its halves: run 4."
    warnings.warn(
        f"R-hat > {RHAT_MAX} for {int(bad.sum())} of {len(r_hat)} parameters (worst "
        f"{_worst(r_hat, largest=True)}): the chains have not converged to a common "
        "distribution, so the posterior summaries cannot be trusted. Run longer chains "
        f"(more warmup_steps and num_samples) or reparametrize the model.{hint}",
        ConvergenceWarning,
        stacklevel=3,
    )


def _warn_ess(table: pd.DataFrame, total: int) -> None:
    ess = table[["ess_bulk", "ess_tail"]].min(axis=1)
    bad = ~(ess >= ESS_MIN)
    if not bad.any():
        return
    if total < ESS_MIN:
        cause = (
            f" Only {total} draws were kept in all, so an ESS of {ESS_MIN} is impossible: "
            f"draw at least {ESS_MIN} in total (e.g. 4 chains of {math.ceil(ESS_MIN / 4)} or "
            "more)."
        )
    else:
        cause = " Draw more samples (num_samples) or improve mixing."
    warnings.warn(
        f"Effective sample size (bulk or tail ESS) < {ESS_MIN} for {int(bad.sum())} of "
        f"{len(ess)} parameters (lowest {_worst(ess, largest=False)}): posterior means and "
        f"quantiles are estimated imprecisely (Vehtari et al. 2021 recommend ESS > "
        f"{ESS_MIN}).{cause}",
        ConvergenceWarning,
        stacklevel=3,
    )


# -- predictive accuracy --------------------------------------------------------------------------
def _posterior_idata(fit: Any, data: Any, what: str) -> Any:
    if fit.kind == "networks":
        raise ValueError(
            f"{what} needs posterior draws of global parameters; {type(fit.model).__name__} has "
            "none (its networks are point estimates): compare deep models with "
            "ppgen.evaluate.iwae or ais on held-out rows"
        )
    if fit.samples is None:
        raise ValueError(
            f"{what} needs posterior draws (method 'nuts' or 'svi'); a {fit.method!r} fit is a "
            "single point estimate. Compare point fits with fit.score, bic or aic on held-out data."
        )
    if data is None and fit.train is None:
        raise ValueError("pass the data: this fit was loaded from disk without its training data")
    return fit.to_arviz(data)


def loo(fit: Any, data: Any = None) -> Any:  # -> arviz.ELPDData
    """Pareto-smoothed importance-sampling leave-one-out cross-validation (PSIS-LOO).

    Parameters
    ----------
    fit : ppgen.Fit
        A fit with posterior draws (NUTS, or SVI draws from the fitted guide).
    data : optional
        The rows to score; by default the training data. Log-likelihoods are per row on the
        data's original scale, so ``elpd_loo`` compares across models fitted to the same data.

    Returns
    -------
    arviz.ELPDData
        ArviZ's result: ``elpd_loo``, its ``se``, ``p_loo``, pointwise ``loo_i`` and
        ``pareto_k``. Compare models with :func:`arviz.compare`.

    Warns
    -----
    ConvergenceWarning
        When some rows have Pareto k above ``min(1 - 1/log10(S), 0.7)`` (S draws): their
        leave-one-out densities are unreliable; refit without them (exact LOO) or use k-fold
        cross-validation.

    References
    ----------
    Vehtari, A., Gelman, A. & Gabry, J. (2017). Practical Bayesian model evaluation using
    leave-one-out cross-validation and WAIC. *Statistics and Computing* 27, 1413-1432.
    """
    idata = _posterior_idata(fit, data, "loo")
    result = _arviz.loo(idata, quiet=True)
    k = np.asarray(result.pareto_k)
    threshold = min(1 - 1 / math.log10(result.n_samples), PARETO_K_MAX)
    bad = k > threshold
    if bad.any():
        warnings.warn(
            f"Pareto k > {threshold:.2f} for {int(bad.sum())} of {k.size} rows (max "
            f"{k.max():.2f}, row {int(k.argmax())}): PSIS-LOO is unreliable for them, as these "
            "rows are highly influential. Use exact leave-one-out for those rows or k-fold "
            "cross-validation (Vehtari, Gelman & Gabry 2017).",
            ConvergenceWarning,
            stacklevel=2,
        )
    return result


def waic(fit: Any, data: Any = None) -> Any:  # -> arviz.ELPDData
    """Widely applicable information criterion (Watanabe 2010), as ArviZ computes it.

    Parameters and returned fields are as in :func:`loo` (``elpd_waic``, ``se``, ``p_waic``,
    pointwise ``waic_i``). PSIS-LOO is preferred: it is more robust and comes with the Pareto k
    diagnostic.

    Warns
    -----
    ConvergenceWarning
        When the posterior variance of some row's log-likelihood exceeds 0.4: WAIC is then
        unreliable; use :func:`loo`.
    """
    idata = _posterior_idata(fit, data, "waic")
    result = _arviz.waic(idata, quiet=True)
    ll = np.asarray(idata.log_likelihood["x"])
    var = ll.reshape(-1, ll.shape[-1]).var(0, ddof=1)
    bad = var > WAIC_VAR_MAX
    if bad.any():
        warnings.warn(
            f"Posterior variance of the log-likelihood > {WAIC_VAR_MAX} for {int(bad.sum())} "
            f"of {var.size} rows: WAIC is unreliable; use ppgen.evaluate.loo instead.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return result
