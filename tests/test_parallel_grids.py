"""Parallel grids (issue 20): ``select`` fanned out with joblib equals the serial run exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen._parallel import parallel_map, resolve_map

GRID = {"structure": ["EII", "VVV"], "K": [2]}


def _table() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(size=(40, 2)), rng.normal(3.0, 1.0, size=(40, 2))])


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.table, b.table, rtol=0, atol=0)
    assert a.picks == b.picks


@pytest.fixture(scope="module")
def serial():
    torch.set_num_threads(1)
    return ppgen.select("gmm", _table(), grid=GRID, criteria=("bic", "heldout"), n_boot=1)


def test_threads_equal_serial(serial):
    # The seam and the ordering, cheaply: joblib's threading backend.
    got = ppgen.select(
        "gmm", _table(), grid=GRID, criteria=("bic", "heldout"), n_boot=1, n_jobs=2,
        backend="threading",
    )  # fmt: skip
    _same(got, serial)
    pd.testing.assert_frame_equal(got.bootstrap, serial.bootstrap)


@pytest.mark.slow
def test_processes_equal_serial(serial):
    got = ppgen.select("gmm", _table(), grid=GRID, criteria=("bic", "heldout"), n_boot=1, n_jobs=2)
    _same(got, serial)
    pd.testing.assert_frame_equal(got.bootstrap, serial.bootstrap)


def test_options_are_checked():
    with pytest.raises(ValueError, match="n_jobs must be"):
        parallel_map(0)
    with pytest.raises(ValueError, match="not both"):
        resolve_map(lambda f, j: list(map(f, j)), 2)
    assert resolve_map(map, None) is map
