"""Bulk ESS per CPU-second: ppgen.mcmc (ChEES-HMC, batched NUTS) against Pyro and NumPyro.

For each model and sampler: the minimum over scalars of ArviZ's bulk effective sample size,
divided by the total CPU time of the run (warm-up, sampling and any JIT compilation; one thread
everywhere; ``time.process_time`` of the process that samples, which counts all its threads).
Models: Bayesian logistic regression on breast_cancer (569 x 30 standardized, N(0, 1) priors)
and the non-centred eight schools, as in tests/infer/test_chees.py; and two ppgen models through
``ppgen.fit`` (``--models gmm ppca``): GaussianMixture(2) on faithful and PPCA(1) on four wine
columns, by ``method="hmc"`` (ChEES), ``"nuts"`` (batched NUTS) and ``"pyro-nuts"`` (Pyro's
NUTS, 2 chains x (300 + 400), today's reference), ESS and R-hat over identifiable quantities
(the relabelled weights and component means; ``W W^T + sigma^2 I`` and the mean), CPU time
including the MAP start.

* ppgen: ``ppgen.mcmc(model, ..., kernel="chees")`` and ``kernel="nuts"`` (masked NUTS, trees
  in lockstep during warm-up, chains free after it), 64 chains, float64.
* Pyro: ``pyro.infer.NUTS`` with and without ``jit_compile``, 4 chains one after another.
* NumPyro (its own venv, ``--numpyro PYTHON``; not a ppgen dependency): NUTS, 4 chains,
  ``chain_method="parallel"`` (4 host devices) and ``"vectorized"``, float64.

Sizes (per chain, warm-up + draws; chosen to fit a contended 2-core machine):
ppgen 64 chains x (300 + 200), Pyro 4 x (150 + 150) and
NumPyro 4 x (1,000 + 1,000). Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mcmc.py --numpyro /work/venvs/numpyro/bin/python

Writes results/mcmc.md and results/mcmc.csv; ``--scaling`` writes results/mcmc_scaling.md
(CPU time of one batched gradient against the number of chains).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from _common import pin_threads, write_table

pin_threads(1)

import numpy as np  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import ppgen  # noqa: E402
from ppgen import _arviz  # noqa: E402
from ppgen.testing.posteriors import breast_cancer, eight_schools, logistic, schools  # noqa: E402


def data(name):
    if name == "logistic":
        return logistic, breast_cancer()
    return schools, eight_schools()


def min_ess(samples) -> tuple[float, float]:
    table = _arviz.summary({k: np.asarray(v) for k, v in samples.items()})
    return float(table["ess_bulk"].min()), float(table["r_hat"].max())


def run_ppgen(name, chains, warmup, draws, seed=0, kernel="chees"):
    model, args = data(name)
    start = time.process_time()
    result = ppgen.mcmc(
        model,
        *args,
        num_chains=chains,
        num_warmup=warmup,
        num_samples=draws,
        seed=seed,
        kernel=kernel,
        target_accept_prob=0.8 if name == "logistic" else 0.9,
    )
    cpu = time.process_time() - start
    ess, rhat = min_ess(result.samples)
    return {
        "sampler": f"ppgen {kernel} ({chains} chains)",
        "warmup+draws": f"{warmup}+{draws}",
        "cpu_s": cpu,
        "min_bulk_ess": ess,
        "max_rhat": rhat,
        "divergences": result.divergences,
        # Batched gradient evaluations after warm-up: ChEES's chains take the same steps;
        # NUTS's take their own, the busiest chain's count is what the batch paid.
        "grad_evals": int(result.sample_stats["n_steps"].sum(1).max()),
    }


def identifiable(name, samples) -> dict[str, np.ndarray]:
    """Quantities the posterior identifies: the GMM's relabelled weights and means; PPCA's
    implied covariance W W^T + sigma^2 I and mean (W only up to rotation)."""
    if name == "gmm":
        return {"weights": samples["weights"].numpy(), "locs": samples["locs"].numpy()}
    W, noise = samples["W"], samples["noise"]
    eye = torch.eye(W.shape[-2], dtype=W.dtype)
    cov = W @ W.transpose(-1, -2) + noise[..., None, None] * eye
    return {"cov": cov.numpy(), "loc": samples["loc"].numpy()}


def run_fit(name, method, chains, warmup, draws):
    """A ppgen model through ppgen.fit: GMM(2) on faithful or PPCA(1) on four wine columns."""
    if name == "gmm":
        model, table = ppgen.GaussianMixture(2), ppgen.datasets.load("faithful")
    else:
        model, table = ppgen.PPCA(1), ppgen.datasets.load("wine").iloc[:, :4]
    start = time.process_time()
    fit = ppgen.fit(
        model,
        table,
        method=method,
        seed=0,
        num_chains=chains,
        warmup_steps=warmup,
        num_samples=draws,
        progress=False,
    )
    cpu = time.process_time() - start
    ess, rhat = min_ess(identifiable(name, fit.samples))
    return {
        "sampler": f"ppgen fit {method} ({chains} chains)",
        "warmup+draws": f"{warmup}+{draws}",
        "cpu_s": cpu,
        "min_bulk_ess": ess,
        "max_rhat": rhat,
        "divergences": int(np.asarray(fit.divergent).sum()),
    }


def run_pyro(name, jit, warmup, draws, chains=4):
    from pyro.infer import MCMC, NUTS

    model, args = data(name)
    per_chain = []
    start = time.process_time()
    for c in range(chains):
        pyro.set_rng_seed(c)
        kernel = NUTS(
            model,
            jit_compile=jit,
            ignore_jit_warnings=True,
            target_accept_prob=0.8 if name == "logistic" else 0.9,
        )
        mc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, disable_progbar=True)
        mc.run(*args)
        per_chain.append({k: v.numpy() for k, v in mc.get_samples().items()})
    cpu = time.process_time() - start
    samples = {k: np.stack([d[k] for d in per_chain]) for k in per_chain[0]}
    ess, rhat = min_ess(samples)
    return {
        "sampler": f"pyro nuts{' jit' if jit else ''} (4 chains)",
        "warmup+draws": f"{warmup}+{draws}",
        "cpu_s": cpu,
        "min_bulk_ess": ess,
        "max_rhat": rhat,
    }


NUMPYRO_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpyro
    numpyro.set_host_device_count(4)
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    from numpyro.infer import MCMC, NUTS
    import arviz as az
    name, method, warmup, draws = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sys.path.insert(0, sys.argv[5])
    from mcmc_reference import SIGMA, Y, breast_cancer, logistic, schools  # same models
    if name == "logistic":
        X, y = breast_cancer()
        args, model, target = (jnp.asarray(X), jnp.asarray(y)), logistic, 0.8
    else:
        args, model, target = (jnp.asarray(SIGMA), jnp.asarray(Y)), schools, 0.9
    start = time.process_time()
    mcmc = MCMC(NUTS(model, target_accept_prob=target), num_warmup=warmup, num_samples=draws,
                num_chains=4, chain_method=method, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), *args)
    s = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    cpu = time.process_time() - start
    t = az.summary(az.from_dict(posterior=s), kind="diagnostics", round_to="none")
    print(json.dumps({"cpu_s": cpu, "min_bulk_ess": float(t.ess_bulk.min()),
                      "max_rhat": float(t.r_hat.max())}))
    """
)


def run_numpyro(python, name, method, warmup, draws):
    env = {
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
        "OMP_NUM_THREADS": "1",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [python, "-c", NUMPYRO_SCRIPT, name, method, str(warmup), str(draws), str(HERE)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "sampler": f"numpyro nuts {method} (4 chains)",
        "warmup+draws": f"{warmup}+{draws}",
        **row,
    }


def scaling(chains=(1, 4, 16, 64, 256), reps=20) -> None:
    """CPU time of one batched log density + gradient of the logistic regression against the
    number of chains: the fixed cost (Python, Pyro's trace, vmap) is paid once per step."""
    from ppgen.infer import hmc
    from ppgen.infer.potential import Potential

    potential = Potential(logistic, breast_cancer())
    rows = []
    for c in chains:
        u = 0.1 * torch.randn(c, potential.dim, dtype=torch.float64)
        # Warm: the first call finds out whether vmap runs the model, the second compiles the
        # batch size (see ppgen.infer.potential); the timed calls run the compiled function.
        hmc.point(u, potential)
        hmc.point(u, potential)
        start = time.process_time()
        for _ in range(reps):
            hmc.point(u, potential)
        cpu = (time.process_time() - start) / reps
        rows.append({"chains": c, "ms_per_gradient": 1e3 * cpu, "us_per_chain": 1e6 * cpu / c})
        print(rows[-1], flush=True)
    notes = (
        "Logistic regression (569 x 30), float64, one thread: CPU time of one batched "
        f"potential + gradient (hmc.point, the compiled potential), mean of {reps}. On a GPU "
        "the fixed part (TorchScript's dispatch of the recorded operations) stays and the "
        "per-chain part nearly vanishes until the device is full."
    )
    write_table("mcmc_scaling", rows, notes, title="MCMC: gradient cost against chains")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numpyro", help="python of a venv with numpyro, jax, arviz, sklearn")
    parser.add_argument("--models", nargs="+", default=["logistic", "schools"])
    parser.add_argument("--no-pyro", action="store_true")
    parser.add_argument("--kernels", nargs="+", default=["chees", "nuts"])
    parser.add_argument("--table", default="mcmc", help="results/<table>.md and .csv")
    parser.add_argument("--scaling", action="store_true", help="only the gradient-cost table")
    args = parser.parse_args()
    if args.scaling:
        scaling()
        return
    rows = []
    for name in args.models:
        if name in ("gmm", "ppca"):
            found = [
                run_fit(name, "hmc", 32, 300, 200),
                run_fit(name, "nuts", 32, 300, 200),
                run_fit(name, "pyro-nuts", 2, 300, 400),
            ]
            for row in found:
                rows.append(
                    {"model": name, **row, "ess_per_cpu_s": row["min_bulk_ess"] / row["cpu_s"]}
                )
                print(rows[-1], flush=True)
            continue
        found = [run_ppgen(name, 64, 300, 200, kernel=k) for k in args.kernels]
        if not args.no_pyro:
            found += [run_pyro(name, False, 150, 150), run_pyro(name, True, 150, 150)]
        if args.numpyro:
            found += [
                run_numpyro(args.numpyro, name, m, 1000, 1000) for m in ("parallel", "vectorized")
            ]
        for row in found:
            row = {"model": name, **row, "ess_per_cpu_s": row["min_bulk_ess"] / row["cpu_s"]}
            rows.append(row)
            print(row, flush=True)
        best_ppgen = max(
            r["ess_per_cpu_s"]
            for r in rows
            if r["model"] == name and r["sampler"].startswith("ppgen")
        )
        for r in rows:
            if r["model"] == name:
                r["ppgen_best_over_this"] = best_ppgen / r["ess_per_cpu_s"]
    notes = (
        "Bulk ESS per CPU-second = min over scalars of ArviZ's bulk ESS / CPU seconds of the "
        "whole run (warm-up, sampling, JIT compilation), one thread. ppgen_best_over_this: the "
        "best ppgen row's ESS/CPU-s divided by this row's. Sizes are per chain. One run each, "
        "on a shared machine: CPU time, not wall time, is compared."
    )
    write_table(args.table, rows, notes, title="MCMC: bulk ESS per CPU-second")


if __name__ == "__main__":
    main()
