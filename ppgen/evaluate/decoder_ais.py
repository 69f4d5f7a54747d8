"""Log-likelihood of decoder-based (implicit) generative models by AIS (Wu et al. 2017).

A GAN generator, or any decoder ``g`` from a latent ``z`` to a row, defines no density by
itself. Wu, Burda, Salakhutdinov & Grosse (2017) give it one by adding an observation noise
model and then estimate the log-likelihood with annealed importance sampling::

    z ~ Normal(0, I_k)                          # the generator's own prior
    x | z ~ Normal(g(z), sigma^2 I)             # continuous columns (encoded scale)
    x_j | z ~ Categorical(softmax head of g(z)) # categorical / binary columns (the model's hook)

For each row AIS anneals many chains from the prior ``p(z)`` to the posterior
``p(z | x) ∝ p(z) p(x | z)`` along the geometric path, with Hamiltonian Monte Carlo
transitions; the log of the mean final weight is a stochastic lower bound of ``log p(x)``
(unbiased for ``p(x)``). The annealing machinery (tuning of the step sizes, the adaptive
schedule of equal thermodynamic length, chunking, weights, the reverse pass of BDMC) is
:mod:`ppgen.evaluate.ais`'s, run on the decoder's densities instead of a Pyro program.

The figure depends on sigma, which the decoder does not define. Wu et al. choose it by
maximizing the AIS estimate on a validation set (``sigma="validate"``: a geometric grid scaled
to the data's spread, refined by a parabola in log sigma around the best point); or pass a
float or a per-column tensor. Every result carries a ``method`` label saying what the number
is, e.g. ``"AIS T=1000, Gaussian noise sigma=0.12 (validation)"``.

Bidirectional Monte Carlo (Grosse et al. 2015) checks the estimator on rows simulated from the
model itself: forward AIS gives a stochastic lower bound, reverse AIS started at the exact
latents that generated each row gives a stochastic upper bound; their gap bounds the error of
either on data like the model's own (:func:`decoder_bdmc`, or ``bdmc=True``).

Two kinds of decoder are accepted:

* a :class:`ppgen.Fit` whose model implements the hook
  ``decode_log_likelihood(params, z, x, mask, sigma) -> (S..., N)`` (``log p(x_obs | z)`` under
  its noise model, ``z`` of shape ``(S..., N, n_latent)``, ``mask`` True = observed, sigma on
  the encoded scale); rows are encoded by ``fit.encode`` and estimates are put back on the
  data's original scale by the encoding's log-Jacobian, as :meth:`ppgen.Fit.log_prob` does.
  BDMC also needs ``decode_sample(params, z, sigma) -> (S..., N, d)``, a draw of encoded rows
  from that noise model.
* a plain callable ``decoder(z) -> mean`` of continuous rows, with ``n_latent``: Gaussian noise
  on every column, on the data's own scale.

References
----------
Wu, Y., Burda, Y., Salakhutdinov, R. & Grosse, R. (2017). On the quantitative analysis of
decoder-based generative models. *ICLR*.
Neal, R. M. (2001). Annealed importance sampling. *Statistics and Computing* 11, 125-139.
Grosse, R. B., Ghahramani, Z. & Adams, R. P. (2015). Sandwiching the marginal likelihood using
bidirectional Monte Carlo. arXiv:1511.02543.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.distributions.transforms import identity_transform

from ppgen.evaluate import estimate
from ppgen.evaluate.ais import (
    DEFAULT_LEAPFROG,
    AISResult,
    AnnealingRun,
    BDMCResult,
    LatentSite,
    default_tune,
    schedule_spec,
)
from ppgen.evaluate.estimate import frozen
from ppgen.infer import distributed as dist
from ppgen.infer.result import Fit

__all__ = ["DecoderAISResult", "DecoderBDMCResult", "SigmaSelection", "decoder_ais", "decoder_bdmc"]

#: The validation grid of sigma, in units of the rows' pooled standard deviation: from 1% of
#: the spread (a near-perfect decoder) to twice the spread (beyond a decoder that explains
#: nothing), equal steps in log sigma (ratio 1.8), then refined around the best point.
DEFAULT_GRID = tuple(np.geomspace(0.01, 2.0, 10))
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# -- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SigmaSelection:
    """How sigma was chosen: the AIS estimate on the validation rows at each sigma tried.

    Attributes
    ----------
    sigmas, scores : ndarray
        The sigmas tried (the grid, then the refined point) and the mean validation AIS
        estimate (nats/row) at each.
    best : float
        The sigma with the best score.
    n_rows, n_steps, n_chains : int
        Validation rows, annealing steps and chains per row of the validation runs.
    source : str
        What the validation rows were (``"validation"``, or ``"the evaluated rows"`` when no
        separate validation rows were given).
    at_edge : bool
        The best sigma is the grid's smallest or largest: widen ``sigma_grid``.
    """

    sigmas: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    best: float
    n_rows: int
    n_steps: int
    n_chains: int
    source: str
    at_edge: bool


@dataclass(frozen=True)
class DecoderBDMCResult(BDMCResult):
    """BDMC of a decoder model on rows simulated from it (see :class:`~ppgen.evaluate.BDMCResult`:
    ``lower``, ``upper``, ``gap`` in nats/row, ``exact`` (None: a decoder with noise has no
    closed form), ``data`` the simulated rows).

    Attributes
    ----------
    sigma : float or ndarray
        The noise scale the rows were simulated and scored with.
    method : str
        What the figures are, e.g. ``"BDMC T=1000, Gaussian noise sigma=0.12 (given), 100
        simulated rows"``.
    """

    sigma: Any = None
    method: str = ""


@dataclass(frozen=True, repr=False)
class DecoderAISResult(AISResult):
    """AIS estimate of each row's log-likelihood under a decoder with a noise model.

    Everything of :class:`~ppgen.evaluate.AISResult` (``per_row``, ``mean`` nats/row, ``se``
    over rows, ``mc_se`` the Monte-Carlo standard error of ``mean``, ``per_row_mc_se``, ``ess``,
    ``acceptance``, ``step_size``, ``n_steps``, ``n_chains``), and:

    Attributes
    ----------
    sigma : float or ndarray
        The observation noise scale used (encoded scale for a fit; data scale for a callable).
    method : str
        What the figure is, e.g. ``"AIS T=1000, Gaussian noise sigma=0.12 (validation)"``.
    selection : SigmaSelection or None
        The validation of sigma (None when sigma was given).
    bdmc : DecoderBDMCResult or None
        With ``bdmc=True``: the bounds on rows simulated from the model at this sigma.
    """

    sigma: Any = None
    method: str = ""
    selection: SigmaSelection | None = None
    bdmc: DecoderBDMCResult | None = None

    def __str__(self) -> str:
        return f"{self.method}: {super().__str__()}"


# -- the decoder as an annealing target ------------------------------------------------------------
class _Target:
    """What AIS needs of a decoder: its latent size, rows in its encoding, ``log p(x | z)``."""

    n_latent: int
    device: torch.device
    dtype: torch.dtype
    #: Positions of the columns sigma applies to (continuous ones).
    continuous: tuple[int, ...]
    #: The network that computes ``log p(x | z)``, if any (put in eval mode while annealing).
    module: torch.nn.Module | None = None

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """The decoder in eval mode (batch norm, dropout: every row's density must not depend
        on the batch or on chance), restored afterwards."""
        module = self.module
        if module is None or not module.training:
            yield
            return
        module.eval()
        try:
            yield
        finally:
            module.train(True)

    def encode(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def log_likelihood(self, z, x, mask, sigma) -> torch.Tensor:
        raise NotImplementedError

    def jacobian(self, x: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        return np.zeros(x.shape[0])

    def simulate(self, n: int, sigma: Any) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, x: torch.Tensor) -> Any:
        return x.cpu().numpy()

    def sigma_tensor(self, sigma: Any) -> float | torch.Tensor:
        """A given sigma checked: a positive float, or one positive value per column."""
        if isinstance(sigma, (int, float, np.floating, np.integer)) and not isinstance(sigma, bool):
            if not (math.isfinite(sigma) and sigma > 0):
                raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
            return float(sigma)
        try:
            values = torch.as_tensor(np.asarray(sigma, dtype=float))
        except (TypeError, ValueError):
            raise ValueError(
                f"sigma must be 'validate', a positive float or one value per column, got {sigma!r}"
            ) from None
        if values.ndim != 1 or not bool(torch.all(torch.isfinite(values) & (values > 0))):
            raise ValueError(
                f"a per-column sigma must be a 1-D array of positive values, got {sigma!r}"
            )
        return values.to(device=self.device, dtype=self.dtype)


class _FitTarget(_Target):
    """A fitted model with the ``decode_log_likelihood`` hook."""

    def __init__(self, fit: Any, n_latent: int | None) -> None:
        model = fit.model
        if not type(model).implements("decode_log_likelihood"):
            raise ValueError(
                f"{type(model).__name__} does not implement decode_log_likelihood(params, z, x, "
                "mask, sigma): decoder_ais needs it (or pass a callable decoder(z) and n_latent)"
            )
        if n_latent is None:
            n_latent = getattr(model, "n_latent", None)
            if n_latent is None:
                raise ValueError(f"pass n_latent: {type(model).__name__} has no n_latent")
        self.fit = fit
        self.model = self.module = model
        self.params = dict(fit.params)
        self.n_latent = estimate.check_count(n_latent, "n_latent")
        self.device, self.dtype = fit.device, fit.dtype
        self.continuous = fit.schema.positions("continuous")

    def encode(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        enc = estimate.encode_rows(self.fit, data)
        return enc.x, enc.mask

    def log_likelihood(self, z, x, mask, sigma) -> torch.Tensor:
        return self.model.decode_log_likelihood(self.params, z, x, mask, sigma)

    def jacobian(self, x: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        return estimate.jacobian(self.fit, x, mask)

    def simulate(self, n: int, sigma: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not type(self.model).implements("decode_sample"):
            raise ValueError(
                f"{type(self.model).__name__} does not implement decode_sample(params, z, "
                "sigma): BDMC needs rows simulated from the decoder's noise model"
            )
        z = torch.randn(n, self.n_latent, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            x = self.model.decode_sample(self.params, z, sigma)
        return x.detach(), z

    def decode(self, x: torch.Tensor) -> Any:
        return self.fit.schema.decode(x)


class _CallableTarget(_Target):
    """A plain ``decoder(z) -> mean`` with Gaussian noise on every column."""

    def __init__(self, decoder: Callable, n_latent: int | None) -> None:
        if n_latent is None:
            raise ValueError("a callable decoder needs n_latent (the size of z)")
        self.decoder = decoder
        self.module = decoder if isinstance(decoder, torch.nn.Module) else None
        self.n_latent = estimate.check_count(n_latent, "n_latent")
        # The decoder's own parameters say where and in what precision it computes; a plain
        # function gets float64 (AIS sums thousands of small increments).
        first = (
            next(iter(decoder.parameters()), None) if isinstance(decoder, torch.nn.Module) else None
        )
        self.device = torch.device("cpu") if first is None else first.device
        self.dtype = torch.float64 if first is None else first.dtype
        self.continuous = ()

    def encode(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(data, pd.DataFrame):
            try:
                data = data.to_numpy(dtype=float)
            except (TypeError, ValueError):
                raise ValueError(
                    "a callable decoder takes numeric rows only; fit a model with the "
                    "decode_log_likelihood hook for mixed tables"
                ) from None
        x = torch.as_tensor(np.asarray(data, dtype=float) if not torch.is_tensor(data) else data)
        x = x.to(device=self.device, dtype=self.dtype)
        if x.ndim != 2 or x.shape[0] < 1:
            raise ValueError(f"data must be a 2-D table of rows, got shape {tuple(x.shape)}")
        mask = ~torch.isnan(x)
        self.continuous = tuple(range(x.shape[1]))
        return torch.where(mask, x, 0.0), mask

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """``decoder(z)`` for ``z`` (..., k): the decoder sees 2-D batches only."""
        out = self.decoder(z.reshape(-1, self.n_latent))
        return out.reshape(z.shape[:-1] + out.shape[-1:])

    def log_likelihood(self, z, x, mask, sigma) -> torch.Tensor:
        loc = self.mean(z)
        if loc.shape[-1] != x.shape[-1]:
            raise ValueError(
                f"the decoder returns {loc.shape[-1]} columns; the data have {x.shape[-1]}"
            )
        log_sigma = math.log(sigma) if isinstance(sigma, float) else sigma.log()
        r = (x - loc) / sigma
        lp = -0.5 * r * r - log_sigma - _HALF_LOG_2PI
        return torch.where(mask, lp, 0.0).sum(-1)

    def simulate(self, n: int, sigma: Any) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.n_latent, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            loc = self.mean(z)
        self.continuous = tuple(range(loc.shape[-1]))
        return (loc + sigma * torch.randn_like(loc)).detach(), z


class _DecoderRun(AnnealingRun):
    """:class:`~ppgen.evaluate.ais.AnnealingRun` over ``z ~ N(0, I)``, decoder likelihood."""

    def __init__(self, target, sigma, n_chains, n_leapfrog, n_tune, seed, progress) -> None:
        self.target = target
        self.sigma = sigma
        self._options("prior", n_chains, n_leapfrog, n_tune, seed, progress, target.device)

    def _discover(self, x, mask):
        # The one latent site, unconstrained already; its values are never read here.
        shape = (self.C, x.shape[0], self.target.n_latent)
        self.sites = [LatentSite("z", identity_transform, shape, self.target.n_latent)]
        return {"z": x.new_zeros(shape)}

    def _prior_draw(self, x, mask):
        return {
            "z": torch.randn(
                self.C, x.shape[0], self.target.n_latent, dtype=x.dtype, device=x.device
            )
        }

    def _densities(self, u, x, mask):
        log_prior = -0.5 * (u * u).sum(-1) - self.target.n_latent * _HALF_LOG_2PI
        return log_prior, self.target.log_likelihood(u, x, mask, self.sigma)

    def _jacobian(self, x, mask) -> np.ndarray:
        return self.target.jacobian(x, mask)

    def simulate(self, n):
        x, z = self.target.simulate(n, self.sigma)
        return x, {"z": z}


# -- public functions ------------------------------------------------------------------------------
def decoder_ais(
    model: Any,
    data: Any,
    *,
    n_latent: int | None = None,
    sigma: Any = "validate",
    validation: Any = None,
    sigma_grid: Any = None,
    validation_rows: int = 100,
    validation_steps: int | None = None,
    n_steps: int = 1000,
    n_chains: int = 16,
    schedule: str | np.ndarray = "adaptive",
    n_leapfrog: int = DEFAULT_LEAPFROG,
    n_tune: int | None = None,
    bdmc: bool = False,
    bdmc_rows: int = 100,
    seed: int = 0,
    progress: bool | None = None,
    validation_name: str = "validation",
    batch_size: int | None = None,
    distributed: bool | str = False,
) -> DecoderAISResult:
    """AIS estimate of each row's log-likelihood under a decoder plus a noise model.

    Parameters
    ----------
    model : ppgen.Fit or callable
        A fit whose model implements ``decode_log_likelihood`` (e.g. :class:`ppgen.GAN`), or a
        callable ``decoder(z) -> mean`` mapping ``(m, n_latent)`` latents to ``(m, d)`` rows
        (Gaussian noise on every column, on the data's scale).
    data : DataFrame, ndarray or Tensor
        Rows to evaluate (a fit's: in the form it was fitted on; missing entries allowed).
    n_latent : int, optional
        Size of z. Default for a fit: ``fit.model.n_latent``; required for a callable.
    sigma : "validate", float or array
        The observation noise scale: chosen on ``validation`` rows by the AIS estimate
        (Wu et al. 2017), or given: one float, or one value per column (a fit's encoded
        columns are standardized, so sigma is in units of each column's sd).
    validation : DataFrame, ndarray or Tensor, optional
        Rows to choose sigma on, not the evaluated ones. Without them sigma is chosen on up to
        ``validation_rows`` of the evaluated rows, and the label says so.
    sigma_grid : sequence of float, optional
        Candidate sigmas (absolute). Default :data:`DEFAULT_GRID` times the pooled standard
        deviation of the validation rows' continuous columns.
    validation_rows : int
        At most this many validation rows are used (a seeded random subset).
    validation_steps : int, optional
        Annealing steps of the validation runs; default ``min(n_steps, 200)``.
    n_steps, n_chains, schedule, n_leapfrog, n_tune :
        As in :func:`ppgen.evaluate.ais`: intermediate distributions T, chains per row, the
        inverse-temperature path, leapfrog steps per HMC transition, tuning transitions.
    bdmc : bool
        Also run :func:`decoder_bdmc` at the chosen sigma on ``bdmc_rows`` simulated rows
        (result in ``.bdmc``).
    seed : int
        Seeds every draw (the validation runs share it, so sigmas are compared on common
        random numbers).
    progress : bool, optional
        Progress bars (default: when stderr is a terminal).
    validation_name : str
        How the label names the validation rows (e.g. ``"validation: training rows"``).
    batch_size, distributed :
        As in :func:`ppgen.evaluate.ais`: the evaluated rows shared among the ranks of a
        ``torchrun`` launch in seeded blocks of ``batch_size`` rows, gathered in order (the
        same result for any number of ranks). The choice of sigma and the BDMC check run
        alike on every rank (the same seed: the same sigma everywhere).

    Returns
    -------
    DecoderAISResult
        Per-row estimates (nats, the data's original scale), mean, standard errors, the sigma
        used, its selection, and the ``method`` label.

    Examples
    --------
    >>> res = ppgen.evaluate.decoder_ais(gan_fit, test, validation=valid)  # doctest: +SKIP
    >>> res.method, res.mean, res.mc_se                                     # doctest: +SKIP
    ('AIS T=1000, Gaussian noise sigma=0.12 (validation)', -11.3, 0.02)
    """
    target = _target(model, n_latent)
    x, mask = target.encode(data)
    spec, T, options = _options(n_steps, n_chains, schedule, n_leapfrog, n_tune)
    selection = None
    if isinstance(sigma, str):
        if sigma != "validate":
            raise ValueError(f"sigma must be 'validate', a float or an array, got {sigma!r}")
        if not target.continuous:
            value = 1.0  # nothing continuous: sigma enters no term
            note = "no continuous column (sigma unused)"
        else:
            if validation is None:
                xv, mv, source = x, mask, "the evaluated rows"
            else:
                (xv, mv), source = target.encode(validation), validation_name
            selection = _select(
                target,
                xv,
                mv,
                sigma_grid,
                validation_rows,
                validation_steps,
                T,
                schedule,
                options,
                seed,
                progress,
                source,
            )
            value = selection.best
            note = f"Gaussian noise sigma={value:.3g} ({source})"
    else:
        if sigma_grid is not None or validation is not None:
            raise ValueError("sigma_grid and validation apply only to sigma='validate'")
        value, note = _given(target, sigma)
    ctx = dist.resolve(distributed, x.device)
    result = _forward(target, value, x, mask, spec, T, options, seed, progress, ctx, batch_size)
    method = f"AIS T={T}, {note}"
    out = DecoderAISResult(
        **{f.name: getattr(result, f.name) for f in fields(result)},
        sigma=_public_sigma(value),
        method=method,
        selection=selection,
    )
    if bdmc:
        checked = _bdmc(target, value, note, bdmc_rows, spec, T, options, seed, progress)
        out = dataclasses.replace(out, bdmc=checked)
    return out


def decoder_bdmc(
    model: Any,
    *,
    sigma: Any,
    n_latent: int | None = None,
    n_rows: int = 100,
    n_steps: int = 1000,
    n_chains: int = 16,
    schedule: str | np.ndarray = "adaptive",
    n_leapfrog: int = DEFAULT_LEAPFROG,
    n_tune: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> DecoderBDMCResult:
    """Bidirectional Monte Carlo for a decoder with Gaussian noise ``sigma``.

    ``n_rows`` latents ``z ~ N(0, I)`` and rows ``x ~ p(x | z)`` are simulated; forward AIS
    (prior -> posterior) gives a stochastic lower bound of each row's ``log p(x)``, reverse AIS
    started at the ``z`` that generated the row (an exact posterior draw) gives a stochastic
    upper bound. Their mean gap (nats/row) bounds the error of AIS at these settings on rows
    like the model's own. Parameters as in :func:`decoder_ais`; a fit's model must also
    implement ``decode_sample(params, z, sigma)``.
    """
    target = _target(model, n_latent)
    if isinstance(sigma, str):
        raise ValueError(
            "decoder_bdmc simulates from the model: give sigma (decoder_ais(..., bdmc=True) "
            "uses the validated one)"
        )
    value, note = _given(target, sigma)
    spec, T, options = _options(n_steps, n_chains, schedule, n_leapfrog, n_tune)
    return _bdmc(target, value, note, n_rows, spec, T, options, seed, progress)


# -- internals ------------------------------------------------------------------------------------
def _target(model: Any, n_latent: int | None) -> _Target:
    if isinstance(model, Fit):
        return _FitTarget(model, n_latent)
    if callable(model):
        return _CallableTarget(model, n_latent)
    raise ValueError(
        f"decoder_ais takes a ppgen.Fit or a callable decoder(z), got {type(model).__name__}"
    )


def _given(target: _Target, sigma: Any) -> tuple[float | torch.Tensor, str]:
    """A given sigma, checked, and how the label describes it."""
    value = target.sigma_tensor(sigma)
    if isinstance(value, float):
        return value, f"Gaussian noise sigma={value:.3g} (given)"
    return value, "Gaussian noise sigma per column (given)"


def _options(n_steps, n_chains, schedule, n_leapfrog, n_tune):
    n_steps = estimate.check_count(n_steps, "n_steps")
    spec, T = schedule_spec(schedule, n_steps)
    options = {
        "n_chains": estimate.check_count(n_chains, "n_chains"),
        "n_leapfrog": estimate.check_count(n_leapfrog, "n_leapfrog"),
        "n_tune": None if n_tune is None else estimate.check_count(n_tune, "n_tune"),
    }
    return spec, T, options


def _run(target, sigma, T, options, seed, progress) -> _DecoderRun:
    n_tune = options["n_tune"] or default_tune(T)
    return _DecoderRun(
        target, sigma, options["n_chains"], options["n_leapfrog"], n_tune, seed, progress
    )


def _forward(
    target, sigma, x, mask, spec, T, options, seed, progress, ctx=None, batch_size=None
) -> AISResult:
    run = _run(target, sigma, T, options, seed, progress)
    with run.scope(), target.evaluating():
        if ctx is not None:
            return run.sharded_forward(x, mask, spec, T, ctx, batch_size)
        return run.forward(x, mask, spec, T)


def _bdmc(target, sigma, note, n_rows, spec, T, options, seed, progress) -> DecoderBDMCResult:
    n_rows = estimate.check_count(n_rows, "n_rows")
    run = _run(target, sigma, T, options, seed, progress)
    # One random stream: the simulation, the forward and the reverse pass.
    with run.scope(), target.evaluating():
        x, latents = run.simulate(n_rows)
        mask = torch.ones_like(x, dtype=torch.bool)
        lower = run.forward(x, mask, spec, T)
        upper = run.reverse(x, mask, spec, T, latents)
    return DecoderBDMCResult(
        lower=lower,
        upper=upper,
        gap=float(upper.mean - lower.mean),
        exact=None,
        data=target.decode(x),
        sigma=_public_sigma(sigma),
        method=f"BDMC T={T}, {note}, {n_rows} simulated rows",
    )


def _select(
    target, x, mask, grid, max_rows, steps, T, schedule, options, seed, progress, source
) -> SigmaSelection:
    """Wu et al.'s protocol: the sigma with the best mean AIS estimate on validation rows."""
    max_rows = estimate.check_count(max_rows, "validation_rows")
    if x.shape[0] > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(x.shape[0], max_rows, replace=False))
        index = torch.as_tensor(pick, device=x.device)
        x, mask = x[index], mask[index]
    steps = min(T, 200) if steps is None else estimate.check_count(steps, "validation_steps")
    spec, steps = schedule_spec(schedule if isinstance(schedule, str) else "adaptive", steps)
    if grid is None:
        grid = np.asarray(DEFAULT_GRID) * _pooled_sd(x, mask, target.continuous)
    else:
        grid = np.sort(np.asarray(grid, dtype=float).ravel())
        if grid.size < 1 or not np.all(np.isfinite(grid) & (grid > 0)):
            raise ValueError(f"sigma_grid must hold positive finite values, got {grid!r}")

    def score(s: float) -> float:
        res = _forward(target, float(s), x, mask, spec, steps, options, seed, progress)
        return float(res.mean)

    sigmas = [float(s) for s in grid]
    scores = [score(s) for s in sigmas]
    best = int(np.nanargmax(scores)) if np.any(np.isfinite(scores)) else 0
    at_edge = len(sigmas) > 1 and best in (0, len(sigmas) - 1)
    if 0 < best < len(sigmas) - 1:
        # Vertex of the parabola through the best point and its neighbours, in log sigma.
        ls = np.log(sigmas[best - 1 : best + 2])
        a, b, _ = np.polyfit(ls, scores[best - 1 : best + 2], 2)
        if a < 0:
            vertex = float(np.exp(np.clip(-b / (2 * a), ls[0], ls[2])))
            sigmas.append(vertex)
            scores.append(score(vertex))
    if at_edge:
        warnings.warn(
            f"the best sigma ({sigmas[best]:.3g}) is at the edge of the grid "
            f"[{sigmas[0]:.3g}, {sigmas[len(grid) - 1]:.3g}]; pass a wider sigma_grid",
            stacklevel=3,
        )
    chosen = int(np.nanargmax(scores)) if np.any(np.isfinite(scores)) else 0
    return SigmaSelection(
        sigmas=frozen(sigmas),
        scores=frozen(scores),
        best=sigmas[chosen],
        n_rows=int(x.shape[0]),
        n_steps=steps,
        n_chains=options["n_chains"],
        source=source,
        at_edge=at_edge,
    )


def _pooled_sd(x: torch.Tensor, mask: torch.Tensor, columns: tuple[int, ...]) -> float:
    """Root mean variance of the observed entries of ``columns`` (1.0 when undefined)."""
    variances = []
    for j in columns:
        v = x[mask[:, j], j].double()
        if v.numel() > 1:
            variances.append(float(v.var()))
    sd = math.sqrt(np.mean(variances)) if variances else 1.0
    return sd if sd > 0 and math.isfinite(sd) else 1.0


def _public_sigma(sigma: float | torch.Tensor) -> float | np.ndarray:
    return sigma if isinstance(sigma, float) else frozen(sigma.cpu().numpy())
