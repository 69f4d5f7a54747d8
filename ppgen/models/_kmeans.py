"""k-means: the starting point for mixture models and hidden Markov models."""

from __future__ import annotations

import math

import numpy as np
import torch

#: Lloyd iterations run on at most this many rows; one final pass labels every row.
SUBSAMPLE = 10_000


def _sq_dist(x: np.ndarray, centers: np.ndarray, xx: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances (n, k) by one matmul; clamped, as rounding can dip below 0.
    ``xx``: the rows' squared norms (n, 1), when the caller keeps them."""
    if xx is None:
        xx = (x * x).sum(-1, keepdims=True)
    return np.maximum(xx - 2 * x @ centers.T + (centers * centers).sum(-1), 0.0)


def _kmeans_pp(x: np.ndarray, k: int, generator: torch.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007): of 2 + ln k candidates drawn
    in proportion to D^2, keep the one that lowers the inertia most, as scikit-learn does.
    The draws come from ``generator`` (torch's: the same streams as before the arithmetic
    moved to numpy)."""
    n = x.shape[0]
    n_trials = 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=generator))
    centers = x[first : first + 1]
    xx = (x * x).sum(-1, keepdims=True)
    closest = _sq_dist(x, centers, xx)[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        probs = closest / total if total > 0 else np.full_like(closest, 1.0 / n)
        idx = torch.multinomial(torch.from_numpy(probs), n_trials, replacement=True,
                                generator=generator).numpy()  # fmt: skip
        candidates = x[idx]
        trial = np.minimum(closest[:, None], _sq_dist(x, candidates, xx))  # (n, trials)
        best = int(trial.sum(0).argmin())
        centers = np.concatenate([centers, candidates[best : best + 1]])
        closest = trial[:, best]
    return centers


def kmeans(
    x: torch.Tensor, k: int, *, generator: torch.Generator, n_iter: int = 10, tol: float = 1e-4
) -> torch.Tensor:
    """Cluster labels (n,): greedy k-means++ seeding then Lloyd iterations.

    Seeding and Lloyd run on a random subsample of at most :data:`SUBSAMPLE` rows, then every
    row gets its nearest centre: the result only seeds a likelihood-based fit. The arithmetic
    runs in float64 numpy on the host (a few small operations per iteration, each several
    times cheaper than torch's), the random draws come from ``generator``; the labels are
    returned on ``x``'s device.
    """
    n = x.shape[0]
    if k > n:
        raise ValueError(f"cannot find {k} clusters in {n} rows")
    rows = x.detach().to("cpu", torch.float64).numpy()
    sub = rows
    if n > SUBSAMPLE:
        sub = rows[torch.randperm(n, generator=generator)[:SUBSAMPLE].numpy()]
    centers = _kmeans_pp(sub, k, generator)
    xx = (sub * sub).sum(-1, keepdims=True)
    d2 = _sq_dist(sub, centers, xx)
    labels = d2.argmin(-1)
    prev = d2[np.arange(len(sub)), labels].sum()
    for _ in range(n_iter):
        onehot = np.eye(k)[labels]
        counts = onehot.sum(0)
        # An emptied cluster keeps its previous centre rather than becoming NaN.
        means = (onehot.T @ sub) / np.maximum(counts, 1)[:, None]
        centers = np.where(counts[:, None] > 0, means, centers)
        d2 = _sq_dist(sub, centers, xx)
        new_labels = d2.argmin(-1)
        inertia = d2[np.arange(len(sub)), new_labels].sum()
        stable = bool((new_labels == labels).all())
        labels = new_labels
        if stable or prev - inertia <= tol * prev:
            break
        prev = inertia
    if sub is not rows:
        labels = _sq_dist(rows, centers).argmin(-1)
    return torch.from_numpy(labels).to(x.device)
