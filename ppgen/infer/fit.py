"""`fit`: one entry point for every engine and data layout.

The dispatcher resolves the engine (:mod:`ppgen.infer.engine`) and the model's data layout
(:mod:`ppgen.infer.layouts`), encodes and builds, runs the engine and hands its plain result
to the layout, which builds the :class:`Fit`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyro
import torch

from ppgen._utils import seeded
from ppgen.data.schema import Schema
from ppgen.infer import distributed as dist
from ppgen.infer.engine import Engine, names, parse_options, resolve
from ppgen.infer.layouts import Layout, Rows, get_layout
from ppgen.infer.optim import NonFiniteLossError
from ppgen.infer.result import Fit
from ppgen.infer.stream import is_source
from ppgen.models.base import GenerativeModel

__all__ = ["METHODS", "fit"]

#: The built-in method names (the registry may hold more: :func:`ppgen.infer.engine.names`).
#: The built-in method names (the registry: :func:`ppgen.infer.engine.names`).
METHODS = names()


def fit(
    model: GenerativeModel,
    data: Any,
    *,
    method: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    kinds: dict[str, str] | None = None,
    standardize: bool | None = None,
    schema: Schema | None = None,
    progress: bool | None = None,
    distributed: bool | str = False,
    **options: Any,
) -> Fit:
    """Fit ``model`` to ``data`` and return an immutable :class:`Fit`.

    Parameters
    ----------
    model : GenerativeModel
        An unfitted model, e.g. ``ppgen.GaussianMixture(3)``; it is copied, never changed.
    data : DataFrame, ndarray or Tensor, or a Parquet table
        Rows are observations. A ``.parquet`` path, a directory or list of them, or a
        ``pyarrow.dataset.Dataset`` is streamed in chunks, never held whole (``method="em"``, or
        minibatch SVI of a VAE; options ``chunk_rows``, ``sample_rows``, ``scan_levels``:
        :mod:`ppgen.infer.stream`).
        Missing entries (NaN) are masked in the likelihood. Sequence models
        (:class:`ppgen.HMM`) take sequences instead, with options ``id_column`` and
        ``time_column``, and return a :class:`ppgen.infer.sequences.SequenceFit`. Amortized
        models (:class:`ppgen.VAE`) are trained by minibatch SVI with early stopping (method
        ``"svi"`` only; options in :class:`ppgen.infer.engines.minibatch.MinibatchOptions`).
    method : {"map", "em", "svi", "nuts"} or a registered engine, optional
        Default: the model's ``default_method``: ``"em"`` where a closed-form EM exists
        (GaussianMixture, PPCA, HMM: maximum likelihood, the estimator scikit-learn and hmmlearn
        report, for their default ``prior=None``), ``"svi"`` (the only one) for amortized models
        such as VAE, ``"map"`` otherwise. The names are :func:`ppgen.infer.engine.names`; those
        a model accepts, :func:`ppgen.infer.engine.engines_for`.
        ``"em"``: closed-form expectation-maximization (missing entries exact) of the
        log-likelihood, or of the log joint for models built with ``prior="default"``; several
        starts, run to its fixed point; fastest on large tables.
        ``"map"``: posterior mode of the global parameters under the model's stated priors, by
        L-BFGS (or Adam with ``optimizer="adam"``) on the Pyro model, local latents summed or
        integrated out.
        ``"svi"``: variational posterior of the globals (``guide="normal"`` mean-field,
        ``"mvn"`` full-rank, ``"flow"`` a normalizing flow (or a
        :class:`ppgen.guides.FlowGuide` recipe), or your own guide over the global sites),
        minibatches with ``subsample_size``. Deep models (:class:`ppgen.VAE`,
        :class:`ppgen.HierarchicalVAE`) are trained by minibatch SVI of their networks.
        ``"nuts"``: NUTS with every chain in one tensor (``num_samples``, ``warmup_steps``,
        ``num_chains``, ``max_tree_depth``, ``init_radius``), started around the MAP estimate;
        ``"pyro-nuts"``: Pyro's NUTS, chains one after another (what ``"nuts"`` runs for models
        that cannot be vectorized over chains, such as the HMM, and under ``distributed=True``).
        ``"hmc"``: ChEES-HMC, every chain in one tensor.
    seed : int
        Everything random (initialization, minibatches, MCMC) follows from it.
    device, dtype
        Where and in what precision to compute; by default the data's own (CPU, float64 for
        DataFrames and arrays).
    kinds, standardize, schema
        Passed to :meth:`Schema.infer`, or a schema to reuse. ``standardize=None`` takes the
        model's own (:attr:`GenerativeModel.standardize`: True, except PPCA, which models the
        data as given unless built with ``standardize=True``).
    progress : bool or None
        Show a progress bar; by default only when stderr is a terminal.
    distributed : {False, True, "auto"}
        Data-parallel fitting over the processes of a ``torchrun`` launch (see
        :mod:`ppgen.infer.distributed` and docs/scaling.md). Every rank passes the same table;
        the schema is inferred from all of it, then each rank keeps its share of the rows (a
        seeded split) and the engine reduces across ranks: EM sums its statistics, MAP and SVI
        and minibatch training average gradients, NUTS runs a share of the chains on all rows
        and gathers them. ``fit.info`` records ``world_size`` and ``rows_per_rank``. ``"auto"``:
        only when launched by torchrun (or a process group is running); ``True`` without a
        launcher runs the same code as one rank. Default False: the serial fit, unchanged.
    **options
        Method options, fields of each engine's ``Options`` (e.g.
        :class:`ppgen.infer.engines.map.MapOptions`): ``max_steps``, ``tol``, ``lr``,
        ``optimizer``, ``n_init`` (restarts, best kept),
        ``init_values`` (starting values of global sites), ``fixed`` (sites held at given
        values, ``method="em"``: :class:`ppgen.infer.engines.em.EmOptions`), ``subsample_size``,
        ``num_particles``, ``num_draws`` (SVI posterior draws), ``num_samples``,
        ``warmup_steps``, ``num_chains``, ``target_accept_prob``; and the layout's
        (``id_column``, ``time_column`` for sequences). An unknown option raises a
        ``ValueError`` naming it and listing the valid ones.

    Raises
    ------
    NonFiniteLossError
        When the loss diverges; its ``fit`` attribute is the :class:`Fit` of the last good
        values (when the engine could keep them).
    """
    engine = resolve(method, model)
    ctx = dist.resolve(distributed, device)
    if ctx is not None and not type(engine).parallel:
        raise ValueError(
            f"method={engine.name!r} ({type(engine).__name__}) does not run distributed yet; "
            "use distributed=False, or one of the data-parallel engines (em, map, svi, nuts)"
        )
    if ctx is not None and ctx.rank:
        progress = False  # one bar per run: rank 0's
    if standardize is None:
        standardize = model.standardize
    source = None
    if ctx is not None and is_source(data) and engine.name not in ("em", "svi"):
        # EM and minibatch SVI share the row groups out over the ranks (stream.Source.shard).
        raise ValueError(
            "distributed= with streamed files (Parquet) runs method='em' or 'svi': the row "
            f"groups are shared out over the ranks; method={engine.name!r} takes an in-memory "
            f"table (DataFrame, array, tensor or sequences), not {data!r}"
        )
    if is_source(data):  # a table larger than memory: see ppgen.infer.stream
        from ppgen.infer.stream import stream_sample

        source, data, schema = stream_sample(
            model, engine, data, seed, options, schema=schema, kinds=kinds, standardize=standardize
        )
    layout = get_layout(model.layout)
    layout_options = {k: options.pop(k) for k in layout.options if k in options}
    if "fixed" in options and "fixed" not in engine.option_names():
        # Holding sites needs an M-step that maximizes over the others (EM's).
        raise ValueError(
            f"fixed= is supported by method='em'; method={engine.name!r} cannot hold "
            "parameters fixed"
        )
    parsed = parse_options(
        engine, {**model.fit_defaults(engine.name), **options}, also=layout.options
    )
    encode_args = dict(
        schema=schema,
        kinds=kinds,
        standardize=standardize,
        device=device,
        dtype=dtype,
        **layout_options,
    )
    if ctx is None or source is not None:  # a streamed table: every rank encodes the sample
        schema, enc = layout.encode(model, data, **encode_args)
    else:
        schema, enc = _encode_shard(layout, model, data, engine, ctx, seed, encode_args)
    with seeded(seed, enc.x.device):
        built = layout.build(model, schema, enc)
        problem = layout.problem(built, schema, enc, seed=seed, progress=progress)
        if ctx is not None:
            problem = _distribute(problem, engine, ctx, seed)
        if source is not None:  # distributed, this rank streams its share of the row groups
            problem = source.problem(problem, schema, ctx)
        try:
            result = engine.run(problem, parsed)
        except NonFiniteLossError as exc:
            partial = getattr(exc, "result", None)
            if partial is not None:
                partial = layout.postprocess(built, engine, partial)
                _record(partial, ctx, problem, engine)
                exc.fit = _whole(
                    layout.result(built, schema, engine, partial, seed=seed, enc=enc), ctx, engine
                )
            raise
    result = layout.postprocess(built, engine, result)
    _record(result, ctx, problem, engine)
    return _whole(layout.result(built, schema, engine, result, seed=seed, enc=enc), ctx, engine)


# -- distributed runs (see ppgen.infer.distributed) ---------------------------------------------
def _encode_shard(
    layout: Layout,
    model: GenerativeModel,
    data: Any,
    engine: Engine,
    ctx: dist.Context,
    seed: int,
    encode_args: dict[str, Any],
) -> tuple[Schema, Any]:
    """The schema of the whole table (identical on every rank: every rank read the same table)
    and this rank's share of the encoded rows (sequences), or all of them for chain-parallel
    engines (NUTS)."""
    sharded = type(engine).parallel == "rows"
    if sharded and isinstance(layout, Rows):
        # Infer from every row, encode only this rank's: memory per rank follows its shard.
        schema = encode_args.pop("schema") or Schema.infer(
            data,
            kinds=encode_args["kinds"],
            standardize=encode_args["standardize"],
            supported=model.supported_kinds,
        )
        rows = dist.shard_rows(len(data), ctx, seed)
        return layout.encode(model, dist.take_rows(data, rows), schema=schema, **encode_args)
    schema, enc = layout.encode(model, data, **encode_args)
    if not sharded:
        return schema, enc
    rows = dist.shard_rows(int(enc.x.shape[0]), ctx, seed)
    return schema, _subset(enc, rows)


def _subset(enc: Any, rows: np.ndarray) -> Any:
    """The units ``rows`` (first dimension) of an encoded dataclass: its tensors and per-unit
    tuples indexed, everything else kept."""
    n = int(enc.x.shape[0])
    index = torch.as_tensor(rows, dtype=torch.long)
    changes = {}
    for f in dataclasses.fields(enc):
        value = getattr(enc, f.name)
        if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == n:
            changes[f.name] = value[index.to(value.device)]
        elif isinstance(value, tuple) and len(value) == n:
            changes[f.name] = tuple(value[i] for i in rows)
    return dataclasses.replace(enc, **changes)


def _distribute(problem: Any, engine: Engine, ctx: dist.Context, seed: int) -> Any:
    """The problem of this rank: the global counts, identical starting weights (rank 0's), and
    for row-parallel engines an RNG stream of its own (rank 0 keeps the serial one), so the
    ranks' Monte-Carlo draws are independent."""
    params = [p for p in problem.model.parameters()]
    dist.broadcast_(params, ctx)
    if type(engine).parallel != "rows":
        return dataclasses.replace(problem, distributed=ctx, n_global=int(problem.x.shape[0]))
    counts = torch.tensor(
        [problem.x.shape[0], problem.n_units], dtype=torch.float64, device=dist.comm_device(ctx)
    )
    dist.all_reduce_sum(counts, ctx)
    if ctx.rank:
        pyro.set_rng_seed(int(np.random.SeedSequence([int(seed), ctx.rank]).generate_state(1)[0]))
    return dataclasses.replace(
        problem, distributed=ctx, n_global=int(counts[0]), n_units=int(counts[1])
    )


def _whole(fit: Fit, ctx: dist.Context | None, engine: Engine) -> Fit:
    """A row-parallel fit keeps no training rows: each rank held a shard, and methods that
    default to the training data (``to_arviz``, ``loo``) must be given the whole table."""
    if ctx is None or type(engine).parallel != "rows":
        return fit
    return dataclasses.replace(fit, train=None)


def _record(result: Any, ctx: dist.Context | None, problem: Any, engine: Engine) -> None:
    """``world_size`` and the rows each rank held (all of them for chain-parallel engines), in
    ``result.info``."""
    if ctx is None:
        return
    n = int(problem.x.shape[0])
    if problem.stream is not None:  # the rows this rank streamed (problem.x is the sample)
        n = int(problem.stream.source.n_rows)
    result.info["world_size"] = ctx.world_size
    if type(engine).parallel == "rows":
        result.info["rows_per_rank"] = dist.gather_sizes(n, ctx)
    else:
        result.info["rows_per_rank"] = [n] * ctx.world_size
