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

__all__ = [
    "clusters",
    "ellipse_geometry",
    "image_grid",
    "imputed_densities",
    "latent",
    "losses",
    "missingness",
    "states",
    "transitions",
]


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

    The loss is the engine's (its ``loss_label`` labels the axis): the negative log-likelihood
    (EM of a maximum-likelihood model; the negative log joint with ``prior="default"``), the
    negative log joint density (MAP, and the MAP run that starts NUTS) or the negative ELBO
    (SVI), in nats on the encoded (standardized) scale.

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
    engine = fit.engine
    label = engine.loss_label
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
    ax.set_xlabel(engine.step_label)
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
    if not type(fit.model).implements("predict_proba"):
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
    if not type(fit.model).implements("posterior"):
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


# -- hidden Markov models -------------------------------------------------------------------------


def _require_hmm(fit: Fit, what: str) -> None:
    model = fit.model
    if not model.sequential or not type(model).implements("viterbi"):
        raise ValueError(
            f"{what}() needs a fitted hidden Markov model (ppgen.HMM); "
            f"got a fit of {type(model).__name__}"
        )


def _pick_sequence(enc: Any, sequence: Any) -> int:
    """Position of ``sequence``: a sequence id (dict key, id-column value) or else a position."""
    ids = list(enc.ids)
    if sequence in ids:
        return ids.index(sequence)
    if isinstance(sequence, (int, np.integer)) and 0 <= int(sequence) < len(ids):
        return int(sequence)
    shown = ", ".join(map(repr, ids[:10])) + (", ..." if len(ids) > 10 else "")
    raise ValueError(
        f"sequence {sequence!r} is neither an id nor a position of the data's {len(ids)} "
        f"sequence(s) (ids: {shown})"
    )


def states(fit: Fit, data: Any, column: str, ax: Axes | None = None, *, sequence: Any = 0) -> Axes:
    """Plot one column of a sequence over time, coloured by its decoded hidden state.

    Each time step is a point coloured by the most probable state path (Viterbi, as
    ``fit.predict(data)`` returns it), joined by a thin grey line; each state's mean of the
    column (on the data's original scale) is a dashed horizontal line in the state's colour.
    Missing entries leave a gap. The x axis is the time column when the fit has one, else the
    step number.

    Parameters
    ----------
    fit : SequenceFit
        A fit of :class:`ppgen.HMM`.
    data : sequences
        In the form the model was fitted on (a list or dict of tables, one long DataFrame with
        the id and time columns, or one table); ``None`` plots the training data.
    column : str
        A fitted continuous, count or binary column (``"x0"``, ... for array fits).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    sequence : int or label, default 0
        Which sequence: its id (dict key or id-column value) or, when no id matches, its
        position.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If the fit is not of a hidden Markov model, ``column`` is not a fitted column (the
        message names it) or is categorical, or ``sequence`` names no sequence.
    """
    _require_hmm(fit, "states")
    j = _column_index(fit, column)
    col = fit.schema.columns[j]
    if col.kind == "categorical":
        raise ValueError(
            f"column {column!r} is categorical and has no mean to plot; "
            "choose a continuous, count or binary column"
        )
    enc = fit.encode(data)
    s = _pick_sequence(enc, sequence)
    n = int(enc.lengths[s])
    params = dict(fit.params)
    with torch.no_grad():
        path = fit.model.viterbi(enc.x, enc.mask, params, enc.lengths)[s, :n].cpu().numpy()
        means = fit.model.emission.means(params)[:, j].cpu().numpy() * col.scale + col.loc
    values = enc.x[s, :n, j].cpu().numpy().astype(float) * col.scale + col.loc
    values[~enc.mask[s, :n, j].cpu().numpy()] = np.nan
    times = enc.times[s]
    steps = np.arange(n) if times is None else np.asarray(times)
    K = fit.model.n_states
    colors = _colors(K)
    ax = _axes(ax)
    ax.plot(steps, values, color="lightgrey", linewidth=0.8, zorder=1)
    ax.scatter(steps, values, c=[colors[k] for k in path], s=16, zorder=2, linewidths=0)
    for k in range(K):
        share = float(np.mean(path == k))
        ax.axhline(
            means[k],
            color=colors[k],
            linestyle="--",
            linewidth=1.5,
            label=f"state {k} mean {means[k]:.4g} ({share:.0%} of steps)",
        )
    fmt = fit.sequence_format
    ax.set_xlabel(fmt.time_column if times is not None and fmt.time_column else "time step")
    ax.set_ylabel(column)
    title = f"{type(fit.model).__name__}({K}): decoded states"
    if len(enc.ids) > 1:
        title += f", sequence {enc.ids[s]!r}"
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return ax


def transitions(fit: Fit, ax: Axes | None = None) -> Axes:
    """Heatmap of the fitted transition matrix, with each probability written in its cell.

    Row ``i`` is the state at one step and column ``j`` the state at the next: the cell holds
    p(z_{t+1} = j | z_t = i), so every row sums to one. Point fits show the estimate; SVI and
    NUTS fits the posterior mean (``fit.params``).

    Parameters
    ----------
    fit : SequenceFit
        A fit of :class:`ppgen.HMM`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If the fit is not of a hidden Markov model.
    """
    _require_hmm(fit, "transitions")
    matrix = fit.params["transition"].detach().cpu().numpy()
    K = matrix.shape[0]
    ax = _axes(ax)
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(K):
        for j in range(K):
            ax.text(
                j,
                i,
                f"{matrix[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if matrix[i, j] > 0.6 else "black",
                fontsize="small" if K > 6 else "medium",
            )
    ax.set_xticks(range(K))
    ax.set_yticks(range(K))
    ax.set_xlabel("state at step t + 1")
    ax.set_ylabel("state at step t")
    ax.set_title(f"{type(fit.model).__name__}({K}): transition probabilities")
    ax.figure.colorbar(image, ax=ax, label="probability")
    return ax


def loadings(report: Any, ax: Axes | None = None, *, annotate: bool | None = None) -> Axes:
    """Heat map of factor loadings: items down, factors across, red positive, blue negative.

    Parameters
    ----------
    report : ppgen.evaluate.FactorReport or DataFrame
        :func:`ppgen.evaluate.factor_report`'s result (its pattern loadings), or any items x
        factors table of loadings (e.g. ``report.structure``).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    annotate : bool, optional
        Write each loading in its cell; by default when the table has at most 200 cells.

    Returns
    -------
    matplotlib.axes.Axes
    """
    table = report if isinstance(report, pd.DataFrame) else getattr(report, "loadings", None)
    if not isinstance(table, pd.DataFrame):
        raise ValueError(
            "loadings takes ppgen.evaluate.factor_report(fit, data) or an items x factors "
            f"DataFrame, got {type(report).__name__}"
        )
    values = table.to_numpy(dtype=float)
    n_items, n_factors = values.shape
    ax = _axes(ax)
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto")
    if annotate if annotate is not None else values.size <= 200:
        for i in range(n_items):
            for j in range(n_factors):
                strong = abs(values[i, j]) > 0.6
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center",
                        color="white" if strong else "black", fontsize="x-small")  # fmt: skip
    ax.set_xticks(range(n_factors), [str(c) for c in table.columns])
    ax.set_yticks(range(n_items), [str(r) for r in table.index])
    ax.set_xlabel("factor")
    ax.set_title("factor loadings")
    ax.figure.colorbar(image, ax=ax, label="loading")
    return ax


# -- multiple imputation ------------------------------------------------------------------------


def _missing_patterns(data: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Columns (fewest missing first), distinct patterns (1 = observed) and their row counts.

    Patterns are sorted as mice's ``md.pattern``: the complete rows first, then by the number of
    missing entries, ties by frequency (most frequent first).
    """
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(np.asarray(data, float))
    observed = frame.notna()
    order = observed.sum(axis=0).sort_values(ascending=False, kind="stable").index
    observed = observed[order].astype(int)
    counts = observed.value_counts(sort=False)
    patterns = np.asarray(list(counts.index), dtype=int).reshape(len(counts), len(order))
    n = counts.to_numpy()
    keys = np.lexsort((-n, (1 - patterns).sum(1)))
    return [str(c) for c in order], patterns[keys], n[keys]


def missingness(data: Any, ax: Axes | None = None) -> Axes:
    """The missing-data patterns of a table, like mice's ``md.pattern``.

    One row per distinct pattern (observed in blue, missing in red), columns ordered from the
    fewest to the most missing entries. The left labels count the rows with each pattern, the
    right labels the missing entries in it; the top labels count each column's missing entries.

    Parameters
    ----------
    data : DataFrame or ndarray
        The table, missing entries as NaN (or None, pd.NA).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.images[0]`` holds the pattern matrix (1 observed, 0 missing); its y tick labels are
        the pattern counts.
    """
    from matplotlib.colors import ListedColormap

    columns, patterns, counts = _missing_patterns(data)
    if not columns:
        raise ValueError("data has no columns")
    ax = _axes(ax)
    cmap = ListedColormap(["#d62728", "#1f77b4"])
    ax.imshow(patterns, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(counts)), [str(int(c)) for c in counts])
    ax.set_ylabel("rows with the pattern")
    ax.set_xticks(np.arange(-0.5, len(columns)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(counts)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    right = ax.secondary_yaxis("right")
    right.set_yticks(range(len(counts)), [str(int(k)) for k in (1 - patterns).sum(1)])
    right.set_ylabel("missing entries")
    top = ax.secondary_xaxis("top")
    per_column = ((1 - patterns) * counts[:, None]).sum(0)
    top.set_xticks(range(len(columns)), [str(int(k)) for k in per_column])
    top.set_xlabel("missing entries per column")
    total = int(per_column.sum())
    ax.set_title(f"{len(counts)} missingness patterns, {total} missing entries", fontsize="medium")
    return ax


def _long_imputations(imputations: Any) -> list[pd.DataFrame]:
    if isinstance(imputations, pd.DataFrame):
        if ".imp" not in imputations.columns:
            raise ValueError(
                "a single DataFrame of imputations must be in long format, with an .imp column "
                "(Imputer.transform(format='long'))"
            )
        groups = imputations[imputations[".imp"] > 0].groupby(".imp", sort=True)
        return [g.drop(columns=[".imp", ".id"], errors="ignore") for _, g in groups]
    tables = [
        t if isinstance(t, pd.DataFrame) else pd.DataFrame(np.asarray(t)) for t in imputations
    ]
    if not tables:
        raise ValueError("imputations is empty")
    return tables


def _density_line(ax: Axes, values: np.ndarray, grid: np.ndarray, **style: Any) -> None:
    """A Gaussian KDE of ``values`` on ``grid``; a spike when they cannot be smoothed."""
    from scipy.stats import gaussian_kde

    values = values[np.isfinite(values)]
    if len(values) >= 2 and np.ptp(values) > 0:
        ax.plot(grid, gaussian_kde(values)(grid), **style)
    else:  # one value, or all equal: no bandwidth to smooth with
        at = float(values[0]) if len(values) else np.nan
        ax.plot([at, at], [0.0, 1.0], **style)


def imputed_densities(
    data: Any, imputations: Any, columns: list[str] | None = None, *, n_cols: int = 3
) -> Any:  # -> matplotlib.figure.Figure
    """Density of the observed values against each imputation's imputed values, per column.

    The check of mice's ``densityplot``: for every column with missing entries, a kernel
    density of its observed values (thick, blue) and, for each completed table, of the values
    imputed into it (thin, red). Under missingness completely at random the curves agree; under
    missingness at random they may differ, but wildly different curves ask for a look at the
    model.

    Parameters
    ----------
    data : DataFrame
        The incomplete table that was imputed.
    imputations : list of DataFrame, or DataFrame
        The completed tables (``Imputer.transform``, :meth:`ppgen.Fit.impute`), or the long
        format with an ``.imp`` column (rows with ``.imp`` 0 are ignored).
    columns : list of str, optional
        Columns to show; default every numeric column with missing entries.
    n_cols : int, default 3
        Panels per row of the grid.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per column (``fig.axes``), each with ``1 + m`` lines: the observed density
        first, then one per imputation.
    """
    import matplotlib.pyplot as plt

    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(np.asarray(data, float))
    tables = _long_imputations(imputations)
    missing = frame.isna()
    if columns is None:
        columns = [
            c
            for c in frame.columns
            if missing[c].any() and pd.api.types.is_numeric_dtype(frame[c].dtype)
        ]
        if not columns:
            raise ValueError("data has no numeric column with missing values to plot")
    for c in columns:
        if c not in frame.columns:
            raise ValueError(f"column {c!r} is not in data")
        if not pd.api.types.is_numeric_dtype(frame[c].dtype):
            raise ValueError(f"column {c!r} is not numeric; imputed_densities plots numbers")
        for table in tables:
            if c not in table.columns or len(table) != len(frame):
                raise ValueError(
                    f"every imputation must be a completed copy of data with column {c!r} and "
                    f"{len(frame)} rows"
                )
    n_cols = max(1, min(int(n_cols), len(columns)))
    n_rows = -(-len(columns) // n_cols)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(3.6 * n_cols, 2.8 * n_rows), layout="constrained", squeeze=False
    )
    for ax in axes.flat[len(columns) :]:
        fig.delaxes(ax)
    for ax, c in zip(axes.flat, columns, strict=False):
        rows = missing[c].to_numpy()
        observed = frame.loc[~rows, c].to_numpy(dtype=float)
        imputed = [t[c].to_numpy(dtype=float)[rows] for t in tables]
        everything = np.concatenate([observed, *imputed])
        everything = everything[np.isfinite(everything)]
        lo, hi = float(everything.min()), float(everything.max())
        pad = 0.1 * (hi - lo) if hi > lo else 1.0
        grid = np.linspace(lo - pad, hi + pad, 200)
        _density_line(ax, observed, grid, color="#1f77b4", linewidth=2.2, label="observed")
        for j, values in enumerate(imputed):
            label = "imputed" if j == 0 else None
            _density_line(ax, values, grid, color="#d62728", linewidth=0.8, alpha=0.6, label=label)
        ax.set_title(f"{c} ({int(rows.sum())} missing)", fontsize="medium")
        ax.set_ylabel("density")
    axes.flat[0].legend(fontsize="small", loc="best")
    fig.suptitle(f"observed and imputed values, {len(tables)} imputations")
    return fig


# -- images ---------------------------------------------------------------------------------------


def image_grid(
    images: Any,
    shape: tuple[int, int] = (8, 8),
    *,
    n_cols: int | None = None,
    ax: Axes | None = None,
    cmap: str = "gray_r",
    vmin: float | None = None,
    vmax: float | None = None,
    pad: int = 1,
    title: str | None = None,
) -> Axes:
    """Draw images stored as table rows (one pixel per column) as a grid of tiles.

    Samples, reconstructions and interpolations of an image model come back as tables with one
    column per pixel (``fit.sample``, ``fit.interpolate``); this puts them back into their
    ``shape`` and tiles them row by row into one mosaic, drawn with a single ``imshow`` on one
    intensity scale, so that tiles compare with each other.

    Parameters
    ----------
    images : DataFrame, ndarray or Tensor
        ``(n, h * w)`` rows of pixels in row-major order (scikit-learn's ``digits`` layout), or
        ``(n, h, w)``; a single image may be passed as ``(h * w,)`` or ``(h, w)``.
    shape : (int, int)
        Height and width of one image.
    n_cols : int, optional
        Tiles per row of the grid; default ``min(n, 10)``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    cmap : str
        Matplotlib colormap; ``"gray_r"`` draws high values dark (ink on paper).
    vmin, vmax : float, optional
        Ends of the intensity scale; default the smallest and largest finite pixel of all images.
    pad : int
        Blank pixels between tiles (drawn in the axes' background colour).
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
        With one ``AxesImage`` (``ax.images[0]``) holding the mosaic; padding is NaN.

    Raises
    ------
    ValueError
        If the rows do not hold ``h * w`` pixels, there are no images, or an option is invalid.
    """
    h, w = (int(s) for s in shape)
    if h < 1 or w < 1:
        raise ValueError(f"shape must hold two positive integers, got {shape!r}")
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images, dtype=float)
    if arr.ndim == 1 or (arr.ndim == 2 and arr.shape == (h, w)):
        arr = arr.reshape(1, -1)
    if arr.ndim == 3:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2 or arr.shape[1] != h * w:
        raise ValueError(
            f"images must be rows of {h} x {w} = {h * w} pixels, got an array of shape "
            f"{np.shape(images)}"
        )
    n = arr.shape[0]
    if n == 0:
        raise ValueError("there are no images to draw")
    n_cols = min(n, 10) if n_cols is None else int(n_cols)
    pad = int(pad)
    if n_cols < 1 or pad < 0:
        raise ValueError(f"n_cols must be positive and pad non-negative, got {n_cols}, {pad}")
    n_rows = -(-n // n_cols)
    mosaic = np.full((n_rows * (h + pad) - pad, n_cols * (w + pad) - pad), np.nan)
    for i, image in enumerate(arr.reshape(n, h, w)):
        r, c = divmod(i, n_cols)
        mosaic[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = image
    finite = arr[np.isfinite(arr)]
    if vmin is None:
        vmin = float(finite.min()) if finite.size else 0.0
    if vmax is None:
        vmax = float(finite.max()) if finite.size else 1.0
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(
            figsize=(0.7 * n_cols * (w + pad) / 9 + 0.4, 0.7 * n_rows * (h + pad) / 9 + 0.4),
            layout="constrained",
        )
    ax.imshow(mosaic, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title, fontsize="medium")
    return ax


# Issue 15: a diffusion model's bound, step by step.
__all__ += ["diffusion_terms"]


def diffusion_terms(fit: Fit, data: Any, ax: Axes | None = None, *, seed: int = 0) -> Axes:
    """Plot each diffusion step's cost in a diffusion model's bound, nats per row.

    The mean over the rows of ``data`` of each step's KL term ``KL(q(y_{t-1} | y_t, y_0) ||
    p(y_{t-1} | y_t))`` (``t = 2..T``, one draw of ``y_t`` per row; log scale), with the
    decoder's and the prior's terms and the total in the title (encoded scale: the
    standardization's log-Jacobian is not added). Where the curve is high, the network's
    denoising at that noise level costs the most likelihood.

    Parameters
    ----------
    fit : Fit
        A fit of :class:`ppgen.models.diffusion.Diffusion` (any model with ``bound_terms``).
    data : DataFrame, ndarray or Tensor
        Rows to evaluate, in the form the model was fitted on.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    seed : int
        Seed of the draws of ``y_t``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from ppgen._utils import seeded

    model = fit.model
    if not type(model).implements("bound_terms"):
        raise ValueError(
            f"{type(model).__name__} has no per-step bound terms; fit a Diffusion model"
        )
    enc = fit.encode(data)
    with seeded(seed, enc.x.device), torch.no_grad():
        terms = model.bound_terms(enc.x, enc.mask).mean(0).double().cpu().numpy()
    ax = _axes(ax)
    n_steps = terms.size - 1
    if n_steps > 1:
        steps = np.arange(2, n_steps + 1)
        ax.plot(steps, np.maximum(-terms[1:n_steps], 1e-12), marker="." if n_steps <= 50 else None)
        ax.set_yscale("log")
    ax.set_xlabel("diffusion step t")
    ax.set_ylabel("KL term of step t (nats per row)")
    ax.set_title(
        f"{fit.model.label()}: bound {terms.sum():.3g} = decoder {terms[0]:.3g} "
        f"- steps {-terms[1:n_steps].sum():.3g} - prior {-terms[n_steps]:.3g}",
        fontsize="medium",
    )
    return ax


# Issue 15: a denoising strip of a diffusion model's reverse chain.
__all__ += ["denoising"]


def denoising(
    fit: Fit,
    n: int = 4,
    steps: int = 6,
    *,
    shape: tuple[int, int] = (8, 8),
    seed: int = 0,
    ax: Axes | None = None,
    cmap: str = "gray_r",
    predicted: bool = False,
) -> Axes:
    """Draw a diffusion model's reverse chain as a strip of images: one row per draw, one tile
    per kept step ``y_t`` (``steps`` steps evenly spaced from T down to 1, on the data scale:
    the standardization undone, noise included) and, last, the sampled image ``x_0``. With
    ``predicted=True`` the tiles are instead the network's estimate of the clean image at
    each step, ``x0hat(y_t, t)``: what the chain is heading for.

    The draws are :meth:`Fit.sample`'s: with the same ``seed`` the last column is
    ``fit.sample(n, seed=seed)``. All tiles share the intensity scale of the sampled images
    (noisier tiles saturate).

    Parameters
    ----------
    fit : Fit
        A fit of :class:`ppgen.Diffusion` on a table whose columns are all continuous pixels.
    n : int
        Number of draws (rows of the strip).
    steps : int
        Number of intermediate states shown per draw (at most T).
    shape : (int, int)
        Height and width of one image (``h * w`` columns).
    seed : int
        Seed of the draws.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    cmap : str
        Matplotlib colormap.
    predicted : bool
        Draw ``x0hat(y_t, t)`` instead of ``y_t``.

    Returns
    -------
    matplotlib.axes.Axes
        As :func:`image_grid`: one mosaic, ``n`` rows of ``steps + 1`` tiles.
    """
    from ppgen._utils import seeded

    model = fit.model
    if not type(model).implements("trajectory"):
        raise ValueError(f"{type(model).__name__} has no reverse chain; fit a Diffusion model")
    kinds = {c.kind for c in fit.schema.columns}
    if kinds != {"continuous"}:
        raise ValueError(
            f"denoising strips are for images (every column continuous); this table has "
            f"{sorted(kinds)} columns"
        )
    n, steps = int(n), int(steps)
    if n < 1 or not 1 <= steps <= model.n_steps:
        raise ValueError(f"n must be positive and steps in 1..{model.n_steps}, got {n}, {steps}")
    times = sorted({int(t) for t in np.linspace(model.n_steps, 1, steps).round()}, reverse=True)
    with seeded(seed, fit.device), torch.no_grad():
        states, x0 = model.trajectory(n, times)
        if predicted:
            states = {t: model.denoise(y, t)[1] for t, y in states.items()}
    # The embedding's continuous block, in the heads' column order, back on the encoded scale.
    cols = list(model.heads.continuous)
    tiles = []
    for t in times:
        enc = x0.clone()
        enc[:, cols] = states[t][:, : len(cols)]
        tiles.append(np.asarray(fit.schema.decode(enc), dtype=float))
    final = np.asarray(fit.schema.decode(x0), dtype=float)
    tiles.append(final)
    strip = np.stack(tiles, 1).reshape(n * len(tiles), -1)  # draw by draw, step by step
    ax = image_grid(
        strip,
        shape,
        n_cols=len(tiles),
        ax=ax,
        cmap=cmap,
        vmin=float(final.min()),
        vmax=float(final.max()),
        title=f"{model.label()}: {'x0hat(y_t)' if predicted else 'y_t'} at t = "
        f"{', '.join(map(str, times))}, then x_0",
    )
    return ax
