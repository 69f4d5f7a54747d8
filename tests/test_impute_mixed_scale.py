"""Rows grouped by their number of missing entries (issue 21, imputation at scale): the grouped
conditional Gaussian equals the padded one, and a fitted mixture imputes the same table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
import ppgen.models.distributions as D

torch.set_num_threads(1)


def _incomplete(n: int, d: int, seed: int, prop: float = 0.2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, dtype=torch.float64, generator=g)
    miss = torch.rand(n, d, generator=g) < prop
    return x, miss, g


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    assert float((a - b).abs().max()) <= 1e-12 * max(1.0, float(b.abs().max()))


def test_grouped_conditional_equals_padded():
    x, miss, g = _incomplete(5000, 12, 0)
    K, d = 3, 12
    loc = torch.randn(K, 1, d, dtype=torch.float64, generator=g)
    a = torch.randn(K, d, d, dtype=torch.float64, generator=g)
    precision = (a @ a.mT / d + torch.eye(d, dtype=torch.float64)).unsqueeze(-3)
    grouped = D.condition_on_precision(x, miss, loc, precision)
    padded = D._condition_padded(x, miss, loc, precision)
    assert isinstance(grouped, D.BucketedConditional)
    assert isinstance(padded, D.GaussianConditional)
    assert len(grouped.rows) == len(torch.unique(miss.sum(-1).clamp(min=1)))
    eps = torch.randn(x.shape, dtype=torch.float64, generator=g)
    weights = torch.rand(K, len(x), dtype=torch.float64, generator=g)
    tril = torch.linalg.cholesky(precision)
    _same(grouped.mean, padded.mean)
    _same(grouped.log_marginal(tril), padded.log_marginal(tril))
    _same(grouped.covariance_sum(weights), padded.covariance_sum(weights))
    _same(grouped.noise(eps), padded.noise(eps))
    _same(grouped.covariance()[:, ::97], padded.covariance()[:, ::97])
    # observed entries are the data's, exactly
    assert torch.equal(grouped.mean[:, ~miss], x[~miss].expand(K, -1))


def test_grouping_applies_only_where_it_pays():
    x, miss, _ = _incomplete(D.BUCKET_ROWS - 1, 12, 1)
    loc, precision = torch.zeros(1, 12, dtype=torch.float64), torch.eye(12, dtype=torch.float64)
    assert D._buckets(x, miss, loc, precision) is None  # too few rows
    x, miss, _ = _incomplete(D.BUCKET_ROWS, 12, 1)
    assert D._buckets(x, miss, loc, precision) is not None
    one = torch.zeros_like(miss)
    one[:, 0] = True  # every row misses one entry: nothing to gain
    assert D._buckets(x, one, loc, precision) is None
    per_row = torch.zeros(len(x), 12, dtype=torch.float64)
    assert D._buckets(x, miss, per_row, precision) is None  # a mean per row: padded path


def test_grouped_log_prob_gradient_equals_padded(monkeypatch):
    x, miss, g = _incomplete(D.BUCKET_ROWS, 6, 2, prop=0.3)
    a = torch.randn(6, 6, dtype=torch.float64, generator=g)
    grads = []
    for rows in (D.BUCKET_ROWS, 10**12):
        monkeypatch.setattr(D, "BUCKET_ROWS", rows)
        loc = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        precision = a @ a.T / 6 + torch.eye(6, dtype=torch.float64)
        dist = D.MaskedMultivariateNormal(loc, precision, obs_mask=~miss)
        dist.log_prob(x).sum().backward()
        grads.append(loc.grad)
    _same(grads[0], grads[1])


def test_fit_impute_same_table_grouped_or_padded(monkeypatch):
    rng = np.random.default_rng(3)
    n, d = 6000, 8
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 3 * (rng.random((n, 1)) < 0.5)
    df = pd.DataFrame(x, columns=[f"x{j}" for j in range(d)]).mask(rng.random((n, d)) < 0.25)
    fit = ppgen.fit(ppgen.GaussianMixture(2), df.iloc[:300], method="em", seed=0, progress=False)
    tables = []
    for rows in (D.BUCKET_ROWS, 10**12):
        monkeypatch.setattr(D, "BUCKET_ROWS", rows)
        tables.append(fit.impute(df, 2, seed=5))
    for grouped, padded in zip(*tables, strict=True):
        np.testing.assert_allclose(grouped.to_numpy(), padded.to_numpy(), rtol=0, atol=1e-10)
        observed = df.notna().to_numpy()
        assert (grouped.to_numpy()[observed] == df.to_numpy()[observed]).all()


@pytest.mark.parametrize("prop", [0.05, 0.5])
def test_grouped_conditional_other_missing_shares(prop):
    x, miss, g = _incomplete(D.BUCKET_ROWS + 10, 10, 4, prop=prop)
    loc = torch.randn(2, 1, 10, dtype=torch.float64, generator=g)
    precision = torch.eye(10, dtype=torch.float64).expand(2, 1, 10, 10) * 2.0
    grouped = D.condition_on_precision(x, miss, loc, precision)
    padded = D._condition_padded(x, miss, loc, precision)
    _same(grouped.mean, padded.mean)
    _same(grouped.log_marginal(), padded.log_marginal())
