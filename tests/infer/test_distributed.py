"""Data-parallel fitting and evaluation (issue 20): two gloo ranks on 127.0.0.1 under torchrun.

One launch of ``_distributed_worker.py`` (``torchrun --standalone --nproc-per-node 2``) runs every
check on both ranks; each test compares what the ranks wrote with a one-process computation.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyro
import pytest
import torch

import ppgen
from ppgen.infer import distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
import _distributed_worker as worker  # noqa: E402

WORKER = Path(__file__).with_name("_distributed_worker.py")
LIGHTNING = Path(__file__).with_name("_lightning_worker.py")
RAY = Path(__file__).with_name("_ray_worker.py")


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(ppgen.__file__).parents[1]), env.get("PYTHONPATH", "")]
    )
    return env


def _results(out: Path, name: str) -> list[dict]:
    results = [torch.load(out / f"{name}{r}.pt", weights_only=False) for r in range(2)]
    for r in results:
        r["dir"] = out
    return results


def torchrun(out: Path, part: str) -> list[dict]:
    """Launch the worker on 2 ranks (``torchrun --standalone --nproc-per-node 2``), this
    checkout's ppgen first on the path; both ranks' results."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    proc = subprocess.run(
        [*cmd, str(WORKER), str(out), part], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return _results(out, "rank" if part == "fast" else "slow")


def launched(out: Path, launcher: str) -> list[dict]:
    """The same checks with the process group started by Lightning's DDP on CPU
    (``_lightning_worker.py``) or by Ray Train's TorchTrainer (``_ray_worker.py``); 2 processes,
    gloo."""
    pytest.importorskip({"lightning": "pytorch_lightning", "ray": "ray.train.torch"}[launcher])
    script = LIGHTNING if launcher == "lightning" else RAY
    proc = subprocess.run(
        [sys.executable, str(script), str(out)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return _results(out, "rank")


# Ray is not in the shared venv: its test runs from a venv that has it (docs/scaling.md).
LAUNCHERS = ["torchrun"] + [pytest.param(x, marks=pytest.mark.slow) for x in ("lightning", "ray")]


@pytest.fixture(scope="module", params=LAUNCHERS)
def ranks(request, tmp_path_factory) -> list[dict]:
    """Both ranks' results (rank 0 saves its VAE), under torchrun (default suite), Lightning's
    DDP and Ray Train (slow: the same checks, the process group started by the launcher)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp(f"distributed_{request.param}")
    return torchrun(out, "fast") if request.param == "torchrun" else launched(out, request.param)


@pytest.fixture(scope="module")
def full_elbo() -> tuple[float, float]:
    """The full-data ELBO by many one-particle estimates in one process: mean and its SE."""
    with pyro.get_param_store().scope():
        _, prog, guide, enc = worker.elbo_setup(worker.table())
        pyro.set_rng_seed(0)
        draws = [-worker.elbo_loss(prog, guide, enc.x, enc.mask, None, False) for _ in range(60)]
    return float(np.mean(draws)), float(np.std(draws, ddof=1) / math.sqrt(len(draws)))


def test_launcher_runs_two_ranks(ranks):
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 for r in ranks)


def test_averaged_gradient_equals_one_process_gradient(ranks):
    # Each rank took half of the same minibatch of BATCH rows (uneven would do as well).
    halves = [r["batch_rows"].numpy() for r in ranks]
    assert sorted(np.concatenate(halves)) == list(range(worker.BATCH))
    with pyro.get_param_store().scope():
        _, prog, guide, enc = worker.elbo_setup(worker.table())
        rows = np.arange(worker.BATCH)
        _, params = worker.gradient(
            prog, guide, enc.x[rows], enc.mask[rows], worker.N_ROWS, seed=11
        )
        expected = [p.grad for p in params]
    for r in ranks:
        for got, want in zip(r["grads"], expected, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def _rank_mean(ranks, key) -> tuple[float, float]:
    means = [float(r[key].mean()) for r in ranks]
    ses = [float(r[key].std() / math.sqrt(len(r[key]))) for r in ranks]
    return float(np.mean(means)), math.sqrt(sum(s * s for s in ses)) / len(ses)


def test_mean_of_rank_elbos_estimates_the_full_data_elbo(ranks, full_elbo):
    full, full_se = full_elbo
    got, se = _rank_mean(ranks, "elbo_global")
    assert abs(got - full) < 3 * math.hypot(se, full_se)


def test_the_check_fails_when_the_plate_gets_the_local_n(ranks, full_elbo):
    # The same check, on the deliberately wrong plate (each rank's N instead of the table's):
    # it is far outside 3 standard errors, so the test above would catch that mistake.
    full, full_se = full_elbo
    got, se = _rank_mean(ranks, "elbo_local")
    assert abs(got - full) > 3 * math.hypot(se, full_se)


@pytest.fixture(scope="module")
def slow_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("distributed_slow")
    em = ppgen.fit(ppgen.GaussianMixture(2), worker.table())
    torch.save({k: v.clone() for k, v in em.params.items()}, out / "init.pt")
    return torchrun(out, "slow")


@pytest.mark.slow
def test_distributed_map_equals_one_process_map(slow_ranks):
    ranks = slow_ranks
    init = torch.load(ranks[0]["dir"] / "init.pt")
    serial = ppgen.fit(ppgen.GaussianMixture(2), worker.table(), method="map", init_values=init)
    for r in ranks:
        assert r["map_info"] == {"world_size": 2, "rows_per_rank": [200, 200]}
        for k, v in serial.params.items():
            torch.testing.assert_close(r["map_params"][k], v, rtol=1e-5, atol=1e-5)


def test_svi_of_global_sites_is_identical_on_every_rank(ranks):
    a, b = ranks
    assert torch.equal(a["svi_losses"], b["svi_losses"]) and len(a["svi_losses"]) == 30
    for k in a["svi_params"]:
        assert torch.equal(a["svi_params"][k], b["svi_params"][k])
        assert torch.equal(a["svi_samples"][k], b["svi_samples"][k])


def test_small_steps_per_rank_warn_once_on_cpu(ranks):
    # batch_size=32 over 2 gloo ranks: 16 rows per rank per step; rank 0 says so, once.
    assert len(ranks[0]["small_step_warnings"]) == 1
    assert "batch_size=32 over 2 CPU ranks" in ranks[0]["small_step_warnings"][0]
    assert "batch_size=2048" in ranks[0]["small_step_warnings"][0]
    assert ranks[1]["small_step_warnings"] == []


def test_minibatch_training_keeps_identical_weights(ranks):
    assert torch.equal(ranks[0]["vae_weights"], ranks[1]["vae_weights"])
    assert torch.equal(ranks[0]["vae_losses"], ranks[1]["vae_losses"])
    info = ranks[0]["vae_info"]
    # An uneven split (241 rows): the ranks still step in lockstep.
    assert info["world_size"] == 2 and info["rows_per_rank"] == [121, 120]
    assert info["n_validation"] == 24  # 12 held out on each rank, counted over both


def test_overlapped_all_reduce_equals_one_all_reduce_after_backward(ranks):
    # GradientReducer (buckets launched from gradient hooks during backward) gives exactly the
    # numbers of average_gradients: per step (a rank without rows, a parameter outside the
    # loss, many buckets) and over a whole training (bit-identical weights).
    for r in ranks:
        assert torch.equal(r["vae_weights_buckets"], r["vae_weights"])
        assert torch.equal(r["vae_weights_after"], r["vae_weights"])
        for case in ("both", "empty"):
            got, want = r["reducer"][case]
            assert len(got) == len(want) == 6
            assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True)), case
    for case in ("both", "empty"):
        a, b = (r["reducer"][case][0] for r in ranks)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_non_finite_loss_on_one_rank_stops_every_rank_with_the_same_weights(ranks):
    assert all(r["nan_stopped"] for r in ranks)
    assert ranks[0]["nan_message"] == ranks[1]["nan_message"]
    assert "step 2" in ranks[0]["nan_message"]
    assert torch.equal(ranks[0]["nan_weights"], ranks[1]["nan_weights"])


def test_distributed_iwae_gathers_rows_in_order_equal_to_one_process(ranks):
    fit = ppgen.load(ranks[0]["dir"] / "vae.ppgen")
    data = worker.vae_table()
    one = ppgen.evaluate.iwae(fit, data, k=8, seed=4, batch_size=50, distributed=True)
    for r in ranks:
        np.testing.assert_allclose(r["iwae"].numpy(), one.per_row, rtol=0, atol=1e-10)
    # The same blocks in other orders: row i's value does not depend on who computed it.
    part = ppgen.evaluate.iwae(fit, data[:100], k=8, seed=4, batch_size=50, distributed=True)
    np.testing.assert_allclose(part.per_row, one.per_row[:100], rtol=0, atol=1e-10)


def _assert_same_ais(got: dict, want) -> None:
    for k in ("per_row", "per_row_mc_se", "ess", "step_size"):
        np.testing.assert_allclose(got[k].numpy(), getattr(want, k), rtol=0, atol=1e-10)
    for k in ("mean", "mc_se", "acceptance"):
        assert abs(got[k] - getattr(want, k)) <= 1e-10, k
    assert got["note"] == want.note


def test_distributed_ais_gathers_rows_in_order_equal_to_one_process(ranks):
    # 3 seeded blocks of 40 rows shared 2 / 1 by the ranks: each row's estimate, its Monte
    # Carlo error, ESS and step size equal one process running the same blocks.
    fit = ppgen.load(ranks[0]["dir"] / "vae.ppgen")
    rows = worker.vae_table()[: worker.AIS_ROWS]
    one = ppgen.evaluate.ais(fit, rows, **worker.AIS_OPTS, distributed=True)
    assert np.isfinite(one.per_row).all() and 0 < one.acceptance < 1
    for r in ranks:
        _assert_same_ais(r["ais"], one)
    # A row's value depends on the seed and its block only, not on the rows after it.
    part = ppgen.evaluate.ais(fit, rows[:80], **worker.AIS_OPTS, distributed=True)
    np.testing.assert_allclose(part.per_row, one.per_row[:80], rtol=0, atol=1e-10)
    dec = ppgen.evaluate.decoder_ais(
        worker.decoder, rows, n_latent=2, sigma=0.5, **worker.AIS_OPTS, distributed=True
    )
    for r in ranks:
        _assert_same_ais(r["decoder_ais"], dec)


@pytest.mark.slow
def test_nuts_chains_sharded_and_gathered_equal_one_process(slow_ranks):
    ranks = slow_ranks
    serial = ppgen.fit(
        ppgen.GaussianMixture(1),
        worker.table()[:60, :1],
        method="pyro-nuts",  # under torchrun, method="nuts" (the worker's) runs Pyro's sharded
        num_chains=2,
        num_samples=15,
        warmup_steps=15,
        seed=7,
    )
    for r in ranks:
        for k, v in serial.samples.items():
            torch.testing.assert_close(r["nuts"][k], v, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(r["nuts_divergent"].numpy(), serial.divergent)
    # Pooled R-hat and ESS over the gathered chains: the one-process computation's.
    pooled = ppgen.evaluate.diagnostics(dataclasses.replace(serial, samples=ranks[0]["nuts"]))
    one = ppgen.evaluate.diagnostics(serial)
    assert {"r_hat", "ess_bulk"} <= set(one.columns) or len(one.columns)
    pd.testing.assert_frame_equal(pooled, one, rtol=0, atol=1e-10)


def test_cli_fit_under_torchrun_writes_once(ranks):
    out = ranks[0]["dir"]
    assert [r["cli_code"] for r in ranks] == [0, 0]
    assert (out / "cli.ppgen").exists() and not (out / "cli1.ppgen").exists()
    assert ppgen.load(out / "cli.ppgen").info["world_size"] == 2


# -- one process: the helpers ---------------------------------------------------------------------
def test_shards_partition_the_rows_unevenly():
    for n, world in [(10, 3), (7, 2), (2, 4)]:
        parts = [dist.shard_rows(n, dist.Context(r, world), seed=1) for r in range(world)]
        assert sorted(np.concatenate(parts).tolist()) == list(range(n))
        assert [len(p) for p in parts] == dist.split_counts(n, world)


def test_block_shares_partition_the_blocks_and_balance_rows():
    # 1,797 rows in blocks of 128 (the IWAE of digits on 2 ranks): 896 + 901 rows, not the
    # 1,024 + 773 of equal block counts.
    shares = [dist.block_share(1797, 128, dist.Context(r, 2)) for r in range(2)]
    assert [min(1797, 128 * s.stop) - 128 * s.start for s in shares] == [896, 901]
    for n, block, world in [(1797, 128, 2), (1797, 128, 3), (10, 3, 4), (5, 128, 2), (0, 8, 2)]:
        shares = [dist.block_share(n, block, dist.Context(r, world)) for r in range(world)]
        blocks = [b for s in shares for b in s]
        assert blocks == list(range(-(-n // block)))  # contiguous, in rank order, every block
        rows = [min(n, block * s.stop) - min(n, block * s.start) for s in shares]
        assert all(abs(r - n / world) <= block for r in rows)  # within a block of an even share


def test_distributed_option_is_checked():
    with pytest.raises(ValueError, match="distributed must be"):
        ppgen.fit(ppgen.GaussianMixture(1), worker.table(20), distributed="yes")


def test_streamed_files_are_sharded_for_em_and_svi_only(tmp_path):
    with pytest.raises(ValueError, match="runs method='em' or 'svi'"):
        ppgen.fit(ppgen.GaussianMixture(2), str(tmp_path / "x.parquet"), method="map",
                  distributed=True)  # fmt: skip


def test_streamed_svi_over_ranks_keeps_identical_weights(ranks):
    # Each rank streamed its own row groups (170 / 130 rows, 10 % of the sample held out and
    # validated on rank 0): the ranks stepped in lockstep and hold the same weights.
    a, b = ranks
    assert torch.equal(a["svs_weights"], b["svs_weights"])
    assert torch.equal(a["svs_losses"], b["svs_losses"]) and len(a["svs_losses"]) == 3
    assert a["svs_info"] == {"world_size": 2, "rows_per_rank": [170, 130], "streamed_rows": 300,
                             "n_validation": 30}  # fmt: skip


def test_streamed_em_over_ranks_equals_one_process(ranks):
    # Each rank streamed its own row groups (170 and 130 rows); the sums of their statistics
    # give the one-process streamed fit, at every iteration (the losses) and at the end.
    pytest.importorskip("pyarrow")
    paths = worker.streamed_paths(ranks[0]["dir"])
    one = ppgen.fit(ppgen.GaussianMixture(2), paths, chunk_rows=50, seed=5)
    memory = ppgen.fit(ppgen.GaussianMixture(2), pd.concat([pd.read_parquet(p) for p in paths]),
                       schema=one.schema, seed=5)  # fmt: skip
    for r in ranks:
        assert r["stream_info"] == {"world_size": 2, "rows_per_rank": [170, 130],
                                    "streamed_rows": 300}  # fmt: skip
        np.testing.assert_allclose(r["stream_losses"].numpy(), one.losses, rtol=1e-10, atol=0)
        for k, v in one.params.items():
            assert torch.all((r["stream_params"][k] - v).abs() <= 1e-10 * (1 + v.abs())), k
    # And the streamed fit is the in-memory fit (the table is smaller than the sample).
    np.testing.assert_allclose(one.losses, memory.losses, rtol=1e-10, atol=0)


def test_world_of_one_fit_records_its_rows():
    fit = ppgen.fit(
        ppgen.GaussianMixture(1), worker.table(30), method="map", distributed=True, max_steps=5
    )
    assert fit.info["world_size"] == 1 and fit.info["rows_per_rank"] == [30]
