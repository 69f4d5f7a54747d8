"""The written rule for numeric columns (ppgen.data) and the refusal of misread columns, tested
with real CSV bytes read by pandas.read_csv as a user would."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest

import ppgen
from ppgen.data import Schema, load

# hmmlearn's Poisson HMM tutorial: annual counts of major earthquakes, 1900-2006.
EARTHQUAKES = [
    13, 14, 8, 10, 16, 26, 32, 27, 18, 32, 36, 24, 22, 23, 22, 18, 25, 21, 21, 14, 8, 11, 14, 23,
    18, 17, 19, 20, 22, 19, 13, 26, 13, 14, 22, 24, 21, 22, 26, 21, 23, 24, 27, 41, 31, 27, 35, 26,
    28, 36, 39, 21, 17, 22, 17, 19, 15, 34, 10, 15, 22, 18, 15, 20, 15, 22, 19, 16, 30, 27, 29, 23,
    20, 16, 21, 21, 25, 16, 18, 15, 18, 14, 10, 15, 8, 15, 6, 11, 8, 7, 18, 16, 13, 12, 13, 20,
    15, 16, 12, 18, 15, 16, 13, 15, 16, 11, 11,
]  # fmt: skip


def read_csv(frame: pd.DataFrame, **options) -> pd.DataFrame:
    """The frame written to CSV bytes and read back by pandas, as a user's file would be."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return pd.read_csv(io.StringIO(buffer.getvalue()), **options)


def faithful_csv() -> pd.DataFrame:
    """faithful as its CSV reads: waiting is int64 (43-96)."""
    frame = load("faithful")
    return frame.assign(waiting=frame["waiting"].astype("int64"))


def labels(data: pd.DataFrame, **options) -> dict[str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # well-formed tables read without a word
        schema = Schema.infer(data, **options)
    return {c.name: c.label for c in schema.columns}


# -- the rule ---------------------------------------------------------------------------


def test_rule_1_kinds_override_everything() -> None:
    df = read_csv(faithful_csv())
    assert labels(df, kinds={"waiting": "count"})["waiting"] == "count"
    penguins = load("penguins")
    assert labels(penguins, kinds={"year": "count"})["year"] == "count"
    assert labels(penguins, kinds={"year": "continuous"})["year"] == "continuous"


def test_rule_2_continuous_only_models_read_numbers_as_continuous() -> None:
    rng = np.random.default_rng(0)
    items = pd.DataFrame(rng.integers(1, 6, size=(120, 4)), columns=list("abcd"))
    assert set(labels(items).values()) == {"count"}  # Likert items 1-5 start near 0
    schema = Schema.infer(items, supported=ppgen.PPCA.supported_kinds)
    assert schema.kinds == ("continuous",) * 4
    assert all("the model handles continuous columns" in c.note for c in schema.columns)
    fit = ppgen.fit(ppgen.PPCA(1), items, seed=0)  # psych-style factor analysis of items
    assert fit.schema.kinds == ("continuous",) * 4
    # Text columns are still refused, by the model, naming them.
    with pytest.raises(ValueError, match="'species' is categorical"):
        ppgen.fit(ppgen.PPCA(1), load("iris"), seed=0)


def test_rule_3_integers_near_zero_are_counts() -> None:
    quakes = pd.DataFrame({"quakes": EARTHQUAKES})
    assert labels(read_csv(quakes)) == {"quakes": "count"}  # 6-41: 41 >= 3 x 6
    discoveries = read_csv(load("discoveries"))
    assert labels(discoveries)["discoveries"] == "count"  # 0-12


def test_rule_4_integers_far_from_zero_are_ordinal_never_counts() -> None:
    penguins = load("penguins")
    schema = Schema.infer(penguins)
    year = schema.columns[schema.names.index("year")]
    assert (year.kind, year.label, year.categories) == (
        "categorical",
        "ordinal",
        (2007, 2008, 2009),
    )
    assert "ordinal levels, not counts" in year.note
    # Years over a century (100 levels) are continuous: still never counts of ~1900.
    assert labels(load("discoveries"))["year"] == "continuous"
    assert labels(pd.DataFrame({"y": [1000, 1001, 1002, 1003]}))["y"] == "ordinal"
    assert labels(pd.DataFrame({"y": [100, 101, 109, 110]}))["y"] == "continuous"  # 100 <= 10 x 10


def test_rule_5_other_numbers_are_continuous() -> None:
    # faithful's integer waiting (43-96): 96 < 3 x 43 and 43 <= 10 x 53, so continuous.
    assert labels(read_csv(faithful_csv())) == {"eruptions": "continuous", "waiting": "continuous"}
    for name, label in (("wine", "target"), ("iris", "species")):
        read = labels(load(name).drop(columns=label))
        assert set(read.values()) == {"continuous"}, name
    assert labels(pd.DataFrame({"t": [-3, 0, 4]}))["t"] == "continuous"  # negative integers


def test_penguins_samples_keep_years_in_2007_2009() -> None:
    penguins = load("penguins")
    fit = ppgen.fit(ppgen.GaussianMixture(2), penguins, method="em", seed=0)
    drawn = fit.sample(2000, seed=0)
    assert set(drawn["year"]) <= {2007, 2008, 2009}
    assert drawn["year"].dtype == penguins["year"].dtype


# -- misreading refused --------------------------------------------------------------------------


@pytest.mark.parametrize("typo", ["oops", "about 60"])
def test_numeric_column_with_a_typo_is_refused_naming_value_and_row(typo: str) -> None:
    frame = faithful_csv().astype({"waiting": object})
    frame.loc[17, "waiting"] = typo
    df = read_csv(frame)
    assert not pd.api.types.is_numeric_dtype(df["waiting"])  # pandas read the column as text
    with pytest.raises(ValueError) as info:
        Schema.infer(df)
    message = str(info.value)
    assert "'waiting'" in message and repr(typo) in message and "row 17" in message
    with pytest.raises(ValueError, match="'waiting'"):
        ppgen.fit(ppgen.GaussianMixture(2), df, seed=0)
    # Declared, the column is what the user says.
    assert labels(df, kinds={"waiting": "categorical"})["waiting"] == "categorical"


def test_numbers_stored_as_text_are_read_as_numbers_with_a_warning() -> None:
    df = read_csv(faithful_csv(), dtype=str)
    assert not any(pd.api.types.is_numeric_dtype(t) for t in df.dtypes)
    with pytest.warns(UserWarning) as record:
        schema = Schema.infer(df)
    assert sorted(str(w.message).split()[1] for w in record) == ["'eruptions'", "'waiting'"]
    assert all("holds numbers stored as text" in str(w.message) for w in record)
    assert schema.kinds == ("continuous", "continuous")
    assert "numbers stored as text" in schema.columns[1].note
    reference = Schema.infer(faithful_csv())
    assert [v for c in schema.columns for v in (c.loc, c.scale)] == pytest.approx(
        [v for c in reference.columns for v in (c.loc, c.scale)], rel=1e-12
    )
    np.testing.assert_allclose(schema.encode(df).x.numpy(), reference.encode(faithful_csv()).x)
    counts = read_csv(load("discoveries"), dtype=str)
    with pytest.warns(UserWarning, match="numbers stored as text"):
        assert Schema.infer(counts).columns[1].kind == "count"


def test_identifier_and_free_text_columns_are_refused() -> None:
    frame = faithful_csv()
    frame.insert(0, "id", [f"obs-{i:04d}" for i in range(len(frame))])
    df = read_csv(frame)
    with pytest.raises(ValueError, match="'id' looks like an identifier or free text: 272"):
        Schema.infer(df)
    with pytest.warns(UserWarning, match="'id' has 272 levels"):
        assert labels_loose(df, kinds={"id": "categorical"})["id"] == "categorical"


def labels_loose(data: pd.DataFrame, **options) -> dict[str, str]:
    return {c.name: c.label for c in Schema.infer(data, **options).columns}


def test_many_levels_for_the_rows_warn() -> None:
    df = read_csv(pd.DataFrame({"g": [f"l{i % 30}" for i in range(100)]}))
    with pytest.warns(UserWarning, match="'g' has 30 levels for 100 observed rows"):
        Schema.infer(df)


def test_well_formed_tables_read_silently() -> None:
    for name in ("penguins", "iris", "wine", "airquality", "faithful"):
        labels(read_csv(load(name)))


# -- the summary ----------------------------------------------------------------------------


def test_summary_and_str_show_what_was_inferred() -> None:
    penguins = load("penguins")
    schema = Schema.infer(penguins, kinds={"body_mass_g": "positive"})
    table = schema.summary(penguins)
    assert list(table.columns) == ["column", "kind", "range or levels", "missing", "note"]
    row = table.set_index("column")
    assert row.loc["year", "kind"] == "ordinal"
    assert row.loc["year", "range or levels"] == "2007, 2008, 2009"
    assert row.loc["body_mass_g", "kind"] == "positive"
    assert row.loc["body_mass_g", "range or levels"] == "2700 to 6300"
    assert row.loc["sex", "missing"] == pytest.approx(penguins["sex"].isna().mean())
    assert row.loc["body_mass_g", "note"] == "declared"
    text = str(schema)
    assert text.startswith("Schema (8 columns)")
    assert "ordinal" in text and "positive" in text
    full = schema.format(penguins)
    assert "missing" in full.splitlines()[1] and "3%" in full  # sex: 11 of 344 missing


def test_support_warnings_suggest_kinds_that_keep_the_support() -> None:
    rng = np.random.default_rng(2)
    data = pd.DataFrame({"y": np.exp(rng.normal(0, 1.0, 500)), "z": rng.normal(size=500)})
    schema = Schema.infer(data)
    draws = pd.DataFrame({"y": rng.normal(1.6, 2.0, 4000), "z": rng.normal(size=4000)})
    (message,) = schema.support_warnings(draws, data)
    assert "'y'" in message and "kinds={'y': 'positive'}" in message
    assert schema.support_warnings(data, data) == []
    share = pd.DataFrame({"y": rng.random(300), "z": rng.normal(size=300)})
    wide = share.assign(y=rng.normal(0.5, 0.4, 300))
    (message,) = Schema.infer(share).support_warnings(wide, share)
    assert "'proportion'" in message
