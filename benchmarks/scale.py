"""Scaling out (issue 20): GMM EM on one machine, in processes and streamed from Parquet.

    python benchmarks/scale.py [--rows 1000000] [--dims 8] [--iters 5]
        [--stream-rows 1e4,1e5,1e6,1e7] [--vae-rows 1e4,1e5,1e6,1e7] [--vae-max-rows 2e5]

One table, ``benchmarks/results/scale.md`` (and ``.csv``), with a ``section`` column (other
sections, e.g. VAE SVI and IWAE evaluation, may be added by other parts of issue 20):

* ``ceiling``: this machine's two-process ceiling. The same work (``--iters`` EM iterations of
  ``GaussianMixture(3)`` on ``--rows`` x ``--dims``, in memory, one thread) run by one process,
  then by two independent processes side by side; ceiling = 2 x (one's wall time) / (the pair's
  wall time), the speed-up two processes can give at best here (2.0 on two idle cores).
* ``ranks``: the same EM on the same table with rows sharded over 1 and 2 ranks (torchrun,
  gloo on 127.0.0.1, statistics all-reduced each iteration); speed-up = time per iteration on 1
  rank / on 2 ranks, and its share of the ceiling (goal >= 90 % at 10^6 rows).
* CPU seconds per iteration are summed over the processes of a row (``cpu_s_per_iter``): on a
  shared machine wall times move with the load, CPU time much less; CPU efficiency of 2 ranks =
  CPU of 1 rank / CPU of 2 ranks (the share of the work that is not overhead).
* ``stream``: EM on a Parquet file of n rows (written in row groups of 65,536) read in chunks of
  65,536 rows: time per iteration and peak resident memory of the process (``ru_maxrss``), vs
  the same fit in memory (``memory`` rows, up to ``--memory-max`` = 10^6 rows: beyond, the
  table is not held in memory, the point of streaming): streamed memory should be flat in n.
  The Parquet file is written to a temporary directory chunk by chunk and deleted after.
* ``vae``: ``ppgen.fit(VAE(8, hidden=(128, 128)), "digits.parquet", max_epochs=1,
  batch_size=128)`` streamed from a Parquet file of n digits-sized rows (scikit-learn's
  digits, 64 columns, drawn with replacement; row groups of 65,536 rows, dictionary-encoded);
  here ``s_per_iter`` and ``cpu_s_per_iter`` are seconds per 10^4 training rows, timed from
  the epoch's first minibatch (sample and schema excluded), over the whole epoch when
  n <= ``--vae-max-rows`` and over its first ``--vae-max-rows`` rows (of the shuffled
  epoch: every row group is read when first visited) otherwise, the epoch's time then
  extrapolated (the note says which); peak resident memory of the process. In memory too
  for n <= ``--vae-max-rows``.

Every number is the median over the iterations after the first of one run (the machine is
shared: the load average is printed with the table).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads  # noqa: E402

pin_threads(1)

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve()
RESULTS = HERE.parent / "results"
K = 3


def table(rows: int, dims: int, seed: int = 0) -> np.ndarray:
    """K well-separated Gaussian clusters, float64."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(K, size=rows)
    centers = rng.normal(0, 3, (K, dims))
    return centers[labels] + rng.normal(0, 1, (rows, dims))


def write_parquet(path: Path, rows: int, dims: int, chunk: int = 65_536) -> None:
    """The table of :func:`table` written chunk by chunk (never whole in memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for first in range(0, rows, chunk):
        n = min(chunk, rows - first)
        block = table(n, dims, seed=first + 1)
        batch = pa.table({f"x{j}": block[:, j] for j in range(dims)})
        if writer is None:
            writer = pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch, row_group_size=chunk)
    writer.close()


def write_digits_parquet(path: Path, rows: int, chunk: int = 65_536, seed: int = 0) -> None:
    """``rows`` digits-sized rows (scikit-learn's 8 x 8 digits, 64 columns of 0-16, drawn with
    replacement, seeded), written chunk by chunk in row groups of ``chunk`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits

    digits = load_digits().data.astype("float64")
    rng = np.random.default_rng(seed)
    writer = None
    for first in range(0, rows, chunk):
        block = digits[rng.integers(len(digits), size=min(chunk, rows - first))]
        batch = pa.table({f"p{j}": block[:, j] for j in range(block.shape[1])})
        if writer is None:
            writer = pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch, row_group_size=chunk)
    writer.close()


def vae_worker(args) -> None:
    """One streamed VAE epoch (``--mode vae``): ``ppgen.fit(VAE(8, hidden=(128, 128)),
    path, max_epochs=1, batch_size=128)``; the epoch stops after ``--max-rows`` training rows
    (timed from its first minibatch: the sample read and schema inference excluded). With
    ``--in-memory`` the same fit on the table read whole."""
    import ppgen
    from ppgen.infer import stream

    record: dict = {}
    original = stream.Stream.minibatches

    def minibatches(self, *a, **k):
        epoch = original(self, *a, **k)

        def timed(*ea, **ek):
            done, t0, c0 = 0, None, None
            for xb, mb in epoch(*ea, **ek):
                if t0 is None:
                    t0, c0 = time.perf_counter(), time.process_time()
                yield xb, mb
                done += len(xb)
                if done >= args.max_rows:
                    break
            record.update(rows_done=done, wall=time.perf_counter() - t0,
                          cpu=time.process_time() - c0)  # fmt: skip

        return timed

    stream.Stream.minibatches = minibatches
    opts = dict(max_epochs=1, batch_size=128, validation=0.0, seed=0, progress=False)
    # The first Adam imports torch._dynamo (seconds): once, before anything is timed.
    ppgen.fit(ppgen.VAE(2, hidden=(8,)), np.random.default_rng(0).normal(size=(64, 3)), **opts)
    if args.in_memory:
        import pandas as pd

        data = pd.read_parquet(args.path)
        t0, c0 = time.perf_counter(), time.process_time()
        ppgen.fit(ppgen.VAE(8, hidden=(128, 128)), data, **opts)
        record.update(rows_done=len(data), wall=time.perf_counter() - t0,
                      cpu=time.process_time() - c0)  # fmt: skip
    else:
        ppgen.fit(ppgen.VAE(8, hidden=(128, 128)), args.path, **opts)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({**record, "peak_mb": peak}))


def _problem(x: np.ndarray, distributed: bool, n_total: int):
    import ppgen
    from ppgen.data.schema import Schema
    from ppgen.infer.layouts import get_layout

    model = ppgen.GaussianMixture(K)
    layout = get_layout("rows")
    # The schema of the whole table (here: of the first rows of every shard alike).
    schema = Schema.infer(table(20_000, x.shape[1]))
    enc = schema.encode(x)
    prob = layout.problem(layout.build(model, schema, enc), schema, enc, seed=0, progress=False)
    if distributed:
        import dataclasses

        prob = dataclasses.replace(prob, distributed="torchrun", n_units=n_total)
    return prob


def _start(prob):
    gen = torch.Generator().manual_seed(0)
    n = min(20_000, prob.x.shape[0])
    return prob.model.init_params(prob.x[:n], prob.mask[:n], gen)


def _iterate(prob, iters: int) -> tuple[list[float], list[float]]:
    """Wall and process CPU seconds of each of ``iters`` EM iterations."""
    from ppgen.infer.engines.em import em_iteration, start_problem

    params = _start(start_problem(prob))
    times, cpu = [], []
    with torch.no_grad():
        for _ in range(iters):
            t0, c0 = time.perf_counter(), time.process_time()
            params, _ = em_iteration(prob, params)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return times, cpu


def _median(values: list[float]) -> float:
    return float(np.median(values[1:] if len(values) > 1 else values))


def _report(times: tuple[list[float], list[float]], **extra) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB (Linux: KB)
    wall, cpu = times
    print(json.dumps({"per_iter": _median(wall), "cpu": _median(cpu), "peak_mb": peak, **extra}))


def rank_share(rows: int, dims: int) -> tuple[int, int, np.ndarray]:
    """Join the torchrun group (gloo): this rank, the world size and the rank's even share of
    the ``rows`` x ``dims`` table."""
    x = table(rows, dims)
    torch.distributed.init_process_group("gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    bounds = np.linspace(0, rows, world + 1).astype(int)
    return rank, world, x[bounds[rank] : bounds[rank + 1]]


def worker(args) -> None:
    """One process: in-memory EM (``--mode memory``), one rank of a torchrun group
    (``--mode rank``) or streamed from ``--path`` (``--mode stream``)."""
    if args.mode == "vae":
        vae_worker(args)
        return
    if args.mode == "stream":
        import ppgen
        from ppgen.infer.stream import open_source

        source = open_source(args.path)
        sample = source.sample(20_000, 0)
        from ppgen.data.schema import Schema
        from ppgen.infer.layouts import get_layout

        schema = Schema.infer(sample)
        enc = schema.encode(sample)
        layout = get_layout("rows")
        model = ppgen.GaussianMixture(K)
        prob = layout.problem(layout.build(model, schema, enc), schema, enc, seed=0, progress=False)
        prob = source.problem(prob, schema)
        _report(_iterate(prob, args.iters), rows=source.n_rows)
        return
    if args.mode == "memory":
        x = table(args.rows, args.dims)
        _report(_iterate(_problem(x, False, args.rows), args.iters), rows=args.rows)
        return
    rank, world, mine = rank_share(args.rows, args.dims)
    wall, cpu = _iterate(_problem(mine, world > 1, args.rows), args.iters)
    # CPU seconds of every rank, summed: the work the run costs, whatever else runs here.
    total = torch.tensor(cpu, dtype=torch.float64)
    torch.distributed.all_reduce(total)
    times = (wall, total.tolist())
    torch.distributed.destroy_process_group()
    if rank == 0:
        _report(times, rows=args.rows, ranks=world)


def _run(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _self(*extra: str) -> list[str]:
    return [sys.executable, str(HERE), "worker", *extra]


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker")
    w.add_argument("--mode", choices=("memory", "rank", "stream", "vae"), required=True)
    w.add_argument("--max-rows", type=int, default=10**9)
    w.add_argument("--in-memory", action="store_true")
    w.add_argument("--rows", type=int, default=1_000_000)
    w.add_argument("--dims", type=int, default=8)
    w.add_argument("--iters", type=int, default=5)
    w.add_argument("--path")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--stream-rows", default="1e4,1e5,1e6,1e7")
    parser.add_argument("--memory-max", type=float, default=1e6,
                        help="in-memory comparison rows only up to this many rows")  # fmt: skip
    parser.add_argument("--vae-rows", default="1e4,1e5,1e6,1e7")
    parser.add_argument("--vae-max-rows", type=float, default=2e5,
                        help="rows timed per streamed VAE epoch (the rest not run)")  # fmt: skip
    parser.add_argument("--skip", default="", help="sections to skip, comma-separated")
    parser.add_argument("--name", default="scale", help="results file: results/NAME.{md,csv}")
    args = parser.parse_args()
    if args.command == "worker":
        worker(args)
        return
    skip = set(filter(None, args.skip.split(",")))
    base = ["--rows", str(args.rows), "--dims", str(args.dims), "--iters", str(args.iters)]
    rows_out = []
    shape = f"{args.rows:.0e} x {args.dims}"

    def add(section, setting, rows, per_iter, peak, note="", cpu=float("nan")):
        rows_out.append({
            "section": section, "setting": setting, "rows": rows,
            "s_per_iter": f"{per_iter:.3f}" if per_iter == per_iter else "",
            "cpu_s_per_iter": f"{cpu:.3f}" if cpu == cpu else "",
            "peak_mb": f"{peak:.0f}" if peak == peak else "", "note": note,
        })  # fmt: skip
        print(rows_out[-1], flush=True)

    if "ceiling" not in skip:
        t0 = time.perf_counter()
        one = _run(_self("--mode", "memory", *base))
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        pair = [subprocess.Popen(_self("--mode", "memory", *base), stdout=subprocess.PIPE)
                for _ in range(2)]  # fmt: skip
        outs = [json.loads(p.communicate()[0].decode().strip().splitlines()[-1]) for p in pair]
        t_pair = time.perf_counter() - t0
        per_pair = max(o["per_iter"] for o in outs)
        ceiling = 2 * one["per_iter"] / per_pair
        add("ceiling", "1 process", args.rows, one["per_iter"], one["peak_mb"],
            f"whole run {t_one:.1f} s", one["cpu"])  # fmt: skip
        add("ceiling", "2 processes side by side", args.rows, per_pair, outs[0]["peak_mb"],
            f"whole run {t_pair:.1f} s; ceiling = 2 x 1 process / pair = {ceiling:.2f}",
            sum(o["cpu"] for o in outs),
        )  # fmt: skip
    else:
        ceiling = float("nan")
    if "ranks" not in skip:
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        per, cpus = {}, {}
        for n in (1, 2):
            cmd = [torchrun, "--standalone", f"--nproc-per-node={n}", str(HERE), "worker",
                   "--mode", "rank", *base]  # fmt: skip
            res = _run(cmd)
            per[n], cpus[n] = res["per_iter"], res["cpu"]
            note = ""
            if n == 2:
                speed = per[1] / per[2]
                note = f"speed-up {speed:.2f}"
                if ceiling == ceiling:
                    note += f" = {100 * speed / ceiling:.0f} % of the ceiling {ceiling:.2f}"
                note += f"; CPU efficiency {100 * cpus[1] / cpus[2]:.0f} %"
            add("ranks", f"{n} rank{'s' * (n > 1)} (torchrun, gloo)", args.rows, per[n],
                res["peak_mb"], note, cpus[n])  # fmt: skip
    if "stream" not in skip:
        with tempfile.TemporaryDirectory() as tmp:
            for n in [int(float(v)) for v in args.stream_rows.split(",")]:
                path = Path(tmp) / f"t{n}.parquet"
                write_parquet(path, n, args.dims)
                res = _run(_self("--mode", "stream", "--path", str(path), "--iters",
                                 str(args.iters)))  # fmt: skip
                add("stream", "Parquet, chunks of 65,536", n, res["per_iter"], res["peak_mb"],
                    cpu=res["cpu"])  # fmt: skip
                os.remove(path)
                if n > args.memory_max:  # the point of streaming: not held in memory
                    continue
                mem = _run(_self("--mode", "memory", "--rows", str(n), "--dims", str(args.dims),
                                 "--iters", str(args.iters)))  # fmt: skip
                add("stream", "in memory", n, mem["per_iter"], mem["peak_mb"], cpu=mem["cpu"])
    if "vae" not in skip:
        limit = int(args.vae_max_rows)
        with tempfile.TemporaryDirectory() as tmp:
            for n in [int(float(v)) for v in args.vae_rows.split(",")]:
                path = Path(tmp) / f"digits{n}.parquet"
                write_digits_parquet(path, n)
                settings = [("Parquet, row groups of 65,536", [])]
                if n <= min(limit, args.memory_max):
                    settings.append(("in memory", ["--in-memory"]))
                for setting, extra in settings:
                    res = _run(_self("--mode", "vae", "--path", str(path), "--max-rows",
                                     str(limit), *extra))  # fmt: skip
                    per_10k = 1e4 * res["wall"] / res["rows_done"]
                    full = res["rows_done"] >= n
                    note = (f"epoch {res['wall']:.1f} s" if full else
                            f"epoch ~{per_10k * n / 1e4:.0f} s extrapolated from the first "
                            f"{res['rows_done']:,} rows")  # fmt: skip
                    rows_out.append({
                        "section": "vae", "setting": setting, "rows": n,
                        "s_per_iter": f"{per_10k:.3f}",
                        "cpu_s_per_iter": f"{1e4 * res['cpu'] / res['rows_done']:.3f}",
                        "peak_mb": f"{res['peak_mb']:.0f}", "note": note,
                    })  # fmt: skip
                    print(rows_out[-1], flush=True)
                os.remove(path)
    load = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    import csv

    fields = ["section", "setting", "rows", "s_per_iter", "cpu_s_per_iter", "peak_mb", "note"]
    csv_path = RESULTS / f"{args.name}.csv"
    with open(csv_path, "w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=fields)
        out.writeheader()
        out.writerows(rows_out)
    skipped = f" --skip {args.skip} --name {args.name}" if args.skip else ""
    lines = [
        "# Scaling out: GMM EM (issue 20)",
        "",
        f"`python benchmarks/scale.py{skipped} --rows {args.rows} --dims {args.dims} --iters "
        f"{args.iters} --stream-rows {args.stream_rows} --vae-rows {args.vae_rows} "
        f"--vae-max-rows {args.vae_max_rows:.0e}`; GaussianMixture({K}), full "
        f"covariance, {shape} unless the row says otherwise; one thread per process; load "
        f"average at the end {load[0]:.1f} on {os.cpu_count()} cores (a shared machine). "
        "Section `vae`: VAE(8, hidden=(128, 128)) on digits-sized rows, seconds (wall, CPU) "
        "per 10^4 training rows of a streamed epoch, batch 128 (see the script's docstring).",
        "",
        "| " + " | ".join(fields) + " |",
        "|" + "---|" * len(fields),
    ]
    lines += ["| " + " | ".join(str(r[f]) for f in fields) + " |" for r in rows_out]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
