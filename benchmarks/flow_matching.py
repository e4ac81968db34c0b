"""Flow matching on torchcfm's task: sampling speed, time to quality over seeds, and a fair comparison with torchcfm.

Tables (Markdown) and benchmarks/results/flow_matching.json:

- sampling: ms to draw 256 points from every data set (and from torchcfm's samplers);
- time to quality: toyflow's default recipe (``VelocityMLP``, ``fit``, batch 256, independent pairs) trained for
  each wall-time budget, one run per seed; exact W2 at 1, 2, 4, 8 and 100 Euler NFE;
- same recipe, matcher swapped: toyflow's network, steps, lr, batch and σ = 0, with the pairs/times/targets from
  toyflow (``FlowMatching``) or from torchcfm's matcher (``ConditionalFlowMatcher``, OT-CFM), so a difference here
  is the library's, not the recipe's;
- torchcfm's own README recipe (their MLP, loop, σ = 0.1, I-CFM), at the same seeds: the recipe's difference;
- a summary: median and worst W2 @ 100 over the seeds.

With torchcfm installed (``pip install -e ".[bench]"``) its rows run in the same process. The step cost of OT
couplings is measured by benchmarks/ot_step.py.

    python benchmarks/flow_matching.py                 # the full run (about 5 minutes on 2 cores)
    python benchmarks/flow_matching.py --budgets 5 --seeds 0 --swap-steps 0 --torchcfm-steps 0   # a quick look
"""

from __future__ import annotations

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
    train_torchcfm,
)
from tqdm.auto import tqdm

from toyflow import couplings, data, metrics, models, plot
from toyflow.flow_matching import FlowMatching
from toyflow.train import fit

NFES = (1, 2, 4, 8, 100)


def sampling_speed(repeats: int) -> list[dict]:
    """Median time to draw a batch of 256 points from every data set."""
    generator = torch.Generator().manual_seed(0)
    samplers = {f"toyflow {name}": partial(data.get(name).sample, 256, generator) for name in sorted(data.REGISTRY)}
    if torchcfm_available():
        from torchcfm.utils import sample_8gaussians, sample_moons

        samplers["torchcfm 8gaussians"] = lambda: sample_8gaussians(256)
        samplers["torchcfm moons"] = lambda: sample_moons(256)
    return [{"sampler": name, "ms per 256": 1e3 * median_seconds(draw, repeats, 20)} for name, draw in samplers.items()]


def evaluate(v, task) -> dict:
    curve = {f"W2 @ {k}": w for k, w in metrics.w2_by_nfe(v, task.x0, task.x1, NFES).items()}
    return {**curve, "W2² @ 100": curve["W2 @ 100"] ** 2}


def seconds_per_step(task, batch: int = 256) -> float:
    """Seconds per step of the default recipe, from 200 steps after a warm-up of 50."""
    objective = FlowMatching(couplings.PairSampler(task.source, task.target), batch_size=batch)
    fit(models.VelocityMLP(), objective, 50, progress=False)
    return fit(models.VelocityMLP(), objective, 200, progress=False).seconds / 200


def time_to_quality(task, budgets: list[float], lr: float, seeds: list[int]) -> list[dict]:
    """Train the default recipe for each wall-time budget and seed (steps set from a measured step time)."""
    per_step, rows = seconds_per_step(task), []
    for budget in tqdm(budgets, desc="time to quality (budgets)"):
        steps = max(100, int(budget / per_step))
        for seed in seeds:
            torch.manual_seed(seed)
            model = models.VelocityMLP()
            history = fit(model, FlowMatching(couplings.PairSampler(task.source, task.target)), steps, lr=lr, seed=seed,
                          progress=False)
            rows.append({"recipe": f"toyflow, {budget:g} s", "seed": seed, "steps": steps, "train s": history.seconds,
                         **evaluate(model, task)})
    return rows


def matcher_swap(task, steps: int, lr: float, seeds: list[int]) -> list[dict]:
    """toyflow's recipe (network, fit, lr, steps, batch 256, σ = 0) with toyflow's pairing or torchcfm's matcher."""
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher

    objectives = {
        "toyflow FlowMatching, independent": FlowMatching(couplings.PairSampler(task.source, task.target)),
        "torchcfm I-CFM (σ = 0) in toyflow's recipe": TorchcfmMatcher(ConditionalFlowMatcher(0.0), task.source, task.target),
        "toyflow FlowMatching, ExactOT": FlowMatching(couplings.PairSampler(task.source, task.target, couplings.ExactOT())),
        "torchcfm OT-CFM (σ = 0) in toyflow's recipe": TorchcfmMatcher(ExactOptimalTransportConditionalFlowMatcher(0.0),
                                                                       task.source, task.target),
    }
    rows = []
    for name, objective in tqdm(objectives.items(), desc="matcher swapped"):
        for seed in seeds:
            torch.manual_seed(seed)
            model = models.VelocityMLP()
            history = fit(model, objective, steps, lr=lr, seed=seed, progress=False)
            rows.append({"recipe": name, "seed": seed, "steps": steps, "train s": history.seconds, **evaluate(model, task)})
    return rows


def torchcfm_recipe(task, steps: int, seeds: list[int]) -> list[dict]:
    """torchcfm's 2D tutorial recipe: I-CFM with σ = 0.1 in their training loop (``common.train_torchcfm``)."""
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

    rows = []
    for seed in seeds:
        velocity, seconds = train_torchcfm(ConditionalFlowMatcher(sigma=0.1), steps, "torchcfm recipe", seed)
        rows.append({"recipe": "torchcfm's README recipe, I-CFM (σ = 0.1)", "seed": seed, "steps": steps,
                     "train s": seconds, **evaluate(velocity, task)})
    return rows


def main() -> None:
    command = parser(__doc__, seeds=[0, 1, 2])
    command.add_argument("--budgets", type=float, nargs="+", default=[5.0, 20.0], help="training seconds (%(default)s)")
    command.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of toyflow's recipe (%(default)s)")
    command.add_argument("--repeats", type=int, default=5, help="repeats of each sampling timing; medians (%(default)s)")
    command.add_argument("--swap-steps", type=int, default=1000,
                         help="steps of the matcher-swapped comparison; 0 skips it (%(default)s)")
    command.add_argument("--torchcfm-steps", type=int, default=4000,
                         help="steps of torchcfm's README recipe (the README trains 20000); 0 skips it (%(default)s)")
    args, started = parse(command)

    task = torchcfm_task()
    result = {"task": "8gaussians -> moons (torchcfm)", "eval_size": len(task.x1), "floor_w2": task.floor,
              "iid_floor_w2": task.iid_floor, "settings": vars(args)}
    print(task.floors())

    result["sampling"] = sampling_speed(args.repeats)
    print(plot.markdown_table(result["sampling"], 4), "\n")
    rows = time_to_quality(task, args.budgets, args.lr, args.seeds)
    if torchcfm_available():
        rows += matcher_swap(task, args.swap_steps, args.lr, args.seeds) if args.swap_steps else []
        rows += torchcfm_recipe(task, args.torchcfm_steps, args.seeds) if args.torchcfm_steps else []
    result["rows"], result["summary"] = rows, summarise_seeds(rows, ("recipe", "steps"), ("W2 @ 1", "W2 @ 100"))
    print(plot.markdown_table(rows, 3), "\n")
    print(plot.markdown_table(result["summary"], 3))
    reached = [row for row in result["summary"] if row["recipe"].startswith("toyflow,") and row["median W2 @ 100"] <= 0.20]
    print(f"\ntoyflow's median W2 @ 100 NFE <= 0.20 after {reached[0]['median train s']:.1f} s" if reached
          else "\ntoyflow's median W2 @ 100 NFE did not reach 0.20 within these budgets")
    print("saved", save("flow_matching", result, started))


if __name__ == "__main__":
    main()
