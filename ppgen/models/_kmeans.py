"""k-means: the starting point for mixture models and hidden Markov models."""

from __future__ import annotations

import math

import torch

#: Lloyd iterations run on at most this many rows; one final pass labels every row.
SUBSAMPLE = 10_000


def _sq_dist(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (n, k) by one matmul; clamped, as rounding can dip below 0."""
    return (x.pow(2).sum(-1, keepdim=True) - 2 * x @ centers.mT + centers.pow(2).sum(-1)).clamp_min(
        0
    )


def _kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007): of 2 + ln k candidates drawn
    in proportion to D^2, keep the one that lowers the inertia most, as scikit-learn does."""
    n = x.shape[0]
    n_trials = 2 + int(math.log(k))
    first = torch.randint(n, (1,), generator=generator).to(x.device)
    centers = x[first]
    closest = _sq_dist(x, centers).squeeze(-1)
    for _ in range(1, k):
        total = closest.sum()
        probs = closest / total if total > 0 else torch.full_like(closest, 1.0 / n)
        idx = torch.multinomial(probs.cpu(), n_trials, replacement=True, generator=generator)
        candidates = x[idx.to(x.device)]
        trial = torch.minimum(closest.unsqueeze(-1), _sq_dist(x, candidates))  # (n, trials)
        best = trial.sum(0).argmin()
        centers = torch.cat([centers, candidates[best : best + 1]])
        closest = trial[:, best]
    return centers


def kmeans(
    x: torch.Tensor, k: int, *, generator: torch.Generator, n_iter: int = 10, tol: float = 1e-4
) -> torch.Tensor:
    """Cluster labels (n,): greedy k-means++ seeding then Lloyd iterations.

    Seeding and Lloyd run on a random subsample of at most :data:`SUBSAMPLE` rows, then every
    row gets its nearest centre: the result only seeds a likelihood-based fit.
    """
    n = x.shape[0]
    if k > n:
        raise ValueError(f"cannot find {k} clusters in {n} rows")
    sub = x
    if n > SUBSAMPLE:
        sub = x[torch.randperm(n, generator=generator)[:SUBSAMPLE].to(x.device)]
    centers = _kmeans_pp(sub, k, generator)
    d2 = _sq_dist(sub, centers)
    closest, labels = d2.min(-1)
    prev = closest.sum()
    for _ in range(n_iter):
        onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)
        counts = onehot.sum(0)
        # An emptied cluster keeps its previous centre rather than becoming NaN.
        means = (onehot.mT @ sub) / counts.clamp_min(1)[:, None]
        centers = torch.where(counts[:, None] > 0, means, centers)
        closest, new_labels = _sq_dist(sub, centers).min(-1)
        inertia = closest.sum()
        stable = bool((new_labels == labels).all())
        labels = new_labels
        if stable or prev - inertia <= tol * prev:
            break
        prev = inertia
    return labels if sub is x else _sq_dist(x, centers).argmin(-1)
