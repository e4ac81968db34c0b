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
    """Greedy particles and RBF maximise; SMC samples p1·exp(r/λ), which beats best-of-16 once λ is small
    (here the tilted mean is m₀ + s²/λ = 4.5, best-of-16 reaches about m₀ + 1.8·s = 2.9)."""
    generator = torch.Generator().manual_seed(3)
    bon = reward(search.best_of_n(CASE.velocity, reward, start(), 16, 10, generator=generator).x).mean()
    greedy = reward(search.particles(CASE.velocity, reward, start(), 16, 10, "vp", 0.0, generator).x).mean()
    smc = reward(search.particles(CASE.velocity, reward, start(), 16, 10, "vp", 0.1, generator).x).mean()
    rbf = reward(search.rollover(CASE.velocity, reward, start(), 16, 10, "vp", generator).x).mean()
    assert greedy > bon and smc > bon and rbf > bon, (greedy, smc, rbf, bon)


def test_best_of_n_keeps_the_best_candidate_of_each_point():
    """The contract: candidate 0 starts at x0, the others at fresh draws; the endpoint of highest reward is kept."""
    x0, generator = start(50), torch.Generator().manual_seed(7)
    best = search.best_of_n(CASE.velocity, reward, x0, 4, 5, generator=generator)
    starts = torch.cat([x0[:, None], torch.randn(50, 3, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)], 1)
    ends = solvers.integrate(CASE.velocity, starts.view(-1, 2), 5).x.view(50, 4, 2)
    torch.testing.assert_close(best.x, ends[torch.arange(50), reward(ends.view(-1, 2)).view(50, 4).argmax(1)])
    assert best.nfe == 20 and best.path is None and best.grid.shape == (6,)


def test_smc_samples_the_tilted_target_on_the_gaussian_case():
    """SMC with incremental weights targets p1·exp(r/λ): for N(m, s²I) and r(x) = x₀ that is N(m + (s²/λ)e₀, s²I), a
    shift of 0.25/λ. Resampling by exp(r_k/λ) at every step (the tilt compounding over the steps) would shift far more."""
    temperature, x0 = 0.5, start(1000, seed=5)
    smc = search.particles(CASE.velocity, reward, x0, 32, 20, sde.quadratic(3.0), temperature, torch.Generator().manual_seed(6))
    shift = smc.x[:, 0].mean().item() - CASE.mean[0]
    assert abs(shift - CASE.std**2 / temperature) < 0.15, f"SMC shifted the mean by {shift:.3f}, the target by 0.5"
    assert abs(smc.x[:, 1].mean().item() - CASE.mean[1]) < 0.08 and abs(smc.x[:, 1].std().item() - CASE.std) < 0.08
    assert smc.nfe == 32 * 20


def test_search_along_the_vp_path():
    """The paper's interpolant conversion: the same searches on the VP path with g = 3(1 − τ)² still raise the reward."""
    rewards = []
    for budget in (1, 8):
        for run in (search.particles, search.rollover):
            solution = run(CASE.velocity, reward, start(), budget, 10, sde.quadratic(3.0),
                           generator=torch.Generator().manual_seed(4), path=sde.vp_path())
            rewards.append(reward(solution.x).mean().item())
    assert rewards[2] > rewards[0] + 0.3 and rewards[3] > rewards[1] + 0.3, rewards
    plain = sde.euler_maruyama(CASE.velocity, start(), 10, sde.quadratic(3.0), torch.Generator().manual_seed(4),
                               path=sde.vp_path())
    assert abs(plain.x[:, 0].mean().item() - CASE.mean[0]) < 0.1  # one particle is the plain VP sampler: lands on the data


def nan_reward(x):
    return torch.full((len(x),), float("nan"))


def column_reward(x):
    return x[:, :1]  # (n, 1) instead of (n,)


def test_bad_input():
    x = start(4)
    with pytest.raises(ValueError, match="candidates must be an int >= 1, got 0"):
        search.best_of_n(CASE.velocity, reward, x, 0)
    with pytest.raises(ValueError, match="count must be an int >= 1, got 2.5"):
        search.particles(CASE.velocity, reward, x, 2.5)
    with pytest.raises(ValueError, match="quota must be an int >= 1, got 0"):
        search.rollover(CASE.velocity, reward, x, 0)
    with pytest.raises(ValueError, match="steps must be an int >= 2, got 1"):
        search.particles(CASE.velocity, reward, x, 2, steps=1)
    with pytest.raises(ValueError, match="steps must be an int >= 2, got 1"):
        search.rollover(CASE.velocity, reward, x, 2, steps=1)
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        search.best_of_n(CASE.velocity, reward, x, 2, steps=0)
    for temperature in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
            search.particles(CASE.velocity, reward, x, 2, temperature=temperature)
    with pytest.raises(ValueError, match=r"x0 must have shape \(n, d\)"):
        search.best_of_n(CASE.velocity, reward, x[0], 2)
    with pytest.raises(TypeError, match="reward must be a reward"):
        search.particles(CASE.velocity, 1.0, x, 2)
    with pytest.raises(TypeError, match="v must be a velocity field"):
        search.rollover(None, reward, x, 2)
    with pytest.raises(ValueError, match=r"diffusion must be one of"):
        search.particles(CASE.velocity, reward, x, 2, diffusion="brownian")
    with pytest.raises(TypeError, match="path must be a paths.Interpolant"):
        search.particles(CASE.velocity, reward, x, 2, path="vp")


@pytest.mark.parametrize("strategy", ["bon-ode", "bon-sde", "particles", "smc", "rollover"])
def test_a_bad_reward_is_named(strategy):
    x = start(4)
    runs = {"bon-ode": lambda r: search.best_of_n(CASE.velocity, r, x, 2, 4),
            "bon-sde": lambda r: search.best_of_n(CASE.velocity, r, x, 2, 4, "vp"),
            "particles": lambda r: search.particles(CASE.velocity, r, x, 2, 4),
            "smc": lambda r: search.particles(CASE.velocity, r, x, 2, 4, temperature=1.0),
            "rollover": lambda r: search.rollover(CASE.velocity, r, x, 2, 4)}
    with pytest.raises(ValueError, match=r"reward 'nan_reward' returned NaN or inf for \d+ of \d+ points"):
        runs[strategy](nan_reward)
    with pytest.raises(ValueError, match=r"reward 'column_reward' must return a tensor of shape \(\d+,\) .* got \(\d+, 1\)"):
        runs[strategy](column_reward)
    with pytest.raises(ValueError, match=r"reward '<lambda>' must return a tensor .* got list"):
        runs[strategy](lambda points: points[:, 0].tolist())


def test_lookahead_checker(capsys):
    assert exercises.check_lookahead(search.lookahead)
    assert not exercises.check_lookahead(lambda x, v, t: x + t * v)
    assert "stepped by t" in capsys.readouterr().out
    assert not exercises.check_lookahead(lambda x, v, t: x + v)
    assert "whole unit step" in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cpu_generator_drives_every_sampler_on_cuda_data():
    """The device rule: draws happen on the generator's device (CPU) and move to the data's (CUDA); same numbers."""
    x0, field = start(8), lambda x, t: CASE.velocity(x, t)
    for run in (lambda x, g: search.best_of_n(field, reward, x, 3, 4, "vp", g),
                lambda x, g: search.particles(field, reward, x, 3, 4, "vp", 1.0, g),
                lambda x, g: search.rollover(field, reward, x, 3, 4, "vp", g, path=sde.vp_path()),
                lambda x, g: sde.euler_maruyama(field, x, 4, "vp", g)):
        on_gpu = run(x0.cuda(), torch.Generator().manual_seed(0))
        on_cpu = run(x0, torch.Generator().manual_seed(0))
        assert on_gpu.x.device.type == "cuda"
        torch.testing.assert_close(on_gpu.x.cpu(), on_cpu.x)
