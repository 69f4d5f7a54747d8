"""Recovery of the number of clusters, states and principal components on simulated data
(issue 14, "What must be shown": 50 replications per cell, binomial intervals).

    python benchmarks/recovery.py                  # 50 replications per cell (~30 min CPU)
    python benchmarks/recovery.py --reps 5         # a quick look
    python benchmarks/recovery.py --studies gmm --name recovery_gmm    # one study
    python benchmarks/recovery.py --merge recovery_gmm,recovery_hmm   # -> recovery.md

Cells (the simulators are ppgen.testing.recovery's; seeds fixed, so a run is reproducible):

- gmm K in {2, 3, 5}: n = 1000 rows in 2 dimensions, VVV components (random orientations,
  axis variances in [0.5, 2]), closest pair of means at Mahalanobis distance exactly 3 under
  each of the two covariances; ``ppgen.select("gmm", ...)`` over EEE and VVV x K =
  1..K+2 with BIC and ICL (mclust's conventions, select's default starts); a hit when the
  pick's K is the truth, whatever its structure.
- hmm S in {2, 3, 4}: one sequence of T = 1000 steps, unit-variance Gaussian emissions with
  means 3 standard deviations apart, self-transition 0.9; ``select("hmm", ...)`` over
  1..S+2 states with BIC (n = T).
- bpca q in {2, 4}: n = 500 rows, d = 10 columns, loadings N(0, 2^2), unit noise;
  ``BayesianPCA()`` (9 candidate components, ARD); a hit when the effective dimension is within
  1 of q (the issue's claim), and separately when it is exactly q.

Reported: hits, rate, 95% Wilson and Clopper-Pearson intervals, the histogram of the picks.
Writes benchmarks/results/recovery.md and .csv (rewritten after every cell).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, pin_threads, write_table  # noqa: E402

THREADS = pin_threads(1)

from ppgen.testing.recovery import bpca_recovery, gmm_recovery, hmm_recovery  # noqa: E402

CELLS = {
    "gmm": [(gmm_recovery, K, 1000 + K) for K in (2, 3, 5)],
    "hmm": [(hmm_recovery, S, 2000 + S) for S in (2, 3, 4)],
    "bpca": [(bpca_recovery, q, 3000 + q) for q in (2, 4)],
}

NOTES = """
Goal (issue 14): each criterion recovers the truth in >= 90% of the replications. `rate` is
hits / reps; `wilson_*` and `cp_*` are the 95% Wilson and Clopper-Pearson intervals of the
rate; `picks` is the histogram (picked value: count). Separation: the closest pair of
component means at Mahalanobis distance 3 (mixtures: under each of the two covariances; HMM:
adjacent states 3 sd apart; the `separation` column, not used by the bpca cells). See the
module docstring for the designs and
ppgen/testing/recovery.py for the simulators. `seconds` is the wall time of the cell.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--studies", default="gmm,hmm,bpca")
    parser.add_argument("--name", default="recovery")
    parser.add_argument(
        "--separation", type=float, default=3.0, help="Mahalanobis distance of the closest means"
    )
    parser.add_argument(
        "--merge", help="comma-separated result names (CSV) to merge into --name, no fitting"
    )
    args = parser.parse_args()
    if args.merge:
        import pandas as pd

        parts = [pd.read_csv(RESULTS / f"{name}.csv") for name in args.merge.split(",")]
        rows = pd.concat(parts).fillna({"separation": 3.0}).to_dict("records")
        write_table(args.name, rows, NOTES, title="Recovery studies (issue 14)")
        return
    rows = []
    for study in args.studies.split(","):
        for run, truth, seed in CELLS[study]:
            start = time.perf_counter()
            cell = run(truth, args.reps, seed, separation=args.separation)
            seconds = time.perf_counter() - start
            for row in cell.rows():
                rows.append({**row, "separation": args.separation, "seconds": round(seconds, 1)})
                print(row, flush=True)
            write_table(args.name, rows, NOTES, title="Recovery studies (issue 14)")


if __name__ == "__main__":
    main()
