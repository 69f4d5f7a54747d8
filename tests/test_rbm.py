"""RBM: free energy, Gibbs sampling, CD/PCD gradients and AIS of log Z against exact enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

import ppgen
from ppgen.evaluate.partition import log_partition, partition_schedule
from ppgen.infer.engines.cd import cd_gradient
from ppgen.models.rbm import RBM

torch.set_num_threads(1)
DT = torch.float64


def _rbm(p: int, H: int, visible: str = "bernoulli", scale: float = 1.0, seed: int = 0):
    """A built RBM with random parameters (weights of sd ``scale``)."""
    g = torch.Generator().manual_seed(seed)
    model = RBM(H, visible=visible)
    model.dim, model.names = p, tuple(f"x{j}" for j in range(p))
    params = {
        "W": scale * torch.randn(p, H, generator=g, dtype=DT),
        "b_visible": 0.5 * torch.randn(p, generator=g, dtype=DT),
        "c_hidden": 0.5 * torch.randn(H, generator=g, dtype=DT),
    }
    return model, params


def _binary(k: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=k)), dtype=DT)


def _exact_visible(model, params):
    """Every visible vector of a Bernoulli RBM and its exact probability."""
    v = _binary(model.dim)
    full = torch.ones_like(v, dtype=torch.bool)
    logp = -model.free_energy(v, full, params) - model.exact_log_partition(params)
    return v, logp.exp()


def _energy_joint(v, h, params):
    return v @ params["b_visible"] + h @ params["c_hidden"] + ((v @ params["W"]) * h).sum(-1)


def test_free_energy_and_log_z_match_brute_force_enumeration():
    model, params = _rbm(5, 4, scale=1.5)
    v, h = _binary(5), _binary(4)
    joint = _energy_joint(v[:, None, :], h[None, :, :], params)  # (32, 16) = -E(v, h)
    full = torch.ones_like(v, dtype=torch.bool)
    torch.testing.assert_close(-model.free_energy(v, full, params), joint.logsumexp(1))
    torch.testing.assert_close(model.exact_log_partition(params), joint.logsumexp((0, 1)))


def test_missing_bernoulli_visibles_are_summed_out_exactly_both_ways():
    model, params = _rbm(6, 5, scale=1.2)
    v = torch.bernoulli(
        torch.full((4, 6), 0.5, dtype=DT), generator=torch.Generator().manual_seed(1)
    )
    mask = torch.ones_like(v, dtype=torch.bool)
    mask[0, [1, 4]] = False  # 2 missing < 5 hidden: enumerates the missing visibles
    mask[1, :] = False
    mask[1, 0] = True  # 5 missing = H: still the visibles
    mask[2, 1:] = False  # 5 missing
    got = model.free_energy(v, mask, params)
    for i in range(3):
        miss = (~mask[i]).nonzero().flatten()
        fills = _binary(len(miss))
        rows = v[i].expand(len(fills), -1).clone()
        rows[:, miss] = fills
        full = torch.ones_like(rows, dtype=torch.bool)
        want = -torch.logsumexp(-model.free_energy(rows, full, params), 0)
        torch.testing.assert_close(got[i], want)
    # The hidden-enumeration path (more missing visibles than hidden units) agrees too.
    small, p2 = _rbm(6, 2, scale=1.2, seed=3)
    m = torch.ones(1, 6, dtype=torch.bool)
    m[0, :4] = False
    fills = _binary(4)
    rows = v[3].expand(16, -1).clone()
    rows[:, :4] = fills
    want = -torch.logsumexp(
        -small.free_energy(rows, torch.ones_like(rows, dtype=torch.bool), p2), 0
    )
    torch.testing.assert_close(small.free_energy(v[3:4], m, p2)[0], want)


def test_gaussian_rbm_missing_entries_and_log_z_match_the_mixture_of_gaussians():
    # Summing out h, a Gaussian-Bernoulli RBM is sum_h p(h) N(v; b + W h, I): the marginal of
    # any subset of visibles is the same mixture with those coordinates.
    model, params = _rbm(4, 3, visible="gaussian", scale=0.8)
    h = _binary(3)
    W, b, c = params["W"], params["b_visible"], params["c_hidden"]
    means = b + h @ W.T
    log_ph = h @ c + (b * (h @ W.T) + 0.5 * (h @ W.T) ** 2).sum(-1)
    log_ph = log_ph - log_ph.logsumexp(0)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2), dtype=DT)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    got = -model.free_energy(x, mask, params) - model.exact_log_partition(params)
    for i in range(3):
        o = mask[i]
        comp = torch.distributions.Normal(means[:, o], 1.0).log_prob(x[i, o]).sum(-1)
        torch.testing.assert_close(got[i], (log_ph + comp).logsumexp(0))


def test_gibbs_chains_sample_the_exact_joint_of_a_tiny_rbm():
    model, params = _rbm(3, 2, scale=1.5, seed=4)
    n = 20000
    torch.manual_seed(0)
    v = model.chain_step(torch.zeros(n, 3, dtype=DT), params, 50)
    h = torch.bernoulli(model.hidden_probs(v, params))
    states = torch.cat([v, h], 1) @ (2.0 ** torch.arange(4, -1, -1, dtype=DT))
    counts = torch.bincount(states.long(), minlength=32).numpy()
    grid = _binary(5)
    logp = _energy_joint(grid[:, :3], grid[:, 3:], params)
    probs = torch.softmax(logp, 0).numpy()
    _, pvalue = stats.chisquare(counts, probs * n)
    assert pvalue > 1e-3, pvalue


def _exact_gradient(model, params, data):
    """-d/dtheta mean log p(data): mean dF(data) - E_model dF, by enumerating the visibles."""
    v, probs = _exact_visible(model, params)
    leaves = {k: t.clone().requires_grad_(True) for k, t in params.items()}
    full = torch.ones_like(data, dtype=torch.bool)
    pos = model.free_energy(data, full, leaves).mean()
    neg = (probs * model.free_energy(v, torch.ones_like(v, dtype=torch.bool), leaves)).sum()
    grads = torch.autograd.grad(pos - neg, list(leaves.values()))
    return torch.cat([g.flatten() for g in grads])


def test_cd_k_gradient_bias_shrinks_as_k_grows_and_pcd_matches_the_exact_gradient():
    model, params = _rbm(6, 4, scale=2.0, seed=5)
    torch.manual_seed(1)
    data = torch.bernoulli(torch.full((20, 6), 0.3, dtype=DT))
    exact = _exact_gradient(model, params, data)
    reps = data.repeat(400, 1)  # CD-k's expectation over its chains, many replicas per row
    bias = {}
    for k in (1, 5, 50):
        torch.manual_seed(2)
        negatives = model.chain_step(reps, params, k)
        g = cd_gradient(model, reps, negatives, params)
        bias[k] = float((torch.cat([t.flatten() for t in g.values()]) - exact).norm())
    assert bias[1] > 2 * bias[5] > 0 and bias[5] > bias[50], bias
    # PCD-style long persistent chains at fixed parameters: the exact gradient to MC error.
    torch.manual_seed(3)
    m = 8000
    chains = model.chain_step(model.chain_init(m, data, params), params, 300)
    g = cd_gradient(model, data, chains, params)
    got = torch.cat([t.flatten() for t in g.values()])
    # Per-component MC standard error of E_model dF from the independent chains' spread:
    # dF/dW = -v s^T, dF/db = -v, dF/dc = -s with s = p(h = 1 | v).
    s = model.hidden_probs(chains, params)
    per_chain = -torch.cat([(chains[:, :, None] * s[:, None, :]).flatten(1), chains, s], 1)
    se = per_chain.std(0) / math.sqrt(m)
    z = ((got - exact).abs() / se.clamp(min=1e-6)).max()
    assert z < 4.5, float(z)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_ais_log_z_matches_the_exact_value(visible):
    model, params = _rbm(10, 12, visible=visible, scale=0.6 if visible == "gaussian" else 1.0)
    exact = float(model.exact_log_partition(params))
    torch.manual_seed(0)
    x = model.chain_step(torch.zeros(200, 10, dtype=DT), params, 200)  # rows like the model's
    annealer = model.annealer(x, torch.ones_like(x, dtype=torch.bool), params)
    torch.manual_seed(1)
    z = log_partition(annealer, partition_schedule("piecewise", 1000), 100)
    assert abs(z["log_z"] - exact) < 3 * z["log_z_se"] + 1e-9 or abs(z["log_z"] - exact) < 0.01
    assert abs(z["log_z"] - exact) < 0.1, (z, exact)
    assert abs(z["log_z_upper"] - exact) < 0.1, (z, exact)
    assert z["log_z_se"] < 0.05


def test_fit_ais_and_errors_end_to_end():
    rng = np.random.default_rng(0)
    X = (rng.random((300, 6)) < np.linspace(0.2, 0.8, 6)).astype(int)
    X[:, 1] = X[:, 0]
    fit = ppgen.fit(ppgen.RBM(4), X, seed=0, max_epochs=10, progress=False)
    assert fit.method == "cd" and fit.kind == "point"
    assert set(fit.params) == {"W", "b_visible", "c_hidden"}
    assert fit.params["W"].shape == (6, 4)
    res = ppgen.evaluate.ais(fit, X, n_steps=500, n_chains=50, seed=0)
    enc = fit.encode(X)
    exact = -fit.model.free_energy(
        enc.x, enc.mask, dict(fit.params)
    ) - fit.model.exact_log_partition(dict(fit.params))
    assert abs(res.mean - float(exact.mean())) < max(3 * res.mc_se, 0.01)
    assert fit.transform(X[:5]).shape == (5, 4)
    assert np.all((fit.transform(X[:5]) > 0) & (fit.transform(X[:5]) < 1))
    with pytest.raises(NotImplementedError, match=r"ppgen.evaluate.ais\(fit, data\)"):
        fit.log_prob(X)
    with pytest.raises(ValueError, match="ais"):
        ppgen.evaluate.elbo(fit, X)
    with pytest.raises(ValueError, match="method='cd'"):
        ppgen.fit(ppgen.RBM(2), X, method="map")
    const = X.copy()
    const[:, 3] = 1
    with pytest.raises(ValueError, match=r"x3.*constant"):
        ppgen.fit(ppgen.RBM(2), const, progress=False)
    with pytest.raises(ValueError, match="0/1"):
        ppgen.fit(ppgen.RBM(2), X * 2 + 1, progress=False)
    with pytest.raises(ValueError, match="visible"):
        ppgen.RBM(2, visible="poisson")
    # Missing entries: fitted through a clamped Gibbs completion; scored exactly.
    Xm = X.astype(float)
    Xm[::7, 2] = np.nan
    fitm = ppgen.fit(ppgen.RBM(4), Xm, seed=0, max_epochs=3, progress=False)
    res = ppgen.evaluate.ais(fitm, Xm, n_steps=200, n_chains=20, seed=0)
    assert np.all(np.isfinite(res.per_row))
    imputed = fitm.impute(Xm, 2, seed=0)[0]
    assert set(np.unique(imputed)) <= {0.0, 1.0}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cd_optimizer_matches_torch_optim(optimizer):
    from ppgen.infer.engines.cd import CdOptions, _Optimizer

    options = CdOptions(optimizer=optimizer, lr=0.1, momentum=0.7, weight_decay=0.01)
    ours = torch.tensor([1.0, -2.0, 3.0], dtype=DT, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_(True)
    opt = _Optimizer([ours], options)
    if optimizer == "sgd":
        ref = torch.optim.SGD([theirs], lr=0.1, momentum=0.7, weight_decay=0.01)
    else:
        ref = torch.optim.Adam([theirs], lr=0.1, weight_decay=0.01)
    for _ in range(5):
        for p, o in ((ours, opt), (theirs, ref)):
            p.grad = None
            ((p - 0.5) ** 4).sum().backward()
            o.step()
    torch.testing.assert_close(ours, theirs)
