"""Posterior-mean rectified flow: degradations, the posterior-mean regression, the restoration pairs."""

import pytest
import torch

import toyflow
from toyflow import data, restore, train


def test_degradations_shapes_and_values(generator):
    x = torch.tensor([[0.26, -1.1], [2.0, 0.49]])
    assert torch.allclose(restore.quantise(0.5)(x, generator), torch.tensor([[0.5, -1.0], [2.0, 0.5]]))
    assert torch.allclose(restore.project((0.0, 2.0))(x, generator), x[:, 1:])
    noisy = restore.add_noise(0.1)(torch.zeros(4000, 2), generator)
    assert noisy.std().item() == pytest.approx(0.1, rel=0.05)
    for make in (restore.add_noise, restore.quantise):
        with pytest.raises(ValueError, match="must be > 0"):
            make(0.0)
    with pytest.raises(ValueError, match="non-zero"):
        restore.project((0.0, 0.0))


def test_posterior_mean_regression_finds_the_gaussian_posterior_mean():
    """x ~ N(m, s²I), y = x + σn: E[x | y] = m + s²/(s² + σ²)·(y − m), a linear map a linear model can learn."""
    toyflow.seed(0)
    m, s, sigma = torch.tensor([1.0, -2.0]), 1.0, 1.0
    model = torch.nn.Linear(2, 2)
    objective = restore.PosteriorMeanRegression(data.Gaussian((1.0, -2.0), s), restore.add_noise(sigma), batch_size=512)
    train.fit(model, objective, 600, lr=0.02, progress=False)
    y = torch.randn(100, 2) * 2 + m
    assert torch.allclose(model(y), m + 0.5 * (y - m), atol=0.1)


def test_restoration_pairs_start_at_the_lifted_degraded_point(generator):
    pairs = restore.RestorationPairs(data.get("moons"), restore.quantise(1.0), start=lambda y: y, sigma=0.0)
    batch = pairs.sample(64, generator)
    assert torch.equal(batch.x0, torch.round(batch.x1))
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        restore.RestorationPairs(data.get("moons"), restore.quantise(1.0), start=lambda y: y, sigma=-1.0)
