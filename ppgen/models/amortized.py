"""Shared base of deep latent-variable models: per-row latents, neural networks, schema heads.

:class:`AmortizedModel` holds what every amortized model (VAE, hierarchical VAE) shares: the
output heads built from the table's schema (:class:`Heads`), the encoder's view of a row with
missing entries, the masked observation site ``"x"`` (:class:`HeadsDistribution`), sampling,
the latent posterior summary used by :meth:`ppgen.Fit.transform`, latent interpolation, and
imputation by sampling importance resampling over the guide (MIWAE).

Such models have no global latent sample sites: their networks are point-estimated parameters
(``torch.nn`` modules), trained by :func:`ppgen.infer.amortized.fit_amortized`, which
:func:`ppgen.fit` calls for every model with ``amortized = True``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.distributions import constraints

from ppgen._utils import check_int
from ppgen.data.schema import Schema
from ppgen.models import weights
from ppgen.models.base import GenerativeModel, Params

__all__ = ["AmortizedModel", "Heads", "HeadsDistribution"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_EMPTY = torch.Size()
#: Continuous-head scale options.
SCALES = ("column", "shared")


#: Non-linearities of the deep models' networks, by name.
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "identity": nn.Identity}
#: Guides of the deep models: the diagonal Gaussian encoder, optionally followed by a flow.
GUIDES = ("gaussian", "flow")
#: Floor on the encoders' standard deviations, so that log q stays finite.
MIN_SCALE = 1e-5


def mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers between ``sizes``, the activation after every hidden layer."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def check_architecture(activation: str | None, guide: str, flow_options: Any) -> str:
    """Validate a deep model's activation and guide options; returns the activation's name."""
    activation = "identity" if activation is None else activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if guide not in GUIDES:
        raise ValueError(f"guide must be one of {GUIDES}, got {guide!r}")
    if flow_options and guide != "flow":
        raise ValueError("flow_options apply to guide='flow' only")
    return activation


def _index(positions: tuple[int, ...]) -> slice | list[int]:
    """A slice when ``positions`` are consecutive (a view), else the list (a copy)."""
    if positions == tuple(range(positions[0], positions[-1] + 1)):
        return slice(positions[0], positions[-1] + 1)
    return list(positions)


class Heads(nn.Module):
    """Decoder output heads for a table of mixed column kinds.

    The decoder emits one flat vector per row, ``(..., n_outputs)``, laid out by kind:

    ===============  =========================  ==============================================
    kind             outputs                    likelihood of the encoded value
    ===============  =========================  ==============================================
    continuous       one location per column    Normal(loc, scale) on the standardized scale;
                                                scale learned per column or shared by all
    count            one log-rate per column    Poisson(exp(log_rate))
    binary           one logit per column       Bernoulli(logits) of the code (0 or 1)
    categorical      C logits per column        Categorical(logits) of the code (0..C-1)
    ===============  =========================  ==============================================

    Every log-likelihood is masked: missing entries (mask False) contribute nothing.

    Parameters
    ----------
    schema : Schema
        The table's columns.
    scale : {"column", "shared"}
        One learned noise scale per continuous column, or one shared by all (the linear VAE
        that matches PPCA needs the shared one).
    """

    def __init__(self, schema: Schema, scale: str = "column") -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"continuous scale must be one of {SCALES}, got {scale!r}")
        self.dim = len(schema)
        self.continuous = schema.positions("continuous")
        self.count = schema.positions("count")
        self.binary = schema.positions("binary")
        self.categorical = schema.positions("categorical")
        self.n_categories = tuple(schema.columns[j].n_categories for j in self.categorical)
        numeric = len(self.continuous) + len(self.count) + len(self.binary)
        self.n_outputs = numeric + sum(self.n_categories)
        # (kind, columns of x, outputs) of each non-empty numeric block; slices where the
        # positions are contiguous, so that the common cases index by views, not copies.
        self._blocks: list[tuple[str, Any, slice]] = []
        start = 0
        for kind, cols in (
            ("continuous", self.continuous),
            ("count", self.count),
            ("binary", self.binary),
        ):
            if cols:
                self._blocks.append((kind, _index(cols), slice(start, start + len(cols))))
                start += len(cols)
        self._cat_slices = []
        for c in self.n_categories:
            self._cat_slices.append((start, start + c))
            start += c
        n_scales = 0 if not self.continuous else (1 if scale == "shared" else len(self.continuous))
        # log of the noise scale on the standardized scale; 0 = the data's own spread.
        self.log_scale = nn.Parameter(torch.zeros(n_scales))
        #: Width of the encoder's view of a row (see :meth:`features`).
        self.n_features = numeric + sum(self.n_categories) + self.dim

    # -- the encoder's view ---------------------------------------------------------------------
    def features(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Encoder input ``(..., n_features)``: the zero-filled row and its mask.

        Continuous values as encoded, counts as ``log1p`` (so large counts do not swamp the
        first layer), binary codes as 0/1, categorical codes one-hot; missing entries are 0 in
        every one of these, and the mask (1 = observed) follows, so the network can tell a
        missing entry from an observed zero.
        """
        obs = x.new_ones(x.shape) if mask is None else mask.to(x.dtype)
        xo = x * obs
        parts = []
        for kind, cols, _ in self._blocks:
            values = xo[..., cols]
            parts.append(torch.log1p(values.clamp_min(0)) if kind == "count" else values)
        for j, c in zip(self.categorical, self.n_categories, strict=True):
            one_hot = nn.functional.one_hot(xo[..., j].long().clamp(0, c - 1), c).to(x.dtype)
            parts.append(one_hot * obs[..., j : j + 1])
        parts.append(obs)
        return torch.cat(parts, -1)

    # -- likelihood -------------------------------------------------------------------------------
    def _block_log_prob(self, kind: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Per-entry log-likelihood of one numeric block."""
        if kind == "continuous":
            log_scale = self.log_scale
            r = (x - out) * torch.exp(-log_scale)
            return -0.5 * r * r - log_scale - _HALF_LOG_2PI
        if kind == "count":  # out holds log-rates
            return x * out - out.exp() - torch.lgamma(x + 1)
        # binary: log sigmoid(l) for y = 1, log sigmoid(-l) for y = 0
        return -nn.functional.softplus((1 - 2 * x) * out)

    def log_prob(
        self, x: torch.Tensor, mask: torch.Tensor | None, out: torch.Tensor
    ) -> torch.Tensor:
        """Masked log-likelihood of each row's observed entries, shape ``out.shape[:-1]``."""
        total = None
        for kind, cols, outs in self._blocks:
            lp = self._block_log_prob(kind, x[..., cols], out[..., outs])
            if mask is not None:
                lp = torch.where(mask[..., cols], lp, 0.0)
            total = lp.sum(-1) if total is None else total + lp.sum(-1)
        for j, (a, b) in zip(self.categorical, self._cat_slices, strict=True):
            logp = out[..., a:b].log_softmax(-1)
            code = x[..., j].long().clamp(0, b - a - 1)
            code = code.expand(logp.shape[:-1])
            lpj = logp.gather(-1, code.unsqueeze(-1)).squeeze(-1)
            if mask is not None:
                lpj = torch.where(mask[..., j], lpj, 0.0)
            total = lpj if total is None else total + lpj
        return out.new_zeros(out.shape[:-1]) if total is None else total

    def sample(self, out: torch.Tensor) -> torch.Tensor:
        """One draw of every entry on the encoded scale, ``(..., dim)`` (torch's global RNG)."""
        n_cont, n_count, n_bin = len(self.continuous), len(self.count), len(self.binary)
        x = out.new_zeros(out.shape[:-1] + (self.dim,))
        if n_cont:
            loc = out[..., :n_cont]
            x[..., list(self.continuous)] = loc + self.log_scale.exp() * torch.randn_like(loc)
        if n_count:
            x[..., list(self.count)] = torch.poisson(out[..., n_cont : n_cont + n_count].exp())
        if n_bin:
            logits = out[..., n_cont + n_count : n_cont + n_count + n_bin]
            x[..., list(self.binary)] = torch.bernoulli(torch.sigmoid(logits))
        for j, (a, b) in zip(self.categorical, self._cat_slices, strict=True):
            gumbel = -torch.log(-torch.log(torch.rand_like(out[..., a:b]).clamp_min(1e-30)))
            x[..., j] = (out[..., a:b] + gumbel).argmax(-1).to(x.dtype)
        return x

    def expected(self, out: torch.Tensor) -> torch.Tensor:
        """Typical value of every entry, ``(..., dim)``: the mean of continuous and count heads,
        the most probable code of binary and categorical ones."""
        n_cont, n_count, n_bin = len(self.continuous), len(self.count), len(self.binary)
        x = out.new_zeros(out.shape[:-1] + (self.dim,))
        x[..., list(self.continuous)] = out[..., :n_cont]
        x[..., list(self.count)] = out[..., n_cont : n_cont + n_count].exp()
        x[..., list(self.binary)] = (out[..., n_cont + n_count : n_cont + n_count + n_bin] > 0).to(
            x.dtype
        )
        for j, (a, b) in zip(self.categorical, self._cat_slices, strict=True):
            x[..., j] = out[..., a:b].argmax(-1).to(x.dtype)
        return x


class HeadsDistribution(dist.TorchDistribution):
    """The observation site ``"x"`` of an amortized model: :class:`Heads` as a distribution.

    Batch shape ``out.shape[:-1]``, event shape ``(dim,)``. :meth:`log_prob` is the masked
    log-likelihood of the observed entries (missing entries contribute 0, so the encoded zeros
    that stand in for them are never scored).
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, heads: Heads, out: torch.Tensor, mask: torch.Tensor | None) -> None:
        self.heads, self.out, self.obs_mask = heads, out, mask
        super().__init__(out.shape[:-1], torch.Size([heads.dim]), validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        mask = self.obs_mask
        if mask is not None and value.shape[:-1] != self.batch_shape:
            value, mask = torch.broadcast_tensors(value, mask)
        return self.heads.log_prob(value, mask, self.out)

    def sample(self, sample_shape: torch.Size = _EMPTY) -> torch.Tensor:
        with torch.no_grad():
            out = self.out.expand(torch.Size(sample_shape) + self.out.shape)
            return self.heads.sample(out)

    def expand(self, batch_shape, _instance=None) -> HeadsDistribution:
        batch_shape = torch.Size(batch_shape)
        out = self.out.expand(batch_shape + self.out.shape[-1:])
        mask = self.obs_mask
        if mask is not None:
            mask = mask.expand(batch_shape + mask.shape[-1:])
        return HeadsDistribution(self.heads, out, mask)


class AmortizedModel(GenerativeModel):
    """Base class of deep latent-variable models with per-row continuous latents.

    The networks are point-estimated parameters (no global latent sample sites): the Pyro
    programs have local latent sites, inside the ``"data"`` plate, and the observation site
    ``"x"``. :func:`ppgen.fit` trains such models by minibatch SVI
    (:func:`ppgen.infer.amortized.fit_amortized`).

    What this class provides, from the table's :class:`~ppgen.data.Schema`:

    * ``self.heads`` (:class:`Heads`, built in :meth:`build`): the decoder's output layout
      (``self.heads.n_outputs`` values per row) and its masked likelihood;
    * :meth:`features`: the encoder's input, zero-filled data and the mask
      (``self.heads.n_features`` values per row);
    * :meth:`observe`: the site ``"x"``, masked by the mask, never pre-filled;
    * :meth:`sample`, :meth:`impute` (MIWAE), :meth:`posterior` (Monte-Carlo default),
      :meth:`interpolate`, all written against the Pyro programs, so a subclass gets them for free.

    How a subclass plugs in
    -----------------------
    1. ``__init__(...)``: call ``super().__init__(continuous_scale=..., impute_particles=...)``
       and store its hyperparameters; :meth:`config` returns them (JSON types) plus
       :meth:`base_config`.
    2. ``build_networks(self) -> None``: create the ``torch.nn`` modules (encoder, decoder,
       flows) from ``self.heads.n_features`` and ``self.heads.n_outputs``. Called by
       :meth:`build` after the heads exist; it must create the same modules for the same
       schema and configuration, so that a saved ``state_dict`` loads into
       ``MODELS[name](**config).build(schema)``.
    3. ``model(x, mask=None, subsample_size=None)``: inside ``pyro.plate("data", n,
       subsample_size=subsample_size, dim=-1) as ind``, sample the latent sites from their
       priors (batch shape of the plate, event shape the latent), decode to ``out``
       (``(..., len(ind), n_outputs)``), and call ``self.observe(x, mask, out, ind)``. It must
       read ``x`` only through :meth:`observe` (sampling runs it on a placeholder).
    4. ``guide(x, mask=None, subsample_size=None)``: the same plate, sampling every latent
       site of :meth:`model` from distributions computed from ``self.features(x[ind],
       mask[ind])``. Both programs must broadcast over an outer ``pyro.plate`` at dim -2
       (the particles of :mod:`ppgen.evaluate` and :meth:`impute`).
    5. ``decode_latent(self, z) -> out``: the decoder output for values of the latent
       :attr:`latent_site` (used by :meth:`interpolate`).
    6. Optionally ``elbo_rows(self, x, mask, kl_weight=1.0) -> (n,)``: the one-particle ELBO of
       each row computed without Pyro's tracing, equal to ``Trace_ELBO``'s (same draws, same
       order), with the latent terms ``log p(z) - log q(z)`` multiplied by ``kl_weight``;
       training uses it when present because tracing costs time per step. Likewise
       ``particle_log_weights(self, x, mask, k, kl_weight=1.0) -> (k, n)``, the log weights of
       ``k`` particles per row with the traced guide's draws: the hook of
       :mod:`ppgen.models.weights`, on which :meth:`iwae_rows`, the IWAE training objective
       and :mod:`ppgen.evaluate` are built (without it, they trace the programs). And
       ``posterior(x, mask, params)`` in closed form.

    KL warm-up needs nothing more: with ``Trace_ELBO`` the trainer scales every unobserved
    sample site of both programs by the warm-up weight, and ``elbo_rows`` gets it as
    ``kl_weight``.

    Parameters
    ----------
    continuous_scale : {"column", "shared"}
        Noise scale of the continuous heads: one per column, or one shared by all columns.
    impute_particles : int
        Particles K of the sampling importance resampling in :meth:`impute`.
    """

    #: Marks models trained by :func:`ppgen.infer.amortized.fit_amortized`.
    amortized: ClassVar[bool] = True
    supported_kinds: ClassVar[tuple[str, ...]] = ("continuous", "count", "binary", "categorical")
    global_sites: ClassVar[tuple[str, ...]] = ()
    #: The latent site :meth:`posterior`, :meth:`interpolate` and ``Fit.transform`` report.
    latent_site: ClassVar[str] = "z"

    def __init__(self, *, continuous_scale: str = "column", impute_particles: int = 100) -> None:
        super().__init__()
        if continuous_scale not in SCALES:
            raise ValueError(f"continuous_scale must be one of {SCALES}, got {continuous_scale!r}")
        self.continuous_scale = continuous_scale
        self.impute_particles = check_int(impute_particles, "impute_particles")
        self.heads: Heads | None = None

    def base_config(self) -> dict[str, Any]:
        """The base class's part of :meth:`config`."""
        return {
            "continuous_scale": self.continuous_scale,
            "impute_particles": self.impute_particles,
        }

    def build(self, schema: Schema) -> AmortizedModel:
        super().build(schema)
        self.heads = Heads(schema, self.continuous_scale)
        self.build_networks()
        return self

    def build_networks(self) -> None:
        """Create the networks from ``self.heads``; see the class docstring."""
        raise NotImplementedError

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output ``(..., n_outputs)`` for values of :attr:`latent_site`."""
        raise NotImplementedError

    # -- pieces for subclasses ---------------------------------------------------------------------
    def features(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Encoder input: zero-filled ``x`` and the mask (:meth:`Heads.features`)."""
        return self.heads.features(x, mask)

    def obs_log_prob(
        self, x: torch.Tensor, mask: torch.Tensor | None, out: torch.Tensor
    ) -> torch.Tensor:
        """Masked log-likelihood ``log p(x_obs | out)`` of each row, shape ``out.shape[:-1]``."""
        return self.heads.log_prob(x, mask, out)

    def observe(
        self, x: torch.Tensor, mask: torch.Tensor | None, out: torch.Tensor, ind: torch.Tensor
    ) -> None:
        """The observation site ``"x"`` for the rows ``ind`` of the plate."""
        xb = x if len(ind) == x.shape[0] else x[ind]
        mb = None if mask is None else (mask if len(ind) == mask.shape[0] else mask[ind])
        pyro.sample("x", HeadsDistribution(self.heads, out, mb), obs=xb)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- importance weights (ppgen.models.weights) ------------------------------------------------
    def log_weights(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Importance weights of ``k`` guide particles per row, traced
        (:func:`ppgen.models.weights.trace_particles` and :func:`~ppgen.models.weights.weigh`).

        Returns
        -------
        log_w : Tensor, shape (k, n)
            ``log p(x_obs, z) - log q(z | x_obs)`` of each particle.
        out : Tensor, shape (k, n, n_outputs)
            The decoder output of each particle.
        latents : dict of Tensor
            The guide's latent values, ``(k, n, ...)``.
        """
        n = x.shape[0]
        guide_trace, model_trace = traces = weights.trace_particles(self, x, mask, k)
        log_w = weights.weigh(self, x, k, traces)
        latents = {
            name: site["value"]
            for name, site in guide_trace.nodes.items()
            if weights.is_sample(site)
        }
        out = model_trace.nodes["x"]["fn"].out.expand(k, n, -1)
        return log_w, out, latents

    def iwae_rows(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """Importance-weighted bound of each row's observed entries, ``(n,)`` (Burda et al. 2016).

        ``logsumexp_j log w_j - log k`` over the ``k`` particles of
        :func:`ppgen.models.weights.particle_log_weights` (the model's hook), so
        ``kl_weight`` scales the latent terms inside every log weight. Its expectation is a
        lower bound on ``log p(x_obs)`` that tightens as ``k`` grows; ``k=1`` is the
        one-particle ELBO. The per-row estimator that MIWAE trains on (Mattei & Frellsen 2019)
        and that :func:`ppgen.evaluate.iwae` reports (there on the data's original scale).
        """
        log_w = weights.particle_log_weights(self, x, mask, k, kl_weight=kl_weight)
        return log_w.logsumexp(0) - math.log(k)

    # -- what Fit uses -----------------------------------------------------------------------------
    def sample(self, n: int, params: Params) -> torch.Tensor:
        """Draw ``n`` rows on the encoded scale (torch's global RNG; seed it first)."""
        d = self._check_built()
        like = next(self.parameters())
        x = like.new_zeros(n, d)
        # All entries missing: the model's "x" site scores nothing and carries the decoder output.
        mask = torch.zeros(n, d, dtype=torch.bool, device=like.device)
        trace = poutine.trace(self.model).get_trace(x, mask)
        return self.heads.sample(trace.nodes["x"]["fn"].out)

    def posterior(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params, *, num_draws: int = 256
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the guide's :attr:`latent_site`, each ``(n, q)``.

        This default estimates them from ``num_draws`` guide draws (seeded, so repeatable);
        models with a Gaussian guide override it with the exact values.
        """
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(0)
            with pyro.plate("particles", num_draws, dim=-2):
                trace = poutine.trace(self.guide).get_trace(x, mask)
        z = trace.nodes[self.latent_site]["value"]
        return z.mean(0), z.std(0)

    def interpolate(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params, n: int
    ) -> torch.Tensor:
        """Typical rows along the segment between the posterior means of rows 0 and 1 of ``x``.

        Returns ``(n, dim)`` on the encoded scale (:meth:`Heads.expected` of the decoded
        latents), from row 0's end to row 1's.
        """
        mean, _ = self.posterior(x[:2], None if mask is None else mask[:2], params)
        t = torch.linspace(0, 1, int(n), dtype=mean.dtype, device=mean.device).unsqueeze(-1)
        z = (1 - t) * mean[0] + t * mean[1]
        return self.heads.expected(self.decode_latent(z))

    def impute(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """One draw of the missing entries given the observed ones, by MIWAE's importance
        resampling (Mattei & Frellsen 2019).

        For each row, ``K = impute_particles`` latents ``z_j ~ q(z | x_obs)`` are weighted by
        ``w_j = p(x_obs | z_j) p(z_j) / q(z_j | x_obs)``; one is resampled with probability
        ``w_j / sum w``, and the missing entries are drawn from ``p(x_miss | z_j)``. As K grows
        the draw's distribution tends to the model's ``p(x_miss | x_obs)`` under the fitted
        networks. Observed entries are returned unchanged (torch's global RNG; seed it first).
        """
        if mask is None or bool(mask.all()):
            return x.clone()
        k = self.impute_particles
        rows = max(1, 2**20 // (k * max(self.heads.n_outputs, 1)))
        parts = []
        for start in range(0, x.shape[0], rows):
            xb, mb = x[start : start + rows], mask[start : start + rows]
            log_w, out, _ = self.log_weights(xb, mb, k)
            pick = torch.multinomial(log_w.mT.softmax(-1), 1).squeeze(-1)  # (n,)
            chosen = out[pick, torch.arange(xb.shape[0], device=x.device)]
            parts.append(torch.where(mb, xb, self.heads.sample(chosen)))
        return torch.cat(parts)
