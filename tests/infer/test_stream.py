"""Streamed tables (issue 20): EM on a Parquet table read in chunks equals EM on the same table in
memory to 1e-10; the schema comes from a seeded sample, and a label the sample did not see is a
clear error unless the levels are scanned first."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen

pytest.importorskip("pyarrow")


def _table(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.random(n) < 0.4
    x = np.where(z[:, None], rng.normal(0, 1, (n, 3)), rng.normal(2.5, 0.7, (n, 3)))
    x[rng.random((n, 3)) < 0.1] = np.nan
    df = pd.DataFrame(x * [1, 3, 0.5] + [0, 10, -2], columns=["a", "b", "c"])
    df["g"] = pd.Series(np.where(z, "u", rng.choice(["v", "w"], n)), dtype=object)
    df.loc[rng.random(n) < 0.05, "g"] = None
    df["k"] = rng.poisson(np.where(z, 1.0, 4.0))
    return df


def _close(a: dict, b: dict, tol: float = 1e-10) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.all((a[k] - b[k]).abs() <= tol * (1 + b[k].abs())), k


@pytest.mark.parametrize(
    ("make", "options"),
    [
        (lambda: ppgen.GaussianMixture(2), {}),
        (lambda: ppgen.GaussianMixture(2, covariance_type="VEI"), {}),
        # Accelerated EM (SQUAREM) steps through the same statistics path.
        (lambda: ppgen.GaussianMixture(2, covariance_type="VEI"), {"accelerate": True}),
    ],
    ids=["full", "VEI", "VEI-accelerated"],
)
def test_streamed_em_equals_in_memory(tmp_path, make, options):
    df = _table(160)
    path = tmp_path / "t.parquet"
    df.to_parquet(path, row_group_size=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ppgen.fit(make(), df, seed=3, max_steps=25, **options)
        got = ppgen.fit(make(), str(path), seed=3, max_steps=25, chunk_rows=37, **options)
    # The sample is the whole (small) table in order: the same starts, the same iterates.
    # (Parquet reads text back as pandas' string dtype: only the recorded dtype differs.)
    assert [replace(c, dtype="") for c in got.schema.columns] == [
        replace(c, dtype="") for c in ref.schema.columns
    ]
    np.testing.assert_allclose(got.losses, ref.losses, rtol=1e-12, atol=1e-9)
    _close(got.params, ref.params)


@pytest.mark.parametrize("structure", ["VVV", "VVI"])
def test_streamed_em_on_complete_rows_runs_the_fused_kernel(tmp_path, monkeypatch, structure):
    # Complete continuous chunks: each chunk's statistics come from GaussianMixture's fused
    # kernel (the in-memory fit's iterations too), summed over chunks, then the torch M-step.
    from ppgen.models import _gmm_kernel

    df = _table(160)[["a", "b", "c"]].fillna(0.5)
    path = tmp_path / "t.parquet"
    df.to_parquet(path, row_group_size=50)
    rows_seen = []
    statistics = _gmm_kernel.statistics

    def counted(x, *args):
        rows_seen.append(x.shape[0])
        return statistics(x, *args)

    monkeypatch.setattr(_gmm_kernel, "statistics", counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make = lambda: ppgen.GaussianMixture(2, structure)  # noqa: E731
        ref = ppgen.fit(make(), df, seed=3, max_steps=25)
        rows_seen.clear()
        got = ppgen.fit(make(), str(path), seed=3, max_steps=25, chunk_rows=37)
    assert 37 in rows_seen  # the chunks went through the kernel
    np.testing.assert_allclose(got.losses, ref.losses, rtol=1e-12, atol=1e-9)
    _close(got.params, ref.params)


def test_streamed_ppca_from_files_equals_in_memory(tmp_path):
    df = _table()[["a", "b", "c"]]
    paths = [tmp_path / "p0.parquet", tmp_path / "p1.parquet"]
    df.iloc[:90].to_parquet(paths[0])
    df.iloc[90:].to_parquet(paths[1])
    start = {"W": [[1.0], [0.5], [-0.2]], "loc": [0.0, 10.0, -2.0], "noise": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ppgen.fit(ppgen.PPCA(1), df, init_values=start, max_steps=30)
        got = ppgen.fit(ppgen.PPCA(1), paths, init_values=start, max_steps=30, chunk_rows=64)
    np.testing.assert_allclose(got.losses, ref.losses, rtol=1e-12)
    _close(got.params, ref.params)
    assert got.info["streamed_rows"] == len(df) and "streamed_rows" not in ref.info


def test_sample_rule_and_unseen_labels(tmp_path):
    df = _table(300)
    # The documented rule: the sample is these rows; a label only a row outside it has.
    rows = np.sort(np.random.default_rng(5).choice(300, 100, replace=False))
    late = max(set(range(300)) - set(rows.tolist()))
    df.loc[late, "g"] = "late"
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    first = late // 128 * 128
    with pytest.raises(ValueError, match=rf"rows {first}\.\.{min(first + 127, 299)}.*'g'.*scan_"):
        ppgen.fit(ppgen.GaussianMixture(2), path, seed=5, sample_rows=100, chunk_rows=128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ppgen.fit(
            ppgen.GaussianMixture(2), path, seed=5, sample_rows=100, scan_levels=True, max_steps=5
        )
    g = fit.schema.columns[fit.schema.names.index("g")]
    assert g.categories[-1] == "late" and fit.params["probs[g]"].shape == (2, 4)
    # The schema's standardization is the sample's: the rows the rule names.
    a = fit.schema.columns[0]
    assert a.loc == pytest.approx(df["a"].iloc[rows].mean())


def test_stream_refuses_other_methods(tmp_path):
    path = tmp_path / "t.parquet"
    _table()[["a", "b"]].to_parquet(path)
    with pytest.raises(ValueError, match="method='em'"):
        ppgen.fit(ppgen.GaussianMixture(2), path, method="map")
    with pytest.raises(ValueError, match="chunk_rows"):
        ppgen.fit(ppgen.GaussianMixture(2), path, chunk_rows=0)
    with pytest.raises(ValueError, match="no such Parquet"):
        ppgen.fit(ppgen.GaussianMixture(2), str(tmp_path / "missing.parquet"))
