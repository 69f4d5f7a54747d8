"""CPU seconds per GMM EM iteration of each rank vs one process (issue 20, branch gmm7).

    python benchmarks/scale_rank_cpu.py [--rows 1000000] [--dims 8] [--iters 8]

The work of ``benchmarks/scale.py``'s ``ranks`` section (``GaussianMixture(3)``, full
covariance, on its ``--rows`` x ``--dims`` table, rows split evenly, statistics all-reduced
each iteration; the same ``_problem`` and ``_iterate``), but each process's CPU seconds per
iteration reported on their own: one process on every row, then each of 2 ranks (torchrun,
gloo on 127.0.0.1) on its half. On a shared machine wall times move with the load (the other
engineer's jobs), a process's own CPU time much less: a rank costing half of one process's
CPU per iteration adds no work of its own (its share of the wall-time goal is then set by how
two processes share this machine, ``scale.py``'s ceiling). Medians over the iterations after
the first; writes ``benchmarks/results/scale_rank_cpu.{md,csv}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads  # noqa: E402

pin_threads(1)

import scale  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve()


def worker(args) -> None:
    """One process on every row (``--world 1``) or one torchrun rank on its share; prints the
    records as one JSON list (rank 0 prints every rank's)."""
    if args.world == 1:
        x = scale.table(args.rows, args.dims)
        wall, cpu = scale._iterate(scale._problem(x, False, args.rows), args.iters)
        record = {"who": "1 process, every row", "cpu": scale._median(cpu),
                  "wall": scale._median(wall)}  # fmt: skip
        print(json.dumps([record]), flush=True)
        return
    rank, world, mine = scale.rank_share(args.rows, args.dims)
    wall, cpu = scale._iterate(scale._problem(mine, True, args.rows), args.iters)
    record = {"who": f"rank {rank} of {world}, {len(mine):,} rows",
              "cpu": scale._median(cpu), "wall": scale._median(wall)}  # fmt: skip
    records = [None] * world
    torch.distributed.all_gather_object(records, record)
    torch.distributed.destroy_process_group()
    if rank == 0:
        print(json.dumps(records), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=8)
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--world", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.world:
        worker(args)
        return
    base = ["--rows", str(args.rows), "--dims", str(args.dims), "--iters", str(args.iters)]
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    runs = [
        [sys.executable, str(HERE), *base, "--world", "1"],
        [torchrun, "--standalone", "--nproc-per-node=2", str(HERE), *base, "--world", "2"],
    ]
    records = []
    for cmd in runs:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        records += json.loads(out.strip().splitlines()[-1])
    one = records[0]["cpu"]
    for r in records:
        r["cpu_share_of_one_process"] = f"{r['cpu'] / one:.2f}"
        r["cpu"], r["wall"] = f"{r['cpu']:.3f}", f"{r['wall']:.3f}"
    fields = ["who", "cpu", "wall", "cpu_share_of_one_process"]
    results = HERE.parent / "results"
    with open(results / "scale_rank_cpu.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(records)
    load = os.getloadavg()[0]
    lines = [
        "# GMM EM: CPU seconds per iteration of each rank vs one process (issue 20)",
        "",
        f"`python benchmarks/scale_rank_cpu.py --rows {args.rows} --dims {args.dims} --iters "
        f"{args.iters}`; GaussianMixture(3), full covariance; one thread per process; seconds "
        f"per EM iteration (median after the first); load average at the end {load:.1f} on "
        "2 cores (shared: wall times move with the load).",
        "",
        "| process | CPU s / iter | wall s / iter | CPU share of one process |",
        "|---|---|---|---|",
        *(f"| {r['who']} | {r['cpu']} | {r['wall']} | {r['cpu_share_of_one_process']} |"
          for r in records),
    ]  # fmt: skip
    (results / "scale_rank_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
