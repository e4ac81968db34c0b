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


BAD_PARAMETERS = [
    ("checkerboard", dict(cells=3), "cells must be even"),
    ("checkerboard", dict(cells=0), "cells must be an int >= 2, got 0"),
    ("checkerboard", dict(size=-1.0), "size must be a finite number > 0, got -1.0"),
    ("rings", dict(count=0), "count must be an int >= 1, got 0"),
    ("rings", dict(count=-2), "count must be an int >= 1, got -2"),
    ("rings", dict(count=2.5), "count must be an int >= 1, got 2.5"),
    ("rings", dict(size=0.0), "size must be a finite number > 0, got 0.0"),
    ("rings", dict(noise=-0.1), "noise must be a finite number >= 0, got -0.1"),
    ("spirals", dict(size=-4.0), "size must be a finite number > 0, got -4.0"),
    ("spirals", dict(turns=0), "turns must be a finite number > 0, got 0"),
    ("spirals", dict(noise=float("nan")), "noise must be a finite number >= 0, got nan"),
    ("pinwheel", dict(arms=0), "arms must be an int >= 1, got 0"),
    ("pinwheel", dict(size=0), "size must be a finite number > 0, got 0"),
    ("pinwheel", dict(radial_std=-0.3), "radial_std must be a finite number >= 0"),
    ("pinwheel", dict(tangential_std=-1), "tangential_std must be a finite number >= 0"),
    ("circles", dict(radius=0.0), "radius must be a finite number > 0, got 0.0"),
    ("circles", dict(factor=-0.5), "factor must be a finite number > 0, got -0.5"),
    ("circles", dict(noise=-1), "noise must be a finite number >= 0, got -1"),
    ("swissroll", dict(size=-1), "size must be a finite number > 0"),
    ("moons", dict(noise=-0.2), "noise must be a finite number >= 0"),
    ("moons", dict(scale=0.0), "scale must be a finite number > 0"),
    ("8gaussians", dict(k=0), "k must be an int >= 1, got 0"),
    ("8gaussians", dict(std=0.0), "std must be a finite number > 0, got 0.0"),
    ("gaussian", dict(std=-1.0), "std must be a finite number > 0, got -1.0"),
    ("gaussian", dict(std="wide"), "std must be a finite number > 0, got 'wide'"),
    ("gaussian", dict(mean=()), r"mean must be one or more finite numbers, got \(\)"),
]


@pytest.mark.parametrize("name, params, message", BAD_PARAMETERS)
def test_bad_sizes_and_counts_name_the_parameter(name, params, message):
    with pytest.raises(ValueError, match=message):
        data.get(name, **params)


def test_mixture_weights_must_not_all_be_zero():
    with pytest.raises(ValueError, match="weights must be 2 non-negative numbers, not all 0"):
        data.GaussianMixture(torch.zeros(2, 2), 1.0, torch.zeros(2))


def test_a_cpu_generator_draws_the_same_numbers_for_any_requested_device():
    """The device rule: the numbers are drawn on the generator's device, then moved."""
    for name in sorted(data.REGISTRY):
        x = data.get(name).sample(50, torch.Generator().manual_seed(0), device="meta")
        assert x.device.type == "meta" and x.shape == (50, 2), name


@pytest.mark.parametrize(
    "bad, error", [(1.5, TypeError), ("0", TypeError), (True, TypeError), (-1, ValueError), (2**40, ValueError)]
)
def test_seed_rejects_non_integers_and_out_of_range_values(bad, error):
    import toyflow

    with pytest.raises(error, match="seed must be"):
        toyflow.seed(bad)
