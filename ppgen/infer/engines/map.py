"""MAP: the posterior mode of the global sites by L-BFGS (or Adam) on the Pyro program."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyro
import torch

from ppgen._utils import ConvergenceWarning
from ppgen.infer.engine import EngineResult, Problem, check_positive_int
from ppgen.infer.engines._pyro import (
    ElboOptions,
    PyroEngine,
    initial_values,
    optimize_once,
    param_store_scope,
)
from ppgen.infer.optim import NonFiniteLossError

__all__ = ["MAP"]


@dataclass(frozen=True)
class MapOptions(ElboOptions):
    """Options of ``method="map"``.

    Attributes
    ----------
    n_init : int
        Restarts from the model's starting values with seeds ``seed, seed + 1, ...``; the
        lowest final loss is kept.
    init_values : dict, optional
        Starting values of global sites (override the model's).
    optimizer : {"lbfgs", "adam", "clipped_adam"}, optional
        Default L-BFGS, or Adam with ``subsample_size`` (L-BFGS needs a deterministic loss).
    max_steps, tol : optional
        Default 200 and 1e-9 for L-BFGS, 5000 and 1e-7 for Adam (see
        :func:`ppgen.infer.optim.optimize`).
    lr, patience, clip_norm
        As in :func:`ppgen.infer.optim.optimize`.
    num_particles : int
        Particles of the ELBO (the loss is exact without local latents to sample).
    subsample_size : int, optional
        Minibatch size of the data plate.
    """

    n_init: int = 1
    init_values: Mapping[str, Any] | None = None
    optimizer: str | None = None
    max_steps: int | None = None
    tol: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.n_init, "n_init")
        if self.max_steps is not None:
            check_positive_int(self.max_steps, "max_steps")

    def optimizer_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~ppgen.infer.optim.optimize`, defaults filled in."""
        optimizer = self.optimizer
        if optimizer is None:
            optimizer = "adam" if self.subsample_size else "lbfgs"
        lbfgs = optimizer == "lbfgs"
        return {
            "optimizer": optimizer,
            "max_steps": self.max_steps if self.max_steps is not None else 200 if lbfgs else 5000,
            "tol": self.tol if self.tol is not None else 1e-9 if lbfgs else 1e-7,
            "lr": self.lr,
            "patience": self.patience,
            "clip_norm": self.clip_norm,
        }


class MAP(PyroEngine):
    """Posterior mode of the global sites: a delta guide fitted by L-BFGS (or Adam), local latents
    summed out (enumeration) or integrated out (the model's ``collapsed`` program)."""

    name: ClassVar[str] = "map"
    kind: ClassVar[str] = "point"
    loss_label: ClassVar[str] = "negative log joint (nats)"
    Options = MapOptions
    parallel: ClassVar[str] = "rows"

    def run(self, problem: Problem, options: MapOptions) -> EngineResult:
        with param_store_scope():
            return self.optimize(problem, options)

    def optimize(self, problem: Problem, options: MapOptions) -> EngineResult:
        """The restarts of :meth:`run` in the current parameter store (NUTS starts from it)."""
        x, mask = problem.x, problem.mask
        n_init = options.n_init
        best = None
        for restart in range(n_init):
            pyro.clear_param_store()
            init = initial_values(problem, problem.seed + restart, options.init_values)
            try:
                guide, losses = optimize_once(
                    problem,
                    guide_kind="delta",
                    init=init,
                    num_particles=options.num_particles,
                    subsample_size=options.subsample_size,
                    desc=f"map {restart + 1}/{n_init}" if n_init > 1 else "map",
                    **options.optimizer_options(),
                )
            except NonFiniteLossError as exc:
                # The parameters keep their last good values: hand them back with the losses.
                exc.result = EngineResult(
                    params=_median(exc.guide, x, mask), losses=exc.losses, info={"n_init": n_init}
                )
                raise
            params = _median(guide, x, mask)
            if best is None or losses[-1] < best[1][-1]:
                best = (params, losses)
        max_steps = options.optimizer_options()["max_steps"]
        converged = len(best[1]) < max_steps
        if not converged:
            warnings.warn(
                f"the optimizer stopped at max_steps={max_steps} before its tolerance was met; "
                "raise max_steps",
                ConvergenceWarning,
                stacklevel=2,
            )
        info = {"n_init": n_init, "n_steps": len(best[1]), "converged": converged}
        return EngineResult(params=best[0], losses=np.asarray(best[1], dtype=float), info=info)


def _median(guide: Any, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {k: v.detach().clone() for k, v in guide.median(x, mask).items()}
