"""Helpers every ``ppgen`` subcommand shares: the parser class, option types, reading CSV files
and saved fits, and plain-text tables.

Nothing here imports torch, pandas or numpy at module level: ``ppgen --help`` must stay fast.
"""

from __future__ import annotations

import argparse
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import pandas as pd

    from ppgen.infer.result import Fit

#: Errors caused by the user's input or environment: reported in one line, exit status 2.
#: FloatingPointError covers ppgen.NonFiniteLossError (a fit that diverged).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    OSError,
    ImportError,
    FloatingPointError,
)

#: Rows of a fit's summary table printed by ``ppgen fit``.
SUMMARY_ROWS = 12

FORMATTER = argparse.RawDescriptionHelpFormatter


class Parser(argparse.ArgumentParser):
    """Argument errors in the same one-line form as every other ppgen error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"ppgen: error: {message} (see '{self.prog} --help')\n")


def error_message(exc: BaseException) -> str:
    """``exc`` as one line of text."""
    if isinstance(exc, KeyError):
        # str(KeyError) is just the quoted key, which reads as nothing without context.
        text = f"unknown column or key {exc.args[0]!r}" if exc.args else "unknown key"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


# -- option types -------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_ints(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated integers >= 1, e.g. ``128,64``."""
    try:
        return tuple(positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas, got {text!r}"
        ) from None


def parse_kinds(items: Sequence[str]) -> dict[str, str]:
    """``--kind COLUMN=KIND`` options as a dict."""
    kinds = {}
    for item in items:
        column, sep, kind = item.rpartition("=")
        if not sep or not column or not kind:
            raise ValueError(f"--kind expects COLUMN=KIND, got {item!r}")
        kinds[column] = kind
    return kinds


def add_command(
    commands: Any,
    parents: list[argparse.ArgumentParser],
    name: str,
    help: str,
    description: str,
    epilog: str,
    run: Any,
) -> argparse.ArgumentParser:
    """A subcommand's parser, with the common options, examples below the options and ``run``."""
    parser = commands.add_parser(
        name,
        parents=parents,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=FORMATTER,
    )
    parser.set_defaults(run=run)
    return parser


def add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def add_quiet(parser: argparse.ArgumentParser, what: str = "no progress bar") -> None:
    parser.add_argument("--quiet", action="store_true", help=what)


def add_kind(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--kind", action="append", default=[], metavar="COLUMN=KIND", help=help)


def progress(quiet: bool) -> bool | None:
    """The ``progress`` argument of ppgen's functions: None shows a bar only on a terminal."""
    return False if quiet else None


# -- files --------------------------------------------------------------------------------------


def read_csv(path: str) -> pd.DataFrame:
    """A CSV file with a header row and at least one data row."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} as CSV: {exc}") from None
    if frame.empty:
        raise ValueError(f"{path} has no data rows")
    return frame


def load_fit(path: str) -> Fit:
    """A fit saved by ``ppgen fit`` (or :meth:`ppgen.Fit.save`), with one-line errors."""
    from ppgen.io import load

    if not Path(path).is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    # torch.save writes a zip archive; torch.load fails on other files with arbitrary errors
    # (IndexError for a CSV file), so check the container first.
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a ppgen model file")
    try:
        return load(path)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        # A damaged archive: torch's message is about pickles, not about the user's file.
        raise ValueError(f"{path} is not a ppgen model file ({type(exc).__name__})") from None


def check_writable(path: str) -> None:
    """Fail before a long computation, not after it, when the output cannot be written."""
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"directory {parent} does not exist (for {path})")


# -- what a fit is --------------------------------------------------------------------------------


def is_sequential(fit: Fit) -> bool:
    """Whether the fit's rows are sequences (HMM): scores per step and per sequence."""
    return bool(type(fit.model).sequential)


def has_exact_likelihood(fit: Fit) -> bool:
    """Whether the model computes its log-likelihood exactly (not the VAEs)."""
    return type(fit.model).implements("log_prob")


def no_exact_likelihood(fit: Fit, model_path: str, data_path: str) -> str:
    """The sentence that sends the user of a deep model to ``ppgen evaluate``."""
    if fit.model.unnormalized:  # energy-based: only AIS of log Z applies
        return (
            f"{fit.model.label()} has no exact likelihood (its partition function is "
            f"intractable); estimate it with 'ppgen evaluate {model_path} {data_path} --method ais'"
        )
    return (
        f"{fit.model.label()} has no exact likelihood; estimate it with "
        f"'ppgen evaluate {model_path} {data_path} --method iwae' (or --method ais)"
    )


# -- output -------------------------------------------------------------------------------------


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """Left-aligned plain-text columns separated by two spaces."""
    cells = [[str(c) for c in row] for row in ([header] if header else []) + list(rows)]
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def nats(value: float) -> str:
    # Eight decimals: scores printed here are compared with library values to 1e-6.
    return f"{value:.8f}"


def print_support_warnings(fit: Fit, frame: pd.DataFrame) -> None:
    """Suggest a kind that keeps the support where the fitted model puts more than 1% of its
    mass outside a column's observed support (negative draws of a positive measurement)."""
    if is_sequential(fit):  # samples are sequences; the rule is about rows
        return
    samples = fit.sample(4000, seed=0)
    for line in fit.schema.support_warnings(samples, frame[list(fit.schema.names)]):
        print(f"note: {line}")


def print_summary(fit: Fit) -> None:
    """The first rows of ``fit.summary()``, for models with global parameters."""
    if fit.kind == "networks":  # a deep model's parameters are network weights
        return
    summary = fit.summary()
    more = f"; first {SUMMARY_ROWS} shown" if len(summary) > SUMMARY_ROWS else ""
    print(f"\nsummary ({len(summary)} rows{more}):")
    print(summary.head(SUMMARY_ROWS).to_string(float_format=lambda v: f"{v:.6g}"))
