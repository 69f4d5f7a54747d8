"""Every public function of ppgen.evaluate on a tiny deep fit and a tiny mixture fit: a number
or one clear ValueError, never an AttributeError, StopIteration or NotImplementedError; and the
sentence that says why an exact estimate has no Monte-Carlo error."""

from __future__ import annotations

import ast
import math
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen import evaluate as ev
from ppgen._utils import seeded
from ppgen.infer.weights import iwae_data_rows
from ppgen.models import weights

ROOT = pathlib.Path(ppgen.__file__).parent


def _table(n: int = 24) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(n, 3)) @ rng.normal(size=(3, 3)), columns=list("abc"))


@pytest.fixture(scope="module")
def tiny_fits() -> dict[str, ppgen.Fit]:
    X = _table()
    return {
        "vae": ppgen.fit(ppgen.VAE(2, (6,)), X, seed=0, max_epochs=2),
        "hvae": ppgen.fit(ppgen.HierarchicalVAE((2, 2), (6,)), X, seed=0, max_epochs=2),
        "gmm": ppgen.fit(ppgen.GaussianMixture(2), X, seed=0),
        "ppca": ppgen.fit(ppgen.PPCA(1), X, seed=0),
    }


_AIS = {"n_steps": 4, "n_chains": 2, "n_tune": 1, "n_leapfrog": 2, "progress": False}
_CALLS = {
    "elbo": lambda f, X: ev.elbo(f, X, num_particles=3),
    "iwae": lambda f, X: ev.iwae(f, X, k=3),
    "ais": lambda f, X: ev.ais(f, X[:3], **_AIS),
    "ais-guide": lambda f, X: ev.ais(f, X[:3], init="guide", **_AIS),
    "bdmc": lambda f, X: ev.bdmc(f, n_rows=3, **_AIS),
    "diagnostics": lambda f, X: ev.diagnostics(f),
    "loo": lambda f, X: ev.loo(f, X),
    "waic": lambda f, X: ev.waic(f, X),
}


@pytest.mark.parametrize("call", sorted(_CALLS))
@pytest.mark.parametrize("name", ["vae", "hvae", "gmm"])
def test_every_function_returns_a_number_or_one_clear_value_error(tiny_fits, name, call):
    fit = tiny_fits[name]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = _CALLS[call](fit, _table())
    except ValueError as err:  # anything else (AttributeError, StopIteration, ...) fails
        message = str(err)
        assert "\n" not in message and len(message) < 300
        assert call in ("diagnostics", "loo", "waic"), message  # fits without draws
        assert ("MCMC" in message) if call == "diagnostics" else ("posterior draws" in message)
        if name != "gmm":
            assert type(fit.model).__name__ in message or "trained networks" in message
        return
    pieces = (result.lower, result.upper) if call == "bdmc" else (result,)
    for estimate in pieces:
        assert math.isfinite(float(estimate.mean))
        assert np.all(np.isfinite(estimate.per_row))


def test_bdmc_on_a_deep_model_sandwiches_its_simulated_rows(tiny_fits):
    """Regression: bdmc on a VAE or HVAE fit (no global parameters) raised StopIteration while
    simulating. The reverse pass bounds log p(x) from above; without a closed form there is no
    exact value."""
    for name in ("vae", "hvae"):
        res = ev.bdmc(
            tiny_fits[name], n_rows=4, n_steps=20, n_chains=4, n_tune=1, n_leapfrog=2, seed=1
        )
        assert res.exact is None and len(res.data) == 4
        assert res.lower.per_row.shape == res.upper.per_row.shape == (4,)
        # Stochastic bounds: the gap may be slightly negative by chance, never by much.
        assert res.gap > -0.5
        assert not res.lower.exact and not res.upper.exact


def test_exact_estimates_say_why(tiny_fits):
    X = _table()
    gmm, ppca, vae = tiny_fits["gmm"], tiny_fits["ppca"], tiny_fits["vae"]
    for est in (ev.elbo(gmm, X), ev.iwae(gmm, X), ev.ais(gmm, X[:3], **_AIS)):
        assert est.exact and est.mc_se == 0.0
        assert "no continuous local latents" in est.note
        assert est.note in repr(est) and est.note in str(est)
        np.testing.assert_allclose(est.per_row[:3], gmm.log_prob(X[:3]), rtol=0, atol=1e-10)
    # PPCA's guide is its exact posterior: every weight of a row is p(x) (up to rounding).
    for est in (ev.elbo(ppca, X, num_particles=4), ev.iwae(ppca, X, k=4)):
        assert est.exact and est.mc_se < 1e-10 and "exact posterior" in est.note
        assert "mc se 0.0000" in str(est) and "exact log-likelihood" in str(est)
        np.testing.assert_allclose(est.per_row, ppca.log_prob(X), rtol=0, atol=1e-8)
    guided = ev.ais(ppca, X[:3], init="guide", **_AIS)
    assert guided.exact and "exact posterior" in guided.note
    assert not ev.ais(ppca, X[:3], init="prior", **_AIS).exact
    # A trained network's guide is not exact; one particle cannot tell either way.
    for est in (ev.iwae(vae, X, k=4), ev.iwae(ppca, X, k=1)):
        assert not est.exact and est.note == "" and "note" not in repr(est)


def test_one_weight_implementation_hook_and_traced_fallback_agree(tiny_fits):
    """The model's fast hook and the traced fallback draw the same particles from the same seed;
    a model without local latents has nothing to weigh; with an exact guide (PPCA, global
    parameters conditioned on the fit's) every weight is the exact log-likelihood."""
    X = _table()
    for name in ("vae", "hvae"):
        fit = tiny_fits[name]
        assert type(fit.model).implements("particle_log_weights")
        enc = fit.encode(X)
        with seeded(3), torch.no_grad():
            hook = weights.particle_log_weights(fit.model, enc.x, enc.mask, 5)
        with seeded(3), torch.no_grad():
            traces = weights.trace_particles(fit.model, enc.x, enc.mask, 5)
            traced = weights.weigh(fit.model, enc.x, 5, traces)
        torch.testing.assert_close(hook, traced, rtol=0, atol=1e-10)
        with seeded(3), torch.no_grad():
            rows = fit.model.iwae_rows(enc.x, enc.mask, 5)
        torch.testing.assert_close(rows, traced.logsumexp(0) - math.log(5), rtol=0, atol=1e-10)
    gmm = tiny_fits["gmm"]
    enc = gmm.encode(X)
    params = dict(gmm.params)
    assert weights.particle_log_weights(gmm.model, enc.x, enc.mask, 3, params=params) is None
    with pytest.raises(ValueError, match="no continuous local latents"):
        iwae_data_rows(gmm, X, k=3)  # what Fit.anomaly_score reports
    ppca = tiny_fits["ppca"]
    assert not type(ppca.model).implements("particle_log_weights")
    enc = ppca.encode(X)
    with seeded(0), torch.no_grad():
        lw = weights.particle_log_weights(ppca.model, enc.x, enc.mask, 4, params=ppca.params)
    exact = ppca.log_prob(X) - ppca.schema.log_abs_det_jacobian(enc.mask).numpy()
    np.testing.assert_allclose(lw.numpy(), np.broadcast_to(exact, (4, len(X))), atol=1e-8)


def test_anomaly_score_is_minus_the_iwae_bound_to_the_last_bit(tiny_fits):
    X = _table()
    fit = tiny_fits["vae"]
    score = fit.anomaly_score(X, k=7, seed=2, batch_size=5)
    np.testing.assert_array_equal(score, -ev.iwae(fit, X, k=7, seed=2, batch_size=5).per_row)


def _imports(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import statement, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def test_layers_and_no_private_imports_across_evaluate_modules():
    # infer (and models below it) never import evaluate, not even inside a function.
    for layer in ("models", "infer"):
        for path in (ROOT / layer).rglob("*.py"):
            for module, _ in _imports(path):
                assert not module.startswith("ppgen.evaluate"), (path, module)
    # models never import infer.
    for path in (ROOT / "models").rglob("*.py"):
        for module, _ in _imports(path):
            assert not module.startswith("ppgen.infer"), (path, module)
    # evaluate's modules share public helpers only.
    for path in (ROOT / "evaluate").glob("*.py"):
        for module, names in _imports(path):
            if module.startswith("ppgen.evaluate"):
                private = [n for n in names if n.startswith("_")]
                assert not private, (path, module, private)
        assert "_encode(" not in path.read_text(), path


def test_bounds_and_ais_include_the_jacobian_of_positive_columns() -> None:
    # A log-normal column's Jacobian depends on its values: the bounds must pass them on.
    faithful = ppgen.datasets.load("faithful")
    fit = ppgen.fit(ppgen.PPCA(1), faithful, kinds={"waiting": "positive"})
    exact = fit.log_prob(faithful)
    np.testing.assert_allclose(ppgen.evaluate.elbo(fit, faithful).per_row, exact, atol=1e-8)
    np.testing.assert_allclose(ppgen.evaluate.iwae(fit, faithful, k=5).per_row, exact, atol=1e-8)
    rows = faithful[:20]
    ais = ppgen.evaluate.ais(fit, rows, n_steps=300, seed=0)
    assert abs(np.mean(ais.per_row - fit.log_prob(rows))) < 0.1
