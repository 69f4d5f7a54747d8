"""Every generative family side by side on the user's own table: ``ppgen.compare(data)``.

One seeded train/test split (stratified by a label column when the table has one); each family
is fitted on the training rows within a time budget, in a child process that is stopped when the
budget runs out (a slow family is reported as over budget, never hangs the comparison). Each
fitted model is then judged on the held-out rows:

- held-out log-likelihood in nats per row (and its negative in bits per column,
  ``bits_per_dim``) and how it was obtained: ``exact`` where the model has a tractable
  likelihood (``Fit.log_prob``), otherwise the IWAE bound (``ppgen.evaluate.iwae``, k = 100) or
  the ELBO, labelled as lower bounds; for decoder models (a GAN: ``decode_log_likelihood`` and
  no ``log_prob``) AIS with a Gaussian noise sigma chosen on training rows
  (``ppgen.evaluate.decoder_ais``, labelled with T and sigma); ``n/a`` for models with none;
- sample quality of as many synthetic rows as held-out rows (:mod:`ppgen.evaluate.synthetic`):
  the gradient-boosted classifier two-sample test (AUC, detection score, p-value), MMD^2 and its
  p-value, precision/recall/density/coverage, SDMetrics' shape and trend scores, and the median
  distance of synthetic rows to their closest training row (privacy);
- cost: training seconds, seconds to sample 1,000 rows, parameter count.

Lead with the held-out nats and the GBM detection score: a fully factorized model can score the
best shape while a two-sample test sees through it (TabPC, arXiv 2603.23016).
"""

from __future__ import annotations

import inspect
import math
import multiprocessing
import signal
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ppgen._parallel import resolve_map
from ppgen._utils import progress_bar
from ppgen.data import Schema
from ppgen.evaluate import c2st, dcr, iwae, mmd, prdc, quality
from ppgen.evaluate.bounds import elbo
from ppgen.evaluate.decoder_ais import decoder_ais
from ppgen.evaluate.synthetic import features
from ppgen.infer import fit as fit_model
from ppgen.models import MODELS
from ppgen.models.base import GenerativeModel

if TYPE_CHECKING:
    import matplotlib.figure

__all__ = [
    "BASELINES",
    "COLUMNS",
    "Comparison",
    "compare",
    "default_models",
    "integer_columns",
    "on_support",
    "sample_metrics",
]

#: The columns of :attr:`Comparison.table`, in order.
COLUMNS = (
    "model",
    "status",
    "heldout_nats",
    "heldout_method",
    "bits_per_dim",
    "c2st_auc",
    "detection",
    "c2st_p",
    "mmd2",
    "mmd_p",
    "precision",
    "recall",
    "density",
    "coverage",
    "shape",
    "trend",
    "dcr",
    "train_s",
    "train_cpu_s",
    "sample_s_per_1k",
    "n_params",
    "exact_likelihood",
    "latent_space",
    "verdict",
)
#: Candidate sizes when a family's constructor requires ``n_components`` (chosen by BIC).
N_COMPONENTS = (1, 2, 3, 4, 5)
#: Importance samples of the IWAE bound for families without an exact likelihood.
IWAE_K = 100
#: Settings of ``decoder_ais`` for decoder models (GAN): modest, to fit the time budget (the
#: GAN's likelihood sums over its conditions and modes: T=200, 8 chains and the full sigma grid
#: took 454 s CPU on penguins' 83 held-out rows); sigma is chosen on up to ``validation_rows``
#: training rows (decoder_ais's default grid). The label carries T and sigma.
DECODER_AIS = {
    "n_steps": 100,
    "n_chains": 4,
    "n_leapfrog": 5,
    "n_tune": 16,
    "validation_rows": 25,
    "validation_steps": 30,
}
#: Hidden units of a default RBM (its constructor requires ``n_hidden`` and no criterion picks
#: it without estimating the partition function): 16, the most whose partition function ppgen
#: still sums exactly (``RBM.exact_log_partition``, 2^16 states).
N_HIDDEN = 16
#: A family's budget counts its CPU seconds; the wall clock stops it after this many budgets
#: (on a busy machine a child gets a fraction of a core; this still never hangs compare).
WALL_FACTOR = 4.0
# The signal the kernel sends at the CPU limit (POSIX); the limit only where it exists.
_SIGXCPU = getattr(signal, "SIGXCPU", None)
_HAS_CPU_LIMIT = _SIGXCPU is not None
# Sampling 1,000 rows faster than this counts as fast sampling in the verdict.
_FAST_SAMPLING_S = 1.0


# -- which families, built how ------------------------------------------------------------------


def default_models() -> list[str]:
    """Every registered family that models rows of a table (not sequences), by class name,
    then the two baselines (:data:`BASELINES`)."""
    return [name for name in MODELS if not MODELS[name].sequential] + list(BASELINES)


class _Independent:
    """Baseline: every column drawn independently from its training values (bootstrap).

    Perfect marginals, no dependence at all: a high shape score that a two-sample test sees
    through. No likelihood (its empirical marginals put no mass on unseen values).
    """

    label = "independent columns"
    exact_likelihood = latent_space = False

    def __init__(self, train: pd.DataFrame, seed: int) -> None:
        self.train = train

    def heldout(self, test: pd.DataFrame) -> tuple[float, str]:
        return math.nan, "n/a"

    def n_parameters(self) -> int:
        return int(self.train.size)  # it stores the training values

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        columns = {
            c: self.train[c].iloc[rng.integers(len(self.train), size=n)].to_numpy()
            for c in self.train.columns
        }
        return pd.DataFrame(columns).astype(self.train.dtypes.to_dict())


class _Parzen:
    """Baseline: a product-kernel density (Parzen window) on the training rows.

    ``p(x) = (1/n) sum_i prod_j K_j(x_j; x_ij)``: a Gaussian kernel of bandwidth ``h`` on each
    standardized numeric column (``h`` by Scott's rule ``n^(-1/(d+4))``), and on each label
    column with ``L`` levels the Aitchison-Aitken kernel (``1 - lam`` on the same label,
    ``lam / (L - 1)`` on each other, ``lam = h (L - 1) / L``). A held-out row with missing
    entries gets its exact marginal (the missing columns' factors drop out); log-densities are
    on the data's own scale. Shown to say why a KDE is not used to rank models: its figure
    depends on ``h`` far more than on the data (Wu, Burda, Salakhutdinov & Grosse 2017, section
    2). Trained on the complete training rows.

    References
    ----------
    Aitchison, J. & Aitken, C. G. G. (1976). Multivariate binary discrimination by the kernel
    method. Biometrika 63, 413-420.
    """

    label = "Parzen window (KDE)"
    exact_likelihood = True
    latent_space = False

    def __init__(self, train: pd.DataFrame, seed: int) -> None:
        self.schema = Schema.infer(train)
        columns = self.schema.columns
        self.numeric = [c.name for c in columns if c.kind in ("continuous", "count")]
        self.labels = [c.name for c in columns if c.kind in ("binary", "categorical")]
        others = [c.name for c in columns if c.name not in self.numeric + self.labels]
        if others:
            raise ValueError(f"the Parzen baseline takes numbers and labels; not {others}")
        self.levels = {c.name: list(c.categories) for c in columns if c.name in self.labels}
        self.dtypes = train.dtypes.to_dict()
        complete = train.dropna()
        if len(complete) < 2:
            raise ValueError("the Parzen baseline needs 2 or more complete training rows")
        values = complete[self.numeric].to_numpy(dtype=float)
        self.loc, self.scale = values.mean(axis=0), values.std(axis=0)
        # Constant columns keep their units (their std may round to 1e-17 rather than 0).
        self.scale[np.ptp(values, axis=0) == 0] = 1.0
        self.z = (values - self.loc) / self.scale
        self.codes = self._codes(complete)
        n, d = len(complete), len(columns)
        self.bandwidth = n ** (-1.0 / (d + 4))
        self.lam = [self.bandwidth * (len(v) - 1) / len(v) for v in self.levels.values()]

    def _codes(self, table: pd.DataFrame) -> np.ndarray:
        """Label codes, -1 where missing."""
        return np.column_stack(
            [pd.Categorical(table[c], categories=self.levels[c]).codes for c in self.labels]
            or [np.zeros(len(table), dtype=np.int64)]
        )[:, : len(self.labels)]

    def heldout(self, test: pd.DataFrame) -> tuple[float, str]:
        h = self.bandwidth
        z = (test[self.numeric].to_numpy(dtype=float) - self.loc) / self.scale
        seen = ~np.isnan(z)
        z = np.where(seen, z, 0.0)
        # sum over observed numeric columns of (z_ij - c_kj)^2, without a 3-D array.
        squares = (
            (seen * z**2).sum(axis=1)[:, None] - 2 * (seen * z) @ self.z.T + seen @ (self.z**2).T
        )
        log_kernel = -squares / (2 * h**2)
        normalizer = seen @ (np.log(h * math.sqrt(2 * math.pi)) + np.log(self.scale))
        codes = self._codes(test)
        for j, lam in enumerate(self.lam):
            if lam == 0:  # a single level: the kernel is 1
                continue
            same = codes[:, j, None] == self.codes[None, :, j]
            other = math.log(lam / (len(self.levels[self.labels[j]]) - 1))
            term = np.where(same, math.log(1 - lam), other)
            log_kernel += np.where(codes[:, j, None] >= 0, term, 0.0)
        log_density = (
            torch.logsumexp(torch.from_numpy(log_kernel), dim=1).numpy()
            - math.log(len(self.z))
            - normalizer
        )
        return float(log_density.mean()), f"exact (KDE, h={h:.2f})"

    def n_parameters(self) -> int:
        return int(self.z.size + self.codes.size)

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        rows = rng.integers(len(self.z), size=n)
        z = self.z[rows] + self.bandwidth * rng.normal(size=(n, len(self.numeric)))
        table = pd.DataFrame(z * self.scale + self.loc, columns=self.numeric)
        for j, name in enumerate(self.labels):
            levels = len(self.levels[name])
            codes = self.codes[rows, j]
            # With probability lam, any other level (uniformly): shift by 1..L-1 modulo L.
            move = rng.random(n) < self.lam[j]
            codes = np.where(
                move, (codes + rng.integers(1, max(levels, 2), size=n)) % levels, codes
            )
            table[name] = pd.Categorical.from_codes(codes, categories=self.levels[name])
        counts = [c for c in self.numeric if pd.api.types.is_integer_dtype(self.dtypes[c])]
        table[counts] = table[counts].round().clip(lower=0)
        return table[list(self.dtypes)].astype(self.dtypes)


#: Baselines that are not generative models of the registry, by name.
BASELINES: dict[str, type] = {"independent": _Independent, "parzen": _Parzen}


@dataclass(frozen=True)
class _Spec:
    """A family to fit: its label, class name and constructor arguments (JSON, picklable)."""

    label: str
    name: str
    config: dict[str, Any] | None  # None: build with defaults, choosing n_components by BIC


def _specs(models: Any) -> list[_Spec]:
    if models is None:
        models = default_models()
    if isinstance(models, (str, GenerativeModel)):
        models = [models]
    items = models.items() if isinstance(models, Mapping) else [(None, m) for m in models]
    specs = []
    for label, model in items:
        if isinstance(model, GenerativeModel):
            name = type(model).__name__
            if MODELS.get(name) is not type(model):
                raise ValueError(f"model {name} is not registered (ppgen.models.register_model)")
            specs.append(_Spec(label or model.label(), name, model.config()))
        elif isinstance(model, str) and model in BASELINES:
            specs.append(_Spec(label or BASELINES[model].label, model, None))
        elif isinstance(model, str):
            try:
                MODELS.lookup(model)
            except ValueError as exc:
                raise ValueError(f"{exc}; baselines: {', '.join(BASELINES)}") from None
            name = MODELS.canonical(model)
            specs.append(_Spec(label or model, name, None))
        else:
            raise ValueError(
                f"models must hold model names or GenerativeModel instances; got {model!r}"
            )
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"model labels must be unique; got {labels}")
    return specs


def _required(cls: type) -> list[str]:
    parameters = inspect.signature(cls.__init__).parameters.values()
    return [
        p.name
        for p in parameters
        if p.name != "self"
        and p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def _fit_family(spec: _Spec, train: pd.DataFrame, seed: int) -> Any:
    """Fit one family; with required ``n_components`` and no config, the best size by BIC."""
    cls = MODELS[spec.name]
    if spec.config is not None:
        return fit_model(cls(**spec.config), train, seed=seed, progress=False)
    required = _required(cls)
    if not required:
        return fit_model(cls(), train, seed=seed, progress=False)
    if spec.name == "RBM" and required == ["n_hidden"]:
        return fit_model(_default_rbm(cls, train), train, seed=seed, progress=False)
    if required != ["n_components"]:
        raise ValueError(f"needs {', '.join(required)}: pass a {spec.name}(...) instance")
    best = None
    for k in N_COMPONENTS:
        try:
            candidate = fit_model(cls(n_components=k), train, seed=seed, progress=False)
        except ValueError:
            if best is None:  # the family does not take this table at all: say why
                raise
            break  # k beyond what the table allows (e.g. PPCA's q < d)
        if best is None or candidate.bic(train) < best.bic(train):
            best = candidate
    return best


def _default_rbm(cls: type, train: pd.DataFrame) -> GenerativeModel:
    """RBM with :data:`N_HIDDEN` hidden units; Bernoulli visibles when every column holds 0/1
    values only, Gaussian ones otherwise (the RBM refuses other kinds, e.g. labels: the row
    then says so)."""
    values = train.select_dtypes(include=["number", "bool"])
    binary = values.shape[1] == train.shape[1] and bool(values.isin([0, 1]).all().all())
    return cls(n_hidden=N_HIDDEN, visible="bernoulli" if binary else "gaussian")


# -- one family, start to finish (runs in the child process) --------------------------------------


def _heldout(
    fitted: Any, test: pd.DataFrame, seed: int, train: pd.DataFrame | None = None
) -> tuple[float, str]:
    """Held-out log-likelihood per row and how it was obtained."""
    if type(fitted.model).implements("log_prob"):
        return float(np.mean(fitted.log_prob(test))), "exact"
    if type(fitted.model).implements("decode_log_likelihood") and train is not None:
        # An implicit model: Wu et al.'s AIS with a noise model, sigma chosen on training rows
        # (the held-out rows stay unseen; the split has no third part).
        res = decoder_ais(
            fitted, test, validation=train, validation_name="validation: training rows",
            seed=seed, progress=False, **DECODER_AIS,
        )  # fmt: skip
        return float(res.mean), res.method
    try:
        return float(iwae(fitted, test, k=IWAE_K, seed=seed).mean), f"IWAE k={IWAE_K} (bound)"
    except (NotImplementedError, ValueError, TypeError):
        pass
    try:
        return float(elbo(fitted, test, seed=seed).mean), "ELBO (bound)"
    except (NotImplementedError, ValueError, TypeError):
        return math.nan, "n/a"


def _run_baseline(
    spec: _Spec, train: pd.DataFrame, test: pd.DataFrame, seed: int
) -> dict[str, Any]:
    start, cpu = time.perf_counter(), time.process_time()
    baseline = BASELINES[spec.name](train, seed)
    train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    nats, method = baseline.heldout(test)
    start = time.perf_counter()
    synthetic = baseline.sample(1000, seed + 1)
    return {
        "model": spec.label,
        "heldout_nats": nats,
        "heldout_method": method,
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,
        "sample_s_per_1k": time.perf_counter() - start,
        "n_params": baseline.n_parameters(),
        "exact_likelihood": baseline.exact_likelihood,
        "latent_space": baseline.latent_space,
        "synthetic": synthetic,
    }


def _run(spec: _Spec, train: pd.DataFrame, test: pd.DataFrame, seed: int) -> dict[str, Any]:
    if spec.name in BASELINES:
        return _run_baseline(spec, train, test, seed)
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        # Convergence and support warnings belong to single fits; the table reports outcomes.
        warnings.simplefilter("ignore")
        start, cpu = time.perf_counter(), time.process_time()
        fitted = _fit_family(spec, train, seed)
        # Wall and CPU seconds: on a loaded machine the wall clock measures the neighbours.
        train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - cpu
        nats, method = _heldout(fitted, test, seed, train)
        start = time.perf_counter()
        synthetic = fitted.sample(1000, seed=seed + 1)
        sample_s = time.perf_counter() - start
    model = fitted.model
    return {
        "model": spec.label,  # the user's own name, whether the family succeeds or not
        "heldout_nats": nats,
        "heldout_method": method,
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,
        "sample_s_per_1k": sample_s,
        "n_params": int(model.n_parameters()),
        "exact_likelihood": type(model).implements("log_prob"),
        # An encoder (amortized), a posterior over latents, or cluster responsibilities.
        "latent_space": bool(
            type(model).amortized
            or type(model).implements("posterior")
            or type(model).implements("predict_proba")
        ),
        "synthetic": synthetic,
    }


def _limit_cpu(seconds: float) -> bool:
    """Have the kernel stop this process (SIGXCPU) after ``seconds`` of its own CPU time;
    ``False`` where the platform has no such limit (then only the wall clock stops it)."""
    try:
        import resource
    except ImportError:  # Windows
        return False
    used = resource.getrusage(resource.RUSAGE_SELF)
    limit = math.ceil(used.ru_utime + used.ru_stime + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (limit, hard))
    except (ValueError, OSError):
        return False
    return True


def _child(
    spec: _Spec, train: Any, test: Any, seed: int, conn: Any, cpu_s: float | None = None
) -> None:
    if cpu_s is not None:
        _limit_cpu(cpu_s)
    try:
        conn.send(("ok", _run(spec, train, test, seed)))
    except Exception as exc:  # reported in the table, as the family's status
        conn.send(("error", f"{type(exc).__name__}: {exc}".splitlines()[0][:200]))
    finally:
        conn.close()


def _family_job(job: tuple) -> tuple[str, Any]:
    """One family's run for a parallel map: ``_run_with_budget(*job)``."""
    return _run_with_budget(*job)


def _warm_optimizer() -> None:
    """Take one Adam step here, before forking: torch's first optimizer step imports
    ``torch._dynamo`` (~1.1 s CPU), which each forked child would otherwise import again."""
    parameter = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([parameter])
    parameter.sum().backward()
    optimizer.step()


def _run_with_budget(
    spec: _Spec, train: pd.DataFrame, test: pd.DataFrame, seed: int, budget_s: float | None
) -> tuple[str, Any]:
    """``("ok", result)``, ``("error", message)`` or ``("over budget", message)``.

    The budget counts the child's own CPU seconds (the kernel stops it: ``RLIMIT_CPU``), so
    a family's fate does not depend on what else the machine runs; the wall clock stops it
    after :data:`WALL_FACTOR` times the budget (a process that waits or sleeps, or a platform
    with no CPU limit: then the wall clock alone, at the budget itself).
    """
    if budget_s is None:
        try:
            return "ok", _run(spec, train, test, seed)
        except Exception as exc:
            return "error", f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    # Fork where the platform has it: the child starts with torch and the data already loaded.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    receive, send = context.Pipe(duplex=False)
    cpu_limited = _HAS_CPU_LIMIT
    wall_s = WALL_FACTOR * budget_s if cpu_limited else budget_s
    child = context.Process(
        target=_child,
        args=(spec, train, test, seed, send, budget_s if cpu_limited else None),
        daemon=True,
    )
    child.start()
    send.close()
    try:
        # Receive before joining: a large message would block the child's send forever.
        if receive.poll(wall_s):
            status, payload = receive.recv()
        else:
            status, payload = "over budget", f"stopped after {wall_s:g} s (wall clock)"
    except EOFError:  # the child died without a word (CPU limit, killed, out of memory)
        status, payload = "error", f"the process fitting {spec.label} ended abruptly"
    finally:
        receive.close()
        if child.is_alive():
            child.terminate()
        child.join(5)
    if status == "error" and child.exitcode == -_SIGXCPU:
        status, payload = "over budget", f"stopped after {budget_s:g} s of CPU time"
    return status, payload


# -- the support rule --------------------------------------------------------------------------


def integer_columns(train: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Float columns whose observed training values are all whole numbers, with their range.

    Such columns are counts or scores stored as floats (scikit-learn's ``digits``: pixel
    counts 0-16 as float64; ``wine``'s magnesium and proline). The data layer reads them as
    continuous (a float column is continuous, :mod:`ppgen.data`), so models sample values off
    the observed lattice; :func:`on_support` maps samples back onto it. Integer-dtype columns
    are left to the data layer (counts come back as integers already).
    """
    found = {}
    for name in train.columns:
        column = train[name]
        if not pd.api.types.is_float_dtype(column.dtype):
            continue
        observed = column.dropna().to_numpy(dtype=float)
        if len(observed) and np.array_equal(observed, np.round(observed)):
            found[name] = (float(observed.min()), float(observed.max()))
    return found


def on_support(synthetic: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Synthetic rows mapped onto the training table's support: compare's support rule.

    Every float column whose training values are all whole numbers (:func:`integer_columns`)
    is rounded to the nearest integer and clipped to its training range ``[min, max]``; other
    columns are returned unchanged. A continuous model of such a column then samples its
    discretized (and censored) version, which is what the data can hold: without the rule a
    two-sample classifier tells real from synthetic rows by the exact values alone (on
    ``digits`` 49 % of pixels are exactly 0 and no Gaussian draw is; a tree splits there).
    Applied to every row of :func:`compare`, and to outside samples (CTGAN, TVAE) judged next
    to them, so that all rows are scored alike. Missing entries stay missing.
    """
    out = synthetic.copy()
    for name, (low, high) in integer_columns(train).items():
        if name in out.columns and pd.api.types.is_numeric_dtype(out[name].dtype):
            out[name] = out[name].round().clip(low, high)
    return out


# -- metrics and verdicts -------------------------------------------------------------------------


def sample_metrics(
    train: pd.DataFrame,
    test: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    seed: int,
) -> dict[str, float]:
    """The sample-quality columns of the table for one synthetic table (any source, e.g. a
    model outside ppgen): held-out rows against as many synthetic rows, closest-record
    distances to the training rows.

    The row-wise metrics (two-sample tests, PRDC, DCR) use the complete real rows only: models
    sample complete rows, and a missing entry alone would tell real from synthetic. Shape and
    trend drop missing entries per column and pair, as SDMetrics does.
    """
    complete, complete_train = test.dropna(), train.dropna()
    if len(complete) < 10:
        raise ValueError(f"{len(complete)} held-out rows have no missing value; 10 are needed")
    synthetic = synthetic.reset_index(drop=True)
    rows = synthetic.iloc[: len(complete)]
    test2 = c2st(complete, rows, seed=seed, schema=schema)
    kernel = mmd(complete, rows, seed=seed, schema=schema)
    knn = prdc(complete, rows, seed=seed, k=min(5, len(complete) - 1), schema=schema)
    scores = quality(test, synthetic.iloc[: len(test)], schema=schema)
    closest = dcr(complete_train, rows, holdout=complete, seed=seed, schema=schema)
    return {
        "c2st_auc": test2.auc,
        "detection": test2.detection,
        "c2st_p": test2.p_value,
        "mmd2": kernel.mmd2,
        "mmd_p": kernel.p_value,
        "precision": knn.precision,
        "recall": knn.recall,
        "density": knn.density,
        "coverage": knn.coverage,
        "shape": scores.shape,
        "trend": scores.trend,
        "dcr": closest.median,
    }


def _verdict(row: Mapping[str, Any]) -> str:
    method = row["heldout_method"]
    if method.startswith("exact"):
        likelihood = "exact likelihood"
    elif method == "n/a":
        likelihood = "no likelihood"
    else:
        likelihood = f"likelihood bounded ({method.removesuffix(' (bound)')})"
    speed = "fast" if row["sample_s_per_1k"] < _FAST_SAMPLING_S else "slow"
    latent = "latent space" if row["latent_space"] else "no latent space"
    quality_word = (
        "indistinguishable from held-out rows"
        if row["c2st_p"] >= 0.05
        else f"detected by GBM (detection {row['detection']:.2f})"
    )
    return f"{likelihood}; {speed} sampling; {latent}; {quality_word}"


# -- the comparison ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per model, columns :data:`COLUMNS`, best held-out likelihood first (families
        over budget or failed last, with their status).
    samples : dict of str to pandas.DataFrame
        Each model's synthetic rows (as many as held-out rows), by model label.
    train, test : pandas.DataFrame
        The split.
    seed : int
    """

    table: pd.DataFrame
    samples: dict[str, pd.DataFrame] = field(repr=False)
    train: pd.DataFrame = field(repr=False)
    test: pd.DataFrame = field(repr=False)
    seed: int = 0

    def __str__(self) -> str:
        shown = ["model", "status", "heldout_nats", "heldout_method", "detection", "c2st_p"]
        shown += ["mmd2", "precision", "recall", "shape", "trend", "dcr", "train_s"]
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            text = self.table[shown].to_string(index=False, float_format=lambda v: f"{v:.3g}")
        table = self.table
        verdicts = "\n".join(f"  {m}: {v}" for m, v in zip(table.model, table.verdict, strict=True))
        return f"{text}\n\nverdicts:\n{verdicts}"

    def figure(self, columns: Sequence[str] | None = None) -> matplotlib.figure.Figure:
        """Marginals of up to three columns and a 2-D projection, real (held-out) vs synthetic.

        One row of panels per model; the projection is onto the first two principal axes of
        the held-out rows' features (:func:`ppgen.evaluate.synthetic.features`).
        """
        # A bare Figure, not pyplot: no global state, no GUI backend needed.
        from matplotlib.figure import Figure

        columns = list(columns if columns is not None else self.test.columns[:3])
        models = list(self.samples)
        n_cols = len(columns) + 1
        fig = Figure(figsize=(3.2 * n_cols, 2.6 * max(1, len(models))))
        axes = fig.subplots(max(1, len(models)), n_cols, squeeze=False)
        schema = Schema.infer(self.test)
        x_real, _ = features(self.test, self.test, schema)
        centre = x_real.mean(axis=0)
        axes_2d = np.linalg.svd(x_real - centre, full_matrices=False)[2][:2].T
        real_2d = (x_real - centre) @ axes_2d
        for i, label in enumerate(models):
            synthetic = self.samples[label]
            for j, column in enumerate(columns):
                ax = axes[i, j]
                _marginal(ax, self.test[column], synthetic[column])
                ax.set_title(f"{label}: {column}" if j == 0 else column, fontsize=8)
            _, x_synth = features(self.test, synthetic, schema)
            synth_2d = (x_synth - centre) @ axes_2d
            ax = axes[i, -1]
            ax.scatter(*real_2d.T, s=4, alpha=0.5, label="held-out")
            ax.scatter(*synth_2d.T, s=4, alpha=0.5, label="synthetic")
            ax.set_title("principal axes 1-2", fontsize=8)
            if i == 0:
                ax.legend(fontsize=7, markerscale=3)
        fig.tight_layout()
        return fig


def _marginal(ax: Any, real: pd.Series, synthetic: pd.Series) -> None:
    numeric = pd.api.types.is_numeric_dtype(real) and real.nunique() > 10
    if numeric:
        values = pd.concat([real, synthetic]).astype(float).dropna()
        bins = np.histogram_bin_edges(values, bins=20)
        ax.hist(real.dropna(), bins=bins, density=True, alpha=0.5, label="held-out")
        ax.hist(synthetic.dropna(), bins=bins, density=True, alpha=0.5, label="synthetic")
    else:
        shares = pd.DataFrame(
            {
                "held-out": real.astype(object).value_counts(normalize=True),
                "synthetic": synthetic.astype(object).value_counts(normalize=True),
            }
        ).fillna(0.0)
        shares.plot.bar(ax=ax, legend=False, alpha=0.7, rot=30, fontsize=7)


def _split(
    data: pd.DataFrame, test_size: float, seed: int, schema: Schema
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split, stratified by the first label column when every level has 2+ rows."""
    from sklearn.model_selection import train_test_split

    labels = [c.name for c in schema.columns if c.kind in ("binary", "categorical")]
    stratify = None
    if labels:
        strata = data[labels[0]].astype(object).fillna("<missing>").astype(str)
        if strata.value_counts().min() >= 2:
            stratify = strata
    train, test = train_test_split(data, test_size=test_size, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def compare(
    data: Any,
    models: Any = None,
    *,
    test_size: float = 0.25,
    seed: int = 0,
    budget_s: float | None = 300.0,
    progress: bool | None = None,
    n_jobs: int | None = None,
    backend: str | None = None,
    lattice: bool = True,
) -> Comparison:
    """Fit several generative families to one table and measure them side by side.

    Parameters
    ----------
    data : pandas.DataFrame or numpy.ndarray
        The table (any column kinds ppgen reads; missing values allowed where the models
        allow them).
    models : sequence or mapping, optional
        Families by registered name or alias (``"gmm"``, ``"VAE"``; a family whose constructor
        requires ``n_components`` gets the size with the best BIC among :data:`N_COMPONENTS`),
        or :class:`~ppgen.GenerativeModel` instances (fitted as given), or a mapping from
        labels to either. Default :func:`default_models`: every registered family that models
        table rows, so families registered later join automatically.
    test_size : float
        Share of rows held out, in (0, 1).
    seed : int
        Seeds the split, the fits, the samples and the metrics.
    budget_s : float or None
        Seconds each family may take to train, score and sample, in a child process stopped
        at the limit (status ``"over budget"``): seconds of the child's own CPU time where the
        platform limits it (POSIX), so that a busy machine does not push families over, and
        at most :data:`WALL_FACTOR` times as many wall-clock seconds (elsewhere: wall-clock
        seconds). ``None`` runs in this process with no limit.
    progress : bool or None
        Show a progress bar over families; by default only when stderr is a terminal.
    n_jobs : int, optional
        Fit the families on this many workers at once (``-1``: one per core) with joblib
        (:func:`ppgen._parallel.parallel_map`); each family's run depends on ``seed`` only, so
        the table equals the serial one. Default: one family after the other.
    backend : str, optional
        The joblib backend of ``n_jobs`` (default local processes; ``"dask"`` or ``"ray"``
        where registered).
    lattice : bool
        Apply the support rule (:func:`on_support`) to every model's samples before they are
        scored: float columns whose training values are all whole numbers are rounded and
        clipped to their training range. ``False`` scores the raw samples.

    Returns
    -------
    Comparison
        ``.table`` (one row per model), ``.samples``, ``.figure()``, and a printable summary
        with a verdict per family.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1); got {test_size!r}")
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"budget_s must be positive or None; got {budget_s!r}")
    if not isinstance(data, pd.DataFrame):
        array = np.asarray(data)
        if array.ndim != 2:
            raise ValueError(f"data must be a 2-D table; got shape {array.shape}")
        data = pd.DataFrame(array, columns=[f"x{j}" for j in range(array.shape[1])])
    specs = _specs(models)
    schema = Schema.infer(data)
    train, test = _split(data, test_size, seed, schema)
    if len(test) < 10:
        raise ValueError(f"the held-out part has {len(test)} rows; at least 10 are needed")
    rows, samples = [], {}
    runs = None
    if n_jobs not in (None, 1) or backend is not None:  # the families fanned out, in order
        jobs = [(spec, train, test, seed, budget_s) for spec in specs]
        runs = resolve_map(map, n_jobs, backend)(_family_job, jobs)
    if runs is None and budget_s is not None and any(s.name not in BASELINES for s in specs):
        _warm_optimizer()  # once here rather than once per forked child
    bar = progress_bar(len(specs), "compare", progress)
    try:
        for i, spec in enumerate(specs):
            bar.set_postfix_str(spec.label)
            if runs is not None:
                status, payload = runs[i]
            else:
                status, payload = _run_with_budget(spec, train, test, seed, budget_s)
            row: dict[str, Any] = dict.fromkeys(COLUMNS, math.nan)
            row.update(model=spec.label, status=status)
            if status == "ok":
                synthetic = payload.pop("synthetic")
                if lattice:
                    synthetic = on_support(synthetic, train)
                row.update(payload)
                # Negative log-likelihood per column in bits (for pixels: bits per dimension).
                row["bits_per_dim"] = -row["heldout_nats"] / (data.shape[1] * math.log(2.0))
                try:
                    row.update(sample_metrics(train, test, synthetic, schema, seed))
                except ValueError as exc:  # samples the metrics cannot read (e.g. a new label)
                    status, payload = "error", f"scoring its samples: {exc}"
                    row["status"] = status
                else:
                    samples[row["model"]] = synthetic.iloc[: len(test)].reset_index(drop=True)
            else:
                row["heldout_method"] = "n/a"
            row["verdict"] = _verdict(row) if status == "ok" else f"{status}: {payload}"
            rows.append(row)
            bar.update()
    finally:
        bar.close()
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    ok = table["status"] == "ok"
    table = pd.concat(
        [table[ok].sort_values("heldout_nats", ascending=False, na_position="last"), table[~ok]]
    ).reset_index(drop=True)
    return Comparison(table=table, samples=samples, train=train, test=test, seed=seed)
