"""Contrastive divergence: CD-k (Hinton 2002) and persistent CD (Tieleman 2008) for energy-based
models (:attr:`~ppgen.models.base.GenerativeModel.unnormalized`: RBM, EBM).

The log-likelihood of ``p(v) = exp(-F(v)) / Z`` has the gradient

    d/dtheta mean_i log p(v_i) = -mean_i dF(v_i)/dtheta + E_model[dF(v)/dtheta],

whose second term needs samples of the model. Each update takes a minibatch, runs the model's
own sampler (:meth:`~ppgen.models.base.GenerativeModel.chain_step`: ``k`` block Gibbs sweeps for
an RBM, ``k`` Langevin steps for an EBM) and descends ``mean F(data) - mean F(negatives)`` with
the negatives held fixed, whose gradient is exactly that estimate:

* CD-k: the negative chains start at the minibatch's rows (biased for small k; the bias
  shrinks as k grows);
* PCD (``persistent=True``): ``n_chains`` chains persist across updates (Tieleman 2008), each
  update advancing them ``k`` steps at the current parameters; with ``reinit > 0`` each chain
  restarts from a fresh state (the model's :meth:`chain_init`) with that probability per update,
  the replay buffer of Du & Mordatch (2019).

Rows with missing entries take part through a persistent completion: before each update the
minibatch's missing entries are redrawn by one sampler step clamped at its observed ones (started
from the model's ``impute``), a stochastic-EM treatment of the missing data. Models without
``impute`` (EBM) refuse missing entries.

The loss trace is, per epoch, the mean over updates of ``mean F(data) - mean F(negatives)``
(nats per row): it tends to a small value as the negatives come to resemble the data; it is
not a likelihood (use :func:`ppgen.evaluate.ais`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ppgen._utils import check_number, progress_bar
from ppgen.infer.engine import Engine, EngineResult, Problem, check_positive_int, model_class
from ppgen.infer.engines._pyro import initial_values
from ppgen.infer.optim import NonFiniteLossError
from ppgen.models.base import GenerativeModel, Params

__all__ = ["CD", "CdOptions", "cd_gradient"]

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class CdOptions:
    """Options of ``method="cd"``.

    Attributes
    ----------
    k : int
        Sampler steps per update (Gibbs sweeps for RBMs, Langevin steps for EBMs).
    persistent : bool
        Persistent chains (PCD) instead of chains restarted at the minibatch (CD-k).
    n_chains : int, optional
        Number of persistent chains (default: ``batch_size``).
    reinit : float
        PCD only: probability that a chain restarts from a fresh state at an update (a replay
        buffer; 0 for classic PCD).
    batch_size : int
        Rows per update.
    max_epochs : int
        Passes over the rows.
    optimizer : {"sgd", "adam"}
        SGD with momentum (the classic RBM recipe, Hinton 2012) or Adam.
    lr : float
        Learning rate.
    momentum : float
        SGD momentum.
    weight_decay : float
        L2 penalty on every parameter.
    init_values : dict, optional
        Starting values of the parameters (override the model's).
    """

    k: int = 1
    persistent: bool = False
    n_chains: int | None = None
    reinit: float = 0.0
    batch_size: int = 100
    max_epochs: int = 50
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.5
    weight_decay: float = 1e-4
    init_values: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.k, "k")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.max_epochs, "max_epochs")
        if self.n_chains is not None:
            check_positive_int(self.n_chains, "n_chains")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        check_number(self.lr, "lr")
        if not 0.0 <= float(self.reinit) <= 1.0:
            raise ValueError(f"reinit must be a probability in [0, 1], got {self.reinit!r}")
        if not 0.0 <= float(self.momentum) < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if float(self.weight_decay) < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


def cd_gradient(
    model: GenerativeModel, x: torch.Tensor, negatives: torch.Tensor, params: Params
) -> Params:
    """The CD estimate of ``-d/dtheta mean log p(x)``: the gradient of
    ``mean F(x) - mean F(negatives)`` with the negatives held fixed (used by the engine and by
    the tests that compare it with the exact gradient)."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    full = torch.ones_like(x, dtype=torch.bool)
    gap = (
        model.free_energy(x, full, leaves).mean()
        - model.free_energy(
            negatives.detach(), torch.ones_like(negatives, dtype=torch.bool), leaves
        ).mean()
    )
    grads = torch.autograd.grad(gap, list(leaves.values()))
    return dict(zip(leaves, grads, strict=True))


class CD(Engine):
    """Contrastive divergence (CD-k, PCD) over the model's free energy and sampler."""

    name: ClassVar[str] = "cd"
    kind: ClassVar[str] = "point"
    loss_label: ClassVar[str] = "free-energy gap F(data) - F(negatives) (nats per row)"
    step_label: ClassVar[str] = "epoch"
    Options = CdOptions

    def accepts(self, model: GenerativeModel | type[GenerativeModel]) -> bool:
        cls = model_class(model)
        return cls.unnormalized and cls.implements("chain_step")

    def run(self, problem: Problem, options: CdOptions) -> EngineResult:
        model, x, mask = problem.model, problem.x, problem.mask
        missing = not bool(mask.all())
        if missing and not type(model).implements("impute"):
            raise ValueError(
                f"{type(model).__name__} cannot be fitted with missing entries; drop or impute "
                "them first"
            )
        init = initial_values(problem, problem.seed, options.init_values)
        params = {k: v.detach().clone().requires_grad_(True) for k, v in init.items()}
        opt = _Optimizer(list(params.values()), options)
        n = x.shape[0]
        batch = min(options.batch_size, n)
        filled = x.clone()
        if missing:
            with torch.no_grad():
                filled = model.impute(x, mask, _detached(params))
        chains = None
        if options.persistent:
            with torch.no_grad():
                chains = model.chain_init(options.n_chains or batch, filled, _detached(params))
        losses: list[float] = []
        last_good = _detached(params, clone=True)
        updates = 0
        bar = progress_bar(options.max_epochs, "cd", problem.progress)
        try:
            for epoch in range(options.max_epochs):
                order = torch.randperm(n, device=x.device)
                gaps = []
                for start in range(0, n, batch):
                    idx = order[start : start + batch]
                    current = _detached(params)
                    with torch.no_grad():
                        if missing:
                            # One sweep of the chain, then the observed entries put back: a
                            # Gibbs sweep clamped at them (the RBM's v | h is independent).
                            step = model.chain_step(filled[idx], current, 1)
                            rows = torch.where(mask[idx], x[idx], step)
                            filled[idx] = rows
                        else:
                            rows = x[idx]
                        if chains is None:
                            negatives = model.chain_step(rows, current, options.k)
                        else:
                            if options.reinit > 0:
                                fresh = model.chain_init(len(chains), filled, current)
                                restart = torch.rand(len(chains), device=x.device) < options.reinit
                                chains = torch.where(restart[:, None], fresh, chains)
                            chains = model.chain_step(chains, current, options.k)
                            negatives = chains
                    for p in params.values():
                        p.grad = None
                    full = torch.ones_like(rows, dtype=torch.bool)
                    negmask = torch.ones_like(negatives, dtype=torch.bool)
                    gap = (
                        model.free_energy(rows, full, params).mean()
                        - model.free_energy(negatives, negmask, params).mean()
                    )
                    gap.backward()
                    grads_ok = all(
                        p.grad is None or bool(torch.isfinite(p.grad).all())
                        for p in params.values()
                    )
                    if not bool(torch.isfinite(gap)) or not grads_ok:
                        _raise(problem, last_good, losses, epoch, updates)
                    opt.step()
                    if not all(bool(torch.isfinite(p).all()) for p in params.values()):
                        _raise(problem, last_good, losses, epoch, updates)
                    last_good = _detached(params, clone=True)
                    gaps.append(float(gap.detach()))
                    updates += 1
                losses.append(float(np.mean(gaps)))
                bar.update()
                bar.set_postfix(gap=f"{losses[-1]:.3g}", refresh=False)
        finally:
            bar.close()
        info = {
            "n_epochs": len(losses),
            "n_updates": updates,
            "k": options.k,
            "persistent": bool(options.persistent),
            "converged": True,  # CD has no stopping rule: it runs its epochs
        }
        return EngineResult(params=last_good, losses=np.asarray(losses), info=info)


class _Optimizer:
    """SGD with momentum (PyTorch's convention) or Adam, with L2 weight decay added to the
    gradient, written out: ``torch.optim``'s first use imports TorchDynamo (seconds), which a
    command-line fit of an RBM should not pay."""

    def __init__(self, params: list[torch.Tensor], options: CdOptions) -> None:
        self.params, self.options = params, options
        self.state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        o = self.options
        self.t += 1
        for p, (m, v) in zip(self.params, self.state, strict=True):
            g = (p.grad if p.grad is not None else torch.zeros_like(p)) + o.weight_decay * p
            if o.optimizer == "sgd":
                # The first step starts the buffer at the gradient, as torch.optim.SGD does.
                m.mul_(o.momentum if self.t > 1 else 0.0).add_(g)
                p.sub_(o.lr * m)
                continue
            m.mul_(0.9).add_(g, alpha=0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            m_hat = m / (1 - 0.9**self.t)
            v_hat = v / (1 - 0.999**self.t)
            p.sub_(o.lr * m_hat / (v_hat.sqrt() + 1e-8))


def _detached(params: Params, clone: bool = False) -> Params:
    return {k: (v.detach().clone() if clone else v.detach()) for k, v in params.items()}


def _raise(problem: Problem, last_good: Params, losses: list[float], epoch: int, step: int):
    exc = NonFiniteLossError(
        f"contrastive divergence became non-finite at update {step} (epoch {epoch}); the "
        "parameters keep their last good values. Try a smaller learning rate (lr=...), more "
        "weight decay, or a different seed."
    )
    exc.result = EngineResult(
        params=last_good, losses=np.asarray(losses if losses else [np.nan]), info={}
    )
    raise exc
