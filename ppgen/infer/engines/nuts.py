"""``method="pyro-nuts"``: Pyro's NUTS, Markov chains over the global sites, one after another,
started from the MAP estimate.

It was ``method="nuts"`` until the batched masked NUTS (:mod:`ppgen.infer.engines.nuts_batched`)
took that name; ``"nuts"`` still runs this engine where the model cannot be vectorized over
chains or under ``distributed=True``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ppgen.infer import distributed as dist
from ppgen.infer.engine import EngineResult, Problem, check_positive_int
from ppgen.infer.engines._pyro import PyroEngine, param_store_scope, program
from ppgen.infer.engines.map import MAP, MapOptions
from ppgen.infer.mcmc import run_nuts
from ppgen.models.base import Params

__all__ = ["NUTS"]


@dataclass(frozen=True)
class NutsOptions:
    """Options of ``method="pyro-nuts"``.

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

    name: ClassVar[str] = "pyro-nuts"
    kind: ClassVar[str] = "mcmc"
    loss_label: ClassVar[str] = "negative log joint of the MAP start (nats)"
    Options = NutsOptions
    #: Distributed: every rank holds all rows and runs its share of the chains (chain ``c``
    #: still with seed ``seed + c``); the draws are gathered in chain order, so the result
    #: equals the one-process run's.
    parallel: ClassVar[str] = "chains"

    def run(self, problem: Problem, options: NutsOptions) -> EngineResult:
        model = problem.model
        ctx = problem.distributed
        with param_store_scope():
            # The MAP start on all rows, identical on every rank (same data, same seed).
            serial = dataclasses.replace(problem, distributed=None, n_global=None)
            start = MAP().optimize(serial, MapOptions(init_values=options.init_values))
            if ctx is None or not ctx.active:
                samples, divergent = self._chains(problem, options, start.params)
            else:
                samples, divergent = self._sharded(problem, options, start.params, ctx)
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

    def _chains(
        self,
        problem: Problem,
        options: NutsOptions,
        init: Params,
        first: int = 0,
        num_chains: int | None = None,
    ):
        return run_nuts(
            program(problem.model),
            (problem.x, problem.mask),
            init_values=init,
            num_samples=options.num_samples,
            warmup_steps=options.warmup_steps,
            num_chains=options.num_chains if num_chains is None else num_chains,
            max_plate_nesting=problem.model.max_plate_nesting,
            target_accept_prob=options.target_accept_prob,
            max_tree_depth=options.max_tree_depth,
            seed=problem.seed + first,
            progress=problem.progress,
        )

    def _sharded(self, problem: Problem, options: NutsOptions, init: Params, ctx: Any):
        """This rank's contiguous share of the chains (run_nuts seeds chain ``c`` with
        ``seed + c``, so starting at ``first`` reproduces the serial chains), gathered."""
        counts = dist.split_counts(options.num_chains, ctx.world_size)
        if min(counts) < 1:
            raise ValueError(
                f"num_chains={options.num_chains} is fewer than the {ctx.world_size} ranks: "
                "give every rank at least one chain"
            )
        first = sum(counts[: ctx.rank])
        samples, divergent = self._chains(problem, options, init, first, counts[ctx.rank])
        samples = {k: dist.gather_rows(v.contiguous(), ctx) for k, v in sorted(samples.items())}
        div = torch.as_tensor(divergent, dtype=torch.uint8, device=dist.comm_device(ctx))
        divergent = dist.gather_rows(div, ctx).cpu().numpy().astype(bool)
        return samples, np.asarray(divergent)

    def estimate(self, samples: Params) -> Params:
        """The posterior mean of the chains."""
        return {k: v.mean((0, 1)) for k, v in samples.items()}
