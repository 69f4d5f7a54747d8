"""Generative models, each a Pyro model/guide pair (see :class:`GenerativeModel`)."""

from ppgen.models.amortized import AmortizedModel
from ppgen.models.base import GenerativeModel
from ppgen.models.gmm import GaussianMixture
from ppgen.models.hmm import HMM
from ppgen.models.hvae import HierarchicalVAE
from ppgen.models.ppca import PPCA
from ppgen.models.vae import VAE

#: Every model class by name, for loading saved fits without unpickling.
MODELS: dict[str, type[GenerativeModel]] = {
    cls.__name__: cls for cls in (GaussianMixture, HMM, HierarchicalVAE, PPCA, VAE)
}

__all__ = [
    "HMM",
    "MODELS",
    "PPCA",
    "VAE",
    "AmortizedModel",
    "GaussianMixture",
    "GenerativeModel",
    "HierarchicalVAE",
]
