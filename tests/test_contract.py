"""Every registered model x every engine that accepts it x every device, through the same checks.

In the spirit of zuko's ``tests/test_flows.py``: one table of tiny real problems, one set of
promises. A new model must add a row to :data:`CASES` (the first test fails until it does); a new
engine must add its tiny options to :data:`ENGINE_OPTIONS`. Everything runs in-process on tiny
tables, except the command line: one subprocess per model family runs ``ppgen fit``, ``score``,
``evaluate`` and ``sample`` as a shell would see them.

The promises (see docs/architecture.md):

* ``type(model)(**model.config())`` rebuilds an equal, JSON-serializable config;
* ``model.label()`` is one short line naming the class;
* ``ppgen.fit(model, data, method=engine, seed=..., device=...)`` runs; its tensors live on the
  device; ``fit.kind`` is one of the four kinds and agrees with whether it holds draws;
* ``repr(fit)`` is short (a fit prints like a value, not like a network);
* save then load gives the same ``log_prob`` bit for bit, or, for models without an exact
  likelihood, the same clear error (pointing to ``ppgen.evaluate``) and the same latent means and
  seeded ELBO;
* ``fit.sample(n, seed=...)`` has ``n`` rows (sequences) with the schema's names and dtypes, and
  the same seed gives the same draws.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.infer.engine import engines_for
from ppgen.models import MODELS

torch.set_num_threads(1)

KINDS = ("point", "draws", "mcmc", "networks")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@cache
def table(name: str) -> pd.DataFrame:
    """Tiny real tables (60 rows), loaded once."""
    wine = ppgen.datasets.load("wine").iloc[::3].reset_index(drop=True)  # all three cultivars
    tables = {
        "faithful": ppgen.datasets.load("faithful").iloc[:60].reset_index(drop=True),
        "geyser": ppgen.datasets.load("geyser").iloc[:60].reset_index(drop=True),
        "wine4": wine.iloc[:, :4],
        # Four continuous columns and the categorical cultivar: the deep models' mixed heads.
        "wine_mixed": wine.iloc[:, [0, 1, 2, 3, 13]],
    }
    return tables[name]


@dataclass(frozen=True)
class Case:
    """A tiny problem for one model class."""

    make: Callable[[], Any]  # a small unfitted model
    data: str  # a key of table()
    cli: tuple[str, ...]  # `ppgen fit` arguments choosing this model (besides the data and -o)
    cli_data: str  # table for the command line (numeric columns only: kinds inferred from CSV)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per engine, replaces


# Few steps, draws and epochs: each fit takes well under a second. Options the engine would
# reject belong in Case.options of the models that need them.
ENGINE_OPTIONS: dict[str, dict[str, Any]] = {
    "map": {"max_steps": 10},
    "em": {"max_steps": 10},
    "svi": {"max_steps": 10, "num_draws": 5},
    "nuts": {"num_samples": 4, "warmup_steps": 4, "num_chains": 1, "max_tree_depth": 2},
    "minibatch": {"max_epochs": 2, "batch_size": 32},
    "hmc": {"num_samples": 4, "warmup_steps": 4, "num_chains": 2},
}
DEEP = {"svi": ENGINE_OPTIONS["minibatch"], "minibatch": ENGINE_OPTIONS["minibatch"]}

CASES: dict[str, Case] = {
    "GaussianMixture": Case(
        make=lambda: ppgen.GaussianMixture(2),
        data="faithful",
        cli=("--model", "gmm", "--n-components", "2", "--method", "em"),
        cli_data="faithful",
    ),
    "BayesianPCA": Case(
        make=lambda: ppgen.models.bpca.BayesianPCA(2),
        data="wine4",
        cli=("--model", "bpca", "--n-components", "2", "--method", "em"),
        cli_data="wine4",
    ),
    "FactorAnalysis": Case(
        make=lambda: ppgen.FactorAnalysis(1),
        data="wine4",
        cli=("--model", "fa", "--n-components", "1", "--method", "em"),
        cli_data="wine4",
    ),
    "PPCA": Case(
        make=lambda: ppgen.PPCA(1),
        data="wine4",
        cli=("--model", "ppca", "--n-components", "1", "--method", "em"),
        cli_data="wine4",
    ),
    "HMM": Case(
        make=lambda: ppgen.HMM(2),
        data="geyser",
        cli=("--model", "hmm", "--n-states", "2", "--method", "em"),
        cli_data="geyser",
        # One start instead of the default restarts (8 for map, 4 for em).
        options={
            "map": {**ENGINE_OPTIONS["map"], "n_init": 1},
            "em": {**ENGINE_OPTIONS["em"], "n_init": 1},
        },
    ),
    "VAE": Case(
        make=lambda: ppgen.VAE(2, hidden=(8,)),
        data="wine_mixed",
        cli=("--model", "vae", "--n-latent", "2", "--hidden", "8"),
        cli_data="wine4",
        options=DEEP,
    ),
    "HierarchicalVAE": Case(
        make=lambda: ppgen.HierarchicalVAE((2, 2), hidden=(8,)),
        data="wine_mixed",
        cli=("--model", "hvae", "--n-latent", "2,2", "--hidden", "8"),
        cli_data="wine4",
        options=DEEP,
    ),
    "Autoregressive": Case(
        make=lambda: ppgen.Autoregressive(hidden=(8,), components=2),
        data="wine_mixed",
        cli=("--model", "ar", "--hidden", "8"),
        cli_data="wine4",
        options=DEEP,
    ),
    "Flow": Case(
        make=lambda: ppgen.Flow("maf", transforms=2, hidden=(8,)),
        data="wine_mixed",
        cli=("--model", "flow", "--flow-kind", "maf", "--transforms", "2", "--hidden", "8"),
        cli_data="wine4",
        options=DEEP,
    ),
    "Diffusion": Case(
        make=lambda: ppgen.Diffusion(4, hidden=(8,)),
        data="wine_mixed",
        cli=("--model", "diffusion", "--n-steps", "4", "--hidden", "8"),
        cli_data="wine4",
        options=DEEP,
    ),
}


# Energy-based models (issue 18): contrastive divergence, a few epochs and short chains.
ENGINE_OPTIONS["cd"] = {"max_epochs": 2}
CASES["RBM"] = Case(
    make=lambda: ppgen.RBM(3, visible="gaussian", n_gibbs=50),
    data="wine4",
    cli=("--model", "rbm", "--n-hidden", "3", "--visible", "gaussian"),
    cli_data="wine4",
)
CASES["EBM"] = Case(
    make=lambda: ppgen.EBM(hidden=(8,), n_sample_steps=50),
    data="faithful",
    cli=("--model", "ebm", "--hidden", "8"),
    cli_data="faithful",
    options={"cd": {"max_epochs": 2, "n_chains": 20, "k": 5}},
)

# Issue 16: the GAN (an implicit model) and its adversarial engine, a few generator steps.
ENGINE_OPTIONS["adversarial"] = {"max_steps": 6, "eval_every": 3, "n_eval_samples": 30}
CASES["GAN"] = Case(
    make=lambda: ppgen.GAN(2, hidden=(8,), critic_hidden=(8,), pac=2, max_modes=2),
    data="wine_mixed",
    # The engine's default runs >= 900 generator steps; the CLI chain only needs a fit.
    cli=("--model", "gan", "--n-latent", "2", "--hidden", "8", "--max-steps", "200"),
    cli_data="wine4",
)

# Issue 21: not-MIWAE (continuous columns only).
CASES["NotMIWAE"] = Case(
    make=lambda: ppgen.NotMIWAE(2, hidden=(8,)),
    data="wine4",
    cli=("--model", "notmiwae", "--n-latent", "2", "--hidden", "8"),
    cli_data="wine4",
    options=DEEP,
)


def _grid() -> list[Any]:
    params = []
    for name in sorted(MODELS):
        if name not in CASES:
            continue  # reported by test_every_registered_model_has_a_case
        for engine in engines_for(CASES[name].make()):
            for device in DEVICES:
                params.append(pytest.param(name, engine, device, id=f"{name}-{engine}-{device}"))
    return params


GRID = _grid()
# Issue 19: "nuts" became the batched masked NUTS, in the grid from now on; Pyro's NUTS, the
# grid's "nuts" until then, is "pyro-nuts": the same engine class, kept out of the grid (its
# tiny fits cost ~1 s each with Pyro's JIT) and still run by "nuts" for the HMM.
GRID = [p for p in GRID if p.values[1] != "pyro-nuts"]
ENGINE_OPTIONS["pyro-nuts"] = ENGINE_OPTIONS["nuts"]


def options(name: str, engine: str) -> dict[str, Any]:
    case = CASES[name]
    return dict(case.options[engine] if engine in case.options else ENGINE_OPTIONS[engine])


@cache
def fitted(name: str, engine: str, device: str):
    """The fit of one grid case, computed once and shared by the checks below."""
    data = table(CASES[name].data)
    return ppgen.fit(
        CASES[name].make(),
        data,
        method=engine,
        seed=0,
        device=device,
        progress=False,
        **options(name, engine),
    )


# -- the table covers the registries ----------------------------------------------------------


def test_every_registered_model_has_a_case():
    missing = sorted(set(MODELS) - set(CASES))
    assert not missing, f"add a tiny Case for {missing} to CASES in {Path(__file__).name}"
    stale = sorted(set(CASES) - set(MODELS))
    assert not stale, f"CASES names models that are not registered: {stale}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_engine_has_tiny_options(name):
    engines = engines_for(CASES[name].make())
    assert engines, f"no engine accepts {name}"
    missing = [e for e in engines if e not in ENGINE_OPTIONS and e not in CASES[name].options]
    assert not missing, f"add tiny options for engines {missing} to ENGINE_OPTIONS"


# -- the model alone --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_round_trip(name):
    model = CASES[name].make()
    assert type(model).__name__ == name
    config = model.config()
    assert json.loads(json.dumps(config)) == config, "config() must hold JSON types only"
    rebuilt = type(model)(**config)
    assert rebuilt.config() == config
    assert MODELS[name] is type(model)


@pytest.mark.parametrize("name", sorted(CASES))
def test_label_is_one_short_line_naming_the_class(name):
    label = CASES[name].make().label()
    assert isinstance(label, str) and label.strip()
    assert "\n" not in label and len(label) <= 80, label
    assert name in label, label


# -- every model x engine x device ------------------------------------------------------------


@pytest.mark.parametrize("name, engine, device", GRID)
def test_fit_runs_on_the_device_with_a_kind(name, engine, device):
    fit = fitted(name, engine, device)
    assert type(fit.model).__name__ == name
    assert fit.model.config() == CASES[name].make().config()  # fitting keeps the hyperparameters
    assert fit.kind in KINDS, fit.kind
    # Draws are what distinguish the kinds: point estimates and networks hold none.
    assert (fit.samples is not None) == (fit.kind in ("draws", "mcmc")), (fit.kind, fit.samples)
    assert fit.device.type == device
    assert all(p.device.type == device for p in fit.params.values())
    assert all(p.device.type == device for p in fit.model.parameters())
    enc = fit.encode(table(CASES[name].data))
    assert enc.x.device.type == device
    label = fit.model.label()
    assert name in label and "\n" not in label, label
    assert np.all(np.isfinite(np.asarray(fit.losses))), "the loss trace holds NaN or inf"


@pytest.mark.parametrize("name, engine, device", GRID)
def test_repr_is_short(name, engine, device):
    text = repr(fitted(name, engine, device))
    assert len(text) < 300, f"repr(fit) is {len(text)} characters: {text[:200]}..."
    assert name in text


@pytest.mark.parametrize("name, engine, device", GRID)
def test_save_load_keeps_the_likelihood(name, engine, device, tmp_path):
    fit = fitted(name, engine, device)
    data = table(CASES[name].data)
    path = tmp_path / "fit.ppgen"
    fit.save(str(path))
    loaded = ppgen.load(str(path), device=device)
    assert type(loaded) is type(fit)
    assert (loaded.kind, loaded.method, loaded.seed) == (fit.kind, fit.method, fit.seed)
    assert loaded.model.config() == fit.model.config()
    assert loaded.schema.names == fit.schema.names
    if type(fit.model).implements("log_prob"):
        expected = fit.log_prob(data)
        assert np.all(np.isfinite(expected))
        np.testing.assert_array_equal(loaded.log_prob(data), expected)
        return
    # No exact likelihood: the same clear error, pointing to the estimators, before and after.
    messages = []
    for f in (fit, loaded):
        with pytest.raises((ValueError, NotImplementedError), match="ppgen.evaluate") as info:
            f.log_prob(data)
        messages.append((type(info.value), str(info.value)))
    assert messages[0] == messages[1]
    if type(fit.model).implements("posterior"):
        np.testing.assert_array_equal(loaded.transform(data), fit.transform(data))
    if fit.model.unnormalized:  # energy-based: no bound without log Z; AIS of log Z instead
        before = ppgen.evaluate.ais(fit, data, n_steps=5, n_chains=3, seed=3).per_row
        after = ppgen.evaluate.ais(loaded, data, n_steps=5, n_chains=3, seed=3).per_row
        assert np.all(np.isfinite(before))
        np.testing.assert_array_equal(after, before)
        return
    before = ppgen.evaluate.elbo(fit, data, num_particles=2, seed=3).per_row
    after = ppgen.evaluate.elbo(loaded, data, num_particles=2, seed=3).per_row
    assert np.all(np.isfinite(before))
    np.testing.assert_array_equal(after, before)


def _check_table(sample: Any, schema: Any, rows: int | None) -> None:
    assert isinstance(sample, pd.DataFrame), type(sample)
    if rows is not None:
        assert len(sample) == rows
    assert tuple(sample.columns) == schema.names
    for column in schema.columns:
        values = sample[column.name]
        assert str(values.dtype) == column.dtype, (column.name, values.dtype, column.dtype)
        if column.categories is not None:
            assert set(values.unique()) <= set(column.categories), column.name
        else:
            assert np.all(np.isfinite(values.to_numpy(dtype=float))), column.name


@pytest.mark.parametrize("name, engine, device", GRID)
def test_sample_follows_the_schema(name, engine, device):
    fit = fitted(name, engine, device)
    n = 7
    sample = fit.sample(n, seed=1)
    if isinstance(sample, list):  # a sequence model fitted on one sequence: n sequences
        assert len(sample) == n
        for sequence in sample:
            _check_table(sequence, fit.schema, rows=None)
        again = fit.sample(n, seed=1)
        for a, b in zip(sample, again, strict=True):
            pd.testing.assert_frame_equal(a, b)
        return
    _check_table(sample, fit.schema, rows=n)
    pd.testing.assert_frame_equal(fit.sample(n, seed=1), sample)


# -- the command line, end to end for every model family ---------------------------------------

# Runs `python -m ppgen.cli ARGS` for each command in turn inside one interpreter (runpy, as `-m`
# does): every family's chain in one process pays for one torch import instead of twenty. An
# exception that escapes the CLI is reported with its traceback, as the shell would show it.
DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, runpy, sys, traceback
    results = []
    for family, args in json.loads(sys.argv[1]):
        out, err, code = io.StringIO(), io.StringIO(), 0
        sys.argv = ["ppgen", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_module("ppgen.cli", run_name="__main__", alter_sys=True)
            except SystemExit as exc:
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                    code = 1
                else:
                    code = exc.code or 0
            except BaseException:
                traceback.print_exc()
                code = 1
        results.append({"family": family, "args": args, "code": code,
                        "stdout": out.getvalue(), "stderr": err.getvalue()})
    sys.__stdout__.write(json.dumps(results))
    """
)


def _paths(root: Path, name: str) -> dict[str, Path]:
    return {k: root / f"{name}.{k}" for k in ("csv", "ppgen", "samples")}


def _commands(name: str, paths: dict[str, Path]) -> list[list[str]]:
    csv, model = str(paths["csv"]), str(paths["ppgen"])
    return [
        ["fit", csv, *CASES[name].cli, "--seed", "0", "--quiet", "-o", model],
        ["score", model, csv],
        # AIS is the default estimator; a short run exercises the whole path.
        ["evaluate", model, csv, "--n-steps", "10", "--n-chains", "2", "--quiet"],
        ["sample", model, "-n", "5", "--seed", "0", "-o", str(paths["samples"])],
    ]


@pytest.fixture(scope="module")
def command_line(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Every family's fit/score/evaluate/sample chain, run in one child process."""
    root = tmp_path_factory.mktemp("cli")
    commands = []
    for name in sorted(CASES):
        paths = _paths(root, name)
        table(CASES[name].cli_data).to_csv(paths["csv"], index=False)
        commands += [(name, args) for args in _commands(name, paths)]
    process = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(commands)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    results: dict[str, dict[str, Any]] = {n: {"paths": _paths(root, n)} for n in CASES}
    for result in json.loads(process.stdout):
        results[result["family"]][result["args"][0]] = result
    return results


def _clean_error(result: dict[str, Any]) -> str:
    """The one line a failed command printed; fails if it printed a traceback or more."""
    stderr = result["stderr"]
    assert "Traceback" not in stderr, f"{result['args']}:\n{stderr}"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"{result['args']}: the error is not one line:\n{stderr}"
    return lines[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_command_line_end_to_end(name, command_line):
    results = command_line[name]
    for command in ("fit", "evaluate", "sample"):
        result = results[command]
        assert "Traceback" not in result["stderr"], f"{command}:\n{result['stderr']}"
        if command == "evaluate" and MODELS[name].implements("log_prob") and result["code"]:
            # An exact likelihood needs no estimate: a refusal is fine if it is one clear line.
            assert "score" in _clean_error(result)
            continue
        assert result["code"] == 0, f"ppgen {command}: {_clean_error(result)}"
    assert name in results["fit"]["stdout"], results["fit"]["stdout"]  # the model's label
    score = results["score"]
    if MODELS[name].implements("log_prob"):
        assert "Traceback" not in score["stderr"], score["stderr"]
        assert score["code"] == 0, f"ppgen score: {_clean_error(score)}"
        assert "log-likelihood" in score["stdout"]
    elif score["code"] != 0:  # no exact likelihood: one line pointing to `ppgen evaluate`
        assert "evaluate" in _clean_error(score)
    data = table(CASES[name].cli_data)
    drawn = pd.read_csv(results["paths"]["samples"])
    assert len(drawn) >= 5
    assert list(drawn.columns)[-data.shape[1] :] == list(data.columns)
