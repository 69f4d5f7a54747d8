"""ppgen.GenerativeClassifier: Bayes' rule over per-class densities, scikit-learn conventions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import ppgen
from ppgen.classify import GenerativeClassifier

torch.set_num_threads(1)


def wine() -> tuple[pd.DataFrame, np.ndarray]:
    data = ppgen.datasets.load("wine")
    return data.iloc[:, :5], data["target"].astype(str).to_numpy()


def qda_like() -> GenerativeClassifier:
    return GenerativeClassifier(
        ppgen.GaussianMixture(1, "full", reg_covar=0.0),
        fit_options={"dtype": torch.float64},
    )


def test_gaussian_classes_are_quadratic_discriminant_analysis():
    X, y = wine()
    ours = qda_like().fit(X, y)
    qda = QuadraticDiscriminantAnalysis(reg_param=0.0).fit(X.to_numpy(), y)
    assert list(ours.classes_) == list(qda.classes_)
    np.testing.assert_allclose(ours.class_prior_, qda.priors_, atol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X), qda.predict_proba(X.to_numpy()), atol=1e-6)
    assert (ours.predict(X) == qda.predict(X.to_numpy())).all()


def test_missing_features_are_marginalized_exactly_by_gaussian_classes():
    X, y = wine()
    ours = qda_like().fit(X, y)
    holed = X.copy()
    holed.iloc[:20, [1, 3]] = np.nan
    keep = [0, 2, 4]
    # QDA on the observed columns alone: the Gaussian marginals (same MLE means/covariances).
    qda = QuadraticDiscriminantAnalysis(reg_param=0.0).fit(X.iloc[:, keep].to_numpy(), y)
    np.testing.assert_allclose(
        ours.predict_proba(holed)[:20],
        qda.predict_proba(X.iloc[:20, keep].to_numpy()),
        atol=1e-6,
    )


def test_scikit_learn_conventions():
    X, y = wine()
    est = GenerativeClassifier(ppgen.GaussianMixture(1, "diag"), seed=3)
    params = est.get_params()
    assert params["seed"] == 3 and isinstance(params["model"], ppgen.GaussianMixture)
    twin = clone(est)
    assert twin.get_params()["seed"] == 3 and not hasattr(twin, "fits_")
    scores = cross_val_score(est, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    pipe = make_pipeline(FunctionTransformer(lambda t: t * 1.0), est).fit(X, y)
    assert pipe.score(X, y) > 0.8
    with pytest.raises(Exception, match="not fitted"):
        clone(est).predict(X)


def test_priors_and_conditional_sampling():
    X, y = wine()
    est = GenerativeClassifier(ppgen.GaussianMixture(1), priors=[1, 1, 2]).fit(X, y)
    np.testing.assert_allclose(est.class_prior_, [0.25, 0.25, 0.5])
    rows = est.sample(200, y="class_1", seed=0)
    assert list(rows.columns) == list(X.columns) and len(rows) == 200
    assert (est.predict(rows) == "class_1").mean() > 0.8  # rows look like their class
    Xs, ys = est.sample(50, seed=1)
    assert len(Xs) == 50 and set(ys) <= set(est.classes_)
    with pytest.raises(ValueError, match="one of the classes"):
        est.sample(3, y="nope")
    with pytest.raises(ValueError, match="priors must be 3 positive"):
        GenerativeClassifier(ppgen.GaussianMixture(1), priors=[1, 1]).fit(X, y)
    with pytest.raises(ValueError, match="at least two classes"):
        GenerativeClassifier(ppgen.GaussianMixture(1)).fit(X, ["a"] * len(X))


@pytest.mark.filterwarnings("ignore::ppgen.ConvergenceWarning")
def test_autoregressive_and_flow_classes():
    X, y = wine()
    X, y = X.iloc[::3], y[::3]
    options = {"max_epochs": 2}
    for model in (ppgen.Autoregressive(hidden=(8,)), ppgen.Flow("maf", hidden=(8,))):
        est = GenerativeClassifier(model, fit_options=options).fit(X, y)
        proba = est.predict_proba(X)
        assert proba.shape == (len(X), 3) and np.allclose(proba.sum(1), 1)
    holed = X.copy()
    holed.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="Impute first"):
        est.predict_proba(holed)


@pytest.mark.filterwarnings("ignore::ppgen.ConvergenceWarning")
def test_models_without_a_likelihood_use_the_iwae_bound():
    X, y = wine()
    X, y = X.iloc[::2], y[::2]
    est = GenerativeClassifier(
        ppgen.VAE(2, hidden=(8,)), fit_options={"max_epochs": 2}, bound_particles=5, seed=1
    ).fit(X, y)
    bounds = np.stack(
        [ppgen.evaluate.iwae(f, X, k=5, seed=1).per_row for f in est.fits_], 1
    ) + np.log(est.class_prior_)
    want = np.exp(bounds - bounds.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(est.predict_proba(X), want, atol=1e-10)
