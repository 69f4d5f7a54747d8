"""Per-row importance log-weights of guide particles: the one implementation.

For a model with local latents ``z_i`` per row and a guide ``q(z_i | x_i)``, each of ``k``
particles ``z_ij ~ q(. | x_i)`` carries the log importance weight

    log w_ij = log p(x_i | z_ij, params) + kl_weight * [log p(z_ij | params) - log q(z_ij | x_i)]

summed over the row's own sample sites (the observation ``"x"`` and the local latents; global
sites are fixed at ``params`` and their prior does not enter). ``kl_weight = 1`` gives the
importance weights behind the ELBO and the IWAE bound (:mod:`ppgen.evaluate`); other values are
the KL warm-up of amortized training.

A model may provide a faster hook with the same draws and terms, declared by name:
``particle_log_weights(x, mask, k, kl_weight=1.0) -> (k, n)`` at the model's own module
parameters (the deep models compute it without Pyro's tracing). :func:`particle_log_weights`
calls the hook when ``type(model).implements("particle_log_weights")`` and no global parameters
are given, and otherwise the generic fallback: :func:`trace_particles` traces the guide inside a
particle plate and replays the model on its draws, :func:`weigh` sums the traced log densities.

This module sits in the models layer (it needs nothing above it) so that the models' own
methods (the amortized models' ``iwae_rows``, ``log_weights`` for MIWAE imputation), the
amortized trainer, :class:`ppgen.Fit` and :mod:`ppgen.evaluate` all share it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

__all__ = [
    "is_sample",
    "particle_log_weights",
    "site_rows",
    "sum_site_rows",
    "trace_particles",
    "weigh",
]


def is_sample(site: dict) -> bool:
    """Whether a trace node is a sample site (not a plate's subsample site)."""
    return site["type"] == "sample" and not site_is_subsample(site)


def site_rows(site: dict, name: str, particle_dim: int, k: int, n: int) -> torch.Tensor:
    """A traced site's log density (``site["log_prob"]``, after ``compute_log_prob``) summed to
    one value per (particle, row): shape ``(k, n)``.

    ``particle_dim`` is the (negative) dimension of the particle plate; the row axis is the
    site's ``"data"`` plate; any other plate dimension is summed over.
    """
    lp = site["log_prob"]
    nd = -particle_dim
    if lp.dim() > nd:
        raise ValueError(f"site {name!r} has more batch dimensions than its plates")
    lp = lp.reshape((1,) * (nd - lp.dim()) + tuple(lp.shape))
    data_dims = [f.dim for f in site["cond_indep_stack"] if f.name == "data"]
    if not data_dims:
        raise ValueError(
            f"site {name!r} is neither global nor inside the 'data' plate; it cannot be "
            "attributed to rows"
        )
    row_axis = nd + data_dims[0]
    others = [a for a in range(1, nd) if a != row_axis]
    if others:
        lp = lp.sum(others, keepdim=True)
    return lp.reshape(lp.shape[0], lp.shape[row_axis]).expand(k, n)


def sum_site_rows(
    trace: Any,
    keep: Callable[[str, dict], bool],
    particle_dim: int,
    k: int,
    n: int,
    weight: Callable[[str, dict], float] | None = None,
) -> torch.Tensor | float:
    """Sum of :func:`site_rows` over the sample sites of ``trace`` that ``keep(name, site)``
    accepts, each times ``weight(name, site)`` when given, in trace order; ``0.0`` when none."""
    total: torch.Tensor | float = 0.0
    for name, site in trace.nodes.items():
        if not is_sample(site) or not keep(name, site):
            continue
        lp = site_rows(site, name, particle_dim, k, n)
        w = 1.0 if weight is None else weight(name, site)
        total = total + (lp if w == 1.0 else w * lp)
    return total


def _local(model: Any) -> Callable[[str, dict], bool]:
    global_sites = model.global_sites
    return lambda name, site: name not in global_sites and not site_is_subsample(site)


def trace_particles(
    model: Any,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    k: int,
    params: Mapping[str, torch.Tensor] | None = None,
) -> tuple[Any, Any] | None:
    """The guide traced with ``k`` particles per row and the model replayed on its draws.

    The guide runs inside a ``"particles"`` plate left of the model's plates; the model's
    global sites are conditioned on ``params``. Returns ``(guide_trace, model_trace)``, or None
    when the guide samples no local latent (discrete latents summed out exactly, as in
    GaussianMixture: there is nothing to weigh).

    Raises
    ------
    ValueError
        When the model has both enumerated discrete and continuous local latents, or a local
        latent the guide does not sample.
    """
    particle_dim = -(model.max_plate_nesting + 1)
    program = model.model if not params else poutine.condition(model.model, data=dict(params))
    with pyro.plate("particles", k, dim=particle_dim):
        guide_trace = poutine.trace(model.guide).get_trace(x, mask)
        if not any(is_sample(s) for s in guide_trace.nodes.values()):
            return None
        if model.enumerated:
            raise ValueError(
                f"{type(model).__name__} has both enumerated discrete and continuous local "
                "latents; importance weights do not sum out the discrete ones yet"
            )
        model_trace = poutine.trace(poutine.replay(program, trace=guide_trace)).get_trace(x, mask)
    local = _local(model)
    for name, site in model_trace.nodes.items():
        if is_sample(site) and local(name, site) and not site["is_observed"]:
            if name not in guide_trace:
                raise ValueError(
                    f"latent site {name!r} is not in the guide; importance weights need a guide "
                    "for every local latent"
                )
    return guide_trace, model_trace


def weigh(
    model: Any, x: torch.Tensor, k: int, traces: tuple[Any, Any], kl_weight: float = 1.0
) -> torch.Tensor:
    """Log weights ``(k, n)`` of the particles of :func:`trace_particles` on the rows ``x``:
    the model's local sites minus the guide's, in trace order, the latent terms times
    ``kl_weight``."""
    guide_trace, model_trace = traces
    n, particle_dim, local = x.shape[0], -(model.max_plate_nesting + 1), _local(model)
    model_trace.compute_log_prob(site_filter=local)
    guide_trace.compute_log_prob(site_filter=local)

    def latent_weight(name: str, site: dict) -> float:
        return 1.0 if site["is_observed"] else kl_weight

    log_w = x.new_zeros(k, n)
    log_w = log_w + sum_site_rows(model_trace, local, particle_dim, k, n, latent_weight)
    return log_w - sum_site_rows(guide_trace, local, particle_dim, k, n, latent_weight)


def particle_log_weights(
    model: Any,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    k: int,
    *,
    params: Mapping[str, torch.Tensor] | None = None,
    kl_weight: float = 1.0,
) -> torch.Tensor | None:
    """Log importance weights of ``k`` guide particles per row, ``(k, n)``.

    The model's ``particle_log_weights`` hook when it implements one (and ``params`` is empty:
    the hook evaluates the model at its own module parameters), else the traced fallback
    (:func:`trace_particles` then :func:`weigh`). Differentiable in the model's parameters when
    the guide's draws are reparameterized. None when the guide samples no local latent.
    """
    if not params and type(model).implements("particle_log_weights"):
        return model.particle_log_weights(x, mask, k, kl_weight)
    traces = trace_particles(model, x, mask, k, params)
    return None if traces is None else weigh(model, x, k, traces, kl_weight)
