"""Infinite values are refused with one message naming every offending column and its rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen

TABLE = pd.DataFrame(
    {"a": [1.0, np.inf, 3.0, -np.inf], "b": [1.0, 2.0, 3.0, 4.0], "c": [np.inf] * 4},
    index=["w", "x", "y", "z"],
)
ROWS = r"'a' \(rows 'x', 'z'\) and 'c' \(rows 'w', 'x', 'y', 'z'\)"


def test_infer_names_every_column_and_its_rows():
    with pytest.raises(ValueError, match=rf"infinite values in 2 columns: {ROWS}; replace"):
        ppgen.Schema.infer(TABLE)


@pytest.mark.parametrize("convert", [lambda t: t.to_numpy(), lambda t: torch.tensor(t.values)])
def test_arrays_name_positions(convert):
    with pytest.raises(ValueError, match=r"'x0' \(rows 1, 3\) and 'x2' \(rows 0, 1, 2, 3\)"):
        ppgen.Schema.infer(convert(TABLE))


def test_encode_names_every_column_too():
    schema = ppgen.Schema.infer(TABLE.assign(a=1.0, c=2.0))
    with pytest.raises(ValueError, match=rf"infinite values in 2 columns: {ROWS}"):
        schema.encode(TABLE)


def test_many_rows_are_counted_not_listed():
    table = pd.DataFrame({"v": [np.inf] * 8 + [1.0]})
    with pytest.raises(ValueError, match=r"1 column: 'v' \(rows 0, 1, 2, 3, 4 and 3 more\)"):
        ppgen.Schema.infer(table)
