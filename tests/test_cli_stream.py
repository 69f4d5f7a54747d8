"""``ppgen fit x.parquet``: the command line streams a Parquet table (issue 20) and reports its
log-likelihood summed chunk by chunk; the saved fit is ``ppgen.fit``'s on the same path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.cli import main

pytest.importorskip("pyarrow")


def _table(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    z = rng.random(n) < 0.5
    x = np.where(z[:, None], rng.normal(0, 1, (n, 2)), rng.normal(3, 0.5, (n, 2)))
    return pd.DataFrame(x, columns=["a", "b"])


def test_cli_fits_a_parquet_table_streamed(tmp_path, capsys):
    df = _table()
    path, out = tmp_path / "t.parquet", tmp_path / "t.ppgen"
    df.to_parquet(path, row_group_size=70)
    args = ["fit", str(path), "--model", "gmm", "--n-components", "2", "--quiet", "-o", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "300 rows (streamed), 2 columns" in text
    got = ppgen.load(out)
    ref = ppgen.fit(ppgen.GaussianMixture(2), str(path))
    for k, v in ref.params.items():
        torch.testing.assert_close(got.params[k], v, rtol=0, atol=1e-12)
    mean = float(np.mean(ref.log_prob(df)))  # the chunked sum equals the in-memory one
    assert f"{mean:.4f}" in text and f"{ref.bic(df):.4f}" in text


def test_cli_parquet_errors_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "x.ppgen")
    gmm = ["--model", "gmm", "--n-components", "2", "-o", out]
    code = main(["fit", str(tmp_path / "none.parquet"), *gmm])
    assert code != 0 and "no such Parquet" in capsys.readouterr().err
    _table().to_parquet(tmp_path / "t.parquet")
    code = main(
        ["fit", str(tmp_path / "t.parquet"), "--model", "hmm", "--n-states", "2", "-o", out]
    )
    assert code != 0 and "CSV file, not Parquet" in capsys.readouterr().err
