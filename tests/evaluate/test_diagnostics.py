"""MCMC diagnostics, PSIS-LOO and WAIC on a short NUTS run of a GMM on Old Faithful."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.evaluate import ConvergenceWarning, diagnostics, loo, waic


@pytest.fixture(scope="module")
def faithful() -> pd.DataFrame:
    return ppgen.datasets.load("faithful")


@pytest.fixture(scope="module")
def nuts_fit(faithful) -> ppgen.Fit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ppgen.fit(
            # prior="default": NUTS samples the priors' posterior, started (as before issue 11)
            # from one k-means start's MAP; the Pareto k bound below is a property of that run
            ppgen.GaussianMixture(2, "diag", prior="default"),
            faithful,
            method="nuts",
            num_samples=100,
            warmup_steps=100,
            num_chains=2,
        )


def _fake(fit: ppgen.Fit, samples: dict, divergent: np.ndarray | None = None) -> ppgen.Fit:
    shape = next(iter(samples.values())).shape[:2]
    divergent = np.zeros(shape, dtype=bool) if divergent is None else divergent
    return dataclasses.replace(fit, samples=samples, divergent=divergent)


def _iid_samples(fit: ppgen.Fit, chains: int = 4, draws: int = 1000) -> dict:
    g = torch.Generator().manual_seed(0)
    out = {}
    for name, value in fit.samples.items():
        noise = torch.randn((chains, draws) + value.shape[2:], generator=g, dtype=value.dtype)
        out[name] = value.mean((0, 1)) + 0.01 * noise
    return out


def _diagnose(fit: ppgen.Fit) -> tuple[pd.DataFrame, list[str]]:
    """The table and the ConvergenceWarning messages, every warning recorded."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        table = diagnostics(fit)
    return table, [str(w.message) for w in record if issubclass(w.category, ConvergenceWarning)]


def test_diagnostics_table_of_a_nuts_fit(nuts_fit):
    # 2 chains x 100 draws cannot reach the 400 effective draws Vehtari et al. recommend.
    table, messages = _diagnose(nuts_fit)
    assert any("ESS) < 400" in m and "impossible" in m for m in messages)
    assert {"r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mean", "sd"} <= set(table.columns)
    # 2 weights, 2 x 2 means, 2 x 2 variances, named as the summary names them (issue 13).
    assert len(table) == 10 and "means[0, waiting]" in table.index
    assert list(table.index) == list(nuts_fit.summary().index)
    assert table.attrs["divergences"] == int(nuts_fit.divergent.sum())
    assert (table.attrs["num_chains"], table.attrs["num_draws"]) == (2, 100)
    assert table["r_hat"].max() < 1.1
    assert (table["ess_bulk"] > 20).all() and (table["ess_bulk"] < 2000).all()
    # The posterior means are those of the draws, on the data's scale (minutes, not z-scores).
    locs = nuts_fit.samples["locs"].mean((0, 1)).numpy()
    eruptions = nuts_fit.schema.columns[0]
    expected = locs[1, 0] * eruptions.scale + eruptions.loc
    assert table.loc["means[1, eruptions]", "mean"] == pytest.approx(expected, rel=1e-6)
    variances = (1 / nuts_fit.samples["precision"]).mean((0, 1)).numpy()[0, 1]
    waiting = nuts_fit.schema.columns[1]
    expected = variances * waiting.scale**2
    assert table.loc["variances[0, waiting]", "mean"] == pytest.approx(expected, rel=1e-6)


def test_well_mixed_draws_raise_no_warning(nuts_fit):
    fake = _fake(nuts_fit, _iid_samples(nuts_fit))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        table = diagnostics(fake)
    assert table["r_hat"].max() <= 1.01 and table["ess_bulk"].min() > 400


@pytest.mark.parametrize("failure", ["shifted", "stuck"])
def test_non_converged_chains_are_flagged(nuts_fit, failure):
    samples = _iid_samples(nuts_fit)
    locs = samples["locs"].clone()
    if failure == "shifted":
        locs[0] = locs[0] + 1.0  # one chain found another mode
    else:
        locs[0] = locs[0, :1]  # one chain stuck at its first draw
    samples["locs"] = locs
    table, messages = _diagnose(_fake(nuts_fit, samples))
    assert table.filter(like="means", axis=0)["r_hat"].min() > 1.01
    assert table.filter(like="weights", axis=0)["r_hat"].max() <= 1.01
    assert any(m.startswith("R-hat > 1.01 for 4 of 10 parameters (worst") for m in messages)
    assert any("for means[" in m for m in messages)  # the worst named as the summary names it


def test_divergences_are_flagged(nuts_fit):
    divergent = np.zeros((4, 1000), dtype=bool)
    divergent[1, [5, 50, 500]] = True
    table, messages = _diagnose(_fake(nuts_fit, _iid_samples(nuts_fit), divergent))
    assert table.attrs["divergences"] == 3
    assert len(messages) == 1 and messages[0].startswith("3 divergent transition(s) after warmup")


def test_diagnostics_and_loo_need_mcmc_or_draws(faithful):
    map_fit = ppgen.fit(ppgen.GaussianMixture(2, "diag"), faithful, method="em")
    with pytest.raises(ValueError, match="diagnostics are for MCMC fits"):
        diagnostics(map_fit)
    with pytest.raises(ValueError, match="posterior draws"):
        loo(map_fit)
    with pytest.raises(ValueError, match="posterior draws"):
        waic(map_fit)


def test_loo_and_waic_of_the_nuts_fit(nuts_fit, faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        l_o_o = loo(nuts_fit)
        w = waic(nuts_fit)
    assert np.isfinite(l_o_o.elpd_loo) and np.isfinite(w.elpd_waic)
    assert l_o_o.n_data_points == len(faithful) and l_o_o.n_samples == 200
    assert abs(l_o_o.elpd_loo - w.elpd_waic) < 2 * l_o_o.se
    # Both start from the log pointwise predictive density, which is Fit.log_prob (data scale).
    lppd = float(nuts_fit.log_prob(faithful).sum())
    assert l_o_o.elpd_loo + l_o_o.p_loo == pytest.approx(lppd, abs=1e-6)
    assert w.elpd_waic + w.p_waic == pytest.approx(lppd, abs=1e-6)
    # About one effective parameter per free parameter (2 x 2 means, 2 x 2 variances, 1 weight).
    assert 6 < l_o_o.p_loo < 12
    assert np.asarray(l_o_o.pareto_k).max() < 0.7


def test_an_influential_row_is_flagged_by_pareto_k(nuts_fit, faithful):
    data = faithful.copy()
    data.iloc[0] = [1.0, 120.0]  # a short eruption after a very long wait
    with pytest.warns(ConvergenceWarning, match="Pareto k"):
        result = loo(nuts_fit, data)
    assert int(np.asarray(result.pareto_k).argmax()) == 0
