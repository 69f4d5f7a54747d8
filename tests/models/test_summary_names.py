"""Summaries name parameters by state or component number and column name, on the data's scale
(issue 13): HMMs as mixtures do, and PPCA in the data's units."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import ppgen


@pytest.fixture(scope="module")
def geyser_fit():
    geyser = ppgen.datasets.load("geyser")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ppgen.fit(ppgen.HMM(2, order_by="waiting"), geyser, method="em", seed=0), geyser


def test_hmm_summary_names_states_and_columns(geyser_fit):
    fit, geyser = geyser_fit
    table = fit.summary()
    expected = (
        ["initial[0]", "initial[1]"]
        + [f"transition[{i}, {j}]" for i in range(2) for j in range(2)]
        + [f"means[{k}, {c}]" for k in range(2) for c in ("waiting", "duration")]
        + [
            f"covariances[{k}, {a}, {b}]"
            for k in range(2)
            for a in ("waiting", "duration")
            for b in ("waiting", "duration")
        ]
    )
    assert list(table.index) == expected
    # On the data's scale: at EM's fixed point (maximum likelihood) each state's mean is the
    # average of the rows weighted by its smoothed probability, so weighting the state means by
    # the states' total probability gives back the column means, in minutes.
    gamma = fit.predict_proba()  # (T, K)
    for column in ("waiting", "duration"):
        means = np.array([table.loc[f"means[{k}, {column}]", "estimate"] for k in range(2)])
        pooled = gamma.sum(0) @ means / gamma.sum()
        assert pooled == pytest.approx(geyser[column].mean(), rel=1e-6)


def test_hmm_categorical_emissions_are_labelled_by_category():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"weather": rng.choice(["dry", "rain", "snow"], 80)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ppgen.fit(ppgen.HMM(2, "categorical"), table, method="em", seed=0)
    index = list(fit.summary().index)
    assert "probs[weather][1, snow]" in index and "transition[1, 0]" in index


def test_ppca_summary_reads_in_the_data_units():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(200, 1))
    data = pd.DataFrame(
        {"height_cm": 170 + 10 * z[:, 0] + rng.normal(size=200), "weight_kg": 70 + 8 * z[:, 0]}
    )
    data["shoe"] = 42 + 2 * z[:, 0] + 0.5 * rng.normal(size=200)
    fit = ppgen.fit(ppgen.PPCA(1), data, method="em")
    table = fit.summary()["estimate"]
    # The maximum-likelihood mean of complete data is the column mean, in centimetres and kg.
    for column in data.columns:
        assert table[f"mean[{column}]"] == pytest.approx(data[column].mean(), rel=1e-8)
    # W W^T + noise I is the fitted covariance: its diagonal is near the column variances
    # (in cm^2, kg^2), not near 1 as it would be on a standardized scale.
    loadings = np.array([table[f"loadings[{c}, 0]"] for c in data.columns])
    implied = loadings**2 + table["noise_variance"]
    assert implied == pytest.approx(data.var(ddof=0).to_numpy(), rel=0.05)
