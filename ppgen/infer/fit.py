"""`fit`: one entry point for every engine and data layout.

The dispatcher resolves the engine (:mod:`ppgen.infer.engine`) and the model's data layout
(:mod:`ppgen.infer.layouts`), encodes and builds, runs the engine and hands its plain result
to the layout, which builds the :class:`Fit`.
"""

from __future__ import annotations

from typing import Any

import torch

from ppgen._utils import seeded
from ppgen.data.schema import Schema
from ppgen.infer.engine import names, parse_options, resolve
from ppgen.infer.layouts import get_layout
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
    **options: Any,
) -> Fit:
    """Fit ``model`` to ``data`` and return an immutable :class:`Fit`.

    Parameters
    ----------
    model : GenerativeModel
        An unfitted model, e.g. ``ppgen.GaussianMixture(3)``; it is copied, never changed.
    data : DataFrame, ndarray or Tensor, or a Parquet table
        Rows are observations. A ``.parquet`` path, a directory or list of them, or a
        ``pyarrow.dataset.Dataset`` is streamed in chunks, never held whole (``method="em"``;
        options ``chunk_rows``, ``sample_rows``, ``scan_levels``: :mod:`ppgen.infer.stream`).
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
        ``"nuts"``: Pyro's NUTS (``num_samples``, ``warmup_steps``, ``num_chains``), started
        from the MAP estimate.
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
    if standardize is None:
        standardize = model.standardize
    source = None
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
    schema, enc = layout.encode(
        model,
        data,
        schema=schema,
        kinds=kinds,
        standardize=standardize,
        device=device,
        dtype=dtype,
        **layout_options,
    )
    with seeded(seed, enc.x.device):
        built = layout.build(model, schema, enc)
        problem = layout.problem(built, schema, enc, seed=seed, progress=progress)
        if source is not None:
            problem = source.problem(problem, schema)
        try:
            result = engine.run(problem, parsed)
        except NonFiniteLossError as exc:
            partial = getattr(exc, "result", None)
            if partial is not None:
                partial = layout.postprocess(built, engine, partial)
                exc.fit = layout.result(built, schema, engine, partial, seed=seed, enc=enc)
            raise
    result = layout.postprocess(built, engine, result)
    return layout.result(built, schema, engine, result, seed=seed, enc=enc)
