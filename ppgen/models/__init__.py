"""Generative models, each a Pyro model/guide pair (see :class:`GenerativeModel`)."""

from ppgen.models.base import GenerativeModel
from ppgen.models.gmm import GaussianMixture
from ppgen.models.ppca import PPCA

#: Every model class by name, for loading saved fits without unpickling.
MODELS: dict[str, type[GenerativeModel]] = {cls.__name__: cls for cls in (GaussianMixture, PPCA)}

__all__ = ["MODELS", "GaussianMixture", "GenerativeModel", "PPCA"]
