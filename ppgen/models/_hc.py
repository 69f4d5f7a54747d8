"""Hierarchical agglomeration: the partitions that start mclust-style mixture fits.

mclust starts every covariance structure and every number of components G from one
model-based hierarchical agglomeration of the data (Fraley 1998), cut at G clusters. This
module builds the agglomeration with the EII criterion (the merge that least increases the
within-cluster sum of squares: Ward's), on the data after mclust's default ``hcUse = "SVD"``
transformation (centred, scaled, rotated onto the principal axes and divided by the square
roots of the singular values), and cuts it at any K. The tree of a data set is computed once
and cached, so a grid of candidates (``ppgen.select``) pays for it once.

This is the cheaper of the two criteria mclust offers (its default is "VVV", whose merge cost
is the change of ``sum_k n_k log det(W_k / n_k)``); the starts are therefore not mclust's own.

References
----------
Fraley, C. (1998). Algorithms for model-based Gaussian hierarchical clustering. *SIAM J. Sci.
Comput.* 20(1), 270-281.
Ward, J. H. (1963). Hierarchical grouping to optimize an objective function. *JASA* 58,
236-244.
Scrucca, L., Fop, M., Murphy, T. B. & Raftery, A. E. (2016). mclust 5. *The R Journal* 8(1),
289-317 (the SVD transformation of the data before agglomeration).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

#: Rows the agglomeration runs on at most (it costs O(n^2) memory); the others join the
#: nearest cluster mean of the cut.
HC_ROWS = 3_000
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


def _tree(feats: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(linkage, rows agglomerated, transformed features), cached by the features' bytes."""
    key = hashlib.sha1(feats.tobytes() + rows.tobytes() + str(feats.shape).encode()).hexdigest()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    from scipy.cluster.hierarchy import ward

    z = _svd_transform(feats)
    linkage = ward(z[rows]) if len(rows) > 1 else np.zeros((0, 4))
    _CACHE[key] = (linkage, rows, z)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return _CACHE[key]


def hc_partition(
    feats: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Labels (n,) in 0..k-1 of the agglomeration of ``feats`` (n, p) cut at ``k`` clusters
    (fewer when there are fewer distinct rows). On more than :data:`HC_ROWS` rows the tree is
    built on a random subsample (``generator``) and every row takes its nearest cluster mean."""
    from scipy.cluster.hierarchy import cut_tree

    x = feats.detach().cpu().to(torch.float64).numpy()
    n = len(x)
    if n > HC_ROWS:
        rows = torch.randperm(n, generator=generator)[:HC_ROWS].sort().values.numpy()
    else:
        rows = np.arange(n)
    linkage, rows, z = _tree(x, rows)
    k = max(1, min(int(k), len(rows)))
    if len(rows) < 2:
        labels = np.zeros(n, dtype=np.int64)
    else:
        sub = cut_tree(linkage, n_clusters=k).ravel()
        if len(rows) == n:
            labels = sub
        else:
            centres = np.stack([z[rows][sub == j].mean(0) for j in range(sub.max() + 1)])
            labels = ((z[:, None, :] - centres) ** 2).sum(-1).argmin(-1)
    return torch.as_tensor(labels, dtype=torch.long, device=feats.device)
