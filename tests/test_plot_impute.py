"""Imputation plots: the artists against the data they show."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy.stats import gaussian_kde  # noqa: E402

import ppgen  # noqa: E402
import ppgen.plot  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def airquality() -> pd.DataFrame:
    return ppgen.datasets.load("airquality")[["Ozone", "Solar.R", "Wind", "Temp"]]


@pytest.fixture(scope="module")
def imputed(airquality):
    imputer = ppgen.Imputer("gmm", n_imputations=4, method="map", seed=0).fit(airquality)
    return imputer.transform(airquality), imputer.transform(airquality, format="long")


def test_missingness_patterns_and_counts(airquality):
    ax = ppgen.plot.missingness(airquality)
    # Columns from the fewest to the most missing: Wind, Temp (0), Solar.R (7), Ozone (37).
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Wind", "Temp", "Solar.R", "Ozone"]
    matrix = np.asarray(ax.images[0].get_array())
    expected = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 1], [1, 1, 0, 0]])
    np.testing.assert_array_equal(matrix, expected)
    counts = [int(t.get_text()) for t in ax.get_yticklabels()]
    # mice::md.pattern(airquality[, 1:4]) gives 111, 35, 5 and 2 rows.
    assert counts == [111, 35, 5, 2]
    frame = airquality[["Wind", "Temp", "Solar.R", "Ozone"]].notna().astype(int)
    for pattern, count in zip(matrix, counts, strict=True):
        assert (frame == pattern).all(axis=1).sum() == count
    assert "44 missing entries" in ax.get_title()


def test_missingness_on_given_axes_and_arrays():
    x = np.array([[1.0, np.nan], [np.nan, np.nan], [2.0, 3.0], [4.0, np.nan]])
    _, ax = plt.subplots()
    assert ppgen.plot.missingness(x, ax=ax) is ax
    assert [int(t.get_text()) for t in ax.get_yticklabels()] == [1, 2, 1]
    np.testing.assert_array_equal(ax.images[0].get_array(), [[1, 1], [1, 0], [0, 0]])


def test_imputed_densities_one_line_per_imputation(airquality, imputed):
    tables, long = imputed
    fig = ppgen.plot.imputed_densities(airquality, tables)
    assert [ax.get_title() for ax in fig.axes] == ["Ozone (37 missing)", "Solar.R (7 missing)"]
    for ax, column in zip(fig.axes, ["Ozone", "Solar.R"], strict=True):
        assert len(ax.lines) == 1 + len(tables)
        observed = airquality[column].dropna().to_numpy()
        grid, density = ax.lines[0].get_data()
        np.testing.assert_allclose(density, gaussian_kde(observed)(grid))
        rows = airquality[column].isna().to_numpy()
        for line, table in zip(ax.lines[1:], tables, strict=True):
            np.testing.assert_allclose(
                line.get_ydata(), gaussian_kde(table[column].to_numpy()[rows])(grid)
            )
    # The long format draws the same curves.
    again = ppgen.plot.imputed_densities(airquality, long)
    for a, b in zip(fig.axes, again.axes, strict=True):
        for la, lb in zip(a.lines, b.lines, strict=True):
            np.testing.assert_allclose(la.get_ydata(), lb.get_ydata())


def test_imputed_densities_columns_and_single_values(airquality, imputed):
    tables, _ = imputed
    fig = ppgen.plot.imputed_densities(airquality, tables, columns=["Ozone", "Wind"])
    assert len(fig.axes) == 2
    assert len(fig.axes[1].lines) == 1 + len(tables)  # Wind: nothing imputed, empty spikes
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": [1.0, 2.0, 3.0, 5.0]})
    completed = [frame.fillna(v) for v in (2.5, 3.5)]
    fig = ppgen.plot.imputed_densities(frame, completed)
    (ax,) = fig.axes
    assert len(ax.lines) == 3
    np.testing.assert_array_equal(ax.lines[1].get_xdata(), [2.5, 2.5])  # one value: a spike


def test_imputed_densities_errors(airquality, imputed):
    tables, _ = imputed
    with pytest.raises(ValueError, match="column 'nope' is not in data"):
        ppgen.plot.imputed_densities(airquality, tables, columns=["nope"])
    with pytest.raises(ValueError, match="long format"):
        ppgen.plot.imputed_densities(airquality, tables[0])
    with pytest.raises(ValueError, match="no numeric column with missing values"):
        ppgen.plot.imputed_densities(airquality.dropna(), tables)
