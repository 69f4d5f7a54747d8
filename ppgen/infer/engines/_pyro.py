"""What the Pyro-program engines (MAP, SVI, NUTS) and EM share: starting values, the program to
fit, the guide over the global sites and one optimization run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta, AutoGuideList, AutoMultivariateNormal, AutoNormal
from pyro.infer.autoguide.initialization import init_to_value

from ppgen.guides.flows import FlowGuide
from ppgen.infer import distributed as dist
from ppgen.infer.engine import Engine, Problem, check_positive_int, model_class
from ppgen.infer.optim import optimize
from ppgen.models.base import GenerativeModel, Params

__all__ = [
    "OPTIMIZER_OPTIONS",
    "ElboOptions",
    "PyroEngine",
    "initial_values",
    "make_guide",
    "optimize_once",
    "program",
]


@dataclass(frozen=True)
class ElboOptions:
    """The options MAP and SVI share: the ELBO's particles and minibatches, the optimizer's
    learning rate, patience and gradient clipping (see :func:`~ppgen.infer.optim.optimize`)."""

    lr: float | None = None
    patience: int = 100
    clip_norm: float | None = 10.0
    num_particles: int = 1
    subsample_size: int | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.num_particles, "num_particles")


#: The options of :func:`~ppgen.infer.optim.optimize` that MAP and SVI pass on.
OPTIMIZER_OPTIONS = ("optimizer", "max_steps", "tol", "lr", "patience", "clip_norm")


class PyroEngine(Engine):
    """An engine over the model's Pyro program and its global sites (MAP, SVI, NUTS): it
    accepts every model that is not amortized."""

    def accepts(self, model: GenerativeModel | type[GenerativeModel]) -> bool:
        cls = model_class(model)
        # An unnormalized density (energy-based models) has no MAP or posterior without log Z.
        return not cls.amortized and not cls.unnormalized


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def program(model: GenerativeModel) -> Callable:
    """The Pyro program to fit globals on: the collapsed model when local latents integrate out."""
    return model.collapsed if model.collapsed is not None else model.model


def initial_values(problem: Problem, seed: int, init_values: Mapping[str, Any] | None) -> Params:
    """The model's starting values for seed ``seed``, updated by the user's ``init_values``."""
    model, x = problem.model, problem.x
    if init_values and set(model.global_sites) <= set(init_values):
        values = {}  # a warm start sets every site: skip the model's (screened, costly) starts
    else:
        values = model.init_params(x, problem.mask, _generator(seed))
    if init_values:
        unknown = set(init_values) - set(model.global_sites)
        if unknown:
            raise ValueError(
                f"init_values has unknown sites {sorted(unknown)}; expected {model.global_sites}"
            )
        values.update(
            {k: torch.as_tensor(v, dtype=x.dtype, device=x.device) for k, v in init_values.items()}
        )
    return values


def make_guide(model: GenerativeModel, prog: Callable, kind: Any, init: Params) -> Callable:
    """An autoguide of ``kind`` over the global sites, with the model's local guide if any."""
    exposed = poutine.block(prog, expose=list(model.global_sites))
    loc_fn = init_to_value(values=init)
    if kind == "delta":
        globals_guide = AutoDelta(exposed, init_loc_fn=loc_fn)
    elif kind == "normal":
        globals_guide = AutoNormal(exposed, init_loc_fn=loc_fn, init_scale=0.01)
    elif kind == "mvn":
        globals_guide = AutoMultivariateNormal(exposed, init_loc_fn=loc_fn, init_scale=0.01)
    elif kind == "flow" or isinstance(kind, FlowGuide):
        # A recipe, not a guide: each fit builds its own flow over its own program.
        recipe = kind if isinstance(kind, FlowGuide) else FlowGuide()
        globals_guide = recipe.build(exposed, init_loc_fn=loc_fn)
    elif callable(kind):
        globals_guide = kind
    else:
        raise ValueError(
            f"guide must be 'normal', 'mvn', 'flow', a FlowGuide or a callable guide, got {kind!r}"
        )
    if prog == model.collapsed or not type(model).implements("guide"):
        return globals_guide
    guide = AutoGuideList(prog)
    guide.append(globals_guide)
    guide.append(model.guide)
    return guide


def optimize_once(
    problem: Problem,
    *,
    guide_kind: Any,
    init: Params,
    num_particles: int,
    subsample_size: int | None,
    desc: str,
    **optimizer_options: Any,
) -> tuple[Callable, Any]:
    """One run of :func:`~ppgen.infer.optim.optimize` of the ELBO of a fresh guide; returns the
    guide and the losses. A :class:`~ppgen.NonFiniteLossError` carries the guide (``guide``)."""
    model, x, mask = problem.model, problem.x, problem.mask
    prog = program(model)
    guide = make_guide(model, prog, guide_kind, init)
    elbo_class = TraceEnum_ELBO if model.enumerated else Trace_ELBO
    elbo = elbo_class(max_plate_nesting=model.max_plate_nesting, num_particles=num_particles)
    ctx, fit_prog, fit_guide, weight = problem.distributed, prog, guide, 1.0
    if ctx is not None and problem.n_global is not None:
        # This rank's rows stand for the whole table: the data plate is scaled to the global N,
        # and the ranks' gradients are averaged by their minibatch sizes (optimize's sync).
        n_local = int(x.shape[0])
        scale = dist.GlobalPlate(problem.n_global, n_local)
        fit_prog, fit_guide = scale(prog), scale(guide)
        weight = float(min(subsample_size or n_local, n_local))

    def loss_fn() -> torch.Tensor:
        return elbo.differentiable_loss(fit_prog, fit_guide, x, mask, subsample_size)

    try:
        losses = optimize(
            loss_fn,
            progress=problem.progress,
            desc=desc,
            distributed=ctx,
            weight=weight,
            **optimizer_options,
        )
    except FloatingPointError as exc:
        exc.guide = guide
        raise
    return guide, losses


def param_store_scope():
    """A private Pyro parameter store for one fit: nothing leaks into the global one."""
    return pyro.get_param_store().scope()
