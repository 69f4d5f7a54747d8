"""Model selection over a grid of candidates: ``ppgen.select("gmm", data)``.

One report for the structure of a table: every candidate of a family (mixture covariance
structures x numbers of components, PPCA dimensions, HMM states) fitted by maximum likelihood,
scored by BIC, ICL and held-out log-likelihood, each criterion's pick, whether the criteria agree,
and, with ``n_boot > 0``, how often bootstrap resamples make the same picks.

Conventions
-----------
- **BIC** is mclust's: ``2 log L - df log n`` (larger is better), with ``df`` the model's free
  parameters (:meth:`GenerativeModel.n_parameters`, mclust's ``nMclustParams`` for mixtures) and
  n the rows (time steps for an HMM). :meth:`ppgen.Fit.bic` is its negative (``-2 log L + df log
  n``, smaller is better, scikit-learn's convention).
- **ICL** (mixtures) is mclust's: ``BIC + 2 sum_i log max_k z_ik``, the BIC penalized by the
  entropy of the hard classification (Biernacki, Celeux & Govaert 2000).
- **heldout** is the mean log-likelihood per row of a seeded random ``heldout_fraction`` of the
  rows under the candidate fitted to the other rows (larger is better).
- **NA**: a candidate whose fit failed, or whose fit is singular or near-singular, has NA
  criteria (never an infinite-likelihood spike). For mixtures the rule is mclust's idea with
  ppgen's ridge: a component covariance whose smallest eigenvalue is below sqrt(machine eps)
  times its largest, or at most 100 * ``reg_covar`` (the floor the ridge holds a collapsed
  component at; :meth:`GaussianMixture.fitted` warns there), or a component with (floored)
  weight below 1e-8. The ``note`` column says why.

Families are entries of :data:`FAMILIES` (:class:`Family`: how to build a candidate from its
key, the default grid, whether ICL applies, the singularity rule), so another family (e.g. factor
analysis) joins with :func:`register_family`. Candidates are fitted by :func:`evaluate_candidates`,
the one place where a parallel map can replace the serial ``map``.

References
----------
Fraley, C. & Raftery, A. E. (2002). Model-based clustering, discriminant analysis and density
estimation. *JASA* 97, 611-631.
Biernacki, C., Celeux, G. & Govaert, G. (2000). Assessing a mixture model for clustering with
the integrated completed likelihood. *IEEE TPAMI* 22(7), 719-725.
Schwarz, G. (1978). Estimating the dimension of a model. *Annals of Statistics* 6, 461-464.
"""

from __future__ import annotations

import itertools
import math
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ppgen._parallel import resolve_map
from ppgen.data.schema import Schema
from ppgen.infer.fit import fit as _fit
from ppgen.models import covariances
from ppgen.models.covariances import STRUCTURES, reciprocal_condition
from ppgen.models.fa import FactorAnalysis
from ppgen.models.gmm import OFF_WEIGHT, GaussianMixture
from ppgen.models.hmm import HMM
from ppgen.models.ppca import PPCA

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ppgen.infer.result import Fit
    from ppgen.models.base import GenerativeModel

__all__ = [
    "CRITERIA",
    "FAMILIES",
    "Family",
    "SelectionReport",
    "evaluate_candidates",
    "prune_mixture",
    "register_family",
    "select",
]

#: The criteria :func:`select` knows, all "larger is better".
CRITERIA = ("bic", "icl", "heldout")

#: A mixture component covariance is singular below this reciprocal condition number.
SINGULAR_RCOND = math.sqrt(float(np.finfo(np.float64).eps))


@dataclass(frozen=True)
class Family:
    """How :func:`select` builds and judges one family's candidates.

    Attributes
    ----------
    keys : tuple of str
        Names of the grid's dimensions, e.g. ``("structure", "K")``; a candidate is a tuple of
        values in this order.
    build : callable
        ``build(*candidate, **model_options) -> GenerativeModel``, unfitted.
    default_grid : callable
        ``default_grid(n_rows, n_columns) -> dict`` of key -> values (their product is the
        grid).
    mixture : bool
        Whether ICL applies (the fit has ``predict_proba`` memberships).
    singular : callable, optional
        ``singular(fit) -> str | None``: why the fit is (near-)singular, or None.
    sequences : bool
        Whether the data are sequences (held-out split and bootstrap are then not offered).
    model_defaults : dict
        Constructor options every candidate gets unless ``model_options`` overrides them.
    starts : callable, optional
        ``starts(*candidate, **model_options) -> list of dict``: several constructor options
        to fit a candidate with, the fit with the highest final objective kept (independent
        starts); None fits the candidate once with ``model_options``.
    fit_defaults : dict
        :func:`ppgen.fit` options every candidate gets under ``method="em"`` (the default)
        unless ``fit_options`` overrides them.
    """

    keys: tuple[str, ...]
    build: Callable[..., GenerativeModel]
    default_grid: Callable[[int, int], dict[str, Sequence[Any]]]
    mixture: bool = False
    singular: Callable[[Fit], str | None] | None = None
    sequences: bool = False
    model_defaults: Mapping[str, Any] = field(default_factory=dict)
    starts: Callable[..., list[Mapping[str, Any]]] | None = None
    fit_defaults: Mapping[str, Any] = field(default_factory=dict)


#: The mixtures' starts in :func:`select`, as mclust's: the model-based hierarchical
#: agglomeration of the data (VVV criterion, computed once and shared by every structure and
#: K) cut at K; see :func:`_gmm_starts` for the one k-means++ start the unconstrained structures
#: add. ``model_options={"init": "kmeans", "n_init": 10, "init_steps": 100}`` restores
#: GaussianMixture's own default (10 screened k-means++ starts; ~5x the time).
GMM_SELECT_STARTS = MappingProxyType({"init": "hc"})

#: The EM options of the "gmm" family: SQUAREM-accelerated EM (``accelerate``, same stopping
#: rule as plain EM: one plain step gaining less than 1e-8 nats per row); several times fewer
#: EM steps on the slowly converging candidates (benchmarks/results/select_faithful.md).
GMM_SELECT_FIT = MappingProxyType({"accelerate": True})


def _gmm_build(structure: str, K: int, **options: Any) -> GaussianMixture:
    """A candidate mixture from one start unless ``options`` say otherwise (see
    :func:`_gmm_starts`)."""
    return GaussianMixture(int(K), structure, **{"n_init": 1, **options})


def _gmm_starts(structure: str, K: int, **options: Any) -> list[Mapping[str, Any]]:
    """The starts of a candidate mixture: the hierarchical one alone for the parsimonious
    structures, as mclust. The unconstrained ones (VVV, VVI), whose closed-form M-step is the
    cheapest iteration, are also fitted from one k-means++ start and the better fit is kept:
    measured on faithful, the hierarchical start alone ends below mclust's VVV,4 and VVV,6
    (our agglomeration is not exactly mclust's), both starts reach them
    (benchmarks/results/select_faithful.md). Options naming the starts (``init``, ``n_init``,
    ``init_partition``) are used as given, once."""
    own = {"init", "n_init", "init_steps", "init_partition"} & set(options)
    if (
        covariances.canonical(structure) in ("VVV", "VVI")
        and not own - {"init"}
        and (options.get("init", "hc") == "hc")
    ):
        return [options, {**options, "init": "kmeans"}]
    return [options]


def _gmm_singular(fit: Fit) -> str | None:
    """The mixture rule of the module docstring."""
    model = fit.model
    described = model.describe(fit.params, fit.schema)
    if float(described["weights"].min()) < 1e-8:
        return "empty component"
    cov = described.get("covariances", described.get("variances"))
    if cov is None:  # no continuous columns: nothing can be singular
        return None
    rcond = float(reciprocal_condition(cov).min())
    smallest = cov.min(-1).values if cov.dim() == 2 else torch.linalg.eigvalsh(cov)[..., 0]
    if rcond < SINGULAR_RCOND:
        return f"singular covariance (rcond {rcond:.2g})"
    if float(smallest.min()) <= 100 * model.reg_covar:
        return f"collapsed component (variance {float(smallest.min()):.2g} at the reg_covar floor)"
    return None


def _fa_singular(fit: Fit) -> str | None:
    """A Heywood case: some column's uniqueness at the boundary (psych warns of it too)."""
    columns = fit.model.heywood(fit.params)
    if not columns:
        return None
    return "Heywood case: " + ", ".join(fit.schema.names[j] for j in columns)


#: The families :func:`select` knows.
FAMILIES: dict[str, Family] = {
    "gmm": Family(
        keys=("structure", "K"),
        build=_gmm_build,
        default_grid=lambda n, p: {"structure": STRUCTURES, "K": range(1, 10)},
        mixture=True,
        singular=_gmm_singular,
        model_defaults=GMM_SELECT_STARTS,
        starts=_gmm_starts,
        fit_defaults=GMM_SELECT_FIT,
    ),
    "ppca": Family(
        keys=("q",),
        build=lambda q, **kw: PPCA(int(q), **kw),
        default_grid=lambda n, p: {"q": range(1, max(p - 1, 1) + 1)},
    ),
    "fa": Family(
        # Rotation leaves the likelihood unchanged, so one rotation serves every criterion.
        keys=("k",),
        build=lambda k, **kw: FactorAnalysis(int(k), **kw),
        # Sizes whose model is identified: the Ledermann bound (p - k)^2 >= p + k.
        default_grid=lambda n, p: {"k": [k for k in range(1, p) if (p - k) ** 2 >= p + k]},
        singular=_fa_singular,
    ),
    "hmm": Family(
        keys=("states",),
        build=lambda states, **kw: HMM(int(states), **kw),
        default_grid=lambda n, p: {"states": range(1, 7)},
        sequences=True,
    ),
}


def register_family(name: str, family: Family) -> None:
    """Make ``family`` available as ``select(name, ...)`` (and ``ppgen select --family``)."""
    FAMILIES[name] = family


@dataclass(frozen=True)
class _Result:
    """What one candidate's fits give."""

    candidate: tuple
    values: dict[str, float]
    df: float
    loglik: float
    note: str


@dataclass(frozen=True)
class _Job:
    """One candidate to fit: everything :func:`_run` needs (picklable for a parallel map)."""

    family: str
    candidate: tuple
    data: Any
    heldout: tuple[Any, Any] | None
    criteria: tuple[str, ...]
    seed: int
    options: Mapping[str, Any]
    model_options: Mapping[str, Any] = field(default_factory=dict)
    #: The schema of ``data`` (inferred once for the whole grid), or None to infer per fit.
    schema: Any = None


def _n_obs(fit: Fit, data: Any) -> int:
    """Rows (time steps of sequences): BIC's n."""
    return _units(_trained_on(fit, data))


def _units(enc: Any) -> int:
    return int(enc.n_steps) if hasattr(enc, "n_steps") else len(enc.x)


def _trained_on(fit: Fit, data: Any) -> Any:
    """``data`` encoded by ``fit``, which was fitted to it: the encoding the fit keeps
    (``Fit.train``), else a new one."""
    return fit.train if fit.train is not None else fit.encode(data)


def _scores(fit: Fit, data: Any, memberships: bool) -> tuple[float, int, np.ndarray | None]:
    """The log-likelihood of ``data`` (what ``fit`` was fitted to; ``Fit.log_prob``'s sum),
    BIC's n and, with ``memberships``, ``Fit.predict_proba(data)``, from one encoding of the
    data (a point fit's kept training encoding; encoding again costs more than a small fit's
    EM)."""
    if fit.kind != "point" or fit.train is None:
        loglik = float(np.sum(fit.log_prob(data)))
        z = np.asarray(fit.predict_proba(data)) if memberships else None
        return loglik, _n_obs(fit, data), z
    enc = fit.train
    # One draw (the estimate): Fit.log_prob's mean over draws is this row's value exactly.
    loglik = float(np.sum(fit.log_likelihood_draws()))
    z = None
    if memberships:
        with torch.no_grad():
            z = fit.model.predict_proba(enc.x, enc.mask, dict(fit.params)).cpu().numpy()
    return loglik, _units(enc), z


def _fit_candidate(
    family: Family,
    candidate: tuple,
    data: Any,
    seed: int,
    options: Mapping[str, Any],
    model_options: Mapping[str, Any],
) -> Fit:
    """The candidate fitted from each of its family's starts: the highest final objective
    (lowest last loss) among the fits the family's singularity rule accepts, else among all;
    the first of equals. (A start that ends on a collapsed component, a spike of high
    likelihood, does not displace a proper optimum found from another start.)"""
    variants = family.starts(*candidate, **model_options) if family.starts else [model_options]
    if len(variants) == 1:
        model = family.build(*candidate, **variants[0])
        return _fit(model, data, seed=seed, progress=False, **options)
    best, best_key = None, None
    for variant in variants:
        model = family.build(*candidate, **variant)
        fitted = _fit(model, data, seed=seed, progress=False, **options)
        proper = family.singular is None or family.singular(fitted) is None
        key = (proper, -float(fitted.losses[-1]))
        if best is None or key > best_key:
            best, best_key = fitted, key
    return best


def _run(job: _Job) -> _Result:
    """Fit one candidate and compute its criteria (NaN when failed or singular)."""
    family = FAMILIES[job.family]
    nan = dict.fromkeys(job.criteria, float("nan"))
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            options = job.options if job.schema is None else {**job.options, "schema": job.schema}
            fitted = _fit_candidate(family, job.candidate, job.data, job.seed, options,
                                    job.model_options)  # fmt: skip
        except (ValueError, RuntimeError, FloatingPointError) as err:
            return _Result(job.candidate, nan, float("nan"), float("nan"), f"failed: {err}")
    notes += sorted({type(w.message).__name__ for w in caught if "Convergence" in str(w.category)})
    df = float(fitted.n_free_parameters())
    icl = "icl" in job.criteria and family.mixture
    loglik, n_obs, z = _scores(fitted, job.data, icl)
    why = family.singular(fitted) if family.singular is not None else None
    if why is not None or not math.isfinite(loglik):
        return _Result(job.candidate, nan, df, float("nan"), why or "non-finite likelihood")
    values = dict(nan)
    bic = 2 * loglik - df * math.log(n_obs)
    if "bic" in values:
        values["bic"] = bic
    if icl:
        values["icl"] = bic + 2 * float(np.log(np.clip(z.max(-1), 1e-300, None)).sum())
    if "heldout" in values and job.heldout is not None:
        train, test = job.heldout
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                part = _fit_candidate(family, job.candidate, train, job.seed, job.options,
                                      job.model_options)  # fmt: skip
            why = family.singular(part) if family.singular is not None else None
            if why is None:
                values["heldout"] = float(np.mean(part.log_prob(test)))
            else:
                notes.append(f"heldout fit {why}")
        except (ValueError, RuntimeError, FloatingPointError) as err:
            notes.append(f"heldout fit failed: {err}")
    return _Result(job.candidate, values, df, loglik, "; ".join(notes))


def evaluate_candidates(
    jobs: Iterable[_Job], map_fn: Callable[..., Iterable[_Result]] = map
) -> list[_Result]:
    """Every job's result, in order: the seam where a parallel map (processes, a cluster)
    replaces the builtin serial ``map``; each job is self-contained and seeded, so the results
    do not depend on the map."""
    return list(map_fn(_run, jobs))


def _grid(family: Family, grid: Any, n: int, p: int) -> list[tuple]:
    """The candidates: a dict of key -> values (their product; missing keys take the default
    grid's values) or an iterable of tuples."""
    default = family.default_grid(n, p)
    if grid is None:
        grid = default
    if isinstance(grid, Mapping):
        unknown = [key for key in grid if key not in family.keys]
        if unknown:
            raise ValueError(f"grid has keys {unknown}; this family's are {list(family.keys)}")
        values = [list(grid.get(key, default[key])) for key in family.keys]
        candidates = list(itertools.product(*values))
    else:
        candidates = [tuple(c) if isinstance(c, (tuple, list)) else (c,) for c in grid]
        bad = [c for c in candidates if len(c) != len(family.keys)]
        if bad:
            raise ValueError(f"grid entries must be tuples of {family.keys}, got {bad[:3]}")
    if not candidates:
        raise ValueError("grid is empty")
    return candidates


def _frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    # An array's columns get the names ppgen.fit gives them (x0, x1, ...): a frame with integer
    # column names is refused by every fit.
    array = np.asarray(data)
    return pd.DataFrame(array, columns=[f"x{j}" for j in range(array.shape[1])])


def _picks(table: pd.DataFrame, keys: tuple[str, ...], criteria: Sequence[str]) -> dict:
    picks = {}
    for name in criteria:
        column = table[name]
        if column.notna().any():
            row = table.loc[column.idxmax()]
            picks[name] = tuple(_plain(row[key]) for key in keys)
    return picks


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (readable tuples)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class SelectionReport:
    """What :func:`select` found.

    Attributes
    ----------
    family : str
    keys : tuple of str
        The grid's dimensions (columns of ``table`` naming a candidate).
    table : DataFrame
        One row per candidate: its keys, ``df``, ``loglik`` (training, data scale), each
        criterion (NaN when NA), ``note`` (why NA, convergence warnings).
    picks : dict
        Criterion -> the candidate it picks (largest value).
    best : tuple
        The BIC pick (else the first criterion's), e.g. ``("VEV", 2)``.
    criteria : tuple of str
    n : int
        Rows (or time steps) the criteria were computed on.
    bootstrap : DataFrame or None
        With ``n_boot > 0``: per criterion and candidate, how many resamples picked it and the
        share, plus ``same`` (whether it is the full data's pick).
    """

    family: str
    keys: tuple[str, ...]
    table: pd.DataFrame
    picks: dict[str, tuple]
    best: tuple
    criteria: tuple[str, ...]
    n: int
    heldout_fraction: float
    seed: int
    bootstrap: pd.DataFrame | None = field(default=None)
    fit_options: Mapping[str, Any] = field(default_factory=dict)
    model_options: Mapping[str, Any] = field(default_factory=dict)

    def fit(self, data: Any, candidate: tuple | None = None) -> Fit:
        """Refit ``candidate`` (default :attr:`best`) to ``data`` with the selection's seed and
        options: the same fit the table scored when ``data`` is the selection's data."""
        return _fit_candidate(FAMILIES[self.family], candidate or self.best, data, self.seed,
                              self.fit_options, self.model_options)  # fmt: skip

    def memberships(self, data: Any, candidate: tuple | None = None) -> pd.DataFrame:
        """Each row's most probable component of the chosen mixture, its probability,
        mclust's ``uncertainty`` (1 - that probability) and the entropy of the memberships
        (nats), plus every component's probability (``p0``, ``p1``, ...)."""
        if not FAMILIES[self.family].mixture:
            raise ValueError(f"memberships need a mixture family, not {self.family!r}")
        z = np.asarray(self.fit(data, candidate).predict_proba(data))
        out = pd.DataFrame({"component": z.argmax(-1), "probability": z.max(-1)})
        out["uncertainty"] = 1 - out["probability"]
        out["entropy"] = -(z * np.log(np.clip(z, 1e-300, None))).sum(-1)
        for k in range(z.shape[-1]):
            out[f"p{k}"] = z[:, k]
        return out

    def agree(self) -> bool:
        """Whether every criterion picks the same candidate."""
        return len(set(self.picks.values())) <= 1

    def stability(self, criterion: str = "bic") -> float:
        """Share of bootstrap resamples whose ``criterion`` pick is the full data's (NaN
        without bootstrap)."""
        if self.bootstrap is None:
            return float("nan")
        rows = self.bootstrap[(self.bootstrap["criterion"] == criterion) & self.bootstrap["same"]]
        return float(rows["share"].sum())

    def summary(self) -> str:
        """The report in words: each criterion's pick, whether they agree, NA candidates,
        bootstrap stability."""

        def name(candidate: tuple) -> str:
            return ",".join(str(v) for v in candidate)

        lines = [
            f"Selection over {len(self.table)} {self.family} candidates "
            f"({' x '.join(self.keys)}), n = {self.n}.",
        ]
        scored = [c.upper() for c in ("bic", "icl") if c in self.picks]
        if scored:  # ICL only for mixtures; neither when not asked for
            lines.append(
                f"{' and '.join(scored)} in mclust's convention: 2 log L - df log n "
                "(larger is better; Fit.bic is the negative)."
            )
        if "heldout" in self.criteria:
            lines.append(
                f"heldout: mean log-likelihood per row of a {self.heldout_fraction:.0%} split "
                f"(seed {self.seed}), each candidate fitted on the rest."
            )
        for criterion in self.criteria:
            if criterion not in self.picks:
                lines.append(f"  {criterion}: not available for this family/data")
                continue
            pick = self.picks[criterion]
            value = self.table.set_index(list(self.keys)).loc[pick, criterion]
            value = float(np.asarray(value).ravel()[0])
            text = f"  {criterion} picks {name(pick)} ({value:.3f})"
            if self.bootstrap is not None:
                text += f"; same pick in {self.stability(criterion):.0%} of bootstrap resamples"
            lines.append(text)
        if self.agree():
            lines.append(f"All criteria agree on {name(self.best)}.")
        else:
            groups: dict[tuple, list[str]] = {}
            for criterion, pick in self.picks.items():
                groups.setdefault(pick, []).append(criterion)
            said = "; ".join(f"{'/'.join(c)} -> {name(p)}" for p, c in groups.items())
            lines.append(f"The criteria DISAGREE: {said}. Reported best (BIC): {name(self.best)}.")
        na = self.table[self.table[list(self.criteria)].isna().all(axis=1)]
        if len(na):
            lines.append(
                f"{len(na)} candidates are NA (failed or singular): "
                + ", ".join(name(tuple(r[k] for k in self.keys)) for _, r in na.iterrows())
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def plot(self, criteria: Sequence[str] | None = None) -> Figure:
        """One panel per criterion: its value against the last key (K, q, states), one line
        per value of the others (a covariance structure), as mclust's ``plot(mclustBIC)``;
        NA candidates are gaps."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        criteria = [c for c in (criteria or self.criteria) if self.table[c].notna().any()]
        fig, axes = plt.subplots(1, max(len(criteria), 1), figsize=(5 * max(len(criteria), 1), 4))
        axes = np.atleast_1d(axes)
        x_key, groups = self.keys[-1], list(self.keys[:-1])
        for ax, criterion in zip(axes, criteria, strict=False):
            parts = self.table.groupby(groups, sort=False) if groups else [((), self.table)]
            for label, part in parts:
                label = ",".join(map(str, np.atleast_1d(label))) if groups else criterion
                ax.plot(part[x_key], part[criterion], marker="o", ms=3, label=label)
            pick = self.picks.get(criterion)
            ax.set_title(f"{criterion} (pick {','.join(map(str, pick)) if pick else 'NA'})")
            ax.set_xlabel(x_key)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(criterion)
            if groups:
                ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        return fig


def select(
    family: str,
    data: Any,
    grid: Mapping[str, Sequence[Any]] | Iterable[tuple] | None = None,
    criteria: Sequence[str] = ("bic", "icl", "heldout"),
    n_boot: int = 0,
    seed: int = 0,
    *,
    heldout_fraction: float = 0.2,
    fit_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    map_fn: Callable[..., Iterable[Any]] = map,
    n_jobs: int | None = None,
    backend: str | None = None,
) -> SelectionReport:
    """Fit every candidate of ``family`` on ``grid`` and report each criterion's choice.

    Parameters
    ----------
    family : {"gmm", "ppca", "hmm"} or a registered name
        ``"gmm"``: :class:`ppgen.GaussianMixture` over covariance structures x K (default
        mclust's 14 structures x 1..9); ``"ppca"``: :class:`ppgen.PPCA` over q (default
        1..p-1); ``"hmm"``: :class:`ppgen.HMM` over states (default 1..6; BIC only).
    data : DataFrame or array
        The table (sequences for ``"hmm"``, with ``fit_options={"id_column": ...}``).
    grid : dict or iterable of tuples, optional
        ``{"structure": ["EEE", "VVV"], "K": range(1, 5)}`` (their product; keys left out take
        the default) or the candidates themselves, e.g. ``[("EEE", 3), ("VVV", 2)]``.
    criteria : sequence of {"bic", "icl", "heldout"}
        Computed and picked (see the module docstring for each convention). ICL only for
        mixtures, heldout not for sequences.
    n_boot : int
        Bootstrap resamples of the rows (with replacement, seeds ``seed + 1, ...``); each refits
        the whole grid and records the BIC and ICL picks. Costs ``n_boot`` times the grid.
    seed : int
        Seeds every fit, the held-out split and the resamples.
    heldout_fraction : float
        Share of rows held out for ``"heldout"``.
    fit_options : dict, optional
        Passed to :func:`ppgen.fit` for every candidate (``method``, ``n_init``, ...).
    model_options : dict, optional
        Passed to every candidate's constructor (e.g. ``{"reg_covar": 1e-9}`` for a mixture),
        over the family's ``model_defaults`` (mixtures: :data:`GMM_SELECT_STARTS`, mclust's
        hierarchical start plus one screened k-means++ start).
    map_fn : callable
        Maps the candidate fits (builtin ``map``: serial); a parallel map gives the same
        results (:func:`evaluate_candidates`).
    n_jobs : int, optional
        Fit the candidates (and bootstrap refits) on this many local processes with joblib
        (-1: one per core); the results equal the serial run's exactly (each candidate carries
        its own seed). Instead of ``map_fn``.
    backend : str, optional
        joblib's backend for ``n_jobs`` (``"loky"`` processes by default; ``"dask"`` or
        ``"ray"`` where the user has registered a cluster).

    Returns
    -------
    SelectionReport

    Raises
    ------
    ValueError
        An unknown family or criterion, a bad grid, ``n_boot`` < 0, a held-out fraction outside
        (0, 1).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    fam = FAMILIES[family]
    criteria = tuple(criteria)
    unknown = [c for c in criteria if c not in CRITERIA]
    if unknown or not criteria:
        raise ValueError(f"criteria must be among {list(CRITERIA)}, got {list(criteria)}")
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction!r}")
    options = dict(fit_options or {})
    if options.get("method") in (None, "em"):
        options = {**fam.fit_defaults, **options}
    frame = _frame(data)
    n_cols = frame.shape[1] - (1 if "id_column" in options else 0)
    candidates = _grid(fam, grid, len(frame), n_cols)
    heldout = None
    if "heldout" in criteria and not fam.sequences:
        order = np.random.default_rng(seed).permutation(len(frame))
        n_test = max(1, round(heldout_fraction * len(frame)))
        test, train = frame.iloc[np.sort(order[:n_test])], frame.iloc[np.sort(order[n_test:])]
        heldout = (train.reset_index(drop=True), test.reset_index(drop=True))
    model_options = {**fam.model_defaults, **(model_options or {})}
    for candidate in candidates:  # a bad name or size is the user's error, not an NA row
        fam.build(*candidate, **model_options)
    schema = _shared_schema(fam, frame, candidates[0], options, model_options)
    jobs = [
        _Job(family, c, frame, heldout, criteria, seed, options, model_options, schema)
        for c in candidates
    ]
    map_fn = resolve_map(map_fn, n_jobs, backend)
    results = evaluate_candidates(jobs, map_fn)
    table = _table(fam, results, criteria)
    picks = _picks(table, fam.keys, criteria)
    best = picks.get("bic", next(iter(picks.values()), None))
    n = len(frame)  # rows; for sequences in long format, their time steps
    boot = None
    if n_boot:
        boot = _bootstrap(family, frame, candidates, criteria, picks, int(n_boot), seed,
                          jobs[0], map_fn)  # fmt: skip
    return SelectionReport(family, fam.keys, table, picks, best, criteria, n, heldout_fraction,
                           seed, boot, options, model_options)  # fmt: skip


def _shared_schema(
    fam: Family,
    frame: pd.DataFrame,
    candidate: tuple,
    options: Mapping[str, Any],
    model_options: Mapping[str, Any],
) -> Schema | None:
    """The schema every candidate's fit to ``frame`` would infer (the same for all: it depends
    on the data, the model class's column kinds and its standardization, not on the
    candidate), inferred once; None when the options shape it (``schema``, ``kinds``,
    ``standardize``) or for sequences (read with their own options)."""
    if fam.sequences or {"schema", "kinds", "standardize"} & set(options):
        return None
    model = fam.build(*candidate, **model_options)
    return Schema.infer(frame, standardize=model.standardize, supported=model.supported_kinds)


def _table(fam: Family, results: list[_Result], criteria: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for r in results:
        row = dict(zip(fam.keys, r.candidate, strict=True))
        row.update(df=r.df, loglik=r.loglik, **r.values, note=r.note)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*fam.keys, "df", "loglik", *criteria, "note"])


def _bootstrap(
    family: str,
    frame: pd.DataFrame,
    candidates: list[tuple],
    criteria: tuple[str, ...],
    picks: dict[str, tuple],
    n_boot: int,
    seed: int,
    like: _Job,
    map_fn: Callable[..., Iterable[Any]],
) -> pd.DataFrame:
    """Pick counts of BIC and ICL over ``n_boot`` row resamples (held-out is not resampled:
    a split within each resample would cost another grid)."""
    fam = FAMILIES[family]
    if fam.sequences:
        raise ValueError("n_boot > 0 is not offered for sequence families (resample sequences)")
    boot_criteria = tuple(c for c in criteria if c != "heldout") or ("bic",)
    counts: dict[tuple[str, tuple], int] = {}
    for b in range(n_boot):
        rows = np.random.default_rng(seed + 1 + b).integers(len(frame), size=len(frame))
        sample = frame.iloc[rows].reset_index(drop=True)
        jobs = [
            _Job(family, c, sample, None, boot_criteria, seed, like.options, like.model_options)
            for c in candidates
        ]
        table = _table(fam, evaluate_candidates(jobs, map_fn), boot_criteria)
        for criterion, pick in _picks(table, fam.keys, boot_criteria).items():
            counts[(criterion, pick)] = counts.get((criterion, pick), 0) + 1
    out = [
        {"criterion": c, "pick": p, "count": k, "share": k / n_boot, "same": picks.get(c) == p}
        for (c, p), k in sorted(counts.items(), key=lambda item: (item[0][0], -item[1]))
    ]
    return pd.DataFrame(out, columns=["criterion", "pick", "count", "share", "same"])


def prune_mixture(
    fit: Fit,
    data: Any,
    *,
    criterion: str = "mml",
    min_components: int = 1,
    fit_options: Mapping[str, Any] | None = None,
) -> tuple[Fit, pd.DataFrame]:
    """Figueiredo & Jain's (2002) annihilation path from a sparse mixture fit: the fit with the
    shortest message length among it and the fits obtained by switching off, one at a time,
    the smallest component still on (removed; the smaller mixture refitted by EM from the
    components left).

    Penalized EM (``GaussianMixture(K, weight_concentration="mml")``) switches off the
    components with fewer than N/2 expected rows (N: free parameters of one component), but a
    small component fitted to a few rows can hold on at a local optimum; the path compares
    the numbers of components left by their message length (F&J's eq. 15)::

        L = N/2 sum_{k on} log(n w_k / 12) + k_on/2 log(n / 12) + k_on (N + 1)/2 - log L(x)

    Parameters
    ----------
    fit : Fit
        A fitted :class:`~ppgen.GaussianMixture` with a sparse weight penalty (maximum
        likelihood EM, ``weight_concentration`` other than 1).
    data : DataFrame or array
        The data it was fitted to.
    criterion : {"mml", "bic"}
        What chooses along the path: the message length (shortest; F&J) or mclust's BIC
        (largest). Both are in the table. F&J's length charges a small component little
        (``log(n w_k / 12)`` is negative below 12 rows), so it can keep a component of a few
        rows that BIC removes.
    min_components : int
        Where the path stops.
    fit_options : dict, optional
        :func:`ppgen.fit` options of the refits (default ``{"accelerate": True}``).

    Returns
    -------
    (Fit, DataFrame)
        The shortest-message fit; the path: ``components`` on, ``loglik``, ``bic`` (mclust's
        convention, with the parameter count of a mixture of the components on),
        ``message_length`` (nats), ``chosen`` (by ``criterion``).
    """
    if criterion not in ("mml", "bic"):
        raise ValueError(f"criterion must be 'mml' or 'bic', got {criterion!r}")
    model = fit.model
    if not isinstance(model, GaussianMixture) or model.weight_exponent is None:
        raise ValueError(
            "prune_mixture needs a GaussianMixture fitted with a sparse weight penalty "
            "(weight_concentration other than 1, e.g. 'mml')"
        )
    options = {"accelerate": True, **(fit_options or {})}
    K = model.n_components
    per = (model.n_parameters() - (K - 1)) / K  # N: free parameters of one component
    rows, path, current = len(fit.encode(data).x), [], fit
    while True:
        weights = current.params["weights"]
        on = weights > OFF_WEIGHT
        k_on, loglik = int(on.sum()), float(np.sum(current.log_prob(data)))
        length = (
            per / 2 * float(torch.log(rows * weights[on] / 12).sum())
            + k_on / 2 * math.log(rows / 12) + k_on * (per + 1) / 2 - loglik
        )  # fmt: skip
        smaller = GaussianMixture(k_on, model.covariance_type).build(current.schema)
        bic = 2 * loglik - smaller.n_parameters() * math.log(rows)
        path.append((current, {"components": k_on, "loglik": loglik, "bic": bic,
                               "message_length": length}))  # fmt: skip
        if k_on <= max(int(min_components), 1):
            break
        # Annihilated, not floored: a far-away component at weight 1e-10 would claim its
        # rows back. The smaller mixture starts from the components left.
        keep = on.clone()
        keep[int(torch.where(on, weights, math.inf).argmin())] = False
        start = {name: value[keep] for name, value in current.params.items()}
        start["weights"] = start["weights"] / start["weights"].sum()
        config = {**current.model.config(), "n_components": int(keep.sum())}
        current = _fit(type(model)(**config), data, seed=fit.seed, progress=False,
                       init_values=start, **options)  # fmt: skip
    score = (lambda i: path[i][1]["message_length"]) if criterion == "mml" else (
        lambda i: -path[i][1]["bic"]
    )  # fmt: skip
    best = min(range(len(path)), key=score)
    table = pd.DataFrame([row for _, row in path])
    table["chosen"] = np.arange(len(path)) == best
    return path[best][0], table


class _CallableModule(types.ModuleType):
    """``ppgen.select(...)`` calls :func:`select`: the package's attribute ``select`` is this
    module (importing a submodule sets it), so the module itself is the callable."""

    def __call__(self, *args: Any, **kwargs: Any) -> SelectionReport:
        return select(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
