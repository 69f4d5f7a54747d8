"""EM: closed-form expectation-maximization, one loop for every model that declares
:meth:`~ppgen.models.base.GenerativeModel.em_step` (GaussianMixture, PPCA, HMM). The objective is
what the model's ``em_step`` returns: the log-likelihood for ``prior=None`` (maximum likelihood,
the default), the log joint with ``prior="default"`` (the posterior mode).

``fixed={site: value}`` holds global sites at given values (hmmlearn's ``params=`` /
``init_params=``): the model's M-step maximizes over the free sites with the held ones at their
values, and every start (the model's screened ones too) begins from them. Models declare which
sites they can hold exactly (``fixable_sites``) and take them through ``hold``; see
:class:`EmOptions`.

Data-parallel and streamed EM (issue 20) is exact. Models that split their step into
:meth:`~ppgen.models.base.GenerativeModel.em_statistics` (sums over rows: GaussianMixture of every
structure and column kind with missing entries, PPCA, BayesianPCA, FactorAnalysis, HMM over
sequences) and :meth:`~ppgen.models.base.GenerativeModel.em_update` are iterated on statistics
summed over the chunks of a streamed table (:mod:`ppgen.infer.stream`) and, when the rows are
sharded over the processes of ``ppgen.fit(..., distributed=...)``, all-reduced in float64 before
each update (:mod:`ppgen.infer._reduce`): every rank holds the same parameters, and the log-prior
is added once, to the reduced log-likelihood, on which convergence is decided. Starting values
are then made from a seeded sample of at most :data:`START_ROWS` rows (sequences) of the whole
table, identical on every rank (:func:`ppgen.infer._reduce.gather_sample`; a streamed table's
schema sample), not from every row as in one process: the starts, and so possibly the optimum
reached from them, can differ from a one-process run's; from the same start (``init_values``),
every iterate equals the one-process iterate to rounding (1e-10)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyro
import torch
from pyro.distributions import constraints

from ppgen._utils import ConvergenceWarning, progress_bar
from ppgen.infer import _reduce
from ppgen.infer.engine import Engine, EngineResult, Problem, check_positive_int, model_class
from ppgen.infer.engines._pyro import initial_values
from ppgen.infer.engines._squarem import squarem
from ppgen.models.base import GenerativeModel, Params

__all__ = ["EM", "START_ROWS"]

#: Rows (sequences) of the seeded sample that distributed and streamed EM make their starting
#: values from (:func:`ppgen.infer._reduce.gather_sample`).
START_ROWS = 20_000


@dataclass(frozen=True)
class EmOptions:
    """Options of ``method="em"``.

    Attributes
    ----------
    n_init : int
        Restarts from the model's starting values with seeds ``seed, seed + 1, ...``; the
        highest final log joint is kept (then the model's :meth:`em_restarts`, if any).
    init_values : dict, optional
        Starting values of global sites (override the model's).
    fixed : dict, optional
        Sites held at the given values throughout (``{"transition": T, "initial": p}`` for a
        left-to-right HMM, ``{"weights": w}`` for a mixture with known weights): they replace
        the starting values (and ``init_values``) and are returned exactly; the M-step
        maximizes over the other sites given them, so EM stays an exact (generalized) EM and the
        log-likelihood never decreases. Values are on the data's scale for the sites that can
        be held, whose meaning does not depend on it: probabilities (``weights``,
        ``initial``, ``transition`` rows, ``probs``, ``probs[name]``, ``success``) and count
        rates (``rates``); and GaussianMixture's ``means`` (maximum likelihood), on the data's
        scale as :meth:`Fit.model.describe <ppgen.GaussianMixture.describe>` gives them (held
        as the encoded ``locs``, covariances re-estimated around them). Each model lists what
        it can hold in ``fixable_sites()`` (:meth:`ppgen.GaussianMixture.fixable_sites`,
        :meth:`ppgen.HMM.fixable_sites`); covariances, and HMM Gaussian emissions, cannot be
        held. Zeros of a held transition matrix stay exactly zero. ``Fit.info["fixed"]`` names
        the held sites (comma-separated). A bad name, shape or value raises a ``ValueError``
        naming it.
    max_steps : int
        Iterations per run at most.
    tol : float
        Stop when an iteration gains less than ``tol`` nats per observation (row, or observed
        time step of sequences). The default 1e-8 runs EM to its fixed point: scikit-learn's
        1e-3 stops slow EM runs up to a nat short of the optimum (earthquake Poisson mixtures),
        and the extra iterations are cheap next to the starts. A run that reaches ``max_steps``
        first warns (:class:`ppgen.ConvergenceWarning`) and sets ``Fit.converged`` False.
    screen_steps : int
        0 (the default, but HMM's default is 10) runs every start to convergence. Above 0,
        starts are screened: each of the ``n_init`` starts runs at most ``screen_steps``
        iterations, only the best (highest log joint) is run on to convergence; then the
        model's own starts (:meth:`em_restarts`, all made from that estimate) are screened
        and finished the same way. The winner's iterations are exactly those of an unscreened
        run from the same start. Models with ``em_steps`` (HMM) run the screened starts in
        lockstep, one batched iteration of all of them at a time (same iterations, to
        rounding).
    accelerate : bool
        False (the default) runs plain EM. True runs SQUAREM (Varadhan & Roland 2008;
        :mod:`ppgen.infer.engines._squarem`): two EM steps, an extrapolation along them kept
        only inside every site's support and when it does not lower the log joint, then an EM
        step from it. Same fixed points and stopping rule (one plain EM step gaining less than
        ``tol``), typically several times fewer EM steps on slowly converging fits
        (``ppgen.select`` uses it). Screened iterations (``screen_steps``) stay plain.
    """

    n_init: int = 1
    init_values: Mapping[str, Any] | None = None
    fixed: Mapping[str, Any] | None = None
    max_steps: int = 1000
    tol: float = 1e-8
    screen_steps: int = 0
    accelerate: bool = False

    def __post_init__(self) -> None:
        check_positive_int(self.n_init, "n_init")
        check_positive_int(self.max_steps, "max_steps")
        if isinstance(self.screen_steps, bool) or not isinstance(self.screen_steps, int):
            raise ValueError(f"screen_steps must be an integer >= 0, got {self.screen_steps!r}")
        if self.screen_steps < 0:
            raise ValueError(f"screen_steps must be an integer >= 0, got {self.screen_steps}")
        if not isinstance(self.accelerate, bool):
            raise ValueError(f"accelerate must be True or False, got {self.accelerate!r}")
        if self.fixed is not None and not isinstance(self.fixed, Mapping):
            raise ValueError(
                f"fixed must be a dict of site names to values, got {type(self.fixed).__name__}"
            )


class EM(Engine):
    """Expectation-maximization over the model's ``em_step``: restarts, then the model's own
    further starting points, the best log joint kept."""

    name: ClassVar[str] = "em"
    kind: ClassVar[str] = "point"
    loss_label: ClassVar[str] = "negative log-likelihood (nats)"  # log joint with a prior
    step_label: ClassVar[str] = "EM iteration"
    #: Under ``ppgen.fit(..., distributed=True)`` each rank holds a share of the rows and the
    #: ranks sum EM's sufficient statistics.
    parallel: ClassVar[str] = "rows"
    Options = EmOptions

    def accepts(self, model: GenerativeModel | type[GenerativeModel]) -> bool:
        cls = model_class(model)
        return not cls.amortized and cls.implements("em_step")

    def run(self, problem: Problem, options: EmOptions) -> EngineResult:
        model, n_init = problem.model, options.n_init
        fixed = held_values(problem, options.fixed)
        if fixed:
            # The model's M-step and starts keep them (the model is the fit's private copy).
            model.hold(fixed)
        shared = _reduce.world_size(problem) > 1
        if problem.stream is not None or shared:
            if not type(model).implements("em_statistics"):
                raise ValueError(
                    f"{model.label()} has no EM sufficient statistics (em_statistics): it "
                    "cannot be fitted by EM on a streamed or distributed table"
                )
        begin = start_problem(problem)

        def start(r: int) -> Params:
            values = initial_values(begin, problem.seed + r, options.init_values)
            return _reduce.broadcast_params(values) if shared else values

        starts = (
            ({**start(r), **fixed}, f"em {r + 1}/{n_init}" if n_init > 1 else "em")
            for r in range(n_init)
        )
        best: list = [None]  # the best (params, log joints) so far, updated by _run_starts
        self._run_starts(problem, starts, options, best)
        # The model's own starts, each made from the best estimate so far.
        extra = model.em_restarts(begin.x, begin.mask, lambda: best[0][0], **begin.data)
        if options.screen_steps:
            extra = list(extra)  # screened together: all made from the k-means starts' best
        extra = (({**start, **fixed}, f"em start {k + 1}") for k, start in enumerate(extra))
        self._run_starts(problem, extra, options, best)
        best = best[0]
        losses = -np.asarray(best[1])
        converged = len(losses) < options.max_steps
        if not converged:
            warnings.warn(
                f"EM stopped at max_steps={options.max_steps} still gaining more than "
                f"tol={options.tol:g} nats per observation; raise max_steps",
                ConvergenceWarning,
                stacklevel=2,
            )
        info = {"n_init": n_init, "n_steps": len(losses), "converged": converged}
        if fixed:
            info["fixed"] = ", ".join(fixed)  # a string: saved fits keep it
        if problem.stream is not None:
            info["streamed_rows"] = problem.n_units  # Fit.train holds only the sample
        return EngineResult(params={**best[0], **fixed}, losses=losses, info=info)

    def _run_starts(self, problem: Problem, starts, options: EmOptions, best: list) -> None:
        """EM from each of ``starts`` ((params, label) pairs, made lazily); ``best[0]``, the
        best (params, log joints) so far or None, is replaced by any run that ends higher.
        Unscreened, every start runs to convergence (the first of equals kept). Screened
        (``screen_steps``, more than one start), each runs that many iterations and only the
        best is resumed to convergence: its iterations are those of an unscreened run, since a
        run's state is its current parameters and log joints."""
        screen = options.screen_steps
        if screen:
            starts = list(starts)
            if len(starts) == 1:
                screen = 0
        leader = None
        if screen and _lockstep(problem):
            runs = self._screen_lockstep(problem, [p for p, _ in starts], options, screen)
            starts = []
            for run in runs:
                if leader is None or run[1][-1] > leader[1][-1]:
                    leader = run
        for params, desc in starts:
            run = self._iterate(problem, params, options, desc, steps=screen or None)
            if not screen:
                if best[0] is None or run[1][-1] > best[0][1][-1]:
                    best[0] = run[:2]
            elif leader is None or run[1][-1] > leader[1][-1]:
                leader = run
        if leader is None:
            return
        if not leader[2]:  # screened, not over: resume it
            leader = self._iterate(
                problem, leader[0], options, "em (best start)", objective=leader[1]
            )
        if best[0] is None or leader[1][-1] > best[0][1][-1]:
            best[0] = leader[:2]

    @staticmethod
    def _screen_lockstep(
        problem: Problem, starts: list[Params], options: EmOptions, steps: int
    ) -> list[tuple[Params, list[float], bool]]:
        """:meth:`_iterate` (at most ``steps`` iterations) from each of ``starts``, the runs
        advanced together by the model's ``em_steps`` (one iteration of every run still going,
        batched): each run's iterations, stopping rule and result are those of its own
        ``_iterate``."""
        todo = min(steps, options.max_steps)
        runs = [[params, [], todo == options.max_steps, False] for params in starts]
        bar = progress_bar(todo, f"em {len(starts)} starts", problem.progress)
        tol = options.tol * problem.n_units
        model = problem.model
        with torch.no_grad(), pyro.validation_enabled(False):
            for _ in range(todo):
                going = [run for run in runs if not run[3]]
                if not going:
                    break
                steps_out = model.em_steps(
                    problem.x, problem.mask, [run[0] for run in going], **problem.data
                )
                for run, (new, log_joint) in zip(going, steps_out, strict=True):
                    objective = run[1]
                    objective.append(float(log_joint))
                    if len(objective) > 1 and objective[-1] - objective[-2] <= tol:
                        run[2] = run[3] = True  # converged: keep the parameters it was at
                    else:
                        run[0] = new
                bar.update()
        bar.close()
        return [(params, objective, done) for params, objective, done, _ in runs]

    @staticmethod
    def _iterate(
        problem: Problem,
        params: Params,
        options: EmOptions,
        desc: str,
        objective: list[float] | None = None,
        steps: int | None = None,
    ) -> tuple[Params, list[float], bool]:
        """EM from ``params`` until the log joint gains less than ``tol`` per observation or
        ``max_steps`` log joints are in ``objective`` (resumed: the previous ones), at most
        ``steps`` iterations. Returns the parameters the last log joint was computed at once it
        converged, else the next iterate (where a resumed run goes on), the log joints, and
        whether the run is over (converged or at ``max_steps``)."""
        objective = [] if objective is None else list(objective)
        left = options.max_steps - len(objective)
        todo = left if steps is None else min(steps, left)
        bar = progress_bar(todo, desc, problem.progress)
        if options.accelerate and steps is None:
            with torch.no_grad(), pyro.validation_enabled(False):
                model = problem.model
                kernel = None
                if (
                    problem.stream is None
                    and _reduce.world_size(problem) <= 1
                    and type(model).implements("em_kernel")
                ):
                    kernel = model.em_kernel(problem.x, problem.mask, params)
                if kernel is not None:  # the whole run on the model's arrays
                    step, start, valid, finish = kernel
                    out = squarem(step, start, valid, tol=options.tol * problem.n_units,
                                  max_steps=options.max_steps, objective=objective,
                                  on_step=bar.update)  # fmt: skip
                    bar.close()
                    return finish(out[0]), out[1], out[2]
                if type(model).implements("em_supports"):  # cheaper than building priors
                    supports = model.em_supports(problem.x)
                else:
                    supports = {k: p.support for k, p in model.priors(problem.x).items()}
                out = squarem(
                    # Through em_iteration: streamed and distributed runs accelerate too.
                    lambda p: em_iteration(problem, p),
                    params,
                    supports,
                    tol=options.tol * problem.n_units,
                    max_steps=options.max_steps,
                    objective=objective,
                    on_step=bar.update,
                )
            bar.close()
            return out
        done = todo == left
        # The M-step's values are valid by construction: argument checks would only cost time.
        with torch.no_grad(), pyro.validation_enabled(False):
            for _ in range(todo):
                new, log_joint = em_iteration(problem, params)
                objective.append(float(log_joint))
                bar.update()
                if (
                    len(objective) > 1
                    and objective[-1] - objective[-2] <= options.tol * problem.n_units
                ):
                    done = True
                    break
                params = new
        bar.close()
        return params, objective, done


def _lockstep(problem: Problem) -> bool:
    """Whether screened starts run in lockstep: the model batches EM steps (``em_steps``) and
    the table is in memory in one process."""
    return (
        type(problem.model).implements("em_steps")
        and problem.stream is None
        and _reduce.world_size(problem) <= 1
    )


def em_iteration(problem: Problem, params: Params) -> tuple[Params, torch.Tensor]:
    """One EM iteration of ``problem`` from ``params``: the model's ``em_step`` on a table in
    one process; else its ``em_statistics`` summed over the chunks of a streamed table and
    over the ranks of a distributed run, then ``em_update`` (the same parameters on every
    rank). Returns the next parameters and the log joint at ``params``."""
    model = problem.model
    shared = _reduce.world_size(problem) > 1
    if problem.stream is None and not shared:
        return model.em_step(problem.x, problem.mask, params, **problem.data)
    chunks = problem.stream() if problem.stream is not None else [
        (problem.x, problem.mask, problem.data)
    ]  # fmt: skip
    stats: dict[str, torch.Tensor] | None = None
    for x, mask, data in chunks:
        if not x.shape[0]:
            continue
        part = model.em_statistics(x, mask, params, **data)
        stats = part if stats is None else {k: stats[k] + v for k, v in part.items()}
    if stats is None:  # a rank without rows: zero statistics, shaped by one unobserved unit
        stats = _zero_statistics(problem, params)
    if shared:
        stats = _reduce.sum_statistics(stats)
    return model.em_update(stats, params)


def _zero_statistics(problem: Problem, params: Params) -> dict[str, torch.Tensor]:
    """Statistics of no rows: zeros shaped as the model's statistics of one unit with nothing
    observed (per-unit data such as sequence lengths set to 1)."""
    x, units = problem.x, problem.x.shape[0]
    one = x.new_zeros((1,) + tuple(x.shape[1:]))
    data = {
        k: v.new_ones((1,) + tuple(v.shape[1:]))
        if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == units
        else v
        for k, v in problem.data.items()
    }
    mask = torch.zeros(one.shape, dtype=torch.bool, device=x.device)
    part = problem.model.em_statistics(one, mask, params, **data)
    return {k: torch.zeros_like(v) for k, v in part.items()}


def start_problem(problem: Problem) -> Problem:
    """The problem EM's starting values are made from: ``problem`` itself in one process (its
    rows, or a streamed table's seeded sample), else, on every rank of a distributed run, the
    seeded sample of at most :data:`START_ROWS` units of the whole table
    (:func:`ppgen.infer._reduce.gather_sample`); a streamed table's sample on every rank."""
    if _reduce.world_size(problem) <= 1 or problem.stream is not None:
        # A streamed table's sample is the same on every rank (read from the whole table).
        return problem
    units = problem.x.shape[0]
    per_unit = {
        k: v for k, v in problem.data.items()
        if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == units
    }  # fmt: skip
    sample = _reduce.gather_sample(
        {"x": problem.x, "mask": problem.mask, **per_unit}, problem.seed, START_ROWS
    )
    data = {**problem.data, **{k: sample[k] for k in per_unit}}
    return dataclasses.replace(
        problem, x=sample["x"], mask=sample["mask"], data=data, distributed=None
    )


def _support_text(support: Any) -> str:
    """What a value of ``support`` must be, in words."""
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    if support is constraints.simplex:
        return "non-negative with each row summing to 1"
    if support is constraints.unit_interval:
        return "between 0 and 1"
    if support is constraints.positive:
        return "positive"
    if support is constraints.nonnegative:
        return "non-negative"
    return f"in {support}"


def held_values(problem: Problem, fixed: Mapping[str, Any] | None) -> Params:
    """The sites ``fixed`` holds, checked and as tensors on the data's device and dtype, in the
    model's order (:meth:`fixable_sites`). Names that are not sites (GaussianMixture's
    ``means``, on the data's scale) are turned into sites by the model's ``encode_fixed``.

    Raises
    ------
    ValueError
        Naming the site: a model that cannot hold sites, a site it cannot hold (listing those
        it can), a value that is not numeric, of the wrong shape, not finite or outside the
        site's support (e.g. transition rows not summing to 1).
    """
    if not fixed:
        return {}
    model, x = problem.model, problem.x
    name = type(model).__name__
    if not type(model).implements("fixable_sites"):
        raise ValueError(f"{name} cannot hold parameters fixed (fixed=) with method='em'")
    allowed = model.fixable_sites()
    unknown = [site for site in fixed if site not in allowed]
    if unknown:
        raise ValueError(
            f"fixed= names {unknown}, which {model.label()} cannot hold fixed with method='em'; "
            f"it can hold {list(allowed)} (see {name}.fixable_sites)"
        )
    priors = model.priors(x)
    out: Params = {}
    for key in allowed:
        if key not in fixed:
            continue
        try:
            value = np.array(fixed[key], dtype=float)  # a copy: any strides, never shared
        except (TypeError, ValueError):
            raise ValueError(f"fixed[{key!r}] must be numeric, got {fixed[key]!r}") from None
        if not np.isfinite(value).all():
            raise ValueError(f"fixed[{key!r}] must be finite")
        held = torch.as_tensor(value, dtype=x.dtype, device=x.device)
        site = key
        if site not in priors:  # a quantity on the data's scale, which the model encodes
            site, held = model.encode_fixed(key, held)
        prior = priors[site]
        shape = tuple(prior.batch_shape + prior.event_shape)
        if tuple(held.shape) != shape:
            raise ValueError(f"fixed[{key!r}] must have shape {shape}, got {tuple(held.shape)}")
        if not bool(prior.support.check(held).all()):
            raise ValueError(f"fixed[{key!r}] must be {_support_text(prior.support)}")
        out[site] = held
    return out
