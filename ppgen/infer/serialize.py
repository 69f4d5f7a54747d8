"""Save and load fits without pickle: tensors through ``torch.load(weights_only=True)``, the
rest as JSON (format :data:`~ppgen.infer.result.FORMAT`, version 1). :mod:`ppgen.io` is the
public face of this module."""

from __future__ import annotations

import json
import zipfile

import torch

from ppgen.data.schema import Schema
from ppgen.infer.result import FORMAT, VERSION, Fit
from ppgen.infer.sequences import SequenceFit
from ppgen.models import MODELS

__all__ = ["FORMAT", "VERSION", "load", "save"]


def save(fit: Fit, path: str) -> None:
    """Write ``fit`` to ``path`` (conventionally ``*.ppgen``)."""
    fit.save(path)


def load(path: str, *, device: str | torch.device | None = None) -> Fit:
    """Read a fit written by :func:`save`. Never unpickles: only tensors and JSON are read."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a ppgen fit")
    blob = torch.load(path, map_location=device or "cpu", weights_only=True)
    try:
        config = json.loads(blob["config"])
        tensors = blob["tensors"]
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path!r} is not a ppgen fit") from exc
    if config.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a ppgen fit")
    if config["model"] not in MODELS:
        raise ValueError(f"{path!r} holds an unknown model {config['model']!r}")
    schema = Schema.from_dict(config["schema"])
    model = MODELS[config["model"]](**config["model_config"]).build(schema)
    # Cast before loading so that float64 weights are not rounded through float32.
    model = model.to(dtype=getattr(torch, config["dtype"]))
    model.load_state_dict(tensors["module"])
    cls = SequenceFit if "sequences" in config else Fit
    return cls.from_state(config, tensors, model=model, schema=schema)
