"""ppgen.GAN and the adversarial engine (issue 16, part 1).

Fast: a tiny GAN on a penguins-sized table for a few steps (schema, support, seeds, save/load,
the log_prob error, the NaN guard, the stopping rule keeping the best generator) and the noise
model's ``decode_log_likelihood`` against a hand computation. Slow: the ring of 8 Gaussians
(every mode covered) and penguins against a fully factorized baseline (GBM detection).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import ppgen
from ppgen.infer.optim import NonFiniteLossError
from ppgen.models.gan import GAN

torch.set_num_threads(1)

TINY = {"max_steps": 12, "eval_every": 4, "patience": 2, "n_eval_samples": 50}
RING_ON_MODE = 0.8  # share of draws within 3 sd of some mode
FIXED = {**TINY, "validation": 0}  # no stopping rule: every step runs


def _table() -> pd.DataFrame:
    """Penguins (complete rows) with a count column; 100 rows."""
    frame = ppgen.datasets.load("penguins").dropna().iloc[::3].reset_index(drop=True)
    rng = np.random.default_rng(0)
    frame["clutch"] = rng.poisson(1.5, len(frame)).astype("int64")
    return frame


KINDS = {"body_mass_g": "positive", "bill_depth_mm": "bounded:10:25", "clutch": "count"}


def _tiny() -> GAN:
    return GAN(4, hidden=(16,), critic_hidden=(16,), pac=2, max_modes=2)


@pytest.fixture(scope="module")
def fitted():
    return ppgen.fit(_tiny(), _table(), kinds=KINDS, seed=0, progress=False, **FIXED)


def test_samples_follow_the_schema_and_keep_the_support(fitted):
    table = _table()
    sample = fitted.sample(300, seed=1)
    assert list(sample.columns) == list(table.columns)
    assert (sample.dtypes == table.dtypes).all()
    for name in ("species", "island", "sex"):
        assert set(sample[name].unique()) <= set(table[name].cat.categories)
    assert (sample["body_mass_g"] > 0).all()
    assert sample["bill_depth_mm"].between(10, 25, inclusive="neither").all()
    assert (sample["clutch"] >= 0).all() and sample["clutch"].dtype == np.int64
    # The encoded draws are counts already (not rounded only by the schema).
    with ppgen._utils.seeded(1):
        x = fitted.model.sample(300, {})
    counts = x[:, fitted.schema.names.index("clutch")]
    assert torch.equal(counts, counts.round()) and bool((counts >= 0).all())
    assert fitted.kind == "networks" and fitted.method == "adversarial"
    assert fitted.info["n_steps"] == 12 and fitted.info["n_incomplete"] == 0


def test_seeds_reproduce(fitted):
    pd.testing.assert_frame_equal(fitted.sample(20, seed=3), fitted.sample(20, seed=3))
    assert not fitted.sample(20, seed=3).equals(fitted.sample(20, seed=4))
    again = ppgen.fit(_tiny(), _table(), kinds=KINDS, seed=0, progress=False, **FIXED)
    pd.testing.assert_frame_equal(again.sample(20, seed=3), fitted.sample(20, seed=3))


def test_save_load_round_trip(fitted, tmp_path):
    path = tmp_path / "gan.ppgen"
    fitted.save(str(path))
    loaded = ppgen.load(str(path))
    assert loaded.model.config() == fitted.model.config()
    pd.testing.assert_frame_equal(loaded.sample(50, seed=2), fitted.sample(50, seed=2))
    enc = fitted.encode(_table().iloc[:5])
    z = torch.randn(3, 5, 4, dtype=enc.x.dtype)
    with torch.no_grad():
        before = fitted.model.decode_log_likelihood({}, z, enc.x, enc.mask, 0.2)
        after = loaded.model.decode_log_likelihood({}, z, enc.x, enc.mask, 0.2)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_log_prob_names_the_estimators(fitted):
    with pytest.raises(NotImplementedError, match="ppgen.evaluate.decoder_ais"):
        fitted.log_prob(_table())
    with pytest.raises(NotImplementedError, match="no likelihood"):
        fitted.score(_table())


def test_rows_with_missing_entries_are_left_out():
    table = _table()
    table.loc[:9, "bill_length_mm"] = np.nan
    fit = ppgen.fit(_tiny(), table, kinds=KINDS, seed=0, progress=False, **FIXED)
    assert fit.info["n_incomplete"] == 10


def test_nan_guard_keeps_the_last_good_generator(monkeypatch):
    calls = {"n": 0}
    original = GAN.generator_loss

    def poisoned(self, critic, fake):
        calls["n"] += 1
        loss = original(self, critic, fake)
        return loss * math.nan if calls["n"] == 4 else loss

    monkeypatch.setattr(GAN, "generator_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="generator loss became non-finite") as info:
        ppgen.fit(_tiny(), _table(), kinds=KINDS, seed=0, progress=False, **FIXED)
    fit = info.value.fit
    assert fit is not None and len(fit.losses) == 3
    assert all(bool(torch.isfinite(p).all()) for p in fit.model.parameters())
    assert len(fit.sample(10, seed=0)) == 10


def test_stopping_rule_keeps_the_best_generator():
    """A metric that is best at the 2nd evaluation: training stops ``patience`` evaluations
    later and the kept generator draws the validation rows of that evaluation."""
    seen = []

    def metric(real, fake):
        seen.append(fake.clone())
        return [3.0, 1.0, 2.0, 2.0, 2.0, 0.0][len(seen) - 1]

    options = {**TINY, "max_steps": 40, "metric": metric}
    fit = ppgen.fit(_tiny(), _table(), kinds=KINDS, seed=0, progress=False, **options)
    assert fit.info["best_step"] == 8 and fit.info["stopped_early"] and fit.converged
    assert fit.info["n_steps"] == 16 and len(seen) == 4
    # The engine trains in float32 and returns the model in the data's float64: the kept
    # weights are float32 values, so back in float32 the draws are the evaluation's, bit for bit.
    model = copy.deepcopy(fit.model).to(seen[1].dtype)
    with torch.random.fork_rng():
        torch.manual_seed(1)  # the engine's validation noise: seed + 1
        with torch.no_grad():
            again = model.sample(TINY["n_eval_samples"], {})
    assert seen[1].dtype == torch.float32 and fit.model.mode_loc.dtype == torch.float64
    torch.testing.assert_close(again, seen[1], rtol=0, atol=0)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="critic must be one of"):
        GAN(critic="hinge")
    with pytest.raises(ValueError, match="ema must be in"):
        ppgen.fit(_tiny(), _table(), ema=1.5)
    with pytest.raises(ValueError, match="unknown options for method='adversarial'"):
        ppgen.fit(_tiny(), _table(), max_epochs=3)
    with pytest.raises(ValueError, match="GAN is fitted by method='adversarial'"):
        ppgen.fit(_tiny(), _table(), method="svi")


# -- the noise model, by hand ------------------------------------------------------------------
def _built(conditional: bool) -> tuple[GAN, ppgen.Schema]:
    frame = pd.DataFrame(
        {
            "a": [0.1, -1.2, 2.0, 0.3],
            "n": [0, 3, 1, 2],
            "g": pd.Categorical(["u", "v", "w", "u"]),
            "b": pd.Categorical(["p", "q", "q", "q"]),
        }
    )
    schema = ppgen.Schema.infer(frame, kinds={"n": "count"})
    torch.manual_seed(0)
    gan = GAN(3, hidden=(5,), max_modes=3, conditional=conditional).build(schema).double()
    gan.mode_loc[0, :2] = torch.tensor([-1.0, 1.0])
    gan.mode_scale[0, :2] = torch.tensor([0.5, 0.3], dtype=torch.float64)
    gan.mode_on[0] = torch.tensor([True, True, False])
    gan.mode_loc[1, 0], gan.mode_scale[1, 0] = 0.7, 0.2
    gan.mode_on[1] = torch.tensor([True, False, False])
    gan.level_freq[0] = torch.tensor([2.0, 1.0, 1.0])
    gan.level_freq[1] = torch.tensor([1.0, 3.0, 0.0])
    return gan, schema


def _by_hand(raw: np.ndarray, x: np.ndarray, seen: np.ndarray, sigma: float) -> float:
    """log p(x_obs | z) from the raw generator outputs, in the documented layout:
    [alpha_a, alpha_n | modes_a (3), modes_n (3) | levels_g (3), levels_b (3, 2 used)]."""

    def softmax(v):
        e = np.exp(v - v.max())
        return e / e.sum()

    total = 0.0
    if seen[0]:  # continuous a: a mixture of the two modes' Normals
        pi = softmax(raw[2:4])
        values = np.array([-1.0, 1.0]) + 4 * np.array([0.5, 0.3]) * np.tanh(raw[0])
        total += math.log(np.sum(pi * stats.norm.pdf(x[0], values, sigma)))
    if seen[1]:  # count n: one mode on the log1p scale, discretized to the count
        v = 0.7 + 4 * 0.2 * math.tanh(raw[1])
        hi = stats.norm.cdf((math.log1p(x[1] + 0.5) - v) / sigma)
        lo = stats.norm.cdf((math.log1p(x[1] - 0.5) - v) / sigma) if x[1] > 0 else 0.0
        total += math.log(max(hi - lo, 1e-6))
    for level, logits, used, j in ((x[2], raw[8:11], 3, 2), (x[3], raw[11:14], 2, 3)):
        if not seen[j]:
            continue
        probs = np.maximum(softmax(logits[:used]), 1e-6)
        total += math.log(probs[int(level)] / probs.sum())
    return total


@pytest.mark.parametrize("conditional", [False, True])
def test_decode_log_likelihood_by_hand(conditional):
    gan, schema = _built(conditional)
    enc = schema.encode(pd.DataFrame(
        {"a": [0.1, -1.2, 2.0], "n": [0, 3, 1], "g": pd.Categorical(["u", "v", "w"]),
         "b": pd.Categorical(["p", "q", "q"])}
    ))  # fmt: skip
    mask = enc.mask.clone()
    mask[1, 0] = False  # a missing entry contributes nothing
    z = torch.randn(2, 3, 3, dtype=torch.float64)
    sigma = 0.4
    with torch.no_grad():
        got = gan.decode_log_likelihood({}, z, enc.x, mask, sigma).numpy()
    assert got.shape == (2, 3)
    x, seen = enc.x.numpy(), mask.numpy()
    # The conditions: a label uniformly, then its level by frequency; condition vector slots
    # label * 3 + level (g: u, v, w at 2:1:1 -> slots 0-2; b: p, q at 1:3 -> slots 3-4).
    conditions = [(None, 0.0)]
    if conditional:
        probs = [0.5 * 0.5, 0.5 * 0.25, 0.5 * 0.25, 0.5 * 0.25, 0.5 * 0.75]
        conditions = [(slot, math.log(p)) for slot, p in enumerate(probs)]
    for s in range(2):
        for i in range(3):
            terms = []
            for index, log_prior in conditions:
                h = z[s, i]
                if index is not None:
                    cond = torch.zeros(6, dtype=torch.float64)
                    cond[index] = 1.0
                    h = torch.cat([h, cond])
                with torch.no_grad():
                    raw = gan.generator(h).numpy()
                terms.append(log_prior + _by_hand(raw, x[i], seen[i], sigma))
            expected = np.logaddexp.reduce(terms)
            np.testing.assert_allclose(got[s, i], expected, rtol=1e-10, atol=1e-10)


# -- slow: mode coverage and sample quality ------------------------------------------------------
def _ring(n: int, sd: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A 2-D mixture of 8 equal Gaussians (sd ``sd``) on a circle of radius 2."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(8) / 8
    centers = np.stack([2 * np.cos(angles), 2 * np.sin(angles)], 1)
    k = rng.integers(8, size=n)
    rows = centers[k] + sd * rng.normal(size=(n, 2))
    return pd.DataFrame(rows, columns=["x", "y"]), centers


@pytest.mark.slow
def test_ring_of_eight_gaussians_every_mode_is_covered():
    sd = 0.05
    data, centers = _ring(2000, sd, seed=0)
    fit = ppgen.fit(GAN(), data, seed=0, progress=False, dtype=torch.float32)
    drawn = fit.sample(2000, seed=1).to_numpy()
    distance = np.linalg.norm(drawn[:, None, :] - centers[None], axis=-1)  # (n, 8)
    per_mode = (distance < 3 * sd).mean(0)
    assert per_mode.min() >= 0.01, per_mode  # every mode recalled
    assert (distance.min(1) < 3 * sd).mean() >= RING_ON_MODE, per_mode


@pytest.mark.slow
def test_penguins_valid_categories_and_detection_beats_the_factorized_baseline():
    from sklearn.model_selection import train_test_split

    from ppgen.comparison import BASELINES
    from ppgen.evaluate import c2st

    data = ppgen.datasets.load("penguins")
    train, test = train_test_split(data, test_size=0.25, random_state=0)
    fit = ppgen.fit(GAN(), train, seed=0, progress=False, dtype=torch.float32)
    drawn = fit.sample(len(test), seed=1)
    for name in ("species", "island", "sex", "year"):
        assert set(drawn[name].dropna().unique()) <= set(data[name].dropna().unique()), name
    real = test.dropna()
    baseline = BASELINES["independent"](train, 0).sample(len(real), 1)
    gan_score = c2st(real, drawn.iloc[: len(real)], seed=0).detection
    base_score = c2st(real, baseline, seed=0).detection
    assert gan_score > base_score, (gan_score, base_score)
