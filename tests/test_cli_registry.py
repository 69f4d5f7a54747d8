"""The lazy registries and imports behind the ``ppgen`` command, labels and reprs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import ppgen
from ppgen.cli import main
from ppgen.models import MODELS, GaussianMixture, register_model, unregister_model

HEAVY = ("torch", "pyro", "pandas", "matplotlib")


def _imported_after(code: str) -> list[str]:
    """Heavy modules loaded by ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.splitlines()[-1].split()[1:]


@pytest.mark.parametrize("command", [[], ["fit"], ["score"], ["sample"], ["evaluate"], ["impute"]])
def test_help_imports_no_torch(command):
    code = (
        "from ppgen.cli import main\n"
        f"assert main([*{command!r}, '--help']) == 0\n"
        # Argument errors are as cheap as --help.
        "assert main(['fit', 'x.csv', '--model', 'nosuch', '-o', 'm']) == 2"  # 'gan' before #16
    )
    assert _imported_after(code) == []


def test_import_ppgen_and_model_names_load_no_torch():
    code = "import ppgen\nfrom ppgen.models import MODELS\nnames = list(MODELS)"
    assert _imported_after(code) == []
    assert "torch" in _imported_after("from ppgen import fit")


def test_lazy_package_keeps_its_names():
    # Sets, one line per issue: names may be added, never lost; order is the package's own.
    assert len(ppgen.__all__) == len(set(ppgen.__all__))
    assert set(ppgen.__all__) == {
        "HMM", "PPCA", "VAE", "ConvergenceWarning", "Fit", "GaussianMixture", "GenerativeModel",
        "HierarchicalVAE", "Imputer", "NonFiniteLossError", "Schema", "datasets", "evaluate",
        "fit", "guides", "load", "pool", "pool_fit", "plot",
        "FactorAnalysis", "select",  # issue 14
        "Autoregressive", "Flow", "GenerativeClassifier",  # issue 17
        "EBM", "RBM",  # issue 18
        "MCMCResult", "mcmc",  # issue 19
        "compare", "GAN",  # issue 16
        "Diffusion",  # issue 15
        "ampute", "tipping_point",  # issue 21
        "NotMIWAE",  # issue 21
    }  # fmt: skip
    assert set(ppgen.__all__) <= set(dir(ppgen))
    for name in ppgen.__all__:
        assert getattr(ppgen, name) is not None
    from ppgen.infer import fit

    assert ppgen.fit is fit
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        ppgen.nonsense  # noqa: B018


def test_registry_is_a_read_only_mapping_of_classes():
    wave1 = ["GaussianMixture", "HMM", "HierarchicalVAE", "PPCA", "VAE"]
    assert list(MODELS)[:5] == wave1  # registration order: wave 1 first
    assert set(MODELS) == {
        *wave1,
        "FactorAnalysis", "BayesianPCA",  # issue 14
        "Autoregressive", "Flow",  # issue 17
        "RBM", "EBM",  # issue 18
        "Diffusion",  # issue 15
        "GAN",  # issue 16
        "NotMIWAE",  # issue 21
    }  # fmt: skip
    assert MODELS["PPCA"] is ppgen.PPCA and "VAE" in MODELS and len(MODELS) == len(set(MODELS))
    assert dict(MODELS.aliases) == {
        "gmm": "GaussianMixture", "hmm": "HMM", "hvae": "HierarchicalVAE", "ppca": "PPCA",
        "vae": "VAE",
        "fa": "FactorAnalysis", "bpca": "BayesianPCA",  # issue 14
        "ar": "Autoregressive", "flow": "Flow",  # issue 17
        "rbm": "RBM", "ebm": "EBM",  # issue 18
        "diffusion": "Diffusion",  # issue 15
        "gan": "GAN",  # issue 16
        "notmiwae": "NotMIWAE",  # issue 21
    }  # fmt: skip
    assert MODELS.lookup("gmm") is GaussianMixture
    assert MODELS.target("hvae") == "ppgen.models.hvae:HierarchicalVAE"
    with pytest.raises(ValueError, match="unknown model 'nosuch'; known models: gmm"):
        MODELS.lookup("nosuch")  # was 'gan', registered since issue 16
    with pytest.raises(TypeError):
        MODELS["Other"] = GaussianMixture  # read-only
    with pytest.raises(ValueError, match="'ppca' is already registered"):
        register_model("PCA", "ppgen.models.ppca:PPCA", alias="ppca")
    with pytest.raises(ValueError, match="module:Class"):
        register_model("Broken", "ppgen.models.ppca.PPCA")


class TwoBumps(GaussianMixture):
    """A model registered by this test alone: saved, loaded and scored by the command."""

    def __init__(self, n_components: int = 2, covariance_type: str = "diag", **options) -> None:
        super().__init__(n_components, covariance_type, **options)


@pytest.fixture
def two_bumps():
    register_model("TwoBumps", f"{__name__}:TwoBumps", alias="bumps")
    yield
    unregister_model("TwoBumps")
    assert "TwoBumps" not in MODELS and "bumps" not in MODELS.aliases


def test_a_registered_model_saves_loads_and_scores(two_bumps, tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": np.r_[rng.normal(0, 1, 30), rng.normal(6, 1, 30)]})
    frame["b"] = rng.normal(size=60)
    csv, path = tmp_path / "d.csv", tmp_path / "m.ppgen"
    frame.to_csv(csv, index=False)
    fit = ppgen.fit(TwoBumps(), frame, method="em")
    fit.save(str(path))
    loaded = ppgen.load(str(path))
    assert type(loaded.model) is TwoBumps
    np.testing.assert_allclose(loaded.log_prob(frame), fit.log_prob(frame), atol=1e-10)
    assert main(["score", str(path), str(csv)]) == 0
    out = capsys.readouterr().out
    assert "TwoBumps(2, diag) by em" in out
    assert MODELS.lookup("bumps") is TwoBumps


@pytest.mark.parametrize(
    ("model", "label", "text"),
    [
        (
            GaussianMixture(2, "diag"),
            "GaussianMixture(2, diag)",
            "GaussianMixture(n_components=2, covariance_type='diag')",
        ),  # noqa: E501
        (GaussianMixture(3), "GaussianMixture(3, full)", "GaussianMixture(n_components=3)"),
        (ppgen.HMM(2), "HMM(2, gaussian, full)", "HMM(n_states=2)"),
        (ppgen.HMM(2, "poisson"), "HMM(2, poisson)", "HMM(n_states=2, emission='poisson')"),
        (ppgen.PPCA(2), "PPCA(2)", "PPCA(n_components=2)"),
        (ppgen.VAE(), "VAE(8)", "VAE()"),
        (ppgen.VAE(4, hidden=(32,)), "VAE(4)", "VAE(n_latent=4, hidden=[32])"),
        (ppgen.HierarchicalVAE(), "HierarchicalVAE((16, 8))", "HierarchicalVAE()"),
    ],
)
def test_labels_and_reprs_show_the_constructor_arguments(model, label, text):
    assert model.label() == label
    assert repr(model) == text
    rebuilt = eval(text, {type(model).__name__: type(model)})  # noqa: S307
    assert rebuilt.config() == model.config()


def test_fit_repr_is_one_short_line():
    frame = ppgen.datasets.load("faithful")
    fit = ppgen.fit(GaussianMixture(2, "diag"), frame, method="em")
    assert (
        repr(fit)
        == f"Fit(GaussianMixture(2, diag) by em, 272 rows, 2 columns, {len(fit.losses)} steps)"
    )  # noqa: E501
    vae = ppgen.fit(ppgen.VAE(2, hidden=(8,)), frame, max_epochs=2, progress=False)
    assert repr(vae) == "Fit(VAE(2) by svi, 272 rows, 2 columns, 2 steps)"
