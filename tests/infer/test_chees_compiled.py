"""The compiled potential (ppgen.infer._record + Potential.value_and_grad): the same log density
and gradient as the Pyro program at points it was not recorded at, for plain, plated,
constrained and enumerated models; padded batches; the fallback when a compiled call fails; and
the same draws as the uncompiled sampler."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from test_chees import _mixture  # tests/infer is on sys.path (pytest's prepend import mode)

from ppgen._utils import seeded
from ppgen.infer import hmc
from ppgen.infer._record import compile_function, record
from ppgen.infer.chees import run_chees
from ppgen.infer.nuts_batched import run_nuts_batched
from ppgen.infer.potential import Potential
from ppgen.testing.posteriors import eight_schools, logistic, schools

torch.set_num_threads(1)

SIGMA, Y = eight_schools()


def _correlated(y):
    # A constrained correlation and a Cholesky factorization of a latent-dependent matrix.
    r = pyro.sample("r", dist.Uniform(torch.tensor(-1.0, dtype=y.dtype), 1.0))
    s = pyro.sample("s", dist.LogNormal(torch.zeros(2, dtype=y.dtype), 1.0).to_event(1))
    eye = torch.eye(2, dtype=y.dtype)
    corr = eye + r * (1 - eye)
    cov = s[..., :, None] * corr * s[..., None, :]
    pyro.sample("y", dist.MultivariateNormal(torch.zeros(2, dtype=y.dtype), cov), obs=y)


def _cases():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 5, generator=g, dtype=torch.float64)
    yb = (X[:, 0] > 0).to(torch.float64)
    x = torch.tensor([-2.1, -1.7, 0.2, 1.9, 2.4], dtype=torch.float64)
    y2 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    return [(schools, (SIGMA, Y)), (logistic, (X, yb)), (_mixture, (x,)), (_correlated, (y2,))]


def test_compiled_value_and_grad_is_the_programs_at_new_points_and_batch_sizes():
    for model, args in _cases():
        pot = Potential(model, args)
        plain = Potential(model, args, compile=False)
        with seeded(1):
            for n in (32, 32, 17, 5, 32):  # 17 and 5 rows are padded to compiled 32 and 8
                u = torch.randn(n, pot.dim, dtype=torch.float64)
                lp, g = pot.value_and_grad(u)
                want_lp, want_g = plain.value_and_grad(u)
                assert lp.shape == (n,) and g.shape == (n, pot.dim)
                torch.testing.assert_close(lp, want_lp, rtol=1e-10, atol=1e-10)
                torch.testing.assert_close(g, want_g, rtol=1e-10, atol=1e-10)
        compiled = {key[0] for key, fn in pot._compiled.items() if fn is not None}
        # O(log chains) compiled sizes; a recording with a check (the Cholesky's) is not
        # compiled: the program runs (Potential._compile).
        assert compiled == (set() if model is _correlated else {32, 8}), model.__name__
        assert not plain._compiled


def test_a_failing_compiled_call_falls_back_to_the_program():
    model, args = _cases()[1]  # logistic: compiled (a recording without checks)
    pot = Potential(model, args)
    plain = Potential(model, args, compile=False)
    u = torch.zeros(4, pot.dim, dtype=torch.float64)
    pot.value_and_grad(u)
    pot.value_and_grad(u)  # compiled now
    assert pot._compiled[(4, torch.float64, torch.device("cpu"))] is not None

    def boom(v):
        raise RuntimeError("linalg.cholesky: the input is not positive-definite")

    pot._compiled[(4, torch.float64, torch.device("cpu"))] = boom
    u = torch.randn(4, pot.dim, dtype=torch.float64)
    for got, want in zip(pot.value_and_grad(u), plain.value_and_grad(u), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_record_replays_operations_and_refuses_outputs_not_from_the_input():
    data = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)

    def f(u):
        return (u * data).exp().sum(-1), torch.cat([u, u.sin()], -1)

    x = torch.randn(4, 3, dtype=torch.float64)
    out, replay = record(f, x)
    torch.testing.assert_close(out, f(x))
    z = torch.randn(4, 3, dtype=torch.float64)
    for got, want in zip(replay(z), f(z), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    _, compiled = compile_function(f, x)
    for got, want in zip(compiled(z), f(z), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    try:
        record(lambda u: data, x)
    except RuntimeError as exc:
        assert "not computed from its input" in str(exc)
    else:
        raise AssertionError("record accepted an output independent of the input")


def test_compiled_and_uncompiled_samplers_give_the_same_draws():
    for run, options in ((run_chees, {}), (run_nuts_batched, {"max_tree_depth": 6})):
        draws = []
        for compile in (True, False):
            pot = Potential(schools, (SIGMA, Y), compile=compile)
            with seeded(3):
                result = run(
                    pot, num_chains=4, num_warmup=20, num_samples=5, progress=False, **options
                )
            draws.append(result.samples)
        for name in draws[0]:
            torch.testing.assert_close(
                torch.as_tensor(draws[0][name]), torch.as_tensor(draws[1][name]), rtol=0, atol=1e-10
            )


def test_hmc_point_uses_a_densitys_value_and_grad():
    pot = Potential(schools, (SIGMA, Y))
    u = torch.randn(5, pot.dim, dtype=torch.float64)
    p = hmc.point(u, pot)
    q = hmc.point(u, lambda v: pot(v))  # plain callable: autograd
    torch.testing.assert_close(p.log_density, q.log_density, rtol=0, atol=1e-12)
    torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-12)


def test_a_check_the_program_raises_on_still_raises_compiled():
    def f(u):
        one = torch.ones_like(u[:, 0])
        rows = [torch.stack([one, u[:, 0]], -1), torch.stack([u[:, 0], one], -1)]
        return torch.func.vmap(torch.linalg.cholesky)(torch.stack(rows, -2)).sum((-1, -2))

    _, compiled = compile_function(f, torch.zeros(3, 1, dtype=torch.float64))
    bad = torch.tensor([[0.0], [2.0], [0.5]], dtype=torch.float64)  # [[1, 2], [2, 1]]: not PD
    with pytest.raises(RuntimeError, match="cholesky"):
        compiled(bad)
