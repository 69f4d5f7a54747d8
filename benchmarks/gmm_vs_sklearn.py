"""ppgen's Gaussian mixture EM against scikit-learn's GaussianMixture.

    python benchmarks/gmm_vs_sklearn.py              # 50,000 x 8 synthetic + wine
    python benchmarks/gmm_vs_sklearn.py --quick      # 5,000 synthetic rows, smoke test
    python benchmarks/gmm_vs_sklearn.py --profile    # also cProfile one ppgen EM fit

Measures, for K = 5 full-covariance components on 50,000 x 8 synthetic data (and K = 3 on the
wine data), how long ppgen's EM takes to reach scikit-learn's final mean log-likelihood minus
0.01 nats/row, as a ratio to scikit-learn's own default fit time (k-means initialization).
Both libraries run on one thread. Writes benchmarks/results/gmm_vs_sklearn{,_quick}.md
(summary, notes, per-seed runs, machine) and .csv (summary) and _runs.csv (per seed).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import inspect
import io
import math
import os
import pstats
import statistics
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    FitTimeout,
    machine_info,
    markdown_table,
    measure,
    pin_threads,
    time_default_fit,
    with_budget,
    write_csv,
    write_table,
)

THREADS = pin_threads(1)  # before numpy/torch/sklearn are imported: same threads for both

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.special import logsumexp  # noqa: E402
from scipy.stats import multivariate_normal  # noqa: E402
from sklearn.mixture import GaussianMixture as SkGaussianMixture  # noqa: E402

import ppgen  # noqa: E402

SEEDS = (0, 1, 2)
TOLS = (1e-2, 1e-3, 1e-4, 1e-5)  # ppgen EM tol sweep (nats/row gain per iteration)
QUICK_TOLS = (1e-2, 1e-3)
ORACLE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
GAP = 0.01  # nats/row below scikit-learn's final score that still counts as reaching it
DATA_SEED = 0
LBFGS_ITERS_PER_STEP = 20  # ppgen.infer.optim._run_lbfgs: max_iter=20 per outer step

warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
# Tuned rows cap max_steps on purpose; the default-fit rows record the warning themselves.
warnings.filterwarnings("ignore", category=ppgen.ConvergenceWarning)


# -- data ---------------------------------------------------------------------------------------
def synthetic(n: int, d: int = 8, k: int = 5, seed: int = DATA_SEED):
    """n x d rows from a K-component full-covariance mixture, and facts about it.

    Means ~ N(0, 2^2 I), covariances A A^T / d + 0.3 I with A standard normal, weights
    (.30, .25, .20, .15, .10). Returns the data and the true parameters' mean log-likelihood
    and Bayes classification accuracy (how much the components overlap).
    """
    rng = np.random.default_rng(seed)
    weights = np.array([0.30, 0.25, 0.20, 0.15, 0.10])[:k]
    weights = weights / weights.sum()
    means = rng.normal(0.0, 2.0, size=(k, d))
    covs = []
    for _ in range(k):
        a = rng.normal(size=(d, d))
        covs.append(a @ a.T / d + 0.3 * np.eye(d))
    z = rng.choice(k, size=n, p=weights)
    x = np.empty((n, d))
    for j in range(k):
        rows = z == j
        x[rows] = rng.multivariate_normal(means[j], covs[j], size=int(rows.sum()))
    joint = np.stack(
        [np.log(weights[j]) + multivariate_normal(means[j], covs[j]).logpdf(x) for j in range(k)],
        axis=1,
    )
    facts = {
        "true_score": float(logsumexp(joint, axis=1).mean()),
        "bayes_accuracy": float((joint.argmax(1) == z).mean()),
    }
    return x, facts


def breast_cancer_check() -> str:
    """Why the real set is wine: scikit-learn's K=5 full fit of breast_cancer is degenerate."""
    x = ppgen.datasets.load("breast_cancer", label=False).to_numpy(dtype=float)
    smallest, eig = [], []
    for seed in SEEDS:
        g = SkGaussianMixture(5, covariance_type="full", random_state=seed).fit(x)
        smallest.append(int(round(g.weights_.min() * len(x))))
        eig.append(float(np.linalg.eigvalsh(g.covariances_).min()))
    return (
        f"breast_cancer ({x.shape[0]} x {x.shape[1]}, K = 5, full) was rejected: at seeds "
        f"{list(SEEDS)} scikit-learn's smallest component holds {smallest} rows, fewer than "
        f"the {x.shape[1]} dimensions, so its covariance is singular and held up only by "
        f"reg_covar (smallest covariance eigenvalue {min(eig):.2g}, reg_covar 1e-6): its score "
        "measures that regularizer, not the optimizer."
    )


def wine_standardized_check(x: np.ndarray) -> str:
    """scikit-learn on standardized wine: how much of the score gap is the input scaling."""
    smallest = min(
        int(
            round(
                SkGaussianMixture(3, covariance_type="full", random_state=s).fit(x).weights_.min()
                * len(x)
            )
        )
        for s in SEEDS
    )
    sd = x.std(0)
    z = (x - x.mean(0)) / sd
    scores = [
        SkGaussianMixture(3, covariance_type="full", random_state=seed).fit(z).score(z)
        - float(np.log(sd).sum())
        for seed in SEEDS
    ]
    return (
        f"In wine (K = 3, full) every scikit-learn component holds at least {smallest} rows "
        f"(d = {x.shape[1]}). "
        "On wine, ppgen scores well above scikit-learn because ppgen standardizes the columns "
        "and scikit-learn's k-means runs on the raw ones (proline, in the hundreds, dominates): "
        "scikit-learn given standardized columns scores "
        + ", ".join(f"{v:.3f}" for v in scores)
        + " at the same seeds (raw scale), close to ppgen."
    )


# -- helpers ------------------------------------------------------------------------------------


def em_default_tol() -> float | None:
    """ppgen's default EM tol, read from its signature (for labels only)."""
    try:
        em = importlib.import_module("ppgen.infer.fit")._fit_em
        return float(inspect.signature(em).parameters["tol"].default)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# -- one data set -------------------------------------------------------------------------------
def run_dataset(name, x_sk, x_pp, k, *, tols, repeats, map_seeds, map_steps, budgets, runs, log):
    """Run every method at every seed; append per-seed rows to ``runs``.

    Returns (summary rows, headline row or None, scikit-learn sanity ok).
    """
    n, d = x_sk.shape
    label = f"{name} ({n} x {d}, K={k})"
    em_budget, map_budget = budgets

    def sk_fit(seed, n_init=1):
        return SkGaussianMixture(k, covariance_type="full", random_state=seed, n_init=n_init).fit(
            x_sk
        )

    def pp_fit(seed, method="em", **opts):
        # one k-means++ start, as scikit-learn's default fit has one (the default model screens
        # 10: see the "Default fit" table)
        model = ppgen.GaussianMixture(k, "full", n_init=1)
        return ppgen.fit(model, x_pp, method=method, seed=seed, progress=False, **opts)

    def run_row(method, setting, seed, tm, score, target, reached, iterations, note=""):
        runs.append(
            {
                "dataset": label,
                "method": method,
                "setting": setting,
                "seed": seed,
                "time_s": None if tm is None else tm[0],
                "cpu_s": None if tm is None else tm[1],
                "score": score,
                "target": target,
                "reached": reached,
                "iterations": iterations,
                "note": note,
            }
        )

    # Warm-up: first calls pay for lazy imports, allocator growth and Pyro's set-up.
    small = x_pp[: min(len(x_pp), 500)]
    SkGaussianMixture(k, covariance_type="full", random_state=0).fit(x_sk[:500])
    ppgen.fit(
        ppgen.GaussianMixture(k, "full"), small, method="em", seed=0, max_steps=3, progress=False
    )
    if map_seeds:
        ppgen.fit(
            ppgen.GaussianMixture(k, "full"),
            small,
            method="map",
            seed=0,
            max_steps=1,
            progress=False,
        )

    # scikit-learn default: k-means initialization, tol=1e-3, n_init=1. Sanity-checked.
    sk = {}
    for seed in SEEDS:
        m = measure(lambda seed=seed: sk_fit(seed), repeats)
        t, g = (m["wall"], m["cpu"]), m["result"]
        score = float(g.score(x_sk))
        ok = bool(g.converged_) and math.isfinite(score) and math.isfinite(g.lower_bound_)
        sk[seed] = {
            "time": t,
            "score": score,
            "target": score - GAP,
            "ok": ok,
            "n_iter": int(g.n_iter_),
        }
        run_row(
            "sklearn default",
            "kmeans init, tol=1e-3",
            seed,
            t,
            score,
            score - GAP,
            "",
            int(g.n_iter_),
            "" if ok else "NOT converged or non-finite",
        )
        log(
            f"  sklearn default seed {seed}: {t[0]:.3f} s, score {score:.4f}, n_iter {g.n_iter_}, "
            f"converged {g.converged_}"
        )
    sk_time = statistics.median(v["time"][0] for v in sk.values())
    sk_cpu = statistics.median(v["time"][1] for v in sk.values())
    sk_ok = all(v["ok"] for v in sk.values())
    summary = [
        {
            "dataset": label,
            "method": "sklearn default",
            "setting": "kmeans init, tol=1e-3, n_init=1",
            "seeds": len(SEEDS),
            "median_time_s": sk_time,
            "ratio_to_sklearn": 1.0,
            "median_cpu_s": sk_cpu,
            "cpu_ratio": 1.0,
            "median_score": statistics.median(v["score"] for v in sk.values()),
            "median_target": statistics.median(v["target"] for v in sk.values()),
            "reached": "",
            "median_iterations": statistics.median(v["n_iter"] for v in sk.values()),
            "note": "converged, finite at every seed"
            if sk_ok
            else "NOT converged/finite at a seed",
        }
    ]

    # scikit-learn best of 10 restarts: the reference score (one run).
    m = measure(lambda: sk_fit(SEEDS[0], n_init=10), 1)
    t, g = (m["wall"], m["cpu"]), m["result"]
    score = float(g.score(x_sk))
    run_row(
        "sklearn best of 10",
        "n_init=10",
        SEEDS[0],
        t,
        score,
        None,
        "",
        int(g.n_iter_),
        "" if g.converged_ else "not converged",
    )
    summary.append(
        {
            "dataset": label,
            "method": "sklearn best of 10",
            "setting": "n_init=10",
            "seeds": 1,
            "median_time_s": t[0],
            "ratio_to_sklearn": t[0] / sk_time,
            "median_cpu_s": t[1],
            "cpu_ratio": t[1] / sk_cpu,
            "median_score": score,
            "reached": "",
            "note": "reference score",
        }
    )
    log(f"  sklearn best of 10: {t[0]:.3f} s, score {score:.4f}")

    # ppgen EM with its defaults and a tol sweep; then MAP (L-BFGS) for reference.
    default_tol = em_default_tol()
    settings = [
        ("ppgen EM", f"defaults (tol={default_tol:g})" if default_tol else "defaults", {}, SEEDS)
    ]
    settings += [
        ("ppgen EM", f"tol={tol:g}", {"tol": tol}, SEEDS) for tol in tols if tol != default_tol
    ]
    if map_seeds:
        map_opts = {} if map_steps is None else {"max_steps": map_steps}
        map_label = "L-BFGS, " + (f"max_steps={map_steps}" if map_steps else "defaults")
        settings.append(("ppgen MAP", map_label, {"method": "map", **map_opts}, map_seeds))
    em_rows, map_rows = [], []
    for method, setting, opts, seeds in settings:
        is_map = method == "ppgen MAP"
        budget = map_budget if is_map else em_budget
        per_seed = []  # ((wall, cpu), score, reached, iterations, timed_out)
        for seed in seeds:
            target = sk[seed]["target"]
            try:
                m = measure(
                    lambda seed=seed, opts=opts, budget=budget: with_budget(
                        lambda: pp_fit(seed, **opts), budget
                    ),
                    1 if is_map else repeats,
                )
                t, f = (m["wall"], m["cpu"]), m["result"]
            except FitTimeout:
                per_seed.append(((float(budget), None), None, False, None, True))
                run_row(
                    method,
                    setting,
                    seed,
                    (float(budget), None),
                    None,
                    target,
                    False,
                    None,
                    f"timed out after {budget:g} s",
                )
                log(f"  {method} {setting} seed {seed}: timed out after {budget:g} s")
                continue
            score = float(f.score(x_pp))
            reached = math.isfinite(score) and score >= target
            its = int(f.info["n_steps"]) * (LBFGS_ITERS_PER_STEP if is_map else 1)
            per_seed.append((t, score, reached, its, False))
            run_row(
                method,
                setting,
                seed,
                t,
                score,
                target,
                reached,
                its,
                "iterations: up to 20 L-BFGS iterations per outer step" if is_map else "",
            )
            log(
                f"  {method} {setting} seed {seed}: {t[0]:.3f} s, score {score:.4f}, "
                f"{its} iterations, reached {reached}"
            )
        n_reached = sum(r[2] for r in per_seed)
        n_out = sum(r[4] for r in per_seed)
        note = []
        if n_reached < len(seeds):
            note.append("final score below target at some seed" if n_out < len(seeds) else "")
        if n_out:
            note.append(f"{n_out} seed(s) timed out at {budget:g} s (time is a lower bound)")
        if is_map and map_steps is not None:
            note.append(
                f"capped at max_steps={map_steps} (<= {LBFGS_ITERS_PER_STEP * map_steps} "
                "L-BFGS iterations) to bound run time"
            )
        med = statistics.median(r[0][0] for r in per_seed)
        med_cpu = None if n_out else _median(r[0][1] for r in per_seed)
        row = {
            "dataset": label,
            "method": method,
            "setting": setting,
            "seeds": len(seeds),
            "median_time_s": med,
            "ratio_to_sklearn": med / sk_time,
            "median_cpu_s": med_cpu,
            "cpu_ratio": None if med_cpu is None else med_cpu / sk_cpu,
            "median_score": _median(r[1] for r in per_seed),
            "median_target": statistics.median(sk[s]["target"] for s in seeds),
            "reached": f"{n_reached}/{len(seeds)}",
            "median_iterations": _median(r[3] for r in per_seed),
            "note": "; ".join(x for x in note if x),
        }
        (map_rows if is_map else em_rows).append(row)

    # Oracle stop: the fewest EM iterations (max_steps) that reach the target at each seed, i.e.
    # the time ppgen would take if it stopped the moment it crossed scikit-learn's score.
    hits = []
    for seed in SEEDS:
        target, spent, found = sk[seed]["target"], 0.0, None
        for steps in ORACLE_STEPS:
            try:
                m = measure(
                    lambda seed=seed, steps=steps: with_budget(
                        lambda: pp_fit(seed, max_steps=steps), em_budget
                    ),
                    repeats,
                )
                t, f = (m["wall"], m["cpu"]), m["result"]
            except FitTimeout:
                break
            spent += t[0] * repeats
            score = float(f.score(x_pp))
            if math.isfinite(score) and score >= target:
                found = (t, score, steps)
                break
            if spent > em_budget:
                break
        if found:
            hits.append(found)
            run_row("ppgen EM", "oracle stop", seed, found[0], found[1], target, True, found[2])
        else:
            run_row(
                "ppgen EM",
                "oracle stop",
                seed,
                None,
                None,
                target,
                False,
                None,
                f"not reached within max_steps <= {steps} / {em_budget:g} s",
            )
        log(
            f"  ppgen EM oracle stop seed {seed}: "
            + (f"{found[0][0]:.3f} s at max_steps={found[2]}" if found else "not reached")
        )
    oracle = []
    if hits:
        med = statistics.median(r[0][0] for r in hits)
        med_cpu = statistics.median(r[0][1] for r in hits)
        oracle.append(
            {
                "dataset": label,
                "method": "ppgen EM",
                "setting": "oracle stop (fewest max_steps)",
                "seeds": len(SEEDS),
                "median_time_s": med,
                "ratio_to_sklearn": med / sk_time,
                "median_cpu_s": med_cpu,
                "cpu_ratio": med_cpu / sk_cpu,
                "median_score": statistics.median(r[1] for r in hits),
                "median_target": summary[0]["median_target"],
                "reached": f"{len(hits)}/{len(SEEDS)}",
                "median_iterations": statistics.median(r[2] for r in hits),
                "note": "not a usable setting: max_steps picked knowing the target",
            }
        )

    good = [r for r in em_rows if r["reached"] == f"{len(SEEDS)}/{len(SEEDS)}"]
    headline = min(good, key=lambda r: r["median_time_s"]) if good else None
    return summary + em_rows + oracle + map_rows, headline, sk_ok


# -- the default fit against scikit-learn's best of 10 --------------------------------------------
REACH = 1e-4  # nats/row below scikit-learn's best of 10 that still counts as its optimum
SEPARATION = 100.0  # distance between the well-separated cluster centres (unit variances)


def well_separated(d: int, n_per: int = 300, seed: int = DATA_SEED) -> np.ndarray:
    """Three unit-variance spherical clusters in ``d`` dimensions, centres 100 apart.

    Centres 0, 100 e_1 and 100 e_2 (in one dimension: 0, 100, 200); ``n_per`` rows each.
    """
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, d))
    centres[1, 0] = SEPARATION
    if d > 1:
        centres[2, 1] = SEPARATION
    else:
        centres[2, 0] = 2 * SEPARATION
    return np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres])


def default_vs_best(label, x_sk, x_pp, k, *, repeats, budget, log):
    """``ppgen.fit(GaussianMixture(k, "full"), data)`` (no options but the seed) against
    scikit-learn's best of 10 restarts: the gap in nats/row and the time ratio."""
    # warm-up (lazy imports, first-call allocations), untimed
    SkGaussianMixture(k, covariance_type="full", random_state=0).fit(x_sk[:500])
    ppgen.fit(ppgen.GaussianMixture(k, "full"), x_pp[:500])
    best = measure(
        lambda: SkGaussianMixture(k, covariance_type="full", n_init=10, random_state=0).fit(x_sk),
        repeats,
    )
    g = best["result"]
    best_score = float(g.score(x_sk))
    sane = bool(g.converged_) and math.isfinite(best_score)
    log(f"  {label}: sklearn best of 10 {best['wall']:.3f} s, score {best_score:.5f}")
    rows = [
        {
            "dataset": label,
            "method": "sklearn best of 10",
            "setting": "n_init=10, random_state=0",
            "seed": "",
            "time_s": best["wall"],
            "cpu_s": best["cpu"],
            "score": f"{best_score:.5f}",
            "gap_per_row": None,
            "reached": "",
            "time_ratio": 1.0,
            "cpu_ratio": 1.0,
            "note": "converged, finite" if sane else "NOT converged or non-finite",
        }
    ]
    for seed in SEEDS:
        m = time_default_fit(
            ppgen.fit,
            lambda: ppgen.GaussianMixture(k, "full"),
            x_pp,
            seed,
            repeats,
            budget,
            ppgen.ConvergenceWarning,
        )
        if m is None:
            note = f"abandoned after {budget:g} s"
            rows.append({"dataset": label, "method": "ppgen default", "seed": seed, "note": note})
            continue
        f = m["result"]
        score = float(f.score(x_pp))
        gap = score - best_score
        warned = m["warned"]
        rows.append(
            {
                "dataset": label,
                "method": "ppgen default",
                "setting": "ppgen.fit(GaussianMixture(K, 'full'), X)"
                + ("" if seed == 0 else f", seed={seed}"),
                "seed": seed,
                "time_s": m["wall"],
                "cpu_s": m["cpu"],
                "score": f"{score:.5f}",
                "gap_per_row": gap,
                "reached": gap >= -REACH,
                "time_ratio": m["wall"] / best["wall"],
                "cpu_ratio": m["cpu"] / best["cpu"],
                "note": f"{f.info['n_steps']} EM iterations (best start)"
                + ("; ConvergenceWarning" if warned else ""),
            }
        )
        log(
            f"  {label}: ppgen default seed {seed}: {m['wall']:.3f} s, score {score:.5f}, "
            f"gap {gap:+.2e}/row"
        )
    return rows


def default_summary(rows):
    """One line per data set: reached at how many seeds, worst gap, median time ratio."""
    out = []
    for label in dict.fromkeys(r["dataset"] for r in rows):
        pp = [r for r in rows if r["dataset"] == label and r["method"] == "ppgen default"]
        done = [r for r in pp if r.get("gap_per_row") is not None]
        ratio = _median([r["time_ratio"] for r in done])
        out.append(
            {
                "dataset": label,
                "sklearn best of 10 (s)": next(
                    r["time_s"] for r in rows if r["dataset"] == label and r["seed"] == ""
                ),
                "ppgen default median (s)": _median([r["time_s"] for r in done]),
                "time_ratio": ratio,
                "cpu_ratio": _median([r["cpu_ratio"] for r in done]),
                "reached (gap >= -1e-4)": f"{sum(bool(r['reached']) for r in done)}/{len(pp)}",
                "worst gap (nats/row)": min((r["gap_per_row"] for r in done), default=None),
                "goal": "met"
                if done
                and len(done) == len(pp)
                and all(r["reached"] for r in done)
                and ratio <= 1.0
                else "missed",
            }
        )
    return out


def profile_em(x, tol, path: Path) -> str:
    """cProfile one ppgen EM fit of ``x`` (seed 0); write the top of it to ``path``."""
    prof = cProfile.Profile()
    prof.enable()
    f = ppgen.fit(ppgen.GaussianMixture(5, "full"), x, method="em", seed=0, tol=tol, progress=False)
    prof.disable()
    out = io.StringIO()
    out.write(
        f"ppgen EM, {x.shape[0]} x {x.shape[1]}, K=5 full, seed 0, tol={tol:g}: "
        f"{f.info['n_steps']} iterations\n\n"
    )
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(25)
    path.write_text(out.getvalue())
    return str(path)


# -- main -----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="5,000 synthetic rows, tol sweep 1e-2/1e-3, no synthetic MAP",
    )
    parser.add_argument("--no-map", action="store_true", help="skip ppgen's L-BFGS MAP rows")
    parser.add_argument(
        "--default-only",
        action="store_true",
        help="only the default fit against scikit-learn's best of 10 (skip the tuned rows)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile one synthetic ppgen EM fit (results/*_profile.txt)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds after which one ppgen EM fit is abandoned "
        "(default 30, 2 with --quick); MAP gets 3x",
    )
    args = parser.parse_args(argv)
    em_budget = args.budget or (2.0 if args.quick else 30.0)
    budgets = (em_budget, 3 * em_budget)
    n = 5_000 if args.quick else 50_000
    tols = QUICK_TOLS if args.quick else TOLS
    name = "gmm_vs_sklearn" + ("_quick" if args.quick else "")
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    def log(msg):
        print(msg, flush=True)

    torch.manual_seed(0)
    log(f"threads: {THREADS}")
    runs: list[dict] = []
    x_syn, truth = synthetic(n)
    log(
        f"synthetic {x_syn.shape}: true-parameter score {truth['true_score']:.4f}, "
        f"Bayes accuracy {truth['bayes_accuracy']:.3f}"
    )
    wine = ppgen.datasets.load("wine", label=False)
    syn_rows, syn_head, syn_ok, wine_rows, wine_head, wine_ok = [], None, True, [], None, True
    if not args.default_only:
        # MAP on 50,000 rows costs tens of seconds per outer L-BFGS step with ppgen at the time of
        # writing, so it runs for one seed, capped at one outer step.
        syn_rows, syn_head, syn_ok = run_dataset(
            "synthetic",
            x_syn,
            x_syn,
            5,
            tols=tols,
            repeats=1,
            map_seeds=() if args.no_map or args.quick else SEEDS[:1],
            map_steps=1,
            budgets=budgets,
            runs=runs,
            log=log,
        )
        log(f"wine {wine.shape}")
        wine_rows, wine_head, wine_ok = run_dataset(
            "wine",
            wine.to_numpy(dtype=float),
            wine,
            3,
            tols=tols,
            repeats=3,
            map_seeds=() if args.no_map else SEEDS[:1],
            map_steps=1 if args.quick else None,
            budgets=budgets,
            runs=runs,
            log=log,
        )

    # The default fit (no options) against scikit-learn's best of 10, on the same data plus
    # iris and well-separated clusters.
    iris = ppgen.datasets.load("iris", label=False)
    default_sets = [
        (f"synthetic ({n} x 8, K=5)", x_syn, x_syn, 5, 1),
        ("wine (178 x 13, K=3)", wine.to_numpy(dtype=float), wine, 3, 3),
        (f"iris ({len(iris)} x {iris.shape[1]}, K=3)", iris.to_numpy(dtype=float), iris, 3, 3),
    ]
    for d in (2, 5):
        x_sep = well_separated(d)
        default_sets.append((f"well-separated ({len(x_sep)} x {d}, K=3)", x_sep, x_sep, 3, 3))
    default_rows = []
    for label, x_sk, x_pp, k, reps in default_sets:
        log(label)
        default_rows += default_vs_best(
            label, x_sk, x_pp, k, repeats=reps, budget=4 * em_budget, log=log
        )
    default_table = default_summary(default_rows)
    why_wine = breast_cancer_check() + " " + wine_standardized_check(wine.to_numpy(dtype=float))
    profile_note = ""
    if args.profile:
        tol = float(syn_head["setting"].split("=")[-1].rstrip(")")) if syn_head else 1e-3
        path = profile_em(x_syn, tol, RESULTS / f"{name}_profile.txt")
        profile_note = f" A cProfile of one synthetic EM fit (tol={tol:g}): `{Path(path).name}`."
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    def head(h, ok, label):
        if h is None:
            return (
                f"**{label}: goal not reached**: no ppgen EM setting reached scikit-learn's "
                f"score - {GAP} at all {len(SEEDS)} seeds."
            )
        verdict = "meets" if h["ratio_to_sklearn"] <= 1.0 else "misses"
        warn = "" if ok else " (scikit-learn failed its sanity check at some seed: see runs)"
        cpu = h.get("cpu_ratio")
        cpu_text = "" if cpu is None else f"; CPU-time ratio {cpu:.2f}"
        return (
            f"**{label}: ratio {h['ratio_to_sklearn']:.2f}** (ppgen EM `{h['setting']}`, "
            f"median {h['median_time_s']:.3f} s, vs scikit-learn default "
            f"{h['median_time_s'] / h['ratio_to_sklearn']:.3f} s, wall clock{cpu_text}): "
            f"{verdict} the goal ratio <= 1.0{warn}."
        )

    headlines = [head(syn_head, syn_ok, "synthetic"), head(wine_head, wine_ok, "wine")]
    if args.default_only:
        headlines = ["(tuned rows not run: `--default-only`)", ""]
    met = [r for r in default_table if r["goal"] == "met"]
    default_head = (
        f"**Default fit: goal met on {len(met)}/{len(default_table)} data sets** (reaches "
        f"scikit-learn's best of 10 minus {REACH:g} nats/row at every seed in {list(SEEDS)}, in "
        "no more wall time than scikit-learn's `n_init=10`)."
    )
    headlines = [default_head + "\n\n" + headlines[0], headlines[1]]
    for h in headlines:
        log(h)
    quick = (
        " **--quick run**: 5,000 synthetic rows and a shorter tol sweep; a smoke test, "
        "not the benchmark."
        if args.quick
        else ""
    )
    map_cap = (
        " and capped at one outer step (`max_steps=1`, up to 20 L-BFGS iterations) on the "
        "synthetic set, where each step takes tens of seconds"
        if not args.quick
        else " and capped at one outer step (`max_steps=1`)"
    )
    notes = f"""
{headlines[0]}

{headlines[1]}{quick}

**Default fit against scikit-learn's best of 10** (table "Default fit" below).
`ppgen.fit(ppgen.GaussianMixture(K, "full"), X)` with no options (maximum likelihood by EM from
the best of 10 screened k-means++ starts, run to tol 1e-8 nats/row; seeds 1 and 2 add only
`seed=`) against `sklearn.mixture.GaussianMixture(K, covariance_type="full", n_init=10,
random_state=0)`, the peer's own best of 10 restarts. `gap_per_row` = ppgen's `fit.score(X)`
minus scikit-learn's `score(X)` (mean log-likelihood per row, both on the raw scale; positive:
ppgen higher); *reached* when the gap is at least -{REACH:g}. `time_ratio` = ppgen's wall time /
scikit-learn's `n_init=10` wall time (median of {{1 on synthetic, 3 elsewhere}} runs each). Data:
the two sets below, iris (150 x 4, K = 3), and three spherical unit-variance clusters
{SEPARATION:g} apart (centres 0, {SEPARATION:g} e1, {SEPARATION:g} e2; 300 rows each) in 2 and 5
dimensions. Goal (issue 11): reached at every seed with `time_ratio` <= 1.

**Tuned rows: what is measured.** For each data set and each seed in {list(SEEDS)},
scikit-learn's default fit (`GaussianMixture(K, covariance_type="full", random_state=seed)`:
k-means initialization, tol 1e-3, one init) gives a time and a final mean log-likelihood per
row (`score`), checked to have converged and be finite; that seed's *target* is its score minus
{GAP} nats/row. ppgen's
EM (`ppgen.fit(ppgen.GaussianMixture(K, "full", n_init=1), X, method="em", seed=seed)`: one
k-means++ start, as scikit-learn's one k-means start; maximum likelihood) runs with its defaults
and with tol in
{list(tols)} (ppgen's tol: stop when an iteration gains less than tol nats/row). Its time is
the wall time of the whole `fit` call (schema inference, standardization, initialization, EM);
it *reached* the target when `fit.score(X)` is at least the target at that seed; "reached k/3"
counts seeds. A setting's
time is the median over the 3 seeds and `ratio_to_sklearn` = that median / scikit-learn's
default median time. The headline is the fastest tol setting that reached the target at all 3
seeds; ppgen runs until its own stopping rule, so this is the time to reach the target *with
that setting*. "oracle stop" is the fewest EM iterations (`max_steps`, searched over
{list(ORACLE_STEPS[:6])}...) that reach the target at each seed: what ppgen would take if it
stopped the moment it crossed the target; it separates per-iteration speed from the stopping
rule and is not a usable setting. Scores of both libraries are on the raw data scale (ppgen
adds its standardization's log-Jacobian), so they compare directly. scikit-learn gets the raw
array; ppgen the same array (synthetic) or the DataFrame (wine).

**Reference rows.** scikit-learn best of 10 (`n_init=10`, seed 0, one run): the best score
its own restarts find. ppgen MAP: the same MAP objective by L-BFGS on the Pyro model
(`method="map"`), seed 0 only{map_cap}.
ppgen's EM rows are maximum likelihood (reg_covar 1e-6 in data units, as scikit-learn's); the
MAP row carries ppgen's weak priors (Wishart and Dirichlet). A local optimum is seed luck for
both libraries: the target is scikit-learn's own final score at the same seed, whatever
optimum it found.

**Data.** synthetic: {n:,} x 8 from a 5-component full-covariance Gaussian mixture (seed
{DATA_SEED}; means ~ N(0, 2^2 I), covariances A A^T/8 + 0.3 I, weights .30/.25/.20/.15/.10),
so the model is well specified; the components overlap (the true parameters classify
{truth["bayes_accuracy"]:.1%} of rows correctly); mean log-likelihood under the true parameters
{truth["true_score"]:.4f}. Real: wine (`ppgen.datasets.load("wine", label=False)`, 178 x 13),
K = 3, full covariance. {why_wine}

**Timing.** Same threads for both libraries: one. OMP/MKL/OPENBLAS_NUM_THREADS=1 are set
before numpy, torch and scikit-learn are imported, and `torch.set_num_threads(1)`. Each library
is warmed up on 500 rows before timing. Synthetic: one timed run per seed (the 3 seeds are the
3 runs). wine: each seed's time is the median of 3 timed runs (fits take milliseconds). A ppgen
EM fit is abandoned after {em_budget:g} s (MAP {3 * em_budget:g} s). The machine may be shared
(1-minute load average {load_start:.1f} at start, {load_end:.1f} at end, on
{os.cpu_count()} cores): single wall times are then noisy by tens of percent, so compare
ratios, which were measured under the same conditions. `median_cpu_s` / `cpu_ratio` are the
same medians in process CPU time (all threads of the process): for these single-threaded fits
it equals wall time on an idle machine and is steadier on a loaded one. The goal is stated in
wall time (`ratio_to_sklearn`).{profile_note}
"""
    summary_rows = syn_rows + wine_rows
    write_table(
        name,
        summary_rows,
        notes,
        title="ppgen GaussianMixture EM vs scikit-learn GaussianMixture",
        extra="## Default fit vs scikit-learn best of 10\n\n"
        + markdown_table(default_table)
        + "\n\nPer seed (also `"
        + name
        + "_default.csv`):\n\n"
        + markdown_table(default_rows)
        + f"\n\n## Per-seed runs of the tuned rows (also `{name}_runs.csv`)\n\n"
        + markdown_table(runs),
    )
    write_csv(name + "_default", default_rows)
    write_csv(name + "_runs", runs)
    log("")
    log(markdown_table(summary_rows))
    log("")
    log(markdown_table(default_table))
    log("")
    log(markdown_table(default_rows))
    log("")
    for key, value in machine_info().items():
        log(f"{key}: {value}")
    log(f"wrote {RESULTS / (name + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
