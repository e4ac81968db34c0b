"""The cost of minibatch OT in a training step: exact OT, OT on blocks and prefetched OT against independent pairs.

One full flow-matching training step on torchcfm's task (draw the pairs, couple them, forward, backward, Adam;
``train.fit`` with the default ``VelocityMLP``) for each coupling at each batch size. The settings are timed in
turns, ``--repeats`` times, and the table gives the median ms per step and its ratio to the independent step of
the same run. The goal of issue 14 is a ratio ≤ 2 at batch 256. ``prefetch`` solves the next batch's plan in
a background thread (``PairSampler(prefetch=True)``), so it can hide the solve only when a second core is free.
Writes benchmarks/results/ot_step.json.

    python benchmarks/ot_step.py                       # batches 128 and 256, 5 repeats (about a minute)
    python benchmarks/ot_step.py --batch-sizes 512 --repeats 3
"""

from __future__ import annotations

import statistics

import torch
from common import parse, parser, save, torchcfm_task

from toyflow import couplings, models, plot
from toyflow.flow_matching import FlowMatching
from toyflow.train import fit

GOAL = 2.0


def settings() -> dict[str, tuple[couplings.Coupling, bool]]:
    """``{name: (coupling, prefetch)}``: every way of pairing a batch that is timed."""
    return {
        "independent": (couplings.independent, False),
        "ExactOT()": (couplings.ExactOT(), False),
        "ExactOT(block=128)": (couplings.ExactOT(block=128), False),
        "ExactOT(block=64)": (couplings.ExactOT(block=64), False),
        "ExactOT(), prefetch": (couplings.ExactOT(), True),
        "ExactOT(block=128), prefetch": (couplings.ExactOT(block=128), True),
    }


def seconds_per_step(task, coupling, prefetch: bool, batch: int, steps: int) -> float:
    """Wall seconds of one training step, averaged over ``steps`` steps of ``fit``."""
    torch.manual_seed(0)
    pairs = couplings.PairSampler(task.source, task.target, coupling, prefetch=prefetch)
    return fit(models.VelocityMLP(), FlowMatching(pairs, batch_size=batch), steps, progress=False).seconds / steps


def step_costs(task, batch: int, repeats: int, steps: int) -> list[dict]:
    """Median ms per step of every setting at one batch size, timed in turns, and its ratio to independent pairs."""
    timings: dict[str, list[float]] = {name: [] for name in settings()}
    seconds_per_step(task, couplings.independent, False, batch, steps)  # warm-up, not counted
    for _ in range(repeats):
        for name, (coupling, prefetch) in settings().items():
            timings[name].append(seconds_per_step(task, coupling, prefetch, batch, steps))
    independent = statistics.median(timings["independent"])
    return [{"batch": batch, "setting": name, "ms per step": 1e3 * statistics.median(times),
             "worst ms": 1e3 * max(times), "vs independent": statistics.median(times) / independent}
            for name, times in timings.items()]


def main() -> None:
    command = parser(__doc__)
    command.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256], help="batch sizes (%(default)s)")
    command.add_argument("--repeats", type=int, default=5, help="timings of each setting, medians (%(default)s)")
    command.add_argument("--steps", type=int, default=100, help="training steps per timing (%(default)s)")
    args, started = parse(command)

    task = torchcfm_task()
    rows = [row for batch in args.batch_sizes for row in step_costs(task, batch, args.repeats, args.steps)]
    print(plot.markdown_table(rows, 2), "\n")
    for batch in args.batch_sizes:
        exact = [row for row in rows if row["batch"] == batch and row["setting"] != "independent"]
        met = [row["setting"] for row in exact if row["vs independent"] <= GOAL]
        print(f"batch {batch}: settings within {GOAL}x of an independent step: {', '.join(met) if met else 'none'}")
    print("saved", save("ot_step", {"task": "8gaussians -> moons (torchcfm)", "settings": vars(args), "goal": GOAL,
                                     "rows": rows}, started))


if __name__ == "__main__":
    main()
