"""Training of amortized models: early stopping, KL warm-up, the ways of computing the loss,
non-finite losses and option checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ppgen
from ppgen._utils import seeded
from ppgen.infer.amortized import _Trainer


def _wine() -> np.ndarray:
    X = ppgen.datasets.load("wine", label=False).to_numpy()
    return (X - X.mean(0)) / X.std(0)


def test_amortized_models_default_to_svi_and_refuse_other_methods():
    X = _wine()
    fit = ppgen.fit(ppgen.VAE(2, (8,)), X, max_epochs=2)
    assert fit.method == "svi" and fit.params == {}
    for method in ("map", "em", "nuts"):
        with pytest.raises(ValueError, match=f"method={method!r} is not available"):
            ppgen.fit(ppgen.VAE(2, (8,)), X, method=method)


def test_early_stopping_keeps_the_best_validation_weights():
    X = _wine()
    fit = ppgen.fit(
        ppgen.VAE(2, (64, 64)), X, seed=0, lr=1e-2, max_epochs=400, patience=10, batch_size=32
    )
    info = fit.info
    val = info["validation_losses"]
    assert info["stopped_early"] and info["n_epochs"] < 400
    assert len(val) == len(fit.losses) == info["n_epochs"]
    assert info["best_epoch"] == int(np.argmin(val)) + 1
    assert info["n_epochs"] - info["best_epoch"] == 10
    assert info["n_validation"] == round(0.1 * len(X))
    # The kept weights are the best epoch's: recomputing the held-out loss with them gives the
    # minimum of the recorded curve, not the last value.
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    held = order[: info["n_validation"]]
    x = torch.as_tensor(X)
    mask = torch.ones_like(x, dtype=torch.bool)
    again = _Trainer(fit.model, "direct", 1).validation_loss(x[held], mask[held], seed=0)
    assert again == pytest.approx(min(val), rel=1e-12)
    assert min(val) < val[-1]


def test_reaching_the_epoch_cap_warns_and_says_how_to_continue():
    # Issue 13: training that stops at max_epochs while still improving must not look done.
    with pytest.warns(ppgen.ConvergenceWarning, match="larger max_epochs"):
        fit = ppgen.fit(ppgen.VAE(2, (8,)), _wine(), seed=0, max_epochs=3)
    assert fit.converged is False and not fit.info["stopped_early"]
    stopped = ppgen.fit(
        ppgen.VAE(2, (64, 64)), _wine(), seed=0, lr=1e-2, max_epochs=400, patience=10
    )
    assert stopped.converged is True


def test_validation_curve_is_reported_on_the_scale_of_ppgen_evaluate():
    # The validation loss is on the encoded (standardized) scale; validation_elbo adds the
    # encoding's Jacobian, so its best epoch is the ELBO ppgen.evaluate gives those rows.
    wine = ppgen.datasets.load("wine", label=False)
    fit = ppgen.fit(ppgen.VAE(2, (16,)), wine, seed=0, max_epochs=40, lr=1e-2)
    info = fit.info
    order = torch.randperm(len(wine), generator=torch.Generator().manual_seed(0))
    held = wine.iloc[order[: info["n_validation"]].numpy()]
    elbo = ppgen.evaluate.elbo(fit, held, num_particles=200, seed=1)
    best = info["validation_elbo"][info["best_epoch"] - 1]
    # The training draws differ from evaluate's: agreement within their Monte-Carlo noise.
    assert best == pytest.approx(elbo.mean, abs=0.1)
    loss = info["validation_losses"][info["best_epoch"] - 1]
    assert abs(best + loss) > 1  # the Jacobian matters: the raw loss is on another scale


def test_without_validation_every_epoch_runs():
    fit = ppgen.fit(ppgen.VAE(2, (8,)), _wine(), validation=0, max_epochs=7, batch_size=50)
    assert fit.info["n_epochs"] == 7 and fit.info["validation_losses"] == []
    assert fit.info["best_epoch"] == 7 and not fit.info["stopped_early"]


@pytest.mark.parametrize(("kl_warmup", "num_particles"), [(0, 1), (3, 1), (0, 4)])
def test_trace_elbo_and_direct_elbo_train_identically(kl_warmup, num_particles):
    """Pyro's Trace_ELBO (with KL annealing by scaling the latent sites, and its particles
    vectorized) and the model's own elbo_rows are the same estimator with the same draws: the
    whole training runs agree."""
    X = _wine()
    fits = [
        ppgen.fit(
            ppgen.VAE(2, (8,)),
            X,
            seed=3,
            max_epochs=5,
            kl_warmup=kl_warmup,
            num_particles=num_particles,
            elbo=elbo,
        )
        for elbo in ("trace", "direct")
    ]
    np.testing.assert_allclose(fits[0].losses, fits[1].losses, rtol=1e-10)
    np.testing.assert_allclose(
        fits[0].info["validation_losses"], fits[1].info["validation_losses"], rtol=1e-10
    )


def test_kl_warmup_weights_the_latent_terms_linearly():
    """During warm-up the training objective is log p(x|z) + beta (log p(z) - log q(z|x)) with
    beta = epoch / kl_warmup; the recorded loss is the full ELBO's."""
    X = torch.as_tensor(_wine()[:40])
    mask = torch.ones_like(X, dtype=torch.bool)
    torch.manual_seed(0)
    model = ppgen.VAE(2, (8,)).build(ppgen.Schema.infer(X)).double()
    trainer = _Trainer(model, "trace", 1)
    losses = {}
    for beta in (0.0, 0.5, 1.0):
        torch.manual_seed(1)
        losses[beta] = float(trainer.loss(X, mask, beta).detach())
    # The loss is linear in beta (the same draws at every beta).
    assert losses[0.5] == pytest.approx((losses[0.0] + losses[1.0]) / 2, rel=1e-12)
    torch.manual_seed(1)
    log_lik_only = -float(model.elbo_rows(X, mask, kl_weight=0.0).mean().detach())
    assert losses[0.0] == pytest.approx(log_lik_only, rel=1e-12)


def test_a_non_finite_loss_stops_training_with_a_clear_error():
    X = _wine()
    X[5, 2] = 1e200  # squares to inf in the Gaussian head
    with pytest.raises(ppgen.NonFiniteLossError, match="loss became non-finite at step") as err:
        ppgen.fit(ppgen.VAE(2, (8,)), X, standardize=False, validation=0, batch_size=len(X))
    # The failed step did not move the weights: the attached fit holds the initial ones, which
    # are a function of the seed (the networks are built under it).
    kept = err.value.fit
    assert len(kept.losses) == 0
    with seeded(0):
        initial = ppgen.VAE(2, (8,)).build(kept.schema).double().state_dict()
    for name, value in kept.model.state_dict().items():
        torch.testing.assert_close(value, initial[name], rtol=0, atol=0)


def test_non_finite_loss_keeps_the_epochs_trained_so_far():
    X = _wine()
    fit = ppgen.fit(ppgen.VAE(2, (8,)), X, seed=0, max_epochs=3, validation=0, lr=1e-2)

    class Explodes(ppgen.VAE):
        """Returns NaN from the fourth epoch's first step on (2 steps per epoch)."""

        calls = 0

        def elbo_rows(self, x, mask, kl_weight=1.0):
            type(self).calls += 1
            rows = super().elbo_rows(x, mask, kl_weight)
            return rows * float("nan") if type(self).calls > 6 else rows

    with pytest.raises(ppgen.NonFiniteLossError, match="epoch 4") as err:
        ppgen.fit(Explodes(2, (8,)), X, seed=0, max_epochs=10, validation=0, lr=1e-2)
    kept = err.value.fit
    np.testing.assert_array_equal(kept.losses, fit.losses)
    np.testing.assert_array_equal(kept.transform(X), fit.transform(X))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_epochs": 1.5}, "max_epochs"),
        ({"validation": 1.0}, "validation"),
        ({"lr": -1.0}, "lr"),
        ({"kl_warmup": -2}, "kl_warmup"),
        ({"elbo": "fast"}, "elbo"),
        ({"guide": "mvn"}, "unknown options"),
    ],
)
def test_bad_options_raise_value_errors(options, message):
    with pytest.raises(ValueError, match=message):
        ppgen.fit(ppgen.VAE(2, (8,)), _wine(), **options)


def test_minibatches_larger_than_the_table_and_the_progress_bar(capsys):
    X = _wine()[:30]
    fit = ppgen.fit(ppgen.VAE(2, (8,)), X, batch_size=1000, max_epochs=3, progress=False)
    assert len(fit.losses) == 3
    assert capsys.readouterr().err == ""


def test_summary_and_to_arviz_say_deep_models_have_no_global_parameters():
    fit = ppgen.fit(ppgen.VAE(2, (8,)), _wine(), max_epochs=2)
    for method in (fit.summary, fit.to_arviz):
        with pytest.raises(ValueError, match="VAE has none"):
            method()


# -- the importance-weighted objective -------------------------------------------------------------
_AMORTIZED = {
    "vae": lambda: ppgen.VAE(2, (8,)),
    "vae-flow": lambda: ppgen.VAE(2, (8,), guide="flow"),
    "hvae": lambda: ppgen.HierarchicalVAE((3, 2), (8,)),
    "hvae-flow": lambda: ppgen.HierarchicalVAE((3, 2), (8,), guide="flow", flow_layers="all"),
}


def _short_fit(name: str) -> tuple[ppgen.Fit, torch.Tensor, torch.Tensor]:
    """A float64 fit of a few epochs on wine (weights away from their initial values), and the
    encoded table."""
    X = _wine()
    fit = ppgen.fit(_AMORTIZED[name](), X, seed=0, max_epochs=3)
    enc = fit.encode(X)
    assert enc.x.dtype == torch.float64
    return fit, enc.x, enc.mask


@pytest.mark.parametrize("name", sorted(_AMORTIZED))
def test_iwae_objective_is_the_iwae_bound_of_the_same_draws(name):
    """The training loss of objective="iwae" is minus the mean of ppgen.evaluate.iwae's per-row
    bound (on the encoded scale: less the standardization's log-Jacobian) from the same seed,
    and iwae_rows is log mean_j exp(log w_j) of the traced log_weights, computed by hand."""
    fit, x, mask = _short_fit(name)
    k, seed = 7, 5
    trainer = _Trainer(fit.model, "direct", k, "iwae")
    with seeded(seed), torch.no_grad():
        loss = float(trainer.loss(x, mask, 1.0))
    bound = ppgen.evaluate.iwae(fit, _wine(), k=k, seed=seed)
    encoded = bound.per_row - fit.schema.log_abs_det_jacobian(mask).numpy()
    assert loss == pytest.approx(-encoded.mean(), rel=1e-12, abs=1e-10)

    with seeded(seed), torch.no_grad():
        rows = fit.model.iwae_rows(x, mask, k).numpy()
    with seeded(seed), torch.no_grad():
        log_w = fit.model.log_weights(x, mask, k)[0].numpy()
    top = log_w.max(0)
    by_hand = top + np.log(np.exp(log_w - top).mean(0))
    np.testing.assert_allclose(rows, by_hand, rtol=0, atol=1e-10)
    np.testing.assert_allclose(rows, encoded, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["vae", "hvae"])
@pytest.mark.parametrize("kl_weight", [1.0, 0.3])
def test_iwae_objective_with_one_particle_is_the_elbo_objective(name, kl_weight):
    fit, x, mask = _short_fit(name)
    losses = []
    for objective in ("iwae", "elbo"):
        with seeded(2), torch.no_grad():
            trainer = _Trainer(fit.model, "direct", 1, objective)
            losses.append(float(trainer.loss(x, mask, kl_weight)))
    assert losses[0] == losses[1]


def test_kl_warmup_weights_the_latent_terms_inside_each_log_weight():
    """With warm-up weight beta the IWAE loss is -mean_i (logsumexp_j log w_ij - log K) with
    log w_ij = log p(x_i|z_ij) + beta (log p(z_ij) - log q(z_ij|x_i)): linear in beta per
    particle, the full weights of log_weights at beta = 1."""
    fit, x, mask = _short_fit("vae")
    k, model = 6, fit.model
    log_w = {}
    for beta in (0.0, 0.5, 1.0):
        with seeded(1), torch.no_grad():
            log_w[beta] = model.particle_log_weights(x, mask, k, beta)
    torch.testing.assert_close(log_w[0.5], (log_w[0.0] + log_w[1.0]) / 2, rtol=1e-12, atol=1e-10)
    with seeded(1), torch.no_grad():
        torch.testing.assert_close(log_w[1.0], model.log_weights(x, mask, k)[0], rtol=0, atol=1e-10)
    with seeded(1), torch.no_grad():
        loss = float(_Trainer(model, "direct", k, "iwae").loss(x, mask, 0.5))
    expected = -(log_w[0.5].logsumexp(0) - np.log(k)).mean()
    assert loss == pytest.approx(float(expected), rel=1e-12)


def test_iwae_training_is_reproducible_and_validates_on_the_iwae_bound():
    X = _wine()
    options = {"seed": 4, "max_epochs": 6, "objective": "iwae", "num_particles": 5}
    fits = [ppgen.fit(ppgen.VAE(2, (8,)), X, **options) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].losses, fits[1].losses)
    assert fits[0].info["validation_losses"] == fits[1].info["validation_losses"]
    assert fits[0].info["objective"] == "iwae" and fits[0].info["num_particles"] == 5
    other = ppgen.fit(ppgen.VAE(2, (8,)), X, **{**options, "seed": 5})
    assert not np.array_equal(other.losses, fits[0].losses)
    # The recorded validation loss is minus the held-out IWAE_5 bound (its own fixed draws).
    fit = fits[0]
    n_val = fit.info["n_validation"]
    rows = torch.randperm(len(X), generator=torch.Generator().manual_seed(4))[:n_val]
    enc = fit.encode(X)
    with seeded(5), torch.no_grad():
        val = -float(fit.model.iwae_rows(enc.x[rows], enc.mask[rows], 5).mean())
    best = fit.info["validation_losses"][fit.info["best_epoch"] - 1]
    assert val == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"objective": "mle"}, "objective must be one of"),
        ({"objective": "iwae", "elbo": "trace"}, "elbo='trace' applies to objective='elbo'"),
        ({"objective": "iwae", "num_particles": 0}, "num_particles"),
    ],
)
def test_bad_objective_options_raise_value_errors(options, message):
    with pytest.raises(ValueError, match=message):
        ppgen.fit(ppgen.VAE(2, (8,)), _wine(), **options)
