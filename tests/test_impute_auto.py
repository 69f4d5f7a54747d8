"""Imputer(model="auto") and Imputer.transform on rows never seen in fitting."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _clusters(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Three well-separated Gaussian clusters in 4 columns, 40% of the rows incomplete."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0, 0], [6, 6, 0, 0], [0, 6, 6, 6]], dtype=float)
    x = centers[rng.integers(0, 3, n)] + rng.normal(size=(n, 4))
    return ppgen.ampute(pd.DataFrame(x, columns=list("abcd")), 0.4, mechanism="MCAR", seed=seed)


def test_heldout_score_ranks_the_true_mixture_first():
    """The held-out CRPS (and the conditional log density) prefers the true K = 3 over K = 1
    and PPCA(1); every row and column keeps an observed cell; the hidden cells are seeded."""
    from ppgen.impute.auto import _hide, heldout_scores

    df = _clusters(200)
    grid = [
        ("gmm", {"n_components": 1}),
        ("gmm", {"n_components": 3}),
        ("ppca", {"n_components": 1}),
    ]
    table = heldout_scores(df, grid, seed=0, folds=1)
    assert table["crps"].idxmin() == 1  # the criterion
    assert table["heldout"].idxmax() == 1  # the log density agrees here
    hide = _hide(df, 0.1, 0)
    assert np.array_equal(hide, _hide(df, 0.1, 0)) and not np.array_equal(hide, _hide(df, 0.1, 1))
    assert abs(hide.sum() / df.notna().to_numpy().sum() - 0.1) < 0.03
    assert (df.notna().to_numpy() & ~hide).any(axis=1).all()
    assert not (hide & df.isna().to_numpy()).any()


@pytest.mark.slow
def test_auto_picks_the_true_mixture_and_refits_it():
    df = _clusters()
    imp = ppgen.Imputer("auto", n_imputations=3, method="em", seed=0).fit(df)
    table = imp.selection_
    assert len(table) == 5 + 3  # GMM K = 1-4, 6; PPCA q = 1, 2, 3 on 4 columns
    assert table["heldout"].notna().all() and table["crps"].notna().all()
    assert table.loc[table["chosen"], "crps"].item() == table["crps"].min()
    assert imp.choice_ == ("gmm", {"n_components": 3})
    assert type(imp.fit_.model).__name__ == "GaussianMixture"
    # The refit is the chosen model fitted as a named Imputer would: same tables.
    named = ppgen.Imputer("gmm", n_components=3, n_imputations=3, method="em", seed=0).fit(df)
    for a, b in zip(imp.transform(df), named.transform(df), strict=True):
        pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="chooses the model's options"):
        ppgen.Imputer("auto", n_components=2).fit(df)


@pytest.mark.slow
def test_auto_on_a_mixed_table_tries_mixtures_only():
    rng = np.random.default_rng(1)
    n = 200
    g = rng.integers(0, 2, n)
    df = pd.DataFrame({"x": rng.normal(size=n) + 3 * g, "g": np.where(g, "u", "v")})
    df = ppgen.ampute(df, 0.3, mechanism="MCAR", seed=1)
    imp = ppgen.Imputer("auto", n_imputations=2, method="em").fit(df)
    assert set(imp.selection_["model"]) == {"gmm"}
    assert imp.choice_[1]["n_components"] >= 2


def test_crps_is_the_energy_form_of_its_definition():
    """_crps_sum against the O(M^2) definition: numeric cells in standard deviations, categorical
    cells with the 0/1 distance (half the Brier score of the draws' frequencies, made unbiased)."""
    from ppgen.impute.auto import _crps_sum

    rng = np.random.default_rng(0)
    n, m = 7, 6
    truth = pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(list("abc"), n)})
    draws = [
        pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(list("abc"), n)}) for _ in range(m)
    ]
    hide = rng.random((n, 2)) < 0.6
    expected = 0.0
    for i, j in zip(*np.nonzero(hide), strict=True):
        x = [d.iat[i, j] for d in draws]
        y = truth.iat[i, j]
        dist = (lambda a, b: abs(a - b) / 2.5) if j == 0 else (lambda a, b: float(a != b))
        pairs = sum(dist(a, b) for k, a in enumerate(x) for l, b in enumerate(x) if k != l)
        expected += np.mean([dist(a, y) for a in x]) - pairs / (2 * m * (m - 1))
    got = _crps_sum(truth, draws, hide, [True, False], [2.5, 1.0])
    assert got == pytest.approx(expected, abs=1e-12)
    # Categorical: (1/2) * (sum_k p_k^2 - 2 p_y + 1) with the unbiased sum of squares.
    g = [d.at[0, "g"] for d in draws]
    p = {v: g.count(v) / m for v in set(g)}
    one = np.zeros((n, 2), bool)
    one[0, 1] = True
    brier = 0.5 * (
        1 - 2 * p.get(truth.at[0, "g"], 0) + (m * sum(v * v for v in p.values()) - 1) / (m - 1)
    )
    assert _crps_sum(truth, draws, one, [True, False], [1.0, 1.0]) == pytest.approx(brier)


def _split(df: pd.DataFrame, share: float = 0.7) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = int(len(df) * share)
    return df.iloc[:cut], df.iloc[cut:]


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("gmm", {"n_components": 2, "method": "em"}),
        ("ppca", {"n_components": 2, "method": "em"}),
        pytest.param(
            "gmm",
            {"n_components": 2, "method": "svi", "fit_options": {"max_steps": 50}},
            marks=pytest.mark.slow,
        ),
        ("vae", {"n_latent": 2, "hidden": (8,), "fit_options": {"max_epochs": 3}}),
    ],
)
def test_transform_new_rows_without_refitting(model, options):
    """Rows never seen in fitting are imputed by the fitted model: the fit object and its
    parameters do not change, observed entries are kept, identical seeds give identical tables
    and other seeds other ones."""
    train, new = _split(_clusters(200, seed=4))
    imp = ppgen.Imputer(model, n_imputations=3, seed=0, **options).fit(train)
    fitted = imp.fit_
    before = {k: v.clone() for k, v in fitted.params.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no refit, hence no convergence warnings either
        tables = imp.transform(new)
    assert imp.fit_ is fitted
    for k, v in fitted.params.items():
        assert torch.equal(v, before[k])
    for table in tables:
        assert table.index.equals(new.index)
        assert table.notna().all().all()
        observed = new.notna()
        assert (table[observed] == new[observed]).sum().sum() == observed.sum().sum()
    for a, b in zip(tables, imp.transform(new), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert not tables[0].equals(imp.transform(new, seed=1)[0])
    # One new row alone gets the same kind of draw (no batch statistics leak in).
    row = new[new.isna().any(axis=1)].iloc[[0]]
    assert imp.transform(row)[0].notna().all().all()


def _real(name: str) -> pd.DataFrame:
    if name == "penguins":
        df = ppgen.datasets.load("penguins").dropna()
        return df.drop(columns=[c for c in ("year",) if c in df.columns]).reset_index(drop=True)
    return ppgen.datasets.load(name, label=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["breast_cancer", "wine", "penguins"])
def test_auto_is_within_two_percent_of_the_grids_best_rmse(name):
    """MCAR 20% of the cells; every grid candidate imputes (EM, m = 10) and is scored by the RMSE
    of its mean imputation on the masked numeric cells (standardized), averaged over the
    imputer's seeds 0-2; the candidate auto picks (without the truth) is within 2% of the best.

    The average over seeds: one seed's RMSE moves with the EM start and the draws by more than
    the 2% asked for (iris: GMM K=2 0.434/0.382/0.422 over seeds 0-2, K=3 0.430/0.422/0.384;
    penguins: K=4 0.463/0.453/0.448, K=6 0.449/0.440/0.460), so at one seed the test judged the
    seed as much as the choice. On penguins the held-out log density picked K=4, 1.0% from the
    best on this average (3.0% at seed 0); the held-out CRPS picks K=6, the best."""
    from ppgen.impute.auto import default_grid

    full = _real(name)
    numeric = [c for c in full.columns if pd.api.types.is_numeric_dtype(full[c].dtype)]
    rng = np.random.default_rng(0)
    hide = rng.random(full.shape) < 0.2
    masked = full.mask(hide)
    sd = full[numeric].std()

    def rmse(model: str, options: dict) -> float:
        values = []
        for seed in range(3):
            imputer = ppgen.Imputer(model, method="em", n_imputations=10, seed=seed, **options)
            tables = imputer.fit(masked).transform(masked)
            mean = sum(t[numeric].astype(float) for t in tables) / len(tables)
            err = ((mean - full[numeric]) / sd)[pd.DataFrame(hide, columns=full.columns)[numeric]]
            values.append(float(np.sqrt(np.nanmean(err.to_numpy() ** 2))))
        return float(np.mean(values))

    auto = ppgen.Imputer("auto", method="em", n_imputations=10, seed=0).fit(masked)
    grid = default_grid(len(full.columns), len(numeric) == len(full.columns))
    scores = {(m, o["n_components"]): rmse(m, o) for m, o in grid}
    picked = scores[(auto.choice_[0], auto.choice_[1]["n_components"])]
    best = min(scores.values())
    assert picked <= 1.02 * best, (auto.choice_, picked, best, scores)
