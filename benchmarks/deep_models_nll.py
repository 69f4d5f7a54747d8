"""Deep generative models on digits: test log-likelihood of PPCA, VAE, VAE + flow, ladder VAE.

    python benchmarks/deep_models_nll.py            # full run (about 12 min on one thread)
    python benchmarks/deep_models_nll.py --quick    # smoke test: few epochs, small k, prints only
    python benchmarks/deep_models_nll.py --section exact   # autoregressive and flow rows
    python benchmarks/deep_models_nll.py --binary          # RBM, VAE, autoregressive: binary
    python benchmarks/deep_models_nll.py --binary --rows ar  # only the autoregressive row

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


# -- issue 17: the exact-likelihood families ---------------------------------------------------
#: (name, model, training options) of the autoregressive and flow rows, at a CPU-sized scale.
def exact_models(quick: bool) -> list[tuple[str, Any, dict[str, Any]]]:
    epochs = dict(max_epochs=5, patience=5) if quick else dict(max_epochs=150, patience=15)
    return [
        (
            "Autoregressive(hidden=(256, 256), components=5)",
            ppgen.Autoregressive(hidden=(256, 256), components=5),
            {**epochs, "lr": 1e-3},
        ),
        (
            "Flow(maf, 5 transforms, hidden=(64, 64)), lr 3e-4",
            ppgen.Flow("maf", transforms=5, hidden=(64, 64)),
            {**epochs, "lr": 3e-4},
        ),
        (
            "Flow(realnvp, 6 transforms, hidden=(128, 128))",
            ppgen.Flow("realnvp", transforms=6, hidden=(128, 128)),
            {**epochs, "lr": 1e-3},
        ),
    ]


def section_exact(args: argparse.Namespace) -> None:
    """Exact test NLL of the autoregressive and flow models on the same dequantized digits,
    beside PPCA's exact figure; training time and the time to sample 1,000 images."""
    quick = bool(getattr(args, "quick", False))
    train, test, _, _ = digits()
    ppca = _fit("PPCA q=63 (EM), the full Gaussian", ppgen.PPCA(63), train, method="em")
    rows = []
    for name, model, options in [(ppca.name, None, None), *exact_models(quick)]:
        trained = ppca if model is None else _fit(name, model, train, SEED, **options)
        fit = trained.fit
        t0 = time.perf_counter()
        lp = fit.log_prob(test)
        eval_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit.sample(1000, seed=SEED)
        sample_s = time.perf_counter() - t0
        nll = -float(lp.mean())
        info = fit.info
        rows.append(
            {
                "model": name,
                "test NLL (nats/image)": nll,
                "NLL is": "exact (Fit.log_prob)",
                "se over images": float(np.std(lp, ddof=1) / math.sqrt(len(lp))),
                "bits/pixel": bits_per_pixel(nll),
                "parameters": fit.model.n_parameters(),
                "epochs (best)": f"{info['n_epochs']} ({info.get('best_epoch')})"
                if fit.method == "svi"
                else "",
                "train s": trained.seconds,
                "eval s": eval_s,
                "sample 1,000 s": sample_s,
            }
        )
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()})
    if quick:
        return
    notes = f"""
Same data and split as `deep_models_nll.md` (dequantized digits on [0, 1]^64, 1347 training
and 450 test images, seed {SEED}). Every NLL here is exact: `Fit.log_prob` of the test images
(the columns are continuous, so the flows need no dequantization of their own and the
autoregressive model's mixture-density heads are exact conditionals). Training: `ppgen.fit`,
seed {SEED} only, Adam (lr 1e-3 unless the row says otherwise), minibatches of 128, early
stopping on 10% held-out (patience 15, at most 150 epochs). `sample 1,000 s` is
`fit.sample(1000)`: the autoregressive model takes 64 network passes (one per pixel), MAF
inverts 5 autoregressive transforms (64 passes each), RealNVP's coupling layers invert in
one pass each. One thread.

Issue 17's goals: the autoregressive model's NLL below the ladder VAE's bound (2.68 bits/pixel,
IWAE k=1000, `deep_models_nll.md`) and PPCA's exact -49.2 nats/image; flow sampling of 1,000 rows
under a second.
"""
    md, _ = write_table(
        "deep_models_nll_exact",
        rows,
        notes,
        title="Autoregressive and flow models: exact test log-likelihood on digits",
    )
    print(f"wrote {md}")


# -- binarized digits: energy-based models (issue 18) --------------------------------------------
def binarized_digits(seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Digits binarized at half intensity (count >= 8), split 75/25 stratified by label as
    :func:`digits`; pixels constant on the training images are dropped from both parts (an RBM
    cannot fit a constant unit, and every model then sees the same pixels)."""
    from sklearn.model_selection import train_test_split

    frame = ppgen.datasets.load("digits")
    label = frame.pop("target")
    binary = (frame >= 8).astype("int64")
    train, test = train_test_split(binary, test_size=0.25, stratify=label, random_state=seed)
    keep = [c for c in train.columns if train[c].nunique() > 1]
    return train[keep], test[keep]


def _rbm_row(name: str, fit: ppgen.Fit, seconds: float, test, steps: int, chains: int) -> dict:
    """Test NLL of an RBM by AIS of log Z (base fitted to the test images' marginals), with the
    exact value by enumeration when H <= 24; the AIS time is CPU seconds (one thread)."""
    c0 = time.process_time()
    res = ppgen.evaluate.ais(fit, test, n_steps=steps, n_chains=chains, seed=SEED)
    ais_cpu = time.process_time() - c0
    exact = longer = None
    if fit.model.n_hidden > 20:  # no exact value: a run 3 x longer with 2 x the chains
        longer = -ppgen.evaluate.ais(fit, test, n_steps=3 * steps, n_chains=2 * chains).mean
    else:
        log_z = float(fit.model.exact_log_partition(dict(fit.params)))
        exact = -float(np.mean(res.per_row + res.log_z - log_z))
    t0 = time.perf_counter()
    fit.sample(100, seed=SEED)
    return {
        "model": name,
        "test NLL (nats/image)": -res.mean,
        "NLL is": f"AIS log Z ({steps} steps, {chains} chains)",
        "NLL MC se": res.mc_se,
        "se over images": res.se,
        "exact NLL (enumerated log Z)": exact,
        "NLL, AIS 3x steps 2x chains": longer,
        "log Z (AIS)": res.log_z,
        "AIS CPU s": ais_cpu,
        "parameters": fit.model.n_parameters(),
        "train s": seconds,
        "sample s (100 images)": time.perf_counter() - t0,
    }


#: The autoregressive row of the binary table (issue 18 follow-up): Bernoulli heads, since the
#: 0/1 integer columns are read as binary.
BINARY_AR = "Autoregressive(hidden=(256, 256)), Bernoulli heads"


def _binary_ar_row(train: pd.DataFrame, test: pd.DataFrame, quick: bool) -> dict[str, Any]:
    """Exact test NLL (``Fit.log_prob``) of an autoregressive model on the binarized digits,
    trained by Adam with early stopping (patience 30, at most 2000 epochs: at 150 epochs the
    held-out loss was still improving)."""
    epochs = dict(max_epochs=5, patience=5) if quick else dict(max_epochs=2000, patience=30)
    model = ppgen.Autoregressive(hidden=(256, 256))
    trained = _fit(BINARY_AR, model, train, lr=1e-3, **epochs)
    fit = trained.fit
    kinds = {c.kind for c in fit.schema.columns}
    if kinds != {"binary"}:  # the row's label says Bernoulli heads: make sure of it
        raise RuntimeError(f"expected binary columns only, the schema has {sorted(kinds)}")
    t0 = time.perf_counter()
    lp = fit.log_prob(test)
    eval_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit.sample(100, seed=SEED)
    info = fit.info
    return {
        "model": BINARY_AR,
        "test NLL (nats/image)": -float(lp.mean()),
        "NLL is": "exact (Fit.log_prob)",
        "se over images": float(np.std(lp, ddof=1) / math.sqrt(len(lp))),
        "parameters": fit.model.n_parameters(),
        "epochs (best)": f"{info['n_epochs']} ({info.get('best_epoch')})",
        "train s": trained.seconds,
        "sample s (100 images)": time.perf_counter() - t0,
        "eval s": eval_s,
    }


def _merge_rows(name: str, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of ``results/<name>.csv`` with ``new`` replacing rows of the same model (or
    appended): lets one row be rerun without rerunning the others."""
    path = Path(__file__).resolve().parent / "results" / f"{name}.csv"
    old = pd.read_csv(path).to_dict("records") if path.exists() else []
    replaced = {row["model"] for row in new}
    # Empty CSV cells come back as NaN: back to None, which the CSV writes as an empty cell.
    old = [{k: None if v != v else v for k, v in row.items()} for row in old]
    return [row for row in old if row["model"] not in replaced] + new


def _earlier_run(name: str, rerun: str) -> str:
    """A "Runs" section saying that ``rerun`` comes from this run (the machine below) and the
    other rows from the run whose machine block ``results/<name>.md`` recorded."""
    path = Path(__file__).resolve().parent / "results" / f"{name}.md"
    text = path.read_text() if path.exists() else ""
    if "## Runs" in text:  # already merged once: keep the first run's record
        earlier = text.split("## Runs", 1)[1].split("## Machine", 1)[0].split("\n\n", 2)[-1]
    else:
        earlier = text.split("## Machine", 1)[-1].strip() if "## Machine" in text else ""
    return (
        f"## Runs\n\n{rerun[0].upper()}{rerun[1:]} comes from a run of `--rows ar` alone "
        f"(machine below); the other rows from the full run on this machine:\n\n"
        f"{earlier.strip()}"
    )


def _binary_notes(train: pd.DataFrame, epochs: int, steps: int, chains: int, k: int) -> str:
    """The notes of the binarized-digits table."""
    return f"""
Data: scikit-learn `digits` binarized at half intensity (pixel count >= 8 of 16), split 75/25
stratified by digit as in `deep_models_nll.md` (1347 training, 450 test images); the
{64 - train.shape[1]} pixels constant on the training images are dropped, leaving
{train.shape[1]} binary pixels per image. NLL is minus the log probability of the binary image in
nats (a probability, not a density: not comparable with the dequantized table).

RBMs: `ppgen.fit(ppgen.RBM(H), train)` by contrastive divergence (`method="cd"`), SGD with
momentum 0.9, learning rate 0.05, minibatches of 20, weight decay 1e-4, {epochs} epochs; CD-1
restarts its negative chain at the minibatch, PCD-1 keeps persistent chains (Tieleman 2008;
100 chains, learning rate 0.01). Test NLL `F(v) + log Z` with log Z by `ppgen.evaluate.ais`
({steps} intermediate distributions spaced as Salakhutdinov & Murray 2008, {chains} chains,
base: independent pixels with the test images' marginals, block Gibbs transitions); `NLL MC se`
is the delta-method standard error of log Z (every image shares it), `AIS CPU s` the CPU time
of that estimate on one thread. For H = 20 the exact log Z by enumerating the 2^20 hidden
states is given beside it; for H = 100 a run with 3 times the steps and twice the chains.
The VAE is `ppgen.VAE({N_LATENT}, {HIDDEN})` with Bernoulli heads for the binary pixels,
Adam, early stopping as in the dequantized table; its NLL is IWAE k={k}, an upper bound.
The autoregressive model is `ppgen.Autoregressive(hidden=(256, 256))` (MADE, one order in the
table's column order): its 0/1 integer columns are read as binary, so every head is a
Bernoulli and `Fit.log_prob` is the exact log probability of the image; Adam (lr 1e-3),
minibatches of 128, early stopping on 10% held-out (patience 30, at most 2000 epochs), seed
{SEED}. `sample s` is `fit.sample(100)` (53 network passes for the autoregressive model).
The EBM (`ppgen.EBM`) has no row: it is a density over continuous rows (a Langevin-trained
energy with a Gaussian envelope, sampled by MALA), so on 0/1 pixels it would need
dequantization, and its NLL would then be a density on the dequantized cube, not the
probability of a binary image this table compares (that comparison is the dequantized table's).
"""


def section_binary(args: argparse.Namespace) -> None:
    """Test NLL of RBMs (CD-1, PCD), a Bernoulli VAE and an autoregressive model on binarized
    digits; ``args.rows == "ar"`` runs only the autoregressive row and merges it into the
    existing table."""
    quick = bool(getattr(args, "quick", False))
    train, test = binarized_digits()
    epochs = 5 if quick else 100
    steps, chains = (500, 20) if quick else (10000, 100)
    k = 100 if quick else 1000
    notes = _binary_notes(train, epochs, steps, chains, k)
    title = "Energy-based and deep models: test log-likelihood on binarized digits"
    if getattr(args, "rows", "all") == "ar":  # only the autoregressive row, merged in
        row = _binary_ar_row(train, test, quick)
        print(row)
        if not quick:
            rows = _merge_rows("deep_models_nll_binary", [row])
            extra = _earlier_run("deep_models_nll_binary", f"the row `{BINARY_AR}`")
            md, _ = write_table("deep_models_nll_binary", rows, notes, title=title, extra=extra)
            print(f"wrote {md}")
        return
    sgd = {"lr": 0.05, "batch_size": 20, "momentum": 0.9, "max_epochs": epochs}
    # PCD's chains follow the parameters only at a smaller learning rate (0.05 with 20 chains
    # gave 24.9 nats for H = 20, against 18.9 for CD-1).
    pcd = {"k": 1, "persistent": True, "n_chains": 100, "lr": 0.01}
    rbms = [
        ("RBM(20), CD-1", ppgen.RBM(20), {"k": 1}),
        ("RBM(20), PCD-1", ppgen.RBM(20), pcd),
        ("RBM(100), CD-1", ppgen.RBM(100), {"k": 1}),
        ("RBM(100), PCD-1", ppgen.RBM(100), pcd),
    ]
    rows = []
    for name, model, options in rbms:
        trained = _fit(name, model, train, **{**sgd, **options})
        rows.append(_rbm_row(name, trained.fit, trained.seconds, test, steps, chains))
        print({k: v for k, v in rows[-1].items() if k != "model"}, name)
    vae_epochs = dict(max_epochs=20, patience=5) if quick else dict(max_epochs=300, patience=30)
    vae_name = f"VAE({N_LATENT}, {HIDDEN}), Bernoulli heads"
    vae = _fit(vae_name, ppgen.VAE(N_LATENT, HIDDEN), train, **vae_epochs)
    t0 = time.perf_counter()
    bound = ppgen.evaluate.iwae(vae.fit, test, k=k, seed=SEED)
    rows.append(
        {
            "model": vae.name,
            "test NLL (nats/image)": -bound.mean,
            "NLL is": f"IWAE k={k} (upper bound)",
            "NLL MC se": bound.mc_se,
            "se over images": bound.se,
            "parameters": vae.fit.model.n_parameters(),
            "train s": vae.seconds,
            "eval s": time.perf_counter() - t0,
        }
    )
    print(rows[-1])
    rows.append(_binary_ar_row(train, test, quick))
    print(rows[-1])
    if quick:
        return
    md, _ = write_table("deep_models_nll_binary", rows, notes, title=title)
    print(f"wrote {md}")


# -- issue 15: diffusion rows ------------------------------------------------------------------
def diffusion_bound(fit: ppgen.Fit, data: pd.DataFrame, repeats: int, seed: int = SEED) -> Any:
    """Per-image bound (nats, data scale) of a Diffusion fit: the analytic-KL sum over every
    step (``Diffusion.bound_terms``) averaged over ``repeats`` draws, plus the log-Jacobian;
    and its Monte-Carlo standard error of the mean over images."""
    import torch

    from ppgen._utils import seeded
    from ppgen.evaluate.estimate import jacobian

    enc = fit.encode(data)
    model = fit.model

    def one() -> torch.Tensor:
        # Continuous time: the continuous bound with 64 stratified times per draw.
        if model.time == "continuous":
            return model.continuous_bound(enc.x, points=64)
        return model.bound_terms(enc.x).sum(-1)

    with seeded(seed), torch.no_grad():
        draws = torch.stack([one() for _ in range(repeats)])
    draws = draws.double().cpu().numpy()
    per_image = draws.mean(0) + jacobian(fit, enc.x, enc.mask)
    mc_se = math.sqrt(draws.var(0, ddof=1).sum() / repeats) / draws.shape[1]
    return per_image, mc_se


def independent_levels_bpp(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """Bits/pixel of the simplest discrete reference: each pixel's level (``floor(17 y)``) an
    independent categorical with the training frequencies (+1/2 each), density flat within the
    bin: a baseline for the discretized decoder's rows."""
    k_train = np.floor(train.to_numpy() * LEVELS).astype(int).clip(0, LEVELS - 1)
    k_test = np.floor(test.to_numpy() * LEVELS).astype(int).clip(0, LEVELS - 1)
    total = 0.0
    for j in range(k_train.shape[1]):
        counts = np.bincount(k_train[:, j], minlength=LEVELS) + 0.5
        total += -np.log(counts[k_test[:, j]] / counts.sum()).mean()
    return total / (k_train.shape[1] * math.log(2))


def _diffusion_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Train and score one seed's diffusion model (one thread; a row of the table)."""
    import torch

    pin_threads(1)
    train, test, _, _ = digits()
    model = ppgen.Diffusion(
        args.n_steps,
        args.schedule,
        hidden=tuple(args.hidden),
        variance=args.variance,
        t_sampling=args.t_sampling,
        time=args.time,
        log_snr_range=tuple(args.log_snr),
        dropout=args.dropout,
        bins=args.bins,
        learned_schedule=args.learned_schedule,
    )
    label = f"dropout {args.dropout}, " if args.dropout else ""
    label += f"{args.bins} bins, " if args.bins else ""
    label += f"EMA {args.ema}, " if args.ema is not None else ""
    label += "learned schedule, " if args.learned_schedule else ""
    label += (
        f"continuous time, log SNR {tuple(args.log_snr)}"
        if args.time == "continuous"
        else f"{args.schedule}, {model.variance}, t {args.t_sampling}"
    )
    cpu0 = time.process_time()  # one thread: the training's CPU seconds
    trained = _fit(
        f"Diffusion(T={args.n_steps}, {tuple(args.hidden)}, {label})",
        model,
        train,
        seed,
        max_epochs=args.epochs,
        patience=args.patience,
        lr=args.lr,
        dtype=torch.float32,
        **({} if args.ema is None else {"ema": args.ema}),
    )
    train_cpu = time.process_time() - cpu0
    fit = trained.fit
    t0 = time.perf_counter()
    per_image, mc_se = diffusion_bound(fit, test, args.repeats)
    eval_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit.sample(1000, seed=seed)
    sample_s = time.perf_counter() - t0
    elbo = ppgen.evaluate.elbo(fit, test, num_particles=args.particles, seed=SEED)
    nll = -float(per_image.mean())
    return {
        "model": trained.name,
        "seed": seed,
        "test -bound (nats/image)": nll,
        "bound is": (
            f"continuous-time bound, 64 stratified u, {args.repeats} draws"
            if args.time == "continuous"
            else f"analytic KL per step, {args.repeats} draws"
        ),
        "MC se": mc_se,
        "se over images": float(per_image.std(ddof=1) / math.sqrt(len(per_image))),
        "test -ELBO joint weights (nats/image)": -elbo.mean,
        "-ELBO MC se": elbo.mc_se,
        "bits/pixel": bits_per_pixel(nll),
        "parameters": fit.model.n_parameters(),
        "epochs (best)": f"{fit.info['n_epochs']} ({fit.info['best_epoch']})",
        "train s": trained.seconds,
        "train CPU s": train_cpu,
        "sample s / 1000 images": sample_s,
        "eval s": eval_s,
    }


def section_diffusion(args: argparse.Namespace) -> None:
    """Diffusion rows: test bound on dequantized digits, same data, split, units and seeds."""
    train, test, _, _ = digits()
    seeds = SEEDS[: args.seeds] if args.seed is None else (args.seed,)
    if args.jobs > 1:
        # Seeds in parallel processes of one thread each (the CPU seconds stay per seed).
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("fork")) as pool:
            rows = list(pool.map(_diffusion_seed, [args] * len(seeds), seeds))
    else:
        rows = [_diffusion_seed(args, seed) for seed in seeds]
    for row in rows:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    if args.quick:
        return
    if args.time == "continuous":
        bound_text = (
            "The test bound is VDM's continuous-time bound (prior KL, decoder term, and the "
            "diffusion loss at 64 stratified times u per draw; `Diffusion.continuous_bound`) "
            f"averaged over {args.repeats} draws"
        )
        elbo_text = "the bound of the T-step discretization, lower than the continuous one"
    else:
        bound_text = (
            "The test bound is the full sum of Diffusion's analytic per-step terms (prior KL, "
            "every step's KL at one draw of y_t, the decoder term) averaged over "
            f"{args.repeats} draws"
        )
        elbo_text = "the same bound, another estimator"
    bins_text = ""
    if args.bins:
        bins_text = (
            f"With `--bins {args.bins}` the model is `Diffusion(bins={args.bins})`: the chain "
            "diffuses each pixel's bin centre and the decoder is discretized, p(y | y_1) = "
            f"P(floor({args.bins} y) | y_1) x {args.bins}, uniform within the bin (VDM's "
            "decoder): a proper density on the dequantized y (tested: it integrates to 1 over "
            "[0, 1]), so its bound compares with the VAE's continuous density on the same y "
            "(the optimum of any density of uniformly dequantized data is flat within bins, "
            "which a Gaussian decoder cannot be). For scale: independent per-pixel categoricals "
            "over the 17 levels with training frequencies, flat within bins, give "
            f"{independent_levels_bpp(train, test):.3f} bits/pixel on this test set, already "
            "below the continuous-density models of `deep_models_nll.md`, which pay for the "
            "within-bin shape: the discretized rows' lead over those models measures that as "
            "much as better modelling of the images; their lead over the independent "
            "categoricals is the images' structure."
        )
    notes = f"""
Command: `python benchmarks/deep_models_nll.py --diffusion --n-steps {args.n_steps} --hidden
{",".join(map(str, args.hidden))} --schedule {args.schedule} --time {args.time}
--log-snr={",".join(map(str, args.log_snr))} --dropout {args.dropout}
--variance {args.variance} --t-sampling
{args.t_sampling} --epochs {args.epochs} --patience {args.patience}
--lr {args.lr} --seeds {args.seeds} --jobs {args.jobs}{f" --bins {args.bins}" if args.bins else ""}{
        f" --ema {args.ema}" if args.ema is not None else ""
    }{" --learned-schedule" if args.learned_schedule else ""}`.
Data, split and units as `deep_models_nll.md` (bits/pixel of the 17-level images; the goal of
issue 15 is <= 2.60 bits/pixel, below the ladder VAE's 2.68 and the VAE's 2.77). float32, one
thread, Adam with minibatches of 128, early stopping on 10% of the training images with the
random-t estimator's validation bound (with `--ema`, the bound of the weights' moving average,
which is also the model kept). "train CPU s" is the training's process CPU time (one thread). {
        bound_text
    }, plus the standardization's
log-Jacobian; beside it `ppgen.evaluate.elbo` with {args.particles} joint draws of the whole
T-step chain ({elbo_text}). Sampling is ancestral, T network passes. The machine was shared
with other jobs (load below), so the times are only indicative.
{bins_text}
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
    parser.add_argument(
        "--section",
        choices=("nll", "exact", "binary", "diffusion"),
        default="nll",
        help="nll: PPCA and the deep latent models (the default); exact: the autoregressive "
        "and flow models (issue 17); binary: RBMs, a Bernoulli VAE and an autoregressive model "
        "on binarized digits "
        "(issue 18); diffusion: the diffusion rows (issue 15)",
    )
    parser.add_argument("--binary", action="store_true", help="same as --section binary")
    parser.add_argument("--diffusion", action="store_true", help="same as --section diffusion")
    parser.add_argument(
        "--rows",
        choices=("all", "ar"),
        default="all",
        help="binary section: all rows, or only the autoregressive row, merged into the "
        "existing results table (the RBM and VAE rows kept)",
    )
    # Options of the diffusion section.
    parser.add_argument("--n-steps", type=int, default=100)
    parser.add_argument(
        "--hidden", type=lambda s: [int(h) for h in s.split(",")], default=[256] * 3
    )
    parser.add_argument("--variance", default=None)
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--time", default="discrete", choices=("discrete", "continuous"))
    parser.add_argument(
        "--log-snr", type=lambda s: [float(v) for v in s.split(",")], default=[-6.0, 10.0]
    )
    parser.add_argument("--t-sampling", default="uniform")
    parser.add_argument(
        "--learned-schedule", action="store_true", help="diffusion: VDM's learned schedule"
    )
    parser.add_argument(
        "--ema", type=float, default=None, help="diffusion: decay of the weights' moving average"
    )
    parser.add_argument(
        "--bins",
        type=int,
        default=None,
        help="diffusion: discretized decoder over this many levels per pixel (17 for digits)",
    )
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--patience", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    parser.add_argument("--seed", type=int, default=None, help="diffusion: only this seed")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--jobs", type=int, default=1, help="diffusion: seeds trained in parallel processes"
    )
    parser.add_argument("--particles", type=int, default=20)
    args = parser.parse_args()
    section = "binary" if args.binary else "diffusion" if args.diffusion else args.section
    sections = {
        "nll": section_nll,
        "exact": section_exact,
        "binary": section_binary,
        "diffusion": section_diffusion,
    }
    sections[section](args)


if __name__ == "__main__":
    main()
