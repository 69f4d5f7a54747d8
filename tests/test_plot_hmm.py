"""Tests for the hidden-Markov-model plots: ppgen.plot.states and ppgen.plot.transitions."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

import ppgen  # noqa: E402
from ppgen import plot  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def geyser() -> pd.DataFrame:
    return ppgen.datasets.load("geyser")


@pytest.fixture(scope="module")
def geyser_fit(geyser):
    model = ppgen.HMM(2, "gaussian", "full", order_by="waiting")
    return ppgen.fit(model, geyser, method="em", progress=False)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    """Two count sequences in one long table, rows shuffled, with id and time columns."""
    rng = np.random.default_rng(3)
    rows = []
    for sid, n in (("a", 40), ("b", 25)):
        state = np.cumsum(rng.random(n) < 0.15) % 2
        for t in range(n):
            rows.append({"id": sid, "t": 2 * t + 1, "k": rng.poisson(2 + 8 * state[t])})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).sort_values("t", kind="stable")


@pytest.fixture(scope="module")
def panel_fit(panel):
    model = ppgen.HMM(2, "poisson", order_by="k")
    return ppgen.fit(model, panel, method="em", id_column="id", time_column="t", progress=False)


def _points(ax) -> PathCollection:
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    return points


def _dashed(ax) -> list:
    return [line for line in ax.get_lines() if line.get_linestyle() == "--"]


def test_states_colours_each_step_by_its_viterbi_state(geyser_fit, geyser):
    ax = plot.states(geyser_fit, geyser, "waiting")
    points = _points(ax)
    offsets = points.get_offsets()
    assert offsets.shape == (len(geyser), 2)  # one point per time step
    np.testing.assert_array_equal(offsets[:, 0], np.arange(len(geyser)))
    np.testing.assert_allclose(offsets[:, 1], geyser["waiting"], rtol=1e-12)
    states = geyser_fit.predict(geyser)
    palette = plt.get_cmap("tab10")
    expected = np.array([to_rgba(palette(k)) for k in states])
    np.testing.assert_allclose(points.get_facecolors(), expected)
    assert ax.get_ylabel() == "waiting"


def test_states_draws_each_states_mean_on_the_data_scale(geyser_fit, geyser):
    ax = plot.states(geyser_fit, geyser, "duration")
    described = geyser_fit.model.describe(dict(geyser_fit.params), geyser_fit.schema)
    means = described["means"].numpy()[:, 1]
    levels = [line.get_ydata()[0] for line in _dashed(ax)]
    np.testing.assert_allclose(levels, means, rtol=1e-10)
    # order_by="waiting": state 0 waits less and erupts longer.
    assert levels[0] > levels[1]
    assert len(ax.get_legend().get_texts()) == 2


def test_states_of_a_long_table_uses_the_time_column_and_the_sequence_id(panel_fit, panel):
    ax = plot.states(panel_fit, panel, "k", sequence="b")
    offsets = _points(ax).get_offsets()
    b = panel[panel["id"] == "b"].sort_values("t")
    assert offsets.shape == (len(b), 2)
    np.testing.assert_array_equal(offsets[:, 0], b["t"])
    np.testing.assert_array_equal(offsets[:, 1], b["k"])
    states = panel_fit.predict(panel)[panel.index.get_indexer(b.index)]
    palette = plt.get_cmap("tab10")
    expected = np.array([to_rgba(palette(k)) for k in states])
    np.testing.assert_allclose(_points(ax).get_facecolors(), expected)
    rates = panel_fit.params["rates"][:, 0].numpy()
    np.testing.assert_allclose([line.get_ydata()[0] for line in _dashed(ax)], rates)
    assert ax.get_xlabel() == "t"
    assert "'b'" in ax.get_title()
    # A position works too when no id matches: 0 is the sequence that appears first.
    ax = plot.states(panel_fit, panel, "k", sequence=0)
    first = panel["id"].iloc[0]
    assert len(_points(ax).get_offsets()) == (panel["id"] == first).sum()
    assert repr(first) in ax.get_title()


def test_states_defaults_to_the_training_data_and_leaves_gaps(geyser_fit, geyser):
    ax = plot.states(geyser_fit, None, "waiting")
    assert len(_points(ax).get_offsets()) == len(geyser)
    gappy = geyser.copy()
    gappy.loc[[5, 6], "waiting"] = np.nan
    ax = plot.states(geyser_fit, gappy, "waiting")
    y = np.asarray(_points(ax).get_offsets())[:, 1]
    assert np.isnan(y[[5, 6]]).all() and np.isfinite(np.delete(y, [5, 6])).all()


def test_transitions_heatmap_is_the_fitted_matrix_with_its_values(geyser_fit):
    ax = plot.transitions(geyser_fit)
    (image,) = ax.images
    matrix = geyser_fit.params["transition"].numpy()
    np.testing.assert_allclose(image.get_array(), matrix)
    texts = sorted((t.get_position(), t.get_text()) for t in ax.texts)
    expected = sorted(((j, i), f"{matrix[i, j]:.2f}") for i in range(2) for j in range(2))
    assert texts == expected
    assert "t + 1" in ax.get_xlabel()


def test_transitions_with_three_states_on_given_axes(panel_fit, panel):
    fit = ppgen.fit(
        ppgen.HMM(3, "poisson"), panel, method="em", id_column="id", time_column="t", n_init=1
    )
    _, ax = plt.subplots()
    assert plot.transitions(fit, ax) is ax
    np.testing.assert_allclose(ax.images[0].get_array(), fit.params["transition"].numpy())
    assert len(ax.texts) == 9


def test_unknown_or_categorical_column_is_named(geyser_fit, geyser):
    with pytest.raises(ValueError, match=r"column 'eruptions' is not a column of the fit"):
        plot.states(geyser_fit, geyser, "eruptions")
    seqs = [pd.DataFrame({"g": list("abcab" * 4)}) for _ in range(2)]
    fit = ppgen.fit(ppgen.HMM(2, "categorical"), seqs, method="em", n_init=1, max_steps=20)
    with pytest.raises(ValueError, match=r"column 'g' is categorical"):
        plot.states(fit, seqs, "g")


def test_unknown_sequence_is_refused(panel_fit, panel):
    with pytest.raises(ValueError, match=r"sequence 'zz' is neither an id nor a position"):
        plot.states(panel_fit, panel, "k", sequence="zz")


def test_non_hmm_fits_are_refused_clearly():
    faithful = ppgen.datasets.load("faithful")
    fit = ppgen.fit(ppgen.GaussianMixture(2), faithful, method="em", progress=False)
    with pytest.raises(ValueError, match=r"states\(\) needs a fitted hidden Markov model"):
        plot.states(fit, faithful, "waiting")
    with pytest.raises(ValueError, match=r"transitions\(\) needs .*GaussianMixture"):
        plot.transitions(fit)
