import pytest
import torch

import toyflow
from toyflow import couplings, paths
from toyflow.closed_form import GaussianToGaussian
from toyflow.flow_matching import FlowMatching
from toyflow.meanflow import (
    MeanFlow,
    SplitMeanFlow,
    TimePairs,
    dispersive_loss,
    instantaneous,
    meanflow_target,
    sample,
    split_target,
)
from toyflow.models import VelocityMLP
from toyflow.paths import UniformTime
from toyflow.train import fit

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)
M, STD = torch.tensor(CASE.mean, dtype=torch.float64), CASE.std


def _points(n: int = 64, seed: int = 0):
    """Points, start times ``s`` and end times ``t ≥ s`` in float64, a few with ``t = s``."""
    g = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    a, b = torch.rand(n, generator=g, dtype=torch.float64), torch.rand(n, generator=g, dtype=torch.float64)
    s, t = torch.minimum(a, b), torch.maximum(a, b)
    t[:8] = s[:8]
    return x, s, t


# ---- closed form: the identities hold to float precision for the exact average velocity ----


def test_meanflow_identity_holds_for_the_closed_form_average_velocity():
    """u(x, s, t) = v(x, s) + (t − s)·d/ds u with tangent (v, 1, 0): catches a wrong tangent, sign or order."""
    x, s, t = _points()
    target = meanflow_target(CASE.average_velocity, x, s, t, CASE.velocity(x, s))
    torch.testing.assert_close(target, CASE.average_velocity(x, s, t), atol=1e-12, rtol=0)


def test_the_identity_check_rejects_a_wrong_tangent_sign_or_argument_order():
    """The variants a bug would produce are far off, so the check above has teeth."""
    x, s, t = _points()
    u, v = CASE.average_velocity, CASE.velocity(x, s)
    one, zero = torch.ones_like(s), torch.zeros_like(t)
    swapped = lambda x, s, t: u(x, t, s)  # noqa: E731
    wrong = {
        "tangent (v, 0, 1)": v + (t - s)[:, None] * torch.func.jvp(u, (x, s, t), (v, zero, one))[1],
        "minus sign": v - (t - s)[:, None] * torch.func.jvp(u, (x, s, t), (v, one, zero))[1],
        "u(x, t, s)": meanflow_target(swapped, x, s, t, v),
    }
    for name, target in wrong.items():
        assert (target - u(x, s, t)).abs().max() > 0.1, name


def test_splitting_identity_holds_for_the_closed_form_average_velocity():
    x, s, t = _points()
    lam = torch.rand(len(x), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = CASE.average_velocity(x, s, t)
    torch.testing.assert_close(split_target(CASE.average_velocity, x, s, t, lam), exact, atol=1e-12, rtol=0)
    m = s + lam * (t - s)  # a bug that swaps the weights of the two parts is far off
    first = CASE.average_velocity(x, s, m)
    second = CASE.average_velocity(x + (m - s)[:, None] * first, m, t)
    swapped = (1 - lam)[:, None] * first + lam[:, None] * second
    assert (swapped - exact).abs().max() > 0.1


def test_the_jvp_is_the_derivative_along_the_flow():
    """Forward-mode JVP of a network = central finite difference of ε ↦ u(x + εv, s + ε, t)."""
    toyflow.seed(0)
    u = VelocityMLP(times=2).double()
    x, s, t = _points(16)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _, jvp = torch.func.jvp(u, (x, s, t), (v, torch.ones_like(s), torch.zeros_like(t)))
    eps = 1e-6
    with torch.no_grad():
        difference = (u(x + eps * v, s + eps, t) - u(x - eps * v, s - eps, t)) / (2 * eps)
    torch.testing.assert_close(jvp, difference, atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(meanflow_target(u, x, s, t, v), v + (t - s)[:, None] * jvp)


def _straight_average_velocity(x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Average velocity of the straight pairs (x0, m + std·x0): each point moves at constant speed
    x1 − x0 = m + (std − 1)·x0, where x0 = (x − s·m)/((1 − s) + s·std)."""
    x0 = (x - s[:, None] * M.to(x)) / ((1 - s) + s * STD)[:, None]
    return M.to(x) + (STD - 1) * x0


@pytest.mark.parametrize("objective", [MeanFlow, SplitMeanFlow])
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_with_the_exact_u_the_loss_is_zero_and_one_step_lands_on_the_flow_map(objective, p):
    """The flow's own pairs (x0, φ_{0→1}(x0)) are straight lines; their exact u gives a zero loss."""
    z0 = torch.randn(512, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pairs = couplings.FixedPairs(z0, CASE.flow_map(z0, 0.0, 1.0))
    loss = objective(pairs, time=TimePairs(UniformTime(), 0.25), p=p)(_straight_average_velocity, torch.Generator())
    assert abs(loss.item()) < 1e-20
    torch.testing.assert_close(sample(_straight_average_velocity, z0).x, CASE.flow_map(z0, 0.0, 1.0))
    assert objective(pairs, p=p)(lambda x, s, t: _straight_average_velocity(x, s, t) + 0.1, torch.Generator()) > 1e-3


def test_one_and_k_steps_of_the_closed_form_u_are_exact():
    x0 = CASE.source.sample(100, torch.Generator().manual_seed(0)).double()
    for steps in (1, 2, 4):
        solution = sample(CASE.average_velocity, x0, steps=steps, return_path=True)
        torch.testing.assert_close(solution.x, CASE.flow_map(x0, 0.0, 1.0))
        torch.testing.assert_close(solution.path[1], CASE.flow_map(x0, 0.0, 1 / steps))
        assert solution.nfe == steps and solution.path.shape == (steps + 1, 100, 2)
    torch.testing.assert_close(instantaneous(CASE.average_velocity)(x0, 0.3), CASE.velocity(x0, 0.3))


# ---- invariants ----


@pytest.mark.parametrize("equal", [0.0, 0.3, 0.75, 1.0])
def test_time_pairs_respect_s_le_t_and_the_share_of_s_equal_t(equal):
    s, t = TimePairs(equal=equal)(100_000, generator=torch.Generator().manual_seed(0))
    assert s.shape == t.shape == (100_000,)
    assert (s <= t).all() and (s >= 0).all() and (t <= 1).all()
    assert (s == t).float().mean().item() == pytest.approx(equal, abs=0.005)


def test_dispersive_loss_is_zero_for_equal_features_and_log_half_for_two_far_clusters():
    h = torch.ones(6, 4)
    assert dispersive_loss(h).item() == pytest.approx(0.0, abs=1e-6)
    h[3:] += 100.0
    assert dispersive_loss(h).item() == pytest.approx(torch.log(torch.tensor(0.5)).item(), abs=1e-6)


@pytest.mark.parametrize("objective", [MeanFlow, SplitMeanFlow])
def test_training_on_the_gaussian_case_gives_a_one_step_sampler(objective):
    """With the defaults, one step of the trained u lands on N(m, 0.5²I). The earlier defaults (t = s at the smaller
    of two logit-normal(0.4, 1) draws, p = 1) fail here: std (0.46, 0.37) for MeanFlow, 0.94 for SplitMeanFlow."""
    toyflow.seed(0)
    u = VelocityMLP(hidden=64, times=2)
    pairs = couplings.PairSampler(CASE.source, CASE.target)
    fit(u, objective(pairs), steps=600, lr=1e-2, grad_clip=1.0, progress=False)
    x0 = CASE.source.sample(4000, torch.Generator().manual_seed(1))
    x1 = sample(u, x0).x
    torch.testing.assert_close(x1.mean(0), M.float(), atol=0.1, rtol=0)
    torch.testing.assert_close(x1.std(0), torch.full((2,), STD), atol=0.1, rtol=0)


@pytest.mark.parametrize("objective", [MeanFlow, SplitMeanFlow])
def test_the_dispersive_term_is_added_on_the_last_hidden_features(objective):
    """loss(dispersive = λ) − loss(dispersive = 0) = λ·dispersive_loss(h) for the features h entering net[-1]."""
    toyflow.seed(0)
    u = VelocityMLP(hidden=16, times=2)
    pairs = couplings.PairSampler(CASE.source, CASE.target)
    plain = objective(pairs, batch_size=32)(u, torch.Generator().manual_seed(0))
    regularised = objective(pairs, batch_size=32, dispersive=0.5)(u, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)  # the objective's draws, in its order: pairs, then times
    batch = pairs.sample(32, generator)
    s, t = TimePairs()(32, generator=generator)
    xs = (1 - s)[:, None] * batch.x0 + s[:, None] * batch.x1
    features = u.net[:-1](torch.cat([xs, u.embed(s), u.embed(t)], 1))  # (32, 16)
    torch.testing.assert_close(u.features(xs, s, t), features)
    assert (regularised - plain).item() == pytest.approx(0.5 * dispersive_loss(features).item(), rel=1e-5)


def test_the_loss_is_averaged_over_dimensions_like_flow_matching():
    """With p = 0 and t = s everywhere MeanFlow's loss is the flow-matching loss, ‖Δ‖²/d per pair, in any dimension."""
    toyflow.seed(0)
    for dim in (2, 3):
        u, v = VelocityMLP(dim=dim, hidden=16, times=2), None
        pairs = couplings.PairSampler(toyflow.data.Gaussian(mean=(0.0,) * dim), toyflow.data.Gaussian(mean=(1.0,) * dim))
        boundary = MeanFlow(pairs, time=TimePairs(equal=1.0), p=0.0, batch_size=64)(u, torch.Generator().manual_seed(0))
        v = lambda x, t, u=u: u(x, t, t)  # noqa: E731
        matching = FlowMatching(pairs, batch_size=64)(v, torch.Generator().manual_seed(0))
        assert boundary.item() == pytest.approx(matching.item(), rel=1e-5)


def test_meanflow_accepts_a_path_and_its_target_uses_the_path_velocity():
    """On the trigonometric path the flow-matching boundary (t = s) of MeanFlow is flow matching on that path."""
    toyflow.seed(0)
    u = VelocityMLP(hidden=16, times=2)
    pairs = couplings.PairSampler(CASE.source, CASE.target)
    for path in (paths.linear(), paths.trigonometric()):
        boundary = MeanFlow(pairs, path=path, time=TimePairs(equal=1.0), p=0.0, batch_size=64)
        matching = FlowMatching(pairs, path=path, batch_size=64)
        v = lambda x, t: u(x, t, t)  # noqa: E731
        expected = matching(v, torch.Generator().manual_seed(1)).item()
        assert boundary(u, torch.Generator().manual_seed(1)).item() == pytest.approx(expected, rel=1e-5), path.name
    noisy = MeanFlow(pairs, path=paths.stochastic(0.3), batch_size=64)(u, torch.Generator().manual_seed(1))
    assert torch.isfinite(noisy)


def test_a_nan_during_training_stops_with_the_step():
    class NaNAfter(couplings.PairSampler):
        draws = 0

        def sample(self, n, generator=None, device=None):
            self.draws += 1
            batch = super().sample(n, generator, device)
            return couplings.PairBatch(batch.x0 * float("nan"), batch.x1) if self.draws == 8 else batch

    objective = MeanFlow(NaNAfter(CASE.source, CASE.target), batch_size=32)
    with pytest.raises(FloatingPointError, match="loss became nan at step 7:"):
        fit(VelocityMLP(hidden=16, times=2), objective, steps=20, progress=False, check_every=5)


# ---- bad input ----


def test_bad_input():
    pairs = couplings.PairSampler(CASE.source, CASE.target)
    with pytest.raises(ValueError, match="p must be a finite number >= 0 .* got -1"):
        MeanFlow(pairs, p=-1)
    with pytest.raises(ValueError, match="c must be a finite number > 0"):
        SplitMeanFlow(pairs, c=0.0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 2, got 1"):
        MeanFlow(pairs, batch_size=1)
    with pytest.raises(ValueError, match="dispersive must be a finite number >= 0 .*got -0.1"):
        MeanFlow(pairs, dispersive=-0.1)
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        MeanFlow(pairs, tau=0.0)
    with pytest.raises(TypeError, match="function has no features method"):
        MeanFlow(pairs, dispersive=0.1)(lambda x, s, t: x, torch.Generator())
    with pytest.raises(ValueError, match=r"x0 must have shape \(n, d\) with n >= 1, got \(3,\)"):
        sample(CASE.average_velocity, torch.zeros(3))
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        sample(CASE.average_velocity, torch.zeros(3, 2), steps=0)
    with pytest.raises(TypeError, match="path must be a paths.Interpolant"):
        MeanFlow(pairs, path="linear")
    with pytest.raises(TypeError, match="time must be a TimePairs sampler"):
        SplitMeanFlow(pairs, time=0.5)
    with pytest.raises(TypeError, match="time must be a time sampler"):
        TimePairs(time="uniform")
    with pytest.raises(ValueError, match="tau must be a finite number > 0 .*got 0"):
        dispersive_loss(torch.zeros(4, 2), tau=0)
    with pytest.raises(ValueError, match=r"h must have shape \(B, d\) with B >= 2, got \(1, 2\)"):
        dispersive_loss(torch.zeros(1, 2))


@pytest.mark.parametrize("equal", [-0.1, 1.5, float("nan")])
def test_time_pairs_reject_a_share_outside_0_1(equal):
    with pytest.raises(ValueError, match=r"equal must be a finite number >= 0 and <= 1 \(the share of pairs with s = t\), got"):
        TimePairs(equal=equal)


@pytest.mark.parametrize(
    "grid", [torch.tensor([0.0, 0.5, 0.5, 1.0]), torch.tensor([1.0, 0.0]), torch.tensor([0.0, float("nan"), 1.0])]
)
def test_sample_rejects_a_grid_that_is_not_increasing(grid):
    with pytest.raises(ValueError, match="grid must be strictly increasing finite times"):
        sample(CASE.average_velocity, torch.zeros(3, 2), grid=grid)
