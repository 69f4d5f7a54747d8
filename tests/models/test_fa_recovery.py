"""Recovery of the number of factors on simulated data (issue 14; slow: 2 x 50 replications).

p = 25 items, k in {2, 5} independent factors, each item loading on one factor with a
standardized loading drawn uniformly from [0.5, 0.8] (uniqueness 1 - loading^2), n = 500
training rows and 500 held-out rows. Candidates k = 1..7 fitted by maximum likelihood; BIC is
ppgen's ``Fit.bic`` (-2 loglik + n_parameters log n, of the data), held-out is the held-out
log-likelihood. Each must pick the true k in >= 90% of 50 replications: asserted on the lower
end of the 95% Wilson interval being above 0.8 and the rate itself >= 0.9.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import ppgen

P, N, REPS, CANDIDATES = 25, 500, 50, range(1, 8)


def simulate(k: int, rng: np.random.Generator) -> np.ndarray:
    loadings = np.zeros((P, k))
    loadings[np.arange(P), np.arange(P) % k] = rng.uniform(0.5, 0.8, P)
    z = rng.standard_normal((2 * N, k))
    noise = rng.standard_normal((2 * N, P)) * np.sqrt(1 - (loadings**2).sum(1))
    return (z @ loadings.T + noise) * rng.uniform(0.5, 3.0, P)  # items in their own units


def wilson_low(hits: int, n: int, z: float = 1.96) -> float:
    p = hits / n
    centre = p + z**2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return (centre - spread) / (1 + z**2 / n)


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 5])
def test_bic_and_heldout_recover_the_number_of_factors(k: int) -> None:
    rng = np.random.default_rng(100 + k)
    hits = {"bic": 0, "heldout": 0}
    for _ in range(REPS):
        x = simulate(k, rng)
        train, test = x[:N], x[N:]
        bic, heldout = {}, {}
        for q in CANDIDATES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ppgen.ConvergenceWarning)
                fit = ppgen.fit(ppgen.FactorAnalysis(q, rotation=None), train)
            bic[q] = fit.bic(train)
            heldout[q] = fit.log_prob(test).sum()
        hits["bic"] += min(bic, key=bic.get) == k
        hits["heldout"] += max(heldout, key=heldout.get) == k
    for name, h in hits.items():
        assert h / REPS >= 0.9, (name, h)
        assert wilson_low(h, REPS) > 0.8, (name, h)
