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
# # Multiple imputation with ppgen
#
# Real tables have holes. Dropping every incomplete row (*complete-case analysis*) wastes data
# and, unless the values are missing completely at random, biases the answer. **Multiple
# imputation** (Rubin 1987) fills each hole $m$ times with draws from a model of the data,
# analyses each of the $m$ completed tables as if it were complete, and pools the $m$ answers
# with Rubin's rules, so that the standard errors include the uncertainty about the missing
# values. This tutorial does the whole workflow, the way R's `mice` does it, on two real data
# sets with real missing values:
#
# 1. **airquality** (New York, May to September 1973): 37 of 153 ozone readings and 7 solar
#    radiation readings are missing. We look at the missingness patterns, impute $m = 20$ times
#    with a Gaussian mixture, check the imputations against the observed values, and fit a
#    regression of ozone on wind, temperature and solar radiation, pooled by Rubin's rules,
#    next to the complete-case answer.
# 2. **Palmer penguins**: two birds have no measurements at all; PPCA imputes them.
# 3. The same imputer in a **scikit-learn pipeline**, and the **command line**.

# %%
import subprocess
import sys
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
import torch
from IPython.display import display
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline

import ppgen
import ppgen.plot

torch.set_num_threads(1)  # these models are small: one thread is the fastest on shared machines
pd.set_option("display.precision", 4)

# %% [markdown]
# ## 1. airquality
#
# ### Where are the holes?
#
# `ppgen.plot.missingness` draws the missing-data patterns as `mice::md.pattern` does: one row
# per pattern (blue observed, red missing), how many rows have it (left), how many entries each
# pattern misses (right) and each column misses (top).

# %%
airquality = ppgen.datasets.load("airquality")
display(airquality.isna().sum().to_frame("missing").T)
ax = ppgen.plot.missingness(airquality)
plt.show()

# %% [markdown]
# 111 rows are complete, 35 miss ozone only, 5 solar radiation only and 2 miss both.
#
# ### Imputing 20 times
#
# `ppgen.Imputer` fits a generative model to all rows -- incomplete ones included: the
# likelihood of each row is the exact marginal density of its observed entries -- and draws
# each missing entry from the model's conditional distribution given the observed entries of
# its row. With the default `method="svi"`, ppgen fits a full-rank Gaussian variational
# posterior of the model's parameters, and each of the $m$ tables uses **its own draw of the
# parameters**: this is what makes the imputation *proper* (van Buuren 2018, sec. 2.3.3), so
# that the pooled standard errors include the uncertainty of the imputation model itself.
#
# The imputation model here is a two-component Gaussian mixture of the four measurements and
# the month (a Gaussian mixture can follow curved, skewed relations that one normal cannot).
# Month is an integer column, which ppgen would model as a count; `kinds` asks for a
# continuous one. Day of the month says nothing about ozone, and stays out of the model.

# %%
columns = ["Ozone", "Solar.R", "Wind", "Temp", "Month"]
data = airquality[columns]
start = time.perf_counter()
imputer = ppgen.Imputer(
    "gmm", n_components=2, n_imputations=20, seed=0, kinds={"Month": "continuous"}
)
tables = imputer.fit_transform(data)
print(f"{len(tables)} completed tables in {time.perf_counter() - start:.1f} s; {imputer}")

# %% [markdown]
# Each completed table is the original with the holes filled: the observed values, the index
# and the dtypes are exactly those of the input (Month stays an integer column).

# %%
observed = data.notna().to_numpy()
assert all((t.to_numpy()[observed] == data.to_numpy()[observed]).all() for t in tables)
assert all(t.dtypes.equals(data.dtypes) for t in tables)
display(pd.concat({f"imputation {j + 1}": tables[j].loc[4:6] for j in (0, 1)}))

# %% [markdown]
# The long format is `mice::complete(imp, "long", include = TRUE)`: the data as given
# (`.imp` 0) stacked over the 20 completed tables, with the row label in `.id`.

# %%
long = imputer.transform(data, format="long")
print(long.shape, "=", len(data), "x (1 + 20) rows")
display(long[long[".id"] == 4].head(4))

# %% [markdown]
# ### Are the imputations plausible?
#
# The analogue of `mice::densityplot`: the density of the observed values (blue) and of each
# imputation's imputed values (red). Under missingness at random, imputed values may
# legitimately differ from the observed ones (they come from rows with other wind and
# temperatures), but they should look like values the variable could take.

# %%
fig = ppgen.plot.imputed_densities(data, tables)
plt.show()

# %% [markdown]
# Ozone cannot be negative, and a Gaussian mixture knows nothing about that: a few imputed
# ozone values may fall below zero. For a regression of ozone this does little harm; for an
# analysis of log ozone, impute the log (as one would in mice).

# %%
print(
    f"negative imputed ozone values: {sum((t['Ozone'] < 0).sum() for t in tables)} "
    f"of {20 * data['Ozone'].isna().sum()}"
)

# %% [markdown]
# ### A pooled regression, next to the complete-case one
#
# `ppgen.pool_fit` fits the same ordinary least-squares formula (statsmodels) to each completed
# table and pools the 20 fits by Rubin's rules: the estimate is the mean of the 20 estimates,
# the variance the mean within-table variance plus $(1 + 1/m)$ times the between-table
# variance, with Barnard & Rubin's (1999) degrees of freedom; `fmi` is the fraction of missing
# information, as `summary(pool(fit))` reports it in mice.

# %%
formula = "Ozone ~ Wind + Temp + Q('Solar.R')"
pooled = ppgen.pool_fit(tables, formula)
display(pooled.summary(alpha=0.05))

complete_case = smf.ols(formula, data=data.dropna()).fit()
comparison = pd.DataFrame(
    {
        "complete cases": complete_case.params,
        "se (cc)": complete_case.bse,
        "multiple imputation": pooled.estimate,
        "se (MI)": pooled.std_error,
    }
)
display(comparison)
print(f"complete cases: {int(complete_case.nobs)} rows; multiple imputation: {len(data)} rows")

# %% [markdown]
# The two answers agree on the signs and sizes (wind lowers ozone, heat and sunshine raise it);
# multiple imputation uses all 153 days instead of 111, and its standard errors honestly add
# the uncertainty of the imputations (the `fmi` column): they need not be smaller than the
# complete-case ones, since the ozone values of 37 days are unknown, not merely unused.

# %% [markdown]
# ## 2. Palmer penguins
#
# Two of the 344 penguins have no body measurements at all (and eleven have no sex, a
# categorical column we leave out here). Probabilistic PCA with one latent "size" dimension
# imputes the four measurements of those two birds from the marginal distribution, and the
# pooled regression of body mass on flipper and bill length barely moves: with two missing
# rows out of 344, complete-case analysis loses almost nothing. Multiple imputation matters
# when a lot is missing, as in airquality, not here -- and it says so through `fmi`.

# %%
penguins = ppgen.datasets.load("penguins")
measures = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
display(penguins[penguins[measures].isna().any(axis=1)])
penguin_tables = ppgen.Imputer("ppca", n_components=1, n_imputations=20, seed=0).fit_transform(
    penguins[measures]
)
penguin_formula = "body_mass_g ~ flipper_length_mm + bill_length_mm"
penguin_pooled = ppgen.pool_fit(penguin_tables, penguin_formula)
penguin_cc = smf.ols(penguin_formula, data=penguins[measures].dropna()).fit()
display(
    pd.DataFrame(
        {
            "complete cases": penguin_cc.params,
            "multiple imputation": penguin_pooled.estimate,
            "fmi": penguin_pooled.fmi,
        }
    )
)

# %% [markdown]
# ## 3. In a scikit-learn pipeline, and on the command line
#
# With `n_imputations=1` the imputer is a scikit-learn transformer: `transform` returns one
# completed table of the input's type, so it goes in front of any estimator. (Single imputation
# suits prediction; for inference use $m > 1$ and pool.) Here we predict temperature from
# ozone, solar radiation and wind, with missing predictors, by 5-fold cross-validation (the
# rows are in time order, so the folds are shuffled).

# %%
X = airquality[["Ozone", "Solar.R", "Wind"]].to_numpy()
y = airquality["Temp"].to_numpy()
pipeline = make_pipeline(
    ppgen.Imputer("ppca", n_components=1, n_imputations=1, method="map"), LinearRegression()
)
scores = cross_val_score(pipeline, X, y, cv=KFold(5, shuffle=True, random_state=0))
print(f"cross-validated R^2: {scores.mean():.3f} (folds {np.round(scores, 3)})")

# %% [markdown]
# The command line does the same from CSV files: `ppgen impute data.csv --model gmm -m 20 -o
# imputed.csv` writes the long format (`--format wide` writes `imputed_1.csv` ...
# `imputed_20.csv`); observed cells and column types come back exactly as they were read.

# %%
data.to_csv("airquality.csv", index=False)
command = [sys.executable, "-m", "ppgen.cli", "impute", "airquality.csv", "--kind",
           "Month=continuous", "-m", "5", "--method", "map", "-o", "imputed.csv"]  # fmt: skip
print(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
display(pd.read_csv("imputed.csv").groupby(".imp").size().to_frame("rows").T)

# %% [markdown]
# ## References
#
# * Rubin, D. B. (1987). *Multiple Imputation for Nonresponse in Surveys*. Wiley.
# * Barnard, J. & Rubin, D. B. (1999). Small-sample degrees of freedom with multiple
#   imputation. *Biometrika* 86(4), 948-955.
# * van Buuren, S. (2018). *Flexible Imputation of Missing Data*, 2nd ed. CRC Press.
# * van Buuren, S. & Groothuis-Oudshoorn, K. (2011). mice: Multivariate Imputation by Chained
#   Equations in R. *Journal of Statistical Software* 45(3).
# * Tipping, M. E. & Bishop, C. M. (1999). Probabilistic principal component analysis. *JRSS B*
#   61(3), 611-622.
# * Gorman, K. B., Williams, T. D. & Fraser, W. R. (2014). Ecological sexual dimorphism and
#   environmental variability within a community of Antarctic penguins. *PLoS ONE* 9(3).
