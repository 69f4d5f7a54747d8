"""Model-based hierarchical agglomeration: the partitions that start mclust-style mixture fits.

mclust starts every covariance structure and every number of components G from one
model-based hierarchical agglomeration of the data (Fraley 1998), cut at G clusters. This
module builds it as mclust's default ``hc`` does: on the data after the ``hcUse = "SVD"``
transformation (centred, scaled, rotated onto the principal axes and divided by the square
roots of the singular values), starting from the groups of identical rows, each step merging
the pair of clusters that least increases the VVV criterion ``sum_k n_k log(det(W_k / n_k) +
(tr W_k + alpha) / n_k)`` (:func:`_term`; W_k the cluster's scatter matrix). The merges of a
data set are computed once and cached, so a grid of candidates (``ppgen.select``) pays for
them once, and any K is a cut of the same tree.

The criterion and its regularization follow mclust's documented ``hcVVV`` (``alpha = 1``
scaled by the data's mean variance, ``beta = 1``); ties and floating-point order may differ
from mclust's Fortran, so the partitions are not guaranteed to be mclust's own.

References
----------
Fraley, C. (1998). Algorithms for model-based Gaussian hierarchical clustering. *SIAM J. Sci.
Comput.* 20(1), 270-281.
Banfield, J. D. & Raftery, A. E. (1993). Model-based Gaussian and non-Gaussian clustering.
*Biometrics* 49, 803-821.
Scrucca, L., Fop, M., Murphy, T. B. & Raftery, A. E. (2016). mclust 5. *The R Journal* 8(1),
289-317 (the SVD transformation of the data before agglomeration).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

#: Rows the agglomeration runs on at most (it costs O(n^2) memory and O(n^2) determinants);
#: the others join the nearest cluster mean of the cut.
HC_ROWS = 1_000
#: Trees kept in the cache (one per data set and subsample).
_CACHE_SIZE = 8
_CACHE: OrderedDict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()


def _svd_transform(feats: np.ndarray) -> np.ndarray:
    """mclust's ``hcUse = "SVD"``: scaled columns rotated onto their principal axes and divided
    by the square roots of the singular values (constant columns and null directions dropped)."""
    centred = feats - feats.mean(0)
    sd = centred.std(0, ddof=1) if len(feats) > 1 else np.ones(feats.shape[1])
    scaled = centred[:, sd > 0] / sd[sd > 0]
    if scaled.shape[1] == 0:
        return np.zeros((len(feats), 1))
    _, s, vt = np.linalg.svd(scaled, full_matrices=False)
    keep = s > s[0] * 1e-10
    return scaled @ vt[keep].T / np.sqrt(s[keep])


def _term(n: np.ndarray, scatter: np.ndarray, p: int, alpha: float) -> np.ndarray:
    """mclust's VVV agglomeration term of clusters with ``n`` rows and scatter matrices
    ``scatter`` (m, p, p): ``n log(det(W / n) + (tr W + alpha) / n)``, the log-determinant
    criterion ``n log det(W / n)`` of Banfield & Raftery (1993) regularized by the trace so
    that clusters of at most p rows (singular W) have a finite cost; mclust's ``alpha`` is the
    data's mean variance per entry (``hcVVV``'s ``alpha = 1`` times ``traceW(data / sqrt(n p))``,
    ``beta = 1``)."""
    det = np.zeros(len(n))
    big = n > p
    if big.any():
        det[big] = np.linalg.det(scatter[big] / n[big, None, None]).clip(min=0)
    trace = np.trace(scatter, axis1=-2, axis2=-1)
    return n * np.log(det + (trace + alpha) / n)


def _vvv_merges(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model-based agglomeration with the VVV criterion (Fraley 1998): from the groups of
    identical rows, repeatedly merge the pair whose merge least increases the sum of
    :func:`_term`. Returns each row's initial group and the merges (i, j) (j joins i), in
    order."""
    groups, first, inverse, counts = np.unique(
        z, axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    inverse = inverse.ravel()
    m, p = groups.shape
    alpha = max(float(((z - z.mean(0)) ** 2).sum()) / z.size, float(np.finfo(float).eps))
    n = counts.astype(float)
    mean = groups.copy()
    scatter = np.zeros((m, p, p))
    term = _term(n, scatter, p, alpha)

    def merged(i: int, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nij = n[i] + n[ks]
        delta = mean[ks] - mean[i]
        w = (
            scatter[i]
            + scatter[ks]
            + (n[i] * n[ks] / nij)[:, None, None] * (delta[:, :, None] * delta[:, None, :])
        )
        return nij, w, _term(nij, w, p, alpha)

    cost = np.full((m, m), np.inf)
    for i in range(m - 1):
        ks = np.arange(i + 1, m)
        cost[i, ks] = merged(i, ks)[2] - term[i] - term[ks]
    merges = []
    active = np.ones(m, dtype=bool)
    for _ in range(m - 1):
        flat = int(np.argmin(cost))
        i, j = divmod(flat, m)
        i, j = min(i, j), max(i, j)
        nij, w, t = merged(i, np.array([j]))
        mean[i] = (n[i] * mean[i] + n[j] * mean[j]) / nij[0]
        n[i], scatter[i], term[i] = nij[0], w[0], t[0]
        active[j] = False
        cost[j, :] = cost[:, j] = np.inf
        merges.append((i, j))
        others = np.flatnonzero(active)
        others = others[others != i]
        if len(others):
            values = merged(i, others)[2] - term[i] - term[others]
            low, high = others < i, others > i
            cost[others[low], i] = values[low]
            cost[i, others[high]] = values[high]
    return inverse, np.asarray(merges, dtype=np.int64).reshape(-1, 2)


def _cut(inverse: np.ndarray, merges: np.ndarray, k: int) -> np.ndarray:
    """Row labels 0..k-1 after the merges that leave ``k`` groups (all groups when fewer)."""
    owner = np.arange(len(merges) + 1)
    for i, j in merges[: max(len(merges) + 1 - k, 0)]:
        owner[owner == j] = i
    _, labels = np.unique(owner[inverse], return_inverse=True)
    return labels.ravel()


def _tree(
    feats: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """(initial groups of ``rows``, merges, transformed features, the cuts made so far by
    their k), cached by the features' bytes and the rows."""
    key = hashlib.sha1(feats.tobytes() + rows.tobytes() + str(feats.shape).encode()).hexdigest()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    z = _svd_transform(feats)
    inverse, merges = _vvv_merges(z[rows])
    _CACHE[key] = (inverse, merges, z, {})
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return _CACHE[key]


def hc_partition(
    feats: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Labels (n,) in 0..k-1 of the agglomeration of ``feats`` (n, p) cut at ``k`` clusters
    (fewer when there are fewer distinct rows). On more than :data:`HC_ROWS` rows the tree is
    built on a random subsample (``generator``) and every row takes its nearest cluster mean."""
    x = feats.detach().cpu().to(torch.float64).numpy()
    n = len(x)
    if n > HC_ROWS:
        rows = torch.randperm(n, generator=generator)[:HC_ROWS].sort().values.numpy()
    else:
        rows = np.arange(n)
    inverse, merges, z, cuts = _tree(x, rows)
    if int(k) not in cuts:  # a grid cuts the same tree at the same k for every structure
        cuts[int(k)] = _cut(inverse, merges, int(k))
    sub = cuts[int(k)].copy()
    if len(rows) == n:
        labels = sub
    else:
        centres = np.stack([z[rows][sub == j].mean(0) for j in range(sub.max() + 1)])
        labels = ((z[:, None, :] - centres) ** 2).sum(-1).argmin(-1)
    return torch.as_tensor(labels, dtype=torch.long, device=feats.device)
