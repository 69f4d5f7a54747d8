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
    # Every candidate fitted (an all-NA table would compare equal and prove nothing).
    assert a.table["loglik"].notna().all()
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


# -- bootstrap imputation refits and compare rows ------------------------------------------------
def _missing() -> pd.DataFrame:
    x = _table().copy()
    x[np.random.default_rng(1).random(x.shape) < 0.15] = np.nan
    return pd.DataFrame(x, columns=["a", "b"])


def _imputer(**kw) -> ppgen.Imputer:
    return ppgen.Imputer(
        "gmm", n_imputations=3, method="em", proper="bootstrap", seed=4,
        fit_options={"n_init": 1, "max_steps": 30}, **kw,
    )  # fmt: skip


def _same_refits(a: ppgen.Imputer, b: ppgen.Imputer) -> None:
    assert len(a.bootstrap_fits_) == len(b.bootstrap_fits_) == 3
    for fa, fb in zip(a.bootstrap_fits_, b.bootstrap_fits_, strict=True):
        for k, v in fa.params.items():
            assert torch.equal(v, fb.params[k]), k
    for ta, tb in zip(a.transform(_missing()), b.transform(_missing()), strict=True):
        pd.testing.assert_frame_equal(ta, tb, rtol=0, atol=0)


@pytest.fixture(scope="module")
def serial_imputer():
    torch.set_num_threads(1)
    return _imputer().fit(_missing())


def test_bootstrap_refits_under_joblib_threads_equal_serial(serial_imputer):
    import joblib

    # n_jobs takes joblib's default backend; threads here, processes in the slow test.
    with joblib.parallel_config(backend="threading"):
        got = _imputer(n_jobs=2).fit(_missing())
    _same_refits(got, serial_imputer)
    assert "n_jobs=2" in repr(got) and got.get_params()["n_jobs"] == 2


@pytest.mark.slow
def test_bootstrap_refits_in_processes_equal_serial(serial_imputer):
    _same_refits(_imputer(n_jobs=2).fit(_missing()), serial_imputer)


def _compare(**kw):
    data = pd.DataFrame(_table(), columns=["a", "b"])
    return ppgen.compare(data, ["gmm", "independent"], seed=2, budget_s=None, **kw)


def _same_rows(a, b) -> None:
    timings = ["train_s", "sample_s_per_1k"]  # wall-clock seconds differ
    pd.testing.assert_frame_equal(
        a.table.drop(columns=timings), b.table.drop(columns=timings), rtol=0, atol=0
    )
    assert a.samples.keys() == b.samples.keys()
    for k in a.samples:
        pd.testing.assert_frame_equal(a.samples[k], b.samples[k], rtol=0, atol=0)


@pytest.mark.slow
def test_compare_rows_fanned_out_equal_serial():
    serial = _compare()
    _same_rows(_compare(n_jobs=2), serial)  # loky processes
    _same_rows(_compare(n_jobs=2, backend="threading"), serial)
