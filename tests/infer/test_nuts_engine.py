"""``ppgen.fit(model, data, method="nuts")`` is the batched masked NUTS; Pyro's NUTS is
``method="pyro-nuts"`` and serves ``"nuts"`` where a model cannot be vectorized (the HMM)."""

from __future__ import annotations

import pytest
import torch

import ppgen

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def faithful():
    return ppgen.datasets.load("faithful").iloc[:80]


def test_nuts_is_the_batched_kernel_seeded_with_chains_in_one_tensor(faithful):
    options = {"num_chains": 4, "warmup_steps": 20, "num_samples": 5, "max_tree_depth": 4}
    fit = ppgen.fit(ppgen.GaussianMixture(2), faithful, method="nuts", seed=3, **options)
    again = ppgen.fit(ppgen.GaussianMixture(2), faithful, method="nuts", seed=3, **options)
    assert fit.kind == "mcmc" and fit.method == "nuts"
    assert fit.info["kernel"] == "nuts" and fit.info["vectorized"]
    assert fit.samples["locs"].shape == (4, 5, 2, 2) and fit.divergent.shape == (4, 5)
    for k in fit.samples:
        torch.testing.assert_close(fit.samples[k], again.samples[k], rtol=0, atol=0)


def test_pyro_nuts_stays_available_and_serves_models_vmap_cannot_run():
    d = ppgen.datasets.load("discoveries")[["discoveries"]].iloc[:30]
    options = {"num_chains": 1, "warmup_steps": 4, "num_samples": 4, "max_tree_depth": 2}
    hmm = ppgen.HMM(2, "poisson", order_by="discoveries")
    fit = ppgen.fit(hmm, d, method="nuts", seed=0, **options)
    pyro_fit = ppgen.fit(hmm, d, method="pyro-nuts", seed=0, **options)
    assert fit.method == "nuts" and fit.info["kernel"] == "pyro-nuts"
    assert pyro_fit.method == "pyro-nuts"
    for k in fit.samples:  # the same engine, the same draws
        torch.testing.assert_close(fit.samples[k], pyro_fit.samples[k], rtol=0, atol=0)


@pytest.mark.parametrize(("option", "value"), [("init_radius", -1.0), ("warmup_steps", -1)])
def test_bad_nuts_options_raise_value_errors_naming_them(faithful, option, value):
    with pytest.raises(ValueError, match=option):
        ppgen.fit(ppgen.GaussianMixture(2), faithful, method="nuts", **{option: value})
