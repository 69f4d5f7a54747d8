"""A Pyro program's log joint density as a function of a flat unconstrained vector, over chains.

:class:`Potential` traces the program once to find its latent sample sites (those not observed),
maps each to the real line with ``torch.distributions.biject_to(site["fn"].support)`` (the same
transforms as Pyro's own HMC), and evaluates the log joint, plus the log-Jacobian of the
transforms, at every chain's vector at once. The program runs unchanged: ``torch.func.vmap``
maps it over the chains, so a user's ``X @ beta`` model is vectorized without rewriting it.
When ``vmap`` cannot run the program (data-dependent Python control flow, in-place writes,
``.item()``), the chains are evaluated one after another, with a warning saying why.

Samplers ask for the log density and its gradient together (:meth:`Potential.value_and_grad`).
Once ``vmap`` is known to run the program, that function is **compiled** for each batch size:
:mod:`ppgen.infer._record` records the ATen operations of the vmapped log joint and of its
backward pass once (Pyro's trace, the poutines, the transforms and the distributions' Python
all run only then), and ``torch.jit.trace`` turns the recording into a TorchScript function, so
a leapfrog step costs the tensor operations alone (eight schools, 64 chains: 2.4 ms per
gradient through Pyro, 0.2 ms compiled; the same numbers). This is exact, not an
approximation: a program ``vmap`` can run has no Python branch on the latent values (vmap
refuses them), so the recorded operations are those of every evaluation; the compiled result
is checked against the program's at its first point, and any failure (an exception in a
compiled call, say a Cholesky factorization far out in a trajectory) falls back to the program
itself for that call.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.distributions.util import scale_and_mask
from pyro.infer import config_enumerate
from pyro.poutine.enum_messenger import EnumMessenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to

from ppgen.infer._record import compile_function

__all__ = ["Potential", "VectorizationWarning"]


class VectorizationWarning(UserWarning):
    """A model's log density could not be vectorized over chains: chains run one at a time."""


class Potential:
    """The log joint of ``program(*args, **kwargs)`` over its continuous latent sites.

    Parameters
    ----------
    program : callable
        A Pyro program; observed sites (``obs=``) are the data, every other ``pyro.sample``
        site is a latent variable to sample. Discrete latent sites with a finite support are
        summed out (one enumeration dimension: independent given the continuous latents, as a
        mixture's assignments).
    args, kwargs
        Its arguments, fixed for every evaluation.
    vectorize : bool
        Try ``torch.func.vmap`` over chains (default); False evaluates chains one at a time.
    compile : bool
        Compile :meth:`value_and_grad` once vmap runs the program (default; see the module's
        docstring). False: every evaluation runs the Pyro program.

    Attributes
    ----------
    names, shapes, free_shapes, sizes : lists
        Each continuous latent site's name, shape, unconstrained shape and number of
        unconstrained scalars, in the flat vector's order.
    dim : int
        Length of the flat unconstrained vector.
    dtype, device
        Those of the traced latent values (they follow the program's tensors, i.e. the data).
    vectorized : bool or None
        Whether ``vmap`` is in use (None before the first evaluation).
    """

    def __init__(
        self,
        program: Callable,
        args: tuple = (),
        kwargs: dict[str, Any] | None = None,
        *,
        vectorize: bool = True,
        compile: bool = True,
    ) -> None:
        self.program, self.args, self.kwargs = program, tuple(args), dict(kwargs or {})
        with pyro.validation_enabled(False), torch.no_grad():
            trace = poutine.trace(program).get_trace(*self.args, **self.kwargs)
        latent = {
            name: site
            for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
        }
        if not latent:
            raise ValueError("the model has no latent sample sites to sample (all are observed)")
        discrete = [n for n, s in latent.items() if s["fn"].support.is_discrete]
        not_enumerable = [n for n in discrete if not latent[n]["fn"].has_enumerate_support]
        if not_enumerable:
            raise ValueError(
                f"latent sites {not_enumerable} are discrete without a finite support; batched "
                "HMC samples continuous latents and sums out finite discrete ones only"
            )
        # Discrete latents are summed out, as Pyro's HMC does: enumerated in parallel in a
        # dimension left of every plate, then a log-sum-exp over it.
        self.enumerated = bool(discrete)
        if discrete:
            self.max_plate_nesting = _max_plate_nesting(trace)
            self._enum_dim = -self.max_plate_nesting - 1
            self._run = _VmapEnum(first_available_dim=self._enum_dim)(
                config_enumerate(program, default="parallel")
            )
            with pyro.validation_enabled(False), torch.no_grad():
                enum_trace = poutine.trace(self._run).get_trace(*self.args, **self.kwargs)
            dims = {
                site["infer"].get("_enumerate_dim")
                for site in enum_trace.nodes.values()
                if site["type"] == "sample" and site["infer"].get("_enumerate_dim") is not None
            }
            if len(dims) > 1:
                raise ValueError(
                    f"latent sites {discrete} need {len(dims)} enumeration dimensions; batched "
                    "HMC sums out discrete sites that are independent given the continuous "
                    "ones (one enumeration dimension): integrate the others out in the model"
                )
            for name in discrete:
                del latent[name]
        else:
            self._run = program
        if not latent:
            raise ValueError("the model has no continuous latent sites to sample")
        self.names = list(latent)
        self.transforms = {n: biject_to(s["fn"].support) for n, s in latent.items()}
        self.shapes = [tuple(latent[n]["value"].shape) for n in self.names]
        # Unconstrained shapes differ for constrained events (a simplex of K has K - 1 values).
        self.free_shapes = [
            tuple(self.transforms[n].inverse_shape(torch.Size(s)))
            for n, s in zip(self.names, self.shapes, strict=True)
        ]
        self.sizes = [math.prod(s) for s in self.free_shapes]
        self.dim = sum(self.sizes)
        first = latent[self.names[0]]["value"]
        self.dtype, self.device = first.dtype, first.device
        self._initial = {n: latent[n]["value"].detach() for n in self.names}
        self.vectorized: bool | None = None if vectorize else False
        self._batched = torch.func.vmap(self._one)
        # Compiled value-and-gradient functions by (batch size, dtype, device); None where
        # compiling failed. Batches are padded up to a compiled size (see _bucket).
        self.compile = bool(compile) and vectorize
        self._compiled: dict[tuple, Callable | None] = {}
        self._largest = 0

    # -- flat vector <-> sites -------------------------------------------------------------------
    def unflatten(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``u (..., dim)`` into the sites' unconstrained values ``(..., *shape)``."""
        batch = u.shape[:-1]
        parts = torch.split(u, self.sizes, dim=-1)
        return {
            n: p.reshape(batch + s)
            for n, p, s in zip(self.names, parts, self.free_shapes, strict=True)
        }

    def constrain(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """The sites' values on their own support, from unconstrained ``u (..., dim)``."""
        return {n: self.transforms[n](v) for n, v in self.unflatten(u).items()}

    def unconstrain(self, values: dict[str, Any]) -> torch.Tensor:
        """The flat unconstrained vector of sites' values (missing sites: the traced draw)."""
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            raise ValueError(f"init has unknown sites {unknown}; the latent sites are {self.names}")
        parts = []
        for n, s in zip(self.names, self.shapes, strict=True):
            v = values.get(n, self._initial[n])
            v = torch.as_tensor(v, dtype=self.dtype, device=self.device)
            if tuple(v.shape) != s:
                raise ValueError(f"init[{n!r}] has shape {tuple(v.shape)}, expected {s}")
            parts.append(self.transforms[n].inv(v).reshape(-1))
        return torch.cat(parts)

    # -- log density -----------------------------------------------------------------------------
    def _one(self, u: torch.Tensor) -> torch.Tensor:
        """Log joint plus log-Jacobian at one unconstrained vector ``u (dim,)``."""
        values, log_jac = {}, u.new_zeros(())
        for n, v in self.unflatten(u).items():
            t = self.transforms[n]
            c = t(v)
            values[n] = c
            log_jac = log_jac + t.log_abs_det_jacobian(v, c).sum()
        trace = poutine.trace(poutine.condition(self._run, values)).get_trace(
            *self.args, **self.kwargs
        )
        total, enum = log_jac, None
        for site in trace.nodes.values():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            log_p = scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"])
            if (
                self.enumerated
                and log_p.dim() >= -self._enum_dim
                and log_p.shape[self._enum_dim] > 1
            ):
                enum = log_p if enum is None else enum + log_p  # factors over the discrete site
            else:
                total = total + log_p.sum()
        if enum is not None:
            total = total + enum.logsumexp(self._enum_dim).sum()
        return total

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """Log density at every chain's vector: ``u (chains, dim) -> (chains,)``.

        A chain where the model raises (a Cholesky factorization failing far out in a
        trajectory, say) gets NaN, which the sampler rejects, instead of stopping every chain.
        """
        # Validation checks branch on tensor values, which vmap cannot do; the support is
        # respected by construction (every value comes through its site's transform).
        with pyro.validation_enabled(False):
            if self.vectorized is False:
                return self._loop(u)
            try:
                out = self._batched(u)
            except Exception as exc:  # noqa: BLE001 - see below
                out = self._loop(u)
                if self.vectorized is None:
                    self._check_vmap(u, out, exc)
                return out
            self.vectorized = True
            return out

    def value_and_grad(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log density ``(chains,)`` and its gradient ``(chains, dim)`` at ``u (chains, dim)``,
        both detached: the compiled function when there is one (see the module's docstring),
        else the program with autograd."""
        if self.compile and self.vectorized and u.dim() == 2 and u.shape[0] > 0:
            n = u.shape[0]
            self._largest = max(self._largest, n)
            size = self._bucket(n)
            key = (size, u.dtype, u.device)
            if key not in self._compiled:
                self._compiled[key] = self._compile(u, size)
            fn = self._compiled[key]
            if fn is not None:
                padded = u.detach()
                if size > n:  # copies of the first row: finite, and their results dropped
                    padded = torch.cat([padded, padded[:1].expand(size - n, -1)])
                try:
                    lp, g = fn(padded)
                except Exception:  # noqa: BLE001 - the program itself decides, below
                    pass
                else:
                    return lp[:n], g[:n]
        return self._autograd(u)

    def _autograd(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            u = u.detach().requires_grad_(True)
            lp = self(u)
            (g,) = torch.autograd.grad(lp.sum(), u)
        return lp.detach(), g

    def _bucket(self, n: int) -> int:
        """The batch size ``n`` rows are evaluated at: the largest batch seen (the number of
        chains) while ``n`` is more than half of it or the batch is small (16 rows cost about
        what one does), else the next power of two, so that a sampler evaluating varying
        subsets of many chains compiles O(log chains) functions."""
        if 2 * n > self._largest or self._largest <= 16:
            return self._largest
        return 1 << (n - 1).bit_length()

    def _compile(self, u: torch.Tensor, size: int) -> Callable | None:
        """The compiled ``u (size, dim) -> (log density, gradient)``, or None if recording or
        checking it fails (the program then runs at every call)."""
        x = u.detach()
        if size > x.shape[0]:
            x = torch.cat([x, x[:1].expand(size - x.shape[0], -1)])
        try:
            with pyro.validation_enabled(False):
                _, fn = compile_function(self._autograd, x)
                if getattr(fn, "checks", False):
                    # A recording with checks (a Cholesky factorization's error check) is not
                    # compiled: the Python replay keeps the check, but on a full-covariance
                    # mixture it ran 12x slower than the program with 40 divergences where the
                    # program has none (faithful, 16 chains); the program runs instead.
                    return None
                lp, g = fn(x)
            ref_lp, ref_g = self._autograd(x)
        except Exception:  # noqa: BLE001 - any failure means: run the program
            return None
        same = torch.allclose(lp, ref_lp, rtol=1e-9, atol=1e-12, equal_nan=True)
        if not (same and torch.allclose(g, ref_g, rtol=1e-9, atol=1e-12, equal_nan=True)):
            return None
        return fn

    def _loop(self, u: torch.Tensor) -> torch.Tensor:
        """One chain at a time; NaN for chains where the model raises."""
        values = []
        for v in u:
            try:
                values.append(self._one(v))
            except (RuntimeError, ValueError):
                values.append(v.sum() * math.nan)  # in the graph: its gradient is NaN too
        return torch.stack(values)

    def _check_vmap(self, u: torch.Tensor, looped: torch.Tensor, exc: Exception) -> None:
        """After vmap failed on a first call: if it fails on the chains the loop could evaluate
        as well, the model cannot be vectorized (warn once and loop from now on)."""
        fine = looped.isfinite()
        if fine.any():
            try:
                self._batched(u[fine])
            except Exception:  # noqa: BLE001 - any failure means: loop instead
                pass
            else:
                self.vectorized = True
                return
        self.vectorized = False
        warnings.warn(
            "the model could not be vectorized over chains with torch.func.vmap "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); its log density is "
            "evaluated one chain at a time, about as many times slower as there are chains. "
            "Avoid Python branches on tensor values, .item() and in-place writes in the model "
            "to vectorize it.",
            VectorizationWarning,
            stacklevel=4,
        )


def _max_plate_nesting(trace: Any) -> int:
    """How many plates nest at most in ``trace`` (as Pyro guesses it for HMC)."""
    dims = [
        frame.dim
        for site in trace.nodes.values()
        if site["type"] == "sample"
        for frame in site["cond_indep_stack"]
        if frame.vectorized
    ]
    return -min(dims) if dims else 0


class _VmapEnum(EnumMessenger):
    """Pyro's parallel enumeration, runnable under ``torch.func.vmap``: Pyro's own reads
    ``value.data.shape``, which vmap forbids; ``value.shape`` is the same shape."""

    def _pyro_post_sample(self, msg: Any) -> None:
        if not isinstance(msg["fn"], TorchDistributionMixin) or msg["value"] is None:
            return
        value = msg["value"]
        shape = value.shape[: value.dim() - msg["fn"].event_dim]
        dim_to_id = msg["infer"].setdefault("_dim_to_id", {})
        dim_to_id.update(self._param_dims.get(msg["name"], {}))
        self._value_dims[msg["name"]] = {
            dim: id_ for dim, id_ in dim_to_id.items() if len(shape) >= -dim and shape[dim] > 1
        }
