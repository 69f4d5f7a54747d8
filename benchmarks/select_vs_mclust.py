"""ppgen.select's Gaussian-mixture grid against mclust's ``mclustBIC``.

(Not named select.py: the benchmarks folder is first on sys.path, and a select.py there shadows
the standard library's ``select`` module, which subprocess imports.)

    python benchmarks/select_vs_mclust.py            # 14 structures x G = 1..9, faithful + wine
    python benchmarks/select_vs_mclust.py --quick    # 4 structures x G = 1..3 on faithful
    python benchmarks/select_vs_mclust.py --data faithful --n-init 3

Fits the grid with ``ppgen.select("gmm", ..., criteria=("bic", "icl"))`` (serial, one thread)
and reports the wall and CPU time against mclust's own (R 4.2.2, mclust 6.0.0 on this 2-core
machine, /work/shared/reference/mclust_time.out: 1.0 s on faithful, 6.6 s on wine for the whole
14 x 9 grid), whether the BIC and ICL picks are mclust's, and how many candidates reach
mclust's BIC - 2e-3 (the log-likelihood >= mclust's - 1e-3). Writes
benchmarks/results/select{,_quick}.md and .csv, and each grid's table as
select_<data>_table.csv. CPU time is reported beside wall time: the
machine is shared, and wall time then counts other jobs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, markdown_table, pin_threads, write_table  # noqa: E402

pin_threads(1)

import ppgen  # noqa: E402
from ppgen.models.covariances import STRUCTURES  # noqa: E402
from ppgen.select import select  # noqa: E402

#: mclust's seconds for mclustBIC over 14 x 9 (mclust_time.out) and its picks (mclust.out).
MCLUST = {
    "faithful": {"seconds": 1.001, "bic": ("EEE", 3), "icl": ("VVE", 2)},
    "wine": {"seconds": 6.616, "bic": ("VVE", 3), "icl": ("VVE", 3)},
}


def _data(name: str):
    frame = ppgen.datasets.load(name)
    return frame.drop(columns="target") if name == "wine" else frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", choices=("faithful", "wine", "both"), default="both")
    parser.add_argument("--n-init", type=int, default=None,
                        help="starts: hierarchical + n-1 k-means++ (default 1)")  # fmt: skip
    args = parser.parse_args()
    names = ["faithful"] if args.quick else (["faithful", "wine"] if args.data == "both"
                                              else [args.data])  # fmt: skip
    grid = ({"structure": ["EEE", "VVE", "VEE", "VVV"], "K": [1, 2, 3]} if args.quick
            else {"structure": STRUCTURES, "K": range(1, 10)})  # fmt: skip
    options = {} if args.n_init is None else {"n_init": args.n_init}
    rows, tables = [], []
    for name in names:
        data = _data(name)
        wall, cpu = time.perf_counter(), time.process_time()
        report = select("gmm", data, grid=grid, criteria=("bic", "icl"), model_options=options)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ref = MCLUST[name]
        na = int(report.table["bic"].isna().sum())
        rows.append({
            "data": name,
            "candidates": len(report.table),
            "ppgen wall s": round(wall, 1),
            "ppgen CPU s": round(cpu, 1),
            "mclust s": ref["seconds"],
            "CPU ratio": round(cpu / ref["seconds"], 1),
            "BIC pick": ",".join(map(str, report.picks["bic"])),
            "mclust BIC pick": ",".join(map(str, ref["bic"])),
            "ICL pick": ",".join(map(str, report.picks["icl"])),
            "mclust ICL pick": ",".join(map(str, ref["icl"])),
            "NA": na,
            "starts": "hc" if args.n_init is None else f"hc + {args.n_init - 1} k-means++",
        })  # fmt: skip
        report.table.to_csv(RESULTS / f"select_{name}_table.csv", index=False)
        best = report.table.sort_values("bic", ascending=False).head(5)
        top = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
               for r in best.to_dict("records")]  # fmt: skip
        tables.append(f"### {name}: top 5 by BIC\n\n" + markdown_table(top))
        print(rows[-1], flush=True)
    notes = (
        "BIC and ICL in mclust's convention (2 log L - df log n). Times: the whole grid, "
        "serial, one torch thread, select's default starts (one per candidate, from the "
        "model-based hierarchical agglomeration with mclust's VVV criterion on mclust's SVD "
        "transform of the data, computed once; VVV and VVI also fitted from one k-means++ "
        "start, the better kept) and select's EM: SQUAREM-accelerated (accelerate=True) to "
        "the same stopping rule as plain EM, one plain step gaining < 1e-8 nats/row; unless "
        "--n-init. mclust starts from its own agglomeration and stops at a relative change of "
        "1e-5. Before (k-means++ x 10 screened starts): faithful 96.5 s CPU, wine 164.4 s; "
        "with the hierarchical starts and plain EM (git 40ff90f): faithful 23.6 s, wine 32.8 s; "
        "with SQUAREM (git f691e66): faithful 6.7 s, wine 12.8 s. Now every EM iteration of a "
        "complete continuous table runs in GaussianMixture's fused float64 numpy kernel "
        "(ppgen/models/_gmm_kernel.py; the covariance structures' M-steps in numpy too), "
        "accelerated EM iterates on its arrays, and select infers the schema once and scores "
        "each candidate from the fit's kept encoding. The machine is shared: the load average "
        "is in the Machine section; CPU seconds inflate under load too."
    )
    suffix = "_quick" if args.quick else ("" if args.data == "both" else f"_{args.data}")
    write_table(f"select{suffix}", rows, notes, title="ppgen.select vs mclust",
                extra="\n\n".join(tables))  # fmt: skip


if __name__ == "__main__":
    main()
