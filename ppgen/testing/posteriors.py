"""Posteriors that MCMC tests and benchmarks share: Pyro programs and their data.

Bayesian logistic regression on scikit-learn's breast_cancer (569 x 30, columns standardized
with the population sd; intercept and coefficients N(0, 1)) and the non-centred eight schools
(Rubin 1981: mu ~ N(0, 5), tau ~ HalfCauchy(5), theta_tilde ~ N(0, 1),
y ~ N(mu + tau theta_tilde, sigma)). ``benchmarks/mcmc_reference.py`` writes the same models in
NumPyro for the reference runs.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

__all__ = ["SCHOOLS_SIGMA", "SCHOOLS_Y", "breast_cancer", "eight_schools", "logistic", "schools"]

#: Eight schools (Rubin 1981): estimated effects and their standard errors.
SCHOOLS_Y = (28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0)
SCHOOLS_SIGMA = (15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0)


def logistic(X: torch.Tensor, y: torch.Tensor) -> None:
    """Bayesian logistic regression, intercept and coefficients N(0, 1)."""
    alpha = pyro.sample("alpha", dist.Normal(torch.tensor(0.0, dtype=X.dtype), 1.0))
    beta = pyro.sample("beta", dist.Normal(torch.zeros(X.shape[1], dtype=X.dtype), 1.0).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)


def schools(sigma: torch.Tensor, y: torch.Tensor) -> None:
    """The non-centred eight schools."""
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=y.dtype), 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(torch.tensor(5.0, dtype=y.dtype)))
    with pyro.plate("school", len(sigma)):
        theta_tilde = pyro.sample("theta_tilde", dist.Normal(torch.zeros((), dtype=y.dtype), 1.0))
        pyro.sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)


def breast_cancer(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """breast_cancer's features standardized (population sd) and its 0/1 labels."""
    from sklearn.datasets import load_breast_cancer  # scikit-learn is imported on use

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    return torch.tensor(X, dtype=dtype), torch.tensor(y, dtype=dtype)


def eight_schools(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sigma, y)`` of the eight schools, the arguments of :func:`schools`."""
    return torch.tensor(SCHOOLS_SIGMA, dtype=dtype), torch.tensor(SCHOOLS_Y, dtype=dtype)
