"""Sequence data: the three input forms, padding and masks, decoding, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ppgen.data.sequences import (
    SequenceFormat,
    decode_sequences,
    encode_sequences,
    infer_sequence_schema,
    per_row,
    split_sequences,
)


def _frames(rng):
    return [
        pd.DataFrame({"v": rng.normal(size=n), "g": rng.choice(["a", "b"], n)}) for n in (5, 3, 7)
    ]


def test_list_of_frames_is_padded_and_masked(rng):
    frames = _frames(rng)
    frames[1].loc[1, "v"] = np.nan
    split = split_sequences(frames)
    schema = infer_sequence_schema(split)
    enc = encode_sequences(schema, split)
    assert enc.x.shape == (3, 7, 2) and enc.lengths.tolist() == [5, 3, 7]
    assert enc.present.sum().item() == 15 and enc.n_steps == 15
    assert not enc.mask[0, 5:].any() and not enc.mask[1, 3:].any()
    assert not enc.mask[1, 1, 0] and enc.mask[1, 1, 1]
    # The schema is the one of all rows together.
    rows = pd.concat(frames, ignore_index=True)
    assert schema.columns[0].loc == pytest.approx(rows["v"].mean())
    back = decode_sequences(schema, enc.x, enc.lengths, enc.fmt)
    for got, want in zip(back, frames, strict=True):
        pd.testing.assert_frame_equal(got[want.notna().all(axis=1)], want.dropna())


def test_long_frame_groups_by_id_and_checks_time(rng):
    df = pd.DataFrame(
        {
            "id": ["x", "y", "x", "y", "x", "z", "z"],
            "t": [1, 1, 2, 5, 3, 0, 1],
            "v": np.arange(7.0),
        }
    )
    split = split_sequences(df, id_column="id", time_column="t")
    assert split.ids == ["x", "y", "z"]
    assert [list(t["v"]) for t in split.tables] == [[0.0, 2.0, 4.0], [1.0, 3.0], [5.0, 6.0]]
    schema = infer_sequence_schema(split, standardize=False)
    enc = encode_sequences(schema, split)
    assert schema.names == ("v",)
    # per_row puts per-step values back in the frame's row order.
    values = [enc.x[s, :n, 0].numpy() for s, n in enumerate(enc.lengths.tolist())]
    np.testing.assert_array_equal(per_row(values, enc.fmt, enc), df["v"].to_numpy())
    long = decode_sequences(schema, enc.x, enc.lengths, enc.fmt, ids=enc.ids, times=enc.times)
    assert list(long.columns) == ["id", "t", "v"]
    assert long["t"].tolist() == [1, 2, 3, 1, 5, 0, 1]


def test_single_table_and_dict_forms(rng):
    x = rng.normal(size=(6, 2))
    split = split_sequences(x)
    assert split.fmt.form == "single" and len(split.tables) == 1
    split = split_sequences({"first": x, "second": x[:4]})
    assert split.fmt.form == "dict" and split.ids == ["first", "second"]
    enc = encode_sequences(infer_sequence_schema(split), split)
    assert enc.lengths.tolist() == [6, 4]
    out = decode_sequences(
        infer_sequence_schema(split), enc.x, enc.lengths, SequenceFormat("dict"), ids=enc.ids
    )
    assert list(out) == ["first", "second"] and out["second"].shape == (4, 2)
    t = torch.tensor(x)
    one = split_sequences([t])
    assert encode_sequences(infer_sequence_schema(one), one).x.dtype == torch.float64


def test_bad_input_names_the_sequence_and_column(rng):
    # One-step sequences are accepted (hmmlearn fits lengths=[10, 8, 1]); empty ones are not.
    split = split_sequences({"a": rng.normal(size=(4, 1)), "b": rng.normal(size=(1, 1))})
    infer_sequence_schema(split)
    with pytest.raises(ValueError, match="sequence 1 has 0 steps; every sequence needs at least 1"):
        infer_sequence_schema(split_sequences([rng.normal(size=(4, 1)), np.zeros((0, 1))]))
    df = pd.DataFrame({"id": [1, 1, 1, 2, 2], "t": [0, 2, 1, 0, 1], "v": np.arange(5.0)})
    with pytest.raises(ValueError, match=r"sequence 1: time column 't' is not strictly increasing"):
        split_sequences(df, id_column="id", time_column="t")
    df = pd.DataFrame({"id": [1, 1, 2, 2], "t": [0, 0, 0, 1], "v": np.arange(4.0)})
    with pytest.raises(ValueError, match="sequence 1: time column 't'"):
        split_sequences(df, id_column="id", time_column="t")
    with pytest.raises(ValueError, match="id_column 'nope' is not a column"):
        split_sequences(df, id_column="nope")
    frames = [pd.DataFrame({"k": [1, 2, 3]}), pd.DataFrame({"k": [1, -2, 3]})]
    with pytest.raises(ValueError, match="sequence 1: count column 'k' holds negative"):
        infer_sequence_schema(split_sequences(frames), kinds={"k": "count"})
    split = split_sequences([pd.DataFrame({"g": ["a", "b"]})])
    schema = infer_sequence_schema(split)
    new = split_sequences([pd.DataFrame({"g": ["a", "b"]}), pd.DataFrame({"g": ["a", "c"]})])
    with pytest.raises(
        ValueError, match="sequence 1: unseen category 'c' in categorical column 'g'"
    ):
        encode_sequences(schema, new)
    with pytest.raises(TypeError, match="sequence 0 is a str"):
        split_sequences(["abc"])
    with pytest.raises(ValueError, match="empty"):
        split_sequences([])
    with pytest.raises(ValueError, match="one type"):
        split_sequences([np.zeros((3, 1)), pd.DataFrame({"a": [1.0, 2.0]})])
