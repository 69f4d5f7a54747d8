"""Neural energy-based model over continuous rows, trained by persistent contrastive divergence
with Langevin dynamics.

Generative story
----------------
A row ``x`` (continuous columns, standardized by the data layer) has density
``p(x) = exp(-F(x)) / Z`` with the energy

    F(x) = f_theta(x) + ||x||^2 / (2 * envelope^2),

where ``f_theta`` is a multilayer perceptron (SiLU activations, a scalar output) and the fixed
Gaussian envelope (``envelope`` standard deviations on the standardized scale) keeps ``Z`` finite
whatever the network: ``f_theta`` grows at most linearly, the envelope quadratically.

Training (``method="cd"`` with ``persistent=True``, :mod:`ppgen.infer.engines.cd`) descends
``mean F(data) - mean F(negatives)``; the negatives are a replay buffer of persistent chains
(Du & Mordatch 2019) advanced by ``k`` steps of unadjusted Langevin dynamics

    x <- x - step_size * grad F(x) + noise * xi,     xi ~ N(0, I),

(``noise = sqrt(2 * step_size)`` by default, the Langevin diffusion's own noise; a smaller noise
is the common "cold" heuristic), each chain restarting from the base Gaussian with probability
``reinit`` per update. Samples (:meth:`ppgen.Fit.sample`) and the AIS transitions use the
Metropolis-adjusted version (MALA, Roberts & Tweedie 1996), which leaves the density exactly
invariant. ``log Z`` is estimated by AIS (:func:`ppgen.evaluate.ais`) from a Gaussian base with
the mean and standard deviations of the rows passed.

Missing entries are refused (impute them first, e.g. with ``ppgen.Imputer``): the energy of a
row with missing entries would need an integral over them.

References
----------
LeCun, Y., Chopra, S., Hadsell, R., Ranzato, M. & Huang, F. (2006). A tutorial on energy-based
learning.
Du, Y. & Mordatch, I. (2019). Implicit generation and modeling with energy-based models.
*NeurIPS*.
Nijkamp, E., Hill, M., Zhu, S.-C. & Wu, Y. N. (2019). Learning non-convergent non-persistent
short-run MCMC toward energy-based model. *NeurIPS*.
Roberts, G. O. & Tweedie, R. L. (1996). Exponential convergence of Langevin distributions and
their discrete approximations. *Bernoulli* 2, 341-363.
Neal, R. M. (2001). Annealed importance sampling. *Statistics and Computing* 11, 125-139.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F

from ppgen._utils import check_ints, check_number, check_positive_int
from ppgen.models.base import GenerativeModel, Params

__all__ = ["EBM", "EBMAnnealer"]

_LOG_2PI = math.log(2.0 * math.pi)


class EBM(GenerativeModel):
    """Energy-based model with a neural energy over the encoded row.

    Parameters
    ----------
    hidden : tuple of int
        Widths of the energy network's hidden layers.
    step_size : float
        Langevin step size (encoded scale) of the training chains.
    noise : float, optional
        Standard deviation of the Langevin noise (default ``sqrt(2 * step_size)``).
    n_sample_steps : int
        MALA steps run by :meth:`ppgen.Fit.sample` from the base Gaussian.
    mala_step : float
        MALA step size of :meth:`ppgen.Fit.sample` and of the AIS transitions.
    envelope : float
        Standard deviation of the fixed Gaussian envelope (encoded scale).

    Notes
    -----
    ``Fit.params`` holds the network's weights ``W0, b0, W1, b1, ..., w_out, b_out``.
    ``Fit.log_prob`` raises: use ``ppgen.evaluate.ais(fit, data)``.
    """

    unnormalized: ClassVar[bool] = True
    kinds_hint: ClassVar[str] = "EBM models continuous columns"
    label_arguments: ClassVar[int] = 1

    def __init__(
        self,
        hidden: tuple[int, ...] | list[int] = (64, 64),
        step_size: float = 0.01,
        noise: float | None = None,
        n_sample_steps: int = 200,
        mala_step: float = 0.05,
        envelope: float = 3.0,
    ) -> None:
        super().__init__()
        self.hidden = check_ints(hidden, "hidden")
        self.step_size = check_number(step_size, "step_size")
        self.noise = None if noise is None else check_number(noise, "noise")
        self.n_sample_steps = check_positive_int(n_sample_steps, "n_sample_steps")
        self.mala_step = check_number(mala_step, "mala_step")
        self.envelope = check_number(envelope, "envelope")
        n = len(self.hidden)
        names = [f"{k}{i}" for i in range(n) for k in ("W", "b")]
        self.global_sites = (*names, "w_out", "b_out")

    @property
    def default_method(self) -> str:
        return "cd"

    def fit_defaults(self, method: str) -> dict[str, Any]:
        """PCD with a replay buffer, 20 Langevin steps per update, Adam (Du & Mordatch 2019)."""
        if method != "cd":
            return {}
        return {
            "persistent": True,
            "k": 20,
            "reinit": 0.05,
            "optimizer": "adam",
            "lr": 1e-3,
            "batch_size": 128,
            "max_epochs": 100,
            "n_chains": 256,
        }

    def config(self) -> dict[str, Any]:
        return {
            "hidden": list(self.hidden),
            "step_size": self.step_size,
            "noise": self.noise,
            "n_sample_steps": self.n_sample_steps,
            "mala_step": self.mala_step,
            "envelope": self.envelope,
        }

    # -- the energy -----------------------------------------------------------------------------
    def _shapes(self) -> dict[str, tuple[int, ...]]:
        p = self._check_built()
        widths = [p, *self.hidden]
        shapes: dict[str, tuple[int, ...]] = {}
        for i in range(len(self.hidden)):
            shapes[f"W{i}"] = (widths[i], widths[i + 1])
            shapes[f"b{i}"] = (widths[i + 1],)
        shapes["w_out"] = (widths[-1],)
        shapes["b_out"] = ()
        return shapes

    def energy(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """``F(x)`` of complete rows, shape (n,)."""
        h = x
        for i in range(len(self.hidden)):
            h = F.silu(h @ params[f"W{i}"] + params[f"b{i}"])
        net = h @ params["w_out"] + params["b_out"]
        return net + 0.5 * (x**2).sum(-1) / self.envelope**2

    def free_energy(
        self, x: torch.Tensor, mask: torch.Tensor | None, params: Params
    ) -> torch.Tensor:
        """``F(x)``; rows with missing entries are refused."""
        if mask is not None and not bool(mask.all()):
            raise ValueError(
                "EBM cannot score or fit rows with missing entries (their energy would need an "
                "integral over them); impute them first, e.g. with ppgen.Imputer"
            )
        return self.energy(x, params)

    def _grad(self, x: torch.Tensor, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
        """``F(x)`` and ``grad_x F(x)``, with the parameters held fixed."""
        fixed = {k: v.detach() for k, v in params.items()}
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            energy = self.energy(x, fixed)
            (grad,) = torch.autograd.grad(energy.sum(), x)
        return energy.detach(), grad

    def model(self, x: torch.Tensor, mask: torch.Tensor | None = None, subsample_size=None) -> None:
        """Nominal Normal(0, 10) priors on the weights (for tracing; CD is maximum likelihood)
        and the unnormalized density ``exp(-F(x))`` as the factor ``"x"``."""
        zero = x.new_zeros(())
        params = {
            name: pyro.sample(
                name, dist.Normal(zero, 10.0).expand(list(shape)).to_event(len(shape))
            )
            for name, shape in self._shapes().items()
        }
        with pyro.plate("data", x.shape[-2], dim=-1):
            pyro.factor("x", -self.free_energy(x, mask, params))

    def init_params(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> Params:
        """He-scaled random weights, an output layer 10x smaller (a near-flat start)."""
        if not bool(mask.all()):
            self.free_energy(x, mask, {})  # the clear refusal
        out: Params = {}
        for name, shape in self._shapes().items():
            if name.startswith("b"):
                out[name] = x.new_zeros(shape)
                continue
            fan_in = shape[0]
            scale = math.sqrt(2.0 / fan_in) * (0.1 if name == "w_out" else 1.0)
            draw = torch.randn(shape, generator=generator, dtype=x.dtype)
            out[name] = (scale * draw).to(x.device)
        return out

    # -- sampling -------------------------------------------------------------------------------
    def chain_init(self, n: int, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Fresh chains from the Gaussian with the training rows' means and deviations."""
        mean, sd = x.mean(0), x.std(0).clamp(min=1e-3)
        return mean + sd * torch.randn(int(n), x.shape[1], dtype=x.dtype, device=x.device)

    def chain_step(self, v: torch.Tensor, params: Params, n_steps: int) -> torch.Tensor:
        """``n_steps`` unadjusted Langevin steps (the training sampler)."""
        noise = math.sqrt(2.0 * self.step_size) if self.noise is None else self.noise
        for _ in range(n_steps):
            _, grad = self._grad(v, params)
            v = v - self.step_size * grad + noise * torch.randn_like(v)
        return v.detach()

    def sample(self, n: int, params: Params) -> torch.Tensor:
        """``n`` MALA chains of ``n_sample_steps`` steps from a standard normal (the encoded
        scale's marginals)."""
        p = self._check_built()
        dtype, device = params["w_out"].dtype, params["w_out"].device
        start = torch.randn(int(n), p, dtype=dtype, device=device)
        return mala(lambda v: self._grad(v, params), start, self.mala_step, self.n_sample_steps)

    def annealer(self, x: torch.Tensor, mask: torch.Tensor, params: Params) -> EBMAnnealer:
        """The geometric path from a Gaussian with the means and deviations of rows ``x``."""
        if not bool(mask.all()):
            self.free_energy(x, mask, params)  # the clear refusal
        sd = x.std(0).clamp(min=1e-3) if x.shape[0] > 1 else torch.ones_like(x[0])
        return EBMAnnealer(self, dict(params), x.mean(0), sd)

    def n_parameters(self) -> int:
        return sum(math.prod(s) for s in self._shapes().values())


def mala(grad_fn, v: torch.Tensor, step: float, n_steps: int) -> torch.Tensor:
    """``n_steps`` Metropolis-adjusted Langevin steps on the density ``exp(-F)``, where
    ``grad_fn(v)`` returns ``(F(v), grad F(v))`` per row."""
    energy, grad = grad_fn(v)
    scale = math.sqrt(2.0 * step)
    for _ in range(n_steps):
        proposal = v - step * grad + scale * torch.randn_like(v)
        e_new, g_new = grad_fn(proposal)
        forward = ((proposal - v + step * grad) ** 2).sum(-1)
        backward = ((v - proposal + step * g_new) ** 2).sum(-1)
        log_ratio = energy - e_new - (backward - forward) / (4.0 * step)
        accept = torch.log(torch.rand_like(energy)) < log_ratio
        v = torch.where(accept[:, None], proposal, v)
        energy = torch.where(accept, e_new, energy)
        grad = torch.where(accept[:, None], g_new, grad)
    return v.detach()


@dataclass
class EBMAnnealer:
    """The path ``f_beta(x) = N*(x; mean, sd)^(1 - beta) exp(-beta F(x))`` from a diagonal
    Gaussian base to the EBM, with MALA transitions (two per temperature)."""

    ebm: EBM
    params: Params
    mean: torch.Tensor
    sd: torch.Tensor
    n_mala: int = 2

    @property
    def log_z_base(self) -> float:
        return float((0.5 * _LOG_2PI + torch.log(self.sd)).sum())

    def init(self, n: int) -> torch.Tensor:
        shape = (int(n), self.mean.shape[0])
        noise = torch.randn(shape, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.sd * noise

    def _base(self, v: torch.Tensor) -> torch.Tensor:
        return -0.5 * (((v - self.mean) / self.sd) ** 2).sum(-1)

    def log_f(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        return (1.0 - beta) * self._base(v) - beta * self.ebm.energy(v, self.params)

    def step(self, v: torch.Tensor, beta: float) -> torch.Tensor:
        def grad_fn(u):
            energy, grad = self.ebm._grad(u, self.params)
            base_grad = (u - self.mean) / self.sd**2
            return (
                -(1.0 - beta) * self._base(u) + beta * energy,
                (1.0 - beta) * base_grad + beta * grad,
            )

        # The step shrinks with the base's scale so the base end is explored at its own size.
        step = self.ebm.mala_step * float(self.sd.min()) ** 2
        return mala(grad_fn, v, step, self.n_mala)
