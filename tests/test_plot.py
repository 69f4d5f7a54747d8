"""Tests for ppgen.plot: the artists drawn match the fitted model and the data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

import ppgen  # noqa: E402
from ppgen import plot  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def faithful() -> pd.DataFrame:
    return ppgen.datasets.load("faithful")


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return ppgen.datasets.load("wine")


@pytest.fixture(scope="module", params=["full", "diag"])
def gmm(request, faithful):
    return ppgen.fit(ppgen.GaussianMixture(2, request.param), faithful, method="em", progress=False)


@pytest.fixture(scope="module")
def ppca(wine):
    return ppgen.fit(ppgen.PPCA(2), wine.drop(columns="target"), method="map", progress=False)


def _scatters(ax) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def _projected(fit, ix: int, iy: int) -> tuple[np.ndarray, np.ndarray]:
    described = fit.model.describe(dict(fit.params), fit.schema)
    means = described["means"].numpy()[:, [ix, iy]]
    if "covariances" in described:
        covs = described["covariances"].numpy()[:, [ix, iy]][:, :, [ix, iy]]
    else:
        covs = np.stack([np.diag(v) for v in described["variances"].numpy()[:, [ix, iy]]])
    return means, covs


# -- losses -----------------------------------------------------------------------------------


def test_losses_plots_the_trace(gmm):
    ax = plot.losses(gmm)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(gmm.losses) + 1))
    np.testing.assert_allclose(line.get_ydata(), gmm.losses)
    assert ax.get_ylabel() == gmm.engine.loss_label  # what the engine's loss is
    assert ax.get_xlabel()


def test_losses_log_shows_excess_over_minimum(faithful):
    fit = ppgen.fit(ppgen.GaussianMixture(2), faithful, method="em", tol=0, max_steps=30)
    ax = plot.losses(fit, log=True)
    (line,) = ax.get_lines()
    excess = fit.losses - fit.losses.min()
    assert ax.get_yscale() == "log"
    np.testing.assert_allclose(line.get_ydata(), excess[excess > 0])
    assert "minus its minimum" in ax.get_ylabel()


def test_losses_draws_on_the_given_axes(gmm):
    _, ax = plt.subplots()
    assert plot.losses(gmm, ax) is ax


# -- clusters ---------------------------------------------------------------------------------


def test_clusters_scatter_one_point_per_row_coloured_by_membership(gmm, faithful):
    ax = plot.clusters(gmm, faithful, "eruptions", "waiting")
    (points,) = _scatters(ax)
    np.testing.assert_allclose(points.get_offsets(), faithful[["eruptions", "waiting"]].to_numpy())
    labels = gmm.predict(faithful)
    colors = points.get_facecolors()
    assert len(colors) == len(faithful)
    for k in np.unique(labels):
        same = colors[labels == k]
        assert (same == same[0]).all()
        assert not (colors[labels != k] == same[0]).all(axis=1).any()
    assert ax.get_xlabel() == "eruptions" and ax.get_ylabel() == "waiting"


@pytest.mark.parametrize("n_std", [1.0, 2.0, 3.0])
def test_clusters_ellipses_match_projected_covariances(gmm, faithful, n_std):
    ax = plot.clusters(gmm, faithful, "eruptions", "waiting", n_std=n_std)
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    means, covs = _projected(gmm, 0, 1)
    assert len(ellipses) == len(means) == 2
    for ellipse, mean, cov in zip(ellipses, means, covs, strict=True):
        evals, evecs = np.linalg.eigh(cov)
        np.testing.assert_allclose(ellipse.center, mean)
        np.testing.assert_allclose(ellipse.width, 2 * n_std * np.sqrt(evals[1]))
        np.testing.assert_allclose(ellipse.height, 2 * n_std * np.sqrt(evals[0]))
        expected = np.degrees(np.arctan2(evecs[1, 1], evecs[0, 1]))
        # An eigenvector's sign is arbitrary: the angle is defined modulo 180 degrees.
        assert np.isclose((ellipse.angle - expected + 90) % 180, 90)
        # Independently of the parametrization: the outline is at Mahalanobis distance n_std.
        # The patch transform maps the unit circle onto the drawn ellipse.
        t = np.linspace(0, 2 * np.pi, 50)
        circle = np.column_stack([np.cos(t), np.sin(t)])
        outline = ellipse.get_patch_transform().transform(circle)
        diff = outline - mean
        distance = np.sqrt(np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff))
        np.testing.assert_allclose(distance, n_std, rtol=1e-6)


def test_clusters_are_on_the_original_scale(gmm, faithful):
    ax = plot.clusters(gmm, faithful, "eruptions", "waiting")
    (marks,) = [line for line in ax.get_lines() if line.get_marker() == "X"]
    # At an EM fixed point each mean is the membership-weighted mean of the raw data.
    resp = gmm.predict_proba(faithful)
    weighted = resp.T @ faithful.to_numpy() / resp.sum(0)[:, None]
    np.testing.assert_allclose(marks.get_xdata(), weighted[:, 0], rtol=1e-3)
    np.testing.assert_allclose(marks.get_ydata(), weighted[:, 1], rtol=1e-3)


def test_clusters_swapped_columns_transpose_the_ellipses(gmm, faithful):
    ax = plot.clusters(gmm, faithful, "eruptions", "waiting")
    swapped = plot.clusters(gmm, faithful, "waiting", "eruptions")
    for a, b in zip(ax.patches, swapped.patches, strict=True):
        np.testing.assert_allclose(a.center, b.center[::-1])
        np.testing.assert_allclose([a.width, a.height], [b.width, b.height])


def test_clusters_diag_ellipses_are_axis_aligned(faithful):
    fit = ppgen.fit(ppgen.GaussianMixture(2, "diag"), faithful, method="em")
    ax = plot.clusters(fit, faithful, "eruptions", "waiting")
    variances = fit.model.describe(dict(fit.params), fit.schema)["variances"].numpy()
    for ellipse, var in zip(ax.patches, variances, strict=True):
        assert np.isclose(ellipse.angle % 90, 0) or np.isclose(ellipse.angle % 90, 90)
        axes = sorted([ellipse.width, ellipse.height])
        np.testing.assert_allclose(axes, sorted(4 * np.sqrt(var)))


def test_clusters_accepts_extra_columns(faithful, gmm):
    extra = faithful.assign(note="x")
    ax = plot.clusters(gmm, extra, "eruptions", "waiting")
    assert len(_scatters(ax)[0].get_offsets()) == len(faithful)


@pytest.mark.parametrize(
    ("x", "y", "bad"), [("eruption", "waiting", "eruption"), ("eruptions", "Waiting", "Waiting")]
)
def test_clusters_unknown_column_is_named(gmm, faithful, x, y, bad):
    with pytest.raises(ValueError, match=f"column '{bad}' is not a column of the fit"):
        plot.clusters(gmm, faithful, x, y)


def test_clusters_rejects_bad_arguments(gmm, faithful):
    with pytest.raises(ValueError, match="different columns"):
        plot.clusters(gmm, faithful, "waiting", "waiting")
    with pytest.raises(ValueError, match="n_std must be positive"):
        plot.clusters(gmm, faithful, "eruptions", "waiting", n_std=0)
    with pytest.raises(ValueError, match="lacks the fitted column.*'waiting'"):
        plot.clusters(gmm, faithful[["eruptions"]], "eruptions", "waiting")


def test_clusters_needs_memberships(ppca, wine):
    with pytest.raises(ValueError, match="PPCA has no cluster memberships"):
        plot.clusters(ppca, wine, "alcohol", "malic_acid")


# -- latent -----------------------------------------------------------------------------------


def test_latent_categorical_colour_gives_legend(ppca, wine):
    ax = plot.latent(ppca, wine, color="target")
    z = ppca.transform(wine.drop(columns="target"))
    classes = list(wine["target"].cat.categories)
    scatters = _scatters(ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == classes
    assert ax.get_legend().get_title().get_text() == "target"
    assert sum(len(s.get_offsets()) for s in scatters) == len(wine)
    for group, points in zip(classes, scatters, strict=True):
        np.testing.assert_allclose(
            points.get_offsets(), z[(wine["target"] == group).to_numpy(), :2]
        )


def test_latent_numeric_colour_gives_colorbar(ppca, wine):
    ax = plot.latent(ppca, wine, color="alcohol")
    (points,) = _scatters(ax)
    assert len(points.get_offsets()) == len(wine)
    np.testing.assert_allclose(points.get_array(), wine["alcohol"].to_numpy())
    assert len(ax.figure.axes) == 2  # the plot and its colorbar
    assert ax.figure.axes[1].get_ylabel() == "alcohol"


def test_latent_without_colour(ppca, wine):
    features = wine.drop(columns="target")
    ax = plot.latent(ppca, features)
    (points,) = _scatters(ax)
    np.testing.assert_allclose(points.get_offsets(), ppca.transform(features))
    assert ax.get_legend() is None


def test_latent_errors(ppca, wine, gmm, faithful):
    with pytest.raises(ValueError, match="color column 'cultivar' is not in data"):
        plot.latent(ppca, wine, color="cultivar")
    with pytest.raises(ValueError, match="GaussianMixture has no continuous latent variables"):
        plot.latent(gmm, faithful)
    one = ppgen.fit(ppgen.PPCA(1), faithful, method="map")
    with pytest.raises(ValueError, match="two latent dimensions; this PPCA has 1"):
        plot.latent(one, faithful)


def test_loadings_heat_map_shows_the_report_table():
    """Two simulated factors: the image holds exactly factor_report's pattern loadings, items
    and factors labelled by name, one text per cell."""
    rng = np.random.default_rng(0)
    pattern = np.kron(np.eye(2), np.full((3, 1), 0.8))
    x = rng.normal(size=(300, 2)) @ pattern.T + 0.6 * rng.normal(size=(300, 6))
    data = pd.DataFrame(x, columns=[f"item{j}" for j in range(6)])
    fit = ppgen.fit(ppgen.FactorAnalysis(2, rotation="varimax"), data)
    report = ppgen.evaluate.factor_report(fit, data)
    ax = ppgen.plot.loadings(report)
    np.testing.assert_array_equal(ax.images[0].get_array(), report.loadings.to_numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == list(data.columns)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(report.loadings.columns)
    assert len(ax.texts) == 12
    with pytest.raises(ValueError, match="factor_report"):
        ppgen.plot.loadings(fit)
    plt.close("all")
