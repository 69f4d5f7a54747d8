"""Accuracy and cost of ``ppgen.evaluate.decoder_ais`` on a linear generator with an exact answer.

    python benchmarks/decoder_ais.py            # d=10, k=3, sigma=0.2; T = 100, 1000, 10000
    python benchmarks/decoder_ais.py --quick    # smoke test (prints only): T = 30, 100

"PPCA in GAN clothing": the generator g(z) = W z + mu (W: 10 x 3, mu, entries N(0, 1)) with
Gaussian noise sigma = 0.2 has the exact marginal x ~ N(mu, W W^T + sigma^2 I). For each T:

- ``decoder_ais`` (16 chains, HMC L = 10, adaptive schedule, the true sigma) on 50 rows
  simulated from the model, against the exact mean log-likelihood;
- ``decoder_bdmc`` on 50 other simulated rows: forward (lower) and reverse (upper) AIS, their
  gap, and the exact mean of those rows;
- CPU seconds of each (one thread, tuning pass included).

One more row: sigma chosen by ``sigma="validate"`` on 200 validation rows (Wu et al.'s
protocol; default grid and validation T = 200), then AIS at T = 1000 on the 50 test rows,
against the exact value at the true sigma. Writes benchmarks/results/decoder_ais.md and .csv.
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
import torch  # noqa: E402

from ppgen.evaluate import decoder_ais, decoder_bdmc  # noqa: E402

D, K, SIGMA, ROWS, CHAINS = 10, 3, 0.2, 50, 16


def generator(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K, generator=g, dtype=torch.float64)
    mu = torch.randn(D, generator=g, dtype=torch.float64)
    return W, mu


def simulate(W, mu, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, K, generator=g, dtype=torch.float64)
    return z @ W.T + mu + SIGMA * torch.randn(n, D, generator=g, dtype=torch.float64)


def exact(W, mu, x) -> float:
    cov = W @ W.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)
    mvn = torch.distributions.MultivariateNormal(mu, cov)
    return float(mvn.log_prob(torch.as_tensor(np.asarray(x))).mean())


def cpu(fn):
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def estimate_row(res, T: int, truth: float, seconds: float) -> dict:
    return {
        "method": res.method,
        "T": T,
        "estimate": res.mean,
        "exact": truth,
        "error": res.mean - truth,
        "mc_se": res.mc_se,
        "acceptance": res.acceptance,
        "ais_cpu_s": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="100,1000,10000")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    steps = [30, 100] if args.quick else [int(s) for s in args.steps.split(",")]
    W, mu = generator()
    decoder = lambda z: z @ W.T + mu  # noqa: E731
    test = simulate(W, mu, ROWS, seed=1)
    truth = exact(W, mu, test)
    rows = []
    for T in steps:
        s_ais, res = cpu(
            lambda T=T: decoder_ais(
                decoder, test, n_latent=K, sigma=SIGMA, n_steps=T, n_chains=CHAINS, seed=0
            )
        )
        s_bdmc, b = cpu(
            lambda T=T: decoder_bdmc(
                decoder, n_latent=K, sigma=SIGMA, n_rows=ROWS, n_steps=T, n_chains=CHAINS, seed=2
            )
        )
        rows.append(
            {
                **estimate_row(res, T, truth, s_ais),
                "bdmc_lower": b.lower.mean,
                "bdmc_exact": exact(W, mu, b.data),
                "bdmc_upper": b.upper.mean,
                "bdmc_gap": b.gap,
                "bdmc_cpu_s": s_bdmc,
            }
        )
        print(rows[-1], flush=True)
    valid = simulate(W, mu, 200, seed=3)
    T = 100 if args.quick else 1000
    s_val, res = cpu(
        lambda: decoder_ais(
            decoder, test, n_latent=K, validation=valid, n_steps=T, n_chains=CHAINS, seed=0
        )
    )
    rows.append(estimate_row(res, T, truth, s_val))
    print(rows[-1], {"sigmas": res.selection.sigmas, "scores": res.selection.scores}, flush=True)
    if args.quick:
        return
    grid = ", ".join(
        f"{s:.3g}: {v:.3f}"
        for s, v in sorted(zip(res.selection.sigmas, res.selection.scores, strict=True))
    )
    notes = f"""
Linear generator g(z) = W z + mu, d = {D}, k = {K}, Gaussian noise sigma = {SIGMA} (W and mu
drawn N(0, 1), seed 0), float64, one thread. `estimate` is `decoder_ais` on {ROWS} simulated
test rows with the true sigma ({CHAINS} chains, HMC with 10 leapfrog steps, adaptive schedule,
tuning pass of max(64, T/10) transitions counted in `ais_cpu_s`); `exact` is the exact mean
log-likelihood N(mu, W W^T + sigma^2 I) of those rows; `error` = estimate - exact (nats/row);
`mc_se` the Monte-Carlo standard error of the estimate. BDMC on {ROWS} other simulated rows:
`bdmc_lower` (forward AIS), `bdmc_upper` (reverse AIS from the generating latents), the exact
mean of those rows in between, `bdmc_gap` = upper - lower; `bdmc_cpu_s` covers the simulation
and both passes.

The last row chooses sigma itself (Wu et al. 2017): the default grid (10 values from 0.01 to 2
times the rows' pooled sd, then a parabola in log sigma around the best) scored by AIS
(T = 200) on 200 separate validation rows; `error` is against the exact value at the true
sigma = {SIGMA}, and `ais_cpu_s` includes the validation. Validation scores (sigma: mean
nats/row): {grid}.

Reproduce: `python benchmarks/decoder_ais.py` (a few minutes on one core).
"""
    write_table(
        "decoder_ais", rows, notes, title=f"decoder_ais on a linear generator (d={D}, k={K})"
    )


if __name__ == "__main__":
    main()
