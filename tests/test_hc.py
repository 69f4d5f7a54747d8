"""Hierarchical-agglomeration starts of GaussianMixture (init="hc", init_partition=)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

import ppgen
from ppgen.models import _hc

torch.set_num_threads(1)


def _blobs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [8.0, 0.0, 1.0], [0.0, 9.0, -2.0]])
    return np.concatenate([c + rng.normal(size=(30, 3)) for c in centres])


def test_svd_transform_is_mclusts():
    x = _blobs() * np.array([1.0, 100.0, 0.01]) + 5.0
    z = _hc._svd_transform(x)
    scaled = (x - x.mean(0)) / x.std(0, ddof=1)
    s = np.linalg.svd(scaled, compute_uv=False)
    # scale(x) V diag(1/sqrt(s)) = U diag(sqrt(s)): orthogonal columns with squared norms s.
    np.testing.assert_allclose(z.T @ z, np.diag(s), atol=1e-9)
    # Column units do not matter (the columns are scaled first).
    np.testing.assert_allclose(np.abs(_hc._svd_transform(_blobs())), np.abs(z), atol=1e-9)


def test_partition_recovers_separated_clusters_and_is_cached():
    x = torch.as_tensor(_blobs())
    truth = np.repeat([0, 1, 2], 30)
    _hc._CACHE.clear()
    labels = _hc.hc_partition(x, 3).numpy()
    assert adjusted_rand_score(truth, labels) == 1.0
    assert len(_hc._CACHE) == 1
    for k in (1, 2, 5, 90, 200):  # one tree serves every K; at most one cluster per row
        cut = _hc.hc_partition(x, k).numpy()
        assert len(np.unique(cut)) == min(k, 90)
    assert len(_hc._CACHE) == 1
    # Cuts are nested: K=2 merges two of the K=3 clusters.
    two = _hc.hc_partition(x, 2).numpy()
    assert all(len(np.unique(two[labels == j])) == 1 for j in range(3))


def test_subsampled_tree_labels_every_row(monkeypatch):
    monkeypatch.setattr(_hc, "HC_ROWS", 40)
    x = torch.as_tensor(_blobs())
    labels = _hc.hc_partition(x, 3, torch.Generator().manual_seed(0)).numpy()
    assert labels.shape == (90,)
    assert adjusted_rand_score(np.repeat([0, 1, 2], 30), labels) == 1.0


def test_gaussian_mixture_hc_start():
    faithful = ppgen.datasets.load("faithful")
    fit = ppgen.fit(ppgen.GaussianMixture(2, "VVV", init="hc", n_init=1), faithful, seed=0)
    # mclust's VVV,2 on faithful (hc start): loglik -1130.264 (mclust.out).
    assert float(fit.log_prob(faithful).sum()) >= -1130.264 - 1e-3
    assert fit.model.config()["init"] == "hc"
    # The default config is that of earlier versions (no new key in saved fits).
    assert "init" not in ppgen.GaussianMixture(2).config()
    # An explicit partition: the start is one M-step from it, whatever the seed.
    labels = (faithful["eruptions"].to_numpy() > 3).astype(int)
    model = ppgen.GaussianMixture(2, "EEE", init_partition=labels, n_init=1)
    a = ppgen.fit(model, faithful, seed=0)
    b = ppgen.fit(ppgen.GaussianMixture(2, "EEE", init_partition=labels, n_init=1), faithful,
                  seed=5)  # fmt: skip
    assert float(a.log_prob(faithful).sum()) == pytest.approx(
        float(b.log_prob(faithful).sum()), abs=1e-10
    )
    assert adjusted_rand_score(labels, a.predict(faithful)) > 0.95


def test_bad_init_options():
    with pytest.raises(ValueError, match="init must be"):
        ppgen.GaussianMixture(2, init="ward")
    with pytest.raises(ValueError, match="init_partition labels must be in 0..1"):
        ppgen.GaussianMixture(2, init_partition=[0, 1, 2])
    with pytest.raises(ValueError, match="1-d array of integer"):
        ppgen.GaussianMixture(2, init_partition=[0.5, 1.0])
    faithful = ppgen.datasets.load("faithful")
    with pytest.raises(ValueError, match="init_partition has 3 labels for 272 rows"):
        ppgen.fit(ppgen.GaussianMixture(2, init_partition=[0, 1, 1], n_init=1), faithful)


def test_vvv_merges_are_greedy_minima_of_the_criterion():
    # Recompute every step from the rows themselves: the merge taken is the pair of current
    # clusters whose union least increases sum_k n_k log(det(W_k/n_k) + (tr W_k + alpha)/n_k).
    rng = np.random.default_rng(3)
    z = np.concatenate([rng.normal(size=(9, 2)), rng.normal(size=(6, 2)) * 0.3 + 3])
    z[4] = z[2]  # a duplicated row starts in one group
    inverse, merges = _hc._vvv_merges(z)
    assert inverse[4] == inverse[2] and len(merges) == len(z) - 2
    alpha = ((z - z.mean(0)) ** 2).sum() / z.size

    def term(rows: np.ndarray) -> float:
        n, p = len(rows), rows.shape[1]
        w = (rows - rows.mean(0)).T @ (rows - rows.mean(0))
        det = max(np.linalg.det(w / n), 0.0) if n > p else 0.0
        return n * np.log(det + (np.trace(w) + alpha) / n)

    members = {g: [r for r in range(len(z)) if inverse[r] == g] for g in set(inverse)}
    for i, j in merges:
        best = min(
            term(z[members[a] + members[b]]) - term(z[members[a]]) - term(z[members[b]])
            for a in members
            for b in members
            if a < b
        )
        taken = term(z[members[i] + members[j]]) - term(z[members[i]]) - term(z[members[j]])
        assert taken == pytest.approx(best, abs=1e-9)
        members[i] += members.pop(j)
    assert len(members) == 1
