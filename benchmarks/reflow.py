"""Rectified flow → reflow → one-step distillation on torchcfm's task, against torchcfm's OT-CFM trained for as long.

toyflow's pipeline, one per seed (``--seeds``): 1-RF (independent pairs) → rectify: the 1-RF carries ``--pairs`` fresh
source points (RK4, 25 steps) → 2-RF on those pairs (warm start; Lee et al.'s U-shaped times and pseudo-Huber loss
unless ``--no-lee``) → one-step distillation started from the 2-RF, on the 2-RF's own pairs ("own", InstaFlow's
recipe, which costs a second rectification) or on the pairs the 2-RF was trained on ("1-RF"). Each training stage
runs for ``--stage-budget`` seconds (``fit``'s ``max_seconds``; the schedule follows the elapsed time); generating
pairs is measured on top. A row per stage gives "stage s" (its training and the making of the pairs it trains on) and
"pipeline s", the cumulative seconds of every stage up to it.

torchcfm's OT-CFM tutorial recipe (exact minibatch OT, σ = 0.1, ``common.train_torchcfm``) then trains, at the same
seeds, for the median over seeds of the full pipeline's total (the "own pairs" route, all of it, pairs included):
the comparison is at equal wall time. Needs torchcfm (``pip install -e ".[bench]"``).

Both metrics of benchmarks/common.py on every row: the flows (1-RF, 2-RF, OT-CFM) at 1, 2, 4, 8 and 100 Euler steps
("W2 @ k", "fine W2 @ 1" and "fine W2 @ 100", with their straightness and transport cost), the one-step students at
one step ("W2 @ 1", "fine W2 @ 1"). Prints Markdown tables and the floors; writes benchmarks/results/reflow.json.

Wall time on an idle CPU, per seed: 4 stage budgets + 30 s (pairs and evaluation) for toyflow, 3 stage budgets + 15 s
for torchcfm; plus a quarter of a minute:

    python benchmarks/reflow.py                                  # the full run: 10 s stages, 3 seeds (about 6 minutes)
    python benchmarks/reflow.py --stage-budget 3 --seeds 0       # a quick look (about 1.5 minutes)
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from common import parse, parser, save, summarise_seeds, torchcfm_available, torchcfm_task, train_torchcfm
from tqdm.auto import tqdm

from toyflow import metrics, models, paths, plot, rectify

LR = 2e-3  # every stage, as notebook 05
NFES = (1, 2, 4, 8, 100)
FINE_NFES = (1, 100)  # fine W2 at 100 Euler steps costs about 10 s per model; at 1 step it is nearly free
FULL_PIPELINE = "+ distillation (own pairs)"  # the last stage of the longest route, whose total torchcfm gets
SUMMARISED = ("W2 @ 1", "W2 @ 100", "fine W2 @ 1", "fine W2 @ 100", "straightness", "pipeline s")


def rectified_pairs(flow, task, pairs: int, generator: torch.Generator) -> tuple[rectify.FixedPairs, float]:
    """``pairs`` fresh source points and where ``flow`` carries them (``rectify.sample_pairs``); the seconds it took."""
    start = time.perf_counter()
    rectified = rectify.sample_pairs(flow, task.source.sample(pairs, generator))
    return rectified, time.perf_counter() - start


def flow_quality(velocity, task) -> dict:
    """A flow's straightness, the transport cost of its own coupling (the pairs it would rectify) and both metrics at
    each NFE."""
    own_coupling = rectify.sample_pairs(velocity, task.x0)
    return {"straightness": metrics.straightness(velocity, task.x0),
            "transport cost": metrics.transport_cost(own_coupling.z0, own_coupling.z1),
            **task.at_nfe(velocity, NFES, fine=FINE_NFES)}


def student_quality(student, task) -> dict:
    """A one-step student's two metrics at its one step."""
    return task.evaluate(rectify.one_step(student), " @ 1")


def pipeline(task, budget: float, pairs: int, lee: bool, seed: int) -> list[dict]:
    """1-RF → 2-RF → distillation (two ways), each stage trained for ``budget`` seconds: one row per stage."""
    torch.manual_seed(seed)
    train = dict(max_seconds=budget, lr=LR, progress=False)
    lee_options = dict(time=paths.UShapedTime(4.0), loss="pseudo_huber") if lee else {}
    first = rectify.rectified_flow(task.source, task.target, rounds=1, steps=None, model=models.VelocityMLP(),
                                   seed=seed, **train)[0]
    generator = torch.Generator().manual_seed(seed + 100)
    training_pairs, first_pair_seconds = rectified_pairs(first.model, task, pairs, generator)
    two_rf = copy.deepcopy(first.model)  # warm start
    two_rf_seconds = rectify.reflow(two_rf, training_pairs, None, seed=seed + 1, **lee_options, **train).seconds
    own_pairs, own_pair_seconds = rectified_pairs(two_rf, task, pairs, generator)

    def row(stage: str, seconds: float, before: float, quality: dict) -> dict:
        return {"stage": stage, "seed": seed, "stage budget s": budget, "stage s": seconds,
                "pipeline s": before + seconds, **quality}

    one = row("1-RF", first.history.seconds, 0.0, flow_quality(first.model, task))
    two = row("2-RF" + (" (Lee et al.)" if lee else ""), first_pair_seconds + two_rf_seconds, one["pipeline s"],
              flow_quality(two_rf, task))
    rows = [one, two]
    for name, distill_pairs, pair_seconds in (("own", own_pairs, own_pair_seconds), ("1-RF", training_pairs, 0.0)):
        student = copy.deepcopy(two_rf)
        seconds = rectify.distill(student, distill_pairs, None, seed=seed + 2, **train).seconds
        rows.append(row(f"+ distillation ({name} pairs)", pair_seconds + seconds, two["pipeline s"],
                        student_quality(student, task)))
    return rows


def torchcfm_ot_cfm(task, budget: float, seed: int) -> dict:
    """torchcfm's OT-CFM tutorial recipe (exact minibatch OT, σ = 0.1; ``common.train_torchcfm``) for ``budget`` s."""
    from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher

    velocity, seconds = train_torchcfm(ExactOptimalTransportConditionalFlowMatcher(sigma=0.1), budget, seed,
                                       "torchcfm OT-CFM")
    return {"stage": "torchcfm OT-CFM (σ = 0.1)", "seed": seed, "stage budget s": budget, "stage s": seconds,
            "pipeline s": seconds, **flow_quality(velocity, task)}


def main() -> None:
    command = parser(__doc__, seeds=[0, 1, 2])
    command.add_argument("--stage-budget", type=float, default=10.0,
                         help="training seconds of each stage: 1-RF, 2-RF, distillation (%(default)s)")
    command.add_argument("--pairs", type=int, default=20000,
                         help="rectified pairs per reflow/distillation (%(default)s)")
    command.add_argument("--no-lee", action="store_true", help="train the 2-RF with uniform times and the L2 loss")
    command.add_argument("--no-torchcfm", action="store_true", help="skip torchcfm's OT-CFM (run when installed)")
    args, started = parse(command)

    task = torchcfm_task()
    print(task.describe_floors())
    result = {"task": "8gaussians -> moons (torchcfm)", "eval_size": len(task.x1), **task.floors(),
              "settings": vars(args), "rows": []}
    for seed in tqdm(args.seeds, desc="pipelines"):
        rows = pipeline(task, args.stage_budget, args.pairs, not args.no_lee, seed)
        result["rows"] += rows
        straighter = rows[1]["straightness"] / rows[0]["straightness"]
        print(f"seed {seed}: 1-RF → 2-RF → distillation (own pairs) in {rows[2]['pipeline s']:.1f} s; "
              f"straightness(2-RF)/straightness(1-RF) = {straighter:.4f}")
    if torchcfm_available() and not args.no_torchcfm:
        budget = statistics.median(row["pipeline s"] for row in result["rows"] if row["stage"] == FULL_PIPELINE)
        print(f"torchcfm OT-CFM trains for {budget:.1f} s, the median of toyflow's pipeline totals")
        result["rows"] += [torchcfm_ot_cfm(task, budget, seed) for seed in tqdm(args.seeds, desc="torchcfm OT-CFM")]
    result["summary"] = summarise_seeds(result["rows"], ("stage",), SUMMARISED)
    print(plot.markdown_table(result["rows"], 3), "\n")
    print(plot.markdown_table(result["summary"], 3))
    print("saved", save("reflow", result, started))


if __name__ == "__main__":
    main()
