"""``ppgen sample``: draw new rows (or sequences) from a saved fit."""

from __future__ import annotations

import argparse
import sys

from ppgen.cli._common import (
    add_seed,
    check_writable,
    is_sequential,
    load_fit,
    positive_int,
)

EXAMPLES = """\
examples:
  ppgen sample faithful.ppgen -n 500 -o samples.csv
  ppgen sample faithful.ppgen -n 10 --seed 3          # CSV to standard output
  ppgen sample series.ppgen -n 5 --length 50 -o sim.csv  # 5 sequences of 50 steps

For sequence models (hmm) -n is the number of sequences, each of --length time steps (default
100): the file has n x length rows, with the fitted id and time columns (or a column 'sequence'
when the model was fitted on one sequence).
"""

#: Steps per simulated sequence when --length is not given.
DEFAULT_LENGTH = 100


#: One line in ``ppgen --help``, and the top of ``ppgen sample --help``.
HELP = "draw new rows from a saved fit"
DESCRIPTION = "Draw new rows from a saved fit, with the fitted column names and types."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``ppgen sample --help``)."""
    parser.add_argument("model", help="a fit saved by 'ppgen fit'")
    parser.add_argument(
        "-n",
        type=positive_int,
        required=True,
        help="number of rows; for sequence models (hmm), number of sequences",
    )
    parser.add_argument(
        "--length",
        type=positive_int,
        default=None,
        metavar="T",
        help=f"sequence models (hmm): time steps per sequence (default: {DEFAULT_LENGTH})",
    )
    add_seed(parser)
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="CSV",
        help="CSV file to write (default: standard output)",
    )


def run(args: argparse.Namespace) -> int:
    fit = load_fit(args.model)
    if args.output:
        check_writable(args.output)
    if is_sequential(fit):
        length = args.length or DEFAULT_LENGTH
        samples = fit.sample(args.n, length, seed=args.seed)
    elif args.length is not None:
        raise ValueError(
            f"--length applies to sequence models (hmm); {fit.model.label()} draws rows"
        )
    else:
        samples = fit.sample(args.n, seed=args.seed)
    if isinstance(samples, (list, dict)):  # HMM fitted on one sequence: a list of sequences
        import pandas as pd

        parts = samples.values() if isinstance(samples, dict) else samples
        samples = pd.concat(
            [part.assign(sequence=i) for i, part in enumerate(parts)], ignore_index=True
        )
        samples = samples[["sequence", *samples.columns[:-1]]]
    if args.output is None:
        samples.to_csv(sys.stdout, index=False)
    else:
        samples.to_csv(args.output, index=False)
        what = f"{len(samples)} rows"
        if is_sequential(fit):
            what += f" ({args.n} sequences x {args.length or DEFAULT_LENGTH} steps)"
        print(f"wrote {what} x {samples.shape[1]} columns to {args.output}")
    return 0
