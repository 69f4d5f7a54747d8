"""A conjugate model whose posterior is known exactly, to check samplers against."""

from __future__ import annotations

from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch

from ppgen.models.base import GenerativeModel, Params

__all__ = ["NormalMean"]


class NormalMean(GenerativeModel):
    """Normal observations with known noise and a normal prior on their mean.

    Generative story (d columns, n rows)::

        mean ~ Normal(prior_loc, prior_scale^2 I_d)      # (d,)
        for i in 1..n:
            x[i] ~ Normal(mean, noise_scale^2 I_d)       # (d,)

    The posterior of ``mean`` is normal with precision 1/prior_scale^2 + n/noise_scale^2 per
    column (:meth:`posterior_mean_var`), so any sampler can be checked against it.
    """

    global_sites: ClassVar[tuple[str, ...]] = ("mean",)

    def __init__(self, noise_scale: float = 1.0, prior_loc: float = 0.0, prior_scale: float = 1.0):
        super().__init__()
        self.noise_scale = float(noise_scale)
        self.prior_loc = float(prior_loc)
        self.prior_scale = float(prior_scale)

    def config(self) -> dict[str, Any]:
        return {
            "noise_scale": self.noise_scale,
            "prior_loc": self.prior_loc,
            "prior_scale": self.prior_scale,
        }

    def _prior(self, like: torch.Tensor) -> dist.Distribution:
        loc = like.new_full((self._check_built(),), self.prior_loc)
        return dist.Normal(loc, self.prior_scale).to_event(1)

    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        mean = pyro.sample("mean", self._prior(x))
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            like = dist.Normal(mean, self.noise_scale)
            if mask is not None:
                like = like.mask(mask[ind])
            pyro.sample("x", like.to_event(1), obs=x[ind])

    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        return {"mean": (x * mask).sum(0) / mask.sum(0).clamp_min(1)}

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        like = dist.Normal(params["mean"], self.noise_scale)
        lp = like.log_prob(x)
        return (lp if mask is None else lp * mask).sum(-1)

    def log_prior(self, params: Params) -> torch.Tensor:
        return self._prior(params["mean"]).log_prob(params["mean"])

    def sample(self, n: int, params: Params) -> torch.Tensor:
        mean = params["mean"]
        return mean + self.noise_scale * torch.randn(
            n, mean.shape[-1], dtype=mean.dtype, device=mean.device
        )

    def n_parameters(self) -> int:
        return self._check_built()

    def posterior_mean_var(
        self, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior mean and variance of ``mean`` per column."""
        n = mask.sum(0).to(x.dtype)
        precision = 1 / self.prior_scale**2 + n / self.noise_scale**2
        total = (x * mask).sum(0)
        mean = (self.prior_loc / self.prior_scale**2 + total / self.noise_scale**2) / precision
        return mean, precision.reciprocal()
