"""`fit`: one entry point for MAP, EM, SVI and NUTS."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta, AutoGuideList, AutoMultivariateNormal, AutoNormal
from pyro.infer.autoguide.initialization import init_to_value

from ppgen._utils import progress_bar, seeded
from ppgen.data.schema import Schema
from ppgen.guides.flows import FlowGuide
from ppgen.infer.mcmc import run_nuts
from ppgen.infer.optim import optimize
from ppgen.infer.result import Fit
from ppgen.models.base import GenerativeModel, Params

__all__ = ["METHODS", "fit"]

METHODS = ("map", "em", "svi", "nuts")


def fit(
    model: GenerativeModel,
    data: Any,
    *,
    method: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    kinds: dict[str, str] | None = None,
    standardize: bool = True,
    schema: Schema | None = None,
    progress: bool | None = None,
    **options: Any,
) -> Fit:
    """Fit ``model`` to ``data`` and return an immutable :class:`Fit`.

    Parameters
    ----------
    model : GenerativeModel
        An unfitted model, e.g. ``ppgen.GaussianMixture(3)``; it is copied, never changed.
    data : DataFrame, ndarray or Tensor
        Rows are observations. Missing entries (NaN) are masked in the likelihood. Sequence
        models (:class:`ppgen.HMM`) take sequences instead, with options ``id_column`` and
        ``time_column``, and return a :class:`ppgen.infer.sequences.SequenceFit`. Amortized
        models (:class:`ppgen.VAE`) are trained by minibatch SVI with early stopping (method
        ``"svi"`` only; options in :func:`ppgen.infer.amortized.fit_amortized`).
    method : {"map", "em", "svi", "nuts"}, optional
        Default ``"map"``, and ``"svi"`` (the only one) for amortized models such as VAE.
        ``"map"``: posterior mode of the global parameters by L-BFGS (or Adam with
        ``optimizer="adam"``) on the Pyro model, local latents summed or integrated out.
        ``"em"``: the same MAP objective by closed-form expectation-maximization, for models that
        provide it (GaussianMixture, PPCA; missing entries exact); fastest on large tables.
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
        Passed to :meth:`Schema.infer`, or a schema to reuse.
    progress : bool or None
        Show a progress bar; by default only when stderr is a terminal.
    **options
        Method options: ``max_steps``, ``tol``, ``lr``, ``optimizer``, ``n_init`` (restarts,
        best kept), ``init_values`` (starting values of global sites), ``subsample_size``,
        ``num_particles``, ``num_draws`` (SVI posterior draws), ``num_samples``,
        ``warmup_steps``, ``num_chains``, ``target_accept_prob``.
    """
    if method is None:
        method = "svi" if getattr(model, "amortized", False) else "map"
    common = {
        "method": method, "seed": seed, "device": device, "dtype": dtype, "kinds": kinds,
        "standardize": standardize, "schema": schema, "progress": progress,
    }  # fmt: skip
    if getattr(model, "sequential", False):
        # Sequence models (HMM): data are sequences; see ppgen.infer.sequences.
        from ppgen.infer.sequences import fit_sequences

        return fit_sequences(model, data, **common, **options)
    if getattr(model, "amortized", False):
        # Deep models (VAE): networks trained by minibatch SVI; see ppgen.infer.amortized.
        from ppgen.infer.amortized import fit_amortized

        return fit_amortized(model, data, **common, **options)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    schema = schema or Schema.infer(
        data, kinds=kinds, standardize=standardize, supported=model.supported_kinds
    )
    enc = schema.encode(data, device=device, dtype=dtype)
    x, mask = enc.x, enc.mask
    model = copy.deepcopy(model).build(schema).to(device=x.device, dtype=x.dtype)
    runner = {"map": _fit_map, "em": _fit_em, "svi": _fit_svi, "nuts": _fit_nuts}[method]
    with pyro.get_param_store().scope(), seeded(seed, x.device):
        params, losses, extra = runner(model, x, mask, seed=seed, progress=progress, **options)
    model.fitted({k: v.detach() for k, v in params.items()})
    return Fit(
        model=model,
        schema=schema,
        method=method,
        params={k: v.detach() for k, v in params.items()},
        losses=np.asarray(losses, dtype=float),
        seed=seed,
        train=enc,
        **extra,
    )


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _program(model: GenerativeModel) -> Callable:
    """The Pyro program to fit globals on: the collapsed model when local latents integrate out."""
    return model.collapsed if model.collapsed is not None else model.model


def _initial_values(model, x, mask, seed, init_values) -> Params:
    values = model.init_params(x, mask, _generator(seed))
    if init_values:
        unknown = set(init_values) - set(model.global_sites)
        if unknown:
            raise ValueError(
                f"init_values has unknown sites {sorted(unknown)}; expected {model.global_sites}"
            )
        values.update(
            {k: torch.as_tensor(v, dtype=x.dtype, device=x.device) for k, v in init_values.items()}
        )
    return values


def _make_guide(model: GenerativeModel, program: Callable, kind: Any, init: Params) -> Callable:
    exposed = poutine.block(program, expose=list(model.global_sites))
    loc_fn = init_to_value(values=init)
    if kind == "delta":
        globals_guide = AutoDelta(exposed, init_loc_fn=loc_fn)
    elif kind == "normal":
        globals_guide = AutoNormal(exposed, init_loc_fn=loc_fn, init_scale=0.01)
    elif kind == "mvn":
        globals_guide = AutoMultivariateNormal(exposed, init_loc_fn=loc_fn, init_scale=0.01)
    elif kind == "flow" or isinstance(kind, FlowGuide):
        # A recipe, not a guide: each fit builds its own flow over its own program.
        recipe = kind if isinstance(kind, FlowGuide) else FlowGuide()
        globals_guide = recipe.build(exposed, init_loc_fn=loc_fn)
    elif callable(kind):
        globals_guide = kind
    else:
        raise ValueError(
            f"guide must be 'normal', 'mvn', 'flow', a FlowGuide or a callable guide, got {kind!r}"
        )
    if program == model.collapsed or type(model).guide is GenerativeModel.guide:
        return globals_guide
    guide = AutoGuideList(program)
    guide.append(globals_guide)
    guide.append(model.guide)
    return guide


def _optimize_once(model, x, mask, *, guide_kind, init, options, progress, desc):
    program = _program(model)
    guide = _make_guide(model, program, guide_kind, init)
    elbo_class = TraceEnum_ELBO if model.enumerated else Trace_ELBO
    elbo = elbo_class(
        max_plate_nesting=model.max_plate_nesting, num_particles=options.pop("num_particles", 1)
    )
    subsample_size = options.pop("subsample_size", None)

    def loss_fn() -> torch.Tensor:
        return elbo.differentiable_loss(program, guide, x, mask, subsample_size)

    losses = optimize(loss_fn, progress=progress, desc=desc, **options)
    return guide, losses


def _fit_map(model, x, mask, *, seed, progress, n_init=1, init_values=None, **options):
    if options.get("subsample_size") and "optimizer" not in options:
        options["optimizer"] = "adam"  # L-BFGS needs a deterministic loss
    options.setdefault("optimizer", "lbfgs")
    options.setdefault("max_steps", 200 if options["optimizer"] == "lbfgs" else 5000)
    options.setdefault("tol", 1e-9 if options["optimizer"] == "lbfgs" else 1e-7)
    best = None
    for restart in range(int(n_init)):
        pyro.clear_param_store()
        init = _initial_values(model, x, mask, seed + restart, init_values)
        guide, losses = _optimize_once(
            model,
            x,
            mask,
            guide_kind="delta",
            init=init,
            options=dict(options),
            progress=progress,
            desc=f"map {restart + 1}/{n_init}" if n_init > 1 else "map",
        )
        with torch.no_grad():
            params = {k: v.detach().clone() for k, v in guide.median(x, mask).items()}
        if best is None or losses[-1] < best[1][-1]:
            best = (params, losses)
    return best[0], best[1], {"info": {"n_init": n_init, "n_steps": len(best[1])}}


def _fit_em(
    model,
    x,
    mask,
    *,
    seed,
    progress,
    n_init=1,
    init_values=None,
    max_steps=1000,
    tol=1e-3,
    **options,
):
    # tol: stop when an iteration gains less than this many nats per row (the MAP objective);
    # 1e-3 is scikit-learn's default on the same scale.
    if options:
        raise ValueError(f"unknown options for method='em': {sorted(options)}")
    if not hasattr(model, "m_step") and not hasattr(model, "em_step"):
        raise ValueError(f"{type(model).__name__} has no closed-form EM; use method='map'")
    best = None
    for restart in range(int(n_init)):
        params = _initial_values(model, x, mask, seed + restart, init_values)
        objective: list[float] = []
        bar = progress_bar(max_steps, "em", progress)
        # The M-step's values are valid by construction: argument checks would only cost time.
        with torch.no_grad(), pyro.validation_enabled(False):
            for _ in range(max_steps):
                if hasattr(model, "em_step"):  # a whole iteration (PPCA; GMM shares its E-step)
                    new, log_joint = model.em_step(x, mask, params)
                    objective.append(float(log_joint))
                else:
                    log_resp = model.component_log_prob(x, mask, params)
                    log_lik = log_resp.logsumexp(-1)
                    objective.append(float(log_lik.sum() + model.log_prior(params)))
                bar.update()
                if len(objective) > 1 and objective[-1] - objective[-2] <= tol * x.shape[0]:
                    break
                if hasattr(model, "em_step"):
                    params = new
                else:
                    resp = (log_resp - log_lik.unsqueeze(-1)).exp()
                    params = model.m_step(x, mask, resp, params)
        bar.close()
        if best is None or objective[-1] > best[1][-1]:
            best = (params, objective)
    losses = -np.asarray(best[1])
    return best[0], losses, {"info": {"n_init": n_init, "n_steps": len(losses)}}


def _fit_svi(
    model, x, mask, *, seed, progress, guide="normal", init_values=None, num_draws=1000, **options
):
    options.setdefault("optimizer", "adam")
    options.setdefault("max_steps", 3000)
    options.setdefault("tol", 1e-5)
    init = _initial_values(model, x, mask, seed, init_values)
    fitted, losses = _optimize_once(
        model,
        x,
        mask,
        guide_kind=guide,
        init=init,
        options=options,
        progress=progress,
        desc="svi",
    )
    with torch.no_grad():
        traces = [poutine.trace(fitted).get_trace(x, mask) for _ in range(int(num_draws))]
        draws = {k: torch.stack([t.nodes[k]["value"] for t in traces]) for k in model.global_sites}
        params = {k: v for k, v in fitted.median(x, mask).items() if k in model.global_sites}
    samples = {k: v.detach().unsqueeze(0) for k, v in draws.items()}
    return params, losses, {"samples": samples, "info": {"n_steps": len(losses)}}


def _fit_nuts(
    model,
    x,
    mask,
    *,
    seed,
    progress,
    num_samples=500,
    warmup_steps=500,
    num_chains=2,
    init_values=None,
    target_accept_prob=0.8,
    max_tree_depth=10,
):
    start, losses, _ = _fit_map(
        model, x, mask, seed=seed, progress=progress, init_values=init_values
    )
    samples, divergent = run_nuts(
        _program(model),
        (x, mask),
        init_values=start,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        num_chains=num_chains,
        max_plate_nesting=model.max_plate_nesting,
        target_accept_prob=target_accept_prob,
        max_tree_depth=max_tree_depth,
        seed=seed,
        progress=progress,
    )
    samples = {k: v for k, v in samples.items() if k in model.global_sites}
    params = {k: v.mean((0, 1)) for k, v in samples.items()}
    info = {
        "num_chains": num_chains,
        "num_samples": num_samples,
        "warmup_steps": warmup_steps,
        "divergences": int(divergent.sum()),
    }
    return params, losses, {"samples": samples, "divergent": divergent, "info": info}
