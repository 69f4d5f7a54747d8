"""Adversarial training of implicit models (``method="adversarial"``: :class:`ppgen.GAN`).

The generator and a critic take alternating Adam steps (``critic_steps`` critic steps, then one
generator step; Adam with beta = (0.5, 0.9) and a small weight decay, as CTGAN and WGAN-GP
train). The losses are the model's (:meth:`~ppgen.models.gan.GAN.critic_loss`,
:meth:`~ppgen.models.gan.GAN.generator_loss`): a critic loss says how well the critic
separates the batches at that moment, not how good the samples are ("the loss looks fine but
the data are bad"), so it is not used to stop.

Stopping is by sample quality on held-out rows instead: a fraction ``validation`` of the complete
rows is set aside; every ``eval_every`` generator steps the generator draws rows with the same
noise each time (common random numbers, so evaluations compare without Monte-Carlo noise) and
their distance to the held-out rows is computed, by default the model's
:meth:`~ppgen.models.gan.GAN.sample_distance` (unbiased MMD^2 with a multi-scale Gaussian kernel
scaled by the median distance between held-out rows, fixed for the run), or a callable
``metric(real, fake) -> float`` on encoded rows (lower is better). Training stops after
``patience`` evaluations without a better distance, and the generator of the best evaluation is
kept. The metric is computed below the inference layer (the model's own primitive or the
caller's callback), so this engine imports nothing from :mod:`ppgen.evaluate`.

The engine's protocol (what the model provides): ``prepare(x, generator)`` once on the
training rows, ``batches(x)`` (whose ``draw(n)`` gives real and generated critic inputs and
the generator's extra penalty), ``make_critic()``,
``critic_loss``, ``generator_loss``, ``sample(n, params)`` and ``sample_distance``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ppgen._utils import ConvergenceWarning, check_number, progress_bar
from ppgen.infer.engine import Engine, EngineResult, Problem, check_positive_int, model_class
from ppgen.infer.optim import NonFiniteLossError
from ppgen.models.base import GenerativeModel

__all__ = ["TRAIN_DTYPES", "Adversarial", "AdversarialOptions"]

#: Precisions the networks can train in (``AdversarialOptions.train_dtype``).
TRAIN_DTYPES = ("float32", "data")


@dataclass(frozen=True)
class AdversarialOptions:
    """Options of ``method="adversarial"``.

    Attributes
    ----------
    max_steps : int
        Generator steps at most (CTGAN's 300 epochs are 300 steps on tables under 500 rows;
        past 1,000 steps the held-out distance creeps down for little gain: on wine shape
        0.838 and trend 0.850 at 1,000 steps, 0.841 and 0.887 at 1,300 for 40 % more time).
    batch_size : int
        Rows per step, at most the number of training rows (rounded down to a multiple of the
        model's ``pac``; at least one pack).
    lr, critic_lr : float
        Adam learning rates of the generator and the critic (CTGAN's 2e-4 needed twice the
        steps for a worse held-out shape and detection on penguins; the weight average keeps
        1e-3 stable).
    weight_decay : float
        Adam's L2 penalty (CTGAN: 1e-6).
    critic_steps : int
        Critic steps per generator step.
    validation : float
        Fraction of the complete rows held out for the stopping rule (0: no stopping rule;
        every step runs and the final generator is kept).
    eval_every : int
        Generator steps between two evaluations of the held-out distance (one evaluation
        costs about two steps).
    patience : int
        Evaluations without a better distance before stopping (the default waits 200 steps
        after the best: 600 with the former 6 x 100 was most of a run on small tables).
    min_delta : float
        What counts as better for ``patience``: a distance below the best by at least this
        fraction of the first evaluation's distance (improvements within the metric's noise
        do not keep a plateau running; the best generator is kept either way).
    n_eval_samples : int
        Generated rows compared with the held-out rows at each evaluation.
    metric : callable, optional
        ``metric(real, fake) -> float`` on encoded complete rows (``(n, d)`` tensors), lower is
        better; default the model's MMD^2.
    ema : float
        Decay of the exponential moving average of the generator's weights that is evaluated
        and kept (Yazici et al. 2019: averaging damps the oscillation of adversarial training);
        0 evaluates and keeps the raw weights.
    train_dtype : {"float32", "data"}
        Precision of the networks while they train: ``"float32"`` (default; about 1.3x faster
        per step on CPU than float64, and an adversarial game gains nothing from more digits)
        or ``"data"``, the fitted data's dtype. The trained model is cast back to the data's
        dtype, so sampling, saving and ``decode_log_likelihood`` run in it as for any fit.
    """

    max_steps: int = 1000
    batch_size: int = 500
    lr: float = 1e-3
    critic_lr: float = 1e-3
    weight_decay: float = 1e-6
    critic_steps: int = 1
    validation: float = 0.2
    eval_every: int = 50
    patience: int = 4
    min_delta: float = 0.01
    n_eval_samples: int = 1000
    metric: Callable[[torch.Tensor, torch.Tensor], float] | None = None
    ema: float = 0.995
    train_dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in (
            "max_steps",
            "batch_size",
            "critic_steps",
            "eval_every",
            "patience",
            "n_eval_samples",
        ):
            check_positive_int(getattr(self, name), name)
        check_number(self.lr, "lr")
        check_number(self.critic_lr, "critic_lr")
        check_number(self.weight_decay, "weight_decay", positive=False)
        check_number(self.min_delta, "min_delta", positive=False)
        if not 0 <= float(self.validation) < 1:
            raise ValueError(f"validation must be a fraction in [0, 1), got {self.validation!r}")
        if not 0 <= float(self.ema) < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema!r}")
        if self.train_dtype not in TRAIN_DTYPES:
            raise ValueError(f"train_dtype must be one of {TRAIN_DTYPES}, got {self.train_dtype!r}")
        if self.metric is not None and not callable(self.metric):
            raise ValueError(f"metric must be a callable metric(real, fake), got {self.metric!r}")


class Adversarial(Engine):
    """Alternating critic/generator training with a held-out sample-quality stopping rule.

    The result's ``params`` is empty (the generator is the model's weights); ``losses`` is the
    critic loss of each generator step; ``info`` holds ``generator_losses``,
    ``validation_distances`` and ``eval_steps`` (the held-out distance at each evaluation),
    ``best_step``, ``n_steps``, ``stopped_early``, ``converged``, ``n_validation`` and
    ``n_incomplete`` (rows left out for missing entries). A NaN or infinite loss or gradient
    stops training before the optimizer moves and raises :class:`~ppgen.NonFiniteLossError`,
    whose ``fit`` holds the last good generator.
    """

    name: ClassVar[str] = "adversarial"
    kind: ClassVar[str] = "networks"
    loss_label: ClassVar[str] = "critic loss"
    step_label: ClassVar[str] = "generator step"
    Options = AdversarialOptions

    def accepts(self, model: GenerativeModel | type[GenerativeModel]) -> bool:
        cls = model_class(model)
        return bool(cls.implicit) and cls.implements("make_critic")

    def run(self, problem: Problem, options: AdversarialOptions) -> EngineResult:
        model, dtype = problem.model, problem.x.dtype
        # Train in float32 unless asked otherwise (floating data only: the model follows x).
        work = torch.float32 if options.train_dtype == "float32" else dtype
        model.to(dtype=work)
        try:
            return self._run(problem, options, work)
        finally:
            model.to(dtype=dtype)  # sampling, saving and the noise model in the data's dtype

    def _run(
        self, problem: Problem, options: AdversarialOptions, work: torch.dtype
    ) -> EngineResult:
        model, mask, seed = problem.model, problem.mask, problem.seed
        x = problem.x.to(work)
        complete = mask.all(-1)
        rows = x[complete]
        n_incomplete = int((~complete).sum())
        n = rows.shape[0]
        validation = float(options.validation)
        n_val = 0 if validation == 0 else max(2, round(validation * n))
        pac = int(getattr(model, "pac", 1))
        if n - n_val < pac or (n_val and n - n_val < 2):
            raise ValueError(
                f"{type(model).__name__} needs more complete rows: {n} of {x.shape[0]} rows "
                f"have no missing entry ({n_val} held out for validation, pac={pac})"
            )
        # Its own generator: the split and the column modes do not depend on the global RNG.
        split = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(n, generator=split).to(x.device)
        val, train = rows[order[:n_val]], rows[order[n_val:]]
        model.prepare(train, split)
        batches = model.batches(train)
        critic = model.make_critic().to(device=x.device, dtype=x.dtype)
        g_params = [p for p in model.parameters() if p.requires_grad]
        c_params = [p for p in critic.parameters() if p.requires_grad]
        betas = (0.5, 0.9)
        opt_g = torch.optim.Adam(
            g_params, lr=options.lr, betas=betas, weight_decay=options.weight_decay
        )
        opt_c = torch.optim.Adam(
            c_params, lr=options.critic_lr, betas=betas, weight_decay=options.weight_decay
        )
        # No larger than the training rows (a multiple of pac, at least one pack): a batch of
        # 500 draws from 50 rows costs ten times the step and tells the critic nothing more.
        batch = max(pac, min(options.batch_size, train.shape[0]) // pac * pac)
        metric = _Validation(model, val, train, options, seed) if n_val else None
        average = _Average(g_params, float(options.ema))

        losses: list[float] = []
        g_losses: list[float] = []
        distances: list[float] = []
        eval_steps: list[int] = []
        best, best_step, best_state, stopped = math.inf, 0, None, False
        reference, since = math.inf, 0  # the last distance that counted as an improvement
        bar = progress_bar(options.max_steps, "adversarial", problem.progress)
        model.train()
        critic.train()
        try:
            for step in range(1, options.max_steps + 1):
                c_total = 0.0
                for _ in range(options.critic_steps):
                    real, fake, _ = batches.draw(batch)
                    loss = model.critic_loss(critic, real, fake.detach())
                    c_total += _step(opt_c, loss, c_params, "critic", step)
                real, fake, penalty = batches.draw(batch)
                g_loss = model.generator_loss(critic, fake) + penalty
                g_losses.append(_step(opt_g, g_loss, g_params, "generator", step))
                average.update()
                losses.append(c_total / options.critic_steps)
                bar.update()
                if metric is None or step % options.eval_every:
                    continue
                with average.swapped():
                    distance = metric()
                distances.append(distance)
                eval_steps.append(step)
                bar.set_postfix(critic=f"{losses[-1]:.3g}", val=f"{distance:.3g}", refresh=False)
                if distance < best:
                    best, best_step = distance, step
                    with average.swapped():
                        best_state = copy.deepcopy(model.state_dict())
                if distance < reference - options.min_delta * abs(distances[0]):
                    reference, since = distance, 0
                else:
                    since += 1
                    if since >= options.patience:
                        stopped = True
                        break
        except NonFiniteLossError as exc:
            model.eval()
            exc.result = EngineResult(
                params={},
                losses=np.asarray(losses if losses else [np.nan], dtype=float),
                info={"n_steps": len(losses), "stopped": "non-finite loss"},
            )
            raise
        finally:
            bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            best_step = len(losses)
            average.copy_to_model()
        model.eval()
        if metric is not None and not stopped:
            warnings.warn(
                f"training reached max_steps={options.max_steps} before the held-out distance "
                f"stopped improving (best at step {best_step}; the rule waits "
                f"{options.patience} evaluations of {options.eval_every} steps): fit again with "
                "a larger max_steps",
                ConvergenceWarning,
                stacklevel=2,
            )
        info: dict[str, Any] = {
            "converged": bool(stopped) if metric is not None else None,
            "n_steps": len(losses),
            "best_step": best_step,
            "stopped_early": stopped,
            "best_distance": best if distances else math.nan,
            "validation_distances": distances,
            "eval_steps": eval_steps,
            "generator_losses": g_losses,
            "n_validation": n_val,
            "n_incomplete": n_incomplete,
            "batch_size": batch,
            "lr": float(options.lr),
            "critic_steps": int(options.critic_steps),
        }
        return EngineResult(params={}, losses=np.asarray(losses, dtype=float), info=info)


class _Validation:
    """The held-out distance of the current generator: the same noise at every call."""

    def __init__(
        self,
        model: Any,
        val: torch.Tensor,
        train: torch.Tensor,
        options: AdversarialOptions,
        seed: int,
    ) -> None:
        self.model, self.val, self.seed = model, val, int(seed)
        self.n = int(options.n_eval_samples)
        self.metric = options.metric
        if self.metric is None:
            feats = model.comparison_features(val)
            distances = torch.cdist(feats, feats)
            upper = distances[torch.triu_indices(len(feats), len(feats), 1).unbind()]
            median = float(upper.median()) if upper.numel() else 1.0
            self.bandwidth = median if median > 0 else 1.0

    @torch.no_grad()
    def __call__(self) -> float:
        x = self.val
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + 1)
            fake = self.model.sample(self.n, {})
        if self.metric is not None:
            return float(self.metric(x, fake))
        return self.model.sample_distance(x, fake, self.bandwidth)


class _Average:
    """Exponential moving average of the generator's weights (bias-corrected: the first
    steps are not pulled towards the initial weights)."""

    def __init__(self, params: list[torch.Tensor], decay: float) -> None:
        self.params, self.decay, self.t = params, decay, 0
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self) -> None:
        self.t += 1
        # The effective decay grows from 0, so the average starts at the current weights.
        decay = min(self.decay, (1 + self.t) / (10 + self.t))
        for s, p in zip(self.shadow, self.params, strict=True):
            s.lerp_(p, 1.0 - decay)

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """The averaged weights in the model for the block, the trained ones after."""
        if self.decay == 0:
            yield
            return
        saved = [p.detach().clone() for p in self.params]
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(self.params, saved, strict=True):
                    p.copy_(v)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        if self.decay == 0:
            return
        for p, s in zip(self.params, self.shadow, strict=True):
            p.copy_(s)


def _step(
    opt: torch.optim.Optimizer,
    loss: torch.Tensor,
    params: list[torch.Tensor],
    who: str,
    step: int,
) -> float:
    """Backward and one Adam step, unless the loss or the gradient is not finite (then
    :class:`NonFiniteLossError` before the optimizer moves: the weights stay the last good)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads) if grads else loss.new_zeros(())
    value, norm_value = torch.stack([loss.detach().to(norm), norm]).tolist()
    if not (math.isfinite(value) and math.isfinite(norm_value)):
        what = "loss" if not math.isfinite(value) else "gradient"
        raise NonFiniteLossError(
            f"the {who} {what} became non-finite at generator step {step}; training stopped "
            "before the optimizer moved, so the generator keeps its last good weights. Try a "
            "smaller learning rate (lr=..., critic_lr=...) or a different seed."
        )
    opt.step()
    return value
