"""Start-up time of the ``ppgen`` command: ``--help`` should not import torch.

Runs each command ``--repeats`` times in fresh interpreters (the first run warms the file
cache and is discarded) and reports the median wall time, plus the modules the command loaded
(torch, pyro, pandas) so a slow start can be traced to an import.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 7]

Writes results/cli_startup.md and .csv. Goal: ``ppgen --help`` under 0.5 s (2.5-2.8 s before
the CLI became a lazily importing package).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _common import write_table

COMMANDS = (
    ("ppgen --help", ["--help"]),
    ("ppgen fit --help", ["fit", "--help"]),
    ("ppgen score --help", ["score", "--help"]),
)
PROBE = (
    "import runpy, sys; sys.argv = ['ppgen', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('ppgen.cli', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "print('LOADED', *[m for m in ('torch', 'pyro', 'pandas') if m in sys.modules])"
)


def wall_time(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ppgen.cli", *args], capture_output=True, check=True)
    return time.perf_counter() - t0


def loaded(args: list[str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True
    ).stdout.splitlines()
    names = [line for line in out if line.startswith("LOADED")]
    return " ".join(names[-1].split()[1:]) if names else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for label, argv in COMMANDS:
        wall_time(argv)  # warm the file cache
        times = [wall_time(argv) for _ in range(args.repeats)]
        rows.append(
            {
                "command": label,
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "heavy_modules_loaded": loaded(argv) or "none",
            }
        )
        print(rows[-1])
    notes = (
        "Wall time of `python -m ppgen.cli ...` in a fresh interpreter (median of "
        f"{args.repeats} runs after one warm-up), and which of torch, pyro and pandas the "
        "command imported. Goal: `ppgen --help` < 0.5 s without torch."
    )
    write_table("cli_startup", rows, notes, title="ppgen command start-up")


if __name__ == "__main__":
    main()
