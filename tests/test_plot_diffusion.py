"""``ppgen.plot.denoising``: a diffusion model's reverse chain as an image strip whose first
column is the prior draw y_T and last column is ``fit.sample``'s images for the same seed."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ppgen  # noqa: E402
from ppgen import plot  # noqa: E402
from ppgen._utils import seeded  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits_fit() -> ppgen.Fit:
    from sklearn.datasets import load_digits

    images = pd.DataFrame(load_digits().data[:200] / 16.0).add_prefix("p")
    images += np.random.default_rng(0).uniform(0, 1 / 17, images.shape)  # no constant column
    return ppgen.fit(ppgen.Diffusion(10, hidden=(16,)), images, max_epochs=2, progress=False)


def test_denoising_strip_runs_from_the_prior_to_the_samples(digits_fit):
    fit = digits_fit
    ax = plot.denoising(fit, n=3, steps=4, seed=1)
    mosaic = np.asarray(ax.images[0].get_array().filled(np.nan))
    assert mosaic.shape == (3 * 9 - 1, 5 * 9 - 1)  # 3 draws x (4 states + x_0), 8 x 8 tiles

    def tile(r: int, c: int) -> np.ndarray:
        return mosaic[9 * r : 9 * r + 8, 9 * c : 9 * c + 8].ravel()

    samples = fit.sample(3, seed=1).to_numpy()
    with seeded(1):
        prior = fit.schema.decode(torch.randn(3, 64, dtype=torch.float64)).to_numpy()
    for r in range(3):
        np.testing.assert_allclose(tile(r, 4), samples[r], rtol=1e-12)
        np.testing.assert_allclose(tile(r, 0), prior[r], rtol=1e-6)
    assert "t = 10, 7, 4, 1" in ax.get_title()
    plt.close("all")
    ax = plot.denoising(fit, n=3, steps=4, seed=1, predicted=True)
    again = np.asarray(ax.images[0].get_array().filled(np.nan))
    np.testing.assert_array_equal(again[:, -8:], mosaic[:, -8:])  # the same draws
    assert not np.allclose(again[:, :8], mosaic[:, :8]) and "x0hat" in ax.get_title()
    plt.close("all")
    with pytest.raises(ValueError, match="steps"):
        plot.denoising(fit, steps=11)


def test_denoising_needs_a_diffusion_fit_on_images():
    frame = ppgen.datasets.load("penguins").drop(columns="year").dropna().iloc[:40]
    fit = ppgen.fit(ppgen.Diffusion(3, hidden=(4,)), frame, max_epochs=1, progress=False)
    with pytest.raises(ValueError, match="images"):
        plot.denoising(fit)
    vae = ppgen.fit(ppgen.VAE(2, hidden=(4,)), frame, max_epochs=1, progress=False)
    with pytest.raises(ValueError, match="Diffusion"):
        plot.denoising(vae)
