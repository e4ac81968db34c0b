import pytest
import torch

from toyflow.models import TimeEmbedding, VelocityMLP


def test_velocity_mlp_shapes_and_scalar_times():
    v = VelocityMLP(hidden=32, depth=2)
    x = torch.randn(7, 2)
    out = v(x, torch.full((7,), 0.3))
    assert out.shape == (7, 2)
    torch.testing.assert_close(v(x, 0.3), out)
    assert VelocityMLP(times=2)(x, 0.1, torch.rand(7)).shape == (7, 2)


def test_time_embedding_starts_with_t_and_has_its_width():
    embed = TimeEmbedding(3)
    t = torch.tensor([0.0, 0.25, 1.0])
    features = embed(t)
    assert features.shape == (3, embed.dim) == (3, 7)
    torch.testing.assert_close(features[:, 0], t)


def test_model_follows_its_device_and_dtype():
    v = VelocityMLP().double()
    assert v(torch.randn(3, 2, dtype=torch.float64), 0.5).dtype == torch.float64


def test_bad_input():
    v = VelocityMLP()
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\), got \(4, 3\)"):
        v(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(4,\), got \(5,\)"):
        v(torch.zeros(4, 2), torch.zeros(5))
    with pytest.raises(TypeError, match="takes 1 time argument"):
        v(torch.zeros(4, 2), 0.1, 0.2)
    with pytest.raises(ValueError, match="hidden must be an int >= 1"):
        VelocityMLP(hidden=0)


def test_bad_frequencies_are_named():
    with pytest.raises(ValueError, match=r"frequencies must be an int >= 0, got -1"):
        VelocityMLP(frequencies=-1)
