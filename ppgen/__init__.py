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

if TYPE_CHECKING:  # for type checkers and editors; __all__ is _LAZY's keys
    from ppgen import datasets, evaluate, guides, plot, select
    from ppgen._utils import ConvergenceWarning
    from ppgen.classify import GenerativeClassifier
    from ppgen.comparison import compare
    from ppgen.data import Schema
    from ppgen.impute import Imputer, ampute, pool, pool_fit, tipping_point
    from ppgen.infer import Fit, NonFiniteLossError, fit
    from ppgen.infer.chees import MCMCResult, mcmc
    from ppgen.io import load
    from ppgen.models import (
        EBM,
        HMM,
        PPCA,
        RBM,
        VAE,
        Diffusion,
        FactorAnalysis,
        GaussianMixture,
        GenerativeModel,
        HierarchicalVAE,
    )
    from ppgen.models.autoregressive import Autoregressive
    from ppgen.models.flow import Flow
    from ppgen.models.gan import GAN
    from ppgen.models.notmiwae import NotMIWAE

__version__ = "0.1.0"

#: Where each public name lives (None: the name is a submodule of ppgen). One table, so that
#: adding a public name is one line.
_LAZY: dict[str, str | None] = {
    # modules; ppgen.select is itself callable (ppgen.select("gmm", data)): a function of the
    # same name would be shadowed by the submodule as soon as anything imports it
    **dict.fromkeys(("datasets", "evaluate", "guides", "plot", "select"), None),
    # inference
    "fit": "ppgen.infer",
    "Fit": "ppgen.infer",
    "NonFiniteLossError": "ppgen.infer",
    "ConvergenceWarning": "ppgen._utils",
    "mcmc": "ppgen.infer.chees",
    "MCMCResult": "ppgen.infer.chees",
    "load": "ppgen.io",
    # data and tasks
    "Schema": "ppgen.data",
    "Imputer": "ppgen.impute",
    "pool": "ppgen.impute",
    "pool_fit": "ppgen.impute",
    "ampute": "ppgen.impute",
    "tipping_point": "ppgen.impute",
    "compare": "ppgen.comparison",
    "GenerativeClassifier": "ppgen.classify",
    # models
    **dict.fromkeys(
        (
            "GenerativeModel",
            "GaussianMixture",
            "PPCA",
            "FactorAnalysis",
            "HMM",
            "VAE",
            "HierarchicalVAE",
            "Diffusion",
            "RBM",
            "EBM",
        ),
        "ppgen.models",
    ),
    "Autoregressive": "ppgen.models.autoregressive",
    "Flow": "ppgen.models.flow",
}
_LAZY["GAN"] = "ppgen.models.gan"  # issue 16
_LAZY["NotMIWAE"] = "ppgen.models.notmiwae"  # issue 21: the VAE with MNAR self-masking

__all__ = list(_LAZY)


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
