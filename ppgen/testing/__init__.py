"""Closed-form references shared by the tests and the benchmarks."""

from ppgen.testing.conjugate import NormalMean

__all__ = ["NormalMean"]
