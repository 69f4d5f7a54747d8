"""A Pyro program's log joint density as a function of a flat unconstrained vector, over chains.

:class:`Potential` traces the program once to find its latent sample sites (those not observed),
maps each to the real line with ``torch.distributions.biject_to(site["fn"].support)`` (the same
transforms as Pyro's own HMC), and evaluates the log joint, plus the log-Jacobian of the
transforms, at every chain's vector at once. The program runs unchanged: ``torch.func.vmap``
maps it over the chains, so a user's ``X @ beta`` model is vectorized without rewriting it.
When ``vmap`` cannot run the program (data-dependent Python control flow, in-place writes,
``.item()``), the chains are evaluated one after another, with a warning saying why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to

__all__ = ["Potential", "VectorizationWarning"]


class VectorizationWarning(UserWarning):
    """A model's log density could not be vectorized over chains: chains run one at a time."""


class Potential:
    """The log joint of ``program(*args, **kwargs)`` over its continuous latent sites.

    Parameters
    ----------
    program : callable
        A Pyro program; observed sites (``obs=``) are the data, every other ``pyro.sample``
        site is a latent variable to sample. Discrete latent sites are not supported.
    args, kwargs
        Its arguments, fixed for every evaluation.
    vectorize : bool
        Try ``torch.func.vmap`` over chains (default); False evaluates chains one at a time.

    Attributes
    ----------
    names, shapes, sizes : lists
        Each latent site's name, shape and number of scalars, in the flat vector's order.
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
        if discrete:
            raise ValueError(
                f"latent sites {discrete} are discrete; batched HMC samples continuous latents "
                "only: sum them out in the model (e.g. a mixture's log-sum-exp) or use "
                "Pyro's NUTS with enumeration"
            )
        self.names = list(latent)
        self.transforms = {n: biject_to(s["fn"].support) for n, s in latent.items()}
        self.shapes = [tuple(latent[n]["value"].shape) for n in self.names]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.dim = sum(self.sizes)
        first = latent[self.names[0]]["value"]
        self.dtype, self.device = first.dtype, first.device
        self._initial = {n: latent[n]["value"].detach() for n in self.names}
        self.vectorized: bool | None = None if vectorize else False
        self._batched = torch.func.vmap(self._one)

    # -- flat vector <-> sites -------------------------------------------------------------------
    def unflatten(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``u (..., dim)`` into the sites' unconstrained values ``(..., *shape)``."""
        batch = u.shape[:-1]
        parts = torch.split(u, self.sizes, dim=-1)
        return {
            n: p.reshape(batch + s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)
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
        trace = poutine.trace(poutine.condition(self.program, values)).get_trace(
            *self.args, **self.kwargs
        )
        total = log_jac
        for site in trace.nodes.values():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            log_p = site["fn"].log_prob(site["value"])
            total = total + scale_and_mask(log_p, site["scale"], site["mask"]).sum()
        return total

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """Log density at every chain's vector: ``u (chains, dim) -> (chains,)``."""
        # Validation checks branch on tensor values, which vmap cannot do; the support is
        # respected by construction (every value comes through its site's transform).
        with pyro.validation_enabled(False):
            if self.vectorized is None:
                try:
                    out = self._batched(u)
                except Exception as exc:  # noqa: BLE001 - any failure means: loop instead
                    warnings.warn(
                        "the model could not be vectorized over chains with torch.func.vmap "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); its log "
                        "density is evaluated one chain at a time, about as many times slower "
                        "as there are chains. Avoid Python branches on tensor values, .item() "
                        "and in-place writes in the model to vectorize it.",
                        VectorizationWarning,
                        stacklevel=3,
                    )
                    self.vectorized = False
                else:
                    self.vectorized = True
                    return out
            if self.vectorized:
                return self._batched(u)
            return torch.stack([self._one(v) for v in u])
