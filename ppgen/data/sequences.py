"""Sequences of table rows: split, encode (padded, masked) and decode.

Sequence data come in one of three forms:

* a list (or dict) of tables -- DataFrames, arrays or tensors -- one per sequence, rows in time
  order (a dict's keys name the sequences);
* one DataFrame with a sequence-id column and, optionally, a time-order column (``id_column``,
  ``time_column``); rows are grouped by id in order of first appearance and must be sorted by
  time within each sequence;
* one table alone: a single sequence.

:func:`encode_sequences` pads the sequences to the longest: ``x`` (S, T, p), ``mask``
(S, T, p) with padded steps unobserved, and ``lengths`` (S,). The schema is inferred on the rows
of all sequences together (:func:`infer_sequence_schema`), without the id and time columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ppgen.data.schema import Schema

__all__ = [
    "EncodedSequences",
    "SequenceFormat",
    "decode_sequences",
    "encode_sequences",
    "infer_sequence_schema",
    "split_sequences",
]

#: Fewest steps a sequence may have.
MIN_LENGTH = 1


@dataclass(frozen=True)
class SequenceFormat:
    """How sequences were given, so that results come back in the same form.

    ``form`` is ``"list"`` (a list of tables), ``"dict"`` (a dict of tables), ``"long"`` (one
    DataFrame with ``id_column`` and ``time_column``) or ``"single"`` (one table).
    """

    form: str = "list"
    id_column: str | None = None
    time_column: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"form": self.form, "id_column": self.id_column, "time_column": self.time_column}


@dataclass(frozen=True, eq=False)
class EncodedSequences:
    """Sequences encoded and padded to a common length.

    Attributes
    ----------
    x : Tensor, shape (S, T, p)
        Encoded values (0 where missing or padded).
    mask : Tensor of bool, shape (S, T, p)
        True where an entry was observed; padded steps are all False.
    lengths : Tensor of long, shape (S,)
    ids : tuple
        Sequence labels (list positions, dict keys or id-column values).
    index : tuple
        Per sequence, the row index of its input DataFrame (or None).
    times : tuple
        Per sequence, the time-column values (or None).
    fmt : SequenceFormat
    rows : tuple or None
        Long form: per sequence, the positions of its rows in the input DataFrame.
    """

    x: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    ids: tuple
    index: tuple
    times: tuple
    fmt: SequenceFormat
    rows: tuple | None = None

    @property
    def present(self) -> torch.Tensor:
        """(S, T) bool: True at a sequence's real (non-padded) steps."""
        steps = torch.arange(self.x.shape[1], device=self.x.device)
        return steps < self.lengths.to(self.x.device).unsqueeze(-1)

    @property
    def n_steps(self) -> int:
        """Total number of (non-padded) steps."""
        return int(self.lengths.sum())


@dataclass(frozen=True)
class _Split:
    tables: list
    ids: list
    times: list
    fmt: SequenceFormat
    rows: list | None = None


def _is_table(data: Any) -> bool:
    return isinstance(data, (pd.DataFrame, np.ndarray, torch.Tensor))


def split_sequences(
    data: Any, *, id_column: str | None = None, time_column: str | None = None
) -> _Split:
    """Split ``data`` into one table per sequence (see the module docstring for the forms)."""
    if isinstance(data, pd.DataFrame) and (id_column is not None or time_column is not None):
        for what, col in (("id_column", id_column), ("time_column", time_column)):
            if col is not None and col not in data.columns:
                raise ValueError(
                    f"{what} {col!r} is not a column of the table "
                    f"(columns: {', '.join(map(repr, data.columns))})"
                )
        fmt = SequenceFormat("long", id_column, time_column)
        if id_column is None:
            groups = [(0, np.arange(len(data)))]
        else:
            if data[id_column].isna().any():
                raise ValueError(f"id column {id_column!r} has missing values")
            codes, uniques = pd.factorize(data[id_column])
            groups = [(key, np.flatnonzero(codes == i)) for i, key in enumerate(uniques)]
        tables, ids, times, rows = [], [], [], []
        for key, pos in groups:
            key = key.item() if isinstance(key, np.generic) else key
            group = data.iloc[pos]
            rows.append(pos)
            t = None
            if time_column is not None:
                t = group[time_column].to_numpy()
                _check_sorted(key, time_column, t)
            tables.append(group.drop(columns=[c for c in (id_column, time_column) if c]))
            ids.append(key)
            times.append(t)
        return _Split(tables, ids, times, fmt, rows)
    if id_column is not None or time_column is not None:
        raise ValueError("id_column and time_column need one DataFrame holding all sequences")
    if _is_table(data):
        return _Split([data], [0], [None], SequenceFormat("single"))
    if isinstance(data, Mapping):
        tables, ids = list(data.values()), list(data.keys())
        fmt = SequenceFormat("dict")
    elif isinstance(data, (list, tuple)):
        tables, ids = list(data), list(range(len(data)))
        fmt = SequenceFormat("list")
    else:
        raise TypeError(
            "expected sequences as a list or dict of tables (DataFrames, arrays or tensors), "
            f"one DataFrame with id_column/time_column, or one table; got {type(data).__name__}"
        )
    if not tables:
        raise ValueError("no sequences: the list of sequences is empty")
    for key, table in zip(ids, tables, strict=True):
        if not _is_table(table):
            raise TypeError(
                f"sequence {key!r} is a {type(table).__name__}; expected a DataFrame, ndarray "
                "or Tensor"
            )
    kinds = {type(t).__name__ if not isinstance(t, torch.Tensor) else "Tensor" for t in tables}
    if len(kinds) > 1:
        raise ValueError(f"all sequences must be of one type; got {sorted(kinds)}")
    return _Split(tables, ids, [None] * len(tables), fmt)


def _check_sorted(key: Any, column: str, t: np.ndarray) -> None:
    if pd.isna(t).any():
        raise ValueError(f"sequence {key!r}: time column {column!r} has missing values")
    try:
        bad = np.flatnonzero(~(t[1:] > t[:-1]))
    except TypeError as exc:
        raise ValueError(f"sequence {key!r}: time column {column!r} is not orderable") from exc
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"sequence {key!r}: time column {column!r} is not strictly increasing "
            f"({_plain(t[i + 1])!r} follows {_plain(t[i])!r} at row {i + 1}); sort the rows by "
            f"[id, {column!r}] and drop duplicate times"
        )


def _length(table: Any) -> int:
    return int(table.shape[0]) if getattr(table, "ndim", 2) >= 1 else 0


def _check_lengths(split: _Split) -> None:
    for key, table in zip(split.ids, split.tables, strict=True):
        n = _length(table)
        if n < MIN_LENGTH:
            raise ValueError(
                f"sequence {key!r} has {n} step{'s' if n != 1 else ''}; "
                f"every sequence needs at least {MIN_LENGTH}"
            )


def _concat(tables: list) -> Any:
    first = tables[0]
    if isinstance(first, pd.DataFrame):
        return pd.concat(tables, ignore_index=True)
    if isinstance(first, torch.Tensor):
        return torch.cat(list(tables))
    return np.concatenate(tables)


def _locate(split: _Split, fn: Callable[[Any], Any], exc: ValueError) -> ValueError:
    """Re-run ``fn`` per sequence to name the one that fails; else return ``exc``."""
    for key, table in zip(split.ids, split.tables, strict=True):
        try:
            fn(table)
        except ValueError as inner:
            return ValueError(f"sequence {key!r}: {inner}")
    return exc


def infer_sequence_schema(
    split: _Split, *, kinds: dict[str, str] | None = None, standardize: bool = True
) -> Schema:
    """Schema of the rows of all sequences together; errors name the sequence at fault."""
    _check_lengths(split)
    try:
        return Schema.infer(_concat(split.tables), kinds=kinds, standardize=standardize)
    except ValueError as exc:
        raise _locate(
            split, lambda t: Schema.infer(t, kinds=kinds, standardize=standardize), exc
        ) from None


def _concat(tables: list) -> Any:
    """All sequences' rows in one table of the sequences' own type."""
    first = tables[0]
    if isinstance(first, pd.DataFrame):
        return pd.concat(tables, axis=0)
    if isinstance(first, torch.Tensor):
        return torch.cat([torch.as_tensor(t) for t in tables])
    return np.concatenate([np.asarray(t) for t in tables])


def encode_sequences(
    schema: Schema,
    split: _Split,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> EncodedSequences:
    """Encode every sequence with ``schema`` and pad them to the longest."""
    _check_lengths(split)
    lengths = [len(table) for table in split.tables]
    try:
        # One encoding of all rows: per-sequence calls cost a fixed overhead each.
        whole = schema.encode(_concat(split.tables), device=device, dtype=dtype)
    except (ValueError, TypeError):
        whole = None
    if whole is None or whole.x.shape[0] != sum(lengths):
        parts = []
        for key, table in zip(split.ids, split.tables, strict=True):
            try:
                parts.append(schema.encode(table, device=device, dtype=dtype))
            except ValueError as exc:
                raise ValueError(f"sequence {key!r}: {exc}") from None
        xs, masks, indexes = [e.x for e in parts], [e.mask for e in parts], [e.index for e in parts]
    else:
        xs, masks = whole.x.split(lengths), whole.mask.split(lengths)
        bounds = np.cumsum([0, *lengths])
        indexes = [
            None if whole.index is None else whole.index[a:b]
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
    ref = xs[0]
    x = torch.nn.utils.rnn.pad_sequence(list(xs), batch_first=True)
    mask = torch.nn.utils.rnn.pad_sequence(list(masks), batch_first=True)
    return EncodedSequences(
        x=x,
        mask=mask,
        lengths=torch.tensor(lengths, device=ref.device),
        ids=tuple(split.ids),
        index=tuple(indexes),
        times=tuple(split.times),
        fmt=split.fmt,
        rows=None if split.rows is None else tuple(split.rows),
    )


def decode_sequences(
    schema: Schema,
    x: torch.Tensor,
    lengths: torch.Tensor | list[int],
    fmt: SequenceFormat,
    *,
    ids: tuple | list | None = None,
    index: tuple | None = None,
    times: tuple | None = None,
) -> Any:
    """Decode padded sequences (S, T, p) to the form ``fmt`` describes.

    ``"long"``: one DataFrame with the id column (``ids``, default 0..S-1) and time column
    (``times``, default 0..T_s-1) first; ``"dict"``: a dict of tables keyed by ``ids``; ``"list"``
    and ``"single"``: a list of tables.
    """
    lengths = [int(n) for n in lengths]
    ids = list(range(len(lengths))) if ids is None else list(ids)
    parts = []
    for s, n in enumerate(lengths):
        idx = None if index is None else index[s]
        parts.append(schema.decode(x[s, :n], index=idx))
    if fmt.form == "long":
        frames = []
        for s, part in enumerate(parts):
            part = part.copy()
            if fmt.time_column is not None:
                t = None if times is None else times[s]
                part.insert(0, fmt.time_column, np.arange(lengths[s]) if t is None else t)
            if fmt.id_column is not None:
                part.insert(0, fmt.id_column, [ids[s]] * lengths[s])
            frames.append(part)
        return pd.concat(frames) if index is not None else pd.concat(frames, ignore_index=True)
    if fmt.form == "dict":
        return dict(zip(ids, parts, strict=True))
    return parts


def per_row(values: list[np.ndarray], fmt: SequenceFormat, enc: EncodedSequences) -> Any:
    """Per-step results (one array per sequence) in the input's layout.

    ``"long"``: one array aligned with the input DataFrame's rows (its original row order);
    ``"single"``: the one array; ``"dict"``: a dict by id; ``"list"``: the list.
    """
    if fmt.form == "single":
        return values[0]
    if fmt.form == "dict":
        return dict(zip(enc.ids, values, strict=True))
    if fmt.form == "long" and enc.rows is not None:
        stacked = np.concatenate(values)
        out = np.empty_like(stacked)
        out[np.concatenate(enc.rows)] = stacked
        return out
    return values


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds, so messages read 1990, not np.int64(1990)."""
    return value.item() if hasattr(value, "item") else value
