"""ppgen.ampute (mice's ampute design) and ppgen.impute.imputation_report (van Buuren's
simulation design). The >= 200-replication study is the slow test at the end and
benchmarks/imputation.py --study."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ppgen
from ppgen.impute import imputation_report

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _gaussian(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    z = rng.normal(size=n)
    y = 1 + 0.5 * x - 0.3 * z + rng.normal(size=n)
    return pd.DataFrame({"x": x, "z": z, "y": y})


# -- ampute -------------------------------------------------------------------------------------


def test_ampute_mcar_share_and_patterns():
    df = _gaussian(20_000)
    out = ppgen.ampute(df, 0.4, mechanism="MCAR", seed=1)
    incomplete = out.isna().any(axis=1)
    assert abs(incomplete.mean() - 0.4) < 0.015
    assert (out.isna().sum(axis=1) <= 1).all()  # default patterns: one column each
    assert out[~incomplete].equals(df[~incomplete])  # nothing else changes
    assert np.allclose(out.isna().mean(), 0.4 / 3, atol=0.01)
    pd.testing.assert_frame_equal(out, ppgen.ampute(df, 0.4, mechanism="MCAR", seed=1))
    assert not out.equals(ppgen.ampute(df, 0.4, mechanism="MCAR", seed=2))


@pytest.mark.parametrize(("mechanism", "driver"), [("MAR", "z"), ("MNAR", "x")])
def test_ampute_mar_and_mnar_depend_on_the_right_columns(mechanism, driver):
    """Pattern "x missing" only: under MAR the odds of losing x grow with the observed z and y
    (RIGHT type); under MNAR with x itself."""
    df = _gaussian(20_000)
    out = ppgen.ampute(df, 0.5, mechanism=mechanism, patterns=[["x"]], seed=0)
    lost = out["x"].isna()
    assert abs(lost.mean() - 0.5) < 0.015
    assert out[["z", "y"]].notna().all().all()
    if mechanism == "MAR":
        assert df.loc[lost, "z"].mean() > df.loc[~lost, "z"].mean() - 0.2  # z enters the score
        score = (df["z"] - df["z"].mean()) / df["z"].std() + (df["y"] - df["y"].mean()) / df[
            "y"
        ].std()
        assert score[lost].mean() - score[~lost].mean() > 0.8
    else:
        assert df.loc[lost, "x"].mean() - df.loc[~lost, "x"].mean() > 0.8
    left = ppgen.ampute(df, 0.5, mechanism=mechanism, patterns=[["x"]], type="LEFT", seed=0)
    assert (
        df.loc[left["x"].isna(), driver].mean() < df.loc[left["x"].notna(), driver].mean()
        or driver == "z"
    )


def test_ampute_ndarray_categories_and_errors():
    array = _gaussian(50).to_numpy()
    out = ppgen.ampute(array, 0.3, seed=0)
    assert isinstance(out, np.ndarray) and np.isnan(out).any()
    mixed = pd.DataFrame(
        {"a": np.arange(40), "g": ["u", "v"] * 20, "b": np.linspace(0, 1, 40) > 0.5}
    )
    out = ppgen.ampute(mixed, 0.5, mechanism="MNAR", seed=0)
    assert out.isna().any().all()
    assert out["a"].dtype == np.float64  # integers become floats to hold NaN
    for bad, message in [
        ({"prop": 1.5}, "prop"),
        ({"mechanism": "NMAR"}, "mechanism"),
        ({"patterns": [["nope"]]}, "unknown columns"),
        ({"patterns": [["a", "g", "b"]]}, "not all"),
        ({"freq": [1, 2]}, "freq"),
        ({"type": "UP"}, "type"),
    ]:
        with pytest.raises(ValueError, match=message):
            ppgen.ampute(mixed, **{"prop": 0.5, **bad})
    with pytest.raises(ValueError, match="complete"):
        ppgen.ampute(ppgen.ampute(mixed, 0.5), 0.5)


# -- imputation_report --------------------------------------------------------------------------


def _mean_imputation(table: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
    """Deterministic, single-valued: the textbook bad imputation (biased variances, B = 0)."""
    filled = table.fillna(table.mean())
    return [filled, filled.copy()]


def test_report_bookkeeping_and_reference_rows():
    population = _gaussian(3000, seed=5)
    imputer = ppgen.Imputer("ppca", n_components=1, n_imputations=5, method="em")
    report = imputation_report(
        population,
        "y ~ x + z",
        {"ppca": imputer, "mean": _mean_imputation},
        n=120,
        replications=6,
        prop=0.4,
        mechanism="MAR",
        seed=3,
    )
    import statsmodels.formula.api as smf

    truth = smf.ols("y ~ x + z", population).fit().params
    est = report.estimates
    methods = ["complete data", "complete cases", "ppca", "mean"]
    assert list(est.index.get_level_values(0).unique()) == methods
    np.testing.assert_allclose(est.xs("x", level="term")["true"], truth["x"], rtol=1e-12)
    # The summary is the mean over the replication records.
    raw = report.replications
    assert len(raw) == 6 * len(methods) * 3
    for (method, term), row in est.iterrows():
        mine = raw[(raw["method"] == method) & (raw["term"] == term)]
        true = truth[term]
        assert row["bias"] == pytest.approx(mine["estimate"].mean() - true, abs=1e-12)
        assert row["percent_bias"] == pytest.approx(100 * row["bias"] / abs(true))
        covered = ((mine["lower"] <= true) & (true <= mine["upper"])).mean()
        assert row["coverage"] == pytest.approx(covered)
        assert row["width"] == pytest.approx((mine["upper"] - mine["lower"]).mean())
        rmse = np.sqrt(((mine["estimate"] - true) ** 2).mean())
        assert row["rmse"] == pytest.approx(rmse)
    # Complete data: the replication's own OLS interval, by hand for replication 0.
    rng = np.random.default_rng(3)
    sample = population.iloc[rng.choice(3000, size=120, replace=True)].reset_index(drop=True)
    lo, hi = smf.ols("y ~ x + z", sample).fit().conf_int().loc["x"]
    first = raw[(raw["replication"] == 0) & (raw["method"] == "complete data")]
    assert first.loc[first["term"] == "x", ["lower", "upper"]].to_numpy()[0] == pytest.approx(
        [lo, hi], abs=1e-10
    )
    # Distributions: mean imputation puts every value at one point; the model spreads them.
    dist = report.distributions
    assert set(dist.index.get_level_values("column")) == {"x", "z", "y"}
    for column in "xzy":
        assert dist.loc[("mean", column), "energy"] > dist.loc[("ppca", column), "energy"]
        assert dist.loc[("mean", column), "wasserstein"] > dist.loc[("ppca", column), "wasserstein"]
    assert report.settings["replications"] == 6


def test_report_hc3_intervals():
    """cov_type="HC3": the complete-data interval is statsmodels' HC3 OLS interval (t with the
    residual degrees of freedom), by hand for replication 0; the estimates are unchanged."""
    import statsmodels.formula.api as smf
    from scipy import stats

    population = _gaussian(400, seed=2)
    population["y"] += population["x"] * np.random.default_rng(0).normal(size=400)  # unequal var
    kwargs = {"n": 80, "replications": 2, "prop": 0.3, "seed": 4, "progress": False}
    plain = imputation_report(population, "y ~ x + z", {"mean": _mean_imputation}, **kwargs)
    hc3 = imputation_report(
        population, "y ~ x + z", {"mean": _mean_imputation}, cov_type="HC3", **kwargs
    )
    rng = np.random.default_rng(4)
    sample = population.iloc[rng.choice(400, size=80, replace=True)].reset_index(drop=True)
    result = smf.ols("y ~ x + z", sample).fit(cov_type="HC3")
    half = stats.t.ppf(0.975, 80 - 3) * result.bse["x"]  # statsmodels' own uses the normal
    lo, hi = result.params["x"] - half, result.params["x"] + half
    raw = hc3.replications
    first = raw[(raw["replication"] == 0) & (raw["method"] == "complete data")]
    assert first.loc[first["term"] == "x", ["lower", "upper"]].to_numpy()[0] == pytest.approx(
        [lo, hi], abs=1e-10
    )
    np.testing.assert_allclose(
        hc3.replications["estimate"], plain.replications["estimate"], rtol=0, atol=1e-12
    )
    assert not np.allclose(hc3.replications["lower"], plain.replications["lower"])
    with pytest.raises(ValueError, match="cov_type"):
        imputation_report(population, "y ~ x", {"m": _mean_imputation}, cov_type="HC9")


def test_true_delta_measures_the_mnar_shift():
    """true_delta: under self-masking MNAR of x (half the rows, the larger x the likelier lost)
    MAR imputations of x fall short of the deleted values, so the measured delta is positive and
    close to the gap between the deleted values' mean and their MAR conditional means; under
    MCAR it is about 0; columns that never go missing have no entry."""
    from ppgen.impute.report import true_delta

    population = _gaussian(3000, seed=7)
    kwargs = {"prop": 0.5, "patterns": [["x"]], "rows": 4000, "repeats": 1, "seed": 3}
    mnar = true_delta(population, mechanism="MNAR", **kwargs)
    mcar = true_delta(population, mechanism="MCAR", **kwargs)
    assert set(mnar) == {"x"} and set(mcar) == {"x"}
    assert mnar["x"] > 0.3, mnar
    assert abs(mcar["x"]) < 0.1, mcar


def test_report_errors():
    population = _gaussian(100)
    with pytest.raises(ValueError, match="complete"):
        imputation_report(ppgen.ampute(population, 0.5), "y ~ x", {"m": _mean_imputation})
    with pytest.raises(ValueError, match="methods is empty"):
        imputation_report(population, "y ~ x", {})
    with pytest.raises(ValueError, match="at least 2"):
        imputation_report(
            population, "y ~ x", {"one": lambda t, s: [t.fillna(0)]}, n=50, replications=1
        )
    with pytest.raises(ValueError, match="without replacement"):
        imputation_report(population, "y ~ x", {"m": _mean_imputation}, n=500, replace=False)


# -- the simulation study (slow) ----------------------------------------------------------------

PENGUIN_COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
PENGUIN_ANALYSIS = "body_mass_g ~ bill_length_mm + bill_depth_mm + flipper_length_mm"


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", ["MCAR", "MAR"])
@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("gmm", {"n_components": 1}),
        ("ppca", {"n_components": 2, "fit_options": {"max_steps": 200}}),
    ],
)
def test_study_bias_and_coverage(mechanism, model, options, request):
    """van Buuren's design on palmerpenguins' four measurements (342 complete rows, the
    population): 200 replications of n = 200 rows, 30% of rows amputed, m = 10 proper
    imputations (EM + bootstrap refits), OLS of body mass on the three others.

    Bias: |percent bias| <= 5% where 5% of the true value exceeds 3 Monte Carlo standard errors
    of the mean estimate (rmse / sqrt(200)); else (bill length, true value ~4 with a standard
    error ~7; bill depth, ~20 with ~16) the raw bias within 3 Monte Carlo standard errors.
    Coverage of the 95% interval: >= 92%, and <= 98% or within 2 points of the complete-data
    analysis' own coverage (OLS standard errors on this population are conservative: the
    complete-data rows of benchmarks/results/imputation_study_small.md cover 95-100%)."""
    if (mechanism, model) == ("MAR", "gmm"):
        # Measured by benchmarks/imputation_study.py (200 replications): a single Gaussian
        # biases the bill-depth coefficient by +6.3 (31%, 4.9 Monte Carlo se) under this MAR
        # design. The model's misspecification, not the study or the pooling: the population is
        # three species, and the bias stays at n = 20,000 rows and vanishes on a Gaussian
        # population with the same moments (test_gmm1_mar_bias_is_the_single_gaussians_...).
        request.applymarker(
            pytest.mark.xfail(
                reason="GMM K=1 MAR bill-depth bias +6.3: a single Gaussian is misspecified on "
                "three species (see test_gmm1_mar_bias_is_the_single_gaussians_misspecification)"
            )
        )
    if model == "ppca":
        # benchmarks/results/imputation_study_ppca2_small.md (40 replications): bill depth
        # -10.2 under MAR and -9.8 under MCAR (about -50%, ~4 MC se): PPCA(2)'s rank-2 plus
        # isotropic-noise covariance cannot hold the four columns' covariance.
        request.applymarker(
            pytest.mark.xfail(reason="PPCA(2) bill-depth bias about -10 under MCAR and MAR")
        )
    population = ppgen.datasets.load("penguins")[PENGUIN_COLUMNS].dropna().reset_index(drop=True)
    _study(population, PENGUIN_ANALYSIS, model, options, 200, mechanism)


DIABETES_COLUMNS = ["age", "bmi", "bp", "s5", "target"]
DIABETES_ANALYSIS = "target ~ age + bmi + bp + s5"


def _study(
    population, analysis, model, options, n, mechanism, replications=200, literal=False, **extra
):
    """200 replications of n rows, 30% of rows amputed (``extra``: other ampute or analysis
    options), m = 10 proper imputations (EM + bootstrap refits), seed 0 (as
    benchmarks/imputation_study.py), then the assertions below; returns the report."""
    imputer = ppgen.Imputer(model, n_imputations=10, method="em", proper="bootstrap", **options)
    report = imputation_report(
        population, analysis, {model: imputer}, n=n, replications=replications,
        **({"prop": 0.3, "mechanism": mechanism, "seed": 0} | extra),
    )  # fmt: skip
    _assert_bias_and_coverage(report, model, replications, literal)
    return report


def _bias_ok(row, replications: int) -> bool:
    """|percent bias| <= 5% where 5% of the true value exceeds 3 Monte Carlo standard errors of
    the mean estimate (rmse / sqrt(replications)), else the raw bias within 3 of them."""
    mc_se = row["rmse"] / np.sqrt(replications)
    if 0.05 * abs(row["true"]) > 3 * mc_se:
        return abs(row["percent_bias"]) <= 5
    return abs(row["bias"]) <= 3 * mc_se


def _assert_bias_and_coverage(report, name: str, replications: int, literal=False) -> None:
    """The bias rule of _bias_ok; coverage of the 95% interval >= 92%, and <= 98% (``literal``)
    or else <= 98% or within 2 points of the complete-data analysis' own coverage."""
    est = report.estimates.loc[name]
    complete = report.estimates.loc["complete data"]
    for term, row in est.iterrows():
        assert _bias_ok(row, replications), (term, row)
        assert row["coverage"] >= 0.92, (term, row)
        upper = 0.98 if literal else max(0.98, complete.loc[term, "coverage"] + 0.02)
        assert row["coverage"] <= upper, (term, row)


def _diabetes():
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame[DIABETES_COLUMNS]


_GMM1, _PPCA4 = ("gmm", {"n_components": 1}), ("ppca", {"n_components": 4, "standardize": True})
_PPCA2 = ("ppca", {"n_components": 2, "standardize": True})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mechanism", "model", "options"),
    [
        ("MCAR", *_GMM1),
        ("MAR", *_GMM1),
        ("MCAR", *_PPCA4),
        ("MAR", *_PPCA4),
        ("MAR", *_PPCA2),
    ],
    ids=["gmm1-MCAR", "gmm1-MAR", "ppca4-MCAR", "ppca4-MAR", "ppca2-MAR"],
)
def test_study_bias_and_coverage_diabetes(mechanism, model, options, request):
    """The design of benchmarks/imputation_study.py --table diabetes-hc3 on scikit-learn's
    diabetes table (442 patients; age, body mass index, blood pressure, s5 and the disease
    progression, unscaled): one population without hidden groups, near-Gaussian margins. 200
    replications of n = 442 rows, 30% of rows amputed (one column each), m = 10 proper
    imputations (EM + bootstrap), OLS of the progression on the four others with HC3 standard
    errors (the population's residuals are heteroscedastic: the model-based intercept interval
    of the complete data covers 98.6%, HC3's 95.9%, over 1000 replications), so the literal
    92-98% coverage rule applies to every term. Age's coefficient is within a standard error of
    0 (raw bias). Imputer sizes: GMM K = 1 (the BIC's pick on the population); PPCA q = 4 on the
    standardized columns, the held-out observed-entry log density's pick on the MAR-amputed
    population (10% of the observed cells hidden, 3 folds; q = 4 of 5 columns is the saturated
    Gaussian), and q = 2, the BIC's and the held-out CRPS's pick, whose rank restriction biases
    bmi's coefficient under MAR (at 20,000 rows: -5.0% against -2.0% for q = 4). The same
    numbers as benchmarks/results/imputation_study_diabetes_hc3.md (same seeds): GMM K = 1 and
    PPCA q = 4 pass under MCAR and MAR at 200 replications (max |percent bias| 3.1%, age's raw
    bias <= 2.8 Monte Carlo se, coverage 93.5-98.0%)."""
    if (model, options["n_components"]) == ("ppca", 2):
        request.applymarker(
            pytest.mark.xfail(
                reason="PPCA(2) MAR: bmi -5.17% and s5 coverage 98.5% over 200 replications "
                "(its rank-2 misfit), see the docstring"
            )
        )
    _study(
        _diabetes(), DIABETES_ANALYSIS, model, options, 442, mechanism, literal=True,
        cov_type="HC3",
    )  # fmt: skip


@pytest.mark.slow
def test_study_mnar_delta_removes_the_bias_diabetes():
    """MNAR rows that show something (benchmarks/imputation_study.py --table diabetes-hc3
    --mechanisms MNAR-bmi, same seeds): half the rows lose bmi, the likelier the larger their
    bmi (ampute's self-masking logistic). GMM K = 1 imputing under MAR puts the deleted bmi
    values too low, and s5's coefficient (s5 stands in for the missing bmi) is biased by more
    than 5%; the delta adjustment at the value that is right for this mechanism (true_delta on
    4 x 20,000 rows: bmi +2.50, 0.57 sd, a location shift) brings the intercept, bmi, bp and s5
    within the study's bias rule with coverage >= 92%. Age is left out: its coefficient (true
    -0.18, standard error ~0.2) moves by about -0.16 under MAR imputation *and* after the
    delta (at 20,000 rows too: a location shift moves the imputed bmi's mean, not its relation
    to age, which the self-masked tail changes); MICE has the same age bias
    (benchmarks/results/imputation_study_diabetes_hc3.md)."""
    from ppgen.impute.report import true_delta

    population = _diabetes()
    design = {"prop": 0.5, "mechanism": "MNAR", "patterns": [["bmi"]]}
    delta = true_delta(population, **design)
    assert set(delta) == {"bmi"} and 2.0 < delta["bmi"] < 3.0, delta

    def boot(**options):
        return ppgen.Imputer(
            "gmm", n_components=1, n_imputations=10, method="em", proper="bootstrap", **options
        )

    report = imputation_report(
        population, DIABETES_ANALYSIS, {"mar": boot(), "delta": boot(delta=delta)}, n=442,
        replications=200, seed=0, cov_type="HC3", **design,
    )  # fmt: skip
    mar, adjusted = report.estimates.loc["mar"], report.estimates.loc["delta"]
    assert mar.loc["s5", "percent_bias"] > 5 and not _bias_ok(mar.loc["s5"], 200), mar
    for term, row in adjusted.drop(index="age").iterrows():
        assert _bias_ok(row, 200), (term, row)
        assert row["coverage"] >= 0.92, (term, row)


@pytest.mark.slow
def test_gmm1_mar_bias_is_the_single_gaussians_misspecification():
    """Where the GMM K=1 MAR bias on bill depth (the xfail above) comes from: the model, not the
    study or the pooling. The same MAR amputation (30% of rows, one column each) at n = 20,000
    rows per replication, the imputed-data estimate against the complete-data estimate of the
    same rows (what imputation adds, without the sampling noise): on penguins (three species;
    within a species deeper bills go with heavier birds, across species the heaviest, Gentoo,
    have the shallowest bills) a single Gaussian's linear conditionals impute bill depth with a
    systematic error where MAR removes it most, shifting its coefficient by about +5; on a
    Gaussian population with the penguins' mean and covariance, where K=1 is the true model,
    the shift is gone (numbers in /work/notes/impute4.md)."""
    population = ppgen.datasets.load("penguins")[PENGUIN_COLUMNS].dropna().reset_index(drop=True)
    mean, cov = population.mean().to_numpy(), population.cov().to_numpy()
    n, shift = 20_000, {"penguins": [], "gaussian": []}
    for r in range(3):
        rng = np.random.default_rng(100 + r)
        for name in shift:
            if name == "penguins":
                sample = population.iloc[rng.integers(0, len(population), n)]
                sample = sample.reset_index(drop=True)
            else:
                sample = pd.DataFrame(
                    rng.multivariate_normal(mean, cov, n), columns=PENGUIN_COLUMNS
                )
            amputed = ppgen.ampute(sample, 0.3, mechanism="MAR", seed=r)
            imputer = ppgen.Imputer("gmm", n_components=1, n_imputations=5, method="em", seed=r)
            pooled = ppgen.pool_fit(imputer.fit_transform(amputed), PENGUIN_ANALYSIS)
            complete = ppgen.pool_fit([sample, sample], PENGUIN_ANALYSIS)
            shift[name].append(pooled.estimate[2] - complete.estimate[2])  # bill_depth_mm
    assert min(shift["penguins"]) > 3, shift
    assert abs(np.mean(shift["gaussian"])) < 1.0, shift
