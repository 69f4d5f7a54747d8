"""The engine registry, option errors, and what every fit path honours (``model.fitted``,
``NonFiniteLossError.fit``), with a dummy engine and toy models defined here only."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.infer import engine as registry
from ppgen.infer.engine import Engine, EngineResult
from ppgen.infer.sequences import SequenceFit
from ppgen.models.base import GenerativeModel

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def faithful() -> pd.DataFrame:
    return ppgen.datasets.load("faithful")


# -- a dummy engine, registered by the tests only --------------------------------------------------
@dataclass(frozen=True)
class _DummyOptions:
    start_loss: float = 3.0


class Dummy(Engine):
    """Returns the model's starting values as its estimate and a made-up two-step loss trace."""

    name: ClassVar[str] = "dummy"
    kind: ClassVar[str] = "point"
    loss_label: ClassVar[str] = "dummy loss"
    Options = _DummyOptions

    def accepts(self, model):
        cls = model if isinstance(model, type) else type(model)
        return not cls.amortized

    def run(self, problem, options):
        generator = torch.Generator().manual_seed(problem.seed)
        params = problem.model.init_params(problem.x, problem.mask, generator)
        losses = np.array([options.start_loss, options.start_loss / 2])
        return EngineResult(params=params, losses=losses, info={"n_units": problem.n_units})


@pytest.fixture
def dummy():
    before = registry.names()
    registry.register("dummy", f"{__name__}:Dummy")
    yield
    registry.unregister("dummy")
    assert registry.names() == before


def test_a_registered_engine_fits_through_ppgen_fit(dummy, faithful):
    model = ppgen.GaussianMixture(2)
    assert "dummy" in registry.engines_for(model)
    assert "dummy" in registry.engines_for(ppgen.GaussianMixture)
    assert "dummy" not in registry.engines_for(ppgen.VAE(2))
    fit = ppgen.fit(model, faithful, method="dummy", start_loss=5.0, seed=4)
    assert fit.method == "dummy" and fit.kind == "point" and fit.engine.loss_label == "dummy loss"
    np.testing.assert_array_equal(fit.losses, [5.0, 2.5])
    assert fit.info["n_units"] == len(faithful)
    # The estimate is the model's start for the seed, and the fit works like any point fit.
    generator = torch.Generator().manual_seed(4)
    start = fit.model.init_params(fit.train.x, fit.train.mask, generator)
    for name, value in start.items():
        torch.testing.assert_close(fit.params[name], value, rtol=0, atol=0)
    with torch.no_grad():
        rows = fit.model.log_prob(fit.train.x, fit.train.mask, start).numpy()
    jacobian = fit.schema.log_abs_det_jacobian(fit.train.mask).numpy()
    np.testing.assert_allclose(fit.log_prob(faithful), rows + jacobian, atol=1e-12)
    assert np.isfinite(fit.bic(faithful))
    with pytest.raises(ValueError, match=r"unknown options for method='dummy': \['lr'\]"):
        ppgen.fit(model, faithful, method="dummy", lr=0.1)


def test_the_registry_is_lazy_and_resolves_by_model():
    assert registry.names()[:4] == ("map", "em", "svi", "nuts")
    # Maximum likelihood by EM is the default of models with a closed-form EM (issue 11).
    assert registry.resolve(None, ppgen.GaussianMixture(2)).name == "em"
    vae, gmm = ppgen.VAE(2), ppgen.GaussianMixture(2)
    assert registry.resolve(None, vae).kind == "networks"
    assert registry.resolve("svi", gmm).kind == "draws"
    assert registry.engines_for(gmm) == ("map", "em", "svi", "nuts", "hmc", "pyro-nuts")
    assert registry.engines_for(ppgen.PPCA(1)) == (
        "map", "em", "svi", "nuts", "hmc", "pyro-nuts"
    )  # fmt: skip
    assert registry.engines_for(vae) == ("svi",)
    with pytest.raises(ValueError, match="method must be one of"):
        registry.resolve("magic", gmm)
    with pytest.raises(ValueError, match="target must be 'module:Class'"):
        registry.register("bad", "no_colon")


# -- option errors: one message for every engine ---------------------------------------------------
_TINY = np.random.default_rng(0).normal(size=(12, 2))


@pytest.mark.parametrize(
    ("method", "model"),
    [
        ("map", ppgen.GaussianMixture(2)),
        ("em", ppgen.GaussianMixture(2)),
        ("svi", ppgen.PPCA(1)),
        ("nuts", ppgen.PPCA(1)),
        ("svi", ppgen.VAE(2, (4,))),
        ("em", ppgen.HMM(2)),
    ],
)
def test_an_unknown_option_names_itself_and_the_valid_ones(method, model):
    engine = registry.resolve(method, model)
    data = [_TINY] if model.sequential else _TINY
    with pytest.raises(ValueError, match=r"unknown options for method=.*\['bogus'\]") as err:
        ppgen.fit(model, data, method=method, bogus=1)
    message = str(err.value)
    assert all(name in message for name in engine.option_names())
    if model.sequential:
        assert "id_column" in message


@pytest.mark.parametrize(
    ("method", "options", "name"),
    [
        ("map", {"n_init": 0}, "n_init"),
        ("em", {"max_steps": 1.5}, "max_steps"),
        ("svi", {"num_draws": -1}, "num_draws"),
        ("nuts", {"num_chains": 0}, "num_chains"),
        ("nuts", {"target_accept_prob": 1.5}, "target_accept_prob"),
    ],
)
def test_a_bad_option_value_is_a_value_error_naming_it(method, options, name):
    with pytest.raises(ValueError, match=name):
        ppgen.fit(ppgen.GaussianMixture(2), _TINY, method=method, **options)


def test_a_method_the_model_cannot_take_lists_those_it_can():
    with pytest.raises(ValueError, match="fitted by method='svi'; method='em' is not available"):
        ppgen.fit(ppgen.VAE(2), _TINY, method="em")


# -- toy models: every path calls model.fitted and attaches the fit to NonFiniteLossError -----
class Toy(GenerativeModel):
    """x ~ Normal(mu, 1), mu ~ Normal(0, 10); the log joint is -inf when mu < ``nan_below``."""

    global_sites: ClassVar[tuple[str, ...]] = ("mu",)
    calls: ClassVar[list] = []

    def __init__(self, nan_below: float | None = None) -> None:
        super().__init__()
        self.nan_below = nan_below

    def config(self):
        return {"nan_below": self.nan_below}

    def _observed(self, x, mask):
        return x.reshape(-1)[mask.reshape(-1)]

    def model(self, x, mask=None, subsample_size=None):
        mu = pyro.sample("mu", dist.Normal(x.new_zeros(()), 10.0))
        log_lik = dist.Normal(mu, 1.0).log_prob(self._observed(x, mask)).sum()
        if self.nan_below is not None:
            # Infinite, not NaN: Pyro's argument checks would refuse a NaN factor first.
            log_lik = torch.where(mu < self.nan_below, -torch.inf, log_lik)
        pyro.factor("x", log_lik)

    def init_params(self, x, mask, generator):
        return {"mu": x.new_tensor(1.0)}

    def log_prior(self, params):
        return dist.Normal(0.0, 10.0).log_prob(params["mu"])

    def em_step(self, x, mask, params, **data):
        obs = self._observed(x, mask)
        log_joint = dist.Normal(params["mu"], 1.0).log_prob(obs).sum() + self.log_prior(params)
        return {"mu": obs.sum() / (len(obs) + 1 / 100)}, log_joint

    def em_restarts(self, x, mask, best, **data):
        for shift in (40.0, -40.0):
            type(self).calls.append(("restart", float(best()["mu"])))
            yield {"mu": best()["mu"] + shift}

    def fitted(self, params):
        type(self).calls.append(("fitted", {k: float(v) for k, v in params.items()}))


class SequenceToy(Toy):
    sequential: ClassVar[bool] = True


def _data(sequential: bool):
    values = np.random.default_rng(1).normal(-5.0, 1.0, size=(30, 1))
    return [values[:20], values[20:]] if sequential else values


@pytest.mark.parametrize("cls", [Toy, SequenceToy])
@pytest.mark.parametrize("method", ["map", "em", "svi", "nuts"])
def test_every_path_calls_fitted_with_the_estimate(cls, method):
    options = {
        "svi": {"max_steps": 50, "num_draws": 5},
        "nuts": {"num_samples": 5, "warmup_steps": 5, "num_chains": 1},
    }.get(method, {})
    cls.calls.clear()
    fit = ppgen.fit(cls(), _data(cls.sequential), method=method, standardize=False, **options)
    assert type(fit) is (SequenceFit if cls.sequential else ppgen.Fit)
    fitted = [c for c in cls.calls if c[0] == "fitted"]
    assert fitted == [("fitted", {"mu": float(fit.params["mu"])})]
    if method == "em":
        # Closed form: the posterior mode; EM's further starts come from the model.
        values = _data(False)
        expected = values.sum() / (len(values) + 1 / 100)
        assert float(fit.params["mu"]) == pytest.approx(expected, abs=1e-12)
        # Each further start is made from the best estimate so far (the first one, twice).
        restarts = [c for c in cls.calls if c[0] == "restart"]
        assert restarts == [("restart", pytest.approx(expected, abs=1e-12))] * 2


@pytest.mark.parametrize("cls", [Toy, SequenceToy])
def test_a_diverging_fit_carries_the_fit_of_its_last_good_values(cls):
    cls.calls.clear()
    with pytest.raises(ppgen.NonFiniteLossError) as err:
        ppgen.fit(cls(nan_below=0.0), _data(cls.sequential), method="map", standardize=False)
    kept = err.value.fit
    assert type(kept) is (SequenceFit if cls.sequential else ppgen.Fit)
    assert kept.method == "map" and kept.kind == "point"
    # The last good point is a finite value the NaN guard kept (L-BFGS restores it).
    assert np.isfinite(float(kept.params["mu"])) and float(kept.params["mu"]) >= 0
    assert cls.calls == [("fitted", {"mu": float(kept.params["mu"])})]


def test_the_amortized_path_calls_fitted_too():
    calls = []

    class RecordingVAE(ppgen.VAE):
        def fitted(self, params):
            calls.append(dict(params))

    fit = ppgen.fit(RecordingVAE(2, (4,)), _TINY, max_epochs=2)
    assert fit.kind == "networks" and calls == [{}]


def test_options_are_frozen_dataclasses():
    for name in registry.names():
        for target in registry._REGISTRY[name]:
            engine = registry._load(target)
            options = engine.Options()
            assert dataclasses.is_dataclass(options)
            field = engine.option_names()[0]
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(options, field, None)
