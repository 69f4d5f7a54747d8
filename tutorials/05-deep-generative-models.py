# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Deep generative models: PPCA, VAE, flow guides and the ladder VAE on handwritten digits
#
# Probabilistic PCA explains data by a few latent factors through a *linear* map. A variational
# autoencoder (VAE; Kingma & Welling 2014) keeps the story — a low-dimensional latent $z$, then
# the data given $z$ — but makes the map a neural network:
#
# $$z_i \sim \mathcal N(0, I_q), \qquad
#   x_{ij} \mid z_i \sim \mathcal N\big(f_j(z_i), \sigma_j^2\big),$$
#
# where $f$ is the *decoder*, a multilayer perceptron. The price is that $p(x_i) = \int p(x_i
# \mid z) p(z)\, dz$ no longer has a closed form. A second network, the *encoder*, proposes
# $q(z \mid x_i)$, an approximation of the posterior; the two are trained together by
# maximizing the evidence lower bound (ELBO), and the likelihood is then *estimated*, by
# importance sampling with the encoder as proposal (IWAE; Burda et al. 2016) or by annealed
# importance sampling (AIS; Neal 2001), the tools of tutorial 02.
#
# We compare four models on scikit-learn's `digits`, 1797 handwritten digits of 8 × 8 pixels:
#
# 1. **PPCA**, whose test log-likelihood is exact — the baseline to beat;
# 2. a **VAE** with a diagonal Gaussian encoder;
# 3. the same VAE with a **normalizing-flow guide**: the encoder's Gaussian pushed through
#    learned invertible maps (inverse autoregressive flows, Kingma et al. 2016), so that
#    $q(z \mid x)$ can be skewed and curved;
# 4. a **hierarchical (ladder) VAE** with two stochastic layers (Sønderby et al. 2016).
#
# Then we look at what the models learned: samples, reconstructions, the latent space,
# interpolations between digits, and anomaly scores.
#
# The networks here train for a few dozen epochs so that the notebook runs in about a minute on
# one CPU thread; section 7 quotes what the converged models of
# `benchmarks/deep_models_nll.py` reach.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from sklearn.model_selection import train_test_split

import ppgen
import ppgen.plot
from ppgen import evaluate

torch.set_num_threads(1)  # small networks: one thread is the fastest on shared machines
pd.set_option("display.precision", 3)

# %% [markdown]
# ## 1. The data, and one scale for every model
#
# Each pixel of `digits` is a count from 0 to 16 (how many of a 4 × 4 block of a 32 × 32
# bitmap were ink). A continuous density on integers is meaningless — it can pile infinite
# density on the 17 values — so we **dequantize**: add independent uniform noise $u \sim U(0,
# 1)$ to every count and divide by 17,
#
# $$y = (\text{count} + u) / 17 \in [0, 1)^{64}.$$
#
# Every model is fitted to the same $y$ (drawn once, seed 0), 75% of the images for training
# and 25% for testing, stratified by digit. The labels are never shown to the models.

# %%
LEVELS = 17
digits = ppgen.datasets.load("digits")
labels = digits.pop("target")
u = np.random.default_rng(0).uniform(size=digits.shape)
y = (digits.astype("float64") + u) / LEVELS
train, test, train_labels, test_labels = train_test_split(
    y, labels, test_size=0.25, stratify=labels, random_state=0
)
print(f"{len(train)} training and {len(test)} test images of {y.shape[1]} pixels")
ppgen.plot.image_grid(test.iloc[:20], shape=(8, 8), title="test images (dequantized)")
plt.show()

# %% [markdown]
# **Units.** All log-likelihoods below are $\log p(y)$ per image, in nats, for the density on
# $[0, 1]^{64}$. They are *positive* (the NLL negative): a density concentrated on a small part
# of the unit cube exceeds 1. ppgen fits every model to standardized columns and adds the
# standardization's log-Jacobian back — in `Fit.log_prob` and in `evaluate.elbo`, `iwae` and
# `ais` alike — so the numbers of all models are on the scale of $y$ and compare directly.
#
# Image models are usually compared in **bits per pixel**. The density of $\text{count} + u$ on
# $[0, 17)^{64}$ is $p(y) / 17^{64}$, and its mean log over $u$ bounds the log-probability of
# the discrete counts from below (Theis et al. 2016). So
#
# $$\text{bits/pixel} = \frac{-\log p(y) + 64 \log 17}{64 \log 2}$$
#
# is an upper bound on the bits per pixel of the original 17-level images. A model that knows
# nothing — every level equally likely — needs $\log_2 17 = 4.09$ bits per pixel.


# %%
def bits_per_pixel(nll, d=64):
    """Bits per pixel of the 17-level images from the NLL (nats per image) of y on [0, 1]^d."""
    return (nll + d * np.log(LEVELS)) / (d * np.log(2))


# %% [markdown]
# ## 2. PPCA: the exact baseline
#
# PPCA with $q$ factors is the Gaussian $\mathcal N(\mu, WW^\top + \sigma^2 I)$; its likelihood
# is exact, and EM fits it in a second. We try $q = 8$ (the VAE's latent dimension below) and
# $q = 63$ (a full-covariance Gaussian; on these data BIC keeps improving all the way to it).

# %%
ppca = {q: ppgen.fit(ppgen.PPCA(q), train, method="em", seed=0) for q in (8, 63)}
for q, fit in ppca.items():
    print(f"PPCA q={q:2d}: test log-likelihood {fit.score(test):7.3f} nats per image")

# %% [markdown]
# Two checks that the scale is what we said. First, PPCA's guide is its exact posterior, so
# IWAE with any $k$ must return the exact log-likelihood, Jacobian included. Second, the
# Jacobian itself: ppgen standardizes each column by its training standard deviation $s_j$,
# so a density of the standardized data differs from one of $y$ by $\sum_j \log s_j$.

# %%
exact = ppca[8].log_prob(test)
bound = evaluate.iwae(ppca[8], test, k=10, seed=0)
print(f"largest |IWAE - exact| over test images: {np.abs(bound.per_row - exact).max():.2e}")
print(f"standardization log-Jacobian: {-np.log(train.std(ddof=0)).sum():.3f} nats per image")

# %% [markdown]
# ## 3. A VAE
#
# `ppgen.VAE(n_latent=8, hidden=(128, 128))` has an encoder of two hidden layers of 128 ReLU
# units mapping an image to the mean and standard deviation of $q(z \mid x)$, and a decoder of
# the same shape in reverse mapping $z$ to the 64 pixel means; each pixel has its own noise
# scale $\sigma_j$. `ppgen.fit(..., method="svi")` trains both by minibatch stochastic
# variational inference (Adam), holding out 10% of the training images to stop early when
# their ELBO stops improving. The loss trace is the negative ELBO per image on the standardized
# scale.

# %%
EPOCHS = 60  # the benchmark trains up to 600 epochs with early stopping; see section 7


def train_model(model, **options):
    """Fit a deep model on the training images; return the fit and its training time (s)."""
    start = time.perf_counter()
    fit = ppgen.fit(model, train, seed=0, max_epochs=EPOCHS, progress=False, **options)
    return fit, time.perf_counter() - start


vae, vae_seconds = train_model(ppgen.VAE(8, (128, 128)))
print(f"{vae.info['n_epochs']} epochs in {vae_seconds:.1f} s, best at {vae.info['best_epoch']}")
ppgen.plot.losses(vae)
plt.show()

# %% [markdown]
# Its test log-likelihood has no closed form. The ELBO is a lower bound, IWAE$_k$ tightens as
# $k$ grows, and AIS — which never uses the encoder — estimates it independently (on 50 test
# images to keep it quick; see tutorial 02 for these estimators).

# %%
vae_elbo = evaluate.elbo(vae, test, num_particles=100, seed=0)
vae_iwae = {k: evaluate.iwae(vae, test, k=k, seed=0) for k in (1, 10, 100, 1000)}
for k, est in vae_iwae.items():
    print(f"IWAE k={k:<5} {est.mean:8.3f}  (Monte-Carlo se {est.mc_se:.3f})")
print(f"ELBO       {vae_elbo.mean:8.3f}")

few = test.iloc[:50]
vae_ais = evaluate.ais(vae, few, n_steps=100, n_chains=8, seed=0, progress=False)
few_iwae = evaluate.iwae(vae, few, k=1000, seed=0)
print(
    f"first 50 test images: AIS {vae_ais.mean:.3f} (se {vae_ais.mc_se:.3f}, "
    f"acceptance {vae_ais.acceptance:.2f}), IWAE k=1000 {few_iwae.mean:.3f}"
)

# %% [markdown]
# The bounds climb with $k$ and level off: from the ELBO's 49.1 to IWAE$_{1000}$'s 50.6 nats
# per image. AIS, which starts from the prior and never uses the encoder, lands less than a
# tenth of a nat above IWAE$_{1000}$ on the same 50 images (50.92 against 50.85): with a
# thousand particles the encoder is a good enough proposal for this VAE that IWAE is, for
# comparing models, its log-likelihood. (Section 7 shows that this is less true of a VAE
# trained to convergence.)
#
# ## 4. A flow guide, and a ladder VAE
#
# `VAE(..., guide="flow")` keeps the decoder and puts an amortized normalizing flow — two
# affine inverse autoregressive transforms, conditioned on the encoder's last hidden layer —
# on top of the encoder's Gaussian. The flow starts as the identity, so the flow guide starts
# where the Gaussian guide is, and training decides how far to bend it.
#
# `HierarchicalVAE(n_latent=(16, 8))` stacks two latent layers, $z_2 \sim \mathcal N(0, I_8)$,
# $z_1 \mid z_2 \sim \mathcal N(\mu(z_2), \sigma(z_2)^2)$ with 16 dimensions, then $x \mid z_1$.
# Its guide runs the data bottom-up and then follows the model's own top-down path (the
# *ladder*), merging the two by precision weighting. Upper layers tend to collapse onto their
# prior early in training; a KL warm-up (the latent terms of the ELBO weighted from 0 to 1 over
# the first epochs) prevents it. With one hidden layer of 139 units per block it has the same
# number of parameters as the VAE, to within 0.3%.

# %%
flow, flow_seconds = train_model(ppgen.VAE(8, (128, 128), guide="flow"))
hvae, hvae_seconds = train_model(ppgen.HierarchicalVAE((16, 8), (139,)), kl_warmup=20)
print(f"parameters: VAE {vae.model.n_parameters()}, flow VAE {flow.model.n_parameters()}, ")
print(f"            ladder VAE {hvae.model.n_parameters()}")

# %% [markdown]
# ## 5. The comparison
#
# One table for the four models: the test log-likelihood per image (exact for PPCA, IWAE with
# $k = 1000$ for the deep models) and the test ELBO, both in nats, the NLL in bits per pixel,
# the parameter count and the training time.

# %%
rows = []
for name, fit, seconds in [
    ("PPCA q=8", ppca[8], None),
    ("PPCA q=63 (full Gaussian)", ppca[63], None),
    ("VAE", vae, vae_seconds),
    ("VAE + flow guide", flow, flow_seconds),
    ("ladder VAE", hvae, hvae_seconds),
]:
    deep = fit.method == "svi"
    loglik = evaluate.iwae(fit, test, k=1000, seed=0) if deep else None
    rows.append(
        {
            "model": name,
            "test log-lik": loglik.mean if deep else fit.score(test),
            "by": "IWAE k=1000" if deep else "exact",
            "MC se": loglik.mc_se if deep else 0.0,
            "test ELBO": evaluate.elbo(fit, test, num_particles=100, seed=0).mean
            if deep
            else fit.score(test),
            "parameters": fit.model.n_parameters(),
            "train s": seconds,
        }
    )
table = pd.DataFrame(rows).set_index("model")
table.insert(1, "bits/pixel", bits_per_pixel(-table["test log-lik"]))
display(table)

# %% [markdown]
# How to read it:
#
# * **Every deep model beats the best PPCA**, even after 60 epochs: the VAE by about 1.4 nats
#   per image, the flow VAE by 2, the ladder VAE by almost 5, against Monte-Carlo errors of
#   about 0.01. The full-covariance Gaussian captures every pairwise correlation of the pixels
#   and nothing else; the decoders, from only 8 latent dimensions, capture the curved set that
#   digit images lie near. PPCA with 8 factors, the VAE's latent dimension, is 12 nats behind.
# * **ELBO vs log-likelihood.** The gap between the two columns of a deep model is the average
#   KL divergence from its guide to its true posterior: about 1.4 nats for the VAE, 1.3 for the
#   flow VAE, 2 for the ladder VAE, whose two-layer posterior is harder to approximate.
# * **Bits per pixel.** All models need well under the 4.09 bits of a uniform pixel; 0.1 bit
#   per pixel is 4.4 nats per image.
# * **Parameters** differ wildly: PPCA needs 2144 numbers, the networks about 60 000 (the
#   flow guide adds 28 000 to the encoder). Scoring held-out images, not the training images,
#   is what keeps the comparison fair.
#
# These networks are not trained to convergence (the VAE's best epoch is its last), so the
# order of the three deep models is not final; section 7 has the converged numbers.
#
# ## 6. What the models learned
#
# ### Samples
#
# `fit.sample(n, seed=...)` draws $z$ from the prior and then every pixel from
# $p(x \mid z) = \mathcal N(f(z), \operatorname{diag}(\sigma^2))$: the decoder's mean image
# $f(z)$ **plus independent Gaussian noise** of scale $\sigma_j$ on each of the 64 pixels. The
# likelihood is continuous, so to explain dequantized pixels it must give every pixel a noise
# scale, fitted like any other parameter; the cell below prints it in the pixels' own units,
# count levels from 0 (blank) to 16 (full ink). Noise of that size, drawn independently for
# every pixel, is what turns the sample grids into static: it is the model's pixel-level
# measurement error, not a failure to learn shapes. These noisy images are honest draws from
# the density we scored; the shapes live in the means, so we also decode the same kind of
# latent draws to $f(z)$ with `fit.decode(z)`, which is what VAE papers usually show.
#
# PPCA's samples are draws from one Gaussian, $\mu + Wz + \sigma\varepsilon$. With $q = 63$
# its isotropic noise $\sigma$ is the variance left in the last of the 64 directions, so
# nearly all of a pixel's spread across samples (also printed) comes from $W$: correlated
# pixels, but around a single mean image, with nothing that makes a stroke a stroke.

# %%
# The VAE's fitted noise scale of each pixel (its decoder heads hold the log scale on the
# standardized scale: times the column's standardization scale gives y, times 17 count levels).
scales = np.array([column.scale for column in vae.schema.columns])
sigma = vae.model.heads.log_scale.detach().exp().numpy() * scales * LEVELS
print(
    f"VAE pixel noise sigma_j: median {np.median(sigma):.2f} count levels "
    f"(from {sigma.min():.2f} to {sigma.max():.2f}) of the 16 between blank and full ink"
)
ppca_spread = ppca[63].sample(5000, seed=1).std().to_numpy() * LEVELS
ppca_sigma = np.sqrt(ppca[63].summary()["estimate"]["noise_variance"]) * LEVELS
print(
    f"PPCA q=63: a pixel's spread across samples, median {np.median(ppca_spread):.2f} levels; "
    f"its isotropic noise sigma {ppca_sigma:.2f} levels"
)

# %%
z_prior = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
fig, axes = plt.subplots(4, 1, figsize=(6.5, 6.5), layout="constrained")
ppgen.plot.image_grid(ppca[63].sample(20, seed=0), ax=axes[0], title="PPCA q=63: samples")
ppgen.plot.image_grid(vae.sample(20, seed=0), ax=axes[1], title="VAE: samples")
ppgen.plot.image_grid(vae.decode(z_prior), ax=axes[2], title="VAE: decoder means f(z)")
ppgen.plot.image_grid(hvae.decode(z_prior), ax=axes[3], title="ladder VAE: decoder means")
plt.show()

# %% [markdown]
# The Gaussian's samples are smudges: it knows which pixels co-vary, not what a digit is.
# The VAE's decoder means are recognizable digits of several classes, and its noisy samples
# are shapes of that kind with every pixel moved independently by about $\sigma_j$ count
# levels (printed above): static laid over digits, not a worse model than row 3 shows. (The
# ladder VAE's images decode the top layer through the *means* of the layer below, so they are
# smoother than its samples.)
#
# ### Reconstructions
#
# `fit.reconstruct(rows)` encodes each image to its posterior mean and decodes it back: it
# shows what the 8 latent dimensions keep.

# %%
originals = test.iloc[:10]
fig, axes = plt.subplots(3, 1, figsize=(6.5, 3.6), layout="constrained")
ppgen.plot.image_grid(originals, ax=axes[0], title="test images")
ppgen.plot.image_grid(vae.reconstruct(originals), ax=axes[1], title="VAE reconstructions")
ppgen.plot.image_grid(flow.reconstruct(originals), ax=axes[2], title="VAE + flow reconstructions")
plt.show()

# %% [markdown]
# ### The latent space
#
# To *see* a latent space it must have two dimensions, so we fit a VAE with $q = 2$ and PPCA
# with $q = 2$ and place every test image at its posterior mean, coloured by the digit it is
# (which neither model saw).

# %%
vae2, _ = train_model(ppgen.VAE(2, (128, 128)))
ppca2 = ppgen.fit(ppgen.PPCA(2), train, method="em", seed=0)
labelled = test.assign(digit=test_labels.astype("category"))
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
ppgen.plot.latent(ppca2, labelled, color="digit", ax=left)
ppgen.plot.latent(vae2, labelled, color="digit", ax=right)
plt.show()
vae2_loglik = evaluate.iwae(vae2, test, k=1000, seed=0).mean
print(f"test log-lik with q=2: PPCA {ppca2.score(test):.2f}, VAE {vae2_loglik:.2f} nats per image")

# %% [markdown]
# PPCA's two factors are the two directions of largest variance: the 6s, 4s, 0s, 7s and 2s
# each lean to one side, the rest overlap in the middle. The VAE's map bends the space so that
# 0s, 6s, 4s and 7s form tight groups of their own and the others sit in bands side by side,
# although it never saw a label. With two latent dimensions the VAE's test log-likelihood is
# also 11 nats above PPCA's.
#
# ### Interpolation
#
# `fit.interpolate(row_a, row_b, n)` joins the posterior means of two images by a straight line
# in latent space and decodes $n$ equally spaced points to typical images. Between a test 0 and
# a test 6, and between a 1 and a 7:

# %%
first = {d: test[test_labels == d].iloc[[0]] for d in (0, 1, 6, 7)}
fig, axes = plt.subplots(2, 1, figsize=(6.5, 1.8), layout="constrained")
for ax, (a, b) in zip(axes, [(0, 6), (1, 7)], strict=True):
    path = vae.interpolate(first[a], first[b], n=10)
    ppgen.plot.image_grid(path, ax=ax, title=f"VAE: from a {a} to a {b}")
plt.show()

# %% [markdown]
# The path passes through images that are plausible digits all the way, rather than a
# cross-fade of two images: the decoder has learned a smooth map from latent space to the set
# of digit shapes.
#
# ### Anomaly scores
#
# `fit.anomaly_score(data)` is minus the IWAE bound on each row's log-likelihood: rows the
# model finds unlikely score high. We score the test images and the same images rotated by
# 180° (the 64 pixels in reverse order) — still strokes of ink, but not digits as written.

# %%
normal = vae.anomaly_score(test, k=100, seed=0)
rotated_images = pd.DataFrame(test.to_numpy()[:, ::-1].copy(), columns=test.columns)
rotated = vae.anomaly_score(rotated_images, k=100, seed=0)
threshold = np.quantile(normal, 0.95)
flagged = rotated > threshold
print(f"median score: test images {np.median(normal):.1f}, rotated {np.median(rotated):.1f}")
print(f"rotated images above the test images' 95th percentile: {flagged.mean():.0%}")
print("share flagged, by digit:")
by_digit = pd.Series(flagged, index=test_labels.to_numpy()).groupby(level=0).mean()
display(by_digit.rename_axis("digit").to_frame("share flagged").T)

fig, (ax_hist, ax_top) = plt.subplots(
    1, 2, figsize=(11, 3), layout="constrained", width_ratios=(1, 1.2)
)
# The rotated scores have a long right tail: the last bin collects everything beyond it.
top = np.quantile(rotated, 0.9)
bins = np.linspace(min(normal.min(), rotated.min()), top, 40)
ax_hist.hist(np.minimum(normal, top), bins=bins, alpha=0.6, label="test images")
ax_hist.hist(np.minimum(rotated, top), bins=bins, alpha=0.6, label="rotated 180°")
ax_hist.axvline(threshold, color="k", linestyle=":", label="95th percentile of test")
ax_hist.set_xlabel("anomaly score (nats; last bin: that or more)")
ax_hist.legend(fontsize="small")
worst = np.argsort(normal)[::-1][:10]
ppgen.plot.image_grid(
    test.iloc[worst], ax=ax_top, n_cols=5, title="the 10 most anomalous test images"
)
plt.show()
print("their labels:", test_labels.iloc[worst].tolist())

# %% [markdown]
# More than half of the rotated images score above the 95th percentile of the real test
# digits, many of them far above. The ones that pass are above all 0s and 8s, which look much
# the same rotated by 180°; 7s and 2s, which do not, are flagged 84–93% of the time. The most
# anomalous real test images are digits in heavy, blocky strokes — several of them 6s with a
# large loop — the rows an analyst would want to look at first.
#
# ## 7. Longer training
#
# `benchmarks/deep_models_nll.py` trains the same models up to 600 epochs with early stopping
# (patience 30; they stop after 200–300 epochs), from three seeds each, on the same data and
# split. Its table (`benchmarks/results/deep_models_nll.md`, with the machine and timings)
# gives, as test log-likelihood in nats per image (mean over seeds):
#
# | model | test log-lik | bits/pixel | parameters |
# | --- | --- | --- | --- |
# | PPCA q=63 (exact) | 49.2 | 2.98 | 2 144 |
# | VAE (IWAE, k = 1000) | 58.6 | 2.77 | 61 072 |
# | VAE + flow guide | 58.4 | 2.77 | 89 008 |
# | ladder VAE | 62.4 | 2.68 | 61 229 |
#
# * The VAE beats PPCA by 8–11 nats per image for every seed.
# * The ladder VAE beats the one-layer VAE at equal parameter count by 3–5 nats, every seed.
# * The flow guide: trained jointly with its own decoder, its test ELBO is higher than the
#   Gaussian guide's for two seeds of three (−1.25, +0.10, +0.56 nats) — the seed-to-seed spread
#   is as large as the effect. For one and the same trained decoder, a flow guide refitted
#   alongside a Gaussian one wins every time, by 0.24–0.26 nats: the flow family fits the
#   posterior better, but that need not make a better model when both are trained together.
# * For the converged VAE, AIS puts the log-likelihood about 0.9 nats above IWAE$_{1000}$ on
#   100 test images — more than for our short run. A well-trained decoder has sharper, less
#   Gaussian posteriors; IWAE with $k = 1000$ then remains a conservative (low) estimate,
#   which is worth cross-checking with AIS before reading differences below a nat.
#
# ## 8. A diffusion model: the latent chain, its bound, and faster sampling
#
# A denoising diffusion model (Ho et al. 2020) is a VAE with many latent layers and a *fixed*
# encoder: the guide adds Gaussian noise step by step, $y_t \sim \mathcal N(\sqrt{1-\beta_t}
# \, y_{t-1}, \beta_t I)$, until nothing of the image is left at $t = T$; the model learns to
# undo one step at a time, $y_{t-1} \mid y_t \sim \mathcal N(\mu_\theta(y_t, t),
# \sigma_t^2 I)$, from $y_T \sim \mathcal N(0, I)$ down to $y_1$, which a decoder turns into
# the image. `ppgen.Diffusion` writes this as a Pyro model/guide pair, so its bound is the
# same ELBO as the VAE's — in nats per image on the scale of $y$, directly comparable with the
# table above. Training draws one step $t$ per image (an unbiased estimate of the bound); the
# reported bound sums every step. `time="continuous"` gives the limit of infinitely many steps
# (variational diffusion models; Kingma et al. 2021), whose bound is higher than that of any
# finite chain with the same denoising network.
#
# A few epochs of a small model, to see the surfaces:

# %%
start = time.perf_counter()
diffusion = ppgen.fit(
    ppgen.Diffusion(50, hidden=(128, 128)), train, max_epochs=10, seed=0, progress=False
)
diffusion_seconds = time.perf_counter() - start
diffusion_elbo = evaluate.elbo(diffusion, test, num_particles=2, seed=0)
print(
    f"trained in {diffusion_seconds:.1f} s; test bound {diffusion_elbo.mean:.1f} nats/image "
    f"({bits_per_pixel(-diffusion_elbo.mean):.2f} bits/pixel)"
)
ppgen.plot.denoising(diffusion, n=3, steps=6, seed=0)
plt.show()
ppgen.plot.denoising(diffusion, n=3, steps=6, seed=0, predicted=True)
plt.show()

# %% [markdown]
# Each row of the strip is one draw of the reverse chain, from pure noise $y_{50}$ (left)
# through $y_{40}, \dots, y_1$ to the sampled image (right); its last column is exactly
# `diffusion.sample(3, seed=0)`. Every $y_t$ has unit variance on the standardized scale, so
# the noisy states look alike until the last steps; the second strip (`predicted=True`) shows
# instead the network's estimate of the clean image at each step, what the chain is heading
# for. After 10 epochs the bound is still far below the VAE's; the images are blurry strokes.
#
# Ancestral sampling costs one network pass per step. **DDIM** (Song et al. 2021) takes a
# deterministic path through a subsequence of the steps (`eta=0`), here 10 passes instead of 49.
# It samples a *different* distribution than the model whose bound we reported, so the bound
# says nothing about DDIM's samples; with few steps they are less spread than the model's.

# %%
ddim = diffusion.sample(10, seed=0, sampler="ddim", steps=10)
ppgen.plot.image_grid(ddim, shape=(8, 8), title="DDIM, 10 steps")
plt.show()

# %% [markdown]
# The same model works on **mixed tables with missing cells**: categorical and binary columns
# get a discrete decoder at $t = 1$, a missing cell is a latent variable of the bound (never a
# fill-in), and `impute` draws the missing cells given the observed ones (RePaint; Lugmayr et
# al. 2022), leaving the observed values untouched. `ppgen impute data.csv --model diffusion`
# does the same from the command line.

# %%
penguins = ppgen.datasets.load("penguins").drop(columns="year")
mixed = ppgen.fit(ppgen.Diffusion(20, hidden=(64, 64)), penguins, max_epochs=20, progress=False)
completed = mixed.impute(penguins, n_imputations=2, seed=0)
gaps = penguins.isna().any(axis=1)
display(penguins[gaps].head(4))
display(completed[0][gaps].head(4))

# %% [markdown]
# Trained to convergence, `benchmarks/deep_models_nll.py --diffusion` reports on the same data
# and split (`benchmarks/results/deep_models_nll_diffusion.md`, one seed): a test bound of
# 59.1 nats per image (2.76 bits/pixel) for T = 1000 steps with a 3 × 256 MLP, level with the
# VAE's IWAE and behind the ladder VAE. The cost sits in the last, least noisy steps, where a
# Gaussian chain has to learn the fine structure of dequantized pixels. Moving the decoder to
# a noisier level helps: in continuous time with the log signal-to-noise ratio at $y_1$ set to
# 1 instead of 8 (`log_snr_range=(-8, 1)`), the bound rises to 61.4 nats (2.70 bits/pixel;
# seed 0, `--diffusion --seed 0 --schedule loglinear --time continuous --log-snr=-8,1
# --patience 60`), still just behind the ladder VAE; lower still (−1, −3) it falls again.
#
# ## Summary
#
# * Dequantize discrete pixels before fitting densities, and report every model on the same
#   scale: ppgen's log-likelihoods and bounds already include the standardization's Jacobian.
# * PPCA's likelihood is exact; a VAE's is estimated by IWAE with a large $k$ (the ELBO is a
#   looser lower bound) and can be cross-checked by AIS.
# * On digits, a VAE with an 8-dimensional latent space beats a full-covariance Gaussian by
#   about 9 nats per image once trained; a second latent layer adds about 4 more at the same
#   parameter count; a flow guide fits a given decoder's posterior better, though trained
#   jointly its gain is within the spread over seeds.
# * `sample`, `transform`, `interpolate` and `anomaly_score` work for every deep model;
#   `ppgen.plot.image_grid` draws rows of pixels as images.
#
# ## References
#
# * Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance weighted autoencoders. *ICLR*.
# * Ho, J., Jain, A. & Abbeel, P. (2020). Denoising diffusion probabilistic models. *NeurIPS*.
# * Kingma, D. P. & Welling, M. (2014). Auto-encoding variational Bayes. *ICLR*.
# * Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. & Welling, M. (2016).
#   Improved variational inference with inverse autoregressive flow. *NeurIPS*.
# * Kingma, D. P., Salimans, T., Poole, B. & Ho, J. (2021). Variational diffusion models.
#   *NeurIPS*.
# * Lugmayr, A. et al. (2022). RePaint: inpainting using denoising diffusion probabilistic
#   models. *CVPR*.
# * Neal, R. M. (2001). Annealed importance sampling. *Statistics and Computing* 11, 125–139.
# * Song, J., Meng, C. & Ermon, S. (2021). Denoising diffusion implicit models. *ICLR*.
# * Sønderby, C. K., Raiko, T., Maaløe, L., Sønderby, S. K. & Winther, O. (2016). Ladder
#   variational autoencoders. *NeurIPS*.
# * Theis, L., van den Oord, A. & Bethge, M. (2016). A note on the evaluation of generative
#   models. *ICLR*.
# * Tipping, M. E. & Bishop, C. M. (1999). Probabilistic principal component analysis.
#   *Journal of the Royal Statistical Society B* 61(3), 611–622.
