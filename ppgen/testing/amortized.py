"""Shared set-ups for checking deep models: the dequantized digits and a guide refitted for a
fixed decoder (used by the tests and by benchmarks/deep_models_nll.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ppgen.data.datasets import load
from ppgen.infer.result import Fit
from ppgen.models.vae import VAE

#: Pixel counts of scikit-learn's digits run over 0..16.
LEVELS = 17


def dequantized_digits(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Digits as densities on [0, 1]^64: ``(count + U(0, 1)) / 17``, split 75/25 stratified by
    label (train, test, train labels, test labels)."""
    from sklearn.model_selection import train_test_split

    frame = load("digits")
    label = frame.pop("target")
    u = np.random.default_rng(seed).uniform(size=frame.shape)
    y = (frame.astype("float64") + u) / LEVELS
    return train_test_split(y, label, test_size=0.25, stratify=label, random_state=seed)


def refit_guide(fit: Fit, guide: str, train: pd.DataFrame, epochs: int) -> Fit:
    """A fitted VAE's decoder kept fixed, and a guide of kind ``guide`` trained for it.

    The encoder starts from the fitted one (a flow starts at the identity, so the flow guide
    starts exactly where the Gaussian guide is); only the encoder (and flow) are trained, by
    Adam (lr 1e-3) on the one-particle ELBO of ``train``, ``epochs`` passes of minibatches of
    128, seeded by ``fit.seed``: two guides refitted for one decoder differ only by family.
    """
    old = fit.model
    torch.manual_seed(fit.seed)
    config = {**old.config(), "guide": guide, "flow_options": None}
    model = VAE(**config).build(fit.schema).to(fit.dtype)
    model.load_state_dict(old.state_dict(), strict=False)  # the flow stays at the identity
    for p in [*model.decoder.parameters(), *model.heads.parameters()]:
        p.requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    enc = fit.schema.encode(train, dtype=fit.dtype)
    generator = torch.Generator().manual_seed(fit.seed)
    losses = []
    for _ in range(epochs):
        for rows in torch.randperm(len(train), generator=generator).split(128):
            opt.zero_grad()
            loss = -model.elbo_rows(enc.x[rows], enc.mask[rows]).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    model.eval()
    return Fit(
        model=model,
        schema=fit.schema,
        method="svi",
        params={},
        losses=np.asarray(losses),
        seed=fit.seed,
        info={"n_epochs": epochs},
    )
