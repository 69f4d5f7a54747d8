"""The minibatch engine's ``ema`` option: an exponential moving average of the weights, used for
validation, early stopping and the kept fit (issue 15, diffusion)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import ppgen
from ppgen.infer.engines._ema import WeightAverage
from ppgen.infer.engines.minibatch import MinibatchOptions

torch.set_num_threads(1)


def test_average_of_constant_weights_is_those_weights_and_decay_zero_is_raw():
    torch.manual_seed(0)
    w = [torch.randn(5, 3), torch.randn(3)]
    avg = WeightAverage(w, 0.9)
    for _ in range(30):
        avg.update()
    assert all(torch.equal(a, p) for a, p in zip(avg.average, w, strict=True))
    raw = WeightAverage(w, 0.0)
    for _ in range(5):
        with torch.no_grad():
            for p in w:
                p.add_(torch.randn_like(p))
        raw.update()
        assert all(torch.equal(a, p) for a, p in zip(raw.average, w, strict=True))


def test_average_follows_its_recurrence_with_warm_up():
    torch.manual_seed(1)
    w = torch.zeros(4, dtype=torch.float64)
    avg = WeightAverage([w], 0.95)
    expected = w.clone()
    for k in range(200):
        with torch.no_grad():
            w.copy_(torch.randn(4, dtype=torch.float64))
        avg.update()
        d = min(0.95, (1 + k) / (10 + k))
        expected = d * expected + (1 - d) * w
    torch.testing.assert_close(avg.average[0], expected, rtol=1e-12, atol=1e-12)
    before = [w.clone(), avg.average[0].clone()]
    avg.swap()
    assert torch.equal(w, before[1]) and torch.equal(avg.average[0], before[0])


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(120, 1))
    return pd.DataFrame(
        z @ rng.normal(size=(1, 3)) + 0.3 * rng.normal(size=(120, 3)), columns=["a", "b", "c"]
    )


def _fit(frame, **options):
    model = ppgen.Diffusion(5, hidden=(8,))
    return ppgen.fit(model, frame, max_epochs=6, patience=2, seed=0, progress=False, **options)


def test_ema_zero_trains_exactly_as_no_average(frame):
    plain, zero = _fit(frame), _fit(frame, ema=0.0)
    assert zero.info["ema"] == 0.0 and "ema" not in plain.info
    assert zero.info["validation_losses"] == plain.info["validation_losses"]
    other = zero.model.state_dict()
    for k, a in plain.model.state_dict().items():
        assert torch.equal(a, other[k]), k


def test_kept_weights_are_the_validated_average(frame):
    fit = _fit(frame, ema=0.9)
    plain = _fit(frame)
    assert fit.info["validation_losses"] != plain.info["validation_losses"]
    # The validation loss of the kept weights, recomputed, is the best epoch's: the average
    # was validated and kept (not the raw weights).
    from ppgen.infer.engines.minibatch import _Trainer

    enc = fit.encode(frame)
    order = torch.randperm(len(frame), generator=torch.Generator().manual_seed(0))
    rows = order[: fit.info["n_validation"]]
    loss = _Trainer(fit.model, "direct", 1).validation_loss(enc.x[rows], enc.mask[rows], 0)
    best = fit.info["validation_losses"][fit.info["best_epoch"] - 1]
    assert loss == pytest.approx(best, rel=1e-6)


def test_bad_ema_is_refused():
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match="ema"):
            MinibatchOptions(ema=bad)
