"""Imputation accuracy of ppgen's generative models against scikit-learn's imputers.

    python benchmarks/imputation.py            # breast_cancer, wine, penguins; 3 seeds
    python benchmarks/imputation.py --quick    # 1 seed, smaller grids: a smoke run

Data: scikit-learn's breast_cancer (569 x 30) and wine (178 x 13), standardized, and
palmerpenguins (mixed: 3 categorical, 4 continuous columns). Mechanisms: MCAR 20%, MCAR 50%,
and MAR (the first column stays observed; every other entry is missing with probability
0.4 * logistic(2 z), z that row's standardized first column: about 20% overall, more where z is
high). Metrics on the masked entries: RMSE on the standardized scale of the mean of the m = 20
imputations (a point imputation for the peers), coverage of the 5%-95% range of the m = 20
imputed values (proper multiple imputations only), categorical accuracy (modal imputed
category), wall time of fit + imputation. Everything runs on one thread. Writes
benchmarks/results/imputation{,_quick}.md and .csv.
"""

# ruff: noqa: B023 (the closures below are called at once, inside their loop iteration)
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    FitTimeout,
    markdown_table,
    pin_threads,
    with_budget,
    write_table,
)

THREADS = pin_threads(1)  # before numpy/torch/sklearn are imported

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import ExtraTreesRegressor  # noqa: E402
from sklearn.experimental import enable_iterative_imputer  # noqa: E402, F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer  # noqa: E402
from sklearn.linear_model import BayesianRidge  # noqa: E402

import ppgen  # noqa: E402

warnings.filterwarnings("ignore")
SEEDS = (0, 1, 2)
M = 20  # imputations per ppgen fit
MICE_M = 5
PPCA_GRID = {"breast_cancer": (5, 10, 15), "wine": (3, 4, 5, 6)}
QUICK_PPCA_GRID = {"breast_cancer": (10,), "wine": (5,)}
SVI_Q = {"breast_cancer": 15, "wine": 5}
GMM_DIAG_K = (1, 2, 3, 4)
BUDGET = 60.0  # seconds after which one ppgen fit is abandoned


# -- data and masks -------------------------------------------------------------------------------
def standardized(name: str) -> np.ndarray:
    x = ppgen.datasets.load(name, label=False).to_numpy(dtype=float)
    return (x - x.mean(0)) / x.std(0)


def make_mask(x: np.ndarray, mechanism: str, seed: int) -> np.ndarray:
    """True where an entry is removed; no row loses all its entries."""
    rng = np.random.default_rng(10_000 + seed)
    n, d = x.shape
    if mechanism.startswith("MCAR"):
        mask = rng.random((n, d)) < float(mechanism[4:]) / 100
    elif mechanism == "MAR":
        z = (x[:, 0] - x[:, 0].mean()) / x[:, 0].std()
        p = 0.4 / (1.0 + np.exp(-2.0 * z))
        mask = rng.random((n, d)) < p[:, None]
        mask[:, 0] = False
    else:
        raise ValueError(mechanism)
    full = mask.all(1)
    mask[full, rng.integers(0, d, size=int(full.sum()))] = False
    return mask


# -- methods ------------------------------------------------------------------------------------
def peers(quick: bool):
    """name -> function(x_missing, seed) returning a list of completed arrays."""
    trees = 10  # 30 trees x 10 rounds take ~40 s per breast_cancer table: too slow to repeat
    return {
        "column mean": lambda xm, s: [SimpleImputer(strategy="mean").fit_transform(xm)],
        "KNNImputer (k=5)": lambda xm, s: [KNNImputer().fit_transform(xm)],
        "IterativeImputer (BayesianRidge)": lambda xm, s: [
            IterativeImputer(BayesianRidge(), max_iter=10, random_state=s).fit_transform(xm)
        ],
        f"MICE: IterativeImputer(sample_posterior) x {MICE_M}": lambda xm, s: [
            IterativeImputer(
                sample_posterior=True, max_iter=10, random_state=100 * s + j
            ).fit_transform(xm)
            for j in range(MICE_M)
        ],
        f"MissForest-like: IterativeImputer(ExtraTrees({trees}))": lambda xm, s: [
            IterativeImputer(
                ExtraTreesRegressor(n_estimators=trees, random_state=s),
                max_iter=5,
                random_state=s,
            ).fit_transform(xm)
        ],
    }


def ppgen_methods(name: str, quick: bool):
    """name -> (model factory, method, fit options)."""
    out = {}
    for k in GMM_DIAG_K if not quick else (1, 3):
        out[f"ppgen GMM K={k} diag, EM"] = (lambda k=k: ppgen.GaussianMixture(k, "diag"), "em", {})
    grid = (QUICK_PPCA_GRID if quick else PPCA_GRID)[name]
    for q in grid:
        out[f"ppgen PPCA q={q}, MAP"] = (lambda q=q: ppgen.PPCA(q), "map", {})
    # proper MI at one q per data set (SVI with a full-rank guide costs 5-20 s a fit)
    q = SVI_Q[name]
    out[f"ppgen PPCA q={q}, SVI (mvn)"] = (lambda q=q: ppgen.PPCA(q), "svi", {"guide": "mvn"})
    return out


def run_ppgen(factory, method, options, xm, seed):
    fit = ppgen.fit(factory(), xm, method=method, seed=seed, progress=False, **options)
    return [np.asarray(t, dtype=float) for t in fit.impute(xm, n_imputations=M, seed=seed)]


def scores(x, mask, tables, proper):
    a = np.stack(tables)
    rmse = float(np.sqrt(((a.mean(0) - x)[mask] ** 2).mean()))
    cov = None
    if proper and len(tables) >= M:
        lo, hi = np.quantile(a, [0.05, 0.95], axis=0)
        cov = float(((x >= lo) & (x <= hi))[mask].mean())
    return rmse, cov


def numeric_benchmark(name, mechanisms, seeds, quick, log):
    x = standardized(name)
    runs = []
    methods = {k: ("peer", fn) for k, fn in peers(quick).items()}
    methods.update({k: ("ppgen", v) for k, v in ppgen_methods(name, quick).items()})
    for mech in mechanisms:
        for seed in seeds if mech == "MCAR20" else seeds[:1]:  # the time limit: 1 seed
            mask = make_mask(x, mech, seed)
            xm = x.copy()
            xm[mask] = np.nan
            for label, (kind, spec) in methods.items():
                row = {"dataset": name, "mechanism": mech, "seed": seed, "method": label}
                t0 = time.perf_counter()
                try:
                    if kind == "peer":
                        tables = spec(xm, seed)
                        proper = False
                    else:
                        factory, method, options = spec
                        tables = with_budget(
                            lambda: run_ppgen(factory, method, options, xm, seed), BUDGET
                        )
                        proper = method == "svi"
                except FitTimeout:
                    row.update(time_s=BUDGET, note=f"abandoned after {BUDGET:g} s")
                    runs.append(row)
                    log(f"{name} {mech} {seed} {label}: timed out")
                    continue
                except Exception as e:  # noqa: BLE001 (reported in the table)
                    row.update(note=f"failed: {type(e).__name__}: {str(e)[:80]}")
                    runs.append(row)
                    log(f"{name} {mech} {seed} {label}: {row['note']}")
                    continue
                wall = time.perf_counter() - t0
                rmse, cov = scores(x, mask, tables, proper)
                row.update(rmse=rmse, coverage_90=cov, time_s=wall)
                runs.append(row)
                log(f"{name} {mech} {seed} {label}: rmse {rmse:.3f} cov {cov} {wall:.2f}s")
    return runs


# -- penguins (mixed) -----------------------------------------------------------------------------
def penguins_benchmark(seeds, log):
    df = ppgen.datasets.load("penguins").drop(columns="year")
    df = df.dropna().reset_index(drop=True)  # complete cases: the truth is known everywhere
    cats = [c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)]
    nums = [c for c in df.columns if c not in cats]
    mu, sd = df[nums].mean(), df[nums].std(ddof=0)
    runs = []
    for seed in seeds:
        rng = np.random.default_rng(20_000 + seed)
        mask = rng.random(df.shape) < 0.2
        mask[mask.all(1), 0] = False
        dm = df.copy()
        for j, c in enumerate(df.columns):
            dm.loc[mask[:, j], c] = np.nan
        mnum = mask[:, [df.columns.get_loc(c) for c in nums]]
        mcat = {c: mask[:, df.columns.get_loc(c)] for c in cats}

        def evaluate(label, num_imputed, cat_imputed, wall, cov=None):
            z_true = ((df[nums] - mu) / sd).to_numpy()
            z_imp = (num_imputed - mu.to_numpy()) / sd.to_numpy()
            rmse = float(np.sqrt(((z_imp - z_true)[mnum] ** 2).mean()))
            hits = sum(
                int((cat_imputed[c][mcat[c]] == df[c].to_numpy()[mcat[c]]).sum()) for c in cats
            )
            total = sum(int(mcat[c].sum()) for c in cats)
            runs.append(
                {
                    "dataset": "penguins",
                    "mechanism": "MCAR20",
                    "seed": seed,
                    "method": label,
                    "rmse": rmse,
                    "coverage_90": cov,
                    "cat_accuracy": hits / total,
                    "time_s": wall,
                }
            )
            log(f"penguins {seed} {label}: rmse {rmse:.3f} acc {hits / total:.3f} {wall:.2f}s")

        # peers: mean + most frequent; and one-hot + IterativeImputer / KNN, argmax per block
        t0 = time.perf_counter()
        num = SimpleImputer(strategy="mean").fit_transform(dm[nums])
        cat = {c: np.full(len(df), dm[c].mode().iloc[0], dtype=object) for c in cats}
        evaluate("column mean / most frequent", num, cat, time.perf_counter() - t0)
        # one-hot without the first level: with all levels the indicators of a block sum to 1,
        # so an iterative imputer predicts each from its siblings (imputed at their means) and
        # returns the means, i.e. the most frequent category
        onehot = pd.get_dummies(dm[cats], dtype=float, drop_first=True)
        for c in cats:  # a missing category: NaN in every indicator of its block
            onehot.loc[dm[c].isna(), [k for k in onehot.columns if k.startswith(c + "_")]] = np.nan
        design = pd.concat([(dm[nums] - mu) / sd, onehot], axis=1)
        for label, imputer in (
            ("KNNImputer on one-hot, argmax", KNNImputer()),
            (
                "IterativeImputer(BayesianRidge) on one-hot, argmax",
                IterativeImputer(BayesianRidge(), max_iter=10, random_state=seed),
            ),
        ):
            t0 = time.perf_counter()
            out = pd.DataFrame(imputer.fit_transform(design), columns=design.columns)
            num = out[nums].to_numpy() * sd.to_numpy() + mu.to_numpy()
            cat = {}
            for c in cats:
                block = [k for k in out.columns if k.startswith(c + "_")]
                levels = np.array(list(df[c].cat.categories), dtype=object)
                scores = out[block].to_numpy()
                scores = np.column_stack([1.0 - scores.sum(1), scores])  # first level's score
                cat[c] = levels[scores.argmax(1)]
            evaluate(label, num, cat, time.perf_counter() - t0)
        for k, cov_type, method in ((3, "diag", "em"), (3, "full", "map"), (3, "full", "svi")):
            label = f"ppgen GMM K={k} {cov_type}, {method.upper()}"
            options = {"guide": "mvn"} if method == "svi" else {}
            t0 = time.perf_counter()
            try:
                fit = with_budget(
                    lambda k=k, c=cov_type, m=method, o=options: ppgen.fit(
                        ppgen.GaussianMixture(k, c), dm, method=m, seed=seed, progress=False, **o
                    ),
                    BUDGET,
                )
                tables = fit.impute(dm, n_imputations=M, seed=seed)
            except (FitTimeout, Exception) as e:  # noqa: BLE001
                runs.append(
                    {"dataset": "penguins", "seed": seed, "method": label, "note": repr(e)[:80]}
                )
                log(f"penguins {seed} {label}: {e!r}")
                continue
            wall = time.perf_counter() - t0
            a = np.stack([t[nums].to_numpy(dtype=float) for t in tables])
            cat = {
                c: pd.concat([t[c].astype(object) for t in tables], axis=1)
                .mode(axis=1)[0]
                .to_numpy()
                for c in cats
            }
            cov = None
            if method == "svi":
                lo, hi = np.quantile(a, [0.05, 0.95], axis=0)
                truth = df[nums].to_numpy()
                cov = float(((truth >= lo) & (truth <= hi))[mnum].mean())
            evaluate(label, a.mean(0), cat, wall, cov)
    return runs


# -- summary ------------------------------------------------------------------------------------
def summarize(runs):
    keys = []
    for r in runs:
        k = (r["dataset"], r.get("mechanism", ""), r["method"])
        if k not in keys:
            keys.append(k)
    rows = []
    for k in keys:
        rs = [r for r in runs if (r["dataset"], r.get("mechanism", ""), r["method"]) == k]
        ok = [r for r in rs if r.get("rmse") is not None]

        def med(key, ok=ok):
            vals = [r[key] for r in ok if r.get(key) is not None]
            return statistics.median(vals) if vals else None

        rows.append(
            {
                "dataset": k[0],
                "mechanism": k[1],
                "method": k[2],
                "seeds": f"{len(ok)}/{len(rs)}",
                "rmse": med("rmse"),
                "coverage_90": med("coverage_90"),
                "cat_accuracy": med("cat_accuracy"),
                "time_s": med("time_s"),
                "note": "; ".join(sorted({r["note"] for r in rs if r.get("note")})),
            }
        )
    return rows


def goal(rows, datasets):
    lines = []
    for name in datasets:
        sel = [r for r in rows if r["dataset"] == name and r["mechanism"] == "MCAR20"]
        pp = [r for r in sel if r["method"].startswith("ppgen") and r["rmse"] is not None]
        peer = [r for r in sel if not r["method"].startswith("ppgen") and r["rmse"] is not None]
        if not pp or not peer:
            lines.append(f"- {name}: not measured")
            continue
        best_pp, best_peer = min(pp, key=lambda r: r["rmse"]), min(peer, key=lambda r: r["rmse"])
        ratio = best_pp["rmse"] / best_peer["rmse"]
        mice = next(r for r in peer if r["method"].startswith("MICE"))
        svi = [r for r in pp if r["coverage_90"] is not None]
        best_svi = min(svi, key=lambda r: r["rmse"]) if svi else None
        lines.append(
            f"- **{name}, MCAR 20%: RMSE ratio {ratio:.2f}** (best ppgen `{best_pp['method']}` "
            f"{best_pp['rmse']:.3f} vs best peer `{best_peer['method']}` {best_peer['rmse']:.3f}): "
            f"{'met' if ratio <= 0.9 else 'missed'} (goal <= 0.90)."
        )
        if best_svi:
            c = best_svi["coverage_90"]
            lines.append(
                f"  - coverage of 90% intervals, `{best_svi['method']}` (the proper-MI fit with "
                f"the lowest RMSE): {c:.1%}: {'met' if 0.88 <= c <= 0.92 else 'missed'} "
                "(goal 88-92%)."
            )
        fastest = min(pp, key=lambda r: r["time_s"])
        lines.append(
            f"  - time: best-RMSE ppgen {best_pp['time_s']:.2f} s, proper-MI ppgen "
            f"{best_svi['time_s'] if best_svi else float('nan'):.2f} s, fastest ppgen "
            f"{fastest['time_s']:.2f} s vs MICE x {MICE_M} {mice['time_s']:.2f} s: best-RMSE "
            f"model {'faster' if best_pp['time_s'] < mice['time_s'] else 'slower'} than MICE."
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, MCAR 20% only, small grids")
    args = parser.parse_args(argv)
    seeds = SEEDS[:1] if args.quick else SEEDS
    mechanisms = ("MCAR20",) if args.quick else ("MCAR20", "MCAR50", "MAR")
    name = "imputation" + ("_quick" if args.quick else "")
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    runs = []
    for ds in ("breast_cancer", "wine"):
        runs += numeric_benchmark(ds, mechanisms, seeds, args.quick, log)
    runs += penguins_benchmark(seeds, log)
    rows = summarize(runs)
    verdict = goal(rows, ("breast_cancer", "wine"))
    notes = f"""
## Goal

{verdict}

## Notes

Medians over seeds {list(seeds)} for MCAR 20% and penguins; MCAR 50% and MAR ran at seed
{seeds[0]} only (the whole run was held to ~8 minutes). The PPCA grid was fitted by MAP; proper
MI (SVI, full-rank Gaussian guide) was run at one q per data set ({SVI_Q}).
RMSE: of the mean of the m = {M} imputations (ppgen) or
of the single imputation (peers; MICE: the mean of its {MICE_M} imputations), over the
masked entries, standardized scale. coverage_90: share of masked true values inside the
5%-95% quantiles of the m = {M} imputed values, reported for proper multiple imputation
only (ppgen SVI fits, one posterior draw per imputation); MAP/EM fits plug one estimate into
every imputation and are scored for RMSE only. time_s: wall time of fit + m imputations (peers:
fit_transform; MICE: all {MICE_M} runs), one thread. A ppgen fit is abandoned after {BUDGET:g} s.
ppgen's GaussianMixture with full covariance is not run on breast_cancer / wine: its EM refuses
partially observed rows and its MAP fit took 242 s for K = 1 on breast_cancer MCAR 20% (RMSE
0.387, one seed, measured while writing this benchmark). hyperimpute is not run: it is not
installed here (it needs pandas < 3 and its own virtualenv). penguins: complete cases (333 rows,
year dropped), MCAR 20% over all 7 columns; RMSE over the 4 continuous columns (standardized),
accuracy over the 3 categorical ones; scikit-learn cannot impute categories, so its imputers
run on one-hot indicators without the first level (a missing category is NaN in its whole block;
the first level scores 1 minus the others) and take the argmax.
{"**--quick run**: one seed, MCAR 20% only, small grids; a smoke test." if args.quick else ""}
Total run time {time.perf_counter() - t_start:.0f} s.
"""
    write_table(
        name,
        rows,
        notes,
        title="Imputation: ppgen vs scikit-learn imputers",
        extra="## Per-seed runs\n\n" + markdown_table(runs),
    )
    print(markdown_table(rows))
    print(verdict)
    print(f"wrote {RESULTS / (name + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
