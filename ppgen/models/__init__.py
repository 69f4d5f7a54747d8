"""Generative models, each a Pyro model/guide pair (see :class:`GenerativeModel`).

The classes are imported on first use (PEP 562), so ``from ppgen.models import MODELS`` loads no
torch; :data:`MODELS` is the one registry of model names.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from ppgen.models.registry import MODELS, register_model, unregister_model

if TYPE_CHECKING:
    from ppgen.models.amortized import AmortizedModel
    from ppgen.models.base import GenerativeModel
    from ppgen.models.ebm import EBM
    from ppgen.models.fa import FactorAnalysis
    from ppgen.models.gmm import GaussianMixture
    from ppgen.models.hmm import HMM
    from ppgen.models.hvae import HierarchicalVAE
    from ppgen.models.ppca import PPCA
    from ppgen.models.rbm import RBM
    from ppgen.models.vae import VAE

_LAZY = {
    "AmortizedModel": "ppgen.models.amortized",
    "FactorAnalysis": "ppgen.models.fa",
    "GaussianMixture": "ppgen.models.gmm",
    "GenerativeModel": "ppgen.models.base",
    "HMM": "ppgen.models.hmm",
    "HierarchicalVAE": "ppgen.models.hvae",
    "PPCA": "ppgen.models.ppca",
    "VAE": "ppgen.models.vae",
    "EBM": "ppgen.models.ebm",
    "RBM": "ppgen.models.rbm",
}

__all__ = [
    "HMM",
    "MODELS",
    "PPCA",
    "VAE",
    "AmortizedModel",
    "FactorAnalysis",
    "GaussianMixture",
    "GenerativeModel",
    "HierarchicalVAE",
    "register_model",
    "unregister_model",
]
__all__ += ["EBM", "RBM"]  # energy-based models (issue 18)

# Issue 15: the diffusion model.
if TYPE_CHECKING:
    from ppgen.models.diffusion import Diffusion
_LAZY["Diffusion"] = "ppgen.models.diffusion"
__all__ += ["Diffusion"]

# Issue 16: the GAN.
if TYPE_CHECKING:
    from ppgen.models.gan import GAN
_LAZY["GAN"] = "ppgen.models.gan"
__all__ += ["GAN"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    # Submodules too (``ppgen.models.hmm``), as an eager package would have them.
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# Issue 21: not-MIWAE (the VAE with a self-masking missingness model).
if TYPE_CHECKING:
    from ppgen.models.notmiwae import NotMIWAE
_LAZY["NotMIWAE"] = "ppgen.models.notmiwae"
__all__ += ["NotMIWAE"]
