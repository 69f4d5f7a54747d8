"""FactorAnalysis: exact likelihood with missing entries, maximum likelihood by EM, rotations,
and parity with psych 2.2.9 (references in tests/fixtures/psych, computed with R)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.evaluate.factors import factor_report, factor_scores, fit_indices
from ppgen.models.fa import FactorAnalysis, fit_correlation, pairwise_moments
from ppgen.models.rotations import CRITERIA, projected_gradient, rotate

PSYCH = Path(__file__).resolve().parents[1] / "fixtures" / "psych"
TRAITS = "ACENO"


@pytest.fixture(scope="module")
def bfi() -> pd.DataFrame:
    return ppgen.datasets.load("bfi").iloc[:, :25]


@pytest.fixture(scope="module")
def complete(bfi: pd.DataFrame) -> pd.DataFrame:
    return bfi.dropna()


def psych_loadings(name: str) -> np.ndarray:
    return pd.read_csv(PSYCH / f"{name}.csv", index_col=0).to_numpy()


def simulated(n: int = 400, p: int = 8, k: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    L = rng.uniform(0.5, 1.0, (p, k)) * rng.choice([-1, 1], (p, k))
    z = rng.standard_normal((n, k))
    psi = rng.uniform(0.3, 1.0, p)
    scale = rng.uniform(0.5, 20, p)  # columns in different units
    return (z @ L.T + rng.standard_normal((n, p)) * np.sqrt(psi)) * scale + 3.0


# -- likelihood -------------------------------------------------------------------------------


def test_log_prob_is_the_closed_form_marginal_with_missing_entries() -> None:
    x = simulated(60, 6, 2)
    mask = np.random.default_rng(1).random(x.shape) > 0.25
    mask[0] = True
    rng = np.random.default_rng(2)
    params = {
        "loadings": torch.tensor(rng.normal(size=(6, 2))),
        "mean": torch.tensor(rng.normal(size=6)),
        "uniquenesses": torch.tensor(rng.uniform(0.2, 2.0, 6)),
    }
    model = FactorAnalysis(2)
    model.dim = 6
    got = model.log_prob(torch.tensor(x), torch.tensor(mask), params).numpy()
    L, mu, psi = (params[k].numpy() for k in ("loadings", "mean", "uniquenesses"))
    cov = L @ L.T + np.diag(psi)
    from scipy.stats import multivariate_normal

    want = [
        multivariate_normal(mu[o], cov[np.ix_(o, o)]).logpdf(row[o]) if o.any() else 0.0
        for row, o in zip(x, mask, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)


def test_mle_matches_scikit_learn(complete: pd.DataFrame) -> None:
    from sklearn.decomposition import FactorAnalysis as SkFA

    x = complete.to_numpy()
    fit = ppgen.fit(FactorAnalysis(5, fm="ml"), complete)
    sk = SkFA(5, tol=1e-8, max_iter=5000).fit(x)
    ours = fit.log_prob(complete).sum()
    assert ours >= sk.score(x) * len(x) - 1e-4
    # The data's own scale: the log-likelihood of the raw ratings, not of standardized ones.
    assert fit.log_prob(complete).mean() == pytest.approx(sk.score(x), abs=1e-3)


def test_em_with_missing_entries_climbs_from_the_pairwise_start() -> None:
    x = simulated(150, 6, 2, seed=3)
    x[np.random.default_rng(4).random(x.shape) < 0.2] = np.nan
    fit = ppgen.fit(FactorAnalysis(2), x)
    objective = -fit.losses
    assert np.all(np.diff(objective) >= -1e-7 * len(x))
    assert objective[-1] > objective[0] + 1e-3  # the pairwise start is not the exact MLE
    # EM's fixed point: one more step changes nothing.
    enc = fit.encode(x)
    new, _ = fit.model.em_step(enc.x, enc.mask, fit.params)
    for k in new:
        torch.testing.assert_close(new[k], fit.params[k], atol=1e-3, rtol=1e-3)


def test_heywood_columns_are_named() -> None:
    x = simulated(300, 8, 2, seed=8)
    clean = ppgen.fit(FactorAnalysis(2), x)
    assert clean.model.heywood(clean.params) == []
    x[:, 7] = x[:, 0] * 2 + 1e-6 * np.random.default_rng(0).standard_normal(300)  # a copy
    fit = ppgen.fit(FactorAnalysis(2), x, max_steps=50)
    assert set(fit.model.heywood(fit.params)) & {0, 7}


def test_minres_is_kept_by_em_and_scored() -> None:
    x = simulated(200, 6, 2, seed=5)
    fit = ppgen.fit(FactorAnalysis(2, fm="minres"), x)
    assert len(fit.losses) == 2 and fit.losses[0] == fit.losses[1]
    assert np.isfinite(fit.log_prob(x)).all()


def test_n_parameters_is_psych_dof_plus_means(complete: pd.DataFrame) -> None:
    fit = ppgen.fit(FactorAnalysis(5, fm="minres"), complete)
    p, k = 25, 5
    saturated = p * (p + 1) // 2 + p
    assert fit.model.n_parameters() == saturated - (p * (p - 1) // 2 - p * k + k * (k - 1) // 2)


def test_bad_options_name_themselves() -> None:
    with pytest.raises(ValueError, match="rotation"):
        FactorAnalysis(2, rotation="equamax")
    with pytest.raises(ValueError, match="fm"):
        FactorAnalysis(2, fm="pa")
    with pytest.raises(ValueError, match="n_components"):
        ppgen.fit(FactorAnalysis(6), simulated(50, 6, 2))


# -- rotations -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unrotated(complete: pd.DataFrame) -> np.ndarray:
    _, _, R = pairwise_moments(complete.to_numpy())
    return fit_correlation(R, 5, "minres")[0]


@pytest.mark.parametrize("name", sorted(CRITERIA))
def test_rotation_is_at_a_stationary_point(unrotated: np.ndarray, name: str) -> None:
    A = unrotated
    rot = rotate(A, name, normalize=False, eps=1e-7, max_iter=20_000, algorithm="gpa")
    assert rot.converged  # geomin converges linearly: thousands of steps at this eps
    assert np.linalg.norm(projected_gradient(A, rot.rotmat, name)) < 1e-7
    # and a minimum: nearby feasible rotations do not do better
    vgq = CRITERIA[name][0]
    rng = np.random.default_rng(0)
    for _ in range(5):
        step = rot.rotmat + 1e-3 * rng.standard_normal(rot.rotmat.shape)
        if rot.oblique:
            T = step / np.linalg.norm(step, axis=0)
            L = A @ np.linalg.inv(T).T
        else:
            U, _, Vt = np.linalg.svd(step)
            L = A @ U @ Vt
        assert vgq(L)[0] >= rot.criterion - 1e-12


@pytest.mark.parametrize("name", ["varimax", "quartimax", "oblimin", "geomin", "promax"])
def test_rotation_keeps_the_common_variance(unrotated: np.ndarray, name: str) -> None:
    A = unrotated
    rot = rotate(A, name)
    common = rot.loadings @ rot.phi @ rot.loadings.T
    np.testing.assert_allclose(common, A @ A.T, atol=1e-10)
    np.testing.assert_allclose(np.diag(rot.phi), 1.0, atol=1e-12)
    if not rot.oblique:  # orthogonal: the communalities are the row sums of squares
        np.testing.assert_allclose((rot.loadings**2).sum(1), (A**2).sum(1), atol=1e-12)
        np.testing.assert_allclose(rot.phi, np.eye(5), atol=1e-12)


# -- psych parity ----------------------------------------------------------------------------


@pytest.mark.parametrize("fm", ["ml", "minres"])
@pytest.mark.parametrize("rotation", ["varimax", "oblimin", "promax"])
def test_complete_cases_match_psych(complete: pd.DataFrame, rotation: str, fm: str) -> None:
    fit = ppgen.fit(FactorAnalysis(5, rotation=rotation, fm=fm), complete)
    sol = fit.model.solution(fit.params)
    # psych's factor order and signs are reproduced too: columns compared as they stand.
    np.testing.assert_allclose(sol.loadings, psych_loadings(f"cc_{rotation}_{fm}"), atol=1e-3)
    np.testing.assert_allclose(sol.communalities + sol.uniquenesses, 1.0, atol=1e-6)


def test_bfi_minres_oblimin_pairwise_matches_psych(bfi: pd.DataFrame) -> None:
    """psych: fa(bfi[, 1:25], 5, rotate="oblimin", fm="minres") on pairwise correlations."""
    fit = ppgen.fit(FactorAnalysis(5, rotation="oblimin", fm="minres"), bfi)
    report = factor_report(fit, bfi)
    L = report.loadings
    ref = psych_loadings("bfi_oblimin_minres_loadings")
    np.testing.assert_allclose(L.to_numpy(), ref, atol=1e-3)  # psych's file has 4 decimals
    # Every item's largest loading is on its trait's factor (25/25).
    primary = L.abs().idxmax(axis=1)
    trait_factor = {t: primary[[f"{t}{i}" for i in range(1, 6)]].mode()[0] for t in TRAITS}
    assert len(set(trait_factor.values())) == 5
    assert all(primary[item] == trait_factor[item[0]] for item in L.index)
    # psych's printed primary loadings (issue 14).
    printed = {
        "A1": -0.414, "A2": 0.640, "A3": 0.660, "A4": 0.433, "A5": 0.532,
        "C1": 0.546, "C2": 0.666, "C3": 0.567, "C4": -0.614, "C5": -0.553,
        "E1": -0.557, "E2": -0.676, "E3": 0.418, "E4": 0.591, "E5": 0.421,
        "N1": 0.815, "N2": 0.777, "N3": 0.707, "N4": 0.474, "N5": 0.486,
        "O1": 0.508, "O2": -0.456, "O3": 0.609, "O4": 0.371, "O5": -0.542,
    }  # fmt: skip
    for item, value in printed.items():
        assert L.loc[item, trait_factor[item[0]]] == pytest.approx(value, abs=2e-3)
    e, a = trait_factor["E"], trait_factor["A"]
    assert report.phi.loc[e, a] == pytest.approx(0.33, abs=0.005)
    off = report.phi.to_numpy()[~np.eye(5, dtype=bool)]
    assert np.abs(off).max() == pytest.approx(report.phi.loc[e, a])
    # psych: TLI 0.8672651 RMSEA 0.05599015 BIC 340.5285 chi 1808.943 dof 185
    ind = report.indices
    assert ind.dof == 185
    assert ind.chi2 == pytest.approx(1808.943, abs=0.01)
    assert ind.bic == pytest.approx(340.5285, abs=0.01)
    assert ind.tli == pytest.approx(0.8672651, abs=1e-5)
    assert ind.rmsea == pytest.approx(0.05599015, abs=1e-6)


def test_bfi_ml_varimax_on_pairwise_correlations_matches_psych(bfi: pd.DataFrame) -> None:
    """psych's fm="ml" on all rows is ML of the pairwise correlation matrix (objective
    0.6279861); ppgen's own ML fit with missing entries is the exact likelihood instead."""
    _, _, R = pairwise_moments(bfi.to_numpy())
    L, psi, res = fit_correlation(R, 5, "ml")
    assert res.fun == pytest.approx(0.6279861, abs=1e-6)
    from ppgen.models.fa import psych_order

    rot = psych_order(rotate(L, "varimax"))
    ref = psych_loadings("bfi_varimax_ml_loadings")
    np.testing.assert_allclose(rot.loadings, ref, atol=1e-3)
    ind = fit_indices(R, rot.loadings, None, len(bfi))
    assert ind.bic == pytest.approx(281.4688, abs=0.05)


def test_factor_scores(complete: pd.DataFrame) -> None:
    fit = ppgen.fit(FactorAnalysis(5, rotation="oblimin", fm="ml"), complete)
    sol = fit.model.solution(fit.params)
    x = complete.to_numpy()
    L = fit.params["loadings"].numpy()
    psi = fit.params["uniquenesses"].numpy()
    mu = fit.params["mean"].numpy()
    z = (x - mu) / sol.sd
    sigma = (L @ L.T + np.diag(psi)) / np.outer(sol.sd, sol.sd)
    # Thurstone's regression scores: standardized data times Sigma^-1 times the structure.
    want = z @ np.linalg.solve(sigma, sol.structure)
    got = factor_scores(fit, complete)
    np.testing.assert_allclose(got.to_numpy(), want, atol=1e-8)
    # Bartlett: weighted least squares on the pattern, unbiased for the factors.
    u = sol.uniquenesses
    P = sol.loadings
    W = np.linalg.solve(P.T @ (P / u[:, None]), (P / u[:, None]).T)
    np.testing.assert_allclose(
        factor_scores(fit, complete, "bartlett").to_numpy(), z @ W.T, atol=1e-8
    )


def test_standardize_changes_nothing_reported_for_ml(complete: pd.DataFrame) -> None:
    """ML is scale-free: the standardized, rotated loadings of the data as given and of the
    standardized columns agree."""
    raw = ppgen.fit(FactorAnalysis(5), complete)
    std = ppgen.fit(FactorAnalysis(5, standardize=True), complete)
    a, b = raw.model.solution(raw.params), std.model.solution(std.params)
    np.testing.assert_allclose(a.loadings, b.loadings, atol=1e-6)
    np.testing.assert_allclose(a.phi, b.phi, atol=1e-6)


@pytest.mark.slow
def test_bfi_full_information_ml_is_close_to_psych_pairwise_ml(bfi: pd.DataFrame) -> None:
    """How ppgen handles BFI's missing entries: fm="ml" maximizes the exact likelihood of the
    observed entries (full-information ML, EM from the pairwise-ML start), where psych's
    fm="ml" fits the pairwise-complete correlation matrix. The two differ by at most 0.005 in
    the varimax loadings (0.0031 measured); the exact likelihood is higher at ppgen's."""
    fit = ppgen.fit(FactorAnalysis(5, rotation="varimax"), bfi)
    report = factor_report(fit, bfi)
    ref = psych_loadings("bfi_varimax_ml_loadings")
    np.testing.assert_allclose(report.loadings.to_numpy(), ref, atol=5e-3)
    enc = fit.encode(bfi)
    start = fit.model.init_params(enc.x, enc.mask, torch.Generator())
    assert fit.log_prob(bfi).sum() > float(fit.model.log_prob(enc.x, enc.mask, start).sum())
