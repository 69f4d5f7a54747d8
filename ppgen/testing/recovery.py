"""Recovery studies of structure discovery (issue 14): simulators with a stated separation,
replication loops through :func:`ppgen.select`, and binomial intervals for the recovery rate.

Shared by ``tests/test_recovery.py`` (slow tests, fewer replications) and
``benchmarks/recovery.py`` (50 replications per cell, the table of the issue).

Separation. A mixture's (or an HMM's) closest pair of component means is at Mahalanobis
distance exactly ``separation`` (default 3), measured under *each* of the two components'
covariances (the smaller of the two distances is ``separation``): the means are drawn at
random, then the whole configuration is scaled about its centroid until its closest pair
is at that distance. The other pairs are farther apart. So every simulated data set is as
hard as the stated separation allows, not easier by chance.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ppgen._utils import ConvergenceWarning
from ppgen.infer.fit import fit as _fit
from ppgen.models.bpca import BayesianPCA
from ppgen.select import select

__all__ = [
    "GMM_STRUCTURES",
    "Cell",
    "clopper_pearson",
    "gmm_recovery",
    "hmm_recovery",
    "simulate_gmm",
    "simulate_hmm",
    "wilson",
]

#: The covariance structures the mixture recovery grid searches (the truth is VVV).
GMM_STRUCTURES = ("EEE", "VVV")


def wilson(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``hits / n``."""
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = hits / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    spread = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return max(0.0, centre - spread), min(1.0, centre + spread)


def clopper_pearson(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion ``hits / n``."""
    alpha = 1 - level
    low = 0.0 if hits == 0 else float(stats.beta.ppf(alpha / 2, hits, n - hits + 1))
    high = 1.0 if hits == n else float(stats.beta.ppf(1 - alpha / 2, hits + 1, n - hits))
    return low, high


def _random_covariance(d: int, rng: np.random.Generator) -> np.ndarray:
    """A random orientation with variances uniform in [0.5, 2] along its axes."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * rng.uniform(0.5, 2.0, d)) @ q.T


def _min_mahalanobis(means: np.ndarray, covs: np.ndarray) -> float:
    """Smallest Mahalanobis distance between two means, under either one's covariance."""
    inv = np.linalg.inv(covs)
    best = math.inf
    for i in range(len(means)):
        for j in range(i + 1, len(means)):
            diff = means[i] - means[j]
            for k in (i, j):
                best = min(best, math.sqrt(float(diff @ inv[k] @ diff)))
    return best


def _scaled_means(means: np.ndarray, covs: np.ndarray, separation: float) -> np.ndarray:
    """``means`` scaled about their centroid so the closest pair is at ``separation``."""
    centre = means.mean(0)
    return centre + (means - centre) * separation / _min_mahalanobis(means, covs)


def simulate_gmm(
    K: int, n: int, rng: np.random.Generator, d: int = 2, separation: float = 3.0
) -> tuple[pd.DataFrame, np.ndarray]:
    """n rows of a K-component Gaussian mixture in d dimensions (VVV: random orientations,
    axis variances in [0.5, 2]), weights proportional to uniform(1, 2) draws (the smallest at
    least half the largest), closest means at Mahalanobis distance ``separation``. Returns the
    table (columns x0, x1, ...) and the true labels."""
    covs = np.stack([_random_covariance(d, rng) for _ in range(K)])
    means = _scaled_means(rng.standard_normal((K, d)) * 5, covs, separation)
    weights = rng.uniform(1, 2, K)
    labels = rng.choice(K, size=n, p=weights / weights.sum())
    chol = np.linalg.cholesky(covs)
    x = means[labels] + np.einsum("nij,nj->ni", chol[labels], rng.standard_normal((n, d)))
    return pd.DataFrame(x, columns=[f"x{j}" for j in range(d)]), labels


def simulate_hmm(
    S: int, T: int, rng: np.random.Generator, stay: float = 0.9, separation: float = 3.0
) -> tuple[pd.DataFrame, np.ndarray]:
    """One sequence of T steps of an S-state HMM with unit-variance Gaussian emissions whose
    means are ``separation`` standard deviations apart (0, 3, 6, ...: adjacent states at
    Mahalanobis distance ``separation``), self-transition probability ``stay`` and the rest
    spread evenly over the other states, first state uniform. Returns the table (column ``y``)
    and the state path."""
    trans = np.full((S, S), (1 - stay) / max(S - 1, 1)) if S > 1 else np.ones((1, 1))
    if S > 1:
        np.fill_diagonal(trans, stay)
    path = np.empty(T, dtype=int)
    path[0] = rng.integers(S)
    for t in range(1, T):
        path[t] = rng.choice(S, p=trans[path[t - 1]])
    y = separation * path + rng.standard_normal(T)
    return pd.DataFrame({"y": y}), path


@dataclass(frozen=True)
class Cell:
    """One cell of a recovery study: the truth, the replications and how often each criterion
    recovered it."""

    study: str
    truth: int
    reps: int
    hits: dict[str, int]
    picks: dict[str, list[int]]

    def rate(self, criterion: str) -> float:
        return self.hits[criterion] / self.reps

    def rows(self) -> list[dict]:
        """One row per criterion: rate and both 95% intervals, the picks' histogram."""
        out = []
        for criterion, hits in self.hits.items():
            w, cp = wilson(hits, self.reps), clopper_pearson(hits, self.reps)
            counts = pd.Series(self.picks[criterion]).value_counts().sort_index()
            out.append(
                {
                    "study": self.study, "truth": self.truth, "criterion": criterion,
                    "reps": self.reps, "hits": hits, "rate": hits / self.reps,
                    "wilson_low": w[0], "wilson_high": w[1],
                    "cp_low": cp[0], "cp_high": cp[1],
                    "picks": " ".join(f"{k}:{v}" for k, v in counts.items()),
                }
            )  # fmt: skip
        return out


def gmm_recovery(
    K: int,
    reps: int,
    seed: int,
    n: int = 1000,
    extra: int = 2,
    structures: Sequence[str] = GMM_STRUCTURES,
    separation: float = 3.0,
) -> Cell:
    """``reps`` data sets of :func:`simulate_gmm`; each searched by ``select("gmm", ...)`` over
    ``structures`` x K = 1..K+extra with BIC and ICL; a hit when the pick's K is the truth
    (whatever its structure)."""
    rng = np.random.default_rng(seed)
    picks: dict[str, list[int]] = {"bic": [], "icl": []}
    for r in range(reps):
        x, _ = simulate_gmm(K, n, rng, separation=separation)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = select(
                "gmm", x, grid={"structure": list(structures), "K": range(1, K + extra + 1)},
                criteria=("bic", "icl"), seed=seed + r,
            )  # fmt: skip
        for criterion in picks:
            picks[criterion].append(int(report.picks[criterion][1]))
    hits = {c: sum(p == K for p in v) for c, v in picks.items()}
    return Cell(f"gmm K={K}", K, reps, hits, picks)


def hmm_recovery(
    S: int, reps: int, seed: int, T: int = 1000, extra: int = 2, separation: float = 3.0
) -> Cell:
    """``reps`` sequences of :func:`simulate_hmm`; each searched by ``select("hmm", ...)`` over
    1..S+extra states with BIC (n = T steps); a hit when it picks S."""
    rng = np.random.default_rng(seed)
    picks: list[int] = []
    for r in range(reps):
        y, _ = simulate_hmm(S, T, rng, separation=separation)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = select(
                "hmm", y, grid={"states": range(1, S + extra + 1)}, criteria=("bic",),
                seed=seed + r,
            )  # fmt: skip
        picks.append(int(report.picks["bic"][0]))
    return Cell(f"hmm S={S}", S, reps, {"bic": sum(p == S for p in picks)}, {"bic": picks})


def bpca_recovery(
    q: int, reps: int, seed: int, n: int = 500, d: int = 10, separation: float = 3.0
) -> Cell:
    """``reps`` data sets of q-dimensional PPCA data (d columns, loadings N(0, 2^2), unit
    noise), each fitted by :class:`ppgen.BayesianPCA` with d - 1 candidate components; a hit
    when its effective dimension is within 1 of q (the issue's claim; the exact count is
    recorded in ``picks``). ``separation`` is not used (the signal is the loadings')."""
    rng = np.random.default_rng(seed)
    dims: list[int] = []
    for _ in range(reps):
        W = rng.normal(size=(d, q)) * 2
        x = rng.normal(size=(n, q)) @ W.T + rng.normal(size=(n, d)) + 5.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit = _fit(BayesianPCA(), x)
        dims.append(fit.model.effective_dimension(fit.params))
    hits = {
        "ard_within_1": sum(abs(k - q) <= 1 for k in dims),
        "ard_exact": sum(k == q for k in dims),
    }
    return Cell(f"bpca q={q}", q, reps, hits, {"ard_within_1": dims, "ard_exact": dims})
