"""``fit(..., method="em", fixed={...})``: sites held at given values (hmmlearn's ``params=``).

Held values come back exactly, EM stays monotone, the free sites are the constrained maximum
(checked against a hand-written NumPy EM with known weights), zeros of a held transition stay
zero, and bad names, shapes and values are refused naming the site.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

import ppgen
from ppgen.data import Schema

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: A left-to-right chain: state 0 -> 1 -> 2, the last absorbing.
LEFT_RIGHT = np.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]])
START = np.array([1.0, 0.0, 0.0])
MEANS = np.array([-3.0, 0.0, 3.0])


def _left_right_sequences(n_seq: int = 20, length: int = 60, seed: int = 0) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_seq):
        z = [0]
        for _ in range(length - 1):
            z.append(rng.choice(3, p=LEFT_RIGHT[z[-1]]))
        out.append(pd.DataFrame({"y": MEANS[z] + 0.5 * rng.normal(size=length)}))
    return out


def _monotone(losses: np.ndarray) -> bool:
    """EM's loss (negative log-likelihood) never increases, up to rounding."""
    return bool(np.all(np.diff(losses) <= 1e-9 * np.abs(losses[:-1]).max()))


def _mixture(seed: int = 0, n: int = 600) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    centers = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]])
    x = centers[z] + rng.normal(size=(n, 2)) * np.array([1.0, 0.7])
    return pd.DataFrame(x, columns=["a", "b"]), centers


def test_left_to_right_hmm_keeps_its_chain_and_recovers_the_emissions():
    seqs = _left_right_sequences()
    fixed = {"transition": LEFT_RIGHT, "initial": START}
    fit = ppgen.fit(ppgen.HMM(3), seqs, fixed=fixed)
    assert fit.method == "em" and fit.info["fixed"] == "initial, transition"
    # BIC and AIC count what was estimated: 3 Gaussian states (6), not the chain's 2 + 6.
    assert fit.model.n_parameters() == 2 + 6 + 6 and fit.n_free_parameters() == 6
    assert fit.aic(seqs) == pytest.approx(-2 * fit.log_prob(seqs).sum() + 2 * 6)
    # Returned exactly, zeros exactly zero.
    assert torch.equal(fit.params["transition"], torch.as_tensor(LEFT_RIGHT))
    assert torch.equal(fit.params["initial"], torch.as_tensor(START))
    means = fit.model.describe(fit.params, fit.schema)["means"][:, 0].numpy()
    np.testing.assert_allclose(means, MEANS, atol=0.1)  # in order: the chain names the states
    assert _monotone(fit.losses)
    # A free fit of the same data loses the structure the held one keeps.
    free = ppgen.fit(ppgen.HMM(3), seqs)
    assert fit.losses[-1] >= free.losses[-1] - 1e-6 * abs(free.losses[-1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_one_start_of_a_held_chain_finds_the_states(seed):
    # Short data and one start: the k-means labels are renamed to fit the held chain (an
    # arbitrary naming ends in a poor optimum on most of these seeds).
    seqs = _left_right_sequences(n_seq=5, length=40, seed=seed)
    fit = ppgen.fit(ppgen.HMM(3), seqs, fixed={"transition": LEFT_RIGHT}, n_init=1, seed=seed)
    means = fit.model.describe(fit.params, fit.schema)["means"][:, 0].numpy()
    np.testing.assert_allclose(means, MEANS, atol=0.2)


def test_held_transition_alone_keeps_zeros_and_is_monotone():
    seqs = _left_right_sequences(seed=1)
    fit = ppgen.fit(ppgen.HMM(3), seqs, fixed={"transition": LEFT_RIGHT}, n_init=1)
    assert torch.equal(fit.params["transition"], torch.as_tensor(LEFT_RIGHT))
    assert fit.info["fixed"] == "transition"
    assert float(fit.params["initial"].sum()) == pytest.approx(1.0)
    assert _monotone(fit.losses) and len(fit.losses) > 2


def test_held_emission_probabilities_of_a_categorical_hmm():
    rng = np.random.default_rng(3)
    trans = np.array([[0.8, 0.2], [0.3, 0.7]])
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    seqs = []
    for _ in range(10):
        z = [rng.integers(2)]
        for _ in range(79):
            z.append(rng.choice(2, p=trans[z[-1]]))
        y = [rng.choice(3, p=probs[k]) for k in z]
        seqs.append(pd.DataFrame({"c": pd.Categorical(np.array(["a", "b", "c"])[y])}))
    fit = ppgen.fit(ppgen.HMM(2, "categorical"), seqs, fixed={"probs[c]": probs})
    assert torch.equal(fit.params["probs[c]"], torch.as_tensor(probs))
    assert fit.n_free_parameters() == fit.model.n_parameters() - 2 * 2  # rows on the simplex
    assert _monotone(fit.losses)
    np.testing.assert_allclose(fit.params["transition"].numpy(), trans, atol=0.1)
    # The states named by held emissions: swapping them swaps the chain, same likelihood.
    swapped = ppgen.fit(ppgen.HMM(2, "categorical"), seqs, fixed={"probs[c]": probs[::-1]})
    assert swapped.losses[-1] == pytest.approx(fit.losses[-1], abs=1e-6)
    np.testing.assert_allclose(swapped.params["transition"].numpy(), trans[::-1, ::-1], atol=0.1)


def _constrained_em(x, weights, means, covs, held, reg=1e-6, steps=5000):
    """Maximum likelihood of a full-covariance Gaussian mixture with ``held`` ("weights" or
    "means") known: EM whose M-step updates only the others (scikit-learn's ridge ``reg``);
    covariances are the scatter around the means in use. Returns weights, means, covariances
    and the log-likelihood at them."""
    d = x.shape[1]
    last = -np.inf
    for _ in range(steps):
        logp = np.stack(
            [np.log(w) + stats.multivariate_normal(m, c).logpdf(x) for w, m, c in
             zip(weights, means, covs, strict=True)], -1,
        )  # fmt: skip
        ll = logsumexp(logp, -1)
        if ll.sum() - last < 1e-12:
            break
        last = ll.sum()
        resp = np.exp(logp - ll[:, None])
        n_k = resp.sum(0)
        if held != "weights":
            weights = n_k / n_k.sum()
        if held != "means":
            means = (resp.T @ x) / n_k[:, None]
        covs = np.stack(
            [((x - m) * r[:, None]).T @ (x - m) / nk + reg * np.eye(d) for m, r, nk in
             zip(means, resp.T, n_k, strict=True)]
        )  # fmt: skip
    return weights, means, covs, ll.sum()


def test_gmm_with_known_weights_matches_a_hand_written_constrained_em():
    df, centers = _mixture()
    weights = np.array([0.2, 0.5, 0.3])  # not the data's 0.6 / 0.3 / 0.1: a real constraint
    # Both run to their fixed points (ppgen by a tight tol, since EM converges linearly).
    fit = ppgen.fit(ppgen.GaussianMixture(3), df, fixed={"weights": weights}, tol=1e-13)
    assert torch.equal(fit.params["weights"], torch.as_tensor(weights))
    assert fit.info["fixed"] == "weights"
    assert fit.n_free_parameters() == fit.model.n_parameters() - 2  # K - 1 weights held
    n = len(df)
    assert fit.bic(df) == pytest.approx(
        -2 * fit.log_prob(df).sum() + (fit.model.n_parameters() - 2) * np.log(n)
    )
    assert _monotone(fit.losses)
    got = fit.model.describe(fit.params, fit.schema)
    # The NumPy EM from ppgen's estimate, run to its own fixed point, stays there.
    x = df.to_numpy()
    _, means, covs, ll = _constrained_em(
        x, weights, got["means"].numpy(), got["covariances"].numpy(), "weights"
    )
    np.testing.assert_allclose(got["means"].numpy(), means, atol=1e-5)
    np.testing.assert_allclose(got["covariances"].numpy(), covs, atol=1e-5)
    assert fit.log_prob(df).sum() == pytest.approx(ll, abs=1e-6)
    # ... and it is the best the NumPy EM finds from the true centres under each weight order.
    best = max(
        _constrained_em(x, weights, centers[list(p)], np.stack([np.eye(2)] * 3), "weights")[3]
        for p in ((0, 1, 2), (1, 0, 2), (2, 1, 0), (0, 2, 1), (1, 2, 0), (2, 0, 1))
    )
    assert fit.log_prob(df).sum() >= best - 1e-6
    # Held weights name the components: any order of them gives the same optimum.
    for order in ([1, 2, 0], [2, 0, 1]):
        other = ppgen.fit(ppgen.GaussianMixture(3), df, fixed={"weights": weights[order]})
        assert other.log_prob(df).sum() == pytest.approx(ll, abs=1e-4)
    # The free fit reaches a higher likelihood: the weights were really held.
    free = ppgen.fit(ppgen.GaussianMixture(3), df)
    assert free.log_prob(df).sum() > fit.log_prob(df).sum() + 1.0


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_gmm_with_known_means_matches_a_hand_written_constrained_em(covariance_type):
    df, centers = _mixture(seed=5)
    means = centers + np.array([0.3, -0.2])  # off the data's own means: a real constraint
    fit = ppgen.fit(
        ppgen.GaussianMixture(3, covariance_type), df, fixed={"means": means}, tol=1e-13
    )
    assert fit.info["fixed"] == "locs"
    assert _monotone(fit.losses)
    got = fit.model.describe(fit.params, fit.schema)
    np.testing.assert_allclose(got["means"].numpy(), means, rtol=1e-13, atol=1e-13)
    x = df.to_numpy()
    if covariance_type == "full":
        covs = got["covariances"].numpy()
        weights, _, want, ll = _constrained_em(x, got["weights"].numpy(), means, covs, "means")
        np.testing.assert_allclose(covs, want, atol=1e-6)
        np.testing.assert_allclose(got["weights"].numpy(), weights, atol=1e-6)
        assert fit.log_prob(df).sum() == pytest.approx(ll, abs=1e-6)
    else:
        # Diagonal: the variances are the weighted mean squares around the held means.
        resp = fit.predict_proba(df)
        var = np.stack([(r[:, None] * (x - m) ** 2).sum(0) / r.sum() for m, r in
                        zip(means, resp.T, strict=True)]) + 1e-6  # fmt: skip
        np.testing.assert_allclose(got["variances"].numpy(), var, rtol=1e-6)
        np.testing.assert_allclose(got["weights"].numpy(), resp.mean(0), atol=1e-6)


def test_known_means_with_missing_entries_stay_monotone():
    df, centers = _mixture(seed=6)
    rng = np.random.default_rng(6)
    df = df.mask(rng.random(df.shape) < 0.2)
    for covariance_type in ("full", "diag"):
        fit = ppgen.fit(
            ppgen.GaussianMixture(3, covariance_type), df, fixed={"means": centers}, n_init=1
        )
        got = fit.model.describe(fit.params, fit.schema)["means"].numpy()
        np.testing.assert_allclose(got, centers, atol=1e-12)
        assert _monotone(fit.losses)


def test_screened_gmm_starts_hold_the_weights():
    df, _ = _mixture(seed=2)
    schema = Schema.infer(df)
    enc = schema.encode(df)
    model = ppgen.GaussianMixture(3).build(schema)
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=enc.x.dtype)
    model.hold({"weights": weights})
    start = model.init_params(enc.x, enc.mask, torch.Generator().manual_seed(0))
    assert torch.equal(start["weights"], weights)
    new, _ = model.em_step(enc.x, enc.mask, start)
    assert torch.equal(new["weights"], weights)


def test_gmm_starts_name_their_clusters_after_held_probabilities():
    df = pd.DataFrame({"x": [0.0, 0.1, 5.0, 5.1], "c": pd.Categorical(["u", "u", "v", "v"])})
    schema = Schema.infer(df)
    enc = schema.encode(df)
    model = ppgen.GaussianMixture(2).build(schema)
    model.hold({"probs[c]": torch.tensor([[0.1, 0.9], [0.9, 0.1]], dtype=enc.x.dtype)})
    labels = torch.tensor([0, 0, 1, 1])  # cluster 0 holds the "u" rows: component 1's
    assert model._match_held(enc.x, enc.mask, labels).tolist() == [1, 1, 0, 0]


def test_mixed_gmm_holds_category_probabilities_and_map_refuses():
    rng = np.random.default_rng(4)
    z = rng.choice(2, size=400)
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    df = pd.DataFrame(
        {
            "x": np.where(z == 0, -2.0, 2.0) + rng.normal(size=400),
            "c": pd.Categorical([rng.choice(["u", "v"], p=probs[k]) for k in z]),
        }
    )
    fit = ppgen.fit(ppgen.GaussianMixture(2), df, fixed={"probs[c]": probs})
    assert torch.equal(fit.params["probs[c]"], torch.as_tensor(probs))
    assert fit.n_free_parameters() == fit.model.n_parameters() - 2  # a 2-level column
    assert _monotone(fit.losses)
    # Held values name the components: swapping them swaps the fit, at the same likelihood.
    swapped = ppgen.fit(ppgen.GaussianMixture(2), df, fixed={"probs[c]": probs[::-1]})
    assert swapped.log_prob(df).sum() == pytest.approx(fit.log_prob(df).sum(), abs=1e-6)
    with pytest.raises(ValueError, match="fixed= is supported by method='em'"):
        ppgen.fit(ppgen.GaussianMixture(2), df, method="map", fixed={"probs[c]": probs})


@pytest.mark.parametrize(
    ("fixed", "match"),
    [
        ({"foo": [1.0]}, r"\['foo'\].*can hold \['initial', 'transition'\]"),
        ({"locs": np.zeros((3, 1))}, r"\['locs'\].*cannot hold.*HMM.fixable_sites"),
        ({"transition": np.eye(2)}, r"fixed\['transition'\] must have shape \(3, 3\)"),
        (
            {"transition": LEFT_RIGHT * 0.9},
            r"fixed\['transition'\] must be non-negative with "
            "each row summing to 1",
        ),  # fmt: skip
        ({"initial": [1.5, -0.5, 0.0]}, r"fixed\['initial'\] must be non-negative"),
        ({"initial": [np.nan, 0.5, 0.5]}, r"fixed\['initial'\] must be finite"),
        ({"initial": ["a", "b", "c"]}, r"fixed\['initial'\] must be numeric"),
    ],
)
def test_bad_fixed_values_name_the_site(fixed, match):
    seqs = _left_right_sequences(n_seq=2, length=20)
    with pytest.raises(ValueError, match=match):
        ppgen.fit(ppgen.HMM(3), seqs, fixed=fixed)


def test_models_without_held_sites_and_bad_containers_are_refused():
    df, _ = _mixture(n=100)
    with pytest.raises(ValueError, match="PPCA cannot hold parameters fixed"):
        ppgen.fit(ppgen.PPCA(1), df, method="em", fixed={"W": np.zeros((2, 1))})
    with pytest.raises(ValueError, match="fixed must be a dict"):
        ppgen.fit(ppgen.GaussianMixture(2), df, fixed=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"fixed\['means'\] must have shape \(2, 2\)"):
        ppgen.fit(ppgen.GaussianMixture(2), df, fixed={"means": np.zeros(2)})
    with pytest.raises(ValueError, match=r"\['means'\].*can hold \['weights'\]"):
        ppgen.fit(ppgen.GaussianMixture(2, prior="default"), df, method="em", fixed={"means": 0})
    with pytest.raises(ValueError, match=r"fixed\['weights'\] must be non-negative"):
        ppgen.fit(ppgen.GaussianMixture(2), df, fixed={"weights": [0.7, 0.7]})


def test_saved_fit_with_held_sites_loads(tmp_path):
    seqs = _left_right_sequences(n_seq=5, length=40)
    fit = ppgen.fit(ppgen.HMM(3), seqs, fixed={"transition": LEFT_RIGHT}, n_init=1)
    path = tmp_path / "fit.pt"
    fit.save(str(path))
    loaded = ppgen.load(str(path))
    assert loaded.info["fixed"] == "transition"
    assert torch.equal(loaded.params["transition"], torch.as_tensor(LEFT_RIGHT))
    np.testing.assert_allclose(loaded.log_prob(seqs), fit.log_prob(seqs), rtol=1e-12)


def test_posterior_mode_leaves_the_prior_of_held_sites_out():
    # Dirichlet(2) rows have density 0 at a left-to-right matrix's zeros: a held site is a
    # constant, so its prior is left out of EM's objective, which stays finite and monotone.
    seqs = _left_right_sequences(n_seq=5, length=40)
    model = ppgen.HMM(3, prior="default", transition_concentration=2.0)
    fit = ppgen.fit(model, seqs, method="em", fixed={"transition": LEFT_RIGHT})
    assert np.isfinite(fit.losses).all() and _monotone(fit.losses) and fit.converged
    df, _ = _mixture(n=300)
    model = ppgen.GaussianMixture(3, prior="default", weight_concentration=2.0)
    fit = ppgen.fit(model, df, method="em", fixed={"weights": [0.5, 0.5, 0.0]})
    assert np.isfinite(fit.losses).all() and _monotone(fit.losses) and fit.converged
    assert fit.params["weights"].tolist() == [0.5, 0.5, 0.0]


def test_refitting_a_fitted_model_holds_nothing():
    seqs = _left_right_sequences(n_seq=5, length=40)
    fit = ppgen.fit(ppgen.HMM(3), seqs, fixed={"transition": LEFT_RIGHT}, n_init=1)
    again = ppgen.fit(fit.model, seqs, n_init=1)
    assert "fixed" not in again.info and not again.model.held
    assert not torch.equal(again.params["transition"], fit.params["transition"])
