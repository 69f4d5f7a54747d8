"""Flow guides: every flow class through one set of checks (as zuko's tests/test_flows.py).

The log-determinant is checked against the autograd Jacobian, the inverse against the forward
map, the density against the change of variables computed by hand, the global flow guide against
a posterior known in closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoNormal

import ppgen
from ppgen.guides import KINDS, AmortizedFlow, FlowDistribution, FlowGuide
from ppgen.infer.optim import optimize
from ppgen.testing import NormalMean

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

D, C, N = 3, 4, 5  # latent dimension, context dimension, rows


def random_flow(kind: str, d: int = D, c: int = C, dtype=torch.float64) -> AmortizedFlow:
    """A flow with random (non-identity) parameters, the same for every run."""
    flow = AmortizedFlow(d, c, kind=kind, transforms=2, hidden=(16, 16)).to(dtype)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=dtype))
    return flow


def context(n: int = N, c: int = C, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def gaussian(n: int = N, d: int = D, dtype=torch.float64) -> dist.TorchDistribution:
    gen = torch.Generator().manual_seed(2)
    loc = 0.5 * torch.randn(n, d, generator=gen, dtype=dtype)
    scale = 0.5 + torch.rand(n, d, generator=gen, dtype=dtype)
    return dist.Normal(loc, scale).to_event(1)


def autograd_logdet(flow, c: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """log|det J| of the flow at each row of ``x`` (n, d), with that row's context, by autograd."""
    out = []
    for i, row in enumerate(x):
        t = flow.transform(None if c is None else c[i])
        out.append(torch.linalg.slogdet(torch.autograd.functional.jacobian(t, row))[1])
    return torch.stack(out)


@pytest.mark.parametrize("kind", KINDS)
def test_log_det_equals_the_autograd_jacobian(kind):
    flow, c = random_flow(kind), context()
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for i in range(N):
        # One row's transform, with its context fixed: a map R^D -> R^D.
        t = flow.transform(c[i])
        _, ladj = t.call_and_ladj(x[i])
        jac = torch.autograd.functional.jacobian(t, x[i])
        assert torch.allclose(ladj, torch.linalg.slogdet(jac)[1], atol=1e-10)
        # Autoregressive in one order then its reverse: a full Jacobian, not a diagonal one.
        assert jac.tril(-1).abs().sum() > 1e-3 and jac.triu(1).abs().sum() > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_inverse_of_forward_is_the_identity(kind):
    flow, c = random_flow(kind), context()
    t = flow.transform(c)
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y, ladj = t.call_and_ladj(x)
    assert not torch.allclose(y, x, atol=1e-3)
    assert torch.allclose(t.inv(y), x, atol=1e-9)
    # The inverse's log-determinant is minus the forward one.
    _, ladj_inv = t.inv.call_and_ladj(y)
    assert torch.allclose(ladj_inv, -ladj, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_log_prob_is_the_change_of_variables(kind):
    flow, c, base = random_flow(kind), context(), gaussian()
    q = flow(base, c)
    torch.manual_seed(5)
    z = q.rsample()
    t = flow.transform(c)
    e = t.inv(z)
    by_hand = base.log_prob(e) - autograd_logdet(flow, c, e)
    assert torch.allclose(q.log_prob(z), by_hand, atol=1e-9)  # cached with the draw
    assert torch.allclose(q.log_prob(z.clone()), by_hand, atol=1e-9)  # recomputed by inversion
    assert q.log_prob(z) is q._cache[1]  # own draws are scored without inverting the flow


@pytest.mark.parametrize("kind", KINDS)
def test_a_new_flow_is_the_identity(kind):
    flow, c, base = AmortizedFlow(D, C, kind=kind).double(), context(), gaussian()
    torch.manual_seed(6)
    z = flow(base, c).rsample()
    torch.manual_seed(6)
    assert torch.allclose(z, base.rsample(), atol=1e-12)
    assert torch.allclose(flow(base, c).log_prob(z), base.log_prob(z), atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_rsample_is_differentiable_in_context_and_parameters(kind):
    flow, base = random_flow(kind), gaussian()
    c = context().requires_grad_()
    torch.manual_seed(7)
    z = flow(base, c).rsample()
    z.square().sum().backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert sum(float(p.grad.abs().sum()) for p in flow.parameters()) > 0

    # And the gradient is the right one: reparameterized draw as a function of the context.
    e = base.sample()

    def draw(ctx: torch.Tensor) -> torch.Tensor:
        return flow.transform(ctx)(e)

    assert torch.autograd.gradcheck(draw, (context().requires_grad_(),))


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_pyro_sites(kind):
    flow, c, base = random_flow(kind), context(), gaussian()
    q = flow(base, c)
    assert isinstance(q, FlowDistribution)
    assert q.batch_shape == (N,) and q.event_shape == (D,)
    assert q.rsample((7,)).shape == (7, N, D) and q.log_prob(q.rsample((7,))).shape == (7, N)

    def guide():
        with pyro.plate("particles", 4, dim=-2), pyro.plate("data", N, dim=-1):
            pyro.sample("z", flow(base, c))

    tr = poutine.trace(guide).get_trace()
    tr.compute_log_prob()
    site = tr.nodes["z"]
    assert site["value"].shape == (4, N, D) and site["log_prob"].shape == (4, N)
    e = flow.transform(c).inv(site["value"])
    by_hand = base.log_prob(e) - flow.transform(c).call_and_ladj(e)[1]
    assert torch.allclose(site["log_prob"], by_hand, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_and_reproducible_draws(kind):
    flow, c = random_flow(kind, dtype=torch.float32), context(dtype=torch.float32)
    base = gaussian(dtype=torch.float32)
    draws = []
    for _ in range(2):
        pyro.set_rng_seed(8)
        q = flow(base, c)
        z = q.rsample()
        draws.append((z, q.log_prob(z)))
    assert draws[0][0].dtype == torch.float32 and torch.isfinite(draws[0][1]).all()
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][1], draws[1][1])
    pyro.set_rng_seed(9)
    assert not torch.equal(flow(base, c).rsample(), draws[0][0])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="kind"):
        AmortizedFlow(D, C, kind="planar")
    flow = AmortizedFlow(D, C)
    with pytest.raises(ValueError, match="event shape"):
        flow(dist.Normal(torch.zeros(N, D + 1), 1.0).to_event(1), context(dtype=torch.float32))
    with pytest.raises(ValueError, match="context"):
        flow(dist.Normal(torch.zeros(N, D), 1.0).to_event(1), torch.zeros(N, C + 1))
    with pytest.raises(ValueError, match="kind"):
        FlowGuide(kind="maf")


def test_one_dimensional_unconditional_flow():
    # One latent and no context: the autoregressive network has no inputs at all.
    flow = random_flow("nsf", d=1, c=0)
    base = dist.Normal(torch.zeros(1, dtype=torch.float64), 1.0).to_event(1)
    q = flow(base)
    z = q.rsample((5,))
    e = flow.transform().inv(z)
    assert torch.allclose(q.log_prob(z), base.log_prob(e) - autograd_logdet(flow, None, e))


@pytest.fixture(scope="module")
def normal_data() -> np.ndarray:
    return np.random.default_rng(4).normal(loc=[1.0, -0.5], scale=2.0, size=(30, 2))


@pytest.mark.parametrize(
    "kind", [k if k == "iaf" else pytest.param(k, marks=pytest.mark.slow) for k in KINDS]
)
def test_flow_guide_recovers_the_conjugate_posterior(normal_data, kind):
    # About 30 s per kind on one core (1500 steps of 4 particles): the default "iaf" runs by
    # default, the other kinds with the slow tests.
    model = NormalMean(noise_scale=2.0, prior_scale=1.0)
    fit = ppgen.fit(
        model,
        normal_data,
        method="svi",
        standardize=False,
        guide="flow" if kind == "iaf" else FlowGuide(kind=kind),
        lr=0.005,
        max_steps=1500,
        tol=0,  # run every step: the stopping rule fires early on a flow's noisy loss
        num_particles=4,
        num_draws=2000,
        seed=0,
    )
    mean, var = fit.model.posterior_mean_var(fit.train.x, fit.train.mask)
    draws = fit.samples["mean"].reshape(-1, 2).numpy()
    assert np.allclose(draws.mean(0), mean.numpy(), atol=0.05)  # posterior sd is 0.34
    assert np.allclose(draws.var(0), var.numpy(), rtol=0.2)
    assert np.allclose(fit.params["mean"].numpy(), mean.numpy(), atol=0.05)


def fitted_elbo(model, make_guide) -> float:
    """ELBO of ``make_guide(model)`` after 1000 Adam steps, by 4000 draws (its own param store)."""
    with pyro.get_param_store().scope():
        pyro.set_rng_seed(0)
        guide = make_guide(model)
        train = Trace_ELBO(num_particles=8, vectorize_particles=True, max_plate_nesting=0)
        optimize(lambda: train.differentiable_loss(model, guide), lr=0.01, max_steps=1000, tol=0)
        final = Trace_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=0)
        with torch.no_grad():
            return -final.loss(model, guide)


def test_flow_guide_captures_the_correlation_a_mean_field_guide_cannot():
    # Target: (a, b) standard bivariate normal with correlation rho, written as a ~ N(0, 1),
    # b | a ~ N(rho a, 1 - rho^2), no data: log Z = 0 and the ELBO is -KL(q || p). The best
    # mean-field Gaussian has KL = -log(1 - rho^2) / 2 (0.830 nats at rho = 0.9); an affine
    # autoregressive flow contains the target, so its ELBO can reach 0.
    rho = 0.9

    def model():
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
        pyro.sample("b", dist.Normal(rho * a, math.sqrt(1 - rho**2)))

    mean_field = fitted_elbo(model, AutoNormal)
    flow = fitted_elbo(model, FlowGuide().build)
    assert abs(mean_field - 0.5 * math.log(1 - rho**2)) < 0.06
    assert -0.15 < flow <= 0.02
