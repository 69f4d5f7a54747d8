"""compare's support rule: whole-number float columns are sampled on their observed lattice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ppgen
from ppgen.comparison import integer_columns, on_support
from ppgen.evaluate import c2st


def _counts_as_floats(n, seed=0):
    """A zero-inflated count column stored as float64 (as scikit-learn's digits pixels), a
    genuinely continuous one, an integer-dtype count, a label."""
    rng = np.random.default_rng(seed)
    pixel = np.where(rng.random(n) < 0.5, 0.0, rng.integers(1, 17, size=n).astype(float))
    return pd.DataFrame(
        {
            "pixel": pixel,
            "length": rng.normal(10.0, 2.0, size=n),
            "count": rng.poisson(3.0, size=n),
            "label": pd.Categorical(rng.choice(["a", "b"], size=n)),
        }
    )


def test_only_float_columns_of_whole_numbers_are_on_a_lattice():
    train = _counts_as_floats(300)
    train.loc[3, "pixel"] = np.nan  # missing entries do not hide the lattice
    assert integer_columns(train) == {"pixel": (0.0, 16.0)}
    # One non-integer value: continuous, left alone.
    train.loc[5, "pixel"] = 2.5
    assert integer_columns(train) == {}


def test_samples_are_rounded_and_clipped_to_the_training_range():
    train = _counts_as_floats(300)
    synthetic = pd.DataFrame(
        {
            "pixel": [-3.2, 0.4, 0.6, 7.5, 15.49, 40.0, np.nan],
            "length": [-1.25, 0.5, 9.7, 10.2, 11.5, 30.0, 5.0],
            "count": [0, 1, 2, 3, 4, 5, 6],
            "label": pd.Categorical(["a", "b", "a", "b", "a", "b", "a"]),
        }
    )
    snapped = on_support(synthetic, train)
    # numpy rounds halves to even (7.5 -> 8); the range clips -3 to 0 and 40 to 16.
    np.testing.assert_array_equal(snapped["pixel"], [0.0, 0.0, 1.0, 8.0, 15.0, 16.0, np.nan])
    pd.testing.assert_series_equal(snapped["length"], synthetic["length"])
    pd.testing.assert_series_equal(snapped["count"], synthetic["count"])
    pd.testing.assert_series_equal(snapped["label"], synthetic["label"])
    assert snapped["pixel"].dtype == np.float64
    assert synthetic["pixel"].iloc[0] == -3.2  # the input is not modified


def test_off_lattice_samples_are_what_a_tree_detects_and_the_rule_removes_it():
    # The same distribution, once as real rows and once as a continuous model's draws of it
    # (the count plus uniform noise in (-0.5, 0.5)): the exact zeros alone give them away.
    real, model = _counts_as_floats(500, seed=1), _counts_as_floats(500, seed=2)
    rng = np.random.default_rng(3)
    jittered = model.assign(pixel=model["pixel"] + rng.uniform(-0.49, 0.49, size=len(model)))
    raw = c2st(real, jittered, seed=0)
    snapped = c2st(real, on_support(jittered, real), seed=0)
    assert raw.auc > 0.7 and raw.p_value < 0.01
    assert snapped.p_value > 0.01 and abs(snapped.auc - 0.5) < 0.1


def test_compare_applies_the_rule_unless_asked_not_to():
    data = _counts_as_floats(200)
    # The Parzen baseline: a continuous kernel density on float columns, fast.
    on = ppgen.compare(data, ["parzen"], budget_s=None, progress=False)
    off = ppgen.compare(data, ["parzen"], budget_s=None, progress=False, lattice=False)
    (on_sample,), (off_sample,) = on.samples.values(), off.samples.values()
    assert (on_sample["pixel"] == on_sample["pixel"].round()).all()
    assert on_sample["pixel"].between(0, 16).all()
    assert not (off_sample["pixel"] == off_sample["pixel"].round()).all()
    # The rule changes samples only: the likelihood column is the model's own.
    assert on.table["heldout_nats"].iloc[0] == pytest.approx(off.table["heldout_nats"].iloc[0])
