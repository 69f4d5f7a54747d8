"""Bundled data sets: ``ppgen.datasets.load("wine")``."""

from ppgen.data.datasets import load, names  # noqa: F401

__all__ = ["load", "names"]
