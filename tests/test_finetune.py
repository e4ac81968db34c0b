"""Reward fine-tuning: the Gaussian policy of the SDE step, advantages, the objectives on a tiny flow."""

import copy
import math

import pytest
import torch
from torch import nn

import toyflow
from toyflow import _base, finetune, models, policy, sde, solvers, train
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
    for groups in (4, 6):  # 4 does not divide 6 rewards; 6 groups of one have no spread
        with pytest.raises(ValueError, match="groups must split the batch into equal groups of at least 2"):
            finetune.advantages(reward, groups=groups)
    with pytest.raises(ValueError, match=r"groups must be an int >= 1, got 0"):
        finetune.advantages(reward, groups=0)
    with pytest.raises(ValueError, match=r"reward must be a tensor of shape \(n,\)"):
        finetune.advantages(reward.view(2, 3))
    assert torch.equal(finetune.advantages(torch.ones(4)), torch.zeros(4))  # equal rewards: no preference


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
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        finetune.RewardWeightedRegression(reference, reward=lambda x: x[:, 0], beta=0.0)
    grouped = finetune.RewardWeightedRegression(reference, reward=lambda x: x[:, 0], batch_size=4, groups=2)
    weights = grouped.weights(torch.tensor([0.0, 1.0, 5.0, 6.0]))
    assert torch.allclose(weights, (torch.tensor([2.0, 2.0 * math.e]) / (1 + math.e)).repeat(2))  # m·softmax per group


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


# ---------------------------------------------------------------- the objective contract and bad input


class _Float64Noise:
    """A float64 N(0, I) in 2D: the source of the float64 checks."""

    draws_points = True

    def sample(self, n, generator=None, device=None):
        return _base.randn((n, 2), generator, device=device, dtype=torch.float64)


def _objectives(reference, reward, source):
    return {
        "grpo": finetune.FlowGRPO(reference, reward, source, batch_size=8, steps=3),
        "dance": finetune.FlowGRPO(reference, reward, source, batch_size=8, steps=4, groups=2, shared_noise=True,
                                   step_fraction=0.6),
        "guard": finetune.FlowGRPO(reference, reward, source, batch_size=8, steps=3, guard=True, kl=0.1),
        "reinflow": finetune.ReinFlow(reward, source, batch_size=8, steps=3),
        "awm": finetune.AdvantageWeightedMatching(reference, reward, source, batch_size=8, steps=3),
        "rwr": finetune.RewardWeightedRegression(reference, reward, source, batch_size=8, steps=3),
        "dpo": finetune.FlowDPO(reference, reward, source, batch_size=8, steps=3, pool=16),
    }


@pytest.mark.parametrize("name", ["grpo", "dance", "guard", "reinflow", "awm", "rwr", "dpo"])
def test_every_objective_takes_no_generator_and_keeps_float64(name):
    reference = _tiny_reference().double()
    objective = _objectives(reference, lambda x: -x.norm(dim=1), _Float64Noise())[name]
    model = copy.deepcopy(reference)
    model = finetune.NoisyPolicy(model).double() if name == "reinflow" else model
    for _ in range(3):  # FlowGRPO reuses its rollout: a fresh one on the third call
        loss = objective(model)
        assert loss.ndim == 0 and loss.dtype == torch.float64 and torch.isfinite(loss)
        loss.backward()
    assert len(objective.history) >= 2


@pytest.mark.parametrize("name", ["grpo", "dance", "guard", "reinflow", "awm", "rwr", "dpo"])
@pytest.mark.parametrize("bad_reward, words", [
    (lambda x: torch.full((len(x),), float("nan")), "returned NaN or inf for 8 of 8 points"),
    (lambda x: x[:, 0] / 0, "returned NaN or inf"),
    (lambda x: x, r"must return a tensor of shape \(8,\)"),
    (lambda x: x[:, 0].tolist(), r"must return a tensor of shape \(8,\) for points \(8, 2\), got list"),
])
def test_a_bad_reward_raises_and_names_the_reward(name, bad_reward, words, generator):
    reference = _tiny_reference()
    objective = _objectives(reference, bad_reward, toyflow.data.get("gaussian"))[name]
    objective.batch_size = 8
    model = finetune.NoisyPolicy(copy.deepcopy(reference)) if name == "reinflow" else copy.deepcopy(reference)
    with pytest.raises(ValueError, match=rf"reward '<lambda>' {words}"):
        objective(model, generator)


_BAD_FIELDS = [  # (objective, field, value, error, words)
    ("grpo", "steps", 1, ValueError, "steps must be an int >= 2, got 1"),
    ("grpo", "batch_size", 0, ValueError, "batch_size must be an int >= 1, got 0"),
    ("grpo", "clip", 0.0, ValueError, "clip must be a finite number > 0"),
    ("grpo", "kl", -1.0, ValueError, "kl must be a finite number >= 0"),
    ("grpo", "kl", float("nan"), ValueError, "kl must be a finite number >= 0"),
    ("grpo", "updates", 0, ValueError, "updates must be an int >= 1, got 0"),
    ("grpo", "groups", 3, ValueError, "groups must split the batch"),  # 3 does not divide 8
    ("grpo", "groups", 8, ValueError, "a group of one has no spread"),
    ("grpo", "guard", "yes", TypeError, "guard must be True or False, got 'yes'"),
    ("grpo", "shared_noise", 1, TypeError, "shared_noise must be True or False, got 1"),
    ("grpo", "step_fraction", 0.0, ValueError, "step_fraction must be a finite number > 0 and <= 1"),
    ("grpo", "step_fraction", 1.5, ValueError, "step_fraction must be a finite number > 0 and <= 1"),
    ("grpo", "diffusion", "loud", ValueError, "diffusion.*'loud'"),
    ("grpo", "reward", 3.0, TypeError, "reward must be a callable reward"),
    ("grpo", "reference", None, TypeError, "reference must be the frozen pretrained velocity"),
    ("grpo", "source", "gaussian", TypeError, "source must be a distribution"),
    ("reinflow", "entropy", -0.1, ValueError, "entropy must be a finite number >= 0"),
    ("reinflow", "steps", 0, ValueError, "steps must be an int >= 1, got 0"),
    ("reinflow", "groups", 5, ValueError, "groups must split the batch"),
    ("awm", "kl", -1.0, ValueError, "kl must be a finite number >= 0"),
    ("awm", "groups", 0, ValueError, "groups must be an int >= 1, got 0"),
    ("awm", "batch_size", 1, ValueError, "a group of one has no spread"),
    ("rwr", "beta", -1.0, ValueError, "beta must be a finite number > 0"),
    ("dpo", "beta", -1.0, ValueError, "beta must be a finite number > 0"),
    ("dpo", "beta", 0, ValueError, "beta must be a finite number > 0"),
    ("dpo", "pool", 1, ValueError, "pool must be an int >= 2, got 1"),
    ("dpo", "steps", 2.5, ValueError, "steps must be an int >= 1, got 2.5"),
]


@pytest.mark.parametrize("name, field, value, error, words", _BAD_FIELDS)
def test_a_bad_field_raises_and_names_the_field(name, field, value, error, words):
    reference = _tiny_reference()
    good = _objectives(reference, lambda x: x[:, 0], toyflow.data.get("gaussian"))[name]
    fields = {f: getattr(good, f) for f in good.__dataclass_fields__ if f != "history"}
    with pytest.raises(error, match=words):
        type(good)(**{**fields, field: value})


def test_noisy_policy_checks_its_noise_range():
    for low, high in [(0.5, 0.1), (0.0, 0.3), (-1.0, 0.3)]:
        with pytest.raises(ValueError, match="sigma_m"):
            finetune.NoisyPolicy(_tiny_reference(), sigma_min=low, sigma_max=high)


# ---------------------------------------------------------------- Flow-GRPO against the papers


class _Shifted(nn.Module):
    """``v(x, t) = v_ref(x, t) + c``: a model whose every step mean is off the reference's by a known amount."""

    def __init__(self, reference, shift):
        super().__init__()
        self.reference, self.shift = reference, shift

    def forward(self, x, t):
        return self.reference(x, t) + self.shift


def test_flow_grpo_kl_is_the_mean_of_the_per_step_kls_and_path_kl_their_sum():
    """Flow-GRPO's objective averages the KL over the K − 1 Gaussian steps. With v = v_ref + c every step's KL is
    known: sde.transition's mean moves by c·(h + (1 − e^{−κ})·t), so KL_k = ‖c‖²(h + (1 − e^{−κ_k})t_k)²/(2s_k²)."""
    reference = _tiny_reference().double()
    shift = torch.tensor([0.3, -0.4], dtype=torch.float64)
    model, steps, g = _Shifted(reference, shift), 5, sde.vp(0.5)
    h = 1 / steps
    t = torch.arange(steps - 1, dtype=torch.float64) * h  # the K − 1 noisy steps start at 0, h, …
    kappa = g(t) ** 2 * h / (2 * (1 - t))
    variance = (1 - t) * -torch.expm1(-2 * kappa)
    per_step = (shift**2).sum() * (h - torch.expm1(-kappa) * t) ** 2 / (2 * variance)  # (K − 1,)
    flat = lambda x: torch.zeros(len(x), dtype=x.dtype)  # noqa: E731  (A = 0: only the KL term is left)
    objective = finetune.FlowGRPO(reference, flat, _Float64Noise(), batch_size=16, steps=steps, kl=1.0, diffusion=g)
    loss = objective(model, torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss, per_step.mean())  # not the sum: that was β·(K − 1)
    x0 = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert finetune.path_kl(model, reference, x0, steps, g) == pytest.approx(per_step.sum().item(), rel=1e-9)


def test_shared_noise_starts_every_chain_of_a_group_at_one_point_and_step_fraction_trains_on_a_subset():
    reference = _tiny_reference()
    objective = finetune.FlowGRPO(reference, lambda x: -x.norm(dim=1), batch_size=12, steps=6, groups=3,
                                  shared_noise=True, step_fraction=0.6)
    objective(copy.deepcopy(reference), torch.Generator().manual_seed(0))
    states, trained = objective._rollout[0], objective._rollout[-1]
    starts = states[0].view(3, 4, 2)  # (groups, chains, d)
    assert torch.equal(starts, starts[:, :1].expand(-1, 4, -1))  # one start per group …
    assert torch.cdist(starts[:, 0], starts[:, 0]).add(torch.eye(3)).min() > 0  # … a different one per group
    ends = states[-1].view(3, 4, 2)
    assert (ends[:, 1:] - ends[:, :1]).norm(dim=-1).min() > 0  # the chains part on the SDE's noise
    assert trained.shape == (5, 12) and torch.equal(trained.sum(0), torch.full((12,), 3.0))  # ⌊0.6·5⌋ of 5 steps
    assert len({tuple(column.tolist()) for column in trained.T}) > 1  # each chain draws its own subset
    plain = finetune.FlowGRPO(reference, lambda x: -x.norm(dim=1), batch_size=12, steps=6)
    plain(copy.deepcopy(reference), torch.Generator().manual_seed(0))
    assert len(set(map(tuple, plain._rollout[0][0].tolist()))) == 12 and bool(plain._rollout[-1].all())


def test_guard_ratio_norm_is_the_mean_difference_times_the_step_noise():
    """GRPO-Guard Eq. 8: s·(log ρ + ‖μ_θ − μ_old‖²/(2s²)) = (μ_θ − μ_old)·ε for x' = μ_old + s·ε."""
    gen = torch.Generator().manual_seed(0)
    mean_old, mean, noise = (torch.randn(4, 7, 2, generator=gen, dtype=torch.float64) for _ in range(3))
    std = torch.rand(4, 1, 1, generator=gen, dtype=torch.float64) + 0.1
    taken = mean_old + std * noise
    log_ratio = policy.gaussian_log_prob(taken, mean, std) - policy.gaussian_log_prob(taken, mean_old, std)
    guarded = std[..., 0] * (log_ratio + policy.step_kl(mean, mean_old, std))
    torch.testing.assert_close(guarded, ((mean - mean_old) * noise).sum(-1))
    assert log_ratio.mean() < 0  # the left shift the guard removes


def test_the_noise_network_lives_beside_the_velocity():
    velocity = models.VelocityMLP(hidden=8).double()
    policy = finetune.NoisyPolicy(velocity)
    assert next(policy.noise_net.parameters()).dtype == torch.float64
    x = torch.zeros(3, 2, dtype=torch.float64)
    assert policy.noise(x, torch.full((3,), 0.5, dtype=torch.float64)).shape == (3, 1)
