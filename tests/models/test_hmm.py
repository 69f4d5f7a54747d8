"""HMM: recursions against brute force over all state paths, the Pyro programs against each
other, fits against hmmlearn, and the sequence plumbing (lengths, masks, bad input)."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from scipy import stats
from scipy.special import logsumexp

import ppgen
from ppgen.data import Schema
from ppgen.testing.stationary import pyro_log_joint_and_gradient

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
logging.getLogger("hmmlearn").setLevel(logging.ERROR)


# -- a mixed-kind table and random parameters ------------------------------------------------------
def _mixed_frame(n, rng):
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n) * 2,
            "n": rng.poisson(3, size=n),
            "c": rng.choice(["u", "v", "w"], size=n),
            "y": rng.random(n) < 0.4,
        }
    )


def _mixed_model(K, cov_type="full", n=40, rng=None):
    rng = rng or np.random.default_rng(0)
    schema = Schema.infer(_mixed_frame(n, rng), standardize=False)
    model = ppgen.HMM(K, "mixed", cov_type).build(schema).to(dtype=torch.float64)
    return model, schema


def _random_params(model, rng, cov_type="full"):
    K = model.n_states
    covs = []
    for _ in range(K):
        a = rng.normal(size=(2, 2))
        covs.append(a @ a.T + np.eye(2))
    covs = np.array(covs)
    if cov_type == "diag":
        covs = np.array([np.diag(np.diag(c)) for c in covs])
        prec = 1 / np.diagonal(covs, axis1=1, axis2=2)
    else:
        prec = np.linalg.inv(covs)
    params = {
        "initial": rng.dirichlet(np.ones(K)),
        "transition": rng.dirichlet(np.ones(K), size=K),
        "locs": rng.normal(size=(K, 2)),
        "precision": prec,
        "rates": rng.gamma(3.0, 1.0, size=(K, 1)),
        "probs": rng.uniform(0.1, 0.9, size=(K, 1)),
        "probs[c]": rng.dirichlet(np.ones(3), size=K),
    }
    return {k: torch.tensor(v) for k, v in params.items()}, covs


def _random_sequences(S, T, rng):
    x = np.stack(
        [
            rng.normal(size=(S, T)),
            rng.normal(size=(S, T)) * 2,
            rng.poisson(3, size=(S, T)),
            rng.integers(0, 3, size=(S, T)),
            rng.integers(0, 2, size=(S, T)),
        ],
        axis=-1,
    ).astype(float)
    return torch.tensor(x)


def _scipy_emission(x, mask, params, covs, k):
    """log p(observed entries of one row | state k), by SciPy."""
    x, mask = x.numpy(), mask.numpy()
    out = 0.0
    o = [j for j in (0, 1) if mask[j]]
    if o:
        out += stats.multivariate_normal(
            params["locs"][k].numpy()[o], covs[k][np.ix_(o, o)]
        ).logpdf(x[o])
    if mask[2]:
        out += stats.poisson(params["rates"][k, 0].item()).logpmf(x[2])
    if mask[3]:
        out += np.log(params["probs[c]"][k, int(x[3])].item())
    if mask[4]:
        out += stats.bernoulli(params["probs"][k, 0].item()).logpmf(x[4])
    return out


def _brute_force(x, mask, params, covs, T):
    """Log joint of every state path of one sequence's first T steps: (paths, log p)."""
    K = params["transition"].shape[0]
    log_pi, log_A = np.log(params["initial"].numpy()), np.log(params["transition"].numpy())
    emis = np.array([[_scipy_emission(x[t], mask[t], params, covs, k) for k in range(K)]
                     for t in range(T)])  # fmt: skip
    paths = list(itertools.product(range(K), repeat=T))
    logp = np.array(
        [
            log_pi[z[0]]
            + sum(log_A[z[t - 1], z[t]] for t in range(1, T))
            + sum(emis[t, z[t]] for t in range(T))
            for z in paths
        ]
    )
    return np.array(paths), logp


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("cov_type", ["full", "diag"])
@pytest.mark.parametrize("recursion", ["numpy", "parallel", "scaled", "log"])
def test_forward_viterbi_and_smoothing_equal_brute_force(K, cov_type, recursion, rng, monkeypatch):
    # "numpy": the CPU loop (no gradients); the torch recursions (GPU, autograd): "parallel",
    # prefix products (few short sequences), and "scaled", the step loop (large batches)
    monkeypatch.setattr(ppgen.models.hmm, "_NUMPY_RECURSIONS", recursion in ("numpy", "log"))
    monkeypatch.setattr(ppgen.models.hmm, "_TREE_LIMIT", 0)  # log p(x) by the loops too
    monkeypatch.setattr(
        ppgen.models.hmm, "_PARALLEL_LIMIT", 10**9 if recursion == "parallel" else 0
    )
    if recursion == "log":  # the log-space fallback, taken when the scaled recursions underflow
        underflow = staticmethod(lambda ll, present: (torch.zeros_like(ll), ll[..., 0] * 0))
        monkeypatch.setattr(ppgen.models.hmm.HMM, "_scaled_emissions", underflow)
    T, S = 6, 3
    model, _ = _mixed_model(K, cov_type)
    params, covs = _random_params(model, rng, cov_type)
    x = _random_sequences(S, T, rng)
    mask = torch.tensor(rng.random((S, T, 5)) > 0.2)
    mask[1, 2] = False  # a fully missing step
    log_lik = model.log_prob(x, mask, params)
    viterbi = model.viterbi(x, mask, params)
    post = model.posteriors(x, mask, params)
    for s in range(S):
        paths, logp = _brute_force(x[s], mask[s], params, covs, T)
        assert log_lik[s].item() == pytest.approx(logsumexp(logp), abs=1e-8)
        assert viterbi[s].tolist() == paths[np.argmax(logp)].tolist()
        weights = np.exp(logp - logsumexp(logp))
        marginals = np.array([[weights[paths[:, t] == k].sum() for k in range(K)]
                              for t in range(T)])  # fmt: skip
        np.testing.assert_allclose(post["marginals"][s].numpy(), marginals, atol=1e-10)
        np.testing.assert_allclose(post["marginals"][s].sum(-1).numpy(), 1.0, atol=1e-12)
        # Expected transition counts, summed over sequences below.
    xi = np.zeros((K, K))
    for s in range(S):
        paths, logp = _brute_force(x[s], mask[s], params, covs, T)
        w = np.exp(logp - logsumexp(logp))
        for z, wz in zip(paths, w, strict=True):
            for t in range(1, T):
                xi[z[t - 1], z[t]] += wz
    np.testing.assert_allclose(post["transitions"].numpy(), xi, atol=1e-9)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
@pytest.mark.parametrize("prior", [None, "default"])
def test_lockstep_em_steps_equal_one_em_step_at_a_time(cov_type, prior, rng, monkeypatch):
    # em_steps (EM's screened starts in lockstep: R parameter sets as one HMM of R K states)
    # gives each start's em_step, on every emission kind, missing entries and unequal lengths.
    schema = Schema.infer(_mixed_frame(40, np.random.default_rng(0)), standardize=False)
    model = ppgen.HMM(3, "mixed", cov_type, prior=prior).build(schema).to(dtype=torch.float64)
    S, T = 4, 9
    x = _random_sequences(S, T, rng)
    mask = torch.tensor(rng.random((S, T, 5)) > 0.2)
    lengths = torch.tensor([T, 5, 1, 8])
    starts = [_random_params(model, rng, cov_type)[0] for _ in range(3)]
    with torch.no_grad():
        alone = [model.em_step(x, mask, p, lengths) for p in starts]

        def boom(*args, **kwargs):
            raise AssertionError("em_steps fell back to em_step")

        monkeypatch.setattr(ppgen.HMM, "em_step", boom)
        together = model.em_steps(x, mask, starts, lengths)
    for (one, lj_one), (many, lj_many) in zip(alone, together, strict=True):
        assert set(one) == set(many)
        for site in one:
            torch.testing.assert_close(many[site], one[site], rtol=0, atol=1e-10)
        assert float(lj_many) == pytest.approx(float(lj_one), abs=1e-9)


def _pyro_log_joint(program, model, params, x, mask, enum):
    conditioned = poutine.condition(program, data=params)
    elbo = TraceEnum_ELBO(max_plate_nesting=1) if enum else Trace_ELBO()
    return -elbo.loss(conditioned, lambda *a, **k: None, x, mask)


@pytest.mark.parametrize("initial", ["learned", "stationary"])
def test_discrete_hmm_program_enumerated_program_and_forward_agree(initial, rng):
    K, S, T = 3, 3, 7
    rng_data = np.random.default_rng(1)
    schema = Schema.infer(_mixed_frame(30, rng_data), standardize=False)
    model = ppgen.HMM(K, "mixed", initial=initial, prior="default")  # the MAP objective
    model = model.build(schema).to(dtype=torch.float64)
    params, _ = _random_params(model, rng)
    if initial == "stationary":
        del params["initial"]
    x = _random_sequences(S, T, rng)
    mask = torch.tensor(rng.random((S, T, 5)) > 0.2)
    mask[0, 5:] = False  # a padded tail: sequence 0 has 5 steps
    closed = model.log_joint(x, mask, params).item()
    fast = _pyro_log_joint(model.model, model, params, x, mask, enum=False)
    enumerated = _pyro_log_joint(model.model_enumerated, model, params, x, mask, enum=True)
    assert fast == pytest.approx(closed, abs=1e-8)
    assert enumerated == pytest.approx(closed, abs=1e-8)
    lengths = torch.tensor([5, T, T])
    assert model.log_joint(x, mask, params, lengths).item() == pytest.approx(closed, abs=1e-8)


def test_stationary_initial_is_stationary(rng):
    A = torch.tensor(rng.dirichlet(np.ones(4), size=4))
    pi = ppgen.models.hmm.stationary_distribution(A)
    torch.testing.assert_close(pi @ A, pi)
    assert pi.sum().item() == pytest.approx(1.0)


def test_unequal_lengths_equal_one_sequence_at_a_time(rng):
    model, _ = _mixed_model(3)
    params, _ = _random_params(model, rng)
    lengths = [6, 3, 9]
    seqs = [_random_sequences(1, n, rng)[0] for n in lengths]
    masks = [torch.tensor(rng.random((n, 5)) > 0.15) for n in lengths]
    T = max(lengths)
    x = torch.zeros(3, T, 5, dtype=torch.float64)
    mask = torch.zeros(3, T, 5, dtype=torch.bool)
    for s, n in enumerate(lengths):
        x[s, :n], mask[s, :n] = seqs[s], masks[s]
    # Garbage in the padding must not matter.
    x[1, 3:] = 7.0
    L = torch.tensor(lengths)
    ll, path, marg = (
        model.log_prob(x, mask, params, L),
        model.viterbi(x, mask, params, L),
        model.smooth(x, mask, params, L),
    )
    for s, n in enumerate(lengths):
        one = (seqs[s][None], masks[s][None], params)
        assert ll[s].item() == pytest.approx(model.log_prob(*one).item(), abs=1e-10)
        assert path[s, :n].tolist() == model.viterbi(*one)[0].tolist()
        torch.testing.assert_close(marg[s, :n], model.smooth(*one)[0])


def test_masked_entries_are_marginalised_like_by_hand(rng):
    """A missing step and a missing entry equal the brute-force sum with them left out."""
    model, _ = _mixed_model(2, "full")
    params, covs = _random_params(model, rng)
    x = _random_sequences(1, 6, rng)
    mask = torch.ones(1, 6, 5, dtype=torch.bool)
    mask[0, 2] = False
    mask[0, 4, 1] = False
    # By hand: drop step 2's emission, integrate column b out of step 4 (Gaussian marginal).
    K = 2
    log_pi, log_A = params["initial"].log().numpy(), params["transition"].log().numpy()
    total = []
    for z in itertools.product(range(K), repeat=6):
        lp = log_pi[z[0]] + sum(log_A[z[t - 1], z[t]] for t in range(1, 6))
        for t in range(6):
            if t == 2:
                continue
            row = x[0, t].numpy()
            k = z[t]
            if t == 4:
                lp += stats.norm(params["locs"][k, 0].item(), np.sqrt(covs[k][0, 0])).logpdf(row[0])
            else:
                lp += stats.multivariate_normal(params["locs"][k].numpy(), covs[k]).logpdf(row[:2])
            lp += stats.poisson(params["rates"][k, 0].item()).logpmf(row[2])
            lp += np.log(params["probs[c]"][k, int(row[3])].item())
            lp += stats.bernoulli(params["probs"][k, 0].item()).logpmf(row[4])
        total.append(lp)
    assert model.log_prob(x, mask, params).item() == pytest.approx(logsumexp(total), abs=1e-8)


# -- fits against hmmlearn -------------------------------------------------------------------------
def _hmmlearn_best(make, X, n=20):
    best = -np.inf
    for seed in range(n):
        try:
            best = max(best, make(seed).fit(X).score(X))
        except (ValueError, np.linalg.LinAlgError):  # a restart that degenerates
            continue
    return best


def _gaussian_reference(K, cov_type, X):
    from hmmlearn.hmm import GaussianHMM

    return _hmmlearn_best(
        lambda s: GaussianHMM(K, covariance_type=cov_type, n_iter=1000, tol=1e-8, random_state=s),
        X,
    )


@pytest.mark.parametrize(
    "K, cov_type, method",
    [
        (2, "full", "em"),
        (2, "full", "map"),
        (2, "diag", "em"),
        (3, "full", "em"),
        (3, "diag", "em"),
        pytest.param(3, "full", "map", marks=pytest.mark.slow),
        (2, "diag", "map"),
        (3, "diag", "map"),
    ],
)
def test_geyser_matches_best_of_twenty_hmmlearn_restarts(K, cov_type, method):
    geyser = ppgen.datasets.load("geyser")
    fit = ppgen.fit(ppgen.HMM(K, "gaussian", cov_type), geyser, method=method)
    ours = fit.log_prob().sum()  # total log-likelihood on the raw scale, like hmmlearn's score
    assert ours >= _gaussian_reference(K, cov_type, geyser.to_numpy()) - 0.01


def test_geyser_fit_is_hmmlearns_likelihood_and_a_fixed_point_of_its_em():
    """hmmlearn scores ppgen's parameters identically, and its EM cannot improve them much."""
    from hmmlearn.hmm import GaussianHMM

    geyser = ppgen.datasets.load("geyser")
    X = geyser.to_numpy()
    fit = ppgen.fit(ppgen.HMM(2, "gaussian", "full"), geyser, method="em")
    d = {k: v.numpy() for k, v in fit.model.describe(dict(fit.params), fit.schema).items()}
    ref = GaussianHMM(2, covariance_type="full", init_params="", n_iter=1000, tol=1e-8)
    ref.startprob_, ref.transmat_ = d["initial"], d["transition"]
    ref.means_, ref.covars_ = d["means"], d["covariances"]
    assert ref.score(X) == pytest.approx(fit.log_prob().sum(), abs=1e-8)
    # MAP sits within the prior's second-order pull of the maximum likelihood.
    assert ref.fit(X).score(X) - fit.log_prob().sum() < 0.01


@pytest.mark.parametrize("method", ["em", "map"])
def test_discoveries_poisson_matches_best_of_twenty_hmmlearn_restarts(method):
    from hmmlearn.hmm import PoissonHMM

    df = ppgen.datasets.load("discoveries")[["discoveries"]]
    fit = ppgen.fit(ppgen.HMM(2, "poisson"), df, method=method)
    ref = _hmmlearn_best(
        lambda s: PoissonHMM(2, n_iter=1000, tol=1e-8, random_state=s), df.to_numpy()
    )
    assert fit.log_prob().sum() >= ref - 0.01


def test_categorical_emission_matches_hmmlearn(rng):
    from hmmlearn.hmm import CategoricalHMM

    truth = {
        "initial": torch.tensor([0.6, 0.4]),
        "transition": torch.tensor([[0.9, 0.1], [0.2, 0.8]]),
        "probs[x0]": torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]),
    }
    schema = Schema.infer(np.array([[0], [1], [2]]), kinds={"x0": "categorical"})
    gen = ppgen.HMM(2, "categorical").build(schema)
    torch.manual_seed(0)
    codes = gen.sample(1, truth, 400)[0].numpy().astype(int)
    model = ppgen.HMM(2, "categorical", emission_concentration=1.0)
    fit = ppgen.fit(model, codes, method="em", n_init=2, max_steps=300)
    ref = _hmmlearn_best(
        lambda s: CategoricalHMM(2, n_iter=1000, tol=1e-8, random_state=s), codes, n=5
    )
    assert fit.log_prob().sum() >= ref - 0.01


# -- EM and the Pyro objective ---------------------------------------------------------------------
def test_em_is_monotone_and_stops_at_a_stationary_point_of_the_pyro_objective():
    geyser = ppgen.datasets.load("geyser")
    model = ppgen.HMM(2, "gaussian", "diag", prior="default")  # EM of the MAP objective
    fit = ppgen.fit(model, geyser, method="em", tol=1e-12, n_init=1)
    assert np.all(np.diff(-fit.losses) >= -1e-9 * np.abs(fit.losses[:-1]))
    log_joint, gradient = pyro_log_joint_and_gradient(fit)
    assert gradient < 1e-3
    assert log_joint == pytest.approx(-fit.losses[-1], rel=1e-9)


# -- parameter recovery ----------------------------------------------------------------------------
TRUTH = {
    "initial": torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
    "transition": torch.tensor(
        [[0.90, 0.07, 0.03], [0.05, 0.90, 0.05], [0.10, 0.10, 0.80]], dtype=torch.float64
    ),
    "locs": torch.tensor([[-2.0, 0.0], [0.0, 1.5], [2.0, -1.0]], dtype=torch.float64),
    "precision": torch.tensor([[1.0, 4.0], [2.0, 1.0], [0.5, 2.0]], dtype=torch.float64),
}


def _simulate(S, T, seed):
    schema = Schema.infer(np.zeros((2, 2)) + np.eye(2), standardize=False)
    gen = ppgen.HMM(3, "gaussian", "diag").build(schema).to(dtype=torch.float64)
    torch.manual_seed(seed)
    return [s.numpy() for s in gen.sample(S, TRUTH, T)]


def _check_recovery(S, T, tol):
    seqs = _simulate(S, T, 0)
    fit = ppgen.fit(
        ppgen.HMM(3, "gaussian", "diag", order_by="x0"), seqs, method="em", standardize=False
    )
    est = fit.params
    assert fit.model.ordering(est).tolist() == [0, 1, 2]
    np.testing.assert_allclose(est["transition"].numpy(), TRUTH["transition"].numpy(), atol=tol)
    np.testing.assert_allclose(est["locs"].numpy(), TRUTH["locs"].numpy(), atol=2 * tol)
    np.testing.assert_allclose(
        1 / est["precision"].numpy(), 1 / TRUTH["precision"].numpy(), rtol=4 * tol
    )
    np.testing.assert_allclose(est["initial"].numpy(), TRUTH["initial"].numpy(), atol=0.25)


def test_recovers_parameters_from_50_sequences_of_500_steps():
    # Tolerances: transitions within 0.015, means within 0.03, variances within 6%, initial
    # probabilities (50 first steps only) within 0.25.
    _check_recovery(50, 500, 0.015)


# -- data forms and bad input ----------------------------------------------------------------------
def _long_frame(rng):
    rows = []
    for sid, n in (("s1", 30), ("s2", 12), ("s3", 20)):
        states = np.cumsum(rng.random(n) < 0.1) % 2
        for t in range(n):
            rows.append({"id": sid, "t": t * 10, "v": rng.normal(3.0 * states[t], 1.0)})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).sort_values(["t"], kind="stable")


def test_long_frame_list_of_frames_and_arrays_give_the_same_fit(rng):
    df = _long_frame(rng)
    seqs = [g.sort_values("t")[["v"]] for _, g in df.groupby("id", sort=False)]
    a = ppgen.fit(ppgen.HMM(2), df, method="em", id_column="id", time_column="t")
    b = ppgen.fit(ppgen.HMM(2), seqs, method="em")
    c = ppgen.fit(ppgen.HMM(2), [s.to_numpy() for s in seqs], method="em")
    np.testing.assert_allclose(a.log_prob(), b.log_prob(), rtol=1e-10)
    np.testing.assert_allclose(b.log_prob(), c.log_prob(), rtol=1e-10)
    # Per-step results of a long frame are aligned with its rows, whatever their order.
    states = a.predict(df)
    assert states.shape == (len(df),)
    by_seq = b.predict()
    for i, (_, g) in enumerate(df.groupby("id", sort=False)):
        order = np.argsort(g["t"].to_numpy())
        got = states[df.index.get_indexer(g.index)][order]
        assert got.tolist() == by_seq[i].tolist() or got.tolist() == (1 - by_seq[i]).tolist()


def test_empty_sequences_are_refused_by_name(rng):
    # One-step sequences are fitted (tests/models/test_estimates.py); empty ones are refused.
    seqs = {"long": rng.normal(size=(10, 2)), "short": rng.normal(size=(0, 2))}
    with pytest.raises(ValueError, match=r"sequence 'short' has 0 steps"):
        ppgen.fit(ppgen.HMM(2), seqs)


@pytest.mark.parametrize("bad, what", [(2.5, "non-integer"), (-1, "negative")])
def test_bad_counts_name_the_sequence_and_column(bad, what, rng):
    seqs = [pd.DataFrame({"k": rng.poisson(3, 20)}) for _ in range(3)]
    seqs[2] = seqs[2].astype(float)
    seqs[2].loc[5, "k"] = bad
    with pytest.raises(ValueError, match=rf"sequence 2: .*'k'.*{what}"):
        ppgen.fit(ppgen.HMM(2, "poisson"), seqs)


def test_unsorted_time_column_is_refused(rng):
    df = _long_frame(rng)
    df = df.sort_values(["id", "t"]).reset_index(drop=True)
    df.loc[35, "t"], df.loc[36, "t"] = df.loc[36, "t"], df.loc[35, "t"]
    with pytest.raises(ValueError, match=r"sequence 's2': time column 't' is not strictly"):
        ppgen.fit(ppgen.HMM(2), df, id_column="id", time_column="t")


def test_unseen_category_names_the_sequence_and_column(rng):
    seqs = [pd.DataFrame({"g": rng.choice(["a", "b"], 15)}) for _ in range(2)]
    fit = ppgen.fit(ppgen.HMM(2, "categorical"), seqs, method="em", n_init=1, max_steps=20)
    new = [seqs[0], pd.DataFrame({"g": ["a", "b", "zzz", "a"]})]
    with pytest.raises(ValueError, match=r"sequence 1: unseen category 'zzz' in .* column 'g'"):
        fit.log_prob(new)


def test_other_bad_input():
    with pytest.raises(ValueError, match="n_states"):
        ppgen.HMM(0)
    with pytest.raises(ValueError, match="emission"):
        ppgen.HMM(2, "weibull")
    with pytest.raises(ValueError, match="sequence 0: column 's' is count but holds non-numeric"):
        ppgen.fit(ppgen.HMM(2, "poisson"), [pd.DataFrame({"s": ["a", "b", "c"]})])
    with pytest.raises(ValueError, match="no closed-form M-step"):
        ppgen.fit(ppgen.HMM(2, "negbinomial"), [np.arange(20.0)[:, None]], method="em")
    with pytest.raises(ValueError, match="order_by"):
        ppgen.fit(ppgen.HMM(2, order_by="nope"), [np.arange(20.0)[:, None]])


# -- prediction and simulation ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def geyser_fit():
    return ppgen.fit(ppgen.HMM(2, "gaussian", "full", order_by="waiting"),
                     ppgen.datasets.load("geyser"), method="em")  # fmt: skip


def test_predict_and_predict_proba_on_one_table(geyser_fit):
    states = geyser_fit.predict()
    proba = geyser_fit.predict_proba()
    assert states.shape == (299,) and proba.shape == (299, 2)
    np.testing.assert_allclose(proba.sum(-1), 1.0)
    # Long waits follow short eruptions: the state ordered by waiting has the shorter duration.
    means = geyser_fit.model.describe(dict(geyser_fit.params), geyser_fit.schema)["means"]
    assert means[0, 0] < means[1, 0] and means[0, 1] > means[1, 1]
    assert np.mean(states == proba.argmax(-1)) > 0.95


def test_sample_is_reproducible_and_has_the_fitted_moments(geyser_fit):
    a = geyser_fit.sample(20, 200, seed=3)
    b = geyser_fit.sample(20, 200, seed=3)
    assert len(a) == 20 and a[0].shape == (200, 2) and list(a[0].columns) == ["waiting", "duration"]
    pd.testing.assert_frame_equal(a[5], b[5])
    rows = pd.concat(a)
    data = ppgen.datasets.load("geyser")
    assert rows["waiting"].mean() == pytest.approx(data["waiting"].mean(), abs=1.0)
    assert rows["duration"].std() == pytest.approx(data["duration"].std(), rel=0.05)


def test_forecast_propagates_the_filtered_state(geyser_fit):
    fc = geyser_fit.forecast(horizon=3, n_samples=400, seed=1)
    A = geyser_fit.params["transition"].numpy()
    x, m = geyser_fit.train.x, geyser_fit.train.mask
    last = geyser_fit.model.filter(x, m, dict(geyser_fit.params))[0, -1].numpy()
    np.testing.assert_allclose(
        fc.state_proba[0], np.stack([last @ A, last @ A @ A, last @ A @ A @ A])
    )
    means = geyser_fit.model.describe(dict(geyser_fit.params), geyser_fit.schema)["means"].numpy()
    np.testing.assert_allclose(
        fc.mean[["waiting", "duration"]].to_numpy(), fc.state_proba[0] @ means
    )
    sim = fc.samples.groupby("step")["waiting"].mean().to_numpy()
    np.testing.assert_allclose(sim, fc.mean["waiting"].to_numpy(), atol=1.5)


def test_impute_fills_gaps_from_the_smoothed_posterior(geyser_fit):
    data = ppgen.datasets.load("geyser")
    gappy = data.copy()
    gappy.loc[[10, 11, 50], "waiting"] = np.nan
    gappy.loc[[100], "duration"] = np.nan
    copies = geyser_fit.impute(gappy, 100, seed=0)
    assert len(copies) == 100
    for c in copies[:3]:
        assert not c.isna().any().any()
        observed = gappy.notna()
        pd.testing.assert_frame_equal(c[observed], gappy[observed], check_column_type=False)
    # The mean of the draws is the posterior mean: sum_k p(z_t = k | data) E[x_t | z_t = k, obs].
    draws = np.array([c.loc[50, "waiting"] for c in copies])
    proba = geyser_fit.predict_proba(gappy)[50]
    params = geyser_fit.model.describe(dict(geyser_fit.params), geyser_fit.schema)
    mu, cov = params["means"].numpy(), params["covariances"].numpy()
    dur = gappy.loc[50, "duration"]
    cond = mu[:, 0] + cov[:, 0, 1] / cov[:, 1, 1] * (dur - mu[:, 1])
    # Observed duration also reweights the states; p(z | all data) already includes it.
    assert draws.mean() == pytest.approx(proba @ cond, abs=4 * draws.std() / np.sqrt(100))


def test_save_load_round_trip(geyser_fit, tmp_path):
    path = tmp_path / "hmm.ppgen"
    geyser_fit.save(str(path))
    loaded = ppgen.load(str(path))
    data = ppgen.datasets.load("geyser")
    np.testing.assert_allclose(loaded.log_prob(data), geyser_fit.log_prob(data))
    assert loaded.predict(data).tolist() == geyser_fit.predict(data).tolist()


def test_bic_counts_time_steps(geyser_fit):
    k = 2 + 1 + 2 * (2 + 3)  # transition rows, initial, means and covariances
    assert geyser_fit.model.n_parameters() == k
    expected = -2 * geyser_fit.log_prob().sum() + k * np.log(299)
    assert geyser_fit.bic() == pytest.approx(expected)


# -- other emissions, SVI and NUTS -----------------------------------------------------------------
def test_negative_binomial_map_recovers_over_dispersion():
    schema = Schema.infer(pd.DataFrame({"k": [0, 1, 2]}), kinds={"k": "count"})
    gen = ppgen.HMM(2, "negbinomial").build(schema).to(dtype=torch.float64)
    truth = {
        "initial": torch.tensor([0.5, 0.5], dtype=torch.float64),
        "transition": torch.tensor([[0.95, 0.05], [0.05, 0.95]], dtype=torch.float64),
        "rates": torch.tensor([[3.0], [20.0]], dtype=torch.float64),
        "concentration": torch.tensor([[2.0], [5.0]], dtype=torch.float64),
    }
    torch.manual_seed(0)
    seqs = [pd.DataFrame({"k": s[:, 0].numpy().astype(int)}) for s in gen.sample(10, truth, 200)]
    nb = ppgen.fit(ppgen.HMM(2, "negbinomial", order_by="k"), seqs, method="map", n_init=2)
    pois = ppgen.fit(ppgen.HMM(2, "poisson", order_by="k"), seqs, method="em")
    np.testing.assert_allclose(nb.params["rates"].numpy(), truth["rates"].numpy(), rtol=0.15)
    np.testing.assert_allclose(
        nb.params["concentration"].numpy(), truth["concentration"].numpy(), rtol=0.35
    )
    assert nb.bic() < pois.bic() - 100  # over-dispersion is detected


@pytest.mark.parametrize("method", ["em", "map"])
def test_mixed_emission_fit_recovers_states(method, rng):
    model, schema = _mixed_model(2, "diag")
    params, _ = _random_params(model, rng, "diag")
    params["transition"] = torch.tensor([[0.9, 0.1], [0.15, 0.85]], dtype=torch.float64)
    params["locs"] = torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    torch.manual_seed(1)
    states = model.sample_states(6, 80, params)
    x = model.emission.sample(states, params)
    seqs = [schema.decode(s) for s in x]
    for frame in seqs:
        frame.loc[frame.index[::7], "n"] = pd.NA
    fit = ppgen.fit(ppgen.HMM(2, "mixed", "diag", order_by="a"), seqs, method=method, n_init=2)
    paths = np.concatenate(fit.predict())
    assert np.mean(paths == states.reshape(-1).numpy()) > 0.95
    # Counts with gaps: the missing entries are imputed, observed ones kept.
    filled = fit.impute(seqs, 1, seed=0)[0]
    assert all(not f.isna().any().any() for f in filled)


def test_svi_draws_are_ordered_and_centred_near_the_map():
    d = ppgen.datasets.load("discoveries")[["discoveries"]]
    fit = ppgen.fit(
        ppgen.HMM(2, "poisson", order_by="discoveries"), d, method="svi", max_steps=300,
        num_draws=100,
    )  # fmt: skip
    rates = fit.samples["rates"][..., 0]
    assert rates.shape == (1, 100, 2) and bool((rates[..., 0] < rates[..., 1]).all())
    assert fit.params["rates"][:, 0].numpy() == pytest.approx([2.5, 5.8], abs=0.6)
    assert fit.log_prob().shape == (1,)
    assert "hdi_3%" in fit.summary().columns


@pytest.mark.slow
def test_nuts_with_an_ordering_constraint_converges():
    d = ppgen.datasets.load("discoveries")[["discoveries"]]
    fit = ppgen.fit(
        ppgen.HMM(2, "poisson", order_by="discoveries"), d, method="nuts", num_samples=200,
        warmup_steps=200, num_chains=2,
    )  # fmt: skip
    rates = fit.samples["rates"][..., 0]
    assert bool((rates[..., 0] < rates[..., 1]).all())
    summary = fit.summary()
    assert summary["r_hat"].max() < 1.05
    assert fit.info["divergences"] < 10


def test_fit_scores_unequal_sequences_one_at_a_time(geyser_fit):
    data = ppgen.datasets.load("geyser")
    seqs = [data.iloc[:120], data.iloc[120:130], data.iloc[130:]]
    together = geyser_fit.log_prob(seqs)
    alone = [geyser_fit.log_prob(s)[0] for s in seqs]
    np.testing.assert_allclose(together, alone, rtol=1e-12)
    # The standardization Jacobian makes the total the raw-scale likelihood of every row.
    assert geyser_fit.log_likelihood_draws(seqs).shape == (1, 1, 3)
    idata = geyser_fit.to_arviz()
    assert idata.log_likelihood["x"].shape == (1, 1, 1)
