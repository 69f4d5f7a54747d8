"""ppgen's HMM (Baum-Welch EM) against hmmlearn.

    python benchmarks/hmm_vs_hmmlearn.py            # the benchmark (~15 min alone, 1 thread)
    python benchmarks/hmm_vs_hmmlearn.py --synthetic-restarts 3   # sized down (~1/3 of that)
    python benchmarks/hmm_vs_hmmlearn.py --quick    # smoke test: 10 x 300 synthetic (< 1 min)

Most of the full run is hmmlearn's 10 restarts run to convergence on 50 x 1000 (hundreds of
iterations each) for the default-fit table: ppgen's default fit against hmmlearn's best of
restarts on the synthetic set, discoveries and hmmlearn's well-separated test data.

Two data sets: a Gaussian HMM (4 states, 3-d emissions, full covariances) on 50 simulated
sequences x 1,000 steps, and a 2-state Poisson HMM on the `discoveries` series (one sequence of
100 yearly counts). Measures (a) how long ppgen's EM (`ppgen.fit(..., method="em", n_init=1)`)
takes to reach hmmlearn's final total log-likelihood minus 0.01 nats per sequence, as a ratio to
hmmlearn's own default `fit` time; (b) one forward-algorithm log-likelihood of all sequences,
`fit.log_prob(data)` against hmmlearn's `score(X, lengths)`. Medians of 3 runs (3 seeds), one
thread for both. Writes benchmarks/results/hmm_vs_hmmlearn{,_quick}.md and .csv.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
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

THREADS = pin_threads(1)  # before numpy/torch/hmmlearn are imported: same threads for both

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hmmlearn import __version__ as HMMLEARN_VERSION  # noqa: E402
from hmmlearn.hmm import GaussianHMM, PoissonHMM  # noqa: E402

import ppgen  # noqa: E402

SEEDS = (0, 1, 2)
GAP = 0.01  # nats per sequence below hmmlearn's final log-likelihood that still counts
TOL = 1e-3  # ppgen EM tol for the usable row (nats per observed step gained per iteration)
DATA_SEED = 0
SCORE_REPEATS = 11  # forward-algorithm timings: median of this many calls

warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
logging.getLogger("hmmlearn").setLevel(logging.ERROR)
# Tuned rows cap max_steps on purpose; the default-fit rows record the warning themselves.
warnings.filterwarnings("ignore", category=ppgen.ConvergenceWarning)


# -- data -----------------------------------------------------------------------------------------
def simulate(n_seq: int, n_steps: int, k: int = 4, d: int = 3, seed: int = DATA_SEED):
    """``n_seq`` sequences of ``n_steps`` x ``d`` from a ``k``-state Gaussian HMM, and facts.

    Sticky transitions (0.9 on the diagonal, the rest spread evenly), uniform initial state,
    means ~ N(0, 1.5^2 I), covariances A A^T / d + 0.3 I with A standard normal: states overlap.
    Returns the list of arrays and the total log-likelihood under the true parameters.
    """
    rng = np.random.default_rng(seed)
    trans = np.full((k, k), 0.1 / (k - 1))
    np.fill_diagonal(trans, 0.9)
    means = rng.normal(0.0, 1.5, size=(k, d))
    covs = []
    for _ in range(k):
        a = rng.normal(size=(d, d))
        covs.append(a @ a.T / d + 0.3 * np.eye(d))
    covs = np.array(covs)
    cum = trans.cumsum(1)
    z = np.empty((n_seq, n_steps), dtype=int)
    z[:, 0] = rng.integers(k, size=n_seq)
    for t in range(1, n_steps):
        u = rng.random(n_seq)[:, None]
        z[:, t] = np.minimum((u > cum[z[:, t - 1]]).sum(1), k - 1)
    chol = np.linalg.cholesky(covs)
    eps = rng.normal(size=(n_seq, n_steps, d))
    x = means[z] + np.einsum("stij,stj->sti", chol[z], eps)
    true = GaussianHMM(k, covariance_type="full", init_params="", params="")
    true.startprob_, true.transmat_ = np.full(k, 1.0 / k), trans
    true.means_, true.covars_ = means, covs
    seqs = [x[s] for s in range(n_seq)]
    return seqs, float(true.score(np.concatenate(seqs), [n_steps] * n_seq))


# -- helpers --------------------------------------------------------------------------------------


def _nats(value):
    """A log-likelihood as text with 2 decimals (the tables would round it to 3 digits)."""
    return None if value is None else f"{value:.2f}"


def _med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ppgen_row(label, setting, runs, reached, hl_time):
    """Summary row of ppgen runs given as (wall, cpu, total log-lik, iterations, ...) tuples."""
    med = _med([r[0] for r in runs])
    return {
        "dataset": label,
        "method": "ppgen EM",
        "setting": setting,
        "median_time_s": med,
        "ratio": None if med is None else med / hl_time,
        "median_cpu_s": _med([r[1] for r in runs]),
        "median_total_loglik": _nats(_med([r[2] for r in runs])),
        "reached": f"{reached}/{len(SEEDS)}",
        "median_iterations": _med([r[3] for r in runs]),
    }


# -- one data set ---------------------------------------------------------------------------------
def run_dataset(label, seqs, pp_data, make_hl, make_pp, *, repeats, budget, log):
    """hmmlearn default fits, ppgen EM rows, forward-algorithm timings for one data set."""
    X = np.concatenate([np.asarray(s, dtype=float) for s in seqs])
    lengths = [len(s) for s in seqs]
    n_seq, n_obs = len(seqs), int(sum(lengths))

    def hl_fit(seed):
        return make_hl(seed).fit(X, lengths)

    def pp_fit(seed, **options):
        options.setdefault("n_init", 1)
        return ppgen.fit(make_pp(), pp_data, method="em", seed=seed, progress=False, **options)

    def pp_total(fit):
        return float(fit.log_prob(pp_data).sum())

    # warm-up (imports, first-call allocations) on the data itself, untimed
    hl_fit(0)
    pp_fit(0, max_steps=2)

    rows, runs = [], []
    hl = {}
    for seed in SEEDS:
        m = measure(lambda seed=seed: hl_fit(seed), repeats)
        model = m["result"]
        total = float(model.score(X, lengths))
        hist = list(model.monitor_.history)
        steps_ok = (b >= a - 1e-6 * abs(a) for a, b in zip(hist, hist[1:], strict=False))
        ok = math.isfinite(total) and all(steps_ok)
        capped = model.monitor_.iter >= model.n_iter
        hl[seed] = {"wall": m["wall"], "cpu": m["cpu"], "total": total, "model": model}
        runs.append(
            {
                "dataset": label,
                "library": "hmmlearn",
                "setting": "default",
                "seed": seed,
                "time_s": m["wall"],
                "cpu_s": m["cpu"],
                "total_loglik": _nats(total),
                "target": _nats(total - GAP * n_seq),
                "iterations": model.monitor_.iter,
                "note": ("stopped at n_iter" if capped else "converged (tol)")
                + ("" if ok else "; FAILED sanity check"),
            }
        )
        log(f"  hmmlearn seed {seed}: {m['wall']:.3f} s, total {total:.2f}, {runs[-1]['note']}")
    hl_time = _med([hl[s]["wall"] for s in SEEDS])
    hl_cpu = _med([hl[s]["cpu"] for s in SEEDS])
    rows.append(
        {
            "dataset": label,
            "method": f"hmmlearn {HMMLEARN_VERSION}",
            "setting": "default (n_iter=10, tol=1e-2)",
            "median_time_s": hl_time,
            "ratio": 1.0,
            "median_cpu_s": hl_cpu,
            "median_total_loglik": _nats(_med([hl[s]["total"] for s in SEEDS])),
            "reached": "",
            "median_iterations": _med([hl[s]["model"].monitor_.iter for s in SEEDS]),
        }
    )

    # (a) ppgen EM, n_init=1, tol=TOL; the trajectory doubles as the oracle search's guide
    pp = {}
    for seed in SEEDS:
        target = hl[seed]["total"] - GAP * n_seq
        try:
            m = measure(
                lambda seed=seed: with_budget(lambda: pp_fit(seed, tol=TOL), budget), repeats
            )
            fit = m["result"]
            total = pp_total(fit)
            pp[seed] = (m["wall"], m["cpu"], total, fit.info["n_steps"], total >= target, fit)
            note = ""
        except FitTimeout:
            pp[seed] = (None, None, None, None, False, None)
            note = f"abandoned after {budget:g} s"
        runs.append(
            {
                "dataset": label,
                "library": "ppgen EM",
                "setting": f"n_init=1, tol={TOL:g}",
                "seed": seed,
                "time_s": pp[seed][0],
                "total_loglik": _nats(pp[seed][2]),
                "target": _nats(target),
                "reached": pp[seed][4],
                "iterations": pp[seed][3],
                "note": note,
            }
        )
        log(f"  ppgen EM tol={TOL:g} seed {seed}: {runs[-1]}")
    done = [pp[s] for s in SEEDS if pp[s][0] is not None]
    reached = sum(pp[s][4] for s in SEEDS)
    rows.append(_ppgen_row(label, f"n_init=1, tol={TOL:g}", done, reached, hl_time))

    # oracle: fewest max_steps reaching the target. The tol run's objective trajectory (log joint
    # on the standardized scale) guides the guess; each guess is then fitted, timed and scored.
    oracle = []
    for seed in SEEDS:
        target = hl[seed]["total"] - GAP * n_seq
        fit = pp[seed][5]
        steps, guided = 8, False
        if fit is not None:
            obj = -np.asarray(fit.losses)
            shift = pp[seed][2] - obj[-1]  # raw log-lik minus objective at the end (approx.)
            above = np.nonzero(obj + shift >= target)[0]
            steps, guided = (max(1, int(above[0])), True) if len(above) else (len(obj), False)
        found, spent = None, 0.0
        while spent < 2 * budget:
            try:
                m = measure(
                    lambda seed=seed, steps=steps: with_budget(
                        lambda: pp_fit(seed, max_steps=steps), budget
                    ),
                    repeats,
                )
            except FitTimeout:
                break
            spent += m["wall"] * repeats
            total = pp_total(m["result"])
            if total >= target:
                found = (m["wall"], m["cpu"], total, steps)
                break
            steps += 1 if guided else max(1, steps // 2)
        oracle.append(found)
        runs.append(
            {
                "dataset": label,
                "library": "ppgen EM",
                "setting": "oracle stop (fewest max_steps)",
                "seed": seed,
                "time_s": found[0] if found else None,
                "total_loglik": _nats(found[2] if found else None),
                "target": _nats(target),
                "reached": found is not None,
                "iterations": found[3] if found else None,
                "note": "" if found else f"not reached by max_steps={steps} within {budget:g} s",
            }
        )
        log(f"  ppgen EM oracle seed {seed}: {runs[-1]}")
    hits = [o for o in oracle if o]
    setting = "oracle stop (fewest max_steps; not usable)"
    rows.append(_ppgen_row(label, setting, hits, len(hits), hl_time))

    # (b) one forward-algorithm evaluation of all sequences, fitted models of seed 0
    hl_model = hl[SEEDS[0]]["model"]
    pp_model = pp[SEEDS[0]][5] or pp_fit(SEEDS[0], max_steps=5)
    t_hl = measure(lambda: hl_model.score(X, lengths), SCORE_REPEATS)
    t_pp = measure(lambda: pp_model.log_prob(pp_data), SCORE_REPEATS)
    t_pp_cached = measure(lambda: pp_model.log_prob(), SCORE_REPEATS)
    agree = abs(float(t_pp["result"].sum()) - pp_total(pp_model))
    for name, setting, t in (
        (f"hmmlearn {HMMLEARN_VERSION}", "score(X, lengths)", t_hl),
        ("ppgen", "fit.log_prob(data)", t_pp),
        ("ppgen", "fit.log_prob() (training data, already encoded)", t_pp_cached),
    ):
        rows.append(
            {
                "dataset": label,
                "method": name,
                "setting": "forward: " + setting,
                "median_time_s": t["wall"],
                "ratio": t["wall"] / t_hl["wall"],
                "median_cpu_s": t["cpu"],
            }
        )
    log(f"  forward: hmmlearn {t_hl['wall']:.4f} s, ppgen {t_pp['wall']:.4f} s ({agree:.1e})")
    facts = {"n_seq": n_seq, "n_obs": n_obs, "hl_time": hl_time}
    return rows, runs, facts


# -- the default fit against hmmlearn's best of 10 restarts ---------------------------------------
REACH = 1e-4  # nats per observed step below hmmlearn's best that still counts as its optimum
HL_RESTARTS = 10  # hmmlearn restarts (random_state 0..9), each run to convergence
HL_CONVERGED = {"n_iter": 1000, "tol": 1e-4}  # hmmlearn's tol: total nats gained per iteration


def well_separated(n_seq: int = 10, n_steps: int = 200):
    """hmmlearn's ``test_fit_with_priors`` data (GaussianHMMTestMixin, diagonal covariances).

    ``RandomState(10)``: 3 states, 3 features, random start and transition probabilities (the
    transitions plus a random diagonal, renormalized), means 20 x randint(-20, 20) (states
    hundreds apart), variances (0.1 + 0.1 U)^2 in 0.01-0.04; one sample of ``n_seq *
    n_steps`` steps cut into ``n_seq`` sequences, as the test does. Returns the sequences and
    the generating model.
    """
    prng = np.random.RandomState(10)
    k = d = 3
    startprob = prng.rand(k)
    startprob /= startprob.sum()
    transmat = prng.rand(k, k)
    transmat /= transmat.sum(1, keepdims=True)
    means = prng.randint(-20, 20, (k, d))
    covars = (0.1 + 0.1 * prng.random_sample((k, d))) ** 2
    true = GaussianHMM(k, "diag", init_params="", params="")
    true.startprob_ = startprob
    trans = transmat + np.diag(prng.rand(k))
    true.transmat_ = trans / trans.sum(1, keepdims=True)
    true.means_ = 20 * means
    true.covars_ = covars
    x, _ = true.sample(n_seq * n_steps, random_state=prng)
    return [x[s * n_steps : (s + 1) * n_steps] for s in range(n_seq)], true


def default_vs_best(
    label, seqs, pp_data, make_hl, make_pp, *, seeds, repeats, budget, log, n_restarts=HL_RESTARTS
):
    """``ppgen.fit(HMM(...), data)`` with no options (but the seed) against the best of
    ``n_restarts`` hmmlearn fits run to convergence: gap per observed step and time ratios."""
    X = np.concatenate([np.asarray(s, dtype=float) for s in seqs])
    lengths = [len(s) for s in seqs]
    n_obs = int(sum(lengths))
    make_hl(0).fit(X, lengths)  # warm-up, untimed
    restarts, spent, spent_cpu = [], 0.0, 0.0
    for r in range(n_restarts):
        m = measure(lambda r=r: make_hl(r).fit(X, lengths), repeats)
        h = m["result"]
        total = float(h.score(X, lengths))
        hist = list(h.monitor_.history)
        monotone = all(b >= a - 1e-6 * abs(a) for a, b in zip(hist, hist[1:], strict=False))
        spent += m["wall"]
        spent_cpu += m["cpu"]
        restarts.append(
            {
                "total": total,
                "cum": spent,
                "cum_cpu": spent_cpu,
                "ok": math.isfinite(total) and monotone and h.monitor_.converged,
                "iter": h.monitor_.iter,
            }
        )
    best = max(r["total"] for r in restarts)
    first = next(i for i, r in enumerate(restarts) if r["total"] >= best - REACH * n_obs)
    needed = restarts[first]["cum"]
    needed_cpu = restarts[first]["cum_cpu"]
    n_best = sum(r["total"] >= best - REACH * n_obs for r in restarts)
    sane = all(r["ok"] for r in restarts)
    log(
        f"  {label}: hmmlearn best of {n_restarts} {best:.3f} (restart {first} first, "
        f"{needed:.3f} s; all {spent:.3f} s; {n_best} restarts reach it; sane {sane})"
    )
    rows = [
        {
            "dataset": label,
            "method": f"hmmlearn {HMMLEARN_VERSION}",
            "setting": f"best of {n_restarts} (n_iter={HL_CONVERGED['n_iter']}, "
            f"tol={HL_CONVERGED['tol']:g})",
            "seed": "",
            "time_s": needed,
            "cpu_s": needed_cpu,
            "all_restarts_s": spent,
            "total_loglik": _nats(best),
            "gap_per_obs": None,
            "reached": "",
            "ratio_to_needed": 1.0,
            "cpu_ratio_to_needed": 1.0,
            "ratio_to_all": None,
            "note": f"time_s: restarts 0..{first} (the first reaching the best); "
            f"{n_best}/{n_restarts} restarts reach it; median "
            f"{statistics.median(r['iter'] for r in restarts):g} iterations; "
            + ("all converged, monotone, finite" if sane else "SANITY CHECK FAILED"),
        }
    ]
    # Warm-up, untimed: a whole default fit, as hmmlearn's above (first-call costs such as
    # torch's lazy imports are not the fit's).
    ppgen.fit(make_pp(), pp_data, progress=False)
    for seed in seeds:
        m = time_default_fit(
            ppgen.fit, make_pp, pp_data, seed, repeats, budget, ppgen.ConvergenceWarning
        )
        if m is None:
            note = f"abandoned after {budget:g} s"
            rows.append({"dataset": label, "method": "ppgen default", "seed": seed, "note": note})
            log(f"  {label}: ppgen default seed {seed} abandoned after {budget:g} s")
            continue
        fit = m["result"]
        total = float(fit.log_prob(pp_data).sum())
        gap = (total - best) / n_obs
        warned = m["warned"]
        rows.append(
            {
                "dataset": label,
                "method": "ppgen default",
                "setting": "ppgen.fit(HMM(...), data)" + ("" if seed == 0 else f", seed={seed}"),
                "seed": seed,
                "time_s": m["wall"],
                "cpu_s": m["cpu"],
                "total_loglik": _nats(total),
                "gap_per_obs": gap,
                "reached": gap >= -REACH,
                "ratio_to_needed": m["wall"] / needed,
                "cpu_ratio_to_needed": m["cpu"] / needed_cpu,
                "ratio_to_all": m["wall"] / spent,
                "note": f"{fit.info['n_init']} starts, best ran {fit.info['n_steps']} iterations"
                + ("; ConvergenceWarning" if warned else ""),
            }
        )
        log(
            f"  {label}: ppgen default seed {seed}: {m['wall']:.3f} s, total {total:.3f}, "
            f"gap {gap:+.2e}/step"
        )
    return rows, n_obs


def default_summary(rows, sizes):
    """One line per data set: reached at how many seeds, worst gap, median time ratios."""
    out = []
    for label in dict.fromkeys(r["dataset"] for r in rows):
        peer = next(r for r in rows if r["dataset"] == label and r["seed"] == "")
        pp = [r for r in rows if r["dataset"] == label and r["method"] == "ppgen default"]
        done = [r for r in pp if r.get("gap_per_obs") is not None]
        ratio = _med([r["ratio_to_needed"] for r in done])
        cpu_ratio = _med([r["cpu_ratio_to_needed"] for r in done])
        long = sizes[label] >= 1000
        ok = bool(done) and len(done) == len(pp) and all(r["reached"] for r in done)
        out.append(
            {
                "dataset": label,
                "hmmlearn to its best (s)": peer["time_s"],
                "hmmlearn all restarts (s)": peer["all_restarts_s"],
                "ppgen default median (s)": _med([r["time_s"] for r in done]),
                "ratio_to_needed": ratio,
                "cpu_ratio_to_needed": cpu_ratio,
                "ratio_to_all": _med([r["ratio_to_all"] for r in done]),
                "reached (gap >= -1e-4/step)": f"{sum(bool(r['reached']) for r in done)}/{len(pp)}",
                "worst gap (nats/step)": min((r["gap_per_obs"] for r in done), default=None),
                # Judged on CPU time: wall time on a shared machine measures its load.
                "goal": "met" if ok and cpu_ratio is not None and cpu_ratio <= 1.0 else "missed",
                "note": "" if long else "fewer than 1,000 steps: the time goal is reported only",
            }
        )
    return out


# -- main -----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 x 300 synthetic; smoke test")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds after which one ppgen fit is abandoned (default 60, 5 with --quick)",
    )
    parser.add_argument(
        "--synthetic-restarts",
        type=int,
        default=HL_RESTARTS,
        help=f"hmmlearn restarts run to convergence on the synthetic set for the default-fit "
        f"table (default {HL_RESTARTS}; they are most of the run's time): fewer sizes it down",
    )
    parser.add_argument(
        "--default-only",
        action="store_true",
        help="only the default fit against hmmlearn's best of 10 (skip the tuned rows)",
    )
    args = parser.parse_args(argv)
    budget = args.budget or (5.0 if args.quick else 60.0)
    n_seq, n_steps = (10, 300) if args.quick else (50, 1000)
    name = "hmm_vs_hmmlearn" + ("_quick" if args.quick else "")
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    def log(msg):
        print(msg, flush=True)

    torch.manual_seed(0)
    log(f"threads: {THREADS}")
    seqs, true_total = simulate(n_seq, n_steps)
    log(f"synthetic {n_seq} x {n_steps} x 3: true-parameter total log-lik {true_total:.2f}")
    disc = ppgen.datasets.load("discoveries")[["discoveries"]]
    syn_rows, syn_runs, disc_rows, disc_runs = [], [], [], []
    if not args.default_only:
        syn_rows, syn_runs, syn = run_dataset(
            "synthetic Gaussian K=4",
            seqs,
            seqs,
            lambda seed: GaussianHMM(4, covariance_type="full", random_state=seed),
            lambda: ppgen.HMM(4, "gaussian", "full", initial="learned"),
            repeats=1,
            budget=budget,
            log=log,
        )
        log(f"discoveries {disc.shape}")
        disc_rows, disc_runs, dfacts = run_dataset(
            "discoveries Poisson K=2",
            [disc.to_numpy(dtype=float)],
            disc,
            lambda seed: PoissonHMM(2, random_state=seed),
            lambda: ppgen.HMM(2, "poisson", initial="learned"),
            repeats=3,
            budget=budget,
            log=log,
        )
    sep_seqs, _ = well_separated()
    default_sets = [
        (
            f"synthetic Gaussian K=4 ({n_seq} x {n_steps})",
            seqs,
            seqs,
            lambda r: GaussianHMM(4, covariance_type="full", random_state=r, **HL_CONVERGED),
            lambda: ppgen.HMM(4, "gaussian", "full"),
            SEEDS[:1],
            1,
            args.synthetic_restarts,
        ),
        (
            "discoveries Poisson K=2 (1 x 100)",
            [disc.to_numpy(dtype=float)],
            disc,
            lambda r: PoissonHMM(2, random_state=r, **HL_CONVERGED),
            lambda: ppgen.HMM(2, "poisson"),
            SEEDS,
            3,
            HL_RESTARTS,
        ),
        (
            "well-separated Gaussian diag K=3 (10 x 200)",
            sep_seqs,
            sep_seqs,
            lambda r: GaussianHMM(3, covariance_type="diag", random_state=r, **HL_CONVERGED),
            lambda: ppgen.HMM(3, "gaussian", "diag"),
            SEEDS,
            3,
            HL_RESTARTS,
        ),
    ]
    default_rows, sizes = [], {}
    for label, dseqs, ddata, make_hl, make_pp, seeds, reps, restarts in default_sets:
        log(label)
        got, sizes[label] = default_vs_best(
            label,
            dseqs,
            ddata,
            make_hl,
            make_pp,
            seeds=seeds,
            repeats=reps,
            budget=5 * budget,
            log=log,
            n_restarts=restarts,
        )
        default_rows += got
    default_table = default_summary(default_rows, sizes)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = syn_rows + disc_rows

    def headline(data_rows, label):
        usable = next(r for r in data_rows if r["setting"].startswith("n_init=1, tol"))
        oracle = next(r for r in data_rows if r["setting"].startswith("oracle"))
        fwd = next(r for r in data_rows if r["setting"] == "forward: fit.log_prob(data)")
        full = f"{len(SEEDS)}/{len(SEEDS)}"
        if usable["reached"] == full:
            a = f"(a) fit-to-target ratio **{usable['ratio']:.2f}** (tol={TOL:g})"
        else:
            a = f"(a) tol={TOL:g} reached the target at {usable['reached']} seeds"
        o = oracle["ratio"]
        a += "" if o is None else f", oracle-stop ratio {o:.2f} ({oracle['reached']} seeds)"
        verdict_a = "meets" if usable["reached"] == full and usable["ratio"] <= 1.0 else "misses"
        verdict_b = "meets" if fwd["ratio"] <= 1.0 else "misses"
        return (
            f"**{label}**: {a}: {verdict_a} the goal <= 1.0; (b) forward log-likelihood ratio "
            f"**{fwd['ratio']:.2f}**: {verdict_b} the goal <= 1.0."
        )

    heads = ["(tuned rows not run: `--default-only`)", ""]
    if not args.default_only:
        heads = [headline(syn_rows, "synthetic"), headline(disc_rows, "discoveries")]
    met = [r for r in default_table if r["goal"] == "met"]
    reached = [
        r
        for r in default_table
        if r["reached (gap >= -1e-4/step)"].split("/")[0]
        == r["reached (gap >= -1e-4/step)"].split("/")[1]
    ]
    default_head = (
        f"**Default fit: reaches hmmlearn's best of {HL_RESTARTS} on {len(reached)}/"
        f"{len(default_table)} data sets (every seed); goal (reached, in no more CPU time than "
        f"hmmlearn's restarts up to its best) met on {len(met)}/{len(default_table)}.**"
    )
    heads = [default_head + "\n\n" + heads[0], heads[1]]
    for h in heads:
        log(h)
    quick = (
        f" **--quick run**: {n_seq} x {n_steps} synthetic steps; a smoke test, not the benchmark."
        if args.quick
        else ""
    )
    syn_note = (
        ""
        if args.synthetic_restarts == HL_RESTARTS
        else f" **Sized down:** on the synthetic set hmmlearn runs {args.synthetic_restarts} "
        f"restarts (`--synthetic-restarts`), not {HL_RESTARTS}: its best is of those."
    )
    notes = f"""
{heads[0]}

{heads[1]}{quick}

**Default fit against hmmlearn's best of {HL_RESTARTS}** (table "Default fit" below). ppgen:
`ppgen.fit(HMM(K, family[, covariance]), data)` with no options (maximum likelihood by
Baum-Welch EM: 4 k-means starts screened for 10 iterations in lockstep (one batched EM
iteration of all of them at a time), the best run on by SQUAREM-accelerated EM to tol 1e-8 nats
per step, plus K "corner" starts of the initial distribution when there are fewer than 2K
sequences, screened and finished alike); seeds 1 and 2 add
only `seed=`. hmmlearn: `GaussianHMM`/`PoissonHMM` with `random_state` 0..{HL_RESTARTS - 1},
`n_iter={HL_CONVERGED["n_iter"]}, tol={HL_CONVERGED["tol"]:g}` (run to convergence; every run
checked converged, monotone and finite), the best total log-likelihood kept. hmmlearn's time
"to its best" is the summed time of restarts 0, 1, ... up to the first that comes within
{REACH:g} nats per step of the best (the restarts it needs); "all restarts" is all of
them.{syn_note}
`gap_per_obs` = (ppgen's `fit.log_prob(data).sum()` - hmmlearn's best) / observed steps (raw
scale both); *reached* when at least -{REACH:g}. Goal (issue 11): reached at every seed, and
for series of >= 1,000 steps `cpu_ratio_to_needed` <= 1.0 (process CPU time, one thread:
steadier than wall time on a shared machine; the wall ratio is shown beside it). Data: the
two sets below and hmmlearn's
`test_fit_with_priors` data (`well_separated()`: RandomState(10), 3 states, 3 features, means
20 x randint(-20, 20), diagonal variances 0.01-0.04, one sample of 2,000 steps cut into 10 x
200). Synthetic: one seed, one run each; the others: seeds {list(SEEDS)}, median of 3 runs.

**What is measured.** (a) For each seed in {list(SEEDS)}, hmmlearn's default fit
(`GaussianHMM(4, covariance_type="full", random_state=seed)` / `PoissonHMM(2, random_state=
seed)`, `.fit(X, lengths)`: k-means initialization, n_iter=10, tol=1e-2, learned initial
distribution) gives a time and a final total log-likelihood `score(X, lengths)` (its `history`
checked non-decreasing and finite); the seed's *target* is that total minus {GAP} x the number of
sequences. ppgen's time is the whole `ppgen.fit(ppgen.HMM(K, ..., initial="learned"), data,
method="em", seed=seed, n_init=1, tol={TOL:g})` call (schema inference, standardization,
k-means initialization, Baum-Welch); it *reached* the target when `fit.log_prob(data).sum()` (raw
data scale: ppgen includes its standardization's log-Jacobian) is at least the target; `ratio` =
median ppgen time / median hmmlearn time over the 3 seeds. ppgen's tol is in nats per observed
step per iteration (hmmlearn's in total nats). "oracle stop" is the fewest EM iterations
(`max_steps`) that reach the target at each seed, found from the tol run's objective trajectory
and then fitted and timed: per-iteration speed without a stopping rule; not a usable setting.
These rows pass `n_init=1` and a tol, so they measure one EM run; the default fit is in the
"Default fit" table. ppgen's EM is maximum likelihood, as hmmlearn's (whose `min_covar` floor
is 1e-3); both are scored by the same raw-scale likelihood.
(b) One forward-algorithm log-likelihood of all sequences under the seed-{SEEDS[0]} fits: hmmlearn
`score(X, lengths)` against ppgen `fit.log_prob(data)` (encodes the data, then the forward
recursion), median of {SCORE_REPEATS} calls; `fit.log_prob()` on the already-encoded training
data is shown for reference. `ratio` is to hmmlearn's `score`.

**Data.** synthetic: {n_seq} sequences x {n_steps} steps x 3 from a 4-state Gaussian HMM (seed
{DATA_SEED}; transitions 0.9 on the diagonal; means ~ N(0, 1.5^2 I); covariances A A^T/3 + 0.3
I), total log-likelihood under the true parameters {true_total:.2f}. Real:
`ppgen.datasets.load("discoveries")[["discoveries"]]` (one sequence, {len(disc)} yearly
counts), 2-state Poisson HMM, the same K as the test suite's comparison.

**Timing.** One thread for both libraries: OMP/MKL/OPENBLAS_NUM_THREADS=1 set before numpy, torch
and hmmlearn are imported, and `torch.set_num_threads(1)`. Both are warmed up once on the data,
untimed. Synthetic: one timed run per seed (the 3 seeds are the 3 runs); discoveries: each seed's
time is the median of 3 runs. A ppgen fit is abandoned after {budget:g} s. 1-minute load average
{load_start:.1f} at start, {load_end:.1f} at end ({os.cpu_count()} cores); `median_cpu_s` is
process CPU time, steadier on a shared machine. hmmlearn {HMMLEARN_VERSION}.
"""
    runs = syn_runs + disc_runs
    write_table(
        name,
        rows,
        notes,
        title="ppgen HMM (EM) vs hmmlearn",
        extra=f"## Default fit vs hmmlearn best of {HL_RESTARTS}\n\n"
        + markdown_table(default_table)
        + "\n\nPer seed (also `"
        + name
        + "_default.csv`):\n\n"
        + markdown_table(default_rows)
        + "\n\n## Per-seed runs of the tuned rows\n\n"
        + markdown_table(runs),
    )
    write_csv(name + "_default", default_rows)
    log("")
    log(markdown_table(rows))
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
