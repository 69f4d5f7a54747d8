"""NUTS through Pyro, one chain at a time so that chains are reproducible on any device."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_value
from tqdm import tqdm

from ppgen._utils import progress_bar, seeded

__all__ = ["run_nuts"]


def run_nuts(
    program: Callable,
    args: tuple,
    *,
    init_values: dict[str, torch.Tensor],
    num_samples: int = 500,
    warmup_steps: int = 500,
    num_chains: int = 2,
    max_plate_nesting: int = 1,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    seed: int = 0,
    progress: bool | None = None,
) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Run ``num_chains`` NUTS chains; return draws with leading (chain, draw) dims and divergences.

    Chains run one after another (each with seed ``seed + chain``) rather than in worker
    processes: on a GPU, or on the small machines statisticians share, that is as fast and it keeps
    every chain reproducible. All chains start from ``init_values`` (typically the MAP estimate),
    jittered by the warm-up. ``progress`` shows one bar over the chains' warm-up and sampling
    steps (default: when stderr is a terminal).
    """
    draws: list[dict[str, torch.Tensor]] = []
    divergent = np.zeros((num_chains, num_samples), dtype=bool)
    # One ppgen bar over every chain's steps instead of Pyro's own (disable_progbar): Pyro's
    # ignores ppgen's rule (shown only on a terminal unless asked), hides itself when a "CI"
    # variable is set, and would not say which of the chains run one after another is running.
    bar = progress_bar(num_chains * (warmup_steps + num_samples), "nuts", progress)
    try:
        for chain in range(num_chains):
            kernel = NUTS(
                program,
                max_plate_nesting=max_plate_nesting,
                target_accept_prob=target_accept_prob,
                max_tree_depth=max_tree_depth,
                init_strategy=init_to_value(values=init_values),
                jit_compile=True,
                ignore_jit_warnings=True,
            )
            # Shown before the first step: setting up (JIT tracing) takes a few seconds.
            bar.set_description(_stage(chain, num_chains, "warmup"))
            with seeded(seed + chain):
                mcmc = MCMC(
                    kernel,
                    num_samples=num_samples,
                    warmup_steps=warmup_steps,
                    num_chains=1,
                    disable_progbar=True,
                    hook_fn=_advance(bar, chain, num_chains),
                )
                mcmc.run(*args)
            draws.append({k: v.detach() for k, v in mcmc.get_samples().items()})
            idx = mcmc.diagnostics().get("divergences", {}).get("chain 0", [])
            divergent[chain, [i for i in idx if i < num_samples]] = True
    finally:
        bar.close()
    samples = {k: torch.stack([d[k] for d in draws]) for k in draws[0]}
    return samples, divergent


def _stage(chain: int, num_chains: int, stage: str) -> str:
    return f"nuts chain {chain + 1}/{num_chains} {stage}"


def _advance(bar: tqdm, chain: int, num_chains: int) -> Callable:
    """Pyro's ``hook_fn``: one step of ``bar``, its stage (warmup or sample) and the kernel's
    step size and acceptance probability."""
    shown = _stage(chain, num_chains, "warmup")

    def hook(kernel: NUTS, params: dict, stage: str, i: int) -> None:
        nonlocal shown
        bar.set_postfix(kernel.logging(), refresh=False)
        name = _stage(chain, num_chains, stage.split()[0].lower())
        if name != shown:  # a new stage is drawn at once, not at the next timed refresh
            shown = name
            bar.set_description(name)
        bar.update()

    return hook
