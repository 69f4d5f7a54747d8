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
    from ppgen import datasets, evaluate, guides, plot
    from ppgen.data import Schema
    from ppgen.impute import Imputer, ampute, pool, pool_fit, tipping_point
    from ppgen.infer import Fit, NonFiniteLossError, fit
    from ppgen.io import load
    from ppgen.models import (
        HMM,
        PPCA,
        VAE,
        GaussianMixture,
        GenerativeModel,
        HierarchicalVAE,
    )

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
]

#: Where each public name lives; modules (``datasets`` ...) are submodules of ppgen.
_LAZY = {
    **dict.fromkeys(("datasets", "evaluate", "guides", "plot"), None),
    "Schema": "ppgen.data",
    "Imputer": "ppgen.impute",
    "pool": "ppgen.impute",
    "pool_fit": "ppgen.impute",
    "ConvergenceWarning": "ppgen._utils",
    "Fit": "ppgen.infer",
    "NonFiniteLossError": "ppgen.infer",
    "fit": "ppgen.infer",
    "load": "ppgen.io",
    **dict.fromkeys(
        ("HMM", "PPCA", "VAE", "GaussianMixture", "GenerativeModel", "HierarchicalVAE"),
        "ppgen.models",
    ),
}

# Imputation II (issue 21): MNAR sensitivity analysis and amputation.
__all__ += ["ampute", "tipping_point"]
_LAZY.update(dict.fromkeys(("ampute", "tipping_point"), "ppgen.impute"))


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
