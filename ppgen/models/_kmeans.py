"""k-means++ seeding and Lloyd iterations: the starting point for mixture models."""

from __future__ import annotations

import torch


def kmeans(
    x: torch.Tensor, k: int, *, generator: torch.Generator, n_iter: int = 10, tol: float = 1e-4
) -> torch.Tensor:
    """Cluster labels (n,) by k-means++ seeding (Arthur & Vassilvitskii 2007) then Lloyd steps.

    Vectorized over rows; the number of Lloyd iterations is bounded, since the result only seeds
    a likelihood-based fit.
    """
    n = x.shape[0]
    if k > n:
        raise ValueError(f"cannot find {k} clusters in {n} rows")
    first = torch.randint(n, (1,), generator=generator, device=generator.device).to(x.device)
    centers = x[first]
    dist2 = (x - centers).pow(2).sum(-1)
    for _ in range(1, k):
        probs = dist2 / dist2.sum() if dist2.sum() > 0 else torch.full_like(dist2, 1.0 / n)
        idx = torch.multinomial(probs.to(generator.device), 1, generator=generator).to(x.device)
        centers = torch.cat([centers, x[idx]])
        dist2 = torch.minimum(dist2, (x - x[idx]).pow(2).sum(-1))
    labels = torch.cdist(x, centers).argmin(-1)
    prev = None
    for _ in range(n_iter):
        onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)
        counts = onehot.sum(0)
        sums = onehot.mT @ x
        # An emptied cluster keeps its previous centre rather than becoming NaN.
        centers = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centers)
        d2 = torch.cdist(x, centers)
        new_labels = d2.argmin(-1)
        inertia = d2.min(-1).values.pow(2).sum()
        stable = bool((new_labels == labels).all())
        labels = new_labels
        if stable or (prev is not None and prev - inertia <= tol * prev):
            break
        prev = inertia
    return labels
