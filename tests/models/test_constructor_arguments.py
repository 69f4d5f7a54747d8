"""Every model constructor refuses a bad argument with a ValueError naming the argument, the value
and what is expected (issue 13: ``GaussianMixture("full")`` said ``invalid literal for int()``)."""

from __future__ import annotations

import pytest

import ppgen

BAD = [
    (lambda: ppgen.GaussianMixture("full"), "n_components must be a positive integer, got 'full'"),
    (lambda: ppgen.GaussianMixture(2.5), "n_components must be a positive integer, got 2.5"),
    (lambda: ppgen.GaussianMixture(True), "n_components must be a positive integer, got True"),
    (lambda: ppgen.GaussianMixture(None), "n_components must be a positive integer, got None"),
    (lambda: ppgen.GaussianMixture(0), "n_components must be a positive integer, got 0"),
    (lambda: ppgen.GaussianMixture(2, n_init="x"), "n_init must be a positive integer, got 'x'"),
    (
        lambda: ppgen.GaussianMixture(2, init_steps=-1),
        "init_steps must be a non-negative integer, got -1",
    ),
    (lambda: ppgen.GaussianMixture(2, loc_scale="x"), "loc_scale must be a positive number"),
    (lambda: ppgen.GaussianMixture(2, reg_covar=-1.0), "reg_covar must be a non-negative number"),
    (lambda: ppgen.GaussianMixture(2, "spherical"), "covariance_type must be 'full' or 'diag'"),
    (lambda: ppgen.PPCA("x"), "n_components must be a positive integer, got 'x'"),
    (lambda: ppgen.PPCA(2, loc_scale=-1), "loc_scale must be a positive number, got -1"),
    (lambda: ppgen.PPCA(2, noise_prior="a"), "noise_prior must be a positive number, got 'a'"),
    (lambda: ppgen.HMM("a"), "n_states must be a positive integer, got 'a'"),
    (lambda: ppgen.HMM(2, reg_covar="x"), "reg_covar must be a non-negative number, got 'x'"),
    (
        lambda: ppgen.HMM(2, transition_concentration=float("nan")),
        "transition_concentration must be a positive number, got nan",
    ),
    (lambda: ppgen.HMM(2, order_by=3), "order_by must be a column name or None, got 3"),
    (lambda: ppgen.VAE("a"), "n_latent must be a positive integer, got 'a'"),
    (lambda: ppgen.VAE(2, hidden=5), "hidden must be a sequence of positive integers, got 5"),
    (lambda: ppgen.VAE(2, hidden="ab"), "hidden must be a sequence of positive integers"),
    (lambda: ppgen.VAE(2, hidden=(64, 0)), r"hidden must hold positive integers only"),
    (lambda: ppgen.VAE(2, impute_particles="x"), "impute_particles must be a positive integer"),
    (lambda: ppgen.HierarchicalVAE(3), "n_latent must be a sequence of positive integers, got 3"),
    (
        lambda: ppgen.HierarchicalVAE(("a", 2)),
        r"n_latent must hold positive integers only, got \('a', 2\)",
    ),
]


@pytest.mark.parametrize(("make", "message"), BAD)
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_integral_floats_are_accepted_as_integers():
    gmm = ppgen.GaussianMixture(2.0, n_init=3.0)
    assert (gmm.n_components, gmm.n_init) == (2, 3)
    assert isinstance(gmm.n_components, int)
    assert ppgen.VAE(2.0, hidden=[16.0]).hidden == (16,)
