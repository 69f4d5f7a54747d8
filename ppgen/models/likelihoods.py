"""Per-column likelihoods shared by models with a discrete latent class or state.

Each :class:`ColumnLikelihood` owns the columns of one kind (``Schema.positions(kind)``) and
``K`` sets of parameters, one per latent class/state. Given the encoded table it returns the
masked log-likelihood of every row under every class, shape ``(..., K)``: missing entries
contribute nothing (the exact marginal of the observed ones). :class:`Emission` bundles one
likelihood per column kind so that a table of mixed kinds is scored by summing them.

All of them state their priors (used by the Pyro model and by the closed-form M-steps alike) on
the encoded scale: continuous columns standardized, counts as counts, labels as integer codes.

==============  ===========================================  =================================
kind            likelihood (per state k)                     sites and prior
==============  ===========================================  =================================
continuous      Normal(locs[k], precision[k]^-1), full/diag  ``locs`` Normal(0, loc_scale^2);
                                                             ``precision`` Wishart / Gamma
count           Poisson(rates[k])                            ``rates`` Gamma(a, b)
count (negbin)  NegBinomial(mean rates[k], concentration)    ``rates``; ``concentration``
                                                             Gamma(2, 0.1)
binary          Bernoulli(probs[k])                          ``probs`` Beta(c, c)
binomial        Binomial(size, success[k])                   ``success`` Beta(c, c)
categorical     Categorical(probs[name][k]) per column       ``probs[name]`` Dirichlet(c 1_C)
==============  ===========================================  =================================

Columns that keep their support on a transformed scale -- positive (log-normal) and bounded
(logit-normal) -- are continuous columns to the likelihoods: the Normal block models their
standardized log or logit, and :meth:`ppgen.data.Schema.log_abs_det_jacobian` adds the
Jacobian that makes the density one of the original values. Ordinal columns are categorical
columns with ordered levels: within a latent class, the unrestricted Categorical is the
saturated model of an ordered item (as in latent class analysis, e.g. poLCA).
"""

from __future__ import annotations

from typing import ClassVar

import pyro.distributions as dist
import torch

from ppgen._utils import check_number
from ppgen.data.schema import Schema
from ppgen.models.distributions import (
    GaussianConditional,
    MaskedMultivariateNormal,
    WishartPrecision,
    condition_on_precision,
)

__all__ = [
    "EMISSIONS",
    "Bernoulli",
    "Binomial",
    "Categorical",
    "ColumnLikelihood",
    "Emission",
    "NegativeBinomial",
    "Normal",
    "Poisson",
    "check_estimator",
    "condition_on_precision",
    "gaussian_coords",
    "gaussian_m_step",
    "gaussian_statistics",
    "gaussian_update",
    "scatter_about",
    "second_moment_center",
    "relabel_by_score",
]

Params = dict[str, torch.Tensor]

#: Emission families and the column kinds each handles.
EMISSIONS: dict[str, tuple[str, ...]] = {
    "gaussian": ("continuous",),
    "poisson": ("count",),
    "negbinomial": ("count",),
    "categorical": ("binary", "categorical"),
    "mixed": ("continuous", "count", "binary", "categorical", "binomial"),
}


def check_estimator(prior: str | None, reg_covar: float = 0.0) -> None:
    """The estimator options shared by the models with closed-form EM (ValueError naming
    the option): ``prior`` None (maximum likelihood) or "default", ``reg_covar`` >= 0."""
    if prior not in (None, "default"):
        raise ValueError(f"prior must be None (maximum likelihood) or 'default', got {prior!r}")
    check_number(reg_covar, "reg_covar", positive=False)


def gaussian_m_step(
    x: torch.Tensor,
    mask: torch.Tensor | None,
    resp: torch.Tensor,
    params: Params | None,
    *,
    covariance_type: str,
    loc_scale: float,
    covariance_prior: float,
    conditional: GaussianConditional | None = None,
    ridge: torch.Tensor | None = None,
) -> Params:
    """One EM (ECM) update of a Gaussian block's ``locs`` (K, d) and ``precision``.

    The priors are those of :class:`Normal` and :class:`~ppgen.models.gmm.GaussianMixture`:
    ``locs ~ Normal(0, loc_scale^2)``, a Wishart (full) or Gamma (diag) precision with
    strength ``covariance_prior``. One conditional-maximization cycle: means given the current
    precisions (when ``params`` is given; else the weighted averages), then precisions given the
    new means. Each is the exact maximizer of the expected log joint, so the MAP objective never
    decreases.

    Missing entries (``mask`` False) are handled exactly. Diagonal: the observed entries of a
    column are its sufficient statistics (the missing ones are independent of them given the
    class). Full (Ghahramani & Jordan 1994; Little & Rubin 2002, sec. 11.2): the E-step replaces
    each partially observed row, under each class k, by its conditional mean
    ``E[x | x_o, k]`` and adds the conditional covariance of the missing block to the
    scatter, ``E[x x^T | x_o, k] = E[x] E[x]^T + Cov[x_m | x_o, k]``; all rows and classes at
    once (:func:`condition_on_precision`), not one solve per missingness pattern.
    Rows with no entry observed carry no information about the block and are left out. Without
    ``params`` (a first step), partially observed rows are conditioned on the diagonal fit.

    Parameters
    ----------
    x : Tensor, shape (n, d)
        The block's columns; values at missing entries are ignored.
    mask : Tensor of bool, shape (n, d), or None
        True where observed.
    resp : Tensor, shape (n, K)
        Class memberships (responsibilities or state marginals).
    params : dict or None
        Current ``locs`` and ``precision``: the E-step's parameters and the precisions the means
        are conditioned on.
    covariance_type : {"full", "diag"}
    loc_scale, covariance_prior : float
        Prior scales, as in :class:`Normal`.
    conditional : GaussianConditional, optional
        ``condition_on_precision(x, ~mask, locs[:, None], precision[:, None])`` under
        ``params`` (batch (K, n)), when the E-step already made it for the log-likelihood
        (:meth:`GaussianConditional.log_marginal`): it is then not made again.
    ridge : Tensor of shape (d,), optional
        Maximum likelihood instead of the posterior mode: no prior terms (``loc_scale`` and
        ``covariance_prior`` unused), means the weighted averages and covariances the weighted
        scatter divided by n_k, plus ``ridge`` on the diagonal (scikit-learn's ``reg_covar``,
        which keeps a component on duplicated rows non-singular).

    Returns
    -------
    dict
        ``locs`` (K, d) and ``precision`` (K, d, d) or (K, d).

    References
    ----------
    Ghahramani, Z. & Jordan, M. I. (1994). Supervised learning from incomplete data via an EM
    approach. *NIPS* 6.
    Little, R. J. A. & Rubin, D. B. (2002). *Statistical Analysis with Missing Data*, ch. 11.
    """
    stats = gaussian_statistics(
        x, mask, resp, params, covariance_type=covariance_type, loc_scale=loc_scale,
        covariance_prior=covariance_prior, conditional=conditional, ridge=ridge,
    )  # fmt: skip
    return gaussian_update(
        stats, params, covariance_type=covariance_type, loc_scale=loc_scale,
        covariance_prior=covariance_prior, ridge=ridge,
    )  # fmt: skip


def second_moment_center(params: Params | None, like: torch.Tensor) -> torch.Tensor:
    """Where the full block's second moments are centred: the current ``locs`` (close to the
    new means, so the scatter about them loses no digits to cancellation), else 0."""
    if params is not None and "locs" in params:
        return params["locs"]
    return like.new_zeros(())


def gaussian_statistics(
    x: torch.Tensor,
    mask: torch.Tensor | None,
    resp: torch.Tensor,
    params: Params | None,
    *,
    covariance_type: str,
    loc_scale: float,
    covariance_prior: float,
    conditional: GaussianConditional | None = None,
    ridge: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The E-step's sufficient statistics of :func:`gaussian_m_step`: sums over the rows, so
    statistics of disjoint sets of rows add up to those of their union (distributed and
    streamed EM, :mod:`ppgen.infer.engines.em`).

    Diagonal: per class and column, the observed rows' weight ``n``, sum ``s`` and sum of
    squares ``q`` (K, d). Full: the weight ``n`` (K,), the sum ``s`` (K, d) of conditional
    means and the second moments ``ss`` (K, d, d) about the current ``locs`` (zero without
    ``params``) including the missing blocks' conditional covariances. Without ``params`` (a
    first step) partially observed rows are conditioned on the diagonal fit of these rows, so
    only statistics made with ``params`` add up exactly."""
    K = resp.shape[-1]
    if covariance_type == "diag":
        obs = x.new_ones(x.shape) if mask is None else mask.to(x.dtype)
        xo = torch.where(obs > 0, x, x.new_zeros(()))
        return {"n": resp.mT @ obs, "s": resp.mT @ xo, "q": resp.mT @ (xo * xo)}
    rows = x  # E[x_i | x_o, k]: (n, d) when the same for every class, else (K, n, d)
    cond_cov = None  # sum_i r_ik Cov[x_i | x_o, k], (K, d, d)
    center = second_moment_center(params, x)
    if mask is not None and not bool(mask.all()):
        resp = resp * mask.any(-1, keepdim=True).to(resp.dtype)
        rows = torch.where(mask, x, x.new_zeros(()))
        if conditional is not None:  # every row, from the E-step
            rows, cond_cov = conditional.mean, conditional.covariance_sum(resp.mT)
        else:
            # Only partially observed rows need conditioning: complete rows are their own
            # conditional mean, and rows with nothing observed are left out.
            partial = (mask.any(-1) & ~mask.all(-1)).nonzero().squeeze(-1)
            if len(partial):
                if params is None:
                    start = gaussian_m_step(
                        x, mask, resp, None, covariance_type="diag", loc_scale=loc_scale,
                        covariance_prior=covariance_prior, ridge=ridge,
                    )  # fmt: skip
                    given = {"locs": start["locs"], "precision": start["precision"]}
                else:
                    given = params
                precision = given["precision"]
                if precision.dim() == 2:  # a diagonal structure's precisions
                    precision = torch.diag_embed(precision)
                cond = condition_on_precision(
                    x[partial], ~mask[partial], given["locs"].unsqueeze(-2),
                    precision.unsqueeze(-3),
                )  # fmt: skip
                rows = rows.expand(K, -1, -1).clone()
                rows[:, partial] = cond.mean
                cond_cov = cond.covariance_sum(resp[partial].mT)
    n_k = resp.sum(0)
    s_kd = resp.mT @ rows if rows.dim() == 2 else (resp.mT.unsqueeze(-2) @ rows).squeeze(-2)
    # One component at a time: a (K, n, d) temporary costs more in memory traffic than the loop
    # costs in Python (4x slower at 50,000 rows) when every class sees the same rows.
    second = []
    for k in range(K):
        diff = (rows if rows.dim() == 2 else rows[k]) - (center if center.dim() == 0 else center[k])
        second.append((diff * resp[:, k : k + 1]).mT @ diff)
    second = torch.stack(second)
    if cond_cov is not None:
        second = second + cond_cov
    return {"n": n_k, "s": s_kd, "ss": second}


def scatter_about(stats: dict[str, torch.Tensor], center: torch.Tensor, locs: torch.Tensor):
    """``sum_i r_ik E[(x_i - locs_k)(x_i - locs_k)^T]`` (K, d, d) from full statistics whose
    second moments ``ss`` are about ``center``: ``ss - t e^T - e t^T + n e e^T`` with
    ``e = locs - center`` and ``t = s - n center``."""
    n_k = stats["n"]
    shift = locs - center
    t = stats["s"] - n_k[:, None] * center
    cross = t.unsqueeze(-1) * shift.unsqueeze(-2)
    outer = shift.unsqueeze(-1) * shift.unsqueeze(-2)
    return stats["ss"] - cross - cross.mT + n_k[:, None, None] * outer


def gaussian_update(
    stats: dict[str, torch.Tensor],
    params: Params | None,
    *,
    covariance_type: str,
    loc_scale: float,
    covariance_prior: float,
    ridge: torch.Tensor | None = None,
) -> Params:
    """:func:`gaussian_m_step` from :func:`gaussian_statistics` (summed over any split of the
    rows), ``params`` the same as the statistics were made under."""
    prior_prec = 1.0 / loc_scale**2
    s_kd = stats["s"]
    tiny = torch.finfo(s_kd.dtype).tiny
    if covariance_type == "diag":
        n_kd = stats["n"]
        if ridge is not None:
            n_safe = n_kd.clamp_min(tiny)
            locs = s_kd / n_safe
            sq = stats["q"] - 2 * locs * s_kd + n_kd * locs**2
            return {"locs": locs, "precision": (sq.clamp_min(0) / n_safe + ridge).reciprocal()}
        if params is None:
            locs = s_kd / n_kd.clamp_min(1e-12)
        else:
            lam = params["precision"]
            locs = lam * s_kd / (n_kd * lam + prior_prec)
        sq = stats["q"] - 2 * locs * s_kd + n_kd * locs**2
        var = (covariance_prior + sq) / (n_kd + 1.0)
        return {"locs": locs, "precision": var.reciprocal()}
    n_k, d = stats["n"], s_kd.shape[-1]
    eye = torch.eye(d, dtype=s_kd.dtype, device=s_kd.device)
    if ridge is not None or params is None:
        locs = s_kd / n_k.clamp_min(tiny).unsqueeze(-1)
    else:
        lam = params["precision"]
        lhs = n_k[:, None, None] * lam + prior_prec * eye
        locs = torch.linalg.solve(lhs, lam @ s_kd.unsqueeze(-1)).squeeze(-1)
    scatter = scatter_about(stats, second_moment_center(params, s_kd), locs)
    if ridge is not None:
        cov = scatter / n_k.clamp_min(tiny)[:, None, None]
        cov = cov + torch.diag_embed(ridge).expand_as(cov)
    else:
        cov = (covariance_prior * eye + scatter) / (n_k[:, None, None] + 1.0)
    return {"locs": locs, "precision": torch.cholesky_inverse(torch.linalg.cholesky(cov))}


def relabel_by_score(labels: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Hard ``labels`` renamed by the one-to-one assignment of labels ``l`` to classes ``k``
    that maximizes the total ``score[l, k]`` (K, K) (a linear assignment, exact)."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(score.detach().cpu().double().numpy(), maximize=True)
    relabel = torch.empty(score.shape[0], dtype=torch.long)
    relabel[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return relabel.to(labels.device)[labels]


class ColumnLikelihood:
    """Likelihood of the columns at ``positions`` under each of ``n_states`` classes.

    Subclasses define :attr:`sites`, :meth:`priors`, :meth:`log_prob`, :meth:`sample`; those
    with a closed-form M-step define :meth:`m_step`.
    """

    kind: ClassVar[str] = ""
    has_m_step: ClassVar[bool] = True
    #: Whether :meth:`m_step` gives maximum likelihood (no prior terms) rather than the
    #: posterior mode under :meth:`priors`; set by :class:`Emission`.
    ml: bool = False

    def __init__(self, schema: Schema, positions: tuple[int, ...], n_states: int) -> None:
        self.schema = schema
        self.positions = tuple(positions)
        self.n_states = int(n_states)
        self.names = tuple(schema.names[j] for j in self.positions)

    @property
    def sites(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _cols(self, x: torch.Tensor) -> torch.Tensor:
        # Every column in order (one emission family, e.g. an all-Gaussian HMM): x itself, as
        # the gather below would copy all of it, several times per EM iteration.
        if len(self.positions) == x.shape[-1] and self.positions == tuple(range(x.shape[-1])):
            return x
        return x[..., list(self.positions)]

    def priors(self, like: torch.Tensor) -> dict[str, dist.Distribution]:
        """Prior of each site, with the whole parameter (K, ...) as one event."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor, params: Params) -> torch.Tensor:
        """Masked log-likelihood of each row's columns under each class, shape (..., K)."""
        raise NotImplementedError

    def m_step(
        self, x: torch.Tensor, mask: torch.Tensor, resp: torch.Tensor, params: Params | None
    ) -> Params:
        """Maximize the expected log joint given responsibilities ``resp`` (n, K):
        :meth:`update` of :meth:`statistics`."""
        return self.update(self.statistics(x, mask, resp, params), params)

    def statistics(
        self, x: torch.Tensor, mask: torch.Tensor, resp: torch.Tensor, params: Params | None
    ) -> dict[str, torch.Tensor]:
        """The M-step's sufficient statistics given ``resp`` (n, K): sums over the rows (those
        of disjoint row sets add up), keyed ``"<first site>:<name>"`` so that the parts of an
        :class:`Emission` never collide."""
        raise ValueError(
            f"{type(self).__name__} likelihood (columns {', '.join(map(repr, self.names))}) "
            "has no closed-form M-step; use method='map'"
        )

    def update(self, stats: dict[str, torch.Tensor], params: Params | None) -> Params:
        """The M-step from :meth:`statistics` (summed over any split of the rows)."""
        raise NotImplementedError

    def _counts(self, x, mask, resp) -> dict[str, torch.Tensor]:
        """Per class and column: observed weight ``n`` and weighted sum ``s`` (K, c)."""
        obs = self._cols(mask).to(x.dtype)
        key = self.sites[0]
        return {f"{key}:n": resp.mT @ obs, f"{key}:s": resp.mT @ (self._cols(x) * obs)}

    def init_step(self, x: torch.Tensor, mask: torch.Tensor, resp: torch.Tensor) -> Params:
        """Starting values from memberships ``resp``: the M-step, or moments where none exists."""
        return self.m_step(x, mask, resp, None)

    def sample(self, states: torch.Tensor, params: Params) -> torch.Tensor:
        """Draw the columns given each row's class ``states`` (...), shape (..., c)."""
        raise NotImplementedError

    def impute(
        self, x: torch.Tensor, mask: torch.Tensor, states: torch.Tensor, params: Params
    ) -> torch.Tensor:
        """Draw the columns given the class and the row's observed entries; (..., c).

        Columns are independent given the class except for a full-covariance Normal block,
        so the default draws from the class's likelihood.
        """
        return self.sample(states, params)

    def mean(self, params: Params) -> torch.Tensor | None:
        """Mean of each column under each class on the encoded scale (K, c), if numeric."""
        return None

    def n_parameters(self) -> int:
        raise NotImplementedError

    def describe(self, params: Params) -> Params:
        return {k: params[k] for k in self.sites}

    def describe_coords(self, states: tuple) -> dict[str, tuple[tuple, ...]]:
        """Labels of the axes of :meth:`describe`'s arrays: ``states`` (the classes), then the
        columns."""
        return {k: (states, self.names) for k in self.sites}


def gaussian_coords(states: tuple, names: tuple[str, ...]) -> dict[str, tuple[tuple, ...]]:
    """Axis labels of a Gaussian block's described means, covariances (full) or variances
    (diag): classes, then column names."""
    return {
        "means": (states, names),
        "covariances": (states, names, names),
        "variances": (states, names),
    }


class Normal(ColumnLikelihood):
    """Gaussian continuous block, full or diagonal covariance (priors as GaussianMixture's)."""

    kind = "continuous"

    def __init__(
        self,
        schema: Schema,
        positions: tuple[int, ...],
        n_states: int,
        covariance_type: str = "full",
        loc_scale: float = 10.0,
        covariance_prior: float = 0.1,
    ) -> None:
        super().__init__(schema, positions, n_states)
        if covariance_type not in ("full", "diag"):
            raise ValueError(f"covariance_type must be 'full' or 'diag', got {covariance_type!r}")
        self.covariance_type = covariance_type
        self.loc_scale = float(loc_scale)
        self.covariance_prior = float(covariance_prior)
        self.reg_covar = 1e-6

    def ridge(self, like: torch.Tensor) -> torch.Tensor | None:
        """The maximum-likelihood M-step's diagonal ridge on the encoded scale, (d,), or None
        for the posterior mode: ``reg_covar`` is in the data's units of variance, so column j
        gets ``reg_covar / scale_j^2`` (its standardization scale)."""
        if not self.ml:
            return None
        scale = like.new_tensor([self.schema.columns[j].scale for j in self.positions])
        return self.reg_covar / scale**2

    @property
    def sites(self) -> tuple[str, ...]:
        return ("locs", "precision")

    def priors(self, like: torch.Tensor) -> dict[str, dist.Distribution]:
        K, d = self.n_states, len(self.positions)
        priors = {"locs": dist.Normal(like.new_zeros(K, d), self.loc_scale).to_event(2)}
        if self.covariance_type == "full":
            scale = torch.eye(d, dtype=like.dtype, device=like.device) / self.covariance_prior
            priors["precision"] = WishartPrecision(
                df=like.new_tensor(d + 2.0), covariance_matrix=scale.expand(K, d, d)
            ).to_event(1)
        else:
            priors["precision"] = dist.Gamma(
                like.new_full((K, d), 1.5), self.covariance_prior / 2
            ).to_event(2)
        return priors

    def _dist(self, loc, precision, mask) -> dist.Distribution:
        if self.covariance_type == "full":
            return MaskedMultivariateNormal(loc, precision, mask)
        normal = dist.Normal(loc, precision.rsqrt())
        return (normal if mask is None else normal.mask(mask)).to_event(1)

    def log_prob(self, x, mask, params):
        xs, ms = self._cols(x).unsqueeze(-2), self._cols(mask).unsqueeze(-2)
        if self.covariance_type == "full":
            return MaskedMultivariateNormal(params["locs"], params["precision"], ms).log_prob(xs)
        lp = dist.Normal(params["locs"], params["precision"].rsqrt()).log_prob(xs)
        return torch.where(ms, lp, lp.new_zeros(())).sum(-1)

    def _options(self, like: torch.Tensor) -> dict:
        return {
            "covariance_type": self.covariance_type,
            "loc_scale": self.loc_scale,
            "covariance_prior": self.covariance_prior,
            "ridge": self.ridge(like),
        }

    def statistics(self, x, mask, resp, params):
        stats = gaussian_statistics(
            self._cols(x), self._cols(mask), resp, params, **self._options(x)
        )
        return {f"locs:{k}": v for k, v in stats.items()}

    def update(self, stats, params):
        own = {k[len("locs:") :]: v for k, v in stats.items() if k.startswith("locs:")}
        return gaussian_update(own, params, **self._options(own["s"]))

    def sample(self, states, params):
        return self._dist(params["locs"][states], params["precision"][states], None).sample()

    def impute(self, x, mask, states, params):
        xs, ms = self._cols(x), self._cols(mask)
        loc, precision = params["locs"][states], params["precision"][states]
        eps = torch.randn_like(xs)
        if self.covariance_type == "diag":
            return loc + precision.rsqrt() * eps
        cond = condition_on_precision(xs, ~ms, loc, precision)
        return torch.where(ms, xs, cond.mean + cond.noise(eps))

    def mean(self, params):
        return params["locs"]

    def n_parameters(self) -> int:
        d = len(self.positions)
        cov = d * (d + 1) // 2 if self.covariance_type == "full" else d
        return self.n_states * (d + cov)

    def describe(self, params):
        cols = [self.schema.columns[j] for j in self.positions]
        scale = params["locs"].new_tensor([c.scale for c in cols])
        loc = params["locs"].new_tensor([c.loc for c in cols])
        out = {"means": params["locs"] * scale + loc}
        if self.covariance_type == "full":
            cov = torch.cholesky_inverse(torch.linalg.cholesky(params["precision"]))
            out["covariances"] = cov * scale.unsqueeze(-1) * scale
        else:
            out["variances"] = params["precision"].reciprocal() * scale**2
        return out

    def describe_coords(self, states):
        return gaussian_coords(states, self.names)


class Poisson(ColumnLikelihood):
    """Poisson counts; ``rates`` ~ Gamma(rate_shape, rate_rate) (mean 100, nearly flat)."""

    kind = "count"

    def __init__(self, schema, positions, n_states, rate_shape=1.0, rate_rate=0.01) -> None:
        super().__init__(schema, positions, n_states)
        self.rate_shape, self.rate_rate = float(rate_shape), float(rate_rate)

    @property
    def sites(self) -> tuple[str, ...]:
        return ("rates",)

    def priors(self, like):
        shape = (self.n_states, len(self.positions))
        return {
            "rates": dist.Gamma(like.new_full(shape, self.rate_shape), self.rate_rate).to_event(2)
        }

    def log_prob(self, x, mask, params):
        xs, ms = self._cols(x).unsqueeze(-2), self._cols(mask).unsqueeze(-2)
        lp = dist.Poisson(params["rates"], validate_args=False).log_prob(xs)
        return torch.where(ms, lp, lp.new_zeros(())).sum(-1)

    def statistics(self, x, mask, resp, params):
        return self._counts(x, mask, resp)

    def update(self, stats, params):
        n_kc, s_kc = stats["rates:n"], stats["rates:s"]
        tiny = torch.finfo(n_kc.dtype).tiny
        if self.ml:
            rates = s_kc / n_kc.clamp_min(tiny)
            # A class that holds no row keeps its rate (or, at the start, the overall mean).
            if params is not None and "rates" in params:
                rates = torch.where(n_kc > tiny, rates, params["rates"])
            else:
                overall = s_kc.sum(0) / n_kc.sum(0).clamp_min(tiny)
                rates = torch.where(n_kc > tiny, rates, overall)
            return {"rates": rates.clamp_min(tiny)}
        rates = (s_kc + self.rate_shape - 1).clamp_min(0) / (n_kc + self.rate_rate)
        return {"rates": rates.clamp_min(tiny)}

    def sample(self, states, params):
        return dist.Poisson(params["rates"][states]).sample()

    def mean(self, params):
        return params["rates"]

    def n_parameters(self) -> int:
        return self.n_states * len(self.positions)


class NegativeBinomial(Poisson):
    """Over-dispersed counts: mean ``rates``, variance ``rates + rates^2 / concentration``."""

    has_m_step = False

    @property
    def sites(self) -> tuple[str, ...]:
        return ("rates", "concentration")

    def priors(self, like):
        shape = (self.n_states, len(self.positions))
        priors = super().priors(like)
        priors["concentration"] = dist.Gamma(like.new_full(shape, 2.0), 0.1).to_event(2)
        return priors

    def _dist(self, rates, concentration):
        return dist.NegativeBinomial(
            total_count=concentration, logits=rates.log() - concentration.log(), validate_args=False
        )

    def log_prob(self, x, mask, params):
        xs, ms = self._cols(x).unsqueeze(-2), self._cols(mask).unsqueeze(-2)
        lp = self._dist(params["rates"], params["concentration"]).log_prob(xs)
        return torch.where(ms, lp, lp.new_zeros(())).sum(-1)

    # The concentration has no closed-form update: EM refuses (Poisson's sums are not enough).
    statistics = ColumnLikelihood.statistics

    def init_step(self, x, mask, resp):
        """Weighted means, and concentrations mean^2 / (var - mean) by moments (0.5 to 100)."""
        rates = Poisson.update(self, Poisson.statistics(self, x, mask, resp, None), None)["rates"]
        obs = self._cols(mask).to(x.dtype)
        xs = self._cols(x) * obs
        n_kc = (resp.mT @ obs).clamp_min(1e-12)
        var = (resp.mT @ (xs * xs)) / n_kc - rates**2
        excess = (var - rates).clamp_min(1e-6)
        return {"rates": rates, "concentration": (rates**2 / excess).clamp(0.5, 100.0)}

    def sample(self, states, params):
        return self._dist(params["rates"][states], params["concentration"][states]).sample()

    def n_parameters(self) -> int:
        return 2 * super().n_parameters()


class Bernoulli(ColumnLikelihood):
    """Binary columns: ``probs[k, j]`` = P(code 1) ~ Beta(c, c)."""

    kind = "binary"

    def __init__(self, schema, positions, n_states, concentration=1.5) -> None:
        super().__init__(schema, positions, n_states)
        self.concentration = float(concentration)

    @property
    def sites(self) -> tuple[str, ...]:
        return ("probs",)

    def priors(self, like):
        c = like.new_full((self.n_states, len(self.positions)), self.concentration)
        return {"probs": dist.Beta(c, c).to_event(2)}

    def log_prob(self, x, mask, params):
        xs, ms = self._cols(x).unsqueeze(-2), self._cols(mask).unsqueeze(-2)
        p = params["probs"]
        lp = torch.where(xs > 0.5, p.log(), torch.log1p(-p))
        return torch.where(ms, lp, lp.new_zeros(())).sum(-1)

    def statistics(self, x, mask, resp, params):
        return self._counts(x, mask, resp)

    def update(self, stats, params):
        n_kc, s_kc = stats["probs:n"], stats["probs:s"]
        a = 0.0 if self.ml else self.concentration - 1
        n_kc = n_kc + 2 * a
        probs = (s_kc + a) / n_kc.clamp_min(torch.finfo(n_kc.dtype).tiny)
        probs = torch.where(n_kc > 0, probs, probs.new_full((), 0.5))
        return {"probs": probs.clamp(1e-12, 1 - 1e-12)}

    def sample(self, states, params):
        return dist.Bernoulli(params["probs"][states]).sample()

    def mean(self, params):
        return params["probs"]

    def n_parameters(self) -> int:
        return self.n_states * len(self.positions)


class Binomial(ColumnLikelihood):
    """Bounded integers ``0..size`` (pixels 0-16, Likert items coded 0..m):
    ``Binomial(size_j, success[k, j])``, ``success`` ~ Beta(c, c); ``size_j`` from the schema."""

    kind = "binomial"

    def __init__(self, schema, positions, n_states, concentration=1.5) -> None:
        super().__init__(schema, positions, n_states)
        self.concentration = float(concentration)
        self.sizes = tuple(float(schema.columns[j].size) for j in self.positions)

    @property
    def sites(self) -> tuple[str, ...]:
        return ("success",)

    def _size(self, like: torch.Tensor) -> torch.Tensor:
        return like.new_tensor(self.sizes)

    def priors(self, like):
        c = like.new_full((self.n_states, len(self.positions)), self.concentration)
        return {"success": dist.Beta(c, c).to_event(2)}

    def log_prob(self, x, mask, params):
        xs, ms = self._cols(x).unsqueeze(-2), self._cols(mask).unsqueeze(-2)
        p = params["success"]
        # Masked entries may hold anything: score a valid value there and drop it.
        xs = torch.where(ms, xs, xs.new_zeros(()))
        lp = dist.Binomial(self._size(p), probs=p, validate_args=False).log_prob(xs)
        return torch.where(ms, lp, lp.new_zeros(())).sum(-1)

    def statistics(self, x, mask, resp, params):
        return self._counts(x, mask, resp)

    def update(self, stats, params):
        n_kc, s_kc = stats["success:n"], stats["success:s"]
        a = 0.0 if self.ml else self.concentration - 1
        p = (s_kc + a) / (n_kc * self._size(n_kc) + 2 * a)
        return {"success": p.clamp(1e-12, 1 - 1e-12)}

    def sample(self, states, params):
        p = params["success"][states]
        return dist.Binomial(self._size(p), probs=p).sample()

    def mean(self, params):
        return params["success"] * self._size(params["success"])

    def n_parameters(self) -> int:
        return self.n_states * len(self.positions)


class Categorical(ColumnLikelihood):
    """Categorical columns, one site ``probs[name]`` (K, C) ~ Dirichlet(c 1_C) per column."""

    kind = "categorical"

    def __init__(self, schema, positions, n_states, concentration=1.5) -> None:
        super().__init__(schema, positions, n_states)
        self.concentration = float(concentration)
        self.n_categories = tuple(schema.columns[j].n_categories for j in self.positions)

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(f"probs[{name}]" for name in self.names)

    def priors(self, like):
        return {
            site: dist.Dirichlet(like.new_full((self.n_states, C), self.concentration)).to_event(1)
            for site, C in zip(self.sites, self.n_categories, strict=True)
        }

    def log_prob(self, x, mask, params):
        # As many classes as the parameters have (an HMM's screened starts stack theirs).
        out = x.new_zeros(x.shape[:-1] + (params[self.sites[0]].shape[0],))
        for site, j, C in zip(self.sites, self.positions, self.n_categories, strict=True):
            codes = x[..., j].long().clamp(0, C - 1)  # masked entries may hold anything
            lp = params[site].log().mT[codes]  # (..., K)
            out = out + torch.where(mask[..., j : j + 1], lp, lp.new_zeros(()))
        return out

    def statistics(self, x, mask, resp, params):
        out = {}
        for site, j, C in zip(self.sites, self.positions, self.n_categories, strict=True):
            onehot = torch.nn.functional.one_hot(x[..., j].long().clamp(0, C - 1), C).to(x.dtype)
            out[f"{site}:counts"] = resp.mT @ (onehot * mask[..., j : j + 1].to(x.dtype))
        return out

    def update(self, stats, params):
        out = {}
        for site, C in zip(self.sites, self.n_categories, strict=True):
            counts = stats[f"{site}:counts"]  # (K, C)
            probs = (counts + (0.0 if self.ml else self.concentration - 1)).clamp_min(0)
            total = probs.sum(-1, keepdim=True)
            # A class that holds no row of this column: uniform (nothing to learn from).
            probs = torch.where(total > 0, probs / total.clamp_min(1e-300), 1.0 / C)
            out[site] = probs.clamp_min(1e-12)
        return out

    def sample(self, states, params):
        draws = [dist.Categorical(params[site][states]).sample() for site in self.sites]
        return torch.stack(draws, -1).to(params[self.sites[0]].dtype)

    def n_parameters(self) -> int:
        return self.n_states * sum(C - 1 for C in self.n_categories)

    def describe_coords(self, states):
        return {
            site: (states, tuple(self.schema.columns[j].categories))
            for site, j in zip(self.sites, self.positions, strict=True)
        }


class Emission:
    """The likelihood of a whole encoded row under each of ``n_states`` classes.

    Parameters
    ----------
    schema : Schema
    n_states : int
    family : {"gaussian", "poisson", "negbinomial", "categorical", "mixed"}
        ``"mixed"`` gives continuous columns a Normal block, counts a Poisson
        (``count_family="negbinomial"`` for over-dispersion), binary columns a Bernoulli,
        binomial columns a Binomial and categorical columns a Categorical; the other families
        require their column kinds.
    covariance_type : {"full", "diag"}
        Of the continuous block.
    ml : bool
        Closed-form M-steps give maximum likelihood (priors ignored; the Gaussian block's
        covariances get the ridge ``reg_covar``, in the data's units of variance) instead of
        the posterior mode. :meth:`priors` are the same either way (the Pyro programs use them).
    reg_covar : float
        The ridge of the maximum-likelihood covariances, as scikit-learn's.
    """

    def __init__(
        self,
        schema: Schema,
        n_states: int,
        family: str = "mixed",
        covariance_type: str = "full",
        *,
        count_family: str = "poisson",
        loc_scale: float = 10.0,
        covariance_prior: float = 0.1,
        rate_shape: float = 1.0,
        rate_rate: float = 0.01,
        concentration: float = 1.5,
        ml: bool = False,
        reg_covar: float = 1e-6,
    ) -> None:
        if family not in EMISSIONS:
            raise ValueError(f"emission must be one of {tuple(EMISSIONS)}, got {family!r}")
        if family == "negbinomial":
            count_family = "negbinomial"
        counts = {"poisson": Poisson, "negbinomial": NegativeBinomial}[count_family]
        self.schema, self.n_states, self.family = schema, int(n_states), family
        self.parts: list[ColumnLikelihood] = []
        pos = schema.positions
        if pos("continuous"):
            self.parts.append(
                Normal(
                    schema,
                    pos("continuous"),
                    n_states,
                    covariance_type,
                    loc_scale,
                    covariance_prior,
                )  # fmt: skip
            )
        if pos("count"):
            self.parts.append(counts(schema, pos("count"), n_states, rate_shape, rate_rate))
        if pos("binary"):
            self.parts.append(Bernoulli(schema, pos("binary"), n_states, concentration))
        if pos("categorical"):
            self.parts.append(Categorical(schema, pos("categorical"), n_states, concentration))
        if pos("binomial"):
            self.parts.append(Binomial(schema, pos("binomial"), n_states, concentration))
        for part in self.parts:
            part.ml = bool(ml)
            part.reg_covar = float(reg_covar)

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(s for part in self.parts for s in part.sites)

    @property
    def has_m_step(self) -> bool:
        return all(part.has_m_step for part in self.parts)

    def priors(self, like: torch.Tensor) -> dict[str, dist.Distribution]:
        return {k: v for part in self.parts for k, v in part.priors(like).items()}

    def log_prior(self, params: Params) -> torch.Tensor:
        priors = self.priors(next(iter(params.values())))
        return sum(priors[k].log_prob(params[k]) for k in self.sites)

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor, params: Params) -> torch.Tensor:
        """Masked log-likelihood of every row under every class, shape (..., K)."""
        return sum(part.log_prob(x, mask, params) for part in self.parts)

    def label_scores(
        self, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, held: Params
    ) -> torch.Tensor:
        """How well hard ``labels`` (n,) of rows ``x`` (n, p) fit each class under the parts
        whose sites ``held`` gives all: ``[l, k]`` sums the log-likelihoods of the rows
        labelled l under class k, (K, K), impossible rows floored at -1e100; zeros when no
        part is held. Models name the labels of a start after held parameters with it."""
        K = self.n_states
        onehot = torch.nn.functional.one_hot(labels, K).to(x.dtype)
        out = x.new_zeros(K, K)
        for part in self.parts:
            if all(site in held for site in part.sites):
                out = out + onehot.mT @ part.log_prob(x, mask, held).clamp_min(-1e100)
        return out

    def m_step(
        self, x: torch.Tensor, mask: torch.Tensor, resp: torch.Tensor, params: Params | None
    ) -> Params:
        """Closed-form M-step of every part; ``x``, ``mask`` (n, p) and ``resp`` (n, K)."""
        return {k: v for part in self.parts for k, v in part.m_step(x, mask, resp, params).items()}

    def statistics(
        self, x: torch.Tensor, mask: torch.Tensor, resp: torch.Tensor, params: Params | None
    ) -> dict[str, torch.Tensor]:
        """Every part's :meth:`ColumnLikelihood.statistics` (sums over the rows)."""
        return {
            k: v for part in self.parts for k, v in part.statistics(x, mask, resp, params).items()
        }

    def update(self, stats: dict[str, torch.Tensor], params: Params | None) -> Params:
        """Every part's M-step from :meth:`statistics` summed over any split of the rows."""
        return {k: v for part in self.parts for k, v in part.update(stats, params).items()}

    def init_step(self, x: torch.Tensor, mask: torch.Tensor, resp: torch.Tensor) -> Params:
        """Starting values of every part from memberships ``resp`` (n, K)."""
        return {k: v for part in self.parts for k, v in part.init_step(x, mask, resp).items()}

    def sample(self, states: torch.Tensor, params: Params) -> torch.Tensor:
        """Rows drawn given each row's class, shape states.shape + (p,)."""
        return self._assemble(states, [part.sample(states, params) for part in self.parts])

    def impute(
        self, x: torch.Tensor, mask: torch.Tensor, states: torch.Tensor, params: Params
    ) -> torch.Tensor:
        """Missing entries drawn given the class and the observed entries; observed kept."""
        draws = [part.impute(x, mask, states, params) for part in self.parts]
        return torch.where(mask, x, self._assemble(states, draws, like=x))

    def _assemble(self, states, draws, like=None) -> torch.Tensor:
        ref = like if like is not None else draws[0]
        out = ref.new_zeros(states.shape + (len(self.schema),))
        for part, d in zip(self.parts, draws, strict=True):
            out[..., list(part.positions)] = d.to(out.dtype)
        return out

    def means(self, params: Params) -> torch.Tensor:
        """Per-class mean of every numeric (continuous, count, binary, binomial) column, (K, p);
        NaN else."""
        ref = next(iter(params.values()))
        out = ref.new_full((self.n_states, len(self.schema)), float("nan"))
        for part in self.parts:
            m = part.mean(params)
            if m is not None:
                out[:, list(part.positions)] = m
        return out

    def n_parameters(self) -> int:
        return sum(part.n_parameters() for part in self.parts)

    def describe(self, params: Params) -> Params:
        return {k: v for part in self.parts for k, v in part.describe(params).items()}

    def describe_coords(self, states: tuple) -> dict[str, tuple[tuple, ...]]:
        """Axis labels of :meth:`describe`'s arrays: ``states``, then column names (or a
        categorical column's labels)."""
        return {k: v for part in self.parts for k, v in part.describe_coords(states).items()}

    def permute(self, params: Params, perm: torch.Tensor) -> Params:
        """Relabel the classes: new class ``i`` is old class ``perm[i]``."""
        return {k: params[k][perm] for k in self.sites}
