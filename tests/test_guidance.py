"""Conditional flows: labelled data, the conditional MLP, condition-aware OT, CFG, RAAG, steering, best-of-N."""

import pytest
import torch
from torch import nn

import toyflow
from toyflow import couplings, data, guidance, models, solvers, train
from toyflow.closed_form import GaussianToGaussian


class ClosedFormClasses(nn.Module):
    """Exact conditional fields: class c goes N(0, I) → N(means[c], 0.5² I); the null label → N(0, 0.5² I)."""

    def __init__(self, means):
        super().__init__()
        self.cases = [GaussianToGaussian(m, 0.5) for m in means] + [GaussianToGaussian((0.0, 0.0), 0.5)]
        self.null = len(means)

    def forward(self, x, t, label):
        label = torch.as_tensor(label).expand(len(x))
        out = torch.stack([case.velocity(x, t) for case in self.cases])  # (C + 1, n, 2)
        return out[label, torch.arange(len(x))]


# ---- labelled data -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, classes", [("moons", 2), ("8gaussians", 8), ("mixture", 4), ("checkerboard", 8)])
def test_labelled_data_sets_give_every_label_and_classify_their_own_samples(name, classes, generator):
    target = data.get(name)
    x, y = target.sample_labelled(2000, generator)
    assert target.classes == classes and x.shape == (2000, 2) and y.shape == (2000,)
    assert set(y.tolist()) == set(range(classes))
    assert (target.classify(x) == y).float().mean() > 0.95  # moons overlap a little at noise 0.2


def test_moons_sample_labelled_draws_the_same_points_as_sample():
    a = data.get("moons").sample(50, torch.Generator().manual_seed(3))
    b, _ = data.get("moons").sample_labelled(50, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="n must be a positive int"):
        data.get("moons").sample_labelled(0)


# ---- conditional velocity MLP --------------------------------------------------------------------


def test_conditional_mlp_depends_on_the_label_and_none_is_the_null_label():
    toyflow.seed(0)
    v = models.ConditionalVelocityMLP(classes=3)
    x, t = torch.randn(6, 2), torch.rand(6)
    assert not torch.allclose(v(x, t, 0), v(x, t, 1))
    assert torch.equal(v(x, t), v(x, t, torch.full((6,), 3)))
    for bad in (torch.tensor([0, 4, 0, 0, 0, 0]), torch.zeros(5, dtype=torch.long), torch.zeros(6)):
        with pytest.raises(ValueError, match="label"):
            v(x, t, bad)
    with pytest.raises(ValueError, match="classes"):
        models.ConditionalVelocityMLP(classes=0)


# ---- condition-aware OT --------------------------------------------------------------------------


def _labelled_batch(seed, n=64):
    g = torch.Generator().manual_seed(seed)
    x1, label = data.get("moons").sample_labelled(n, g)
    return torch.randn(n, 2, generator=g), x1, label


@pytest.mark.parametrize("seed", range(3))
def test_conditional_ot_pairs_within_each_class_and_is_optimal_there(seed):
    x0, x1, label = _labelled_batch(seed)
    pairs = couplings.ConditionalOT()(x0, x1, label)
    assert torch.equal(pairs.label, label)  # slot i keeps the class of the datum it was drawn for
    for c in (0, 1):
        members = label == c
        assert torch.equal(pairs.x1[members].sort(0).values, x1[members].sort(0).values)  # a permutation in class
        best = couplings.ExactOT()(x0[members], x1[members]).x1
        assert ((pairs.x1[members] - x0[members]) ** 2).sum() <= ((best - x0[members]) ** 2).sum() + 1e-4
    large = couplings.ConditionalOT(weight=1e4)(x0, x1, label)  # a finite weight large enough: an equally good plan
    assert torch.equal(large.label, label)
    cost = lambda p: ((p.x1 - p.x0) ** 2).sum().item()  # noqa: E731
    assert cost(large) == pytest.approx(cost(pairs), rel=1e-5)


def test_conditional_ot_with_weight_zero_is_plain_ot_and_carries_the_labels():
    x0, x1, label = _labelled_batch(0)
    pairs = couplings.ConditionalOT(weight=0.0)(x0, x1, label)
    assert torch.equal(pairs.x1, couplings.ExactOT()(x0, x1).x1)
    index = torch.cdist(pairs.x1, x1).argmin(1)
    assert torch.equal(pairs.label, label[index])
    assert (pairs.label != label).any()  # plain OT sends some noise slots to the other class
    with pytest.raises(ValueError, match="weight must be >= 0"):
        couplings.ConditionalOT(weight=-1.0)
    with pytest.raises(ValueError, match="label must have shape"):
        couplings.ConditionalOT()(x0, x1, label[:3])
    with pytest.raises(TypeError, match="sample_labelled"):
        couplings.LabelledPairSampler(data.get("gaussian"), data.get("spirals"))


# ---- classifier-free guidance and RAAG ----------------------------------------------------------


def test_guided_field_is_the_cfg_combination_and_w1_lands_on_the_class():
    model = ClosedFormClasses([(2.0, 0.0), (-2.0, 1.0)])
    x, t = torch.randn(10, 2), torch.rand(10) * 0.9
    v_c, v_null = model(x, t, 1), model(x, t, 2)
    for w in (0.0, 1.0, 3.0):
        assert torch.allclose(guidance.guided(model, 1, w)(x, t), v_null + w * (v_c - v_null), atol=1e-6)
    x0 = torch.randn(5000, 2, generator=torch.Generator().manual_seed(0))
    end = solvers.integrate(guidance.guided(model, 1, 1.0), x0, 20, "rk4").x
    assert torch.allclose(end, GaussianToGaussian((-2.0, 1.0), 0.5).flow_map(x0, 0.0, 1.0), atol=1e-3)
    with pytest.raises(ValueError, match="w must be >= 0"):
        guidance.guided(model, 1, -1.0)


def test_raag_weight_follows_the_ratio_and_w_max_one_is_conditional():
    model = ClosedFormClasses([(2.0, 0.0)])
    x, t = torch.randn(10, 2), torch.rand(10) * 0.9
    v_c, v_null = model(x, t, 0), model(x, t, 1)
    assert torch.allclose(guidance.ratio_adaptive(model, 0, 1.0)(x, t), v_c, atol=1e-6)
    rho = guidance.guidance_ratio(v_c, v_null)
    assert torch.allclose(rho, (v_c - v_null).norm(dim=1) / v_null.norm(dim=1))
    w = 1 + 3 * torch.exp(-2 * rho)
    assert torch.allclose(guidance.ratio_adaptive(model, 0, 4.0, alpha=2.0)(x, t), v_null + w[:, None] * (v_c - v_null))


def test_conditional_flow_matching_learns_separate_classes_quickly():
    toyflow.seed(0)
    target = data.get("mixture")
    model = models.ConditionalVelocityMLP(target.classes, hidden=32)
    objective = guidance.ConditionalFlowMatching(couplings.LabelledPairSampler(data.get("gaussian"), target), drop=0.2)
    train.fit(model, objective, 300, lr=3e-3, progress=False)
    g = torch.Generator().manual_seed(1)

    def sample(c):
        return solvers.integrate(guidance.guided(model, c, 1.0), torch.randn(200, 2, generator=g), 10).x

    report = guidance.class_report(sample, target, 200, g)
    assert report["in class region"] > 0.9, report
    with pytest.raises(ValueError, match="drop"):
        guidance.ConditionalFlowMatching(objective.pairs, drop=1.0)
    with pytest.raises(ValueError, match="labelled batches"):
        guidance.ConditionalFlowMatching(couplings.PairSampler(data.get("gaussian"), target))(model, g)


# ---- steering and best-of-N ---------------------------------------------------------------------


def test_steering_raises_the_reward_at_the_same_nfe_and_lr_zero_is_euler():
    field = GaussianToGaussian((0.0, 0.0), 1.5).velocity
    goal = torch.tensor([2.0, 0.0])
    reward = lambda x: -((x - goal) ** 2).sum(1)  # noqa: E731
    x0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    plain = solvers.integrate(field, x0, 20)
    steered = guidance.steer(field, reward, x0, steps=20, lr=0.05)
    assert steered.nfe == plain.nfe == 20
    assert reward(steered.x).mean() > reward(plain.x).mean() + 1.0
    assert torch.allclose(guidance.steer(field, reward, x0, steps=20, lr=0.0).x, plain.x, atol=1e-6)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        guidance.steer(field, reward, x0, lr=-1.0)


def test_best_of_n_keeps_the_best_candidate_and_counts_its_cost():
    field = GaussianToGaussian((1.0, 0.0), 1.0).velocity
    reward = lambda x: x[:, 0]  # noqa: E731
    x0 = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    candidates = solvers.integrate(field, x0, 5).x.view(100, 4, 2)
    best = guidance.best_of_n(field, reward, x0, n=4, steps=5)
    assert best.x.shape == (100, 2) and best.nfe == 20
    assert torch.allclose(best.x[:, 0], candidates[..., 0].max(1).values)
    with pytest.raises(ValueError, match="dividing"):
        guidance.best_of_n(field, reward, x0, n=3, steps=5)


# ---- exercise checkers of notebook 13 -----------------------------------------------------------


def test_cfg_checker_accepts_the_formula_and_names_each_mistake(capsys):
    from toyflow import exercises

    assert exercises.check_cfg(lambda c, u, w: u + w * (c - u))
    for wrong, words in [(lambda c, u, w: c + w * (u - c), "swapped"), (lambda c, u, w: u + w * c, "difference"),
                         (lambda c, u, w: w * c, "forgets v_∅")]:
        assert not exercises.check_cfg(wrong)
        assert words in capsys.readouterr().out


def test_endpoint_checker_accepts_the_formula_and_names_each_mistake(capsys):
    from toyflow import exercises

    assert exercises.check_endpoint_estimate(lambda x, v, t: x + (1 - t[:, None]) * v)
    for wrong, words in [(lambda x, v, t: x + t[:, None] * v, "1 − t"), (lambda x, v, t: x + v, "time left")]:
        assert not exercises.check_endpoint_estimate(wrong)
        assert words in capsys.readouterr().out
    def stub(x, v, t):
        raise NotImplementedError
    assert not exercises.check_endpoint_estimate(stub)
    assert "not written yet" in capsys.readouterr().out
