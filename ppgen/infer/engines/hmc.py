"""``method="hmc"``: ChEES-HMC (or batched NUTS, ``kernel="nuts"``) over the global sites, many
chains as one tensor, from the MAP.

The model's Pyro program (the collapsed one when local latents integrate out, as for MAP and
NUTS) becomes a vectorized log density (:class:`~ppgen.infer.potential.Potential`) and
:func:`~ppgen.infer.chees.run_chees` samples it: a shared step size by dual averaging, the
trajectory length by the ChEES criterion and a pooled diagonal mass matrix (Hoffman, Radul &
Sountsov 2021). Chains start scattered by ``init_radius`` (unconstrained space) around the MAP
estimate, so a mixture's chains share one labelling; the layout relabels draws as for NUTS.

References
----------
Hoffman, M. D., Radul, A. & Sountsov, P. (2021). An adaptive-MCMC scheme for setting trajectory
lengths in Hamiltonian Monte Carlo. *AISTATS*, PMLR 130, 3907-3915.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ppgen._utils import check_number
from ppgen.infer.chees import run_chees
from ppgen.infer.engine import EngineResult, Problem, check_positive_int
from ppgen.infer.engines._pyro import param_store_scope, program
from ppgen.infer.engines.map import MAP, MapOptions
from ppgen.infer.engines.nuts import NUTS, NutsOptions
from ppgen.infer.nuts_batched import run_nuts_batched
from ppgen.infer.potential import Potential

__all__ = ["HMC"]


@dataclass(frozen=True)
class HmcOptions:
    """Options of ``method="hmc"``.

    Attributes
    ----------
    num_samples, warmup_steps, num_chains : int
        Draws kept per chain, adaptation iterations, chains (advanced together).
    init_values : dict, optional
        Starting values of the MAP run whose estimate the chains start around.
    init_radius : float
        Chains start uniformly within this distance of the MAP in unconstrained space.
    target_accept_prob : float
        Mean acceptance probability the step size is tuned to.
    max_leapfrog : int
        Cap on leapfrog steps per transition (ChEES).
    kernel : {"chees", "nuts"}
        ChEES-HMC, or the masked NUTS of :mod:`ppgen.infer.nuts_batched` (each chain's own
        No-U-Turn tree, the chains as one tensor).
    max_tree_depth : int
        Cap on NUTS's doublings (``kernel="nuts"``).
    """

    num_samples: int = 250
    warmup_steps: int = 500
    num_chains: int = 32
    init_values: Mapping[str, Any] | None = None
    init_radius: float = 0.1
    target_accept_prob: float = 0.8
    max_leapfrog: int = 1000
    kernel: str = "chees"
    max_tree_depth: int = 10

    def __post_init__(self) -> None:
        NutsOptions.__post_init__(self)  # the checks of the options both engines share
        check_positive_int(self.max_leapfrog, "max_leapfrog")
        check_positive_int(self.max_tree_depth, "max_tree_depth")
        if self.kernel not in ("chees", "nuts"):
            raise ValueError(f"kernel must be 'chees' or 'nuts', got {self.kernel!r}")
        check_number(self.init_radius, "init_radius", positive=False)
        if self.warmup_steps < 0:
            raise ValueError(
                f"warmup_steps must be a non-negative integer, got {self.warmup_steps!r}"
            )


class HMC(NUTS):
    """ChEES-HMC over the global sites (local latents integrated out as in MAP); NUTS's
    estimate (the chains' mean) and the models it accepts."""

    name: ClassVar[str] = "hmc"
    Options = HmcOptions

    def run(self, problem: Problem, options: HmcOptions) -> EngineResult:
        model = problem.model
        with param_store_scope():
            start = MAP().optimize(problem, MapOptions(init_values=options.init_values))
        potential = Potential(program(model), (problem.x, problem.mask))
        known = {k: v for k, v in start.params.items() if k in potential.names}
        common = {
            "num_chains": options.num_chains,
            "num_warmup": int(options.warmup_steps),
            "num_samples": options.num_samples,
            "center": potential.unconstrain(known),
            "init_radius": options.init_radius,
            "target_accept_prob": options.target_accept_prob,
            "progress": problem.progress,
            "seed": problem.seed,
        }
        if options.kernel == "nuts":
            result = run_nuts_batched(potential, max_tree_depth=options.max_tree_depth, **common)
        else:
            result = run_chees(potential, max_leapfrog=options.max_leapfrog, **common)
        x = problem.x
        samples = {
            k: torch.as_tensor(v, dtype=x.dtype, device=x.device)
            for k, v in result.samples.items()
            if k in model.global_sites
        }
        divergent = result.sample_stats["diverging"]
        info = {
            "num_chains": options.num_chains,
            "num_samples": options.num_samples,
            "warmup_steps": int(options.warmup_steps),
            "divergences": int(divergent.sum()),
            "step_size": result.step_size,
            "trajectory_length": result.trajectory_length,
            "vectorized": result.info["vectorized"],
            "kernel": options.kernel,
        }
        return EngineResult(
            params=self.estimate(samples),
            losses=start.losses,
            samples=samples,
            divergent=divergent,
            info=info,
        )
