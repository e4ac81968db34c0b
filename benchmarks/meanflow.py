"""MeanFlow and SplitMeanFlow on torchcfm's task: one-step quality at equal training time, seeds, step cost.

Every method trains for the same wall-time budget ``--budget`` (``fit(max_seconds=…)``), once per seed (the same
seeds for every method; a NaN is recorded, not raised), and is scored at 1 and 2 function evaluations (NFE) by both
metrics of common.py: exact W2 on 2,000 samples and fine W2 on 40,000. Methods:

- MeanFlow and SplitMeanFlow on independent and minibatch-OT pairs (peak lr ``--lr``, not tuned; gradient clip
  ``--grad-clip``);
- the baselines 1-RF and OT-CFM sampled with Euler steps, whose peak lr is tuned on the grid ``--baseline-lrs`` (the
  same grid and budget for both: each point trained ``--tune-budget`` s with seed 0, scored by fine W2 at 1 NFE on
  the validation task, whose points are not the evaluation set's);
- 2-RF + distillation (InstaFlow), every stage on the clock: 1-RF until 40 % of the budget, 2-RF on 1-RF's pairs
  until 80 %, distillation on 2-RF's pairs for the rest; generating the pairs counts (lrs as in reflow.py and
  notebook 05). It is a one-step generator, scored at 1 NFE only.

Tables: the cost of a training step of each objective (not a budget: 100 steps, median of ``--repeats``), the lr
grid, every run ("budget s" and the measured "train s"), and per method the median and worst over the seeds.
Writes benchmarks/results/meanflow.json. Estimated wall times on 2 cores (one thread):

    python benchmarks/meanflow.py --budget 1 --tune-budget 1 --seeds 0 --repeats 1   # a quick look (about 1 minute)
    python benchmarks/meanflow.py                        # 10 s per method, 3 seeds (about 5 minutes)
    python benchmarks/meanflow.py --budget 45            # the issue's 45 s comparison (about 18 minutes)
"""

from __future__ import annotations

import math
import statistics

from common import (
    euler,
    jumps,
    parse,
    parser,
    reflow_and_distil,
    save,
    summarise_seeds,
    torchcfm_task,
    train_for,
    tune,
    validation_task,
)

from toyflow import couplings, models, plot, solvers
from toyflow.flow_matching import FlowMatching
from toyflow.meanflow import MeanFlow, SplitMeanFlow
from toyflow.train import fit

TARGET_W2 = 0.25
NFES = (1, 2)
QUALITY = tuple(f"{metric} @ {k}" for k in NFES for metric in ("W2", "fine W2"))
BASELINES = ("flow matching, independent", "flow matching, OT")
AVERAGE_VELOCITY = ("MeanFlow, independent", "SplitMeanFlow, independent", "MeanFlow, OT", "SplitMeanFlow, OT")


def objectives(task, batch: int) -> dict:
    """Every objective timed and trained here, by name: ``(objective, number of time inputs of the network)``."""
    pairs = {name: couplings.PairSampler(task.source, task.target, coupling)
             for name, coupling in (("independent", couplings.independent), ("OT", couplings.ExactOT()))}
    return {
        "flow matching, independent": (FlowMatching(pairs["independent"], batch_size=batch), 1),
        "flow matching, OT": (FlowMatching(pairs["OT"], batch_size=batch), 1),
        "MeanFlow, independent": (MeanFlow(pairs["independent"], batch_size=batch), 2),
        "MeanFlow, OT": (MeanFlow(pairs["OT"], batch_size=batch), 2),
        "SplitMeanFlow, independent": (SplitMeanFlow(pairs["independent"], batch_size=batch), 2),
        "SplitMeanFlow, OT": (SplitMeanFlow(pairs["OT"], batch_size=batch), 2),
    }


def step_cost(task, batch: int, repeats: int, steps: int = 100) -> dict[str, float]:
    """Median seconds per training step of each objective, measured in turns."""
    timings: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, (objective, times) in objectives(task, batch).items():
            history = fit(models.VelocityMLP(times=times), objective, steps, progress=False)
            timings.setdefault(name, []).append(history.seconds / steps)
    return {name: statistics.median(t) for name, t in timings.items()}


def run(task, method: str, objective, times: int, sampler, budget: float, seed: int, **fit_kwargs) -> dict:
    """One method and seed: trained for ``budget`` seconds, scored at ``NFES`` by ``sampler(model)``; a NaN loss gives
    a row of NaN with the error in its "NaN" column."""
    row = {"method": method, "seed": seed, "budget s": budget}
    try:
        model, seconds = train_for(budget, lambda: models.VelocityMLP(times=times), objective, seed, **fit_kwargs)
    except FloatingPointError as error:
        return row | {"train s": math.nan} | dict.fromkeys(QUALITY, math.nan) | {"NaN": str(error)}
    return row | {"train s": seconds} | task.at_steps(sampler(model), NFES) | {"NaN": ""}


def tune_baselines(trained_objectives: dict, lrs: list[float], budget: float) -> tuple[list[dict], dict[str, float]]:
    """Each flow-matching baseline at every lr of the grid, ``budget`` seconds with seed 0, scored by fine W2 at 1 NFE
    on the validation task: the tuning rows and the chosen lr per baseline."""
    validation, grid = validation_task(), {f"lr {lr:g}": {"lr": lr} for lr in lrs}
    rows, chosen = [], {}
    for name in BASELINES:
        def score(settings: dict, name: str = name) -> float:
            try:
                model, _ = train_for(budget, models.VelocityMLP, trained_objectives[name][0], seed=0, **settings)
            except FloatingPointError:
                return math.nan
            return validation.fine_score(solvers.integrate(model, validation.x0_fine, 1).x)

        best, tuning = tune(grid, score, f"{name} (Euler)")
        rows += tuning
        chosen[name] = grid[best]["lr"]
    return rows, chosen


def summarise(rows: list[dict]) -> list[dict]:
    """Per method: the median and worst of each quality column over the runs without a NaN, and how many hit one."""
    methods = dict.fromkeys(row["method"] for row in rows)
    finite = [row for row in rows if not row["NaN"]]
    lines = {line["method"]: line for line in summarise_seeds(finite, ("method",), QUALITY)}
    return [lines.get(method, {"method": method, "seeds": 0})
            | {"NaN runs": sum(bool(row["NaN"]) for row in rows if row["method"] == method)} for method in methods]


def main() -> None:
    command = parser(__doc__, seeds=[0, 1, 2])
    command.add_argument("--budget", type=float, default=10.0, help="training seconds per method and seed (%(default)s)")
    command.add_argument("--lr", type=float, default=1e-2, help="peak lr of MeanFlow and SplitMeanFlow (%(default)s)")
    command.add_argument("--baseline-lrs", type=float, nargs="+", default=[2e-3, 5e-3, 1e-2],
                         help="lr grid of the flow-matching baselines (%(default)s)")
    command.add_argument("--tune-budget", type=float, default=3.0, help="training seconds of each tuning run (%(default)s)")
    command.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clip of the two (%(default)s)")
    command.add_argument("--batch", type=int, default=256, help="pairs per step (%(default)s)")
    command.add_argument("--repeats", type=int, default=3, help="repeats of the step timing; medians (%(default)s)")
    command.add_argument("--num-pairs", type=int, default=5000, help="rectified pairs for 2-RF and distillation (%(default)s)")
    command.add_argument("--pair-steps", type=int, default=25, help="RK4 steps that rectify each pair (%(default)s)")
    args, started = parse(command)

    task = torchcfm_task()
    result = {"task": "8gaussians -> moons (torchcfm)", "eval_size": len(task.x1), **task.floors(),
              "settings": vars(args)}
    print(task.describe_floors())

    cost = step_cost(task, args.batch, args.repeats)
    result["step_cost"] = [
        {"objective": name, "ms per step": 1e3 * s,
         "vs flow matching": s / cost["flow matching, " + name.split(", ")[1]]} for name, s in cost.items()
    ]
    print(plot.markdown_table(result["step_cost"], 2), "\n")

    trained_objectives = objectives(task, args.batch)
    result["baseline_tuning"], lrs = tune_baselines(trained_objectives, args.baseline_lrs, args.tune_budget)
    print(plot.markdown_table(result["baseline_tuning"], 4), "\n")
    rows = []
    for seed in args.seeds:
        rows += [run(task, f"{name} (Euler)", trained_objectives[name][0], 1, euler, args.budget, seed, lr=lrs[name])
                 for name in BASELINES]
        one_step, seconds = reflow_and_distil(task.source, task.target, args.budget, args.num_pairs, args.pair_steps,
                                              seed)
        rows.append({"method": "2-RF + distillation", "seed": seed, "budget s": args.budget, "train s": seconds,
                     **task.evaluate(one_step, " @ 1"), "NaN": ""})
        rows += [run(task, name, trained_objectives[name][0], 2, jumps, args.budget, seed, lr=args.lr,
                     grad_clip=args.grad_clip) for name in AVERAGE_VELOCITY]
    result["rows"] = rows
    print(plot.markdown_table(rows, 3), "\n")

    result["summary"] = summary = summarise(rows)
    print(plot.markdown_table(summary, 3), "\n")
    finite = [row for row in summary if not math.isnan(row.get("median W2 @ 1", math.nan))]
    best = min((row for row in finite if "Flow, OT" in row["method"]), key=lambda row: row["median W2 @ 1"],
               default=None)
    if best is not None:
        verdict = "meets" if best["median W2 @ 1"] <= TARGET_W2 else "misses"
        print(f"better of MeanFlow / SplitMeanFlow on OT pairs: {best['method']}, median W2 @ 1 NFE "
              f"{best['median W2 @ 1']:.3f} (fine W2 {best['median fine W2 @ 1']:.4f}) over {best['seeds']} seeds "
              f"after "
              f"{best['median train s']:.1f} s of training ({verdict} the target {TARGET_W2})")
    print(f"{sum(row['NaN runs'] for row in summary)} runs hit a NaN")
    for metric in ("W2", "fine W2") if finite else ():
        winner = min(finite, key=lambda row: row[f"median {metric} @ 1"])
        print(f"at equal training time ({args.budget:g} s) the best one-step sampler by {metric} is {winner['method']}")
    print("saved", save("meanflow", result, started))


if __name__ == "__main__":
    main()
