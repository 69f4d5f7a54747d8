"""Autoregressive density model of a table: MADE with one output head per column kind."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import constraints

from ppgen._utils import check_int, check_ints, progress_bar
from ppgen.data.schema import Schema
from ppgen.models.amortized import ACTIVATIONS
from ppgen.models.base import GenerativeModel, Params, refuse_constant_continuous

__all__ = ["COUNT_HEADS", "Autoregressive", "MaskedLinear", "RowsDistribution"]

#: Likelihoods offered for count columns.
COUNT_HEADS = ("poisson", "negbinomial")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# Log-scales of the mixture-density heads are clamped here: a component collapsing onto one
# value would otherwise drive the likelihood to infinity (and the loss to NaN).
_LOG_SCALE_MIN, _LOG_SCALE_MAX = -9.0, 5.0
_LOG_RATE_MAX = 20.0


class MaskedLinear(nn.Linear):
    """``y = (W * M) x + b`` with a fixed 0/1 connectivity mask ``M`` (a buffer, not saved:
    it follows from the configuration and the schema)."""

    def __init__(self, mask: torch.Tensor, bias: bool = True) -> None:
        super().__init__(mask.shape[1], mask.shape[0], bias=bias)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """One masked network: the outputs of a column depend on the inputs of the columns before it
    in one order (masks from the degrees of the inputs, hidden units and outputs)."""

    def __init__(
        self, ins: torch.Tensor, outs: torch.Tensor, hidden: tuple[int, ...], activation: str
    ) -> None:
        super().__init__()
        d = int(ins.max()) if len(ins) else 1
        layers: list[nn.Module] = []
        prev = ins
        for width in hidden:
            # Hidden degrees cycle through 1..d-1 (MADE's deterministic assignment): a unit of
            # degree m sees the inputs of the first m columns of the order.
            deg = torch.arange(width) % max(d - 1, 1) + 1
            layers.append(MaskedLinear((deg[:, None] >= prev[None, :]).long()))
            layers.append(ACTIVATIONS[activation]())
            prev = deg
        self.hidden_net = nn.Sequential(*layers)
        # Outputs of column j see only hidden units and inputs of strictly earlier columns.
        self.head = MaskedLinear((outs[:, None] > prev[None, :]).long())
        # The direct connection; without hidden layers the head already is that layer.
        self.direct = (
            MaskedLinear((outs[:, None] > ins[None, :]).long(), bias=False) if hidden else None
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.head(self.hidden_net(h))
        return out if self.direct is None else out + self.direct(h)


class RowsDistribution(dist.TorchDistribution):
    """The observation site ``"x"`` of a model without latents: its ``log_prob_rows`` of each
    row's observed entries (the autoregressive and flow models)."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, model: GenerativeModel, mask: torch.Tensor | None, n: int) -> None:
        self.model, self.obs_mask = model, mask
        super().__init__(torch.Size([n]), torch.Size([model.dim]), validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        mask = self.obs_mask
        flat = value.reshape(-1, value.shape[-1])
        m = None if mask is None else mask.expand(value.shape).reshape(flat.shape)
        return self.model.log_prob_rows(flat, m).reshape(value.shape[:-1])

    def expand(self, batch_shape, _instance=None) -> RowsDistribution:
        return self  # rows are the only batch dimension; particles broadcast in log_prob


class Autoregressive(GenerativeModel):
    r"""Autoregressive density model of a table: a masked autoencoder (MADE).

    Generative story (n rows, d columns taken in the order ``o_1, ..., o_d``)::

        for i in 1..n:
            for t in 1..d:
                j      = o_t
                out    = MADE(x[i, o_1], ..., x[i, o_{t-1}])[j]   # outputs of column j
                x[i,j] ~ Head_j(out)                               # site "x", (d,)

    so ``p(x) = prod_t p(x_{o_t} | x_{o_<t})`` exactly: one network pass gives every
    conditional (the masks of Germain et al. 2015 cut every path from an input of column
    ``o_s`` to an output of column ``o_t`` with ``s >= t``), so :meth:`log_prob` is exact and
    costs one pass; sampling takes ``d`` passes (slow by nature). The network has no latent
    variables: ``ppgen.fit`` trains it by maximum likelihood with the minibatch engine
    (``method="svi"``; the "ELBO" it reports is the exact log-likelihood).

    Heads of the encoded value of each column kind:

    ===========  ==================================================================
    continuous   mixture of ``components`` Normals (mixture density network, Bishop 1994)
                 on the standardized scale: logits, locations, log-scales
    count        Poisson(log-rate), or negative binomial (log-mean, log-concentration)
    binary       Bernoulli(logit)
    categorical  Categorical(C logits); the C one-hot inputs of a categorical column form
                 one unit of the order (they share its degree in the masks)
    ===========  ==================================================================

    Inputs are the encoded values (counts as ``log1p``, categories one-hot). A direct masked
    linear connection from the inputs to the outputs is always present, so ``hidden=()`` with
    ``components=1, homoscedastic=True`` is the linear-Gaussian autoregressive model: a Gaussian
    Bayesian network with a complete graph, i.e. any multivariate normal.

    Missing entries. If each row's missing columns come after all its observed ones in the
    order, they are marginalized exactly (the observed conditionals never see them):
    :meth:`log_prob` is exact and :meth:`impute` samples the exact conditional column by column.
    Otherwise the missing entries before the last observed one are drawn from the model's own
    conditionals (likelihood weighting): :meth:`log_prob` then returns ``log mean_k w_k`` over
    ``missing_particles`` draws (seeded), an *estimate* of ``log p(x_obs)`` whose expectation
    is a lower bound (the mean of ``w`` is unbiased for ``p(x_obs)``), and :meth:`impute`
    resamples one of them by weight (sampling importance resampling). Training on such rows
    uses one draw per row with the draw held fixed (a lower bound of the likelihood, with the
    proposal's gradient left out). Put the often-missing columns last in ``order`` (with
    ``n_orders > 1`` exactness needs them trailing in every order of the ensemble).

    Parameters
    ----------
    hidden : sequence of int
        Widths of the masked hidden layers; ``()`` is the linear model.
    order : sequence of str or int, or "reverse", optional
        The column order: names or positions of all columns (default: the table's order).
    components : int
        Normal components of each continuous head.
    count : {"poisson", "negbinomial"}
        Likelihood of count columns.
    activation : {"relu", "tanh", "elu"}
        Non-linearity of the hidden layers.
    homoscedastic : bool
        Whether the mixture weights and scales of continuous heads are constants per column
        (only the locations depend on earlier columns). With ``hidden=()`` and
        ``components=1`` this is the linear-Gaussian model; by default they depend on the
        earlier columns too.
    n_orders : int
        Number of column orders in an ensemble: ``order`` and ``n_orders - 1`` seeded random
        permutations, each with its own masked network; the density is their mean,
        ``p(x) = (1/M) sum_m p_m(x)``, still exact (trained jointly by maximum likelihood).
    missing_particles : int
        Draws of the likelihood-weighting estimate and of imputation by SIR, used only for
        rows with missing entries before an observed one.

    References
    ----------
    Germain, M., Gregor, K., Murray, I. & Larochelle, H. (2015). MADE: Masked autoencoder for
    distribution estimation. ICML. Bishop, C. M. (1994). Mixture density networks. Uria, B. et
    al. (2016). Neural autoregressive distribution estimation. JMLR 17.
    """

    amortized: ClassVar[bool] = True
    supported_kinds: ClassVar[tuple[str, ...]] = ("continuous", "count", "binary", "categorical")
    global_sites: ClassVar[tuple[str, ...]] = ()
    label_arguments: ClassVar[int] = 1

    def __init__(
        self,
        hidden: Sequence[int] = (64, 64),
        order: Sequence[str | int] | str | None = None,
        *,
        components: int = 5,
        count: str = "poisson",
        activation: str = "relu",
        homoscedastic: bool = False,
        n_orders: int = 1,
        missing_particles: int = 100,
    ) -> None:
        super().__init__()
        self.hidden = check_ints(hidden, "hidden")
        if isinstance(order, str):
            if order != "reverse":
                raise ValueError(f"order must be 'reverse' or a list of columns, got {order!r}")
        elif order is not None:
            order = list(order)
        self.order = order
        self.components = check_int(components, "components")
        if count not in COUNT_HEADS:
            raise ValueError(f"count must be one of {COUNT_HEADS}, got {count!r}")
        self.count = count
        if activation not in ACTIVATIONS or activation == "identity":
            raise ValueError(
                f"activation must be one of {sorted(set(ACTIVATIONS) - {'identity'})}, "
                f"got {activation!r}"
            )
        self.activation = activation
        if not isinstance(homoscedastic, bool):
            raise ValueError(f"homoscedastic must be True or False, got {homoscedastic!r}")
        self.homoscedastic = homoscedastic
        self.n_orders = check_int(n_orders, "n_orders")
        self.missing_particles = check_int(missing_particles, "missing_particles")

    def config(self) -> dict[str, Any]:
        return {
            "hidden": list(self.hidden),
            "order": self.order,
            "components": self.components,
            "count": self.count,
            "activation": self.activation,
            "homoscedastic": self.homoscedastic,
            "n_orders": self.n_orders,
            "missing_particles": self.missing_particles,
        }

    def label(self) -> str:
        return f"Autoregressive(hidden={','.join(map(str, self.hidden)) or 'linear'})"

    # -- construction ---------------------------------------------------------------------------
    def _resolve_order(self, schema: Schema) -> list[int]:
        d, names = len(schema), list(schema.names)
        if self.order is None:
            return list(range(d))
        if self.order == "reverse":
            return list(range(d))[::-1]
        positions = []
        for item in self.order:
            if isinstance(item, str):
                if item not in names:
                    raise ValueError(f"order names an unknown column {item!r}; columns: {names}")
                positions.append(names.index(item))
            elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < d:
                positions.append(item)
            else:
                raise ValueError(f"order holds {item!r}: not a column name or position < {d}")
        if sorted(positions) != list(range(d)):
            raise ValueError(
                f"order must list every column exactly once, got {self.order!r} for {names}"
            )
        return positions

    def _out_width(self, kind: str, n_categories: int) -> int:
        return {
            "continuous": 3 * self.components,
            "count": 1 if self.count == "poisson" else 2,
            "binary": 1,
            "categorical": n_categories,
        }[kind]

    def check_data(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        refuse_constant_continuous(self, x, mask, self.kinds, self.names)

    def build(self, schema: Schema) -> Autoregressive:
        super().build(schema)
        d = len(schema)
        self.kinds = tuple(c.kind for c in schema.columns)
        self.names = tuple(schema.names)
        self.n_categories = tuple(
            c.n_categories if c.kind == "categorical" else 0 for c in schema.columns
        )
        first = self._resolve_order(schema)
        # Further orders of the ensemble: seeded permutations (the same for the same config).
        self.orders = [first] + [
            torch.randperm(d, generator=torch.Generator().manual_seed(m)).tolist()
            for m in range(1, self.n_orders)
        ]
        self.ranks = []  # ranks[m][j]: 1-based place of column j in order m
        for order in self.orders:
            rank = [0] * d
            for t, j in enumerate(order):
                rank[j] = t + 1
            self.ranks.append(rank)
        self.order_positions, self.rank = self.orders[0], self.ranks[0]
        self.in_slices, self.out_slices, start_in, start_out = [], [], 0, 0
        for j, kind in enumerate(self.kinds):
            width_in = self.n_categories[j] if kind == "categorical" else 1
            width_out = self._out_width(kind, self.n_categories[j])
            self.in_slices.append((start_in, start_in + width_in))
            self.out_slices.append((start_out, start_out + width_out))
            start_in, start_out = start_in + width_in, start_out + width_out
        self.nets = nn.ModuleList([self._made(rank) for rank in self.ranks])
        self.n_inputs, self.n_outputs = start_in, start_out
        self._index_kinds()
        return self

    def _made(self, rank: list[int]) -> MADE:
        """The masked network of the order with these ranks."""
        in_deg, out_deg = [], []
        for j, kind in enumerate(self.kinds):
            a, b = self.in_slices[j]
            in_deg += [rank[j]] * (b - a)
            a, b = self.out_slices[j]
            if kind == "continuous" and self.homoscedastic:
                # Mixture weights and scales see nothing (degree 1: only biases), locations do.
                k = self.components
                out_deg += [1] * k + [rank[j]] * k + [1] * k
            else:
                out_deg += [rank[j]] * (b - a)
        return MADE(torch.tensor(in_deg), torch.tensor(out_deg), self.hidden, self.activation)

    def _index_kinds(self) -> None:
        """Index tensors gathering each kind's outputs, so heads are evaluated by kind at once."""
        for kind in ("continuous", "count", "binary"):
            cols = [j for j, k in enumerate(self.kinds) if k == kind]
            outs = [list(range(*self.out_slices[j])) for j in cols]
            self.register_buffer(f"_{kind}_cols", torch.tensor(cols, dtype=torch.long), False)
            width = len(outs[0]) if outs else 0
            shaped = torch.tensor(outs, dtype=torch.long).reshape(len(cols), width)
            self.register_buffer(f"_{kind}_outs", shaped, False)

    # -- the network ----------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Network input ``(..., n_inputs)``: encoded values, counts as ``log1p`` (so large
        counts do not swamp the first layer), categories one-hot."""
        parts = []
        for j, kind in enumerate(self.kinds):
            v = x[..., j : j + 1]
            if kind == "categorical":
                c = self.n_categories[j]
                parts.append(nn.functional.one_hot(v[..., 0].long().clamp(0, c - 1), c).to(x))
            elif kind == "count":
                parts.append(torch.log1p(v.clamp_min(0)))
            else:
                parts.append(v)
        return torch.cat(parts, -1)

    def forward_outputs(self, x: torch.Tensor, m: int = 0) -> torch.Tensor:
        """Every column's head outputs ``(..., n_outputs)`` under order ``m``, from complete
        encoded rows."""
        return self.nets[m](self.features(x))

    # -- heads ----------------------------------------------------------------------------------
    def column_log_probs(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``log p(x_j | x_<j)`` of every entry, ``(..., d)``, given the outputs ``out``."""
        lp = x.new_zeros(x.shape)
        cols, idx = self._continuous_cols, self._continuous_outs
        if len(cols):
            o = out[..., idx]  # (..., n_cont, 3K)
            k = self.components
            logits, loc = o[..., :k], o[..., k : 2 * k]
            log_scale = o[..., 2 * k :].clamp(_LOG_SCALE_MIN, _LOG_SCALE_MAX)
            z = (x[..., cols, None] - loc) * torch.exp(-log_scale)
            comp = -0.5 * z * z - log_scale - _HALF_LOG_2PI
            lp[..., cols] = (logits.log_softmax(-1) + comp).logsumexp(-1)
        cols, idx = self._count_cols, self._count_outs
        if len(cols):
            o, v = out[..., idx], x[..., cols]
            log_mean = o[..., 0].clamp(max=_LOG_RATE_MAX)
            if self.count == "poisson":
                lp[..., cols] = v * log_mean - log_mean.exp() - torch.lgamma(v + 1)
            else:
                log_conc = o[..., 1].clamp(-_LOG_RATE_MAX, _LOG_RATE_MAX)
                conc = log_conc.exp()
                log_total = torch.logaddexp(log_conc, log_mean)
                lp[..., cols] = (
                    torch.lgamma(v + conc)
                    - torch.lgamma(conc)
                    - torch.lgamma(v + 1)
                    + conc * (log_conc - log_total)
                    + v * (log_mean - log_total)
                )
        cols, idx = self._binary_cols, self._binary_outs
        if len(cols):
            lp[..., cols] = -nn.functional.softplus((1 - 2 * x[..., cols]) * out[..., idx[:, 0]])
        for j, kind in enumerate(self.kinds):
            if kind == "categorical":
                a, b = self.out_slices[j]
                code = x[..., j].long().clamp(0, b - a - 1)
                lp[..., j] = out[..., a:b].log_softmax(-1).gather(-1, code[..., None])[..., 0]
        return lp

    def sample_column(self, j: int, out: torch.Tensor) -> torch.Tensor:
        """One draw of column ``j`` given the outputs ``out`` (torch's global RNG)."""
        a, b = self.out_slices[j]
        o, kind = out[..., a:b], self.kinds[j]
        if kind == "continuous":
            k = self.components
            pick = torch.multinomial(o[..., :k].softmax(-1).reshape(-1, k), 1).reshape(
                o.shape[:-1] + (1,)
            )
            loc = o[..., k : 2 * k].gather(-1, pick)[..., 0]
            log_scale = o[..., 2 * k :].clamp(_LOG_SCALE_MIN, _LOG_SCALE_MAX).gather(-1, pick)
            return loc + log_scale[..., 0].exp() * torch.randn_like(loc)
        if kind == "count":
            mean = o[..., 0].clamp(max=_LOG_RATE_MAX).exp()
            if self.count == "negbinomial":  # a Gamma-Poisson mixture
                conc = o[..., 1].clamp(-_LOG_RATE_MAX, _LOG_RATE_MAX).exp()
                mean = torch.distributions.Gamma(conc, conc / mean).sample()
            return torch.poisson(mean)
        if kind == "binary":
            return torch.bernoulli(torch.sigmoid(o[..., 0]))
        return torch.multinomial(o.softmax(-1).reshape(-1, b - a), 1).reshape(o.shape[:-1]).to(out)

    # -- likelihood -----------------------------------------------------------------------------
    def _needs_draws(self, mask: torch.Tensor, m: int = 0) -> torch.Tensor:
        """``(n, d)``: missing entries that come before an observed one of the same row in
        order ``m`` (the ones that cannot be marginalized by leaving them out)."""
        rank = torch.tensor(self.ranks[m], device=mask.device)
        last_observed = torch.where(mask, rank, 0).amax(-1, keepdim=True)
        return ~mask & (rank < last_observed)

    def _exact_for(self, mask: torch.Tensor | None) -> bool:
        """Whether every row's likelihood is exact: no missing entry before an observed one in
        any order."""
        if mask is None:
            return True
        return not any(bool(self._needs_draws(mask, m).any()) for m in range(self.n_orders))

    def _fill(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        k: int,
        columns: list[int],
        m: int = 0,
        progress: bool | None = False,
    ) -> torch.Tensor:
        """``k`` copies of ``x`` ``(k, n, d)`` whose missing entries in ``columns`` are drawn
        column by column, in order ``m``, from that order's conditionals (no gradient)."""
        xs = x.expand(k, *x.shape).clone()
        ms = mask.expand(k, *mask.shape)
        # One network pass per column: sampling wide tables takes seconds, so show a bar.
        bar = progress_bar(len(columns), "sampling columns", progress)
        with torch.no_grad(), bar:
            for j in sorted(columns, key=lambda c: self.ranks[m][c]):
                draw = self.sample_column(j, self.forward_outputs(xs, m))
                xs[..., j] = torch.where(ms[..., j], xs[..., j], draw)
                bar.update()
        return xs

    def _order_log_prob(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int | None, m: int
    ) -> torch.Tensor:
        """``log p_m(x_obs)`` under order ``m``, ``(n,)`` (exact or the weighting estimate)."""
        if mask is None or bool(mask.all()):
            return self.column_log_probs(x, self.forward_outputs(x, m)).sum(-1)
        x = torch.where(mask, x, 0.0)
        columns = self._needs_draws(mask, m).any(0).nonzero().flatten().tolist()
        k = 1 if not columns else int(k or self.missing_particles)
        xs = self._fill(x, mask, k, columns, m) if columns else x[None]
        lp = self.column_log_probs(xs, self.forward_outputs(xs, m))
        log_w = torch.where(mask, lp, 0.0).sum(-1)  # (k, n)
        return log_w.logsumexp(0) - math.log(k)

    def _order_log_probs(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int | None = None
    ) -> torch.Tensor:
        """``log p_m(x_obs)`` of every order, ``(n_orders, n)``."""
        return torch.stack([self._order_log_prob(x, mask, k, m) for m in range(self.n_orders)])

    def log_prob_rows(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int | None = None
    ) -> torch.Tensor:
        """``log p(x_obs)`` of each row ``(n,)``: exact for complete rows and rows whose missing
        entries are trailing in every order; otherwise the likelihood-weighting estimate with
        ``k`` draws (default ``missing_particles``; see the class docstring). With several
        orders, the log of their mean density."""
        lp = self._order_log_probs(x, mask, k)
        return lp[0] if self.n_orders == 1 else lp.logsumexp(0) - math.log(self.n_orders)

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """Log density of each row's observed entries on the encoded scale, ``(n,)``: exact
        unless a row has missing entries before an observed one (then a seeded estimate, see the
        class docstring)."""
        self._check_built()
        if self._exact_for(mask):
            return self.log_prob_rows(x, mask)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)  # the estimate is a function of the data and the fit
            return self._chunked(self.log_prob_rows, x, mask)

    def _chunked(self, fn, x, mask):
        per_row = self.missing_particles * self.n_orders * max(self.n_inputs, 1)
        rows = max(1, 2**20 // per_row)
        parts = [fn(x[s : s + rows], mask[s : s + rows]) for s in range(0, x.shape[0], rows)]
        return torch.cat(parts)

    def elbo_rows(
        self, x: torch.Tensor, mask: torch.Tensor | None, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """The training objective of each row: the exact log-likelihood (no latents, so
        ``kl_weight`` has nothing to scale); one fixed draw for non-trailing missing entries."""
        return self.log_prob_rows(x, mask, k=1)

    # -- Pyro programs ----------------------------------------------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None):
        self._check_built()
        pyro.module("autoregressive", self)
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            xb = x[ind]
            mb = None if mask is None else mask[ind]
            pyro.sample("x", RowsDistribution(self, mb, len(ind)), obs=xb)

    def guide(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None):
        """No latent variables: the guide is empty."""

    # -- what Fit uses ----------------------------------------------------------------------------
    def _by_order(self, x: torch.Tensor, mask: torch.Tensor, orders: torch.Tensor, fn):
        """``fn(x_rows, mask_rows, m)`` for the rows whose order is ``m``, reassembled."""
        if self.n_orders == 1:
            return fn(x, mask, 0)
        out = x.clone()
        for m in range(self.n_orders):
            rows = orders == m
            if bool(rows.any()):
                out[rows] = fn(x[rows], mask[rows], m)
        return out

    def sample(self, n: int, params: Params) -> torch.Tensor:
        """Draw ``n`` rows on the encoded scale column by column (``d`` network passes; with
        several orders, each row from one drawn uniformly; torch's global RNG, seed it first)."""
        d = self._check_built()
        like = next(self.parameters())
        x = like.new_zeros(int(n), d)
        mask = torch.zeros(int(n), d, dtype=torch.bool, device=like.device)
        orders = torch.randint(self.n_orders, (int(n),), device=like.device)
        return self._by_order(
            x, mask, orders, lambda xr, mr, m: self._fill(xr, mr, 1, list(range(d)), m, None)[0]
        )

    def impute(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """``x`` with missing entries drawn from ``p(x_miss | x_obs)``: exactly, column by column,
        for rows whose missing entries are trailing in the order; by sampling importance
        resampling over ``missing_particles`` likelihood-weighted draws otherwise. With several
        orders, each row's order is drawn from its posterior ``p(m | x_obs)`` first."""
        if mask is None or bool(mask.all()):
            return x.clone()
        return self._chunked(self._impute_rows, x, mask)

    def _impute_rows(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.where(mask, x, 0.0)
        orders = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        if self.n_orders > 1:
            with torch.no_grad():
                lp = self._order_log_probs(x, mask)  # (n_orders, n)
            orders = torch.multinomial(lp.mT.softmax(-1), 1)[:, 0]
        return self._by_order(x, mask, orders, self._impute_order)

    def _impute_order(self, x: torch.Tensor, mask: torch.Tensor, m: int) -> torch.Tensor:
        columns = (~mask).any(0).nonzero().flatten().tolist()
        k = self.missing_particles if bool(self._needs_draws(mask, m).any()) else 1
        xs = self._fill(x, mask, k, columns, m)
        if k == 1:
            return xs[0]
        with torch.no_grad():
            lp = self.column_log_probs(xs, self.forward_outputs(xs, m))
        log_w = torch.where(mask, lp, 0.0).sum(-1)  # (k, n)
        pick = torch.multinomial(log_w.mT.softmax(-1), 1)[:, 0]
        return xs[pick, torch.arange(x.shape[0], device=x.device)]

    def n_parameters(self) -> int:
        # Masked-out weights are not free parameters.
        total = 0
        for layer in self.modules():
            if isinstance(layer, MaskedLinear):
                total += int(layer.mask.sum()) + (0 if layer.bias is None else layer.bias.numel())
        return total
