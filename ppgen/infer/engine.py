"""Inference engines: the protocol every fitting method follows, and the registry that names them.

An engine turns a :class:`Problem` (a built model and its encoded data) into an
:class:`EngineResult` (parameters, losses, draws); it never builds a :class:`~ppgen.Fit` --
:mod:`ppgen.infer.layouts` does that, in one place. :func:`ppgen.fit` reads everything it needs
to know about a method from here: which engine a method name means for a model
(:func:`resolve`), its options (:func:`parse_options`), what its result holds
(:attr:`Engine.kind`) and what its loss trace measures (:attr:`Engine.loss_label`).

The registry maps method names to ``"module:Class"`` strings and imports nothing until an
engine is used. A name may have several candidates, tried in registration order (latest first)
until one accepts the model: ``"svi"`` is minibatch training of the networks for amortized
models and variational inference of the global sites for the others.

Adding an engine::

    from ppgen.infer import engine

    engine.register("laplace", "mypackage.laplace:Laplace")
    ppgen.fit(model, data, method="laplace", my_option=3)
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ppgen._utils import check_positive_int  # re-exported: the engines validate with it
from ppgen.models.base import GenerativeModel, Params

__all__ = [
    "KINDS",
    "Engine",
    "EngineResult",
    "Problem",
    "check_positive_int",
    "engines_for",
    "get",
    "model_class",
    "names",
    "parse_options",
    "register",
    "resolve",
    "unregister",
]

#: What a fit can hold: a point estimate, independent posterior draws, MCMC chains, or trained
#: networks (see :attr:`ppgen.Fit.kind`).
KINDS = ("point", "draws", "mcmc", "networks")


@dataclass(frozen=True)
class Problem:
    """What an engine fits: a built model and its encoded data, on one device and dtype.

    Attributes
    ----------
    model : GenerativeModel
        A private, built copy of the user's model (engines may train its weights in place).
    x, mask : Tensor
        The encoded data, rows ``(n, p)`` or padded sequences ``(S, T, p)``.
    n_units : int
        The number of observations convergence tolerances are stated per: rows, or observed
        time steps of sequences.
    data : dict
        Further keyword arguments of the model's closed forms (``lengths`` for sequences).
    seed : int
        Everything random follows from it (the global RNGs are already seeded with it).
    progress : bool or None
        Show progress bars.
    log_jacobian : Tensor or None
        Per-row log-Jacobian of the encoding (rows layout): added to an encoded-scale log
        density it gives the density on the data's own scale, so engines can report figures
        on the scale of ``ppgen.evaluate``.
    distributed : ppgen.infer.distributed.Context or None
        Set by ``ppgen.fit(..., distributed=...)``: this rank's place in a data-parallel run
        (None: one process, the serial path). ``x`` then holds this rank's rows only.
    n_global : int or None
        Rows of the whole table across ranks (distributed runs; None otherwise): the plate scale.
    stream : callable or None
        A table streamed from files (``ppgen.fit(model, "data.parquet")``,
        :mod:`ppgen.infer.stream`): called with no argument, it yields the whole table as
        encoded chunks ``(x, mask, data)``; ``x`` and ``mask`` are then a seeded sample of it
        (the starts' rows). None for tables in memory.
    """

    model: GenerativeModel
    x: torch.Tensor
    mask: torch.Tensor
    n_units: int
    data: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    progress: bool | None = None
    log_jacobian: torch.Tensor | None = None
    distributed: Any = None
    n_global: int | None = None
    stream: Any = None


@dataclass
class EngineResult:
    """An engine's plain result; :mod:`ppgen.infer.layouts` turns it into a ``Fit``."""

    params: Params
    losses: np.ndarray
    samples: Params | None = None
    divergent: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Engine:
    """A fitting method. Subclasses set the class attributes, an ``Options`` frozen dataclass
    (every option with its default) and :meth:`run`; one engine per module under
    :mod:`ppgen.infer.engines`.
    """

    #: The method name users pass to :func:`ppgen.fit`; recorded as ``Fit.method``.
    name: ClassVar[str] = ""
    #: What the result holds, one of :data:`KINDS`.
    kind: ClassVar[str] = "point"
    #: What the loss trace means, for plot axes and the CLI.
    loss_label: ClassVar[str] = "loss (nats)"
    #: What one entry of the loss trace is, for plot axes.
    step_label: ClassVar[str] = "optimization step"
    #: How the engine runs under ``ppgen.fit(..., distributed=True)``: ``"rows"`` (each rank
    #: fits its share of the rows and the ranks reduce statistics or gradients), ``"chains"``
    #: (each rank runs a share of the chains on all rows, draws gathered), or ``""`` (refused).
    parallel: ClassVar[str] = ""

    @dataclass(frozen=True)
    class Options:
        """No options."""

    def accepts(self, model: GenerativeModel | type[GenerativeModel]) -> bool:
        """Whether this engine can fit ``model`` (an instance or a model class)."""
        raise NotImplementedError

    def run(self, problem: Problem, options: Any) -> EngineResult:
        """Fit ``problem`` with parsed ``options`` (an instance of :attr:`Options`).

        Raises :class:`~ppgen.NonFiniteLossError` with its ``result`` attribute set to an
        :class:`EngineResult` of the last good values when the loss diverges.
        """
        raise NotImplementedError

    def estimate(self, samples: Params) -> Params | None:
        """The point estimate implied by draws ``(chain, draw, ...)``, or None when the engine's
        estimate is not a function of its draws. Layouts call it after relabelling draws."""
        return None

    def option_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.Options))

    def __repr__(self) -> str:
        return f"<engine {self.name!r} ({type(self).__module__}:{type(self).__qualname__})>"


def model_class(model: GenerativeModel | type[GenerativeModel]) -> type[GenerativeModel]:
    """The class of ``model``, or ``model`` itself when it is a class (for ``accepts``)."""
    return model if isinstance(model, type) else type(model)


# -- registry -------------------------------------------------------------------------------------
# name -> targets, most recently registered first; targets are "module:Class" strings until used.
_REGISTRY: dict[str, list[str]] = {}
_LOADED: dict[str, Engine] = {}


def register(name: str, target: str) -> None:
    """Register the engine class at ``target`` (``"package.module:Class"``) under method
    ``name``. Nothing is imported until the engine is used. A name may hold several engines;
    the latest registered that accepts a model is used for it."""
    if ":" not in target:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    targets = _REGISTRY.setdefault(name, [])
    if target in targets:
        targets.remove(target)
    targets.insert(0, target)


def unregister(name: str, target: str | None = None) -> None:
    """Remove ``target`` (or every engine) from method ``name``."""
    targets = _REGISTRY.get(name, [])
    for t in list(targets) if target is None else [target]:
        if t in targets:
            targets.remove(t)
    if not targets:
        _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered method names, in registration order."""
    return tuple(_REGISTRY)


def _load(target: str) -> Engine:
    if target not in _LOADED:
        module, _, attr = target.partition(":")
        _LOADED[target] = getattr(importlib.import_module(module), attr)()
    return _LOADED[target]


def _unknown_method(method: Any) -> ValueError:
    return ValueError(f"method must be one of {names()}, got {method!r}")


def get(name: str, model: GenerativeModel | type[GenerativeModel] | None = None) -> Engine:
    """The engine registered as ``name`` (for ``model``: the one that accepts it, if any)."""
    if name not in _REGISTRY:
        raise _unknown_method(name)
    engines = [_load(t) for t in _REGISTRY[name]]
    if model is not None:
        for engine in engines:
            if engine.accepts(model):
                return engine
    # No candidate accepts the model: the most general one (registered first) explains why.
    return engines[-1]


def engines_for(model: GenerativeModel | type[GenerativeModel]) -> tuple[str, ...]:
    """The method names whose engine accepts ``model`` (an instance or a model class)."""
    return tuple(
        name for name in _REGISTRY if any(_load(t).accepts(model) for t in _REGISTRY[name])
    )


def resolve(method: str | None, model: GenerativeModel) -> Engine:
    """The engine that fits ``model`` by ``method`` (``None``: the model's ``default_method``).

    Raises
    ------
    ValueError
        For an unknown method, or one the model cannot be fitted by (the message lists those
        it can).
    """
    if method is None:
        method = model.default_method
    if not isinstance(method, str) or method not in _REGISTRY:
        raise _unknown_method(method)
    engine = get(method, model)
    if not engine.accepts(model):
        available = ", ".join(f"method={m!r}" for m in engines_for(model))
        raise ValueError(
            f"{type(model).__name__} is fitted by {available}; method={method!r} is not "
            f"available for it"
        )
    return engine


def parse_options(engine: Engine, options: Mapping[str, Any], *, also: tuple[str, ...] = ()) -> Any:
    """``options`` as the engine's frozen ``Options``.

    Raises
    ------
    ValueError
        Naming the unknown options and listing the valid ones (``also``: further names the
        caller accepts, e.g. the data layout's), the same message for every engine; or from the
        options' own checks of their values.
    """
    valid = engine.option_names()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown options for method={engine.name!r}: {unknown}; valid options are "
            f"{', '.join(sorted(valid + tuple(also)))}"
        )
    return engine.Options(**options)


for _name, _target in (
    ("map", "ppgen.infer.engines.map:MAP"),
    ("em", "ppgen.infer.engines.em:EM"),
    ("svi", "ppgen.infer.engines.svi:SVI"),
    ("svi", "ppgen.infer.engines.minibatch:MinibatchSVI"),
    ("nuts", "ppgen.infer.engines.nuts:NUTS"),
    ("cd", "ppgen.infer.engines.cd:CD"),
    ("hmc", "ppgen.infer.engines.hmc:HMC"),
):
    register(_name, _target)

# Issue 16: adversarial training of implicit models (GAN).
register("adversarial", "ppgen.infer.engines.adversarial:Adversarial")

# Issue 19: "nuts" is the batched masked NUTS (many chains as one tensor); Pyro's NUTS stays as
# "pyro-nuts" (and serves "nuts" where a model cannot be vectorized, or under distributed=True).
register("pyro-nuts", "ppgen.infer.engines.nuts:NUTS")
register("nuts", "ppgen.infer.engines.nuts_batched:BatchedNUTS")
unregister("nuts", "ppgen.infer.engines.nuts:NUTS")
