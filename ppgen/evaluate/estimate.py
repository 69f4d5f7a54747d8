"""What the bounds (:mod:`~ppgen.evaluate.bounds`) and AIS (:mod:`~ppgen.evaluate.ais`) share:
the per-row result type, its construction, the rows a fit can be judged on, the exact
log-likelihood when the model has one, and the test that tells an exact estimate from a noisy one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ppgen.data.schema import Encoded
from ppgen.infer.weights import check_count

__all__ = [
    "EXACT_GUIDE",
    "NO_LOCAL_LATENTS",
    "Estimate",
    "check_count",
    "encode_rows",
    "equal_weights",
    "exact_per_row",
    "frozen",
    "jacobian",
    "make_estimate",
]

#: Why an estimate is exact when the model has no continuous local latent.
NO_LOCAL_LATENTS = (
    "exact: the model has no continuous local latents (discrete ones are summed out), so this "
    "is the exact log-likelihood at fit.params and the Monte-Carlo error is 0"
)
#: Why an estimate is exact when every particle of a row carries the same weight.
EXACT_GUIDE = (
    "exact: the guide is the model's exact posterior (every importance weight of a row is "
    "equal), so the bound is the exact log-likelihood and the Monte-Carlo error is 0"
)


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo estimate of a per-row quantity (nats), on the data's original scale.

    Attributes
    ----------
    per_row : ndarray
        The estimate for each row, shape (n,).
    mean : float
        Mean over rows: the number to compare models by (like :meth:`ppgen.Fit.score`).
    se : float
        Standard error of ``mean`` over rows (sampling variability of the data).
    mc_se : float
        Monte-Carlo standard error of ``mean`` (variability of the particles); 0 when the
        estimate is exact, NaN when it cannot be estimated (a single particle).
    exact : bool
        True when the estimate is the exact log-likelihood: the model has no continuous local
        latent, or its guide is the exact posterior (GaussianMixture, PPCA). :attr:`note` says
        which; ``repr`` and ``str`` show it.
    note : str
        The sentence that explains an exact estimate ("" otherwise).
    """

    per_row: np.ndarray = field(repr=False)
    mean: float
    se: float
    mc_se: float
    exact: bool = field(default=False, kw_only=True)
    note: str = field(default="", kw_only=True, repr=False)

    def __float__(self) -> float:
        return float(self.mean)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr
        )
        note = f", note={self.note!r}" if self.note else ""
        return f"{type(self).__name__}({shown}{note})"

    def __str__(self) -> str:
        text = f"{self.mean:.4f} nats per row (se {self.se:.4f}, mc se {self.mc_se:.4f})"
        return f"{text}; {self.note}" if self.note else text


def make_estimate(per_row: np.ndarray, mc_var_per_row: np.ndarray, note: str = "") -> Estimate:
    """An :class:`Estimate` from per-row values and their Monte-Carlo variances (exact, with
    ``note`` as the reason, when ``note`` is given)."""
    per_row = frozen(per_row)
    n = len(per_row)
    se = float(np.std(per_row, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    mc_se = float(math.sqrt(np.sum(mc_var_per_row)) / n)
    return Estimate(
        per_row=per_row,
        mean=float(np.mean(per_row)),
        se=se,
        mc_se=mc_se,
        exact=bool(note),
        note=note,
    )


def frozen(a: Any) -> np.ndarray:
    """A read-only float array (result fields must not be changed in place)."""
    a = np.asarray(a, dtype=float)
    a.setflags(write=False)
    return a


def encode_rows(fit: Any, data: Any) -> Encoded:
    """Encode ``data`` for a model of independent rows; sequence models are refused."""
    if fit.model.sequential:
        raise ValueError(
            f"{type(fit.model).__name__} scores whole sequences and its likelihood is exact: "
            "use fit.log_prob; per-row bounds and AIS are for models of independent rows"
        )
    return fit.encode(data)


def jacobian(fit: Any, x: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The encoding's log-Jacobian of each row (float64; standardization, and the log or logit
    of positive and bounded columns, which depends on ``x``): add it to an encoded-scale log
    density to get the density on the data's original scale."""
    return fit.schema.log_abs_det_jacobian(mask, dtype=torch.float64, x=x).cpu().numpy()


def exact_per_row(fit: Any, x: torch.Tensor, mask: torch.Tensor) -> np.ndarray | None:
    """Exact log-likelihood per row at ``fit.params`` on the original scale, or None when the
    model has no closed form."""
    try:
        with torch.no_grad():
            lp = fit.model.log_prob(x, mask, dict(fit.params))
    except NotImplementedError:
        return None
    return lp.double().cpu().numpy() + jacobian(fit, x, mask)


def equal_weights(log_w: np.ndarray, dtype: torch.dtype) -> bool:
    """Whether every row's log weights ``(k, n)`` are equal up to rounding in ``dtype``: the
    proposal is then the exact posterior and the estimate is exact. Never true for one
    particle, which cannot tell."""
    if log_w.shape[0] < 2:
        return False
    # Rounding grows with the terms the weights are computed from, not with the weights
    # themselves (raw-scale PPCA: quadratic forms of size 1e5 cancel to a log weight of -40),
    # so allow sqrt(eps): Monte-Carlo spreads of an inexact guide are many orders larger.
    tol = np.sqrt(torch.finfo(dtype).eps) * (1.0 + np.abs(log_w).max(0))
    return bool(np.all(np.ptp(log_w, axis=0) <= tol))
