"""Normalizing-flow guides: an amortized flow for local latents and a flow over global latents.

Both push a Gaussian through a stack of zuko's masked autoregressive transforms, applied in
their one-pass direction (:math:`y_i = f(x_i \\mid x_{<i}, c)`), so that *sampling* is the cheap
direction: this is the inverse autoregressive flow of Kingma et al. (2016), the right way round
for a guide, which samples once and scores its own samples. The log-density of each draw is
computed with the draw and cached, so Pyro's ELBO never inverts the flow.

References
----------
Kingma, D. P. et al. (2016). Improved variational inference with inverse autoregressive flow.
NeurIPS. Durkan, C. et al. (2019). Neural spline flows. NeurIPS. Papamakarios, G. et al. (2021).
Normalizing flows for probabilistic modeling and inference. JMLR.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoContinuous
from pyro.infer.autoguide.initialization import init_to_median
from pyro.nn import PyroParam
from pyro.nn.module import to_pyro_module_
from torch.distributions import AffineTransform, Transform
from zuko.nn import MaskedMLP
from zuko.transforms import (
    AutoregressiveTransform,
    ComposedTransform,
    DependentTransform,
    MonotonicAffineTransform,
    MonotonicRQSTransform,
)
from zuko.utils import broadcast

__all__ = ["KINDS", "AmortizedFlow", "AutoFlow", "FlowDistribution", "FlowGuide"]

#: Flow families offered: affine autoregressive (IAF), rational-quadratic spline autoregressive
#: (neural spline flow, sampled in its one-pass direction) and affine coupling (RealNVP: two
#: passes, so scoring a value the flow did not draw is as cheap as sampling).
KINDS = ("iaf", "nsf", "coupling")


class FlowDistribution(dist.TorchDistribution):
    """The push-forward of ``base`` through ``transform``, as a Pyro distribution.

    ``z = transform(e)`` with ``e ~ base``; the density follows from the change of variables,
    ``log q(z) = log base(e) - log|det d transform / d e|``. :meth:`rsample` computes both in
    one pass and caches the log-density of the draw (the role of
    :class:`pyro.contrib.zuko.ZukoToPyro`'s cache), so :meth:`log_prob` of the distribution's
    own sample costs nothing; any other value is inverted first, which for an autoregressive
    flow takes one pass per latent dimension.

    Parameters
    ----------
    base : TorchDistribution
        Base distribution with event shape ``(d,)``; must be reparameterizable.
    transform : torch.distributions.Transform
        Bijection of ``R^d`` (event dimension 1) in the sampling direction, with
        ``call_and_ladj`` (zuko's transforms and torch's, once zuko is imported).
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, base: dist.TorchDistribution, transform: Transform) -> None:
        if len(base.event_shape) != 1:
            raise ValueError(f"base must have one event dimension, got {tuple(base.event_shape)}")
        self.base = base
        self.transform = transform
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    def rsample_and_log_prob(
        self, sample_shape: Sequence[int] = ()
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized draw and its log-density, from one pass through the flow."""
        e = self.base.rsample(torch.Size(sample_shape))
        z, ladj = self.transform.call_and_ladj(e)
        return z, self.base.log_prob(e) - ladj

    def rsample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        z, log_q = self.rsample_and_log_prob(sample_shape)
        # Only the last draw is kept: a guide scores the sample it just drew, and a longer cache
        # would hold every draw's graph alive.
        self._cache = (z, log_q)
        return z

    def sample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._cache is not None and value is self._cache[0]:
            return self._cache[1]
        e, ladj_inverse = self.transform.inv.call_and_ladj(value)
        return self.base.log_prob(e) + ladj_inverse

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> FlowDistribution:
        # The transform broadcasts its context against the (expanded) base draws.
        return FlowDistribution(self.base.expand(torch.Size(batch_shape)), self.transform)


def _univariate(kind: str, bins: int) -> tuple[Callable[..., Transform], list[tuple[int, ...]]]:
    if kind == "nsf":
        return MonotonicRQSTransform, [(bins,), (bins,), (bins - 1,)]
    return MonotonicAffineTransform, [(), ()]


class _AutoregressiveLayer(torch.nn.Module):
    """One masked autoregressive transform: ``y_i = f(x_i; phi_i(x_<i, c))``.

    Written on zuko's masked network and transforms rather than its lazy modules, which are
    abstract base classes and so cannot be turned into Pyro modules
    (``pyro.nn.module.to_pyro_module_`` fails on their metaclass); this layer can.
    """

    def __init__(
        self,
        features: int,
        context: int,
        order: torch.Tensor,
        passes: int,
        univariate: Callable[..., Transform],
        shapes: list[tuple[int, ...]],
        hidden: Sequence[int],
    ) -> None:
        super().__init__()
        self.univariate, self.shapes = univariate, shapes
        self.sizes = [math.prod(s) for s in shapes]
        total = sum(self.sizes)
        self.passes = min(max(passes, 1), features)
        # Dimensions in the same group (of ``passes`` groups along ``order``) are transformed
        # together: one group = no dependence (elementwise), ``features`` groups = fully
        # autoregressive, two = coupling.
        group = torch.div(order, math.ceil(features / self.passes), rounding_mode="floor")
        adjacency = group[:, None] > group
        adjacency = torch.cat([adjacency, adjacency.new_ones(features, context)], dim=1)
        adjacency = adjacency.repeat_interleave(total, dim=0)
        if adjacency.any():
            self.hyper: torch.nn.Module | None = MaskedMLP(adjacency, hidden_features=hidden)
            last = [m for m in self.hyper.modules() if isinstance(m, torch.nn.Linear)][-1]
            # Zero output layer: the transform starts as the identity.
            torch.nn.init.zeros_(last.weight)
            torch.nn.init.zeros_(last.bias)
            self.phi = None
        else:  # one dimension and no context: the parameters are plain constants
            self.hyper = None
            self.phi = torch.nn.Parameter(torch.zeros(features * total))

    def _meta(self, context: torch.Tensor | None, x: torch.Tensor) -> Transform:
        if self.hyper is None:
            phi = self.phi.expand(x.shape[:-1] + self.phi.shape)
        else:
            if context is not None:
                x, context = broadcast(x, context, ignore=1)
                x = torch.cat([x, context], dim=-1)
            phi = self.hyper(x)
        phi = phi.unflatten(-1, (-1, sum(self.sizes))).split(self.sizes, dim=-1)
        phi = [p.reshape(p.shape[:-1] + s) for p, s in zip(phi, self.shapes, strict=True)]
        return DependentTransform(self.univariate(*phi), 1)

    def forward(self, context: torch.Tensor | None = None) -> Transform:
        return AutoregressiveTransform(partial(self._meta, context), self.passes)


class AmortizedFlow(torch.nn.Module):
    """A conditional normalizing flow on top of a Gaussian guide: ``q(z | x) = T_c # base``.

    ``z = T_K(... T_1(e; c) ...; c)`` with ``e`` drawn from ``base`` (the encoder's Gaussian)
    and each ``T_k`` a masked autoregressive transform whose parameters are a masked network of
    the previous dimensions of its input and of the context ``c`` (the encoder's features).
    The orders of the dimensions alternate between transforms. The last layer of every network
    starts at zero, so the flow starts as the identity and the flow guide starts exactly where
    the Gaussian guide is.

    Parameters
    ----------
    n_latent : int
        Dimension of ``z``.
    context_dim : int
        Dimension of the context (0: an unconditional flow).
    kind : {"iaf", "nsf", "coupling"}
        ``"iaf"``: affine inverse autoregressive flow (Kingma et al. 2016). ``"nsf"``: monotone
        rational-quadratic splines (Durkan et al. 2019), applied to values in [-5, 5] and the
        identity outside, which suits latents under a standard normal prior. ``"coupling"``:
        affine coupling in two passes (RealNVP), cheap in both directions.
    transforms : int
        Number of transforms stacked.
    hidden : sequence of int
        Hidden widths of each transform's masked network.
    bins : int
        Spline bins (``kind="nsf"`` only).

    Notes
    -----
    A plain ``torch.nn.Module``: its parameters are trained with its owner's
    (``model.parameters()``, as :func:`ppgen.infer.amortized.fit_amortized` does). To train it
    through Pyro's parameter store instead, register it with ``pyro.module`` or convert it with
    ``pyro.nn.module.to_pyro_module_`` (as :class:`AutoFlow` does). Dtype and device are the
    module's: move it with ``.to(...)`` alongside the encoder whose context it reads.
    """

    def __init__(
        self,
        n_latent: int,
        context_dim: int,
        kind: str = "iaf",
        transforms: int = 2,
        hidden: Sequence[int] = (64, 64),
        bins: int = 8,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if n_latent < 1 or context_dim < 0 or transforms < 1:
            raise ValueError(
                "n_latent and transforms must be positive and context_dim non-negative, got "
                f"{n_latent}, {transforms} and {context_dim}"
            )
        self.n_latent, self.context_dim, self.kind = int(n_latent), int(context_dim), kind
        univariate, shapes = _univariate(kind, int(bins))
        orders = (torch.arange(n_latent), torch.arange(n_latent).flip(0))
        self.transforms = torch.nn.ModuleList(
            _AutoregressiveLayer(
                n_latent,
                context_dim,
                order=orders[i % 2],
                passes=2 if kind == "coupling" else n_latent,
                univariate=univariate,
                shapes=shapes,
                hidden=tuple(hidden),
            )
            for i in range(transforms)
        )

    def transform(self, context: torch.Tensor | None = None) -> Transform:
        """The flow's bijection given ``context`` (shape ``(..., context_dim)``), sampling way."""
        if self.context_dim and (context is None or context.shape[-1] != self.context_dim):
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"context must have last dimension {self.context_dim}, got {got}")
        c = context if self.context_dim else None
        return ComposedTransform(*(t(c) for t in self.transforms))

    def forward(
        self, base: dist.TorchDistribution, context: torch.Tensor | None = None
    ) -> FlowDistribution:
        """The flow distribution ``T_c # base``.

        Parameters
        ----------
        base : TorchDistribution
            E.g. ``dist.Normal(loc, scale).to_event(1)``, batch shape ``(n,)``, event shape
            ``(n_latent,)``.
        context : Tensor
            Shape ``(n, context_dim)``, e.g. the encoder's last hidden layer.

        Returns
        -------
        FlowDistribution
            Same batch and event shapes as ``base``; usable in ``pyro.sample``.
        """
        if tuple(base.event_shape) != (self.n_latent,):
            raise ValueError(
                f"base must have event shape ({self.n_latent},), got {tuple(base.event_shape)}"
            )
        return FlowDistribution(base, self.transform(context))


class AutoFlow(AutoContinuous):
    """Normalizing-flow guide over all of a model's (global) latents, in unconstrained space.

    ``u = loc + scale * T(e)``, ``e ~ Normal(0, I)``, with ``T`` an unconditional
    :class:`AmortizedFlow` that starts at the identity: the guide starts as Pyro's
    ``AutoNormal`` at ``init_loc_fn`` and the flow learns what a diagonal Gaussian misses
    (correlations, skew, heavy or bounded tails). The role of Pyro's ``AutoNormalizingFlow``;
    build it through :class:`FlowGuide` when fitting with :func:`ppgen.fit`.

    Parameters
    ----------
    model : callable
        The Pyro model whose latent sites the guide covers.
    kind, transforms, hidden, bins
        As in :class:`AmortizedFlow`.
    init_loc_fn : callable
        Per-site initialization (Pyro's ``init_to_*``).
    init_scale : float
        Initial standard deviation of the Gaussian in unconstrained space.
    """

    def __init__(
        self,
        model: Callable,
        *,
        kind: str = "iaf",
        transforms: int = 2,
        hidden: Sequence[int] = (32, 32),
        bins: int = 8,
        init_loc_fn: Callable = init_to_median,
        init_scale: float = 0.1,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self._flow_options = {
            "kind": kind,
            "transforms": transforms,
            "hidden": hidden,
            "bins": bins,
        }
        self._init_scale = float(init_scale)
        super().__init__(model, init_loc_fn=init_loc_fn)

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        init = self._init_loc()
        self.loc = PyroParam(init)
        self.scale = PyroParam(torch.full_like(init, self._init_scale), constraints.positive)
        flow = AmortizedFlow(self.latent_dim, 0, **self._flow_options)
        flow.to(dtype=init.dtype, device=init.device)
        # Pyro's optimizers see PyroModule parameters only: convert the flow's networks.
        to_pyro_module_(flow)
        self.flow = flow

    def get_base_dist(self) -> dist.TorchDistribution:
        zeros = self.loc.new_zeros(self.latent_dim)
        return dist.Normal(zeros, 1.0).to_event(1)

    def get_transform(self, *args: Any, **kwargs: Any) -> Transform:
        return ComposedTransform(
            self.flow.transform(), AffineTransform(self.loc, self.scale, event_dim=1)
        )

    def get_posterior(self, *args: Any, **kwargs: Any) -> FlowDistribution:
        return FlowDistribution(self.get_base_dist(), self.get_transform(*args, **kwargs))

    def _loc_scale(
        self, *args: Any, num_samples: int = 1000, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # A flow has no closed-form median: use the coordinate-wise median and standard
        # deviation of draws in unconstrained space (draws follow torch's RNG, which
        # ppgen.fit seeds). Elementwise constraints map the median to the constrained median.
        with torch.no_grad():
            draws = self.get_posterior(*args, **kwargs).sample((int(num_samples),))
        return draws.median(0).values, draws.std(0)


class FlowGuide:
    """A recipe for a flow guide over a model's global latents, for :func:`ppgen.fit`.

    ``ppgen.fit(model, data, method="svi", guide=FlowGuide(kind="nsf"))``; ``guide="flow"``
    is ``FlowGuide()``. The recipe holds no parameters, so one recipe serves many fits and
    fits never share parameters; :meth:`build` makes the :class:`AutoFlow` guide of one fit.

    Parameters
    ----------
    kind, transforms, hidden, bins, init_scale
        As in :class:`AutoFlow`.
    """

    def __init__(
        self,
        kind: str = "iaf",
        transforms: int = 2,
        hidden: Sequence[int] = (32, 32),
        bins: int = 8,
        init_scale: float = 0.1,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.options = {
            "kind": kind,
            "transforms": int(transforms),
            "hidden": tuple(hidden),
            "bins": int(bins),
            "init_scale": float(init_scale),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"FlowGuide({args})"

    def build(self, model: Callable, init_loc_fn: Callable = init_to_median) -> AutoFlow:
        """The guide for ``model`` (a Pyro program over the global sites)."""
        return AutoFlow(model, init_loc_fn=init_loc_fn, **self.options)
