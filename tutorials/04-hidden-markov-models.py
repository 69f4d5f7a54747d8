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
# # Hidden Markov models with ppgen
#
# A hidden Markov model (HMM) describes a series that switches between a few regimes. At each
# time step the series is in one of $K$ hidden **states**; the state follows a Markov chain (the
# next state depends only on the current one), and the observation at that step is drawn from
# the current state's distribution. This tutorial fits HMMs to three real series that ship with
# installed packages:
#
# 1. **Great discoveries** per year, 1860-1959: a count series, with Poisson emissions; choosing
#    the number of states by held-out log-likelihood and by BIC.
# 2. **Old Faithful** eruptions in the order they happened: two Gaussian columns, the decoded
#    states, the transition matrix, and the log-likelihood checked against hmmlearn.
# 3. **The Nile**'s yearly flow at Aswan, 1871-1970: a two-state HMM as a change-point model.
#
# Everything runs on one CPU core in well under a minute.

# %%
import logging
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import statsmodels.api as sm
import torch
from hmmlearn.hmm import GaussianHMM
from IPython.display import display

import ppgen
import ppgen.plot

torch.set_num_threads(1)  # these models are small: one thread is the fastest
pd.set_option("display.precision", 4)
logging.getLogger("hmmlearn").setLevel(logging.ERROR)  # hmmlearn reports every EM hiccup
warnings.filterwarnings("ignore", module="hmmlearn")

# %% [markdown]
# ## The model
#
# For a sequence $x_1, \dots, x_T$ with hidden states $z_1, \dots, z_T \in \{0, \dots, K-1\}$:
#
# * $z_1$ has the **initial** distribution $\pi$;
# * $z_{t+1}$ given $z_t = i$ is state $j$ with probability $A_{ij}$, the **transition
#   matrix** (each row sums to one);
# * $x_t$ given $z_t = k$ has the **emission** distribution of state $k$: Poisson with rate
#   $\lambda_k$, a normal with mean $\mu_k$ and covariance $\Sigma_k$, and so on.
#
# ppgen sums the states out exactly (the forward algorithm), so `fit.log_prob()` is the
# likelihood itself, on the data's original scale. `method="em"` runs the Baum-Welch algorithm
# from several starting points and keeps the best. The fit can then **decode** the states:
# `fit.predict()` is the single most probable state path (the Viterbi algorithm) and
# `fit.predict_proba()` the probability of each state at each step given the whole series.
#
# **Label switching.** Renaming the states (calling state 0 "1" and state 1 "0") gives exactly
# the same likelihood, so the numbering the fit ends up with is arbitrary and may change with the
# seed. `order_by="column"` fixes it: the states are numbered by their mean of that column, from
# lowest to highest. We use it throughout so that "state 0" always means "the low state".

# %% [markdown]
# ## 1. Great discoveries: a Poisson HMM
#
# The number of "great" inventions and scientific discoveries in each year from 1860 to 1959. A
# single Poisson distribution would force the variance to equal the mean; the series is more
# variable than that, and busy years cluster together.

# %%
discoveries = ppgen.datasets.load("discoveries")
counts = discoveries["discoveries"]
print(f"{len(discoveries)} years, mean {counts.mean():.2f}, variance {counts.var():.2f}")

# %% [markdown]
# `time_column="year"` tells ppgen that the table is one series ordered by `year`; that column
# orders the rows and labels the plots but is not modelled.
#
# ### How many states?
#
# Two criteria, both computed for $K = 1, 2, 3$:
#
# * **Held-out log-likelihood.** Fit on the first 70 years, then score the last 30 *given* the
#   first 70: $\log p(x_{71:100} \mid x_{1:70}) = \log p(x_{1:100}) - \log p(x_{1:70})$, both
#   under the parameters fitted to the first 70 years. It is the forecast skill of the model, per
#   year (higher is better).
# * **BIC** of the fit to all 100 years, $-2 \log L + k \log n$, with $n$ the number of time steps
#   and $k$ the number of free parameters (lower is better).


# %%
def choose_states(data, emission, column, n_train, states, **fit_args):
    """Held-out log-likelihood per step and BIC for each number of states."""
    train = data.iloc[:n_train]
    rows = []
    for K in states:
        model = ppgen.HMM(K, emission, order_by=column)
        full = ppgen.fit(model, data, method="em", progress=False, **fit_args)
        early = ppgen.fit(model, train, method="em", progress=False, **fit_args)
        later = early.log_prob(data).sum() - early.log_prob(train).sum()
        rows.append(
            {
                "states": K,
                "parameters": full.model.n_parameters(),
                "log-lik": full.log_prob().sum(),
                "BIC": full.bic(),
                "held-out log-lik per step": later / (len(data) - n_train),
            }
        )
    return pd.DataFrame(rows).set_index("states")


display(choose_states(discoveries, "poisson", "discoveries", 70, [1, 2, 3], time_column="year"))

# %% [markdown]
# Both criteria prefer **two states**: the log-likelihood keeps rising with $K$ (as it must, a
# larger model contains the smaller one), but the third state does not predict the last 30 years
# better and BIC charges more for its extra parameters than it gains.

# %%
disc = ppgen.fit(
    ppgen.HMM(2, "poisson", order_by="discoveries"),
    discoveries,
    method="em",
    time_column="year",
    progress=False,
)
display(disc.summary())

# %% [markdown]
# A quiet regime of about 2.5 discoveries a year and a busy one of about 6. The transition matrix
# says how persistent they are: $1 / (1 - A_{kk})$ is the expected number of years spent in state
# $k$ before leaving it.
#
# `ppgen.plot.states` draws the series coloured by the decoded (Viterbi) state, with each state's
# mean as a dashed line; `ppgen.plot.transitions` draws the transition matrix.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4), width_ratios=[2.2, 1], layout="constrained")
ppgen.plot.states(disc, discoveries, "discoveries", ax=axes[0])
ppgen.plot.transitions(disc, ax=axes[1])
plt.show()
stay = np.diag(disc.params["transition"].numpy())
print("expected years in each state before leaving it:", np.round(1 / (1 - stay), 1))

# %% [markdown]
# The Viterbi path puts two stretches in the busy regime, 1884-1892 and 1911-1916; every other
# year is quiet. An isolated busy year is not enough to switch regimes: the
# chain's persistence asks for several in a row.
#
# ## 2. Old Faithful in sequence: a Gaussian HMM
#
# `geyser` holds 299 consecutive eruptions of Old Faithful (August 1985): the waiting time before
# each eruption and its duration, in minutes. Unlike the `faithful` table of tutorial 01, the
# rows are in time order, and the order matters: a short eruption is usually followed by a long
# wait. (The night-time durations were only recorded as short, medium or long, coded 2, 3 and 4
# minutes, which shows as rows of identical durations.)

# %%
geyser = ppgen.datasets.load("geyser")
display(geyser.head())
display(choose_states(geyser, "gaussian", "waiting", 200, [1, 2, 3]))

# %% [markdown]
# Here the third state helps on both counts: BIC falls and the last 99 eruptions are predicted
# better. We fit the two-state model first, to compare it with hmmlearn, then look at three.
#
# ### Checking the likelihood against hmmlearn
#
# hmmlearn's `GaussianHMM` fits the same model by maximum likelihood with EM. We compare three
# numbers: ppgen's log-likelihood; hmmlearn's log-likelihood *of ppgen's parameters* (the same
# model must give the same number); and hmmlearn's own fit, both from 20 random starts and
# started at ppgen's estimate. ppgen's Gaussian emissions have weak priors (a Wishart on each
# precision), so its estimate is a posterior mode, a tiny fraction of a nat from the maximum
# likelihood.

# %%
g2 = ppgen.fit(ppgen.HMM(2, "gaussian", "full", order_by="waiting"), geyser, method="em")
X = geyser.to_numpy()
p = {k: v.numpy() for k, v in g2.model.describe(dict(g2.params), g2.schema).items()}


def hmmlearn_from_ppgen():
    """A GaussianHMM holding ppgen's estimate (init_params="": start from these values)."""
    ref = GaussianHMM(2, "full", init_params="", n_iter=1000, tol=1e-8)
    ref.startprob_, ref.transmat_ = p["initial"], p["transition"]
    ref.means_, ref.covars_ = p["means"], p["covariances"]
    return ref


starts = [GaussianHMM(2, "full", n_iter=1000, tol=1e-8, random_state=s).fit(X) for s in range(20)]
display(
    pd.Series(
        {
            "ppgen (EM, 4 starts)": g2.log_prob().sum(),
            "hmmlearn scoring ppgen's parameters": hmmlearn_from_ppgen().score(X),
            "hmmlearn EM, best of 20 random starts": max(m.score(X) for m in starts),
            "hmmlearn EM started at ppgen's estimate": hmmlearn_from_ppgen().fit(X).score(X),
        },
        name="total log-likelihood (nats)",
    ).to_frame()
)

# %% [markdown]
# The two programs agree on the likelihood of a given set of parameters, and hmmlearn's own EM
# cannot improve ppgen's estimate. hmmlearn's random starts, however, all end in worse local
# maxima: HMM likelihoods have several, and geyser's are far apart. ppgen's starts (k-means with
# jitter, then every corner of the initial distribution for a single sequence) find the better
# one; `n_init=` sets how many starts to try.

# %% [markdown]
# ### Three states: decoded eruptions and the transition matrix

# %%
g3 = ppgen.fit(ppgen.HMM(3, "gaussian", "full", order_by="waiting"), geyser, method="em")
means = g3.model.describe(dict(g3.params), g3.schema)["means"].numpy()
display(pd.DataFrame(means, columns=geyser.columns).rename_axis("state"))

fig, axes = plt.subplots(1, 3, figsize=(15, 4), width_ratios=[1.6, 1.6, 1], layout="constrained")
for ax, column in zip(axes[:2], ["waiting", "duration"], strict=True):
    ppgen.plot.states(g3, geyser, column, ax=ax)
    ax.set_xlim(0, 100)  # the first 100 eruptions, to see the alternation
ppgen.plot.transitions(g3, ax=axes[2])
plt.show()

# %% [markdown]
# The states, numbered by their mean waiting time: state 0 is a short wait (about 55 minutes)
# and a long eruption; state 1 a long wait and a long eruption; state 2 a long wait and a short
# eruption of about 2 minutes. The transition matrix shows the rhythm: a short eruption (state 2)
# is almost always followed by a short wait (state 0), which is never followed by another short
# wait, and so on. A mixture model that ignores the order (tutorial 01) cannot see this.
#
# `fit.predict_proba()` gives the probability of each state at each step; where it is near 0 or 1
# the Viterbi path is certain.

# %%
proba = g3.predict_proba()
print(f"steps whose most probable state has probability > 0.9: {np.mean(proba.max(1) > 0.9):.0%}")

# %% [markdown]
# ## 3. The Nile: a change point as a two-state HMM
#
# The yearly flow of the Nile at Aswan (in $10^8$ m$^3$) from 1871 to 1970, a classic series for
# change-point analysis (Cobb 1978): the mean flow drops around 1898-1899, when the first Aswan
# dam was built and the climate shifted.

# %%
nile = sm.datasets.nile.load_pandas().data
nile_fits = {
    K: ppgen.fit(
        ppgen.HMM(K, order_by="volume"), nile, method="em", time_column="year", progress=False
    )
    for K in (1, 2, 3)
}
display(pd.Series({K: f.bic() for K, f in nile_fits.items()}, name="BIC").rename_axis("states"))

# %% [markdown]
# BIC picks two states. Their transition matrix is the interesting part: the low state never
# leaves itself ($A_{00} = 1$), and the high state, where the series starts, leaves with a small
# probability each year. That is exactly a **single change point** at an unknown year, estimated
# from the data rather than assumed.

# %%
nile2 = nile_fits[2]
states = nile2.predict(nile)
change = int(nile["year"][np.argmax(states != states[0])])
print(f"decoded change point: the low state starts in {change}")
fig, axes = plt.subplots(1, 2, figsize=(12, 4), width_ratios=[2.2, 1], layout="constrained")
ppgen.plot.states(nile2, nile, "volume", ax=axes[0])
axes[0].axvline(change - 0.5, color="black", linewidth=0.8)
ppgen.plot.transitions(nile2, ax=axes[1])
plt.show()

# %% [markdown]
# The same fit also forecasts: `fit.forecast(horizon=...)` propagates the state after the last
# year through the transition matrix. Here the series ended in the absorbing low state, so the
# forecast is simply that state's mean.

# %%
display(nile2.forecast(horizon=3).mean)

# %% [markdown]
# ## Summary
#
# * `ppgen.HMM(K, emission)` with `emission="poisson"`, `"gaussian"`, `"negbinomial"`,
#   `"categorical"` or `"mixed"`; `ppgen.fit(..., method="em")` for Baum-Welch. Sequences are a
#   list or dict of tables, one long table with `id_column=` and `time_column=`, or one table.
# * `fit.log_prob()` is exact (states summed out), per sequence and on the data's scale;
#   `fit.score()` divides by the number of time steps; `fit.bic()` counts time steps.
# * Choose $K$ by held-out log-likelihood or BIC; use `order_by` to give the states a stable
#   meaning.
# * From the command line: `ppgen fit series.csv --model hmm --n-states 3 --sequence-col id
#   --time-col t -o series.ppgen`, then `ppgen score series.ppgen series.csv`.
