"""Flow matching on torchcfm's task: sampling speed, training throughput, time to quality.

Prints Markdown tables and writes benchmarks/results/flow_matching.json. With torchcfm installed
(``pip install -e ".[bench]"``), torchcfm's own recipe runs in the same process for comparison.

    python benchmarks/flow_matching.py                 # the full run (a few minutes)
    python benchmarks/flow_matching.py --budgets 5     # one training budget, no torchcfm
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial

import torch
from common import median_seconds, save, torchcfm_available, torchcfm_task, train_torchcfm
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


def throughput(task, repeats: int, batch_sizes: list[int], steps: int = 300) -> list[dict]:
    """Training steps per second of the default recipe with independent and exact-OT pairs, measured in turns.
    Exact OT grows like B³, the network step like B: the ratio depends on the batch size."""
    rows = []
    for batch in batch_sizes:
        timings: dict[str, list[float]] = {"independent": [], "exact OT": []}
        for _ in range(repeats):
            for name, coupling in (("independent", couplings.independent), ("exact OT", couplings.ExactOT())):
                objective = FlowMatching(couplings.PairSampler(task.source, task.target, coupling), batch_size=batch)
                timings[name].append(fit(models.VelocityMLP(), objective, steps, progress=False).seconds / steps)
        per_step = {name: statistics.median(t) for name, t in timings.items()}
        rows += [
            {"coupling": name, "batch": batch, "ms per step": 1e3 * s, "steps/s": 1 / s, "samples/s": batch / s,
             "cost vs independent": s / per_step["independent"]}
            for name, s in per_step.items()
        ]
    return rows


def evaluate(v, task) -> dict:
    curve = {f"W2 @ {k}": w for k, w in metrics.w2_by_nfe(v, task.x0, task.x1, NFES).items()}
    return {**curve, "W2² @ 100": curve["W2 @ 100"] ** 2}


def time_to_quality(task, budgets: list[float], lr: float) -> list[dict]:
    """Train the default recipe for each wall-time budget (steps set from a measured step time)."""
    probe = fit(models.VelocityMLP(), FlowMatching(couplings.PairSampler(task.source, task.target)), 200, progress=False)
    seconds_per_step = probe.seconds / 200
    rows = []
    for budget in tqdm(budgets, desc="time to quality (budgets)"):
        torch.manual_seed(0)
        model = models.VelocityMLP()
        steps = max(100, int(budget / seconds_per_step))
        history = fit(model, FlowMatching(couplings.PairSampler(task.source, task.target)), steps, lr=lr, progress=False)
        rows.append({"recipe": "toyflow", "steps": steps, "train s": history.seconds, **evaluate(model, task)})
    return rows


def torchcfm_recipe(task, steps: int) -> dict:
    """torchcfm's 2D tutorial recipe: I-CFM with σ = 0.1 in their training loop (``common.train_torchcfm``)."""
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

    velocity, seconds = train_torchcfm(ConditionalFlowMatcher(sigma=0.1), steps, "torchcfm recipe")
    return {"recipe": "torchcfm I-CFM", "steps": steps, "train s": seconds, **evaluate(velocity, task)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=float, nargs="+", default=[2.5, 5.0, 10.0, 20.0], help="training seconds (%(default)s)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of toyflow's recipe (%(default)s)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256], help="for the throughput table (%(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each timing; medians are reported (%(default)s)")
    parser.add_argument("--torchcfm-steps", type=int, default=20000, help="steps of torchcfm's recipe; 0 skips it (%(default)s)")
    args = parser.parse_args()

    task = torchcfm_task()
    result = {"task": "8gaussians -> moons (torchcfm)", "eval_size": len(task.x1), "floor_w2": task.floor,
              "iid_floor_w2": task.iid_floor, "threads": torch.get_num_threads()}
    print(f"W2 floors: two stratified reference sets {task.floor:.3f}; "
          f"i.i.d. target draws vs the reference {task.iid_floor:.3f}\n")

    result["sampling"] = sampling_speed(args.repeats)
    print(plot.markdown_table(result["sampling"], 4), "\n")
    result["throughput"] = throughput(task, args.repeats, args.batch_sizes)
    print(plot.markdown_table(result["throughput"], 2), "\n")
    result["time_to_quality"] = time_to_quality(task, args.budgets, args.lr)
    if args.torchcfm_steps and torchcfm_available():
        result["time_to_quality"].append(torchcfm_recipe(task, args.torchcfm_steps))
    print(plot.markdown_table(result["time_to_quality"], 3))
    reached = [row for row in result["time_to_quality"] if row["recipe"] == "toyflow" and row["W2 @ 100"] <= 0.20]
    print(f"\ntoyflow reaches W2 @ 100 NFE <= 0.20 after {reached[0]['train s']:.1f} s" if reached
          else "\ntoyflow did not reach W2 @ 100 NFE <= 0.20 within these budgets")
    print("saved", save("flow_matching", result))


if __name__ == "__main__":
    main()
