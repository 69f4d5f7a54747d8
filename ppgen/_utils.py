"""Small helpers shared by every layer: progress bars, seeded randomness and argument checks."""

from __future__ import annotations

import contextlib
import math
import random
import sys
from collections.abc import Collection, Iterator
from typing import Any

import numpy as np
import pyro
import torch
from tqdm import tqdm

__all__ = [
    "ConvergenceWarning",
    "check_int",
    "check_ints",
    "check_number",
    "check_positive_int",
    "progress_bar",
    "seeded",
]


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
            if devices or torch.cuda.is_initialized():
                pyro.set_rng_seed(int(seed))
            else:
                # CPU only: torch.manual_seed would also queue a lazy CUDA seeding that records
                # a traceback on every call (a measurable share of a small fit); the same three
                # generators pyro.set_rng_seed seeds, without it.
                torch.default_generator.manual_seed(int(seed))
                random.seed(int(seed))
                np.random.seed(int(seed))  # noqa: NPY002
            yield
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)


# -- argument checks: a ValueError naming the argument, its value and what is expected -----------
def _integral(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return False
    return math.isfinite(value) and float(value).is_integer()


def _bound(minimum: int) -> str:
    return {1: "positive integer", 0: "non-negative integer"}.get(
        minimum, f"whole number >= {minimum}"
    )


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int (``2.0`` passes, ``2.5``, ``True`` and ``"2"`` do not), at least
    ``minimum``; else a ``ValueError`` such as "n_components must be a positive integer, got
    'full'"."""
    if not _integral(value) or value < minimum:
        raise ValueError(f"{name} must be a {_bound(minimum)}, got {value!r}")
    return int(value)


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as a positive int, or a ``ValueError`` naming ``name``."""
    return check_int(value, name, minimum=1)


def check_ints(values: Any, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """A sequence of ints each at least ``minimum`` (layer widths), as a tuple."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Collection):
        raise ValueError(f"{name} must be a sequence of {_bound(minimum)}s, got {values!r}")
    if not all(_integral(v) and v >= minimum for v in values):
        raise ValueError(f"{name} must hold {_bound(minimum)}s only, got {values!r}")
    return tuple(int(v) for v in values)


def check_number(value: Any, name: str, *, positive: bool = True) -> float:
    """A finite real number, positive (or non-negative with ``positive=False``), as a float."""
    what = "a positive number" if positive else "a non-negative number"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if not math.isfinite(value) or not (value > 0 if positive else value >= 0):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return float(value)
