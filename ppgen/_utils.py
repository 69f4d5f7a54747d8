"""Small helpers shared by every layer: progress bars and seeded randomness."""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator

import numpy as np
import pyro
import torch
from tqdm import tqdm

__all__ = ["ConvergenceWarning", "progress_bar", "seeded"]


class ConvergenceWarning(UserWarning):
    """A result that should not be trusted as it is: a fit stopped at its iteration cap before
    its convergence rule was met (as scikit-learn's; raise ``max_steps``), or MCMC draws or
    PSIS/WAIC approximations that failed their diagnostics (``ppgen.evaluate``)."""


def progress_bar(total: int, desc: str, progress: bool | None = None) -> tqdm:
    """A tqdm bar, shown only when asked or when stderr is a terminal."""
    disable = not (sys.stderr.isatty() if progress is None else progress)
    return tqdm(total=total, desc=desc, disable=disable, leave=False, dynamic_ncols=True)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Seed torch, NumPy and Python's RNGs for the block, restoring the caller's state after.

    Every random entry point of ppgen takes a seed and runs under this, so results depend on the
    seed alone, not on what ran before.
    """
    devices = (
        [torch.device(device)] if device is not None and torch.device(device).type == "cuda" else []
    )
    # pyro.set_rng_seed seeds NumPy's legacy global RNG too; give the caller theirs back.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        with torch.random.fork_rng(devices=devices):
            pyro.set_rng_seed(int(seed))
            yield
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
