"""Tables larger than memory: ``ppgen.fit(model, "data.parquet", ...)`` (issue 20).

A Parquet file, a directory of them, a list of files or a ``pyarrow.dataset.Dataset`` is read
in chunks of ``chunk_rows`` rows (``pyarrow``, the ``ppgen[scale]`` extra) and never held
whole: memory is flat in the number of rows. The EM engine (:mod:`ppgen.infer.engines.em`)
sums each chunk's sufficient statistics (:meth:`~ppgen.models.base.GenerativeModel.em_statistics`),
so the fit equals the in-memory fit of the same table from the same start (to rounding, 1e-10).

Rules
-----
* **Schema from a seeded sample.** ``sample_rows`` rows (default 20,000; all of them for a
  smaller table) are drawn without replacement by ``numpy.random.default_rng(seed)`` over the
  table's row numbers (files in the order given, rows in file order) and read; the column kinds,
  categories and standardization are :meth:`ppgen.data.Schema.infer`'s on that sample (or the
  ``schema=`` passed). EM's starting values are made from the same sample.
* **Categories seen later.** A label of a categorical (or binary) column that is not in the
  sample is an error (``ValueError`` naming the column, the label and the chunk's first row),
  unless ``scan_levels=True``: then one more pass reads the categorical columns only and adds
  every label to the schema before fitting.
* EM (``method="em"``) of row models (GaussianMixture, PPCA, FactorAnalysis) and minibatch
  SVI of amortized models (VAE, HierarchicalVAE: ``method="svi"``) stream.
* **Minibatch order** (:meth:`Stream.epoch_order`): every epoch visits the Parquet row groups
  in the order of ``torch.randperm(n_groups)`` and each group's rows in the order of
  ``torch.randperm(rows)``, both from the engine's generator seeded with the fit's seed; the
  rows in that order are cut into minibatches of ``batch_size`` (one may span two groups).
  One row group is in memory at a time, so the row groups should be of a size that fits
  (pyarrow's default is up to 1M rows; write with ``row_group_size=``). ``validation`` is the
  fraction of the seeded *sample* held out for early stopping; those rows are left out of
  the streamed epochs. Given the same minibatches, training equals the in-memory engine's
  exactly (tests/infer/test_stream_svi.py).
* **Distributed** (``distributed=True`` under torchrun): every rank reads the same sample and
  streams only its share of the row groups (:meth:`Source.shard`); EM all-reduces the chunk
  statistics (exact), minibatch SVI cuts each rank's epoch into the run's lockstep steps.
* ``Fit.train`` holds the encoded sample, not the table.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from ppgen.data.schema import Schema

__all__ = ["CHUNK_ROWS", "SAMPLE_ROWS", "Source", "Stream", "is_source", "open_source"]

#: Rows read and encoded at a time.
CHUNK_ROWS = 65_536
#: Rows of the seeded sample the schema and EM's starts are made from.
SAMPLE_ROWS = 20_000


def _pyarrow_dataset():
    try:
        import pyarrow.dataset as ds
    except ImportError:  # pragma: no cover - the extra is installed in the test environment
        raise ImportError(
            "streaming a Parquet table needs pyarrow: pip install 'ppgen[scale]'"
        ) from None
    return ds


def _is_path(value: Any) -> bool:
    return isinstance(value, str | os.PathLike) and (
        str(value).endswith(".parquet") or os.path.isdir(value)
    )


def is_source(data: Any) -> bool:
    """Whether ``data`` is a table to stream: a ``.parquet`` path or a directory, a non-empty
    list or tuple of ``.parquet`` paths, or a ``pyarrow.dataset.Dataset``."""
    if _is_path(data):
        return True
    if isinstance(data, list | tuple) and data and all(_is_path(p) for p in data):
        return True
    return type(data).__module__.startswith("pyarrow") and hasattr(data, "to_batches")


@dataclasses.dataclass
class Source:
    """A streamed table: the ``pyarrow`` dataset, its row count, the chunk size."""

    dataset: Any
    n_rows: int
    chunk_rows: int

    def sample(self, size: int, seed: int) -> pd.DataFrame:
        """The seeded sample of the module's rule, in table order (one pass over the table,
        keeping only the drawn rows)."""
        if self.n_rows == 0:
            raise ValueError("the streamed table has no rows")
        size = min(int(size), self.n_rows)
        rows = np.sort(np.random.default_rng(seed).choice(self.n_rows, size, replace=False))
        self.sample_index = rows  # the sample's rows in the table (minibatch validation)
        import pyarrow as pa

        picked, first = [], 0
        for table in self._tables(None):  # Arrow tables: only the drawn rows become pandas
            lo, hi = np.searchsorted(rows, [first, first + table.num_rows])
            if hi > lo:
                picked.append(table.take(pa.array(rows[lo:hi] - first)))
            first += table.num_rows
        return pa.concat_tables(picked).to_pandas()

    def _groups(self) -> Iterator[Any]:
        """The table's Parquet row groups (whole fragments for other datasets), in order (a
        :meth:`shard`'s own groups only)."""
        if getattr(self, "_only", None) is not None:
            yield from self._only
            return
        for fragment in self.dataset.get_fragments():
            try:
                groups = fragment.split_by_row_group()
            except (AttributeError, NotImplementedError):
                groups = [fragment]
            yield from groups

    def _tables(self, columns: list[str] | None) -> Iterator[Any]:
        """The table one Parquet row group at a time (the dataset's scanner reads ahead and
        holds more, growing with the file), or by the scanner for other datasets."""
        for group in self._groups():
            yield group.to_table(columns=columns)

    def row_groups(self) -> list[tuple[Any, int, int]]:
        """(row group, its first row in the table, its rows) of every row group, from the
        files' metadata (nothing read); one entry per group, so flat in rows per group."""
        if getattr(self, "_row_groups", None) is None:
            out, first = [], 0
            for group in self._groups():
                # A row-group fragment's count_rows() counts its whole file: the metadata's.
                meta = getattr(group, "row_groups", None)
                n = int(meta[0].num_rows) if meta and len(meta) == 1 else int(group.count_rows())
                if n:
                    out.append((group, first, n))
                first += n
            self._row_groups = out
        return self._row_groups

    def frames(self, columns: list[str] | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
        """The table in chunks of at most ``chunk_rows`` rows (row groups are read whole, then
        cut): (first row, DataFrame)."""
        first = 0
        for table in self._tables(columns):
            for batch in table.to_batches(max_chunksize=self.chunk_rows):
                if batch.num_rows:
                    yield first, batch.to_pandas()
                    first += batch.num_rows

    def levels(self, schema: Schema) -> Schema:
        """``schema`` with every label of its categorical and binary columns found in one pass
        over those columns (new labels after the sample's, in order of appearance)."""
        cats = [c.name for c in schema.columns if c.categories is not None]
        if not cats:
            return schema
        seen = {name: list(schema.columns[schema.names.index(name)].categories) for name in cats}
        for _, frame in self.frames(cats):
            for name in cats:
                known = set(seen[name])
                for value in pd.unique(frame[name].dropna()):
                    if value not in known:
                        seen[name].append(value)
                        known.add(value)
        columns = []
        for c in schema.columns:
            if c.categories is None or len(seen[c.name]) == len(c.categories):
                columns.append(c)
                continue
            kind = "categorical" if c.kind == "binary" and len(seen[c.name]) > 2 else c.kind
            columns.append(dataclasses.replace(c, kind=kind, categories=tuple(seen[c.name])))
        return dataclasses.replace(schema, columns=tuple(columns))

    def problem(self, problem: Any, schema: Schema, ctx: Any = None) -> Any:
        """``problem`` (made on the sample) streaming the whole table: ``Problem.stream`` the
        encoded chunks, tolerances per row of the whole table. In a distributed run
        (``ctx``, a :class:`ppgen.infer.distributed.Context`), the stream holds this rank's
        share of the row groups (:meth:`shard`) and ``n_global`` is the table's rows."""
        mine = self if ctx is None else self.shard(ctx.rank, ctx.world_size)
        stream = mine.chunks(schema, problem.x.device, problem.x.dtype)
        changes = {"stream": stream, "n_units": self.n_rows}
        if ctx is not None:
            changes["n_global"] = self.n_rows
        return dataclasses.replace(problem, **changes)

    def shard(self, rank: int, world_size: int) -> Source:
        """Rank ``rank``'s share of the table: the row groups whose first row falls in
        ``[rank N / W, (rank + 1) N / W)`` (whole row groups, in table order; near-equal rows
        per rank when the groups are small against N / W, none for a rank that no group starts
        in). Every rank computes the same split from the files' metadata."""
        groups = self.row_groups()
        n, w = self.n_rows, int(world_size)
        mine = [g for g in groups if rank * n <= g[1] * w < (rank + 1) * n]
        shard = Source(self.dataset, sum(g[2] for g in mine), self.chunk_rows)
        shard._row_groups = mine
        shard._only = [g[0] for g in mine]
        if hasattr(self, "sample_index"):  # the sample is the whole table's
            shard.sample_index = self.sample_index
        return shard

    def chunks(self, schema: Schema, device: Any, dtype: Any) -> Stream:
        """The encoded table as a :class:`Stream` (``Problem.stream``): called, it yields the
        chunks ``(x, mask, {})`` in table order (EM); :meth:`Stream.minibatches` shuffles (the
        minibatch engine). An unseen label raises a ``ValueError`` naming the rows."""
        return Stream(self, schema, device, dtype)


class Stream:
    """A streamed, encoded table: what ``Problem.stream`` holds (see :meth:`Source.chunks`)."""

    def __init__(self, source: Source, schema: Schema, device: Any, dtype: Any) -> None:
        self.source, self.schema, self.device, self.dtype = source, schema, device, dtype

    def _encode(self, frame: pd.DataFrame, where: str) -> tuple[Any, Any]:
        try:
            enc = self.schema.encode(frame, device=self.device, dtype=self.dtype)
        except ValueError as exc:
            raise ValueError(
                f"streamed table, {where}: {exc} (the schema was read from a seeded sample of "
                "rows; pass scan_levels=True to collect every category first, or schema=)"
            ) from None
        return enc.x, enc.mask

    def __call__(self) -> Iterator[tuple[Any, Any, dict]]:
        for first, frame in self.source.frames(list(self.schema.names)):
            x, mask = self._encode(frame, f"rows {first}..{first + len(frame) - 1}")
            yield x, mask, {}

    def epoch_order(self, generator: Any, exclude: np.ndarray | None = None):
        """One epoch's visiting order: ``(row group, its first row, order)`` per row group,
        the groups in the order of ``torch.randperm(n_groups, generator=generator)``, each
        group's rows in the order of ``torch.randperm(rows, generator=generator)`` drawn when
        the group is reached (row numbers within the group), minus the table rows in
        ``exclude`` (sorted). The documented rule of :meth:`minibatches`."""
        import torch

        groups = self.source.row_groups()
        exclude = np.empty(0, dtype=np.int64) if exclude is None else np.asarray(exclude)
        for g in torch.randperm(len(groups), generator=generator).tolist():
            group, first, n = groups[g]
            order = torch.randperm(n, generator=generator).numpy()
            if len(exclude):
                lo, hi = np.searchsorted(exclude, [first, first + n])
                if hi > lo:
                    order = order[~np.isin(order, exclude[lo:hi] - first)]
            yield group, first, order

    def rows(self, exclude: np.ndarray | None = None) -> int:
        """The rows this stream yields per epoch: its row groups' rows minus those in
        ``exclude`` (sorted table rows)."""
        groups = self.source.row_groups()
        n = sum(g[2] for g in groups)
        if exclude is not None and len(exclude):
            for _, first, size in groups:
                lo, hi = np.searchsorted(exclude, [first, first + size])
                n -= int(hi - lo)
        return n

    def minibatches(
        self,
        batch_size: int,
        generator: Any,
        exclude: np.ndarray | None = None,
        empty: tuple[Any, Any] | None = None,
    ):
        """A callable: each call runs one epoch and yields its encoded minibatches ``(x,
        mask)`` of ``batch_size`` rows (the last one of the epoch may be smaller), the rows in
        :meth:`epoch_order` (a minibatch may span two row groups). Called with ``parts`` (a
        distributed run's lockstep steps), it yields exactly that many minibatches instead,
        the epoch's rows cut as ``torch.tensor_split`` cuts (some may be ``empty``, an
        encoded ``(x, mask)`` of no rows). One row group
        is read at a time and encoded ``chunk_rows`` rows at a time: memory follows the row
        group and the chunk, not the table."""
        import pyarrow as pa
        import torch

        names, chunk = list(self.schema.names), self.source.chunk_rows

        def sizes(parts: int | None):
            if parts is None:
                while True:
                    yield batch_size
            n = self.rows(exclude)
            yield from (n // parts + (i < n % parts) for i in range(parts))

        def epoch(parts: int | None = None):
            want = sizes(parts)
            size = next(want, None)
            held_x, held_m = [], []  # rows not yet in a minibatch (fewer than size)
            held = 0
            for group, first, order in self.epoch_order(generator, exclude):
                table = group.to_table(columns=names)
                for start in range(0, len(order), chunk):
                    rows = order[start : start + chunk]
                    x, mask = self._encode(
                        table.take(pa.array(rows)).to_pandas(),
                        f"row group at row {first} ({len(order)} rows)",
                    )
                    held_x.append(x)
                    held_m.append(mask)
                    held += len(rows)
                    if size is None or held < size:
                        continue
                    x, mask, i = torch.cat(held_x), torch.cat(held_m), 0
                    while size is not None and held - i >= size:
                        yield x[i : i + size], mask[i : i + size]
                        i += size
                        size = next(want, None)
                    held_x, held_m, held = [x[i:]], [mask[i:]], held - i
            if parts is None:
                if held:
                    yield torch.cat(held_x), torch.cat(held_m)
                return
            while size is not None:  # this rank's last parts are empty (it holds few rows)
                yield empty
                size = next(want, None)

        return epoch


def open_source(data: Any, chunk_rows: int | None = None) -> Source:
    """The :class:`Source` of ``data`` (see :func:`is_source`)."""
    ds = _pyarrow_dataset()
    if chunk_rows is None:
        chunk_rows = CHUNK_ROWS
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if hasattr(data, "to_batches") and not isinstance(data, list | tuple | str):
        dataset = data
    else:
        paths = [os.fspath(p) for p in data] if isinstance(data, list | tuple) else os.fspath(data)
        missing = [p for p in ([paths] if isinstance(paths, str) else paths)
                   if not os.path.exists(p)]  # fmt: skip
        if missing:
            raise ValueError(f"no such Parquet file or directory: {missing}")
        dataset = ds.dataset(paths, format="parquet")
    return Source(dataset, int(dataset.count_rows()), chunk_rows)


def stream_sample(
    model: Any,
    engine: Any,
    data: Any,
    seed: int,
    options: dict[str, Any],
    *,
    schema: Schema | None,
    kinds: dict[str, str] | None,
    standardize: bool,
) -> tuple[Source, pd.DataFrame, Schema]:
    """For :func:`ppgen.fit`: the :class:`Source` of ``data``, its seeded sample and the
    schema (inferred from the sample, every label added with ``scan_levels``). Pops the
    streaming options ``chunk_rows``, ``sample_rows`` and ``scan_levels`` from ``options``.

    Raises
    ------
    ValueError
        For an engine other than EM, a sequence model, or a bad option value.
    """
    chunk_rows = options.pop("chunk_rows", None)
    sample_rows = options.pop("sample_rows", SAMPLE_ROWS)
    scan_levels = options.pop("scan_levels", False)
    minibatch = engine.name == "svi" and engine.kind == "networks"
    if not (engine.name == "em" or minibatch) or model.layout != "rows":
        raise ValueError(
            "a streamed table (Parquet) is fitted by method='em', or by minibatch SVI "
            "(method='svi' of a VAE or HierarchicalVAE), on a table of rows; got "
            f"method={engine.name!r} for {model.label()}: read the table into memory"
        )
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows < 1:
        raise ValueError(f"sample_rows must be a positive integer, got {sample_rows!r}")
    if not isinstance(scan_levels, bool):
        raise ValueError(f"scan_levels must be True or False, got {scan_levels!r}")
    source = open_source(data, chunk_rows)
    sample = source.sample(sample_rows, seed)
    if schema is None:
        schema = Schema.infer(
            sample, kinds=kinds, standardize=standardize, supported=model.supported_kinds
        )
    if scan_levels:
        schema = source.levels(schema)
    return source, sample, schema
