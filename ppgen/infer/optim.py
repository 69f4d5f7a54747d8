"""The optimization loop behind MAP and SVI: Adam/ClippedAdam or L-BFGS on a Pyro loss."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from pyro import poutine

from ppgen._utils import progress_bar
from ppgen.infer import distributed as dist

__all__ = ["NonFiniteLossError", "optimize"]


class NonFiniteLossError(FloatingPointError):
    """The loss or its gradient became NaN or infinite; parameters hold their last good values.

    Raised by :func:`ppgen.fit`, its ``fit`` attribute is the :class:`~ppgen.Fit` of those
    values and the losses of the complete steps (when the engine could keep them).
    """

    fit = None


def _collect_params(loss_fn: Callable[[], torch.Tensor]) -> list[torch.Tensor]:
    # One dry run creates every parameter the model and guide use, so the optimizer sees them all.
    with poutine.trace(param_only=True) as tape:
        loss_fn()
    return [site["value"].unconstrained() for site in tape.trace.nodes.values()]


def optimize(
    loss_fn: Callable[[], torch.Tensor],
    *,
    optimizer: str = "adam",
    lr: float | None = None,
    max_steps: int = 2000,
    tol: float = 1e-6,
    patience: int = 100,
    clip_norm: float | None = 10.0,
    progress: bool | None = None,
    desc: str = "fit",
    distributed: dist.Context | None = None,
    weight: float = 1.0,
) -> np.ndarray:
    """Minimize ``loss_fn`` over the Pyro parameters it touches; return the loss per step.

    Stops when the relative change of the loss (smoothed over ``patience`` steps for stochastic
    optimizers) falls below ``tol``, or after ``max_steps``. A non-finite loss or gradient stops
    training before the optimizer moves, so the parameters keep their last good values, and
    raises :class:`NonFiniteLossError`.

    In a distributed run (``distributed``, a :class:`~ppgen.infer.distributed.Context`) every
    rank starts from rank 0's parameters and, after each backward pass, the ranks' losses and
    gradients are replaced by their means weighted by ``weight`` (the rank's rows in the step):
    the ranks take identical steps, stop at the same step, and a non-finite loss on any rank
    stops them all.
    """
    params = _collect_params(loss_fn)
    if not params:
        raise ValueError("the model and guide have no parameters to optimize")
    sync = _no_sync
    if distributed is not None and distributed.active:
        dist.broadcast_(params, distributed)

        def sync(loss: torch.Tensor) -> torch.Tensor:
            return dist.average_gradients(loss, params, weight, distributed)

    losses: list[float] = []
    bar = progress_bar(max_steps, desc, progress)
    try:
        if optimizer == "lbfgs":
            _run_lbfgs(loss_fn, params, lr or 1.0, max_steps, tol, losses, bar, sync)
        elif optimizer in ("adam", "clipped_adam"):
            _run_adam(
                loss_fn, params, lr or 0.01, max_steps, tol, patience, clip_norm, losses, bar, sync
            )
        else:
            raise ValueError(
                f"optimizer must be 'adam', 'clipped_adam' or 'lbfgs', got {optimizer!r}"
            )
    except NonFiniteLossError as exc:
        exc.losses = np.asarray(losses)  # the complete steps, for the fit of the last good values
        raise
    finally:
        bar.close()
    return np.asarray(losses)


def _check_finite(loss: torch.Tensor, params: list[torch.Tensor], step: int) -> None:
    grads_ok = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params)
    if not bool(torch.isfinite(loss)) or not grads_ok:
        what = "loss" if not bool(torch.isfinite(loss)) else "gradient"
        raise NonFiniteLossError(
            f"the {what} became {float(loss) if what == 'loss' else 'non-finite'} at step {step}; "
            "training stopped and the parameters keep their last good values. Try a smaller "
            "learning rate (lr=...), standardized data, or a different seed."
        )


def _no_sync(loss: torch.Tensor) -> torch.Tensor:
    return loss


def _run_adam(
    loss_fn, params, lr, max_steps, tol, patience, clip_norm, losses, bar, sync=_no_sync
) -> None:
    opt = torch.optim.Adam(params, lr=lr)
    for step in range(max_steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        loss = sync(loss)
        _check_finite(loss, params, step)
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
        opt.step()
        losses.append(loss.item())
        bar.update()
        bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
        if step >= 2 * patience:
            # Compare means of consecutive windows: single SVI losses are too noisy to test.
            recent = np.mean(losses[-patience:])
            before = np.mean(losses[-2 * patience : -patience])
            if abs(before - recent) <= tol * max(abs(recent), 1.0) * patience:
                break


def _run_lbfgs(loss_fn, params, lr, max_steps, tol, losses, bar, sync=_no_sync) -> None:
    opt = torch.optim.LBFGS(
        params, lr=lr, max_iter=20, line_search_fn="strong_wolfe", tolerance_change=1e-12
    )
    # Each step is up to 20 L-BFGS iterations: with one, the deliberately small first step of
    # each call would look like convergence. The loss trace thus has a point per 20 iterations.
    step = 0

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        loss = sync(loss)  # the ranks' mean: every rank's line search sees the same values
        _check_finite(loss, params, step)
        return loss

    for step in range(max_steps):  # noqa: B007 (closure reads step)
        snapshot = [p.detach().clone() for p in params]
        try:
            loss = opt.step(closure)
        except NonFiniteLossError:
            # L-BFGS may have moved inside its line search: restore the last good point.
            with torch.no_grad():
                for p, old in zip(params, snapshot, strict=True):
                    p.copy_(old)
            raise
        losses.append(loss.item())
        bar.update()
        bar.set_postfix(loss=f"{losses[-1]:.6g}", refresh=False)
        if len(losses) > 1 and abs(losses[-2] - losses[-1]) <= tol * max(abs(losses[-1]), 1.0):
            break
