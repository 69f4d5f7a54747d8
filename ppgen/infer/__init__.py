"""Inference: :func:`fit` (MAP, EM, SVI, NUTS) and its result :class:`Fit`."""

from ppgen.infer.fit import METHODS, fit
from ppgen.infer.optim import NonFiniteLossError
from ppgen.infer.result import Fit

__all__ = ["METHODS", "Fit", "NonFiniteLossError", "fit"]
