"""Judging fitted models: bounds on the likelihood, MCMC diagnostics, predictive accuracy.

This layer never trains: every function takes a :class:`ppgen.Fit` and data.
"""

from ppgen.evaluate.ais import AISResult, BDMCResult, ais, bdmc
from ppgen.evaluate.bounds import Estimate, elbo, iwae
from ppgen.evaluate.diagnostics import ConvergenceWarning, diagnostics, loo, waic
from ppgen.evaluate.nested import nested_rhat

__all__ = [
    "AISResult",
    "BDMCResult",
    "ConvergenceWarning",
    "Estimate",
    "ais",
    "bdmc",
    "diagnostics",
    "elbo",
    "iwae",
    "loo",
    "waic",
    "nested_rhat",
]
