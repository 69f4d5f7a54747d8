"""Streamed minibatch SVI (issue 20): ``ppgen.fit(VAE(...), "x.parquet")`` reads one row group at
a time in a seeded shuffled order per epoch. Given the same minibatches, it trains exactly as the
in-memory engine does on the same table; the held-out rows never enter the training stream."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.infer.engines import minibatch
from ppgen.infer.stream import open_source

pytest.importorskip("pyarrow")
# Three epochs do not converge; that is not what these tests look at.
pytestmark = pytest.mark.filterwarnings("ignore::ppgen.ConvergenceWarning")

OPTIONS = dict(max_epochs=3, batch_size=40, validation=0.1, seed=3, patience=50)


def _table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    x = z @ rng.normal(size=(2, 4)) + 0.3 * rng.normal(size=(n, 4))
    x[rng.random((n, 4)) < 0.05] = np.nan
    return pd.DataFrame(x, columns=list("abcd"))


def _files(tmp_path, df: pd.DataFrame) -> list:
    """Two files of row groups of 70 rows (the last ones shorter)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = [tmp_path / "part0.parquet", tmp_path / "part1.parquet"]
    cut = 170
    for path, part in zip(paths, [df.iloc[:cut], df.iloc[cut:]], strict=True):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), path, row_group_size=70)
    return paths


def _weights(fit) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in fit.model.parameters()])


def test_streamed_svi_equals_in_memory_svi_on_the_same_minibatches(tmp_path, monkeypatch):
    df = _table()
    paths = _files(tmp_path, df)
    streamed = ppgen.fit(ppgen.VAE(2, hidden=(8,)), paths, chunk_rows=32, **OPTIONS)
    assert streamed.info["streamed_rows"] == len(df)
    assert len(open_source(paths).row_groups()) == 5  # 70+70+30 | 70+60: batches span groups
    # The in-memory engine on the whole table, its minibatches made by the stream's documented
    # order (Stream.epoch_order) from the in-memory rows. The table is smaller than the seeded
    # sample, so the sample is the table and both runs build and split alike.
    stream = open_source(paths).chunks(streamed.schema, "cpu", torch.float64)
    original = minibatch._Trainer.run
    seen: list[np.ndarray] = []

    def run(self, x, mask, train_rows, val_rows, *, generator, batch_size, epochs, **kwargs):
        assert epochs is None  # in memory
        held_out = np.sort(val_rows.numpy())

        def epoch():
            order = stream.epoch_order(generator, held_out)
            rows = np.concatenate([first + o for _, first, o in order])
            seen.append(rows)
            for i in range(0, len(rows), batch_size):
                yield x[rows[i : i + batch_size]], mask[rows[i : i + batch_size]]

        return original(
            self, x, mask, len(train_rows), val_rows, generator=generator,
            batch_size=batch_size, epochs=epoch, **kwargs,
        )  # fmt: skip

    monkeypatch.setattr(minibatch._Trainer, "run", run)
    memory = ppgen.fit(ppgen.VAE(2, hidden=(8,)), df, schema=streamed.schema, **OPTIONS)
    assert torch.equal(_weights(streamed), _weights(memory))
    np.testing.assert_array_equal(streamed.losses, memory.losses)
    assert streamed.info["validation_losses"] == memory.info["validation_losses"]
    # Each epoch visits every training row once, in a new order, and no held-out row.
    n_val = streamed.info["n_validation"]
    assert n_val == 30 and len(seen) == 3
    held = set(range(len(df))) - set(seen[0].tolist())
    assert len(held) == n_val and all(sorted(s) == sorted(seen[0]) for s in seen)
    assert not np.array_equal(seen[0], seen[1])


def test_streamed_svi_is_seeded_and_takes_the_sample_rule(tmp_path):
    df = _table(260, seed=1)
    paths = _files(tmp_path, df)
    a = ppgen.fit(ppgen.VAE(2, hidden=(8,)), paths, chunk_rows=50, sample_rows=100, **OPTIONS)
    b = ppgen.fit(ppgen.VAE(2, hidden=(8,)), paths, chunk_rows=50, sample_rows=100, **OPTIONS)
    assert torch.equal(_weights(a), _weights(b))
    # Validation rows are 10 % of the 100-row sample; the stream trains on the other 250.
    assert a.info["n_validation"] == 10 and a.info["streamed_rows"] == 260
    assert len(a.train.x) == 100  # Fit.train is the sample


def test_stream_names_the_engines_it_takes(tmp_path):
    paths = _files(tmp_path, _table())
    with pytest.raises(ValueError, match="method='em', or by minibatch SVI"):
        ppgen.fit(ppgen.GaussianMixture(2), paths, method="map")


def test_a_ranks_lockstep_parts_cover_its_row_groups_once(tmp_path):
    # Distributed, each rank streams its share of the row groups (Source.shard) cut into the
    # run's lockstep number of parts; the parts hold the shard's rows in Stream.epoch_order,
    # minus the held-out rows, and a rank with too few rows gets empty parts at the end.
    df = _table()
    paths = _files(tmp_path, df)
    fit = ppgen.fit(ppgen.VAE(2, hidden=(8,)), paths, max_epochs=1)
    enc = fit.schema.encode(df, dtype=torch.float64)
    exclude = np.array([5, 150, 171, 299])
    source = open_source(paths)
    shards = [source.shard(r, 2) for r in range(2)]
    assert [s.n_rows for s in shards] == [170, 130]  # groups start at 0, 70, 140 | 170, 240
    stream = shards[1].chunks(fit.schema, "cpu", torch.float64)
    assert stream.rows(exclude) == 128
    empty = (enc.x[:0], enc.mask[:0])
    for parts in (5, 200):
        batches = list(
            stream.minibatches(64, torch.Generator().manual_seed(7), exclude, empty)(parts)
        )
        assert len(batches) == parts
        assert [len(b[0]) for b in batches] == [len(p) for p in np.array_split(range(128), parts)]
        order = stream.epoch_order(torch.Generator().manual_seed(7), exclude)
        rows = np.concatenate([first + o for _, first, o in order])
        assert sorted(rows) == sorted(set(range(170, 300)) - {171, 299})
        got = torch.cat([b[0] for b in batches])
        assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(enc.x[rows]))
