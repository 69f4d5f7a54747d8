"""The ``ppgen`` command with hidden Markov models: fit, score and sample CSV files of sequences."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.cli import main

torch.set_num_threads(1)

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
NUMBER = r"(-?\d+\.\d+)"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ppgen.cli", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=ENV, timeout=timeout, check=False
    )


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text, flags=re.MULTILINE)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match.group(1))


def _series(seed: int = 0) -> pd.DataFrame:
    """Two sequences of two columns with a persistent 2-state regime, in one long table."""
    rng = np.random.default_rng(seed)
    rows = []
    for sid, n in (("north", 70), ("south", 45)):
        state = np.cumsum(rng.random(n) < 0.1) % 2
        for t in range(n):
            rows.append(
                {
                    "id": sid,
                    "t": 1990 + t,
                    "flow": rng.normal(10.0 + 4.0 * state[t], 1.0),
                    "level": rng.normal(-state[t], 0.5),
                }
            )
    return pd.DataFrame(rows)


SEQ = ["--sequence-col", "id", "--time-col", "t"]


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "series.csv"
    _series().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def library_fit(series_csv):
    frame = pd.read_csv(series_csv)
    model = ppgen.HMM(2, "gaussian", "full")
    return ppgen.fit(model, frame, method="em", seed=0, id_column="id", time_column="t")


@pytest.fixture(scope="module")
def fitted(series_csv) -> tuple[Path, subprocess.CompletedProcess]:
    model = series_csv.with_name("series.ppgen")
    args = ["--model", "hmm", "--n-states", "2", *SEQ, "--seed", "0", "--quiet"]
    result = run("fit", str(series_csv), *args, "-o", str(model))
    assert result.returncode == 0, result.stderr
    return model, result


def test_fit_reports_per_step_and_per_sequence_scores(series_csv, fitted, library_fit):
    _, result = fitted
    out = result.stdout
    frame = pd.read_csv(series_csv)
    per_step = _number(rf"^log-likelihood per step\s+{NUMBER}", out)
    assert per_step == pytest.approx(library_fit.score(frame), abs=1e-6)
    per_seq = _number(rf"^log-likelihood per sequence\s+{NUMBER}", out)
    assert per_seq == pytest.approx(library_fit.log_prob(frame).mean(), abs=1e-6)
    assert _number(rf"^BIC\s+{NUMBER}", out) == pytest.approx(library_fit.bic(frame), abs=1e-3)
    assert re.search(r"^data\s+.*115 rows, 2 sequences, 2 columns \(flow, level\)", out, re.M)
    assert re.search(r"^model\s+HMM\(2, gaussian, full\)$", out, re.M)
    assert re.search(r"^transition\[0, 1\]\s+0\.\d+", out, re.M)  # the summary table


def test_score_gives_the_in_process_numbers(series_csv, fitted, library_fit, tmp_path):
    model, _ = fitted
    per_seq_file = tmp_path / "seqs.csv"
    result = run("score", str(model), str(series_csv), "--per-row", str(per_seq_file))
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(series_csv)
    out = result.stdout
    per_step = _number(rf"^log-likelihood per step\s+{NUMBER}", out)
    assert per_step == pytest.approx(library_fit.score(frame), abs=1e-6)
    log_prob = library_fit.log_prob(frame)
    assert _number(rf"^log-likelihood per sequence\s+{NUMBER}", out) == pytest.approx(
        log_prob.mean(), abs=1e-6
    )
    assert _number(rf"^total log-likelihood\s+{NUMBER}", out) == pytest.approx(
        log_prob.sum(), abs=1e-3
    )
    assert re.search(r"^rows\s+115 time steps in 2 sequences", out, re.M)
    table = pd.read_csv(per_seq_file)
    assert list(table.columns) == ["sequence", "steps", "log_prob"]
    assert table["sequence"].tolist() == ["north", "south"]
    assert table["steps"].tolist() == [70, 45]
    np.testing.assert_allclose(table["log_prob"], log_prob, atol=1e-9)


def test_score_of_shuffled_rows_is_the_same(series_csv, fitted, library_fit, tmp_path, capsys):
    """Rows are grouped by id and must only be in time order within each sequence."""
    model, _ = fitted
    frame = pd.read_csv(series_csv)
    mixed = frame.sample(frac=1.0, random_state=1).sort_values("t", kind="stable")
    path = tmp_path / "mixed.csv"
    mixed.to_csv(path, index=False)
    status = main(["score", str(model), str(path)])
    out, _ = capsys.readouterr()
    assert status == 0
    per_step = _number(rf"^log-likelihood per step\s+{NUMBER}", out)
    assert per_step == pytest.approx(library_fit.score(frame), abs=1e-6)


def test_sample_writes_sequences_with_id_and_time_columns(fitted, tmp_path):
    model, _ = fitted
    out = tmp_path / "samples.csv"
    result = run("sample", str(model), "-n", "3", "--seed", "2", "-o", str(out))
    assert result.returncode == 0, result.stderr
    samples = pd.read_csv(out)
    assert list(samples.columns) == ["id", "t", "flow", "level"]
    assert samples.groupby("id").size().tolist() == [100, 100, 100]
    expected = ppgen.load(str(model)).sample(3, seed=2)
    np.testing.assert_allclose(samples[["flow", "level"]], expected[["flow", "level"]], rtol=1e-12)


@pytest.mark.parametrize(
    ("emission", "column", "extra"),
    [("poisson", "k", []), ("categorical", "g", []), ("mixed", "k", ["--covariance-type", "diag"])],
)
def test_other_emissions_on_one_sequence(emission, column, extra, tmp_path, capsys):
    rng = np.random.default_rng(1)
    state = np.cumsum(rng.random(80) < 0.1) % 2
    frame = pd.DataFrame({"k": rng.poisson(1 + 6 * state)})
    if emission != "poisson":
        frame["g"] = np.where(rng.random(80) < 0.8, np.array(["lo", "hi"])[state], "mid")
    if emission == "categorical":
        frame = frame[["g"]]
    if emission == "mixed":
        frame["x"] = rng.normal(state, 1.0)
    csv, model = tmp_path / "one.csv", tmp_path / "one.ppgen"
    frame.to_csv(csv, index=False)
    args = ["fit", str(csv), "--model", "hmm", "--n-states", "2", "--emission", emission]
    if emission != "categorical":  # order_by names a numeric column
        args += ["--order-by", column]
    status = main([*args, *extra, "-o", str(model), "--quiet"])
    out, err = capsys.readouterr()
    assert status == 0, err
    fit = ppgen.load(str(model))
    assert fit.model.emission_family == emission
    assert _number(rf"^log-likelihood per step\s+{NUMBER}", out) == pytest.approx(
        fit.score(frame), abs=1e-6
    )
    assert re.search(r"80 rows, 1 sequence, ", out)


def test_negative_binomial_defaults_to_map(tmp_path, capsys):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"k": rng.negative_binomial(3, 0.3, size=60)})
    csv, model = tmp_path / "nb.csv", tmp_path / "nb.ppgen"
    frame.to_csv(csv, index=False)
    args = ["fit", str(csv), "--model", "hmm", "--n-states", "2", "--emission", "negbinomial"]
    status = main([*args, "--n-init", "1", "-o", str(model), "--quiet"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert re.search(r"^method\s+map, seed 0", out, re.M)
    assert re.search(r"^model\s+HMM\(2, negbinomial\)$", out, re.M)
    status = main([*args, "--method", "em", "-o", str(model), "--quiet"])
    _assert_one_line_error(status, capsys.readouterr().err, "M-step", "map")


# -- errors -----------------------------------------------------------------------------------


def _assert_one_line_error(status: int, stderr: str, *names: str) -> None:
    assert status == 2
    assert "Traceback" not in stderr
    (line,) = stderr.splitlines()
    assert line.startswith("ppgen: error: ")
    for name in names:
        assert name in line, line


HMM = ["--model", "hmm", "--n-states", "2"]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["fit", "{csv}", "--model", "hmm", "-o", "{tmp}/m"], ["--n-states"]),
        (["fit", "{csv}", *HMM, "--n-components", "2", "-o", "{tmp}/m"], ["--n-components"]),
        (["fit", "{csv}", *HMM, "--sequence-col", "station", "-o", "{tmp}/m"], ["'station'"]),
        (["fit", "{csv}", *HMM, *SEQ[:2], "--time-col", "year", "-o", "{tmp}/m"], ["'year'"]),
        (["fit", "{csv}", *HMM, "--sequence-col", "t", "--time-col", "t", "-o", "{tmp}/m"], ["t"]),
        (["fit", "{csv}", *HMM, "--emission", "weibull", "-o", "{tmp}/m"], ["'weibull'"]),
        (["fit", "{csv}", *HMM, *SEQ, "--order-by", "depth", "-o", "{tmp}/m"], ["'depth'"]),
        (
            ["fit", "{csv}", *HMM, *SEQ, "--emission", "poisson", "-o", "{tmp}/m"],
            ["'flow'", "count"],
        ),
        (
            ["fit", "{csv}", *HMM, *SEQ, "--emission", "poisson", "--covariance-type", "diag"],
            ["--covariance-type"],
        ),
        # Without --sequence-col the file is one sequence, so its time runs backwards.
        (["fit", "{csv}", *HMM, "--time-col", "t", "-o", "{tmp}/m"], ["'t'", "increasing"]),
        (["fit", "{csv}", "--model", "gmm", "--n-components", "2", *SEQ, "-o", "m"], ["hmm"]),
        (["fit", "{csv}", "--model", "gmm", "-o", "{tmp}/m"], ["--n-components"]),
    ],
)
def test_bad_input_fails_in_one_line(args, names, series_csv, tmp_path, capsys):
    args = [a.format(tmp=tmp_path, csv=series_csv) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "m")]
    status, err = main(args), capsys.readouterr().err
    _assert_one_line_error(status, err, *names)


def test_score_and_evaluate_errors_are_one_line(series_csv, fitted, tmp_path, capsys):
    model, _ = fitted
    frame = pd.read_csv(series_csv)
    no_id = tmp_path / "no_id.csv"
    frame.drop(columns="id").to_csv(no_id, index=False)
    status = main(["score", str(model), str(no_id)])
    _assert_one_line_error(status, capsys.readouterr().err, "'id'")
    backwards = tmp_path / "backwards.csv"
    frame.iloc[::-1].to_csv(backwards, index=False)
    status = main(["score", str(model), str(backwards)])
    _assert_one_line_error(status, capsys.readouterr().err, "'t'", "increasing")
    status = main(["evaluate", str(model), str(series_csv), "--method", "elbo"])
    _assert_one_line_error(status, capsys.readouterr().err, "HMM", "ppgen score")


def test_fit_help_mentions_hmm(capsys):
    assert main(["fit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--n-states" in out and "--sequence-col" in out and "--time-col" in out
    assert "ppgen fit series.csv --model hmm --n-states 3 --sequence-col id --time-col t" in out
