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


# -- --delta: pattern-mixture sensitivity analysis on the command line ----------------------------


def _long(path: Path) -> list[pd.DataFrame]:
    long = pd.read_csv(path)
    return [
        part.drop(columns=[".imp", ".id"]).reset_index(drop=True)
        for _, part in long.groupby(".imp", sort=True)
    ]


def test_delta_shifts_the_imputed_column_and_redraws_the_rest_of_its_rows(
    data_csv, tmp_path, capsys
):
    data = pd.read_csv(data_csv)
    base = ["--model", "gmm", "--n-components", 1, "-m", M, "--method", "em"]
    base += ["--kind", "Month=continuous", "--kind", "Day=continuous"]
    runs = {
        "mar": [],
        "zero": ["--delta", "Ozone=0"],
        "units": ["--delta", "Ozone=-10"],
        "sd": ["--delta", "Ozone=-0.5", "--delta-scale", "sd"],
    }
    tables, reports = {}, {}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.csv"
        assert _run(data_csv, *base, *extra, "-o", out) == 0
        reports[name] = capsys.readouterr().out
        tables[name] = _long(out)
    # delta = 0 is the MAR imputation, byte for byte.
    assert (tmp_path / "zero.csv").read_bytes() == (tmp_path / "mar.csv").read_bytes()
    assert "delta (MNAR)  Ozone -10\n" in reports["units"]
    assert "delta (MNAR)  Ozone -0.5 sd\n" in reports["sd"]
    assert "delta (MNAR)" not in reports["mar"]
    ozone = data["Ozone"].isna().to_numpy()
    both = ozone & data["Solar.R"].isna().to_numpy()
    sd = data["Ozone"].std()
    assert both.sum() == 2
    for j in range(1, M + 1):
        mar, shifted, scaled = (tables[k][j] for k in ("mar", "units", "sd"))
        np.testing.assert_allclose(shifted["Ozone"][ozone], mar["Ozone"][ozone] - 10, atol=1e-9)
        np.testing.assert_allclose(scaled["Ozone"][ozone], mar["Ozone"][ozone] - 0.5 * sd)
        np.testing.assert_array_equal(shifted["Ozone"][~ozone], data["Ozone"][~ozone])
        # Solar.R missing beside Ozone is drawn again given the shifted Ozone; elsewhere as MAR.
        assert (shifted["Solar.R"][both] != mar["Solar.R"][both]).all()
        pd.testing.assert_series_equal(shifted["Solar.R"][~both], mar["Solar.R"][~both])
        assert (shifted["Solar.R"] >= 0).all()  # the redraw keeps --support truncate


def test_delta_on_levels_and_its_errors(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 60
    group = rng.choice(["a", "b", "c"], n)
    frame = pd.DataFrame({"x": rng.normal(size=n) + (group == "b"), "g": group})
    frame.loc[:5, "g"] = np.nan
    frame.loc[6:8, "x"] = np.nan
    path = tmp_path / "small.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "o.csv"
    base = [path, "--model", "gmm", "--n-components", 1, "-m", 4, "--method", "em", "-o", out]
    # A large log-odds shift for level c: the tilted imputations of g are (almost) all c.
    assert _run(*base, "--delta", "g=c:8", "--delta", "g=a:-1") == 0
    assert "delta (MNAR)  g=c +8 log-odds, g=a -1 log-odds" in capsys.readouterr().out
    imputed = pd.concat(t["g"][:6] for t in _long(out)[1:])
    assert (imputed == "c").mean() > 0.9
    cases = {
        ("--delta", "x"): "--delta expects COLUMN=SHIFT or COLUMN=LEVEL:SHIFT, got 'x'",
        ("--delta", "x=1", "--delta", "x=2"): "--delta gives column 'x' more than one shift",
        ("--delta", "g=a:1", "--delta", "g=1"): "--delta gives column 'g' more than one shift",
        ("--delta", "g=1", "--delta", "g=a:1"): "gives column 'g' both a shift and level shifts",
        ("--delta", "g=a:1", "--delta", "g=a:2"): "--delta gives level 'a' of column 'g' twice",
        ("--delta", "g=:1"): "--delta 'g=:1': the level before ':' is empty",
        ("--delta", "x=-1.5e"): "--delta 'x=-1.5e': the shift '-1.5e' is not a number",
        ("--delta", "x=inf"): "--delta 'x=inf': the shift must be finite",
        ("--delta", "y=1"): "--delta names column 'y', which is not in",
        ("--delta", "g=d:1"): "delta for column 'g' names unknown level(s) ['d']",
        ("--delta", "g=1"): "delta for column 'g' with 3 levels must be a dict level -> log-odds",
    }
    for args, message in cases.items():
        assert _run(*base, *args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("ppgen: error: ") and message in err, (args, err)
        assert err.count("\n") == 1
    assert _run(*base, "--delta-scale", "cm") == 2
    assert "invalid choice: 'cm'" in capsys.readouterr().err
    complete = tmp_path / "complete_x.csv"
    frame.assign(x=frame["x"].fillna(0.0)).to_csv(complete, index=False)
    assert _run(complete, *base[1:], "--delta", "x=1") == 2
    assert "column 'x', which has no missing values" in capsys.readouterr().err
