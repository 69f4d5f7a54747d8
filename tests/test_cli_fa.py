"""``ppgen fit --model fa``: options, rotation none, and the options kept equal to the model's."""

from __future__ import annotations

import numpy as np

import ppgen
from ppgen.cli import main
from ppgen.cli._models import OPTIONS
from ppgen.models.fa import FMS
from ppgen.models.rotations import ROTATIONS


def test_cli_choices_are_the_models():
    assert set(OPTIONS["rotation"][1]["choices"]) == {*ROTATIONS, "none"}
    assert tuple(OPTIONS["fm"][1]["choices"]) == FMS


def test_fit_fa_from_the_command_line(tmp_path, capsys):
    rotation, expected = "none", None
    csv, out = tmp_path / "wine.csv", tmp_path / "fa.ppgen"
    data = ppgen.datasets.load("wine", label=False).iloc[:, :6]
    data.to_csv(csv, index=False)
    args = ["fit", str(csv), "--model", "fa", "--n-components", "2", "--rotation", rotation]
    assert main([*args, "--fm", "minres", "-o", str(out)]) == 0
    fit = ppgen.load(str(out))
    assert fit.model.rotation == expected and fit.model.fm == "minres"
    direct = ppgen.fit(ppgen.FactorAnalysis(2, rotation=expected, fm="minres"), data)
    np.testing.assert_allclose(fit.log_prob(data), direct.log_prob(data), atol=1e-8)


def test_bad_rotation_is_one_line(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    ppgen.datasets.load("faithful").to_csv(csv, index=False)
    status = main(["fit", str(csv), "--model", "fa", "--n-components", "1", "--rotation", "x"])
    err = capsys.readouterr().err
    assert status == 2 and "--rotation" in err and len(err.splitlines()) == 1
