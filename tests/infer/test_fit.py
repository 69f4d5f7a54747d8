"""`ppgen.fit` and `Fit`: isolation, reproducibility, NaN guard, SVI, NUTS, ArviZ, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyro
import pytest
import torch

import ppgen
from ppgen.infer.optim import NonFiniteLossError, optimize

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def faithful() -> pd.DataFrame:
    return ppgen.datasets.load("faithful")


def test_fits_do_not_share_parameters(faithful):
    a = ppgen.fit(ppgen.GaussianMixture(2), faithful, method="map")
    b = ppgen.fit(ppgen.GaussianMixture(3), faithful.iloc[:100], method="map")
    assert a.params["locs"].shape == (2, 2) and b.params["locs"].shape == (3, 2)
    again = ppgen.fit(ppgen.GaussianMixture(2), faithful, method="map")
    assert a.score(faithful) == again.score(faithful)
    assert len(pyro.get_param_store()) == 0  # nothing leaks into Pyro's global store


def test_the_model_passed_in_is_not_changed(faithful):
    model = ppgen.PPCA(1)
    ppgen.fit(model, faithful)
    assert model.dim is None


@pytest.mark.parametrize("method", ["map", "em", "svi"])
def test_same_seed_same_result_other_seed_other_start(method, faithful):
    opts = {"max_steps": 200, "num_draws": 20} if method == "svi" else {}
    a = ppgen.fit(ppgen.GaussianMixture(3), faithful, method=method, seed=7, **opts)
    b = ppgen.fit(ppgen.GaussianMixture(3), faithful, method=method, seed=7, **opts)
    assert a.score(faithful) == b.score(faithful)
    assert np.array_equal(a.losses, b.losses)
    c = ppgen.fit(ppgen.GaussianMixture(3), faithful, method=method, seed=8, **opts)
    assert not np.array_equal(a.losses, c.losses)


def test_fit_does_not_disturb_global_random_state(faithful):
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    ppgen.fit(ppgen.GaussianMixture(2), faithful, method="em", seed=3)
    assert torch.equal(torch.rand(1), expected)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_parameters():
    w = torch.nn.Parameter(torch.tensor(1.0))
    calls = {"n": 0}

    def loss_fn():
        calls["n"] += 1
        p = pyro.param("w", lambda: torch.tensor(1.0))
        return (p - 3.0) ** 2 if calls["n"] < 6 else p * torch.tensor(float("nan"))

    with pyro.get_param_store().scope():
        with pytest.raises(NonFiniteLossError, match="became nan at step 4"):
            optimize(loss_fn, optimizer="adam", lr=0.1, max_steps=100)
        last_good = pyro.param("w").item()
    # four Adam steps of size ~0.1 from 1.0 towards 3.0, and no step on the NaN loss
    assert last_good == pytest.approx(1.4, abs=0.01)
    del w


def test_lbfgs_nan_restores_the_last_good_point():
    calls = {"n": 0}

    def loss_fn():
        calls["n"] += 1
        p = pyro.param("v", lambda: torch.tensor([0.0, 0.0]))
        bad = calls["n"] > 4
        return ((p - 1) ** 2).sum() * (torch.tensor(float("inf")) if bad else 1.0)

    with pyro.get_param_store().scope():
        with pytest.raises(NonFiniteLossError):
            optimize(loss_fn, optimizer="lbfgs", max_steps=10)
        assert torch.isfinite(pyro.param("v")).all()


def test_svi_posterior_is_centred_on_the_map_and_has_uncertainty(faithful):
    map_fit = ppgen.fit(ppgen.GaussianMixture(2, "diag"), faithful, method="em")
    svi = ppgen.fit(ppgen.GaussianMixture(2, "diag"), faithful, method="svi", num_draws=300)
    assert svi.samples["locs"].shape == (1, 300, 2, 2)
    assert svi.score(faithful) == pytest.approx(map_fit.score(faithful), abs=0.02)
    table = svi.summary()
    assert {"mean", "sd", "hdi_3%", "hdi_97%"} <= set(table.columns)
    assert (table["sd"] > 0).all()
    means = table.loc[[r for r in table.index if r.startswith("means")], "mean"].to_numpy()
    ref = map_fit.model.describe(dict(map_fit.params), map_fit.schema)["means"].numpy().ravel()
    assert np.allclose(np.sort(means), np.sort(ref), rtol=0.02)
    with pytest.raises(ValueError, match="point estimates"):
        svi.bic(faithful)


def test_minibatch_svi_matches_full_batch(faithful):
    rng = np.random.default_rng(0)
    big = pd.concat([faithful] * 8, ignore_index=True) + rng.normal(0, 0.01, (8 * len(faithful), 2))
    full = ppgen.fit(ppgen.GaussianMixture(2, "diag"), big, method="em")
    mini = ppgen.fit(
        ppgen.GaussianMixture(2, "diag"),
        big,
        method="map",
        subsample_size=256,
        lr=0.02,
        max_steps=1500,
    )
    assert mini.score(big) == pytest.approx(full.score(big), abs=0.02)


def test_nuts_short_run_diagnostics_and_arviz_groups(faithful):
    fit = ppgen.fit(
        ppgen.GaussianMixture(2, "diag"),
        faithful,
        method="nuts",
        num_samples=100,
        warmup_steps=100,
        num_chains=2,
    )
    assert fit.samples["locs"].shape == (2, 100, 2, 2)
    assert not fit.divergent.any()
    idata = fit.to_arviz()
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(idata.groups())
    assert idata.log_likelihood["x"].shape == (2, 100, len(faithful))
    replicates = idata.posterior_predictive["x"].values
    assert replicates.shape == (2, 100, len(faithful), 2)
    observed = idata.observed_data["x"].values
    assert np.allclose(observed, faithful.to_numpy())
    # Replicated data sets resemble the data: their means scatter around the observed means.
    rep_means = replicates.mean(axis=2).reshape(-1, 2)
    assert np.all(np.abs(rep_means.mean(0) - observed.mean(0)) < 3 * rep_means.std(0))
    table = fit.summary()
    assert {"r_hat", "ess_bulk", "ess_tail", "mcse_mean"} <= set(table.columns)
    assert table["r_hat"].max() < 1.1
    map_fit = ppgen.fit(ppgen.GaussianMixture(2, "diag"), faithful, method="em")
    assert fit.score(faithful) == pytest.approx(map_fit.score(faithful), abs=0.02)


@pytest.mark.slow
def test_nuts_converges_on_a_small_gmm(faithful):
    fit = ppgen.fit(
        ppgen.GaussianMixture(2, "diag"),
        faithful,
        method="nuts",
        num_samples=1000,
        warmup_steps=500,
        num_chains=4,
    )
    table = fit.summary()
    assert table["r_hat"].max() < 1.01
    assert not fit.divergent.any()


@pytest.mark.parametrize("method", ["em", "svi"])
def test_save_load_round_trip(method, faithful, tmp_path):
    opts = {"max_steps": 100, "num_draws": 50} if method == "svi" else {}
    fit = ppgen.fit(ppgen.GaussianMixture(2), faithful, method=method, **opts)
    path = tmp_path / "model.ppgen"
    fit.save(str(path))
    loaded = ppgen.load(str(path))
    assert np.array_equal(loaded.log_prob(faithful), fit.log_prob(faithful))
    assert loaded.sample(5, seed=2).equals(fit.sample(5, seed=2))
    assert loaded.summary().equals(fit.summary()) or method == "svi"


def test_load_refuses_pickles_and_other_files(tmp_path, faithful):
    import pickle

    path = tmp_path / "evil.ppgen"
    path.write_bytes(pickle.dumps(object()))
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|not a ppgen"):
        ppgen.load(str(path))
    torch.save({"config": "{}", "tensors": {}}, path)
    with pytest.raises(ValueError, match="not a ppgen fit"):
        ppgen.load(str(path))


def test_ppca_save_load_keeps_the_guide(tmp_path):
    X = ppgen.datasets.load("wine", label=False)
    fit = ppgen.fit(ppgen.PPCA(2), X)
    fit.model.set_exact_guide(dict(fit.params))
    fit.save(str(tmp_path / "p.ppgen"))
    loaded = ppgen.load(str(tmp_path / "p.ppgen"))
    assert torch.equal(loaded.model.guide_weight, fit.model.guide_weight)
    assert np.array_equal(loaded.transform(X), fit.transform(X))


def test_float32_and_device_follow_the_data():
    x = torch.tensor(ppgen.datasets.load("faithful").to_numpy(), dtype=torch.float32)
    fit = ppgen.fit(ppgen.GaussianMixture(2), x, method="em")
    assert fit.params["locs"].dtype == torch.float32
    assert fit.params["locs"].device == x.device
    assert isinstance(fit.sample(3, seed=0), torch.Tensor)


def test_bad_inputs_name_the_problem(faithful):
    bad = faithful.copy()
    bad.loc[3, "waiting"] = np.inf
    with pytest.raises(ValueError, match="waiting"):
        ppgen.fit(ppgen.GaussianMixture(2), bad)
    fit = ppgen.fit(ppgen.GaussianMixture(2), faithful, method="em")
    with pytest.raises(ValueError, match="eruptions"):
        fit.log_prob(faithful.drop(columns="eruptions"))
    with pytest.raises(ValueError, match="method"):
        ppgen.fit(ppgen.GaussianMixture(2), faithful, method="magic")
    with pytest.raises(ValueError, match="n_components"):
        ppgen.GaussianMixture(0)
    with pytest.raises(ValueError, match="init_values"):
        ppgen.fit(ppgen.GaussianMixture(2), faithful, init_values={"nope": 1.0})


def test_summary_labels_entries_with_column_names(faithful):
    fit = ppgen.fit(ppgen.GaussianMixture(2, "diag"), faithful, method="em")
    table = fit.summary()
    described = fit.model.describe(dict(fit.params), fit.schema)
    assert table.loc["means[1, waiting]", "estimate"] == pytest.approx(
        described["means"][1, 1].item()
    )
    assert table.loc["variances[0, eruptions]", "estimate"] == pytest.approx(
        described["variances"][0, 0].item()
    )
