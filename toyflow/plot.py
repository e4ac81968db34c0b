"""Every figure of the course: samples, trajectories coloured by time, couplings, vector fields,
densities, NFE–quality curves and animations (``to_jshtml`` or a GIF via Pillow; no ffmpeg).

Each function draws on ``ax`` (a new one if None) and returns it; tensors may live on any device.

>>> import matplotlib; matplotlib.use("Agg")
>>> ax = samples(torch.randn(100, 2))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from torch import Tensor

SOURCE_COLOR, TARGET_COLOR = "#4c72b0", "#dd8452"


def _np(x: Tensor) -> np.ndarray:
    return x.detach().cpu().float().numpy()


def _axes(ax: Axes | None, lim: float | None = None, title: str | None = None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
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
        _axes(ax, title=titles[i] if titles else None)
    return fig, axes[:count]


def samples(
    x: Tensor, ax: Axes | None = None, color: str = TARGET_COLOR, lim: float | None = 7.0,
    title: str | None = None, size: float = 2.0, label: str | None = None,
) -> Axes:
    """Scatter plot of points ``(n, 2)``."""
    ax = _axes(ax, lim, title)
    points = _np(x)
    ax.scatter(points[:, 0], points[:, 1], s=size, alpha=0.6, color=color, label=label, linewidths=0)
    return ax


def trajectories(
    path: Tensor, ax: Axes | None = None, count: int = 300, lim: float | None = 7.0,
    title: str | None = None, cmap: str = "viridis",
) -> Axes:
    """Paths ``(T + 1, n, 2)`` as lines coloured by time (dark at ``t = 0``, light at ``t = 1``),
    with the start points in blue and the end points in orange; the first ``count`` paths."""
    ax = _axes(ax, lim, title)
    points = _np(path[:, :count])  # (T + 1, k, 2)
    segments = np.stack([points[:-1], points[1:]], axis=2).reshape(-1, 2, 2)  # (T·k, 2, 2)
    times = np.repeat(np.linspace(0, 1, len(points) - 1), points.shape[1])
    ax.add_collection(LineCollection(segments, array=times, cmap=cmap, linewidths=0.6, alpha=0.7))
    ax.scatter(points[0, :, 0], points[0, :, 1], s=3, color=SOURCE_COLOR, zorder=3, linewidths=0)
    ax.scatter(points[-1, :, 0], points[-1, :, 1], s=3, color=TARGET_COLOR, zorder=3, linewidths=0)
    return ax


def pairs(
    x0: Tensor, x1: Tensor, ax: Axes | None = None, count: int = 200, lim: float | None = 7.0, title: str | None = None
) -> Axes:
    """A coupling drawn as straight segments joining ``x0[i]`` to ``x1[i]``; the first ``count`` pairs."""
    ax = _axes(ax, lim, title)
    a, b = _np(x0[:count]), _np(x1[:count])
    ax.add_collection(LineCollection(np.stack([a, b], 1), colors="0.5", linewidths=0.4, alpha=0.6))
    ax.scatter(a[:, 0], a[:, 1], s=3, color=SOURCE_COLOR, zorder=3, linewidths=0)
    ax.scatter(b[:, 0], b[:, 1], s=3, color=TARGET_COLOR, zorder=3, linewidths=0)
    return ax


def curves(
    x: Tensor, ax: Axes | None = None, count: int | None = 50, lim: float | None = 7.0, title: str | None = None,
    color: str | None = None, points: bool = False,
) -> Axes:
    """Sequences ``(n, T, 2)`` as polylines (toy sequences, or grid lines warped by a flow): the first ``count``
    (all if None), each in its own colour unless ``color`` is given, with their points if ``points``."""
    ax = _axes(ax, lim, title)
    lines = _np(x[:count])
    colors = [color] * len(lines) if color else plt.get_cmap("tab10")(np.arange(len(lines)) % 10)
    ax.add_collection(LineCollection(lines, colors=colors, linewidths=0.8, alpha=0.8))
    if points:
        ax.scatter(lines[..., 0].ravel(), lines[..., 1].ravel(), s=3, color="0.2", linewidths=0, zorder=3)
    return ax


def _grid(lim: float, resolution: int) -> tuple[Tensor, np.ndarray]:
    axis = torch.linspace(-lim, lim, resolution)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([gx.flatten(), gy.flatten()], 1), axis.numpy()


def vector_field(
    v: Callable[[Tensor, Tensor], Tensor], t: float, ax: Axes | None = None, lim: float = 7.0,
    resolution: int = 17, title: str | None = None, color: str = "0.2", device=None,
) -> Axes:
    """Arrows of ``v(x, t)`` on a ``resolution × resolution`` grid over ``[-lim, lim]²``."""
    ax = _axes(ax, lim, title)
    x, _ = _grid(lim * 0.9, resolution)
    x = x.to(device) if device is not None else x
    with torch.no_grad():
        arrows = _np(v(x, torch.full((len(x),), float(t), device=x.device)))
    points = _np(x)
    ax.quiver(points[:, 0], points[:, 1], arrows[:, 0], arrows[:, 1], color=color, angles="xy", width=0.004)
    return ax


def density(
    log_prob: Callable[[Tensor], Tensor], ax: Axes | None = None, lim: float = 7.0, resolution: int = 150,
    title: str | None = None, cmap: str = "magma", device=None,
) -> Axes:
    """The density ``exp(log_prob(x))`` as an image over ``[-lim, lim]²``."""
    ax = _axes(ax, lim, title)
    x, axis = _grid(lim, resolution)
    with torch.no_grad():
        values = _np(log_prob(x if device is None else x.to(device)).exp()).reshape(resolution, resolution)
    ax.imshow(values, extent=(-lim, lim, -lim, lim), origin="lower", cmap=cmap)
    return ax


def nfe_curve(results: Mapping[str, Mapping[int, float]], ax: Axes | None = None, ylabel: str = "W2") -> Axes:
    """Quality against cost: one line per method, ``{name: {nfe: value}}``, log-scaled NFE."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.5))
    for name, curve in results.items():
        nfes = sorted(curve)
        ax.plot(nfes, [curve[k] for k in nfes], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("NFE (function evaluations)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def animate(
    paths: Mapping[str, Tensor], count: int = 500, lim: float = 7.0, frames: int = 40, size: float = 3.0,
    interval: int = 60,
) -> FuncAnimation:
    """Particles moving along one or more path tensors ``(T + 1, n, 2)`` side by side, at most ``frames``
    frames (the first and last included). Show it with ``HTML(anim.to_jshtml())`` and close its figure."""
    fig, axes = panels(len(paths), size, list(paths))
    clouds = []
    for ax, path in zip(axes, paths.values()):
        _axes(ax, lim)
        clouds.append((ax.scatter([], [], s=3, color=TARGET_COLOR, linewidths=0), _np(path[:, :count])))
    steps = len(next(iter(paths.values())))
    chosen = np.unique(np.linspace(0, steps - 1, min(frames, steps)).round().astype(int))

    def draw(frame: int):
        for scatter, points in clouds:
            scatter.set_offsets(points[min(chosen[frame], len(points) - 1)])
            scatter.set_color(plt.get_cmap("viridis")(chosen[frame] / max(steps - 1, 1)))
        return [scatter for scatter, _ in clouds]

    fig.tight_layout()
    return FuncAnimation(fig, draw, frames=len(chosen), interval=interval, blit=True)


def to_html(animation: FuncAnimation) -> str:
    """The animation as self-contained HTML (``to_jshtml``), closing its figure so it is not drawn twice.
    In a notebook: ``HTML(plot.to_html(anim))``."""
    html = animation.to_jshtml()
    plt.close(animation._fig)
    return html


def save_gif(animation: FuncAnimation, filename: str, fps: int = 15, dpi: int = 70) -> None:
    """Write an animation as a GIF with Pillow (no ffmpeg needed)."""
    animation.save(filename, writer=PillowWriter(fps=fps), dpi=dpi)


def markdown_table(rows: list[Mapping[str, object]], digits: int = 3) -> str:
    """Rows of ``{column: value}`` as a Markdown table (floats rounded to ``digits``); show it in a notebook
    with ``IPython.display.Markdown``, or print it in a terminal."""
    if not rows:
        raise ValueError("rows must hold at least one row")
    columns = list(rows[0])

    def cell(value: object) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
