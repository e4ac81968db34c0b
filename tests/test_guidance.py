"""Conditional flows: labelled data, the conditional MLP, condition-aware OT, CFG, RAAG, steering."""

import pytest
import torch
from torch import nn

import toyflow
from toyflow import couplings, data, guidance, metrics, models, paths, search, solvers, train
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
    with pytest.raises(ValueError, match="n must be"):
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
    with pytest.raises(ValueError, match="weight must be .*>= 0"):
        couplings.ConditionalOT(weight=-1.0)
    with pytest.raises(ValueError, match="label must"):
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
    with pytest.raises(ValueError, match="w must be .*>= 0"):
        guidance.guided(model, 1, -1.0)


def test_raag_weight_follows_the_ratio_and_w_max_one_is_conditional():
    model = ClosedFormClasses([(2.0, 0.0)])
    x, t = torch.randn(10, 2), torch.rand(10) * 0.9
    v_c, v_null = model(x, t, 0), model(x, t, 1)
    assert torch.allclose(guidance.ratio_adaptive(model, 0, 1.0)(x, t), v_c, atol=1e-6)
    rho = guidance.guidance_ratio(v_c, v_null)
    w = 1 + 3 * torch.exp(-2 * rho)
    assert torch.allclose(guidance.ratio_adaptive(model, 0, 4.0, alpha=2.0)(x, t), v_null + w[:, None] * (v_c - v_null))


def test_raag_ratio_is_the_squared_norm_ratio_of_the_paper():
    """RAAG (arXiv 2508.03442) divides squared norms: ρ = ‖v_c − v_∅‖² / ‖v_∅‖², not ‖v_c − v_∅‖ / ‖v_∅‖."""
    v_null = torch.tensor([[3.0, 4.0], [1.0, 0.0]])  # norms 5 and 1
    v_c = v_null + torch.tensor([[6.0, 8.0], [0.0, 0.5]])  # differences of norm 10 and 0.5
    torch.testing.assert_close(guidance.guidance_ratio(v_c, v_null), torch.tensor([4.0, 0.25]))
    # at t = 0 of the closed form the fields are v_c = m_c − x·(1 − σ)… : the ratio is the squared one there too
    model = ClosedFormClasses([(2.0, 0.0)])
    x, t = torch.randn(10, 2), torch.zeros(10)
    v_c, v_null = model(x, t, 0), model(x, t, 1)
    torch.testing.assert_close(guidance.guidance_ratio(v_c, v_null), ((v_c - v_null).norm(dim=1) / v_null.norm(dim=1)) ** 2)


def test_conditional_flow_matching_learns_separate_classes_quickly():
    toyflow.seed(0)
    target = data.get("mixture")
    model = models.ConditionalVelocityMLP(target.classes, hidden=32)
    objective = guidance.ConditionalFlowMatching(couplings.LabelledPairSampler(data.get("gaussian"), target), drop=0.2)
    train.fit(model, objective, 300, lr=3e-3, progress=False)
    g = torch.Generator().manual_seed(1)

    def sample(c):
        return solvers.integrate(guidance.guided(model, c, 1.0), torch.randn(200, 2, generator=g), 10).x

    report = metrics.class_report(sample, target, 200, g)
    assert report["in class region"] > 0.9, report
    with pytest.raises(ValueError, match="drop"):
        guidance.ConditionalFlowMatching(objective.pairs, drop=1.0)
    with pytest.raises(ValueError, match="labelled batches"):
        guidance.ConditionalFlowMatching(couplings.PairSampler(data.get("gaussian"), target))(model, g)


# ---- steering ---------------------------------------------------------------------


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
    with pytest.raises(ValueError, match="lr must be .*>= 0"):
        guidance.steer(field, reward, x0, lr=-1.0)


def test_best_of_n_and_the_class_report_have_one_home_each():
    assert not hasattr(guidance, "best_of_n") and not hasattr(guidance, "class_report")
    assert callable(search.best_of_n) and callable(metrics.class_report)


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


# ---- the objective contract and bad input ------------------------------------------------------


class _Weighted:
    """A labelled pair sampler whose batches carry pair weights (mean 1)."""

    def __init__(self, weight):
        self.inner, self.weight = couplings.LabelledPairSampler(data.get("gaussian"), data.get("moons")), weight

    def sample(self, n, generator=None, device=None):
        batch = self.inner.sample(n, generator, device)
        return couplings.PairBatch(batch.x0, batch.x1, self.weight.to(batch.x1), batch.label)


def test_conditional_flow_matching_meets_the_objective_contract():
    toyflow.seed(0)
    pairs = couplings.LabelledPairSampler(data.get("gaussian"), data.get("moons"))
    model = models.ConditionalVelocityMLP(2, hidden=16)
    loss = guidance.ConditionalFlowMatching(pairs, batch_size=8)(model)  # generator=None works
    assert loss.ndim == 0 and torch.isfinite(loss)
    # pair weights are honoured: weight 8 on one pair and 0 on the others is not the plain mean
    weight = torch.zeros(8)
    weight[3] = 8.0
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    weighted = guidance.ConditionalFlowMatching(_Weighted(weight), drop=0.0, batch_size=8)(model, g())
    plain = guidance.ConditionalFlowMatching(_Weighted(torch.ones(8)), drop=0.0, batch_size=8)(model, g())
    assert not torch.allclose(weighted, plain)
    # the stochastic path's z is drawn and used: the same seed, another path, another loss
    stochastic = guidance.ConditionalFlowMatching(pairs, drop=0.0, batch_size=8, path=paths.stochastic(0.5))(model, g())
    linear = guidance.ConditionalFlowMatching(pairs, drop=0.0, batch_size=8)(model, g())
    assert torch.isfinite(stochastic) and not torch.allclose(stochastic, linear)


def test_conditional_flow_matching_in_float64():
    class Double:
        draws_points = False

        def sample(self, n, generator=None, device=None):
            x1, label = data.get("moons").sample_labelled(n, generator, device)
            return couplings.PairBatch(torch.zeros_like(x1).double(), x1.double(), label=label)

    toyflow.seed(0)
    model = models.ConditionalVelocityMLP(2, hidden=16).double()
    loss = guidance.ConditionalFlowMatching(Double(), batch_size=8)(model, torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float64


def test_guidance_bad_input():
    model = ClosedFormClasses([(2.0, 0.0), (-2.0, 1.0)])
    pairs = couplings.LabelledPairSampler(data.get("gaussian"), data.get("moons"))
    # ConditionalFlowMatching: every field, and a model without a null label
    for kwargs, words in [({"drop": 1.0}, "drop"), ({"drop": -0.1}, "drop"), ({"drop": float("nan")}, "drop"),
                          ({"batch_size": 0}, "batch_size"), ({"path": "linear"}, "path"), ({"time": 0.5}, "time")]:
        with pytest.raises((ValueError, TypeError), match=words):
            guidance.ConditionalFlowMatching(pairs, **kwargs)
    with pytest.raises(TypeError, match="pairs must be a pair sampler"):
        guidance.ConditionalFlowMatching(data.get("moons"))
    with pytest.raises(TypeError, match="null label"):
        guidance.ConditionalFlowMatching(pairs)(models.VelocityMLP(hidden=8))
    # guided / ratio_adaptive: weights and labels out of range, a model without a null label
    for bad_w in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="w must be"):
            guidance.guided(model, 1, bad_w)
        with pytest.raises(ValueError, match="w_max must be"):
            guidance.ratio_adaptive(model, 1, bad_w)
    with pytest.raises(ValueError, match="alpha must be"):
        guidance.ratio_adaptive(model, 1, 2.0, alpha=-1.0)
    for bad_label in (2, -1, True, 1.0, torch.tensor([0, 2]), torch.tensor([0.0, 1.0]), torch.zeros(2, 2, dtype=torch.long)):
        with pytest.raises(ValueError, match="label must"):
            guidance.guided(model, bad_label, 1.0)
        with pytest.raises(ValueError, match="label must"):
            guidance.ratio_adaptive(model, bad_label, 2.0)
    with pytest.raises(ValueError, match=r"label must be an int or have shape \(3,\)"):
        guidance.guided(model, torch.tensor([0, 1]), 1.0)(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(TypeError, match="null label"):
        guidance.guided(GaussianToGaussian().velocity, 0, 1.0)
    # steer: every argument, and a reward that returns NaN or the wrong shape
    field = GaussianToGaussian((0.0, 0.0), 1.5).velocity
    reward = lambda x: -(x**2).sum(1)  # noqa: E731
    x0 = torch.randn(16, 2)
    for kwargs, words in [({"lr": -1.0}, "lr must be"), ({"lr": float("nan")}, "lr must be"), ({"inner": -1}, "inner must"),
                          ({"inner": 1.5}, "inner must"), ({"steps": 0}, "steps must"), ({"until": 1.5}, "until must"),
                          ({"until": -0.1}, "until must")]:
        with pytest.raises(ValueError, match=words):
            guidance.steer(field, reward, x0, **kwargs)
    with pytest.raises(TypeError, match="v must be"):
        guidance.steer("field", reward, x0)
    with pytest.raises(TypeError, match="reward must be"):
        guidance.steer(field, None, x0)
    with pytest.raises(ValueError, match=r"x0 must have shape"):
        guidance.steer(field, reward, torch.zeros(16))
    with pytest.raises(ValueError, match="NaN or inf for 16 of 16 points"):
        guidance.steer(field, lambda x: x.sum(1) * float("nan"), x0)
    with pytest.raises(ValueError, match=r"reward .* must return a tensor of shape \(16,\).*got \(16, 2\)"):
        guidance.steer(field, lambda x: -(x**2), x0)
    with pytest.raises(ValueError, match=r"reward .* must return a tensor of shape \(16,\).*got \(\)"):
        guidance.steer(field, lambda x: -(x**2).sum(), x0)


def test_class_report_bad_input():
    target = data.get("mixture")
    sample = lambda c: target.sample(50)  # noqa: E731
    with pytest.raises(TypeError, match="sample must be"):
        metrics.class_report("nope", target)
    with pytest.raises(TypeError, match="labelled distribution"):
        metrics.class_report(sample, data.get("gaussian"))
    for n in (0, 2.5):
        with pytest.raises(ValueError, match="n must be an int >= 1"):
            metrics.class_report(sample, target, n)
    with pytest.raises(ValueError, match=r"sample\(c\) has 50 point\(s\) with NaN"):
        metrics.class_report(lambda c: torch.full((50, 2), float("nan")), target, 20)
