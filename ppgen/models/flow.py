"""Normalizing-flow density model of a table (zuko's MAF, NSF and RealNVP)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pyro
import torch
import zuko

from ppgen._utils import check_int, check_ints
from ppgen.data.schema import Schema
from ppgen.models.autoregressive import RowsDistribution
from ppgen.models.base import GenerativeModel, Params, refuse_constant_continuous

__all__ = ["FLOW_KINDS", "Flow"]

#: Flow families: masked autoregressive (affine), neural spline (rational-quadratic splines,
#: autoregressive), RealNVP (affine coupling: sampling and scoring both take one pass).
FLOW_KINDS = ("maf", "nsf", "realnvp")


class Flow(GenerativeModel):
    r"""Normalizing-flow density model: a table's encoded row as an invertible map of noise.

    Generative story (n rows; ``y`` is the row's continuous representation of width ``D``)::

        for i in 1..n:
            e[i] ~ Normal(0, I_D)
            y[i] = T^{-1}(e[i])          # T: ``transforms`` zuko transforms of kind ``kind``
            x[i] = decode(y[i])          # site "x"

    ``log p(y) = log N(T(y); 0, I) + log |det dT/dy|`` (change of variables) is exact.
    ``decode`` is the identity on continuous columns (standardized; ``Fit.log_prob`` adds the
    standardization's log-Jacobian, so densities are on the data's own scale), ``floor`` on
    count and binary columns (clamped to their range) and ``argmax`` over the ``C`` coordinates
    of a categorical column.

    Discrete columns are dequantized: a count or binary value ``k`` becomes ``k + u``,
    ``u ~ U[0, 1)`` (uniform dequantization, Theis et al. 2016); a category ``c`` of ``C``
    becomes a point drawn uniformly from ``{v in [0, 1)^C : argmax v = c}`` (argmax
    dequantization, Hoogeboom et al. 2021; its density is ``C`` there). The cells of distinct
    values are disjoint, so for a table with discrete columns :meth:`log_prob` is
    ``log mean_k p(y_k) / q(y_k | x)`` over ``dequantize_particles`` seeded draws: a lower
    bound, in expectation, of the log-probability the model gives the discrete values (and of
    the probability of the sampler, whose cells contain these). With continuous columns only it
    is exact.

    Missing entries are refused (``ValueError``): a flow has no closed-form marginal. Impute
    first (e.g. ``ppgen.Imputer``) or use :class:`ppgen.Autoregressive`.

    Parameters
    ----------
    kind : {"nsf", "maf", "realnvp"}
        Neural spline flow (Durkan et al. 2019), masked autoregressive flow (Papamakarios et al.
        2017) or RealNVP (Dinh et al. 2017).
    transforms : int
        Number of transforms.
    hidden : sequence of int
        Hidden widths of each transform's network.
    bins : int
        Spline bins (``"nsf"`` only).
    dequantize_particles : int
        Dequantization draws per row of :meth:`log_prob` (tables with discrete columns).

    References
    ----------
    Papamakarios, G. et al. (2021). Normalizing flows for probabilistic modeling and inference.
    JMLR 22. Durkan, C. et al. (2019). Neural spline flows. NeurIPS. Papamakarios, G., Pavlakou,
    T. & Murray, I. (2017). Masked autoregressive flow for density estimation. NeurIPS. Dinh, L.,
    Sohl-Dickstein, J. & Bengio, S. (2017). Density estimation using Real NVP. ICLR. Theis, L.,
    van den Oord, A. & Bethge, M. (2016). A note on the evaluation of generative models. ICLR.
    Hoogeboom, E. et al. (2021). Argmax flows and multinomial diffusion. NeurIPS. Rozet, F. et
    al. zuko (software).
    """

    amortized: ClassVar[bool] = True
    supported_kinds: ClassVar[tuple[str, ...]] = ("continuous", "count", "binary", "categorical")
    global_sites: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        kind: str = "nsf",
        transforms: int = 3,
        hidden: Sequence[int] = (64, 64),
        *,
        bins: int = 8,
        dequantize_particles: int = 16,
    ) -> None:
        super().__init__()
        if kind not in FLOW_KINDS:
            raise ValueError(f"kind must be one of {FLOW_KINDS}, got {kind!r}")
        self.kind = kind
        self.transforms = check_int(transforms, "transforms")
        self.hidden = check_ints(hidden, "hidden")
        self.bins = check_int(bins, "bins")
        self.dequantize_particles = check_int(dequantize_particles, "dequantize_particles")

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "transforms": self.transforms,
            "hidden": list(self.hidden),
            "bins": self.bins,
            "dequantize_particles": self.dequantize_particles,
        }

    def label(self) -> str:
        return f"Flow({self.kind}, {self.transforms})"

    def check_data(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        refuse_constant_continuous(self, x, mask, self.kinds, self.names)

    def build(self, schema: Schema) -> Flow:
        super().build(schema)
        self.kinds = tuple(c.kind for c in schema.columns)
        self.names = tuple(schema.names)
        self.slices, width = [], 0
        for c in schema.columns:
            w = c.n_categories if c.kind == "categorical" else 1
            self.slices.append((width, width + w))
            width += w
        self.width = width
        self.discrete = any(k != "continuous" for k in self.kinds)
        options = {"transforms": self.transforms, "hidden_features": list(self.hidden)}
        if self.kind == "nsf":
            self.flow = zuko.flows.NSF(width, bins=self.bins, **options)
        elif self.kind == "maf":
            self.flow = zuko.flows.MAF(width, **options)
        else:
            self.flow = zuko.flows.RealNVP(width, **options)
        return self

    # -- dequantization -------------------------------------------------------------------------
    def dequantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One continuous representation ``y`` of each encoded row, ``(..., width)``, and
        ``log q(y | x)`` of the draw, ``(...,)`` (0 for tables of continuous columns)."""
        parts, log_q = [], x.new_zeros(x.shape[:-1])
        for j, kind in enumerate(self.kinds):
            v = x[..., j : j + 1]
            if kind == "continuous":
                parts.append(v)
            elif kind in ("count", "binary"):
                parts.append(v + torch.rand_like(v))
            else:
                a, b = self.slices[j]
                u = torch.rand(x.shape[:-1] + (b - a,), dtype=x.dtype, device=x.device)
                # Uniform on {argmax = c}: swap the largest coordinate into position c.
                top = u.argmax(-1, keepdim=True)
                code = v.long().clamp(0, b - a - 1)
                at_top, at_code = u.gather(-1, top), u.gather(-1, code)
                u = u.scatter(-1, top, at_code).scatter(-1, code, at_top)
                parts.append(u)
                log_q = log_q + math.log(b - a)
        return torch.cat(parts, -1), log_q

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        """Encoded rows ``(..., d)`` from continuous representations (the inverse cells)."""
        cols = []
        for j, kind in enumerate(self.kinds):
            a, b = self.slices[j]
            if kind == "continuous":
                cols.append(y[..., a])
            elif kind == "count":
                cols.append(y[..., a].floor().clamp_min(0))
            elif kind == "binary":
                cols.append(y[..., a].floor().clamp(0, 1))
            else:
                cols.append(y[..., a:b].argmax(-1).to(y.dtype))
        return torch.stack(cols, -1)

    # -- likelihood -----------------------------------------------------------------------------
    def _refuse_missing(self, mask: torch.Tensor | None) -> None:
        if mask is not None and not bool(mask.all()):
            columns = [self.names[j] for j in (~mask).any(0).nonzero().flatten().tolist()]
            raise ValueError(
                f"Flow cannot score or train on missing entries (columns {columns}): a flow has "
                "no closed-form marginal. Impute first (ppgen.Imputer) or use "
                "ppgen.Autoregressive, which marginalizes trailing columns exactly"
            )

    def log_prob_rows(self, x: torch.Tensor, mask: torch.Tensor | None, k: int = 1):
        """``(n,)``: the exact log density (continuous tables), or the ``k``-draw dequantization
        lower bound ``log mean_k p(y_k) / q(y_k | x)``."""
        self._refuse_missing(mask)
        if not self.discrete:
            return self.flow().log_prob(x)
        y, log_q = self.dequantize(x.expand(k, *x.shape))
        log_w = self.flow().log_prob(y) - log_q
        return log_w.logsumexp(0) - math.log(k)

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """Log density of each row on the encoded scale ``(n,)``: exact for continuous tables, a
        seeded dequantization lower bound otherwise (see the class docstring)."""
        self._check_built()
        if not self.discrete:
            return self.log_prob_rows(x, mask)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)  # the bound is a function of the data and the fit
            return self.log_prob_rows(x, mask, self.dequantize_particles)

    def elbo_rows(
        self, x: torch.Tensor, mask: torch.Tensor | None, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """The training objective: the exact log density, or one dequantization draw's bound."""
        return self.log_prob_rows(x, mask)

    # -- Pyro programs ----------------------------------------------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None):
        self._check_built()
        pyro.module("flow", self)
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            mb = None if mask is None else mask[ind]
            pyro.sample("x", RowsDistribution(self, mb, len(ind)), obs=x[ind])

    def guide(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None):
        """No latent variables to infer: the guide is empty."""

    # -- what Fit uses ----------------------------------------------------------------------------
    def sample(self, n: int, params: Params) -> torch.Tensor:
        """Draw ``n`` rows on the encoded scale (torch's global RNG; seed it first)."""
        self._check_built()
        with torch.no_grad():
            return self.quantize(self.flow().sample((int(n),)))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
