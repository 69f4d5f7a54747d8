"""Probabilistic principal component analysis."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroParam
from torch.distributions import constraints

from ppgen._utils import check_int, check_number
from ppgen.data.schema import Schema
from ppgen.models.base import GenerativeModel, Params
from ppgen.models.distributions import MaskedMultivariateNormal
from ppgen.models.likelihoods import check_estimator

__all__ = ["PPCA"]


class PPCA(GenerativeModel):
    r"""Probabilistic PCA (Tipping & Bishop 1999).

    Generative story (d columns, q components, n rows)::

        W        ~ Normal(0, weight_scale^2)            # (d, q) loadings
        loc      ~ Normal(0, loc_scale^2)               # (d,)
        noise    ~ InverseGamma(1, noise_prior)         # scalar: the noise variance sigma^2
        for i in 1..n:
            z[i] ~ Normal(0, I_q)                       # (q,) local latent
            x[i] ~ Normal(W z[i] + loc, noise I_d)      # (d,)

    so that, with z integrated out, x[i] ~ N(loc, W W^T + noise I) (:meth:`collapsed`), the
    exact likelihood used for fitting and :meth:`log_prob`. The posterior of z is Gaussian,
    N(M^-1 W^T (x - loc), noise M^-1) with M = W^T W + noise I (:meth:`posterior`; rows with
    missing entries use the observed rows of W only). Missing entries are dropped from the
    likelihood.

    *Which data.* With ``standardize=False`` (the default) this is Tipping & Bishop's model of
    the data as given: isotropic noise in the data's units, the model scikit-learn's
    ``PCA.score`` and R's ``prcomp`` describe (PCA of the covariance matrix). With
    ``standardize=True`` every column is first scaled to unit variance: the PCA of the
    correlation matrix. The data layer reads :attr:`standardize` (until it does, pass
    ``ppgen.fit(..., standardize=False)``).

    *Estimator.* With ``prior=None`` (the default) EM (``method="em"``) gives the
    maximum-likelihood estimate (for complete data the closed form, eq. 7-8 of the paper, from
    which :meth:`init_params` starts). With ``prior="default"`` it gives the posterior mode
    under the priors above. The priors are weak and scale-aware: ``weight_scale`` and
    ``loc_scale`` are in units of the data's root mean column variance ``u`` and
    ``noise_prior`` in units of ``u^2`` (``u`` is measured by :meth:`init_params`; 1 on the
    standardized scale), so they do not depend on the units the data happen to be in. The
    Pyro programs (``method="map"``, ``"svi"``, ``"nuts"``) always carry the priors.

    :meth:`guide` is that posterior under guide parameters of its own; :func:`ppgen.fit` sets
    them to the fitted values, so that ELBO and IWAE of a PPCA fit are exact
    (:meth:`set_exact_guide`). The MAP estimate is reached by L-BFGS (``method="map"``) or by
    closed-form EM (``method="em"``, :meth:`em_step` with ``prior="default"``), which handles
    missing entries exactly and is several times faster at ``ppgen.fit``'s default tolerance.

    Parameters
    ----------
    n_components : int
        Latent dimension q (< number of columns).
    weight_scale, loc_scale : float
        Prior standard deviations of the loadings and of the mean.
    noise_prior : float
        Rate of the inverse-gamma prior on the noise variance; keeps it away from zero.
    prior : {None, "default"}
        What EM maximizes: the likelihood (None) or the posterior under the priors ("default").
    standardize : bool
        Model the columns scaled to unit variance (correlation matrix) instead of as given.

    References
    ----------
    Tipping, M. E. & Bishop, C. M. (1999). Probabilistic principal component analysis.
    *JRSS B* 61(3), 611-622.
    Ilin, A. & Raiko, T. (2010). Practical approaches to principal component analysis in the
    presence of missing values. *JMLR* 11, 1957-2000.
    """

    global_sites: ClassVar[tuple[str, ...]] = ("W", "loc", "noise")
    kinds_hint: ClassVar[str] = "Use GaussianMixture (or, later, VAE) for tables of mixed kinds."

    def __init__(
        self,
        n_components: int,
        *,
        weight_scale: float = 10.0,
        loc_scale: float = 10.0,
        noise_prior: float = 1e-3,
        prior: str | None = None,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        check_estimator(prior)
        self.prior = prior
        self.standardize = bool(standardize)
        #: The data's root mean column variance: the unit of the priors (see the class doc).
        self.unit = 1.0
        self.n_components = check_int(n_components, "n_components")
        self.weight_scale = check_number(weight_scale, "weight_scale")
        self.loc_scale = check_number(loc_scale, "loc_scale")
        self.noise_prior = check_number(noise_prior, "noise_prior")

    def config(self) -> dict[str, Any]:
        return {
            "n_components": self.n_components,
            "weight_scale": self.weight_scale,
            "loc_scale": self.loc_scale,
            "noise_prior": self.noise_prior,
            "prior": self.prior,
            "standardize": self.standardize,
        }

    @property
    def ml(self) -> bool:
        """Whether EM gives maximum likelihood (``prior=None``)."""
        return self.prior is None

    def build(self, schema: Schema) -> PPCA:
        super().build(schema)
        d, q = len(schema), self.n_components
        if q >= d:
            raise ValueError(f"PPCA needs n_components < number of columns ({d}), got {q}")
        # The guide is PPCA's own posterior under parameters of its own: a family that holds the
        # exact posterior of every row, whatever its missing entries (see set_exact_guide).
        self.guide_weight = PyroParam(torch.eye(d, q))
        self.guide_loc = PyroParam(torch.zeros(d))
        self.guide_noise = PyroParam(torch.tensor(1.0), constraint=constraints.positive)
        return self

    def priors(self, like: torch.Tensor) -> dict[str, dist.Distribution]:
        d, q = self._check_built(), self.n_components
        zeros = like.new_zeros
        u = self.unit
        return {
            "W": dist.Normal(zeros(d, q), self.weight_scale * u).to_event(2),
            "loc": dist.Normal(zeros(d), self.loc_scale * u).to_event(1),
            "noise": dist.InverseGamma(
                like.new_tensor(1.0), like.new_tensor(self.noise_prior * u**2)
            ),
        }

    def _globals(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        priors = self.priors(like)
        return tuple(pyro.sample(name, priors[name]) for name in self.global_sites)

    # -- Pyro programs --------------------------------------------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        W, loc, noise = self._globals(x)
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            zero = x.new_zeros(len(ind), self.n_components)
            z = pyro.sample("z", dist.Normal(zero, 1.0).to_event(1))
            like = dist.Normal(z @ W.mT + loc, noise.sqrt())
            if mask is not None:
                like = like.mask(mask[ind])
            pyro.sample("x", like.to_event(1), obs=x[ind])

    def guide(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            own = {"W": self.guide_weight, "loc": self.guide_loc, "noise": self.guide_noise}
            mean, cov = self.posterior(x[ind], None if mask is None else mask[ind], own)
            pyro.sample("z", dist.MultivariateNormal(mean, covariance_matrix=cov))

    def collapsed(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None):
        W, loc, noise = self._globals(x)
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            mb = None if mask is None else mask[ind]
            pyro.sample("x", self._marginal({"W": W, "loc": loc, "noise": noise}, mb), obs=x[ind])

    # -- closed forms -----------------------------------------------------------------------------
    def _marginal(self, params: Params, mask: torch.Tensor | None) -> MaskedMultivariateNormal:
        W, noise = params["W"], params["noise"]
        d = W.shape[0]
        eye_d = torch.eye(d, dtype=W.dtype, device=W.device)
        precision = self._woodbury_precision(W, noise, eye_d)
        return MaskedMultivariateNormal(params["loc"], precision, mask)

    @staticmethod
    def _woodbury_precision(W: torch.Tensor, noise: torch.Tensor, eye_d: torch.Tensor):
        # (W W^T + s I)^-1 = (I - W M^-1 W^T) / s with M = W^T W + s I: a q x q solve, not d x d.
        q = W.shape[-1]
        M = W.mT @ W + noise * torch.eye(q, dtype=W.dtype, device=W.device)
        return (eye_d - W @ torch.linalg.solve(M, W.mT)) / noise

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        return self._marginal(params, mask).log_prob(x)

    def posterior(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (n, q) and covariance (n, q, q) of p(z | observed entries of x)."""
        W, loc, noise = params["W"], params["loc"], params["noise"]
        obs = x.new_ones(x.shape) if mask is None else mask.to(x.dtype)
        Wo = W.unsqueeze(0) * obs.unsqueeze(-1)  # rows of W for the observed entries only
        eye_q = torch.eye(self.n_components, dtype=x.dtype, device=x.device)
        M = Wo.mT @ Wo + noise * eye_q
        rhs = Wo.mT @ ((x - loc) * obs).unsqueeze(-1)
        mean = torch.linalg.solve(M, rhs).squeeze(-1)
        return mean, noise * torch.linalg.inv(M)

    def conditional(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian of every entry given each row's observed entries.

        Through the latent posterior z | x_o ~ N(m, S) (:meth:`posterior`), the missing entries
        are ``x_m = W_m z + loc_m + noise``, so their conditional mean is ``W_m m + loc_m`` and
        their covariance ``W_m S W_m^T + noise I``: q x q solves only, all rows at once.

        Returns
        -------
        cond_mean : Tensor, shape (n, d)
            Observed entries equal their values.
        cond_cov : Tensor, shape (n, d, d)
            Zero in every row and column of an observed entry.
        """
        W, loc, noise = params["W"], params["loc"], params["noise"]
        z_mean, z_cov = self.posterior(x, mask, params)
        eye = torch.eye(W.shape[0], dtype=x.dtype, device=x.device)
        mean = z_mean @ W.mT + loc
        cov = W @ z_cov @ W.mT + noise * eye
        if mask is None:
            return x.clone(), torch.zeros_like(cov)
        both = ~mask.unsqueeze(-1) & ~mask.unsqueeze(-2)
        return torch.where(mask, x, mean), torch.where(both, cov, x.new_zeros(()))

    def impute(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """One draw of the missing entries from p(x_missing | x_observed), shape (n, d).

        Draws z from its posterior given the observed entries, then ``W z + loc + noise``;
        observed entries are returned unchanged (uses torch's global RNG; seed it first).
        """
        if mask is None:
            return x.clone()
        W, loc, noise = params["W"], params["loc"], params["noise"]
        z_mean, z_cov = self.posterior(x, mask, params)
        eps_z = torch.randn_like(z_mean).unsqueeze(-1)
        z = z_mean + (torch.linalg.cholesky(z_cov) @ eps_z).squeeze(-1)
        draw = z @ W.mT + loc + noise.sqrt() * torch.randn_like(x)
        return torch.where(mask, x, draw)

    def log_joint(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """EM's objective with z integrated out: the log-likelihood plus :meth:`log_prior`
        (0 under maximum likelihood)."""
        return self.log_prob(x, mask, params).sum() + self.log_prior(params)

    def em_step(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[Params, torch.Tensor]:
        """One EM iteration, missing entries handled exactly: for the maximum-likelihood
        estimate (``prior=None``; the prior terms below are dropped) or the posterior mode.

        E-step: each row's latent posterior given its observed entries, ``z_i ~ N(m_i, S_i)``
        (:meth:`posterior`, observed rows of W only). M-step, one conditional-maximization cycle
        of the expected log joint under the priors (Tipping & Bishop 1999, appendix; Ilin &
        Raiko 2010, sec. 3.2): ``loc`` given W, then each row ``W_j`` given ``loc`` from the rows
        ``i`` where column j is observed, ``W_j (sum_i m_i m_i^T + S_i + noise / weight_scale^2)
        = sum_i (x_ij - loc_j) m_i^T``, then the noise variance, the inverse-gamma posterior mode
        of the expected squared residuals. Each step is an exact conditional maximizer, so the
        log joint never decreases.

        Returns
        -------
        params : dict
            The updated ``W``, ``loc`` and ``noise``.
        log_joint : Tensor
            :meth:`log_joint` at the ``params`` given (before the step), for monitoring.
        """
        return self.em_update(self.em_statistics(x, mask, params), params)

    def em_statistics(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> dict[str, torch.Tensor]:
        """:meth:`em_step`'s E-step at ``params`` as sums over the rows (those of disjoint row
        sets add up: distributed and streamed EM). Per column j, over the rows where it is
        observed, with ``y = x - loc`` (the current ``loc``, so that the squared residuals
        lose no digits to cancellation): the count ``n``, ``sy``, ``syy``, ``sm = sum m_i``,
        ``sym = sum y_ij m_i``, ``smm = sum m_i m_i^T`` and ``sS = sum S_i``; and the
        log-likelihood ``log_lik``."""
        obs = x.new_ones(x.shape) if mask is None else mask.to(x.dtype)
        x0 = torch.where(obs > 0, x, x.new_zeros(()))
        # The marginal itself, not self.log_prob: a subclass may hide its density (a decoder
        # model judged by decoder_ais) and still fit by this EM.
        log_lik = self._marginal(params, mask).log_prob(x0).sum()
        m, S = self.posterior(x0, mask, params)  # (n, q), (n, q, q)
        n, q = m.shape
        y = (x0 - params["loc"]) * obs
        return {
            "log_lik": log_lik,
            "n": obs.sum(0),
            "sy": y.sum(0),
            "syy": (y * y).sum(0),
            "sm": obs.mT @ m,
            "sym": y.mT @ m,
            "smm": (obs.mT @ (m.unsqueeze(-1) * m.unsqueeze(-2)).reshape(n, q * q)).reshape(
                -1, q, q
            ),
            "sS": (obs.mT @ S.reshape(n, q * q)).reshape(-1, q, q),
        }

    def em_update(
        self, stats: dict[str, torch.Tensor], params: Params
    ) -> tuple[Params, torch.Tensor]:
        """The M-step of :meth:`em_step` from :meth:`em_statistics` (summed over all rows),
        and :meth:`log_joint` at ``params``."""
        W, loc, noise = params["W"], params["loc"], params["noise"]
        n_j, sy, sm = stats["n"], stats["sy"], stats["sm"]
        q = sm.shape[-1]
        u = self.unit
        # Prior precisions of loc and W relative to the noise (0: maximum likelihood), and the
        # inverse-gamma prior's (2b, 2(a + 1)) in the noise update.
        loc_prec, w_prec = (0.0, 0.0) if self.ml else (
            noise / (self.loc_scale * u) ** 2, noise / (self.weight_scale * u) ** 2
        )  # fmt: skip
        two_b, two_a1 = (0.0, 0.0) if self.ml else (2 * self.noise_prior * u**2, 4.0)
        # loc_j = sum_{i in O_j} (x_ij - W_j m_i) / (n_j + noise / loc_scale^2)
        new_loc = (sy + n_j * loc - (W * sm).sum(-1)) / (n_j + loc_prec).clamp_min(1e-300)
        shift = new_loc - loc  # the new loc in the statistics' coordinates y = x - loc
        # sum over the rows where column j is observed of E[z z^T] = m m^T + S: (d, q, q)
        second = stats["smm"] + stats["sS"]
        eye_q = torch.eye(q, dtype=sm.dtype, device=sm.device)
        rhs = stats["sym"] - shift.unsqueeze(-1) * sm  # sum (x_ij - loc_j) m_i: (d, q)
        lhs = second + self.loadings_penalty(params, w_prec * eye_q)
        W = torch.linalg.solve(lhs, rhs.unsqueeze(-1)).squeeze(-1)
        # Expected squared residuals: (x_ij - loc_j - W_j m_i)^2 + W_j S_i W_j^T on observed
        # entries, expanded in the statistics: sum (y - shift - W m)^2 plus W_j sS_j W_j^T.
        resid = (
            stats["syy"]
            - 2 * shift * sy
            - 2 * (W * stats["sym"]).sum(-1)
            + n_j * shift**2
            + 2 * shift * (W * sm).sum(-1)
            + torch.einsum("jq,jqr,jr->j", W, stats["smm"], W)
        ).sum()
        spread = torch.einsum("jq,jqr,jr->", W, stats["sS"], W)
        # InverseGamma(1, noise_prior) prior: mode of (a + N/2, b + R/2) is (2b + R) / (N + 4).
        noise = (two_b + resid + spread) / (n_j.sum() + two_a1)
        log_joint = stats["log_lik"] + self.log_prior(params)
        return {"W": W, "loc": new_loc, "noise": noise}, log_joint

    def loadings_penalty(self, params: Params, default: torch.Tensor) -> torch.Tensor:
        """The noise variance times the prior precision of each row of W in :meth:`em_step`'s
        W update, (q, q): ``default`` (``noise / weight_scale^2`` times I under the default
        prior, 0 under maximum likelihood). :class:`~ppgen.models.bpca.BayesianPCA` puts its
        per-component ARD precisions here."""
        return default

    def set_exact_guide(self, params: Params) -> None:
        """Set :meth:`guide` to the exact posterior of every row under ``params``."""
        with torch.no_grad():
            self.guide_weight = params["W"].detach().clone()
            self.guide_loc = params["loc"].detach().clone()
            self.guide_noise = params["noise"].detach().clone()

    def fitted(self, params: Params) -> None:
        self.set_exact_guide(params)

    def log_prior(self, params: Params) -> torch.Tensor:
        """Log density of the prior EM's estimate maximizes: 0 (flat) under maximum
        likelihood, else the priors of :meth:`priors`."""
        if self.ml:
            return params["W"].new_zeros(())
        priors = self.priors(params["W"])
        return sum(priors[name].log_prob(params[name]).sum() for name in self.global_sites)

    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        """The Tipping-Bishop maximum-likelihood solution on the (zero-filled) data; also
        measures the priors' unit, the root mean variance of the observed columns."""
        obs = mask.to(x.dtype)
        n_j = obs.sum(0).clamp_min(2)
        mean = (x * obs).sum(0) / n_j
        var = (((x - mean) * obs) ** 2).sum(0) / (n_j - 1)
        unit = float(var.mean().sqrt())
        self.unit = unit if math.isfinite(unit) and unit > 0 else 1.0
        return closed_form_mle(x * mask, self.n_components)

    def sample(self, n: int, params: Params) -> torch.Tensor:
        return sample_linear_gaussian(n, params["W"], params["loc"], params["noise"])

    def n_parameters(self) -> int:
        d, q = self._check_built(), self.n_components
        # Loadings up to rotation, the mean and the noise variance.
        return d * q - q * (q - 1) // 2 + d + 1

    def describe_coords(self, schema: Schema) -> dict[str, tuple[tuple, ...]]:
        cols = tuple(schema.names)
        return {"loadings": (cols, tuple(range(self.n_components))), "mean": (cols,)}

    def describe(self, params: Params, schema: Schema) -> Params:
        """Loadings, mean and noise variance on the encoded scale the model is fitted on (the
        data's units, or the standardized scale when the columns were standardized)."""
        return {"loadings": params["W"], "mean": params["loc"], "noise_variance": params["noise"]}


def sample_linear_gaussian(
    n: int, W: torch.Tensor, loc: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """``n`` rows of ``W z + loc + e`` with ``z ~ N(0, I)`` and ``e ~ N(0, noise)`` (a scalar
    variance, PPCA, or one per column, factor analysis); torch's global RNG."""
    z = torch.randn(n, W.shape[-1], dtype=W.dtype, device=W.device)
    eps = torch.randn(n, W.shape[0], dtype=W.dtype, device=W.device)
    return z @ W.mT + loc + noise.sqrt() * eps


def closed_form_mle(x: torch.Tensor, q: int) -> Params:
    """Tipping & Bishop (1999) eq. 7-8: the PPCA maximum-likelihood estimate for complete data."""
    loc = x.mean(0)
    cov = (x - loc).mT @ (x - loc) / x.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(-1), evecs.flip(-1)
    noise = evals[q:].mean().clamp_min(1e-6 * evals[0].clamp_min(1e-12))
    W = evecs[:, :q] * (evals[:q] - noise).clamp_min(0).sqrt()
    return {"W": W, "loc": loc, "noise": noise}
