"""Gaussian mixture model with enumerated assignments."""

from __future__ import annotations

from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch

from ppgen.data.schema import Schema
from ppgen.models.base import GenerativeModel, Params
from ppgen.models.distributions import MaskedMultivariateNormal, WishartPrecision

__all__ = ["GaussianMixture"]


class GaussianMixture(GenerativeModel):
    r"""Finite Gaussian mixture, fitted with the assignments summed out exactly.

    Generative story (d columns, K components, n rows)::

        weights              ~ Dirichlet(weight_concentration * 1_K)            # (K,)
        for k in 1..K:
            locs[k]          ~ Normal(0, loc_scale^2 I_d)                      # (K, d)
            precision[k]     ~ Wishart(df=d + 2, scale=I_d / covariance_prior)  # full (K, d, d)
                             | Gamma(1.5, covariance_prior / 2) per column       # diag (K, d)
        for i in 1..n:
            assignment[i]    ~ Categorical(weights)                            # enumerated
            x[i]             ~ Normal(locs[assignment[i]], precision[assignment[i]]^-1)

    The priors are weak and stated on the standardized scale. The Wishart/Gamma prior keeps every
    MAP covariance at least ``covariance_prior / (n_k + 1)`` per column, so MAP never collapses
    a component onto a single point; its pull on the log-likelihood is second order in 1/n_k.
    Missing entries are dropped from each row's likelihood (exact marginal of the observed ones).

    Parameters
    ----------
    n_components : int
        Number of mixture components K.
    covariance_type : {"full", "diag"}
        Full covariance per component, or a diagonal one.
    weight_concentration : float
        Dirichlet concentration; 1 is flat over the simplex.
    loc_scale : float
        Prior standard deviation of the component means (standardized units).
    covariance_prior : float
        Strength of the covariance floor, in standardized units of variance.

    References
    ----------
    McLachlan, G. & Peel, D. (2000). *Finite Mixture Models*. Wiley.
    Bishop, C. M. (2006). *Pattern Recognition and Machine Learning*, ch. 9-10. Springer.
    """

    global_sites: ClassVar[tuple[str, ...]] = ("weights", "locs", "precision")
    enumerated: ClassVar[bool] = True
    kinds_hint: ClassVar[str] = "GaussianMixture fits continuous columns for now; drop the others."

    def __init__(
        self,
        n_components: int,
        covariance_type: str = "full",
        *,
        weight_concentration: float = 1.0,
        loc_scale: float = 10.0,
        covariance_prior: float = 0.1,
    ) -> None:
        super().__init__()
        if int(n_components) < 1:
            raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
        if covariance_type not in ("full", "diag"):
            raise ValueError(f"covariance_type must be 'full' or 'diag', got {covariance_type!r}")
        for name, value in (
            ("weight_concentration", weight_concentration),
            ("loc_scale", loc_scale),
            ("covariance_prior", covariance_prior),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.n_components = int(n_components)
        self.covariance_type = covariance_type
        self.weight_concentration = float(weight_concentration)
        self.loc_scale = float(loc_scale)
        self.covariance_prior = float(covariance_prior)

    def config(self) -> dict[str, Any]:
        return {
            "n_components": self.n_components,
            "covariance_type": self.covariance_type,
            "weight_concentration": self.weight_concentration,
            "loc_scale": self.loc_scale,
            "covariance_prior": self.covariance_prior,
        }

    # -- priors, shared by the Pyro model and the closed forms --------------------------------
    def priors(self, like: torch.Tensor) -> dict[str, dist.Distribution]:
        """Prior of each global site, on ``like``'s device and dtype."""
        K, d = self.n_components, self._check_built()
        ones = like.new_ones
        priors = {
            "weights": dist.Dirichlet(ones(K) * self.weight_concentration),
            "locs": dist.Normal(like.new_zeros(K, d), self.loc_scale).to_event(1),
        }
        if self.covariance_type == "full":
            scale = torch.eye(d, dtype=like.dtype, device=like.device) / self.covariance_prior
            priors["precision"] = WishartPrecision(
                df=like.new_tensor(d + 2.0), covariance_matrix=scale.expand(K, d, d)
            )
        else:
            priors["precision"] = dist.Gamma(ones(K, d) * 1.5, self.covariance_prior / 2).to_event(
                1
            )
        return priors

    # -- Pyro program ---------------------------------------------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        priors = self.priors(x)
        weights = pyro.sample("weights", priors["weights"])
        with pyro.plate("components", self.n_components, dim=-1):
            locs = pyro.sample("locs", priors["locs"])
            precision = pyro.sample("precision", priors["precision"])
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            xb = x[ind]
            mb = None if mask is None else mask[ind]
            k = pyro.sample(
                "assignment", dist.Categorical(weights), infer={"enumerate": "parallel"}
            )
            comp = self._component_at(locs[k], precision[k], mb)
            pyro.sample("x", comp, obs=xb)

    def _component_at(
        self, loc: torch.Tensor, precision: torch.Tensor, mask: torch.Tensor | None
    ) -> dist.Distribution:
        if self.covariance_type == "full":
            return MaskedMultivariateNormal(loc, precision, mask)
        normal = dist.Normal(loc, precision.rsqrt())
        return (normal if mask is None else normal.mask(mask)).to_event(1)

    # -- closed forms -----------------------------------------------------------------------------
    def component_log_prob(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> torch.Tensor:
        """log w_k + log N(x_i | component k), shape (n, K)."""
        # Components along a new leading dim so that they broadcast against the rows.
        event_dims = 2 if self.covariance_type == "full" else 1
        comp = self._component_at(
            params["locs"].unsqueeze(-2),
            params["precision"].unsqueeze(-1 - event_dims),
            None if mask is None else mask.unsqueeze(0),
        )
        return (comp.log_prob(x.unsqueeze(0)) + params["weights"].log().unsqueeze(-1)).mT

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        return self.component_log_prob(x, mask, params).logsumexp(-1)

    def predict_proba(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> torch.Tensor:
        """Posterior membership probabilities p(assignment = k | x_i), shape (n, K)."""
        return self.component_log_prob(x, mask, params).softmax(-1)

    def conditional(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The distribution of every entry given each row's observed entries.

        Given the observed entries ``x_o`` of a row, the row is a mixture over components of
        Gaussians ``N(cond_mean[k], cond_cov[k])`` with weights ``exp(log_resp[k])``. For a full
        covariance the missing block follows from the precision Lambda_k without inverting the
        observed block: mean ``mu_m - Lambda_mm^-1 Lambda_mo (x_o - mu_o)``, covariance
        ``Lambda_mm^-1``; for a diagonal one the missing entries keep the component's mean and
        variances. Rows and missingness patterns are handled together by masking.

        Returns
        -------
        log_resp : Tensor, shape (n, K)
            log p(assignment = k | observed entries).
        cond_mean : Tensor, shape (n, K, d)
            Conditional means; observed entries equal their values.
        cond_cov : Tensor, shape (n, K, d, d)
            Conditional covariances; zero in every row and column of an observed entry.
        """
        log_resp = self.component_log_prob(x, mask, params).log_softmax(-1)
        miss = x.new_zeros(x.shape, dtype=torch.bool) if mask is None else ~mask
        miss = miss.unsqueeze(1).expand(-1, self.n_components, -1)  # (n, K, d)
        locs, precision = params["locs"], params["precision"]
        xk = x.unsqueeze(1)
        if self.covariance_type == "diag":
            mean = torch.where(miss, locs, xk)
            var = torch.where(miss, precision.reciprocal(), x.new_zeros(()))
            return log_resp, mean, torch.diag_embed(var)
        mean, cov, _ = _condition_on_precision(xk, miss, locs, precision)
        return log_resp, mean, cov

    def impute(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """One draw of the missing entries from p(x_missing | x_observed), shape (n, d).

        Each row's component is drawn from its class posterior given the observed entries, then
        the missing entries from that component's conditional Gaussian. Observed entries are
        returned unchanged (uses torch's global RNG; seed it first).
        """
        if mask is None:
            return x.clone()
        log_resp = self.component_log_prob(x, mask, params)
        k = dist.Categorical(logits=log_resp).sample()  # (n,)
        loc, precision = params["locs"][k], params["precision"][k]
        eps = torch.randn_like(x)
        if self.covariance_type == "diag":
            draw = loc + precision.rsqrt() * eps
        else:
            mean, _, tril = _condition_on_precision(x, ~mask, loc, precision)
            # L^-T eps ~ N(0, A^-1), whose missing block is Lambda_mm^-1.
            noise = torch.linalg.solve_triangular(tril.mT, eps.unsqueeze(-1), upper=True)
            draw = mean + noise.squeeze(-1)
        return torch.where(mask, x, draw)

    def log_prior(self, params: Params) -> torch.Tensor:
        priors = self.priors(params["locs"])
        return sum(priors[name].log_prob(params[name]).sum() for name in self.global_sites)

    def log_joint(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """log p(x, params) with assignments summed out: the MAP objective."""
        return self.log_prob(x, mask, params).sum() + self.log_prior(params)

    def m_step(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        resp: torch.Tensor,
        params: Params | None = None,
    ) -> Params:
        """Maximize the expected log joint given memberships ``resp`` (n, K).

        One conditional-maximization cycle (ECM): weights, then means given the current
        precisions (when ``params`` is given; else the weighted averages), then precisions.
        Each step is the exact conditional maximizer of :meth:`log_joint`'s EM bound, so
        the log joint never decreases.
        """
        if self.covariance_type == "full" and mask is not None and not bool(mask.all()):
            raise ValueError(
                "method='em' with covariance_type='full' needs complete rows; "
                "use method='map' for tables with missing values"
            )
        d = self._check_built()
        obs = x.new_ones(x.shape) if mask is None else mask.to(x.dtype)
        xo = x * obs
        alpha = self.weight_concentration
        n_k = resp.sum(0)
        weights = (n_k + alpha - 1).clamp_min(0)
        weights = weights / weights.sum()
        n_kd = resp.mT @ obs  # (K, d) weighted counts of observed entries
        s_kd = resp.mT @ xo  # (K, d) weighted sums
        prior_prec = 1.0 / self.loc_scale**2
        if self.covariance_type == "diag":
            if params is None:
                locs = s_kd / n_kd.clamp_min(1e-12)
            else:
                lam = params["precision"]
                locs = lam * s_kd / (n_kd * lam + prior_prec)
            sq = resp.mT @ (xo * xo) - 2 * locs * s_kd + n_kd * locs**2
            var = (self.covariance_prior + sq) / (n_kd + 1.0)
            return {"weights": weights, "locs": locs, "precision": var.reciprocal()}
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        if params is None:
            locs = s_kd / n_k.clamp_min(1e-12).unsqueeze(-1)
        else:
            lam = params["precision"]
            lhs = n_k[:, None, None] * lam + prior_prec * eye
            locs = torch.linalg.solve(lhs, (lam @ s_kd.unsqueeze(-1))).squeeze(-1)
        # One component at a time: a (K, n, d) temporary costs more in memory traffic than the
        # loop costs in Python (4x slower at 50,000 rows).
        scatter = torch.stack(
            [((x - locs[k]) * resp[:, k : k + 1]).mT @ (x - locs[k]) for k in range(len(locs))]
        )
        cov = (self.covariance_prior * eye + scatter) / (n_k[:, None, None] + 1.0)
        precision = torch.cholesky_inverse(torch.linalg.cholesky(cov))
        return {"weights": weights, "locs": locs, "precision": precision}

    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        """k-means++ seeding and Lloyd iterations on the zero-filled data, then one M-step."""
        from ppgen.models._kmeans import kmeans

        labels = kmeans(x * mask, self.n_components, generator=generator)
        resp = torch.nn.functional.one_hot(labels, self.n_components).to(x.dtype)
        em_mask = mask if self.covariance_type == "diag" else None
        return self.m_step(x, em_mask, resp)

    def sample(self, n: int, params: Params) -> torch.Tensor:
        k = dist.Categorical(params["weights"]).sample((n,))
        return self._component_at(params["locs"][k], params["precision"][k], None).sample()

    def n_parameters(self) -> int:
        K, d = self.n_components, self._check_built()
        cov = d * (d + 1) // 2 if self.covariance_type == "full" else d
        return K * (d + cov) + K - 1

    def describe_coords(self, schema: Schema) -> dict[str, tuple[tuple, ...]]:
        comps, cols = tuple(range(self.n_components)), tuple(schema.names)
        return {
            "weights": (comps,),
            "means": (comps, cols),
            "covariances": (comps, cols, cols),
            "variances": (comps, cols),
        }

    def describe(self, params: Params, schema: Schema) -> Params:
        """Weights, means and covariances (or variances) on the data's original scale."""
        scale = params["locs"].new_tensor([c.scale for c in schema.columns])
        loc = params["locs"].new_tensor([c.loc for c in schema.columns])
        out = {"weights": params["weights"], "means": params["locs"] * scale + loc}
        if self.covariance_type == "full":
            cov = torch.cholesky_inverse(torch.linalg.cholesky(params["precision"]))
            out["covariances"] = cov * scale.unsqueeze(-1) * scale
        else:
            out["variances"] = params["precision"].reciprocal() * scale**2
        return out


def _condition_on_precision(
    x: torch.Tensor, miss: torch.Tensor, loc: torch.Tensor, precision: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian N(loc, precision^-1) conditioned on the entries where ``miss`` is False.

    Batched over leading dims without grouping rows by missingness pattern: the matrix
    ``A = Lambda`` on the missing block and the identity elsewhere is block diagonal (after a
    permutation), so its inverse holds ``Lambda_mm^-1`` on the missing block. Returns the
    conditional mean (observed entries equal to ``x``), the conditional covariance (zero outside
    the missing block) and the Cholesky factor of ``A`` for sampling.
    """
    both = miss.unsqueeze(-1) & miss.unsqueeze(-2)
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    A = torch.where(both, precision, eye)
    tril = torch.linalg.cholesky(A)
    # Lambda_mo (x_o - mu_o): the precision times the observed deviations, on the missing rows.
    dev = torch.where(miss, x.new_zeros(()), x - loc)
    rhs = torch.where(miss, (precision @ dev.unsqueeze(-1)).squeeze(-1), x.new_zeros(()))
    shift = torch.cholesky_solve(rhs.unsqueeze(-1), tril).squeeze(-1)
    mean = torch.where(miss, loc - shift, x)
    cov = torch.where(both, torch.cholesky_inverse(tril), x.new_zeros(()))
    return mean, cov, tril
