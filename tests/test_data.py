import math
import re

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
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        data.get("moons").sample(n)


def test_log_prob_checks_shape_and_availability():
    with pytest.raises(ValueError, match=r"shape \(n, 2\) with n >= 1, got \(5, 3\)"):
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


# text and image targets ----------------------------------------------------------------------------------------


def test_text_samples_reproducibly_on_the_glyphs_at_the_scale_of_the_other_data_sets():
    from matplotlib.path import Path

    dist = data.get("text", text="RF", noise=0.0)
    x = dist.sample(3000, generator=torch.Generator().manual_seed(0), device="cpu")
    assert x.shape == (3000, 2) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert torch.equal(x, dist.sample(3000, generator=torch.Generator().manual_seed(0)))
    assert dist.inside(x).all()
    tall = x[:, 1].max() - x[:, 1].min()
    assert 5.9 < tall <= 6.0 and x[:, 0].abs().max() <= 6.0  # two letters: as tall as the box, 2·height
    # against matplotlib's own outlines (even-odd), scaled like the data set: only the cells cut by an edge differ
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    glyphs = TextPath((0, 0), "RF", size=1, prop=FontProperties(family="DejaVu Sans", weight="bold"))
    box = glyphs.get_extents()
    centre = torch.tensor([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])
    points = (x / min(12.0 / box.width, 6.0 / box.height) + centre).numpy()
    on = torch.zeros(len(x), dtype=torch.bool)
    for outline in glyphs.to_polygons(closed_only=True):
        on ^= torch.from_numpy(Path(outline).contains_points(points))
    assert on.float().mean() > 0.97


def test_long_text_is_narrowed_to_the_width_of_the_box():
    x = data.get("text", text="hello flows", noise=0.0).sample(2000, generator=torch.Generator().manual_seed(0))
    assert 11.9 < x[:, 0].max() - x[:, 0].min() <= 12.0 and x[:, 1].abs().max() < 3.0


def test_text_keeps_the_holes_of_the_letters_empty():
    dist = data.get("text", text="o", noise=0.0)
    x = dist.sample(4000, generator=torch.Generator().manual_seed(0))
    centre = (x.min(0).values + x.max(0).values) / 2
    assert (x - centre).norm(dim=1).min() > 1.0  # nothing in the middle of the "o"
    assert not dist.inside(centre[None]).item()


def test_text_noise_softens_the_edges_a_little():
    sharp = data.get("text", text="RF", noise=0.0).sample(2000, torch.Generator().manual_seed(0))
    soft = data.get("text", text="RF").sample(2000, torch.Generator().manual_seed(0))
    assert 0 < (soft - sharp).abs().max() < 0.5  # the same cells, moved by N(0, 0.05²)


@pytest.mark.parametrize(
    "params, error, message",
    [
        (dict(text=""), ValueError, "text must be a non-empty string, got ''"),
        (dict(text="   "), ValueError, "text must hold at least one visible character"),
        (dict(text=12), TypeError, "text must be a str, got int 12"),
        (dict(width=0), ValueError, "width must be a finite number > 0, got 0"),
        (dict(height=-1.0), ValueError, "height must be a finite number > 0, got -1.0"),
        (dict(noise=-1), ValueError, "noise must be a finite number >= 0, got -1"),
        (dict(resolution=2), ValueError, "resolution must be an int >= 8, got 2"),
    ],
)
def test_bad_text_names_the_argument(params, error, message):
    with pytest.raises(error, match=re.escape(message)):
        data.get("text", **params)


def _two_dark_corners():
    picture = torch.ones(4, 4)
    picture[0, 0] = 0.0  # top left
    picture[3, 3] = 0.2  # bottom right
    return picture


def test_image_samples_only_the_dark_pixels_with_y_pointing_up():
    dist = data.from_image(_two_dark_corners(), size=2.0, noise=0.0)  # 4 × 4 picture → cells of side 1
    x = dist.sample(2000, generator=torch.Generator().manual_seed(0))
    top_left = (x[:, 0] >= -2) & (x[:, 0] <= -1) & (x[:, 1] >= 1) & (x[:, 1] <= 2)
    bottom_right = (x[:, 0] >= 1) & (x[:, 0] <= 2) & (x[:, 1] >= -2) & (x[:, 1] <= -1)
    assert (top_left | bottom_right).all()
    assert 0.45 < top_left.float().mean() < 0.55  # uniform over the dark area
    assert dist.inside(x).all() and not dist.inside(torch.zeros(1, 2)).item()
    assert torch.equal(x, dist.sample(2000, generator=torch.Generator().manual_seed(0)))


def test_image_from_a_png_path_rgba_uint8_and_invert_agree(tmp_path):
    import matplotlib.image
    import numpy as np

    picture = _two_dark_corners().numpy()
    path = tmp_path / "corners.png"
    matplotlib.image.imsave(path, picture, cmap="gray", vmin=0, vmax=1)  # saved as RGBA
    expected = data.from_image(picture).mask
    assert torch.equal(data.get("image", image=str(path)).mask, expected)
    assert torch.equal(data.from_image(path).mask, expected)
    assert torch.equal(data.from_image((picture * 255).astype(np.uint8)).mask, expected)
    assert torch.equal(data.from_image(1 - picture, invert=True).mask, expected)
    assert torch.equal(data.from_image(picture < 0.5).mask, expected)  # booleans: True marks the pixels to use
    rgba = np.ones((2, 2, 4))
    rgba[0, 0, :3] = (1.0, 0.0, 0.0)  # opaque red: grey 0.299, dark
    rgba[1, 1] = (0.0, 0.0, 0.0, 0.0)  # transparent black: white
    assert data.from_image(rgba).mask.tolist() == [[True, False], [False, False]]


def test_image_honours_the_device_rule():
    dist = data.from_image(_two_dark_corners())
    x = dist.sample(50, torch.Generator().manual_seed(0), device="meta")
    assert x.device.type == "meta" and x.shape == (50, 2)


@pytest.mark.parametrize(
    "image, params, message",
    [
        (torch.zeros(5), {}, "image must have shape (H, W), (H, W, 3) or (H, W, 4), got (5,)"),
        (torch.zeros(2, 2, 5), {}, "image must have shape (H, W), (H, W, 3) or (H, W, 4), got (2, 2, 5)"),
        (torch.ones(3, 3), {}, "image has no pixel darker than threshold=0.5"),
        (torch.zeros(3, 3), dict(invert=True), "image has no pixel lighter than threshold=0.5"),
        (torch.zeros(3, 3), dict(threshold=0.0), "threshold must be a finite number > 0 and < 1"),
        (torch.zeros(3, 3), dict(threshold=1.5), "threshold must be a finite number > 0 and < 1"),
        (torch.full((3, 3), 2.0), {}, "image floats must lie in [0, 1], got values in [2, 2]"),
        (torch.zeros(3, 3), dict(size=-1.0), "size must be a finite number > 0, got -1.0"),
    ],
)
def test_bad_images_name_the_argument(image, params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        data.from_image(image, **params)


def test_text_and_image_are_named_everywhere_a_data_set_is(tmp_path):
    assert {"text", "image"} <= set(data.names()) and set(data.REGISTRY) <= set(data.names())
    with pytest.raises(ValueError, match="unknown dataset 'txt'.*'image'.*'text'"):
        data.get("txt")
    assert isinstance(data.from_spec("moons"), data.Moons)
    assert data.from_spec("text:RF").text == "RF" and data.from_spec("text:a:b").text == "a:b"
    path = tmp_path / "corners.png"
    import matplotlib.image

    matplotlib.image.imsave(path, _two_dark_corners().numpy(), cmap="gray", vmin=0, vmax=1)
    assert data.from_spec(f"image:{path}").mask.sum() == 2
    with pytest.raises(ValueError, match="only 'text:TEXT' and 'image:PATH' take a value"):
        data.from_spec("moons:3")
    with pytest.raises(ValueError, match="text must be a non-empty string"):
        data.from_spec("text:")


# every draw through toyflow._base, every argument checked --------------------------------------------------------


def test_labelled_samples_follow_the_device_rule_and_match_the_plain_draws():
    """A CPU generator with points asked for on another device (meta stands in for CUDA): drawn on the CPU, moved."""
    for dist in (data.get("moons"), data.get("mixture"), data.get("checkerboard")):
        x, label = dist.sample_labelled(20, torch.Generator().manual_seed(0), device="meta")
        assert x.device.type == "meta" and label.device.type == "meta" and x.shape == (20, 2) and label.shape == (20,)
        here, _ = dist.sample_labelled(20, torch.Generator().manual_seed(0))
        assert torch.equal(here, dist.sample(20, torch.Generator().manual_seed(0)))  # same draws as sample


def test_without_a_generator_points_are_drawn_on_the_cpu_from_the_global_seed():
    torch.manual_seed(0)
    first = data.get("moons").sample(10)
    torch.manual_seed(0)
    assert torch.equal(first, data.get("moons").sample(10)) and first.device.type == "cpu"
    assert data.get("moons").sample(10, device="meta").device.type == "meta"


BAD_DATA_INPUT = [
    (lambda: data.get("gaussian", mean=(0.0, float("nan"))), ValueError, r"mean\[1\] must be a finite number.*, got nan"),
    (lambda: data.get("gaussian", mean=3.0), ValueError, "mean must be one or more finite numbers, got 3.0"),
    (lambda: data.get("gaussian").sample(0), ValueError, "n must be an int >= 1, got 0"),
    (lambda: data.get("gaussian").sample(2.5), ValueError, "n must be an int >= 1, got 2.5"),
    (lambda: data.get("moons").sample(True), ValueError, "n must be an int >= 1, got True"),
    (lambda: data.get("moons").sample_labelled(0), ValueError, "n must be an int >= 1, got 0"),
    (lambda: data.get("mixture").sample_with_labels(-3), ValueError, "n must be an int >= 1, got -3"),
    (lambda: data.get("checkerboard").sample_labelled(0), ValueError, "n must be an int >= 1, got 0"),
    (lambda: data.get("moons", shift=float("inf")), ValueError, "shift must be a finite number.*, got inf"),
    (lambda: data.get("moons", noise_type="uniform"), ValueError, r"noise_type must be one of \['gaussian', 'diagonal'\]"),
    (lambda: data.get("pinwheel", rate=float("nan")), ValueError, "rate must be a finite number.*, got nan"),
    (lambda: data.get("8gaussians", radius=-1.0), ValueError, "radius must be a finite number >= 0, got -1.0"),
    (lambda: data.get("8gaussians", k=2.0), ValueError, "k must be an int >= 1, got 2.0"),
    (lambda: data.get("mixture", std=0), ValueError, "std must be a finite number > 0, got 0"),
    (lambda: data.GaussianMixture("ring", 1.0), TypeError, "means must be an array"),
    (lambda: data.GaussianMixture(torch.zeros(3), 1.0), ValueError, r"means must have shape \(K, 2\) with K >= 1, got \(3,\)"),
    (lambda: data.GaussianMixture(torch.full((2, 2), float("nan")), 1.0), ValueError, "means must be finite"),
    (lambda: data.GaussianMixture(torch.zeros(2, 2), 1.0, torch.tensor([1.0, -1.0])), ValueError, "weights must be 2"),
    (lambda: data.GaussianMixture(torch.zeros(2, 2), 1.0, "even"), TypeError, "weights must be 2 numbers"),
    (lambda: data.get("moons").log_prob(torch.zeros(3, 2)), NotImplementedError, "no closed-form density"),
    (lambda: data.get("gaussian").log_prob(torch.zeros(3, 2, dtype=torch.long)), TypeError, "x must be a floating-point"),
    (lambda: data.get("gaussian").log_prob([[0.0, 0.0]]), TypeError, r"x must be a torch.Tensor of shape \(n, 2\)"),
    (lambda: data.get("mixture").classify(torch.zeros(3)), ValueError, r"x must have shape \(n, 2\)"),
    (lambda: data.Pixels("picture"), TypeError, "mask must be a boolean array"),
    (lambda: data.Pixels(torch.zeros(2, 2)), ValueError, "mask must have at least one True cell"),
    (lambda: data.Pixels(torch.ones(2)), ValueError, r"mask must have shape \(H, W\), got \(2,\)"),
    (lambda: data.Pixels(torch.ones(2, 2)).inside(torch.zeros(3, 3)), ValueError, r"x must have shape \(n, 2\)"),
    (lambda: data.get("text", weight="heaviest"), ValueError, "weight must be one of matplotlib's font weights"),
    (lambda: data.get("text", resolution=100.0), ValueError, "resolution must be an int >= 8, got 100.0"),
    (lambda: data.from_image(torch.zeros(3, 3), invert="yes"), TypeError, "invert must be True or False, got 'yes'"),
    (lambda: data.from_image(torch.zeros(3, 3), threshold=True), ValueError, "threshold must be a finite number > 0 and < 1"),
    (lambda: data.from_image(torch.zeros(3, 3), noise=-0.1), ValueError, "noise must be a finite number >= 0, got -0.1"),
    (lambda: data.from_image(torch.zeros(3, 3, dtype=torch.int32)), ValueError, "image must hold floats in"),
    (lambda: data.get(3), TypeError, "name must be a str, one of"),
    (lambda: data.get("moons", radius=2), TypeError, "bad parameters for dataset 'moons'"),
    (lambda: data.from_spec(3), TypeError, "spec must be a str"),
    (lambda: data.from_spec("mooons"), ValueError, "unknown dataset 'mooons'"),
]


@pytest.mark.parametrize("make, error, message", BAD_DATA_INPUT, ids=range(len(BAD_DATA_INPUT)))
def test_every_bad_argument_of_data_is_named(make, error, message):
    with pytest.raises(error, match=message):
        make()
