"""``ppgen.compare`` on real tables, with CTGAN and TVAE (the ``ctgan`` package) as anchor rows.

    PYTHONPATH=. .venv/bin/python benchmarks/compare.py [--datasets penguins,wine,breast_cancer]
        [--budget 300] [--epochs 300] [--ctgan-python /work/venvs/ctgan/bin/python]

For each data set: ``ppgen.compare(data)`` with its defaults (every registered family for table
rows, the independent-columns and Parzen baselines, a budget per family), then CTGAN and TVAE
fitted on the same training rows in the ctgan venv (pandas < 3; ``benchmarks/_ctgan_anchor.py``)
and judged by the same metrics on the same held-out rows (``ppgen.comparison.sample_metrics``).
CTGAN reports no likelihood; TVAE's is not bounded here (n/a). The ctgan venv is made with

    python3 -m venv /work/venvs/ctgan
    echo <ppgen venv>/lib/python3.11/site-packages \
        > /work/venvs/ctgan/lib/python3.11/site-packages/zz_main_venv.pth
    /work/venvs/ctgan/bin/pip install ctgan "pandas<3"

(the .pth lends it ppgen's torch; its own pandas 2 wins). Without it, the anchor rows are
skipped with a note. Writes results/compare.md and results/compare.csv.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import pin_threads, write_table

pin_threads(1)

import pandas as pd  # noqa: E402

import ppgen  # noqa: E402
from ppgen.comparison import COLUMNS, WALL_FACTOR, _limit_cpu, on_support, sample_metrics  # noqa: E402
from ppgen.data import Schema  # noqa: E402

ANCHOR = Path(__file__).resolve().parent / "_ctgan_anchor.py"
# The table's columns but the verdict texts and the boolean family traits.
SHOWN = [
    "dataset",
    *(c for c in COLUMNS if c not in ("exact_likelihood", "latent_space", "verdict")),
]


def anchors(
    result,
    python: str,
    epochs: int,
    seed: int,
    budget: float,
    kinds=("ctgan", "tvae"),
    lattice: bool = True,
) -> list[dict]:
    rows = []
    schema = Schema.infer(pd.concat([result.train, result.test]))
    with tempfile.TemporaryDirectory() as tmp:
        train_path = Path(tmp) / "train.csv"
        result.train.to_csv(train_path, index=False)
        for kind in kinds:
            row = dict.fromkeys(COLUMNS, math.nan)
            row.update(model=f"{kind.upper()} ({epochs} epochs, ctgan package)")
            out = Path(tmp) / f"{kind}.csv"
            argv = [python, str(ANCHOR), kind, str(train_path), str(out)]
            argv += [str(len(result.test)), str(epochs), str(seed)]
            try:
                # As compare's rows: the budget in CPU seconds, the wall clock at 4 budgets.
                done = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=WALL_FACTOR * budget,
                    check=True,
                    preexec_fn=lambda: _limit_cpu(budget),
                )
            except subprocess.TimeoutExpired:
                row.update(status="over budget", heldout_method="n/a")
                rows.append(row)
                continue
            except subprocess.CalledProcessError as exc:
                if exc.returncode == -signal.SIGXCPU:
                    row.update(status="over budget", heldout_method="n/a")
                else:
                    message = exc.stderr or str(exc)
                    row.update(status="error", heldout_method="n/a", verdict=message[-300:])
                rows.append(row)
                continue
            except OSError as exc:
                message = getattr(exc, "stderr", "") or str(exc)
                row.update(status="error", heldout_method="n/a", verdict=message[-300:])
                rows.append(row)
                continue
            row.update(json.loads(done.stdout.strip().splitlines()[-1]))
            synthetic = pd.read_csv(out)
            # Back to the training table's dtypes (labels as categories, counts as integers).
            for column, dtype in result.train.dtypes.items():
                if isinstance(dtype, pd.CategoricalDtype):
                    synthetic[column] = pd.Categorical(
                        synthetic[column].astype(str), categories=dtype.categories
                    )
                elif pd.api.types.is_integer_dtype(dtype):
                    synthetic[column] = synthetic[column].round().astype(dtype)
            if lattice:  # compare's support rule, as for ppgen's rows
                synthetic = on_support(synthetic, result.train)
            row.update(status="ok", heldout_method="n/a", exact_likelihood=False)
            row.update(sample_metrics(result.train, result.test, synthetic, schema, seed))
            rows.append(row)
    return rows


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (compare fits each family in a
    child process): what the run costs on an idle machine, whatever the load."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="penguins,wine,breast_cancer")
    parser.add_argument("--budget", type=float, default=300.0)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ctgan-python", default="/work/venvs/ctgan/bin/python")
    parser.add_argument("--name", default="compare")
    # e.g. --models gan,independent --anchors ctgan: the GAN against CTGAN alone (issue 16)
    parser.add_argument("--models", default=None, help="ppgen.compare's models (default: all)")
    parser.add_argument("--anchors", default="ctgan,tvae", help="anchor rows of the ctgan package")
    # The GAN-vs-CTGAN table compares samples and train time (CTGAN has no likelihood): its
    # held-out decoder AIS (~120 s CPU on penguins) only slows the run down.
    parser.add_argument("--skip-heldout", action="store_true", help="no held-out likelihood")
    # Raw samples instead of compare's support rule (ppgen.comparison.on_support), every row.
    parser.add_argument("--no-lattice", action="store_true", help="score samples off the lattice")
    args = parser.parse_args()
    if args.skip_heldout:
        # Inherited by compare's forked children; the column reads "n/a (skipped)".
        ppgen.comparison._heldout = lambda *_, **__: (math.nan, "n/a (skipped)")
    rows, notes = [], []
    for name in args.datasets.split(","):
        data = ppgen.datasets.load(name)
        start, cpu = time.perf_counter(), _cpu_seconds()
        models = args.models.split(",") if args.models else None
        result = ppgen.compare(
            data,
            models=models,
            seed=args.seed,
            budget_s=args.budget,
            progress=False,
            lattice=not args.no_lattice,
        )
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        notes.append(
            f"- {name}: {len(data)} rows x {data.shape[1]} columns; ppgen.compare took "
            f"{wall:.0f} s wall, {cpu:.0f} s CPU (itself and its children) ({len(result.train)} "
            f"training, {len(result.test)} held-out rows)"
        )
        table = result.table.to_dict("records")
        if Path(args.ctgan_python).exists():
            kinds = tuple(k for k in args.anchors.split(",") if k)
            table += anchors(
                result,
                args.ctgan_python,
                args.epochs,
                args.seed,
                args.budget,
                kinds,
                lattice=not args.no_lattice,
            )
        else:
            notes.append(f"- {name}: no ctgan venv at {args.ctgan_python}; anchors skipped")
        for row in table:
            rows.append({"dataset": name, **{k: row.get(k) for k in SHOWN[1:]}})
        print(pd.DataFrame(rows[-len(table) :]).to_string(index=False), flush=True)
    text = """
One seeded split per table (test_size 0.25, stratified by the first label column), the same
for every row. heldout_nats: mean log-likelihood per held-out row on the data's scale
(higher is better; exact, or an IWAE lower bound as labelled). detection: 1 - (2 max(AUC, .5) - 1)
of a gradient-boosted classifier telling held-out from as many synthetic rows (1 = it cannot);
c2st_p its permutation p-value. mmd2: unbiased MMD^2 (median-heuristic Gaussian kernel).
precision/recall/coverage: k-NN (k=5, Naeem et al. 2020). shape/trend: SDMetrics' column
shape and pair trend scores. dcr: median distance of a synthetic row to its closest training
row (standardized units). With a few dozen held-out rows (penguins: 86, wine: 45) the
two-sample tests have little power: read detection with its p-value.
CTGAN/TVAE: the ctgan package's defaults except epochs; missing numbers filled with the column
mean, missing labels as a level of their own (ctgan takes no missing values).
Support rule (every row, anchors too, unless --no-lattice): a float column whose training
values are all whole numbers (digits' pixel counts, wine's magnesium and proline) has its
samples rounded and clipped to the training range (ppgen.comparison.on_support).
"""
    write_table(
        args.name,
        rows,
        "\n".join(notes) + "\n" + text,
        title="ppgen.compare on real tables, with CTGAN and TVAE anchors",
    )


if __name__ == "__main__":
    sys.exit(main())
