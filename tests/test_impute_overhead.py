"""Fit.impute's numpy restore of observed entries gives the general pandas path's tables, bit for
bit (values, dtypes, index), on plain float columns and on every other kind beside them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen._utils import seeded

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _reference(fit, data, m, seed):
    """The tables as Fit.impute built them before the numpy path: decode, then a pandas
    ``where`` per column (``_restore_observed`` with nothing skipped)."""
    enc = fit.encode(data)
    out = []
    with seeded(seed, fit.device), torch.no_grad():
        for _ in range(m):
            x = fit.model.impute(enc.x, enc.mask, fit.params)
            completed = fit.schema.decode(x, index=enc.index)
            out.append(fit._restore_observed(data, completed, enc))
    return out


def _mixed(n=120, seed=1):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n).astype(np.float32),
            "b": pd.array(rng.integers(0, 50, n), dtype="Int64"),
            "c": pd.Categorical(rng.choice(["x", "y", "z"], n)),
            "d": rng.choice(["p", "q"], n).astype(object),
            "e": rng.normal(size=n) * 3 + 10,
            "f": rng.integers(0, 5, n).astype(float),
            "g": rng.normal(size=n),
        },
        # Duplicate labels: the numpy path must not align on the index.
        index=[f"r{i // 2}" for i in range(n)],
    )
    for name in frame.columns:
        frame.loc[rng.random(n) < 0.2, name] = None if name in ("c", "d") else np.nan
    frame["b"] = frame["b"].astype("Int64")
    frame["g"] = frame["g"].to_numpy()  # stays complete: observed everywhere
    return frame


def _assert_same(tables, reference):
    assert len(tables) == len(reference)
    for got, want in zip(tables, reference, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert got.index.equals(want.index)
        for name in want.columns:
            assert got[name].dtype == want[name].dtype
            g, w = got[name].to_numpy(), want[name].to_numpy()
            if w.dtype.kind == "f":
                assert np.array_equal(
                    g.view(np.uint64 if w.itemsize == 8 else np.uint32),
                    w.view(np.uint64 if w.itemsize == 8 else np.uint32),
                )


def test_mixed_table_is_bit_for_bit_the_pandas_path():
    torch.set_num_threads(1)
    data = _mixed()
    fit = ppgen.fit(ppgen.GaussianMixture(2), data, method="em", seed=0)
    tables = fit.impute(data, 4, seed=5)
    _assert_same(tables, _reference(fit, data, 4, 5))
    # the numpy path was taken for the plain float columns and only those
    taken = fit._numpy_given(data)
    assert sorted(fit.schema.names[j] for j in taken) == ["a", "e", "f", "g"]
    # observed values unchanged, missing ones filled
    for table in tables:
        observed = data.notna()
        for name in data.columns:
            assert (table[name][observed[name]] == data[name][observed[name]]).all()
            assert table[name].notna().all()


def test_float_table_in_another_column_order_is_the_pandas_path():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    full = pd.DataFrame(rng.normal(size=(80, 5)) @ rng.normal(size=(5, 5)), columns=list("vwxyz"))
    data = full.mask(rng.random(full.shape) < 0.25)
    fit = ppgen.fit(ppgen.GaussianMixture(2), data, method="em", seed=0)
    shuffled = data[list("zyxwv")]
    _assert_same(fit.impute(shuffled, 3, seed=1), _reference(fit, shuffled, 3, 1))
    _assert_same(fit.impute(data, 3, seed=1), _reference(fit, data, 3, 1))
