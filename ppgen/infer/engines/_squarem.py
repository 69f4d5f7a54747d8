"""SQUAREM: squared extrapolation of an EM map (Varadhan & Roland 2008), with its monotone
safeguard, for ``method="em"`` with ``accelerate=True``.

EM is a fixed-point iteration ``theta -> M(theta)`` that converges linearly, slowly when the
fraction of missing information is large (overlapping components, hundreds of iterations on a
272-row table). SQUAREM takes two EM steps ``theta1 = M(theta0)``, ``theta2 = M(theta1)``,
forms ``r = theta1 - theta0`` and ``v = theta2 - theta1 - r``, and extrapolates along the
quadratic path ``theta' = theta0 - 2 a r + a^2 v`` with the steplength ``a = -|r| / |v|``
(their scheme S3); then one more EM step from ``theta'`` (the "stabilization" step) makes the
next iterate. The last step is the model's own M-step, so every iterate has the model's
structure (a constrained covariance stays in its family) whatever the extrapolation did.

Safeguards, so that the fixed point and the monotone objective of EM are kept:

- the extrapolated point must be in every site's support (the model's priors say which: a
  simplex, positive-definite precisions, positive rates); otherwise ``a`` is moved halfway to
  -1 until it is (``a = -1`` is ``theta2``, the plain two steps);
- the objective at the next iterate ``M(theta')`` must be finite and at least the plain
  step's (at ``theta1``); otherwise the cycle falls back to ``theta2``, where plain EM would
  be. (The objective at ``theta'`` itself is not used: for a constrained covariance structure
  ``theta'`` may lie outside the model, where the likelihood can exceed the model's.)

So the recorded log joints never decrease, and a run stops, as plain EM does, when one plain
EM step (the first of a cycle, between two iterates of the model) gains less than the
tolerance; the returned parameters are those the last objective was computed at.

Reference
---------
Varadhan, R. & Roland, C. (2008). Simple and globally convergent methods for accelerating the
convergence of any EM algorithm. *Scandinavian Journal of Statistics* 35(2), 335-353.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ppgen.models.base import Params

__all__ = ["squarem"]

#: SQUAREM's default growth of the largest steplength after a step that used it (``mstep``).
_GROWTH = 4.0


def _valid(supports: dict | Callable[[dict], bool], params: dict) -> bool:
    """Whether every site of ``params`` (tensors, or arrays of :func:`_arrays`) lies in its
    support and is finite; ``supports`` a dict of constraints or the model's own test."""
    if callable(supports):
        return supports(params)
    for name, value in params.items():
        finite = np.isfinite(value) if isinstance(value, np.ndarray) else torch.isfinite(value)
        if not bool(finite.all()):
            return False
        support = supports.get(name)
        if support is not None and not bool(support.check(torch.as_tensor(value)).all()):
            return False
    return True


def _arrays(params: Params) -> dict:
    """``params`` for the extrapolation's arithmetic: CPU tensors as numpy arrays sharing their
    memory (a few element-wise operations on small arrays cost several times less in numpy
    than in torch), other tensors as they are; :func:`_tensors` turns them back."""
    return {
        k: v.numpy() if isinstance(v, torch.Tensor) and v.device.type == "cpu" else v
        for k, v in params.items()
    }


def _tensors(params: dict) -> Params:
    return {k: torch.as_tensor(v) for k, v in params.items()}


def squarem(
    step: Callable[[Params], tuple[Params, float]],
    params: Params,
    supports: dict | Callable[[dict], bool],
    *,
    tol: float,
    max_steps: int,
    objective: list[float] | None = None,
    on_step: Callable[[], None] | None = None,
) -> tuple[Params, list[float], bool]:
    """Run the accelerated EM from ``params``.

    Parameters
    ----------
    step : callable
        ``step(params) -> (M(params), objective at params)``: one EM iteration.
    params : dict of Tensor
        The start.
    supports : dict or callable
        Site name -> constraint (``support.check(value)``) the extrapolated values must meet,
        or a function telling whether a whole set of values is valid. ``step`` and ``params``
        may be on numpy arrays instead of tensors (a model's fused kernel): the iterates stay
        arrays.
    tol : float
        Stop when one plain EM step gains at most this much (the total, not per unit).
    max_steps : int
        Most objective evaluations (EM steps) in ``objective``, the previous ones included.
    objective : list of float, optional
        Objectives of a resumed run.
    on_step : callable, optional
        Called after every EM step (a progress bar).

    Returns
    -------
    params, objective, done
        As :meth:`ppgen.infer.engines.em.EM._iterate`: once converged, the parameters the last
        objective was computed at; the objectives of the accepted iterates (non-decreasing);
        whether the run is over (converged or at ``max_steps``).
    """
    objective = [] if objective is None else list(objective)
    names = list(params)
    # A step on arrays (a model's fused kernel, ppgen.infer.engines.em) gets arrays back.
    on_arrays = all(isinstance(v, np.ndarray) for v in params.values())
    largest = 1.0  # the steplength cap, grown after it is used
    fallback = None  # (theta2, objective at theta1) of the last extrapolated cycle

    def evaluate(p: Params) -> tuple[Params, float]:
        new, value = step(p)
        if on_step is not None:
            on_step()
        return new, float(value)

    while len(objective) < max_steps:
        theta1, value0 = evaluate(params)
        if fallback is not None:
            # The extrapolated cycle's iterate must not be below the plain step before it;
            # else the cycle is replaced by plain EM's two steps (theta2).
            previous, floor = fallback
            fallback = None
            if not (math.isfinite(value0) and value0 >= floor):
                params = previous
                largest = max(1.0, largest / _GROWTH**2)
                continue
        objective.append(value0)
        if not math.isfinite(value0):
            return params, objective, True
        if len(objective) >= max_steps:
            return theta1, objective, True
        theta2, value1 = evaluate(theta1)
        objective.append(value1)
        # Plain EM's stopping rule, on a plain step between two iterates of the model.
        if value1 - value0 <= tol or not math.isfinite(value1):
            return theta1, objective, True
        if len(objective) >= max_steps:
            return theta2, objective, True
        a0, a1, a2 = _arrays(params), _arrays(theta1), _arrays(theta2)
        r = {k: a1[k] - a0[k] for k in names}
        v = {k: a2[k] - a1[k] - r[k] for k in names}
        r2 = sum(float((r[k] * r[k]).sum()) for k in names)
        v2 = sum(float((v[k] * v[k]).sum()) for k in names)
        if not (v2 > 0 and math.isfinite(r2) and math.isfinite(v2)):
            params = theta2
            continue
        raw = -math.sqrt(r2 / v2)
        alpha = min(max(raw, -largest), -1.0)
        if raw <= -largest:  # SQUAREM's rule: a step at the cap raises the cap
            largest *= _GROWTH
        while True:
            trial = {k: a0[k] - 2 * alpha * r[k] + alpha * alpha * v[k] for k in names}
            if alpha == -1.0 or _valid(supports, trial):
                break
            alpha = (alpha - 1.0) / 2 if alpha < -1.01 else -1.0
        if alpha == -1.0:  # the extrapolation is theta2 itself: plain steps
            params = theta2
            continue
        # The objective at the extrapolated point is not compared: it may lie outside the
        # model's parameter space (a constrained covariance structure), where the likelihood
        # can exceed the model's. The EM step from it returns into the model; that iterate is
        # checked against plain EM at the next evaluation.
        theta3, _ = evaluate(trial if on_arrays else _tensors(trial))
        if not _valid({}, theta3):
            params = theta2
            continue
        params, fallback = theta3, (theta2, value1)
    return params, objective, True
