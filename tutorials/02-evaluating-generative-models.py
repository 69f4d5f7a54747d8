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
# # Evaluating generative models: ELBO, IWAE, AIS and MCMC diagnostics
#
# Models with latent variables are compared by their log-likelihood, log p(x), per row. For
# Gaussian mixtures and probabilistic PCA ppgen computes it exactly. For the deep models to come
# (VAEs, diffusion) it has no closed form and must be estimated, and the estimators differ:
#
# * the **ELBO**, E_q[log p(x, z) - log q(z | x)], is a lower bound: it is exact only when the
#   guide q is the true posterior;
# * the **importance-weighted bound** IWAE_k (Burda et al. 2016) averages k importance weights
#   inside the logarithm: still a lower bound in expectation, and it tightens as k grows;
# * **annealed importance sampling** (AIS; Neal 2001) moves each sample from the prior to the
#   posterior through many intermediate distributions; its estimate of p(x) is unbiased, so
#   log p(x) is under-estimated by a vanishing amount as the number of steps grows;
# * **bidirectional Monte Carlo** (BDMC; Grosse et al. 2015) runs AIS forward and backward on
#   data simulated from the model, bracketing the truth from below and above.
#
# Here we check all of them against PPCA's exact likelihood on the wine data, where the truth is
# known, and then turn to the Bayesian side: MCMC diagnostics and leave-one-out cross-validation.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

import ppgen
from ppgen import evaluate

torch.set_num_threads(1)
pd.set_option("display.precision", 4)

wine = ppgen.datasets.load("wine", label=False)
fit = ppgen.fit(ppgen.PPCA(2), wine)
exact = fit.score(wine)
print(f"exact log-likelihood: {exact:.4f} nats per row")

# %% [markdown]
# ## 1. With the exact posterior as guide, every bound is exact
#
# PPCA's posterior p(z | x) is Gaussian and known; after fitting, ppgen sets PPCA's guide to it.
# Then log p(x, z) - log q(z | x) = log p(x) for *every* z, so the ELBO has no gap and no Monte
# Carlo noise:

# %%
table = pd.DataFrame(
    {
        "ELBO (10 particles)": [evaluate.elbo(fit, wine, num_particles=10).mean],
        "IWAE (k = 10)": [evaluate.iwae(fit, wine, k=10).mean],
        "exact": [exact],
    },
    index=["nats per row"],
)
display(table)

# %% [markdown]
# ## 2. An imperfect guide: ELBO ≤ IWAE_k ≤ log p(x), and AIS
#
# To see the bounds separate, we widen the guide: its noise variance is multiplied by 25, so
# the guide's posterior is about five times too wide. The ELBO then pays the KL divergence from
# guide to posterior; IWAE recovers it as k grows. AIS starts from the prior and does not use
# the guide at all.

# %%
fit.model.guide_noise = fit.model.guide_noise * 25

ks = [1, 10, 100, 1000]
elbo = evaluate.elbo(fit, wine, num_particles=200, seed=1)
iwae = {k: evaluate.iwae(fit, wine, k=k, seed=k) for k in ks}
steps = [30, 100, 300]
ais = {t: evaluate.ais(fit, wine, n_steps=t, n_chains=16, seed=t) for t in steps}

rows = [("ELBO", "", elbo.mean, elbo.mc_se)]
rows += [("IWAE", f"k = {k}", e.mean, e.mc_se) for k, e in iwae.items()]
rows += [("AIS", f"T = {t}", e.mean, e.mc_se) for t, e in ais.items()]
rows += [("exact", "", exact, 0.0)]
bounds = pd.DataFrame(rows, columns=["estimator", "setting", "nats per row", "MC se"])
bounds["gap to exact"] = bounds["nats per row"] - exact
display(bounds)

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
left.axhline(exact, color="k", lw=1, label="exact")
left.axhline(elbo.mean, color="tab:red", ls="--", label="ELBO")
left.errorbar(
    ks,
    [iwae[k].mean for k in ks],
    yerr=[2 * iwae[k].mc_se for k in ks],
    marker="o",
    label="IWAE$_k$",
)
left.set_xscale("log")
left.set_xlabel("importance samples k")
left.set_ylabel("mean log-likelihood (nats per row)")
left.legend()
right.axhline(exact, color="k", lw=1, label="exact")
right.errorbar(
    steps,
    [ais[t].mean for t in steps],
    yerr=[2 * ais[t].mc_se for t in steps],
    marker="s",
    color="tab:green",
    label="AIS",
)
right.set_xscale("log")
right.set_xlabel("annealing steps T (16 chains)")
right.legend()
fig.suptitle("PPCA on wine: lower bounds approach the exact log-likelihood")
fig.tight_layout()

# %% [markdown]
# The ELBO sits below IWAE, IWAE rises with k, and AIS approaches the exact value as T grows;
# nothing exceeds the exact log-likelihood beyond Monte Carlo error (the error bars are two
# Monte-Carlo standard errors). The AIS result also reports its acceptance rate and the
# effective sample size of its final weights, the first things to look at when AIS is used on a
# model without a known answer:

# %%
last = ais[steps[-1]]
print(f"acceptance {last.acceptance:.2f}, median ESS {np.median(last.ess):.1f} of 16 chains")

# %% [markdown]
# ## 3. Bidirectional Monte Carlo: a bracket without knowing the truth
#
# On data simulated from the fitted model, where the latent variables are known, forward AIS
# gives a stochastic lower bound and reverse AIS (started from the true latents) an upper bound.
# Their gap bounds the error of AIS on data like the real data.

# %%
bracket = evaluate.bdmc(fit, n_rows=50, n_steps=200, n_chains=8, seed=0)
print(
    f"lower {bracket.lower.mean:.3f} <= exact {bracket.exact:.3f} "
    f"<= upper {bracket.upper.mean:.3f} "
    f"(gap {bracket.gap:.3f} nats per row)"
)

# %% [markdown]
# ## 4. MCMC diagnostics and leave-one-out cross-validation
#
# For a Bayesian fit by NUTS, `evaluate.diagnostics` gives ArviZ's table — rank-normalized R-hat,
# bulk and tail effective sample sizes, Monte-Carlo standard errors — and warns in the usual
# words when R-hat exceeds 1.01, an ESS is below 400, or a transition diverged (Vehtari et al.
# 2021). Short chains like these will trigger the ESS warning: that is the point of it. The
# table is of the sampled parameters on the standardized scale the model samples on;
# `nuts.summary()` gives the same on the data's scale.
# `evaluate.loo` estimates the expected log predictive density by Pareto-smoothed importance
# sampling (Vehtari, Gelman & Gabry 2017).

# %%
faithful = ppgen.datasets.load("faithful")
nuts = ppgen.fit(
    ppgen.GaussianMixture(2, "diag"),
    faithful,
    method="nuts",
    num_samples=150,
    warmup_steps=100,
    num_chains=2,
    seed=0,
)
display(evaluate.diagnostics(nuts)[["mean", "sd", "ess_bulk", "ess_tail", "r_hat"]])
print(evaluate.loo(nuts))

# %% [markdown]
# ## 5. Energy-based models: AIS of the partition function
#
# A restricted Boltzmann machine gives every image its free energy exactly, but its
# normalizer Z sums over all 2^53 binary images: `fit.log_prob` refuses, and `evaluate.ais`
# anneals from independent pixels (with the images' marginals) to the RBM by block Gibbs
# sampling (Salakhutdinov & Murray 2008). With 12 hidden units log Z can also be computed
# exactly by enumerating the 4096 hidden states: the estimate, its standard error and the
# reverse (upper) estimate from exact samples bracket it.

# %%
pixels = (ppgen.datasets.load("digits", label=False) >= 8).astype(int)
pixels = pixels.loc[:, pixels.nunique() > 1]  # constant pixels cannot be fitted
rbm = ppgen.fit(ppgen.RBM(12), pixels, max_epochs=5, seed=0, progress=False)
res = evaluate.ais(rbm, pixels, n_steps=1000, n_chains=50, seed=0)
exact = float(rbm.model.exact_log_partition(dict(rbm.params)))
print(
    f"log Z: AIS {res.log_z:.3f} (se {res.log_z_se:.3f}), reverse {res.log_z_upper:.3f}, "
    f"exact {exact:.3f}; mean log p {res.mean:.2f} nats per image"
)

# %% [markdown]
# ### References
#
# * Neal, R. M. (2001). Annealed importance sampling. *Statistics and Computing* 11, 125-139.
# * Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance weighted autoencoders. *ICLR*.
# * Grosse, R., Ghahramani, Z. & Adams, R. P. (2015). Sandwiching the marginal likelihood using
#   bidirectional Monte Carlo. arXiv:1511.02543.
# * Salakhutdinov, R. & Murray, I. (2008). On the quantitative analysis of deep belief networks.
#   *ICML*.
# * Vehtari, A., Gelman, A. & Gabry, J. (2017). Practical Bayesian model evaluation using
#   leave-one-out cross-validation and WAIC. *Statistics and Computing* 27, 1413-1432.
# * Vehtari, A. et al. (2021). Rank-normalization, folding, and localization: an improved R-hat.
#   *Bayesian Analysis* 16, 667-718.
