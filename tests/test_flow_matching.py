import pytest
import torch

import toyflow
from toyflow import couplings, paths
from toyflow.closed_form import GaussianToGaussian
from toyflow.flow_matching import FlowMatching, pseudo_huber
from toyflow.models import VelocityMLP
from toyflow.train import fit

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)
PAIRS = couplings.PairSampler(CASE.source, CASE.target)


def _loss(objective, field, seed=0):
    return objective(field, torch.Generator().manual_seed(seed)).item()


def test_the_marginal_velocity_minimises_the_loss_by_exactly_the_squared_gap():
    """L(v) = L(v*) + E‖v − v*‖²/d: shifting v* by c raises the loss by mean(c²)."""
    objective = FlowMatching(PAIRS, batch_size=400_000)
    best = _loss(objective, CASE.velocity)
    for shift in (torch.tensor([0.3, 0.0]), torch.tensor([-0.2, 0.4])):
        shifted = _loss(objective, lambda x, t, c=shift: CASE.velocity(x, t) + c)
        assert shifted - best == pytest.approx((shift**2).mean().item(), rel=0.05)


def test_training_recovers_the_closed_form_velocity():
    toyflow.seed(0)
    model = VelocityMLP(hidden=64)
    fit(model, FlowMatching(PAIRS), steps=1500, lr=2e-3, progress=False)
    x = CASE.source.sample(500, torch.Generator().manual_seed(1)) * 1.5
    for t in (0.1, 0.5, 0.9):
        xt = CASE.flow_map(x, 0.0, t)
        with torch.no_grad():
            error = (model(xt, torch.full((500,), t)) - CASE.velocity(xt, t)).pow(2).sum(1).mean()
        assert error < 0.05, f"t = {t}: mean squared error {error:.3f}"


def test_huge_eps_gibbs_weights_give_the_unweighted_loss():
    field = VelocityMLP()
    plain = FlowMatching(couplings.PairSampler(CASE.source, CASE.target))
    weighted = FlowMatching(couplings.PairSampler(CASE.source, CASE.target, couplings.GibbsWeighted(eps=1e6)))
    assert _loss(weighted, field) == pytest.approx(_loss(plain, field), rel=1e-4)
    sharp = FlowMatching(couplings.PairSampler(CASE.source, CASE.target, couplings.GibbsWeighted(eps=0.5)))
    assert _loss(sharp, field) != pytest.approx(_loss(plain, field), rel=1e-3)


def test_pseudo_huber_is_quadratic_near_zero_and_linear_far_out():
    c = 0.01
    small, large = torch.tensor([[3e-4, 4e-4]]), torch.tensor([[30.0, 40.0]])
    assert pseudo_huber(small, c).item() == pytest.approx((5e-4) ** 2 / (2 * c) / 2, rel=1e-2)
    assert pseudo_huber(large, c).item() == pytest.approx((50.0 - c) / 2, rel=1e-6)


def test_stochastic_path_objective_runs_and_uses_noise():
    objective = FlowMatching(PAIRS, path=paths.stochastic(0.3), time=paths.LogitNormalTime())
    assert _loss(objective, CASE.velocity) > _loss(FlowMatching(PAIRS, time=paths.LogitNormalTime()), CASE.velocity)


def test_bad_input():
    with pytest.raises(ValueError, match=r"loss must be one of \['l2', 'pseudo_huber'\], got 'l1'"):
        FlowMatching(PAIRS, loss="l1")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        FlowMatching(PAIRS, batch_size=0)
