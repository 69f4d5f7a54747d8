"""Importance log-weights of a fitted model on a whole table: seeded, chunked, isolated.

The per-particle weights themselves are :func:`ppgen.models.weights.particle_log_weights` (the
model's fast hook, or the traced fallback). This module runs them over many rows as the
evaluation of a fit needs: in chunks of rows that bound memory, under one seed, without
gradients, and in a private Pyro param store. :mod:`ppgen.evaluate` (``elbo``, ``iwae``) and
:meth:`ppgen.Fit.anomaly_score` share it, so their numbers agree to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyro
import torch

from ppgen._utils import seeded
from ppgen.infer import distributed as dist
from ppgen.models.weights import particle_log_weights

__all__ = [
    "BLOCK_ROWS",
    "MAX_ELEMENTS",
    "check_count",
    "importance_log_weights",
    "iwae_data_rows",
    "iwae_rows",
    "sharded_log_weights",
]

#: Upper bound on particles x rows x columns held at once; rows are processed in chunks.
MAX_ELEMENTS = 2**21


def check_count(value: Any, name: str) -> int:
    """``value`` as a positive int, or a ``ValueError`` naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def importance_log_weights(
    model: Any,
    x: torch.Tensor,
    mask: torch.Tensor,
    k: int,
    *,
    params: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> np.ndarray | None:
    """Log importance weights of ``k`` guide particles for every row, shape ``(k, n)``, float64.

    Parameters
    ----------
    model : GenerativeModel
        A built model; evaluated at ``params`` (its global sites) and its own module parameters.
    x, mask : Tensor
        Encoded rows ``(n, d)`` and their observed-entry mask.
    k : int
        Particles per row.
    params : dict of Tensor, optional
        Values of the global sites (a fit's point estimate).
    seed : int
        Seed of the draws (the same seed gives the same draws as the training objective's).
    batch_size : int, optional
        Rows weighed at once; by default as many as keep :data:`MAX_ELEMENTS` particle-row-column
        values in memory.

    Returns
    -------
    ndarray or None
        The log weights on the encoded scale; None when the model has no local latent to weigh.
    """
    n, d = x.shape
    if batch_size is None:
        chunk = max(1, MAX_ELEMENTS // (k * max(d, 1)))
    else:
        chunk = check_count(batch_size, "batch_size")
    out = []
    # A private param store: PyroModule parameters must not be read from, or leak into, the
    # caller's global store (another fit may hold parameters of the same name).
    with pyro.get_param_store().scope(), seeded(seed, x.device), torch.no_grad():
        for start in range(0, n, chunk):
            xb, mb = x[start : start + chunk], mask[start : start + chunk]
            lw = particle_log_weights(model, xb, mb, k, params=params)
            if lw is None:
                if start == 0:
                    return None
                raise RuntimeError("the guide sampled local latents for some rows only")
            out.append(lw)
    return torch.cat(out, dim=-1).double().cpu().numpy()


#: Rows per seeded block of a distributed evaluation (:func:`sharded_log_weights`).
BLOCK_ROWS = 128


def block_seed(seed: int, block: int) -> int:
    """The seed of block ``block`` of a distributed evaluation seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(block)]).generate_state(1)[0])


def sharded_log_weights(
    model: Any,
    x: torch.Tensor,
    mask: torch.Tensor,
    k: int,
    ctx: dist.Context,
    *,
    params: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> np.ndarray | None:
    """:func:`importance_log_weights` of a distributed evaluation: every rank holds all rows
    and weighs a contiguous share of fixed blocks of rows (even in rows:
    :func:`~ppgen.infer.distributed.block_share`), and the blocks are gathered in order.

    Block ``b`` (rows ``b * B`` to ``(b + 1) * B``, ``B = batch_size`` or :data:`BLOCK_ROWS`,
    fewer when the particles would exceed :data:`MAX_ELEMENTS`) draws under its own seed
    :func:`block_seed`, so a row's draws depend on the seed and its block only: the result is
    identical for any number of ranks, including one process with ``distributed=True``. (It
    differs from the serial evaluation, whose single stream runs through all rows.)
    """
    n, d = x.shape
    rows = max(1, MAX_ELEMENTS // (k * max(d, 1)))
    rows = min(rows, check_count(batch_size, "batch_size") if batch_size else BLOCK_ROWS)
    out = []
    with pyro.get_param_store().scope(), torch.no_grad():
        for b in dist.block_share(n, rows, ctx):
            xb, mb = x[b * rows : (b + 1) * rows], mask[b * rows : (b + 1) * rows]
            with seeded(block_seed(seed, b), x.device):
                lw = particle_log_weights(model, xb, mb, k, params=params)
            if lw is None:
                break
            out.append(lw.double())
        if not out:
            # No block here, or no local latents: ask row 0 which (every rank holds all rows).
            with seeded(block_seed(seed, 0), x.device):
                probe = particle_log_weights(model, x[:1], mask[:1], k, params=params)
            if probe is None:
                return None
            local = probe.double()[..., :0]
        else:
            local = torch.cat(out, dim=-1)
    if ctx.backend == "nccl":
        local = local.to(dist.comm_device(ctx))
    return dist.gather_rows(local, ctx, dim=-1).cpu().numpy()


def iwae_rows(log_w: np.ndarray) -> np.ndarray:
    """The importance-weighted bound of each row from its log weights ``(k, n)``:
    ``logsumexp_j log w_ij - log k``, shape ``(n,)``."""
    return (torch.from_numpy(log_w).logsumexp(0) - math.log(log_w.shape[0])).numpy()


def iwae_data_rows(
    fit: Any, data: Any, *, k: int, seed: int = 0, batch_size: int | None = None
) -> np.ndarray:
    """Per-row IWAE bound of a fit on the data's original scale (the standardization's
    log-Jacobian added), as :func:`ppgen.evaluate.iwae` reports it; ``ValueError`` when the
    model has no local latent to weigh."""
    enc = fit.encode(data)
    k = check_count(k, "k")
    log_w = importance_log_weights(
        fit.model, enc.x, enc.mask, k, params=fit.params, seed=seed, batch_size=batch_size
    )
    if log_w is None:
        raise ValueError(
            f"{type(fit.model).__name__} has no continuous local latents to weigh: its "
            "likelihood is exact (use fit.log_prob)"
        )
    return iwae_rows(log_w) + fit.schema.log_abs_det_jacobian(enc.mask, x=enc.x).cpu().numpy()
