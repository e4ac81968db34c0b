import itertools

import pytest
import torch

from toyflow import exercises, schedules, solvers
from toyflow.closed_form import GaussianToGaussian

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.2)


def random_costs(n, seed=0):
    cost = torch.rand(n + 1, n + 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return cost.masked_fill(~torch.ones(n + 1, n + 1, dtype=torch.bool).triu(1), float("inf"))


@pytest.mark.parametrize("seed", range(5))
def test_dynamic_program_equals_brute_force(seed):
    cost = random_costs(10, seed)

    def price(path):
        return sum(cost[a, b] for a, b in zip(path[:-1], path[1:]))

    best = min(([0, *middle, 10] for middle in itertools.combinations(range(1, 10), 2)), key=price)
    assert schedules.bellman(cost, 3) == best


def test_one_step_and_every_step():
    cost = random_costs(6)
    assert schedules.bellman(cost, 1) == [0, 6]
    assert schedules.bellman(cost, 6) == list(range(7))


def test_boss_beats_uniform_on_its_own_cost_and_at_the_endpoint():
    """N(0, I) → N(m, 0.2² I) curves late (the variance shrinks fast near t = 1): BOSS puts short steps there."""
    x0 = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cost, grid = schedules.jump_costs(CASE.velocity, x0, fine=40)
    for steps in (2, 4):
        path = schedules.bellman(cost, steps)
        uniform = list(range(0, 41, 40 // steps))
        assert sum(cost[a, b] for a, b in zip(path[:-1], path[1:])) <= sum(cost[a, b] for a, b in zip(uniform[:-1], uniform[1:]))
        boss = grid[path]
        assert boss[0] == 0 and boss[-1] == 1 and len(boss) == steps + 1 and (boss[1:] > boss[:-1]).all()
        exact = CASE.flow_map(x0, 0.0, 1.0)
        error_boss = (solvers.integrate(CASE.velocity, x0, grid=boss).x - exact).norm(dim=1).mean()
        error_uniform = (solvers.integrate(CASE.velocity, x0, steps).x - exact).norm(dim=1).mean()
        assert error_boss < 0.8 * error_uniform
    torch.testing.assert_close(schedules.boss(CASE.velocity, x0, 4, fine=40), grid[schedules.bellman(cost, 4)])


def test_jump_cost_is_zero_for_a_constant_velocity():
    cost, _ = schedules.jump_costs(lambda x, t: torch.ones_like(x), torch.zeros(8, 2), fine=5)
    assert torch.allclose(cost.triu(1).nan_to_num(posinf=0.0), torch.zeros(6, 6), atol=1e-6)
    torch.testing.assert_close(schedules.uniform(4), torch.linspace(0, 1, 5))


def test_bad_input():
    x0 = torch.zeros(8, 2)
    with pytest.raises(ValueError, match="steps"):
        schedules.uniform(0)
    with pytest.raises(TypeError, match="v must be"):
        schedules.jump_costs("flow", x0)
    with pytest.raises(ValueError, match="x0"):
        schedules.jump_costs(CASE.velocity, torch.zeros(8))
    with pytest.raises(ValueError, match="fine"):
        schedules.jump_costs(CASE.velocity, x0, fine=0)
    with pytest.raises(ValueError, match="reference"):
        schedules.jump_costs(CASE.velocity, x0, reference="rk45")
    for steps in (0, 5, 1.5, True):
        with pytest.raises(ValueError, match="steps"):
            schedules.bellman(random_costs(4), steps)
    for shape in ((3, 4), (5,), (1, 1)):
        with pytest.raises(ValueError, match="square"):
            schedules.bellman(torch.zeros(shape), 1)
    with pytest.raises(TypeError, match="cost"):
        schedules.bellman([[0.0, 1.0], [0.0, 0.0]], 1)
    broken = random_costs(4)
    broken[0, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        schedules.bellman(broken, 2)
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, 5\]"):
        schedules.boss(CASE.velocity, x0, 6, fine=5)
    schedule = torch.tensor([0.0, 0.5, 1.0])
    with pytest.raises(TypeError, match="teacher"):
        schedules.BossStraightening(None, x0, schedule)
    with pytest.raises(ValueError, match="x0"):
        schedules.BossStraightening(CASE.velocity, torch.zeros(2, 2, 2), schedule)
    for grid in (torch.tensor([0.0, 0.7, 0.5, 1.0]), torch.tensor([0.0, 1.5]), torch.tensor([0.0]), torch.tensor([1.0, 0.0])):
        with pytest.raises(ValueError, match="schedule must be"):
            schedules.BossStraightening(CASE.velocity, x0, grid)
    for name in ("substeps", "batch_size"):
        with pytest.raises(ValueError, match=name):
            schedules.BossStraightening(CASE.velocity, x0, schedule, **{name: 0})


def test_straightening_targets_are_the_exact_chords_of_the_schedule():
    """On the Gaussian case the chord from x̄_k to x̄_{k+1} is known: (φ_{t_k→t_{k+1}}(x̄_k) − x̄_k)/(t_{k+1} − t_k).
    A field that returns exactly that chord has (almost) zero loss, and Euler with it on the schedule is exact."""
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    schedule = torch.tensor([0.0, 0.3, 0.55, 1.0], dtype=torch.float64)

    def chord(x, t):
        k = torch.searchsorted(schedule, t.contiguous(), right=True)  # the index of t_{k+1}
        t_next = schedule[k]
        ends = torch.stack([CASE.flow_map(x[i:i + 1], float(t[i]), float(t_next[i]))[0] for i in range(len(x))])
        return (ends - x) / (t_next - t)[:, None]

    objective = schedules.BossStraightening(CASE.velocity, x0, schedule, substeps=20, batch_size=32)
    assert objective(chord, torch.Generator().manual_seed(1)).item() < 1e-8
    loss = objective(CASE.velocity)  # the curved teacher is not straight on three steps; generator=None works
    assert loss.dtype == torch.float64 and loss.item() > 1e-4
    straight = solvers.integrate(chord, x0, grid=schedule).x
    torch.testing.assert_close(straight, CASE.flow_map(x0, 0.0, 1.0), atol=1e-6, rtol=1e-6)


def test_bellman_checker(capsys):
    assert exercises.check_bellman(schedules.bellman)

    def greedy(cost, steps):
        path, last = [0], cost.shape[0] - 1
        for left in range(steps - 1, 0, -1):
            path.append(int(cost[path[-1], path[-1] + 1:last - left + 1].argmin()) + path[-1] + 1)
        return path + [last]

    assert not exercises.check_bellman(greedy)
    assert "greedily" in capsys.readouterr().out
    assert not exercises.check_bellman(lambda cost, steps: torch.linspace(0, len(cost) - 1, steps + 1).round().long().tolist())
    assert "uniform" in capsys.readouterr().out
