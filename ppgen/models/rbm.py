"""Restricted Boltzmann machine: Bernoulli-Bernoulli and Gaussian-Bernoulli.

Generative story
----------------
Visible units ``v`` (one per column) and binary hidden units ``h`` in ``{0, 1}^H`` have the joint
density ``p(v, h) = exp(-E(v, h)) / Z`` with the energy

* Bernoulli visibles (``v`` in ``{0, 1}^p``)::

      E(v, h) = -v.b_visible - h.c_hidden - v.W.h

* Gaussian visibles (``v`` real, unit variance on the encoded scale: continuous columns are
  standardized, so the variance is not learned)::

      E(v, h) = ||v - b_visible||^2 / 2 - h.c_hidden - v.W.h

The hidden units are independent given ``v`` (``p(h_j = 1 | v) = sigmoid(c_j + v.W_j)``) and the
visibles independent given ``h`` (Bernoulli with logits ``b + W h``, or ``N(b + W h, 1)``), so
block Gibbs sampling alternates the two layers, and summing out ``h`` gives the exact free energy

    F(v) = -log sum_h exp(-E(v, h)) = -v.b - sum_j softplus(c_j + v.W_j)       (Bernoulli)
    F(v) = ||v - b||^2 / 2 - sum_j softplus(c_j + v.W_j)                      (Gaussian)

with ``p(v) = exp(-F(v)) / Z``. The partition function ``Z`` is intractable for many hidden units:
:meth:`~ppgen.Fit.log_prob` raises, and :func:`ppgen.evaluate.ais` estimates log Z by annealed
importance sampling (Salakhutdinov & Murray 2008; :mod:`ppgen.evaluate.partition`), exactly by
enumeration with :meth:`RBM.exact_log_partition` when ``H`` is small.

Missing visibles are summed out exactly: given ``h`` each missing unit contributes its own
normalizer (``1 + exp(b_i + W_i.h)``, or ``sqrt(2 pi) exp(b_i a_i + a_i^2 / 2)`` with
``a_i = W_i.h``), which no longer factorizes over the hidden units, so rows with missing entries
are scored by enumerating the hidden units (``H <= 16``) or, for Bernoulli visibles, the missing
visibles (at most 16 missing in the row).

Training is contrastive divergence (CD-k, Hinton 2002) or persistent CD (Tieleman 2008):
``ppgen.fit(RBM(...), data)`` uses ``method="cd"`` (:mod:`ppgen.infer.engines.cd`).

References
----------
Smolensky, P. (1986). Information processing in dynamical systems: foundations of harmony theory.
Hinton, G. E. (2002). Training products of experts by minimizing contrastive divergence.
*Neural Computation* 14, 1771-1800.
Tieleman, T. (2008). Training restricted Boltzmann machines using approximations to the
likelihood gradient. *ICML*.
Salakhutdinov, R. & Murray, I. (2008). On the quantitative analysis of deep belief networks.
*ICML*.
Hinton, G. E. (2012). A practical guide to training restricted Boltzmann machines. In *Neural
Networks: Tricks of the Trade*, 599-619.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F

from ppgen._utils import check_positive_int
from ppgen.data.schema import Schema
from ppgen.models.base import GenerativeModel, Params, constant_columns

__all__ = ["RBM", "RBMAnnealer"]

VISIBLE = ("bernoulli", "gaussian")
#: Most hidden units (or missing Bernoulli visibles of a row) enumerated to score a row with
#: missing entries exactly; 2^16 states per row.
MAX_ENUMERATED = 16
_LOG_2PI = math.log(2.0 * math.pi)


def _states(k: int, like: torch.Tensor) -> torch.Tensor:
    """All ``2^k`` binary vectors of length ``k``, shape (2^k, k)."""
    grid = list(itertools.product((0.0, 1.0), repeat=k))
    return torch.tensor(grid, dtype=like.dtype, device=like.device).reshape(-1, k)


class RBM(GenerativeModel):
    """Restricted Boltzmann machine with ``n_hidden`` binary hidden units.

    Parameters
    ----------
    n_hidden : int
        Number of hidden units H.
    visible : {"bernoulli", "gaussian"}
        Bernoulli visibles for 0/1 columns (binary columns, or numeric columns holding only 0
        and 1: read unstandardized), Gaussian visibles with unit variance for continuous columns
        (standardized by the data layer).
    n_gibbs : int
        Block Gibbs sweeps run from a fresh start by :meth:`ppgen.Fit.sample` (burn-in; each
        row is the end of its own chain) and by :meth:`ppgen.Fit.impute`.

    Notes
    -----
    ``Fit.params`` holds ``W`` (p x H), ``b_visible`` (p,) and ``c_hidden`` (H,) on the encoded
    scale. ``Fit.transform`` gives the hidden units' probabilities ``p(h_j = 1 | v)`` (for rows
    with missing entries: given the entries imputed by a Gibbs chain clamped at the observed
    ones). ``Fit.log_prob`` raises: use ``ppgen.evaluate.ais(fit, data)``. A column that is
    constant in the training data is refused (its bias would diverge).
    """

    global_sites: ClassVar[tuple[str, ...]] = ("W", "b_visible", "c_hidden")
    unnormalized: ClassVar[bool] = True
    kinds_hint: ClassVar[str] = (
        "RBM(visible='bernoulli') models 0/1 columns, RBM(visible='gaussian') continuous ones"
    )
    label_arguments: ClassVar[int] = 2

    def __init__(self, n_hidden: int, visible: str = "bernoulli", n_gibbs: int = 1000) -> None:
        super().__init__()
        self.n_hidden = check_positive_int(n_hidden, "n_hidden")
        if visible not in VISIBLE:
            raise ValueError(f"visible must be one of {VISIBLE}, got {visible!r}")
        self.visible = visible
        self.n_gibbs = check_positive_int(n_gibbs, "n_gibbs")
        # Bernoulli visibles read 0/1 numeric columns as they are: standardizing would move them.
        self.standardize = visible == "gaussian"
        bernoulli = visible == "bernoulli"
        self.supported_kinds = ("binary", "continuous") if bernoulli else ("continuous",)
        self.names: tuple[str, ...] = ()

    @property
    def default_method(self) -> str:
        return "cd"

    def config(self) -> dict[str, Any]:
        return {"n_hidden": self.n_hidden, "visible": self.visible, "n_gibbs": self.n_gibbs}

    def build(self, schema: Schema) -> RBM:
        super().build(schema)
        self.names = tuple(schema.names)
        return self

    # -- the energy -----------------------------------------------------------------------------
    def _visible_terms(self, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """log exp(-E) terms of observed visibles given their hidden input ``a = W h``."""
        if self.visible == "bernoulli":
            return v * (b + a)
        return -0.5 * (v - b) ** 2 + v * a

    def _missing_terms(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """log of a missing visible's integral (sum) of exp(-E) given its hidden input ``a``."""
        if self.visible == "bernoulli":
            return F.softplus(b + a)
        return 0.5 * _LOG_2PI + b * a + 0.5 * a**2

    def free_energy(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> torch.Tensor:
        """Exact free energy of each row's observed entries (missing ones summed out)."""
        W, b, c = params["W"], params["b_visible"], params["c_hidden"]
        if mask is None or bool(mask.all()):
            return self._free_energy_complete(x, W, b, c)
        out = x.new_empty(x.shape[0])
        full = mask.all(-1)
        if bool(full.any()):
            out[full] = self._free_energy_complete(x[full], W, b, c)
        for i in torch.nonzero(~full).flatten().tolist():
            out[i] = self._free_energy_missing(x[i], mask[i], W, b, c)
        return out

    def _free_energy_complete(self, x, W, b, c) -> torch.Tensor:
        hidden = F.softplus(c + x @ W).sum(-1)
        if self.visible == "bernoulli":
            return -(x @ b) - hidden
        return 0.5 * ((x - b) ** 2).sum(-1) - hidden

    def _free_energy_missing(self, v, observed, W, b, c) -> torch.Tensor:
        """One row with missing entries: enumerate the hidden units, or the missing Bernoulli
        visibles, whichever is smaller (and allowed)."""
        v = torch.where(observed, v, torch.zeros_like(v))
        n_missing = int((~observed).sum())
        H = self.n_hidden
        if self.visible == "bernoulli" and n_missing <= min(H, MAX_ENUMERATED):
            fills = _states(n_missing, v)
            rows = v.expand(fills.shape[0], -1).clone()
            rows[:, ~observed] = fills
            return -torch.logsumexp(-self._free_energy_complete(rows, W, b, c), 0)
        if H > MAX_ENUMERATED:
            raise ValueError(
                f"a row with {n_missing} missing entries is scored exactly by enumerating "
                f"2^{H} hidden states, more than 2^{MAX_ENUMERATED}; impute it first "
                "(fit.impute) or drop the row"
            )
        h = _states(H, v)
        a = h @ W.T  # (S, p) hidden input of each visible
        terms = torch.where(observed, self._visible_terms(v, a, b), self._missing_terms(a, b))
        return -torch.logsumexp(h @ c + terms.sum(-1), 0)

    def exact_log_partition(self, params: Params) -> torch.Tensor:
        """log Z by enumerating the ``2^H`` hidden states (``H <= 24``), in chunks."""
        W, b, c = params["W"], params["b_visible"], params["c_hidden"]
        H = W.shape[1]
        if H > 24:
            raise ValueError(f"exact log Z enumerates 2^n_hidden states; n_hidden={H} > 24")
        low = min(H, 12)
        low_states = _states(low, W)  # the last `low` units vary fastest
        parts = []
        for high in itertools.product((0.0, 1.0), repeat=H - low):
            head = torch.tensor(high, dtype=W.dtype, device=W.device).expand(len(low_states), -1)
            h = torch.cat([head, low_states], 1)
            a = h @ W.T
            parts.append(torch.logsumexp(h @ c + self._missing_terms(a, b).sum(-1), 0))
        return torch.logsumexp(torch.stack(parts), 0)

    # -- the Pyro program ---------------------------------------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        """Nominal Normal(0, 10) priors on the weights (for tracing; CD is maximum likelihood)
        and the unnormalized density ``exp(-F(x))`` as the factor ``"x"``: log Z is missing, so
        only the CD engine fits this program."""
        p, H = self._check_built(), self.n_hidden
        zero = x.new_zeros(())
        W = pyro.sample("W", dist.Normal(zero, 10.0).expand([p, H]).to_event(2))
        b = pyro.sample("b_visible", dist.Normal(zero, 10.0).expand([p]).to_event(1))
        c = pyro.sample("c_hidden", dist.Normal(zero, 10.0).expand([H]).to_event(1))
        with pyro.plate("data", x.shape[-2], dim=-1):
            fe = self.free_energy(x, mask, {"W": W, "b_visible": b, "c_hidden": c})
            pyro.factor("x", -fe)

    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        """Small random weights (sd 0.01), visible biases at the data's log-odds (Bernoulli) or
        means (Gaussian), hidden biases 0 (Hinton 2012). Refuses constant columns and, for
        Bernoulli visibles, values other than 0 and 1."""
        p, H = self._check_built(), self.n_hidden
        self.check_data(x, mask)
        W = 0.01 * torch.randn(p, H, generator=generator, dtype=x.dtype).to(x.device)
        mean = _observed_mean(x, mask)
        if self.visible == "bernoulli":
            b = torch.logit(mean.clamp(1e-3, 1 - 1e-3))
        else:
            b = mean
        return {"W": W, "b_visible": b, "c_hidden": x.new_zeros(H)}

    def check_data(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        """Refuse constant columns and, for Bernoulli visibles, values other than 0 and 1."""
        names = self.names or tuple(f"x{j}" for j in range(x.shape[1]))
        constant = constant_columns(x, mask, names)
        if constant:
            raise ValueError(
                f"columns {constant} are constant in the training data; an RBM cannot fit a "
                "constant visible unit (its bias diverges): drop them"
            )
        if self.visible == "bernoulli":
            bad = [
                names[j]
                for j in range(x.shape[1])
                if not bool(((x[:, j] == 0) | (x[:, j] == 1) | ~mask[:, j]).all())
            ]
            if bad:
                raise ValueError(
                    f"RBM(visible='bernoulli') needs 0/1 values; columns {bad} hold others "
                    "(use visible='gaussian' for continuous columns)"
                )

    # -- Gibbs sampling -------------------------------------------------------------------------
    def hidden_probs(self, v: torch.Tensor, params: Params) -> torch.Tensor:
        """``p(h_j = 1 | v)``, shape (n, H)."""
        return torch.sigmoid(params["c_hidden"] + v @ params["W"])

    def sample_visible(self, h: torch.Tensor, params: Params) -> torch.Tensor:
        """A draw of ``v | h``."""
        mean = params["b_visible"] + h @ params["W"].T
        if self.visible == "bernoulli":
            return torch.bernoulli(torch.sigmoid(mean))
        return mean + torch.randn_like(mean)

    def chain_init(self, n: int, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Fresh chains: independent visibles with the training rows' marginals."""
        return _marginal_draws(n, x, self.visible)

    def chain_step(self, v: torch.Tensor, params: Params, n_steps: int) -> torch.Tensor:
        """``n_steps`` block Gibbs sweeps ``h ~ p(h | v)``, ``v ~ p(v | h)``."""
        for _ in range(n_steps):
            h = torch.bernoulli(self.hidden_probs(v, params))
            v = self.sample_visible(h, params)
        return v

    def sample(self, n: int, params: Params) -> torch.Tensor:
        """``n`` independent Gibbs chains of ``n_gibbs`` sweeps, started at the visibles'
        biases (uses torch's global RNG)."""
        p = self._check_built()
        b = params["b_visible"].expand(int(n), p)
        start = torch.bernoulli(torch.sigmoid(b)) if self.visible == "bernoulli" else b.clone()
        return self.chain_step(start, params, self.n_gibbs)

    def _clamped_chain(self, x, mask, params, n_steps: int) -> torch.Tensor:
        """Gibbs chains clamped at the observed entries; missing ones start from the biases."""
        fill = params["b_visible"].expand_as(x)
        if self.visible == "bernoulli":
            fill = torch.bernoulli(torch.sigmoid(fill))
        v = torch.where(mask, x, fill)
        if bool(mask.all()):
            return v
        for _ in range(n_steps):
            h = torch.bernoulli(self.hidden_probs(v, params))
            v = torch.where(mask, x, self.sample_visible(h, params))
        return v

    def impute(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """Missing entries from a Gibbs chain clamped at the row's observed entries, after
        ``n_gibbs`` sweeps (a draw from their conditional, up to the chain's mixing)."""
        if mask is None:
            return x
        return self._clamped_chain(x, mask, params, self.n_gibbs)

    def posterior(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden-unit probabilities ``p(h = 1 | v)`` and their Bernoulli variances (rows with
        missing entries: given one clamped-Gibbs completion)."""
        if mask is not None and not bool(mask.all()):
            x = self._clamped_chain(x, mask, params, self.n_gibbs)
        probs = self.hidden_probs(x, params)
        return probs, probs * (1 - probs)

    def annealer(self, x: torch.Tensor, mask: torch.Tensor, params: Params) -> RBMAnnealer:
        """Salakhutdinov & Murray's path from independent visibles with the marginals of rows
        ``x`` (base RBM with W = 0, c = 0) to this RBM."""
        mean = _observed_mean(x, mask)
        if self.visible == "bernoulli":
            n = mask.sum(0).to(x.dtype)
            # Smoothed marginals (add one to each count): no base logit is infinite.
            base = torch.logit((mean * n + 1) / (n + 2))
            scale = None
        else:
            centred = torch.where(mask, x - mean, torch.zeros_like(x))
            var = (centred**2).sum(0) / mask.sum(0).clamp(min=1)
            base, scale = mean, var.clamp(min=1e-2).sqrt()
        return RBMAnnealer(self, dict(params), base, scale)

    def n_parameters(self) -> int:
        p = self._check_built()
        return p * self.n_hidden + p + self.n_hidden

    def describe_coords(self, schema: Schema) -> dict[str, tuple[tuple, ...]]:
        hidden = tuple(f"h{j}" for j in range(self.n_hidden))
        names = tuple(schema.names)
        return {"W": (names, hidden), "b_visible": (names,), "c_hidden": (hidden,)}


def _observed_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    total = torch.where(mask, x, torch.zeros_like(x)).sum(0)
    return total / mask.sum(0).clamp(min=1).to(x.dtype)


def _marginal_draws(n: int, x: torch.Tensor, visible: str) -> torch.Tensor:
    """``n`` rows of independent visibles with the marginals of ``x`` (fully observed)."""
    mean = x.mean(0).expand(int(n), -1)
    if visible == "bernoulli":
        return torch.bernoulli(mean.clamp(0.0, 1.0))
    return mean + x.std(0) * torch.randn_like(mean)


@dataclass
class RBMAnnealer:
    """The geometric path ``p_beta(v, h) ~ p_A(v)^(1 - beta) exp(-beta E(v, h))`` between a base
    of independent visibles ``p_A`` (and uniform hidden units) and the RBM (Salakhutdinov &
    Murray 2008), with its exact Gibbs transitions. The state is the visible vector."""

    rbm: RBM
    params: Params
    base: torch.Tensor  # Bernoulli: base logits; Gaussian: base means
    scale: torch.Tensor | None  # Gaussian: base standard deviations

    @property
    def log_z_base(self) -> float:
        """log of the base's normalizer, hidden units included (2^H)."""
        H = self.rbm.n_hidden
        if self.scale is None:
            visible = F.softplus(self.base).sum()
        else:
            visible = (0.5 * _LOG_2PI + torch.log(self.scale)).sum()
        return float(H * math.log(2.0) + visible)

    def init(self, n: int) -> torch.Tensor:
        """Exact draws from the base."""
        shape = (int(n), self.base.shape[0])
        if self.scale is None:
            return torch.bernoulli(torch.sigmoid(self.base).expand(shape))
        return self.base + self.scale * torch.randn(
            shape, dtype=self.base.dtype, device=self.base.device
        )

    def _base_log(self, v: torch.Tensor) -> torch.Tensor:
        if self.scale is None:
            return v @ self.base
        return (-0.5 * ((v - self.base) / self.scale) ** 2).sum(-1)

    def log_f(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        """Unnormalized log marginal of ``v`` at inverse temperature ``beta``."""
        p = self.params
        hidden = F.softplus(beta * (p["c_hidden"] + v @ p["W"])).sum(-1)
        if self.scale is None:
            own = v @ p["b_visible"]
        else:
            own = -0.5 * ((v - p["b_visible"]) ** 2).sum(-1)
        return (1.0 - beta) * self._base_log(v) + beta * own + hidden

    def step(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        """One block Gibbs sweep leaving ``p_beta`` invariant."""
        p = self.params
        h = torch.bernoulli(torch.sigmoid(beta * (p["c_hidden"] + v @ p["W"])))
        drive = p["b_visible"] + h @ p["W"].T
        if self.scale is None:
            return torch.bernoulli(torch.sigmoid((1.0 - beta) * self.base + beta * drive))
        precision = (1.0 - beta) / self.scale**2 + beta
        mean = ((1.0 - beta) * self.base / self.scale**2 + beta * drive) / precision
        return mean + torch.randn_like(mean) / precision.sqrt()

    def exact_samples(self, n: int) -> torch.Tensor | None:
        """``n`` exact draws from the RBM (hidden units by enumeration, then ``v | h``) when
        ``H <= 16``, else None: they start the reverse AIS pass."""
        H = self.rbm.n_hidden
        if H > MAX_ENUMERATED:
            return None
        p = self.params
        h = _states(H, p["W"])
        log_w = h @ p["c_hidden"] + self.rbm._missing_terms(h @ p["W"].T, p["b_visible"]).sum(-1)
        idx = torch.multinomial(torch.softmax(log_w, 0), int(n), replacement=True)
        return self.rbm.sample_visible(h[idx], p)
