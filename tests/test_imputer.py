"""ppgen.Imputer: completed tables against Fit.impute and the model's conditionals, the
scikit-learn protocol, the long format, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen

torch.set_num_threads(1)

MEASURED = ["Ozone", "Solar.R", "Wind", "Temp"]


@pytest.fixture(scope="module")
def airquality() -> pd.DataFrame:
    frame = ppgen.datasets.load("airquality")[[*MEASURED, "Month"]]
    return frame.set_axis([f"day{i}" for i in range(len(frame))])  # a non-default index


def _imputer(**kwargs) -> ppgen.Imputer:
    options = {"model": "gmm", "n_imputations": 3, "method": "map", "seed": 0}
    options["kinds"] = {"Month": "continuous"}
    return ppgen.Imputer(**(options | kwargs))


def test_tables_keep_observed_values_index_and_dtypes(airquality):
    tables = _imputer().fit_transform(airquality)
    assert isinstance(tables, list) and len(tables) == 3
    observed = airquality.notna().to_numpy()
    for table in tables:
        assert list(table.columns) == list(airquality.columns)
        assert table.index.equals(airquality.index)
        assert table.dtypes.equals(airquality.dtypes)  # Month stays int64
        assert not table.isna().to_numpy().any()
        np.testing.assert_array_equal(table.to_numpy()[observed], airquality.to_numpy()[observed])
    # The imputations differ from one another where values were missing.
    missing = ~observed[:, 0]
    assert not np.array_equal(tables[0]["Ozone"][missing], tables[1]["Ozone"][missing])


def test_tables_are_fit_impute_with_the_same_seed(airquality):
    # support=None: the model's own draws (the default also redraws rows outside [0, inf)).
    imputer = _imputer(seed=4, support=None).fit(airquality)
    fit = ppgen.fit(
        ppgen.GaussianMixture(2), airquality, method="map", seed=4, kinds={"Month": "continuous"}
    )
    expected = fit.impute(airquality, 3, seed=4)
    for got, want in zip(imputer.transform(airquality), expected, strict=True):
        np.testing.assert_allclose(got[MEASURED].to_numpy(), want[MEASURED].to_numpy())
    assert imputer.fit_.model.n_components == 2  # the documented default


def test_imputations_average_to_the_conditional_mean():
    """With a point fit, the mean of many imputations is PPCA's conditional mean E[x_m | x_o]."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 1))
    x = z @ np.array([[1.0, 0.8, -0.6]]) + 0.3 * rng.normal(size=(300, 3))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[np.isnan(x).all(1), 0] = 0.0
    imputer = ppgen.Imputer("ppca", n_components=1, n_imputations=400, method="map").fit(x)
    draws = np.stack(imputer.transform(x))  # (m, n, d)
    fit = imputer.fit_
    enc = fit.schema.encode(pd.DataFrame(x, columns=imputer.columns_))
    with torch.no_grad():
        mean, cov = fit.model.conditional(enc.x, enc.mask, dict(fit.params))
    scale = np.array([c.scale for c in fit.schema.columns])
    loc = np.array([c.loc for c in fit.schema.columns])
    mean = mean.numpy() * scale + loc
    sd = np.sqrt(np.diagonal(cov.numpy(), axis1=1, axis2=2)) * scale
    missing = np.isnan(x)
    err = (draws.mean(0) - mean)[missing] / (sd[missing] / np.sqrt(400))
    assert np.abs(err).max() < 5  # Monte-Carlo error of 400 draws
    np.testing.assert_allclose(draws.std(0)[missing], sd[missing], rtol=0.2)


def test_long_format_like_mice(airquality):
    imputer = _imputer().fit(airquality)
    long = imputer.transform(airquality, format="long")
    n, m = len(airquality), 3
    assert len(long) == n * (m + 1)
    assert list(long.columns) == [".imp", ".id", *airquality.columns]
    assert sorted(long[".imp"].unique()) == [0, 1, 2, 3]
    original = long[long[".imp"] == 0].drop(columns=[".imp", ".id"]).set_axis(airquality.index)
    pd.testing.assert_frame_equal(original, airquality)
    tables = imputer.transform(airquality)
    for j, table in enumerate(tables, start=1):
        part = long[long[".imp"] == j]
        assert list(part[".id"]) == list(airquality.index)
        pd.testing.assert_frame_equal(
            part.drop(columns=[".imp", ".id"]).set_axis(airquality.index), table
        )


def test_seed_makes_transform_reproducible(airquality):
    imputer = _imputer().fit(airquality)
    a, b = imputer.transform(airquality), imputer.transform(airquality)
    c = imputer.transform(airquality, seed=1)
    pd.testing.assert_frame_equal(a[0], b[0])
    assert not a[0].equals(c[0])


def test_default_method_is_proper_svi(airquality):
    imputer = ppgen.Imputer("ppca", n_imputations=4, seed=0)
    assert imputer.method == "svi"
    imputer.fit(airquality[MEASURED])
    assert imputer.fit_.method == "svi" and imputer.fit_.samples is not None
    assert imputer.fit_.info["n_steps"] > 1
    tables = imputer.transform(airquality[MEASURED])
    assert len(tables) == 4 and not any(t.isna().to_numpy().any() for t in tables)


def test_single_imputation_is_a_transformer_of_the_input_type(airquality):
    x = airquality[MEASURED].to_numpy()
    imputer = ppgen.Imputer("ppca", n_components=2, n_imputations=1, method="map")
    out = imputer.fit_transform(x)
    assert isinstance(out, np.ndarray) and out.shape == x.shape and out.dtype == np.float64
    observed = ~np.isnan(x)
    np.testing.assert_array_equal(out[observed], x[observed])
    frame = imputer.fit_transform(airquality[MEASURED])
    assert isinstance(frame, pd.DataFrame)
    tensor = imputer.fit_transform(torch.as_tensor(x))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64


def test_pipeline_with_linear_regression(airquality):
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    x = airquality[["Ozone", "Solar.R", "Wind"]].to_numpy()
    y = airquality["Temp"].to_numpy()
    imputer = ppgen.Imputer(model="ppca", n_components=2, n_imputations=1, method="map")
    pipe = make_pipeline(imputer, LinearRegression()).fit(x, y)
    assert np.isfinite(pipe.predict(x)).all()
    # The same numbers as imputing by hand, then regressing.
    completed = ppgen.Imputer("ppca", n_components=2, n_imputations=1, method="map").fit_transform(
        x
    )
    reference = LinearRegression().fit(completed, y)
    np.testing.assert_allclose(pipe[-1].coef_, reference.coef_)
    assert sklearn.base.clone(pipe)[0].get_params()["n_components"] == 2


def test_params_protocol_and_clone():
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    imputer = ppgen.Imputer("gmm", n_imputations=5, n_components=3, covariance_type="diag")
    params = imputer.get_params()
    assert params["n_components"] == 3 and params["covariance_type"] == "diag"
    assert params["n_imputations"] == 5 and params["method"] == "svi"
    copy = clone(imputer)
    assert copy is not imputer and copy.get_params() == params
    copy.set_params(n_components=4, seed=7)
    assert copy.get_params()["n_components"] == 4 and copy.seed == 7
    assert imputer.get_params()["n_components"] == 3
    assert "n_components=3" in repr(imputer)


def test_model_instance():
    x = np.random.default_rng(1).normal(size=(60, 3))
    x[::7, 1] = np.nan
    imputer = ppgen.Imputer(ppgen.PPCA(1), n_imputations=2, method="map").fit(x)
    assert imputer.fit_.model.n_components == 1
    with pytest.raises(ValueError, match="model options"):
        ppgen.Imputer(ppgen.PPCA(1), n_components=2, method="map").fit(x)


# -- bad input ----------------------------------------------------------------------------------


def _frame(rng_seed=0, n=40) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    frame.loc[::5, "a"] = np.nan
    return frame


def test_all_missing_column_is_an_error():
    frame = _frame().assign(d=np.nan)
    with pytest.raises(ValueError, match="column 'd' is entirely missing"):
        _imputer(kinds=None).fit(frame)


def test_single_observed_value_warns_and_imputes_it():
    frame = _frame().assign(d=np.nan)
    frame.loc[3, "d"] = 2.5
    with pytest.warns(UserWarning, match="column 'd' has a single distinct observed value"):
        imputer = _imputer(kinds=None).fit(frame)
    assert imputer.constant_ == {"d": 2.5} and imputer.modelled_ == ["a", "b", "c"]
    for table in imputer.transform(frame):
        assert (table["d"] == 2.5).all()
        assert not table["a"].isna().any()


def test_text_in_a_numeric_column_is_an_error():
    frame = _frame().astype({"b": object})
    frame.loc[4, "b"] = "n/a"
    with pytest.raises(ValueError, match=r"column 'b' holds numbers and text \('n/a'\)"):
        _imputer(kinds=None).fit(frame)
    imputer = _imputer(kinds=None).fit(_frame())
    with pytest.raises(ValueError, match="column 'b' holds numbers and text"):
        imputer.transform(frame)


def test_unseen_category_at_transform_is_an_error():
    frame = _frame().assign(g="x")  # constant: left out of the model, with a warning
    with pytest.warns(UserWarning, match="column 'g'"):
        imputer = _imputer(kinds=None).fit(frame)
    other = frame.assign(g=["x"] * 39 + ["y"])
    with pytest.raises(ValueError, match="unseen category 'y' in column 'g'"):
        imputer.transform(other)


def test_other_errors():
    frame = _frame()
    with pytest.raises(ValueError, match="not fitted"):
        _imputer().transform(frame)
    imputer = _imputer(kinds=None).fit(frame)
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        imputer.transform(frame[["a", "b"]])
    with pytest.raises(ValueError, match="format"):
        imputer.transform(frame, format="tall")
    with pytest.raises(ValueError, match="n_imputations"):
        _imputer(n_imputations=0).fit(frame)
    with pytest.raises(ValueError, match="model must be one of"):
        _imputer(model="kmeans").fit(frame)


def test_nullable_integer_column_is_rounded_back_to_its_dtype():
    frame = _frame()
    frame["n"] = pd.array([1, 2, None, 4] * 10, dtype="Int64")
    tables = _imputer(kinds={"n": "continuous"}).fit_transform(frame)
    observed = frame["n"].notna()
    for table in tables:
        assert table["n"].dtype == "Int64" and not table["n"].isna().any()
        assert (table["n"][observed] == frame["n"][observed]).all()
