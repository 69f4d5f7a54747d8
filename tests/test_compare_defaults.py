"""compare's default builds: families with a required size compare can fill (the RBM)."""

from __future__ import annotations

import numpy as np
import pandas as pd

import ppgen
from ppgen.comparison import N_HIDDEN, _default_rbm
from ppgen.models import MODELS


def test_a_default_rbm_is_gaussian_on_numbers_and_bernoulli_on_zeros_and_ones():
    rng = np.random.default_rng(0)
    numbers = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
    bits = pd.DataFrame(rng.integers(0, 2, size=(50, 3)), columns=["a", "b", "c"])
    rbm = MODELS["RBM"]
    assert _default_rbm(rbm, numbers).config()["visible"] == "gaussian"
    assert _default_rbm(rbm, bits).config() == {
        "n_hidden": N_HIDDEN,
        "visible": "bernoulli",
        "n_gibbs": rbm(1).config()["n_gibbs"],
    }


def test_compare_builds_an_rbm_by_default_and_a_table_it_cannot_take_says_why():
    rng = np.random.default_rng(1)
    numbers = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    row = ppgen.compare(numbers, ["rbm"], budget_s=None, progress=False).table.iloc[0]
    assert row["status"] == "ok" and row["n_params"] == 3 * N_HIDDEN + 3 + N_HIDDEN
    labelled = numbers.assign(label=pd.Categorical(rng.choice(["x", "y"], size=120)))
    row = ppgen.compare(labelled, ["rbm"], budget_s=None, progress=False).table.iloc[0]
    assert row["status"] == "error" and "needs n_hidden" not in row["verdict"]
    assert "categorical" in row["verdict"]
