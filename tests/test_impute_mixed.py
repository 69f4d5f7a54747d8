"""Mixed tables against R's mice (issue 21): the latent class / mixed Gaussian mixture imputer on
palmerpenguins, one setting of benchmarks/imputation_mixed.py, against R mice's numbers on the
same amputed table (committed constants: R is never run by the tests)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import statsmodels.formula.api as smf
import torch

import ppgen

torch.set_num_threads(1)

FORMULA = "body_mass_g ~ flipper_length_mm + bill_length_mm + bill_depth_mm + C(sex) + C(species)"
# R 4.2, mice 3.15.0, mice(data, m = 20, maxit = 10, seed = 1) with its defaults (pmm, logreg,
# polyreg) on the table amputed below (benchmarks/imputation_mixed.py --run-r, seed 0;
# results/imputation_mixed_penguins_runs.csv): categorical accuracy of imputation 1, numeric
# RMSE of imputation 1 (complete-data sd units), mean |pooled - complete| / complete-data se
# over the slopes.
MICE = {
    "MCAR": {"acc": 0.852174, "rmse": 0.571435, "bias_se": 1.040110},
    "MAR": {"acc": 0.845528, "rmse": 0.595911, "bias_se": 0.552653},
}


def _penguins_amputed(mechanism: str):
    df = ppgen.datasets.load("penguins").drop(columns="year").dropna().reset_index(drop=True)
    patterns = [list(p) for p in itertools.combinations(df.columns, 2)]
    seed = 100 * 0 + (mechanism == "MAR")
    return df, ppgen.ampute(df, 0.8, mechanism=mechanism, patterns=patterns, seed=seed)


def _scores(df, dm, tables):
    cats = ["species", "island", "sex"]
    nums = [c for c in df.columns if c not in cats]
    hits = total = 0
    for c in cats:
        miss = dm[c].isna().to_numpy()
        hits += int((tables[0][c].to_numpy()[miss] == df[c].to_numpy()[miss]).sum())
        total += int(miss.sum())
    errors = []
    for c in nums:
        miss = dm[c].isna().to_numpy()
        errors.append((tables[0][c].to_numpy()[miss] - df[c].to_numpy()[miss]) / df[c].std(ddof=0))
    complete = smf.ols(FORMULA, data=df).fit()
    pooled = ppgen.pool_fit(tables, FORMULA)
    names = [n for n in pooled.names if n != "Intercept"]
    idx = [pooled.names.index(n) for n in names]
    bias = np.abs(pooled.estimate[idx] - complete.params[names].to_numpy())
    return (
        hits / total,
        float(np.sqrt(np.mean(np.concatenate(errors) ** 2))),
        float((bias / complete.bse[names].to_numpy()).mean()),
    )


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", ["MCAR", "MAR"])
def test_latent_class_imputer_matches_mice_on_penguins(mechanism):
    """K = 6 (EM + bootstrap, m = 20): categorical accuracy within 0.02 of mice's, numeric RMSE
    within 0.03, the pooled slopes' mean bias within 0.2 complete-data se of mice's (measured:
    MCAR 0.865 / 0.583 / 0.97, MAR 0.846 / 0.583 / 0.17)."""
    df, dm = _penguins_amputed(mechanism)
    imputer = ppgen.Imputer("gmm", n_components=6, method="em", proper="bootstrap", seed=0)
    tables = imputer.set_params(n_imputations=20).fit(dm).transform(dm)
    acc, rmse, bias = _scores(df, dm, tables)
    ref = MICE[mechanism]
    assert acc >= ref["acc"] - 0.02, (acc, ref)
    assert rmse <= ref["rmse"] + 0.03, (rmse, ref)
    assert bias <= ref["bias_se"] + 0.2, (bias, ref)


@pytest.mark.slow
def test_default_two_component_mixture_loses_on_penguins():
    """Where ppgen loses (documented, not a goal): the Imputer's default mixture (K = 2) cannot
    carry sex and species through two classes -- the categorical columns are independent of the
    measurements within a class -- so its accuracy is far below mice's (measured 0.55)."""
    df, dm = _penguins_amputed("MCAR")
    tables = ppgen.Imputer(n_imputations=20, seed=0).fit(dm).transform(dm)
    acc, _, bias = _scores(df, dm, tables)
    assert acc < MICE["MCAR"]["acc"] - 0.2
    assert bias > MICE["MCAR"]["bias_se"] + 1.0
