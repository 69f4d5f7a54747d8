"""Van Buuren's simulation study: bias and coverage of pooled regression coefficients.

    python benchmarks/imputation.py --study                    # 200 replications (long)
    python benchmarks/imputation_study.py --replications 40    # a few minutes per method
    python benchmarks/imputation_study.py --table diabetes --methods "gmm K=1" --checkpoint

Population (--table penguins, the default): palmerpenguins' four measurements (342 complete
rows; bill length and depth, flipper length, body mass). Analysis: OLS of body_mass_g on the
three others; the population
values are that OLS on the 342 rows. Each replication draws n = 200 rows with replacement,
ampute()s 30% of the rows (one column per incomplete row, mice's default patterns) under MCAR,
MAR or MNAR, imputes m = 10 times and pools by Rubin's rules (ppgen.impute.imputation_report).
Methods: GaussianMixture with K = 1 (the saturated multivariate normal, mice's "norm" joint
model) and K = 3, and PPCA(2), all proper through Imputer(method="em", proper="bootstrap");
MICE from statsmodels (MICEData, predictive mean matching, 10 imputations of 5 cycles each).
--table diabetes: scikit-learn's diabetes table (442 rows: age, bmi, bp, s5, target), OLS of
target on the four others, n = 442 per replication; PPCA on standardized columns ("ppca q=2
std", the BIC's q on the correlations; "ppca q=4 std"); "gmm K=1 delta" for MNAR (the delta
that fixes MAR imputation, calibrated on the population: mnar_deltas).
--table diabetes-hc3 (issue 21's final design): the same, with HC3 (heteroscedasticity-
consistent) standard errors in the analysis, whose complete-data intervals cover ~95 % on this
heteroscedastic population (the model-based intercept interval covers 98.6 %). PPCA q = 4 std
is the held-out observed-entry log density's pick (and the saturated Gaussian on 5 columns);
q = 2 std the BIC's and the held-out CRPS's, kept to show its misfit.
Missingness designs (--mechanisms): MCAR, MAR, MNAR (30 % of rows, one column each, ampute's
patterns) and MNAR-bmi (half the rows lose bmi, the likelier the larger it is: self-masking,
where MAR imputation is biased); "gmm K=1 delta" / "ppca q=4 std delta" shift the imputed
values by the delta that is right for the design (mnar_deltas: ppgen.impute.report.true_delta
on 4 x 20,000 rows; for MNAR-bmi, bmi +2.50 kg/m^2, 0.57 sd).
Long runs: --checkpoint appends each replication to <name>_reps.csv (with its CPU seconds),
--resume continues such a file, --summarize FILES... writes the table from them.
Writes benchmarks/results/imputation_study.md and .csv.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, pin_threads, write_table  # noqa: E402

THREADS = pin_threads(1)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import ppgen  # noqa: E402
from ppgen.impute import imputation_report  # noqa: E402
from ppgen.impute import report as _report  # noqa: E402

warnings.filterwarnings("ignore")
COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
ANALYSIS = "body_mass_g ~ bill_length_mm + bill_depth_mm + flipper_length_mm"
#: scikit-learn's diabetes table (Efron et al. 2004; 442 patients, unscaled): age, body mass
#: index, mean blood pressure, s5 (log serum triglycerides) and the disease progression after
#: one year. Near-Gaussian margins (|skew| <= 0.6), one population (no hidden groups), and every
#: slope but age's is >= 4 standard errors from 0 at n = 442.
DIABETES_COLUMNS = ["age", "bmi", "bp", "s5", "target"]
DIABETES_ANALYSIS = "target ~ age + bmi + bp + s5"


@dataclass(frozen=True)
class Table:
    """A study's population: the imputation models' columns, the analysis (an OLS formula and
    its standard errors), rows per replication, and the columns that may go missing (one
    pattern per column; None: every column)."""

    columns: list[str]
    analysis: str
    n: int
    amputed: list[str] | None = None
    cov_type: str = "nonrobust"
    source: str = "diabetes"


TABLES = {
    "penguins": Table(COLUMNS, ANALYSIS, 200, source="penguins"),
    "diabetes": Table(DIABETES_COLUMNS, DIABETES_ANALYSIS, 442),
    # The final design (issue 21): the same population, amputation and imputations as
    # "diabetes", the analysis with HC3 standard errors. The population's residuals are
    # heteroscedastic (Breusch-Pagan p = 0.02): over 1000 complete-data replications the
    # model-based 95 % interval of the intercept covers 98.6 %, HC3's 95.9 % (slopes 94-96 %
    # either way). Rubin's rules take any consistent within-imputation variance.
    "diabetes-hc3": Table(DIABETES_COLUMNS, DIABETES_ANALYSIS, 442, cov_type="HC3"),
}
#: Missingness designs: ampute's mechanism, the share of rows made incomplete, and the columns
#: that may go missing (None: the table's). "MNAR-bmi": half the rows lose bmi, the likelier the
#: larger their bmi (self-masking, ampute's RIGHT logistic of bmi's standardized value): a
#: mechanism under which MAR imputation is visibly biased, unlike ampute's MNAR over every column
#: (30 % of rows, so about 6 % of each column).
DESIGNS = {
    "MCAR": ("MCAR", 0.3, None),
    "MAR": ("MAR", 0.3, None),
    "MNAR": ("MNAR", 0.3, None),
    "MNAR-bmi": ("MNAR", 0.5, ["bmi"]),
}


def design(table: Table, name: str) -> dict:
    """imputation_report's (and ampute's) options of missingness design ``name``."""
    if name not in DESIGNS:
        raise ValueError(f"unknown missingness design {name!r}; known: {sorted(DESIGNS)}")
    mechanism, prop, columns = DESIGNS[name]
    columns = columns or table.amputed
    patterns = None if columns is None else [[c] for c in columns]
    return {"mechanism": mechanism, "prop": prop, "patterns": patterns}


M = 10


def population(table: str = "penguins") -> pd.DataFrame:
    spec = TABLES[table]
    if spec.source == "diabetes":
        from sklearn.datasets import load_diabetes

        frame = load_diabetes(as_frame=True, scaled=False).frame.astype(float)
        return frame[spec.columns].reset_index(drop=True)
    return ppgen.datasets.load("penguins")[COLUMNS].dropna().reset_index(drop=True)


def mice(table: pd.DataFrame, seed: int, m: int = M, cycles: int = 5) -> list[pd.DataFrame]:
    """statsmodels' MICE: m tables, each after `cycles` more chained-equation cycles."""
    from statsmodels.imputation.mice import MICEData

    np.random.seed(seed)  # noqa: NPY002 (MICEData draws from numpy's global generator)
    data = MICEData(table.copy())
    out = []
    for _ in range(m):
        data.update_all(cycles)
        out.append(data.data.copy())
    return out


def mnar_deltas(pop: pd.DataFrame, options: dict) -> dict[str, float]:
    """The delta that makes GMM K=1's MAR imputations right under an MNAR design, per column:
    the sensitivity parameter at its true value, which an analyst would have to argue for
    (ppgen.impute.report.true_delta: 4 samples of 20,000 rows amputed as the study does
    (``options``), mean deleted minus mean MAR-imputed value)."""
    return _report.true_delta(pop, **options)


def methods(pop: pd.DataFrame | None = None, wanted: list[str] | None = None, options=None) -> dict:
    """The imputation methods by name; ``options`` (the missingness design's) calibrate the
    delta-adjusted ones, which are built only when ``wanted``."""

    def boot(model, **options):
        return ppgen.Imputer(model, n_imputations=M, method="em", proper="bootstrap", **options)

    extra = {}
    deltas_wanted = [w for w in wanted or [] if w.endswith(" delta")]
    if pop is not None and deltas_wanted:
        deltas = mnar_deltas(pop, options)
        print("deltas:", {c: round(v, 4) for c, v in deltas.items()}, flush=True)
        extra["gmm K=1 delta"] = boot("gmm", n_components=1, delta=deltas)
        extra["ppca q=4 std delta"] = boot("ppca", n_components=4, standardize=True, delta=deltas)
    return extra | {
        "gmm K=1": boot("gmm", n_components=1),
        "gmm K=2": boot("gmm", n_components=2),
        "gmm K=3": boot("gmm", n_components=3),
        "ppca q=2": boot("ppca", n_components=2, fit_options={"max_steps": 200}),
        # PPCA on standardized columns (the columns' scales differ by 100x, which an isotropic
        # noise cannot hold); q = 2 is the BIC's pick on diabetes' five columns' correlations,
        # q = 4 the saturated one (any covariance on 5 columns) and the pick of the held-out
        # observed-entry log density (10 % of the observed cells hidden, 3 folds) on the
        # MAR-amputed population.
        "ppca q=2 std": boot("ppca", n_components=2, standardize=True),
        "ppca q=4 std": boot("ppca", n_components=4, standardize=True),
        "mice (statsmodels)": mice,
    }


class Checkpointed:
    """A method ``f(table, seed)`` for imputation_report that imputes exactly as ``method``
    would there (an Imputer copied with seed ``seed + replication``) and appends each
    replication's pooled estimates and 95% intervals to a CSV: a run cut short keeps the
    replications it finished (their samples are a prefix of a longer run's, same seed). With
    ``resume``, a replication the CSV already holds for this (mechanism, method), or with
    ``start`` one before it, is not imputed: a placeholder (mean imputation) lets
    imputation_report move on to the next sample, so the run's own table is meaningless and
    --summarize makes the real one."""

    def __init__(
        self,
        method,
        name: str,
        mechanism: str,
        spec: Table,
        path: Path,
        resume: bool = False,
        start: int = 0,
    ) -> None:
        self.method, self.name, self.mechanism = method, name, mechanism
        self.fn, self.path = _report._as_function(spec.analysis, spec.cov_type), path
        self.done: set[int] = set()
        if resume and path.exists():
            old = pd.read_csv(path)
            mine = (old["mechanism"] == mechanism) & (old["method"] == name)
            self.done = set(old.loc[mine, "replication"].astype(int))
        self.done |= set(range(start))  # another process does these

    def __call__(self, table: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
        if seed in self.done:
            return [table.fillna(table.mean())] * 2
        c0 = time.process_time()
        tables = _report._impute(self.method, table, seed)
        pooled = ppgen.pool_fit(tables, self.fn)
        estimate, lower, upper = _report._pooled_interval(pooled, 0.05)
        cpu = time.process_time() - c0  # this process' CPU: imputation and pooling
        rows = pd.DataFrame(
            {
                "mechanism": self.mechanism,
                "method": self.name,
                "replication": seed,  # imputation_report's seed is 0 + replication
                "term": list(pooled.names),
                "estimate": estimate,
                "lower": lower,
                "upper": upper,
                "cpu_s": cpu,
            }
        )
        rows.to_csv(self.path, mode="a", header=not self.path.exists(), index=False)
        return tables


def references(
    pop: pd.DataFrame, table: str, mechanism: str, replications: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The complete-data and complete-case records of the study's first ``replications``
    samples under ``mechanism``, and the true values; cached in
    <RESULTS>/imputation_study_<table>_references_reps.csv (they do not depend on the methods:
    a mean imputation stands in for one)."""
    spec = TABLES[table]
    cache = RESULTS / f"imputation_study_{table}_references_reps.csv"
    cached = pd.read_csv(cache) if cache.exists() else None
    if cached is not None:
        mine = cached[cached["mechanism"] == mechanism]
        if mine["replication"].nunique() >= replications:
            truth = mine.groupby("term", sort=False)["true"].first().to_dict()
            return mine.drop(columns=["mechanism", "true"]), truth
    report = imputation_report(
        pop, spec.analysis, {"mean": lambda t, s: [t.fillna(t.mean())] * 2}, n=spec.n,
        replications=replications, seed=0, progress=False, cov_type=spec.cov_type,
        **design(spec, mechanism),
    )  # fmt: skip
    truth = report.estimates.xs("complete data")["true"].to_dict()
    rec = report.replications[report.replications["method"] != "mean"]
    rec = rec.assign(mechanism=mechanism, true=rec["term"].map(truth))
    keep = cached[cached["mechanism"] != mechanism] if cached is not None else None
    pd.concat([keep, rec]).to_csv(cache, index=False)
    return rec.drop(columns=["mechanism", "true"]), truth


def summarize(pop: pd.DataFrame, table: str, paths: list[str], name: str) -> None:
    """The study's table from checkpoint CSVs: each (mechanism, method) over the replications
    it finished, beside the complete-data and complete-case rows of the same replications."""
    raw = pd.concat([pd.read_csv(p) for p in paths]).drop_duplicates(
        ["mechanism", "method", "replication", "term"]
    )
    spec = TABLES[table]
    n = spec.n
    out, refs_by_mechanism = [], {}
    for (mechanism, _), block in raw.groupby(["mechanism", "method"], sort=False):
        # Replications are iid samples, so any set of them is a fair Monte Carlo sample (a run
        # split over processes may leave a gap between their ranges).
        done = sorted(set(block["replication"].astype(int)))
        reps = len(done)
        # The reference rows of the same replications (a mean imputation as the method), one
        # run per mechanism over the longest range any method reached.
        if mechanism not in refs_by_mechanism:
            last = int(raw.loc[raw["mechanism"] == mechanism, "replication"].max())
            refs_by_mechanism[mechanism] = references(pop, table, mechanism, last + 1)
        ref_raw, truth = refs_by_mechanism[mechanism]
        refs = _report._summarize(ref_raw[ref_raw["replication"].isin(done)], truth).reset_index()
        cpu = block.groupby("replication")["cpu_s"].first().mean() if "cpu_s" in block else None
        block = block.drop(columns=["mechanism", "cpu_s"], errors="ignore")
        est = _report._summarize(block, truth).reset_index()
        est["cpu_s_per_replication"] = cpu
        refs = refs[refs["method"].isin(["complete data", "complete cases"])]
        if any(r["mechanism"] == mechanism and r["replication_set"] == done for r in out):
            refs = refs.iloc[:0]  # the reference rows once per mechanism and replication set
        keys = ("method", "term", "true", "bias", "percent_bias", "coverage", "coverage_se")
        head = {"table": table, "n": n, "mechanism": mechanism, "replications": reps}
        head["replication_set"] = done
        for _, r in pd.concat([refs, est]).iterrows():
            out.append(
                head | {k: r.get(k) for k in (*keys, "width", "rmse", "cpu_s_per_replication")}
            )
    notes = f"""
{__doc__.split("Writes")[0].strip()}

Summary of the checkpoint files {", ".join(Path(p).name for p in paths)}: each (mechanism,
method) over the replications it finished (replication_ids; the same samples as a full run),
beside the complete-data and complete-case rows of the same replications. percent_bias = 100
bias / |true|: read the raw bias for age (true value -0.18, standard error ~0.2).
cpu_s_per_replication: the CPU seconds of imputation + pooling per replication (one thread;
the machine's load inflates it less than wall time).
"""
    for row in out:  # which replications, as ranges ("0-99, 120-151")
        row["replication_ids"] = _ranges(row.pop("replication_set"))
    write_table(name, out, notes, title="Imputation: bias and coverage of pooled estimates")
    print(f"wrote {RESULTS / (name + '.md')}")


def _ranges(numbers: list[int]) -> str:
    parts, first = [], numbers[0]
    for a, b in zip(numbers, [*numbers[1:], None], strict=True):
        if b != a + 1:
            parts.append(f"{first}-{a}" if a > first else f"{a}")
            first = b
    return ", ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument(
        "--mice-replications", type=int, default=None, help="fewer for MICE (the slowest)"
    )
    parser.add_argument("--mechanisms", default="MCAR,MAR,MNAR")
    parser.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    parser.add_argument("--table", choices=sorted(TABLES), default="penguins")
    parser.add_argument("--n", type=int, default=None, help="rows per replication")
    parser.add_argument("--name", default="imputation_study")
    parser.add_argument(
        "--checkpoint", action="store_true", help="append every replication to <name>_reps.csv"
    )
    parser.add_argument(
        "--resume", action="store_true", help="with --checkpoint: skip replications it holds"
    )
    parser.add_argument(
        "--start", type=int, default=0, help="with --checkpoint: begin at this replication"
    )
    parser.add_argument(
        "--references", action="store_true", help="only cache the reference rows (summarize's)"
    )
    parser.add_argument("--summarize", nargs="+", help="checkpoint CSVs: write their table only")
    args = parser.parse_args(argv)
    pop = population(args.table)
    if args.summarize:
        summarize(pop, args.table, args.summarize, args.name)
        return 0
    if args.references:
        for mechanism in args.mechanisms.split(","):
            references(pop, args.table, mechanism, args.replications)
        return 0
    spec = TABLES[args.table]
    n = args.n or spec.n
    wanted = args.methods.split(",") if args.methods else None
    rows = []
    t_start = time.perf_counter()
    for mechanism in args.mechanisms.split(","):
        options = design(spec, mechanism)
        chosen = methods(pop, wanted, options)
        if args.methods:
            chosen = {k: v for k, v in chosen.items() if k in args.methods.split(",")}
        for number, (name, method) in enumerate(chosen.items()):
            reps = args.replications
            if name.startswith("mice") and args.mice_replications:
                reps = args.mice_replications
            if args.checkpoint:
                path = RESULTS / f"{args.name}_reps.csv"
                method = Checkpointed(method, name, mechanism, spec, path, args.resume, args.start)
            t0, c0 = time.perf_counter(), time.process_time()
            report = imputation_report(
                pop, spec.analysis, {name: method}, n=n, replications=reps, seed=0,
                progress=False, cov_type=spec.cov_type, **options,
            )  # fmt: skip
            per_rep = (time.perf_counter() - t0) / reps
            cpu_per_rep = (time.process_time() - c0) / reps
            est = report.estimates.reset_index()
            keep = est["method"] == name
            if number == 0:  # the reference rows once per mechanism
                keep |= est["method"].isin(["complete data", "complete cases"])
            for _, r in est[keep].iterrows():
                rows.append(
                    {
                        "table": args.table,
                        "n": n,
                        "mechanism": mechanism,
                        "method": r["method"],
                        "term": r["term"],
                        "replications": reps,
                        "true": r["true"],
                        "bias": r["bias"],
                        "percent_bias": r["percent_bias"],
                        "coverage": r["coverage"],
                        "coverage_se": r["coverage_se"],
                        "width": r["width"],
                        "rmse": r["rmse"],
                        "s_per_replication": per_rep if r["method"] == name else None,
                        "cpu_s_per_replication": cpu_per_rep if r["method"] == name else None,
                    }
                )
            elapsed = time.perf_counter() - t_start
            print(f"[{elapsed:7.1f}s] {mechanism} {name}: {per_rep:.2f} s/rep", flush=True)
            write(args, rows, t_start)  # after every block: a partial run keeps its rows
    return 0


def write(args: argparse.Namespace, rows: list[dict], t_start: float) -> None:
    notes = f"""
{__doc__.split("Writes")[0].strip()}

Table: {args.table}. percent_bias = 100 bias / |true|; read the raw bias for coefficients whose
true value is within a few standard errors of 0 (penguins' bill_length_mm, true value about 4
g/mm with a standard error about 7 at n = 200; diabetes' age). coverage_se is the Monte Carlo
standard error of the coverage. s_per_replication: wall time of fit + m imputations + pooling
per replication, one thread, on a machine shared with other jobs (load 10-17: wall times are
several times an idle machine's); cpu_s_per_replication: the process' CPU time for the same,
which the load inflates less. The complete-data and complete-case rows come from the first
method's run of each mechanism. Run time so far {time.perf_counter() - t_start:.0f} s.
"""
    write_table(args.name, rows, notes, title="Imputation: bias and coverage of pooled estimates")
    print(f"wrote {RESULTS / (args.name + '.md')}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
