"""Variational autoencoder for tables of mixed column kinds (and images as tables of pixels)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen._utils import check_int, check_ints
from ppgen.models.amortized import ACTIVATIONS, MIN_SCALE, AmortizedModel, check_architecture, mlp
from ppgen.models.base import Params

__all__ = ["VAE"]


class VAE(AmortizedModel):
    r"""Variational autoencoder with one Gaussian latent layer (Kingma & Welling 2014).

    Generative story (n rows, d columns, q = ``n_latent``)::

        for i in 1..n:
            z[i]   ~ Normal(0, I_q)                              # (q,) site "z"
            out[i] = decoder(z[i])                               # (n_outputs,) an MLP
            x[i,j] ~ Head_j(out[i])  for each observed entry j   # site "x", (d,)

    where ``Head_j`` is the column's likelihood (as in HI-VAE, Nazabal et al. 2020):
    Normal(loc, scale) on the standardized scale for continuous columns (scale learned per
    column, or one shared), Poisson(exp(log_rate)) for counts, Bernoulli(logits) for binary and
    Categorical(logits) for categorical columns (see :class:`~ppgen.models.amortized.Heads`).
    Missing entries are left out of the likelihood (masked, never filled in).

    Guide (amortized inference, one network for all rows)::

        h[i]   = encoder([x[i] zero-filled, mask[i]])            # sees which entries are missing
        z[i]   ~ Normal(loc(h[i]), scale(h[i]))                  # guide="gaussian"
        z[i]   ~ Flow(Normal(loc(h[i]), scale(h[i])), h[i])      # guide="flow"

    Training on tables with missing values maximizes the ELBO of the observed entries; the
    encoder's input is the zero-filled row with its mask, so it learns q(z | x_obs) (MIWAE,
    Mattei & Frellsen 2019). The networks are point estimates (maximum ELBO, or with
    ``ppgen.fit(..., objective="iwae", num_particles=K)`` maximum importance-weighted bound,
    MIWAE's own training, which imputes better).

    Parameters
    ----------
    n_latent : int
        Latent dimension q.
    hidden : sequence of int
        Widths of the encoder's hidden layers; the decoder uses them in reverse order. ``()``
        gives linear maps (with ``activation="identity"``, a linear VAE: with
        ``continuous_scale="shared"`` its optimum is PPCA's maximum-likelihood fit, Lucas et
        al. 2019).
    activation : {"relu", "tanh", "elu", "identity"} or None
        Non-linearity after each hidden layer (None means "identity").
    guide : {"gaussian", "flow"}
        Diagonal Gaussian encoder, or that Gaussian transformed by an amortized normalizing
        flow (:class:`ppgen.guides.flows.AmortizedFlow`, conditioned on the encoder's last
        hidden layer) for a more flexible q(z | x).
    flow_options : dict, optional
        Keyword arguments of :class:`ppgen.guides.flows.AmortizedFlow`.
    continuous_scale : {"column", "shared"}
        One noise scale per continuous column, or one shared by all of them.
    impute_particles : int
        Importance particles K per row for :meth:`impute` (MIWAE).

    Notes
    -----
    Fitted with ``ppgen.fit(VAE(...), data, ...)``: minibatch SVI with early stopping on a
    held-out split (:func:`ppgen.infer.amortized.fit_amortized`; DataFrames are fitted in
    float64; ``dtype=torch.float32`` trains 1.5-5 times faster on CPU). There is no exact
    likelihood; estimate it with :func:`ppgen.evaluate.iwae` or :func:`ppgen.evaluate.ais`.
    ``Fit.transform`` gives the guide's mean of z, ``Fit.interpolate`` decodes a latent
    segment between two rows, ``Fit.anomaly_score`` is minus each row's IWAE bound.
    Imputations (:meth:`ppgen.Fit.impute`) are draws from p(x_miss | x_obs) under the fitted
    networks: they carry the uncertainty of the missing values given the observed ones, not
    the uncertainty of the networks themselves (a point estimate), so pooled intervals can be
    somewhat too narrow, as with any MAP imputation.

    References
    ----------
    Kingma, D. P. & Welling, M. (2014). Auto-encoding variational Bayes. *ICLR*.
    Nazabal, A., Olmos, P. M., Ghahramani, Z. & Valera, I. (2020). Handling incomplete
    heterogeneous data using VAEs. *Pattern Recognition* 107, 107501.
    Mattei, P.-A. & Frellsen, J. (2019). MIWAE: deep generative modelling and imputation of
    incomplete data sets. *ICML*.
    Lucas, J., Tucker, G., Grosse, R. & Norouzi, M. (2019). Don't blame the ELBO! A linear VAE
    perspective on posterior collapse. *NeurIPS*.
    """

    def __init__(
        self,
        n_latent: int = 8,
        hidden: Sequence[int] = (128, 128),
        *,
        activation: str | None = "relu",
        guide: str = "gaussian",
        flow_options: dict[str, Any] | None = None,
        continuous_scale: str = "column",
        impute_particles: int = 100,
    ) -> None:
        super().__init__(continuous_scale=continuous_scale, impute_particles=impute_particles)
        self.n_latent = check_int(n_latent, "n_latent")
        self.hidden = check_ints(hidden, "hidden")
        activation = check_architecture(activation, guide, flow_options)
        self.activation = activation
        self.guide_type = guide
        self.flow_options = dict(flow_options or {})

    def config(self) -> dict[str, Any]:
        return {
            "n_latent": self.n_latent,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "guide": self.guide_type,
            "flow_options": dict(self.flow_options),
            **self.base_config(),
        }

    def build_networks(self) -> None:
        heads, q = self.heads, self.n_latent
        body = mlp((heads.n_features, *self.hidden), self.activation)
        if self.hidden:
            body.append(ACTIVATIONS[self.activation]())  # the last hidden layer's activation
        self.encoder_body = body
        width = self.hidden[-1] if self.hidden else heads.n_features
        self.encoder_loc = nn.Linear(width, q)
        self.encoder_scale = nn.Linear(width, q)
        self.decoder = mlp((q, *reversed(self.hidden), heads.n_outputs), self.activation)
        if self.guide_type == "flow":
            # Imported here: the flows live in ppgen.guides, which need not be loaded otherwise.
            from ppgen.guides.flows import AmortizedFlow

            self.flow = AmortizedFlow(q, width, **self.flow_options)

    # -- networks ----------------------------------------------------------------------------------
    def encode(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[dist.Distribution, torch.Tensor, torch.Tensor]:
        """q(z | x_obs) for each row, and the Gaussian's location and scale (n, q)."""
        h = self.encoder_body(self.features(x, mask))
        loc = self.encoder_loc(h)
        scale = nn.functional.softplus(self.encoder_scale(h)) + MIN_SCALE
        q = dist.Normal(loc, scale).to_event(1)
        if self.guide_type == "flow":
            q = self.flow(q, h)
        return q, loc, scale

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def _prior(self, like: torch.Tensor, n: int) -> dist.Distribution:
        return dist.Normal(like.new_zeros(n, self.n_latent), 1.0).to_event(1)

    # -- Pyro programs -----------------------------------------------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        self._check_built()
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            z = pyro.sample("z", self._prior(x, len(ind)))
            self.observe(x, mask, self.decoder(z), ind)

    def guide(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        self._check_built()
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            xb = x if len(ind) == x.shape[0] else x[ind]
            mb = None if mask is None else (mask if len(ind) == mask.shape[0] else mask[ind])
            pyro.sample("z", self.encode(xb, mb)[0])

    def elbo_rows(
        self, x: torch.Tensor, mask: torch.Tensor | None, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """One-particle ELBO of each row, ``(n,)``, without Pyro's tracing.

        The same draw and terms as ``Trace_ELBO`` on :meth:`model` and :meth:`guide`:
        ``log p(x_obs | z) + kl_weight * (log p(z) - log q(z | x_obs))`` with one
        reparameterized ``z ~ q``.
        """
        return self.particle_log_weights(x, mask, 1, kl_weight)[0]

    def particle_log_weights(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """Log weights of ``k`` reparameterized particles per row, ``(k, n)``, without tracing.

        ``log p(x_obs | z_j) + kl_weight * (log p(z_j) - log q(z_j | x_obs))``: the encoder runs
        once per row, the ``k`` draws are taken in the order of the traced guide inside a
        particle plate (so the same draws as :meth:`log_weights` and
        :func:`ppgen.evaluate.iwae` under the same seed).
        """
        z, log_ratio = self.latent_particles(x, mask, k)
        log_lik = self.heads.log_prob(x, mask, self.decoder(z))
        return log_lik + (log_ratio if kl_weight == 1.0 else kl_weight * log_ratio)

    def latent_particles(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` reparameterized draws ``z ~ q(z | x_obs)`` per row, ``(k, n, q)``, and their
        ``log p(z) - log q(z | x_obs)``, ``(k, n)`` (the traced guide's draws)."""
        n = x.shape[0]
        if self.guide_type == "flow":
            q, _, _ = self.encode(x, mask)
            q = q.expand((k, n))
            z = q.rsample()
            return z, self._prior(x, n).log_prob(z) - q.log_prob(z)
        # The Gaussian written out: the same draws as Normal.rsample (loc + scale * eps from
        # the same generator), without building distribution objects at every step.
        h = self.encoder_body(self.features(x, mask))
        loc = self.encoder_loc(h)
        scale = nn.functional.softplus(self.encoder_scale(h)) + MIN_SCALE
        eps = loc.new_empty((k, *loc.shape)).normal_()
        z = loc + eps * scale
        # log N(z; 0, I) - log N(z; loc, scale): the 2 pi constants cancel.
        return z, (0.5 * (eps * eps - z * z) + scale.log()).sum(-1)

    def posterior(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params, *, num_draws: int = 256
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of q(z | x_obs), each ``(n, q)``: exact for the Gaussian
        guide, estimated from ``num_draws`` seeded draws for the flow guide."""
        if self.guide_type == "flow":
            return super().posterior(x, mask, params, num_draws=num_draws)
        _, loc, scale = self.encode(x, mask)
        return loc, scale
