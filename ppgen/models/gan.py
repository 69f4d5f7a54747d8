"""Generative adversarial network for tables of mixed column kinds (CTGAN's design, WGAN-GP).

Generative story
----------------
A row is the generator's output at a standard normal latent ``z`` (and, with
``conditional=True``, a condition ``c`` naming one category of one label column)::

    c        ~ p(c): a label column j uniformly, then a level of j by its training frequency
    z        ~ Normal(0, I_q)                                  # q = n_latent
    h        = generator([z, one_hot(c)])                      # residual MLP
    for each continuous column j (count columns on the log1p scale):
        m_j  ~ Categorical(softmax(mode logits_j(h)))          # mode of the column's mixture
        x_j  = mu_{j m} + 4 sd_{j m} tanh(alpha_j(h))          # mode-specific normalization
    for each binary or categorical column j:
        x_j  ~ Categorical(softmax(logits_j(h)))

where ``mu_{jk}, sd_{jk}`` are the modes of a Gaussian mixture fitted once to column j of the
training rows (``ppgen.GaussianMixture``, number of modes by BIC up to ``max_modes``): CTGAN's
mode-specific normalization, which lets a bounded ``tanh`` output reach every mode of a
multimodal column. Counts are ``round(expm1(x_j))`` clipped at 0 (so samples stay counts), and
continuous columns that keep a support (``kinds={"x": "positive"}``, ``"bounded:a:b"``) are
generated on the schema's log or logit scale and mapped back inside it by the schema.

There is no likelihood: the generator is trained against a critic (:mod:`ppgen.infer.engines.
adversarial`). During training the discrete draws are relaxed by Gumbel-softmax at temperature
``tau`` (Jang, Gu & Poole 2017), real rows enter the critic in the same representation (value
within a mode and the mode one-hot, labels one-hot), and ``pac`` rows are packed into one critic
input (PacGAN), which penalizes mode collapse. ``critic="wgan-gp"`` (default): Wasserstein loss
with a gradient penalty of weight ``gp_weight`` on interpolates (Gulrajani et al. 2017);
``critic="spectral"``: spectrally normalized critic layers (Miyato et al. 2018) with the
non-saturating loss (Goodfellow et al. 2014). With ``conditional=True`` the batches follow CTGAN's
training-by-sampling: the condition's level is drawn by its log-frequency, the real rows are
drawn among those holding it, and the generator pays a cross-entropy for not producing it.

For likelihood estimates (``ppgen.evaluate.decoder_ais``) the same generator carries the
noise model of Wu et al. (2017), :meth:`GAN.decode_log_likelihood`: each continuous column
Normal around the generated value of its mode (a mixture over the modes, with their generated
probabilities), each count column that Normal on the log1p scale discretized to the count,
each label column Categorical with the generator's probabilities (floored at 1e-6), and the
condition summed out exactly. The model's Pyro program is this noise model with
``sigma=noise``; ``Fit.log_prob`` has no exact value and says so.

Rows with missing entries are left out of training (the generator models complete rows); their
number is in ``fit.info["n_incomplete"]``.

References
----------
Goodfellow, I. et al. (2014). Generative adversarial nets. *NeurIPS*.
Gulrajani, I., Ahmed, F., Arjovsky, M., Dumoulin, V. & Courville, A. (2017). Improved training
of Wasserstein GANs. *NeurIPS*.
Miyato, T., Kataoka, T., Koyama, M. & Yoshida, Y. (2018). Spectral normalization for generative
adversarial networks. *ICLR*.
Lin, Z., Khetan, A., Fanti, G. & Oh, S. (2018). PacGAN: the power of two samples in generative
adversarial networks. *NeurIPS*.
Xu, L., Skoularidou, M., Cuesta-Infante, A. & Veeramachaneni, K. (2019). Modeling tabular data
using conditional GAN. *NeurIPS*.
Jang, E., Gu, S. & Poole, B. (2017). Categorical reparameterization with Gumbel-softmax. *ICLR*.
Wu, Y., Burda, Y., Salakhutdinov, R. & Grosse, R. (2017). On the quantitative analysis of
decoder-based generative models. *ICLR*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import constraints

from ppgen._utils import check_int, check_ints, check_number
from ppgen.data.schema import Column, Schema
from ppgen.models.base import GenerativeModel, Params

__all__ = ["CRITICS", "GAN", "mmd2"]

#: Critic and loss: WGAN with gradient penalty, or spectral norm with the non-saturating loss.
CRITICS = ("wgan-gp", "spectral")
#: Probability floor of the noise model's label columns (keeps AIS finite).
PROB_FLOOR = 1e-6
#: Real rows enter the critic with the value within a mode clipped to this (as CTGAN).
_ALPHA_CLIP = 0.99
_LOG_2PI = math.log(2.0 * math.pi)
#: Kernel widths of the validation MMD, in units of the median distance.
_MMD_SCALES = (0.125, 0.25, 0.5, 1.0, 2.0)
#: Rounds of rejection sampling for ``sample(..., conditions=...)`` before giving up.
_CONDITION_ROUNDS = 100
#: EM iterations and relative tolerance of each column's mixture of modes.
_MODE_STEPS = 100
_MODE_TOL = 1e-6


class _Generator(nn.Module):
    """CTGAN's residual generator: each block concatenates its output to its input."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        width = n_in
        for h in hidden:
            self.blocks.append(nn.Sequential(nn.Linear(width, h), nn.LayerNorm(h), nn.ReLU()))
            width += h
        self.out = nn.Linear(width, n_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = torch.cat([block(h), h], -1)
        return self.out(h)


class _Critic(nn.Module):
    """CTGAN's critic over ``pac`` packed rows: LeakyReLU(0.2) and dropout after each layer."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], pac: int, spectral: bool) -> None:
        super().__init__()
        self.pac = pac
        layers: list[nn.Module] = []
        width = n_in * pac
        wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        for h in hidden:
            layers += [wrap(nn.Linear(width, h)), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
            width = h
        layers.append(wrap(nn.Linear(width, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Scores of the packs, ``(n / pac,)``; ``n`` is a multiple of ``pac``."""
        return self.net(rows.reshape(-1, rows.shape[-1] * self.pac)).squeeze(-1)


def mmd2(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Unbiased MMD^2 between rows ``a`` (n, f) and ``b`` (m, f) (Gretton et al. 2012) with a
    multi-scale Gaussian kernel, the mean of ``exp(-|u - v|^2 / (2 h^2))`` over ``h`` in
    ``bandwidth * (1/8, 1/4, 1/2, 1, 2)``: the median-heuristic scale alone is blind to
    structure much finer than the data's spread (the modes of a ring). The adversarial
    engine's validation distance (``ppgen.evaluate.mmd`` is the public two-sample test)."""
    scales = [bandwidth * f for f in _MMD_SCALES]

    def kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(u, v).pow(2)
        return sum(torch.exp(-d2 / (2.0 * h**2)) for h in scales) / len(scales)

    n, m = a.shape[0], b.shape[0]
    kaa, kbb = kernel(a, a), kernel(b, b)
    within_a = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    within_b = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return within_a + within_b - 2.0 * kernel(a, b).mean()


class GAN(GenerativeModel):
    """Conditional tabular GAN (CTGAN's generator and training, WGAN-GP or spectral critic).

    Parameters
    ----------
    n_latent : int
        Dimension q of the latent noise ``z``.
    hidden : sequence of int
        Widths of the generator's residual blocks.
    critic : {"wgan-gp", "spectral"}
        WGAN loss with gradient penalty, or a spectrally normalized critic with the
        non-saturating loss.
    critic_hidden : sequence of int
        Widths of the critic's hidden layers.
    pac : int
        Rows packed into one critic input (PacGAN; 1 for none). Batches are multiples of it.
        CTGAN packs 10; on these small tables (batches of at most the training rows, e.g.
        106 on wine's training split) 10 leaves the critic about ten packs per step, and
        5 reached a better held-out MMD, shape and trend on wine and penguins in fewer steps
        (benchmarks/results/compare_gan.md).
    conditional : bool
        CTGAN's conditional vector and training-by-sampling over the label columns (ignored
        when the table has none).
    max_modes : int
        Most modes of each continuous column's mixture (chosen by BIC from 1 up).
    tau : float
        Gumbel-softmax temperature of the relaxed discrete outputs during training.
    gp_weight : float
        Weight of the gradient penalty (``critic="wgan-gp"``).
    noise : float
        Standard deviation (encoded scale) of the noise model of the Pyro program; the figure
        ``ppgen.evaluate.elbo``/``iwae``/``ais`` report depends on it, so prefer
        ``ppgen.evaluate.decoder_ais``, which chooses it on held-out rows.

    Notes
    -----
    Trained by ``ppgen.fit(GAN(), data)`` (``method="adversarial"``), which keeps the
    generator of the best validation MMD (:mod:`ppgen.infer.engines.adversarial`).
    ``Fit.params`` is empty: the generator's weights and the column modes are the model's
    state (saved with the fit). ``Fit.log_prob`` raises: a GAN has no likelihood.
    """

    amortized: ClassVar[bool] = True
    implicit: ClassVar[bool] = True
    supported_kinds: ClassVar[tuple[str, ...]] = ("continuous", "count", "binary", "categorical")
    kinds_hint: ClassVar[str] = "GAN models continuous, count, binary and categorical columns"
    latent_site: ClassVar[str] = "z"

    def __init__(
        self,
        n_latent: int = 32,
        hidden: tuple[int, ...] | list[int] = (128, 128),
        critic: str = "wgan-gp",
        *,
        critic_hidden: tuple[int, ...] | list[int] = (128, 128),
        pac: int = 5,
        conditional: bool = True,
        max_modes: int = 10,
        tau: float = 0.2,
        gp_weight: float = 10.0,
        noise: float = 0.1,
    ) -> None:
        super().__init__()
        self.n_latent = check_int(n_latent, "n_latent")
        self.hidden = check_ints(hidden, "hidden")
        if critic not in CRITICS:
            raise ValueError(f"critic must be one of {CRITICS}, got {critic!r}")
        self.critic = critic
        self.critic_hidden = check_ints(critic_hidden, "critic_hidden")
        self.pac = check_int(pac, "pac")
        if not isinstance(conditional, bool):
            raise ValueError(f"conditional must be True or False, got {conditional!r}")
        self.conditional = conditional
        self.max_modes = check_int(max_modes, "max_modes")
        self.tau = check_number(tau, "tau")
        self.gp_weight = check_number(gp_weight, "gp_weight", positive=False)
        self.noise = check_number(noise, "noise")
        self.numeric: tuple[int, ...] = ()
        self.labels: tuple[int, ...] = ()
        self.table_columns: tuple[Column, ...] = ()

    @property
    def default_method(self) -> str:
        return "adversarial"

    def config(self) -> dict[str, Any]:
        return {
            "n_latent": self.n_latent,
            "hidden": list(self.hidden),
            "critic": self.critic,
            "critic_hidden": list(self.critic_hidden),
            "pac": self.pac,
            "conditional": self.conditional,
            "max_modes": self.max_modes,
            "tau": self.tau,
            "gp_weight": self.gp_weight,
            "noise": self.noise,
        }

    # -- construction ------------------------------------------------------------------------------
    def build(self, schema: Schema) -> GAN:
        super().build(schema)
        kinds = schema.kinds
        numeric = [j for j, k in enumerate(kinds) if k in ("continuous", "count")]
        labels = [j for j, k in enumerate(kinds) if k in ("binary", "categorical")]
        widths = [max(schema.columns[j].n_categories, 1) for j in labels]
        self.numeric, self.labels = tuple(numeric), tuple(labels)
        self.table_columns = tuple(schema.columns)  # names and levels for sample(conditions=)
        self.n_numeric, self.n_labels = len(numeric), len(labels)
        self.width = max(widths, default=1)  # levels of the widest label column
        k, c = self.max_modes, self.width
        # Generator outputs and critic features share one layout: numeric values (n_num),
        # numeric modes (n_num x K), label levels (n_lab x C, narrower labels padded).
        self.n_outputs = self.n_numeric * (1 + k) + self.n_labels * c
        self.n_cond = self.n_labels * c if self.conditional else 0
        self.generator = _Generator(self.n_latent + self.n_cond, self.hidden, self.n_outputs)
        counts = [kinds[j] == "count" for j in numeric]
        self.register_buffer("is_count", torch.tensor(counts, dtype=torch.bool))
        on = torch.arange(c)[None, :] < torch.tensor(widths, dtype=torch.long).reshape(-1, 1)
        self.register_buffer("level_on", on.reshape(self.n_labels, c))
        # The column modes and the label frequencies are state, set by prepare() from the
        # training rows and saved with the fit (no code runs at load time).
        self.register_buffer("mode_loc", torch.zeros(self.n_numeric, k))
        self.register_buffer("mode_scale", torch.ones(self.n_numeric, k))
        self.register_buffer("mode_on", torch.ones(self.n_numeric, k, dtype=torch.bool))
        self.register_buffer("level_freq", on.reshape(self.n_labels, c).float())
        return self

    def make_critic(self) -> nn.Module:
        """A fresh critic for the adversarial engine (not part of the saved model)."""
        self._check_built()
        n_in = self.n_outputs + self.n_cond
        return _Critic(n_in, self.critic_hidden, self.pac, self.critic == "spectral")

    def prepare(self, x: torch.Tensor, generator: torch.Generator) -> None:
        """Fit each numeric column's modes and count each label's levels on complete training
        rows ``x`` (encoded); called once by the adversarial engine before training."""
        from ppgen.models.gmm import GaussianMixture  # same layer; only needed here

        with torch.no_grad():
            for i, j in enumerate(self.labels):
                counts = torch.bincount(x[:, j].long(), minlength=self.width)[: self.width]
                self.level_freq[i] = counts.to(self.level_freq.dtype)
            values = self._numeric_scale(x)
            for i in range(self.n_numeric):
                loc, scale = _column_modes(GaussianMixture, values[:, i], self.max_modes, generator)
                k = len(loc)
                self.mode_loc[i], self.mode_scale[i] = 0.0, 1.0
                self.mode_loc[i, :k], self.mode_scale[i, :k] = loc, scale
                self.mode_on[i] = torch.arange(self.max_modes, device=x.device) < k

    def batches(self, x: torch.Tensor) -> _Batches:
        """The sampler of training batches over complete training rows ``x`` (after
        :meth:`prepare`), for the adversarial engine."""
        return _Batches(self, x)

    # -- the generator -----------------------------------------------------------------------------
    def _numeric_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Numeric columns ``(..., n_num)`` on the modelled scale (log1p for counts)."""
        values = x[..., list(self.numeric)]
        return torch.where(self.is_count, torch.log1p(values.clamp_min(0)), values)

    def _split(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw outputs as ``alpha`` (..., n_num), mode logits (..., n_num, K) (unused modes
        -inf) and level logits (..., n_lab, C) (padding -inf)."""
        m, k, c = self.n_numeric, self.max_modes, self.width
        alpha = raw[..., :m]
        modes = (
            raw[..., m : m * (1 + k)].unflatten(-1, (m, k)).masked_fill(~self.mode_on, -math.inf)
        )
        levels = raw[..., m * (1 + k) :].unflatten(-1, (self.n_labels, c))
        return alpha, modes, levels.masked_fill(~self.level_on, -math.inf)

    def _values(self, alpha: torch.Tensor) -> torch.Tensor:
        """Each numeric column's value at every mode, ``(..., n_num, K)``, on the modelled
        scale: ``mu_k + 4 sd_k tanh(alpha)``."""
        return self.mode_loc + 4.0 * self.mode_scale * torch.tanh(alpha).unsqueeze(-1)

    def _raw(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = z if cond is None or cond.shape[-1] == 0 else torch.cat([z, cond], -1)
        return self.generator(h)

    def fake_features(self, n: int, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` generated rows as the critic sees them (Gumbel-softmax relaxed, differentiable
        in the generator) and their level logits ``(n, n_lab, C)``, given conditions."""
        like = self.mode_loc
        z = torch.randn(n, self.n_latent, dtype=like.dtype, device=like.device)
        alpha, modes, levels = self._split(self._raw(z, cond))
        parts = [torch.tanh(alpha)]
        if self.n_numeric:
            parts.append(F.gumbel_softmax(modes, tau=self.tau).flatten(-2))
        if self.n_labels:
            parts.append(F.gumbel_softmax(levels, tau=self.tau).flatten(-2))
        return torch.cat(parts, -1), levels

    # -- conditions (CTGAN's conditional vector) ---------------------------------------------------
    def draw_condition(
        self, n: int, log_frequency: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` conditions ``(n, n_cond)``: a label column uniformly, then a level by its
        training frequency (sampling: the rows then follow the training distribution) or by
        log(1 + frequency) (training, CTGAN); also the label and the level drawn."""
        like = self.level_freq
        which = torch.randint(max(self.n_labels, 1), (n,), device=like.device)
        if not self.n_cond:
            return like.new_zeros(n, 0), which, torch.zeros_like(which)
        weights = torch.log1p(self.level_freq) if log_frequency else self.level_freq
        level = torch.multinomial(weights[which], 1).squeeze(-1)
        cond = like.new_zeros(n, self.n_cond)
        cond[torch.arange(n, device=like.device), which * self.width + level] = 1.0
        return cond, which, level

    # -- losses (read by the adversarial engine) ---------------------------------------------------
    def critic_loss(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor:
        """The critic's loss on a batch (``fake`` detached by the caller)."""
        real_score, fake_score = critic(real), critic(fake)
        if self.critic == "spectral":
            return F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
        loss = fake_score.mean() - real_score.mean()
        if self.gp_weight > 0:
            loss = loss + self.gp_weight * _gradient_penalty(critic, real, fake)
        return loss

    def generator_loss(self, critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial loss (its condition penalty is added by the caller)."""
        score = critic(fake)
        if self.critic == "spectral":
            return F.softplus(-score).mean()  # non-saturating
        return -score.mean()

    # -- sampling ----------------------------------------------------------------------------------
    def generate(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Encoded rows for latents ``z`` (n, q) and conditions: modes and levels drawn from
        the generator's probabilities (torch's global RNG)."""
        alpha, modes, levels = self._split(self._raw(z, cond))
        n = z.shape[0]
        x = alpha.new_zeros(n, self._check_built())
        if self.n_numeric:
            mode = torch.multinomial(modes.softmax(-1).flatten(0, 1), 1).reshape(n, -1, 1)
            value = self._values(alpha).gather(-1, mode).squeeze(-1)
            # A count: rounded on the count scale, never below 0.
            value = torch.where(self.is_count, torch.expm1(value).round().clamp_min(0), value)
            x[:, list(self.numeric)] = value
        if self.n_labels:
            level = torch.multinomial(levels.softmax(-1).flatten(0, 1), 1).reshape(n, -1)
            x[:, list(self.labels)] = level.to(x.dtype)
        return x

    def sample(
        self, n: int, params: Params, conditions: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        """Draw ``n`` rows on the encoded scale (torch's global RNG; seed it first).

        ``conditions`` (``Fit.sample(n, seed=..., conditions={"species": "Gentoo"})``, CTGAN's
        ``condition_column``/``condition_value``): label columns and the level each sampled
        row must hold. With ``conditional=True`` the generator is given the condition vector
        of one of them (the rarest level, as CTGAN trains it: training-by-sampling), and rows
        whose drawn levels differ from any condition are rejected and drawn again, so every
        row holds every condition and the other columns follow the generator's distribution
        given them. ``ValueError`` for an unknown or non-label column, an unknown level, or
        levels the generator (almost) never produces together.
        """
        self._check_built()
        like = self.mode_loc
        if conditions:
            return self._sample_given(int(n), self._condition_codes(conditions))
        z = torch.randn(int(n), self.n_latent, dtype=like.dtype, device=like.device)
        cond, _, _ = self.draw_condition(int(n))
        return self.generate(z, cond)

    def _condition_codes(self, conditions: Mapping[str, Any]) -> list[tuple[int, int]]:
        """``(label index, level code)`` of each condition, checked against the schema."""
        if not isinstance(conditions, Mapping):
            raise ValueError(
                f"conditions must be a mapping {{column: level}}, got {type(conditions).__name__}"
            )
        names = [c.name for c in self.table_columns]
        label_names = [names[j] for j in self.labels]
        codes = []
        for name, value in conditions.items():
            if name not in names:
                raise ValueError(f"conditions: no column {name!r} in the fitted table {names}")
            j = names.index(name)
            if j not in self.labels:
                raise ValueError(
                    f"conditions: column {name!r} is {self.table_columns[j].kind}; a GAN "
                    f"conditions on binary or categorical columns only ({label_names})"
                )
            levels = tuple(self.table_columns[j].categories)
            matches = [i for i, level in enumerate(levels) if _same_level(level, value)]
            if not matches:
                raise ValueError(
                    f"conditions: column {name!r} has no level {value!r}; its levels are "
                    f"{list(levels)}"
                )
            codes.append((self.labels.index(j), matches[0]))
        return codes

    def _sample_given(self, n: int, codes: list[tuple[int, int]]) -> torch.Tensor:
        """Rejection sampling of ``n`` rows holding every ``(label, level)`` of ``codes``."""
        like = self.mode_loc
        cond = None
        if self.n_cond:
            # The generator's condition vector names one label: the rarest required level.
            i, level = min(codes, key=lambda c: float(self.level_freq[c[0], c[1]]))
            cond = like.new_zeros(self.n_cond)
            cond[i * self.width + level] = 1.0
        columns = [self.labels[i] for i, _ in codes]
        wanted = like.new_tensor([float(level) for _, level in codes])
        kept, got = [], 0
        for _ in range(_CONDITION_ROUNDS):
            m = max(n - got, 100)
            z = torch.randn(m, self.n_latent, dtype=like.dtype, device=like.device)
            c = like.new_zeros(m, 0) if cond is None else cond.expand(m, -1)
            x = self.generate(z, c)
            ok = (x[:, columns] == wanted).all(-1)
            kept.append(x[ok])
            got += int(ok.sum())
            if got >= n:
                return torch.cat(kept)[:n]
        names = [c.name for c in self.table_columns]
        given = {names[self.labels[i]]: self.table_columns[self.labels[i]].categories[lv]
                 for i, lv in codes}  # fmt: skip
        raise ValueError(
            f"conditions {given}: the generator produced only {got} such rows in "
            f"{_CONDITION_ROUNDS} rounds of rejection sampling (fewer than the {n} asked); "
            "it has (almost) not learned this combination of levels"
        )

    def sample_distance(self, real: torch.Tensor, fake: torch.Tensor, bandwidth: float) -> float:
        """The adversarial engine's validation distance between complete encoded rows: MMD^2
        (:func:`mmd2`) on :meth:`comparison_features`."""
        a, b = self.comparison_features(real), self.comparison_features(fake)
        return float(mmd2(a, b, bandwidth))

    def comparison_features(self, x: torch.Tensor) -> torch.Tensor:
        """Rows as the validation distance compares them: continuous values as encoded
        (standardized), counts as log1p, labels one-hot scaled by 1/sqrt(2) (a change of label
        is at distance 1, as in ``ppgen.evaluate.synthetic.features``)."""
        parts = [self._numeric_scale(x)]
        if self.n_labels:
            codes = x[:, list(self.labels)].long()
            parts.append(F.one_hot(codes, self.width).flatten(-2).to(x.dtype) / math.sqrt(2.0))
        return torch.cat(parts, -1)

    # -- the noise model (Wu et al. 2017) ----------------------------------------------------------
    def _conditions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every condition ``(C, n_cond)`` and its log prior probability ``(C,)``; a single
        empty condition without them."""
        like = self.level_freq
        if not self.n_cond:
            return like.new_zeros(1, 0), like.new_zeros(1)
        flat = self.level_on.flatten()
        freq = self.level_freq / self.level_freq.sum(-1, keepdim=True)
        log_prior = (freq.log() - math.log(self.n_labels)).flatten()[flat]
        conds = torch.eye(self.n_cond, dtype=like.dtype, device=like.device)[flat]
        return conds, log_prior

    def _sigma(self, sigma: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The noise scale of each numeric column, ``(n_num,)``, from a float or a tensor
        with one entry per column of the table."""
        d = self._check_built()
        s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
        if s.dim() == 0:
            s = s.expand(d)
        if s.shape != (d,):
            raise ValueError(
                f"sigma must be a float or a tensor of {d} entries (one per column), got shape "
                f"{tuple(s.shape)}"
            )
        s = s[list(self.numeric)]
        if not bool((s > 0).all()):
            raise ValueError("sigma must be positive at every continuous and count column")
        return s

    def decode_log_likelihood(
        self,
        params: Params,
        z: torch.Tensor,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        sigma: float | torch.Tensor,
    ) -> torch.Tensor:
        """``log p(x_obs | z)`` of each row under the noise model, shape ``z.shape[:-1]``.

        ``z`` is ``(S..., N, n_latent)``, ``x`` and ``mask`` ``(N, d)`` encoded (mask True =
        observed). Continuous column j: ``sum_k pi_k Normal(x_j; mu_k + 4 sd_k tanh(alpha_j),
        sigma_j)`` over its modes, with the generator's mode probabilities ``pi`` (one mode:
        a Normal around the generated value); count column: the probability that
        ``round(expm1(v))`` (clipped at 0) equals the count, ``v`` that mixture on the log1p
        scale (floored at 1e-6); label column: the generator's softmax probability of the
        level, floored at 1e-6 and renormalized. With conditions (``conditional=True``) their
        prior is summed out exactly. ``sigma``: a float, or a tensor with one entry per column
        of the table (read at the continuous and count columns).
        """
        self._check_built()
        conds, log_prior = self._conditions()
        s = self._sigma(sigma, z)
        obs = torch.ones_like(x, dtype=torch.bool) if mask is None else mask
        terms = []
        for c in range(conds.shape[0]):
            cond = conds[c].expand(*z.shape[:-1], conds.shape[1])
            terms.append(log_prior[c] + self._log_lik(self._raw(z, cond), x, obs, s))
        return torch.logsumexp(torch.stack(terms), 0)

    def decode_sample(
        self, params: Params, z: torch.Tensor, sigma: float | torch.Tensor
    ) -> torch.Tensor:
        """Encoded rows ``(S..., N, d)`` drawn from the noise model of
        :meth:`decode_log_likelihood` given latents ``z`` ``(S..., N, n_latent)`` (torch's
        global RNG): a condition from its prior, each continuous column's mode from the
        generator's probabilities and the value Normal(generated value, sigma) (counts that
        value on the log1p scale, rounded back to a count, clipped at 0), each label from the
        generator's probabilities floored at 1e-6. The rows BDMC simulates
        (:func:`ppgen.evaluate.decoder_bdmc`)."""
        d = self._check_built()
        s = self._sigma(sigma, z)
        batch = z.shape[:-1]
        rows = int(math.prod(batch))
        cond, _, _ = self.draw_condition(rows)
        alpha, modes, levels = self._split(self._raw(z.reshape(rows, -1), cond))
        x = alpha.new_zeros(rows, d)
        if self.n_numeric:
            mode = torch.multinomial(modes.softmax(-1).flatten(0, 1), 1).reshape(rows, -1, 1)
            value = self._values(alpha).gather(-1, mode).squeeze(-1)
            value = value + s * torch.randn_like(value)
            value = torch.where(self.is_count, torch.expm1(value).round().clamp_min(0), value)
            x[:, list(self.numeric)] = value
        if self.n_labels:
            probs = levels.softmax(-1).clamp_min(PROB_FLOOR) * self.level_on
            level = torch.multinomial(probs.flatten(0, 1), 1).reshape(rows, -1)
            x[:, list(self.labels)] = level.to(x.dtype)
        return x.reshape(*batch, d)

    def _log_lik(
        self, raw: torch.Tensor, x: torch.Tensor, obs: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor:
        alpha, modes, levels = self._split(raw)
        total = raw.new_zeros(raw.shape[:-1])
        if self.n_numeric:
            log_pi = modes.log_softmax(-1)
            values = self._values(alpha)  # (..., n_num, K)
            xs = self._numeric_scale(x).unsqueeze(-1)  # (N, n_num, 1)
            normal = torch.logsumexp(log_pi + _normal_log_prob(xs, values, s[:, None]), -1)
            # Counts: P(round(expm1(v)) = c) = P(log1p(c - 1/2) <= v < log1p(c + 1/2)), from
            # -inf for c = 0 (every negative draw is clipped to 0).
            counts = x[..., list(self.numeric)].unsqueeze(-1)
            hi = (torch.log1p(counts + 0.5) - values) / s[:, None]
            lo = (torch.log1p((counts - 0.5).clamp_min(-0.5)) - values) / s[:, None]
            cdf_lo = torch.where(counts > 0, torch.special.ndtr(lo), torch.zeros_like(lo))
            mass = (log_pi.exp() * (torch.special.ndtr(hi) - cdf_lo)).sum(-1)
            discrete = mass.clamp_min(PROB_FLOOR).log()
            term = torch.where(self.is_count, discrete, normal)
            seen = obs[..., list(self.numeric)]
            total = total + torch.where(seen, term, torch.zeros_like(term)).sum(-1)
        if self.n_labels:
            probs = levels.softmax(-1).clamp_min(PROB_FLOOR) * self.level_on
            probs = probs / probs.sum(-1, keepdim=True)
            codes = x[..., list(self.labels)].long().clamp(0, self.width - 1)
            codes = codes.expand(probs.shape[:-1]).unsqueeze(-1)
            term = probs.gather(-1, codes).squeeze(-1).log()
            seen = obs[..., list(self.labels)]
            total = total + torch.where(seen, term, torch.zeros_like(term)).sum(-1)
        return total

    # -- the Pyro program: the generator and its noise model ---------------------------------------
    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        """``z ~ Normal(0, I)`` per row and ``x`` scored by :meth:`decode_log_likelihood` with
        ``sigma=noise`` (the observation site ``"x"``)."""
        self._check_built()
        like = self.mode_loc
        with pyro.plate("data", x.shape[-2], subsample_size=subsample_size, dim=-1) as ind:
            zero = like.new_zeros(len(ind), self.n_latent)
            z = pyro.sample("z", dist.Normal(zero, 1.0).to_event(1))
            xb = x if len(ind) == x.shape[-2] else x[ind]
            mb = None if mask is None else (mask if len(ind) == mask.shape[-2] else mask[ind])
            pyro.sample("x", _NoiseModel(self, z, mb), obs=xb)

    def guide(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        """The prior ``z ~ Normal(0, I)``: a GAN has no encoder, so ``ppgen.evaluate.elbo`` and
        ``iwae`` propose from the prior (valid, loose bounds of the noise model's likelihood;
        ``decoder_ais`` anneals from the prior to the posterior instead)."""
        self._check_built()
        like = self.mode_loc
        with pyro.plate("data", x.shape[-2], subsample_size=subsample_size, dim=-1) as ind:
            zero = like.new_zeros(len(ind), self.n_latent)
            pyro.sample("z", dist.Normal(zero, 1.0).to_event(1))

    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        return {}

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.generator.parameters())


class _Batches:
    """Training batches over the complete training rows (the adversarial engine's sampler).

    The label one-hots, each numeric column's mode responsibilities and its value within every
    mode are computed once; a batch draws the rows, a mode per numeric entry from its
    responsibilities (CTGAN's mode-specific normalization) and, with conditions, the rows among
    those holding the condition's level (training-by-sampling).
    """

    def __init__(self, gan: GAN, x: torch.Tensor) -> None:
        self.gan, self.n = gan, x.shape[0]
        with torch.no_grad():
            values = gan._numeric_scale(x).unsqueeze(-1)  # (N, n_num, 1)
            log_resp = _normal_log_prob(values, gan.mode_loc, gan.mode_scale)
            self.resp = log_resp.masked_fill(~gan.mode_on, -math.inf).softmax(-1)
            within = (values - gan.mode_loc) / (4.0 * gan.mode_scale)
            self.alpha = within.clamp(-_ALPHA_CLIP, _ALPHA_CLIP)  # (N, n_num, K)
            codes = x[:, list(gan.labels)].long()  # (N, n_lab)
            self.levels = F.one_hot(codes, gan.width).flatten(-2).to(x.dtype)
            # Rows sorted by level, per label: a level's holders are one contiguous run.
            self.order = codes.mT.argsort(-1)  # (n_lab, N)
            counts = F.one_hot(codes, gan.width).sum(0)  # (n_lab, C)
            self.count = counts
            self.start = counts.cumsum(-1) - counts

    def real(self, rows: torch.Tensor) -> torch.Tensor:
        """Features of training rows ``rows`` as the critic sees them."""
        gan, b = self.gan, len(rows)
        parts = []
        if gan.n_numeric:
            mode = torch.multinomial(self.resp[rows].flatten(0, 1), 1).reshape(b, -1, 1)
            parts.append(self.alpha[rows].gather(-1, mode).squeeze(-1))
            parts.append(F.one_hot(mode.squeeze(-1), gan.max_modes).flatten(-2).to(self.alpha))
        else:
            parts.append(self.alpha.new_zeros(b, 0))
        if gan.n_labels:
            parts.append(self.levels[rows])
        return torch.cat(parts, -1)

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Real features, generated features (with the same conditions appended when the
        model has them) and the generator's penalty for missing its conditions."""
        gan = self.gan
        device = self.alpha.device
        if not gan.n_cond:
            rows = torch.randint(self.n, (n,), device=device)
            fake, _ = gan.fake_features(n, None)
            return self.real(rows), fake, fake.new_zeros(())
        cond, which, level = gan.draw_condition(n, log_frequency=True)
        u = torch.rand(n, dtype=self.alpha.dtype, device=device)
        offset = (u * self.count[which, level]).long().clamp_max(self.count[which, level] - 1)
        rows = self.order[which, self.start[which, level] + offset]
        fake, levels = gan.fake_features(n, cond)
        penalty = F.cross_entropy(levels[torch.arange(n, device=device), which], level)
        return torch.cat([self.real(rows), cond], -1), torch.cat([fake, cond], -1), penalty


class _NoiseModel(dist.TorchDistribution):
    """The site ``"x"``: :meth:`GAN.decode_log_likelihood` at ``sigma=noise`` as a
    distribution (batch shape ``z.shape[:-1]``, event the row); it is only scored."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector

    def __init__(self, gan: GAN, z: torch.Tensor, mask: torch.Tensor | None) -> None:
        self.gan, self.z, self.obs_mask = gan, z, mask
        super().__init__(z.shape[:-1], torch.Size([gan.dim]), validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.gan.decode_log_likelihood({}, self.z, value, self.obs_mask, self.gan.noise)

    def expand(self, batch_shape, _instance=None) -> _NoiseModel:
        batch_shape = torch.Size(batch_shape)
        z = self.z.expand(batch_shape + self.z.shape[-1:])
        return _NoiseModel(self.gan, z, self.obs_mask)


def _same_level(level: Any, value: Any) -> bool:
    """Whether a user's ``value`` names the schema's ``level`` (also as text, so a level read
    as 1 from a CSV is named by 1 or "1")."""
    try:
        if bool(level == value):
            return True
    except (TypeError, ValueError):
        pass
    return str(level) == str(value)


def _normal_log_prob(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - loc) / scale) ** 2 - torch.log(scale) - 0.5 * _LOG_2PI


def _gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``E (|grad D(u)| - 1)^2`` at interpolates ``u`` between packs of real and generated rows
    (one mixing weight per pack, as CTGAN)."""
    pac = critic.pac
    packs = real.shape[0] // pac
    eps = torch.rand(packs, 1, 1, dtype=real.dtype, device=real.device)
    eps = eps.expand(packs, pac, 1).reshape(-1, 1)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    norms = grad.reshape(packs, -1).norm(dim=-1)
    return ((norms - 1.0) ** 2).mean()


def _column_modes(
    mixture: type, values: torch.Tensor, max_modes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Means and standard deviations of the modes of one column: ``ppgen.GaussianMixture``
    fitted by maximum-likelihood EM (a k-means++ start, at most ``_MODE_STEPS`` iterations)
    with 1, 2, ... components, stopping after two sizes without a better BIC; the best by
    BIC. (CTGAN prunes a 10-component variational Dirichlet-process mixture instead.)"""
    x = values[:, None]
    n = x.shape[0]
    distinct = int(torch.unique(values).numel())
    spread = float(values.std()) if n > 1 else 0.0
    if distinct < 2 or not spread > 0:
        return values.new_tensor([float(values.mean()) if n else 0.0]), values.new_tensor([1e-3])
    schema = Schema((Column("value", "continuous", "float64"),), "tensor")
    mask = torch.ones_like(x, dtype=torch.bool)
    best, best_bic, worse = None, math.inf, 0
    for k in range(1, min(max_modes, distinct, n) + 1):
        gmm = mixture(k, "diag", n_init=1).build(schema)
        params, previous = gmm.init_params(x, mask, generator), -math.inf  # a k-means++ start
        for _ in range(_MODE_STEPS):
            new, objective = gmm.em_step(x, mask, params)
            if not math.isfinite(float(objective)):
                break
            params, gain, previous = new, float(objective) - previous, float(objective)
            if gain <= _MODE_TOL * abs(previous):
                break
        loglik = float(gmm.log_prob(x, mask, params).sum())
        bic = -2.0 * loglik + gmm.n_parameters() * math.log(n)
        if bic < best_bic:
            best, best_bic, worse = params, bic, 0
        else:
            worse += 1
            if worse >= 2:
                break
    loc = best["locs"][:, 0]
    scale = best["precision"][:, 0].rsqrt().clamp_min(1e-3 * spread)
    return loc, scale
