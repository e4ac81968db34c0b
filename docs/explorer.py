"""Precompute the reflow explorers of the course website: ``python docs/explorer.py`` trains 1-RF and two reflow rounds
on each data pair below (small settings, like notebook 03) and writes ``docs/explorer/<name>.html``, which the site
copies and its landing page opens first. The files are committed, so building the site trains nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from toyflow import data, metrics, models, rectify, seed, solvers  # noqa: E402
from toyflow.explorer import explorer, round_metrics  # noqa: E402

FOLDER = ROOT / "docs" / "explorer"


def two_gaussians():
    """The X of notebook 03: two Gaussians on the left → two on the right."""
    left = data.GaussianMixture(torch.tensor([[-4.0, 3.0], [-4.0, -3.0]]), std=0.5)
    right = data.GaussianMixture(torch.tensor([[4.0, 3.0], [4.0, -3.0]]), std=0.5)
    return left, right, {"steps": 700, "num_pairs": 3000, "model": models.VelocityMLP(hidden=64), "lr": 3e-3}


def gaussians_to_moons():
    return data.get("8gaussians"), data.get("moons"), {"steps": 1000, "num_pairs": 5000, "model": models.VelocityMLP(),
                                                       "lr": 2e-3}


#: file name → (label on the site, how to build the pair and its training settings)
PAIRS = {
    "two_gaussians": ("two Gaussians → two Gaussians (the X of notebook 03)", two_gaussians),
    "8gaussians_moons": ("8 Gaussians → two moons", gaussians_to_moons),
}


def build(name: str, points: int = 500, evaluation: int = 1000) -> Path:
    """Train three rounds on one pair and write its explorer; returns the file."""
    label, make = PAIRS[name]
    seed(0)
    source, target, settings = make()
    rounds = rectify.rectified_flow(source, target, rounds=3, progress=False, **settings)
    generator = torch.Generator().manual_seed(1)
    x0, reference = source.sample(evaluation, generator), target.sample(evaluation, generator)
    floor = metrics.w2(reference, target.sample(evaluation, generator))
    page = explorer({r.name: solvers.integrate(r.model, x0[:points], steps=60, return_path=True).path for r in rounds},
                    x0, reference, {r.name: round_metrics(r.model, x0, reference) for r in rounds}, title=label,
                    note=f"W2 is measured on {evaluation:,} points; its sampling floor (two independent draws of the "
                         f"target) is {floor:.3f}. Settings: {settings['steps']} training steps per round, "
                         f"{settings['num_pairs']:,} pairs per reflow round.")
    FOLDER.mkdir(exist_ok=True)
    return page.save(FOLDER / f"{name}.html")


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    for name in names or list(PAIRS):
        started = time.perf_counter()
        path = build(name)
        print(f"wrote {path.relative_to(ROOT)}: {path.stat().st_size / 1e6:.2f} MB ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
