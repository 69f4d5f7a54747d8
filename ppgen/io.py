"""Save and load fits without pickle: tensors through ``torch.load(weights_only=True)``, the
rest as JSON."""

from __future__ import annotations

import json
import zipfile
from typing import Any

import numpy as np
import torch

from ppgen.data.schema import Schema
from ppgen.infer.result import Fit
from ppgen.models import MODELS

__all__ = ["load", "save"]

FORMAT = "ppgen-fit"
VERSION = 1


def save(fit: Fit, path: str) -> None:
    """Write ``fit`` to ``path`` (conventionally ``*.ppgen``)."""
    config = {
        "format": FORMAT,
        "version": VERSION,
        "model": type(fit.model).__name__,
        "model_config": fit.model.config(),
        "schema": fit.schema.to_dict(),
        "method": fit.method,
        "seed": fit.seed,
        "info": {k: v for k, v in fit.info.items() if isinstance(v, (int, float, str, bool))},
        "dtype": str(fit.dtype).removeprefix("torch."),
    }
    if getattr(fit, "sequence_format", None) is not None:
        config["sequences"] = fit.sequence_format.to_dict()
    tensors: dict[str, Any] = {
        "params": {k: v.detach().cpu() for k, v in fit.params.items()},
        "module": {k: v.detach().cpu() for k, v in fit.model.state_dict().items()},
        "losses": torch.tensor(np.array(fit.losses)),
    }
    if fit.samples is not None:
        tensors["samples"] = {k: v.detach().cpu() for k, v in fit.samples.items()}
    if fit.divergent is not None:
        tensors["divergent"] = torch.as_tensor(fit.divergent)
    torch.save({"config": json.dumps(config), "tensors": tensors}, path)


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
    dtype = getattr(torch, config["dtype"])
    # Cast before loading so that float64 weights are not rounded through float32.
    model = model.to(dtype=dtype)
    model.load_state_dict(tensors["module"])
    cls, extra = Fit, {}
    if "sequences" in config:
        from ppgen.data.sequences import SequenceFormat
        from ppgen.infer.sequences import SequenceFit

        cls, extra = SequenceFit, {"sequence_format": SequenceFormat(**config["sequences"])}
    return cls(
        model=model,
        schema=schema,
        method=config["method"],
        params=tensors["params"],
        losses=tensors["losses"].numpy().astype(float),
        seed=config["seed"],
        samples=tensors.get("samples"),
        divergent=None if "divergent" not in tensors else tensors["divergent"].numpy().astype(bool),
        info=config["info"],
        **extra,
    )
