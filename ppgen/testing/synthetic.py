"""Deterministic real/synthetic table pairs on which ppgen's quality scores are checked against
SDMetrics (``benchmarks/sdmetrics_reference.py`` computes the reference numbers in a venv of its
own; ``tests/evaluate/test_synthetic_parity.py`` holds them as constants).

The "synthetic" table is the real one with every column rotated by its own number of rows (the
marginals stay, the dependence between columns is scrambled), numeric columns stretched and
shifted, and some labels overwritten: no random numbers, so both venvs build the same tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ppgen.datasets import load

__all__ = ["PARITY_TABLES", "parity_tables"]

#: The data sets and the columns kept from each.
PARITY_TABLES = {
    "penguins": None,
    "wine": ["alcohol", "malic_acid", "ash", "flavanoids", "proline", "target"],
    "breast_cancer": ["mean radius", "mean texture", "worst area", "worst smoothness", "target"],
}


def _perturb(real: pd.DataFrame) -> pd.DataFrame:
    synthetic = {}
    for j, name in enumerate(real.columns):
        column = real[name].reset_index(drop=True)
        rolled = pd.Series(np.roll(column.to_numpy(), 7 * (j + 1)), dtype=column.dtype)
        if pd.api.types.is_float_dtype(column):
            rolled = rolled * (1.0 + 0.04 * (j % 3)) + 0.1 * column.std() * (j % 2)
        else:
            labels = rolled.astype(object)
            labels[::5] = column.iloc[0]
            if name == "island":  # a label the real table lacks (SDMetrics' 1e-6 rule)
                labels[::17] = "Atlantis"
            rolled = labels
        synthetic[name] = rolled
    return pd.DataFrame(synthetic)


def parity_tables() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """``{name: (real, synthetic)}`` for the SDMetrics parity test."""
    tables = {}
    for name, columns in PARITY_TABLES.items():
        real = load(name)
        real = (real if columns is None else real[columns]).reset_index(drop=True)
        tables[name] = (real, _perturb(real))
    return tables
