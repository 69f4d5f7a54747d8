"""Cases of distributed EM shared by the test (one process) and its worker (each rank): data,
the uneven split of rows over 2 ranks, and the problem a rank fits (issue 20)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

import ppgen
from ppgen.infer.layouts import get_layout

#: Iterations compared one by one.
STEPS = 12
#: Cases also fitted by a whole engine run (its own starts), and its options.
RUN = ("gmm_full", "gmm_full_complete", "hmm")
RUN_OPTIONS = {"n_init": 2, "max_steps": 200}


def _table(seed: int = 0, holes: bool = True) -> np.ndarray:
    """Two clusters, 150 rows x 3; missing entries only in rows 100.. (rank 1's share), and
    there in two patterns: rank 0 holds no partially observed row, rank 1 every one. Without
    ``holes`` the table is complete (every rank's GaussianMixture statistics then come from
    the fused kernel, as the one-process iterations do)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 1, (60, 3)), rng.normal(3, 0.6, (90, 3))])
    x = x * [1.0, 2.0, 0.5] + [0.0, 5.0, -1.0]
    x = x[rng.permutation(150)]
    if not holes:
        return x
    x[100:130, 0] = np.nan  # pattern 1
    x[130:140, 1:] = np.nan  # pattern 2
    return x


def _sequences(seed: int = 1) -> list[np.ndarray]:
    """9 sequences of unequal lengths from a 2-state chain; gaps in the last ones."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(9):
        n = 20 + 3 * s
        states = np.zeros(n, dtype=int)
        for t in range(1, n):
            states[t] = states[t - 1] if rng.random() < 0.85 else 1 - states[t - 1]
        y = np.where(states[:, None] == 0, -1.0, 2.0) + rng.normal(0, 0.7, (n, 2))
        if s >= 6:
            y[rng.random(n) < 0.2, 0] = np.nan
        out.append(y)
    return out


CASES = {
    "gmm_full": (lambda: ppgen.GaussianMixture(2), _table),
    "gmm_eev": (lambda: ppgen.GaussianMixture(2, covariance_type="EEV"), _table),
    "gmm_diag_map": (lambda: ppgen.GaussianMixture(2, "diag", prior="default"), _table),
    "gmm_diag_rank_without_rows": (lambda: ppgen.GaussianMixture(2, "diag"), _table),
    # Rank 0 complete (the fused kernel's per-column statistics), rank 1 with missing entries.
    "gmm_diag": (lambda: ppgen.GaussianMixture(2, "diag"), _table),
    "gmm_full_complete": (lambda: ppgen.GaussianMixture(2), lambda: _table(holes=False)),
    "gmm_vev_complete": (
        lambda: ppgen.GaussianMixture(2, covariance_type="VEV"),
        lambda: _table(holes=False),
    ),
    "ppca": (lambda: ppgen.PPCA(1), _table),
    "fa": (lambda: ppgen.FactorAnalysis(1, rotation=None), _table),
    "hmm": (lambda: ppgen.HMM(2), _sequences),
}

#: Units (rows or sequences) of rank 0; rank 1 holds the rest (uneven splits).
SPLIT = {
    "gmm_full": 100,
    "gmm_eev": 100,
    "gmm_diag_map": 100,
    "gmm_diag_rank_without_rows": 0,
    "gmm_diag": 100,
    "gmm_full_complete": 110,
    "gmm_vev_complete": 40,
    "ppca": 100,
    "fa": 100,
    "hmm": 6,
}


def problem(case: str, rank: int | None = None):
    """The whole problem (``rank=None``) or rank ``rank``'s share of its encoded units (rows
    or sequences), marked distributed; ``n_units`` stays the whole table's."""
    make, data = CASES[case]
    model, table = make(), data()
    layout = get_layout(model.layout)
    schema, enc = layout.encode(
        model, table, schema=None, kinds=None, standardize=model.standardize, device=None,
        dtype=None,
    )  # fmt: skip
    whole = layout.problem(layout.build(model, schema, enc), schema, enc, seed=0, progress=False)
    if rank is None:
        return whole
    cut = SPLIT[case]
    units = slice(0, cut) if rank == 0 else slice(cut, None)
    n = whole.x.shape[0]
    data = {
        k: v[units] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == n else v
        for k, v in whole.data.items()
    }
    x, mask = whole.x[units], whole.mask[units]
    if "lengths" in data and len(data["lengths"]):  # padded to this rank's longest sequence
        steps = int(data["lengths"].max())
        x, mask = x[:, :steps], mask[:, :steps]
    return dataclasses.replace(
        whole, x=x, mask=mask, data=data, log_jacobian=None, distributed="test"
    )


def start(case: str) -> dict[str, torch.Tensor]:
    """The shared starting values: the model's own start on the whole table, seed 0."""
    whole = problem(case)
    gen = torch.Generator().manual_seed(0)
    return whole.model.init_params(whole.x, whole.mask, gen)
