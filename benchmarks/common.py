"""What every benchmark shares: torchcfm's 2D task, its evaluation sets, timing and the JSON output.

torchcfm's task is ``sample_8gaussians`` → ``sample_moons``: 8 Gaussians at radius 5 with covariance
``√0.1·I``, to moons scaled ×3 − 1 whose noise is one ``U(0, 0.2)`` added to both coordinates
(torchdyn's ``generate_moons``, which torchcfm calls). toyflow draws the same distributions,
i.i.d.: ``data.get("8gaussians")`` and ``data.get("moons", noise_type="diagonal")``.

torchcfm's moons sampler is *stratified*: exactly half the points on each moon, at evenly spaced
angles. Its evaluation sets are therefore closer to each other than i.i.d. sets: W2 between two of
them is about 0.08, between an i.i.d. set and one of them about 0.15, between two i.i.d. sets
0.15–0.26 (the moons' head counts differ by a binomial amount, and that mass must cross between
moons). The benchmarks score against a stratified reference set like torchcfm's, so their numbers
compare with the ones measured with torchcfm, and report both floors.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from toyflow import data, metrics
from toyflow.train import fit

RESULTS = Path(__file__).parent / "results"
EVAL_SIZE = 2000


@dataclass
class Task:
    source: data.Distribution
    target: data.Distribution
    x0: torch.Tensor  # (2000, 2) evaluation source points
    x1: torch.Tensor  # (2000, 2) evaluation target points
    floor: float  # W2 between x1 and a second stratified reference set (torchcfm's floor)
    iid_floor: float  # median W2 between x1 and i.i.d. draws of the exact target: what a perfect sampler scores

    def score(self, samples: torch.Tensor) -> float:
        return metrics.w2(samples, self.x1)

    def floors(self) -> str:
        """The two W2 floors in words, printed before a table."""
        return (f"W2 floors: two stratified reference sets {self.floor:.3f}; i.i.d. target draws vs the reference "
                f"{self.iid_floor:.3f} (median of 5; a perfect sampler scores about this)\n")


def stratified_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    """torchcfm's moons reference: n/2 evenly spaced angles per moon, one U(0, 0.2) added to both coordinates, ×3 − 1."""
    angle = torch.linspace(0, math.pi, n // 2)
    upper = torch.stack([angle.cos(), angle.sin()], 1)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], 1)
    points = torch.cat([upper, lower]) + 0.2 * torch.rand(n // 2 * 2, 1, generator=generator)
    return 3 * points - 1


def torchcfm_task(seed: int = 1234) -> Task:
    """The 8 gaussians → moons task: 2,000 i.i.d. source points, a stratified target reference of 2,000."""
    source, target = data.get("8gaussians"), data.get("moons", noise_type="diagonal")
    generator = torch.Generator().manual_seed(seed)
    x0, x1 = source.sample(EVAL_SIZE, generator), stratified_moons(EVAL_SIZE, generator)
    floor = metrics.w2(x1, stratified_moons(EVAL_SIZE, generator))
    iid_floor = statistics.median(metrics.w2(x1, target.sample(EVAL_SIZE, generator)) for _ in range(5))
    return Task(source, target, x0, x1, floor, iid_floor)


def median_seconds(function: Callable[[], object], repeats: int = 7, number: int = 1) -> float:
    """Median over ``repeats`` runs of the time of ``number`` calls, divided by ``number``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def parser(doc: str, seeds: list[int] | None = None) -> argparse.ArgumentParser:
    """Every benchmark's command line: its module docstring as help, ``--threads`` (see :func:`pin_threads`) and,
    when ``seeds`` is given, ``--seeds`` with that default."""
    command = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("--threads", type=int, default=1,
                         help="torch threads (%(default)s): the small MLPs gain nothing from more, and on a shared CPU "
                              "several threads per process stall each other")
    if seeds is not None:
        command.add_argument("--seeds", type=int, nargs="+", default=seeds, help="one run per seed (%(default)s)")
    return command


def parse(command: argparse.ArgumentParser) -> tuple[argparse.Namespace, float]:
    """Parse the command line and pin the threads: ``(args, start time for save)``."""
    args = command.parse_args()
    return args, pin_threads(args.threads)


def pin_threads(threads: int) -> float:
    """Pin torch's intra-op threads the same way in every benchmark; return the start time for :func:`save`."""
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    torch.set_num_threads(threads)
    return time.perf_counter()


def median_and_worst(values: list[float], worst=max) -> dict:
    """``{"median": …, "worst": …}`` over seeds (``worst=max`` for a loss or a distance, ``min`` for a reward)."""
    return {"median": statistics.median(values), "worst": worst(values)}


def summarise_seeds(rows: list[dict], keys: tuple[str, ...], values: tuple[str, ...]) -> list[dict]:
    """Group ``rows`` by their ``keys`` columns; per group the number of seeds and the median and worst (largest) of each
    ``values`` column the group has, and the median of ``"train s"`` / ``"stage s"`` where present."""
    summary = []
    for key in dict.fromkeys(tuple(row.get(k) for k in keys) for row in rows):
        runs = [row for row in rows if tuple(row.get(k) for k in keys) == key]
        line = dict(zip(keys, key)) | {"seeds": len(runs)}
        for column in ("train s", "stage s"):
            if column in runs[0]:
                line[f"median {column}"] = statistics.median(row[column] for row in runs)
        for column in values:
            if isinstance(runs[0].get(column), float):
                spread = median_and_worst([row[column] for row in runs])
                line |= {f"median {column}": spread["median"], f"worst {column}": spread["worst"]}
        summary.append(line)
    return summary


def steps_in(build: Callable[[], torch.nn.Module], objective, budget: float, lr: float, **fit_kwargs) -> int:
    """Training steps of ``objective`` on ``build()`` that fill ``budget`` seconds: from the time of 50 ``fit`` steps
    after a warm-up of 10 (at least 100 steps), with the run's own ``fit_kwargs`` (an EMA adds about a fifth per step)."""
    fit(build(), objective, 10, lr=lr, progress=False, **fit_kwargs)
    return max(100, int(budget / (fit(build(), objective, 50, lr=lr, progress=False, **fit_kwargs).seconds / 50)))


def save(name: str, result: dict, started: float | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json``; with ``started`` (from :func:`pin_threads`) also the total wall time."""
    result = {**result, "threads": torch.get_num_threads()}
    if started is not None:
        result["total wall s"] = time.perf_counter() - started
        print(f"total wall time {result['total wall s']:.0f} s (torch threads: {result['threads']})")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path


def torchcfm_available() -> bool:
    try:
        import torchcfm  # noqa: F401
    except ImportError:
        return False
    return True


def train_torchcfm(matcher, steps: int, description: str, seed: int = 0) -> tuple[Callable, float]:
    """torchcfm's 2D tutorial loop with ``matcher``: their MLP (width 64, SELU), Adam 1e-3, batch 256, their
    samplers. Returns the trained velocity ``v(x, t)`` and the training seconds."""
    from torchcfm.models.models import MLP
    from torchcfm.utils import sample_8gaussians, sample_moons
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    model = MLP(dim=2, time_varying=True, w=64)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc=description, mininterval=2, leave=False):
        t, xt, ut = matcher.sample_location_and_conditional_flow(sample_8gaussians(256), sample_moons(256))
        loss = ((model(torch.cat([xt, t[:, None]], 1)) - ut) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return (lambda x, t: model(torch.cat([x, t[:, None]], 1))), seconds


@dataclass
class TorchcfmMatcher:
    """A toyflow objective whose pairs, times and regression targets come from a torchcfm matcher.

    toyflow draws ``x0 ~ source`` and ``x1 ~ target`` (``generator``); the matcher returns ``(t, x_t, u_t)``
    (its own times, σ-noise and, for OT-CFM, its plan), and the loss is toyflow's: ``mean_i ‖v(x_t, t) − u_t‖² / d``.
    Trained by ``train.fit`` on toyflow's network, only the matcher differs from ``FlowMatching``.
    """

    matcher: object
    source: data.Distribution
    target: data.Distribution
    batch_size: int = 256

    def __call__(self, model: torch.nn.Module, generator: torch.Generator | None = None) -> torch.Tensor:
        x0 = self.source.sample(self.batch_size, generator)  # (B, 2)
        x1 = self.target.sample(self.batch_size, generator)  # (B, 2)
        t, xt, ut = self.matcher.sample_location_and_conditional_flow(x0, x1)
        return ((model(xt, t) - ut) ** 2).mean()


class ZukoNSF(nn.Module):
    """zuko's neural spline flow (Durkan et al. 2019) behind toyflow's ``log_prob`` API, so MaximumLikelihood trains it.

    zuko's splines act on ``[−5, 5]`` (identity outside), and the data reach a radius of about 7, so the flow
    models ``x / 4``: ``log p(x) = log p_NSF(x / 4) − 2 log 4``, still the exact density of ``x``.
    """

    scale = 4.0

    def __init__(self, layers: int = 3, hidden: int = 64, bins: int = 8):
        super().__init__()
        import zuko

        self.flow = zuko.flows.NSF(features=2, transforms=layers, hidden_features=(hidden, hidden), bins=bins)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().log_prob(x / self.scale) - x.shape[1] * math.log(self.scale)
