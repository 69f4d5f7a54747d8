"""Imputation at scale: ``Fit.impute`` and ``Imputer.transform`` on 10^6 rows x 20 columns.

    python benchmarks/impute_scale.py                      # 10^6 rows (a few minutes idle)
    python benchmarks/impute_scale.py --rows 200000        # smaller

The table: a mixture of three 20-dimensional Gaussians (random means and covariances, seed 0),
20% of the cells missing completely at random. A GaussianMixture(3) is fitted by EM to the first
``--fit-rows`` rows (the fit's cost does not grow with the table imputed), then the whole table
is imputed ``-m`` times by ``Fit.impute`` and by ``Imputer.transform`` (support=None, and the
default support="truncate" on columns shifted to be observed >= 0). Reports seconds per completed
table, wall and CPU (``time.process_time``: one thread, so CPU seconds are what an idle core
would take, whatever the machine's load), and the process' peak resident memory. Writes
benchmarks/results/impute_scale.md and .csv (``impute_scale_<rows>`` below 10^6 rows).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads, write_table  # noqa: E402

THREADS = pin_threads(1)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import ppgen  # noqa: E402


def table(rows: int, columns: int = 20, seed: int = 0, prop: float = 0.2) -> pd.DataFrame:
    """A three-component Gaussian mixture, ``prop`` of the cells missing completely at random."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, (3, columns))
    factors = rng.normal(0, 1, (3, columns, columns)) / np.sqrt(columns)
    label = rng.integers(0, 3, rows)
    noise = rng.normal(size=(rows, columns))
    x = means[label] + 0.5 * rng.normal(size=(rows, columns))
    for k in range(3):  # one matmul per component: no (rows, columns, columns) array
        x[label == k] += noise[label == k] @ factors[k].T
    x -= x.min(axis=0)  # observed >= 0: support="truncate" has work to do
    frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(columns)])
    return frame.mask(rng.random(frame.shape) < prop)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--fit-rows", type=int, default=50_000)
    parser.add_argument("-m", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=200, help="EM steps of the fit")
    args = parser.parse_args()
    df = table(args.rows)
    start, cpu = time.perf_counter(), time.process_time()
    imputer = ppgen.Imputer(
        "gmm",
        n_components=3,
        n_imputations=args.m,
        method="em",
        seed=0,
        fit_options={"max_steps": args.max_steps},
    )
    imputer.fit(df.iloc[: args.fit_rows])
    t_fit, c_fit = time.perf_counter() - start, time.process_time() - cpu
    print(f"fit {t_fit:.1f} s, {len(imputer.fit_.losses)} EM steps, {peak_mb():.0f} MB", flush=True)
    start, cpu = time.perf_counter(), time.process_time()
    imputer.fit_.impute(df, args.m, seed=0)
    t_impute = (time.perf_counter() - start) / args.m
    c_impute = (time.process_time() - cpu) / args.m
    print(f"Fit.impute {t_impute:.1f} s/table ({c_impute:.1f} CPU s), {peak_mb():.0f} MB")
    start, cpu = time.perf_counter(), time.process_time()
    tables = imputer.transform(df)
    tables = tables if isinstance(tables, list) else [tables]  # m = 1: one DataFrame
    t_truncate = (time.perf_counter() - start) / args.m
    c_truncate = (time.process_time() - cpu) / args.m
    print(f"transform (truncate) {t_truncate:.1f} s/table ({c_truncate:.1f} CPU s)", flush=True)
    assert all((t.to_numpy() >= 0).all() for t in tables)
    del tables
    start, cpu = time.perf_counter(), time.process_time()
    imputer.set_params(support=None).transform(df)
    t_plain = (time.perf_counter() - start) / args.m
    c_plain = (time.process_time() - cpu) / args.m
    row = {
        "rows x cols": f"{df.shape[0]} x {df.shape[1]}",
        "missing cells": int(df.isna().to_numpy().sum()),
        "fit rows": args.fit_rows,
        "EM steps": len(imputer.fit_.losses),
        "m": args.m,
        "EM fit s": t_fit,
        "Fit.impute s/table": t_impute,
        "Imputer.transform support=None s/table": t_plain,
        "Imputer.transform truncate s/table": t_truncate,
        "EM fit CPU s": c_fit,
        "Fit.impute CPU s/table": c_impute,
        "transform support=None CPU s/table": c_plain,
        "transform truncate CPU s/table": c_truncate,
        "peak RSS MB": peak_mb(),
    }
    print(row)
    write_table(
        "impute_scale" + ("" if args.rows == 1_000_000 else f"_{args.rows}"),
        [row],
        notes=__doc__.split("Writes")[0].strip()
        + "\n\nOne thread; machine shared with other jobs.",
    )


if __name__ == "__main__":
    main()
