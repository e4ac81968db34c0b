import pytest
import torch

from toyflow import data, metrics
from toyflow.closed_form import GaussianToGaussian

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)


def test_w2_of_a_translation_is_its_length():
    x = torch.randn(300, 2)
    assert metrics.w2(x, x) == pytest.approx(0.0, abs=1e-6)
    assert metrics.w2(x, x + torch.tensor([3.0, 4.0])) == pytest.approx(5.0, rel=1e-5)


def test_w2_between_gaussian_samples_approaches_the_closed_form():
    """W2(N(0, I), N(m, s²I))² = ‖m‖² + d(1 − s)²."""
    g = torch.Generator().manual_seed(0)
    x, y = CASE.source.sample(2000, g), CASE.target.sample(2000, g)
    exact = (5.0 + 2 * 0.5**2) ** 0.5
    assert metrics.w2(x, y) == pytest.approx(exact, abs=0.1)


def test_sliced_w2_equals_w2_in_one_dimension():
    x, y = torch.randn(500, 1), 2 * torch.randn(500, 1) + 1
    assert metrics.sliced_w2(x, y, projections=4) == pytest.approx(metrics.w2(x, y), rel=1e-6)


def test_mmd_is_zero_for_equal_sets_and_grows_with_a_shift():
    x = torch.randn(400, 2)
    assert metrics.mmd(x, x) == pytest.approx(0.0, abs=1e-9)
    assert 0 < metrics.mmd(x, x + 0.5) < metrics.mmd(x, x + 2.0)


def test_straightness_is_zero_for_straight_constant_speed_paths_and_positive_otherwise():
    """The OT map x ↦ m + s·x of the Gaussian case, followed along straight lines, has
    v(x, t) = m + (s − 1)x0 with x0 = (x − t·m)/(1 + t(s − 1))."""
    m, s = torch.tensor(CASE.mean), CASE.std

    def straight(x, t):
        t = t[:, None]
        return m + (s - 1) * (x - t * m) / (1 + t * (s - 1))

    x0 = CASE.source.sample(500, torch.Generator().manual_seed(0))
    assert metrics.straightness(straight, x0) == pytest.approx(0.0, abs=1e-8)
    assert metrics.straightness(CASE.velocity, x0) > 0.05


def test_transport_cost():
    assert metrics.transport_cost(torch.zeros(3, 2), torch.tensor([[3.0, 4.0]] * 3)) == 25.0


def test_w2_by_nfe_improves_with_steps_on_the_gaussian_flow():
    g = torch.Generator().manual_seed(0)
    x0, target = CASE.source.sample(1000, g), CASE.target.sample(1000, g)
    curve = metrics.w2_by_nfe(CASE.velocity, x0, target, nfes=(1, 8, 100))
    assert curve[1] > curve[8] > 0
    assert curve[100] < 0.15
    assert set(metrics.w2_by_nfe(CASE.velocity, x0, target, nfes=(4,), method="rk4")) == {4}


def test_divergence_of_a_linear_field_is_its_trace():
    a = torch.tensor([[1.0, 2.0], [3.0, -4.0]])
    out, div = metrics.divergence(lambda x, t: x @ a.T, torch.randn(5, 2), torch.zeros(5))
    torch.testing.assert_close(div, torch.full((5,), -3.0))


def test_cnf_log_prob_of_the_gaussian_flow_is_the_target_density():
    x1 = CASE.target.sample(200, torch.Generator().manual_seed(1)).double()
    source = GaussianToGaussian(mean=(2.0, -1.0), std=0.5).source
    log_prob = metrics.cnf_log_prob(CASE.velocity, x1, source.log_prob, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(log_prob, CASE.target.log_prob(x1), atol=1e-5, rtol=0)


def test_bad_input():
    with pytest.raises(ValueError, match="same dimension"):
        metrics.w2(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(n, d\)"):
        metrics.w2(torch.zeros(3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="heun uses 2 evaluations a step; nfe=3"):
        metrics.w2_by_nfe(CASE.velocity, torch.zeros(3, 2), torch.zeros(3, 2), nfes=(3,), method="heun")
    with pytest.raises(ValueError, match="same shape"):
        metrics.sliced_w2(torch.zeros(3, 2), torch.zeros(4, 2))


NAN_POINTS = torch.tensor([[0.0, 0.0], [float("nan"), 1.0]])
INF_POINTS = torch.tensor([[0.0, 0.0], [1.0, float("inf")]])
DISTANCES = {"w2": metrics.w2, "sliced_w2": metrics.sliced_w2, "mmd": metrics.mmd, "fine_w2": metrics.fine_w2}


@pytest.mark.parametrize("name", sorted(DISTANCES))
@pytest.mark.parametrize(
    "x, y, message",
    [
        (NAN_POINTS, torch.zeros(2, 2), r"x has 1 point\(s\) with NaN or inf coordinates \(the first is row 1\)"),
        (torch.zeros(2, 2), INF_POINTS, r"y has 1 point\(s\) with NaN or inf"),
        (torch.zeros(0, 2), torch.zeros(0, 2), r"x must have shape \(n, d\) with n >= 1, got \(0, 2\)"),
        (torch.zeros(3), torch.zeros(3, 2), r"x must have shape \(n, d\) with n >= 1, got \(3,\)"),
    ],
)
def test_distances_reject_non_finite_empty_or_flat_sets(name, x, y, message):
    with pytest.raises(ValueError, match=message):
        DISTANCES[name](x, y)


@pytest.mark.parametrize("bandwidths", [(0.0,), (1.0, -0.5), (), (float("inf"),)])
def test_mmd_rejects_non_positive_bandwidths(bandwidths):
    with pytest.raises(ValueError, match="bandwidths must be one or more finite numbers > 0"):
        metrics.mmd(torch.zeros(3, 2), torch.ones(3, 2), bandwidths)


def test_more_bad_input():
    with pytest.raises(TypeError, match="x must be a tensor"):
        metrics.w2([[0.0, 0.0]], torch.zeros(1, 2))
    with pytest.raises(ValueError, match="projections must be a positive int, got 0"):
        metrics.sliced_w2(torch.zeros(3, 2), torch.zeros(3, 2), projections=0)
    with pytest.raises(ValueError, match="same dimension"):
        metrics.mmd(torch.zeros(3, 2), torch.zeros(3, 3))


def test_transport_cost_w2_by_nfe_and_cnf_log_prob_name_their_bad_arguments():
    with pytest.raises(ValueError, match=r"x0 must have shape \(n, d\) with n >= 1, got \(0, 2\)"):
        metrics.transport_cost(torch.zeros(0, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="x1 has 1 point"):
        metrics.transport_cost(torch.zeros(2, 2), torch.tensor([[0.0, 0.0], [float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="nfes must list at least one"):
        metrics.w2_by_nfe(CASE.velocity, torch.zeros(3, 2), torch.zeros(3, 2), nfes=())
    with pytest.raises(ValueError, match="rtol and atol must be > 0"):
        metrics.cnf_log_prob(CASE.velocity, torch.zeros(3, 2), CASE.source.log_prob, rtol=-1.0)


@pytest.mark.parametrize("scale, shift", [(1.0, (3.0, 4.0)), (2.0, (0.0, 0.0)), (0.5, (-1.0, 0.5))])
def test_fine_w2_equals_w2_for_a_shift_and_a_scaling(scale, shift):
    """For y = s·x + m the map is optimal and evenly spaced directions average θθᵀ to I/2 exactly,
    so fine_w2 = W2 = (E‖(s − 1)x + m‖²)^{1/2}."""
    x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0)).double()
    y = scale * x + torch.tensor(shift, dtype=torch.float64)
    exact = float(((y - x) ** 2).sum(1).mean().sqrt())
    assert metrics.fine_w2(x, y, projections=3) == pytest.approx(exact, rel=1e-9)
    assert metrics.w2(x, y) == pytest.approx(exact, rel=1e-6)


def test_fine_w2_is_a_lower_bound_of_w2_zero_for_equal_sets_and_w2_in_one_dimension():
    g = torch.Generator().manual_seed(0)
    x, y = data.get("moons").sample(300, g), data.get("8gaussians").sample(300, g)
    assert 0.5 * metrics.w2(x, y) < metrics.fine_w2(x, y) <= metrics.w2(x, y) + 1e-9
    assert metrics.fine_w2(x, x) == 0.0
    a, b = torch.randn(200, 1, generator=g), 2 * torch.randn(200, 1, generator=g) + 1
    assert metrics.fine_w2(a, b) == pytest.approx(metrics.w2(a, b), rel=1e-6)


def test_fine_w2_ranks_shifted_and_scaled_targets_like_w2_and_sees_below_w2s_floor():
    """Both metrics grow with the size of a shift or a scaling of the target; fine_w2 on 50,000 points
    also sees a shift of 0.05, far below exact W2's floor (about 0.25 at 2,000 moons points)."""
    moons, g = data.get("moons"), torch.Generator().manual_seed(0)
    x, y = moons.sample(50_000, g), moons.sample(50_000, g)
    center = y.mean(0)
    shifted = [y + torch.tensor([d, 0.0]) for d in (0.25, 0.5, 1.0)]
    scaled = [center + s * (y - center) for s in (1.1, 1.25, 1.5)]
    for family in (shifted, scaled):
        exact = [metrics.w2(x[:800], z[:800]) for z in family]  # W2 on few points: it only sees large changes
        fine = [metrics.fine_w2(x, z) for z in family]
        assert exact == sorted(exact) and fine == sorted(fine), (exact, fine)
    same = metrics.fine_w2(x, y)  # two draws of the same distribution: only the sampling floor
    small = [metrics.fine_w2(x, y + torch.tensor([d, 0.0])) for d in (0.02, 0.05, 0.1)]
    assert same < 0.05 and small == sorted(small) and small[1] > 1.5 * same, (same, small)


def test_floor_is_the_median_over_independent_draws_of_the_target():
    moons = data.get("moons")
    value = metrics.floor(metrics.w2, moons, 200, repeats=3, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    by_hand = sorted(metrics.w2(moons.sample(200, g), moons.sample(200, g)) for _ in range(3))[1]
    assert value == by_hand
    fine = metrics.floor(metrics.fine_w2, moons, 200, repeats=3, generator=torch.Generator().manual_seed(0))
    assert 0 < fine < value


def test_fine_w2_and_floor_name_their_bad_arguments():
    with pytest.raises(ValueError, match="same shape"):
        metrics.fine_w2(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="projections must be an int >= 2 .* got 1"):
        metrics.fine_w2(torch.zeros(3, 2), torch.zeros(3, 2), projections=1)
    with pytest.raises(TypeError, match="metric must be a callable"):
        metrics.floor("w2", data.get("moons"), 10)
    with pytest.raises(TypeError, match=r"target must have a sample\(n, generator\) method"):
        metrics.floor(metrics.w2, torch.zeros(3, 2), 10)
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        metrics.floor(metrics.w2, data.get("moons"), 0)
    with pytest.raises(ValueError, match="repeats must be a positive int, got 0"):
        metrics.floor(metrics.w2, data.get("moons"), 10, repeats=0)
