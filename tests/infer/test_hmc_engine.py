"""``ppgen.fit(model, data, method="hmc")``: ChEES-HMC over a ppgen model's global sites.

The fast tests check the fit's shape, kind, seeding and option errors on tiny runs; the slow ones
compare the posteriors of identifiable quantities of ChEES-HMC and of the batched NUTS
(``method="nuts"``) with Pyro's NUTS (``method="pyro-nuts"``): the GMM's
relabelled component means and weights on faithful, PPCA's implied covariance
``W W^T + sigma^2 I`` on four wine columns, with R-hat and ESS computed for both.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ppgen
from ppgen import _arviz

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def faithful():
    return ppgen.datasets.load("faithful")


def test_hmc_fit_is_an_mcmc_fit_with_chains_and_is_seeded(faithful):
    data = faithful.iloc[:80]
    options = {"num_chains": 8, "warmup_steps": 40, "num_samples": 10}
    fit = ppgen.fit(ppgen.GaussianMixture(2), data, method="hmc", seed=3, **options)
    again = ppgen.fit(ppgen.GaussianMixture(2), data, method="hmc", seed=3, **options)
    assert fit.kind == "mcmc" and fit.method == "hmc"
    assert fit.samples["locs"].shape == (8, 10, 2, 2)
    assert fit.divergent.shape == (8, 10)
    assert fit.info["vectorized"] and fit.info["num_chains"] == 8
    for k in fit.samples:
        torch.testing.assert_close(fit.samples[k], again.samples[k], rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = ppgen.evaluate.diagnostics(fit)
    assert table.attrs["num_chains"] == 8 and "r_hat" in table


@pytest.mark.parametrize(
    ("option", "value"),
    [("num_chains", 0), ("warmup_steps", -1), ("target_accept_prob", 0.0), ("init_radius", -1.0)],
)
def test_bad_hmc_options_raise_value_errors_naming_them(faithful, option, value):
    with pytest.raises(ValueError, match=option):
        ppgen.fit(ppgen.GaussianMixture(2), faithful.iloc[:40], method="hmc", **{option: value})


def _compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], z_max: float = 4.0) -> None:
    """Means of every scalar within ``z_max`` combined MCSEs; both runs converged."""
    ta, tb = _arviz.summary(a), _arviz.summary(b)
    z = (ta["mean"] - tb["mean"]) / np.hypot(ta["mcse_mean"], tb["mcse_mean"])
    assert z.abs().max() < z_max, z.sort_values()
    for t in (ta, tb):
        assert t["r_hat"].max() < 1.05 and t["ess_bulk"].min() > 100


@pytest.mark.slow
def test_gmm_on_faithful_agrees_with_pyro_nuts(faithful):
    def posterior(method, **options):
        fit = ppgen.fit(ppgen.GaussianMixture(2), faithful, method=method, seed=0, **options)
        # The layout relabels draws; the summary's names are on the data's scale.
        s = fit.samples
        return {"weights": s["weights"].numpy(), "locs": s["locs"].numpy()}

    pyro_nuts = posterior("pyro-nuts", num_chains=2, warmup_steps=300, num_samples=400)
    _compare(posterior("hmc", num_chains=32, warmup_steps=300, num_samples=200), pyro_nuts)
    _compare(posterior("nuts", num_chains=32, warmup_steps=300, num_samples=200), pyro_nuts)


@pytest.mark.slow
def test_ppca_on_wine_agrees_with_pyro_nuts():
    wine = ppgen.datasets.load("wine").iloc[:, :4]

    def posterior(method, **options):
        fit = ppgen.fit(ppgen.PPCA(1), wine, method=method, seed=0, **options)
        W, noise = fit.samples["W"], fit.samples["noise"]
        p = W.shape[-2]
        cov = W @ W.transpose(-1, -2) + noise[..., None, None] * torch.eye(p, dtype=W.dtype)
        return {"cov": cov.numpy(), "loc": fit.samples["loc"].numpy()}

    pyro_nuts = posterior("pyro-nuts", num_chains=2, warmup_steps=300, num_samples=400)
    _compare(posterior("hmc", num_chains=32, warmup_steps=300, num_samples=200), pyro_nuts)
    _compare(posterior("nuts", num_chains=32, warmup_steps=300, num_samples=200), pyro_nuts)
