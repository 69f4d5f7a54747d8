"""Parallel maps over independent, seeded jobs (model grids, bootstrap refits, comparison rows).

:func:`parallel_map` returns a ``map``-like function that fans jobs out with joblib: local
processes by default (``backend="loky"``), or any backend joblib knows, such as a Dask cluster
(``backend="dask"`` after ``distributed.Client(...)``) or Ray (``backend="ray"`` after
``ray.util.joblib.register_ray()``). Results come back in job order. Every job carries its own
seed (per grid cell, never per worker), so the results equal the serial ``map``'s exactly,
whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["parallel_map", "resolve_map"]


def parallel_map(n_jobs: int = -1, backend: str | None = None) -> Callable[..., list]:
    """A ``map(fn, jobs)`` running the jobs on ``n_jobs`` workers of joblib's ``backend``
    (default: local processes; ``-1``: one per core); results in job order."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be a positive integer or -1 (every core), got {n_jobs!r}")
    if backend is not None and not isinstance(backend, str):
        raise ValueError(f"backend must be a joblib backend name, got {backend!r}")

    def pmap(fn: Callable[[Any], Any], jobs: Iterable[Any]) -> list:
        from joblib import Parallel, delayed  # imported when used: joblib is optional

        return list(Parallel(n_jobs=n_jobs, backend=backend)(delayed(fn)(job) for job in jobs))

    return pmap


def resolve_map(
    map_fn: Callable[..., Iterable[Any]], n_jobs: int | None, backend: str | None = None
) -> Callable[..., Iterable[Any]]:
    """``map_fn``, or a :func:`parallel_map` of ``n_jobs`` workers when given (not both)."""
    if n_jobs is None or n_jobs == 1:
        if backend is not None and n_jobs is None:
            return parallel_map(-1, backend)
        return map_fn
    if map_fn is not map:
        raise ValueError("give either map_fn or n_jobs, not both")
    return parallel_map(n_jobs, backend)
