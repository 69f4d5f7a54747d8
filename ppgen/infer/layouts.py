"""Data layouts: how :func:`ppgen.fit` encodes data for a model, builds the model on it, tidies
an engine's result and wraps it in a :class:`~ppgen.Fit` -- the one place fits are built.

A model names its layout (:attr:`~ppgen.models.base.GenerativeModel.layout`); layouts are
registered by name as ``"module:Class"`` strings, imported when first used:

* ``"rows"``: a table, one observation per row (:class:`Rows`, results are :class:`Fit`);
* ``"sequences"``: a set of sequences, padded (:class:`Sequences`, results are
  :class:`~ppgen.infer.sequences.SequenceFit`).
"""

from __future__ import annotations

import copy
import importlib
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ppgen.data.schema import Schema
from ppgen.data.sequences import (
    EncodedSequences,
    encode_sequences,
    infer_sequence_schema,
    split_sequences,
)
from ppgen.infer.engine import Engine, EngineResult, Problem
from ppgen.infer.result import Fit
from ppgen.infer.sequences import SequenceFit
from ppgen.models.base import GenerativeModel, Params

__all__ = ["Layout", "Rows", "Sequences", "get_layout", "register_layout"]


class Layout:
    """How data of one shape are encoded, fitted on and returned."""

    #: Keyword arguments of :func:`ppgen.fit` the layout takes (not the engine's).
    options: ClassVar[tuple[str, ...]] = ()

    def encode(
        self,
        model: GenerativeModel,
        data: Any,
        *,
        schema: Schema | None,
        kinds: dict[str, str] | None,
        standardize: bool,
        device: str | torch.device | None,
        dtype: torch.dtype | None,
        **options: Any,
    ) -> tuple[Schema, Any]:
        """The schema (inferred unless given) and the encoded data (``.x``, ``.mask``)."""
        raise NotImplementedError

    def build(self, model: GenerativeModel, schema: Schema, enc: Any) -> GenerativeModel:
        """A private copy of ``model`` built on ``schema``, on the data's device and dtype. Runs
        under the fit's seed (deep models draw their initial weights here)."""
        return copy.deepcopy(model).build(schema).to(device=enc.x.device, dtype=enc.x.dtype)

    def problem(
        self,
        model: GenerativeModel,
        schema: Schema,
        enc: Any,
        *,
        seed: int,
        progress: bool | None,
    ) -> Problem:
        """What the engine sees."""
        model.check_data(enc.x, enc.mask)
        jacobian = schema.log_abs_det_jacobian(enc.mask, dtype=enc.x.dtype, x=enc.x)
        n = int(enc.x.shape[0])
        return Problem(model, enc.x, enc.mask, n, {}, seed, progress, log_jacobian=jacobian)

    def postprocess(
        self, model: GenerativeModel, engine: Engine, result: EngineResult
    ) -> EngineResult:
        """Detach the estimate; put labels in the model's canonical order (label switching) in
        the estimate and in every draw, and re-derive the engine's estimate from the relabelled
        draws."""
        params = {k: v.detach() for k, v in result.params.items()}
        samples = result.samples
        perm = model.ordering(params) if type(model).implements("ordering") and params else None
        if perm is not None:
            params = model.relabel(params, perm)
            if samples is not None:
                samples = _relabel_draws(model, samples)
                params = engine.estimate(samples) or params
        return EngineResult(params, result.losses, samples, result.divergent, dict(result.info))

    def result(
        self,
        model: GenerativeModel,
        schema: Schema,
        engine: Engine,
        result: EngineResult,
        *,
        seed: int,
        enc: Any,
    ) -> Fit:
        """The :class:`Fit`; the model's :meth:`~GenerativeModel.fitted` hook sees the
        estimate first."""
        model.fitted(dict(result.params))
        return self.fit_class(
            model=model,
            schema=schema,
            method=engine.name,
            params=result.params,
            losses=np.asarray(result.losses, dtype=float),
            seed=seed,
            samples=result.samples,
            divergent=result.divergent,
            info=result.info,
            train=enc,
            **self.fit_fields(enc),
        )

    #: The result class.
    fit_class: ClassVar[type[Fit]] = Fit

    def fit_fields(self, enc: Any) -> dict[str, Any]:
        """Further fields of :attr:`fit_class`."""
        return {}


def _relabel_draws(model: GenerativeModel, samples: Params) -> Params:
    shape = next(iter(samples.values())).shape[:2]
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in samples.items()}
    n = next(iter(flat.values())).shape[0]
    draws = []
    for i in range(n):
        draw = {k: v[i] for k, v in flat.items()}
        draws.append(model.relabel(draw, model.ordering(draw)))
    return {k: torch.stack([d[k] for d in draws]).reshape(shape + flat[k].shape[1:]) for k in flat}


class Rows(Layout):
    """A table: DataFrame, ndarray or Tensor, one observation per row."""

    def encode(self, model, data, *, schema, kinds, standardize, device, dtype, **options):
        # The model's kinds take part in reading columns (rule 2 of ppgen.data: a model of
        # continuous columns only reads numeric columns as continuous).
        schema = schema or Schema.infer(
            data, kinds=kinds, standardize=standardize, supported=model.supported_kinds
        )
        return schema, schema.encode(data, device=device, dtype=dtype)


def _column_names(split) -> tuple[str, ...]:
    first = split.tables[0]
    if isinstance(first, pd.DataFrame):
        return tuple(first.columns)
    return tuple(f"x{j}" for j in range(first.shape[1] if first.ndim == 2 else 0))


class Sequences(Layout):
    """Sequences (see :mod:`ppgen.data.sequences`), padded to ``x`` (S, T, p) with ``mask``;
    options ``id_column`` and ``time_column`` for one long DataFrame."""

    options: ClassVar[tuple[str, ...]] = ("id_column", "time_column")
    fit_class: ClassVar[type[Fit]] = SequenceFit

    def encode(
        self,
        model,
        data,
        *,
        schema,
        kinds,
        standardize,
        device,
        dtype,
        id_column: str | None = None,
        time_column: str | None = None,
    ) -> tuple[Schema, EncodedSequences]:
        split = split_sequences(data, id_column=id_column, time_column=time_column)
        if schema is None:
            forced = model.forced_kinds(_column_names(split))
            forced.update(kinds or {})
            schema = infer_sequence_schema(split, kinds=forced or None, standardize=standardize)
        return schema, encode_sequences(schema, split, device=device, dtype=dtype)

    def problem(self, model, schema, enc, *, seed, progress):
        # Tolerances are per observed time step.
        data = {"lengths": enc.lengths}
        model.check_data(enc.x, enc.mask)
        return Problem(model, enc.x, enc.mask, int(enc.lengths.sum()), data, seed, progress)

    def fit_fields(self, enc: EncodedSequences) -> dict[str, Any]:
        return {"sequence_format": enc.fmt}


# -- registry -------------------------------------------------------------------------------------
_LAYOUTS: dict[str, str] = {
    "rows": "ppgen.infer.layouts:Rows",
    "sequences": "ppgen.infer.layouts:Sequences",
}
_LOADED: dict[str, Layout] = {}


def register_layout(name: str, target: str) -> None:
    """Register the layout class at ``target`` (``"module:Class"``) as ``name``; imported when
    a model whose ``layout`` is ``name`` is first fitted."""
    if ":" not in target:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    _LAYOUTS[name] = target
    _LOADED.pop(name, None)


def get_layout(name: str) -> Layout:
    """The layout registered as ``name``."""
    if name not in _LAYOUTS:
        raise ValueError(f"layout must be one of {tuple(_LAYOUTS)}, got {name!r}")
    if name not in _LOADED:
        module, _, attr = _LAYOUTS[name].partition(":")
        _LOADED[name] = getattr(importlib.import_module(module), attr)()
    return _LOADED[name]
