"""Check a closed-form fit against the Pyro model it was derived from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from torch.distributions import biject_to


def pyro_log_joint_and_gradient(fit: Any, program: Callable | None = None) -> tuple[float, float]:
    """The Pyro model's log joint at ``fit.params`` (discrete sites enumerated) and the largest
    absolute gradient of it in unconstrained space: an EM fixed point must have that gradient
    near zero. ``program`` is ``fit.model.model`` unless given (e.g. PPCA's ``collapsed``)."""
    model, x, mask = fit.model, fit.train.x, fit.train.mask
    priors = model.priors(x)
    free = {
        k: biject_to(priors[k].support).inv(v).detach().requires_grad_()
        for k, v in fit.params.items()
    }
    values = {k: biject_to(priors[k].support)(u) for k, u in free.items()}
    conditioned = poutine.condition(program or model.model, data=values)
    log_joint = -TraceEnum_ELBO(max_plate_nesting=model.max_plate_nesting).differentiable_loss(
        conditioned, lambda *a, **k: None, x, mask
    )
    grads = torch.autograd.grad(log_joint, list(free.values()))
    return float(log_joint), max(g.abs().max().item() for g in grads)
