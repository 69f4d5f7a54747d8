"""Deep generative models on digits: test log-likelihood of PPCA, VAE, VAE + flow, ladder VAE.

    python benchmarks/deep_models_nll.py            # full run (about 12 min on one thread)
    python benchmarks/deep_models_nll.py --quick    # smoke test: few epochs, small k, prints only

Section (b) of the deep-models benchmark (issue 6); section (a), the training step's time, is
``benchmarks/deep_models.py``. :func:`section_nll` takes that script's ``args`` namespace, so it
can be registered there as ``SECTIONS["nll"]``.

Data: scikit-learn's ``digits`` (1797 images of 8 x 8 pixels, each a count 0..16), dequantized as
``y = (count + u) / 17`` with ``u ~ U(0, 1)`` drawn once (seed 0), so that every model is a
density on [0, 1]^64, and split 75/25 stratified by digit (seed 0). Every model sees the same
``y``; ppgen standardizes the columns and adds the log-Jacobian back, so all numbers are on the
[0, 1] scale. Test NLL is exact for PPCA (``Fit.log_prob``) and the importance-weighted bound
IWAE (k = 1000) for the deep models, with the ELBO beside it and AIS on part of the test set.

Writes ``benchmarks/results/deep_models_nll.md`` and ``.csv``. Fashion-MNIST is added when
Debian's ``dataset-fashion-mnist`` files are installed (not the case where this was written).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, pin_threads, write_csv, write_table  # noqa: E402

pin_threads(1)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import ppgen  # noqa: E402
from ppgen.testing.amortized import LEVELS, dequantized_digits, refit_guide  # noqa: E402

SEED = 0  # the data: dequantization noise and split
SEEDS = (0, 1, 2)  # each deep model is trained from these seeds
N_LATENT, HIDDEN = 8, (128, 128)
PPCA_GRID = (8, 16, 32, 48, 63)
FASHION_DIRS = (Path("/usr/share/dataset-fashion-mnist"), Path("/usr/share/fashion-mnist"))


def digits(seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Dequantized digits on [0, 1]^64, split 75/25 stratified by label."""
    return dequantized_digits(seed)


def bits_per_pixel(nll: float, d: int = 64) -> float:
    """Bits per pixel of the 17-level image: the density of ``count + u`` on [0, 17)^d.

    ``log p(count + u) = log p(y) - d log 17``, and by Jensen's inequality its mean over ``u``
    bounds the log-probability of the discrete counts from below (Theis et al. 2016); a uniform
    distribution over the 17 levels gives log2(17) = 4.09 bits per pixel.
    """
    return (nll + d * math.log(LEVELS)) / (d * math.log(2))


@dataclass
class Trained:
    name: str
    fit: ppgen.Fit
    seconds: float
    seed: int = SEED


def _fit(name: str, model: Any, train: pd.DataFrame, seed: int = SEED, **options: Any) -> Trained:
    t0 = time.perf_counter()
    fit = ppgen.fit(model, train, seed=seed, progress=False, **options)
    return Trained(name, fit, time.perf_counter() - t0, seed)


def matched_hvae(vae_params: int, schema: ppgen.Schema) -> ppgen.HierarchicalVAE:
    """The ladder VAE (latents 16 and 8, one hidden layer per block) whose width gives the
    parameter count closest to ``vae_params``."""

    def count(h: int) -> int:
        return ppgen.HierarchicalVAE((16, N_LATENT), (h,)).build(schema).n_parameters()

    width = min(range(32, 257), key=lambda h: abs(count(h) - vae_params))
    return ppgen.HierarchicalVAE((16, N_LATENT), (width,))


def refit_encoder(trained: Trained, guide: str, train: pd.DataFrame, epochs: int) -> Trained:
    """:func:`ppgen.testing.amortized.refit_guide`, timed (ppgen.fit builds its networks
    afresh, so a guide for a frozen decoder is trained by that helper)."""
    t0 = time.perf_counter()
    refit = refit_guide(trained.fit, guide, train, epochs)
    name = f"VAE's decoder fixed, {guide} guide refitted"
    return Trained(name, refit, time.perf_counter() - t0, trained.seed)


def _run_row(trained: Trained, test: pd.DataFrame, k: int, particles: int) -> dict[str, Any]:
    """One fitted model's test NLL (exact or IWAE), -ELBO and costs."""
    fit = trained.fit
    t0 = time.perf_counter()
    if fit.method == "em":  # PPCA: exact, and its guide is the exact posterior (no ELBO gap)
        lp = fit.log_prob(test)
        nll, mc_se, se = -float(lp.mean()), 0.0, float(np.std(lp, ddof=1) / math.sqrt(len(lp)))
        neg_elbo, elbo_mc_se = nll, 0.0
    else:
        bound = ppgen.evaluate.iwae(fit, test, k=k, seed=SEED)
        nll, mc_se, se = -bound.mean, bound.mc_se, bound.se
        elbo = ppgen.evaluate.elbo(fit, test, num_particles=particles, seed=SEED)
        neg_elbo, elbo_mc_se = -elbo.mean, elbo.mc_se
    info = fit.info
    return {
        "model": trained.name,
        "seed": trained.seed,
        "test NLL (nats/image)": nll,
        "NLL is": "exact" if fit.method == "em" else f"IWAE k={k}",
        "NLL MC se": mc_se,
        "se over images": se,
        "test -ELBO (nats/image)": neg_elbo,
        "-ELBO MC se": elbo_mc_se,
        "bits/pixel": bits_per_pixel(nll),
        "parameters": fit.model.n_parameters(),
        "epochs (best)": f"{info['n_epochs']} ({info.get('best_epoch', info['n_epochs'])})"
        if fit.method == "svi"
        else "",
        "train s": trained.seconds,
        "eval s": time.perf_counter() - t0,
    }


def _summary(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per model: means over seeds, the spread over seeds, the epochs of each seed."""
    rows = []
    for name, g in runs.groupby("model", sort=False):
        several = len(g) > 1
        rows.append(
            {
                "model": name,
                "seeds": len(g),
                "test NLL (nats/image)": g["test NLL (nats/image)"].mean(),
                "NLL sd over seeds": g["test NLL (nats/image)"].std() if several else None,
                "NLL is": g["NLL is"].iloc[0],
                "NLL MC se": g["NLL MC se"].max(),
                "se over images": g["se over images"].mean(),
                "test -ELBO (nats/image)": g["test -ELBO (nats/image)"].mean(),
                "-ELBO sd over seeds": g["test -ELBO (nats/image)"].std() if several else None,
                "bits/pixel": g["bits/pixel"].mean(),
                "parameters": int(g["parameters"].iloc[0]),
                "epochs (best), each seed": ", ".join(g["epochs (best)"]),
                "train s (mean)": g["train s"].mean(),
                "eval s (mean)": g["eval s"].mean(),
            }
        )
    return rows


def section_nll(args: argparse.Namespace) -> None:
    """Test NLL of PPCA, VAE, VAE + flow guide and the ladder VAE on dequantized digits."""
    quick = bool(getattr(args, "quick", False))
    k, particles = (100, 20) if quick else (1000, 100)
    epochs = dict(max_epochs=20, patience=5) if quick else dict(max_epochs=600, patience=30)
    refit_epochs = 5 if quick else 200
    seeds = SEEDS[:1] if quick else SEEDS
    train, test, _, _ = digits()

    # PPCA by EM for a grid of q; the q with the lowest BIC on the training rows is "the" PPCA.
    ppca = {q: _fit(f"PPCA q={q} (EM)", ppgen.PPCA(q), train, method="em") for q in PPCA_GRID}
    best_q = min(ppca, key=lambda q: ppca[q].fit.bic(train))
    ppca[best_q].name += ", lowest BIC"
    fits = [ppca[q] for q in sorted({N_LATENT, best_q})]

    vae_name = f"VAE({N_LATENT}, {HIDDEN}), Gaussian guide"
    schema = ppgen.Schema.infer(train)
    hvae_model = matched_hvae(ppgen.VAE(N_LATENT, HIDDEN).build(schema).n_parameters(), schema)
    deep = {
        vae_name: (ppgen.VAE(N_LATENT, HIDDEN), {}),
        f"VAE({N_LATENT}, {HIDDEN}), flow guide (IAF x2)": (
            ppgen.VAE(N_LATENT, HIDDEN, guide="flow"),
            {},
        ),
        f"HierarchicalVAE((16, {N_LATENT}), {hvae_model.hidden}), KL warm-up 20": (
            hvae_model,
            {"kl_warmup": min(20, epochs["max_epochs"])},
        ),
    }
    vaes = {}
    for seed in seeds:
        for name, (model, options) in deep.items():
            fits.append(_fit(name, model, train, seed, **epochs, **options))
            print(f"seed {seed}: {name} in {fits[-1].seconds:.1f} s")
        vaes[seed] = next(t for t in fits if t.name == vae_name and t.seed == seed)
        fits += [refit_encoder(vaes[seed], g, train, refit_epochs) for g in ("gaussian", "flow")]

    runs = pd.DataFrame([_run_row(t, test, k, particles) for t in fits])
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(runs.drop(columns=["NLL is", "se over images"]).round(3).to_string(index=False))

    # AIS on the first test images: an estimate that does not use the guide at all.
    n_ais = 20 if quick else 100
    ais_steps, ais_chains = (50, 4) if quick else (300, 16)
    sub = test.iloc[:n_ais]
    t0 = time.perf_counter()
    ais = ppgen.evaluate.ais(
        vaes[SEEDS[0]].fit, sub, n_steps=ais_steps, n_chains=ais_chains, seed=SEED, progress=False
    )
    ais_seconds = time.perf_counter() - t0
    iwae_sub = ppgen.evaluate.iwae(vaes[SEEDS[0]].fit, sub, k=k, seed=SEED)
    print(f"AIS on {n_ais} test images: NLL {-ais.mean:.3f} (IWAE {-iwae_sub.mean:.3f})")

    fashion = [d for d in FASHION_DIRS if d.is_dir()]
    if not fashion:
        print("Fashion-MNIST: Debian's dataset-fashion-mnist is not installed; skipped")
    if quick:
        return
    grid = ", ".join(f"q={q}: {-t.fit.score(test):.2f}" for q, t in sorted(ppca.items()))
    ais_text = (
        f"AIS (prior start, adaptive schedule, T={ais_steps}, {ais_chains} chains, HMC) for the "
        f"Gaussian VAE of seed {SEEDS[0]} on the first {n_ais} test images: NLL "
        f"{-ais.mean:.3f} (MC se {ais.mc_se:.3f}, acceptance {ais.acceptance:.2f}, "
        f"{ais_seconds:.0f} s), against IWAE k={k} {-iwae_sub.mean:.3f} on the same images: "
        f"IWAE k={k} falls at least {ais.mean - iwae_sub.mean:.2f} nats per image short of the "
        "log-likelihood (AIS is itself a stochastic lower bound), so the deep models' NLLs above "
        "are upper bounds that are loose by about that much."
    )
    notes = _notes(runs, list(deep), best_q, grid, refit_epochs, ais_text, k)
    if fashion:  # pragma: no cover - not installed where this was written
        notes += f"\nFashion-MNIST files found in {fashion[0]} but not benchmarked yet.\n"
    else:
        notes += (
            "\nFashion-MNIST: Debian's `dataset-fashion-mnist` is not installed here; skipped.\n"
        )
    per_seed = "## Every run\n\n" + markdown_table(runs.to_dict("records"))
    md, _ = write_table(
        "deep_models_nll",
        _summary(runs),
        notes,
        title="Deep generative models: test log-likelihood on digits",
        extra=per_seed,
    )
    write_csv("deep_models_nll_runs", runs.to_dict("records"))
    print(f"wrote {md}")


def _verdict(ok: int, n: int) -> str:
    return f"**{'met' if ok == n else 'missed' if ok == 0 else 'mixed'}** ({ok} of {n} seeds)"


def _notes(
    runs: pd.DataFrame,
    deep: list[str],
    best_q: int,
    grid: str,
    refit_epochs: int,
    ais_text: str,
    k: int,
) -> str:
    vae, flow, hvae = deep
    fixed_g, fixed_f = (f"VAE's decoder fixed, {g} guide refitted" for g in ("gaussian", "flow"))
    by_seed = runs[runs["seed"].isin(SEEDS)].pivot_table(
        index="seed", columns="model", values=["test NLL (nats/image)", "test -ELBO (nats/image)"]
    )
    nll, neg_elbo = by_seed["test NLL (nats/image)"], by_seed["test -ELBO (nats/image)"]
    ppca_nll = float(
        runs.loc[runs["model"].str.endswith("lowest BIC"), "test NLL (nats/image)"].iloc[0]
    )
    n = len(nll)
    d1 = ppca_nll - nll[vae]  # > 0: the VAE is better
    d2 = neg_elbo[vae] - neg_elbo[flow]  # > 0: the flow guide's ELBO is higher
    d2b = neg_elbo[fixed_g] - neg_elbo[fixed_f]
    d3 = nll[vae] - nll[hvae]  # > 0: the ladder VAE is better
    params = runs.groupby("model")["parameters"].first()

    def per_seed(d: pd.Series) -> str:
        return ", ".join(f"{v:+.2f}" for v in d)

    return f"""
Data: scikit-learn `digits`, 1797 images of 8 x 8 pixel counts 0..16, dequantized once as
`y = (count + u) / 17`, `u ~ U(0, 1)` (NumPy seed {SEED}), split 75/25 stratified by digit
(1347 training, 450 test images; scikit-learn `train_test_split`, `random_state={SEED}`). All
models get the same `y`. NLL is minus the log density per image on [0, 1]^64 in nats (negative:
the densities exceed 1 on the unit cube); ppgen fits standardized columns and adds the
standardization's log-Jacobian back, in `Fit.log_prob` and in `ppgen.evaluate.iwae/elbo/ais`
alike, so every number is on the same scale. `bits/pixel` is `(NLL + 64 log 17) / (64 log 2)`:
the density of `count + u` on [0, 17)^64 per pixel in bits, an upper bound on the discrete
images' bits per pixel (Theis et al. 2016); the uniform distribution over 17 levels gives 4.09.

Models: PPCA by EM on all training images, q in {PPCA_GRID}; exact test NLL by q: {grid}
(lowest BIC on the training images: q={best_q}; q=63 is the full-covariance Gaussian). The deep
models are `ppgen.fit(..., method="svi", seed=s)` for s in {SEEDS} with Adam (lr 1e-3),
minibatches of 128, at most 600 epochs, early stopping on 10% of the training images held out
(patience 30, the best epoch's weights kept); Gaussian decoder heads with one learned noise
scale per pixel. The flow guide is ppgen's default `AmortizedFlow` (2 affine inverse
autoregressive transforms, hidden (64, 64), conditioned on the encoder's last hidden layer). The
ladder VAE's width is the one whose parameter count is closest to the one-layer VAE's. The table
gives means over the seeds; "Every run" below lists each. `-ELBO` uses 100 particles per image,
IWAE k={k}; `NLL MC se` is the largest Monte-Carlo standard error of a run's mean, `se over
images` the sampling standard error of a mean over the 450 test images (differences between
models on the same images are far more precise than it suggests). The two "decoder fixed" rows
take each seed's trained Gaussian VAE and train only a guide for its frozen decoder: its
Gaussian encoder, or the same encoder with a flow starting at the identity, {refit_epochs}
epochs each, same seed and minibatches.

{ais_text}

What issue 6 asks to show (differences per seed {list(SEEDS)}, positive when the claim holds):

1. VAE test NLL (IWAE k={k}) < PPCA exact test NLL: {_verdict(int((d1 > 0).sum()), n)}. VAE
   {nll[vae].mean():.2f} (mean over seeds) against the best PPCA (q={best_q}) {ppca_nll:.2f}
   nats per image; differences {per_seed(d1)} nats, {d1.mean() / (64 * math.log(2)):+.3f}
   bits/pixel on average.
2. Flow-guide ELBO >= Gaussian-guide ELBO for the same decoder. Trained jointly (same decoder
   architecture, each with its own decoder): {_verdict(int((d2 >= 0).sum()), n)}, test ELBO
   flow minus Gaussian {per_seed(d2)} nats. With the very same trained decoder, guides refitted
   alike: {_verdict(int((d2b >= 0).sum()), n)}, {per_seed(d2b)} nats. Trained jointly, the
   guide also shapes the decoder it is trained with, and the seed-to-seed spread of the
   Gaussian VAE's test ELBO (sd {neg_elbo[vae].std():.2f}) is as large as the differences; the
   fixed-decoder comparison isolates the guide family, and there the flow wins every time.
3. Ladder VAE's NLL <= one-layer VAE's NLL at matched parameter count
   ({params[hvae]} vs {params[vae]} parameters): {_verdict(int((d3 >= 0).sum()), n)},
   differences {per_seed(d3)} nats (mean {d3.mean():+.2f}).

Theis, L., van den Oord, A. & Bethge, M. (2016). A note on the evaluation of generative models.
*ICLR*.
"""


# -- issue 15: diffusion rows ------------------------------------------------------------------
def diffusion_bound(fit: ppgen.Fit, data: pd.DataFrame, repeats: int, seed: int = SEED) -> Any:
    """Per-image bound (nats, data scale) of a Diffusion fit: the analytic-KL sum over every
    step (``Diffusion.bound_terms``) averaged over ``repeats`` draws, plus the log-Jacobian;
    and its Monte-Carlo standard error of the mean over images."""
    import torch

    from ppgen._utils import seeded
    from ppgen.evaluate.estimate import jacobian

    enc = fit.encode(data)
    with seeded(seed), torch.no_grad():
        draws = torch.stack([fit.model.bound_terms(enc.x).sum(-1) for _ in range(repeats)])
    draws = draws.double().cpu().numpy()
    per_image = draws.mean(0) + jacobian(fit, enc.x, enc.mask)
    mc_se = math.sqrt(draws.var(0, ddof=1).sum() / repeats) / draws.shape[1]
    return per_image, mc_se


def section_diffusion(args: argparse.Namespace) -> None:
    """Diffusion rows: test bound on dequantized digits, same data, split, units and seeds."""
    import torch

    train, test, _, _ = digits()
    seeds = SEEDS[: args.seeds]
    rows = []
    for seed in seeds:
        model = ppgen.Diffusion(
            args.n_steps,
            hidden=tuple(args.hidden),
            variance=args.variance,
            t_sampling=args.t_sampling,
        )
        trained = _fit(
            f"Diffusion(T={args.n_steps}, {tuple(args.hidden)}, {args.variance}, "
            f"t {args.t_sampling})",
            model,
            train,
            seed,
            max_epochs=args.epochs,
            patience=args.patience,
            lr=args.lr,
            dtype=torch.float32,
        )
        fit = trained.fit
        t0 = time.perf_counter()
        per_image, mc_se = diffusion_bound(fit, test, args.repeats)
        eval_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit.sample(1000, seed=seed)
        sample_s = time.perf_counter() - t0
        elbo = ppgen.evaluate.elbo(fit, test, num_particles=args.particles, seed=SEED)
        nll = -float(per_image.mean())
        rows.append(
            {
                "model": trained.name,
                "seed": seed,
                "test -bound (nats/image)": nll,
                "bound is": f"analytic KL per step, {args.repeats} draws",
                "MC se": mc_se,
                "se over images": float(per_image.std(ddof=1) / math.sqrt(len(per_image))),
                "test -ELBO joint weights (nats/image)": -elbo.mean,
                "-ELBO MC se": elbo.mc_se,
                "bits/pixel": bits_per_pixel(nll),
                "parameters": fit.model.n_parameters(),
                "epochs (best)": f"{fit.info['n_epochs']} ({fit.info['best_epoch']})",
                "train s": trained.seconds,
                "sample s / 1000 images": sample_s,
                "eval s": eval_s,
            }
        )
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()})
    if args.quick:
        return
    notes = f"""
Command: `python benchmarks/deep_models_nll.py --diffusion --n-steps {args.n_steps} --hidden
{",".join(map(str, args.hidden))} --variance {args.variance} --t-sampling {args.t_sampling}
--epochs {args.epochs} --patience {args.patience} --lr {args.lr} --seeds {args.seeds}`.
Data, split and units as `deep_models_nll.md` (bits/pixel of the 17-level images; the goal of
issue 15 is <= 2.60 bits/pixel, below the ladder VAE's 2.68 and the VAE's 2.77). float32, one
thread, Adam with minibatches of 128, early stopping on 10% of the training images with the
random-t estimator's validation bound. The test bound is the full sum of Diffusion's analytic
per-step terms (prior KL, every step's KL at one draw of y_t, the decoder term) averaged over
{args.repeats} draws, plus the standardization's log-Jacobian; beside it `ppgen.evaluate.elbo`
with {args.particles} joint draws of the whole chain (the same bound, another estimator).
Sampling is ancestral, T network passes. The machine was shared (load ~15 on 2 cores), so the
times are inflated.
"""
    write_table(
        "deep_models_nll_diffusion",
        rows,
        notes,
        title="Diffusion on digits: test bound (issue 15)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, print only")
    parser.add_argument("--diffusion", action="store_true", help="only the diffusion rows")
    parser.add_argument("--n-steps", type=int, default=100)
    parser.add_argument(
        "--hidden", type=lambda s: [int(h) for h in s.split(",")], default=[256] * 3
    )
    parser.add_argument("--variance", default="learned")
    parser.add_argument("--t-sampling", default="uniform")
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--patience", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--particles", type=int, default=20)
    args = parser.parse_args()
    if args.diffusion:
        section_diffusion(args)
    else:
        section_nll(args)


if __name__ == "__main__":
    main()
