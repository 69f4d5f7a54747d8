"""Data-parallel VAE training and IWAE evaluation (issue 20): 1 rank vs 2 ranks vs this machine's
two-process ceiling.

The ceiling: the same one-process work run twice side by side (two independent processes)
against once; ``ceiling = 2 * t_one / t_side`` is the speed-up two processes can get on this
machine at all (2 on two idle cores; less when the cores are shared or memory-bound). The
distributed run (``torchrun --standalone --nproc-per-node 2``) does the same total work; its
speed-up ``t_one / t_two`` as a share of the ceiling is the efficiency (goals: >= 80 % for SVI
throughput, >= 90 % for IWAE evaluation).

Work (digits-sized rows: sklearn's 1797 x 64 digits):

* ``svi``: ``ppgen.fit(VAE(8, hidden=(128, 128)), digits, max_epochs=E, batch_size=128,
  validation=0)``: rows per second of training (the 2-rank run: global minibatch 128, 64 per
  rank, gradients all-reduced every step);
* ``iwae``: ``ppgen.evaluate.iwae(fit, digits, k=K, distributed=True)``: rows per second.

Times are measured inside each process around the work only (imports and the process group's
start excluded), the median of ``--repeats`` runs. Run::

    python benchmarks/scale_svi.py              # full size: E=10 epochs, K=200
    python benchmarks/scale_svi.py --quick      # E=2, K=50 (a minute)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import pin_threads, write_table

pin_threads(1)

HERE = Path(__file__).resolve()


def work(kind: str, epochs: int, k: int, distributed: bool) -> float:
    """Seconds of one run of the work (inside this process)."""
    import torch
    from sklearn.datasets import load_digits

    import ppgen

    torch.set_num_threads(1)
    data = load_digits().data.astype("float64")
    opts = dict(max_epochs=epochs, batch_size=128, validation=0.0, seed=0)
    if kind == "svi":
        if distributed:  # start the process group outside the timed region
            ppgen.infer.distributed.resolve(True)
            torch.distributed.barrier()
        start = time.perf_counter()
        ppgen.fit(ppgen.VAE(8, hidden=(128, 128)), data, distributed=distributed, **opts)
        return time.perf_counter() - start
    fit = ppgen.fit(ppgen.VAE(8, hidden=(128, 128)), data, max_epochs=1, validation=0.0)
    if distributed:
        ppgen.infer.distributed.resolve(True)
        torch.distributed.barrier()
    start = time.perf_counter()
    ppgen.evaluate.iwae(fit, data, k=k, distributed=True)
    return time.perf_counter() - start


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), env.get("PYTHONPATH", "")])
    return env


def _launch(args: list[str], n: int) -> list[subprocess.Popen]:
    cmd = [sys.executable, str(HERE), "--worker", *args]
    return [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, text=True) for _ in range(n)]


def _times(procs: list[subprocess.Popen]) -> list[float]:
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        assert p.returncode == 0, stdout
        out.append(json.loads(stdout.strip().splitlines()[-1])["seconds"])
    return out


def _torchrun(args: list[str]) -> float:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    proc = subprocess.run(
        [*cmd, str(HERE), "--worker", *args, "--distributed"],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    return max(x["seconds"] for x in lines)  # the step is as slow as the slowest rank


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="svi", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--k", type=int, default=None)
    args = parser.parse_args()
    epochs = args.epochs or (2 if args.quick else 10)
    k = args.k or (50 if args.quick else 200)
    if args.worker:
        seconds = work(args.kind, epochs, k, args.distributed)
        # One write per line: two ranks share the pipe, and print() writes the text and the
        # newline separately when unbuffered (their lines then interleave).
        sys.stdout.write(json.dumps({"seconds": seconds}) + "\n")
        sys.stdout.flush()
        return
    rows = []
    for kind in ("svi", "iwae"):
        wargs = ["--kind", kind, "--epochs", str(epochs), "--k", str(k)]
        one, side, two = [], [], []
        for _ in range(args.repeats):
            one += _times(_launch(wargs, 1))
            side.append(max(_times(_launch(wargs, 2))))
            two.append(_torchrun(wargs))
        t1, ts, t2 = _median(one), _median(side), _median(two)
        ceiling = 2 * t1 / ts
        speedup = t1 / t2
        n_rows = 1797 * (epochs if kind == "svi" else 1)
        rows.append(
            {
                "work": f"VAE SVI, {epochs} epochs" if kind == "svi" else f"IWAE k={k}",
                "rows/s 1 rank": round(n_rows / t1),
                "rows/s 2 ranks": round(n_rows / t2),
                "speed-up 2 ranks": round(speedup, 2),
                "ceiling (2 copies side by side)": round(ceiling, 2),
                "share of ceiling": f"{100 * speedup / ceiling:.0f} %",
                "goal": ">= 80 %" if kind == "svi" else ">= 90 %",
            }
        )
        print(rows[-1], flush=True)
    notes = (
        f"Command: `python benchmarks/scale_svi.py{' --quick' if args.quick else ''}` "
        f"(median of {args.repeats} runs of each; times inside the processes, around the work "
        "only). Digits: 1797 rows x 64 columns; VAE(8, hidden=(128, 128)), batch 128 (the 2-rank "
        "run: 64 rows per rank per step, one all-reduce of the gradients per step), "
        "validation=0. IWAE: distributed=True on both (fixed seeded blocks of 128 rows, the "
        "same values for 1 and 2 ranks). The ceiling is measured in the same session, so a "
        "machine shared with other work lowers both the ceiling and the 2-rank speed-up."
    )
    write_table("scale_svi", rows, notes, title="Data-parallel VAE training and IWAE (issue 20)")


if __name__ == "__main__":
    main()
