"""``ppgen evaluate``: likelihood bounds and estimates (ELBO, IWAE, AIS) under a saved fit."""

from __future__ import annotations

import argparse

from ppgen.cli._common import (
    add_quiet,
    add_seed,
    format_table,
    has_exact_likelihood,
    is_sequential,
    load_fit,
    nats,
    positive_int,
    progress,
    read_csv,
)

EXAMPLES = """\
examples:
  ppgen evaluate wine_ppca.ppgen wine.csv --method ais --n-steps 1000 --n-chains 16
  ppgen evaluate wine_ppca.ppgen wine.csv --method iwae -k 1000
  ppgen evaluate faithful.ppgen faithful.csv --method elbo

ELBO <= IWAE_k <= log-likelihood in expectation; AIS approaches the log-likelihood as the number
of steps grows. Where the model has an exact likelihood it is printed alongside. Values are nats
per row on the data's original scale, and bits per dimension (the negative log-likelihood divided
by the number of columns and by ln 2), each with the standard error over rows and, for the
Monte-Carlo estimators, the Monte-Carlo standard error.
"""


#: One line in ``ppgen --help``, and the top of ``ppgen evaluate --help``.
HELP = "likelihood bounds and estimates (ELBO, IWAE, AIS) of a CSV file under a saved fit"
DESCRIPTION = "Estimate the log-likelihood of a CSV file's rows under a saved fit."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``ppgen evaluate --help``)."""
    parser.add_argument("model", help="a fit saved by 'ppgen fit'")
    parser.add_argument("data", help="CSV file with the fitted columns")
    parser.add_argument(
        "--method", choices=("ais", "iwae", "elbo"), default="ais", help="estimator (default: ais)"
    )
    parser.add_argument(
        "-k", type=positive_int, default=100, help="IWAE importance samples (default: 100)"
    )
    parser.add_argument(
        "--particles", type=positive_int, default=100, help="ELBO particles (default: 100)"
    )
    parser.add_argument(
        "--n-steps", type=positive_int, default=1000, help="AIS annealing steps (default: 1000)"
    )
    parser.add_argument(
        "--n-chains", type=positive_int, default=16, help="AIS chains per row (default: 16)"
    )
    add_seed(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ppgen import evaluate

    fit = load_fit(args.model)
    if is_sequential(fit):
        raise ValueError(
            f"evaluate does not support {type(fit.model).__name__} fits; their likelihood is "
            f"exact: run 'ppgen score {args.model} {args.data}'"
        )
    frame = read_csv(args.data)
    if args.method == "ais":
        estimate = evaluate.ais(
            fit,
            frame,
            n_steps=args.n_steps,
            n_chains=args.n_chains,
            seed=args.seed,
            progress=progress(args.quiet),
        )
        label = f"AIS ({args.n_steps} steps, {args.n_chains} chains)"
    elif args.method == "iwae":
        estimate = evaluate.iwae(fit, frame, k=args.k, seed=args.seed)
        label = f"IWAE (k = {args.k})"
    else:
        estimate = evaluate.elbo(fit, frame, num_particles=args.particles, seed=args.seed)
        label = f"ELBO ({args.particles} particles)"
    bits = 1.0 / (len(fit.schema) * np.log(2.0))
    rows = [
        (
            label,
            nats(estimate.mean),
            f"{estimate.se:.4f}",
            f"{estimate.mc_se:.4f}",
            f"{-estimate.mean * bits:.4f}",
        ),
    ]
    if has_exact_likelihood(fit):
        exact = fit.log_prob(frame)
        se = float(np.std(exact, ddof=1) / np.sqrt(len(exact))) if len(exact) > 1 else 0.0
        rows.append(
            (
                "exact",
                nats(float(np.mean(exact))),
                f"{se:.4f}",
                "0",
                f"{-np.mean(exact) * bits:.4f}",
            )
        )
    print(f"{args.model}: {fit.model.label()} by {fit.method}; {args.data}: {len(frame)} rows")
    header = ("estimator", "nats/row", "se", "mc se", "bits/dim")
    print(format_table(rows, header=header))
    if estimate.exact and estimate.note:
        print(f"note: {estimate.note}")
    return 0
