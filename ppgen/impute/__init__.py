"""Multiple imputation: impute with a generative model, pool analyses by Rubin's rules, judge the
imputations and their sensitivity to data missing not at random.

Impute ``m`` completed tables with :class:`Imputer` (or :meth:`ppgen.Fit.impute`), analyse each
one as if it were complete, then pool the ``m`` estimates and their variances::

    tables = ppgen.Imputer("gmm", n_imputations=20, seed=1).fit_transform(df)
    pooled = pool_fit(tables, "y ~ x1 + x2")     # statsmodels OLS on each table
    pooled.summary()                             # like mice's summary(pool(fit))

One module per concern: :mod:`~ppgen.impute.pooling` (Rubin's rules),
:mod:`~ppgen.impute.imputer` (the :class:`Imputer`, delta adjustment included),
:mod:`~ppgen.impute.sensitivity` (tipping-point analysis), :mod:`~ppgen.impute.ampute`
(making data incomplete on purpose) and :mod:`~ppgen.impute.report` (van Buuren's simulation
design).

References
----------
Rubin, D. B. (1987). *Multiple Imputation for Nonresponse in Surveys*. Wiley.
van Buuren, S. (2018). *Flexible Imputation of Missing Data*, 2nd ed. CRC Press.
"""

from ppgen.impute.ampute import ampute
from ppgen.impute.imputer import Imputer
from ppgen.impute.pooling import PooledEstimate, pool, pool_fit
from ppgen.impute.report import ImputationReport, imputation_report
from ppgen.impute.sensitivity import TippingPoint, tipping_point

__all__ = [
    "ImputationReport",
    "imputation_report",
    "Imputer",
    "PooledEstimate",
    "TippingPoint",
    "ampute",
    "pool",
    "pool_fit",
    "tipping_point",
]
