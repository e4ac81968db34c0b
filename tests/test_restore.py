"""Posterior-mean rectified flow: degradations, the posterior-mean regression, the restoration pairs."""

import pytest
import torch

import toyflow
from toyflow import _base, data, restore, train


class Points64:
    """N(0, I) in float64: a distribution for the dtype checks."""

    draws_points = True

    def sample(self, n, generator=None, device=None):
        return _base.randn((n, 2), generator, device, dtype=torch.float64)


def test_degradations_shapes_and_values(generator):
    x = torch.tensor([[0.26, -1.1], [2.0, 0.49]])
    assert torch.allclose(restore.quantise(0.5)(x, generator), torch.tensor([[0.5, -1.0], [2.0, 0.5]]))
    assert torch.allclose(restore.project((0.0, 2.0))(x, generator), x[:, 1:])
    noisy = restore.add_noise(0.1)(torch.zeros(4000, 2), generator)
    assert noisy.std().item() == pytest.approx(0.1, rel=0.05)
    same = restore.add_noise(0.1)(torch.zeros(5, 2, dtype=torch.float64), torch.Generator().manual_seed(0))
    again = restore.add_noise(0.1)(torch.zeros(5, 2, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert same.dtype == torch.float64 and torch.equal(same, again)  # the data's dtype; one seed, one draw


def test_posterior_mean_regression_finds_the_gaussian_posterior_mean():
    """x ~ N(m, s²I), y = x + σn: E[x | y] = m + s²/(s² + σ²)·(y − m), a linear map a linear model can learn."""
    toyflow.seed(0)
    m, s, sigma = torch.tensor([1.0, -2.0]), 1.0, 1.0
    model = torch.nn.Linear(2, 2)
    objective = restore.PosteriorMeanRegression(data.Gaussian((1.0, -2.0), s), restore.add_noise(sigma), batch_size=512)
    train.fit(model, objective, 600, lr=0.02, progress=False)
    y = torch.randn(100, 2) * 2 + m
    assert torch.allclose(model(y), m + 0.5 * (y - m), atol=0.1)


def test_posterior_mean_regression_in_float64_and_without_a_generator():
    net = restore.posterior_mean_net(2, hidden=8, depth=1).double()
    loss = restore.PosteriorMeanRegression(Points64(), restore.add_noise(0.5), batch_size=16)(net)
    assert loss.ndim == 0 and loss.dtype == torch.float64


def test_restoration_pairs_start_at_the_lifted_degraded_point(generator):
    pairs = restore.RestorationPairs(data.get("moons"), restore.quantise(1.0), start=lambda y: y, sigma=0.0)
    batch = pairs.sample(64, generator)
    assert torch.equal(batch.x0, torch.round(batch.x1))
    noisy = restore.RestorationPairs(Points64(), restore.add_noise(0.1), start=lambda y: y, sigma=0.5)
    first, second = (noisy.sample(32, torch.Generator().manual_seed(3)) for _ in range(2))
    assert first.x0.dtype == torch.float64 and torch.equal(first.x0, second.x0)


def test_bad_input():
    moons = data.get("moons")
    for make, name in ((restore.add_noise, "sigma"), (restore.quantise, "step")):
        for value in (0.0, -1.0, float("nan"), "1"):
            with pytest.raises(ValueError, match=name):
                make(value)
    for direction in ((0.0, 0.0), (), "xy", (1.0, float("inf"))):
        with pytest.raises(ValueError, match="direction"):
            restore.project(direction)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        restore.project((1.0, 0.0))(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="inputs"):
        restore.posterior_mean_net(0)
    for name in ("dim", "hidden", "depth"):
        with pytest.raises(ValueError, match=name):
            restore.posterior_mean_net(2, **{name: 0})
    with pytest.raises(TypeError, match="target"):
        restore.PosteriorMeanRegression("moons", restore.add_noise(1.0))
    with pytest.raises(TypeError, match="degrade"):
        restore.PosteriorMeanRegression(moons, 1.0)
    with pytest.raises(ValueError, match="batch_size"):
        restore.PosteriorMeanRegression(moons, restore.add_noise(1.0), batch_size=0)
    lift = lambda y: y  # noqa: E731
    with pytest.raises(TypeError, match="target"):
        restore.RestorationPairs(None, restore.quantise(1.0), lift)
    with pytest.raises(TypeError, match="degrade"):
        restore.RestorationPairs(moons, None, lift)
    with pytest.raises(TypeError, match="start"):
        restore.RestorationPairs(moons, restore.quantise(1.0), start="posterior mean")
    for sigma in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            restore.RestorationPairs(moons, restore.quantise(1.0), lift, sigma=sigma)
    collapsing = restore.RestorationPairs(moons, restore.quantise(1.0), start=lambda y: y[:1])
    with pytest.raises(ValueError, match=r"start\(y\) must return points of shape \(8, d\)"):
        collapsing.sample(8)
