"""Column schema: map a mixed-type table to a float tensor and back.

A :class:`Schema` records, for every column of a table, its statistical kind
(continuous, count, binomial, binary or categorical; see :mod:`ppgen.data` for
the rule that reads a column and the kinds that keep a column's support), its
original dtype, its category labels and its standardization. Models work on the
encoded tensor; the schema turns their output (imputed values, samples) back
into the user's table with the user's dtypes and labels.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

__all__ = ["KINDS", "Column", "Encoded", "Schema"]

KINDS = ("continuous", "count", "binary", "categorical", "binomial")
#: What ``kinds=`` accepts besides :data:`KINDS`: kinds that keep a column's support, stored
#: as a continuous column on a transformed scale or as an ordered categorical column.
DECLARED_KINDS = ("positive", "bounded:LOW:HIGH", "proportion", "binomial:SIZE", "ordinal")
INPUT_TYPES = ("dataframe", "ndarray", "tensor")
TRANSFORMS = ("log", "logit")

_NUMERIC_KINDS = ("continuous", "count", "binomial")
_LABEL_KINDS = ("binary", "categorical")
_FORMAT = "ppgen.schema"
_VERSION = 1
_JSON_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class Column:
    """Description of one column of a table.

    Parameters
    ----------
    name : str
        Column name (``"x0"``, ``"x1"``, ... for array input).
    kind : str
        One of :data:`KINDS`.
    dtype : str
        The original dtype as a string, e.g. ``"float64"``, ``"Int64"``,
        ``"category"``, ``"bool"``, ``"object"``, ``"str"``.
    categories : tuple or None
        For binary and categorical columns the original labels in code order:
        code ``i`` stands for ``categories[i]``. ``None`` for other kinds.
    loc, scale : float
        Standardization of a continuous column: the encoded value is
        ``(value - loc) / scale``. ``0`` and ``1`` for other kinds.
    ordered : bool
        Whether the levels are ordered (an ordered pandas categorical, or a
        column declared or read as ``"ordinal"``).
    transform : {None, "log", "logit"}
        Of a continuous column that keeps its support: ``"log"`` for a
        positive column (log-normal), ``"logit"`` for one bounded by ``low``
        and ``high`` (logit-normal). ``loc`` and ``scale`` standardize the
        transformed values.
    low, high : float or None
        Bounds of a ``"logit"`` column.
    size : int or None
        Number of trials of a binomial column (values ``0..size``).
    note : str
        How the kind was read (shown by :meth:`Schema.summary`); not compared
        and not saved.
    """

    name: str
    kind: str
    dtype: str
    categories: tuple | None = None
    loc: float = 0.0
    scale: float = 1.0
    ordered: bool = False
    transform: str | None = None
    low: float | None = None
    high: float | None = None
    size: int | None = None
    note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"column {self.name!r}: unknown kind {self.kind!r}; expected one of {KINDS}"
            )
        if self.kind in _LABEL_KINDS:
            if self.categories is None:
                raise ValueError(f"column {self.name!r}: a {self.kind} column needs categories")
            object.__setattr__(self, "categories", tuple(self.categories))
            if self.kind == "binary" and len(self.categories) > 2:
                raise ValueError(
                    f"column {self.name!r}: a binary column has at most 2 categories; "
                    f"got {len(self.categories)}"
                )
        elif self.categories is not None:
            raise ValueError(f"column {self.name!r}: a {self.kind} column has no categories")
        if self.transform is not None:
            if self.kind != "continuous" or self.transform not in TRANSFORMS:
                raise ValueError(
                    f"column {self.name!r}: transform must be one of {TRANSFORMS} on a "
                    f"continuous column; got {self.transform!r} on a {self.kind} column"
                )
        if self.transform == "logit":
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(
                    f"column {self.name!r}: a bounded column needs low < high; "
                    f"got low={self.low}, high={self.high}"
                )
        elif self.low is not None or self.high is not None:
            raise ValueError(f"column {self.name!r}: only a bounded (logit) column has bounds")
        if self.kind == "binomial":
            if self.size is None or int(self.size) != self.size or self.size < 1:
                raise ValueError(
                    f"column {self.name!r}: a binomial column needs a positive integer size; "
                    f"got {self.size!r}"
                )
            object.__setattr__(self, "size", int(self.size))
        elif self.size is not None:
            raise ValueError(f"column {self.name!r}: only a binomial column has a size")
        if not (math.isfinite(self.loc) and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(
                f"column {self.name!r}: loc must be finite and scale finite and positive; "
                f"got loc={self.loc}, scale={self.scale}"
            )

    @property
    def n_categories(self) -> int:
        """Number of categories (0 for continuous and count columns)."""
        return 0 if self.categories is None else len(self.categories)

    @property
    def label(self) -> str:
        """The kind as a statistician reads it: ``"positive"``, ``"bounded [0, 1]"``,
        ``"binomial(16)"``, ``"ordinal"`` or the :attr:`kind` itself."""
        if self.transform == "log":
            return "positive"
        if self.transform == "logit":
            return f"bounded [{self.low:g}, {self.high:g}]"
        if self.kind == "binomial":
            return f"binomial({self.size})"
        if self.kind == "categorical" and self.ordered:
            return "ordinal"
        return self.kind

    @property
    def support(self) -> tuple[float, float]:
        """Bounds of the column's values on the original scale (numeric kinds)."""
        if self.transform == "log":
            return (0.0, math.inf)
        if self.transform == "logit":
            return (float(self.low), float(self.high))
        if self.kind == "count":
            return (0.0, math.inf)
        if self.kind == "binomial":
            return (0.0, float(self.size))
        return (-math.inf, math.inf)


@dataclass(frozen=True, eq=False)
class Encoded:
    """A table encoded by :meth:`Schema.encode`.

    Attributes
    ----------
    x : torch.Tensor
        ``(n, p)`` floating tensor, one column per schema column; missing
        entries hold 0.
    mask : torch.Tensor
        ``(n, p)`` bool tensor, ``True`` where the entry was observed.
    index : pandas.Index or None
        The row index of the input when it was a DataFrame.
    """

    x: torch.Tensor
    mask: torch.Tensor
    index: pd.Index | None


@dataclass(frozen=True)
class _Table:
    """Any supported input viewed as named pandas Series (internal)."""

    names: tuple[str, ...]
    series: tuple[pd.Series, ...]
    dtypes: tuple[str, ...]
    input_type: str
    index: pd.Index | None
    dtype: torch.dtype  # default dtype of the encoded tensor
    device: torch.device

    @property
    def n_rows(self) -> int:
        return len(self.series[0]) if self.series else 0


@dataclass(frozen=True)
class Schema:
    """Kinds, dtypes, categories and standardization of every column of a table.

    Build one with :meth:`infer`, then use :meth:`encode` to turn tables into
    tensors and :meth:`decode` to turn tensors back into tables.

    Parameters
    ----------
    columns : tuple of Column
        One entry per column, in table order.
    input_type : {"dataframe", "ndarray", "tensor"}
        The type of table the schema was inferred from; :meth:`decode` returns
        this type.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"w": [1.0, 2.0, 4.0], "g": ["a", "b", "a"]})
    >>> schema = Schema.infer(df)
    >>> schema.kinds
    ('continuous', 'categorical')
    >>> enc = schema.encode(df)
    >>> schema.decode(enc.x, index=enc.index).equals(df)
    True
    """

    columns: tuple[Column, ...]
    input_type: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if self.input_type not in INPUT_TYPES:
            raise ValueError(
                f"unknown input_type {self.input_type!r}; expected one of {INPUT_TYPES}"
            )
        _check_unique(self.names)

    # -- construction -------------------------------------------------------

    @classmethod
    def infer(
        cls,
        data: pd.DataFrame | np.ndarray | torch.Tensor,
        kinds: dict[str, str] | None = None,
        standardize: bool = True,
        supported: Sequence[str] | None = None,
    ) -> Schema:
        """Infer a schema from a table.

        Parameters
        ----------
        data : pandas.DataFrame, numpy.ndarray or torch.Tensor
            A 2-D table. Array and tensor columns are named ``"x0"``,
            ``"x1"``, ... and are continuous unless overridden.
        kinds : dict of str to str, optional
            Override the inferred kind of some columns, e.g.
            ``{"year": "categorical"}``: one of :data:`KINDS` or of
            :data:`DECLARED_KINDS` (``"positive"``, ``"bounded:0:100"``,
            ``"proportion"``, ``"binomial"``, ``"binomial:16"``,
            ``"ordinal"``; see :mod:`ppgen.data`).
        standardize : bool, default True
            Centre and scale continuous columns to mean 0 and standard
            deviation 1 (population sd, ``ddof=0``) over their observed
            (transformed) values. A constant column keeps ``scale=1``.
        supported : sequence of str, optional
            The kinds the model to be fitted handles (its
            ``supported_kinds``). When they hold ``"continuous"`` but not the
            kind a numeric column would get (e.g. PPCA and integer items),
            the column is read as continuous, with a note (rule 2).

        Returns
        -------
        Schema

        Raises
        ------
        ValueError
            For an empty table, a 1-D input, an unknown column or kind in
            ``kinds``, an all-missing column, infinite values, non-numeric
            values in a continuous or count column, negative or non-integer
            values in a count column, more than two values in a binary column,
            an unsupported dtype (e.g. datetime), a text column that holds
            numbers except for a few values (naming them and their rows), or
            a text column with nearly one level per row (an identifier or
            free text).

        Warns
        -----
        UserWarning
            When a text column holding only numbers is read as numbers, and
            when a categorical column has many levels for its rows.

        Notes
        -----
        The rule that reads each column is documented in :mod:`ppgen.data`.
        """
        table = _as_table(data)
        _check_not_empty(table)
        _check_no_infinity(table)
        overrides = _check_overrides(kinds, table.names)
        columns = tuple(
            _infer_column(
                name,
                series,
                dtype,
                overrides.get(name),
                standardize,
                from_array=table.input_type != "dataframe",
                supported=None if supported is None else tuple(supported),
            )
            for name, series, dtype in zip(table.names, table.series, table.dtypes, strict=True)
        )
        return cls(columns, table.input_type)

    # -- description --------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in schema order."""
        return tuple(c.name for c in self.columns)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Column kinds in schema order."""
        return tuple(c.kind for c in self.columns)

    @property
    def n_categories(self) -> tuple[int, ...]:
        """Number of categories per column (0 for continuous and count)."""
        return tuple(c.n_categories for c in self.columns)

    @property
    def n_continuous(self) -> int:
        """Number of continuous columns."""
        return self.kinds.count("continuous")

    @property
    def n_count(self) -> int:
        """Number of count columns."""
        return self.kinds.count("count")

    @property
    def n_binary(self) -> int:
        """Number of binary columns."""
        return self.kinds.count("binary")

    @property
    def n_categorical(self) -> int:
        """Number of categorical columns."""
        return self.kinds.count("categorical")

    def __len__(self) -> int:
        return len(self.columns)

    def positions(self, *kinds: str) -> tuple[int, ...]:
        """Positions (encoded column indices) of the columns of the given kinds.

        Parameters
        ----------
        *kinds : str
            Kinds from :data:`KINDS`.

        Returns
        -------
        tuple of int
        """
        _check_kinds(kinds)
        return tuple(j for j, c in enumerate(self.columns) if c.kind in kinds)

    def require(self, *kinds: str, model: str, hint: str = "") -> None:
        """Raise if some column's kind is not among ``kinds``.

        Parameters
        ----------
        *kinds : str
            The kinds the model handles.
        model : str
            Model name used in the message, e.g. ``"PPCA"``.
        hint : str, optional
            Appended to the message, e.g. which model to use instead.

        Raises
        ------
        ValueError
            Naming every offending column and its kind, e.g. ``"PPCA handles
            continuous columns only; column 'species' is categorical. Use
            GaussianMixture or VAE for mixed tables."``
        """
        _check_kinds(kinds)
        offending: dict[str, list[str]] = {}
        for c in self.columns:
            if c.kind not in kinds:
                offending.setdefault(c.kind, []).append(repr(c.name))
        if not offending:
            return
        problems = ", ".join(
            f"column {names[0]} is {kind}"
            if len(names) == 1
            else f"columns {_join(names)} are {kind}"
            for kind, names in offending.items()
        )
        message = f"{model} handles {_join(kinds)} columns only; {problems}."
        raise ValueError(f"{message} {hint}".strip())

    # -- encoding -----------------------------------------------------------

    def encode(
        self,
        data: pd.DataFrame | np.ndarray | torch.Tensor,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Encoded:
        """Encode a table as a float tensor and an observation mask.

        Continuous columns are standardized, counts kept as numbers, binary
        and categorical columns replaced by their integer codes. Missing
        entries (NaN, None, ``pd.NA``, NaT) are 0 in ``x`` and ``False`` in
        ``mask``.

        Parameters
        ----------
        data : pandas.DataFrame, numpy.ndarray or torch.Tensor
            A table with the schema's columns. A DataFrame schema needs a
            DataFrame (columns may come in any order and are reordered); an
            array or tensor schema accepts either with the same width.
        device : torch.device or str, optional
            Device of the result; default the input tensor's device, else CPU.
        dtype : torch.dtype, optional
            Floating dtype of ``x``; default the input tensor's floating dtype
            (``torch.get_default_dtype()`` for integer tensors) and float64
            for DataFrames and arrays.

        Returns
        -------
        Encoded

        Raises
        ------
        ValueError
            If the columns differ from the schema's, or a value does not fit
            its column (unseen category, non-numeric, infinite, negative or
            non-integer count, third value in a binary column).
        """
        table = self._conform(_as_table(data))
        _check_no_infinity(table)
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype; got {dtype}")
        encoded = [_encode_column(c, s) for c, s in zip(self.columns, table.series, strict=True)]
        x = torch.as_tensor(
            np.column_stack([values for values, _ in encoded]),
            dtype=dtype or table.dtype,
            device=device if device is not None else table.device,
        )
        mask = torch.as_tensor(
            np.column_stack([observed for _, observed in encoded]), device=x.device
        )
        return Encoded(x=x, mask=mask, index=table.index)

    def decode(
        self,
        x: torch.Tensor | np.ndarray,
        *,
        index: pd.Index | Sequence | None = None,
    ) -> pd.DataFrame | np.ndarray | torch.Tensor:
        """Turn an encoded (complete) tensor back into a table.

        Parameters
        ----------
        x : torch.Tensor or numpy.ndarray
            ``(n, p)`` values on the encoded scale, without missing entries
            (imputed or sampled tables are complete).
        index : pandas.Index or sequence, optional
            Row index of a decoded DataFrame (e.g. ``Encoded.index``); default
            ``RangeIndex(n)``. Ignored for array and tensor schemas.

        Returns
        -------
        pandas.DataFrame, numpy.ndarray or torch.Tensor
            The schema's input type. DataFrame columns get their original
            dtypes: continuous columns are unstandardized and keep a float
            dtype, but integer columns forced to continuous come back as
            float64; counts are rounded, clipped at 0 and cast to their
            original dtype (int64 if that was not numeric); binary and
            categorical codes are rounded, clipped to the valid range and
            mapped to the original labels and dtype (pandas categories and
            their order included). Arrays and tensors keep their original
            dtype when it is floating or when no column is continuous, and are
            float64 (tensors: ``torch.get_default_dtype()``) otherwise.

        Raises
        ------
        ValueError
            If ``x`` is not ``(n, p)``, holds non-finite values, or ``index``
            has the wrong length.
        """
        values = _to_numpy_2d(x, "x").astype(np.float64, copy=False)
        if values.shape[1] != len(self):
            raise ValueError(
                f"x has {values.shape[1]} columns; the schema has {len(self)} "
                f"({_join([repr(n) for n in self.names])})"
            )
        decoded = [_decode_values(c, values[:, j]) for j, c in enumerate(self.columns)]
        if self.input_type == "dataframe":
            return self._decode_frame(decoded, index, len(values))
        return self._decode_array(decoded, x)

    def decode_filled(
        self,
        x: torch.Tensor | np.ndarray,
        given: dict[int, np.ndarray],
        observed: np.ndarray,
        *,
        index: pd.Index | Sequence | None = None,
    ) -> pd.DataFrame:
        """:meth:`decode` of a DataFrame schema with observed entries put back in numpy.

        Multiple imputation decodes m tables of the same rows; going through a pandas
        ``Series.where`` and a column assignment per column and table costs far more than the
        draw itself. Here column ``j`` in ``given`` (a numpy array of the decoded column's own
        dtype, see :meth:`decoded_dtype`) takes ``given[j]`` where ``observed[:, j]`` and the
        decoded value elsewhere, and the frame is built once. Other columns decode as in
        :meth:`decode`. The values and dtypes are those of :meth:`decode` followed by
        ``Series.where`` on those columns, bit for bit.
        """
        values = _to_numpy_2d(x, "x").astype(np.float64, copy=False)
        if values.shape[1] != len(self) or self.input_type != "dataframe":
            raise ValueError("decode_filled needs a DataFrame schema and x with its columns")
        series = {}
        for j, column in enumerate(self.columns):
            decoded = _decode_values(column, values[:, j])
            if j in given:
                kept = given[j]
                merged = np.where(observed[:, j], kept, decoded.astype(kept.dtype, copy=False))
                series[column.name] = pd.Series(merged, copy=False)
            else:
                series[column.name] = _to_series(column, decoded)
        frame = pd.DataFrame(series)
        if index is not None:
            frame.index = pd.Index(index)
        return frame

    def decoded_dtype(self, j: int) -> np.dtype | None:
        """The numpy dtype :meth:`decode` gives continuous column ``j`` (None for other kinds
        or an extension dtype)."""
        column = self.columns[j]
        if column.kind != "continuous":
            return None
        dtype = _pandas_dtype(column.dtype)
        if _family(dtype) != "float":
            return np.dtype(np.float64)
        return dtype if isinstance(dtype, np.dtype) else None

    def log_abs_det_jacobian(
        self,
        mask: torch.Tensor,
        *,
        dtype: torch.dtype | None = None,
        x: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Log-Jacobian of the map from the original to the encoded scale.

        Parameters
        ----------
        mask : torch.Tensor
            ``(..., p)`` bool observation mask (e.g. ``Encoded.mask``).
        dtype : torch.dtype, optional
            Floating dtype of the result; default float64, the precision of
            the stored scales (pass ``dtype=x.dtype`` to match float32 work).
        x : torch.Tensor, optional
            ``(..., p)`` encoded values (e.g. ``Encoded.x``). Needed when a
            column keeps its support (positive or bounded): its Jacobian
            depends on the value.

        Returns
        -------
        torch.Tensor
            ``(...,)``: minus the sum over observed continuous columns of
            ``log(scale)``, plus for a positive column ``-log(y)`` and for a
            column bounded by ``(a, b)`` ``log(b - a) - log(y - a) -
            log(b - y)``. Add it to a log density of the encoded values to
            get the log density of the original values ``y``.
        """
        mask = torch.as_tensor(mask)
        if mask.ndim == 0 or mask.shape[-1] != len(self):
            raise ValueError(
                f"mask must have {len(self)} columns (one per schema column); "
                f"got shape {tuple(mask.shape)}"
            )
        log_scale = torch.tensor(
            [math.log(c.scale) if c.kind == "continuous" else 0.0 for c in self.columns],
            dtype=dtype or torch.float64,
            device=mask.device,
        )
        out = -(mask.to(log_scale.dtype) * log_scale).sum(-1)
        transformed = [j for j, c in enumerate(self.columns) if c.transform is not None]
        if not transformed:
            return out
        if x is None:
            names = _join([repr(self.names[j]) for j in transformed])
            raise ValueError(
                f"the Jacobian of positive or bounded columns ({names}) depends on their "
                "values: pass x=Encoded.x"
            )
        x = torch.as_tensor(x).to(device=mask.device, dtype=log_scale.dtype)
        for j in transformed:
            c = self.columns[j]
            u = x[..., j] * c.scale + c.loc  # the transformed value: log y or logit
            if c.transform == "log":
                term = -u  # d log(y) / dy = 1 / y
            else:
                # d logit(p) / dy = 1 / (p (1 - p) (b - a)), p = sigmoid(u)
                sp = torch.nn.functional.softplus
                term = sp(u) + sp(-u) - math.log(c.high - c.low)
            out = out + torch.where(mask[..., j], term, term.new_zeros(()))
        return out

    # -- what was inferred --------------------------------------------------

    def summary(self, data: pd.DataFrame | np.ndarray | torch.Tensor | None = None) -> pd.DataFrame:
        """What was inferred, one row per column.

        Parameters
        ----------
        data : table, optional
            The table the schema was inferred from: adds the observed range
            of numeric columns and each column's missing share.

        Returns
        -------
        pandas.DataFrame
            Columns ``column``, ``kind`` (as :attr:`Column.label`: positive,
            bounded [a, b], binomial(n), ordinal, ...), ``range or levels``,
            ``missing`` (share of missing entries, NaN without ``data``) and
            ``note`` (how the kind was read).
        """
        table = None if data is None else self._conform(_as_table(data))
        rows = []
        for j, c in enumerate(self.columns):
            missing = float("nan")
            described = ""
            if c.categories is not None:
                shown = ", ".join(map(str, c.categories[:6]))
                more = f", ... ({c.n_categories} levels)" if c.n_categories > 6 else ""
                described = shown + more
            if table is not None:
                series = table.series[j]
                missing = float(series.isna().mean())
                if c.kind in _NUMERIC_KINDS:
                    values = _numeric(c.name, series, series.isna().to_numpy(), c.kind)
                    described = f"{np.nanmin(values):g} to {np.nanmax(values):g}"
            elif c.kind in ("count", "binomial"):
                described = "0, 1, 2, ..." if c.kind == "count" else f"0 to {c.size}"
            elif c.transform is not None:
                low, high = c.support
                described = f"({low:g}, {high:g})"
            rows.append(
                {
                    "column": c.name,
                    "kind": c.label,
                    "range or levels": described,
                    "missing": missing,
                    "note": c.note,
                }
            )
        return pd.DataFrame(rows, columns=["column", "kind", "range or levels", "missing", "note"])

    def __str__(self) -> str:
        return self.format()

    def format(self, data: pd.DataFrame | np.ndarray | torch.Tensor | None = None) -> str:
        """:meth:`summary` as a readable table (``str(schema)`` is ``schema.format()``).

        Parameters
        ----------
        data : table, optional
            The table the schema was inferred from: adds observed ranges and the missing
            share of every column (what ``ppgen fit`` and ``ppgen impute`` print).

        Returns
        -------
        str
        """
        frame = self.summary(data)
        if data is None:
            frame = frame.drop(columns="missing")
        else:
            frame["missing"] = [f"{v:.0%}" if v > 0 else "" for v in frame["missing"]]
        frame = frame.astype(str)
        widths = [max(len(h), *(len(v) for v in frame[h])) for h in frame.columns]
        lines = [
            "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in [list(frame.columns), *frame.itertuples(index=False)]
        ]
        return "\n".join([f"Schema ({len(self)} columns)", *lines])

    def support_warnings(
        self,
        samples: pd.DataFrame | np.ndarray | torch.Tensor,
        data: pd.DataFrame | np.ndarray | torch.Tensor,
        threshold: float = 0.01,
    ) -> list[str]:
        """Suggest a kind that keeps the support where a fitted model leaks out of it.

        A continuous column whose observed values are all positive (or all in
        ``[0, 1]``) but whose model ``samples`` fall outside ``(0, inf)`` (or
        ``[0, 1]``) more than ``threshold`` of the time gets a suggestion to
        declare it ``"positive"`` (or ``"proportion"``).

        Parameters
        ----------
        samples : table
            Decoded draws from the fitted model, e.g. ``fit.sample(4000, seed=0)``.
        data : table
            The table the model was fitted to.
        threshold : float, default 0.01
            Largest share of mass outside the support that passes silently.

        Returns
        -------
        list of str
            One message per column, empty when every column keeps its support.
        """
        seen = self._conform(_as_table(data))
        drawn = self._conform(_as_table(samples))
        out = []
        for j, c in enumerate(self.columns):
            if c.kind != "continuous" or c.transform is not None:
                continue
            observed = _numeric(c.name, seen.series[j], seen.series[j].isna().to_numpy(), c.kind)
            observed = observed[~np.isnan(observed)]
            draws = drawn.series[j].to_numpy(dtype=np.float64, na_value=np.nan)
            if observed.min() >= 0 and observed.max() <= 1:
                outside, support, kind = (draws < 0) | (draws > 1), "[0, 1]", "proportion"
            elif observed.min() > 0:
                outside, support, kind = draws <= 0, "(0, inf)", "positive"
            else:
                continue
            share = float(np.mean(outside))
            if share > threshold:
                out.append(
                    f"column {c.name!r}: every observed value is in {support} but "
                    f"{share:.1%} of the model's draws fall outside; consider "
                    f"kinds={{{c.name!r}: {kind!r}}}"
                )
        return out

    # -- serialisation ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description of the schema.

        Returns
        -------
        dict
            Plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``
            values; :meth:`from_dict` rebuilds an equal schema.

        Raises
        ------
        ValueError
            If a category label is not a JSON scalar (str, int, float, bool).
        """
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "input_type": self.input_type,
            "columns": [_column_to_dict(c) for c in self.columns],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        """Rebuild a schema from :meth:`to_dict` output.

        Parameters
        ----------
        d : dict
            As returned by :meth:`to_dict` (possibly through JSON).

        Returns
        -------
        Schema
        """
        if d.get("format") != _FORMAT or d.get("version") != _VERSION:
            raise ValueError(
                f"not a ppgen schema (version {_VERSION}): format={d.get('format')!r}, "
                f"version={d.get('version')!r}"
            )
        try:
            columns = tuple(
                Column(
                    name=c["name"],
                    kind=c["kind"],
                    dtype=c["dtype"],
                    categories=None if c["categories"] is None else tuple(c["categories"]),
                    loc=float(c["loc"]),
                    scale=float(c["scale"]),
                    ordered=bool(c["ordered"]),
                    transform=c.get("transform"),
                    low=None if c.get("low") is None else float(c["low"]),
                    high=None if c.get("high") is None else float(c["high"]),
                    size=c.get("size"),
                )
                for c in d["columns"]
            )
            return cls(columns, d["input_type"])
        except KeyError as err:
            raise ValueError(f"schema dict is missing the key {err.args[0]!r}") from None

    # -- internals ----------------------------------------------------------

    def _conform(self, table: _Table) -> _Table:
        """Check that a table matches the schema; return it in schema order."""
        if self.input_type == "dataframe":
            if table.input_type != "dataframe":
                raise ValueError(
                    f"this schema was inferred from a DataFrame; encode needs a DataFrame "
                    f"with columns {_join([repr(n) for n in self.names])}, "
                    f"not a {table.input_type}"
                )
            missing = [repr(n) for n in self.names if n not in table.names]
            extra = [repr(n) for n in table.names if n not in self.names]
            if missing or extra:
                problems = [f"missing {_join(missing)}"] if missing else []
                problems += [f"unexpected {_join(extra)}"] if extra else []
                raise ValueError(f"columns differ from the schema: {'; '.join(problems)}")
            position = {n: j for j, n in enumerate(table.names)}
            order = [position[n] for n in self.names]
            table = _Table(
                names=self.names,
                series=tuple(table.series[j] for j in order),
                dtypes=tuple(table.dtypes[j] for j in order),
                input_type=table.input_type,
                index=table.index,
                dtype=table.dtype,
                device=table.device,
            )
        elif table.input_type == "dataframe":
            raise ValueError(
                f"this schema was inferred from a {self.input_type}; encode needs an ndarray "
                f"or tensor with {len(self)} columns, not a DataFrame"
            )
        elif len(table.names) != len(self):
            raise ValueError(
                f"expected {len(self)} columns ({_join([repr(n) for n in self.names])}); "
                f"got {len(table.names)}"
            )
        _check_not_empty(table)
        return table

    def _decode_frame(
        self, decoded: list[np.ndarray], index: pd.Index | Sequence | None, n: int
    ) -> pd.DataFrame:
        frame = pd.DataFrame(
            {c.name: _to_series(c, v) for c, v in zip(self.columns, decoded, strict=True)}
        )
        if index is not None:
            index = pd.Index(index)
            if len(index) != n:
                raise ValueError(f"index has {len(index)} entries; x has {n} rows")
            # Set rather than align: the index may hold duplicate labels.
            frame.index = index
        return frame

    def _decode_array(
        self, decoded: list[np.ndarray], x: torch.Tensor | np.ndarray
    ) -> np.ndarray | torch.Tensor:
        # Array columns share one dtype; label columns hold numeric labels.
        matrix = np.column_stack(
            [
                np.asarray(c.categories, dtype=np.float64)[v] if c.kind in _LABEL_KINDS else v
                for c, v in zip(self.columns, decoded, strict=True)
            ]
        )
        # Integer (or bool) arrays come back in their dtype only if no value needs a fraction.
        exact = "continuous" not in self.kinds
        name = self.columns[0].dtype
        if self.input_type == "ndarray":
            original = np.dtype(name)
            keep = original.kind == "f" or (exact and original.kind in "biu")
            return matrix.astype(original if keep else np.float64)
        original_t = getattr(torch, name)
        keep_t = original_t.is_floating_point or exact
        device = x.device if isinstance(x, torch.Tensor) else None
        return torch.as_tensor(matrix, device=device).to(
            original_t if keep_t else torch.get_default_dtype()
        )


# -- input handling ---------------------------------------------------------


def _as_table(data: Any) -> _Table:
    """View a DataFrame, ndarray or tensor as named Series."""
    cpu = torch.device("cpu")
    if isinstance(data, pd.DataFrame):
        names = tuple(data.columns)
        bad = [n for n in names if not isinstance(n, str)]
        if bad:
            raise ValueError(
                f"column names must be strings; got {_join([repr(n) for n in bad])} "
                f"(use df.columns = df.columns.astype(str))"
            )
        _check_unique(names)
        return _Table(
            names=names,
            series=tuple(data.iloc[:, j] for j in range(data.shape[1])),
            dtypes=tuple(str(dt) for dt in data.dtypes),
            input_type="dataframe",
            index=data.index,
            dtype=torch.float64,
            device=cpu,
        )
    if isinstance(data, torch.Tensor):
        if data.is_complex():
            raise ValueError(f"complex tensors are not supported; got {data.dtype}")
        dtype = data.dtype if data.is_floating_point() else torch.get_default_dtype()
        return _array_table(
            _to_numpy_2d(data, "data"),
            "tensor",
            str(data.dtype).removeprefix("torch."),
            dtype,
            data.device,
        )
    if isinstance(data, np.ndarray):
        return _array_table(
            _to_numpy_2d(data, "data"), "ndarray", str(data.dtype), torch.float64, cpu
        )
    if isinstance(data, pd.Series):
        raise ValueError(
            "expected a 2-D table (rows x columns); got a pandas Series (use series.to_frame())"
        )
    raise TypeError(
        f"expected a pandas DataFrame, numpy ndarray or torch Tensor; got {type(data).__name__}"
    )


def _array_table(
    array: np.ndarray, input_type: str, dtype_name: str, dtype: torch.dtype, device: torch.device
) -> _Table:
    names = tuple(f"x{j}" for j in range(array.shape[1]))
    return _Table(
        names=names,
        series=tuple(pd.Series(array[:, j], copy=False) for j in range(array.shape[1])),
        dtypes=(dtype_name,) * len(names),
        input_type=input_type,
        index=None,
        dtype=dtype,
        device=device,
    )


def _to_numpy_2d(values: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        tensor = values.detach().cpu()
        # numpy has no bfloat16 (and friends); float32 holds them exactly.
        if tensor.is_floating_point() and tensor.dtype not in (
            torch.float16,
            torch.float32,
            torch.float64,
        ):
            tensor = tensor.float()
        values = tensor.numpy()
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(
            f"expected a 2-D table (rows x columns) for {what}; got {values.ndim}-D "
            f"input of shape {values.shape}"
        )
    return values


def _check_not_empty(table: _Table) -> None:
    if not table.names:
        raise ValueError("the table has 0 columns; at least one column is needed")
    if table.n_rows == 0:
        raise ValueError(
            f"the table has 0 rows (columns {_join([repr(n) for n in table.names])}); "
            "at least one row is needed"
        )


def _check_no_infinity(table: _Table) -> None:
    """Name every float column holding infinite values, with its rows (labels, the first few):
    one message for the whole table rather than one fix-and-rerun per column. Text columns
    read as numbers are checked column by column where they are read."""
    found = []
    for name, series in zip(table.names, table.series, strict=True):
        if not pd.api.types.is_float_dtype(series.dtype):
            continue
        infinite = np.isinf(series.to_numpy(dtype=np.float64, na_value=np.nan))
        if infinite.any():
            rows = [repr(_scalar(r)) for r in series.index[infinite][:5]]
            more = f" and {int(infinite.sum()) - 5} more" if infinite.sum() > 5 else ""
            found.append(
                f"{name!r} (row{'s' if infinite.sum() > 1 else ''} {', '.join(rows)}{more})"
            )
    if found:
        raise ValueError(
            f"infinite values in {len(found)} column{'s' if len(found) > 1 else ''}: "
            f"{_join(found)}; replace them or mark them missing"
        )


def _check_unique(names: Sequence[str]) -> None:
    duplicated = [n for n, k in Counter(names).items() if k > 1]
    if duplicated:
        raise ValueError(f"duplicate column names: {_join([repr(n) for n in duplicated])}")


def _check_kinds(kinds: Iterable[str]) -> None:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind {unknown[0]!r}; expected one of {KINDS}")


def _check_overrides(
    kinds: dict[str, str] | None, names: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """Parsed ``kinds=`` entries: column name -> :func:`_parse_kind` result."""
    kinds = dict(kinds or {})
    parsed = {}
    for name, kind in kinds.items():
        if name not in names:
            raise ValueError(
                f"kinds names column {name!r}, which is not in the table "
                f"(columns: {_join([repr(n) for n in names])})"
            )
        parsed[name] = _parse_kind(name, kind)
    return parsed


def _parse_kind(name: str, spec: Any) -> dict[str, Any]:
    """``"positive"``, ``"bounded:0:1"``, ``"binomial:16"``, ... as Column fields."""
    expected = f"expected one of {KINDS} or {DECLARED_KINDS}"
    if not isinstance(spec, str):
        raise ValueError(f"unknown kind {spec!r} for column {name!r}; {expected}")
    head, *args = spec.strip().split(":")
    try:
        numbers = [float(a) for a in args]
    except ValueError:
        raise ValueError(
            f"kind {spec!r} for column {name!r}: the arguments after ':' must be numbers"
        ) from None
    if head == "positive" and not args:
        return {"kind": "continuous", "transform": "log"}
    if head == "proportion" and not args:
        return {"kind": "continuous", "transform": "logit", "low": 0.0, "high": 1.0}
    if head == "bounded":
        if len(numbers) != 2 or not numbers[0] < numbers[1] or not all(map(math.isfinite, numbers)):
            raise ValueError(
                f"kind {spec!r} for column {name!r}: declare finite bounds low < high, "
                "e.g. 'bounded:0:100' (or 'proportion' for 0 to 1)"
            )
        return {"kind": "continuous", "transform": "logit", "low": numbers[0], "high": numbers[1]}
    if head == "binomial" and len(args) <= 1:
        if numbers and (numbers[0] != int(numbers[0]) or numbers[0] < 1):
            raise ValueError(
                f"kind {spec!r} for column {name!r}: the size must be a positive integer, "
                "e.g. 'binomial:16'"
            )
        return {"kind": "binomial", "size": int(numbers[0]) if numbers else None}
    if head == "ordinal" and not args:
        return {"kind": "categorical", "ordered": True}
    if head in KINDS and not args:
        return {"kind": head}
    raise ValueError(f"unknown kind {spec!r} for column {name!r}; {expected}")


def _family(dtype: Any) -> str:
    """Coarse dtype family: bool, int, float, category, text or other."""
    if dtype is None:
        return "other"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return "text"
    return "other"


# -- per-column inference, encoding and decoding ----------------------------


#: Rule 3: an integer column is a count when its largest value is at least this many times its
#: smallest (it starts at or near 0 relative to its spread: min <= range / 2).
COUNT_RATIO = 3.0
#: Rule 4: an integer column whose smallest value exceeds this many ranges is ordinal (years)
#: when it has at most ``ORDINAL_LEVELS`` distinct values, continuous otherwise.
ORDINAL_RANGES = 10.0
ORDINAL_LEVELS = 20
#: A text column is refused as an identifier or free text when it has more distinct values than
#: this share of its observed rows (and at least ``_MIN_ROWS_ID`` rows).
IDENTIFIER_SHARE = 0.9
_MIN_ROWS_ID = 20
#: A text column that is numeric for at least this share of its observed values and text for the
#: rest is a misread numeric column: refused, naming the text values and rows.
NUMERIC_SHARE = 0.8
#: A categorical column warns with at least this many levels and fewer than
#: ``ROWS_PER_LEVEL`` observed rows per level.
MANY_LEVELS = 10
ROWS_PER_LEVEL = 5


def _infer_column(
    name: str,
    series: pd.Series,
    dtype: str,
    declared: dict[str, Any] | None,
    standardize: bool,
    from_array: bool,
    supported: tuple[str, ...] | None = None,
) -> Column:
    family = _family(series.dtype)
    if family == "other":
        raise ValueError(
            f"column {name!r} has unsupported dtype {dtype}; convert it to numbers, "
            "strings or a pandas category"
        )
    missing = series.isna().to_numpy()
    if missing.all():
        raise ValueError(f"column {name!r} is entirely missing")
    note = ""
    if declared is not None:
        spec = dict(declared)
        note = "declared"
    elif from_array:
        spec = {"kind": "continuous"}
    else:
        if family == "text":
            converted = _read_text(name, series, missing)
            if converted is not None:
                series, family = converted, _family(converted.dtype)
                note = "numbers stored as text, read as numbers"
        spec, rule = _default_kind(series, family)
        note = "; ".join(n for n in (note, rule) if n)
        if (
            supported is not None
            and "continuous" in supported
            and spec["kind"] not in supported
            and family in ("int", "float")
        ):
            spec = {"kind": "continuous"}
            note = "; ".join(
                n for n in (note, "read as continuous: the model handles continuous columns")
                if n
            )  # fmt: skip
    kind = spec["kind"]
    if kind in _NUMERIC_KINDS:
        values = _numeric(name, series, missing, kind)
        observed = values[~missing]
        loc, scale = 0.0, 1.0
        if kind == "binomial":
            largest = int(observed.max())
            if spec.get("size") is None:
                spec["size"] = max(largest, 1)
                note = "; ".join(n for n in (note, f"size {spec['size']} from the data's max") if n)
            _check_range(name, observed, 0, spec["size"], f"binomial(size={spec['size']})")
        transform = spec.get("transform")
        if transform is not None:
            observed = _forward(name, observed, transform, spec.get("low"), spec.get("high"))
        if kind == "continuous" and standardize:
            loc = float(observed.mean())
            scale = float(observed.std())
            # A constant column cannot be scaled; leaving it unscaled keeps it usable. Its float
            # std is rounding residue (0.1 repeated: 1.4e-17), hence relative to the mean.
            scale = scale if scale > 1e-12 * abs(loc) else 1.0
        return Column(
            name,
            kind,
            dtype,
            loc=loc,
            scale=scale,
            transform=transform,
            low=spec.get("low"),
            high=spec.get("high"),
            size=spec.get("size"),
            note=note,
        )
    categories = _categories(name, series, family)
    if kind == "binary" and len(categories) > 2:
        raise ValueError(
            f"column {name!r} cannot be binary: it has {len(categories)} distinct values "
            f"({_join([repr(c) for c in categories[:5]])}{', ...' if len(categories) > 5 else ''})"
        )
    ordered = spec.get("ordered", False) or (
        isinstance(series.dtype, pd.CategoricalDtype) and bool(series.dtype.ordered)
    )
    n_observed = int((~missing).sum())
    if len(categories) >= MANY_LEVELS and n_observed < ROWS_PER_LEVEL * len(categories):
        warnings.warn(
            f"column {name!r} has {len(categories)} levels for {n_observed} observed rows "
            f"(fewer than {ROWS_PER_LEVEL} rows per level): its probabilities are poorly "
            "determined; merge rare levels or drop the column",
            UserWarning,
            stacklevel=4,
        )
    return Column(name, kind, dtype, categories=categories, ordered=ordered, note=note)


def _read_text(name: str, series: pd.Series, missing: np.ndarray) -> pd.Series | None:
    """A text column as numbers when every value is one (warning), or ``None`` if it is text.

    Raises when the column is numeric except for a few values (a typo), naming them and their
    rows, and when it has nearly one level per row (an identifier or free text).
    """
    observed = series[~missing]
    stripped = observed.astype(str).str.strip()
    numbers = pd.to_numeric(stripped, errors="coerce")
    bad = numbers.isna().to_numpy()
    n = len(observed)
    if not bad.any():
        warnings.warn(
            f"column {name!r} holds numbers stored as text; it is read as numbers "
            f"(declare kinds={{{name!r}: 'categorical'}} to keep them as labels)",
            UserWarning,
            stacklevel=5,
        )
        values = np.full(len(series), np.nan)
        values[~missing] = numbers.to_numpy(dtype=np.float64)
        whole = values[~missing]
        if (whole == np.floor(whole)).all():
            return pd.Series(pd.array(values, dtype="Int64"), index=series.index)
        return pd.Series(values, index=series.index)
    if n - bad.sum() >= NUMERIC_SHARE * n:
        rows = observed.index[bad]
        texts = observed[bad]
        shown = ", ".join(f"{v!r} (row {r!r})" for r, v in list(zip(rows, texts, strict=True))[:5])
        more = f" and {bad.sum() - 5} more" if bad.sum() > 5 else ""
        raise ValueError(
            f"column {name!r} holds numbers except for {int(bad.sum())} non-numeric "
            f"value{'s' if bad.sum() > 1 else ''}: {shown}{more}. Fix or blank them (e.g. "
            f"pd.to_numeric(df[{name!r}], errors='coerce') or read_csv's na_values), or "
            f"declare kinds={{{name!r}: 'categorical'}} if the column holds labels"
        )
    levels = observed.nunique()
    if n >= _MIN_ROWS_ID and levels > IDENTIFIER_SHARE * n:
        raise ValueError(
            f"column {name!r} looks like an identifier or free text: {levels} distinct values "
            f"in {n} observed rows; drop it (df.drop(columns=[{name!r}])), or declare "
            f"kinds={{{name!r}: 'categorical'}} to model it anyway"
        )
    return None


def _default_kind(series: pd.Series, family: str) -> tuple[dict[str, Any], str]:
    """The written rule (rules 3-5 of :mod:`ppgen.data`): kind fields and a note."""
    if family == "bool":
        return {"kind": "binary"}, ""
    if family in ("category", "text"):
        return {"kind": "categorical"}, ""
    if family == "float":
        return {"kind": "continuous"}, ""
    observed = series.dropna().to_numpy(dtype=np.int64)
    if np.isin(observed, (0, 1)).all():
        return {"kind": "binary"}, ""
    low, high = int(observed.min()), int(observed.max())
    if low < 0:
        return {"kind": "continuous"}, ""
    if high >= COUNT_RATIO * low:
        return {"kind": "count"}, ""
    far = f"integers {low}-{high}, far from 0 for their spread"
    if low > ORDINAL_RANGES * (high - low):
        if len(np.unique(observed)) <= ORDINAL_LEVELS:
            return {"kind": "categorical", "ordered": True}, f"{far}: ordinal levels, not counts"
        return {"kind": "continuous"}, f"{far}, many levels: continuous, not counts"
    return {"kind": "continuous"}, f"integers {low}-{high}, away from 0: continuous"


def _forward(
    name: str, values: np.ndarray, transform: str, low: float | None, high: float | None
) -> np.ndarray:
    """log (positive) or logit of the position in (low, high) (bounded); NaN stays NaN."""
    seen = values[~np.isnan(values)]
    if transform == "log":
        _check_open(name, seen, 0.0, math.inf, "positive (log-normal)")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(values)
    _check_open(name, seen, low, high, f"bounded ({low:g}, {high:g}) (logit-normal)")
    p = (values - low) / (high - low)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(p) - np.log1p(-p)


def _backward(column: Column, values: np.ndarray) -> np.ndarray:
    if column.transform == "log":
        return np.exp(values)
    if column.transform == "logit":
        return column.low + (column.high - column.low) / (1.0 + np.exp(-values))
    return values


def _check_open(name: str, values: np.ndarray, low: float, high: float, what: str) -> None:
    outside = (values <= low) | (values >= high)
    if outside.any():
        raise ValueError(
            f"column {name!r} is {what} but holds {int(outside.sum())} value"
            f"{'s' if outside.sum() > 1 else ''} outside ({low:g}, {high:g}) "
            f"(e.g. {values[outside][0]:g}); a transformed column needs values strictly "
            "inside its support: widen the bounds, or use 'continuous' or 'binomial'"
        )


def _check_range(name: str, values: np.ndarray, low: float, high: float, what: str) -> None:
    outside = (values < low) | (values > high)
    if outside.any():
        raise ValueError(
            f"column {name!r} is {what} but holds values outside [{low:g}, {high:g}] "
            f"(e.g. {values[outside][0]:g})"
        )


def _categories(name: str, series: pd.Series, family: str) -> tuple:
    """Labels in code order: pandas categories, (False, True), (0, 1) or sorted values."""
    if family == "category":
        labels = series.dtype.categories.tolist()
    elif family == "bool":
        labels = [False, True]
    else:
        observed = series.dropna()
        if family == "float":
            _check_finite(name, observed.to_numpy(dtype=np.float64))
        labels = [_scalar(v) for v in pd.unique(observed)]
        if family == "int" and set(labels) <= {0, 1}:
            labels = [0, 1]
        try:
            labels = sorted(labels)
        except TypeError:
            # Mixed label types (e.g. 1 and "a") have no natural order; group by type.
            labels = sorted(labels, key=lambda v: (type(v).__name__, repr(v)))
    return tuple(_scalar(v) for v in labels)


def _numeric(name: str, series: pd.Series, missing: np.ndarray, kind: str) -> np.ndarray:
    """Float64 values of a continuous or count column (NaN where missing), validated."""
    family = _family(series.dtype)
    if family in ("bool", "int", "float"):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    elif family in ("category", "text"):
        coerced = pd.to_numeric(series.astype(object), errors="coerce")
        bad = coerced.isna().to_numpy() & ~missing
        if bad.any():
            example, row = series[bad].iloc[0], series.index[bad][0]
            raise ValueError(
                f"column {name!r} is {kind} but holds non-numeric values (e.g. {example!r} "
                f"in row {row!r}; {int(bad.sum())} in all)"
            )
        values = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        raise ValueError(
            f"column {name!r} has unsupported dtype {series.dtype} for a {kind} column"
        )
    _check_finite(name, values)
    if kind in ("count", "binomial"):
        observed = values[~missing]
        negative = observed[observed < 0]
        if negative.size:
            raise ValueError(f"{kind} column {name!r} holds negative values (e.g. {negative[0]:g})")
        fractional = observed[observed != np.floor(observed)]
        if fractional.size:
            raise ValueError(
                f"{kind} column {name!r} holds non-integer values (e.g. {fractional[0]:g})"
            )
    return values


def _check_finite(name: str, values: np.ndarray) -> None:
    infinite = np.isinf(values)
    if infinite.any():
        raise ValueError(
            f"column {name!r} holds infinite values ({int(infinite.sum())} entries); "
            "replace them or mark them missing"
        )


def _encode_column(column: Column, series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    missing = series.isna().to_numpy()
    if column.kind in _NUMERIC_KINDS:
        values = _numeric(column.name, series, missing, column.kind)
        if column.kind == "binomial":
            _check_range(
                column.name, values[~missing], 0, column.size, f"binomial(size={column.size})"
            )
        if column.transform is not None:
            values = _forward(column.name, values, column.transform, column.low, column.high)
        values = (values - column.loc) / column.scale
    else:
        codes = pd.Index(column.categories).get_indexer(series)
        unseen = (codes < 0) & ~missing
        if unseen.any():
            label = series[unseen].iloc[0]
            raise ValueError(
                f"unseen category {_scalar(label)!r} in {column.kind} column {column.name!r}; "
                f"known categories: {_join([repr(c) for c in column.categories])}"
            )
        values = codes.astype(np.float64)
    values[missing] = 0.0
    return values, ~missing


def _decode_values(column: Column, values: np.ndarray) -> np.ndarray:
    """Original-scale numbers (continuous, count) or integer codes (binary, categorical)."""
    if not np.isfinite(values).all():
        raise ValueError(f"cannot decode column {column.name!r}: it holds non-finite values")
    if column.kind == "continuous":
        return _backward(column, values * column.scale + column.loc)
    rounded = np.rint(values)
    if column.kind == "count":
        return np.clip(rounded, 0, None)
    if column.kind == "binomial":
        return np.clip(rounded, 0, column.size)
    return np.clip(rounded, 0, column.n_categories - 1).astype(np.int64)


def _to_series(column: Column, values: np.ndarray) -> pd.Series:
    if column.kind in _LABEL_KINDS:
        if column.dtype == "category":
            dtype = pd.CategoricalDtype(list(column.categories), ordered=column.ordered)
            return pd.Series(pd.Categorical.from_codes(values, dtype=dtype))
        # An object array keeps each label's own type (np.array would unify them).
        labels = np.empty(len(column.categories), dtype=object)
        labels[:] = column.categories
        return pd.Series(labels[values]).astype(column.dtype)
    family = _family(_pandas_dtype(column.dtype))
    keep = family == "float" or (column.kind in ("count", "binomial") and family == "int")
    fallback = "float64" if column.kind == "continuous" else "int64"
    return pd.Series(values).astype(column.dtype if keep else fallback)


def _pandas_dtype(name: str) -> Any:
    try:
        return pd.api.types.pandas_dtype(name)
    except TypeError:
        return None


# -- small helpers ----------------------------------------------------------


def _scalar(value: Any) -> Any:
    """numpy scalar -> Python scalar, so labels compare, print and serialise plainly."""
    return value.item() if isinstance(value, np.generic) else value


def _join(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _column_to_dict(column: Column) -> dict[str, Any]:
    categories = None
    if column.categories is not None:
        categories = [_scalar(c) for c in column.categories]
        bad = [c for c in categories if not isinstance(c, _JSON_SCALARS)]
        if bad:
            raise ValueError(
                f"column {column.name!r}: category {bad[0]!r} of type {type(bad[0]).__name__} "
                "cannot be saved; use str, int, float or bool labels"
            )
    return {
        "name": column.name,
        "kind": column.kind,
        "dtype": column.dtype,
        "categories": categories,
        "loc": float(column.loc),
        "scale": float(column.scale),
        "ordered": bool(column.ordered),
        # Only kinds that keep the support add keys: older files and schemas stay identical.
        **({"transform": column.transform} if column.transform is not None else {}),
        **({"low": column.low, "high": column.high} if column.low is not None else {}),
        **({"size": column.size} if column.size is not None else {}),
    }
