"""Every subcommand on a saved fit of every model family: no traceback anywhere.

Regression tests for ``ppgen evaluate`` on a VAE (an AttributeError traceback after AIS) and
``ppgen score`` on a VAE (a NotImplementedError traceback), ``ppgen sample`` of sequence models
(``--length``) and ``ppgen impute`` on a table without gaps. One subprocess per deep family (the
command as a shell runs it); the rest in-process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ppgen
from ppgen.cli import main

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    frame["c"] = frame["a"] + rng.normal(scale=0.5, size=40)
    path = tmp_path_factory.mktemp("data") / "data.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def series(table) -> Path:
    rng = np.random.default_rng(1)
    state = np.cumsum(rng.random(60) < 0.1) % 2
    path = table.with_name("series.csv")
    pd.DataFrame({"x": rng.normal(3 * state), "y": rng.normal(size=60)}).to_csv(path, index=False)
    return path


DEEP = {
    "vae": lambda: ppgen.VAE(2, hidden=(8,)),
    "hvae": lambda: ppgen.HierarchicalVAE((2, 2), hidden=(8,)),
}


@pytest.fixture(scope="module")
def deep_fits(table) -> dict[str, Path]:
    frame = pd.read_csv(table)
    paths = {}
    for name, make in DEEP.items():
        paths[name] = table.with_name(f"{name}.ppgen")
        ppgen.fit(make(), frame, max_epochs=3, progress=False).save(str(paths[name]))
    return paths


def _one_line_error(status: int, err: str, *names: str) -> None:
    assert status == 2 and "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("ppgen: error: ")
    for name in names:
        assert name in line, line


@pytest.mark.parametrize("family", list(DEEP))
def test_deep_model_evaluate_and_score_in_a_shell(family, deep_fits, table):
    model = str(deep_fits[family])
    # evaluate then score in one process: the exit status and stderr of each, as a shell sees
    # them, without paying for two interpreters.
    code = (
        "import sys\nfrom ppgen.cli import main\n"
        f"a = main(['evaluate', {model!r}, {str(table)!r}, '--n-steps', '20', '--n-chains', '2',"
        " '--quiet'])\n"
        "print('EVALUATE', a, flush=True)\n"
        f"print('SCORE', main(['score', {model!r}, {str(table)!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert "Traceback" not in result.stderr, result.stderr
    out = result.stdout
    assert re.search(r"^EVALUATE 0$", out, re.M), result.stderr
    label = ppgen.load(model).model.label()
    assert f"{model}: {label} by svi; {table}: 40 rows" in out
    assert re.search(r"^AIS \(20 steps, 2 chains\)\s+-\d+\.\d+", out, re.M)
    assert "exact" not in out  # no exact likelihood to print
    assert re.search(r"^SCORE 2$", out, re.M)
    _one_line_error(2, result.stderr, label, "no exact likelihood", f"ppgen evaluate {model}")


@pytest.mark.parametrize("family", list(DEEP))
@pytest.mark.parametrize("method", ["elbo", "iwae"])
def test_deep_model_bounds(family, method, deep_fits, table, capsys):
    args = ["evaluate", str(deep_fits[family]), str(table), "--method", method]
    assert main([*args, "-k", "3", "--particles", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^{method.upper()} .*\)\s+-\d+\.\d+", out, re.M), out


@pytest.mark.parametrize("family", list(DEEP))
def test_deep_model_sample(family, deep_fits, tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["sample", str(deep_fits[family]), "-n", "7", "-o", str(out)]) == 0
    assert pd.read_csv(out).shape == (7, 3)
    status = main(["sample", str(deep_fits[family]), "-n", "2", "--length", "5"])
    _one_line_error(status, capsys.readouterr().err, "--length", "sequence models")


def test_fit_a_vae_from_the_command_line(table, tmp_path, capsys):
    path = tmp_path / "v.ppgen"
    args = ["fit", str(table), "--model", "vae", "--n-latent", "2", "--hidden", "8,8"]
    assert main([*args, "-o", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^model\s+VAE\(2\)$", out, re.M)
    assert "no exact likelihood; estimate it with 'ppgen evaluate" in out
    assert "summary" not in out  # network weights are no table
    assert ppgen.load(str(path)).model.config()["hidden"] == [8, 8]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--model", "vae", "--n-latent", "2,2"], ["--n-latent", "hvae"]),
        (["--model", "vae", "--n-components", "2"], ["--n-components", "gmm, ppca", "not vae"]),
        (["--model", "gmm", "--n-components", "2", "--hidden", "8"], ["--hidden", "vae, hvae"]),
        (["--model", "hvae", "--n-latent", "4"], ["n_latent", "two layers"]),
        (["--model", "vae", "--hidden", "8,0"], ["--hidden", "'8,0'"]),
    ],
)
def test_model_option_errors_are_one_line(args, names, table, tmp_path, capsys):
    status = main(["fit", str(table), *args, "-o", str(tmp_path / "m.ppgen")])
    _one_line_error(status, capsys.readouterr().err, *names)


# -- exact models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exact_fits(table, series) -> dict[str, Path]:
    paths = {}
    for name, data, options in (
        ("gmm", table, ["--n-components", "2"]),
        ("ppca", table, ["--n-components", "1"]),
        ("hmm", series, ["--n-states", "2"]),
    ):
        paths[name] = table.with_name(f"{name}.ppgen")
        status = main(["fit", str(data), "--model", name, *options, "-o", str(paths[name])])
        assert status == 0
    return paths


@pytest.mark.parametrize("family", ["gmm", "ppca", "hmm"])
def test_every_command_on_exact_models(family, exact_fits, table, series, capsys):
    model, data = str(exact_fits[family]), str(series if family == "hmm" else table)
    assert main(["score", model, data]) == 0
    assert "total log-likelihood" in capsys.readouterr().out
    for method in ("elbo", "iwae", "ais"):
        status = main(["evaluate", model, data, "--method", method, "-k", "3", "--n-steps", "5"])
        _, err = capsys.readouterr()
        if family == "hmm":  # exact likelihood: sent to score
            _one_line_error(status, err, "ppgen score")
        else:
            assert status == 0 and err == ""
    assert main(["sample", model, "-n", "3"]) == 0
    assert capsys.readouterr().err == ""


def test_sample_sequences_of_a_given_length(exact_fits, tmp_path, capsys):
    out = tmp_path / "s.csv"
    model = str(exact_fits["hmm"])
    assert main(["sample", model, "-n", "5", "--length", "7", "--seed", "1", "-o", str(out)]) == 0
    assert "35 rows (5 sequences x 7 steps)" in capsys.readouterr().out
    samples = pd.read_csv(out)
    assert samples.groupby("sequence").size().tolist() == [7] * 5
    expected = pd.concat(ppgen.load(model).sample(5, 7, seed=1), ignore_index=True)
    np.testing.assert_allclose(samples[["x", "y"]], expected[["x", "y"]], rtol=1e-12)
    assert main(["sample", model, "-n", "2"]) == 0  # default: 100 steps each
    assert len(pd.read_csv(StringIO(capsys.readouterr().out))) == 200


def test_sample_help_says_what_n_means_for_sequences(capsys):
    assert main(["sample", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "number of rows; for sequence models (hmm), number of sequences" in out
    assert "--length T" in out


# -- impute -------------------------------------------------------------------------------------


def test_impute_without_gaps_says_there_is_nothing_to_impute(table, tmp_path, capsys):
    out = tmp_path / "imputed.csv"
    status = main(["impute", str(table), "--method", "map", "-m", "2", "-o", str(out)])
    _one_line_error(status, capsys.readouterr().err, "no missing values", "nothing to impute")
    assert not out.exists()


def test_impute_quiet(table, tmp_path, capsys):
    frame = pd.read_csv(table)
    frame.loc[::7, "a"] = np.nan
    gappy, out = tmp_path / "gappy.csv", tmp_path / "imputed.csv"
    frame.to_csv(gappy, index=False)
    args = ["impute", str(gappy), "--method", "map", "-m", "2", "--quiet", "-o", str(out)]
    assert main(args) == 0
    stdout, err = capsys.readouterr()
    assert err == ""
    assert re.search(r"^missing\s+6 cells \(a 6\)$", stdout, re.M)
    assert re.search(r"improper \(one parameter estimate\) imputation", stdout)
