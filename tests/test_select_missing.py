"""Penguins with holes (issue 14, "Mixed and missing"): 20% of the entries removed completely
at random on top of the table's own NaNs; is the BIC pick unchanged, and do the memberships
agree with the complete-data fit's at an adjusted Rand index >= 0.9?

Settings (``species`` is what clustering should find, never an input; ``island`` nearly
determines it, not used; ``year`` dropped): **measurements**, the four numeric columns
(tutorial 07); **measurements + sex**, ``sex`` as a categorical column (its 11 NaNs kept).
Grid as tutorial 07: EEE/VEE/VVE/VVV x K = 1..4, BIC. The holes hit every column used.

The *oracle* agreement of one hole pattern is the ARI between the complete-data fit's
memberships and the memberships the *same fitted parameters* give the holed table (each row
by the exact marginal of its observed entries): what is reached knowing the complete-data
parameters, no refit. A refit on the holed table estimates them from less information; it is
not a strict upper bound (a refit can land slightly above it by chance: seed 1 below), but
it says whether 0.9 is in reach. Measured (20 hole patterns, seeds 0..19):

- measurements: BIC picks VEE,4 (Gentoos split by sex); oracle ARI 0.795..0.925, 1 of 20
  patterns >= 0.9; refits (seeds 0, 1, 2) keep VEE,4 with ARI 0.841, 0.875, 0.862. The issue's
  0.9 is out of reach in this setting.
- measurements + sex: BIC picks VEE,4 (components no longer near the species: ARI with
  species 0.374); oracle 0.871..0.955, 15 of 20 >= 0.9; refits: seed 0 VEE,4 ARI 0.906 (goal met),
  seed 1 EEE,4 (pick changed), seed 2 VEE,4 ARI 0.930.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

import ppgen
from ppgen.select import select

torch.set_num_threads(1)

MEASUREMENTS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
GRID = {"structure": ["EEE", "VEE", "VVE", "VVV"], "K": range(1, 5)}


def _table(sex: bool) -> pd.DataFrame:
    penguins = ppgen.datasets.load("penguins")
    return penguins[MEASUREMENTS + (["sex"] if sex else [])]


def holed(table: pd.DataFrame, seed: int, share: float = 0.2) -> pd.DataFrame:
    """``table`` with each entry removed with probability ``share`` (MCAR)."""
    return table.mask(np.random.default_rng(seed).random(table.shape) < share)


def oracle_ari(table: pd.DataFrame, candidate: tuple, seeds: range) -> np.ndarray:
    """The oracle agreement (module docstring) of each hole pattern in ``seeds``."""
    fit = select("gmm", table, [candidate], criteria=("bic",)).fit(table)
    complete = fit.predict(table)
    return np.array([adjusted_rand_score(complete, fit.predict(holed(table, s))) for s in seeds])


def test_the_oracle_bound_on_the_measurements_is_below_the_issues_goal():
    ari = oracle_ari(_table(sex=False), ("VEE", 4), range(20))
    assert np.median(ari) < 0.9 and (ari >= 0.9).sum() <= 1
    assert ari.min() > 0.75  # the holes cost agreement, they do not destroy it


@pytest.mark.slow
def test_with_sex_the_oracle_reaches_the_goal_for_most_hole_patterns():
    ari = oracle_ari(_table(sex=True), ("VEE", 4), range(20))
    assert np.median(ari) > 0.9 and (ari >= 0.9).sum() >= 15


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sex", "seed", "pick", "low", "high"),
    [
        (False, 0, ("VEE", 4), 0.83, 0.85),  # tutorial 07's setting: 0.841
        (True, 0, ("VEE", 4), 0.9, 1.0),  # the goal met: 0.906
        (True, 1, ("EEE", 4), 0.9, 1.0),  # the pick changes (K unchanged): 0.931
    ],
)
def test_refit_on_the_holed_table(sex, seed, pick, low, high):
    table = _table(sex)
    complete = select("gmm", table, GRID, criteria=("bic",))
    assert complete.best == ("VEE", 4)
    with_holes = holed(table, seed)
    refit = select("gmm", with_holes, GRID, criteria=("bic",))
    assert refit.best == pick
    ari = adjusted_rand_score(
        complete.fit(table).predict(table), refit.fit(with_holes).predict(with_holes)
    )
    assert low <= ari <= high
