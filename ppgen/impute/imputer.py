"""The :class:`Imputer`: multiple imputation with a generative model, scikit-learn style.

References
----------
van Buuren, S. (2018). *Flexible Imputation of Missing Data*, 2nd ed. CRC Press.
Rubin, D. B. & Schenker, N. (1986). Multiple imputation for interval estimation from simple
random samples with ignorable nonresponse. *JASA* 81(394), 366-374.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ppgen._parallel import resolve_map
from ppgen._utils import progress_bar
from ppgen.impute.delta import _adjust, _delta_plan, _put

__all__ = ["Imputer"]

# -- the Imputer --------------------------------------------------------------------------------

#: Model names accepted by :class:`Imputer` (short names in ppgen.models.MODELS), and the
#: default options of each beyond the model's own: a function of the number of columns.
_MODEL_DEFAULTS: dict[str, Callable[[int], dict[str, Any]]] = {
    "gmm": lambda d: {"n_components": 2},
    "ppca": lambda d: {"n_components": max(1, min(2, d - 1))},
    "vae": lambda d: {},
    "notmiwae": lambda d: {},  # issue 21: the VAE with a self-masking missingness model (MNAR)
    "diffusion": lambda d: {},  # issue 15: RePaint-style conditional sampling of the chain
}
_MODEL_NAMES = tuple(_MODEL_DEFAULTS)
_FORMATS = ("wide", "long")


class Imputer:
    """Multiple imputation with a generative model, as a scikit-learn style transformer.

    ``fit`` fits the model once to a table with missing values; ``transform`` returns ``m``
    completed copies of a table, each drawn from the model's conditional distribution of the
    missing entries given the observed ones (:meth:`ppgen.Fit.impute`). Observed entries, column
    order, the row index and column dtypes are those of the input, exactly.

    Parameters
    ----------
    model : {"gmm", "ppca", "vae", "notmiwae", "diffusion", "auto"} or GenerativeModel
        Default "gmm".
        ``"gmm"`` is :class:`ppgen.GaussianMixture`, ``"ppca"`` is :class:`ppgen.PPCA`,
        ``"vae"`` is :class:`ppgen.VAE` (fitted by minibatch SVI of its networks on MIWAE's
        importance-weighted bound, ``objective="iwae"`` with ``num_particles=20`` unless
        ``fit_options`` say otherwise; its tables are MIWAE draws given the fitted networks, so
        they carry the uncertainty of the missing values but not that of the networks),
        ``"notmiwae"`` is :class:`ppgen.NotMIWAE` (the VAE with a self-masking model of the
        mask, for continuous columns missing not at random: trained and imputed as ``"vae"``,
        with the probability that an entry is missing a logistic function of the entry itself,
        Ipsen et al. 2021), ``"diffusion"`` is :class:`ppgen.Diffusion` (minibatch SVI of its
        denoising network; RePaint-style draws given the fitted network), built with
        ``**model_options``; or an
        unfitted model instance (then ``model_options`` must be empty). ``"auto"`` chooses
        among Gaussian mixtures (K = 1-4, 6) and, on numeric tables, PPCA of four sizes, by how
        well draws of each from its conditional distribution predict observed cells hidden from
        its fit (the continuous ranked probability score of 10% of the observed cells, three
        hold-outs; :mod:`ppgen.impute.auto`; ``selection_`` holds the scores), then fits the
        winner with ``method``.
    n_imputations : int, default 20
        Number ``m`` of completed tables. With ``n_imputations=1`` :meth:`transform` returns one
        table of the input's type, so the imputer drops into a scikit-learn ``Pipeline``.
    seed : int, default 0
        Seed of the fit and of the imputations: ``transform`` of the same data gives the same
        tables.
    method : {"svi", "nuts", "map", "em"}, default "svi"
        How :func:`ppgen.fit` fits the model. The default ``"svi"`` with a full-rank Gaussian
        guide (``guide="mvn"``) gives posterior draws of the parameters, so every completed
        table uses its own parameter value and Rubin's rules give honest intervals: *proper*
        multiple imputation, in seconds on tables of a few hundred rows. ``"nuts"`` is proper
        too and exact in the limit but ten to a hundred times slower; ``"map"`` and ``"em"``
        plug one estimate into every table (*improper*: pooled intervals somewhat too narrow),
        fine for single imputation or a quick look -- or proper with ``proper="bootstrap"``.
    proper : {None, "bootstrap"}, default None
        ``"bootstrap"`` (with ``method="map"`` or ``"em"``) makes point fits proper: table
        ``j`` is drawn under the parameters refitted to a bootstrap resample of the rows (drawn
        with replacement, missing entries and all), each refit started from the fit to the
        whole table. The spread of the m refits stands in for the posterior of the parameters
        (Rubin & Schenker 1986's approximate Bayesian bootstrap, in its parametric form; Little
        & Rubin 2002, sec. 10.2.3). Costs m extra fits, usually a few EM steps each.
    kinds : dict of str to str, optional
        Override inferred column kinds (see :meth:`ppgen.Schema.infer`), e.g.
        ``{"Month": "continuous"}`` for an integer column a Gaussian model should treat as
        continuous; its dtype is still restored in the output. Kinds that keep the support
        (``"positive"``, ``"bounded:0:100"``, ``"binomial:16"``, ``"ordinal"``) change the model
        itself (see :mod:`ppgen.data`).
    support : {"truncate", "pmm", None}, default "truncate"
        How imputations keep a column's support. A column modelled as continuous whose
        observed values are all >= 0 has support ``[0, inf)`` (declared positive, bounded,
        count and binomial columns keep theirs by their model). ``"truncate"`` draws such a
        column's missing entries from the model's conditional distribution truncated to the
        support, by rejection: a row whose draw leaves the support is drawn again, under the
        same parameter draw, until it is inside (an exact draw from the truncated conditional
        of the row's missing block -- not clipping, not the observed min-max; after 200 rounds
        the few remaining cells take the nearest observed value, with a warning). ``"pmm"``:
        predictive mean matching in its draw-matching form -- every imputed value of a
        continuous column is replaced by one of the 5 observed values closest to it, picked at
        random (imputations are always observed values, as with mice's default). ``None``: the
        model's draws as they are, as :meth:`ppgen.Fit.impute` gives them. Every table keeps its
        own parameter draw, so the imputation stays proper.
    delta : dict, optional
        Sensitivity to data missing not at random (pattern-mixture delta adjustment; see
        :mod:`ppgen.impute.delta` and :func:`ppgen.tipping_point`): ``{"col": -3.0}`` shifts
        every imputed value of a continuous column by -3 (in its units, or its observed standard
        deviations with ``delta_scale="sd"``), and the row's other missing entries are then drawn
        given the shifted value, so they respond as the model relates them. For a binary or
        categorical column, a log-odds shift: a number shifts the second level's log-odds
        against the first, ``{"level": shift, ...}`` any level's. Applied after ``support``, in
        the order given; a delta of 0 leaves the MAR imputation exactly as it is. The fit does
        not depend on delta: change it with ``set_params`` and call :meth:`transform` again.
    delta_scale : {"units", "sd"}, default "units"
        Unit of the continuous deltas.
    n_jobs : int, optional
        With ``proper="bootstrap"``, run the m refits on this many local processes (``-1``:
        one per core; joblib, :func:`ppgen._parallel.parallel_map`). The resamples are drawn
        first and each refit has its own seed, so the refits equal the serial ones exactly.
    fit_options : dict, optional
        Further options of :func:`ppgen.fit` (``max_steps``, ``num_samples``, ``guide``, ...).
        ``progress`` (default None: only when stderr is a terminal, as :func:`ppgen.fit`)
        shows the fit's bar and, with ``proper="bootstrap"``, one bar over the m refits.
    **model_options
        Options of the model, e.g. ``n_components`` (default 2 for ``"gmm"``, and
        ``min(2, d - 1)`` for ``"ppca"`` on ``d`` columns) or ``covariance_type``.

    Attributes
    ----------
    fit_ : Fit
        The fitted model (after :meth:`fit`).
    bootstrap_fits_ : list of Fit
        With ``proper="bootstrap"``, the m refits to bootstrap resamples (else empty).
    columns_ : list of str
        The columns seen by :meth:`fit`, in order.
    constant_ : dict
        Columns left out of the model because they have a single distinct observed value, and
        that value (see Notes).
    support_ : dict
        Column name -> ``(low, high)``: the support that ``support="truncate"`` keeps.
    selection_ : DataFrame
        With ``model="auto"``: every candidate's held-out score and the one chosen
        (``choice_`` is its ``(name, options)``).

    Notes
    -----
    Bad input raises a ``ValueError`` that names the column: an all-missing column, text in a
    column that otherwise holds numbers (convert such entries to NaN first, e.g. with
    ``pd.to_numeric(errors="coerce")``), a category at ``transform`` that ``fit`` never saw, or
    columns that differ from the fitted ones. Columns of a kind the model does not handle get
    the model's own error. A column whose observed values are all equal -- in particular one
    with a single observed value -- carries no information on its spread or its relation to
    the other columns: it is left out of the model with a ``UserWarning``, and its missing
    entries are imputed with that value.

    Examples
    --------
    >>> import ppgen
    >>> df = ppgen.datasets.load("airquality")[["Ozone", "Solar.R", "Wind", "Temp"]]
    >>> imp = ppgen.Imputer("gmm", n_imputations=5, method="map", seed=0).fit(df)
    >>> tables = imp.transform(df)                   # 5 completed DataFrames
    >>> long = imp.transform(df, format="long")      # one DataFrame with .imp and .id, as mice
    >>> pooled = ppgen.pool_fit(tables, "Ozone ~ Wind + Temp")
    """

    def __init__(
        self,
        model: Any = "gmm",
        n_imputations: int = 20,
        seed: int = 0,
        method: str = "svi",
        kinds: dict[str, str] | None = None,
        fit_options: dict[str, Any] | None = None,
        proper: str | None = None,
        support: str | None = "truncate",
        delta: dict[str, Any] | None = None,
        delta_scale: str = "units",
        n_jobs: int | None = None,
        **model_options: Any,
    ) -> None:
        self.model = model
        self.n_imputations = n_imputations
        self.seed = seed
        self.method = method
        self.proper = proper
        self.support = support
        self.delta = delta
        self.delta_scale = delta_scale
        self.n_jobs = n_jobs
        self.kinds = kinds
        self.fit_options = fit_options
        self.model_options = dict(model_options)

    # -- scikit-learn protocol ------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this imputer, model options included (scikit-learn's protocol)."""
        params = {
            "model": self.model,
            "n_imputations": self.n_imputations,
            "seed": self.seed,
            "method": self.method,
            "kinds": self.kinds,
            "fit_options": self.fit_options,
            "proper": self.proper,
            "support": self.support,
            "delta": self.delta,
            "delta_scale": self.delta_scale,
            "n_jobs": self.n_jobs,
        }
        params.update(self.model_options)
        return params

    def set_params(self, **params: Any) -> Imputer:
        """Set parameters (model options included); returns ``self``."""
        fixed = (
            "model", "n_imputations", "seed", "method", "kinds", "fit_options", "proper",
            "support", "delta", "delta_scale", "n_jobs",
        )  # fmt: skip
        for name, value in params.items():
            if name in fixed:
                setattr(self, name, value)
            else:
                self.model_options[name] = value
        return self

    def __repr__(self) -> str:
        defaults = Imputer().get_params()
        shown = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if k not in defaults or v is not defaults[k] and v != defaults[k]
        ]
        return f"Imputer({', '.join(shown)})"

    # -- fitting --------------------------------------------------------------------------------
    def _build_model(self, n_columns: int) -> Any:
        from ppgen.models import MODELS, GenerativeModel

        if self.model == "auto":
            name, chosen = self.choice_
            return MODELS.lookup(name)(**chosen)
        if isinstance(self.model, GenerativeModel):
            if self.model_options:
                raise ValueError(
                    "model options "
                    f"{sorted(self.model_options)} apply to a model name, not to a model instance"
                )
            return self.model
        if self.model not in _MODEL_NAMES:
            raise ValueError(
                f"model must be one of {(*_MODEL_NAMES, 'auto')} or a GenerativeModel, got "
                f"{self.model!r}"
            )
        options = {**_MODEL_DEFAULTS[self.model](n_columns), **self.model_options}
        return MODELS.lookup(self.model)(**options)

    def fit(self, X: Any, y: Any = None) -> Imputer:
        """Fit the model to ``X`` (missing entries as NaN); ``y`` is ignored.

        Parameters
        ----------
        X : DataFrame, ndarray or Tensor
            Rows are observations.
        y : ignored

        Returns
        -------
        Imputer
            ``self``.
        """
        import warnings

        from ppgen.infer import engine, fit

        m = self.n_imputations
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"n_imputations must be a positive integer, got {m!r}")
        if self.proper not in (None, "bootstrap"):
            raise ValueError(f"proper must be None or 'bootstrap', got {self.proper!r}")
        if self.support not in _SUPPORTS:
            raise ValueError(f"support must be one of {_SUPPORTS}, got {self.support!r}")
        if self.proper == "bootstrap" and engine.get(self.method).kind != "point":
            raise ValueError(
                f"proper='bootstrap' refits point estimates (method='map' or 'em'); "
                f"method={self.method!r} already draws parameters from its posterior"
            )
        frame, _ = _as_frame(X)
        if frame.shape[0] == 0 or frame.shape[1] == 0:
            raise ValueError(f"X is empty (shape {frame.shape})")
        constant: dict[str, Any] = {}
        for name in frame.columns:
            values = frame[name]
            _check_text_in_numbers(name, values)
            observed = values.dropna()
            if observed.empty:
                raise ValueError(
                    f"column {name!r} is entirely missing: there is nothing to impute it from; "
                    "drop it"
                )
            if observed.nunique() == 1:
                value = observed.iloc[0]
                warnings.warn(
                    f"column {name!r} has a single distinct observed value ({value!r}, "
                    f"{len(observed)} of {len(values)} rows observed): it is left out of the "
                    "model and its missing entries are imputed with that value",
                    UserWarning,
                    stacklevel=2,
                )
                constant[name] = value
        modelled = [c for c in frame.columns if c not in constant]
        if not modelled:
            raise ValueError("every column is constant: there is nothing to model")
        self.columns_ = list(frame.columns)
        self.dtypes_ = frame.dtypes.to_dict()
        self.constant_ = constant
        self.modelled_ = modelled
        self.categories_ = {
            c: set(frame[c].dropna().unique())
            for c in frame.columns
            if not pd.api.types.is_numeric_dtype(frame[c].dtype)
        }
        options = dict(self.fit_options or {})
        kinds = {k: v for k, v in (self.kinds or {}).items() if k in modelled} or None
        if isinstance(self.model, str) and self.model == "auto":
            self._choose(frame[modelled], kinds)
        # Amortized models (VAE) train their networks and have no guide over global sites.
        spec = self._build_model(len(modelled))  # fit() copies it: reusable for the refits
        if engine.resolve(self.method, spec).kind == "draws":
            # A full-rank Gaussian over the global sites (the default guide is mean-field).
            options.setdefault("guide", "mvn")
        if self.model in ("vae", "notmiwae") and options.setdefault("objective", "iwae") == "iwae":
            # MIWAE's objective imputes better than the ELBO: on breast_cancer with 20% MCAR,
            # held-out RMSE 0.48-0.52 against 0.51-0.56 over three seeds (tests/models/test_vae.py).
            options.setdefault("num_particles", 20)
        progress = options.pop("progress", None)  # as ppgen.fit: a bar on a terminal only
        self.fit_ = fit(
            spec,
            frame[modelled],
            method=self.method,
            seed=int(self.seed),
            kinds=kinds,
            progress=progress,
            **options,
        )
        self.support_, self.donors_ = _supports(self.fit_.schema, frame[modelled])
        # delta_scale="sd": the observed standard deviation of each numeric column.
        self.scale_ = {
            c: float(pd.to_numeric(frame[c], errors="coerce").std())
            for c in modelled
            if pd.api.types.is_numeric_dtype(frame[c].dtype)
        }
        self.bootstrap_fits_ = []
        if self.proper == "bootstrap":
            table = frame[modelled].reset_index(drop=True)
            rng = np.random.default_rng(int(self.seed))
            refit = dict(
                spec=spec,
                method=self.method,
                schema=self.fit_.schema,
                options={**options, "init_values": self.fit_.params},
            )
            # The resamples first, in the serial order; then the refits, each with its own seed.
            jobs = (
                (refit, table.iloc[rng.integers(0, len(table), size=len(table))], self.seed + 1 + j)
                for j in range(m)
            )  # lazy: one resample at a time in the serial run, as before
            if self.n_jobs not in (None, 1):
                self.bootstrap_fits_ = resolve_map(map, self.n_jobs)(_bootstrap_refit, jobs)
            else:
                # The refits' own bars stay quiet: one bar over the m refits says how far along.
                bar = progress_bar(m, "bootstrap refits", progress)
                for job in jobs:
                    self.bootstrap_fits_.append(_bootstrap_refit(job))
                    bar.update()
                bar.close()
        return self

    def _choose(self, frame: pd.DataFrame, kinds: dict[str, str] | None) -> None:
        """``model="auto"``: the grid's best held-out CRPS of the imputation draws (see
        :mod:`ppgen.impute.auto`)."""
        from ppgen.impute.auto import default_grid, heldout_scores

        if self.model_options:
            raise ValueError(
                f"model='auto' chooses the model's options itself; got {sorted(self.model_options)}"
            )
        numeric = all(
            pd.api.types.is_numeric_dtype(frame[c].dtype)
            and not pd.api.types.is_bool_dtype(frame[c].dtype)
            for c in frame.columns
        ) and not any(v in ("categorical", "binary", "ordinal") for v in (kinds or {}).values())
        grid = default_grid(frame.shape[1], numeric)
        table = heldout_scores(frame, grid, seed=int(self.seed), kinds=kinds)
        best = int(table["crps"].idxmin())
        table["chosen"] = table.index == best
        self.selection_ = table
        self.choice_ = (str(table.at[best, "model"]), dict(table.at[best, "options"]))

    # -- imputing -------------------------------------------------------------------------------
    def transform(self, X: Any, *, format: str = "wide", seed: int | None = None) -> Any:
        """Completed copies of ``X``.

        Parameters
        ----------
        X : DataFrame, ndarray or Tensor
            A table with the fitted columns (a DataFrame's in any order).
        format : {"wide", "long"}, default "wide"
            ``"wide"``: a list of ``n_imputations`` tables of the input's type -- or, when
            ``n_imputations == 1``, that one table itself (the scikit-learn transformer
            contract). ``"long"``: one DataFrame stacking the input (``.imp`` = 0, missing
            entries still NaN) and the ``m`` completed tables (``.imp`` = 1, ..., m), with
            ``.id`` the row label of the input (its index for a DataFrame, else the row
            number) -- mice's ``complete(imp, "long", include = TRUE)``.
        seed : int, optional
            Seed of the imputations; default the imputer's ``seed``.

        Returns
        -------
        list of tables, one table, or DataFrame
        """
        if format not in _FORMATS:
            raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
        if not hasattr(self, "fit_"):
            raise ValueError("this Imputer is not fitted yet: call fit(X) first")
        frame, kind = _as_frame(X)
        frame = self._conform(frame)
        m = int(self.n_imputations)
        seed = int(self.seed if seed is None else seed)
        modelled = frame[self.modelled_]
        if modelled.isna().to_numpy().any():
            plain = _plain_floats(modelled)
            completed = self._draw(plain, seed)
            if self.support == "truncate":
                completed = self._truncate(plain, completed, seed)
            elif self.support == "pmm":
                completed = self._match(plain, completed, seed, list(self.donors_))
            plan = _delta_plan(self, plain)
            if plan:
                completed = [
                    _adjust(self, plain, table, j, seed, plan) for j, table in enumerate(completed)
                ]
        else:
            completed = [modelled] * m
        tables = [self._assemble(frame, part) for part in completed]
        if format == "long":
            ids = frame.index if kind == "dataframe" else pd.RangeIndex(len(frame))
            parts = []
            for j, table in enumerate([frame, *tables]):
                part = table.reset_index(drop=True)
                part.insert(0, ".id", np.asarray(ids))
                part.insert(0, ".imp", j)
                parts.append(part)
            return pd.concat(parts, ignore_index=True)
        tables = [_as_input_type(t, kind, X) for t in tables]
        return tables[0] if m == 1 else tables

    def _draw(self, plain: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
        """The m tables drawn by the model, table j under parameter draw (or refit) j."""
        if self.bootstrap_fits_:
            return [
                f.impute(plain, 1, seed=seed + j)[0] for j, f in enumerate(self.bootstrap_fits_)
            ]
        return self.fit_.impute(plain, int(self.n_imputations), seed=seed)

    def _draw_one(self, plain: pd.DataFrame, j: int, seed: int) -> pd.DataFrame:
        """One table drawn under parameter draw (or refit) ``j`` of :meth:`_draw`'s m."""
        if self.bootstrap_fits_:
            return self.bootstrap_fits_[j].impute(plain, 1, seed=seed)[0]
        fit = self.fit_
        if fit.samples is not None:
            # Fit.impute spreads table j's parameter draw evenly over the flattened draws.
            flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in fit.samples.items()}
            count = next(iter(flat.values())).shape[0]
            m = int(self.n_imputations)
            pick = int(np.linspace(0, count - 1, m).round().astype(int)[j]) if count > 1 else 0
            fit = dataclasses.replace(
                fit, samples={k: v[pick][None, None] for k, v in flat.items()}
            )
        return fit.impute(plain, 1, seed=seed)[0]

    def _truncate(
        self,
        plain: pd.DataFrame,
        completed: list[pd.DataFrame],
        seed: int,
        draws: list[int] | None = None,
    ) -> list[pd.DataFrame]:
        """Redraw, under the same parameter draw, every row whose draw leaves the support.

        ``completed[t]`` was drawn under parameter draw (or refit) ``draws[t]`` (default ``t``).
        Rejection sampling of each offending row's whole missing block, vectorized: every round
        proposes ``k`` independent draws of each row still outside (``k`` = 2, 4, 8, ... up to
        :data:`_MAX_ROUNDS` proposals in all), drawn in one model call per parameter draw (one
        call in all for a point fit), and the row takes its first proposal inside the support.
        The first accepted of a sequence of independent proposals is an exact draw from the
        conditional truncated to the support, as redrawing the row until it is inside would give,
        in a few rounds instead of one per proposal.
        """
        names = [n for n in self.support_ if plain[n].isna().any()]
        if not names:
            return completed
        draws = list(range(len(completed))) if draws is None else list(draws)
        missing = plain[names].isna().to_numpy()
        low = np.array([self.support_[n][0] for n in names])
        high = np.array([self.support_[n][1] for n in names])

        def outside(values: np.ndarray, miss: np.ndarray) -> np.ndarray:
            return (miss & ((values < low) | (values > high))).any(axis=-1)

        pending = [
            np.flatnonzero(outside(t[names].to_numpy(dtype=np.float64), missing)) for t in completed
        ]
        accepted: list[list[tuple[np.ndarray, pd.DataFrame]]] = [[] for _ in completed]
        # One parameter set for every table (EM/MAP fits, networks): one model call per round.
        shared = self.fit_.samples is None and not self.bootstrap_fits_
        used, size, attempt = 0, 1, 0
        while used < _MAX_ROUNDS and any(len(p) for p in pending):
            attempt += 1
            total = sum(len(p) for p in pending)
            size = max(1, min(2 * size, _MAX_ROUNDS - used, _MAX_PROPOSALS // total))
            owners = [t for t, p in enumerate(pending) if len(p)]
            round_seed = int(seed) + 7919 * attempt
            if shared:
                rows = np.concatenate([np.repeat(pending[t], size) for t in owners])
                frame = self._draw_one(plain.iloc[rows].reset_index(drop=True), 0, round_seed)
                bounds = np.cumsum([0] + [len(pending[t]) * size for t in owners])
                proposals = {t: frame.iloc[bounds[i] : bounds[i + 1]] for i, t in enumerate(owners)}
            else:
                proposals = {
                    t: self._draw_one(
                        plain.iloc[np.repeat(pending[t], size)].reset_index(drop=True),
                        draws[t],
                        round_seed + 15_485_863 * t,
                    )
                    for t in owners
                }
            for t in owners:
                rows = pending[t]
                values = proposals[t][names].to_numpy(dtype=np.float64)
                values = values.reshape(len(rows), size, len(names))
                inside = ~outside(values, missing[rows][:, None, :])
                took = inside.any(axis=1)
                first = inside.argmax(axis=1)
                picks = np.flatnonzero(took) * size + first[took]
                accepted[t].append((rows[took], proposals[t].iloc[picks]))
                pending[t] = rows[~took]
            used += size
        tables = [table.reset_index(drop=True) for table in completed]
        for table, parts in zip(tables, accepted, strict=True):
            if any(len(rows) for rows, _ in parts):
                # one write per column and table (the frame is a fresh copy: reset_index)
                _put(table, np.concatenate([r for r, _ in parts]), pd.concat([p for _, p in parts]))
        left = [
            n for n in names if any(_outside_column(t, plain, n, self.support_) for t in tables)
        ]
        if left:
            import warnings

            warnings.warn(
                f"imputations of {', '.join(map(repr, left))} stayed outside their support "
                f"after {_MAX_ROUNDS} draws for some rows (the model puts little mass there); "
                "those cells take the nearest observed value",
                UserWarning,
                stacklevel=3,
            )
            tables = self._match(plain, tables, seed, left, nearest=True)
        return [t.set_axis(c.index) for t, c in zip(tables, completed, strict=True)]

    def _match(
        self,
        plain: pd.DataFrame,
        completed: list[pd.DataFrame],
        seed: int,
        names: list[str],
        nearest: bool = False,
    ) -> list[pd.DataFrame]:
        """Replace imputed values by observed donors: one of the k closest, picked at random
        (``nearest``: only out-of-support cells, by the closest donor inside the support)."""
        out = []
        for j, table in enumerate(completed):
            rng = np.random.default_rng([int(seed), j, 0x9E3779B9])
            table = table.copy()
            for name in names:
                donors = self.donors_[name]
                miss = plain[name].isna().to_numpy()
                values = table[name].to_numpy(dtype=np.float64).copy()
                if nearest:
                    low, high = self.support_[name]
                    miss = miss & ((values < low) | (values > high))
                if not miss.any():
                    continue
                wanted = values[miss]
                k = 1 if nearest else min(_PMM_DONORS, len(donors))
                # The k donors closest to each draw: a window of the sorted donors.
                at = np.searchsorted(donors, wanted)
                start = np.clip(at - k, 0, len(donors) - k)
                window = start[:, None] + np.arange(2 * k)[None, :]
                window = np.clip(window, 0, len(donors) - 1)
                distance = np.abs(donors[window] - wanted[:, None])
                closest = np.take_along_axis(window, np.argsort(distance, axis=1)[:, :k], axis=1)
                pick = closest[np.arange(len(wanted)), rng.integers(0, k, len(wanted))]
                values[miss] = donors[pick]
                table[name] = pd.Series(values, index=table.index).astype(table[name].dtype)
            out.append(table)
        return out

    def fit_transform(self, X: Any, y: Any = None, **kwargs: Any) -> Any:
        """``fit(X)`` then ``transform(X, **kwargs)``."""
        return self.fit(X, y).transform(X, **kwargs)

    def _conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        if set(frame.columns) != set(self.columns_) or len(frame.columns) != len(self.columns_):
            missing = [c for c in self.columns_ if c not in frame.columns]
            extra = [c for c in frame.columns if c not in self.columns_]
            raise ValueError(
                "X has other columns than the fitted ones: "
                f"missing {missing}, unexpected {extra}; fitted columns {self.columns_}"
            )
        frame = frame[self.columns_]
        for name in self.columns_:
            _check_text_in_numbers(name, frame[name])
            if name in self.categories_:
                unseen = set(frame[name].dropna().unique()) - self.categories_[name]
                if unseen:
                    raise ValueError(
                        f"unseen categor{'y' if len(unseen) == 1 else 'ies'} "
                        f"{', '.join(map(repr, sorted(map(str, unseen))))} in column {name!r}; "
                        f"fit saw {', '.join(map(repr, sorted(map(str, self.categories_[name]))))}"
                    )
        return frame

    def _assemble(self, frame: pd.DataFrame, part: pd.DataFrame) -> pd.DataFrame:
        """The input with its modelled columns from ``part`` and constants filled in."""
        out = frame.copy()
        for name in self.columns_:
            original = frame[name]
            if not original.isna().any():
                continue  # fully observed: the input's column, dtype and all
            if name in self.constant_:
                filled = original.fillna(self.constant_[name])
            else:
                filled = part[name].set_axis(frame.index)
            out[name] = _restore_dtype(filled, original.dtype)
        return out


_SUPPORTS = ("truncate", "pmm", None)
#: Proposals per row before ``support="truncate"`` gives up on a cell.
_MAX_ROUNDS = 200
#: At most this many rows proposed in one round of ``support="truncate"`` (memory).
_MAX_PROPOSALS = 1_000_000
#: Donors per imputed value in predictive mean matching (mice's default).
_PMM_DONORS = 5


def _bootstrap_refit(job: tuple) -> Any:
    """One bootstrap refit ``(refit settings, resampled table, seed)`` (a parallel map's job)."""
    from ppgen.infer import fit

    refit, table, seed = job
    return fit(
        refit["spec"],
        table,
        method=refit["method"],
        seed=int(seed),
        schema=refit["schema"],
        progress=False,
        **refit["options"],
    )


def _supports(schema: Any, frame: pd.DataFrame) -> tuple[dict, dict]:
    """Support ``[0, inf)`` of continuous columns observed >= 0, and every continuous column's
    sorted observed values (the donors of predictive mean matching)."""
    support, donors = {}, {}
    for column in schema.columns:
        if column.kind != "continuous" or column.transform is not None:
            continue  # other kinds keep their support by their model and decoding
        observed = pd.to_numeric(frame[column.name], errors="coerce").dropna()
        values = np.sort(observed.to_numpy(dtype=np.float64))
        donors[column.name] = values
        if values[0] >= 0:
            support[column.name] = (0.0, math.inf)
    return support, donors


def _outside_column(table: pd.DataFrame, plain: pd.DataFrame, name: str, support: dict) -> bool:
    """Whether an imputed entry of column ``name`` lies outside its support."""
    low, high = support[name]
    values = table[name].to_numpy(dtype=np.float64)
    return bool((plain[name].isna().to_numpy() & ((values < low) | (values > high))).any())


def _as_frame(X: Any) -> tuple[pd.DataFrame, str]:
    """Any table as a DataFrame, and the input's type."""
    if isinstance(X, pd.DataFrame):
        return X, "dataframe"
    kind = "ndarray"
    try:
        import torch

        if isinstance(X, torch.Tensor):
            X, kind = X.detach().cpu().numpy(), "tensor"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"X must be a 2-D table, got shape {array.shape}")
    return pd.DataFrame(array, columns=[f"x{j}" for j in range(array.shape[1])]), kind


def _as_input_type(table: pd.DataFrame, kind: str, like: Any) -> Any:
    if kind == "dataframe":
        return table
    array = table.to_numpy(dtype=np.result_type(np.asarray(like).dtype, np.float64))
    if kind == "tensor":
        import torch

        return torch.as_tensor(array, dtype=like.dtype if like.is_floating_point() else None).to(
            like.device
        )
    return array


def _check_text_in_numbers(name: Any, values: pd.Series) -> None:
    """Object columns that hold numbers and a little text are a data-entry problem."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    ):
        return
    observed = values.dropna()
    numeric = pd.to_numeric(observed, errors="coerce")
    bad = observed[numeric.isna()]
    if numeric.notna().any() and len(bad):
        shown = ", ".join(map(repr, list(dict.fromkeys(map(str, bad)))[:5]))
        raise ValueError(
            f"column {name!r} holds numbers and text ({shown}); convert such entries to "
            "missing values first, e.g. with pd.to_numeric(errors='coerce') or read_csv's "
            "na_values"
        )


def _plain_floats(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable numeric columns (Int64, Float64) with missing entries as float64 with NaN.

    The completed values are cast back by :func:`_restore_dtype`; until then a nullable integer
    column cannot hold the draws of a column modelled as continuous.
    """
    nullable = [
        c
        for c in frame.columns
        if isinstance(frame[c].dtype, pd.api.extensions.ExtensionDtype)
        and pd.api.types.is_numeric_dtype(frame[c].dtype)
        and not pd.api.types.is_bool_dtype(frame[c].dtype)
        and frame[c].isna().any()
    ]
    if not nullable:
        return frame
    return frame.astype(dict.fromkeys(nullable, "float64"))


def _restore_dtype(values: pd.Series, dtype: Any) -> pd.Series:
    """Cast imputed values back to the input column's dtype (integers are rounded)."""
    if values.dtype == dtype:
        return values
    if pd.api.types.is_integer_dtype(dtype) and pd.api.types.is_float_dtype(values.dtype):
        values = values.round()
    try:
        return values.astype(dtype)
    except (TypeError, ValueError):
        return values
