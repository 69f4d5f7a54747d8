"""``ppgen impute --model diffusion``: a tiny diffusion model fills the gaps of a CSV file;
observed cells, dtypes and row order round-trip exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import ppgen
from ppgen.cli import main

torch.set_num_threads(1)


def test_impute_with_a_diffusion_model(tmp_path, capsys):
    data = ppgen.datasets.load("airquality").iloc[:60, :4]
    path = tmp_path / "aq.csv"
    data.to_csv(path, index=False)
    data = pd.read_csv(path)
    out = tmp_path / "imputed.csv"
    args = ["--model", "diffusion", "--n-steps", "5", "--hidden", "8", "-m", "2"]
    assert main(["impute", str(path), *args, "--quiet", "-o", str(out)]) == 0
    assert "Diffusion(5" in capsys.readouterr().out
    long = pd.read_csv(out)
    observed = data.notna().to_numpy()
    assert not observed.all()
    tables = []
    for j in (1, 2):
        table = long[long[".imp"] == j].drop(columns=[".imp", ".id"]).reset_index(drop=True)
        assert table.dtypes.equals(data.dtypes) and not table.isna().to_numpy().any()
        np.testing.assert_array_equal(table.to_numpy()[observed], data.to_numpy()[observed])
        tables.append(table)
    assert not tables[0].equals(tables[1])
