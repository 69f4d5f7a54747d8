"""The two distributions Pyro lacks, against autograd and SciPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import biject_to

from ppgen.models.distributions import (
    MaskedMultivariateNormal,
    VectorToPositiveDefinite,
    WishartPrecision,
    positive_definite_bijective,
)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_positive_definite_bijection_jacobian_and_inverse(d):
    torch.manual_seed(d)
    t = biject_to(positive_definite_bijective)
    assert isinstance(t, VectorToPositiveDefinite)
    v = torch.randn(d * (d + 1) // 2, dtype=torch.float64)
    P = t(v)
    assert torch.allclose(t.inv(P), v, atol=1e-10)
    assert torch.linalg.eigvalsh(P).min() > 0
    rows, cols = torch.tril_indices(d, d)

    def lower(vec):  # the free coordinates of P: its lower triangle
        return t(vec)[rows, cols]

    jac = torch.autograd.functional.jacobian(lower, v)
    expected = torch.linalg.slogdet(jac).logabsdet
    assert torch.allclose(t.log_abs_det_jacobian(v, P), expected, atol=1e-10)


def test_wishart_precision_matches_scipy():
    d = 3
    scale = torch.eye(d, dtype=torch.float64) * 2.0
    w = WishartPrecision(df=torch.tensor(5.0, dtype=torch.float64), covariance_matrix=scale)
    P = w.sample()
    ref = stats.wishart(df=5, scale=scale.numpy()).logpdf(P.numpy())
    assert w.log_prob(P).item() == pytest.approx(ref, abs=1e-8)


def _random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


def test_masked_mvn_is_the_marginal_of_the_observed_entries(rng):
    d, n = 4, 30
    cov = _random_spd(d, rng)
    loc = rng.normal(size=d)
    x = rng.multivariate_normal(loc, cov, size=n)
    mask = rng.random((n, d)) > 0.35
    mask[0] = True
    mask[1] = False
    mask[1, 2] = True
    prec = torch.linalg.inv(torch.tensor(cov))
    dist = MaskedMultivariateNormal(torch.tensor(loc), prec, torch.tensor(mask))
    got = dist.log_prob(torch.tensor(x)).numpy()
    for i in range(n):
        o = mask[i]
        want = (
            0.0
            if not o.any()
            else stats.multivariate_normal(loc[o], cov[np.ix_(o, o)]).logpdf(x[i, o])
        )
        assert got[i] == pytest.approx(want, abs=1e-8)


def test_masked_mvn_samples_have_the_right_moments():
    torch.manual_seed(0)
    cov = torch.tensor([[2.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
    dist = MaskedMultivariateNormal(
        torch.tensor([1.0, -2.0], dtype=torch.float64), torch.linalg.inv(cov)
    )
    draws = dist.sample((200_000,))
    assert torch.allclose(draws.mean(0), torch.tensor([1.0, -2.0], dtype=torch.float64), atol=0.02)
    assert torch.allclose(torch.cov(draws.T), cov, atol=0.03)
