"""Plots of fitted models: loss traces, clusters with their ellipses, latent spaces.

Every function draws on a Matplotlib ``Axes`` (a new figure when ``ax`` is None) and returns it;
none calls ``plt.show``. Matplotlib is imported inside the functions so that ``import ppgen``
works on machines without a display or without Matplotlib's GUI backends.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import ppgen, ppgen.plot
>>> df = ppgen.datasets.load("faithful")
>>> fit = ppgen.fit(ppgen.GaussianMixture(2), df, method="em")
>>> ax = ppgen.plot.clusters(fit, df, "eruptions", "waiting")
>>> ax.figure.savefig("clusters.png")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ppgen.infer.result import Fit

__all__ = ["clusters", "ellipse_geometry", "latent", "losses"]

_LOSS_LABELS = {
    "map": "negative log joint (nats)",
    "em": "negative log joint (nats)",
    "svi": "negative ELBO (nats)",
    "nuts": "negative log joint of the MAP start (nats)",
}


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6.0, 4.5), layout="constrained")
    return ax


def _colors(n: int) -> list:
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(n)]


def _columns(fit: Fit, data: Any) -> Any:
    """The model's columns of ``data``: plots accept tables with extra columns (labels, ids)."""
    if not isinstance(data, pd.DataFrame) or fit.schema.input_type != "dataframe":
        return data
    missing = [n for n in fit.schema.names if n not in data.columns]
    if missing:
        raise ValueError(
            f"data lacks the fitted column(s) {', '.join(map(repr, missing))}; "
            f"the fit has columns {', '.join(map(repr, fit.schema.names))}"
        )
    return data[list(fit.schema.names)]


def _column_index(fit: Fit, name: str) -> int:
    names = fit.schema.names
    if name not in names:
        raise ValueError(
            f"column {name!r} is not a column of the fit; its columns are "
            f"{', '.join(map(repr, names))}"
        )
    return names.index(name)


def _column_values(fit: Fit, data: Any, name: str, index: int) -> np.ndarray:
    if isinstance(data, pd.DataFrame):
        return data[name].to_numpy(dtype=float, na_value=np.nan)
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    return np.asarray(data, dtype=float)[:, index]


def losses(fit: Fit, ax: Axes | None = None, *, log: bool = False) -> Axes:
    """Plot the loss of each optimization step of a fit.

    The loss is the negative log joint density (MAP, EM, and the MAP run that starts NUTS) or the
    negative ELBO (SVI), in nats on the encoded (standardized) scale.

    Parameters
    ----------
    fit : Fit
        A fit from :func:`ppgen.fit` or :func:`ppgen.load`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    log : bool, default False
        Plot the excess over the smallest loss, ``loss - min(loss)``, on a logarithmic axis:
        this shows the rate of convergence, whatever the sign of the loss. The step with the
        smallest loss has no excess and is left out.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If the fit has no recorded losses.
    """
    values = np.asarray(fit.losses, dtype=float)
    if values.size == 0:
        raise ValueError("the fit has no loss trace to plot")
    ax = _axes(ax)
    steps = np.arange(1, values.size + 1)
    label = _LOSS_LABELS.get(fit.method, "loss (nats)")
    if log:
        excess = values - values.min()
        keep = excess > 0
        ax.plot(steps[keep], excess[keep], marker="." if values.size <= 50 else None)
        ax.set_yscale("log")
        label = f"{label} minus its minimum"
    else:
        ax.plot(steps, values, marker="." if values.size <= 50 else None)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("EM iteration" if fit.method == "em" else "optimization step")
    ax.set_ylabel(label)
    ax.set_title(f"{type(fit.model).__name__}, method={fit.method!r}")
    return ax


def ellipse_geometry(
    mean: np.ndarray, cov: np.ndarray, n_std: float = 2.0
) -> tuple[tuple[float, float], float, float, float]:
    """Centre, width, height and angle of the ``n_std`` contour of a 2-D Gaussian.

    Parameters
    ----------
    mean : ndarray, shape (2,)
    cov : ndarray, shape (2, 2)
        A symmetric positive semi-definite covariance.
    n_std : float, default 2.0
        The contour's Mahalanobis radius.

    Returns
    -------
    center : tuple of float
    width, height : float
        Full lengths of the major and minor axes, ``2 * n_std * sqrt(eigenvalue)``.
    angle : float
        Counter-clockwise rotation of the major axis from the x axis, in degrees, as
        :class:`matplotlib.patches.Ellipse` takes it.
    """
    evals, evecs = np.linalg.eigh(np.asarray(cov, dtype=float))
    evals = np.clip(evals, 0.0, None)  # round-off can make a flat direction slightly negative
    major = evecs[:, 1]
    angle = float(np.degrees(np.arctan2(major[1], major[0])))
    width, height = 2.0 * n_std * np.sqrt(evals[::-1])
    return (float(mean[0]), float(mean[1])), float(width), float(height), angle


def clusters(
    fit: Fit,
    data: Any,
    x: str,
    y: str,
    ax: Axes | None = None,
    *,
    n_std: float = 2.0,
) -> Axes:
    """Scatter two columns coloured by cluster, with each component's ellipse and mean.

    Points are coloured by ``fit.predict(data)``, the most probable component of each row. Each
    component's mean and covariance are projected onto the two columns on the data's original
    scale (variances alone for ``covariance_type="diag"``), and drawn as the ellipse at ``n_std``
    standard deviations with the mean marked by a cross.

    Parameters
    ----------
    fit : Fit
        A fitted mixture model, e.g. of :class:`ppgen.GaussianMixture`.
    data : DataFrame or ndarray
        Rows to plot, holding the fitted columns (a DataFrame may hold others too).
    x, y : str
        Names of two different fitted columns (``"x0"``, ``"x1"``, ... for array fits).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    n_std : float, default 2.0
        Mahalanobis radius of the ellipses.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If ``x`` or ``y`` is not a fitted column (the message names it), if they are the same,
        if ``n_std`` is not positive, or if the model has no cluster memberships.
    """
    from matplotlib.patches import Ellipse

    ix, iy = _column_index(fit, x), _column_index(fit, y)
    if ix == iy:
        raise ValueError(f"x and y must be different columns; both are {x!r}")
    if not n_std > 0:
        raise ValueError(f"n_std must be positive, got {n_std!r}")
    name = type(fit.model).__name__
    if not hasattr(fit.model, "predict_proba"):
        raise ValueError(
            f"{name} has no cluster memberships to plot; clusters() needs a mixture model "
            "such as GaussianMixture"
        )
    with torch.no_grad():
        described = fit.model.describe(dict(fit.params), fit.schema)
    means = described["means"].detach().cpu().numpy()
    if "covariances" in described:
        covs = described["covariances"].detach().cpu().numpy()[:, [ix, iy]][:, :, [ix, iy]]
    else:
        covs = np.stack(
            [np.diag(v) for v in described["variances"].detach().cpu().numpy()[:, [ix, iy]]]
        )
    weights = described["weights"].detach().cpu().numpy()

    data = _columns(fit, data)
    labels = fit.predict(data)
    colors = _colors(len(means))
    ax = _axes(ax)
    ax.scatter(
        _column_values(fit, data, x, ix),
        _column_values(fit, data, y, iy),
        c=[colors[k] for k in labels],
        s=14,
        alpha=0.7,
        linewidths=0,
    )
    for k, (mean, cov) in enumerate(zip(means[:, [ix, iy]], covs, strict=True)):
        center, width, height, angle = ellipse_geometry(mean, cov, n_std)
        ax.add_patch(
            Ellipse(
                center,
                width,
                height,
                angle=angle,
                fill=False,
                edgecolor=colors[k],
                linewidth=2,
                label=f"component {k} (weight {weights[k]:.2f})",
            )
        )
    ax.plot(means[:, ix], means[:, iy], linestyle="none", marker="X", color="black", label="means")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{name}: {len(means)} components, ellipses at {n_std:g} sd")
    ax.legend(loc="best", fontsize="small")
    return ax


def _is_categorical(values: pd.Series) -> bool:
    dtype = values.dtype
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def latent(fit: Fit, data: Any, color: str | None = None, ax: Axes | None = None) -> Axes:
    """Scatter the posterior means of the first two latent dimensions of each row.

    Parameters
    ----------
    fit : Fit
        A fitted latent-variable model, e.g. of :class:`ppgen.PPCA` with two or more
        components.
    data : DataFrame or ndarray
        Rows to embed, holding the fitted columns (a DataFrame may hold others too, such as the
        ``color`` column).
    color : str, optional
        A column of ``data`` to colour the points by: categorical, boolean or text columns get
        one colour per value and a legend; numeric columns a colour scale and a colorbar.
        Convert integer class codes to ``category`` for a legend.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If the model has no latent variables, fewer than two, or ``color`` is not a column of
        ``data`` (the message names it).
    """
    name = type(fit.model).__name__
    if not hasattr(fit.model, "posterior"):
        raise ValueError(
            f"{name} has no continuous latent variables to plot; "
            "latent() needs a model such as PPCA"
        )
    if color is not None:
        if not isinstance(data, pd.DataFrame):
            raise ValueError("color names a column, so data must be a DataFrame")
        if color not in data.columns:
            raise ValueError(
                f"color column {color!r} is not in data; its columns are "
                f"{', '.join(map(repr, data.columns))}"
            )
    z = fit.transform(_columns(fit, data))
    if z.shape[1] < 2:
        raise ValueError(f"latent() plots two latent dimensions; this {name} has {z.shape[1]}")
    ax = _axes(ax)
    if color is None:
        ax.scatter(z[:, 0], z[:, 1], s=14, alpha=0.8)
    elif _is_categorical(data[color]):
        values = data[color].reset_index(drop=True)
        groups = list(values.astype("category").cat.categories)
        for group, col in zip(groups, _colors(len(groups)), strict=True):
            rows = (values == group).to_numpy()
            ax.scatter(z[rows, 0], z[rows, 1], s=14, alpha=0.8, color=col, label=str(group))
        if values.isna().any():
            rows = values.isna().to_numpy()
            ax.scatter(z[rows, 0], z[rows, 1], s=14, alpha=0.8, color="lightgrey", label="missing")
        ax.legend(title=color, loc="best", fontsize="small")
    else:
        import matplotlib as mpl

        cmap = mpl.colormaps["viridis"].with_extremes(bad="lightgrey")
        values = data[color].to_numpy(dtype=float, na_value=np.nan)
        points = ax.scatter(
            z[:, 0], z[:, 1], c=values, cmap=cmap, s=14, alpha=0.8, plotnonfinite=True
        )
        ax.figure.colorbar(points, ax=ax, label=color)
    ax.set_xlabel("latent 1 (posterior mean)")
    ax.set_ylabel("latent 2 (posterior mean)")
    ax.set_title(f"{name}: rows in latent space")
    return ax
