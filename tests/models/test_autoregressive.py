"""ppgen.Autoregressive (MADE): exact likelihood by hand, masks by autograd, linear-Gaussian MLE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import ppgen
from ppgen.models.autoregressive import Autoregressive

torch.set_num_threads(1)
D = torch.distributions


def mixed_table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return pd.DataFrame(
        {
            "a": a,
            "k": rng.poisson(np.exp(0.5 + 0.3 * a)),
            "b": (rng.random(n) < 0.4).astype(int),
            "c": pd.Categorical(rng.choice(["x", "y", "z"], size=n)),
            "e": 2 * a + rng.normal(size=n),
        }
    )


KINDS = {"k": "count", "b": "binary"}


def built(model: Autoregressive, data: pd.DataFrame, seed: int = 0, kinds=None):
    schema = ppgen.Schema.infer(data, kinds=kinds)
    torch.manual_seed(seed)
    model = model.build(schema).double()
    # Non-trivial weights everywhere (the default init leaves small outputs).
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    return model, schema.encode(data, dtype=torch.float64)


def by_hand(model: Autoregressive, x: torch.Tensor, m: int = 0) -> torch.Tensor:
    """Sum over columns of log p(x_j | x_<j) from torch.distributions, each conditional computed
    from a row whose later columns are overwritten by junk (so only x_<j can matter)."""
    total = torch.zeros(x.shape[0], dtype=x.dtype)
    k = model.components
    rank = model.ranks[m]
    for j in model.orders[m]:
        later = [i for i in range(x.shape[1]) if rank[i] >= rank[j]]
        junk = x.clone()
        junk[:, later] = torch.randint(0, 2, (x.shape[0], len(later))).to(x)  # valid codes
        a, b = model.out_slices[j]
        o = model.forward_outputs(junk, m)[:, a:b]
        v = x[:, j]
        kind = model.kinds[j]
        if kind == "continuous":
            scale = o[:, 2 * k :].clamp(-9, 5).exp()
            mix = D.MixtureSameFamily(
                D.Categorical(logits=o[:, :k]), D.Normal(o[:, k : 2 * k], scale)
            )
            total += mix.log_prob(v)
        elif kind == "count" and model.count == "poisson":
            total += D.Poisson(o[:, 0].exp()).log_prob(v)
        elif kind == "count":
            mean, conc = o[:, 0].exp(), o[:, 1].exp()
            total += D.NegativeBinomial(conc, probs=mean / (mean + conc)).log_prob(v)
        elif kind == "binary":
            total += D.Bernoulli(logits=o[:, 0]).log_prob(v)
        else:
            total += D.Categorical(logits=o).log_prob(v)
    return total


@pytest.mark.parametrize(
    "model",
    [
        Autoregressive(hidden=(12, 12), components=3),
        Autoregressive(hidden=(9,), order=["c", "e", "k", "a", "b"], count="negbinomial"),
        Autoregressive(hidden=(), order="reverse", components=2),
        Autoregressive(hidden=(10,), components=2, n_orders=3),
    ],
    ids=["default-order", "permuted-negbin", "linear-reverse", "three-orders"],
)
def test_log_prob_is_the_product_of_the_conditionals(model):
    model, enc = built(model, mixed_table(), kinds=KINDS)
    with torch.no_grad():
        each = torch.stack([by_hand(model, enc.x, m) for m in range(model.n_orders)])
        expected = each.logsumexp(0) - np.log(model.n_orders)  # the ensemble's mean density
        got = model.log_prob(enc.x, enc.mask, {})
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, atol=1e-8, rtol=0)


@pytest.mark.parametrize("order, m", [(None, 0), (["c", "e", "k", "a", "b"], 0), (None, 2)])
def test_masks_output_j_is_independent_of_inputs_at_or_after_j(order, m):
    model = Autoregressive(hidden=(16, 16), order=order, n_orders=3)
    model, enc = built(model, mixed_table(), kinds=KINDS)
    h = model.features(enc.x[:3])
    jac = torch.autograd.functional.jacobian(model.nets[m], h)  # (3, n_out, 3, n_in)
    jac = jac.diagonal(dim1=0, dim2=2).abs().amax(-1)  # (n_out, n_in), max over rows
    for j in range(len(model.kinds)):
        for i in range(len(model.kinds)):
            block = jac[slice(*model.out_slices[j]), slice(*model.in_slices[i])]
            if model.ranks[m][i] >= model.ranks[m][j]:
                assert float(block.max()) == 0.0, (j, i)
            else:
                assert float(block.max()) > 0.0, (j, i)  # the masks are not all zero


def gaussian_data(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cov = np.array([[2.0, 0.8, -0.5], [0.8, 1.0, 0.3], [-0.5, 0.3, 1.5]])
    x = rng.multivariate_normal([1.0, -2.0, 0.5], cov, size=n)
    return pd.DataFrame(x, columns=["u", "v", "w"])


def mvn_mle_loglik(x: np.ndarray) -> np.ndarray:
    return stats.multivariate_normal(x.mean(0), np.cov(x.T, bias=True)).logpdf(x)


def set_ols(model: Autoregressive, x: torch.Tensor) -> None:
    """The linear-Gaussian model's weights at the closed-form MLE: least squares of each column
    on the earlier ones, residual variance divided by n."""
    n = x.shape[0]
    head = model.nets[0].head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        for j in model.order_positions:
            prev = [i for i in range(x.shape[1]) if model.rank[i] < model.rank[j]]
            design = torch.cat([torch.ones(n, 1, dtype=x.dtype), x[:, prev]], 1)
            beta = torch.linalg.lstsq(design, x[:, j : j + 1]).solution[:, 0]
            resid = x[:, j] - design @ beta
            a = model.out_slices[j][0]
            head.bias[a + 1] = beta[0]
            head.weight[a + 1, prev] = beta[1:]
            head.bias[a + 2] = 0.5 * torch.log((resid**2).mean())


def test_linear_gaussian_at_least_squares_is_the_mvn_mle():
    data = gaussian_data()
    model, enc = built(
        Autoregressive(hidden=(), components=1, homoscedastic=True, order=[2, 0, 1]), data
    )
    set_ols(model, enc.x)
    with torch.no_grad():
        got = model.log_prob(enc.x, enc.mask, {}).numpy()
    np.testing.assert_allclose(got.sum(), mvn_mle_loglik(enc.x.numpy()).sum(), rtol=0, atol=1e-8)


def test_trailing_missing_columns_are_marginalized_exactly():
    data = gaussian_data()
    model, enc = built(Autoregressive(hidden=(), components=1, homoscedastic=True), data)
    set_ols(model, enc.x)
    x = enc.x.numpy()
    mask = enc.mask.clone()
    mask[::2, 2] = False  # trailing
    mask[::3, 1:] = False  # trailing
    with torch.no_grad():
        got = model.log_prob(enc.x, mask, {}).numpy()
    mean, cov = x.mean(0), np.cov(x.T, bias=True)
    for i in range(12):
        obs = mask[i].numpy()
        want = stats.multivariate_normal(mean[obs], cov[np.ix_(obs, obs)]).logpdf(x[i, obs])
        np.testing.assert_allclose(got[i], want, atol=1e-8)


def test_missing_before_an_observed_column_is_estimated_and_labelled():
    data = gaussian_data()
    model, enc = built(
        Autoregressive(hidden=(), components=1, homoscedastic=True, missing_particles=20000), data
    )
    set_ols(model, enc.x)
    x = enc.x.numpy()
    mask = enc.mask.clone()
    mask[:8, 0] = False  # the first column: not trailing
    with torch.no_grad():
        got = model.log_prob(enc.x[:8], mask[:8], {}).numpy()
        again = model.log_prob(enc.x[:8], mask[:8], {}).numpy()
    np.testing.assert_array_equal(got, again)  # seeded: a function of the data and the fit
    mean, cov = x.mean(0), np.cov(x.T, bias=True)
    want = stats.multivariate_normal(mean[1:], cov[1:, 1:]).logpdf(x[:8, 1:])
    np.testing.assert_allclose(got, want, atol=0.02)


def test_impute_trailing_is_the_exact_conditional():
    data = gaussian_data()
    model, enc = built(Autoregressive(hidden=(), components=1, homoscedastic=True), data)
    set_ols(model, enc.x)
    n = 4000
    x = enc.x[:1].expand(n, -1).clone()
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, 2] = False
    torch.manual_seed(0)
    with torch.no_grad():
        draws = model.impute(x, mask, {})[:, 2].numpy()
    xs = enc.x.numpy()
    mean, cov = xs.mean(0), np.cov(xs.T, bias=True)
    gain = cov[2, :2] @ np.linalg.inv(cov[:2, :2])
    cond_mean = mean[2] + gain @ (xs[0, :2] - mean[:2])
    cond_sd = np.sqrt(cov[2, 2] - gain @ cov[:2, 2])
    assert abs(draws.mean() - cond_mean) < 4 * cond_sd / np.sqrt(n)
    assert abs(draws.std() / cond_sd - 1) < 0.05
    np.testing.assert_array_equal(model.impute(enc.x[:5], enc.mask[:5], {}), enc.x[:5])


def test_fitted_linear_gaussian_reaches_the_mvn_mle():
    data = gaussian_data(n=300)
    fit = ppgen.fit(
        Autoregressive(hidden=(), components=1, homoscedastic=True),
        data,
        dtype=torch.float64,
        seed=0,
        progress=False,
        batch_size=300,
        validation=0,
        max_epochs=200,
        lr=0.05,
    )
    want = mvn_mle_loglik(data.to_numpy()).mean()
    assert abs(fit.score(data) - want) < 1e-4, (fit.score(data), want)


def test_fit_sample_save_load(tmp_path):
    data = mixed_table(60)
    fit = ppgen.fit(
        Autoregressive(hidden=(8,), components=2, n_orders=2),
        data,
        kinds=KINDS,
        seed=0,
        progress=False,
        max_epochs=3,
    )
    assert fit.kind == "networks"
    draws = fit.sample(7, seed=1)
    assert list(draws.columns) == list(data.columns) and len(draws) == 7
    pd.testing.assert_frame_equal(draws, fit.sample(7, seed=1))
    assert set(draws["c"]) <= {"x", "y", "z"} and set(draws["b"]) <= {0, 1}
    fit.save(str(tmp_path / "ar.ppgen"))
    loaded = ppgen.load(str(tmp_path / "ar.ppgen"))
    np.testing.assert_array_equal(loaded.log_prob(data), fit.log_prob(data))
    holed = data.copy()
    holed.loc[::4, "a"] = np.nan  # first in order 0, so an estimate
    holed.loc[::3, "e"] = np.nan
    lp = fit.log_prob(holed)
    assert np.all(np.isfinite(lp))
    np.testing.assert_array_equal(lp, fit.log_prob(holed))  # seeded
    (done,) = fit.impute(holed, 1, seed=0)
    assert done.notna().all().all()
    pd.testing.assert_series_equal(done["k"], data["k"])
    for what, call in [("decode", lambda: fit.decode(np.zeros((1, 2)))),
                       ("reconstruct", lambda: fit.reconstruct(data))]:  # fmt: skip
        with pytest.raises(ValueError, match=f"{what} is defined .* no latent space"):
            call()


def test_bad_options_raise_value_errors():
    with pytest.raises(ValueError, match="count"):
        Autoregressive(count="binomial")
    with pytest.raises(ValueError, match="order"):
        Autoregressive(order="random")
    with pytest.raises(ValueError, match="unknown column 'zz'"):
        ppgen.fit(Autoregressive(order=["zz"]), gaussian_data(20), max_epochs=1)
    with pytest.raises(ValueError, match="every column exactly once"):
        ppgen.fit(Autoregressive(order=[0, 0, 1]), gaussian_data(20), max_epochs=1)
