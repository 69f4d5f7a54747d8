"""Tabular data layer: column schemas and bundled data sets.

How a column is read
--------------------
:meth:`Schema.infer` gives every column a kind by one written rule, and says what it read
(``print(schema)``, :meth:`Schema.summary`):

1. ``kinds=`` overrides everything, e.g. ``kinds={"year": "categorical"}``.
2. A model that handles continuous columns only (PPCA, factor analysis; ``ppgen.fit`` passes
   the model's ``supported_kinds``) reads every numeric column as continuous, with a note,
   instead of refusing it -- questionnaire items analysed by factor analysis, as psych does.
3. Otherwise an integer column (integer dtype, or text holding only whole numbers) whose
   values are all >= 0 and start at or near 0 -- its largest value is at least 3 times its
   smallest (``COUNT_RATIO``; equivalently min <= range / 2) -- is a **count** (Poisson or
   negative binomial). 0/1 columns are binary. The earthquake series (6-41) and discoveries
   (0-12) are counts.
4. An integer column far from 0 for its spread -- its smallest value is more than 10 times
   its range (``ORDINAL_RANGES``), e.g. years 2007-2009 (2007 > 10 x 2) -- is **ordinal**
   (ordered levels) when it has at most 20 distinct values (``ORDINAL_LEVELS``) and continuous
   otherwise; never a count of ~2000.
5. Every other numeric column is **continuous** (Gaussian on the standardized scale): floats,
   integers with negative values, and integers between rules 3 and 4 such as faithful's
   ``waiting`` (43-96: 96 < 3 x 43 and 43 < 10 x 53). So faithful, wine, iris and
   morphometric tables keep the classical model of scikit-learn and mclust. A float column
   holding whole numbers (an integer column with gaps, read by pandas as float64) stays
   continuous; declare ``"count"`` to change that.

Text, category and bool columns are categorical (binary with two levels). Columns are refused
when they cannot be read as the user means them: a text column that is numeric for at least
80% of its values and text for the rest (a typo such as ``"oops"`` or ``"about 60"``) raises a
``ValueError`` naming the column, the values and their rows (unless ``kinds=`` declares the
column); a text column holding only numbers is read as numbers with a ``UserWarning``; a text
column with more distinct values than 90% of its rows (20 rows or more: an identifier or free
text) raises, saying how to drop or declare it; a categorical column with 10 levels or more and
fewer than 5 rows per level warns.

Kinds that keep the support (opt-in with ``kinds=``)
----------------------------------------------------
============================  ==============================  ================================
``kinds=`` value              distribution (per class)        stored as
============================  ==============================  ================================
``"positive"``                log-normal                      continuous, ``transform="log"``
``"bounded:LOW:HIGH"``,       logit-normal on (LOW, HIGH)     continuous, ``transform="logit"``
``"proportion"`` (0 to 1)
``"binomial"``,               Binomial(SIZE, p); SIZE from    ``"binomial"``, ``size``
``"binomial:SIZE"``           the data's max if not given
``"ordinal"``                 Categorical over ordered levels categorical, ``ordered=True``
============================  ==============================  ================================

Positive and bounded columns are Gaussian on the standardized log or logit scale, so every
model that handles continuous columns handles them (GaussianMixture, PPCA, HMM, VAE), with full
covariances, closed-form EM and exact conditional imputation; their samples and imputations
are inside the support by construction, and :meth:`Schema.log_abs_det_jacobian` (given ``x=``)
adds the Jacobian so that log-likelihoods are densities of the original values. Log-normal
rather than gamma for this reason: a gamma column would need its own non-conjugate block and
lose the correlations with the other columns. Values on the bounds (0 for positive) are refused:
declare wider bounds, or a binomial. Binomial columns (bounded integers such as pixels 0-16 or
Likert items coded 0..m) have their own likelihood in the latent class models
(GaussianMixture, HMM with ``emission="mixed"``). Ordinal columns use the unrestricted
categorical within a class, the saturated model of an ordered item in latent class analysis.
:meth:`Schema.support_warnings` suggests these kinds after a fit whose draws put more than 1%
of a strictly positive or [0, 1] column outside its support.
"""

from __future__ import annotations

from ppgen.data.datasets import load
from ppgen.data.schema import DECLARED_KINDS, KINDS, Column, Encoded, Schema

__all__ = ["DECLARED_KINDS", "KINDS", "Column", "Encoded", "Schema", "load"]
