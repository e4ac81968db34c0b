"""Issue 22's moonshots on torchcfm's task, each a ratio of two times measured in the same run, over seeds.

- ``fm``, flow matching at the floor in a quarter of the time. Today's recipe (``TODAY_FM``: the best of issue 14)
  trains for each of ``--fm-budgets`` in turn, every seed, until the median over the seeds reaches the floor: exact
  W2 @ 100 Euler NFE at or below the i.i.d. floor and fine W2 @ 100 at or below twice its floor. That budget is
  today's time to the floor, T. The candidates of ``FM_GRID`` are tuned at T/4 on the validation task (by fine W2,
  which still ranks models there), the same grid for torchcfm's matcher (σ = 0) in toyflow's loop; the winners and
  torchcfm's README recipe (their MLP and loop, σ = 0.1) then train for T/4 on every seed.
- ``one-step``, a one-step generator with W2 @ 1 ≤ 0.20 in 60 % of the time of today's. Today's recipe
  (SplitMeanFlow on exact-OT pairs, ``TODAY_SPLIT``) trains for ``--one-step-budget`` s (T'); the candidates of
  ``ONE_STEP_GRID`` (SplitMeanFlow variants, and a flow-matching teacher whose Euler pairs are distilled into one
  step, every stage counted) are tuned at 0.6·T' on the validation task, the winner trains for 0.6·T' on every seed,
  next to today's recipe at 0.6·T' and torchcfm's OT-CFM (README recipe, and its matcher in toyflow's loop) at 0.6·T'.

The normalizing-flow moonshots (the checkerboard within 0.03 nats, RealNVP and MAF within 0.05 nats on 8 gaussians,
zuko tuned alike in the same run) are measured by benchmarks/nf.py.

Every run trains for an exact time budget (``fit(max_seconds=)``, the learning rate following elapsed time), with
one torch thread, every library alike (benchmarks/common.py). Rows give the budget, the training seconds and both
metrics: exact W2 on 2,000 points against torchcfm's stratified reference, fine W2 on 40,000. Writes
benchmarks/results/moonshots.json.

    python benchmarks/moonshots.py                         # both, three seeds (16 minutes on a 2-core EPYC)
    python benchmarks/moonshots.py --parts fm --seeds 0 --fm-budgets 5 10   # a quick look
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from common import (
    TorchcfmMatcher,
    parse,
    parser,
    save,
    seconds_left,
    summarise_seeds,
    torchcfm_available,
    torchcfm_task,
    train_for,
    train_torchcfm,
    tune,
    validation_task,
)
from tqdm.auto import tqdm

from toyflow import couplings, meanflow, models, plot, rectify, solvers
from toyflow.flow_matching import FlowMatching
from toyflow.meanflow import SplitMeanFlow
from toyflow.train import fit

ONE_STEP_GOAL, ONE_STEP_SHARE, FM_SHARE = 0.20, 0.6, 0.25


@dataclass(frozen=True)
class Recipe:
    """How a ``VelocityMLP`` trains: its shape, pairs per step, Adam's peak lr (cosine over the time budget), an EMA
    of the weights and gradient clipping. ``coupling="exact OT"`` pairs each batch by exact minibatch OT."""

    hidden: int = 128
    depth: int = 3
    batch: int = 512
    lr: float = 5e-3
    ema: float | None = 0.999
    grad_clip: float | None = None
    coupling: str = "independent"

    def pairs(self, task) -> couplings.PairSampler:
        plan = couplings.ExactOT() if self.coupling == "exact OT" else None
        return couplings.PairSampler(task.source, task.target, plan)

    def train(self, objective, budget: float, seed: int, times: int = 1) -> tuple[torch.nn.Module, float]:
        """A fresh network (initialised from ``seed``) trained on ``objective`` for ``budget`` s: it and its seconds."""
        return train_for(budget, lambda: models.VelocityMLP(hidden=self.hidden, depth=self.depth, times=times),
                         objective, seed, lr=self.lr, ema=self.ema, grad_clip=self.grad_clip)


# Today's recipes, as issue 14 left them: flow matching on independent pairs, and SplitMeanFlow on exact-OT pairs.
TODAY_FM = Recipe()
TODAY_SPLIT = Recipe(batch=256, lr=1e-2, ema=None, grad_clip=1.0, coupling="exact OT")
FM_GRID = {
    "today (128 × 3, batch 512, lr 5e-3, EMA)": TODAY_FM,
    "lr 1e-2": replace(TODAY_FM, lr=1e-2),
    "64 × 3, batch 256, lr 1e-2": replace(TODAY_FM, hidden=64, batch=256, lr=1e-2),
    "64 × 3, batch 512, lr 1e-2": replace(TODAY_FM, hidden=64, lr=1e-2),
    "64 × 3, batch 512, lr 2e-2": replace(TODAY_FM, hidden=64, lr=2e-2),
}


@dataclass(frozen=True)
class Distilled:
    """A flow-matching teacher (``teacher``, ``share`` of the budget) → ``pairs`` Euler pairs of ``steps`` steps →
    one-step distillation of a copy of the teacher on them for the rest of the budget (``student``: its batch, lr and
    EMA), every stage counted (Liu et al. 2022, §2.3 with k = 1)."""

    teacher: Recipe
    student: Recipe
    share: float = 0.5
    pairs: int = 20_000
    steps: int = 16


ONE_STEP_GRID = {
    "SplitMeanFlow on OT, today's settings": TODAY_SPLIT,
    "SplitMeanFlow on OT, EMA": replace(TODAY_SPLIT, ema=0.999),
    "SplitMeanFlow on OT, lr 2e-2": replace(TODAY_SPLIT, lr=2e-2),
    "SplitMeanFlow on OT, 256 × 3": replace(TODAY_SPLIT, hidden=256),
    "OT-CFM teacher → 16-step pairs → distillation": Distilled(replace(TODAY_FM, coupling="exact OT", batch=256),
                                                                replace(TODAY_FM, lr=2e-3)),
}


def flow_matching(task, recipe: Recipe, budget: float, seed: int, matcher=None) -> tuple[Callable, float]:
    """``recipe`` trained on flow matching for ``budget`` s, its pairs/times/targets from toyflow's ``FlowMatching`` or
    from a torchcfm ``matcher``: the velocity and its training seconds."""
    objective = (FlowMatching(recipe.pairs(task), batch_size=recipe.batch) if matcher is None
                 else TorchcfmMatcher(matcher, task.source, task.target, batch_size=recipe.batch))
    return recipe.train(objective, budget, seed)


def one_step(task, recipe: Recipe | Distilled, budget: float, seed: int) -> tuple[Callable, float]:
    """A one-step generator ``x0 -> x1`` trained by ``recipe`` within ``budget`` s, and the seconds all its stages took."""
    if isinstance(recipe, Recipe):  # SplitMeanFlow: u(x, s, t), one jump from 0 to 1
        objective = SplitMeanFlow(recipe.pairs(task), batch_size=recipe.batch)
        model, seconds = recipe.train(objective, budget, seed, times=2)
        return (lambda x: meanflow.sample(model, x, 1).x), seconds
    start = time.perf_counter()
    teacher, _ = flow_matching(task, recipe.teacher, recipe.share * budget, seed)
    z0 = task.source.sample(recipe.pairs, torch.Generator().manual_seed(seed + 1))
    pairs = rectify.sample_pairs(teacher, z0, recipe.steps, "euler")
    student = copy.deepcopy(teacher)
    fit(student, rectify.Distillation(pairs, recipe.student.batch), None, max_seconds=seconds_left(budget, start),
        lr=recipe.student.lr, ema=recipe.student.ema, seed=seed, progress=False)
    return rectify.one_step(student), time.perf_counter() - start


def row(part: str, method: str, seed: int, budget: float, seconds: float, scores: dict) -> dict:
    return {"moonshot": part, "method": method, "seed": seed, "budget s": budget, "train s": seconds, **scores}


def at_floor(rows: list[dict], task) -> bool:
    """Whether the median over ``rows`` (one per seed) is at the floor: W2 @ 100 ≤ i.i.d. floor, fine W2 ≤ 2 × floor."""
    return (statistics.median(r["W2 @ 100"] for r in rows) <= task.iid_floor
            and statistics.median(r["fine W2 @ 100"] for r in rows) <= 2 * task.fine_floor)


def fm_moonshot(task, validation, budgets: list[float], seeds: list[int]) -> tuple[list[dict], list[dict]]:
    """Today's time to the floor, then the tuned recipes (toyflow's and torchcfm's matcher) and torchcfm's README
    recipe at a quarter of it: (rows, tuning rows)."""
    rows, part = [], "flow matching at the floor"
    for budget in budgets:
        today = []
        for seed in tqdm(seeds, desc=f"today's recipe, {budget:g} s", leave=False):
            velocity, seconds = flow_matching(task, TODAY_FM, budget, seed)
            today.append(row(part, "toyflow, today's recipe", seed, budget, seconds, task.at_nfe(velocity, (100,))))
        rows += today
        print(plot.markdown_table(today, 4), flush=True)
        if at_floor(today, task):
            break
    else:
        print(f"today's recipe did not reach the floor within {budgets[-1]:g} s: the goal is measured at a quarter of it")
    quarter = FM_SHARE * rows[-1]["budget s"]
    tuning = []
    matchers = {"toyflow": None}
    if torchcfm_available():
        from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
        matchers["torchcfm I-CFM (σ = 0)"] = ConditionalFlowMatcher(sigma=0.0)
    for library, matcher in matchers.items():
        def score(recipe, matcher=matcher):
            velocity, _ = flow_matching(validation, recipe, quarter, 0, matcher)
            return validation.fine_score(solvers.integrate(velocity, validation.x0_fine, 100).x)

        best, table = tune(FM_GRID, score, f"{library} at {quarter:g} s")
        tuning += table
        for seed in tqdm(seeds, desc=f"{library}, tuned recipe", leave=False):
            velocity, seconds = flow_matching(task, FM_GRID[best], quarter, seed, matcher)
            rows.append(row(part, f"{library}, tuned: {best}", seed, quarter, seconds, task.at_nfe(velocity, (100,))))
    if torchcfm_available():
        rows += torchcfm_readme(task, part, "I-CFM", quarter, seeds, 100)
    return rows, tuning


def torchcfm_readme(task, part: str, name: str, budget: float, seeds: list[int], nfe: int) -> list[dict]:
    """torchcfm's README recipe (σ = 0.1) with ``name`` ("I-CFM" or "OT-CFM") for ``budget`` s per seed, at ``nfe``."""
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher

    matcher = {"I-CFM": ConditionalFlowMatcher, "OT-CFM": ExactOptimalTransportConditionalFlowMatcher}[name](sigma=0.1)
    rows = []
    for seed in seeds:
        velocity, seconds = train_torchcfm(matcher, budget, seed)
        rows.append(row(part, f"torchcfm README recipe, {name} (σ = 0.1)", seed, budget, seconds,
                        task.at_nfe(velocity, (nfe,))))
    return rows


def one_step_moonshot(task, validation, budget: float, seeds: list[int]) -> tuple[list[dict], list[dict]]:
    """Today's SplitMeanFlow at ``budget`` and at 60 % of it, the tuned candidate and torchcfm's OT-CFM at 60 %."""
    part, short = "one step", ONE_STEP_SHARE * budget

    def run(recipe, seconds_budget: float, seed: int, method: str) -> dict:
        sample, seconds = one_step(task, recipe, seconds_budget, seed)
        return row(part, method, seed, seconds_budget, seconds, task.evaluate(sample, " @ 1"))

    rows = [run(TODAY_SPLIT, b, seed, "toyflow, today's SplitMeanFlow on OT") for b in (budget, short) for seed in seeds]

    def score(recipe):
        sample, _ = one_step(validation, recipe, short, 0)
        with torch.no_grad():
            return validation.fine_score(sample(validation.x0_fine))

    best, tuning = tune(ONE_STEP_GRID, score, f"one step at {short:g} s")
    rows += [run(ONE_STEP_GRID[best], short, seed, f"toyflow, tuned: {best}") for seed in seeds]
    if torchcfm_available():
        from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher
        rows += torchcfm_readme(task, part, "OT-CFM", short, seeds, 1)
        for seed in seeds:
            velocity, seconds = flow_matching(task, replace(TODAY_FM, coupling="exact OT", batch=256), short, seed,
                                              ExactOptimalTransportConditionalFlowMatcher(sigma=0.0))
            rows.append(row(part, "torchcfm OT-CFM (σ = 0) in toyflow's loop", seed, short, seconds,
                            task.at_nfe(velocity, (1,))))
    return rows, tuning


def main() -> None:
    command = parser(__doc__, seeds=[0, 1, 2])
    command.add_argument("--parts", nargs="+", choices=["fm", "one-step"], default=["fm", "one-step"],
                         help="which moonshots (%(default)s)")
    command.add_argument("--fm-budgets", type=float, nargs="+", default=[5.0, 10.0, 20.0, 40.0],
                         help="today's flow-matching recipe trains for each in turn until its median reaches the floor "
                              "(%(default)s s); the tuned recipes get a quarter of that budget")
    command.add_argument("--one-step-budget", type=float, default=45.0,
                         help="today's SplitMeanFlow budget (%(default)s s); the candidates get 60 %% of it")
    args, started = parse(command)

    task, validation = torchcfm_task(), validation_task()
    print(task.describe_floors())
    rows, tuning = [], []
    if "fm" in args.parts:
        new_rows, new_tuning = fm_moonshot(task, validation, sorted(args.fm_budgets), args.seeds)
        rows, tuning = rows + new_rows, tuning + new_tuning
    if "one-step" in args.parts:
        new_rows, new_tuning = one_step_moonshot(task, validation, args.one_step_budget, args.seeds)
        rows, tuning = rows + new_rows, tuning + new_tuning
    summary = summarise_seeds(rows, ("moonshot", "method", "budget s"), ("W2 @ 100", "fine W2 @ 100", "W2 @ 1",
                                                                          "fine W2 @ 1"))
    print(plot.markdown_table(tuning, 4), "\n")
    print(plot.markdown_table(rows, 4), "\n")
    print(plot.markdown_table(summary, 4))
    recipes = {name: asdict(recipe) if isinstance(recipe, Recipe) else str(recipe)
               for name, recipe in (FM_GRID | ONE_STEP_GRID).items()}
    print("saved", save("moonshots", {"settings": vars(args), **task.floors(), "recipes": recipes, "tuning": tuning,
                                      "rows": rows, "summary": summary}, started))


if __name__ == "__main__":
    main()
