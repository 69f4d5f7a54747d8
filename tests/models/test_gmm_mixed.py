"""GaussianMixture over mixed column kinds (a latent class model): closed forms against SciPy,
against its own Pyro model, EM, imputation and recovery of known classes."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from scipy import stats
from scipy.special import logsumexp
from sklearn.metrics import adjusted_rand_score

import ppgen
from ppgen.data import Schema
from ppgen.testing.stationary import pyro_log_joint_and_gradient

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    """Penguins with a binary column added (heavy, missing where body mass is)."""
    df = ppgen.datasets.load("penguins").copy()
    df["heavy"] = (df["body_mass_g"] > 4200).astype("boolean").mask(df["body_mass_g"].isna())
    return df


def _built(df, K, cov_type, **kwargs):
    # year as a count column: penguins' year is ordinal by default since issue 12, and these
    # closed-form checks want one column of every kind.
    schema = Schema.infer(df, kinds={"year": "count"} if "year" in df else None)
    kwargs.setdefault("prior", "default")  # the closed forms of the MAP objective
    model = ppgen.GaussianMixture(K, cov_type, **kwargs).build(schema)
    enc = schema.encode(df, dtype=torch.float64)
    return model.to(dtype=torch.float64), schema, enc.x, enc.mask


def _random_params(model, schema, cov_type, rng):
    K = model.n_components
    d = len(schema.positions("continuous"))
    covs = []
    for _ in range(K):
        a = rng.normal(size=(d, d))
        covs.append(a @ a.T / d + 0.5 * np.eye(d))
    covs = np.array(covs)
    if cov_type == "diag":
        covs = np.array([np.diag(np.diag(c)) for c in covs])
        prec = 1 / np.diagonal(covs, axis1=1, axis2=2)
    else:
        prec = np.linalg.inv(covs)
    params = {
        "weights": rng.dirichlet(np.ones(K)),
        "locs": rng.normal(size=(K, d)),
        "precision": prec,
    }
    counts = schema.positions("count")
    params["rates"] = rng.uniform(1990, 2020, size=(K, len(counts)))
    params["probs"] = rng.uniform(0.1, 0.9, size=(K, len(schema.positions("binary"))))
    for j in schema.positions("categorical"):
        column = schema.columns[j]
        params[f"probs[{column.name}]"] = rng.dirichlet(np.ones(column.n_categories), size=K)
    if "concentration" in model.global_sites:
        params["concentration"] = rng.uniform(0.5, 50, size=(K, len(counts)))
    params = {k: torch.tensor(v) for k, v in params.items()}
    assert set(params) == set(model.global_sites)
    return params, covs


def _scipy_log_prob(x, mask, schema, params, covs):
    """logsumexp over classes of log weight + MVN of the observed continuous entries + log pmfs."""
    x, mask = x.numpy(), mask.numpy()
    p = {k: v.numpy() for k, v in params.items()}
    cont = list(schema.positions("continuous"))
    counts = list(schema.positions("count"))
    binary = list(schema.positions("binary"))
    out = []
    for i in range(x.shape[0]):
        terms = []
        for k in range(len(p["weights"])):
            t = np.log(p["weights"][k])
            o = mask[i, cont]
            if o.any():
                xo = x[i, cont][o]
                t += stats.multivariate_normal(p["locs"][k][o], covs[k][np.ix_(o, o)]).logpdf(xo)
            for c, j in enumerate(counts):
                if mask[i, j] and "concentration" in p:
                    r, m = p["concentration"][k, c], p["rates"][k, c]
                    t += stats.nbinom(r, r / (r + m)).logpmf(x[i, j])
                elif mask[i, j]:
                    t += stats.poisson(p["rates"][k, c]).logpmf(x[i, j])
            for c, j in enumerate(binary):
                if mask[i, j]:
                    t += stats.bernoulli(p["probs"][k, c]).logpmf(x[i, j])
            for j in schema.positions("categorical"):
                if mask[i, j]:
                    t += np.log(p[f"probs[{schema.names[j]}]"][k, int(x[i, j])])
            terms.append(t)
        out.append(logsumexp(terms))
    return np.array(out)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_log_prob_equals_scipy_per_row(penguins, cov_type, rng):
    model, schema, x, mask = _built(penguins, 3, cov_type)
    assert {schema.columns[j].kind for j in range(len(schema))} == {
        "continuous",
        "count",
        "binary",
        "categorical",
    }
    assert not bool(mask.all())  # real missing values, in continuous and categorical columns
    params, covs = _random_params(model, schema, cov_type, rng)
    got = model.log_prob(x, mask, params).numpy()
    np.testing.assert_allclose(got, _scipy_log_prob(x, mask, schema, params, covs), atol=1e-6)
    # Memberships are the normalized terms.
    proba = model.predict_proba(x, mask, params)
    assert torch.allclose(proba.sum(-1), torch.ones(len(x), dtype=torch.float64))


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_pyro_model_log_joint_equals_closed_form(penguins, cov_type, rng):
    model, schema, x, mask = _built(penguins, 3, cov_type)
    params, _ = _random_params(model, schema, cov_type, rng)
    conditioned = poutine.condition(model.model, data=params)
    pyro_log_joint = -TraceEnum_ELBO(max_plate_nesting=1).loss(
        conditioned, lambda *a, **k: None, x, mask
    )
    assert pyro_log_joint == pytest.approx(model.log_joint(x, mask, params).item(), abs=1e-7)


def test_sites_only_for_the_kinds_present(penguins):
    model, schema, _, _ = _built(penguins, 2, "full")
    assert model.global_sites == (
        "weights",
        "locs",
        "precision",
        "rates",
        "probs",
        "probs[species]",
        "probs[island]",
        "probs[sex]",
    )
    labels = penguins[["species", "island", "sex"]]
    only_labels = ppgen.GaussianMixture(2).build(Schema.infer(labels))
    assert only_labels.global_sites == (
        "weights",
        "probs[species]",
        "probs[island]",
        "probs[sex]",
    )
    continuous = ppgen.GaussianMixture(2).build(Schema.infer(penguins[["bill_length_mm"]]))
    assert continuous.global_sites == ("weights", "locs", "precision")


def test_n_parameters_counts_every_kind(penguins):
    model, _, _, _ = _built(penguins, 3, "full")
    d = 4  # continuous columns
    gaussian = 3 * (d + d * (d + 1) // 2)
    others = 3 * (1 + 1 + (3 - 1) + (3 - 1) + (2 - 1))  # year, heavy, species, island, sex
    assert model.n_parameters() == gaussian + 2 + others
    diag, _, _, _ = _built(penguins, 3, "diag")
    assert diag.n_parameters() == 3 * 2 * d + 2 + others


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_em_is_monotone_and_stops_at_a_stationary_point_of_the_pyro_objective(penguins, cov_type):
    fit = ppgen.fit(
        ppgen.GaussianMixture(3, cov_type, prior="default"),
        penguins,
        method="em",
        tol=1e-10,
        max_steps=3000,
        dtype=torch.float64,
        progress=False,
    )
    assert np.all(np.diff(-fit.losses) >= -1e-9 * np.abs(fit.losses[:-1]))
    log_joint, gradient = pyro_log_joint_and_gradient(fit)
    assert gradient < 1e-3 * fit.train.x.shape[0]
    assert float(log_joint) == pytest.approx(-fit.losses[-1], rel=1e-9)


def test_full_covariance_em_with_partially_observed_continuous_rows_is_stationary(penguins):
    """Missing-data EM (conditional moments of the missing continuous entries) on a mixed table
    reaches a stationary point of the Pyro model's log joint."""
    df = penguins.copy()
    rng = np.random.default_rng(7)
    for name in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm"):
        df.loc[rng.random(len(df)) < 0.15, name] = np.nan
    fit = ppgen.fit(
        ppgen.GaussianMixture(2, prior="default"),
        df,
        method="em",
        tol=1e-10,
        max_steps=3000,
        progress=False,
    )
    assert np.all(np.diff(-fit.losses) >= -1e-9 * np.abs(fit.losses[:-1]))
    log_joint, gradient = pyro_log_joint_and_gradient(fit)
    assert gradient < 1e-3 * fit.train.x.shape[0]
    assert float(log_joint) == pytest.approx(-fit.losses[-1], rel=1e-9)


def test_negative_binomial_counts_log_prob_and_map(penguins, rng):
    model, schema, x, mask = _built(penguins, 2, "diag", count_family="negbinomial")
    assert "concentration" in model.global_sites
    params, covs = _random_params(model, schema, "diag", rng)
    got = model.log_prob(x, mask, params).numpy()
    np.testing.assert_allclose(got, _scipy_log_prob(x, mask, schema, params, covs), atol=1e-6)
    model = ppgen.GaussianMixture(2, count_family="negbinomial")
    year = {"year": "count"}  # see _built
    with pytest.raises(ValueError, match="negbinomial"):
        ppgen.fit(model, penguins, method="em", kinds=year, progress=False)
    fit = ppgen.fit(model, penguins, method="map", max_steps=30, kinds=year, progress=False)
    assert fit.params["concentration"].shape == (2, 1)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_clusters_recover_species(penguins, cov_type):
    fit = ppgen.fit(ppgen.GaussianMixture(3, cov_type), penguins, method="em", progress=False)
    ari = adjusted_rand_score(penguins["species"].cat.codes, fit.predict(penguins))
    assert ari > 0.5, ari


def test_impute_gives_valid_values_and_keeps_observed(penguins, rng):
    df = penguins.copy()
    df["year"] = df["year"].astype("Int64")
    rows = rng.choice(len(df), size=40, replace=False)
    df.loc[df.index[rows[:20]], "year"] = pd.NA
    df.loc[df.index[rows[10:30]], "island"] = np.nan
    df.loc[df.index[rows[25:]], "species"] = np.nan
    fit = ppgen.fit(ppgen.GaussianMixture(3, "diag"), df, method="em", progress=False)
    tables = fit.impute(df, n_imputations=3, seed=0)
    for table in tables:
        assert list(table.columns) == list(df.columns)
        assert table.notna().all().all()
        for name in ("species", "island", "sex"):
            assert isinstance(table[name].dtype, pd.CategoricalDtype)
            assert list(table[name].cat.categories) == list(df[name].cat.categories)
            assert table[name].isin(df[name].cat.categories).all()
        years = table["year"].to_numpy(dtype=float)
        assert np.all(years >= 0) and np.all(years == np.round(years))
        assert table["year"].dtype == df["year"].dtype
        # Drawn from rates near 2008: plausible counts, not garbage.
        assert np.all(np.abs(years - 2008) < 250)
        assert table["heavy"].isin([True, False]).all()
        observed = df.notna()
        for name in df.columns:
            o = observed[name].to_numpy()
            assert (table[name][o].to_numpy() == df[name][o].to_numpy()).all()
    # Different imputations differ where something is missing.
    assert not tables[0]["year"].equals(tables[1]["year"])


def _simulate(n, rng):
    """Two known classes over continuous, count, binary and categorical columns."""
    truth = {
        "weights": np.array([0.35, 0.65]),
        "means": np.array([[-2.0, 1.0], [2.0, 3.0]]),
        "rates": np.array([1.5, 6.0]),
        "probs": np.array([0.2, 0.75]),
        "colour": np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]]),
    }
    z = rng.choice(2, size=n, p=truth["weights"])
    cov = np.array([[1.0, 0.5], [0.5, 2.0]])
    cont = truth["means"][z] + rng.multivariate_normal(np.zeros(2), cov, size=n)
    labels = np.array(["red", "green", "blue"])
    colour = [labels[rng.choice(3, p=truth["colour"][k])] for k in z]
    df = pd.DataFrame(
        {
            "a": cont[:, 0],
            "b": cont[:, 1],
            "visits": rng.poisson(truth["rates"][z]),
            "smoker": rng.random(n) < truth["probs"][z],
            "colour": pd.Categorical(colour, categories=labels),
        }
    )
    return df, z, truth


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_recovers_parameters_of_simulated_mixed_data(cov_type, rng):
    df, z, truth = _simulate(4000, rng)
    df.loc[rng.random(len(df)) < 0.05, "visits"] = np.nan
    df["visits"] = df["visits"].astype("Int64")
    df.loc[rng.random(len(df)) < 0.05, "colour"] = np.nan
    fit = ppgen.fit(ppgen.GaussianMixture(2, cov_type), df, method="em", seed=1, progress=False)
    est = fit.model.describe(fit.params, fit.schema)
    # Label switching: align by the first continuous mean.
    order = np.argsort(est["means"][:, 0].numpy())
    est = {k: v.numpy()[order] for k, v in est.items()}
    np.testing.assert_allclose(est["weights"], truth["weights"], atol=0.03)
    np.testing.assert_allclose(est["means"], truth["means"], atol=0.15)
    np.testing.assert_allclose(est["rates"][:, 0], truth["rates"], rtol=0.1)
    np.testing.assert_allclose(est["probs"][:, 0], truth["probs"], atol=0.05)
    np.testing.assert_allclose(est["probs[colour]"], truth["colour"], atol=0.05)
    if cov_type == "full":
        np.testing.assert_allclose(est["covariances"][0], [[1.0, 0.5], [0.5, 2.0]], atol=0.2)
    assert adjusted_rand_score(z, fit.predict(df)) > 0.9
    # The summary labels categorical probabilities by category and counts by column name.
    index = fit.summary().index
    assert "probs[colour][0, green]" in index and "rates[0, visits]" in index


def test_sample_draws_valid_rows_with_the_fitted_frequencies(rng):
    df, _, truth = _simulate(2000, rng)
    fit = ppgen.fit(ppgen.GaussianMixture(2, "diag"), df, method="em", seed=1, progress=False)
    torch.manual_seed(0)
    x = fit.model.sample(20000, fit.params)
    schema = fit.schema
    colour = x[:, schema.names.index("colour")].numpy()
    visits = x[:, schema.names.index("visits")].numpy()
    smoker = x[:, schema.names.index("smoker")].numpy()
    assert set(np.unique(colour)) <= {0.0, 1.0, 2.0} and set(np.unique(smoker)) <= {0.0, 1.0}
    assert np.all(visits >= 0) and np.all(visits == np.round(visits))
    w = truth["weights"]
    assert visits.mean() == pytest.approx(w @ truth["rates"], rel=0.05)
    assert smoker.mean() == pytest.approx(w @ truth["probs"], abs=0.02)
    freq = np.bincount(colour.astype(int), minlength=3) / len(colour)
    np.testing.assert_allclose(freq, w @ truth["colour"], atol=0.02)
    table = fit.sample(50, seed=0)
    assert isinstance(table["colour"].dtype, pd.CategoricalDtype)


def test_conditional_covers_the_continuous_columns(penguins, rng):
    model, schema, x, mask = _built(penguins, 3, "full")
    params, _ = _random_params(model, schema, "full", rng)
    log_resp, mean, cov = model.conditional(x, mask, params)
    cont = list(schema.positions("continuous"))
    assert mean.shape == (len(x), 3, len(cont)) and cov.shape == (len(x), 3, len(cont), len(cont))
    assert torch.allclose(log_resp.exp(), model.predict_proba(x, mask, params))
    missing_rows = (~mask[:, cont]).all(-1)
    # A row with no continuous entry: its conditional is the component itself.
    locs = params["locs"].expand(int(missing_rows.sum()), -1, -1)
    assert torch.allclose(mean[missing_rows], locs)
    # Class posteriors use the observed categorical entries too.
    for i, k in itertools.product(np.flatnonzero(missing_rows.numpy()), range(3)):
        assert log_resp[i, k] != pytest.approx(float(params["weights"][k].log()))
