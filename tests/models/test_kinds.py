"""Kinds that keep the support (positive, bounded, binomial, ordinal): densities against SciPy
(Jacobians included), and GaussianMixture's mixed path fits, scores and samples inside them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, special, stats

import ppgen
from ppgen.data import Schema
from ppgen.models.likelihoods import Binomial, Emission


def _frame(rng: np.random.Generator, n: int = 300) -> pd.DataFrame:
    group = rng.random(n) < 0.4
    return pd.DataFrame(
        {
            "mass": np.exp(rng.normal(np.where(group, 1.0, 2.0), 0.4)),
            "share": special.expit(rng.normal(np.where(group, -1.0, 0.5), 0.7)),
            "pixel": rng.binomial(16, np.where(group, 0.2, 0.7)),
            "grade": rng.choice([3, 4, 5], n),
        }
    )


KINDS = {"mass": "positive", "share": "proportion", "pixel": "binomial:16", "grade": "ordinal"}


def test_positive_density_is_scipy_lognormal(rng) -> None:
    y = np.exp(rng.normal(1.0, 0.5, 50))
    df = pd.DataFrame({"y": y})
    schema = Schema.infer(df, kinds={"y": "positive"})
    column = schema.columns[0]
    assert (column.kind, column.transform, column.label) == ("continuous", "log", "positive")
    enc = schema.encode(df)
    mu, sigma = 0.3, 1.4  # a Normal on the encoded (standardized log) scale
    normal = torch.distributions.Normal(*torch.tensor([mu, sigma], dtype=torch.float64))
    log_p = normal.log_prob(enc.x[:, 0]) + schema.log_abs_det_jacobian(enc.mask, x=enc.x)
    expected = stats.lognorm(
        s=sigma * column.scale, scale=math.exp(column.loc + mu * column.scale)
    ).logpdf(y)
    np.testing.assert_allclose(log_p.numpy(), expected, rtol=0, atol=1e-8)


def test_bounded_density_is_logit_normal_and_integrates_to_one(rng) -> None:
    low, high = -2.0, 5.0
    y = low + (high - low) * special.expit(rng.normal(0.2, 1.1, 40))
    df = pd.DataFrame({"y": y})
    schema = Schema.infer(df, kinds={"y": "bounded:-2:5"})
    c = schema.columns[0]
    assert (c.transform, c.low, c.high, c.label) == ("logit", -2.0, 5.0, "bounded [-2, 5]")
    enc = schema.encode(df)
    mu, sigma = -0.4, 0.8
    normal = torch.distributions.Normal(*torch.tensor([mu, sigma], dtype=torch.float64))
    log_p = normal.log_prob(enc.x[:, 0]) + schema.log_abs_det_jacobian(enc.mask, x=enc.x)
    # Independently: logit(p) ~ Normal(loc + mu scale, sigma scale), dy = (b - a) p (1 - p) dlogit
    p = (y - low) / (high - low)
    expected = stats.norm(c.loc + mu * c.scale, sigma * c.scale).logpdf(special.logit(p)) - np.log(
        (high - low) * p * (1 - p)
    )
    np.testing.assert_allclose(log_p.numpy(), expected, rtol=0, atol=1e-8)

    def density(v: float) -> float:
        z = torch.tensor(
            [[(special.logit((v - low) / (high - low)) - c.loc) / c.scale]], dtype=torch.float64
        )
        jac = schema.log_abs_det_jacobian(torch.ones(1, 1, dtype=torch.bool), x=z)
        return math.exp(normal.log_prob(z[0, 0]).item() + jac.item())

    total, _ = integrate.quad(density, low, high, limit=200)
    assert abs(total - 1) < 1e-8


def test_binomial_likelihood_is_scipy_binom(rng) -> None:
    df = pd.DataFrame({"px": rng.binomial(16, 0.3, 30), "lik": rng.binomial(4, 0.6, 30)})
    schema = Schema.infer(df, kinds={"px": "binomial:16", "lik": "binomial"})
    assert [c.size for c in schema.columns] == [16, df["lik"].max()]
    enc = schema.encode(df)
    mask = enc.mask & torch.tensor(rng.random(enc.mask.shape) > 0.3)
    like = Binomial(schema, (0, 1), 2)
    success = torch.tensor([[0.25, 0.5], [0.7, 0.1]], dtype=torch.float64)
    lp = like.log_prob(enc.x, mask, {"success": success})
    m = mask.numpy()
    for k in range(2):
        expected = sum(
            np.where(
                m[:, j],
                stats.binom(schema.columns[j].size, success[k, j].item()).logpmf(df.iloc[:, j]),
                0,
            )
            for j in range(2)
        )
        np.testing.assert_allclose(lp[:, k].numpy(), expected, rtol=0, atol=1e-8)
    # The M-step maximizes the Beta-penalized expected log-likelihood.
    resp = torch.softmax(torch.randn(30, 2, dtype=torch.float64), -1)
    best = like.m_step(enc.x, mask, resp, None)["success"]

    def objective(s: torch.Tensor) -> float:
        prior = like.priors(s)["success"].log_prob(s)
        return ((like.log_prob(enc.x, mask, {"success": s}) * resp).sum() + prior).item()

    for delta in (1e-3, -1e-3):
        assert objective(best) > objective((best + delta).clamp(1e-6, 1 - 1e-6))


def test_declared_kinds_validate_their_support() -> None:
    with pytest.raises(ValueError, match="'y' is positive.*outside"):
        Schema.infer(pd.DataFrame({"y": [0.0, 1.0]}), kinds={"y": "positive"})
    with pytest.raises(ValueError, match="'y' is bounded"):
        Schema.infer(pd.DataFrame({"y": [0.5, 1.0]}), kinds={"y": "proportion"})
    with pytest.raises(ValueError, match="outside \\[0, 16\\]"):
        Schema.infer(pd.DataFrame({"y": [3, 17]}), kinds={"y": "binomial:16"})
    with pytest.raises(ValueError, match="low < high"):
        Schema.infer(pd.DataFrame({"y": [0.5]}), kinds={"y": "bounded:1:0"})
    with pytest.raises(ValueError, match="positive integer"):
        Schema.infer(pd.DataFrame({"y": [1]}), kinds={"y": "binomial:2.5"})
    schema = Schema.infer(pd.DataFrame({"y": [3, 16]}), kinds={"y": "binomial:16"})
    with pytest.raises(ValueError, match="outside \\[0, 16\\]"):
        schema.encode(pd.DataFrame({"y": [3, 20]}))
    with pytest.raises(ValueError, match="pass x="):
        s = Schema.infer(pd.DataFrame({"y": [1.0, 2.0]}), kinds={"y": "positive"})
        s.log_abs_det_jacobian(torch.ones(2, 1, dtype=torch.bool))


def test_declared_kinds_round_trip_and_save(rng) -> None:
    df = _frame(rng, 40)
    schema = Schema.infer(df, kinds=KINDS)
    assert [c.label for c in schema.columns] == [
        "positive", "bounded [0, 1]", "binomial(16)", "ordinal",
    ]  # fmt: skip
    back = schema.decode(schema.encode(df).x)
    pd.testing.assert_frame_equal(back, df, check_exact=False, rtol=1e-12)
    restored = Schema.from_dict(schema.to_dict())
    assert restored == schema
    # Schemas without these kinds save exactly as before (no new keys).
    assert set(Schema.infer(df[["grade"]]).to_dict()["columns"][0]) == {
        "name", "kind", "dtype", "categories", "loc", "scale", "ordered",
    }  # fmt: skip


def test_gaussian_mixture_mixed_path_scores_and_samples_in_the_support(rng) -> None:
    df = _frame(rng)
    fit = ppgen.fit(ppgen.GaussianMixture(1, covariance_type="diag"), df, kinds=KINDS, seed=0)
    # One component: the log-likelihood is the product of the four kinds' SciPy densities.
    p = fit.params
    s = fit.schema.columns
    sd = p["precision"][0].rsqrt().numpy()
    mu = p["locs"][0].numpy()
    logit = special.logit(df["share"])
    grade = p["probs[grade]"][0].numpy()
    expected = (
        stats.lognorm(s=sd[0] * s[0].scale, scale=np.exp(s[0].loc + mu[0] * s[0].scale)).logpdf(
            df["mass"]
        )
        + stats.norm(s[1].loc + mu[1] * s[1].scale, sd[1] * s[1].scale).logpdf(logit)
        - np.log(df["share"] * (1 - df["share"]))
        + stats.binom(16, p["success"][0, 0].item()).logpmf(df["pixel"])
        + np.log(grade[df["grade"].map({3: 0, 4: 1, 5: 2})])
    )
    np.testing.assert_allclose(fit.log_prob(df), expected, rtol=0, atol=1e-8)

    two = ppgen.fit(ppgen.GaussianMixture(2), df, kinds=KINDS, seed=0)
    drawn = two.sample(3000, seed=1)
    assert (drawn["mass"] > 0).all()
    assert ((drawn["share"] > 0) & (drawn["share"] < 1)).all()
    assert drawn["pixel"].between(0, 16).all() and drawn["pixel"].dtype == df["pixel"].dtype
    assert set(drawn["grade"]) <= {3, 4, 5}
    assert two.summary() is not None
    holed = df.mask(rng.random(df.shape) < 0.2)
    for table in two.impute(holed, 3, seed=2):
        assert (table["mass"] > 0).all() and table["pixel"].between(0, 16).all()
        assert ((table["share"] > 0) & (table["share"] < 1)).all()
        assert table.notna().all().all()


def test_emission_mixed_family_includes_binomial() -> None:
    df = pd.DataFrame({"px": [0, 3, 16, 5]})
    schema = Schema.infer(df, kinds={"px": "binomial:16"})
    emission = Emission(schema, 2)
    assert [type(p).__name__ for p in emission.parts] == ["Binomial"]


def test_digits_binomial_pixels_sample_inside_0_16() -> None:
    digits = ppgen.datasets.load("digits").drop(columns="target")
    pixels = digits.loc[:, digits.max() > 1].iloc[:400].astype("int64")
    kinds = dict.fromkeys(pixels.columns, "binomial:16")
    fit = ppgen.fit(ppgen.GaussianMixture(5), pixels, kinds=kinds, method="em", seed=0)
    drawn = fit.sample(1000, seed=0)
    assert drawn.min().min() >= 0 and drawn.max().max() <= 16


def test_ppca_and_hmm_take_the_new_kinds(rng) -> None:
    """Positive columns work in every continuous model: PPCA's exact marginal is the log-normal
    one (Jacobian included); the HMM's mixed emission scores and samples a binomial column."""
    z = rng.normal(size=(200, 1))
    logs = z @ np.array([[0.8, 0.5, -0.4]]) + 0.3 * rng.normal(size=(200, 3))
    df = pd.DataFrame(np.exp(logs + 2.0), columns=["a", "b", "c"])
    kinds = dict.fromkeys(df.columns, "positive")
    fit = ppgen.fit(ppgen.PPCA(1), df, kinds=kinds, method="em", seed=0)
    s = fit.schema.columns
    scale = np.array([c.scale for c in s])
    loc = np.array([c.loc for c in s])
    W, noise = fit.params["W"].numpy(), fit.params["noise"].item()
    cov = (W @ W.T + noise * np.eye(3)) * np.outer(scale, scale)
    mean = loc + fit.params["loc"].numpy() * scale
    expected = stats.multivariate_normal(mean, cov).logpdf(np.log(df)) - np.log(df).sum(axis=1)
    np.testing.assert_allclose(fit.log_prob(df), expected, rtol=0, atol=1e-8)
    assert (fit.sample(500, seed=0) > 0).all().all()

    series = pd.DataFrame({"hits": rng.binomial(10, np.repeat([0.2, 0.8, 0.3], 40))})
    hmm = ppgen.fit(
        ppgen.HMM(2, emission="mixed"), series, kinds={"hits": "binomial:10"}, method="em", seed=0
    )
    assert hmm.params["success"].shape == (2, 1)
    assert np.isfinite(hmm.score(series))
