"""Data-parallel fitting and evaluation on ``torch.distributed``, as launched by ``torchrun``.

One process per rank runs the same script; every rank loads the same table. :func:`ppgen.fit`
with ``distributed=True`` (or ``"auto"`` under a launcher) then

* detects the launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
  ``MASTER_PORT``: torchrun, Lightning, Ray Train and SLURM wrappers all set them) and joins or
  starts the default process group: ``gloo`` for CPU tensors, ``nccl`` for CUDA tensors (each rank
  on ``cuda:LOCAL_RANK``), so collectives always see tensors on the backend's device;
* infers the schema from the full table on every rank (the same table gives the same schema, so
  no broadcast is needed), then keeps only this rank's rows (:func:`shard_rows`: a seeded
  permutation cut into ``world_size`` near-equal parts, uneven splits allowed) *before* any
  engine sees them;
* lets the engines reduce across ranks with the helpers below: gradients averaged with one
  flat all-reduce per step (:func:`average_gradients`; the minibatch engine's
  :class:`GradientReducer` keeps them in one persistent buffer and launches its buckets from
  backward's hooks, as DDP does), metrics summed (:func:`all_reduce_sum`), per-row results
  gathered in rank order (:func:`gather_rows`).

Why an explicit all-reduce of gradients and not ``DistributedDataParallel``: DDP hooks into an
``nn.Module``'s ``forward``, while ppgen's engines differentiate Pyro losses over parameters that
live in Pyro's param store (MAP, SVI) or over model methods other than ``forward``
(``elbo_rows``, ``iwae_rows``); an all-reduce of the flattened gradients is exact for all of
them, costs one collective per step for networks under :attr:`GradientReducer.BUCKET_BYTES`
(on CPU each collective costs gloo's threads CPU beyond its bytes, so small networks are best
served by one), and carries the loss in the same buffer, so a NaN on any rank reaches every
rank in the same step and they all stop together.

Ranks compute in lockstep: every rank runs the same number of steps and collectives. The process
group is started once and left up for later fits and evaluations; :func:`shutdown` ends it (it is
also registered with :mod:`atexit` when ppgen started it).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pyro.poutine.messenger import Messenger

__all__ = [
    "DATA_PLATES",
    "ENV_KEYS",
    "Context",
    "GlobalPlate",
    "GradientReducer",
    "all_reduce_sum",
    "average_gradients",
    "broadcast_",
    "comm_device",
    "context",
    "environment",
    "gather_rows",
    "gather_sizes",
    "resolve",
    "block_share",
    "shard_rows",
    "shutdown",
    "split_counts",
    "take_rows",
]

#: The variables a launcher sets for each process (torchrun's names).
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: What ``distributed=`` accepts.
CHOICES = (False, True, "auto")
#: Minibatch SVI over several ranks reduces gradients with :class:`GradientReducer` (one
#: persistent buffer, buckets launched from backward's hooks); False: a new buffer and one
#: all-reduce after backward (:func:`average_gradients`), the same numbers (kept for
#: benchmarks/scale_svi.py's comparison).
OVERLAP = True


@dataclass(frozen=True)
class Context:
    """This process's place in a data-parallel run.

    Attributes
    ----------
    rank, world_size, local_rank : int
        As the launcher numbered the processes; ``world_size == 1`` for a single process (the
        distributed code path without communication: its results are the reference the
        multi-rank runs equal).
    backend : str
        ``"gloo"`` or ``"nccl"`` ("" without a process group).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def active(self) -> bool:
        """Whether there is anybody to talk to."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and prints reports."""
        return self.rank == 0


def environment() -> dict[str, str] | None:
    """The launcher's variables, or None when the process was not started by one (no
    ``WORLD_SIZE`` or ``RANK``)."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    return {k: os.environ[k] for k in ENV_KEYS if k in os.environ}


def _backend_for(device: torch.device) -> str:
    # NCCL only moves CUDA tensors and gloo is the CPU backend: follow the data's device.
    if device.type == "cuda" and torch.distributed.is_nccl_available():
        return "nccl"
    return "gloo"


def context() -> Context:
    """The current process group's context (a world of one when there is none)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return Context()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return Context(dist.get_rank(), dist.get_world_size(), local, str(dist.get_backend()))


def resolve(distributed: Any, device: torch.device | str | None = None) -> Context | None:
    """The context of ``distributed=`` (None: the serial path, unchanged).

    ``False``: serial. ``"auto"``: distributed when a process group is initialized or a launcher
    started this process with ``WORLD_SIZE > 1``, serial otherwise. ``True``: distributed; without
    a launcher it runs the distributed code path as a world of one process (handy to check a
    script before launching it on many). Starts the process group from the launcher's variables
    when none is running (``env://``), with the backend of ``device`` (CPU: gloo, CUDA: nccl).
    """
    if not any(distributed is c or (isinstance(c, str) and distributed == c) for c in CHOICES):
        raise ValueError(f"distributed must be False, True or 'auto', got {distributed!r}")
    if distributed is False:
        return None
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return context()
    env = environment()
    if env is None or int(env["WORLD_SIZE"]) <= 1:
        return Context() if distributed is True else None
    if not dist.is_available():
        raise ValueError("distributed=True needs torch.distributed, unavailable in this torch")
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in env]
    if missing:
        raise ValueError(
            f"the launcher's environment lacks {missing}: start the script with torchrun "
            "(e.g. torchrun --standalone --nproc-per-node 2 script.py)"
        )
    device = torch.device(device) if device is not None else torch.device("cpu")
    backend = _backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(env.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend, init_method="env://")
    atexit.register(shutdown)
    return context()


def shutdown() -> None:
    """End the default process group, if one is running."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        # Wait for every rank first: a rank tearing gloo down while another still talks to it
        # aborts the process at exit (C++ terminate, SIGABRT) after its work is done.
        try:
            dist.barrier()
        except RuntimeError:  # another rank is gone already: nothing left to wait for
            pass
        dist.destroy_process_group()


# -- sharding ------------------------------------------------------------------------------------
def split_counts(n: int, world_size: int) -> list[int]:
    """Rows per rank: ``n`` cut into ``world_size`` parts differing by at most one (the first
    ``n % world_size`` ranks hold one more), as ``numpy.array_split`` cuts."""
    return [len(part) for part in np.array_split(np.arange(n), world_size)]


def block_share(n: int, block: int, ctx: Context) -> range:
    """This rank's blocks of a table of ``n`` rows cut into fixed blocks of ``block`` rows (the
    last one shorter): contiguous shares whose rows are as even as the blocks allow, the rank
    boundaries at the block edges nearest to ``r * n / world_size`` rows. Counting blocks
    instead would give 1,797 rows in 15 blocks of 128 as 8 + 7 blocks, 1,024 + 773 rows (the
    slower rank 14 % over an even half); by rows they are 896 + 901."""
    n_blocks = -(-n // block)
    edges = [min(n_blocks, round(r * n / (ctx.world_size * block))) for r in range(ctx.world_size)]
    edges.append(n_blocks)
    return range(edges[ctx.rank], edges[ctx.rank + 1])


def shard_rows(n: int, ctx: Context, seed: int, *, shuffle: bool = True) -> np.ndarray:
    """This rank's rows of a table of ``n``, in increasing order.

    With ``shuffle`` the table is permuted by a generator seeded with ``seed`` (the same
    permutation on every rank) and cut into :func:`split_counts` parts, so each rank holds a random
    sample of the rows whatever order the file was in; without it, contiguous blocks (evaluation,
    whose results are gathered in order). The shards of all ranks partition ``range(n)``.
    """
    order = (
        np.random.Generator(np.random.PCG64(int(seed))).permutation(n) if shuffle else np.arange(n)
    )
    start = sum(split_counts(n, ctx.world_size)[: ctx.rank])
    size = split_counts(n, ctx.world_size)[ctx.rank]
    return np.sort(order[start : start + size])


def take_rows(data: Any, rows: np.ndarray) -> Any:
    """The rows ``rows`` of a DataFrame, array or tensor (its type kept)."""
    if hasattr(data, "iloc"):
        return data.iloc[rows]
    if isinstance(data, torch.Tensor):
        return data[torch.as_tensor(rows, device=data.device, dtype=torch.long)]
    return np.asarray(data)[rows]


# -- collectives ---------------------------------------------------------------------------------
def all_reduce_sum(tensor: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place (a no-op in a world of one); returns it."""
    if ctx.active:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor


def all_reduce_max(value: int, ctx: Context) -> int:
    """The largest ``value`` over ranks."""
    if not ctx.active:
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64, device=comm_device(ctx))
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return int(t.item())


def comm_device(ctx: Context) -> torch.device:
    """Where the backend's tensors live: the rank's GPU for NCCL, the CPU for gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if ctx.backend == "nccl" else "cpu"


def broadcast_(tensors: Sequence[torch.Tensor], ctx: Context, src: int = 0) -> None:
    """Overwrite ``tensors`` on every rank with rank ``src``'s values (one flat broadcast)."""
    tensors = [t for t in tensors]
    if not ctx.active or not tensors:
        return
    with torch.no_grad():
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        torch.distributed.broadcast(flat, src=src)
        offset = 0
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()


def average_gradients(
    loss: torch.Tensor, params: Sequence[torch.Tensor], weight: float, ctx: Context
) -> torch.Tensor:
    """Replace every rank's gradients by their ``weight``-weighted mean over ranks; return the
    loss averaged the same way (a detached scalar).

    ``weight`` is this rank's share of the step's data (its rows in the minibatch): for a
    loss that is a mean per row, the weighted mean of the ranks' gradients is the gradient of the
    mean over the union of their rows; for a loss that estimates a full-data sum (the plate
    scaled to the global N by :class:`GlobalPlate`), it is the one-process gradient over the
    union of the ranks' minibatches. Loss, gradients and total weight travel in one buffer;
    missing gradients count as zero. A NaN or infinity on any rank is in every rank's result.
    """
    loss = loss.detach()
    if not ctx.active:
        return loss
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    # One buffer [loss, 1, gradients...], scaled by the weight with one in-place multiply, reduced
    # in place, divided in place; the parameters' gradients become views of it (no copies per
    # parameter: the fixed per-step cost matters, every rank repeats it; see benchmarks/scale_svi).
    flat = torch.empty(2 + sum(g.numel() for g in grads), dtype=loss.dtype, device=loss.device)
    flat[0] = loss.reshape(())
    flat[1] = 1.0
    if grads:
        torch.cat([g.reshape(-1).to(flat.dtype) for g in grads], out=flat[2:])
    flat.mul_(float(weight))
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    flat.div_(flat[1].item())  # a host number: dividing by flat[1] in place would alias it
    offset = 2
    for p, g in zip(params, grads, strict=True):
        view = flat[offset : offset + g.numel()].view_as(p)
        p.grad = view if view.dtype == p.dtype else view.to(p.dtype)
        offset += g.numel()
    return flat[0]


class GradientReducer:
    """:func:`average_gradients` for a fixed list of parameters, overlapped with ``backward``
    (as ``DistributedDataParallel`` does it, on plain tensors).

    The parameters' gradients live, for the whole training, as views of one flat buffer cut
    into buckets of :attr:`BUCKET_BYTES` (parameters in reverse order of the list: the order
    backward finishes them, last layer first). A hook after each parameter's gradient
    accumulation launches the all-reduce of a bucket (``async_op=True``) as soon as all its
    parameters have their gradient, so communication runs in gloo's threads while backward
    computes the earlier layers; buckets launch in index order on every rank (a collective's
    partner is the one with the same sequence number on the other rank). :meth:`finish`
    launches what did not launch (a rank without rows in the step, parameters outside the
    loss), waits, and divides.

    The numbers are those of :func:`average_gradients`: each element is ``weight x
    gradient`` summed over ranks and divided by the summed weight (the loss and the weight
    travel at the end of the last bucket); only the collectives' cut differs, which changes
    nothing elementwise. Saves per step: the copy of every gradient into a new buffer and the
    views' creation (backward accumulates into the buffer in place), and, with several
    buckets, the wait for the whole buffer after backward.

    Use: :meth:`zero_grad` before the forward pass (instead of the optimizer's), :meth:`begin`
    with the step's weight before ``backward``, :meth:`finish` after; :meth:`close` removes
    the hooks (the model must not launch collectives after training).
    """

    #: Bytes per bucket: DDP's first bucket (1 MiB). Each collective costs gloo's threads
    #: ~0.2-0.3 ms of CPU on top of the bytes (measured: 53,000 float64 in 3 buckets cost 2-3x
    #: the CPU of one), CPU that ranks filling every core take from backward; so networks of
    #: under 1 MiB of gradients (the VAEs here: 0.5 MB) get one bucket, launched when backward
    #: ends, and larger ones overlap. benchmarks/scale_svi.py compares.
    BUCKET_BYTES = 1 << 20

    def __init__(
        self, params: Sequence[torch.Tensor], ctx: Context, bucket_bytes: int | None = None
    ) -> None:
        self.params, self.ctx = list(params), ctx
        if not self.params:
            raise ValueError("GradientReducer needs at least one parameter")
        first = self.params[0]
        self.dtype, self.device = first.dtype, first.device
        limit = max(1, int(bucket_bytes or self.BUCKET_BYTES) // first.element_size())
        # Buckets over the parameters in reverse order (backward's order); each bucket is one
        # contiguous stretch of `flat`, the last one ending with [loss, weight].
        buckets: list[list[int]] = [[]]
        size = 0
        for i in reversed(range(len(self.params))):
            if size >= limit:
                buckets.append([])
                size = 0
            buckets[-1].append(i)
            size += self.params[i].numel()
        total = sum(p.numel() for p in self.params)
        self.flat = torch.zeros(total + 2, dtype=self.dtype, device=self.device)
        self.views: list[torch.Tensor] = [first] * len(self.params)
        self.bucket_of = [0] * len(self.params)
        self.ranges: list[tuple[int, int]] = []
        offset = 0
        for b, members in enumerate(buckets):
            start = offset
            for i in members:
                n = self.params[i].numel()
                self.views[i] = self.flat[offset : offset + n].view_as(self.params[i])
                self.bucket_of[i] = b
                offset += n
            self.ranges.append((start, offset + (2 if b == len(buckets) - 1 else 0)))
        self.sizes = [len(m) for m in buckets]
        self.index = {id(p): i for i, p in enumerate(self.params)}
        self.hooks = [p.register_post_accumulate_grad_hook(self._accumulated) for p in self.params]
        self.pending: list[int] = []
        self.works: list[Any] = []
        self.weight = 1.0
        self.active = False

    def zero_grad(self) -> None:
        """Zero the buffer and make every parameter's gradient its view again (backward then
        accumulates into the buffer in place)."""
        self.flat.zero_()
        for p, view in zip(self.params, self.views, strict=True):
            if p.grad is not view:
                p.grad = view

    def begin(self, loss: torch.Tensor, weight: float) -> None:
        """Arm the hooks for one step: ``loss`` (this rank's, detached) and its ``weight``."""
        self.flat[-2] = loss.detach().reshape(())
        self.flat[-1] = 1.0
        self.weight = float(weight)
        self.pending = list(self.sizes)
        self.works = []
        self.active = True

    def _accumulated(self, param: torch.Tensor) -> None:
        if not self.active:
            return
        i = self.index[id(param)]
        view = self.views[i]
        if param.grad is not view:  # autograd stole a new tensor instead of adding in place
            view.copy_(param.grad)
            param.grad = view
        self.pending[self.bucket_of[i]] -= 1
        while len(self.works) < len(self.pending) and self.pending[len(self.works)] == 0:
            self._launch(len(self.works))

    def _launch(self, b: int) -> None:
        start, stop = self.ranges[b]
        bucket = self.flat[start:stop]
        bucket.mul_(self.weight)
        self.works.append(
            torch.distributed.all_reduce(bucket, op=torch.distributed.ReduceOp.SUM, async_op=True)
        )

    def finish(self) -> torch.Tensor:
        """Launch what is left, wait for every bucket, divide by the summed weight; the loss
        averaged like the gradients (a detached scalar)."""
        while len(self.works) < len(self.pending):
            self._launch(len(self.works))
        self.active = False
        for work in self.works:
            work.wait()
        self.works = []
        # A host number: dividing by flat[-1] in place would alias it.
        self.flat.div_(self.flat[-1].item())
        return self.flat[-2]

    def close(self) -> None:
        """Remove the hooks."""
        for hook in self.hooks:
            hook.remove()
        self.hooks = []
        self.active = False


def gather_sizes(n: int, ctx: Context) -> list[int]:
    """Every rank's ``n``, in rank order."""
    if not ctx.active:
        return [int(n)]
    t = torch.tensor([int(n)], dtype=torch.int64, device=comm_device(ctx))
    out = [torch.zeros_like(t) for _ in range(ctx.world_size)]
    torch.distributed.all_gather(out, t)
    return [int(o.item()) for o in out]


def gather_rows(tensor: torch.Tensor, ctx: Context, dim: int = 0) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` along ``dim`` in rank order (sizes along ``dim`` may
    differ; the other dimensions must agree). Every rank receives the whole result."""
    if not ctx.active:
        return tensor
    tensor = tensor.contiguous()
    sizes = gather_sizes(tensor.shape[dim], ctx)
    width = max(sizes)
    pad = list(tensor.shape)
    pad[dim] = width - tensor.shape[dim]
    padded = torch.cat([tensor, tensor.new_zeros(pad)], dim=dim) if pad[dim] else tensor
    out = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    torch.distributed.all_gather(out, padded.contiguous())
    return torch.cat([o.narrow(dim, 0, s) for o, s in zip(out, sizes, strict=True)], dim=dim)


# -- the data plate ------------------------------------------------------------------------------
#: The names of the plate over the observations in ppgen's models: rows, or whole sequences.
DATA_PLATES = ("data", "sequences")


class GlobalPlate(Messenger):
    """Rescale the sites of the data plate (``pyro.plate("data", n_local, ...)``, or
    ``"sequences"`` for sequence models) from the rank's ``n_local`` units to the table's
    ``n_global``.

    A plate over this rank's rows scales each row's log density by ``n_local / batch``; the
    ELBO of the whole table needs ``n_global / batch``. Multiplying those sites' scale by
    ``n_global / n_local`` makes every rank's loss an unbiased estimate of the full-data ELBO
    (global priors counted once, likelihood terms as if the rank's minibatch were drawn from all
    ``n_global`` rows), so that the ranks' averaged gradient is the full-data gradient.
    """

    def __init__(self, n_global: int, n_local: int, plates: tuple[str, ...] = DATA_PLATES) -> None:
        super().__init__()
        if n_local < 1:
            raise ValueError(f"a rank holds no rows (n_local={n_local}); use fewer ranks")
        self.factor = float(n_global) / float(n_local)
        self.plates = tuple(plates)

    def _process_message(self, msg: dict) -> None:
        if msg["type"] == "sample" and any(f.name in self.plates for f in msg["cond_indep_stack"]):
            msg["scale"] = msg["scale"] * self.factor
