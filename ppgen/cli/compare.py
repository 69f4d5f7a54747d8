"""``ppgen compare``: every generative family side by side on a CSV file (:func:`ppgen.compare`)."""

from __future__ import annotations

import argparse

from ppgen.cli._common import add_quiet, add_seed, check_writable, progress, read_csv

EXAMPLES = """\
examples:
  ppgen compare penguins.csv
  ppgen compare wine.csv --models gmm,vae,hvae,independent,parzen --budget 120
  ppgen compare data.csv -o table.csv --figure compare.png

One seeded train/test split (stratified by the first label column); each family is fitted on the
training rows within --budget seconds of its own CPU time (at most 4 budgets of wall-clock time;
over-budget families are reported as such) and judged on
the held-out rows: held-out log-likelihood in nats per row (exact, or an IWAE/ELBO lower bound,
as labelled), the gradient-boosted classifier two-sample test (detection 1 = indistinguishable),
MMD^2, precision/recall/density/coverage, SDMetrics shape/trend scores, the median distance of
synthetic rows to the closest training row, and training and sampling times. Families whose
constructor needs a size (gmm, ppca) get the one with the best BIC among 1..5. Columns of
whole numbers stored as decimals (e.g. pixel counts 0.0-16.0) have their samples rounded and
clipped to the training range before they are judged (--no-lattice: judge the raw samples).
"""

HELP = "fit every generative family to a CSV file and compare held-out likelihood and samples"
DESCRIPTION = (
    "Fit several generative families to one table and measure them side by side: held-out "
    "likelihood, two-sample tests and sample-quality scores."
)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``ppgen compare --help``)."""
    parser.add_argument("data", help="CSV file, one row per observation")
    parser.add_argument(
        "--models",
        metavar="NAMES",
        help="comma-separated families and baselines, e.g. gmm,vae,independent,parzen "
        "(default: every registered family for table rows, and the baselines)",
    )
    parser.add_argument(
        "--test-size",
        type=_fraction,
        default=0.25,
        metavar="FRACTION",
        help="share of rows held out (default: 0.25)",
    )
    parser.add_argument(
        "--budget",
        type=_seconds,
        default=300.0,
        metavar="SECONDS",
        help="CPU seconds per family; the wall clock stops it at 4 times as many (default: 300)",
    )
    parser.add_argument(
        "--no-lattice",
        action="store_true",
        help="judge raw samples of whole-number columns, not rounded to the training lattice",
    )
    parser.add_argument("-o", "--output", metavar="CSV", help="write the table to this file")
    parser.add_argument("--figure", metavar="PNG", help="write the figure to this file")
    add_seed(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from ppgen.comparison import compare

    for path in (args.output, args.figure):
        if path is not None:
            check_writable(path)
    models = None
    if args.models is not None:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        if not models:
            raise ValueError("--models needs at least one name")
    frame = read_csv(args.data)
    result = compare(
        frame,
        models,
        test_size=args.test_size,
        seed=args.seed,
        budget_s=args.budget,
        progress=progress(args.quiet),
        lattice=not args.no_lattice,
    )
    print(f"{args.data}: {len(result.train)} training rows, {len(result.test)} held out")
    print(result)
    if args.output is not None:
        result.table.to_csv(args.output, index=False)
        print(f"wrote {args.output}")
    if args.figure is not None:
        result.figure().savefig(args.figure, dpi=100)
        print(f"wrote {args.figure}")
    return 0
