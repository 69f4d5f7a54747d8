"""ppgen: probabilistic generative models for statisticians.

Every model is a Pyro model/guide pair, fitted by :func:`fit` (MAP, EM, SVI or NUTS) and judged by
exact likelihoods where they exist.
"""

# The public names are imported on first use (PEP 562): ``import ppgen`` and the ``ppgen``
# command's --help load no torch, and ``from ppgen import fit`` works as before.

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ppgen import datasets, evaluate, guides, plot, select
    from ppgen.comparison import compare
    from ppgen.data import Schema
    from ppgen.impute import Imputer, pool, pool_fit
    from ppgen.infer import Fit, NonFiniteLossError, fit
    from ppgen.infer.chees import MCMCResult, mcmc
    from ppgen.io import load
    from ppgen.models import (
        HMM,
        PPCA,
        VAE,
        FactorAnalysis,
        GaussianMixture,
        GenerativeModel,
        HierarchicalVAE,
    )
    from ppgen.models.ebm import EBM
    from ppgen.models.rbm import RBM

__version__ = "0.1.0"

__all__ = [
    "HMM",
    "PPCA",
    "VAE",
    "ConvergenceWarning",
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
    "FactorAnalysis",
    "select",
    "MCMCResult",
    "mcmc",
]
__all__ += ["EBM", "RBM"]  # energy-based models (issue 18)
__all__ += ["compare"]

#: Where each public name lives; modules (``datasets`` ...) are submodules of ppgen.
_LAZY = {
    **dict.fromkeys(("datasets", "evaluate", "guides", "plot"), None),
    # The module ppgen.select is itself callable (ppgen.select("gmm", data)): a function of the
    # same name would be shadowed by the submodule as soon as anything imports it.
    "select": None,
    "Schema": "ppgen.data",
    "Imputer": "ppgen.impute",
    "pool": "ppgen.impute",
    "pool_fit": "ppgen.impute",
    "ConvergenceWarning": "ppgen._utils",
    "Fit": "ppgen.infer",
    "NonFiniteLossError": "ppgen.infer",
    "fit": "ppgen.infer",
    "load": "ppgen.io",
    "MCMCResult": "ppgen.infer.chees",
    "mcmc": "ppgen.infer.chees",
    **dict.fromkeys(
        ("HMM", "PPCA", "VAE", "GaussianMixture", "GenerativeModel", "HierarchicalVAE"),
        "ppgen.models",
    ),
    **dict.fromkeys(
        ("FactorAnalysis",),
        "ppgen.models",
    ),
    "EBM": "ppgen.models",
    "RBM": "ppgen.models",
}
_LAZY["compare"] = "ppgen.comparison"

# Issue 17: the exact-likelihood families and the generative classifier.
_LAZY.update(
    {
        "Autoregressive": "ppgen.models.autoregressive",
        "Flow": "ppgen.models.flow",
        "GenerativeClassifier": "ppgen.classify",
    }
)
__all__ += ["Autoregressive", "Flow", "GenerativeClassifier"]
if TYPE_CHECKING:
    from ppgen.classify import GenerativeClassifier
    from ppgen.models.autoregressive import Autoregressive
    from ppgen.models.flow import Flow


# Issue 15: the diffusion model.
if TYPE_CHECKING:
    from ppgen.models import Diffusion
_LAZY["Diffusion"] = "ppgen.models"
__all__ += ["Diffusion"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        # Other submodules (``ppgen.models``, ``ppgen.infer``), as an eager package has them.
        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
