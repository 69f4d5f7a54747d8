"""The result of fitting a sequence model (HMM), :class:`SequenceFit`.

:func:`ppgen.fit` fits sequential models through the ``"sequences"`` layout
(:class:`ppgen.infer.layouts.Sequences`): the data are split into sequences, encoded and padded
to ``x`` (S, T, p) with ``mask`` (S, T, p); MAP, SVI and NUTS run on the model's Pyro program of
the padded tensors, and ``method="em"`` is Baum-Welch (the model's ``em_step``). ``"map"``
defaults to ``n_init=8`` restarts and ``"em"`` to 4 (``HMM.fit_defaults``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ppgen._utils import seeded
from ppgen.data.schema import Encoded
from ppgen.data.sequences import (
    EncodedSequences,
    SequenceFormat,
    decode_sequences,
    encode_sequences,
    per_row,
    split_sequences,
)
from ppgen.infer.result import Fit
from ppgen.models.base import Params

__all__ = ["Forecast", "SequenceFit"]


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


@dataclass(frozen=True)
class Forecast:
    """Predictive distribution of the next ``horizon`` steps of each sequence.

    Attributes
    ----------
    state_proba : ndarray, shape (S, horizon, K)
        p(state at step T_s + h | the sequence's observations).
    mean : DataFrame
        Predictive means of the continuous and count columns on the data's scale, one row per
        (sequence, step); ``step`` counts from 1 after each sequence's last step.
    samples : DataFrame
        ``n_samples`` simulated continuations: columns ``sequence``, ``draw``, ``step`` and the
        table's columns, decoded to their dtypes and labels.
    """

    state_proba: np.ndarray
    mean: pd.DataFrame
    samples: pd.DataFrame


@dataclass(frozen=True, eq=False, repr=False)
class SequenceFit(Fit):
    """A fitted sequence model (:class:`ppgen.HMM`): a :class:`Fit` whose rows are sequences.

    ``data`` arguments take sequences in the form the model was fitted on (see
    :mod:`ppgen.data.sequences`); ``None`` means the training data. Per-step results
    (:meth:`predict`, :meth:`predict_proba`) come back in the input's layout: one array per
    sequence (list or dict input), the single array (one table), or one array aligned with the
    rows of a long DataFrame.
    """

    sequence_format: SequenceFormat = field(default_factory=SequenceFormat)

    # -- persistence ----------------------------------------------------------------------------
    def _state_config(self) -> dict[str, Any]:
        return {**super()._state_config(), "sequences": self.sequence_format.to_dict()}

    @classmethod
    def from_state(cls, config, tensors, *, model, schema) -> SequenceFit:
        fit = super().from_state(config, tensors, model=model, schema=schema)
        fmt = SequenceFormat(**config["sequences"])
        return dataclasses.replace(fit, sequence_format=fmt)

    # -- data ---------------------------------------------------------------------------------
    def _posterior_predictive(self, enc: Any) -> None:
        # Replicate sequences would need each sequence's length; not offered yet.
        return None

    def _split(self, data: Any):
        fmt = self.sequence_format
        if isinstance(data, pd.DataFrame) and fmt.form == "long":
            return split_sequences(data, id_column=fmt.id_column, time_column=fmt.time_column)
        return split_sequences(data)

    def encode(self, data: Any) -> EncodedSequences:
        """Sequences encoded by the fit's schema (``None``: the training data)."""
        if data is None:
            if self.train is None:
                raise ValueError(
                    "pass the data: this fit was loaded from disk without its training data"
                )
            return self.train
        return encode_sequences(
            self.schema, self._split(data), device=self.device, dtype=self.dtype
        )

    def _jacobian(self, enc: EncodedSequences) -> torch.Tensor:
        jac = self.schema.log_abs_det_jacobian(enc.mask, dtype=enc.x.dtype, x=enc.x)  # (S, T)
        return jac.sum(-1)

    # -- likelihood -------------------------------------------------------------------------------
    def log_likelihood_draws(self, data: Any = None) -> np.ndarray:
        """Per-sequence log-likelihood under each draw, shape (chain, draw, S), data scale."""
        enc = self.encode(data)
        jac = self._jacobian(enc)
        with torch.no_grad():
            rows = [
                self.model.log_prob(enc.x, enc.mask, p, enc.lengths) + jac for p in self._draws()
            ]
        out = _numpy(torch.stack(rows))
        if self.samples is None:
            return out.reshape(1, 1, -1)
        chains, draws = next(iter(self.samples.values())).shape[:2]
        return out.reshape(chains, draws, -1)

    def log_prob(self, data: Any = None) -> np.ndarray:
        """Log-likelihood of each sequence on the data's original scale (nats), shape (S,).

        Forward algorithm, states summed out. Point fits plug in the estimate; SVI and NUTS fits
        give the posterior predictive density (log of the mean over draws). The standardization
        Jacobian is included, so totals compare with other libraries on the raw data.
        """
        ll = self.log_likelihood_draws(data)
        ll = ll.reshape(-1, ll.shape[-1])
        return torch.from_numpy(ll).logsumexp(0).numpy() - np.log(ll.shape[0])

    def score(self, data: Any = None) -> float:
        """Log-likelihood per observed time step (nats): total over sequences / total steps."""
        return float(self.log_prob(data).sum() / self.encode(data).n_steps)

    def bic(self, data: Any = None) -> float:
        """-2 log L + k log n, with n the number of time steps (lower is better)."""
        self._require_point("BIC")
        n = self.encode(data).n_steps
        return float(-2 * self.log_prob(data).sum() + self.n_free_parameters() * np.log(n))

    def aic(self, data: Any = None) -> float:
        """-2 log L + 2 k (lower is better)."""
        self._require_point("AIC")
        return float(-2 * self.log_prob(data).sum() + 2 * self.n_free_parameters())

    # -- states -----------------------------------------------------------------------------------
    def _per_step(self, name: str, data: Any) -> Any:
        enc = self.encode(data)
        with torch.no_grad():
            out = getattr(self.model, name)(enc.x, enc.mask, dict(self.params), enc.lengths)
        values = [_numpy(out[s, :n]) for s, n in enumerate(enc.lengths.tolist())]
        return per_row(values, enc.fmt, enc)

    def predict(self, data: Any = None) -> Any:
        """Most probable state path of each sequence (Viterbi), integer arrays."""
        return self._per_step("viterbi", data)

    def predict_proba(self, data: Any = None) -> Any:
        """Smoothed state probabilities p(z_t = k | whole sequence) (forward-backward), (T_s, K)."""
        return self._per_step("smooth", data)

    def transform(self, data: Any = None) -> Any:
        raise AttributeError("sequence models have no continuous latents; use predict_proba")

    # -- simulation -----------------------------------------------------------------------------
    def _pick_draws(self, n: int) -> tuple[list[Params], list[int]]:
        draws = self._draws()
        which = torch.randint(len(draws), (n,)).tolist() if len(draws) > 1 else [0] * n
        return draws, which

    def sample(self, n_sequences: int = 1, n_steps: int = 100, *, seed: int = 0) -> Any:
        """Simulate ``n_sequences`` sequences of ``n_steps`` steps, in the fitted data's form.

        Point fits sample from the plug-in model; SVI and NUTS fits from the posterior
        predictive (each sequence from a randomly chosen posterior draw).
        """
        for name, value in (("n_sequences", n_sequences), ("n_steps", n_steps)):
            if int(value) != value or int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        n, T = int(n_sequences), int(n_steps)
        with seeded(seed, self.device), torch.no_grad():
            draws, which = self._pick_draws(n)
            x = torch.empty((n, T, len(self.schema)), dtype=self.dtype, device=self.device)
            for d in sorted(set(which)):
                rows = [i for i, w in enumerate(which) if w == d]
                x[rows] = self.model.sample(len(rows), draws[d], T)
        fmt = self.sequence_format
        if fmt.form == "single":
            fmt = SequenceFormat("list")
        return decode_sequences(self.schema, x, [T] * n, fmt)

    def forecast(
        self, data: Any = None, horizon: int = 1, *, n_samples: int = 100, seed: int = 0
    ) -> Forecast:
        """Predictive distribution of the ``horizon`` steps after the end of each sequence.

        The state after the last step follows the filtered distribution propagated through the
        transition matrix; the observations are its mixture of emissions. State probabilities and
        means are exact under the point estimate; ``samples`` simulate the continuation
        (posterior predictive for SVI and NUTS fits).
        """
        if int(horizon) != horizon or int(horizon) < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        H = int(horizon)
        enc = self.encode(data)
        params = dict(self.params)
        model = self.model
        with torch.no_grad():
            probs = model.forecast_states(enc.x, enc.mask, params, enc.lengths, H)  # (S, H, K)
            means = probs @ model.emission.means(params)  # (S, H, p), encoded scale
        S, K = probs.shape[0], probs.shape[-1]
        rows = {"sequence": np.repeat(list(enc.ids), H), "step": np.tile(np.arange(1, H + 1), S)}
        for j, col in enumerate(self.schema.columns):
            if col.kind in ("continuous", "count"):
                rows[col.name] = _numpy(means[..., j]).reshape(-1) * col.scale + col.loc
        parts = []
        with seeded(seed, self.device), torch.no_grad():
            draws, which = self._pick_draws(int(n_samples))
            for d in sorted(set(which)):
                sims = [i for i, w in enumerate(which) if w == d]
                p = draws[d]
                filt = model.filter(enc.x, enc.mask, p, enc.lengths)[:, -1]  # (S, K)
                z = torch.distributions.Categorical(filt).sample((len(sims),))  # (n_d, S)
                states = []
                for _ in range(H):
                    z = torch.distributions.Categorical(p["transition"][z]).sample()
                    states.append(z)
                x = model.emission.sample(torch.stack(states, -1), p)  # (n_d, S, H, p)
                frame = self.schema.decode(x.reshape(-1, x.shape[-1]))
                if not isinstance(frame, pd.DataFrame):
                    frame = pd.DataFrame(
                        _numpy(torch.as_tensor(frame)), columns=list(self.schema.names)
                    )
                frame.insert(0, "step", np.tile(np.arange(1, H + 1), len(sims) * S))
                frame.insert(0, "draw", np.repeat(sims, S * H))
                frame.insert(0, "sequence", np.tile(np.repeat(list(enc.ids), H), len(sims)))
                parts.append(frame)
        samples = pd.concat(parts, ignore_index=True).sort_values(
            ["draw", "sequence", "step"], kind="stable", ignore_index=True
        )
        return Forecast(
            state_proba=_numpy(probs).reshape(S, H, K),
            mean=pd.DataFrame(rows),
            samples=samples,
        )

    def impute(self, data: Any = None, n_imputations: int = 5, *, seed: int = 0) -> list[Any]:
        """Multiple imputation of the gaps: ``n_imputations`` completed copies of ``data``.

        Each copy draws a state path from its posterior given the whole sequence (forward
        filtering, backward sampling), then the missing entries given the states (and, for a
        full-covariance Gaussian, the observed entries of the same step). Observed entries are
        copied unchanged. As in :meth:`Fit.impute`, SVI and NUTS fits spread the copies over
        posterior draws (proper imputation); MAP and EM fits plug in the estimate.
        """
        m = int(n_imputations)
        if m < 1 or m != n_imputations:
            raise ValueError(f"n_imputations must be a positive integer, got {n_imputations!r}")
        if data is None:
            raise ValueError("pass the data to impute")
        split = self._split(data)
        enc = encode_sequences(self.schema, split, device=self.device, dtype=self.dtype)
        draws = self._draws()
        picks = np.linspace(0, len(draws) - 1, m).round().astype(int) if len(draws) > 1 else [0] * m
        out = []
        with seeded(seed, self.device), torch.no_grad():
            for j in picks:
                x = self.model.impute(enc.x, enc.mask, draws[int(j)], enc.lengths)
                out.append(self._completed(data, split, enc, x))
        return out

    def _completed(self, data, split, enc: EncodedSequences, x: torch.Tensor) -> Any:
        tables = []
        for s, n in enumerate(enc.lengths.tolist()):
            decoded = self.schema.decode(x[s, :n], index=enc.index[s])
            one = Encoded(x=x[s, :n], mask=enc.mask[s, :n], index=enc.index[s])
            tables.append(self._restore_observed(split.tables[s], decoded, one))
        form = enc.fmt.form
        if form == "single":
            return tables[0]
        if form == "dict":
            return dict(zip(enc.ids, tables, strict=True))
        if form == "list":
            return tables
        result = data.copy()
        order = np.argsort(np.concatenate(enc.rows), kind="stable")
        for name in self.schema.names:
            column = pd.concat([t[name] for t in tables], ignore_index=True).iloc[order]
            column.index = data.index
            result[name] = column
        return result
