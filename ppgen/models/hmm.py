"""Hidden Markov model with discrete states and per-column emissions."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
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
from ppgen.models.base import GenerativeModel, Params
from ppgen.models.likelihoods import EMISSIONS, Emission, check_estimator, relabel_by_score

__all__ = ["HMM", "stationary_distribution"]

#: Column kind that each emission family forces on the columns of a table (None: inferred).
_FORCED_KIND = {
    "gaussian": "continuous",
    "poisson": "count",
    "negbinomial": "count",
    "categorical": "categorical",
    "mixed": None,
}


#: Largest S * K^3 * max(1, (100 / T)^6) (512) for which the recursions use blocked prefix products
#: rather than the step loop (see HMM._parallel). Measured on one CPU thread, float64, time of
#: posteriors blocked / loop at (S, T, K) = 1 x 100 x 4: 0.75, 1 x 1000 x 2: 0.22, 1 x 100 x 2:
#: 0.96, 1 x 50 x 2: 1.08, 10 x 200 x 3: 0.89, 10 x 300 x 4: 1.06, 50 x 1000 x 4: 1.7, 3 x 6 x 3:
#: 1.9 (script in the commit adding it; notes/hmmspeed.md).
_PARALLEL_LIMIT = 512

#: Whether CPU recursions without gradients run as NumPy loops (HMM._numpy_forward_backward);
#: tests switch it off to check the torch recursions (GPU, autograd) on CPU.
_NUMPY_RECURSIONS = True

#: Blocked prefix products (about 4 sqrt(T) torch steps, O(S K^3) work each) beat the NumPy
#: loop (2 T cheap steps) on CPU for S K^3 <= _BLOCKED_OVER_NUMPY and T >= _BLOCKED_MIN_STEPS.
#: Measured on one thread, forward-backward (S, T, K) blocked / loop in ms: 1 x 100 x 2
#: 0.53 / 0.60, 1 x 300 x 2 0.82 / 1.44, 1 x 1000 x 2 1.8 / 4.7, 1 x 1000 x 4 2.1 / 4.9,
#: 2 x 1000 x 3 2.4 / 4.4, 3 x 300 x 2 1.3 / 1.6, 10 x 300 x 2 1.9 / 1.7, 3 x 100 x 3
#: 1.4 / 1.3, 10 x 200 x 3 2.1 / 1.3.
_BLOCKED_OVER_NUMPY = 64
_BLOCKED_MIN_STEPS = 200

#: Largest S K^3 for which log p(x) (HMM._log_likelihood) is a tree of matrix products also on
#: CPU: above, the NumPy forward loop is faster. Measured on one thread, (S, T, K) tree / loop
#: in ms: 1 x 100 x 2 0.20 / 0.32, 1 x 1000 x 2 0.35 / 2.3, 10 x 200 x 3 0.48 / 0.62,
#: 10 x 300 x 4 0.88 / 1.06, 50 x 1000 x 4 14.0 / 5.5.
_TREE_LIMIT = 1024

#: EM iterations each start runs before only the best goes on (HMM.fit_defaults).
_SCREEN_STEPS = 10


def _renormalize_every(dtype: torch.dtype) -> int:
    """Steps between renormalizations of the scaled recursions: a step's normalizer is rarely
    below 1e-40, so 7 steps stay clear of float64's smallest normal number (1e-308); float32
    (1e-38) renormalizes every step."""
    return max(1, int(-math.log10(torch.finfo(dtype).tiny) // 40))


def stationary_distribution(transition: torch.Tensor) -> torch.Tensor:
    """The stationary distribution pi = pi A of a row-stochastic matrix A (..., K, K).

    Solves ``pi (I - A + 1 1^T) = 1^T``, which is non-singular for an irreducible chain and
    differentiable in A.
    """
    K = transition.shape[-1]
    eye = torch.eye(K, dtype=transition.dtype, device=transition.device)
    lhs = (eye - transition + 1.0).mT
    rhs = transition.new_ones(transition.shape[:-2] + (K, 1))
    return torch.linalg.solve(lhs, rhs).squeeze(-1).clamp_min(0)


class _EmissionDistribution(dist.TorchDistribution):
    """Rows scored under every state: batch (..., T, K), event (p,), for DiscreteHMM."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector

    def __init__(self, emission: Emission, params: Params, mask: torch.Tensor) -> None:
        self.emission, self.params, self.obs_mask = emission, params, mask
        batch_shape = mask.shape[:-1] + (emission.n_states,)
        super().__init__(batch_shape, mask.shape[-1:], validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # DiscreteHMM passes value (..., T, 1, p) to broadcast over states.
        return self.emission.log_prob(value.squeeze(-2), self.obs_mask, self.params)


class HMM(GenerativeModel):
    r"""Hidden Markov model: a Markov chain of discrete states, each emitting one table row.

    Generative story (S sequences of lengths T_s, K states, p columns)::

        initial          ~ Dirichlet(initial_concentration * 1_K)        # (K,), if "learned"
                           (else initial = stationary distribution of transition)
        transition[k]    ~ Dirichlet(transition_concentration * 1_K)     # (K, K), rows
        emission params  ~ per-column priors (ppgen.models.likelihoods)  # (K, ...)
        for s in 1..S:
            z[s, 0]      ~ Categorical(initial)
            z[s, t]      ~ Categorical(transition[z[s, t-1]])            t = 1..T_s - 1
            x[s, t]      ~ Emission(z[s, t])                             # (p,), masked

    The states are summed out exactly: the Pyro program :meth:`model` scores each sequence with
    :class:`pyro.distributions.DiscreteHMM` (a parallel scan over time), and
    :meth:`model_enumerated` is the same model written with ``pyro.markov`` and enumerated
    states, for TraceEnum_ELBO (tested equal). :meth:`log_prob`, :meth:`smooth` and
    :meth:`viterbi` run the forward(-backward) recursions vectorized over sequences and states.

    Sequences of different lengths are padded to the longest: a padded step has no observed
    entry, and the recursions carry the state through it unchanged (an identity transition), so
    it contributes nothing. In the Pyro program a trailing step without observations also adds
    exactly nothing, since a transition row sums to one.

    Emissions reuse the per-column likelihoods of :mod:`ppgen.models.likelihoods`: Gaussian
    (``covariance_type`` full or diag, on the standardized scale), Poisson, negative binomial,
    Bernoulli and categorical; ``emission="mixed"`` handles a table of mixed column kinds.

    *Label switching.* The likelihood is invariant to permuting the states, so posterior draws
    (``method="nuts"`` or ``"svi"``) may swap labels between chains or modes. ``order_by`` names a
    numeric column; every fitted parameter set (MAP estimate and each posterior draw) is then
    relabelled so that the states' means of that column increase -- an ordering constraint
    applied to the draws.

    Parameters
    ----------
    n_states : int
        Number of hidden states K.
    emission : {"gaussian", "poisson", "negbinomial", "categorical", "mixed"}
        Emission family; all but ``"mixed"`` force their column kind on every column.
    covariance_type : {"full", "diag"}
        Of the Gaussian emission block.
    initial : {"learned", "stationary"}
        A free initial-state distribution, or the chain's stationary distribution.
    transition_concentration, initial_concentration : float
        Dirichlet concentrations; 1 is flat.
    loc_scale, covariance_prior : float
        Gaussian priors, as in :class:`ppgen.GaussianMixture`.
    emission_concentration : float
        Beta/Dirichlet concentration of binary and categorical emission probabilities; above 1
        it keeps them off 0 and 1, 1 gives maximum likelihood.
    count_family : {"poisson", "negbinomial"}
        Count likelihood used by ``emission="mixed"``.
    order_by : str or None
        Column whose per-state mean orders the states (see label switching).
    prior : {None, "default"}
        What Baum-Welch (``method="em"``) maximizes: the likelihood (None, the default, as
        hmmlearn without priors) or the posterior under the priors above ("default"). Under
        maximum likelihood the Gaussian covariances get the ridge ``reg_covar`` (in the data's
        units of variance) on the diagonal. The Pyro programs (``"map"``, ``"svi"``, ``"nuts"``)
        always carry the priors. Either way a transition row whose state is never left keeps
        its previous values (a left-to-right start stays left-to-right: zeros are kept).
    reg_covar : float
        Ridge of maximum-likelihood covariances, as scikit-learn's and hmmlearn's ``min_covar``.

    Examples
    --------
    .. code-block:: python

        geyser = ppgen.datasets.load("geyser")  # one sequence of eruptions
        fit = ppgen.fit(ppgen.HMM(2, order_by="waiting"), geyser, method="em")
        fit.log_prob(), fit.predict(), fit.predict_proba()  # per sequence / per step
        fit.forecast(horizon=3).mean, fit.sample(10, 200, seed=0)
        panel = ppgen.fit(ppgen.HMM(3, "mixed"), df, id_column="id", time_column="t")

    Data are sequences: a list or dict of tables, one DataFrame with ``id_column`` (and
    ``time_column``), or one table (a single sequence); see :mod:`ppgen.data.sequences`. The
    result is a :class:`ppgen.infer.sequences.SequenceFit`.

    References
    ----------
    Rabiner, L. R. (1989). A tutorial on hidden Markov models and selected applications in speech
    recognition. *Proceedings of the IEEE* 77(2), 257-286.
    Zucchini, W., MacDonald, I. L. & Langrock, R. (2016). *Hidden Markov Models for Time Series*,
    2nd ed. CRC Press.
    """

    sequential: ClassVar[bool] = True
    enumerated: ClassVar[bool] = False
    max_plate_nesting: ClassVar[int] = 1
    supported_kinds: ClassVar[tuple[str, ...]] = EMISSIONS["mixed"]

    def __init__(
        self,
        n_states: int,
        emission: str = "gaussian",
        covariance_type: str = "full",
        initial: str = "learned",
        *,
        transition_concentration: float = 1.0,
        initial_concentration: float = 1.0,
        loc_scale: float = 10.0,
        covariance_prior: float = 0.1,
        emission_concentration: float = 1.5,
        count_family: str = "poisson",
        order_by: str | None = None,
        prior: str | None = None,
        reg_covar: float = 1e-6,
    ) -> None:
        super().__init__()
        check_estimator(prior, reg_covar)
        self.prior = prior
        self.reg_covar = float(reg_covar)
        check_int(n_states, "n_states")
        if emission not in EMISSIONS:
            raise ValueError(f"emission must be one of {tuple(EMISSIONS)}, got {emission!r}")
        if covariance_type not in ("full", "diag"):
            raise ValueError(f"covariance_type must be 'full' or 'diag', got {covariance_type!r}")
        if initial not in ("learned", "stationary"):
            raise ValueError(f"initial must be 'learned' or 'stationary', got {initial!r}")
        if count_family not in ("poisson", "negbinomial"):
            raise ValueError(
                f"count_family must be 'poisson' or 'negbinomial', got {count_family!r}"
            )
        for name, value in (
            ("transition_concentration", transition_concentration),
            ("initial_concentration", initial_concentration),
            ("loc_scale", loc_scale),
            ("covariance_prior", covariance_prior),
            ("emission_concentration", emission_concentration),
        ):
            check_number(value, name)
        if order_by is not None and not isinstance(order_by, str):
            raise ValueError(f"order_by must be a column name or None, got {order_by!r}")
        self.n_states = int(n_states)
        self.emission_family = emission
        self.covariance_type = covariance_type
        self.initial = initial
        self.transition_concentration = float(transition_concentration)
        self.initial_concentration = float(initial_concentration)
        self.loc_scale = float(loc_scale)
        self.covariance_prior = float(covariance_prior)
        self.emission_concentration = float(emission_concentration)
        self.count_family = count_family
        self.order_by = order_by
        self.global_sites = ()

    def config(self) -> dict[str, Any]:
        return {
            "n_states": self.n_states,
            "emission": self.emission_family,
            "covariance_type": self.covariance_type,
            "initial": self.initial,
            "transition_concentration": self.transition_concentration,
            "initial_concentration": self.initial_concentration,
            "loc_scale": self.loc_scale,
            "covariance_prior": self.covariance_prior,
            "emission_concentration": self.emission_concentration,
            "count_family": self.count_family,
            "order_by": self.order_by,
            "prior": self.prior,
            "reg_covar": self.reg_covar,
        }

    def label(self) -> str:
        """``HMM(2, gaussian, full)``; the covariance only where the emissions have one."""
        shown = [str(self.n_states), self.emission_family]
        if self.emission_family in ("gaussian", "mixed"):
            shown.append(self.covariance_type)
        return f"HMM({', '.join(shown)})"

    @property
    def ml(self) -> bool:
        """Whether Baum-Welch gives maximum likelihood (``prior=None``)."""
        return self.prior is None

    def forced_kinds(self, names: tuple[str, ...]) -> dict[str, str]:
        """Column kinds the emission family imposes on a table with these columns."""
        kind = _FORCED_KIND[self.emission_family]
        return {} if kind is None else dict.fromkeys(names, kind)

    def build(self, schema: Schema) -> HMM:
        kinds = EMISSIONS[self.emission_family]
        hint = "Use emission='mixed' for tables of mixed column kinds."
        schema.require(*kinds, model=f"HMM(emission={self.emission_family!r})", hint=hint)
        self.dim = len(schema)
        self.held = {}  # a rebuilt model (e.g. a fit's, refitted) holds nothing
        self.schema = schema
        self.emission = Emission(
            schema,
            self.n_states,
            self.emission_family,
            self.covariance_type,
            count_family=self.count_family,
            loc_scale=self.loc_scale,
            covariance_prior=self.covariance_prior,
            concentration=self.emission_concentration,
            ml=self.ml,
            reg_covar=self.reg_covar,
        )
        chain = ("initial", "transition") if self.initial == "learned" else ("transition",)
        self.global_sites = chain + self.emission.sites
        if self.order_by is not None:
            if self.order_by not in schema.names:
                raise ValueError(
                    f"order_by names column {self.order_by!r}, which is not in the table "
                    f"(columns: {', '.join(map(repr, schema.names))})"
                )
            if schema.columns[schema.names.index(self.order_by)].kind == "categorical":
                raise ValueError(
                    f"order_by column {self.order_by!r} is categorical; name a continuous, "
                    "count or binary column"
                )
        return self

    # -- priors and chain parameters --------------------------------------------------------------
    def priors(self, like: torch.Tensor) -> dict[str, dist.Distribution]:
        """Prior of each global site, on ``like``'s device and dtype."""
        self._check_built()
        K = self.n_states
        priors = {
            "initial": dist.Dirichlet(like.new_full((K,), self.initial_concentration)),
            "transition": dist.Dirichlet(
                like.new_full((K, K), self.transition_concentration)
            ).to_event(1),
        }
        priors.update(self.emission.priors(like))
        return {k: priors[k] for k in self.global_sites}

    def log_prior(self, params: Params) -> torch.Tensor:
        """Log density of the prior Baum-Welch's estimate maximizes: 0 (flat) under maximum
        likelihood, else the priors of :meth:`priors`."""
        like = params["transition"]
        if self.ml:
            return like.new_zeros(())
        # EM evaluates the prior every iteration: build its distributions once per dtype/device.
        cache = self.__dict__.setdefault("_prior_cache", {})
        key = (like.dtype, like.device)
        if key not in cache:
            cache[key] = self.priors(like)
        # Held sites (hold) are constants, whose prior may even vanish at them (zeros).
        free = [k for k in self.global_sites if k not in self.held]
        return sum((cache[key][k].log_prob(params[k]) for k in free), like.new_zeros(()))

    def initial_probs(self, params: Params) -> torch.Tensor:
        """The distribution of the first state, (K,)."""
        if self.initial == "learned":
            return params["initial"]
        return stationary_distribution(params["transition"])

    def _chain(self, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
        return self.initial_probs(params).log(), params["transition"].log()

    # -- Pyro programs --------------------------------------------------------------------------
    def _sample_globals(self, like: torch.Tensor) -> Params:
        priors = self.priors(like)
        return {name: pyro.sample(name, priors[name]) for name in self.global_sites}

    def hmm_distribution(self, params: Params, mask: torch.Tensor) -> dist.DiscreteHMM:
        """Pyro's DiscreteHMM of sequences with observation mask ``mask`` (S, T, p)."""
        K, T = self.n_states, mask.shape[-2]
        log_init, log_trans = self._chain(params)
        # DiscreteHMM draws its initial state one step before the first observation: a first
        # transition whose rows all equal the initial distribution makes z[0] ~ initial.
        first = log_init.unsqueeze(-2).expand(K, K).unsqueeze(-3)
        logits = torch.cat([first, log_trans.expand(T - 1, K, K)], dim=-3)
        return dist.DiscreteHMM(
            log_init.new_zeros(K), logits, _EmissionDistribution(self.emission, params, mask)
        )

    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        """Sequences x (S, T, p) with states summed out by DiscreteHMM's parallel scan."""
        params = self._sample_globals(x)
        mask = torch.ones_like(x, dtype=torch.bool) if mask is None else mask
        with pyro.plate("sequences", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            pyro.sample("x", self.hmm_distribution(params, mask[ind]), obs=x[ind])

    def model_enumerated(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None
    ) -> None:
        """The same model with the states as ``pyro.markov`` sites ``z_t`` enumerated in parallel.

        Observations enter as factors ``x_t``; fit it with TraceEnum_ELBO(max_plate_nesting=1).
        A Python loop over time: for checks and small data, :meth:`model` is the fast one.
        """
        params = self._sample_globals(x)
        mask = torch.ones_like(x, dtype=torch.bool) if mask is None else mask
        log_init, log_trans = self._chain(params)
        S, T = x.shape[:2]
        with pyro.plate("sequences", S, subsample_size=subsample_size, dim=-1) as ind:
            ll = self.emission.log_prob(x[ind], mask[ind], params)  # (S', T, K)
            rows = torch.arange(ll.shape[0], device=x.device)
            z = None
            for t in pyro.markov(range(T)):
                logits = log_init if z is None else Vindex(log_trans)[z]
                z = pyro.sample(
                    f"z_{t}", dist.Categorical(logits=logits), infer={"enumerate": "parallel"}
                )
                pyro.factor(f"x_{t}", Vindex(ll[:, t])[rows, z])

    # -- recursions ------------------------------------------------------------------------------
    @staticmethod
    def _present(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        S, T = x.shape[:2]
        steps = torch.arange(T, device=x.device)
        if lengths is None:
            return torch.ones(S, T, dtype=torch.bool, device=x.device)
        return steps < lengths.to(x.device).unsqueeze(-1)

    def _recursion_inputs(self, x, mask, params, lengths):
        mask = torch.ones_like(x, dtype=torch.bool) if mask is None else mask
        present = self._present(x, lengths)
        ll = self.emission.log_prob(x, mask & present.unsqueeze(-1), params)
        log_init, log_trans = self._chain(params)
        return ll, log_init, log_trans, present

    @staticmethod
    def _scaled_emissions(ll: torch.Tensor, present: torch.Tensor):
        """exp(ll_t - m_t) with m_t = max_k ll_t[k], and m_t: emissions on a safe scale.

        Padded steps get e_t = 1 and m_t = 0 so that the recursions carry over them.
        """
        shift = ll.amax(-1, keepdim=True).clamp_min(torch.finfo(ll.dtype).min)
        e = (ll - shift).exp()
        e = torch.where(present.unsqueeze(-1), e, torch.ones_like(e))
        return e, torch.where(present, shift.squeeze(-1), torch.zeros_like(shift.squeeze(-1)))

    @staticmethod
    def _parallel(shape: torch.Size) -> bool:
        """Whether blocked prefix products beat the step loop for sequences of this (S, T, K)
        shape. The loop costs op dispatch on 2 T steps, the blocks on about 4 sqrt(T) steps but
        also O(S T K^3) arithmetic in tiny batched matrix products instead of O(S T K^2): they
        win on long series with few sequences and few states (:data:`_PARALLEL_LIMIT`).
        """
        S, T, K = shape
        return S * K**3 * max(1.0, (100 / T) ** 6) <= _PARALLEL_LIMIT

    @classmethod
    def _transfer_matrices(cls, ll, log_trans, present):
        """Shifted emissions e (S, T, K), shifts m (S, T) and M_t = A diag(e_t) (S, T-1, K, K)
        for t >= 1; padded steps get the identity."""
        e, shift = cls._scaled_emissions(ll, present)
        M = log_trans.exp() * e[:, 1:, None, :]
        if not bool(present.all()):
            eye = torch.eye(ll.shape[-1], dtype=ll.dtype, device=ll.device)
            M = torch.where(present[:, 1:, None, None], M, eye)
        return e, shift, M

    @staticmethod
    def _blocked_scan(v0: torch.Tensor, M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row vectors v_t = v0 M_1 ... M_t (t = 0..T-1) of v0 (S, K) and M (S, T-1, K, K),
        each divided by its sum, and the logs of those sums (S, T).

        Time is cut into B ~ sqrt(T) blocks of B steps: a loop over the B steps of every block
        at once gives each block's prefix products (O(K^3) each, divided by their largest
        entry), a loop over the blocks carries the vector across block ends, and one batched
        product gives every v_t. About 2 sqrt(T) Python steps instead of T.
        """
        S, T1, K = M.shape[0], M.shape[1], M.shape[-1]
        norm0 = v0.sum(-1)
        v = v0 / norm0.unsqueeze(-1)
        if T1 == 0:
            return v.unsqueeze(1), norm0.log().unsqueeze(1)
        B = math.ceil(math.sqrt(T1))
        nB = math.ceil(T1 / B)
        pad = nB * B - T1
        if pad:  # identity factors after the end change nothing
            eye = torch.eye(K, dtype=M.dtype, device=M.device).expand(S, pad, K, K)
            M = torch.cat([M, eye], dim=1)
        M = M.reshape(S, nB, B, K, K)
        # Logs are taken once after each loop (fewer ops per step): scales kept as factors.
        P = M[:, :, 0]
        prods, tops = [], []
        for j in range(B):
            if j:
                P = P @ M[:, :, j]
            top = P.amax((-2, -1), keepdim=True)
            P = P / top
            prods.append(P)
            tops.append(top)
        log_p = torch.cat(tops, -1).squeeze(-2).log().cumsum(-1)  # (S, nB, B)
        last = prods[-1]
        starts, norms = [v], [norm0]
        for b in range(nB - 1):
            w = (v.unsqueeze(-2) @ last[:, b]).squeeze(-2)
            n = w.sum(-1, keepdim=True)
            v = w / n
            starts.append(v)
            norms.append(n.squeeze(-1))
        # log of block b's start scale: the norms so far and the block products before it.
        log_start = torch.stack(norms, dim=1).log().cumsum(1)
        log_start[:, 1:] += log_p[:, :-1, -1].cumsum(1)
        prods = torch.stack(prods, dim=2)  # (S, nB, B, K, K)
        W = (torch.stack(starts, dim=1)[:, :, None, None, :] @ prods).squeeze(-2)  # (S,nB,B,K)
        n = W.sum(-1)
        log_n = log_start.unsqueeze(-1) + n.log() + log_p
        V = (W / n.unsqueeze(-1)).reshape(S, nB * B, K)[:, :T1]
        log_n = log_n.reshape(S, nB * B)[:, :T1]
        return (
            torch.cat([v0.unsqueeze(1) / norm0[:, None, None], V], dim=1),
            torch.cat([norm0.log().unsqueeze(1), log_n], dim=1),
        )

    @classmethod
    def _parallel_forward_backward(cls, ll, log_init, log_trans, present, backward: bool = True):
        """Forward(-backward) variables by blocked prefix products (:meth:`_blocked_scan`).

        Returns the filtered probabilities a_t (S, T, K), log scales l_t (S, T) with
        log alpha_t = log a_t + l_t (so l_{T-1} = log p(x)), the shifted emissions e (S, T, K)
        and, when ``backward``, the backward variables b_t (S, T, K) up to a factor per step
        (a_t * b_t normalized are the smoothed marginals). None if a product underflowed.
        """
        e, shift, M = cls._transfer_matrices(ll, log_trans, present)
        first = log_init.exp() * e[:, 0]
        S = first.shape[0]
        if backward:
            # beta_t^T = 1^T M_{T-1}^T ... M_{t+1}^T: the same scan on the reversed transposes,
            # run with the forward one as a batch of 2 S (half the Python steps).
            first = torch.cat([first, torch.ones_like(first)])
            M = torch.cat([M, M.flip(1).mT])
        scanned, log_a = cls._blocked_scan(first, M)
        alpha, log_scale = scanned[:S], log_a[:S] + shift.cumsum(1)
        if not bool(torch.isfinite(log_scale[:, -1]).all()):
            return None
        if not backward:
            return alpha, log_scale, e, None
        beta = scanned[S:].flip(1)
        if not bool(torch.isfinite(beta).all()):
            return None
        return alpha, log_scale, e, beta

    @classmethod
    def _scaled_forward_backward(cls, ll, log_init, log_trans, present, backward: bool = True):
        """Scaled forward(-backward) recursions in probability space (Rabiner 1989, sec. V.A).

        Returns what :meth:`_parallel_forward_backward` returns: normalized forward variables
        a_t (S, T, K) (the filtered probabilities), log scales l_t (S, T) with log alpha_t =
        log a_t + l_t (so l_{T-1} = log p(x)), the shifted emissions e_t = exp(ll_t - m_t) and,
        when ``backward``, the backward variables b_t (S, T, K) up to a factor per step.
        One batched vector-matrix product per step with the transfer matrices M_t (identity on
        padded steps, so no selection is needed); vectors are renormalized only every few
        steps (:func:`_renormalize_every`: M_t's entries are at most 1, so nothing overflows)
        and the steps in between normalized afterwards at once. The log-space version costs a
        logsumexp over (S, K, K) per step and is kept for the rare underflow.
        Returns None when a product underflows (data all but impossible under the model).
        """
        S, T, K = ll.shape
        e, shift = cls._scaled_emissions(ll, present)
        every = _renormalize_every(ll.dtype)
        # Transfer matrices M_t = A diag(e_t) built time-major (T-1, S, K, K), so that each
        # step's (S, K, K) is contiguous for bmm without copying M; identity on padded steps.
        M = log_trans.exp() * e.transpose(0, 1).contiguous()[1:, :, None, :]
        if not bool(present.all()):
            eye = torch.eye(K, dtype=ll.dtype, device=ll.device)
            M = torch.where(present.T[1:, :, None, None], M, eye)
        steps = M.unbind(0)
        a = (log_init.exp() * e[:, 0]).unsqueeze(-2)  # (S, 1, K)
        alphas, norms, at = [a], [], []
        for t in range(1, T):
            a = torch.bmm(a, steps[t - 1])
            if t % every == 0:
                n = a.sum(-1, keepdim=True)
                a = a / n
                norms.append(n)
                at.append(t)
            alphas.append(a)
        alpha = torch.cat(alphas, dim=1)  # (S, T, K), each step up to its factor
        total = alpha.sum(-1)
        if not bool((total > 0).all()):
            return None
        log_scale = total.log() + shift.cumsum(1)
        if norms:
            divided = total.new_zeros(S, T)
            divided[:, at] = torch.cat(norms, dim=1).squeeze(-1).log()
            log_scale = log_scale + divided.cumsum(1)
        alpha = alpha / total.unsqueeze(-1)
        if not backward:
            return alpha, log_scale, e, None
        b = torch.ones_like(e[:, 0]).unsqueeze(-1)  # (S, K, 1)
        betas = [b]
        for t in range(T - 2, -1, -1):
            b = torch.bmm(steps[t], b)
            if t % every == 0:
                b = b / b.sum(-2, keepdim=True)
            betas.append(b)
        beta = torch.cat(betas[::-1], dim=-1).mT  # (S, T, K)
        if not bool((beta.sum(-1) > 0).all()):
            return None
        return alpha, log_scale, e, beta

    @staticmethod
    def _log_forward(ll, log_init, log_trans, present) -> torch.Tensor:
        """Log forward variables log p(x[:t+1], z_t), (S, T, K); padded steps carry over."""
        alpha = log_init + ll[:, 0]
        alphas = [alpha]
        for t in range(1, ll.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(-1) + log_trans, dim=-2) + ll[:, t]
            alpha = torch.where(present[:, t, None], step, alpha)
            alphas.append(alpha)
        return torch.stack(alphas, dim=1)

    @staticmethod
    def _log_backward(ll, log_trans, present) -> torch.Tensor:
        """Log backward variables log p(x[t+1:] | z_t), (S, T, K)."""
        beta = torch.zeros_like(ll[:, 0])
        betas = [beta]
        for t in range(ll.shape[1] - 2, -1, -1):
            step = torch.logsumexp(log_trans + (ll[:, t + 1] + beta).unsqueeze(-2), dim=-1)
            beta = torch.where(present[:, t + 1, None], step, beta)
            betas.append(beta)
        return torch.stack(betas[::-1], dim=1)

    @classmethod
    def _forward(cls, ll, log_init, log_trans, present) -> torch.Tensor:
        """Log forward variables log p(x[:t+1], z_t), (S, T, K)."""
        scaled = cls._probability_recursions(ll, log_init, log_trans, present, backward=False)
        if scaled is None:
            return cls._log_forward(ll, log_init, log_trans, present)
        alpha, log_scale, _, _ = scaled
        return alpha.log() + log_scale.unsqueeze(-1)

    @classmethod
    def _numpy_forward_backward(cls, ll, log_init, log_trans, present, backward: bool = True):
        """:meth:`_scaled_forward_backward` as a NumPy loop, for CPU tensors without gradients.

        The same recursions, state-major: a_t and b_t are (K, S) arrays whose columns are the
        sequences, so a step is one (K, K) @ (K, S) product into a preallocated row of the
        output and one in-place product with the emissions, about 1.5 us against torch's ~10 us
        of dispatch per step (50 x 1000 steps, K=4: 2 ms instead of 10 ms each way). Padded
        steps copy the previous vector (their emissions are 1, the transition is the identity).
        Returns what :meth:`_scaled_forward_backward` returns, as torch tensors, or None when a
        product underflows.
        """
        out = cls._numpy_recursions(ll[None], log_init[None], log_trans[None], present, backward)
        return None if out is None else tuple(None if v is None else v[0] for v in out)

    @classmethod
    def _numpy_recursions(cls, ll, log_init, log_trans, present, backward: bool = True):
        """:meth:`_numpy_forward_backward` of R parameter sets at once: ``ll`` (R, S, T, K),
        ``log_init`` (R, K), ``log_trans`` (R, K, K); returns (R, ...) tensors, or None if any
        product underflowed. The R chains run as one of R K states whose transition matrix is
        block-diagonal (zeros add exactly nothing), so the loop's per-step cost is paid once
        for all R (EM's screened starts, :meth:`em_steps`); each vector is normalized within
        its own block."""
        R, S, T, K = ll.shape
        e, shift = cls._scaled_emissions(ll, present)
        every = _renormalize_every(ll.dtype)
        E = e.permute(2, 0, 3, 1).reshape(T, R * K, S).contiguous().numpy()  # (T, R K, S)
        A = torch.block_diag(*log_trans.exp()).numpy() if R > 1 else log_trans[0].exp().numpy()
        At = np.ascontiguousarray(A.T)
        pad = None if bool(present.all()) else (~present).T.contiguous().numpy()  # (T, S)
        padded = None if pad is None else pad.any(1)
        alpha = np.empty((T, R * K, S), dtype=E.dtype)
        np.multiply(log_init.exp().reshape(R * K, 1).numpy(), E[0], out=alpha[0])
        tmp = np.empty((R * K, S), dtype=E.dtype)
        blocks = alpha.reshape(T, R, K, S)  # a view: alpha's rows by parameter set
        divided = np.zeros((T, R, S), dtype=E.dtype)  # log of what step t was divided by
        with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
            for t in range(1, T):
                np.dot(At, alpha[t - 1], out=tmp)
                np.multiply(tmp, E[t], out=alpha[t])
                if padded is not None and padded[t]:
                    np.copyto(alpha[t], alpha[t - 1], where=pad[t])
                if t % every == 0:
                    n = blocks[t].sum(1)  # (R, S)
                    blocks[t] /= n[:, None]
                    divided[t] = np.log(n)
            total = blocks.sum(2)  # (T, R, S)
            if not bool((total > 0).all()):
                return None
            log_scale = np.log(total) + divided.cumsum(0)
            blocks /= total[:, :, None]
            beta = None
            if backward:
                beta = np.empty((T, R * K, S), dtype=E.dtype)
                beta[T - 1] = 1.0
                bblocks = beta.reshape(T, R, K, S)
                for t in range(T - 2, -1, -1):
                    np.multiply(E[t + 1], beta[t + 1], out=tmp)
                    np.dot(A, tmp, out=beta[t])
                    if padded is not None and padded[t + 1]:
                        np.copyto(beta[t], beta[t + 1], where=pad[t + 1])
                    if t % every == 0:
                        bblocks[t] /= bblocks[t].sum(1)[:, None]
                if not bool((bblocks.sum(2) > 0).all()):
                    return None
        # (T, R, K, S) -> (R, S, T, K)
        alpha = torch.from_numpy(blocks).permute(1, 3, 0, 2).contiguous()
        log_scale = torch.from_numpy(log_scale).permute(1, 2, 0) + shift.cumsum(-1)
        if beta is not None:
            beta = torch.from_numpy(bblocks).permute(1, 3, 0, 2).contiguous()
        return alpha, log_scale, e, beta

    @staticmethod
    def _numpy_ready(*tensors: torch.Tensor) -> bool:
        """Whether the NumPy recursions apply: CPU tensors that need no gradient."""
        return _NUMPY_RECURSIONS and all(
            t.device.type == "cpu" and not t.requires_grad for t in tensors
        )

    @classmethod
    def _probability_recursions(cls, ll, log_init, log_trans, present, backward: bool = True):
        """The NumPy loop on CPU without gradients (:meth:`_numpy_forward_backward`), except
        for the long series with few sequences and states where the blocked prefix products
        win (S K^3 <= :data:`_BLOCKED_OVER_NUMPY`, at least :data:`_BLOCKED_MIN_STEPS` steps);
        else the faster
        of :meth:`_parallel_forward_backward` and :meth:`_scaled_forward_backward` for this
        shape (:meth:`_parallel`). None if it underflowed."""
        S, T, K = ll.shape
        blocked = cls._parallel(ll.shape)
        if cls._numpy_ready(ll, log_init, log_trans) and not (
            S * K**3 <= _BLOCKED_OVER_NUMPY and T >= _BLOCKED_MIN_STEPS
        ):
            return cls._numpy_forward_backward(ll, log_init, log_trans, present, backward)
        if blocked:
            return cls._parallel_forward_backward(ll, log_init, log_trans, present, backward)
        return cls._scaled_forward_backward(ll, log_init, log_trans, present, backward)

    @classmethod
    def _log_likelihood(cls, ll, log_init, log_trans, present) -> torch.Tensor:
        """log p(x) per sequence (S,) as a product of transfer matrices, reduced as a tree.

        p(x) = pi_e0^T M_1 ... M_{T-1} 1 with M_t = A diag(e_t): pairwise products take
        O(log T) batched matmuls instead of T sequential steps. Emissions are shifted by their
        largest log value and partial products divided by their largest entry (the logs of
        those scales are added back), so nothing overflows; if a product underflows to zero,
        fall back to the log-space loop. On CPU without gradients the NumPy forward loop
        (:meth:`_numpy_forward_backward`) is faster where the tree's O(S K^3) work per step
        outweighs the loop's per-step cost, S K^3 > :data:`_TREE_LIMIT` (50 x 1000 steps, K=4:
        ~5 ms vs ~14; 1 x 100, K=2: 0.3 ms vs 0.2).
        """
        S, K = ll.shape[0], ll.shape[-1]
        if S * K**3 > _TREE_LIMIT and cls._numpy_ready(ll, log_init, log_trans):
            scaled = cls._numpy_forward_backward(ll, log_init, log_trans, present, False)
            if scaled is not None:
                return scaled[1][:, -1]
            return cls._log_forward(ll, log_init, log_trans, present)[:, -1].logsumexp(-1)
        e, shift, M = cls._transfer_matrices(ll, log_trans, present)
        log_scale = shift.sum(1)
        level = 0
        while M.shape[1] > 1:
            odd = M[:, -1:] if M.shape[1] % 2 else None
            M = M[:, 0 : M.shape[1] - 1 : 2] @ M[:, 1::2]
            if odd is not None:  # fold the unpaired last factor into the last product
                M[:, -1:] = M[:, -1:] @ odd
            level += 1
            # Products of a handful of factors with entries <= 1 cannot overflow (and an
            # underflow falls back below): rescaling every other level halves its cost.
            if level % 2 == 0 or M.shape[1] == 1:
                top = M.amax((-2, -1), keepdim=True)
                M = M / top
                log_scale = log_scale + top.log().sum((1, 2, 3))
        first = log_init.exp() * e[:, 0]
        total = first if M.shape[1] == 0 else (first.unsqueeze(-2) @ M[:, 0]).squeeze(-2)
        out = total.sum(-1).log() + log_scale
        if not bool(torch.isfinite(out).all()):
            return cls._log_forward(ll, log_init, log_trans, present)[:, -1].logsumexp(-1)
        return out

    def log_prob(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        params: Params,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Log-likelihood of each sequence's observed entries (forward algorithm), shape (S,)."""
        return self._log_likelihood(*self._recursion_inputs(x, mask, params, lengths))

    def log_joint(self, x, mask, params, lengths=None) -> torch.Tensor:
        """Baum-Welch's objective with the states summed out: the log-likelihood plus
        :meth:`log_prior` (0 under maximum likelihood)."""
        return self.log_prob(x, mask, params, lengths).sum() + self.log_prior(params)

    def posteriors(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        params: Params,
        lengths: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Forward-backward: log-likelihoods (S,), state marginals (S, T, K), transition counts.

        ``"transitions"`` (K, K) is the expected number of i -> j transitions summed over
        sequences; marginals of padded steps repeat the last step's.
        """
        recursion = self._recursion_inputs(x, mask, params, lengths)
        ll, log_init, log_trans, present = recursion
        weight = present[:, 1:, None].to(x.dtype)
        scaled = self._probability_recursions(*recursion)
        if scaled is not None:
            log_lik, gamma, transitions = self._scaled_posteriors(*scaled, log_trans.exp(), weight)
        else:
            alpha = self._log_forward(*recursion)
            beta = self._log_backward(ll, log_trans, present)
            log_lik = alpha[:, -1].logsumexp(-1)
            gamma = (alpha + beta - log_lik[:, None, None]).exp()
            log_xi = (
                alpha[:, :-1, :, None]
                + log_trans
                + (ll + beta)[:, 1:, None, :]
                - log_lik[:, None, None, None]
            )
            transitions = (log_xi.exp() * weight.unsqueeze(-1)).sum((0, 1))
        return {"log_lik": log_lik, "marginals": gamma, "transitions": transitions}

    @staticmethod
    def _scaled_posteriors(alpha, log_scale, e, beta, A, weight):
        """Log-likelihoods (..., S), marginals (..., S, T, K) and expected transition counts
        (..., K, K) from the probability-space recursions' a_t, l_t, e_t, b_t (..., S, T, K)
        and the transition matrix ``A`` (K, K), or (R, 1, K, K) for R parameter sets;
        ``weight`` (S, T - 1, 1) is 0 on padded steps."""
        # Sums over the K states as products with a ones vector: torch's reduction over a short
        # last axis is several times slower.
        ones = alpha.new_ones(alpha.shape[-1], 1)
        # Both recursions give a_t * b_t up to a factor per step: normalize.
        gamma = alpha * beta
        gamma = gamma / (gamma @ ones)
        # xi_t(i, j) = a_t(i) A_ij e_t+1(j) b_t+1(j) / Z_t, Z_t its sum over i and j.
        right = e[..., 1:, :] * beta[..., 1:, :]
        norm = ((alpha[..., :-1, :] @ A) * right) @ ones
        counts = torch.einsum("...sti,...stj->...ij", alpha[..., :-1, :], right * weight / norm)
        return log_scale[..., -1], gamma, counts * (A if A.dim() == 2 else A.squeeze(-3))

    def smooth(self, x, mask, params, lengths=None) -> torch.Tensor:
        """Smoothed state marginals p(z_t = k | x), (S, T, K)."""
        return self.posteriors(x, mask, params, lengths)["marginals"]

    def filter(self, x, mask, params, lengths=None) -> torch.Tensor:
        """Filtered state probabilities p(z_t = k | x[:t+1]), (S, T, K)."""
        ll, log_init, log_trans, present = self._recursion_inputs(x, mask, params, lengths)
        return self._forward(ll, log_init, log_trans, present).softmax(-1)

    def viterbi(self, x, mask, params, lengths=None) -> torch.Tensor:
        """Most probable state path of each sequence, (S, T); padded steps repeat the last."""
        ll, log_init, log_trans, present = self._recursion_inputs(x, mask, params, lengths)
        K = self.n_states
        stay = torch.arange(K, device=x.device).expand(ll.shape[0], K)
        delta = log_init + ll[:, 0]
        pointers = []
        for t in range(1, ll.shape[1]):
            best, arg = (delta.unsqueeze(-1) + log_trans).max(dim=-2)
            delta = torch.where(present[:, t, None], best + ll[:, t], delta)
            pointers.append(torch.where(present[:, t, None], arg, stay))
        state = delta.argmax(-1)
        path = [state]
        for arg in reversed(pointers):
            state = arg.gather(-1, state.unsqueeze(-1)).squeeze(-1)
            path.append(state)
        return torch.stack(path[::-1], dim=1)

    def sample_states_posterior(self, x, mask, params, lengths=None) -> torch.Tensor:
        """One state path per sequence from p(z | x) (forward filtering, backward sampling)."""
        ll, log_init, log_trans, present = self._recursion_inputs(x, mask, params, lengths)
        alpha = self._forward(ll, log_init, log_trans, present)
        z = dist.Categorical(logits=alpha[:, -1]).sample()
        path = [z]
        for t in range(ll.shape[1] - 2, -1, -1):
            logits = alpha[:, t] + log_trans[:, z].mT
            z = torch.where(present[:, t + 1], dist.Categorical(logits=logits).sample(), z)
            path.append(z)
        return torch.stack(path[::-1], dim=1)

    # -- EM ----------------------------------------------------------------------------------------
    def m_step(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        post: dict[str, torch.Tensor],
        params: Params | None = None,
        lengths: torch.Tensor | None = None,
    ) -> Params:
        """Baum-Welch M-step: maximize the expected log joint given :meth:`posteriors`.

        Chain: ``initial`` and every ``transition`` row are the normalized expected counts
        (maximum likelihood) or Dirichlet posterior modes of them; emissions: the closed forms of
        :mod:`ppgen.models.likelihoods` given the marginals (ECM for Gaussian means). Each is an
        exact conditional maximizer, so the objective never decreases. A transition row with no
        expected count (a state never left) keeps its values from ``params`` (uniform without),
        so structural zeros survive.
        """
        return self._update(self._statistics(x, mask, post, params, lengths), params)

    def _statistics(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        post: dict[str, torch.Tensor],
        params: Params | None,
        lengths: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """:meth:`m_step`'s sufficient statistics: sums over sequences (and their steps)."""
        self._check_em()
        mask = torch.ones_like(x, dtype=torch.bool) if mask is None else mask
        present = self._present(x, lengths)
        gamma = post["marginals"] * present.unsqueeze(-1).to(x.dtype)
        p = x.shape[-1]
        stats = self.emission.statistics(
            x.reshape(-1, p),
            (mask & present.unsqueeze(-1)).reshape(-1, p),
            gamma.reshape(-1, self.n_states),
            params,
        )
        return {"initial": gamma[:, 0].sum(0), "transitions": post["transitions"], **stats}

    def _check_em(self) -> None:
        """Refuse Baum-Welch where it has no closed form."""
        if self.initial != "learned":
            raise ValueError("method='em' needs initial='learned'; use method='map'")
        if not self.emission.has_m_step:
            raise ValueError(
                f"HMM(emission={self.emission_family!r}) has no closed-form M-step "
                "(negative binomial dispersion); use method='map'"
            )

    def _update(self, stats: dict[str, torch.Tensor], params: Params | None) -> Params:
        """:meth:`m_step` from :meth:`_statistics` summed over any split of the sequences (the
        chain's statistics may carry a leading axis of parameter sets, :meth:`em_steps`)."""
        a0 = 0.0 if self.ml else self.initial_concentration - 1
        a1 = 0.0 if self.ml else self.transition_concentration - 1
        initial = (stats["initial"] + a0).clamp_min(0)
        trans = (stats["transitions"] + a1).clamp_min(0)
        previous = torch.ones_like(trans)
        if params is not None and "transition" in params:
            previous = params["transition"]
        trans = torch.where(trans.sum(-1, keepdim=True) > 0, trans, previous)
        out = {
            "initial": initial / initial.sum(-1, keepdim=True),
            "transition": trans / trans.sum(-1, keepdim=True),
        }
        out.update(self.emission.update(stats, params))
        # Held sites (fixable_sites): initial, transition and each emission part's sites have
        # terms of their own in the expected log joint, so the free updates above are already
        # the maximizers given them; a held transition keeps its zeros exactly.
        out.update(self.held)
        return out

    #: Sites held at given values (:meth:`hold`), kept by :meth:`m_step` and every start.
    held: Params = MappingProxyType({})

    def fixable_sites(self) -> tuple[str, ...]:
        """The sites ``method="em"`` can hold fixed (``fit(..., fixed={...})``): ``initial``
        and ``transition`` (e.g. a left-to-right chain, whose zeros stay exactly zero), and the
        count rates and probabilities of the emissions (``rates``, ``probs``, ``probs[name]``,
        ``success``), whose values mean the same on the data's scale and the encoded one. Each
        has terms of its own in Baum-Welch's expected log-likelihood, so holding it keeps EM
        exact. Gaussian emissions (``locs``, ``precision``) cannot be held."""
        self._check_built()
        gaussian = ("locs", "precision")
        return tuple(s for s in self.global_sites if s not in gaussian)

    def hold(self, fixed: Params) -> None:
        """Hold ``fixed`` (checked encoded values of :meth:`fixable_sites`) in :meth:`m_step`,
        :meth:`init_params` and :meth:`em_restarts`; called by the EM engine on its private
        copy. Held sites identify the states, so they are not reordered by ``order_by``."""
        self.held = dict(fixed)

    def em_step(self, x, mask, params, lengths=None) -> tuple[Params, torch.Tensor]:
        """One Baum-Welch iteration: :meth:`m_step` after :meth:`posteriors` at ``params``, and
        the log joint at ``params`` (which the forward pass computes anyway)."""
        return self.em_update(self.em_statistics(x, mask, params, lengths), params)

    def em_steps(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        starts: list[Params],
        lengths: torch.Tensor | None = None,
    ) -> list[tuple[Params, torch.Tensor]]:
        """:meth:`em_step` from each of R parameter sets (EM's screened starts, run in
        lockstep): the same iterations to rounding, computed as one HMM of R K states. The R
        emission parameter sets are stacked along the state axis, so that one emission
        log-density, one pass of sufficient statistics and one M-step serve them all, and
        the R chains run as one NumPy loop with a block-diagonal transition matrix
        (:meth:`_numpy_recursions`): the fixed cost per operation and per time step, most of a
        small series' EM iteration, is paid once. Elsewhere (GPU, gradients, held sites, an
        underflow) one :meth:`em_step` after the other."""
        R, K = len(starts), self.n_states
        mask = torch.ones_like(x, dtype=torch.bool) if mask is None else mask
        ready = R > 1 and not self.held and self._numpy_ready(x)
        if ready:
            self._check_em()
            stacked = {k: torch.cat([p[k] for p in starts]) for k in self.emission.sites}
            log_init = torch.stack([self._chain(p)[0] for p in starts])
            transition = torch.stack([p["transition"] for p in starts])
            ready = self._numpy_ready(log_init, transition, *stacked.values())
        scaled = None
        if ready:
            present = self._present(x, lengths)
            observed = mask & present.unsqueeze(-1)
            # (S, T, R K) -> (R, S, T, K): state k of set r is stacked state r K + k.
            ll = self.emission.log_prob(x, observed, stacked).unflatten(-1, (R, K))
            log_trans = transition.log()
            scaled = self._numpy_recursions(ll.permute(2, 0, 1, 3), log_init, log_trans, present)
        if scaled is None:
            return [self.em_step(x, mask, p, lengths) for p in starts]
        weight = present[:, 1:, None].to(x.dtype)
        log_lik, gamma, transitions = self._scaled_posteriors(
            *scaled, log_trans.exp().unsqueeze(-3), weight
        )
        gamma = gamma * present.unsqueeze(-1).to(x.dtype)  # (R, S, T, K)
        p, S, T = x.shape[-1], x.shape[0], x.shape[1]
        resp = gamma.permute(1, 2, 0, 3).reshape(S * T, R * K)
        stats = self.emission.statistics(x.reshape(-1, p), observed.reshape(-1, p), resp, stacked)
        stats.update(initial=gamma[:, :, 0].sum(1), transitions=transitions)
        new = self._update(stats, {**stacked, "transition": transition})
        out = []
        for r, params in enumerate(starts):
            step = {k: v[r] for k, v in new.items() if k in ("initial", "transition")}
            step.update({k: new[k].unflatten(0, (R, K))[r] for k in self.emission.sites})
            out.append((step, log_lik[r].sum() + self.log_prior(params)))
        return out

    def em_statistics(self, x, mask, params, lengths=None) -> dict[str, torch.Tensor]:
        """The E-step (forward-backward) at ``params`` as sums over sequences, so that those
        of disjoint sets of sequences add up (distributed and streamed EM): the
        log-likelihood ``log_lik``, the expected first states ``initial``, the expected
        transition counts ``transitions`` and the emissions' statistics
        (:meth:`~ppgen.models.likelihoods.Emission.statistics`)."""
        post = self.posteriors(x, mask, params, lengths)
        stats = self._statistics(x, mask, post, params, lengths)
        return {"log_lik": post["log_lik"].sum(), **stats}

    def em_update(self, stats, params) -> tuple[Params, torch.Tensor]:
        """Baum-Welch's M-step from :meth:`em_statistics` (summed over all sequences) and the
        log joint at ``params``; :meth:`em_step` is their composition."""
        return self._update(stats, params), stats["log_lik"] + self.log_prior(params)

    @property
    def default_method(self) -> str:
        """``"em"`` (Baum-Welch, maximum likelihood by default), except where it has no closed
        form: negative binomial counts and a fixed initial distribution (``"map"``)."""
        negbinomial = "negbinomial" in (self.emission_family, self.count_family)
        return "map" if negbinomial or self.initial != "learned" else "em"

    def em_restarts(self, x, mask, best, lengths=None) -> Iterator[Params]:
        """With few sequences the initial distribution ends in a corner (EM's update is the mean
        of the first steps' posteriors) that the starts decide: start from every corner, each
        time of the best estimate so far (``best()``)."""
        K = self.n_states
        if self.initial != "learned" or x.shape[0] >= 2 * K or "initial" in self.held:
            return
        for k in range(K):
            start = dict(best())
            start["initial"] = torch.full_like(start["initial"], 0.02 / K)
            start["initial"][k] += 0.98
            yield start

    def fit_defaults(self, method: str) -> dict[str, Any]:
        """Likelihood surfaces of HMMs have many local optima (geyser has several): MAP restarts
        8 times and EM 4 (k-means starts with different seeds and jitter), the best kept; EM's
        ``tol`` is in nats per observed time step. EM screens its starts: each runs
        ``screen_steps=10`` iterations (all of them in lockstep, :meth:`em_steps`) and only the
        best goes on to convergence (then the corner starts of :meth:`em_restarts` alike), by
        SQUAREM-accelerated EM
        (``accelerate=True``: same stopping rule, about half the EM steps; 50 x 1000 steps,
        K=4: 56 -> 28 steps of the winner, 2.9 -> 2.2 s CPU, ending 1 nat higher)."""
        em = {"n_init": 4, "tol": 1e-8, "screen_steps": _SCREEN_STEPS, "accelerate": True}
        return {"map": {"n_init": 8}, "em": em}.get(method, {})

    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        """k-means on the observed rows, then one M-step from jittered memberships.

        Memberships are the k-means labels mixed with 10% random ones, transitions the label
        transition counts mixed with 20% random rows: every seed starts elsewhere, and no
        emission probability starts at exactly 0 (a fixed point EM could not leave).
        """
        from ppgen.models._kmeans import kmeans

        K = self.n_states

        def noise(*shape: int) -> torch.Tensor:  # Dirichlet(1) rows from the generator
            u = torch.rand(shape, generator=generator, device=generator.device, dtype=x.dtype)
            e = -u.clamp_min(1e-12).log().to(x.device)
            return e / e.sum(-1, keepdim=True)

        seen = mask.any(-1)  # (S, T): steps with an observation
        rows, rmask = x[seen], mask[seen]
        labels = kmeans(rows * rmask, K, generator=generator)
        if self.held:
            labels = self._match_held(labels, seen, rows, rmask)
        onehot = torch.nn.functional.one_hot(labels, K).to(x.dtype)
        resp = 0.9 * onehot + 0.1 * noise(rows.shape[0], K)
        init_mask = rmask.clone()
        cont = list(self.schema.positions("continuous"))
        if cont and self.covariance_type == "full":
            # Zero-filled partial rows are good enough to start from.
            init_mask[:, cont] = rmask[:, cont].any(-1, keepdim=True)
        params = self.emission.init_step(rows, init_mask, resp)
        counts, starts = self._label_counts(labels, seen, x)
        trans = counts + 1.0
        trans = trans / trans.sum(-1, keepdim=True)
        params["transition"] = 0.8 * trans + 0.2 * noise(K, K)
        if self.initial == "learned":
            init = starts + 1.0
            params["initial"] = 0.2 * init / init.sum() + 0.8 * noise(K)
        params.update(self.held)
        return params

    def _match_held(
        self, labels: torch.Tensor, seen: torch.Tensor, rows: torch.Tensor, rmask: torch.Tensor
    ) -> torch.Tensor:
        """k-means ``labels`` of the observed steps ``seen`` (S, T), rows ``rows``, renamed to
        the states of the held sites (:meth:`hold`): the renaming under which the label paths
        and their rows are most probable under the held chain and emission parts (impossible
        moves cost 1e-6 each, so noisy labels still rank). Held values name the states, and an
        arbitrary naming can start EM far from the optimum (e.g. a left-to-right chain starting
        in the last cluster). A held chain tries every renaming up to 6 states (beyond, only
        the emissions are matched); held emissions alone, a linear assignment."""
        K = self.n_states
        emission = self.emission.label_scores(rows, rmask, labels, self.held).double()
        init, trans = self.held.get("initial"), self.held.get("transition")
        if (init is None and trans is None) or K > 6:
            return labels if not bool(emission.any()) else relabel_by_score(labels, emission)
        counts, starts = self._label_counts(labels, seen, emission)
        best, best_score = None, -math.inf
        ks = torch.arange(K, device=labels.device)
        for perm in itertools.permutations(range(K)):
            p = torch.tensor(perm, device=labels.device)
            score = float(emission[ks, p].sum())
            if trans is not None:
                score += float((counts * (trans[p][:, p].to(counts.dtype) + 1e-6).log()).sum())
            if init is not None:
                score += float((starts * (init[p].to(counts.dtype) + 1e-6).log()).sum())
            if score > best_score:
                best, best_score = p, score
        return best[labels]

    def _label_counts(
        self, labels: torch.Tensor, seen: torch.Tensor, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Label transitions between consecutive observed steps (K, K) and first labels (K,)
        of the label paths (``labels`` of the steps ``seen`` (S, T)), as ``like``'s dtype."""
        K = self.n_states
        full = torch.full(seen.shape, -1, dtype=torch.long, device=labels.device)
        full[seen] = labels
        a, b = full[:, :-1], full[:, 1:]
        both = (a >= 0) & (b >= 0)
        counts = like.new_zeros(K, K)
        counts.index_put_((a[both], b[both]), like.new_ones(int(both.sum())), accumulate=True)
        first = full[:, 0]
        return counts, torch.bincount(first[first >= 0], minlength=K).to(like.dtype)

    # -- simulation and prediction ---------------------------------------------------------------
    def sample_states(self, n: int, n_steps: int, params: Params) -> torch.Tensor:
        """State paths (n, n_steps) of the chain (uses torch's global RNG)."""
        z = dist.Categorical(self.initial_probs(params)).sample((n,))
        path = [z]
        for _ in range(1, n_steps):
            z = dist.Categorical(params["transition"][z]).sample()
            path.append(z)
        return torch.stack(path, dim=1)

    def sample(self, n: int, params: Params, n_steps: int = 100) -> torch.Tensor:
        """Draw ``n`` sequences of ``n_steps`` rows on the encoded scale, (n, n_steps, p)."""
        return self.emission.sample(self.sample_states(n, n_steps, params), params)

    def impute(self, x, mask, params, lengths=None) -> torch.Tensor:
        """One joint draw of the missing entries given each sequence's observed ones."""
        states = self.sample_states_posterior(x, mask, params, lengths)
        return self.emission.impute(x, mask, states, params)

    def forecast_states(self, x, mask, params, lengths, horizon: int) -> torch.Tensor:
        """p(z_{T_s + h} = k | x_s) for h = 1..horizon, (S, horizon, K)."""
        prob = self.filter(x, mask, params, lengths)[:, -1]
        out = []
        for _ in range(int(horizon)):
            prob = prob @ params["transition"]
            out.append(prob)
        return torch.stack(out, dim=1)

    def relabel(self, params: Params, perm: torch.Tensor) -> Params:
        """The same model with states renamed: new state ``i`` is old state ``perm[i]``."""
        out = dict(params)
        if "initial" in params:
            out["initial"] = params["initial"][perm]
        out["transition"] = params["transition"][perm][:, perm]
        out.update(self.emission.permute(params, perm))
        return out

    def ordering(self, params: Params) -> torch.Tensor | None:
        """The permutation that sorts states by their mean of ``order_by``, or None."""
        if self.order_by is None or self.held:  # held values name the states already
            return None
        j = self.schema.names.index(self.order_by)
        return torch.argsort(self.emission.means(params)[:, j])

    def n_parameters(self) -> int:
        K = self.n_states
        chain = K * (K - 1) + (K - 1 if self.initial == "learned" else 0)
        return chain + self.emission.n_parameters()

    def describe_coords(self, schema: Schema) -> dict[str, tuple[tuple, ...]]:
        """States by number, columns by name: ``transition[0, 1]``, ``means[1, waiting]``."""
        states = tuple(range(self.n_states))
        coords = {"initial": (states,), "transition": (states, states)}
        coords.update(self.emission.describe_coords(states))
        return coords

    def describe(self, params: Params, schema: Schema) -> Params:
        """Initial and transition probabilities, emission parameters on the data's scale."""
        out = {"initial": self.initial_probs(params), "transition": params["transition"]}
        out.update(self.emission.describe(params))
        return out
