"""Training of amortized models: kept importable here; the engine is
:mod:`ppgen.infer.engines.minibatch` (``method="svi"`` for models with ``amortized = True``)."""

from __future__ import annotations

from typing import Any

from ppgen.infer.engines.minibatch import (
    ELBOS,
    OBJECTIVES,
    MinibatchOptions,
    MinibatchSVI,
    _ScaleLatents,
    _Trainer,
)
from ppgen.infer.fit import fit
from ppgen.infer.result import Fit
from ppgen.models.base import GenerativeModel

__all__ = ["ELBOS", "OBJECTIVES", "MinibatchOptions", "MinibatchSVI", "fit_amortized"]
# The loss helpers tests and benchmarks reach for.
_ = (_ScaleLatents, _Trainer)


def fit_amortized(model: GenerativeModel, data: Any, **kwargs: Any) -> Fit:
    """:func:`ppgen.fit` of an amortized model; options in :class:`MinibatchOptions`."""
    if not type(model).amortized:
        raise ValueError(f"{type(model).__name__} is not an amortized model")
    return fit(model, data, **kwargs)
