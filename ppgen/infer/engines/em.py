"""EM: closed-form expectation-maximization, one loop for every model that declares
:meth:`~ppgen.models.base.GenerativeModel.em_step` (GaussianMixture, PPCA, HMM). The objective is
what the model's ``em_step`` returns: the log-likelihood for ``prior=None`` (maximum likelihood,
the default), the log joint with ``prior="default"`` (the posterior mode)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyro
import torch

from ppgen._utils import ConvergenceWarning, progress_bar
from ppgen.infer.engine import Engine, EngineResult, Problem, check_positive_int, model_class
from ppgen.infer.engines._pyro import initial_values
from ppgen.models.base import GenerativeModel, Params

__all__ = ["EM"]


@dataclass(frozen=True)
class EmOptions:
    """Options of ``method="em"``.

    Attributes
    ----------
    n_init : int
        Restarts from the model's starting values with seeds ``seed, seed + 1, ...``; the
        highest final log joint is kept (then the model's :meth:`em_restarts`, if any).
    init_values : dict, optional
        Starting values of global sites (override the model's).
    max_steps : int
        Iterations per run at most.
    tol : float
        Stop when an iteration gains less than ``tol`` nats per observation (row, or observed
        time step of sequences). The default 1e-8 runs EM to its fixed point: scikit-learn's
        1e-3 stops slow EM runs up to a nat short of the optimum (earthquake Poisson mixtures),
        and the extra iterations are cheap next to the starts. A run that reaches ``max_steps``
        first warns (:class:`ppgen.ConvergenceWarning`) and sets ``Fit.converged`` False.
    """

    n_init: int = 1
    init_values: Mapping[str, Any] | None = None
    max_steps: int = 1000
    tol: float = 1e-8

    def __post_init__(self) -> None:
        check_positive_int(self.n_init, "n_init")
        check_positive_int(self.max_steps, "max_steps")


class EM(Engine):
    """Expectation-maximization over the model's ``em_step``: restarts, then the model's own
    further starting points, the best log joint kept."""

    name: ClassVar[str] = "em"
    kind: ClassVar[str] = "point"
    loss_label: ClassVar[str] = "negative log-likelihood (nats)"  # log joint with a prior
    step_label: ClassVar[str] = "EM iteration"
    Options = EmOptions

    def accepts(self, model: GenerativeModel | type[GenerativeModel]) -> bool:
        cls = model_class(model)
        return not cls.amortized and cls.implements("em_step")

    def run(self, problem: Problem, options: EmOptions) -> EngineResult:
        model, n_init = problem.model, options.n_init
        best = None
        for restart in range(n_init):
            init = initial_values(problem, problem.seed + restart, options.init_values)
            desc = f"em {restart + 1}/{n_init}" if n_init > 1 else "em"
            params, objective = self._iterate(problem, init, options, desc)
            if best is None or objective[-1] > best[1][-1]:
                best = (params, objective)
        # The model's own starts, each made from the best estimate so far.
        extra = model.em_restarts(problem.x, problem.mask, lambda: best[0], **problem.data)
        for k, start in enumerate(extra):
            params, objective = self._iterate(problem, start, options, f"em start {k + 1}")
            if objective[-1] > best[1][-1]:
                best = (params, objective)
        losses = -np.asarray(best[1])
        converged = len(losses) < options.max_steps
        if not converged:
            warnings.warn(
                f"EM stopped at max_steps={options.max_steps} still gaining more than "
                f"tol={options.tol:g} nats per observation; raise max_steps",
                ConvergenceWarning,
                stacklevel=2,
            )
        info = {"n_init": n_init, "n_steps": len(losses), "converged": converged}
        return EngineResult(params=best[0], losses=losses, info=info)

    @staticmethod
    def _iterate(
        problem: Problem, params: Params, options: EmOptions, desc: str
    ) -> tuple[Params, list[float]]:
        """EM from ``params`` until the log joint gains less than ``tol`` per observation; the
        parameters the last log joint was computed at, and the log joints."""
        model, x, mask = problem.model, problem.x, problem.mask
        objective: list[float] = []
        bar = progress_bar(options.max_steps, desc, problem.progress)
        # The M-step's values are valid by construction: argument checks would only cost time.
        with torch.no_grad(), pyro.validation_enabled(False):
            for _ in range(options.max_steps):
                new, log_joint = model.em_step(x, mask, params, **problem.data)
                objective.append(float(log_joint))
                bar.update()
                if (
                    len(objective) > 1
                    and objective[-1] - objective[-2] <= options.tol * problem.n_units
                ):
                    break
                params = new
        bar.close()
        return params, objective
