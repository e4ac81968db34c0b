"""Flow matching on torchcfm's task: the quality each recipe reaches in the same wall time, and sampling speed.

Time to quality: every recipe trains for the same wall-time budgets (``--budgets``), one run per seed (``--seeds``; the
seed sets the initialisation and the training draws), each through ``fit(..., None, max_seconds=budget)``: no step
count, the learning-rate schedule follows the elapsed time. The recipes (``--recipes``):

- ``toyflow``: toyflow's default: ``VelocityMLP``, ``FlowMatching`` on independent pairs (σ = 0), batch 256, Adam with
  a cosine schedule from ``--lr``;
- ``icfm-swap``, ``otcfm-swap``: the same recipe with torchcfm's matcher (``ConditionalFlowMatcher`` or
  ``ExactOptimalTransportConditionalFlowMatcher``, σ = 0) drawing the times, the pairing and the targets: only the
  matcher is torchcfm's, so a gap to ``toyflow`` (or, for OT-CFM, to ``toyflow-ot``, toyflow's own exact minibatch OT;
  not run by default) is the library's;
- ``torchcfm``: torchcfm's README recipe (their MLP, samplers and loss, I-CFM with σ = 0.1, Adam at a constant 1e-3;
  ``common.train_torchcfm``): the recipe's difference as well.

One row per (recipe, budget, seed): "budget s", "train s" (measured), exact "W2 @ k" at k = 1, 2, 4, 8 and 100 Euler
steps and "fine W2 @ 1" and "fine W2 @ 100" (the two metrics of benchmarks/common.py); a summary gives the median and
worst over the seeds. This table is the benchmarks page's time-to-quality figure. A second table gives the ms to
draw 256 points from every data set (and from torchcfm's samplers). Writes benchmarks/results/flow_matching.json
(floors included). The recipes other than ``toyflow`` and ``toyflow-ot`` need torchcfm (``pip install -e ".[bench]"``);
what an OT coupling costs per step is measured by benchmarks/ot_step.py.

Wall time on an idle CPU: about (sum of the budgets + 12 s of evaluation per budget) × seeds × recipes, plus a quarter
of a minute:

    python benchmarks/flow_matching.py    # the full run: 4 recipes × budgets 5, 10, 20 s × 3 seeds (about 15 minutes)
    python benchmarks/flow_matching.py --recipes toyflow torchcfm --budgets 5 --seeds 0   # a quick look (1 minute)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from common import (
    TorchcfmMatcher,
    median_seconds,
    parse,
    parser,
    save,
    summarise_seeds,
    torchcfm_available,
    torchcfm_task,
    train_for,
    train_torchcfm,
)
from tqdm.auto import tqdm

from toyflow import couplings, data, models, plot
from toyflow.flow_matching import FlowMatching

NFES = (1, 2, 4, 8, 100)
FINE_NFES = (1, 100)  # fine W2 at 100 Euler steps costs about 10 s per model; at 1 step it is nearly free
RECIPES = {  # --recipes name -> the rows' "recipe"
    "toyflow": "toyflow, independent pairs",
    "toyflow-ot": "toyflow, ExactOT pairs",
    "icfm-swap": "torchcfm I-CFM matcher in toyflow's recipe",
    "otcfm-swap": "torchcfm OT-CFM matcher in toyflow's recipe",
    "torchcfm": "torchcfm's README recipe (I-CFM, σ = 0.1)",
}
NEEDS_TORCHCFM = ("icfm-swap", "otcfm-swap", "torchcfm")
SUMMARISED = ("W2 @ 1", "W2 @ 100", "fine W2 @ 1", "fine W2 @ 100")

Trainer = Callable[[float, int], tuple[Callable, float]]  # (budget, seed) -> (velocity v(x, t), training seconds)


def sampling_speed(repeats: int) -> list[dict]:
    """Median time to draw a batch of 256 points from every data set."""
    generator = torch.Generator().manual_seed(0)
    samplers = {f"toyflow {name}": partial(data.get(name).sample, 256, generator) for name in sorted(data.REGISTRY)}
    if torchcfm_available():
        from torchcfm.utils import sample_8gaussians, sample_moons

        samplers["torchcfm 8gaussians"] = lambda: sample_8gaussians(256)
        samplers["torchcfm moons"] = lambda: sample_moons(256)
    return [{"sampler": name, "ms per 256": 1e3 * median_seconds(draw, repeats, 20)} for name, draw in samplers.items()]


def objective(recipe: str, task):
    """The loss of one of toyflow's-recipe rows: toyflow's ``FlowMatching`` or torchcfm's matcher (σ = 0)."""
    if recipe == "toyflow":
        return FlowMatching(couplings.PairSampler(task.source, task.target))
    if recipe == "toyflow-ot":
        return FlowMatching(couplings.PairSampler(task.source, task.target, couplings.ExactOT()))
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher

    matcher = ConditionalFlowMatcher(0.0) if recipe == "icfm-swap" else ExactOptimalTransportConditionalFlowMatcher(0.0)
    return TorchcfmMatcher(matcher, task.source, task.target)


def trainer(recipe: str, task, lr: float) -> Trainer:
    """How a recipe trains for ``budget`` seconds from ``seed``."""
    if recipe == "torchcfm":
        from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

        return lambda budget, seed: train_torchcfm(ConditionalFlowMatcher(sigma=0.1), budget, seed)
    loss = objective(recipe, task)

    return lambda budget, seed: train_for(budget, models.VelocityMLP, loss, seed, lr=lr)


def time_to_quality(task, recipes: list[str], budgets: list[float], seeds: list[int], lr: float) -> list[dict]:
    """One row per (recipe, budget, seed): the budget, the measured training seconds and both metrics at each NFE."""
    runs = [(recipe, budget, seed) for recipe in recipes for budget in budgets for seed in seeds]
    trainers, rows = {recipe: trainer(recipe, task, lr) for recipe in recipes}, []
    for recipe, budget, seed in tqdm(runs, desc="time to quality"):
        velocity, seconds = trainers[recipe](budget, seed)
        rows.append({"recipe": RECIPES[recipe], "budget s": float(budget), "seed": seed, "train s": seconds,
                     **task.at_nfe(velocity, NFES, fine=FINE_NFES)})
    return rows


def main() -> None:
    command = parser(__doc__, seeds=[0, 1, 2])
    command.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=["toyflow", *NEEDS_TORCHCFM],
                         help="recipes to train (%(default)s)")
    command.add_argument("--budgets", type=float, nargs="+", default=[5.0, 10.0, 20.0],
                         help="training seconds of each run (%(default)s)")
    command.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of toyflow's recipe (%(default)s)")
    command.add_argument("--repeats", type=int, default=5,
                         help="repeats of each sampling timing; medians (%(default)s)")
    args, started = parse(command)
    recipes = args.recipes
    if not torchcfm_available() and any(recipe in NEEDS_TORCHCFM for recipe in recipes):
        print("torchcfm is not installed: skipping", ", ".join(r for r in recipes if r in NEEDS_TORCHCFM))
        recipes = [recipe for recipe in recipes if recipe not in NEEDS_TORCHCFM]

    task = torchcfm_task()
    result = {"task": "8gaussians -> moons (torchcfm)", "eval_size": len(task.x1), **task.floors(),
              "settings": vars(args)}
    print(task.describe_floors())
    result["sampling"] = sampling_speed(args.repeats)
    print(plot.markdown_table(result["sampling"], 4), "\n")
    rows = time_to_quality(task, recipes, args.budgets, args.seeds, args.lr)
    result["rows"], result["summary"] = rows, summarise_seeds(rows, ("recipe", "budget s"), SUMMARISED)
    print(plot.markdown_table(rows, 3), "\n")
    print(plot.markdown_table(result["summary"], 3))
    print("saved", save("flow_matching", result, started))


if __name__ == "__main__":
    main()
