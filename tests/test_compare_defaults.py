"""compare's default builds: families with a required size compare can fill (the RBM)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ppgen
from ppgen.comparison import N_HIDDEN, _default_rbm
from ppgen.models import MODELS


def test_a_default_rbm_is_gaussian_on_numbers_and_bernoulli_on_zeros_and_ones():
    rng = np.random.default_rng(0)
    numbers = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
    bits = pd.DataFrame(rng.integers(0, 2, size=(50, 3)), columns=["a", "b", "c"])
    rbm = MODELS["RBM"]
    assert _default_rbm(rbm, numbers).config()["visible"] == "gaussian"
    assert _default_rbm(rbm, bits).config() == {
        "n_hidden": N_HIDDEN,
        "visible": "bernoulli",
        "n_gibbs": rbm(1).config()["n_gibbs"],
    }


def test_compare_builds_an_rbm_by_default_and_a_table_it_cannot_take_says_why():
    rng = np.random.default_rng(1)
    numbers = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    row = ppgen.compare(numbers, ["rbm"], budget_s=None, progress=False).table.iloc[0]
    assert row["status"] == "ok" and row["n_params"] == 3 * N_HIDDEN + 3 + N_HIDDEN
    labelled = numbers.assign(label=pd.Categorical(rng.choice(["x", "y"], size=120)))
    row = ppgen.compare(labelled, ["rbm"], budget_s=None, progress=False).table.iloc[0]
    assert row["status"] == "error" and "needs n_hidden" not in row["verdict"]
    assert "categorical" in row["verdict"]


def _spin(seconds):
    """Busy CPU for about ``seconds`` of this process's CPU time."""
    import time

    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_budget_counts_cpu_seconds_and_the_wall_clock_caps_it(monkeypatch):
    import time

    from ppgen import comparison

    if not comparison._HAS_CPU_LIMIT:
        pytest.skip("no CPU-time limit on this platform")
    # A family that spins the CPU is stopped by the kernel at its CPU budget, however long
    # the wall clock (a wide wall cap: a busy machine gives the child a sliver of a core)...
    spec = comparison._Spec("spin", "spin", None)
    monkeypatch.setattr(comparison, "_run", lambda *args: _spin(60.0))
    monkeypatch.setattr(comparison, "WALL_FACTOR", 50.0)
    status, message = comparison._run_with_budget(spec, None, None, 0, 1.0)
    assert status == "over budget" and message == "stopped after 1 s of CPU time"
    monkeypatch.setattr(comparison, "WALL_FACTOR", 4.0)
    # ...one that waits uses no CPU and is stopped by the wall clock at WALL_FACTOR budgets.
    monkeypatch.setattr(comparison, "_run", lambda *args: time.sleep(30.0))
    start = time.perf_counter()
    status, message = comparison._run_with_budget(spec, None, None, 0, 0.25)
    assert status == "over budget" and message == "stopped after 1 s (wall clock)"
    assert time.perf_counter() - start < 10
