"""``ppgen fit``: fit a model to a CSV file, save it and report its fit."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from ppgen.cli._common import (
    add_kind,
    add_quiet,
    add_seed,
    check_writable,
    format_table,
    has_exact_likelihood,
    is_sequential,
    nats,
    no_exact_likelihood,
    parse_kinds,
    positive_int,
    print_summary,
    print_support_warnings,
    progress,
    read_csv,
)
from ppgen.cli._models import FIT_MODELS, add_model_options, check_options

if TYPE_CHECKING:
    import pandas as pd

    from ppgen.infer.result import Fit

EXAMPLES = """\
examples:
  ppgen fit faithful.csv --model gmm --n-components 2 -o faithful.ppgen
  ppgen fit wine.csv --model gmm --n-components 3 --covariance-type diag --n-init 5 -o wine.ppgen
  ppgen fit wine.csv --model ppca --n-components 2 --method map -o wine_ppca.ppgen
  ppgen fit survey.csv --model gmm --n-components 4 --kind age=continuous -o survey.ppgen
  ppgen fit series.csv --model hmm --n-states 3 --sequence-col id --time-col t -o series.ppgen
  ppgen fit counts.csv --model hmm --n-states 2 --emission poisson --order-by count -o c.ppgen
  ppgen fit digits.csv --model vae --n-latent 8 --hidden 128,128 -o digits.ppgen
  ppgen fit big.parquet --model gmm --n-components 3 -o big.ppgen   # streamed, never read whole

The mean log-likelihood is per row, in nats, on the data's original scale, so it compares across
models and with other software fitted to the same raw data. BIC and AIC (lower is better) are
reported for point fits (map, em). Deep models (vae, hvae) have no exact likelihood: estimate it
with 'ppgen evaluate'.

Hidden Markov models (--model hmm) take sequences: with --sequence-col, the rows of each id form
one sequence (in file order, or sorted by --time-col, which must increase within a sequence);
without it the whole file is one sequence. The id and time columns are not modelled. Their
log-likelihood is reported per time step and per sequence (the states summed out), and BIC
counts time steps.
"""


#: One line in ``ppgen --help``, and the top of ``ppgen fit --help``.
HELP = "fit a model to a CSV file and save it"
DESCRIPTION = "Fit a model to the columns of a CSV file, save it and report its fit."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``ppgen fit --help``)."""
    parser.add_argument(
        "data",
        help="CSV file with a header row (every column is modelled), or a Parquet file or "
        "directory, streamed in chunks (EM, and SVI of vae/hvae)",
    )
    parser.add_argument(
        "--model",
        choices=tuple(FIT_MODELS),
        required=True,
        help="; ".join(f"{name}: {m.help}" for name, m in FIT_MODELS.items()),
    )
    add_model_options(parser, FIT_MODELS)
    parser.add_argument(
        "--sequence-col",
        default=None,
        metavar="COLUMN",
        help="hmm: column of sequence ids (default: the file is one sequence)",
    )
    parser.add_argument(
        "--time-col",
        default=None,
        metavar="COLUMN",
        help="hmm: time-order column, increasing within each sequence",
    )
    parser.add_argument(
        "--method",
        default=None,
        metavar="METHOD",
        help="an inference engine: em, map, svi, nuts, hmc (default: the model's own, as in "
        "ppgen.fit: em, maximum likelihood, for gmm, ppca and hmm; map for negbinomial counts; "
        "svi of the networks for vae and hvae)",
    )
    add_seed(parser)
    add_kind(
        parser,
        "override a column's inferred kind: continuous, count, binary or categorical (repeatable)",
    )
    parser.add_argument(
        "--no-standardize",
        action="store_true",
        help="fit on the raw scale instead of standardized columns",
    )
    parser.add_argument(
        "--n-init",
        type=positive_int,
        default=None,
        metavar="N",
        help="restarts from different seeds, the best kept (map and em only)",
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        metavar="N",
        help="cap on the engine's iterations (em, map, svi, adversarial: EM steps, optimizer "
        "steps, generator steps); default: the engine's own",
    )
    add_quiet(parser)
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="MODEL",
        help="where to save the fit, e.g. model.ppgen",
    )
    parser.add_argument(
        "--distributed",
        choices=("auto", "yes", "no"),
        default="auto",
        help="data-parallel fit over the processes of a torchrun launch (torchrun "
        "--nproc-per-node N -m ppgen fit ...): auto (default) when launched by torchrun; rank 0 "
        "alone saves the fit and prints the report",
    )


def _sequence_options(
    args: argparse.Namespace, frame: pd.DataFrame | None, sequences: bool
) -> dict[str, Any]:
    """``id_column`` and ``time_column`` for a sequence model, checked against the header."""
    given = (("--sequence-col", args.sequence_col), ("--time-col", args.time_col))
    if not sequences:
        for option, column in given:
            if column is not None:
                takers = [name for name, m in FIT_MODELS.items() if m.sequences]
                raise ValueError(f"{option} applies to --model {', '.join(takers)} only")
        return {}
    for option, column in given:
        if column is not None and column not in frame.columns:
            raise ValueError(
                f"{option} {column!r} is not a column of {args.data} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
    if args.sequence_col is not None and args.sequence_col == args.time_col:
        raise ValueError("--sequence-col and --time-col must be different columns")
    if args.sequence_col is None and args.time_col is None:
        return {}
    return {"id_column": args.sequence_col, "time_column": args.time_col}


def run(args: argparse.Namespace) -> int:
    import ppgen

    spec = check_options(args, FIT_MODELS)
    options: dict[str, Any] = {}
    if args.n_init is not None:  # an engine without restarts names it as an unknown option
        options["n_init"] = args.n_init
    if args.max_steps is not None:  # likewise for an engine counting epochs (max_epochs)
        options["max_steps"] = args.max_steps
    if not spec.sequences:
        _sequence_options(args, None, sequences=False)  # rejects --sequence-col and --time-col
    model = spec.build(args)
    kinds = parse_kinds(args.kind)
    check_writable(args.output)
    from ppgen.infer.stream import is_source

    streamed = is_source(args.data)  # Parquet: streamed, never read whole (ppgen.infer.stream)
    if streamed and spec.sequences:
        raise ValueError(f"--model {args.model} reads its sequences from a CSV file, not Parquet")
    frame = None if streamed else read_csv(args.data)
    if not streamed:
        options.update(_sequence_options(args, frame, spec.sequences))
    start = time.perf_counter()
    distributed = {"auto": "auto", "yes": True, "no": False}[args.distributed]
    fit = ppgen.fit(
        model,
        args.data if streamed else frame,
        method=args.method,
        seed=args.seed,
        kinds=kinds,
        standardize=False if args.no_standardize else None,  # None: the model's own
        progress=progress(args.quiet),
        distributed=distributed,
        **options,
    )
    elapsed = time.perf_counter() - start
    if _rank() != 0:
        return 0  # every rank holds the same fit; one writes it and reports
    fit.save(args.output)
    if streamed:
        print(format_table(_streamed_report(args, fit, elapsed)))
        print_summary(fit)
        return 0
    print(fit.schema.format(frame[list(fit.schema.names)]) + "\n")
    print(format_table(_report(args, fit, frame, elapsed)))
    print_summary(fit)
    print_support_warnings(fit, frame)
    return 0


def _rank() -> int:
    """This process's rank in a running process group (0 without one)."""
    from ppgen.infer.distributed import context

    return context().rank


def _streamed_report(args, fit: Fit, elapsed: float) -> list[tuple]:
    """The rows ``ppgen fit`` prints for a streamed (Parquet) table: its log-likelihood summed
    one chunk at a time, so the table is never held whole."""
    from ppgen.infer.stream import open_source

    names = list(fit.schema.names)
    shown = ", ".join(map(str, names[:6])) + (", ..." if len(names) > 6 else "")
    n_rows = fit.info.get("streamed_rows")
    rows = [
        ("data", f"{args.data}: {n_rows} rows (streamed), {len(names)} columns ({shown})"),
        ("model", fit.model.label()),
        ("method", f"{fit.method}, seed {args.seed}, {len(fit.losses)} steps, {elapsed:.1f} s"),
    ]
    if not has_exact_likelihood(fit):
        rows.append(("log-likelihood", no_exact_likelihood(fit, args.output, args.data)))
    else:
        total, n = 0.0, 0
        for _, chunk in open_source(args.data).frames(names):
            log_prob = fit.log_prob(chunk)
            total, n = total + float(log_prob.sum()), n + len(log_prob)
        rows += [
            ("mean log-likelihood", f"{nats(total / n)} nats per row"),
            ("total log-likelihood", f"{total:.4f} nats"),
        ]
        if fit.kind == "point":
            import math

            k = fit.n_free_parameters()
            rows += [
                ("BIC", f"{-2 * total + k * math.log(n):.4f}"),
                ("AIC", f"{-2 * total + 2 * k:.4f}"),
            ]
    rows.append(("saved", args.output))
    return rows


def _report(args, fit: Fit, frame: pd.DataFrame, elapsed: float) -> list[tuple]:
    """The rows ``ppgen fit`` prints: the data, the model, and the fit's log-likelihood."""
    import numpy as np

    names = list(fit.schema.names)
    shown = ", ".join(map(str, names[:6])) + (", ..." if len(names) > 6 else "")
    steps = f"{len(fit.losses)} steps"
    if fit.kind == "mcmc":  # the losses are the MAP start's; say what the chains drew
        chains, draws = next(iter(fit.samples.values())).shape[:2]
        steps = f"{chains} chain{'s' if chains != 1 else ''} x {draws} draws"
    method_row = ("method", f"{fit.method}, seed {args.seed}, {steps}, {elapsed:.1f} s")
    if not has_exact_likelihood(fit):
        return [
            ("data", f"{args.data}: {len(frame)} rows, {len(names)} columns ({shown})"),
            ("model", fit.model.label()),
            method_row,
            ("log-likelihood", no_exact_likelihood(fit, args.output, args.data)),
            ("saved", args.output),
        ]
    log_prob = fit.log_prob(frame)
    if is_sequential(fit):
        n_seq = len(log_prob)
        rows = [
            (
                "data",
                f"{args.data}: {len(frame)} rows, {n_seq} sequence{'s' if n_seq != 1 else ''}, "
                f"{len(names)} columns ({shown})",
            ),
            ("model", fit.model.label()),
            method_row,
            ("log-likelihood per step", f"{nats(fit.score(frame))} nats per time step"),
            (
                "log-likelihood per sequence",
                f"{nats(float(np.mean(log_prob)))} nats (mean over {n_seq})",
            ),
        ]
    else:
        rows = [
            ("data", f"{args.data}: {len(frame)} rows, {len(names)} columns ({shown})"),
            ("model", fit.model.label()),
            method_row,
            ("mean log-likelihood", f"{nats(float(np.mean(log_prob)))} nats per row"),
        ]
    rows.append(("total log-likelihood", f"{log_prob.sum():.4f} nats"))
    if fit.kind == "point":
        rows += [("BIC", f"{fit.bic(frame):.4f}"), ("AIC", f"{fit.aic(frame):.4f}")]
    else:
        rows.append(("note", "log-likelihood of the posterior predictive; no BIC/AIC"))
    rows.append(("saved", args.output))
    return rows
