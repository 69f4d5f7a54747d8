"""``ppgen impute``: CSV in, completed CSV out; observed cells and dtypes round-trip exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.cli import main

torch.set_num_threads(1)

M = 3


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "airquality.csv"
    ppgen.datasets.load("airquality").to_csv(path, index=False)
    return path


def _run(*args: str) -> int:
    return main(["impute", *map(str, args)])


def test_long_format_round_trips(data_csv, tmp_path, capsys):
    out = tmp_path / "imputed.csv"
    args = ["-m", M, "--method", "map", "--kind", "Month=continuous", "--kind", "Day=continuous"]
    assert _run(data_csv, "--model", "gmm", *args, "-o", out) == 0
    report = capsys.readouterr().out
    assert "44 cells (Ozone 37, Solar.R 7)" in report and "improper" in report
    data = pd.read_csv(data_csv)
    long = pd.read_csv(out)
    assert len(long) == len(data) * (M + 1)
    assert list(long.columns) == [".imp", ".id", *data.columns]
    original = long[long[".imp"] == 0].drop(columns=[".imp", ".id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(original, data)  # the data as read, NaNs included
    observed = data.notna().to_numpy()
    for j in range(1, M + 1):
        table = long[long[".imp"] == j].drop(columns=[".imp", ".id"]).reset_index(drop=True)
        assert list(long.loc[long[".imp"] == j, ".id"]) == list(range(len(data)))
        assert table.dtypes.equals(data.dtypes)  # Month and Day stay int64
        assert not table.isna().to_numpy().any()
        np.testing.assert_array_equal(table.to_numpy()[observed], data.to_numpy()[observed])


def test_wide_format_writes_m_files(data_csv, tmp_path, capsys):
    out = tmp_path / "imputed.csv"
    cols = ["Ozone", "Solar.R", "Wind", "Temp"]
    small = tmp_path / "small.csv"
    pd.read_csv(data_csv)[cols].to_csv(small, index=False)
    args = ["--model", "ppca", "--n-components", "1", "-m", M, "--method", "map", "--seed", "3"]
    assert _run(small, *args, "--format", "wide", "-o", out) == 0
    assert "PPCA" in capsys.readouterr().out
    data = pd.read_csv(small)
    observed = data.notna().to_numpy()
    tables = []
    for j in range(1, M + 1):
        table = pd.read_csv(tmp_path / f"imputed_{j}.csv")
        assert table.dtypes.equals(data.dtypes) and table.shape == data.shape
        np.testing.assert_array_equal(table.to_numpy()[observed], data.to_numpy()[observed])
        assert not table.isna().to_numpy().any()
        tables.append(table)
    assert not tables[0].equals(tables[1])
    assert not out.exists()


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0, 2.0], "b": [1.0, 2.0, 2.5, 4.0, 0.5]})
    empty = tmp_path / "empty_col.csv"
    frame.assign(c=np.nan).to_csv(empty, index=False)
    assert _run(empty, "-m", "2", "--method", "map", "-o", tmp_path / "o.csv") == 2
    err = capsys.readouterr().err
    assert err.startswith("ppgen: error: column 'c' is entirely missing")
    assert err.count("\n") == 1

    text = tmp_path / "text.csv"
    frame.astype({"b": object}).assign(b=["1.0", "?", "2.5", "4.0", "0.5"]).to_csv(
        text, index=False
    )
    assert _run(text, "-m", "2", "--method", "map", "-o", tmp_path / "o.csv") == 2
    assert "column 'b' holds numbers and text ('?')" in capsys.readouterr().err

    assert _run(text, "--model", "ppca", "--covariance-type", "diag", "-o", "o.csv") == 2
    assert "--covariance-type applies to --model gmm only" in capsys.readouterr().err
    assert _run(empty, "-m", "0", "-o", "o.csv") == 2
    assert "positive integer" in capsys.readouterr().err


def test_imputations_keep_the_support_and_print_the_schema(data_csv, tmp_path, capsys):
    # airquality's Ozone and Solar.R are never negative: the default (--support truncate)
    # keeps every imputation >= 0; --support none gives the model's draws, some negative.
    data = pd.read_csv(data_csv)
    kinds = ["--kind", "Month=continuous", "--kind", "Day=continuous"]
    negatives = {}
    for support in ("truncate", "none"):
        out = tmp_path / f"{support}.csv"
        args = ["-m", 5, "--method", "em", "--support", support, *kinds, "-o", out]
        assert _run(data_csv, "--model", "gmm", "--n-components", 1, *args) == 0
        report = capsys.readouterr().out
        assert report.startswith("Schema (6 columns)")
        assert "Ozone" in report.splitlines()[2]  # one row per column, the first is Ozone
        long = pd.read_csv(out)
        imputed = long[long[".imp"] > 0]
        negatives[support] = int((imputed[["Ozone", "Solar.R"]] < 0).to_numpy().sum())
    assert negatives["truncate"] == 0
    assert negatives["none"] > 0
    assert data["Ozone"].min() >= 0
