import math

import pytest
import torch
from sklearn.datasets import make_moons

from toyflow import data, metrics


@pytest.mark.parametrize("name", sorted(data.REGISTRY))
def test_every_dataset_samples_reproducibly_at_a_comparable_scale(name):
    dist = data.get(name)
    x = dist.sample(2000, generator=torch.Generator().manual_seed(1))
    again = dist.sample(2000, generator=torch.Generator().manual_seed(1))
    assert x.shape == (2000, 2) and x.dtype == torch.float32
    assert torch.equal(x, again)
    spread = x.std(0).mean().item()
    assert 0.9 < spread < 5.0, f"{name} has spread {spread}"
    assert x.abs().max() < 12


def test_gaussian_log_prob_is_the_normal_density():
    dist = data.Gaussian(mean=(1.0, -2.0), std=0.5)
    x = torch.randn(10, 2)
    expected = torch.distributions.Normal(torch.tensor([1.0, -2.0]), 0.5).log_prob(x).sum(1)
    torch.testing.assert_close(dist.log_prob(x), expected)


@pytest.mark.parametrize("name", ["gaussian", "8gaussians", "mixture", "checkerboard"])
def test_known_densities_integrate_to_one(name):
    dist = data.get(name)
    axis = torch.linspace(-9, 9, 721)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], 1)
    cell = (axis[1] - axis[0]) ** 2
    total = (dist.log_prob(grid).exp().sum() * cell).item()
    assert total == pytest.approx(1.0, abs=0.01)


def test_mixture_labels_are_the_components_the_points_came_from():
    mixture = data.get("mixture")
    x, labels = mixture.sample_with_labels(5000, generator=torch.Generator().manual_seed(0))
    nearest = torch.cdist(x, mixture.means).argmin(1)
    assert (nearest == labels).float().mean() > 0.95
    assert torch.bincount(labels, minlength=4).min() > 1100


def test_8gaussians_matches_torchcfm_parameters():
    dist = data.get("8gaussians")
    assert dist.means.norm(dim=1).allclose(torch.full((8,), 5.0))
    assert dist.std == pytest.approx(0.1**0.25)  # covariance sqrt(0.1)·I


def test_moons_match_scikit_learn_moons():
    ours = data.get("moons").sample(1000, generator=torch.Generator().manual_seed(0))
    theirs = torch.tensor(make_moons(1000, noise=0.2, random_state=0)[0], dtype=torch.float32) * 3 - 1
    other = data.get("moons").sample(1000, generator=torch.Generator().manual_seed(1))
    floor = metrics.w2(ours, other)
    assert metrics.w2(ours, theirs) < 1.5 * floor


def test_checkerboard_samples_only_black_squares():
    board = data.get("checkerboard")
    x = board.sample(4000, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(board.log_prob(x)).all()
    black, white = torch.tensor([[-3.0, -3.0]]), torch.tensor([[-3.0, -1.0]])
    assert board.log_prob(black).item() == pytest.approx(-math.log(32.0))  # half of the 8 × 8 board
    assert board.log_prob(white).item() == -math.inf


def test_sampling_follows_the_device_and_parameters():
    x = data.get("8gaussians", radius=2.0, std=0.01).sample(100, device="cpu")
    assert x.device.type == "cpu"
    assert x.norm(dim=1).sub(2.0).abs().max() < 0.1


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError, match="unknown dataset 'mooons'.*'moons'"):
        data.get("mooons")


def test_bad_parameters_name_the_dataset():
    with pytest.raises(TypeError, match="moons"):
        data.get("moons", radius=3)
    with pytest.raises(ValueError, match="std must be > 0"):
        data.get("gaussian", std=-1.0)


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_bad_sample_size(n):
    with pytest.raises(ValueError, match="n must be a positive int"):
        data.get("moons").sample(n)


def test_log_prob_checks_shape_and_availability():
    with pytest.raises(ValueError, match=r"shape \(n, 2\), got \(5, 3\)"):
        data.get("gaussian").log_prob(torch.zeros(5, 3))
    with pytest.raises(NotImplementedError, match="no closed-form density"):
        data.get("moons").log_prob(torch.zeros(5, 2))


def test_diagonal_noise_moons_shift_the_curve_along_the_diagonal_like_torchdyn():
    """torchcfm's moons: points of the two half circles plus one U(0, noise) added to both coordinates."""
    x = data.get("moons", noise_type="diagonal", scale=1.0, shift=0.0).sample(2000, torch.Generator().manual_seed(0))
    on_curve = []
    for offset in torch.linspace(0, 0.2, 201):
        p = x - offset
        upper = (p.norm(dim=1) - 1).abs()
        lower = ((p - torch.tensor([1.0, 0.5])).norm(dim=1) - 1).abs()
        on_curve.append(torch.minimum(upper, lower))
    assert torch.stack(on_curve).min(0).values.max() < 2e-3
    with pytest.raises(ValueError, match="noise_type must be"):
        data.get("moons", noise_type="uniform")
