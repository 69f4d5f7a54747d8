"""Bayesian PCA with automatic relevance determination (Bishop 1999)."""

from __future__ import annotations

from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch

from ppgen._utils import check_number
from ppgen.data.schema import Schema
from ppgen.models.base import Params
from ppgen.models.ppca import PPCA

__all__ = ["BayesianPCA"]


class BayesianPCA(PPCA):
    r"""Probabilistic PCA whose loadings switch themselves off (ARD; Bishop 1999).

    Generative story (d columns, q = ``n_components`` candidate components, default d - 1)::

        alpha[c] ~ Gamma(a, b)                          # precision of component c's loadings
        W[:, c]  ~ Normal(0, 1 / alpha[c])              # (d,) column c of the loadings
        loc, noise: flat (maximum likelihood, as PPCA's)
        z[i] ~ Normal(0, I_q);  x[i] ~ Normal(W z[i] + loc, noise I_d)

    With z integrated out x[i] ~ N(loc, W W^T + noise I) (PPCA's exact :meth:`log_prob`, missing
    entries marginalized). A component the data do not support gets a large ``alpha`` and its
    loadings shrink to zero: the number of components left is the effective dimension
    (:meth:`effective_dimension`).

    *Estimator* (``method="em"``, the default): the posterior mode of (W, alpha) with loc and
    noise at their maximum, by expectation conditional maximization: PPCA's E-step and W, loc,
    noise updates with the ARD precisions in the W update (:meth:`loadings_penalty`), then
    ``alpha_c = (d/2 + a - 1) / (||W[:, c]||^2 / 2 + b)``, the exact conditional maximizer.
    Every step raises the objective ``log p(x | W, loc, noise) + log p(W | alpha) + log
    p(alpha)``, which the Gamma hyperprior keeps bounded (``b > 0``). This is Bishop's (1999a)
    type-II re-estimation of alpha made a proper MAP by the hyperprior; ``method="map"``,
    ``"svi"`` and ``"nuts"`` fit the same Pyro model. ``a`` and ``b`` are vague, ``b`` in units
    of the data's mean column variance.

    Parameters
    ----------
    n_components : int, optional
        Candidate components (default: number of columns - 1, the most ARD can use).
    a, b : float
        Shape and rate of the Gamma hyperprior on each alpha (``b`` times the data's mean column
        variance).
    standardize : bool
        Model the columns scaled to unit variance (see PPCA).

    References
    ----------
    Bishop, C. M. (1999a). Bayesian PCA. *Advances in Neural Information Processing Systems* 11,
    382-388.
    Bishop, C. M. (1999b). Variational principal components. *Proc. ICANN* 1, 509-514.
    """

    global_sites: ClassVar[tuple[str, ...]] = ("W", "loc", "noise", "alpha")

    def __init__(
        self,
        n_components: int | None = None,
        *,
        a: float = 1e-3,
        b: float = 1e-3,
        standardize: bool = False,
    ) -> None:
        self.requested = None if n_components is None else int(n_components)
        super().__init__(1 if n_components is None else n_components, standardize=standardize)
        self.a = check_number(a, "a")
        self.b = check_number(b, "b")

    def config(self) -> dict[str, Any]:
        return {
            "n_components": self.requested,
            "a": self.a,
            "b": self.b,
            "standardize": self.standardize,
        }

    def build(self, schema: Schema) -> BayesianPCA:
        if self.requested is None:
            self.n_components = max(len(schema) - 1, 1)
        return super().build(schema)

    def _rate(self) -> float:
        return self.b * self.unit**2

    def _globals(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d, q = self._check_built(), self.n_components
        priors = self.priors(like)
        alpha = pyro.sample(
            "alpha",
            dist.Gamma(like.new_full((q,), self.a), like.new_full((q,), self._rate())).to_event(1),
        )
        W = pyro.sample("W", dist.Normal(like.new_zeros(d, q), alpha.rsqrt()).to_event(2))
        # loc and noise: PPCA's weak priors in the Pyro programs (flat in EM).
        return W, pyro.sample("loc", priors["loc"]), pyro.sample("noise", priors["noise"])

    def _alpha(self, W: torch.Tensor) -> torch.Tensor:
        d = W.shape[0]
        return (d / 2 + self.a - 1) / ((W**2).sum(0) / 2 + self._rate())

    def loadings_penalty(self, params: Params, default: torch.Tensor) -> torch.Tensor:
        return params["noise"] * torch.diag_embed(params["alpha"])

    def em_update(
        self, stats: dict[str, torch.Tensor], params: Params
    ) -> tuple[Params, torch.Tensor]:
        """PPCA's M-step with the ARD precisions in the W update, then alpha's closed form;
        returns the objective (log-likelihood + log prior of W and alpha) at ``params``.
        PPCA's ``em_step`` (the E-step's statistics, then this) is BayesianPCA's EM step."""
        new, objective = super().em_update(stats, params)
        new["alpha"] = self._alpha(new["W"])
        return new, objective

    def log_prior(self, params: Params) -> torch.Tensor:
        """log N(W | 0, 1/alpha) + log Gamma(alpha | a, b): flat in loc and noise."""
        W, alpha = params["W"], params["alpha"]
        rate = alpha.new_tensor(self._rate())
        log_w = dist.Normal(torch.zeros_like(W), alpha.rsqrt()).log_prob(W).sum()
        return log_w + dist.Gamma(alpha.new_tensor(self.a), rate).log_prob(alpha).sum()

    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        params = super().init_params(x, mask, generator)
        return {**params, "alpha": self._alpha(params["W"])}

    def effective_dimension(self, params: Params, threshold: float = 0.01) -> int:
        """Components whose variance ``||W[:, c]||^2 / d`` is at least ``threshold`` times the
        noise variance: the others explain less than 1% of a column's noise and are off."""
        W = params["W"]
        return int(((W**2).mean(0) >= threshold * params["noise"]).sum())

    def describe(self, params: Params, schema: Schema) -> Params:
        """PPCA's description plus the ARD precisions ``alpha`` and the effective dimension."""
        out = super().describe(params, schema)
        dim = self.effective_dimension(params)
        return {**out, "alpha": params["alpha"], "effective_dimension": params["W"].new_tensor(dim)}

    def describe_coords(self, schema: Schema) -> dict[str, tuple[tuple, ...]]:
        return {**super().describe_coords(schema), "alpha": (tuple(range(self.n_components)),)}
