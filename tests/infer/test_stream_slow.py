"""Slow (issue 20): a Parquet table of 10^6 rows fitted by streamed EM equals the in-memory fit
to 1e-10, and the streaming process's peak resident memory does not grow with the rows: 10^6
rows cost less than one in-memory copy of the table more than 10^5 rows do."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen

pytest.importorskip("pyarrow")

DIMS = 4
START = {
    "weights": [0.4, 0.6],
    "locs": [[-0.5] * DIMS, [0.5] * DIMS],
    "precision": np.broadcast_to(np.eye(DIMS), (2, DIMS, DIMS)).tolist(),
}

WORKER = textwrap.dedent(
    """
    import json, resource, sys, warnings
    import torch
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    import ppgen
    path, start = sys.argv[1], json.loads(sys.argv[2])
    fit = ppgen.fit(ppgen.GaussianMixture(2), path, init_values=start, max_steps=3,
                    chunk_rows=65536)
    fit.save(path + ".ppgen")
    print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    """
)


def _write(path, rows: int, chunk: int = 65_536) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for first in range(0, rows, chunk):
        n = min(chunk, rows - first)
        rng = np.random.default_rng(first)
        z = rng.random(n) < 0.4
        block = np.where(z[:, None], rng.normal(-1, 1, (n, DIMS)), rng.normal(1.5, 0.8, (n, DIMS)))
        block[rng.random((n, DIMS)) < 0.02] = np.nan
        batch = pa.table({f"x{j}": block[:, j] for j in range(DIMS)})
        writer = writer or pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch, row_group_size=chunk)
    writer.close()


def _stream(path) -> tuple[float, ppgen.Fit]:
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(path), json.dumps(START)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1]), ppgen.load(str(path) + ".ppgen")


@pytest.mark.slow
def test_million_rows_streamed_equals_in_memory_with_flat_memory(tmp_path):
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    _write(small, 100_000)
    _write(large, 1_000_000)
    peak_small, _ = _stream(small)
    peak_large, got = _stream(large)
    table = pd.read_parquet(large)
    one_copy_mb = table.to_numpy().nbytes / 2**20  # 30.5 MB
    ref = ppgen.fit(
        ppgen.GaussianMixture(2), table, schema=got.schema, init_values=START, max_steps=3
    )
    np.testing.assert_allclose(got.losses, ref.losses, rtol=1e-12)
    for k, v in ref.params.items():
        assert torch.all((got.params[k] - v).abs() <= 1e-10 * (1 + v.abs())), k
    assert peak_large - peak_small < one_copy_mb, (peak_small, peak_large)


SVI_WORKER = textwrap.dedent(
    """
    import json, resource, sys, time, warnings
    import torch
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    import ppgen
    start = time.process_time()
    fit = ppgen.fit(ppgen.VAE(2, hidden=(16,)), sys.argv[1], max_epochs=1, batch_size=1024,
                    validation=0.05, chunk_rows=16384)
    print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      fit.info["streamed_rows"], time.process_time() - start]))
    """
)


@pytest.mark.slow
def test_streamed_svi_memory_is_flat_in_rows(tmp_path):
    # Minibatch SVI of a VAE over 10^5 and 10^6 streamed rows (row groups of 65,536): the
    # larger table may not cost one in-memory copy of itself more peak memory than the smaller.
    peaks = {}
    for rows in (100_000, 1_000_000):
        path = tmp_path / f"t{rows}.parquet"
        _write(path, rows)
        out = subprocess.run(
            [sys.executable, "-c", SVI_WORKER, str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        peak, streamed, _ = json.loads(out.stdout.strip().splitlines()[-1])
        assert streamed == rows
        peaks[rows] = peak
    one_copy_mb = 1_000_000 * DIMS * 8 / 2**20  # 30.5 MB
    assert peaks[1_000_000] - peaks[100_000] < one_copy_mb, peaks
