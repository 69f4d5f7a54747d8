"""ppgen: probabilistic generative models for statisticians.

Every model is a Pyro model/guide pair, fitted by :func:`fit` (MAP, EM, SVI or NUTS) and judged by
exact likelihoods where they exist.
"""

from ppgen import datasets, evaluate, guides, plot
from ppgen.data import Schema
from ppgen.impute import Imputer, pool, pool_fit
from ppgen.infer import Fit, NonFiniteLossError, fit
from ppgen.io import load
from ppgen.models import HMM, PPCA, VAE, GaussianMixture, GenerativeModel, HierarchicalVAE

__version__ = "0.1.0"

__all__ = [
    "HMM",
    "PPCA",
    "VAE",
    "Fit",
    "GaussianMixture",
    "GenerativeModel",
    "HierarchicalVAE",
    "Imputer",
    "NonFiniteLossError",
    "Schema",
    "datasets",
    "evaluate",
    "fit",
    "guides",
    "load",
    "pool",
    "pool_fit",
    "plot",
]
