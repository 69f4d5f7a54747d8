"""ppgen: probabilistic generative models for statisticians.

Every model is a Pyro model/guide pair, fitted by :func:`fit` (MAP, EM, SVI or NUTS) and judged by
exact likelihoods where they exist.
"""

from ppgen import datasets, plot
from ppgen.data import Schema
from ppgen.infer import Fit, NonFiniteLossError, fit
from ppgen.io import load
from ppgen.models import PPCA, GaussianMixture, GenerativeModel

__version__ = "0.1.0"

__all__ = [
    "PPCA",
    "Fit",
    "GaussianMixture",
    "GenerativeModel",
    "NonFiniteLossError",
    "Schema",
    "datasets",
    "fit",
    "load",
    "plot",
]
