"""The ``ppgen`` command: fit, score, sample, evaluate and impute from CSV files, and a demo.

Run ``ppgen --help`` or ``ppgen <command> --help``. One module per subcommand (:mod:`.fit`,
:mod:`.score`, :mod:`.sample`, :mod:`.evaluate`, :mod:`.impute`, :mod:`.demo`), each with
``HELP``, ``DESCRIPTION``, ``EXAMPLES``, ``add_arguments(parser)`` and ``run(args)``; shared
helpers in :mod:`._common`, the models the command line builds in :mod:`._models`. Torch, pandas
and Matplotlib are imported inside the commands, so argument errors, ``--help`` and
``--version`` import none of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from ppgen.cli import demo, evaluate, fit, impute, sample, score
from ppgen.cli import select as select_command
from ppgen.cli._common import (
    FORMATTER,
    USER_ERRORS,
    Parser,
    add_command,
    error_message,
    positive_int,
)
from ppgen.cli.demo import _adjusted_rand_index  # noqa: F401 (tests import it from here)

__all__ = ["build_parser", "main"]

#: The subcommands, in the order ``ppgen --help`` lists them.
COMMANDS = (fit, score, sample, evaluate, demo, impute, select_command)

# ppgen compare (issue 16): every family side by side on one table.
from ppgen.cli import compare  # noqa: E402

COMMANDS = (*COMMANDS, compare)

EXAMPLES = """\
examples:
  ppgen demo
  ppgen fit data.csv --model gmm --n-components 3 -o model.ppgen
  ppgen score model.ppgen data.csv --per-row scores.csv
  ppgen sample model.ppgen -n 500 -o samples.csv
  ppgen evaluate model.ppgen data.csv --method ais
  ppgen impute data.csv --model gmm -m 20 -o imputed.csv
  ppgen select data.csv --family gmm --sizes 1-9

Run 'ppgen <command> --help' for the options of each command.
"""


def _package_version() -> str:
    try:
        return version("ppgen")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The ``ppgen`` argument parser with one subcommand per module of :mod:`ppgen.cli`.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = Parser(
        prog="ppgen",
        description="Probabilistic generative models for tables: fit, score, sample.",
        epilog=EXAMPLES,
        formatter_class=FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"ppgen {_package_version()}")
    # On each command rather than on `ppgen` itself: argparse lets a subcommand's default
    # overwrite a value given before the command name.
    common = Parser(add_help=False)
    common.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        metavar="N",
        help="torch CPU threads (default: 1, fastest for tables this size on shared machines)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        name = command.__name__.rpartition(".")[2]
        parser_ = add_command(
            commands,
            [common],
            name,
            command.HELP,
            command.DESCRIPTION,
            command.EXAMPLES,
            command.run,
        )
        command.add_arguments(parser_)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ppgen`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for bad arguments or input (one line on stderr), 130 when
        interrupted.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version and argument errors, already printed
        return 0 if exc.code is None else int(exc.code)
    try:
        import torch

        torch.set_num_threads(args.threads)
        return args.run(args)
    except USER_ERRORS as exc:
        print(f"ppgen: error: {error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppgen: interrupted", file=sys.stderr)
        return 130
    except _linalg_error() as exc:
        # A fit or draw whose covariance is not positive definite: a numerical failure with the
        # data or options, which a traceback would not help the user with.
        print(f"ppgen: error: numerical failure: {error_message(exc)}", file=sys.stderr)
        return 2


def _linalg_error() -> type[Exception]:
    # Only looked up once an exception reaches it, when the command has already imported torch.
    import torch

    return torch.linalg.LinAlgError
