"""MeanFlow and SplitMeanFlow on torchcfm's task: one-step quality at equal training time, seeds, step cost.

Every method trains for the same wall-time budget (steps set from a measured step time), once per seed
(the same seeds for every method; a NaN is recorded, not raised), and is scored by exact W2 on 2,000
samples at 1 and 2 function evaluations (NFE). Methods: MeanFlow and SplitMeanFlow on independent and
minibatch-OT pairs (peak lr ``--lr``); the baselines 1-RF and OT-CFM sampled with Euler steps, whose peak
lr is tuned on a grid (``--baseline-lrs``, each trained ``--tune-budget`` s with seed 0 and scored on a
validation task of other points); and 2-RF + distillation with its budget split between 1-RF, reflow and
distillation (generating the pairs counts towards it; lrs as in reflow.py and notebook 05). Tables: step
cost, the baseline lr grid, every run, and per method the median and worst over the seeds. Writes
benchmarks/results/meanflow.json.

    python benchmarks/meanflow.py                        # 10 s per method, 3 seeds (about 5 minutes)
    python benchmarks/meanflow.py --budget 45            # the issue's 45 s comparison (about 20 minutes)
    python benchmarks/meanflow.py --budget 5 --seeds 0   # a quick look
"""

from __future__ import annotations

import statistics
import time

import torch
from common import parse, parser, save, torchcfm_task

from toyflow import couplings, models, plot, rectify, solvers
from toyflow.flow_matching import FlowMatching
from toyflow.meanflow import MeanFlow, SplitMeanFlow, sample
from toyflow.train import fit

TARGET_W2 = 0.25


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


def score(task, jump) -> dict:
    """W2 at 1 and 2 NFE of ``jump(x0, steps) -> samples``."""
    return {f"W2 @ {k}": task.score(jump(task.x0, k)) for k in (1, 2)}


def train_average_velocity(task, name: str, objective, steps: int, lr: float, grad_clip: float, seed: int) -> dict:
    torch.manual_seed(seed)
    model = models.VelocityMLP(times=2)
    row = {"method": name, "seed": seed, "steps": steps}
    try:
        history = fit(model, objective, steps, lr=lr, grad_clip=grad_clip, seed=seed, progress=False)
    except FloatingPointError as error:
        return {**row, "train s": float("nan"), "W2 @ 1": float("nan"), "W2 @ 2": float("nan"), "NaN": str(error)}
    return {**row, "train s": history.seconds, **score(task, lambda x0, k: sample(model, x0, k).x), "NaN": ""}


def train_flow(task, name: str, objective, steps: int, lr: float, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = models.VelocityMLP()
    history = fit(model, objective, steps, lr=lr, seed=seed, progress=False)
    return {"method": name, "seed": seed, "steps": steps, "train s": history.seconds,
            **score(task, lambda x0, k: solvers.integrate(model, x0, k).x), "NaN": ""}


def tune_baselines(objectives: dict, cost: dict[str, float], lrs: list[float], budget: float) -> tuple[list[dict], dict]:
    """Each flow-matching baseline at every lr of the grid, ``budget`` seconds with seed 0, scored on a validation
    task (other evaluation points): the rows and the lr with the lowest W2 @ 1 per baseline."""
    validation, rows, best = torchcfm_task(seed=4321), [], {}
    for name in ("flow matching, independent", "flow matching, OT"):
        steps = max(100, int(budget / cost[name]))
        for lr in lrs:
            rows.append({**train_flow(validation, f"{name} (Euler)", objectives[name][0], steps, lr), "lr": lr})
        best[name] = min((row for row in rows if row["method"] == f"{name} (Euler)"), key=lambda row: row["W2 @ 1"])["lr"]
    return rows, best


def reflow_and_distil(task, budget: float, seconds_per_step: float, num_pairs: int, pair_steps: int, seed: int = 0) -> dict:
    """1-RF and 2-RF with 40 % of the budget each, distillation with what is left after the pairs are made.
    Learning rates as in benchmarks/reflow.py (2e-3) and notebook 05 (distillation, 1e-3)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    steps = max(100, int(0.4 * budget / seconds_per_step))
    rounds = rectify.rectified_flow(task.source, task.target, rounds=2, steps=steps, num_pairs=num_pairs, lr=2e-3,
                                    pair_steps=pair_steps, seed=seed, progress=False)
    z0 = task.source.sample(num_pairs, torch.Generator().manual_seed(seed + 1))
    pairs = rectify.sample_pairs(rounds[1].model, z0, pair_steps)
    remaining = budget - (time.perf_counter() - start)
    student = rounds[1].model  # distillation trains in place: the 2-RF is not needed afterwards
    rectify.distill(student, pairs, max(100, int(remaining / seconds_per_step)), lr=1e-3, seed=seed, progress=False)
    one_step = rectify.one_step(student)
    return {"method": "2-RF + distillation", "seed": seed, "steps": f"{steps} + {steps} + distil",
            "train s": time.perf_counter() - start, "W2 @ 1": task.score(one_step(task.x0)),
            "W2 @ 2": "—", "NaN": ""}


def summarise(rows: list[dict], method: str) -> dict:
    """Median and worst W2 of one method's runs, and how many stopped on a NaN."""
    runs = [row for row in rows if row["method"] == method]
    finite = [row for row in runs if not row["NaN"]]
    middle = (lambda key: statistics.median(row[key] for row in finite)) if finite else (lambda key: float("nan"))
    return {"method": method, "runs": len(runs), "NaN runs": len(runs) - len(finite), "median W2 @ 1": middle("W2 @ 1"),
            "worst W2 @ 1": max((row["W2 @ 1"] for row in finite), default=float("nan")), "median W2 @ 2": middle("W2 @ 2"),
            "median train s": middle("train s")}


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
    result = {"task": "8gaussians -> moons (torchcfm)", "eval_size": len(task.x1), "floor_w2": task.floor,
              "iid_floor_w2": task.iid_floor, "settings": vars(args)}
    print(task.floors())

    cost = step_cost(task, args.batch, args.repeats)
    result["step_cost"] = [
        {"objective": name, "ms per step": 1e3 * s,
         "vs flow matching": s / cost["flow matching, " + name.split(", ")[1]]} for name, s in cost.items()
    ]
    print(plot.markdown_table(result["step_cost"], 2), "\n")

    trained = objectives(task, args.batch)
    result["baseline_tuning"], lrs = tune_baselines(trained, cost, args.baseline_lrs, args.tune_budget)
    print(plot.markdown_table(result["baseline_tuning"], 3), "\n")
    steps = {name: max(100, int(args.budget / s)) for name, s in cost.items()}
    rows = []
    for seed in args.seeds:
        rows += [train_flow(task, f"{name} (Euler)", trained[name][0], steps[name], lrs[name], seed) for name in lrs]
        rows.append(reflow_and_distil(task, args.budget, cost["flow matching, independent"], args.num_pairs,
                                      args.pair_steps, seed))
        rows += [train_average_velocity(task, name, trained[name][0], steps[name], args.lr, args.grad_clip, seed)
                 for name in ("MeanFlow, independent", "SplitMeanFlow, independent", "MeanFlow, OT", "SplitMeanFlow, OT")]
    result["rows"] = rows
    print(plot.markdown_table(rows, 3), "\n")

    result["summary"] = summary = [summarise(rows, name) for name in dict.fromkeys(row["method"] for row in rows)]
    print(plot.markdown_table(summary, 3), "\n")
    finite = [row for row in summary if row["median W2 @ 1"] == row["median W2 @ 1"]]
    best = min((row for row in finite if "Flow, OT" in row["method"]), key=lambda row: row["median W2 @ 1"])
    verdict = "meets" if best["median W2 @ 1"] <= TARGET_W2 else "misses"
    print(f"better of MeanFlow / SplitMeanFlow: {best['method']}, median W2 @ 1 NFE {best['median W2 @ 1']:.3f} over "
          f"{best['runs']} seeds after {best['median train s']:.1f} s of training ({verdict} the target {TARGET_W2}); "
          f"{sum(row['NaN runs'] for row in summary)} runs hit a NaN")
    winner = min(finite, key=lambda row: row["median W2 @ 1"])
    print(f"at equal training time ({args.budget:g} s) the best one-step sampler is {winner['method']}")
    print("saved", save("meanflow", result, started))


if __name__ == "__main__":
    main()
