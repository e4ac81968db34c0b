"""The reflow explorer: one self-contained HTML page (no kernel, no server, no network) in which a reader drags time,
plays the flow, switches rounds (1-RF, 2-RF, …), shows or hides the paths, the straight lines of each round's coupling
and the source and target backdrops, and reads each round's straightness, ``W2`` after one Euler step and the share of
crossing straight lines.

The page is a ``<canvas>`` and a short script written here (about 120 lines of plain JavaScript): the paths travel
as 16-bit integers in base64 (a coordinate is off by at most half a quantisation step, about 1e-4 of the box), so three
rounds of 500 points and 61 frames take about 0.5 MB, and the browser draws any time ``t`` by interpolating between
frames. Use it through :func:`toyflow.plot.explorer`; it shows itself inline in Jupyter and Colab and ``.save(path)``
writes the page.

>>> import torch
>>> path = torch.linspace(0, 1, 11)[:, None, None] * torch.ones(1, 4, 2)  # (11, 4, 2): four points moving together
>>> page = explorer({"1-RF": path}, source=path[0], target=path[-1])
>>> decode(page.html())["1-RF"].shape
(11, 4, 2)
"""

from __future__ import annotations

import base64
import html
import json
import re
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import to_hex
from torch import Tensor

from . import metrics
from ._base import randperm
from .plot import SOURCE_COLOR, TARGET_COLOR, TIME_CMAP, limits

LEVELS = 65535  # coordinates are stored as uint16: 0 … LEVELS across the drawing box


def _np(x: Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def crossing_share(x0: Tensor, x1: Tensor, count: int = 300, generator: torch.Generator | None = None) -> float:
    """The share of pairs of straight segments ``x0[i] → x1[i]``, ``x0[j] → x1[j]`` (``i < j``) that cross, among
    ``count`` segments drawn at random (all of them if there are fewer): the picture of Liu, Gong & Liu (2022), in which
    the straight lines of independent pairs cross and those of a rectified coupling do not.

    Two segments cross when each one's end points lie strictly on opposite sides of the other's line (touching or
    collinear overlaps, of probability zero for continuous data, do not count). ``x0``, ``x1``: ``(n, 2)``.
    """
    if x0.shape != x1.shape or x0.ndim != 2 or x0.shape[1] != 2:
        raise ValueError(f"x0 and x1 must both have shape (n, 2), got {tuple(x0.shape)} and {tuple(x1.shape)}")
    if len(x0) < 2:
        raise ValueError(f"crossing_share needs at least 2 segments, got {len(x0)}")
    if len(x0) > count:
        chosen = randperm(len(x0), generator, device=x0.device)[:count]
        x0, x1 = x0[chosen], x1[chosen.to(x1.device)]
    p, q = _np(x0), _np(x1)  # (m, 2) each

    def side(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Sign of the turn a → b → c, for every segment a→b (rows) and point c (columns): (m, m)."""
        d = b - a
        return np.sign(d[:, None, 0] * (c[None, :, 1] - a[:, None, 1]) - d[:, None, 1] * (c[None, :, 0] - a[:, None, 0]))

    apart = side(p, q, p) * side(p, q, q) < 0  # (m, m): j's ends lie on opposite sides of i's line
    crossed = apart & apart.T
    m = len(p)
    return float(np.triu(crossed, 1).sum() / (m * (m - 1) / 2))


def path_metrics(path: Tensor, target: Tensor) -> dict[str, float]:
    """A round's numbers read off an Euler path ``(T + 1, n, 2)`` on the uniform grid (``solvers.integrate``'s default):
    its velocities are ``T·(z_{i+1} − z_i)``, so this straightness equals :func:`toyflow.metrics.straightness` with
    ``T`` steps, and ``z_0 + T·(z_1 − z_0)`` is the one-Euler-step sample whose ``W2`` to ``target`` is reported."""
    steps = len(path) - 1
    velocity = steps * (path[1:] - path[:-1])  # (T, n, 2)
    displacement = path[-1] - path[0]  # (n, 2)
    one_step = path[0] + velocity[0]
    return {"straightness": float(((displacement - velocity) ** 2).sum(-1).mean()),
            "W2 @1 step": metrics.w2(one_step, target)}


def round_metrics(model, x0: Tensor, target: Tensor) -> dict[str, float]:
    """A trained round's straightness (:func:`toyflow.metrics.straightness`, 100 Euler steps) and ``W2`` of its one-step
    samples from ``x0`` against ``target`` (:func:`toyflow.metrics.w2`), for ``explorer(metrics_by_round=…)``."""
    from .solvers import integrate

    return {"straightness": metrics.straightness(model, x0), "W2 @1 step": metrics.w2(integrate(model, x0, 1).x, target)}


def _pack(points: np.ndarray, box: tuple[float, float, float, float]) -> str:
    """Points ``(..., 2)`` as uint16 levels across ``box``, little-endian, base64."""
    low = np.array([box[0], box[2]])
    side = np.array([box[1] - box[0], box[3] - box[2]])
    levels = np.clip(np.round((points - low) / side * LEVELS), 0, LEVELS).astype("<u2")
    return base64.b64encode(levels.tobytes()).decode()


def _unpack(text: str, box: list[float]) -> np.ndarray:
    levels = np.frombuffer(base64.b64decode(text), dtype="<u2").astype(np.float64).reshape(-1, 2)
    return np.array([box[0], box[2]]) + levels / LEVELS * np.array([box[1] - box[0], box[3] - box[2]])


def _number(value: float) -> float:
    return float(f"{value:.4g}")


class Explorer:
    """An explorer page: ``_repr_html_`` shows it inline in Jupyter and Colab, :meth:`save` writes it as a file,
    :meth:`html` returns the whole document. ``data`` is what the page embeds (the quantised paths, the numbers)."""

    def __init__(self, data: dict):
        self.data = data

    def body(self, uid: str | None = None) -> str:
        """The explorer as an HTML fragment with its own ids, so that several explorers can share one page."""
        uid = uid or "tfx" + uuid.uuid4().hex[:10]
        payload = json.dumps(self.data, separators=(",", ":")).replace("</", "<\\/")
        return (f'<div class="tfx" id="{uid}">{_markup(self.data["title"])}'
                f'<script type="application/json" class="tfx-data">{payload}</script></div>\n'
                f"<script>(function(){{const root=document.getElementById('{uid}');{_SCRIPT}}})();</script>")

    def html(self) -> str:
        """The whole page as one HTML string (no kernel, no external file)."""
        title = html.escape(self.data["title"])
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{title}</title></head>\n<body style=\"margin:0;padding:12px;font-family:system-ui,sans-serif\">\n"
                f"{self.body('tfx-page')}\n</body></html>\n")

    def _repr_html_(self) -> str:
        return self.body()

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (a ``.html`` file) and return the path."""
        path = Path(path)
        path.write_text(self.html(), encoding="utf-8")
        return path


def explorer(
    paths_by_round: Mapping[str, Tensor], source: Tensor, target: Tensor,
    metrics_by_round: Mapping[str, Mapping[str, float]] | None = None, title: str = "reflow explorer",
    points: int = 500, frames: int = 61, note: str = "",
) -> Explorer:
    """Build the reflow explorer from each round's paths.

    Args:
        paths_by_round: round name (``"1-RF"``, ``"2-RF"``, …) → path ``(T + 1, n, 2)`` on the uniform time grid from
            0 to 1, e.g. ``solvers.integrate(model, x0, steps=60, return_path=True).path``; every round the same ``T``.
        source, target: points ``(m, 2)`` drawn as the backdrops (and ``target`` is what ``W2`` compares with).
        metrics_by_round: numbers to show per round (e.g. from :func:`round_metrics`); by default they are read off the
            paths by :func:`path_metrics`, which assumes Euler paths. The crossing share of each round's coupling
            ``z0 → z1`` (the path's first and last points, :func:`crossing_share`) is always added.
        points, frames: at most this many paths (the first ones) and time frames (evenly spaced, first and last kept).
        note: a line shown under the numbers (e.g. the sampling floor of ``W2``).
    """
    if not paths_by_round:
        raise ValueError("paths_by_round must hold at least one round")
    lengths = {name: tuple(path.shape) for name, path in paths_by_round.items()}
    if any(len(s) != 3 or s[2] != 2 for s in lengths.values()) or len({s[0] for s in lengths.values()}) != 1:
        raise ValueError(f"every path must have shape (T + 1, n, 2) with the same T, got {lengths}")
    if not 2 <= frames <= 241:
        raise ValueError(f"frames must be between 2 and 241, got {frames}")
    for name, cloud in (("source", source), ("target", target)):
        if cloud.ndim != 2 or cloud.shape[1] != 2:
            raise ValueError(f"{name} must have shape (m, 2), got {tuple(cloud.shape)}")
    if metrics_by_round is not None and set(metrics_by_round) != set(paths_by_round):
        raise ValueError(f"metrics_by_round must have the rounds of paths_by_round, {sorted(paths_by_round)}; "
                         f"got {sorted(metrics_by_round)}")
    steps = next(iter(lengths.values()))[0] - 1
    chosen = np.unique(np.linspace(0, steps, min(frames, steps + 1)).round().astype(int))
    paths = {name: path[:, :points].detach().cpu().float() for name, path in paths_by_round.items()}
    backdrop = [c.detach().cpu().float()[:1000] for c in (source, target)]
    box = tuple(float(b) for b in limits(*paths.values(), *backdrop, margin=0.04))
    rounds = []
    for name, path in paths.items():
        numbers = dict(metrics_by_round[name]) if metrics_by_round is not None else path_metrics(path, target.cpu())
        numbers["crossing share"] = crossing_share(path[0], path[-1], generator=torch.Generator().manual_seed(0))
        rounds.append({"name": name, "path": _pack(_np(path[chosen]), box),
                       "metrics": {key: _number(value) for key, value in numbers.items()}})
    m = min(300, *map(len, backdrop))  # independent pairs: source points with target points in random order
    shuffled = backdrop[1][randperm(len(backdrop[1]), torch.Generator().manual_seed(1), device=backdrop[1].device)]
    independent = crossing_share(backdrop[0][:m], shuffled[:m]) if m >= 2 else None
    shares = [r["metrics"]["crossing share"] for r in rounds]
    if independent is not None:
        span = f"{min(shares):.1%}" if f"{min(shares):.1%}" == f"{max(shares):.1%}" else f"{min(shares):.1%} to {max(shares):.1%}"
        note = (f"Straight lines of independent pairs (what 1-RF learns from) cross in {independent:.1%} of pairs; those of "
                f"the rounds' own couplings z₀ → z₁ in {span}. " + note).strip()
    data = {
        "title": title, "note": note, "box": box, "levels": LEVELS, "n": paths[next(iter(paths))].shape[1],
        "times": [round(float(i) / max(steps, 1), 6) for i in chosen], "rounds": rounds,
        "source": _pack(_np(backdrop[0]), box), "target": _pack(_np(backdrop[1]), box),
        "independent": None if independent is None else _number(independent),
        "colors": {"source": SOURCE_COLOR, "target": TARGET_COLOR,
                   "time": [to_hex(TIME_CMAP(s)) for s in np.linspace(0, 1, 17)]},
    }
    return Explorer(data)


def _markup(title: str) -> str:
    return (_MARKUP.replace("@TITLE@", html.escape(title)).replace("@SRC@", SOURCE_COLOR)
            .replace("@TGT@", TARGET_COLOR))


def read(page: str) -> dict:
    """The data embedded in an explorer page (its HTML text): title, note, box, times, and per round the packed path
    and the numbers (``data["rounds"][i]["metrics"]``)."""
    found = re.search(r'<script type="application/json" class="tfx-data">(.*?)</script>', page, re.S)
    if found is None:
        raise ValueError("no explorer data found in this page")
    return json.loads(found.group(1).replace("<\\/", "</"))


def decode(page: str) -> dict[str, np.ndarray]:
    """The paths embedded in an explorer page (its HTML text): round name → ``(frames, n, 2)`` array."""
    data = read(page)
    frames = len(data["times"])
    return {r["name"]: _unpack(r["path"], data["box"]).reshape(frames, data["n"], 2) for r in data["rounds"]}


_MARKUP = """<style>
.tfx{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start;font:14px system-ui,sans-serif;color:#222}
.tfx canvas{width:min(520px,92vw);height:min(520px,92vw);border:1px solid #ddd;background:#fff;touch-action:none}
.tfx .tfx-side{flex:1 1 260px;max-width:420px}
.tfx h3{margin:0 0 6px;font-size:16px}.tfx .tfx-row{margin:6px 0;display:flex;gap:6px;align-items:center;flex-wrap:wrap}
.tfx button{font:inherit;padding:3px 10px;border:1px solid #aaa;border-radius:4px;background:#f6f6f6;cursor:pointer}
.tfx button[aria-pressed=true]{background:#3b3b8f;color:#fff;border-color:#3b3b8f}
.tfx input[type=range]{flex:1;min-width:160px}.tfx .tfx-t{font-variant-numeric:tabular-nums;min-width:4.5em}
.tfx table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
.tfx td,.tfx th{border:1px solid #ddd;padding:2px 7px;text-align:right}.tfx td:first-child,.tfx th:first-child{text-align:left}
.tfx tr.tfx-on{background:#ece8f6;font-weight:600}.tfx .tfx-legend span{display:inline-block;vertical-align:middle}
.tfx .tfx-small{font-size:12px;color:#555}.tfx .tfx-legend div,.tfx .tfx-note{margin:5px 0}
</style>
<canvas width="520" height="520" aria-label="particles moving from the source to the target"></canvas>
<div class="tfx-side"><h3>@TITLE@</h3>
<div class="tfx-row"><button class="tfx-play">▶ play</button><input class="tfx-slider" type="range" min="0" max="1000"
 value="0" aria-label="time t"><span class="tfx-t">t = 0.00</span></div>
<div class="tfx-row tfx-rounds"></div>
<div class="tfx-row"><label><input type="checkbox" class="tfx-paths" checked> paths</label>
<label><input type="checkbox" class="tfx-lines"> straight lines z₀ → z₁</label>
<label><input type="checkbox" class="tfx-back" checked> source &amp; target</label></div>
<div class="tfx-numbers"></div><table class="tfx-table"></table><div class="tfx-small tfx-note"></div>
<div class="tfx-legend tfx-small">
<div><span style="width:9px;height:9px;border-radius:50%;background:@SRC@;opacity:.6"></span> source π₀ (t = 0)
&nbsp;<span style="width:9px;height:9px;border-radius:50%;background:@TGT@;opacity:.6"></span> target π₁ (t = 1)</div>
<div>particles and paths coloured by time t: 0 <span class="tfx-bar" style="width:120px;height:9px"></span> 1</div>
<div><span style="width:22px;height:0;border-top:1.5px solid #555"></span> straight line from a source point z₀ to where
 this round's flow takes it, z₁</div>
<div><b>straightness</b>: mean squared gap between the path's velocity and the straight line z₁ − z₀ (0 = straight);
<b>W2 @1 step</b>: distance of one-Euler-step samples to the target; <b>crossing share</b>: share of pairs of straight
lines z₀ → z₁ that cross.</div></div></div>
"""

_SCRIPT = r"""
const D = JSON.parse(root.querySelector('.tfx-data').textContent);
const $ = selector => root.querySelector(selector);
const canvas = $('canvas'), ctx = canvas.getContext('2d'), W = 520, scale = Math.min(window.devicePixelRatio || 1, 2);
canvas.width = canvas.height = W * scale;
ctx.scale(scale, scale);
const F = D.times.length, N = D.n;

// base64 uint16 levels -> canvas pixels, x then y (y grows downwards on a canvas)
function pixels(text) {
  const bytes = Uint8Array.from(atob(text), c => c.charCodeAt(0)), levels = new Uint16Array(bytes.buffer);
  const out = new Float32Array(levels.length);
  for (let i = 0; i < levels.length; i += 2) {
    out[i] = levels[i] / D.levels * W;
    out[i + 1] = W - levels[i + 1] / D.levels * W;
  }
  return out;
}
const rounds = D.rounds.map(r => ({name: r.name, numbers: r.metrics, p: pixels(r.path)}));
const backdrops = [[pixels(D.source), D.colors.source], [pixels(D.target), D.colors.target]];

// the time colours of toyflow.plot.TIME_CMAP, interpolated
const stops = D.colors.time.map(hex => [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16)));
function colour(t, alpha) {
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1), i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
  const [r, g, b] = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgba(${r},${g},${b},${alpha})`;
}

let t = 0, current = 0, playing = false, last = null;

// the frame k just before time t and the fraction f of the way to frame k + 1
function frameAt(t) {
  let k = 0;
  while (k < F - 2 && D.times[k + 1] <= t) k++;
  const a = D.times[k], b = D.times[Math.min(k + 1, F - 1)];
  return [k, b > a ? Math.max(0, Math.min(1, (t - a) / (b - a))) : 0];
}

function draw() {
  const P = rounds[current].p, [k, f] = frameAt(t), at = j => j * N * 2, end = at(F - 1);
  ctx.clearRect(0, 0, W, W);
  if ($('.tfx-back').checked) {
    ctx.globalAlpha = 0.22;
    for (const [points, c] of backdrops) {
      ctx.fillStyle = c;
      for (let i = 0; i < points.length; i += 2) { ctx.beginPath(); ctx.arc(points[i], points[i + 1], 2.2, 0, 6.3); ctx.fill(); }
    }
    ctx.globalAlpha = 1;
  }
  if ($('.tfx-lines').checked) {  // the straight line z0 -> z1 of each of the first 200 points
    ctx.strokeStyle = 'rgba(60,60,60,.45)'; ctx.lineWidth = 0.8; ctx.beginPath();
    for (let i = 0; i < Math.min(N, 200); i++) {
      ctx.moveTo(P[2 * i], P[2 * i + 1]); ctx.lineTo(P[end + 2 * i], P[end + 2 * i + 1]);
    }
    ctx.stroke();
  }
  if ($('.tfx-paths').checked) {  // the first 300 paths up to time t, one stroke per frame in that frame's colour
    ctx.lineWidth = 0.9;
    for (let j = 0; j <= k && j < F - 1; j++) {
      const g = j < k ? 1 : f, o = at(j), q = at(j + 1);
      if (g <= 0) continue;
      ctx.strokeStyle = colour(D.times[j], 0.45); ctx.beginPath();
      for (let i = 0; i < Math.min(N, 300); i++) {
        const x = P[o + 2 * i], y = P[o + 2 * i + 1];
        ctx.moveTo(x, y); ctx.lineTo(x + (P[q + 2 * i] - x) * g, y + (P[q + 2 * i + 1] - y) * g);
      }
      ctx.stroke();
    }
  }
  const o = at(k), q = at(Math.min(k + 1, F - 1));  // the particles at time t
  ctx.fillStyle = colour(t, 0.95); ctx.strokeStyle = 'rgba(0,0,0,.35)'; ctx.lineWidth = 0.5;
  for (let i = 0; i < N; i++) {
    const x = P[o + 2 * i] + (P[q + 2 * i] - P[o + 2 * i]) * f, y = P[o + 2 * i + 1] + (P[q + 2 * i + 1] - P[o + 2 * i + 1]) * f;
    ctx.beginPath(); ctx.arc(x, y, 2.6, 0, 6.3); ctx.fill(); ctx.stroke();
  }
  $('.tfx-t').textContent = 't = ' + t.toFixed(2);
  $('.tfx-slider').value = Math.round(t * 1000);
  if (root.dataset.firstDraw === undefined) root.dataset.firstDraw = performance.now().toFixed(1);
}

const keys = [...new Set(rounds.flatMap(r => Object.keys(r.numbers)))];
function shown(key, value) {
  if (value === undefined || value === null) return '—';
  if (key === 'crossing share') return (100 * value).toFixed(1) + '%';
  const size = Math.abs(value);
  return size >= 100 ? value.toFixed(0) : size >= 1 ? value.toFixed(2) : value.toFixed(3);
}
function row(name, numbers, on) {
  const cells = keys.map(k => `<td>${shown(k, numbers[k])}</td>`).join('');
  return `<tr${on ? ' class="tfx-on"' : ''}><td>${name}</td>${cells}</tr>`;
}
function showNumbers() {
  const r = rounds[current];
  $('.tfx-numbers').innerHTML = `<b>${r.name}</b>: ` + keys.map(k => `${k} <b>${shown(k, r.numbers[k])}</b>`).join(' · ');
  $('.tfx-table').innerHTML = '<tr><th>round</th>' + keys.map(k => `<th>${k}</th>`).join('') + '</tr>'
    + (D.independent === null ? '' : row('independent pairs', {'crossing share': D.independent}, false))
    + rounds.map((s, i) => row(s.name, s.numbers, i === current)).join('');
  root.querySelectorAll('.tfx-rounds button').forEach((b, i) => b.setAttribute('aria-pressed', i === current));
}

$('.tfx-bar').style.background = 'linear-gradient(90deg,' + D.colors.time.join(',') + ')';
$('.tfx-note').textContent = D.note;
rounds.forEach((r, i) => {
  const b = document.createElement('button');
  b.textContent = r.name;
  b.onclick = () => { current = i; showNumbers(); draw(); };
  $('.tfx-rounds').appendChild(b);
});
const play = $('.tfx-play');
function stop() { playing = false; play.textContent = '▶ play'; }
$('.tfx-slider').oninput = e => { t = e.target.value / 1000; stop(); draw(); };
for (const box of ['.tfx-paths', '.tfx-lines', '.tfx-back']) $(box).onchange = draw;
function tick(now) {  // one pass from t = 0 to 1 takes 3 s
  if (!playing) return;
  if (last !== null) t = Math.min(1, t + (now - last) / 3000);
  last = now;
  draw();
  if (t >= 1) stop(); else requestAnimationFrame(tick);
}
play.onclick = () => {
  if (playing) return stop();
  playing = true; play.textContent = '❚❚ pause';
  if (t >= 1) t = 0;
  last = null;
  requestAnimationFrame(tick);
};
showNumbers();
draw();
"""
