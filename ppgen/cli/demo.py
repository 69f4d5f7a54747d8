"""``ppgen demo``: a tour on bundled real data (Old Faithful and the wine cultivars)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppgen.cli._common import add_quiet, format_table, nats, progress

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ppgen.models.base import GenerativeModel

EXAMPLES = """\
examples:
  ppgen demo
  ppgen demo --output /tmp/ppgen-demo --quiet

Fits GaussianMixture to Old Faithful eruptions (EM and MAP), and GaussianMixture and PPCA to the
wine measurements; compares log-likelihoods with scikit-learn (when installed), cross-tabulates
the wine clusters against the cultivars, and writes plots and the faithful fit to --output.
"""


#: One line in ``ppgen --help``, and the top of ``ppgen demo --help``.
HELP = "fit the bundled real data sets and draw plots"
DESCRIPTION = "A tour on bundled real data: Old Faithful and the wine cultivars."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``ppgen demo --help``)."""
    parser.add_argument(
        "--output",
        default="out/demo",
        metavar="DIR",
        help="directory for the plots and the saved fit (default: out/demo)",
    )
    add_quiet(parser, "no progress bars")


def _adjusted_rand_index(a: Sequence, b: Sequence) -> float:
    """Adjusted Rand index of two partitions (Hubert & Arabie 1985): 1 same, about 0 chance."""
    import numpy as np

    _, ai = np.unique(np.asarray(a), return_inverse=True)
    _, bi = np.unique(np.asarray(b), return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) / 2).sum())

    together = pairs(table)
    in_a, in_b = pairs(table.sum(1)), pairs(table.sum(0))
    total = pairs(np.array([len(ai)]))
    expected = in_a * in_b / total if total else 0.0
    best = (in_a + in_b) / 2
    if best == expected:  # both partitions trivial (one block, or all singletons): identical
        return 1.0
    return (together - expected) / (best - expected)


def _sklearn_reference(data: pd.DataFrame, model: GenerativeModel) -> tuple[float, str] | None:
    """scikit-learn's mean log-likelihood per row for the same model, or None without sklearn."""
    import numpy as np

    try:
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture
    except ImportError:
        return None
    x = data.to_numpy(dtype=float)
    if hasattr(model, "covariance_type"):
        ref = GaussianMixture(
            model.n_components, covariance_type=model.covariance_type, n_init=10, random_state=0
        )
        return float(ref.fit(x).score(x)), "GaussianMixture n_init=10"
    if not model.standardize:
        return float(PCA(model.n_components).fit(x).score(x)), "PCA.score"
    # Isotropic noise is not scale-free: PPCA of standardized columns is PCA of the z-scores,
    # plus the standardization's log-Jacobian to put it on the data's scale.
    loc, scale = x.mean(0), x.std(0)
    z = (x - loc) / scale
    score = PCA(model.n_components).fit(z).score(z) - np.log(scale).sum()
    return float(score), "PCA.score of z-scores"


def _save_figure(path: Path, draw: Callable[[Any], Any], size: tuple[float, float]) -> None:
    # A bare Figure needs no pyplot state and no display backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    draw(fig.subplots())
    fig.savefig(path, dpi=120)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    import ppgen
    from ppgen import plot

    start = time.perf_counter()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    shown = progress(args.quiet)

    faithful = ppgen.datasets.load("faithful")
    wine = ppgen.datasets.load("wine").rename(columns={"target": "cultivar"})
    features = wine.drop(columns="cultivar")
    print("ppgen demo: Gaussian mixtures and probabilistic PCA on real data")
    print(f"  faithful: {len(faithful)} Old Faithful eruptions ({', '.join(faithful.columns)})")
    print(
        f"  wine:     {len(features)} Italian wines, {features.shape[1]} chemical "
        "measurements; the cultivar is held out\n"
    )

    # Default fits, as a user makes them: maximum likelihood by EM (mixtures: the best of 10
    # screened k-means++ starts), against scikit-learn's best of 10 restarts.
    runs = [
        ("faithful", faithful, ppgen.GaussianMixture(2, "full")),
        ("wine", features, ppgen.GaussianMixture(3, "diag")),
        ("wine", features, ppgen.PPCA(2, standardize=True)),  # PCA of the correlation matrix
    ]
    fits, rows = [], []
    for name, data, model in runs:
        fit = ppgen.fit(model, data, seed=0, progress=shown)
        fits.append(fit)
        ref = _sklearn_reference(data, model)
        row = [name, model.label(), fit.method, nats(fit.score(data))]
        rows.append(row + (["-", ""] if ref is None else [nats(ref[0]), f"({ref[1]})"]))
    faithful_em, wine_gmm, wine_ppca = fits

    print("mean log-likelihood per row (nats, original scale; higher is better): ppgen's")
    print("default fit (maximum likelihood by EM) next to scikit-learn's best of 10 restarts")
    print(format_table(rows, header=["data", "model", "method", "ppgen", "scikit-learn", ""]))
    if all(row[4] == "-" for row in rows):
        print("(scikit-learn is not installed: no reference values)")

    clusters = pd.Series(wine_gmm.predict(features), name="cluster")
    print(f"\nwine: {wine_gmm.model.label()} clusters (rows) against cultivars (columns)")
    print(pd.crosstab(clusters, wine["cultivar"]).to_string())
    ari = _adjusted_rand_index(clusters, wine["cultivar"])
    print(f"adjusted Rand index: {ari:.3f} (1 = the cultivars exactly, 0 = chance)")

    written = [out / "faithful.ppgen"]
    faithful_em.save(str(written[0]))
    figures = [
        (
            "faithful_em.png",
            lambda ax: plot.losses(faithful_em, ax, log=True).set_title(
                f"faithful: {faithful_em.model.label()}, EM convergence"
            ),
            (6.0, 4.0),
        ),
        (
            "clusters.png",
            lambda ax: plot.clusters(faithful_em, faithful, "eruptions", "waiting", ax),
            (6.0, 4.5),
        ),
        (
            "wine_ppca.png",
            lambda ax: plot.latent(wine_ppca, wine, color="cultivar", ax=ax),
            (6.0, 4.5),
        ),
    ]
    for filename, draw, size in figures:
        written.append(out / filename)
        _save_figure(written[-1], draw, size)

    print(f"\nfiles written ({time.perf_counter() - start:.1f} s):")
    print(format_table([(f"  {p}", f"{p.stat().st_size / 1024:.1f} kB") for p in written]))
    return 0
