"""Synthetic-data quality: how far a synthetic table is from a real one, by tests and scores.

Free functions over two tables with the same columns (mixed kinds: continuous, count, binary,
categorical; missing values allowed), each returning a frozen result object:

- :func:`c2st`: classifier two-sample test (Lopez-Paz & Oquab 2017). A gradient-boosted
  (scikit-learn's ``HistGradientBoostingClassifier``) or logistic classifier learns to tell the
  real rows from the synthetic ones on one part of the pooled rows; its AUC on the other part,
  the detection score ``1 - (2 max(AUC, 0.5) - 1)`` (SDMetrics' ``LogisticDetection``) and a
  permutation p-value.
- :func:`mmd`: unbiased squared maximum mean discrepancy with a Gaussian kernel whose bandwidth
  is the median pairwise distance (Gretton et al. 2012), permutation p-value.
- :func:`prdc`: k-nearest-neighbour precision, recall, density and coverage (Naeem, Oh, Uh, Choi
  & Yoo 2020, "Reliable fidelity and diversity metrics for generative models").
- :func:`quality`: per-column shape (Kolmogorov-Smirnov complement for numbers, total-variation
  complement for labels) and per-pair trend (correlation similarity for two numbers, contingency
  similarity otherwise) exactly as SDMetrics 0.32 defines its metrics.
- :func:`dcr`: distance from each synthetic row to its closest real record (privacy: copies of
  training rows sit at distance 0), with a held-out real table as the yardstick.

Rows are compared on one numeric encoding read from the real table (:class:`ppgen.data.Schema`):
continuous columns standardized (on their transformed scale where the schema keeps a support),
counts standardized, a label change counts as distance 1 (one-hot columns scaled by 1/sqrt(2)),
a missing entry is the column's real mean plus a missing indicator. Note (TabPC, arXiv
2603.23016): a fully factorized model can score the best shape while a gradient-boosted detector
catches it, so lead with held-out likelihood and :func:`c2st`, never with shape alone.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ppgen.data import Schema

__all__ = [
    "C2STResult",
    "DCRResult",
    "MMDResult",
    "PRDCResult",
    "QualityResult",
    "c2st",
    "dcr",
    "features",
    "mmd",
    "prdc",
    "quality",
]

CLASSIFIERS = ("gbm", "logistic")
_NUMERIC = ("continuous", "count", "binomial")
# SDMetrics rounds to this many decimals before its KS test (sys.float_info.dig - 1).
_KS_DECIMALS = 14
_CONTINGENCY_BINS = 10


# -- encoding -----------------------------------------------------------------------------


def _frames(real: Any, synthetic: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables as DataFrames with the real table's columns, in its order."""
    frames = []
    for name, table in (("real", real), ("synthetic", synthetic)):
        if isinstance(table, torch.Tensor):
            table = table.detach().cpu().numpy()
        if not isinstance(table, pd.DataFrame):
            table = np.asarray(table)
            if table.ndim != 2:
                raise ValueError(f"{name} must be a 2-D table; got shape {table.shape}")
            table = pd.DataFrame(table, columns=[f"x{j}" for j in range(table.shape[1])])
        if len(table) < 2:
            raise ValueError(f"{name} needs at least 2 rows; got {len(table)}")
        frames.append(table.reset_index(drop=True))
    real, synthetic = frames
    missing = [c for c in real.columns if c not in synthetic.columns]
    extra = [c for c in synthetic.columns if c not in real.columns]
    if missing or extra:
        raise ValueError(
            f"real and synthetic tables need the same columns; synthetic lacks {missing}, "
            f"has extra {extra}"
        )
    return real, synthetic[list(real.columns)]


def features(
    real: Any, synthetic: Any, schema: Schema | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Both tables as float64 feature matrices on one scale read from the real table.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame, numpy.ndarray or torch.Tensor
        Tables with the same columns.
    schema : Schema, optional
        Column kinds; default ``Schema.infer(real)``.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(n_real, d)`` and ``(n_synthetic, d)``: numeric columns standardized by the real
        mean and standard deviation (continuous ones on the schema's scale), label columns
        one-hot divided by sqrt(2) so that any change of label is distance 1, and a 0/1
        indicator for every column with a missing entry (the entry itself is the real mean).

    Raises
    ------
    ValueError
        If the columns differ, or the synthetic table holds a label the real one lacks.
    """
    real, synthetic = _frames(real, synthetic)
    schema = schema if schema is not None else Schema.infer(real)
    x, y = _encode_tables(schema, [real, synthetic])
    return x, y


def _encode_tables(schema: Schema, tables: list[pd.DataFrame]) -> list[np.ndarray]:
    """:func:`features` of several tables at once, scaled by the first; a column gets a missing
    indicator in all of them when it has a missing entry in any, so the widths agree."""
    encoded = [schema.encode(t, dtype=torch.float64) for t in tables]
    # Undo the schema's standardization (keeping its log/logit transforms): for a constant
    # column its scale can be a rounding residue (1e-17), and the scale below is the real's.
    loc = np.array([c.loc for c in schema.columns])
    scale = np.array([c.scale for c in schema.columns])
    values = [e.x.cpu().numpy() * scale + loc for e in encoded]
    masks = [e.mask.cpu().numpy() for e in encoded]
    blocks: list[list[np.ndarray]] = [[] for _ in tables]
    for j, column in enumerate(schema.columns):
        observed = masks[0][:, j]
        if column.kind in _NUMERIC:
            seen = values[0][observed, j]
            loc = seen.mean() if seen.size else 0.0
            # A constant column (np.ptp 0; its std may round to 1e-17, not 0) keeps its units.
            scale = seen.std() if seen.size > 1 and np.ptp(seen) > 0 else 1.0
            for block, x, m in zip(blocks, values, masks, strict=True):
                block.append(np.where(m[:, j], (x[:, j] - loc) / scale, 0.0)[:, None])
        else:
            levels = column.n_categories
            for block, x, m in zip(blocks, values, masks, strict=True):
                codes = np.where(m[:, j], x[:, j], -1).astype(np.int64)
                onehot = (codes[:, None] == np.arange(levels)[None, :]).astype(np.float64)
                # A binary column is one number: its change is distance 1 as it is.
                block.append(onehot[:, 1:] if levels == 2 else onehot / math.sqrt(2.0))
        if not all(m[:, j].all() for m in masks):
            for block, m in zip(blocks, masks, strict=True):
                block.append((~m[:, j]).astype(np.float64)[:, None])
    return [np.hstack(block) for block in blocks]


def _subsample(x: np.ndarray, max_rows: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_rows is None or len(x) <= max_rows:
        return x
    return x[np.sort(rng.choice(len(x), size=max_rows, replace=False))]


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _check_max_rows(max_rows: int | None) -> int | None:
    return None if max_rows is None else _check_int(max_rows, "max_rows", 2)


def _sklearn() -> Any:
    try:
        import sklearn  # noqa: F401
    except ImportError:  # pragma: no cover - scikit-learn is in the data and test extras
        raise ImportError(
            "the classifier two-sample test and closest-record distances need scikit-learn: "
            "pip install 'ppgen[data]'"
        ) from None


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances, exact (no |a|^2 + |b|^2 - 2ab cancellation)."""
    return (
        torch.cdist(
            torch.from_numpy(a), torch.from_numpy(b), compute_mode="donot_use_mm_for_euclid_dist"
        ).numpy()
        ** 2
    )


# -- classifier two-sample test ---------------------------------------------------------------


@dataclass(frozen=True)
class C2STResult:
    """A classifier two-sample test.

    Attributes
    ----------
    auc : float
        Held-out ROC AUC of the classifier telling synthetic rows (positive) from real ones;
        0.5 when it cannot tell them apart.
    detection : float
        ``1 - (2 max(auc, 0.5) - 1)``: 1 for indistinguishable tables, 0 for separable ones.
    p_value : float
        One-sided permutation p-value of ``auc`` under "same distribution": the held-out labels
        are permuted while the classifier's scores stay fixed (exact, as the classifier never
        saw the held-out rows).
    classifier : str
        ``"gbm"`` or ``"logistic"``.
    n_train, n_test : int
        Pooled rows the classifier was trained on and scored on.
    """

    auc: float
    detection: float
    p_value: float
    classifier: str
    n_train: int
    n_test: int

    def __str__(self) -> str:
        return (
            f"C2ST ({self.classifier}): AUC {self.auc:.3f}, detection {self.detection:.3f}, "
            f"p = {self.p_value:.3g} ({self.n_test} held-out rows)"
        )


def _auc_from_ranks(ranks: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC for each column of the 0/1 matrix ``positive`` (rows: items)."""
    n_pos = positive.sum(axis=0)
    n_neg = positive.shape[0] - n_pos
    return (ranks @ positive - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _classifier(name: str, seed: int) -> Any:
    if name == "gbm":
        from sklearn.ensemble import HistGradientBoostingClassifier

        # Early stopping on an internal 10% split: the default 100 rounds overfit noise on a
        # few thousand rows and cost power against small shifts.
        return HistGradientBoostingClassifier(early_stopping=True, random_state=seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000)


def c2st(
    real: Any,
    synthetic: Any,
    classifier: str = "gbm",
    *,
    seed: int = 0,
    test_size: float = 0.3,
    n_permutations: int = 1000,
    schema: Schema | None = None,
) -> C2STResult:
    """Classifier two-sample test: can a classifier tell synthetic rows from real ones?

    The pooled rows (label 1 for synthetic) are split, stratified by label, into a training
    part and a held-out part; the classifier is fitted on the first and its AUC measured on the
    second. Under the null hypothesis (one distribution) the held-out labels are exchangeable
    given the fitted classifier's scores, so permuting them gives an exact p-value.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame, numpy.ndarray or torch.Tensor
        Tables with the same columns.
    classifier : {"gbm", "logistic"}
        ``"gbm"``: scikit-learn's ``HistGradientBoostingClassifier`` (early stopping), which
        catches dependence between columns; ``"logistic"``: logistic regression on the
        features, which sees only shifts of means.
    seed : int
        Seeds the split, the classifier and the permutations.
    test_size : float
        Share of the pooled rows held out, in (0, 1).
    n_permutations : int
        Permutations for the p-value (its resolution is ``1 / (n_permutations + 1)``).
    schema : Schema, optional
        Column kinds; default inferred from ``real``.

    Returns
    -------
    C2STResult

    References
    ----------
    Lopez-Paz, D. & Oquab, M. (2017). Revisiting classifier two-sample tests. ICLR.
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}; got {classifier!r}")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1); got {test_size!r}")
    n_permutations = _check_int(n_permutations, "n_permutations", 1)
    _sklearn()
    from scipy.stats import rankdata
    from sklearn.model_selection import train_test_split

    x_real, x_synth = features(real, synthetic, schema)
    x = np.vstack([x_real, x_synth])
    y = np.r_[np.zeros(len(x_real)), np.ones(len(x_synth))]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    model = _classifier(classifier, seed).fit(x_train, y_train)
    ranks = rankdata(model.predict_proba(x_test)[:, 1])  # ties share their mean rank
    auc = float(_auc_from_ranks(ranks, y_test[:, None])[0])
    rng = np.random.default_rng(seed)
    permuted = np.stack([rng.permutation(y_test) for _ in range(n_permutations)], axis=1)
    null = _auc_from_ranks(ranks, permuted)
    p_value = float((1 + np.sum(null >= auc - 1e-12)) / (1 + n_permutations))
    return C2STResult(
        auc=auc,
        detection=1.0 - (2.0 * max(auc, 0.5) - 1.0),
        p_value=p_value,
        classifier=classifier,
        n_train=len(y_train),
        n_test=len(y_test),
    )


# -- maximum mean discrepancy -----------------------------------------------------------------


@dataclass(frozen=True)
class MMDResult:
    """Unbiased squared maximum mean discrepancy with a permutation p-value.

    Attributes
    ----------
    mmd2 : float
        The unbiased estimate of MMD^2 (it can be slightly negative when the tables agree).
    p_value : float
        Permutation p-value (rows of the pooled table reassigned at random).
    bandwidth : float
        Gaussian kernel bandwidth sigma, ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))``.
    n_real, n_synthetic : int
        Rows used (after subsampling to ``max_rows``).
    """

    mmd2: float
    p_value: float
    bandwidth: float
    n_real: int
    n_synthetic: int

    def __str__(self) -> str:
        return f"MMD^2 {self.mmd2:.4g} (bandwidth {self.bandwidth:.3g}), p = {self.p_value:.3g}"


def median_bandwidth(x: np.ndarray, y: np.ndarray, max_rows: int = 1000, seed: int = 0) -> float:
    """Median heuristic: the median distance between distinct rows of the pooled table."""
    rng = np.random.default_rng(seed)
    pooled = _subsample(np.vstack([x, y]), max_rows, rng)
    d2 = _squared_distances(pooled, pooled)[np.triu_indices(len(pooled), k=1)]
    median = float(np.median(np.sqrt(d2)))
    return median if median > 0 else 1.0


def _mmd2_statistic(kernel: np.ndarray, is_x: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 of every column of ``is_x`` (0/1, pooled rows) given the kernel, diag 0."""
    is_y = 1.0 - is_x
    m, n = is_x.sum(axis=0), is_y.sum(axis=0)
    k_x, k_y = kernel @ is_x, kernel @ is_y
    xx = np.einsum("ib,ib->b", is_x, k_x)
    yy = np.einsum("ib,ib->b", is_y, k_y)
    xy = np.einsum("ib,ib->b", is_x, k_y)
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2.0 * xy / (m * n)


def mmd(
    real: Any,
    synthetic: Any,
    *,
    seed: int = 0,
    bandwidth: float | None = None,
    n_permutations: int = 200,
    max_rows: int | None = 2000,
    schema: Schema | None = None,
) -> MMDResult:
    """Unbiased MMD^2 between two tables with a Gaussian kernel and a permutation test.

    ``MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
    - 2 sum_{i, j} k(x_i, y_j) / (m n)`` (Gretton et al. 2012, eq. 3) on the features of
    :func:`features`.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame, numpy.ndarray or torch.Tensor
        Tables with the same columns.
    seed : int
        Seeds the subsampling and the permutations.
    bandwidth : float, optional
        Kernel bandwidth sigma; default the median heuristic (median distance between pooled
        rows).
    n_permutations : int
        Permutations for the p-value.
    max_rows : int or None
        Rows used from each table at most (the kernel matrix is quadratic in them); ``None``
        uses all.
    schema : Schema, optional
        Column kinds; default inferred from ``real``.

    Returns
    -------
    MMDResult

    References
    ----------
    Gretton, A., Borgwardt, K. M., Rasch, M. J., Schoelkopf, B. & Smola, A. (2012). A kernel
    two-sample test. JMLR 13, 723-773.
    """
    n_permutations = _check_int(n_permutations, "n_permutations", 1)
    max_rows = _check_max_rows(max_rows)
    rng = np.random.default_rng(seed)
    x, y = features(real, synthetic, schema)
    x, y = _subsample(x, max_rows, rng), _subsample(y, max_rows, rng)
    if bandwidth is None:
        bandwidth = median_bandwidth(x, y, seed=seed)
    elif not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive; got {bandwidth!r}")
    pooled = torch.from_numpy(np.vstack([x, y]))
    kernel = torch.exp(torch.cdist(pooled, pooled).square_() / (-2.0 * bandwidth**2)).numpy()
    np.fill_diagonal(kernel, 0.0)
    observed = np.r_[np.ones(len(x)), np.zeros(len(y))]
    mmd2 = float(_mmd2_statistic(kernel, observed[:, None])[0])
    exceed = 0
    # Permutations in blocks: one matrix product per block instead of one per permutation.
    for start in range(0, n_permutations, 50):
        size = min(50, n_permutations - start)
        permuted = np.stack([rng.permutation(observed) for _ in range(size)], axis=1)
        exceed += int(np.sum(_mmd2_statistic(kernel, permuted) >= mmd2 - 1e-15))
    return MMDResult(
        mmd2=mmd2,
        p_value=(1 + exceed) / (1 + n_permutations),
        bandwidth=float(bandwidth),
        n_real=len(x),
        n_synthetic=len(y),
    )


# -- precision, recall, density, coverage --------------------------------------------------------


@dataclass(frozen=True)
class PRDCResult:
    """k-NN precision, recall, density and coverage (Naeem et al. 2020).

    Attributes
    ----------
    precision : float
        Share of synthetic rows inside some real row's k-NN ball (fidelity).
    recall : float
        Share of real rows inside some synthetic row's k-NN ball (diversity).
    density : float
        Mean number of real k-NN balls holding a synthetic row, divided by k (about 1 when
        the tables agree; above 1 when samples crowd where real rows are dense).
    coverage : float
        Share of real rows whose k-NN ball holds a synthetic row.
    k : int
        Neighbours defining the balls.
    """

    precision: float
    recall: float
    density: float
    coverage: float
    k: int


def _kth_neighbour_distance(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row."""
    d = np.sqrt(_squared_distances(x, x))
    # Column 0 of the sorted distances is the row itself (distance 0).
    return np.partition(d, k, axis=1)[:, k]


def prdc(
    real: Any,
    synthetic: Any,
    *,
    k: int = 5,
    seed: int = 0,
    max_rows: int | None = 2000,
    schema: Schema | None = None,
) -> PRDCResult:
    """Precision, recall, density and coverage of a synthetic table (Naeem et al. 2020).

    With ``B(x, r)`` the ball of radius ``r`` around ``x`` and ``NND_k(x)`` the distance from
    ``x`` to its k-th nearest neighbour in its own table: precision is the share of synthetic
    rows in some ``B(X_i, NND_k(X_i))``, recall the share of real rows in some
    ``B(Y_j, NND_k(Y_j))``, density ``1/(k M) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]``,
    coverage the share of real rows whose ball holds a synthetic row. As in the authors' code
    (clovaai/generative-evaluation-prdc), "in the ball" is a strict ``<``.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame, numpy.ndarray or torch.Tensor
        Tables with the same columns.
    k : int
        Nearest neighbours (the authors use 5).
    seed : int
        Seeds the subsampling to ``max_rows``.
    max_rows : int or None
        Rows used from each table at most; ``None`` uses all.
    schema : Schema, optional
        Column kinds; default inferred from ``real``.

    Returns
    -------
    PRDCResult

    References
    ----------
    Naeem, M. F., Oh, S. J., Uh, Y., Choi, Y. & Yoo, J. (2020). Reliable fidelity and diversity
    metrics for generative models. ICML.
    """
    k = _check_int(k, "k", 1)
    max_rows = _check_max_rows(max_rows)
    rng = np.random.default_rng(seed)
    x, y = features(real, synthetic, schema)
    x, y = _subsample(x, max_rows, rng), _subsample(y, max_rows, rng)
    if min(len(x), len(y)) <= k:
        raise ValueError(f"k = {k} needs more than {k} rows in each table")
    radius_real = _kth_neighbour_distance(x, k)
    radius_synth = _kth_neighbour_distance(y, k)
    d = np.sqrt(_squared_distances(x, y))  # (real, synthetic)
    inside_real = d < radius_real[:, None]
    return PRDCResult(
        precision=float(inside_real.any(axis=0).mean()),
        recall=float((d < radius_synth[None, :]).any(axis=1).mean()),
        density=float(inside_real.sum(axis=0).mean() / k),
        coverage=float((d.min(axis=1) < radius_real).mean()),
        k=k,
    )


# -- SDMetrics shape and trend scores -------------------------------------------------------------


@dataclass(frozen=True)
class QualityResult:
    """Column shapes and column-pair trends, as SDMetrics' quality report scores them.

    Attributes
    ----------
    shape : float
        Mean over columns of the KS complement (numeric) or TV complement (labels).
    trend : float
        Mean over column pairs (NaN pairs, e.g. a constant column, left out) of the
        correlation similarity (two numeric columns) or contingency similarity (otherwise).
    score : float
        Mean of ``shape`` and ``trend`` (SDMetrics' overall quality score).
    columns : pandas.DataFrame
        One row per column: ``column``, ``metric``, ``score``.
    pairs : pandas.DataFrame
        One row per pair: ``column_1``, ``column_2``, ``metric``, ``score``.
    """

    shape: float
    trend: float
    score: float
    columns: pd.DataFrame = field(repr=False)
    pairs: pd.DataFrame = field(repr=False)


def ks_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """SDMetrics' ``KSComplement``: 1 - the two-sample KS statistic (NaN dropped)."""
    from scipy.stats import ks_2samp

    a = pd.Series(real).dropna().astype(float).round(_KS_DECIMALS)
    b = pd.Series(synthetic).dropna().astype(float).round(_KS_DECIMALS)
    if a.empty or b.empty:
        return math.nan
    with warnings.catch_warnings():
        # Only the p-value, which is not used, falls back to the asymptotic method on ties.
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(1.0 - ks_2samp(a, b).statistic)


def tv_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """SDMetrics' ``TVComplement``: 1 - total variation distance of the label frequencies.

    As SDMetrics does, a synthetic label the real column lacks gets a real count of 1e-6.
    """
    a = pd.Series(real).dropna().astype(object).value_counts(sort=False)
    b = pd.Series(synthetic).dropna().astype(object).value_counts(sort=False)
    if a.empty or b.empty:
        return math.nan
    a = a.astype(float).reindex(a.index.union(b.index, sort=False)).fillna(1e-6)
    b = b.reindex(a.index, fill_value=0)
    return float(1.0 - 0.5 * np.abs(b / b.sum() - a / a.sum()).sum())


def correlation_similarity(real: pd.DataFrame, synthetic: pd.DataFrame) -> float:
    """SDMetrics' ``CorrelationSimilarity`` (Pearson): 1 - |r_real - r_synthetic| / 2.

    Rows with a missing entry in either column are dropped first; a constant column gives NaN.
    """
    r = []
    for table in (real, synthetic):
        pair = table.dropna().astype(float).to_numpy()
        if len(pair) < 2 or (pair.std(axis=0) == 0).any():
            return math.nan
        r.append(float(np.corrcoef(pair[:, 0], pair[:, 1])[0, 1]))
    return 1.0 - abs(r[0] - r[1]) / 2.0


def contingency_similarity(
    real: pd.DataFrame, synthetic: pd.DataFrame, continuous: tuple[str, ...] = ()
) -> float:
    """SDMetrics' ``ContingencySimilarity``: 1 - total variation of the 2-D frequency tables.

    Columns named in ``continuous`` are first cut into 10 bins at the real column's
    ``numpy.histogram_bin_edges`` with open outer ends (a missing value is its own bin);
    missing labels are a level of their own.
    """
    real, synthetic = real.copy(), synthetic.copy()
    for name in continuous:
        edges = np.histogram_bin_edges(real[name].dropna(), bins=_CONTINGENCY_BINS)
        edges[0], edges[-1] = -np.inf, np.inf
        real[name] = np.digitize(real[name].astype(float), edges)
        synthetic[name] = np.digitize(synthetic[name].astype(float), edges)
    tables = [
        t.astype(object).groupby(list(t.columns), dropna=False).size() / len(t)
        for t in (real, synthetic)
    ]
    index = tables[0].index.union(tables[1].index, sort=False)
    a, b = (t.reindex(index, fill_value=0) for t in tables)
    return float(1.0 - np.abs(a - b).sum() / 2.0)


def quality(real: Any, synthetic: Any, *, schema: Schema | None = None) -> QualityResult:
    """Column shape and pair trend scores of a synthetic table, as SDMetrics defines them.

    Numeric columns (continuous, count; SDMetrics' "numerical") get ``KSComplement``; binary
    and categorical ones (its "categorical" and "boolean") ``TVComplement``. A pair of numeric
    columns gets ``CorrelationSimilarity`` (Pearson); any other pair ``ContingencySimilarity``,
    its numeric column cut into 10 bins at the real column's histogram edges.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame, numpy.ndarray or torch.Tensor
        Tables with the same columns, in their own units.
    schema : Schema, optional
        Column kinds; default inferred from ``real``.

    Returns
    -------
    QualityResult

    References
    ----------
    DataCebo (2024). SDMetrics 0.32: ``KSComplement``, ``TVComplement``,
    ``CorrelationSimilarity``, ``ContingencySimilarity``, ``QualityReport``.
    """
    real, synthetic = _frames(real, synthetic)
    schema = schema if schema is not None else Schema.infer(real)
    numeric = {c.name: c.kind in _NUMERIC for c in schema.columns}
    rows = []
    for name in real.columns:
        if numeric[name]:
            rows.append((name, "KSComplement", ks_complement(real[name], synthetic[name])))
        else:
            rows.append((name, "TVComplement", tv_complement(real[name], synthetic[name])))
    pairs = []
    for a, b in itertools.combinations(real.columns, 2):
        if numeric[a] and numeric[b]:
            score = correlation_similarity(real[[a, b]], synthetic[[a, b]])
            metric = "CorrelationSimilarity"
        else:
            continuous = tuple(c for c in (a, b) if numeric[c])
            score = contingency_similarity(real[[a, b]], synthetic[[a, b]], continuous)
            metric = "ContingencySimilarity"
        pairs.append((a, b, metric, score))
    columns = pd.DataFrame(rows, columns=["column", "metric", "score"])
    pair_table = pd.DataFrame(pairs, columns=["column_1", "column_2", "metric", "score"])
    shape = float(columns["score"].mean())
    trend = float(pair_table["score"].mean()) if len(pair_table) else math.nan
    return QualityResult(
        shape=shape,
        trend=trend,
        score=float(np.nanmean([shape, trend])),
        columns=columns,
        pairs=pair_table,
    )


# -- distance to closest record -------------------------------------------------------------------


@dataclass(frozen=True)
class DCRResult:
    """Distance from synthetic rows to their closest real (training) record.

    Attributes
    ----------
    median : float
        Median over synthetic rows of the distance to the closest real row (feature units of
        :func:`features`: about one standard deviation or one label change per unit).
    exact_copies : float
        Share of synthetic rows at distance 0 from a real row.
    holdout_median : float
        With ``holdout``: the median distance from held-out real rows to the closest real
        training row, what a fresh draw from the data's distribution gives. NaN without.
    closer_to_real : float
        With ``holdout``: share of synthetic rows closer to the training table than to the
        (equally many) held-out rows; about 0.5 for a model that does not copy. NaN without.
    distances : numpy.ndarray
        Each synthetic row's distance.
    """

    median: float
    exact_copies: float
    holdout_median: float
    closer_to_real: float
    distances: np.ndarray = field(repr=False)


def _nearest(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(query)[0][:, 0]


def dcr(
    real: Any,
    synthetic: Any,
    *,
    holdout: Any = None,
    seed: int = 0,
    schema: Schema | None = None,
) -> DCRResult:
    """Distance to closest record: does the synthetic table copy the real one?

    Parameters
    ----------
    real : pandas.DataFrame, numpy.ndarray or torch.Tensor
        The table the model was trained on.
    synthetic : same type
        Samples from the model.
    holdout : same type, optional
        Real rows the model never saw, the yardstick for distances.
    seed : int
        Seeds the subsampling that makes the training and held-out tables equally large for
        ``closer_to_real``.
    schema : Schema, optional
        Column kinds; default inferred from ``real``.

    Returns
    -------
    DCRResult
    """
    _sklearn()
    real, synthetic = _frames(real, synthetic)
    schema = schema if schema is not None else Schema.infer(real)
    tables = [real, synthetic] if holdout is None else [real, synthetic, _frames(real, holdout)[1]]
    x, y, *rest = _encode_tables(schema, tables)
    distances = _nearest(x, y)
    holdout_median = closer = math.nan
    if rest:
        (h,) = rest
        holdout_median = float(np.median(_nearest(x, h)))
        # Equally many training and held-out rows, or the larger table wins by its size alone.
        rng = np.random.default_rng(seed)
        n = min(len(x), len(h))
        to_train = _nearest(_subsample(x, n, rng), y)
        to_holdout = _nearest(_subsample(h, n, rng), y)
        closer = float(np.mean(to_train < to_holdout) + 0.5 * np.mean(to_train == to_holdout))
    return DCRResult(
        median=float(np.median(distances)),
        exact_copies=float(np.mean(distances == 0)),
        holdout_median=holdout_median,
        closer_to_real=closer,
        distances=distances,
    )
