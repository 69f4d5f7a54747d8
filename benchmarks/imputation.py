"""Imputation accuracy of ppgen's generative models against scikit-learn's imputers.

    python benchmarks/imputation.py            # breast_cancer, wine, penguins; 3 seeds
    python benchmarks/imputation.py --quick    # 1 seed, smaller grids: a smoke run
    python benchmarks/imputation.py --study    # bias/coverage study (imputation_study.py)

Data: scikit-learn's breast_cancer (569 x 30) and wine (178 x 13), standardized, and
palmerpenguins (mixed: 3 categorical, 4 continuous columns). Mechanisms: MCAR 20%, MCAR 50%,
and MAR (the first column stays observed; every other entry is missing with probability
0.4 * logistic(2 z), z that row's standardized first column: about 20% overall, more where z is
high). Metrics on the masked entries: RMSE on the standardized scale of the mean of the m = 20
imputations (a point imputation for the peers), coverage of 90% prediction intervals built from
the m = 20 imputed values (see `scores`), categorical accuracy (modal imputed category), wall
time of fit + imputation. Two oracles that see the masked truth bound what a Gaussian imputer
can do (not eligible for the goal). Everything runs on one thread. Writes
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
import torch  # noqa: E402
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
BIC_Q = {"breast_cancer": (5, 10, 15, 20, 25), "wine": (2, 3, 4, 5, 6, 7, 8)}
PENGUINS_K = (2, 3, 4, 5, 6, 7, 8)
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
    """name -> function(x_missing, seed) returning (completed arrays, proper MI?, note)."""
    ks = (1, 2, 3)
    qs = (QUICK_PPCA_GRID if quick else PPCA_GRID)[name]
    out = {}
    for k in GMM_DIAG_K if not quick else (1, 3):
        out[f"ppgen GMM K={k} diag, EM"] = point(lambda k=k: ppgen.GaussianMixture(k, "diag"))
    for k in ks:
        out[f"ppgen GMM K={k} full, EM"] = point(lambda k=k: ppgen.GaussianMixture(k, "full"))
    out["ppgen GMM full, EM, K by BIC"] = by_bic(
        {f"K={k}": lambda k=k: ppgen.GaussianMixture(k, "full") for k in ks}
    )
    for q in qs:
        out[f"ppgen PPCA q={q}, EM"] = point(lambda q=q: ppgen.PPCA(q))
    out["ppgen PPCA, EM, q by BIC"] = by_bic(
        {f"q={q}": lambda q=q: ppgen.PPCA(q) for q in (qs if quick else BIC_Q[name])}
    )
    out["ppgen GMM K=1 full, EM + bootstrap (proper)"] = imputer(
        model="gmm", n_components=1, covariance_type="full", method="em", proper="bootstrap"
    )
    # proper MI by SVI at one q per data set (a full-rank guide costs 5-30 s a fit)
    q = SVI_Q[name]
    out[f"ppgen PPCA q={q}, SVI (mvn) (proper)"] = point(
        lambda q=q: ppgen.PPCA(q), method="svi", guide="mvn"
    )
    return out


def point(factory, method="em", **options):
    """Fit once, impute m times from the fit (proper MI only for posterior draws: SVI)."""

    def run(xm, seed):
        fit = ppgen.fit(factory(), xm, method=method, seed=seed, progress=False, **options)
        tables = fit.impute(xm, n_imputations=M, seed=seed)
        return [np.asarray(t, dtype=float) for t in tables], method == "svi", ""

    return run


def by_bic(candidates):
    """Fit every candidate by EM, keep the lowest BIC on the observed entries (what a user can
    compute without the masked truth); the time covers all fits."""

    def run(xm, seed):
        fits = {
            label: ppgen.fit(factory(), xm, method="em", seed=seed, progress=False)
            for label, factory in candidates.items()
        }
        label = min(fits, key=lambda k: fits[k].bic(xm))
        tables = fits[label].impute(xm, n_imputations=M, seed=seed)
        return [np.asarray(t, dtype=float) for t in tables], False, f"BIC chose {label}"

    return run


def imputer(**options):
    def run(xm, seed):
        tables = ppgen.Imputer(n_imputations=M, seed=seed, **options).fit_transform(xm)
        return [np.asarray(t, dtype=float) for t in tables], True, ""

    return run


def scores(x, mask, tables):
    """RMSE of the mean of the imputations; with m >= 20 imputations, the coverage of two 90%
    prediction intervals for the masked truth built from the m draws: mean -/+ t_{m-1, 0.95}
    sqrt(1 + 1/m) sd (exactly 90% when the truth and the draws are exchangeable Gaussian), and
    [min, max] of the draws (exactly (m - 1) / (m + 1) = 90.5% for any exchangeable continuous
    draws, m = 20). The 5%-95% sample quantiles of m = 20 draws are *not* a 90% interval: they
    cover an exchangeable draw 81.8% of the time (order statistics 1.95 and 19.05 of 20)."""
    from scipy.stats import t as student

    a = np.stack(tables)
    rmse = float(np.sqrt(((a.mean(0) - x)[mask] ** 2).mean()))
    cov = cov_minmax = None
    if len(tables) >= M:
        m = len(tables)
        half = student.ppf(0.95, m - 1) * np.sqrt(1 + 1 / m) * a.std(0, ddof=1)
        cov = float((np.abs(x - a.mean(0)) <= half)[mask].mean())
        cov_minmax = float(((x >= a.min(0)) & (x <= a.max(0)))[mask].mean())
    return rmse, cov, cov_minmax


def oracles(x):
    """Conditional means under a Gaussian that knows more than any imputer: fitted to the
    complete table (the masked truth included, in-sample: the large-n limit if the data were
    Gaussian), and cross-fitted (fitted to the complete rows of one half, imputing the other:
    a Gaussian estimated from n/2 complete rows)."""
    from ppgen.models.likelihoods import condition_on_precision

    def conditional_mean(rows, miss, fitted_on):
        mu, cov = fitted_on.mean(0), np.cov(fitted_on, rowvar=False)
        cond = condition_on_precision(*map(torch.as_tensor, (rows, miss, mu, np.linalg.inv(cov))))
        return cond.mean.numpy()

    def in_sample(xm, seed):
        return [conditional_mean(np.nan_to_num(xm), np.isnan(xm), x)]

    def cross_fitted(xm, seed):
        half = np.random.default_rng(seed).permutation(len(x))
        folds = (half[: len(x) // 2], half[len(x) // 2 :])
        out = np.zeros_like(x)
        for a, b in (folds, folds[::-1]):
            out[b] = conditional_mean(np.nan_to_num(xm[b]), np.isnan(xm[b]), x[a])
        return [out]

    return {
        "oracle: Gaussian of the complete table (in-sample)": in_sample,
        "oracle: Gaussian of n/2 complete rows (cross-fitted)": cross_fitted,
    }


def numeric_benchmark(name, mechanisms, seeds, quick, log):
    x = standardized(name)
    runs = []
    methods = {k: ("peer", fn) for k, fn in peers(quick).items()}
    methods.update({k: ("peer", fn) for k, fn in oracles(x).items()})
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
                        tables, proper, note = spec(xm, seed), False, ""
                    else:
                        tables, proper, note = with_budget(lambda: spec(xm, seed), BUDGET)
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
                rmse, cov, cov_minmax = scores(x, mask, tables)
                row.update(
                    rmse=rmse, coverage_90=cov, coverage_minmax=cov_minmax, proper=proper,
                    time_s=wall, note=note,
                )  # fmt: skip
                runs.append(row)
                log(f"{name} {mech} {seed} {label}: rmse {rmse:.3f} cov {cov} {wall:.2f}s {note}")
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

        def evaluate(label, num_imputed, cat_imputed, wall, cov=None, note="", proper=False):
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
                    "proper": proper,
                    "cat_accuracy": hits / total,
                    "time_s": wall,
                    "note": note,
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
                level_scores = out[block].to_numpy()
                # the first level scores 1 minus the others
                level_scores = np.column_stack([1.0 - level_scores.sum(1), level_scores])
                cat[c] = levels[level_scores.argmax(1)]
            evaluate(label, num, cat, time.perf_counter() - t0)

        def gmm(k, cov_type="full", method="em", **options):
            def run(dm=dm, seed=seed):
                model = ppgen.GaussianMixture(k, cov_type)
                fit = ppgen.fit(model, dm, method=method, seed=seed, progress=False, **options)
                return fit.impute(dm, n_imputations=M, seed=seed), ""

            return run

        def gmm_by_bic(dm=dm, seed=seed):
            fits = {
                k: ppgen.fit(ppgen.GaussianMixture(k), dm, method="em", seed=seed, progress=False)
                for k in PENGUINS_K
            }
            k = min(fits, key=lambda k: fits[k].bic(dm))
            return fits[k].impute(dm, n_imputations=M, seed=seed), f"BIC chose K={k}"

        specs = {
            "ppgen GMM K=3 diag, EM": gmm(3, "diag"),
            "ppgen GMM K=3 full, EM": gmm(3),
            "ppgen GMM K=6 full, EM": gmm(6),
            f"ppgen GMM full, EM, K by BIC ({PENGUINS_K[0]}-{PENGUINS_K[-1]})": gmm_by_bic,
            "ppgen GMM K=3 full, SVI (proper)": gmm(3, method="svi", guide="mvn"),
        }
        for label, spec in specs.items():
            t0 = time.perf_counter()
            try:
                tables, note = with_budget(spec, BUDGET)
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
            _, cov, _ = scores(df[nums].to_numpy(), mnum, list(a))
            evaluate(label, a.mean(0), cat, wall, cov, note, proper="SVI" in label)
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
                "proper": any(r.get("proper") for r in ok),
                "coverage_90": med("coverage_90"),
                "coverage_minmax": med("coverage_minmax"),
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
        peer = [
            r
            for r in sel
            if not r["method"].startswith(("ppgen", "oracle")) and r["rmse"] is not None
        ]
        if not pp or not peer:
            lines.append(f"- {name}: not measured")
            continue
        best_peer = min(peer, key=lambda r: r["rmse"])
        mice = next(r for r in peer if r["method"].startswith("MICE"))
        # A model picked by BIC is what a user gets; the best of the grid peeks at the truth.
        chosen = min((r for r in pp if "by BIC" in r["method"]), key=lambda r: r["rmse"])
        best_pp = min(pp, key=lambda r: r["rmse"])
        for tag, r in (("model chosen by BIC", chosen), ("best of every ppgen row", best_pp)):
            ratio = r["rmse"] / best_peer["rmse"]
            lines.append(
                f"- **{name}, MCAR 20%, {tag}: RMSE ratio {ratio:.2f}** (`{r['method']}` "
                f"{r['rmse']:.3f} vs best peer `{best_peer['method']}` {best_peer['rmse']:.3f}): "
                f"{'met' if ratio <= 0.9 else 'missed'} (goal <= 0.90); {r['time_s']:.2f} s vs "
                f"MICE x {MICE_M} {mice['time_s']:.2f} s."
            )
        oracle = {
            r["method"].split("(")[-1].rstrip(")"): r
            for r in sel
            if r["method"].startswith("oracle")
        }
        if oracle:
            lines.append(
                "  - oracles (see the masked truth; not eligible): Gaussian of the complete "
                f"table {oracle['in-sample']['rmse']:.3f} "
                f"({oracle['in-sample']['rmse'] / best_peer['rmse']:.2f} x the best peer), "
                f"cross-fitted on n/2 complete rows {oracle['cross-fitted']['rmse']:.3f} "
                f"({oracle['cross-fitted']['rmse'] / best_peer['rmse']:.2f} x)."
            )
        for r in sorted(
            (r for r in pp if r["coverage_90"] is not None and (r["proper"] or r is chosen)),
            key=lambda r: r["rmse"],
        ):
            c = r["coverage_90"]
            lines.append(
                f"  - 90% interval coverage, `{r['method']}` "
                f"({'proper' if r['proper'] else 'improper'} MI): {c:.1%} "
                f"(min-max of {M}: {r['coverage_minmax']:.1%}, nominal 90.5%): "
                f"{'met' if 0.88 <= c <= 0.92 else 'missed'} (goal 88-92%); {r['time_s']:.2f} s."
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, MCAR 20% only, small grids")
    parser.add_argument(
        "--study", action="store_true", help="the simulation study (imputation_study.py) instead"
    )
    args, rest = parser.parse_known_args(argv)
    if args.study:
        import imputation_study

        return imputation_study.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
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
{seeds[0]} only. ppgen models are fitted by EM (closed-form E- and M-steps; missing entries
exact, including partially observed rows under a full covariance), except the SVI rows.
"by BIC" rows fit a grid (PPCA q in {BIC_Q}; GMM full K in 1-3; penguins K in
{PENGUINS_K[0]}-{PENGUINS_K[-1]}) and keep the lowest BIC on the observed entries -- the choice
a user can make without the masked truth; their time covers every fit of the grid. The other
ppgen rows are the grid itself (picking the best of it peeks at the truth).

RMSE: of the mean of the m = {M} imputations (ppgen) or of the single imputation (peers; MICE:
the mean of its {MICE_M} imputations), over the masked entries, standardized scale.
coverage_90: share of the masked true values inside mean -/+ t(m-1, 0.95) sqrt(1 + 1/m) sd of
the m = {M} imputed values, a 90% prediction interval when draws and truth are exchangeable;
coverage_minmax: inside [min, max] of the m = {M} draws, whose nominal level is
(m - 1)/(m + 1) = 90.5% for any continuous distribution. The earlier version of this benchmark
used the 5%-95% sample quantiles of the 20 draws: their expected coverage is 81.8% even for
perfectly calibrated draws (order statistics 1.95 and 19.05 of 20, i.e. 17.1/21), which
explains the 83-85% it reported. `proper` marks proper multiple imputation (parameter
uncertainty in the draws: SVI posterior draws, or `Imputer(proper="bootstrap")` refits on
bootstrap resamples); the other ppgen rows plug one EM estimate into every draw. time_s: wall
time of fit + m imputations (peers: fit_transform; MICE: all {MICE_M} runs), one thread, on a
machine shared with other jobs (ratios within one run are what to compare). A ppgen fit is
abandoned after {BUDGET:g} s. hyperimpute is not run: it is not installed here (it needs
pandas < 3 and its own virtualenv).

Oracles (not eligible): the conditional mean under the Gaussian fitted to the complete table
(masked truth included, in-sample: what a Gaussian imputer gets as n grows, if the data were
Gaussian) and under the Gaussian fitted to n/2 complete rows, cross-fitted. A Gaussian fitted
by EM to the 80%-observed table matches the cross-fitted one: the gap to the in-sample oracle is
estimation error of a 30 x 30 covariance from 569 rows.

penguins: complete cases (333 rows, year dropped), MCAR 20% over all 7 columns; RMSE over the 4
continuous columns (standardized), accuracy over the 3 categorical ones (modal category of
the m draws); scikit-learn cannot impute categories, so its imputers run on one-hot
indicators without the first level (a missing category is NaN in its whole block; the first
level scores 1 minus the others) and take the argmax. Within a mixture class the categorical
columns are independent of the measurements, so sex (which the measurements predict within
a species) needs about species x sex = 6 classes.
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
