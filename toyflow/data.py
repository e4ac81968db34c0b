"""2D distributions to transport between.

Every distribution is an object with ``sample(n, generator=None, device=None) -> (n, 2)``;
those whose density is known in closed form also have ``log_prob(x) -> (n,)``.
All are drawn with torch alone, by the device rule of :mod:`toyflow._base` (on the generator's device, the CPU
without one, then moved to ``device``), so one ``torch.Generator`` makes them reproducible on any device.
Default sizes put every data set in roughly ``[-5, 5]²`` (the scale of torchcfm's 8 gaussians), so any two
can be paired; text (``get("text", text="RF")``) is 6 high and at most 12 wide, so that letters stand out of
an ``N(0, I)`` source.

>>> import toyflow
>>> x = toyflow.data.get("moons").sample(4, generator=torch.Generator().manual_seed(0))
>>> tuple(x.shape)
(4, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._base import (
    check_choice,
    check_int,
    check_number,
    check_points,
    draw_device,
    multinomial,
    rand,
    randint,
    randn,
)


class Distribution:
    """A 2D distribution: ``sample`` always, ``log_prob`` where the density is known."""

    dim: int = 2
    has_log_prob: bool = False

    def sample(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """Draw ``n`` points, shape ``(n, dim)``, on ``device`` (default: where they were drawn, the generator's
        device or the CPU)."""
        check_int("n", n)
        x = self._sample(n, generator, draw_device(generator))
        return x if device is None else x.to(device)

    def _sample(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        """``n`` points drawn on ``device``, the generator's (the ``_base`` draws put them there)."""
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density of ``x`` of shape ``(n, dim)``, shape ``(n,)``."""
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form density; "
            f"the ones that have one are {sorted(k for k, f in REGISTRY.items() if f().has_log_prob)}"
        )

    def _check_points(self, x: Tensor) -> None:
        check_points("x", x, self.dim)


def _polar(radius: Tensor | float, angle: Tensor) -> Tensor:
    """Points ``radius·(cos θ, sin θ)``, shape ``(n, 2)``."""
    return torch.as_tensor(radius)[..., None] * torch.stack([angle.cos(), angle.sin()], 1)


def _positive(name: str, value: float) -> float:
    return check_number(name, value, low=0, low_open=True)


def _non_negative(name: str, value: float) -> float:
    return check_number(name, value, low=0)


def _as_tensor(name: str, value: object, expected: str) -> Tensor:
    """``value`` as a tensor, or a ``TypeError`` naming ``name`` and what was ``expected``."""
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}") from None


@dataclass
class Gaussian(Distribution):
    """Isotropic Gaussian ``N(mean, std² I)``."""

    mean: tuple[float, ...] = (0.0, 0.0)
    std: float = 1.0
    has_log_prob = True

    def __post_init__(self):
        _positive("std", self.std)
        if not isinstance(self.mean, (tuple, list)) or len(self.mean) < 1:
            raise ValueError(f"mean must be one or more finite numbers, got {self.mean!r}")
        for k, m in enumerate(self.mean):
            check_number(f"mean[{k}]", m)
        self.dim = len(self.mean)

    def _sample(self, n, generator, device):
        mean = torch.tensor(self.mean, device=device)
        return mean + self.std * randn((n, self.dim), generator)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log N(x; m, s²I) = −‖x − m‖²/(2s²) − d·(log s + ½ log 2π)`` of ``x`` ``(n, dim)``: ``(n,)``."""
        self._check_points(x)
        z = (x - torch.tensor(self.mean, device=x.device, dtype=x.dtype)) / self.std
        return -0.5 * (z**2).sum(1) - self.dim * (math.log(self.std) + 0.5 * math.log(2 * math.pi))


class GaussianMixture(Distribution):
    """Mixture of isotropic Gaussians: ``p(x) = Σ_k w_k N(x; μ_k, std² I)``.

    Args:
        means: component centres, shape ``(K, 2)``.
        std: the common standard deviation.
        weights: mixture weights, shape ``(K,)`` (normalised here); uniform by default.
    """

    has_log_prob = True

    def __init__(self, means: Tensor, std: float, weights: Tensor | None = None):
        self.means = _as_tensor("means", means, "an array (K, 2)").float()
        if self.means.ndim != 2 or self.means.shape[1] != 2 or len(self.means) == 0:
            raise ValueError(f"means must have shape (K, 2) with K >= 1, got {tuple(self.means.shape)}")
        if not torch.isfinite(self.means).all():
            raise ValueError(f"means must be finite, got {self.means.tolist()}")
        self.std = _positive("std", std)
        k = len(self.means)
        self.weights = torch.ones(k) / k if weights is None else _as_tensor("weights", weights, f"{k} numbers").float()
        if self.weights.shape != (k,) or (self.weights < 0).any() or not self.weights.sum() > 0:
            raise ValueError(f"weights must be {k} non-negative numbers, not all 0, got {self.weights.tolist()}")
        self.weights = self.weights / self.weights.sum()

    def sample_with_labels(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw ``n`` points and the index of the component each came from: ``(n, 2)``, ``(n,)``."""
        check_int("n", n)
        draw = draw_device(generator)
        labels = multinomial(self.weights.to(draw), n, generator=generator)  # (n,)
        x = self.means.to(draw)[labels] + self.std * randn((n, 2), generator)
        return (x, labels) if device is None else (x.to(device), labels.to(device))

    def _sample(self, n, generator, device):
        return self.sample_with_labels(n, generator, device)[0]

    sample_labelled = sample_with_labels
    classes = property(lambda self: len(self.means), doc="Number of labels: one per component.")

    def classify(self, x: Tensor) -> Tensor:
        """The label of the nearest component centre for each point of ``x`` ``(n, 2)``: ``(n,)``."""
        self._check_points(x)
        return torch.cdist(x, self.means.to(x)).argmin(1)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log Σ_k w_k N(x; μ_k, s²I)`` (a log-sum-exp over the ``K`` components) of ``x`` ``(n, 2)``: ``(n,)``."""
        self._check_points(x)
        means, weights = self.means.to(x), self.weights.to(x)
        sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)  # (n, K)
        log_normal = -0.5 * sq / self.std**2 - 2 * math.log(self.std) - math.log(2 * math.pi)
        return torch.logsumexp(log_normal + weights.log(), dim=1)


def ring_of_gaussians(k: int = 8, radius: float = 5.0, std: float = 0.1**0.25) -> GaussianMixture:
    """``k`` Gaussians evenly spaced on a circle; the default is torchcfm's ``sample_8gaussians``
    (radius 5, covariance ``√0.1·I``)."""
    check_int("k", k)
    _non_negative("radius", radius)
    angle = torch.arange(k) * 2 * math.pi / k
    return GaussianMixture(_polar(radius, angle), std)


def labelled_mixture(k: int = 4, radius: float = 3.0, std: float = 0.5) -> GaussianMixture:
    """A class-labelled mixture: ``sample_with_labels`` gives the class of each point."""
    return ring_of_gaussians(k, radius, std)


@dataclass
class Moons(Distribution):
    """Two interleaving half circles, then ``scale·x + shift`` (default ×3 − 1, as torchcfm's ``sample_moons``).

    ``noise_type="gaussian"`` adds ``N(0, noise²I)`` like scikit-learn's ``make_moons``;
    ``noise_type="diagonal"`` adds one ``U(0, noise)`` to both coordinates, which is what
    torchcfm's ``sample_moons`` really draws (through torchdyn's ``generate_moons``): a much
    thinner data set. Angles are uniform at random (both libraries space them evenly).
    """

    noise: float = 0.2
    scale: float = 3.0
    shift: float = -1.0
    noise_type: str = "gaussian"

    def __post_init__(self):
        _non_negative("noise", self.noise)
        _positive("scale", self.scale)
        check_number("shift", self.shift)
        check_choice("noise_type", self.noise_type, ("gaussian", "diagonal"))

    classes = 2  # label 1: the upper moon, 0: the lower one

    def _sample(self, n, generator, device):
        return self._sample_labelled(n, generator, device)[0]

    def sample_labelled(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw ``n`` points and their moon (1 upper, 0 lower): ``(n, 2)``, ``(n,)``; same draws as ``sample``,
        by the device rule (drawn on the generator's device, then moved to ``device``)."""
        check_int("n", n)
        x, label = self._sample_labelled(n, generator, draw_device(generator))
        return (x, label) if device is None else (x.to(device), label.to(device))

    def _sample_labelled(self, n, generator, device):
        angle = math.pi * rand(n, generator)
        upper = randint(2, n, generator).bool()
        x = torch.where(upper, angle.cos(), 1 - angle.cos())
        y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
        points = torch.stack([x, y], 1)
        if self.noise_type == "gaussian":
            points = points + self.noise * randn((n, 2), generator)
        else:
            points = points + self.noise * rand(n, generator)[:, None]
        return self.scale * points + self.shift, upper.long()

    def classify(self, x: Tensor) -> Tensor:
        """The moon nearest to each point of ``x`` ``(n, 2)`` (distance to the noiseless arcs): ``(n,)``."""
        self._check_points(x)
        u = (x - self.shift) / self.scale  # back to the unit moons
        arc = torch.linspace(0, math.pi, 200, device=x.device, dtype=x.dtype)
        upper = torch.stack([arc.cos(), arc.sin()], 1)
        lower = torch.stack([1 - arc.cos(), 0.5 - arc.sin()], 1)
        return (torch.cdist(u, upper).min(1).values < torch.cdist(u, lower).min(1).values).long()


@dataclass
class Circles(Distribution):
    """Two concentric circles (scikit-learn's ``make_circles``) of radii ``radius`` and
    ``factor·radius``, with Gaussian noise."""

    radius: float = 4.0
    factor: float = 0.5
    noise: float = 0.08

    def __post_init__(self):
        _positive("radius", self.radius)
        _positive("factor", self.factor)
        _non_negative("noise", self.noise)

    def _sample(self, n, generator, device):
        angle = 2 * math.pi * rand(n, generator)
        r = torch.where(randint(2, n, generator).bool(), self.radius, self.factor * self.radius)
        return _polar(r, angle) + self.noise * self.radius * randn((n, 2), generator)


@dataclass
class SwissRoll(Distribution):
    """2D swiss roll: ``r = θ`` for ``θ ∈ [1.5π, 4.5π]``, scaled to radius ``size``."""

    size: float = 4.5
    noise: float = 0.1

    def __post_init__(self):
        _positive("size", self.size)
        _non_negative("noise", self.noise)

    def _sample(self, n, generator, device):
        theta = 1.5 * math.pi * (1 + 2 * rand(n, generator))
        roll = torch.stack([theta * theta.cos(), theta * theta.sin()], 1) / (4.5 * math.pi)
        return self.size * (roll + self.noise * randn((n, 2), generator) / 4.5)


@dataclass
class Checkerboard(Distribution):
    """Uniform on the black squares of a ``cells × cells`` board covering ``[-size, size]²``."""

    cells: int = 4
    size: float = 4.0
    has_log_prob = True

    def __post_init__(self):
        check_int("cells", self.cells, minimum=2)
        if self.cells % 2:
            raise ValueError(f"cells must be even (each row holds cells/2 black squares), got {self.cells}")
        _positive("size", self.size)

    def _sample(self, n, generator, device):
        col = randint(self.cells, n, generator)
        row = 2 * randint(self.cells // 2, n, generator) + (col % 2)
        cell = torch.stack([col, row], 1) + rand((n, 2), generator)
        return (2 * cell / self.cells - 1) * self.size

    @property
    def classes(self) -> int:
        """Number of labels: one per black square."""
        return self.cells * (self.cells // 2)

    def sample_labelled(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw ``n`` points and the black square each lies in (see :meth:`classify`): ``(n, 2)``, ``(n,)``."""
        x = self.sample(n, generator, device)
        return x, self.classify(x)

    def classify(self, x: Tensor) -> Tensor:
        """The square of each point, numbered ``col·(cells // 2) + row // 2`` (black squares are 0 … classes − 1;
        a point on a white square gets the label of the black square above or below it): ``(n,)``."""
        self._check_points(x)
        cell = torch.floor((x / self.size + 1) * self.cells / 2).long().clamp(0, self.cells - 1)  # (n, 2)
        return cell[:, 0] * (self.cells // 2) + cell[:, 1] // 2

    def log_prob(self, x: Tensor) -> Tensor:
        """``−log(area of the black squares)`` on a black square, ``−inf`` elsewhere, for ``x`` ``(n, 2)``: ``(n,)``."""
        self._check_points(x)
        cell = torch.floor((x / self.size + 1) * self.cells / 2)
        inside = ((cell >= 0) & (cell < self.cells)).all(1) & ((cell[:, 0] + cell[:, 1]) % 2 == 0)
        area = (2 * self.size) ** 2 / 2
        return torch.where(inside, -math.log(area), -math.inf)


@dataclass
class Spirals(Distribution):
    """Two interleaved Archimedean spirals of outer radius ``size``."""

    size: float = 4.0
    turns: float = 1.5
    noise: float = 0.08

    def __post_init__(self):
        _positive("size", self.size)
        _positive("turns", self.turns)
        _non_negative("noise", self.noise)

    def _sample(self, n, generator, device):
        r = rand(n, generator).sqrt()  # uniform along the arc length, roughly
        angle = 2 * math.pi * self.turns * r + math.pi * randint(2, n, generator)
        return self.size * (_polar(r, angle) + self.noise * randn((n, 2), generator))


@dataclass
class Pinwheel(Distribution):
    """``arms`` curved blades: Gaussian blobs bent by an angle that grows with the radius."""

    arms: int = 5
    size: float = 4.0
    radial_std: float = 0.3
    tangential_std: float = 0.08
    rate: float = 0.25

    def __post_init__(self):
        check_int("arms", self.arms)
        _positive("size", self.size)
        _non_negative("radial_std", self.radial_std)
        _non_negative("tangential_std", self.tangential_std)
        check_number("rate", self.rate)

    def _sample(self, n, generator, device):
        radial = 1 + self.radial_std * randn((n, 1), generator)
        tangent = self.tangential_std * randn((n, 1), generator)
        arm = randint(self.arms, n, generator)
        angle = 2 * math.pi * arm / self.arms + self.rate * torch.exp(radial[:, 0])
        rotation = torch.stack([angle.cos(), -angle.sin(), angle.sin(), angle.cos()], 1).view(n, 2, 2)
        points = torch.cat([radial, tangent], 1)[:, :, None]  # (n, 2, 1)
        return self.size / 1.6 * (rotation @ points)[:, :, 0]


@dataclass
class Rings(Distribution):
    """``count`` concentric rings of radii ``size·k/count``, more points on the longer rings."""

    count: int = 4
    size: float = 4.0
    noise: float = 0.08

    def __post_init__(self):
        check_int("count", self.count)
        _positive("size", self.size)
        _non_negative("noise", self.noise)

    def _sample(self, n, generator, device):
        k = torch.arange(1, self.count + 1, device=device, dtype=torch.float32)
        ring = multinomial(k / k.sum(), n, generator=generator)  # (n,)
        r = self.size * (ring + 1) / self.count
        angle = 2 * math.pi * rand(n, generator)
        return _polar(r, angle) + self.noise * self.size * randn((n, 2), generator)


class Pixels(Distribution):
    """Uniform over the filled cells of a picture, fitted into ``[-width, width] × [-height, height]``, plus
    ``N(0, noise² I)``.

    Row 0 of ``mask`` is the top of the picture, so y points up as it does in the picture. The picture keeps its
    aspect ratio: the bounding box of its filled cells is centred at the origin and scaled as large as the box
    allows. A draw picks a filled cell uniformly (all cells have the same area, so this is uniform over the
    filled area), a uniform point inside that cell, then adds the Gaussian noise that softens the edges.
    :class:`Text` and :func:`from_image` build one.

    Args:
        mask: boolean array ``(H, W)``, True where the distribution puts mass.
        width, height: half the sides of the box the picture is fitted into.
        noise: standard deviation of the Gaussian added to each point (0: exactly uniform on the cells).
    """

    def __init__(self, mask, width: float = 4.0, height: float = 4.0, noise: float = 0.05):
        mask = _as_tensor("mask", mask, "a boolean array (H, W)").bool().cpu()
        if mask.ndim != 2:
            raise ValueError(f"mask must have shape (H, W), got {tuple(mask.shape)}")
        if not mask.any():
            raise ValueError(f"mask must have at least one True cell, got none in a {tuple(mask.shape)} mask")
        self.width, self.height = _positive("width", width), _positive("height", height)
        self.noise, self.mask = _non_negative("noise", noise), mask
        rows, cols = mask.nonzero(as_tuple=True)
        x, y = cols.float(), (mask.shape[0] - 1 - rows).float()  # lower-left corner of each cell, y up
        box = torch.stack([x.min(), y.min(), x.max() + 1, y.max() + 1])  # bounding box, in cells
        self.centre = (box[:2] + box[2:]) / 2  # (2,), in cells
        cells = box[2:] - box[:2]  # (2,): the picture's width and height, in cells
        self.cell = min(2 * self.width / cells[0].item(), 2 * self.height / cells[1].item())  # a cell's side in data units
        self.corners = (torch.stack([x, y], 1) - self.centre) * self.cell  # (m, 2)
        self._on_device = {torch.device("cpu"): self.corners}

    def _sample(self, n, generator, device):
        if device not in self._on_device:
            self._on_device[device] = self.corners.to(device)
        corners = self._on_device[device][randint(len(self.corners), n, generator)]  # (n, 2)
        inside = self.cell * rand((n, 2), generator)
        return corners + inside + self.noise * randn((n, 2), generator)

    def inside(self, x: Tensor) -> Tensor:
        """Whether each point of ``x`` ``(n, 2)`` lies in a filled cell: ``(n,)`` booleans."""
        self._check_points(x)
        cell = torch.floor(x.detach().cpu().float() / self.cell + self.centre).long()  # (n, 2): column, row from the bottom
        h, w = self.mask.shape
        ok = (cell[:, 0] >= 0) & (cell[:, 0] < w) & (cell[:, 1] >= 0) & (cell[:, 1] < h)
        row, col = (h - 1 - cell[:, 1]).clamp(0, h - 1), cell[:, 0].clamp(0, w - 1)
        return (ok & self.mask[row, col]).to(x.device)


class Text(Pixels):
    """Points on the glyphs of ``text``, drawn by matplotlib in its bundled DejaVu Sans (no font download).

    The glyph outlines (``matplotlib.textpath.TextPath``) are filled on a grid of ``resolution`` cells along the
    longer side (even-odd rule, so the holes of "R", "o", "8" stay empty); the result is a :class:`Pixels`
    distribution: uniform over the letters, fitted into ``[-width, width] × [-height, height]``, plus
    ``N(0, noise² I)``. The default box is wide and tall enough that short text (initials, a short word) stands
    out of the ``N(0, I)`` source around the origin: a few letters are 6 high, and longer text is narrowed to
    12 wide.

    >>> x = Text("RF").sample(3, generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape)
    (3, 2)
    """

    def __init__(self, text: str = "RF", width: float = 6.0, height: float = 3.0, noise: float = 0.05,
                 weight: str = "bold", resolution: int = 200):
        import numpy as np
        from matplotlib.font_manager import FontProperties, weight_dict
        from matplotlib.path import Path
        from matplotlib.textpath import TextPath

        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__} {text!r}")
        if not text:
            raise ValueError("text must be a non-empty string, got ''")
        if not text.strip():
            raise ValueError(f"text must hold at least one visible character, got only white space {text!r}")
        check_int("resolution", resolution, minimum=8)
        if not isinstance(weight, str) or weight not in weight_dict:
            raise ValueError(f"weight must be one of matplotlib's font weights {sorted(weight_dict)}, got {weight!r}")
        glyphs = TextPath((0, 0), text, size=1, prop=FontProperties(family="DejaVu Sans", weight=weight))
        outlines = glyphs.to_polygons(closed_only=True)
        if not outlines:
            raise ValueError(f"text {text!r} has no glyph to draw")
        box = glyphs.get_extents()
        step = max(box.width, box.height) / resolution
        xs = np.arange(box.x0 + step / 2, box.x1, step)
        ys = np.arange(box.y1 - step / 2, box.y0, -step)  # top row first
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)  # cell centres, (H·W, 2)
        filled = np.zeros(len(grid), dtype=bool)
        for outline in outlines:  # even-odd: a hole is an outline inside another one
            filled ^= Path(outline).contains_points(grid)
        if not filled.any():
            raise ValueError(f"text {text!r} covers no cell at resolution={resolution}; raise resolution")
        self.text = text
        super().__init__(filled.reshape(len(ys), len(xs)), width, height, noise)

    def __repr__(self) -> str:
        return f"Text({self.text!r}, width={self.width}, height={self.height}, noise={self.noise})"


def from_image(image, threshold: float = 0.5, invert: bool = False, size: float = 4.0,
               noise: float = 0.05) -> Pixels:
    """Points on the dark pixels of a picture: uniform over them, fitted into ``[-size, size]²``, plus noise.

    Args:
        image: a path to a picture (PNG, read by ``matplotlib.image.imread``) or an array (NumPy or torch):
            grey ``(H, W)``, grey and alpha ``(H, W, 2)``, RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)``; floats in
            ``[0, 1]`` or unsigned integers (0 … 255 for ``uint8``); a boolean array marks the pixels to use with
            True. Colours become grey by luminance ``0.299 R + 0.587 G + 0.114 B``; transparent pixels count as
            white. Row 0 is the top of the picture.
        threshold: a pixel is dark when its grey value is below ``threshold``, in ``(0, 1)``.
        invert: use the light pixels (grey above ``threshold``) instead: a light drawing on a dark background.
        size: half the longer side of the box the picture is fitted into.
        noise: standard deviation of the Gaussian added to each point.
    """
    import numpy as np

    _positive("size", size)
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from matplotlib.image import imread

        image = imread(image)
    if isinstance(image, Tensor):
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (1, 2, 3, 4):
        pass
    elif array.ndim != 2:
        raise ValueError(f"image must have shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    number = check_number("threshold", threshold, low=0, high=1, low_open=True, high_open=True,
                          why="grey values run from 0 black to 1 white")
    if not isinstance(invert, bool):
        raise TypeError(f"invert must be True or False, got {invert!r}")
    if array.dtype == bool:
        grey = np.where(array if array.ndim == 2 else array[..., 0], 0.0, 1.0)  # True marks the pixels to use
    else:
        if np.issubdtype(array.dtype, np.unsignedinteger):
            array = array / np.iinfo(array.dtype).max
        elif not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"image must hold floats in [0, 1], unsigned integers or booleans, got dtype {array.dtype}")
        array = array.astype(np.float64)
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(f"image floats must lie in [0, 1], got values in [{np.nanmin(array):g}, {np.nanmax(array):g}]")
        if array.ndim == 2:
            grey = array
        else:
            channels = array.shape[2]
            colour = array[..., : 1 if channels < 3 else 3]
            grey = colour[..., 0] if channels < 3 else colour @ np.array([0.299, 0.587, 0.114])
            if channels in (2, 4):  # over a white background
                alpha = array[..., -1]
                grey = alpha * grey + (1 - alpha)
    dark = grey > number if invert else grey < number
    if not dark.any():
        which = "lighter" if invert else "darker"
        raise ValueError(f"image has no pixel {which} than threshold={threshold} (grey values span "
                         f"[{grey.min():.3g}, {grey.max():.3g}]); change threshold or invert")
    return Pixels(dark, size, size, noise)


REGISTRY = {
    "gaussian": Gaussian,
    "8gaussians": ring_of_gaussians,
    "moons": Moons,
    "circles": Circles,
    "swissroll": SwissRoll,
    "checkerboard": Checkerboard,
    "spirals": Spirals,
    "pinwheel": Pinwheel,
    "rings": Rings,
    "mixture": labelled_mixture,
    "text": Text,
}
# data sets built from something the caller gives (a picture), so kept apart from REGISTRY, whose every entry
# builds with its defaults: data.get("image", image="star.png")
FROM_INPUT = {"image": from_image}


def names() -> list[str]:
    """Every name ``get`` knows: the data sets of ``REGISTRY`` and ``"image"``."""
    return sorted([*REGISTRY, *FROM_INPUT])


def get(name: str, **params) -> Distribution:
    """The distribution called ``name``, built with ``params``: ``get("8gaussians", radius=4)``,
    ``get("text", text="RF")``, ``get("image", image="star.png")``."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {names()}, got {type(name).__name__} {name!r}")
    build = REGISTRY.get(name, FROM_INPUT.get(name))
    if build is None:
        raise ValueError(f"unknown dataset {name!r}; choose one of {names()}")
    try:
        return build(**params)
    except TypeError as error:
        raise TypeError(f"bad parameters for dataset {name!r}: {error}") from None


def from_spec(spec: str) -> Distribution:
    """The data set one string names, as the command line takes it: ``"moons"``, ``"text:RF"`` (everything after
    the first colon is the text), ``"image:path/to/picture.png"`` (dark pixels, default threshold)."""
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str such as 'moons', 'text:RF' or 'image:star.png', got {spec!r}")
    name, colon, value = spec.partition(":")
    if not colon:
        return get(name)
    if name in ("text", "image"):
        return get(name, **{name: value})
    raise ValueError(f"spec {spec!r}: only 'text:TEXT' and 'image:PATH' take a value after ':'; "
                     f"the data sets named alone are {sorted(REGISTRY)}")
