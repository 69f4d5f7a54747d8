"""Why the diabetes study's design is what it is: the measurements behind imputation_study.py's
--table diabetes-hc3 (issue 21).

    python benchmarks/imputation_study_diagnostics.py hc3            # complete-data coverage
    python benchmarks/imputation_study_diagnostics.py rank           # PPCA's misfit at n = 20,000
    python benchmarks/imputation_study_diagnostics.py rank --columns 10
    python benchmarks/imputation_study_diagnostics.py select         # q by held-out scores
    python benchmarks/imputation_study_diagnostics.py select --columns 10

``hc3``: 1000 complete-data replications (n = 442 with replacement) of the analysis
``target ~ age + bmi + bp + s5``; coverage of the true values by the model-based, HC1 and HC3
95 % t intervals (the population's residuals are heteroscedastic).
``rank``: what imputation does to the coefficients, without sampling noise: 2 samples of 20,000
rows, 30 % of the rows amputed MAR (one analysis column each), 5 imputations (EM, improper: the
bias, not the interval, is measured), percent shift of the pooled estimate from the same rows'
complete-data estimate, for PPCA(q, standardize=True) over q and GMM K = 1. ``--columns 10``
imputes with diabetes' ten continuous columns (the inclusive strategy: s1-s6 as auxiliaries;
only the analysis columns go missing).
``select``: ppgen.impute.auto.heldout_scores (10 % of the observed cells hidden, 3 folds) of
GMM K = 1-3 and PPCA(q, standardize=True) on the population amputed MAR (seeds 0 and 1): the
held-out CRPS (auto's criterion) and the held-out log density per cell.
Prints its tables (no results file: the figures are quoted in imputation_study.py's notes).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads  # noqa: E402

THREADS = pin_threads(1)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import ppgen  # noqa: E402

warnings.filterwarnings("ignore")
ANALYSIS_COLUMNS = ["age", "bmi", "bp", "s5", "target"]
ANALYSIS = "target ~ age + bmi + bp + s5"


def population(columns: int) -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.astype(float)
    if columns == 5:
        return frame[ANALYSIS_COLUMNS]
    return frame.drop(columns="sex")  # the ten continuous columns


def hc3(replications: int = 1000) -> None:
    import statsmodels.formula.api as smf
    from scipy import stats

    pop = population(5)
    truth = smf.ols(ANALYSIS, pop).fit().params
    rng = np.random.default_rng(0)
    covered: dict[str, list] = {"nonrobust": [], "HC1": [], "HC3": []}
    for _ in range(replications):
        sample = pop.iloc[rng.choice(len(pop), len(pop))].reset_index(drop=True)
        for cov_type, hits in covered.items():
            fit = smf.ols(ANALYSIS, sample).fit(cov_type=cov_type)
            half = stats.t.ppf(0.975, fit.df_resid) * fit.bse
            hits.append(((fit.params - half <= truth) & (truth <= fit.params + half)).to_numpy())
    table = pd.DataFrame({k: np.mean(v, 0) for k, v in covered.items()}, index=truth.index)
    print(f"complete-data coverage of the 95 % interval, {replications} replications")
    print(table.T.round(3).to_string())


def rank(columns: int, rows: int = 20_000, repeats: int = 2) -> None:
    pop = population(columns)
    configs = [
        ("ppca", {"n_components": q, "standardize": True}) for q in range(1, min(columns, 9))
    ]
    configs.append(("gmm", {"n_components": 1}))
    shifts: dict[str, list] = {}
    for r in range(repeats):
        rng = np.random.default_rng(100 + r)
        sample = pop.iloc[rng.integers(0, len(pop), rows)].reset_index(drop=True)
        patterns = [[c] for c in ANALYSIS_COLUMNS]
        amputed = ppgen.ampute(sample, 0.3, mechanism="MAR", patterns=patterns, seed=r)
        complete = ppgen.pool_fit([sample, sample], ANALYSIS)
        for name, options in configs:
            imputer = ppgen.Imputer(name, n_imputations=5, method="em", seed=r, **options)
            estimate = ppgen.pool_fit(imputer.fit_transform(amputed), ANALYSIS).estimate
            key = f"{name} {options['n_components']}"
            shifts.setdefault(key, []).append(
                100 * (estimate - complete.estimate) / abs(complete.estimate)
            )
            print(key, "done", flush=True)
    table = pd.DataFrame({k: np.mean(v, 0) for k, v in shifts.items()}, index=complete.names)
    print(f"percent shift from the complete-data estimate, {columns} columns, MAR 30 %, n = {rows}")
    print(table.T.round(2).to_string())


def select(columns: int) -> None:
    from ppgen.impute.auto import heldout_scores

    pop = population(columns)
    grid = [("gmm", {"n_components": k}) for k in (1, 2, 3)]
    grid += [("ppca", {"n_components": q, "standardize": True}) for q in range(1, columns)]
    for seed in (0, 1):
        amputed = ppgen.ampute(
            pop, 0.3, mechanism="MAR", patterns=[[c] for c in ANALYSIS_COLUMNS], seed=seed
        )
        scores = heldout_scores(amputed, grid, seed=seed)
        scores["options"] = scores["options"].astype(str)
        print(f"{columns} columns, seed {seed}")
        print(scores[["model", "options", "crps", "heldout"]].to_string(), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["hc3", "rank", "select"])
    parser.add_argument("--columns", type=int, choices=[5, 10], default=5)
    args = parser.parse_args(argv)
    if args.what == "hc3":
        hc3()
    elif args.what == "rank":
        rank(args.columns)
    else:
        select(args.columns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
