import pytest
import torch

from toyflow import couplings, data, refine, solvers
from toyflow.closed_form import GaussianToGaussian

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.3)


def points(n=200, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def exact(x, t, v_prev):
    """The refiner a perfect training would give: the true velocity change."""
    return CASE.velocity(x, t) - v_prev


class ExactRefiner(torch.nn.Module):
    """``exact`` as a module that carries a training range, in float64."""

    def __init__(self, max_gap=0.2):
        super().__init__()
        self.register_buffer("max_gap", torch.tensor(max_gap, dtype=torch.float64))

    def forward(self, x, t, v_prev):
        return exact(x, t, v_prev)


def gaussian_pairs(weight=None):
    x0 = points(512, 1)
    x1 = torch.tensor(CASE.mean, dtype=torch.float64) + CASE.std * points(512, 2)
    pairs = couplings.FixedPairs(x0, x1)
    if weight is None:
        return pairs

    class Weighted:  # fixed pairs that carry a weight
        def sample(self, n, generator=None, device=None):
            batch = pairs.sample(n, generator, device)
            return couplings.PairBatch(batch.x0, batch.x1, weight=torch.full((n,), weight, dtype=batch.x0.dtype))

    return Weighted()


def test_rf_solver_step_is_the_midpoint_rule():
    x, t, dt = points(), torch.tensor(0.3, dtype=torch.float64), torch.tensor(-0.2, dtype=torch.float64)
    torch.testing.assert_close(refine.rf_solver_step(CASE.velocity, x, t, dt), solvers.midpoint_step(CASE.velocity, x, t, dt))


def test_inversion_reaches_the_exact_source_and_second_order_beats_euler():
    z = points()
    x1 = CASE.flow_map(z, 0.0, 1.0)
    errors = {}
    for method in ("euler", "rf_solver"):
        for nfe in (4, 8, 16):
            inverted = refine.invert(CASE.velocity, x1, nfe, method)
            assert inverted.nfe == nfe and inverted.grid[0] == 1 and inverted.grid[-1] == 0
            back = refine.regenerate(CASE.velocity, inverted.x, nfe, method).x
            errors[method, nfe] = (back - x1).norm(dim=1).mean().item()
        assert (refine.invert(CASE.velocity, x1, 64, method).x - z).norm(dim=1).mean() < 0.1
    for nfe in (4, 8, 16):
        assert errors["rf_solver", nfe] < 0.5 * errors["euler", nfe]
    assert errors["rf_solver", 16] < errors["rf_solver", 8] / 3  # second order: halving h divides by ~4


def test_flowturbo_without_refiner_is_heun_then_pseudo_corrector():
    x0 = points()
    heun = refine.flowturbo(CASE.velocity, None, x0, heun=4, pseudo=0, refine=0, return_path=True)
    reference = solvers.integrate(CASE.velocity, x0, 4, "heun", return_path=True)
    torch.testing.assert_close(heun.x, reference.x)
    torch.testing.assert_close(heun.path, reference.path)
    torch.testing.assert_close(heun.grid, reference.grid)
    assert heun.nfe == 8
    turbo = refine.flowturbo(CASE.velocity, None, x0, heun=1, pseudo=3, refine=0)
    assert turbo.nfe == 5 and turbo.path is None
    exact_end = CASE.flow_map(x0, 0.0, 1.0)
    euler = solvers.integrate(CASE.velocity, x0, 5).x
    assert (turbo.x - exact_end).norm(dim=1).mean() < (euler - exact_end).norm(dim=1).mean()


def test_an_exact_refiner_has_zero_loss_and_a_zero_refiner_repeats_the_last_velocity():
    objective = refine.RefinerObjective(CASE.velocity, gaussian_pairs())
    loss = objective(ExactRefiner(), torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float64 and loss.item() < 1e-20  # float64 pairs + float64 refiner: a float64 loss
    x0 = points()
    with_exact = refine.flowturbo(CASE.velocity, ExactRefiner(max_gap=0.25), x0, 1, 1, 2)
    assert with_exact.nfe == 3
    plain = refine.flowturbo(CASE.velocity, lambda x, t, v: torch.zeros_like(v), x0, 1, 1, 2)
    assert not torch.allclose(with_exact.x, plain.x)


def test_refiner_objective_draws_gaps_in_the_training_range_and_honours_weights():
    model = refine.Refiner(max_gap=0.1).double()
    zeros = torch.zeros(5, 2, dtype=torch.float64)
    assert model(zeros, torch.rand(5, dtype=torch.float64), zeros).shape == (5, 2)
    seen = []

    def recording(x, t, v_prev):
        seen.append(t)
        return model(x, t, v_prev)

    recording.max_gap = 0.1
    teacher_times = []

    def teacher(x, t):
        teacher_times.append(t)
        return CASE.velocity(x, t)

    refine.RefinerObjective(teacher, gaussian_pairs())(recording)  # generator=None works
    gaps = teacher_times[1] - teacher_times[0]  # the teacher sees the start s, then s + Δ
    assert (gaps > 0).all() and (gaps <= 0.1 + 1e-12).all() and (teacher_times[1] <= 1).all()
    torch.testing.assert_close(seen[0], teacher_times[1])
    zero = refine.RefinerObjective(CASE.velocity, gaussian_pairs(weight=0.0))(model, torch.Generator().manual_seed(0))
    assert zero.item() == 0.0  # pair weights multiply each point's loss


def test_flowturbo_checks_the_refiners_training_range():
    x0 = points(8)
    assert refine.flowturbo(CASE.velocity, refine.Refiner(max_gap=0.2).double(), x0, 1, 2, 2).nfe == 4  # Δ = 0.2: inside
    with pytest.raises(ValueError, match=r"1/5 = 0\.200.*max_gap = 0\.120.*at least 9 steps"):
        refine.flowturbo(CASE.velocity, refine.Refiner(max_gap=0.12).double(), x0, 1, 2, 2)
    assert refine.flowturbo(CASE.velocity, refine.Refiner(max_gap=0.12).double(), x0, 1, 5, 3).nfe == 7  # Δ = 1/9 ≈ 0.111
    assert refine.flowturbo(CASE.velocity, refine.Refiner(max_gap=0.12), x0, 2, 0, 0).nfe == 4  # no refiner step, no check
    state = refine.Refiner(max_gap=0.12).state_dict()
    loaded = refine.Refiner()
    loaded.load_state_dict(state)
    assert float(loaded.max_gap) == pytest.approx(0.12)  # a checkpoint keeps the training range


def test_bad_input():
    x = points(4)
    good = refine.Refiner().double()
    for max_gap in (0.0, -0.1, 1.5, float("nan"), "0.2"):
        with pytest.raises(ValueError, match="max_gap"):
            refine.Refiner(max_gap=max_gap)
    for name in ("hidden", "depth", "dim"):
        with pytest.raises(ValueError, match=name):
            refine.Refiner(**{name: 0})
    pairs = gaussian_pairs()
    with pytest.raises(TypeError, match="teacher"):
        refine.RefinerObjective("flow", pairs)
    with pytest.raises(TypeError, match="pairs"):
        refine.RefinerObjective(CASE.velocity, data.get("moons"))
    with pytest.raises(ValueError, match="batch_size"):
        refine.RefinerObjective(CASE.velocity, pairs, batch_size=0)
    with pytest.raises(TypeError, match="max_gap"):
        refine.RefinerObjective(CASE.velocity, pairs)(torch.nn.Linear(2, 2).double())
    with pytest.raises(TypeError, match="v must be"):
        refine.flowturbo("flow", None, x)
    with pytest.raises(TypeError, match="x0"):
        refine.flowturbo(CASE.velocity, None, [[0.0, 0.0]])
    with pytest.raises(ValueError, match="x0"):
        refine.flowturbo(CASE.velocity, None, torch.zeros(4))
    with pytest.raises(ValueError, match="heun"):
        refine.flowturbo(CASE.velocity, None, x, heun=0)
    with pytest.raises(ValueError, match="pseudo"):
        refine.flowturbo(CASE.velocity, None, x, pseudo=-1)
    with pytest.raises(ValueError, match="refine"):
        refine.flowturbo(CASE.velocity, good, x, refine=1.5)
    with pytest.raises(ValueError, match="refiner=None"):
        refine.flowturbo(CASE.velocity, None, x, refine=2)
    with pytest.raises(TypeError, match="refiner"):
        refine.flowturbo(CASE.velocity, "refiner", x, refine=2)
    with pytest.raises(ValueError, match="t must"):
        refine.rf_solver_step(CASE.velocity, x, torch.zeros(3, dtype=torch.float64), torch.tensor(0.1))
    for run in (refine.invert, refine.regenerate):
        with pytest.raises(ValueError, match="method"):
            run(CASE.velocity, x, 4, "rk4")
        for nfe in (3, 0, True, 2.0):
            with pytest.raises(ValueError, match="nfe"):
                run(CASE.velocity, x, nfe, "rf_solver")
        with pytest.raises(ValueError, match="x1|z"):
            run(CASE.velocity, torch.zeros(4), 4)
        with pytest.raises(TypeError, match="v must be"):
            run(None, x, 4)
