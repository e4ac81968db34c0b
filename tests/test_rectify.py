import copy

import pytest
import torch

import toyflow
from toyflow import couplings, data, metrics, paths, rectify, solvers
from toyflow.closed_form import GaussianToGaussian
from toyflow.models import VelocityMLP

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)


def _ot_map(z0: torch.Tensor) -> torch.Tensor:
    """The rectified coupling of N(0, I) → N(m, s²I) is the linear OT map z ↦ m + s·z."""
    return torch.tensor(CASE.mean, dtype=z0.dtype) + CASE.std * z0


# ---- closed form ----


def test_rectifying_the_exact_flow_gives_the_linear_ot_map():
    z0 = CASE.source.sample(500, torch.Generator().manual_seed(0)).double()
    pairs = rectify.sample_pairs(CASE.velocity, z0, steps=50)
    torch.testing.assert_close(pairs.z1, _ot_map(z0), atol=1e-7, rtol=0)
    adaptive = rectify.sample_pairs(CASE.velocity, z0, method="adaptive")
    torch.testing.assert_close(adaptive.z1, _ot_map(z0), atol=1e-4, rtol=0)
    default = rectify.sample_pairs(CASE.velocity, z0.float())  # 25 RK4 steps: accurate to float32's needs
    torch.testing.assert_close(default.z1, _ot_map(z0).float(), atol=1e-4, rtol=0)


def test_rectified_pairs_cost_less_than_independent_pairs_in_closed_form():
    """E‖z1 − z0‖² = ‖m‖² + d(s − 1)² for the rectified pairs, ‖m‖² + d(s² + 1) for independent ones."""
    g = torch.Generator().manual_seed(1)
    z0 = CASE.source.sample(100_000, g).double()
    rectified = metrics.transport_cost(z0, rectify.sample_pairs(CASE.velocity, z0, steps=20).z1)
    independent = metrics.transport_cost(z0, CASE.target.sample(100_000, g).double())
    m2 = sum(m * m for m in CASE.mean)
    assert rectified == pytest.approx(m2 + 2 * (CASE.std - 1) ** 2, rel=0.01)
    assert independent == pytest.approx(m2 + 2 * (CASE.std**2 + 1), rel=0.01)


def test_learned_1rf_pairs_match_the_ot_map_and_2rf_is_nearly_straight():
    toyflow.seed(0)
    rounds = rectify.rectified_flow(CASE.source, CASE.target, rounds=2, steps=1000, num_pairs=5000,
                                    model=VelocityMLP(hidden=64), progress=False, lr=3e-3)
    z0 = CASE.source.sample(2000, torch.Generator().manual_seed(2))
    pairs = rectify.sample_pairs(rounds[0].model, z0)
    assert (pairs.z1 - _ot_map(z0)).norm(dim=1).mean() < 0.1
    curved, straight = (metrics.straightness(r.model, z0) for r in rounds)
    exact = metrics.straightness(CASE.velocity, z0)  # the closed-form 1-RF is curved: σ_t is not linear in t
    assert curved == pytest.approx(exact, rel=0.3)
    assert straight < 0.1 * curved, f"2-RF straightness {straight:.4f} vs 1-RF {curved:.4f}"


def test_path_step_recovers_a_pair_and_lands_on_it_in_one_step():
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(8, 2, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
    for path in (paths.linear(), paths.trigonometric()):
        t = torch.full((8,), 0.3, dtype=torch.float64)
        xt, v = path.interpolate(x0, x1, t), path.velocity(x0, x1, t)
        recovered = path.endpoints(xt, v, t)
        torch.testing.assert_close(recovered[0], x0)
        torch.testing.assert_close(recovered[1], x1)

        def field(x, time, path=path):  # the velocity of the one path through each x0
            return path.velocity(x0, x1, time)

        landed = solvers.integrate(field, x0, steps=1, method="path", path=path).x
        torch.testing.assert_close(landed, x1)
    euler = solvers.integrate(CASE.velocity, x0, steps=3)
    torch.testing.assert_close(solvers.integrate(CASE.velocity, x0, steps=3, method="path", path=paths.linear()).x, euler.x)


# ---- invariants on toy data ----


@pytest.fixture(scope="module")
def moons_rounds():
    toyflow.seed(0)
    return rectify.rectified_flow(data.get("8gaussians"), data.get("moons"), rounds=2, steps=1000, num_pairs=5000,
                                  model=VelocityMLP(hidden=64), progress=False, lr=3e-3)


def test_transport_cost_does_not_rise_across_rounds(moons_rounds):
    g = torch.Generator().manual_seed(4)
    z0 = data.get("8gaussians").sample(4000, g)
    independent = metrics.transport_cost(z0, data.get("moons").sample(4000, g))
    costs = [metrics.transport_cost(z0, rectify.sample_pairs(r.model, z0).z1) for r in moons_rounds]
    assert costs[0] < 0.5 * independent, f"1-RF pairs cost {costs[0]:.2f}, independent pairs {independent:.2f}"
    assert costs[1] <= costs[0], f"2-RF pairs cost {costs[1]:.3f} > 1-RF pairs {costs[0]:.3f}"


def test_rounds_are_separate_warm_started_copies(moons_rounds):
    first, second = moons_rounds
    assert first.pairs is None and len(second.pairs.z0) == 5000
    assert first.model is not second.model
    assert not torch.equal(first.model.net[0].weight, second.model.net[0].weight)
    assert second.history.steps == 1000


def test_distillation_reproduces_the_teachers_one_step_map():
    toyflow.seed(0)
    teacher = VelocityMLP(hidden=64)
    z0 = CASE.source.sample(4000, torch.Generator().manual_seed(5))
    pairs = couplings.FixedPairs(z0, _ot_map(z0))  # a teacher's pairs: here the exact ones
    before = copy.deepcopy(teacher.state_dict())
    student = copy.deepcopy(teacher)
    history = rectify.distill(student, pairs, steps=1500, progress=False, lr=3e-3)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items()), "the teacher must not change"
    assert not torch.equal(student.net[0].weight, teacher.net[0].weight), "distill trains the model it is given"
    fresh = CASE.source.sample(1000, torch.Generator().manual_seed(6))
    error = (rectify.one_step(student)(fresh) - _ot_map(fresh)).norm(dim=1).mean()
    assert error < 0.05, f"mean one-step error {error:.3f}"
    assert history.loss[-1] < 0.01 * history.loss[0]


def test_annealed_pairs_go_from_noise_to_the_teachers_pairs():
    z0 = torch.randn(10_000, 2, generator=torch.Generator().manual_seed(7))
    annealed = rectify.AnnealedPairs(couplings.FixedPairs(z0, z0 + 1), warmup=4)
    g = torch.Generator().manual_seed(8)
    first = annealed.sample(10_000, g)  # β = 1: the source is pure noise, independent of x1
    correlation = torch.corrcoef(torch.stack([first.x0[:, 0], first.x1[:, 0]]))[0, 1]
    assert abs(correlation) < 0.05
    for _ in range(3):
        annealed.sample(10, g)
    last = annealed.sample(100, g)  # β = 0 from draw `warmup` on: exactly the teacher's pairs
    torch.testing.assert_close(last.x1, last.x0 + 1)


# ---- bad input ----


def test_rectified_flow_trains_the_given_model_in_place_as_its_1rf():
    toyflow.seed(0)
    model = VelocityMLP(hidden=16)
    rounds = rectify.rectified_flow(CASE.source, CASE.target, rounds=2, steps=5, num_pairs=20, model=model, progress=False)
    assert rounds[0].model is model and rounds[1].model is not model


def test_distillation_loss_is_per_pair_averaged_over_dimensions_with_weights():
    z0 = torch.zeros(4, 3)
    pairs = couplings.FixedPairs(z0, torch.tensor([[3.0, 0.0, 0.0]] * 4))
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    assert rectify.Distillation(pairs, batch_size=8)(zero, torch.Generator()).item() == pytest.approx(3.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_teacher_that_returns_nan_is_named_when_rectifying(bad):
    def broken(x, t):
        v = torch.ones_like(x)
        v[2] = bad
        return v

    with pytest.raises(ValueError, match=r"the teacher .* carried 1 of 5 points to NaN or inf \(the first is z0\[2\]\)"):
        rectify.sample_pairs(broken, torch.zeros(5, 2), steps=4)


def test_bad_input():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        rectify.Distillation(couplings.FixedPairs(torch.zeros(2, 2), torch.ones(2, 2)), batch_size=0)
    with pytest.raises(TypeError, match="pairs must be a pair sampler"):
        rectify.Distillation(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="rounds must be an int >= 1, got 0"):
        rectify.rectified_flow(CASE.source, CASE.target, rounds=0)
    with pytest.raises(ValueError, match="num_pairs must be an int >= 1, got -5"):
        rectify.rectified_flow(CASE.source, CASE.target, num_pairs=-5)
    with pytest.raises(ValueError, match="warmup must be an int >= 1"):
        rectify.AnnealedPairs(couplings.FixedPairs(torch.zeros(2, 2), torch.ones(2, 2)), warmup=0)
    with pytest.raises(ValueError, match="method='path' .* pass path="):
        solvers.integrate(CASE.velocity, torch.zeros(2, 2), method="path")
    with pytest.raises(ValueError, match="deterministic path"):
        paths.stochastic(0.5).endpoints(torch.zeros(2, 2), torch.zeros(2, 2), torch.full((2,), 0.5))


def test_objectives_reject_a_distribution_where_pairs_are_expected():
    from toyflow.flow_matching import FlowMatching
    from toyflow.meanflow import MeanFlow

    for objective in (FlowMatching, MeanFlow, rectify.Distillation):
        with pytest.raises(TypeError, match=r"pairs must be a pair sampler .* got Moons"):
            objective(data.get("moons"))
    with pytest.raises(ValueError, match="pair_steps must be an int >= 1"):
        rectify.rectified_flow(CASE.source, CASE.target, steps=1, num_pairs=4, pair_steps=0, progress=False)
