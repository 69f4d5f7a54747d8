"""`Fit`: the immutable result of :func:`ppgen.fit`."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch

from ppgen import _arviz
from ppgen._utils import seeded
from ppgen.data.schema import Encoded, Schema
from ppgen.infer.engine import Engine, get
from ppgen.models.base import GenerativeModel, Params

__all__ = ["FORMAT", "VERSION", "Fit"]

#: The saved-file format (:meth:`Fit.to_state`, :mod:`ppgen.infer.serialize`).
FORMAT = "ppgen-fit"
VERSION = 1


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


#: Fit.impute draws rows in chunks of about this many cells squared per row (see _impute_rows).
_IMPUTE_CHUNK_CELLS = 2**23


@dataclass(frozen=True, eq=False)
class Fit:
    """A fitted model: parameters, the loss trace and everything computed from them.

    Attributes
    ----------
    model : GenerativeModel
        The fitted model (a private copy; fitting never changes the model you passed).
    schema : Schema
        How the data were encoded; every method takes data in the same form.
    method : str
        ``"map"``, ``"em"``, ``"svi"`` or ``"nuts"`` (or another registered engine's name);
        :attr:`kind` says what that means.
    params : dict of Tensor
        Point estimate of the global sites on the encoded scale: the MAP/EM estimate, the
        guide's median for SVI, the posterior mean for NUTS.
    losses : ndarray
        Loss (negative log joint or negative ELBO) per optimization step; for NUTS, the losses of
        the MAP run that initialized the chains.
    samples : dict of Tensor or None
        Posterior draws of the global sites, shape (chain, draw, ...), for SVI and NUTS.
    divergent : ndarray or None
        NUTS divergences, shape (chain, draw).
    seed : int
        The seed the fit ran with.
    info : dict
        Method-specific facts: steps taken, convergence, the options used.
    """

    model: GenerativeModel
    schema: Schema
    method: str
    params: Params
    losses: np.ndarray
    seed: int
    samples: Params | None = None
    divergent: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    train: Encoded | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        if self.samples is not None:
            object.__setattr__(self, "samples", MappingProxyType(dict(self.samples)))
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))
        self.losses.setflags(write=False)

    # -- data ---------------------------------------------------------------------------------
    def _reference_tensor(self) -> torch.Tensor:
        # Amortized models (VAE) have no global sites: their networks set device and dtype.
        for value in self.params.values():
            return value
        for value in self.model.parameters():
            return value
        raise RuntimeError(f"{type(self.model).__name__} fit holds no tensors")

    @property
    def device(self) -> torch.device:
        return self._reference_tensor().device

    @property
    def dtype(self) -> torch.dtype:
        return self._reference_tensor().dtype

    @property
    def engine(self) -> Engine:
        """The engine that fitted this (from the registry by :attr:`method` and the model)."""
        return get(self.method, self.model)

    @property
    def kind(self) -> str:
        """What the fit holds: ``"point"`` (MAP, EM), ``"draws"`` (independent posterior draws,
        SVI), ``"mcmc"`` (chains, NUTS) or ``"networks"`` (trained networks of a deep model).
        Generic code reads this instead of comparing method names; it is the engine's
        :attr:`~ppgen.infer.engine.Engine.kind` (so saved fits, which store the method, have it
        too)."""
        return self.engine.kind

    @property
    def converged(self) -> bool | None:
        """Whether the engine's convergence rule stopped it before its iteration cap (EM, MAP;
        deep models: whether validation stopped them early), ``None`` where the engine has no
        such rule (NUTS, SVI draws) or the file predates the flag. A fit that hit the cap also
        warned (:class:`ppgen.ConvergenceWarning`)."""
        value = self.info.get("converged")
        return None if value is None else bool(value)

    def encode(self, data: Any) -> Encoded:
        """``data`` encoded by the fit's schema on the fit's device and dtype."""
        return self.schema.encode(data, device=self.device, dtype=self.dtype)

    def _draws(self) -> list[Params]:
        """Posterior draws flattened over chains, or the point estimate alone."""
        if self.samples is None:
            return [dict(self.params)]
        flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in self.samples.items()}
        n = next(iter(flat.values())).shape[0]
        return [{k: v[i] for k, v in flat.items()} for i in range(n)]

    # -- likelihood -------------------------------------------------------------------------------
    def log_likelihood_draws(self, data: Any = None) -> np.ndarray:
        """Per-row log-likelihood under each posterior draw, shape (chain, draw, n), data scale."""
        enc = self.train if data is None else self.encode(data)
        if enc is None:
            raise ValueError(
                "pass the data: this fit was loaded from disk without its training data"
            )
        jac = self.schema.log_abs_det_jacobian(enc.mask, x=enc.x)
        with torch.no_grad():
            rows = [self.model.log_prob(enc.x, enc.mask, p) + jac for p in self._draws()]
        out = _numpy(torch.stack(rows))
        if self.samples is None:
            return out.reshape(1, 1, -1)
        chains, draws = next(iter(self.samples.values())).shape[:2]
        return out.reshape(chains, draws, -1)

    def log_prob(self, data: Any) -> np.ndarray:
        """Log density of each row on the data's original scale (nats), shape (n,).

        Exact for models with a tractable marginal. Point fits (MAP, EM) plug in the estimate;
        SVI and NUTS fits give the posterior predictive density, the log of the mean over draws.
        The log-Jacobian of the standardization is included, so values compare across models
        and with other libraries fitted to the same raw data.
        """
        ll = self.log_likelihood_draws(data).reshape(-1, self.encode(data).x.shape[0])
        return torch.from_numpy(ll).logsumexp(0).numpy() - np.log(ll.shape[0])

    def score(self, data: Any) -> float:
        """Mean log density per row (nats): the number to compare models by."""
        return float(np.mean(self.log_prob(data)))

    def _require_point(self, what: str) -> None:
        if self.kind != "point":
            raise ValueError(
                f"{what} is defined for point estimates (method 'map' or 'em'), not "
                f"{self.method!r} (a {self.kind!r} fit)"
            )

    def n_free_parameters(self) -> int:
        """The parameters this fit estimated: the model's count less those ``fixed=`` held
        (the k of :meth:`bic` and :meth:`aic`)."""
        held = self.info.get("fixed")
        sites = str(held).split(", ") if held else ()
        return self.model.n_parameters() - self.model.n_held_parameters(sites, self.params)

    def bic(self, data: Any) -> float:
        """Bayesian information criterion, -2 log L + k log n (lower is better); k counts the
        estimated parameters (:meth:`n_free_parameters`)."""
        self._require_point("BIC")
        ll = self.log_prob(data)
        return float(-2 * ll.sum() + self.n_free_parameters() * np.log(len(ll)))

    def aic(self, data: Any) -> float:
        """Akaike information criterion, -2 log L + 2 k (lower is better)."""
        self._require_point("AIC")
        return float(-2 * self.log_prob(data).sum() + 2 * self.n_free_parameters())

    # -- structure ------------------------------------------------------------------------------
    def _model_method(self, name: str, data: Any) -> np.ndarray:
        if not type(self.model).implements(name):
            raise AttributeError(f"{type(self.model).__name__} has no {name}")
        fn = getattr(self.model, name)
        enc = self.encode(data)
        with torch.no_grad():
            return _numpy(fn(enc.x, enc.mask, dict(self.params)))

    def predict_proba(self, data: Any) -> np.ndarray:
        """Membership probabilities per row and component, shape (n, K) (mixtures)."""
        return self._model_method("predict_proba", data)

    def predict(self, data: Any) -> np.ndarray:
        """Most probable component of each row, shape (n,) (mixtures)."""
        return self.predict_proba(data).argmax(-1)

    def transform(self, data: Any) -> np.ndarray:
        """Posterior mean of each row's latent variables, shape (n, q) (PPCA; for VAEs the
        mean of the guide q(z | x_obs))."""
        if not type(self.model).implements("posterior"):
            raise AttributeError(
                f"{type(self.model).__name__} has no latent posterior to transform to"
            )
        enc = self.encode(data)
        with torch.no_grad():
            mean, _ = self.model.posterior(enc.x, enc.mask, dict(self.params))
        return _numpy(mean)

    def _require_amortized(self, what: str) -> None:
        # A latent space to encode into and decode from, not just networks: Autoregressive and
        # Flow are trained like the VAE but have no latent code.
        model = type(self.model)
        if not (self.model.amortized and model.implements("decode_latent")):
            raise ValueError(
                f"{what} is defined for deep latent-variable models (ppgen.VAE, "
                f"ppgen.HierarchicalVAE), not for {model.__name__}, which has no latent space"
            )

    def interpolate(self, row_a: Any, row_b: Any, n: int = 10) -> Any:
        """Rows decoded along the latent segment between two rows (amortized models).

        The posterior means of the latents of ``row_a`` and ``row_b`` are joined by ``n``
        equally spaced points, each decoded to the typical row: the mean of continuous and count
        columns (counts rounded), the most probable category of binary and categorical ones.

        Parameters
        ----------
        row_a, row_b : DataFrame, ndarray or Tensor
            One row each, in the fitted data's form (a one-row DataFrame, or an array of the
            row's values); missing entries are allowed.
        n : int
            Number of points, both ends included.

        Returns
        -------
        table
            ``n`` rows of the fitted data's type (a DataFrame for DataFrames), from ``row_a``'s
            end to ``row_b``'s.
        """
        self._require_amortized("interpolate")
        if isinstance(n, bool) or int(n) != n or int(n) < 2:
            raise ValueError(f"n must be an integer >= 2, got {n!r}")
        encoded = []
        for name, row in (("row_a", row_a), ("row_b", row_b)):
            if isinstance(row, (np.ndarray, torch.Tensor)) and row.ndim == 1:
                row = row.reshape(1, -1)
            enc = self.encode(row)
            if enc.x.shape[0] != 1:
                raise ValueError(f"{name} must be a single row, got {enc.x.shape[0]} rows")
            encoded.append(enc)
        x = torch.cat([e.x for e in encoded])
        mask = torch.cat([e.mask for e in encoded])
        with torch.no_grad():
            path = self.model.interpolate(x, mask, dict(self.params), int(n))
        return self.schema.decode(path)

    def decode(self, z: Any) -> Any:
        """Typical rows for latent values ``z`` (amortized models), shape (n, n_latent).

        Each row is the decoder's typical value: the mean of continuous and count columns
        (counts rounded), the most probable category of binary and categorical ones -- not a
        draw (use :meth:`sample` for draws). Returned in the fitted data's form.
        """
        self._require_amortized("decode")
        z = torch.as_tensor(z, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            return self.schema.decode(self.model.heads.expected(self.model.decode_latent(z)))

    def reconstruct(self, data: Any) -> Any:
        """Each row encoded to its posterior mean latent and decoded back (:meth:`decode`)."""
        self._require_amortized("reconstruct")
        enc = self.encode(data)
        with torch.no_grad():
            mean, _ = self.model.posterior(enc.x, enc.mask, dict(self.params))
            out = self.model.heads.expected(self.model.decode_latent(mean))
        return self.schema.decode(out, index=enc.index)

    def anomaly_score(
        self, data: Any, *, k: int = 100, seed: int = 0, batch_size: int | None = None
    ) -> np.ndarray:
        """Per-row anomaly score: minus the IWAE bound on log p(row) (nats, data scale).

        Rows the model finds unlikely score high. The bound is :func:`ppgen.evaluate.iwae`
        with ``k`` importance samples (amortized models only; for models with an exact
        likelihood use ``-fit.log_prob(data)``).

        Returns
        -------
        ndarray, shape (n,)
        """
        self._require_amortized("anomaly_score")
        from ppgen.infer.weights import iwae_data_rows  # the rows ppgen.evaluate.iwae reports

        return -iwae_data_rows(self, data, k=k, seed=seed, batch_size=batch_size)

    # -- simulation -----------------------------------------------------------------------------
    def sample(self, n: int, *, seed: int = 0, **options: Any) -> Any:
        """Draw ``n`` new rows, decoded to the fitted data's form (a DataFrame for DataFrames).

        Point fits sample from the plug-in model; SVI and NUTS fits from the posterior predictive
        (each row from a randomly chosen posterior draw). ``options`` go to the model's
        ``sample`` (e.g. :class:`~ppgen.Diffusion`'s ``sampler="ddim", steps=..., eta=...``);
        a model that takes none raises ``ValueError``.
        """
        if int(n) < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if options:
            params = inspect.signature(type(self.model).sample).parameters
            unknown = sorted(set(options) - set(params))
            if unknown:
                raise ValueError(f"{type(self.model).__name__}.sample takes no option(s) {unknown}")
        draws = self._draws()
        with seeded(seed, self.device), torch.no_grad():
            which = torch.randint(len(draws), (int(n),)).tolist() if len(draws) > 1 else [0] * n
            parts, order = [], []
            for d in sorted(set(which)):
                rows = [i for i, w in enumerate(which) if w == d]
                parts.append(self.model.sample(len(rows), draws[d], **options))
                order.extend(rows)
            x = torch.cat(parts)[torch.argsort(torch.tensor(order))]
        return self.schema.decode(x)

    def impute(self, data: Any, n_imputations: int = 5, *, seed: int = 0) -> list[Any]:
        """Multiple imputation: ``n_imputations`` completed copies of ``data``.

        Each copy fills the missing entries with one draw from the model's conditional
        distribution of the missing entries given the observed ones in the same row. Copy ``j``
        uses its own parameter value: for SVI and NUTS fits, posterior draws spread evenly over
        ``samples`` (chains flattened), so that the copies carry parameter uncertainty and
        Rubin's rules (:func:`ppgen.impute.pool`) give honest intervals -- *proper* multiple
        imputation. MAP and EM fits plug the point estimate into every copy: such imputations are
        *improper* (they ignore parameter uncertainty, so pooled intervals are somewhat too
        narrow); fit with ``method="nuts"`` or ``"svi"`` for proper multiple imputation, or use
        ``ppgen.Imputer(..., proper="bootstrap")``, which refits a point estimate to a bootstrap
        resample of the rows for each copy (Rubin & Schenker's approximate Bayesian bootstrap).

        Parameters
        ----------
        data : DataFrame, ndarray or Tensor
            A table in the fitted data's form; missing entries (NaN, None) are imputed.
        n_imputations : int
            Number m of completed tables.
        seed : int
            The imputations are a function of ``seed`` (and the fit) alone.

        Returns
        -------
        list
            ``n_imputations`` tables of the fitted data's type (DataFrames keep the input's index,
            the schema's columns and dtypes). Observed entries are copied from ``data`` unchanged.
        """
        if not type(self.model).implements("impute"):
            raise AttributeError(f"{type(self.model).__name__} has no impute")
        m = int(n_imputations)
        if m < 1 or m != n_imputations:
            raise ValueError(f"n_imputations must be a positive integer, got {n_imputations!r}")
        enc = self.encode(data)
        draws = self._draws()
        picks = np.linspace(0, len(draws) - 1, m).round().astype(int) if len(draws) > 1 else [0] * m
        # DataFrames: the observed entries of plain float columns go back in numpy, once per
        # table, instead of a pandas where + assignment per column and table (the overhead
        # issue 21 measured at ~10x the draw); other columns take the general path below.
        given = self._numpy_given(data) if isinstance(data, pd.DataFrame) else None
        out = []
        with seeded(seed, self.device), torch.no_grad():
            for j in picks:
                x = self._impute_rows(enc, draws[int(j)])
                if given is None:
                    completed = self.schema.decode(x, index=enc.index)
                else:
                    completed = self.schema.decode_filled(
                        x, given, _numpy(enc.mask), index=enc.index
                    )
                out.append(self._restore_observed(data, completed, enc, skip=given))
        return out

    def _impute_rows(self, enc: Encoded, params: Params) -> torch.Tensor:
        """One draw of every row's missing entries, in chunks of rows on large tables.

        Rows are independent given the parameters (row-wise models), so drawing them chunk by
        chunk is the same distribution; it bounds the memory of per-row work such as a mixture's
        K x n conditional factors (issue 21: 10^6 x 20 tables). Tables of at most one chunk take
        a single call, as before.
        """
        n = enc.x.shape[0]
        width = max(1, enc.x[0].numel()) if n else 1
        chunk = max(1024, _IMPUTE_CHUNK_CELLS // (width * width))
        if enc.mask is None or self.model.sequential or n <= chunk:
            return self.model.impute(enc.x, enc.mask, params)
        parts = [
            self.model.impute(enc.x[s : s + chunk], enc.mask[s : s + chunk], params)
            for s in range(0, n, chunk)
        ]
        return torch.cat(parts)

    def _numpy_given(self, data: pd.DataFrame) -> dict[int, np.ndarray]:
        """Columns whose observed entries can be restored in numpy: ``data``'s column has a
        numpy float dtype equal to the decoded one (so ``Series.where`` neither casts nor
        aligns anything), by position in the schema."""
        given = {}
        for j, name in enumerate(self.schema.names):
            dtype = self.schema.decoded_dtype(j)
            if dtype is not None and data[name].dtype == dtype:
                given[j] = data[name].to_numpy()
        return given

    def _restore_observed(
        self, data: Any, completed: Any, enc: Encoded, skip: dict[int, Any] | None = None
    ) -> Any:
        """Copy the observed entries of ``data`` into ``completed``: decoding rounds floats.
        Columns in ``skip`` (by position) were restored already."""
        observed = _numpy(enc.mask)
        if isinstance(completed, pd.DataFrame):
            for j, name in enumerate(self.schema.names):
                if skip and j in skip:
                    continue
                col = completed[name]
                given = data[name]
                if given.dtype != col.dtype and pd.api.types.is_extension_array_dtype(given.dtype):
                    # e.g. nullable Int64 modelled as continuous: pandas cannot put the imputed
                    # floats into Int64, so merge in the decoded column's dtype.
                    given = given.astype(col.dtype)
                merged = given.where(observed[:, j], col)
                completed[name] = merged if merged.dtype == col.dtype else merged.astype(col.dtype)
            return completed
        if isinstance(completed, torch.Tensor):
            given = torch.as_tensor(data, device=completed.device).to(completed.dtype)
            return torch.where(enc.mask.to(completed.device), given, completed)
        given = _numpy(data) if isinstance(data, torch.Tensor) else np.asarray(data)
        return np.where(observed, given, completed).astype(completed.dtype, copy=False)

    # -- reporting ------------------------------------------------------------------------------
    def _described_draws(self) -> dict[str, np.ndarray]:
        if self.samples is None:
            described = self.model.describe(dict(self.params), self.schema)
            return {k: _numpy(v)[None, None] for k, v in described.items()}
        chains, draws = next(iter(self.samples.values())).shape[:2]
        flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in self.samples.items()}
        with torch.no_grad():
            described = self.model.describe(flat, self.schema)
        return {k: _numpy(v).reshape((chains, draws) + v.shape[1:]) for k, v in described.items()}

    def _require_globals(self, what: str) -> None:
        if not self.params and self.samples is None:
            raise ValueError(
                f"{what} reports global parameters; {type(self.model).__name__} has none (its "
                "networks are point estimates): judge it with ppgen.evaluate (elbo, iwae, ais) "
                "and look at sample, transform and impute"
            )

    def summary(self) -> pd.DataFrame:
        """Parameters as a statistician reads them.

        Point fits give one ``estimate`` column. SVI and NUTS fits give ArviZ's summary: posterior
        mean, sd, 94% highest-density interval and, for NUTS, MCSE, bulk/tail ESS and R-hat.
        """
        self._require_globals("summary")
        draws = self._described_draws()
        coords = self.model.describe_coords(self.schema)
        # ArviZ labels entries by position, "means[0, 1]"; readers want "means[0, waiting]".
        labels, estimates = {}, {}
        for name, value in draws.items():
            axes = coords.get(name, ())
            for idx in np.ndindex(value.shape[2:]):
                by_position = f"{name}[{', '.join(map(str, idx))}]" if idx else name
                named = [str(axes[a][i]) if a < len(axes) else str(i) for a, i in enumerate(idx)]
                labels[by_position] = f"{name}[{', '.join(named)}]" if idx else name
                estimates[labels[by_position]] = float(value[(0, 0, *idx)])
        if self.samples is None:
            return pd.DataFrame({"estimate": pd.Series(estimates)})
        # SVI draws are independent: MCMC diagnostics (R-hat, ESS) would be meaningless.
        table = _arviz.summary(draws, diagnostics=self.kind == "mcmc")
        return table.rename(index=labels)

    def to_arviz(self, data: Any = None, *, posterior_predictive: bool = True):
        """InferenceData: posterior, sample_stats, log_likelihood, observed_data and
        posterior_predictive groups (an ``arviz.InferenceData``).

        NUTS draws keep their chains; SVI draws come from the fitted guide (one chain); a MAP fit
        is a single draw. ``log_likelihood["x"]`` is per row on the data's original scale, ready
        for ArviZ's loo/waic. ``observed_data["x"]`` and ``posterior_predictive["x"]`` (one
        replicate of the data per posterior draw, seeded by the fit's seed) are numeric tables on
        the data's scale: continuous columns in their own units, other kinds as their codes,
        missing entries NaN. The replicates are left out when they would exceed 20 million values.
        """
        self._require_globals("to_arviz")
        enc = self.train if data is None else self.encode(data)
        posterior = {k: _numpy(v) for k, v in (self.samples or {}).items()}
        if not posterior:
            posterior = {k: _numpy(v)[None, None] for k, v in self.params.items()}
        stats = None if self.divergent is None else {"diverging": self.divergent}
        ll = self.log_likelihood_draws(data) if enc is not None else None
        observed = replicates = None
        if enc is not None:
            observed = {"x": _numpy(self._data_scale(enc.x).masked_fill(~enc.mask, float("nan")))}
            if posterior_predictive:
                replicates = self._posterior_predictive(enc)
        return _arviz.inference_data(
            posterior,
            sample_stats=stats,
            log_likelihood=None if ll is None else {"x": ll},
            observed_data=observed,
            posterior_predictive=replicates,
            attrs={"ppgen_method": self.method, "ppgen_model": type(self.model).__name__},
        )

    def _data_scale(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.new_tensor([c.scale for c in self.schema.columns])
        loc = x.new_tensor([c.loc for c in self.schema.columns])
        return x * scale + loc

    def _posterior_predictive(self, enc: Encoded) -> dict[str, np.ndarray] | None:
        draws = self._draws()
        if len(draws) * enc.x.numel() > 20_000_000:
            return None
        n = enc.x.shape[0]
        with seeded(self.seed, self.device), torch.no_grad():
            reps = torch.stack([self._data_scale(self.model.sample(n, d)) for d in draws])
        chains = 1 if self.samples is None else next(iter(self.samples.values())).shape[0]
        return {"x": _numpy(reps).reshape((chains, -1) + tuple(enc.x.shape))}

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Save to ``path``: tensors and a JSON config, loadable without executing code
        (:func:`ppgen.load`)."""
        torch.save(self.to_state(), path)

    def _state_config(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": type(self.model).__name__,
            "model_config": self.model.config(),
            "schema": self.schema.to_dict(),
            "method": self.method,
            "seed": self.seed,
            "info": {k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool))},
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def to_state(self) -> dict[str, Any]:
        """The saved form: ``{"config": JSON text, "tensors": nested dicts of CPU tensors}``,
        what :meth:`save` writes with ``torch.save`` (format :data:`FORMAT`, version
        :data:`VERSION`)."""
        tensors: dict[str, Any] = {
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "module": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "losses": torch.tensor(np.array(self.losses)),
        }
        if self.samples is not None:
            tensors["samples"] = {k: v.detach().cpu() for k, v in self.samples.items()}
        if self.divergent is not None:
            tensors["divergent"] = torch.as_tensor(self.divergent)
        return {"config": json.dumps(self._state_config()), "tensors": tensors}

    @classmethod
    def from_state(
        cls,
        config: dict[str, Any],
        tensors: dict[str, Any],
        *,
        model: GenerativeModel,
        schema: Schema,
    ) -> Fit:
        """The fit :meth:`to_state` describes (config parsed), given its model rebuilt with its
        weights loaded and its schema (:func:`ppgen.infer.serialize.load` does both)."""
        divergent = tensors.get("divergent")
        return cls(
            model=model,
            schema=schema,
            method=config["method"],
            params=tensors["params"],
            losses=tensors["losses"].numpy().astype(float),
            seed=config["seed"],
            samples=tensors.get("samples"),
            divergent=None if divergent is None else divergent.numpy().astype(bool),
            info=config["info"],
        )

    def __repr__(self) -> str:
        # The dataclass repr printed every tensor and the model's networks (16,768 characters for
        # a VAE); one line says what the fit is.
        parts = [f"{self.model.label()} by {self.method}"]
        if self.train is not None:
            parts.append(f"{len(self.train.x)} rows")
        parts += [f"{len(self.schema)} columns", f"{len(self.losses)} steps"]
        if self.samples:
            chains, draws = next(iter(self.samples.values())).shape[:2]
            parts.append(f"{chains} x {draws} draws" if self.kind == "mcmc" else f"{draws} draws")
        return f"{type(self).__name__}({', '.join(parts)})"
