"""One rank of the data-parallel checks in test_distributed.py, launched by torchrun.

``python -m torch.distributed.run --standalone --nproc-per-node 2 _distributed_worker.py DIR``
runs every check on each rank and writes ``DIR/rank{r}.pt`` (plain tensors and numbers); the
test reads them and compares with one-process computations made by the same helpers here.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pyro
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO

import ppgen
from ppgen.data.schema import Schema
from ppgen.infer import distributed as dist
from ppgen.infer.engines._pyro import make_guide, program
from ppgen.infer.optim import NonFiniteLossError

N_ROWS = 400  # the table (even: equal shards)
BATCH = 64  # the minibatch of the gradient check
N_ESTIMATES = 40  # single-particle ELBO estimates per rank
ENUMERATED = ppgen.GaussianMixture.enumerated


def table(n: int = N_ROWS, seed: int = 0) -> np.ndarray:
    """Two separated Gaussian clusters in 3 dimensions."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, -2.0]])
    return centers[rng.integers(0, 2, n)] + rng.normal(size=(n, 3))


def vae_table(n: int = 241, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    return np.tanh(z @ rng.normal(size=(2, 5))) + 0.1 * rng.normal(size=(n, 5))


def elbo_setup(data: np.ndarray):
    """A built GaussianMixture(2) on the whole table's schema, its program and a mean-field
    guide at fixed parameters (its starting values)."""
    schema = Schema.infer(data)
    model = ppgen.GaussianMixture(2).build(schema).double()
    enc = schema.encode(data)
    init = model.init_params(enc.x, enc.mask, torch.Generator().manual_seed(0))
    prog = program(model)
    guide = make_guide(model, prog, "normal", init)
    guide(enc.x, enc.mask)  # set the guide up now: its setup draws, whatever rows come next
    return model, prog, guide, enc


def elbo_loss(prog, guide, x, mask, n_global: int | None, grad: bool = True):
    """One-particle negative ELBO of the rows ``x``, the data plate at ``n_global`` rows (None:
    the plate's own size, the local N)."""
    if n_global is not None:
        scale = dist.GlobalPlate(n_global, int(x.shape[0]))
        prog, guide = scale(prog), scale(guide)
    # The mixture's assignments are summed out exactly, as the engines do (model.enumerated).
    elbo = TraceEnum_ELBO(max_plate_nesting=1) if ENUMERATED else Trace_ELBO()
    if not grad:
        return elbo.loss(prog, guide, x, mask)
    return elbo.differentiable_loss(prog, guide, x, mask)


def gradient(prog, guide, x, mask, n_global: int, seed: int) -> tuple[torch.Tensor, list]:
    """The loss and the gradient of every guide parameter, draws seeded with ``seed``."""
    pyro.set_rng_seed(seed)
    loss = elbo_loss(prog, guide, x, mask, n_global)
    names = sorted(pyro.get_param_store().keys())
    params = [pyro.get_param_store().get_param(n).unconstrained() for n in names]
    grads = torch.autograd.grad(loss, params)
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    return loss.detach(), params


AIS_ROWS = 120
AIS_OPTS = dict(n_steps=10, n_chains=4, n_tune=8, n_leapfrog=3, seed=3, batch_size=40)


def decoder(z: torch.Tensor) -> torch.Tensor:
    """A fixed decoder of 2 latents to the VAE table's 5 columns (decoder AIS check)."""
    w = torch.randn(2, 5, dtype=z.dtype, generator=torch.Generator().manual_seed(0))
    return torch.tanh(z @ w)


def ais_fields(res) -> dict:
    """An AIS result's per-row arrays and summaries, as tensors and numbers."""
    out = {k: torch.as_tensor(getattr(res, k)) for k in ("per_row", "per_row_mc_se", "ess")}
    out["step_size"] = torch.as_tensor(res.step_size)
    out.update(mean=res.mean, mc_se=res.mc_se, acceptance=res.acceptance, note=res.note)
    return out


def vae_weights(data: np.ndarray) -> torch.Tensor:
    """The weights of check 4's distributed VAE fit."""
    fit = ppgen.fit(
        ppgen.VAE(2, hidden=(8,)), data, distributed=True, max_epochs=4, batch_size=32, seed=2
    )
    return torch.cat([p.detach().reshape(-1) for p in fit.model.parameters()])


def reducer_check(ctx: dist.Context) -> dict:
    """Loss and gradients of a small net averaged over ranks by ``GradientReducer`` (buckets
    of 4 float64 weights, a parameter outside the loss) and by ``average_gradients``: both
    ranks holding rows ("both"), and rank 1 holding none ("empty")."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    net = net.double()
    params = [*net.parameters(), torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))]
    out = {}
    for case, rows in (("both", 5 + ctx.rank), ("empty", 5 if ctx.rank == 0 else 0)):
        gen = torch.Generator().manual_seed(10 + ctx.rank)
        x = torch.randn(rows, 3, generator=gen, dtype=torch.float64)

        def loss_fn(x=x):
            return net(x).pow(2).sum(-1).mean() if len(x) else params[0].new_zeros(())

        reducer = dist.GradientReducer(params, ctx, bucket_bytes=32)
        reducer.zero_grad()
        loss = loss_fn()
        reducer.begin(loss, float(rows))
        if rows:
            loss.backward()
        got = [reducer.finish().clone(), *(p.grad.clone() for p in params)]
        reducer.close()
        for p in params:
            p.grad = None
        loss = loss_fn()
        if rows:
            loss.backward()
        want = [dist.average_gradients(loss, params, float(rows), ctx).clone()]
        out[case] = (got, want + [p.grad.clone() for p in params])
    return out


def streamed_paths(out: Path) -> list[Path]:
    return [out / "part0.parquet", out / "part1.parquet"]


def streamed_files(out: Path) -> list[Path]:
    """The table (with missing entries) in two Parquet files of row groups of 70 rows: groups
    starting at rows 0, 70, 140 | 170, 240, so 2 ranks stream 170 and 130 rows."""
    import pandas as pd

    x = table(300, seed=8)
    x[np.random.default_rng(9).random(x.shape) < 0.1] = np.nan
    df = pd.DataFrame(x, columns=["a", "b", "c"])
    paths = streamed_paths(out)
    df.iloc[:170].to_parquet(paths[0], row_group_size=70)
    df.iloc[170:].to_parquet(paths[1], row_group_size=70)
    return paths


def main(out: Path, part: str = "fast") -> None:
    torch.set_num_threads(1)
    ctx = dist.resolve(True)
    res: dict = {"rank": ctx.rank, "world_size": ctx.world_size}
    if part == "slow":
        slow(out, ctx, res)
        return
    import time

    clock = [time.process_time()]

    def lap(name):
        now = time.process_time()
        res.setdefault("cpu", {})[name] = now - clock[0]
        clock[0] = now

    data = table()
    # 1. Gradient over this rank's half of one minibatch, averaged over ranks.
    with pyro.get_param_store().scope():
        _, prog, guide, enc = elbo_setup(data)
        batch = np.arange(BATCH)
        mine = batch[dist.shard_rows(BATCH, ctx, seed=3)]
        res["batch_rows"] = torch.as_tensor(mine)
        x, m = enc.x[mine], enc.mask[mine]
        loss, params = gradient(prog, guide, x, m, N_ROWS, seed=11)
        dist.average_gradients(loss, params, float(len(mine)), ctx)
        res["grads"] = [p.grad.clone() for p in params]
        # 2. The per-rank ELBO estimate over its shard of all rows, plate at the global N, and
        # the deliberately wrong variant with the local N.
        rows = dist.shard_rows(N_ROWS, ctx, seed=5)
        x, m = enc.x[rows], enc.mask[rows]
        pyro.set_rng_seed(100 + ctx.rank)
        good = [-elbo_loss(prog, guide, x, m, N_ROWS, False) for _ in range(N_ESTIMATES)]
        bad = [-elbo_loss(prog, guide, x, m, None, False) for _ in range(N_ESTIMATES)]
        res["elbo_global"] = torch.tensor(good)
        res["elbo_local"] = torch.tensor(bad)
    lap("grad_elbo")
    # 3. SVI of the global sites through ppgen.fit: the same guide and draws on every rank.
    sfit = ppgen.fit(
        ppgen.GaussianMixture(2), data, method="svi", distributed=True, max_steps=30, num_draws=5
    )
    res["svi_params"] = {k: v.clone() for k, v in sfit.params.items()}
    res["svi_samples"] = {k: v.clone() for k, v in sfit.samples.items()}
    res["svi_losses"] = torch.as_tensor(sfit.losses)
    lap("svi")
    # 4. Minibatch SVI of a VAE: identical weights on every rank.
    vdata = vae_table()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vfit = ppgen.fit(
            ppgen.VAE(2, hidden=(8,)),
            vdata,
            distributed=True,
            max_epochs=4,
            batch_size=32,
            seed=2,
        )
    res["small_step_warnings"] = [
        str(w.message) for w in caught if "rows per step" in str(w.message)
    ]
    res["vae_weights"] = torch.cat([p.detach().reshape(-1) for p in vfit.model.parameters()])
    res["vae_info"] = {k: vfit.info[k] for k in ("world_size", "rows_per_rank", "n_validation")}
    res["vae_losses"] = torch.as_tensor(vfit.losses)
    if ctx.rank == 0:
        vfit.save(out / "vae.ppgen")
    # 4b. The all-reduce overlapped with backward (GradientReducer, here in many buckets) and
    # one all-reduce after backward train the same weights, bit for bit.
    bucket, dist.GradientReducer.BUCKET_BYTES = dist.GradientReducer.BUCKET_BYTES, 128
    try:
        res["vae_weights_buckets"] = vae_weights(vdata)
    finally:
        dist.GradientReducer.BUCKET_BYTES = bucket
    dist.OVERLAP = False
    try:
        res["vae_weights_after"] = vae_weights(vdata)
    finally:
        dist.OVERLAP = True
    res["reducer"] = reducer_check(ctx)
    lap("vae")
    # 5. A NaN on rank 1 only, at its third step: every rank stops there together.
    model = ppgen.VAE(2, hidden=(8,))
    calls = {"n": 0}
    original = type(model).elbo_rows

    def poisoned(self, x, mask, *args, **kwargs):
        out_rows = original(self, x, mask, *args, **kwargs)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if ctx.rank == 1 and calls["n"] == 3:
                return out_rows * float("nan")
        return out_rows

    type(model).elbo_rows = poisoned
    try:
        ppgen.fit(model, vdata, distributed=True, max_epochs=4, batch_size=32, seed=2)
        res["nan_stopped"] = False
    except NonFiniteLossError as exc:
        res["nan_stopped"] = True
        res["nan_message"] = str(exc)
        w = [p.detach().reshape(-1) for p in exc.fit.model.parameters()]
        res["nan_weights"] = torch.cat(w)
    finally:
        type(model).elbo_rows = original
    lap("nan")
    # 6. Distributed IWAE of a saved VAE: rows shared, gathered in order.
    est = ppgen.evaluate.iwae(vfit, vdata, k=8, seed=4, batch_size=50, distributed=True)
    res["iwae"] = torch.as_tensor(est.per_row)
    lap("iwae")
    # 6b. Distributed AIS and decoder AIS: seeded blocks of rows (3 blocks: 2 on rank 0, 1 on
    # rank 1), gathered in order.
    rows = vdata[:AIS_ROWS]
    res["ais"] = ais_fields(ppgen.evaluate.ais(vfit, rows, **AIS_OPTS, distributed=True))
    dec = ppgen.evaluate.decoder_ais(
        decoder, rows, n_latent=2, sigma=0.5, **AIS_OPTS, distributed=True
    )
    res["decoder_ais"] = ais_fields(dec)
    lap("ais")
    # 9. Streamed EM: each rank streams its share of the Parquet row groups (uneven).
    paths = streamed_files(out) if ctx.rank == 0 else streamed_paths(out)
    torch.distributed.barrier()
    sfit = ppgen.fit(ppgen.GaussianMixture(2), paths, distributed=True, chunk_rows=50, seed=5)
    res["stream_params"] = {k: v.clone() for k, v in sfit.params.items()}
    res["stream_losses"] = torch.as_tensor(sfit.losses)
    res["stream_info"] = {k: sfit.info[k] for k in ("world_size", "rows_per_rank", "streamed_rows")}
    lap("stream_em")
    # 10. Streamed minibatch SVI: each rank streams its row groups, lockstep steps.
    vfit = ppgen.fit(
        ppgen.VAE(2, hidden=(8,)), paths, distributed=True, chunk_rows=50, max_epochs=3,
        batch_size=64, seed=2,
    )  # fmt: skip
    res["svs_weights"] = torch.cat([p.detach().reshape(-1) for p in vfit.model.parameters()])
    res["svs_losses"] = torch.as_tensor(vfit.losses)
    keys = ("world_size", "rows_per_rank", "streamed_rows", "n_validation")
    res["svs_info"] = {k: vfit.info[k] for k in keys}
    lap("stream_svi")
    # 8. The command line: only rank 0 writes the file.
    import pandas as pd

    csv = out / "table.csv"
    if ctx.rank == 0:
        pd.DataFrame(data[:100], columns=["a", "b", "c"]).to_csv(csv, index=False)
    torch.distributed.barrier()
    from ppgen.cli import main as cli

    code = cli(
        ["fit", str(csv), "--model", "gmm", "--n-components", "2", "--method", "map", "--quiet"]
        + ["-o", str(out / f"cli{ctx.rank}.ppgen" if ctx.rank else out / "cli.ppgen")]
    )
    res["cli_code"] = code
    lap("cli")
    torch.save(res, out / f"rank{ctx.rank}.pt")


def slow(out: Path, ctx: dist.Context, res: dict) -> None:
    """The checks of the slow tests (NUTS compiles its kernel: seconds per chain)."""
    data = table()
    # 3. MAP through ppgen.fit, rows sharded, from given starting values.
    init = {k: torch.as_tensor(v) for k, v in torch.load(out / "init.pt").items()}
    fit = ppgen.fit(
        ppgen.GaussianMixture(2), data, method="map", distributed=True, init_values=init
    )
    res["map_params"] = {k: v.clone() for k, v in fit.params.items()}
    res["map_info"] = {k: fit.info[k] for k in ("world_size", "rows_per_rank")}
    # 7. NUTS: chains sharded over ranks, draws gathered.
    nfit = ppgen.fit(
        ppgen.GaussianMixture(1),
        data[:60, :1],
        method="nuts",
        distributed=True,
        num_chains=2,
        num_samples=15,
        warmup_steps=15,
        seed=7,
    )
    res["nuts"] = {k: v.clone() for k, v in nfit.samples.items()}
    res["nuts_divergent"] = torch.as_tensor(nfit.divergent)
    torch.save(res, out / f"slow{ctx.rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
