"""Issue 6's comparisons on dequantized digits: a VAE's test NLL below PPCA's exact one, and a
flow guide's ELBO at least the Gaussian guide's for the same decoder."""

from __future__ import annotations

import pytest

import ppgen
from ppgen.testing.amortized import dequantized_digits, refit_guide


@pytest.fixture(scope="module")
def split():
    train, test, _, _ = dequantized_digits(seed=0)
    return train, test


@pytest.fixture(scope="module")
def vae(split):
    train, _ = split
    return ppgen.fit(ppgen.VAE(8, (128, 128)), train, seed=0, max_epochs=250, patience=30)


def test_vae_test_nll_by_iwae_is_below_ppcas_exact_test_nll(split, vae):
    train, test = split
    # The best PPCA by BIC here is the full-covariance Gaussian (q = 63): the strongest
    # linear-Gaussian competitor, scored exactly.
    ppca = ppgen.fit(ppgen.PPCA(63), train, method="em").score(test)
    bound = ppgen.evaluate.iwae(vae, test, k=1000, seed=0)
    # IWAE is a lower bound on the VAE's log-likelihood: beating PPCA with it is conservative.
    # The benchmark's converged runs win by 8-11 nats per image.
    assert bound.mean > ppca + 3.0, (bound.mean, ppca)


@pytest.mark.slow
def test_flow_guide_elbo_is_at_least_the_gaussian_guides_for_the_same_decoder(split, vae):
    train, test = split
    elbo = {
        guide: ppgen.evaluate.elbo(refit_guide(vae, guide, train, 100), test, num_particles=100)
        for guide in ("gaussian", "flow")
    }
    gain = elbo["flow"].mean - elbo["gaussian"].mean
    se = (elbo["flow"].mc_se ** 2 + elbo["gaussian"].mc_se ** 2) ** 0.5
    assert gain > -2 * se, (gain, se)


@pytest.mark.slow
def test_autoregressive_exact_test_likelihood_beats_ppca_and_the_vaes_iwae(split, vae):
    """Issue 17: MADE's exact test log-likelihood on dequantized digits above PPCA's exact one
    and the VAE's IWAE bound (benchmarks/deep_models_nll.py --section exact: 67.18 nats/image,
    2.573 bits/pixel, against the ladder VAE's 2.68)."""
    train, test = split
    ar = ppgen.fit(
        ppgen.Autoregressive(hidden=(256, 256), components=5), train, seed=0,
        max_epochs=150, patience=15, lr=1e-3, progress=False,
    )  # fmt: skip
    exact = ar.score(test)
    ppca = ppgen.fit(ppgen.PPCA(63), train, method="em").score(test)
    bound = ppgen.evaluate.iwae(vae, test, k=1000, seed=0)
    assert exact > ppca + 3.0, (exact, ppca)
    assert exact > bound.mean, (exact, bound.mean)
