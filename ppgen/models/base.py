"""The contract every ppgen model follows."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from pyro.nn import PyroModule
from torch.distributions import constraints

from ppgen.data.schema import Schema

__all__ = ["GenerativeModel"]

Params = dict[str, torch.Tensor]


class GenerativeModel(PyroModule):
    """A generative model written as a Pyro model/guide pair.

    Subclasses set their hyperparameters in ``__init__`` and learn the data's shape in
    :meth:`build`. They never loop over data or touch optimizers: :func:`ppgen.fit` does that.

    The Pyro programs follow one signature, ``program(x, mask=None, subsample_size=None)``:

    * :meth:`model` -- the full generative story; the observed site is always ``"x"``; global
      latent sites are named in :attr:`global_sites`.
    * :meth:`guide` -- a guide for the *local* latents (nothing for models whose local latents are
      discrete and enumerated); :func:`ppgen.fit` adds an autoguide for the globals.
    * :meth:`collapsed` -- the same model with local latents integrated out in closed form, when
      that is possible (PPCA); fitting uses it when present because its likelihood is exact.

    Missing entries (``mask`` False) are masked inside the likelihood, never filled in.
    Priors are stated on the encoded scale: continuous columns standardized by the data layer.

    This class declares every hook generic code calls. Required: :meth:`config`, :meth:`build`,
    :meth:`model`, :meth:`init_params`, :meth:`sample`, :meth:`n_parameters` (and
    :meth:`log_prob` where the likelihood is tractable). Optional hooks raise
    ``NotImplementedError`` here; generic code asks ``type(model).implements(name)`` before
    calling them, and an engine's ``accepts`` reads them (implementing :meth:`em_step` makes
    ``method="em"`` available). How :func:`ppgen.fit` treats the model: :attr:`layout`,
    :attr:`default_method`, :meth:`fit_defaults`, :attr:`sequential`, :attr:`amortized`.
    """

    #: Names of the global latent sample sites, in the order :meth:`summary` reports them.
    global_sites: ClassVar[tuple[str, ...]] = ()
    #: Column kinds the model can fit.
    supported_kinds: ClassVar[tuple[str, ...]] = ("continuous",)
    #: Other models to suggest when the table holds unsupported kinds.
    kinds_hint: ClassVar[str] = ""
    #: Largest number of nested plates, for enumeration and NUTS.
    max_plate_nesting: ClassVar[int] = 1
    #: Whether the model has discrete sites to sum out (fitted with TraceEnum_ELBO).
    enumerated: ClassVar[bool] = False
    #: Whether rows are sequences (HMM): :func:`ppgen.fit` then uses the ``"sequences"`` layout
    #: and returns a :class:`~ppgen.infer.sequences.SequenceFit`; evaluate, plot and the CLI
    #: read it too.
    sequential: ClassVar[bool] = False
    #: Whether the model is a deep model whose networks are trained (VAE): it has no global
    #: sites, and ``method="svi"`` trains the networks by minibatch SVI.
    amortized: ClassVar[bool] = False
    #: Whether the model's Pyro program carries an unnormalized density (energy-based models:
    #: RBM, EBM; the partition function is unknown): engines that maximize or sample the
    #: program's density (MAP, SVI, NUTS) refuse it, and contrastive divergence fits it.
    unnormalized: ClassVar[bool] = False
    #: Whether the model is implicit: it generates rows but states no density of them (GAN);
    #: it is trained by its own engine (adversarial), never by maximizing its Pyro program.
    implicit: ClassVar[bool] = False

    # -- how ppgen.fit treats the model (read by ppgen.infer) ----------------------------------
    #: Whether :func:`ppgen.fit` standardizes continuous columns by default (its
    #: ``standardize=None``); PPCA models the data as given.
    standardize: bool = True

    @property
    def default_method(self) -> str:
        """The method :func:`ppgen.fit` uses when none is given: ``"svi"`` for amortized models,
        ``"em"`` for models with a closed-form EM (:meth:`em_step`; maximum likelihood for the
        default ``prior=None`` of GaussianMixture, PPCA and HMM, as scikit-learn and hmmlearn
        fit), else ``"map"``. Override where EM does not apply to a configuration."""
        if self.amortized:
            return "svi"
        return "em" if type(self).implements("em_step") else "map"

    @property
    def layout(self) -> str:
        """The data layout :func:`ppgen.fit` encodes with, a name registered in
        :mod:`ppgen.infer.layouts`: ``"sequences"`` for sequential models, else ``"rows"``."""
        return "sequences" if self.sequential else "rows"

    def fit_defaults(self, method: str) -> dict[str, Any]:
        """Option defaults of ``method`` for this model, applied by :func:`ppgen.fit` under the
        user's options (e.g. more restarts where the likelihood has many optima)."""
        return {}

    def forced_kinds(self, names: tuple[str, ...]) -> dict[str, str]:
        """Column kinds the model imposes on a table with these columns, used by the sequences
        layout's schema inference; none by default."""
        return {}

    def __init__(self) -> None:
        super().__init__()
        self.dim: int | None = None

    # -- construction -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Hyperparameters as JSON types: ``type(self)(**self.config())`` rebuilds the model."""
        raise NotImplementedError

    def build(self, schema: Schema) -> GenerativeModel:
        """Fix the data's shape. Called by :func:`ppgen.fit` on its own copy of the model."""
        schema.require(*self.supported_kinds, model=type(self).__name__, hint=self.kinds_hint)
        self.dim = len(schema)
        return self

    @classmethod
    def implements(cls, hook: str) -> bool:
        """Whether this model class provides ``hook`` (overrides the base's declaration, or has
        it at all). Generic code asks this instead of ``hasattr``, because the base class
        declares every hook with a ``NotImplementedError`` default."""
        own = getattr(cls, hook, None)
        if own is None:
            return False
        return own is not getattr(GenerativeModel, hook, None)

    def label(self) -> str:
        """A short human label, e.g. ``GaussianMixture(3, full)``: the first constructor
        arguments of :meth:`config` that differ from nothing. Used by the CLI, plots and reprs;
        override for a better one."""
        config = self.config()
        shown = [str(v) for v in list(config.values())[: self.label_arguments]]
        return f"{type(self).__name__}({', '.join(shown)})"

    #: How many leading :meth:`config` values :meth:`label` shows.
    label_arguments: ClassVar[int] = 1

    def __repr__(self) -> str:
        # PyroModule's repr is ``GaussianMixture()``: show the constructor arguments that
        # differ from their defaults (and those without one), as the model would be rebuilt.
        try:
            config = self.config()
        except NotImplementedError:
            return f"{type(self).__name__}()"
        defaults = {
            name: p.default
            for name, p in inspect.signature(type(self)).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

        def same(value: Any, default: Any) -> bool:
            as_list = (list, tuple)
            if isinstance(value, as_list) and isinstance(default, as_list):
                return list(value) == list(default)
            if default is None and isinstance(value, (dict, list)):  # None stands for empty
                return not value
            return value is default or (type(value) is type(default) and value == default)

        shown = [
            f"{name}={value!r}"
            for name, value in config.items()
            if name not in defaults or not same(value, defaults[name])
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def _check_built(self) -> int:
        if self.dim is None:
            raise RuntimeError(f"{type(self).__name__} has not been built; fit it with ppgen.fit")
        return self.dim

    # -- Pyro programs ------------------------------------------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        raise NotImplementedError

    def guide(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        """Guide for local latents; the default has none (discrete latents are enumerated)."""

    collapsed = None  # set to a method when local latents can be integrated out exactly

    # -- closed forms, given global parameter values -------------------------------------------
    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        """Starting values for the global sites, from the data."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """Exact log density of each row's observed entries on the encoded scale, shape (n,)."""
        if self.unnormalized:
            raise NotImplementedError(
                f"{type(self).__name__} is an energy-based model whose partition function is "
                "intractable: estimate log p with ppgen.evaluate.ais(fit, data)"
            )
        if self.implicit:
            raise NotImplementedError(
                f"{type(self).__name__} is an implicit model with no likelihood: estimate log p "
                "under a Gaussian noise model with ppgen.evaluate.decoder_ais(fit, data), or "
                "judge its samples with ppgen.evaluate (c2st, mmd, prdc, quality)"
            )
        raise NotImplementedError(
            f"{type(self).__name__} has no tractable likelihood; estimate it with "
            "ppgen.evaluate (elbo, iwae, ais)"
        )

    def fitted(self, params: Params) -> None:
        """Called by :func:`ppgen.fit` with the point estimate; models whose local posterior is
        known in closed form set their guide to it here (so ELBO and IWAE are exact)."""

    def sample(self, n: int, params: Params) -> torch.Tensor:
        """Draw ``n`` rows on the encoded scale (uses torch's global RNG; seed it first)."""
        raise NotImplementedError

    def log_prior(self, params: Params) -> torch.Tensor:
        """Log prior density of the global parameter values (the MAP objective's prior term);
        models with closed-form EM monitor it in :meth:`em_step`."""
        raise NotImplementedError

    def check_data(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        """Refuse training data this model cannot fit (a ``ValueError`` naming the columns),
        before any engine runs; called by every layout. The default accepts everything."""

    # -- optional hooks: generic code asks ``type(model).implements(name)`` first --------------
    def em_step(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params, **data: Any
    ) -> tuple[Params, torch.Tensor]:
        """One EM iteration from ``params``: the updated parameters and the MAP objective (log
        joint) at ``params``. Called by the EM engine (:mod:`ppgen.infer.engines.em`), which
        accepts exactly the models implementing it; ``data`` holds the layout's further
        arguments (``lengths`` for sequences)."""
        raise NotImplementedError

    def em_statistics(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params, **data: Any
    ) -> dict[str, torch.Tensor]:
        """The E-step at ``params`` as a dict of tensors that are sums over the rows (or
        sequences), the log-likelihood ``"log_lik"`` among them: those of disjoint sets of
        rows add up to those of their union. With :meth:`em_update`, it lets the EM engine
        sum the statistics over row chunks (streamed tables) and over processes
        (``torch.distributed``) before the M-step; ``em_step`` is their composition."""
        raise NotImplementedError

    def em_update(
        self, stats: dict[str, torch.Tensor], params: Params
    ) -> tuple[Params, torch.Tensor]:
        """The M-step from :meth:`em_statistics` summed over all rows, and the objective (log
        joint: ``stats["log_lik"]`` plus the log prior, added once) at ``params``."""
        raise NotImplementedError

    def em_restarts(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        best: Callable[[], Params],
        **data: Any,
    ) -> Iterable[Params]:
        """Further EM starting points, tried by the EM engine after its ``n_init`` restarts.
        Iterated lazily: ``best()`` is the best estimate so far when each start is made (a
        generator sees the improvements of the starts before it). None by default."""
        return ()

    def ordering(self, params: Params) -> torch.Tensor | None:
        """The permutation that puts the labels of ``params`` in canonical order (or None):
        layouts relabel the estimate and every draw with :meth:`relabel` (label switching)."""
        raise NotImplementedError

    def relabel(self, params: Params, perm: torch.Tensor) -> Params:
        """``params`` with labels permuted: new label ``i`` is old label ``perm[i]``."""
        raise NotImplementedError

    def predict_proba(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> torch.Tensor:
        """Membership probabilities per row and component (mixtures); ``Fit.predict_proba``."""
        raise NotImplementedError

    def posterior(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and covariance (or scale) of each row's continuous latents given its observed
        entries; ``Fit.transform``, ``Fit.reconstruct``, ``ppgen.plot.latent``."""
        raise NotImplementedError

    def impute(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """``x`` with its missing entries drawn from their conditional given the observed
        ones (encoded scale); ``Fit.impute`` and :mod:`ppgen.impute`."""
        raise NotImplementedError

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder outputs for latent values ``z`` (amortized models); ``Fit.decode``."""
        raise NotImplementedError

    def decode_sample(self, params: Params, z: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Encoded rows ``(S..., N, d)`` drawn from the noise model of ``decode_log_likelihood``
        given latents ``z`` ``(S..., N, n_latent)`` (torch's global RNG); the rows BDMC
        simulates (:func:`ppgen.evaluate.decoder_bdmc`)."""
        raise NotImplementedError

    def interpolate(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params, n: int
    ) -> torch.Tensor:
        """``n`` rows decoded along the latent segment between two rows (amortized models);
        ``Fit.interpolate``."""
        raise NotImplementedError

    def elbo_rows(
        self, x: torch.Tensor, mask: torch.Tensor | None, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """One-particle ELBO of each row without tracing the Pyro programs (amortized models);
        the minibatch engine's ``elbo="direct"``."""
        raise NotImplementedError

    def iwae_rows(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """Importance-weighted bound of each row with ``k`` particles (amortized models); the
        minibatch engine's ``objective="iwae"``."""
        raise NotImplementedError

    def viterbi(self, x, mask, params, lengths=None) -> torch.Tensor:
        """Most probable state path of each sequence (sequential models); ``SequenceFit.predict``
        and ``ppgen.plot.states``."""
        raise NotImplementedError

    def smooth(self, x, mask, params, lengths=None) -> torch.Tensor:
        """Smoothed state probabilities per step (sequential models);
        ``SequenceFit.predict_proba``."""
        raise NotImplementedError

    # -- energy-based models (``unnormalized``): contrastive divergence and AIS of log Z -------
    def free_energy(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> torch.Tensor:
        """Free energy ``F(x) = -log p*(x)`` of each row's observed entries (missing ones
        summed out), shape (n,): ``p(x) = exp(-F(x)) / Z``. The CD engine
        (:mod:`ppgen.infer.engines.cd`) and :func:`ppgen.evaluate.ais` call it."""
        raise NotImplementedError

    def chain_init(self, n: int, x: torch.Tensor, params: Params) -> torch.Tensor:
        """``n`` fresh starting states of the model's own MCMC sampler (CD's negative chains),
        given training rows ``x``."""
        raise NotImplementedError

    def chain_step(self, v: torch.Tensor, params: Params, n_steps: int) -> torch.Tensor:
        """``v`` after ``n_steps`` transitions of the model's sampler at ``params`` (block
        Gibbs for RBMs, Langevin dynamics for EBMs); the CD engine's negative phase."""
        raise NotImplementedError

    def annealer(self, x: torch.Tensor, mask: torch.Tensor, params: Params) -> Any:
        """The annealing path from a tractable base fitted to rows ``x`` to the model, for
        AIS of log Z (:mod:`ppgen.evaluate.partition`)."""
        raise NotImplementedError

    def decode_log_likelihood(
        self,
        params: Params,
        z: torch.Tensor,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        sigma: float | torch.Tensor,
    ) -> torch.Tensor:
        """``log p(x_obs | z)`` of each row under a noise model around a decoder's output, shape
        ``(S..., N)`` for ``z`` of shape ``(S..., N, n_latent)`` with a standard Normal prior
        (``mask`` True = observed; ``sigma`` a float or per-column tensor on the encoded scale):
        continuous columns Normal around the output, labels Categorical with the decoder's
        probabilities. :func:`ppgen.evaluate.decoder_ais` anneals over ``z`` with it (Wu et al.
        2017); implemented by decoder models without a likelihood (GAN)."""
        raise NotImplementedError

    def n_parameters(self) -> int:
        """Number of free parameters, as used by BIC/AIC."""
        raise NotImplementedError

    def n_held_parameters(self, sites: Iterable[str], params: Params) -> int:
        """How many of :meth:`n_parameters` the global ``sites`` hold, so that BIC and AIC of
        a fit with ``fixed=`` count only what was estimated: each site's entries, less one per
        row constrained to the simplex (mixing weights, transition rows), read from the support
        of the site's prior (models that can hold sites define ``priors``)."""
        sites = tuple(sites)
        if not sites:
            return 0
        priors = self.priors(next(iter(params.values())))  # type: ignore[attr-defined]
        n = 0
        for site in sites:
            value, support = params[site], priors[site].support
            while isinstance(support, constraints.independent):
                support = support.base_constraint
            n += value.numel()
            if support is constraints.simplex:
                n -= value.numel() // value.shape[-1]
        return n

    def describe(self, params: Params, schema: Schema) -> Params:
        """Parameters as a statistician reads them (on the data's scale where the model allows)."""
        return dict(params)

    def describe_coords(self, schema: Schema) -> dict[str, tuple[tuple, ...]]:
        """Labels of each axis of :meth:`describe`'s arrays (e.g. column names), by name."""
        return {}


def constant_columns(x: torch.Tensor, mask: torch.Tensor, names: Iterable[str]) -> list[str]:
    """Names of the encoded columns whose observed values are all equal (or all missing): a
    density on such a column is unbounded, so models without a floor refuse them."""
    big = torch.finfo(x.dtype).max
    low = torch.where(mask, x, torch.full_like(x, big)).amin(0)
    high = torch.where(mask, x, torch.full_like(x, -big)).amax(0)
    return [name for name, flat in zip(names, (low >= high).tolist(), strict=True) if flat]


def refuse_constant_continuous(
    model: GenerativeModel,
    x: torch.Tensor,
    mask: torch.Tensor,
    kinds: tuple[str, ...],
    names: tuple[str, ...],
) -> None:
    """The :meth:`GenerativeModel.check_data` of exact densities without a variance floor:
    a continuous column that is constant has an unbounded density, so it is refused by name."""
    continuous = [j for j, kind in enumerate(kinds) if kind == "continuous"]
    picked = [names[j] for j in continuous]
    flat = constant_columns(x[:, continuous], mask[:, continuous], picked)
    if flat:
        raise ValueError(
            f"columns {flat} are constant (or missing) in the training data; a density on a "
            f"constant column is unbounded, so {type(model).__name__} cannot fit it: drop them"
        )
