"""Denoising diffusion model for tables of mixed column kinds, as a latent Markov chain.

The reverse chain is the Pyro model, the forward (noising) chain written in posterior order is
the parameter-free guide, so Pyro's ELBO of the pair is DDPM's variational bound; training uses
the unbiased random-t estimator of the same bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import constraints

from ppgen._utils import check_int, check_ints
from ppgen.data.schema import Schema
from ppgen.models._diffusion_schedule import LearnedLogSNR, variance_gradient
from ppgen.models.amortized import ACTIVATIONS, AmortizedModel, Heads, HeadsDistribution, mlp
from ppgen.models.base import GenerativeModel, Params

__all__ = ["SCHEDULES", "TIMES", "VARIANCES", "Diffusion", "schedule_alpha_bar"]

#: Noise schedules (the signal kept, alpha_bar_t, as t goes from 0 to T).
SCHEDULES = ("cosine", "linear", "loglinear")
#: Discrete time (a T-step chain) or VDM's continuous time (the chain's limit T -> infinity).
TIMES = ("discrete", "continuous")
#: Samplers of :meth:`Diffusion.sample`: the model's own ancestral chain, or DDIM.
SAMPLERS = ("ancestral", "ddim")
#: Default range (min, max) of log SNR of the "loglinear" schedule: the prior's end and the
#: decoder's (Kingma et al. 2021's gamma in [-13.3, 5], with a decoder noise suited to
#: standardized columns rather than 8-bit pixels).
LOG_SNR_RANGE = (-6.0, 10.0)
#: Variances of the reverse kernels: DDPM's two fixed choices, or iDDPM's learned interpolation.
VARIANCES = ("posterior", "beta", "learned")
#: How the training estimator picks its step t (see :class:`Diffusion`'s ``t_sampling``).
T_SAMPLINGS = ("uniform", "importance")
#: Loss values kept per step before importance sampling of t starts (iDDPM's 10).
_HISTORY = 10
#: Networks that map (y_t, t) to the heads' outputs.
NETWORKS = ("mlp",)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_EMPTY = torch.Size()


def schedule_alpha_bar(
    name: str, n_steps: int, log_snr_range: tuple[float, float] = LOG_SNR_RANGE
) -> torch.Tensor:
    """``alpha_bar_t`` for ``t = 0..T`` in float64 (``alpha_bar_0 = 1``).

    ``"cosine"``: Nichol & Dhariwal (2021), ``f(t) = cos^2((t/T + s)/(1 + s) pi/2)``, s = 0.008,
    each ``beta_t`` clipped to 0.999, so ``alpha_bar_T`` is near 0 for every T. ``"linear"``:
    Ho et al.'s betas from 1e-4 to 0.02 over 1000 steps in their continuous-time form (Song et
    al. 2021), ``log alpha_bar(s) = -(0.1 s + 9.95 s^2)`` at ``s = t/T``: DDPM's schedule at
    T = 1000 and the same process at every T, so bounds for different T compare.
    ``"loglinear"``: VDM's fixed schedule (Kingma et al. 2021) with fixed endpoints, log SNR
    linear in ``u`` from ``log_snr_range[1]`` (``u = 0``, the decoder's level, ``y_1``) to
    ``log_snr_range[0]`` (``u = 1``, ``y_T``), ``y_t`` at ``u = (t - 1) / (T - 1)``: the T-step
    discretization of one continuous process, whose endpoints stay put as T grows (so the
    discrete bound converges to the continuous one), ``alpha_bar = sigmoid(log SNR)``.
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
    t = torch.arange(n_steps + 1, dtype=torch.float64)
    if name == "loglinear":
        u = (t[1:] - 1) / max(n_steps - 1, 1)
        lo, hi = (float(v) for v in log_snr_range)
        return torch.cat([t.new_ones(1), torch.sigmoid(hi + (lo - hi) * u)])
    if name == "cosine":
        s = 0.008
        f = torch.cos((t / n_steps + s) / (1 + s) * math.pi / 2) ** 2
        ab = f / f[0]
        beta = (1 - ab[1:] / ab[:-1]).clamp(max=0.999)
    else:
        u = t / n_steps
        ab = torch.exp(-(0.1 * u + 9.95 * u * u))
        beta = 1 - ab[1:] / ab[:-1]
    return torch.cat([t.new_ones(1), torch.cumprod(1 - beta, 0)])


def _normal_log_prob(value: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    r = (value - loc) / scale
    return -0.5 * r * r - scale.log() - _HALF_LOG_2PI


def _normal_kl(
    loc_q: torch.Tensor, scale_q: torch.Tensor, loc_p: torch.Tensor, scale_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(loc_q, scale_q^2) || N(loc_p, scale_p^2)) per entry."""
    ratio = (scale_q / scale_p) ** 2
    return 0.5 * (ratio + ((loc_q - loc_p) / scale_p) ** 2 - 1 - ratio.log())


def _log_normal_mass(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(Phi(b) - Phi(a))`` for ``a < b``, accurate in both tails (by symmetry, the
    difference is taken where the masses are small)."""
    flip = a > 0
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log1p(-torch.exp((log_lo - log_hi).clamp(max=-1e-12)))


class DiffusionHeads(Heads):
    """The VAE's heads with a discretized head for counts (Ho et al. 2020's discretized decoder
    on the ``log1p`` scale), and optionally binned continuous columns.

    A count's output is a location ``loc`` on the embedding's scale ``log1p(k)``, and
    ``P(k) = Phi((log(k + 3/2) - loc) / s) - Phi((log(k + 1/2) - loc) / s)`` (the lower edge
    ``-inf`` for ``k = 0``), ``s`` learned per count column: the mass of a Normal(loc, s) on
    the embedding scale over the bin ``(log1p(k - 1/2), log1p(k + 1/2)]``.

    With ``bins = K``, every continuous column is read as uniformly dequantized levels: its
    data-scale range ``bin_range = (lo, hi)`` is cut into K equal bins of width
    ``w = (hi - lo) / K``, and its density is ``P(k) / w`` at a value in bin ``k`` (0 outside
    the range), with ``P(k)`` the mass of the Normal(loc, s) head over the bin, the outer bins
    extended to infinity (the discretized decoder of Ho et al. 2020 and VDM, uniform within
    the bin): a proper density on ``[lo, hi]``, the density of uniformly dequantized data is
    flat within bins and so is this one. On the standardized scale the bins have width
    ``w / scale`` and the density is ``P(k) scale / w``; the fit's log-Jacobian brings it back.
    """

    def __init__(
        self,
        schema: Schema,
        scale: str = "column",
        bins: int | None = None,
        bin_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__(schema, scale)
        self.count_log_scale = nn.Parameter(torch.zeros(len(self.count)))
        self.bins = bins
        if bins is not None and self.continuous:
            lo, hi = bin_range
            cols = [schema.columns[j] for j in self.continuous]
            bad = [c.name for c in cols if c.transform is not None]
            if bad:
                raise ValueError(f"bins needs untransformed continuous columns, got {bad}")
            loc = torch.tensor([c.loc for c in cols], dtype=torch.float64)
            col_scale = torch.tensor([c.scale for c in cols], dtype=torch.float64)
            # Per column on the standardized scale: the range's lower end and the bin width.
            # Buffers follow the model's dtype and device; not saved (the schema gives them).
            self.register_buffer("bin_low", (lo - loc) / col_scale, persistent=False)
            self.register_buffer("bin_width", (hi - lo) / bins / col_scale, persistent=False)

    def bin_index(self, x: torch.Tensor) -> torch.Tensor:
        """Each continuous value's bin ``k`` (standardized values ``(..., n_continuous)``),
        clamped to ``0..K-1`` (out-of-range values are scored -inf by the decoder)."""
        k = torch.floor((x - self.bin_low.to(x.dtype)) / self.bin_width.to(x.dtype))
        return k.clamp(0, self.bins - 1)

    def bin_centre(self, x: torch.Tensor) -> torch.Tensor:
        """The centre of each continuous value's bin (standardized scale)."""
        low, width = self.bin_low.to(x.dtype), self.bin_width.to(x.dtype)
        return low + (self.bin_index(x) + 0.5) * width

    def bin_log_prob(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Log density (standardized scale) of binned continuous values: ``log P(k) - log w``."""
        low, width = self.bin_low.to(x.dtype), self.bin_width.to(x.dtype)
        k = self.bin_index(x)
        inv = torch.exp(-self.log_scale)
        lower = torch.where(k > 0, (low + k * width - out) * inv, -math.inf)
        upper = torch.where(k < self.bins - 1, (low + (k + 1) * width - out) * inv, math.inf)
        lp = _log_normal_mass(lower, upper) - width.log()
        inside = (x >= low) & (x <= low + self.bins * width)
        return torch.where(inside, lp, -math.inf)

    def _block_log_prob(self, kind: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if kind == "continuous" and self.bins is not None:
            return self.bin_log_prob(x, out)
        if kind != "count":
            return super()._block_log_prob(kind, x, out)
        inv = torch.exp(-self.count_log_scale)
        k = x.clamp_min(0)
        upper = (torch.log(k + 1.5) - out) * inv
        lower = torch.where(k > 0, (torch.log(k + 0.5) - out) * inv, -math.inf)
        return _log_normal_mass(lower, upper)

    def sample(self, out: torch.Tensor) -> torch.Tensor:
        x = super().sample(out)  # counts (and binned values) drawn there are replaced below
        n_cont = len(self.continuous)
        if self.count:
            loc = out[..., n_cont : n_cont + len(self.count)]
            v = loc + self.count_log_scale.exp() * torch.randn_like(loc)
            x[..., list(self.count)] = torch.ceil(torch.expm1(v) - 0.5).clamp_min(0)
        if self.bins is not None and n_cont:
            # The Normal draw's bin (outer bins take the tails), then uniform within the bin.
            v = x[..., list(self.continuous)]
            low, width = self.bin_low.to(v.dtype), self.bin_width.to(v.dtype)
            x[..., list(self.continuous)] = low + (self.bin_index(v) + torch.rand_like(v)) * width
        return x

    def expected(self, out: torch.Tensor) -> torch.Tensor:
        x = super().expected(out)
        n_cont = len(self.continuous)
        if self.count:
            loc = out[..., n_cont : n_cont + len(self.count)]
            x[..., list(self.count)] = torch.round(torch.expm1(loc)).clamp_min(0)
        if self.bins is not None and n_cont:
            x[..., list(self.continuous)] = self.bin_centre(x[..., list(self.continuous)])
        return x


class TrainingDropout(nn.Module):
    """Dropout while gradients are recorded (training steps) and never otherwise: the engine
    evaluates validation and test bounds under ``torch.no_grad()`` and never switches modules'
    ``train``/``eval`` modes, so this keeps every reported bound deterministic in the weights."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(h, self.p, training=torch.is_grad_enabled())


class TimeMLP(nn.Module):
    """An MLP of ``[y_t, sinusoidal embedding of t/T]``; hidden layers from ``hidden``, with
    dropout after each hidden activation when ``dropout > 0``."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        hidden: Sequence[int],
        time_dim: int,
        activation: str,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.time_dim = time_dim
        half = time_dim // 2
        # Frequencies 1 .. 1000 (log-spaced), as the transformer embedding of DDPM.
        freqs = torch.exp(torch.linspace(0, math.log(1000.0), half, dtype=torch.float64))
        self.register_buffer("freqs", freqs.float(), persistent=False)
        self.body = mlp((d_in + 2 * half, *hidden, d_out), activation)
        if dropout > 0:  # (without dropout the layers and their saved names are unchanged)
            layers = []
            for layer in self.body:
                layers.append(layer)
                if not isinstance(layer, nn.Linear):
                    layers.append(TrainingDropout(dropout))
            self.body = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``y`` (..., d_in), ``s`` the time in [0, 1] broadcastable to ``y.shape[:-1]``."""
        s = torch.as_tensor(s, dtype=y.dtype, device=y.device)
        s = s.expand(y.shape[:-1]).unsqueeze(-1)
        angle = s * self.freqs.to(y.dtype)
        return self.body(torch.cat([y, angle.sin(), angle.cos()], -1))


class MissingGuide(dist.TorchDistribution):
    """Parameter-free guide of the missing entries of x_0: every entry of a row is drawn (the
    observed ones are overwritten by the caller), only the missing ones are scored.

    Continuous entries N(0, 1) on the standardized scale, counts Poisson(1), binary entries
    Bernoulli(1/2), categorical entries uniform over their levels: wide enough to cover the
    data, so the bound stays finite, but loose (see :class:`Diffusion`'s Notes).
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, diffusion: Diffusion, x: torch.Tensor, mask: torch.Tensor) -> None:
        self.diffusion, self.x, self.miss = diffusion, x, ~mask
        super().__init__(mask.shape[:-1], torch.Size([mask.shape[-1]]), validate_args=False)

    def sample(self, sample_shape: torch.Size = _EMPTY) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape + self.event_shape
        with torch.no_grad():
            return self.diffusion.missing_draw(self.x.new_empty(shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.diffusion.missing_log_prob(value, self.miss)

    def expand(self, batch_shape, _instance=None) -> MissingGuide:
        batch_shape = torch.Size(batch_shape)
        x = self.x.expand(batch_shape + self.x.shape[-1:])
        mask = (~self.miss).expand(batch_shape + self.miss.shape[-1:])
        return MissingGuide(self.diffusion, x, mask)


class Diffusion(AmortizedModel):
    r"""Denoising diffusion probabilistic model (DDPM) for tables, as a latent Markov chain.

    Each row ``x_0`` (d columns of mixed kinds) is embedded as a real vector
    ``y_0 = e(x_0)`` of D values laid out as the heads' outputs: continuous columns as
    standardized, counts as ``log1p``, binary codes as ``+-c``, categorical codes as ``c`` times
    their one-hot vector (``c = discrete_scale * sqrt(1 - alpha_bar_1)``, in units of the first
    step's noise).

    Generative story (the model, the reverse chain; T = ``n_steps``)::

        y_T ~ Normal(0, I_D)                                          # site "y{T}"
        for t = T..2:
            y_{t-1} ~ Normal(mu(y_t, t), sigma_t^2 I_D)               # site "y{t-1}"
        x_0[j] ~ Head_j(f(y_1, 1))  for each column j                 # "x" (observed entries)
                                                                      # "x_missing" (the others)

    where ``f(y_t, t)`` is the network's output in the layout of the VAE's heads (Normal
    location on the standardized scale with a learned scale per column, Bernoulli logit,
    categorical logits; :class:`~ppgen.models.amortized.Heads`; counts a discretized Normal
    on the ``log1p`` scale, :class:`DiffusionHeads`), ``x0hat(y_t, t)`` its expected embedding
    (the locations; ``c tanh(logit/2)``; ``c`` times the softmax), and ``mu`` the forward
    posterior's mean at that estimate, ``mu(y_t, t) = mu~_t(y_t, x0hat(y_t, t))``. The
    locations of continuous columns and counts are preconditioned,
    ``loc = sqrt(alpha_bar_t) y_t + sqrt(1 - alpha_bar_t) F``, the optimal linear denoiser of
    unit-variance data plus the network's correction.

    Discrete columns get a *discrete decoder at t = 1* over a continuous embedding (as Ho et
    al.'s discretized decoder for pixels, or the embedding diffusions of Dieleman et al. 2022)
    rather than multinomial diffusion: the chain stays Gaussian, so every KL term is analytic
    and the data term is an ordinary categorical likelihood; the bound is exact as a bound
    (``y_{1:T}`` are latents, ``q`` a valid guide), and no separate discrete chain is needed
    for mixed tables.

    Guide (no parameters; posterior order)::

        x_miss  ~ r(x_miss)                         # site "x_missing", only with missing cells
        y_T     ~ Normal(sqrt(alpha_bar_T) y_0, (1 - alpha_bar_T) I)
        y_{t-1} ~ Normal(mu~_t(y_t, y_0), beta~_t I)       for t = T..2

    with ``y_0 = e(x_obs, x_miss)``. Pyro's ELBO of the pair is DDPM's bound

        log p(x_obs) >= E_q[log p(x_obs, x_miss | y_1) - log r(x_miss)]
                        - KL(q(y_T | y_0) || N(0, I)) - sum_{t>=2} KL(q(y_{t-1} | y_t, y_0) ||
                        p(y_{t-1} | y_t)),

    a bound on the likelihood of the observed entries (missing entries are a latent, never a
    fill-in). :meth:`elbo_rows` (training) estimates it without bias by the prior and decoder
    terms plus ``(T - 1)`` times the analytic KL at one uniform ``t`` in ``2..T`` per row with
    ``y_t ~ q(y_t | y_0)`` (Ho et al. 2020); :meth:`particle_log_weights` gives the joint
    importance weights of the whole chain (what :func:`ppgen.evaluate.elbo` and ``iwae``
    report); :meth:`bound_terms` the analytic term of every step.

    Parameters
    ----------
    n_steps : int
        Number of diffusion steps T.
    schedule : {"cosine", "linear", "loglinear"}
        Noise schedule (:func:`schedule_alpha_bar`); ``time="continuous"`` needs "loglinear".
    network : {"mlp"}
        The denoising network: an MLP of ``y_t`` and a sinusoidal embedding of ``t / T``.
    hidden : sequence of int
        Widths of the network's hidden layers.
    activation : {"relu", "tanh", "elu", "identity"}
        Its non-linearity.
    time_dim : int
        Width of the time embedding.
    variance : {"posterior", "beta", "learned"} or None
        Reverse-kernel variance: the forward posterior's ``beta~_t`` or ``beta_t`` (DDPM's two
        fixed choices), or iDDPM's learned interpolation ``exp(v log beta_t + (1 - v) log
        beta~_t)`` with ``v = sigmoid(network)`` per entry. None: "learned" in discrete time,
        "posterior" (the only choice) in continuous time.
    discrete_scale : float
        The embedding's scale of binary and categorical codes in units of the first step's
        noise standard deviation. Small (the default 0.5): the codes are barely visible in
        ``y_1``, the chain's Gaussian kernels fit their nearly Gaussian reverse almost exactly
        and the decoder at t = 1 carries the discrete columns (given the continuous ones in
        ``y_1``): the bound of one categorical column then comes within 0.01 nats of its
        entropy. Large (e.g. 20): the chain carries them, which lets discrete columns depend
        on each other, at the price of the Gaussian kernels' mismatch with a discrete reverse
        (0.2 - 0.6 nats per column at T = 20 - 100).
    resample : int
        RePaint's resampling jumps per step in :meth:`impute` (1: none).
    t_sampling : {"uniform", "importance"}
        How the training estimator picks its step: uniformly in ``2..T``, or (iDDPM's
        importance sampling) with probability proportional to the root mean square of that
        step's recent KL terms, once every step has 10 of them (uniform until then), the term
        divided by its probability. Both are unbiased for the same bound; the second has far
        less variance when a few small-t steps carry most of the bound. Only gradient steps
        use it (held-out bounds are computed with uniform t).
    continuous_scale : {"column", "shared"}
        The decoder's Normal scale per continuous column or shared.
    time : {"discrete", "continuous"}
        "discrete": the T-step chain above is the model. "continuous" (variational diffusion
        models, Kingma et al. 2021): the model is the chain's limit as T grows, with the
        "loglinear" schedule's fixed endpoints; its bound is

            E_q[log p(x_0 | y_1)] - KL(q(y_T | y_0) || N(0, I))
            - 1/2 E_{u ~ U(0, 1), y_u ~ q(y_u | y_0)}[-SNR'(u) ||y_0 - x0hat(y_u, u)||^2],

        which :meth:`elbo_rows` estimates (one ``u`` per row; training) and
        :meth:`continuous_bound` with stratified ``u``. The endpoints change the bound, the
        interior of the schedule only the estimator's variance (VDM's eq. 11), so the schedule
        is fixed here. The T-step chain (``n_steps``) is then the discretization used by
        sampling, imputation and the joint weights of :func:`ppgen.evaluate.elbo`, whose bound
        is that of the T-step model: below the continuous one, approaching it as T grows
        (VDM's section 4.2; tested).
    log_snr_range : (float, float)
        Log signal-to-noise ratio at ``y_T`` and at ``y_1`` of the "loglinear" schedule.
    learned_schedule : bool
        Continuous time only: learn the schedule's interior between the fixed endpoints
        ``log_snr_range`` (VDM; :class:`~ppgen.models._diffusion_schedule.LearnedLogSNR`, a
        monotone function trained to minimize the variance of the diffusion loss's estimate,
        which leaves the bound unchanged), the network seeing the log SNR's level
        ``(hi - lambda) / (hi - lo)`` instead of ``u``; the T-step chain uses the learned
        schedule at ``u = (t - 1) / (T - 1)``.
    dropout : float
        Dropout rate after each hidden layer of the network during training steps (DDPM's
        regularizer on small data sets); bounds, samples and imputations never drop units.
    bins : int, optional
        Read every continuous column as uniformly dequantized levels (e.g. 17 for the digits'
        ``(count + u) / 17``): the chain diffuses each value's bin centre and the decoder is
        discretized, ``p(x | y_1) = P(bin | y_1) / w``, uniform within the bin
        (:class:`DiffusionHeads`; VDM's decoder). The optimum of any density of uniformly
        dequantized data is flat within bins, which a Gaussian decoder cannot be. None: the
        Gaussian decoder.
    bin_range : (float, float)
        The data-scale range ``(low, high)`` cut into ``bins`` equal bins; values outside it
        have density 0.

    Notes
    -----
    The guide of missing entries, ``r``, is parameter-free and broad (:class:`MissingGuide`), so
    bounds on rows with missing cells are valid but loose. Imputation does not use it: it
    samples the missing cells by RePaint's conditioning of the reverse chain on the noised
    observed entries (Lugmayr et al. 2022), which approximates p(x_miss | x_obs).

    References
    ----------
    Sohl-Dickstein, J., Weiss, E., Maheswaranathan, N. & Ganguli, S. (2015). Deep unsupervised
    learning using nonequilibrium thermodynamics. *ICML*.
    Ho, J., Jain, A. & Abbeel, P. (2020). Denoising diffusion probabilistic models. *NeurIPS*.
    Nichol, A. & Dhariwal, P. (2021). Improved denoising diffusion probabilistic models. *ICML*.
    Kingma, D. P., Salimans, T., Poole, B. & Ho, J. (2021). Variational diffusion models.
    *NeurIPS*.
    Dieleman, S. et al. (2022). Continuous diffusion for categorical data. arXiv:2211.15089.
    Lugmayr, A. et al. (2022). RePaint: inpainting using denoising diffusion probabilistic
    models. *CVPR*.
    """

    latent_site: ClassVar[str] = "y1"
    label_arguments: ClassVar[int] = 2

    def __init__(
        self,
        n_steps: int = 100,
        schedule: str = "cosine",
        network: str = "mlp",
        *,
        hidden: Sequence[int] = (128, 128),
        activation: str = "relu",
        time_dim: int = 32,
        variance: str | None = None,
        discrete_scale: float = 0.5,
        resample: int = 1,
        t_sampling: str = "uniform",
        continuous_scale: str = "column",
        impute_particles: int = 100,
        time: str = "discrete",
        log_snr_range: Sequence[float] = LOG_SNR_RANGE,
        dropout: float = 0.0,
        bins: int | None = None,
        bin_range: Sequence[float] = (0.0, 1.0),
        learned_schedule: bool = False,
    ) -> None:
        super().__init__(continuous_scale=continuous_scale, impute_particles=impute_particles)
        self.n_steps = check_int(n_steps, "n_steps")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if time not in TIMES:
            raise ValueError(f"time must be one of {TIMES}, got {time!r}")
        lo, hi = (float(v) for v in log_snr_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(
                f"log_snr_range must be (min, max) with min < max, got {log_snr_range}"
            )
        if variance is None:
            variance = "posterior" if time == "continuous" else "learned"
        if time == "continuous":
            if schedule != "loglinear":
                raise ValueError(
                    f'time="continuous" needs schedule="loglinear" (fixed endpoints), '
                    f"got schedule={schedule!r}"
                )
            if variance != "posterior":
                raise ValueError(
                    f'time="continuous" has the posterior variance only, got variance={variance!r}'
                )
            if t_sampling != "uniform":
                raise ValueError(
                    f'time="continuous" samples u uniformly, got t_sampling={t_sampling!r}'
                )
        self.time, self.log_snr_range = time, (lo, hi)
        if learned_schedule and time != "continuous":
            raise ValueError('learned_schedule needs time="continuous"')
        self.learned_schedule = bool(learned_schedule)
        if not 0 <= float(dropout) < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.bins = None if bins is None else check_int(bins, "bins")
        if self.bins is not None and self.bins < 2:
            raise ValueError(f"bins must be at least 2, got {bins!r}")
        b_lo, b_hi = (float(v) for v in bin_range)
        if not (math.isfinite(b_lo) and math.isfinite(b_hi) and b_lo < b_hi):
            raise ValueError(f"bin_range must be (low, high) with low < high, got {bin_range}")
        self.bin_range = (b_lo, b_hi)
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
        if not (math.isfinite(float(discrete_scale)) and float(discrete_scale) > 0):
            raise ValueError(f"discrete_scale must be positive, got {discrete_scale!r}")
        self.schedule, self.network = schedule, network
        self.hidden = check_ints(hidden, "hidden")
        self.activation = activation
        self.time_dim = check_int(time_dim, "time_dim")
        self.variance = variance
        self.discrete_scale = float(discrete_scale)
        self.resample = check_int(resample, "resample")
        if t_sampling not in T_SAMPLINGS:
            raise ValueError(f"t_sampling must be one of {T_SAMPLINGS}, got {t_sampling!r}")
        self.t_sampling = t_sampling
        # Importance sampling's state: the mean square of each step's KL term (an exponential
        # average over minibatches) and how many terms each step has seen. Not saved: a
        # training device, not part of the model.
        self._kl_square = torch.zeros(self.n_steps + 1, dtype=torch.float64)
        self._kl_seen = torch.zeros(self.n_steps + 1, dtype=torch.int64)
        ab = schedule_alpha_bar(schedule, self.n_steps, self.log_snr_range)
        self._alpha_bar = ab  # float64, index t = 0..T
        #: c, the embedding's scale of discrete codes: discrete_scale noise sds of step 1.
        self.code_scale = self.discrete_scale * float((1 - ab[1]).sqrt())

    def config(self) -> dict[str, Any]:
        return {
            "n_steps": self.n_steps,
            "schedule": self.schedule,
            "network": self.network,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "time_dim": self.time_dim,
            "variance": self.variance,
            "discrete_scale": self.discrete_scale,
            "resample": self.resample,
            "t_sampling": self.t_sampling,
            "time": self.time,
            "log_snr_range": list(self.log_snr_range),
            "dropout": self.dropout,
            **({} if self.bins is None else {"bins": self.bins, "bin_range": list(self.bin_range)}),
            **({"learned_schedule": True} if self.learned_schedule else {}),
            **self.base_config(),
        }

    def build(self, schema: Schema) -> Diffusion:
        GenerativeModel.build(self, schema)
        self.heads = DiffusionHeads(schema, self.continuous_scale, self.bins, self.bin_range)
        self.build_networks()
        if self.learned_schedule:
            self.schedule_net = LearnedLogSNR(*self.log_snr_range)
        return self

    def build_networks(self) -> None:
        heads = self.heads
        self.n_embed = heads.n_outputs  # D: the embedding has the heads' layout
        extra = self.n_embed if self.variance == "learned" else 0
        self.denoiser = TimeMLP(
            self.n_embed,
            heads.n_outputs + extra,
            self.hidden,
            self.time_dim,
            self.activation,
            self.dropout,
        )
        self._n_cont = len(heads.continuous)
        self._n_count = len(heads.count)
        self._n_bin = len(heads.binary)
        # The decoder's Normal scale starts at step 1's noise level, sqrt(1 - alpha_bar_1)
        # (DDPM's fixed sigma_1): from 1, Adam would need thousands of steps to get there.
        with torch.no_grad():
            heads.log_scale.fill_(0.5 * math.log(float(1 - self._alpha_bar[1])))
            heads.count_log_scale.fill_(0.5 * math.log(float(1 - self._alpha_bar[1])))

    # -- schedule ---------------------------------------------------------------------------------
    def coefficients(self, t: int | torch.Tensor, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """The schedule's values at step ``t`` (int or integer tensor, 1..T) in ``like``'s dtype
        and device: ``ab`` (alpha_bar_t), ``ab_prev``, ``beta``, ``beta_tilde`` and the forward
        posterior mean's coefficients ``c0`` (of y_0) and ``ct`` (of y_t)."""
        ab_all = self.alpha_bar_table()
        if isinstance(t, torch.Tensor):
            t = t.cpu()
        ab, ab_prev = ab_all[t], ab_all[t - 1]
        beta = 1 - ab / ab_prev
        beta_tilde = (1 - ab_prev) / (1 - ab) * beta
        c0 = ab_prev.sqrt() * beta / (1 - ab)
        ct = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
        values = {
            "ab": ab,
            "ab_prev": ab_prev,
            "beta": beta,
            "beta_tilde": beta_tilde,
            "c0": c0,
            "ct": ct,
        }
        out = {}
        for k, v in values.items():
            v = v.to(dtype=like.dtype, device=like.device)
            out[k] = v.unsqueeze(-1) if v.dim() else v  # per-row t: a column to broadcast over D
        return out

    # -- embedding and networks -------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``y_0 = e(x_0)``, shape ``(..., D)`` in the heads' output layout."""
        heads, c = self.heads, self.code_scale
        parts = []
        for kind, cols, _ in heads._blocks:
            v = x[..., cols]
            if kind == "count":
                v = torch.log1p(v.clamp_min(0))
            elif kind == "continuous" and self.bins is not None:
                v = heads.bin_centre(v)  # the chain diffuses the levels (VDM)
            elif kind == "binary":
                v = c * (2 * v - 1)
            parts.append(v)
        for j, k in zip(heads.categorical, heads.n_categories, strict=True):
            code = x[..., j].long().clamp(0, k - 1)
            parts.append(c * nn.functional.one_hot(code, k).to(x.dtype))
        return torch.cat(parts, -1)

    def embedded_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Which of the D embedding entries come from observed columns, ``(..., D)``."""
        heads = self.heads
        parts = [mask[..., cols] for _, cols, _ in heads._blocks]
        for j, k in zip(heads.categorical, heads.n_categories, strict=True):
            parts.append(mask[..., j : j + 1].expand(*mask.shape[:-1], k))
        return torch.cat(parts, -1)

    def net_time(self, t: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The network's time input in [0, 1] at step ``t``: ``t / T``, or for the "loglinear"
        schedule the continuous time ``u = (t - 1) / (T - 1)`` of :func:`schedule_alpha_bar`
        (so that continuous-time training and the T-step chain feed the network alike)."""
        if self.learned_schedule:  # the network sees the log SNR's level (see continuous_term)
            lo, hi = self.log_snr_range
            ab = self.alpha_bar_table()[torch.as_tensor(t).cpu()]
            lam = torch.log(ab) - torch.log1p(-ab)
            return ((hi - lam) / (hi - lo)).to(dtype=like.dtype, device=like.device)
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
        if self.schedule == "loglinear":
            return (t - 1) / max(self.n_steps - 1, 1)
        return t / self.n_steps

    def denoise(self, y: torch.Tensor, t: int | torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The network at ``(y_t, t)``: the heads' outputs ``out`` (the decoder at t = 1), the
        expected embedding ``x0hat`` and the raw variance outputs (or None)."""
        ab = self.coefficients(t, y)["ab"]
        return self.denoise_at(y, ab, self.net_time(t, y))

    def denoise_at(
        self, y: torch.Tensor, ab: torch.Tensor, s: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """:meth:`denoise` at signal level ``ab`` (alpha_bar, broadcastable to ``y``) and
        network time ``s`` (broadcastable to ``y.shape[:-1]``): any continuous time."""
        coef = {"ab": ab}
        raw = self.denoiser(y, s)
        d = self.n_embed
        f, v = raw[..., :d], (raw[..., d:] if self.variance == "learned" else None)
        nc, nk, nb = self._n_cont, self._n_count, self._n_bin
        c = self.code_scale
        # Continuous values and counts' log1p: preconditioned locations on the embedding scale.
        m = nc + nk
        loc = coef["ab"].sqrt() * y[..., :m] + (1 - coef["ab"]).sqrt() * f[..., :m]
        out = torch.cat([loc, f[..., m:]], -1)
        parts = [loc]
        if nb:
            parts.append(c * torch.tanh(f[..., nc + nk : nc + nk + nb] / 2))
        for a, b in self.heads._cat_slices:
            parts.append(c * f[..., a:b].softmax(-1))
        return out, torch.cat(parts, -1), v

    def reverse(self, y: torch.Tensor, t: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of ``p(y_{t-1} | y_t)``, ``t >= 2``."""
        coef = self.coefficients(t, y)
        _, x0hat, v = self.denoise(y, t)
        loc = coef["c0"] * x0hat + coef["ct"] * y
        if self.variance == "posterior":
            scale = coef["beta_tilde"].sqrt().expand_as(loc)
        elif self.variance == "beta":
            scale = coef["beta"].sqrt().expand_as(loc)
        else:
            w = torch.sigmoid(v)
            scale = (0.5 * (w * coef["beta"].log() + (1 - w) * coef["beta_tilde"].log())).exp()
        return loc, scale

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output at ``y_1 = z``."""
        return self.decoder_out(z)

    def decoder_out(self, y1: torch.Tensor) -> torch.Tensor:
        """The heads' outputs of ``p(x_0 | y_1)``."""
        return self.denoise(y1, 1)[0]

    def prior(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of ``p(y_T)``: the standard normal (tests put other Gaussians)."""
        return like.new_zeros(()), like.new_ones(())

    def forward_marginal(
        self, y0: torch.Tensor, t: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of ``q(y_t | y_0)``."""
        coef = self.coefficients(t, y0)
        return coef["ab"].sqrt() * y0, (1 - coef["ab"]).sqrt().expand_as(y0)

    def forward_posterior(
        self, y: torch.Tensor, y0: torch.Tensor, t: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of ``q(y_{t-1} | y_t, y_0)``, ``t >= 2``."""
        coef = self.coefficients(t, y)
        loc = coef["c0"] * y0 + coef["ct"] * y
        return loc, coef["beta_tilde"].sqrt().expand_as(loc)

    # -- missing entries --------------------------------------------------------------------------
    def missing_draw(self, like: torch.Tensor) -> torch.Tensor:
        """A draw of every entry from the missing-value guide ``r`` (torch's global RNG)."""
        heads = self.heads
        x = like.new_empty(like.shape)
        for kind, cols, _ in heads._blocks:
            shape = x[..., cols].shape
            if kind == "continuous" and self.bins is not None:
                low, width = heads.bin_low.to(x.dtype), heads.bin_width.to(x.dtype)
                u = torch.rand(shape, dtype=x.dtype, device=x.device)
                x[..., cols] = low + self.bins * width * u  # uniform over the bins' range
            elif kind == "continuous":
                x[..., cols] = torch.randn(shape, dtype=x.dtype, device=x.device)
            elif kind == "count":
                x[..., cols] = torch.poisson(x.new_ones(shape))
            else:
                x[..., cols] = torch.bernoulli(x.new_full(shape, 0.5))
        for j, k in zip(heads.categorical, heads.n_categories, strict=True):
            x[..., j] = torch.randint(k, x.shape[:-1], device=x.device).to(x.dtype)
        return x

    def missing_log_prob(self, value: torch.Tensor, miss: torch.Tensor) -> torch.Tensor:
        """``log r(value)`` summed over the entries where ``miss`` is True."""
        heads = self.heads
        if value.shape[:-1] != miss.shape[:-1]:
            value, miss = torch.broadcast_tensors(value, miss)
        lp = value.new_zeros(value.shape)
        for kind, cols, _ in heads._blocks:
            v = value[..., cols]
            if kind == "continuous" and self.bins is not None:
                lp[..., cols] = -torch.log(self.bins * heads.bin_width.to(v.dtype)).expand_as(v)
            elif kind == "continuous":
                lp[..., cols] = -0.5 * v * v - _HALF_LOG_2PI
            elif kind == "count":
                lp[..., cols] = -1.0 - torch.lgamma(v + 1)
            else:
                lp[..., cols] = -math.log(2.0)
        for j, k in zip(heads.categorical, heads.n_categories, strict=True):
            lp[..., j] = -math.log(k)
        return torch.where(miss, lp, 0.0).sum(-1)

    def _fill_missing(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_0 with its missing entries drawn from ``r`` (k particles in front when given), and
        ``log r`` of the draws; no draw when nothing is missing."""
        shape = x.shape if k is None else (k, *x.shape)
        if mask is None or bool(mask.all()):
            return x.expand(shape), x.new_zeros(shape[:-1])
        draw = self.missing_draw(x.new_empty(shape))
        return torch.where(mask, x, draw), self.missing_log_prob(draw, ~mask)

    # -- Pyro programs ----------------------------------------------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        self._check_built()
        T, D = self.n_steps, self.n_embed
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            loc, scale = self.prior(x)
            like = x.new_zeros(len(ind), D)
            y = pyro.sample(f"y{T}", dist.Normal(like + loc, scale).to_event(1))
            for t in range(T, 1, -1):
                loc, scale = self.reverse(y, t)
                y = pyro.sample(f"y{t - 1}", dist.Normal(loc, scale).to_event(1))
            out = self.decoder_out(y)
            mb = None if mask is None else (mask if len(ind) == mask.shape[0] else mask[ind])
            if mb is not None and not bool(mb.all()):
                pyro.sample("x_missing", HeadsDistribution(self.heads, out, ~mb))
            self.observe(x, mask, out, ind)

    def guide(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        self._check_built()
        T = self.n_steps
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1) as ind:
            xb = x if len(ind) == x.shape[0] else x[ind]
            mb = None if mask is None else (mask if len(ind) == mask.shape[0] else mask[ind])
            if mb is not None and not bool(mb.all()):
                draw = pyro.sample("x_missing", MissingGuide(self, xb, mb))
                xb = torch.where(mb, xb, draw)
            y0 = self.embed(xb)
            loc, scale = self.forward_marginal(y0, T)
            y = pyro.sample(f"y{T}", dist.Normal(loc, scale).to_event(1))
            for t in range(T, 1, -1):
                loc, scale = self.forward_posterior(y, y0, t)
                y = pyro.sample(f"y{t - 1}", dist.Normal(loc, scale).to_event(1))

    # -- the bound without tracing ----------------------------------------------------------------
    def particle_log_weights(
        self, x: torch.Tensor, mask: torch.Tensor | None, k: int, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """Log importance weights of ``k`` joint draws of the guide per row, ``(k, n)``.

        ``log p(x_obs, x_miss, y_{1:T}) - log r(x_miss) - log q(y_{1:T} | y_0)`` with the draws
        of the traced guide (same order, same generator), the latent terms times
        ``kl_weight``. Their mean is an unbiased estimate of the bound, their log-mean-exp the
        importance-weighted bound.
        """
        T = self.n_steps
        x0, log_r = self._fill_missing(x, mask, k)
        y0 = self.embed(x0)
        loc, scale = self.forward_marginal(y0, T)
        y = loc + scale * loc.new_empty(loc.shape).normal_()
        prior_loc, prior_scale = self.prior(y)
        latent = _normal_log_prob(y, prior_loc, prior_scale) - _normal_log_prob(y, loc, scale)
        latent = latent.sum(-1)
        for t in range(T, 1, -1):
            loc_q, scale_q = self.forward_posterior(y, y0, t)
            y_prev = loc_q + scale_q * loc_q.new_empty(loc_q.shape).normal_()
            loc_p, scale_p = self.reverse(y, t)
            step = _normal_log_prob(y_prev, loc_p, scale_p) - _normal_log_prob(
                y_prev, loc_q, scale_q
            )
            latent = latent + step.sum(-1)
            y = y_prev
        out = self.decoder_out(y)
        log_lik, log_miss = self._decoder_terms(x0, mask, out)
        return log_lik + kl_weight * (latent + log_miss - log_r)

    def _decoder_terms(
        self, x0: torch.Tensor, mask: torch.Tensor | None, out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``log p(x_obs | y_1)`` and ``log p(x_miss | y_1)`` (the latter a latent term, which
        KL warm-up scales as Pyro's traced ELBO does), each per row."""
        if mask is None or bool(mask.all()):
            return self.heads.log_prob(x0, mask, out), out.new_zeros(())
        return self.heads.log_prob(x0, mask, out), self.heads.log_prob(x0, ~mask, out)

    def elbo_rows(
        self, x: torch.Tensor, mask: torch.Tensor | None, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """Unbiased one-draw estimate of each row's bound, ``(n,)``: the training estimator.

        The prior KL (analytic), the decoder term at ``y_1 ~ q(y_1 | y_0)``, and ``(T - 1)``
        times the analytic KL at one step ``t`` uniform in ``2..T`` with ``y_t ~ q(y_t | y_0)``
        (Ho et al. 2020), minus ``log r`` of the missing entries' draws. Its expectation is the
        bound that Pyro's ELBO of :meth:`model` and :meth:`guide` estimates (a different,
        cheaper estimator: two network passes per row instead of T). ``kl_weight`` multiplies
        the latent terms, as in the other deep models.
        """
        T = self.n_steps
        x0, log_r = self._fill_missing(x, mask)
        y0 = self.embed(x0)
        n = y0.shape[0]
        loc, scale = self.forward_marginal(y0, T)
        latent = -_normal_kl(loc, scale, *self.prior(loc)).sum(-1)
        loc1, scale1 = self.forward_marginal(y0, 1)
        y1 = loc1 + scale1 * torch.randn_like(loc1)
        log_lik, log_miss = self._decoder_terms(x0, mask, self.decoder_out(y1))
        latent = latent + log_miss
        if T > 1 and self.time == "continuous":
            u = torch.rand(n, dtype=y0.dtype, device=y0.device)
            latent = latent - self.continuous_term(y0, u)
        elif T > 1:
            t, weight = self._pick_steps(n, y0)
            kl = self._step_kl(y0, t)
            if self.t_sampling == "importance" and torch.is_grad_enabled():
                self._record(t, kl.detach())
            latent = latent - weight * kl
        return log_lik + kl_weight * (latent - log_r)

    def log_snr(self, u: torch.Tensor) -> torch.Tensor:
        """Log SNR of the "loglinear" (or the learned) schedule at continuous time ``u``."""
        if self.learned_schedule:
            return self.schedule_net(u)[0]
        lo, hi = self.log_snr_range
        return hi + (lo - hi) * u

    def alpha_bar_table(self) -> torch.Tensor:
        """``alpha_bar_t`` for ``t = 0..T`` (float64): the fixed schedule's, or the learned
        schedule's at ``u = (t - 1) / (T - 1)`` (its endpoints are the fixed ones)."""
        if not self.learned_schedule:
            return self._alpha_bar
        T = self.n_steps
        device = self.schedule_net.centre.device
        u = torch.arange(T, dtype=torch.float64, device=device) / max(T - 1, 1)
        with torch.no_grad():  # in float64 (the parameters are cast on the fly)
            lam = self.schedule_net(u)[0].cpu()
        return torch.cat([lam.new_ones(1), torch.sigmoid(lam)])

    def continuous_term(self, y0: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One draw of VDM's continuous-time diffusion loss at time ``u`` (per row; the bound
        subtracts it): ``-SNR'(u) / 2 ||y_0 - x0hat(y_u, u)||^2`` with ``y_u ~ q(y_u | y_0)``;
        its mean over ``u ~ U(0, 1)`` is the limit of the T-step chain's KL terms (posterior
        variance) as T grows (Kingma et al. 2021, eq. 17)."""
        lo, hi = self.log_snr_range
        if self.learned_schedule:
            lam_u, dlam = self.schedule_net(u)
            s = (hi - lam_u) / (hi - lo)  # the network's input: the log SNR's level
        else:
            lam_u, dlam, s = self.log_snr(u), None, u
        lam = lam_u.unsqueeze(-1)
        ab = torch.sigmoid(lam)
        y = ab.sqrt() * y0 + torch.sigmoid(-lam).sqrt() * torch.randn_like(y0)
        x0hat = self.denoise_at(y, ab, s)[1]
        error = (y0 - x0hat).pow(2).sum(-1)
        if dlam is None:  # -dSNR/du = (hi - lo) exp(lam) for the linear log SNR.
            return 0.5 * (hi - lo) * (lam_u.exp() * error)
        loss = -0.5 * dlam * lam_u.exp() * error
        variance_gradient(loss, lam_u, dlam)  # the schedule minimizes the loss's variance
        return loss

    @torch.no_grad()
    def continuous_bound(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, points: int = 64
    ) -> torch.Tensor:
        """One draw of the continuous-time bound per row, ``(n,)`` (nats, encoded scale), with
        the diffusion loss averaged over ``points`` stratified times ``u`` (one uniform draw
        in each of ``points`` equal bins): the same expectation as :meth:`elbo_rows`, far less
        variance (torch's global RNG, seed it first). ``time="continuous"`` only."""
        if self.time != "continuous":
            raise ValueError('continuous_bound needs time="continuous"')
        points = check_int(points, "points")
        x0, log_r = self._fill_missing(x, mask)
        y0 = self.embed(x0)
        n = y0.shape[0]
        loc, scale = self.forward_marginal(y0, self.n_steps)
        latent = -_normal_kl(loc, scale, *self.prior(loc)).sum(-1)
        loc1, scale1 = self.forward_marginal(y0, 1)
        y1 = loc1 + scale1 * torch.randn_like(loc1)
        log_lik, log_miss = self._decoder_terms(x0, mask, self.decoder_out(y1))
        u = (
            torch.arange(points, dtype=y0.dtype, device=y0.device).unsqueeze(-1)
            + torch.rand(points, n, dtype=y0.dtype, device=y0.device)
        ) / points
        diffusion = self.continuous_term(y0.expand(points, *y0.shape), u).mean(0)
        return log_lik + latent + log_miss - diffusion - log_r

    def step_probabilities(self) -> torch.Tensor | None:
        """Importance sampling's probability of each step ``t = 2..T`` (float64, ``(T - 1,)``),
        or None while uniform sampling is used."""
        if self.t_sampling != "importance" or bool((self._kl_seen[2:] < _HISTORY).any()):
            return None
        rms = self._kl_square[2:].sqrt()
        p = rms / rms.sum()
        # A little uniform mass, so that no step's probability is ever (nearly) 0.
        return 0.999 * p + 0.001 / len(p)

    def _pick_steps(self, n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's step ``t`` in ``2..T`` and the weight of its KL term (1 / probability)."""
        T = self.n_steps
        p = self.step_probabilities() if torch.is_grad_enabled() else None
        if p is None:
            t = torch.randint(2, T + 1, (n,), device=like.device)
            return t, like.new_full((n,), float(T - 1))
        idx = torch.multinomial(p.to(like.device), n, replacement=True)
        return idx + 2, (1 / p.to(like.device)[idx]).to(like.dtype)

    def _record(self, t: torch.Tensor, kl: torch.Tensor) -> None:
        """Add a minibatch's KL terms to each step's mean square (decay 0.9 per minibatch)."""
        t, sq = t.cpu(), kl.double().cpu() ** 2
        count = torch.bincount(t, minlength=self.n_steps + 1)
        total = torch.bincount(t, weights=sq, minlength=self.n_steps + 1)
        seen = count > 0
        mean = total[seen] / count[seen]
        first = self._kl_seen[seen] == 0
        old = self._kl_square[seen]
        self._kl_square[seen] = torch.where(first, mean, 0.9 * old + 0.1 * mean)
        self._kl_seen += count

    def _step_kl(self, y0: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """``KL(q(y_{t-1} | y_t, y_0) || p(y_{t-1} | y_t))`` at ``y_t ~ q(y_t | y_0)``, per row."""
        loc, scale = self.forward_marginal(y0, t)
        y = loc + scale * torch.randn_like(loc)
        loc_q, scale_q = self.forward_posterior(y, y0, t)
        loc_p, scale_p = self.reverse(y, t)
        return _normal_kl(loc_q, scale_q, loc_p, scale_p).sum(-1)

    @torch.no_grad()
    def bound_terms(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Every step's term of the bound per row, ``(n, T + 1)`` (nats, encoded scale).

        Column 0: the decoder term ``E log p(x_0 | y_1) - log r(x_miss)`` (one draw); column
        ``t - 1`` for ``t = 2..T``: ``-KL(q(y_{t-1} | y_t, y_0) || p(y_{t-1} | y_t))`` at one
        draw ``y_t ~ q(y_t | y_0)``; column T: ``-KL(q(y_T | y_0) || N(0, I))`` (exact). The
        row sum is an unbiased estimate of the bound with less variance than the joint
        weights (analytic KL at every step; torch's global RNG, seed it first).
        """
        T = self.n_steps
        x0, log_r = self._fill_missing(x, mask)
        y0 = self.embed(x0)
        terms = y0.new_zeros(y0.shape[0], T + 1)
        loc1, scale1 = self.forward_marginal(y0, 1)
        y1 = loc1 + scale1 * torch.randn_like(loc1)
        full = None if mask is None else torch.ones_like(mask)
        terms[:, 0] = self.heads.log_prob(x0, full, self.decoder_out(y1)) - log_r
        for t in range(2, T + 1):
            terms[:, t - 1] = -self._step_kl(y0, t)
        loc, scale = self.forward_marginal(y0, T)
        terms[:, T] = -_normal_kl(loc, scale, *self.prior(loc)).sum(-1)
        return terms

    # -- what Fit uses ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        params: Params,
        *,
        sampler: str = "ancestral",
        steps: int | None = None,
        eta: float = 0.0,
    ) -> torch.Tensor:
        """Draw ``n`` rows on the encoded scale (torch's global RNG; seed it first).

        ``sampler="ancestral"``: the model's own reverse chain, T network passes.
        ``sampler="ddim"`` (Song, Meng & Ermon 2021): ``steps`` network passes on an evenly
        spaced subsequence of ``T..1`` (default all T - 1 transitions), each
        ``y_s = sqrt(ab_s) x0hat + sqrt(1 - ab_s - sigma^2) epshat + sigma eps`` with
        ``sigma^2 = eta^2 beta~_{t->s}``: ``eta = 0`` is deterministic given ``y_T`` (the
        probability-flow ODE's discretization), ``eta = 1`` with all steps is the ancestral
        chain with the posterior variance. DDIM draws from a different distribution than the
        model whose bound :func:`ppgen.evaluate.elbo` reports: the bound says nothing about
        DDIM's samples. Both end with ``x_0 ~ p(x_0 | y_1)``.
        """
        self._check_built()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sampler == "ancestral" and (steps is not None or eta != 0.0):
            raise ValueError('steps and eta are options of sampler="ddim"')
        like = next(self.parameters())
        y = torch.randn(n, self.n_embed, dtype=like.dtype, device=like.device)
        loc, scale = self.prior(y)
        y = loc + scale * y
        if sampler == "ddim":
            return self._sample_ddim(y, steps, eta)
        for t in range(self.n_steps, 1, -1):
            loc, scale = self.reverse(y, t)
            y = loc + scale * torch.randn_like(loc)
        return self.heads.sample(self.decoder_out(y))

    @torch.no_grad()
    def trajectory(
        self, n: int, times: Sequence[int]
    ) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """The ancestral reverse chain of ``n`` draws, kept at steps ``times`` (in 1..T): the
        states ``y_t`` (embedding scale, ``(n, D)`` each) and the final ``x_0`` (encoded scale).
        Draws exactly as :meth:`sample` does, so with the same seed ``x_0`` is its output
        (torch's global RNG; seed it first)."""
        self._check_built()
        keep = {check_int(t, "times") for t in times}
        if not keep or max(keep) > self.n_steps:
            raise ValueError(f"times must be steps in 1..{self.n_steps}, got {list(times)}")
        like = next(self.parameters())
        y = torch.randn(n, self.n_embed, dtype=like.dtype, device=like.device)
        loc, scale = self.prior(y)
        y = loc + scale * y
        states = {self.n_steps: y} if self.n_steps in keep else {}
        for t in range(self.n_steps, 1, -1):
            loc, scale = self.reverse(y, t)
            y = loc + scale * torch.randn_like(loc)
            if t - 1 in keep:
                states[t - 1] = y
        return states, self.heads.sample(self.decoder_out(y))

    def ddim_times(self, steps: int | None) -> list[int]:
        """DDIM's steps: ``steps + 1`` evenly spaced integers from T down to 1."""
        T = self.n_steps
        steps = T - 1 if steps is None else check_int(steps, "steps")
        if T > 1 and steps > T - 1:
            raise ValueError(f"steps must be at most n_steps - 1 = {T - 1}, got {steps}")
        grid = torch.linspace(T, 1, max(min(steps, T - 1), 0) + 1, dtype=torch.float64)
        return [int(t) for t in grid.round().tolist()] if T > 1 else [1]

    def _sample_ddim(self, y: torch.Tensor, steps: int | None, eta: float) -> torch.Tensor:
        eta = float(eta)
        if not (math.isfinite(eta) and eta >= 0):
            raise ValueError(f"eta must be a non-negative number, got {eta!r}")
        times = self.ddim_times(steps)
        ab_all = self.alpha_bar_table()
        for t, s in zip(times[:-1], times[1:], strict=True):
            ab_t, ab_s = float(ab_all[t]), float(ab_all[s])
            x0hat = self.denoise(y, t)[1]
            eps = (y - math.sqrt(ab_t) * x0hat) / math.sqrt(1 - ab_t)
            var = eta**2 * (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
            y = math.sqrt(ab_s) * x0hat + math.sqrt(max(1 - ab_s - var, 0.0)) * eps
            if var > 0:
                y = y + math.sqrt(var) * torch.randn_like(y)
        return self.heads.sample(self.decoder_out(y))

    @torch.no_grad()
    def impute(self, x: torch.Tensor, mask: torch.Tensor | None, params: Params) -> torch.Tensor:
        """One draw of the missing entries given the observed ones (RePaint, Lugmayr et al.
        2022): at every reverse step the observed part of ``y_{t-1}`` is drawn from the forward
        process ``q(y_{t-1} | y_0)`` of the observed entries and the rest from the model's
        ``p(y_{t-1} | y_t)``; with ``resample = U > 1`` the merged state is noised back to ``t``
        and the step redone ``U - 1`` times, so the unknown part harmonizes with the known.
        The missing entries are then drawn from ``p(x_0 | y_1)``; observed entries are returned
        unchanged (torch's global RNG; seed it first)."""
        if mask is None or bool(mask.all()):
            return x.clone()
        T = self.n_steps
        y0 = self.embed(torch.where(mask, x, 0.0))
        known = self.embedded_mask(mask)
        loc, scale = self.forward_marginal(y0, T)
        y = torch.where(known, loc + scale * torch.randn_like(loc), torch.randn_like(loc))
        for t in range(T, 1, -1):
            for u in range(self.resample):
                loc_p, scale_p = self.reverse(y, t)
                unknown = loc_p + scale_p * torch.randn_like(loc_p)
                loc_k, scale_k = self.forward_marginal(y0, t - 1)
                y_prev = torch.where(known, loc_k + scale_k * torch.randn_like(loc_k), unknown)
                if u < self.resample - 1:  # back to t by one forward step
                    beta = self.coefficients(t, y)["beta"]
                    y = (1 - beta).sqrt() * y_prev + beta.sqrt() * torch.randn_like(y_prev)
            y = y_prev
        draw = self.heads.sample(self.decoder_out(y))
        return torch.where(mask, x, draw)

    def posterior(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params, *, num_draws: int = 256
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of ``q(y_1 | x_0)``, each ``(n, D)`` (exact for complete
        rows; with missing entries the mean over draws of ``r``)."""
        x0, _ = self._fill_missing(x, mask, num_draws)
        loc, scale = self.forward_marginal(self.embed(x0), 1)
        return loc.mean(0), (scale.pow(2).mean(0) + loc.var(0, unbiased=False)).sqrt()
