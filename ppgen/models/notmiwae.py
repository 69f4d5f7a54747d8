"""not-MIWAE: a VAE with the missingness mechanism modelled jointly (missing not at random)."""

from __future__ import annotations

from typing import Any

import pyro
import torch
from torch import nn

from ppgen.models.base import Params
from ppgen.models.vae import VAE

__all__ = ["NotMIWAE"]


class NotMIWAE(VAE):
    r"""not-MIWAE (Ipsen, Mattei & Frellsen 2021): a VAE and a self-masking missingness model.

    A selection model for data missing not at random: the mask is an observation like the
    data, and the probability that an entry goes missing depends on the (possibly unseen) entry
    itself. Generative story (n rows, d continuous columns on the standardized scale)::

        for i in 1..n:
            z[i]    ~ Normal(0, I_q)                               # site "z"
            out[i]  = decoder(z[i])                                # as in VAE
            x[i,j]  ~ Normal(out[i,j], sigma_j)      for every j   # observed entries: site "x"
            m[i,j]  ~ Bernoulli(sigmoid(a_j + b_j * x[i,j]))       # 1 = missing: site "m"

    the per-column logistic self-masking of the paper's experiments (``b_j > 0``: large values
    go missing more often; ``b_j = 0`` is MCAR). Training maximizes the importance-weighted
    bound on ``log p(x_obs, m)`` (``ppgen.fit(..., objective="iwae", num_particles=K)``;
    :class:`ppgen.Imputer` sets it): each of the K particles draws ``z_k ~ q(z | x_obs, m)``
    and the missing entries ``x_mis,k ~ p(x_mis | z_k)`` (reparameterized), with log weight

        log p(x_obs | z_k) + log p(m | x_obs, x_mis,k) + log p(z_k) - log q(z_k | x_obs, m)

    (the proposal of ``x_mis`` is its prior given ``z``, so its density cancels). With every
    entry observed the site ``m`` still scores the all-observed mask. The Pyro model writes
    ``log p(m | x)`` as a factor site ``"m"`` after one such draw of ``x_mis``, so the traced
    weights (:mod:`ppgen.models.weights`, :func:`ppgen.evaluate.iwae`) are the same.

    Imputation (:meth:`impute`) is self-normalized importance sampling with those weights: one
    particle is resampled with probability proportional to its weight and *its own* draw of
    ``x_mis`` is returned (the weight depends on it). Observed entries are never changed.

    Only continuous columns (the self-masking needs a reparameterized draw of the missing
    entry); use :class:`ppgen.VAE` with a delta adjustment (:class:`ppgen.Imputer`'s ``delta``)
    for other kinds.

    Parameters
    ----------
    n_latent, hidden, activation, guide, flow_options, continuous_scale, impute_particles
        As :class:`ppgen.VAE`.

    Attributes
    ----------
    mask_intercept, mask_slope : torch.nn.Parameter, shape (d,)
        ``a_j`` and ``b_j`` above, on the standardized scale of each column (built with the
        networks, saved with them).

    References
    ----------
    Ipsen, N. B., Mattei, P.-A. & Frellsen, J. (2021). not-MIWAE: deep generative modelling
    with missing not at random data. *ICLR*.
    Mattei, P.-A. & Frellsen, J. (2019). MIWAE: deep generative modelling and imputation of
    incomplete data sets. *ICML*.
    Little, R. J. A. & Rubin, D. B. (2019). *Statistical Analysis with Missing Data*, 3rd ed.,
    ch. 15 (selection models). Wiley.
    """

    supported_kinds = ("continuous",)
    kinds_hint = "not-MIWAE models continuous columns only; use VAE with delta for others."

    def build_networks(self) -> None:
        super().build_networks()
        d = self.heads.dim
        # Zero slope and intercept: MCAR with probability 1/2 until the data say otherwise.
        self.mask_intercept = nn.Parameter(torch.zeros(d))
        self.mask_slope = nn.Parameter(torch.zeros(d))

    # -- the missingness model --------------------------------------------------------------------
    def mask_log_prob(self, filled: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``log p(m | x)`` of each row, ``filled.shape[:-1]``: the self-masking logistic of
        every column at the completed row ``filled`` (mask True = observed, None = all)."""
        logits = self.mask_intercept + self.mask_slope * filled  # logit P(missing)
        missing = torch.zeros_like(filled, dtype=torch.bool) if mask is None else ~mask
        # log sigmoid(l) where missing, log sigmoid(-l) where observed.
        return -nn.functional.softplus(torch.where(missing, -logits, logits)).sum(-1)

    def _fill(self, x: torch.Tensor, mask: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
        """The rows completed by one reparameterized draw of each missing entry from
        ``p(x_mis | out)``, observed entries as given; broadcast to ``out.shape[:-1] + (d,)``."""
        draw = self.heads.sample(out)
        return torch.where(_observed(mask, x), x, draw)

    def _particles(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int, kl_weight: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log weights ``(k, n)`` of ``k`` particles per row and their completed rows
        ``(k, n, d)``."""
        z, log_ratio = self.latent_particles(x, mask, k)
        out = self.decoder(z)
        filled = self._fill(x, mask, out)
        log_lik = self.heads.log_prob(x, mask, out) + self.mask_log_prob(filled, mask)
        return log_lik + (log_ratio if kl_weight == 1.0 else kl_weight * log_ratio), filled

    # -- Pyro program -----------------------------------------------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        self._check_built()
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            z = pyro.sample("z", self._prior(x, len(ind)))
            out = self.decoder(z)
            self.observe(x, mask, out, ind)
            xb = x if len(ind) == x.shape[0] else x[ind]
            mb = None if mask is None else (mask if len(ind) == mask.shape[0] else mask[ind])
            pyro.factor("m", self.mask_log_prob(self._fill(xb, mb, out), mb))

    # -- hooks ------------------------------------------------------------------------------------
    def particle_log_weights(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """Log weights of ``k`` particles per row, ``(k, n)``: the class docstring's, with
        ``log p(x_obs, m | z)`` in place of the VAE's ``log p(x_obs | z)`` (the same draws as
        the traced programs: z first, then the missing entries)."""
        return self._particles(x, mask, k, kl_weight)[0]

    def impute(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """One draw of the missing entries given the observed ones *and the mask*, by
        self-normalized importance sampling over ``impute_particles`` particles (torch's global
        RNG; seed it first). Observed entries are returned unchanged."""
        if mask is None or bool(mask.all()):
            return x.clone()
        rows = max(1, 2**20 // (self.impute_particles * max(self.heads.n_outputs, 1)))
        chunks = zip(x.split(rows), mask.split(rows), strict=True)
        return torch.cat([self._resample(xb, mb) for xb, mb in chunks])

    def _resample(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One particle per row drawn with probability proportional to its weight; its own
        completed row, the observed entries as given."""
        log_w, filled = self._particles(x, mask, self.impute_particles)
        pick = torch.multinomial(log_w.mT.softmax(-1), 1).squeeze(-1)  # (n,)
        chosen = filled[pick, torch.arange(x.shape[0], device=x.device)]
        return torch.where(mask, x, chosen)  # observed entries bit for bit

    def missingness(self) -> dict[str, Any]:
        """The fitted self-masking logistic per column: ``{"intercept": [...], "slope":
        [...]}`` on the standardized scale (logit P(missing) = intercept + slope * x)."""
        return {
            "intercept": self.mask_intercept.detach().cpu().tolist(),
            "slope": self.mask_slope.detach().cpu().tolist(),
        }


def _observed(mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(x, dtype=torch.bool) if mask is None else mask
