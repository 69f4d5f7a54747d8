"""The fused EM kernel of GaussianMixture (ppgen/models/_gmm_kernel.py) against the general
path it replaces on complete continuous CPU tables: the same iterate and log-likelihood for
every covariance structure, the same first M-step from a partition, and the general path where
the kernel does not apply (missing entries)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.models.covariances import STRUCTURES

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::ppgen.ConvergenceWarning")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    tilt = [[1, 0.4, 0], [0, 1, 0.3], [0, 0, 1]]
    parts = [rng.normal([0, 0, 0], [1.0, 0.3, 2.0], (60, 3)),
             rng.normal([4, 1, -3], [0.5, 1.0, 0.7], (40, 3)) @ tilt,
             rng.normal([-3, 5, 2], 0.8, (30, 3))]  # fmt: skip
    return pd.DataFrame(np.vstack(parts) * [1.0, 10.0, 0.1], columns=["a", "b", "c"])


@contextmanager
def _general_path(model, x, mask):
    """The model's general path for these rows (em_step, em_statistics and component_log_prob
    would take the kernel on them), then its own choice again."""
    model._fused_rows = (x, mask, None)
    try:
        yield
    finally:
        model._fused_rows = None


def _general(model, x, mask, params):
    """The general path's EM iteration (what em_step did before the kernel)."""
    with _general_path(model, x, mask):
        return model.em_update(model.em_statistics(x, mask, params), params)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_kernel_iterate_equals_the_general_path(table, structure):
    fit = ppgen.fit(ppgen.GaussianMixture(3, structure, n_init=1), table, max_steps=3)
    model, enc = fit.model, fit.train
    params = dict(fit.params)
    for _ in range(3):  # a few iterations from the same point, each compared
        fused, value = model.em_step(enc.x, enc.mask, params)
        assert model._fused_rows[2] is not None  # the kernel ran
        general, reference = _general(model, enc.x, enc.mask, params)
        assert float(value) == pytest.approx(float(reference), rel=1e-13, abs=1e-10)
        for name in ("weights", "locs", "precision"):
            torch.testing.assert_close(fused[name], general[name], rtol=1e-10, atol=1e-10)
        params = fused


@pytest.mark.parametrize("structure", ["VVV", "VVI", "EEE", "VVE", "EII"])
def test_kernel_first_m_step_equals_the_general_path(table, structure):
    fit = ppgen.fit(ppgen.GaussianMixture(3, structure, n_init=1), table, max_steps=1)
    model, x, mask = fit.model, fit.train.x, None
    labels = torch.as_tensor(np.repeat([0, 1, 2], [60, 40, 30]))
    generator = torch.Generator().manual_seed(0)
    fused = model._start(x, mask, labels, generator)
    model._fused_rows = (x, mask, None)  # force the general path
    general = model._start(x, mask, labels, generator)
    for name in ("weights", "locs", "precision"):
        torch.testing.assert_close(fused[name], general[name], rtol=1e-10, atol=1e-12)


def test_missing_entries_take_the_general_path(table):
    holed = table.copy()
    holed.iloc[3, 1] = np.nan
    fit = ppgen.fit(ppgen.GaussianMixture(2, "VVV", n_init=1), holed, max_steps=2)
    model, enc = fit.model, fit.train
    model.em_step(enc.x, enc.mask, dict(fit.params))
    assert model._fused_rows[2] is None
    model._fused_rows = None
    model.em_statistics(enc.x, enc.mask, dict(fit.params))
    assert model._fused_rows[2] is None


@pytest.mark.parametrize("structure", ["VVV", "VVI", "VVE"])
def test_kernel_component_log_prob_equals_the_general_path(table, structure):
    fit = ppgen.fit(ppgen.GaussianMixture(3, structure, n_init=1), table, max_steps=5)
    model, x = fit.model, fit.train.x
    fused = model.component_log_prob(x, None, dict(fit.params))
    general = model._components(x, None, dict(fit.params))[0]
    torch.testing.assert_close(fused, general, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("structure", ["VVV", "VVI", "EEV", "VEV", "VII", "EEI"])
def test_kernel_statistics_equal_the_general_path(table, structure):
    # Distributed and streamed EM sum em_statistics over ranks and chunks, each taking the
    # kernel or the general path on its own rows: the two must give the same dict.
    fit = ppgen.fit(ppgen.GaussianMixture(3, structure, n_init=1), table, max_steps=3)
    model, x, mask = fit.model, fit.train.x, fit.train.mask
    params = dict(fit.params)
    fused = model.em_statistics(x, mask, params)
    assert model._fused_rows[2] is not None  # the kernel ran
    with _general_path(model, x, mask):
        general = model.em_statistics(x, mask, params)
    assert list(fused) == list(general)
    for name, value in general.items():
        assert fused[name].shape == value.shape and fused[name].dtype == value.dtype, name
        torch.testing.assert_close(fused[name], value, rtol=1e-12, atol=1e-12, msg=name)
    # Sums over rows: two shares' statistics add up to the whole table's.
    halves = [
        model.em_statistics(x[rows], None, params) for rows in (slice(0, 70), slice(70, None))
    ]
    for name, value in fused.items():
        torch.testing.assert_close(halves[0][name] + halves[1][name], value, rtol=1e-12,
                                   atol=1e-12, msg=name)  # fmt: skip
    # The torch M-step on them is the kernel's iteration.
    stepped, log_lik = model.em_update(fused, params)
    expected, reference = model.em_step(x, mask, params)
    assert float(log_lik) == pytest.approx(float(reference), rel=1e-13)
    for name in ("weights", "locs", "precision"):
        torch.testing.assert_close(stepped[name], expected[name], rtol=1e-10, atol=1e-12)
