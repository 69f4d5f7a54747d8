"""Minibatch SVI of the networks of amortized models (VAE, hierarchical VAE), early stopping on
held-out rows; ``method="svi"`` for models with ``amortized = True``."""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyro
import torch
from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger

from ppgen._utils import ConvergenceWarning, progress_bar
from ppgen.infer import distributed as dist
from ppgen.infer.engine import Engine, EngineResult, Problem, check_positive_int, model_class
from ppgen.infer.engines._ema import WeightAverage
from ppgen.infer.optim import NonFiniteLossError
from ppgen.models.base import GenerativeModel

__all__ = ["ELBOS", "OBJECTIVES", "MinibatchSVI"]

#: How the training loss is computed (see :class:`MinibatchOptions`).
ELBOS = ("auto", "direct", "trace")
#: What the training loss is (see :class:`MinibatchOptions`).
OBJECTIVES = ("elbo", "iwae")


class _ScaleLatents(Messenger):
    """Multiply the log density of every unobserved sample site by ``weight``.

    Applied to both the model and the guide, it turns Trace_ELBO's
    ``log p(x|z) + log p(z) - log q(z)`` into ``log p(x|z) + weight (log p(z) - log q(z))``:
    the KL term annealed, and nothing else touched (the observed site ``"x"`` keeps weight 1).
    """

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = float(weight)

    def _process_message(self, msg: dict) -> None:
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = msg["scale"] * self.weight


@dataclass(frozen=True)
class MinibatchOptions:
    """Options of ``method="svi"`` for amortized models (see :class:`MinibatchSVI`).

    Attributes
    ----------
    batch_size : int
        Rows per Adam step (all rows when the table is smaller).
    max_epochs : int
        Passes over the training rows at most.
    lr : float
        Adam's learning rate.
    validation : float
        Fraction of rows held out for early stopping (0 for none: every epoch runs and the final
        weights are kept). At least one row is held out when positive.
    patience : int
        Epochs without a better validation ELBO before stopping.
    kl_warmup : int
        Epochs of linear KL annealing: the latent terms ``log p(z) - log q(z|x)`` of the ELBO
        are weighted by ``min(1, epoch / kl_warmup)`` (epoch counted from 1) in the training
        loss. The recorded training losses are that weighted loss (so they can rise as the
        weight grows); the validation ELBO is always the full ELBO. With ``objective="iwae"``
        the weight multiplies the latent terms inside every log importance weight,
        ``log w_j = log p(x|z_j) + beta (log p(z_j) - log q(z_j|x))``, and the validation bound
        is always unweighted.
    num_particles : int
        Draws of the latents per row in each step: averaged in the ELBO objective, the K
        importance samples of the IWAE objective.
    clip_norm : float, optional
        Clip the gradient's norm at this value.
    elbo : {"auto", "direct", "trace"}
        How the loss is computed. ``"trace"``: Pyro's ``Trace_ELBO`` on the model and guide
        (Pyro's argument validation off); ``"direct"``: the model's own ``elbo_rows``, the same
        estimator with the same draws without tracing the Pyro programs at every step (the
        tests check that both train identically); ``"auto"``: ``"direct"`` when the model has
        ``elbo_rows``, else ``"trace"``. ``JitTrace_ELBO`` is not offered: it compiles the
        parameters of Pyro's param store, and the networks here are module parameters.
        With ``objective="iwae"`` the loss is the model's ``iwae_rows`` (direct where the model
        provides direct log weights, as VAE and HierarchicalVAE do); ``elbo="trace"`` is then
        refused.
    objective : {"elbo", "iwae"}
        The training objective per row. ``"elbo"``: the evidence lower bound, averaged over
        ``num_particles`` draws. ``"iwae"``: the importance-weighted bound of the observed
        entries, ``logsumexp_j log w_j - log K`` over ``K = num_particles`` reparameterized
        guide draws (Burda et al. 2016; with missing entries this is MIWAE's objective, Mattei
        & Frellsen 2019), a tighter bound on ``log p(x_obs)`` for K > 1 that fits the decoder
        closer to maximum likelihood and trains the guide as a proposal for importance
        sampling, which is what MIWAE imputation and ``ppgen.evaluate.iwae`` use. K = 1 is the
        ELBO objective exactly. Early stopping then watches the held-out IWAE bound with the
        same K (8-particle ELBO for ``"elbo"``).
    ema : float, optional
        Keep an exponential moving average of the weights with this decay per Adam step (e.g.
        0.999; :class:`~ppgen.infer.engines._ema.WeightAverage`, with its warm-up): the
        validation objective, early stopping and the weights the fit keeps are the
        average's, as is standard for diffusion models. None (the default): no average, the
        raw weights. 0 gives the raw weights too, through the averaging code.
    """

    batch_size: int = 128
    max_epochs: int = 200
    lr: float = 1e-3
    validation: float = 0.1
    patience: int = 20
    kl_warmup: int = 0
    num_particles: int = 1
    clip_norm: float | None = None
    elbo: str = "auto"
    objective: str = "elbo"
    ema: float | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_epochs", "patience", "num_particles"):
            check_positive_int(getattr(self, name), name)
        kl_warmup = self.kl_warmup
        if isinstance(kl_warmup, bool) or int(kl_warmup) != kl_warmup or kl_warmup < 0:
            raise ValueError(f"kl_warmup must be a non-negative integer, got {kl_warmup!r}")
        if not 0 <= float(self.validation) < 1:
            raise ValueError(f"validation must be a fraction in [0, 1), got {self.validation!r}")
        if not (float(self.lr) > 0 and math.isfinite(float(self.lr))):
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.elbo not in ELBOS:
            raise ValueError(f"elbo must be one of {ELBOS}, got {self.elbo!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.ema is not None and not 0 <= float(self.ema) < 1:
            raise ValueError(f"ema must be a decay in [0, 1) or None, got {self.ema!r}")
        if self.objective == "iwae" and self.elbo == "trace":
            raise ValueError(
                "elbo='trace' applies to objective='elbo'; the IWAE objective is the model's "
                "iwae_rows (use elbo='auto')"
            )


class MinibatchSVI(Engine):
    """Minibatch SVI of an amortized model's networks, with early stopping.

    Each epoch shuffles the training rows (seeded) into minibatches of ``batch_size`` and takes
    one Adam step per minibatch on the negative training objective per row (the ELBO, or the
    importance-weighted bound with ``objective="iwae"``). After each epoch the same objective
    of the held-out rows is computed with common random numbers (the same draws every epoch, so
    that epochs compare without Monte-Carlo noise); training stops when it has not improved for
    ``patience`` epochs, and the weights of the best epoch are kept. Network initialization
    (the model is built under the fit's seed), the validation split, minibatch order and the
    draws all follow from the seed: two fits with the same seed on CPU are identical.

    The result's ``params`` is empty (the networks are the model's weights, ``fit.model``);
    ``losses`` is the mean negative training objective per row of each epoch (nats, encoded
    scale); ``info`` holds ``validation_losses`` (per epoch, the same objective),
    ``validation_elbo`` (the same curve as ELBO per row on the data's own scale, comparable with
    :func:`ppgen.evaluate.elbo`), ``converged``,
    ``best_epoch``, ``n_epochs``, ``stopped_early``, ``objective`` and ``num_particles``. A
    NaN or infinite loss or gradient stops training before the optimizer moves and raises
    :class:`~ppgen.NonFiniteLossError`, whose ``fit`` holds the last good weights (not
    necessarily the best validation epoch's) and the losses of the complete epochs.
    """

    name: ClassVar[str] = "svi"
    kind: ClassVar[str] = "networks"
    loss_label: ClassVar[str] = "negative ELBO (nats)"
    step_label: ClassVar[str] = "epoch"
    Options = MinibatchOptions
    #: Distributed: each rank trains on its rows; every step averages the ranks' gradients
    #: (weighted by their minibatch rows), so the weights stay identical on every rank.
    parallel: ClassVar[str] = "rows"

    def accepts(self, model: GenerativeModel | type[GenerativeModel]) -> bool:
        cls = model_class(model)
        # An implicit model (GAN) has networks but no objective to maximize: its own engine.
        return bool(cls.amortized) and not cls.implicit

    def run(self, problem: Problem, options: MinibatchOptions) -> EngineResult:
        model, x, mask, seed = problem.model, problem.x, problem.mask, problem.seed
        cls = type(model)
        elbo = options.elbo
        if elbo == "direct" and not cls.implements("elbo_rows"):
            raise ValueError(f"{cls.__name__} has no elbo_rows; use elbo='trace'")
        if options.objective == "iwae" and not cls.implements("iwae_rows"):
            raise ValueError(f"{cls.__name__} has no iwae_rows; use objective='elbo'")
        if elbo == "auto":
            elbo = "direct" if cls.implements("elbo_rows") else "trace"
        n = x.shape[0]
        ctx = problem.distributed if problem.distributed is not None else None
        # Its own generator: the split and minibatch order do not depend on the global RNG.
        # Each rank of a distributed run splits and shuffles its own rows with its own stream.
        generator = torch.Generator().manual_seed(_rank_seed(seed, ctx))
        order = torch.randperm(n, generator=generator)
        validation = float(options.validation)
        n_val = 0 if validation == 0 else min(n - 1, max(1, round(validation * n)))
        val_rows, train_rows = order[:n_val].to(x.device), order[n_val:].to(x.device)
        epochs = None
        if problem.stream is not None:
            # A streamed table (ppgen.infer.stream): x is its seeded sample; the validation
            # rows are drawn from the sample as above and left out of the streamed epochs,
            # which visit row groups and their rows in a seeded order (Stream.epoch_order).
            stream = problem.stream
            if ctx is not None:
                # Every rank holds the same sample: the split is drawn alike on all (the
                # fit's seed), rank 0 alone validates on it, each rank streams its own groups.
                order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
                val_rows = order[:n_val].to(x.device) if ctx.rank == 0 else order[:0]
            held_out = np.sort(stream.source.sample_index[order[:n_val].numpy()])
            empty = (x[:0], mask[:0])  # a lockstep part of no rows
            epochs = stream.minibatches(int(options.batch_size), generator, held_out, empty)
            train_rows = stream.rows(held_out)
        trainer = _Trainer(model, elbo, int(options.num_particles), options.objective, ctx)
        try:
            losses, val_losses, best_epoch, stopped = trainer.run(
                x,
                mask,
                train_rows,
                val_rows,
                epochs=epochs,
                generator=generator,
                batch_size=int(options.batch_size),
                max_epochs=int(options.max_epochs),
                lr=float(options.lr),
                patience=int(options.patience),
                kl_warmup=int(options.kl_warmup),
                clip_norm=options.clip_norm,
                ema=options.ema,
                seed=seed,
                progress=problem.progress,
            )
        except NonFiniteLossError as exc:
            # Hours of training are not thrown away: the weights before the bad step.
            model.eval()
            exc.result = EngineResult(
                params={},
                losses=np.asarray(trainer.losses, dtype=float),
                info={"n_epochs": len(trainer.losses), "stopped": "non-finite loss"},
            )
            raise
        model.eval()
        val_jacobian = None
        if ctx is not None:
            n_val, val_jacobian = _global_validation(problem, val_rows, ctx)
        if not stopped and n_val > 0:
            warnings.warn(
                f"training reached max_epochs={options.max_epochs} before the validation loss "
                f"stopped improving (best epoch {best_epoch}; early stopping waits "
                f"{options.patience} epochs without improvement): fit again with a larger "
                "max_epochs",
                ConvergenceWarning,
                stacklevel=2,
            )
        info = {
            "converged": bool(stopped) if n_val > 0 else None,
            "n_epochs": len(losses),
            "best_epoch": best_epoch,
            "stopped_early": stopped,
            "validation_losses": val_losses,
            "validation_elbo": _data_scale_elbo(val_losses, problem, val_rows, val_jacobian),
            "n_validation": n_val,
            "batch_size": int(options.batch_size),
            "lr": float(options.lr),
            "kl_warmup": int(options.kl_warmup),
            "elbo": elbo,
            "objective": options.objective,
            "num_particles": int(options.num_particles),
        }
        if options.ema is not None:
            info["ema"] = float(options.ema)
        if problem.stream is not None:
            info["streamed_rows"] = problem.n_units  # Fit.train holds only the sample
        return EngineResult(params={}, losses=np.asarray(losses, dtype=float), info=info)


def _data_scale_elbo(
    val_losses: list[float], problem: Problem, rows: torch.Tensor, jacobian: float | None = None
) -> list:
    """The validation curve as ELBO per row on the data's own scale (nats, higher is better):
    minus the loss plus the encoding's mean log-Jacobian over the validation rows, the scale of
    ``ppgen.evaluate.elbo`` (``jacobian``: that mean over every rank's validation rows).
    Empty without validation rows or a Jacobian."""
    if problem.log_jacobian is None or not val_losses:
        return []
    if jacobian is None:
        if not len(rows):
            return []
        jacobian = float(problem.log_jacobian[rows].mean())
    return [jacobian - loss for loss in val_losses]


def _rank_seed(seed: int, ctx: dist.Context | None) -> int:
    """Rank 0 (and a serial run) keeps ``seed``; other ranks get streams of their own."""
    if ctx is None or ctx.rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), ctx.rank]).generate_state(1)[0])


def _global_validation(
    problem: Problem, rows: torch.Tensor, ctx: dist.Context
) -> tuple[int, float | None]:
    """Validation rows over all ranks, and their mean log-Jacobian (None without one)."""
    jac = problem.log_jacobian
    local = float(jac[rows].sum()) if jac is not None and len(rows) else 0.0
    t = torch.tensor([float(len(rows)), local], dtype=torch.float64, device=dist.comm_device(ctx))
    dist.all_reduce_sum(t, ctx)
    n_val = int(t[0].item())
    return n_val, (float(t[1] / n_val) if jac is not None and n_val else None)


class _Trainer:
    """The loss of a minibatch, one way or another (see ``elbo`` in :class:`MinibatchOptions`)."""

    def __init__(
        self,
        model: Any,
        elbo: str,
        num_particles: int,
        objective: str = "elbo",
        ctx: dist.Context | None = None,
    ) -> None:
        self.model, self.kind, self.num_particles = model, elbo, num_particles
        self.objective = objective
        # A distributed run (None: serial). In a world of one the code path is the same, with
        # no communication.
        self.ctx = ctx
        # Several ranks: gradients kept in one buffer, all-reduced by buckets launched from
        # backward's hooks (set in run).
        self.reducer: dist.GradientReducer | None = None
        if elbo == "trace" and objective == "elbo":
            # vectorize_particles: one pass over all particles (a plate at dim -2).
            self.pyro_elbo = Trace_ELBO(
                num_particles=num_particles,
                vectorize_particles=num_particles > 1,
                max_plate_nesting=model.max_plate_nesting,
            )

    def loss(self, x: torch.Tensor, mask: torch.Tensor, kl_weight: float) -> torch.Tensor:
        """Negative training objective per row of the minibatch (mean over its rows)."""
        model, n = self.model, x.shape[0]
        if self.objective == "iwae":
            return -model.iwae_rows(x, mask, self.num_particles, kl_weight).mean()
        if self.kind == "direct":
            if self.num_particles > 1:
                xs = x.expand(self.num_particles, *x.shape).reshape(-1, x.shape[-1])
                ms = mask.expand(self.num_particles, *mask.shape).reshape(-1, mask.shape[-1])
                return -model.elbo_rows(xs, ms, kl_weight).mean()
            return -model.elbo_rows(x, mask, kl_weight).mean()
        model_fn, guide_fn = model.model, model.guide
        if kl_weight != 1.0:
            model_fn = _ScaleLatents(kl_weight)(model_fn)
            guide_fn = _ScaleLatents(kl_weight)(guide_fn)
        return self.pyro_elbo.differentiable_loss(model_fn, guide_fn, x, mask) / n

    def step(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        opt: torch.optim.Optimizer,
        params: list[torch.Tensor],
        kl_weight: float = 1.0,
        clip_norm: float | None = None,
    ) -> tuple[float, str | None]:
        """One Adam step on a minibatch: its loss and None, or (without stepping) the loss and
        ``"loss"`` or ``"gradient"``, whichever is not finite. Distributed, the loss and the
        gradients are the ranks' means weighted by their rows in the step (a rank may have
        none), so every rank takes the same step or stops."""
        reducer = self.reducer
        if reducer is None:
            opt.zero_grad(set_to_none=True)
        else:
            reducer.zero_grad()
        if x.shape[0]:
            loss = self.loss(x, mask, kl_weight)
            if reducer is not None:  # armed: backward launches the buckets as they fill
                reducer.begin(loss, float(x.shape[0]))
            loss.backward()
        else:
            loss = params[0].new_zeros(())
            if reducer is not None:
                reducer.begin(loss, 0.0)
        self.local_loss = loss.detach()  # this rank's, for the epoch's mean over all rows
        if reducer is not None:
            loss = reducer.finish()
        elif self.ctx is not None:
            loss = dist.average_gradients(loss, params, float(x.shape[0]), self.ctx)
        loss = loss.detach()
        grads = [p.grad for p in params if p.grad is not None]
        # One reduction and one host sync per step: the gradient's norm is finite iff every
        # entry is, and the loss is needed on the host anyway.
        norm = torch.nn.utils.get_total_norm(grads) if grads else loss.new_zeros(())
        loss_value, norm_value = torch.stack([loss.to(norm), norm]).tolist()
        if not math.isfinite(loss_value):
            return loss_value, "loss"
        if not math.isfinite(norm_value):
            return loss_value, "gradient"
        if clip_norm is not None:
            torch.nn.utils.clip_grads_with_norm_(params, clip_norm, norm)
        opt.step()
        return loss_value, None

    def _mean(self, total: float, n: int) -> float:
        """``total / n``, both summed over the ranks in a distributed run."""
        if self.ctx is None:
            return total / n
        t = torch.tensor([total, float(n)], dtype=torch.float64, device=dist.comm_device(self.ctx))
        dist.all_reduce_sum(t, self.ctx)
        return float(t[0] / t[1])

    def _validation(self, x: torch.Tensor, mask: torch.Tensor, seed: int) -> float:
        """The validation loss, over every rank's held-out rows in a distributed run (the
        same value on each, so early stopping decides alike)."""
        if self.ctx is None:
            return self.validation_loss(x, mask, seed)
        n = int(x.shape[0])
        local = self.validation_loss(x, mask, seed) * n if n else 0.0
        return self._mean(local, n)

    @torch.no_grad()
    def validation_loss(self, x: torch.Tensor, mask: torch.Tensor, seed: int) -> float:
        """Negative objective per row of the held-out rows, with the same draws at every call:
        the IWAE bound with the training K, or the ELBO with 8 particles."""
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), pyro.validation_enabled(False):
            torch.manual_seed(int(seed) + 1)
            if self.objective == "iwae":
                return float(-self.model.iwae_rows(x, mask, self.num_particles).mean())
            particles = 8
            if type(self.model).implements("elbo_rows"):
                xs = x.expand(particles, *x.shape).reshape(-1, x.shape[-1])
                ms = mask.expand(particles, *mask.shape).reshape(-1, mask.shape[-1])
                return float(-self.model.elbo_rows(xs, ms).mean())
            log_w, _, _ = self.model.log_weights(x, mask, particles)
            return float(-log_w.mean())

    def run(
        self,
        x,
        mask,
        train_rows,
        val_rows,
        *,
        generator,
        batch_size,
        max_epochs,
        lr,
        patience,
        kl_warmup,
        clip_norm,
        seed,
        progress,
        epochs=None,
        ema=None,
    ):
        """Train; ``train_rows`` are the rows of ``x`` to shuffle into minibatches, or, with
        ``epochs`` (a streamed table: a callable yielding one epoch's minibatches ``(x,
        mask)``), the number of training rows it streams."""
        model = self.model
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"{type(model).__name__} has no parameters to train")
        opt = torch.optim.Adam(params, lr=lr)
        if self.ctx is not None and self.ctx.active and dist.OVERLAP:
            if len({(p.dtype, p.device) for p in params}) == 1:
                self.reducer = dist.GradientReducer(params, self.ctx)
        # The weights' moving average (None: off): updated after every step, swapped in for
        # validation, so the best state saved below is the average's.
        average = None if ema is None else WeightAverage(params, ema)
        n_train = train_rows if epochs is not None else len(train_rows)
        size = min(batch_size, n_train)
        xv, mv = x[val_rows], mask[val_rows]
        ctx = self.ctx
        has_validation = len(val_rows) > 0
        if ctx is not None:
            # Lockstep: every rank takes the same number of steps per epoch, each its share of
            # a global minibatch of about batch_size rows; the rank holding the most rows has
            # a row in every step, so no step is empty everywhere.
            sizes = torch.tensor(
                [n_train, len(val_rows)], dtype=torch.float64, device=dist.comm_device(ctx)
            )
            dist.all_reduce_sum(sizes, ctx)
            global_train = int(sizes[0].item())
            steps = min(
                math.ceil(global_train / min(batch_size, global_train)),
                dist.all_reduce_max(n_train, ctx),
            )
            has_validation = int(sizes[1].item()) > 0
            _warn_small_rank_steps(ctx, min(batch_size, global_train))
        losses: list[float] = []
        self.losses = losses  # complete epochs so far, also when training stops on an error
        val_losses: list[float] = []
        best, best_epoch, best_state, stopped = math.inf, 0, None, False
        bar = progress_bar(max_epochs, "svi", progress)
        step = 0
        try:
            # Pyro's argument checks cost time every step and the networks' outputs are valid
            # by construction (softplus scales, logits); the data were checked when encoded.
            with pyro.validation_enabled(False):
                for epoch in range(1, max_epochs + 1):
                    kl_weight = min(1.0, epoch / kl_warmup) if kl_warmup else 1.0
                    total = 0.0
                    if epochs is not None:  # distributed: in lockstep, `steps` parts
                        batches = epochs() if ctx is None else epochs(steps)
                    else:
                        perm = train_rows[torch.randperm(n_train, generator=generator).to(x.device)]
                        if ctx is None:
                            parts = [perm[i : i + size] for i in range(0, n_train, size)]
                        else:
                            parts = list(torch.tensor_split(perm, steps))
                        batches = ((x[rows], mask[rows]) for rows in parts)
                    for xb, mb in batches:
                        loss, bad = self.step(xb, mb, opt, params, kl_weight, clip_norm)
                        if bad:
                            _raise_non_finite(bad, step, epoch)
                        if average is not None:
                            average.update()
                        if ctx is None:
                            total += loss * len(xb)
                        else:
                            total += float(self.local_loss) * len(xb)
                        step += 1
                    # Under warm-up this is the KL-weighted loss; validation is unweighted.
                    losses.append(self._mean(total, n_train))
                    bar.update()
                    if has_validation:
                        if average is not None:
                            average.swap()
                        val = self._validation(xv, mv, seed)
                        val_losses.append(val)
                        bar.set_postfix(loss=f"{losses[-1]:.4g}", val=f"{val:.4g}", refresh=False)
                        # During warm-up the objective is still changing: do not stop then.
                        improved = val < best
                        if improved:
                            best, best_epoch = val, epoch
                            best_state = copy.deepcopy(model.state_dict())
                        if average is not None:
                            average.swap()
                        if not improved and epoch - best_epoch >= patience and epoch > kl_warmup:
                            stopped = True
                            break
                    else:
                        bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
        finally:
            bar.close()
            if self.reducer is not None:  # no collectives from this model's backward later
                self.reducer.close()
                self.reducer = None
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            if average is not None:  # no validation: the last average is the fit
                average.swap()
            best_epoch = len(losses)
        return losses, val_losses, best_epoch, stopped


#: Rows per rank per step below which data-parallel SVI on CPU (gloo) warns: a step of fewer
#: rows computes for less than the gradients' all-reduce costs (about 3 ms per step on two
#: vCPUs, whatever the rows), so the ranks run little faster than one process, or slower
#: (benchmarks/results/scale_svi.md: 64 rows per rank 0.46x, 128 0.8x, 256 1.15x, 1,024 1.5x).
SMALL_RANK_STEP = 256


def _warn_small_rank_steps(ctx: dist.Context, batch: int) -> None:
    """Warn (rank 0, CPU ranks) when each rank's share of a step is under
    :data:`SMALL_RANK_STEP` rows."""
    if not (ctx.active and ctx.backend == "gloo" and ctx.is_main):
        return
    per_rank = batch / ctx.world_size
    if per_rank >= SMALL_RANK_STEP:
        return
    warnings.warn(
        f"batch_size={batch} over {ctx.world_size} CPU ranks gives each about "
        f"{per_rank:.0f} rows per step, which compute for less than the per-step all-reduce of "
        f"the gradients costs: the ranks may run slower than one process. On CPU pass about "
        f"1,000 rows per rank (batch_size={1024 * ctx.world_size}); see docs/scaling.md",
        UserWarning,
        stacklevel=2,
    )


def _raise_non_finite(what: str, step: int, epoch: int) -> None:
    raise NonFiniteLossError(
        f"the {what} became non-finite at step {step} (epoch {epoch}); training stopped before "
        "the optimizer moved, so the weights keep their last good values. Try a smaller "
        "learning rate (lr=...), clip_norm=..., standardized data, or a different seed."
    )
