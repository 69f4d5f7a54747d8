"""``method="nuts"``: the masked iterative NUTS over many chains as one tensor, from the MAP.

Every chain builds its own No-U-Turn tree (:mod:`ppgen.infer.nuts_batched`: multinomial
sampling, the generalized U-turn criterion, Stan's windowed adaptation pooled over chains); the
model's Pyro program (the collapsed one, local latents integrated out as for MAP) is vectorized
over chains and compiled (:class:`~ppgen.infer.potential.Potential`), so one batched gradient
advances every chain. Chains start scattered by ``init_radius`` (unconstrained space) around the
MAP estimate, so a mixture's chains share one labelling.

Pyro's NUTS (``method="pyro-nuts"``, chains one after another) runs instead, and
``Fit.info["kernel"]`` says ``"pyro-nuts"``, in two cases:

* the program cannot be vectorized over chains (Pyro's ``DiscreteHMM`` in the HMM): a batched
  tree would evaluate it chain by chain at every leaf, without Pyro's JIT, slower than Pyro's
  own NUTS doing the same per-chain work;
* ``distributed=True``: Pyro's chains shard over ranks (each rank runs its share, draws
  gathered); the batched chains adapt together, which ranks cannot share.

References
----------
Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn sampler. *JMLR* 15, 1593-1623.
Betancourt, M. (2017). A conceptual introduction to Hamiltonian Monte Carlo. arXiv:1701.02434.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import ClassVar

from ppgen._utils import check_number
from ppgen.infer.engine import EngineResult, Problem
from ppgen.infer.engines._pyro import program
from ppgen.infer.engines.hmc import HMC, HmcOptions
from ppgen.infer.engines.nuts import NUTS, NutsOptions
from ppgen.infer.potential import Potential, VectorizationWarning

__all__ = ["BatchedNUTS"]


@dataclass(frozen=True)
class BatchedNutsOptions(NutsOptions):
    """Options of ``method="nuts"``: those of Pyro's NUTS (``"pyro-nuts"``) and ``init_radius``.

    Attributes
    ----------
    num_samples, warmup_steps, num_chains : int
        Draws kept per chain, adaptation iterations, chains (advanced together: 32 or 64
        chains cost little more than 2 on a cheap model).
    init_values : dict, optional
        Starting values of the MAP run whose estimate the chains start around.
    target_accept_prob : float
        Mean acceptance statistic the shared step size is tuned to.
    max_tree_depth : int
        At most ``2^max_tree_depth - 1`` leapfrog steps per transition.
    init_radius : float
        Chains start uniformly within this distance of the MAP in unconstrained space.
    """

    init_radius: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number(self.init_radius, "init_radius", positive=False)
        if self.warmup_steps < 0:
            raise ValueError(
                f"warmup_steps must be a non-negative integer, got {self.warmup_steps!r}"
            )


class BatchedNUTS(HMC):
    """Masked NUTS over the global sites, every chain in one tensor (Pyro's NUTS where the
    model cannot be vectorized, or under ``distributed=True``)."""

    name: ClassVar[str] = "nuts"
    Options = BatchedNutsOptions
    parallel: ClassVar[str] = "chains"  # by Pyro's NUTS, see the module's docstring

    def run(self, problem: Problem, options: BatchedNutsOptions) -> EngineResult:
        ctx = problem.distributed
        if (ctx is not None and ctx.active) or not _vectorizes(problem):
            fields = {f.name for f in dataclasses.fields(NutsOptions)}
            pyro_options = NutsOptions(
                **{k: v for k, v in dataclasses.asdict(options).items() if k in fields}
            )
            result = NUTS.run(self, problem, pyro_options)
            return dataclasses.replace(result, info={**result.info, "kernel": "pyro-nuts"})
        hmc_options = HmcOptions(
            num_samples=options.num_samples,
            warmup_steps=int(options.warmup_steps),
            num_chains=options.num_chains,
            init_values=options.init_values,
            init_radius=options.init_radius,
            target_accept_prob=options.target_accept_prob,
            kernel="nuts",
            max_tree_depth=options.max_tree_depth,
        )
        return HMC.run(self, problem, hmc_options)


def _vectorizes(problem: Problem) -> bool:
    """Whether ``torch.func.vmap`` runs the model's program over chains (tried at the prior
    draw Pyro's trace gives, two chains)."""
    potential = Potential(program(problem.model), (problem.x, problem.mask), compile=False)
    u = potential.unconstrain({}).expand(2, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VectorizationWarning)
        potential(u)
    return bool(potential.vectorized)
