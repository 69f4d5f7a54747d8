"""Diffusion on tables: held-out bound per row beside the VAE's IWAE and the GMM's likelihood.

    python benchmarks/diffusion_tables.py            # every table, seed 0
    python benchmarks/diffusion_tables.py --quick    # few epochs, prints only

Issue 15's table rows: breast_cancer (30 continuous columns), wine (13 continuous and the
cultivar) and penguins (mixed kinds, rows with missing cells dropped, ``year`` left out), split
75/25 (NumPy seed 0). Every figure is nats per held-out row on the data's own scale (the
standardization's log-Jacobian included). Diffusion: the full sum of its analytic per-step terms
(``Diffusion.bound_terms``, 10 draws). VAE: IWAE k=1000. GMM (diagonal, 3 components, EM;
continuous columns only, so for the mixed tables it is not comparable and left out).
Writes ``benchmarks/results/diffusion_tables.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads, write_table  # noqa: E402

pin_threads(1)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from deep_models_nll import diffusion_bound  # noqa: E402

import ppgen  # noqa: E402

TABLES = ("breast_cancer", "wine", "penguins")


def table(name: str) -> pd.DataFrame:
    frame = ppgen.datasets.load(name)
    if name == "penguins":
        frame = frame.drop(columns="year").dropna().reset_index(drop=True)
    return frame


def split(frame: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(0.75 * len(frame))
    return frame.iloc[order[:cut]], frame.iloc[order[cut:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--n-steps", type=int, default=100)
    args = parser.parse_args()
    epochs = 20 if args.quick else args.epochs
    rows = []
    for name in TABLES:
        train, test = split(table(name))
        continuous = all(pd.api.types.is_float_dtype(t) for t in train.dtypes)
        models = {
            f"Diffusion(T={args.n_steps})": ppgen.Diffusion(args.n_steps),
            "VAE(8, (128, 128))": ppgen.VAE(8),
        }
        if continuous:
            models["GaussianMixture(3, diag)"] = ppgen.GaussianMixture(3, "diag")
        for label, model in models.items():
            t0 = time.perf_counter()
            options = {} if model.default_method == "em" else {"max_epochs": epochs}
            fit = ppgen.fit(model, train, seed=0, progress=False, **options)
            seconds = time.perf_counter() - t0
            if isinstance(model, ppgen.Diffusion):
                per_row, _ = diffusion_bound(fit, test, 10)
                what = "bound (analytic per-step terms)"
            elif fit.method == "em":
                per_row, what = fit.log_prob(test), "exact log-likelihood"
            else:
                per_row, what = ppgen.evaluate.iwae(fit, test, k=1000).per_row, "IWAE k=1000"
            per_row = np.asarray(per_row, dtype=float)
            rows.append(
                {
                    "table": name,
                    "model": label,
                    "held-out nats/row": float(per_row.mean()),
                    "se over rows": float(per_row.std(ddof=1) / math.sqrt(len(per_row))),
                    "figure": what,
                    "train s": seconds,
                }
            )
            print(rows[-1])
    if not args.quick:
        notes = (
            f"\nCommand: `python benchmarks/diffusion_tables.py --epochs {epochs} --n-steps "
            f"{args.n_steps}`. Higher is better; seed 0 only.\n"
        )
        write_table("diffusion_tables", rows, notes, title="Diffusion on tables (issue 15)")


if __name__ == "__main__":
    main()
