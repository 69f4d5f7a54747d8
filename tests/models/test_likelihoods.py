"""Per-column likelihoods against SciPy, their priors, and their M-steps against the log joint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from ppgen.data import Schema
from ppgen.models.likelihoods import (
    Bernoulli,
    Categorical,
    Emission,
    NegativeBinomial,
    Normal,
    Poisson,
)

K = 3
pytestmark = pytest.mark.filterwarnings("ignore:Singular sample:UserWarning")


@pytest.fixture
def table(rng):
    n = 25
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "n": rng.poisson(4, n),
            "y": rng.random(n) < 0.5,
            "c": rng.choice(["p", "q", "r", "s"], n),
        }
    )
    schema = Schema.infer(df, standardize=False)
    enc = schema.encode(df)
    mask = enc.mask & torch.tensor(rng.random(enc.mask.shape) > 0.25)
    return schema, enc.x, mask


def _masked(values, mask):
    return np.where(mask, values, 0.0)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_normal_equals_scipy_on_observed_entries(cov_type, table, rng):
    schema, x, mask = table
    lik = Normal(schema, schema.positions("continuous"), K, cov_type)
    covs = []
    for _ in range(K):
        a = rng.normal(size=(2, 2))
        covs.append(a @ a.T + np.eye(2) if cov_type == "full" else np.diag(rng.gamma(2, 1, 2)))
    covs = np.array(covs)
    prec = np.linalg.inv(covs) if cov_type == "full" else 1 / np.diagonal(covs, axis1=1, axis2=2)
    params = {"locs": torch.tensor(rng.normal(size=(K, 2))), "precision": torch.tensor(prec)}
    got = lik.log_prob(x, mask, params).numpy()
    assert got.shape == (x.shape[0], K)
    for i in range(x.shape[0]):
        o = mask[i, :2].numpy()
        for k in range(K):
            want = 0.0
            if o.any():
                want = stats.multivariate_normal(
                    params["locs"][k].numpy()[o], covs[k][np.ix_(o, o)]
                ).logpdf(x[i, :2].numpy()[o])
            assert got[i, k] == pytest.approx(want, abs=1e-9)


def test_poisson_and_negative_binomial_equal_scipy(table, rng):
    schema, x, mask = table
    pos = schema.positions("count")
    rates = torch.tensor(rng.gamma(3, 1, (K, 1)))
    conc = torch.tensor(rng.gamma(3, 1, (K, 1)))
    counts, m = x[:, pos].numpy(), mask[:, pos].numpy()
    got = Poisson(schema, pos, K).log_prob(x, mask, {"rates": rates}).numpy()
    want = _masked(stats.poisson(rates.numpy()[None, :, 0]).logpmf(counts), m)
    np.testing.assert_allclose(got, want, atol=1e-10)
    got = NegativeBinomial(schema, pos, K).log_prob(
        x, mask, {"rates": rates, "concentration": conc}
    )
    r, mu = conc.numpy()[None, :, 0], rates.numpy()[None, :, 0]
    want = _masked(stats.nbinom(r, r / (r + mu)).logpmf(counts), m)  # scipy: p = success prob
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10)


def test_bernoulli_and_categorical_equal_scipy(table, rng):
    schema, x, mask = table
    (jb,), (jc,) = schema.positions("binary"), schema.positions("categorical")
    probs = torch.tensor(rng.uniform(0.1, 0.9, (K, 1)))
    got = Bernoulli(schema, (jb,), K).log_prob(x, mask, {"probs": probs}).numpy()
    want = np.where(
        mask[:, jb : jb + 1].numpy(),
        stats.bernoulli(probs.numpy()[None, :, 0]).logpmf(x[:, jb : jb + 1].numpy()),
        0.0,
    )
    np.testing.assert_allclose(got, want, atol=1e-12)
    cat = torch.tensor(rng.dirichlet(np.ones(4), K))
    got = Categorical(schema, (jc,), K).log_prob(x, mask, {"probs[c]": cat}).numpy()
    codes = x[:, jc].long().numpy()
    want = np.array(
        [
            [stats.multinomial(1, cat[k].numpy()).logpmf(np.eye(4)[codes[i]]) for k in range(K)]
            for i in range(x.shape[0])
        ]
    )
    want = np.where(mask[:, jc : jc + 1].numpy(), want, 0.0)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_emission_sums_its_parts_and_names_its_sites(table, rng):
    schema, x, mask = table
    em = Emission(schema, K, "mixed", "diag")
    assert em.sites == ("locs", "precision", "rates", "probs", "probs[c]")
    params = {k: v.sample() for k, v in em.priors(x).items()}
    total = sum(p.log_prob(x, mask, params) for p in em.parts)
    torch.testing.assert_close(em.log_prob(x, mask, params), total)
    assert em.n_parameters() == K * (2 + 2) + K + K + K * 3
    with pytest.raises(ValueError, match="emission must be one of"):
        Emission(schema, K, "weibull")


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_m_step_maximizes_the_expected_log_joint(cov_type, rng):
    """Each closed-form M-step beats random nearby parameters on sum resp * loglik + log prior."""
    n = 60
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "n": rng.poisson(4, n),
            "y": rng.random(n) < 0.5,
            "c": rng.choice(["p", "q", "r"], n),
        }
    )
    schema = Schema.infer(df)
    enc = schema.encode(df)
    x = enc.x
    mask = enc.mask.clone()
    if cov_type == "diag":
        mask &= torch.tensor(rng.random(mask.shape) > 0.2)
    resp = torch.tensor(rng.dirichlet(np.ones(K), n))
    em = Emission(schema, K, "mixed", cov_type)
    priors = em.priors(x)

    def objective(params):
        return (resp * em.log_prob(x, mask, params)).sum() + em.log_prior(params)

    start = {k: v.sample() for k, v in priors.items()}
    # Gaussian means are one ECM step given the precisions: iterate to the joint maximum.
    best = em.m_step(x, mask, resp, None)
    for _ in range(50):
        best = em.m_step(x, mask, resp, best)
    assert objective(best) >= objective(start)
    for site, value in best.items():
        support = priors[site].support
        bij = torch.distributions.biject_to(support)
        for _ in range(5):
            moved = dict(best)
            moved[site] = bij(bij.inv(value) + 1e-3 * torch.randn_like(bij.inv(value)))
            assert objective(moved) <= objective(best) + 1e-9


def test_negative_binomial_has_no_m_step(table):
    schema, x, mask = table
    lik = NegativeBinomial(schema, schema.positions("count"), K)
    with pytest.raises(ValueError, match="no closed-form M-step"):
        lik.m_step(x, mask, torch.ones(x.shape[0], K, dtype=x.dtype), None)


def test_sample_and_impute_keep_shapes_and_observed_entries(table):
    schema, x, mask = table
    em = Emission(schema, K, "mixed", "full")
    params = {k: v.sample() for k, v in em.priors(x).items()}
    states = torch.randint(K, (x.shape[0],))
    draws = em.sample(states, params)
    assert draws.shape == x.shape
    filled = em.impute(x, mask, states, params)
    assert torch.equal(filled[mask], x[mask])
    cat = schema.positions("categorical")[0]
    assert set(filled[:, cat].tolist()) <= {0.0, 1.0, 2.0, 3.0}
