"""Reward fine-tuning: the Gaussian policy of the SDE step, advantages, the objectives on a tiny flow."""

import copy
import math

import pytest
import torch

import toyflow
from toyflow import finetune, models, sde, solvers, train
from toyflow.closed_form import GaussianToGaussian


def test_sde_step_is_flow_grpo_policy_mean_in_our_time():
    """METHODS §19: with g = a√((1 − t)/t) Flow-GRPO's Euler–Maruyama step is N(μ, g²h) with
    μ = x + h[(1 + a²/2)·v − a²·x/(2t)]; toyflow.sde.vp(a/√2) is that g. toyflow's step (sde.transition) solves
    the noise part exactly (it keeps the marginals at large g²h), so it is that law to first order in h: the gap is O(h²)."""
    a = 0.7
    field = GaussianToGaussian((1.0, -1.0), 0.6).velocity
    x, t = torch.randn(50, 2, dtype=torch.float64), torch.rand(50, dtype=torch.float64) * 0.8 + 0.1
    v = field(x, t)
    for h in (1e-2, 1e-3):
        mean, std = sde.transition(field, x, t, h, sde.vp(a / math.sqrt(2)))
        flow_grpo = x + h * ((1 + a**2 / 2) * v - a**2 * x / (2 * t[:, None]))
        assert (mean - flow_grpo).abs().max() < 50 * h**2
        torch.testing.assert_close(std[:, 0], a * ((1 - t) / t * h).sqrt(), rtol=10 * h, atol=0)


def test_gaussian_log_prob_and_group_advantages():
    x, mean, std = torch.randn(7, 2), torch.randn(7, 2), torch.rand(7, 1) + 0.1
    expected = torch.distributions.Normal(mean, std).log_prob(x).sum(1)
    assert torch.allclose(finetune.gaussian_log_prob(x, mean, std), expected, atol=1e-5)
    reward = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    a = finetune.advantages(reward, groups=2)
    assert torch.allclose(a, torch.tensor([-1.0, 0.0, 1.0, -1.0, 0.0, 1.0]), atol=1e-6)
    with pytest.raises(ValueError, match="groups must divide"):
        finetune.advantages(reward, groups=4)


def test_clipped_surrogate_stops_the_gradient_past_the_clip():
    ratio = torch.tensor([0.5, 1.0, 1.5, 0.5, 1.5], requires_grad=True)
    advantage = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0])
    value = finetune.clipped_surrogate(ratio, advantage, 0.2)
    assert torch.allclose(value, torch.tensor([0.5, 1.0, 1.2, -0.8, -1.5]))
    value.sum().backward()
    assert torch.equal(ratio.grad, torch.tensor([1.0, 1.0, 0.0, 0.0, -1.0]))


def _tiny_reference():
    toyflow.seed(0)
    return models.VelocityMLP(hidden=16, depth=2)


def test_path_kl_is_zero_for_the_same_model_and_positive_otherwise():
    reference = _tiny_reference()
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    assert finetune.path_kl(reference, reference, x0, generator=torch.Generator().manual_seed(1)) == pytest.approx(0.0, abs=1e-9)
    other = copy.deepcopy(reference)
    with torch.no_grad():
        other.net[-1].bias += 0.5
    assert finetune.path_kl(other, reference, x0, generator=torch.Generator().manual_seed(1)) > 0.1


def test_flow_grpo_first_update_is_on_policy_and_kl_vanishes_at_the_reference(generator):
    reference = _tiny_reference()
    model = copy.deepcopy(reference)
    objective = finetune.FlowGRPO(reference, reward=lambda x: -x.norm(dim=1), batch_size=32, steps=5, kl=1.0)
    loss = objective(model, generator)  # ρ = 1 and μ_θ = μ_ref: the loss is −mean(A) = 0
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    loss.backward()
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())  # the policy gradient is not zero
    with pytest.raises(ValueError, match="steps must be an int >= 2"):
        finetune.FlowGRPO(reference, reward=lambda x: x[:, 0], steps=1)


def test_flow_dpo_loss_is_log_two_at_the_reference(generator):
    reference = _tiny_reference()
    objective = finetune.FlowDPO(reference, reward=lambda x: x[:, 0], batch_size=32, pool=256, steps=4)
    assert objective(copy.deepcopy(reference), generator).item() == pytest.approx(math.log(2), abs=1e-6)


def test_reward_weighted_regression_with_a_flat_reward_is_flow_matching_on_own_samples(generator):
    reference = _tiny_reference()
    objective = finetune.RewardWeightedRegression(reference, reward=lambda x: torch.zeros(len(x)), batch_size=16)
    assert torch.allclose(objective.weights(torch.zeros(16)), torch.ones(16))
    assert objective(copy.deepcopy(reference), generator).item() > 0
    with pytest.raises(ValueError, match="beta must be > 0"):
        finetune.RewardWeightedRegression(reference, reward=lambda x: x[:, 0], beta=0.0)


@pytest.mark.parametrize("method", ["grpo", "reinflow", "awm", "rwr", "dpo"])
def test_every_method_raises_the_reward_of_a_tiny_flow(method):
    reference = _tiny_reference()
    reward = lambda x: -((x - torch.tensor([2.0, 2.0])) ** 2).sum(1).sqrt()  # noqa: E731
    model = copy.deepcopy(reference)
    objective = {
        "grpo": lambda: finetune.FlowGRPO(reference, reward, batch_size=32, steps=5),
        "reinflow": lambda: finetune.ReinFlow(reward, batch_size=32, steps=5),
        "awm": lambda: finetune.AdvantageWeightedMatching(reference, reward, batch_size=64, steps=5),
        "rwr": lambda: finetune.RewardWeightedRegression(reference, reward, batch_size=64, steps=5),
        "dpo": lambda: finetune.FlowDPO(reference, reward, batch_size=64, steps=5, pool=512),
    }[method]()
    if method == "reinflow":
        model = finetune.NoisyPolicy(model)
    x0 = torch.randn(256, 2, generator=torch.Generator().manual_seed(9))
    before = reward(solvers.integrate(reference, x0, 5).x).mean()
    train.fit(model, objective, 60, lr=3e-3, schedule="constant", progress=False)
    after = reward(solvers.integrate(model, x0, 5).x).mean()
    assert after > before + 0.2, (method, before.item(), after.item())
    assert len(objective.history) >= 30


def test_reinflow_needs_a_noisy_policy(generator):
    with pytest.raises(TypeError, match="NoisyPolicy"):
        finetune.ReinFlow(lambda x: x[:, 0])(_tiny_reference(), generator)
    with pytest.raises(ValueError, match="sigma_min"):
        finetune.NoisyPolicy(_tiny_reference(), sigma_min=0.5, sigma_max=0.1)


def test_advantage_and_surrogate_checkers_accept_the_reference_and_name_mistakes(capsys):
    from toyflow import exercises

    assert exercises.check_group_advantages(finetune.advantages)
    assert not exercises.check_group_advantages(lambda r, g: (r - r.mean()) / (r.std() + 1e-8))
    assert "within each group" in capsys.readouterr().out
    assert not exercises.check_group_advantages(lambda r, g: (r.view(g, -1) - r.view(g, -1).mean(1, keepdim=True)).view(-1))
    assert "standard deviation" in capsys.readouterr().out
    assert exercises.check_clipped_surrogate(finetune.clipped_surrogate)
    for wrong, words in [(lambda r, a, c: r * a, "no clipping"), (lambda r, a, c: r.clamp(1 - c, 1 + c) * a, "only the clipped"),
                         (lambda r, a, c: torch.maximum(r * a, r.clamp(1 - c, 1 + c) * a), "max instead of min")]:
        assert not exercises.check_clipped_surrogate(wrong)
        assert words in capsys.readouterr().out
