"""``ppgen select``: fit a grid of candidates to a CSV file and report each criterion's choice."""

from __future__ import annotations

import argparse

from ppgen.cli._common import (
    add_seed,
    check_writable,
    format_table,
    positive_int,
    read_csv,
)

EXAMPLES = """\
examples:
  ppgen select faithful.csv --family gmm
  ppgen select wine.csv --family gmm --structures VVE,EVE,VVV --sizes 1-5 -o bic.csv
  ppgen select wine.csv --family ppca --sizes 1-6 --criteria bic,heldout
  ppgen select faithful.csv --family gmm --n-boot 20 --plot bic.png

gmm fits mclust's 14 covariance structures (EII ... VVV) x 1..9 components by default; ppca
1..p-1 dimensions; hmm 1..6 states (one sequence per file, or several with --id-column). BIC
and ICL are in mclust's convention, 2 log L - df log n (larger is better; Fit.bic is the
negative); heldout is the mean log-likelihood per row of a seeded 20% split. Candidates whose
fit fails or is singular are NA, with the reason in the table's note column. When the criteria
pick different candidates the report says so.
"""

#: One line in ``ppgen --help``, and the top of ``ppgen select --help``.
HELP = "choose clusters, dimensions or states: a grid of fits scored by BIC, ICL, held-out"
DESCRIPTION = (
    "Fit every candidate of a model family to a CSV file and report the pick of each criterion."
)

#: The families offered (ppgen.select.FAMILIES; named here so that --help imports no torch).
FAMILY_NAMES = ("gmm", "ppca", "fa", "hmm")
#: The grid key holding the size of each family's candidates.
SIZE_KEY = {"gmm": "K", "ppca": "q", "fa": "k", "hmm": "states"}


def sizes(text: str) -> tuple[int, ...]:
    """argparse type: ``1-9`` or ``1,2,5`` (positive integers)."""
    try:
        if "-" in text:
            low, high = (positive_int(part) for part in text.split("-", 1))
            if high < low:
                raise argparse.ArgumentTypeError(f"empty range {text!r}")
            return tuple(range(low, high + 1))
        return tuple(positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a range like 1-9 or integers like 1,2,5, got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``ppgen select --help``)."""
    parser.add_argument("data", help="CSV file with a header row; empty cells are missing")
    parser.add_argument("--family", choices=FAMILY_NAMES, default="gmm", help="default: gmm")
    parser.add_argument(
        "--structures",
        default=None,
        metavar="NAMES",
        help="gmm covariance structures, comma-separated (default: all 14 of mclust)",
    )
    parser.add_argument(
        "--sizes",
        type=sizes,
        default=None,
        metavar="RANGE",
        help="components (gmm), dimensions (ppca) or states (hmm): 1-9 or 1,2,5",
    )
    parser.add_argument(
        "--criteria",
        default="bic,icl,heldout",
        help="comma-separated among bic, icl, heldout (default: all three)",
    )
    parser.add_argument("--n-boot", type=int, default=0, metavar="B",
                        help="bootstrap resamples of the rows (default 0)")  # fmt: skip
    parser.add_argument("--id-column", default=None, help="hmm: the column naming sequences")
    add_seed(parser)
    parser.add_argument("-o", "--output", default=None, metavar="CSV",
                        help="write the whole table (every candidate) here")  # fmt: skip
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="save the criterion curves (one line per structure) here")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ppgen.select import select

    for path in (args.output, args.plot):
        if path:
            check_writable(path)
    frame = read_csv(args.data)
    grid = {}
    if args.structures:
        if args.family != "gmm":
            raise ValueError("--structures applies to --family gmm only")
        grid["structure"] = [s.strip() for s in args.structures.split(",") if s.strip()]
    if args.sizes:
        grid[SIZE_KEY[args.family]] = list(args.sizes)
    criteria = tuple(c.strip() for c in args.criteria.split(",") if c.strip())
    options = {"id_column": args.id_column} if args.id_column else {}
    if args.family == "hmm":
        criteria = tuple(c for c in criteria if c == "bic") or ("bic",)
    report = select(args.family, frame, grid=grid or None, criteria=criteria, n_boot=args.n_boot,
                    seed=args.seed, fit_options=options)  # fmt: skip
    print(report.summary())
    top = report.table.sort_values(report.criteria[0], ascending=False).head(10)
    rows = [[*(str(r[k]) for k in report.keys), f"{r['df']:g}",
             *(f"{r[c]:.3f}" for c in report.criteria), r["note"]]
            for _, r in top.iterrows()]  # fmt: skip
    print()
    print(format_table(rows, header=[*report.keys, "df", *report.criteria, "note"]))
    if args.output:
        report.table.to_csv(args.output, index=False)
        print(f"\ntable: {args.output} ({len(report.table)} candidates)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        report.plot().savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    return 0
