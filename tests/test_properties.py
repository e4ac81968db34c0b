"""Properties that hold for every input, checked on inputs drawn by hypothesis (few examples, to stay fast)."""

import math
import warnings

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from toyflow import couplings, data, solvers
from toyflow.metrics import transport_cost

FEW = settings(max_examples=12, deadline=None)
seeds = st.integers(0, 2**31 - 1)


def _points(seed: int, n: int, d: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    x1 = scale * torch.randn(n, d, generator=g, dtype=torch.float64) + 1.0
    return x0, x1


def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    return x[torch.argsort(x[:, 0])]


# ---- couplings ----


@FEW
@given(seed=seeds, n=st.integers(2, 80), d=st.integers(1, 3), scale=st.floats(0.1, 5.0), block=st.none() | st.integers(1, 40))
def test_exact_ot_keeps_both_marginals_and_never_costs_more_than_the_independent_pairs(seed, n, d, scale, block):
    x0, x1 = _points(seed, n, d, scale)
    pairs = couplings.ExactOT(block=block)(x0, x1)
    assert torch.equal(pairs.x0, x0)
    assert torch.equal(_sorted_rows(pairs.x1), _sorted_rows(x1)), "x1 must be re-paired, not changed"
    assert transport_cost(pairs.x0, pairs.x1) <= transport_cost(x0, x1) + 1e-9
    if block is None:  # the optimum is below every other pairing, e.g. a random one
        shuffled = x1[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]
        assert transport_cost(pairs.x0, pairs.x1) <= transport_cost(x0, shuffled) + 1e-9


@FEW
@given(seed=seeds, n=st.integers(2, 60), reg=st.floats(0.5, 50.0))
def test_sinkhorn_plans_have_uniform_marginals_and_pairs_keep_the_source(seed, n, reg):
    x0, x1 = _points(seed, n, 2, 1.0)
    sinkhorn = couplings.SinkhornOT(reg=reg, max_iter=10_000, tol=1e-8)
    with warnings.catch_warnings(record=True) as caught:  # the contract: converge, or say so
        warnings.simplefilter("always")
        plan = sinkhorn.plan(x0, x1)
    unconverged = [w for w in caught if "did not converge" in str(w.message)]
    assert len(unconverged) == len(caught), f"unexpected warnings: {[str(w.message) for w in caught]}"
    assume(not unconverged)  # a small reg on far-apart points may need more iterations: it warned, as documented
    uniform = torch.full((n,), 1 / n, dtype=torch.float64)
    torch.testing.assert_close(plan.sum(1), uniform, atol=1e-6, rtol=0)
    torch.testing.assert_close(plan.sum(0), uniform, atol=1e-6, rtol=0)
    pairs = sinkhorn(x0, x1, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(pairs.x0, x0)
    assert (pairs.x1[:, None] == x1[None]).all(-1).any(1).all(), "every partner must be one of the x1 points"


@FEW
@given(seed=seeds, n=st.integers(2, 60), eps=st.floats(0.01, 100.0))
def test_gibbs_weights_are_positive_with_mean_one(seed, n, eps):
    x0, x1 = _points(seed, n, 2, 2.0)
    weight = couplings.GibbsWeighted(eps)(x0, x1).weight
    assert (weight >= 0).all() and math.isclose(weight.mean().item(), 1.0, rel_tol=1e-9)


# ---- solvers ----

ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


@settings(max_examples=8, deadline=None)
@given(k=st.floats(0.3, 2.0), start=st.floats(-3.0, 3.0))
def test_fixed_step_solvers_converge_at_their_order(k, start):
    """Halving the step divides the error by 2^order, on a field in x (dx/dt = k·x, x(1) = x(0)·e^k) and on a
    field in t (dx/dt = e^{kt}, x(1) = x(0) + (e^k − 1)/k). Their leading error terms never vanish for k > 0."""
    x0 = torch.tensor([[start, 1.0]], dtype=torch.float64)
    cases = [
        (lambda x, t: k * x, x0 * math.exp(k)),
        (lambda x, t: torch.exp(k * t)[:, None].expand_as(x), x0 + math.expm1(k) / k),
    ]
    for field, exact in cases:
        for method, order in ORDERS.items():
            coarse, fine = ((solvers.integrate(field, x0, steps, method).x - exact).abs().max().item() for steps in (8, 16))
            observed = math.log2(coarse / fine)
            assert order - 0.25 < observed < order + 0.25, f"{method}: observed order {observed:.2f}, expected {order}"


# ---- data ----


@FEW
@given(name=st.sampled_from(sorted(data.REGISTRY)), n=st.integers(1, 300), seed=seeds)
def test_samplers_give_finite_points_of_the_asked_shape_reproducibly(name, n, seed):
    dist = data.get(name)
    x = dist.sample(n, torch.Generator().manual_seed(seed))
    assert x.shape == (n, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert torch.equal(x, dist.sample(n, torch.Generator().manual_seed(seed)))
    if n >= 20:  # another seed gives other points
        assert not torch.equal(x, dist.sample(n, torch.Generator().manual_seed(seed + 1)))
