"""``ppgen impute``: multiple imputation of the missing values of a CSV file."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppgen.cli._common import (
    add_kind,
    add_quiet,
    add_seed,
    check_writable,
    format_table,
    parse_kinds,
    positive_int,
    progress,
    read_csv,
)
from ppgen.cli._models import FIT_MODELS, add_model_options, check_options

if TYPE_CHECKING:
    import pandas as pd

EXAMPLES = """\
examples:
  ppgen impute airquality.csv --model gmm -m 20 -o imputed.csv
  ppgen impute airquality.csv --kind Month=continuous -m 20 --format wide -o imputed.csv
  ppgen impute penguins.csv --model ppca --n-components 2 --method map -m 5 -o imputed.csv
  ppgen impute penguins.csv --delta bill_depth_mm=-1.5 --delta sex=male:0.5 -o shifted.csv
  ppgen impute penguins.csv --model diffusion --n-steps 50 -m 5 -o imputed.csv

The long format stacks the data as read (.imp = 0, missing cells empty) and the m completed
tables (.imp = 1..m); .id is the row number in the input file (0 = first data row), as R's
mice::complete(imp, "long", include = TRUE). Observed cells are written as read, and each
column keeps its type (integer columns stay integers). --format wide writes OUTPUT_1.csv ...
OUTPUT_m.csv next to OUTPUT instead. A file without missing values is an error: there is
nothing to impute.

--delta is a sensitivity analysis for data missing not at random (pattern-mixture delta
adjustment, ppgen.Imputer's delta): COLUMN=SHIFT adds SHIFT to every imputed value of a numeric
column (in its units, or its observed standard deviations with --delta-scale sd), and the row's
other missing values are drawn given the shifted one. For a binary column COLUMN=SHIFT shifts
the log-odds of its second level against the first; COLUMN=LEVEL:SHIFT shifts one level's
log-odds (repeat it for several levels). --delta COLUMN=0 gives the tables without it exactly.
"""

#: The models ``ppgen impute`` offers; ppgen.Imputer chooses their sizes when not given.
IMPUTE_MODELS = {
    name: dataclasses.replace(FIT_MODELS[name], required=())
    for name in ("gmm", "ppca", "diffusion")
}


#: One line in ``ppgen --help``, and the top of ``ppgen impute --help``.
HELP = "multiple imputation of the missing values of a CSV file"
DESCRIPTION = "Fill the missing values of a CSV file m times with draws from a model."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``ppgen impute --help``)."""
    parser.add_argument("data", help="CSV file with a header row; empty cells are missing")
    parser.add_argument(
        "--model",
        choices=tuple(IMPUTE_MODELS),
        default="gmm",
        help="gmm: Gaussian mixture (default); ppca: probabilistic PCA; diffusion: denoising "
        "diffusion model (its networks trained by minibatch SVI; RePaint-style draws)",
    )
    add_model_options(
        parser,
        IMPUTE_MODELS,
        help={
            "n_components": "mixture components (gmm, default 2) or latent dimensions (ppca, "
            "default 2, at most columns - 1)",
            "covariance_type": "gmm only (default: full)",
        },
    )
    parser.add_argument(
        "-m",
        "--n-imputations",
        type=positive_int,
        default=20,
        metavar="M",
        help="number of completed tables (default: 20)",
    )
    parser.add_argument(
        "--method",
        choices=("svi", "nuts", "map", "em"),
        default="svi",
        help="svi (default) and nuts draw parameters from their posterior: proper multiple "
        "imputation; map and em plug in one estimate (faster, improper)",
    )
    add_seed(parser)
    parser.add_argument(
        "--format",
        choices=("long", "wide"),
        default="long",
        help="long (default): one file with .imp and .id columns, .imp 0 the data as read; "
        "wide: m files OUTPUT_1.csv ... OUTPUT_m.csv",
    )
    parser.add_argument(
        "--support",
        choices=("truncate", "pmm", "none"),
        default="truncate",
        help="truncate (default): a column observed >= 0 (or with declared bounds) gets draws "
        "from its conditional truncated to that support; pmm: predictive mean matching to "
        "observed donors; none: the model's draws as they are",
    )
    parser.add_argument(
        "--delta",
        action="append",
        default=[],
        metavar="COLUMN=SHIFT",
        help="shift the imputed values of COLUMN by SHIFT (missing not at random sensitivity), "
        "e.g. Ozone=-10; COLUMN=LEVEL:SHIFT shifts a level's log-odds (repeatable)",
    )
    parser.add_argument(
        "--delta-scale",
        choices=("units", "sd"),
        default="units",
        help="units (default): SHIFT in the column's units; sd: in its observed standard "
        "deviations",
    )
    add_kind(parser, "override a column's inferred kind, e.g. Month=continuous (repeatable)")
    add_quiet(parser)
    parser.add_argument(
        "-o", "--output", required=True, metavar="CSV", help="where to write, e.g. imputed.csv"
    )


def run(args: argparse.Namespace) -> int:
    import ppgen

    spec = check_options(args, IMPUTE_MODELS)
    options = spec.arguments(args)
    kinds = parse_kinds(args.kind)
    deltas = parse_deltas(args.delta)
    check_writable(args.output)
    frame = read_csv(args.data)
    missing = frame.isna().sum()
    missing = missing[missing > 0]
    if missing.empty:
        # m identical copies of a complete table help nobody; a file whose gaps are coded
        # otherwise (-99, "?") is the usual cause.
        raise ValueError(
            f"{args.data} has no missing values (empty cells or NA): nothing to impute"
        )
    _check_delta_columns(deltas, frame, args.data)
    imputer = ppgen.Imputer(
        args.model,
        n_imputations=args.n_imputations,
        seed=args.seed,
        method=args.method,
        kinds=kinds or None,
        support=None if args.support == "none" else args.support,
        delta_scale=args.delta_scale,
        fit_options={"progress": progress(args.quiet)},
        **options,
    )
    start = time.perf_counter()
    imputer.fit(frame)
    if deltas:
        imputer.set_params(delta=_match_levels(deltas, imputer.fit_.schema))
    m = args.n_imputations
    output = Path(args.output)
    if args.format == "long":
        table = imputer.transform(frame, format="long")
        table.to_csv(output, index=False)
        written = [f"{output} ({len(table)} rows = {len(frame)} x (1 + {m}))"]
    else:
        tables = imputer.transform(frame)
        tables = tables if isinstance(tables, list) else [tables]
        written = []
        for j, table in enumerate(tables, start=1):
            path = output.with_name(f"{output.stem}_{j}{output.suffix or '.csv'}")
            table.to_csv(path, index=False)
            written.append(str(path))
    elapsed = time.perf_counter() - start
    shown = ", ".join(f"{name} {count}" for name, count in missing.items())
    proper = (
        "proper" if imputer.fit_.kind in ("draws", "mcmc") else "improper (one parameter estimate)"
    )
    rows = [
        ("data", f"{args.data}: {len(frame)} rows, {frame.shape[1]} columns"),
        ("missing", f"{int(missing.sum())} cells ({shown})"),
        ("model", imputer.fit_.model.label()),
        ("method", f"{args.method}, seed {args.seed}, {elapsed:.1f} s; {proper} imputation"),
        ("imputations", m),
    ]
    if deltas:
        rows.append(("delta (MNAR)", _format_deltas(deltas, args.delta_scale, imputer.fit_.schema)))
    rows += [("written", path) for path in written[:3]]
    if len(written) > 3:
        rows.append(("", f"... {written[-1]} ({len(written)} files)"))
    print(imputer.fit_.schema.format(frame[list(imputer.fit_.schema.names)]) + "\n")
    print(format_table(rows))
    return 0


def parse_deltas(items: Sequence[str]) -> dict[str, float | dict[str, float]]:
    """``--delta COLUMN=SHIFT`` and ``--delta COLUMN=LEVEL:SHIFT`` options as ``Imputer``'s
    ``delta``: a number per column, or a dict level -> log-odds shift (levels as text until
    :func:`_match_levels` maps them to the column's own values)."""
    deltas: dict[str, float | dict[str, float]] = {}
    for item in items:
        column, sep, value = item.rpartition("=")
        if not sep or not column or not value:
            raise ValueError(f"--delta expects COLUMN=SHIFT or COLUMN=LEVEL:SHIFT, got {item!r}")
        level, colon, number = value.rpartition(":")
        shift = _shift(item, number if colon else value)
        if not colon:
            if column in deltas:
                raise ValueError(f"--delta gives column {column!r} more than one shift ({item!r})")
            deltas[column] = shift
            continue
        if not level:
            raise ValueError(f"--delta {item!r}: the level before ':' is empty")
        levels = deltas.setdefault(column, {})
        if not isinstance(levels, dict):
            raise ValueError(
                f"--delta gives column {column!r} both a shift and level shifts ({item!r})"
            )
        if level in levels:
            raise ValueError(f"--delta gives level {level!r} of column {column!r} twice")
        levels[level] = shift
    return deltas


def _shift(item: str, text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--delta {item!r}: the shift {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"--delta {item!r}: the shift must be finite")
    return value


def _check_delta_columns(deltas: dict, frame: pd.DataFrame, path: str) -> None:
    """Every delta names a column of the file that has missing values (checked before fitting)."""
    for column in deltas:
        if column not in frame.columns:
            raise ValueError(
                f"--delta names column {column!r}, which is not in {path}; its columns are "
                f"{', '.join(map(repr, map(str, frame.columns)))}"
            )
        if not frame[column].isna().any():
            raise ValueError(
                f"--delta names column {column!r}, which has no missing values: there is no "
                "imputed value to shift"
            )


def _match_levels(deltas: dict, schema: Any) -> dict:
    """Level names typed on the command line as the column's own level values (``1`` for an
    integer-coded level); unknown ones are kept for ppgen.Imputer's error naming the levels."""
    columns = {c.name: c for c in schema.columns}
    out = {}
    for column, value in deltas.items():
        if isinstance(value, dict) and column in columns:
            levels = {str(level): level for level in (columns[column].categories or ())}
            value = {levels.get(k, k): v for k, v in value.items()}
        out[column] = value
    return out


def _format_deltas(deltas: dict, scale: str, schema: Any) -> str:
    numeric = {c.name for c in schema.columns if c.kind == "continuous"}
    parts = []
    for column, value in deltas.items():
        if isinstance(value, dict):
            parts += [f"{column}={level} {shift:+g} log-odds" for level, shift in value.items()]
        else:
            unit = (" sd" if scale == "sd" else "") if column in numeric else " log-odds"
            parts.append(f"{column} {value:+g}{unit}")
    return ", ".join(parts)
