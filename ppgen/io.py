"""Save and load fits without pickle: tensors through ``torch.load(weights_only=True)``, the
rest as JSON. The implementation is :mod:`ppgen.infer.serialize`."""

from __future__ import annotations

from ppgen.infer.serialize import FORMAT, VERSION, load, save

__all__ = ["FORMAT", "VERSION", "load", "save"]
