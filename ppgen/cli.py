"""The ``ppgen`` command: fit, score and sample models from CSV files, and a demo on real data.

Run ``ppgen --help`` or ``ppgen <command> --help``. Torch, pandas and Matplotlib are imported
inside the commands so that argument errors, ``--help`` and ``--version`` cost no more than
``import ppgen`` itself.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ppgen.infer.result import Fit
    from ppgen.models.base import GenerativeModel

__all__ = ["build_parser", "main"]

#: Errors caused by the user's input or environment: reported in one line, exit status 2.
#: FloatingPointError covers ppgen.NonFiniteLossError (a fit that diverged).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    OSError,
    ImportError,
    FloatingPointError,
)

MODEL_NAMES = ("gmm", "ppca", "hmm")
EMISSIONS = ("gaussian", "poisson", "negbinomial", "categorical", "mixed")
SUMMARY_ROWS = 12

FIT_EXAMPLES = """\
examples:
  ppgen fit faithful.csv --model gmm --n-components 2 -o faithful.ppgen
  ppgen fit wine.csv --model gmm --n-components 3 --covariance-type diag --n-init 5 -o wine.ppgen
  ppgen fit wine.csv --model ppca --n-components 2 --method map -o wine_ppca.ppgen
  ppgen fit survey.csv --model gmm --n-components 4 --kind age=continuous -o survey.ppgen
  ppgen fit series.csv --model hmm --n-states 3 --sequence-col id --time-col t -o series.ppgen
  ppgen fit counts.csv --model hmm --n-states 2 --emission poisson --order-by count -o c.ppgen

The mean log-likelihood is per row, in nats, on the data's original scale, so it compares across
models and with other software fitted to the same raw data. BIC and AIC (lower is better) are
reported for point fits (map, em).

Hidden Markov models (--model hmm) take sequences: with --sequence-col, the rows of each id form
one sequence (in file order, or sorted by --time-col, which must increase within a sequence);
without it the whole file is one sequence. The id and time columns are not modelled. Their
log-likelihood is reported per time step and per sequence (the states summed out), and BIC
counts time steps.
"""

SCORE_EXAMPLES = """\
examples:
  ppgen score faithful.ppgen faithful.csv
  ppgen score faithful.ppgen new_eruptions.csv --per-row scores.csv

The data must have the fitted columns (in any order) and no others. Missing values are allowed:
each row is scored on its observed entries. The per-row file has a column log_prob and, for
mixture models, the most probable component of each row.
"""

SAMPLE_EXAMPLES = """\
examples:
  ppgen sample faithful.ppgen -n 500 -o samples.csv
  ppgen sample faithful.ppgen -n 10 --seed 3          # CSV to standard output
"""

EVALUATE_EXAMPLES = """\
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

DEMO_EXAMPLES = """\
examples:
  ppgen demo
  ppgen demo --output /tmp/ppgen-demo --quiet

Fits GaussianMixture to Old Faithful eruptions (EM and MAP), and GaussianMixture and PPCA to the
wine measurements; compares log-likelihoods with scikit-learn (when installed), cross-tabulates
the wine clusters against the cultivars, and writes plots and the faithful fit to --output.
"""

MAIN_EXAMPLES = """\
examples:
  ppgen demo
  ppgen fit data.csv --model gmm --n-components 3 -o model.ppgen
  ppgen score model.ppgen data.csv --per-row scores.csv
  ppgen sample model.ppgen -n 500 -o samples.csv
  ppgen evaluate model.ppgen data.csv --method ais
  ppgen impute data.csv --model gmm -m 20 -o imputed.csv

Run 'ppgen <command> --help' for the options of each command.
"""


class _Parser(argparse.ArgumentParser):
    """Argument errors in the same one-line form as every other ppgen error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"ppgen: error: {message} (see '{self.prog} --help')\n")


def _package_version() -> str:
    try:
        return version("ppgen")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The ``ppgen`` argument parser with its ``fit``, ``score``, ``sample`` and ``demo`` commands.

    Returns
    -------
    argparse.ArgumentParser
    """
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="ppgen",
        description="Probabilistic generative models for tables: fit, score, sample.",
        epilog=MAIN_EXAMPLES,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"ppgen {_package_version()}")
    # On each command rather than on `ppgen` itself: argparse lets a subcommand's default
    # overwrite a value given before the command name.
    common = _Parser(add_help=False)
    common.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        metavar="N",
        help="torch CPU threads (default: 1, fastest for tables this size on shared machines)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = commands.add_parser(
        "fit",
        parents=[common],
        help="fit a model to a CSV file and save it",
        description="Fit a model to the columns of a CSV file, save it and report its fit.",
        epilog=FIT_EXAMPLES,
        formatter_class=formatter,
    )
    fit.add_argument("data", help="CSV file with a header row; every column is modelled")
    fit.add_argument(
        "--model",
        choices=MODEL_NAMES,
        required=True,
        help="gmm: Gaussian mixture; ppca: probabilistic PCA; hmm: hidden Markov model",
    )
    fit.add_argument(
        "--n-components",
        type=_positive_int,
        default=None,
        metavar="K",
        help="mixture components (gmm) or latent dimensions (ppca); required for them",
    )
    fit.add_argument(
        "--covariance-type",
        choices=("full", "diag"),
        default=None,
        help="gmm, and hmm with gaussian or mixed emissions (default: full)",
    )
    fit.add_argument(
        "--n-states", type=_positive_int, default=None, metavar="K", help="hmm: hidden states"
    )
    fit.add_argument(
        "--emission",
        choices=EMISSIONS,
        default=None,
        help="hmm: emission family of every column; mixed infers each column's kind "
        "(default: gaussian)",
    )
    fit.add_argument(
        "--sequence-col",
        default=None,
        metavar="COLUMN",
        help="hmm: column of sequence ids (default: the file is one sequence)",
    )
    fit.add_argument(
        "--time-col",
        default=None,
        metavar="COLUMN",
        help="hmm: time-order column, increasing within each sequence",
    )
    fit.add_argument(
        "--order-by",
        default=None,
        metavar="COLUMN",
        help="hmm: number the states by their mean of this column (label switching)",
    )
    fit.add_argument(
        "--method",
        choices=("map", "em", "svi", "nuts"),
        default=None,
        help="default: em for gmm and hmm (closed form, fastest), map for ppca and for hmm "
        "with negbinomial emissions",
    )
    fit.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    fit.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="COLUMN=KIND",
        help="override a column's inferred kind: continuous, count, binary or categorical "
        "(repeatable)",
    )
    fit.add_argument(
        "--no-standardize",
        action="store_true",
        help="fit on the raw scale instead of standardized columns",
    )
    fit.add_argument(
        "--n-init",
        type=_positive_int,
        default=None,
        metavar="N",
        help="restarts from different seeds, the best kept (map and em only)",
    )
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="MODEL",
        help="where to save the fit, e.g. model.ppgen",
    )
    fit.set_defaults(run=_cmd_fit)

    score = commands.add_parser(
        "score",
        parents=[common],
        help="log-likelihood of a CSV file under a saved fit",
        description="Mean and total log-likelihood of the rows of a CSV file under a saved fit.",
        epilog=SCORE_EXAMPLES,
        formatter_class=formatter,
    )
    score.add_argument("model", help="a fit saved by 'ppgen fit'")
    score.add_argument("data", help="CSV file with the fitted columns")
    score.add_argument(
        "--per-row",
        metavar="CSV",
        default=None,
        help="also write each row's log-likelihood (and component) to this file; for an hmm "
        "fit, each sequence's (id, steps, log_prob)",
    )
    score.set_defaults(run=_cmd_score)

    sample = commands.add_parser(
        "sample",
        parents=[common],
        help="draw new rows from a saved fit",
        description="Draw new rows from a saved fit, with the fitted column names and types.",
        epilog=SAMPLE_EXAMPLES,
        formatter_class=formatter,
    )
    sample.add_argument("model", help="a fit saved by 'ppgen fit'")
    sample.add_argument("-n", type=_positive_int, required=True, help="number of rows")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sample.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="CSV",
        help="CSV file to write (default: standard output)",
    )
    sample.set_defaults(run=_cmd_sample)

    evaluate = commands.add_parser(
        "evaluate",
        parents=[common],
        help="likelihood bounds and estimates (ELBO, IWAE, AIS) of a CSV file under a saved fit",
        description="Estimate the log-likelihood of a CSV file's rows under a saved fit.",
        epilog=EVALUATE_EXAMPLES,
        formatter_class=formatter,
    )
    evaluate.add_argument("model", help="a fit saved by 'ppgen fit'")
    evaluate.add_argument("data", help="CSV file with the fitted columns")
    evaluate.add_argument(
        "--method", choices=("ais", "iwae", "elbo"), default="ais", help="estimator (default: ais)"
    )
    evaluate.add_argument(
        "-k", type=_positive_int, default=100, help="IWAE importance samples (default: 100)"
    )
    evaluate.add_argument(
        "--particles", type=_positive_int, default=100, help="ELBO particles (default: 100)"
    )
    evaluate.add_argument(
        "--n-steps", type=_positive_int, default=1000, help="AIS annealing steps (default: 1000)"
    )
    evaluate.add_argument(
        "--n-chains", type=_positive_int, default=16, help="AIS chains per row (default: 16)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(run=_cmd_evaluate)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="fit the bundled real data sets and draw plots",
        description="A tour on bundled real data: Old Faithful and the wine cultivars.",
        epilog=DEMO_EXAMPLES,
        formatter_class=formatter,
    )
    demo.add_argument(
        "--output",
        default="out/demo",
        metavar="DIR",
        help="directory for the plots and the saved fit (default: out/demo)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_cmd_demo)

    impute = commands.add_parser(
        "impute",
        parents=[common],
        help="multiple imputation of the missing values of a CSV file",
        description="Fill the missing values of a CSV file m times with draws from a model.",
        epilog=IMPUTE_EXAMPLES,
        formatter_class=formatter,
    )
    impute.add_argument("data", help="CSV file with a header row; empty cells are missing")
    impute.add_argument(
        "--model",
        choices=("gmm", "ppca"),
        default="gmm",
        help="gmm: Gaussian mixture (default); ppca: probabilistic PCA",
    )
    impute.add_argument(
        "--n-components",
        type=_positive_int,
        default=None,
        metavar="K",
        help="mixture components (gmm, default 2) or latent dimensions (ppca, default 2, "
        "at most columns - 1)",
    )
    impute.add_argument(
        "--covariance-type", choices=("full", "diag"), default=None, help="gmm only (default: full)"
    )
    impute.add_argument(
        "-m",
        "--n-imputations",
        type=_positive_int,
        default=20,
        metavar="M",
        help="number of completed tables (default: 20)",
    )
    impute.add_argument(
        "--method",
        choices=("svi", "nuts", "map", "em"),
        default="svi",
        help="svi (default) and nuts draw parameters from their posterior: proper multiple "
        "imputation; map and em plug in one estimate (faster, improper)",
    )
    impute.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    impute.add_argument(
        "--format",
        choices=("long", "wide"),
        default="long",
        help="long (default): one file with .imp and .id columns, .imp 0 the data as read; "
        "wide: m files OUTPUT_1.csv ... OUTPUT_m.csv",
    )
    impute.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="COLUMN=KIND",
        help="override a column's inferred kind, e.g. Month=continuous (repeatable)",
    )
    impute.add_argument(
        "-o", "--output", required=True, metavar="CSV", help="where to write, e.g. imputed.csv"
    )
    impute.set_defaults(run=_cmd_impute)
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
        print(f"ppgen: error: {_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppgen: interrupted", file=sys.stderr)
        return 130
    except _linalg_error() as exc:
        # A fit or draw whose covariance is not positive definite: a numerical failure with the
        # data or options, which a traceback would not help the user with.
        print(f"ppgen: error: numerical failure: {_error_message(exc)}", file=sys.stderr)
        return 2


def _linalg_error() -> type[Exception]:
    # Only looked up once an exception reaches it, when the command has already imported torch.
    import torch

    return torch.linalg.LinAlgError


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        # str(KeyError) is just the quoted key, which reads as nothing without context.
        text = f"unknown column or key {exc.args[0]!r}" if exc.args else "unknown key"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# -- shared helpers ---------------------------------------------------------------------------


def _read_csv(path: str) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} as CSV: {exc}") from None
    if frame.empty:
        raise ValueError(f"{path} has no data rows")
    return frame


def _load_fit(path: str) -> Fit:
    import ppgen

    if not Path(path).is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    # torch.save writes a zip archive; torch.load fails on other files with arbitrary errors
    # (IndexError for a CSV file), so check the container first.
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a ppgen model file")
    try:
        return ppgen.load(path)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        # A damaged archive: torch's message is about pickles, not about the user's file.
        raise ValueError(f"{path} is not a ppgen model file ({type(exc).__name__})") from None


def _check_writable(path: str) -> None:
    """Fail before a long computation, not after it, when the output cannot be written."""
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"directory {parent} does not exist (for {path})")


def _model_label(model: GenerativeModel) -> str:
    covariance = getattr(model, "covariance_type", None)
    if getattr(model, "sequential", False):  # HMM: states, emission family (and covariance)
        family = model.emission_family
        covariance = covariance if family in ("gaussian", "mixed") else None
        details = [str(model.n_states), family] + ([covariance] if covariance else [])
        return f"{type(model).__name__}({', '.join(details)})"
    details = [str(model.n_components)] + ([covariance] if covariance else [])
    return f"{type(model).__name__}({', '.join(details)})"


def _format_table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """Left-aligned plain-text columns separated by two spaces."""
    cells = [[str(c) for c in row] for row in ([header] if header else []) + list(rows)]
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _nats(value: float) -> str:
    # Eight decimals: scores printed here are compared with library values to 1e-6.
    return f"{value:.8f}"


def _progress(quiet: bool) -> bool | None:
    return False if quiet else None  # None: a bar only when stderr is a terminal


# -- commands ---------------------------------------------------------------------------------


def _parse_kinds(items: Sequence[str]) -> dict[str, str]:
    kinds = {}
    for item in items:
        column, sep, kind = item.rpartition("=")
        if not sep or not column or not kind:
            raise ValueError(f"--kind expects COLUMN=KIND, got {item!r}")
        kinds[column] = kind
    return kinds


def _make_model(args: argparse.Namespace) -> GenerativeModel:
    import ppgen

    if args.model == "hmm":
        return _make_hmm(args)
    for option, value in _HMM_OPTIONS.items():
        if getattr(args, value) is not None:
            raise ValueError(f"{option} applies to --model hmm only")
    if args.n_components is None:
        raise ValueError(f"--model {args.model} needs --n-components")
    if args.model == "gmm":
        return ppgen.GaussianMixture(args.n_components, args.covariance_type or "full")
    if args.covariance_type is not None:
        raise ValueError("--covariance-type applies to --model gmm only")
    return ppgen.PPCA(args.n_components)


#: Options of ``ppgen fit`` for hidden Markov models only, and their argparse names.
_HMM_OPTIONS = {
    "--n-states": "n_states",
    "--emission": "emission",
    "--sequence-col": "sequence_col",
    "--time-col": "time_col",
    "--order-by": "order_by",
}


def _make_hmm(args: argparse.Namespace) -> GenerativeModel:
    import ppgen

    if args.n_components is not None:
        raise ValueError("--n-components applies to gmm and ppca; give hmm --n-states")
    if args.n_states is None:
        raise ValueError("--model hmm needs --n-states")
    emission = args.emission or "gaussian"
    if args.covariance_type is not None and emission not in ("gaussian", "mixed"):
        raise ValueError(
            f"--covariance-type applies to gaussian and mixed emissions, not {emission}"
        )
    return ppgen.HMM(
        args.n_states, emission, args.covariance_type or "full", order_by=args.order_by
    )


def _default_method(args: argparse.Namespace) -> str:
    if args.model == "hmm":
        return "map" if args.emission == "negbinomial" else "em"
    return "em" if args.model == "gmm" else "map"


def _sequence_options(args: argparse.Namespace, frame: pd.DataFrame) -> dict[str, Any]:
    """``id_column`` and ``time_column`` for an HMM fit, checked against the file's header."""
    if args.model != "hmm":
        return {}
    for option, column in (("--sequence-col", args.sequence_col), ("--time-col", args.time_col)):
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


def _report_sequence_fit(args, fit, frame, method: str, elapsed: float) -> int:
    """What ``ppgen fit`` prints for a hidden Markov model: scores per step and per sequence."""
    log_prob = fit.log_prob(frame)
    names = list(fit.schema.names)
    shown = ", ".join(map(str, names[:6])) + (", ..." if len(names) > 6 else "")
    n_seq = len(log_prob)
    rows = [
        (
            "data",
            f"{args.data}: {len(frame)} rows, {n_seq} sequence{'s' if n_seq != 1 else ''}, "
            f"{len(names)} columns ({shown})",
        ),
        ("model", _model_label(fit.model)),
        ("method", f"{method}, seed {args.seed}, {len(fit.losses)} steps, {elapsed:.1f} s"),
        ("log-likelihood per step", f"{_nats(fit.score(frame))} nats per time step"),
        (
            "log-likelihood per sequence",
            f"{_nats(float(np.mean(log_prob)))} nats (mean over {n_seq})",
        ),
        ("total log-likelihood", f"{log_prob.sum():.4f} nats"),
    ]
    if method in ("map", "em"):
        rows += [("BIC", f"{fit.bic(frame):.4f}"), ("AIC", f"{fit.aic(frame):.4f}")]
    else:
        rows.append(("note", "log-likelihood of the posterior predictive; no BIC/AIC"))
    rows.append(("saved", args.output))
    print(_format_table(rows))
    summary = fit.summary()
    more = f"; first {SUMMARY_ROWS} shown" if len(summary) > SUMMARY_ROWS else ""
    print(f"\nsummary ({len(summary)} rows{more}):")
    print(summary.head(SUMMARY_ROWS).to_string(float_format=lambda v: f"{v:.6g}"))
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    import ppgen

    method = args.method or _default_method(args)
    options = {}
    if args.n_init is not None:
        if method not in ("map", "em"):
            raise ValueError(f"--n-init applies to --method map or em, not {method}")
        options["n_init"] = args.n_init
    model = _make_model(args)
    kinds = _parse_kinds(args.kind)
    _check_writable(args.output)
    frame = _read_csv(args.data)
    options.update(_sequence_options(args, frame))
    start = time.perf_counter()
    fit = ppgen.fit(
        model,
        frame,
        method=method,
        seed=args.seed,
        kinds=kinds,
        standardize=not args.no_standardize,
        progress=_progress(args.quiet),
        **options,
    )
    elapsed = time.perf_counter() - start
    fit.save(args.output)
    if getattr(fit.model, "sequential", False):
        return _report_sequence_fit(args, fit, frame, method, elapsed)

    log_prob = fit.log_prob(frame)
    names = list(frame.columns)
    shown = ", ".join(map(str, names[:6])) + (", ..." if len(names) > 6 else "")
    rows = [
        ("data", f"{args.data}: {len(frame)} rows, {len(names)} columns ({shown})"),
        ("model", _model_label(fit.model)),
        ("method", f"{method}, seed {args.seed}, {len(fit.losses)} steps, {elapsed:.1f} s"),
        ("mean log-likelihood", f"{_nats(float(np.mean(log_prob)))} nats per row"),
        ("total log-likelihood", f"{log_prob.sum():.4f} nats"),
    ]
    if method in ("map", "em"):
        rows += [("BIC", f"{fit.bic(frame):.4f}"), ("AIC", f"{fit.aic(frame):.4f}")]
    else:
        rows.append(("note", "log-likelihood of the posterior predictive; no BIC/AIC"))
    rows.append(("saved", args.output))
    print(_format_table(rows))
    summary = fit.summary()
    more = f"; first {SUMMARY_ROWS} shown" if len(summary) > SUMMARY_ROWS else ""
    print(f"\nsummary ({len(summary)} rows{more}):")
    print(summary.head(SUMMARY_ROWS).to_string(float_format=lambda v: f"{v:.6g}"))
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    import pandas as pd

    fit = _load_fit(args.model)
    if args.per_row:
        _check_writable(args.per_row)
    frame = _read_csv(args.data)
    if getattr(fit.model, "sequential", False):
        return _score_sequences(args, fit, frame)
    log_prob = fit.log_prob(frame)
    rows = [
        ("model", f"{args.model}: {_model_label(fit.model)} by {fit.method}"),
        ("data", args.data),
        ("rows", len(log_prob)),
        ("mean log-likelihood", f"{_nats(float(np.mean(log_prob)))} nats per row"),
        ("total log-likelihood", f"{log_prob.sum():.4f} nats"),
    ]
    if args.per_row:
        per_row = pd.DataFrame({"log_prob": log_prob})
        if hasattr(fit.model, "predict_proba"):
            per_row["component"] = fit.predict(frame)
        per_row.to_csv(args.per_row, index=False)
        rows.append(("per-row", f"{args.per_row} ({', '.join(per_row.columns)})"))
    print(_format_table(rows))
    return 0


def _score_sequences(args: argparse.Namespace, fit: Fit, frame: pd.DataFrame) -> int:
    """``ppgen score`` of a hidden Markov model: per time step and per sequence.

    A sequence's log-likelihood does not split into rows, so ``--per-row`` writes one line per
    sequence: its id, number of steps and log-likelihood.
    """
    import pandas as pd

    log_prob = fit.log_prob(frame)
    enc = fit._encode(frame)
    steps = enc.lengths.tolist()
    n_seq = len(log_prob)
    rows = [
        ("model", f"{args.model}: {_model_label(fit.model)} by {fit.method}"),
        ("data", args.data),
        ("rows", f"{enc.n_steps} time steps in {n_seq} sequence{'s' if n_seq != 1 else ''}"),
        ("log-likelihood per step", f"{_nats(float(log_prob.sum() / enc.n_steps))} nats"),
        (
            "log-likelihood per sequence",
            f"{_nats(float(np.mean(log_prob)))} nats (mean over {n_seq})",
        ),
        ("total log-likelihood", f"{log_prob.sum():.4f} nats"),
    ]
    if args.per_row:
        table = pd.DataFrame({"sequence": list(enc.ids), "steps": steps, "log_prob": log_prob})
        table.to_csv(args.per_row, index=False)
        columns = ", ".join(table.columns)
        rows.append(("per-sequence", f"{args.per_row} ({columns}; one line per sequence)"))
    print(_format_table(rows))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ppgen import evaluate

    fit = _load_fit(args.model)
    if getattr(fit.model, "sequential", False):
        raise ValueError(
            f"evaluate does not support {type(fit.model).__name__} fits; their likelihood is "
            f"exact: run 'ppgen score {args.model} {args.data}'"
        )
    frame = _read_csv(args.data)
    if args.method == "ais":
        estimate = evaluate.ais(
            fit,
            frame,
            n_steps=args.n_steps,
            n_chains=args.n_chains,
            seed=args.seed,
            progress=_progress(args.quiet),
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
            _nats(estimate.mean),
            f"{estimate.se:.4f}",
            f"{estimate.mc_se:.4f}",
            f"{-estimate.mean * bits:.4f}",
        ),
    ]
    try:
        exact = fit.log_prob(frame)
    except NotImplementedError:
        exact = None
    if exact is not None:
        se = float(np.std(exact, ddof=1) / np.sqrt(len(exact))) if len(exact) > 1 else 0.0
        rows.append(
            (
                "exact",
                _nats(float(np.mean(exact))),
                f"{se:.4f}",
                "0",
                f"{-np.mean(exact) * bits:.4f}",
            )
        )
    print(
        f"{args.model}: {_model_label(fit.model)} by {fit.method}; {args.data}: {len(frame)} rows"
    )
    header = ("estimator", "nats/row", "se", "mc se", "bits/dim")
    print(_format_table(rows, header=header))
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    fit = _load_fit(args.model)
    if args.output:
        _check_writable(args.output)
    samples = fit.sample(args.n, seed=args.seed)
    if isinstance(samples, (list, dict)):  # HMM fitted on one sequence: n sequences of 100 steps
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
        print(f"wrote {len(samples)} rows x {samples.shape[1]} columns to {args.output}")
    return 0


# -- impute -----------------------------------------------------------------------------------

IMPUTE_EXAMPLES = """\
examples:
  ppgen impute airquality.csv --model gmm -m 20 -o imputed.csv
  ppgen impute airquality.csv --kind Month=continuous -m 20 --format wide -o imputed.csv
  ppgen impute penguins.csv --model ppca --n-components 2 --method map -m 5 -o imputed.csv

The long format stacks the data as read (.imp = 0, missing cells empty) and the m completed
tables (.imp = 1..m); .id is the row number in the input file (0 = first data row), as R's
mice::complete(imp, "long", include = TRUE). Observed cells are written as read, and each
column keeps its type (integer columns stay integers). --format wide writes OUTPUT_1.csv ...
OUTPUT_m.csv next to OUTPUT instead.
"""


def _cmd_impute(args: argparse.Namespace) -> int:
    import ppgen

    if args.covariance_type is not None and args.model != "gmm":
        raise ValueError("--covariance-type applies to --model gmm only")
    options: dict[str, Any] = {}
    if args.n_components is not None:
        options["n_components"] = args.n_components
    if args.covariance_type is not None:
        options["covariance_type"] = args.covariance_type
    kinds = _parse_kinds(args.kind)
    _check_writable(args.output)
    frame = _read_csv(args.data)
    imputer = ppgen.Imputer(
        args.model,
        n_imputations=args.n_imputations,
        seed=args.seed,
        method=args.method,
        kinds=kinds or None,
        **options,
    )
    start = time.perf_counter()
    imputer.fit(frame)
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
    missing = frame.isna().sum()
    missing = missing[missing > 0]
    shown = ", ".join(f"{name} {count}" for name, count in missing.items()) or "none"
    proper = "proper" if args.method in ("svi", "nuts") else "improper (one parameter estimate)"
    rows = [
        ("data", f"{args.data}: {len(frame)} rows, {frame.shape[1]} columns"),
        ("missing", f"{int(missing.sum())} cells ({shown})"),
        ("model", _model_label(imputer.fit_.model)),
        ("method", f"{args.method}, seed {args.seed}, {elapsed:.1f} s; {proper} imputation"),
        ("imputations", m),
    ]
    rows += [("written", path) for path in written[:3]]
    if len(written) > 3:
        rows.append(("", f"... {written[-1]} ({len(written)} files)"))
    print(_format_table(rows))
    return 0


# -- demo -------------------------------------------------------------------------------------


def _adjusted_rand_index(a: Sequence, b: Sequence) -> float:
    """Adjusted Rand index of two partitions (Hubert & Arabie 1985): 1 same, about 0 chance."""
    _, ai = np.unique(np.asarray(a), return_inverse=True)
    _, bi = np.unique(np.asarray(b), return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) / 2).sum())

    together = pairs(table)
    in_a, in_b = pairs(table.sum(1)), pairs(table.sum(0))
    total = pairs(np.array([len(ai)]))
    expected = in_a * in_b / total if total else 0.0
    best = (in_a + in_b) / 2
    if best == expected:  # both partitions trivial (one block, or all singletons): identical
        return 1.0
    return (together - expected) / (best - expected)


def _sklearn_reference(data: pd.DataFrame, model: GenerativeModel) -> tuple[float, str] | None:
    """scikit-learn's mean log-likelihood per row for the same model, or None without sklearn."""
    try:
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture
    except ImportError:
        return None
    x = data.to_numpy(dtype=float)
    if hasattr(model, "covariance_type"):
        ref = GaussianMixture(
            model.n_components, covariance_type=model.covariance_type, n_init=10, random_state=0
        )
        return float(ref.fit(x).score(x)), "GaussianMixture n_init=10"
    # Isotropic noise is not scale-free, so PPCA on raw data is another model than ppgen's
    # (fitted on standardized columns). Fit PCA there too and add the same log-Jacobian.
    loc, scale = x.mean(0), x.std(0)
    z = (x - loc) / scale
    score = PCA(model.n_components).fit(z).score(z) - np.log(scale).sum()
    return float(score), "PCA.score, standardized"


def _save_figure(path: Path, draw: Callable[[Any], Any], size: tuple[float, float]) -> None:
    # A bare Figure needs no pyplot state and no display backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    draw(fig.subplots())
    fig.savefig(path, dpi=120)


def _cmd_demo(args: argparse.Namespace) -> int:
    import pandas as pd

    import ppgen
    from ppgen import plot

    start = time.perf_counter()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    progress = _progress(args.quiet)

    faithful = ppgen.datasets.load("faithful")
    wine = ppgen.datasets.load("wine").rename(columns={"target": "cultivar"})
    features = wine.drop(columns="cultivar")
    print("ppgen demo: Gaussian mixtures and probabilistic PCA on real data")
    print(f"  faithful: {len(faithful)} Old Faithful eruptions ({', '.join(faithful.columns)})")
    print(
        f"  wine:     {len(features)} Italian wines, {features.shape[1]} chemical "
        "measurements; the cultivar is held out\n"
    )

    runs = [
        ("faithful", faithful, ppgen.GaussianMixture(2, "full"), "em"),
        ("faithful", faithful, ppgen.GaussianMixture(2, "full"), "map"),
        ("wine", features, ppgen.GaussianMixture(3, "diag"), "em"),
        ("wine", features, ppgen.PPCA(2), "map"),
    ]
    fits, rows, references = [], [], {}
    for name, data, model, method in runs:
        fit = ppgen.fit(model, data, method=method, seed=0, progress=progress)
        fits.append(fit)
        key = (name, _model_label(model))
        if key not in references:
            references[key] = _sklearn_reference(data, model)
        ref = references[key]
        row = [name, key[1], method, _nats(fit.score(data))]
        rows.append(row + (["-", ""] if ref is None else [_nats(ref[0]), f"({ref[1]})"]))
    faithful_em, faithful_map, wine_gmm, wine_ppca = fits

    print("mean log-likelihood per row (nats, original scale; higher is better)")
    print(_format_table(rows, header=["data", "model", "method", "ppgen", "scikit-learn", ""]))
    if all(r is None for r in references.values()):
        print("(scikit-learn is not installed: no reference values)")

    clusters = pd.Series(wine_gmm.predict(features), name="cluster")
    print(f"\nwine: {_model_label(wine_gmm.model)} clusters (rows) against cultivars (columns)")
    print(pd.crosstab(clusters, wine["cultivar"]).to_string())
    ari = _adjusted_rand_index(clusters, wine["cultivar"])
    print(f"adjusted Rand index: {ari:.3f} (1 = the cultivars exactly, 0 = chance)")

    written = [out / "faithful.ppgen"]
    faithful_em.save(str(written[0]))
    figures = [
        ("losses.png", lambda ax: plot.losses(faithful_map, ax), (6.0, 4.0)),
        (
            "clusters.png",
            lambda ax: plot.clusters(faithful_em, faithful, "eruptions", "waiting", ax),
            (6.0, 4.5),
        ),
        (
            "wine_ppca.png",
            lambda ax: plot.latent(wine_ppca, wine, color="cultivar", ax=ax),
            (6.0, 4.5),
        ),
    ]
    for filename, draw, size in figures:
        written.append(out / filename)
        _save_figure(written[-1], draw, size)

    print(f"\nfiles written ({time.perf_counter() - start:.1f} s):")
    print(_format_table([(f"  {p}", f"{p.stat().st_size / 1024:.1f} kB") for p in written]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
