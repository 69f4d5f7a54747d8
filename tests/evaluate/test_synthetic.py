"""Sample-quality metrics (ppgen.evaluate.synthetic): definitions, calibration and power.

Definitions are checked against direct implementations (MMD^2 as a double sum, PRDC on a
hand-worked example); the two-sample tests are checked for calibration under the null (two
random halves of one real table: permutation p-values uniform, mean AUC 0.5) and for power
against a flipped correlation and a dropped mixture component at n = 2,000. A few replications
run by default, 200 under ``-m slow``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ppgen.datasets import load
from ppgen.evaluate import c2st, dcr, mmd, prdc, quality
from ppgen.evaluate.synthetic import features, median_bandwidth


def _correlated(n, rho, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    z[:, 1] = rho * z[:, 0] + math.sqrt(1 - rho**2) * z[:, 1]
    return pd.DataFrame(z, columns=["a", "b", "c"])


def _mixture(n, components, seed):
    """Rows of a 2-D mixture of unit Gaussians at three means, from the listed components."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    labels = rng.choice(components, size=n)
    return pd.DataFrame(means[labels] + rng.normal(size=(n, 2)), columns=["x", "y"])


def _halves(table, seed):
    order = np.random.default_rng(seed).permutation(len(table))
    half = len(table) // 2
    return table.iloc[order[:half]], table.iloc[order[half : 2 * half]]


# -- definitions ----------------------------------------------------------------------------


def test_mmd2_equals_a_direct_double_sum():
    real, synthetic = _correlated(30, 0.5, 1), _correlated(40, -0.2, 2)
    x, y = features(real, synthetic)

    def k(a, b):
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * 1.7**2))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    result = mmd(real, synthetic, bandwidth=1.7, max_rows=None, n_permutations=20)
    assert result.mmd2 == pytest.approx(xx + yy - 2 * xy, abs=1e-10)
    assert (result.n_real, result.n_synthetic) == (30, 40)


def test_median_bandwidth_is_the_median_pairwise_distance():
    x = np.random.default_rng(0).normal(size=(20, 2))
    pooled = np.vstack([x[:8], x[8:]])
    distances = [np.linalg.norm(pooled[i] - pooled[j]) for i in range(20) for j in range(i)]
    assert median_bandwidth(x[:8], x[8:]) == pytest.approx(np.median(distances), abs=1e-12)


def test_prdc_on_a_hand_checked_example():
    # Real 0, 1, 3 (k = 1 radii 1, 1, 2); synthetic 0.5, 10 (radii 9.5, 9.5). Standardizing the
    # one column scales every distance alike, so the counts below are unchanged.
    # precision: 0.5 lies in the balls of 0 and 1, 10 in none -> 1/2.
    # recall: 0, 1, 3 all lie within 9.5 of 0.5 -> 1.
    # density: 0.5 is in 2 balls, 10 in 0 -> (2 + 0) / (k M) = 1.
    # coverage: the balls of 0 and 1 hold 0.5, the ball of 3 (radius 2) holds nothing -> 2/3.
    real = pd.DataFrame({"x": [0.0, 1.0, 3.0]})
    synthetic = pd.DataFrame({"x": [0.5, 10.0]})
    result = prdc(real, synthetic, k=1)
    assert (result.precision, result.recall, result.density) == (0.5, 1.0, 1.0)
    assert result.coverage == pytest.approx(2 / 3, abs=1e-15)


def test_features_put_one_label_change_at_distance_one():
    real = pd.DataFrame({"c": pd.Categorical(["a", "b", "c", "a"]), "v": [1.0, 2.0, 3.0, 4.0]})
    x, y = features(real, real.iloc[[1, 2]])
    assert np.linalg.norm(x[0] - x[3]) == pytest.approx(3 / math.sqrt(1.25), abs=1e-12)
    assert np.linalg.norm(x[0, :3] - y[0, :3]) == pytest.approx(1.0, abs=1e-12)


def test_a_constant_real_column_keeps_its_units():
    # 0.1 twenty times has a floating-point std of about 1e-17, not 0: dividing by it blew
    # distances up to 1e17 on digits' blank pixels.
    real = pd.DataFrame({"c": [0.1] * 20, "v": np.arange(20.0)})
    x, y = features(real, real.assign(c=1.1))
    assert np.abs(y[:, 0] - x[:, 0]).max() == pytest.approx(1.0, abs=1e-9)


def test_results_are_frozen_and_seeded():
    real, synthetic = _correlated(200, 0.5, 1), _correlated(200, 0.0, 2)
    for result in (c2st(real, synthetic, seed=3), mmd(real, synthetic, seed=3)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.p_value = 0.5
    assert c2st(real, synthetic, seed=3) == c2st(real, synthetic, seed=3)
    assert mmd(real, synthetic, seed=3) == mmd(real, synthetic, seed=3)
    detection = c2st(real, synthetic, "logistic")
    assert detection.detection == pytest.approx(2 - 2 * max(detection.auc, 0.5), abs=1e-15)


def test_dcr_sees_copies():
    real = _correlated(300, 0.5, 1)
    copied = dcr(real, real.iloc[:100], holdout=_correlated(300, 0.5, 2))
    assert copied.median == 0.0 and copied.exact_copies == 1.0
    assert copied.closer_to_real == 1.0
    fresh = dcr(real, _correlated(100, 0.5, 3), holdout=_correlated(300, 0.5, 2))
    assert fresh.exact_copies == 0.0
    assert 0.3 < fresh.closer_to_real < 0.7
    assert fresh.median == pytest.approx(fresh.holdout_median, rel=0.3)


def test_dcr_with_missing_values_in_the_holdout_only():
    penguins = load("penguins")
    complete = penguins.dropna()
    assert penguins.iloc[250:].isna().any().any() and not complete.isna().any().any()
    result = dcr(complete.iloc[:150], complete.iloc[150:250], holdout=penguins.iloc[250:])
    assert np.isfinite(result.holdout_median) and 0 <= result.closer_to_real <= 1


def test_bad_input_names_the_problem():
    real = _correlated(50, 0.5, 1)
    with pytest.raises(ValueError, match="classifier"):
        c2st(real, real, classifier="svm")
    with pytest.raises(ValueError, match=r"lacks \['c'\]"):
        mmd(real, real[["a", "b"]])
    with pytest.raises(ValueError, match="n_permutations"):
        mmd(real, real, n_permutations=0)
    penguins = load("penguins")
    odd = penguins.assign(species=penguins["species"].astype(object).replace("Adelie", "Emperor"))
    with pytest.raises(ValueError, match="species"):
        c2st(penguins, odd)


# -- calibration and power --------------------------------------------------------------------


def _null_replications(n_replications):
    """Two random halves of penguins (mixed kinds, missing values) per replication."""
    penguins = load("penguins")
    aucs, c2st_p, mmd_p = [], [], []
    for seed in range(n_replications):
        real, synthetic = _halves(penguins, seed)
        test = c2st(real, synthetic, seed=seed, n_permutations=200)
        aucs.append(test.auc)
        c2st_p.append(test.p_value)
        mmd_p.append(mmd(real, synthetic, seed=seed, n_permutations=100).p_value)
    return np.array(aucs), np.array(c2st_p), np.array(mmd_p)


def test_two_sample_tests_hold_their_level_on_a_few_null_replications():
    aucs, c2st_p, mmd_p = _null_replications(8)
    assert abs(aucs.mean() - 0.5) < 3 * aucs.std(ddof=1) / math.sqrt(len(aucs)) + 0.01
    # Each p-value is below 0.05 with probability 0.05; two of eight is already unlikely.
    assert (c2st_p < 0.05).sum() <= 2 and (mmd_p < 0.05).sum() <= 2


@pytest.mark.slow
def test_two_sample_tests_are_calibrated_over_200_null_replications():
    aucs, c2st_p, mmd_p = _null_replications(200)
    assert abs(aucs.mean() - 0.5) < 2 * aucs.std(ddof=1) / math.sqrt(len(aucs))
    # Permutation p-values take values k / (B + 1): compare with the uniform on (0, 1] after
    # jittering within their resolution.
    rng = np.random.default_rng(0)
    for p, b in ((c2st_p, 200), (mmd_p, 100)):
        jittered = p - rng.uniform(0, 1 / (b + 1), size=len(p))
        assert stats.kstest(jittered, "uniform").pvalue > 0.01


def _power(n_replications, n=2000):
    """p-values of the GBM test and MMD against a flipped correlation and a dropped component."""
    out = []
    for seed in range(n_replications):
        flipped = (_correlated(n, 0.6, 2 * seed), _correlated(n, -0.6, 2 * seed + 1))
        dropped = (_mixture(n, [0, 1, 2], 2 * seed), _mixture(n, [0, 1], 2 * seed + 1))
        for real, synthetic in (flipped, dropped):
            out.append(
                (
                    c2st(real, synthetic, seed=seed, n_permutations=200).p_value,
                    mmd(real, synthetic, seed=seed, n_permutations=100).p_value,
                )
            )
    return np.array(out)


def test_gbm_test_and_mmd_detect_a_flipped_correlation_and_a_dropped_component():
    assert (_power(1) < 0.01).all()


@pytest.mark.slow
def test_power_over_50_replications():
    # 50, not 200: each replication builds two 4,000 x 4,000 kernels (about 20 min in all).
    assert (_power(50) < 0.01).mean(axis=0).min() >= 0.95


def test_a_factorized_sampler_has_good_shape_but_is_detected():
    # Columns resampled independently keep every marginal (shape near 1) and lose the
    # dependence, which the GBM two-sample test catches (TabPC's observation on adult). Data: a
    # 3-component mixture in 4-D whose means differ on every coordinate, so 78 of the 81
    # combinations of per-column modes that a factorized sampler draws are phantoms.
    rng = np.random.default_rng(0)
    means = np.array([[5.0 * ((k + j) % 3 - 1) for j in range(4)] for k in range(3)])
    real = means[rng.choice(3, size=2000)] + rng.normal(size=(2000, 4))
    factorized = np.column_stack([rng.choice(real[:, j], size=2000) for j in range(4)])
    assert quality(real, factorized).shape > 0.95
    assert c2st(real, factorized).detection < 0.1
