"""NUTS: Markov chains over the global sites, started from the MAP estimate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ppgen.infer.engine import EngineResult, Problem, check_positive_int
from ppgen.infer.engines._pyro import PyroEngine, param_store_scope, program
from ppgen.infer.engines.map import MAP, MapOptions
from ppgen.infer.mcmc import run_nuts
from ppgen.models.base import Params

__all__ = ["NUTS"]


@dataclass(frozen=True)
class NutsOptions:
    """Options of ``method="nuts"``.

    Attributes
    ----------
    num_samples, warmup_steps, num_chains : int
        Draws kept per chain, warm-up steps per chain, chains (run one after another, chain
        ``c`` with seed ``seed + c``).
    init_values : dict, optional
        Starting values of the MAP run whose estimate starts the chains.
    target_accept_prob, max_tree_depth
        Pyro's NUTS settings.
    """

    num_samples: int = 500
    warmup_steps: int = 500
    num_chains: int = 2
    init_values: Mapping[str, Any] | None = None
    target_accept_prob: float = 0.8
    max_tree_depth: int = 10

    def __post_init__(self) -> None:
        check_positive_int(self.num_samples, "num_samples")
        check_positive_int(self.num_chains, "num_chains")
        if isinstance(self.warmup_steps, bool) or int(self.warmup_steps) != self.warmup_steps:
            raise ValueError(f"warmup_steps must be an integer, got {self.warmup_steps!r}")
        if not 0 < float(self.target_accept_prob) < 1:
            raise ValueError(
                f"target_accept_prob must be in (0, 1), got {self.target_accept_prob!r}"
            )


class NUTS(PyroEngine):
    """Pyro's NUTS over the global sites (local latents summed or integrated out as in MAP)."""

    name: ClassVar[str] = "nuts"
    kind: ClassVar[str] = "mcmc"
    loss_label: ClassVar[str] = "negative log joint of the MAP start (nats)"
    Options = NutsOptions

    def run(self, problem: Problem, options: NutsOptions) -> EngineResult:
        model = problem.model
        with param_store_scope():
            start = MAP().optimize(problem, MapOptions(init_values=options.init_values))
            samples, divergent = run_nuts(
                program(model),
                (problem.x, problem.mask),
                init_values=start.params,
                num_samples=options.num_samples,
                warmup_steps=options.warmup_steps,
                num_chains=options.num_chains,
                max_plate_nesting=model.max_plate_nesting,
                target_accept_prob=options.target_accept_prob,
                max_tree_depth=options.max_tree_depth,
                seed=problem.seed,
                progress=problem.progress,
            )
        samples = {k: v for k, v in samples.items() if k in model.global_sites}
        info = {
            "num_chains": options.num_chains,
            "num_samples": options.num_samples,
            "warmup_steps": options.warmup_steps,
            "divergences": int(divergent.sum()),
        }
        return EngineResult(
            params=self.estimate(samples),
            losses=start.losses,
            samples=samples,
            divergent=divergent,
            info=info,
        )

    def estimate(self, samples: Params) -> Params:
        """The posterior mean of the chains."""
        return {k: v.mean((0, 1)) for k, v in samples.items()}
