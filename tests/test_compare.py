"""ppgen.compare: ranking on data from a known mixture, budgets, errors, baselines, figure."""

from __future__ import annotations

import math
import time

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ppgen
from ppgen.comparison import BASELINES, COLUMNS, _Parzen, default_models
from ppgen.models import MODELS
from ppgen.models.registry import register_model, unregister_model

matplotlib.use("Agg")


def _three_component_gmm(n, seed=0):
    """4-D mixture whose component means differ on every coordinate (weights .5, .3, .2)."""
    rng = np.random.default_rng(seed)
    means = np.array([[5.0 * ((k + j) % 3 - 1) for j in range(4)] for k in range(3)])
    x = means[rng.choice(3, size=n, p=[0.5, 0.3, 0.2])] + rng.normal(size=(n, 4))
    return pd.DataFrame(x, columns=["a", "b", "c", "d"])


@pytest.fixture(scope="module")
def ranking():
    models = {
        "true (K=3)": ppgen.GaussianMixture(3),
        "K=2": ppgen.GaussianMixture(2),
        "one diagonal Gaussian": ppgen.GaussianMixture(1, "diag"),
        "independent": "independent",
    }
    return ppgen.compare(_three_component_gmm(1200), models, budget_s=None, progress=False)


def test_heldout_nats_rank_the_true_model_first(ranking):
    table = ranking.table
    assert list(table.columns) == list(COLUMNS)
    assert table["model"].iloc[0] == "true (K=3)"
    assert (table["status"] == "ok").all()
    exact = table.set_index("model")["heldout_method"]
    assert (exact.drop("independent") == "exact").all()
    assert exact["independent"] == "n/a" and math.isnan(table["heldout_nats"].iloc[-1])
    bits = table["bits_per_dim"] * 4 * math.log(2.0)
    assert np.allclose(bits, -table["heldout_nats"], equal_nan=True)
    assert len(ranking.test) == 300 and len(ranking.train) == 900
    assert all(len(s) == 300 for s in ranking.samples.values())


def test_a_factorized_baseline_has_good_shape_and_is_detected(ranking):
    row = ranking.table.set_index("model").loc["independent"]
    assert row["shape"] > 0.9
    assert row["detection"] < 0.1 and row["c2st_p"] < 0.01
    true = ranking.table.set_index("model").loc["true (K=3)"]
    assert true["detection"] > 0.5 and true["trend"] > row["trend"]


def test_the_figure_has_a_row_per_model(ranking):
    fig = ranking.figure(columns=["a"])
    assert fig.axes[0].get_gridspec().get_geometry() == (4, 2)
    text = str(ranking)
    assert "verdicts:" in text and "exact likelihood; fast sampling" in text


def test_every_row_family_is_in_the_default_set():
    names = default_models()
    assert "HMM" not in names  # sequences, not table rows
    for name in MODELS:
        assert (name in names) != MODELS[name].sequential
    assert names[-len(BASELINES) :] == list(BASELINES)
    # A family registered later joins without any change to compare.
    register_model("LaterFamily", "ppgen.models.ppca:PPCA", alias="later")
    try:
        assert "LaterFamily" in default_models()
    finally:
        unregister_model("LaterFamily")


def test_a_family_over_budget_is_stopped_and_an_unfit_one_reported():
    data = _three_component_gmm(200)
    data["label"] = pd.Categorical(np.where(data["a"] > 0, "up", "down"))
    # A budget no fit can meet (a warm process fits this VAE in under a second), then a family
    # that fails: the first is stopped, the second reported, neither raises.
    start = time.perf_counter()
    over = ppgen.compare(data, ["vae"], budget_s=0.02, progress=False)
    assert time.perf_counter() - start < 30
    assert over.table.set_index("model").loc["vae", "status"] == "over budget"
    result = ppgen.compare(data, ["ppca"], budget_s=60.0, progress=False)
    rows = result.table.set_index("model")
    assert rows.loc["ppca", "status"] == "error"
    assert "continuous columns only" in rows.loc["ppca", "verdict"]
    assert result.samples == {}
    # The split is stratified by the label column.
    assert result.test["label"].value_counts(normalize=True).to_dict() == pytest.approx(
        data["label"].value_counts(normalize=True).to_dict(), abs=0.01
    )


def test_parzen_heldout_is_the_kernel_density_on_the_data_scale():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"u": rng.normal(3, 2, 50), "v": rng.normal(0, 1, 50)})
    test = pd.DataFrame({"u": rng.normal(3, 2, 7), "v": rng.normal(0, 1, 7)})
    parzen = _Parzen(train, seed=0)
    nats, method = parzen.heldout(test)
    h, scale = 50 ** (-1 / 6), train.to_numpy().std(axis=0)
    expected = np.mean(
        [
            np.log(
                np.mean(
                    [np.prod(stats.norm.pdf(x, loc=c, scale=h * scale)) for c in train.to_numpy()]
                )
            )
            for x in test.to_numpy()
        ]
    )
    assert nats == pytest.approx(expected, abs=1e-10)
    assert method.startswith("exact (KDE")


def test_parzen_on_labels_and_missing_entries_is_the_product_kernel_marginal():
    train = pd.DataFrame({"v": [0.0, 1.0, 3.0, 4.0], "c": pd.Categorical(["a", "b", "a", "c"])})
    test = pd.DataFrame({"v": [0.5, np.nan, 2.0], "c": pd.Categorical(["a", "c", None])})
    parzen = _Parzen(train, seed=0)
    h = 4 ** (-1 / 6)
    lam, scale = h * 2 / 3, train["v"].std(ddof=0)

    def label_kernel(x, centre):
        return 1.0 if x is None else (1 - lam if x == centre else lam / 2)

    def number_kernel(x, centre):
        return 1.0 if np.isnan(x) else stats.norm.pdf(x, loc=centre, scale=h * scale)

    expected = np.mean(
        [
            np.log(
                np.mean(
                    [
                        number_kernel(x, cv) * label_kernel(c, cc)
                        for cv, cc in zip(train["v"], train["c"], strict=True)
                    ]
                )
            )
            for x, c in zip(test["v"], [("a"), ("c"), None], strict=True)
        ]
    )
    nats, _ = parzen.heldout(test)
    assert nats == pytest.approx(expected, abs=1e-10)
    sample = parzen.sample(2000, seed=0)
    assert sample.dtypes.to_dict() == train.dtypes.to_dict()
    # Each label stays with probability 1 - lam: a's share is (2 (1 - lam) + 2 lam / 2) / 4.
    share = (sample["c"] == "a").mean()
    assert share == pytest.approx((2 * (1 - lam) + 2 * lam / 2) / 4, abs=0.035)


def test_bad_arguments_name_the_problem():
    data = _three_component_gmm(100)
    with pytest.raises(ValueError, match="test_size"):
        ppgen.compare(data, ["gmm"], test_size=1.5)
    with pytest.raises(ValueError, match="unknown model 'nosuch'"):
        ppgen.compare(data, ["nosuch"])  # was 'gan', registered since issue 16
    with pytest.raises(ValueError, match="budget_s"):
        ppgen.compare(data, ["gmm"], budget_s=0)


def test_cli_writes_the_table_and_the_figure(tmp_path, capsys):
    from ppgen.cli import main

    data = tmp_path / "mixture.csv"
    _three_component_gmm(200).to_csv(data, index=False)
    table, figure = tmp_path / "table.csv", tmp_path / "compare.png"
    argv = [str(data), "--models", "independent,parzen", "--quiet", "-o", str(table)]
    assert main(["compare", *argv, "--figure", str(figure), "--budget", "60"]) == 0
    out = capsys.readouterr().out
    assert "150 training rows, 50 held out" in out and "verdicts:" in out
    written = pd.read_csv(table)
    assert list(written.columns) == list(COLUMNS)
    assert set(written["model"]) == {"independent columns", "Parzen window (KDE)"}
    assert figure.stat().st_size > 0
    assert main(["compare", str(data), "--models", "nosuch"]) == 2  # was 'gan' (now registered)
    assert "unknown model 'nosuch'" in capsys.readouterr().err
    assert main(["compare", str(data), "--test-size", "2"]) == 2


@pytest.mark.slow
def test_compare_runs_end_to_end_on_penguins_with_the_defaults():
    result = ppgen.compare(ppgen.datasets.load("penguins"), progress=False)
    table = result.table.set_index("model")
    assert len(table) == len(default_models())
    assert (table["status"].isin(["ok", "error"])).all()
    assert table.loc["independent columns", "status"] == "ok"
    assert table.loc["Parzen window (KDE)", "heldout_method"].startswith("exact (KDE")
    ok = table[table["status"] == "ok"]
    assert ok["heldout_method"].iloc[0] in ("exact", "IWAE k=100 (bound)")
    assert result.figure() is not None


def test_compare_help_has_examples_and_imports_no_torch():
    import subprocess
    import sys

    probe = (
        "from ppgen.cli import main\n"
        "assert main(['compare', '--help']) == 0\n"
        "import sys\nprint('torch' in sys.modules, 'pandas' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "examples:\n  ppgen compare" in result.stdout
    assert result.stdout.splitlines()[-1] == "False False"


def test_samples_the_metrics_cannot_read_make_an_error_row(monkeypatch):
    from ppgen import comparison

    class NewLabel(comparison._Independent):
        label = "new label"

        def sample(self, n, seed):
            return super().sample(n, seed).assign(c=pd.Categorical(["zzz"] * n))

    monkeypatch.setitem(comparison.BASELINES, "new_label", NewLabel)
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {"a": rng.normal(size=200), "c": pd.Categorical(rng.choice(["x", "y"], 200))}
    )
    table = ppgen.compare(data, ["new_label", "independent"], budget_s=None, progress=False).table
    row = table.set_index("model").loc["new label"]
    assert row["status"] == "error" and "unseen category 'zzz'" in row["verdict"]
    assert table["status"].tolist() == ["ok", "error"]
