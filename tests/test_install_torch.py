"""tools/install_torch.py never lets pip pull the CUDA build on a machine without a GPU."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "install_torch.py"


@pytest.fixture
def tool(monkeypatch):
    spec = importlib.util.spec_from_file_location("install_torch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls: list[tuple[str, ...]] = []
    listing = {"stdout": ""}

    def fake_pip(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
        calls.append(args)
        out = listing["stdout"] if args[:2] == ("index", "versions") else ""
        return subprocess.CompletedProcess(args, 0, stdout=out, stderr="")

    monkeypatch.setattr(module, "pip", fake_pip)
    monkeypatch.setattr(module, "has_gpu", lambda: False)
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)
    return module, calls, listing


def test_the_newest_cpu_build_pip_offers_is_installed(tool):
    module, calls, listing = tool
    listing["stdout"] = (
        "torch (2.15.0)\nAvailable versions: 2.15.0, 2.14.1, 2.13.0+cpu, 2.13.0, 2.12.0+cpu\n"
    )
    assert module.main() == 0
    assert calls[-1] == ("install", "torch==2.13.0+cpu")


def test_without_a_cpu_build_or_index_it_stops_instead_of_pulling_cuda(tool, monkeypatch, capsys):
    module, calls, listing = tool
    listing["stdout"] = "torch (2.15.0)\nAvailable versions: 2.15.0, 2.14.1\n"
    monkeypatch.setattr(module, "cpu_index_reachable", lambda: False)
    assert module.main() == 1
    assert not any(c[0] == "install" for c in calls)
    assert "found no CPU build of torch" in capsys.readouterr().err


def test_the_cpu_index_is_used_when_it_answers(tool, monkeypatch):
    module, calls, listing = tool
    monkeypatch.setattr(module, "cpu_index_reachable", lambda: True)
    assert module.main() == 0
    assert calls[-1][-3:] == ("--index-url", module.CPU_INDEX, "torch")
