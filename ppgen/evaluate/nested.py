"""Nested R-hat: convergence of many short chains grouped into superchains.

With many chains (:func:`ppgen.mcmc` runs 64 by default) each chain may be short, too short for
the classic within-chain comparison; what matters is whether the chains have forgotten where
they started. Chains that started from the same point form a *superchain*; nested R-hat compares
the variance between superchains with the variance inside them (Margossian, Hoffman, Sountsov,
Riou-Durand, Vehtari & Gelman 2024):

.. math::

    \\hat B = \\frac{1}{K-1}\\sum_k (\\bar\\theta_{\\cdot\\cdot k} - \\bar\\theta)^2, \\quad
    \\hat W = \\frac1K \\sum_k (\\tilde B_k + \\tilde W_k), \\quad
    \\mathfrak{n}\\hat R = \\sqrt{1 + \\hat B / \\hat W},

with :math:`\\tilde B_k` the variance of superchain k's chain means (divisor M - 1; 0 when
M = 1) and :math:`\\tilde W_k` the mean within-chain variance (divisor N - 1; 0 when N = 1).
With one chain per superchain it is the classic R-hat's ``sqrt(1 + B/W)`` form.

References
----------
Margossian, C. C., Hoffman, M. D., Sountsov, P., Riou-Durand, L., Vehtari, A. & Gelman, A.
(2024). Nested R-hat: assessing the convergence of Markov chain Monte Carlo when running many
short chains. *Bayesian Analysis*.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ppgen._utils import check_positive_int

__all__ = ["nested_rhat"]


def nested_rhat(samples: Any, num_superchains: int) -> Any:
    """Nested R-hat of draws shaped ``(chain, draw, ...)``, chains grouped in order.

    Parameters
    ----------
    samples : array or dict of arrays
        Draws with leading dimensions ``(chain, draw)`` (e.g. ``ppgen.mcmc(...).samples``);
        chains ``k * M ... (k + 1) * M - 1`` form superchain ``k``.
    num_superchains : int
        K, at least 2; it must divide the number of chains.

    Returns
    -------
    ndarray or dict of ndarrays
        Nested R-hat per scalar (the trailing shape of ``samples``). Values near 1 (Margossian
        et al. suggest below ``sqrt(1 + 1/M)``-based thresholds, typically 1.01 for a tight
        check) mean the superchains agree.
    """
    if isinstance(samples, dict):
        return {k: nested_rhat(v, num_superchains) for k, v in samples.items()}
    K = check_positive_int(num_superchains, "num_superchains")
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"samples must have (chain, draw) leading dimensions, got shape {x.shape}")
    chains, n = x.shape[:2]
    if K < 2 or chains % K:
        raise ValueError(
            f"num_superchains must be at least 2 and divide the {chains} chains, got {K}"
        )
    M = chains // K
    x = x.reshape((K, M, n) + x.shape[2:])
    chain_means = x.mean(2)  # (K, M, ...)
    super_means = chain_means.mean(1)  # (K, ...)
    b = super_means.var(0, ddof=1)
    b_within = chain_means.var(1, ddof=1) if M > 1 else np.zeros_like(super_means)
    w_within = x.var(2, ddof=1).mean(1) if n > 1 else np.zeros_like(super_means)
    w = (b_within + w_within).mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(1.0 + b / w)
