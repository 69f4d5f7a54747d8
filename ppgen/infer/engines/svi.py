"""SVI: a variational posterior of the global sites, and draws from it."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from pyro import poutine

from ppgen._utils import seeded
from ppgen.infer.engine import EngineResult, Problem, check_positive_int
from ppgen.infer.engines._pyro import (
    OPTIMIZER_OPTIONS,
    ElboOptions,
    PyroEngine,
    initial_values,
    optimize_once,
    param_store_scope,
)
from ppgen.infer.optim import NonFiniteLossError
from ppgen.models.base import GenerativeModel

__all__ = ["SVI"]


@dataclass(frozen=True)
class SviOptions(ElboOptions):
    """Options of ``method="svi"`` for models with global sites.

    Attributes
    ----------
    guide : str, FlowGuide or callable
        ``"normal"`` (mean-field), ``"mvn"`` (full-rank), ``"flow"`` (a normalizing flow), a
        :class:`ppgen.guides.FlowGuide` recipe, or your own guide over the global sites.
    init_values : dict, optional
        Starting values of global sites (override the model's).
    num_draws : int
        Posterior draws kept in ``Fit.samples`` (one chain).
    optimizer, max_steps, tol, lr, patience, clip_norm
        As in :func:`ppgen.infer.optim.optimize` (Adam, 3000 steps, tol 1e-5 by default).
    num_particles, subsample_size
        Particles of the ELBO, minibatch size of the data plate.
    """

    guide: Any = "normal"
    init_values: Mapping[str, Any] | None = None
    num_draws: int = 1000
    optimizer: str = "adam"
    max_steps: int = 3000
    tol: float = 1e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.num_draws, "num_draws")
        check_positive_int(self.max_steps, "max_steps")


class SVI(PyroEngine):
    """Stochastic variational inference of the global sites (local latents as in MAP)."""

    name: ClassVar[str] = "svi"
    kind: ClassVar[str] = "draws"
    loss_label: ClassVar[str] = "negative ELBO (nats)"
    Options = SviOptions
    parallel: ClassVar[str] = "rows"

    def run(self, problem: Problem, options: SviOptions) -> EngineResult:
        model, x, mask = problem.model, problem.x, problem.mask
        with param_store_scope():
            init = initial_values(problem, problem.seed, options.init_values)
            try:
                fitted, losses = optimize_once(
                    problem,
                    guide_kind=options.guide,
                    init=init,
                    num_particles=options.num_particles,
                    subsample_size=options.subsample_size,
                    desc="svi",
                    **{name: getattr(options, name) for name in OPTIMIZER_OPTIONS},
                )
            except NonFiniteLossError as exc:
                exc.result = EngineResult(
                    params=_median(exc.guide, model, x, mask), losses=exc.losses
                )
                raise
            ctx = problem.distributed
            # Ranks draw from their own streams; the kept draws must be identical on all.
            same = seeded(problem.seed, x.device) if ctx is not None else contextlib.nullcontext()
            with torch.no_grad(), same:
                traces = [
                    poutine.trace(fitted).get_trace(x, mask) for _ in range(options.num_draws)
                ]
                draws = {
                    k: torch.stack([t.nodes[k]["value"] for t in traces])
                    for k in model.global_sites
                }
                params = _median(fitted, model, x, mask)
        samples = {k: v.detach().unsqueeze(0) for k, v in draws.items()}
        return EngineResult(
            params=params,
            losses=np.asarray(losses, dtype=float),
            samples=samples,
            info={"n_steps": len(losses)},
        )


def _median(guide: Any, model: GenerativeModel, x: torch.Tensor, mask: torch.Tensor):
    with torch.no_grad():
        return {k: v.detach() for k, v in guide.median(x, mask).items() if k in model.global_sites}
