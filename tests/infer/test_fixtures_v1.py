"""Fits saved by ppgen before the wave-2 architecture change (format version 1, commit d4c5fff)
load with today's code and give the values they gave then (tests/fixtures/v1/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ppgen

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v1"
EXPECTED = json.loads((FIXTURES / "log_prob.json").read_text())


def _wine5():
    return ppgen.datasets.load("wine", label=False).iloc[:5, :5]


@pytest.mark.parametrize(
    ("name", "kind", "cls"),
    [
        ("gmm_em", "point", ppgen.Fit),
        ("gmm_svi", "draws", ppgen.Fit),
        ("ppca_map", "point", ppgen.Fit),
        ("hmm_em", "point", ppgen.infer.sequences.SequenceFit),
    ],
)
def test_saved_fits_give_the_log_prob_they_gave(name, kind, cls):
    fit = ppgen.load(str(FIXTURES / f"{name}.ppgen"))
    assert type(fit) is cls and fit.kind == kind
    if name.startswith("gmm"):
        data = ppgen.datasets.load("faithful").iloc[:5]
    elif name == "ppca_map":
        data = _wine5()
    else:
        data = ppgen.datasets.load("geyser")
    np.testing.assert_allclose(fit.log_prob(data), EXPECTED[name], rtol=0, atol=1e-10)


def test_saved_vae_gives_the_transform_it_gave():
    fit = ppgen.load(str(FIXTURES / "vae.ppgen"))
    assert fit.kind == "networks" and fit.method == "svi" and fit.params == {}
    np.testing.assert_allclose(fit.transform(_wine5()), EXPECTED["vae_transform"], atol=1e-10)


@pytest.mark.parametrize("name", ["gmm_em", "gmm_svi", "ppca_map", "hmm_em", "vae"])
def test_resaving_writes_the_same_state(name, tmp_path):
    """Today's writer produces the same config and tensors as the file it read. Models gained
    constructor arguments since (issue 11: ``prior``, ``reg_covar``, ...): those are written with
    their defaults, every older entry is unchanged."""
    path = FIXTURES / f"{name}.ppgen"
    old = torch.load(path, weights_only=True)
    fit = ppgen.load(str(path))
    fit.save(str(tmp_path / "again.ppgen"))
    new = torch.load(tmp_path / "again.ppgen", weights_only=True)
    old_config, new_config = json.loads(old["config"]), json.loads(new["config"])
    old_model = old_config.pop("model_config")
    new_model = new_config.pop("model_config")
    assert new_config == old_config
    assert {k: new_model[k] for k in old_model} == old_model
    assert new_model == type(fit.model)(**old_model).config()
    assert _flat(new["tensors"]).keys() == _flat(old["tensors"]).keys()
    for key, value in _flat(old["tensors"]).items():
        assert torch.equal(_flat(new["tensors"])[key], value), key


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out
