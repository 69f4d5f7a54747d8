"""Distributions the models need and Pyro does not ship.

* :class:`WishartPrecision` -- a Wishart prior on a precision matrix whose support has a
  bijection to unconstrained space, so that NUTS and Pyro's autoguides can use it.
* :class:`MaskedMultivariateNormal` -- a multivariate normal whose ``log_prob`` is the exact
  marginal density of each row's observed entries.
* :func:`condition_on_precision` -- the conditional Gaussian of each row's missing entries given
  its observed ones (:class:`GaussianConditional`), from which that marginal density also follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro.distributions as dist
import torch
from torch.distributions import biject_to, constraints, transform_to
from torch.distributions.transforms import Transform

__all__ = [
    "GaussianConditional",
    "MaskedMultivariateNormal",
    "WishartPrecision",
    "condition_on_precision",
    "positive_definite_bijective",
]


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


def _broadcast(a: torch.Size, b: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes(a, b)`` for two shapes: torch's goes through its Python
    reference implementation (~0.1 ms a call), a sizeable share of a small EM iteration."""
    if a == b:
        return torch.Size(a)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for i, j in zip(a, b, strict=True):
        if i != j and i != 1 and j != 1:
            raise RuntimeError(f"shapes {a} and {b} do not broadcast")
        out.append(j if i == 1 else i)
    return torch.Size(out)


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
        # einsum broadcasts the factors without copying them per row; a broadcasting matmul
        # materializes one d x d copy per row (4-5x slower with K factors).
        white = torch.einsum("...i,...ij->...j", x - loc, precision_tril)
    # A matrix-vector product with ones: torch's reduction over a short last axis is ~10x slower.
    maha = (white * white) @ white.new_ones(d)
    logdet = precision_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return logdet - 0.5 * maha - 0.5 * d * math.log(2 * math.pi)


def _missing_columns(miss: torch.Tensor) -> torch.Tensor:
    """Each row's missing columns in increasing order, padded with ``d``: (..., r), r the most
    entries any row misses. Increasing order makes the Cholesky factor of a row's missing block
    the same as that of the d x d matrix holding the block in place and the identity elsewhere,
    so draws made with either factor agree."""
    d = miss.shape[-1]
    n_miss = miss.sum(-1, keepdim=True)
    r = int(n_miss.max()) if miss.numel() else 0
    # A stable sort of the observed flags puts the missing columns first, in their order.
    order = torch.sort((~miss).to(torch.uint8), dim=-1, stable=True).indices[..., :r]
    valid = torch.arange(r, device=miss.device) < n_miss
    return torch.where(valid, order, d)


def _scatter(values: torch.Tensor, index: torch.Tensor, d: int) -> torch.Tensor:
    """(..., r) values placed at columns ``index`` of a zero (..., d) row; index d is dropped."""
    shape = torch.broadcast_shapes(values.shape, index.shape)
    out = values.new_zeros(shape[:-1] + (d + 1,))
    return out.scatter(-1, index.expand(shape), values.expand(shape))[..., :d]


@dataclass(frozen=True)
class GaussianConditional:
    """The missing entries of rows given their observed ones, under N(loc, precision^-1).

    For a row with missing block m and observed block o, x_m | x_o is Gaussian with precision
    ``Lambda_mm`` and mean ``loc_m - Lambda_mm^-1 Lambda_mo (x_o - loc_o)``. Made by
    :func:`condition_on_precision`; rows with different missingness patterns share one batch.

    Attributes
    ----------
    mean : Tensor, shape (..., d)
        Observed entries equal to ``x``, missing ones their conditional mean.
    index : Tensor of int64, shape (..., r)
        Each row's missing columns in increasing order, padded with ``d`` (r: the most entries
        any row misses).
    tril : Tensor, shape (..., r, r)
        Cholesky factor of each row's ``Lambda_mm`` (the identity on the padding).
    loc, precision : Tensor
        The Gaussian conditioned, with their own batch shapes.
    """

    mean: torch.Tensor
    index: torch.Tensor
    tril: torch.Tensor
    loc: torch.Tensor
    precision: torch.Tensor

    def log_marginal(self, precision_tril: torch.Tensor | None = None) -> torch.Tensor:
        """log N(x_o | loc_o, Sigma_oo) of each row's observed entries, shape (...).

        ``p(x_o) = p(x_o, x_m) / p(x_m | x_o)`` at ``x_m`` = its conditional mean, where the
        conditional density is ``(2 pi)^(-|m|/2) det(Lambda_mm)^(1/2)``: the joint density of
        the completed row (a sum of squares, no Schur-complement cancellation) with the
        factorization already made for the conditional, and no factorization of ``Sigma_oo``.
        ``precision_tril`` is the Cholesky factor of ``precision``, if already at hand.
        """
        if precision_tril is None:
            precision_tril = torch.linalg.cholesky(self.precision)
        d = self.mean.shape[-1]
        n_miss = (self.index < d).sum(-1).to(self.mean.dtype)
        half_logdet_mm = self.tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        joint = _cholesky_log_density(self.mean, self.loc, precision_tril)
        return joint - half_logdet_mm + 0.5 * n_miss * math.log(2 * math.pi)

    def covariance(self) -> torch.Tensor:
        """Conditional covariances (..., d, d): ``Lambda_mm^-1`` on the missing block, zero in
        every row and column of an observed entry."""
        d = self.mean.shape[-1]
        cov = torch.cholesky_inverse(self.tril)
        pairs = self._pairs()
        out = cov.new_zeros(cov.shape[:-2] + ((d + 1) ** 2,))
        out = out.scatter(-1, pairs.expand(cov.shape).flatten(-2), cov.flatten(-2))
        return out.unflatten(-1, (d + 1, d + 1))[..., :d, :d]

    def covariance_sum(self, weights: torch.Tensor) -> torch.Tensor:
        """``sum_i weights[..., i] Cov[x_i | x_o]`` over the last batch dim (the rows), shape
        (..., d, d): the E-step's share of the scatter, without any (n, d, d) tensor."""
        d = self.mean.shape[-1]
        cov = torch.cholesky_inverse(self.tril) * weights[..., None, None]
        pairs = self._pairs().expand(cov.shape)
        out = cov.new_zeros(cov.shape[:-3] + ((d + 1) ** 2,))
        out = out.scatter_add(-1, pairs.flatten(-3), cov.flatten(-3))
        return out.unflatten(-1, (d + 1, d + 1))[..., :d, :d]

    def noise(self, eps: torch.Tensor) -> torch.Tensor:
        """``L_mm^-T eps_m`` on each row's missing entries, zero on the observed ones: with
        ``eps`` (..., d) standard normal, a draw of x_m - E[x_m | x_o]."""
        d = self.mean.shape[-1]
        shape = self.tril.shape[:-1]
        eps = torch.nn.functional.pad(eps, (0, 1)).expand(shape[:-1] + (d + 1,))
        white = eps.gather(-1, self.index.expand(shape)).unsqueeze(-1)
        z = torch.linalg.solve_triangular(self.tril.mT, white, upper=True).squeeze(-1)
        return _scatter(z, self.index, d)

    def _pairs(self) -> torch.Tensor:
        """Flat positions in a (d + 1) x (d + 1) matrix of each row's missing block."""
        stride = self.mean.shape[-1] + 1
        return self.index.unsqueeze(-1) * stride + self.index.unsqueeze(-2)


#: Rows from which :func:`condition_on_precision` groups rows by their number of missing entries.
BUCKET_ROWS = 4096


def condition_on_precision(
    x: torch.Tensor, miss: torch.Tensor, loc: torch.Tensor, precision: torch.Tensor
) -> GaussianConditional | BucketedConditional:
    """Gaussian N(loc, precision^-1) conditioned on the entries where ``miss`` is False.

    On tables of at least :data:`BUCKET_ROWS` rows (x and miss (n, d), parameters shared by the
    rows) whose padding would cost more than twice the work of the blocks themselves, the rows
    are grouped by their number of missing entries and each group is padded to its own size
    (:class:`BucketedConditional`, the same methods): at d = 20 and 20% missing the rows miss
    4 entries on average but 12-13 at most, and the r^3 factorizations of padded blocks took
    most of an EM step and of a draw. The per-row arithmetic is that of the padded blocks up
    to rounding (~1e-16).
    """
    rows = _buckets(x, miss, loc, precision)
    if rows is None:
        return _condition_padded(x, miss, loc, precision)
    parts = [_condition_padded(x[r], miss[r], loc, precision) for r in rows]
    n = x.shape[-2]
    return BucketedConditional(_join([p.mean for p in parts], rows, n, -2), rows, parts)


def _buckets(
    x: torch.Tensor, miss: torch.Tensor, loc: torch.Tensor, precision: torch.Tensor
) -> list[torch.Tensor] | None:
    """Row indices of each group of rows with the same number of missing entries (rows missing
    none join the next group), or None where grouping does not pay or does not apply."""
    if x.dim() != 2 or miss.shape != x.shape or x.shape[0] < BUCKET_ROWS:
        return None
    if loc.dim() > 1 and loc.shape[-2] != 1 or precision.dim() > 2 and precision.shape[-3] != 1:
        return None  # parameters per row: the padded path broadcasts them
    counts = miss.sum(-1)
    sizes = torch.bincount(counts).tolist()
    r_max = len(sizes) - 1
    if r_max < 2 or 2 * sum(c * r**3 for r, c in enumerate(sizes)) > len(counts) * r_max**3:
        return None
    order = torch.argsort(counts, stable=True)
    bounds = [r for r in range(1, r_max + 1) if sizes[r]]
    ends = torch.tensor(sizes).cumsum(0).tolist()
    groups, start = [], 0
    for r in bounds:
        groups.append(order[start : ends[r]])
        start = ends[r]
    return groups


def _join(parts: list[torch.Tensor], rows: list[torch.Tensor], n: int, dim: int) -> torch.Tensor:
    """The groups' tensors put back in row order along ``dim`` (their rows' axis)."""
    shape = list(torch.broadcast_shapes(*(p.shape[:dim] + (1,) + p.shape[dim:][1:] for p in parts)))
    shape[dim] = n
    out = parts[0].new_empty(shape)
    for part, index in zip(parts, rows, strict=True):
        out.index_copy_(dim, index, part.expand(shape[:dim] + [len(index)] + shape[dim:][1:]))
    return out


@dataclass(frozen=True)
class BucketedConditional:
    """:class:`GaussianConditional` of rows grouped by their number of missing entries: one
    conditional per group (``parts``, rows ``rows``), with the same methods and results.

    Attributes
    ----------
    mean : Tensor, shape (..., n, d)
        Observed entries equal to ``x``, missing ones their conditional mean, in row order.
    rows : list of Tensor
        The row indices of each group.
    parts : list of GaussianConditional
    """

    mean: torch.Tensor
    rows: list[torch.Tensor]
    parts: list[GaussianConditional]

    def log_marginal(self, precision_tril: torch.Tensor | None = None) -> torch.Tensor:
        """log N(x_o | loc_o, Sigma_oo) of each row's observed entries, shape (..., n)."""
        parts = [p.log_marginal(precision_tril).unsqueeze(-1) for p in self.parts]
        return _join(parts, self.rows, self.mean.shape[-2], -2).squeeze(-1)

    def covariance(self) -> torch.Tensor:
        """Conditional covariances (..., n, d, d), zero at observed entries."""
        parts = [p.covariance() for p in self.parts]
        return _join(parts, self.rows, self.mean.shape[-2], -3)

    def covariance_sum(self, weights: torch.Tensor) -> torch.Tensor:
        """``sum_i weights[..., i] Cov[x_i | x_o]`` over the rows, shape (..., d, d)."""
        return sum(
            p.covariance_sum(weights.index_select(-1, r))
            for p, r in zip(self.parts, self.rows, strict=True)
        )

    def noise(self, eps: torch.Tensor) -> torch.Tensor:
        """``L_mm^-T eps_m`` on each row's missing entries, zero elsewhere (eps (..., n, d))."""
        parts = [
            p.noise(eps.index_select(-2, r)) for p, r in zip(self.parts, self.rows, strict=True)
        ]
        return _join(parts, self.rows, self.mean.shape[-2], -2)


def _condition_padded(
    x: torch.Tensor, miss: torch.Tensor, loc: torch.Tensor, precision: torch.Tensor
) -> GaussianConditional:
    """Gaussian N(loc, precision^-1) conditioned on the entries where ``miss`` is False.

    Batched over leading dims (which broadcast) without grouping rows by missingness pattern:
    each row's missing block ``Lambda_mm`` is gathered into an r x r matrix, r the most entries
    any row misses, padded with the identity -- one small factorization per row (r = 13 of
    d = 30 on breast_cancer at 20% missing, a tenth of the flops), shared by the conditional
    mean, covariance, draws and the marginal density of the observed entries
    (:meth:`GaussianConditional.log_marginal`).
    Values of ``x`` at missing entries are ignored.
    """
    d = x.shape[-1]
    index = _missing_columns(miss)
    shape = torch.broadcast_shapes(x.shape, miss.shape, loc.shape, precision.shape[:-1])
    # Lambda_mm of each row, read from the precision (padded with a zero row and column that
    # the padding indexes): its rows Lambda_m. by index_select from the stacked matrices' rows
    # (never one d x d copy per row), then their columns m; twice as fast as one gather of
    # the r x r entries.
    padded = torch.nn.functional.pad(precision, (0, 1, 0, 1))
    first = torch.arange(padded[..., 0, 0].numel(), device=x.device).view(padded.shape[:-2])
    row_ids = (first * (d + 1)).unsqueeze(-1) + index
    block_rows = padded.reshape(-1, d + 1).index_select(0, row_ids.reshape(-1))
    block_rows = block_rows.view(row_ids.shape + (d + 1,))
    cols = index.unsqueeze(-2).expand(row_ids.shape + index.shape[-1:])
    pad = (index == d).to(precision.dtype)
    block = block_rows.gather(-1, cols) + torch.diag_embed(pad)
    tril = torch.linalg.cholesky(block)
    # Lambda_mo (x_o - mu_o): the precision times the observed deviations, on the missing rows.
    dev = torch.where(miss, x.new_zeros(()), x - loc)
    lam_dev = torch.einsum("...i,...ij->...j", dev, precision)
    lam_dev = torch.nn.functional.pad(lam_dev, (0, 1))
    rhs = lam_dev.gather(-1, index.expand(lam_dev.shape[:-1] + index.shape[-1:]))
    shift = torch.cholesky_solve(rhs.unsqueeze(-1), tril).squeeze(-1)
    mean = torch.where(miss, loc - _scatter(shift, index, d), x).expand(shape)
    return GaussianConditional(mean, index, tril, loc, precision)


class MaskedMultivariateNormal(dist.TorchDistribution):
    """Multivariate normal, parameterized by its precision matrix, that skips missing entries.

    ``log_prob(x)`` is the exact log density of each row's observed entries under the marginal
    N(loc_o, Sigma_oo). Rows with missing entries are handled without a loop over missingness
    patterns, through the conditional of their missing entries
    (:meth:`GaussianConditional.log_marginal`): one factorization of each row's missing block
    of the precision, never of ``Sigma_oo``.

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
        batch_shape = _broadcast(loc.shape[:-1], precision_matrix.shape[:-2])
        if obs_mask is not None:
            batch_shape = _broadcast(batch_shape, obs_mask.shape[:-1])
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
        tril = torch.linalg.cholesky(self.precision_matrix)
        if mask is None or bool(mask.all()):
            return _cholesky_log_density(value, self.loc, tril)
        cond = condition_on_precision(value, ~mask, self.loc, self.precision_matrix)
        return cond.log_marginal(tril)
