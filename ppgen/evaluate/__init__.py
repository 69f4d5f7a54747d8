"""Judging fitted models: bounds on the likelihood, MCMC diagnostics, predictive accuracy.

This layer never trains: every function takes a :class:`ppgen.Fit` and data, or (sample quality)
a real and a synthetic table.
"""

from ppgen.evaluate.ais import AISResult, BDMCResult, ais, bdmc
from ppgen.evaluate.bounds import Estimate, elbo, iwae
from ppgen.evaluate.diagnostics import ConvergenceWarning, diagnostics, loo, waic
from ppgen.evaluate.synthetic import (
    C2STResult,
    DCRResult,
    MMDResult,
    PRDCResult,
    QualityResult,
    c2st,
    dcr,
    mmd,
    prdc,
    quality,
)

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
]
# Sample quality (ppgen.evaluate.synthetic): two tables in, no fit needed.
__all__ += [
    "C2STResult",
    "DCRResult",
    "MMDResult",
    "PRDCResult",
    "QualityResult",
    "c2st",
    "dcr",
    "mmd",
    "prdc",
    "quality",
]
