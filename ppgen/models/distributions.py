"""Distributions the models need and Pyro does not ship.

* :class:`WishartPrecision` -- a Wishart prior on a precision matrix whose support has a
  bijection to unconstrained space, so that NUTS and Pyro's autoguides can use it.
* :class:`MaskedMultivariateNormal` -- a multivariate normal whose ``log_prob`` is the exact
  marginal density of each row's observed entries.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import biject_to, constraints, transform_to
from torch.distributions.transforms import Transform

__all__ = ["MaskedMultivariateNormal", "WishartPrecision", "positive_definite_bijective"]


def _dim_from_vector_length(m: int) -> int:
    d = int(round((math.sqrt(8 * m + 1) - 1) / 2))
    if d * (d + 1) // 2 != m:
        raise ValueError(f"a vector of length {m} is not the lower triangle of a square matrix")
    return d


class _PositiveDefiniteBijective(constraints._PositiveDefinite):
    """Positive definite matrices, with a registered bijection (torch registers none)."""


positive_definite_bijective = _PositiveDefiniteBijective()


class VectorToPositiveDefinite(Transform):
    """Map the d(d+1)/2 free entries of a Cholesky factor (log-diagonal) to ``L @ L.T``.

    The log-Jacobian is ``d log 2 + sum_i (d - i + 2) log L_ii`` (i counted from 1): the exp on the
    diagonal contributes ``sum log L_ii`` and the map ``L -> L L^T`` contributes
    ``d log 2 + sum_i (d - i + 1) log L_ii``.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = positive_definite_bijective
    bijective = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VectorToPositiveDefinite)

    def _tril(self, v: torch.Tensor) -> torch.Tensor:
        d = _dim_from_vector_length(v.shape[-1])
        rows, cols = torch.tril_indices(d, d, device=v.device)
        L = v.new_zeros(v.shape[:-1] + (d, d))
        L[..., rows, cols] = v
        diag = L.diagonal(dim1=-2, dim2=-1)
        return L - torch.diag_embed(diag) + torch.diag_embed(diag.exp())

    def _call(self, v: torch.Tensor) -> torch.Tensor:
        L = self._tril(v)
        return L @ L.mT

    def _inverse(self, P: torch.Tensor) -> torch.Tensor:
        L = torch.linalg.cholesky(P)
        d = L.shape[-1]
        L = (
            L
            - torch.diag_embed(L.diagonal(dim1=-2, dim2=-1))
            + torch.diag_embed(L.diagonal(dim1=-2, dim2=-1).log())
        )
        rows, cols = torch.tril_indices(d, d, device=P.device)
        return L[..., rows, cols]

    def log_abs_det_jacobian(self, v: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
        d = _dim_from_vector_length(v.shape[-1])
        rows, cols = torch.tril_indices(d, d, device=v.device)
        log_diag = v[..., rows == cols]
        weights = torch.arange(d + 1, 1, -1, device=v.device, dtype=v.dtype)
        return d * math.log(2.0) + (weights * log_diag).sum(-1)

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        d = _dim_from_vector_length(shape[-1])
        return shape[:-1] + (d, d)

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        d = shape[-1]
        return shape[:-2] + (d * (d + 1) // 2,)


@biject_to.register(_PositiveDefiniteBijective)
@transform_to.register(_PositiveDefiniteBijective)
def _to_positive_definite(constraint: _PositiveDefiniteBijective) -> Transform:
    return VectorToPositiveDefinite()


class WishartPrecision(dist.Wishart):
    """Wishart distribution on a precision matrix, usable by NUTS and autoguides.

    Identical to :class:`pyro.distributions.Wishart` except that its support carries a bijection
    to unconstrained space.
    """

    support = positive_definite_bijective


def _cholesky_log_density(
    x: torch.Tensor, loc: torch.Tensor, precision_tril: torch.Tensor
) -> torch.Tensor:
    """log N(x | loc, (L L^T)^-1) from the Cholesky factor L of the precision matrix."""
    d = x.shape[-1]
    if precision_tril.dim() == 3 and loc.dim() <= 2 and x.dim() > 2 and x.shape[-2] == 1:
        # Rows (..., 1, d) scored under K states with factors (K, d, d): x L_k - loc_k L_k for all
        # k is one (rows, d) @ (d, K d) product; a 1 x d @ d x d matmul per row and state, or
        # forming the (..., K, d) differences first, is two to several times slower.
        K = precision_tril.shape[0]
        stacked = precision_tril.permute(1, 0, 2).reshape(d, K * d)
        shift = torch.einsum("kd,kde->ke", loc.expand(K, d), precision_tril)
        white = (x.squeeze(-2) @ stacked).unflatten(-1, (K, d)) - shift
    elif precision_tril.dim() == x.dim() + 1 and precision_tril.shape[-3] == 1:
        # One factor shared by all rows (a mixture component): one matmul, not one per row.
        white = (x - loc) @ precision_tril.squeeze(-3)
    else:
        white = ((x - loc).unsqueeze(-2) @ precision_tril).squeeze(-2)
    # A matrix-vector product with ones: torch's reduction over a short last axis is ~10x slower.
    maha = (white * white) @ white.new_ones(d)
    logdet = precision_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return logdet - 0.5 * maha - 0.5 * d * math.log(2 * math.pi)


class MaskedMultivariateNormal(dist.TorchDistribution):
    """Multivariate normal, parameterized by its precision matrix, that skips missing entries.

    ``log_prob(x)`` is the exact log density of each row's observed entries under the marginal
    N(loc_o, Sigma_oo). Rows with missing entries are handled without a loop over missingness
    patterns: missing rows and columns of the covariance are replaced by the identity and the
    missing entries by the mean, which leaves ``det Sigma_oo`` and the observed Mahalanobis
    distance unchanged; the standard-normal factor of each missing entry is then removed.

    Parameters
    ----------
    loc : Tensor, shape (..., d)
    precision_matrix : Tensor, shape (..., d, d)
    obs_mask : Tensor of bool, shape (n, d) or None
        True where the entry is observed. Must match the rows of the value scored.
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "precision_matrix": constraints.positive_definite,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        precision_matrix: torch.Tensor,
        obs_mask: torch.Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        batch_shape = torch.broadcast_shapes(loc.shape[:-1], precision_matrix.shape[:-2])
        if obs_mask is not None:
            batch_shape = torch.broadcast_shapes(batch_shape, obs_mask.shape[:-1])
        d = loc.shape[-1]
        # Parameters keep their own (smaller) batch shapes: expanding the precision to one
        # matrix per row would make every Cholesky factorization n times as expensive.
        self.loc = loc
        self.precision_matrix = precision_matrix
        self.obs_mask = obs_mask
        super().__init__(batch_shape, torch.Size([d]), validate_args=False)

    def expand(self, batch_shape, _instance=None):  # noqa: ANN001, ANN201 (torch signature)
        # Only the batch shape and the mask grow; the parameters broadcast when used, so that
        # Pyro's plates do not make one Cholesky factorization per row.
        new = self._get_checked_instance(MaskedMultivariateNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc, new.precision_matrix = self.loc, self.precision_matrix
        new.obs_mask = (
            None if self.obs_mask is None else self.obs_mask.expand(batch_shape + self.event_shape)
        )
        super(MaskedMultivariateNormal, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        return new

    @property
    def mean(self) -> torch.Tensor:
        return self.loc.expand(self.batch_shape + self.event_shape)

    @property
    def covariance_matrix(self) -> torch.Tensor:
        return torch.cholesky_inverse(torch.linalg.cholesky(self.precision_matrix))

    def rsample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        # x = loc + L^-T eps has covariance (L L^T)^-1 when L is the precision's Cholesky factor.
        L = torch.linalg.cholesky(self.precision_matrix)
        z = torch.linalg.solve_triangular(L.mT, eps.unsqueeze(-1), upper=True).squeeze(-1)
        return self.loc + z

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        mask = self.obs_mask
        if mask is None or bool(mask.all()):
            return _cholesky_log_density(
                value, self.loc, torch.linalg.cholesky(self.precision_matrix)
            )
        shape = torch.broadcast_shapes(value.shape, self.loc.shape, mask.shape)
        mask = mask.expand(shape)
        loc = self.loc.expand(shape)
        value = torch.where(mask, value.expand(shape), loc)
        cov = self.covariance_matrix.expand(shape + shape[-1:])
        both = mask.unsqueeze(-1) & mask.unsqueeze(-2)
        eye = torch.eye(shape[-1], dtype=cov.dtype, device=cov.device)
        cov = torch.where(both, cov, eye)
        tril = torch.linalg.cholesky(cov)
        diff = torch.linalg.solve_triangular(tril, (value - loc).unsqueeze(-1), upper=False)
        maha = diff.squeeze(-1).pow(2).sum(-1)
        logdet = tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        n_obs = mask.sum(-1).to(value.dtype)
        return -0.5 * maha - logdet - 0.5 * n_obs * math.log(2 * math.pi)
