"""Gaussian mixture model with enumerated assignments."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.ops.indexing import Vindex

from ppgen._utils import check_int, check_number
from ppgen.data.schema import Schema
from ppgen.models import _gmm_kernel, covariances
from ppgen.models.base import GenerativeModel, Params
from ppgen.models.distributions import (
    GaussianConditional,
    MaskedMultivariateNormal,
    WishartPrecision,
    condition_on_precision,
)
from ppgen.models.likelihoods import (
    EMISSIONS,
    Emission,
    check_estimator,
    gaussian_coords,
    gaussian_m_step,
    gaussian_statistics,
    gaussian_update,
    relabel_by_score,
    scatter_about,
    second_moment_center,
)

__all__ = ["GaussianMixture"]

#: Under maximum likelihood, a component whose expected count is at most this fraction of the
#: rows is empty: its weight is floored there and its other parameters are kept.
_EMPTY = 1e-10

#: With a sparse weight penalty (``weight_concentration`` < 1 under maximum likelihood) a
#: switched-off component's weight is held at this value (not exactly 0, so that the penalty
#: ``(alpha - 1) log w`` stays finite and EM's objective monotone); a component whose weight
#: is at most :data:`OFF_WEIGHT` counts as off (:meth:`GaussianMixture.effective_components`).
OFF_FLOOR = 1e-10
OFF_WEIGHT = 1e-8

#: Structures with their own (unconstrained) M-step, the aliases "full" and "diag"; the others
#: go through :mod:`ppgen.models.covariances`.
_UNCONSTRAINED = ("VVV", "VVI")

#: The structures whose M-step iterates from the previous covariances
#: (:func:`ppgen.models.covariances.m_step`'s ``start``).
_ITERATIVE = frozenset({"VEI", "VEE", "VEV", "EVE", "VVE"})

#: Starts are screened on at most this many rows (see GaussianMixture.init_params).
SCREEN_ROWS = 5_000
#: A start whose relative gain per iteration falls below this has converged while screened.
_SCREEN_TOL = 1e-8


def _check_estimator(prior: str | None, reg_covar: float, n_init: int, init_steps: int) -> None:
    """The estimator options of the mixture (ValueError naming one)."""
    check_estimator(prior, reg_covar)
    check_int(n_init, "n_init")
    check_int(init_steps, "init_steps", minimum=0)


def _weight_exponent(concentration: Any, prior: str | None) -> float | str | None:
    """``alpha - 1`` of the weight penalty maximum-likelihood EM adds (None: none, alpha = 1),
    or "mml"; ValueError naming ``weight_concentration`` when it is not allowed."""
    if concentration == "mml":
        if prior is not None:
            raise ValueError(
                "weight_concentration='mml' is a penalty of maximum-likelihood EM (prior=None), "
                f"got prior={prior!r}"
            )
        return "mml"
    if isinstance(concentration, str):
        raise ValueError(f"weight_concentration must be a number or 'mml', got {concentration!r}")
    value = check_number(concentration, "weight_concentration", positive=prior is not None)
    if prior is None and not math.isfinite(value):
        raise ValueError(f"weight_concentration must be finite, got {concentration!r}")
    return None if value == 1.0 or prior is not None else value - 1.0


def _diagonal_log_density(
    x: torch.Tensor, mask: torch.Tensor | None, locs: torch.Tensor, precision: torch.Tensor
) -> torch.Tensor:
    """log N(x_i | locs_k, diag(1 / precision_k)) of each row's observed entries, (K, n), from
    rows ``x`` (n, d), ``mask`` (n, d) or None, ``locs`` and ``precision`` (K, 1, d): the
    E-step of the diagonal structures in a few tensor operations (``torch.distributions.Normal``
    costs several times more on small tables)."""
    terms = (x - locs).square() * precision - precision.log() + math.log(2 * math.pi)
    if mask is not None:
        terms = torch.where(mask, terms, terms.new_zeros(()))
    return -0.5 * terms.sum(-1)


#: A screened start is dropped when it is further below the leader than this many times the
#: gain its EM steps can still make (:func:`_hopeless`).
_HOPELESS_MARGIN = 100.0
#: ... judged on its last this many gains, all shrinking.
_HOPELESS_STEPS = 10


def _hopeless(value: float, gains: tuple[float, ...], lead: float) -> bool:
    """Whether a screened start at log-likelihood ``value``, whose last EM gains are ``gains``
    (oldest first), cannot reach the leader's ``lead``. EM converges linearly: with the gains
    shrinking by at most the ratio ``rho`` per step what is left is at most about
    ``g rho / (1 - rho)`` (a geometric series from the last gain g). A start is judged only
    after :data:`_HOPELESS_STEPS` gains that all shrank, with ``rho`` the largest of their
    ratios, and dropped when the leader is ahead by more than :data:`_HOPELESS_MARGIN` times
    that estimate. The leader's current value is below its final one (EM never decreases the
    likelihood), so the test is conservative in that respect."""
    if len(gains) < _HOPELESS_STEPS or not all(math.isfinite(g) and g > 0 for g in gains):
        return False
    rho = max(b / a for a, b in zip(gains[:-1], gains[1:], strict=True))
    if rho >= 1:
        return False
    left = gains[-1] * rho / (1 - rho)
    return lead - value > _HOPELESS_MARGIN * left + 1e-9 * abs(lead)


def _distinct(starts: list[Params]) -> list[Params]:
    """``starts`` without exact repeats of an earlier one (k-means often returns the same
    partition from several seedings): a repeat would follow the same iterations to the same
    value, and the first of equals wins, so screening it changes nothing."""
    out: list[Params] = []
    for params in starts:
        if not any(all(torch.equal(params[k], seen[k]) for k in params) for seen in out):
            out.append(params)
    return out


#: The global sites of a continuous mixture, the fused kernel's arrays.
_SITES = ("weights", "locs", "precision")


def _tensors(arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Params:
    """The fused kernel's ``(weights, locs, precision)`` as the sites (sharing memory)."""
    return {name: torch.from_numpy(a) for name, a in zip(_SITES, arrays, strict=True)}


def _arrays(params: Params) -> dict[str, np.ndarray]:
    """The sites of a continuous mixture as arrays (sharing memory; CPU tensors)."""
    return {name: params[name].numpy() for name in _SITES}


def _plain_sites(params: Params) -> bool:
    """Whether ``params`` are one continuous mixture's sites as float64 CPU tensors without
    gradients or batch dimensions (what the fused kernel takes)."""
    if set(params) != set(_SITES) or params["weights"].dim() != 1:
        return False
    return all(
        v.dtype == torch.float64 and v.device.type == "cpu" and not v.requires_grad
        for v in params.values()
    )


def _sites(arrays: dict[str, np.ndarray]) -> Params:
    return _tensors(tuple(arrays[name] for name in _SITES))


class _Factorizable(constraints.Constraint):
    """Symmetric matrices with a Cholesky factorization (positive definite), checked by the
    factorization alone: the precisions EM's extrapolations may move to."""

    event_dim = 2

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return torch.linalg.cholesky_ex(value).info == 0


class _Simplex(constraints.Constraint):
    """The probability simplex, checked as torch's ``constraints.simplex`` (non-negative,
    summing to 1 within 1e-6) in numpy for CPU tensors (a few times cheaper)."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        if value.device.type != "cpu":
            return constraints.simplex.check(value)
        a = value.numpy()
        return torch.from_numpy(np.asarray(np.all(a >= 0, -1) & (np.abs(a.sum(-1) - 1) < 1e-6)))


_FACTORIZABLE, _SIMPLEX = _Factorizable(), _Simplex()


class _MixedRow(dist.TorchDistribution):
    """Whole rows given their class: the continuous block's masked Gaussian density plus the
    other kinds' masked log-likelihoods (``others``, already evaluated at the row's class).

    Only scored (the observation site of the Pyro model), never sampled.
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector

    def __init__(
        self,
        gaussian: dist.Distribution | None,
        positions: tuple[int, ...],
        others: torch.Tensor,
        n_columns: int,
    ) -> None:
        self.gaussian, self.positions, self.others = gaussian, positions, others
        batch_shape = others.shape
        if gaussian is not None:
            batch_shape = torch.broadcast_shapes(batch_shape, gaussian.batch_shape)
        super().__init__(batch_shape, torch.Size([n_columns]), validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        gaussian = None if self.gaussian is None else self.gaussian.expand(batch_shape)
        return _MixedRow(
            gaussian, self.positions, self.others.expand(batch_shape), self.event_shape[0]
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = self.others
        if self.gaussian is not None:
            lp = lp + self.gaussian.log_prob(value[..., list(self.positions)])
        return lp


class GaussianMixture(GenerativeModel):
    r"""Finite mixture (latent class model), fitted with the assignments summed out exactly.

    Continuous columns are jointly Gaussian within a class (full or diagonal covariance); count,
    binary and categorical columns are independent given the class, with the per-column
    likelihoods of :mod:`ppgen.models.likelihoods` (Poisson or negative binomial, Bernoulli,
    Categorical). A table of continuous columns alone is the classical Gaussian mixture.

    Generative story (d continuous columns, K components, n rows)::

        weights              ~ Dirichlet(weight_concentration * 1_K)            # (K,)
        for k in 1..K:
            locs[k]          ~ Normal(0, loc_scale^2 I_d)                      # (K, d)
            precision[k]     ~ Wishart(df=d + 2, scale=I_d / covariance_prior)  # full (K, d, d)
                             | Gamma(1.5, covariance_prior / 2) per column       # diag (K, d)
        # only when the table has such columns (c_count, c_bin of them; C_j categories):
        rates                ~ Gamma(1, 0.01)                                  # (K, c_count)
        concentration        ~ Gamma(2, 0.1)         # count_family="negbinomial" (K, c_count)
        probs                ~ Beta(concentration, concentration)              # (K, c_bin)
        probs[name]          ~ Dirichlet(concentration * 1_{C_j})     # per categorical (K, C_j)
        for i in 1..n:
            assignment[i]    ~ Categorical(weights)                            # enumerated
            x[i, cont]       ~ Normal(locs[k], precision[k]^-1),  k = assignment[i]
            x[i, count j]    ~ Poisson(rates[k, j])      # or NegativeBinomial(mean rates[k, j])
            x[i, binary j]   ~ Bernoulli(probs[k, j])
            x[i, categ. j]   ~ Categorical(probs[name_j][k])

    The sites of the other kinds exist only when the table holds their columns (and ``locs`` and
    ``precision`` only when it holds continuous ones): :attr:`global_sites` is set by
    :meth:`build`, as for :class:`~ppgen.models.hmm.HMM`. A continuous-only table has the sites
    ``weights``, ``locs``, ``precision`` and nothing else. The continuous block is this class's
    own; the other kinds reuse :class:`~ppgen.models.likelihoods.Emission` (without its
    continuous part) for priors, log-likelihoods, closed-form M-steps and draws.

    *Estimator.* With ``prior=None`` (the default) the closed-form EM (``method="em"``) gives the
    **maximum-likelihood** estimate, as scikit-learn's ``GaussianMixture`` and mclust do: no
    prior term in any M-step; covariances get scikit-learn's ridge ``reg_covar`` (1e-6, in the
    data's units of variance: ``reg_covar / scale_j^2`` on column j's standardized scale) on the
    diagonal so that a component on duplicated rows stays non-singular; a component that loses
    every row keeps its parameters with a floored weight. Its objective (:meth:`log_joint`) is
    the log-likelihood. Starts: :meth:`init_params` draws ``n_init`` k-means++ starts
    (:meth:`init_candidates`), runs ``init_steps`` EM iterations from each and returns the best.
    With ``prior="default"`` EM gives the posterior mode under the priors above, from one
    k-means start (the estimator of earlier versions). The Pyro programs (``method="map"``,
    ``"svi"``, ``"nuts"``) always carry the priors.

    The priors are weak and stated on the encoded scale (continuous columns standardized, counts
    as counts, labels as codes), so they do not depend on the data's units. The Wishart/Gamma
    prior keeps every MAP covariance at least ``covariance_prior / (n_k + 1)`` per column (in
    units of the column's variance), so MAP never collapses a component onto a single point;
    its pull on the log-likelihood vanishes as n_k grows but is not negligible for a component
    that is narrow compared with the whole column (well-separated clusters). The Beta/Dirichlet
    concentration 1.5 keeps MAP probabilities off 0 and 1. Missing entries are dropped from each
    row's likelihood (exact marginal of the observed ones).

    Parameters
    ----------
    n_components : int
        Number of mixture components K.
    covariance_type : {"full", "diag"} or one of mclust's 14 structures
        Full covariance per component, or a diagonal one (continuous columns); or a
        parsimonious structure ``Sigma_k = lambda_k D_k A_k D_k^T`` under mclust's names
        ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV",
        "EVV", "VVV"; volume, shape, orientation Equal, Variable or Identity; "full" is "VVV"
        and "diag" is "VVI"), fitted by maximum-likelihood EM only, in the data's own units, with
        mclust's parameter counts (:mod:`ppgen.models.covariances`; Celeux & Govaert 1995).
    weight_concentration : float or "mml"
        Concentration alpha of the Dirichlet on the weights; 1 (the default) is flat over the
        simplex. Under ``prior="default"`` and in the Pyro programs it is the Dirichlet prior
        (alpha > 0). Under maximum likelihood (``prior=None``, EM) a value other than 1 adds
        the *sparse weight penalty* ``(alpha - 1) sum_k log w_k`` to the log-likelihood
        (alpha may then be <= 0: an improper Dirichlet), and EM's weight update is
        ``w_k ~ max(n_k + alpha - 1, 0)``: a component whose expected count falls to
        ``1 - alpha`` or below is switched off (weight held at 1e-10; see
        :meth:`effective_components`). ``"mml"`` is Figueiredo & Jain's (2002)
        minimum-message-length value ``alpha = 1 - N/2``, N the free parameters of one
        component (means and covariance; 5 for VVV in 2 dimensions), the setting with which an
        overfitted mixture (K larger than needed) switches off the components the data do not
        support (tests/models/test_gmm_sparse.py). A Dirichlet with 0 < alpha < 1 alone
        (Rousseau & Mengersen's condition for the *posterior* of an overfitted mixture) barely
        moves a point estimate: it switches off only components with fewer than ~1 row.
    loc_scale : float
        Prior standard deviation of the component means (standardized units).
    covariance_prior : float
        Strength of the covariance floor, in standardized units of variance.
    count_family : {"poisson", "negbinomial"}
        Likelihood of count columns; the negative binomial (over-dispersion) has no closed-form
        M-step, so fit it with ``method="map"``.
    concentration : float
        Beta/Dirichlet concentration of binary and categorical probabilities.
    prior : {None, "default"}
        What closed-form EM maximizes: the likelihood (None) or the posterior under the priors
        above ("default").
    reg_covar : float
        Ridge added to the diagonal of maximum-likelihood covariances, in the data's units.
    n_init : int
        Number of k-means++ starts :meth:`init_params` screens (maximum likelihood only).
    init_steps : int
        Most EM iterations run from each start (fewer once it converges) before the best is
        kept.
    init : {"kmeans", "hc"}
        Where the starts come from: ``n_init`` k-means++ starts ("kmeans", the default); or,
        as mclust, the hierarchical agglomeration of the rows cut at K clusters
        (:mod:`ppgen.models._hc`: Ward's criterion on mclust's SVD-transformed data, computed
        once per data set and cached) as the first start, followed by ``n_init - 1`` k-means++
        starts ("hc"; with ``n_init=1`` the agglomeration's start alone, no screening).
    init_partition : array of int, optional
        A partition of the rows (labels 0..K-1, one per training row) to start from instead
        of the agglomeration's (implies ``init="hc"``). Not saved with a fit (it belongs to
        one data set).

    References
    ----------
    McLachlan, G. & Peel, D. (2000). *Finite Mixture Models*. Wiley.
    Bishop, C. M. (2006). *Pattern Recognition and Machine Learning*, ch. 9-10. Springer.
    Hagenaars, J. A. & McCutcheon, A. L. (2002). *Applied Latent Class Analysis*. CUP.
    Celeux, G. & Govaert, G. (1995). Gaussian parsimonious clustering models. *Pattern
    Recognition* 28(5), 781-793.
    Figueiredo, M. A. T. & Jain, A. K. (2002). Unsupervised learning of finite mixture models.
    *IEEE TPAMI* 24(3), 381-396.
    Rousseau, J. & Mengersen, K. (2011). Asymptotic behaviour of the posterior distribution in
    overfitted mixture models. *JRSS B* 73(5), 689-710.
    """

    global_sites: ClassVar[tuple[str, ...]] = ("weights", "locs", "precision")
    supported_kinds: ClassVar[tuple[str, ...]] = EMISSIONS["mixed"]
    enumerated: ClassVar[bool] = True
    label_arguments: ClassVar[int] = 2  # GaussianMixture(3, full)

    def __init__(
        self,
        n_components: int,
        covariance_type: str = "full",
        *,
        weight_concentration: float = 1.0,
        loc_scale: float = 10.0,
        covariance_prior: float = 0.1,
        count_family: str = "poisson",
        concentration: float = 1.5,
        prior: str | None = None,
        reg_covar: float = 1e-6,
        n_init: int = 10,
        init_steps: int = 100,
        init: str = "kmeans",
        init_partition: Any = None,
    ) -> None:
        super().__init__()
        check_int(n_components, "n_components")
        structure = covariances.canonical(covariance_type)
        if structure not in _UNCONSTRAINED and prior is not None:
            raise ValueError(
                f"covariance_type={covariance_type!r} is fitted by maximum likelihood only "
                f"(prior=None, method='em'), got prior={prior!r}"
            )
        if count_family not in ("poisson", "negbinomial"):
            raise ValueError(
                f"count_family must be 'poisson' or 'negbinomial', got {count_family!r}"
            )
        penalty = _weight_exponent(weight_concentration, prior)
        for name, value in (
            ("loc_scale", loc_scale),
            ("covariance_prior", covariance_prior),
            ("concentration", concentration),
        ):
            check_number(value, name)
        _check_estimator(prior, reg_covar, n_init, init_steps)
        self.prior = prior
        self.reg_covar = float(reg_covar)
        self.n_init = int(n_init)
        self.init_steps = int(init_steps)
        if init not in ("kmeans", "hc"):
            raise ValueError(f"init must be 'kmeans' or 'hc', got {init!r}")
        if init_partition is not None:
            labels = torch.as_tensor(np.asarray(init_partition))
            if labels.dim() != 1 or labels.is_floating_point() or labels.numel() == 0:
                raise ValueError("init_partition must be a 1-d array of integer labels")
            if int(labels.min()) < 0 or int(labels.max()) >= int(n_components):
                raise ValueError(
                    f"init_partition labels must be in 0..{int(n_components) - 1}, got "
                    f"{int(labels.min())}..{int(labels.max())}"
                )
            init = "hc"
            init_partition = labels.long()
        self.init = init
        self.init_partition = init_partition
        self.n_components = int(n_components)
        self.covariance_type = covariance_type
        self.structure = structure
        #: How the precision site is stored: "diag" (K, d) or "full" (K, d, d).
        self._storage = "diag" if structure in covariances.DIAGONAL else "full"
        self.weight_concentration = (
            weight_concentration if isinstance(weight_concentration, str)
            else float(weight_concentration)
        )  # fmt: skip
        #: ``alpha - 1`` of the sparse weight penalty under maximum likelihood (None: no
        #: penalty, plain proportions); "mml" is resolved by :meth:`build` (it depends on d).
        self._penalty = penalty
        self.loc_scale = float(loc_scale)
        self.covariance_prior = float(covariance_prior)
        self.count_family = count_family
        self.concentration = float(concentration)

    def config(self) -> dict[str, Any]:
        return {
            "n_components": self.n_components,
            "covariance_type": self.covariance_type,
            "weight_concentration": self.weight_concentration,
            "loc_scale": self.loc_scale,
            "covariance_prior": self.covariance_prior,
            "count_family": self.count_family,
            "concentration": self.concentration,
            "prior": self.prior,
            "reg_covar": self.reg_covar,
            "n_init": self.n_init,
            "init_steps": self.init_steps,
            # Only when not the default: configs (and saved fits) of earlier versions unchanged.
            **({"init": self.init} if self.init != "kmeans" else {}),
        }

    @property
    def ml(self) -> bool:
        """Whether closed-form EM gives maximum likelihood (``prior=None``)."""
        return self.prior is None

    def build(self, schema: Schema) -> GaussianMixture:
        super().build(schema)
        self.schema = schema
        self.continuous = schema.positions("continuous")
        self.held = {}  # a rebuilt model (e.g. a fit's, refitted) holds nothing
        self._kernel = self._fused_rows = None
        self._only_continuous = len(self.continuous) == len(schema)
        emission = Emission(
            schema,
            self.n_components,
            "mixed",
            self._storage,
            count_family=self.count_family,
            concentration=self.concentration,
            ml=self.ml,
            reg_covar=self.reg_covar,
        )
        # The continuous block is handled below (the classical GMM); Emission keeps the others.
        emission.parts = [part for part in emission.parts if part.kind != "continuous"]
        self.emission = emission
        gaussian = ("locs", "precision") if self.continuous else ()
        self.global_sites = ("weights", *gaussian, *emission.sites)
        #: The resolved exponent ``alpha - 1`` of the sparse weight penalty (or None).
        self.weight_exponent = self._penalty
        if self._penalty == "mml":  # Figueiredo & Jain: -N/2, N free parameters per component
            K = self.n_components
            self.weight_exponent = -(self.n_parameters() - (K - 1)) / K / 2
        return self

    def _cont(self, x: torch.Tensor) -> torch.Tensor:
        """The continuous columns of ``x`` (..., p) -> (..., d)."""
        return x if self._only_continuous else x[..., list(self.continuous)]

    def _full_mask(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return torch.ones_like(x, dtype=torch.bool) if mask is None else mask

    # -- priors, shared by the Pyro model and the closed forms --------------------------------
    def priors(self, like: torch.Tensor) -> dict[str, dist.Distribution]:
        """Prior of each global site, on ``like``'s device and dtype."""
        self._check_built()
        K, d = self.n_components, len(self.continuous)
        ones = like.new_ones
        # A sparse penalty that is no Dirichlet (alpha <= 0, "mml") has the simplex as support.
        alpha = self.weight_concentration
        alpha = alpha if isinstance(alpha, float) and alpha > 0 else 1.0
        priors = {"weights": dist.Dirichlet(ones(K) * alpha)}
        if d:
            priors["locs"] = dist.Normal(like.new_zeros(K, d), self.loc_scale).to_event(1)
            if self._storage == "full":
                scale = torch.eye(d, dtype=like.dtype, device=like.device) / self.covariance_prior
                priors["precision"] = WishartPrecision(
                    df=like.new_tensor(d + 2.0), covariance_matrix=scale.expand(K, d, d)
                )
            else:
                priors["precision"] = dist.Gamma(
                    ones(K, d) * 1.5, self.covariance_prior / 2
                ).to_event(1)
        priors.update(self.emission.priors(like))
        return priors

    def em_supports(self, like: torch.Tensor) -> dict[str, constraints.Constraint]:
        """Where each global site must lie (what accelerated EM's extrapolations are checked
        against): the supports of :meth:`priors`, without building the priors (the Wishart's
        construction costs more than a small EM run), and positive definite precisions checked
        by one Cholesky factorization (the constraint's own check adds a symmetry test and an
        eigen-decomposition)."""
        self._check_built()
        out: dict[str, constraints.Constraint] = {"weights": _SIMPLEX}
        if self.continuous:  # locs: any finite value (accelerated EM checks finiteness)
            out["precision"] = (
                _FACTORIZABLE if self._storage == "full"
                else constraints.independent(constraints.positive, 1)
            )  # fmt: skip
        if self.emission.parts:
            out.update({k: p.support for k, p in self.emission.priors(like).items()})
        return out

    # -- Pyro program ---------------------------------------------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        if self.structure not in _UNCONSTRAINED and self.continuous:
            raise ValueError(
                f"covariance_type={self.covariance_type!r} is fitted by method='em' only (the "
                "Pyro program's Wishart/Gamma priors do not keep the structure)"
            )
        if self.weight_exponent is not None and not (
            isinstance(self.weight_concentration, float) and self.weight_concentration > 0
        ):
            raise ValueError(
                f"weight_concentration={self.weight_concentration!r} is no Dirichlet (a penalty "
                "of maximum-likelihood EM only): use method='em', or a positive value"
            )
        priors = self.priors(x)
        weights = pyro.sample("weights", priors["weights"])
        if self.continuous:
            with pyro.plate("components", self.n_components, dim=-1):
                locs = pyro.sample("locs", priors["locs"])
                precision = pyro.sample("precision", priors["precision"])
        # Sites of the other kinds are whole (K, ...) events, as in the HMM.
        others = {name: pyro.sample(name, priors[name]) for name in self.emission.sites}
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            xb = x[ind]
            mb = None if mask is None else mask[ind]
            k = pyro.sample(
                "assignment", dist.Categorical(weights), infer={"enumerate": "parallel"}
            )
            if self._only_continuous:
                pyro.sample("x", self._component_at(locs[k], precision[k], mb), obs=xb)
                return
            gaussian = None
            if self.continuous:
                mc = None if mb is None else self._cont(mb)
                gaussian = self._component_at(locs[k], precision[k], mc)
            ll = self.emission.log_prob(xb, self._full_mask(xb, mb), others)  # (n, K)
            rows = torch.arange(xb.shape[0], device=x.device)
            row = _MixedRow(gaussian, self.continuous, Vindex(ll)[rows, k], x.shape[-1])
            pyro.sample("x", row, obs=xb)

    def _component_at(
        self, loc: torch.Tensor, precision: torch.Tensor, mask: torch.Tensor | None
    ) -> dist.Distribution:
        if self._storage == "full":
            return MaskedMultivariateNormal(loc, precision, mask)
        normal = dist.Normal(loc, precision.rsqrt())
        return (normal if mask is None else normal.mask(mask)).to_event(1)

    # -- closed forms -----------------------------------------------------------------------------
    def component_log_prob(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> torch.Tensor:
        """log w_k + log p(x_i | component k), shape (n, K)."""
        rows = self._fusable(x, mask) if _plain_sites(params) else None
        if rows is not None:  # the fused kernel's E-step, same arithmetic
            arrays = _arrays(params)
            joint = _gmm_kernel.log_joint(
                rows, arrays["weights"], arrays["locs"], arrays["precision"],
                self._kernel_constants(),
            )[0]  # fmt: skip
            return torch.from_numpy(joint)
        return self._components(x, mask, params)[0]

    def _components(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[torch.Tensor, GaussianConditional | None]:
        """:meth:`component_log_prob`, and with a full covariance and missing continuous
        entries the conditional of those entries under each component (batch (K, n)), from
        which their log-likelihood was computed: the E-step, the conditional moments and the
        draws share its factorizations."""
        out = params["weights"].log()
        cond = None
        if self.continuous:
            xc = self._cont(x)
            mc = None if mask is None else self._cont(mask)
            # Components along a new leading dim so that they broadcast against the rows.
            locs, precision = params["locs"].unsqueeze(-2), params["precision"]
            if self._storage == "full" and mc is not None and not bool(mc.all()):
                cond = condition_on_precision(xc, ~mc, locs, precision.unsqueeze(-3))
                lp = cond.log_marginal(torch.linalg.cholesky(precision).unsqueeze(-3))
            elif self._storage == "diag":
                lp = _diagonal_log_density(xc, mc, locs, precision.unsqueeze(-2))
            else:
                mc = None if mc is None else mc.unsqueeze(0)
                comp = self._component_at(locs, precision.unsqueeze(-3), mc)
                lp = comp.log_prob(xc.unsqueeze(0))
            out = (lp + out.unsqueeze(-1)).mT
        if self.emission.parts:
            out = out + self.emission.log_prob(x, self._full_mask(x, mask), params)
        return out, cond

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
        """The distribution of every continuous entry given each row's observed entries.

        Given the observed entries ``x_o`` of a row (of every kind), the row is a mixture over
        components with weights ``exp(log_resp[k])``; within component k the continuous entries
        are Gaussian ``N(cond_mean[k], cond_cov[k])`` and the entries of other kinds are
        independent of them, distributed as the component's likelihood (``rates``, ``probs``,
        ``probs[name]`` rows k). For a full covariance the missing block follows from the
        precision Lambda_k without inverting the observed block: mean
        ``mu_m - Lambda_mm^-1 Lambda_mo (x_o - mu_o)``, covariance ``Lambda_mm^-1``; for a
        diagonal one the missing entries keep the component's mean and variances. Rows and
        missingness patterns are handled together by masking.

        Returns
        -------
        log_resp : Tensor, shape (n, K)
            log p(assignment = k | observed entries).
        cond_mean : Tensor, shape (n, K, d)
            Conditional means of the d continuous columns (``schema.positions("continuous")``,
            all columns for a continuous table); observed entries equal their values.
        cond_cov : Tensor, shape (n, K, d, d)
            Conditional covariances; zero in every row and column of an observed entry.
        """
        log_resp, cond = self._components(x, mask, params)
        log_resp = log_resp.log_softmax(-1)
        xc = self._cont(x)
        miss = xc.new_zeros(xc.shape, dtype=torch.bool) if mask is None else ~self._cont(mask)
        n, K = log_resp.shape
        if not self.continuous:
            return log_resp, x.new_zeros(n, K, 0), x.new_zeros(n, K, 0, 0)
        if cond is not None:  # full covariance, some entries missing
            return log_resp, cond.mean.transpose(0, 1), cond.covariance().transpose(0, 1)
        miss = miss.unsqueeze(1).expand(-1, K, -1)  # (n, K, d)
        locs, precision = params["locs"], params["precision"]
        xk = xc.unsqueeze(1)
        if self._storage == "diag":
            mean = torch.where(miss, locs, xk)
            var = torch.where(miss, precision.reciprocal(), x.new_zeros(()))
            return log_resp, mean, torch.diag_embed(var)
        # Nothing missing: each row is its own conditional mean, with no spread.
        return log_resp, xk.expand(-1, K, -1), x.new_zeros(n, K, xc.shape[-1], xc.shape[-1])

    def impute(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """One draw of the missing entries from p(x_missing | x_observed), shape (n, p).

        Each row's component is drawn from its class posterior given all its observed entries,
        then the missing continuous entries from that component's conditional Gaussian and the
        missing entries of other kinds from the component's likelihood (valid counts and
        category codes). Observed entries are returned unchanged (uses torch's global RNG; seed
        it first).
        """
        if mask is None:
            return x.clone()
        log_resp, cond = self._components(x, mask, params)
        k = dist.Categorical(logits=log_resp).sample()  # (n,)
        out = x.clone()
        if self.continuous:
            xc, mc = self._cont(x), self._cont(mask)
            eps = torch.randn_like(xc)
            if cond is not None:
                # The class posterior's conditionals: every component's draw (r x r triangular
                # solves are cheap), each row keeping its own component's.
                rows = torch.arange(len(k), device=k.device)
                draw = (cond.mean + cond.noise(eps))[k, rows]
            elif self._storage == "diag":
                draw = params["locs"][k] + params["precision"][k].rsqrt() * eps
            else:  # nothing missing among the continuous columns
                draw = xc
            if self._only_continuous:
                return torch.where(mask, x, draw)
            out[:, list(self.continuous)] = torch.where(mc, xc, draw)
        for part in self.emission.parts:
            cols = list(part.positions)
            draw = part.impute(x, mask, k, params).to(x.dtype)
            out[:, cols] = torch.where(mask[:, cols], x[:, cols], draw)
        return out

    def log_prior(self, params: Params) -> torch.Tensor:
        """Log density of the prior that EM's estimate maximizes: 0 (flat) for maximum
        likelihood (``prior=None``; with the sparse weight penalty, ``(alpha - 1) sum_k log
        w_k``, see ``weight_concentration``), else the priors of :meth:`priors` of the sites
        not held (:meth:`hold`: held sites are constants, whose prior may even vanish at
        them)."""
        like = params["weights"]
        if self.ml:
            if self.weight_exponent is not None:  # the sparse weight penalty
                return self.weight_exponent * like.log().sum()
            return like.new_zeros(())
        priors = self.priors(like)
        free = [name for name in self.global_sites if name not in self.held]
        return sum((priors[name].log_prob(params[name]).sum() for name in free), like.new_zeros(()))

    def log_joint(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """EM's objective: log p(x | params) + :meth:`log_prior` with the assignments summed
        out, the log-likelihood under maximum likelihood and log p(x, params) under the prior."""
        return self.log_prob(x, mask, params).sum() + self.log_prior(params)

    def m_step(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        resp: torch.Tensor,
        params: Params | None = None,
        conditional: GaussianConditional | None = None,
    ) -> Params:
        """Maximize the expected log joint given memberships ``resp`` (n, K): the expected
        log-likelihood under maximum likelihood (``prior=None``: no prior terms, the
        ``reg_covar`` ridge, floored weights, components that lost every row kept).

        One conditional-maximization cycle (ECM): weights, then means given the current
        precisions (when ``params`` is given; else the weighted averages), then precisions;
        rates and probabilities of the other kinds are the closed-form posterior modes of
        :mod:`ppgen.models.likelihoods`. Each step is the exact conditional maximizer of
        :meth:`log_joint`'s EM bound, so the log joint never decreases.

        Partially observed rows enter the Gaussian updates through their conditional moments
        given the observed entries (the exact E-step, :func:`gaussian_m_step`), made under
        ``params`` unless ``conditional`` (from :meth:`_components`) brings them; rows with no
        continuous entry observed do not enter them.
        """
        self._check_built()
        if not self.emission.has_m_step:
            raise ValueError(
                "GaussianMixture(count_family='negbinomial') has no closed-form M-step "
                "(negative binomial dispersion); use method='map'"
            )
        return self._update(self._statistics(x, mask, resp, params, conditional), params)

    def _statistics(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        resp: torch.Tensor,
        params: Params | None,
        conditional: GaussianConditional | None = None,
    ) -> dict[str, torch.Tensor]:
        """:meth:`m_step`'s sufficient statistics given ``resp``: sums over the rows."""
        stats = {"rows": resp.new_tensor(float(x.shape[0])), "n_k": resp.sum(0)}
        if self.continuous:
            mc = None if mask is None else self._cont(mask)
            block = self._gaussian_statistics(self._cont(x), mc, resp, params, conditional)
            stats.update({f"gauss:{k}": v for k, v in block.items()})
        if self.emission.parts:
            stats.update(self.emission.statistics(x, self._full_mask(x, mask), resp, params))
        return stats

    def _update(self, stats: dict[str, torch.Tensor], params: Params | None) -> Params:
        """:meth:`m_step` from :meth:`_statistics` summed over any split of the rows."""
        n_k = stats["n_k"]
        out = {"weights": self._weights(n_k)}
        if self.continuous:
            block = {k[6:]: v for k, v in stats.items() if k.startswith("gauss:")}
            out.update(self._gaussian_update(block, params, stats["rows"]))
        if self.emission.parts:
            out.update(self.emission.update(stats, params))
        if self.ml and params is not None:
            # A component that lost every row keeps its parameters (its weight is floored): the
            # M-step has nothing to estimate them from.
            empty = n_k <= _EMPTY * stats["rows"]
            if self.weight_exponent is not None:  # switched off by the sparse weight penalty
                empty = empty | (out["weights"] <= OFF_FLOOR)
            if bool(empty.any()):
                for name, value in out.items():
                    if name != "weights" and name in params:
                        keep = empty.reshape((-1,) + (1,) * (value.dim() - 1))
                        out[name] = torch.where(keep, params[name], value)
        # Held sites (fixable_sites) enter the expected log-likelihood through terms of their
        # own, so the free sites' updates above are already the maximizers given them.
        out.update(self.held)
        return out

    #: Sites held at given values (:meth:`hold`), kept by :meth:`m_step` and every start.
    held: Params = MappingProxyType({})
    #: ``alpha - 1`` of the sparse weight penalty, set by :meth:`build` (None: no penalty).
    weight_exponent: float | None = None

    def fixable_sites(self) -> tuple[str, ...]:
        """What ``method="em"`` can hold fixed (``fit(..., fixed={...})``): ``weights``; the
        component ``means`` of the continuous columns (maximum likelihood only), on the data's
        scale as :meth:`describe` gives them, held as the encoded ``locs``; and the count
        rates and probabilities of other column kinds (``rates``, ``probs``, ``probs[name]``,
        ``success``), whose values mean the same on both scales. Each keeps EM exact: weights
        and the other kinds' sites have terms of their own in the expected log-likelihood, and
        with held means the M-step's covariances are the weighted scatter around them (the
        constrained maximizer). Covariances cannot be held, nor means under
        ``prior="default"`` (whose mean update is shrunk toward the prior)."""
        self._check_built()
        means = ("means",) if self.continuous and self.ml else ()
        return ("weights", *means, *self.emission.sites)

    def encode_fixed(self, name: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
        """``means`` (K, d) on the data's scale -> the site ``locs`` on the encoded one (the
        inverse of :meth:`describe`); ValueError naming it for a wrong shape."""
        cols = [self.schema.columns[j] for j in self.continuous]
        shape = (self.n_components, len(cols))
        if name != "means" or tuple(value.shape) != shape:
            raise ValueError(f"fixed[{name!r}] must have shape {shape}, got {tuple(value.shape)}")
        scale = value.new_tensor([c.scale for c in cols])
        loc = value.new_tensor([c.loc for c in cols])
        return "locs", (value - loc) / scale

    def hold(self, fixed: Params) -> None:
        """Hold ``fixed`` (checked encoded values of :meth:`fixable_sites`) in :meth:`m_step`
        and the starts of :meth:`init_params`; called by the EM engine on its private copy."""
        self.held = dict(fixed)
        self._fused_rows = None  # the fused kernel holds nothing

    def _weights(self, n_k: torch.Tensor) -> torch.Tensor:
        """Mixing weights from expected counts: proportions floored at a tiny positive value
        (maximum likelihood), or the Dirichlet posterior mode; with a sparse weight penalty
        (``weight_exponent`` c = alpha - 1), the maximizer of ``sum_k (n_k + c) log w_k`` over
        the weights at least :data:`OFF_FLOOR`: ``w_k`` proportional to ``n_k + c``, and at
        the floor (switched off) where ``n_k + c <= 0``."""
        if self.ml and self.weight_exponent is None:
            floored = n_k.clamp_min(_EMPTY * n_k.sum())
            return floored / floored.sum()
        if self.ml:
            weights = (n_k + self.weight_exponent).clamp_min(0)
            weights = weights / weights.sum().clamp_min(torch.finfo(n_k.dtype).tiny)
            off = weights <= OFF_FLOOR
            if bool(off.all()):  # too few rows for the penalty: the proportions, as alpha = 1
                weights, off = n_k / n_k.sum(), torch.zeros_like(off)
            return torch.where(off, OFF_FLOOR, weights * (1 - OFF_FLOOR * off.sum()))
        weights = (n_k + self.weight_concentration - 1).clamp_min(0)
        return weights / weights.sum()

    def effective_components(self, params: Params) -> int:
        """Components switched on: weight above :data:`OFF_WEIGHT` (1e-8). With a sparse weight
        penalty the others are held at 1e-10 and describe no data."""
        return int((params["weights"] > OFF_WEIGHT).sum())

    @property
    def default_method(self) -> str:
        """``"em"`` (maximum likelihood by default), ``"map"`` with negative binomial counts
        (their dispersion has no closed-form M-step)."""
        return "map" if self.count_family == "negbinomial" else "em"

    def em_step(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[Params, torch.Tensor]:
        """One EM iteration: the parameters after an E-step and :meth:`m_step` from
        ``params``, and :meth:`log_joint` at ``params`` (which the E-step computes anyway).

        With missing continuous entries under a full covariance, the E-step's log-likelihoods
        and the M-step's conditional moments come from the same per-row factorizations
        (:class:`~ppgen.models.distributions.GaussianConditional`), not two of each.
        """
        rows = self._fusable(x, mask) if _plain_sites(params) else None
        if rows is not None:
            return self._fused_step(rows, params)
        return self.em_update(self.em_statistics(x, mask, params), params)

    def _fusable(self, x: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray | None:
        """``x`` as an array when the fused kernel (:mod:`ppgen.models._gmm_kernel`) does what
        the general path would: maximum likelihood without a sparse weight penalty on a complete
        continuous float64 CPU table, nothing held; else None. Remembered for the rows and mask
        last seen (EM passes the same ones every iteration)."""
        seen = self._fused_rows
        if seen is not None and seen[0] is x and seen[1] is mask:
            return seen[2]
        rows = None
        if (
            self.ml
            and self.weight_exponent is None  # the kernel's weights are plain proportions
            and self._only_continuous
            and not self.held
            and x.dtype == torch.float64
            and x.device.type == "cpu"
            and x.dim() == 2
            and not x.requires_grad
            and (mask is None or bool(mask.all()))
        ):
            rows = x.numpy()
        self._fused_rows = (x, mask, rows)
        return rows

    def em_kernel(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[Callable, dict[str, np.ndarray], Callable, Callable] | None:
        """Accelerated EM on arrays (the EM engine's hook): ``(step, start, valid, finish)``
        when the fused kernel applies (:meth:`_fusable`), else None. ``step(arrays)`` is
        :meth:`em_step` on arrays of the global sites (the same arithmetic), ``start`` the
        arrays of ``params``, ``valid(arrays)`` whether extrapolated values lie in the sites'
        supports (:meth:`em_supports`: finite, weights on the simplex, precisions positive
        definite or positive), ``finish(arrays)`` the sites as tensors."""
        rows = self._fusable(x, mask)
        if rows is None or not _plain_sites(params):
            return None
        c = self._kernel_constants()
        step = self._array_step(rows)

        def valid(a: dict[str, np.ndarray]) -> bool:
            if not all(np.isfinite(v).all() for v in a.values()):
                return False
            w = a["weights"]
            if not (np.all(w >= 0) and abs(w.sum() - 1) < 1e-6):
                return False
            if c.diagonal:
                return bool(np.all(a["precision"] > 0))
            try:
                np.linalg.cholesky(a["precision"])
            except np.linalg.LinAlgError:
                return False
            return True

        return step, _arrays(params), valid, _sites

    def _array_step(self, rows: np.ndarray) -> Callable:
        """:meth:`em_step` on the rows and sites as arrays (``rows`` from :meth:`_fusable`):
        ``step(arrays) -> (arrays, log-likelihood)``."""
        c = self._kernel_constants()

        def step(a: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
            new, log_lik = _gmm_kernel.em_step(rows, a["weights"], a["locs"], a["precision"], c)
            return dict(zip(_SITES, new, strict=True)), log_lik

        return step

    def _kernel_constants(self) -> _gmm_kernel.Constants:
        """What the fused kernel's iterations of this built model share."""
        if self._kernel is None:
            cols = [self.schema.columns[j] for j in self.continuous]
            scale = np.array([c.scale for c in cols], dtype=np.float64)
            self._kernel = _gmm_kernel.Constants(
                structure=self.structure,
                diagonal=self._storage == "diag",
                ridge=self.reg_covar / scale**2,
                scale=scale,
                reg_covar=self.reg_covar,
                empty=_EMPTY,
                iterative=self.structure in _ITERATIVE,
                inner=covariances.INNER_EM,
            )
        return self._kernel

    def _fused_step(self, x: np.ndarray, params: Params) -> tuple[Params, torch.Tensor]:
        """:meth:`em_step` through the fused kernel, from the rows as an array."""
        new, log_lik = _gmm_kernel.em_step(
            x, params["weights"].numpy(), params["locs"].numpy(),
            params["precision"].numpy(), self._kernel_constants(),
        )  # fmt: skip
        return _tensors(new), torch.from_numpy(np.array(log_lik))

    #: The fused kernel's constants (set on first use after :meth:`build`) and the last rows
    #: and mask :meth:`_fusable` checked, with its answer.
    _kernel = None
    _fused_rows = None

    def em_statistics(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> dict[str, torch.Tensor]:
        """The E-step at ``params`` as sums over the rows (so that those of disjoint row sets
        add up: distributed and streamed EM): the row count ``rows``, the log-likelihood
        ``log_lik``, the expected class counts ``n_k``, the Gaussian block's weighted sums
        and second moments (``gauss:*``, :func:`~ppgen.models.likelihoods.gaussian_statistics`,
        conditional moments of missing entries included) and the other kinds' counts.

        Where :meth:`em_step` would run the fused kernel (:meth:`_fusable`: maximum likelihood
        on complete continuous float64 CPU rows), so do these statistics: the same dict (keys,
        shapes, dtype), so that chunks or ranks taking either path add up alike."""
        self._check_built()
        if not self.emission.has_m_step:
            raise ValueError(
                "GaussianMixture(count_family='negbinomial') has no closed-form M-step "
                "(negative binomial dispersion); use method='map'"
            )
        rows = self._fusable(x, mask) if params is not None and _plain_sites(params) else None
        if rows is not None:
            return self._fused_statistics(rows, params)
        log_resp, cond = self._components(x, mask, params)
        log_lik = log_resp.logsumexp(-1)
        resp = (log_resp - log_lik.unsqueeze(-1)).exp()
        return {"log_lik": log_lik.sum(), **self._statistics(x, mask, resp, params, cond)}

    def _fused_statistics(self, rows: np.ndarray, params: Params) -> dict[str, torch.Tensor]:
        """:meth:`em_statistics` through the fused kernel (:func:`_gmm_kernel.statistics`),
        from the rows as an array: the general path's keys, shapes and dtype, the second
        moments about the current ``locs`` (``second_moment_center``) or, for VVI, the sums of
        squares per column with the weights ``gauss:n`` repeated per column."""
        a, c = _arrays(params), self._kernel_constants()
        log_lik, (n_k, s, second) = _gmm_kernel.statistics(
            rows, a["weights"], a["locs"], a["precision"], c
        )
        if c.structure == "VVI":
            gauss = {"gauss:n": np.repeat(n_k[:, None], s.shape[-1], 1), "gauss:s": s,
                     "gauss:q": second}  # fmt: skip
        else:
            gauss = {"gauss:n": n_k.copy(), "gauss:s": s, "gauss:ss": second}
        return {
            "log_lik": torch.tensor(log_lik, dtype=torch.float64),
            "rows": torch.tensor(float(rows.shape[0]), dtype=torch.float64),
            "n_k": torch.from_numpy(n_k),
            **{k: torch.from_numpy(v) for k, v in gauss.items()},
        }

    def em_update(
        self, stats: dict[str, torch.Tensor], params: Params
    ) -> tuple[Params, torch.Tensor]:
        """The M-step from :meth:`em_statistics` (summed over all rows) and the log joint at
        ``params``: :meth:`em_step` is ``em_update(em_statistics(x, mask, params), params)``."""
        return self._update(stats, params), stats["log_lik"] + self.log_prior(params)

    def _gaussian_m_step(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        resp: torch.Tensor,
        params: Params | None,
        conditional: GaussianConditional | None = None,
    ) -> Params:
        """ECM updates of ``locs`` and ``precision`` from the continuous columns ``x`` (n, d);
        partially observed rows by their conditional moments (:func:`gaussian_m_step`).

        With held means ``mu`` (maximum likelihood) the covariances are the expected scatter
        around them, which is the scatter around the weighted means ``m`` plus
        ``(m - mu)(m - mu)^T`` per unit of weight (per column for a diagonal covariance, whose
        columns count their own observed rows): the exact constrained maximizer, also with
        missing entries (their conditional covariances do not depend on the mean chosen).
        The parsimonious structures (not VVV/VVI): :meth:`_structured_update`."""
        return self._gaussian_update(
            self._gaussian_statistics(x, mask, resp, params, conditional),
            params,
            resp.new_tensor(float(x.shape[0])),
        )

    def _gaussian_statistics(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        resp: torch.Tensor,
        params: Params | None,
        conditional: GaussianConditional | None = None,
    ) -> dict[str, torch.Tensor]:
        """The Gaussian block's sufficient statistics (:func:`gaussian_statistics`): per column
        for VVI, else the full second moments (the parsimonious structures need the whole
        scatter, also the diagonal ones, whose shared volumes or shapes tie the columns)."""
        storage = self._storage if self.structure in _UNCONSTRAINED else "full"
        return gaussian_statistics(
            x, mask, resp, params, covariance_type=storage, loc_scale=self.loc_scale,
            covariance_prior=self.covariance_prior, conditional=conditional,
            ridge=self._ridge(x),
        )  # fmt: skip

    def _gaussian_update(
        self, stats: dict[str, torch.Tensor], params: Params | None, rows: torch.Tensor
    ) -> Params:
        """``locs`` and ``precision`` from :meth:`_gaussian_statistics` over ``rows`` rows."""
        if self.structure not in _UNCONSTRAINED:
            return self._structured_update(stats, params, rows)
        block = gaussian_update(
            stats, params, covariance_type=self._storage, loc_scale=self.loc_scale,
            covariance_prior=self.covariance_prior, ridge=self._ridge(rows),
        )  # fmt: skip
        if "locs" not in self.held:
            return block
        shift = block["locs"] - self.held["locs"]
        if self._storage == "diag":
            precision = (block["precision"].reciprocal() + shift**2).reciprocal()
        else:
            cov = torch.cholesky_inverse(torch.linalg.cholesky(block["precision"]))
            cov = cov + shift.unsqueeze(-1) * shift.unsqueeze(-2)
            precision = torch.cholesky_inverse(torch.linalg.cholesky(cov))
        return {"locs": self.held["locs"], "precision": precision}

    def _structured_update(
        self, stats: dict[str, torch.Tensor], params: Params | None, rows: torch.Tensor
    ) -> Params:
        """Maximum-likelihood ``locs`` and ``precision`` of a parsimonious structure
        (:func:`ppgen.models.covariances.m_step`), from the expected scatter matrices.

        Missing entries: the exact E-step of the complete-data sufficient statistics under
        ``params`` (each partially observed row replaced, per component, by its conditional
        mean, and the conditional covariance of its missing block added to the scatter), also
        for the diagonal structures, whose shared volumes or shapes tie the columns together
        (so the observed entries alone are not their sufficient statistics). The structure's
        M-step runs in the data's units (scatter ``S W_k S`` with ``S`` the column scales),
        where spherical and common-orientation structures are defined, as in mclust; the ridge
        ``reg_covar`` enters as ``n_k * reg_covar`` on the scatter's diagonal (for VVV that is
        the covariance plus ``reg_covar``, scikit-learn's ridge), which keeps the structure."""
        n_k, s_kd = stats["n"], stats["s"]
        d = s_kd.shape[-1]
        n_safe = n_k.clamp_min(_EMPTY * rows)
        locs = s_kd / n_safe[:, None]
        if "locs" in self.held:  # the scatter around the held means (the constrained maximizer)
            locs = self.held["locs"]
        scatter = scatter_about(stats, second_moment_center(params, s_kd), locs)
        cols = [self.schema.columns[j] for j in self.continuous]
        scale = s_kd.new_tensor([c.scale for c in cols])
        outer = scale[:, None] * scale
        eye = torch.eye(d, dtype=s_kd.dtype, device=s_kd.device)
        scatter = scatter * outer + (n_safe * self.reg_covar)[:, None, None] * eye
        start = None
        # Only the iterative structures start from the previous covariances (inverting the
        # precisions costs two factorizations per EM step for nothing otherwise).
        if params is not None and "precision" in params and self.structure in _ITERATIVE:
            prec = params["precision"]
            if prec.dim() == 2:
                start = torch.diag_embed(prec.reciprocal())
            else:
                start = torch.cholesky_inverse(torch.linalg.cholesky(prec))
            start = start * outer
        cov = covariances.m_step(
            self.structure, scatter, n_safe, start=start, max_iter=covariances.INNER_EM
        )
        cov = cov / outer
        if self._storage == "diag":
            return {"locs": locs, "precision": cov.diagonal(dim1=-2, dim2=-1).reciprocal()}
        return {"locs": locs, "precision": torch.cholesky_inverse(torch.linalg.cholesky(cov))}

    def _ridge(self, like: torch.Tensor) -> torch.Tensor | None:
        """``reg_covar`` on the encoded scale, (d,), under maximum likelihood; else None."""
        if not self.ml:
            return None
        cols = [self.schema.columns[j] for j in self.continuous]
        return self.reg_covar / like.new_tensor([c.scale for c in cols]) ** 2

    def _kmeans_features(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Rows as k-means sees them: zero-filled encoded values for a continuous table; else
        standardized continuous and log1p counts, binary codes and one-hot categories."""
        if self._only_continuous:
            return x * mask
        feats = []
        for j, column in enumerate(self.schema.columns):
            xj, mj = x[:, j], mask[:, j]
            if column.kind == "categorical":
                C = column.n_categories
                onehot = torch.nn.functional.one_hot(xj.long().clamp(0, C - 1), C).to(x.dtype)
                feats.append(onehot * mj.unsqueeze(-1).to(x.dtype))
                continue
            v = xj.clamp_min(0).log1p() if column.kind == "count" else xj
            if column.kind != "binary":
                seen = v[mj]
                sd = seen.std() if seen.numel() > 1 else v.new_ones(())
                v = (v - seen.mean()) / torch.where(sd > 0, sd, v.new_ones(()))
            feats.append(torch.where(mj, v, v.new_zeros(())).unsqueeze(-1))
        return torch.cat(feats, -1)

    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        """Starting values of the global sites.

        Maximum likelihood (``prior=None``): the best of ``n_init`` starts
        (:meth:`init_candidates`) after at most ``init_steps`` EM iterations each (a start stops
        earlier once its relative gain per iteration is below 1e-8), by log-likelihood;
        starts that fail (non-finite) are dropped, and so are starts that fall hopelessly
        behind the leader (:func:`_hopeless`: the starts run in lockstep). On more than
        :data:`SCREEN_ROWS` rows the starts are screened on a random subsample of that many
        (the EM driver then finishes the best on all rows), so screening costs no more than a
        few full iterations.
        Posterior mode (``prior="default"``), one component, or a model without closed-form
        EM: one k-means start, :meth:`init_candidates` with ``n=1``.
        """
        one_optimum = self.n_components == 1  # nothing to choose between: no screening
        if not self.ml or self.n_init <= 1 or one_optimum or not self.emission.has_m_step:
            return self.init_candidates(x, mask, generator, 1)[0]
        best, best_value = None, -math.inf
        xs, ms = x, mask
        if x.shape[0] > SCREEN_ROWS:
            rows = torch.randperm(x.shape[0], generator=generator)[:SCREEN_ROWS].to(x.device)
            xs, ms = x[rows], mask[rows]
        # The starts run in lockstep, one EM step each per round, so that a start that cannot
        # catch up with the leader is dropped early (_hopeless); every other start follows
        # exactly the iterations it would run alone, so the winner is unchanged.
        with torch.no_grad():
            starts = [
                {"params": params, "value": -math.inf, "gains": (), "done": False}
                for params in _distinct(self.init_candidates(x, mask, generator, self.n_init))
            ]
            # On a complete continuous table the starts run on the fused kernel's arrays.
            rows = self._fusable(xs, ms)
            on_arrays = rows is not None and all(_plain_sites(s["params"]) for s in starts)
            if on_arrays:
                step = self._array_step(rows)
                for start in starts:
                    start["params"] = _arrays(start["params"])
            else:
                step = lambda p: self.em_step(xs, ms, p)  # noqa: E731
            for _ in range(self.init_steps):
                active = [s for s in starts if not s["done"]]
                if not active:
                    break
                for start in active:
                    new, objective = step(start["params"])
                    gain, value = float(objective) - start["value"], float(objective)
                    start["value"] = value
                    if not math.isfinite(value):
                        start["done"] = True
                        continue
                    start["params"] = new
                    start["gains"] = (*start["gains"][1 - _HOPELESS_STEPS :], gain)
                    if gain <= _SCREEN_TOL * abs(value):  # this start has converged
                        start["done"] = True
                lead = max(s["value"] for s in starts)
                for start in active:
                    if not start["done"] and _hopeless(start["value"], start["gains"], lead):
                        start["done"] = start["dropped"] = True
            for start in starts:
                value = start["value"]
                if not start.get("dropped") and math.isfinite(value) and value > best_value:
                    best, best_value = start["params"], value
        if best is None:  # every start failed: the first one, unrefined
            return self.init_candidates(x, mask, generator, 1)[0]
        return self._proper(x, mask, _sites(best) if on_arrays else best)

    def _proper(self, x: torch.Tensor, mask: torch.Tensor, params: Params) -> Params:
        """The Gaussian block of ``params`` re-estimated from its memberships by the prior's
        M-step: the same basin of attraction, but covariances at least ``covariance_prior /
        (n_k + 1)``. A screened maximum-likelihood start may hold a component on a few
        collinear rows (precision ~ 1 / reg_covar), from which L-BFGS (``method="map"``)
        would step out of the precisions' support; EM (``prior=None``) simply returns to the
        likelihood's optimum."""
        if not self.continuous or self.structure not in _UNCONSTRAINED:
            return params  # the structures are fitted by EM only, which needs no proper start
        with torch.no_grad():
            log_resp = self.component_log_prob(x, mask, params)
            resp = log_resp.softmax(-1)
            mc = self._cont(mask)
            block = gaussian_m_step(
                self._cont(x),
                mc,
                resp,
                None,
                covariance_type=self._storage,
                loc_scale=self.loc_scale,
                covariance_prior=self.covariance_prior,
            )
        return {**params, **block, **self.held}

    def init_candidates(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator, n: int
    ) -> list[Params]:
        """``n`` starting points, each from k-means++ seeding and Lloyd iterations on the
        zero-filled data (continuous columns, with counts on the log scale and categories
        one-hot for a mixed table) followed by one M-step (partially observed rows of a full
        covariance conditioned on the diagonal fit). Clusters k-means leaves empty (more
        components than distinct rows) get a random row and the whole data's spread, with a
        floored weight, so that every start is finite. With ``init="hc"`` the first start is
        the hierarchical agglomeration's partition (or ``init_partition``) instead."""
        from ppgen.models._kmeans import kmeans

        feats = self._kmeans_features(x, mask)
        starts = []
        if self.init == "hc" and int(n) > 0:
            starts.append(self._start(x, mask, self._hc_labels(feats, generator), generator))
        starts += [self._start(x, mask, kmeans(feats, self.n_components, generator=generator),
                               generator) for _ in range(int(n) - len(starts))]  # fmt: skip
        return starts

    def _hc_labels(self, feats: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The partition of ``init_partition``, else the agglomeration of the k-means features
        (:func:`ppgen.models._hc.hc_partition`) cut at K."""
        if self.init_partition is None:
            from ppgen.models._hc import hc_partition

            return hc_partition(feats, self.n_components, generator)
        if len(self.init_partition) != feats.shape[0]:
            raise ValueError(
                f"init_partition has {len(self.init_partition)} labels for {feats.shape[0]} rows"
            )
        return self.init_partition.to(feats.device)

    def _start(
        self, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> Params:
        """One M-step from hard k-means ``labels``; empty clusters re-seeded (see
        :meth:`init_candidates`)."""
        K = self.n_components
        if self.held:
            labels = self._match_held(x, mask, labels)
        resp = torch.nn.functional.one_hot(labels, K).to(x.dtype)
        params: Params = {}
        n_k = resp.sum(0)
        empty = n_k == 0
        if self.ml and bool(empty.any()):
            # Soft memberships: every row counts a little in every cluster, so an emptied one
            # starts at (nearly) the whole data's mean and spread, centred on a random row.
            picks = torch.randint(x.shape[0], (int(empty.sum()),), generator=generator)
            resp = resp.clone()
            resp[picks.to(x.device), empty.nonzero().squeeze(-1)] = 1.0
            resp = 0.99 * resp + 0.01 / K
        rows = self._fusable(x, mask)
        if rows is not None:  # the same M-step, fused
            return _tensors(_gmm_kernel.m_step(rows, resp.numpy(), self._kernel_constants()))
        if self.continuous:
            params.update(self._gaussian_m_step(self._cont(x), self._cont(mask), resp, None))
        if self.emission.parts:
            params.update(self.emission.init_step(x, mask, resp))
        return {"weights": self._weights(resp.sum(0)), **params, **self.held}

    def _match_held(
        self, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """k-means ``labels`` renamed to the components of the held sites (:meth:`hold`): the
        renaming that makes the labelled rows most probable under the held weights and
        emission parts, and closest to held means (a linear assignment). Held values name the
        components, and an arbitrary naming can pin a small weight on a big cluster (a poor
        optimum)."""
        K = self.n_components
        score = self.emission.label_scores(x, mask, labels, self.held)
        if "locs" in self.held:  # squared distances of the labelled rows to the held means
            xc, mc = self._cont(x), self._cont(mask).to(x.dtype)
            onehot = torch.nn.functional.one_hot(labels, K).to(x.dtype)
            diff = (xc.unsqueeze(-2) - self.held["locs"]) * mc.unsqueeze(-2)  # (n, K, d)
            score = score - onehot.mT @ diff.pow(2).sum(-1)
        if "weights" in self.held:
            sizes = torch.bincount(labels, minlength=K).to(x.dtype)
            score = score + sizes[:, None] * self.held["weights"].clamp_min(1e-300).log()
        return relabel_by_score(labels, score)

    def sample(self, n: int, params: Params) -> torch.Tensor:
        k = dist.Categorical(params["weights"]).sample((n,))
        if self._only_continuous:
            return self._component_at(params["locs"][k], params["precision"][k], None).sample()
        out = params["weights"].new_zeros(n, self._check_built())
        if self.continuous:
            comp = self._component_at(params["locs"][k], params["precision"][k], None)
            out[:, list(self.continuous)] = comp.sample()
        for part in self.emission.parts:
            out[:, list(part.positions)] = part.sample(k, params).to(out.dtype)
        return out

    def n_parameters(self) -> int:
        """Free parameters of the K-component model as specified (mclust's count), switched-off
        components included (:meth:`effective_components`)."""
        self._check_built()
        K, d = self.n_components, len(self.continuous)
        cov = covariances.n_covariance_parameters(self.structure, d, K) if d else 0
        return K * d + cov + K - 1 + self.emission.n_parameters()

    def describe_coords(self, schema: Schema) -> dict[str, tuple[tuple, ...]]:
        comps = tuple(range(self.n_components))
        cols = tuple(schema.names[j] for j in schema.positions("continuous"))
        coords = {"weights": (comps,)}
        if cols:
            coords.update(gaussian_coords(comps, cols))
        coords.update(self.emission.describe_coords(comps))
        return coords

    def fitted(self, params: Params) -> None:
        """Warn when a component collapsed onto (nearly) identical values: its variance sits at
        the ``reg_covar`` floor, a spike whose density inflates the likelihood without describing
        a cluster (scikit-learn and mclust fits can end there too; mclust reports such fits as
        singular). Also drops the fused kernel's reference to the training rows (a fit's model
        need not carry them)."""
        self._fused_rows = None
        if "locs" not in params or self.reg_covar <= 0:
            return
        described = self.describe(params, self.schema)
        if self._storage == "full":
            smallest = torch.linalg.eigvalsh(described["covariances"]).min(-1).values
        else:
            smallest = described["variances"].min(-1).values
        floor = 100 * self.reg_covar
        on = params["weights"] > OFF_WEIGHT  # a switched-off component describes no rows
        for k in torch.nonzero((smallest <= floor) & on).flatten().tolist():
            warnings.warn(
                f"component {k} (weight {float(params['weights'][k]):.3g}) has a variance of "
                f"{float(smallest[k]):.3g}, at the reg_covar floor ({self.reg_covar:g}): it sits "
                "on a few (nearly) identical values, a degenerate spike that inflates the "
                "likelihood; consider fewer components, prior='default' (the posterior mode keeps "
                "variances away from 0) or a larger reg_covar",
                UserWarning,
                stacklevel=2,
            )

    def describe(self, params: Params, schema: Schema) -> Params:
        """Weights; means and covariances (or variances) of the continuous columns on the data's
        original scale; count rates (means; and negative binomial concentrations), probabilities
        of the binary columns' second label (``probs``) and of each categorical column's labels
        (``probs[name]``), by component."""
        out = {"weights": params["weights"]}
        if "locs" in params:
            cols = [schema.columns[j] for j in schema.positions("continuous")]
            scale = params["locs"].new_tensor([c.scale for c in cols])
            loc = params["locs"].new_tensor([c.loc for c in cols])
            out["means"] = params["locs"] * scale + loc
            if self._storage == "full":
                cov = torch.cholesky_inverse(torch.linalg.cholesky(params["precision"]))
                out["covariances"] = cov * scale.unsqueeze(-1) * scale
            else:
                out["variances"] = params["precision"].reciprocal() * scale**2
        out.update({name: params[name] for name in self.emission.sites})
        if self.weight_exponent is not None:
            out["effective_components"] = params["weights"].new_tensor(
                self.effective_components(params)
            )
        return out
