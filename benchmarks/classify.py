"""Generative classification (issue 17): ppgen.GenerativeClassifier against QDA and logistic
regression on penguins and wine, complete and with 20% of the features missing.

    python benchmarks/classify.py            # 5-fold CV, one repetition (about 10 minutes)
    python benchmarks/classify.py --quick    # 3-fold CV, 1 repetition, prints only

Accuracy by stratified K-fold cross-validation (scikit-learn's ``cross_val_score``, the same
folds for every method). With missing features, 20% of the feature entries of every row set
are deleted completely at random (seeded), in training and test folds alike; the generative
classifiers marginalize them (exact for the Gaussian models), QDA and logistic regression get
scikit-learn's mean imputation in a Pipeline. Writes ``benchmarks/results/classify.md``/``.csv``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads, write_table  # noqa: E402

pin_threads(1)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import ppgen  # noqa: E402
from ppgen.classify import GenerativeClassifier  # noqa: E402

MISSING = 0.2


def data_sets() -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    penguins = ppgen.datasets.load("penguins")
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    penguins = penguins.dropna(subset=numeric)
    wine = ppgen.datasets.load("wine")
    return {
        "penguins (4 measurements)": (
            penguins[numeric].reset_index(drop=True),
            penguins["species"].astype(str).to_numpy(),
        ),
        "wine (13 measurements)": (
            wine.drop(columns="target"),
            wine["target"].astype(str).to_numpy(),
        ),
    }


def methods(quick: bool) -> dict[str, object]:
    epochs = {"max_epochs": 20 if quick else 100}
    return {
        "ppgen: Gaussian per class (GaussianMixture(1, full))": GenerativeClassifier(
            ppgen.GaussianMixture(1, "full")
        ),
        "ppgen: Gaussian per class, reg_covar=0.01": GenerativeClassifier(
            ppgen.GaussianMixture(1, "full", reg_covar=0.01)
        ),
        "ppgen: GaussianMixture(2, diag) per class": GenerativeClassifier(
            ppgen.GaussianMixture(2, "diag")
        ),
        "ppgen: Autoregressive(hidden=(16,), components=2) per class": GenerativeClassifier(
            ppgen.Autoregressive(hidden=(16,), components=2), fit_options=epochs
        ),
        "scikit-learn QDA (reg_param=0.01)": make_pipeline(
            SimpleImputer(), QuadraticDiscriminantAnalysis(reg_param=0.01)
        ),
        "scikit-learn logistic regression": make_pipeline(
            SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=2000)
        ),
    }


def with_missing(X: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    holed = X.copy()
    holes = rng.random(X.shape) < fraction
    holes[holes.all(1), 0] = False  # keep one value in each row
    return holed.mask(holes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 folds, 1 repetition, print only")
    args = parser.parse_args()
    folds, repeats = (3, 1) if args.quick else (5, 1)
    rows = []
    for data_name, (X, y) in data_sets().items():
        for missing in (0.0, MISSING):
            for name, est in methods(args.quick).items():
                scores, t0 = [], time.perf_counter()
                for r in range(repeats):
                    Xr = with_missing(X, missing, seed=r) if missing else X
                    cv = StratifiedKFold(folds, shuffle=True, random_state=r)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        scores += list(cross_val_score(est, Xr, y, cv=cv))
                rows.append(
                    {
                        "data": data_name,
                        "missing": f"{missing:.0%}",
                        "method": name,
                        "accuracy": float(np.mean(scores)),
                        "sd over folds": float(np.std(scores, ddof=1)),
                        "seconds": time.perf_counter() - t0,
                    }
                )
                print(rows[-1])
    if args.quick:
        return
    notes = f"""
Accuracy: stratified {folds}-fold cross-validation ({repeats} repetition, shuffled with seed
0), mean and sd over the {folds * repeats} folds. "20%" deletes each
feature entry with probability 0.2 (seeded per repetition; at least one value kept per row)
before splitting. ppgen's classifiers fit one model per class on the rows of that class
(`ppgen.fit`, default method: EM for the mixtures, maximum likelihood by minibatch Adam with
early stopping for the autoregressive model) and apply Bayes' rule with the class frequencies as
priors; missing entries are marginalized by the model (exactly for the Gaussian mixtures; the
autoregressive model marginalizes trailing missing columns exactly and estimates the rest by
likelihood weighting, 100 draws). scikit-learn's methods get mean imputation first. The
Gaussian-per-class row is QDA with maximum-likelihood covariances (tests/test_classify.py checks
it equals scikit-learn's QDA with reg_param=0 to 1e-6); scikit-learn's QDA is run here with a
small ridge (reg_param=0.01), as it warns of collinear classes on wine otherwise; the
`reg_covar=0.01` row adds a ridge to ppgen's (in the data's units of variance, as
scikit-learn's GaussianMixture: negligible for the penguins' grams and millimetres). The
autoregressive model trains for at most 100 epochs per class and fold. One thread.
"""
    md, _ = write_table(
        "classify", rows, notes, title="Generative classification: penguins and wine"
    )
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
