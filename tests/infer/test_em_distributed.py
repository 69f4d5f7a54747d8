"""Distributed EM is exact (issue 20): GaussianMixture (full with missing entries, a
parsimonious structure, diagonal posterior mode; full and VEV on a complete table, where each
rank's statistics come from the fused kernel and rank 0's do also in the cases with missing
entries on rank 1 only), PPCA, factor analysis and an HMM over
sequences, fitted with rows split unevenly over 2 gloo ranks on 127.0.0.1 (rank 1 holds every
partially observed row, rank 0 none of either missingness pattern), equal the one-process run to
1e-10 in float64 at every iteration from the same start; a whole engine run (its own starts,
from the seeded sample that is here the whole table) equals the one-process engine run, and both
ranks hold identical parameters."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from _em_cases import CASES, RUN, RUN_OPTIONS, STEPS, problem, start  # noqa: E402

from ppgen.infer.engines.em import EM, EmOptions  # noqa: E402

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("em_ranks")
    port = str(_free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = str(HERE / "_em_worker.py")
    procs = [
        subprocess.Popen(
            [sys.executable, worker, str(r), "2", port, str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    logs = [p.communicate(timeout=240)[0].decode() for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _close(a: dict, b: dict, tol: float = 1e-10) -> None:
    assert a.keys() == b.keys()
    for k in a:
        scale = 1.0 + b[k].abs()
        assert torch.all((a[k] - b[k]).abs() <= tol * scale), (k, (a[k] - b[k]).abs().max())


@pytest.mark.parametrize("case", list(CASES))
def test_every_iteration_equals_one_process(ranks, case):
    whole = problem(case)
    params = start(case)
    model = whole.model
    with torch.no_grad():
        for step in range(STEPS):
            params, objective = model.em_step(whole.x, whole.mask, params, **whole.data)
            for r in range(2):
                got, got_objective = ranks[r][case]["trace"][step]
                _close(got, params)
                assert got_objective == pytest.approx(float(objective), rel=1e-12, abs=1e-10)
    # The ranks agree exactly: the same reduced statistics, the same update.
    for (p0, o0), (p1, o1) in zip(ranks[0][case]["trace"], ranks[1][case]["trace"], strict=True):
        assert o0 == o1
        assert all(torch.equal(p0[k], p1[k]) for k in p0)


def test_complete_shares_take_the_fused_kernel(ranks):
    # A rank's GaussianMixture statistics come from the fused kernel when its share is complete
    # (maximum likelihood, continuous): both ranks on a complete table, rank 0 only where rank 1
    # holds the missing entries; the ranks still reduce the same statistics.
    for case in ("gmm_full_complete", "gmm_vev_complete"):
        assert ranks[0][case]["kernel"] and ranks[1][case]["kernel"], case
    for case in ("gmm_full", "gmm_eev", "gmm_diag"):
        assert ranks[0][case]["kernel"] and not ranks[1][case]["kernel"], case
    assert not ranks[0]["gmm_diag_map"]["kernel"]  # a prior: the general path


@pytest.mark.parametrize("case", RUN)
def test_engine_run_equals_one_process(ranks, case):
    whole = problem(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = EM().run(whole, EmOptions(**RUN_OPTIONS))
    for r in range(2):
        got = ranks[r][case]
        assert len(got["losses"]) == len(ref.losses)
        assert torch.allclose(
            torch.as_tensor(got["losses"]), torch.as_tensor(ref.losses), rtol=1e-12, atol=1e-9
        )
        _close(got["params"], ref.params, tol=1e-9)
    assert all(torch.equal(ranks[0][case]["params"][k], ranks[1][case]["params"][k])
               for k in ref.params)  # fmt: skip
