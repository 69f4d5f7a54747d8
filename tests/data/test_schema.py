"""Tests for ppgen.data.schema: kind inference, encoding, decoding, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from ppgen.data import KINDS, Column, Schema, load

N = 12


def mixed_frame() -> pd.DataFrame:
    """One column per supported dtype; every kind appears at least once."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "f64": rng.normal(10.0, 3.0, N),
            "f32": rng.normal(size=N).astype(np.float32),
            "count": rng.poisson(3.0, N),
            "nullable": pd.array(rng.poisson(2.0, N), dtype="Int64"),
            "flag01": np.tile([0, 1], N // 2),
            "flag": np.tile([True, False, False], N // 3),
            # "mid" is never used and the categories are not sorted: both must survive.
            "cat": pd.Categorical(
                rng.choice(["lo", "hi"], N).tolist(), categories=["lo", "mid", "hi"]
            ),
            "ordered": pd.Categorical(
                rng.choice(["S", "M", "L"], N).tolist(), categories=["S", "M", "L"], ordered=True
            ),
            "obj": np.array(rng.choice(["a", "b", "c"], N).tolist(), dtype=object),
            "text": pd.array(rng.choice(["x", "y"], N).tolist(), dtype="str"),
        },
        index=pd.Index(np.arange(100, 100 + N), name="id"),
    )


MIXED_KINDS = {
    "f64": "continuous",
    "f32": "continuous",
    "count": "count",
    "nullable": "count",
    "flag01": "binary",
    "flag": "binary",
    "cat": "categorical",
    "ordered": "categorical",
    "obj": "categorical",
    "text": "categorical",
}


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load("penguins")


def round_trip(schema: Schema, df: pd.DataFrame) -> pd.DataFrame:
    enc = schema.encode(df)
    return schema.decode(enc.x, index=enc.index)


def assert_same_frame(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    # rtol only loosens float columns; labels, counts and dtypes must match exactly.
    pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=1e-12, atol=0)
    for name in expected.columns:
        assert actual[name].dtype == expected[name].dtype, name


# -- round trips --------------------------------------------------------------


def test_round_trip_penguins(penguins: pd.DataFrame) -> None:
    df = penguins.dropna()
    schema = Schema.infer(df)
    assert schema.kinds == (
        "categorical",
        "categorical",
        "continuous",
        "continuous",
        "continuous",
        "continuous",
        "categorical",
        "categorical",  # year 2007-2009: ordinal by rule 4 (issue 12), no longer a count
    )
    assert schema.columns[7].label == "ordinal"
    assert schema.columns[0].categories == ("Adelie", "Chinstrap", "Gentoo")
    assert_same_frame(round_trip(schema, df), df)


def test_round_trip_every_dtype() -> None:
    df = mixed_frame()
    schema = Schema.infer(df)
    assert dict(zip(schema.names, schema.kinds, strict=True)) == MIXED_KINDS
    out = round_trip(schema, df)
    assert_same_frame(out, df)
    assert list(out["cat"].cat.categories) == ["lo", "mid", "hi"]
    assert out["ordered"].cat.ordered
    assert out["f32"].equals(df["f32"])  # float32 survives exactly, not just approximately


def test_decode_without_index_uses_range_index() -> None:
    df = mixed_frame()
    schema = Schema.infer(df)
    out = schema.decode(schema.encode(df).x)
    assert out.index.equals(pd.RangeIndex(N))
    assert_same_frame(out, df.reset_index(drop=True))


def test_decode_keeps_duplicate_index_labels() -> None:
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=["r", "r", "s"])
    schema = Schema.infer(df)
    assert_same_frame(round_trip(schema, df), df)


def test_integer_column_treated_as_continuous_decodes_to_float64() -> None:
    df = pd.DataFrame({"temp": np.array([-3, 0, 4, 9], dtype=np.int64), "n": [1, 2, 3, 4]})
    schema = Schema.infer(df, kinds={"n": "continuous"})
    assert schema.kinds == ("continuous", "continuous")
    out = round_trip(schema, df)
    assert (out.dtypes == "float64").all()
    np.testing.assert_allclose(out.to_numpy(), df.to_numpy(), rtol=1e-12)


def test_decode_rounds_and_clips_codes_and_counts() -> None:
    df = pd.DataFrame(
        {"n": [0, 3, 5], "g": pd.Categorical(["a", "b", "c"]), "b": [True, False, True]}
    )
    schema = Schema.infer(df)
    x = torch.tensor([[2.6, 7.4, 0.7], [-2.3, -3.0, -0.2], [0.4, 1.4, 9.0]], dtype=torch.float64)
    out = schema.decode(x)
    assert out["n"].tolist() == [3, 0, 0]
    assert out["g"].tolist() == ["c", "a", "b"]
    assert out["b"].tolist() == [True, False, True]
    assert out.dtypes.tolist() == df.dtypes.tolist()


def test_decode_rejects_non_finite_and_wrong_shape() -> None:
    schema = Schema.infer(pd.DataFrame({"a": [1.0, 2.0], "g": ["u", "v"]}))
    with pytest.raises(ValueError, match="'g'"):
        schema.decode(torch.tensor([[0.0, math.nan]]))
    with pytest.raises(ValueError, match="x has 3 columns; the schema has 2"):
        schema.decode(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="index"):
        schema.decode(torch.zeros(3, 2), index=[1, 2])


# -- kind inference -------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kind", "categories"),
    [
        (pd.Series([1.5, 2.0, np.nan]), "continuous", None),
        (pd.Series([1.5, 2.0], dtype=np.float32), "continuous", None),
        (pd.Series([0, 1, 1]), "binary", (0, 1)),
        (pd.Series([0, 0, 0]), "binary", (0, 1)),
        (pd.Series([0, 2, 5]), "count", None),
        (pd.Series([-1, 2, 5]), "continuous", None),
        (pd.Series([0, 1, None], dtype="Int64"), "binary", (0, 1)),
        # max >= 3 min: a count by rule 3 (3 and 7 would be "away from 0": continuous).
        (pd.Series([2, None, 7], dtype="Int64"), "count", None),
        (pd.Series([True, False]), "binary", (False, True)),
        (pd.Series([True, None], dtype="boolean"), "binary", (False, True)),
        (
            pd.Series(pd.Categorical(["b", "a"], categories=["b", "a", "c"])),
            "categorical",
            ("b", "a", "c"),
        ),
        (pd.Series(["b", "a", None], dtype=object), "categorical", ("a", "b")),
        (pd.Series(["y", "x", "y"], dtype="str"), "categorical", ("x", "y")),
    ],
)
def test_kind_inference(values: pd.Series, kind: str, categories: tuple | None) -> None:
    column = Schema.infer(values.to_frame("v")).columns[0]
    assert column.kind == kind
    assert column.categories == categories
    assert column.dtype == str(values.dtype)


@pytest.mark.parametrize(
    ("values", "kind", "categories"),
    [
        (pd.Series([2009, 2007, 2008, 2007]), "categorical", (2007, 2008, 2009)),
        (pd.Series([2.0, 0.0, 4.0]), "count", None),
        (pd.Series([2.5, 0.5, 2.5]), "categorical", (0.5, 2.5)),
        (pd.Series(pd.Categorical(["f", "m"], categories=["m", "f"])), "binary", ("m", "f")),
        (pd.Series(["no", "yes", "no"], dtype=object), "binary", ("no", "yes")),
        (pd.Series([1, 2, 3]), "continuous", None),
        (pd.Series(["1.5", "2", None], dtype=object), "continuous", None),
    ],
)
def test_kind_overrides(values: pd.Series, kind: str, categories: tuple | None) -> None:
    df = values.to_frame("v")
    schema = Schema.infer(df, kinds={"v": kind})
    assert schema.columns[0].kind == kind
    assert schema.columns[0].categories == categories
    assert schema.encode(df).mask.sum().item() == values.notna().sum()


def test_override_decodes_to_original_labels() -> None:
    df = pd.DataFrame({"year": [2009, 2007, 2008], "size": [2.5, 0.5, 2.5]})
    schema = Schema.infer(df, kinds={"year": "categorical", "size": "categorical"})
    assert schema.encode(df).x[:, 0].tolist() == [2.0, 0.0, 1.0]
    assert_same_frame(round_trip(schema, df), df)


def test_array_and_tensor_columns_are_continuous() -> None:
    data = np.array([[0, 1], [1, 5], [1, 2]])
    for table in (data, torch.from_numpy(data)):
        schema = Schema.infer(table)
        assert schema.names == ("x0", "x1")
        assert schema.kinds == ("continuous", "continuous")


# -- standardization and Jacobian ---------------------------------------------


def test_standardization_on_observed_entries(penguins: pd.DataFrame) -> None:
    schema = Schema.infer(penguins)
    enc = schema.encode(penguins)
    for j in schema.positions("continuous"):
        z = enc.x[enc.mask[:, j], j]
        assert z.mean().item() == pytest.approx(0.0, abs=1e-12)
        assert z.std(unbiased=False).item() == pytest.approx(1.0, rel=1e-12)
        column = schema.columns[j]
        assert column.loc == pytest.approx(penguins[column.name].mean(), rel=1e-12)
        assert column.scale == pytest.approx(penguins[column.name].std(ddof=0), rel=1e-12)


def test_no_standardization_keeps_raw_values() -> None:
    df = pd.DataFrame({"a": [1.0, 2.0, 4.0]})
    schema = Schema.infer(df, standardize=False)
    assert (schema.columns[0].loc, schema.columns[0].scale) == (0.0, 1.0)
    assert schema.encode(df).x[:, 0].tolist() == [1.0, 2.0, 4.0]


def test_constant_column_gets_unit_scale() -> None:
    df = pd.DataFrame({"c": [3.0, 3.0, np.nan]})
    schema = Schema.infer(df)
    assert (schema.columns[0].loc, schema.columns[0].scale) == (3.0, 1.0)
    assert schema.encode(df).x[:, 0].tolist() == [0.0, 0.0, 0.0]
    assert_same_frame(round_trip(schema, df.dropna()), df.dropna())


def test_log_abs_det_jacobian_by_hand(penguins: pd.DataFrame) -> None:
    schema = Schema.infer(penguins)
    enc = schema.encode(penguins)
    ladj = schema.log_abs_det_jacobian(enc.mask)
    continuous = penguins.select_dtypes("float64")
    # Independent computation from pandas: -sum of log sd over each row's observed measurements.
    expected = -(continuous.notna() * np.log(continuous.std(ddof=0))).sum(axis=1)
    assert ladj.shape == (len(penguins),)
    np.testing.assert_allclose(ladj.numpy(), expected.to_numpy(), rtol=1e-12)
    assert ladj[3].item() == 0.0  # row 3 has no measurements
    assert ladj.dtype == torch.float64
    assert schema.log_abs_det_jacobian(enc.mask, dtype=torch.float32).dtype == torch.float32


def test_jacobian_turns_encoded_density_into_original_density() -> None:
    df = load("faithful")[["waiting"]]
    schema = Schema.infer(df)
    enc = schema.encode(df)
    loc, scale = schema.columns[0].loc, schema.columns[0].scale
    mu, sigma = 0.3, 1.7  # a Normal on the encoded scale
    normal = torch.distributions.Normal(*torch.tensor([mu, sigma], dtype=torch.float64))
    log_p = normal.log_prob(enc.x[:, 0]) + schema.log_abs_det_jacobian(enc.mask)
    expected = stats.norm(loc + mu * scale, sigma * scale).logpdf(df["waiting"])
    np.testing.assert_allclose(log_p.numpy(), expected, rtol=1e-12)


# -- missing values -------------------------------------------------------------


def test_every_missing_marker_is_masked() -> None:
    df = pd.DataFrame(
        {
            "f": [1.0, np.nan, 3.0, 4.0],
            "i": pd.array([1, pd.NA, 3, 4], dtype="Int64"),
            "o": pd.Series(["a", None, pd.NaT, "b"], dtype=object),
            "s": pd.Series(["a", pd.NA, "b", "b"], dtype="string"),
            "c": pd.Categorical(["u", np.nan, "v", "u"]),
            "b": pd.array([True, False, pd.NA, True], dtype="boolean"),
        }
    )
    enc = Schema.infer(df).encode(df)
    expected = ~df.isna().to_numpy()
    assert expected.sum() == 24 - 7  # the frame really has 7 missing entries
    assert torch.equal(enc.mask, torch.from_numpy(expected))
    assert (enc.x[~enc.mask] == 0).all()


def test_penguins_missing_values(penguins: pd.DataFrame) -> None:
    enc = Schema.infer(penguins).encode(penguins)
    observed = ~penguins.isna().to_numpy()
    assert (~observed).sum() == 19
    assert torch.equal(enc.mask, torch.from_numpy(observed))
    assert (enc.x[~enc.mask] == 0).all()
    assert torch.isfinite(enc.x).all()


# -- validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "kinds", "column", "problem"),
    [
        (
            pd.DataFrame({"price": ["1.5", "cheap"]}),
            {"price": "continuous"},
            "price",
            "non-numeric",
        ),
        (pd.DataFrame({"price": ["1", "many"]}), {"price": "count"}, "price", "non-numeric"),
        (pd.DataFrame({"w": [1.0, np.inf]}), None, "w", "infinite"),
        (pd.DataFrame({"w": [1.0, -np.inf]}), {"w": "categorical"}, "w", "infinite"),
        (pd.DataFrame({"a": [1.0, 2.0], "gone": [np.nan, None]}), None, "gone", "missing"),
        (pd.DataFrame({"a": pd.Series([], dtype=float)}), None, "a", "0 rows"),
        (pd.DataFrame({"a": [1.0]}), {"a": "nominal"}, "a", "unknown kind"),
        (pd.DataFrame({"a": [1.0]}), {"nope": "count"}, "nope", "not in the table"),
        (pd.DataFrame({"n": [-1.0, 2.0]}), {"n": "count"}, "n", "negative"),
        (pd.DataFrame({"n": [1.5, 2.0]}), {"n": "count"}, "n", "non-integer"),
        (pd.DataFrame({"g": ["a", "b", "c"]}), {"g": "binary"}, "g", "3 distinct values"),
        (pd.DataFrame({"t": pd.date_range("2020", periods=2)}), None, "t", "unsupported dtype"),
    ],
)
def test_infer_rejects_bad_columns(
    df: pd.DataFrame, kinds: dict | None, column: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        Schema.infer(df, kinds=kinds)
    assert repr(column) in str(info.value)


@pytest.mark.parametrize(
    "data",
    [pd.DataFrame(index=range(3)), np.zeros((3, 0)), np.zeros((0, 2))],
)
def test_infer_rejects_empty_tables(data: pd.DataFrame | np.ndarray) -> None:
    with pytest.raises(ValueError, match="0 (rows|columns)"):
        Schema.infer(data)


@pytest.mark.parametrize(
    "data", [np.arange(3.0), torch.arange(3.0), pd.Series([1.0, 2.0]), np.zeros((2, 2, 2))]
)
def test_infer_rejects_non_tables(data: object) -> None:
    with pytest.raises(ValueError, match="2-D table"):
        Schema.infer(data)


def test_infer_rejects_bad_column_names() -> None:
    with pytest.raises(ValueError, match="strings"):
        Schema.infer(pd.DataFrame(np.zeros((2, 2))))
    with pytest.raises(ValueError, match="duplicate column names: 'a'"):
        Schema.infer(pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]))


def small_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "w": [1.0, 2.0, 3.0],
            "n": [0, 2, 5],
            "flag": [0, 1, 1],
            "island": pd.Categorical(["Biscoe", "Dream", "Biscoe"]),
        }
    )


@pytest.mark.parametrize(
    ("change", "column", "problem"),
    [
        (
            lambda df: df.assign(island=["Biscoe", "Atlantis", "Dream"]),
            "island",
            "unseen category 'Atlantis'",
        ),
        (lambda df: df.assign(flag=[0, 2, 1]), "flag", "unseen category 2"),
        (lambda df: df.assign(n=[0, -1, 2]), "n", "negative"),
        (lambda df: df.assign(n=[0.5, 1.0, 2.0]), "n", "non-integer"),
        (lambda df: df.assign(w=["1", "x", "2"]), "w", "non-numeric"),
        (lambda df: df.assign(w=[1.0, np.inf, 2.0]), "w", "infinite"),
        (lambda df: df.drop(columns="flag"), "flag", "missing"),
        (lambda df: df.assign(colour=1.0), "colour", "unexpected"),
        (lambda df: df.iloc[:0], "w", "0 rows"),
    ],
)
def test_encode_rejects_bad_data(change, column: str, problem: str) -> None:
    df = small_frame()
    schema = Schema.infer(df)
    with pytest.raises(ValueError, match=problem) as info:
        schema.encode(change(df))
    assert repr(column) in str(info.value)


def test_encode_reorders_columns_and_allows_missing_only_columns() -> None:
    df = small_frame()
    schema = Schema.infer(df)
    shuffled = df[["island", "flag", "w", "n"]].assign(w=np.nan)
    enc = schema.encode(shuffled)
    assert enc.mask[:, 0].tolist() == [False, False, False]
    assert torch.equal(enc.x[:, 1:], schema.encode(df).x[:, 1:])


def test_encode_checks_input_type_and_width() -> None:
    frame_schema = Schema.infer(small_frame())
    with pytest.raises(ValueError, match="DataFrame"):
        frame_schema.encode(np.zeros((2, 4)))
    array_schema = Schema.infer(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="expected 3 columns"):
        array_schema.encode(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="DataFrame"):
        array_schema.encode(pd.DataFrame(np.zeros((5, 3)), columns=["x0", "x1", "x2"]))
    # An array schema takes ndarrays and tensors alike.
    assert array_schema.encode(torch.ones(2, 3)).x.shape == (2, 3)


def test_array_with_strings_names_the_column() -> None:
    data = np.array([[1.0, "a"], [2.0, "3"]], dtype=object)
    with pytest.raises(ValueError, match="'x1'.*non-numeric"):
        Schema.infer(data)


def test_column_and_schema_validate_themselves() -> None:
    with pytest.raises(ValueError, match="'a'.*unknown kind"):
        Column("a", "ordinal", "float64")
    with pytest.raises(ValueError, match="'a'.*at most 2"):
        Column("a", "binary", "object", categories=("x", "y", "z"))
    with pytest.raises(ValueError, match="'a'.*scale"):
        Column("a", "continuous", "float64", scale=0.0)
    with pytest.raises(ValueError, match="input_type"):
        Schema((Column("a", "continuous", "float64"),), "list")


# -- require ----------------------------------------------------------------------


def test_require_names_offending_columns(penguins: pd.DataFrame) -> None:
    schema = Schema.infer(penguins[["bill_length_mm", "species"]])
    with pytest.raises(ValueError) as info:
        schema.require(
            "continuous", model="PPCA", hint="Use GaussianMixture or VAE for mixed tables."
        )
    assert str(info.value) == (
        "PPCA handles continuous columns only; column 'species' is categorical. "
        "Use GaussianMixture or VAE for mixed tables."
    )
    schema.require("continuous", "categorical", model="GaussianMixture")  # no error


def test_require_lists_all_offenders(penguins: pd.DataFrame) -> None:
    schema = Schema.infer(penguins)
    with pytest.raises(ValueError) as info:
        schema.require("continuous", "count", model="FactorAnalysis")
    message = str(info.value)
    assert message.startswith("FactorAnalysis handles continuous and count columns only;")
    # year is ordinal (categorical) by rule 4 since issue 12.
    assert "columns 'species', 'island', 'sex' and 'year' are categorical" in message
    with pytest.raises(ValueError, match="unknown kind"):
        schema.require("real", model="X")


def test_counts_and_positions() -> None:
    schema = Schema.infer(mixed_frame())
    assert len(schema) == 10
    assert (schema.n_continuous, schema.n_count, schema.n_binary, schema.n_categorical) == (
        2,
        2,
        2,
        4,
    )
    assert schema.positions("binary") == (4, 5)
    assert schema.n_categories == (0, 0, 0, 0, 2, 2, 3, 3, 3, 2)
    assert set(schema.kinds) == set(KINDS) - {"binomial"}  # binomial is only declared


# -- arrays and tensors -------------------------------------------------------------


def test_float32_tensor_stays_float32() -> None:
    t = torch.randn(20, 3, generator=torch.Generator().manual_seed(0)) * 5 + 2
    schema = Schema.infer(t)
    assert schema.input_type == "tensor"
    enc = schema.encode(t)
    assert enc.x.dtype == torch.float32 and enc.index is None
    assert enc.x.device == t.device
    out = schema.decode(enc.x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    torch.testing.assert_close(out, t)


def test_encode_dtype_and_device_arguments() -> None:
    df = small_frame()
    schema = Schema.infer(df)
    assert schema.encode(df).x.dtype == torch.float64
    enc = schema.encode(df, dtype=torch.float32, device="meta")
    assert enc.x.dtype == torch.float32
    assert enc.x.device.type == "meta" and enc.mask.device.type == "meta"
    with pytest.raises(ValueError, match="floating"):
        schema.encode(df, dtype=torch.int64)


def test_integer_tensor_uses_default_dtype() -> None:
    t = torch.tensor([[1, 2], [3, 5], [4, 4]])
    schema = Schema.infer(t)
    enc = schema.encode(t)
    assert enc.x.dtype == torch.get_default_dtype()
    out = schema.decode(enc.x)
    assert out.dtype == torch.get_default_dtype()
    torch.testing.assert_close(out, t.to(out.dtype))


def test_ndarray_round_trips() -> None:
    rng = np.random.default_rng(1)
    floats = rng.normal(size=(30, 4))
    schema = Schema.infer(floats)
    enc = schema.encode(floats)
    assert enc.x.dtype == torch.float64
    out = schema.decode(enc.x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, floats, rtol=1e-12)
    # Integer arrays whose columns are all counts or labels keep their dtype.
    counts = rng.poisson(4.0, size=(30, 2))
    count_schema = Schema.infer(counts, kinds={"x0": "count", "x1": "categorical"})
    out = count_schema.decode(count_schema.encode(counts).x)
    assert out.dtype == counts.dtype
    np.testing.assert_array_equal(out, counts)
    # ... and come back as float when a column is continuous.
    assert Schema.infer(counts).decode(torch.zeros(1, 2)).dtype == np.float64


def test_array_missing_values_are_masked() -> None:
    data = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 4.0]])
    enc = Schema.infer(data).encode(torch.from_numpy(data))
    assert torch.equal(enc.mask, torch.from_numpy(~np.isnan(data)))
    assert (enc.x[~enc.mask] == 0).all()


# -- serialisation ----------------------------------------------------------------


@pytest.mark.parametrize("source", ["mixed", "penguins", "tensor"])
def test_json_round_trip(source: str, penguins: pd.DataFrame) -> None:
    data = {
        "mixed": mixed_frame(),
        "penguins": penguins,
        "tensor": torch.randn(5, 2, dtype=torch.float32),
    }[source]
    schema = Schema.infer(
        data, **({"kinds": {"year": "categorical"}} if source == "penguins" else {})
    )
    restored = Schema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert restored == schema
    # (False, True) == (0, 1) in Python, so check that labels kept their types.
    for old, new in zip(schema.columns, restored.columns, strict=True):
        assert [type(c) for c in new.categories or ()] == [type(c) for c in old.categories or ()]
    enc, enc2 = schema.encode(data), restored.encode(data)
    assert torch.equal(enc.x, enc2.x) and torch.equal(enc.mask, enc2.mask)
    if isinstance(data, pd.DataFrame):
        complete = data.dropna()
        assert_same_frame(round_trip(restored, complete), complete)


def test_from_dict_rejects_other_dicts() -> None:
    with pytest.raises(ValueError, match="not a ppgen schema"):
        Schema.from_dict({"columns": []})
    d = Schema.infer(small_frame()).to_dict()
    del d["columns"][0]["scale"]
    with pytest.raises(ValueError, match="'scale'"):
        Schema.from_dict(d)


def test_encode_maps_labels_not_pandas_codes() -> None:
    df = small_frame()
    schema = Schema.infer(df)
    # Same labels, other category order and an object column: codes follow the schema.
    reordered = df.assign(island=df["island"].cat.reorder_categories(["Dream", "Biscoe"]))
    as_object = df.assign(island=df["island"].astype(object))
    expected = schema.encode(df).x
    assert expected[:, 3].tolist() == [0.0, 1.0, 0.0]
    assert torch.equal(schema.encode(reordered).x, expected)
    assert torch.equal(schema.encode(as_object).x, expected)
