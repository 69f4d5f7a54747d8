"""Reference posteriors for tests/infer/test_chees.py: long NumPyro NUTS runs, printed as numbers.

Run once in NumPyro's own venv (not a dependency of ppgen; see benchmarks/README.md)::

    OMP_NUM_THREADS=1 /work/venvs/numpyro/bin/python benchmarks/mcmc_reference.py

Models (the same as the tests and benchmarks/mcmc.py): Bayesian logistic regression on
scikit-learn's breast_cancer (569 x 30, columns standardized with the population sd;
intercept and coefficients N(0, 1)) and the non-centred eight schools (Rubin 1981; mu ~ N(0, 5),
tau ~ HalfCauchy(5), theta_tilde ~ N(0, 1), y ~ N(mu + tau theta_tilde, sigma)), as in
ppgen.testing.posteriors. For every scalar (and log tau): posterior mean, sd and their Monte
Carlo standard errors (ArviZ), 4 chains x 25,000 draws after 2,000 warm-up steps, target
acceptance 0.9.
"""

from __future__ import annotations

import json
import sys

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS
from sklearn.datasets import load_breast_cancer

jax.config.update("jax_enable_x64", True)

Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def logistic(X, y):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 1.0))
    beta = numpyro.sample("beta", dist.Normal(jnp.zeros(X.shape[1]), 1.0).to_event(1))
    numpyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)


def schools(sigma, y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", len(sigma)):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)


def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y.astype(float)


def reference(model, args, seed, draws=25_000, warmup=2_000):
    mcmc = MCMC(
        NUTS(model, target_accept_prob=0.9),
        num_warmup=warmup,
        num_samples=draws,
        num_chains=4,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(seed), *args)
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    if "tau" in samples:
        # The sd of tau itself is a poor check (its sample sd is skewed by the heavy right
        # tail); log tau is what the sampler moves in.
        samples["log_tau"] = np.log(samples["tau"])
    table = az.summary(az.from_dict(posterior=samples), kind="all", round_to="none")
    cols = ["mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "r_hat"]
    return {name: [float(row[c]) for c in cols] for name, row in table.iterrows()}


if __name__ == "__main__":
    numpyro.set_host_device_count(1)
    which = sys.argv[1:] or ["logistic", "schools"]
    out = {}
    if "logistic" in which:
        X, y = breast_cancer()
        out["logistic"] = reference(logistic, (jnp.asarray(X), jnp.asarray(y)), 1)
    if "schools" in which:
        out["schools"] = reference(schools, (jnp.asarray(SIGMA), jnp.asarray(Y)), 2)
    print(json.dumps(out, indent=1))
