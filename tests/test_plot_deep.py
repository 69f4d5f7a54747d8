"""Tests for ppgen.plot.image_grid: every tile of the mosaic is the image it should be."""

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


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _tile(mosaic: np.ndarray, i: int, n_cols: int, shape=(8, 8), pad=1) -> np.ndarray:
    h, w = shape
    r, c = divmod(i, n_cols)
    return mosaic[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w]


def test_tiles_are_the_digits_in_row_major_order():
    digits = ppgen.datasets.load("digits", label=False).iloc[:13]
    ax = plot.image_grid(digits, n_cols=5)
    mosaic = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert mosaic.shape == (3 * 9 - 1, 5 * 9 - 1)  # 13 images in 3 rows of 5, 1-pixel gaps
    for i in range(13):
        # scikit-learn's digits store each 8x8 image row by row: pixel_r_c is column 8 r + c.
        np.testing.assert_array_equal(_tile(mosaic, i, 5), digits.iloc[i].to_numpy().reshape(8, 8))
    assert np.isnan(_tile(mosaic, 13, 5)).all() and np.isnan(_tile(mosaic, 14, 5)).all()
    assert np.isnan(mosaic[8, :]).all() and np.isnan(mosaic[:, 8]).all()  # the gaps
    lo, hi = ax.images[0].get_clim()
    assert (lo, hi) == (digits.to_numpy().min(), digits.to_numpy().max())


@pytest.mark.parametrize("kind", ["ndarray", "tensor", "stack"])
def test_arrays_tensors_and_image_stacks_give_the_same_mosaic(kind):
    rng = np.random.default_rng(0)
    rows = rng.uniform(size=(4, 6))  # four 2 x 3 images
    reference = plot.image_grid(pd.DataFrame(rows), shape=(2, 3), pad=0).images[0].get_array()
    given = {
        "ndarray": rows,
        "tensor": torch.from_numpy(rows),
        "stack": rows.reshape(4, 2, 3),
    }[kind]
    mosaic = plot.image_grid(given, shape=(2, 3), pad=0).images[0].get_array()
    np.testing.assert_array_equal(mosaic, reference)
    np.testing.assert_array_equal(mosaic, np.hstack(rows.reshape(4, 2, 3)))  # one row of tiles


def test_a_single_image_and_explicit_intensity_scale():
    image = np.arange(64.0).reshape(8, 8)
    fig, ax = plt.subplots()
    out = plot.image_grid(image, ax=ax, vmin=0, vmax=100, title="one")
    assert out is ax and ax.get_title() == "one"
    np.testing.assert_array_equal(ax.images[0].get_array(), image)
    assert ax.images[0].get_clim() == (0, 100)


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="8 x 8 = 64 pixels"):
        plot.image_grid(np.zeros((3, 63)))
    with pytest.raises(ValueError, match="no images"):
        plot.image_grid(np.zeros((0, 64)))
    with pytest.raises(ValueError, match="n_cols"):
        plot.image_grid(np.zeros((3, 64)), n_cols=0)
    with pytest.raises(ValueError, match="shape"):
        plot.image_grid(np.zeros((3, 64)), shape=(0, 64))
