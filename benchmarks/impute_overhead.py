"""Per-table overhead of ``Fit.impute`` and ``Imputer.transform`` beyond the model's draw.

    python benchmarks/impute_overhead.py            # breast_cancer 569 x 30, 20% MCAR, m = 20
    python benchmarks/impute_overhead.py --repeat 3

A GMM (K=2, EM) is fitted once; then ``fit.impute(df, m)`` and ``Imputer.transform(df)`` are
timed (best of ``--repeat``) beside the model's own draws (``model.impute`` on the encoded
tensor, m times): the difference per table is the pandas work (decode, restore the observed
entries, assemble). Writes benchmarks/results/impute_overhead.md and .csv.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads, write_table  # noqa: E402

THREADS = pin_threads(1)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402

import ppgen  # noqa: E402
from ppgen._utils import seeded  # noqa: E402


def table(seed: int = 0, prop: float = 0.2) -> pd.DataFrame:
    """breast_cancer's 30 features with ``prop`` of the cells missing completely at random."""
    data = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    rng = np.random.default_rng(seed)
    return data.mask(rng.random(data.shape) < prop)


def best(f, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--m", type=int, default=20)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    df, m = table(), args.m
    imputer = ppgen.Imputer("gmm", n_imputations=m, method="em", seed=0, n_components=2).fit(df)
    fit = imputer.fit_
    enc = fit.encode(df)

    def draws_only():
        with seeded(0, fit.device), torch.no_grad():
            for _ in range(m):
                fit.model.impute(enc.x, enc.mask, fit.params)

    t_draw = best(draws_only, args.repeat)
    t_fit = best(lambda: fit.impute(df, m, seed=0), args.repeat)
    t_imp = best(lambda: imputer.transform(df), args.repeat)
    # support=None: no redraws of values outside the observed support, so the rest of
    # Imputer.transform's per-table work (assembling the input's columns) shows.
    plain = ppgen.Imputer("gmm", n_imputations=m, method="em", seed=0, n_components=2, support=None)
    plain.fit(df)
    t_plain = best(lambda: plain.transform(df), args.repeat)
    row = {
        "label": args.label,
        "rows x cols": f"{df.shape[0]} x {df.shape[1]}",
        "m": m,
        "draws ms/table": 1e3 * t_draw / m,
        "Fit.impute ms/table": 1e3 * t_fit / m,
        "Fit.impute overhead ms/table": 1e3 * (t_fit - t_draw) / m,
        "Imputer.transform ms/table": 1e3 * t_imp / m,
        "Imputer.transform support=None ms/table": 1e3 * t_plain / m,
    }
    print(row)
    write_table(
        "impute_overhead" + (f"_{args.label}" if args.label else ""),
        [row],
        notes=(
            "breast_cancer 20% MCAR (seed 0), GMM K=2 fitted by EM, m imputations; best of "
            f"{args.repeat} runs, one thread. Overhead = Fit.impute minus the model's m draws. "
            "Imputer.transform uses the default support='truncate', which redraws the rows whose "
            "imputed value of a column observed >= 0 is negative (before issue 21's impute4: all "
            "m tables, one proposal per round, ~74 rounds here; since: only the offending rows, "
            "2, 4, 8, ... proposals each per round, one model call per round)."
        ),
    )


if __name__ == "__main__":
    main()
