"""Tabular data layer: column schemas and bundled data sets."""

from __future__ import annotations

from ppgen.data.datasets import load
from ppgen.data.schema import KINDS, Column, Encoded, Schema

__all__ = ["KINDS", "Column", "Encoded", "Schema", "load"]
