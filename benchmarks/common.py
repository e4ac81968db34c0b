"""What every benchmark shares: torchcfm's 2D task, its evaluation and validation sets, two metrics, time budgets,
tuning, the other libraries' recipes and the JSON output.

torchcfm's task is ``sample_8gaussians`` → ``sample_moons``: 8 Gaussians at radius 5 with covariance
``√0.1·I``, to moons scaled ×3 − 1 whose noise is one ``U(0, 0.2)`` added to both coordinates
(torchdyn's ``generate_moons``, which torchcfm calls). toyflow draws the same distributions,
i.i.d.: ``data.get("8gaussians")`` and ``data.get("moons", noise_type="diagonal")``.

Two metrics, both reported by every benchmark (:meth:`Task.evaluate`):

- **W2**: exact, on 2,000 samples against a *stratified* reference like torchcfm's (exactly half the points on each
  moon, at evenly spaced angles), so the numbers compare with the ones measured with torchcfm. Its i.i.d. floor
  (exact target draws against the reference, about 0.19) is what a perfect sampler scores: W2 cannot tell two
  samplers apart below it.
- **fine W2**: :func:`toyflow.metrics.fine_w2` (sliced W2 in W2's units) on ``FINE_SIZE`` samples against as many
  i.i.d. target draws. Its floor, computed the same way (the median between independent target draws,
  :func:`toyflow.metrics.floor`), is about seven times lower, so it still sees progress where W2 has saturated.

Fairness, the same for every library: each trains for a wall-time budget through :func:`toyflow.train.fit` with
``max_seconds`` (the learning-rate schedule follows elapsed time; no step probe; :func:`train_for`), their loops
included (:func:`train_torchcfm`); each run's seed sets the initialisation and the training draws; anything tuned is tuned on
:func:`validation_task`, whose points are disjoint from the evaluation set's, over the same grid (:func:`tune`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

import toyflow
from toyflow import couplings, data, meanflow, metrics, models, rectify, solvers
from toyflow.train import fit

RESULTS = Path(__file__).parent / "results"
EVAL_SIZE = 2000  # exact W2 costs O(n³): about a second at 2,000 points
FINE_SIZE = 40_000  # fine W2 costs O(n log n); sampling 40,000 points with 100 Euler steps takes about 10 s on one core
VALIDATION_SEED = 4321  # the validation set's seed; the evaluation set's is 1234


@dataclass
class Task:
    source: data.Distribution
    target: data.Distribution
    x0: torch.Tensor  # (EVAL_SIZE, 2) source points for W2
    x1: torch.Tensor  # (EVAL_SIZE, 2) stratified target reference
    x0_fine: torch.Tensor  # (FINE_SIZE, 2) source points for fine W2
    x1_fine: torch.Tensor  # (FINE_SIZE, 2) i.i.d. target reference
    floor: float  # W2 between x1 and a second stratified reference set (torchcfm's floor)
    iid_floor: float  # median W2 between x1 and i.i.d. draws of the exact target: what a perfect sampler scores
    fine_floor: float  # median fine W2 between two i.i.d. target draws of FINE_SIZE points

    def score(self, samples: torch.Tensor) -> float:
        """Exact W2 of ``EVAL_SIZE`` samples (drawn from ``x0``) to the reference."""
        return metrics.w2(samples, self.x1)

    def evaluate(self, sample: Callable[[torch.Tensor], torch.Tensor], suffix: str = "", fine: bool = True) -> dict[str, float]:
        """``{"W2…": …, "fine W2…": …}`` of a sampler ``sample(x0) -> x1`` run on ``x0`` and (``fine``) on ``x0_fine``;
        ``suffix`` names the columns, e.g. ``" @ 4"``. A sampler that diverges scores NaN instead of stopping the run."""
        scores = {"W2" + suffix: _or_nan(lambda: self.score(sample(self.x0)))}
        if fine:
            scores["fine W2" + suffix] = _or_nan(lambda: self.fine_score(sample(self.x0_fine)))
        return scores

    def fine_score(self, samples: torch.Tensor) -> float:
        """Fine W2 of ``FINE_SIZE`` samples (drawn from ``x0_fine``) to the i.i.d. reference."""
        return metrics.fine_w2(samples, self.x1_fine)

    def at_steps(self, sample, steps: tuple[int, ...], fine: tuple[int, ...] | None = None) -> dict[str, float]:
        """W2 of a ``k``-step sampler ``sample(x0, k) -> x1`` at each ``k`` of ``steps`` (``"W2 @ k"``) and fine W2 at
        each of ``fine`` (all of ``steps`` when None; fine W2 after 100 Euler steps costs about 10 s)."""
        scores = {}
        for k in steps:
            scores |= self.evaluate(lambda x, k=k: sample(x, k), f" @ {k}", fine is None or k in fine)
        return scores

    def at_nfe(self, velocity, nfes: tuple[int, ...], fine: tuple[int, ...] | None = None) -> dict[str, float]:
        """:meth:`at_steps` for Euler sampling of a velocity ``v(x, t)``."""
        return self.at_steps(euler(velocity), nfes, fine)

    def floors(self) -> dict[str, float]:
        """The floors, as the keys the result JSON and the benchmarks page use."""
        return {"floor_w2": self.floor, "iid_floor_w2": self.iid_floor, "fine_floor": self.fine_floor}

    def describe_floors(self) -> str:
        """The floors in words, printed before a table."""
        return (f"W2 floors: two stratified reference sets {self.floor:.3f}; i.i.d. target draws vs the reference "
                f"{self.iid_floor:.3f} (median of 5; a perfect sampler scores about this). Fine W2 floor at "
                f"{FINE_SIZE:,} points: {self.fine_floor:.4f}\n")


def _or_nan(score: Callable[[], float]) -> float:
    """``score()``, or NaN (with the reason printed) when the samples hold NaN or inf, which the metrics refuse."""
    try:
        with torch.no_grad():
            return score()
    except ValueError as error:
        print(f"scored NaN: {error}")
        return float("nan")


def euler(velocity) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """The sampler of a velocity ``v(x, t)``: ``(x0, k) -> x1`` by ``k`` Euler steps."""
    return lambda x0, k: solvers.integrate(velocity, x0, k).x


def jumps(average_velocity) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """The sampler of an average velocity ``u(x, s, t)``: ``(x0, k) -> x1`` by ``k`` jumps."""
    return lambda x0, k: meanflow.sample(average_velocity, x0, k).x


def train_for(budget: float, build: Callable[[], nn.Module], objective, seed: int, **fit_kwargs) -> tuple[nn.Module, float]:
    """A fresh ``build()``, initialised from ``seed`` (``toyflow.seed``: torch's, numpy's and Python's generators, so
    torchcfm's numpy draws too), trained on ``objective`` for ``budget`` seconds: ``(model, training seconds)``.
    Raises ``FloatingPointError`` on a NaN loss."""
    toyflow.seed(seed)
    model = build()
    return model, fit(model, objective, None, max_seconds=budget, seed=seed, progress=False, **fit_kwargs).seconds


def seconds_left(budget: float, start: float) -> float:
    """What is left of ``budget`` seconds counted from ``start`` (``time.perf_counter()``), for the next stage of a
    pipeline; at least a millisecond, since ``fit`` needs a positive budget."""
    return max(budget - (time.perf_counter() - start), 1e-3)


def reflow_and_distil(source: data.Distribution, target, budget: float, num_pairs: int, pair_steps: int, seed: int):
    """2-RF + distillation in ``budget`` seconds, every stage on the clock: 1-RF until 40 % of it, 2-RF (warm-started
    from 1-RF) on 1-RF's pairs until 80 %, distillation (in place) on 2-RF's pairs for the rest. Each set of pairs is
    ``num_pairs`` source points pushed through the flow by RK4 in ``pair_steps`` steps, inside the budget. Learning
    rates as in benchmarks/reflow.py (2e-3) and notebook 05 (distillation, 1e-3). Returns the one-step map
    ``x0 -> x1`` and the seconds the whole pipeline took."""
    start = time.perf_counter()
    toyflow.seed(seed)
    model, generator = models.VelocityMLP(), torch.Generator().manual_seed(seed + 1)
    independent = couplings.PairSampler(source, target)
    rectify.reflow(model, independent, None, max_seconds=seconds_left(0.4 * budget, start), lr=2e-3, seed=seed,
                   progress=False)  # 1-RF
    pairs = rectify.sample_pairs(model, source.sample(num_pairs, generator), pair_steps)
    rectify.reflow(model, pairs, None, max_seconds=seconds_left(0.8 * budget, start), lr=2e-3, seed=seed + 2,
                   progress=False)  # 2-RF, warm-started in place
    pairs = rectify.sample_pairs(model, source.sample(num_pairs, generator), pair_steps)
    rectify.distill(model, pairs, None, max_seconds=seconds_left(budget, start), lr=1e-3, seed=seed, progress=False)
    return rectify.one_step(model), time.perf_counter() - start


def stratified_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    """torchcfm's moons reference: n/2 evenly spaced angles per moon, one U(0, 0.2) added to both coordinates, ×3 − 1."""
    angle = torch.linspace(0, math.pi, n // 2)
    upper = torch.stack([angle.cos(), angle.sin()], 1)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], 1)
    points = torch.cat([upper, lower]) + 0.2 * torch.rand(n // 2 * 2, 1, generator=generator)
    return 3 * points - 1


def torchcfm_task(seed: int = 1234) -> Task:
    """The 8 gaussians → moons task, its points drawn from ``seed``: 2,000 i.i.d. source points and a stratified target
    reference of 2,000 for W2, ``FINE_SIZE`` of each (i.i.d.) for fine W2, and the floors."""
    source, target = data.get("8gaussians"), data.get("moons", noise_type="diagonal")
    generator = torch.Generator().manual_seed(seed)
    x0, x1 = source.sample(EVAL_SIZE, generator), stratified_moons(EVAL_SIZE, generator)
    floor = metrics.w2(x1, stratified_moons(EVAL_SIZE, generator))
    iid_floor = statistics.median(metrics.w2(x1, target.sample(EVAL_SIZE, generator)) for _ in range(5))
    x0_fine, x1_fine = source.sample(FINE_SIZE, generator), target.sample(FINE_SIZE, generator)
    fine_floor = metrics.floor(metrics.fine_w2, target, FINE_SIZE, repeats=5, generator=generator)
    return Task(source, target, x0, x1, x0_fine, x1_fine, floor, iid_floor, fine_floor)


def validation_task() -> Task:
    """The same task with other points (seed ``VALIDATION_SEED``): what tuning scores on, never the evaluation set."""
    return torchcfm_task(VALIDATION_SEED)


def tune(grid: dict[str, dict], score: Callable[[dict], float], what: str = "") -> tuple[str, list[dict]]:
    """Score every configuration of ``grid`` (``name -> settings``) with ``score(settings)`` (lower is better,
    measured on validation data such as :func:`validation_task`; NaN counts as worst): the best name and one table row
    per configuration."""
    rows = []
    for name, settings in tqdm(grid.items(), desc=f"tuning {what}".strip(), leave=False):
        rows.append({"tuned": what, "configuration": name, "validation score": score(settings)})
    best = min(rows, key=lambda row: (math.isnan(row["validation score"]), row["validation score"]))
    for row in rows:
        row["chosen"] = row is best
    return best["configuration"], rows


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


def machine() -> str:
    """The CPU the numbers were measured on, in words (timings differ about 3× between machines)."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    return f"{names[0] if names else platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def save(name: str, result: dict, started: float | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the machine and the torch threads; with ``started`` (from
    :func:`pin_threads`) also the total wall time."""
    result = {**result, "threads": torch.get_num_threads(), "machine": machine()}
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


def train_torchcfm(matcher, budget: float, seed: int, description: str = "torchcfm recipe") -> tuple[Callable, float]:
    """torchcfm's 2D tutorial recipe with ``matcher``: their MLP (width 64, SELU), their samplers (torch's global
    generator, seeded with ``seed`` like the initialisation), batch 256, Adam at a constant 1e-3, their loss, run by
    ``fit`` for ``budget`` seconds like every other recipe. Returns the trained velocity ``v(x, t)`` and the
    training seconds."""
    from torchcfm.models.models import MLP
    from torchcfm.utils import sample_8gaussians, sample_moons

    toyflow.seed(seed)
    model = MLP(dim=2, time_varying=True, w=64)

    def their_loss(model: nn.Module, generator: torch.Generator) -> torch.Tensor:
        t, xt, ut = matcher.sample_location_and_conditional_flow(sample_8gaussians(256), sample_moons(256))
        return ((model(torch.cat([xt, t[:, None]], 1)) - ut) ** 2).mean()

    history = fit(model, their_loss, None, max_seconds=budget, lr=1e-3, schedule="constant", seed=seed,
                  description=description, progress=False)
    return (lambda x, t: model(torch.cat([x, t.expand(len(x))[:, None]], 1))), history.seconds


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

    zuko's splines act on ``[−5, 5]`` (identity outside); the flow models ``x / s`` with ``s = bound / 5``, so they act
    on ``[−bound, bound]`` in the data's units, as toyflow's ``SplineFlow(bound=…)`` does, and the two are tuned over
    the same grid of bounds. ``log p(x) = log p_NSF(x / s) − d log s`` is still the exact density of ``x``.
    """

    def __init__(self, layers: int = 3, hidden: int = 64, bins: int = 8, bound: float = 20.0):
        super().__init__()
        import zuko

        self.scale = bound / 5
        self.flow = zuko.flows.NSF(features=2, transforms=layers, hidden_features=(hidden, hidden), bins=bins)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().log_prob(x / self.scale) - x.shape[1] * math.log(self.scale)
