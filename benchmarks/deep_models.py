"""Deep generative models: the cost of ppgen's VAE training step against plain PyTorch.

    python benchmarks/deep_models.py                     # every section
    python benchmarks/deep_models.py --section step      # one section (repeatable flag)
    python benchmarks/deep_models.py --quick             # smoke test, prints only

Sections (each a function ``section_<name>(args)``, selected with ``--section``):

``step``
    Per-step time of ppgen's VAE SVI step against a hand-written PyTorch loop computing the
    same ELBO with the same network: scikit-learn's ``digits`` (64 pixel columns, standardized,
    float32), batch 128, ``VAE(n_latent=8, hidden=(128, 128))`` with a diagonal Gaussian guide
    and per-column Gaussian heads. Both sides take one Adam step per minibatch and read the
    loss back to the host. ppgen's step is the trainer's own (``_Trainer.step``: loss,
    backward, finite check of loss and gradient, Adam), with each way of computing the loss:
    ``direct`` (the model's ``elbo_rows``, ppgen's default), ``trace`` (Pyro's ``Trace_ELBO``
    with validation off, as ppgen trains) and ``trace + validation`` (Pyro's defaults). Times
    are medians over ``--repeats`` blocks of ``--steps`` steps, the variants interleaved so that
    the machine's load falls on all alike; one thread. Writes
    ``benchmarks/results/deep_models_step.md`` and ``.csv``.

Further sections (test NLL on digits for PPCA, VAE, VAE + flow, hierarchical VAE) are added as
functions of their own and registered in ``SECTIONS``.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads, write_table  # noqa: E402

pin_threads(1)

import pyro  # noqa: E402
import torch  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data.schema import Schema  # noqa: E402
from ppgen.infer.amortized import _Trainer  # noqa: E402

BATCH, N_LATENT, HIDDEN = 128, 8, (128, 128)
ISSUE_REFERENCE = (
    "Issue's reference, measured beforehand at 784-d input, hidden 256, latent 16, batch 128: "
    "plain PyTorch 4.25 ms/step, Pyro Trace_ELBO 6.64 ms (1.56x), without validation 5.97 ms "
    "(1.40x), JitTrace_ELBO 5.44 ms (1.28x); goal <= 1.2x."
)


def digits_batches(dtype: torch.dtype = torch.float32) -> tuple[Schema, torch.Tensor, torch.Tensor]:
    frame = ppgen.datasets.load("digits", label=False).astype("float64")
    schema = Schema.infer(frame)
    enc = schema.encode(frame, dtype=dtype)
    return schema, enc.x, enc.mask


class PlainVAE(torch.nn.Module):
    """The same networks as ppgen's VAE, with the ELBO written out by hand in PyTorch."""

    def __init__(self, vae: ppgen.VAE) -> None:
        super().__init__()
        # Copies of ppgen's modules, so both sides start from the same weights.
        self.body = copy.deepcopy(vae.encoder_body)
        self.loc = copy.deepcopy(vae.encoder_loc)
        self.scale = copy.deepcopy(vae.encoder_scale)
        self.decoder = copy.deepcopy(vae.decoder)
        self.log_sigma = torch.nn.Parameter(vae.heads.log_scale.detach().clone())

    def loss(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(x.dtype)
        h = self.body(torch.cat([x * m, m], -1))
        loc = self.loc(h)
        scale = torch.nn.functional.softplus(self.scale(h)) + 1e-5
        eps = torch.randn_like(loc)
        z = loc + scale * eps
        out = self.decoder(z)
        c = 0.5 * math.log(2 * math.pi)
        r = (x - out) * torch.exp(-self.log_sigma)
        log_lik = ((-0.5 * r * r - self.log_sigma - c) * m).sum(-1)
        log_prior = (-0.5 * z * z - c).sum(-1)
        log_q = (-0.5 * eps * eps - torch.log(scale) - c).sum(-1)
        return -(log_lik + log_prior - log_q).mean()


def _plain_step(net: PlainVAE, opt: torch.optim.Optimizer) -> Callable:
    def step(x, mask):
        opt.zero_grad(set_to_none=True)
        loss = net.loss(x, mask)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _ppgen_step(vae: ppgen.VAE, elbo: str) -> Callable:
    trainer = _Trainer(vae, elbo, num_particles=1)
    params = list(vae.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def step(x, mask):
        return trainer.step(x, mask, opt, params)[0]

    return step


def section_step(args: argparse.Namespace) -> None:
    """ppgen's VAE SVI step vs a hand-written PyTorch step (see the module docstring)."""
    schema, x, mask = digits_batches()
    torch.manual_seed(0)
    vae = ppgen.VAE(N_LATENT, HIDDEN).build(schema).to(dtype=x.dtype)
    variants: dict[str, tuple[Callable, bool]] = {
        "plain PyTorch (hand-written ELBO)": (
            _plain_step(net := PlainVAE(vae), torch.optim.Adam(net.parameters(), lr=1e-3)),
            False,
        ),
        "ppgen, elbo='direct' (default)": (_ppgen_step(copy.deepcopy(vae), "direct"), False),
        "ppgen, elbo='trace' (Trace_ELBO, validation off)": (
            _ppgen_step(copy.deepcopy(vae), "trace"),
            False,
        ),
        "ppgen, elbo='trace', Pyro validation on": (
            _ppgen_step(copy.deepcopy(vae), "trace"),
            True,
        ),
    }
    n = x.shape[0]
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randperm(n, generator=generator)[:BATCH] for _ in range(args.steps)]
    data = [(x[b], mask[b]) for b in batches]

    def block(step: Callable, validate: bool) -> tuple[float, float]:
        with pyro.validation_enabled(validate):
            c0, t0 = time.process_time(), time.perf_counter()
            for xb, mb in data:
                step(xb, mb)
            return (time.perf_counter() - t0) / len(data), (time.process_time() - c0) / len(data)

    for step, validate in variants.values():  # warm-up: allocator, caches, first traces
        block(step, validate)
    walls: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, (step, validate) in variants.items():
            wall, cpu = block(step, validate)
            walls[name].append(wall)
            cpus[name].append(cpu)
    plain = next(iter(variants))
    base_wall, base_cpu = statistics.median(walls[plain]), statistics.median(cpus[plain])
    rows = []
    for name in variants:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        rows.append(
            {
                "step": name,
                "ms/step (wall, median)": 1e3 * wall,
                "ratio (wall)": wall / base_wall,
                "ms/step (CPU, median)": 1e3 * cpu,
                "ratio (CPU)": cpu / base_cpu,
                "ms/step (CPU, best block)": 1e3 * min(cpus[name]),
                "ratio (CPU, best)": min(cpus[name]) / min(cpus[plain]),
                "wall min-max (ms)": f"{1e3 * min(walls[name]):.3g}-{1e3 * max(walls[name]):.3g}",
            }
        )
    for row in rows:
        print(
            f"{row['step']:<50} {row['ms/step (wall, median)']:7.3f} ms "
            f"x{row['ratio (wall)']:.3f} (CPU {row['ms/step (CPU, median)']:.3f} ms "
            f"x{row['ratio (CPU)']:.3f})"
        )
    if args.quick:
        return
    notes = f"""
Data: scikit-learn `digits`, 1797 x 64 pixel columns (as float, standardized by ppgen's schema),
float32; minibatches of {BATCH} rows drawn once and shared by every variant. Network:
`ppgen.VAE(n_latent={N_LATENT}, hidden={HIDDEN})`: encoder 128 (pixels + mask) -> 128 -> 128 ->
(loc, softplus scale) of an {N_LATENT}-d diagonal Gaussian, decoder {N_LATENT} -> 128 -> 128 -> 64
Gaussian means, one learned noise scale per column. The plain PyTorch loop uses copies of the very
same modules and writes the one-sample ELBO out by hand (`PlainVAE.loss` in this script):
`zero_grad`, loss, `backward`, Adam `step`, `loss.item()`. ppgen's step is `_Trainer.step` of
`ppgen.infer.amortized`, the one `ppgen.fit` runs: the same plus a finite check of the loss and of
the gradient's norm (one host sync for both). `elbo='direct'` computes the loss with
`VAE.elbo_rows`, the same estimator as Pyro's `Trace_ELBO` on `VAE.model`/`VAE.guide` (the tests
check that both give the same number from the same seed) without tracing the Pyro programs at
every step; `elbo='trace'` runs `Trace_ELBO.differentiable_loss`. Medians over {args.repeats}
blocks of {args.steps} steps, variants interleaved; one thread (`torch.set_num_threads(1)`). The
machine is shared with other jobs, so wall times carry their load; CPU times are steadier, and
the best block of each variant (timeit's convention) is the least disturbed measurement.

{ISSUE_REFERENCE}
"""
    md, _ = write_table(
        "deep_models_step", rows, notes, title="VAE training step: ppgen vs plain PyTorch"
    )
    print(f"wrote {md}")


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {"step": section_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--section",
        action="append",
        choices=sorted(SECTIONS),
        help="run only this section (repeatable); default all",
    )
    parser.add_argument("--steps", type=int, default=200, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=15, help="timed blocks per variant")
    parser.add_argument("--quick", action="store_true", help="small run, print only")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 20, 2
    for name in args.section or list(SECTIONS):
        print(f"== {name}")
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
