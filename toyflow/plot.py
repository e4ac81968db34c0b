"""Every figure of the course: samples, trajectories coloured by time, couplings, vector fields,
densities, NFE–quality curves and animations (``to_jshtml`` or a GIF via Pillow; no ffmpeg).

Each function draws on ``ax`` (a new one if None) and returns it; tensors may live on any device.

>>> import matplotlib; matplotlib.use("Agg")
>>> ax = samples(torch.randn(100, 2))
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
from torch import Tensor

SOURCE_COLOR, TARGET_COLOR = "#3b6fb6", "#e1712b"
REFERENCE_COLOR = "0.6"  #: grey of the reference points that samples are drawn against
#: time runs from the source's colour (t = 0) through purple to the target's colour (t = 1)
TIME_CMAP = LinearSegmentedColormap.from_list("toyflow_time", [SOURCE_COLOR, "#8e5bb0", TARGET_COLOR])
Box = tuple[float, float, float, float]  # (xmin, xmax, ymin, ymax)


def _np(x: Tensor) -> np.ndarray:
    return x.detach().cpu().float().numpy()


def limits(*points: Tensor, margin: float = 0.06) -> Box:
    """The smallest square box holding every point of ``points`` (tensors ``(..., 2)``), plus ``margin``
    of its side on each edge, so that nothing is clipped and panels keep an equal aspect."""
    if not points:
        raise ValueError("limits needs at least one tensor of points")
    flat = np.concatenate([_np(p).reshape(-1, 2) for p in points])
    flat = flat[np.isfinite(flat).all(1)]
    if len(flat) == 0:
        raise ValueError("limits got no finite points")
    low, high = flat.min(0), flat.max(0)
    centre, half = (low + high) / 2, max((high - low).max() / 2, 1e-3) * (1 + 2 * margin)
    return (centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)


def frame(ax: Axes | None = None, lim: float | Box | None = None, title: str | None = None, ticks: bool = False) -> Axes:
    """A square panel: ``lim`` is a half-width (the box ``[-lim, lim]²``), a box from :func:`limits`, or None
    (matplotlib's own limits). Point clouds hide their ticks; densities and curves keep them."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    if lim is not None:
        box = (-lim, lim, -lim, lim) if np.isscalar(lim) else lim
        ax.set_xlim(box[0], box[1])
        ax.set_ylim(box[2], box[3])
    ax.set_aspect("equal")
    if not ticks:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def panels(count: int, size: float = 3.0, titles: list[str] | None = None, rows: int = 1):
    """A figure with ``count`` square panels in ``rows`` rows: ``(fig, list of axes)``."""
    cols = -(-count // rows)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    axes = list(axes.flat)
    for extra in axes[count:]:
        extra.remove()
    for i, ax in enumerate(axes[:count]):
        frame(ax, title=titles[i] if titles else None)
    return fig, axes[:count]


def samples(
    x: Tensor, ax: Axes | None = None, color: str = TARGET_COLOR, lim: float | Box | None = None,
    title: str | None = None, size: float = 2.0, label: str | None = None, alpha: float = 0.6,
) -> Axes:
    """Scatter plot of points ``(n, 2)``; limits from the points unless ``lim`` is given."""
    ax = frame(ax, limits(x) if lim is None else lim, title)
    points = _np(x)
    ax.scatter(points[:, 0], points[:, 1], s=size, alpha=alpha, color=color, label=label, linewidths=0)
    return ax


def backdrop(ax: Axes, source: Tensor | None = None, target: Tensor | None = None, size: float = 4.0) -> Axes:
    """The two distributions a flow moves between, as light clouds under the paths: the source ``π0`` in blue,
    the target ``π1`` in orange (each ``(n, 2)``, either may be None)."""
    for points, color, label in ((source, SOURCE_COLOR, "source π₀ (t = 0)"), (target, TARGET_COLOR, "target π₁ (t = 1)")):
        if points is not None:
            xy = _np(points)
            ax.scatter(xy[:, 0], xy[:, 1], s=size, color=color, alpha=0.25, linewidths=0, label=label, zorder=1)
    return ax


def overlap(a: Tensor, b: Tensor, bins: int = 20) -> float:
    """How much two point clouds ``(n, 2)`` share the plane: the intersection ``Σ min(p, q)`` of their histograms on
    a common ``bins × bins`` grid, 0 for disjoint clouds, 1 for identical ones."""
    box = limits(a, b)
    edges = [np.linspace(box[0], box[1], bins + 1), np.linspace(box[2], box[3], bins + 1)]
    p, q = (np.histogram2d(*_np(x).T, bins=edges)[0] / len(x) for x in (a, b))
    return float(np.minimum(p, q).sum())


def path_style(path: Tensor) -> dict:
    """How many of the paths ``(T + 1, n, 2)`` to draw, and how thick and opaque, so the figure stays legible.

    When source and target lie apart, 200 paths show the flow's shape. When they share the plane
    (:func:`overlap` of the start and end points above 0.3), every path starts inside the other cloud and
    200 of them make a tangle: fewer (80), more opaque lines are drawn.
    """
    apart = overlap(path[0], path[-1]) <= 0.3
    count = min(path.shape[1], 200 if apart else 80)
    return {"count": count, "linewidth": 0.7 if apart else 0.9, "alpha": 0.55 if apart else 0.8}


def legend_handles() -> list[Line2D]:
    """Legend entries for :func:`trajectories`: source, target, and a path coloured by time."""
    dot = {"marker": "o", "linestyle": "", "markersize": 5}
    return [Line2D([], [], color=SOURCE_COLOR, label="source π₀ (t = 0)", **dot),
            Line2D([], [], color=TARGET_COLOR, label="target π₁ (t = 1)", **dot),
            Line2D([], [], color=TIME_CMAP(0.5), label="path, coloured by time t")]


def time_colorbar(fig, axes, label: str = "time t", cax: Axes | None = None) -> None:
    """One colour bar for the time colouring of :func:`trajectories` (source colour at 0, target colour at 1),
    beside ``axes``, or in the axes ``cax`` when given (a grid slot kept for it: the other panels keep their size)."""
    mappable = ScalarMappable(Normalize(0, 1), TIME_CMAP)
    if cax is not None:
        bar = fig.colorbar(mappable, cax=cax)
    else:
        bar = fig.colorbar(mappable, ax=axes, shrink=0.8, pad=0.02, fraction=0.04)
    bar.set_label(label)
    bar.set_ticks([0, 0.5, 1])


def trajectories(
    path: Tensor, ax: Axes | None = None, count: int | None = None, lim: float | Box | None = None,
    title: str | None = None, source: Tensor | None = None, target: Tensor | None = None, colorbar: bool = True,
) -> Axes:
    """Paths ``(T + 1, n, 2)`` as lines coloured by time (blue at ``t = 0`` to orange at ``t = 1``) over light
    backdrops of the ``source`` and ``target`` samples (default: every path's start and end point), with start
    dots in blue and end dots in orange. How many paths, how thick and opaque: :func:`path_style`, unless
    ``count`` is given. Limits cover every point drawn unless ``lim`` is given; a time colour bar if ``colorbar``."""
    style = path_style(path)
    count = style["count"] if count is None else count
    source = path[0] if source is None else source
    target = path[-1] if target is None else target
    ax = frame(ax, limits(path[:, :count], source, target) if lim is None else lim, title)
    backdrop(ax, source, target)
    points = _np(path[:, :count])  # (T + 1, k, 2)
    segments = np.stack([points[:-1], points[1:]], axis=2).transpose(1, 0, 2, 3).reshape(-1, 2, 2)  # (k·T, 2, 2)
    times = np.tile(np.linspace(0, 1, len(points) - 1), points.shape[1])
    ax.add_collection(LineCollection(segments, array=times, cmap=TIME_CMAP, norm=Normalize(0, 1),
                                     linewidths=style["linewidth"], alpha=style["alpha"], zorder=2))
    ax.scatter(points[0, :, 0], points[0, :, 1], s=7, color=SOURCE_COLOR, zorder=3, linewidths=0.3, edgecolors="white")
    ax.scatter(points[-1, :, 0], points[-1, :, 1], s=7, color=TARGET_COLOR, zorder=3, linewidths=0.3, edgecolors="white")
    if colorbar:
        time_colorbar(ax.figure, ax)
    return ax


def rounds(
    paths: Mapping[str, Tensor], source: Tensor | None = None, target: Tensor | None = None,
    titles: list[str] | None = None, suptitle: str | None = None, size: float = 3.4,
):
    """The signature figure: the paths of several flows (e.g. 1-RF, 2-RF, 3-RF) side by side on shared limits,
    source and target as backdrops, one time colour bar and one legend. ``paths`` maps a name to ``(T + 1, n, 2)``;
    ``titles`` (default: the names) should carry the measured numbers. Returns ``(fig, axes)``."""
    first = next(iter(paths.values()))
    source = first[0] if source is None else source
    target = first[-1] if target is None else target
    box = limits(*(p[:, : path_style(p)["count"]] for p in paths.values()), source, target)
    fig, axes = panels(len(paths), size, titles or list(paths))
    for ax, path in zip(axes, paths.values()):
        trajectories(path, ax, lim=box, source=source, target=target, colorbar=False)
    time_colorbar(fig, axes)
    fig.legend(handles=legend_handles(), loc="upper center", bbox_to_anchor=(0.45, 0.1), ncol=3, fontsize=8, frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11, y=1.04)
    return fig, axes


def pairs(
    x0: Tensor, x1: Tensor, ax: Axes | None = None, count: int = 200, lim: float | Box | None = None,
    title: str | None = None,
) -> Axes:
    """A coupling drawn as straight segments joining ``x0[i]`` (blue) to ``x1[i]`` (orange); the first ``count`` pairs."""
    ax = frame(ax, limits(x0[:count], x1[:count]) if lim is None else lim, title)
    a, b = _np(x0[:count]), _np(x1[:count])
    ax.add_collection(LineCollection(np.stack([a, b], 1), colors="0.45", linewidths=0.4, alpha=0.6))
    ax.scatter(a[:, 0], a[:, 1], s=5, color=SOURCE_COLOR, zorder=3, linewidths=0, label="x₀ (source)")
    ax.scatter(b[:, 0], b[:, 1], s=5, color=TARGET_COLOR, zorder=3, linewidths=0, label="x₁ (target)")
    return ax


def curves(
    x: Tensor, ax: Axes | None = None, count: int | None = 50, lim: float | Box | None = None, title: str | None = None,
    color: str | None = None, points: bool = False,
) -> Axes:
    """Sequences ``(n, T, 2)`` as polylines (toy sequences, or grid lines warped by a flow): the first ``count``
    (all if None), each in its own colour unless ``color`` is given, with their points if ``points``."""
    ax = frame(ax, limits(x[:count]) if lim is None else lim, title)
    lines = _np(x[:count])
    colors = [color] * len(lines) if color else plt.get_cmap("tab10")(np.arange(len(lines)) % 10)
    ax.add_collection(LineCollection(lines, colors=colors, linewidths=0.8, alpha=0.8))
    if points:
        ax.scatter(lines[..., 0].ravel(), lines[..., 1].ravel(), s=3, color="0.2", linewidths=0, zorder=3)
    return ax


def _grid(box: Box, resolution: int) -> tuple[Tensor, np.ndarray, np.ndarray]:
    gx, gy = torch.meshgrid(torch.linspace(box[0], box[1], resolution), torch.linspace(box[2], box[3], resolution), indexing="xy")
    return torch.stack([gx.flatten(), gy.flatten()], 1), gx.numpy(), gy.numpy()


def _box(lim: float | Box) -> Box:
    return (-lim, lim, -lim, lim) if np.isscalar(lim) else lim


def vector_field(
    v: Callable[[Tensor, Tensor], Tensor], t: float, ax: Axes | None = None, lim: float | Box = 7.0,
    resolution: int = 17, title: str | None = None, color: str = "0.2", device=None,
) -> Axes:
    """Arrows of ``v(x, t)`` on a ``resolution × resolution`` grid over the box ``lim``."""
    ax = frame(ax, lim, title)
    box = _box(lim)
    inner = tuple(np.array(box) * 0.9 + np.repeat([(box[0] + box[1]) / 2, (box[2] + box[3]) / 2], 2) * 0.1)
    x, _, _ = _grid(inner, resolution)
    x = x.to(device) if device is not None else x
    with torch.no_grad():
        arrows = _np(v(x, torch.full((len(x),), float(t), device=x.device)))
    points = _np(x)
    ax.quiver(points[:, 0], points[:, 1], arrows[:, 0], arrows[:, 1], color=color, angles="xy", width=0.004)
    return ax


def density(
    log_prob: Callable[[Tensor], Tensor], ax: Axes | None = None, lim: float | Box = 7.0, resolution: int = 150,
    title: str | None = None, cmap: str = "magma", device=None, colorbar: bool = True, vmax: float | None = None,
) -> Axes:
    """The density ``p(x) = exp(log_prob(x))`` as an image over the box ``lim``, with tick labels and a colour bar.

    ``vmax`` fixes the top of the colour scale (from 0), so that several panels share one scale; then pass
    ``colorbar=False`` and draw one bar for all of them with :func:`density_colorbar`."""
    box = _box(lim)
    ax = frame(ax, box, title, ticks=True)
    x, _, _ = _grid(box, resolution)
    with torch.no_grad():
        values = _np(log_prob(x if device is None else x.to(device)).exp()).reshape(resolution, resolution)
    image = ax.imshow(values, extent=box, origin="lower", cmap=cmap, vmin=None if vmax is None else 0.0, vmax=vmax)
    ax.tick_params(labelsize=7)
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax, shrink=0.75, pad=0.03)
        bar.ax.set_xlabel("p(x)", fontsize=8)  # below, not beside: neighbouring panels keep their room
        bar.ax.tick_params(labelsize=7)
    return ax


def density_colorbar(fig, axes, vmax: float, cmap: str = "magma", label: str = "density p(x)") -> None:
    """One colour bar from 0 to ``vmax`` for density panels drawn with :func:`density` at the same ``vmax``."""
    bar = fig.colorbar(ScalarMappable(Normalize(0, vmax), plt.get_cmap(cmap)), ax=axes, shrink=0.85, pad=0.02, fraction=0.03)
    bar.set_label(label)


def nfe_curve(
    results: Mapping[str, Mapping[int, float]], ax: Axes | None = None, ylabel: str = "W2 to the target (lower is better)",
    floor: float | None = None, ticks: list[int] | None = None,
) -> Axes:
    """Quality against cost: one line per method, ``{name: {nfe: value}}``, log-scaled NFE; ``floor`` (e.g. the
    W2 between two samples of the target, the best any model can show) as a dashed line. The NFE axis is labelled
    at every NFE measured, or only at ``ticks`` (when nearby NFEs such as 74 and 80 would print over each other)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 3.5))
    for name, curve in results.items():
        nfes = sorted(curve)
        ax.plot(nfes, [curve[k] for k in nfes], marker="o", label=name)
    if floor is not None:
        ax.axhline(floor, color="0.5", linestyle="--", linewidth=1, label=f"floor {floor:.3f}")
    ax.set_xscale("log", base=2)
    measured = sorted({k for curve in results.values() for k in curve})
    ax.xaxis.set_major_locator(FixedLocator(measured if ticks is None else sorted(ticks)))  # the NFEs measured
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel("NFE (network evaluations per sample)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def losses(histories: Mapping[str, object], ax: Axes | None = None, window: int = 100, log: bool = True) -> Axes:
    """Training curves: ``{name: History}`` (anything with ``.smoothed(window)``), the running mean of the loss
    against the training step, log-scaled unless ``log=False``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 3.5))
    for name, history in histories.items():
        curve = history.smoothed(window)
        ax.plot(np.arange(len(curve)) + window, curve, label=name, linewidth=1)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"loss (running mean of {window})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def animate(
    paths: Mapping[str, Tensor], count: int = 500, lim: float | Box | None = None, frames: int = 40, size: float = 3.0,
    interval: int = 60, source: Tensor | None = None, target: Tensor | None = None, titles: list[str] | None = None,
) -> FuncAnimation:
    """Particles moving along one or more path tensors ``(T + 1, n, 2)`` side by side over the source and target
    backdrops, coloured by time, with a "t = …" stamp; at most ``frames`` (≤ 60) frames, the first and last
    included. Show it with :func:`show` (a GIF, which GitHub and nbviewer display) or save it with :func:`save_gif`."""
    if not 2 <= frames <= 60:
        raise ValueError(f"frames must be between 2 and 60 (large animations are dropped by notebooks), got {frames}")
    first = next(iter(paths.values()))
    source = first[0] if source is None else source
    target = first[-1] if target is None else target
    box = limits(*(p[:, :count] for p in paths.values()), source, target) if lim is None else lim
    fig, axes = panels(len(paths), size, titles or list(paths))
    clouds = []
    for ax, path in zip(axes, paths.values()):
        frame(ax, box)
        backdrop(ax, source[:count], target[:count], size=3)
        clouds.append((ax.scatter([], [], s=4, linewidths=0, zorder=3), _np(path[:, :count])))
    stamp = fig.text(0.5, 0.01, "", ha="center", fontsize=10)
    steps = len(first)
    chosen = np.unique(np.linspace(0, steps - 1, min(frames, steps)).round().astype(int))
    fig.tight_layout(rect=(0, 0.06, 1, 1))

    def draw(index: int):
        t = chosen[index] / max(steps - 1, 1)
        for scatter, points in clouds:
            scatter.set_offsets(points[min(chosen[index], len(points) - 1)])
            scatter.set_color(TIME_CMAP(t))
        stamp.set_text(f"t = {t:.2f}")
        return [scatter for scatter, _ in clouds] + [stamp]

    return FuncAnimation(fig, draw, frames=len(chosen), interval=interval, blit=False)


def to_html(animation: FuncAnimation) -> str:
    """The animation as a self-contained interactive HTML player (``to_jshtml``), closing its figure."""
    html = animation.to_jshtml()
    plt.close(animation._fig)
    return html


def explorer(paths_by_round: Mapping[str, Tensor], source: Tensor, target: Tensor,
             metrics_by_round: Mapping[str, Mapping[str, float]] | None = None, title: str = "reflow explorer", **options):
    """The interactive reflow explorer (time slider, play, round selector, paths, backdrops, each round's numbers) as
    one self-contained HTML page that needs no kernel: shown inline in Jupyter and Colab, ``.save(path)`` writes it.
    ``paths_by_round``: round name → path ``(T + 1, n, 2)``. See :func:`toyflow.explorer.explorer`."""
    from .explorer import explorer as build  # the explorer reads this module's colours

    return build(paths_by_round, source, target, metrics_by_round, title=title, **options)


def save_gif(animation: FuncAnimation, filename: str, fps: int = 12, panel_pixels: int = 420) -> None:
    """Write an animation as a GIF with Pillow (no ffmpeg needed), each panel ``panel_pixels`` wide."""
    fig = animation._fig
    panel_inches = fig.get_size_inches()[0] / max(len(fig.axes), 1)
    animation.save(filename, writer=PillowWriter(fps=fps), dpi=panel_pixels / panel_inches)


class GIF:
    """A GIF that shows itself in a notebook as an ``<img>`` with the file inlined: it plays in Jupyter, Colab,
    nbviewer and the course website alike (nbconvert drops ``image/gif`` outputs; an HTML player needs scripts)."""

    def __init__(self, data: bytes):
        self.data = data

    def _repr_html_(self) -> str:
        return f'<img src="data:image/gif;base64,{base64.b64encode(self.data).decode()}" alt="animation">'


def show(animation: FuncAnimation, fps: int = 12, panel_pixels: int = 420) -> GIF:
    """The animation as a :class:`GIF` for a notebook, each panel ``panel_pixels`` wide, closing its figure."""
    with tempfile.TemporaryDirectory() as folder:
        filename = os.path.join(folder, "animation.gif")
        save_gif(animation, filename, fps, panel_pixels)
        plt.close(animation._fig)
        with open(filename, "rb") as gif:
            return GIF(gif.read())


def markdown_table(rows: list[Mapping[str, object]], digits: int = 3) -> str:
    """Rows of ``{column: value}`` as a Markdown table (floats rounded to ``digits``; a column that only some rows
    have is kept, blank elsewhere); show it in a notebook with ``IPython.display.Markdown``, or print it."""
    if not rows:
        raise ValueError("rows must hold at least one row")
    columns = list(dict.fromkeys(column for row in rows for column in row))

    def cell(value: object) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
