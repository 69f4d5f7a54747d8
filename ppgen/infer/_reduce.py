"""Sums and broadcasts of EM's sufficient statistics across the processes of a data-parallel
run (``torch.distributed``, default process group), used by :mod:`ppgen.infer.engines.em`.

EM is exact under data parallelism: the E-step's statistics are sums over rows
(:meth:`~ppgen.models.base.GenerativeModel.em_statistics`), so summing each rank's sums gives
those of the whole table, and the M-step (:meth:`~ppgen.models.base.GenerativeModel.em_update`)
then runs on identical numbers on every rank. The statistics travel as one flat float64 buffer
per iteration (one collective), whatever the data's dtype.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["broadcast_params", "gather_sample", "sum_statistics", "world_size"]


def world_size(problem: Any) -> int:
    """How many processes share ``problem``'s rows: the default process group's size when the
    problem was sharded by ``ppgen.fit(..., distributed=...)`` (``problem.distributed`` set)
    and a group is up, else 1."""
    if getattr(problem, "distributed", None) is None:
        return 1
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return 1
    return torch.distributed.get_world_size()


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])


def _unflat(buffer: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    out, start = [], 0
    for t in like:
        out.append(buffer[start : start + t.numel()].reshape(t.shape).to(t.dtype))
        start += t.numel()
    return out


def sum_statistics(stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``stats`` summed over every rank (keys in sorted order, so that every rank packs the
    buffer alike), in float64, returned in each statistic's own dtype."""
    keys = sorted(stats)
    values = [torch.as_tensor(stats[k]) for k in keys]
    buffer = _flat(values)
    torch.distributed.all_reduce(buffer, op=torch.distributed.ReduceOp.SUM)
    return dict(zip(keys, _unflat(buffer, values), strict=True))


def broadcast_params(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rank 0's ``params`` on every rank (the same sites and shapes everywhere)."""
    keys = sorted(params)
    values = [torch.as_tensor(params[k]) for k in keys]
    buffer = _flat(values)
    torch.distributed.broadcast(buffer, src=0)
    return dict(zip(keys, _unflat(buffer, values), strict=True))


def gather_sample(units: dict[str, torch.Tensor], seed: int, size: int) -> dict[str, torch.Tensor]:
    """A seeded sample of about ``size`` units (rows or sequences: the first dimension of
    every tensor in ``units``) from the whole table, identical on every rank.

    Rank r, holding n_r of the N units, contributes ``ceil(size * n_r / N)`` of them (all when
    N <= size), chosen by a permutation seeded with ``(seed, r)``, kept in their order; the
    contributions are concatenated in rank order. EM's starting values are made from this
    sample, so they do not depend on how the rows were split only through the sample."""
    rank = torch.distributed.get_rank()
    n_local = next(iter(units.values())).shape[0]
    like = next(iter(units.values()))
    counts = [torch.zeros(1, dtype=torch.float64, device=like.device) for _ in range(
        torch.distributed.get_world_size())]  # fmt: skip
    torch.distributed.all_gather(counts, like.new_full((1,), n_local, dtype=torch.float64))
    sizes = [int(c.item()) for c in counts]
    total = sum(sizes)
    take = [n if total <= size else min(n, math.ceil(size * n / total)) for n in sizes]
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + rank)
    rows = torch.randperm(n_local, generator=gen)[: take[rank]].sort().values.to(like.device)
    out = {}
    for key in sorted(units):
        mine = units[key][rows].to(torch.float64)
        # Every rank's block padded to the largest shape (padded sequences differ in length
        # from rank to rank; the padding is zeros: unobserved steps beyond each length).
        shape = torch.tensor([max(take), *mine.shape[1:]], dtype=torch.float64, device=like.device)
        torch.distributed.all_reduce(shape, op=torch.distributed.ReduceOp.MAX)
        buffer = mine.new_zeros(tuple(int(v) for v in shape.tolist()))
        buffer[tuple(slice(0, n) for n in mine.shape)] = mine
        parts = [torch.empty_like(buffer) for _ in sizes]
        torch.distributed.all_gather(parts, buffer)
        joined = torch.cat([p[:t] for p, t in zip(parts, take, strict=True)])
        out[key] = joined.to(units[key].dtype)
    return out
