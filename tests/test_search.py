import pytest
import torch

from toyflow import exercises, sde, search, solvers
from toyflow.closed_form import GaussianToGaussian

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)


def reward(x):
    return x[:, 0]  # prefer points to the right


def start(n=400, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_lookahead_is_the_posterior_mean_of_the_target():
    """Gaussian conditioning: ``E[x1 | x_t] = m + t·s²/σ_t²·(x − t·m)``."""
    x, t = start(), torch.tensor(0.4, dtype=torch.float64)
    m = torch.tensor(CASE.mean, dtype=torch.float64)
    posterior = m + t * CASE.std**2 / CASE.sigma(t) ** 2 * (x - t * m)
    torch.testing.assert_close(search.lookahead(x, CASE.velocity(x, t.expand(len(x))), t), posterior)


def test_one_candidate_is_plain_sampling():
    x0 = start()
    torch.testing.assert_close(search.best_of_n(CASE.velocity, reward, x0, 1, 10).x, solvers.integrate(CASE.velocity, x0, 10).x)
    particle = search.particles(CASE.velocity, reward, x0, 1, 10, "vp", generator=torch.Generator().manual_seed(1))
    plain = sde.euler_maruyama(CASE.velocity, x0, 10, "vp", torch.Generator().manual_seed(1))
    torch.testing.assert_close(particle.x, plain.x)
    assert particle.nfe == plain.nfe == 10


@pytest.mark.parametrize("strategy", ["bon-ode", "bon-sde", "particles", "rollover"])
def test_reward_rises_with_the_budget_within_it(strategy):
    rewards = []
    for budget in (1, 4, 16):
        generator = torch.Generator().manual_seed(2)
        if strategy == "bon-ode":
            result = search.best_of_n(CASE.velocity, reward, start(), budget, 10, generator=generator)
        elif strategy == "bon-sde":
            result = search.best_of_n(CASE.velocity, reward, start(), budget, 10, "vp", generator)
        elif strategy == "particles":
            result = search.particles(CASE.velocity, reward, start(), budget, 10, "vp", 0.0, generator)
        else:
            result = search.rollover(CASE.velocity, reward, start(), budget, 10, "vp", generator)
        assert result.nfe <= budget * 10
        rewards.append(reward(result.x).mean().item())
    assert rewards[0] < rewards[1] < rewards[2]


def test_sde_search_beats_best_of_n_at_sixteen_times_the_budget():
    generator = torch.Generator().manual_seed(3)
    bon = reward(search.best_of_n(CASE.velocity, reward, start(), 16, 10, generator=generator).x).mean()
    smc = reward(search.particles(CASE.velocity, reward, start(), 16, 10, "vp", 0.5, generator).x).mean()
    rbf = reward(search.rollover(CASE.velocity, reward, start(), 16, 10, "vp", generator).x).mean()
    assert smc > bon and rbf > bon


def test_bad_input():
    with pytest.raises(ValueError, match="candidates"):
        search.best_of_n(CASE.velocity, reward, start(4), 0)
    with pytest.raises(ValueError, match="steps"):
        search.particles(CASE.velocity, reward, start(4), 2, steps=1)
    with pytest.raises(ValueError, match="temperature"):
        search.particles(CASE.velocity, reward, start(4), 2, temperature=-1.0)
    with pytest.raises(ValueError, match="quota"):
        search.rollover(CASE.velocity, reward, start(4), 0)


def test_lookahead_checker(capsys):
    assert exercises.check_lookahead(search.lookahead)
    assert not exercises.check_lookahead(lambda x, v, t: x + t * v)
    assert "stepped by t" in capsys.readouterr().out
    assert not exercises.check_lookahead(lambda x, v, t: x + v)
    assert "whole unit step" in capsys.readouterr().out
