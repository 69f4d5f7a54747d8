"""Accuracy and speed of ppgen's AIS against PPCA's exact log-likelihood, and a NumPy reference.

    python benchmarks/ais_accuracy.py                 # dz=10, dx=50; T = 100, 300, 1000, 3000
    python benchmarks/ais_accuracy.py --quick         # smoke test (prints only): 20 rows

PPCA with latent dim 10, data dim 50 and noise variance 0.1 is fitted (MAP, float64) on 1,000
simulated rows; AIS (16 chains, HMC with 10 leapfrog steps) estimates the log-likelihood of the
first ``--rows`` rows at several numbers of annealing steps T, and is compared row by row with
the exact Gaussian marginal (``Fit.log_prob``). Rows: ppgen's default (adaptive schedule), ppgen
with the sigmoid schedule of Grosse et al. (2015), and a plain NumPy AIS written here (same
16 chains and L = 10, sigmoid schedule, hand-written gradients, step size adapted on the fly
towards 65% acceptance), run one row at a time as such code usually is, and with all rows
batched. Everything runs on one thread. Writes benchmarks/results/ais_accuracy.md and .csv.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads, write_table  # noqa: E402

pin_threads(1)

import numpy as np  # noqa: E402
from scipy.special import logsumexp  # noqa: E402

import ppgen  # noqa: E402
from ppgen.evaluate.ais import ais, schedule  # noqa: E402

DZ, DX, NOISE, N_FIT, CHAINS, LEAPFROG = 10, 50, 0.1, 1000, 16, 10
ISSUE_REFERENCE = (
    "Issue's reference, measured beforehand with a plain NumPy AIS (16 chains, HMC L = 10): "
    "11 nats/row at T = 100, 0.2-0.6 at T = 1000, 0.02-0.15 at T = 3000-5000."
)


def simulate(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(DX, DZ))
    loc = rng.normal(size=DX)
    z = rng.normal(size=(n, DZ))
    return z @ W.T + loc + np.sqrt(NOISE) * rng.normal(size=(n, DX))


def numpy_ais(X, W, loc, noise, betas, *, chains, leapfrog, rng, target=0.65):
    """Plain AIS from the prior for PPCA, HMC transitions; rows x chains batched in NumPy.

    Returns log p(x) estimates (n,) and the mean acceptance probability.
    """
    n = X.shape[0]
    const = -0.5 * X.shape[1] * np.log(2 * np.pi * noise)

    def loglik(z):  # log p(x | z), evaluated in data space as the model states it
        r = X - loc - z @ W.T
        return -0.5 * (r * r).sum(-1) / noise + const

    z = rng.normal(size=(chains, n, W.shape[1]))
    log_w = np.zeros((chains, n))
    eps = np.full((1, n, 1), 0.5)
    accs = []
    for t in range(1, len(betas)):
        log_w += (betas[t] - betas[t - 1]) * loglik(z)
        if t == len(betas) - 1:
            break
        beta = betas[t]

        def logf(z, beta=beta):
            return -0.5 * (z * z).sum(-1) + beta * loglik(z)

        def grad(z, beta=beta):
            return -z + beta * ((X - loc - z @ W.T) @ W) / noise

        p = rng.normal(size=z.shape)
        h0 = -logf(z) + 0.5 * (p * p).sum(-1)
        zn, pn = z, p + 0.5 * eps * grad(z)
        for i in range(leapfrog):
            zn = zn + eps * pn
            pn = pn + (eps if i < leapfrog - 1 else 0.5 * eps) * grad(zn)
        h1 = -logf(zn) + 0.5 * (pn * pn).sum(-1)
        log_acc = np.minimum(0.0, np.nan_to_num(h0 - h1, nan=-np.inf))
        accept = np.log(rng.random(log_acc.shape)) < log_acc
        z = np.where(accept[..., None], zn, z)
        rate = np.exp(log_acc).mean(0)
        accs.append(rate.mean())
        eps = eps * np.exp(0.5 * (rate - target))[None, :, None]
    return logsumexp(log_w, 0) - np.log(chains), float(np.mean(accs))


def row(method, sched, T, n, est, exact, seconds, acceptance, ess=None, mc_se=None):
    err = est - exact
    return {
        "method": method,
        "schedule": sched,
        "n_steps": T,
        "rows": n,
        "mean_abs_error": float(np.abs(err).mean()),
        "mean_signed_error": float(err.mean()),
        "max_abs_error": float(np.abs(err).max()),
        "s_per_row": seconds / n,
        "acceptance": acceptance,
        "mean_ess": ess,
        "mc_se_of_mean": mc_se,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300, help="rows evaluated by ppgen")
    parser.add_argument("--numpy-rows", type=int, default=20, help="rows for the NumPy loop")
    parser.add_argument("--steps", default="100,300,1000,3000")
    parser.add_argument("--sigmoid-max", type=int, default=1000, help="largest T for sigmoid")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.numpy_rows, args.steps = 20, 5, "100,300"
    steps = [int(s) for s in args.steps.split(",")]

    X = simulate(N_FIT)
    fit = ppgen.fit(ppgen.PPCA(DZ), X, standardize=False)
    W, loc, noise = (fit.params[k].numpy() for k in ("W", "loc", "noise"))
    Xe = X[: args.rows]
    exact = fit.log_prob(Xe)
    rows = []
    for T in steps:
        for sched in ("adaptive", "sigmoid"):
            if sched == "sigmoid" and T > args.sigmoid_max:
                continue
            t0 = time.perf_counter()
            res = ais(fit, Xe, n_steps=T, n_chains=CHAINS, n_leapfrog=LEAPFROG, schedule=sched)
            dt = time.perf_counter() - t0
            r = row(
                f"ppgen.ais ({args.rows} rows batched)",
                sched,
                T,
                len(Xe),
                res.per_row,
                exact,
                dt,
                res.acceptance,
                float(res.ess.mean()),
                res.mc_se,
            )
            rows.append(r)
            print(r, flush=True)
        betas = schedule("sigmoid", T)
        rng = np.random.default_rng(0)
        Xn = Xe[: args.numpy_rows]
        t0 = time.perf_counter()
        out = [
            numpy_ais(
                Xn[i : i + 1], W, loc, noise, betas, chains=CHAINS, leapfrog=LEAPFROG, rng=rng
            )
            for i in range(len(Xn))
        ]
        dt = time.perf_counter() - t0
        est = np.concatenate([o[0] for o in out])
        r = row(
            "NumPy AIS, one row at a time",
            "sigmoid",
            T,
            len(Xn),
            est,
            exact[: len(Xn)],
            dt,
            float(np.mean([o[1] for o in out])),
        )
        rows.append(r)
        print(r, flush=True)
        t0 = time.perf_counter()
        est, acc = numpy_ais(Xe, W, loc, noise, betas, chains=CHAINS, leapfrog=LEAPFROG, rng=rng)
        dt = time.perf_counter() - t0
        r = row(f"NumPy AIS ({args.rows} rows batched)", "sigmoid", T, len(Xe), est, exact, dt, acc)
        rows.append(r)
        print(r, flush=True)

    notes = f"""
PPCA (latent dim {DZ}, data dim {DX}, noise variance {NOISE}) fitted by MAP on {N_FIT} simulated
rows (float64); errors are AIS minus the exact log-likelihood `Fit.log_prob`, in nats per row,
over the first `rows` rows. {CHAINS} chains, HMC with L = {LEAPFROG} leapfrog steps, one thread.

- `ppgen.ais`: default settings apart from `schedule`. The step size of each row is tuned on a
  separate short annealing pass (max(64, T/10) HMC transitions, counted in the time) towards
  80% mean acceptance, then frozen; `adaptive` (the default) also places the T
  temperatures at equal thermodynamic length, from the spread of the log-likelihood over the
  chains measured during that pass. `acceptance` is the mean Metropolis acceptance probability
  of the main pass; `mean_ess` the mean effective sample size of the final weights (of 16).
- NumPy AIS: written in this file; sigmoid schedule (delta = 4), step size adapted on the fly
  (not frozen), prior start, hand-written gradient of log p(x | z) evaluated in data space (as
  the model states it, O(dx dz) per chain, like ppgen's). "One row at a time" loops over rows
  with the 16 chains vectorized (first `numpy_rows` rows only); "rows batched" vectorizes
  rows x chains.
- `s_per_row`: wall time / rows. ppgen's per-row time falls as more rows are batched (every
  step costs a Pyro trace, whose overhead is shared by the whole batch).
- With perfect transitions the per-chain log-weight variance at T = 1000 is about 0.23-0.3 on
  this problem (optimal vs geometric spacing), so 16 chains leave a per-row standard deviation
  of roughly 0.13 nats: a floor for the mean absolute error that only more chains lower.

> {ISSUE_REFERENCE}
"""
    if args.quick:  # a smoke test: print only, keep the full run's results
        return
    md, csv = write_table("ais_accuracy", rows, notes, title="AIS accuracy on PPCA (dz=10, dx=50)")
    print(f"wrote {md} and {csv}")


if __name__ == "__main__":
    main()
