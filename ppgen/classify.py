"""Generative classification: one density model per class and Bayes' rule, as a scikit-learn
classifier.

Needs scikit-learn (the ``data`` extra), whose estimator base classes give ``get_params``,
``set_params``, ``clone``, ``Pipeline`` and ``cross_val_score`` support.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from ppgen.data.schema import Schema
from ppgen.evaluate import iwae
from ppgen.infer import Fit, fit
from ppgen.models.base import GenerativeModel

__all__ = ["GenerativeClassifier"]


def _rows(X: Any, index: np.ndarray) -> Any:
    if isinstance(X, pd.DataFrame):
        return X.iloc[index]
    return X[index]


class GenerativeClassifier(ClassifierMixin, BaseEstimator):
    """Classify with one generative model per class: ``p(y = c | x) ∝ π_c p(x | y = c)``.

    :meth:`fit` fits a copy of ``model`` to the rows of each class (``ppgen.fit``, one schema
    inferred from all rows so every class encodes alike) and estimates the class priors ``π_c``
    by the class frequencies (or takes ``priors``). :meth:`predict_proba` applies Bayes' rule to
    the class-conditional log densities on the data's own scale:

    * models with an exact likelihood (``GaussianMixture``, ``PPCA``, ``Autoregressive``,
      ``Flow`` on continuous columns) use ``Fit.log_prob``. Missing features are marginalized
      where the family does it (the Gaussian models exactly; ``Autoregressive`` exactly for
      trailing columns and by a likelihood-weighting estimate otherwise); ``Flow`` refuses
      them, and for discrete columns its figure is a dequantization lower bound;
    * deep latent-variable models without one (``VAE``, ``HierarchicalVAE``) use the IWAE lower
      bound with ``bound_particles`` samples (:func:`ppgen.evaluate.iwae`), so their
      probabilities compare bounds, not likelihoods.

    With ``GaussianMixture(1, "full", reg_covar=0)`` this is quadratic discriminant analysis
    with maximum-likelihood covariances.

    Parameters
    ----------
    model : GenerativeModel
        An unfitted model, copied for each class.
    method : str, optional
        ``ppgen.fit``'s method (default: the model's own).
    priors : array-like, optional
        Class priors in the order of ``classes_`` (default: class frequencies).
    seed : int
        Seed of every fit (and of the bounds).
    fit_options : dict, optional
        Further ``ppgen.fit`` options (engine options, ``kinds``, ``standardize`` ...).
    bound_particles : int
        Importance samples of the IWAE bound, for models without an exact likelihood.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    class_prior_ : ndarray
        The priors used.
    fits_ : list of Fit
        The fit of each class.
    schema_ : Schema
        The shared encoding.
    """

    def __init__(
        self,
        model: GenerativeModel,
        *,
        method: str | None = None,
        priors: Any = None,
        seed: int = 0,
        fit_options: dict[str, Any] | None = None,
        bound_particles: int = 100,
    ) -> None:
        self.model = model
        self.method = method
        self.priors = priors
        self.seed = seed
        self.fit_options = fit_options
        self.bound_particles = bound_particles

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any) -> GenerativeClassifier:
        """Fit one model per class of ``y`` to the rows of ``X`` (a table ppgen can encode)."""
        if not isinstance(self.model, GenerativeModel):
            raise ValueError(f"model must be a ppgen model, got {type(self.model).__name__}")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y must be one label per row of X ({len(X)}), got shape {y.shape}")
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y must hold at least two classes, got {list(classes)}")
        options = dict(self.fit_options or {})
        kinds, standardize = options.pop("kinds", None), options.pop("standardize", None)
        if standardize is None:
            standardize = self.model.standardize
        schema = Schema.infer(
            X, kinds=kinds, standardize=standardize, supported=self.model.supported_kinds
        )
        counts = np.bincount(codes, minlength=len(classes))
        if self.priors is None:
            prior = counts / counts.sum()
        else:
            prior = np.asarray(self.priors, dtype=float)
            if prior.shape != (len(classes),) or np.any(prior <= 0):
                raise ValueError(
                    f"priors must be {len(classes)} positive numbers (classes {list(classes)}), "
                    f"got {self.priors!r}"
                )
            prior = prior / prior.sum()
        self.fits_: list[Fit] = [
            fit(
                copy.deepcopy(self.model),
                _rows(X, np.flatnonzero(codes == c)),
                method=self.method,
                seed=self.seed,
                schema=schema,
                progress=False,
                **options,
            )
            for c in range(len(classes))
        ]
        self.classes_, self.class_prior_, self.schema_ = classes, prior, schema
        self.n_features_in_ = len(schema)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "fits_"):
            raise NotFittedError("GenerativeClassifier is not fitted yet; call fit(X, y)")

    def class_log_likelihood(self, X: Any) -> np.ndarray:
        """``log p(x | y = c)`` of each row and class, ``(n, n_classes)``, data scale: exact
        where the family has it, else the IWAE bound (see the class docstring)."""
        self._check_fitted()
        columns = []
        for f in self.fits_:
            if type(f.model).implements("log_prob"):
                columns.append(f.log_prob(X))
            else:
                columns.append(iwae(f, X, k=self.bound_particles, seed=self.seed).per_row)
        return np.stack(columns, 1)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log p(y = c | x)``, ``(n, n_classes)``."""
        joint = torch.as_tensor(self.class_log_likelihood(X) + np.log(self.class_prior_))
        return (joint - joint.logsumexp(1, keepdim=True)).numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """``p(y = c | x)``, ``(n, n_classes)``, columns in the order of ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        self._check_fitted()
        return self.classes_[self.predict_log_proba(X).argmax(1)]

    def sample(self, n: int, y: Any = None, *, seed: int = 0) -> Any:
        """``n`` rows of class ``y`` (conditional generation), in the fitted data's form; with
        ``y=None``, ``(X, y)``: classes drawn from the priors, then rows from their models."""
        self._check_fitted()
        if y is not None:
            where = np.flatnonzero(self.classes_ == y)
            if not len(where):
                raise ValueError(f"y must be one of the classes {list(self.classes_)}, got {y!r}")
            return self.fits_[int(where[0])].sample(n, seed=seed)
        rng = np.random.default_rng(seed)
        labels = rng.choice(len(self.classes_), size=int(n), p=self.class_prior_)
        parts, order = [], []
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            parts.append(self.fits_[c].sample(len(rows), seed=seed + 1 + int(c)))
            order.append(rows)
        inverse = np.argsort(np.concatenate(order))
        if isinstance(parts[0], pd.DataFrame):
            X = pd.concat(parts, ignore_index=True).iloc[inverse].reset_index(drop=True)
        elif isinstance(parts[0], torch.Tensor):
            X = torch.cat(parts)[torch.as_tensor(inverse)]
        else:
            X = np.concatenate(parts)[inverse]
        return X, self.classes_[labels]
