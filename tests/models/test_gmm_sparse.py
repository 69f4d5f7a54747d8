"""GaussianMixture's sparse weight penalty (issue 14, item 3: "a sparse Dirichlet so a mixture
can switch off components").

Under maximum likelihood, ``weight_concentration=alpha`` other than 1 adds ``(alpha - 1) sum_k
log w_k`` to the log-likelihood; EM's weight update ``w_k ~ max(n_k + alpha - 1, 0)`` switches
off (weight held at 1e-10) a component whose expected count falls to ``1 - alpha``.
``"mml"`` is Figueiredo & Jain's (2002) value ``alpha = 1 - N/2`` (N free parameters of one
component). Measured (seed 0, default starts) and stated in the note: a Dirichlet with
0 < alpha < 1 leaves all 10 components of an overfitted K = 10 fit on; "mml" empties the
surplus ones down to the clusters on separated data, and on wine (VVE) leaves mclust's BIC
choice, 3.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

import ppgen
from ppgen.models.gmm import OFF_WEIGHT
from ppgen.select import prune_mixture
from ppgen.testing.recovery import simulate_gmm

torch.set_num_threads(1)


def _fit(x, K, structure="VVV", **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppgen.ConvergenceWarning)
        model = ppgen.GaussianMixture(K, structure, weight_concentration="mml", **options)
        return ppgen.fit(model, x, seed=0, accelerate=True)


@pytest.fixture(scope="module")
def sparse():
    """K = 8 on 3 clusters (closest means at Mahalanobis distance 4): 4 left on, one of them
    a small component (measured); the annihilation path then chooses."""
    x, labels = simulate_gmm(3, 600, np.random.default_rng(1), separation=4.0)
    return x, labels, _fit(x, 8, n_init=1)


def test_mml_switches_off_the_surplus_components(sparse):
    x, labels, fit = sparse
    model, w = fit.model, fit.params["weights"]
    # N = 2 means + 3 covariance entries per VVV component in 2 dimensions: alpha - 1 = -5/2.
    assert model.weight_exponent == pytest.approx(-2.5)
    assert model.effective_components(fit.params) == 4
    off = w <= OFF_WEIGHT
    assert int(off.sum()) == 4 and torch.all(w[off] == 1e-10)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-9)  # measured 1 + 4e-10
    assert int(model.describe(fit.params, fit.schema)["effective_components"]) == 4
    # The weights are the penalized update's fixed point: max(n_k - 5/2, 0), normalized.
    enc = fit.encode(x)
    n_k = fit.model.predict_proba(enc.x, enc.mask, fit.params).sum(0)
    on = (n_k - 2.5).clamp_min(0)
    # (to 1e-5: EM stops at 1e-8 nats per row while the small component still drifts; 2.5e-6)
    torch.testing.assert_close(w[~off], (on / on.sum())[~off], rtol=0, atol=1e-5)
    # EM's objective (log-likelihood + penalty) never decreased.
    objective = -fit.losses
    assert np.all(np.diff(objective) >= -1e-8 * len(x))
    z = np.asarray(fit.predict_proba(x))
    assert z[:, off.numpy()].max() < 1e-5  # measured 1.3e-6 (the row on a frozen component)
    assert adjusted_rand_score(labels, z.argmax(1)) > 0.85
    # BIC counts the model as specified (K = 8 components), not the 3 left on.
    assert fit.n_free_parameters() == 8 * 5 + 7


def test_the_annihilation_path_removes_the_small_component(sparse):
    x, labels, fit = sparse
    best, path = prune_mixture(fit, x, criterion="bic")
    assert list(path["components"]) == [4, 3, 2, 1]
    assert best.model.n_components == 3 and path["chosen"].tolist() == [False, True, False, False]
    assert path["bic"].idxmax() == 1
    assert adjusted_rand_score(labels, best.predict(x)) > 0.9
    # Figueiredo & Jain's message length charges the small component less than BIC does: it
    # keeps 4 (measured 2475.3 vs 2480.9 nats).
    assert path["message_length"].idxmin() == 0
    assert prune_mixture(fit, x)[0].model.effective_components(prune_mixture(fit, x)[0].params) == 4
    with pytest.raises(ValueError, match="criterion"):
        prune_mixture(fit, x, criterion="aic")
    plain = ppgen.fit(ppgen.GaussianMixture(2, n_init=1), x)
    with pytest.raises(ValueError, match="sparse weight penalty"):
        prune_mixture(plain, x)


def test_a_sparse_fit_behaves_like_the_mixture_of_its_components(sparse, tmp_path):
    x, _, fit = sparse
    on = (fit.params["weights"] > OFF_WEIGHT).numpy()
    # The mixture of the components left on (weights renormalized) has nearly the same
    # density: the switched-off ones hold 4e-10 of weight, but a row sitting on one of them
    # (frozen where it was switched off) still gets 1e-10 times its density: measured 1.3e-6
    # nats for one row, < 1e-8 for the others.
    small = ppgen.GaussianMixture(4, "VVV")
    small.build(fit.schema)
    params = {k: v[torch.as_tensor(on)] for k, v in fit.params.items()}
    params["weights"] = params["weights"] / params["weights"].sum()
    enc = fit.encode(x)
    np.testing.assert_allclose(
        fit.model.log_prob(enc.x, enc.mask, fit.params).numpy(),
        small.log_prob(enc.x, enc.mask, params).numpy(),
        atol=1e-5,
    )
    draws = fit.sample(500, seed=1)
    assert np.isfinite(np.asarray(draws, dtype=float)).all()
    fit.save(str(tmp_path / "sparse.ppgen"))
    loaded = ppgen.load(str(tmp_path / "sparse.ppgen"))
    assert loaded.model.config()["weight_concentration"] == "mml"
    assert loaded.model.effective_components(loaded.params) == 4
    np.testing.assert_allclose(loaded.log_prob(x), fit.log_prob(x), rtol=0, atol=1e-10)


def test_weight_concentration_errors():
    with pytest.raises(ValueError, match="weight_concentration='mml'"):
        ppgen.GaussianMixture(3, weight_concentration="mml", prior="default")
    with pytest.raises(ValueError, match="weight_concentration"):
        ppgen.GaussianMixture(3, weight_concentration="sparse")
    with pytest.raises(ValueError, match="weight_concentration"):
        ppgen.GaussianMixture(3, weight_concentration=-1.0, prior="default")
    x = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="weight_concentration='mml' is no Dirichlet"):
        ppgen.fit(ppgen.GaussianMixture(2, weight_concentration="mml"), x, method="map")


@pytest.mark.slow
def test_a_dirichlet_below_one_alone_switches_nothing_off():
    """Why "mml": alpha = 1e-3 (the Dirichlet Rousseau & Mengersen's posterior result asks
    for) only removes components with less than about one row; K = 10 stays 10 on the
    3-cluster data the "mml" fit below reduces to 3."""
    x, _ = simulate_gmm(3, 1000, np.random.default_rng(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny = ppgen.fit(ppgen.GaussianMixture(10, "VVV", weight_concentration=1e-3), x, seed=0)
    assert tiny.model.effective_components(tiny.params) == 10
    assert _fit(x, 10).model.effective_components(_fit(x, 10).params) == 3


@pytest.mark.slow
def test_wine_mml_agrees_with_mclusts_bic_choice():
    """wine (raw, 13 columns), VVE with K = 9 and the "mml" penalty: 3 components left on, as
    mclust's BIC pick VVE,3 (tests/test_select.py), memberships close to the cultivars."""
    wine = ppgen.datasets.load("wine")
    cultivar = wine.pop("target").to_numpy()
    fit = _fit(wine, 9, "VVE")
    assert fit.model.effective_components(fit.params) == 3
    assert adjusted_rand_score(cultivar, fit.predict(wine)) > 0.85
