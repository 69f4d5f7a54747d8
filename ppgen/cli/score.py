"""``ppgen score``: the log-likelihood of a CSV file's rows under a saved fit."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ppgen.cli._common import (
    check_writable,
    format_table,
    has_exact_likelihood,
    is_sequential,
    load_fit,
    nats,
    no_exact_likelihood,
    read_csv,
)

if TYPE_CHECKING:
    import pandas as pd

    from ppgen.infer.result import Fit

EXAMPLES = """\
examples:
  ppgen score faithful.ppgen faithful.csv
  ppgen score faithful.ppgen new_eruptions.csv --per-row scores.csv

The data must have the fitted columns (in any order) and no others. Missing values are allowed:
each row is scored on its observed entries. The per-row file has a column log_prob and, for
mixture models, the most probable component of each row. Deep models (VAE, HierarchicalVAE) have
no exact likelihood: 'ppgen evaluate' estimates it.
"""


#: One line in ``ppgen --help``, and the top of ``ppgen score --help``.
HELP = "log-likelihood of a CSV file under a saved fit"
DESCRIPTION = "Mean and total log-likelihood of the rows of a CSV file under a saved fit."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``ppgen score --help``)."""
    parser.add_argument("model", help="a fit saved by 'ppgen fit'")
    parser.add_argument("data", help="CSV file with the fitted columns")
    parser.add_argument(
        "--per-row",
        metavar="CSV",
        default=None,
        help="also write each row's log-likelihood (and component) to this file; for an hmm "
        "fit, each sequence's (id, steps, log_prob)",
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    fit = load_fit(args.model)
    if not has_exact_likelihood(fit):
        raise ValueError(no_exact_likelihood(fit, args.model, args.data))
    if args.per_row:
        check_writable(args.per_row)
    frame = read_csv(args.data)
    if is_sequential(fit):
        return _score_sequences(args, fit, frame)
    log_prob = fit.log_prob(frame)
    rows = [
        ("model", f"{args.model}: {fit.model.label()} by {fit.method}"),
        ("data", args.data),
        ("rows", len(log_prob)),
        ("mean log-likelihood", f"{nats(float(np.mean(log_prob)))} nats per row"),
        ("total log-likelihood", f"{log_prob.sum():.4f} nats"),
    ]
    if args.per_row:
        per_row = pd.DataFrame({"log_prob": log_prob})
        if type(fit.model).implements("predict_proba"):
            per_row["component"] = fit.predict(frame)
        per_row.to_csv(args.per_row, index=False)
        rows.append(("per-row", f"{args.per_row} ({', '.join(per_row.columns)})"))
    print(format_table(rows))
    return 0


def _score_sequences(args: argparse.Namespace, fit: Fit, frame: pd.DataFrame) -> int:
    """``ppgen score`` of a hidden Markov model: per time step and per sequence.

    A sequence's log-likelihood does not split into rows, so ``--per-row`` writes one line per
    sequence: its id, number of steps and log-likelihood.
    """
    import numpy as np
    import pandas as pd

    log_prob = fit.log_prob(frame)
    enc = fit.encode(frame)
    steps = enc.lengths.tolist()
    n_seq = len(log_prob)
    rows = [
        ("model", f"{args.model}: {fit.model.label()} by {fit.method}"),
        ("data", args.data),
        ("rows", f"{enc.n_steps} time steps in {n_seq} sequence{'s' if n_seq != 1 else ''}"),
        ("log-likelihood per step", f"{nats(float(log_prob.sum() / enc.n_steps))} nats"),
        (
            "log-likelihood per sequence",
            f"{nats(float(np.mean(log_prob)))} nats (mean over {n_seq})",
        ),
        ("total log-likelihood", f"{log_prob.sum():.4f} nats"),
    ]
    if args.per_row:
        table = pd.DataFrame({"sequence": list(enc.ids), "steps": steps, "log_prob": log_prob})
        table.to_csv(args.per_row, index=False)
        columns = ", ".join(table.columns)
        rows.append(("per-sequence", f"{args.per_row} ({columns}; one line per sequence)"))
    print(format_table(rows))
    return 0
